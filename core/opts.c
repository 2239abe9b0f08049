/*
 * opts.c - parse, free and describe option tables (see opts.h).
 */
#include "opts.h"
#include "util.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

#define FIELD(dst, off, type) ((type *)((char *)(dst) + (off)))

/* set_number - a double field; copied in, since cppcheck flags a char *
 * cast to double * (invalidPointerCast) that FIELD would be. */
static void set_number(void *dst, size_t off, double v)
{
    memcpy((char *)dst + off, &v, sizeof v);
}

const char *ctx_json_typename(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static const char *type_word(int type)
{
    switch (type) {
    case CTX_OPT_STRING: return "a string";
    case CTX_OPT_INT: return "an integer";
    case CTX_OPT_NUMBER: return "a number";
    case CTX_OPT_BOOL: return "true or false";
    case CTX_OPT_STRLIST: return "a string or an array of strings";
    case CTX_OPT_OBJLIST: return "an array of objects";
    default: return "a JSON value";
    }
}

static int set_default(const ctx_opt *o, void *dst)
{
    switch (o->type) {
    case CTX_OPT_STRING:
        if (o->def && !(*FIELD(dst, o->offset, char *) = ctx_strdup(o->def)))
            return CTX_ENOMEM;
        break;
    case CTX_OPT_INT:
        *FIELD(dst, o->offset, int64_t) = o->def ? strtoll(o->def, NULL, 10) : 0;
        break;
    case CTX_OPT_BOOL:
        *FIELD(dst, o->offset, int) = o->def && !strcmp(o->def, "true");
        break;
    case CTX_OPT_NUMBER:
        set_number(dst, o->offset, o->def ? strtod(o->def, NULL) : 0);
        break;
    default:
        break;
    }
    return CTX_OK;
}

static int parse_strlist(json_t *v, ctx_strlist *l, const char *path,
                         const char *key, ctx_error *err)
{
    size_t i, n;

    if (json_is_string(v)) {
        l->v = ctx_calloc(1, sizeof(char *));
        if (!l->v || !(l->v[0] = ctx_strdup(json_string_value(v))))
            return CTX_ENOMEM;
        l->n = 1;
        return CTX_OK;
    }
    if (!json_is_array(v))
        return ctx_error_set(err, CTX_ECONFIG,
                             "%s%s%s: expected a string or an array of strings, got %s",
                             path, *path ? "." : "", key, ctx_json_typename(v));
    n = json_array_size(v);
    l->v = ctx_calloc(n ? n : 1, sizeof(char *));
    if (!l->v)
        return CTX_ENOMEM;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e))
            return ctx_error_set(err, CTX_ECONFIG,
                                 "%s%s%s[%zu]: expected a string, got %s", path,
                                 *path ? "." : "", key, i, ctx_json_typename(e));
        if (!(l->v[i] = ctx_strdup(json_string_value(e))))
            return CTX_ENOMEM;
        l->n = i + 1;
    }
    return CTX_OK;
}

static int parse_objlist(const ctx_opt *o, json_t *v, ctx_objlist *l,
                         const char *path, ctx_error *err)
{
    size_t i, n;
    char sub[256];
    int rc;

    if (!json_is_array(v))
        return ctx_error_set(err, CTX_ECONFIG, "%s%s%s: expected an array of objects, got %s",
                             path, *path ? "." : "", o->key, ctx_json_typename(v));
    n = json_array_size(v);
    l->v = ctx_calloc(n ? n : 1, o->elem_size);
    if (!l->v)
        return CTX_ENOMEM;
    for (i = 0; i < n; i++) {
        snprintf(sub, sizeof sub, "%s%s%s[%zu]", path, *path ? "." : "", o->key, i);
        rc = ctx_opts_parse(o->sub, json_array_get(v, i),
                            (char *)l->v + i * o->elem_size, sub, err);
        if (rc)
            return rc;
        l->n = i + 1;
    }
    return CTX_OK;
}

static int parse_one(const ctx_opt *o, json_t *v, void *dst, const char *path,
                     ctx_error *err)
{
    const char *dot = *path ? "." : "";

    switch (o->type) {
    case CTX_OPT_STRING:
        if (!json_is_string(v))
            break;
        ctx_free(*FIELD(dst, o->offset, char *));
        *FIELD(dst, o->offset, char *) = ctx_strdup(json_string_value(v));
        return *FIELD(dst, o->offset, char *) ? CTX_OK : CTX_ENOMEM;
    case CTX_OPT_INT:
        if (!json_is_integer(v))
            break;
        *FIELD(dst, o->offset, int64_t) = json_integer_value(v);
        return CTX_OK;
    case CTX_OPT_BOOL:
        if (!json_is_boolean(v))
            break;
        *FIELD(dst, o->offset, int) = json_is_true(v);
        return CTX_OK;
    case CTX_OPT_STRLIST:
        return parse_strlist(v, FIELD(dst, o->offset, ctx_strlist), path, o->key, err);
    case CTX_OPT_OBJLIST:
        return parse_objlist(o, v, FIELD(dst, o->offset, ctx_objlist), path, err);
    case CTX_OPT_JSON:
        *FIELD(dst, o->offset, json_t *) = json_incref(v);
        return CTX_OK;
    case CTX_OPT_NUMBER:
        if (!json_is_number(v))
            break;
        set_number(dst, o->offset, json_number_value(v));
        return CTX_OK;
    }
    return ctx_error_set(err, CTX_ECONFIG, "%s%s%s: expected %s, got %s", path, dot,
                         o->key, type_word(o->type), ctx_json_typename(v));
}

int ctx_opts_parse(const ctx_opt *table, json_t *obj, void *dst,
                   const char *path, ctx_error *err)
{
    const ctx_opt *o;
    const char *key;
    json_t *v;
    int rc;

    if (!obj) /* a default object the caller could not make */
        return ctx_error_set(err, CTX_ENOMEM, "%s: out of memory", *path ? path : "config");
    if (!json_is_object(obj))
        return ctx_error_set(err, CTX_ECONFIG, "%s: expected an object, got %s",
                             *path ? path : "config", ctx_json_typename(obj));

    json_object_foreach(obj, key, v) {
        const char *names[128];
        size_t n = 0;
        for (o = table; o->key; o++) {
            if (!strcmp(o->key, key))
                break;
            if (n < 127)
                names[n++] = o->key;
        }
        if (o->key)
            continue;
        names[n] = NULL;
        {
            const char *s = ctx_suggest(key, names);
            rc = ctx_error_set(err, CTX_ECONFIG, "%s%sunknown key \"%s\"%s%s%s", path,
                               *path ? ": " : "", key, s ? ", did you mean \"" : "",
                               s ? s : "", s ? "\"" : "");
        }
        return rc;
    }

    for (o = table; o->key; o++) {
        if ((rc = set_default(o, dst)))
            goto fail;
        v = json_object_get(obj, o->key);
        if (!v || json_is_null(v)) {
            if (o->required) {
                rc = ctx_error_set(err, CTX_ECONFIG, "%s%smissing required key \"%s\" (%s)",
                                   path, *path ? ": " : "", o->key, o->desc);
                goto fail;
            }
            continue;
        }
        if ((rc = parse_one(o, v, dst, path, err)))
            goto fail;
    }
    return CTX_OK;
fail:
    if (rc == CTX_ENOMEM)
        ctx_error_set(err, rc, "%s: out of memory", *path ? path : "config");
    ctx_opts_free(table, dst);
    return rc;
}

void ctx_opts_free(const ctx_opt *table, void *dst)
{
    const ctx_opt *o;
    size_t i;

    for (o = table; o->key; o++) {
        switch (o->type) {
        case CTX_OPT_STRING:
            ctx_free(*FIELD(dst, o->offset, char *));
            *FIELD(dst, o->offset, char *) = NULL;
            break;
        case CTX_OPT_STRLIST: {
            ctx_strlist *l = FIELD(dst, o->offset, ctx_strlist);
            for (i = 0; i < l->n; i++)
                ctx_free(l->v[i]);
            ctx_free(l->v);
            l->v = NULL;
            l->n = 0;
            break;
        }
        case CTX_OPT_OBJLIST: {
            ctx_objlist *l = FIELD(dst, o->offset, ctx_objlist);
            for (i = 0; i < l->n; i++)
                ctx_opts_free(o->sub, (char *)l->v + i * o->elem_size);
            ctx_free(l->v);
            l->v = NULL;
            l->n = 0;
            break;
        }
        case CTX_OPT_JSON:
            json_decref(*FIELD(dst, o->offset, json_t *));
            *FIELD(dst, o->offset, json_t *) = NULL;
            break;
        default:
            break;
        }
    }
}

json_t *ctx_opts_schema(const ctx_opt *table, const char *title)
{
    json_t *s = json_object(), *props = json_object(), *req = json_array();
    const ctx_opt *o;

    if (title)
        json_object_set_new(s, "title", json_string(title));
    json_object_set_new(s, "type", json_string("object"));
    for (o = table; o->key; o++) {
        json_t *p;
        switch (o->type) {
        case CTX_OPT_STRING:
            p = json_pack("{s:s}", "type", "string");
            if (o->def)
                json_object_set_new(p, "default", json_string(o->def));
            break;
        case CTX_OPT_INT:
            p = json_pack("{s:s}", "type", "integer");
            if (o->def)
                json_object_set_new(p, "default", json_integer(strtoll(o->def, NULL, 10)));
            break;
        case CTX_OPT_BOOL:
            p = json_pack("{s:s}", "type", "boolean");
            if (o->def)
                json_object_set_new(p, "default", json_boolean(!strcmp(o->def, "true")));
            break;
        case CTX_OPT_NUMBER:
            p = json_pack("{s:s}", "type", "number");
            if (o->def)
                json_object_set_new(p, "default", json_real(strtod(o->def, NULL)));
            break;
        case CTX_OPT_STRLIST:
            p = json_pack("{s:[{s:s},{s:s,s:{s:s}}]}", "anyOf", "type", "string",
                          "type", "array", "items", "type", "string");
            break;
        case CTX_OPT_OBJLIST:
            p = json_pack("{s:s,s:o}", "type", "array", "items",
                          ctx_opts_schema(o->sub, NULL));
            break;
        default:
            p = json_object();
            break;
        }
        json_object_set_new(p, "description", json_string(o->desc));
        json_object_set_new(props, o->key, p);
        if (o->required)
            json_array_append_new(req, json_string(o->key));
    }
    json_object_set_new(s, "properties", props);
    json_object_set_new(s, "required", req);
    json_object_set_new(s, "additionalProperties", json_false());
    return s;
}

int ctx_opts_parse_text(const ctx_opt *table, const char *text, void *dst,
                        ctx_error *err)
{
    json_error_t jerr;
    json_t *obj = ctx_json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    int rc;

    if (!obj)
        return ctx_error_set(err, CTX_ECONFIG, "config: invalid JSON at %d:%d: %s",
                             jerr.line, jerr.column, jerr.text);
    rc = ctx_opts_parse(table, obj, dst, "", err);
    json_decref(obj);
    return rc;
}

int ctx_valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}
