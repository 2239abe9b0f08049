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

#define PGSTORE_SCHEMA_VERSION 1

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

/* pgstore_owner - this connection's worker name ("host:pid:n"): borrowed. */
const char *pgstore_owner(const pgstore *pg);

#endif
