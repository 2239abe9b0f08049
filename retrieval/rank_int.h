/*
 * rank_int.h - what rank.c (scoring, the chunk map, frequency maps) and
 * rank_stats.c (the statistics over a caller's readable set, the warm-up
 * and the copy of a warm state) share. Not a face: nothing outside those
 * two files includes it.
 */
#ifndef CTX_RETRIEVAL_RANK_INT_H
#define CTX_RETRIEVAL_RANK_INT_H

#include "rank.h"

typedef struct rank_dftab rank_dftab;

/*
 * The chunk map: chunk id -> ACL set, source and title + text length, kept
 * for the live chunks only, so its memory follows them and not the
 * highest id ever issued (ids are never reused, and every change of a
 * document or of its ACL issues new ones). A bit per id up to the highest
 * mapped says whether the id has a slot; its slot is the number of slots
 * before its 64-id word (kept beside the word's bits, one cache line)
 * plus the set bits below it in the word.
 * A deleted chunk's slot keeps acl 0 until rank__cmap_compact drops the
 * dead slots (once they outnumber the live ones).
 */
typedef struct rank_cmap_word {
    uint64_t bits;              /* bit i: id 64w + i has a slot */
    uint64_t before;            /* the slots of the words before it (one cache line) */
} rank_cmap_word;

/*
 * The chunks of one ACL set, ascending, so a caller who reads little can
 * walk their own rows rather than every row holding a word. A chunk deleted
 * since the last compaction stays listed (its slot's acl is 0).
 */
typedef struct rank_idlist {
    uint32_t *ids;
    uint32_t n, cap;
} rank_idlist;

typedef struct rank_cmap {
    rank_cmap_word *w;          /* nwords words */
    int64_t nwords, capwords;
    int32_t *acl, *src, *len;   /* per slot; acl 0 = deleted, len -1 = unknown */
    int64_t nslots, capslots, dead;
    rank_idlist *byacl;         /* per ACL set id: its chunks (nbyacl sets) */
    int64_t nbyacl;
    int nolists;                /* an id past UINT32_MAX: byacl is not kept */
} rank_cmap;

/* rank__popcount - the set bits of x. __builtin_popcountll is a call into
 * libgcc unless the build targets the popcnt instruction; a row looked up
 * in the chunk map pays for one, so without it the bits are added here. */
static inline int rank__popcount(uint64_t x)
{
#ifdef __POPCNT__
    return __builtin_popcountll(x);
#else
    x -= (x >> 1) & 0x5555555555555555u;
    x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fu;
    return (int)((x * 0x0101010101010101u) >> 56);
#endif
}

/* rank__cmap_slot - chunk id's slot in m, or -1 when it has none. */
static inline int64_t rank__cmap_slot(const rank_cmap *m, int64_t id)
{
    int64_t w = id >> 6;
    uint64_t bit;
    const rank_cmap_word *x;

    if (id <= 0 || w >= m->nwords)
        return -1;
    x = &m->w[w];
    bit = (uint64_t)1 << (id & 63);
    if (!(x->bits & bit))
        return -1;
    return (int64_t)x->before + rank__popcount(x->bits & (bit - 1));
}

/* rank__cmap_acl - the ACL set of chunk id, 0 when it is not a live mapped chunk. */
static inline int32_t rank__cmap_acl(const rank_cmap *m, int64_t id)
{
    int64_t s = rank__cmap_slot(m, id);
    return s < 0 ? 0 : m->acl[s];
}

/* rank__cmap_append - map id (past every id mapped) to (acl, src, len) and
 * list it under acl: 0, or CTX_ENOMEM (the map unchanged). */
int rank__cmap_append(rank_cmap *m, int64_t id, int32_t acl, int32_t src, int32_t len);

/* rank__cmap_compact - drop the dead slots when they outnumber the live ones. */
void rank__cmap_compact(rank_cmap *m);

/* rank__cmap_free - release m's arrays; m is then empty. */
void rank__cmap_free(rank_cmap *m);

/* rank__cmap_copy - dst (empty) becomes a copy of src: 0 or CTX_ENOMEM. */
int rank__cmap_copy(rank_cmap *dst, const rank_cmap *src);

/*
 * A caller's readable chunks as a bit per chunk id (rank_pass.c): a bit
 * test in a few hundred kilobytes that stay in cache, where the chunk map's
 * ACL array (4 bytes a chunk) misses it a row at a time. Kept per readable
 * set of ACL sets and source filter (a service names the sources an agent
 * is granted in every search), the last RANK_RBITS_KEEP asked for, and made again when
 * the chunk map forgets a chunk (its epoch moves).
 */
#define RANK_RBITS_KEEP 8

typedef struct rank_rbits {
    uint8_t *sets;              /* the readable ACL-set bitmap it was made for */
    int64_t nsets;              /* bits in sets */
    uint8_t *srcs;              /* the source bitmap it was made for, NULL = any */
    int64_t nsrcs;              /* bits in srcs */
    uint64_t epoch;             /* rc->epoch when made */
    uint64_t *bits;             /* bit per chunk id <= upto: live and readable */
    int64_t upto, nwords;
    uint64_t used;              /* rc->tick of its last use */
} rank_rbits;

struct rank_conn {
    sqlite3 *db;
    fts5_api *api;
    fts5_tokenizer tok;
    Fts5Tokenizer *tokenizer;
    int vocab;                  /* temp.ctx_vocab exists (rank_stats_refresh) */
    rank_cmap map;              /* the chunk map (above) */
    int64_t loaded;             /* every committed id <= loaded is mapped */
    int64_t gone_seq;           /* chunks_gone entries <= gone_seq are applied */
    /*
     * Per ACL set id: the live chunks the map holds and their title + text
     * tokens, so the totals over a readable set are a sum over its sets.
     */
    int64_t *acl_rows, *acl_tokens;
    int64_t nacl;               /* slots in both */
    int64_t live_rows, live_tokens;     /* over every set */
    /* FTS5's own totals minus ours at the last full load: a move says a
     * chunk was deleted (rank_chunks_load) */
    int64_t drift_rows, drift_tokens;
    uint64_t epoch;             /* bumped when the map forgets chunks (reload or log) */
    int64_t reloads;            /* full reloads of the map after a deletion */
    /* frequency maps of common words (rank.h) */
    rank_tfmap **maps;
    size_t nmaps, capmaps;
    size_t nshared;             /* of them, shared (built by rank_warm) */
    uint32_t *mapslot;          /* open addressing by word: index + 1 into maps, 0 = empty */
    size_t nmapslot;            /* a power of two, at least twice nmaps; 0 = none (scan) */
    size_t entries;             /* in all maps but the shared ones */
    size_t shared_entries;      /* in the shared ones */
    uint64_t tick;              /* searches so far */
    int builds;                 /* maps built by this search */
    /* document frequencies per (word, ACL set) (rank_stats.c) */
    rank_dftab **dfs;
    size_t ndfs, capdfs;
    uint32_t *dfslot;           /* open addressing: index + 1 into dfs, 0 = empty */
    size_t ndfslot;             /* a power of two, at least twice ndfs */
    size_t dfpairs;             /* (ACL set, count) pairs in all tables */
    int32_t *scratch;           /* nacl counters, zero between counts */
    rank_rbits rbits[RANK_RBITS_KEEP]; /* readable chunks by caller (rank_pass.c) */
    rank_conn *next;            /* in the registry */
};

/* rank__rbits_free - (rank-internal) forget every caller's readable bits. */
void rank__rbits_free(rank_conn *rc);

/*
 * The entries of a map rank_warm built: shared by every connection that
 * copied it (rank_copy), so never changed again and freed by the last.
 */
typedef struct rank_tfshare {
    uint32_t *ids;
    uint16_t *freq;
    int refs;                   /* atomic */
} rank_tfshare;

struct rank_tfmap {
    char *word;
    uint32_t *ids;              /* ascending chunk ids holding the word */
    uint16_t *freq;             /* its weighted frequency in each */
    size_t n, cap;
    int64_t upto;               /* every chunk id <= upto holding it is in */
    /* set: ids and freq are shared, frozen at upto (never extended, never
     * evicted, outside the budget); rows past upto are walked in FTS5 */
    rank_tfshare *share;
    uint64_t used;              /* the tick of the last search that asked for it */
    uint32_t uses;              /* searches that asked for it, halved now and then */
    int built;                  /* 0: only counted so far, no entries */
};

/* rank__state_clear - (rank-internal) rc forgets its chunk map, counts and maps: as if new. */
void rank__state_clear(rank_conn *rc);

/* rank__tfmap_free - (rank-internal) free m (its entries when the last holds them). */
void rank__tfmap_free(rank_tfmap *m);

/* rank__map_index - (rank-internal) index rc's maps by word anew. */
void rank__map_index(rank_conn *rc);

/* rank__dftabs_free - (rank-internal) free every df table of rc. */
void rank__dftabs_free(rank_conn *rc);

/* rank__dfcount_fn - (rank-internal) the ctx_dfcount() auxiliary function. */
void rank__dfcount_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
                      int nval, sqlite3_value **val);

/* rank__word_hash - FNV-1a of a word, for the tables kept by word. */
static inline uint32_t rank__word_hash(const char *w)
{
    uint32_t h = 2166136261u;
    while (*w)
        h = (h ^ (unsigned char)*w++) * 16777619u;
    return h;
}

/* rank__tfmap_warm - (rank-internal) build word's map (df chunks) if it
 * fits the shared budget, frozen and shareable; CTX_OK or a store error. */
int rank__tfmap_warm(rank_conn *rc, const char *word, int64_t df, ctx_error *err);

/* rank__dftabs_copy - (rank-internal) dst's df tables become a copy of src's. */
int rank__dftabs_copy(rank_conn *dst, const rank_conn *src);

/* rank__tfmap_peek - (rank-internal) word's built map, or NULL; borrowed. */
const rank_tfmap *rank__tfmap_peek(const rank_conn *rc, const char *word);

/* rank__docsize_len - title + text tokens from an FTS5 docsize blob; -1 if it has none. */
int32_t rank__docsize_len(const unsigned char *p, int n);

/*
 * rank__tfmap_freq - the word's frequency in chunk id; 0 when it has none. *pos
 * is where the last lookup ended (the first index at or past its id): a
 * walk in either direction gallops on from there through memory it just
 * read, where a binary search from the start would miss the cache at most
 * steps.
 */
static inline double rank__tfmap_freq(const rank_tfmap *m, int64_t id, size_t *pos)
{
    size_t lo = *pos < m->n ? *pos : m->n, hi, step = 1;
    uint32_t x;

    if (id < 0 || id > (int64_t)UINT32_MAX)
        return 0;
    x = (uint32_t)id;
    /* bracket the first index at or past id in [lo, hi) */
    if (lo > 0 && m->ids[lo - 1] >= x) { /* down: it is at most lo - 1 */
        hi = lo - 1;
        while (hi >= step && m->ids[hi - step] >= x) {
            hi -= step;
            step *= 2;
        }
        lo = hi >= step ? hi - step + 1 : 0;
        hi++;
    } else { /* up: it is at least lo */
        while (lo + step < m->n && m->ids[lo + step] < x) {
            lo += step;
            step *= 2;
        }
        hi = lo + step < m->n ? lo + step + 1 : m->n;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ids[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return lo < m->n && m->ids[lo] == x ? m->freq[lo] : 0;
}

/* The parts of BM25, shared by ctx_rank and rank_map_pass so both give a
 * row the same score to the last bit. */
static inline double rank__length_norm(int len, double avg)
{
    return RANK_K1 * (1.0 - RANK_B + RANK_B * (double)len / avg);
}

static inline double rank__term_score(double idf, double freq, double norm)
{
    return idf * (freq * (RANK_K1 + 1.0)) / (freq + norm);
}

/* rank__score - rank_score (rank.h), inline for the passes over the maps. */
static inline double rank__score(const rank_query *q, const double *freq, int len)
{
    double score = 0, norm = rank__length_norm(len, q->avg);

    /* as ctx_rank adds them: in term order, a term the row lacks skipped */
    for (int i = 0; i < q->nterms; i++)
        if (freq[i] != 0)
            score += rank__term_score(q->idf[i], freq[i], norm);
    return score;
}

#endif
