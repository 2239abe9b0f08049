/*
 * store_prune.c - keeping the logs bounded: audit records past their
 * retention, the sync_runs and agent_jobs history past its bound, and the
 * audit file's freed pages given back (see store.h, "Pruning").
 */
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>

/*
 * delete_batches - run sql (a DELETE whose ?1, ?2 are a and b and whose ?3
 * is the batch size) until a batch deletes fewer than batch rows. Each
 * batch is its own autocommit transaction, so a writer waits for one batch
 * at most, never for the whole prune.
 */
static int delete_batches(ctx_store *st, const char *sql, int64_t a, int64_t b, int64_t batch,
                          int64_t *n, const char *what, ctx_error *err)
{
    sqlite3_stmt *s;
    int step, changed;

    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, what);
    for (;;) {
        sqlite3_bind_int64(s, 1, a);
        sqlite3_bind_int64(s, 2, b);
        sqlite3_bind_int64(s, 3, batch);
        step = sqlite3_step(s);
        sqlite3_reset(s);
        if (step != SQLITE_DONE) {
            int rc = store_errf(st, err, what);
            sqlite3_finalize(s);
            return rc;
        }
        changed = sqlite3_changes(st->db);
        *n += changed;
        if (changed < batch)
            break;
    }
    sqlite3_finalize(s);
    return CTX_OK;
}

int store_audit_prune(ctx_store *log, int64_t before_ms, int64_t batch, int64_t *n,
                      ctx_error *err)
{
    *n = 0;
    if (batch < 1)
        batch = 1;
    /* By id, the order the records were written: the rows of a batch are
     * neighbours in the table's B-tree, and audit_at finds them. The
     * newest record stays whatever its age: SQLite gives the next one
     * max(id) + 1, and an id once given must not come again (a cluster
     * node's shipped ids, docs/cluster.md). */
    return delete_batches(log,
                          "DELETE FROM audit WHERE id IN (SELECT id FROM audit"
                          " WHERE at < ?1 AND id < (SELECT max(id) FROM audit)"
                          " ORDER BY at LIMIT ?3)",
                          before_ms, 0, batch, n, "prune the audit log", err);
}

/* one_pragma - the integer a PRAGMA reads. */
static int one_pragma(ctx_store *st, const char *sql, int64_t *out, ctx_error *err)
{
    return store__one_int(st, sql, 0, NULL, 0, out, "audit log", err);
}

int store_audit_reclaim(ctx_store *log, int64_t step, int64_t *pages, ctx_error *err)
{
    int64_t mode, free_before, free_now;
    char sql[64];
    int rc;

    *pages = 0;
    if ((rc = one_pragma(log, "PRAGMA auto_vacuum", &mode, err)) ||
        (rc = one_pragma(log, "PRAGMA freelist_count", &free_before, err)))
        return rc;
    if (mode != 2) /* not incremental: the free pages wait for new records */
        return CTX_OK;
    if (step < 1)
        step = 1;
    snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%lld)", (long long)step);
    for (free_now = free_before; free_now > 0;) {
        int64_t was = free_now;
        /* Each call is one short write transaction of its own. */
        if ((rc = store_exec(log, sql, err)) ||
            (rc = one_pragma(log, "PRAGMA freelist_count", &free_now, err)))
            return rc;
        if (free_now >= was)
            break;
    }
    *pages = free_before - free_now;
    /* The WAL holds a copy of every page the prune touched: back to empty. */
    return store_exec(log, "PRAGMA wal_checkpoint(TRUNCATE)", err);
}

int store_history_prune(ctx_store *st, int64_t keep, int64_t before_ms, int64_t batch,
                        int64_t *runs, int64_t *jobs, ctx_error *err)
{
    /*
     * A source's newest run, its newest run that finished well (`status`
     * shows when that was) and its newest run that held or lifted a hold
     * (store_source_held reads it) are never pruned, nor a run still
     * going; nor the newest run of each job (the agent schedules from it).
     */
    static const char runs_sql[] =
        "DELETE FROM sync_runs WHERE id IN (SELECT id FROM ("
        "  SELECT id, started_at, status,"
        "   row_number() OVER (PARTITION BY source_id ORDER BY id DESC) AS rn FROM sync_runs)"
        " WHERE (rn > ?1 OR started_at < ?2) AND rn > 1 AND status <> 'running'"
        "  AND id NOT IN (SELECT max(id) FROM sync_runs WHERE status = 'ok' GROUP BY source_id)"
        "  AND id NOT IN (SELECT max(id) FROM sync_runs WHERE held_reason IS NOT NULL"
        "   GROUP BY source_id)"
        " LIMIT ?3)";
    static const char jobs_sql[] =
        "DELETE FROM agent_jobs WHERE id IN (SELECT id FROM ("
        "  SELECT id, started_at, row_number() OVER (PARTITION BY source, kind"
        "   ORDER BY started_at DESC, id DESC) AS rn FROM agent_jobs)"
        " WHERE (rn > ?1 OR started_at < ?2) AND rn > 1 LIMIT ?3)";
    int rc;

    *runs = *jobs = 0;
    if (keep < 1)
        keep = 1;
    if (batch < 1)
        batch = 1;
    if ((rc = delete_batches(st, runs_sql, keep, before_ms, batch, runs,
                             "prune the sync run history", err)))
        return rc;
    return delete_batches(st, jobs_sql, keep, before_ms, batch, jobs, "prune the job history",
                          err);
}
