/*
 * test_rank_map.c - a search connection's chunk map follows the chunks
 * other connections drop through the store's log of dropped chunks
 * (chunks_gone), without reading every chunk again, and reloads only
 * when the log cannot say (trimmed before it looked). Its totals always
 * equal those of a connection that maps the store afresh.
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

#define NDOCS 20

static const char *const readers[] = {"everyone"};
static const ctx_acl open_acl = {readers, 1, NULL, 0, NULL, 0};

/* put - document i of stream "d" with body text, in its own transaction. */
static void put(ingest_ctx *ic, int i, const char *text)
{
    char id[16], body[96];
    ctx_error err;

    snprintf(id, sizeof id, "doc%d", i);
    snprintf(body, sizeof body, "%s number%d", text, i);
    ctx_record rec = {"d", id, id, NULL, body, strlen(body), NULL, 0, &open_acl};
    cr_assert_eq(ingest_record(ic, &rec, &err), 0, "%s", err.text);
}

static void drop(ingest_ctx *ic, int i)
{
    char id[16];
    ctx_error err;

    snprintf(id, sizeof id, "doc%d", i);
    cr_assert_eq(ingest_delete(ic, "d", id, &err), 0, "%s", err.text);
}

/* same_totals - rc's totals over every ACL set equal a new connection's to dir. */
static void same_totals(rank_conn *rc, const char *dir)
{
    ctx_store *fresh = tu_store(dir);
    rank_conn *fc;
    uint8_t all[64];
    int64_t rows = 0, frows = 0;
    double avg = 0, favg = 0;
    ctx_error err;

    memset(all, 0xff, sizeof all);
    cr_assert(fc = rank_attach(store_db(fresh), &err), "%s", err.text);
    cr_assert_eq(rank_chunks_load(fc, &err), 0, "%s", err.text);
    rank_readable_totals(rc, all, (int64_t)sizeof all * 8, &rows, &avg);
    rank_readable_totals(fc, all, (int64_t)sizeof all * 8, &frows, &favg);
    cr_assert_eq(rows, frows, "rows %lld, afresh %lld", (long long)rows, (long long)frows);
    cr_assert_float_eq(avg, favg, 1e-9);
    cr_assert_eq(rank_mapped_rows(rc), rank_mapped_rows(fc));
    store_close(fresh);
}

Test(rank_map, dropped_chunks_are_unmapped_from_the_log)
{
    char *dir = tu_tmpdir("rankmap");
    ctx_store *writer = tu_store(dir), *reader;
    store_run_stats stats;
    ingest_ctx ic;
    rank_conn *rc;
    search_result r;
    search_opts so = {.k = 50};
    int64_t trimmed = 0;
    ctx_error err;

    tu_source_with_user(writer, "user:ann", &ic, &stats);
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int i = 0; i < NDOCS; i++)
        put(&ic, i, "zebra crossing");
    cr_assert_eq(store_commit(writer, &err), 0);

    reader = tu_store(dir);
    cr_assert(rc = rank_attach(store_db(reader), &err), "%s", err.text);
    cr_assert_eq(rank_chunks_load(rc, &err), 0, "%s", err.text);
    cr_assert_eq(rank_mapped_rows(rc), NDOCS);

    /* three changed (new chunks, the old ones dropped), two deleted */
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int i = 0; i < 3; i++)
        put(&ic, i, "zebra stripes changed");
    drop(&ic, 10);
    drop(&ic, 11);
    cr_assert_eq(store_commit(writer, &err), 0);
    cr_assert_eq(tu_count(writer, "SELECT count(*) FROM chunks_gone"), 5);

    cr_assert_eq(rank_chunks_load(rc, &err), 0, "%s", err.text);
    cr_assert_eq(rank_mapped_rows(rc), NDOCS - 2);
    cr_assert_eq(rank_map_reloads(rc), 0, "the log said it all: no reload");
    same_totals(rc, dir);
    cr_assert_eq(search_lexical(store_db(reader), "ann", "zebra", &so, &r, &err), 0, "%s",
                 err.text);
    cr_assert_eq(r.n, NDOCS - 2);
    search_result_free(&r);

    /* The log trimmed before the reader looked: it cannot say, so a reload. */
    cr_assert_eq(store_begin(writer, &err), 0);
    drop(&ic, 12);
    cr_assert_eq(store_commit(writer, &err), 0);
    cr_assert_eq(store_gone_trim(writer, ctx_now_ms() + 1000, &trimmed, &err), 0, "%s",
                 err.text);
    cr_assert_eq(trimmed, 6);
    cr_assert_eq(rank_chunks_load(rc, &err), 0, "%s", err.text);
    cr_assert_eq(rank_map_reloads(rc), 1);
    cr_assert_eq(rank_mapped_rows(rc), NDOCS - 3);
    same_totals(rc, dir);

    /* And from there on the log again, with nothing trimmed since. */
    cr_assert_eq(store_begin(writer, &err), 0);
    drop(&ic, 13);
    put(&ic, 14, "zebra once more");
    cr_assert_eq(store_commit(writer, &err), 0);
    cr_assert_eq(rank_chunks_load(rc, &err), 0, "%s", err.text);
    cr_assert_eq(rank_map_reloads(rc), 1);
    cr_assert_eq(rank_mapped_rows(rc), NDOCS - 4);
    same_totals(rc, dir);

    store_close(reader);
    store_close(writer);
    tu_rmrf(dir);
    free(dir);
}

/* A whole-stream prune (a full run's end) logs what it drops too. */
Test(rank_map, a_prune_is_logged)
{
    char *dir = tu_tmpdir("rankprune");
    ctx_store *writer = tu_store(dir), *reader;
    store_run_stats stats;
    ingest_ctx ic;
    rank_conn *rc;
    int64_t pruned = 0;
    ctx_error err;

    tu_source_with_user(writer, "user:ann", &ic, &stats);
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int i = 0; i < NDOCS; i++)
        put(&ic, i, "harbor lights");
    cr_assert_eq(store_commit(writer, &err), 0);
    reader = tu_store(dir);
    cr_assert(rc = rank_attach(store_db(reader), &err), "%s", err.text);
    cr_assert_eq(rank_chunks_load(rc, &err), 0, "%s", err.text);

    /* a second full run that saw only the first five documents */
    ic.epoch++;
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int i = 0; i < 5; i++)
        put(&ic, i, "harbor lights");
    cr_assert_eq(store_prune(writer, ic.source, "d", ic.epoch, &pruned, &err), 0, "%s",
                 err.text);
    cr_assert_eq(store_commit(writer, &err), 0);
    cr_assert_eq(pruned, NDOCS - 5);
    cr_assert_eq(tu_count(writer, "SELECT count(*) FROM chunks_gone"), NDOCS - 5);
    cr_assert_eq(rank_chunks_load(rc, &err), 0, "%s", err.text);
    cr_assert_eq(rank_map_reloads(rc), 0);
    cr_assert_eq(rank_mapped_rows(rc), 5);
    same_totals(rc, dir);
    store_close(reader);
    store_close(writer);
    tu_rmrf(dir);
    free(dir);
}

/*
 * The map keeps the live chunks only: after most documents are deleted
 * (more dead slots than live ones) it is compacted, takes less memory,
 * and still answers exactly as a connection that maps the store afresh.
 */
Test(rank_map, memory_follows_the_live_chunks)
{
    char *dir = tu_tmpdir("rankcompact");
    ctx_store *writer = tu_store(dir), *reader, *fresh;
    store_run_stats stats;
    ingest_ctx ic;
    rank_conn *rc;
    search_result r;
    search_opts so = {.k = 50};
    int64_t full;
    char *a, *b;
    ctx_error err;

    tu_source_with_user(writer, "user:ann", &ic, &stats);
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int i = 0; i < 3000; i++)
        put(&ic, i, i % 3 ? "otter" : "otter heron");
    cr_assert_eq(store_commit(writer, &err), 0);
    reader = tu_store(dir);
    cr_assert(rc = rank_attach(store_db(reader), &err), "%s", err.text);
    cr_assert_eq(rank_chunks_load(rc, &err), 0, "%s", err.text);
    full = rank_map_bytes(rc);
    cr_assert_geq(full, 3000 * 12);

    cr_assert_eq(store_begin(writer, &err), 0);
    for (int i = 0; i < 3000; i++)
        if (i % 4)
            drop(&ic, i);
    cr_assert_eq(store_commit(writer, &err), 0);
    cr_assert_eq(rank_chunks_load(rc, &err), 0, "%s", err.text);
    cr_assert_eq(rank_map_reloads(rc), 0);
    cr_assert_eq(rank_mapped_rows(rc), 750);
    cr_assert_lt(rank_map_bytes(rc), full, "compacted: %lld of %lld bytes",
                 (long long)rank_map_bytes(rc), (long long)full);
    same_totals(rc, dir);
    /* and new chunks after the compaction land right too */
    cr_assert_eq(store_begin(writer, &err), 0);
    for (int i = 3000; i < 3100; i++)
        put(&ic, i, "otter heron");
    cr_assert_eq(store_commit(writer, &err), 0);
    cr_assert_eq(search_lexical(store_db(reader), "ann", "heron otter", &so, &r, &err), 0, "%s",
                 err.text);
    a = tu_search_answer(&r);
    search_result_free(&r);
    fresh = tu_store(dir);
    cr_assert_eq(search_lexical(store_db(fresh), "ann", "heron otter", &so, &r, &err), 0, "%s",
                 err.text);
    b = tu_search_answer(&r);
    search_result_free(&r);
    cr_assert_str_eq(a, b);
    same_totals(rc, dir);
    ctx_free(a);
    ctx_free(b);
    store_close(fresh);
    store_close(reader);
    store_close(writer);
    tu_rmrf(dir);
    free(dir);
}
