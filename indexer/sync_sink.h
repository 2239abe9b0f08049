/*
 * sync_sink.h - where the sync runner writes: a face with two
 * implementations, the embedded store (sync_sink_store, today's SQLite
 * path: documents, chunks and FTS5 in one file) and PostgreSQL in cluster
 * mode (pgstore_sink, indexer/pgstore.h). The runner owns the transaction:
 * everything between xBegin and xCommit is applied together or not at all,
 * and it calls xCommit right after xStatePut, so the stored checkpoint is
 * never ahead of the data (docs/cluster.md).
 */
#ifndef CTX_INDEXER_SYNC_SINK_H
#define CTX_INDEXER_SYNC_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"
#include "store.h"

/* Every member takes self first; all but xRunEnd and xLock may not be NULL.
 * Error codes and messages as the store_* / ingest_* call each one stands for. */
typedef struct sync_sink {
    void *self;               /* borrowed: the store or the pgstore */
    const char *name;         /* "store" or "postgres", for messages */
    int chunks;               /* 1: it chunks and indexes records (worth tokenizing ahead) */
    int (*xSource)(void *self, const char *name, const char *type, int64_t *id,
                   ctx_error *err);
    /* xLock - claim the source for this run, cluster-wide (NULL: the
     * runner's lock file is enough); CTX_EBUSY when another holds it.
     * Held until xUnlock. */
    int (*xLock)(void *self, int64_t source, const char *name, ctx_error *err);
    void (*xUnlock)(void *self, int64_t source);
    int (*xLive)(void *self, int64_t source, int64_t *n, ctx_error *err);
    int (*xHeld)(void *self, int64_t source, char *why, size_t len, ctx_error *err);
    int (*xRunBegin)(void *self, int64_t source, int mode, int64_t *run, ctx_error *err);
    int (*xRunFinish)(void *self, int64_t run, const char *status, const store_run_stats *s,
                      const char *error, ctx_error *err);
    int (*xRunNote)(void *self, int64_t run, const char *warnings, const char *held,
                    ctx_error *err);
    int (*xBegin)(void *self, ctx_error *err);
    int (*xCommit)(void *self, ctx_error *err);
    void (*xRollback)(void *self);
    int (*xPendingGet)(void *self, int64_t source, const char *stream, int64_t *epoch,
                       ctx_error *err);
    int (*xPendingPut)(void *self, int64_t source, const char *stream, int64_t epoch,
                       ctx_error *err);
    int (*xPendingClear)(void *self, int64_t source, const char *stream, ctx_error *err);
    int (*xStateGet)(void *self, int64_t source, const char *stream, char **state,
                     ctx_error *err);
    int (*xStatePut)(void *self, int64_t source, const char *stream, const char *state,
                     ctx_error *err);
    /* Messages, as ingest_apply, ingest_delete, ingest_acl and
     * ingest_acl_seen: c's source, epoch and stats are used and counted. */
    int (*xRecord)(void *self, ingest_ctx *c, const ingest_prep *p, ctx_error *err);
    int (*xDelete)(void *self, ingest_ctx *c, const char *stream, const char *id,
                   ctx_error *err);
    int (*xAcl)(void *self, ingest_ctx *c, const char *stream, const char *id,
                const ctx_acl *acl, ctx_error *err);
    int (*xAclSeen)(void *self, ingest_ctx *c, const char *stream, const char *id,
                    const ctx_acl *acl, ctx_error *err);
    int (*xPrincipal)(void *self, int64_t source, const ctx_principal *p, ctx_error *err);
    /* A permission run: before its transaction (xPermBegin), then what it
     * did not see (xAclSeen) pruned; perm 0 prunes what a full run with
     * epoch did not see. */
    int (*xPermBegin)(void *self, ctx_error *err);
    int (*xPruneCount)(void *self, int64_t source, const char *stream, int64_t epoch,
                       int perm, int64_t *n, ctx_error *err);
    int (*xPrune)(void *self, int64_t source, const char *stream, int64_t epoch, int perm,
                  int64_t *n, ctx_error *err);
    int (*xDocNext)(void *self, int64_t source, const char *stream, const char *after,
                    char **out, ctx_error *err);
    int (*xAclSynced)(void *self, int64_t source, int64_t at, ctx_error *err);
    /* xRunEnd - after a run that was not canceled (may be NULL): derived
     * statistics; a failure here loses no data (logged). */
    void (*xRunEnd)(void *self, const char *source_name);
    /* xFlush - everything xRecord took is written and counted in its
     * stats (may be NULL: xRecord counts at once). The runner calls it
     * before the guards read the counts at a commit point. */
    int (*xFlush)(void *self, ctx_error *err);
} sync_sink;

/* sync_sink_store - the embedded store's sink over st (borrowed) into *out
 * (agent/sync_sink.c: it refreshes ranking statistics after a run). */
void sync_sink_store(ctx_store *st, sync_sink *out);

#endif
