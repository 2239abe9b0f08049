/*
 * hybrid.h - hybrid retrieval: the lexical leg (search_lexical) and the
 * vector leg (vsearch), each inside what the caller may read, fused by
 * reciprocal rank fusion (score = sum over legs of w / (rrf_k + rank)) or,
 * with by_scores, by each leg's scores scaled to 0..1 over its candidates
 * (score = sum over legs of w * scaled score; a chunk one leg did not
 * hand over gets 0 from it).
 * A chunk not yet embedded is still found by the lexical leg.
 */
#ifndef CTX_RETRIEVAL_HYBRID_H
#define CTX_RETRIEVAL_HYBRID_H

#include <sqlite3.h>

#include "../core/ctx.h"
#include "../indexer/embed.h"
#include "../indexer/vindex.h"
#include "search.h"

typedef struct hybrid_opts {
    int k;                          /* results wanted, 1..1000 (default 10) */
    int per_doc;                    /* at most this many chunks per document, 0 = any */
    const char *const *sources;     /* only these source names (NULL = all) */
    size_t nsources;
    double w_lexical, w_vector;     /* leg weights; both 0 = 1 and 1 */
    int rrf_k;                      /* 0 = 60 */
    int by_scores;                  /* fuse scaled scores, not ranks (hybrid.c) */
    int depth;                      /* candidates per leg, at least k; 0 = max(4k, 50) */
    const acl_label_filter *labels; /* only ACL sets whose labels pass (NULL = any) */
    search_expand expand;           /* the lexical leg's query expansion (search.h) */
    double proximity;               /* the lexical leg's proximity weight (search.h) */
    double doc_decay;               /* the lexical leg's per-document sum (search.h) */
} hybrid_opts;

/*
 * hybrid_opts_config - set o's fusion (weights, rrf_k) and lexical-leg
 * options (expansion, proximity, doc_decay) from the config's search section; with
 * lexical_only, the lexical leg answers alone whatever its weight (the
 * query could not be embedded). The rest of o is left as it was.
 */
void hybrid_opts_config(hybrid_opts *o, const struct ctx_search_cfg *cfg, int lexical_only);

/*
 * hybrid_search - the best k chunks for query that user may read. emb
 * embeds the query for the vector leg; it must be the model of vi. With vi
 * or emb NULL, or when the query cannot be embedded (a warning is logged),
 * the answer is the lexical leg's alone. An unknown user yields zero hits
 * and CTX_OK. *out must be search_result_free'd; score is the fused score.
 * For callers that hold no lock: the embedding call may take the
 * embedder's whole time limit.
 */
int hybrid_search(sqlite3 *db, const vindex *vi, embed_provider *emb, const char *user,
                  const char *query, const hybrid_opts *opts, search_result *out,
                  ctx_error *err);

/*
 * hybrid_search_vec - hybrid_search with the query already embedded: qv
 * (borrowed; NULL = no vector leg) holds a vector of vi's model.
 */
int hybrid_search_vec(sqlite3 *db, const vindex *vi, const float *qv, const char *user,
                      const char *query, const hybrid_opts *opts, search_result *out,
                      ctx_error *err);

/*
 * The three steps of hybrid_search_vec, for a caller that must hold a lock
 * on vi for the vector leg only (the service): hybrid_lexical and
 * hybrid_vector fill *lex and *vec with the candidates (ids only) of each
 * leg; hybrid_fuse fuses them by the weights of opts into *out (new),
 * reading the shown fields of the fused k, and frees *lex and *vec
 * (either may be NULL: no such leg). The legs' results are
 * search_result_free'd on failure as on success.
 */
int hybrid_lexical(sqlite3 *db, const char *user, const char *query, const hybrid_opts *opts,
                   search_result *lex, ctx_error *err);
int hybrid_vector(sqlite3 *db, const vindex *vi, const char *user, const float *qv,
                  const hybrid_opts *opts, search_result *vec, ctx_error *err);
int hybrid_fuse(sqlite3 *db, search_result *lex, search_result *vec, const hybrid_opts *opts,
                search_result *out, ctx_error *err);

#endif
