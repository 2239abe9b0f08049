/*
 * store_perm.c - the store's part of permission runs and resumable full
 * runs (schema v7, see store.h): which streams have a full run pending, and
 * when each source's permissions were last read whole. Few calls per run,
 * so the statements are prepared per call, not cached.
 */
#include "store.h"

#include "../core/util.h"

/* one_stmt - prepare sql on the store's connection; NULL (err set) on failure. */
static sqlite3_stmt *one_stmt(ctx_store *st, const char *sql, ctx_error *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) != SQLITE_OK) {
        store_errf(st, err, "prepare");
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

/* finish - step s once more if needed, finalize it, report a failure as what. */
static int finish(ctx_store *st, sqlite3_stmt *s, int step, ctx_error *err, const char *what)
{
    int rc = step == SQLITE_DONE || step == SQLITE_ROW ? CTX_OK : store_errf(st, err, what);
    sqlite3_finalize(s);
    return rc;
}

/* read_int - the one integer a query returns, 0 when it returns no row. */
static int read_int(ctx_store *st, sqlite3_stmt *s, int64_t *out, ctx_error *err,
                    const char *what)
{
    int step = sqlite3_step(s);
    *out = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    return finish(st, s, step, err, what);
}

int store_pending_get(ctx_store *st, int64_t source, const char *stream, int64_t *epoch,
                      ctx_error *err)
{
    sqlite3_stmt *s = one_stmt(st, "SELECT epoch FROM sync_pending"
                                   " WHERE source_id = ?1 AND stream = ?2", err);
    *epoch = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    return read_int(st, s, epoch, err, "read pending full run");
}

int store_pending_put(ctx_store *st, int64_t source, const char *stream, int64_t epoch,
                      ctx_error *err)
{
    sqlite3_stmt *s = one_stmt(st, "INSERT OR REPLACE INTO sync_pending(source_id, stream,"
                                   " epoch, started_at) VALUES(?1, ?2, ?3, ?4)", err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, epoch);
    sqlite3_bind_int64(s, 4, ctx_now_ms());
    return finish(st, s, sqlite3_step(s), err, "record pending full run");
}

int store_pending_clear(ctx_store *st, int64_t source, const char *stream, ctx_error *err)
{
    sqlite3_stmt *s = one_stmt(st, "DELETE FROM sync_pending"
                                   " WHERE source_id = ?1 AND stream = ?2", err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    return finish(st, s, sqlite3_step(s), err, "clear pending full run");
}

int store_source_acl_synced_put(ctx_store *st, int64_t source, int64_t at, ctx_error *err)
{
    /* max(): a slow run that finishes after a later, quicker one does not
     * move the time back. */
    sqlite3_stmt *s = one_stmt(st, "INSERT INTO source_acl_sync(source_id, synced_at)"
                                   " VALUES(?1, ?2) ON CONFLICT(source_id) DO UPDATE"
                                   " SET synced_at = max(synced_at, ?2)", err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_int64(s, 2, at);
    return finish(st, s, sqlite3_step(s), err, "record permission sync time");
}

int store_source_acl_synced_at(ctx_store *st, int64_t source, int64_t *at, ctx_error *err)
{
    sqlite3_stmt *s = one_stmt(st, "SELECT synced_at FROM source_acl_sync"
                                   " WHERE source_id = ?1", err);
    *at = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    return read_int(st, s, at, err, "read permission sync time");
}
