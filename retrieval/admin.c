/*
 * admin.c - the admin JSON endpoints and the console page (see admin.h).
 */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

/* The console page: retrieval/console.html, compiled in by the Makefile. */
extern const char ctx_console_html[];

/*
 * int_arg - the query argument name as a non-negative integer into *v
 * (dflt when absent). 0 when fine; else resp answers 400 naming it.
 */
static int int_arg(const http_req *req, http_resp *resp, const char *name, int64_t dflt,
                   int64_t *v)
{
    const char *s = http_query(req, name);
    char *end, msg[160];
    long long n;

    *v = dflt;
    if (!s)
        return 0;
    errno = 0;
    n = strtoll(s, &end, 10);
    if (!errno && *end == '\0' && n >= 0) {
        *v = n;
        return 0;
    }
    snprintf(msg, sizeof msg, "%s: \"%.40s\" is not a whole number >= 0 (times are"
             " milliseconds since the epoch)", name, s);
    http_error(resp, 400, "bad_request", msg);
    return -1;
}

/* answer - 200 with o, or 500 when rc failed (the detail goes to the log). */
static void answer(http_resp *resp, int rc, json_t *o, const ctx_error *err, const char *what)
{
    if (!rc) {
        http_json(resp, 200, o);
        return;
    }
    ctx_log(CTX_LOG_ERROR, "admin", "%s: %s", what, err->text);
    http_error(resp, 500, "internal", "the store could not be read; see the server log");
}

static int get_only(const http_req *req, http_resp *resp)
{
    if (!strcmp(req->method, "GET"))
        return 0;
    http_error(resp, 405, "method_not_allowed", "use GET");
    return -1;
}

static void h_status(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    json_t *o = NULL;
    ctx_error err;
    int rc;
    (void)srv;

    if (get_only(req, resp))
        return;
    rc = svc_admin_status(arg, &o, &err);
    answer(resp, rc, o, &err, "status");
}

static void h_runs(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    int64_t limit;
    json_t *o = NULL;
    ctx_error err;
    int rc;
    (void)srv;

    if (get_only(req, resp) || int_arg(req, resp, "limit", 20, &limit))
        return;
    rc = svc_admin_runs(arg, http_query(req, "source"), limit, &o, &err);
    answer(resp, rc, o, &err, "runs");
}

static void h_jobs(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    int64_t limit;
    json_t *o = NULL;
    ctx_error err;
    int rc;
    (void)srv;

    if (get_only(req, resp) || int_arg(req, resp, "limit", 50, &limit))
        return;
    rc = svc_admin_jobs(arg, limit, &o, &err);
    answer(resp, rc, o, &err, "jobs");
}

static void h_audit(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    report_audit_q q;
    json_t *o = NULL;
    ctx_error err;
    int rc;
    (void)srv;

    memset(&q, 0, sizeof q);
    if (get_only(req, resp) || int_arg(req, resp, "since", 0, &q.since) ||
        int_arg(req, resp, "until", 0, &q.until) ||
        int_arg(req, resp, "before", 0, &q.before_id) ||
        int_arg(req, resp, "limit", 100, &q.limit))
        return;
    q.user = http_query(req, "user");
    q.agent = http_query(req, "agent");
    q.action = http_query(req, "action");
    q.outcome = http_query(req, "outcome");
    rc = svc_admin_audit(arg, &q, &o, &err);
    answer(resp, rc, o, &err, "audit");
}

static void h_usage(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    int64_t since, bucket;
    json_t *o = NULL;
    ctx_error err;
    int rc;
    (void)srv;

    if (get_only(req, resp) || int_arg(req, resp, "since", ctx_now_ms() - 86400000, &since) ||
        int_arg(req, resp, "bucket", 3600000, &bucket))
        return;
    if (bucket < 60000) {
        http_error(resp, 400, "bad_request", "bucket: at least 60000 (a minute, in ms)");
        return;
    }
    if (!(rc = svc_admin_usage(arg, since, bucket, &o, &err))) {
        json_object_set_new(o, "since", json_integer(since));
        json_object_set_new(o, "bucket_ms", json_integer(bucket));
    }
    answer(resp, rc, o, &err, "usage");
}

static void h_console(http_server *srv, void *arg, const http_req *req, http_resp *resp)
{
    (void)srv;
    (void)arg;
    if (get_only(req, resp))
        return;
    resp->status = 200;
    resp->content_type = "text/html; charset=utf-8";
    resp->body = ctx_strdup(ctx_console_html);
    /* The page's own script and style only; it talks to this server alone. */
    snprintf(resp->header_name, sizeof resp->header_name, "Content-Security-Policy");
    snprintf(resp->header_value, sizeof resp->header_value,
             "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline';"
             " connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none';"
             " form-action 'none'");
}

int admin_http_register(http_server *srv, svc *s)
{
    static const struct {
        const char *path;
        http_handler fn;
    } routes[] = {{"/v1/admin/status", h_status}, {"/v1/admin/runs", h_runs},
                  {"/v1/admin/jobs", h_jobs},     {"/v1/admin/audit", h_audit},
                  {"/v1/admin/usage", h_usage}};
    int rc;

    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((rc = http_route_set(srv, routes[i].path, HTTP_AUTH_ADMIN, routes[i].fn, s)))
            return rc;
    return http_route_set(srv, "/console", HTTP_AUTH_NONE, h_console, NULL);
}
