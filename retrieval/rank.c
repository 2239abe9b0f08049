/*
 * rank.c - ctx_rank(), term statistics and the chunk map (see rank.h).
 */
#include "rank_int.h"

#include <math.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/stmt.h"

/* The index's tokenizer; a query word is turned into index terms with it. */
static const char *tokenizer_args[] = {"unicode61", "remove_diacritics", "2"};

void rank__tfmap_free(rank_tfmap *m)
{
    if (!m)
        return;
    ctx_free(m->word);
    if (!m->share) {
        ctx_free(m->ids);
        ctx_free(m->freq);
    } else if (__atomic_sub_fetch(&m->share->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        ctx_free(m->share->ids);
        ctx_free(m->share->freq);
        ctx_free(m->share);
    }
    ctx_free(m);
}

/*
 * The registry: connection -> its state. An entry is removed by the
 * function's destructor when SQLite closes the connection, so a later
 * connection at the same address never finds a stale map.
 */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static rank_conn *registry;

static void rank_conn_destroy(void *p)
{
    rank_conn *rc = p, **pp;

    pthread_mutex_lock(&registry_mu);
    for (pp = &registry; *pp && *pp != rc; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = rc->next;
    pthread_mutex_unlock(&registry_mu);
    if (rc->tokenizer)
        rc->tok.xDelete(rc->tokenizer);
    rank__state_clear(rc);
    ctx_free(rc);
}

double rank_idf(int64_t n, int64_t df)
{
    double idf = log(((double)n - (double)df + 0.5) / ((double)df + 0.5));
    return idf > 1e-6 ? idf : 1e-6;
}

/* phrase_freq - the row's count of phrase, a title hit weighing RANK_W_TITLE. */
static double phrase_freq(const Fts5ExtensionApi *api, Fts5Context *fts, int phrase)
{
    Fts5PhraseIter it;
    int col, off;
    double freq = 0;

    if (api->xPhraseFirst(fts, phrase, &it, &col, &off) != SQLITE_OK)
        return 0;
    for (; col >= 0; api->xPhraseNext(fts, &it, &col, &off))
        freq += col == 0 ? RANK_W_TITLE : col == 1 ? RANK_W_TEXT : 0.0;
    return freq;
}

/* What ctx_tfbuild fills: m with the rows in (lo, hi]. */
typedef struct tf_build {
    rank_tfmap *m;
    int64_t lo, hi;
    int status;                 /* 1 ok, 0 does not fit, or minus an error code */
} tf_build;

#define TF_BUILD_PTR "ctxgate_tf_build"

static int tf_collect(const Fts5ExtensionApi *api, Fts5Context *fts, void *arg)
{
    tf_build *b = arg;
    rank_tfmap *m = b->m;
    int64_t id = api->xRowid(fts);
    double f;

    if (id <= b->lo || id > b->hi)
        return SQLITE_OK;
    if ((f = phrase_freq(api, fts, 0)) <= 0)
        return SQLITE_OK; /* only in a permission column */
    if (f > UINT16_MAX || id > (int64_t)UINT32_MAX) {
        b->status = 0;
        return SQLITE_DONE;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        uint32_t *ids = ctx_realloc(m->ids, cap * sizeof *ids);
        uint16_t *fr = ids ? ctx_realloc(m->freq, cap * sizeof *fr) : NULL;
        if (ids)
            m->ids = ids;
        if (!fr) {
            b->status = -CTX_ENOMEM;
            return SQLITE_NOMEM;
        }
        m->freq = fr;
        m->cap = cap;
    }
    m->ids[m->n] = (uint32_t)id;
    m->freq[m->n++] = (uint16_t)f;
    return SQLITE_OK;
}

/*
 * ctx_tfbuild(chunks_fts, build) - on a row of a MATCH of one word, walk
 * that word's whole doclist inside FTS5 (xQueryPhrase: no SQL step per
 * row) and add its rows in (lo, hi] to the map, in ascending order.
 */
static void ctx_tfbuild_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
                           int nval, sqlite3_value **val)
{
    tf_build *b = nval == 1 ? sqlite3_value_pointer(val[0], TF_BUILD_PTR) : NULL;
    int r;

    if (!b) {
        sqlite3_result_error(ctx, "ctx_tfbuild: expected (chunks_fts, build pointer)", -1);
        return;
    }
    r = api->xQueryPhrase(fts, 0, b, tf_collect);
    if (r != SQLITE_OK && r != SQLITE_DONE)
        sqlite3_result_error_code(ctx, r);
}

double rank_score(const rank_query *q, const double *freq, int len)
{
    return rank__score(q, freq, len);
}

/* collect_row - append chunk id (mapped) to q->collect: 0, or CTX_ENOMEM. */
static int collect_row(const Fts5ExtensionApi *api, Fts5Context *fts, rank_query *q,
                       int64_t id)
{
    rank_collect *c = q->collect;
    int64_t slot = rank__cmap_slot(&q->rc->map, id);
    int len = slot < 0 ? -1 : q->rc->map.len[slot];

    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        int64_t *ids = ctx_realloc(c->ids, cap * sizeof *ids);
        int32_t *lens = ids ? ctx_realloc(c->lens, cap * sizeof *lens) : NULL;
        double *fr = lens ? ctx_realloc(c->freq, cap * (size_t)q->nterms * sizeof *fr) : NULL;
        if (ids)
            c->ids = ids;
        if (lens)
            c->lens = lens;
        if (!fr)
            return CTX_ENOMEM;
        c->freq = fr;
        c->cap = cap;
    }
    if (len < 0) {
        int title = 0, text = 0;
        api->xColumnSize(fts, 0, &title);
        api->xColumnSize(fts, 1, &text);
        len = title + text;
    }
    for (int i = 0, phrase = q->first_phrase; i < q->nterms; i++)
        c->freq[c->n * (size_t)q->nterms + (size_t)i] =
            q->map[i] ? rank__tfmap_freq(q->map[i], id, &q->pos[i]) : phrase_freq(api, fts, phrase++);
    c->ids[c->n] = id;
    c->lens[c->n++] = len;
    return CTX_OK;
}

/*
 * ctx_rank(chunks_fts, query) - BM25 of the row over the query's terms, the
 * way FTS5's bm25() weighs columns (a term's frequency is its title count
 * times RANK_W_TITLE plus its text count times RANK_W_TEXT, the length is
 * title plus text), except that the permission columns count for nothing:
 * not as terms and not in the length, so the size of an ACL never moves a
 * chunk up or down. NULL for a row the caller may not read.
 */
static void ctx_rank_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
                        int nval, sqlite3_value **val)
{
    rank_query *q = nval == 1 ? sqlite3_value_pointer(val[0], RANK_QUERY_PTR) : NULL;
    double score = 0, norm = -1;
    int64_t id;

    if (!q) {
        sqlite3_result_error(ctx, "ctx_rank: expected (chunks_fts, query pointer)", -1);
        return;
    }
    if (q->readable || q->sources) {
        /* A row the map knows is decided here; one it does not is scored and
         * checked by the caller in SQL. */
        const rank_conn *rc = q->rc;
        id = api->xRowid(fts);
        if (id > 0 && id <= rc->loaded) {
            int64_t slot = rank__cmap_slot(&rc->map, id);
            if (slot < 0 || !rc->map.acl[slot] ||
                (q->readable && !rank_bit(q->readable, q->nreadable, rc->map.acl[slot])) ||
                (q->sources && !rank_bit(q->sources, q->nsources, rc->map.src[slot]))) {
                sqlite3_result_null(ctx);
                return;
            }
        }
    }
    id = api->xRowid(fts);
    if (q->collect) {
        /* only rows the map decided: the statistics are the map's */
        const rank_conn *rc = q->rc;
        if (!q->readable || id <= 0 || id > rc->loaded || !rank__cmap_acl(&rc->map, id))
            sqlite3_result_null(ctx);
        else if (collect_row(api, fts, q, id))
            sqlite3_result_error_nomem(ctx);
        else
            sqlite3_result_double(ctx, 0);
        return;
    }
    for (int i = 0, phrase = q->first_phrase; i < q->nterms; i++) {
        double freq = q->map[i] ? rank__tfmap_freq(q->map[i], id, &q->pos[i])
                                : phrase_freq(api, fts, phrase++);
        if (freq == 0)
            continue;
        if (norm < 0) {
            /* The chunk map knows most rows' lengths: FTS5 reads its docsize
             * table for each (a B-tree lookup, 4,000 instructions). */
            const rank_conn *rc = q->rc;
            int len = -1;
            if (rc && id > 0 && id <= rc->loaded) {
                int64_t slot = rank__cmap_slot(&rc->map, id);
                if (slot >= 0)
                    len = rc->map.len[slot];
            }
            if (len < 0) {
                int title = 0, text = 0;
                api->xColumnSize(fts, 0, &title);
                api->xColumnSize(fts, 1, &text);
                len = title + text;
            }
            norm = rank__length_norm(len, q->avg);
        }
        score += rank__term_score(q->idf[i], freq, norm);
    }
    sqlite3_result_double(ctx, score);
}

rank_conn *rank_attach(sqlite3 *db, ctx_error *err)
{
    rank_conn *rc;
    void *ud;

    pthread_mutex_lock(&registry_mu);
    for (rc = registry; rc && rc->db != db; rc = rc->next)
        ;
    pthread_mutex_unlock(&registry_mu);
    if (rc)
        return rc;

    if (!(rc = ctx_calloc(1, sizeof *rc))) {
        ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
        return NULL;
    }
    rc->db = db;
    if (!(rc->api = stmt_fts5_api(db)) || rc->api->iVersion < 2) {
        ctx_free(rc);
        ctx_error_set(err, CTX_ESTORE, "search: this SQLite has no FTS5 API");
        return NULL;
    }
    if (rc->api->xFindTokenizer(rc->api, "porter", &ud, &rc->tok) != SQLITE_OK ||
        rc->tok.xCreate(ud, tokenizer_args, 3, &rc->tokenizer) != SQLITE_OK) {
        ctx_free(rc);
        ctx_error_set(err, CTX_ESTORE, "search: the porter tokenizer is missing");
        return NULL;
    }
    /* From here SQLite owns rc: it calls rank_conn_destroy on close (and
     * right away if registering fails). */
    if (rc->api->xCreateFunction(rc->api, "ctx_rank", rc, ctx_rank_fn, rank_conn_destroy) !=
            SQLITE_OK ||
        rc->api->xCreateFunction(rc->api, "ctx_tfbuild", rc, ctx_tfbuild_fn, NULL) !=
            SQLITE_OK ||
        rc->api->xCreateFunction(rc->api, "ctx_dfcount", rc, rank__dfcount_fn, NULL) !=
            SQLITE_OK) {
        ctx_error_set(err, CTX_ESTORE, "search: cannot register ctx_rank: %s",
                      sqlite3_errmsg(db));
        return NULL;
    }
    pthread_mutex_lock(&registry_mu);
    rc->next = registry;
    registry = rc;
    pthread_mutex_unlock(&registry_mu);
    return rc;
}

/* ---- term statistics --------------------------------------------------- */

typedef struct term_buf {
    char terms[4][128];
    int n;
} term_buf;

static int collect_token(void *arg, int flags, const char *tok, int ntok, int start, int end)
{
    term_buf *tb = arg;
    (void)start;
    (void)end;
    if (flags & FTS5_TOKEN_COLOCATED)
        return SQLITE_OK;
    if (tb->n < 4 && ntok > 0 && ntok < (int)sizeof tb->terms[0]) {
        char *t = tb->terms[tb->n++];
        memcpy(t, tok, (size_t)ntok);
        t[ntok] = '\0';
    }
    return SQLITE_OK;
}

int rank_tokenize(rank_conn *rc, const char *text, int len, void *arg,
                  int (*fn)(void *, int, const char *, int, int, int))
{
    return rc->tok.xTokenize(rc->tokenizer, arg, FTS5_TOKENIZE_DOCUMENT, text, len, fn);
}

static int ensure_vocab(rank_conn *rc, ctx_error *err)
{
    if (rc->vocab)
        return CTX_OK;
    if (sqlite3_exec(rc->db,
                     "CREATE VIRTUAL TABLE IF NOT EXISTS temp.ctx_vocab"
                     " USING fts5vocab(main, chunks_fts, 'row')",
                     NULL, NULL, NULL) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: fts5vocab: %s", sqlite3_errmsg(rc->db));
    rc->vocab = 1;
    return CTX_OK;
}

/* step s once for an integer; *v = dflt when there is no row */
static int step_int(sqlite3_stmt *s, int64_t dflt, int64_t *v, ctx_error *err)
{
    int r = sqlite3_step(s);
    *v = r == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL ?
             sqlite3_column_int64(s, 0) : dflt;
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(sqlite3_db_handle(s)));
    stmt_put(s);
    return r == SQLITE_ROW || r == SQLITE_DONE ? CTX_OK : CTX_ESTORE;
}

int rank_stats_refresh(sqlite3 *db, int force, ctx_error *err)
{
    rank_conn *rc;
    sqlite3_stmt *s;
    int64_t now_rows, then_rows = -1;
    int r;

    if (!(rc = rank_attach(db, err)))
        return err ? err->code : CTX_ESTORE;
    if (stmt_get(db, "SELECT count(*) FROM chunks", &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "rank stats: %s", sqlite3_errmsg(db));
    if ((r = step_int(s, 0, &now_rows, err)))
        return r;
    if (!force && stmt_get(db, "SELECT nrows FROM term_df_meta", &s) == SQLITE_OK &&
        (r = step_int(s, -1, &then_rows, err)))
        return r;
    if (!force && then_rows >= 0 && llabs(now_rows - then_rows) * 20 <= then_rows)
        return CTX_OK;
    if ((r = ensure_vocab(rc, err)))
        return r;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "rank stats: %s", sqlite3_errmsg(db));
    r = sqlite3_exec(db,
                     "DELETE FROM term_df;"
                     "INSERT INTO term_df SELECT term, doc FROM temp.ctx_vocab;"
                     "INSERT OR REPLACE INTO term_df_meta"
                     "  SELECT 1, count(*), CAST(strftime('%s', 'now') AS INTEGER) * 1000"
                     "  FROM chunks;",
                     NULL, NULL, NULL);
    if (r != SQLITE_OK) {
        ctx_error_set(err, CTX_ESTORE, "rank stats: %s", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return CTX_ESTORE;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ctx_error_set(err, CTX_ESTORE, "rank stats: %s", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return CTX_ESTORE;
    }
    return CTX_OK;
}

/* ---- the chunk map ----------------------------------------------------- */

/* get_varint - one SQLite varint from p[0..n): its length, 0 when cut short. */
static int get_varint(const unsigned char *p, int n, uint64_t *v)
{
    *v = 0;
    for (int i = 0; i < 9 && i < n; i++) {
        if (i == 8) {
            *v = (*v << 8) | p[i];
            return 9;
        }
        *v = (*v << 7) | (p[i] & 0x7f);
        if (!(p[i] & 0x80))
            return i + 1;
    }
    return 0;
}

/*
 * rank__docsize_len - title + text tokens from an FTS5 docsize blob (one varint
 * per column), or -1 when it is not one.
 */
int32_t rank__docsize_len(const unsigned char *p, int n)
{
    int64_t sum = 0;

    for (int col = 0; col < 2; col++) {
        uint64_t v;
        int len = get_varint(p, n, &v);
        if (!len || v > INT32_MAX)
            return -1;
        sum += (int64_t)v;
        p += len;
        n -= len;
    }
    return sum > INT32_MAX ? -1 : (int32_t)sum;
}

/*
 * grow_fill - p (of old elements of size bytes) grown to cap, the new ones
 * set to byte: the new pointer, or NULL with p untouched.
 */
static void *grow_fill(void *p, size_t size, int64_t old, int64_t cap, int byte)
{
    char *v = ctx_realloc(p, (size_t)cap * size);

    if (v)
        memset(v + (size_t)old * size, byte, (size_t)(cap - old) * size);
    return v;
}

int rank_chunks_seq(rank_conn *rc, int64_t *seq, ctx_error *err)
{
    sqlite3_stmt *s;

    *seq = 0;
    if (stmt_get(rc->db, "SELECT seq FROM sqlite_sequence WHERE name = 'chunks'", &s) !=
        SQLITE_OK)
        return CTX_OK; /* no chunk was ever made */
    return step_int(s, 0, seq, err);
}

/* acl_grow - room in the per-ACL-set counters (and the scratch counts) for set acl. */
static int acl_grow(rank_conn *rc, int64_t acl, ctx_error *err)
{
    int64_t cap = rc->nacl ? rc->nacl : 64, *n;
    int32_t *c;

    while (cap <= acl)
        cap *= 2;
    if (!(n = grow_fill(rc->acl_rows, sizeof *n, rc->nacl, cap, 0)))
        goto oom;
    rc->acl_rows = n;
    if (!(n = grow_fill(rc->acl_tokens, sizeof *n, rc->nacl, cap, 0)))
        goto oom;
    rc->acl_tokens = n;
    if (!(c = grow_fill(rc->scratch, sizeof *c, rc->nacl, cap, 0)))
        goto oom;
    rc->scratch = c;
    rc->nacl = cap;
    return CTX_OK;
oom:
    return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
}

/* load_rows - map the chunks committed past rc->loaded and count them in. */
static int load_rows(rank_conn *rc, ctx_error *err)
{
    sqlite3_stmt *s;
    int64_t hi = rc->loaded, seq = 0;
    int r;

    if ((r = rank_chunks_seq(rc, &seq, err)))
        return r;
    if (stmt_get(rc->db,
                 "SELECT c.id, c.acl_id, d.source_id, z.sz FROM chunks c"
                 " JOIN documents d ON d.id = c.doc_id"
                 " LEFT JOIN chunks_fts_docsize z ON z.id = c.id WHERE c.id > ?1"
                 " ORDER BY c.id", &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    sqlite3_bind_int64(s, 1, rc->loaded);
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0), acl = sqlite3_column_int64(s, 1);
        int32_t len =
            rank__docsize_len(sqlite3_column_blob(s, 3), sqlite3_column_bytes(s, 3));
        if (acl <= 0 || acl > INT32_MAX)
            acl = 0; /* not a set: no caller reads it, and it gets no slot */
        if ((acl >= rc->nacl && acl_grow(rc, acl, err)) ||
            (acl && rank__cmap_append(&rc->map, id, (int32_t)acl,
                                      (int32_t)sqlite3_column_int64(s, 2), len))) {
            stmt_put(s);
            rc->loaded = hi; /* what is mapped so far; the next load goes on from there */
            return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
        }
        if (acl) {
            rc->acl_rows[acl]++;
            rc->acl_tokens[acl] += len > 0 ? len : 0;
            rc->live_rows++;
            rc->live_tokens += len > 0 ? len : 0;
        }
        hi = id;
    }
    stmt_put(s);
    if (r != SQLITE_DONE)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    /* Also past ids that were used and deleted before we looked: the
     * sequence, read before the rows, says how far committed ids had gone,
     * and every chunk up to it was committed before the rows were read. */
    if (seq > hi)
        hi = seq;
    rc->loaded = hi;
    return CTX_OK;
}

/*
 * fts_totals - FTS5's row count and title + text tokens, from its averages
 * record (rowid 1 of the data table: the row count, then tokens per
 * column). FTS5 keeps it exact through inserts and deletes.
 */
static int fts_totals(rank_conn *rc, int64_t *rows, int64_t *tokens, ctx_error *err)
{
    sqlite3_stmt *s;
    uint64_t n = 0, title = 0, text = 0;
    int step;

    if (stmt_get(rc->db, "SELECT block FROM chunks_fts_data WHERE id = 1", &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    if ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *p = sqlite3_column_blob(s, 0);
        int len = sqlite3_column_bytes(s, 0), a, b = 0, c = 0;
        if ((a = get_varint(p, len, &n)) && (b = get_varint(p + a, len - a, &title)))
            c = get_varint(p + a + b, len - a - b, &text);
        if (!c || n > INT64_MAX || title > INT64_MAX || text > INT64_MAX - title)
            step = SQLITE_CORRUPT;
    }
    stmt_put(s);
    if (step == SQLITE_CORRUPT)
        return ctx_error_set(err, CTX_ESTORE, "search: the FTS5 averages record is damaged");
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    *rows = (int64_t)n;
    *tokens = (int64_t)(title + text);
    return CTX_OK;
}

/* map_reset - forget every mapped chunk; the next load maps them all anew. */
static void map_reset(rank_conn *rc)
{
    rank__cmap_free(&rc->map);
    if (rc->nacl) {
        memset(rc->acl_rows, 0, (size_t)rc->nacl * sizeof *rc->acl_rows);
        memset(rc->acl_tokens, 0, (size_t)rc->nacl * sizeof *rc->acl_tokens);
    }
    rc->live_rows = rc->live_tokens = 0;
    rc->loaded = 0;
    rc->epoch++;
    rc->reloads++;
}

/*
 * gone_apply - unmap the chunks chunks_gone logged since rc->gone_seq,
 * among those mapped before this load (up to was; rows this load mapped
 * come from the same snapshot, without them). *reload is set when the log
 * cannot say (entries trimmed before we read them): then only a reload of
 * the whole map is sure. A store without the log (read-only, older) leaves
 * it to FTS5's totals, as before the log.
 */
static int gone_apply(rank_conn *rc, int64_t was, int *reload, ctx_error *err)
{
    sqlite3_stmt *s;
    int64_t hi = 0, lo = 0, unmapped = 0;
    int r;

    *reload = 0;
    if (stmt_get(rc->db, "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'chunks_gone'),"
                         " (SELECT min(seq) FROM chunks_gone)", &s) != SQLITE_OK) {
        return CTX_OK; /* a store from before the log: the totals decide */
    }
    if ((r = sqlite3_step(s)) == SQLITE_ROW) {
        hi = sqlite3_column_int64(s, 0);
        lo = sqlite3_column_type(s, 1) == SQLITE_NULL ? hi + 1 : sqlite3_column_int64(s, 1);
    }
    stmt_put(s);
    if (r != SQLITE_ROW)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    if (hi <= rc->gone_seq || was == 0) {
        rc->gone_seq = hi > rc->gone_seq ? hi : rc->gone_seq; /* nothing mapped to forget */
        return CTX_OK;
    }
    if (lo > rc->gone_seq + 1) {
        *reload = 1; /* entries we never saw were trimmed */
        return CTX_OK;
    }
    if (stmt_get(rc->db, "SELECT chunk_id FROM chunks_gone WHERE seq > ?1 AND seq <= ?2",
                 &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    sqlite3_bind_int64(s, 1, rc->gone_seq);
    sqlite3_bind_int64(s, 2, hi);
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0), slot;
        int32_t acl, len;
        if (id > was || (slot = rank__cmap_slot(&rc->map, id)) < 0 ||
            !(acl = rc->map.acl[slot]))
            continue; /* never mapped, or already forgotten */
        len = rc->map.len[slot] > 0 ? rc->map.len[slot] : 0;
        rc->acl_rows[acl]--;
        rc->acl_tokens[acl] -= len;
        rc->live_rows--;
        rc->live_tokens -= len;
        rc->map.acl[slot] = 0;
        rc->map.dead++;
        unmapped++;
    }
    stmt_put(s);
    if (r != SQLITE_DONE)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    rc->gone_seq = hi;
    if (unmapped) {
        rc->epoch++; /* the document frequencies are counted again (rank_stats.c) */
        rank__cmap_compact(&rc->map);
    }
    return CTX_OK;
}

int rank_chunks_load(rank_conn *rc, ctx_error *err)
{
    int64_t rows = 0, tokens = 0, was = rc->loaded;
    int r, txn = 0, reload = 0;

    if (sqlite3_txn_state(rc->db, "main") == SQLITE_TXN_WRITE)
        return CTX_OK; /* rows seen now might still roll back */
    /*
     * The new rows, the log of dropped chunks and FTS5's totals from one
     * snapshot. The log unmaps each chunk deleted since the last look (a
     * document dropped, or re-indexed under a new ACL); totals that still
     * moved by other than that and the rows just mapped mean a deletion the
     * log does not hold, and the per-set counts would be stale: that
     * reloads the whole map (once per such commit, not per search).
     */
    if (sqlite3_get_autocommit(rc->db)) {
        if (sqlite3_exec(rc->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
            return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
        txn = 1;
    }
    if (!(r = load_rows(rc, err)) && !(r = gone_apply(rc, was, &reload, err)) &&
        !(r = fts_totals(rc, &rows, &tokens, err)) &&
        (reload || rows - rc->live_rows != rc->drift_rows ||
         tokens - rc->live_tokens != rc->drift_tokens)) {
        map_reset(rc);
        if (!(r = load_rows(rc, err)) && !(r = gone_apply(rc, 0, &reload, err))) {
            /* what FTS5 counts and we do not (a chunk without a docsize
             * row): from here on only a move in it means a deletion */
            rc->drift_rows = rows - rc->live_rows;
            rc->drift_tokens = tokens - rc->live_tokens;
        }
    }
    if (txn && sqlite3_exec(rc->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK && !r)
        r = ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    return r;
}

int rank_behind(rank_conn *rc, int *behind, ctx_error *err)
{
    int64_t seq = 0, rows = 0, tokens = 0;
    int r, txn = sqlite3_get_autocommit(rc->db);

    *behind = 0;
    if (txn && sqlite3_exec(rc->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    /* a chunk committed past the map, or one in it deleted */
    if (!(r = rank_chunks_seq(rc, &seq, err)) && !(r = fts_totals(rc, &rows, &tokens, err)))
        *behind = seq > rc->loaded || rows - rc->live_rows != rc->drift_rows ||
                  tokens - rc->live_tokens != rc->drift_tokens;
    if (txn)
        sqlite3_exec(rc->db, "COMMIT", NULL, NULL, NULL);
    return r;
}

int rank_chunk_ok(rank_conn *rc, const rank_query *q, int64_t id, ctx_error *err)
{
    int64_t acl, src;
    sqlite3_stmt *s;
    int r;

    if (!q->readable && !q->sources)
        return 1;
    if (id > 0 && id <= rc->loaded) {
        int64_t slot = rank__cmap_slot(&rc->map, id);
        acl = slot < 0 ? 0 : rc->map.acl[slot];
        src = slot < 0 ? 0 : rc->map.src[slot];
    } else {
        if (stmt_get(rc->db,
                     "SELECT c.acl_id, d.source_id FROM chunks c"
                     " JOIN documents d ON d.id = c.doc_id WHERE c.id = ?1", &s) != SQLITE_OK)
            return -ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
        sqlite3_bind_int64(s, 1, id);
        r = sqlite3_step(s);
        acl = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        src = r == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
        stmt_put(s);
        if (r != SQLITE_ROW && r != SQLITE_DONE)
            return -ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    }
    return acl > 0 && (!q->readable || rank_bit(q->readable, q->nreadable, acl)) &&
           (!q->sources || rank_bit(q->sources, q->nsources, src));
}

/* ---- frequency maps ---------------------------------------------------- */

/* map_slot_put - index maps[i] in mapslot (which has room). */
static void map_slot_put(rank_conn *rc, size_t i)
{
    size_t j = rank__word_hash(rc->maps[i]->word) & (rc->nmapslot - 1);
    while (rc->mapslot[j])
        j = (j + 1) & (rc->nmapslot - 1);
    rc->mapslot[j] = (uint32_t)i + 1;
}

/*
 * rank__map_index - index every map by word anew (after one moved or the
 * table filled up). Out of memory leaves no index: lookups then scan.
 */
void rank__map_index(rank_conn *rc)
{
    size_t n = 64;

    while (n < rc->nmaps * 4)
        n *= 2;
    ctx_free(rc->mapslot);
    rc->nmapslot = 0;
    if (!(rc->mapslot = ctx_calloc(n, sizeof *rc->mapslot)))
        return;
    rc->nmapslot = n;
    for (size_t i = 0; i < rc->nmaps; i++)
        map_slot_put(rc, i);
}

/* map_lookup - word's map (built or a stub), or NULL. */
static rank_tfmap *map_lookup(const rank_conn *rc, const char *word)
{
    if (!rc->nmapslot) {
        for (size_t i = 0; i < rc->nmaps; i++)
            if (!strcmp(rc->maps[i]->word, word))
                return rc->maps[i];
        return NULL;
    }
    for (size_t j = rank__word_hash(word) & (rc->nmapslot - 1); rc->mapslot[j];
         j = (j + 1) & (rc->nmapslot - 1))
        if (!strcmp(rc->maps[rc->mapslot[j] - 1]->word, word))
            return rc->maps[rc->mapslot[j] - 1];
    return NULL;
}


/* Words counted but not mapped, at most; and how often counts are halved. */
#define TFMAP_STUBS 16384
#define TFMAP_AGE_EVERY 1024
#define TFMAP_ADMIT 4
/* A common word's build walks tens of thousands of rows: one a search, so
 * no request pays for several, and the requests queued behind it wait for
 * one at most. */
#define TFMAP_BUILDS_PER_SEARCH 1

void rank_tfmap_begin(rank_conn *rc)
{
    rc->builds = 0;
    if (++rc->tick % TFMAP_AGE_EVERY)
        return;
    /* Halve every count, so what the searches ask for now wins room. */
    for (size_t i = 0; i < rc->nmaps; i++)
        rc->maps[i]->uses /= 2;
}

void rank_tfmap_hold(rank_conn *rc)
{
    rc->builds = TFMAP_BUILDS_PER_SEARCH;
}

static void tfmap_drop(rank_conn *rc, size_t i)
{
    if (rc->maps[i]->share) {
        rc->shared_entries -= rc->maps[i]->n;
        rc->nshared--;
    } else {
        rc->entries -= rc->maps[i]->n;
    }
    rank__tfmap_free(rc->maps[i]);
    rc->maps[i] = rc->maps[--rc->nmaps];
    rank__map_index(rc); /* the last one moved */
}

/*
 * make_room - evict maps until n more entries fit: the least asked-for
 * first, and only maps asked for less than m (a map the current search
 * holds is never one). 0 when that is not enough.
 */
static int make_room(rank_conn *rc, const rank_tfmap *m, size_t n)
{
    while (rc->entries + n > RANK_TFMAP_BUDGET) {
        size_t victim = rc->nmaps;
        for (size_t i = 0; i < rc->nmaps; i++) {
            const rank_tfmap *v = rc->maps[i];
            if (v->built && !v->share && v != m && v->used != rc->tick && v->uses < m->uses &&
                (victim == rc->nmaps || v->uses < rc->maps[victim]->uses))
                victim = i;
        }
        if (victim == rc->nmaps)
            return 0;
        tfmap_drop(rc, victim);
    }
    return 1;
}

/*
 * tfmap_extend - add the chunks in (m->upto, upto] holding m's word (the
 * whole doclist is walked; only those rows are kept). 1 done, 0 it does
 * not fit, or minus an error code.
 */
static int tfmap_extend(rank_conn *rc, rank_tfmap *m, int64_t upto, ctx_error *err)
{
    ctx_buf match = CTX_BUF_INIT;
    tf_build b = {m, m->upto, upto, 1};
    sqlite3_stmt *s;
    size_t before = m->n;
    int step;

    if (ctx_buf_printf(&match, "{title text} : \"%s\"", m->word))
        return -ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    if (stmt_get(rc->db,
                 "SELECT ctx_tfbuild(chunks_fts, ?2) FROM chunks_fts WHERE chunks_fts MATCH ?1"
                 " LIMIT 1", &s) != SQLITE_OK) {
        ctx_buf_free(&match);
        return -ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    }
    sqlite3_bind_text(s, 1, match.data, (int)match.len, SQLITE_STATIC);
    sqlite3_bind_pointer(s, 2, &b, TF_BUILD_PTR, NULL);
    step = sqlite3_step(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE && b.status > 0)
        b.status = -ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    else if (b.status == -CTX_ENOMEM)
        ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    stmt_put(s);
    ctx_buf_free(&match);
    rc->entries += m->n - before;
    if (b.status > 0) {
        m->upto = upto;
        m->built = 1;
    }
    return b.status;
}

/* tfmap_find - word's map, a new stub (counted, not built) if it has none; NULL if out of memory. */
static rank_tfmap *tfmap_find(rank_conn *rc, const char *word)
{
    rank_tfmap *m;
    size_t i;

    if ((m = map_lookup(rc, word)))
        return m;
    if (rc->nmaps >= TFMAP_STUBS) {
        /* forget the least asked-for word that has no entries */
        size_t victim = rc->nmaps;
        for (i = 0; i < rc->nmaps; i++)
            if (!rc->maps[i]->built && rc->maps[i]->used != rc->tick &&
                (victim == rc->nmaps || rc->maps[i]->uses < rc->maps[victim]->uses))
                victim = i;
        if (victim == rc->nmaps)
            return NULL;
        tfmap_drop(rc, victim);
    }
    if (rc->nmaps == rc->capmaps) {
        size_t cap = rc->capmaps ? rc->capmaps * 2 : 16;
        rank_tfmap **v = ctx_realloc(rc->maps, cap * sizeof *v);
        if (!v)
            return NULL;
        rc->maps = v;
        rc->capmaps = cap;
    }
    if (!(m = ctx_calloc(1, sizeof *m)) || !(m->word = ctx_strdup(word))) {
        rank__tfmap_free(m);
        return NULL;
    }
    rc->maps[rc->nmaps++] = m;
    if (rc->nmaps * 2 > rc->nmapslot)
        rank__map_index(rc);
    else
        map_slot_put(rc, rc->nmaps - 1);
    return m;
}

const rank_tfmap *rank__tfmap_peek(const rank_conn *rc, const char *word)
{
    const rank_tfmap *m = map_lookup(rc, word);
    return m && m->built ? m : NULL;
}

/*
 * tfmap_build - build word's map now, whatever its searches so far, if it
 * has none, is a single index term, and need more entries fit the budget
 * (the shared one when share is set: the map is then frozen and shared,
 * see rank_tfshare); the map starts with uses searches counted. CTX_OK
 * (built or not) or a store error.
 */
static int tfmap_build(rank_conn *rc, const char *word, size_t need, uint32_t uses, int share,
                       ctx_error *err)
{
    rank_tfmap *m;
    term_buf tb;
    int r;

    memset(&tb, 0, sizeof tb);
    rc->tok.xTokenize(rc->tokenizer, &tb, FTS5_TOKENIZE_QUERY, word, (int)strlen(word),
                      collect_token);
    /* shared maps leave half the TFMAP_STUBS places to the searches' words */
    if (tb.n != 1 || rc->loaded > (int64_t)UINT32_MAX ||
        (share ? rc->shared_entries + need > RANK_TFMAP_SHARED_BUDGET ||
                     rc->nshared >= TFMAP_STUBS / 2
               : rc->entries + need > RANK_TFMAP_BUDGET) ||
        !(m = tfmap_find(rc, word)) || m->built)
        return CTX_OK;
    m->used = rc->tick; /* not evicted by this search */
    if (m->uses < uses)
        m->uses = uses;
    rc->builds++;
    if ((r = tfmap_extend(rc, m, rc->loaded, err)) <= 0) {
        rc->entries -= m->n;
        m->n = 0;
        m->upto = 0;
        m->built = 0;
        return r < 0 ? -r : CTX_OK;
    }
    if (share && rc->shared_entries + m->n > RANK_TFMAP_SHARED_BUDGET) {
        /* more rows than need said (term_df lags the store): over the budget */
        size_t i = 0;
        while (rc->maps[i] != m)
            i++;
        tfmap_drop(rc, i);
        return CTX_OK;
    }
    if (share) {
        rank_tfshare *sh = ctx_calloc(1, sizeof *sh);
        uint32_t *ids = m->n ? ctx_realloc(m->ids, m->n * sizeof *ids) : m->ids;
        uint16_t *fr = m->n ? ctx_realloc(m->freq, m->n * sizeof *fr) : m->freq;
        if (ids) /* shrunk to fit, or left as they were */
            m->ids = ids;
        if (fr)
            m->freq = fr;
        m->cap = m->n;
        if (!sh) /* it stays this connection's own */
            return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
        rc->entries -= m->n;
        sh->ids = m->ids;
        sh->freq = m->freq;
        sh->refs = 1;
        m->share = sh;
        rc->shared_entries += m->n;
        rc->nshared++;
    }
    return CTX_OK;
}

int rank_tfmap_prebuild(rank_conn *rc, const char *word, ctx_error *err)
{
    /* Room for a map of every chunk, so the budget holds whatever its size. */
    return tfmap_build(rc, word, (size_t)rc->live_rows, 0, 0, err);
}

int rank__tfmap_warm(rank_conn *rc, const char *word, int64_t df, ctx_error *err)
{
    return tfmap_build(rc, word, df > 0 ? (size_t)df : 0, 0, 1, err);
}

int rank_tfmap_get(rank_conn *rc, const char *word, int64_t df, const rank_tfmap **out,
                   int64_t *upto, ctx_error *err)
{
    rank_tfmap *m;
    term_buf tb;
    int r;

    *out = NULL;
    memset(&tb, 0, sizeof tb);
    rc->tok.xTokenize(rc->tokenizer, &tb, FTS5_TOKENIZE_QUERY, word, (int)strlen(word),
                      collect_token);
    if (tb.n != 1 || rc->loaded > (int64_t)UINT32_MAX)
        return CTX_OK; /* a phrase, or ids too large to keep */
    if (!(m = tfmap_find(rc, word)))
        return CTX_OK; /* no room to count it: the MATCH names it */
    m->used = rc->tick;
    m->uses++;
    if (m->share) { /* frozen: the rows past it are walked in FTS5 */
        if (m->upto < *upto)
            *upto = m->upto;
        *out = m;
        return CTX_OK;
    }
    /*
     * Built on its TFMAP_ADMIT-th search, if room can be made from maps
     * asked for less: a build costs about what that many walks of the
     * doclist in a MATCH do, so a word asked for once is never paid for.
     */
    if (!m->built && (m->uses < TFMAP_ADMIT || rc->builds >= TFMAP_BUILDS_PER_SEARCH ||
                      !make_room(rc, m, df > 0 ? (size_t)df : 0)))
        return CTX_OK;
    rc->builds += !m->built;
    if (m->upto < rc->loaded || !m->built) {
        if ((r = tfmap_extend(rc, m, rc->loaded, err)) <= 0) {
            /* Half built is no use: count it from scratch. */
            rc->entries -= m->n;
            m->n = 0;
            m->upto = 0;
            m->built = 0;
            return r < 0 ? -r : CTX_OK;
        }
        if (rc->entries > RANK_TFMAP_BUDGET)
            make_room(rc, m, 0); /* df was stale: back under the budget */
    }
    if (rc->loaded < *upto)
        *upto = rc->loaded;
    *out = m;
    return CTX_OK;
}
