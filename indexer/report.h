/*
 * report.h - what the store and its audit log hold, as JSON for operators:
 * `ctxgate status`, `audit` and `usage`, and the admin endpoints the
 * console reads (retrieval/admin.c). Reads only; every answer is new JSON
 * the caller json_decref's. Times are milliseconds since the epoch.
 */
#ifndef CTX_INDEXER_REPORT_H
#define CTX_INDEXER_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "store.h"

/*
 * report_sources - one object per source in the store, by name: documents
 * (live), chunks, the last run (status, started_at, records, last_error,
 * last_run_warnings, held_reason) and lag_ms since the last good run (-1:
 * never) at now.
 */
int report_sources(ctx_store *st, int64_t now, json_t **out, ctx_error *err);

/*
 * report_runs - the last limit sync runs of source (by name; NULL: all
 * sources), newest first, with their counts and errors.
 */
int report_runs(ctx_store *st, const char *source, int64_t limit, json_t **out,
                ctx_error *err);

/*
 * report_index - the embedding model (active, switching_to, queue,
 * vectors), the vector index file under data_dir, the ranking statistics'
 * age and the last good embed job, at now.
 */
int report_index(ctx_store *st, const char *data_dir, int64_t now, json_t **out,
                 ctx_error *err);

/*
 * report_jobs - the maintenance agent's jobs: those running now, then the
 * last limit finished, newest first; and failed jobs in the last day.
 */
int report_jobs(ctx_store *st, int64_t now, int64_t limit, json_t **out, ctx_error *err);

/* Which audit records report_audit answers; NULL or 0 fields match all. */
typedef struct report_audit_q {
    const char *user, *agent;
    const char *action;     /* "search", "fetch", ... */
    const char *outcome;    /* "ok", "denied", ... */
    int64_t since, until;   /* at >= since, at < until (0: no bound) */
    int64_t before_id;      /* id < before_id: the next page (0: from the newest) */
    int64_t limit;          /* at most this many, 1..1000 (0: 100) */
} report_audit_q;

/*
 * report_audit - the audit records q asks for, newest first, each with
 * id, at, user, agent, action, query or query_sha256, doc_ids, tokens,
 * latency_us and outcome. log is the audit log (store_audit_open).
 */
int report_audit(ctx_store *log, const report_audit_q *q, json_t **out, ctx_error *err);

/*
 * report_usage - tokens served since since: {"users": {name: {tokens,
 * requests}}, "agents": {...}} and, when bucket_ms > 0, "series": per
 * bucket start (a multiple of bucket_ms), per user and per agent, the
 * tokens and requests in it, oldest first.
 */
int report_usage(ctx_store *log, int64_t since, int64_t bucket_ms, json_t **out,
                 ctx_error *err);

#endif
