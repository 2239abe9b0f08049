/*
 * replica.c - the follower loop of a search replica (see replica.h).
 */
#include "replica.h"

#include <time.h>

#include "../core/util.h"
#include "../indexer/pgfollow.h"
#include "../retrieval/rank.h"
#include "../retrieval/replica_gate.h"

#define POLL_MS 200
#define MARK_EVERY_MS 1000 /* how often the store records that it caught up */
#define STATS_MS 10000 /* ranking statistics refreshed at most this often mid-backlog */

static void nap(int ms, volatile sig_atomic_t *stop)
{
    for (int t = 0; t < ms && !(stop && *stop); t += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* follow_open - the store and the follower, or an error. */
static int follow_open(const ctx_config *cfg, ctx_store **st, pgfollow **f, ctx_error *err)
{
    char path[4096];
    int rc;

    *st = NULL;
    *f = NULL;
    if (ctx_mkdir_p(cfg->data_dir) < 0)
        return ctx_error_set(err, CTX_EIO, "data_dir %s: cannot create it", cfg->data_dir);
    ctx_config_store_path(cfg, path, sizeof path);
    if ((rc = store_open(path, 0, st, err)))
        return rc;
    if ((rc = pgfollow_open(cfg, *st, f, err))) {
        store_close(*st);
        *st = NULL;
    }
    return rc;
}

int replica_follow(const ctx_config *cfg, int once, volatile sig_atomic_t *stop,
                   replica_counts *counts, ctx_error *err)
{
    ctx_store *st = NULL;
    pgfollow *f = NULL;
    int rc = CTX_OK, logged = 0, opened = 0, stale = 0;
    int64_t refreshed = 0, marked = 0;

    while (!(stop && *stop)) {
        pgfollow_step_info info;
        int64_t t0;
        if (!f && !(rc = follow_open(cfg, &st, &f, err)))
            opened = 1;
        else if (!f) {
            if (once)
                return rc;
            if (!logged++)
                ctx_log(CTX_LOG_ERROR, "replica", "%s; trying again every second", err->text);
            nap(1000, stop);
            continue;
        }
        t0 = ctx_now_ms();
        if ((rc = pgfollow_step(f, &info, err))) {
            pgfollow_close(f);
            store_close(st);
            f = NULL;
            st = NULL;
            if (once)
                return rc;
            ctx_log(CTX_LOG_ERROR, "replica", "%s; trying again in a second", err->text);
            nap(1000, stop);
            continue;
        }
        logged = 0;
        if (counts) {
            counts->applied += info.txns;
            counts->skipped += info.skipped;
        }
        /* Also after the first step of an opening: a first copy applies no
         * transaction, and without statistics the search caches warm nothing.
         * While a backlog is being applied, at most every STATS_MS: a
         * refresh after each step of 2,000 changes cost a third of the
         * apply (bench/replica_lag.sh, docs/benchmarks.md). */
        if (info.txns)
            stale = 1;
        if (opened || (stale && (info.drained || ctx_now_ms() - refreshed >= STATS_MS))) {
            ctx_error e2;
            opened = 0;
            stale = 0;
            refreshed = ctx_now_ms();
            ctx_log(CTX_LOG_DEBUG, "replica", "applied %lld transactions (%lld documents)",
                    (long long)info.txns, (long long)info.docs);
            if (rank_stats_refresh(store_db(st), 0, &e2))
                ctx_log(CTX_LOG_WARN, "replica", "ranking statistics not refreshed: %s",
                        e2.text);
        }
        if (!info.drained)
            continue;
        replica_gate_caught_up(t0);
        /* for processes reading this store without following (search, mcp) */
        if (t0 - marked >= MARK_EVERY_MS || once) {
            ctx_error e3;
            if (pgfollow_caught_up_put(st, cfg->cluster.replica, t0, &e3))
                ctx_log(CTX_LOG_WARN, "replica", "%s", e3.text);
            marked = t0;
        }
        if (once)
            break;
        nap(POLL_MS, stop);
    }
    pgfollow_close(f);
    store_close(st);
    return CTX_OK;
}
