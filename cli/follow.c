/*
 * follow.c - `ctxgate follow [--once]` (see follow.h).
 */
#include "follow.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../agent/cluster.h"
#include "../agent/replica.h"
#include "../core/config.h"
#include "../core/util.h"
#include "../indexer/pgfollow.h"
#include "../indexer/store.h"
#include "../retrieval/replica_gate.h"

static volatile sig_atomic_t follow_stop;

static void on_stop(int sig)
{
    (void)sig;
    follow_stop = 1;
}

int cli_follow(int argc, char **argv, const char *config_path)
{
    static const struct option lo[] = {{"once", no_argument, NULL, 'o'}, {NULL, 0, NULL, 0}};
    ctx_config cfg;
    ctx_error err;
    replica_counts counts = {0, 0};
    int c, once = 0, rc;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'o')
            once = 1;
        else
            return 2;
    }
    if ((rc = ctx_config_load(config_path, &cfg, &err)))
        goto out;
    if (!*cfg.cluster.replica) {
        rc = ctx_error_set(&err, CTX_ECONFIG, "cluster.replica: not set; `ctxgate follow` needs"
                           " cluster.conninfo and a replica name");
        goto out;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    replica_gate_start(cfg.cluster.max_lag_s * 1000);
    if (!(rc = replica_follow(&cfg, once, &follow_stop, &counts, &err)) && once) {
        char path[4096];
        ctx_store *st;
        uint64_t lsn = 0;
        ctx_config_store_path(&cfg, path, sizeof path);
        if (!(rc = store_open(path, 0, &st, &err))) {
            rc = pgfollow_lsn(st, cfg.cluster.replica, &lsn, &err);
            store_close(st);
        }
        if (!rc)
            printf("follow: replica %s caught up at %X/%X (%lld transactions applied, %lld"
                   " skipped)\n", cfg.cluster.replica, (unsigned)(lsn >> 32), (unsigned)lsn,
                   (long long)counts.applied, (long long)counts.skipped);
    }
out:
    if (rc)
        fprintf(stderr, "ctxgate: %s\n", err.text);
    ctx_config_free(&cfg);
    return rc == CTX_ECONFIG ? 2 : rc ? 1 : 0;
}

int cli_cluster_embed(const char *config_path, int *status)
{
    ctx_config cfg;
    ctx_error err;
    pgvec_stats s;
    uint64_t t0 = ctx_mono_ns();
    int rc;

    if ((rc = ctx_config_load(config_path, &cfg, &err)))
        goto out;
    if (!cfg.cluster.conninfo || !*cfg.cluster.conninfo) {
        ctx_config_free(&cfg);
        return 0;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    if (!(rc = cluster_embed(&cfg, &follow_stop, &s, &err)))
        printf("cluster embed: %lld documents (%lld chunks): %lld texts embedded, %lld reused"
               " in %.2fs; %lld vectors of deleted documents gone, %lld rows of other models"
               " retired\n", (long long)s.docs, (long long)s.chunks, (long long)s.embedded,
               (long long)s.reused, (double)(ctx_mono_ns() - t0) / 1e9, (long long)s.purged,
               (long long)s.retired);
out:
    if (rc)
        fprintf(stderr, "ctxgate: %s\n", err.text);
    ctx_config_free(&cfg);
    *status = rc == CTX_ECONFIG ? 2 : rc ? 1 : 0;
    return 1;
}
