/*
 * ingest_cost.c - instructions per ingested record, for callgrind:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       build/release/bench/ingest_cost insert 5000
 *   valgrind ... build/release/bench/ingest_cost update 200
 *
 * "insert" indexes N new ~1 KB records into a fresh store; "update" first
 * indexes 20,000 (run it once without valgrind to prepare, see
 * bench/ingest_cost.sh) and then re-indexes N of them with new text.
 * Instruction counts do not depend on machine load, unlike seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/ingest.h"

static const char *const words[] = {
    "alpha", "report", "budget", "team", "plan", "quarter", "risk", "robot", "fleet", "sensor",
    "data", "policy", "review", "customer", "order", "ship", "design", "test", "release",
    "incident",
};

static size_t body_for(int i, int version, char *body)
{
    unsigned r = (unsigned)i * 2654435761u + (unsigned)version;
    size_t l = 0, k;
    while (l < 1000) {
        const char *w;
        r = r * 1103515245u + 12345u;
        w = words[(r >> 8) % 20];
        k = strlen(w);
        memcpy(body + l, w, k);
        l += k;
        body[l++] = (r >> 20) % 12 ? ' ' : '.';
    }
    body[l] = '\0';
    return l;
}

int main(int argc, char **argv)
{
    const char *path = getenv("INGEST_COST_DB") ? getenv("INGEST_COST_DB") : "/tmp/ingest_cost.db";
    int update = argc > 1 && !strcmp(argv[1], "update");
    int prepare = argc > 1 && !strcmp(argv[1], "prepare");
    int n = argc > 2 ? atoi(argv[2]) : 5000, total = update ? 20000 : n, done = 0;
    char body[1200], id[16], g1[32], g2[32];
    const char *allow[2] = {g1, g2};
    ctx_acl acl = {allow, 2, NULL, 0, NULL, 0};
    store_run_stats stats = {0};
    ingest_ctx ic = {0};
    ctx_store *st;
    ctx_error err;

    if (argc < 2 || (!update && !prepare && strcmp(argv[1], "insert"))) {
        fprintf(stderr, "usage: ingest_cost insert|prepare|update [N]\n");
        return 2;
    }
    if (!update) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm'", path, path, path);
        if (system(cmd) != 0)
            return 1;
    }
    if (prepare)
        n = total = 20000;
    if (store_open(path, 0, &st, &err) || store_source(st, "bench", "bench", &ic.source, &err)) {
        fprintf(stderr, "ingest_cost: %s\n", err.text);
        return 1;
    }
    ic.store = st;
    ic.epoch = 1;
    ic.stats = &stats;
    ic.chunk.max_tokens = 256;
    ic.chunk.overlap_tokens = 32;
    /* As a sync does: chunks tokenized ahead of the store (pretok.h). */
    if (!getenv("INGEST_COST_NO_PRETOK") && pretok_open(&ic.tok, &err)) {
        fprintf(stderr, "ingest_cost: %s\n", err.text);
        return 1;
    }
    store_begin(st, &err);
    for (int i = 0; i < total && done < n; i++) {
        /* update: every (20000 / n)th record gets new text */
        if (update && i % (total / n))
            continue;
        snprintf(id, sizeof id, "%d", i);
        snprintf(g1, sizeof g1, "group:g%d", i % 50);
        snprintf(g2, sizeof g2, "group:g%d", (i * 7) % 50);
        ctx_record rec = {"docs", id, id, NULL, body, body_for(i, update, body), NULL, 0, &acl};
        if (ingest_record(&ic, &rec, &err)) {
            fprintf(stderr, "ingest_cost: %s\n", err.text);
            return 1;
        }
        done++;
        if (done % 1000 == 0 && (store_commit(st, &err) || store_begin(st, &err)))
            return 1;
    }
    if (store_commit(st, &err))
        return 1;
    printf("%s: %d records indexed, %lld chunks\n", argv[1], done, (long long)stats.chunks);
    store_close(st);
    pretok_close(ic.tok);
    return 0;
}
