/*
 * hybrid.c - reciprocal rank fusion of the lexical and vector legs (see
 * hybrid.h).
 */
#include "hybrid.h"

#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "vsearch.h"

typedef struct fused {
    search_hit hit;      /* strings stolen from a leg's result */
    double score;
} fused;

static int by_score(const void *a, const void *b)
{
    const fused *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->hit.chunk_id > y->hit.chunk_id) - (x->hit.chunk_id < y->hit.chunk_id);
}

/* Add one leg's ranks to the fused list, taking over its hits' strings. */
static int fuse(fused **all, size_t *n, size_t *cap, search_result *leg, double w, int rrf_k)
{
    for (size_t r = 0; r < leg->n; r++) {
        search_hit *h = &leg->hits[r];
        size_t i;
        for (i = 0; i < *n && (*all)[i].hit.chunk_id != h->chunk_id; i++)
            ;
        if (i == *n) {
            if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 64;
                fused *v = ctx_realloc(*all, c * sizeof *v);
                if (!v)
                    return CTX_ENOMEM;
                *all = v;
                *cap = c;
            }
            (*all)[i].hit = *h;
            (*all)[i].score = 0;
            memset(h, 0, sizeof *h); /* stolen */
            (*n)++;
        }
        (*all)[i].score += w / (double)(rrf_k + (int)r + 1);
    }
    return CTX_OK;
}

int hybrid_search(sqlite3 *db, const vindex *vi, embed_provider *emb, const char *user,
                  const char *query, const hybrid_opts *o, search_result *out, ctx_error *err)
{
    search_result lex = {NULL, 0}, vec = {NULL, 0};
    search_opts so;
    vsearch_opts vo;
    fused *all = NULL;
    float *q = NULL;
    size_t n = 0, cap = 0, i;
    int k = o && o->k > 0 ? o->k : 10, rc;
    int rrf_k = o && o->rrf_k > 0 ? o->rrf_k : 60;
    double wl = 1, wv = 1;
    int depth;

    out->hits = NULL;
    out->n = 0;
    if (k > 1000)
        k = 1000;
    if (o && (o->w_lexical > 0 || o->w_vector > 0)) {
        wl = o->w_lexical;
        wv = o->w_vector;
    }
    depth = o && o->depth > 0 ? o->depth : k * 4 > 50 ? k * 4 : 50;
    if (depth > 1000)
        depth = 1000;

    memset(&so, 0, sizeof so);
    so.k = depth;
    so.sources = o ? o->sources : NULL;
    so.nsources = o ? o->nsources : 0;
    so.labels = o ? o->labels : NULL;
    so.ids_only = 1; /* the shown fields are read for the fused k only */
    if (wl > 0 && (rc = search_lexical(db, user, query, &so, &lex, err)))
        goto done;
    if (wv > 0 && vi && emb) {
        size_t len = strlen(query);
        ctx_error eerr;
        if (!(q = ctx_malloc((size_t)embed_dim(emb) * sizeof *q))) {
            rc = ctx_error_set(err, CTX_ENOMEM, "hybrid: out of memory");
            goto done;
        }
        vindex_info info;
        vindex_get_info(vi, &info);
        if (info.dim != embed_dim(emb)) {
            ctx_log(CTX_LOG_WARN, "hybrid", "the embedder gives %d dimensions, the index holds"
                    " %d; answering from the lexical leg only", embed_dim(emb), info.dim);
        } else if (embed_texts(emb, &query, &len, 1, q, &eerr)) {
            ctx_log(CTX_LOG_WARN, "hybrid", "%s; answering from the lexical leg only", eerr.text);
        } else {
            memset(&vo, 0, sizeof vo);
            vo.k = depth;
            vo.sources = so.sources;
            vo.nsources = so.nsources;
            vo.labels = so.labels;
            vo.ids_only = 1;
            if ((rc = vsearch(db, vi, user, q, &vo, &vec, NULL, err)))
                goto done;
        }
    }
    rc = CTX_ENOMEM;
    if (fuse(&all, &n, &cap, &lex, wl, rrf_k) || fuse(&all, &n, &cap, &vec, wv, rrf_k)) {
        ctx_error_set(err, rc, "hybrid: out of memory");
        goto done;
    }
    if (n)
        qsort(all, n, sizeof *all, by_score);
    if (!(out->hits = ctx_calloc((size_t)k, sizeof *out->hits))) {
        ctx_error_set(err, rc, "hybrid: out of memory");
        goto done;
    }
    for (i = 0; i < n && (int)out->n < k; i++) {
        search_hit *h = &out->hits[out->n];
        size_t same = 0;
        int got;
        for (size_t j = 0; o && o->per_doc && j < out->n; j++)
            same += out->hits[j].doc_id == all[i].hit.doc_id;
        if (o && o->per_doc && (int)same >= o->per_doc)
            continue;
        *h = all[i].hit;
        h->score = all[i].score;
        memset(&all[i].hit, 0, sizeof all[i].hit);
        if ((got = search__hit(db, h, 0, NULL, err)) < 0) {
            rc = -got;
            goto done;
        }
        if (got) /* else deleted since the leg found it */
            out->n++;
    }
    rc = CTX_OK;
done:
    for (i = 0; i < n; i++) {
        ctx_free(all[i].hit.source);
        ctx_free(all[i].hit.title);
        ctx_free(all[i].hit.url);
        ctx_free(all[i].hit.text);
    }
    ctx_free(all);
    ctx_free(q);
    search_result_free(&lex);
    search_result_free(&vec);
    if (rc)
        search_result_free(out);
    return rc;
}
