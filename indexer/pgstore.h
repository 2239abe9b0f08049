/*
 * pgstore.h - cluster mode's system of record in PostgreSQL (libpq): the
 * schema "ctxgate" and its migrations, the sync sink that writes sources,
 * documents, ACL sets, principals, checkpoints and runs (sync_sink.h), and
 * the job schedule with leases that `ctxgate agent` workers claim from.
 * docs/cluster.md has the design and the tables. One connection per
 * pgstore, used by one thread at a time.
 */
#ifndef CTX_INDEXER_PGSTORE_H
#define CTX_INDEXER_PGSTORE_H

#include <stdint.h>

#include "../core/config.h"
#include "sync_sink.h"

#define PGSTORE_SCHEMA_VERSION 4

typedef struct pgstore pgstore;

/*
 * pgstore_open - connect to c->conninfo (password from c->password_env or
 * c->password_file) and bring the schema up to PGSTORE_SCHEMA_VERSION,
 * each step in its own transaction with the version row, under an
 * advisory lock so concurrent first opens do not race. A database at a
 * newer version is refused with CTX_ESTORE. *out is new: pgstore_close it.
 * Errors: CTX_ECONFIG (password not found), CTX_EIO (cannot connect),
 * CTX_ESTORE (a statement failed). No message carries the password.
 */
int pgstore_open(const ctx_cluster_cfg *c, pgstore **out, ctx_error *err);
void pgstore_close(pgstore *pg);

/* pgstore_version - the schema version the database holds (a read). */
int pgstore_version(pgstore *pg, int *version, ctx_error *err);

/* pgstore_sink - pg (borrowed) as the sync runner's sink, into *out. */
void pgstore_sink(pgstore *pg, sync_sink *out);

/* pgstore_owner - this process's worker name ("host:pid"): borrowed. */
const char *pgstore_owner(const pgstore *pg);

/*
 * ---- The job schedule (ctxgate.jobs, pgjobs.c) ----
 *
 * One row per (source, kind); the database's clock decides what is due and
 * when a lease has run out, so workers on several machines agree.
 */
typedef struct pgstore_job {
    char source[256];
    char kind[16];            /* "sync", "permissions", "full" */
    int64_t started_at;       /* the claim's time (ms, the database's clock) */
} pgstore_job;

/* pgstore_job_ensure - the row of (source, kind), due now when new; an
 * existing row keeps its schedule (own statement). */
int pgstore_job_ensure(pgstore *pg, const char *source, const char *kind, ctx_error *err);

/*
 * pgstore_job_claim - claim the longest-due job among keys ("source/kind",
 * n of them; borrowed): due, its lease free or run out, and no other job
 * of its source leased. FOR UPDATE SKIP LOCKED, so concurrent workers
 * claim different rows. The claim (this worker as lease_owner, lease_until
 * now + lease_s) is committed before it returns. *got 0: nothing due.
 */
int pgstore_job_claim(pgstore *pg, const char *const *keys, size_t n, pgstore_job *job,
                      int *got, ctx_error *err);

/* pgstore_job_renew - extend the lease by lease_s; *mine 0 when another
 * worker holds it now (the caller must stop the job). */
int pgstore_job_renew(pgstore *pg, const pgstore_job *job, int *mine, ctx_error *err);

/*
 * pgstore_job_finish - the job ended: record status ("ok", "failed",
 * "busy", "held", "canceled") and error (may be NULL), make it due at
 * next_at and free the lease; next_at < 0 frees the lease only (the job
 * stays due for another worker). Only while this worker holds the lease:
 * *mine 0 when it did not (nothing written).
 */
int pgstore_job_finish(pgstore *pg, const pgstore_job *job, int64_t next_at,
                       const char *status, const char *error, int *mine, ctx_error *err);

/* pgstore_job_release_all - free every lease this worker (host:pid) holds,
 * the jobs still due: after a lost connection, when it runs nothing.
 * *n receives how many. */
int pgstore_job_release_all(pgstore *pg, int64_t *n, ctx_error *err);

/* pgstore_now - the database's clock, ms since the epoch. */
int pgstore_now(pgstore *pg, int64_t *ms, ctx_error *err);

#endif
