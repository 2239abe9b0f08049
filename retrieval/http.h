/*
 * http.h - the HTTP face of the retrieval service (`ctxgate serve`), on
 * libmicrohttpd with a thread pool. Endpoints:
 *
 *   POST /v1/search           svc_search; body schemas/api/search-request
 *   GET  /v1/documents/{ref}  svc_fetch_ref: an internal id or SOURCE:EXTERNAL_ID
 *                             (URL-encoded); 404 alike for missing and forbidden
 *   GET  /healthz, /readyz    alive; store answers and vector index loaded
 *   GET  /metrics             Prometheus text; needs the admin token
 *   /mcp, /.well-known/oauth-protected-resource
 *                             routes left for the MCP layer (http_route_set)
 *   /scim/v2/...              SCIM 2.0 provisioning of the "scim" source
 *                             (retrieval/scim.h); its own token, else the admin one
 *
 * Every /v1 request needs `Authorization: Bearer <JWT>` (retrieval/auth.h);
 * a 401 names the protected-resource metadata in WWW-Authenticate. Admin
 * routes (/metrics, anything under /v1/admin/) need instead the one static
 * admin token (serve.admin_token_env / serve.admin_token_file): it names no
 * user, so an admin route never answers with a user's view, and a user's
 * JWT never opens an admin route. No admin token configured: every admin
 * route answers 401. Bodies
 * over serve.max_body_bytes are 413, bad JSON 400 naming the field, and a
 * user or agent over its token bucket 429 with Retry-After.
 */
#ifndef CTX_RETRIEVAL_HTTP_H
#define CTX_RETRIEVAL_HTTP_H

#include <stddef.h>

#include "../core/config.h"
#include "../core/ctx.h"
#include "auth.h"
#include "service.h"

typedef struct http_server http_server;

/* Who a route lets in (http_route_set's need_auth). */
enum {
    HTTP_AUTH_NONE = 0,             /* anyone: /healthz */
    HTTP_AUTH_USER = 1,             /* a verified JWT; req->who is the caller */
    HTTP_AUTH_ADMIN = 2,            /* the admin token; req->who is NULL, req->admin 1 */
};

/* One request as a handler sees it. All borrowed for the call. */
typedef struct http_req {
    const char *method, *path;
    const char *body;               /* NUL-terminated; body_len bytes */
    size_t body_len;
    const auth_identity *who;       /* the verified caller, or NULL on open routes */
    void *conn;                     /* for http_header */
    int admin;                      /* 1: the admin token was checked (HTTP_AUTH_ADMIN) */
} http_req;

/* A handler's answer. body is new (freed by the server) or NULL. */
typedef struct http_resp {
    int status;
    const char *content_type;       /* static; default application/json */
    char *body;
    size_t body_len;                /* 0 = strlen(body) */
    char header_name[64], header_value[512];  /* one extra header, if named */
} http_resp;

typedef void (*http_handler)(http_server *srv, void *arg, const http_req *req,
                             http_resp *resp);

/* http_header - a request header's value (borrowed), or NULL. */
const char *http_header(const http_req *req, const char *name);

/* http_query - a query argument's value (borrowed, URL-decoded), or NULL when absent or empty. */
const char *http_query(const http_req *req, const char *name);

/* http_json - resp answers status with o as JSON (o stolen). */
void http_json(http_resp *resp, int status, json_t *o);

/* http_error - resp answers status with {"error": code, "message": msg}. */
void http_error(http_resp *resp, int status, const char *code, const char *msg);

typedef struct http_opts {
    const ctx_config *cfg;          /* borrowed; serve section used */
    svc *service;                   /* borrowed */
    auth *auth;                     /* borrowed */
    const char *listen;             /* overrides cfg->serve.listen, or NULL */
} http_opts;

/*
 * http_start - listen and serve on a pool of serve.threads threads. *out
 * new: http_stop it. CTX_EIO when the address cannot be bound.
 */
int http_start(const http_opts *opts, http_server **out, ctx_error *err);
void http_stop(http_server *srv);

/*
 * http_route_set - (re)place the handler of path (exact match; "" method =
 * any). need_auth (HTTP_AUTH_*): the server verifies the bearer token (or,
 * for HTTP_AUTH_ADMIN, the admin token) first and answers 401 itself. A
 * path under "/v1/admin/" is always HTTP_AUTH_ADMIN, whatever need_auth
 * says, so an admin endpoint cannot be opened by mistake. The table has entries for "/mcp" and
 * "/.well-known/oauth-protected-resource" that answer 404 until set.
 * Call before requests arrive (not thread-safe against them).
 */
int http_route_set(http_server *srv, const char *path, int need_auth, http_handler fn,
                   void *arg);

/*
 * http_auth_set - verify tokens with a (stolen) from now on; returns the
 * previous verifier (the caller frees it) once no request uses it.
 */
auth *http_auth_set(http_server *srv, auth *a);

/* http_base_url - serve.public_url, or http://<listen>. Borrowed. */
const char *http_base_url(const http_server *srv);

/* http_port - the port bound (useful when listening on port 0). */
int http_port(const http_server *srv);

#endif
