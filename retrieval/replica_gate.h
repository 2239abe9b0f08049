/*
 * replica_gate.h - what a search replica's follower (agent/replica.c) tells
 * the HTTP service (docs/cluster.md): whether it caught up once since it
 * started (/readyz) and how far behind PostgreSQL it may be (a /metrics
 * gauge; past cluster.max_lag_s the data endpoints answer 503, failing
 * closed). Process-wide, lock-free; inactive (no gate) unless a follower
 * started.
 */
#ifndef CTX_RETRIEVAL_REPLICA_GATE_H
#define CTX_RETRIEVAL_REPLICA_GATE_H

#include <stdint.h>

#include "../core/config.h"
#include "../indexer/store.h"

/* replica_gate_start - this process follows, with the lag bound max_lag_ms. */
void replica_gate_start(int64_t max_lag_ms);

/* replica_gate_caught_up - everything PostgreSQL committed before at_ms
 * (this machine's clock, when the read that found nothing more began) is
 * applied. */
void replica_gate_caught_up(int64_t at_ms);

/* replica_gate_active - 1 when this process is a replica. */
int replica_gate_active(void);

/* replica_gate_ready - 1 when not a replica, or it caught up once. */
int replica_gate_ready(void);

/* replica_gate_lag_ms - now_ms less the last catch-up (since the start
 * before the first); -1 when not a replica. */
int64_t replica_gate_lag_ms(int64_t now_ms);

/* replica_gate_stale - 1 when a replica is not ready or past its lag
 * bound: its data endpoints must answer 503. */
int replica_gate_stale(int64_t now_ms);

/*
 * replica_gate_store - for a process that reads a replica's store without
 * following it (`ctxgate search`, `ctxgate mcp` over stdio): CTX_OK when
 * cfg is no replica, when this process follows (its own gate decides), or
 * when the store's follower caught up within cluster.max_lag_s of now_ms;
 * else CTX_EBUSY with a message naming how long ago and the fix. Fails
 * closed: a store no follower ever caught up is refused.
 */
int replica_gate_store(const ctx_config *cfg, ctx_store *st, int64_t now_ms, ctx_error *err);

#endif
