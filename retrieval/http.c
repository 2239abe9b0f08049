/*
 * http.c - routes, authentication, limits and metrics of the HTTP service
 * on libmicrohttpd (see http.h).
 */
#include "http.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/json.h"
#include "../core/util.h"
#include "../indexer/store_read.h"
#include "budget.h"
#include "replica_gate.h"
#include "scim.h"

#define MAX_ROUTES 32
#define NBUCKETS 4096

typedef struct route {
    char path[128];
    int prefix;             /* path is a prefix ("/v1/documents/") */
    int auth;               /* HTTP_AUTH_* */
    http_handler fn;
    void *arg;
    const char *label;      /* the endpoint label in metrics */
} route;

/* Latency histogram bounds, seconds. */
static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
#define NB (sizeof bounds / sizeof bounds[0])

typedef struct endpoint_stats {
    uint64_t codes[6];      /* by status / 100 */
    uint64_t by_code[600];  /* by exact status */
    uint64_t hist[NB + 1];
    double sum;
    uint64_t count;
} endpoint_stats;

typedef struct bucket {
    struct bucket *next;
    char *key;              /* "u:" or "a:" + name */
    double tokens;
    uint64_t last_ns;
} bucket;

struct http_server {
    const ctx_config *cfg;
    svc *service;
    pthread_rwlock_t alock; /* auth: http_auth_set swaps it */
    auth *auth;
    struct MHD_Daemon *d;
    route routes[MAX_ROUTES];
    size_t nroutes;
    char base[512];
    int port;
    pthread_mutex_t mu;     /* stats and buckets */
    endpoint_stats stats[MAX_ROUTES + 1];   /* the last: no route */
    bucket *buckets[NBUCKETS];
    ctx_store *mst;         /* the metrics' own connection, under mu */
    int have_admin;         /* an admin token is configured */
    unsigned char admin_sha[SHA256_DIGEST_LENGTH]; /* its SHA-256, not the token itself */
    scim *scim;             /* /scim/v2 of the source of type "scim", or NULL */
};

typedef struct conn_state {
    ctx_buf body;
    int too_big;
    uint64_t t0;
} conn_state;

auth *http_auth_set(http_server *srv, auth *a)
{
    auth *old;
    pthread_rwlock_wrlock(&srv->alock);
    old = srv->auth;
    srv->auth = a;
    pthread_rwlock_unlock(&srv->alock);
    return old;
}

const char *http_base_url(const http_server *srv) { return srv->base; }
int http_port(const http_server *srv) { return srv->port; }

const char *http_header(const http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const http_req *req, const char *name)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

void http_json(http_resp *resp, int status, json_t *o)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = ctx_json_dumps(o, &resp->body_len);
    json_decref(o);
}

void http_error(http_resp *resp, int status, const char *code, const char *msg)
{
    http_json(resp, status, json_pack("{s:s,s:s}", "error", code, "message", msg));
}

/* ---- rate limits ---- */

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

/* take_token - 0 when allowed, else seconds to wait. Caller holds mu. */
static int take_token(http_server *srv, const char *kind, const char *name, int64_t rate,
                      int64_t burst)
{
    char key[300];
    bucket *b;
    uint64_t now = ctx_mono_ns();
    size_t i;

    if (rate <= 0 || !name || !*name)
        return 0;
    snprintf(key, sizeof key, "%s:%s", kind, name);
    i = fnv(key) % NBUCKETS;
    for (b = srv->buckets[i]; b && strcmp(b->key, key); b = b->next)
        ;
    if (!b) {
        if (!(b = ctx_calloc(1, sizeof *b)) || !(b->key = ctx_strdup(key))) {
            ctx_free(b);
            return 1;
        }
        b->tokens = (double)burst;
        b->last_ns = now;
        b->next = srv->buckets[i];
        srv->buckets[i] = b;
    }
    b->tokens += (double)(now - b->last_ns) / 1e9 * (double)rate;
    if (b->tokens > (double)burst)
        b->tokens = (double)burst;
    b->last_ns = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    return (int)ceil((1.0 - b->tokens) / (double)rate);
}

/* ---- handlers ---- */

static void h_health(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    (void)srv;
    (void)arg;
    (void)req;
    http_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_ready(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    (void)arg;
    (void)req;
    if (!replica_gate_ready())
        http_error(resp, 503, "not_ready", "the replica has not caught up with PostgreSQL yet");
    else if (replica_gate_stale(ctx_now_ms()))
        /* searches answer 503 replica_behind now: a balancer should stop sending them */
        http_error(resp, 503, "replica_behind", "the replica is further behind PostgreSQL"
                   " than cluster.max_lag_s");
    else if (svc_ready(srv->service))
        http_json(resp, 200, json_pack("{s:s}", "status", "ready"));
    else
        http_error(resp, 503, "not_ready", "the store or the vector index is not available");
}

/* budget_spent - 429 naming the spent token budget, Retry-After its reset. */
static void budget_spent(http_server *srv, const svc_identity *id, const ctx_error *err,
                         http_resp *resp)
{
    int64_t reset = 0, now = ctx_now_ms();
    ctx_error again;

    http_error(resp, 429, "budget_exhausted", err->text);
    svc_budget_check(srv->service, id, &reset, &again);
    snprintf(resp->header_name, sizeof resp->header_name, "Retry-After");
    snprintf(resp->header_value, sizeof resp->header_value, "%lld",
             (long long)(reset > now ? (reset - now + 999) / 1000 : 1));
}

/* h_budgets - GET /v1/admin/budgets: every token budget's state (svc_budgets). */
static void h_budgets(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    json_t *b = svc_budgets(srv->service);
    (void)arg;
    (void)req;

    if (b)
        http_json(resp, 200, json_pack("{s:o}", "budgets", b));
    else
        http_error(resp, 500, "internal", "the token counts could not be read");
}

static void h_search(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    svc_identity id = {req->who->user, req->who->agent[0] ? req->who->agent : NULL};
    svc_request r;
    ctx_error err;
    json_t *answer = NULL;
    int rc;
    (void)arg;

    if ((rc = svc_request_parse(req->body, req->body_len, &r, &err))) {
        svc_audit_refusal(srv->service, &id, "search", "invalid");
        http_error(resp, rc == CTX_ENOMEM ? 500 : 400, "bad_request", err.text);
    } else if ((rc = svc_search(srv->service, &id, &r, &answer, &err)) == CTX_OK) {
        http_json(resp, 200, answer);
    } else if (rc == CTX_EAUTH) {
        http_error(resp, 403, "forbidden", err.text);
    } else if (rc == CTX_ELIMIT) {
        budget_spent(srv, &id, &err, resp);
    } else {
        ctx_log(CTX_LOG_ERROR, "http", "search: %s", err.text);
        http_error(resp, 500, "internal", "the search failed; try again later");
    }
    svc_request_free(&r);
}

static void h_document(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    svc_identity id = {req->who->user, req->who->agent[0] ? req->who->agent : NULL};
    /* The path arrives %-decoded: "wiki%3Apages%2FHome" is "wiki:pages/Home". */
    const char *p = req->path + strlen("/v1/documents/");
    json_t *answer = NULL;
    ctx_error err;
    int rc;
    (void)arg;

    /* An internal id or SOURCE:EXTERNAL_ID; anything that names nothing we
     * serve gets the same 404 as forbidden and missing. */
    rc = svc_fetch_ref(srv->service, &id, p, &answer, &err);
    if (rc == CTX_OK)
        http_json(resp, 200, answer);
    else if (rc == CTX_ENOTFOUND)
        http_error(resp, 404, "not_found", "no such document");
    else if (rc == CTX_EAUTH)
        http_error(resp, 403, "forbidden", err.text);
    else if (rc == CTX_ELIMIT)
        budget_spent(srv, &id, &err, resp);
    else {
        ctx_log(CTX_LOG_ERROR, "http", "fetch: %s", err.text);
        http_error(resp, 500, "internal", "the fetch failed; try again later");
    }
}

static void put_esc(ctx_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            ctx_buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            ctx_buf_puts(b, "\\n");
        else
            ctx_buf_append(b, s, 1);
    }
}

/* put_runs - one sample of ctxgate_sync_runs_total (store_run_counts). */
static int put_runs(void *arg, const char *source, const char *status, int64_t n)
{
    ctx_buf *b = arg;

    ctx_buf_puts(b, "ctxgate_sync_runs_total{source=\"");
    put_esc(b, source);
    ctx_buf_puts(b, "\",status=\"");
    put_esc(b, status);
    ctx_buf_printf(b, "\"} %lld\n", (long long)n);
    return 0;
}

static void h_metrics(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    ctx_buf b = CTX_BUF_INIT;
    json_t *usage = svc_usage(srv->service), *m, *v;
    const char *name;
    ctx_error err;
    (void)arg;
    (void)req;

    ctx_buf_puts(&b, "# HELP ctxgate_http_requests_total HTTP requests by endpoint and"
                     " status code.\n# TYPE ctxgate_http_requests_total counter\n");
    pthread_mutex_lock(&srv->mu);
    for (size_t r = 0; r <= srv->nroutes; r++) {
        const char *label = r < srv->nroutes ? srv->routes[r].label : "other";
        for (int c = 100; c < 600; c++)
            if (srv->stats[r].by_code[c])
                ctx_buf_printf(&b, "ctxgate_http_requests_total{endpoint=\"%s\",code=\"%d\"}"
                               " %llu\n", label, c,
                               (unsigned long long)srv->stats[r].by_code[c]);
    }
    ctx_buf_puts(&b, "# HELP ctxgate_http_request_duration_seconds Time to answer.\n"
                     "# TYPE ctxgate_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= srv->nroutes; r++) {
        const endpoint_stats *st = &srv->stats[r];
        const char *label = r < srv->nroutes ? srv->routes[r].label : "other";
        uint64_t cum = 0;
        if (!st->count)
            continue;
        for (size_t i = 0; i < NB; i++) {
            cum += st->hist[i];
            ctx_buf_printf(&b, "ctxgate_http_request_duration_seconds_bucket{endpoint=\"%s\","
                           "le=\"%g\"} %llu\n", label, bounds[i], (unsigned long long)cum);
        }
        ctx_buf_printf(&b, "ctxgate_http_request_duration_seconds_bucket{endpoint=\"%s\","
                       "le=\"+Inf\"} %llu\n", label, (unsigned long long)st->count);
        ctx_buf_printf(&b, "ctxgate_http_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n"
                       "ctxgate_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                       label, st->sum, label, (unsigned long long)st->count);
    }
    if (replica_gate_active())
        ctx_buf_printf(&b, "# HELP ctxgate_replica_lag_seconds How far this replica may be"
                       " behind PostgreSQL.\n# TYPE ctxgate_replica_lag_seconds gauge\n"
                       "ctxgate_replica_lag_seconds %.3f\n# HELP ctxgate_replica_ready 1 once"
                       " the replica caught up.\n# TYPE ctxgate_replica_ready gauge\n"
                       "ctxgate_replica_ready %d\n",
                       (double)replica_gate_lag_ms(ctx_now_ms()) / 1000.0, replica_gate_ready());
    /* From the store: sync runs by status, the embedding queue. */
    if (srv->mst) {
        int64_t depth = 0;
        ctx_buf_puts(&b, "# HELP ctxgate_sync_runs_total Sync runs by source and status.\n"
                         "# TYPE ctxgate_sync_runs_total counter\n");
        store_run_counts(srv->mst, put_runs, &b, &err); /* what could be read */
        if (!store_embed_depth(srv->mst, &depth, &err))
            ctx_buf_printf(&b, "# HELP ctxgate_embed_queue_depth Chunks waiting for a vector.\n"
                           "# TYPE ctxgate_embed_queue_depth gauge\n"
                           "ctxgate_embed_queue_depth %lld\n", (long long)depth);
    }
    pthread_mutex_unlock(&srv->mu);
    ctx_buf_puts(&b, "# HELP ctxgate_tokens_served_total Tokens of context served.\n"
                     "# TYPE ctxgate_tokens_served_total counter\n");
    m = json_object_get(usage, "users");
    json_object_foreach(m, name, v) {
        ctx_buf_puts(&b, "ctxgate_tokens_served_total{user=\"");
        put_esc(&b, name);
        ctx_buf_printf(&b, "\"} %lld\n", (long long)json_integer_value(v));
    }
    m = json_object_get(usage, "agents");
    json_object_foreach(m, name, v) {
        ctx_buf_puts(&b, "ctxgate_tokens_served_total{agent=\"");
        put_esc(&b, name);
        ctx_buf_printf(&b, "\"} %lld\n", (long long)json_integer_value(v));
    }
    json_decref(usage);
    {
        json_t *budgets = svc_budgets(srv->service);
        budget_prometheus(budgets, &b); /* used, remaining, reset of each token budget */
        json_decref(budgets);
    }
    {
        json_t *ages = svc_permission_ages(srv->service);
        ctx_buf_puts(&b, "# HELP ctxgate_permission_age_seconds Since the source's last"
                         " permission or full sync (-1: never).\n"
                         "# TYPE ctxgate_permission_age_seconds gauge\n");
        json_object_foreach(ages, name, v) {
            json_t *age = json_object_get(v, "age_s");
            ctx_buf_puts(&b, "ctxgate_permission_age_seconds{source=\"");
            put_esc(&b, name);
            ctx_buf_printf(&b, "\"} %lld\n", json_is_integer(age)
                                                 ? (long long)json_integer_value(age) : -1LL);
        }
        ctx_buf_puts(&b, "# HELP ctxgate_source_withheld 1: the source's permissions are older"
                         " than its max_permission_age; its documents are withheld.\n"
                         "# TYPE ctxgate_source_withheld gauge\n");
        json_object_foreach(ages, name, v) {
            ctx_buf_puts(&b, "ctxgate_source_withheld{source=\"");
            put_esc(&b, name);
            ctx_buf_printf(&b, "\"} %d\n", json_is_true(json_object_get(v, "withheld")));
        }
        json_decref(ages);
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4";
    resp->body_len = b.len;
    resp->body = ctx_buf_steal(&b);
}

/*
 * h_explain - GET /v1/admin/explain?user=U&doc=REF[&agent=A]: why U
 * (through A) may or may not read REF, for an operator with the admin token.
 */
static void h_explain(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    const char *user = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "user");
    const char *agent = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "agent");
    const char *doc = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "doc");
    json_t *a = NULL;
    ctx_error err;
    int rc;
    (void)arg;

    if (strcmp(req->method, "GET")) {
        http_error(resp, 405, "method_not_allowed", "use GET");
        return;
    }
    if (!user || !*user || !doc || !*doc) {
        http_error(resp, 400, "bad_request", "give ?user=USER&doc=ID or SOURCE:EXTERNAL_ID"
                   " (and &agent=AGENT to check its grant too)");
        return;
    }
    rc = svc_explain(srv->service, user, agent && *agent ? agent : NULL, doc, &a, &err);
    if (rc == CTX_ENOTFOUND)
        http_error(resp, 404, "not_found", err.text);
    else if (rc)
        http_error(resp, 500, "internal", "explain failed; see the server log");
    else
        http_json(resp, 200, a);
}

static void h_unset(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    (void)srv;
    (void)arg;
    (void)req;
    http_error(resp, 404, "not_found", "not served here yet");
}

/* ---- admin auth ---- */

/*
 * load_admin - the admin token from serve.admin_token_env, else
 * serve.admin_token_file; only its SHA-256 is kept. Neither set: no admin
 * token, admin routes answer 401. Too short: CTX_ECONFIG naming the key.
 */
static int load_admin(http_server *srv, const ctx_serve_cfg *cfg, ctx_error *err)
{
    const char *env = cfg->admin_token_env && *cfg->admin_token_env
                          ? getenv(cfg->admin_token_env) : NULL;
    const char *key = "serve.admin_token_env";
    char *text = NULL;
    size_t len = 0;

    if (env && *env) {
        if (!(text = ctx_strdup(env)))
            return ctx_error_set(err, CTX_ENOMEM, "serve: out of memory");
        len = strlen(text);
    } else if (cfg->admin_token_file && *cfg->admin_token_file) {
        key = "serve.admin_token_file";
        if (ctx_read_file(cfg->admin_token_file, &text, &len))
            return ctx_error_set(err, CTX_ECONFIG, "serve.admin_token_file: cannot read %s;"
                                 " fix the path or unset the key", cfg->admin_token_file);
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            text[--len] = '\0';
    } else {
        return CTX_OK;
    }
    if (len < 32) {
        ctx_wipe_free(text);
        return ctx_error_set(err, CTX_ECONFIG, "%s: the admin token is %zu bytes; use at least"
                             " 32 random bytes (e.g. openssl rand -hex 32)", key, len);
    }
    SHA256((const unsigned char *)text, len, srv->admin_sha);
    srv->have_admin = 1;
    ctx_wipe_free(text);
    return CTX_OK;
}

/*
 * admin_ok - the Authorization header carries the admin token. Compared
 * as SHA-256 digests in constant time: neither the length nor a prefix
 * of the token leaks through timing.
 */
static int admin_ok(const http_server *srv, const char *h)
{
    unsigned char got[SHA256_DIGEST_LENGTH];

    if (!srv->have_admin || !h || strncasecmp(h, "Bearer ", 7))
        return 0;
    SHA256((const unsigned char *)h + 7, strlen(h + 7), got);
    return CRYPTO_memcmp(got, srv->admin_sha, sizeof got) == 0;
}

static int is_admin_path(const char *path) { return !strncmp(path, "/v1/admin/", 10); }

/* h_scim - /scim/v2/...: SCIM checks its own token (or the admin token). */
static void h_scim(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    (void)arg;
    scim_handle(srv->scim, srv->base, req, admin_ok(srv, http_header(req, "Authorization")),
                resp);
}

/* ---- dispatch ---- */

static int add_route(http_server *srv, const char *path, int prefix, int need_auth, http_handler fn,
                     const char *label)
{
    route *r;
    if (srv->nroutes >= MAX_ROUTES)
        return CTX_ETOOBIG;
    r = &srv->routes[srv->nroutes++];
    snprintf(r->path, sizeof r->path, "%s", path);
    r->prefix = prefix;
    r->auth = is_admin_path(path) ? HTTP_AUTH_ADMIN : need_auth;
    r->fn = fn;
    r->label = label;
    return CTX_OK;
}

int http_route_set(http_server *srv, const char *path, int need_auth, http_handler fn, void *arg)
{
    for (size_t i = 0; i < srv->nroutes; i++) {
        route *r = &srv->routes[i];
        if (!r->prefix && !strcmp(r->path, path)) {
            r->auth = is_admin_path(path) ? HTTP_AUTH_ADMIN : need_auth;
            r->fn = fn;
            r->arg = arg;
            return CTX_OK;
        }
    }
    if (srv->nroutes >= MAX_ROUTES)
        return CTX_ETOOBIG;
    add_route(srv, path, 0, need_auth, fn, "custom");
    srv->routes[srv->nroutes - 1].arg = arg;
    return CTX_OK;
}

static const char *allowed_method(const route *r)
{
    /* /mcp takes POST (and answers GET with its own 405): its handler decides */
    return !strcmp(r->label, "/v1/search")                      ? "POST"
           : r->fn == h_unset || r->fn == h_scim || !strcmp(r->label, "/mcp") ? NULL
                                                                : "GET";
}

static enum MHD_Result send_resp(struct MHD_Connection *c, http_resp *resp)
{
    struct MHD_Response *r;
    size_t len = resp->body ? (resp->body_len ? resp->body_len : strlen(resp->body)) : 0;
    enum MHD_Result ok;

    r = MHD_create_response_from_buffer(len, resp->body ? resp->body : (char *)"",
                                        resp->body ? MHD_RESPMEM_MUST_FREE
                                                   : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(resp->body);
        return MHD_NO;
    }
    resp->body = NULL;
    MHD_add_response_header(r, "Content-Type",
                            resp->content_type ? resp->content_type : "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (resp->header_name[0])
        MHD_add_response_header(r, resp->header_name, resp->header_value);
    ok = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ok;
}

static void record(http_server *srv, size_t ri, int status, uint64_t t0)
{
    double secs = (double)(ctx_mono_ns() - t0) / 1e9;
    endpoint_stats *st = &srv->stats[ri];
    size_t i;

    pthread_mutex_lock(&srv->mu);
    if (status >= 100 && status < 600)
        st->by_code[status]++;
    for (i = 0; i < NB && secs > bounds[i]; i++)
        ;
    st->hist[i]++;
    st->sum += secs;
    st->count++;
    pthread_mutex_unlock(&srv->mu);
}

/* The JSON body the service uses for JSON, as the body of resp. */
static void unauthorized(http_server *srv, http_resp *resp, const char *why)
{
    http_error(resp, 401, "unauthorized", why);
    snprintf(resp->header_name, sizeof resp->header_name, "WWW-Authenticate");
    snprintf(resp->header_value, sizeof resp->header_value,
             "Bearer resource_metadata=\"%s/.well-known/oauth-protected-resource\"", srv->base);
}

static void dispatch(http_server *srv, struct MHD_Connection *c, const char *url,
                     const char *method, conn_state *cs, http_resp *resp, size_t *ri_out)
{
    const route *r = NULL;
    auth_identity who;
    http_req req;
    size_t ri;

    /* An exact path wins over a prefix ("/v1/admin/explain" over "/v1/admin/"). */
    for (ri = 0; ri < srv->nroutes && !r; ri++)
        if (!srv->routes[ri].prefix && !strcmp(url, srv->routes[ri].path))
            r = &srv->routes[ri];
    for (ri = 0; ri < srv->nroutes && !r; ri++)
        if (srv->routes[ri].prefix &&
            !strncmp(url, srv->routes[ri].path, strlen(srv->routes[ri].path)))
            r = &srv->routes[ri];
    ri = r ? (size_t)(r - srv->routes) : srv->nroutes;
    *ri_out = ri;
    if (!r) {
        http_error(resp, 404, "not_found", "no such endpoint; see /v1/search");
        return;
    }
    if (allowed_method(r) && strcmp(method, allowed_method(r))) {
        http_error(resp, 405, "method_not_allowed", !strcmp(allowed_method(r), "POST")
                                                         ? "use POST" : "use GET");
        snprintf(resp->header_name, sizeof resp->header_name, "Allow");
        snprintf(resp->header_value, sizeof resp->header_value, "%s", allowed_method(r));
        return;
    }
    if (cs->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "body: larger than %lld bytes",
                 (long long)srv->cfg->serve.max_body_bytes);
        http_error(resp, 413, "too_large", msg);
        return;
    }
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = url;
    req.body = cs->body.data ? cs->body.data : "";
    req.body_len = cs->body.len;
    req.conn = c;
    if (r->auth == HTTP_AUTH_ADMIN) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!admin_ok(srv, h)) {
            /* No WWW-Authenticate resource metadata: a user's OAuth token
             * is not what opens this door. */
            http_error(resp, 401, "unauthorized",
                       srv->have_admin ? "send Authorization: Bearer <admin token>"
                                       : "admin endpoints are off: set the variable named by"
                                         " serve.admin_token_env (or serve.admin_token_file)");
            return;
        }
        req.admin = 1;
    } else if (r->auth) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        ctx_error err;
        int wait, refused;
        if (!h || strncasecmp(h, "Bearer ", 7)) {
            unauthorized(srv, resp, "send Authorization: Bearer <token>");
            return;
        }
        pthread_rwlock_rdlock(&srv->alock);
        refused = auth_verify(srv->auth, h + 7, ctx_now_ms() / 1000, &who, &err);
        pthread_rwlock_unlock(&srv->alock);
        if (refused) {
            ctx_log(CTX_LOG_DEBUG, "http", "%s", err.text);
            unauthorized(srv, resp, "invalid or expired token");
            return;
        }
        pthread_mutex_lock(&srv->mu);
        wait = take_token(srv, "u", who.user, srv->cfg->serve.user_rate,
                          srv->cfg->serve.user_burst);
        if (!wait)
            wait = take_token(srv, "a", who.agent, srv->cfg->serve.agent_rate,
                              srv->cfg->serve.agent_burst);
        pthread_mutex_unlock(&srv->mu);
        if (wait) {
            svc_identity sid = {who.user, who.agent[0] ? who.agent : NULL};
            svc_audit_refusal(srv->service, &sid, r->fn == h_document ? "fetch" : "search",
                              "rate_limited");
            http_error(resp, 429, "rate_limited", "too many requests; retry later");
            snprintf(resp->header_name, sizeof resp->header_name, "Retry-After");
            snprintf(resp->header_value, sizeof resp->header_value, "%d", wait);
            return;
        }
        req.who = &who;
    }
    if (r->auth == HTTP_AUTH_USER && replica_gate_stale(ctx_now_ms())) {
        /* A replica behind its lag bound may hold revoked permissions: fail closed. */
        http_error(resp, 503, "replica_behind", "this replica is not caught up with"
                   " PostgreSQL (see /metrics ctxgate_replica_lag_seconds); retry later");
        snprintf(resp->header_name, sizeof resp->header_name, "Retry-After");
        snprintf(resp->header_value, sizeof resp->header_value, "1");
        return;
    }
    r->fn(srv, r->arg, &req, resp);
    if (!resp->status)
        http_error(resp, 500, "internal", "no answer");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    http_server *srv = cls;
    conn_state *cs = *con_cls;
    http_resp resp;
    size_t ri = 0;
    enum MHD_Result ok;
    (void)version;

    if (!cs) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (!(cs = ctx_calloc(1, sizeof *cs)))
            return MHD_NO;
        cs->t0 = ctx_mono_ns();
        *con_cls = cs;
        if (cl && strtoll(cl, NULL, 10) > srv->cfg->serve.max_body_bytes)
            cs->too_big = 1;
        if (!cs->too_big)
            return MHD_YES;
    } else if (*upload_size) {
        if (!cs->too_big &&
            cs->body.len + *upload_size > (size_t)srv->cfg->serve.max_body_bytes) {
            cs->too_big = 1;
            ctx_buf_free(&cs->body);
        }
        if (!cs->too_big && ctx_buf_append(&cs->body, upload, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (!cs->body.data)
        ctx_buf_append(&cs->body, "", 0);
    memset(&resp, 0, sizeof resp);
    dispatch(srv, c, url, method, cs, &resp, &ri);
    record(srv, ri, resp.status, cs->t0);
    ok = send_resp(c, &resp);
    return ok;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    conn_state *cs = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (cs) {
        ctx_buf_free(&cs->body);
        ctx_free(cs);
        *con_cls = NULL;
    }
}

int http_start(const http_opts *opts, http_server **out, ctx_error *err)
{
    const char *listen = opts->listen ? opts->listen : opts->cfg->serve.listen;
    const char *colon = strrchr(listen, ':');
    struct sockaddr_in sa;
    http_server *srv;
    char host[256];
    long port;

    *out = NULL;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    if (!colon || (port = strtol(colon + 1, NULL, 10)) < 0 || port > 65535 ||
        (size_t)(colon - listen) >= sizeof host)
        return ctx_error_set(err, CTX_ECONFIG, "serve.listen: \"%s\" is not host:port (e.g."
                             " 127.0.0.1:8080)", listen);
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (inet_pton(AF_INET, !strcmp(host, "localhost") ? "127.0.0.1" : host, &sa.sin_addr) != 1)
        return ctx_error_set(err, CTX_ECONFIG, "serve.listen: \"%s\" is not an IPv4 address",
                             host);
    sa.sin_port = htons((uint16_t)port);
    if (!(srv = ctx_calloc(1, sizeof *srv)))
        return ctx_error_set(err, CTX_ENOMEM, "serve: out of memory");
    srv->cfg = opts->cfg;
    srv->service = opts->service;
    srv->auth = opts->auth;
    if (load_admin(srv, &opts->cfg->serve, err)) {
        ctx_free(srv);
        return err->code;
    }
    pthread_mutex_init(&srv->mu, NULL);
    {
        /* Writers first: a key rotation must not wait out steady traffic. */
        pthread_rwlockattr_t ra;
        pthread_rwlockattr_init(&ra);
        pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&srv->alock, &ra);
        pthread_rwlockattr_destroy(&ra);
    }
    add_route(srv, "/v1/search", 0, HTTP_AUTH_USER, h_search, "/v1/search");
    add_route(srv, "/v1/documents/", 1, HTTP_AUTH_USER, h_document, "/v1/documents/{id}");
    add_route(srv, "/healthz", 0, 0, h_health, "/healthz");
    add_route(srv, "/readyz", 0, 0, h_ready, "/readyz");
    /* Metrics name every user and agent: admin only. */
    add_route(srv, "/metrics", 0, HTTP_AUTH_ADMIN, h_metrics, "/metrics");
    /* Filled in by the MCP layer (http_route_set). */
    add_route(srv, "/mcp", 0, HTTP_AUTH_USER, h_unset, "/mcp");
    /* Admin endpoints not (yet) set answer 404, but only to the admin. */
    add_route(srv, "/v1/admin/explain", 0, HTTP_AUTH_ADMIN, h_explain, "/v1/admin/explain");
    add_route(srv, "/v1/admin/budgets", 0, HTTP_AUTH_ADMIN, h_budgets, "/v1/admin/budgets");
    add_route(srv, "/v1/admin/", 1, HTTP_AUTH_ADMIN, h_unset, "/v1/admin/");
    add_route(srv, "/.well-known/oauth-protected-resource", 0, 0, h_unset,
              "/.well-known/oauth-protected-resource");
    /* SCIM provisioning: answers in SCIM's own error format, so no server-side auth. */
    add_route(srv, "/scim/v2/", 1, HTTP_AUTH_NONE, h_scim, "/scim/v2/");
    if (store_open(svc_store_path(opts->service), 0, &srv->mst, err)) {
        ctx_free(srv);
        return err->code;
    }
    if (scim_open(opts->cfg, svc_store_path(opts->service), &srv->scim, err)) {
        store_close(srv->mst);
        ctx_free(srv);
        return err->code;
    }
    srv->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                  MHD_USE_ERROR_LOG,
                              0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_THREAD_POOL_SIZE,
                              (unsigned int)opts->cfg->serve.threads,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned int)1024,
                              MHD_OPTION_NOTIFY_COMPLETED, on_done, srv, MHD_OPTION_END);
    if (!srv->d) {
        scim_close(srv->scim);
        store_close(srv->mst);
        pthread_mutex_destroy(&srv->mu);
        ctx_free(srv);
        return ctx_error_set(err, CTX_EIO, "serve: cannot listen on %s (in use, or not an"
                             " address of this host?)", listen);
    }
    {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
        srv->port = di ? di->port : (int)port;
    }
    if (*opts->cfg->serve.public_url)
        snprintf(srv->base, sizeof srv->base, "%s", opts->cfg->serve.public_url);
    else
        snprintf(srv->base, sizeof srv->base, "http://%s:%d", host, srv->port);
    *out = srv;
    return CTX_OK;
}

void http_stop(http_server *srv)
{
    if (!srv)
        return;
    MHD_stop_daemon(srv->d);
    for (size_t i = 0; i < NBUCKETS; i++) {
        bucket *b = srv->buckets[i], *n;
        for (; b; b = n) {
            n = b->next;
            ctx_free(b->key);
            ctx_free(b);
        }
    }
    scim_close(srv->scim);
    store_close(srv->mst);
    pthread_mutex_destroy(&srv->mu);
    pthread_rwlock_destroy(&srv->alock);
    ctx_free(srv);
}
