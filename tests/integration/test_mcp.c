/*
 * test_mcp.c - ctxgate's MCP server as the official MCP TypeScript SDKs
 * see it, on the example company (examples/demo): the v1 client
 * (@modelcontextprotocol/sdk, tests/mcp/client.mjs, which asks for
 * 2025-11-25) and the v2 client (@modelcontextprotocol/client,
 * tests/mcp/client2.mjs, which speaks 2026-07-28), each over stdio
 * (`ctxgate mcp`) and Streamable HTTP (`ctxgate serve`, POST /mcp), as
 * alice (HR: the salary bands) and bob (engineering: the on-call runbook).
 * Then the stateless revision on the wire with curl (server/discover, the
 * version in _meta, a mismatch, the headers), the HTTP refusals, and
 * `ctxgate mcp` refusing to start for an unknown agent or no user.
 * The npm packages are pinned in tests/package.json; tokens are HS256 with
 * a test secret made up here.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

#define SECRET "test-secret-0123456789-abcdefghijklmnop"
#define ISS "ctxgate-test"
#define AUD "ctxgate-api"
#define SALARY "Salary bands 2026"
#define RUNBOOK "Fleet controller on-call runbook"
/* What alice and bob each find a different half of. */
#define QUERY "salary bands on-call runbook"
#define ALICE "alice@northwind.test"
#define BOB "bob@northwind.test"

static char *dir;
static pid_t server;
static int port;

static void setup(void)
{
    char cfg[PATH_MAX * 2 + 2048], demo[PATH_MAX], bin[PATH_MAX], cmd[PATH_MAX * 3];

    dir = tu_tmpdir("mcp");
    port = 0;
    cr_assert(realpath("examples/demo", demo));
    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 64},"
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}],"
             " \"agents\": ["
             "  {\"name\": \"helpdesk\", \"sources\": \"*\", \"labels\": \"*\", \"max_k\": 50,"
             "   \"max_tokens\": 1000000},"
             "  {\"name\": \"announcer\", \"sources\": [\"northwind\"],"
             "   \"labels\": [\"announcement\"], \"max_k\": 50, \"max_tokens\": 1000000}],"
             " \"auth\": {\"issuer\": \"" ISS "\", \"audience\": \"" AUD "\","
             "  \"hs256_secret_env\": \"CTXGATE_TEST_SECRET\"},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2,"
             "  \"user_rate\": 0, \"agent_rate\": 0}}",
             demo);
    tu_write(dir, "ctxgate.json", cfg);
    snprintf(cmd, sizeof cmd, "cd %s && %s/ctxgate sync >/dev/null 2>&1 && %s/ctxgate embed"
             " >/dev/null 2>&1", dir, bin, bin);
    cr_assert_eq(system(cmd), 0, "sync/embed failed");
    snprintf(cmd, sizeof cmd, "CTXGATE_TEST_SECRET=%s", SECRET);
    server = tu_serve(dir, cmd, "--no-agent", &port);
    cr_assert(port > 0, "the server did not start");
}

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

TestSuite(mcp, .init = setup, .fini = teardown, .timeout = 240);

/* ---- HTTP with curl ---- */

typedef tu_reply reply;

/* http - method path with token (or none), body (or none) and the extra
 * headers (a NULL-ended list, or NULL). */
static reply http(const char *method, const char *path, const char *token, const char *body,
                  const char *const *headers)
{
    return tu_call(port, method, path, token, body, headers);
}

/* token - an HS256 JWT for user acting through agent (new). */
static char *token(const char *user, const char *agent)
{
    return tu_jwt(SECRET, ISS, AUD, user, agent, 3600);
}

/* salary_doc - the id of the salary bands, as alice finds them over /v1 (new). */
static char *salary_doc(void)
{
    char *t = token(ALICE, "helpdesk"), id[32] = "";
    reply r = http("POST", "/v1/search", t, "{\"query\": \"salary bands\", \"mode\":"
                   " \"lexical\"}", NULL);
    json_t *a = json_loads(r.body, 0, NULL), *v;
    size_t i;

    cr_assert_eq(r.status, 200, "%s", r.body);
    json_array_foreach(json_object_get(a, "results"), i, v)
        if (!strcmp(json_string_value(json_object_get(v, "title")), SALARY))
            snprintf(id, sizeof id, "%lld",
                     (long long)json_integer_value(json_object_get(v, "doc_id")));
    json_decref(a);
    ctx_free(r.body);
    ctx_free(t);
    cr_assert(id[0], "alice does not find the salary bands");
    return ctx_strdup(id);
}

/* ---- the SDK clients ---- */

/*
 * mcp_client - node tests/mcp/SCRIPT ARGS with env before it; its JSON
 * output (new). A client that fails fails the test, with what it said.
 */
static json_t *mcp_client(const char *script, const char *env, const char *args)
{
    char cmd[PATH_MAX * 3 + 4096], out[PATH_MAX + 32];
    json_t *j;
    int rc;

    snprintf(out, sizeof out, "%s/mcp-out.json", dir);
    snprintf(cmd, sizeof cmd, "%s node tests/mcp/%s %s >%s 2>%s/mcp-err.log", env, script,
             args, out, dir);
    rc = system(cmd);
    j = json_load_file(out, 0, NULL);
    cr_assert(j, "%s printed no JSON (exit %d); see %s/mcp-err.log", script, rc, dir);
    cr_assert_eq(rc, 0, "%s failed: %s", script, json_dumps(j, JSON_COMPACT));
    return j;
}

static int mcp_has(json_t *out, const char *title)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(out, "search"), "results"), i, v)
        if (!strcmp(json_string_value(json_object_get(v, "title")), title))
            return 1;
    return 0;
}

static const char *str(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    return json_string_value(k2 ? json_object_get(v, k2) : v);
}

/* http_args / stdio_args - the client's arguments for alice's or bob's run. */
static void http_args(char *buf, size_t n, const char *user, const char *fetch,
                      const char *query, const char *more)
{
    char *t = token(user, "helpdesk");
    snprintf(buf, n, "--http http://127.0.0.1:%d/mcp --token %s --fetch %s %s %s", port, t,
             fetch, more, query);
    ctx_free(t);
}

static void stdio_args(char *buf, size_t n, const char *fetch, const char *query,
                       const char *more)
{
    char bin[PATH_MAX];
    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(buf, n, "--stdio %s/ctxgate --config %s/ctxgate.json --fetch %s %s %s", bin, dir,
             fetch, more, query);
}

/*
 * two_users - what alice and bob got (a, b) for QUERY and a fetch of the
 * salary bands (id): each sees their own half, the text item and the
 * structuredContent agree, and bob's fetch is refused as a missing one is.
 */
static void two_users(json_t *a, json_t *b)
{
    cr_assert_str_eq(str(a, "server", "name"), "ctxgate");
    cr_assert_eq(json_array_size(json_object_get(a, "tools")), 2);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(a, "tools"), 0)),
                     "search");
    for (int i = 0; i < 2; i++) {
        json_t *o = i ? b : a;
        cr_assert(json_equal(json_object_get(o, "search"), json_object_get(o, "searchText")),
                  "the text item and structuredContent differ");
        cr_assert(json_is_true(json_object_get(
                      json_object_get(json_object_get(o, "fetch"), "metadata"),
                      "untrusted_content")));
    }
    cr_assert(mcp_has(a, SALARY), "alice (hr) misses the salary bands");
    cr_assert(!mcp_has(a, RUNBOOK), "alice (not engineering) sees the runbook");
    cr_assert(mcp_has(b, RUNBOOK), "bob (engineering) misses the runbook");
    cr_assert(!mcp_has(b, SALARY), "LEAK: bob sees the salary bands over MCP");
    cr_assert(strstr(str(json_object_get(a, "fetchById"), "structured", "text"), "Band"));
    cr_assert_str_eq(str(json_object_get(a, "fetchById"), "structured", "title"), SALARY);
    cr_assert(json_is_false(json_object_get(json_object_get(a, "fetchById"), "isError")));
    cr_assert(json_is_true(json_object_get(json_object_get(b, "fetchById"), "isError")));
    cr_assert(json_is_null(json_object_get(json_object_get(b, "fetchById"), "structured")));
}

/* ---- the v1 SDK: asks for 2025-11-25 and gets it ---- */

Test(mcp, sdk_v1_over_http_as_two_users)
{
    char args[8192], *id = salary_doc();
    json_t *a, *b;

    http_args(args, sizeof args, ALICE, id, QUERY, "");
    a = mcp_client("client.mjs", "", args);
    http_args(args, sizeof args, BOB, id, QUERY, "");
    b = mcp_client("client.mjs", "", args);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(str(i ? b : a, "askedVersion", NULL), "2025-11-25");
        cr_assert_str_eq(str(i ? b : a, "protocolVersion", NULL), "2025-11-25");
    }
    two_users(a, b);
    json_decref(a);
    json_decref(b);
    ctx_free(id);
}

Test(mcp, sdk_v1_over_stdio_as_two_users)
{
    char args[PATH_MAX * 2 + 512], *id = salary_doc();
    json_t *a, *b;

    stdio_args(args, sizeof args, id, QUERY, "");
    a = mcp_client("client.mjs", "CTXGATE_USER=" ALICE " CTXGATE_AGENT=helpdesk", args);
    b = mcp_client("client.mjs", "CTXGATE_USER=" BOB " CTXGATE_AGENT=helpdesk", args);
    cr_assert_str_eq(str(a, "protocolVersion", NULL), "2025-11-25");
    cr_assert_str_eq(str(b, "protocolVersion", NULL), "2025-11-25");
    two_users(a, b);
    json_decref(a);
    json_decref(b);
    /* fetch by the source's own id: the same document, and the same refusal */
    stdio_args(args, sizeof args, "northwind:hr/salary-bands-2026.md", "salary bands", "");
    a = mcp_client("client.mjs", "CTXGATE_USER=" ALICE " CTXGATE_AGENT=helpdesk", args);
    b = mcp_client("client.mjs", "CTXGATE_USER=" BOB " CTXGATE_AGENT=helpdesk", args);
    {
        json_t *meta = json_object_get(
            json_object_get(json_object_get(a, "fetchById"), "structured"), "metadata");
        cr_assert_str_eq(json_string_value(json_object_get(meta, "external_id")),
                         "hr/salary-bands-2026.md");
        cr_assert_eq(json_integer_value(json_object_get(meta, "doc_id")), atoll(id));
    }
    cr_assert(json_is_true(json_object_get(json_object_get(b, "fetchById"), "isError")));
    cr_assert(json_is_null(json_object_get(json_object_get(b, "fetchById"), "structured")));
    json_decref(a);
    json_decref(b);
    ctx_free(id);
}

/* ---- the v2 SDK: probes with server/discover and speaks 2026-07-28 ---- */

static void modern(json_t *o)
{
    json_t *v = json_object_get(o, "supportedVersions");
    cr_assert_str_eq(str(o, "protocolVersion", NULL), "2026-07-28", "%s",
                     json_dumps(o, JSON_COMPACT));
    cr_assert_str_eq(str(o, "era", NULL), "modern");
    cr_assert_str_eq(json_string_value(json_array_get(v, 0)), "2026-07-28");
    cr_assert_str_eq(json_string_value(json_array_get(v, 1)), "2025-11-25");
    cr_assert_str_eq(json_string_value(json_array_get(v, 2)), "2025-06-18");
}

Test(mcp, sdk_v2_over_http_speaks_2026_07_28_as_two_users)
{
    char args[8192], *id = salary_doc();
    json_t *a, *b;

    http_args(args, sizeof args, ALICE, id, QUERY, "");
    a = mcp_client("client2.mjs", "", args);
    http_args(args, sizeof args, BOB, id, QUERY, "");
    b = mcp_client("client2.mjs", "", args);
    modern(a);
    modern(b);
    two_users(a, b);
    json_decref(a);
    json_decref(b);
    ctx_free(id);
}

Test(mcp, sdk_v2_over_stdio_speaks_2026_07_28_as_two_users)
{
    char args[PATH_MAX * 2 + 512], *id = salary_doc();
    json_t *a, *b;

    stdio_args(args, sizeof args, id, QUERY, "");
    a = mcp_client("client2.mjs", "CTXGATE_USER=" ALICE " CTXGATE_AGENT=helpdesk", args);
    b = mcp_client("client2.mjs", "CTXGATE_USER=" BOB " CTXGATE_AGENT=helpdesk", args);
    modern(a);
    modern(b);
    two_users(a, b);
    json_decref(a);
    json_decref(b);
    ctx_free(id);
}

/* Left to its own default, the v2 client does the 2025-11-25 handshake. */
Test(mcp, sdk_v2_in_its_default_mode_gets_2025_11_25)
{
    char args[PATH_MAX * 2 + 8192], *id = salary_doc();
    json_t *a, *b;

    http_args(args, sizeof args, ALICE, id, QUERY, "--negotiation legacy");
    a = mcp_client("client2.mjs", "", args);
    stdio_args(args, sizeof args, id, QUERY, "--negotiation legacy");
    b = mcp_client("client2.mjs", "CTXGATE_USER=" BOB " CTXGATE_AGENT=helpdesk", args);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(str(i ? b : a, "protocolVersion", NULL), "2025-11-25");
        cr_assert_str_eq(str(i ? b : a, "era", NULL), "legacy");
    }
    two_users(a, b);
    json_decref(a);
    json_decref(b);
    ctx_free(id);
}

/* A client that knows no later than 2025-06-18 gets 2025-06-18. */
Test(mcp, a_2025_06_18_client_gets_2025_06_18)
{
    char args[8192], *id = salary_doc();
    json_t *a, *b;

    http_args(args, sizeof args, ALICE, id, QUERY, "--negotiation legacy --versions 2025-06-18");
    a = mcp_client("client2.mjs", "", args);
    http_args(args, sizeof args, BOB, id, QUERY, "--negotiation legacy --versions 2025-06-18");
    b = mcp_client("client2.mjs", "", args);
    cr_assert_str_eq(str(a, "protocolVersion", NULL), "2025-06-18");
    cr_assert_str_eq(str(b, "protocolVersion", NULL), "2025-06-18");
    two_users(a, b);
    json_decref(a);
    json_decref(b);
    ctx_free(id);
}

/* ---- 2026-07-28 on the wire ---- */

#define META(v) "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"" v "\"," \
                "\"io.modelcontextprotocol/clientCapabilities\":{}}"

static json_t *rpc(reply r, long want)
{
    json_t *j = json_loads(r.body, 0, NULL);
    cr_assert_eq(r.status, want, "HTTP %ld, not %ld: %s", r.status, want, r.body);
    cr_assert(j, "not JSON: %s", r.body);
    ctx_free(r.body);
    return j;
}

/* mentions - 1 when o's JSON text holds s. */
static int mentions(json_t *o, const char *s)
{
    char *text = json_dumps(o, JSON_COMPACT);
    int found = text && strstr(text, s);
    free(text);
    return found;
}

static long err_code(json_t *j)
{
    return (long)json_integer_value(json_object_get(json_object_get(j, "error"), "code"));
}

Test(mcp, stateless_requests_need_no_session)
{
    static const char *const discover_h[] = {"MCP-Protocol-Version: 2026-07-28",
                                             "Mcp-Method: server/discover", NULL};
    static const char *const search_h[] = {"MCP-Protocol-Version: 2026-07-28",
                                           "Mcp-Method: tools/call", "Mcp-Name: search", NULL};
    static const char *const wrong_name[] = {"MCP-Protocol-Version: 2026-07-28",
                                             "Mcp-Method: tools/call", "Mcp-Name: fetch", NULL};
    static const char *const old_h[] = {"MCP-Protocol-Version: 2099-01-01",
                                        "Mcp-Method: tools/list", NULL};
    static const char search[] = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
                                 "\"params\":{\"name\":\"search\",\"arguments\":{\"query\":"
                                 "\"salary bands\"}," META("2026-07-28") "}}";
    char *ta = token(ALICE, "helpdesk"), *tb = token(BOB, "helpdesk");
    json_t *j, *r;

    /* server/discover, first thing, no initialize */
    j = rpc(http("POST", "/mcp", tb, "{\"jsonrpc\":\"2.0\",\"id\":\"d\",\"method\":"
                 "\"server/discover\",\"params\":{" META("2026-07-28") "}}", discover_h), 200);
    r = json_object_get(j, "result");
    cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "supportedVersions"),
                                                      0)), "2026-07-28");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(
                         json_object_get(r, "_meta"), "io.modelcontextprotocol/serverInfo"),
                         "name")), "ctxgate");
    json_decref(j);
    /* one tools/call each, as the first and only request: each user's own answer */
    j = rpc(http("POST", "/mcp", ta, search, search_h), 200);
    cr_assert(mentions(json_object_get(j, "result"), SALARY), "alice");
    json_decref(j);
    j = rpc(http("POST", "/mcp", tb, search, search_h), 200);
    r = json_object_get(j, "result");
    cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
    cr_assert(json_is_array(json_object_get(json_object_get(r, "structuredContent"),
                                            "results")));
    cr_assert(!mentions(r, SALARY), "LEAK to bob on a stateless call");
    json_decref(j);
    /* a version it does not speak: 400 and the list it does */
    j = rpc(http("POST", "/mcp", ta, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\","
                 "\"params\":{" META("2099-01-01") "}}", old_h), 400);
    cr_assert_eq(err_code(j), -32022);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
                         j, "error"), "data"), "requested")), "2099-01-01");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(
                         json_object_get(j, "error"), "data"), "supported"), 0)),
                     "2026-07-28");
    json_decref(j);
    /* headers that disagree with the body, and a request without its _meta */
    j = rpc(http("POST", "/mcp", ta, search, wrong_name), 400);
    cr_assert_eq(err_code(j), -32020);
    json_decref(j);
    j = rpc(http("POST", "/mcp", ta, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\"}",
                 discover_h), 400);
    cr_assert_eq(err_code(j), -32602);
    json_decref(j);
    ctx_free(ta);
    ctx_free(tb);
}

Test(mcp, http_refuses_what_it_should)
{
    static const char *const evil[] = {"Origin: http://evil.test", NULL};
    char *t = token(ALICE, "helpdesk");
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    reply r = http("POST", "/mcp", NULL, ping, NULL);
    json_t *j;

    cr_assert_eq(r.status, 401);
    cr_assert(strstr(r.www_auth, "/.well-known/oauth-protected-resource"), "%s", r.www_auth);
    ctx_free(r.body);
    r = http("GET", "/mcp", t, NULL, NULL);
    cr_assert_eq(r.status, 405);
    ctx_free(r.body);
    r = http("POST", "/mcp", t, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
             NULL);
    cr_assert_eq(r.status, 202);
    ctx_free(r.body);
    /* a page from another origin may not drive the user's MCP session */
    r = http("POST", "/mcp", t, ping, evil);
    cr_assert_eq(r.status, 403, "%s", r.body);
    ctx_free(r.body);
    r = http("POST", "/mcp", t, "{garbage", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "-32700"), "%s", r.body);
    ctx_free(r.body);
    r = http("GET", "/.well-known/oauth-protected-resource", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    j = json_loads(r.body, 0, NULL);
    /* the resource is the whole service (its /v1 and /mcp take the same tokens) */
    cr_assert(!strncmp(json_string_value(json_object_get(j, "resource")), "http://127.0.0.1:",
                       17), "%s", r.body);
    cr_assert_str_eq(
        json_string_value(json_array_get(json_object_get(j, "authorization_servers"), 0)), ISS);
    json_decref(j);
    ctx_free(r.body);
    ctx_free(t);
}

/* ---- ctxgate mcp's identity ---- */

/* mcp_start - `ctxgate mcp` with env and no input: its exit status, *err its stderr (new). */
static int mcp_start(const char *env, char **err)
{
    char cmd[PATH_MAX * 3], bin[PATH_MAX], path[PATH_MAX + 32];
    size_t len;
    int rc;

    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(path, sizeof path, "%s/mcp-start.log", dir);
    snprintf(cmd, sizeof cmd, "env -u CTXGATE_USER -u CTXGATE_AGENT %s %s/ctxgate --config"
             " %s/ctxgate.json mcp </dev/null >/dev/null 2>%s", env, bin, dir, path);
    rc = system(cmd);
    cr_assert_eq(ctx_read_file(path, err, &len), 0);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(mcp, stdio_refuses_to_start_for_an_unknown_agent_or_no_user)
{
    char *err = NULL;

    cr_assert_eq(mcp_start("CTXGATE_USER=" ALICE " CTXGATE_AGENT=stranger", &err), 2);
    cr_assert(strstr(err, "CTXGATE_AGENT=stranger is not an agent"), "%s", err);
    cr_assert(strstr(err, "helpdesk, announcer"), "the message lists the agents: %s", err);
    ctx_free(err);
    cr_assert_eq(mcp_start("CTXGATE_AGENT=helpdesk", &err), 2);
    cr_assert(strstr(err, "CTXGATE_USER is not set"), "%s", err);
    ctx_free(err);
    cr_assert_eq(mcp_start("CTXGATE_USER= CTXGATE_AGENT=helpdesk", &err), 2);
    cr_assert(strstr(err, "CTXGATE_USER is not set"), "%s", err);
    ctx_free(err);
    cr_assert_eq(mcp_start("CTXGATE_USER=" ALICE, &err), 2);
    cr_assert(strstr(err, "CTXGATE_AGENT is not set"), "%s", err);
    ctx_free(err);
    /* a registered agent starts and stops at the end of its input */
    cr_assert_eq(mcp_start("CTXGATE_USER=" ALICE " CTXGATE_AGENT=announcer", &err), 0, "%s",
                 err);
    ctx_free(err);
}

Test(mcp, serve_and_mcp_help_name_the_transports)
{
    int status = -1;
    char *out = tu_cli(dir, "serve --help", 1, &status);

    cr_assert_eq(status, 0);
    cr_assert(strstr(out, "/mcp"), "serve --help does not name /mcp: %s", out);
    cr_assert(strstr(out, "2026-07-28"), "%s", out);
    ctx_free(out);
    out = tu_cli(dir, "mcp --help", 1, &status);
    cr_assert_eq(status, 0);
    cr_assert(strstr(out, "CTXGATE_USER") && strstr(out, "CTXGATE_AGENT"), "%s", out);
    ctx_free(out);
}
