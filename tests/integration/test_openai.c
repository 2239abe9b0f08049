/*
 * test_openai.c - the openai embedder against a local OpenAI-compatible
 * server (tests/embed_server.py) that injects 429, 500, 401, wrong
 * dimensions, short answers and stalls: transient faults are retried,
 * permanent ones fail with a message naming the cause, and a failed batch
 * leaves nothing behind (vectors and queue exactly as before it).
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/embed.h"
#include "indexer/ingest.h"
#include "tests/lib/testutil.h"

#define DIM 16

static pid_t server;
static int port;
static char *dir;
static ctx_store *st;
static ingest_ctx ic;
static store_run_stats rstats;

static void start_server(void)
{
    server = tu_embed_server(16, "1.5", &port);
}

/* http - POST body to path (or GET when body is NULL); the reply, new. */
static char *http(const char *path, const char *body)
{
    return tu_http(port, path, body);
}

static void script(const char *json_list)
{
    tu_embed_script(port, json_list);
}

static int requests(void)
{
    char *s = http("/stats", NULL);
    int n = -1;
    const char *p = strstr(s, "\"requests\": ");
    if (p)
        n = atoi(p + 12);
    ctx_free(s);
    return n;
}

static void setup(void)
{
    ctx_error err;
    int64_t source;
    const char *allow[1] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};

    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_server();
    dir = tu_tmpdir("openai");
    st = tu_store(dir);
    cr_assert_eq(store_source(st, "s", "test", &source, &err), 0);
    tu_ingest_init(&ic, st, source, &rstats);
    cr_assert_eq(store_begin(st, &err), 0);
    for (int i = 0; i < 6; i++) {
        char id[16], body[64];
        snprintf(id, sizeof id, "d%d", i);
        snprintf(body, sizeof body, "text number %d", i);
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(dir);
    free(dir);
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
}

TestSuite(openai, .init = setup, .fini = teardown, .timeout = 120);

static embed_provider *provider_c(int batch, int retries, int timeout_ms, int concurrency)
{
    embed_cfg c = {0};
    embed_provider *p;
    ctx_error err;
    char url[64];

    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", port);
    c.provider = "openai";
    c.model = "test-embed";
    c.dim = DIM;
    c.base_url = url;
    c.api_key_env = "CTX_TEST_EMBED_KEY";
    c.batch_size = batch;
    c.max_retries = retries;
    c.timeout_ms = timeout_ms;
    c.retry_base_ms = 1;
    c.retry_max_ms = 20;
    c.concurrency = concurrency;
    cr_assert_eq(embed_open(&c, &p, &err), 0, "%s", err.text);
    return p;
}

static embed_provider *provider(int batch, int retries, int timeout_ms)
{
    return provider_c(batch, retries, timeout_ms, 1);
}

Test(openai, embeds_everything_normalized_with_the_key)
{
    embed_provider *p;
    embed_run_stats es;
    ctx_error err;
    sqlite3_stmt *s;

    setenv("CTX_TEST_EMBED_KEY", "sk-test", 1);
    p = provider(4, 2, 5000);
    unsetenv("CTX_TEST_EMBED_KEY");
    cr_assert_str_eq(embed_model_name(p), "openai:test-embed");
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.embedded, 6);
    cr_assert_eq(requests(), 2);
    {
        char *stats = http("/stats", NULL);
        cr_assert(strstr(stats, "Bearer sk-test"), "%s", stats);
        ctx_free(stats);
    }
    cr_assert_eq(sqlite3_prepare_v2(store_db(st), "SELECT vec FROM vectors", -1, &s, NULL), 0);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const float *v = sqlite3_column_blob(s, 0);
        double n = 0;
        cr_assert_eq(sqlite3_column_bytes(s, 0), DIM * 4);
        for (int i = 0; i < DIM; i++)
            n += (double)v[i] * v[i];
        cr_assert_float_eq(sqrt(n), 1.0, 1e-5);
    }
    sqlite3_finalize(s);
    embed_close(p);
}

Test(openai, transient_faults_are_retried)
{
    embed_provider *p = provider(6, 3, 500);
    embed_run_stats es;
    ctx_error err;

    script("[\"429\", \"500\", \"stall\", \"ok\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(requests(), 4);
    cr_assert_eq(es.embedded, 6);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 6);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 0);
    embed_close(p);
}

/* After a failed run: whole batches or nothing, the rest still queued. */
static void check_nothing_half_applied(int batches_done, int batch)
{
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), batches_done * batch);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 6 - batches_done * batch);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue q JOIN vectors v"
                              " ON v.chunk_id = q.chunk_id"), 0);
}

Test(openai, persistent_server_errors_fail_clearly_and_apply_nothing)
{
    embed_provider *p = provider(3, 2, 5000);
    ctx_error err;

    script("[\"ok\", \"500\", \"500\", \"500\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, NULL, &err), CTX_ESOURCE);
    cr_assert(strstr(err.text, "HTTP 500: the model is overloaded after 3 attempts"), "%s",
              err.text);
    cr_assert_eq(requests(), 4);
    check_nothing_half_applied(1, 3);
    /* The server recovers: the rest is embedded, nothing twice. */
    script("[]");
    cr_assert_eq(embed_run(st, p, 0, NULL, NULL, &err), 0, "%s", err.text);
    check_nothing_half_applied(2, 3);
    embed_close(p);
}

Test(openai, wrong_dimensions_and_short_answers_are_clear_errors)
{
    embed_provider *p = provider(2, 5, 5000);
    ctx_error err;

    script("[\"baddim\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, NULL, &err), CTX_ESOURCE);
    cr_assert(strstr(err.text, "returned 17 dimensions, expected 16; set embeddings.dim"), "%s",
              err.text);
    cr_assert_eq(requests(), 1, "a wrong dimension is not retried");
    check_nothing_half_applied(0, 2);
    script("[\"ok\", \"short\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, NULL, &err), CTX_ESOURCE);
    cr_assert(strstr(err.text, "1 vectors for 2 texts"), "%s", err.text);
    check_nothing_half_applied(1, 2);
    embed_close(p);
}

Test(openai, rejected_key_is_not_retried)
{
    embed_provider *p = provider(6, 5, 5000);
    ctx_error err;

    script("[\"401\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, NULL, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "HTTP 401: invalid api key; check the key"), "%s", err.text);
    cr_assert_eq(requests(), 1);
    check_nothing_half_applied(0, 6);
    embed_close(p);
}

Test(openai, stalls_time_out_and_fail_after_the_retries)
{
    embed_provider *p = provider(6, 1, 300);
    ctx_error err;

    script("[\"stall\", \"stall\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, NULL, &err), CTX_ESOURCE);
    cr_assert(strstr(err.text, "Timeout") && strstr(err.text, "after 2 attempts"), "%s",
              err.text);
    check_nothing_half_applied(0, 6);
    embed_close(p);
}

Test(openai, missing_key_for_the_default_endpoint_is_a_config_error)
{
    embed_cfg c = {0};
    embed_provider *p;
    ctx_error err;

    c.provider = "openai";
    c.model = "text-embedding-3-small";
    c.dim = 1536;
    c.api_key_env = "CTX_TEST_NO_SUCH_KEY";
    unsetenv("CTX_TEST_NO_SUCH_KEY");
    cr_assert_eq(embed_open(&c, &p, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "$CTX_TEST_NO_SUCH_KEY is not set"), "%s", err.text);
}

Test(openai, concurrent_requests_fill_one_transaction)
{
    embed_provider *p = provider_c(2, 2, 5000, 3);
    embed_run_stats es;
    ctx_error err;

    cr_assert_eq(embed_batch_items(p), 6);
    /* Three requests at once, one of which fails for good: nothing of the
     * six is written. */
    script("[\"500\", \"500\", \"500\", \"500\", \"500\", \"500\", \"500\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), CTX_ESOURCE);
    check_nothing_half_applied(0, 6);
    /* One transient fault: retried, all six in one batch. */
    script("[\"429\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(requests(), 4);
    cr_assert_eq(es.batches, 1);
    cr_assert_eq(es.embedded, 6);
    check_nothing_half_applied(1, 6);
    embed_close(p);
}

/*
 * A Retry-After given as an HTTP-date is waited for in full before the
 * next attempt; one asking more than embeddings.max_retry_after (300 s by
 * default) fails the run at once, with nothing applied, for the next run.
 */
Test(openai, retry_after_dates_are_waited_for_and_long_waits_refused)
{
    embed_provider *p = provider(6, 3, 5000);
    embed_run_stats es;
    ctx_error err;
    json_t *stats;
    char *s;

    script("[\"429far\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), CTX_ESOURCE);
    cr_assert(strstr(err.text, "HTTP 429 asks to wait 3600 s, more than"
                               " embeddings.max_retry_after (300 s)"), "%s", err.text);
    cr_assert_eq(requests(), 1, "no early retry");
    check_nothing_half_applied(0, 6);

    script("[\"429date\"]");
    cr_assert_eq(embed_run(st, p, 0, NULL, &es, &err), 0, "%s", err.text);
    cr_assert_eq(es.embedded, 6);
    s = http("/stats", NULL);
    cr_assert(stats = json_loads(s, 0, NULL), "%s", s);
    cr_assert_eq(json_array_size(json_object_get(stats, "times")), 3, "%s", s);
    /* the retry came no sooner than the date the server named */
    cr_assert_geq(json_real_value(json_array_get(json_object_get(stats, "times"), 2)),
                  (double)json_integer_value(json_object_get(stats, "until")), "%s", s);
    json_decref(stats);
    ctx_free(s);
    embed_close(p);
}
