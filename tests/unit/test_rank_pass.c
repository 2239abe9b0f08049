/*
 * test_rank_pass.c - the passes that rank from memory (rank_pass.c) give
 * the answers FTS5 gives, to the bit: a caller who reads little ranks
 * their own rows (rank_readable_pass), one who reads much the rows of the
 * terms with their readable chunks as bits and rows that cannot enter the
 * top left unscored (rank_map_pass); both after chunks are deleted (the
 * kept bits are made again) and added past the maps (walked in FTS5).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/ingest.h"
#include "retrieval/rank.h"
#include "retrieval/search.h"
#include "tests/lib/testutil.h"

#define NDOCS 3000
#define FEW_EVERY 50    /* ann may read one document in FEW_EVERY; bob, all */

static const char *const both[] = {"user:ann", "user:bob"};
static const char *const bob_only[] = {"user:bob"};
static const ctx_acl few_acl = {both, 2, NULL, 0, NULL, 0};
static const ctx_acl bob_acl = {bob_only, 1, NULL, 0, NULL, 0};

static const char *const queries[] = {"otter", "heron wren", "otter heron wren", "wren",
                                      "kestrel otter", "heron"};
#define NQUERIES (sizeof queries / sizeof queries[0])

static ingest_ctx ic_t; /* a second source, "t": every third document is its */

/* put - document i: words in proportions that vary with i, and lengths too. */
static void put(ingest_ctx *ic, int i)
{
    char id[16], body[512];
    int n = 0;
    ctx_error err;

    snprintf(id, sizeof id, "doc%d", i);
    n += snprintf(body + n, sizeof body - (size_t)n, "otter number%d", i);
    for (int k = 0; k < i % 4; k++)
        n += snprintf(body + n, sizeof body - (size_t)n, " heron");
    if (i % 5 == 0)
        n += snprintf(body + n, sizeof body - (size_t)n, " wren");
    if (i % 97 == 0)
        n += snprintf(body + n, sizeof body - (size_t)n, " kestrel");
    for (int k = 0; k < i % 11; k++)
        n += snprintf(body + n, sizeof body - (size_t)n, " filler%d", k);
    ctx_record rec = {"d", id, id, NULL, body, strlen(body), NULL, 0,
                      i % FEW_EVERY ? &bob_acl : &few_acl};
    cr_assert_eq(ingest_record(i % 3 ? ic : &ic_t, &rec, &err), 0, "%s", err.text);
}

/*
 * same_as_fts5 - every query as user, k 3 and 20, from reader (warmed:
 * every word mapped) and from a connection that never uses maps, must
 * give the same hits with the same scores; returns how many of reader's
 * answers were ranked by a pass over the caller's own rows.
 */
static int same_as_fts5(ctx_store *reader, const char *dir, const char *user)
{
    ctx_store *plain = tu_store(dir);
    int by_readable = 0;
    ctx_error err;

    for (size_t q = 0; q < NQUERIES; q++)
        for (int k = 3; k <= 20; k += 17) {
            search_opts so = {.k = k}, fo = {.k = k, .tfmaps = -1};
            search_result r, f;
            char *a, *b;

            cr_assert_eq(search_lexical(store_db(reader), user, queries[q], &so, &r, &err), 0,
                         "%s", err.text);
            cr_assert_eq(search_lexical(store_db(plain), user, queries[q], &fo, &f, &err), 0,
                         "%s", err.text);
            cr_assert(r.mapped || r.rare_mapped, "\"%s\" as %s: not from the maps", queries[q],
                      user);
            cr_assert_eq(r.n, (size_t)k, "\"%s\" as %s: %zu hits", queries[q], user, r.n);
            a = tu_search_answer(&r);
            b = tu_search_answer(&f);
            cr_assert_str_eq(a, b, "\"%s\" as %s, k %d", queries[q], user, k);
            by_readable += r.by_readable;
            free(a);
            free(b);
            search_result_free(&r);
            search_result_free(&f);
        }
    /* A source filter (a service names an agent's sources in every search)
     * is part of the kept readable bits: the same hits as FTS5 and the
     * chunk map give, per source and for both. */
    for (int f = 0; f < 3; f++) {
        static const char *const s_only[] = {"s"}, *const t_only[] = {"t"},
                                 *const st[] = {"s", "t"};
        const char *const *names = f == 0 ? s_only : f == 1 ? t_only : st;
        size_t got = 0;
        for (size_t q = 0; q < NQUERIES; q++) {
            search_opts so = {.k = 20, .sources = names, .nsources = f == 2 ? 2 : 1};
            search_opts fo = so;
            search_result r, p;
            char *a, *b;
            fo.tfmaps = -1;
            cr_assert_eq(search_lexical(store_db(reader), user, queries[q], &so, &r, &err), 0,
                         "%s", err.text);
            cr_assert_eq(search_lexical(store_db(plain), user, queries[q], &fo, &p, &err), 0,
                         "%s", err.text);
            a = tu_search_answer(&r);
            b = tu_search_answer(&p);
            cr_assert_str_eq(a, b, "\"%s\" as %s, sources %d", queries[q], user, f);
            for (size_t i = 0; i < r.n; i++)
                cr_assert(f == 2 || !strcmp(r.hits[i].source, names[0]),
                          "\"%s\" as %s: a hit of source %s", queries[q], user,
                          r.hits[i].source);
            got += r.n;
            free(a);
            free(b);
            search_result_free(&r);
            search_result_free(&p);
        }
        cr_assert_gt(got, 0, "%s finds something in source filter %d", user, f);
    }
    store_close(plain);
    return by_readable;
}

Test(rank_pass, passes_from_memory_rank_as_fts5_does, .timeout = 300)
{
    char *dir = tu_tmpdir("rankpass");
    ctx_store *writer = tu_store(dir), *reader;
    ctx_principal bob = {CTX_PRINCIPAL_USER, "user:bob", NULL, NULL, NULL, NULL, 0};
    store_run_stats stats;
    ingest_ctx ic;
    rank_conn *rc;
    rank_warm_info wi;
    ctx_error err;
    char id[16];

    tu_source_with_user(writer, "user:ann", &ic, &stats);
    ic_t = ic;
    cr_assert_eq(store_source(writer, "t", "test", &ic_t.source, &err), 0, "%s", err.text);
    cr_assert_eq(store_begin(writer, &err), 0);
    cr_assert_eq(store_principal_put(writer, ic.source, &bob, &err), 0, "%s", err.text);
    for (int i = 0; i < NDOCS; i++)
        put(&ic, i);
    cr_assert_eq(store_commit(writer, &err), 0, "%s", err.text);
    cr_assert_eq(rank_stats_refresh(store_db(writer), 1, &err), 0, "%s", err.text);

    /* a server's connection: every word mapped ahead */
    reader = tu_store(dir);
    cr_assert(rc = rank_attach(store_db(reader), &err), "%s", err.text);
    cr_assert_eq(rank_warm(rc, 1, &wi, &err), 0, "%s", err.text);
    cr_assert_geq(wi.maps, 4, "maps: %lld", (long long)wi.maps);
    cr_assert(rank_by_acl(rc));

    /* ann reads 60 chunks of 3000: her own rows, every time */
    cr_assert_eq(same_as_fts5(reader, dir, "ann"), (int)NQUERIES * 2);
    /* bob reads them all: the terms' rows, never his own */
    cr_assert_eq(same_as_fts5(reader, dir, "bob"), 0);

    /* Some of ann's documents go (the chunk map forgets them and her kept
     * bits are made again), new ones come past the maps, for both. */
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int i = 0; i < NDOCS; i += FEW_EVERY * 3) {
        snprintf(id, sizeof id, "doc%d", i);
        cr_assert_eq(ingest_delete(&ic, "d", id, &err), 0, "%s", err.text);
    }
    for (int i = NDOCS; i < NDOCS + 200; i++)
        put(&ic, i);
    cr_assert_eq(store_commit(writer, &err), 0, "%s", err.text);
    cr_assert_eq(same_as_fts5(reader, dir, "ann"), (int)NQUERIES * 2);
    cr_assert_eq(same_as_fts5(reader, dir, "bob"), 0);
    /* and again, now that both readers' bits are kept */
    cr_assert_eq(same_as_fts5(reader, dir, "ann"), (int)NQUERIES * 2);
    cr_assert_eq(same_as_fts5(reader, dir, "bob"), 0);

    store_close(reader);
    store_close(writer);
    tu_rmrf(dir);
    free(dir);
}
