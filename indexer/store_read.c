/*
 * store_read.c - retrieval's and the cli's reads of documents, ACL sets and
 * sync runs outside the query planner (see store_read.h). The statements
 * on a ctx_store are the store's own cached ones (Q_RD_*, store.c).
 */
#include "store_int.h"
#include "store_read.h"

#include <string.h>

#include "stmt.h"

int store_read_prepare(ctx_store *st, const char *what, ctx_error *err)
{
    for (int id = Q_RD_DOC; id <= Q_RD_LABELS; id++)
        if (!store__stmt(st, id, NULL))
            return store_errf(st, err, what);
    return CTX_OK;
}

int store_snapshot_begin(ctx_store *st, const char *what, ctx_error *err)
{
    if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return store_errf(st, err, what);
    return CTX_OK;
}

void store_snapshot_end(ctx_store *st)
{
    /* a statement mid-row would keep the snapshot open past the COMMIT */
    sqlite3_reset(st->q[Q_RD_LABELS]);
    sqlite3_reset(st->q[Q_RD_DOC]);
    if (!sqlite3_get_autocommit(st->db) &&
        sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_ping(ctx_store *st)
{
    return sqlite3_exec(st->db, "SELECT 1 FROM sources LIMIT 1", NULL, NULL, NULL) == SQLITE_OK;
}

static const char *text(sqlite3_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(s, col);
}

int store_doc_get(ctx_store *st, int64_t doc_id, store_doc_view *d, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_RD_DOC, err);
    int rc;

    memset(d, 0, sizeof *d);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? CTX_ENOTFOUND : store_errf(st, err, "read a document");
    }
    d->title = text(s, 0);
    d->url = text(s, 1);
    d->source = text(s, 2);
    d->body = text(s, 3);
    d->acl_id = sqlite3_column_int64(s, 4);
    d->acl_synced_at = sqlite3_column_int64(s, 5);
    d->ext_id = text(s, 6);
    d->stream = text(s, 7);
    d->source_id = sqlite3_column_int64(s, 8);
    return CTX_OK;
}

void store_doc_release(ctx_store *st)
{
    sqlite3_reset(st->q[Q_RD_DOC]);
}

void store_doc_by_ext(ctx_store *st, const char *source, size_t nsource, const char *ext_id,
                      int64_t *doc_id)
{
    sqlite3_stmt *s = store__stmt(st, Q_RD_BY_EXT, NULL);

    *doc_id = 0;
    if (!s)
        return;
    sqlite3_bind_text(s, 1, source, (int)nsource, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ext_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        *doc_id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
}

int store_doc_name(ctx_store *st, int64_t doc_id, char **source, char **ext_id,
                   ctx_error *err)
{
    /* Without the source, the documents row alone (Q_RD_EXT: ext_id, stream). */
    sqlite3_stmt *s = store__stmt(st, source ? Q_RD_REF : Q_RD_EXT, err);
    int step, col = source ? 1 : 0, rc = CTX_OK;

    *ext_id = NULL;
    if (source)
        *source = NULL;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    if ((step = sqlite3_step(s)) != SQLITE_ROW)
        rc = step == SQLITE_DONE ? CTX_ENOTFOUND : store_errf(st, err, "read a document's name");
    else if ((text(s, col) && !(*ext_id = ctx_strdup(text(s, col)))) ||
             (source && !(*source = ctx_strdup(text(s, 0) ? text(s, 0) : ""))))
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
    sqlite3_reset(s);
    if (rc) {
        ctx_free(*ext_id);
        *ext_id = NULL;
        if (source) {
            ctx_free(*source);
            *source = NULL;
        }
    }
    return rc;
}

int64_t store_chunk_acl(ctx_store *st, int64_t chunk_id)
{
    sqlite3_stmt *s = store__stmt(st, Q_RD_CHUNK_ACL, NULL);
    int64_t acl = -1;

    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, chunk_id);
    if (sqlite3_step(s) == SQLITE_ROW)
        acl = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return acl;
}

json_t *store_acl_labels(ctx_store *st, int64_t acl_id)
{
    sqlite3_stmt *s = store__stmt(st, Q_RD_LABELS, NULL);
    json_t *a = s ? json_array() : NULL;
    int step = SQLITE_DONE;

    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, acl_id);
    while (a && (step = sqlite3_step(s)) == SQLITE_ROW)
        if (json_array_append_new(a, json_string(text(s, 0)))) {
            json_decref(a);
            a = NULL;
        }
    sqlite3_reset(s);
    if (step != SQLITE_DONE && step != SQLITE_ROW) {
        json_decref(a);
        a = NULL;
    }
    return a;
}

int store_run_counts(ctx_store *st,
                     int (*fn)(void *arg, const char *source, const char *status, int64_t n),
                     void *arg, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc = CTX_OK, step;

    if (sqlite3_prepare_v2(st->db, "SELECT s.name, r.status, count(*) FROM sync_runs r"
                           " JOIN sources s ON s.id = r.source_id GROUP BY 1, 2", -1, &s,
                           NULL) != SQLITE_OK)
        return store_errf(st, err, "count sync runs");
    while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW)
        rc = fn(arg, text(s, 0), text(s, 1), sqlite3_column_int64(s, 2));
    if (!rc && step != SQLITE_DONE)
        rc = store_errf(st, err, "count sync runs");
    sqlite3_finalize(s);
    return rc;
}

int store_chunk_content(sqlite3 *db, int64_t chunk_id,
                        void (*fn)(void *arg, const char *title, const char *text), void *arg,
                        const char *what, ctx_error *err)
{
    sqlite3_stmt *s;

    if (stmt_get(db, "SELECT c0, c1 FROM chunks_fts_content WHERE id = ?1", &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "%s: %s", what, sqlite3_errmsg(db));
    sqlite3_bind_int64(s, 1, chunk_id);
    if (sqlite3_step(s) == SQLITE_ROW)
        fn(arg, text(s, 0), text(s, 1));
    stmt_put(s);
    return CTX_OK;
}
