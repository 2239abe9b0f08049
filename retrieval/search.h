/*
 * search.h - permission-filtered lexical search. The caller's principals
 * become part of the FTS5 query itself (allow must match one of them, deny
 * none), so BM25 ranks only chunks the caller may read and a common term
 * never ranks forbidden matches first and filters later.
 */
#ifndef CTX_RETRIEVAL_SEARCH_H
#define CTX_RETRIEVAL_SEARCH_H

#include <sqlite3.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "acl.h"

/*
 * search_expand - pseudo-relevance feedback: the query is asked once, the
 * best docs documents' top chunks (all readable by the caller, since the
 * first answer is permission-filtered) give up to terms words the query
 * lacks, chosen by how much of those chunks they make up, weighed by the
 * first answer's scores, times their IDF over the readable chunks; the
 * query is then asked again with them, each weighing at most weight times
 * its IDF. terms = 0 is off: the answer is exactly the one-pass answer.
 */
typedef struct search_expand {
    int terms;                      /* words added, 0 = off */
    int docs;                       /* documents read for them (0 = 10) */
    double weight;                  /* the best added word's IDF weight, 0..1 (0 = 0.5) */
} search_expand;

struct ctx_search_cfg;

/* search_expand_of - the expansion a config's search section asks for. */
search_expand search_expand_of(const struct ctx_search_cfg *cfg);

typedef struct search_opts {
    int k;                          /* results wanted, 1..1000 (default 10) */
    int per_doc;                    /* at most this many chunks per document, 0 = any */
    const char *const *sources;     /* only these source names (NULL = all) */
    size_t nsources;
    int match_principals_max;       /* plan switch (0 = default 32); for tests */
    /*
     * Rows holding only common terms (each in more than 5% of chunks) are
     * ranked among the newest rank_window readable ones (0 = default
     * SEARCH_RANK_WINDOW, negative = all of them). Rows with a rarer term
     * are always all ranked.
     */
    int64_t rank_window;
    const acl_label_filter *labels; /* only ACL sets whose labels pass (NULL = any) */
    int ids_only;                   /* hits carry ids and score only (fusion) */
    /* hits carry chunk ids and scores, unread from the store (no doc_id, no
     * check that the document still exists); with per_doc 0 only (fusion) */
    int ranks_only;
    int tfmaps;                     /* negative: never score from frequency maps; for tests */
    search_expand expand;           /* query expansion (off when expand.terms is 0) */
    /* > 0: the best 50 rows (or more, when k asks for more) are reordered
     * by score plus this times, for each pair of the query's words, the
     * lesser IDF over the square of their least distance in the chunk
     * (0 = off) */
    double proximity;
    /* > 0 with per_doc 1: a document scores its best row plus doc_decay
     * times its second, doc_decay^2 times its third, ... over the best 200
     * rows or more (0 = its best row alone) */
    double doc_decay;
} search_opts;

#define SEARCH_RANK_WINDOW 20000

/*
 * search_opts_config - so's ranking options (expansion, proximity,
 * doc_decay) as the config's search section sets them; the rest of so is
 * left as it was. The one place a lexical search reads them (the service
 * and the CLI; hybrid's leg takes them through hybrid_opts_config).
 */
void search_opts_config(search_opts *so, const struct ctx_search_cfg *cfg);

typedef struct search_hit {
    int64_t chunk_id, doc_id;
    double score;                   /* higher is better */
    char *source, *title, *url;     /* owned */
    char *text;                     /* the chunk's text, owned */
    int64_t acl_synced_at;          /* ms since epoch */
} search_hit;

typedef struct search_result {
    search_hit *hits;               /* n hits, best first; owned */
    size_t n;
    /* How the answer was found (for tests and benchmarks): */
    int rare_only;                  /* rows with common terms only were provably out */
    int windowed;                   /* ranking of common-term rows stopped at the window */
    int mapped;                     /* common terms were scored from frequency maps */
    int rare_mapped;                /* and the rows with a rare term came from maps too */
    int by_readable;                /* ranked by a pass over the caller's own rows */
} search_result;

/*
 * search_lexical - the best k chunks for query that user may read. An
 * unknown user, an empty query or a query of only punctuation yields zero
 * hits and CTX_OK: callers learn nothing from the difference. Every
 * statistic behind a score or the order (BM25's N, mean length, df) is
 * over the chunks user may read after opts->labels, so chunks they cannot
 * read change nothing in the answer; opts->sources narrows the rows, not
 * those statistics. *out must be search_result_free'd.
 */
int search_lexical(sqlite3 *db, const char *user, const char *query,
                   const search_opts *opts, search_result *out, ctx_error *err);

void search_result_free(search_result *r);

/* search_hit_clear - free h's strings and set them NULL. */
void search_hit_clear(search_hit *h);

/*
 * search__hit - (retrieval-internal) chunk h->chunk_id's document as a hit:
 * doc_id, and unless ids_only its acl_synced_at, source, title, url and
 * text (new, replacing any). *acl_id (may be NULL) gets the chunk's ACL
 * set. 1 when filled, 0 when the chunk or its document is gone, or a
 * negated CTX_* code with err set.
 */
int search__hit(sqlite3 *db, search_hit *h, int ids_only, int64_t *acl_id, ctx_error *err);

/*
 * search_fts_query - the FTS5 MATCH expression for query restricted to the
 * principals (exposed for tests). *out new, or NULL when the query has no
 * searchable term.
 */
int search_fts_query(const char *query, const int64_t *principals, size_t n,
                     char **out);

#endif
