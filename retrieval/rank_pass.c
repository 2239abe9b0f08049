/*
 * rank_pass.c - ranking from memory alone (rank.h): the passes over the
 * frequency maps, driven by the terms' rows (rank_map_pass) or by the
 * caller's own rows (rank_readable_pass).
 */
#include "rank_int.h"

#include <math.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/stmt.h"

/* docsize_len - title + text tokens of chunk id from its docsize row (an id the
 * chunk map has no length for); -1 if none. */
static int docsize_len(rank_conn *rc, int64_t id, ctx_error *err, int *len)
{
    sqlite3_stmt *s;
    int step;

    *len = -1;
    if (stmt_get(rc->db, "SELECT sz FROM chunks_fts_docsize WHERE id = ?1", &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    sqlite3_bind_int64(s, 1, id);
    if ((step = sqlite3_step(s)) == SQLITE_ROW)
        *len = rank__docsize_len(sqlite3_column_blob(s, 0), sqlite3_column_bytes(s, 0));
    stmt_put(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(rc->db));
    return CTX_OK;
}

/* row_len - title + text tokens of chunk id, from the map or its docsize row; -1 if none. */
static inline int row_len(rank_conn *rc, int64_t id, ctx_error *err, int *len)
{
    int64_t slot = rank__cmap_slot(&rc->map, id);

    if (slot >= 0 && (*len = rc->map.len[slot]) >= 0)
        return CTX_OK;
    return docsize_len(rc, id, err, len);
}

/* map_row_ok - chunk id of a map is committed as the chunk map knows it and
 * q's caller may read it (q's readable and sources bitmaps). */
static inline int map_row_ok(const rank_conn *rc, const rank_query *q, int64_t id)
{
    int64_t slot = id <= rc->loaded ? rank__cmap_slot(&rc->map, id) : -1;

    return slot >= 0 && rc->map.acl[slot] &&
           (!q->readable || rank_bit(q->readable, q->nreadable, rc->map.acl[slot])) &&
           (!q->sources || rank_bit(q->sources, q->nsources, rc->map.src[slot]));
}

/* ---- a caller's readable chunks, a bit per id ---- */

void rank__rbits_free(rank_conn *rc)
{
    for (int i = 0; i < RANK_RBITS_KEEP; i++) {
        ctx_free(rc->rbits[i].sets);
        ctx_free(rc->rbits[i].srcs);
        ctx_free(rc->rbits[i].bits);
    }
    memset(rc->rbits, 0, sizeof rc->rbits);
}

/* in_sources - chunk map slot s is of a source q asks for. */
static inline int in_sources(const rank_cmap *m, const rank_query *q, int64_t s)
{
    return !q->sources || rank_bit(q->sources, q->nsources, m->src[s]);
}

/* rbits_scan - set the bits of the live readable chunks in (b->upto, rc->loaded]
 * of q's sources, in id order through the chunk map's slots. */
static void rbits_scan(const rank_conn *rc, const rank_query *q, rank_rbits *b)
{
    const rank_cmap *m = &rc->map;
    int64_t w0 = (b->upto + 1) >> 6;

    for (int64_t w = w0; w < m->nwords && w < b->nwords; w++) {
        uint64_t left = m->w[w].bits;
        int64_t s = (int64_t)m->w[w].before;
        for (; left; left &= left - 1, s++) {
            int64_t id = w * 64 + __builtin_ctzll(left);
            if (id > b->upto && id <= rc->loaded && m->acl[s] &&
                rank_bit(q->readable, q->nreadable, m->acl[s]) && in_sources(m, q, s))
                b->bits[id >> 6] |= (uint64_t)1 << (id & 63);
        }
    }
}

/* rbits_lists - set the bits of the live chunks of q's sources in each
 * readable ACL set from its list: for a caller who reads a small part of
 * the chunks. */
static void rbits_lists(const rank_conn *rc, const rank_query *q, rank_rbits *b)
{
    const rank_cmap *m = &rc->map;
    int64_t nsets = q->nreadable < m->nbyacl ? q->nreadable : m->nbyacl;

    for (int64_t a = 1; a < nsets; a++) {
        const rank_idlist *l = &m->byacl[a];
        if (!rank_bit(q->readable, q->nreadable, a))
            continue;
        for (uint32_t j = 0; j < l->n && (int64_t)l->ids[j] <= rc->loaded; j++) {
            int64_t id = l->ids[j], slot = rank__cmap_slot(m, id);
            if (slot >= 0 && m->acl[slot] && in_sources(m, q, slot)) /* live, asked for */
                b->bits[id >> 6] |= (uint64_t)1 << (id & 63);
        }
    }
}

/*
 * rbits_get - q's caller's readable chunks of q's sources up to rc->loaded
 * as bits, kept from an earlier search with the same readable sets and
 * sources when the chunk map has forgotten nothing since; NULL when q
 * reads everything, or out of memory (the caller then asks the chunk map
 * row by row).
 */
static int rbits_for(const rank_rbits *x, const rank_query *q)
{
    return x->sets && x->nsets == q->nreadable &&
           !memcmp(x->sets, q->readable, (size_t)(q->nreadable + 7) / 8) &&
           !x->srcs == !q->sources &&
           (!q->sources || (x->nsrcs == q->nsources &&
                            !memcmp(x->srcs, q->sources, (size_t)(q->nsources + 7) / 8)));
}

static const rank_rbits *rbits_get(rank_conn *rc, const rank_query *q)
{
    size_t bytes = (size_t)(q->nreadable + 7) / 8, sbytes = (size_t)(q->nsources + 7) / 8;
    int64_t nwords = (rc->loaded >> 6) + 1, rows = 0;
    rank_rbits *b = NULL;

    if (!q->readable)
        return NULL;
    for (int i = 0; i < RANK_RBITS_KEEP; i++) {
        rank_rbits *x = &rc->rbits[i];
        if (rbits_for(x, q)) {
            b = x;
            break;
        }
        if (!b || x->used < b->used)
            b = x; /* the least recently used, if none matches */
    }
    b->used = rc->tick;
    if (rbits_for(b, q) && b->epoch == rc->epoch && b->nwords >= nwords) {
        if (b->upto < rc->loaded) { /* chunks committed since: set theirs */
            rbits_scan(rc, q, b);
            b->upto = rc->loaded;
        }
        return b;
    }
    ctx_free(b->sets);
    ctx_free(b->srcs);
    ctx_free(b->bits);
    memset(b, 0, sizeof *b);
    /* room for the ids to come, so the next chunks only add bits */
    nwords += nwords / 8 + 16;
    if (!(b->sets = ctx_malloc(bytes ? bytes : 1)) ||
        (q->sources && !(b->srcs = ctx_malloc(sbytes ? sbytes : 1))) ||
        !(b->bits = ctx_calloc((size_t)nwords, sizeof *b->bits))) {
        ctx_free(b->sets);
        ctx_free(b->srcs);
        b->sets = NULL;
        b->srcs = NULL;
        return NULL;
    }
    memcpy(b->sets, q->readable, bytes);
    b->nsets = q->nreadable;
    if (q->sources) {
        memcpy(b->srcs, q->sources, sbytes);
        b->nsrcs = q->nsources;
    }
    b->nwords = nwords;
    b->epoch = rc->epoch;
    b->upto = 0;
    b->used = rc->tick;
    if (!rc->map.nolists)
        for (int64_t a = 1; a < q->nreadable && a < rc->nacl; a++)
            if (rank_bit(q->readable, q->nreadable, a))
                rows += rc->acl_rows[a];
    if (!rc->map.nolists && rows < rc->live_rows / 8)
        rbits_lists(rc, q, b);
    else
        rbits_scan(rc, q, b);
    b->upto = rc->loaded;
    return b;
}

static inline int rbits_has(const rank_rbits *b, int64_t id)
{
    return id > 0 && id <= b->upto && (b->bits[id >> 6] >> (id & 63) & 1);
}

/*
 * score_bound - the most a row with these frequencies can score, whatever
 * its length: rank_score at length 0 (norm0, the smallest norm), a hair
 * over so that rounding never puts it under the row's score.
 */
static inline double score_bound(const rank_query *q, const double *freq, double norm0)
{
    double score = 0;

    for (int i = 0; i < q->nterms; i++) /* as rank_score adds them */
        if (freq[i] != 0)
            score += rank__term_score(q->idf[i], freq[i], norm0);
    return score * (1 + 1e-9);
}

/* row_score - rank_score of chunk id with these frequencies, its length read
 * from the chunk map (or its docsize row); on an error 0 and *r set. */
static inline double row_score(rank_conn *rc, const rank_query *q, int64_t id,
                               const double *freq, int *r, ctx_error *err)
{
    int len;

    if ((*r = row_len(rc, id, err, &len)))
        return 0;
    if (len < 0) {
        *r = ctx_error_set(err, CTX_ESTORE, "search: chunk %lld has no length", (long long)id);
        return 0;
    }
    return rank__score(q, freq, len);
}

/* desc_has - does map m hold id? For ids asked in falling order: *c is
 * where the last ended (m's ids below c are at most the last id asked), so
 * a pass steps through m once, as through a merge. */
static inline int desc_has(const rank_tfmap *m, size_t *c, uint32_t id)
{
    size_t p = *c;

    while (p && m->ids[p - 1] > id)
        p--;
    *c = p;
    return p && m->ids[p - 1] == id;
}

/*
 * least_freq - with one driving term d: the least frequency from lo up of a
 * row whose bound, as rank_map_pass takes it (d's score at length 0 plus
 * the looked-up terms' ceilings, a hair over), reaches bar; 65536 for none.
 * The bound rises with the frequency (by far more than rounding moves it),
 * so a binary search finds it, and a row under it fails the test exactly.
 */
static uint32_t least_freq(double idf, double norm0, double look_ceiling, double bar,
                           uint32_t lo)
{
    uint32_t hi = 65536;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((rank__term_score(idf, (double)mid, norm0) + look_ceiling) * (1 + 1e-9) < bar)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * What rank_map_pass keeps: its terms by role, the bar, and the rows that
 * passed the bound waiting for their lengths. A row's length is a read far
 * from the rest (a cache miss a row where the rows are scattered), so each
 * is asked for ahead (a prefetch) and MAP_PEND of them are scored together,
 * their reads overlapping; the bar is then a few rows late, which only
 * lets a row more through the bound.
 */
#define MAP_PEND 8

typedef struct map_walk {
    rank_conn *rc;
    rank_query *q;
    rank_push_fn push;
    void *arg;
    size_t pos[RANK_MAX_TERMS];     /* driving and avoided maps: next row at pos - 1 */
    int dv[RANK_MAX_TERMS], av[RANK_MAX_TERMS], lv[RANK_MAX_TERMS], nd, na, nl;
    double bar, norm0, look_ceiling;
    uint32_t fmin;                  /* one driving term: a lesser frequency cannot reach bar */
    int prune;                      /* nothing counted: demote driving terms (MaxScore) */
    int npend;
    int64_t pend_id[MAP_PEND], pend_slot[MAP_PEND];
    double pend_freq[MAP_PEND][RANK_MAX_TERMS];
} map_walk;

/* walk_raised - the bar rose to w->bar: with nothing counted, demote the
 * driving term of the least ceiling while it and the looked-up ones cannot
 * reach it; with one driving term left, the frequency it needs. */
static void walk_raised(map_walk *w)
{
    const rank_query *q = w->q;

    while (w->prune && w->nd > 0) {
        int least = 0;
        for (int j = 1; j < w->nd; j++)
            if (q->idf[w->dv[j]] < q->idf[w->dv[least]])
                least = j;
        if ((w->look_ceiling + q->idf[w->dv[least]] * (RANK_K1 + 1.0)) * (1 + 1e-9) >= w->bar)
            break;
        w->look_ceiling += q->idf[w->dv[least]] * (RANK_K1 + 1.0);
        w->q->pos[w->dv[least]] = w->pos[w->dv[least]];
        w->lv[w->nl++] = w->dv[least];
        w->dv[least] = w->dv[--w->nd];
    }
    if (w->nd == 1)
        w->fmin = least_freq(q->idf[w->dv[0]], w->norm0, w->look_ceiling, w->bar, w->fmin);
}

/* walk_flush - score the waiting rows, in the order they came (a row the
 * bar rose past while it waited is scored all the same: its length is
 * read by now, and a second bound costs about what the score does).
 * CTX_OK or a store error. */
static int walk_flush(map_walk *w, ctx_error *err)
{
    int n = w->npend, r;

    w->npend = 0;
    for (int i = 0; i < n; i++) {
        const double *freq = w->pend_freq[i];
        int len;
        double bar;
        if (w->pend_slot[i] < 0 || (len = w->rc->map.len[w->pend_slot[i]]) < 0) {
            if ((r = docsize_len(w->rc, w->pend_id[i], err, &len)))
                return r;
            if (len < 0)
                return ctx_error_set(err, CTX_ESTORE, "search: chunk %lld has no length",
                                     (long long)w->pend_id[i]);
        }
        bar = w->push(w->arg, w->pend_id[i], rank__score(w->q, freq, len));
        if (bar != w->bar && bar != -INFINITY) {
            w->bar = bar;
            walk_raised(w);
        }
        w->bar = bar;
    }
    return CTX_OK;
}

int64_t rank_map_pass(rank_conn *rc, rank_query *q, uint32_t drive, uint32_t avoid,
                      const int64_t *skip, size_t nskip, int64_t window, rank_push_fn push,
                      void *arg, ctx_error *err)
{
    map_walk *w, walk;
    size_t sk = nskip;
    int64_t pushed = 0;
    int nd, na, nl;
    uint32_t fmin;
    double bar, look_ceiling, norm0;
    const rank_rbits *rb = rbits_get(rc, q); /* NULL: the chunk map is asked */
    int r;

    w = &walk;
    w->rc = rc;
    w->q = q;
    w->push = push;
    w->arg = arg;
    w->nd = w->na = w->nl = w->npend = 0;
    w->bar = -INFINITY;
    /* the length norm at length 0, the least: what score_bound scores with */
    w->norm0 = rank__length_norm(0, q->avg);
    w->look_ceiling = 0;
    w->fmin = 0;
    /* Nothing counted, so a row that cannot reach the bar need not be
     * visited: a driving term that cannot lift a row to the bar with the
     * looked-up ones is looked up too (MaxScore). */
    w->prune = window <= 0 && !nskip;
#define ROW_OK(id) (rb ? rbits_has(rb, id) : map_row_ok(rc, q, id))
    for (int i = 0; i < q->nterms; i++) {
        const rank_tfmap *m = q->map[i];
        size_t lo = 0, hi;
        if (!m)
            return -ctx_error_set(err, CTX_EINVAL, "search: a map pass needs every term's map");
        /* driving and avoided maps: the next row is at pos - 1, the newest <= q->upto */
        for (hi = m->n; lo < hi;) {
            size_t mid = lo + (hi - lo) / 2;
            if ((int64_t)m->ids[mid] <= q->upto)
                lo = mid + 1;
            else
                hi = mid;
        }
        w->pos[i] = lo;
        q->pos[i] = lo;
        if (drive >> i & 1)
            w->dv[w->nd++] = i;
        else if (avoid >> i & 1)
            w->av[w->na++] = i;
        else {
            w->lv[w->nl++] = i;
            /* a term adds less than this to any row (rank.h) */
            w->look_ceiling += q->idf[i] * (RANK_K1 + 1.0);
        }
    }
    /* the loop's copies of what only walk_flush changes */
    nd = w->nd;
    na = w->na;
    nl = w->nl;
    bar = w->bar;
    fmin = w->fmin;
    look_ceiling = w->look_ceiling;
    norm0 = w->norm0;
    while (nd > 0) {
        int64_t id = -1;
        double *freq = w->pend_freq[w->npend], bound = 0;
        int j;

        if (nd == 1) {
            /* One driving map (one word, most often a common one): step
             * past the rows the caller may not read in a tight loop, as a
             * caller who reads little would otherwise merge the whole map;
             * with nothing counted, past those that cannot reach the bar. */
            const rank_tfmap *m = q->map[w->dv[0]];
            size_t p = w->pos[w->dv[0]];
            if (w->prune)
                while (p && (m->freq[p - 1] < fmin || !ROW_OK(m->ids[p - 1])))
                    p--;
            else
                while (p && !ROW_OK(m->ids[p - 1]))
                    p--;
            if (!p)
                break;
            id = m->ids[--p];
            w->pos[w->dv[0]] = p;
            freq[w->dv[0]] = m->freq[p];
        } else {
            /* the next id down, over the driving maps; each that holds it
             * steps past it */
            for (j = 0; j < nd; j++) {
                size_t p = w->pos[w->dv[j]];
                if (p && (int64_t)q->map[w->dv[j]]->ids[p - 1] > id)
                    id = q->map[w->dv[j]]->ids[p - 1];
            }
            if (id < 0)
                break;
            for (j = 0; j < nd; j++) {
                const rank_tfmap *m = q->map[w->dv[j]];
                size_t p = w->pos[w->dv[j]];
                if (p && m->ids[p - 1] == (uint64_t)id) {
                    freq[w->dv[j]] = m->freq[p - 1];
                    w->pos[w->dv[j]] = p - 1;
                } else {
                    freq[w->dv[j]] = 0;
                }
            }
            if (!ROW_OK(id)) /* dead before the map was loaded, or not the caller's */
                continue;
        }
        while (sk && skip[sk - 1] > id) /* ids come down, the skip list goes up */
            sk--;
        if (sk && skip[sk - 1] == id)
            continue;
        for (j = 0; j < na; j++) /* a row holding an avoided term is no row of this pass */
            if (desc_has(q->map[w->av[j]], &q->pos[w->av[j]], (uint32_t)id))
                break;
        if (j < na)
            continue;
        /* A row that cannot beat the bar is counted, not scored: its length
         * is a read from memory far from the rest. First the bound with the
         * terms looked up at their ceilings, so that a lookup is saved too. */
        if (bar != -INFINITY) {
            if (nd == 1) {
                if (freq[w->dv[0]] < fmin)
                    goto counted;
            } else {
                for (j = 0; j < nd; j++)
                    if (freq[w->dv[j]] != 0)
                        bound += rank__term_score(q->idf[w->dv[j]], freq[w->dv[j]], norm0);
                if ((bound + look_ceiling) * (1 + 1e-9) < bar)
                    goto counted;
            }
        }
        for (j = 0; j < na; j++)
            freq[w->av[j]] = 0;
        for (j = 0; j < nl; j++)
            freq[w->lv[j]] = rank__tfmap_freq(q->map[w->lv[j]], id, &q->pos[w->lv[j]]);
        if (bar == -INFINITY || score_bound(q, freq, norm0) >= bar) {
            int64_t slot = rank__cmap_slot(&rc->map, id);
            if (slot >= 0)
                __builtin_prefetch(&rc->map.len[slot]);
            w->pend_id[w->npend] = id;
            w->pend_slot[w->npend] = slot;
            if (++w->npend == MAP_PEND) {
                if ((r = walk_flush(w, err)))
                    return -r;
                nd = w->nd;
                nl = w->nl;
                bar = w->bar;
                fmin = w->fmin;
                look_ceiling = w->look_ceiling;
            }
        }
    counted:
        if (++pushed == window)
            break;
    }
#undef ROW_OK
    if ((r = walk_flush(w, err)))
        return -r;
    return pushed;
}

int rank_by_acl(const rank_conn *rc)
{
    return !rc->map.nolists;
}

int64_t rank_readable_pass(rank_conn *rc, rank_query *q, rank_push_fn push, void *arg,
                           ctx_error *err)
{
    const rank_cmap *m = &rc->map;
    const rank_rbits *b;
    size_t pos[RANK_MAX_TERMS] = {0};
    int64_t pushed = 0, last;
    double bar = -INFINITY, norm0 = rank__length_norm(0, q->avg);
    int r;

    if (m->nolists || !q->readable)
        return -ctx_error_set(err, CTX_EINVAL, "search: a pass over the caller's rows needs"
                              " the chunks by ACL set and the caller's readable sets");
    for (int i = 0; i < q->nterms; i++)
        if (!q->map[i])
            return -ctx_error_set(err, CTX_EINVAL, "search: a map pass needs every term's map");
    if (!(b = rbits_get(rc, q)))
        return -ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    /* the caller's rows in ascending order: each term's lookup gallops on
     * from the last through memory close to it */
    last = q->upto < b->upto ? q->upto : b->upto;
    for (int64_t w = 0; w <= last >> 6; w++) {
        for (uint64_t left = b->bits[w]; left; left &= left - 1) {
            int64_t id = w * 64 + __builtin_ctzll(left);
            double freq[RANK_MAX_TERMS], score;
            int any = 0;

            if (id > last)
                break;
            for (int i = 0; i < q->nterms; i++)
                any |= (freq[i] = rank__tfmap_freq(q->map[i], id, &pos[i])) != 0;
            if (!any || (bar != -INFINITY && score_bound(q, freq, norm0) < bar))
                continue;
            score = row_score(rc, q, id, freq, &r, err);
            if (r)
                return -r;
            bar = push(arg, id, score);
            pushed++;
        }
    }
    return pushed;
}
