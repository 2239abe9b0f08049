/*
 * test_conformance.c - the conformance suite passes good connectors (the
 * built-in files and postgres connectors, the connector template built
 * through the installed SDK) and fails each deliberately flawed plugin on
 * the check its flaw breaks; `ctxgate connector read` prints protocol lines.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "connectors/conformance.h"
#include "tests/lib/pgtest.h"
#include "tests/lib/testutil.h"

static char *dir;

static void setup(void) { dir = tu_tmpdir("conform"); }

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

TestSuite(conformance, .init = setup, .fini = teardown, .timeout = 120);

/* The suite's output, and its counts. */
typedef struct run {
    char *out;
    conform_report rep;
} run;

static void suite(const conform_target *t, const char *config, const char *mutate,
                  json_t *bad_config, run *r)
{
    conform_opts o = {0};
    json_error_t jerr;
    json_t *cfg = json_loads(config, 0, &jerr);
    ctx_error err;
    size_t len;
    FILE *f = open_memstream(&r->out, &len);

    cr_assert_not_null(cfg, "%s: %s", config, jerr.text);
    o.mutate = mutate;
    o.bad_config = bad_config;
    o.validator = "scripts/validate-json.py";
    o.out = f;
    conform_run(t, cfg, &o, &r->rep, &err);
    fclose(f);
    json_decref(cfg);
}

static int has_line(const run *r, const char *start)
{
    for (const char *p = r->out; (p = strstr(p, start)); p++)
        if (p == r->out || p[-1] == '\n')
            return 1;
    return 0;
}

static void assert_all_pass(const run *r)
{
    cr_assert_eq(r->rep.failed, 0, "failed checks:\n%s", r->out);
    cr_assert_eq(r->rep.skipped, 0, "skipped checks:\n%s", r->out);
    cr_assert_geq(r->rep.passed, 16, "%s", r->out);
}

/* ---- the files connector ---- */

static void files_tree(void)
{
    tu_write(dir, "docs/_principals.json",
             "{\"users\": [{\"id\": \"user:ann@x.test\"}],"
             " \"groups\": [{\"id\": \"group:eng\", \"members\": [\"user:ann@x.test\"]}]}");
    tu_write(dir, "docs/a.md", "---\nallow: [group:eng, user:ann@x.test]\n---\n# Alpha\nfirst\n");
    tu_write(dir, "docs/b.md", "---\nallow: [group:eng]\n---\n# Beta\nsecond\n");
    tu_write(dir, "docs/sub/c.md", "---\nallow: [everyone]\n---\n# Gamma\nthird\n");
    tu_write(dir, "docs/sub/d.txt", "---\nallow: [user:ann@x.test]\n---\nfourth\n");
}

Test(conformance, files_connector_passes)
{
    conform_target t = {.type = "files"};
    char config[4200], mutate[4400];
    run r;

    files_tree();
    snprintf(config, sizeof config, "{\"path\": \"%s/docs\", \"state_every\": 1}", dir);
    snprintf(mutate, sizeof mutate, "sh tests/integration/conformance/files-mutate.sh %s/docs",
             dir);
    suite(&t, config, mutate, NULL, &r);
    assert_all_pass(&r);
    cr_assert(has_line(&r, "PASS revoke: after `revoke files a.md group:eng`"), "%s", r.out);
    free(r.out);
}

Test(conformance, without_mutate_the_source_checks_are_skipped_not_passed)
{
    conform_target t = {.type = "files"};
    char config[4200];
    run r;

    files_tree();
    snprintf(config, sizeof config, "{\"path\": \"%s/docs\"}", dir);
    suite(&t, config, NULL, NULL, &r);
    cr_assert_eq(r.rep.failed, 0, "%s", r.out);
    cr_assert_eq(r.rep.skipped, 3, "%s", r.out);
    cr_assert(has_line(&r, "SKIP incremental.changed: no mutate command"), "%s", r.out);
    cr_assert(has_line(&r, "SKIP delete:"), "%s", r.out);
    cr_assert(has_line(&r, "SKIP revoke:"), "%s", r.out);
    free(r.out);
}

Test(conformance, a_connector_that_cannot_open_fails)
{
    conform_target t = {.type = "files"};
    run r;

    suite(&t, "{\"pth\": \"x\"}", NULL, NULL, &r);
    cr_assert_eq(r.rep.failed, 1, "%s", r.out);
    cr_assert(has_line(&r, "FAIL open: sources[0]: unknown key \"pth\""), "%s", r.out);
    free(r.out);
}

/* ---- the connector template, and flawed versions of it ---- */

/* Copy the template's example data into dir; the config as JSON text into cfg. */
static void template_data(char *cfg, size_t len, char *mutate, size_t mlen)
{
    static const char *const files[] = {"items.jsonl", "principals.jsonl"};
    for (size_t i = 0; i < 2; i++) {
        char src[256], *text;
        size_t n;
        snprintf(src, sizeof src, "examples/connector-template/example/%s", files[i]);
        cr_assert_eq(ctx_read_file(src, &text, &n), 0, "%s", src);
        tu_write(dir, files[i], text);
        ctx_free(text);
    }
    snprintf(cfg, len, "{\"path\": \"%s/items.jsonl\", \"principals_path\":"
             " \"%s/principals.jsonl\", \"state_every\": 1}", dir, dir);
    snprintf(mutate, mlen, "python3 examples/connector-template/mutate.py %s/items.jsonl", dir);
}

static const char *plugin(const char *name, char *buf, size_t len)
{
    struct stat sb;
    snprintf(buf, len, "%s/%s", tu_build_dir(), name);
    cr_assert_eq(stat(buf, &sb), 0, "%s is missing; `make test` builds it", buf);
    return buf;
}

/* The suite on a build of the template (so_name under the build dir). */
static void template_suite(const char *so_name, run *r)
{
    char so[4200], cfg[8600], mutate[4400];
    conform_target t = {.plugin = plugin(so_name, so, sizeof so)};

    template_data(cfg, sizeof cfg, mutate, sizeof mutate);
    suite(&t, cfg, mutate, NULL, r);
}

Test(conformance, template_built_through_the_installed_sdk_passes)
{
    run r;
    template_suite("pdk/jsonl.so", &r);
    assert_all_pass(&r);
    free(r.out);
}

/* The installed-SDK build syncs for real; a group that left the source takes its access along. */
Test(conformance, template_syncs_and_a_vanished_group_loses_access)
{
    char so[4200], cfg[8600], mutate[4400], src[13000], *text, *t;
    ctx_store *st = tu_store(dir);
    store_run_stats stats;
    ctx_error err;
    size_t n;

    template_data(cfg, sizeof cfg, mutate, sizeof mutate);
    snprintf(src, sizeof src, "{\"name\": \"notes\", \"type\": \"plugin\", \"plugin\": \"%s\","
             " %s", plugin("pdk/jsonl.so", so, sizeof so), cfg + 1);
    cr_assert_eq(tu_sync(st, src, 0, &stats, &err), 0, "%s", err.text);
    cr_assert_eq(stats.records, 4);
    t = tu_search_titles(st, "alice@example.com", "roadmap");
    cr_assert_str_eq(t, "Roadmap 2027");
    free(t);
    /* group:eng leaves the principals file. */
    cr_assert_eq(ctx_read_file("examples/connector-template/example/principals.jsonl", &text, &n),
                 0);
    *strstr(text, "{\"id\": \"group:eng\"") = '\0';
    tu_write(dir, "principals.jsonl", text);
    ctx_free(text);
    cr_assert_eq(tu_sync(st, src, 0, &stats, &err), 0, "%s", err.text);
    cr_assert_eq(stats.records, 0, "nothing of the items changed");
    t = tu_search_titles(st, "alice@example.com", "roadmap");
    cr_assert_str_eq(t, "", "alice kept access through a group that is gone");
    free(t);
    store_close(st);
}

/* The flawed plugin fails check (and no other when only is set). */
static void flawed(const char *so_name, const char *check, int only)
{
    char fail[128];
    run r;

    template_suite(so_name, &r);
    snprintf(fail, sizeof fail, "FAIL %s:", check);
    cr_assert(has_line(&r, fail), "%s should fail %s:\n%s", so_name, check, r.out);
    if (only)
        cr_assert_eq(r.rep.failed, 1, "only %s should fail:\n%s", check, r.out);
    free(r.out);
}

Test(conformance, flawed_plugins_fail_the_right_checks)
{
    run r;

    flawed("tests/plugins/flawed_noacl.so", "records.acl", 1);
    flawed("tests/plugins/flawed_checkok.so", "check.bad_config", 1);
    flawed("tests/plugins/flawed_badmsgs.so", "messages", 1);
    flawed("tests/plugins/flawed_nostop.so", "read.stop", 1);
    flawed("tests/plugins/flawed_badspec.so", "spec.schema", 0);
    flawed("tests/plugins/flawed_badspec.so", "config.valid", 0);
    /* Ignoring the state resends everything and can no longer see deletes. */
    flawed("tests/plugins/flawed_nostate.so", "incremental.unchanged", 0);
    flawed("tests/plugins/flawed_nostate.so", "delete", 0);
    /* A full read that starts after the state loses items when a killed full run resumes. */
    flawed("tests/plugins/flawed_fullincr.so", "full.killed", 0);
    /* Without a flaw, the wrapper is the template built in the tree: it passes. */
    template_suite("tests/plugins/flawed.so", &r);
    assert_all_pass(&r);
    free(r.out);
}

/* ---- an exec connector: the Python example ---- */

Test(conformance, exec_python_example_passes)
{
    conform_target t = {.exec = "python3 examples/exec-python/connector.py"};
    char cfg[4200], mutate[4400], *text;
    size_t n;
    run r;

    cr_assert_eq(ctx_read_file("examples/exec-python/items.json", &text, &n), 0);
    tu_write(dir, "items.json", text);
    ctx_free(text);
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s/items.json\", \"state_every\": 1}", dir);
    snprintf(mutate, sizeof mutate,
             "python3 tests/integration/conformance/exec-python-mutate.py %s/items.json", dir);
    suite(&t, cfg, mutate, NULL, &r);
    assert_all_pass(&r);
    /* The program's own spec and config are checked too, not only exec's. */
    cr_assert(has_line(&r, "PASS program.config.valid:"), "%s", r.out);
    free(r.out);
}

/* ---- the postgres connector ---- */

Test(conformance, postgres_connector_passes)
{
    char table[64], why[512], cfg[4096], mutate[4400];
    conform_target t = {.type = "postgres"};
    json_t *bad_config;
    PGconn *db;
    run r;

    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    cr_assert_not_null(db = pgtest_connect(NULL, why, sizeof why), "%s", why);
    pgtest_name(table, sizeof table, "conform");
    cr_assert_eq(pgtest_exec(db, why, sizeof why,
                             "CREATE TABLE %s (id text PRIMARY KEY, title text, body text,"
                             " updated_at timestamptz, readers text[], gone boolean DEFAULT"
                             " false)", table), 0, "%s", why);
    cr_assert_eq(pgtest_exec(db, why, sizeof why,
                             "INSERT INTO %s (id, title, body, updated_at, readers) VALUES"
                             " ('r1', 'One', 'first row', now() - interval '3 hours',"
                             "  '{group:eng,user:ann}'),"
                             " ('r2', 'Two', 'second row', now() - interval '2 hours',"
                             "  '{group:eng}'),"
                             " ('r3', 'Three', 'third row', now() - interval '1 hour',"
                             "  '{everyone}')",
                             table), 0, "%s", why);
    snprintf(cfg, sizeof cfg,
             "{\"conninfo\": \"%s\", \"password_env\": \"CTX_TEST_PGPASSWORD\", \"state_every\":"
             " 1, \"streams\": [{\"name\": \"rows\", \"table\": \"%s\", \"id\": \"id\", \"title\":"
             " \"title\", \"body\": \"body\", \"updated_at\": \"updated_at\", \"allow_users\":"
             " \"readers\", \"deleted\": \"gone\"}]}", pgtest_conninfo(), table);
    snprintf(mutate, sizeof mutate, "sh tests/integration/conformance/pg-mutate.sh %s", table);
    /* Bad credentials: check must fail on them, not just on a bad address. */
    setenv("CTX_TEST_BADPW", "not-the-password", 1);
    bad_config = json_loads(cfg, 0, NULL);
    json_object_set_new(bad_config, "password_env", json_string("CTX_TEST_BADPW"));
    json_object_set_new(bad_config, "retries", json_integer(0));
    suite(&t, cfg, mutate, bad_config, &r);
    json_decref(bad_config);
    assert_all_pass(&r);
    cr_assert(strstr(r.out, "PASS check.bad_config: xCheck fails with rc 7"), "%s", r.out);
    free(r.out);
    pgtest_exec(db, why, sizeof why, "DROP TABLE %s", table);
    PQfinish(db);
}

/* ---- the CLI ---- */

/* Run cmd; its stdout into *out (new); returns the exit status. */
static int run_cli(const char *cmd, char **out)
{
    char buf[4096];
    size_t n, len = 0;
    FILE *p = popen(cmd, "r"), *m = open_memstream(out, &len);
    int st;

    cr_assert_not_null(p);
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        fwrite(buf, 1, n, m);
    st = pclose(p);
    fclose(m);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(conformance, cli_read_prints_protocol_lines)
{
    char so[4200], cfg[8600], mutate[4400], cmd[16384], path[4200], root[4096], *out, *line,
        *save;
    size_t nrec = 0, nstate = 0, nprin = 0, i = 0;
    json_t *last_state = NULL;

    template_data(cfg, sizeof cfg, mutate, sizeof mutate);
    tu_write(dir, "config.json", cfg);
    plugin("pdk/jsonl.so", so, sizeof so);
    snprintf(cmd, sizeof cmd, "%s/ctxgate connector read --plugin %s --config %s/config.json",
             tu_build_dir(), so, dir);
    cr_assert_eq(run_cli(cmd, &out), 0, "%s", cmd);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        json_error_t jerr;
        json_t *m = json_loads(line, 0, &jerr);
        const char *type;
        cr_assert_not_null(m, "line %zu is not JSON: %s", i, line);
        type = json_string_value(json_object_get(m, "type"));
        nrec += !strcmp(type, "RECORD");
        nprin += !strcmp(type, "PRINCIPAL");
        if (!strcmp(type, "RECORD"))
            cr_assert(json_array_size(json_object_get(json_object_get(m, "acl"), "allow")),
                      "%s", line);
        if (!strcmp(type, "STATE") &&
            !strcmp(json_string_value(json_object_get(m, "stream")), "items")) {
            nstate++;
            json_decref(last_state);
            last_state = json_incref(json_object_get(m, "state"));
        }
        /* Each line is a message of the exec protocol's schema. */
        snprintf(path, sizeof path, "line%zu.json", i);
        tu_write(dir, path, line);
        json_decref(m);
    }
    free(out);
    cr_assert_eq(nrec, 4);
    cr_assert_eq(nprin, 6);
    cr_assert_geq(nstate, 4);
    cr_assert_not_null(realpath(".", root));
    snprintf(cmd, sizeof cmd, "cd %s && /usr/bin/python3 %s/scripts/validate-json.py"
             " %s/schemas/protocol/messages.schema.json line*.json >/dev/null", dir, root, root);
    cr_assert_eq(system(cmd), 0, "the printed lines do not match schemas/protocol");

    /* From the last STATE, nothing changed: no RECORD. */
    {
        char *st = json_dumps(last_state, JSON_COMPACT);
        snprintf(cmd, sizeof cmd, "%s/ctxgate connector read --plugin %s --config %s/config.json"
                 " --stream items --state '%s'", tu_build_dir(), so, dir, st);
        free(st);
    }
    json_decref(last_state);
    cr_assert_eq(run_cli(cmd, &out), 0, "%s", cmd);
    cr_assert(!strstr(out, "\"RECORD\""), "%s", out);
    cr_assert(strstr(out, "\"STATE\""), "%s", out);
    free(out);

    /* spec, check and discover print one kind of line each. */
    snprintf(cmd, sizeof cmd, "%s/ctxgate connector discover --plugin %s --config %s/config.json",
             tu_build_dir(), so, dir);
    cr_assert_eq(run_cli(cmd, &out), 0);
    cr_assert(strstr(out, "{\"type\":\"STREAM\",\"name\":\"principals\""), "%s", out);
    cr_assert(strstr(out, "{\"type\":\"STREAM\",\"name\":\"items\""), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s/ctxgate connector check --plugin %s --config %s/config.json",
             tu_build_dir(), so, dir);
    cr_assert_eq(run_cli(cmd, &out), 0);
    cr_assert_str_eq(out, "{\"type\":\"CHECK\",\"ok\":true}\n");
    free(out);
}

Test(conformance, cli_test_exits_nonzero_on_a_failed_check)
{
    char so[4200], cfg[8600], mutate[4400], cmd[16384], abs[4096], *out;

    template_data(cfg, sizeof cfg, mutate, sizeof mutate);
    tu_write(dir, "config.json", cfg);
    snprintf(cmd, sizeof cmd, "%s/ctxgate connector test --plugin %s --config %s/config.json"
             " 2>/dev/null", tu_build_dir(), plugin("tests/plugins/flawed_noacl.so", so, sizeof so),
             dir);
    cr_assert_eq(run_cli(cmd, &out), 1, "%s", out);
    cr_assert(strstr(out, "\nFAIL records.acl: "), "%s", out);
    cr_assert(strstr(out, "\nSKIP delete: no mutate command"), "%s", out);
    free(out);
    /* A bad config of our own: the items file is a directory. */
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"}", dir);
    tu_write(dir, "bad.json", cfg);
    snprintf(cmd, sizeof cmd, "%s/ctxgate connector test --plugin %s --config %s/config.json"
             " --mutate '%s' --bad-config %s/bad.json", tu_build_dir(),
             plugin("pdk/jsonl.so", so, sizeof so), dir, mutate, dir);
    cr_assert_eq(run_cli(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "\nPASS check.bad_config: xCheck fails with rc 6: path: "), "%s", out);
    cr_assert(strstr(out, " is not a regular file\n"), "%s", out);
    free(out);

    /* A ctxgate.json with one source: --source may be left out. Paths in a
     * config are relative to it: the plugin's is made absolute. */
    cr_assert_not_null(realpath(so, abs));
    snprintf(cfg, sizeof cfg, "{\"sources\": [{\"name\": \"notes\", \"type\": \"plugin\","
             " \"plugin\": \"%s\", \"path\": \"%s/items.jsonl\"}]}", abs, dir);
    tu_write(dir, "ctxgate.json", cfg);
    snprintf(cmd, sizeof cmd, "%s/ctxgate connector check --config %s/ctxgate.json",
             tu_build_dir(), dir);
    cr_assert_eq(run_cli(cmd, &out), 0, "%s", out);
    cr_assert_str_eq(out, "{\"type\":\"CHECK\",\"ok\":true}\n");
    free(out);
    snprintf(cmd, sizeof cmd, "%s/ctxgate connector check --config %s/ctxgate.json --source"
             " nope 2>/dev/null", tu_build_dir(), dir);
    cr_assert_eq(run_cli(cmd, &out), 2, "%s", out);
    free(out);
}
