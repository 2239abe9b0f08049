/*
 * scim.c - the /scim/v2 endpoints of `ctxgate serve` (see scim.h): the
 * token check, routing, validation of Users and Groups, their mapping to
 * principal names, filters, pagination and SCIM errors. PATCH is in
 * scim_patch.c, storage and the principal facts in indexer/store_scim.c.
 */
#include "scim.h"

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../connectors/scim/scim.h"
#include "../core/json.h"
#include "../core/util.h"
#include "../indexer/store_scim.h"

#define ERROR_URN "urn:ietf:params:scim:api:messages:2.0:Error"
#define LIST_URN "urn:ietf:params:scim:api:messages:2.0:ListResponse"
#define MAX_RESULTS 200

struct scim {
    pthread_mutex_t mu;     /* one request at a time on st: a PATCH reads then writes */
    ctx_store *st;
    int64_t source;
    const ctx_source_cfg *src;
    scim_cfg cfg;
    int have_token;
    unsigned char token_sha[SHA256_DIGEST_LENGTH];
};

/* ---- set-up ---- */

/* load_token - the source's own token (token_env, else token_file), as its SHA-256. */
static int load_token(scim *s, ctx_error *err)
{
    const char *env = s->cfg.token_env ? getenv(s->cfg.token_env) : NULL;
    char *text = NULL;
    size_t len = 0;
    const char *key = "token_env";

    if (env && *env) {
        if (!(text = ctx_strdup(env)))
            return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
        len = strlen(text);
    } else if (s->cfg.token_file) {
        key = "token_file";
        if (ctx_read_file(s->cfg.token_file, &text, &len))
            return ctx_error_set(err, CTX_ECONFIG, "sources[%zu].token_file: cannot read %s;"
                                 " fix the path or unset the key", s->src->index,
                                 s->cfg.token_file);
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            text[--len] = '\0';
    } else if (s->cfg.token_env) {
        return ctx_error_set(err, CTX_ECONFIG, "sources[%zu].token_env: %s is not set; export"
                             " the SCIM token in it (32 random bytes or more)",
                             s->src->index, s->cfg.token_env);
    } else {
        return CTX_OK;
    }
    if (len < 32) {
        ctx_wipe_free(text);
        return ctx_error_set(err, CTX_ECONFIG, "sources[%zu].%s: the SCIM token is %zu bytes;"
                             " use at least 32 random bytes (e.g. openssl rand -hex 32)",
                             s->src->index, key, len);
    }
    SHA256((const unsigned char *)text, len, s->token_sha);
    s->have_token = 1;
    ctx_wipe_free(text);
    return CTX_OK;
}

int scim_open(const ctx_config *cfg, const char *store_path, scim **out, ctx_error *err)
{
    const ctx_source_cfg *src = NULL;
    scim *s;
    int rc;

    *out = NULL;
    for (size_t i = 0; i < cfg->nsources; i++) {
        if (strcmp(cfg->sources[i].type, "scim"))
            continue;
        if (src)
            return ctx_error_set(err, CTX_ECONFIG, "sources[%zu]: a second source of type"
                                 " \"scim\" (sources[%zu] is one); SCIM feeds one directory",
                                 i, src->index);
        src = &cfg->sources[i];
    }
    if (!src)
        return CTX_OK;
    /* In cluster mode each replica has a store of its own: a deactivation
     * one replica took would not reach the others. Fail closed until the
     * directory lives in PostgreSQL. */
    if (cfg->cluster.conninfo && *cfg->cluster.conninfo)
        return ctx_error_set(err, CTX_ECONFIG, "sources[%zu]: a source of type \"scim\" in"
                             " cluster mode (cluster.conninfo is set): provisioning would"
                             " reach one replica's store only; serve SCIM from an embedded"
                             " ctxgate, or leave this source out of the cluster's config",
                             src->index);
    if (!(s = ctx_calloc(1, sizeof *s)))
        return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
    s->src = src;
    if ((rc = scim_cfg_parse(src->conn, &s->cfg, err))) {
        ctx_error_prefix(err, "sources[%zu].", src->index);
        ctx_free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    if ((rc = load_token(s, err)) || (rc = store_open(store_path, 0, &s->st, err)) ||
        (rc = store_source(s->st, src->name, "scim", &s->source, err))) {
        scim_close(s);
        return rc;
    }
    if (!src->directory)
        ctx_log(CTX_LOG_WARN, "scim", "sources[%zu] (%s) is not \"directory\": true; its users"
                " and groups govern only the sources naming it in principals_from",
                src->index, src->name);
    *out = s;
    return CTX_OK;
}

void scim_close(scim *s)
{
    if (!s)
        return;
    store_close(s->st);
    ctx_opts_free(scim_opts, &s->cfg);
    pthread_mutex_destroy(&s->mu);
    ctx_free(s);
}

/* ---- answers ---- */

static void answer(http_resp *resp, int status, json_t *o)
{
    http_json(resp, status, o);
    resp->content_type = "application/scim+json";
}

__attribute__((format(printf, 4, 5)))
static void fail(http_resp *resp, int status, const char *type, const char *fmt, ...)
{
    char detail[CTX_ERRMSG_MAX];
    char code[8];
    json_t *o;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(code, sizeof code, "%d", status);
    o = json_pack("{s:[s],s:s,s:s}", "schemas", ERROR_URN, "status", code, "detail", detail);
    if (o && type)
        json_object_set_new(o, "scimType", json_string(type));
    answer(resp, status, o);
}

static const char *kind_name(int kind) { return kind == CTX_PRINCIPAL_USER ? "User" : "Group"; }

/* iso - ms since the epoch as an RFC 3339 UTC time. */
static void iso(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

typedef struct members_ctx {
    json_t *arr;
    const char *base;
} members_ctx;

static int add_member(void *arg, const char *id, const char *name, int kind)
{
    members_ctx *m = arg;
    char ref[1024];
    snprintf(ref, sizeof ref, "%s/scim/v2/%ss/%s", m->base, kind_name(kind), id);
    json_array_append_new(m->arr, json_pack("{s:s,s:s,s:s,s:s}", "value", id, "display", name,
                                            "type", kind_name(kind), "$ref", ref));
    return 0;
}

/*
 * render - the resource as served (new): the stored body with id, meta and,
 * for a group unless without_members, its members. NULL when out of memory
 * or the store failed (err).
 */
static json_t *render(scim *s, const char *base, const store_scim_row *row,
                      int without_members, ctx_error *err)
{
    json_t *o = ctx_json_loads(row->body, 0, NULL);
    char created[40], modified[40], loc[1024], ver[40];

    if (!json_is_object(o)) {
        json_decref(o);
        ctx_error_set(err, CTX_EINTERNAL, "scim: stored %s %s is not a JSON object",
                      kind_name(row->kind), row->id);
        return NULL;
    }
    iso(row->created_at, created, sizeof created);
    iso(row->modified_at, modified, sizeof modified);
    snprintf(loc, sizeof loc, "%s/scim/v2/%ss/%s", base, kind_name(row->kind), row->id);
    snprintf(ver, sizeof ver, "W/\"%lld\"", (long long)row->version);
    json_object_set_new(o, "id", json_string(row->id));
    json_object_set_new(o, "meta", json_pack("{s:s,s:s,s:s,s:s,s:s}", "resourceType",
                                             kind_name(row->kind), "created", created,
                                             "lastModified", modified, "location", loc,
                                             "version", ver));
    if (row->kind == CTX_PRINCIPAL_GROUP && !without_members) {
        members_ctx m = {json_array(), base};
        json_object_set_new(o, "members", m.arr);
        if (store_scim_members(s->st, s->source, row->id, add_member, &m, err)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* ---- validation and mapping ---- */

/* A resource checked and mapped, ready for store_scim_put. */
typedef struct checked {
    store_scim_res r;
    char *body;             /* new */
    char *principal;        /* new */
    char *aliases[3];       /* new */
    const char **mv;        /* new array of borrowed strings (into the JSON) */
    json_t *doc;            /* the cleaned resource (new reference) */
} checked;

static void checked_free(checked *c)
{
    ctx_free(c->body);
    ctx_free(c->principal);
    for (size_t i = 0; i < 3; i++)
        ctx_free(c->aliases[i]);
    ctx_free(c->mv);
    json_decref(c->doc);
}

/* primary_email - the primary email's value, else the first one's; borrowed. */
static const char *primary_email(const json_t *o)
{
    json_t *emails = scim__get(o, "emails", NULL), *e;
    const char *first = NULL;
    size_t i;
    json_array_foreach(emails, i, e) {
        const char *v = json_string_value(scim__get(e, "value", NULL));
        if (v && *v && json_is_true(scim__get(e, "primary", NULL)))
            return v;
        if (v && *v && !first)
            first = v;
    }
    return first;
}

/* user_attr - the value of a mapping attribute of user o (borrowed), or NULL. */
static const char *user_attr(const json_t *o, const char *attr)
{
    if (!strcmp(attr, "email"))
        return primary_email(o);
    return json_string_value(scim__get(o, attr, NULL));
}

/* check_schemas - o lists its core schema and only schemas this service knows. */
static int check_schemas(const json_t *o, const char *core, int kind, scim_fail *f,
                         ctx_error *err)
{
    json_t *a = scim__get(o, "schemas", NULL), *v;
    int have = 0;
    size_t i;

    f->status = 400;
    f->type = "invalidValue";
    if (!json_is_array(a))
        return ctx_error_set(err, CTX_EINVAL, "schemas: missing; list \"%s\"", core);
    json_array_foreach(a, i, v) {
        const char *u = json_string_value(v);
        if (u && !strcasecmp(u, core))
            have = 1;
        else if (!u || !(kind == CTX_PRINCIPAL_USER && !strcasecmp(u, SCIM_ENTERPRISE_URN)))
            return ctx_error_set(err, CTX_EINVAL, "schemas[%zu]: unknown schema \"%s\"; this"
                                 " service knows %s%s", i, u ? u : "(not a string)", core,
                                 kind == CTX_PRINCIPAL_USER ? " and " SCIM_ENTERPRISE_URN
                                                            : "");
    }
    if (!have)
        return ctx_error_set(err, CTX_EINVAL, "schemas: must list \"%s\"", core);
    return CTX_OK;
}

/*
 * check - validate resource o (borrowed; the member ids in c point into it,
 * so it outlives c) of kind for id and map it to its principal, into c
 * (checked_free it whatever the result).
 */
static int check(scim *s, int kind, const char *id, const json_t *o, checked *c, scim_fail *f,
                 ctx_error *err)
{
    const char *core = kind == CTX_PRINCIPAL_USER ? SCIM_USER_URN : SCIM_GROUP_URN;
    const char *name_key = kind == CTX_PRINCIPAL_USER ? "userName" : "displayName";
    const char *name, *ext, *pv, *attr;
    json_t *doc, *v;
    ctx_buf b = CTX_BUF_INIT;
    int rc;

    memset(c, 0, sizeof *c);
    f->status = 400;
    f->type = "invalidValue";
    if (!json_is_object(o)) {
        f->type = "invalidSyntax";
        return ctx_error_set(err, CTX_EINVAL, "the body must be a JSON object (a %s)",
                             kind_name(kind));
    }
    if ((rc = check_schemas(o, core, kind, f, err)))
        return rc;
    c->doc = doc = json_deep_copy(o);
    /* Server-set or write-only: never stored, never served back. */
    {
        static const char *const drop[] = {"id", "meta", "members", "groups", "password", NULL};
        for (const char *const *k = drop; *k; k++) {
            const char *real;
            if (scim__get(doc, *k, &real))
                json_object_del(doc, real);
        }
    }
    name = json_string_value(scim__get(doc, name_key, NULL));
    if (!name || !*name)
        return ctx_error_set(err, CTX_EINVAL, "%s: missing; a %s needs a non-empty %s",
                             name_key, kind_name(kind), name_key);
    v = scim__get(doc, "externalId", NULL);
    if (v && !json_is_string(v) && !json_is_null(v))
        return ctx_error_set(err, CTX_EINVAL, "externalId: expected a string");
    ext = json_string_value(v);
    c->r.id = id;
    c->r.kind = kind;
    c->r.name = name;
    c->r.external_id = ext;
    c->r.active = 1;
    if (kind == CTX_PRINCIPAL_USER) {
        const char *real;
        v = scim__get(doc, "active", &real);
        /* Entra ID has sent "True" and "False" as strings. */
        if (json_is_string(v) && (!strcasecmp(json_string_value(v), "true") ||
                                  !strcasecmp(json_string_value(v), "false")))
            json_object_set_new(doc, real, json_boolean(!strcasecmp(json_string_value(v),
                                                                     "true")));
        v = scim__get(doc, "active", NULL);
        if (v && !json_is_boolean(v))
            return ctx_error_set(err, CTX_EINVAL, "active: expected true or false");
        c->r.active = !v || json_is_true(v);
        attr = s->cfg.user_principal;
        pv = user_attr(doc, attr);
        c->r.display = json_string_value(scim__get(doc, "displayName", NULL));
        c->r.email = primary_email(doc);
    } else {
        attr = s->cfg.group_principal;
        pv = !strcmp(attr, "id") ? id : json_string_value(scim__get(doc, attr, NULL));
        c->r.display = name;
    }
    if (!pv || !*pv)
        return ctx_error_set(err, CTX_EINVAL, "%s: missing; this service names the %s's"
                             " principal after it (sources[%zu].%s_principal)",
                             !strcmp(attr, "email") ? "emails" : attr, kind_name(kind),
                             s->src->index, kind == CTX_PRINCIPAL_USER ? "user" : "group");
    if (ctx_buf_printf(&b, "%s:%s", kind == CTX_PRINCIPAL_USER ? "user" : "group", pv))
        return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
    c->r.principal = c->principal = ctx_buf_steal(&b);
    if (kind == CTX_PRINCIPAL_USER) {
        for (size_t i = 0; i < s->cfg.user_aliases.n && c->r.naliases < 3; i++) {
            const char *av = user_attr(doc, s->cfg.user_aliases.v[i]);
            ctx_buf a = CTX_BUF_INIT;
            if (!av || !*av)
                continue;
            if (ctx_buf_printf(&a, "user:%s", av))
                return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
            c->aliases[c->r.naliases++] = ctx_buf_steal(&a);
        }
        c->r.aliases = (const char *const *)c->aliases;
    } else {
        json_t *m = scim__get(o, "members", NULL), *e;
        size_t i;
        if (m && !json_is_array(m) && !json_is_null(m))
            return ctx_error_set(err, CTX_EINVAL, "members: expected an array of"
                                 " {\"value\": id}");
        if (!(c->mv = ctx_calloc(json_array_size(m) + 1, sizeof *c->mv)))
            return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
        json_array_foreach(m, i, e) {
            const char *mid = json_string_value(scim__get(e, "value", NULL));
            if (!mid || !*mid)
                return ctx_error_set(err, CTX_EINVAL, "members[%zu].value: expected the id"
                                     " of a User or Group", i);
            c->mv[c->r.nmembers++] = mid;
        }
        c->r.members = c->mv;
    }
    if (!(c->body = ctx_json_text(doc, JSON_COMPACT)))
        return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
    c->r.body = c->body;
    return CTX_OK;
}

/* ---- Users and Groups ---- */

static const char *query(const http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* new_id - a random UUID (version 4) as text into out (37 bytes). */
static int new_id(char out[37])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return -1;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
             r[13], r[14], r[15]);
    return 0;
}

/* parse_body - the request's JSON (new), or NULL with resp answered. */
static json_t *parse_body(const http_req *req, http_resp *resp)
{
    json_error_t je;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        fail(resp, 400, "invalidSyntax", "the body is not JSON: %s (line %d, column %d)",
             je.text, je.line, je.column);
    return o;
}

/* store_fail - answer a refusal of the store (or of check, f set). */
static void store_fail(http_resp *resp, int rc, int why, const scim_fail *f,
                       const ctx_error *err)
{
    if (rc == CTX_ENOTFOUND)
        fail(resp, 404, NULL, "%s", err->text);
    else if (rc == CTX_EINVAL && why == STORE_SCIM_CONFLICT)
        fail(resp, 409, "uniqueness", "%s", err->text);
    else if (rc == CTX_EINVAL && why == STORE_SCIM_BAD_MEMBER)
        fail(resp, 400, "invalidValue", "%s", err->text);
    else if (rc == CTX_EINVAL && f && f->status)
        fail(resp, f->status, f->type, "%s", err->text);
    else {
        ctx_log(CTX_LOG_ERROR, "scim", "%s", err->text);
        fail(resp, 500, NULL, "the request failed inside the service; see its log");
    }
}

/* served - answer status with resource id of kind as stored now. */
static void served(scim *s, const char *base, int kind, const char *id, int status,
                   http_resp *resp)
{
    store_scim_row row;
    ctx_error err;
    json_t *o;

    if (store_scim_get(s->st, s->source, kind, id, &row, &err) ||
        !(o = render(s, base, &row, 0, &err))) {
        if (row.id)
            store_scim_row_free(&row);
        store_fail(resp, err.code, 0, NULL, &err);
        return;
    }
    if (status == 201) {
        snprintf(resp->header_name, sizeof resp->header_name, "Location");
        json_t *loc = json_object_get(json_object_get(o, "meta"), "location");
        snprintf(resp->header_value, sizeof resp->header_value, "%s", json_string_value(loc));
    }
    store_scim_row_free(&row);
    answer(resp, status, o);
}

/* save - check o as resource id of kind and store it (create or replace). */
static void save(scim *s, const char *base, int kind, const char *id, const json_t *o,
                  int create, http_resp *resp)
{
    scim_fail f = {0, NULL};
    checked c;
    ctx_error err;
    int rc, why = 0;

    rc = check(s, kind, id, o, &c, &f, &err);
    if (!rc)
        rc = store_scim_put(s->st, s->source, &c.r, create, &why, &err);
    if (!rc)
        /* The record of who the directory made whom: deactivations above all. */
        ctx_log(CTX_LOG_INFO, "scim", "%s %s %s: %s%s", create ? "created" : "replaced",
                kind_name(kind), id, c.r.principal, c.r.active ? "" : " (inactive: blocked)");
    checked_free(&c);
    if (rc)
        store_fail(resp, rc, why, &f, &err);
    else
        served(s, base, kind, id, create ? 201 : 200, resp);
}

static void do_patch(scim *s, const char *base, int kind, const char *id, const json_t *patch,
                     http_resp *resp)
{
    store_scim_row row;
    scim_fail f = {0, NULL};
    ctx_error err;
    json_t *cur;

    if (store_scim_get(s->st, s->source, kind, id, &row, &err)) {
        store_fail(resp, err.code, 0, NULL, &err);
        return;
    }
    cur = render(s, base, &row, 0, &err);
    store_scim_row_free(&row);
    if (!cur) {
        store_fail(resp, err.code, 0, NULL, &err);
        return;
    }
    if (scim__patch(cur, patch, kind == CTX_PRINCIPAL_USER ? SCIM_USER_URN : SCIM_GROUP_URN,
                    &f, &err))
        store_fail(resp, CTX_EINVAL, 0, &f, &err);
    else
        save(s, base, kind, id, cur, 0, resp);
    json_decref(cur);
}

/*
 * list_filter - `attribute eq "value"` on one of the attributes this
 * service filters by: *attr a store_scim_list attribute (static), *value
 * new. -1 when filter is not of that form.
 */
static int list_filter(const char *filter, int kind, const char **attr, char **value)
{
    const char *p = filter, *a;
    char name[64];
    json_t *v;

    while (*p == ' ')
        p++;
    a = p;
    for (int depth = 0; *a && (*a != ' ' || depth > 0); a++)
        depth += (*a == '[') - (*a == ']');
    if (a == p || (size_t)(a - p) >= sizeof name || strncasecmp(a, " eq ", 4))
        return -1;
    snprintf(name, sizeof name, "%.*s", (int)(a - p), p);
    if (!strcasecmp(name, kind == CTX_PRINCIPAL_USER ? "userName" : "displayName"))
        *attr = "name";
    else if (!strcasecmp(name, "externalId"))
        *attr = "externalId";
    else if (!strcasecmp(name, "id"))
        *attr = "id";
    else if (kind == CTX_PRINCIPAL_USER &&
             (!strcasecmp(name, "emails.value") ||
              !strcasecmp(name, "emails[type eq \"work\"].value")))
        *attr = "email";    /* Entra ID matches on the work email (the type is not checked) */
    else
        return -1;
    for (p = a + 4; *p == ' '; p++)
        ;
    v = json_loads(p, JSON_DECODE_ANY, NULL);
    if (!json_is_string(v)) {
        json_decref(v);
        return -1;
    }
    *value = ctx_strdup(json_string_value(v));
    json_decref(v);
    return *value ? 0 : -1;
}

/* int_arg - the query argument name as an integer (def when absent); -1 if not one. */
static int int_arg(const http_req *req, const char *name, int64_t def, int64_t *out)
{
    const char *v = query(req, name);
    char *end;
    long long n;
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    n = strtoll(v, &end, 10);
    if (*end)
        return -1;
    *out = n;
    return 0;
}

typedef struct list_ctx {
    scim *s;
    const char *base;
    json_t *arr;
    int without_members;
    ctx_error *err;
} list_ctx;

static int list_one(void *arg, const store_scim_row *row)
{
    list_ctx *l = arg;
    json_t *o = render(l->s, l->base, row, l->without_members, l->err);
    if (!o)
        return l->err->code ? l->err->code : CTX_ENOMEM;
    json_array_append_new(l->arr, o);
    return 0;
}

static void do_list(scim *s, const char *base, int kind, const http_req *req, http_resp *resp)
{
    const char *filter = query(req, "filter"), *attr = NULL, *ex = query(req, "excludedAttributes");
    char *value = NULL;
    int64_t start, count, total = 0;
    list_ctx l = {s, base, NULL, 0, NULL};
    ctx_error err;
    int rc;

    if (filter && *filter && list_filter(filter, kind, &attr, &value)) {
        fail(resp, 400, "invalidFilter", "filter: \"%s\" is not supported; use %s eq \"...\","
             " externalId eq \"...\" or id eq \"...\"", filter,
             kind == CTX_PRINCIPAL_USER ? "userName" : "displayName");
        return;
    }
    if (int_arg(req, "startIndex", 1, &start) || int_arg(req, "count", 100, &count)) {
        ctx_free(value);
        fail(resp, 400, "invalidValue", "startIndex and count must be integers");
        return;
    }
    if (start < 1)
        start = 1;
    if (count < 0)
        count = 0;
    if (count > MAX_RESULTS)
        count = MAX_RESULTS;
    l.without_members = ex && strcasestr(ex, "members") != NULL;
    l.arr = json_array();
    l.err = &err;
    err.code = 0;
    rc = store_scim_list(s->st, s->source, kind, attr, value, start, count, list_one, &l,
                         &total, &err);
    ctx_free(value);
    if (rc) {
        json_decref(l.arr);
        store_fail(resp, rc, 0, NULL, &err);
        return;
    }
    answer(resp, 200, json_pack("{s:[s],s:I,s:I,s:I,s:o}", "schemas", LIST_URN,
                                "totalResults", (json_int_t)total, "startIndex",
                                (json_int_t)start, "itemsPerPage",
                                (json_int_t)json_array_size(l.arr), "Resources", l.arr));
}

/* resources - /Users[/id] and /Groups[/id] (rest: what follows the type). */
static void resources(scim *s, const char *base, int kind, const char *rest,
                      const http_req *req, http_resp *resp)
{
    const char *m = req->method;
    json_t *body = NULL;
    char id[37];
    ctx_error err;

    if (!*rest) {
        if (!strcmp(m, "GET")) {
            do_list(s, base, kind, req, resp);
        } else if (!strcmp(m, "POST")) {
            if (!(body = parse_body(req, resp)))
                return;
            if (new_id(id))
                fail(resp, 500, NULL, "no random bytes for an id");
            else
                save(s, base, kind, id, body, 1, resp);
        } else {
            fail(resp, 405, NULL, "%ss: use GET (list) or POST (create)", kind_name(kind));
        }
        json_decref(body);
        return;
    }
    rest++;     /* the '/' */
    if (!*rest || strchr(rest, '/')) {
        fail(resp, 404, NULL, "no such resource");
        return;
    }
    if (!strcmp(m, "GET")) {
        served(s, base, kind, rest, 200, resp);
    } else if (!strcmp(m, "DELETE")) {
        if (store_scim_delete(s->st, s->source, kind, rest, &err)) {
            store_fail(resp, err.code, 0, NULL, &err);
        } else {
            ctx_log(CTX_LOG_INFO, "scim", "deleted %s %s", kind_name(kind), rest);
            resp->status = 204;
        }
    } else if (!strcmp(m, "PUT") || !strcmp(m, "PATCH")) {
        if (!(body = parse_body(req, resp)))
            return;
        if (!strcmp(m, "PUT"))
            save(s, base, kind, rest, body, 0, resp);
        else
            do_patch(s, base, kind, rest, body, resp);
        json_decref(body);
    } else {
        fail(resp, 405, NULL, "%ss/{id}: use GET, PUT, PATCH or DELETE", kind_name(kind));
    }
}

/* ---- discovery (RFC 7644 section 4) ---- */

static json_t *attr_def(const char *name, const char *type, int multi, int required,
                        const char *uniqueness)
{
    return json_pack("{s:s,s:s,s:b,s:b,s:b,s:s,s:s,s:s}", "name", name, "type", type,
                     "multiValued", multi, "required", required, "caseExact", 0,
                     "mutability", "readWrite", "returned", "default", "uniqueness",
                     uniqueness);
}

static json_t *schema_def(const char *base, int kind)
{
    char loc[1024];
    json_t *attrs = json_array();
    const char *urn = kind == CTX_PRINCIPAL_USER ? SCIM_USER_URN : SCIM_GROUP_URN;

    snprintf(loc, sizeof loc, "%s/scim/v2/Schemas/%s", base, urn);
    if (kind == CTX_PRINCIPAL_USER) {
        json_array_append_new(attrs, attr_def("userName", "string", 0, 1, "server"));
        json_array_append_new(attrs, attr_def("name", "complex", 0, 0, "none"));
        json_array_append_new(attrs, attr_def("displayName", "string", 0, 0, "none"));
        json_array_append_new(attrs, attr_def("emails", "complex", 1, 0, "none"));
        json_array_append_new(attrs, attr_def("active", "boolean", 0, 0, "none"));
        json_array_append_new(attrs, attr_def("externalId", "string", 0, 0, "none"));
    } else {
        json_array_append_new(attrs, attr_def("displayName", "string", 0, 1, "server"));
        json_array_append_new(attrs, attr_def("members", "complex", 1, 0, "none"));
        json_array_append_new(attrs, attr_def("externalId", "string", 0, 0, "none"));
    }
    return json_pack("{s:[s],s:s,s:s,s:o,s:{s:s,s:s}}", "schemas",
                     "urn:ietf:params:scim:schemas:core:2.0:Schema", "id", urn, "name",
                     kind_name(kind), "attributes", attrs, "meta", "resourceType", "Schema",
                     "location", loc);
}

static json_t *type_def(const char *base, int kind)
{
    char loc[1024], ep[16];
    json_t *o;

    snprintf(loc, sizeof loc, "%s/scim/v2/ResourceTypes/%s", base, kind_name(kind));
    snprintf(ep, sizeof ep, "/%ss", kind_name(kind));
    o = json_pack("{s:[s],s:s,s:s,s:s,s:s,s:{s:s,s:s}}", "schemas",
                  "urn:ietf:params:scim:schemas:core:2.0:ResourceType", "id", kind_name(kind),
                  "name", kind_name(kind), "endpoint", ep, "schema",
                  kind == CTX_PRINCIPAL_USER ? SCIM_USER_URN : SCIM_GROUP_URN, "meta",
                  "resourceType", "ResourceType", "location", loc);
    if (o && kind == CTX_PRINCIPAL_USER)
        json_object_set_new(o, "schemaExtensions",
                            json_pack("[{s:s,s:b}]", "schema", SCIM_ENTERPRISE_URN,
                                      "required", 0));
    return o;
}

static json_t *list_of(json_t *a, json_t *b)
{
    return json_pack("{s:[s],s:i,s:i,s:i,s:[o,o]}", "schemas", LIST_URN, "totalResults", 2,
                     "startIndex", 1, "itemsPerPage", 2, "Resources", a, b);
}

static void discovery(const char *base, const char *p, http_resp *resp)
{
    char loc[1024];

    if (!strcmp(p, "/ServiceProviderConfig")) {
        snprintf(loc, sizeof loc, "%s/scim/v2/ServiceProviderConfig", base);
        answer(resp, 200, json_pack(
            "{s:[s],s:{s:b},s:{s:b,s:i,s:i},s:{s:b,s:i},s:{s:b},s:{s:b},s:{s:b},"
            "s:[{s:s,s:s,s:s,s:b}],s:{s:s,s:s}}",
            "schemas", "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
            "patch", "supported", 1, "bulk", "supported", 0, "maxOperations", 0,
            "maxPayloadSize", 0, "filter", "supported", 1, "maxResults", MAX_RESULTS,
            "changePassword", "supported", 0, "sort", "supported", 0, "etag", "supported", 0,
            "authenticationSchemes", "type", "oauthbearertoken", "name", "Bearer token",
            "description", "the SCIM token of the scim source (or the serve admin token)",
            "primary", 1, "meta", "resourceType", "ServiceProviderConfig", "location", loc));
    } else if (!strcmp(p, "/ResourceTypes")) {
        answer(resp, 200, list_of(type_def(base, CTX_PRINCIPAL_USER),
                                  type_def(base, CTX_PRINCIPAL_GROUP)));
    } else if (!strcmp(p, "/ResourceTypes/User") || !strcmp(p, "/ResourceTypes/Group")) {
        answer(resp, 200, type_def(base, p[15] == 'U' ? CTX_PRINCIPAL_USER
                                                      : CTX_PRINCIPAL_GROUP));
    } else if (!strcmp(p, "/Schemas")) {
        answer(resp, 200, list_of(schema_def(base, CTX_PRINCIPAL_USER),
                                  schema_def(base, CTX_PRINCIPAL_GROUP)));
    } else if (!strcmp(p, "/Schemas/" SCIM_USER_URN)) {
        answer(resp, 200, schema_def(base, CTX_PRINCIPAL_USER));
    } else if (!strcmp(p, "/Schemas/" SCIM_GROUP_URN)) {
        answer(resp, 200, schema_def(base, CTX_PRINCIPAL_GROUP));
    } else {
        fail(resp, 404, NULL, "no such endpoint under /scim/v2: see /scim/v2/ResourceTypes");
    }
}

/* ---- the door ---- */

static int token_ok(const scim *s, const http_req *req, int admin)
{
    const char *h = http_header(req, "Authorization");
    unsigned char got[SHA256_DIGEST_LENGTH];

    if (!s->have_token)
        return admin;
    if (!h || strncasecmp(h, "Bearer ", 7))
        return 0;
    SHA256((const unsigned char *)h + 7, strlen(h + 7), got);
    return CRYPTO_memcmp(got, s->token_sha, sizeof got) == 0;
}

void scim_handle(scim *s, const char *base, const http_req *req, int admin, http_resp *resp)
{
    const char *p = req->path + strlen("/scim/v2");

    if (!s) {
        fail(resp, 404, NULL, "SCIM is off: configure a source of \"type\": \"scim\"");
        return;
    }
    if (!token_ok(s, req, admin)) {
        fail(resp, 401, NULL, s->have_token ? "send Authorization: Bearer <the SCIM token>"
                                            : "send Authorization: Bearer <the serve admin"
                                              " token> (or set a token_env on the scim"
                                              " source)");
        snprintf(resp->header_name, sizeof resp->header_name, "WWW-Authenticate");
        snprintf(resp->header_value, sizeof resp->header_value, "Bearer realm=\"scim\"");
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (!strncmp(p, "/Users", 6) && (!p[6] || p[6] == '/'))
        resources(s, base, CTX_PRINCIPAL_USER, p + 6, req, resp);
    else if (!strncmp(p, "/Groups", 7) && (!p[7] || p[7] == '/'))
        resources(s, base, CTX_PRINCIPAL_GROUP, p + 7, req, resp);
    else if (strcmp(req->method, "GET"))
        fail(resp, 405, NULL, "%s is read-only: use GET", p);
    else
        discovery(base, p, resp);
    pthread_mutex_unlock(&s->mu);
    if (!resp->content_type)
        resp->content_type = "application/scim+json";
}
