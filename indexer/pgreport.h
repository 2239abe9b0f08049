/*
 * pgreport.h - cluster mode's state for operators (`ctxgate status`, GET
 * /v1/admin/status; docs/cluster.md): the sources with their last runs
 * (ctxgate.sync_runs), the job schedule with its leases (ctxgate.jobs) and
 * the replicas' logical slots with how far behind the WAL they are
 * (pg_replication_slots), read from PostgreSQL in one read-only snapshot.
 * Nothing is written and no migration is run: a database without the
 * schema reports version 0 and no sources or jobs. Times are ms since the
 * epoch; every answer is new JSON the caller json_decref's.
 */
#ifndef CTX_INDEXER_PGREPORT_H
#define CTX_INDEXER_PGREPORT_H

#include <jansson.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/ctx.h"
#include "store.h"

/*
 * pgreport_cluster - connect to c (password from its env or file; a
 * connect_timeout of 10 s unless the conninfo sets one, statements cut
 * at 10 s) and read:
 *   *sources: one object per source of ctxgate.sources, by name: source,
 *     type, documents (live in PostgreSQL), the last run (last_run status,
 *     last_run_started_at, last_run_finished_at, last_run_records,
 *     last_run_mode "incremental"/"full"/"permissions", last_run_worker,
 *     last_error, last_run_warnings, held_reason), lag_ms since the last
 *     good run at now (-1: never) and acl_synced_at (or null);
 *   *cluster: {"schema_version", "database_now" (the database's clock),
 *     "jobs": [{source, kind, next_at, due_in_ms, lease_owner,
 *     lease_until, leased, last_start, last_end, last_status, last_error,
 *     runs}], "replicas": [{replica, slot, active, active_pid,
 *     confirmed_flush_lsn, wal_lsn, bytes_behind, retained_bytes,
 *     wal_status}]} - the slots named ctxgate_* of this database.
 * Errors: CTX_ECONFIG (no conninfo, password not found), CTX_EIO (cannot
 * connect), CTX_ESTORE (a statement failed); both outputs NULL then.
 */
int pgreport_cluster(const ctx_cluster_cfg *c, int64_t now, json_t **sources,
                     json_t **cluster, ctx_error *err);

/*
 * pgreport_replica - what the replica store st (borrowed) holds of replica
 * name: {"replica", "slot", "lsn" (the stored LSN as text, "X/X"; null
 * before the first copy committed)} into *out.
 */
int pgreport_replica(ctx_store *st, const char *name, json_t **out, ctx_error *err);

#endif
