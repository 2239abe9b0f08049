/*
 * scim_patch.c - RFC 7644 section 3.5.2 PATCH on a SCIM resource held as
 * JSON: add, remove and replace, with or without a path, value filters
 * (members[value eq "id"], emails[type eq "work"].value), extension URNs,
 * and the identity providers' variants: Entra ID's capitalized ops, its
 * remove of members by a value array and its path-less values whose keys
 * are paths; Okta's replace of members and of the whole group.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/util.h"
#include "scim.h"

json_t *scim__get(const json_t *o, const char *key, const char **real)
{
    const char *k;
    json_t *v;

    if (real)
        *real = NULL;
    json_object_foreach((json_t *)o, k, v)
        if (!strcasecmp(k, key)) {
            if (real)
                *real = k;
            return v;
        }
    return NULL;
}

enum { OP_ADD, OP_REMOVE, OP_REPLACE };

/* A parsed path: [urn:]attr[[fattr eq "fval"]][.sub]. Strings owned. */
typedef struct path {
    char *urn;              /* an extension schema, or NULL for the core one */
    char *attr;
    char *fattr, *fval;     /* the value filter, or NULL */
    char *sub;              /* sub-attribute, or NULL */
} path;

static void path_free(path *p)
{
    ctx_free(p->urn);
    ctx_free(p->attr);
    ctx_free(p->fattr);
    ctx_free(p->fval);
    ctx_free(p->sub);
}

__attribute__((format(printf, 5, 6)))
static int bad(scim_fail *f, int status, const char *type, ctx_error *err, const char *fmt,
               ...)
{
    va_list ap;
    f->status = status;
    f->type = type;
    va_start(ap, fmt);
    err->code = CTX_EINVAL;
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return CTX_EINVAL;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = ctx_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/*
 * parse_filter - `attr eq "value"` (the only operator supported in paths)
 * between s and e into p. Returns 0 when it parsed.
 */
static int parse_filter(const char *s, const char *e, path *p)
{
    const char *a, *q;
    json_t *v;

    while (s < e && *s == ' ')
        s++;
    for (a = s; a < e && *a != ' '; a++)
        ;
    if (a == s || e - a < 5 || strncasecmp(a, " eq ", 4))
        return -1;
    p->fattr = dup_n(s, (size_t)(a - s));
    for (q = a + 4; q < e && *q == ' '; q++)
        ;
    while (e > q && e[-1] == ' ')
        e--;
    if (q >= e || *q != '"')
        return -1;
    {
        char *lit = dup_n(q, (size_t)(e - q));
        v = lit ? json_loads(lit, JSON_DECODE_ANY, NULL) : NULL;
        ctx_free(lit);
    }
    if (!json_is_string(v)) {
        json_decref(v);
        return -1;
    }
    p->fval = ctx_strdup(json_string_value(v));
    json_decref(v);
    return p->fattr && p->fval ? 0 : -1;
}

static int parse_path(const char *text, const char *core, path *p, scim_fail *f,
                      ctx_error *err)
{
    const char *s = text, *br = strchr(text, '['), *colon = NULL, *end;

    memset(p, 0, sizeof p[0]);
    if (!strncasecmp(s, "urn:", 4)) {
        for (const char *c = s; *c && (!br || c < br); c++)
            if (*c == ':')
                colon = c;
        if (!colon || !colon[1])
            return bad(f, 400, "invalidPath", err, "path \"%s\": no attribute after the"
                       " schema URN", text);
        if (!(strlen(core) == (size_t)(colon - s) && !strncasecmp(s, core, strlen(core))))
            p->urn = dup_n(s, (size_t)(colon - s));
        s = colon + 1;
    }
    for (end = s; *end && *end != '[' && *end != '.'; end++)
        ;
    if (end == s)
        return bad(f, 400, "invalidPath", err, "path \"%s\": no attribute name", text);
    p->attr = dup_n(s, (size_t)(end - s));
    if (*end == '[') {
        const char *close = end + 1;
        int quoted = 0;
        for (; *close && (quoted || *close != ']'); close++) {
            if (*close == '\\' && quoted && close[1])
                close++;
            else if (*close == '"')
                quoted = !quoted;
        }
        if (*close != ']' || parse_filter(end + 1, close, p))
            return bad(f, 400, "invalidFilter", err, "path \"%s\": the filter must read"
                       " attribute eq \"value\" inside [ ]", text);
        end = close + 1;
    }
    if (*end == '.') {
        if (!end[1] || strpbrk(end + 1, ".[]"))
            return bad(f, 400, "invalidPath", err, "path \"%s\": bad sub-attribute", text);
        p->sub = ctx_strdup(end + 1);
    } else if (*end) {
        return bad(f, 400, "invalidPath", err, "path \"%s\": unexpected text after the"
                   " attribute", text);
    }
    if (!p->attr || (p->urn == NULL && (!strcasecmp(p->attr, "id") ||
                                        !strcasecmp(p->attr, "meta") ||
                                        !strcasecmp(p->attr, "schemas"))))
        return bad(f, 400, "mutability", err, "path \"%s\": the attribute is read-only", text);
    return CTX_OK;
}

/* set - o[key] = v (stolen), reusing the spelling of an existing key. */
static void set(json_t *o, const char *key, json_t *v)
{
    const char *real;
    scim__get(o, key, &real);
    json_object_set_new(o, real ? real : key, v);
}

static void del(json_t *o, const char *key)
{
    const char *real;
    if (scim__get(o, key, &real))
        json_object_del(o, real);
}

/* same_item - two elements of a multi-valued attribute are the same value. */
static int same_item(const json_t *a, const json_t *b)
{
    json_t *va = json_is_object(a) ? scim__get(a, "value", NULL) : NULL;
    json_t *vb = json_is_object(b) ? scim__get(b, "value", NULL) : NULL;
    if (va && vb)
        return json_equal(va, vb);
    return json_equal(a, b);
}

static int matches(const json_t *el, const path *p)
{
    json_t *v = json_is_object(el) ? scim__get(el, p->fattr, NULL) : NULL;
    if (json_is_string(v))
        return !strcmp(json_string_value(v), p->fval);
    if (json_is_boolean(v))
        return !strcasecmp(p->fval, json_is_true(v) ? "true" : "false");
    return 0;
}

/* append - add value's elements (or value) to the array arr, skipping repeats. */
static void append(json_t *arr, const json_t *value)
{
    size_t i, j, n = json_is_array(value) ? json_array_size(value) : 1;
    for (i = 0; i < n; i++) {
        json_t *v = json_is_array(value) ? json_array_get(value, i) : (json_t *)value;
        int dup = 0;
        for (j = 0; j < json_array_size(arr) && !dup; j++)
            dup = same_item(json_array_get(arr, j), v);
        if (!dup)
            json_array_append(arr, v);
    }
}

/* apply_filtered - op on the elements of arr that p's filter matches. */
static int apply_filtered(json_t *arr, int op, const path *p, json_t *value, const char *text,
                          scim_fail *f, ctx_error *err)
{
    size_t i = 0, hits = 0;

    while (i < json_array_size(arr)) {
        json_t *el = json_array_get(arr, i);
        if (!matches(el, p)) {
            i++;
            continue;
        }
        hits++;
        if (op == OP_REMOVE && !p->sub) {
            json_array_remove(arr, i);
            continue;
        }
        if (op == OP_REMOVE)
            del(el, p->sub);
        else if (p->sub)
            set(el, p->sub, json_deep_copy(value));
        else if (json_is_object(value))
            json_array_set(arr, i, value);
        else
            return bad(f, 400, "invalidValue", err, "path \"%s\": the value must be an"
                       " object", text);
        i++;
    }
    if (hits || op == OP_REMOVE)
        return CTX_OK;   /* removing what is not there leaves it not there */
    if (op == OP_REPLACE && !p->sub)
        return bad(f, 400, "noTarget", err, "path \"%s\": the filter matches nothing", text);
    {
        /* emails[type eq "work"].value with no work email: make that email. */
        json_t *el = json_object();
        json_object_set_new(el, p->fattr, json_string(p->fval));
        if (p->sub)
            json_object_set(el, p->sub, value);
        else if (json_is_object(value))
            json_object_update(el, value);
        json_array_append_new(arr, el);
    }
    return CTX_OK;
}

static int apply_path(json_t *res, int op, const char *text, json_t *value, const char *core,
                      scim_fail *f, ctx_error *err)
{
    json_t *box = res, *cur;
    path p;
    int rc;

    if ((rc = parse_path(text, core, &p, f, err)))
        goto done;
    if (op != OP_REMOVE && !value) {
        rc = bad(f, 400, "invalidValue", err, "path \"%s\": the operation has no value", text);
        goto done;
    }
    if (p.urn) {
        if (!(box = scim__get(res, p.urn, NULL))) {
            if (op == OP_REMOVE)
                goto done;
            box = json_object();
            json_object_set_new(res, p.urn, box);
        }
        if (!json_is_object(box)) {
            rc = bad(f, 400, "invalidValue", err, "%s: expected an object", p.urn);
            goto done;
        }
    }
    cur = scim__get(box, p.attr, NULL);
    if (p.fattr) {
        if (!cur && op != OP_REMOVE) {
            cur = json_array();
            set(box, p.attr, cur);
        }
        if (!json_is_array(cur)) {
            if (cur || op != OP_REMOVE)
                rc = bad(f, 400, "invalidPath", err, "path \"%s\": a filter needs a"
                         " multi-valued attribute", text);
            goto done;
        }
        rc = apply_filtered(cur, op, &p, value, text, f, err);
    } else if (p.sub) {
        if (op == OP_REMOVE) {
            if (json_is_object(cur))
                del(cur, p.sub);
            goto done;
        }
        if (!json_is_object(cur) && !json_is_array(cur)) {
            cur = json_object();
            set(box, p.attr, cur);
        }
        if (json_is_object(cur)) {
            set(cur, p.sub, json_deep_copy(value));
        } else {
            for (size_t i = 0; i < json_array_size(cur); i++)
                if (json_is_object(json_array_get(cur, i)))
                    set(json_array_get(cur, i), p.sub, json_deep_copy(value));
        }
    } else if (op == OP_REMOVE) {
        if (json_is_array(cur) && value) {
            /* Entra ID: remove these members (a value array) */
            size_t i = 0;
            while (i < json_array_size(cur)) {
                int gone = 0;
                for (size_t j = 0; json_is_array(value) && j < json_array_size(value); j++)
                    gone |= same_item(json_array_get(cur, i), json_array_get(value, j));
                if (json_is_object(value))
                    gone = same_item(json_array_get(cur, i), value);
                if (gone)
                    json_array_remove(cur, i);
                else
                    i++;
            }
        } else {
            del(box, p.attr);
        }
    } else if (op == OP_ADD && (json_is_array(cur) || json_is_array(value))) {
        if (!json_is_array(cur)) {
            cur = json_array();
            set(box, p.attr, cur);
        }
        append(cur, value);
    } else if (op == OP_ADD && json_is_object(cur) && json_is_object(value)) {
        json_object_update(cur, value);
    } else {
        set(box, p.attr, json_deep_copy(value));
    }
done:
    path_free(&p);
    return rc;
}

/* apply_whole - an add or replace with no path: value's members, each a path. */
static int apply_whole(json_t *res, int op, json_t *value, const char *core, scim_fail *f,
                       ctx_error *err)
{
    const char *k;
    json_t *v;
    int rc;

    if (!json_is_object(value))
        return bad(f, 400, "invalidValue", err, "Operations: an %s without a path needs an"
                   " object value", op == OP_ADD ? "add" : "replace");
    json_object_foreach(value, k, v) {
        json_t *cur = scim__get(res, k, NULL);
        /* Okta sends the group's own id along with a rename; ids do not change. */
        if (!strcasecmp(k, "id") || !strcasecmp(k, "meta") || !strcasecmp(k, "schemas")) {
            if (!strcasecmp(k, "id") && cur && !json_equal(cur, v))
                return bad(f, 400, "mutability", err, "id: \"%s\" is read-only",
                           json_string_value(cur));
            continue;
        }
        if (!strcasecmp(k, SCIM_ENTERPRISE_URN) && json_is_object(v)) {
            /* a whole extension object: its attributes one by one */
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                char *pth = NULL;
                ctx_buf b = CTX_BUF_INIT;
                if (ctx_buf_printf(&b, "%s:%s", k, k2))
                    return ctx_error_set(err, CTX_ENOMEM, "out of memory");
                pth = ctx_buf_steal(&b);
                rc = apply_path(res, op, pth, v2, core, f, err);
                ctx_free(pth);
                if (rc)
                    return rc;
            }
            continue;
        }
        if ((rc = apply_path(res, op, k, v, core, f, err)))
            return rc;
    }
    return CTX_OK;
}

int scim__patch(json_t *res, const json_t *patch, const char *core, scim_fail *f,
                ctx_error *err)
{
    json_t *schemas = scim__get(patch, "schemas", NULL), *ops, *o;
    size_t i, j;
    int ok = 0;

    if (!json_is_object(patch))
        return bad(f, 400, "invalidSyntax", err, "%s", "the body must be a PatchOp object");
    json_array_foreach(schemas, j, o)
        ok |= json_is_string(o) && !strcmp(json_string_value(o), SCIM_PATCH_URN);
    if (!ok)
        return bad(f, 400, "invalidSyntax", err, "schemas: must list \"%s\"", SCIM_PATCH_URN);
    ops = scim__get(patch, "Operations", NULL);
    if (!json_is_array(ops) || !json_array_size(ops))
        return bad(f, 400, "invalidSyntax", err, "%s", "Operations: expected a non-empty"
                   " array of {op, path, value}");
    json_array_foreach(ops, i, o) {
        json_t *op = scim__get(o, "op", NULL), *pth = scim__get(o, "path", NULL);
        json_t *value = scim__get(o, "value", NULL);
        const char *name = json_string_value(op);
        int kind, rc;

        if (!name || (strcasecmp(name, "add") && strcasecmp(name, "remove") &&
                      strcasecmp(name, "replace")))
            return bad(f, 400, "invalidSyntax", err, "Operations: op \"%s\" is not add,"
                       " remove or replace", name ? name : "(missing)");
        kind = !strcasecmp(name, "add") ? OP_ADD : !strcasecmp(name, "remove") ? OP_REMOVE
                                                                                : OP_REPLACE;
        if (pth && !json_is_string(pth))
            return bad(f, 400, "invalidPath", err, "%s", "Operations: path must be a string");
        if (json_is_null(value))
            value = NULL;
        if (pth && *json_string_value(pth))
            rc = apply_path(res, kind, json_string_value(pth), value, core, f, err);
        else if (kind == OP_REMOVE)
            rc = bad(f, 400, "noTarget", err, "%s", "Operations: remove needs a path");
        else
            rc = apply_whole(res, kind, value, core, f, err);
        if (rc) {
            ctx_error_prefix(err, "Operations[%zu]: ", i);
            return rc;
        }
    }
    return CTX_OK;
}
