/*
 * rank_stats.c - the statistics behind a BM25 score, over the chunks the
 * caller may read: their number and mean length (a sum of per-ACL-set
 * counters the chunk map keeps) and a word's document frequency (a sum of
 * its per-ACL-set counts, kept per word); and all of it ahead of the
 * requests: the warm-up (rank_warm) and the copy of a warm state to
 * another connection (rank_copy). See rank.h.
 */
#include "rank_int.h"

#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/stmt.h"

/*
 * The counts kept per word: at most this many (ACL set, count) pairs in
 * all (8 bytes each) and this many words; past either, the words asked for
 * least recently are forgotten (and counted again when asked for).
 */
#define DF_PAIRS_BUDGET ((size_t)1 << 23)
#define DF_WORDS_MAX ((size_t)1 << 16)

struct rank_dftab {
    char *word;
    int32_t *acl;               /* ACL set ids, in no order */
    int32_t *n;                 /* the word's chunks in each */
    size_t len, cap;
    int64_t all;                /* the sum of n */
    int64_t upto;               /* counts every mapped chunk id <= upto */
    uint64_t epoch;             /* the chunk map's epoch they were counted in */
    uint64_t used;              /* the tick of the last search that asked */
};

static void dftab_free(rank_dftab *t)
{
    if (!t)
        return;
    ctx_free(t->word);
    ctx_free(t->acl);
    ctx_free(t->n);
    ctx_free(t);
}

void rank__dftabs_free(rank_conn *rc)
{
    for (size_t i = 0; i < rc->ndfs; i++)
        dftab_free(rc->dfs[i]);
    ctx_free(rc->dfs);
    ctx_free(rc->dfslot);
    rc->dfs = NULL;
    rc->dfslot = NULL;
    rc->ndfs = rc->capdfs = rc->ndfslot = rc->dfpairs = 0;
}

/* ---- totals ------------------------------------------------------------ */

void rank_readable_totals(const rank_conn *rc, const uint8_t *readable, int64_t nreadable,
                          int64_t *rows, double *avg)
{
    int64_t n = 0, tokens = 0, top = nreadable < rc->nacl ? nreadable : rc->nacl;

    for (int64_t byte = 0; byte * 8 < top; byte++) {
        unsigned bits = readable[byte];
        while (bits) {
            int64_t acl = byte * 8 + __builtin_ctz(bits);
            bits &= bits - 1;
            if (acl < top) {
                n += rc->acl_rows[acl];
                tokens += rc->acl_tokens[acl];
            }
        }
    }
    *rows = n;
    /* FTS5's mean, from a row count and a token total (as bm25() takes them) */
    *avg = n > 0 && tokens > 0 ? (double)tokens / (double)n : 1.0;
}

/* ---- the tables, by word ----------------------------------------------- */

/* reindex - rebuild the open-addressing index over dfs[] with nslot slots. */
static int reindex(rank_conn *rc, size_t nslot)
{
    uint32_t *slot = ctx_calloc(nslot, sizeof *slot);

    if (!slot)
        return CTX_ENOMEM;
    for (size_t i = 0; i < rc->ndfs; i++) {
        size_t j = rank__word_hash(rc->dfs[i]->word) & (nslot - 1);
        while (slot[j])
            j = (j + 1) & (nslot - 1);
        slot[j] = (uint32_t)i + 1;
    }
    ctx_free(rc->dfslot);
    rc->dfslot = slot;
    rc->ndfslot = nslot;
    return CTX_OK;
}

/* dftab_find - word's table, a new empty one if it has none; NULL if out of memory. */
static rank_dftab *dftab_find(rank_conn *rc, const char *word)
{
    rank_dftab *t;
    size_t j;

    if (rc->ndfslot) {
        for (j = rank__word_hash(word) & (rc->ndfslot - 1); rc->dfslot[j];
             j = (j + 1) & (rc->ndfslot - 1))
            if (!strcmp(rc->dfs[rc->dfslot[j] - 1]->word, word))
                return rc->dfs[rc->dfslot[j] - 1];
    }
    if (rc->ndfs == rc->capdfs) {
        size_t cap = rc->capdfs ? rc->capdfs * 2 : 64;
        rank_dftab **v = ctx_realloc(rc->dfs, cap * sizeof *v);
        if (!v)
            return NULL;
        rc->dfs = v;
        rc->capdfs = cap;
    }
    if ((rc->ndfs + 1) * 2 > rc->ndfslot && reindex(rc, rc->ndfslot ? rc->ndfslot * 2 : 128))
        return NULL;
    if (!(t = ctx_calloc(1, sizeof *t)) || !(t->word = ctx_strdup(word))) {
        dftab_free(t);
        return NULL;
    }
    t->epoch = rc->epoch;
    rc->dfs[rc->ndfs++] = t;
    for (j = rank__word_hash(word) & (rc->ndfslot - 1); rc->dfslot[j];
         j = (j + 1) & (rc->ndfslot - 1))
        ;
    rc->dfslot[j] = (uint32_t)rc->ndfs;
    return t;
}

static int by_used(const void *a, const void *b)
{
    const rank_dftab *x = *(rank_dftab *const *)a, *y = *(rank_dftab *const *)b;
    return (x->used > y->used) - (x->used < y->used);
}

/*
 * evict - when over a budget, forget the tables asked for least recently
 * (never one the current search asked for) until under 3/4 of it.
 */
static void evict(rank_conn *rc)
{
    size_t keep = 0;

    if (rc->dfpairs <= DF_PAIRS_BUDGET && rc->ndfs <= DF_WORDS_MAX)
        return;
    qsort(rc->dfs, rc->ndfs, sizeof *rc->dfs, by_used);
    for (size_t i = 0; i < rc->ndfs; i++) {
        rank_dftab *t = rc->dfs[i];
        if (t->used != rc->tick && (rc->dfpairs > DF_PAIRS_BUDGET / 4 * 3 ||
                                    rc->ndfs - i + keep > DF_WORDS_MAX / 4 * 3)) {
            rc->dfpairs -= t->len;
            dftab_free(t);
        } else {
            rc->dfs[keep++] = t;
        }
    }
    rc->ndfs = keep;
    /* Out of memory here leaves no index: the next search builds one. */
    if (reindex(rc, rc->ndfslot ? rc->ndfslot : 128)) {
        rank__dftabs_free(rc);
    }
}

/* ---- counting ---------------------------------------------------------- */

/* What a count fills: rc->scratch per ACL set, and the sets it touched. */
typedef struct df_count {
    rank_conn *rc;
    int64_t lo, hi;             /* chunk ids in (lo, hi] */
    int32_t *touched;
    size_t n, cap;
    int any_column;             /* the MATCH may find rows by a permission column */
} df_count;

#define DF_COUNT_PTR "ctxgate_df_count"

/* count_row - count mapped chunk id in; 0, or CTX_ENOMEM. */
static int count_row(df_count *c, int64_t id)
{
    rank_conn *rc = c->rc;
    int32_t acl;

    if (id <= c->lo || id > c->hi || !(acl = rank__cmap_acl(&rc->map, id)))
        return CTX_OK; /* outside the range, deleted, or never mapped */
    if (rc->scratch[acl]++)
        return CTX_OK;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        int32_t *v = ctx_realloc(c->touched, cap * sizeof *v);
        if (!v)
            return CTX_ENOMEM;
        c->touched = v;
        c->cap = cap;
    }
    c->touched[c->n++] = acl;
    return CTX_OK;
}

static int df_collect(const Fts5ExtensionApi *api, Fts5Context *fts, void *arg)
{
    df_count *c = arg;
    int64_t id = api->xRowid(fts);
    Fts5PhraseIter it;
    int col, off;

    if (id <= c->lo || id > c->hi)
        return SQLITE_OK;
    if (c->any_column) {
        /* a hit in the title or the text, not only in a permission column */
        if (api->xPhraseFirst(fts, 0, &it, &col, &off) != SQLITE_OK)
            return SQLITE_OK;
        while (col > 1)
            api->xPhraseNext(fts, &it, &col, &off);
        if (col < 0)
            return SQLITE_OK;
    }
    return count_row(c, id) ? SQLITE_NOMEM : SQLITE_OK;
}

/*
 * ctx_dfcount(chunks_fts, count) - on a row of a MATCH of one word, walk
 * that word's whole doclist inside FTS5 (xQueryPhrase: no SQL step per
 * row) and count its rows in (lo, hi] per ACL set.
 */
void rank__dfcount_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
                      int nval, sqlite3_value **val)
{
    df_count *c = nval == 1 ? sqlite3_value_pointer(val[0], DF_COUNT_PTR) : NULL;
    int r;

    if (!c) {
        sqlite3_result_error(ctx, "ctx_dfcount: expected (chunks_fts, count pointer)", -1);
        return;
    }
    r = api->xQueryPhrase(fts, 0, c, df_collect);
    if (r != SQLITE_OK && r != SQLITE_DONE)
        sqlite3_result_error_code(ctx, r);
}

/* count_map - count the rows of word's frequency map m in (c->lo, c->hi]. */
static int count_map(df_count *c, const rank_tfmap *m)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) { /* the first id past c->lo */
        size_t mid = lo + (hi - lo) / 2;
        if ((int64_t)m->ids[mid] <= c->lo)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < m->n && (int64_t)m->ids[lo] <= c->hi; lo++)
        if (count_row(c, m->ids[lo]))
            return CTX_ENOMEM;
    return CTX_OK;
}

/*
 * count_fts - count word's rows in (c->lo, c->hi] from FTS5: the whole
 * doclist inside FTS5 when the range starts at 0, else a MATCH bounded by
 * rowid (FTS5 seeks to the range; a step per row in it).
 */
static int count_fts(df_count *c, const char *word, ctx_error *err)
{
    rank_conn *rc = c->rc;
    ctx_buf match = CTX_BUF_INIT;
    sqlite3_stmt *s;
    int step, r = CTX_OK;

    /*
     * The permission columns hold only p<digits> and l<digits> tokens, so a
     * word without a digit is never found there, and its whole doclist is
     * walked without a column filter (FTS5 then skips the position lists).
     */
    c->any_column = strpbrk(word, "0123456789") != NULL;
    if (ctx_buf_printf(&match, c->any_column ? "{title text} : \"%s\"" : "\"%s\"", word))
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    if (stmt_get(rc->db,
                 c->lo == 0 ? "SELECT ctx_dfcount(chunks_fts, ?2) FROM chunks_fts"
                              " WHERE chunks_fts MATCH ?1 LIMIT 1"
                            : "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1"
                              " AND rowid > ?3 AND rowid <= ?4",
                 &s) != SQLITE_OK) {
        ctx_buf_free(&match);
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    }
    sqlite3_bind_text(s, 1, match.data, (int)match.len, SQLITE_STATIC);
    if (c->lo == 0) {
        sqlite3_bind_pointer(s, 2, c, DF_COUNT_PTR, NULL);
    } else {
        sqlite3_bind_int64(s, 3, c->lo);
        sqlite3_bind_int64(s, 4, c->hi);
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW && c->lo > 0)
        if ((r = count_row(c, sqlite3_column_int64(s, 0))))
            break;
    if (r || step == SQLITE_NOMEM)
        r = ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    else if (step != SQLITE_ROW && step != SQLITE_DONE)
        r = ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    stmt_put(s);
    ctx_buf_free(&match);
    return r;
}

/* merge - add c's counts to t, and zero the scratch counters; 0 or CTX_ENOMEM. */
static int merge(rank_conn *rc, rank_dftab *t, const df_count *c)
{
    int r = CTX_OK;

    for (size_t i = 0; i < t->len; i++) {
        int32_t add = rc->scratch[t->acl[i]];
        t->n[i] += add;
        t->all += add;
        rc->scratch[t->acl[i]] = 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        int32_t acl = c->touched[i], add = rc->scratch[acl];
        if (!add)
            continue; /* the set already had a pair */
        rc->scratch[acl] = 0;
        if (r)
            continue;
        if (t->len == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 16;
            int32_t *a = ctx_realloc(t->acl, cap * sizeof *a);
            int32_t *n = a ? ctx_realloc(t->n, cap * sizeof *n) : NULL;
            if (a)
                t->acl = a;
            if (!n) {
                r = CTX_ENOMEM;
                continue;
            }
            t->n = n;
            t->cap = cap;
        }
        t->acl[t->len] = acl;
        t->n[t->len++] = add;
        t->all += add;
        rc->dfpairs++;
    }
    return r;
}

/* dftab_reset - no counts: counted again from the first chunk. */
static void dftab_reset(rank_conn *rc, rank_dftab *t)
{
    rc->dfpairs -= t->len;
    t->len = 0;
    t->all = 0;
    t->upto = 0;
    t->epoch = rc->epoch;
}

/*
 * dftab_extend - count word's chunks in (t->upto, rc->loaded] into t: from
 * its frequency map as far as that goes, the rest from FTS5.
 */
static int dftab_extend(rank_conn *rc, rank_dftab *t, ctx_error *err)
{
    df_count c = {rc, t->upto, rc->loaded, NULL, 0, 0, 1};
    const rank_tfmap *m = rank__tfmap_peek(rc, t->word);
    int r = CTX_OK, r2;

    if (m && m->upto > c.lo) {
        c.hi = m->upto < rc->loaded ? m->upto : rc->loaded;
        if ((r = count_map(&c, m)))
            ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
        c.lo = c.hi;
        c.hi = rc->loaded;
    }
    if (!r && c.lo < c.hi)
        r = count_fts(&c, t->word, err);
    r2 = merge(rc, t, &c);
    ctx_free(c.touched);
    if (!r && r2)
        r = ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    if (r)
        dftab_reset(rc, t); /* half counted is no use */
    else
        t->upto = rc->loaded;
    return r;
}

int rank_readable_df(rank_conn *rc, const char *word, const uint8_t *readable,
                     int64_t nreadable, int64_t *df, int64_t *df_all, ctx_error *err)
{
    rank_dftab *t;
    int64_t n = 0;
    int r;

    *df = 0;
    if (df_all)
        *df_all = 0;
    if (!(t = dftab_find(rc, word)))
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    t->used = rc->tick;
    if (t->epoch != rc->epoch)
        dftab_reset(rc, t); /* the map was loaded anew: a chunk was deleted */
    if (t->upto < rc->loaded && (r = dftab_extend(rc, t, err)))
        return r;
    for (size_t i = 0; i < t->len; i++)
        if (rank_bit(readable, nreadable, t->acl[i]))
            n += t->n[i];
    *df = n;
    if (df_all)
        *df_all = t->all;
    evict(rc);
    return CTX_OK;
}

int rank_df_kept(const rank_conn *rc, const char *word)
{
    const rank_dftab *t = NULL;

    if (rc->ndfslot)
        for (size_t j = rank__word_hash(word) & (rc->ndfslot - 1); rc->dfslot[j] && !t;
             j = (j + 1) & (rc->ndfslot - 1))
            if (!strcmp(rc->dfs[rc->dfslot[j] - 1]->word, word))
                t = rc->dfs[rc->dfslot[j] - 1];
    if (t && t->epoch == rc->epoch && t->upto > 0)
        return 1;
    return rank__tfmap_peek(rc, word) != NULL;
}

int rank_match_df(rank_conn *rc, const char *match, const uint8_t *readable,
                  int64_t nreadable, int64_t *df, ctx_error *err)
{
    sqlite3_stmt *s;
    int64_t n = 0;
    int step;

    *df = 0;
    if (stmt_get(rc->db, "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1 AND rowid <= ?2",
                 &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    sqlite3_bind_text(s, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, rc->loaded);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int32_t acl = rank__cmap_acl(&rc->map, sqlite3_column_int64(s, 0));
        n += acl && rank_bit(readable, nreadable, acl);
    }
    stmt_put(s);
    if (step != SQLITE_DONE)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    *df = n;
    return CTX_OK;
}

int64_t rank_mapped_rows(const rank_conn *rc)
{
    return rc->live_rows;
}

int64_t rank_map_reloads(const rank_conn *rc)
{
    return rc->reloads;
}

int64_t rank_mapped_upto(const rank_conn *rc)
{
    return rc->loaded;
}

/* ---- ahead of the requests --------------------------------------------- */

int rank__dftabs_copy(rank_conn *dst, const rank_conn *src)
{
    rank__dftabs_free(dst);
    if (!src->ndfs)
        return CTX_OK;
    if (!(dst->dfs = ctx_calloc(src->capdfs, sizeof *dst->dfs)))
        return CTX_ENOMEM;
    dst->capdfs = src->capdfs;
    for (size_t i = 0; i < src->ndfs; i++) {
        const rank_dftab *s = src->dfs[i];
        rank_dftab *t = ctx_calloc(1, sizeof *t);
        if (!t || !(t->word = ctx_strdup(s->word)) ||
            (s->len && (!(t->acl = ctx_malloc(s->len * sizeof *t->acl)) ||
                        !(t->n = ctx_malloc(s->len * sizeof *t->n))))) {
            dftab_free(t);
            rank__dftabs_free(dst);
            return CTX_ENOMEM;
        }
        if (s->len) {
            memcpy(t->acl, s->acl, s->len * sizeof *t->acl);
            memcpy(t->n, s->n, s->len * sizeof *t->n);
        }
        t->len = t->cap = s->len;
        t->all = s->all;
        t->upto = s->upto;
        t->epoch = s->epoch;
        t->used = s->used;
        dst->dfs[dst->ndfs++] = t;
        dst->dfpairs += t->len;
    }
    if (reindex(dst, src->ndfslot)) {
        rank__dftabs_free(dst);
        return CTX_ENOMEM;
    }
    return CTX_OK;
}

static void *dup_bytes(const void *p, size_t n)
{
    void *q = n ? ctx_malloc(n) : NULL;
    if (q)
        memcpy(q, p, n);
    return q;
}

void rank__state_clear(rank_conn *rc)
{
    for (size_t i = 0; i < rc->nmaps; i++)
        rank__tfmap_free(rc->maps[i]);
    ctx_free(rc->maps);
    ctx_free(rc->mapslot);
    rc->maps = NULL;
    rc->mapslot = NULL;
    rc->nmaps = rc->capmaps = rc->nshared = rc->nmapslot = 0;
    rc->entries = rc->shared_entries = 0;
    rank__dftabs_free(rc);
    rank__cmap_free(&rc->map);
    rank__rbits_free(rc);
    ctx_free(rc->acl_rows);
    ctx_free(rc->acl_tokens);
    ctx_free(rc->scratch);
    rc->scratch = NULL;
    rc->acl_rows = rc->acl_tokens = NULL;
    rc->nacl = rc->loaded = rc->gone_seq = 0;
    rc->live_rows = rc->live_tokens = rc->drift_rows = rc->drift_tokens = 0;
    rc->epoch++;
}

/* tfmap_dup - a copy of m: its own entries, or the same shared ones. */
static rank_tfmap *tfmap_dup(const rank_tfmap *m)
{
    rank_tfmap *c = ctx_malloc(sizeof *c);

    if (!c)
        return NULL;
    *c = *m;
    if (m->share) {
        if (!(c->word = ctx_strdup(m->word))) {
            ctx_free(c);
            return NULL;
        }
        __atomic_add_fetch(&m->share->refs, 1, __ATOMIC_ACQ_REL);
        return c;
    }
    c->ids = NULL;
    c->freq = NULL;
    c->cap = m->n;
    if (!(c->word = ctx_strdup(m->word)) ||
        (m->n && (!(c->ids = dup_bytes(m->ids, m->n * sizeof *m->ids)) ||
                  !(c->freq = dup_bytes(m->freq, m->n * sizeof *m->freq))))) {
        rank__tfmap_free(c);
        return NULL;
    }
    return c;
}

int rank_copy(rank_conn *dst, const rank_conn *src, ctx_error *err)
{
    size_t sets = (size_t)src->nacl * sizeof(int64_t);

    if (dst == src)
        return CTX_OK;
    rank__state_clear(dst);
    if (rank__cmap_copy(&dst->map, &src->map))
        goto oom;
    if (src->nacl && (!(dst->acl_rows = dup_bytes(src->acl_rows, sets)) ||
                      !(dst->acl_tokens = dup_bytes(src->acl_tokens, sets)) ||
                      !(dst->scratch = ctx_calloc((size_t)src->nacl, sizeof(int32_t)))))
        goto oom;
    dst->nacl = src->nacl;
    if (src->nmaps) {
        if (!(dst->maps = ctx_calloc(src->capmaps, sizeof *dst->maps)))
            goto oom;
        dst->capmaps = src->capmaps;
    }
    for (size_t i = 0; i < src->nmaps; i++) {
        if (!(dst->maps[i] = tfmap_dup(src->maps[i])))
            goto oom;
        dst->nmaps++;
        if (src->maps[i]->share)
            dst->shared_entries += src->maps[i]->n;
        else
            dst->entries += src->maps[i]->n;
    }
    dst->nshared = src->nshared;
    rank__map_index(dst);
    if (rank__dftabs_copy(dst, src))
        goto oom;
    dst->loaded = src->loaded;
    dst->gone_seq = src->gone_seq;
    dst->live_rows = src->live_rows;
    dst->live_tokens = src->live_tokens;
    dst->drift_rows = src->drift_rows;
    dst->drift_tokens = src->drift_tokens;
    dst->tick = src->tick;
    /* the copied counts were made in src's epoch; they are dst's now */
    dst->epoch = src->epoch;
    return CTX_OK;
oom:
    rank__state_clear(dst);
    return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
}

/* permission_token - p<digits> or l<digits>: only the permission columns hold them. */
static int permission_token(const char *w)
{
    if (*w != 'p' && *w != 'l')
        return 0;
    for (w++; *w; w++)
        if (*w < '0' || *w > '9')
            return 0;
    return 1;
}

typedef struct warm_word {
    char *word;
    int64_t df;
} warm_word;

int rank_warm(rank_conn *rc, int64_t min_df, rank_warm_info *info, ctx_error *err)
{
    warm_word *w = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s;
    int r, step;

    if (info)
        memset(info, 0, sizeof *info);
    if ((r = rank_chunks_load(rc, err)))
        return r;
    /* The words first, then the walks: no statement is held across them. */
    if (stmt_get(rc->db, "SELECT term, df FROM term_df WHERE df >= ?1 ORDER BY df DESC", &s) !=
        SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    sqlite3_bind_int64(s, 1, min_df);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        if (!t || permission_token(t))
            continue;
        if (n == cap) {
            size_t c = cap ? cap * 2 : 256;
            warm_word *v = ctx_realloc(w, c * sizeof *v);
            if (!v)
                break;
            w = v;
            cap = c;
        }
        if (!(w[n].word = ctx_strdup(t)))
            break;
        w[n++].df = sqlite3_column_int64(s, 1);
    }
    stmt_put(s);
    if (step == SQLITE_ROW)
        r = ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    else if (step != SQLITE_DONE)
        r = ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    for (size_t i = 0; i < n && !r; i++) {
        int64_t df;
        if (rc->dfpairs >= DF_PAIRS_BUDGET / 4 * 3 || rc->ndfs >= DF_WORDS_MAX / 4 * 3)
            break; /* the rest are counted when asked for */
        /* the map first: the counts are then read off it, not walked again */
        if ((r = rank__tfmap_warm(rc, w[i].word, w[i].df, err)) ||
            (r = rank_readable_df(rc, w[i].word, NULL, 0, &df, NULL, err)))
            break;
        if (info) {
            info->words++;
            info->maps += rank__tfmap_peek(rc, w[i].word) != NULL;
        }
    }
    if (info)
        info->pairs = (int64_t)rc->dfpairs;
    for (size_t i = 0; i < n; i++)
        ctx_free(w[i].word);
    ctx_free(w);
    return r;
}
