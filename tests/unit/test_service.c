/*
 * test_service.c - retrieval/service.c without HTTP, on the example company
 * (examples/demo): no user or an unregistered agent is refused before
 * anything is searched, the token budget holds and cuts at a character
 * boundary, a label grant keeps other labels out, fetch answers missing and
 * forbidden alike, and every call leaves an audit row.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/chunker.h"
#include "indexer/embed.h"
#include "indexer/ingest.h"
#include "retrieval/rank.h"
#include "retrieval/service.h"
#include "tests/lib/testutil.h"

static char *dir;
static ctx_config cfg;
static svc *service;

static void setup(void)
{
    char demo[PATH_MAX], src[PATH_MAX + 64], text[PATH_MAX + 1024];
    ctx_store *st;
    store_run_stats stats;
    ctx_error err;
    json_t *root;

    dir = tu_tmpdir("svc");
    cr_assert(realpath("examples/demo", demo));
    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}",
             demo);
    st = tu_store(dir);
    cr_assert_eq(tu_sync(st, src, 0, &stats, &err), 0, "%s", err.text);
    store_close(st);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"%s\", \"sources\": [%s], \"audit\": {\"store_queries\": true},"
             " \"agents\": [{\"name\": \"all\", \"sources\": \"*\", \"labels\": \"*\","
             "  \"max_tokens\": 100000},"
             " {\"name\": \"plain\", \"sources\": \"northwind\", \"labels\": [\"internal\"]},"
             " {\"name\": \"bare\", \"sources\": \"*\", \"labels\": [], \"max_k\": 50}]}",
             dir, src);
    root = json_loads(text, 0, NULL);
    cr_assert(root);
    cr_assert_eq(ctx_config_parse(root, NULL, &cfg, &err), 0, "%s", err.text);
    json_decref(root);
    cr_assert_eq(svc_new(&cfg, 2, &service, &err), 0, "%s", err.text);
}

static void teardown(void)
{
    svc_free(service);
    ctx_config_free(&cfg);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(service, .init = setup, .fini = teardown, .timeout = 60);

static json_t *ask(const char *user, const char *agent, const char *body, int want)
{
    svc_identity id = {user, agent};
    svc_request req;
    ctx_error err;
    json_t *ans = NULL;
    int rc;

    cr_assert_eq(svc_request_parse(body, strlen(body), &req, &err), 0, "%s", err.text);
    rc = svc_search(service, &id, &req, &ans, &err);
    cr_assert_eq(rc, want, "%s: %s", body, err.text);
    svc_request_free(&req);
    return ans;
}

Test(service, no_user_or_an_unregistered_agent_gets_nothing)
{
    cr_assert_null(ask(NULL, "all", "{\"query\": \"salary\"}", CTX_EAUTH));
    cr_assert_null(ask("", "all", "{\"query\": \"salary\"}", CTX_EAUTH));
    cr_assert_null(ask("alice@northwind.test", NULL, "{\"query\": \"salary\"}", CTX_EAUTH));
    cr_assert_null(ask("alice@northwind.test", "ghost", "{\"query\": \"salary\"}", CTX_EAUTH));
}

Test(service, the_budget_holds_and_cuts_at_a_character)
{
    json_t *a = ask("alice@northwind.test", "all",
                    "{\"query\": \"policy plan salary\", \"k\": 20, \"max_tokens\": 300,"
                    " \"mode\": \"lexical\"}", CTX_OK), *v;
    int64_t sum = 0;
    size_t i;

    cr_assert_leq(json_integer_value(json_object_get(a, "tokens")), 300);
    cr_assert(json_is_true(json_object_get(a, "truncated")));
    json_array_foreach(json_object_get(a, "results"), i, v) {
        const char *t = json_string_value(json_object_get(v, "text"));
        cr_assert(ctx_utf8_valid(t, strlen(t)));
        cr_assert_eq(chunker_count_tokens(t, strlen(t)),
                     json_integer_value(json_object_get(v, "tokens")));
        sum += json_integer_value(json_object_get(v, "tokens"));
    }
    cr_assert_eq(sum, json_integer_value(json_object_get(a, "tokens")));
    cr_assert(strstr(json_string_value(json_object_get(a, "context")),
                     "<<<END UNTRUSTED RETRIEVED DATA>>>"));
    json_decref(a);
}

Test(service, a_label_grant_keeps_other_labels_out)
{
    json_t *a = ask("bob@northwind.test", "plain", "{\"query\": \"incident oncall roadmap office\","
                    " \"k\": 20, \"mode\": \"lexical\"}", CTX_OK), *v, *l;
    size_t i, j;

    cr_assert_gt(json_array_size(json_object_get(a, "results")), 0);
    json_array_foreach(json_object_get(a, "results"), i, v)
        json_array_foreach(json_object_get(v, "labels"), j, l)
            cr_assert_str_eq(json_string_value(l), "internal");
    json_decref(a);
    /* the request's labels filter inside the grant */
    a = ask("bob@northwind.test", "all", "{\"query\": \"incident oncall roadmap office\","
            " \"labels\": [\"announcement\"], \"mode\": \"lexical\"}", CTX_OK);
    json_array_foreach(json_object_get(a, "results"), i, v) {
        int found = 0;
        json_array_foreach(json_object_get(v, "labels"), j, l)
            found |= !strcmp(json_string_value(l), "announcement");
        cr_assert(found);
    }
    json_decref(a);
}

/* No label granted: no labeled document (every demo document has one). */
Test(service, an_empty_label_grant_sees_no_labeled_document)
{
    json_t *a = ask("bob@northwind.test", "all", "{\"query\": \"holiday calendar office plan\","
                    " \"mode\": \"lexical\"}", CTX_OK);
    cr_assert_gt(json_array_size(json_object_get(a, "results")), 0);
    json_decref(a);
    a = ask("bob@northwind.test", "bare", "{\"query\": \"holiday calendar office plan\","
            " \"mode\": \"lexical\"}", CTX_OK);
    cr_assert_eq(json_array_size(json_object_get(a, "results")), 0);
    json_decref(a);
}

/* The config's fusion weights reach hybrid search: with the lexical leg
 * weighed 0 and no vector index yet, a hybrid search finds nothing. */
Test(service, the_configs_fusion_weights_reach_hybrid_search)
{
    char text[PATH_MAX + 1024], demo[PATH_MAX];
    ctx_config c2;
    svc *s2;
    svc_identity id = {"alice@northwind.test", "all"};
    svc_request req;
    const char *body = "{\"query\": \"salary bands\", \"mode\": \"hybrid\"}";
    json_t *a = ask("alice@northwind.test", "all", body, CTX_OK), *root;
    ctx_error err;

    cr_assert_gt(json_array_size(json_object_get(a, "results")), 0);
    json_decref(a);
    cr_assert(realpath("examples/demo", demo));
    snprintf(text, sizeof text,
             "{\"data_dir\": \"%s\", \"sources\": [{\"name\": \"northwind\", \"type\":"
             " \"files\", \"path\": \"%s\"}], \"search\": {\"w_lexical\": 0, \"w_vector\": 1},"
             " \"agents\": [{\"name\": \"all\", \"sources\": \"*\", \"labels\": \"*\"}]}",
             dir, demo);
    cr_assert(root = json_loads(text, 0, NULL));
    cr_assert_eq(ctx_config_parse(root, NULL, &c2, &err), 0, "%s", err.text);
    json_decref(root);
    cr_assert_eq(svc_new(&c2, 1, &s2, &err), 0, "%s", err.text);
    cr_assert_eq(svc_request_parse(body, strlen(body), &req, &err), 0);
    a = NULL;
    cr_assert_eq(svc_search(s2, &id, &req, &a, &err), 0, "%s", err.text);
    cr_assert_eq(json_array_size(json_object_get(a, "results")), 0);
    json_decref(a);
    svc_request_free(&req);
    svc_free(s2);
    ctx_config_free(&c2);
}

Test(service, fetch_answers_missing_and_forbidden_alike_and_everything_is_audited)
{
    svc_identity alice = {"alice@northwind.test", "all"}, bob = {"bob@northwind.test", "all"};
    json_t *a = ask("alice@northwind.test", "all", "{\"query\": \"salary bands\", \"k\": 1,"
                    " \"mode\": \"lexical\"}", CTX_OK), *doc = NULL;
    int64_t id = json_integer_value(json_object_get(json_array_get(json_object_get(a, "results"),
                                                                   0), "doc_id"));
    ctx_error err;
    ctx_store *st;

    cr_assert_gt(id, 0);
    cr_assert_eq(svc_fetch(service, &alice, id, &doc, &err), CTX_OK, "%s", err.text);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "title")), "Salary bands 2026");
    json_decref(doc);
    cr_assert_eq(svc_fetch(service, &bob, id, &doc, &err), CTX_ENOTFOUND);
    cr_assert_null(doc);
    cr_assert_eq(svc_fetch(service, &bob, 987654, &doc, &err), CTX_ENOTFOUND);
    json_decref(a);
    svc_audit_flush(service);
    cr_assert_eq(store_audit_open(svc_store_path(service), &st, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM audit"), 4);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM audit WHERE action = 'search'"
                              " AND query = 'salary bands' AND length(query_sha256) = 64"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM audit WHERE outcome = 'not_found'"), 2);
    store_close(st);
}

/* results - the "results" of user's lexical search for query on s (new). */
static json_t *results(svc *s, const char *query)
{
    svc_identity id = {"alice@northwind.test", "all"};
    char body[256];
    svc_request req;
    ctx_error err;
    json_t *ans = NULL, *r;

    snprintf(body, sizeof body, "{\"query\": \"%s\", \"k\": 8, \"mode\": \"lexical\"}", query);
    cr_assert_eq(svc_request_parse(body, strlen(body), &req, &err), 0, "%s", err.text);
    cr_assert_eq(svc_search(s, &id, &req, &ans, &err), 0, "%s", err.text);
    svc_request_free(&req);
    r = json_incref(json_object_get(ans, "results"));
    json_decref(ans);
    cr_assert(json_array_size(r) > 0, "%s: no results", query);
    return r;
}

/* add_docs - n documents from first on, readable by everyone, holding word tf times. */
static void add_docs(ctx_store *st, int first, int n, const char *word, int tf)
{
    static const char *const everyone[] = {"everyone"};
    ctx_acl acl = {everyone, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    ingest_ctx ic;
    ctx_error err;
    int64_t src;

    cr_assert_eq(store_source(st, "northwind", "files", &src, &err), 0, "%s", err.text);
    tu_ingest_init(&ic, st, src, &stats);
    cr_assert_eq(store_begin(st, &err), 0, "%s", err.text);
    for (int d = first; d < first + n; d++) {
        char id[32], body[256] = "";
        snprintf(id, sizeof id, "bulk%d", d);
        for (int i = 0; i < tf; i++) {
            strcat(body, word);
            strcat(body, " ");
        }
        strcat(body, d % 3 ? "quarterly figures" : "meeting notes and quarterly plans");
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
}

/*
 * The warm-up and its renewal: workers warmed ahead answer as a service
 * that never warmed does (ids, order, scores); when the store moves on
 * (documents deleted and added), svc_rewarm warms again (not before its
 * time unless forced, never when nothing moved) and the workers' next
 * answers are again those of a cold service.
 */
Test(service, workers_warmed_ahead_and_again_answer_as_cold_ones, .timeout = 300)
{
    ctx_store *st = tu_store(dir);
    svc *cold;
    json_t *a, *b;
    ctx_error err;
    int did;

    add_docs(st, 0, 1100, "zephyr", 1); /* over RANK_WARM_MIN_DF: warmed ahead */
    cr_assert_eq(rank_stats_refresh(store_db(st), 1, &err), 0, "%s", err.text);
    cr_assert_eq(svc_rewarm(service, 1, &did, &err), 0, "%s", err.text);
    cr_assert_eq(did, 0, "nothing to keep warm before svc_warm");
    cr_assert_eq(svc_warm(service, &err), 0, "%s", err.text);
    cr_assert_eq(svc_new(&cfg, 1, &cold, &err), 0, "%s", err.text);
    for (int round = 0; round < 2; round++) {
        a = results(service, "zephyr quarterly");
        b = results(cold, "zephyr quarterly");
        cr_assert(json_equal(a, b), "round %d: warmed and cold answers differ", round);
        json_decref(a);
        json_decref(b);
        if (round)
            break;
        /* nothing moved: no walk, even forced past the clocks */
        cr_assert_eq(svc_rewarm(service, 1, &did, &err), 0, "%s", err.text);
        cr_assert_eq(did, 0);
        /* deletions and new rows past the frozen maps, with a higher tf */
        cr_assert_eq(store_begin(st, &err), 0);
        {
            store_run_stats stats;
            ingest_ctx ic;
            int64_t src;
            cr_assert_eq(store_source(st, "northwind", "files", &src, &err), 0);
            tu_ingest_init(&ic, st, src, &stats);
            for (int d = 0; d < 1100; d += 4) {
                char id[32];
                snprintf(id, sizeof id, "bulk%d", d);
                cr_assert_eq(ingest_delete(&ic, "s", id, &err), 0, "%s", err.text);
            }
        }
        cr_assert_eq(store_commit(st, &err), 0);
        add_docs(st, 2000, 40, "zephyr", 3);
        cr_assert_eq(svc_rewarm(service, 0, &did, &err), 0, "%s", err.text);
        cr_assert_eq(did, 0, "not within SVC_REWARM_MIN_MS of the last warm-up");
        cr_assert_eq(svc_rewarm(service, 1, &did, &err), 0, "%s", err.text);
        cr_assert_eq(did, 1, "the store moved: warmed again");
    }
    svc_free(cold);
    store_close(st);
}

/* doc_ids - the "doc_id"s of answer a's results, in order, as text (new). */
static char *doc_ids(json_t *a)
{
    ctx_buf b = CTX_BUF_INIT;
    json_t *v;
    size_t i;

    json_array_foreach(json_object_get(a, "results"), i, v)
        cr_assert_eq(ctx_buf_printf(&b, "%lld ", (long long)json_integer_value(
                                                     json_object_get(v, "doc_id"))), 0);
    return b.data ? ctx_buf_steal(&b) : ctx_strdup("");
}

/*
 * Issue 13: hybrid is never worse than lexical. The hash embedder only
 * matches words the lexical leg matches, so hybrid with it answers from
 * the lexical leg (the same documents in the same order) and says why;
 * vector mode, asked for by name, still uses it.
 */
Test(service, hybrid_with_the_hash_embedder_answers_as_lexical_and_says_so)
{
    ctx_store *st = tu_store(dir);
    embed_provider *emb;
    embed_cfg ec = {0};
    ctx_error err;
    json_t *h, *l, *v;
    char *hi, *li;

    cr_assert_eq(embed_open(&ec, &emb, &err), 0, "%s", err.text);
    cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
    embed_close(emb);
    store_close(st);
    cr_assert_eq(svc_index_refresh(service, &err), 0, "%s", err.text);

    h = ask("alice@northwind.test", "all", "{\"query\": \"policy plan salary\", \"k\": 8,"
            " \"mode\": \"hybrid\"}", CTX_OK);
    l = ask("alice@northwind.test", "all", "{\"query\": \"policy plan salary\", \"k\": 8,"
            " \"mode\": \"lexical\"}", CTX_OK);
    v = ask("alice@northwind.test", "all", "{\"query\": \"policy plan salary\", \"k\": 8,"
            " \"mode\": \"vector\"}", CTX_OK);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "vector_leg"),
                                                       "reason")), "lexical_model");
    cr_assert(json_is_true(json_object_get(json_object_get(v, "vector_leg"), "used")));
    hi = doc_ids(h);
    li = doc_ids(l);
    cr_assert(strlen(li) > 0);
    cr_assert_str_eq(hi, li, "hybrid's documents are lexical's, in its order");
    ctx_free(hi);
    ctx_free(li);
    json_decref(h);
    json_decref(l);
    json_decref(v);
}

/*
 * Issue 16: a long-lived server's vector index does not keep the vectors
 * of replaced chunks. Each round rewrites 25 of the 200 bulk documents
 * (new chunks, the old ones' vectors tombstoned); following the store
 * only marks them dead, so once they pass a fifth of the index it is
 * opened again and holds the live vectors alone. Searches still find the
 * new text.
 */
Test(service, the_vector_index_drops_replaced_vectors)
{
    ctx_store *st = tu_store(dir);
    embed_provider *emb;
    embed_cfg ec = {0};
    size_t live, dead, most = 0;
    ctx_error err;
    json_t *a;

    cr_assert_eq(embed_open(&ec, &emb, &err), 0, "%s", err.text);
    add_docs(st, 0, 200, "zephyr", 1);
    cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
    cr_assert_eq(svc_index_refresh(service, &err), 0, "%s", err.text);
    for (int round = 0; round < 8; round++) {
        add_docs(st, round * 25, 25, round % 2 ? "zephyr" : "mistral", 2 + round);
        cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
        cr_assert_eq(svc_index_refresh(service, &err), 0, "%s", err.text);
        svc_index_info(service, &live, &dead);
        cr_assert_geq(live, 200, "round %d: %zu live vectors", round, live);
        cr_assert_leq(dead * 5, live + dead, "round %d: %zu dead of %zu", round, dead,
                      live + dead);
        most = dead > most ? dead : most;
    }
    /* the first round's replacements were held as dead until the reopening */
    cr_assert_gt(most, 0);
    embed_close(emb);
    store_close(st);
    a = ask("alice@northwind.test", "all", "{\"query\": \"zephyr quarterly\", \"k\": 3,"
            " \"mode\": \"vector\"}", CTX_OK);
    cr_assert_gt(json_array_size(json_object_get(a, "results")), 0);
    json_decref(a);
}
