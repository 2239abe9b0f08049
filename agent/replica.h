/*
 * replica.h - a search replica's follower loop (cluster mode,
 * docs/cluster.md): indexer/pgfollow.c's steps against the local store,
 * ranking statistics refreshed after changes, retrieval/replica_gate.h
 * told when it caught up. `ctxgate serve` runs it on a thread when
 * cluster.replica is set; `ctxgate follow` runs it alone.
 */
#ifndef CTX_AGENT_REPLICA_H
#define CTX_AGENT_REPLICA_H

#include <signal.h>

#include "../core/config.h"

/* What a follower did: transactions applied, and read but skipped (applied
 * before a restart, not yet confirmed to the server). */
typedef struct replica_counts {
    int64_t applied, skipped;
} replica_counts;

/*
 * replica_follow - follow cfg's PostgreSQL into the store of cfg's
 * data_dir until *stop (once: until caught up, then return). A lost
 * connection or a failed step is logged and retried every second (once:
 * returned). counts (may be NULL) is added to. The caller called
 * replica_gate_start.
 */
int replica_follow(const ctx_config *cfg, int once, volatile sig_atomic_t *stop,
                   replica_counts *counts, ctx_error *err);

#endif
