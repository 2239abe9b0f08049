/*
 * test_embed_crash.c - kill -9 an embedding worker (which also writes the
 * vector index file now and then) at random points, again and again: after
 * each kill every chunk has exactly one vector or one queue entry, never
 * both and never neither; the index file, whatever state it was left in,
 * opens and equals the store once caught up; and the next worker finishes
 * the job.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/embed.h"
#include "indexer/ingest.h"
#include "indexer/vindex.h"
#include "tests/lib/testutil.h"

#define NDOCS 3000

static char *dir;

static void fill(void)
{
    const char *allow[1] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    ingest_ctx ic;
    ctx_store *st = tu_store(dir);
    ctx_error err;
    int64_t source;

    cr_assert_eq(store_source(st, "s", "test", &source, &err), 0);
    tu_ingest_init(&ic, st, source, &stats);
    cr_assert_eq(store_begin(st, &err), 0);
    for (int i = 0; i < NDOCS; i++) {
        char id[16], body[96];
        snprintf(id, sizeof id, "d%d", i);
        snprintf(body, sizeof body, "alpha%d beta%d gamma%d delta", i, i % 17, i % 101);
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    store_close(st);
}

static embed_provider *provider(void)
{
    embed_cfg c = {0};
    embed_provider *p;
    ctx_error err;
    c.dim = 24;
    c.batch_size = 16;
    cr_assert_eq(embed_open(&c, &p, &err), 0);
    return p;
}

/* The worker: embed a few batches, write the index file, again. */
static void worker(void)
{
    ctx_store *st = tu_store(dir);
    embed_provider *p = provider();
    embed_run_stats es;
    ctx_error err;

    do {
        int64_t active, target;
        char path[4096];
        vindex *vi;
        int how;
        if (embed_run(st, p, 6, NULL, &es, &err))
            _exit(2);
        if (store_embed_models(st, &active, &target, &err))
            _exit(3);
        vindex_path(dir, active, path, sizeof path);
        if (vindex_open(st, path, active, &vi, &how, &err) || vindex_save(vi, path, &err))
            _exit(4);
        vindex_free(vi);
    } while (es.remaining);
    _exit(0);
}

static void check(int *done)
{
    ctx_store *st = tu_store(dir);
    int64_t active, target;
    char path[4096];
    vindex *vi;
    vindex_info info;
    ctx_error err;
    int how;

    cr_assert_eq(tu_count(st, "SELECT count(*) FROM pragma_integrity_check"
                              " WHERE integrity_check <> 'ok'"), 0, "the store is damaged");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks"), NDOCS);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors") +
                     tu_count(st, "SELECT count(*) FROM embed_queue"), NDOCS,
                 "a vector lost or duplicated");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue q JOIN vectors v"
                              " ON v.chunk_id = q.chunk_id"), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors v WHERE NOT EXISTS"
                              " (SELECT 1 FROM chunks c WHERE c.id = v.chunk_id)"), 0);
    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    if (active) {
        vindex_path(dir, active, path, sizeof path);
        cr_assert_eq(vindex_open(st, path, active, &vi, &how, &err), 0, "%s", err.text);
        vindex_get_info(vi, &info);
        cr_assert_eq((int64_t)(info.n - info.dead), tu_count(st, "SELECT count(*) FROM vectors"),
                     "the index does not equal the store after catching up");
        vindex_free(vi);
    }
    *done = tu_count(st, "SELECT count(*) FROM embed_queue") == 0;
    store_close(st);
}

Test(embed_crash, kill_9_at_random_points_loses_and_duplicates_nothing)
{
    unsigned seed = (unsigned)time(NULL);
    int done = 0, kills = 0;

    /* check() builds indexes here, and the workers are forked without exec. */
    vindex_threads_set(1);
    dir = tu_tmpdir("embedcrash");
    fill();
    srand(seed);
    for (int round = 0; round < 40 && !done; round++) {
        pid_t pid = fork();
        int status;
        cr_assert_neq(pid, -1);
        if (!pid)
            worker();
        usleep((useconds_t)(1000 + rand() % 40000));
        if (kill(pid, SIGKILL) == 0)
            kills++;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) || (WIFEXITED(status) && !WEXITSTATUS(status)),
                  "the worker failed (seed %u)", seed);
        check(&done);
    }
    if (!done) {
        pid_t pid = fork();
        int status;
        if (!pid)
            worker();
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && !WEXITSTATUS(status));
        check(&done);
    }
    cr_assert(done, "the queue never emptied");
    cr_assert_gt(kills, 0);
    tu_rmrf(dir);
    free(dir);
}
