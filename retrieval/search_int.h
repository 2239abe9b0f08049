/*
 * search_int.h - what search.c (the lexical search) and search_feedback.c
 * (query expansion and proximity, both off by default) share. Not a face:
 * nothing outside those two files includes it.
 */
#ifndef CTX_RETRIEVAL_SEARCH_INT_H
#define CTX_RETRIEVAL_SEARCH_INT_H

#include <sqlite3.h>
#include <stdint.h>

#include "rank.h"
#include "search.h"

#define MAX_TERMS RANK_MAX_TERMS

/* A query word with its statistics. */
typedef struct qterm {
    char *word;
    double idf;
    int common;          /* in more than 1/COMMON_DIV of the readable chunks */
    int64_t df;          /* chunks holding it, readable or not (a map's size) */
    double weight;       /* its IDF is multiplied by this: 1 for a word of the query */
    int added;           /* added by an expansion, not the caller's */
} qterm;

typedef struct qterms {
    qterm t[MAX_TERMS];
    size_t n;
} qterms;

/* A term in more than 1/COMMON_DIV of the chunks is common (MaxScore's
 * "non-essential" terms). */
#define COMMON_DIV 20

/* ---- the best L candidates: a min-heap on (score, id) ------------------ */

typedef struct cand {
    double score;
    int64_t id;
} cand;

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static inline int search__cand_less(const cand *a, const cand *b)
{
    return a->score < b->score || (a->score == b->score && a->id < b->id);
}

/* What lexical() leaves for a query expansion (when asked): the caller's
 * readable ACL sets (new) and their chunk count, the first answer's
 * statistics. */
typedef struct lex_state {
    rank_conn *rc;
    uint8_t *readable;
    int64_t nreadable, nrows;
} lex_state;

/* The best this many rows (at least) are reordered by proximity. */
#define PROX_DEPTH 50

/* search__is_stop - (search-internal) is w one of the words too common to rank by? */
int search__is_stop(const char *w);

/* search__word_byte - (search-internal) may c be part of a query word? */
int search__word_byte(unsigned char c);

/*
 * search__proximity - (search-internal) reorder h's rows (sorted, best
 * first) by a bonus for the query's own words close together (see
 * search_feedback.c). CTX_OK or an error.
 */
int search__proximity(sqlite3 *db, rank_conn *rc, const qterms *t, double w, heap *h,
                      ctx_error *err);

/* At least this many rows are ranked when a document sums its chunks. */
#define AGG_DEPTH 200

/*
 * search__aggregate - (search-internal) one row per document in h (sorted,
 * best first), scored by its rows together with weights 1, decay, decay^2,
 * ... (see search_feedback.c). CTX_OK or an error.
 */
int search__aggregate(sqlite3 *db, double decay, heap *h, ctx_error *err);

/*
 * search__expand - (search-internal) add to terms up to x->terms words of
 * the feedback chunks fb (see search_feedback.c). CTX_OK or an error.
 */
int search__expand(sqlite3 *db, const lex_state *st, const search_result *fb,
                   const search_expand *x, qterms *terms, ctx_error *err);

#endif
