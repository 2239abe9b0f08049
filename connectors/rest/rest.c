/*
 * rest.c - the SaaS REST connector (libcurl + jansson). Each configured
 * stream is one JSON list endpoint, mapped declaratively onto records,
 * principals (users, groups) and deletes, paged by page number, offset,
 * a cursor token in the body or a Link header, read incrementally by an
 * (updated_at, id) cursor. All streams of a source share one HTTP handle,
 * one credential and so one rate budget.
 *
 * Streams: one per streams[] entry, in the configured order.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../core/opts.h"
#include "../../core/retry.h"
#include "../../core/util.h"
#include "../registry.h"
#include "../sdk/ctxgate/connector.h"
#include "../../core/json.h"

/* ---- configuration ---- */

typedef struct rest_stream_cfg {
    char *name, *kind, *endpoint, *records;
    json_t *params;
    char *id, *title;
    ctx_strlist body;
    char *url, *url_template, *updated_at, *since_param;
    char *allow_users, *allow_groups, *deny_users, *deny_groups, *labels;
    int allow_everyone;
    char *permissions_endpoint, *permissions_users, *permissions_groups;
    char *deleted_endpoint, *deleted_records, *deleted_id, *deleted_at;
    char *pagination, *page_param, *offset_param, *limit_param, *cursor_param, *cursor_path;
    int64_t page_size, start_page, lookback_seconds;
    char *email, *display_name, *members, *member_groups;
} rest_stream_cfg;

typedef struct rest_auth_cfg {
    char *type, *secret_env, *secret_file, *header, *username, *client_id, *token_url,
        *scope;
} rest_auth_cfg;

typedef struct rest_cfg {
    char *base_url, *ca_file;
    json_t *auth;
    int64_t connect_timeout, timeout, retries, backoff_ms, max_backoff_ms, max_retry_after;
    int64_t requests_per_second, max_page_bytes;
    ctx_objlist streams;   /* of rest_stream_cfg */
} rest_cfg;

#define S(f) offsetof(rest_stream_cfg, f)
static const ctx_opt stream_opts[] = {
    {"name", CTX_OPT_STRING, NULL, S(name), 1,
     "stream name (letters, digits, '_', '-', '.')", NULL, 0},
    {"kind", CTX_OPT_STRING, "documents", S(kind), 0,
     "\"documents\" (records), \"users\" or \"groups\" (principals)", NULL, 0},
    {"endpoint", CTX_OPT_STRING, NULL, S(endpoint), 1,
     "path under base_url of the list endpoint, e.g. \"/api/tickets\"", NULL, 0},
    {"records", CTX_OPT_STRING, "", S(records), 0,
     "dotted path of the item array in the answer (\"\" = the answer itself)", NULL, 0},
    {"params", CTX_OPT_JSON, NULL, S(params), 0,
     "extra query parameters, an object, e.g. {\"sort\": \"updated_at\"}", NULL, 0},
    {"id", CTX_OPT_STRING, "id", S(id), 0, "field holding the item's unique key", NULL, 0},
    {"title", CTX_OPT_STRING, NULL, S(title), 0, "field holding the title", NULL, 0},
    {"body", CTX_OPT_STRLIST, NULL, S(body), 0,
     "field, or array of fields joined with blank lines, holding the text", NULL, 0},
    {"url", CTX_OPT_STRING, NULL, S(url), 0, "field holding the item's link", NULL, 0},
    {"url_template", CTX_OPT_STRING, NULL, S(url_template), 0,
     "link built from the id, e.g. \"https://tracker.example.com/t/{id}\"", NULL, 0},
    {"updated_at", CTX_OPT_STRING, NULL, S(updated_at), 0,
     "field with the modification time (ISO 8601 or epoch seconds/ms)", NULL, 0},
    {"since_param", CTX_OPT_STRING, NULL, S(since_param), 0,
     "query parameter asking for items updated at or after the cursor; with"
     " updated_at it makes the stream incremental", NULL, 0},
    {"lookback_seconds", CTX_OPT_INT, "0", S(lookback_seconds), 0,
     "also re-read items this close before the cursor (an API that shows changes"
     " late); the store skips what did not change", NULL, 0},
    {"allow_users", CTX_OPT_STRING, NULL, S(allow_users), 0,
     "dotted path of the list of users who may read the item", NULL, 0},
    {"allow_groups", CTX_OPT_STRING, NULL, S(allow_groups), 0,
     "dotted path of the list of groups who may read the item", NULL, 0},
    {"deny_users", CTX_OPT_STRING, NULL, S(deny_users), 0,
     "dotted path of the list of users who may not read the item", NULL, 0},
    {"deny_groups", CTX_OPT_STRING, NULL, S(deny_groups), 0,
     "dotted path of the list of groups who may not read the item", NULL, 0},
    {"labels", CTX_OPT_STRING, NULL, S(labels), 0,
     "dotted path of the list of labels such as \"confidential\"", NULL, 0},
    {"allow_everyone", CTX_OPT_BOOL, "false", S(allow_everyone), 0,
     "every authenticated user may read every item of the stream", NULL, 0},
    {"permissions_endpoint", CTX_OPT_STRING, NULL, S(permissions_endpoint), 0,
     "per-item permissions, e.g. \"/api/pages/{id}/permissions\"; its users and"
     " groups are allowed", NULL, 0},
    {"permissions_users", CTX_OPT_STRING, "users", S(permissions_users), 0,
     "dotted path of the user list in the permissions answer", NULL, 0},
    {"permissions_groups", CTX_OPT_STRING, "groups", S(permissions_groups), 0,
     "dotted path of the group list in the permissions answer", NULL, 0},
    {"deleted_endpoint", CTX_OPT_STRING, NULL, S(deleted_endpoint), 0,
     "list endpoint of deleted items (paged like the stream, since_param applies)",
     NULL, 0},
    {"deleted_records", CTX_OPT_STRING, NULL, S(deleted_records), 0,
     "dotted path of the item array in the deleted answer (default: records)", NULL, 0},
    {"deleted_id", CTX_OPT_STRING, "id", S(deleted_id), 0,
     "field of a deleted item holding the id", NULL, 0},
    {"deleted_at", CTX_OPT_STRING, "deleted_at", S(deleted_at), 0,
     "field of a deleted item holding the deletion time (its cursor)", NULL, 0},
    {"pagination", CTX_OPT_STRING, "none", S(pagination), 0,
     "\"none\", \"page\", \"offset\", \"cursor\" (token in the body) or \"link\""
     " (Link header rel=\"next\")", NULL, 0},
    {"page_param", CTX_OPT_STRING, "page", S(page_param), 0,
     "query parameter of the page number", NULL, 0},
    {"offset_param", CTX_OPT_STRING, "offset", S(offset_param), 0,
     "query parameter of the offset", NULL, 0},
    {"limit_param", CTX_OPT_STRING, "limit", S(limit_param), 0,
     "query parameter of the page size", NULL, 0},
    {"cursor_param", CTX_OPT_STRING, "cursor", S(cursor_param), 0,
     "query parameter carrying the next-page token", NULL, 0},
    {"cursor_path", CTX_OPT_STRING, "next_cursor", S(cursor_path), 0,
     "dotted path of the next-page token in the answer (null or \"\" = last page)",
     NULL, 0},
    {"page_size", CTX_OPT_INT, "100", S(page_size), 0, "items asked for per page", NULL, 0},
    {"start_page", CTX_OPT_INT, "1", S(start_page), 0, "number of the first page", NULL, 0},
    {"email", CTX_OPT_STRING, "email", S(email), 0,
     "users: field with the email; the account maps to user:<email>", NULL, 0},
    {"display_name", CTX_OPT_STRING, "name", S(display_name), 0,
     "users and groups: field with the display name", NULL, 0},
    {"members", CTX_OPT_STRING, "members", S(members), 0,
     "groups: dotted path of the member user list", NULL, 0},
    {"member_groups", CTX_OPT_STRING, NULL, S(member_groups), 0,
     "groups: dotted path of the nested group list", NULL, 0},
    CTX_OPT_END,
};
#undef S

#define A(f) offsetof(rest_auth_cfg, f)
static const ctx_opt auth_opts[] = {
    {"type", CTX_OPT_STRING, NULL, A(type), 1,
     "\"none\", \"bearer\", \"api_key\", \"basic\" or \"oauth2\" (client credentials)",
     NULL, 0},
    {"secret_env", CTX_OPT_STRING, NULL, A(secret_env), 0,
     "environment variable holding the token, API key, password or client secret",
     NULL, 0},
    {"secret_file", CTX_OPT_STRING, NULL, A(secret_file), 0,
     "file whose first line is the secret", NULL, 0},
    {"header", CTX_OPT_STRING, "X-API-Key", A(header), 0,
     "api_key: the header carrying the key", NULL, 0},
    {"username", CTX_OPT_STRING, NULL, A(username), 0, "basic: the user name", NULL, 0},
    {"client_id", CTX_OPT_STRING, NULL, A(client_id), 0, "oauth2: the client id", NULL, 0},
    {"token_url", CTX_OPT_STRING, NULL, A(token_url), 0,
     "oauth2: token endpoint, absolute or under base_url", NULL, 0},
    {"scope", CTX_OPT_STRING, NULL, A(scope), 0, "oauth2: scope to ask for", NULL, 0},
    CTX_OPT_END,
};
#undef A

#define G(f) offsetof(rest_cfg, f)
static const ctx_opt rest_opts[] = {
    {"base_url", CTX_OPT_STRING, NULL, G(base_url), 1,
     "http(s) URL the endpoints are under, e.g. \"https://api.example.com\"", NULL, 0},
    {"auth", CTX_OPT_JSON, NULL, G(auth), 0,
     "credentials: {\"type\": \"bearer\", \"secret_env\": \"TOKEN\"}", NULL, 0},
    {"ca_file", CTX_OPT_STRING, NULL, G(ca_file), 0,
     "CA bundle (PEM) to verify the server with instead of the system's;"
     " verification is always on",
     NULL, 0},
    {"connect_timeout", CTX_OPT_INT, "10", G(connect_timeout), 0,
     "seconds to wait for a connection", NULL, 0},
    {"timeout", CTX_OPT_INT, "60", G(timeout), 0,
     "seconds one request may take in total", NULL, 0},
    {"retries", CTX_OPT_INT, "4", G(retries), 0,
     "further attempts of a request after 429, 5xx or a network error", NULL, 0},
    {"backoff_ms", CTX_OPT_INT, "500", G(backoff_ms), 0,
     "first retry delay; doubles each attempt, with jitter", NULL, 0},
    {"max_backoff_ms", CTX_OPT_INT, "30000", G(max_backoff_ms), 0,
     "upper bound of one retry delay", NULL, 0},
    {"max_retry_after", CTX_OPT_INT, "300", G(max_retry_after), 0,
     "longest Retry-After or rate-limit reset, in seconds, the connector waits", NULL, 0},
    {"requests_per_second", CTX_OPT_INT, "0", G(requests_per_second), 0,
     "request budget of the credential, shared by all streams (0 = no limit)", NULL, 0},
    {"max_page_bytes", CTX_OPT_INT, "67108864", G(max_page_bytes), 0,
     "largest answer accepted for one request", NULL, 0},
    {"streams", CTX_OPT_OBJLIST, NULL, G(streams), 1,
     "endpoints to read, one stream each", stream_opts, sizeof(rest_stream_cfg)},
    CTX_OPT_END,
};
#undef G

enum { AUTH_NONE, AUTH_BEARER, AUTH_API_KEY, AUTH_BASIC, AUTH_OAUTH2 };
enum { KIND_DOCS, KIND_USERS, KIND_GROUPS };
enum { PAGE_NONE, PAGE_NUMBER, PAGE_OFFSET, PAGE_CURSOR, PAGE_LINK };

typedef struct rest_conn {
    rest_cfg cfg;
    rest_auth_cfg auth;
    int auth_kind;
    CURL *curl;
    char *secret;             /* loaded on first use; wiped on close */
    char *token;              /* oauth2 access token */
    int64_t token_exp_ms;
    uint64_t next_ok_ns;      /* the rate budget: no request before this (ctx_mono_ns) */
    uint64_t rng;
    const ctx_host *host;     /* during xRead only, for retry logs */
    ctx_emitter *em;
} rest_conn;

/* One HTTP answer. */
typedef struct rest_resp {
    long status;
    ctx_buf body, link;
    size_t max;
    int too_big;
    char retry_after[64], ctype[96];
    int64_t rl_remaining, rl_reset;   /* -1 when absent */
} rest_resp;

#define REST_STATE_MAX 512

static void rest_log(const rest_conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rest_log(const rest_conn *c, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (!c->host)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->host->xLog(c->em, level, msg);
}

static int pick(const char *v, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(v, names[i]))
            return i;
    return -1;
}

static const char *const auth_names[] = {"none", "bearer", "api_key", "basic", "oauth2", NULL};
static const char *const kind_names[] = {"documents", "users", "groups", NULL};
static const char *const page_names[] = {"none", "page", "offset", "cursor", "link", NULL};

static const rest_stream_cfg *stream_at(const rest_conn *c, size_t i)
{
    return (const rest_stream_cfg *)c->cfg.streams.v + i;
}

/* check_stream - the rules the option table cannot express, for streams[i]. */
static int check_stream(const rest_conn *c, size_t i, ctx_error *err)
{
    const rest_stream_cfg *s = stream_at(c, i);
    int kind = pick(s->kind, kind_names);
    const char *k;
    void *tmp;
    json_t *v;

    if (!ctx_valid_name(s->name))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].name: \"%s\" is not a valid"
                             " stream name; use letters, digits, '_', '-' or '.'", i, s->name);
    for (size_t j = 0; j < i; j++)
        if (!strcmp(stream_at(c, j)->name, s->name))
            return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].name: \"%s\" is already"
                                 " used by streams[%zu]; names must be unique", i, s->name, j);
    if (kind < 0)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].kind: \"%s\" is unknown; use"
                             " \"documents\", \"users\" or \"groups\"", i, s->kind);
    if (pick(s->pagination, page_names) < 0)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].pagination: \"%s\" is unknown;"
                             " use \"none\", \"page\", \"offset\", \"cursor\" or \"link\"", i,
                             s->pagination);
    if (s->page_size < 1 || s->page_size > 100000)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].page_size: %lld is out of"
                             " range; use 1..100000", i, (long long)s->page_size);
    if (s->params) {
        if (!json_is_object(s->params))
            return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].params: expected an object"
                                 " of query parameters, got %s", i,
                                 ctx_json_typename(s->params));
        json_object_foreach_safe(s->params, tmp, k, v)
            if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
                return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].params.%s: expected a"
                                     " string, number or boolean, got %s", i, k,
                                     ctx_json_typename(v));
    }
    if (s->url && s->url_template)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu]: set \"url\" or"
                             " \"url_template\", not both", i);
    if (s->url_template && !strstr(s->url_template, "{id}"))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].url_template: \"%s\" has no"
                             " \"{id}\" placeholder", i, s->url_template);
    if (s->lookback_seconds < 0 || (s->lookback_seconds && !s->since_param))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].lookback_seconds: must be >= 0"
                             " and needs \"since_param\"", i);
    if (s->since_param && !s->updated_at)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].since_param: needs"
                             " \"updated_at\", the field the cursor is taken from", i);
    if (kind == KIND_DOCS && !s->allow_users && !s->allow_groups && !s->allow_everyone &&
        !s->permissions_endpoint)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu]: no permissions; set"
                             " allow_users, allow_groups, permissions_endpoint or"
                             " allow_everyone (items without an allow list are invisible to"
                             " everyone)", i);
    if (s->permissions_endpoint && !strstr(s->permissions_endpoint, "{id}"))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].permissions_endpoint: \"%s\""
                             " has no \"{id}\" placeholder", i, s->permissions_endpoint);
    if (kind != KIND_DOCS && s->deleted_endpoint)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].deleted_endpoint: only"
                             " documents streams have deletes; principals are replaced each"
                             " read", i);
    return CTX_OK;
}

static int same_origin(const char *a, const char *b);

/* foreign - 1 when an endpoint is an absolute URL on another host than base_url. */
static int foreign(const rest_conn *c, const char *endpoint)
{
    return endpoint && (!strncmp(endpoint, "http://", 7) || !strncmp(endpoint, "https://", 8)) &&
           !same_origin(endpoint, c->cfg.base_url);
}

/* check_cfg - cross-key rules of the whole config. */
static int check_cfg(rest_conn *c, ctx_error *err)
{
    rest_cfg *g = &c->cfg;
    int rc;

    if (strncmp(g->base_url, "http://", 7) && strncmp(g->base_url, "https://", 8))
        return ctx_error_set(err, CTX_ECONFIG, "base_url: \"%s\" is not an http:// or"
                             " https:// URL", g->base_url);
    if (g->connect_timeout < 1 || g->connect_timeout > 3600)
        return ctx_error_set(err, CTX_ECONFIG, "connect_timeout: %lld is out of range;"
                             " use 1..3600 seconds", (long long)g->connect_timeout);
    if (g->timeout < 1 || g->timeout > 86400)
        return ctx_error_set(err, CTX_ECONFIG, "timeout: %lld is out of range; use"
                             " 1..86400 seconds", (long long)g->timeout);
    if (g->retries < 0 || g->retries > 30)
        return ctx_error_set(err, CTX_ECONFIG, "retries: %lld is out of range; use 0..30",
                             (long long)g->retries);
    if (g->backoff_ms < 0 || g->max_backoff_ms < g->backoff_ms)
        return ctx_error_set(err, CTX_ECONFIG, "backoff_ms, max_backoff_ms: need"
                             " 0 <= backoff_ms <= max_backoff_ms");
    if (g->max_retry_after < 0 || g->requests_per_second < 0 || g->max_page_bytes < 1024)
        return ctx_error_set(err, CTX_ECONFIG, "max_retry_after, requests_per_second,"
                             " max_page_bytes: must not be negative (max_page_bytes >= 1024)");
    if (g->auth) {
        if ((rc = ctx_opts_parse(auth_opts, g->auth, &c->auth, "auth", err)))
            return rc;
        if ((c->auth_kind = pick(c->auth.type, auth_names)) < 0)
            return ctx_error_set(err, CTX_ECONFIG, "auth.type: \"%s\" is unknown; use"
                                 " \"none\", \"bearer\", \"api_key\", \"basic\" or \"oauth2\"",
                                 c->auth.type);
        if (c->auth_kind != AUTH_NONE && !c->auth.secret_env == !c->auth.secret_file)
            return ctx_error_set(err, CTX_ECONFIG, "auth: set exactly one of secret_env and"
                                 " secret_file (secrets never go into the config)");
        if (c->auth_kind == AUTH_BASIC && !c->auth.username)
            return ctx_error_set(err, CTX_ECONFIG, "auth.username: basic auth needs it");
        if (c->auth_kind == AUTH_OAUTH2 && (!c->auth.client_id || !c->auth.token_url))
            return ctx_error_set(err, CTX_ECONFIG, "auth: oauth2 needs client_id and"
                                 " token_url");
    }
    if (!g->streams.n)
        return ctx_error_set(err, CTX_ECONFIG, "streams: configure at least one stream");
    for (size_t i = 0; i < g->streams.n; i++) {
        const rest_stream_cfg *s = stream_at(c, i);
        if ((rc = check_stream(c, i, err)))
            return rc;
        if (foreign(c, s->endpoint) || foreign(c, s->deleted_endpoint) ||
            foreign(c, s->permissions_endpoint))
            return ctx_error_set(err, CTX_ECONFIG, "streams[%zu]: an endpoint is on another"
                                 " host than base_url; the credential only goes to base_url,"
                                 " so configure another source for that host", i);
    }
    return CTX_OK;
}

/* set_enum - restrict a string property of a schema to names. */
static void set_enum(json_t *prop, const char *const *names)
{
    json_t *e = json_array();
    for (size_t i = 0; names[i]; i++)
        json_array_append_new(e, json_string(names[i]));
    json_object_set_new(prop, "enum", e);
}

static const char *rest_spec(void)
{
    static char *spec;
    if (!spec) {
        json_t *s = ctx_opts_schema(rest_opts, "rest connector");
        json_t *props = json_object_get(s, "properties");
        json_t *items = json_object_get(json_object_get(props, "streams"), "items");
        json_t *a = ctx_opts_schema(auth_opts, NULL);
        set_enum(json_object_get(json_object_get(items, "properties"), "kind"), kind_names);
        set_enum(json_object_get(json_object_get(items, "properties"), "pagination"),
                 page_names);
        set_enum(json_object_get(json_object_get(a, "properties"), "type"), auth_names);
        json_object_set_new(json_object_get(json_object_get(items, "properties"), "params"),
                            "type", json_string("object"));
        json_object_set_new(a, "description", json_string("credentials; the secret itself"
                                                          " comes from secret_env or"
                                                          " secret_file"));
        json_object_set_new(props, "auth", a);
        spec = ctx_json_text(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(s);
    }
    return spec;
}

/* err_prefix - put "what: " before the message already in *e. */
static void err_prefix(ctx_conn_error *e, const char *what)
{
    char text[sizeof e->text];
    snprintf(text, sizeof text, "%s: %s", what, e->text);
    memcpy(e->text, text, sizeof text);
}

static void rest_close(void *conn)
{
    rest_conn *c = conn;
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    ctx_wipe_free(c->secret);
    ctx_wipe_free(c->token);
    ctx_opts_free(auth_opts, &c->auth);
    ctx_opts_free(rest_opts, &c->cfg);
    ctx_free(c);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* Sources may be opened from several threads; libcurl is set up once. */
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static int rest_open(const char *config_json, void **pconn, ctx_conn_error *e)
{
    rest_conn *c;
    ctx_error err;
    int rc;

    *pconn = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc)
        return conn_errf(e, CTX_CONN_ESOURCE, "libcurl: global initialisation failed");
    if (!(c = ctx_calloc(1, sizeof *c)))
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    if ((rc = ctx_opts_parse_text(rest_opts, config_json, &c->cfg, &err))) {
        ctx_free(c);
        return conn_errf(e, rc, "%s", err.text);
    }
    if ((rc = check_cfg(c, &err))) {
        rest_close(c);
        return conn_errf(e, rc, "%s", err.text);
    }
    if (!(c->curl = curl_easy_init())) {
        rest_close(c);
        return conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot create a handle");
    }
    c->rng = (uint64_t)ctx_mono_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    *pconn = c;
    return CTX_CONN_OK;
}

/* ---- secrets and small helpers ---- */

/* load_secret - the secret from secret_env or secret_file, once. */
static int load_secret(rest_conn *c, ctx_conn_error *e)
{
    char *text = NULL;
    size_t len = 0;
    const char *v;

    if (c->secret || c->auth_kind == AUTH_NONE || !c->cfg.auth)
        return CTX_CONN_OK;
    if (c->auth.secret_env) {
        if (!(v = getenv(c->auth.secret_env)) || !*v)
            return conn_errf(e, CTX_CONN_ECONFIG, "auth.secret_env: the environment variable"
                            " \"%s\" is not set; export it before the sync",
                            c->auth.secret_env);
        if (!(c->secret = ctx_strdup(v)))
            return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        return CTX_CONN_OK;
    }
    if (ctx_read_file(c->auth.secret_file, &text, &len))
        return conn_errf(e, CTX_CONN_ECONFIG, "auth.secret_file: cannot read %s: %s",
                        c->auth.secret_file, strerror(errno));
    text[strcspn(text, "\r\n")] = '\0';
    c->secret = text;
    return CTX_CONN_OK;
}

/* sleep_until - sleep until ctx_mono_ns() reaches t (CLOCK_MONOTONIC, ns). */
static void sleep_until(uint64_t t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* hold - no request of this credential before ms milliseconds from now. */
static void hold(rest_conn *c, int64_t ms)
{
    uint64_t until = ctx_mono_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000u;
    if (until > c->next_ok_ns)
        c->next_ok_ns = until;
}

/* url_path - the part of url after scheme and host, for messages. Borrowed. */
static const char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? p : url;
}

/* same_origin - 1 when a and b have the same scheme://host:port. */
static int same_origin(const char *a, const char *b)
{
    size_t la = (size_t)(url_path(a) - a), lb = (size_t)(url_path(b) - b);
    if (a[la] != '/')
        la = strlen(a);
    if (b[lb] != '/')
        lb = strlen(b);
    return la == lb && !strncasecmp(a, b, la);
}

/*
 * jpath - the value at a dotted path in v ("" is v itself), or NULL.
 * Borrowed from v.
 */
static json_t *jpath(json_t *v, const char *path)
{
    char key[256];
    size_t n;

    while (v && path && *path) {
        n = strcspn(path, ".");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        v = json_object_get(v, key);
        path += n;
        if (*path == '.')
            path++;
    }
    return v;
}

/*
 * jtext - a scalar as text: strings as they are, numbers and booleans
 * printed into buf; NULL for null, objects, arrays and absent values.
 */
static const char *jtext(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, len, "%.17g", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return NULL;
}

/*
 * parse_time - milliseconds since the epoch of an ISO 8601 date or time
 * (ctx_iso8601_ms) or of epoch seconds (milliseconds when above 1e11, as
 * number or digits). -1 if neither.
 */
static int64_t parse_time(const char *s)
{
    int64_t ms;
    char *end;

    if (!s || !*s)
        return -1;
    if (strspn(s, "0123456789.") == strlen(s)) {
        double v = strtod(s, &end);
        if (*end)
            return -1;
        return v > 1e11 ? (int64_t)v : (int64_t)(v * 1000.0);
    }
    return ctx_iso8601_ms(s, &ms) ? -1 : ms;
}

/* cmp_id - order of two ids: numerically when both are digits, else bytewise. */
static int cmp_id(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && lb && strspn(a, "0123456789") == la && strspn(b, "0123456789") == lb &&
        la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    rest_resp *r = arg;
    size_t len = size * n;
    if (r->body.len + len > r->max) {
        r->too_big = 1;
        return 0;
    }
    return ctx_buf_append(&r->body, p, len) ? 0 : len;
}

/* header_is - the value of "Name: value" when line is that header, else NULL. */
static const char *header_is(const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    const char *v;
    if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
        return NULL;
    for (v = line + n + 1; v < line + len && (*v == ' ' || *v == '\t'); v++)
        ;
    *vlen = (size_t)(line + len - v);
    while (*vlen && (v[*vlen - 1] == '\r' || v[*vlen - 1] == '\n' || v[*vlen - 1] == ' '))
        (*vlen)--;
    return v;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    rest_resp *r = arg;
    size_t len = size * n, vl;
    const char *v;
    char num[32];

    if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
        /* A new answer (after 100 Continue): forget the previous headers. */
        r->retry_after[0] = r->ctype[0] = '\0';
        r->rl_remaining = r->rl_reset = -1;
        ctx_buf_reset(&r->link);
    } else if ((v = header_is(p, len, "Retry-After", &vl))) {
        copy_value(r->retry_after, sizeof r->retry_after, v, vl);
    } else if ((v = header_is(p, len, "Content-Type", &vl))) {
        copy_value(r->ctype, sizeof r->ctype, v, vl);
    } else if ((v = header_is(p, len, "X-RateLimit-Remaining", &vl))) {
        copy_value(num, sizeof num, v, vl);
        r->rl_remaining = strtoll(num, NULL, 10);
    } else if ((v = header_is(p, len, "X-RateLimit-Reset", &vl))) {
        copy_value(num, sizeof num, v, vl);
        r->rl_reset = strtoll(num, NULL, 10);
    } else if ((v = header_is(p, len, "Link", &vl))) {
        if ((r->link.len && ctx_buf_puts(&r->link, ",")) || ctx_buf_append(&r->link, v, vl))
            return 0;
    }
    return len;
}

static void resp_reset(rest_resp *r, size_t max)
{
    ctx_buf_reset(&r->body);
    ctx_buf_reset(&r->link);
    r->status = 0;
    r->too_big = 0;
    r->max = max;
    r->retry_after[0] = r->ctype[0] = '\0';
    r->rl_remaining = r->rl_reset = -1;
}

static void resp_free(rest_resp *r)
{
    ctx_buf_free(&r->body);
    ctx_buf_free(&r->link);
}

/* setup - the options every request carries; TLS verification stays on. */
static int setup(rest_conn *c, const char *url, rest_resp *resp, char *ebuf)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    return curl_easy_setopt(h, CURLOPT_URL, url) ||
           curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") ||
           curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
           curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg.connect_timeout * 1000) ||
           curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->cfg.timeout * 1000) ||
           curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) ||
           curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) ||
           (c->cfg.ca_file && curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file)) ||
           curl_easy_setopt(h, CURLOPT_USERAGENT, "ctxgate-rest/1.0") ||
           curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "") ||
           curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) ||
           curl_easy_setopt(h, CURLOPT_WRITEDATA, resp) ||
           curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) ||
           curl_easy_setopt(h, CURLOPT_HEADERDATA, resp) ||
           curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
}

/* perform - run the prepared request; a transport failure is described in msg. */
static int perform(rest_conn *c, rest_resp *resp, const char *ebuf, char *msg, size_t len)
{
    CURLcode cc = curl_easy_perform(c->curl);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        return 0;
    }
    if (resp->too_big)
        snprintf(msg, len, "the answer is larger than max_page_bytes (%lld)",
                 (long long)c->cfg.max_page_bytes);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        snprintf(msg, len, "no complete answer within the timeout (%llds); raise timeout"
                 " or check the server", (long long)c->cfg.timeout);
    else
        snprintf(msg, len, "%s", *ebuf ? ebuf : curl_easy_strerror(cc));
    return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
                   cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT ||
                   resp->too_big
               ? -2
               : -1;
}

/* snippet - the start of an answer body on one line, secrets masked. */
static void snippet(const rest_conn *c, const rest_resp *r, char *out, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < r->body.len && n + 1 < len && n < 160; i++) {
        unsigned char ch = (unsigned char)r->body.data[i];
        out[n++] = ch < 0x20 || ch >= 0x7f ? ' ' : (char)ch;
    }
    out[n] = '\0';
    ctx_scrub(out, c->secret);
    ctx_scrub(out, c->token);
}

static int fetch_token(rest_conn *c, ctx_conn_error *e);
static int endpoint_url(const rest_conn *c, ctx_buf *out, const char *endpoint);

/* auth_headers - the request's credentials; *hl (new) is freed by the caller. */
static int auth_headers(rest_conn *c, struct curl_slist **hl, ctx_conn_error *e)
{
    ctx_buf h = CTX_BUF_INIT;
    struct curl_slist *l;
    int rc = 0;

    *hl = curl_slist_append(NULL, "Accept: application/json");
    if (!*hl)
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    switch (c->auth_kind) {
    case AUTH_BEARER:
        rc = ctx_buf_printf(&h, "Authorization: Bearer %s", c->secret);
        break;
    case AUTH_OAUTH2:
        rc = ctx_buf_printf(&h, "Authorization: Bearer %s", c->token);
        break;
    case AUTH_API_KEY:
        rc = ctx_buf_printf(&h, "%s: %s", c->auth.header, c->secret);
        break;
    case AUTH_BASIC:
        if (curl_easy_setopt(c->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) ||
            curl_easy_setopt(c->curl, CURLOPT_USERNAME, c->auth.username) ||
            curl_easy_setopt(c->curl, CURLOPT_PASSWORD, c->secret))
            return conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot set basic auth");
        return CTX_CONN_OK;
    default:
        return CTX_CONN_OK;
    }
    l = rc ? NULL : curl_slist_append(*hl, h.data);
    if (h.data)
        explicit_bzero(h.data, h.len);
    ctx_buf_free(&h);
    if (!l)
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    *hl = l;
    return CTX_CONN_OK;
}

/*
 * wait_budget - sleep until the shared rate budget allows the next request,
 * then book the one after it. The requests are spaced 2% wider than
 * 1/requests_per_second, in ns: spaced exactly, from a millisecond clock
 * (truncated, and 1000 / rps rounded down), a server counted rps + 1 of
 * them within one second (bench/sync_rest.sh); the 2% (20 ms in every
 * second) also absorbs the jitter between sending and arriving.
 */
static void wait_budget(rest_conn *c)
{
    if (c->next_ok_ns > ctx_mono_ns())
        sleep_until(c->next_ok_ns);
    if (c->cfg.requests_per_second)
        c->next_ok_ns = ctx_mono_ns() +
                        (uint64_t)(1020000000 / c->cfg.requests_per_second);
}

/* reset_ms - ms until an exhausted X-RateLimit window resets; -1 when not exhausted. */
static int64_t reset_ms(const rest_resp *r)
{
    int64_t now = ctx_now_ms(), until;
    if (r->rl_remaining != 0 || r->rl_reset < 0)
        return -1;
    /* Reset is epoch seconds (GitHub) or seconds from now (others). */
    until = r->rl_reset > 1000000000 ? r->rl_reset * 1000 : now + r->rl_reset * 1000;
    return until > now ? until - now : 0;
}

/* note_limits - after a success: an exhausted X-RateLimit window blocks until its reset. */
static void note_limits(rest_conn *c, const rest_resp *r)
{
    int64_t wait = reset_ms(r);
    if (wait < 0)
        return;
    if (wait > c->cfg.max_retry_after * 1000)
        wait = c->cfg.max_retry_after * 1000;
    hold(c, wait);
    rest_log(c, CTX_CONN_LOG_INFO, "rate limit exhausted; next request in %lld ms",
             (long long)wait);
}

/* client_auth - the token request's options: the form, client id and secret. */
static int client_auth(rest_conn *c, const char *form, struct curl_slist **hl)
{
    *hl = curl_slist_append(NULL, "Accept: application/json");
    return !*hl || curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, form) ||
           curl_easy_setopt(c->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) ||
           curl_easy_setopt(c->curl, CURLOPT_USERNAME, c->auth.client_id) ||
           curl_easy_setopt(c->curl, CURLOPT_PASSWORD, c->secret);
}

/*
 * http_call - GET url (or, with form, POST it to the OAuth2 token
 * endpoint) into resp, a 2xx answer, with the credential, the shared rate
 * budget and bounded retries: 429 and 5xx wait Retry-After or the
 * X-RateLimit reset when given, else an exponential backoff with jitter;
 * an OAuth2 401 gets one fresh token. what names the stream in messages.
 */
static int http_call(rest_conn *c, const char *what, const char *url, const char *form,
                     rest_resp *resp, ctx_conn_error *e)
{
    char ebuf[CURL_ERROR_SIZE], msg[300], snip[200];
    const char *method = form ? "POST" : "GET";
    struct curl_slist *hl = NULL;
    int64_t attempt = 0, delay;
    ctx_backoff bo;
    int rc, refreshed = 0, tr;

    if ((rc = load_secret(c, e)))
        return rc;
    ctx_backoff_init(&bo, c->cfg.backoff_ms, c->cfg.max_backoff_ms, c->rng);
    c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull; /* the next call's */
    for (;;) {
        wait_budget(c);
        resp_reset(resp, (size_t)c->cfg.max_page_bytes);
        ebuf[0] = '\0';
        /* Refresh a little before the expiry, so no request carries a dead token. */
        if (!form && c->auth_kind == AUTH_OAUTH2 &&
            (!c->token || ctx_now_ms() + 5000 >= c->token_exp_ms) &&
            (rc = fetch_token(c, e))) {
            err_prefix(e, what);
            break;
        }
        if (setup(c, url, resp, ebuf)) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot set request options");
            break;
        }
        if (form && client_auth(c, form, &hl)) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot set the token request");
            break;
        }
        if (!form && (rc = auth_headers(c, &hl, e)))
            break;
        if (curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hl)) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot set headers");
            break;
        }
        tr = perform(c, resp, ebuf, msg, sizeof msg);
        curl_slist_free_all(hl);
        hl = NULL;
        if (!tr && resp->status >= 200 && resp->status < 300) {
            note_limits(c, resp);
            return CTX_CONN_OK;
        }
        if (!tr && form && (resp->status == 400 || resp->status == 401 || resp->status == 403)) {
            snippet(c, resp, snip, sizeof snip);
            rc = conn_errf(e, CTX_CONN_EAUTH, "%s: POST %s: HTTP %ld (%s); check"
                          " auth.client_id and the secret", what, url_path(url), resp->status,
                          snip);
            break;
        }
        if (!tr && !form && resp->status == 401 && c->auth_kind == AUTH_OAUTH2 && !refreshed) {
            rest_log(c, CTX_CONN_LOG_INFO, "%s: GET %s: HTTP 401; fetching a new token",
                     what, url_path(url));
            ctx_wipe_free(c->token);
            c->token = NULL;
            refreshed = 1;
            continue;
        }
        if (!tr && (resp->status == 401 || resp->status == 403)) {
            rc = conn_errf(e, CTX_CONN_EAUTH, "%s: %s %s: HTTP %ld, credentials rejected;"
                          " %s", what, method, url_path(url), resp->status,
                          !c->cfg.auth || c->auth_kind == AUTH_NONE
                              ? "the API wants credentials: set auth"
                          : c->auth.secret_env ? "check the secret in auth.secret_env"
                                               : "check the secret in auth.secret_file");
            break;
        }
        if (tr == -2 || (!tr && !ctx_retry_status(resp->status))) {
            if (!tr) {
                snippet(c, resp, snip, sizeof snip);
                snprintf(msg, sizeof msg, "HTTP %ld: %s", resp->status, snip);
            }
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: %s %s: %s", what, method, url_path(url),
                          msg);
            break;
        }
        if (!tr)
            snprintf(msg, sizeof msg, "HTTP %ld", resp->status);
        if (attempt >= c->cfg.retries) {
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: %s %s: %s, still failing after %lld"
                          " attempt%s; nothing past the last checkpoint was committed", what,
                          method, url_path(url), msg, (long long)attempt + 1, attempt ? "s" : "");
            break;
        }
        attempt++;
        delay = tr ? -1 : ctx_retry_after_ms(resp->retry_after, ctx_now_ms());
        if (!tr && delay < 0)
            delay = reset_ms(resp);
        if (delay > c->cfg.max_retry_after * 1000) {
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: %s %s: %s asks to wait %lld s, more than"
                          " max_retry_after (%lld s)", what, method, url_path(url), msg,
                          (long long)(delay / 1000), (long long)c->cfg.max_retry_after);
            break;
        }
        if (delay < 0)
            delay = ctx_backoff_next(&bo);
        rest_log(c, CTX_CONN_LOG_WARN, "%s: %s %s: %s; retry %lld of %lld in %lld ms", what,
                 method, url_path(url), msg, (long long)attempt, (long long)c->cfg.retries,
                 (long long)delay);
        /* The wait belongs to the credential: every stream of the source waits too. */
        hold(c, delay);
    }
    curl_slist_free_all(hl);
    return rc;
}

/*
 * fetch_token - a new OAuth2 access token (client credentials grant),
 * client id and secret sent with HTTP basic auth, retried like any request.
 */
static int fetch_token(rest_conn *c, ctx_conn_error *e)
{
    rest_resp resp = {0};
    ctx_buf url = CTX_BUF_INIT, form = CTX_BUF_INIT;
    json_t *root = NULL, *tok;
    int rc;

    ctx_wipe_free(c->token);
    c->token = NULL;
    if (endpoint_url(c, &url, c->auth.token_url) ||
        ctx_buf_puts(&form, "grant_type=client_credentials")) {
        rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    if (c->auth.scope) {
        char *q = curl_easy_escape(c->curl, c->auth.scope, 0);
        rc = !q || ctx_buf_printf(&form, "&scope=%s", q);
        curl_free(q);
        if (rc) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
            goto done;
        }
    }
    if ((rc = http_call(c, "auth.token_url", url.data, form.data, &resp, e)))
        goto done;
    root = resp.body.data ? ctx_json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
    tok = json_object_get(root, "access_token");
    if (!json_is_string(tok) || !*json_string_value(tok)) {
        rc = conn_errf(e, CTX_CONN_EAUTH, "auth.token_url: POST %s: the answer has no"
                      " \"access_token\"", url_path(url.data));
        goto done;
    }
    if (!(c->token = ctx_strdup(json_string_value(tok)))) {
        rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    {
        json_int_t exp = json_integer_value(json_object_get(root, "expires_in"));
        c->token_exp_ms = exp > 0 ? ctx_now_ms() + exp * 1000 : INT64_MAX;
    }
    rc = CTX_CONN_OK;
done:
    json_decref(root);
    if (form.data)
        explicit_bzero(form.data, form.len);
    ctx_buf_free(&form);
    ctx_buf_free(&url);
    resp_free(&resp);
    return rc;
}

/* utf8_bad_at - offset of the first ill-formed sequence in s[0..n), or n. */
static size_t utf8_bad_at(const char *s, size_t n)
{
    size_t i = 0, len;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        len = ch < 0x80 ? 1 : (ch >> 5) == 6 ? 2 : (ch >> 4) == 14 ? 3 : (ch >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n || !ctx_utf8_valid(s + i, len))
            return i;
        i += len;
    }
    return n;
}

/*
 * parse_answer - the JSON of a 2xx answer (new reference in *root). Invalid
 * UTF-8, non-JSON and truncated JSON fail naming the place.
 */
static int parse_answer(const rest_conn *c, const char *what, const char *url,
                        const rest_resp *r, json_t **root, ctx_conn_error *e)
{
    json_error_t jerr;
    char snip[200];

    *root = NULL;
    if (!r->body.len)
        return conn_errf(e, CTX_CONN_ESOURCE, "%s: GET %s: the answer is empty; expected"
                        " JSON", what, url_path(url));
    if (!ctx_utf8_valid(r->body.data, r->body.len)) {
        size_t ok = utf8_bad_at(r->body.data, r->body.len), n = r->body.len;
        return conn_errf(e, CTX_CONN_ESOURCE, "%s: GET %s: the answer is not valid UTF-8"
                        " (first bad byte at offset %zu of %zu)", what, url_path(url), ok, n);
    }
    if (!(*root = ctx_json_loadb(r->body.data, r->body.len, JSON_DECODE_ANY, &jerr))) {
        if (r->ctype[0] && !strstr(r->ctype, "json")) {
            snippet(c, r, snip, sizeof snip);
            return conn_errf(e, CTX_CONN_ESOURCE, "%s: GET %s: the answer is not JSON"
                            " (Content-Type %s): %s", what, url_path(url), r->ctype, snip);
        }
        return conn_errf(e, CTX_CONN_ESOURCE, "%s: GET %s: the answer is not valid JSON"
                        " (truncated?): %s at line %d column %d of %zu bytes", what,
                        url_path(url), jerr.text, jerr.line, jerr.column, r->body.len);
    }
    return CTX_CONN_OK;
}

/* ---- reading a stream ---- */

typedef struct rest_reader rest_reader;
typedef int (*item_fn)(rest_reader *r, json_t *item, const char *url);

struct rest_reader {
    rest_conn *c;
    const rest_stream_cfg *s;
    int kind, style, incremental;
    char what[160];            /* "streams[0] (tickets)" */
    const ctx_host *host;
    ctx_emitter *em;
    ctx_conn_error *e;
    rest_resp resp, presp;     /* the page's answer; a permissions answer */
    /* the (updated_at, id) cursor, and the deleted endpoint's */
    char cur_raw[REST_STATE_MAX], cur_id[REST_STATE_MAX], del_raw[REST_STATE_MAX];
    int64_t cur_ms, del_ms;
    int have_cur;
    /* lookback: items from floor_ms up to the state's cursor are read again */
    char start_id[REST_STATE_MAX], floor_raw[64];
    int64_t start_ms, floor_ms;
    int lookback;
    size_t fresh;              /* items emitted from the current page */
    ctx_strvec allow, deny, labels, members;
    ctx_buf body, url, tmp;
    json_t *seen, *gone;       /* groups streams: names emitted now / last time */
};

/* sl_add - one whole string, with prefix, onto l. */
static int sl_add(ctx_strvec *l, const char *prefix, const char *s)
{
    return ctx_strvec_add(l, prefix, s, strlen(s));
}

/* add_value - one ACL value: "user:"/"group:" values and "everyone" keep their form. */
static int add_value(ctx_strvec *l, const char *prefix, const char *t)
{
    if (!t || !*t)
        return CTX_OK;
    if (prefix && (!strcmp(t, "everyone") || !strncmp(t, "user:", 5) ||
                   !strncmp(t, "group:", 6)))
        prefix = NULL;
    return sl_add(l, prefix, t);
}

/*
 * add_values - the principals (or labels, with prefix NULL) at path in v:
 * an array of strings or numbers, or one string.
 */
static int add_values(ctx_strvec *l, const char *prefix, json_t *v, const char *path)
{
    char buf[64];
    json_t *x;
    size_t i;

    if (!path)
        return CTX_OK;
    v = jpath(v, path);
    if (!json_is_array(v))
        return add_value(l, prefix, jtext(v, buf, sizeof buf));
    json_array_foreach(v, i, x)
        if (add_value(l, prefix, jtext(x, buf, sizeof buf)))
            return CTX_ENOMEM;
    return CTX_OK;
}

/* expand - template with {id} replaced by id (URL-escaped when escape). */
static int expand(rest_reader *r, ctx_buf *out, const char *tmpl, const char *id, int escape)
{
    const char *p = strstr(tmpl, "{id}");
    char *q = escape ? curl_easy_escape(r->c->curl, id, 0) : NULL;
    int rc;

    if (escape && !q)
        return CTX_ENOMEM;
    ctx_buf_reset(out);
    rc = ctx_buf_append(out, tmpl, (size_t)(p - tmpl)) || ctx_buf_puts(out, q ? q : id) ||
         ctx_buf_puts(out, p + 4);
    curl_free(q);
    return rc ? CTX_ENOMEM : CTX_OK;
}

/* endpoint_url - base_url + endpoint (absolute endpoints are kept) into out. */
static int endpoint_url(const rest_conn *c, ctx_buf *out, const char *endpoint)
{
    size_t n = strlen(c->cfg.base_url);
    ctx_buf_reset(out);
    if (!strncmp(endpoint, "http://", 7) || !strncmp(endpoint, "https://", 8))
        return ctx_buf_puts(out, endpoint);
    while (n && c->cfg.base_url[n - 1] == '/')
        n--;
    return ctx_buf_append(out, c->cfg.base_url, n) ||
           (endpoint[0] != '/' && ctx_buf_puts(out, "/")) || ctx_buf_puts(out, endpoint);
}

static int add_param(rest_conn *c, ctx_buf *b, const char *key, const char *val)
{
    char *k = curl_easy_escape(c->curl, key, 0), *v = curl_easy_escape(c->curl, val, 0);
    int rc = !k || !v ||
             ctx_buf_printf(b, "%c%s=%s", strchr(b->data, '?') ? '&' : '?', k, v);
    curl_free(k);
    curl_free(v);
    return rc ? CTX_ENOMEM : CTX_OK;
}

/*
 * page_url - the URL of one page of endpoint: params, since (when given),
 * then the pagination style's parameters.
 */
static int page_url(rest_reader *r, const char *endpoint, const char *since, int64_t page,
                    const char *token, ctx_buf *out)
{
    const rest_stream_cfg *s = r->s;
    char num[32], buf[64];
    const char *k;
    json_t *v;
    void *tmp;

    if (endpoint_url(r->c, out, endpoint))
        return CTX_ENOMEM;
    json_object_foreach_safe(s->params, tmp, k, v)
        if (add_param(r->c, out, k, jtext(v, buf, sizeof buf)))
            return CTX_ENOMEM;
    if (since && s->since_param && add_param(r->c, out, s->since_param, since))
        return CTX_ENOMEM;
    snprintf(num, sizeof num, "%lld", (long long)s->page_size);
    if (r->style != PAGE_NONE && add_param(r->c, out, s->limit_param, num))
        return CTX_ENOMEM;
    snprintf(num, sizeof num, "%lld", (long long)page);
    if (r->style == PAGE_NUMBER && add_param(r->c, out, s->page_param, num))
        return CTX_ENOMEM;
    if (r->style == PAGE_OFFSET && add_param(r->c, out, s->offset_param, num))
        return CTX_ENOMEM;
    if (r->style == PAGE_CURSOR && token && add_param(r->c, out, s->cursor_param, token))
        return CTX_ENOMEM;
    return CTX_OK;
}

/*
 * link_next - the rel="next" target of the Link header into out, resolved
 * against url; 0 when there is none. Other hosts are refused: the
 * credential must not travel to them.
 */
static int link_next(rest_reader *r, const char *url, ctx_buf *out, int *found)
{
    const char *p = r->resp.link.data, *lt, *gt, *end;
    CURLU *u;
    char *abs = NULL;
    int rc = CTX_CONN_OK;

    *found = 0;
    for (; p && *p; p = end + (*end != '\0')) {
        if (!(lt = strchr(p, '<')) || !(gt = strchr(lt, '>')))
            break;
        end = strchr(gt, ',');
        if (!end)
            end = gt + strlen(gt);
        {
            char params[256];
            size_t n = (size_t)(end - gt - 1);
            copy_value(params, sizeof params, gt + 1, n);
            if (!strstr(params, "rel=\"next\"") && !strstr(params, "rel=next"))
                continue;
        }
        if (!(u = curl_url()))
            return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        {
            char *target = ctx_strndup(lt + 1, (size_t)(gt - lt - 1));
            if (!target || curl_url_set(u, CURLUPART_URL, url, 0) ||
                curl_url_set(u, CURLUPART_URL, target, 0) ||
                curl_url_get(u, CURLUPART_URL, &abs, 0))
                rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: the Link header's next"
                              " URL is not a URL", r->what, url_path(url));
            ctx_free(target);
        }
        curl_url_cleanup(u);
        if (!rc && !same_origin(abs, r->c->cfg.base_url))
            rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: the Link header points to"
                          " another host; refused, the credential stays with base_url",
                          r->what, url_path(url));
        if (!rc) {
            ctx_buf_reset(out);
            rc = ctx_buf_puts(out, abs) ? conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory") : 0;
            *found = !rc;
        }
        curl_free(abs);
        return rc;
    }
    return CTX_CONN_OK;
}

/* A page handed to the caller after every item of it was handled. */
typedef int (*page_fn)(rest_reader *r);

/*
 * read_pages - every page of endpoint, items at records_path handed to fn,
 * done called after each page. since is the incremental value for the
 * first request; with reanchor (page/offset styles of an incremental
 * stream) each page that brought new items restarts at the first page from
 * the cursor, so items shifting between pages are not skipped.
 */
static int read_pages(rest_reader *r, const char *endpoint, const char *records_path,
                      const char *since, int reanchor, item_fn fn, page_fn done)
{
    const rest_stream_cfg *s = r->s;
    ctx_buf url = CTX_BUF_INIT, next = CTX_BUF_INIT;
    char token[REST_STATE_MAX] = "", tbuf[64];
    int64_t page = r->style == PAGE_OFFSET ? 0 : s->start_page;
    json_t *root = NULL, *items, *x;
    size_t i, n, longest = 0;
    int rc, more, have_next = 0, restarted = 0;

    for (;;) {
        if (have_next) {
            ctx_buf_reset(&url);
            rc = ctx_buf_puts(&url, next.data);
        } else {
            rc = page_url(r, endpoint, since, page, token[0] ? token : NULL, &url);
        }
        if (rc) {
            rc = conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
            break;
        }
        if ((rc = http_call(r->c, r->what, url.data, NULL, &r->resp, r->e)) ||
            (rc = parse_answer(r->c, r->what, url.data, &r->resp, &root, r->e)))
            break;
        items = jpath(root, records_path);
        if (!json_is_array(items)) {
            rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: no array at records path"
                          " \"%s\" (found %s); set the stream's records to the path of the"
                          " item list", r->what, url_path(url.data), records_path,
                          items ? ctx_json_typename(items) : "nothing");
            break;
        }
        n = json_array_size(items);
        r->fresh = 0;
        json_array_foreach(items, i, x)
            if ((rc = fn(r, x, url.data)))
                goto done;
        if (done && (rc = done(r)))
            break;
        more = 0;
        switch (r->style) {
        case PAGE_NUMBER:
        case PAGE_OFFSET:
            /* A page shorter than page_size and than an earlier one is the last;
             * a server that caps the page size below page_size reads on. */
            more = n && (n >= (size_t)s->page_size || n >= longest);
            if (n > longest)
                longest = n;
            /* A restarted page with nothing new: the server ignores since, or a
             * page of ties; page on plainly from here. */
            if (restarted && !r->fresh)
                reanchor = 0;
            restarted = 0;
            if (more && reanchor && r->fresh && r->have_cur) {
                /* Start again just after the cursor: nothing shifted is skipped. */
                since = r->cur_raw;
                page = r->style == PAGE_OFFSET ? 0 : s->start_page;
                restarted = 1;
            } else {
                page += r->style == PAGE_OFFSET ? (int64_t)n : 1;
            }
            break;
        case PAGE_CURSOR: {
            const char *t = jtext(jpath(root, s->cursor_path), tbuf, sizeof tbuf);
            more = n && t && *t;
            if (more) {
                if (strlen(t) >= sizeof token) {
                    rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: the next-page token"
                                  " is longer than %d bytes", r->what, url_path(url.data),
                                  REST_STATE_MAX - 1);
                    goto done;
                }
                if (!strcmp(t, token)) {
                    rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: the server returned"
                                  " the same next-page token again; stopping a loop",
                                  r->what, url_path(url.data));
                    goto done;
                }
                snprintf(token, sizeof token, "%s", t);
            }
            break;
        }
        case PAGE_LINK:
            if ((rc = link_next(r, url.data, &next, &have_next)))
                goto done;
            more = n && have_next;
            break;
        default:
            break;
        }
        json_decref(root);
        root = NULL;
        if (!more)
            break;
    }
done:
    json_decref(root);
    ctx_buf_free(&url);
    ctx_buf_free(&next);
    return rc;
}

/* ---- documents ---- */

/* item_time - the item's updated_at as raw text (copied to raw) and ms. */
static int item_time(rest_reader *r, json_t *item, const char *url, char *raw, size_t rawlen,
                     int64_t *ms)
{
    char buf[64];
    const char *t;

    *ms = 0;
    raw[0] = '\0';
    if (!r->s->updated_at)
        return CTX_CONN_OK;
    t = jtext(jpath(item, r->s->updated_at), buf, sizeof buf);
    if (!t)
        return CTX_CONN_OK;
    if ((*ms = parse_time(t)) < 0)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: updated_at \"%.40s\" is neither"
                        " ISO 8601 nor epoch seconds; point updated_at at a time field",
                        r->what, url_path(url), t);
    if (strlen(t) >= rawlen)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: updated_at value too long",
                        r->what, url_path(url));
    snprintf(raw, rawlen, "%s", t);
    return CTX_CONN_OK;
}

/* item_acl - the item's permissions from its fields and the permissions endpoint. */
static int item_acl(rest_reader *r, json_t *item, const char *id, ctx_acl *acl)
{
    const rest_stream_cfg *s = r->s;
    json_t *root = NULL;
    int rc;

    ctx_strvec_clear(&r->allow);
    ctx_strvec_clear(&r->deny);
    ctx_strvec_clear(&r->labels);
    if (add_values(&r->allow, "user:", item, s->allow_users) ||
        add_values(&r->allow, "group:", item, s->allow_groups) ||
        add_values(&r->deny, "user:", item, s->deny_users) ||
        add_values(&r->deny, "group:", item, s->deny_groups) ||
        add_values(&r->labels, NULL, item, s->labels) ||
        (s->allow_everyone && sl_add(&r->allow, NULL, "everyone")))
        return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    if (s->permissions_endpoint) {
        if (expand(r, &r->tmp, s->permissions_endpoint, id, 1) ||
            endpoint_url(r->c, &r->url, r->tmp.data))
            return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        if ((rc = http_call(r->c, r->what, r->url.data, NULL, &r->presp, r->e)) ||
            (rc = parse_answer(r->c, r->what, r->url.data, &r->presp, &root, r->e)))
            return rc;
        rc = add_values(&r->allow, "user:", root, s->permissions_users) ||
             add_values(&r->allow, "group:", root, s->permissions_groups);
        json_decref(root);
        if (rc)
            return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    }
    memset(acl, 0, sizeof *acl);
    acl->allow = (const char *const *)r->allow.v;
    acl->n_allow = r->allow.n;
    acl->deny = (const char *const *)r->deny.v;
    acl->n_deny = r->deny.n;
    acl->labels = (const char *const *)r->labels.v;
    acl->n_labels = r->labels.n;
    return CTX_CONN_OK;
}

/* item_body - the body fields joined by blank lines into r->body. */
static int item_body(rest_reader *r, json_t *item)
{
    const ctx_strlist *b = &r->s->body;
    char buf[64];
    const char *t;
    int rc = 0;

    ctx_buf_reset(&r->body);
    for (size_t i = 0; i < b->n && !rc; i++) {
        json_t *v = jpath(item, b->v[i]);
        if (!(t = jtext(v, buf, sizeof buf)) || !*t)
            continue;
        if (r->body.len)
            rc = ctx_buf_puts(&r->body, "\n\n");
        rc = rc || ctx_buf_puts(&r->body, t);
    }
    return rc ? CTX_ENOMEM : CTX_OK;
}

static int emit_document(rest_reader *r, json_t *item, const char *url)
{
    const rest_stream_cfg *s = r->s;
    char idbuf[64], tbuf[64], ubuf[64], raw[REST_STATE_MAX];
    const char *id = jtext(jpath(item, s->id), idbuf, sizeof idbuf);
    ctx_record rec;
    ctx_acl acl;
    int64_t ms;
    int rc, again = 0;

    if (!json_is_object(item))
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: an item is %s, not an object",
                        r->what, url_path(url), ctx_json_typename(item));
    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: an item has no \"%s\" field;"
                        " set the stream's id to the field holding the key", r->what,
                        url_path(url), s->id);
    if (strlen(id) >= REST_STATE_MAX)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: id \"%.40s...\" is longer than"
                        " %d bytes", r->what, url_path(url), id, REST_STATE_MAX - 1);
    if ((rc = item_time(r, item, url, raw, sizeof raw, &ms)))
        return rc;
    if (r->incremental && r->have_cur && raw[0] &&
        (ms < r->cur_ms || (ms == r->cur_ms && cmp_id(id, r->cur_id) <= 0))) {
        /* At or before the cursor: already emitted, unless the lookback
         * window before the state's cursor asks for it again. */
        if (!r->lookback || ms < r->floor_ms || ms > r->start_ms ||
            (ms == r->start_ms && cmp_id(id, r->start_id) > 0))
            return CTX_CONN_OK;
        again = 1;
    }
    if ((rc = item_acl(r, item, id, &acl)) || (rc = item_body(r, item)))
        return rc == CTX_ENOMEM ? conn_errf(r->e, rc, "out of memory") : rc;
    memset(&rec, 0, sizeof rec);
    rec.stream = s->name;
    rec.id = id;
    rec.title = s->title ? jtext(jpath(item, s->title), tbuf, sizeof tbuf) : NULL;
    rec.body = r->body.data;
    rec.body_len = r->body.len;
    rec.updated_at_ms = ms;
    rec.acl = &acl;
    if (s->url) {
        rec.url = jtext(jpath(item, s->url), ubuf, sizeof ubuf);
    } else if (s->url_template) {
        if (expand(r, &r->tmp, s->url_template, id, 0))
            return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        rec.url = r->tmp.data;
    }
    if (r->host->xRecord(r->em, &rec))
        return conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host");
    /* A re-read is not news: it must not restart page/offset reading. */
    r->fresh += !again;
    if (r->incremental && raw[0] &&
        (!r->have_cur || ms > r->cur_ms || (ms == r->cur_ms && cmp_id(id, r->cur_id) > 0))) {
        snprintf(r->cur_raw, sizeof r->cur_raw, "%s", raw);
        snprintf(r->cur_id, sizeof r->cur_id, "%s", id);
        r->cur_ms = ms;
        r->have_cur = 1;
    }
    return CTX_CONN_OK;
}

static int emit_deleted(rest_reader *r, json_t *item, const char *url)
{
    const rest_stream_cfg *s = r->s;
    char idbuf[64], tbuf[64];
    const char *id = jtext(jpath(item, s->deleted_id), idbuf, sizeof idbuf);
    const char *at = jtext(jpath(item, s->deleted_at), tbuf, sizeof tbuf);
    int64_t ms = at ? parse_time(at) : -1;

    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: a deleted item has no \"%s\""
                        " field; set the stream's deleted_id", r->what, url_path(url),
                        s->deleted_id);
    if (r->host->xDelete(r->em, s->name, id))
        return conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host");
    if (ms >= 0 && ms >= r->del_ms && strlen(at) < sizeof r->del_raw) {
        snprintf(r->del_raw, sizeof r->del_raw, "%s", at);
        r->del_ms = ms;
    }
    return CTX_CONN_OK;
}

/* put_state - STATE of a documents stream: both cursors, emitted after a whole page. */
static int put_state(rest_reader *r)
{
    json_t *st = json_object();
    char *text;
    int rc;

    if (!st || (r->have_cur && (json_object_set_new(st, "updated_at", json_string(r->cur_raw)) ||
                                json_object_set_new(st, "id", json_string(r->cur_id)))) ||
        (r->del_raw[0] && json_object_set_new(st, "deleted_since", json_string(r->del_raw))) ||
        !(text = ctx_json_text(st, JSON_COMPACT))) {
        json_decref(st);
        return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    }
    json_decref(st);
    rc = r->host->xState(r->em, r->s->name, text);
    free(text);
    return rc ? conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host") : CTX_CONN_OK;
}

/*
 * format_like - ms as the API wrote raw: epoch seconds or milliseconds when
 * raw is a number, else ISO 8601 UTC to the second (rounded down, which an
 * inclusive since only widens).
 */
static void format_like(const char *raw, int64_t ms, char *out, size_t len)
{
    time_t t;
    struct tm tm;

    if (strspn(raw, "0123456789.") == strlen(raw)) {
        snprintf(out, len, "%lld", (long long)(strtod(raw, NULL) > 1e11 ? ms : ms / 1000));
        return;
    }
    t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* load_state - the cursors of the last committed STATE. */
static void load_state(rest_reader *r, const char *state, int full)
{
    json_t *st = state ? ctx_json_loads(state, 0, NULL) : NULL;
    const char *ts = json_string_value(json_object_get(st, "updated_at"));
    const char *id = json_string_value(json_object_get(st, "id"));
    const char *del = json_string_value(json_object_get(st, "deleted_since"));

    if (!full && r->incremental && ts && id && strlen(ts) < REST_STATE_MAX &&
        strlen(id) < REST_STATE_MAX && parse_time(ts) >= 0) {
        snprintf(r->cur_raw, sizeof r->cur_raw, "%s", ts);
        snprintf(r->cur_id, sizeof r->cur_id, "%s", id);
        r->cur_ms = parse_time(ts);
        r->have_cur = 1;
        if (r->s->lookback_seconds) {
            r->lookback = 1;
            r->start_ms = r->cur_ms;
            snprintf(r->start_id, sizeof r->start_id, "%s", id);
            r->floor_ms = r->cur_ms - r->s->lookback_seconds * 1000;
            format_like(ts, r->floor_ms, r->floor_raw, sizeof r->floor_raw);
        }
    }
    if (del && strlen(del) < REST_STATE_MAX && parse_time(del) >= 0) {
        snprintf(r->del_raw, sizeof r->del_raw, "%s", del);
        r->del_ms = parse_time(del);
    }
    json_decref(st);
}

static int read_documents(rest_reader *r, const char *state, int full)
{
    const rest_stream_cfg *s = r->s;
    int rc;

    load_state(r, state, full);
    rc = read_pages(r, s->endpoint, s->records,
                    r->lookback ? r->floor_raw : r->have_cur ? r->cur_raw : NULL,
                    r->incremental, emit_document, put_state);
    if (rc || !s->deleted_endpoint)
        return rc;
    /* A full read prunes what it did not see; the deleted list is then moot. */
    return read_pages(r, s->deleted_endpoint, s->deleted_records ? s->deleted_records
                                                                  : s->records,
                      r->del_raw[0] ? r->del_raw : NULL, 0, emit_deleted, put_state);
}

/* ---- principals ---- */

static int emit_user(rest_reader *r, json_t *item, const char *url)
{
    const rest_stream_cfg *s = r->s;
    char idbuf[64], nbuf[64], ebuf[64];
    const char *id = jtext(jpath(item, s->id), idbuf, sizeof idbuf);
    const char *email = jtext(jpath(item, s->email), ebuf, sizeof ebuf);
    ctx_principal p;
    int rc;

    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: a user has no \"%s\" field; set"
                        " the stream's id", r->what, url_path(url), s->id);
    ctx_strvec_clear(&r->members);
    if (sl_add(&r->members, strncmp(id, "user:", 5) ? "user:" : NULL, id) ||
        (email && *email && sl_add(&r->members, "user:", email)))
        return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    memset(&p, 0, sizeof p);
    p.kind = CTX_PRINCIPAL_USER;
    p.id = r->members.v[0];
    p.display_name = jtext(jpath(item, s->display_name), nbuf, sizeof nbuf);
    p.email = email && *email ? email : NULL;
    /* The source's account stands for the canonical user of the same email. */
    if (r->members.n > 1 && strcmp(r->members.v[0], r->members.v[1]))
        p.maps_to = r->members.v[1];
    rc = r->host->xPrincipal(r->em, &p);
    return rc ? conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host") : CTX_CONN_OK;
}

static int put_group(rest_reader *r, const char *name, const char *display)
{
    ctx_principal p;
    memset(&p, 0, sizeof p);
    p.kind = CTX_PRINCIPAL_GROUP;
    p.id = name;
    p.display_name = display;
    p.members = (const char *const *)r->members.v;
    p.n_members = r->members.n;
    return r->host->xPrincipal(r->em, &p) ? conn_errf(r->e, CTX_CONN_ECANCELED,
                                                     "stopped by the host")
                                          : CTX_CONN_OK;
}

static int emit_group(rest_reader *r, json_t *item, const char *url)
{
    const rest_stream_cfg *s = r->s;
    char idbuf[64], nbuf[64];
    const char *id = jtext(jpath(item, s->id), idbuf, sizeof idbuf);
    const char *name;

    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: a group has no \"%s\" field;"
                        " set the stream's id", r->what, url_path(url), s->id);
    ctx_buf_reset(&r->tmp);
    if (ctx_buf_printf(&r->tmp, "%s%s", strncmp(id, "group:", 6) ? "group:" : "", id))
        return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    name = r->tmp.data;
    ctx_strvec_clear(&r->members);
    if (add_values(&r->members, "user:", item, s->members) ||
        add_values(&r->members, "group:", item, s->member_groups) ||
        json_array_append_new(r->seen, json_string(name)))
        return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    json_object_del(r->gone, name);
    return put_group(r, name, jtext(jpath(item, s->display_name), nbuf, sizeof nbuf));
}

/*
 * read_principals - every user or group; one STATE at the end. A groups
 * stream's state lists the groups it emitted, so a group that disappears
 * is sent again with no members and its members lose access.
 */
static int read_principals(rest_reader *r, const char *state)
{
    json_t *old = state ? ctx_json_loads(state, 0, NULL) : NULL, *v, *st = NULL;
    char *text = NULL;
    const char *name;
    void *tmp;
    size_t i;
    int rc;

    r->seen = json_array();
    r->gone = json_object();
    if (!r->seen || !r->gone) {
        rc = conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    json_array_foreach(json_object_get(old, "groups"), i, v)
        if (json_is_string(v))
            json_object_set(r->gone, json_string_value(v), json_true());
    rc = read_pages(r, r->s->endpoint, r->s->records, NULL, 0,
                    r->kind == KIND_USERS ? emit_user : emit_group, NULL);
    if (rc)
        goto done;
    ctx_strvec_clear(&r->members);
    json_object_foreach_safe(r->gone, tmp, name, v) {
        rest_log(r->c, CTX_CONN_LOG_INFO, "%s: %s is gone; its members are cleared", r->what,
                 name);
        if ((rc = put_group(r, name, NULL)))
            goto done;
    }
    st = r->kind == KIND_GROUPS ? json_pack("{s:O}", "groups", r->seen) : json_object();
    if (!st || !(text = ctx_json_text(st, JSON_COMPACT))) {
        rc = conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    rc = r->host->xState(r->em, r->s->name, text)
             ? conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host")
             : CTX_CONN_OK;
done:
    free(text);
    json_decref(st);
    json_decref(old);
    return rc;
}

/* ---- the vtable ---- */

static void reader_init(rest_reader *r, rest_conn *c, size_t si, ctx_conn_error *e)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->s = stream_at(c, si);
    r->kind = pick(r->s->kind, kind_names);
    r->style = pick(r->s->pagination, page_names);
    r->incremental = r->kind == KIND_DOCS && r->s->updated_at && r->s->since_param;
    r->e = e;
    snprintf(r->what, sizeof r->what, "streams[%zu] (%s)", si, r->s->name);
}

static void reader_free(rest_reader *r)
{
    resp_free(&r->resp);
    resp_free(&r->presp);
    ctx_strvec_free(&r->allow);
    ctx_strvec_free(&r->deny);
    ctx_strvec_free(&r->labels);
    ctx_strvec_free(&r->members);
    ctx_buf_free(&r->body);
    ctx_buf_free(&r->url);
    ctx_buf_free(&r->tmp);
    json_decref(r->seen);
    json_decref(r->gone);
}

static int find_stream(const rest_conn *c, const char *name, size_t *si)
{
    for (size_t i = 0; i < c->cfg.streams.n; i++)
        if (!strcmp(stream_at(c, i)->name, name)) {
            *si = i;
            return 1;
        }
    return 0;
}

static int rest_read(void *conn, const char *stream, const char *state, int full,
                     const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    rest_conn *c = conn;
    rest_reader r;
    size_t si;
    int rc;

    if (!find_stream(c, stream, &si))
        return conn_errf(e, CTX_CONN_EINVAL, "no stream \"%s\" in this source's config",
                        stream);
    reader_init(&r, c, si, e);
    r.host = c->host = host;
    r.em = c->em = em;
    rc = r.kind == KIND_DOCS ? read_documents(&r, state, full) : read_principals(&r, state);
    c->host = NULL;
    c->em = NULL;
    reader_free(&r);
    return rc;
}

static int count_item(rest_reader *r, json_t *item, const char *url)
{
    (void)r;
    (void)item;
    (void)url;
    return CTX_CONN_OK;
}

/* rest_check - the first page of every stream: reachable, accepted, JSON, records found. */
static int rest_check(void *conn, ctx_conn_error *e)
{
    rest_conn *c = conn;
    rest_reader r;
    int rc = CTX_CONN_OK;

    for (size_t i = 0; !rc && i < c->cfg.streams.n; i++) {
        reader_init(&r, c, i, e);
        r.style = PAGE_NONE; /* one request is enough */
        rc = read_pages(&r, r.s->endpoint, r.s->records, NULL, 0, count_item, NULL);
        reader_free(&r);
    }
    return rc;
}

static int rest_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    const rest_conn *c = conn;

    for (size_t i = 0; i < c->cfg.streams.n; i++) {
        const rest_stream_cfg *s = stream_at(c, i);
        int kind = pick(s->kind, kind_names);
        json_t *d = json_pack("{s:s,s:s,s:b}", "kind",
                              kind == KIND_DOCS ? "documents" : "principals", "endpoint",
                              s->endpoint, "incremental",
                              kind == KIND_DOCS && s->since_param != NULL);
        char *text = d ? ctx_json_text(d, JSON_COMPACT) : NULL;
        int stop;
        json_decref(d);
        if (!text)
            return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        stop = fn(arg, s->name, text);
        free(text);
        if (stop)
            return conn_errf(e, CTX_CONN_ECANCELED, "discover stopped by the host");
    }
    return CTX_CONN_OK;
}

/* ---- the permission read ---- */

/* emit_acl_item - one listed item as an ACL message: its id and permissions
 * (with the permissions endpoint when configured); the body is not read. */
static int emit_acl_item(rest_reader *r, json_t *item, const char *url)
{
    char idbuf[64];
    const char *id = jtext(jpath(item, r->s->id), idbuf, sizeof idbuf);
    ctx_acl acl;
    int rc;

    if (!json_is_object(item))
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: an item is %s, not an object",
                        r->what, url_path(url), ctx_json_typename(item));
    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: an item has no \"%s\" field;"
                        " set the stream's id to the field holding the key", r->what,
                        url_path(url), r->s->id);
    if ((rc = item_acl(r, item, id, &acl)))
        return rc;
    if (r->host->xAcl(r->em, r->s->name, id, &acl))
        return conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host");
    return CTX_CONN_OK;
}

/* put_perm_state - a commit point after each page of a permission read. */
static int put_perm_state(rest_reader *r)
{
    if (r->host->xState(r->em, r->s->name, "{\"permissions\":true}"))
        return conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host");
    return CTX_CONN_OK;
}

/*
 * rest_read_permissions - every page of the list endpoint from the start
 * (no since), one ACL message per item; the deleted endpoint is not needed
 * (the host deletes what got no message). Principal streams read as usual.
 */
static int rest_read_permissions(void *conn, const char *stream, const char *state,
                                 const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    rest_conn *c = conn;
    rest_reader r;
    size_t si;
    int rc;

    (void)state; /* paging has no resume point worth trusting: start over */
    if (!find_stream(c, stream, &si))
        return conn_errf(e, CTX_CONN_EINVAL, "no stream \"%s\" in this source's config",
                        stream);
    reader_init(&r, c, si, e);
    r.incremental = 0;
    r.host = c->host = host;
    r.em = c->em = em;
    if (r.kind != KIND_DOCS)
        rc = read_principals(&r, NULL);
    else if (!(rc = read_pages(&r, r.s->endpoint, r.s->records, NULL, 0, emit_acl_item,
                               put_perm_state)))
        rc = put_perm_state(&r);
    c->host = NULL;
    c->em = NULL;
    reader_free(&r);
    return rc;
}

const ctx_connector ctx__rest_connector = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_connector), "rest", "1.0.0",
    rest_spec, rest_open, rest_check, rest_discover, rest_read, rest_close,
    /* ---- version 2 ---- */
    rest_read_permissions,
};
