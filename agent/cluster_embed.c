/*
 * cluster_embed.c - the cluster's embed job: the config's embedder and
 * chunker over what PostgreSQL holds (see cluster.h, indexer/pgvectors.h).
 */
#include "cluster.h"

#include <string.h>

#include "../core/util.h"
#include "../indexer/pglsa.h"

int cluster_embed(const ctx_config *cfg, volatile sig_atomic_t *cancel, pgvec_stats *s,
                  ctx_error *err)
{
    chunker_opts co = CHUNKER_DEFAULTS;
    embed_provider *p = NULL;
    pgstore *pg = NULL;
    pgvec_stats local;
    embed_cfg ec;
    int rc;

    if (!s)
        s = &local;
    memset(s, 0, sizeof *s);
    embed_cfg_from(cfg, &ec);
    /* the chunker settings a replica's follower takes (pgfollow_open) */
    co.max_tokens = cfg->chunk_max_tokens ? (int)cfg->chunk_max_tokens : 256;
    co.overlap_tokens = (int)cfg->chunk_overlap_tokens;
    if ((rc = pgstore_open(&cfg->cluster, &pg, err)))
        goto done;
    if (ec.provider && !strcmp(ec.provider, "lsa")) {
        /* the cluster's model: trained here once, on PostgreSQL's documents */
        static __thread char hash[LSA_HASH_LEN + 1];
        lsa_train_opts lo = {ec.dim > 0 ? ec.dim : 384, 2, 0.5, 50000, 3};
        int trained;
        rc = pglsa_ensure(pg, cfg->data_dir, &lo, &co, LSA_RETRAIN_SHARE, cancel, hash,
                          &trained, err);
        if (rc == CTX_ENOTFOUND) {
            rc = CTX_OK; /* nothing to train on yet */
            goto done;
        }
        if (rc)
            goto done;
        ec.model = hash;
        ec.dim = lo.dim;
    }
    if ((rc = embed_open(&ec, &p, err)))
        goto done;
    rc = pgvec_embed_run(pg, p, &co, cancel, s, err);
    if (!rc && (s->docs || s->purged || s->retired))
        ctx_log(CTX_LOG_INFO, "cluster", "embed %s: %lld documents (%lld chunks), %lld texts"
                " embedded, %lld reused; %lld vectors of deleted documents gone, %lld rows of"
                " other models retired", embed_model_name(p), (long long)s->docs,
                (long long)s->chunks, (long long)s->embedded, (long long)s->reused,
                (long long)s->purged, (long long)s->retired);
done:
    pgstore_close(pg);
    embed_close(p);
    return rc;
}
