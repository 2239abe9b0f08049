/*
 * test_fresh.c - a source whose permissions are older than its
 * max_permission_age is withheld from every answer (search, fetch, the
 * CLI) until a permission or full sync succeeds, and the answer says which
 * and why. The default bound follows the agent's permissions schedule once
 * the agent runs it, and is none for a source synced by hand.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "retrieval/fresh.h"
#include "retrieval/service.h"
#include "tests/lib/testutil.h"

static char *dir;
static char src[PATH_MAX + 128];
static ctx_store *st;

static void setup(void)
{
    char demo[PATH_MAX];

    dir = tu_tmpdir("fresh");
    cr_assert(realpath("examples/demo", demo));
    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"",
             demo);
    st = tu_store(dir);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(fresh, .init = setup, .fini = teardown, .timeout = 60);

/* config - the demo source with extra host keys (e.g. max_permission_age). */
static void config(ctx_config *cfg, const char *extra)
{
    char text[PATH_MAX + 1024];
    json_t *root;
    ctx_error err;

    snprintf(text, sizeof text,
             "{\"data_dir\": \"%s\", \"sources\": [%s%s}],"
             " \"agents\": [{\"name\": \"all\", \"sources\": \"*\", \"labels\": \"*\"}]}",
             dir, src, extra);
    root = json_loads(text, 0, NULL);
    cr_assert(root, "%s", text);
    memset(cfg, 0, sizeof *cfg);
    cr_assert_eq(ctx_config_parse(root, NULL, cfg, &err), 0, "%s", err.text);
    json_decref(root);
}

static void sync_demo(int full)
{
    char text[PATH_MAX + 256];
    store_run_stats stats;
    ctx_error err;
    snprintf(text, sizeof text, "%s}", src);
    cr_assert_eq(tu_sync(st, text, full, &stats, &err), 0, "%s", err.text);
}

/* ask - alice's "salary bands" through a new service (no cached ages). */
static json_t *ask(const ctx_config *cfg, int64_t *fetched)
{
    svc *s;
    svc_identity id = {"alice@northwind.test", "all"};
    svc_request req;
    ctx_error err;
    json_t *ans = NULL, *doc = NULL;
    const char *body = "{\"query\": \"salary bands\", \"mode\": \"lexical\"}";
    int64_t doc_id = tu_count(st, "SELECT id FROM documents WHERE title = 'Salary bands 2026'");

    cr_assert_eq(svc_new(cfg, 1, &s, &err), 0, "%s", err.text);
    cr_assert_eq(svc_request_parse(body, strlen(body), &req, &err), 0);
    cr_assert_eq(svc_search(s, &id, &req, &ans, &err), 0, "%s", err.text);
    *fetched = svc_fetch(s, &id, doc_id, &doc, &err) == CTX_OK;
    json_decref(doc);
    svc_request_free(&req);
    svc_free(s);
    return ans;
}

static size_t nresults(json_t *ans) { return json_array_size(json_object_get(ans, "results")); }

static const char *withheld_reason(json_t *ans)
{
    json_t *w = json_array_get(json_object_get(ans, "withheld"), 0);
    if (!w)
        return NULL;
    cr_assert_str_eq(json_string_value(json_object_get(w, "source")), "northwind");
    return json_string_value(json_object_get(w, "reason"));
}

Test(fresh, the_default_bound_follows_the_agents_schedule_or_is_none)
{
    ctx_config cfg;
    config(&cfg, ", \"schedule\": {\"permissions\": \"1h\"}");
    cr_assert_eq(fresh_bound(&cfg.sources[0], 0, 0), -1, "synced by hand: no bound");
    cr_assert_eq(fresh_bound(&cfg.sources[0], 1, 0), 3 * 3600 * 1000LL);
    ctx_config_free(&cfg);
    config(&cfg, "");
    cr_assert_eq(fresh_bound(&cfg.sources[0], 1, 0), FRESH_FLOOR_MS, "3 x 5m is under 15m");
    ctx_config_free(&cfg);
    config(&cfg, ", \"schedule\": {\"permissions\": \"*/30 * * * *\"}");
    cr_assert_eq(fresh_bound(&cfg.sources[0], 1, 0), 90 * 60 * 1000LL);
    ctx_config_free(&cfg);
    config(&cfg, ", \"schedule\": {\"permissions\": \"\"}");
    cr_assert_eq(fresh_bound(&cfg.sources[0], 1, 0), -1, "no permissions job: no bound");
    ctx_config_free(&cfg);
    config(&cfg, ", \"max_permission_age\": \"2h\"");
    cr_assert_eq(fresh_bound(&cfg.sources[0], 0, 0), 2 * 3600 * 1000LL);
    ctx_config_free(&cfg);
    config(&cfg, ", \"max_permission_age\": \"off\", \"schedule\": {\"permissions\": \"1m\"}");
    cr_assert_eq(fresh_bound(&cfg.sources[0], 1, 0), -1);
    ctx_config_free(&cfg);
}

Test(fresh, a_bad_max_permission_age_names_the_field)
{
    static const char *const bad[] = {"\"soon\"", "\"0 3 * * *\"", "3600", "\"\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[PATH_MAX + 512];
        json_t *root;
        ctx_config cfg;
        ctx_error err;
        snprintf(text, sizeof text, "{\"sources\": [%s, \"max_permission_age\": %s}]}", src,
                 bad[i]);
        root = json_loads(text, 0, NULL);
        memset(&cfg, 0, sizeof cfg);
        cr_assert_eq(ctx_config_parse(root, NULL, &cfg, &err), CTX_ECONFIG, "%s", bad[i]);
        cr_assert(strstr(err.text, "sources[0].max_permission_age: expected a duration"),
                  "%s", err.text);
        ctx_config_free(&cfg);
        json_decref(root);
    }
}

Test(fresh, stale_permissions_withhold_the_source_until_a_full_sync)
{
    ctx_config cfg;
    json_t *a;
    int64_t fetched;
    ctx_error err;

    config(&cfg, ", \"max_permission_age\": \"1h\"");
    /* The first sync reads every item whole: it vouches for permissions. */
    sync_demo(0);
    a = ask(&cfg, &fetched);
    cr_assert_gt(nresults(a), 0);
    cr_assert(fetched);
    cr_assert_eq(json_array_size(json_object_get(a, "withheld")), 0);
    json_decref(a);

    /* Two hours later; an incremental sync from its checkpoint reads only
     * what changed, so it does not vouch for the rest. */
    cr_assert_eq(store_exec(st, "UPDATE source_acl_sync SET synced_at = synced_at - 7200000",
                            &err), 0);
    sync_demo(0);
    a = ask(&cfg, &fetched);
    cr_assert_eq(nresults(a), 0);
    cr_assert_not(fetched, "a withheld source's document is not fetched either");
    cr_assert(withheld_reason(a) && strstr(withheld_reason(a), "last synced 2h 0m ago"), "%s",
              json_dumps(a, 0));
    json_decref(a);

    sync_demo(1);
    a = ask(&cfg, &fetched);
    cr_assert_gt(nresults(a), 0);
    cr_assert(fetched);
    cr_assert_eq(json_array_size(json_object_get(a, "withheld")), 0);
    json_decref(a);

    /* A hit's acl_synced_at is its source's last whole read when that is
     * newer than the row's own (a permission run leaves unchanged rows be). */
    cr_assert_eq(store_exec(st, "UPDATE documents SET acl_synced_at = 1", &err), 0);
    a = ask(&cfg, &fetched);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_array_get(json_object_get(a, "results"), 0), "acl_synced_at")),
                 tu_count(st, "SELECT synced_at FROM source_acl_sync"));
    json_decref(a);

    /* A store whose permissions were never read whole (from before v8). */
    cr_assert_eq(store_exec(st, "DELETE FROM source_acl_sync", &err), 0);
    a = ask(&cfg, &fetched);
    cr_assert_eq(nresults(a), 0);
    cr_assert(withheld_reason(a) && strstr(withheld_reason(a), "never synced"), "%s",
              json_dumps(a, 0));
    json_decref(a);
    ctx_config_free(&cfg);
}

Test(fresh, by_default_only_an_agent_run_source_is_bounded)
{
    ctx_config cfg;
    json_t *a;
    int64_t fetched;
    ctx_error err;
    char sql[512];

    config(&cfg, "");
    sync_demo(1);
    cr_assert_eq(store_exec(st, "UPDATE source_acl_sync SET synced_at = synced_at - 7 * 86400000",
                            &err), 0);
    a = ask(&cfg, &fetched);
    cr_assert_gt(nresults(a), 0, "synced by hand a week ago, searched now: served");
    json_decref(a);

    /* An agent runs the permissions job, and every run fails: closed. */
    snprintf(sql, sizeof sql, "INSERT INTO agent_jobs(source, kind, attempt, started_at,"
             " finished_at, status, error) VALUES('northwind', 'permissions', 1, %lld, %lld,"
             " 'failed', 'connection refused')",
             (long long)(ctx_now_ms() - 60000), (long long)(ctx_now_ms() - 59000));
    cr_assert_eq(store_exec(st, sql, &err), 0, "%s", err.text);
    a = ask(&cfg, &fetched);
    cr_assert_eq(nresults(a), 0, "the agent's permission syncs fail: withheld");
    cr_assert(withheld_reason(a) && strstr(withheld_reason(a), "3 x the agent's"), "%s",
              json_dumps(a, 0));
    json_decref(a);

    /* The agent ran its permissions job an hour ago, and then stopped. */
    snprintf(sql, sizeof sql, "INSERT INTO agent_jobs(source, kind, attempt, started_at,"
             " finished_at, status) VALUES('northwind', 'permissions', 1, %lld, %lld, 'ok');"
             "UPDATE source_acl_sync SET synced_at = %lld",
             (long long)(ctx_now_ms() - 3600000), (long long)(ctx_now_ms() - 3600000),
             (long long)(ctx_now_ms() - 3600000));
    cr_assert_eq(store_exec(st, sql, &err), 0, "%s", err.text);
    a = ask(&cfg, &fetched);
    cr_assert_eq(nresults(a), 0);
    cr_assert(withheld_reason(a) && strstr(withheld_reason(a), "3 x the agent's"), "%s",
              json_dumps(a, 0));
    json_decref(a);
    cr_assert_eq(store_exec(st, "UPDATE source_acl_sync SET synced_at = synced_at + 3590000",
                            &err), 0);
    a = ask(&cfg, &fetched);
    cr_assert_gt(nresults(a), 0, "the agent's job ran ten seconds ago");
    json_decref(a);
    ctx_config_free(&cfg);
}

/* The CLI says it on a line of its own, and status shows every age. */
Test(fresh, the_cli_names_the_withheld_source)
{
    char path[PATH_MAX + 64], cmd[3 * PATH_MAX], line[1024];
    int withheld = 0, results = 0, status = 0;
    FILE *p;

    snprintf(path, sizeof path, "%s/ctxgate.json", dir);
    {
        char text[PATH_MAX + 512];
        snprintf(text, sizeof text, "{\"data_dir\": \"%s\", \"sources\": [%s,"
                 " \"max_permission_age\": \"1h\"}]}", dir, src);
        tu_write(dir, "ctxgate.json", text);
    }
    sync_demo(0);
    {
        ctx_error err;
        cr_assert_eq(store_exec(st, "DELETE FROM source_acl_sync", &err), 0);
    }
    snprintf(cmd, sizeof cmd, "%s/ctxgate --config %s search --as alice@northwind.test salary"
             " bands 2>&1", tu_build_dir(), path);
    cr_assert((p = popen(cmd, "r")));
    while (fgets(line, sizeof line, p)) {
        withheld += !strncmp(line, "withheld: northwind: permissions never synced", 45);
        results += !!strstr(line, "Salary bands 2026");
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert_eq(withheld, 1);
    cr_assert_eq(results, 0);
    snprintf(cmd, sizeof cmd, "%s/ctxgate --config %s status 2>&1", tu_build_dir(), path);
    cr_assert((p = popen(cmd, "r")));
    while (fgets(line, sizeof line, p))
        status += !!strstr(line, "northwind    WITHHELD: permissions never synced");
    cr_assert_eq(pclose(p), 0);
    cr_assert_eq(status, 1);
}

/*
 * A source taken out of the config keeps its documents in the store, but
 * nothing syncs its permissions any more: withheld, named, with the fix.
 */
Test(fresh, a_source_the_config_no_longer_names_is_withheld)
{
    char demo[PATH_MAX], text[2 * PATH_MAX + 512];
    ctx_config cfg;
    json_t *a, *root;
    int64_t fetched;
    ctx_error err;

    sync_demo(1);
    config(&cfg, "");
    a = ask(&cfg, &fetched);
    cr_assert_gt(nresults(a), 0, "named: served");
    json_decref(a);
    ctx_config_free(&cfg);

    cr_assert(realpath("examples/demo", demo));
    snprintf(text, sizeof text,
             "{\"data_dir\": \"%s\", \"sources\": [{\"name\": \"other\", \"type\": \"files\","
             " \"path\": \"%s\"}], \"agents\": [{\"name\": \"all\", \"sources\": \"*\","
             " \"labels\": \"*\"}]}",
             dir, demo);
    root = json_loads(text, 0, NULL);
    cr_assert(root);
    memset(&cfg, 0, sizeof cfg);
    cr_assert_eq(ctx_config_parse(root, NULL, &cfg, &err), 0, "%s", err.text);
    json_decref(root);
    a = ask(&cfg, &fetched);
    cr_assert_eq(nresults(a), 0, "no longer named: withheld");
    cr_assert_not(fetched, "and not fetched either");
    cr_assert(withheld_reason(a) && strstr(withheld_reason(a), "no longer in the config"), "%s",
              json_dumps(a, 0));
    json_decref(a);
    ctx_config_free(&cfg);
}
