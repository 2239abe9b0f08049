/*
 * conform_schema.c - the part of JSON Schema a connector's spec uses: the
 * spec's own shape, and a config checked against it.
 */
#include "conform_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../core/json.h"

/* ---- JSON Schema: the shape of a spec, and a config against it ---- */

static const char *const schema_types[] = {"object", "array", "string", "integer",
                                           "number", "boolean", "null", NULL};

int cf__why_add(ctx_buf *why, const char *fmt, ...)
{
    va_list ap;
    char line[600];

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (why->len < 1500)
        ctx_buf_printf(why, "%s%s", why->len ? "; " : "", line);
    return 1;
}

static int is_type_name(const json_t *t)
{
    for (size_t i = 0; json_is_string(t) && schema_types[i]; i++)
        if (!strcmp(json_string_value(t), schema_types[i]))
            return 1;
    return 0;
}

/* schema_shape - 0 if sc looks like a JSON Schema (the keywords we know are well typed). */
int cf__schema_shape(json_t *sc, const char *path, ctx_buf *why)
{
    static const char *const lists[] = {"oneOf", "anyOf", "allOf", NULL};
    char sub[512];
    const char *key;
    json_t *v, *e;
    size_t i;
    int bad = 0;

    if (json_is_boolean(sc))
        return 0;
    if (!json_is_object(sc))
        return cf__why_add(why, "%s: a schema is an object or a boolean, not %s", path,
                           ctx_json_typename(sc));
    if ((v = json_object_get(sc, "type"))) {
        if (json_is_array(v)) {
            json_array_foreach(v, i, e) {
                bad |= !is_type_name(e);
            }
        } else {
            bad |= !is_type_name(v);
        }
        if (bad)
            cf__why_add(why, "%s.type: not one of object, array, string, integer, number,"
                        " boolean, null", path);
    }
    if ((v = json_object_get(sc, "properties"))) {
        if (!json_is_object(v))
            bad |= cf__why_add(why, "%s.properties: expected an object", path);
        json_object_foreach(v, key, e) {
            snprintf(sub, sizeof sub, "%s.properties.%s", path, key);
            bad |= cf__schema_shape(e, sub, why);
        }
    }
    if ((v = json_object_get(sc, "required"))) {
        if (!json_is_array(v))
            bad |= cf__why_add(why, "%s.required: expected an array of names", path);
        json_array_foreach(v, i, e) {
            if (!json_is_string(e))
                bad |= cf__why_add(why, "%s.required[%zu]: expected a string", path, i);
        }
    }
    if ((v = json_object_get(sc, "items"))) {
        snprintf(sub, sizeof sub, "%s.items", path);
        bad |= cf__schema_shape(v, sub, why);
    }
    if ((v = json_object_get(sc, "additionalProperties"))) {
        snprintf(sub, sizeof sub, "%s.additionalProperties", path);
        bad |= cf__schema_shape(v, sub, why);
    }
    if ((v = json_object_get(sc, "enum")) && (!json_is_array(v) || !json_array_size(v)))
        bad |= cf__why_add(why, "%s.enum: expected a non-empty array", path);
    for (const char *const *l = lists; *l; l++) {
        if (!(v = json_object_get(sc, *l)))
            continue;
        if (!json_is_array(v) || !json_array_size(v))
            bad |= cf__why_add(why, "%s.%s: expected a non-empty array of schemas", path, *l);
        json_array_foreach(v, i, e) {
            snprintf(sub, sizeof sub, "%s.%s[%zu]", path, *l, i);
            bad |= cf__schema_shape(e, sub, why);
        }
    }
    return bad;
}

static int type_matches(const char *t, const json_t *v)
{
    if (!strcmp(t, "integer"))
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == (double)(json_int_t)json_real_value(v));
    if (!strcmp(t, "number"))
        return json_is_number(v);
    return !strcmp(t, ctx_json_typename(v));
}

/* schema_validate - 0 if v is valid against sc (the keywords schema_shape knows). */
int cf__schema_validate(json_t *sc, json_t *v, const char *path, ctx_buf *why)
{
    char sub[512];
    const char *key;
    json_t *k, *e, *props;
    size_t i, n;
    int bad = 0;

    if (json_is_boolean(sc))
        return json_is_true(sc) ? 0 : cf__why_add(why, "%s: not allowed", path);
    if ((k = json_object_get(sc, "type"))) {
        int ok = 0;
        if (json_is_string(k))
            ok = type_matches(json_string_value(k), v);
        json_array_foreach(k, i, e) {
            ok |= json_is_string(e) && type_matches(json_string_value(e), v);
        }
        if (!ok)
            return cf__why_add(why, "%s: expected %s, got %s", path,
                               json_is_string(k) ? json_string_value(k) : "another type",
                               ctx_json_typename(v));
    }
    if ((k = json_object_get(sc, "enum"))) {
        int ok = 0;
        json_array_foreach(k, i, e) {
            ok |= json_equal(e, v);
        }
        if (!ok)
            bad |= cf__why_add(why, "%s: not one of the allowed values", path);
    }
    if ((k = json_object_get(sc, "const")) && !json_equal(k, v))
        bad |= cf__why_add(why, "%s: must be the constant of the schema", path);
    if (json_is_number(v) && (k = json_object_get(sc, "minimum")) &&
        json_number_value(v) < json_number_value(k))
        bad |= cf__why_add(why, "%s: below the minimum %g", path, json_number_value(k));
    if (json_is_number(v) && (k = json_object_get(sc, "maximum")) &&
        json_number_value(v) > json_number_value(k))
        bad |= cf__why_add(why, "%s: above the maximum %g", path, json_number_value(k));
    if (json_is_string(v) && (k = json_object_get(sc, "minLength")) &&
        json_string_length(v) < (size_t)json_integer_value(k))
        bad |= cf__why_add(why, "%s: shorter than %lld", path, (long long)json_integer_value(k));
    if (json_is_object(v)) {
        props = json_object_get(sc, "properties");
        json_array_foreach(json_object_get(sc, "required"), i, e) {
            if (json_is_string(e) && !json_object_get(v, json_string_value(e)))
                bad |= cf__why_add(why, "%s: missing required \"%s\"", path, json_string_value(e));
        }
        json_object_foreach(v, key, e) {
            json_t *ps = json_object_get(props, key);
            json_t *ap = json_object_get(sc, "additionalProperties");
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            if (ps)
                bad |= cf__schema_validate(ps, e, sub, why);
            else if (ap)
                bad |= cf__schema_validate(ap, e, sub, why);
        }
    }
    if (json_is_array(v) && (k = json_object_get(sc, "items"))) {
        json_array_foreach(v, i, e) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            bad |= cf__schema_validate(k, e, sub, why);
        }
    }
    if ((k = json_object_get(sc, "allOf"))) {
        json_array_foreach(k, i, e) {
            bad |= cf__schema_validate(e, v, path, why);
        }
    }
    if ((k = json_object_get(sc, "anyOf")) || (k = json_object_get(sc, "oneOf"))) {
        ctx_buf tmp = CTX_BUF_INIT;
        n = 0;
        json_array_foreach(k, i, e) {
            n += !cf__schema_validate(e, v, path, &tmp);
        }
        if (!n || (n > 1 && json_object_get(sc, "oneOf") == k))
            bad |= cf__why_add(why, "%s: matches %zu of the %s alternatives%s%s", path, n,
                               json_object_get(sc, "oneOf") == k ? "oneOf" : "anyOf",
                               n ? "" : ": ", n ? "" : (tmp.data ? tmp.data : ""));
        ctx_buf_free(&tmp);
    }
    return bad;
}
