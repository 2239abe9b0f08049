/*
 * test_cli_lsa.c - the lsa embedder through the binary: `ctxgate embed`
 * with provider "lsa" trains a model on a small files source, and
 * `ctxgate search --mode vector` then finds documents by a word they do
 * not contain, never one the user may not read; a second embed keeps the
 * model.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

static char *dir;

/* "car" and "automobile" never meet, but share engine, wheels, road, driver. */
static const char *const docs[][2] = {
    {"docs/car-0.md", "the car has an engine and four wheels on the road with a driver\n"},
    {"docs/car-1.md", "a driver parks the car by the road and checks the engine and wheels\n"},
    {"docs/car-2.md", "the car engine needs fuel before the driver takes the road\n"},
    {"docs/auto-3.md", "the automobile has an engine and four wheels on the road with a driver\n"},
    {"docs/auto-4.md", "a driver parks the automobile by the road and checks the engine\n"},
    {"docs/auto-5.md", "the automobile engine needs fuel before the driver takes the road\n"},
    {"docs/fruit-0.md", "a ripe banana is yellow and sweet fruit from the tropical market\n"},
    {"docs/fruit-1.md", "peel the banana and slice the sweet yellow fruit for breakfast\n"},
    {"docs/fruit-2.md", "the tropical market sells banana and mango fruit ripe and sweet\n"},
    {"docs/fruit-3.md", "mango fruit is sweet and ripe in the tropical summer market\n"},
    {"docs/fruit-4.md", "slice the mango for breakfast with yellow fruit and yogurt\n"},
    {"docs/fruit-5.md", "the ripe mango and banana fruit sit in a bowl at breakfast\n"},
    /* bo's alone */
    {"docs/secret/hidden-auto.md", "the automobile engine and wheels of the driver on the road\n"},
};

static void setup(void)
{
    char cfg[PATH_MAX + 256];

    dir = tu_tmpdir("clilsa");
    tu_write(dir, "docs/_principals.json",
             "{\"users\": [{\"id\": \"user:ann@t.test\", \"name\": \"Ann\", \"email\": "
             "\"ann@t.test\"}, {\"id\": \"user:bo@t.test\", \"name\": \"Bo\", \"email\": "
             "\"bo@t.test\"}]}");
    tu_write(dir, "docs/_acl.json", "{\"allow\": [\"user:ann@t.test\", \"user:bo@t.test\"]}");
    tu_write(dir, "docs/secret/_acl.json", "{\"allow\": [\"user:bo@t.test\"]}");
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        tu_write(dir, docs[i][0], docs[i][1]);
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"lsa\", \"dim\": 2},"
             " \"sources\": [{\"name\": \"s\", \"type\": \"files\", \"path\": \"%s/docs\"}]}",
             dir);
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

TestSuite(cli_lsa, .init = setup, .fini = teardown);

Test(cli_lsa, trained_model_finds_a_related_word)
{
    int status;
    char *out;

    ctx_free(run("sync", &status));
    cr_assert_eq(status, 0);
    out = run("embed", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "lsa: trained on 13 chunks"), "%s", out);
    cr_assert(strstr(out, "13 embedded"), "%s", out);
    ctx_free(out);

    /* Lexically "car" finds only the car pages... */
    out = run("search --as ann@t.test --mode lexical --k 6 car", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(!strstr(out, "auto-"), "%s", out);
    ctx_free(out);
    /* ...by vector the automobile pages too, and no fruit. */
    out = run("search --as ann@t.test --mode vector --k 6 car", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "auto-3.md") && strstr(out, "auto-4.md") && strstr(out, "auto-5.md"),
              "%s", out);
    cr_assert(!strstr(out, "fruit-"), "%s", out);
    /* The model was trained on every page; what ann may read is still the ACL's. */
    cr_assert(!strstr(out, "hidden-auto"), "LEAK:\n%s", out);
    ctx_free(out);
    out = run("search --as ann@t.test --mode hybrid --k 12 car", &status);
    cr_assert(!strstr(out, "hidden-auto"), "LEAK:\n%s", out);
    ctx_free(out);
    out = run("search --as bo@t.test --mode vector --k 7 car", &status);
    cr_assert(strstr(out, "hidden-auto"), "%s", out);
    ctx_free(out);

    /* Nothing changed: the same model, nothing to embed. */
    out = run("embed", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(!strstr(out, "trained"), "%s", out);
    cr_assert(strstr(out, " 0 embedded"), "%s", out);
    ctx_free(out);
}
