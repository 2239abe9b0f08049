/*
 * qrels.h - relevance judgments for `ctxgate eval`: questions with the
 * documents that answer them, read from TSV or JSON lines, and the ranking
 * metrics (found@k, MRR@k, nDCG@k, recall@k) of one ranked answer.
 */
#ifndef CTX_RETRIEVAL_QRELS_H
#define CTX_RETRIEVAL_QRELS_H

#include <stddef.h>

#include "../core/ctx.h"

/* One question and the documents that answer it. */
typedef struct qrels_item {
    char *question;         /* owned, valid UTF-8, never empty */
    char **relevant;        /* owned; "source:external_id", distinct, in file order */
    size_t nrelevant;       /* at least 1 */
    int line;               /* the line it was read from, 1-based */
} qrels_item;

typedef struct qrels {
    qrels_item *v;          /* owned */
    size_t n;
} qrels;

/*
 * qrels_parse - the questions in text[0..len). The format is the first
 * content line's (blank lines and lines starting with '#' are skipped):
 *
 *   TSV:         question<TAB>id1,id2,...
 *   JSON lines:  {"question": "...", "relevant": ["id1", "id2"]}
 *
 * An id is "source:external_id" (the first ':' ends the source name), or,
 * when source is not NULL, a bare external id that gets "source:" in front.
 * Repeated ids count once. Any bad line (empty question, no ids, bad JSON,
 * a line of the other format, not UTF-8, a NUL byte) fails the whole parse
 * with CTX_EINVAL and err naming the line and the fix: nothing is skipped.
 * No question at all is CTX_EINVAL too. *out must be qrels_free'd whatever
 * the result. text and source borrowed.
 */
int qrels_parse(const char *text, size_t len, const char *source, qrels *out, ctx_error *err);

/* qrels_load - qrels_parse of the file at path (CTX_EIO when it cannot be read). */
int qrels_load(const char *path, const char *source, qrels *out, ctx_error *err);

void qrels_free(qrels *q);

/* The metrics of one ranked answer at k. */
typedef struct qrels_scores {
    double found;           /* 1 when a relevant document is in the top k, else 0 */
    double rr;              /* 1/rank of the first relevant one in the top k, else 0 */
    double ndcg;            /* binary gains, log2 discount, ideal over min(k, #relevant) */
    double recall;          /* relevant ones in the top k / #relevant */
    size_t hits;            /* relevant ones in the top k */
} qrels_scores;

/*
 * qrels_score - score ranked[0..nranked) (best first; a document ranked
 * again counts at its first place only, so the top k are the first k
 * distinct ids) against relevant[0..nrelevant) (repeats count once).
 * k >= 1. No relevant id scores all zeros. Arrays and strings borrowed.
 */
void qrels_score(const char *const *relevant, size_t nrelevant, const char *const *ranked,
                 size_t nranked, int k, qrels_scores *out);

/* Two runs' scores of the same questions, compared pair by pair. */
typedef struct qrels_paired {
    size_t n;               /* pairs */
    size_t better, worse;   /* pairs where b is above a, below a (ties are neither) */
    double mean_a, mean_b;
    double diff;            /* mean of b - a */
    double lo, hi;          /* 95% bootstrap interval of diff */
} qrels_paired;

/*
 * qrels_compare - b against a over n paired scores (a question's score in
 * each run). The interval is the percentile bootstrap: QRELS_RESAMPLES
 * resamples of the n pairs with replacement, from a fixed seed, so the
 * same scores always give the same interval. When it holds 0 the
 * questions cannot tell the runs apart. n 0 gives all zeros.
 */
#define QRELS_RESAMPLES 2000
void qrels_compare(const double *a, const double *b, size_t n, qrels_paired *out);

#endif
