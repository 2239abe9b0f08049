/*
 * sync.h - the sync runner: reads a source's streams through its connector
 * and applies the messages to a sink: the embedded store, or PostgreSQL in
 * cluster mode (indexer/sync_sink.h). Everything a connector emits up to
 * a STATE is committed together with that STATE in one transaction, so the
 * stored checkpoint is never ahead of the data; on failure the open
 * transaction is rolled back and the next run resumes from the last STATE.
 */
#ifndef CTX_AGENT_SYNC_H
#define CTX_AGENT_SYNC_H

#include <signal.h>

#include "../connectors/registry.h"
#include "../core/config.h"
#include "../indexer/store.h"
#include "../indexer/sync_sink.h"

/* Progress, called at most a few times a second while a stream is read. */
typedef void (*sync_progress_fn)(void *arg, const char *source, const char *stream,
                                 const store_run_stats *s, double seconds, int done);

typedef struct sync_opts {
    int full;                        /* ignore states; prune what was not seen */
    const char *const *streams;      /* only these (NULL = every discovered stream) */
    size_t nstreams;
    const char *const *filter;       /* of the discovered streams, only these (NULL = all) */
    size_t nfilter;
    const char *lock_dir;            /* per-source lock files here (NULL = none) */
    volatile sig_atomic_t *cancel;   /* set non-zero to stop at the next message */
    sync_progress_fn progress;
    void *progress_arg;
    int64_t chunk_max_tokens, chunk_overlap_tokens;
    /*
     * A permission run: every document stream is read through the
     * connector's permission mode (ids and ACLs only, see xReadPermissions):
     * changed ACLs are applied, documents no longer present are pruned,
     * nothing is re-chunked. principal_streams (users, groups) are read as
     * an incremental sync reads them. Ignores full.
     */
    int permissions;
    const char *const *principal_streams;
    size_t nprincipal_streams;
    int confirm;                     /* apply what the source's guard would hold */
    /*
     * While a stream is read, the connector runs on the calling thread and
     * its messages are applied to the store, in order, by a second thread,
     * through a queue of at most queue_msgs messages and queue_bytes bytes
     * (0: 1024 and 16 MB). serial applies each message on the calling
     * thread as it comes (no second thread; the tests compare the two).
     */
    int serial;
    size_t queue_msgs, queue_bytes;
} sync_opts;

/*
 * Full runs resume: a full read of a stream is recorded as pending when it
 * starts (store_pending_put) and cleared when it has pruned. Any later run
 * of that stream (incremental, full or permissions) first finishes it as a
 * full read with the same epoch, so a crash or kill -9 in the middle of a
 * full run never loses its deletes.
 *
 * sync_source - one run of one source. Records the run in sync_runs with its
 * counts and outcome; *stats (may be NULL) receives them too. Returns 0, or
 * the error of the first failing stream (later streams are not read).
 * CTX_EBUSY when another process is syncing the same source. CTX_EHELD
 * when a guard of the source (sources[].guard) held back a mass change:
 * the run is recorded as 'held' with the reason, the batch that passed
 * the limit is not committed, and a run with opts->confirm applies it.
 * Warnings a connector logs are counted per kind: the first few of each
 * are logged naming the item, the rest summarized at the end, and the
 * summary kept in the run's record (sync_runs.warnings).
 *
 * Threads: the connector (xDiscover, xRead and the host functions it
 * calls) runs on the calling thread; opts->progress is called from the
 * thread that applies the messages (a thread of this call, see
 * sync_opts.serial), never from two at once. st is used by one thread at
 * a time and is the caller's again when this returns.
 */
int sync_source(ctx_store *st, const ctx_source_cfg *src, const sync_opts *opts,
                store_run_stats *stats, ctx_error *err);

/*
 * sync_source_to - sync_source into any sink (indexer/sync_sink.h; borrowed):
 * sync_source is this with the embedded store's sink. With a sink that
 * has xLock (PostgreSQL), one run of a source at a time cluster-wide too.
 */
int sync_source_to(const sync_sink *sk, const ctx_source_cfg *src, const sync_opts *opts,
                   store_run_stats *stats, ctx_error *err);

#endif
