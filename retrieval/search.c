/*
 * search.c - lexical search inside what the caller may read (see search.h).
 */
#include "search.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../core/config.h"
#include "../core/util.h"
#include "../indexer/stmt.h"
#include "acl.h"
#include "rank.h"
#include "search_int.h"
#include "../core/json.h"

/* Words too common to rank by; dropped unless they are all the query has. */
static const char *const stopwords[] = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does",
    "for", "from", "how", "i", "if", "in", "is", "it", "me", "my", "of", "on",
    "or", "our", "so", "that", "the", "their", "there", "this", "to", "us", "was",
    "we", "what", "when", "where", "which", "who", "why", "will", "with", "you",
    "your", NULL,
};

int search__is_stop(const char *w)
{
    for (const char *const *s = stopwords; *s; s++)
        if (!strcmp(*s, w))
            return 1;
    return 0;
}

int search__word_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

static void qterms_free(qterms *q)
{
    for (size_t i = 0; i < q->n; i++)
        ctx_free(q->t[i].word);
    q->n = 0;
}

/*
 * parse_terms - the query's distinct words, lowercased. Words are runs of
 * letters, digits and non-ASCII; everything else, including FTS5 syntax,
 * separates them, so no input can inject syntax. Stopwords are dropped
 * unless they are all the query has.
 */
static int parse_terms(const char *query, qterms *out)
{
    char *words[MAX_TERMS];
    size_t n = 0, nstop = 0, i, j;
    const unsigned char *p = (const unsigned char *)query;

    out->n = 0;
    while (*p && n < MAX_TERMS) {
        const unsigned char *s;
        char *w;
        while (*p && !search__word_byte(*p))
            p++;
        s = p;
        while (*p && search__word_byte(*p))
            p++;
        if (p == s || p - s >= 64)
            continue;
        if (!(w = ctx_strndup((const char *)s, (size_t)(p - s)))) {
            for (i = 0; i < n; i++)
                ctx_free(words[i]);
            return CTX_ENOMEM;
        }
        for (char *c = w; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        for (j = 0; j < n && strcmp(words[j], w); j++)
            ;
        if (j < n) {
            ctx_free(w);
            continue;
        }
        nstop += (size_t)search__is_stop(w);
        words[n++] = w;
    }
    for (i = 0; i < n; i++) {
        if (nstop < n && search__is_stop(words[i]))
            ctx_free(words[i]);
        else
            out->t[out->n++] = (qterm){.word = words[i], .weight = 1.0};
    }
    return CTX_OK;
}

/* Append `{title text} : ("w1" OR "w2")` for the terms whose bit is in mask. */
static int put_terms(ctx_buf *b, const qterms *q, uint32_t mask)
{
    int first = 1;
    if (ctx_buf_puts(b, "({title text} : ("))
        return CTX_ENOMEM;
    for (size_t i = 0; i < q->n; i++) {
        if (!(mask >> i & 1))
            continue;
        if (ctx_buf_printf(b, "%s\"%s\"", first ? "" : " OR ", q->t[i].word))
            return CTX_ENOMEM;
        first = 0;
    }
    return ctx_buf_puts(b, "))") ? CTX_ENOMEM : CTX_OK;
}

/* Append " OR "-joined p<id> tokens. */
static int put_tokens(ctx_buf *b, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ctx_buf_printf(b, "%sp%lld", i ? " OR " : "", (long long)ids[i]))
            return CTX_ENOMEM;
    return CTX_OK;
}

/* The shapes of a MATCH expression; phrases are numbered left to right. */
enum match_shape {
    SHAPE_ALL,      /* any term */
    SHAPE_RARE,     /* a rare term, with every term's phrase there to score */
    SHAPE_RARE_ONLY, /* a rare term, with no other phrase (maps score the rest) */
    SHAPE_COMMON,   /* a common term and no rare one */
};

/*
 * build_match - the MATCH expression of shape over terms (rare: the terms
 * whose bit is in the mask), restricted to chunks allowed to one of allow[]
 * (if nallow) and denied to none of deny[].
 */
static int build_match(const qterms *q, enum match_shape shape, uint32_t rare,
                       const int64_t *allow, size_t nallow, const int64_t *deny,
                       size_t ndeny, char **out)
{
    uint32_t all = q->n >= 32 ? 0xffffffffu : (1u << q->n) - 1;
    ctx_buf b = CTX_BUF_INIT;
    int rc = CTX_ENOMEM;

    *out = NULL;
    if (ctx_buf_puts(&b, shape == SHAPE_ALL || shape == SHAPE_RARE_ONLY ? "(" : "(("))
        goto done;
    if (shape == SHAPE_ALL && put_terms(&b, q, all))
        goto done;
    if (shape == SHAPE_RARE_ONLY && put_terms(&b, q, rare))
        goto done;
    if (shape == SHAPE_RARE &&
        (put_terms(&b, q, rare) || ctx_buf_puts(&b, " AND ") || put_terms(&b, q, all) ||
         ctx_buf_puts(&b, ")")))
        goto done;
    if (shape == SHAPE_COMMON &&
        (put_terms(&b, q, all & ~rare) || ctx_buf_puts(&b, " NOT ") || put_terms(&b, q, rare) ||
         ctx_buf_puts(&b, ")")))
        goto done;
    if (nallow && (ctx_buf_puts(&b, " AND (allow : (") || put_tokens(&b, allow, nallow) ||
                   ctx_buf_puts(&b, "))")))
        goto done;
    if (ctx_buf_puts(&b, ")"))
        goto done;
    if (ndeny && (ctx_buf_puts(&b, " NOT (deny : (") || put_tokens(&b, deny, ndeny) ||
                  ctx_buf_puts(&b, "))")))
        goto done;
    *out = ctx_buf_steal(&b);
    rc = CTX_OK;
done:
    ctx_buf_free(&b);
    return rc;
}

int search_fts_query(const char *query, const int64_t *principals, size_t n, char **out)
{
    qterms q;
    int rc;

    *out = NULL;
    if (!n)
        return CTX_OK; /* nobody: nothing to search */
    if ((rc = parse_terms(query, &q)))
        return rc;
    if (q.n)
        rc = build_match(&q, SHAPE_ALL, 0, principals, n, principals, n, out);
    qterms_free(&q);
    return rc;
}

static const char sources_sql[] =
    "SELECT id FROM sources WHERE name IN (SELECT value FROM json_each(?1))";

/*
 * What is shown for a hit, once the best rows are known; and only what
 * keeps it one (live document, ACL set), for a leg whose candidates are
 * fused before anything is shown.
 */
/* acl_synced_at: when the document's ACL was last confirmed, by its own
 * write or by a run that read every permission of its source whole (which
 * does not rewrite unchanged rows). */
static const char hit_sql[] =
    "SELECT c.doc_id, c.acl_id, max(d.acl_synced_at, coalesce((SELECT synced_at FROM"
    " source_acl_sync a WHERE a.source_id = d.source_id), 0)), s.name, d.title, d.url, f.c1"
    " FROM chunks c JOIN documents d ON d.id = c.doc_id JOIN sources s ON s.id = d.source_id"
    " JOIN chunks_fts_content f ON f.id = c.id WHERE c.id = ?1 AND d.deleted = 0";
/* A chunk row outlives no document: deleting one drops its chunks in the
 * same transaction. So the narrow chunks table tells a leg enough, where
 * a documents row (with its body) is a page read of its own. */
static const char hit_id_sql[] = "SELECT doc_id, acl_id FROM chunks WHERE id = ?1";

/*
 * Up to this many principals, their allow tokens go into the MATCH, where
 * FTS5 intersects them with the words' doclists; above it an OR of them
 * costs more than checking each candidate's ACL set in the chunk map
 * (bench/README.md). The deny tokens never do: under a MATCH of the shape
 * "(words AND allow) NOT deny", FTS5 3.40 reports no hits for some phrases
 * of rows that match, and the leak oracle found rows scored too low, some
 * at 0, in 14 of 46 queries. The readable bitmap, checked for every
 * candidate, is what applies deny lists (and is the whole filter anyway).
 */
#define MATCH_PRINCIPALS_MAX 32

/* A lookup of a row in a frequency map costs about this many times a visit
 * of a row in a pass driven by the terms (bench/search_lexical at 1M
 * documents: 2 to 16 alike within noise, 1 slower for 10%, 64 for 1%). */
#define READABLE_LOOKUP_COST 4

/* A caller who reads at most 1/SMALL_READER of the chunks, with principals
 * in the MATCH, takes df from their own rows (small_collect, or with a
 * source filter rank_match_df when the connection keeps no counts for the
 * word) rather than from a walk of a common word's whole doclist. */
#define SMALL_READER 32


/*
 * ids_bitmap - a bit per id in ids. *nbits is one past the highest id;
 * *bits is new, and NULL when there is none.
 */
static int ids_bitmap(const acl_principals *ids, uint8_t **bits, int64_t *nbits, ctx_error *err)
{
    *bits = NULL;
    *nbits = 0;
    for (size_t i = 0; i < ids->n; i++)
        if (ids->ids[i] >= *nbits)
            *nbits = ids->ids[i] + 1;
    if (*nbits && !(*bits = ctx_calloc((size_t)(*nbits + 7) / 8, 1)))
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    for (size_t i = 0; i < ids->n; i++)
        if (ids->ids[i] >= 0)
            (*bits)[ids->ids[i] >> 3] |= (uint8_t)(1u << (ids->ids[i] & 7));
    return CTX_OK;
}

/* id_bitmap - ids_bitmap of what sql (bound to json) returns. */
static int id_bitmap(sqlite3 *db, const char *sql, const char *json, uint8_t **bits,
                     int64_t *nbits, ctx_error *err)
{
    acl_principals ids;
    sqlite3_stmt *s;
    int rc;

    *bits = NULL;
    *nbits = 0;
    if (stmt_get(db, sql, &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
    if ((rc = acl__collect(s, &ids, err)))
        return rc;
    rc = ids_bitmap(&ids, bits, nbits, err);
    acl_principals_free(&ids);
    return rc;
}

/* ---- the best L candidates: a min-heap on (score, id) ------------------ */

static void heap_sift_down(heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        cand t;
        if (l < h->n && search__cand_less(&h->v[l], &h->v[m]))
            m = l;
        if (r < h->n && search__cand_less(&h->v[r], &h->v[m]))
            m = r;
        if (m == i)
            return;
        t = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = t;
        i = m;
    }
}

static void heap_push(heap *h, cand c)
{
    size_t i;
    if (h->n == h->cap) {
        if (!search__cand_less(&h->v[0], &c))
            return;
        h->v[0] = c;
        heap_sift_down(h, 0);
        return;
    }
    for (i = h->n++; i > 0 && search__cand_less(&c, &h->v[(i - 1) / 2]); i = (i - 1) / 2)
        h->v[i] = h->v[(i - 1) / 2];
    h->v[i] = c;
}

/* heap_sort - best first; the heap is used up. */
static void heap_sort(heap *h)
{
    size_t n = h->n;
    while (h->n > 1) {
        cand t = h->v[0];
        h->v[0] = h->v[--h->n];
        h->v[h->n] = t;
        heap_sift_down(h, 0);
    }
    h->n = n;
}

/* One pass over a MATCH: what to walk, and what it found. */
typedef struct pass {
    const char *match;
    int64_t lo, hi;         /* only rowids in [lo, hi] */
    int64_t window;         /* > 0: newest first, stop after this many readable rows */
    int64_t seen;           /* out: readable rows scored */
    int windowed;           /* out: the window cut it short */
    int64_t *ids;           /* if record: the readable rows' ids, in walk order */
    size_t nids, capids;
    int record;
} pass;

/* record_id - append id to p's ids: 0, or CTX_ENOMEM. */
static int record_id(pass *p, int64_t id)
{
    if (p->nids == p->capids) {
        size_t cap = p->capids ? p->capids * 2 : 256;
        int64_t *v = ctx_realloc(p->ids, cap * sizeof *v);
        if (!v)
            return CTX_ENOMEM;
        p->ids = v;
        p->capids = cap;
    }
    p->ids[p->nids++] = id;
    return CTX_OK;
}

/* heap_push_cb - rank_map_pass's way into a heap: a row scoring under the
 * heap's least, once it is full, cannot enter. */
static double heap_push_cb(void *arg, int64_t id, double score)
{
    heap *h = arg;
    heap_push(h, (cand){score, id});
    return h->n == h->cap && h->cap ? h->v[0].score : -INFINITY;
}

/* run_pass - score every row of p's MATCH that the caller may read into h. */
static int run_pass(sqlite3 *db, rank_conn *rc, pass *p, rank_query *q, heap *h,
                    ctx_error *err)
{
    sqlite3_stmt *s;
    int step, ok;

    /*
     * Newest first only when a window may cut the pass short: FTS5 reads a
     * term's whole doclist to walk it backwards, where a forward walk skips
     * through it to the rows the rest of the expression allows. Without a
     * window the order changes nothing (ties break on the chunk id).
     */
    if (stmt_get(db,
                 p->window > 0 ? "SELECT rowid, ctx_rank(chunks_fts, ?2) FROM chunks_fts"
                                 " WHERE chunks_fts MATCH ?1 AND rowid BETWEEN ?3 AND ?4"
                                 " ORDER BY rowid DESC"
                               : "SELECT rowid, ctx_rank(chunks_fts, ?2) FROM chunks_fts"
                                 " WHERE chunks_fts MATCH ?1 AND rowid BETWEEN ?3 AND ?4",
                 &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, p->match, -1, SQLITE_STATIC);
    sqlite3_bind_pointer(s, 2, q, RANK_QUERY_PTR, NULL);
    sqlite3_bind_int64(s, 3, p->lo);
    sqlite3_bind_int64(s, 4, p->hi);
    memset(q->pos, 0, sizeof q->pos);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        cand c;
        if (sqlite3_column_type(s, 1) == SQLITE_NULL)
            continue; /* not the caller's to read */
        c.id = sqlite3_column_int64(s, 0);
        c.score = sqlite3_column_double(s, 1);
        /* ctx_rank decided rows the map knows; the rest are asked here. */
        if ((ok = rank_chunk_ok(rc, q, c.id, err)) <= 0) {
            if (ok < 0) {
                stmt_put(s);
                return -ok;
            }
            continue;
        }
        if (p->record && record_id(p, c.id)) {
            stmt_put(s);
            return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
        }
        if (!q->collect)
            heap_push(h, c);
        if (++p->seen == p->window) {
            p->windowed = 1;
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
        stmt_put(s);
        return CTX_ESTORE;
    }
    stmt_put(s);
    return CTX_OK;
}

/*
 * Fill q's terms: those whose bit is in mask, in order; a term with a
 * frequency map in maps (NULL: none) is scored from it, the others from
 * the phrases from first_phrase on.
 */
static void query_terms(rank_query *q, const qterms *t, uint32_t mask, int first_phrase,
                        const rank_tfmap *const *maps)
{
    q->first_phrase = first_phrase;
    q->nterms = 0;
    for (size_t i = 0; i < t->n; i++)
        if (mask >> i & 1) {
            q->map[q->nterms] = maps ? maps[i] : NULL;
            q->idf[q->nterms++] = t->t[i].idf;
        }
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return ctx_strdup(t ? (const char *)t : "");
}

void search_hit_clear(search_hit *h)
{
    ctx_free(h->source);
    ctx_free(h->title);
    ctx_free(h->url);
    ctx_free(h->text);
    h->source = h->title = h->url = h->text = NULL;
}

/* grow_hits - room for one more hit in out (*cap slots so far); 0 when out of memory. */
static int grow_hits(search_result *out, size_t *cap)
{
    size_t c = *cap ? *cap * 2 : 16;
    search_hit *v = ctx_realloc(out->hits, c * sizeof *v);
    if (!v)
        return 0;
    out->hits = v;
    *cap = c;
    return 1;
}

int search__hit(sqlite3 *db, search_hit *h, int ids_only, int64_t *acl_id, ctx_error *err)
{
    sqlite3_stmt *s;
    int step;

    if (stmt_get(db, ids_only ? hit_id_sql : hit_sql, &s) != SQLITE_OK)
        return -ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(s, 1, h->chunk_id);
    if ((step = sqlite3_step(s)) != SQLITE_ROW) {
        stmt_put(s);
        if (step == SQLITE_DONE)
            return 0;
        return -ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
    }
    h->doc_id = sqlite3_column_int64(s, 0);
    if (acl_id)
        *acl_id = sqlite3_column_int64(s, 1);
    if (!ids_only) {
        h->acl_synced_at = sqlite3_column_int64(s, 2);
        search_hit_clear(h);
        if (!(h->source = col_dup(s, 3)) || !(h->title = col_dup(s, 4)) ||
            !(h->url = col_dup(s, 5)) || !(h->text = col_dup(s, 6))) {
            search_hit_clear(h);
            stmt_put(s);
            return -ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
        }
    }
    stmt_put(s);
    return 1;
}

void search_result_free(search_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        search_hit_clear(&r->hits[i]);
    ctx_free(r->hits);
    r->hits = NULL;
    r->n = 0;
}

/*
 * fetch_hits - the candidates in h (best first) whose documents are live, at
 * most per_doc per document, up to k; with their shown fields unless ids_only;
 * ids_only 2 (ranks only): the first k as they are, nothing read.
 */
static int fetch_hits(sqlite3 *db, const heap *h, int k, int per_doc, int ids_only,
                      search_result *out, ctx_error *err)
{
    size_t cap = 0;

    if (ids_only > 1) { /* ranks only: nothing is read */
        size_t n = h->n < (size_t)k ? h->n : (size_t)k;
        if (n && !(out->hits = ctx_calloc(n, sizeof *out->hits)))
            return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
        for (; out->n < n; out->n++) {
            out->hits[out->n].chunk_id = h->v[out->n].id;
            out->hits[out->n].score = h->v[out->n].score;
        }
        return CTX_OK;
    }

    for (size_t i = 0; i < h->n && (int)out->n < k; i++) {
        search_hit hit = {.chunk_id = h->v[i].id, .score = h->v[i].score};
        size_t same = 0;
        int got = search__hit(db, &hit, ids_only, NULL, err);

        if (got < 0)
            return -got;
        if (!got)
            continue; /* its document was deleted */
        for (size_t j = 0; per_doc && j < out->n; j++)
            same += out->hits[j].doc_id == hit.doc_id;
        if ((per_doc && (int)same >= per_doc) || (out->n == cap && !grow_hits(out, &cap))) {
            search_hit_clear(&hit);
            if (per_doc && (int)same >= per_doc)
                continue;
            return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
        }
        out->hits[out->n++] = hit;
    }
    return CTX_OK;
}


/* What every pass of one search shares. */
typedef struct plan {
    sqlite3 *db;
    rank_conn *rc;
    const qterms *terms;
    uint32_t rare, all;             /* term bit masks */
    const int64_t *allow;           /* allow tokens for the MATCH, if it holds them */
    size_t nallow;
    rank_query *q;
    double ceiling;                 /* most a row of common terms only can score */
    int64_t window;
    /* mapped: every common term has a frequency map (in maps[]);
     * rare_mapped: every term has one */
    int mapped, rare_mapped;
    const rank_tfmap *maps[MAX_TERMS];
    int64_t upto;                   /* the maps hold every chunk id <= upto */
    char *match;
    const rank_collect *small;      /* a small reader's rows (small_collect), or NULL */
    int by_readable;                /* rank the caller's own rows (rank_readable_pass) */
} plan;

/* walk - run p over shape's MATCH, scoring the terms in mask (from maps if use_maps). */
static int walk(plan *pl, enum match_shape shape, uint32_t mask, int first_phrase,
                int use_maps, pass *p, heap *h, ctx_error *err)
{
    const rank_tfmap *common[MAX_TERMS] = {NULL};

    ctx_free(pl->match);
    if (build_match(pl->terms, shape, pl->rare, pl->allow, pl->nallow, NULL, 0, &pl->match))
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    /* A term ctx_rank scores from a map is no phrase of the MATCH, and
     * every MATCH here names the rare terms. */
    for (size_t i = 0; i < pl->terms->n; i++)
        if (!(pl->rare >> i & 1))
            common[i] = pl->maps[i];
    query_terms(pl->q, pl->terms, mask, first_phrase, use_maps ? common : NULL);
    p->match = pl->match;
    return run_pass(pl->db, pl->rc, p, pl->q, h, err);
}

/*
 * map_rare_pass - the rows up to upto holding a rare term, from the maps
 * (every term has one), scored on every term. A row that cannot enter the
 * heap is not scored; the common pass then leaves out every row holding a
 * rare term by the rare terms' maps.
 */
static int map_rare_pass(plan *pl, heap *h, ctx_error *err)
{
    rank_query mq = *pl->q;
    int64_t n;

    query_terms(&mq, pl->terms, pl->all, 0, pl->maps);
    if ((n = rank_map_pass(pl->rc, &mq, pl->rare, 0, NULL, 0, 0, heap_push_cb, h, err)) < 0)
        return (int)-n;
    return CTX_OK;
}

/*
 * small_collect - for a caller who reads little, with their principals in
 * the MATCH and no source filter: one walk over every row they may read
 * that holds a term (up to the chunk map's loaded, as the statistics),
 * each kept with its length and every term's frequency (pl->q's terms are
 * all the terms, from phrase 0). Counted over those rows, each term's df is
 * over exactly the readable chunks, without a walk of a common word's
 * whole doclist; rank_into then scores the rows from memory.
 */
static int small_collect(plan *pl, int64_t upto, rank_collect *c, ctx_error *err)
{
    pass p = {.hi = upto};
    heap none = {NULL, 0, 0};
    int rc;

    ctx_free(pl->match);
    if (build_match(pl->terms, SHAPE_ALL, pl->rare, pl->allow, pl->nallow, NULL, 0, &pl->match))
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    query_terms(pl->q, pl->terms, pl->all, 0, NULL);
    p.match = pl->match;
    pl->q->collect = c;
    rc = run_pass(pl->db, pl->rc, &p, pl->q, &none, err);
    pl->q->collect = NULL;
    return rc;
}

/* all_kept - does the connection keep df counts (or a map) for every term? */
static int all_kept(const rank_conn *rc, const qterms *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (!rank_df_kept(rc, t->t[i].word))
            return 0;
    return 1;
}

/*
 * rank_into - fill h with the best rows (see the plan below). With maps,
 * every walk stops at upto, the rows past it (committed since the maps
 * were read) are walked the old way, and the rows of common terms only
 * come from the maps, without FTS5; when the rare terms have maps too, so
 * do the rows that hold one.
 */
static int rank_into(plan *pl, heap *h, int *windowed, int *rare_only, ctx_error *err)
{
    pass rp = {.hi = INT64_MAX}, tail = {.hi = INT64_MAX}, cp = {.hi = INT64_MAX};
    int64_t n, seq = 0;
    int rc, past = 1; /* rows past upto may exist */

    *windowed = *rare_only = 0;
    if (pl->small) { /* every readable row holding a term is at hand */
        const rank_collect *c = pl->small;
        for (size_t r = 0; r < c->n; r++)
            heap_push(h, (cand){rank_score(pl->q, &c->freq[r * (size_t)pl->q->nterms],
                                           c->lens[r]),
                                c->ids[r]});
        return CTX_OK;
    }
    if (pl->by_readable) { /* every term has a map: the caller's rows from them */
        rank_query mq = *pl->q;
        query_terms(&mq, pl->terms, pl->all, 0, pl->maps);
        if ((n = rank_readable_pass(pl->rc, &mq, heap_push_cb, h, err)) < 0)
            return (int)-n;
        if ((rc = rank_chunks_seq(pl->rc, &seq, err)))
            return rc;
        tail.lo = pl->upto + 1;
        return seq > pl->upto ? walk(pl, SHAPE_ALL, pl->all, 0, 0, &tail, h, err) : CTX_OK;
    }
    if (pl->rare == pl->all && !pl->rare_mapped)
        return walk(pl, SHAPE_ALL, pl->all, 0, 0, &rp, h, err);
    /* With maps, the walks past upto are for rows committed since the maps
     * were read; a walk that starts past every row still costs FTS5 a seek
     * through each doclist, so skip them when there are none. */
    if (pl->mapped && (rc = rank_chunks_seq(pl->rc, &seq, err)))
        return rc;
    past = !pl->mapped || seq > pl->upto;
    if (pl->rare) {
        /* Rows with a rare term, scored on every term. */
        if (pl->rare_mapped) {
            if ((rc = map_rare_pass(pl, h, err)))
                goto out;
            tail.lo = pl->upto + 1;
        } else if (pl->mapped) {
            rp.hi = pl->upto;
            rp.record = 1;
            if ((rc = walk(pl, SHAPE_RARE_ONLY, pl->all, 0, 1, &rp, h, err)))
                goto out;
            tail.lo = pl->upto + 1;
        }
        if (past && (rc = pl->rare == pl->all
                              ? walk(pl, SHAPE_ALL, pl->all, 0, 0, &tail, h, err)
                              : walk(pl, SHAPE_RARE, pl->all, __builtin_popcount(pl->rare), 0,
                                     &tail, h, err)))
            goto out;
        if (pl->rare == pl->all)
            goto out; /* every row holds a rare term */
        /* Then rows with common terms only, unless none can enter. */
        if ((*rare_only = h->n == h->cap && h->v[0].score > pl->ceiling)) {
            rc = CTX_OK;
            goto out;
        }
    }
    cp.window = pl->window;
    cp.lo = pl->mapped ? pl->upto + 1 : 0;
    if (past && (rc = walk(pl, pl->rare ? SHAPE_COMMON : SHAPE_ALL, pl->all & ~pl->rare, 0, 0,
                           &cp, h, err)))
        goto out;
    *windowed = cp.windowed;
    if (pl->mapped && !cp.windowed) {
        int64_t left = pl->window > 0 ? pl->window - cp.seen : 0;
        rank_query mq = *pl->q;
        uint32_t drive;
        /* Rows holding a rare term were ranked above: with every term
         * mapped, the rare terms' maps say which; else the walk's ids. */
        if (pl->rare_mapped) {
            query_terms(&mq, pl->terms, pl->all, 0, pl->maps);
            drive = pl->all & ~pl->rare;
        } else {
            query_terms(&mq, pl->terms, pl->all & ~pl->rare, 0, pl->maps);
            drive = (1u << mq.nterms) - 1;
        }
        if ((n = rank_map_pass(pl->rc, &mq, drive, pl->rare_mapped ? pl->rare : 0, rp.ids,
                               rp.nids, left, heap_push_cb, h, err)) < 0)
            rc = (int)-n;
        else
            *windowed = left > 0 && n == left;
    }
out:
    ctx_free(rp.ids);
    return rc;
}

/*
 * The plan, in short (bench/README.md has the measurements behind it):
 *
 *  1. Resolve the caller to principals, and keep those some ACL names.
 *  2. ctx_rank() drops each candidate whose ACL set is not readable (the
 *     chunk map's bitmap) before scoring it. With few principals, their
 *     allow tokens also go into the MATCH, so FTS5 only visits rows that
 *     name one of them.
 *  3. Every statistic (N, mean length, df, so the IDFs and the common/rare
 *     split) is over the readable chunks (rank_stats.c). A caller who reads
 *     little (principals in the MATCH, no source filter, at most
 *     1/SMALL_READER of the chunks) walks their rows once, keeping each
 *     row's frequencies: df is counted from those rows and the rows are
 *     scored from memory, so steps 4 and 5 are not needed.
 *  4. Rare terms (in at most 1/COMMON_DIV of the readable chunks) bound the work
 *     (MaxScore): rank every readable row holding a rare term first. A row
 *     with common terms only scores at most the sum of their BM25 ceilings,
 *     so when the L-th best already beats that, no such row can enter and
 *     the answer is exact. Otherwise those rows are ranked too, newest first
 *     and, when a window is set, only the newest `window` readable ones: a
 *     word in most chunks carries almost no IDF, and ranking all of them
 *     costs more than it tells.
 *  5. A common term with a frequency map (rank.h) is scored from it and is
 *     left out of the MATCH, and the rows of common terms only come from
 *     the maps; rows committed after the maps were read are walked the
 *     FTS5 way.
 */
static int lexical(sqlite3 *db, const char *user, qterms *terms, const search_opts *opts,
                   search_result *out, lex_state *st, ctx_error *err)
{
    acl_access acc;
    rank_query rq;
    rank_conn *rconn;
    heap h = {NULL, 0, 0};
    char *srcs = NULL;
    uint8_t *readable = NULL, *srcbits = NULL;
    int64_t nreadable = 0, nsrcbits = 0, nrows = 0, window;
    int k = opts && opts->k > 0 ? opts->k : 10, per_doc = opts ? opts->per_doc : 0;
    int aggregate = per_doc == 1 && opts->doc_decay > 0;
    int max_match = opts && opts->match_principals_max > 0 ? opts->match_principals_max
                                                          : MATCH_PRINCIPALS_MAX;
    uint32_t rare = 0, all;
    double ceiling = 0;
    size_t limit, i;
    int rc, acl_in_match;
    rank_collect small = {NULL, NULL, NULL, 0, 0};
    plan pl;

    memset(out, 0, sizeof *out);
    memset(&rq, 0, sizeof rq);
    memset(&pl, 0, sizeof pl);
    window = opts && opts->rank_window ? opts->rank_window : SEARCH_RANK_WINDOW;
    if (k > 1000)
        k = 1000;
    rc = acl_access_get(db, user, &acc, err);
    if (rc == CTX_ENOTFOUND)
        rc = CTX_OK; /* fail closed, and say nothing about why */
    if (rc || !acc.allow.n)
        goto done; /* or no document allows any of their principals */
    if (!terms->n)
        goto done;
    all = (uint32_t)((1ull << terms->n) - 1);
    if (!(rconn = rank_attach(db, err))) {
        rc = err ? err->code : CTX_ESTORE;
        goto done;
    }
    /* A label filter is a property of ACL sets: only the bitmap knows it. */
    acl_in_match = acc.allow.n <= (size_t)max_match && !(opts && opts->labels);
    {
        acl_principals sets = {NULL, 0};
        if (opts && opts->labels &&
            (rc = acl_readable_filter(db, &acc.readable, opts->labels, &sets, err)))
            goto done;
        rc = ids_bitmap(opts && opts->labels ? &sets : &acc.readable, &readable, &nreadable,
                        err);
        acl_principals_free(&sets);
        if (rc)
            goto done;
        if (!readable)
            goto done; /* all they are allowed is denied to them, or filtered */
    }
    if (opts && opts->nsources) {
        json_t *a = json_array();
        for (i = 0; a && i < opts->nsources; i++)
            if (json_array_append_new(a, json_string(opts->sources[i]))) {
                json_decref(a); /* a source left out would narrow the answer */
                a = NULL;
            }
        srcs = a ? ctx_json_text(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!srcs)
            goto oom;
        if ((rc = id_bitmap(db, sources_sql, srcs, &srcbits, &nsrcbits, err)))
            goto done;
        if (!srcbits)
            goto done; /* none of the named sources exists */
    }
    if ((rc = rank_chunks_load(rconn, err)))
        goto done;

    rank_tfmap_begin(rconn); /* the chunk map was loaded above */

    /*
     * IDFs, the mean length and which terms are rare: over the chunks the
     * caller may read (the readable bitmap, label filter included), so no
     * score and no order moves when a chunk they cannot read comes or goes.
     * The sources a request names narrow the rows, not the statistics.
     */
    rank_readable_totals(rconn, readable, nreadable, &nrows, &rq.avg);
    if (st) { /* for the expansion, which counts its words over the same chunks */
        st->rc = rconn;
        st->readable = readable;
        st->nreadable = nreadable;
        st->nrows = nrows;
    }
    rq.readable = readable;
    rq.nreadable = nreadable;
    rq.sources = srcbits;
    rq.nsources = nsrcbits;
    rq.rc = rconn;
    pl.db = db;
    pl.rc = rconn;
    pl.terms = terms;
    pl.all = all;
    pl.q = &rq;
    if (acl_in_match) {
        pl.allow = acc.allow.ids;
        pl.nallow = acc.allow.n;
    }
    /* A window the readable chunks cannot fill cuts nothing; without one a
     * pass walks the doclists forward. */
    pl.window = window > 0 && nrows <= window ? 0 : window;
    /* When the connection keeps counts (or a map) for every term, the
     * usual plan with its maps is cheaper than walking every term. */
    if (acl_in_match && !srcbits && pl.window <= 0 &&
        nrows * SMALL_READER <= rank_mapped_rows(rconn) && !all_kept(rconn, terms)) {
        if ((rc = small_collect(&pl, rank_mapped_upto(rconn), &small, err)))
            goto done;
        pl.small = &small;
    }
    for (i = 0; i < terms->n; i++) {
        int64_t df = 0, df_all = 0;
        if (pl.small && !rank_df_kept(rconn, terms->t[i].word)) {
            /* the same count as the kept one, from the rows at hand */
            for (size_t r = 0; r < small.n; r++)
                df += small.freq[r * terms->n + i] != 0;
            terms->t[i].idf = rank_idf(nrows, df) * terms->t[i].weight;
            continue;
        }
        /* A caller who reads little and whose principals go into the MATCH,
         * kept off the walk above by a source filter or a window, counts a
         * word the connection keeps no counts for over their own rows: a
         * common word's whole doclist is a hundred times longer. */
        if (acl_in_match && nrows * SMALL_READER <= rank_mapped_rows(rconn) &&
            !rank_df_kept(rconn, terms->t[i].word)) {
            char *m;
            if (build_match(terms, SHAPE_RARE_ONLY, 1u << i, acc.allow.ids, acc.allow.n, NULL,
                            0, &m))
                goto oom;
            rc = rank_match_df(rconn, m, readable, nreadable, &df, err);
            ctx_free(m);
        } else {
            /* never counted: one walk gives its map and its counts */
            if (!(opts && opts->tfmaps < 0) && !rank_df_kept(rconn, terms->t[i].word) &&
                (rc = rank_tfmap_prebuild(rconn, terms->t[i].word, err)))
                goto done;
            rc = rank_readable_df(rconn, terms->t[i].word, readable, nreadable, &df, &df_all,
                                  err);
        }
        if (rc)
            goto done;
        terms->t[i].idf = rank_idf(nrows, df) * terms->t[i].weight;
        terms->t[i].df = df_all;
        terms->t[i].common = df * COMMON_DIV > nrows;
        if (!terms->t[i].common)
            rare |= 1u << i;
        else
            ceiling += terms->t[i].idf * (RANK_K1 + 1.0);
    }

    pl.rare = rare;
    pl.ceiling = ceiling;
    if (pl.small)
        query_terms(&rq, terms, all, 0, NULL); /* the IDFs are known now */

    /*
     * Common terms scored from frequency maps: a MATCH that names a common
     * term steps through its whole doclist, even where the rest of the
     * expression allows a few hundred rows.
     */
    if (!(opts && opts->tfmaps < 0)) {
        /* A small reader's searches count towards its words' maps, but it
         * never pays for a build: that walks a common word's whole doclist,
         * many times their own rows, which the small reader's walk covers. */
        if (acl_in_match && nrows * SMALL_READER <= rank_mapped_rows(rconn))
            rank_tfmap_hold(rconn);
        pl.mapped = pl.rare_mapped = 1;
        pl.upto = rank_mapped_upto(rconn); /* lowered by a map that covers less */
        for (i = 0; i < terms->n; i++) {
            if ((rc = rank_tfmap_get(rconn, terms->t[i].word, terms->t[i].df, &pl.maps[i],
                                     &pl.upto, err)))
                goto done;
            if (!pl.maps[i] && terms->t[i].common)
                pl.mapped = 0;
            if (!pl.maps[i])
                pl.rare_mapped = 0;
        }
        rq.upto = pl.upto;
        if (rare == all)
            pl.mapped = pl.rare_mapped; /* no common term: a map pass or none */
        if (pl.small)
            pl.mapped = pl.rare_mapped = 0;
        /* A caller whose rows are fewer than the rows holding the terms
         * ranks their own rows, each looked up in every map. Only where no
         * window cuts the other plan: both are then exact and give the
         * same answer, so the choice, which counts rows the caller may not
         * read, moves nothing they see. */
        if (pl.rare_mapped && pl.window <= 0 && rank_by_acl(rconn)) {
            int64_t holding = 0;
            for (i = 0; i < terms->n; i++)
                holding += terms->t[i].df;
            pl.by_readable = nrows * (int64_t)terms->n * READABLE_LOOKUP_COST < holding;
        }
    }

    /* Collapsing chunks per document may need more rows than k: rank a few
     * times k and widen when that was not enough. */
    limit = per_doc ? (size_t)k * 4 + 8 : (size_t)k;
    if (opts && opts->proximity > 0 && limit < PROX_DEPTH)
        limit = PROX_DEPTH; /* room to move up */
    if (aggregate && limit < AGG_DEPTH)
        limit = AGG_DEPTH; /* a document's other chunks */
    for (;;) {
        int windowed, rare_only;
        size_t ranked;
        cand *v;

        if (!(v = ctx_realloc(h.v, limit * sizeof *v)))
            goto oom;
        h.v = v;
        h.n = 0;
        h.cap = limit;
        search_result_free(out);
        if ((rc = rank_into(&pl, &h, &windowed, &rare_only, err)))
            goto done;
        heap_sort(&h);
        if (opts && opts->proximity > 0 &&
            (rc = search__proximity(db, rconn, terms, opts->proximity, &h, err)))
            goto done;
        ranked = h.n;
        if (aggregate && (rc = search__aggregate(db, opts->doc_decay, &h, err)))
            goto done;
        if ((rc = fetch_hits(db, &h, k, per_doc,
                             opts && opts->ranks_only && !per_doc ? 2 : opts && opts->ids_only,
                             out, err)))
            goto done;
        out->rare_only = rare_only;
        out->windowed = windowed;
        out->mapped = pl.mapped;
        out->rare_mapped = pl.rare_mapped && rare;
        out->by_readable = pl.by_readable;
        if ((int)out->n >= k || ranked < h.cap || limit >= (size_t)1 << 20)
            break;
        limit *= 8;
    }
    rc = CTX_OK;
    goto done;
oom:
    rc = ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
done:
    if (rc)
        search_result_free(out);
    ctx_free(h.v);
    ctx_free(pl.match);
    ctx_free(small.ids);
    ctx_free(small.lens);
    ctx_free(small.freq);
    if (!st || st->readable != readable) /* else it is the state's now */
        ctx_free(readable);
    ctx_free(srcbits);
    free(srcs);
    acl_access_free(&acc);
    return rc;
}

int search_lexical(sqlite3 *db, const char *user, const char *query,
                   const search_opts *opts, search_result *out, ctx_error *err)
{
    qterms terms = {.n = 0};
    lex_state st = {NULL, NULL, 0, 0};
    search_result fb = {NULL, 0};
    search_opts first;
    int rc;

    memset(out, 0, sizeof *out);
    if (parse_terms(query ? query : "", &terms))
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    if (!opts || opts->expand.terms <= 0) {
        rc = lexical(db, user, &terms, opts, out, NULL, err);
        goto done;
    }
    /* The first answer, a chunk per document: what the caller may read
     * and the query finds best. */
    first = *opts;
    first.k = opts->expand.docs > 0 ? opts->expand.docs : 10;
    first.per_doc = 1;
    first.ids_only = 1;
    if ((rc = lexical(db, user, &terms, &first, &fb, &st, err)))
        goto done;
    if (fb.n && st.readable && (rc = search__expand(db, &st, &fb, &opts->expand, &terms, err)))
        goto done;
    rc = lexical(db, user, &terms, opts, out, NULL, err);
done:
    search_result_free(&fb);
    ctx_free(st.readable);
    qterms_free(&terms);
    return rc;
}

search_expand search_expand_of(const ctx_search_cfg *cfg)
{
    search_expand x = {(int)cfg->expand_terms, (int)cfg->expand_docs, cfg->expand_weight};
    return x;
}

void search_opts_config(search_opts *so, const ctx_search_cfg *cfg)
{
    so->expand = search_expand_of(cfg);
    so->proximity = cfg->proximity;
    so->doc_decay = cfg->doc_decay;
}
