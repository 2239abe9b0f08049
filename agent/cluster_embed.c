/*
 * cluster_embed.c - the cluster's embed job: the config's embedder and
 * chunker over what PostgreSQL holds (see cluster.h, indexer/pgvectors.h).
 */
#include "cluster.h"

#include <string.h>

#include "../core/util.h"

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
    if (ec.provider && !strcmp(ec.provider, "lsa"))
        return ctx_error_set(err, CTX_ECONFIG, "embeddings.provider: \"lsa\" is not supported"
                             " in cluster mode (its model is trained on one store's chunks);"
                             " use \"openai\" or \"hash\"");
    /* the chunker settings a replica's follower takes (pgfollow_open) */
    co.max_tokens = cfg->chunk_max_tokens ? (int)cfg->chunk_max_tokens : 256;
    co.overlap_tokens = (int)cfg->chunk_overlap_tokens;
    if ((rc = embed_open(&ec, &p, err)) || (rc = pgstore_open(&cfg->cluster, &pg, err)))
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
