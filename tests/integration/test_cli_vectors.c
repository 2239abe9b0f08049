/*
 * test_cli_vectors.c - `ctxgate embed` and `ctxgate search --mode` on the
 * example company (examples/demo): every mode answers inside what the user
 * may read, an unknown user gets nothing, a second `embed` has nothing to
 * do and writes nothing, and a deleted index file is rebuilt by the next
 * search.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

static char *dir;

static void setup(void)
{
    char cfg[PATH_MAX + 256], demo[PATH_MAX];

    dir = tu_tmpdir("clivec");
    cr_assert(realpath("examples/demo", demo));
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 64},"
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}]}",
             demo);
    tu_write(dir, "ctxgate.json", cfg);
}

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

/* run - the command's stdout (new) and exit status. */
static char *run(const char *args, int *status)
{
    return tu_cli(dir, args, 0, status);
}

TestSuite(cli_vectors, .init = setup, .fini = teardown);

Test(cli_vectors, embed_then_search_in_every_mode)
{
    static const char *const modes[] = {"lexical", "vector", "hybrid"};
    char args[256], path[PATH_MAX + 64];
    int status;
    char *out;

    ctx_free(run("sync", &status));
    cr_assert_eq(status, 0);
    out = run("embed", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, " embedded"), "%s", out);
    ctx_free(out);
    out = run("embed", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, " 0 embedded"), "a second embed had work to do:\n%s", out);
    /* and wrote nothing: the index files are as they were (issue 16) */
    cr_assert(strstr(out, "vector index: up to date, nothing written"), "%s", out);
    ctx_free(out);

    for (size_t m = 0; m < 3; m++) {
        /* bob (engineering) never sees the salary bands (hr). */
        snprintf(args, sizeof args, "search --as bob@northwind.test --k 10 --mode %s"
                 " salary bands", modes[m]);
        out = run(args, &status);
        cr_assert_eq(status, 0, "%s", out);
        cr_assert(!strstr(out, "Salary bands"), "LEAK in %s mode:\n%s", modes[m], out);
        cr_assert(!strstr(out, "(no results)"), "%s mode found nothing for bob", modes[m]);
        ctx_free(out);
        snprintf(args, sizeof args, "search --as alice@northwind.test --k 10 --mode %s"
                 " salary bands", modes[m]);
        out = run(args, &status);
        cr_assert(strstr(out, "Salary bands"), "%s mode: alice (hr) misses it:\n%s", modes[m],
                  out);
        ctx_free(out);
        snprintf(args, sizeof args, "search --as mallory@evil.test --mode %s salary bands",
                 modes[m]);
        out = run(args, &status);
        cr_assert(strstr(out, "(no results)"), "%s", out);
        ctx_free(out);
    }
    out = run("search --as alice@northwind.test --mode semantic x", &status);
    cr_assert_neq(status, 0);
    ctx_free(out);

    /* The index is derived: without its file the next search rebuilds it. */
    snprintf(path, sizeof path, "%s/data/vectors-1.idx", dir);
    cr_assert_eq(unlink(path), 0);
    out = run("search --as alice@northwind.test --mode vector salary bands", &status);
    cr_assert(strstr(out, "Salary bands"), "%s", out);
    ctx_free(out);
    cr_assert_eq(access(path, F_OK), 0, "the rebuilt index was not written back");
}
