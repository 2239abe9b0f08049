/*
 * pgfollow.c - a search replica follows PostgreSQL by logical decoding
 * (pgoutput, protocol version 1) into its local store (see pgfollow.h,
 * docs/cluster.md). The decoded rows are applied as a local sync applies
 * connector messages: documents through ingest (chunked, FTS5, the embed
 * queue), tombstones as deletes, principals with their group's members.
 */
#include "pgfollow.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "ingest.h"
#include "pgfollow_int.h"
#include "pgstore_int.h"

#define PEEK_CHANGES 5000      /* changes read per step (whole transactions) */
#define PUBLICATION "ctxgate_replicas"
#define MARK_MS 5000           /* idle this long, a step writes a mark (see below) */

/* ---- the stored LSN (in the store, beside what it describes) ---- */

static int lsn_table(ctx_store *st, ctx_error *err)
{
    return store_exec(st, "CREATE TABLE IF NOT EXISTS replica_state (slot TEXT PRIMARY KEY,"
                      " lsn INTEGER NOT NULL)", err);
}

int pgfollow_lsn(ctx_store *st, const char *replica, uint64_t *lsn, ctx_error *err)
{
    sqlite3_stmt *q;
    int rc;

    *lsn = 0;
    if ((rc = lsn_table(st, err)))
        return rc;
    if (sqlite3_prepare_v2(store_db(st), "SELECT lsn FROM replica_state WHERE slot = ?", -1, &q,
                           NULL) != SQLITE_OK)
        return store_errf(st, err, "read the replica's LSN");
    sqlite3_bind_text(q, 1, replica, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *lsn = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_errf(st, err, "read the replica's LSN");
    return CTX_OK;
}

static int lsn_put(ctx_store *st, const char *replica, uint64_t lsn, ctx_error *err)
{
    sqlite3_stmt *q;
    int rc;

    if (sqlite3_prepare_v2(store_db(st), "INSERT INTO replica_state (slot, lsn) VALUES (?, ?)"
                           " ON CONFLICT (slot) DO UPDATE SET lsn = excluded.lsn", -1, &q,
                           NULL) != SQLITE_OK)
        return store_errf(st, err, "store the replica's LSN");
    sqlite3_bind_text(q, 1, replica, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)lsn);
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "store the replica's LSN");
}

int pgfollow_caught_up_put(ctx_store *st, const char *replica, int64_t at_ms, ctx_error *err)
{
    sqlite3_stmt *q;
    int rc;

    if ((rc = store_exec(st, "CREATE TABLE IF NOT EXISTS replica_caught_up (slot TEXT PRIMARY"
                         " KEY, at INTEGER NOT NULL)", err)))
        return rc;
    if (sqlite3_prepare_v2(store_db(st), "INSERT INTO replica_caught_up (slot, at) VALUES (?, ?)"
                           " ON CONFLICT (slot) DO UPDATE SET at = max(at, excluded.at)", -1, &q,
                           NULL) != SQLITE_OK)
        return store_errf(st, err, "record when the replica caught up");
    sqlite3_bind_text(q, 1, replica, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, at_ms);
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "record when the replica caught up");
}

int pgfollow_caught_up_at(ctx_store *st, const char *replica, int64_t *at_ms, ctx_error *err)
{
    sqlite3_stmt *q;
    int rc;

    *at_ms = 0;
    /* no table: no follower ever caught up on this store */
    if (sqlite3_prepare_v2(store_db(st), "SELECT at FROM replica_caught_up WHERE slot = ?", -1,
                           &q, NULL) != SQLITE_OK)
        return strstr(sqlite3_errmsg(store_db(st)), "no such table")
                   ? CTX_OK
                   : store_errf(st, err, "read when the replica caught up");
    sqlite3_bind_text(q, 1, replica, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *at_ms = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE
               ? CTX_OK
               : store_errf(st, err, "read when the replica caught up");
}

static uint64_t lsn_parse(const char *s)
{
    unsigned hi = 0, lo = 0;

    return s && sscanf(s, "%X/%X", &hi, &lo) == 2 ? ((uint64_t)hi << 32) | lo : 0;
}

static void lsn_text(char *buf, size_t len, uint64_t lsn)
{
    snprintf(buf, len, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

/* ---- opening ---- */

int pgfollow_open(const ctx_config *cfg, ctx_store *st, pgfollow **out, ctx_error *err)
{
    pgfollow *f;
    int rc;

    *out = NULL;
    if (!cfg->cluster.replica || !*cfg->cluster.replica)
        return ctx_error_set(err, CTX_ECONFIG, "cluster.replica: not set; name this replica"
                             " (its slot is ctxgate_<name>)");
    if (!(f = ctx_calloc(1, sizeof *f)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    f->cfg = cfg;
    f->st = st;
    snprintf(f->slot, sizeof f->slot, "ctxgate_%s", cfg->cluster.replica);
    f->ing.store = st;
    f->ing.stats = &f->stats;
    f->ing.chunk.max_tokens = cfg->chunk_max_tokens ? (int)cfg->chunk_max_tokens : 256;
    f->ing.chunk.overlap_tokens = (int)cfg->chunk_overlap_tokens;
    if ((rc = pgstore_open(&cfg->cluster, &f->pg, err)) || (rc = lsn_table(st, err))) {
        pgfollow_close(f);
        return rc;
    }
    *out = f;
    return CTX_OK;
}

void pgfollow_close(pgfollow *f)
{
    if (!f)
        return;
    pgstore_close(f->pg);
    pgf__cache_clear(f);
    ctx_free(f);
}

/* ---- the first copy ---- */

/* slot_state - *exists and the slot's confirmed LSN. */
static int slot_state(pgfollow *f, int *exists, uint64_t *confirmed, ctx_error *err)
{
    PGresult *r = pg__q(f->pg, err, "read the replica's slot",
                        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
                        " WHERE slot_name = $1", 1, f->slot);

    if (!r)
        return err->code;
    *exists = PQntuples(r) > 0;
    *confirmed = *exists ? lsn_parse(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return CTX_OK;
}

/*
 * first_copy - create the slot with an exported snapshot, copy the tables
 * under it into the store and store the slot's consistent point, in one
 * SQLite transaction. Killed before that commit, the next start finds the
 * slot without a stored LSN, drops it and copies again.
 */
static int first_copy(pgfollow *f, ctx_error *err)
{
    PGconn *repl;
    PGresult *r;
    char sql[160];
    uint64_t at;
    int rc;

    if (!(repl = pg__connect(&f->cfg->cluster, 1, err)))
        return err->code;
    snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT",
             f->slot);
    r = PQexec(repl, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        const char *m = PQresultErrorMessage(r);
        rc = ctx_error_set(err, PQstatus(repl) == CONNECTION_OK ? CTX_ESTORE : CTX_EIO,
                           "cluster: create the replication slot %s: %.*s (the server needs"
                           " wal_level = logical and the role REPLICATION)", f->slot,
                           (int)strcspn(m, "\n"), m);
        PQclear(r);
        PQfinish(repl);
        return rc;
    }
    at = lsn_parse(PQgetvalue(r, 0, 1));
    rc = pg__ok(f->pg, err, "begin the first copy",
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0);
    if (!rc) {
        char imp[160];
        snprintf(imp, sizeof imp, "SET TRANSACTION SNAPSHOT '%s'", PQgetvalue(r, 0, 2));
        rc = pg__ok(f->pg, err, "take the slot's snapshot", imp, 0);
    }
    PQclear(r);
    PQfinish(repl);        /* the snapshot is ours now */
    if (rc)
        goto fail_pg;
    if ((rc = store_begin(f->st, err)))
        goto fail_pg;
    if ((rc = pgf__copy(f, err)) || (rc = pgf__vec_settle(f, err)) ||
        (rc = lsn_put(f->st, f->cfg->cluster.replica, at, err))) {
        store_rollback(f->st);
        pgf__cache_clear(f);
        goto fail_pg;
    }
    if ((rc = store_commit(f->st, err)))
        goto fail_pg;
    f->lsn = f->confirmed = f->stored = at;
    ctx_log(CTX_LOG_INFO, "replica", "%s: first copy made at %X/%X (%lld documents)", f->slot,
            (unsigned)(at >> 32), (unsigned)at, (long long)f->docs);
    return pg__ok(f->pg, err, "end the first copy", "COMMIT", 0);
fail_pg:
    PQclear(PQexec(f->pg->db, "ROLLBACK"));
    return rc;
}

/* store_has_documents - *yes when the store holds any document row. */
static int store_has_documents(pgfollow *f, int *yes, ctx_error *err)
{
    sqlite3_stmt *q;
    int rc;

    if (sqlite3_prepare_v2(store_db(f->st), "SELECT 1 FROM documents LIMIT 1", -1, &q, NULL) !=
        SQLITE_OK)
        return store_errf(f->st, err, "look into the replica's store");
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_errf(f->st, err, "look into the replica's store");
    *yes = rc == SQLITE_ROW;
    return CTX_OK;
}

static int start(pgfollow *f, ctx_error *err)
{
    int exists, exists_docs = 0, rc;
    uint64_t confirmed;

    if ((rc = pgfollow_lsn(f->st, f->cfg->cluster.replica, &f->lsn, err)) ||
        (rc = slot_state(f, &exists, &confirmed, err)))
        return rc;
    f->stored = f->lsn;
    if (exists && f->lsn) {
        f->confirmed = confirmed;
        if (f->lsn < confirmed)
            return ctx_error_set(err, CTX_ESTORE, "cluster: replica %s: the store is at %X/%X"
                                 " but its slot %s was moved on to %X/%X; rebuild the"
                                 " replica from an empty data_dir", f->cfg->cluster.replica,
                                 (unsigned)(f->lsn >> 32), (unsigned)f->lsn, f->slot,
                                 (unsigned)(confirmed >> 32), (unsigned)confirmed);
        return CTX_OK;
    }
    if (!exists && f->lsn)
        return ctx_error_set(err, CTX_ESTORE, "cluster: replica %s: its slot %s is gone (dropped,"
                             " or over max_slot_wal_keep_size); rebuild the replica from an"
                             " empty data_dir", f->cfg->cluster.replica, f->slot);
    /* The first copy goes into a store of its own: what another replica
     * name or a local sync left there would never be pruned. */
    if ((rc = store_has_documents(f, &exists_docs, err)))
        return rc;
    if (exists_docs)
        return ctx_error_set(err, CTX_ECONFIG, "cluster.replica: the store in data_dir already"
                             " holds documents that replica %s did not copy (another replica"
                             " name, or local syncs); give the replica an empty data_dir",
                             f->cfg->cluster.replica);
    if (exists &&
        (rc = pg__ok(f->pg, err, "drop the slot of an unfinished first copy",
                     "SELECT pg_drop_replication_slot($1)", 1, f->slot)))
        return rc;
    return first_copy(f, err);
}

/* ---- following ---- */

int pgfollow_step(pgfollow *f, pgfollow_step_info *info, ctx_error *err)
{
    const char *v[2];
    char lim[16], lsn[32];
    PGresult *r;
    uint64_t last = 0;
    int rc, n;

    memset(info, 0, sizeof *info);
    if (!f->started) {
        if ((rc = pgf__vec_open(f, err)) || (rc = start(f, err)))
            return rc;
        f->started = 1;
        f->moved_at = ctx_now_ms();
        if ((rc = store_trust_apply(f->st, f->cfg, err)))
            return rc;
    }
    snprintf(lim, sizeof lim, "%d", PEEK_CHANGES);
    v[0] = f->slot;
    v[1] = lim;
    r = PQexecParams(f->pg->db, "SELECT data FROM pg_logical_slot_peek_binary_changes($1,"
                     " NULL, $2::int, 'proto_version', '1', 'publication_names', '"
                     PUBLICATION "', 'messages', 'true')", 2, NULL, v, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return pg__fail(f->pg, r, err, "read the replica's slot");
    n = PQntuples(r);
    f->docs = 0;
    f->new_sources = 0;
    if ((rc = store_begin(f->st, err))) {
        PQclear(r);
        return rc;
    }
    for (int i = 0; i < n && !rc; i++)
        rc = pgf__message(f, (const unsigned char *)PQgetvalue(r, i, 0),
                          (size_t)PQgetlength(r, i, 0), &last, info, err);
    PQclear(r);
    if (!rc)
        rc = pgf__vec_settle(f, err);
    /* (an idle step writes nothing: the store's LSN is already this one) */
    if (!rc && f->lsn != f->stored)
        rc = lsn_put(f->st, f->cfg->cluster.replica, f->lsn, err);
    if (rc) {
        store_rollback(f->st);
        /* sources made in it are gone again; the store's LSN is unchanged:
         * read both again at the next step */
        pgf__cache_clear(f);
        f->started = 0;
        return rc;
    }
    if ((rc = store_commit(f->st, err))) {
        f->started = 0;
        return rc;
    }
    f->stored = f->lsn;
    if ((f->new_sources && (rc = store_trust_apply(f->st, f->cfg, err))) ||
        (rc = pgf__vec_after(f, err)))
        return rc;
    /* Only now, with the store committed, may the server forget them. */
    if (last > f->confirmed) {
        lsn_text(lsn, sizeof lsn, last);
        if ((rc = pg__ok(f->pg, err, "confirm the applied changes",
                         "SELECT pg_replication_slot_advance($1, $2::pg_lsn)", 2, f->slot, lsn)))
            return rc;
        f->confirmed = last;
        f->moved_at = ctx_now_ms();
    }
    info->drained = n < PEEK_CHANGES;
    /*
     * Caught up, and nothing published changed for a while: other writes
     * (runs, jobs, other tables) still fill the WAL the slot keeps and
     * every step decodes again. A mark (a message outside any transaction)
     * lets the next step move the slot past them.
     */
    if (info->drained && ctx_now_ms() - f->moved_at > MARK_MS) {
        if ((rc = pg__ok(f->pg, err, "mark the WAL for the replica's slot",
                         "SELECT pg_logical_emit_message(false, '" PGF_MARK "', $1)", 1,
                         f->slot)))
            return rc;
        f->moved_at = ctx_now_ms();
    }
    info->docs = f->docs;
    info->lsn = f->lsn;
    return CTX_OK;
}
