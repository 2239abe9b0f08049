/*
 * vsearch.h - permission-aware vector search. The caller's readable ACL
 * sets are computed first (as for lexical search); how many vectors they
 * allow picks the plan: an exact SIMD scan over exactly those vectors when
 * few or when the index has no partition yet; when many, the partition's
 * nearest lists scanned exactly; and the exact scan again whenever that
 * finds fewer than k. Neither answer moves when a vector the caller cannot
 * read comes or goes after the lists were trained (a new vector only joins
 * its nearest list; a rebuild trains them anew on a sample of every
 * vector). The HNSW graph walked with a
 * selector (a search widened by the allowed share) is only taken when
 * forced (tests, bench/vector_search): its path runs through every vector.
 * A fixed top-k is never filtered afterwards.
 */
#ifndef CTX_RETRIEVAL_VSEARCH_H
#define CTX_RETRIEVAL_VSEARCH_H

#include <sqlite3.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "../indexer/vindex.h"
#include "search.h"

/*
 * Up to this many allowed vectors the exact scan is used: at 384
 * dimensions (24 ns a distance with AVX2) 20k allowed vectors scan in
 * 5.8 ms (p99 6.8) where the filtered graph walk took 17 ms (p99 19) at
 * recall 0.96 (bench/vector_search, 200k chunks, 10% allowed); the walk
 * wins from about 50k allowed on (2.3 ms at 100k).
 */
#define VSEARCH_EXACT_MAX 30000

/* The graph walk's efSearch: max(VSEARCH_EF_MIN, VSEARCH_EF_WIDEN * k) / allowed share. */
#define VSEARCH_EF_MIN 256
#define VSEARCH_EF_WIDEN 4.0

/*
 * Lists the partition plan scans at least (of 2048). At 1M clustered
 * vectors (bench/vector_search) 8 lists gave recall@10 0.998 at 10%, 50%
 * and 100% allowed with p50 0.4, 1.2 and 2.1 ms; 16 lists added nothing
 * there but time (3.9 ms at 100%). The graph walk it replaces reached
 * 0.68-0.83.
 */
#define VSEARCH_NPROBE 8

enum { VSEARCH_AUTO = 0, VSEARCH_EXACT = 1, VSEARCH_ANN = 2, VSEARCH_IVF = 3 };

typedef struct vsearch_opts {
    int k;                          /* results wanted, 1..1000 (default 10) */
    const char *const *sources;     /* only these source names (NULL = all) */
    size_t nsources;
    int plan;                       /* VSEARCH_AUTO, or force one (tests, bench) */
    int exact_max;                  /* 0 = VSEARCH_EXACT_MAX */
    int ef_min;                     /* smallest efSearch (0 = VSEARCH_EF_MIN) */
    int nprobe;                     /* lists scanned at least (0 = VSEARCH_NPROBE) */
    const acl_label_filter *labels; /* only ACL sets whose labels pass (NULL = any) */
    int ids_only;                   /* hits carry ids and score only (fusion) */
    int per_doc;                    /* at most this many chunks per document, 0 = any */
} vsearch_opts;

typedef struct vsearch_stats {
    size_t allowed;                 /* live vectors the caller may see */
    int plan;                       /* VSEARCH_EXACT, VSEARCH_ANN or VSEARCH_IVF */
    int ef;                         /* efSearch used by the ANN plan */
    int nprobe;                     /* lists scanned at least by the IVF plan */
    int fell_back;                  /* ANN or IVF found fewer than k: exact scan */
} vsearch_stats;

/*
 * vsearch_plan - the k nearest of q among the vectors f lets through, by
 * the plan described above. out has room for k (capped at 1000). stats may
 * be NULL.
 */
int vsearch_plan(const vindex *vi, const float *q, const vindex_filter *f,
                 const vsearch_opts *opts, vindex_hit *out, size_t *n, vsearch_stats *stats,
                 ctx_error *err);

/*
 * vsearch - the best k chunks near q (a unit vector of the index's model)
 * that user may read, with their documents. An unknown user, or no index
 * (vi NULL), yields zero hits and CTX_OK, as in lexical search. *out must
 * be search_result_free'd. stats may be NULL.
 */
int vsearch(sqlite3 *db, const vindex *vi, const char *user, const float *q,
            const vsearch_opts *opts, search_result *out, vsearch_stats *stats, ctx_error *err);

#endif
