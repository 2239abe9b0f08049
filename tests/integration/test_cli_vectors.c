/*
 * test_cli_vectors.c - `ctxgate embed` and `ctxgate search --mode` on the
 * example company (examples/demo): every mode answers inside what the user
 * may read, an unknown user gets nothing, a second `embed` has nothing to
 * do and writes nothing, and a deleted index file is rebuilt by the next
 * search.
 */
#include <criterion/criterion.h>
#include <dirent.h>
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

/* deltas - how many vector delta files (vectors-<model>.<a>-<b>.dlt) dir's data has. */
static int deltas(void)
{
    char path[PATH_MAX + 16];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof path, "%s/data", dir);
    cr_assert(d = opendir(path), "%s", path);
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        n += len > 4 && !strcmp(e->d_name + len - 4, ".dlt");
    }
    closedir(d);
    return n;
}

/* `ctxgate maintain` runs the agent's maintain job once: the vector deltas
 * an embed left beside the main index are merged into it, and searches
 * still find what was added. */
Test(cli_vectors, maintain_merges_the_vector_deltas)
{
    char cfg[PATH_MAX + 256];
    int status;
    char *out;

    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 64},"
             " \"sources\": [{\"name\": \"notes\", \"type\": \"files\", \"path\": \"%s/notes\"}]}",
             dir);
    tu_write(dir, "ctxgate.json", cfg);
    tu_write(dir, "notes/_principals.json",
             "{\"users\": [{\"id\": \"user:ann@x.test\", \"email\": \"ann@x.test\"}]}");
    tu_write(dir, "notes/a.md", "---\nallow: [everyone]\n---\n# Otters\n\nOtters hold hands while they sleep.\n");
    ctx_free(run("sync", &status));
    cr_assert_eq(status, 0);
    ctx_free(run("embed", &status));
    cr_assert_eq(status, 0);
    cr_assert_eq(deltas(), 0);
    tu_write(dir, "notes/b.md", "---\nallow: [everyone]\n---\n# Herons\n\nHerons stand still in shallow water.\n");
    ctx_free(run("sync", &status));
    out = run("embed", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "a delta of 1 vectors"), "%s", out);
    ctx_free(out);
    cr_assert_eq(deltas(), 1);

    out = run("maintain", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "maintain:"), "%s", out);
    ctx_free(out);
    cr_assert_eq(deltas(), 0, "maintain left the delta beside the index");
    out = run("search --as ann@x.test --mode vector herons shallow water", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "Herons"), "%s", out);
    ctx_free(out);
}
