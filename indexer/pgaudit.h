/*
 * pgaudit.h - cluster mode's audit log and token counts in PostgreSQL
 * (ctxgate.audit, audit_origins, usage_window: schema version 3). Every
 * `serve` or `ctxgate mcp` writes its records to its local audit log as in
 * the embedded mode, then ships them here; `ctxgate audit`, `usage`, the
 * console and the token budgets read the whole cluster from here. The
 * local log's side (SQLite) is in store_ship.c, PostgreSQL's in pgaudit.c.
 * docs/cluster.md, "Audit and token budgets", has the design.
 */
#ifndef CTX_INDEXER_PGAUDIT_H
#define CTX_INDEXER_PGAUDIT_H

#include <jansson.h>
#include <stdint.h>

#include "pgstore.h"
#include "report.h"
#include "store.h"

/* An origin: 32 hex digits and the NUL. */
#define PGAUDIT_ORIGIN_LEN 33

/* ---- the local audit log (store_ship.c); log is store_audit_open's ---- */

/*
 * store_audit_origin - the log's origin, the random name PostgreSQL keeps
 * its records under with their local ids, made at the first call (renew 1:
 * a new one, for a log whose ids went back: see pgaudit_ship).
 */
int store_audit_origin(ctx_store *log, int renew, char out[PGAUDIT_ORIGIN_LEN], ctx_error *err);

/* store_audit_last_id - the highest record id in the log (0: none). */
int store_audit_last_id(ctx_store *log, int64_t *id, ctx_error *err);

/* store_audit_rowid - the id of the record the last store_audit_put on
 * this connection wrote. */
int64_t store_audit_rowid(ctx_store *log);

/*
 * store_audit_rows - up to limit records with id > after, oldest first, as
 * a new JSON array of objects (id, at, user, agent, action, query,
 * query_sha256, doc_ids (the JSON text), tokens, latency_us, outcome);
 * *last the highest id in it (after when empty).
 */
int store_audit_rows(ctx_store *log, int64_t after, int64_t limit, json_t **rows,
                     int64_t *last, ctx_error *err);

/*
 * store_audit_prune_shipped - delete records with id <= upto_id (shipped)
 * and at < before_ms, batch rows per autocommit transaction; the newest
 * record always stays (its id must not be given again). *n: how many.
 */
int store_audit_prune_shipped(ctx_store *log, int64_t upto_id, int64_t before_ms,
                              int64_t batch, int64_t *n, ctx_error *err);

/* ---- PostgreSQL (pgaudit.c); pg is pgstore_open's, one thread at a time ---- */

/*
 * pgaudit_ship - send the local log's records PostgreSQL lacks (up to
 * limit, oldest first) in one statement: the records keyed by (origin,
 * local id), their tokens added to usage_window (an hour and a day, per
 * user and per agent) for the records new to PostgreSQL only, and the
 * origin's mark moved on, all or nothing. A record another process sent
 * first (two processes sharing a log) is skipped, so each is counted
 * once. node names the answering replica (cluster.replica, else the host)
 * in each record. *mark receives the highest local id PostgreSQL now
 * holds for this log (everything at or below it is there); *sent how
 * many records this call sent. A log whose highest id is below the mark
 * was made again (its ids restart): it gets a new origin, logged.
 * CTX_EIO when PostgreSQL cannot be reached (nothing changed there).
 */
int pgaudit_ship(pgstore *pg, ctx_store *log, const char *node, int64_t limit, int64_t *mark,
                 int64_t *sent, ctx_error *err);

/* pgaudit_node - the name a node's records carry: c->replica, else the
 * host name. */
void pgaudit_node(const ctx_cluster_cfg *c, char *buf, size_t n);

/*
 * pgaudit_open_shipped - a connection to c's PostgreSQL (new: pgstore_close
 * it) for reading the cluster's log, once what the local audit log of the
 * store at store_path holds is shipped (when there is one; a failure to
 * ship is logged and the read goes on without those records).
 */
int pgaudit_open_shipped(const ctx_cluster_cfg *c, const char *store_path, pgstore **out,
                         ctx_error *err);

/* pgaudit_usage_get - as store_usage_get, over the cluster's counts. */
int pgaudit_usage_get(pgstore *pg, int kind, const char *name, int64_t span, int64_t start,
                      int64_t *tokens, ctx_error *err);

/* pgaudit_usage_scan - as store_usage_scan, over the cluster's counts. */
int pgaudit_usage_scan(pgstore *pg, int64_t span, int64_t start,
                       int (*fn)(void *arg, int kind, const char *name, int64_t tokens),
                       void *arg, ctx_error *err);

/*
 * pgaudit_report - as report_audit, over every node's records, in the
 * order they reached PostgreSQL (id), each with "node" besides.
 */
int pgaudit_report(pgstore *pg, const report_audit_q *q, json_t **out, ctx_error *err);

/* pgaudit_usage - as report_usage, over every node's records. */
int pgaudit_usage(pgstore *pg, int64_t since, int64_t bucket_ms, json_t **out,
                  ctx_error *err);

/*
 * pgaudit_prune - delete the cluster's records with at < before_ms (none
 * when before_ms is INT64_MIN: audit.retain "off"), batch rows per
 * statement, and the token counts of windows that started before
 * windows_before_ms. *records, *windows: how many went.
 */
int pgaudit_prune(pgstore *pg, int64_t before_ms, int64_t windows_before_ms, int64_t batch,
                  int64_t *records, int64_t *windows, ctx_error *err);

#endif
