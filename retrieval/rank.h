/*
 * rank.h - what lexical search needs from SQLite beyond SQL, kept per
 * connection:
 *
 *  - ctx_rank(), an FTS5 auxiliary function that scores a row with BM25 over
 *    the query's terms only (FTS5's bm25() also loops over every permission
 *    phrase of the MATCH and scans each phrase's whole doclist for its IDF),
 *    and that drops a row the caller may not read before scoring it;
 *  - the statistics behind a score, over the chunks the caller may read
 *    only: their number, mean length and each word's document frequency
 *    (rank_readable_totals, rank_readable_df), so neither a score nor an
 *    order says anything about a chunk the caller cannot read;
 *  - an in-memory map chunk id -> (ACL set, source, length), so the
 *    permission check of a candidate row is a bit test, a popcount and an
 *    array read rather than a B-tree lookup; it holds the live chunks only
 *    (rank_int.h: rank_cmap), so its memory follows them, not the highest
 *    id ever issued.
 *
 * The map is sound because a chunk row never changes: chunk ids come from
 * AUTOINCREMENT and are never reused, and a changed ACL re-indexes a
 * document's chunks under new ids (store_doc_set_acl). The map only ever
 * loads committed rows (outside any transaction); any id beyond it is looked
 * up in SQL, so a row the map has not seen is checked, never assumed.
 */
#ifndef CTX_RETRIEVAL_RANK_H
#define CTX_RETRIEVAL_RANK_H

#include <sqlite3.h>
#include <stdint.h>

#include "../core/ctx.h"

#define RANK_MAX_TERMS 32

/* BM25 as FTS5's bm25() computes it; a title occurrence counts double.
 * A term adds less than its IDF times (RANK_K1 + 1) to any row. */
#define RANK_K1 1.2
#define RANK_B 0.75
#define RANK_W_TITLE 2.0
#define RANK_W_TEXT 1.0

typedef struct rank_conn rank_conn;
typedef struct rank_tfmap rank_tfmap;

/*
 * rank_collect - rows ctx_rank keeps instead of scoring them: each row the
 * chunk map decided and the caller may read, with its title + text length
 * and each term's frequency (n * nterms, row by row). Owned by the caller.
 */
typedef struct rank_collect {
    int64_t *ids;
    int32_t *lens;
    double *freq;
    size_t n, cap;
} rank_collect;

/*
 * rank_query - one search's parameters to ctx_rank(chunks_fts, ?), passed
 * with sqlite3_bind_pointer(.., RANK_QUERY_PTR, NULL). Phrases
 * first_phrase .. first_phrase + nterms - 1 of the MATCH expression are the
 * query's terms, in order; idf[] holds their weights.
 */
typedef struct rank_query {
    int first_phrase, nterms;
    double idf[RANK_MAX_TERMS];
    /*
     * A term with map[i] set is scored from that frequency map and has no
     * phrase in the MATCH; the phrases are the other terms, in order. A row
     * past the map's upto must not reach ctx_rank (bound the MATCH's rowid).
     */
    const rank_tfmap *map[RANK_MAX_TERMS];
    size_t pos[RANK_MAX_TERMS];     /* where each map's last lookup ended */
    int64_t upto;                   /* every map holds the rows <= upto, and a
                                     * map pass stops there (rank_tfmap_get) */
    /* The permission check, or readable == NULL for none (the MATCH holds it). */
    const uint8_t *readable;        /* bit per ACL set id the caller may read */
    int64_t nreadable;              /* bits in readable */
    const uint8_t *sources;         /* bit per source id wanted, or NULL for all */
    int64_t nsources;
    const rank_conn *rc;            /* its chunk map */
    double avg;                     /* mean title + text length over the readable chunks */
    /* Set: ctx_rank scores nothing and keeps the rows here instead (rows
     * the chunk map has not loaded give NULL, and readable must be set). */
    rank_collect *collect;
} rank_query;

#define RANK_QUERY_PTR "ctxgate_rank_query"

/*
 * rank_attach - the connection's rank state, registering ctx_rank() on
 * first use. The state lives as long as the connection: SQLite frees it in
 * sqlite3_close. NULL with err set if FTS5 is missing.
 */
rank_conn *rank_attach(sqlite3 *db, ctx_error *err);

/*
 * rank_score - the score ctx_rank gives a row of length len whose terms
 * (q's, in order) have frequencies freq[0 .. q->nterms - 1], to the bit.
 */
double rank_score(const rank_query *q, const double *freq, int len);

/*
 * rank_tokenize - text's index terms, as the index's tokenizer makes them
 * from a document: each goes to fn(arg, flags, term, nterm, start, end)
 * (FTS5's xTokenize callback; start and end are byte offsets of the word
 * in text). A non-zero return from fn stops it and is returned.
 */
int rank_tokenize(rank_conn *rc, const char *text, int len, void *arg,
                  int (*fn)(void *, int, const char *, int, int, int));

/* rank_idf - FTS5's IDF: log((N - df + 0.5) / (df + 0.5)), at least 1e-6. */
double rank_idf(int64_t n, int64_t df);

/*
 * rank_chunks_load - extend the chunk map with rows committed since the last
 * call, and load it anew when FTS5's totals say a mapped chunk was deleted.
 * Does nothing inside a write transaction (its rows may still roll back); a
 * read transaction sees committed rows only.
 */
int rank_chunks_load(rank_conn *rc, ctx_error *err);

/*
 * rank_readable_totals - over the chunks the chunk map holds (call
 * rank_chunks_load first) whose ACL set has its bit in readable: how many
 * (*rows) and their mean title + text length in tokens (*avg, 1 when there
 * are none). A sum of per-ACL-set counters the map keeps.
 */
void rank_readable_totals(const rank_conn *rc, const uint8_t *readable, int64_t nreadable,
                          int64_t *rows, double *avg);

/*
 * rank_readable_df - of the chunks the chunk map holds that match word
 * (tokenized as the index is, an FTS5 phrase in title or text): how many
 * have their ACL set's bit in readable (*df), and how many in all
 * (*df_all, may be NULL). The connection keeps per word a count per ACL
 * set, made by one walk of the word's doclist (or read off its frequency
 * map) and extended with the chunks committed since; a map reload after a
 * deletion starts them over. CTX_OK or a store error.
 */
int rank_readable_df(rank_conn *rc, const char *word, const uint8_t *readable,
                     int64_t nreadable, int64_t *df, int64_t *df_all, ctx_error *err);

/*
 * rank_df_kept - 1 when rank_readable_df would read word's counts from what
 * the connection keeps (its counts per ACL set, or its frequency map)
 * rather than walk its doclist; else 0.
 */
int rank_df_kept(const rank_conn *rc, const char *word);

/*
 * rank_match_df - how many mapped chunks the FTS5 expression match (which
 * must hold every readable chunk that matches the word, e.g. the word AND
 * the caller's allow tokens) finds whose ACL set is in readable. Nothing is
 * kept: for a caller who reads little, cheaper than a walk of a common
 * word's whole doclist. CTX_OK or a store error.
 */
int rank_match_df(rank_conn *rc, const char *match, const uint8_t *readable,
                  int64_t nreadable, int64_t *df, ctx_error *err);

/* rank_mapped_rows - the live chunks the chunk map holds. */
int64_t rank_mapped_rows(const rank_conn *rc);

/*
 * rank_map_bytes - what rc's chunk map holds in memory: 16 bytes a live
 * chunk (12 in its slot, 4 in its ACL set's list; plus those of chunks
 * deleted since it was last compacted), 16 bytes for every 64 ids up to
 * the highest mapped, and 16 bytes for every ACL set id.
 */
int64_t rank_map_bytes(const rank_conn *rc);

/*
 * rank_map_reloads - how many times rc read its whole chunk map again
 * because chunks were deleted that the log of dropped chunks did not
 * account for (trimmed before rc looked, or a store without the log).
 */
int64_t rank_map_reloads(const rank_conn *rc);

/* rank_mapped_upto - the chunk map holds every committed chunk id up to this. */
int64_t rank_mapped_upto(const rank_conn *rc);

/* rank_chunks_seq - the highest chunk id ever committed (0 for none). */
int rank_chunks_seq(rank_conn *rc, int64_t *seq, ctx_error *err);

/*
 * rank_chunk_ok - may the caller of q read chunk id (by q->readable and
 * q->sources)? 1 yes, 0 no, negative a store error (with err set).
 */
int rank_chunk_ok(rank_conn *rc, const rank_query *q, int64_t id, ctx_error *err);

/*
 * Frequency maps. A common word's doclist is long, and a MATCH that names
 * it walks all of it even when the rest of the expression allows a few
 * hundred rows; a rare word's rows are few, but FTS5 visits each one,
 * readable or not, a statement step each. For a word searched often the
 * connection can keep, per chunk that holds it, its frequency as ctx_rank
 * weighs it (title count times RANK_W_TITLE plus text count times
 * RANK_W_TEXT), read once from the doclist and extended as chunks are
 * committed; ctx_rank then scores the word from the map, and a search
 * whose every word has one ranks without FTS5 (rank_map_pass). Sound for
 * the same reason as the chunk map: a chunk row never changes. Maps are
 * kept while they fit RANK_TFMAP_BUDGET entries
 * (6 bytes each); the words asked for most keep theirs.
 */
#define RANK_TFMAP_BUDGET ((size_t)1 << 22)

/*
 * The maps rank_warm builds, commonest words first, have a budget of their
 * own: 2^27 entries of 6 bytes, at most 768 MB a process. An entry is a
 * (word, chunk) pair, so the budget holds every word of a store of a
 * million chunks (bench/search_lexical's: 78M pairs, 470 MB), and a bigger
 * store's commonest words. They are frozen where they were read, so every
 * connection that copies the warm state (rank_copy) shares one copy of
 * them, and the rows committed since are walked in FTS5 (as for any map,
 * past its upto).
 */
#define RANK_TFMAP_SHARED_BUDGET ((size_t)1 << 27)

/* rank_tfmap_begin - start a search: maps it gets are not evicted until the next. */
void rank_tfmap_begin(rank_conn *rc);

/* rank_tfmap_hold - no map is built for the rest of this search (maps it
 * gets are still counted and extended). */
void rank_tfmap_hold(rank_conn *rc);

/*
 * rank_tfmap_get - word's map, covering every chunk id <= *upto: start
 * *upto at the chunk map's loaded (call rank_chunks_load first) and pass
 * it for each word; a map that covers less lowers it (a shared map is
 * frozen where rank_warm read it). df is the word's chunk count.
 * A map is built on the fourth search that asks for it (or the first
 * after that which builds no other: one build a search), walking the
 * word's doclist once inside FTS5, and only when it fits the budget after
 * evicting maps asked for less often. *out = NULL when word is not a
 * single index term or has no map (yet): the caller then names the word
 * in its MATCH. CTX_OK or a store error.
 */
int rank_tfmap_get(rank_conn *rc, const char *word, int64_t df, const rank_tfmap **out,
                   int64_t *upto, ctx_error *err);

/*
 * rank_tfmap_prebuild - build word's frequency map now, whatever its
 * searches so far, if it has none and the budget has room for a map of
 * every chunk: for a word whose document frequencies were never counted,
 * one walk then gives both (rank_readable_df reads them off the map),
 * where a count now and a build on the fourth search would walk the
 * doclist twice. CTX_OK (built or not) or a store error.
 */
int rank_tfmap_prebuild(rank_conn *rc, const char *word, ctx_error *err);

/*
 * rank_map_pass - a pass over rows from q's maps alone, where every term of
 * q has one: each row holding one of the terms whose bit is in drive, up
 * to the maps' upto, that q's readable and sources bitmaps let through,
 * that holds none of the terms whose bit is in avoid and that is not in
 * skip[] (ascending ids), newest first, scored on every term as ctx_rank
 * scores it, goes to push(arg, id, score); with window > 0, only the first
 * window rows. Returns how many rows were pushed, or minus an error code.
 * A chunk deleted since its map was read may be pushed: the caller's
 * fetch drops it. push returns the score a row must reach to be of use
 * (the least of a full top list), or -INFINITY while any row is: a row
 * that cannot reach it is counted but not scored. With no window and no
 * skip[] nothing needs counting, so such rows are passed over unvisited
 * where the terms allow (a driving term that cannot lift a row to the bar
 * is only looked up, MaxScore), and the count leaves them out.
 */
typedef double (*rank_push_fn)(void *arg, int64_t id, double score);
int64_t rank_map_pass(rank_conn *rc, rank_query *q, uint32_t drive, uint32_t avoid,
                      const int64_t *skip, size_t nskip, int64_t window, rank_push_fn push,
                      void *arg, ctx_error *err);

/*
 * rank_readable_pass - a pass over the caller's own rows: every chunk up to
 * q->upto of each ACL set whose bit is in q->readable (which must be set)
 * that holds one of q's terms (every term has a map) and that q->sources
 * lets through, scored on every term as ctx_rank scores it, goes to
 * push(arg, id, score) in id order (the caller's readable chunks kept as
 * bits, rank_pass.c; a row that cannot reach push's bar is not scored).
 * For a caller who reads fewer rows than the terms' maps hold: each row
 * costs a lookup in each map, where a pass driven by the terms visits
 * every row holding one. Returns how many rows were pushed, or minus an
 * error code. Needs rank_by_acl.
 */
int64_t rank_readable_pass(rank_conn *rc, rank_query *q, rank_push_fn push, void *arg,
                           ctx_error *err);

/* rank_by_acl - 1 when rc's chunk map keeps its chunks by ACL set (ids up to
 * UINT32_MAX), so rank_readable_pass can run; else 0. */
int rank_by_acl(const rank_conn *rc);

/*
 * rank_warm - do ahead, off the request path, what searches would
 * otherwise do on first sight of a word: load the chunk map, then take the
 * index's words by falling chunk count (term_df, as the last sync left
 * it) down to min_df (RANK_WARM_MIN_DF for a server: a word in fewer
 * chunks is cheap to count when asked) and count each one's chunks per
 * ACL set while the df budget keeps a quarter free, building the
 * frequency maps of the commonest while the shared budget has room. A
 * long-lived server calls it before it answers (svc_warm); info (may be
 * NULL) says what it kept. CTX_OK or a store error.
 */
#define RANK_WARM_MIN_DF 1000

typedef struct rank_warm_info {
    int64_t words;              /* words whose counts are kept */
    int64_t maps;               /* of them, with a frequency map */
    int64_t pairs;              /* (ACL set, count) pairs kept in all */
} rank_warm_info;

int rank_warm(rank_conn *rc, int64_t min_df, rank_warm_info *info, ctx_error *err);

/*
 * rank_copy - dst's state (the chunk map, the df counts, the frequency
 * maps) becomes a copy of src's, so a second connection to the same store
 * starts as warm as the first without walking again; the maps rank_warm
 * built are shared, not copied. Sound because all of it describes
 * committed chunk rows, which never change (see above). CTX_OK or
 * CTX_ENOMEM (dst is then left cold, as if new).
 */
int rank_copy(rank_conn *dst, const rank_conn *src, ctx_error *err);

/*
 * rank_behind - *behind = 1 when the store has chunks rc's map has not
 * loaded or has deleted one it holds (its state is then older than the
 * store); rc is not changed. CTX_OK or a store error.
 */
int rank_behind(rank_conn *rc, int *behind, ctx_error *err);

/*
 * rank_stats_refresh - rebuild term_df from the FTS5 vocabulary when forced,
 * never built, or the row count moved by more than 5% since the last build.
 * Run by the sync runner after a run. Ranking no longer reads term_df (a
 * whole-index count would let forbidden chunks move scores); `ctxgate
 * status`, rank_warm's choice of words and bench/serve_load.sh's do.
 */
int rank_stats_refresh(sqlite3 *db, int force, ctx_error *err);

/* Bit helpers for the readable and sources sets. */
static inline int rank_bit(const uint8_t *set, int64_t nbits, int64_t i)
{
    return i >= 0 && i < nbits && (set[i >> 3] >> (i & 7)) & 1;
}

#endif
