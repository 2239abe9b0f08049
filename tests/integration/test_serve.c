/*
 * test_serve.c - `ctxgate serve` as a real process on the example company
 * (examples/demo), spoken to over HTTP on 127.0.0.1 with libcurl: every
 * endpoint as several users and agents (including callers who must see
 * nothing), the leak oracle through the API against search_lexical, each
 * JWT attack on its own, the 400/413/429 paths, junk on the wire, the
 * maintenance agent in the same process, the example agent, and the audit
 * log.
 * Keys are made with openssl at test time; nothing secret is committed.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/store.h"
#include "retrieval/acl.h"
#include "retrieval/search.h"
#include "tests/lib/testutil.h"

#define SECRET "test-secret-0123456789-abcdefghijklmnop"
#define ISS "ctxgate-test"
#define AUD "ctxgate-api"

#define AUTH_MAX_LEN 9000
/* The admin token /metrics needs (serve.admin_token_env's default variable). */
#define ADMIN "admin-token-0123456789-abcdefghijklmnopqrstuv"

static char *dir;
static pid_t server;
static int port;


static void start_with(const char *serve_extra, int with_agent)
{
    char cfg[PATH_MAX * 2 + 2048], demo[PATH_MAX], bin[PATH_MAX], cmd[PATH_MAX * 3];

    dir = tu_tmpdir("serve");
    cr_assert(realpath("examples/demo", demo));
    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl genrsa -out rsa.key 2048 2>/dev/null && openssl rsa -in rsa.key"
             " -pubout -out rsa.pem 2>/dev/null && openssl ecparam -name prime256v1 -genkey"
             " -noout -out ec.key 2>/dev/null && openssl ec -in ec.key -pubout -out ec.pem"
             " 2>/dev/null", dir);
    cr_assert_eq(system(cmd), 0, "openssl: %s", cmd);
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 64},"
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"},"
             "  {\"name\": \"crm\", \"type\": \"files\", \"path\": \"./crm\", \"enabled\": false}],"
             " \"agents\": ["
             "  {\"name\": \"helpdesk\", \"sources\": \"*\", \"labels\": \"*\", \"max_k\": 50,"
             "   \"max_tokens\": 1000000},"
             "  {\"name\": \"announcer\", \"sources\": [\"northwind\"],"
             "   \"labels\": [\"announcement\"], \"max_k\": 50, \"max_tokens\": 1000000},"
             "  {\"name\": \"elsewhere\", \"sources\": [\"crm\"], \"labels\": \"*\"},"
             "  {\"name\": \"tiny\", \"sources\": \"*\", \"labels\": \"*\", \"max_k\": 2,"
             "   \"max_tokens\": 60}],"
             " \"auth\": {\"issuer\": \"" ISS "\", \"audience\": \"" AUD "\","
             "  \"hs256_secret_env\": \"CTXGATE_TEST_SECRET\","
             "  \"public_keys\": [\"rsa.pem\", \"ec.pem\"]},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2,"
             "  \"max_body_bytes\": 4096 %s},"
             " \"agent\": {\"embed\": \"1h\", \"maintain\": \"1h\"}}",
             demo, serve_extra);
    tu_write(dir, "ctxgate.json", cfg);
    snprintf(cmd, sizeof cmd, "cd %s && %s/ctxgate sync >/dev/null 2>&1 && %s/ctxgate embed"
             " >/dev/null 2>&1", dir, bin, bin);
    cr_assert_eq(system(cmd), 0, "sync/embed failed");
    snprintf(cmd, sizeof cmd, "CTXGATE_TEST_SECRET=%s CTXGATE_ADMIN_TOKEN=%s", SECRET, ADMIN);
    server = tu_serve(dir, cmd, with_agent ? "" : "--no-agent", &port);
    cr_assert(port > 0, "the server did not start");
}

static void setup(void) { start_with(", \"user_rate\": 0, \"agent_rate\": 0", 0); }
static void setup_limited(void)
{
    start_with(", \"user_rate\": 1, \"user_burst\": 3, \"agent_rate\": 1, \"agent_burst\": 6",
               0);
}
static void setup_agent(void) { start_with("", 1); }

static void teardown(void)
{
    int status;
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "serve did not stop cleanly (status %d)", status);
    }
    tu_rmrf(dir);
    free(dir);
}

/* ---- HTTP ---- */

typedef tu_reply reply;

/* One more request header for the next http() calls, or NULL. */
static const char *extra_header;

static reply http(const char *method, const char *path, const char *token, const char *body)
{
    const char *more[2] = {extra_header, NULL};
    return tu_call(port, method, path, token, body, extra_header ? more : NULL);
}

/* ---- tokens ---- */

static char *b64url(const char *s, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    ctx_buf b = CTX_BUF_INIT;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        ctx_buf_append(&b, &a[v >> 18 & 63], 1);
        ctx_buf_append(&b, &a[v >> 12 & 63], 1);
        if (i + 1 < n)
            ctx_buf_append(&b, &a[v >> 6 & 63], 1);
        if (i + 2 < n)
            ctx_buf_append(&b, &a[v & 63], 1);
    }
    ctx_buf_append(&b, "", 1);
    return ctx_buf_steal(&b);
}

static char *file_text(const char *name, size_t *len)
{
    char path[PATH_MAX + 64], *t;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(ctx_read_file(path, &t, len), 0, "%s", path);
    return t;
}

/* mint - a token of alg signed with key (a file in dir, or the secret) over claims. */
static char *mint_with(jwt_alg_t alg, const char *keyfile, const char *claims)
{
    jwt_t *j;
    char *key, *tok, *out;
    size_t len;

    if (keyfile) {
        key = file_text(keyfile, &len);
    } else {
        key = ctx_strdup(SECRET);
        len = strlen(SECRET);
    }
    cr_assert_eq(jwt_new(&j), 0);
    cr_assert_eq(jwt_add_grants_json(j, claims), 0, "%s", claims);
    cr_assert_eq(jwt_set_alg(j, alg, (unsigned char *)key, (int)len), 0);
    tok = jwt_encode_str(j);
    cr_assert(tok);
    out = ctx_strdup(tok);
    free(tok);
    jwt_free(j);
    ctx_free(key);
    return out;
}

static char *claims_for(const char *user, const char *agent, long exp_in, const char *iss,
                        const char *aud)
{
    json_t *c = json_object();
    char *s;
    if (user)
        json_object_set_new(c, "sub", json_string(user));
    if (agent)
        json_object_set_new(c, "act", json_pack("{s:s}", "sub", agent));
    json_object_set_new(c, "exp", json_integer((json_int_t)time(NULL) + exp_in));
    json_object_set_new(c, "iss", json_string(iss));
    json_object_set_new(c, "aud", json_string(aud));
    s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return s;
}

static char *token(const char *user, const char *agent)
{
    char *c = claims_for(user, agent, 3600, ISS, AUD), *t = mint_with(JWT_ALG_HS256, NULL, c);
    free(c);
    return t;
}

/* ---- helpers over answers ---- */

static json_t *search(const char *tok, const char *body, long want_status)
{
    reply r = http("POST", "/v1/search", tok, body);
    json_t *j = json_loads(r.body, 0, NULL);
    cr_assert_eq(r.status, want_status, "%s -> %ld: %s", body, r.status, r.body);
    cr_assert(j, "not JSON: %s", r.body);
    ctx_free(r.body);
    return j;
}

static int has_title(json_t *ans, const char *title)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(ans, "results"), i, v)
        if (!strcmp(json_string_value(json_object_get(v, "title")), title))
            return 1;
    return 0;
}

/* validate - o (borrowed) is valid under schemas/api/<schema>.schema.json. */
static void validate(json_t *o, const char *schema)
{
    char path[PATH_MAX + 64], cmd[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/answer.json", dir);
    cr_assert_eq(json_dump_file(o, path, 0), 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/validate-json.py"
             " schemas/api/%s.schema.json %s >/dev/null", schema, path);
    cr_assert_eq(system(cmd), 0, "%s does not match schemas/api/%s.schema.json: %s", path,
                 schema, json_dumps(o, JSON_COMPACT));
}

static ctx_store *store(void)
{
    char path[PATH_MAX + 32];
    ctx_store *st;
    ctx_error err;
    snprintf(path, sizeof path, "%s/data/ctxgate.db", dir);
    cr_assert_eq(store_open(path, 0, &st, &err), 0, "%s", err.text);
    return st;
}

TestSuite(serve, .init = setup, .fini = teardown, .timeout = 240);
TestSuite(serve_limits, .init = setup_limited, .fini = teardown, .timeout = 240);
TestSuite(serve_agent, .init = setup_agent, .fini = teardown, .timeout = 240);

/* ---- endpoints as several users and agents ---- */

Test(serve, search_answers_what_each_user_may_read)
{
    char *alice = token("alice@northwind.test", "helpdesk");
    char *bob = token("bob@northwind.test", "helpdesk");
    char *mallory = token("mallory@evil.test", "helpdesk");
    static const char *const modes[] = {"lexical", "vector", "hybrid"};

    for (int m = 0; m < 3; m++) {
        char body[256];
        json_t *a, *b, *x;
        snprintf(body, sizeof body, "{\"query\": \"salary bands\", \"k\": 10, \"mode\":"
                 " \"%s\"}", modes[m]);
        a = search(alice, body, 200);
        b = search(bob, body, 200);
        x = search(mallory, body, 200);
        cr_assert(has_title(a, "Salary bands 2026"), "%s: alice (hr) misses it", modes[m]);
        cr_assert(!has_title(b, "Salary bands 2026"), "LEAK to bob in %s mode", modes[m]);
        cr_assert_eq(json_array_size(json_object_get(x, "results")), 0,
                     "an unknown user found something in %s mode", modes[m]);
        cr_assert(json_is_true(json_object_get(a, "untrusted_content")));
        validate(a, "search-response");
        validate(x, "search-response");
        json_decref(a);
        json_decref(b);
        json_decref(x);
    }
    ctx_free(alice);
    ctx_free(bob);
    ctx_free(mallory);
}

Test(serve, the_agent_grant_narrows_what_the_user_may_read)
{
    char *ann = token("alice@northwind.test", "announcer");
    char *away = token("alice@northwind.test", "elsewhere");
    char *tiny = token("alice@northwind.test", "tiny");
    json_t *a, *v;
    size_t i;

    a = search(ann, "{\"query\": \"office policy salary plan\", \"k\": 50}", 200);
    json_array_foreach(json_object_get(a, "results"), i, v) {
        size_t j;
        json_t *l;
        json_array_foreach(json_object_get(v, "labels"), j, l)
            cr_assert_str_eq(json_string_value(l), "announcement",
                             "a label outside the grant: %s",
                             json_string_value(json_object_get(v, "title")));
    }
    json_decref(a);
    a = search(away, "{\"query\": \"salary bands\"}", 200);
    cr_assert_eq(json_array_size(json_object_get(a, "results")), 0);
    json_decref(a);
    /* max_k and max_tokens cap the request. */
    a = search(tiny, "{\"query\": \"policy\", \"k\": 50, \"max_tokens\": 100000}", 200);
    cr_assert_leq(json_array_size(json_object_get(a, "results")), 2);
    cr_assert_leq(json_integer_value(json_object_get(a, "tokens")), 60);
    cr_assert_eq(json_integer_value(json_object_get(a, "max_tokens")), 60);
    validate(a, "search-response");
    json_decref(a);
    /* Request filters: a source outside the grant finds nothing; labels filter. */
    a = search(ann, "{\"query\": \"office\", \"sources\": [\"crm\"]}", 200);
    cr_assert_eq(json_array_size(json_object_get(a, "results")), 0);
    json_decref(a);
    ctx_free(ann);
    ctx_free(away);
    ctx_free(tiny);
}

Test(serve, unknown_agent_and_no_agent_get_nothing)
{
    char *t1 = token("alice@northwind.test", "rogue");
    char *t2 = token("alice@northwind.test", NULL);
    json_t *a = search(t1, "{\"query\": \"salary\"}", 403);
    cr_assert(!json_object_get(a, "results"));
    validate(a, "error");
    json_decref(a);
    a = search(t2, "{\"query\": \"salary\"}", 403);
    json_decref(a);
    {
        reply r = http("GET", "/v1/documents/1", t1, NULL);
        cr_assert_eq(r.status, 403);
        ctx_free(r.body);
    }
    ctx_free(t1);
    ctx_free(t2);
}

Test(serve, documents_404_alike_for_forbidden_and_missing)
{
    char *alice = token("alice@northwind.test", "helpdesk");
    char *bob = token("bob@northwind.test", "helpdesk");
    json_t *a = search(alice, "{\"query\": \"salary bands\", \"k\": 1, \"mode\": \"lexical\"}",
                       200);
    json_t *hit = json_array_get(json_object_get(a, "results"), 0), *doc;
    char path[64];
    reply r, forbidden, missing, junk;

    cr_assert(hit);
    snprintf(path, sizeof path, "/v1/documents/%lld",
             (long long)json_integer_value(json_object_get(hit, "doc_id")));
    r = http("GET", path, alice, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    doc = json_loads(r.body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "title")), "Salary bands 2026");
    cr_assert(json_is_true(json_object_get(doc, "untrusted_content")));
    validate(doc, "document");
    json_decref(doc);
    forbidden = http("GET", path, bob, NULL);
    missing = http("GET", "/v1/documents/987654321", bob, NULL);
    junk = http("GET", "/v1/documents/12abc", bob, NULL);
    cr_assert_eq(forbidden.status, 404);
    cr_assert_eq(missing.status, 404);
    cr_assert_eq(junk.status, 404);
    cr_assert_str_eq(forbidden.body, missing.body, "forbidden and missing differ");
    ctx_free(r.body);
    ctx_free(forbidden.body);
    ctx_free(missing.body);
    ctx_free(junk.body);
    json_decref(a);
    ctx_free(alice);
    ctx_free(bob);
}

Test(serve, health_ready_metrics_and_the_mcp_hook)
{
    char *alice = token("alice@northwind.test", "helpdesk");
    reply r = http("GET", "/healthz", NULL, NULL);
    json_t *a;

    cr_assert_eq(r.status, 200);
    ctx_free(r.body);
    r = http("GET", "/readyz", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    ctx_free(r.body);
    a = search(alice, "{\"query\": \"vacation policy\"}", 200);
    json_decref(a);
    r = http("GET", "/metrics", NULL, NULL);
    cr_assert_eq(r.status, 401, "metrics name every user: no token, no metrics");
    ctx_free(r.body);
    r = http("GET", "/metrics", ADMIN, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "ctxgate_http_requests_total{endpoint=\"/v1/search\",code=\"200\"}"),
              "%s", r.body);
    cr_assert(strstr(r.body, "ctxgate_http_request_duration_seconds_bucket"));
    cr_assert(strstr(r.body, "ctxgate_tokens_served_total{user=\"alice@northwind.test\"}"));
    cr_assert(strstr(r.body, "ctxgate_tokens_served_total{agent=\"helpdesk\"}"));
    cr_assert(strstr(r.body, "ctxgate_sync_runs_total{source=\"northwind\",status=\"ok\"}"));
    cr_assert(strstr(r.body, "ctxgate_embed_queue_depth 0"));
    ctx_free(r.body);
    /* The MCP routes exist (for the MCP layer) and need a token. */
    r = http("POST", "/mcp", NULL, "{}");
    cr_assert_eq(r.status, 401);
    cr_assert(strstr(r.www_auth, "resource_metadata=\"http://127.0.0.1:"), "%s", r.www_auth);
    cr_assert(strstr(r.www_auth, "/.well-known/oauth-protected-resource\""));
    ctx_free(r.body);
    r = http("GET", "/nowhere", NULL, NULL);
    cr_assert_eq(r.status, 404);
    ctx_free(r.body);
    r = http("GET", "/v1/search", alice, NULL);
    cr_assert_eq(r.status, 405);
    ctx_free(r.body);
    ctx_free(alice);
}

/*
 * Answers carry the source's own id next to ours, and GET /v1/documents/
 * takes either: SOURCE:EXTERNAL_ID URL-encoded. A reference to something
 * forbidden, missing or malformed answers the same 404, byte for byte.
 */
Test(serve, documents_by_external_id)
{
    char *alice = token("alice@northwind.test", "helpdesk");
    char *bob = token("bob@northwind.test", "helpdesk");
    json_t *a = search(alice, "{\"query\": \"salary bands\", \"k\": 1, \"mode\": \"lexical\"}",
                       200);
    json_t *hit = json_array_get(json_object_get(a, "results"), 0), *doc;
    const char *ext = json_string_value(json_object_get(hit, "external_id"));
    const char *seps[] = {":", "%3A"}; /* as sent raw, and URL-encoded */
    char path[512], *enc;
    reply r, forbidden, missing[6];
    CURL *c = curl_easy_init();

    cr_assert(ext && *ext, "search results carry external_id");
    cr_assert_str_eq(ext, "hr/salary-bands-2026.md", "the files connector's id is its path");
    enc = curl_easy_escape(c, ext, 0);
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/v1/documents/northwind%s%s", seps[i], enc);
        r = http("GET", path, alice, NULL);
        cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
        doc = json_loads(r.body, 0, NULL);
        cr_assert_eq(json_integer_value(json_object_get(doc, "doc_id")),
                     json_integer_value(json_object_get(hit, "doc_id")));
        cr_assert_str_eq(json_string_value(json_object_get(doc, "external_id")), ext);
        cr_assert_str_eq(json_string_value(json_object_get(doc, "stream")), "files");
        validate(doc, "document");
        json_decref(doc);
        ctx_free(r.body);
    }
    snprintf(path, sizeof path, "/v1/documents/northwind%%3A%s", enc);
    forbidden = http("GET", path, bob, NULL);
    missing[0] = http("GET", "/v1/documents/northwind%3Ahr%2Fno-such.md", bob, NULL);
    snprintf(path, sizeof path, "/v1/documents/crm%%3A%s", enc);
    missing[1] = http("GET", path, alice, NULL);      /* no such source */
    missing[2] = http("GET", "/v1/documents/northwind%3A", alice, NULL);
    missing[3] = http("GET", "/v1/documents/%3Afinance", alice, NULL);
    snprintf(path, sizeof path, "/v1/documents/northwind%%3A%s%%3Aextra", enc);
    missing[4] = http("GET", path, alice, NULL);      /* a ':' inside the id is part of it */
    missing[5] = http("GET", "/v1/documents/0042", alice, NULL);
    cr_assert_eq(forbidden.status, 404);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(missing[i].status, 404, "case %zu: %s", i, missing[i].body);
        cr_assert_str_eq(forbidden.body, missing[i].body, "case %zu differs", i);
        ctx_free(missing[i].body);
    }
    ctx_free(forbidden.body);
    curl_free(enc);
    curl_easy_cleanup(c);
    json_decref(a);
    ctx_free(alice);
    ctx_free(bob);
}

/*
 * /metrics names every user and agent: only the admin token opens it. A
 * user's valid JWT, a wrong token, a token with a byte more or less, and
 * the admin token sent some other way than as a bearer token all get the
 * same 401, without OAuth resource metadata (no user token would help).
 */
Test(serve, metrics_need_the_admin_token)
{
    char *alice = token("alice@northwind.test", "helpdesk");
    const char *wrong[] = {ADMIN "x", "admin-token-0123456789-abcdefghijklmnopqrstu",
                           "admin-token-0123456789-abcdefghijklmnopqrstuV", "", alice};
    json_t *a = search(alice, "{\"query\": \"vacation policy\"}", 200);
    reply r;

    json_decref(a);
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        r = http("GET", "/metrics", wrong[i], NULL);
        cr_assert_eq(r.status, 401, "token %zu opened /metrics", i);
        cr_assert(!strstr(r.body, "alice"), "%s", r.body);
        cr_assert(strstr(r.body, "admin token"), "%s", r.body);
        cr_assert_eq(r.www_auth[0], '\0', "%s", r.www_auth);
        ctx_free(r.body);
    }
    extra_header = "X-Admin-Token: " ADMIN;
    r = http("GET", "/metrics", NULL, NULL);
    extra_header = NULL;
    cr_assert_eq(r.status, 401);
    ctx_free(r.body);
    /* An admin path the service does not have is still behind the door:
     * probing /v1/admin/ without the token tells nothing. */
    r = http("GET", "/v1/admin/explain", alice, NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    ctx_free(r.body);
    r = http("GET", "/v1/admin/nothing-here", ADMIN, NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    ctx_free(r.body);
    r = http("GET", "/metrics", ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "ctxgate_tokens_served_total{user=\"alice@northwind.test\"}"));
    /* The refusals were counted, under their endpoint. */
    cr_assert(strstr(r.body, "ctxgate_http_requests_total{endpoint=\"/metrics\",code=\"401\"} 6"),
              "%s", r.body);
    ctx_free(r.body);
    ctx_free(alice);
}

/* GET /v1/admin/explain: the verdict and its reasons, for the admin only. */
Test(serve, admin_explain_says_why)
{
    char *alice = token("alice@northwind.test", "helpdesk");
    reply r;
    json_t *a, *v;
    size_t i;
    int hr = 0;

    r = http("GET", "/v1/admin/explain?user=alice@northwind.test"
                    "&doc=northwind:hr/salary-bands-2026.md", alice, NULL);
    cr_assert_eq(r.status, 401, "a user's token opens no admin route: %s", r.body);
    ctx_free(r.body);
    r = http("GET", "/v1/admin/explain?user=alice@northwind.test"
                    "&doc=northwind%3Ahr%2Fsalary-bands-2026.md", ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    a = json_loads(r.body, 0, NULL);
    cr_assert(json_is_true(json_object_get(a, "readable")), "%s", r.body);
    json_array_foreach(json_object_get(a, "principals"), i, v)
        hr |= !strcmp(json_string_value(json_object_get(v, "principal")), "group:hr") &&
              !strcmp(json_string_value(json_object_get(v, "by")), "northwind");
    cr_assert(hr, "the path names group:hr and who said it: %s", r.body);
    json_decref(a);
    ctx_free(r.body);

    r = http("GET", "/v1/admin/explain?user=alice@northwind.test&agent=helpdesk"
                    "&doc=northwind:hr/salary-bands-2026.md", ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    a = json_loads(r.body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "agent"), "name")),
                     "helpdesk");
    json_decref(a);
    ctx_free(r.body);

    r = http("GET", "/v1/admin/explain?user=mallory@evil.test"
                    "&doc=northwind:hr/salary-bands-2026.md", ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    a = json_loads(r.body, 0, NULL);
    cr_assert(json_is_false(json_object_get(a, "readable")), "%s", r.body);
    cr_assert(strstr(r.body, "declared by no source"), "%s", r.body);
    json_decref(a);
    ctx_free(r.body);

    r = http("GET", "/v1/admin/explain?user=alice@northwind.test&doc=northwind:nope", ADMIN,
             NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    ctx_free(r.body);
    r = http("GET", "/v1/admin/explain?doc=1", ADMIN, NULL);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert(strstr(r.body, "?user=USER&doc="), "%s", r.body);
    ctx_free(r.body);

    /* /metrics shows each source's permission age. */
    r = http("GET", "/metrics", ADMIN, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "ctxgate_permission_age_seconds{source=\"northwind\"}"), "%s",
              r.body);
    cr_assert(strstr(r.body, "ctxgate_source_withheld{source=\"northwind\"} 0"), "%s", r.body);
    ctx_free(r.body);
    ctx_free(alice);
}

static void setup_no_admin(void)
{
    start_with(", \"admin_token_env\": \"CTXGATE_TEST_UNSET_ADMIN\"", 0);
}
TestSuite(serve_no_admin, .init = setup_no_admin, .fini = teardown, .timeout = 240);

/* No admin token configured: admin endpoints are closed, and say how to open them. */
Test(serve_no_admin, metrics_closed_without_an_admin_token)
{
    reply r = http("GET", "/metrics", ADMIN, NULL);
    char cmd[PATH_MAX * 2 + 256], bin[PATH_MAX];
    char *log;
    size_t len;

    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "serve.admin_token_env"), "%s", r.body);
    ctx_free(r.body);
    /* A configured token too short to be a secret stops start-up, naming the key. */
    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(cmd, sizeof cmd, "cd %s && CTXGATE_TEST_SECRET=%s CTXGATE_TEST_UNSET_ADMIN=short"
             " %s/ctxgate serve --no-agent --listen 127.0.0.1:0 2>short.log", dir, SECRET, bin);
    cr_assert_neq(system(cmd), 0, "serve started with a 5-byte admin token");
    log = file_text("short.log", &len);
    cr_assert(strstr(log, "serve.admin_token_env: the admin token is 5 bytes"), "%s", log);
    ctx_free(log);
}

/* ---- the leak oracle, through the API ---- */

static int may_read(ctx_store *st, const char *user, int64_t doc_id)
{
    acl_access a;
    ctx_error err;
    sqlite3_stmt *q;
    int64_t acl = -1;
    int ok = 0;

    cr_assert_eq(sqlite3_prepare_v2(store_db(st), "SELECT acl_id FROM documents WHERE id = ?1"
                                    " AND deleted = 0", -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_int64(q, 1, doc_id);
    if (sqlite3_step(q) == SQLITE_ROW)
        acl = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (acl >= 0 && !acl_access_get(store_db(st), user, &a, &err))
        for (size_t i = 0; i < a.readable.n; i++)
            ok |= a.readable.ids[i] == acl;
    acl_access_free(&a);
    return ok;
}

Test(serve, leak_oracle_random_users_agents_and_queries)
{
    static const char *const users[] = {"alice@northwind.test", "bob@northwind.test",
                                        "carol@northwind.test", "frank@northwind.test",
                                        "priya@northwind.test", "mallory@evil.test"};
    static const char *const agents[] = {"helpdesk", "announcer", "elsewhere"};
    static const char *const words[] = {"salary", "budget", "office", "policy", "incident",
                                        "leave", "roadmap", "plan", "review", "vacation",
                                        "payments", "series", "oncall", "move", "the"};
    ctx_store *st = store();
    unsigned seed = 12345;

    for (int round = 0; round < 60; round++) {
        const char *user = users[rand_r(&seed) % 6], *agent = agents[rand_r(&seed) % 3];
        char q[128], body[256];
        char *tok = token(user, agent);
        json_t *a, *v;
        size_t i;
        search_result res;
        search_opts so;
        ctx_error err;

        snprintf(q, sizeof q, "%s %s", words[rand_r(&seed) % 15], words[rand_r(&seed) % 15]);
        snprintf(body, sizeof body, "{\"query\": \"%s\", \"k\": 8, \"mode\": \"%s\"}", q,
                 round % 3 == 0 ? "lexical" : round % 3 == 1 ? "vector" : "hybrid");
        a = search(tok, body, 200);
        json_array_foreach(json_object_get(a, "results"), i, v) {
            int64_t id = json_integer_value(json_object_get(v, "doc_id"));
            size_t j;
            json_t *l;
            cr_assert(may_read(st, user, id), "LEAK: %s got doc %lld for \"%s\"", user,
                      (long long)id, q);
            cr_assert(strcmp(agent, "elsewhere"), "LEAK: agent elsewhere may read no source");
            if (!strcmp(agent, "announcer"))
                json_array_foreach(json_object_get(v, "labels"), j, l)
                    cr_assert_str_eq(json_string_value(l), "announcement");
        }
        /* Lexical with the unrestricted agent: exactly what search_lexical says. */
        if (round % 3 == 0 && !strcmp(agent, "helpdesk")) {
            memset(&so, 0, sizeof so);
            so.k = 8;
            so.per_doc = 1;
            cr_assert_eq(search_lexical(store_db(st), user, q, &so, &res, &err), 0);
            cr_assert_eq(json_array_size(json_object_get(a, "results")), res.n, "%s: %s", user,
                         q);
            for (i = 0; i < res.n; i++)
                cr_assert_eq(json_integer_value(json_object_get(
                                 json_array_get(json_object_get(a, "results"), i), "doc_id")),
                             res.hits[i].doc_id);
            search_result_free(&res);
        }
        json_decref(a);
        ctx_free(tok);
    }
    store_close(st);
}

/* ---- JWT attacks, one each ---- */

static void refused(const char *tok)
{
    reply r = http("POST", "/v1/search", tok, "{\"query\": \"salary\"}");
    cr_assert_eq(r.status, 401, "accepted: %s", r.body);
    cr_assert(strstr(r.www_auth, "Bearer resource_metadata="), "%s", r.www_auth);
    cr_assert(!strstr(r.body, "Salary"));
    ctx_free(r.body);
}

Test(serve, jwt_valid_hs256_rs256_es256_are_accepted)
{
    char *c = claims_for("alice@northwind.test", "helpdesk", 3600, ISS, AUD);
    char *t[3] = {mint_with(JWT_ALG_HS256, NULL, c), mint_with(JWT_ALG_RS256, "rsa.key", c),
                  mint_with(JWT_ALG_ES256, "ec.key", c)};
    for (int i = 0; i < 3; i++) {
        json_t *a = search(t[i], "{\"query\": \"salary bands\"}", 200);
        cr_assert(has_title(a, "Salary bands 2026"), "token %d", i);
        json_decref(a);
        ctx_free(t[i]);
    }
    free(c);
}

/* replace_in_config - the config file with from replaced by to (once). */
static void replace_in_config(const char *from, const char *to)
{
    size_t len;
    char *t = file_text("ctxgate.json", &len), *p = strstr(t, from);
    ctx_buf b = CTX_BUF_INIT;
    cr_assert(p, "%s is not in the config", from);
    ctx_buf_append(&b, t, (size_t)(p - t));
    ctx_buf_puts(&b, to);
    ctx_buf_puts(&b, p + strlen(from));
    tu_write(dir, "ctxgate.json", b.data);
    ctx_buf_free(&b);
    ctx_free(t);
}

/* status_within - poll until a search with tok answers want (10 s at most). */
static long status_within(const char *tok, long want)
{
    long got = 0;
    for (int i = 0; i < 100 && got != want; i++) {
        reply r = http("POST", "/v1/search", tok, "{\"query\": \"salary bands\"}");
        got = r.status;
        ctx_free(r.body);
        if (got != want)
            usleep(100 * 1000);
    }
    return got;
}

Test(serve, sighup_reloads_agents_grants_and_keys)
{
    char *c = claims_for("alice@northwind.test", "helpdesk", 3600, ISS, AUD);
    char *rogue = token("alice@northwind.test", "rogue"), *rsa = mint_with(JWT_ALG_RS256,
                                                                           "rsa.key", c);
    char *help = token("alice@northwind.test", "helpdesk");
    json_t *a;

    json_decref(search(rogue, "{\"query\": \"salary\"}", 403));
    cr_assert_eq(status_within(rsa, 200), 200);
    /* A new agent, a narrower grant, and the RSA key retired. */
    replace_in_config("{\"name\": \"elsewhere\"", "{\"name\": \"rogue\", \"sources\": \"*\","
                      " \"labels\": \"*\"}, {\"name\": \"elsewhere\"");
    replace_in_config("{\"name\": \"helpdesk\", \"sources\": \"*\", \"labels\": \"*\"",
                      "{\"name\": \"helpdesk\", \"sources\": \"*\", \"labels\": [\"internal\"]");
    replace_in_config("\"public_keys\": [\"rsa.pem\", \"ec.pem\"]", "\"public_keys\": [\"ec.pem\"]");
    cr_assert_eq(kill(server, SIGHUP), 0);
    cr_assert_eq(status_within(rogue, 200), 200, "the new agent is not served");
    cr_assert_eq(status_within(rsa, 401), 401, "the retired key still verifies");
    a = search(help, "{\"query\": \"salary bands\"}", 200);
    cr_assert(!has_title(a, "Salary bands 2026"), "the narrowed grant still lets it through");
    json_decref(a);
    /* A broken config changes nothing: the running one stays. */
    replace_in_config("\"data_dir\"", "\"dtaa_dir\"");
    cr_assert_eq(kill(server, SIGHUP), 0);
    sleep(1);
    cr_assert_eq(status_within(rogue, 200), 200);
    cr_assert_eq(status_within(rsa, 401), 401);
    {
        size_t len;
        char *log = NULL;
        for (int i = 0; i < 50 && !(log && strstr(log, "reload of")); i++) {
            ctx_free(log);
            log = file_text("serve.log", &len);
            usleep(100 * 1000);
        }
        cr_assert(strstr(log, "unknown key \"dtaa_dir\""), "%s", log);
        ctx_free(log);
    }
    ctx_free(rogue);
    ctx_free(rsa);
    ctx_free(help);
    free(c);
}

Test(serve, jwt_alg_none_is_refused)
{
    char *c = claims_for("alice@northwind.test", "helpdesk", 3600, ISS, AUD);
    const char *hdr = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    char *h = b64url(hdr, strlen(hdr)), *p = b64url(c, strlen(c)), tok[4096];
    snprintf(tok, sizeof tok, "%s.%s.", h, p);
    refused(tok);
    snprintf(tok, sizeof tok, "%s.%s.c2ln", h, p);
    refused(tok);
    ctx_free(h);
    ctx_free(p);
    free(c);
}

Test(serve, jwt_hs256_signed_with_the_rsa_public_key_is_refused)
{
    char *c = claims_for("alice@northwind.test", "helpdesk", 3600, ISS, AUD);
    char *t = mint_with(JWT_ALG_HS256, "rsa.pem", c);
    refused(t);
    ctx_free(t);
    t = mint_with(JWT_ALG_HS256, "ec.pem", c);
    refused(t);
    ctx_free(t);
    free(c);
}

Test(serve, jwt_expired_is_refused)
{
    char *c = claims_for("alice@northwind.test", "helpdesk", -3600, ISS, AUD);
    char *t = mint_with(JWT_ALG_HS256, NULL, c);
    refused(t);
    ctx_free(t);
    free(c);
    /* Inside the 60 s skew is still fine. */
    c = claims_for("alice@northwind.test", "helpdesk", -5, ISS, AUD);
    t = mint_with(JWT_ALG_HS256, NULL, c);
    json_decref(search(t, "{\"query\": \"salary\"}", 200));
    ctx_free(t);
    free(c);
}

Test(serve, jwt_wrong_audience_is_refused)
{
    char *c = claims_for("alice@northwind.test", "helpdesk", 3600, ISS, "someone-else");
    char *t = mint_with(JWT_ALG_HS256, NULL, c);
    refused(t);
    ctx_free(t);
    free(c);
}

Test(serve, jwt_wrong_issuer_is_refused)
{
    char *c = claims_for("alice@northwind.test", "helpdesk", 3600, "evil-issuer", AUD);
    char *t = mint_with(JWT_ALG_RS256, "rsa.key", c);
    refused(t);
    ctx_free(t);
    free(c);
}

Test(serve, jwt_tampered_payload_is_refused)
{
    char *t = token("bob@northwind.test", "helpdesk");
    char *c = claims_for("alice@northwind.test", "helpdesk", 3600, ISS, AUD);
    char *p = b64url(c, strlen(c)), tok[4096];
    const char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
    snprintf(tok, sizeof tok, "%.*s.%s%s", (int)(d1 - t), t, p, d2);
    refused(tok);
    ctx_free(p);
    ctx_free(t);
    free(c);
}

Test(serve, jwt_missing_sub_is_refused)
{
    char *c = claims_for(NULL, "helpdesk", 3600, ISS, AUD);
    char *t = mint_with(JWT_ALG_HS256, NULL, c);
    refused(t);
    ctx_free(t);
    free(c);
}

Test(serve, jwt_unknown_agent_gets_nothing)
{
    char *t = token("alice@northwind.test", "unregistered-agent");
    json_t *a = search(t, "{\"query\": \"salary bands\"}", 403);
    cr_assert(!json_object_get(a, "results"));
    json_decref(a);
    ctx_free(t);
}

Test(serve, jwt_bad_signature_is_refused)
{
    char *t = token("alice@northwind.test", "helpdesk");
    char *last = t + strlen(t) - 3;
    *last = *last == 'A' ? 'B' : 'A';
    refused(t);
    ctx_free(t);
    /* A secret that is not the server's. */
    {
        jwt_t *j;
        char *c = claims_for("alice@northwind.test", "helpdesk", 3600, ISS, AUD), *s;
        const char *other = "another-secret-0123456789-abcdefghijklmn";
        cr_assert_eq(jwt_new(&j), 0);
        jwt_add_grants_json(j, c);
        jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)other, (int)strlen(other));
        s = jwt_encode_str(j);
        refused(s);
        free(s);
        jwt_free(j);
        free(c);
    }
    refused("not-a-token");
    refused("a.b.c");
}

/* ---- 400, 413, 429 ---- */

Test(serve, bad_requests_name_the_problem)
{
    static const struct {
        const char *body, *names;
    } cases[] = {
        {"{\"query\": ", "body: not JSON"},
        {"[1,2]", "body: expected a JSON object"},
        {"{}", "query: missing"},
        {"{\"query\": 5}", "query: expected a non-empty string"},
        {"{\"query\": \"x\", \"k\": \"ten\"}", "k: expected an integer"},
        {"{\"query\": \"x\", \"k\": 0}", "k: expected an integer"},
        {"{\"query\": \"x\", \"mode\": \"semantic\"}", "mode: expected"},
        {"{\"query\": \"x\", \"sources\": \"all\"}", "sources: expected an array"},
        {"{\"query\": \"x\", \"labels\": [1]}", "labels[0]: expected a non-empty name"},
        {"{\"query\": \"x\", \"max_token\": 5}", "did you mean \"max_tokens\""},
        {"{\"query\": \"x\", \"query\": \"y\"}", "body: not JSON"},
    };
    char *t = token("alice@northwind.test", "helpdesk");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *a = search(t, cases[i].body, 400);
        const char *msg = json_string_value(json_object_get(a, "message"));
        cr_assert(msg && strstr(msg, cases[i].names), "%s -> %s", cases[i].body, msg);
        validate(a, "error");
        json_decref(a);
    }
    ctx_free(t);
}

Test(serve, large_bodies_are_413)
{
    char *t = token("alice@northwind.test", "helpdesk");
    char *big = ctx_malloc(10000);
    json_t *a;
    memset(big, ' ', 9999);
    memcpy(big, "{\"query\": \"x\"", 13);
    big[9998] = '}';
    big[9999] = '\0';
    a = search(t, big, 413);
    json_decref(a);
    ctx_free(big);
    ctx_free(t);
}

Test(serve_limits, rate_limits_answer_429_with_retry_after)
{
    char *t = token("carol@northwind.test", "helpdesk");
    char *other = token("bob@northwind.test", "helpdesk");
    int limited = 0;
    for (int i = 0; i < 8; i++) {
        reply r = http("POST", "/v1/search", t, "{\"query\": \"budget\"}");
        if (r.status == 429) {
            limited = 1;
            cr_assert(atoi(r.retry_after) >= 1, "Retry-After: \"%s\"", r.retry_after);
        } else {
            cr_assert_eq(r.status, 200);
        }
        ctx_free(r.body);
    }
    cr_assert(limited, "8 requests at once with a burst of 3 were never limited");
    /* Another user has a bucket of their own. */
    {
        reply r = http("POST", "/v1/search", other, "{\"query\": \"budget\"}");
        cr_assert_eq(r.status, 200);
        ctx_free(r.body);
    }
    ctx_free(t);
    ctx_free(other);
}

Test(serve_limits, the_agent_has_a_bucket_across_its_users)
{
    static const char *const users[] = {"alice@northwind.test", "bob@northwind.test",
                                        "carol@northwind.test", "dave@northwind.test"};
    int limited = 0;
    for (int i = 0; i < 8; i++) {
        char *t = token(users[i / 2], "helpdesk");
        reply r = http("POST", "/v1/search", t, "{\"query\": \"budget\"}");
        cr_assert(r.status == 200 || r.status == 429, "%ld", r.status);
        limited |= r.status == 429;
        ctx_free(r.body);
        ctx_free(t);
    }
    cr_assert(limited, "8 requests through one agent with a burst of 6 were never limited");
}

/* ---- junk on the wire ---- */

static void send_raw(const void *data, size_t len)
{
    struct sockaddr_in sa;
    struct timeval tv = {2, 0};
    char buf[512];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)!write(fd, data, len);
    shutdown(fd, SHUT_WR);
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
}

Test(serve, junk_requests_neither_crash_nor_hang_it)
{
    static const char *const junk[] = {
        "GARBAGE\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "ffffffffffffffff\r\nabc\r\n",
        "GET /v1/documents/%00%ff HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ..\r\n\r\n",
        "GET /v1/documents/99999999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\n"
        "Content-Length: 100\r\n\r\n{\"query\"",
    };
    unsigned seed = 7;
    char rnd[2048];
    reply r;

    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        send_raw(junk[i], strlen(junk[i]));
    for (int i = 0; i < 20; i++) {
        for (size_t j = 0; j < sizeof rnd; j++)
            rnd[j] = (char)rand_r(&seed);
        send_raw(rnd, sizeof rnd);
    }
    r = http("GET", "/healthz", NULL, NULL);
    cr_assert_eq(r.status, 200);
    ctx_free(r.body);
}

/* ---- audit ---- */

static json_t *run_json(const char *args)
{
    char cmd[PATH_MAX * 2];
    FILE *p;
    json_t *j;
    snprintf(cmd, sizeof cmd, "%s/ctxgate --config %s/ctxgate.json %s", tu_build_dir(), dir,
             args);
    p = popen(cmd, "r");
    cr_assert(p);
    j = json_loadf(p, 0, NULL);
    pclose(p);
    cr_assert(j, "%s printed no JSON", cmd);
    return j;
}

Test(serve, every_search_and_fetch_is_audited)
{
    char *alice = token("alice@northwind.test", "helpdesk");
    char *frank = token("frank@northwind.test", "announcer");
    json_t *a, *log = NULL, *row, *usage;
    size_t i, searches = 0, fetches = 0;

    json_decref(search(alice, "{\"query\": \"salary bands\", \"k\": 2}", 200));
    json_decref(search(frank, "{\"query\": \"office move\"}", 200));
    json_decref(search(frank, "{\"query\": \"salary\"}", 200));
    {
        reply r = http("GET", "/v1/documents/1", alice, NULL);
        ctx_free(r.body);
        r = http("GET", "/v1/documents/99999", frank, NULL);
        ctx_free(r.body);
    }
    /* The writer works in the background: wait until all five are in. */
    for (int tries = 0; tries < 100; tries++) {
        json_decref(log);
        log = run_json("audit --json");
        if (json_array_size(log) >= 5)
            break;
        usleep(100000);
    }
    cr_assert_eq(json_array_size(log), 5, "%s", json_dumps(log, 0));
    json_array_foreach(log, i, row) {
        const char *action = json_string_value(json_object_get(row, "action"));
        searches += !strcmp(action, "search");
        fetches += !strcmp(action, "fetch");
        cr_assert(json_is_string(json_object_get(row, "user")));
        cr_assert(json_is_string(json_object_get(row, "agent")));
        cr_assert(json_is_string(json_object_get(row, "outcome")));
        cr_assert(json_is_integer(json_object_get(row, "latency_us")));
        if (!strcmp(action, "search")) {
            /* audit.store_queries is off: the hash only. */
            cr_assert(!json_object_get(row, "query") ||
                      json_is_null(json_object_get(row, "query")));
            cr_assert_eq(strlen(json_string_value(json_object_get(row, "query_sha256"))), 64);
        }
    }
    cr_assert_eq(searches, 3);
    cr_assert_eq(fetches, 2);
    a = run_json("audit --json --user alice@northwind.test");
    cr_assert_eq(json_array_size(a), 2);
    row = json_array_get(a, 1);
    cr_assert_gt(json_array_size(json_object_get(row, "doc_ids")), 0);
    cr_assert_gt(json_integer_value(json_object_get(row, "tokens")), 0);
    json_decref(a);
    a = run_json("audit --json --agent announcer --since 1h");
    cr_assert_eq(json_array_size(a), 3);
    json_decref(a);
    usage = run_json("usage --json");
    cr_assert_gt(json_integer_value(json_object_get(
                     json_object_get(json_object_get(usage, "users"), "alice@northwind.test"),
                     "tokens")), 0);
    cr_assert(json_object_get(json_object_get(usage, "agents"), "helpdesk"));
    json_decref(usage);
    json_decref(log);
    ctx_free(alice);
    ctx_free(frank);
}

/* ---- the example agent (examples/agent), dry run ---- */

Test(serve, the_example_agent_prints_the_context_it_would_send)
{
    char cmd[PATH_MAX * 3], *tok = token("alice@northwind.test", "helpdesk");
    ctx_buf b = CTX_BUF_INIT;
    char buf[4096];
    size_t n;
    FILE *p;

    snprintf(cmd, sizeof cmd, "make -s -C examples/agent OUT=%s >/dev/null 2>&1", dir);
    cr_assert_eq(system(cmd), 0, "examples/agent does not build");
    snprintf(cmd, sizeof cmd, "env -u OPENAI_BASE_URL %s/ctx-agent --url http://127.0.0.1:%d"
             " --token %s what are the salary bands", dir, port, tok);
    p = popen(cmd, "r");
    cr_assert(p);
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        ctx_buf_append(&b, buf, n);
    cr_assert_eq(pclose(p), 0);
    ctx_buf_append(&b, "", 1);
    cr_assert(strstr(b.data, "/chat/completions"), "%s", b.data);
    cr_assert(strstr(b.data, "UNTRUSTED RETRIEVED DATA"), "%s", b.data);
    cr_assert(strstr(b.data, "Salary bands 2026 <https://"), "%s", b.data);
    cr_assert(strstr(b.data, "Sources:\n  [1] "), "%s", b.data);
    ctx_buf_free(&b);
    ctx_free(tok);
}

/* ---- the maintenance agent inside serve ---- */

Test(serve_agent, serve_runs_the_agent_and_stops_cleanly)
{
    char *alice = token("alice@northwind.test", "helpdesk");
    int64_t ok = 0;
    json_t *a;

    for (int tries = 0; tries < 300 && ok < 2; tries++) {
        ctx_store *st = store();
        ok = tu_count(st, "SELECT count(DISTINCT kind) FROM agent_jobs WHERE status = 'ok'"
                          " AND kind IN ('sync', 'embed')");
        store_close(st);
        if (ok < 2)
            usleep(100000);
    }
    cr_assert_eq(ok, 2, "the agent in serve ran no sync and embed job");
    a = search(alice, "{\"query\": \"salary bands\"}", 200);
    cr_assert(has_title(a, "Salary bands 2026"));
    json_decref(a);
    ctx_free(alice);
    /* teardown checks that SIGTERM stops server and agent with status 0 */
}
