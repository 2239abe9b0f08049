/*
 * map_follow.c - what a search connection pays to follow a sync that drops
 * chunks: its chunk map unmaps them from the store's log (chunks_gone), or,
 * when the log cannot say, reads every chunk again (what every commit that
 * dropped a chunk cost before the log).
 *
 *   map_follow STORE [SHARE [CHURN]]
 *       SHARE: the share of live documents each round deletes (0.01);
 *       CHURN: then, rounds (0) of moving half the documents to another
 *       ACL set (new chunk ids each time, as a permission change does),
 *       to show the map's memory following the live chunks, not the ids
 *
 * STORE is changed (documents deleted): run it on a copy of a bench store,
 * e.g. bench/search_lexical's. Prints one markdown table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/store.h"
#include "retrieval/rank.h"

static double ms_since(uint64_t t0)
{
    return (double)(ctx_mono_ns() - t0) / 1e6;
}

/* churn - move every other live document of the first source to a new ACL set. */
static int churn(ctx_store *st, int round)
{
    const char *allow[1];
    char name[32];
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    sqlite3_stmt *s;
    int64_t set, source = 0, *ids = NULL, n = 0, cap = 0;
    ctx_error err;

    snprintf(name, sizeof name, "group:churn%d", round);
    allow[0] = name;
    if (sqlite3_prepare_v2(store_db(st), "SELECT id, source_id FROM documents"
                           " WHERE deleted = 0 AND id % 2 = 0", -1, &s, NULL) != SQLITE_OK)
        return -1;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            ids = realloc(ids, (size_t)cap * sizeof *ids);
        }
        ids[n++] = sqlite3_column_int64(s, 0);
        source = sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    if (store_begin(st, &err) || store_acl_intern(st, source, &acl, &set, &err))
        goto fail;
    for (int64_t i = 0; i < n; i++)
        if (store_doc_set_acl(st, ids[i], set, &err))
            goto fail;
    if (store_commit(st, &err))
        goto fail;
    free(ids);
    return 0;
fail:
    fprintf(stderr, "map_follow: %s\n", err.text);
    free(ids);
    return -1;
}

/* drop - delete every (1/share)-th live document in one transaction; how many. */
static int64_t drop(ctx_store *st, double share, int64_t salt)
{
    sqlite3_stmt *s;
    int64_t *ids = NULL, n = 0, cap = 0, step = (int64_t)(1.0 / share);
    ctx_error err;

    if (sqlite3_prepare_v2(store_db(st), "SELECT id FROM documents WHERE deleted = 0"
                           " AND (id + ?1) % ?2 = 0", -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(s, 1, salt);
    sqlite3_bind_int64(s, 2, step);
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            ids = realloc(ids, (size_t)cap * sizeof *ids);
        }
        ids[n++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    if (store_begin(st, &err))
        return -1;
    for (int64_t i = 0; i < n; i++)
        if (store_doc_delete(st, ids[i], 0, &err)) {
            fprintf(stderr, "map_follow: %s\n", err.text);
            return -1;
        }
    if (store_commit(st, &err)) {
        fprintf(stderr, "map_follow: %s\n", err.text);
        return -1;
    }
    free(ids);
    return n;
}

int main(int argc, char **argv)
{
    double share = argc > 2 ? atof(argv[2]) : 0.01, first, logged, reread, mb0, mb1;
    ctx_store *writer, *reader;
    rank_conn *rc;
    ctx_error err;
    int64_t chunks, gone1, gone2, trimmed;
    uint64_t t0;

    if (argc < 2 || share <= 0 || share > 0.5) {
        fprintf(stderr, "usage: map_follow STORE [SHARE]\n");
        return 2;
    }
    if (store_open(argv[1], 0, &writer, &err) || store_open(argv[1], 0, &reader, &err) ||
        !(rc = rank_attach(store_db(reader), &err))) {
        fprintf(stderr, "map_follow: %s\n", err.text);
        return 1;
    }
    t0 = ctx_mono_ns();
    if (rank_chunks_load(rc, &err))
        goto fail;
    first = ms_since(t0);
    chunks = rank_mapped_rows(rc);
    mb0 = (double)rank_map_bytes(rc) / 1048576.0;

    if ((gone1 = drop(writer, share, 0)) < 0)
        goto fail;
    t0 = ctx_mono_ns();
    if (rank_chunks_load(rc, &err))
        goto fail;
    logged = ms_since(t0);
    if (rank_map_reloads(rc) != 0) {
        fprintf(stderr, "map_follow: the log was not enough: %lld reloads\n",
                (long long)rank_map_reloads(rc));
        return 1;
    }
    /* Again, but with the log trimmed before the reader looks: a reload. */
    if ((gone2 = drop(writer, share, 1)) < 0 ||
        store_gone_trim(writer, ctx_now_ms() + 1000, &trimmed, &err))
        goto fail;
    t0 = ctx_mono_ns();
    if (rank_chunks_load(rc, &err))
        goto fail;
    reread = ms_since(t0);
    mb1 = (double)rank_map_bytes(rc) / 1048576.0;
    printf("| chunks mapped | documents deleted | first load ms | follow from the log ms |"
           " read again ms | again / log | map MB | after |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    printf("| %lld | %lld, then %lld | %.1f | %.1f | %.1f | %.0fx | %.1f | %.1f |\n",
           (long long)chunks, (long long)gone1, (long long)gone2, first, logged, reread,
           logged > 0 ? reread / logged : 0, mb0, mb1);
    if (argc > 3 && atoi(argv[3]) > 0) {
        int64_t seq0 = 0, seq1 = 0;
        rank_chunks_seq(rc, &seq0, &err);
        printf("\n| churn round | chunks mapped | highest chunk id | map MB | 12 B per id MB |"
               " follow ms |\n|---:|---:|---:|---:|---:|---:|\n");
        printf("| 0 | %lld | %lld | %.1f | %.1f | |\n", (long long)rank_mapped_rows(rc),
               (long long)seq0, (double)rank_map_bytes(rc) / 1048576.0,
               (double)seq0 * 12 / 1048576.0);
        for (int round = 1; round <= atoi(argv[3]); round++) {
            if (churn(writer, round))
                return 1;
            t0 = ctx_mono_ns();
            if (rank_chunks_load(rc, &err))
                goto fail;
            logged = ms_since(t0);
            rank_chunks_seq(rc, &seq1, &err);
            printf("| %d | %lld | %lld | %.1f | %.1f | %.1f |\n", round,
                   (long long)rank_mapped_rows(rc), (long long)seq1,
                   (double)rank_map_bytes(rc) / 1048576.0, (double)seq1 * 12 / 1048576.0,
                   logged);
        }
    }
    store_close(reader);
    store_close(writer);
    return 0;
fail:
    fprintf(stderr, "map_follow: %s\n", err.text);
    return 1;
}
