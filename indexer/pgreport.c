/*
 * pgreport.c - cluster mode's sources, runs, jobs and replica slots read
 * from PostgreSQL for operators, and a replica's stored LSN (see
 * pgreport.h).
 */
#include "pgreport.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/json.h"
#include "../core/util.h"
#include "pgstore_int.h"

#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

/* ---- reading results ---- */

static json_t *text_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static json_t *int_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_integer(pg__get64(r, row, col));
}

static const char *mode_name(int64_t mode)
{
    return mode == 2 ? "permissions" : mode == 1 ? "full" : "incremental";
}

/* ---- connecting ---- */

/*
 * report_connect - a connection for reading (pg__connect: a conninfo
 * without connect_timeout waits 10 s at most for an unreachable server).
 */
static int report_connect(const ctx_cluster_cfg *c, pgstore **out, ctx_error *err)
{
    pgstore *pg;
    int rc;

    *out = NULL;
    if (!(pg = ctx_calloc(1, sizeof *pg)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    if (!(pg->db = pg__connect(c, 0, err))) {
        ctx_free(pg);
        return err->code;
    }
    if ((rc = pg__ok(pg, err, "session settings",
                     "SET client_min_messages TO warning; SET statement_timeout = '10s';"
                     " BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0))) {
        pgstore_close(pg);
        return rc;
    }
    *out = pg;
    return CTX_OK;
}

/* ---- the parts ---- */

static int read_sources(pgstore *pg, int64_t now, json_t *out, ctx_error *err)
{
    static const char sql[] =
        "SELECT s.name, s.type,"
        " (SELECT count(*) FROM ctxgate.documents d WHERE d.source = s.id AND NOT d.deleted),"
        " r.status, r.started_at, r.finished_at, r.records, r.error, r.warnings,"
        " r.held_reason, r.worker, r.mode,"
        " (SELECT max(o.finished_at) FROM ctxgate.sync_runs o"
        "   WHERE o.source = s.id AND o.status = 'ok'), s.acl_synced_at"
        " FROM ctxgate.sources s LEFT JOIN LATERAL (SELECT * FROM ctxgate.sync_runs x"
        "  WHERE x.source = s.id ORDER BY x.id DESC LIMIT 1) r ON true ORDER BY s.name";
    PGresult *r = pg__q(pg, err, "read the sources and their runs", sql, 0);

    if (!r)
        return err->code;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t last_ok = pg__get64(r, i, 12);
        int ran = !PQgetisnull(r, i, 3);
        json_t *w = PQgetisnull(r, i, 8) ? NULL : ctx_json_loads(PQgetvalue(r, i, 8), 0, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "source", json_string(PQgetvalue(r, i, 0)));
        json_object_set_new(o, "type", json_string(PQgetvalue(r, i, 1)));
        json_object_set_new(o, "documents", json_integer(pg__get64(r, i, 2)));
        json_object_set_new(o, "last_run", text_or_null(r, i, 3));
        json_object_set_new(o, "last_run_started_at", json_integer(pg__get64(r, i, 4)));
        json_object_set_new(o, "last_run_finished_at", int_or_null(r, i, 5));
        json_object_set_new(o, "last_run_records", json_integer(pg__get64(r, i, 6)));
        json_object_set_new(o, "last_run_mode",
                            ran ? json_string(mode_name(pg__get64(r, i, 11))) : json_null());
        json_object_set_new(o, "last_run_worker", text_or_null(r, i, 10));
        json_object_set_new(o, "lag_ms", json_integer(last_ok ? now - last_ok : -1));
        json_object_set_new(o, "last_error", text_or_null(r, i, 7));
        json_object_set_new(o, "last_run_warnings", json_is_array(w) ? w : json_array());
        if (w && !json_is_array(w))
            json_decref(w);
        if (!PQgetisnull(r, i, 9))
            json_object_set_new(o, "held_reason", text_or_null(r, i, 9));
        json_object_set_new(o, "acl_synced_at", int_or_null(r, i, 13));
        json_array_append_new(out, o);
    }
    PQclear(r);
    return CTX_OK;
}

static int read_jobs(pgstore *pg, json_t *out, ctx_error *err)
{
    static const char sql[] =
        "SELECT source, kind, next_at, lease_owner, lease_until, last_start, last_end,"
        " last_status, last_error, runs, " NOW_MS
        " FROM ctxgate.jobs ORDER BY source, kind";
    PGresult *r = pg__q(pg, err, "read the jobs", sql, 0);

    if (!r)
        return err->code;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t db_now = pg__get64(r, i, 10);
        int leased = !PQgetisnull(r, i, 3) && !PQgetisnull(r, i, 4) &&
                     pg__get64(r, i, 4) >= db_now;
        json_t *o = json_object();
        json_object_set_new(o, "source", json_string(PQgetvalue(r, i, 0)));
        json_object_set_new(o, "kind", json_string(PQgetvalue(r, i, 1)));
        json_object_set_new(o, "next_at", json_integer(pg__get64(r, i, 2)));
        json_object_set_new(o, "due_in_ms", json_integer(pg__get64(r, i, 2) - db_now));
        json_object_set_new(o, "lease_owner", text_or_null(r, i, 3));
        json_object_set_new(o, "lease_until", int_or_null(r, i, 4));
        json_object_set_new(o, "leased", json_boolean(leased));
        json_object_set_new(o, "last_start", int_or_null(r, i, 5));
        json_object_set_new(o, "last_end", int_or_null(r, i, 6));
        json_object_set_new(o, "last_status", text_or_null(r, i, 7));
        json_object_set_new(o, "last_error", text_or_null(r, i, 8));
        json_object_set_new(o, "runs", json_integer(pg__get64(r, i, 9)));
        json_array_append_new(out, o);
    }
    PQclear(r);
    return CTX_OK;
}

/* The slots of this database's replicas; on a standby the WAL position is
 * the one replayed (pg_current_wal_lsn() fails in recovery). */
static int read_slots(pgstore *pg, json_t *out, ctx_error *err)
{
    static const char sql[] =
        "SELECT s.slot_name, s.active, s.active_pid, s.confirmed_flush_lsn::text,"
        " w.lsn::text, pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn)::bigint,"
        " pg_wal_lsn_diff(w.lsn, s.restart_lsn)::bigint, s.wal_status"
        " FROM pg_replication_slots s, (SELECT CASE WHEN pg_is_in_recovery()"
        "  THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn) w"
        " WHERE s.slot_name LIKE 'ctxgate\\_%' AND s.database = current_database()"
        " ORDER BY s.slot_name";
    PGresult *r = pg__q(pg, err, "read the replicas' slots", sql, 0);

    if (!r)
        return err->code;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *slot = PQgetvalue(r, i, 0);
        json_t *o = json_object();
        json_object_set_new(o, "replica", json_string(slot + strlen("ctxgate_")));
        json_object_set_new(o, "slot", json_string(slot));
        json_object_set_new(o, "active", json_boolean(!strcmp(PQgetvalue(r, i, 1), "t")));
        json_object_set_new(o, "active_pid", int_or_null(r, i, 2));
        json_object_set_new(o, "confirmed_flush_lsn", text_or_null(r, i, 3));
        json_object_set_new(o, "wal_lsn", text_or_null(r, i, 4));
        json_object_set_new(o, "bytes_behind", int_or_null(r, i, 5));
        json_object_set_new(o, "retained_bytes", int_or_null(r, i, 6));
        json_object_set_new(o, "wal_status", text_or_null(r, i, 7));
        json_array_append_new(out, o);
    }
    PQclear(r);
    return CTX_OK;
}

int pgreport_cluster(const ctx_cluster_cfg *c, int64_t now, json_t **sources,
                     json_t **cluster, ctx_error *err)
{
    json_t *src = json_array(), *jobs = json_array(), *slots = json_array();
    pgstore *pg = NULL;
    PGresult *r;
    int64_t version = 0, db_now = 0;
    int rc;

    *sources = *cluster = NULL;
    if (!src || !jobs || !slots) {
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = report_connect(c, &pg, err)))
        goto done;
    if (!(r = pg__q(pg, err, "read the schema version",
                    "SELECT CASE WHEN to_regclass('ctxgate.schema_version') IS NULL THEN 0"
                    " ELSE (SELECT max(version) FROM ctxgate.schema_version) END, " NOW_MS,
                    0))) {
        rc = err->code;
        goto done;
    }
    /* to_regclass in the CASE: the subquery is planned only when it runs. */
    version = pg__get64(r, 0, 0);
    db_now = pg__get64(r, 0, 1);
    PQclear(r);
    if ((version >= 1 && ((rc = read_sources(pg, now, src, err)) ||
                          (rc = read_jobs(pg, jobs, err)))) ||
        (rc = read_slots(pg, slots, err)))
        goto done;
    *cluster = json_pack("{s:I,s:I,s:O,s:O}", "schema_version", (json_int_t)version,
                         "database_now", (json_int_t)db_now, "jobs", jobs, "replicas", slots);
    if (!*cluster) {
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        goto done;
    }
    *sources = json_incref(src);
done:
    pgstore_close(pg);
    json_decref(src);
    json_decref(jobs);
    json_decref(slots);
    return rc;
}

/* ---- the replica's own store ---- */

int pgreport_replica(ctx_store *st, const char *name, json_t **out, ctx_error *err)
{
    char slot[128], lsn[40] = "";
    sqlite3_stmt *q;
    int step, have = 0;

    *out = NULL;
    snprintf(slot, sizeof slot, "ctxgate_%s", name);
    /* No replica_state table yet: no copy was ever made here. */
    if (sqlite3_prepare_v2(store_db(st), "SELECT lsn FROM replica_state WHERE slot = ?1", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        if ((step = sqlite3_step(q)) == SQLITE_ROW) {
            uint64_t v = (uint64_t)sqlite3_column_int64(q, 0);
            snprintf(lsn, sizeof lsn, "%X/%X", (unsigned)(v >> 32), (unsigned)v);
            have = 1;
        }
        sqlite3_finalize(q);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return store_errf(st, err, "read the replica's LSN");
    } else if (!strstr(sqlite3_errmsg(store_db(st)), "no such table")) {
        return store_errf(st, err, "read the replica's LSN");
    }
    *out = json_pack("{s:s,s:s,s:o}", "replica", name, "slot", slot, "lsn",
                     have ? json_string(lsn) : json_null());
    return *out ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "out of memory");
}
