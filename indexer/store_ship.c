/*
 * store_ship.c - the local audit log's side of cluster mode: the log's
 * origin (a random name PostgreSQL knows it by), its records read past an
 * id for shipping, and the shipped records pruned (see pgaudit.h).
 */
#include "pgaudit.h"

#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "../core/json.h"
#include "../core/util.h"

/* new_origin - 32 hex digits of a random 128-bit name into out. */
static int new_origin(char out[PGAUDIT_ORIGIN_LEN], ctx_error *err)
{
    unsigned char b[16];

    if (RAND_bytes(b, sizeof b) != 1)
        return ctx_error_set(err, CTX_EIO, "audit log: no random bytes for its origin");
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return CTX_OK;
}

int store_audit_origin(ctx_store *log, int renew, char out[PGAUDIT_ORIGIN_LEN], ctx_error *err)
{
    sqlite3 *db = store_db(log);
    sqlite3_stmt *s = NULL;
    char fresh[PGAUDIT_ORIGIN_LEN];
    int step, rc;

    out[0] = '\0';
    /* A table of its own, made here: the log's schema steps stay as they are,
     * and a log made by an embedded ctxgate gets it at its first shipping. */
    if ((rc = store_exec(log, "CREATE TABLE IF NOT EXISTS audit_origin(key TEXT NOT NULL)",
                         err)))
        return rc;
    if (!renew) {
        if (sqlite3_prepare_v2(db, "SELECT key FROM audit_origin", -1, &s, NULL) != SQLITE_OK)
            return store_errf(log, err, "audit log: read its origin");
        if ((step = sqlite3_step(s)) == SQLITE_ROW)
            snprintf(out, PGAUDIT_ORIGIN_LEN, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return store_errf(log, err, "audit log: read its origin");
        if (out[0])
            return CTX_OK;
    }
    if ((rc = new_origin(fresh, err)))
        return rc;
    /* One row, whoever writes first wins: two processes sharing the log
     * agree on its name. */
    if (sqlite3_prepare_v2(db, renew ? "UPDATE audit_origin SET key = ?1"
                                     : "INSERT INTO audit_origin(key) SELECT ?1 WHERE NOT"
                                       " EXISTS (SELECT 1 FROM audit_origin)",
                           -1, &s, NULL) != SQLITE_OK)
        return store_errf(log, err, "audit log: record its origin");
    sqlite3_bind_text(s, 1, fresh, -1, SQLITE_STATIC);
    step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE)
        return store_errf(log, err, "audit log: record its origin");
    return renew ? (snprintf(out, PGAUDIT_ORIGIN_LEN, "%s", fresh), CTX_OK)
                 : store_audit_origin(log, 0, out, err);
}

int store_audit_last_id(ctx_store *log, int64_t *id, ctx_error *err)
{
    sqlite3_stmt *s;
    int step;

    *id = 0;
    if (sqlite3_prepare_v2(store_db(log), "SELECT max(id) FROM audit", -1, &s, NULL) !=
        SQLITE_OK)
        return store_errf(log, err, "audit log: read its last id");
    if ((step = sqlite3_step(s)) == SQLITE_ROW)
        *id = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return step == SQLITE_ROW ? CTX_OK : store_errf(log, err, "audit log: read its last id");
}

int64_t store_audit_rowid(ctx_store *log) { return sqlite3_last_insert_rowid(store_db(log)); }

/* col_text - a text column as JSON (null for NULL). Text that is not
 * UTF-8 (a user named by a stdio client's environment) goes with its
 * other bytes as '?': a record PostgreSQL refused would stop the shipping
 * of every record after it. */
static json_t *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    json_t *v;
    char *c;

    if (!t)
        return json_null();
    if ((v = json_string((const char *)t)) || !(c = ctx_strdup((const char *)t)))
        return v;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = json_string(c);
    ctx_free(c);
    return v;
}

int store_audit_rows(ctx_store *log, int64_t after, int64_t limit, json_t **rows,
                     int64_t *last, ctx_error *err)
{
    static const char *const names[] = {"id",    "at",         "user",   "agent",
                                        "action", "query",     "query_sha256",
                                        "doc_ids", "tokens",   "latency_us", "outcome"};
    sqlite3_stmt *s;
    json_t *arr;
    int step;

    *rows = NULL;
    *last = after;
    if (sqlite3_prepare_v2(store_db(log),
                           "SELECT id, at, user, agent, action, query, query_sha256, doc_ids,"
                           " tokens, latency_us, outcome FROM audit WHERE id > ?1"
                           " ORDER BY id LIMIT ?2", -1, &s, NULL) != SQLITE_OK)
        return store_errf(log, err, "audit log: read records to ship");
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int64(s, 2, limit > 0 ? limit : 1000);
    if (!(arr = json_array())) {
        sqlite3_finalize(s);
        return ctx_error_set(err, CTX_ENOMEM, "audit log: out of memory");
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *o = json_object();
        for (int i = 0; o && i < 11; i++) {
            int t = sqlite3_column_type(s, i);
            json_t *v = t == SQLITE_INTEGER ? json_integer(sqlite3_column_int64(s, i))
                                            : col_text(s, i);
            if (json_object_set_new(o, names[i], v)) {
                json_decref(o);
                o = NULL;
            }
        }
        if (!o || json_array_append_new(arr, o)) {
            sqlite3_finalize(s);
            json_decref(arr);
            return ctx_error_set(err, CTX_ENOMEM, "audit log: out of memory");
        }
        *last = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    if (step != SQLITE_DONE) {
        json_decref(arr);
        *last = after;
        return store_errf(log, err, "audit log: read records to ship");
    }
    *rows = arr;
    return CTX_OK;
}

int store_audit_prune_shipped(ctx_store *log, int64_t upto_id, int64_t before_ms,
                              int64_t batch, int64_t *n, ctx_error *err)
{
    sqlite3_stmt *s;
    int step, changed;

    *n = 0;
    /* The newest row stays whatever its age: SQLite gives the next record
     * max(id) + 1, and an id PostgreSQL holds for this origin must never
     * come again. */
    if (sqlite3_prepare_v2(store_db(log),
                           "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE"
                           " id <= ?1 AND at < ?2 AND id < (SELECT max(id) FROM audit)"
                           " ORDER BY id LIMIT ?3)", -1, &s, NULL) != SQLITE_OK)
        return store_errf(log, err, "audit log: prune shipped records");
    do {
        sqlite3_bind_int64(s, 1, upto_id);
        sqlite3_bind_int64(s, 2, before_ms);
        sqlite3_bind_int64(s, 3, batch > 0 ? batch : 2000);
        step = sqlite3_step(s);
        sqlite3_reset(s);
        changed = step == SQLITE_DONE ? sqlite3_changes(store_db(log)) : 0;
        *n += changed;
    } while (step == SQLITE_DONE && changed >= (batch > 0 ? batch : 2000));
    sqlite3_finalize(s);
    return step == SQLITE_DONE ? CTX_OK : store_errf(log, err, "audit log: prune shipped records");
}
