/*
 * pgfollow.h - a search replica follows PostgreSQL (cluster mode,
 * docs/cluster.md): logical decoding with the built-in pgoutput plugin,
 * one slot per replica ("ctxgate_<replica>"), applied into the local
 * SQLite store through the ingest path a local sync takes.
 *
 * First start: the slot is created over a replication connection with an
 * exported snapshot, and the tables are copied under that snapshot; the
 * slot's consistent point is stored with the copy, in one SQLite
 * transaction. Then each step reads the decoded transactions the slot
 * holds (pg_logical_slot_peek_binary_changes, whole transactions in
 * commit order), applies them in one SQLite transaction with the end LSN
 * of the last, and only after that commit moves the slot on
 * (pg_replication_slot_advance). A transaction at or below the stored LSN
 * is skipped, so a replica killed at any point applies each exactly once.
 */
#ifndef CTX_INDEXER_PGFOLLOW_H
#define CTX_INDEXER_PGFOLLOW_H

#include <stdint.h>

#include "../core/config.h"
#include "store.h"

typedef struct pgfollow pgfollow;

/*
 * pgfollow_open - connect to cfg->cluster (replica name cfg->cluster.replica,
 * required) for st (borrowed; the replica's own store). The schema is
 * brought up to date as pgstore_open does. Nothing is copied yet.
 */
int pgfollow_open(const ctx_config *cfg, ctx_store *st, pgfollow **out, ctx_error *err);
void pgfollow_close(pgfollow *f);

typedef struct pgfollow_step_info {
    int drained;          /* 1: the slot held nothing more when read */
    int64_t txns;         /* transactions applied by this step */
    int64_t skipped;      /* transactions read but applied before (at or below the LSN) */
    int64_t docs;         /* document rows applied (records and deletes) */
    uint64_t lsn;         /* the stored LSN after this step */
} pgfollow_step_info;

/*
 * pgfollow_step - the first step makes the first copy when the store has
 * none (or its copy never committed); then applies up to a few thousand
 * decoded changes. Errors: CTX_EIO (connection lost: close and open
 * again), CTX_ESTORE (a statement failed, or the slot is gone while the
 * store holds an LSN: the replica must be rebuilt from an empty data_dir).
 */
int pgfollow_step(pgfollow *f, pgfollow_step_info *info, ctx_error *err);

/*
 * pgfollow_caught_up_put - record in st that replica name had applied
 * everything PostgreSQL committed before at_ms (its follower's clock);
 * pgfollow_caught_up_at reads it back (0: never), for processes that read
 * a replica's store without following (`ctxgate search`, `ctxgate mcp`).
 */
int pgfollow_caught_up_put(ctx_store *st, const char *replica, int64_t at_ms, ctx_error *err);
int pgfollow_caught_up_at(ctx_store *st, const char *replica, int64_t *at_ms, ctx_error *err);

/* pgfollow_lsn - the LSN stored in st for replica name (0: no copy yet). */
int pgfollow_lsn(ctx_store *st, const char *replica, uint64_t *lsn, ctx_error *err);

#endif
