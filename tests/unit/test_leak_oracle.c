/*
 * test_leak_oracle.c - random users, nested (even cyclic) groups, source
 * accounts mapped to users, documents with random allow and deny lists,
 * and random queries; every answer of search_lexical is compared with a
 * brute-force oracle: nothing the user may not see, nothing allowed missing,
 * in both query plans (principal tokens in the MATCH, or an ACL-set filter).
 * Permissions and memberships are then changed and everything re-checked.
 * Then several sources whose facts conflict (the same group and account
 * names, different members and mappings, users only some declared), each
 * document judged by its own source's view, scores BM25 over what the
 * user may read.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/ingest.h"
#include "retrieval/acl.h"
#include "retrieval/rank.h"
#include "retrieval/search.h"
#include "tests/lib/testutil.h"

#define NUSERS 30
#define NACCTS 6
#define NGROUPS 24
#define NDOCS 1200
#define NWORDS 40
#define NCOMMON 30      /* words 0..29 are in ~30% of documents each; the rest */
#define RARE_IN 60      /* in 1 of RARE_IN documents (rare: search ranks them first) */
#define WORDS_PER_DOC 12

/* Principal names: 0..NUSERS-1 users, then accounts, then groups, then everyone. */
#define NPRIN (NUSERS + NACCTS + NGROUPS + 1)
#define P_ACCT(i) (NUSERS + (i))
#define P_GROUP(i) (NUSERS + NACCTS + (i))
#define P_EVERYONE (NPRIN - 1)

static char names[NPRIN][32];
static char words[NWORDS][8];
static int member[NPRIN][NPRIN];     /* member[a][g]: a is a member of group g */
static int acct_of[NACCTS];          /* account i stands for user acct_of[i] */
static int allow[NDOCS][NPRIN], deny[NDOCS][NPRIN];
static int has_word[NDOCS][NWORDS];
static int64_t store_id[NDOCS];
static unsigned rng = 12345;

static int rnd(unsigned n)
{
    rng = rng * 1103515245u + 12345u;
    return (int)((rng >> 8) % n);
}

static void make_names(void)
{
    static const char cons[] = "bcdfghjklmnpqrstvwxz";
    for (int i = 0; i < NUSERS; i++)
        snprintf(names[i], sizeof names[i], "user:u%d@t.test", i);
    for (int i = 0; i < NACCTS; i++)
        snprintf(names[P_ACCT(i)], sizeof names[0], "user:acct%d", i);
    for (int i = 0; i < NGROUPS; i++)
        snprintf(names[P_GROUP(i)], sizeof names[0], "group:g%d", i);
    snprintf(names[P_EVERYONE], sizeof names[0], "everyone");
    for (int i = 0; i < NWORDS; i++) {
        /* No vowels: the porter stemmer leaves them alone and apart. */
        for (int j = 0; j < 5; j++)
            words[i][j] = cons[rnd(sizeof cons - 1)];
        words[i][5] = (char)('b' + i % 20);
        words[i][6] = (char)('b' + i / 20);
        words[i][7] = '\0';
    }
}

/* The oracle's view of who user u is: a closure over the membership matrix. */
static void closure(int u, int *in)
{
    int changed = 1;
    memset(in, 0, sizeof(int) * NPRIN);
    in[u] = 1;
    for (int a = 0; a < NACCTS; a++)
        if (acct_of[a] == u)
            in[P_ACCT(a)] = 1;
    while (changed) {
        changed = 0;
        for (int a = 0; a < NPRIN; a++)
            for (int g = 0; g < NGROUPS; g++)
                if (in[a] && member[a][P_GROUP(g)] && !in[P_GROUP(g)])
                    in[P_GROUP(g)] = changed = 1;
    }
    in[P_EVERYONE] = 1;
}

static int oracle_allows(int d, const int *in)
{
    int ok = 0;
    for (int p = 0; p < NPRIN; p++) {
        if (in[p] && deny[d][p])
            return 0;
        ok |= in[p] && allow[d][p];
    }
    return ok;
}

static void put_groups(ctx_store *st, int64_t source)
{
    ctx_error err;
    for (int g = 0; g < NGROUPS; g++) {
        const char *m[NPRIN];
        ctx_principal p = {CTX_PRINCIPAL_GROUP, names[P_GROUP(g)], NULL, NULL, NULL, m, 0};
        for (int a = 0; a < P_EVERYONE; a++)
            if (member[a][P_GROUP(g)])
                m[p.n_members++] = names[a];
        cr_assert_eq(store_principal_put(st, source, &p, &err), 0, "%s", err.text);
    }
}

static void put_doc_acl(ingest_ctx *ic, int d, int as_record)
{
    const char *al[NPRIN], *dl[NPRIN];
    ctx_acl acl = {al, 0, dl, 0, NULL, 0};
    ctx_error err;
    char id[16], body[NWORDS * 9 + 1] = ""; /* every word, at worst */

    for (int p = 0; p < NPRIN; p++) {
        if (allow[d][p])
            al[acl.n_allow++] = names[p];
        if (deny[d][p])
            dl[acl.n_deny++] = names[p];
    }
    snprintf(id, sizeof id, "d%d", d);
    if (as_record) {
        for (int w = 0; w < NWORDS; w++)
            if (has_word[d][w]) {
                strcat(body, words[w]);
                strcat(body, " ");
            }
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(ic, &r, &err), 0, "%s", err.text);
    } else {
        cr_assert_eq(ingest_acl(ic, "s", id, &acl, &err), 0, "%s", err.text);
    }
}

static void random_acl(int d)
{
    int n = rnd(4); /* 0 = empty allow list: nobody */
    memset(allow[d], 0, sizeof allow[d]);
    memset(deny[d], 0, sizeof deny[d]);
    for (int i = 0; i < n; i++) {
        int r = rnd(100);
        int p = r < 5 ? P_EVERYONE : r < 45 ? rnd(NUSERS) : r < 55 ? P_ACCT(rnd(NACCTS))
                                                               : P_GROUP(rnd(NGROUPS));
        allow[d][p] = 1;
    }
    if (rnd(5) == 0)
        deny[d][rnd(4) ? P_GROUP(rnd(NGROUPS)) : rnd(NUSERS)] = 1;
}

/*
 * run_queries - nq random queries, each checked against the oracle. With
 * window > 0 rows of common words only are ranked among the newest window
 * readable ones, so an allowed match may be missing; nothing forbidden may
 * ever appear.
 */
static int run_queries(ctx_store *st, int nq, int64_t window)
{
    int in[NPRIN], checked = 0, windowed = 0;
    char q[64], user[40];

    for (int i = 0; i < nq; i++) {
        int u = rnd(NUSERS + 2), w1 = rnd(NWORDS), w2 = rnd(NWORDS), two = rnd(2);
        /* Odd queries force the plan that filters by readable ACL sets
         * only, instead of also putting allow tokens in the MATCH. */
        search_opts so = {1000, 1, NULL, 0, i % 2 ? 1 : 0, window ? window : -1};
        search_result r;
        ctx_error err;
        int got[NDOCS] = {0}, want = 0;

        /* u == NUSERS: unknown user; u == NUSERS + 1: a mapped account logging in. */
        if (u < NUSERS)
            snprintf(user, sizeof user, "%s", names[u] + 5);
        else if (u == NUSERS)
            snprintf(user, sizeof user, "stranger@t.test");
        else
            snprintf(user, sizeof user, "%s", names[P_ACCT(0)]);
        snprintf(q, sizeof q, two ? "%s, %s?" : "%s", words[w1], words[w2]);
        cr_assert_eq(search_lexical(store_db(st), user, q, &so, &r, &err), 0, "%s", err.text);
        for (size_t h = 0; h < r.n; h++) {
            int d = atoi(r.hits[h].title + 1);
            cr_assert(store_id[d] == r.hits[h].doc_id);
            got[d] = 1;
        }
        if (u < NUSERS)
            closure(u, in);
        for (int d = 0; d < NDOCS; d++) {
            int match = has_word[d][w1] || (two && has_word[d][w2]);
            int may = u < NUSERS && oracle_allows(d, in);
            cr_assert(!got[d] || (match && may),
                      "LEAK: %s got d%d for \"%s\" (match %d, allowed %d)", user, d, q, match, may);
            cr_assert(window || got[d] || !(match && may),
                      "MISSING: %s did not get d%d for \"%s\"", user, d, q);
            want += match && may;
        }
        if (!window)
            cr_assert_eq((int)r.n, want);
        else
            cr_assert_leq((int)r.n, want);
        windowed += r.windowed;
        search_result_free(&r);
        checked++;
    }
    /* a tiny window did cut ranking short, so its answers were checked */
    cr_assert(!window || windowed > nq / 10, "windowed: %d of %d", windowed, nq);
    return checked;
}

/*
 * bm25_of - document d's score for query q as the user whose principals
 * are in[] sees it, worked out from has_word the way rank.h defines it:
 * one chunk per document, its title "d<N>" one token that no query word
 * matches, each of its words once in the text. N, the mean length and
 * every df count the documents that user may read, and no other.
 */
static double bm25_rd(int d, const char *q, const int *rd);

static double bm25_of(int d, const char *q, const int *in)
{
    static int rd[NDOCS];
    for (int e = 0; e < NDOCS; e++)
        rd[e] = oracle_allows(e, in);
    return bm25_rd(d, q, rd);
}

/* bm25_rd - as bm25_of, over the documents rd[] marks readable. */
static double bm25_rd(int d, const char *q, const int *rd)
{
    int64_t rows = 0, tokens = 0;
    double score = 0, len = 1, avg;
    char buf[64], *save, *w;
    int seen[NWORDS] = {0};

    for (int e = 0; e < NDOCS; e++) {
        if (!rd[e])
            continue;
        rows++;
        tokens++; /* the title */
        for (int x = 0; x < NWORDS; x++)
            tokens += has_word[e][x];
    }
    avg = (double)tokens / (double)rows;
    for (int x = 0; x < NWORDS; x++)
        len += has_word[d][x];
    snprintf(buf, sizeof buf, "%s", q);
    for (w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        int x = 0, df = 0;
        while (x < NWORDS && strcmp(words[x], w))
            x++;
        cr_assert(x < NWORDS, "%s", w);
        if (!has_word[d][x] || seen[x]++)
            continue;
        for (int e = 0; e < NDOCS; e++)
            df += has_word[e][x] && rd[e];
        score += rank_idf(rows, df) * (1.0 * (RANK_K1 + 1.0)) /
                 (1.0 + RANK_K1 * (1.0 - RANK_B + RANK_B * len / avg));
    }
    return score;
}

/*
 * ranking_is_exact - the early stop on rare terms must not change the top
 * k: with the window off, search(k) gives the first k scores of ranking
 * every readable match (k = 1000 is more than any query here matches).
 * And every score is BM25 as worked out by hand, whether a common term
 * was scored from its frequency map or from its phrase in the MATCH.
 */
static void ranking_is_exact(ctx_store *st, int nq)
{
    sqlite3 *db = store_db(st);
    ctx_error err;
    int early = 0, mapped = 0, rare_mapped = 0;

    for (int i = 0; i < nq; i++) {
        int u = rnd(NUSERS), w1 = rnd(NWORDS), w2 = rnd(NWORDS), w3 = NCOMMON + rnd(10);
        int k = 1 + rnd(8), in[NPRIN];
        search_opts top = {k, 0, NULL, 0, i % 2 ? 1 : 0, -1};
        search_opts every = {1000, 0, NULL, 0, i % 2 ? 1 : 0, -1};
        search_result r, all;
        char q[64];

        snprintf(q, sizeof q, "%s %s %s", words[w1], words[w2], rnd(2) ? words[w3] : "");
        cr_assert_eq(search_lexical(db, names[u], q, &top, &r, &err), 0, "%s", err.text);
        cr_assert_eq(search_lexical(db, names[u], q, &every, &all, &err), 0, "%s", err.text);
        cr_assert_eq(r.n, all.n < (size_t)k ? all.n : (size_t)k, "\"%s\" as %s", q, names[u]);
        for (size_t j = 0; j < r.n; j++)
            cr_assert(r.hits[j].score == all.hits[j].score &&
                          r.hits[j].chunk_id == all.hits[j].chunk_id,
                      "\"%s\" as %s, hit %zu: %lld (%.12g), ranking all: %lld (%.12g)", q,
                      names[u], j, (long long)r.hits[j].chunk_id, r.hits[j].score,
                      (long long)all.hits[j].chunk_id, all.hits[j].score);
        early += r.rare_only;
        /* every score, by hand and to the last bit: each word is once in a
         * body, never in a title; the statistics over what u may read */
        closure(u, in);
        for (size_t j = 0; j < all.n; j++) {
            int d = atoi(all.hits[j].title + 1);
            double want = bm25_of(d, q, in);
            cr_assert(all.hits[j].score == want,
                      "\"%s\" as %s, d%d: scored %.17g, by hand %.17g (%s)", q, names[u], d,
                      all.hits[j].score, want,
                      all.rare_mapped ? "maps alone" : all.mapped ? "maps" : "FTS5 phrases");
        }
        mapped += all.mapped;
        rare_mapped += all.rare_mapped;
        search_result_free(&r);
        search_result_free(&all);
    }
    /* the early stop was taken, so the comparison above tested it */
    cr_assert_gt(early, nq / 20, "early stops: %d of %d", early, nq);
    /* and so were the maps */
    cr_assert_gt(mapped, nq / 2, "searches from maps: %d of %d", mapped, nq);
    /* rare words are asked for less, and still got maps */
    cr_assert_gt(rare_mapped, nq / 10, "searches from maps alone: %d of %d", rare_mapped, nq);
}

/*
 * warm_readers - two more connections as a server's workers have them
 * (svc_warm): *a warmed ahead with every word (rank_warm), *b a copy of
 * it, sharing its frozen maps (rank_copy). The writer's term_df first.
 */
static void warm_readers(ctx_store *writer, const char *dir, ctx_store **a, ctx_store **b)
{
    rank_conn *ra, *rb;
    rank_warm_info wi;
    ctx_error err;

    cr_assert_eq(rank_stats_refresh(store_db(writer), 1, &err), 0, "%s", err.text);
    *a = tu_store(dir);
    *b = tu_store(dir);
    cr_assert(ra = rank_attach(store_db(*a), &err), "%s", err.text);
    cr_assert(rb = rank_attach(store_db(*b), &err), "%s", err.text);
    /* every word but the titles (one chunk each) */
    cr_assert_eq(rank_warm(ra, 2, &wi, &err), 0, "%s", err.text);
    cr_assert_eq(wi.words, NWORDS, "every word is counted ahead");
    cr_assert_eq(wi.maps, NWORDS, "and has a shared map");
    cr_assert_eq(rank_copy(rb, ra, &err), 0, "%s", err.text);
}

Test(leak_oracle, random_acls_groups_and_queries, .timeout = 600)
{
    char *dir = tu_tmpdir("oracle");
    ctx_store *st = tu_store(dir), *warm, *copy;
    store_run_stats stats;
    ingest_ctx ic;
    ctx_error err;
    int64_t source;

    make_names();
    cr_assert_eq(store_source(st, "s", "test", &source, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    for (int i = 0; i < NUSERS; i++) {
        ctx_principal p = {CTX_PRINCIPAL_USER, names[i], NULL, NULL, NULL, NULL, 0};
        cr_assert_eq(store_principal_put(st, source, &p, &err), 0, "%s", err.text);
    }
    for (int a = 0; a < NACCTS; a++) {
        ctx_principal p = {CTX_PRINCIPAL_USER, names[P_ACCT(a)], NULL, NULL, NULL, NULL, 0};
        acct_of[a] = rnd(NUSERS);
        p.maps_to = names[acct_of[a]];
        cr_assert_eq(store_principal_put(st, source, &p, &err), 0, "%s", err.text);
    }
    /* Random memberships; groups nest and may form cycles. */
    for (int g = 0; g < NGROUPS; g++)
        for (int k = 0; k < 4; k++) {
            int r = rnd(10);
            int a = r < 6 ? rnd(NUSERS) : r < 7 ? P_ACCT(rnd(NACCTS)) : P_GROUP(rnd(NGROUPS));
            if (a != P_GROUP(g))
                member[a][P_GROUP(g)] = 1;
        }
    put_groups(st, source);

    memset(&ic, 0, sizeof ic);
    memset(&stats, 0, sizeof stats);
    ic.store = st;
    ic.source = source;
    ic.epoch = 1;
    ic.stats = &stats;
    ic.chunk.max_tokens = 256;
    for (int d = 0; d < NDOCS; d++) {
        for (int k = 0; k < WORDS_PER_DOC; k++)
            has_word[d][rnd(NCOMMON)] = 1;
        for (int w = NCOMMON; w < NWORDS; w++)
            has_word[d][w] = rnd(RARE_IN) == 0;
        random_acl(d);
        put_doc_acl(&ic, d, 1);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    for (int d = 0; d < NDOCS; d++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT id FROM documents WHERE ext_id = 'd%d'", d);
        store_id[d] = tu_count(st, sql);
    }

    cr_assert_eq(run_queries(st, 1500, 0), 1500);
    cr_assert_eq(run_queries(st, 300, 5), 300);
    ranking_is_exact(st, 300);
    /* The same from connections warmed ahead, whose maps are frozen and
     * shared: and again after the changes below, which their maps do not
     * hold (new chunk ids past them, deleted ones in them). */
    warm_readers(st, dir, &warm, &copy);
    ranking_is_exact(warm, 150);
    ranking_is_exact(copy, 150);
    cr_assert_eq(run_queries(copy, 500, 0), 500);

    /* Revoke and grant: new ACLs on a third of the documents, new memberships. */
    cr_assert_eq(store_begin(st, &err), 0);
    for (int d = 0; d < NDOCS; d += 3) {
        random_acl(d);
        put_doc_acl(&ic, d, 0);
    }
    for (int k = 0; k < 20; k++) {
        int a = rnd(NUSERS), g = rnd(NGROUPS);
        member[a][P_GROUP(g)] = !member[a][P_GROUP(g)];
    }
    put_groups(st, source);
    cr_assert_eq(store_commit(st, &err), 0);

    cr_assert_eq(run_queries(st, 1500, 0), 1500);
    cr_assert_eq(run_queries(st, 300, 5), 300);
    ranking_is_exact(st, 300);
    ranking_is_exact(warm, 150);
    ranking_is_exact(copy, 150);
    cr_assert_eq(run_queries(copy, 500, 0), 500);
    cr_assert_eq(run_queries(warm, 300, 5), 300);
    store_close(copy);
    store_close(warm);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

Test(leak_oracle, fts_syntax_in_queries_is_inert)
{
    static const char *const qs[] = {
        "allow : p1", "\"unbalanced", "NOT everyone", "a OR b AND", "*", "{allow}: p1",
        "NEAR(x y)", "p1 OR p2", "^start", "col:val", "(((", ")", "-x", "+y",
    };
    int64_t pr[2] = {1, 2};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        char *m = NULL;
        cr_assert_eq(search_fts_query(qs[i], pr, 2, &m), 0);
        if (!m)
            continue;
        /* The user part is only quoted terms joined by OR. */
        const char *user = strstr(m, "{title text} : (") + 16;
        const char *end = strstr(user, ")) AND (allow");
        for (const char *c = user; c < end; c++)
            cr_assert(*c != '(' && *c != ')' && *c != ':' && *c != '*' && *c != '^', "%s", m);
        ctx_free(m);
    }
}

/* The score formula itself, against the numbers worked out by hand. */
Test(leak_oracle, bm25_by_hand)
{
    static const char *const docs[][2] = {
        {"alpha", "beta beta gamma"},    {"delta", "beta epsilon"},
        {"beta", "zeta eta theta iota"}, {"kappa", "rho sigma"},
        {"lam", "rho sigma"},            {"mu", "rho sigma"},
        {"nu", "rho sigma"},             {"xi", "rho sigma"},
    };
    /* freq (title counts 2) and title + text length of the three "beta" rows */
    static const double freq[3] = {2, 1, 2}, len[3] = {4, 3, 5};
    char *dir = tu_tmpdir("bm25");
    ctx_store *st = tu_store(dir);
    const char *everyone[] = {"everyone"};
    ctx_acl acl = {everyone, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    search_result r;
    ingest_ctx ic;
    ctx_error err;
    double idf, avg, want[3];
    ctx_principal alice = {CTX_PRINCIPAL_USER, "user:alice", NULL, NULL, NULL, NULL, 0};

    memset(&ic, 0, sizeof ic);
    memset(&stats, 0, sizeof stats);
    ic.store = st;
    ic.epoch = 1;
    ic.stats = &stats;
    ic.chunk.max_tokens = 256;
    cr_assert_eq(store_source(st, "s", "test", &ic.source, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_principal_put(st, ic.source, &alice, &err), 0, "%s", err.text);
    for (size_t i = 0; i < 8; i++) {
        char id[8];
        snprintf(id, sizeof id, "d%zu", i);
        ctx_record rec = {"s", id, docs[i][0], NULL, docs[i][1], strlen(docs[i][1]),
                          NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);

    idf = log((8 - 3 + 0.5) / (3 + 0.5));
    avg = (4 + 3 + 5 + 5 * 3) / 8.0;
    for (int i = 0; i < 3; i++)
        want[i] = idf * freq[i] * (RANK_K1 + 1) /
                  (freq[i] + RANK_K1 * (1 - RANK_B + RANK_B * len[i] / avg));
    cr_assert_eq(search_lexical(store_db(st), "alice", "beta", NULL, &r, &err), 0, "%s",
                 err.text);
    cr_assert_eq(r.n, 3);
    /* d0 (text twice, length 4) > d2 (title, length 5) > d1 (text once) */
    cr_assert_str_eq(r.hits[0].title, "alpha");
    cr_assert_str_eq(r.hits[1].title, "beta");
    cr_assert_str_eq(r.hits[2].title, "delta");
    cr_assert_float_eq(r.hits[0].score, want[0], 1e-12);
    cr_assert_float_eq(r.hits[1].score, want[2], 1e-12);
    cr_assert_float_eq(r.hits[2].score, want[1], 1e-12);
    search_result_free(&r);
    /* The same through the chunk map (a source filter loads it), whose
     * lengths come from FTS5's docsize blobs instead of xColumnSize. */
    {
        const char *const src[] = {"s"};
        search_opts so = {0};
        so.sources = src;
        so.nsources = 1;
        cr_assert_eq(search_lexical(store_db(st), "alice", "beta", &so, &r, &err), 0, "%s",
                     err.text);
        cr_assert_eq(r.n, 3);
        cr_assert_float_eq(r.hits[0].score, want[0], 1e-12);
        cr_assert_float_eq(r.hits[1].score, want[2], 1e-12);
        cr_assert_float_eq(r.hits[2].score, want[1], 1e-12);
        search_result_free(&r);
    }
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

/* A long-lived search connection finds chunks another connection commits
 * after its chunk map was loaded (the many-principals plan reads the map). */
Test(leak_oracle, the_chunk_map_follows_other_connections)
{
    char *dir = tu_tmpdir("chunkmap");
    ctx_store *writer = tu_store(dir), *reader = tu_store(dir);
    /* two named principals, so a limit of 1 puts search on the map's plan */
    const char *allowed[] = {"everyone", "user:ann"};
    ctx_acl acl = {allowed, 2, NULL, 0, NULL, 0};
    ctx_principal ann = {CTX_PRINCIPAL_USER, "user:ann", NULL, NULL, NULL, NULL, 0};
    search_opts plan_b = {10, 0, NULL, 0, 1, -1};
    store_run_stats stats;
    search_result r;
    ingest_ctx ic;
    ctx_error err;

    memset(&ic, 0, sizeof ic);
    memset(&stats, 0, sizeof stats);
    ic.store = writer;
    ic.epoch = 1;
    ic.stats = &stats;
    ic.chunk.max_tokens = 256;
    cr_assert_eq(store_source(writer, "s", "test", &ic.source, &err), 0);
    for (int round = 0; round < 3; round++) {
        char id[8], body[32];
        snprintf(id, sizeof id, "d%d", round);
        snprintf(body, sizeof body, "zebra number %d", round);
        ctx_record rec = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(store_begin(writer, &err), 0);
        if (round == 0)
            cr_assert_eq(store_principal_put(writer, ic.source, &ann, &err), 0, "%s", err.text);
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
        cr_assert_eq(store_commit(writer, &err), 0);
        /* the reader's map was loaded by the previous round's search */
        cr_assert_eq(search_lexical(store_db(reader), "ann", "zebra", &plan_b, &r, &err), 0,
                     "%s", err.text);
        cr_assert_eq((int)r.n, round + 1, "round %d: %zu hits", round, r.n);
        search_result_free(&r);
    }
    store_close(reader);
    store_close(writer);
    tu_rmrf(dir);
    free(dir);
}

/* same_answer - search as ann for q in source (NULL: all) with and without
 * frequency maps; the answers must be equal hit for hit, and the first from
 * maps (which a word gets on its fourth search, one word a search: q has
 * at most two). */
static void same_answer(ctx_store *st, const char *q, const char *source, search_result *out)
{
    const char *const src[] = {source};
    search_opts maps = {100, 0, source ? src : NULL, source ? 1 : 0, 0, -1}, fts = maps;
    search_result f;
    ctx_error err;

    fts.tfmaps = -1;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(search_lexical(store_db(st), "ann", q, &maps, &f, &err), 0, "%s",
                     err.text);
        search_result_free(&f);
    }
    cr_assert_eq(search_lexical(store_db(st), "ann", q, &maps, out, &err), 0, "%s", err.text);
    cr_assert_eq(search_lexical(store_db(st), "ann", q, &fts, &f, &err), 0, "%s", err.text);
    cr_assert(out->mapped && !f.mapped);
    cr_assert_eq(out->n, f.n);
    for (size_t i = 0; i < f.n; i++)
        cr_assert(out->hits[i].chunk_id == f.hits[i].chunk_id &&
                      out->hits[i].score == f.hits[i].score,
                  "hit %zu: %lld (%.17g) from maps, %lld (%.17g) from FTS5", i,
                  (long long)out->hits[i].chunk_id, out->hits[i].score,
                  (long long)f.hits[i].chunk_id, f.hits[i].score);
    search_result_free(&f);
}

/* A reader's frequency maps follow what another connection commits after
 * they were read: new chunks are scored, deleted ones never shown. */
Test(leak_oracle, frequency_maps_follow_other_connections)
{
    char *dir = tu_tmpdir("tfmaps");
    ctx_store *writer = tu_store(dir), *reader = tu_store(dir);
    const char *allowed[] = {"user:ann"};
    ctx_acl acl = {allowed, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    search_result r;
    ingest_ctx ic;
    ctx_error err;

    tu_source_with_user(writer, "user:ann", &ic, &stats);
    cr_assert_eq(store_begin(writer, &err), 0);
    /* "ledger" in every document (common), "quasar" in one (rare) */
    for (int d = 0; d < 40; d++) {
        char id[8], body[64];
        snprintf(id, sizeof id, "d%d", d);
        snprintf(body, sizeof body, "ledger entry %d%s%s", d, d % 3 ? " ledger" : "",
                 d == 7 ? " quasar" : "");
        ctx_record rec = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(writer, &err), 0);

    same_answer(reader, "ledger quasar", NULL, &r);
    cr_assert_eq(r.n, 40);
    cr_assert_str_eq(r.hits[0].title, "d7");
    cr_assert(r.rare_mapped, "the rare word's rows did not come from its map");
    search_result_free(&r);

    /* another connection adds a document and deletes two */
    cr_assert_eq(store_begin(writer, &err), 0);
    {
        ctx_record rec = {"s", "d40", "d40", NULL, "ledger ledger ledger quasar", 27,
                          NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    cr_assert_eq(ingest_delete(&ic, "s", "d7", &err), 0, "%s", err.text);
    cr_assert_eq(ingest_delete(&ic, "s", "d8", &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(writer, &err), 0);

    same_answer(reader, "ledger quasar", NULL, &r);
    cr_assert_eq(r.n, 39);
    cr_assert_str_eq(r.hits[0].title, "d40");
    cr_assert(r.rare_mapped);
    for (size_t i = 0; i < r.n; i++)
        cr_assert(strcmp(r.hits[i].title, "d7") && strcmp(r.hits[i].title, "d8"));
    search_result_free(&r);
    /* common words alone come from the maps too */
    same_answer(reader, "ledger", NULL, &r);
    cr_assert_eq(r.n, 39);
    search_result_free(&r);

    /* and a source filter holds in the maps' pass: one document elsewhere */
    {
        ingest_ctx other = ic;
        ctx_record rec = {"s", "t0", "t0", NULL, "ledger ledger elsewhere", 23, NULL, 0, &acl};
        cr_assert_eq(store_source(writer, "t", "test", &other.source, &err), 0);
        cr_assert_eq(store_begin(writer, &err), 0);
        cr_assert_eq(ingest_record(&other, &rec, &err), 0, "%s", err.text);
        cr_assert_eq(store_commit(writer, &err), 0);
    }
    same_answer(reader, "ledger", NULL, &r);
    cr_assert_eq(r.n, 40);
    search_result_free(&r);
    same_answer(reader, "ledger", "t", &r);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.hits[0].title, "t0");
    search_result_free(&r);
    same_answer(reader, "ledger", "s", &r);
    cr_assert_eq(r.n, 39);
    for (size_t i = 0; i < r.n; i++)
        cr_assert_str_neq(r.hits[i].title, "t0");
    search_result_free(&r);

    store_close(reader);
    store_close(writer);
    tu_rmrf(dir);
    free(dir);
}

/* ---- what a caller cannot read moves nothing in their answers --------- */

#define FB_QUERIES 6
#define FB_VARIANTS 12
#define FB_WORDS 7

static const char *const fb_words[FB_WORDS] = {"ledger", "quasar", "orbit", "meadow",
                                               "copper", "lantern", "harbor"};
static const char *const fb_queries[FB_QUERIES] = {
    "ledger", "quasar", "ledger quasar", "orbit meadow copper", "lantern harbor ledger",
    "meadow",
};

/*
 * fb_answers - user's answers to every query under every variant of the
 * options (both permission plans, no frequency maps, a source filter, a
 * label filter, per-document collapsing, a tiny window, ranking all, query
 * expansion under both plans, whose added words must come from chunks
 * the caller may read, proximity, a document's chunks summed), the queries asked rounds times first so a
 * connection has built its maps.
 */
static void fb_answers(ctx_store *st, const char *user, int rounds,
                       char *out[FB_QUERIES][FB_VARIANTS])
{
    static const char *const src_t[] = {"t"}, *const pii[] = {"pii"};
    static const acl_label_filter want_pii = {NULL, 0, pii, 1};
    search_opts v[FB_VARIANTS];
    ctx_error err;

    for (int i = 0; i < FB_VARIANTS; i++)
        v[i] = (search_opts){.k = 10};
    v[1].match_principals_max = 1;
    v[2].tfmaps = -1;
    v[3].sources = src_t;
    v[3].nsources = 1;
    v[4].labels = &want_pii;
    v[5].k = 3;
    v[5].per_doc = 1;
    v[6].rank_window = 5;
    v[7].k = 100;
    v[7].rank_window = -1;
    v[8].expand = (search_expand){.terms = 4, .docs = 5, .weight = 0.5};
    v[9].expand = (search_expand){.terms = 8, .docs = 20, .weight = 1};
    v[9].match_principals_max = 1;
    v[9].per_doc = 1;
    v[10].proximity = 2;
    v[11].per_doc = 1;
    v[11].doc_decay = 0.5;
    for (int round = 0; round < rounds; round++)
        for (int q = 0; q < FB_QUERIES; q++)
            for (int i = 0; i < FB_VARIANTS; i++) {
                search_result r;
                cr_assert_eq(search_lexical(store_db(st), user, fb_queries[q], &v[i], &r, &err),
                             0, "%s", err.text);
                if (round == rounds - 1)
                    out[q][i] = tu_search_answer(&r);
                search_result_free(&r);
            }
}

static void fb_free(char *a[FB_QUERIES][FB_VARIANTS])
{
    for (int q = 0; q < FB_QUERIES; q++)
        for (int i = 0; i < FB_VARIANTS; i++)
            ctx_free(a[q][i]);
}

/* fb_same - a and b byte for byte; what names the moment for a failure. */
static void fb_same(char *a[FB_QUERIES][FB_VARIANTS], char *b[FB_QUERIES][FB_VARIANTS],
                    const char *what)
{
    for (int q = 0; q < FB_QUERIES; q++)
        for (int i = 0; i < FB_VARIANTS; i++)
            cr_assert_str_eq(b[q][i], a[q][i], "%s: \"%s\", variant %d", what, fb_queries[q],
                             i);
}

/* fb_doc - document id in source ic with n words drawn from the first
 * nwords of fb_words, readable as acl says, labeled pii if pii; the
 * documents alice may not read ("b...") say zephyr four times too. */
static void fb_doc(ingest_ctx *ic, const char *id, int n, int nwords, const ctx_acl *acl)
{
    char body[2048] = "";
    ctx_error err;

    for (int i = 0; i < n; i++) {
        strcat(body, fb_words[rnd((unsigned)nwords)]);
        strcat(body, rnd(4) ? " " : " filler ");
    }
    if (id[0] == 'b') /* what an expansion from them would add */
        strcat(body, "zephyr zephyr zephyr zephyr");
    ctx_record rec = {"s", id, id, NULL, body, strlen(body), NULL, 0, acl};
    cr_assert_eq(ingest_record(ic, &rec, &err), 0, "%s", err.text);
}

/*
 * Issue 12, part 5: alice's answers (ids, order, scores to the bit, every
 * field) are byte-identical before and after documents she cannot read are
 * added (in her sources, with her words and labels, some allowed to
 * everyone but denying her), deleted and re-permissioned; on a connection
 * that searched all along (chunk map, frequency maps and counts extended)
 * and on a new one (where alice, now reading under 1/32 of the chunks,
 * counts df over her own rows, not from counts kept per ACL set). Bob, who
 * may read them, sees his answers move.
 */
Test(leak_oracle, forbidden_documents_change_no_answer, .timeout = 600)
{
    char *dir = tu_tmpdir("forbidden");
    ctx_store *writer = tu_store(dir), *reader = tu_store(dir), *fresh, *warm;
    const char *both[] = {"user:alice", "user:bob"}, *bob_only[] = {"user:bob"};
    const char *all_but[] = {"everyone"}, *alice_only[] = {"user:alice"}, *pii[] = {"pii"};
    ctx_acl a_acl = {alice_only, 1, NULL, 0, NULL, 0}, ab_acl = {both, 2, NULL, 0, NULL, 0};
    ctx_acl a_pii = {alice_only, 1, NULL, 0, pii, 1}, b_acl = {bob_only, 1, NULL, 0, NULL, 0};
    ctx_acl b_pii = {bob_only, 1, NULL, 0, pii, 1};
    ctx_acl not_alice = {all_but, 1, alice_only, 1, pii, 1};
    char *before[FB_QUERIES][FB_VARIANTS], *after[FB_QUERIES][FB_VARIANTS];
    char *bob_before[FB_QUERIES][FB_VARIANTS], *bob_after[FB_QUERIES][FB_VARIANTS];
    store_run_stats stats, tstats;
    ingest_ctx ic, it;
    ctx_error err;
    int64_t t;
    int moved = 0;

    tu_source_with_user(writer, "user:alice", &ic, &stats);
    cr_assert_eq(store_source(writer, "t", "test", &t, &err), 0);
    tu_ingest_init(&it, writer, t, &tstats);
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int s = 0; s < 2; s++)
        for (int u = 0; u < 2; u++) {
            ctx_principal p = {CTX_PRINCIPAL_USER, both[u], NULL, NULL, NULL, NULL, 0};
            cr_assert_eq(store_principal_put(writer, s ? t : ic.source, &p, &err), 0, "%s",
                         err.text);
        }
    /* alice's documents: hers, shared with bob, labeled; in both sources */
    for (int d = 0; d < 60; d++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", d);
        fb_doc(d % 3 ? &ic : &it, id, 3 + rnd(12), d % 7 ? 5 : FB_WORDS,
               d % 4 == 0 ? &ab_acl : d % 4 == 1 ? &a_pii : &a_acl);
    }
    cr_assert_eq(store_commit(writer, &err), 0);

    fb_answers(reader, "alice", 5, before);
    fb_answers(reader, "bob", 1, bob_before);
    /* a connection as a server's: warmed ahead, its maps frozen here */
    cr_assert_eq(rank_stats_refresh(store_db(writer), 1, &err), 0, "%s", err.text);
    warm = tu_store(dir);
    {
        rank_conn *rc = rank_attach(store_db(warm), &err);
        rank_warm_info wi;
        cr_assert(rc, "%s", err.text);
        cr_assert_eq(rank_warm(rc, 2, &wi, &err), 0, "%s", err.text);
        cr_assert_geq(wi.maps, FB_WORDS, "every word has a shared map");
    }
    fb_answers(warm, "alice", 1, after);
    fb_same(before, after, "warmed ahead");
    fb_free(after);

    /* documents alice may not read: many, long, with her words (the rare
     * ones too), in her sources, some labeled as hers are */
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int d = 0; d < 2400; d++) {
        char id[16];
        snprintf(id, sizeof id, "b%d", d);
        fb_doc(d % 2 ? &ic : &it, id, 5 + rnd(d % 6 ? 20 : 80), FB_WORDS,
               d % 5 == 0 ? &not_alice : d % 3 ? &b_acl : &b_pii);
    }
    cr_assert_eq(store_commit(writer, &err), 0);

    fb_answers(reader, "alice", 1, after);
    fb_same(before, after, "forbidden documents added, the same connection");
    fb_free(after);
    /* a new connection's first searches count over alice's own rows */
    fresh = tu_store(dir);
    fb_answers(fresh, "alice", 1, after);
    fb_same(before, after, "forbidden documents added, a new connection");
    fb_free(after);
    fb_answers(fresh, "alice", 5, after);
    fb_same(before, after, "forbidden documents added, a new connection, warm");
    fb_free(after);
    fb_answers(warm, "alice", 1, after);
    fb_same(before, after, "forbidden documents added, warmed ahead before them");
    fb_free(after);
    fb_answers(reader, "bob", 1, bob_after);
    for (int q = 0; q < FB_QUERIES; q++)
        moved += strcmp(bob_before[q][0], bob_after[q][0]) != 0;
    cr_assert_eq(moved, FB_QUERIES, "bob's answers moved for %d of %d queries", moved,
                 FB_QUERIES);

    /* some of them deleted, others given new permissions (re-indexed under
     * new chunk ids): the chunk map loads anew */
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int d = 0; d < 2400; d += 7) {
        char id[16];
        snprintf(id, sizeof id, "b%d", d);
        if (d % 2)
            cr_assert_eq(ingest_delete(&ic, "s", id, &err), 0, "%s", err.text);
        else
            cr_assert_eq(ingest_acl(&it, "s", id, d % 3 ? &b_pii : &b_acl, &err), 0, "%s",
                         err.text);
    }
    cr_assert_eq(store_commit(writer, &err), 0);
    fb_answers(reader, "alice", 1, after);
    fb_same(before, after, "forbidden documents deleted and re-permissioned");
    fb_free(after);
    fb_answers(fresh, "alice", 1, after);
    fb_same(before, after, "the same, on the second connection");
    fb_free(after);
    fb_answers(warm, "alice", 1, after);
    fb_same(before, after, "the same, warmed ahead before all of it");
    fb_free(after);

    fb_free(before);
    fb_free(bob_before);
    fb_free(bob_after);
    store_close(warm);
    store_close(fresh);
    store_close(reader);
    store_close(writer);
    tu_rmrf(dir);
    free(dir);
}

/* ---- several sources whose principal facts conflict (issue 12, part 1) ---- */

#define NSRC 3
static int src_of[NDOCS];
static int smember[NSRC][NPRIN][NPRIN]; /* smember[s][a][g]: s says a is in group g */
static int sacct[NSRC][NACCTS];         /* s maps account a to user sacct-1; 0: not */
static int sdeclares[NSRC][NUSERS];     /* s declared user u */

/* s takes t's facts: its own; s2 names s0 in principals_from. */
static int strusts(int s, int t) { return s == t || (s == 2 && t == 0); }

/* sclosure - user u's principals where source s's documents are concerned. */
static void sclosure(int u, int s, int *in)
{
    int changed = 1;

    memset(in, 0, sizeof(int) * NPRIN);
    in[u] = 1;
    for (int t = 0; t < NSRC; t++) {
        if (!strusts(s, t))
            continue;
        in[P_EVERYONE] |= sdeclares[t][u];
        for (int a = 0; a < NACCTS; a++)
            if (sacct[t][a] == u + 1)
                in[P_ACCT(a)] = in[P_EVERYONE] = 1;
    }
    while (changed) {
        changed = 0;
        for (int t = 0; t < NSRC; t++)
            for (int a = 0; a < NPRIN && strusts(s, t); a++)
                for (int g = 0; g < NGROUPS; g++)
                    if (in[a] && smember[t][a][P_GROUP(g)] && !in[P_GROUP(g)])
                        in[P_GROUP(g)] = changed = 1;
    }
}

/* sreadable - rd[d]: may user u read document d (each judged by its source)? */
static void sreadable(int u, int *rd)
{
    int in[NSRC][NPRIN], known = 0;

    for (int t = 0; t < NSRC; t++) {
        known |= sdeclares[t][u];
        for (int a = 0; a < NACCTS; a++)
            known |= sacct[t][a] == u + 1;
    }
    for (int t = 0; t < NSRC; t++)
        sclosure(u, t, in[t]);
    for (int d = 0; d < NDOCS; d++)
        rd[d] = known && oracle_allows(d, in[src_of[d]]);
}

/*
 * Three sources share group names and account names, and say different
 * things about them (memberships, who an account stands for, who exists);
 * the third takes the first's facts too. Every answer is the oracle's, in
 * both plans, and every score is BM25 over what that user may read.
 */
Test(leak_oracle, sources_whose_facts_conflict, .timeout = 600)
{
    char *dir = tu_tmpdir("oracle-src");
    ctx_store *st = tu_store(dir);
    store_run_stats stats[NSRC];
    ingest_ctx ic[NSRC];
    ctx_error err;
    ctx_source_cfg scfg[NSRC];
    ctx_config cfg;
    char sname[NSRC][4], *from2[1];
    int64_t sid[NSRC];
    int checked = 0, seen = 0, scored = 0;

    make_names();
    memset(&cfg, 0, sizeof cfg);
    memset(scfg, 0, sizeof scfg);
    for (int t = 0; t < NSRC; t++) {
        snprintf(sname[t], sizeof sname[t], "s%d", t);
        cr_assert_eq(store_source(st, sname[t], "test", &sid[t], &err), 0);
        scfg[t].name = sname[t];
        tu_ingest_init(&ic[t], st, sid[t], &stats[t]);
    }
    from2[0] = sname[0];
    scfg[2].principals_from.v = from2;
    scfg[2].principals_from.n = 1;
    cfg.sources = scfg;
    cfg.nsources = NSRC;
    cr_assert_eq(store_trust_apply(st, &cfg, &err), 0, "%s", err.text);

    cr_assert_eq(store_begin(st, &err), 0);
    for (int t = 0; t < NSRC; t++) {
        for (int u = 0; u < NUSERS; u++) {
            ctx_principal p = {CTX_PRINCIPAL_USER, names[u], NULL, NULL, NULL, NULL, 0};
            if ((sdeclares[t][u] = rnd(3) == 0))
                cr_assert_eq(store_principal_put(st, sid[t], &p, &err), 0, "%s", err.text);
        }
        for (int a = 0; a < NACCTS; a++) {
            ctx_principal p = {CTX_PRINCIPAL_USER, names[P_ACCT(a)], NULL, NULL, NULL, NULL, 0};
            if (!rnd(2))
                continue;
            sacct[t][a] = 1 + rnd(NUSERS); /* another source may map it elsewhere */
            p.maps_to = names[sacct[t][a] - 1];
            cr_assert_eq(store_principal_put(st, sid[t], &p, &err), 0, "%s", err.text);
        }
        for (int g = 0; g < NGROUPS; g++) {
            const char *m[NPRIN];
            ctx_principal p = {CTX_PRINCIPAL_GROUP, names[P_GROUP(g)], NULL, NULL, NULL, m, 0};
            for (int k = 0; k < 3; k++) {
                int r = rnd(10);
                int a = r < 6 ? rnd(NUSERS) : r < 7 ? P_ACCT(rnd(NACCTS))
                                                    : P_GROUP(rnd(NGROUPS));
                if (a != P_GROUP(g))
                    smember[t][a][P_GROUP(g)] = 1;
            }
            for (int a = 0; a < P_EVERYONE; a++)
                if (smember[t][a][P_GROUP(g)])
                    m[p.n_members++] = names[a];
            cr_assert_eq(store_principal_put(st, sid[t], &p, &err), 0, "%s", err.text);
        }
    }
    memset(has_word, 0, sizeof has_word);
    for (int d = 0; d < NDOCS; d++) {
        for (int k = 0; k < WORDS_PER_DOC; k++)
            has_word[d][rnd(NCOMMON)] = 1;
        for (int w = NCOMMON; w < NWORDS; w++)
            has_word[d][w] = rnd(RARE_IN) == 0;
        random_acl(d);
        src_of[d] = rnd(NSRC);
        put_doc_acl(&ic[src_of[d]], d, 1);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    for (int d = 0; d < NDOCS; d++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT id FROM documents WHERE ext_id = 'd%d'", d);
        store_id[d] = tu_count(st, sql);
    }

    for (int i = 0; i < 400; i++) {
        int u = rnd(NUSERS), w1 = rnd(NWORDS), w2 = NCOMMON + rnd(10), rd[NDOCS], want = 0;
        search_opts so = {1000, 0, NULL, 0, i % 2 ? 1 : 0, -1};
        search_result r;
        int got[NDOCS] = {0};
        char q[64];

        snprintf(q, sizeof q, "%s %s", words[w1], rnd(2) ? words[w2] : "");
        cr_assert_eq(search_lexical(store_db(st), names[u], q, &so, &r, &err), 0, "%s",
                     err.text);
        sreadable(u, rd);
        for (size_t h = 0; h < r.n; h++) {
            int d = atoi(r.hits[h].title + 1);
            double by_hand = bm25_rd(d, q, rd);
            cr_assert(rd[d], "LEAK: %s got d%d of s%d for \"%s\"", names[u], d, src_of[d], q);
            cr_assert(r.hits[h].score == by_hand, "\"%s\" as %s, d%d: scored %.17g, by hand"
                      " %.17g", q, names[u], d, r.hits[h].score, by_hand);
            got[d] = 1;
            scored++;
        }
        for (int d = 0; d < NDOCS; d++) {
            int match = has_word[d][w1] || (strchr(q, ' ')[1] && has_word[d][w2]);
            cr_assert(got[d] || !(match && rd[d]), "MISSING: %s did not get d%d of s%d for"
                      " \"%s\"", names[u], d, src_of[d], q);
            want += match && rd[d];
        }
        cr_assert_eq((int)r.n, want);
        seen += want;
        search_result_free(&r);
        checked++;
    }
    cr_assert_eq(checked, 400);
    cr_assert_gt(seen, 2000, "a one-sided oracle: %d readable matches in all", seen);
    cr_assert_eq(scored, seen);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}
