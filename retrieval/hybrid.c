/*
 * hybrid.c - the fusion of the lexical and vector legs, by ranks or by
 * scaled scores (see hybrid.h).
 */
#include "hybrid.h"

#include <stdlib.h>
#include <string.h>

#include "../core/config.h"
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

/*
 * Add one leg's share to the fused list, taking over its hits' strings.
 * By ranks (rrf_k > 0), the hit at rank r adds w / (rrf_k + r + 1). By
 * scores (rrf_k 0), it adds w times its score scaled over the leg's
 * candidates, the worst 0 and the best 1: BM25 and cosine are on
 * different scales, and a leg's best is worth as much as the other's.
 */
static int fuse(fused **all, size_t *n, size_t *cap, search_result *leg, double w, int rrf_k)
{
    double lo = 0, hi = 0;

    for (size_t r = 0; r < leg->n; r++) {
        double s = leg->hits[r].score;
        lo = r && lo < s ? lo : s;
        hi = r && hi > s ? hi : s;
    }
    for (size_t r = 0; r < leg->n; r++) {
        search_hit *h = &leg->hits[r];
        double share = rrf_k > 0 ? 1.0 / (double)(rrf_k + (int)r + 1)
                       : hi > lo ? (h->score - lo) / (hi - lo) : 1;
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
        (*all)[i].score += w * share;
    }
    return CTX_OK;
}

/* The legs' weights: both 0 (unset) means 1 and 1. */
static void weights(const hybrid_opts *o, double *wl, double *wv)
{
    *wl = *wv = 1;
    if (o && (o->w_lexical > 0 || o->w_vector > 0)) {
        *wl = o->w_lexical;
        *wv = o->w_vector;
    }
}

static int depth_of(const hybrid_opts *o)
{
    int k = o && o->k > 0 ? o->k : 10;
    int depth;

    if (k > 1000)
        k = 1000;
    depth = o && o->depth > 0 ? (o->depth > k ? o->depth : k) : k * 4 > 50 ? k * 4 : 50;
    return depth > 1000 ? 1000 : depth;
}

int hybrid_lexical(sqlite3 *db, const char *user, const char *query, const hybrid_opts *o,
                   search_result *lex, ctx_error *err)
{
    search_opts so;

    memset(&so, 0, sizeof so);
    so.k = depth_of(o);
    so.sources = o ? o->sources : NULL;
    so.nsources = o ? o->nsources : 0;
    so.labels = o ? o->labels : NULL;
    so.ranks_only = 1; /* the store is read for the fused k only */
    so.ids_only = 1;   /* and where the leg sums documents (doc_decay), ids alone */
    if (o) {
        so.expand = o->expand;
        so.proximity = o->proximity;
        /* documents summed in the leg itself, so its ranks are documents' */
        if (o->per_doc == 1 && o->doc_decay > 0) {
            so.per_doc = 1;
            so.doc_decay = o->doc_decay;
        }
    }
    return search_lexical(db, user, query, &so, lex, err);
}

int hybrid_vector(sqlite3 *db, const vindex *vi, const char *user, const float *qv,
                  const hybrid_opts *o, search_result *vec, ctx_error *err)
{
    vsearch_opts vo;

    memset(&vo, 0, sizeof vo);
    vo.k = depth_of(o);
    vo.sources = o ? o->sources : NULL;
    vo.nsources = o ? o->nsources : 0;
    vo.labels = o ? o->labels : NULL;
    vo.ids_only = 1; /* read: a chunk deleted since the index caught up is passed over */
    return vsearch(db, vi, user, qv, &vo, vec, NULL, err);
}

int hybrid_fuse(sqlite3 *db, search_result *lex, search_result *vec, const hybrid_opts *o,
                search_result *out, ctx_error *err)
{
    fused *all = NULL;
    size_t n = 0, cap = 0, i;
    int k = o && o->k > 0 ? o->k : 10, rc;
    int rrf_k = o && o->by_scores ? 0 : o && o->rrf_k > 0 ? o->rrf_k : 60;
    double wl, wv;

    out->hits = NULL;
    out->n = 0;
    if (k > 1000)
        k = 1000;
    weights(o, &wl, &wv);
    rc = CTX_ENOMEM;
    if ((lex && fuse(&all, &n, &cap, lex, wl, rrf_k)) ||
        (vec && fuse(&all, &n, &cap, vec, wv, rrf_k))) {
        ctx_error_set(err, rc, "hybrid: out of memory");
        goto done;
    }
    if (n)
        qsort(all, n, sizeof *all, by_score);
    if (!(out->hits = ctx_calloc((size_t)k, sizeof *out->hits))) {
        ctx_error_set(err, rc, "hybrid: out of memory");
        goto done;
    }
    /*
     * The lexical leg hands over ranks alone (its chunks are the store's as
     * of its read), the vector leg its live chunks' documents. Each
     * candidate, best first, is read here: its document first, by the
     * narrow chunk row, when documents are collapsed and no leg gave it,
     * and one deleted since a leg ranked it is passed over.
     */
    for (i = 0; i < n && (int)out->n < k; i++) {
        search_hit *h = &out->hits[out->n];
        int got;
        *h = all[i].hit;
        h->score = all[i].score;
        memset(&all[i].hit, 0, sizeof all[i].hit);
        if (o && o->per_doc > 0) {
            size_t same = 0;
            if (h->doc_id > 0)
                got = 1;
            else if ((got = search__hit(db, h, 1, NULL, err)) < 0) {
                rc = -got;
                goto done;
            }
            for (size_t j = 0; got && j < out->n; j++)
                same += out->hits[j].doc_id == h->doc_id;
            if (!got || (int)same >= o->per_doc) {
                search_hit_clear(h);
                continue;
            }
        }
        if ((got = search__hit(db, h, 0, NULL, err)) < 0) {
            rc = -got;
            goto done;
        }
        if (got)
            out->n++;
        else
            search_hit_clear(h);
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
    if (lex)
        search_result_free(lex);
    if (vec)
        search_result_free(vec);
    if (rc)
        search_result_free(out);
    return rc;
}

int hybrid_search_vec(sqlite3 *db, const vindex *vi, const float *qv, const char *user,
                      const char *query, const hybrid_opts *o, search_result *out,
                      ctx_error *err)
{
    search_result lex = {NULL, 0}, vec = {NULL, 0};
    double wl, wv;
    int rc = CTX_OK;

    out->hits = NULL;
    out->n = 0;
    weights(o, &wl, &wv);
    if (wl > 0)
        rc = hybrid_lexical(db, user, query, o, &lex, err);
    if (!rc && wv > 0 && vi && qv)
        rc = hybrid_vector(db, vi, user, qv, o, &vec, err);
    if (rc) {
        search_result_free(&lex);
        search_result_free(&vec);
        return rc;
    }
    return hybrid_fuse(db, &lex, &vec, o, out, err);
}

int hybrid_search(sqlite3 *db, const vindex *vi, embed_provider *emb, const char *user,
                  const char *query, const hybrid_opts *o, search_result *out, ctx_error *err)
{
    float *q = NULL;
    double wl, wv;
    int rc;

    weights(o, &wl, &wv);
    if (wv > 0 && vi && emb) {
        size_t len = strlen(query);
        vindex_info info;
        ctx_error eerr;
        if (!(q = ctx_malloc((size_t)embed_dim(emb) * sizeof *q))) {
            out->hits = NULL;
            out->n = 0;
            return ctx_error_set(err, CTX_ENOMEM, "hybrid: out of memory");
        }
        vindex_get_info(vi, &info);
        if (info.dim != embed_dim(emb)) {
            ctx_log(CTX_LOG_WARN, "hybrid", "the embedder gives %d dimensions, the index holds"
                    " %d; answering from the lexical leg only", embed_dim(emb), info.dim);
            ctx_free(q);
            q = NULL;
        } else if (embed_texts(emb, &query, &len, 1, q, &eerr)) {
            ctx_log(CTX_LOG_WARN, "hybrid", "%s; answering from the lexical leg only", eerr.text);
            ctx_free(q);
            q = NULL;
        }
    }
    rc = hybrid_search_vec(db, q ? vi : NULL, q, user, query, o, out, err);
    ctx_free(q);
    return rc;
}

void hybrid_opts_config(hybrid_opts *o, const ctx_search_cfg *cfg, int lexical_only)
{
    o->w_lexical = cfg->w_lexical;
    o->w_vector = cfg->w_vector;
    o->rrf_k = (int)cfg->rrf_k;
    o->by_scores = cfg->fusion && !strcmp(cfg->fusion, "scores");
    o->depth = (int)cfg->depth;
    o->expand = search_expand_of(cfg);
    o->proximity = cfg->proximity;
    o->doc_decay = cfg->doc_decay;
    if (lexical_only) {
        o->w_lexical = o->w_lexical > 0 ? o->w_lexical : 1;
        o->w_vector = 0;
    }
}
