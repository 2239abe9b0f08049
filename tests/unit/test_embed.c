/*
 * test_embed.c - the hash embedder (deterministic, normalized, similar text
 * near), the embedding queue (new, changed, deleted chunks; ACL changes
 * reuse vectors), and a model switch that keeps the old vectors serving
 * until the new model has every chunk, then flips at once.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/embed.h"
#include "indexer/ingest.h"
#include "indexer/vindex.h"
#include "retrieval/vsearch.h"
#include "tests/lib/testutil.h"

static double norm(const float *v, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

static double dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)a[i] * b[i];
    return s;
}

Test(embed_hash, deterministic_normalized_and_similar_text_is_near)
{
    static const char *a = "The quarterly budget review for the robotics division",
                      *b = "the QUARTERLY budget review, robotics division!",
                      *c = "Vacation policy and holiday calendar for employees";
    float va[384], va2[384], vb[384], vc[384], e[384];

    embed_hash(a, strlen(a), 384, va);
    embed_hash(a, strlen(a), 384, va2);
    cr_assert_eq(memcmp(va, va2, sizeof va), 0, "same text, same vector");
    embed_hash(b, strlen(b), 384, vb);
    embed_hash(c, strlen(c), 384, vc);
    cr_assert_float_eq(norm(va, 384), 1.0, 1e-5);
    cr_assert_float_eq(norm(vc, 384), 1.0, 1e-5);
    cr_assert_gt(dot(va, vb, 384), 0.8, "case and punctuation do not matter: %f", dot(va, vb, 384));
    cr_assert_lt(dot(va, vc, 384), dot(va, vb, 384));
    embed_hash("  ...  ", 7, 384, e);
    cr_assert_float_eq(norm(e, 384), 0.0, 1e-9, "no words: the zero vector");
}

Test(embed_hash, provider_names_the_model_and_checks_config)
{
    embed_cfg c = {0};
    embed_provider *p;
    ctx_error err;
    float v[2][64];
    const char *t[2] = {"alpha beta", "gamma"};
    size_t l[2] = {10, 5};

    c.dim = 64;
    cr_assert_eq(embed_open(&c, &p, &err), 0, "%s", err.text);
    cr_assert_str_eq(embed_model_name(p), "hash:v1@64");
    cr_assert_eq(embed_texts(p, t, l, 2, &v[0][0], &err), 0);
    cr_assert_float_eq(norm(v[1], 64), 1.0, 1e-5);
    embed_close(p);
    c.provider = "word2vec";
    cr_assert_eq(embed_open(&c, &p, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "embeddings.provider"), "%s", err.text);
    c.provider = "hash";
    cr_assert_eq(embed_open_model(&c, "hash:v1@32", 32, &p, &err), 0, "%s", err.text);
    cr_assert_str_eq(embed_model_name(p), "hash:v1@32");
    embed_close(p);
}

/* ---- the queue ---- */

static char *dir;
static ctx_store *st;
static ingest_ctx ic;
static store_run_stats stats;

static void setup(void)
{
    dir = tu_tmpdir("embed");
    st = tu_store(dir);
    tu_source_with_user(st, "user:ann@t.test", &ic, &stats);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void put_titled(const char *id, const char *title, const char *body, const char *who)
{
    const char *allow[1] = {who};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    ctx_record r = {"s", id, title, NULL, body, strlen(body), NULL, 0, &acl};
    ctx_error err;
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
}

static void put(const char *id, const char *body, const char *who)
{
    put_titled(id, id, body, who);
}

static embed_provider *hash_provider(const char *model, int dim)
{
    embed_cfg c = {0};
    embed_provider *p;
    ctx_error err;
    c.model = model;
    c.dim = dim;
    c.batch_size = 3;
    cr_assert_eq(embed_open(&c, &p, &err), 0, "%s", err.text);
    return p;
}

TestSuite(embed_queue, .init = setup, .fini = teardown);

Test(embed_queue, new_changed_and_deleted_chunks)
{
    embed_provider *p = hash_provider("v1", 32);
    embed_run_stats es;
    ctx_error err;
    char id[16], body[64];

    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "d%d", i);
        snprintf(body, sizeof body, "document number %d about topic%d", i, i % 3);
        put(id, body, "user:ann@t.test");
    }
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 10);
    /* Two batches only: the rest waits. */
    cr_assert_eq(embed_run(st, p, 2, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.embedded, 6);
    cr_assert_eq(es.remaining, 4);
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.remaining, 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 10);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors WHERE dim = 32 AND"
                              " length(vec) = 128"), 10);

    /* Changed text: a new chunk, queued; the old one's vector goes, with a tombstone. */
    put("d1", "entirely different words now", "user:ann@t.test");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 9);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vector_tombstones"), 1);
    /* Only the ACL changed: the chunk is re-made and its vector carried
     * over (a new row, so an index sees the new ACL set); nothing queued. */
    put("d2", "document number 2 about topic2", "everyone");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 9);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vector_tombstones"), 2);
    /* Text seen before (another document's chunk): the vector is reused. */
    put_titled("copy", "d5", "document number 5 about topic2", "user:ann@t.test");
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.embedded, 1);
    cr_assert_eq(es.reused, 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 11);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks c WHERE NOT EXISTS"
                              " (SELECT 1 FROM vectors v WHERE v.chunk_id = c.id)"), 0);

    /* Deleted: vectors and queue entries go, tombstones stay. */
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_delete(&ic, "s", "d3", &err), 0);
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 10);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vector_tombstones"), 3);
    put("d4", "queued then deleted", "user:ann@t.test");
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_delete(&ic, "s", "d4", &err), 0);
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors v WHERE NOT EXISTS"
                              " (SELECT 1 FROM chunks c WHERE c.id = v.chunk_id)"), 0);
    embed_close(p);
}

Test(embed_queue, dimension_mismatch_of_a_recorded_model_is_a_clear_error)
{
    ctx_error err;
    int64_t id;
    cr_assert_eq(store_embed_model(st, "openai:m", 8, &id, &err), 0);
    cr_assert_eq(store_embed_model(st, "openai:m", 16, &id, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "recorded with 8 dimensions, the config says 16"), "%s", err.text);
}

/* The vector leg as a user sees it: chunk titles found for text. */
static int vector_finds(embed_provider *qp, const char *query, const char *title)
{
    int64_t active, target;
    char path[4096];
    vindex *vi;
    int how, found = 0;
    float q[64];
    const char *t = query;
    size_t len = strlen(query);
    search_result r;
    ctx_error err;
    vsearch_opts vo = {0};

    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    vindex_path(dir, active, path, sizeof path);
    cr_assert_eq(vindex_open(st, path, active, &vi, &how, &err), 0, "%s", err.text);
    cr_assert_eq(embed_texts(qp, &t, &len, 1, q, &err), 0);
    vo.k = 20;
    cr_assert_eq(vsearch(store_db(st), vi, "ann@t.test", q, &vo, &r, NULL, &err), 0);
    for (size_t i = 0; i < r.n; i++)
        found |= !strcmp(r.hits[i].title, title);
    search_result_free(&r);
    vindex_free(vi);
    return found;
}

Test(embed_queue, model_switch_keeps_old_vectors_serving_until_done)
{
    embed_provider *a = hash_provider("v1", 32), *b = hash_provider("v2", 64);
    embed_run_stats es;
    ctx_error err;
    int64_t active, target, ma, mb;
    char id[16], body[64];

    for (int i = 0; i < 9; i++) {
        snprintf(id, sizeof id, "d%d", i);
        snprintf(body, sizeof body, "alpha%d beta%d gamma", i, i);
        put(id, body, "user:ann@t.test");
    }
    cr_assert_eq(embed_run(st, a, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(store_embed_model(st, embed_model_name(a), 32, &ma, &err), 0);
    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    cr_assert_eq(active, ma);
    cr_assert(vector_finds(a, "alpha4 beta4", "d4"));

    /* Half of the new model's work: the old model still serves everything. */
    cr_assert_eq(embed_run(st, b, 1, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(store_embed_model(st, embed_model_name(b), 64, &mb, &err), 0);
    cr_assert_eq(es.switched, 0);
    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    cr_assert_eq(active, ma);
    cr_assert_eq(target, mb);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 6);
    cr_assert(vector_finds(a, "alpha7 beta7", "d7"));
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors WHERE model_id = 1"), 9);

    /* A chunk added meanwhile is queued for the new model. */
    put("late", "delta epsilon", "user:ann@t.test");
    cr_assert_eq(embed_run(st, b, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.switched, 1);
    cr_assert_eq(es.retired, 9);
    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    cr_assert_eq(active, mb);
    cr_assert_eq(target, 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors WHERE model_id <> 2"), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 10);
    cr_assert(vector_finds(b, "alpha7 beta7", "d7"));
    cr_assert(vector_finds(b, "delta epsilon", "late"));
    embed_close(a);
    embed_close(b);
}

Test(embed_queue, migration_from_v1_queues_existing_chunks)
{
    ctx_error err;
    put("d0", "old words", "user:ann@t.test");
    put("d1", "more old words", "user:ann@t.test");
    /* Back to what v1 had (every later table dropped), then open again:
     * v2 and whatever follows it are applied. v7's column goes first,
     * while the triggers' tables are still there. */
    cr_assert_eq(store_exec(st, "DROP INDEX acl_sets_source;"
                                "ALTER TABLE acl_sets DROP COLUMN source_id;", &err), 0, "%s",
                 err.text);
    for (;;) {
        sqlite3_stmt *s;
        char sql[256] = "";
        cr_assert_eq(sqlite3_prepare_v2(store_db(st),
                                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                                        " AND name NOT IN ('sources', 'principals', 'memberships',"
                                        " 'identities', 'labels', 'acl_sets', 'acl_entries',"
                                        " 'acl_labels', 'documents', 'chunks', 'sync_state',"
                                        " 'sync_runs', 'sqlite_sequence')"
                                        " AND name NOT LIKE 'chunks_fts%'", -1, &s, NULL), 0);
        if (sqlite3_step(s) == SQLITE_ROW)
            snprintf(sql, sizeof sql, "DROP TABLE \"%s\"", sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        if (!*sql)
            break;
        cr_assert_eq(store_exec(st, sql, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_exec(st, "PRAGMA user_version = 1", &err), 0, "%s", err.text);
    store_close(st);
    st = tu_store(dir);
    cr_assert_eq(tu_count(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 2);
    ic.store = st;
}

Test(embed_queue, going_back_to_the_active_model_abandons_the_target)
{
    embed_provider *a = hash_provider("v1", 32), *b = hash_provider("v2", 16);
    embed_run_stats es;
    ctx_error err;
    int64_t active, target, ma;

    put("d0", "one two", "user:ann@t.test");
    put("d1", "three four", "user:ann@t.test");
    put("d2", "five six", "user:ann@t.test");
    put("d3", "seven eight", "user:ann@t.test");
    cr_assert_eq(embed_run(st, a, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(store_embed_models(st, &ma, &target, &err), 0);
    cr_assert_eq(embed_run(st, b, 1, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors WHERE model_id <> 1"), 3);
    /* The configuration goes back to a before b is done. */
    cr_assert_eq(embed_run(st, a, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.embedded, 0);
    cr_assert_eq(es.retired, 3);
    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    cr_assert_eq(active, ma);
    cr_assert_eq(target, 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 4);
    embed_close(a);
    embed_close(b);
}
