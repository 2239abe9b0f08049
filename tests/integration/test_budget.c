/*
 * test_budget.c - token budgets end to end: `ctxgate serve` on the demo
 * company, spoken to over HTTP with libcurl, and `ctxgate mcp` on stdio.
 * Once a user's or an agent's budget is spent, search and fetch answer 429
 * naming it (MCP: a tool error naming it); the state shows in /metrics,
 * /v1/admin/budgets and `ctxgate usage`; a second server on the same
 * data_dir refuses too (the count is in the shared audit file).
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

#define SECRET "budget-secret-0123456789-abcdefghijklmnop"
#define ADMIN "budget-admin-0123456789-abcdefghijklmnopqrstuv"

static char *dir;
static char bin[PATH_MAX];
static pid_t servers[2];
static int ports[2];

/*
 * budgets[0]: alice, 300 tokens an hour; [1]: the agent tiny, 100 a day;
 * [2]: every other user, a day's plenty.
 */
static void setup(void)
{
    char cfg[PATH_MAX + 2048], demo[PATH_MAX], cmd[PATH_MAX * 3];

    dir = tu_tmpdir("budget");
    cr_assert(realpath("examples/demo", demo));
    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 64},"
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}],"
             " \"agents\": ["
             "  {\"name\": \"helpdesk\", \"sources\": \"*\", \"labels\": \"*\", \"max_k\": 5,"
             "   \"max_tokens\": 120},"
             "  {\"name\": \"tiny\", \"sources\": \"*\", \"labels\": \"*\", \"max_k\": 5,"
             "   \"max_tokens\": 60}],"
             " \"budgets\": ["
             "  {\"user\": \"alice@northwind.test\", \"tokens\": 300, \"per\": \"hour\"},"
             "  {\"agent\": \"tiny\", \"tokens\": 100, \"per\": \"day\"},"
             "  {\"user\": \"*\", \"tokens\": 1000000}],"
             " \"auth\": {\"issuer\": \"budget-test\", \"audience\": \"budget-api\","
             "  \"hs256_secret_env\": \"CTXGATE_TEST_SECRET\"},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2, \"user_rate\": 0,"
             "  \"agent_rate\": 0}}", demo);
    tu_write(dir, "ctxgate.json", cfg);
    snprintf(cmd, sizeof cmd, "cd %s && %s/ctxgate sync >/dev/null 2>&1", dir, bin);
    cr_assert_eq(system(cmd), 0, "sync failed");
}

/* start - server i (0 or 1) on the same data_dir, its port read from its log. */
static void start(int i)
{
    char cmd[PATH_MAX * 3], logp[PATH_MAX + 32];

    snprintf(cmd, sizeof cmd, "cd %s && CTXGATE_TEST_SECRET=%s CTXGATE_ADMIN_TOKEN=%s exec"
             " %s/ctxgate serve --no-agent 2>serve%d.log", dir, SECRET, ADMIN, bin, i);
    servers[i] = fork();
    cr_assert(servers[i] >= 0);
    if (servers[i] == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    snprintf(logp, sizeof logp, "%s/serve%d.log", dir, i);
    for (int n = 0; n < 600 && !ports[i]; n++) {
        char line[512];
        FILE *f = fopen(logp, "r");
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "serving on http://127.0.0.1:");
            if (p)
                ports[i] = atoi(p + strlen("serving on http://127.0.0.1:"));
        }
        if (f)
            fclose(f);
        if (!ports[i])
            usleep(50000);
    }
    cr_assert(ports[i] > 0, "server %d did not start", i);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++) {
        int status;
        if (servers[i] <= 0)
            continue;
        kill(servers[i], SIGTERM);
        waitpid(servers[i], &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "serve %d did not stop cleanly (status %d)", i, status);
        servers[i] = 0;
        ports[i] = 0;
    }
    tu_rmrf(dir);
    free(dir);
}

TestSuite(budget, .init = setup, .fini = teardown, .timeout = 180);

/* ---- HTTP ---- */

typedef tu_reply reply;

/* http - one request to server i; bearer is a token (or the admin's), body NULL for GET. */
static reply http(int i, const char *path, const char *bearer, const char *body)
{
    static const char *const accept[] = {"Accept: application/json, text/event-stream", NULL};
    return tu_call(ports[i], body ? "POST" : "GET", path, bearer, body, accept);
}

/* run - a shell command's stdout (new); *status its exit status. */
static char *run(const char *cmd, int *status)
{
    char buf[4096], *out = NULL;
    size_t n, len = 0;
    FILE *p = popen(cmd, "r"), *m = open_memstream(&out, &len);
    int st;

    cr_assert_not_null(p, "%s", cmd);
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        fwrite(buf, 1, n, m);
    st = pclose(p);
    fclose(m);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

/* token - a development token for user acting through agent (`ctxgate token mint`). */
static char *token(const char *user, const char *agent)
{
    char cmd[PATH_MAX * 2], *out;
    int status;

    snprintf(cmd, sizeof cmd, "cd %s && CTXGATE_TEST_SECRET=%s %s/ctxgate token mint --user %s"
             " --agent %s --ttl 1h", dir, SECRET, bin, user, agent);
    out = run(cmd, &status);
    cr_assert_eq(status, 0, "%s", cmd);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* next_hour - the end of the current UTC hour, in Unix seconds. */
static long long next_hour(void) { return (long long)time(NULL) / 3600 * 3600 + 3600; }

#define QUERY "{\"query\": \"vacation policy days\", \"mode\": \"lexical\"}"

/* spend - search as tok until refused: the tokens the answers held; *served answers. */
static int64_t spend(int i, const char *tok, int *served, reply *refusal)
{
    int64_t total = 0;

    *served = 0;
    for (int n = 0; n < 50; n++) {
        reply r = http(i, "/v1/search", tok, QUERY);
        if (r.status == 429) {
            *refusal = r;
            return total;
        }
        cr_assert_eq(r.status, 200, "%s", r.body);
        {
            json_t *a = json_loads(r.body, 0, NULL);
            int64_t t = json_integer_value(json_object_get(a, "tokens"));
            cr_assert_gt(t, 0, "an answer with no tokens spends nothing: %s", r.body);
            total += t;
            json_decref(a);
        }
        (*served)++;
        free(r.body);
    }
    cr_assert_fail("never refused after 50 searches (%lld tokens)", (long long)total);
    return total;
}

Test(budget, spent_user_budget_is_429_naming_it_and_shows_everywhere)
{
    char *alice, *bob, line[512], *out;
    int64_t total, last;
    int served, status;
    reply r, refusal;
    json_t *j, *e;
    size_t i;
    int found = 0;

    start(0);
    alice = token("alice@northwind.test", "helpdesk");
    bob = token("bob@northwind.test", "helpdesk");
    total = spend(0, alice, &served, &refusal);
    /* Refused at once when spent, not before: the answers before the
     * refusal reached 300, and all but the last were under it. */
    cr_assert_geq(total, 300, "refused at %lld tokens, before the budget", (long long)total);
    last = total - 120; /* an answer holds at most the grant's 120 */
    cr_assert_lt(last, 300, "served %lld tokens past the budget", (long long)total);
    cr_assert(strstr(refusal.body, "\"budget_exhausted\""), "%s", refusal.body);
    cr_assert(strstr(refusal.body, "budgets[0] (user \\\"alice@northwind.test\\\": 300 tokens"
                                   " per hour)"), "%s", refusal.body);
    cr_assert(strstr(refusal.body, "resets at"), "%s", refusal.body);
    cr_assert_gt(atol(refusal.retry_after), 0);
    cr_assert_leq(atol(refusal.retry_after), 3600);
    free(refusal.body);

    /* fetch too; bob, another user through the same agent, goes on */
    r = http(0, "/v1/documents/1", alice, NULL);
    cr_assert_eq(r.status, 429, "%s", r.body);
    cr_assert(strstr(r.body, "budgets[0]"), "%s", r.body);
    free(r.body);
    r = http(0, "/v1/search", bob, QUERY);
    cr_assert_eq(r.status, 200, "%s", r.body);
    free(r.body);

    /* MCP over HTTP: a tool error naming the budget */
    r = http(0, "/mcp", alice,
             "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"search\",\"arguments\":{\"query\":\"vacation\"}}}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = json_loads(r.body, 0, NULL);
    cr_assert(json_is_true(json_object_get(json_object_get(j, "result"), "isError")), "%s",
              r.body);
    cr_assert_eq(json_integer_value(json_object_get(j, "id")), 7);
    cr_assert(strstr(r.body, "budgets[0] (user \\\"alice@northwind.test\\\""), "%s", r.body);
    json_decref(j);
    free(r.body);

    /* /metrics: used, remaining 0, the reset at the end of the hour */
    r = http(0, "/metrics", ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    snprintf(line, sizeof line, "ctxgate_budget_remaining_tokens{budget=\"0\",kind=\"user\","
             "name=\"alice@northwind.test\",per=\"hour\"} 0\n");
    cr_assert(strstr(r.body, line), "%s", r.body);
    snprintf(line, sizeof line, "ctxgate_budget_used_tokens{budget=\"0\",kind=\"user\","
             "name=\"alice@northwind.test\",per=\"hour\"} %lld\n", (long long)total);
    cr_assert(strstr(r.body, line), "want %s in %s", line, r.body);
    snprintf(line, sizeof line, "ctxgate_budget_reset_timestamp_seconds{budget=\"0\","
             "kind=\"user\",name=\"alice@northwind.test\",per=\"hour\"} %lld\n", next_hour());
    cr_assert(strstr(r.body, line), "want %s in %s", line, r.body);
    /* bob under the "*" budget, by his own name */
    cr_assert(strstr(r.body, "ctxgate_budget_used_tokens{budget=\"2\",kind=\"user\","
                             "name=\"bob@northwind.test\",per=\"day\"} "), "%s", r.body);
    free(r.body);

    /* /v1/admin/budgets: the same state as JSON, admin only */
    r = http(0, "/v1/admin/budgets", alice, NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    free(r.body);
    r = http(0, "/v1/admin/budgets", ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = json_loads(r.body, 0, NULL);
    json_array_foreach(json_object_get(j, "budgets"), i, e) {
        if (json_integer_value(json_object_get(e, "budget")) != 0)
            continue;
        found = 1;
        cr_assert_str_eq(json_string_value(json_object_get(e, "name")),
                         "alice@northwind.test");
        cr_assert_eq(json_integer_value(json_object_get(e, "remaining")), 0);
        cr_assert_eq(json_integer_value(json_object_get(e, "resets_at")), next_hour() * 1000);
    }
    cr_assert(found, "%s", r.body);
    json_decref(j);
    free(r.body);

    /* `ctxgate usage` reads the same counts from the file */
    {
        char cmd[PATH_MAX * 2];
        snprintf(cmd, sizeof cmd, "cd %s && %s/ctxgate usage", dir, bin);
        out = run(cmd, &status);
        cr_assert_eq(status, 0, "%s", out);
        snprintf(line, sizeof line, "%lld", (long long)total);
        cr_assert(strstr(out, "budgets[0]") && strstr(out, "alice@northwind.test") &&
                  strstr(out, line), "%s", out);
        free(out);
    }

    /* A second replica on the same data_dir sees the same spent budget. */
    start(1);
    r = http(1, "/v1/search", alice, QUERY);
    cr_assert_eq(r.status, 429, "%s", r.body);
    cr_assert(strstr(r.body, "budgets[0]"), "%s", r.body);
    free(r.body);
    r = http(1, "/v1/search", bob, QUERY);
    cr_assert_eq(r.status, 200, "%s", r.body);
    free(r.body);
    free(alice);
    free(bob);
}

Test(budget, spent_agent_budget_refuses_every_user_of_that_agent)
{
    char *carol, *dave, *dave_helpdesk;
    int served;
    reply refusal, r;

    start(0);
    carol = token("carol@northwind.test", "tiny");
    dave = token("dave@northwind.test", "tiny");
    dave_helpdesk = token("dave@northwind.test", "helpdesk");
    spend(0, carol, &served, &refusal);
    cr_assert_geq(served, 1);
    cr_assert(strstr(refusal.body, "budgets[1] (agent \\\"tiny\\\": 100 tokens per day)"), "%s",
              refusal.body);
    free(refusal.body);
    r = http(0, "/v1/search", dave, QUERY);
    cr_assert_eq(r.status, 429, "%s", r.body);
    cr_assert(strstr(r.body, "to agent \\\"tiny\\\""), "%s", r.body);
    free(r.body);
    r = http(0, "/v1/search", dave_helpdesk, QUERY);
    cr_assert_eq(r.status, 200, "another agent's budget is its own: %s", r.body);
    free(r.body);
    free(carol);
    free(dave);
    free(dave_helpdesk);
}

Test(budget, mcp_stdio_answers_a_tool_error_naming_the_budget)
{
    char cmd[PATH_MAX * 3 + 8192], *out, *l;
    ctx_buf lines = CTX_BUF_INIT;
    int status, refused = 0, ok = 0, fetch_refused = 0;

    /* alice has 300 tokens an hour, an answer at most 120: ten searches
     * spend it, and the fetch after them is refused too */
    ctx_buf_puts(&lines, " '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                         "\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":"
                         "{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}'"
                         " '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}'");
    for (int id = 2; id < 12; id++)
        ctx_buf_printf(&lines, " '{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\","
                       "\"params\":{\"name\":\"search\",\"arguments\":{\"query\":"
                       "\"vacation policy days\"}}}'", id);
    ctx_buf_puts(&lines, " '{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"tools/call\","
                         "\"params\":{\"name\":\"fetch\",\"arguments\":{\"id\":\"1\"}}}'");
    snprintf(cmd, sizeof cmd, "cd %s && printf '%%s\\n'%s | CTXGATE_USER=alice@northwind.test"
             " CTXGATE_AGENT=helpdesk %s/ctxgate mcp", dir, lines.data, bin);
    ctx_buf_free(&lines);
    out = run(cmd, &status);
    cr_assert_eq(status, 0, "%s", out);
    for (l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        json_t *m = json_loads(l, 0, NULL), *res;
        json_int_t id;
        const char *text;
        cr_assert_not_null(m, "not JSON: %s", l);
        id = json_integer_value(json_object_get(m, "id"));
        res = json_object_get(m, "result");
        text = json_string_value(
            json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
        if (id >= 2 && !json_is_true(json_object_get(res, "isError"))) {
            cr_assert_eq(refused, 0, "an answer after a refusal: %s", l);
            cr_assert_neq(id, 99, "the fetch was answered: %s", l);
            ok++;
        } else if (id >= 2) {
            cr_assert(text && strstr(text, "budgets[0] (user \"alice@northwind.test\":"
                                           " 300 tokens per hour)"), "%s", l);
            refused++;
            fetch_refused |= id == 99;
        }
        json_decref(m);
    }
    cr_assert_geq(ok, 1, "no search was answered");
    cr_assert_geq(refused, 2, "%d refused", refused);
    cr_assert(fetch_refused);
    free(out);
}
