/*
 * store_usage.c - tokens served per user and per agent in each budget
 * window, kept in the audit log's file beside its records (see store.h,
 * "Token usage per window"). Small: a row per name and window.
 */
#include "store_int.h"

#include <sqlite3.h>

int store_usage_add(ctx_store *log, int kind, const char *name, int64_t span, int64_t start,
                    int64_t tokens, ctx_error *err)
{
    sqlite3_stmt *s;
    int step;

    if (sqlite3_prepare_v2(log->db,
                           "INSERT INTO usage_window(kind, name, span, start, tokens)"
                           " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(kind, name, span, start)"
                           " DO UPDATE SET tokens = tokens + ?5", -1, &s, NULL) != SQLITE_OK)
        return store_errf(log, err, "count tokens");
    sqlite3_bind_int(s, 1, kind);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, span);
    sqlite3_bind_int64(s, 4, start);
    sqlite3_bind_int64(s, 5, tokens);
    step = sqlite3_step(s);
    sqlite3_finalize(s);
    return step == SQLITE_DONE ? CTX_OK : store_errf(log, err, "count tokens");
}

int store_usage_get(ctx_store *log, int kind, const char *name, int64_t span, int64_t start,
                    int64_t *tokens, ctx_error *err)
{
    sqlite3_stmt *s;
    int step;

    *tokens = 0;
    if (sqlite3_prepare_v2(log->db,
                           "SELECT tokens FROM usage_window WHERE kind = ?1 AND name = ?2"
                           " AND span = ?3 AND start = ?4", -1, &s, NULL) != SQLITE_OK)
        return store_errf(log, err, "read a token count");
    sqlite3_bind_int(s, 1, kind);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, span);
    sqlite3_bind_int64(s, 4, start);
    if ((step = sqlite3_step(s)) == SQLITE_ROW)
        *tokens = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return step == SQLITE_ROW || step == SQLITE_DONE ? CTX_OK
                                                     : store_errf(log, err, "read a token count");
}

int store_usage_scan(ctx_store *log, int64_t span, int64_t start,
                     int (*fn)(void *arg, int kind, const char *name, int64_t tokens),
                     void *arg, ctx_error *err)
{
    sqlite3_stmt *s;
    int step, rc = CTX_OK;

    if (sqlite3_prepare_v2(log->db,
                           "SELECT kind, name, tokens FROM usage_window WHERE span = ?1"
                           " AND start = ?2 ORDER BY kind, name", -1, &s, NULL) != SQLITE_OK)
        return store_errf(log, err, "read the token counts");
    sqlite3_bind_int64(s, 1, span);
    sqlite3_bind_int64(s, 2, start);
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if ((rc = fn(arg, sqlite3_column_int(s, 0), (const char *)sqlite3_column_text(s, 1),
                     sqlite3_column_int64(s, 2))))
            break;
    if (!rc && step != SQLITE_DONE)
        rc = store_errf(log, err, "read the token counts");
    sqlite3_finalize(s);
    return rc;
}

int store_usage_prune(ctx_store *log, int64_t before_ms, int64_t *n, ctx_error *err)
{
    sqlite3_stmt *s;
    int step;

    *n = 0;
    if (sqlite3_prepare_v2(log->db, "DELETE FROM usage_window WHERE start < ?1", -1, &s,
                           NULL) != SQLITE_OK)
        return store_errf(log, err, "prune the token counts");
    sqlite3_bind_int64(s, 1, before_ms);
    step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE)
        return store_errf(log, err, "prune the token counts");
    *n = sqlite3_changes(log->db);
    return CTX_OK;
}
