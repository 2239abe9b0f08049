/*
 * store_perm.c - the store's part of permission runs and resumable full
 * runs (schema v8, see store.h): which streams have a full run pending, and
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

int store_perm_begin(ctx_store *st, ctx_error *err)
{
    /* Ordered by doc id: the prune below reads it back as a merge. */
    return store_exec(st, "CREATE TEMP TABLE IF NOT EXISTS perm_seen(doc_id INTEGER PRIMARY KEY);"
                          "CREATE TEMP TABLE IF NOT EXISTS perm_gone(doc_id INTEGER PRIMARY KEY);"
                          "DELETE FROM temp.perm_seen; DELETE FROM temp.perm_gone;", err);
}

#define PRUNE_BATCH 512

int store_perm_prune_count(ctx_store *st, int64_t source, const char *stream, int64_t *n,
                           ctx_error *err)
{
    sqlite3_stmt *s = one_stmt(st, "SELECT count(*) FROM documents WHERE source_id = ?1"
                                   " AND stream = ?2 AND deleted = 0"
                                   " AND id NOT IN (SELECT doc_id FROM temp.perm_seen)", err);
    *n = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    return read_int(st, s, n, err, "count unseen documents");
}

int store_perm_prune(ctx_store *st, int64_t source, const char *stream, int64_t epoch,
                     int64_t *n, ctx_error *err)
{
    int64_t ids[PRUNE_BATCH], after = 0;
    sqlite3_stmt *s;
    size_t got;
    int rc, step;

    *n = 0;
    /* One pass over the stream's live documents (documents_acl's prefix). */
    if (!(s = one_stmt(st, "INSERT INTO temp.perm_gone(doc_id) SELECT id FROM documents"
                           " WHERE source_id = ?1 AND stream = ?2 AND deleted = 0"
                           " AND id NOT IN (SELECT doc_id FROM temp.perm_seen)", err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    if ((rc = finish(st, s, sqlite3_step(s), err, "find unseen documents")))
        return rc;
    /* Then each one as a DELETE would go: chunks, FTS5 rows, vectors. A
     * batch of ids at a time, read before the writes that follow. */
    do {
        if (!(s = one_stmt(st, "SELECT doc_id FROM temp.perm_gone WHERE doc_id > ?1"
                               " ORDER BY doc_id LIMIT ?2", err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, after);
        sqlite3_bind_int(s, 2, PRUNE_BATCH);
        got = 0;
        while ((step = sqlite3_step(s)) == SQLITE_ROW)
            ids[got++] = sqlite3_column_int64(s, 0);
        if ((rc = finish(st, s, step, err, "read unseen documents")))
            return rc;
        for (size_t i = 0; i < got; i++) {
            if ((rc = store_doc_delete(st, ids[i], epoch, err)))
                return rc;
            after = ids[i];
            (*n)++;
        }
    } while (got == PRUNE_BATCH);
    return store_exec(st, "DELETE FROM temp.perm_gone", err);
}
