/*
 * jsonl.c - a complete ctxgate connector to start yours from: it reads items
 * from a JSON-lines file, one object per line, with their permissions, and
 * users and groups from a second one. Incremental: its STATE remembers a
 * signature per item, so the next read sends only new and changed items,
 * an ACL message when only the permissions changed, and a DELETE for items
 * that left the file. A permission read (xReadPermissions, ABI 2) sends
 * each item's id and ACL only. Built as a .so against the installed SDK
 * (see Makefile and README.md).
 *
 * Streams: "items" and, when principals_path is set, "principals".
 */
#define _POSIX_C_SOURCE 200809L /* getline, strdup */

#include <ctxgate/connector.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The config, as xOpen parsed it. Owned by the handle. */
typedef struct jsonl {
    char *path;             /* the items file */
    char *principals_path;  /* the users and groups file, or NULL */
    long state_every;       /* items between checkpoints */
} jsonl;

static const char spec[] =
    "{\"title\": \"jsonl connector\", \"type\": \"object\","
    " \"properties\": {"
    "  \"path\": {\"type\": \"string\", \"description\": \"JSON-lines file of items:"
    " {id, title, body, url, updated_at_ms, allow, deny, labels}\"},"
    "  \"principals_path\": {\"type\": \"string\", \"description\": \"JSON-lines file of"
    " users {id, name, email, maps_to} and groups {id, name, members}\"},"
    "  \"state_every\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 100,"
    " \"description\": \"items between checkpoints\"}},"
    " \"required\": [\"path\"], \"additionalProperties\": false}";

/* Fill in the host's error and return code: `return fail(e, CODE, ...)`. */
static int fail(ctx_conn_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(ctx_conn_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

static const char *jsonl_spec(void) { return spec; }

static void jsonl_close(void *conn)
{
    jsonl *c = conn;
    if (!c)
        return;
    free(c->path);
    free(c->principals_path);
    free(c);
}

static int jsonl_open(const char *config_json, void **pconn, ctx_conn_error *e)
{
    static const char *const keys[] = {"path", "principals_path", "state_every", NULL};
    json_error_t jerr;
    json_t *cfg = json_loads(config_json, 0, &jerr), *v;
    const char *key;
    jsonl *c;
    int rc = CTX_CONN_OK;

    *pconn = NULL;
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return fail(e, CTX_CONN_ECONFIG, "config: expected a JSON object (%s)", jerr.text);
    }
    /* Unknown keys are errors: a typo must not silently change what is read. */
    json_object_foreach(cfg, key, v) {
        size_t i;
        for (i = 0; keys[i] && strcmp(keys[i], key); i++)
            ;
        if (!keys[i]) {
            json_decref(cfg);
            return fail(e, CTX_CONN_ECONFIG, "%s: unknown key; the jsonl connector takes"
                        " path, principals_path and state_every", key);
        }
    }
    if (!(c = calloc(1, sizeof *c))) {
        json_decref(cfg);
        return fail(e, CTX_CONN_ENOMEM, "out of memory");
    }
    v = json_object_get(cfg, "path");
    if (!json_is_string(v) || !json_string_length(v))
        rc = fail(e, CTX_CONN_ECONFIG, "path: missing; give the JSON-lines file of items");
    else if (!(c->path = strdup(json_string_value(v))))
        rc = fail(e, CTX_CONN_ENOMEM, "out of memory");
    v = json_object_get(cfg, "principals_path");
    if (!rc && v && !json_is_string(v))
        rc = fail(e, CTX_CONN_ECONFIG, "principals_path: expected a file name");
    else if (!rc && v && !(c->principals_path = strdup(json_string_value(v))))
        rc = fail(e, CTX_CONN_ENOMEM, "out of memory");
    v = json_object_get(cfg, "state_every");
    c->state_every = v ? (long)json_integer_value(v) : 100;
    if (!rc && (!v ? 0 : !json_is_integer(v) || c->state_every < 1))
        rc = fail(e, CTX_CONN_ECONFIG, "state_every: expected an integer >= 1");
    json_decref(cfg);
    if (rc) {
        jsonl_close(c);
        return rc;
    }
    *pconn = c;
    return CTX_CONN_OK;
}

/* Can the files be read? No reading of items yet. */
static int jsonl_check(void *conn, ctx_conn_error *e)
{
    jsonl *c = conn;
    const char *files[] = {c->path, c->principals_path};

    for (size_t i = 0; i < 2; i++) {
        const char *key = i ? "principals_path" : "path";
        struct stat sb;
        FILE *f;
        if (!files[i])
            continue;
        /* fopen() of a directory succeeds; reading it would not. */
        if (stat(files[i], &sb) == 0 && !S_ISREG(sb.st_mode))
            return fail(e, CTX_CONN_ESOURCE, "%s: %s is not a regular file", key, files[i]);
        if (!(f = fopen(files[i], "r")))
            return fail(e, CTX_CONN_ESOURCE, "%s: %s: %s; point it at a readable file", key,
                        files[i], strerror(errno));
        fclose(f);
    }
    return CTX_CONN_OK;
}

static int jsonl_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    jsonl *c = conn;
    int rc = jsonl_check(conn, e);

    if (rc)
        return rc;
    /* Principals first: documents then never name a group the host has not seen. */
    if ((c->principals_path && fn(arg, "principals", "{\"kind\":\"principals\"}")) ||
        fn(arg, "items", "{\"kind\":\"documents\"}"))
        return fail(e, CTX_CONN_ECANCELED, "discover stopped by the host");
    return CTX_CONN_OK;
}

/* ---- reading ---- */

/* An array of strings as the ABI wants it: pointers borrowed from the JSON. */
typedef struct strs {
    const char **v;
    size_t n;
} strs;

static int get_strs(json_t *arr, strs *out)
{
    json_t *s;
    size_t i;

    out->n = 0;
    out->v = calloc(json_array_size(arr) + 1, sizeof *out->v);
    if (!out->v)
        return CTX_CONN_ENOMEM;
    json_array_foreach(arr, i, s) {
        if (json_is_string(s))
            out->v[out->n++] = json_string_value(s);
    }
    return CTX_CONN_OK;
}

/* FNV-1a of the compact, key-sorted JSON: what makes an item "changed". */
static unsigned long long signature(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    unsigned long long h = 1469598103934665603ULL;

    for (const char *p = text ? text : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    free(text);
    return h;
}

/* What one read carries along. */
typedef struct reader {
    jsonl *c;
    const ctx_host *host;
    ctx_emitter *em;
    ctx_conn_error *e;
    json_t *old;    /* id -> signature of the last run (borrowed from the state) */
    json_t *now;    /* id -> signature; becomes the next STATE */
    json_t *seen;   /* ids met in this read */
} reader;

static int checkpoint(reader *r)
{
    json_t *state = json_pack("{s:O}", "items", r->now);
    char *text = state ? json_dumps(state, JSON_COMPACT) : NULL;
    int rc;

    json_decref(state);
    if (!text)
        return fail(r->e, CTX_CONN_ENOMEM, "out of memory");
    /* The host copies state_json during the call: ours to free after. */
    rc = r->host->xState(r->em, "items", text);
    free(text);
    return rc ? CTX_CONN_ECANCELED : CTX_CONN_OK;
}

/* One line: send it if new or changed, remember its signature. */
static int item(reader *r, json_t *obj, long lineno)
{
    const char *id = json_string_value(json_object_get(obj, "id"));
    json_t *acl_part = json_object(), *rest = json_deep_copy(obj), *meta;
    char sig[64], *meta_text = NULL;
    const char *old;
    strs allow = {0}, deny = {0}, labels = {0};
    ctx_acl acl;
    int rc = CTX_CONN_OK, has_acl;

    if (!id || !*id) {
        json_decref(acl_part);
        json_decref(rest);
        return fail(r->e, CTX_CONN_ESOURCE, "%s:%ld: \"id\": missing; every item needs a"
                    " non-empty string id", r->c->path, lineno);
    }
    /* Two signatures: content, and permissions alone (a change of only the
     * latter is an ACL message, and the item is not re-chunked). */
    for (const char *const *k = (const char *const[]){"allow", "deny", "labels", NULL}; *k; k++) {
        json_t *v = json_object_get(obj, *k);
        if (v)
            json_object_set(acl_part, *k, v);
        json_object_del(rest, *k);
    }
    snprintf(sig, sizeof sig, "%016llx:%016llx", signature(rest), signature(acl_part));
    old = json_string_value(json_object_get(r->old, id));
    json_object_set_new(r->seen, id, json_true());
    json_object_set_new(r->now, id, json_string(sig));
    if (old && !strcmp(old, sig))
        goto done; /* unchanged since the last run */

    has_acl = json_object_size(acl_part) > 0;
    if ((rc = get_strs(json_object_get(obj, "allow"), &allow)) ||
        (rc = get_strs(json_object_get(obj, "deny"), &deny)) ||
        (rc = get_strs(json_object_get(obj, "labels"), &labels))) {
        rc = fail(r->e, rc, "out of memory");
        goto done;
    }
    acl = (ctx_acl){allow.v, allow.n, deny.v, deny.n, labels.v, labels.n};
    if (!has_acl) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s:%ld: item %s has no allow list: nobody can see it",
                 r->c->path, lineno, id);
        r->host->xLog(r->em, CTX_CONN_LOG_WARN, msg);
    }
    if (old && !strncmp(old, sig, 16)) {
        /* Same content, new permissions. */
        if (r->host->xAcl(r->em, "items", id, has_acl ? &acl : NULL))
            rc = CTX_CONN_ECANCELED;
        goto done;
    }
    meta = json_object_get(obj, "metadata");
    if (json_is_object(meta) && !(meta_text = json_dumps(meta, JSON_COMPACT))) {
        rc = fail(r->e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    {
        const char *body = json_string_value(json_object_get(obj, "body"));
        ctx_record rec = {
            .stream = "items",
            .id = id,
            .title = json_string_value(json_object_get(obj, "title")),
            .url = json_string_value(json_object_get(obj, "url")),
            .body = body,
            .body_len = body ? json_string_length(json_object_get(obj, "body")) : 0,
            .metadata_json = meta_text,
            .updated_at_ms = (int64_t)json_integer_value(json_object_get(obj, "updated_at_ms")),
            .acl = has_acl ? &acl : NULL,
        };
        /* Everything in rec is borrowed by the host for this call only. */
        if (r->host->xRecord(r->em, &rec))
            rc = CTX_CONN_ECANCELED;
    }
done:
    free(meta_text);
    free(allow.v);
    free(deny.v);
    free(labels.v);
    json_decref(acl_part);
    json_decref(rest);
    return rc;
}

/* Call fn for each JSON object line of path; blank lines are skipped. */
static int each_line(const char *path, ctx_conn_error *e, int (*fn)(void *, json_t *, long),
                     void *arg)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = CTX_CONN_OK;

    if (!f)
        return fail(e, CTX_CONN_ESOURCE, "%s: %s", path, strerror(errno));
    /* One line in memory at a time, however big the file. */
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        json_error_t jerr;
        json_t *obj;
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len)
            continue;
        obj = json_loadb(line, (size_t)len, 0, &jerr);
        if (!json_is_object(obj))
            rc = fail(e, CTX_CONN_ESOURCE, "%s:%ld: expected one JSON object per line (%s)",
                      path, lineno, obj ? "not an object" : jerr.text);
        else
            rc = fn(arg, obj, lineno);
        json_decref(obj);
    }
    if (!rc && ferror(f))
        rc = fail(e, CTX_CONN_EIO, "%s: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

static int item_line(void *arg, json_t *obj, long lineno)
{
    reader *r = arg;
    int rc = item(r, obj, lineno);
    if (!rc && json_object_size(r->seen) % (size_t)r->c->state_every == 0)
        rc = checkpoint(r);
    return rc;
}

static int read_items(jsonl *c, const char *state, int full, const ctx_host *host,
                      ctx_emitter *em, ctx_conn_error *e)
{
    reader r = {c, host, em, e, NULL, json_object(), json_object()};
    json_t *st = state ? json_loads(state, 0, NULL) : NULL, *v;
    const char *id;
    int rc;

    /* A full read sends every item; the state still tells what was sent before. */
    r.old = full ? json_object() : json_incref(json_object_get(st, "items"));
    if (!json_is_object(r.old)) {
        json_decref(r.old);
        r.old = json_object();
    }
    /* Items not reached yet keep their old signature: a checkpoint in the
     * middle must not make them look deleted or new. */
    json_object_update(r.now, r.old);
    rc = each_line(c->path, e, item_line, &r);
    /* What the last run saw and this one did not has left the source. */
    json_object_foreach(full ? json_object_get(st, "items") : r.old, id, v) {
        if (rc || json_object_get(r.seen, id))
            continue;
        json_object_del(r.now, id);
        if (host->xDelete(em, "items", id))
            rc = CTX_CONN_ECANCELED;
    }
    if (!rc)
        rc = checkpoint(&r);
    json_decref(r.old);
    json_decref(r.now);
    json_decref(r.seen);
    json_decref(st);
    return rc;
}

typedef struct principal_reader {
    const ctx_host *host;
    ctx_emitter *em;
    ctx_conn_error *e;
    const char *path;
    json_t *groups;   /* {group id: true} sent in this read: the next STATE */
} principal_reader;

static int principal_line(void *arg, json_t *obj, long lineno)
{
    principal_reader *pr = arg;
    const char *id = json_string_value(json_object_get(obj, "id"));
    ctx_principal p = {0};
    strs members = {0};
    int rc;

    if (!id || (strncmp(id, "user:", 5) && strncmp(id, "group:", 6)))
        return fail(pr->e, CTX_CONN_ESOURCE, "%s:%ld: \"id\": expected \"user:<id>\" or"
                    " \"group:<id>\"", pr->path, lineno);
    p.kind = id[0] == 'u' ? CTX_PRINCIPAL_USER : CTX_PRINCIPAL_GROUP;
    p.id = id;
    p.display_name = json_string_value(json_object_get(obj, "name"));
    if (p.kind == CTX_PRINCIPAL_USER) {
        p.email = json_string_value(json_object_get(obj, "email"));
        p.maps_to = json_string_value(json_object_get(obj, "maps_to"));
    } else {
        if (get_strs(json_object_get(obj, "members"), &members))
            return fail(pr->e, CTX_CONN_ENOMEM, "out of memory");
        json_object_set_new(pr->groups, id, json_true());
        p.members = members.v;
        p.n_members = members.n;
    }
    rc = pr->host->xPrincipal(pr->em, &p) ? CTX_CONN_ECANCELED : CTX_CONN_OK;
    free(members.v);
    return rc;
}

/*
 * Every user and group each time: a group's PRINCIPAL replaces its members.
 * The state lists the groups sent; a group that left the file is sent once
 * more with no members, so what it gave its members is taken back.
 */
static int read_principals(jsonl *c, const char *state, const ctx_host *host, ctx_emitter *em,
                           ctx_conn_error *e)
{
    principal_reader pr = {host, em, e, c->principals_path, json_object()};
    json_t *old = state ? json_loads(state, 0, NULL) : NULL, *v, *next;
    const char *id;
    char *text = NULL;
    int rc = each_line(c->principals_path, e, principal_line, &pr);

    json_object_foreach(json_object_get(old, "groups"), id, v) {
        ctx_principal gone = {.kind = CTX_PRINCIPAL_GROUP, .id = id};
        if (rc || json_object_get(pr.groups, id))
            continue;
        if (host->xPrincipal(em, &gone))
            rc = CTX_CONN_ECANCELED;
    }
    next = json_pack("{s:O}", "groups", pr.groups);
    if (!rc && !(text = json_dumps(next, JSON_COMPACT)))
        rc = fail(e, CTX_CONN_ENOMEM, "out of memory");
    if (!rc && host->xState(em, "principals", text))
        rc = CTX_CONN_ECANCELED;
    free(text);
    json_decref(next);
    json_decref(pr.groups);
    json_decref(old);
    return rc;
}

static int jsonl_read(void *conn, const char *stream, const char *state, int full,
                      const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    jsonl *c = conn;

    if (!strcmp(stream, "items"))
        return read_items(c, state, full, host, em, e);
    if (!strcmp(stream, "principals") && c->principals_path)
        return read_principals(c, state, host, em, e);
    return fail(e, CTX_CONN_EINVAL, "no stream \"%s\"; this connector reads \"items\"%s",
                stream, c->principals_path ? " and \"principals\"" : "");
}

/* What a permission read carries along. */
typedef struct perm_reader {
    jsonl *c;
    const ctx_host *host;
    ctx_emitter *em;
    ctx_conn_error *e;
    long since;     /* items since the last checkpoint */
} perm_reader;

static int perm_checkpoint(perm_reader *r)
{
    r->since = 0;
    /* Only a commit point: the host keeps the content read's state. */
    return r->host->xState(r->em, "items", "{\"permissions\":true}") ? CTX_CONN_ECANCELED
                                                                     : CTX_CONN_OK;
}

/* One line of a permission read: its id and ACL, changed or not. */
static int perm_line(void *arg, json_t *obj, long lineno)
{
    perm_reader *r = arg;
    const char *id = json_string_value(json_object_get(obj, "id"));
    strs allow = {0}, deny = {0}, labels = {0};
    ctx_acl acl;
    int rc;

    if (!id || !*id)
        return fail(r->e, CTX_CONN_ESOURCE, "%s:%ld: \"id\": missing; every item needs a"
                    " non-empty string id", r->c->path, lineno);
    if (get_strs(json_object_get(obj, "allow"), &allow) ||
        get_strs(json_object_get(obj, "deny"), &deny) ||
        get_strs(json_object_get(obj, "labels"), &labels)) {
        rc = fail(r->e, CTX_CONN_ENOMEM, "out of memory");
    } else {
        int has_acl = json_object_get(obj, "allow") || json_object_get(obj, "deny") ||
                      json_object_get(obj, "labels");
        acl = (ctx_acl){allow.v, allow.n, deny.v, deny.n, labels.v, labels.n};
        rc = r->host->xAcl(r->em, "items", id, has_acl ? &acl : NULL) ? CTX_CONN_ECANCELED
                                                                     : CTX_CONN_OK;
    }
    free(allow.v);
    free(deny.v);
    free(labels.v);
    if (!rc && ++r->since >= r->c->state_every)
        rc = perm_checkpoint(r);
    return rc;
}

/*
 * jsonl_read_permissions - every item's id and ACL, no bodies: the host
 * re-labels what changed and deletes the items that got no ACL. Users and
 * groups are read as xRead reads them.
 */
static int jsonl_read_permissions(void *conn, const char *stream, const char *state,
                                  const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    jsonl *c = conn;
    perm_reader r = {c, host, em, e, 0};
    int rc;

    (void)state; /* the file is cheap to read again from the top */
    if (strcmp(stream, "items"))
        return jsonl_read(conn, stream, NULL, 0, host, em, e);
    rc = each_line(c->path, e, perm_line, &r);
    return rc ? rc : perm_checkpoint(&r);
}

static const ctx_connector jsonl_connector = {
    .abi_version = CTX_CONNECTOR_ABI_VERSION,
    .struct_size = sizeof(ctx_connector),
    .name = "jsonl",
    .version = "1.0.0",
    .xSpec = jsonl_spec,
    .xOpen = jsonl_open,
    .xCheck = jsonl_check,
    .xDiscover = jsonl_discover,
    .xRead = jsonl_read,
    .xClose = jsonl_close,
    /* ---- version 2 ---- */
    .xReadPermissions = jsonl_read_permissions,
};

/* The one exported symbol; everything else is hidden (-fvisibility=hidden). */
CTX_CONNECTOR_EXPORT const ctx_connector *ctx_connector_entry(void)
{
    return &jsonl_connector;
}
