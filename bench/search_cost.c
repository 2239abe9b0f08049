/*
 * search_cost.c - a fixed list of searches, for callgrind: instructions per
 * query do not depend on machine load, unlike milliseconds (see
 * bench/search_cost.sh, which builds the corpus and subtracts start-up).
 *
 *   search_cost STORE DATA_DIR QUESTIONS MODE USER N [REPS]
 *
 * MODE is lexical or hybrid (k=10, one chunk per document, as the service
 * asks); the first N questions run REPS times (default 2). The first
 * rounds also pay for what a connection loads once (the chunk map, the
 * vector index, and frequency maps, built on a word's fourth search, one
 * word a search), so REPS 8 minus REPS 6 is what 2N searches of three
 * words cost a server that has been up for a while.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/embed.h"
#include "indexer/store.h"
#include "indexer/vindex.h"
#include "retrieval/hybrid.h"
#include "retrieval/search.h"

int main(int argc, char **argv)
{
    char line[512], *qs[1000];
    int nq = 0, n, reps, hybrid, how;
    ctx_store *st;
    vindex *vi = NULL;
    embed_provider *emb = NULL;
    embed_cfg ec = {0};
    ctx_error err;
    size_t hits = 0;
    FILE *f;

    if (argc != 7 && argc != 8) {
        fprintf(stderr,
                "usage: search_cost STORE DATA_DIR QUESTIONS lexical|hybrid USER N [REPS]\n");
        return 2;
    }
    hybrid = !strcmp(argv[4], "hybrid");
    n = atoi(argv[6]);
    reps = argc == 8 ? atoi(argv[7]) : 2;
    if (!(f = fopen(argv[3], "r"))) {
        perror(argv[3]);
        return 1;
    }
    while (nq < 1000 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        qs[nq++] = strdup(line);
    }
    fclose(f);
    if (n > nq)
        n = nq;
    if (store_open(argv[1], 0, &st, &err)) {
        fprintf(stderr, "search_cost: %s\n", err.text);
        return 1;
    }
    if (hybrid) { /* the active model's index, as the service loads it */
        int64_t active, target;
        char path[4096];
        vindex_info info;
        if (store_embed_models(st, &active, &target, &err) ||
            (vindex_path(argv[2], active, path, sizeof path),
             vindex_open(st, path, active, &vi, &how, &err))) {
            fprintf(stderr, "search_cost: %s\n", err.text);
            return 1;
        }
        vindex_get_info(vi, &info);
        ec.dim = info.dim;
    }
    if (hybrid && embed_open(&ec, &emb, &err)) {
        fprintf(stderr, "search_cost: %s\n", err.text);
        return 1;
    }
    for (int rep = 0; rep < reps; rep++)
        for (int i = 0; i < n; i++) {
            search_result r;
            int rc;
            if (hybrid) {
                hybrid_opts ho = {0};
                ho.k = 10;
                ho.per_doc = 1;
                rc = hybrid_search(store_db(st), vi, emb, argv[5], qs[i], &ho, &r, &err);
            } else {
                search_opts so = {0};
                so.k = 10;
                so.per_doc = 1;
                rc = search_lexical(store_db(st), argv[5], qs[i], &so, &r, &err);
            }
            if (rc) {
                fprintf(stderr, "search_cost: %s\n", err.text);
                return 1;
            }
            hits += r.n;
            search_result_free(&r);
        }
    printf("%zu hits\n", hits);
    embed_close(emb);
    vindex_free(vi);
    store_close(st);
    for (int i = 0; i < nq; i++)
        free(qs[i]);
    return 0;
}
