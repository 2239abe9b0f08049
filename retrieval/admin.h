/*
 * admin.h - what an operator reads from a running service: the status of
 * sources, permissions and the index, sync runs, the agent's jobs, the
 * audit log and token usage over time; served as admin JSON endpoints and
 * the browser console that reads them (docs/console.md):
 *
 *   GET /v1/admin/status                   status_report (status.h)
 *   GET /v1/admin/runs?source=S&limit=N    report_runs
 *   GET /v1/admin/jobs?limit=N             report_jobs
 *   GET /v1/admin/audit?user=&agent=&action=&outcome=&since=&until=&before=&limit=
 *                                          report_audit (times in ms since the epoch)
 *   GET /v1/admin/usage?since=&bucket=     report_usage (default: the last day, by hour)
 *   GET /console                           the console page (no data in it: the
 *                                          page asks for the admin token and
 *                                          calls the endpoints above with it)
 *
 * Every /v1/admin/ route needs the admin token (http.h); the page does not,
 * since it holds nothing until the token is given.
 */
#ifndef CTX_RETRIEVAL_ADMIN_H
#define CTX_RETRIEVAL_ADMIN_H

#include <jansson.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "../indexer/report.h"
#include "http.h"
#include "service.h"

/* svc_admin_status - status_report of the service's store under its config (new). */
int svc_admin_status(svc *s, json_t **out, ctx_error *err);

/* svc_admin_runs - report_runs on the service's store. */
int svc_admin_runs(svc *s, const char *source, int64_t limit, json_t **out, ctx_error *err);

/* svc_admin_jobs - report_jobs on the service's store. */
int svc_admin_jobs(svc *s, int64_t limit, json_t **out, ctx_error *err);

/* svc_admin_audit - report_audit of the audit log, every record so far written first. */
int svc_admin_audit(svc *s, const report_audit_q *q, json_t **out, ctx_error *err);

/* svc_admin_usage - report_usage of the audit log, every record so far written first. */
int svc_admin_usage(svc *s, int64_t since, int64_t bucket_ms, json_t **out, ctx_error *err);

/* admin_http_register - route the endpoints above on srv for service s (borrowed). */
int admin_http_register(http_server *srv, svc *s);

#endif
