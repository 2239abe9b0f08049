/*
 * replica_gate.c - a replica's readiness and lag, shared by its follower
 * thread and the HTTP threads (see replica_gate.h).
 */
#include "replica_gate.h"

#include "../core/config.h"
#include "../core/ctx.h"
#include "../indexer/pgfollow.h"

static int64_t g_max_lag_ms = -1;   /* -1: not a replica */
static int64_t g_fresh_at;          /* the last catch-up's start, 0: none yet */
static int64_t g_started_at;

void replica_gate_start(int64_t max_lag_ms)
{
    __atomic_store_n(&g_started_at, ctx_now_ms(), __ATOMIC_RELEASE);
    __atomic_store_n(&g_fresh_at, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&g_max_lag_ms, max_lag_ms, __ATOMIC_RELEASE);
}

void replica_gate_caught_up(int64_t at_ms)
{
    __atomic_store_n(&g_fresh_at, at_ms, __ATOMIC_RELEASE);
}

int replica_gate_active(void)
{
    return __atomic_load_n(&g_max_lag_ms, __ATOMIC_ACQUIRE) >= 0;
}

int replica_gate_ready(void)
{
    return !replica_gate_active() || __atomic_load_n(&g_fresh_at, __ATOMIC_ACQUIRE) > 0;
}

int64_t replica_gate_lag_ms(int64_t now_ms)
{
    int64_t at = __atomic_load_n(&g_fresh_at, __ATOMIC_ACQUIRE);

    if (!replica_gate_active())
        return -1;
    if (!at)
        at = __atomic_load_n(&g_started_at, __ATOMIC_ACQUIRE);
    return now_ms > at ? now_ms - at : 0;
}

int replica_gate_stale(int64_t now_ms)
{
    if (!replica_gate_active())
        return 0;
    return !replica_gate_ready() ||
           replica_gate_lag_ms(now_ms) > __atomic_load_n(&g_max_lag_ms, __ATOMIC_ACQUIRE);
}

int replica_gate_store(const ctx_config *cfg, ctx_store *st, int64_t now_ms, ctx_error *err)
{
    int64_t at, bound;
    int rc;

    if (!cfg->cluster.replica || !*cfg->cluster.replica || replica_gate_active())
        return CTX_OK;
    if ((rc = pgfollow_caught_up_at(st, cfg->cluster.replica, &at, err)))
        return rc;
    bound = (cfg->cluster.max_lag_s > 0 ? cfg->cluster.max_lag_s : 30) * 1000;
    if (at && now_ms - at <= bound)
        return CTX_OK;
    if (!at)
        return ctx_error_set(err, CTX_EBUSY, "replica_behind: replica %s's store never caught"
                             " up with PostgreSQL; run `ctxgate serve` or `ctxgate follow`"
                             " on this data_dir first", cfg->cluster.replica);
    return ctx_error_set(err, CTX_EBUSY, "replica_behind: replica %s last caught up with"
                         " PostgreSQL %lld s ago, past cluster.max_lag_s (%lld s): its answers"
                         " could hold revoked access; keep `ctxgate serve` or `ctxgate follow`"
                         " running on this data_dir", cfg->cluster.replica,
                         (long long)((now_ms - at) / 1000), (long long)(bound / 1000));
}
