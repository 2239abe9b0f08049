/*
 * test_exec.c - the exec connector with real child processes (the Python
 * example and shell scripts written here) through the real sync runner and
 * store: syncs, incremental reads, deletes, principals; and every way a
 * program can misbehave (crash after a STATE, hang, garbage, an over-long
 * line, invalid UTF-8, an unknown message, another protocol): the run fails,
 * nothing after the last STATE is committed, the child is reaped and its
 * stderr lands in the error. The example's messages validate against
 * schemas/protocol/.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connectors/exec/exec.h"
#include "connectors/registry.h"
#include "core/util.h"
#include "tests/lib/testutil.h"

static char *root, example[4096];
static ctx_store *st;

static void setup(void)
{
    char cwd[2048];
    root = tu_tmpdir("exec");
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    snprintf(example, sizeof example, "%s/examples/exec-python/connector.py", cwd);
    st = tu_store(root);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(root);
    free(root);
}

TestSuite(exec, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---- */

#define ITEMS_HEAD                                                                         \
    "{\"users\": [{\"id\": \"user:ann@x.test\"}, {\"id\": \"user:ben@x.test\"},"         \
    " {\"id\": \"user:acct-9\", \"maps_to\": \"user:ann@x.test\"}],"                       \
    " \"groups\": [{\"id\": \"group:hr\", \"members\": [\"user:acct-9\"]}"

static void write_items(const char *groups_tail, const char *items)
{
    char text[8192];
    snprintf(text, sizeof text, ITEMS_HEAD "%s], \"items\": [%s]}", groups_tail, items);
    tu_write(root, "items.json", text);
}

#define ITEM_PAY                                                                           \
    "{\"id\": \"pay\", \"title\": \"Pay bands\", \"body\": \"zebra pay bands\","          \
    " \"allow\": [\"group:hr\"], \"labels\": [\"confidential\"]}"
#define ITEM_HELLO                                                                         \
    "{\"id\": \"hello\", \"title\": \"Hello\", \"body\": \"zebra welcome\","              \
    " \"allow\": [\"everyone\"], \"url\": \"https://x.test/hello\","                        \
    " \"metadata\": {\"n\": 1}, \"updated_at_ms\": 1700000000000}"
#define ITEM_ENG                                                                           \
    "{\"id\": \"eng\", \"title\": \"Design\", \"body\": \"zebra design\","                \
    " \"allow\": [\"user:ben@x.test\", \"user:ann@x.test\"], \"deny\": [\"user:ann@x.test\"]}"

/* The Python example over root/items.json. */
static void example_src(char *out, size_t n)
{
    snprintf(out, n, "{\"name\": \"tracker\", \"type\": \"exec\", \"command\": [\"python3\","
             " \"%s\"], \"config\": {\"path\": \"%s/items.json\", \"state_every\": 1}}",
             example, root);
}

/* Write the items, sync the example over them; src receives its source JSON. */
static void example_synced(char *src, size_t n, const char *items, store_run_stats *s)
{
    ctx_error err;
    int rc;

    write_items("", items);
    example_src(src, n);
    rc = tu_sync(st, src, 0, s, &err);
    cr_assert_eq(rc, 0, "sync failed: %s", rc ? err.text : "");
}

/* The exec connector opened on the example over root/<file>. */
static void *example_open(const ctx_connector *vt, const char *file)
{
    ctx_conn_error ce;
    char cfg[8192];
    void *conn = NULL;

    snprintf(cfg, sizeof cfg, "{\"command\": [\"python3\", \"%s\"], \"config\": {\"path\":"
             " \"%s/%s\"}}", example, root, file);
    memset(&ce, 0, sizeof ce);
    cr_assert_eq(vt->xOpen(cfg, &conn, &ce), 0, "%s", ce.text);
    return conn;
}

/*
 * A shell script at root/name: read the request; answer discover with the
 * one stream "s"; answer read by printing lines, then running tail.
 */
static const char *script(const char *name, const char *lines, const char *tail)
{
    static char path[4200];
    char text[16384];

    snprintf(text, sizeof text, "#!/bin/sh\nread -r req\n"
             "case \"$req\" in *'\"discover\"'*)\n"
             "  printf '%%s\\n' '{\"type\":\"HELLO\",\"protocol\":1}'"
             " '{\"type\":\"STREAM\",\"name\":\"s\"}' '{\"type\":\"DONE\"}'; exit 0;;\nesac\n"
             "cat <<'EOF'\n%sEOF\n%s\n", lines, tail ? tail : "");
    tu_write(root, name, text);
    snprintf(path, sizeof path, "%s/%s", root, name);
    return path;
}

static void script_src(char *out, size_t n, const char *path, const char *extra)
{
    snprintf(out, n, "{\"name\": \"s\", \"type\": \"exec\", \"command\": [\"/bin/sh\", \"%s\"]"
             "%s%s}", path, extra ? ", " : "", extra ? extra : "");
}

static void sync_ok(const char *src, store_run_stats *s)
{
    ctx_error err;
    int rc = tu_sync(st, src, 0, s, &err);
    cr_assert_eq(rc, 0, "sync failed: %s", rc ? err.text : "");
}

/* The run fails, with every one of the words in its error. */
static void sync_fails(const char *src, const char *const *words)
{
    ctx_error err;
    store_run_stats s;
    int rc = tu_sync(st, src, 0, &s, &err);

    cr_assert_neq(rc, 0, "the sync should have failed");
    for (; *words; words++)
        cr_assert(strstr(err.text, *words), "error lacks \"%s\": %s", *words, err.text);
}

/* Every child was reaped: this test process has none left. */
static void assert_no_children(void)
{
    errno = 0;
    cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a child process is left over");
    cr_assert_eq(errno, ECHILD);
}

static int has(const char *user, const char *title)
{
    char *got = tu_search_titles(st, user, "zebra"), *p, *save = NULL;
    int found = 0;
    for (p = strtok_r(got, "|", &save); p; p = strtok_r(NULL, "|", &save))
        found |= !strcmp(p, title);
    free(got);
    return found;
}

static int64_t live_docs(void)
{
    return tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0");
}

#define HELLO "{\"type\":\"HELLO\",\"protocol\":1}\n"
#define DONE "{\"type\":\"DONE\"}\n"
#define REC(id) "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"" id "\",\"title\":\"T " id   \
                "\",\"body\":\"zebra " id "\",\"acl\":{\"allow\":[\"everyone\"]}}\n"
#define STATE(n) "{\"type\":\"STATE\",\"stream\":\"s\",\"state\":{\"n\":" #n "}}\n"

/* ---- the Python example ---- */

Test(exec, example_sync_then_incremental)
{
    char src[8192];
    store_run_stats s;

    example_synced(src, sizeof src, ITEM_PAY "," ITEM_HELLO "," ITEM_ENG, &s);
    cr_assert_eq(s.records, 3);
    cr_assert_eq(s.principals, 4);
    cr_assert_geq(s.states, 4, "state_every 1 checkpoints after each item");
    cr_assert(has("ann@x.test", "Pay bands"), "ann reaches group:hr through her mapped account");
    cr_assert(has("ann@x.test", "Hello"));
    cr_assert(!has("ann@x.test", "Design"), "deny wins over allow");
    cr_assert(has("ben@x.test", "Design"));
    cr_assert(!has("ben@x.test", "Pay bands"));
    cr_assert(!has("nobody@x.test", "Hello"));
    assert_no_children();

    /* Nothing changed: nothing sent. */
    sync_ok(src, &s);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(s.acls, 0);

    /* A body edit is a RECORD; a permission change alone is an ACL. */
    write_items("", ITEM_PAY ","
                "{\"id\": \"hello\", \"title\": \"Hello\", \"body\": \"zebra welcome giraffe\","
                " \"allow\": [\"everyone\"]},"
                "{\"id\": \"eng\", \"title\": \"Design\", \"body\": \"zebra design\","
                " \"allow\": [\"user:ben@x.test\", \"user:ann@x.test\"]}");
    sync_ok(src, &s);
    cr_assert_eq(s.records, 1);
    cr_assert_eq(s.acls, 1);
    cr_assert(has("ann@x.test", "Design"), "the removed deny takes effect");
    {
        char *g = tu_search_titles(st, "ben@x.test", "giraffe");
        cr_assert_str_eq(g, "Hello");
        free(g);
    }
}

Test(exec, example_deletes)
{
    char src[8192];
    store_run_stats s;

    example_synced(src, sizeof src, ITEM_PAY "," ITEM_HELLO "," ITEM_ENG, &s);
    write_items("", ITEM_PAY "," ITEM_ENG);
    sync_ok(src, &s);
    cr_assert_eq(s.deletes, 1);
    cr_assert(!has("ben@x.test", "Hello"));
    cr_assert_eq(live_docs(), 2);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 1"), 1);
}

/*
 * A permission sync sends "mode": "permissions": the example answers with
 * ACL lines only. An item gone from the file is deleted (no DELETE is sent:
 * the host prunes what got no line) and nothing is re-chunked. A program
 * that ignores the mode does a full read: its RECORDs count only for their
 * ACLs, with the same outcome.
 */
Test(exec, permission_sync_with_and_without_the_mode)
{
    char src[8192], *g;
    store_run_stats s;
    ctx_error err;
    int64_t chunks_before;

    example_synced(src, sizeof src, ITEM_PAY "," ITEM_HELLO "," ITEM_ENG, &s);
    chunks_before = tu_count(st, "SELECT max(id) FROM chunks");
    /* hello loses everyone, eng loses its deny, pay is gone; bodies edited too */
    write_items("", "{\"id\": \"hello\", \"title\": \"Hello\", \"body\": \"zebra welcome"
                " giraffe\", \"allow\": [\"user:ben@x.test\"]},"
                "{\"id\": \"eng\", \"title\": \"Design\", \"body\": \"zebra design\","
                " \"allow\": [\"user:ben@x.test\", \"user:ann@x.test\"]}");
    cr_assert_eq(tu_sync(st, src, TU_PERMISSIONS, &s, &err), 0, "%s", err.text);
    cr_assert_eq(s.acls, 2);
    cr_assert_eq(s.pruned, 1);
    cr_assert_eq(s.records + s.chunks, 0, "nothing re-chunked");
    cr_assert(!has("ann@x.test", "Hello") && has("ben@x.test", "Hello"));
    cr_assert(has("ann@x.test", "Design"));
    cr_assert(!has("ann@x.test", "Pay bands"));
    cr_assert_eq(live_docs(), 2);
    /* The body edit is content: not read by a permission sync. */
    g = tu_search_titles(st, "ben@x.test", "giraffe");
    cr_assert_str_eq(g, "");
    free(g);
    /* Re-labelled chunks get new ids, and no chunk was made from new text. */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks c JOIN chunks_fts f ON f.rowid = c.id"
                              " WHERE f.text LIKE '%giraffe%'"), 0);
    cr_assert_gt(tu_count(st, "SELECT max(id) FROM chunks"), chunks_before);
    assert_no_children();

    /* A program that knows no modes: a full read, applied as ACLs only. */
    {
        char path_src[8192];
        script_src(path_src, sizeof path_src,
                   script("old.sh", HELLO REC("a") REC("b") STATE(1) DONE, NULL), NULL);
        cr_assert_eq(tu_sync(st, path_src, 0, &s, &err), 0, "%s", err.text);
        script_src(path_src, sizeof path_src,
                   script("old.sh", HELLO
                          "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"a\",\"title\":"
                          "\"T a\",\"body\":\"zebra a edited\",\"acl\":{\"allow\":"
                          "[\"user:ann@x.test\"]}}\n" STATE(2) DONE, NULL), NULL);
        cr_assert_eq(tu_sync(st, path_src, TU_PERMISSIONS, &s, &err), 0, "%s", err.text);
        cr_assert_eq(s.acls, 1);
        cr_assert_eq(s.pruned, 1, "b got no line");
        cr_assert_eq(s.records + s.chunks, 0);
        cr_assert(has("ann@x.test", "T a") && !has("ben@x.test", "T a"));
        cr_assert(!has("ann@x.test", "T b"));
        cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE text LIKE"
                                  " '%edited%'"), 0);
    }
}

Test(exec, example_principals_revoke)
{
    char src[8192];
    store_run_stats s;

    write_items(", {\"id\": \"group:eng\", \"members\": [\"user:ben@x.test\"]}",
                ITEM_PAY ", {\"id\": \"e2\", \"title\": \"Eng only\", \"body\": \"zebra eng\","
                " \"allow\": [\"group:eng\"]}");
    example_src(src, sizeof src);
    sync_ok(src, &s);
    cr_assert(has("ben@x.test", "Eng only"));
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM principals WHERE name = 'group:eng'"), 1);

    /* group:hr loses ann's account; group:eng disappears from the source and
     * is sent once more with no members. */
    tu_write(root, "items.json",
             "{\"users\": [{\"id\": \"user:ann@x.test\"}, {\"id\": \"user:ben@x.test\"}],"
             " \"groups\": [{\"id\": \"group:hr\", \"members\": []}], \"items\": ["
             ITEM_PAY ", {\"id\": \"e2\", \"title\": \"Eng only\", \"body\": \"zebra eng\","
             " \"allow\": [\"group:eng\"]}]}");
    sync_ok(src, &s);
    cr_assert(!has("ann@x.test", "Pay bands"));
    cr_assert(!has("ben@x.test", "Eng only"));
}

Test(exec, check_discover_and_spec_through_the_vtable)
{
    const ctx_connector *vt = registry_builtin("exec");
    ctx_conn_error ce;
    char *spec = NULL;
    void *conn;

    cr_assert_not_null(vt);
    write_items("", ITEM_HELLO);
    conn = example_open(vt, "items.json");
    memset(&ce, 0, sizeof ce);
    cr_assert_eq(vt->xCheck(conn, &ce), 0, "%s", ce.text);
    cr_assert_eq(exec_child_spec(conn, &spec, &ce), 0, "%s", ce.text);
    cr_assert(strstr(spec, "\"state_every\""));
    free(spec);
    vt->xClose(conn);

    /* A missing file: check fails with the program's reason and code. */
    conn = example_open(vt, "nope.json");
    memset(&ce, 0, sizeof ce);
    cr_assert_eq(vt->xCheck(conn, &ce), CTX_CONN_ECONFIG, "%s", ce.text);
    cr_assert(strstr(ce.text, "nope.json"), "%s", ce.text);
    vt->xClose(conn);

    /* A program that answers check with nothing but HELLO and DONE. */
    {
        char cfg[8192];
        snprintf(cfg, sizeof cfg, "{\"command\": [\"/bin/sh\", \"%s\"]}",
                 script("nocheck.sh", HELLO DONE, NULL));
        cr_assert_eq(vt->xOpen(cfg, &conn, &ce), 0, "%s", ce.text);
        cr_assert_eq(vt->xCheck(conn, &ce), CTX_CONN_ESOURCE);
        cr_assert(strstr(ce.text, "answered \"check\" without a CHECK message"), "%s", ce.text);
        vt->xClose(conn);
    }
    assert_no_children();
}

static int count_stream(void *arg, const char *name, const char *desc)
{
    int *n = arg;
    cr_assert(!strcmp(name, "principals") || !strcmp(name, "items"), "stream %s", name);
    cr_assert_eq(*desc, '{');
    ++*n;
    return 0;
}

Test(exec, discover_streams)
{
    const ctx_connector *vt = registry_builtin("exec");
    ctx_conn_error ce;
    void *conn;
    int n = 0;

    write_items("", ITEM_HELLO);
    conn = example_open(vt, "items.json");
    memset(&ce, 0, sizeof ce);
    cr_assert_eq(vt->xDiscover(conn, count_stream, &n, &ce), 0, "%s", ce.text);
    cr_assert_eq(n, 2);
    vt->xClose(conn);
}

/* ---- programs that fail ---- */

Test(exec, crash_after_state_keeps_only_what_the_state_covers)
{
    char src[8192];
    const char *words[] = {"signal", "half-way", NULL};

    script_src(src, sizeof src,
               script("crash.sh", HELLO REC("a") REC("b") STATE(2) REC("c") REC("d"),
                      "echo 'crashing half-way' >&2\nkill -SEGV $$"),
               NULL);
    sync_fails(src, words);
    cr_assert_eq(live_docs(), 2, "a and b were covered by the STATE, c and d not");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE ext_id IN ('c', 'd')"), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_state WHERE stream = 's'"
                              " AND state = '{\"n\":2}'"), 1);
    assert_no_children();
}

Test(exec, exit_status_and_stderr_land_in_the_error_and_run_log)
{
    char src[8192];
    const char *words[] = {"exited with status 3", "kaboom: the database is on fire", NULL};

    script_src(src, sizeof src,
               script("fail.sh", HELLO REC("a"),
                      "echo 'kaboom: the database is on fire' >&2\nexit 3"),
               NULL);
    sync_fails(src, words);
    cr_assert_eq(live_docs(), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs WHERE status = 'failed'"
                              " AND error LIKE '%kaboom: the database is on fire%'"), 1);
}

/* 1 when pid is gone or a zombie (killed, waiting for its parent). */
static int dead(long pid)
{
    char stat[64], *p = NULL;
    size_t n;
    int z;

    snprintf(stat, sizeof stat, "/proc/%ld/stat", pid);
    if (ctx_read_file(stat, &p, &n))
        return 1;
    z = strstr(p, ") Z ") || strstr(p, ") X ");
    ctx_free(p);
    return z;
}

Test(exec, hang_is_killed_after_the_timeout_with_what_it_started)
{
    char src[8192], pidfile[4200], *text = NULL;
    const char *words[] = {"timeout_seconds", "no line for 1 s", NULL};
    size_t len;
    long shpid = 0, sleeppid = 0;

    script_src(src, sizeof src,
               script("hang.sh", HELLO REC("a"),
                      "sleep 600 &\necho $$ $! > \"$(dirname \"$0\")/pids\"\nwait"),
               "\"timeout_seconds\": 1");
    sync_fails(src, words);
    cr_assert_eq(live_docs(), 0);
    assert_no_children();
    snprintf(pidfile, sizeof pidfile, "%s/pids", root);
    cr_assert_eq(ctx_read_file(pidfile, &text, &len), 0);
    cr_assert_eq(sscanf(text, "%ld %ld", &shpid, &sleeppid), 2);
    ctx_free(text);
    /* The script was reaped by us; its sleep, killed with the group, is
     * reaped by init: wait for that, without a timing assertion. */
    cr_assert(kill((pid_t)shpid, 0) == -1 && errno == ESRCH, "the script still exists");
    for (int i = 0; i < 1000 && !dead(sleeppid); i++)
        usleep(10000);
    cr_assert(dead(sleeppid), "the script's sleep still runs");
}

Test(exec, garbage_on_stdout)
{
    char src[8192];
    const char *words[] = {"line 3", "not a JSON message", "Traceback", NULL};

    script_src(src, sizeof src,
               script("garbage.sh", HELLO REC("a") "Traceback (most recent call last):\n" DONE,
                      NULL),
               NULL);
    sync_fails(src, words);
    cr_assert_eq(live_docs(), 0);
}

Test(exec, over_long_line)
{
    char src[8192], lines[8192], body[3001];
    const char *words[] = {"line 2", "max_line_bytes", "1024", NULL};

    memset(body, 'z', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    snprintf(lines, sizeof lines, HELLO "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"big\","
             "\"body\":\"%s\",\"acl\":{\"allow\":[\"everyone\"]}}\n" DONE, body);
    script_src(src, sizeof src, script("long.sh", lines, NULL),
               "\"max_line_bytes\": 1024");
    sync_fails(src, words);
    cr_assert_eq(live_docs(), 0);
}

Test(exec, invalid_utf8)
{
    char src[8192];
    const char *words[] = {"line 2", "not valid UTF-8", NULL};

    script_src(src, sizeof src,
               script("utf8.sh", HELLO "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"x\","
                                       "\"body\":\"zebra \xff\xfe\",\"acl\":null}\n" DONE, NULL),
               NULL);
    sync_fails(src, words);
}

Test(exec, unknown_message_type_and_fields)
{
    char src[8192];
    const char *type_words[] = {"unknown message type \"RECROD\"", "did you mean \"RECORD\"", NULL};
    const char *field_words[] = {"RECORD.acl", "unknown field \"alow\"", "did you mean \"allow\"",
                                 NULL};
    const char *missing_words[] = {"RECORD.acl: missing", NULL};
    const char *principal_words[] = {"acl.deny[0]", "\"gruop:hr\" is not a principal", NULL};

    script_src(src, sizeof src,
               script("type.sh", HELLO "{\"type\":\"RECROD\",\"stream\":\"s\",\"id\":\"x\"}\n" DONE,
                      NULL), NULL);
    sync_fails(src, type_words);
    script_src(src, sizeof src,
               script("field.sh", HELLO "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"x\","
                                        "\"acl\":{\"alow\":[\"everyone\"]}}\n" DONE, NULL),
               NULL);
    sync_fails(src, field_words);
    script_src(src, sizeof src,
               script("missing.sh", HELLO "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"x\"}\n"
                                          DONE, NULL), NULL);
    sync_fails(src, missing_words);
    script_src(src, sizeof src,
               script("deny.sh", HELLO "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"x\","
                                       "\"acl\":{\"allow\":[\"everyone\"],\"deny\":[\"gruop:hr\"]}}\n"
                                       DONE, NULL), NULL);
    sync_fails(src, principal_words);
    cr_assert_eq(live_docs(), 0);
}

Test(exec, wrong_protocol_version)
{
    char src[8192];
    const char *words[] = {"speaks protocol 2", "this ctxgate speaks 1", NULL};
    const char *first_words[] = {"line 1", "RECORD before HELLO", NULL};

    script_src(src, sizeof src,
               script("v2.sh", "{\"type\":\"HELLO\",\"protocol\":2}\n" REC("a") DONE, NULL),
               NULL);
    sync_fails(src, words);
    script_src(src, sizeof src, script("nohello.sh", REC("a") DONE, NULL), NULL);
    sync_fails(src, first_words);
    cr_assert_eq(live_docs(), 0);
}

Test(exec, order_rules)
{
    char src[8192];
    const char *nodone[] = {"without DONE", NULL};
    const char *after[] = {"RECORD after DONE", NULL};
    const char *error[] = {"read failed: the API said no", NULL};
    const char *wrong[] = {"STREAM is not an answer to a \"read\" request", NULL};
    const char *lingers[] = {"after closing its stdout", NULL};
    store_run_stats s;

    script_src(src, sizeof src, script("nodone.sh", HELLO REC("a"), NULL), NULL);
    sync_fails(src, nodone);
    script_src(src, sizeof src, script("after.sh", HELLO DONE REC("a"), NULL), NULL);
    sync_fails(src, after);
    script_src(src, sizeof src,
               script("error.sh", HELLO "{\"type\":\"ERROR\",\"message\":\"the API said no\","
                                        "\"code\":\"auth\"}\n", NULL), NULL);
    sync_fails(src, error);
    script_src(src, sizeof src,
               script("wrong.sh", HELLO "{\"type\":\"STREAM\",\"name\":\"s\"}\n" DONE, NULL),
               NULL);
    sync_fails(src, wrong);
    script_src(src, sizeof src,
               script("linger.sh", HELLO DONE, "exec >&- 2>&-\nsleep 600"),
               "\"timeout_seconds\": 1");
    sync_fails(src, lingers);
    cr_assert_eq(live_docs(), 0);

    /* And the good shape, from a script: records, a delete, a log line. */
    script_src(src, sizeof src,
               script("good.sh", HELLO REC("a") REC("b") "{\"type\":\"LOG\",\"level\":\"info\","
                                 "\"message\":\"two\"}\n" STATE(1) "{\"type\":\"DELETE\","
                                 "\"stream\":\"s\",\"id\":\"a\"}\n" STATE(2) DONE, NULL),
               NULL);
    sync_ok(src, &s);
    cr_assert_eq(s.records, 2);
    cr_assert_eq(s.deletes, 1);
    cr_assert_eq(live_docs(), 1);
    assert_no_children();
}

Test(exec, missing_program)
{
    char src[8192];
    const char *words[] = {"command[0]", "cannot run", NULL};

    snprintf(src, sizeof src, "{\"name\": \"s\", \"type\": \"exec\", \"command\":"
             " [\"/nonexistent/prog\"]}");
    sync_fails(src, words);
}

Test(exec, environment_is_not_inherited_unless_asked)
{
    char src[8192], path[4200], *text = NULL;
    size_t len;
    store_run_stats s;

    setenv("CTX_TEST_SECRET", "s3cret-token", 1);
    setenv("CTX_TEST_PASSED", "passed-on", 1);
    script_src(src, sizeof src,
               script("env.sh", HELLO STATE(1) DONE, "env > \"$(dirname \"$0\")/env.txt\""),
               "\"env\": {\"FOO\": \"bar\"}, \"pass_env\": [\"CTX_TEST_PASSED\"]");
    sync_ok(src, &s);
    snprintf(path, sizeof path, "%s/env.txt", root);
    cr_assert_eq(ctx_read_file(path, &text, &len), 0);
    cr_assert(!strstr(text, "s3cret-token"), "a secret leaked into the child: %s", text);
    cr_assert(strstr(text, "FOO=bar"));
    cr_assert(strstr(text, "CTX_TEST_PASSED=passed-on"));
    cr_assert(strstr(text, "PATH="));
    ctx_free(text);
}

Test(exec, bad_options_name_the_key)
{
    char src[8192];
    const char *words[] = {"timeout_seconds", NULL};
    const char *env_words[] = {"env.X", "expected a string", NULL};
    const char *typo[] = {"unknown key \"comand\"", "did you mean \"command\"", NULL};

    snprintf(src, sizeof src, "{\"name\": \"s\", \"type\": \"exec\", \"command\": [\"true\"],"
             " \"timeout_seconds\": 0}");
    sync_fails(src, words);
    snprintf(src, sizeof src, "{\"name\": \"s\", \"type\": \"exec\", \"command\": [\"true\"],"
             " \"env\": {\"X\": 1}}");
    sync_fails(src, env_words);
    snprintf(src, sizeof src, "{\"name\": \"s\", \"type\": \"exec\", \"comand\": [\"true\"]}");
    sync_fails(src, typo);
}

/* ---- the protocol's schemas ---- */

static int validate(const char *schema, const char *files)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/validate-json.py %s %s >/dev/null",
             schema, files);
    return system(cmd);
}

/* Run the example with one request; each output line becomes a file. */
static void example_lines(const char *tag, const char *request, ctx_buf *files)
{
    char cmd[16384], line[65536];
    FILE *p;
    int n = 0;

    tu_write(root, "req.json", request);
    snprintf(cmd, sizeof cmd, "python3 %s < %s/req.json", example, root);
    cr_assert_not_null(p = popen(cmd, "r"));
    while (fgets(line, sizeof line, p)) {
        char rel[64], path[4200];
        snprintf(rel, sizeof rel, "msg/%s-%02d.json", tag, n++);
        tu_write(root, rel, line);
        snprintf(path, sizeof path, " %s/%s", root, rel);
        ctx_buf_puts(files, path);
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert_geq(n, 2, "%s: only %d lines", tag, n);
}

Test(exec, example_messages_validate_against_the_schemas)
{
    char req[8192];
    ctx_buf files = CTX_BUF_INIT, reqs = CTX_BUF_INIT;
    const char *kinds[] = {"spec", "check", "discover"};

    write_items(", {\"id\": \"group:eng\", \"members\": [\"user:ben@x.test\"]}",
                ITEM_PAY "," ITEM_HELLO "," ITEM_ENG);
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof req, "{\"type\": \"%s\", \"protocol\": 1, \"config\": {\"path\":"
                 " \"%s/items.json\"}}\n", kinds[i], root);
        example_lines(kinds[i], req, &files);
    }
    snprintf(req, sizeof req, "{\"type\": \"read\", \"protocol\": 1, \"stream\": \"items\","
             " \"state\": {\"seen\": {\"pay\": \"x:y\", \"gone\": \"x:y\"}}, \"full\": false,"
             " \"config\": {\"path\": \"%s/items.json\", \"state_every\": 1}}\n", root);
    example_lines("items", req, &files);
    tu_write(root, "req-read.json", req);
    snprintf(req, sizeof req, "{\"type\": \"read\", \"protocol\": 1, \"stream\": \"principals\","
             " \"state\": {\"groups\": [\"group:old\"]}, \"full\": true,"
             " \"config\": {\"path\": \"%s/items.json\"}}\n", root);
    example_lines("principals", req, &files);
    cr_assert(strstr(files.data, "items-0"));
    cr_assert_eq(validate("schemas/protocol/messages.schema.json", files.data), 0,
                 "a message of the example does not validate:%s", files.data);

    /* The requests those were, and the example's ctxgate.json. */
    ctx_buf_printf(&reqs, "%s/req-read.json %s/req.json", root, root);
    cr_assert_eq(validate("schemas/protocol/requests.schema.json", reqs.data), 0);
    cr_assert_eq(validate("schemas/config.schema.json", "examples/exec-python/ctxgate.json"), 0);

    /* And the schema is no pushover: broken messages fail it. */
    tu_write(root, "bad/1.json", "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"x\"}");
    tu_write(root, "bad/2.json", "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"x\","
                                 "\"acl\":{\"alow\":[]}}");
    tu_write(root, "bad/3.json", "{\"type\":\"RECROD\"}");
    tu_write(root, "bad/4.json", "{\"type\":\"PRINCIPAL\",\"kind\":\"user\",\"id\":\"group:x\"}");
    for (int i = 1; i <= 4; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/bad/%d.json", root, i);
        cr_assert_neq(validate("schemas/protocol/messages.schema.json", path), 0,
                      "bad/%d.json validated", i);
    }
    ctx_buf_free(&files);
    ctx_buf_free(&reqs);
}

/* What ctxgate writes to the program validates too. */
Test(exec, requests_ctxgate_writes_validate)
{
    char src[8192], path[4200];
    store_run_stats s;

    script_src(src, sizeof src,
               script("req.sh", "", "echo \"$req\" > \"$(dirname \"$0\")/sent.json\"\n"
                                    "printf '%s\\n' '{\"type\":\"HELLO\",\"protocol\":1}'"
                                    " '{\"type\":\"STATE\",\"stream\":\"s\",\"state\":{}}'"
                                    " '{\"type\":\"DONE\"}'"),
               "\"config\": {\"anything\": [1, 2]}");
    sync_ok(src, &s);
    snprintf(path, sizeof path, "%s/sent.json", root);
    cr_assert_eq(validate("schemas/protocol/requests.schema.json", path), 0);
    /* Again from the committed state. */
    sync_ok(src, &s);
    cr_assert_eq(validate("schemas/protocol/requests.schema.json", path), 0);
    /* And a permission read's request, with its mode. */
    {
        ctx_error err;
        char *sent;
        size_t n;
        cr_assert_eq(tu_sync(st, src, TU_PERMISSIONS, &s, &err), 0, "%s", err.text);
        cr_assert_eq(validate("schemas/protocol/requests.schema.json", path), 0);
        cr_assert_eq(ctx_read_file(path, &sent, &n), 0);
        cr_assert(strstr(sent, "\"mode\":\"permissions\"") && strstr(sent, "\"state\":null"),
                  "%s", sent);
        ctx_free(sent);
    }
}
