/*
 * test_lsa.c - the trained lsa embedder: words that never meet but share
 * their contexts end up near each other, training and embedding are
 * deterministic to the bit, a damaged model file is refused, and
 * lsa_ensure keeps a current model and trains a new one when the corpus
 * moved.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/embed.h"
#include "indexer/ingest.h"
#include "indexer/lsa.h"
#include "tests/lib/testutil.h"

#define DIM 3

static char *dir;
static ctx_store *st;
static ingest_ctx ic;
static store_run_stats stats;

static void setup(void)
{
    dir = tu_tmpdir("lsa");
    st = tu_store(dir);
    tu_source_with_user(st, "user:ann@t.test", &ic, &stats);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(lsa, .init = setup, .fini = teardown);

static void put(const char *id, const char *body)
{
    const char *allow[1] = {"user:ann@t.test"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
    ctx_error err;
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
}

/*
 * Three topics of six chunks. In the vehicle topic "car" and "automobile"
 * never share a chunk, but both come with engine, wheels, road, driver.
 */
static const char *const vehicles[6] = {
    "the car has an engine and four wheels on the road with a driver",
    "a driver parks the car by the road and checks the engine and wheels",
    "the car engine needs fuel before the driver takes the road",
    "the automobile has an engine and four wheels on the road with a driver",
    "a driver parks the automobile by the road and checks the engine and wheels",
    "the automobile engine needs fuel before the driver takes the road",
};
static const char *const fruit[6] = {
    "a ripe banana is yellow and sweet fruit from the tropical market",
    "peel the banana and slice the sweet yellow fruit for breakfast",
    "the tropical market sells banana and mango fruit ripe and sweet",
    "mango fruit is sweet and ripe in the tropical summer market",
    "slice the mango for breakfast with yellow fruit and yogurt",
    "the ripe mango and banana fruit sit in a bowl at breakfast",
};
static const char *const music[6] = {
    "the orchestra plays a symphony with violin and piano in the hall",
    "a violin solo opens the concert before the piano and orchestra join",
    "the concert hall fills as the orchestra tunes violin and cello",
    "the piano concerto closes the symphony concert in the hall",
    "a cello and violin duet at the concert hall with the orchestra",
    "the orchestra rehearses the symphony with piano cello and violin",
};

static void load_corpus(void)
{
    char id[16];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "v%d", i);
        put(id, vehicles[i]);
        snprintf(id, sizeof id, "f%d", i);
        put(id, fruit[i]);
        snprintf(id, sizeof id, "m%d", i);
        put(id, music[i]);
    }
}

static void train(char hash[LSA_HASH_LEN + 1], lsa_train_stats *ts)
{
    lsa_train_opts o = {DIM, 2, 0.5, 50000, 3};
    ctx_error err;
    cr_assert_eq(lsa_train(st, dir, &o, NULL, hash, ts, &err), 0, "%s", err.text);
}

static double dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void embed1(lsa_embedder *e, const char *text, float *out)
{
    ctx_error err;
    cr_assert_eq(lsa_embed(e, text, strlen(text), out, &err), 0, "%s", err.text);
}

Test(lsa, shared_contexts_bring_words_that_never_meet_together)
{
    char hash[LSA_HASH_LEN + 1];
    lsa_train_stats ts;
    lsa_model *m;
    lsa_embedder *e;
    ctx_error err;
    float q[DIM], v[DIM];
    double worst_auto = 2, best_other = -2;

    load_corpus();
    train(hash, &ts);
    cr_assert_eq(ts.chunks, 18);
    cr_assert_gt(ts.terms, DIM);
    cr_assert_eq(lsa_load(dir, hash, DIM, &m, &err), 0, "%s", err.text);
    cr_assert_eq(lsa_embedder_new(m, &e, &err), 0, "%s", err.text);
    lsa_release(m);
    /* "cars" is stemmed as the index stems it: the model knows "car". */
    embed1(e, "Cars", q);
    cr_assert_float_eq(sqrt(dot(q, q, DIM)), 1.0, 1e-5);
    for (int i = 0; i < 6; i++) {
        embed1(e, vehicles[i], v);
        if (i >= 3 && dot(q, v, DIM) < worst_auto)
            worst_auto = dot(q, v, DIM);
        embed1(e, fruit[i], v);
        if (dot(q, v, DIM) > best_other)
            best_other = dot(q, v, DIM);
        embed1(e, music[i], v);
        if (dot(q, v, DIM) > best_other)
            best_other = dot(q, v, DIM);
    }
    /* Every chunk with "automobile" (and no "car") ranks above every chunk
     * of the other topics for the query "car". */
    cr_assert_gt(worst_auto, best_other, "automobile %f, others %f", worst_auto, best_other);
    cr_assert_gt(worst_auto, 0.9, "%f", worst_auto);
    /* No known term: the zero vector. */
    embed1(e, "zzz qqq", v);
    cr_assert_float_eq(dot(v, v, DIM), 0.0, 1e-12);
    lsa_embedder_free(e);
}

Test(lsa, same_corpus_same_model_same_vectors)
{
    char h1[LSA_HASH_LEN + 1], h2[LSA_HASH_LEN + 1];
    embed_cfg c = {0};
    embed_provider *p1, *p2;
    ctx_error err;
    float a[2][DIM], b[2][DIM];
    const char *t[2] = {"the automobile engine", "ripe mango fruit in a bowl"};
    size_t l[2] = {strlen(t[0]), strlen(t[1])};

    load_corpus();
    train(h1, NULL);
    train(h2, NULL);
    cr_assert_str_eq(h1, h2, "the same corpus trains the same model file");
    c.provider = "lsa";
    c.model = h1;
    c.dim = DIM;
    c.data_dir = dir;
    cr_assert_eq(embed_open(&c, &p1, &err), 0, "%s", err.text);
    {
        char name[64];
        snprintf(name, sizeof name, "lsa:%s@%d", h1, DIM);
        cr_assert_str_eq(embed_model_name(p1), name);
        cr_assert_eq(embed_open_model(&c, name, DIM, &p2, &err), 0, "%s", err.text);
    }
    cr_assert_eq(embed_texts(p1, t, l, 2, &a[0][0], &err), 0, "%s", err.text);
    cr_assert_eq(embed_texts(p2, t, l, 2, &b[0][0], &err), 0, "%s", err.text);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "same text, same bits");
    cr_assert_eq(embed_texts(p1, t, l, 2, &b[0][0], &err), 0, "%s", err.text);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "and again");
    embed_close(p1);
    embed_close(p2);
    /* The provider without a trained model says how to get one. */
    c.model = "";
    cr_assert_eq(embed_open(&c, &p1, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "ctxgate embed"), "%s", err.text);
}

Test(lsa, a_damaged_model_file_is_refused)
{
    char hash[LSA_HASH_LEN + 1], path[4096];
    lsa_model *m;
    ctx_error err;
    char *b;
    size_t n;
    FILE *f;

    load_corpus();
    train(hash, NULL);
    lsa_model_path(dir, hash, path, sizeof path);
    cr_assert_eq(ctx_read_file(path, &b, &n), 0);
    b[n / 2] ^= 0x40;
    cr_assert(f = fopen(path, "wb"));
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
    cr_assert_eq(lsa_load(dir, hash, DIM, &m, &err), CTX_ESTORE);
    cr_assert(strstr(err.text, "damaged") && strstr(err.text, "checksum"), "%s", err.text);
    cr_assert(strstr(err.text, "ctxgate embed"), "the fix is named: %s", err.text);
    /* Cut short: refused too. */
    b[n / 2] ^= 0x40;
    cr_assert(f = fopen(path, "wb"));
    cr_assert_eq(fwrite(b, 1, n - 9, f), n - 9);
    fclose(f);
    cr_assert_eq(lsa_load(dir, hash, DIM, &m, &err), CTX_ESTORE);
    cr_assert(strstr(err.text, "damaged"), "%s", err.text);
    free(b);
    cr_assert_eq(lsa_load(dir, "0123456789abcdef", DIM, &m, &err), CTX_ENOTFOUND);
}

Test(lsa, ensure_keeps_a_current_model_and_retrains_after_a_big_change)
{
    lsa_train_opts o = {DIM, 2, 0.5, 50000, 3};
    char h1[LSA_HASH_LEN + 1], h2[LSA_HASH_LEN + 1], h3[LSA_HASH_LEN + 1], path[4096];
    embed_cfg c = {0};
    embed_provider *p;
    embed_run_stats es;
    ctx_error err;
    int trained;

    cr_assert_eq(lsa_ensure(st, dir, &o, LSA_RETRAIN_SHARE, NULL, h1, &trained, NULL, &err),
                 CTX_ENOTFOUND, "nothing indexed: nothing to train on");
    load_corpus();
    cr_assert_eq(lsa_ensure(st, dir, &o, LSA_RETRAIN_SHARE, NULL, h1, &trained, NULL, &err), 0,
                 "%s", err.text);
    cr_assert_eq(trained, 1);
    c.provider = "lsa";
    c.model = h1;
    c.dim = DIM;
    c.data_dir = dir;
    cr_assert_eq(embed_open(&c, &p, &err), 0, "%s", err.text);
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.embedded, 18);
    embed_close(p);
    /* One more chunk of 18: the model stays. */
    put("v9", "the car and the automobile share the road");
    cr_assert_eq(lsa_ensure(st, dir, &o, LSA_RETRAIN_SHARE, NULL, h2, &trained, NULL, &err), 0,
                 "%s", err.text);
    cr_assert_eq(trained, 0);
    cr_assert_str_eq(h1, h2);
    /* Eight more: past a fifth, a new model, and the old file still serves
     * until the switch. */
    for (int i = 10; i < 18; i++) {
        char id[16];
        snprintf(id, sizeof id, "v%d", i);
        put(id, "a driver and an automobile engine on the road with wheels");
    }
    cr_assert_eq(lsa_ensure(st, dir, &o, LSA_RETRAIN_SHARE, NULL, h3, &trained, NULL, &err), 0,
                 "%s", err.text);
    cr_assert_eq(trained, 1);
    cr_assert_str_neq(h1, h3);
    lsa_model_path(dir, h1, path, sizeof path);
    cr_assert_eq(access(path, F_OK), 0, "the active model's file is kept");
    c.model = h3;
    cr_assert_eq(embed_open(&c, &p, &err), 0, "%s", err.text);
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.switched, 1);
    embed_close(p);
    cr_assert_eq(lsa_ensure(st, dir, &o, LSA_RETRAIN_SHARE, NULL, h2, &trained, NULL, &err), 0,
                 "%s", err.text);
    cr_assert_eq(trained, 0);
    cr_assert_str_eq(h2, h3);
    cr_assert_neq(access(path, F_OK), 0, "the retired model's file is gone");
}
