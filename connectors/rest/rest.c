/*
 * rest.c - the SaaS REST connector (libcurl + jansson). Each configured
 * stream is one JSON list endpoint, mapped declaratively onto records,
 * principals (users, groups) and deletes, paged by page number, offset,
 * a cursor token in the body or a Link header, read incrementally by an
 * (updated_at, id) cursor. All streams of a source share one HTTP handle,
 * one credential and so one rate budget.
 *
 * Streams: one per streams[] entry, in the configured order. The
 * requests themselves are in rest_http.c (rest_int.h).
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

#include "../../core/json.h"
#include "../../core/opts.h"
#include "../../core/util.h"
#include "../registry.h"
#include "rest_int.h"

/* ---- configuration ---- */


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

void rest_log(const rest_conn *c, int level, const char *fmt, ...)
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


/* foreign - 1 when an endpoint is an absolute URL on another host than base_url. */
static int foreign(const rest_conn *c, const char *endpoint)
{
    return endpoint && (!strncmp(endpoint, "http://", 7) || !strncmp(endpoint, "https://", 8)) &&
           !rest_same_origin(endpoint, c->cfg.base_url);
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
void rest_err_prefix(ctx_conn_error *e, const char *what)
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
    v = rest_jpath(v, path);
    if (!json_is_array(v))
        return add_value(l, prefix, rest_jtext(v, buf, sizeof buf));
    json_array_foreach(v, i, x)
        if (add_value(l, prefix, rest_jtext(x, buf, sizeof buf)))
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
int rest_endpoint_url(const rest_conn *c, ctx_buf *out, const char *endpoint)
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

    if (rest_endpoint_url(r->c, out, endpoint))
        return CTX_ENOMEM;
    json_object_foreach_safe(s->params, tmp, k, v)
        if (add_param(r->c, out, k, rest_jtext(v, buf, sizeof buf)))
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
            rest_copy_value(params, sizeof params, gt + 1, n);
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
                              " URL is not a URL", r->what, rest_url_path(url));
            ctx_free(target);
        }
        curl_url_cleanup(u);
        if (!rc && !rest_same_origin(abs, r->c->cfg.base_url))
            rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: the Link header points to"
                          " another host; refused, the credential stays with base_url",
                          r->what, rest_url_path(url));
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
        if ((rc = rest_http_call(r->c, r->what, url.data, NULL, &r->resp, r->e)) ||
            (rc = rest_parse_answer(r->c, r->what, url.data, &r->resp, &root, r->e)))
            break;
        items = rest_jpath(root, records_path);
        if (!json_is_array(items)) {
            rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: no array at records path"
                          " \"%s\" (found %s); set the stream's records to the path of the"
                          " item list", r->what, rest_url_path(url.data), records_path,
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
            const char *t = rest_jtext(rest_jpath(root, s->cursor_path), tbuf, sizeof tbuf);
            more = n && t && *t;
            if (more) {
                if (strlen(t) >= sizeof token) {
                    rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: the next-page token"
                                  " is longer than %d bytes", r->what, rest_url_path(url.data),
                                  REST_STATE_MAX - 1);
                    goto done;
                }
                if (!strcmp(t, token)) {
                    rc = conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: the server returned"
                                  " the same next-page token again; stopping a loop",
                                  r->what, rest_url_path(url.data));
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
    t = rest_jtext(rest_jpath(item, r->s->updated_at), buf, sizeof buf);
    if (!t)
        return CTX_CONN_OK;
    if ((*ms = rest_parse_time(t)) < 0)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: updated_at \"%.40s\" is neither"
                        " ISO 8601 nor epoch seconds; point updated_at at a time field",
                        r->what, rest_url_path(url), t);
    if (strlen(t) >= rawlen)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: updated_at value too long",
                        r->what, rest_url_path(url));
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
            rest_endpoint_url(r->c, &r->url, r->tmp.data))
            return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        if ((rc = rest_http_call(r->c, r->what, r->url.data, NULL, &r->presp, r->e)) ||
            (rc = rest_parse_answer(r->c, r->what, r->url.data, &r->presp, &root, r->e)))
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
        json_t *v = rest_jpath(item, b->v[i]);
        if (!(t = rest_jtext(v, buf, sizeof buf)) || !*t)
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
    const char *id = rest_jtext(rest_jpath(item, s->id), idbuf, sizeof idbuf);
    ctx_record rec;
    ctx_acl acl;
    int64_t ms;
    int rc, again = 0;

    if (!json_is_object(item))
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: an item is %s, not an object",
                        r->what, rest_url_path(url), ctx_json_typename(item));
    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: an item has no \"%s\" field;"
                        " set the stream's id to the field holding the key", r->what,
                        rest_url_path(url), s->id);
    if (strlen(id) >= REST_STATE_MAX)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: id \"%.40s...\" is longer than"
                        " %d bytes", r->what, rest_url_path(url), id, REST_STATE_MAX - 1);
    if ((rc = item_time(r, item, url, raw, sizeof raw, &ms)))
        return rc;
    if (r->incremental && r->have_cur && raw[0] &&
        (ms < r->cur_ms || (ms == r->cur_ms && rest_cmp_id(id, r->cur_id) <= 0))) {
        /* At or before the cursor: already emitted, unless the lookback
         * window before the state's cursor asks for it again. */
        if (!r->lookback || ms < r->floor_ms || ms > r->start_ms ||
            (ms == r->start_ms && rest_cmp_id(id, r->start_id) > 0))
            return CTX_CONN_OK;
        again = 1;
    }
    if ((rc = item_acl(r, item, id, &acl)) || (rc = item_body(r, item)))
        return rc == CTX_ENOMEM ? conn_errf(r->e, rc, "out of memory") : rc;
    memset(&rec, 0, sizeof rec);
    rec.stream = s->name;
    rec.id = id;
    rec.title = s->title ? rest_jtext(rest_jpath(item, s->title), tbuf, sizeof tbuf) : NULL;
    rec.body = r->body.data;
    rec.body_len = r->body.len;
    rec.updated_at_ms = ms;
    rec.acl = &acl;
    if (s->url) {
        rec.url = rest_jtext(rest_jpath(item, s->url), ubuf, sizeof ubuf);
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
        (!r->have_cur || ms > r->cur_ms || (ms == r->cur_ms && rest_cmp_id(id, r->cur_id) > 0))) {
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
    const char *id = rest_jtext(rest_jpath(item, s->deleted_id), idbuf, sizeof idbuf);
    const char *at = rest_jtext(rest_jpath(item, s->deleted_at), tbuf, sizeof tbuf);
    int64_t ms = at ? rest_parse_time(at) : -1;

    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: a deleted item has no \"%s\""
                        " field; set the stream's deleted_id", r->what, rest_url_path(url),
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
        strlen(id) < REST_STATE_MAX && rest_parse_time(ts) >= 0) {
        snprintf(r->cur_raw, sizeof r->cur_raw, "%s", ts);
        snprintf(r->cur_id, sizeof r->cur_id, "%s", id);
        r->cur_ms = rest_parse_time(ts);
        r->have_cur = 1;
        if (r->s->lookback_seconds) {
            r->lookback = 1;
            r->start_ms = r->cur_ms;
            snprintf(r->start_id, sizeof r->start_id, "%s", id);
            r->floor_ms = r->cur_ms - r->s->lookback_seconds * 1000;
            format_like(ts, r->floor_ms, r->floor_raw, sizeof r->floor_raw);
        }
    }
    if (del && strlen(del) < REST_STATE_MAX && rest_parse_time(del) >= 0) {
        snprintf(r->del_raw, sizeof r->del_raw, "%s", del);
        r->del_ms = rest_parse_time(del);
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
    const char *id = rest_jtext(rest_jpath(item, s->id), idbuf, sizeof idbuf);
    const char *email = rest_jtext(rest_jpath(item, s->email), ebuf, sizeof ebuf);
    ctx_principal p;
    int rc;

    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: a user has no \"%s\" field; set"
                        " the stream's id", r->what, rest_url_path(url), s->id);
    ctx_strvec_clear(&r->members);
    if (sl_add(&r->members, strncmp(id, "user:", 5) ? "user:" : NULL, id) ||
        (email && *email && sl_add(&r->members, "user:", email)))
        return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    memset(&p, 0, sizeof p);
    p.kind = CTX_PRINCIPAL_USER;
    p.id = r->members.v[0];
    p.display_name = rest_jtext(rest_jpath(item, s->display_name), nbuf, sizeof nbuf);
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
    const char *id = rest_jtext(rest_jpath(item, s->id), idbuf, sizeof idbuf);
    const char *name;

    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: a group has no \"%s\" field;"
                        " set the stream's id", r->what, rest_url_path(url), s->id);
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
    return put_group(r, name, rest_jtext(rest_jpath(item, s->display_name), nbuf, sizeof nbuf));
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
    rest_resp_free(&r->resp);
    rest_resp_free(&r->presp);
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
    const char *id = rest_jtext(rest_jpath(item, r->s->id), idbuf, sizeof idbuf);
    ctx_acl acl;
    int rc;

    if (!json_is_object(item))
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: an item is %s, not an object",
                        r->what, rest_url_path(url), ctx_json_typename(item));
    if (!id || !*id)
        return conn_errf(r->e, CTX_CONN_ESOURCE, "%s: GET %s: an item has no \"%s\" field;"
                        " set the stream's id to the field holding the key", r->what,
                        rest_url_path(url), r->s->id);
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
