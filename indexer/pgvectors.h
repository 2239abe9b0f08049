/*
 * pgvectors.h - cluster mode's vectors, computed once in the cluster
 * (docs/cluster.md, "Vectors computed once"): the cluster's embed job
 * chunks the documents PostgreSQL holds as every replica chunks them, and
 * writes one vector per (document, model, text hash) to
 * ctxgate.chunk_vectors, which the replicas follow by logical decoding.
 *
 * A text already embedded for the model (by any document) is copied, not
 * sent to the embedder again; ctxgate.doc_embeds records which content
 * hash and chunking of each document has its vectors, so a run reads only
 * documents that changed since. Tombstoned documents lose their rows.
 */
#ifndef CTX_INDEXER_PGVECTORS_H
#define CTX_INDEXER_PGVECTORS_H

#include <signal.h>
#include <stdint.h>

#include "chunker.h"
#include "embed.h"
#include "pgstore.h"

typedef struct pgvec_stats {
    int64_t docs;             /* documents whose vectors were written */
    int64_t chunks;           /* their chunks */
    int64_t embedded;         /* texts sent to the embedder */
    int64_t reused;           /* distinct texts copied from a vector already in PostgreSQL */
    int64_t purged;           /* vectors of tombstoned documents deleted */
    int64_t retired;          /* vector rows of other models deleted after this one covered all */
} pgvec_stats;

/*
 * pgvec_embed_run - one run of the cluster's embed job on pg (borrowed, its
 * own connection) with p (borrowed): the vectors of tombstoned documents
 * go, then every live document whose hash or chunking differs from what
 * doc_embeds says of p's model is chunked with co (the replicas' chunker
 * and settings: the config's "chunk" section) and gets a row per distinct
 * chunk text, the texts no document has a vector of yet embedded in one
 * call per batch (outside any transaction), then the batch written in one
 * transaction. When every live document is covered, other models' rows
 * are deleted (a model switch is over). cancel (may be NULL) stops between
 * batches with CTX_ECANCELED. An lsa provider's model is the cluster's
 * (pglsa.h). s may be NULL.
 */
int pgvec_embed_run(pgstore *pg, embed_provider *p, const chunker_opts *co,
                    volatile sig_atomic_t *cancel, pgvec_stats *s, ctx_error *err);

/* pgvec_chunking - the chunker settings as doc_embeds records them ("256/32"). */
void pgvec_chunking(const chunker_opts *co, char *buf, size_t len);

/*
 * Vectors cross PostgreSQL as bytea of little-endian float32, whatever the
 * host's order. pgvec_encode writes dim floats as 8 * dim hex digits and a
 * NUL into hex; pgvec_decode reads a bytea's text form ("\x" and hex) of
 * exactly dim floats into v, 0 or -1 when it is not that.
 */
void pgvec_encode(const float *v, int dim, char *hex);
int pgvec_decode(const char *text, int dim, float *v);

#endif
