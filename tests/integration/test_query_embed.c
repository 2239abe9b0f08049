/*
 * test_query_embed.c - a search's query embedding against a local
 * OpenAI-compatible server (tests/embed_server.py) that holds requests
 * until told to let go, or fails them: a call held past
 * embeddings.query_timeout_ms ends in an answer from the lexical leg that
 * says so; while a search waits on the embedder, the index refresh, a
 * reload and other searches go on; a 429 or 500 at query time is not
 * retried. The CLI's and MCP's searches say so as well.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/jobs.h"
#include "core/util.h"
#include "indexer/embed.h"
#include "retrieval/mcp_service.h"
#include "retrieval/service.h"
#include "tests/lib/testutil.h"

/* The longest the server holds a request: far past every wait here. */
#define HOLD_CAP_S "30"

static pid_t server;
static int port;
static char *dir;
static char src[PATH_MAX + 128];
static ctx_config cfg;
static int have_cfg;
static svc *service;

static void start_server(void)
{
    server = tu_embed_server(16, HOLD_CAP_S, &port);
}

/* http - POST body to path (or GET when body is NULL); the reply, new. */
static char *http(const char *path, const char *body)
{
    return tu_http(port, path, body);
}

/* script - the server's next answers; also lets go of every held request. */
static void script(const char *json_list)
{
    tu_embed_script(port, json_list);
}

/* server_stat - one number of the server's /stats. */
static int server_stat(const char *name)
{
    char *s = http("/stats", NULL), key[64];
    const char *p;
    int n = -1;

    snprintf(key, sizeof key, "\"%s\": ", name);
    if ((p = strstr(s, key)))
        n = atoi(p + strlen(key));
    ctx_free(s);
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* wait_holding - until the server holds n requests (a bound only against a hang). */
static void wait_holding(int n)
{
    for (int i = 0; i < 3000 && server_stat("holding") != n; i++)
        sleep_ms(10);
    cr_assert_eq(server_stat("holding"), n, "the server never held the query's request");
}

/* embed_all - every chunk of the store gets its vector from the server. */
static void embed_all(void)
{
    ctx_store *st = tu_store(dir);
    embed_provider *p;
    embed_run_stats es;
    embed_cfg ec;
    ctx_error err;

    embed_cfg_from(&cfg, &ec);
    cr_assert_eq(embed_open(&ec, &p, &err), 0, "%s", err.text);
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.remaining, 0);
    embed_close(p);
    store_close(st);
}

/* sync_docs - one sync of the copied example company. */
static void sync_docs(void)
{
    ctx_store *st = tu_store(dir);
    store_run_stats stats;
    ctx_error err;

    cr_assert_eq(tu_sync(st, src, 0, &stats, &err), 0, "%s", err.text);
    store_close(st);
}

static void setup(void)
{
    char cmd[PATH_MAX + 64];

    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_server();
    dir = tu_tmpdir("qemb");
    snprintf(cmd, sizeof cmd, "cp -r examples/demo '%s/docs'", dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\":"
             " \"%s/docs\"}", dir);
    sync_docs();
}

/* config_text - the config of these tests into text[len]. */
static void config_text(char *text, size_t len, int query_timeout_ms)
{
    snprintf(text, len,
             "{\"data_dir\": \"%s\", \"sources\": [%s],"
             " \"embeddings\": {\"provider\": \"openai\", \"model\": \"test-embed\", \"dim\": 16,"
             "  \"base_url\": \"http://127.0.0.1:%d/v1\", \"api_key_env\": \"CTX_TEST_NO_KEY\","
             "  \"query_timeout_ms\": %d},"
             " \"agents\": [{\"name\": \"all\", \"sources\": \"*\", \"labels\": \"*\","
             "  \"max_k\": 1000, \"max_tokens\": 100000000}]}",
             dir, src, port, query_timeout_ms);
}

/*
 * serve_with - the service over the store, its queries embedded by the
 * server within query_timeout_ms; the store's chunks embedded first.
 */
static void serve_with(int query_timeout_ms)
{
    char text[2 * PATH_MAX + 1024];
    ctx_error err;
    json_t *root;

    config_text(text, sizeof text, query_timeout_ms);
    cr_assert(root = json_loads(text, 0, NULL));
    cr_assert_eq(ctx_config_parse(root, NULL, &cfg, &err), 0, "%s", err.text);
    json_decref(root);
    have_cfg = 1;
    embed_all();
    cr_assert_eq(svc_new(&cfg, 4, &service, &err), 0, "%s", err.text);
    cr_assert(svc_ready(service), "the vector index is not loaded");
}

static void teardown(void)
{
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    svc_free(service);
    if (have_cfg)
        ctx_config_free(&cfg);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(query_embed, .init = setup, .fini = teardown, .timeout = 120);

/* ask - alice's search of body through agent "all"; the answer, new. */
static json_t *ask(const char *body)
{
    svc_identity id = {"alice@northwind.test", "all"};
    svc_request req;
    ctx_error err;
    json_t *a = NULL;

    cr_assert_eq(svc_request_parse(body, strlen(body), &req, &err), 0, "%s", err.text);
    cr_assert_eq(svc_search(service, &id, &req, &a, &err), 0, "%s: %s", body, err.text);
    svc_request_free(&req);
    return a;
}

static int has_title(json_t *a, const char *title)
{
    size_t i;
    json_t *r;

    json_array_foreach(json_object_get(a, "results"), i, r) {
        if (!strcmp(json_string_value(json_object_get(r, "title")), title))
            return 1;
    }
    return 0;
}

/* vector_leg - "used" or the reason it was not, of answer a. */
static const char *vector_leg(json_t *a)
{
    json_t *v = json_object_get(a, "vector_leg");
    cr_assert(json_is_object(v), "the answer has no vector_leg");
    if (json_is_true(json_object_get(v, "used")))
        return "used";
    cr_assert(json_is_string(json_object_get(v, "message")));
    return json_string_value(json_object_get(v, "reason"));
}

#define WELCOME "{\"query\": \"welcome guide first two weeks\", \"mode\": \"%s\"}"
#define WELCOME_TITLE "Welcome to Northwind Robotics"

static json_t *ask_welcome(const char *mode)
{
    char body[128];
    snprintf(body, sizeof body, WELCOME, mode);
    return ask(body);
}

Test(query_embed, a_held_embedding_call_ends_in_a_lexical_answer_that_says_so)
{
    static const char *const modes[] = {"hybrid", "vector"};
    json_t *a;

    serve_with(1000);
    for (int m = 0; m < 2; m++) {
        script("[\"hold\"]");
        a = ask_welcome(modes[m]);
        /* The answer is here while the server still holds its request. */
        cr_assert_eq(server_stat("holding"), 1, "%s: the answer waited for the server", modes[m]);
        cr_assert_eq(server_stat("requests"), 1, "%s: a timed-out query was retried", modes[m]);
        cr_assert_str_eq(vector_leg(a), "timeout", "%s", modes[m]);
        cr_assert(has_title(a, WELCOME_TITLE), "%s: the lexical leg's hit is missing",
                  modes[m]);
        json_decref(a);
    }
    /* MCP's search is hybrid: its answer says so too. */
    script("[\"hold\"]");
    {
        mcp_caller caller = {service, {"alice@northwind.test", "all"}};
        mcp_backend be = mcp_service_backend(&caller);
        json_t *results = NULL, *extra = NULL;
        ctx_error err;
        cr_assert_eq(be.search(be.arg, "welcome guide first two weeks", &results, &extra, &err),
                     0, "%s", err.text);
        cr_assert_eq(server_stat("holding"), 1);
        cr_assert_gt(json_array_size(results), 0);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(extra, "vector_leg"),
                                                           "reason")), "timeout");
        json_decref(results);
        json_decref(extra);
    }
    /* The embedder answers again: the vector leg is back. */
    script("[]");
    a = ask_welcome("hybrid");
    cr_assert_str_eq(vector_leg(a), "used");
    cr_assert(has_title(a, WELCOME_TITLE));
    json_decref(a);
    a = ask_welcome("lexical");
    cr_assert_null(json_object_get(a, "vector_leg"), "a lexical search has no vector leg");
    json_decref(a);
}

typedef struct stuck_search {
    json_t *answer;
    int done;         /* __atomic */
} stuck_search;

static void *search_thread(void *arg)
{
    stuck_search *t = arg;
    t->answer = ask_welcome("hybrid");
    __atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/*
 * The lock property: with the query's time limit far away, one search is
 * stuck in the embedder until the test lets it go. Meanwhile a refresh
 * that must take the index's write lock (new vectors to catch up), a
 * reload of the config, and a vector search (the read lock, after that
 * writer) all finish, and the new document is in the index.
 */
Test(query_embed, a_search_stuck_on_the_embedder_holds_up_nothing_else)
{
    stuck_search t = {NULL, 0};
    pthread_t th;
    ctx_error err;
    json_t *a;

    serve_with(60000);
    script("[\"hold\"]");
    cr_assert_eq(pthread_create(&th, NULL, search_thread, &t), 0);
    wait_holding(1);
    /* A new document with its vector: the refresh has to catch up. */
    tu_write(dir, "docs/all-hands/zz-kite-day.md",
             "---\ntitle: Kite day\n---\nThe quarterly kite day is on the north lawn.\n");
    sync_docs();
    embed_all();
    cr_assert_eq(svc_index_refresh(service, &err), 0, "%s", err.text);
    cr_assert_eq(svc_reload(service, &cfg, &err), 0, "%s", err.text);
    /* Every chunk alice may read, by the vector leg alone. */
    a = ask("{\"query\": \"kite day\", \"mode\": \"vector\", \"k\": 1000}");
    cr_assert_str_eq(vector_leg(a), "used");
    cr_assert(has_title(a, "Kite day"), "the refresh did not catch the index up");
    json_decref(a);
    a = ask_welcome("lexical");
    cr_assert(has_title(a, WELCOME_TITLE));
    json_decref(a);
    cr_assert_eq(__atomic_load_n(&t.done, __ATOMIC_ACQUIRE), 0,
                 "the stuck search ended before the others: the test proves nothing");
    cr_assert_eq(server_stat("holding"), 1);
    ctx_free(http("/release", ""));
    pthread_join(th, NULL);
    cr_assert_str_eq(vector_leg(t.answer), "used");
    cr_assert(has_title(t.answer, WELCOME_TITLE));
    json_decref(t.answer);
}

Test(query_embed, a_rate_limit_or_server_error_at_query_time_is_not_retried)
{
    static const char *const faults[] = {"[\"429\"]", "[\"500\"]", "[\"baddim\"]"};
    json_t *a;

    serve_with(5000);
    for (int i = 0; i < 3; i++) {
        script(faults[i]);
        a = ask_welcome("hybrid");
        cr_assert_eq(server_stat("requests"), 1, "%s was retried", faults[i]);
        cr_assert_str_eq(vector_leg(a), "embedder_error", "%s", faults[i]);
        cr_assert(has_title(a, WELCOME_TITLE), "%s", faults[i]);
        json_decref(a);
    }
}

/* run - `ctxgate --config dir/ctxgate.json ARGS`, which must succeed: its stdout, new. */
static char *run(const char *args)
{
    int status;
    char *out = tu_cli(dir, args, 0, &status);
    cr_assert_eq(status, 0, "ctxgate %s", args);
    return out;
}

Test(query_embed, the_cli_search_says_when_its_query_was_not_embedded)
{
    char text[2 * PATH_MAX + 1024];
    char *out;

    serve_with(1000);
    config_text(text, sizeof text, 1000);
    tu_write(dir, "ctxgate.json", text);
    script("[\"hold\"]");
    out = run("search --as alice@northwind.test --mode hybrid welcome guide first two weeks");
    cr_assert_eq(server_stat("holding"), 1, "the search waited for the server");
    cr_assert(strstr(out, WELCOME_TITLE), "%s", out);
    cr_assert(strstr(out, "note: the query could not be embedded (timeout)"), "%s", out);
    ctx_free(out);
    script("[\"500\"]");
    out = run("search --json --as alice@northwind.test --mode vector welcome guide");
    cr_assert_eq(server_stat("requests"), 1, "the CLI retried a 500");
    cr_assert(strstr(out, "\"reason\": \"embedder_error\""), "%s", out);
    cr_assert(strstr(out, WELCOME_TITLE), "%s", out);
    ctx_free(out);
    script("[]");
    out = run("search --json --as alice@northwind.test --mode hybrid welcome guide");
    cr_assert(strstr(out, "\"used\": true"), "%s", out);
    cr_assert(!strstr(out, "note:"), "%s", out);
    ctx_free(out);
}
