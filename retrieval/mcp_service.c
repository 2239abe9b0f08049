/*
 * mcp_service.c - MCP tools on the retrieval service, over HTTP and stdio
 * (see mcp_service.h).
 */
#include "mcp_service.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/json.h"

static int svc_search_tool(void *arg, const char *query, json_t **results, json_t **extra,
                           ctx_error *err)
{
    mcp_caller *c = arg;
    svc_request req;
    json_t *answer = NULL, *hits, *hit, *v;
    size_t i;
    int rc;

    memset(&req, 0, sizeof req);
    req.query = query;
    req.mode = "hybrid";
    *results = json_array();
    *extra = NULL;
    rc = svc_search(c->service, &c->who, &req, &answer, err);
    /* the transport says which budget, or that this replica's store is
     * too far behind (stdio: no follower in this process) */
    if (rc == CTX_ELIMIT || rc == CTX_EBUSY) {
        snprintf(c->spent, sizeof c->spent, "%s", err->text);
        return CTX_OK;
    }
    if (rc == CTX_EAUTH || rc == CTX_EINVAL)
        return CTX_OK; /* nothing to show this caller; the refusal is audited */
    if (rc)
        return rc;
    /* One result per document, best chunk first. */
    hits = json_object_get(answer, "results");
    json_array_foreach(hits, i, hit) {
        json_int_t doc = json_integer_value(json_object_get(hit, "doc_id"));
        char id[32];
        size_t j;
        json_t *seen;
        int dup = 0;
        snprintf(id, sizeof id, "%lld", (long long)doc);
        json_array_foreach(*results, j, seen) {
            dup |= !strcmp(json_string_value(json_object_get(seen, "id")), id);
        }
        if (!dup)
            json_array_append_new(*results,
                                  json_pack("{s:s,s:O,s:O,s:O}", "id", id, "external_id",
                                            json_object_get(hit, "external_id"), "title",
                                            json_object_get(hit, "title"), "url",
                                            json_object_get(hit, "url")));
    }
    /* Sources withheld for the age of their permissions, and why. */
    if (json_array_size(json_object_get(answer, "withheld")))
        *extra = json_pack("{s:O}", "withheld", json_object_get(answer, "withheld"));
    /* A search answered by its lexical leg alone says so. */
    v = json_object_get(answer, "vector_leg");
    if (v && !json_is_true(json_object_get(v, "used"))) {
        if (!*extra)
            *extra = json_object();
        json_object_set(*extra, "vector_leg", v);
    }
    json_decref(answer);
    return CTX_OK;
}

static int svc_fetch_tool(void *arg, const char *id, json_t **doc, ctx_error *err)
{
    mcp_caller *c = arg;
    json_t *a = NULL;
    int rc;

    *doc = NULL;
    /* An internal id or SOURCE:EXTERNAL_ID; naming nothing answers as forbidden. */
    rc = svc_fetch_ref(c->service, &c->who, id, &a, err);
    if (rc == CTX_ELIMIT || rc == CTX_EBUSY) { /* as in the search tool */
        snprintf(c->spent, sizeof c->spent, "%s", err->text);
        return CTX_OK;
    }
    if (rc == CTX_ENOTFOUND || rc == CTX_EAUTH)
        return CTX_OK;
    if (rc)
        return rc;
    *doc = json_pack("{s:s,s:O,s:O,s:O,s:{s:O,s:O,s:O,s:O,s:O,s:O,s:O}}", "id", id, "title",
                     json_object_get(a, "title"), "text", json_object_get(a, "text"), "url",
                     json_object_get(a, "url"), "metadata", "doc_id",
                     json_object_get(a, "doc_id"), "external_id",
                     json_object_get(a, "external_id"), "source",
                     json_object_get(a, "source"), "labels", json_object_get(a, "labels"),
                     "acl_synced_at", json_object_get(a, "acl_synced_at"), "citation",
                     json_object_get(a, "citation"), "truncated",
                     json_object_get(a, "truncated"));
    json_decref(a);
    return *doc ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "mcp: out of memory");
}

/*
 * budget_answer - the answer out (new JSON-RPC text, taken) to a tool call
 * a spent token budget refused, made a tool error (isError) whose text
 * names the budget, as MCP reports a tool's failure to the model. New.
 */
static char *budget_answer(char *out, mcp_caller *c)
{
    json_t *a = out ? ctx_json_loads(out, 0, NULL) : NULL;
    json_t *res = json_object_get(a, "result");
    char *text;
    /* the result's other members (a revision's resultType, _meta) stay */
    int bad = !json_is_object(res) ||
              json_object_set_new(res, "content",
                                  json_pack("[{s:s,s:s}]", "type", "text", "text", c->spent)) ||
              json_object_set_new(res, "isError", json_true());

    c->spent[0] = '\0'; /* the next message starts afresh */
    if (bad) {
        json_decref(a);
        return out;
    }
    text = ctx_json_dumps(a, NULL);
    json_decref(a);
    if (!text)
        return out;
    free(out);
    return text;
}

mcp_backend mcp_service_backend(mcp_caller *caller)
{
    mcp_backend be = {svc_search_tool, svc_fetch_tool, caller};
    return be;
}

/* ---- Streamable HTTP ---- */

typedef struct mcp_http {
    svc *service;
    const ctx_config *cfg;
    http_server *srv;
} mcp_http;

static mcp_http the_http; /* one server per process */

/* origin_ok - no Origin (not a browser), or the server's own origin. */
static int origin_ok(const http_req *req, const char *base)
{
    const char *o = http_header(req, "Origin");
    size_t n;

    if (!o)
        return 1;
    n = strlen(o);
    return !strncmp(base, o, n) && (base[n] == '\0' || base[n] == '/');
}

static void mcp_route(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    mcp_http *h = arg;
    mcp_caller caller;
    mcp_backend be;
    mcp_http_headers mh;
    char *out;
    int status = 200;

    (void)srv;
    if (!origin_ok(req, http_base_url(h->srv))) {
        http_error(resp, 403, "forbidden_origin",
                   "Origin is not this server's; MCP over HTTP is for this origin only");
        return;
    }
    if (strcmp(req->method, "POST")) {
        http_error(resp, 405, "method_not_allowed",
                   "POST one JSON-RPC message to /mcp; this server opens no SSE stream");
        snprintf(resp->header_name, sizeof resp->header_name, "Allow");
        snprintf(resp->header_value, sizeof resp->header_value, "POST");
        return;
    }
    memset(&caller, 0, sizeof caller);
    caller.service = h->service;
    caller.who.user = req->who->user;
    caller.who.agent = req->who->agent;
    be = mcp_service_backend(&caller);
    mh.protocol_version = http_header(req, "MCP-Protocol-Version");
    mh.method = http_header(req, "Mcp-Method");
    mh.name = http_header(req, "Mcp-Name");
    out = mcp_handle_http(&be, req->body ? req->body : "", req->body_len, &mh, &status);
    if (out && caller.spent[0])
        out = budget_answer(out, &caller);
    resp->status = status; /* 202 with no body: a notification, accepted */
    resp->body = out;
}

static void resource_metadata(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    mcp_http *h = arg;
    (void)req;

    /* RFC 9728: the resource is this service (serve.public_url), the
     * identifier a client asks its token for (RFC 8707) and auth accepts as
     * aud; the authorization server is the issuer, the provider's URL. */
    http_json(resp, 200,
              json_pack("{s:s,s:[s],s:[s],s:s}", "resource", http_base_url(srv),
                        "authorization_servers",
                        h->cfg->auth.issuer, "bearer_methods_supported", "header",
                        "resource_name", "ctxgate company knowledge"));
}

int mcp_http_register(http_server *srv, svc *service, const ctx_config *cfg)
{
    int rc;

    the_http.service = service;
    the_http.cfg = cfg;
    the_http.srv = srv;
    if ((rc = http_route_set(srv, "/mcp", 1, mcp_route, &the_http)))
        return rc;
    return http_route_set(srv, "/.well-known/oauth-protected-resource", 0, resource_metadata,
                          &the_http);
}

/* ---- stdio ---- */

int mcp_stdio(svc *service, const svc_identity *who, FILE *in, FILE *out)
{
    mcp_caller caller = {service, *who};
    mcp_backend be = mcp_service_backend(&caller);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, in)) >= 0) {
        char *answer;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (!n)
            continue;
        answer = mcp_handle(&be, line, (size_t)n);
        if (caller.spent[0])
            answer = budget_answer(answer, &caller);
        if (answer) {
            fputs(answer, out);
            fputc('\n', out);
            fflush(out);
            free(answer);
        }
    }
    free(line);
    return CTX_OK;
}
