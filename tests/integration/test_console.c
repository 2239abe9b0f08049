/*
 * test_console.c - the admin endpoints (/v1/admin/status, runs, jobs,
 * audit, usage) and the console page that reads them, against a real
 * `ctxgate serve` on the demo data: each endpoint answers what the store
 * and the audit log hold, refuses anyone without the admin token, and
 * names a bad argument; then the page itself in Debian's chromium (driven
 * by playwright-core, tests/console/console.mjs) shows the numbers the API
 * gives and refuses a user's token.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

#define SECRET "console-secret-0123456789-abcdefghijklmnop"
#define ADMIN "console-admin-0123456789-abcdefghijklmnopqrstuv"
#define ALICE "alice@northwind.test"
#define BOB "bob@northwind.test"

static char *dir;
static pid_t server;
static int port;

static void setup(void)
{
    char cfg[PATH_MAX + 2048], demo[PATH_MAX], env[256];
    int status;
    char *out;

    dir = tu_tmpdir("console");
    cr_assert(realpath("examples/demo", demo));
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 64},"
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}],"
             " \"agents\": [{\"name\": \"helpdesk\", \"sources\": \"*\", \"labels\": \"*\"},"
             "  {\"name\": \"hr-bot\", \"sources\": \"*\", \"labels\": \"*\"}],"
             " \"auth\": {\"issuer\": \"ctxgate-test\", \"audience\": \"ctxgate-test\","
             "  \"hs256_secret_env\": \"CTXGATE_TEST_SECRET\"},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2, \"user_rate\": 0,"
             "  \"agent_rate\": 0},"
             " \"budgets\": [{\"agent\": \"hr-bot\", \"tokens\": 1000000, \"per\": \"day\"}],"
             " \"agent\": {\"embed\": \"1h\", \"maintain\": \"1h\"}}", demo);
    tu_write(dir, "ctxgate.json", cfg);
    setenv("CTXGATE_TEST_SECRET", SECRET, 1);
    /* One sync by hand and one round of the agent's jobs: runs and jobs to report. */
    out = tu_cli(dir, "sync", 1, &status);
    cr_assert_eq(status, 0, "%s", out);
    ctx_free(out);
    out = tu_cli(dir, "agent --once", 1, &status);
    cr_assert_eq(status, 0, "%s", out);
    ctx_free(out);
    snprintf(env, sizeof env, "CTXGATE_TEST_SECRET=%s CTXGATE_ADMIN_TOKEN=%s", SECRET, ADMIN);
    server = tu_serve(dir, env, "--no-agent", &port);
    cr_assert(port > 0, "the server did not start");
}

static void teardown(void)
{
    int status;
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, &status, 0);
    }
    if (!getenv("CTX_KEEP"))
        tu_rmrf(dir);
    free(dir);
}

TestSuite(console, .init = setup, .fini = teardown);

/* token - a user's JWT through agent, minted by the CLI (new). */
static char *token(const char *user, const char *agent)
{
    char args[256], *out, *nl;
    int status;

    snprintf(args, sizeof args, "token mint --user %s --agent %s --ttl 1h", user, agent);
    out = tu_cli(dir, args, 0, &status);
    cr_assert_eq(status, 0, "token mint: %s", out);
    if ((nl = strchr(out, '\n')))
        *nl = '\0';
    return out;
}

/* get - GET path with token; the JSON answer (new) and its status. */
static json_t *get(const char *path, const char *tok, long *status)
{
    tu_reply r = tu_call(port, "GET", path, tok, NULL, NULL);
    json_t *o = json_loads(r.body, 0, NULL);
    cr_assert(o, "%s: not JSON: %s", path, r.body);
    *status = r.status;
    tu_reply_free(&r);
    return o;
}

/* search - one search as tok; its tokens served. */
static void search(const char *tok, const char *query)
{
    char body[256];
    tu_reply r;

    snprintf(body, sizeof body, "{\"query\": \"%s\", \"k\": 5, \"mode\": \"lexical\"}", query);
    r = tu_call(port, "POST", "/v1/search", tok, body, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tu_reply_free(&r);
}

static int64_t num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

Test(console, admin_endpoints_answer_what_the_store_and_log_hold)
{
    char *alice = token(ALICE, "helpdesk"), *bob = token(BOB, "hr-bot"), *out;
    json_t *st, *cli, *a, *u, *runs, *jobs, *e;
    int64_t sum = 0, series = 0;
    long status;
    size_t i;
    int rc;

    /* Nobody but the admin: no token, a user's token, a wrong one. */
    json_decref(get("/v1/admin/status", NULL, &status));
    cr_assert_eq(status, 401);
    json_decref(get("/v1/admin/audit", alice, &status));
    cr_assert_eq(status, 401);
    json_decref(get("/v1/admin/usage", "not-the-admin-token-0123456789abcdef", &status));
    cr_assert_eq(status, 401);

    /* status is `ctxgate status --json`'s sources and permissions. */
    st = get("/v1/admin/status", ADMIN, &status);
    cr_assert_eq(status, 200);
    out = tu_cli(dir, "status --json", 0, &rc);
    cr_assert_eq(rc, 0);
    cli = json_loads(out, 0, NULL);
    cr_assert(cli, "%s", out);
    ctx_free(out);
    e = json_array_get(json_object_get(st, "sources"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(e, "source")), "northwind");
    cr_assert_gt(num(e, "documents"), 0);
    cr_assert_eq(num(e, "documents"),
                 num(json_array_get(json_object_get(cli, "sources"), 0), "documents"));
    cr_assert_eq(num(e, "chunks"), num(json_array_get(json_object_get(cli, "sources"), 0),
                                       "chunks"));
    cr_assert(json_is_array(json_object_get(st, "permissions")));
    cr_assert(json_is_object(json_object_get(st, "index")));
    json_decref(cli);
    json_decref(st);

    /* runs: the hand sync and the agent's, newest first; jobs: the agent's. */
    runs = get("/v1/admin/runs?source=northwind", ADMIN, &status);
    cr_assert_eq(status, 200);
    cr_assert_geq(json_array_size(runs), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(runs, 0), "status")),
                     "ok");
    json_decref(runs);
    jobs = get("/v1/admin/jobs", ADMIN, &status);
    cr_assert_eq(status, 200);
    cr_assert_geq(json_array_size(json_object_get(jobs, "jobs")), 1, "the agent ran no job");
    json_array_foreach(json_object_get(jobs, "jobs"), i, e)
        cr_assert(json_is_string(json_object_get(e, "kind")));
    json_decref(jobs);

    /* Two searches by alice, one by bob: the audit and the usage say so. */
    search(alice, "salary bands");
    search(alice, "vpn");
    search(bob, "oncall rotation");
    a = get("/v1/admin/audit?user=" ALICE, ADMIN, &status);
    cr_assert_eq(status, 200);
    cr_assert_eq(json_array_size(a), 2);
    json_array_foreach(a, i, e) {
        cr_assert_str_eq(json_string_value(json_object_get(e, "user")), ALICE);
        cr_assert_str_eq(json_string_value(json_object_get(e, "agent")), "helpdesk");
        sum += num(e, "tokens");
    }
    /* newest first, and the next page is older */
    cr_assert_gt(num(json_array_get(a, 0), "id"), num(json_array_get(a, 1), "id"));
    {
        char path[128];
        json_t *older;
        snprintf(path, sizeof path, "/v1/admin/audit?user=" ALICE "&before=%lld",
                 (long long)num(json_array_get(a, 0), "id"));
        older = get(path, ADMIN, &status);
        cr_assert_eq(json_array_size(older), 1);
        cr_assert_eq(num(json_array_get(older, 0), "id"), num(json_array_get(a, 1), "id"));
        json_decref(older);
    }
    json_decref(a);
    a = get("/v1/admin/audit?agent=hr-bot", ADMIN, &status);
    cr_assert_eq(json_array_size(a), 1);
    json_decref(a);

    u = get("/v1/admin/usage?bucket=60000", ADMIN, &status);
    cr_assert_eq(status, 200);
    e = json_object_get(json_object_get(u, "users"), ALICE);
    cr_assert_eq(num(e, "requests"), 2);
    cr_assert_eq(num(e, "tokens"), sum);
    cr_assert_eq(num(json_object_get(json_object_get(u, "users"), BOB), "requests"), 1);
    cr_assert_eq(num(json_object_get(json_object_get(u, "agents"), "hr-bot"), "requests"), 1);
    json_array_foreach(json_object_get(u, "series"), i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "by")), "user") &&
            !strcmp(json_string_value(json_object_get(e, "name")), ALICE))
            series += num(e, "tokens");
        cr_assert_eq(num(e, "t") % 60000, 0, "a bucket starts on its boundary");
    }
    cr_assert_eq(series, sum, "alice's buckets add up to her total");
    json_decref(u);

    /* Bad arguments are named. */
    a = get("/v1/admin/audit?since=yesterday", ADMIN, &status);
    cr_assert_eq(status, 400);
    cr_assert(strstr(json_string_value(json_object_get(a, "message")), "since"));
    json_decref(a);
    a = get("/v1/admin/usage?bucket=5", ADMIN, &status);
    cr_assert_eq(status, 400);
    cr_assert(strstr(json_string_value(json_object_get(a, "message")), "bucket"));
    json_decref(a);

    /* The page needs no token, holds no data, and keeps to its own origin. */
    {
        tu_reply r = tu_call(port, "GET", "/console", NULL, NULL, NULL);
        cr_assert_eq(r.status, 200);
        cr_assert(strstr(r.body, "<title>ctxgate console</title>"));
        cr_assert(!strstr(r.body, "northwind"), "the page carries no data");
        cr_assert(strstr(r.csp, "default-src 'none'") && strstr(r.csp, "connect-src 'self'"),
                  "%s", r.csp);
        cr_assert(!strncmp(r.content_type, "text/html", 9), "%s", r.content_type);
        tu_reply_free(&r);
    }
    ctx_free(alice);
    ctx_free(bob);
}

Test(console, the_page_in_chromium_shows_what_the_api_gives, .timeout = 180)
{
    char *alice = token(ALICE, "helpdesk"), *bob = token(BOB, "hr-bot");
    char cmd[PATH_MAX + 2048], path[PATH_MAX + 64], *out;
    const char *shots = getenv("CTX_CONSOLE_SHOTS");
    json_t *r, *v;
    const char *k;
    size_t len, i;

    search(alice, "salary bands");
    search(bob, "oncall rotation");
    search(bob, "expense policy");
    snprintf(path, sizeof path, "%s/console.json", dir);
    snprintf(cmd, sizeof cmd, "BASE=http://127.0.0.1:%d ADMIN=%s WRONG=%s EXPLAIN_USER=%s"
             " EXPLAIN_DOC=northwind:hr/salary-bands-2026.md SHOTS=%s"
             " node tests/console/console.mjs >%s 2>%s/console-err.log", port, ADMIN, alice,
             ALICE, shots ? shots : "", path, dir);
    cr_assert_eq(system(cmd), 0, "console.mjs failed; see %s/console-err.log", dir);
    cr_assert_eq(ctx_read_file(path, &out, &len), 0);
    r = json_loads(out, 0, NULL);
    cr_assert(r, "%s", out);

    cr_assert_str_eq(json_string_value(json_object_get(r, "title")), "ctxgate console");
    /* A user's JWT: refused, no row shown. */
    cr_assert(strstr(json_string_value(json_object_get(r, "refused")), "refused"));
    cr_assert_eq(num(r, "refused_rows"), 0);
    /* Every page shows the API's numbers. */
    cr_assert(json_equal(json_object_get(r, "page_sources"), json_object_get(r, "api_sources")),
              "%s", out);
    cr_assert_gt(json_array_size(json_object_get(r, "page_sources")), 0);
    cr_assert_eq(num(r, "page_runs"), num(r, "api_runs"));
    cr_assert_eq(num(r, "page_jobs"), num(r, "api_jobs"));
    cr_assert_gt(num(r, "page_jobs"), 0);
    cr_assert_eq(num(r, "page_audit_all"), 3);
    cr_assert_eq(json_array_size(json_object_get(r, "page_audit_users")), 1);
    cr_assert_eq(num(r, "api_audit_user"), 1);
    json_array_foreach(json_object_get(r, "page_audit_users"), i, v)
        cr_assert_str_eq(json_string_value(v), ALICE);
    cr_assert(json_equal(json_object_get(r, "page_usage_users"),
                         json_object_get(r, "api_usage_users")), "%s", out);
    json_object_foreach(json_object_get(r, "api_usage_users"), k, v)
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "plot_users"), k)),
                     json_integer_value(v), "the plot of %s adds up to the API's total", k);
    cr_assert_eq(num(r, "plot_agents"), num(r, "api_agents"));
    cr_assert_eq(num(r, "plot_agents"), 2);
    /* The budget's row: what the API says is left for hr-bot. */
    cr_assert_eq(num(r, "page_budget_remaining"), num(r, "api_budget_remaining"), "%s", out);
    cr_assert_lt(num(r, "api_budget_remaining"), 1000000, "hr-bot's searches count");
    /* Explain: alice is in group:hr-leads, which reads the salary bands. */
    cr_assert(json_is_true(json_object_get(r, "api_explain")), "%s", out);
    cr_assert(strstr(json_string_value(json_object_get(r, "page_explain")), "READABLE") ==
              json_string_value(json_object_get(r, "page_explain")), "%s", out);
    cr_assert_eq(json_array_size(json_object_get(r, "page_errors")), 0, "%s", out);
    json_decref(r);
    ctx_free(out);
    ctx_free(alice);
    ctx_free(bob);
}
