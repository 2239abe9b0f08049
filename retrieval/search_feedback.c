/*
 * search_feedback.c - optional refinements of a lexical search
 * (docs/benchmarks.md has the measurements): a proximity bonus for the
 * query's words close together, query expansion from the caller's own best
 * hits (pseudo-relevance feedback), both off by default, and a document
 * scored by its best chunks together. See search.h.
 */
#include "search_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/store_read.h"

/* ---- proximity: query words close together in a chunk ----------------- */

/* Longest index term (bytes) proximity and expansion look at, plus one. */
#define XP_WORD 32

/* What prox_token tracks over one chunk: where each query word was last
 * seen, and the least distance between each pair. */
typedef struct prox_scan {
    char stem[MAX_TERMS][XP_WORD];
    size_t n;
    int64_t pos, last[MAX_TERMS];
    int64_t dist[MAX_TERMS][MAX_TERMS];
    int marking;        /* the query's own words are being read */
} prox_scan;

static int prox_token(void *arg, int flags, const char *stem, int nstem, int start, int end)
{
    prox_scan *p = arg;
    (void)start;
    (void)end;
    if (flags & FTS5_TOKEN_COLOCATED)
        return SQLITE_OK;
    if (p->marking) {
        if (nstem > 0 && nstem < XP_WORD && p->n < MAX_TERMS) {
            memcpy(p->stem[p->n], stem, (size_t)nstem);
            p->stem[p->n++][nstem] = '\0';
        }
        return SQLITE_OK;
    }
    p->pos++;
    for (size_t i = 0; i < p->n; i++) {
        if ((int)strlen(p->stem[i]) != nstem || memcmp(p->stem[i], stem, (size_t)nstem))
            continue;
        p->last[i] = p->pos;
        for (size_t j = 0; j < p->n; j++)
            /* two query words of one index term share a token: no pair */
            if (j != i && p->last[j] > 0 && p->last[j] < p->pos &&
                p->pos - p->last[j] < p->dist[i][j])
                p->dist[i][j] = p->dist[j][i] = p->pos - p->last[j];
    }
    return SQLITE_OK;
}

/* What prox_read scans a chunk with. */
typedef struct prox_chunk {
    rank_conn *rc;
    prox_scan *p;
} prox_chunk;

/* prox_read - scan a chunk's title, then its text, for the query's words. */
static void prox_read(void *arg, const char *title, const char *text)
{
    prox_chunk *pc = arg;
    const char *x[2] = {title, text};

    for (int c = 0; c < 2; c++) {
        if (x[c])
            rank_tokenize(pc->rc, x[c], (int)strlen(x[c]), pc->p, prox_token);
        pc->p->pos += 1000; /* no pair spans the title and the text */
    }
}

/*
 * proximity - reorder h's rows (sorted, best first) by score plus a bonus
 * for the query's own words (not added ones) close together in the
 * chunk's title or text: for each pair whose nearest occurrences are d
 * tokens apart, w times the lesser of their IDFs over d squared (side by
 * side counts in full, a few words apart little). Only the rows already ranked
 * are read (readable ones), and the IDFs are the caller's, so the
 * permission argument is that of the ranking; ties stay broken by id.
 */
int search__proximity(sqlite3 *db, rank_conn *rc, const qterms *t, double w, heap *h,
                      ctx_error *err)
{
    prox_scan *p;
    size_t q[MAX_TERMS], nq = 0;

    if (!(p = ctx_calloc(1, sizeof *p)))
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    p->marking = 1;
    for (size_t i = 0; i < t->n; i++) {
        size_t before = p->n;
        if (t->t[i].added)
            continue;
        rank_tokenize(rc, t->t[i].word, (int)strlen(t->t[i].word), p, prox_token);
        if (p->n == before + 1) /* one index term: its IDF is t's */
            q[nq++] = i;
        else
            p->n = before;
    }
    p->marking = 0;
    for (size_t r = 0; nq > 1 && r < h->n; r++) {
        prox_chunk pc = {rc, p};
        double bonus = 0;
        p->pos = 0;
        for (size_t i = 0; i < nq; i++) {
            p->last[i] = 0;
            for (size_t j = 0; j < nq; j++)
                p->dist[i][j] = INT64_MAX;
        }
        if (store_chunk_content(db, h->v[r].id, prox_read, &pc, "search", err)) {
            ctx_free(p);
            return CTX_ESTORE;
        }
        for (size_t i = 0; i < nq; i++)
            for (size_t j = i + 1; j < nq; j++)
                if (p->dist[i][j] != INT64_MAX) {
                    double a = t->t[q[i]].idf, b = t->t[q[j]].idf;
                    double d = (double)p->dist[i][j];
                    bonus += w * (a < b ? a : b) / (d * d);
                }
        h->v[r].score += bonus;
    }
    ctx_free(p);
    /* best first again: a min-heap's order, reversed */
    for (size_t i = 1; i < h->n; i++)
        for (size_t j = i; j > 0 && search__cand_less(&h->v[j - 1], &h->v[j]); j--) {
            cand x = h->v[j];
            h->v[j] = h->v[j - 1];
            h->v[j - 1] = x;
        }
    return CTX_OK;
}

/* ---- query expansion (pseudo-relevance feedback) ------------------------ */

/* Distinct index terms kept from the feedback chunks (a power of two; once
 * three quarters are taken, new words are not counted). */
#define XP_SLOTS 2048

/* A word of the feedback chunks, by its index term (stem). */
typedef struct xp_word {
    char stem[XP_WORD], word[XP_WORD]; /* word: its first form seen, lowercased */
    double rm;          /* sum over the chunks of chunk weight * tf / chunk length */
    int chunks;         /* chunks holding it */
    int tf, last;       /* its count in chunk last (1-based) */
    int query;          /* a term of the query itself */
    double idf;
} xp_word;

typedef struct xp_table {
    xp_word *v;
    size_t n;
    const char *text;   /* what is being tokenized */
    int chunk;          /* 1-based chunk being read, 0: the query's words */
    int len;            /* its tokens */
} xp_table;

static xp_word *xp_find(xp_table *t, const char *stem, int n)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++)
        h = (h ^ (unsigned char)stem[i]) * 16777619u;
    for (size_t i = h & (XP_SLOTS - 1);; i = (i + 1) & (XP_SLOTS - 1)) {
        xp_word *w = &t->v[i];
        if (!w->stem[0]) {
            if (t->n >= XP_SLOTS / 4 * 3)
                return NULL;
            t->n++;
            memcpy(w->stem, stem, (size_t)n);
            return w;
        }
        if ((int)strlen(w->stem) == n && !memcmp(w->stem, stem, (size_t)n))
            return w;
    }
}

/* xp_token - rank_tokenize's callback: count a word of the chunk (or mark
 * one of the query's). Only words that parse_terms would keep whole
 * (letters, digits, non-ASCII; not a stopword, not digits only, 3 bytes
 * or more) are candidates, so an added word is a safe FTS5 phrase. */
static int xp_token(void *arg, int flags, const char *stem, int nstem, int start, int end)
{
    xp_table *t = arg;
    char word[XP_WORD];
    int n = end - start, digits = 1;
    xp_word *w;

    if (flags & FTS5_TOKEN_COLOCATED)
        return SQLITE_OK;
    t->len++;
    if (nstem <= 0 || nstem >= XP_WORD || n >= XP_WORD || (t->chunk && n < 3))
        return SQLITE_OK;
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t->text[start + i];
        if (!search__word_byte(c))
            return SQLITE_OK;
        digits &= isdigit(c) != 0;
        word[i] = (char)tolower(c);
    }
    word[n] = '\0';
    if (t->chunk && (digits || search__is_stop(word)))
        return SQLITE_OK;
    if (!(w = xp_find(t, stem, nstem)))
        return SQLITE_OK;
    if (!t->chunk) {
        w->query = 1;
        return SQLITE_OK;
    }
    if (!w->word[0])
        memcpy(w->word, word, (size_t)n + 1);
    if (w->last != t->chunk) {
        w->last = t->chunk;
        w->tf = 0;
        w->chunks++;
    }
    w->tf++;
    return SQLITE_OK;
}

/* xp_tokenize - text through the index's tokenizer into t. */
static void xp_tokenize(const lex_state *st, xp_table *t, const char *text)
{
    t->text = text;
    rank_tokenize(st->rc, text, (int)strlen(text), t, xp_token);
}

/* What xp_read reads a feedback chunk into. */
typedef struct xp_chunk {
    const lex_state *st;
    xp_table *t;
} xp_chunk;

/* xp_read - count a feedback chunk's words: its title, then its text. */
static void xp_read(void *arg, const char *title, const char *text)
{
    xp_chunk *xc = arg;

    if (title)
        xp_tokenize(xc->st, xc->t, title);
    if (text)
        xp_tokenize(xc->st, xc->t, text);
}

/* Best candidate first: by rm, then by stem (deterministic). */
static int xp_by_rm(const void *a, const void *b)
{
    const xp_word *x = *(xp_word *const *)a, *y = *(xp_word *const *)b;
    if (x->rm != y->rm)
        return x->rm > y->rm ? -1 : 1;
    return strcmp(x->stem, y->stem);
}

/* Best added word first: by rm * idf, then by stem. */
static int xp_by_score(const void *a, const void *b)
{
    const xp_word *x = *(xp_word *const *)a, *y = *(xp_word *const *)b;
    double sx = x->rm * x->idf, sy = y->rm * y->idf;
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->stem, y->stem);
}

/*
 * expand - add to terms up to x->terms words of the feedback chunks fb
 * (the first answer: chunks the caller may read) that the query lacks.
 * A word's relevance-model weight is the sum over the chunks of the
 * chunk's score (over the best one's) times the word's share of its
 * tokens; the words in at least two chunks (when there are two) with the
 * highest such weights are then weighed by their IDF over the caller's
 * readable chunks (st), and the best are added, with an IDF multiplier of
 * x->weight times their weight over the best one's. A word in more than
 * 1/COMMON_DIV of the readable chunks is not added: it says little and
 * would send the search down its common-term pass.
 */
int search__expand(sqlite3 *db, const lex_state *st, const search_result *fb,
                   const search_expand *x, qterms *terms, ctx_error *err)
{
    xp_table t = {NULL, 0, NULL, 0, 0};
    xp_word **c = NULL;
    size_t nc = 0, want = (size_t)x->terms, pool;
    double weight = x->weight > 0 ? x->weight : 0.5, top = fb->hits[0].score;
    int min_chunks = fb->n > 1 ? 2 : 1, rc = CTX_OK;

    if (!(t.v = ctx_calloc(XP_SLOTS, sizeof *t.v)) || !(c = ctx_malloc(XP_SLOTS * sizeof *c)))
        goto oom;
    for (size_t i = 0; i < terms->n; i++)
        xp_tokenize(st, &t, terms->t[i].word);
    for (size_t i = 0; i < fb->n; i++) {
        xp_chunk xc = {st, &t};
        double w = top > 0 && fb->hits[i].score > 0 ? fb->hits[i].score / top : 1.0;
        t.chunk = (int)i + 1;
        t.len = 0;
        if ((rc = store_chunk_content(db, fb->hits[i].chunk_id, xp_read, &xc, "search", err)))
            goto done;
        for (size_t j = 0; t.len && j < XP_SLOTS; j++)
            if (t.v[j].last == t.chunk && t.v[j].tf)
                t.v[j].rm += w * t.v[j].tf / t.len;
    }
    for (size_t j = 0; j < XP_SLOTS; j++)
        if (t.v[j].stem[0] && !t.v[j].query && t.v[j].word[0] && t.v[j].chunks >= min_chunks)
            c[nc++] = &t.v[j];
    qsort(c, nc, sizeof *c, xp_by_rm);
    /* IDFs for the strongest few only: a count may walk a word's doclist */
    pool = want * 4 < nc ? want * 4 : nc;
    for (size_t j = 0; j < pool; j++) {
        int64_t df = 0;
        if ((rc = rank_readable_df(st->rc, c[j]->word, st->readable, st->nreadable, &df, NULL,
                                   err)))
            goto done;
        c[j]->idf = df > 0 && df * COMMON_DIV <= st->nrows ? rank_idf(st->nrows, df) : 0;
    }
    qsort(c, pool, sizeof *c, xp_by_score);
    for (size_t j = 0; j < pool && j < want && terms->n < MAX_TERMS; j++) {
        qterm *q = &terms->t[terms->n];
        if (!(c[j]->rm * c[j]->idf > 0))
            break;
        if (!(q->word = ctx_strdup(c[j]->word)))
            goto oom;
        q->weight = weight * (c[j]->rm * c[j]->idf) / (c[0]->rm * c[0]->idf);
        q->added = 1;
        terms->n++;
    }
    goto done;
oom:
    rc = ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
done:
    ctx_free(t.v);
    ctx_free(c);
    return rc;
}


/* ---- a document scored by its best chunks together --------------------- */

/* One document among the rows: its best row and the score so far. */
typedef struct agg_doc {
    int64_t doc;            /* 0: an empty slot */
    int64_t best;           /* its best row's chunk id */
    double score, w;        /* the sum so far, and the next row's weight */
} agg_doc;

static int cand_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return search__cand_less(x, y) - search__cand_less(y, x); /* best first */
}

/*
 * search__aggregate - one row per document: its best row, scored s1 +
 * decay s2 + decay^2 s3 + ... over its rows in h (sorted, best first), so
 * a document several of whose chunks match ranks above one with a single
 * match of the same strength. Only the ranked rows count, and those are
 * rows the caller may read; a row whose document is gone is dropped. Ties
 * stay broken by id.
 */
int search__aggregate(sqlite3 *db, double decay, heap *h, ctx_error *err)
{
    size_t cap = 16, mask;
    agg_doc *t;

    while (cap < h->n * 2)
        cap *= 2;
    mask = cap - 1;
    if (!(t = ctx_calloc(cap, sizeof *t)))
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    for (size_t i = 0; i < h->n; i++) {
        search_hit hit = {.chunk_id = h->v[i].id};
        int got = search__hit(db, &hit, 1, NULL, err);
        size_t j;

        if (got < 0) {
            ctx_free(t);
            return -got;
        }
        if (!got)
            continue; /* its document was deleted */
        j = (size_t)((uint64_t)hit.doc_id * 0x9E3779B97F4A7C15ull >> 32) & mask;
        while (t[j].doc && t[j].doc != hit.doc_id)
            j = (j + 1) & mask;
        if (!t[j].doc) {
            t[j].doc = hit.doc_id;
            t[j].best = h->v[i].id;
            t[j].w = 1.0;
        }
        t[j].score += t[j].w * h->v[i].score;
        t[j].w *= decay;
    }
    h->n = 0;
    for (size_t j = 0; j < cap; j++)
        if (t[j].doc)
            h->v[h->n++] = (cand){t[j].score, t[j].best};
    ctx_free(t);
    qsort(h->v, h->n, sizeof *h->v, cand_desc);
    return CTX_OK;
}
