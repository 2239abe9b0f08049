/*
 * test_guard.c - what a sync run reports and what it refuses to do alone:
 * permission changes that come with records, warnings that name their item
 * and are summarized per kind (in the log, the run's record and `ctxgate
 * status`), and the guards against mass changes (deletes over a share of
 * the source, too many documents opened to everyone), held until a run
 * with --confirm. Sources are shell programs speaking the exec protocol
 * from a file of lines, and the files connector, through the real sync
 * runner, store and `ctxgate` binary.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/sync.h"
#include "core/util.h"
#include "tests/lib/testutil.h"

static char *root;
static ctx_store *st;

static void setup(void)
{
    root = tu_tmpdir("guard");
    st = tu_store(root);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(root);
    free(root);
}

TestSuite(guard, .init = setup, .fini = teardown, .timeout = 120);

/* ---- a source whose messages are root/lines.jsonl ---- */

#define HELLO "{\"type\":\"HELLO\",\"protocol\":1}\n"
#define DONE "{\"type\":\"DONE\"}\n"
/* A guard with the floor that lets a small source's churn through turned off. */
#define G "\"min_deletes\": 0"

static void write_program(void)
{
    tu_write(root, "src.sh",
             "#!/bin/sh\nread -r req\n"
             "case \"$req\" in *'\"discover\"'*)\n"
             "  printf '%s\\n' '{\"type\":\"HELLO\",\"protocol\":1}'"
             " '{\"type\":\"STREAM\",\"name\":\"s\"}' '{\"type\":\"DONE\"}'; exit 0;;\nesac\n"
             "cat \"$(dirname \"$0\")/lines.jsonl\"\n");
}

/* The source JSON, with guard (a JSON object's inside, or "") as its guard. */
static const char *source(const char *guard)
{
    static char src[PATH_MAX + 512];
    snprintf(src, sizeof src, "{\"name\": \"s\", \"type\": \"exec\", \"command\": [\"/bin/sh\","
             " \"%s/src.sh\"], \"guard\": {%s}}", root, guard);
    return src;
}

/* Lines of n records ids first..first+n-1 with body word and allow list. */
static void records(ctx_buf *b, int first, int n, const char *word, const char *allow)
{
    for (int i = first; i < first + n; i++)
        ctx_buf_printf(b, "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"d%d\",\"title\":\"T%d\","
                       "\"body\":\"zebra %s %d\",\"acl\":{\"allow\":[%s]}}\n", i, i, word, i,
                       allow);
}

static void state(ctx_buf *b, int n)
{
    ctx_buf_printf(b, "{\"type\":\"STATE\",\"stream\":\"s\",\"state\":{\"n\":%d}}\n", n);
}

static void lines(ctx_buf *b)
{
    ctx_buf_puts(b, DONE);
    tu_write(root, "lines.jsonl", b->data);
    ctx_buf_free(b);
}

/* Only this stream, as the agent's permissions job reads (NULL = every stream). */
static const char *only_stream;
/* 1: the runs are permission runs (`sync --permissions`). */
static int perm_run;

/* One run; the sync's result code, with err and *s filled. */
static int run(const char *guard, int full, int confirm, store_run_stats *s, ctx_error *err)
{
    char text[PATH_MAX + 1024];
    json_t *rootj;
    ctx_config cfg;
    sync_opts so;
    int rc;

    snprintf(text, sizeof text, "{\"sources\": [%s]}", source(guard));
    cr_assert(rootj = json_loads(text, 0, NULL), "%s", text);
    memset(&cfg, 0, sizeof cfg);
    rc = ctx_config_parse(rootj, ".", &cfg, err);
    json_decref(rootj);
    cr_assert_eq(rc, 0, "%s", err->text);
    memset(&so, 0, sizeof so);
    so.full = full;
    so.confirm = confirm;
    so.permissions = perm_run;
    if (only_stream) {
        so.filter = &only_stream;
        so.nfilter = 1;
    }
    rc = sync_source(st, &cfg.sources[0], &so, s, err);
    ctx_config_free(&cfg);
    return rc;
}

static void run_ok(const char *guard, int full, int confirm, store_run_stats *s)
{
    ctx_error err;
    int rc = run(guard, full, confirm, s, &err);
    cr_assert_eq(rc, 0, "sync failed: %s", rc ? err.text : "");
}

static int64_t live(void)
{
    return tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0");
}

/* The last run's status, held_reason and state of stream s, as "status|reason|state". */
static char *last_run(void)
{
    sqlite3_stmt *q;
    char *out;
    ctx_buf b = CTX_BUF_INIT;

    cr_assert_eq(sqlite3_prepare_v2(store_db(st), "SELECT status, coalesce(held_reason, ''),"
                                    " coalesce((SELECT state FROM sync_state), '')"
                                    " FROM sync_runs ORDER BY id DESC LIMIT 1", -1, &q, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    ctx_buf_printf(&b, "%s|%s|%s", sqlite3_column_text(q, 0), sqlite3_column_text(q, 1),
                   sqlite3_column_text(q, 2));
    sqlite3_finalize(q);
    out = ctx_buf_steal(&b);
    return out;
}

/* ---- D: permission changes that come with records ---- */

Test(guard, a_record_whose_acl_changed_counts_as_a_permission_change)
{
    ctx_buf b = CTX_BUF_INIT;
    store_run_stats s;

    write_program();
    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 4, "one", "\"user:a@x.test\"");
    state(&b, 1);
    lines(&b);
    run_ok("", 0, 0, &s);
    cr_assert_eq(s.records, 4);
    cr_assert_eq(s.acls, 0, "a new document's permissions are counted as indexed, not changed");

    /* d1: same text, new allow list; d2: new text and new allow list;
     * d3: new text, same allow list; d4: nothing new. */
    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 1, "one", "\"user:b@x.test\"");
    records(&b, 2, 1, "two", "\"user:b@x.test\"");
    records(&b, 3, 1, "two", "\"user:a@x.test\"");
    records(&b, 4, 1, "one", "\"user:a@x.test\"");
    state(&b, 2);
    lines(&b);
    run_ok("", 0, 0, &s);
    cr_assert_eq(s.records, 2, "d2 and d3 changed text");
    cr_assert_eq(s.unchanged, 2);
    cr_assert_eq(s.acls, 2, "d1 and d2 changed permissions; got %lld", (long long)s.acls);
    cr_assert_eq(tu_count(st, "SELECT acls FROM sync_runs ORDER BY id DESC LIMIT 1"), 2,
                 "the run's record says so too");

    /* The same again: nothing changed. */
    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 1, "one", "\"user:b@x.test\"");
    records(&b, 2, 1, "two", "\"user:b@x.test\"");
    records(&b, 3, 1, "two", "\"user:a@x.test\"");
    records(&b, 4, 1, "one", "\"user:a@x.test\"");
    lines(&b);
    run_ok("", 0, 0, &s);
    cr_assert_eq(s.acls, 0);
}

/* ---- F: deletes over the share of the source ---- */

/* The lines of a run deleting d1..d6, two to a STATE. */
static void ten_then_six_deletes_lines(void)
{
    ctx_buf b = CTX_BUF_INIT;

    ctx_buf_puts(&b, HELLO);
    for (int i = 1; i <= 6; i++) {
        ctx_buf_printf(&b, "{\"type\":\"DELETE\",\"stream\":\"s\",\"id\":\"d%d\"}\n", i);
        if (i % 2 == 0)
            state(&b, 10 + i);
    }
    lines(&b);
}

/* Ten documents, then the lines of a run deleting d1..d6. */
static void ten_then_six_deletes(void)
{
    ctx_buf b = CTX_BUF_INIT;
    store_run_stats s;

    write_program();
    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 10, "one", "\"user:a@x.test\"");
    state(&b, 1);
    lines(&b);
    run_ok("", 0, 0, &s);
    cr_assert_eq(live(), 10);
    ten_then_six_deletes_lines();
}

Test(guard, deletes_past_the_share_hold_the_run_and_keep_the_checkpoint_before)
{
    store_run_stats s;
    ctx_error err;
    char *r;

    ten_then_six_deletes();
    /* The 6th delete passes half of 10: its batch (d5, d6) is rolled back,
     * the two before it stay with their checkpoint. */
    cr_assert_eq(run(G, 0, 0, &s, &err), CTX_EHELD, "%s", err.text);
    cr_assert(strstr(err.text, "held: this run would delete 6 of the 10 documents source s had"
                     " (60%), more than guard.max_delete_share (50%)"), "%s", err.text);
    cr_assert(strstr(err.text, "ctxgate sync s --confirm"), "%s", err.text);
    cr_assert_eq(live(), 6, "d1..d4 deleted, d5 and d6 not");
    r = last_run();
    cr_assert(!strncmp(r, "held|this run would delete 6 of the 10", 38), "%s", r);
    cr_assert(strstr(r, "|{\"n\":14}"), "the checkpoint before the held batch: %s", r);
    free(r);

    /* An unconfirmed run stays held without reading (the share would
     * otherwise be measured against what is left). */
    cr_assert_eq(run(G, 0, 0, &s, &err), CTX_EHELD);
    cr_assert(strstr(err.text, "a run before this one was held"), "%s", err.text);
    cr_assert_eq(s.deletes, 0);
    cr_assert_eq(live(), 6);

    /* A permissions run (some streams only) still goes: revocations do not
     * wait for a person. It lifts nothing. */
    {
        ctx_buf b = CTX_BUF_INIT;
        ctx_buf_puts(&b, HELLO "{\"type\":\"PRINCIPAL\",\"kind\":\"group\",\"id\":\"group:g\","
                            "\"members\":[]}\n");
        state(&b, 14);
        lines(&b);
        only_stream = "s";
        run_ok(G, 0, 0, &s);
        only_stream = NULL;
        cr_assert_eq(s.principals, 1);
        cr_assert_eq(run(G, 0, 0, &s, &err), CTX_EHELD, "still held: %s", err.text);
        ten_then_six_deletes_lines();
    }

    /* --confirm applies it, and the source is no longer held. */
    run_ok(G, 0, 1, &s);
    cr_assert_eq(live(), 4);
    r = last_run();
    cr_assert(!strncmp(r, "ok||", 4), "%s", r);
    free(r);
    run_ok(G, 0, 0, &s);
}

Test(guard, no_more_deletes_than_min_deletes_are_never_held)
{
    store_run_stats s;

    ten_then_six_deletes();
    run_ok("\"min_deletes\": 6", 0, 0, &s);
    cr_assert_eq(s.deletes, 6);
    cr_assert_eq(live(), 4);
}

Test(guard, a_share_set_in_the_config_lets_the_deletes_through)
{
    store_run_stats s;

    ten_then_six_deletes();
    run_ok(G ", \"max_delete_share\": 0.7", 0, 0, &s);
    cr_assert_eq(s.deletes, 6);
    cr_assert_eq(live(), 4);
}

Test(guard, a_full_run_that_would_prune_past_the_share_is_held_before_the_prune)
{
    ctx_buf b = CTX_BUF_INIT;
    store_run_stats s;
    ctx_error err;
    char *r;

    write_program();
    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 10, "one", "\"user:a@x.test\"");
    state(&b, 1);
    lines(&b);
    run_ok(G, 1, 0, &s);

    /* The source now has 4 of the 10, one of them changed. */
    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 3, "one", "\"user:a@x.test\"");
    records(&b, 4, 1, "four", "\"user:a@x.test\"");
    lines(&b);
    cr_assert_eq(run(G, 1, 0, &s, &err), CTX_EHELD, "%s", err.text);
    cr_assert(strstr(err.text, "would delete 6 of the 10"), "%s", err.text);
    cr_assert_eq(s.pruned, 0);
    cr_assert_eq(live(), 10, "nothing pruned");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE body LIKE '%four%'"), 1,
                 "what was read is kept");
    r = last_run();
    cr_assert(!strncmp(r, "held|", 5), "%s", r);
    free(r);

    run_ok(G, 1, 1, &s);
    cr_assert_eq(s.pruned, 6);
    cr_assert_eq(live(), 4);
}

/* A permission run's prune (what the source no longer lists) is held the same way. */
Test(guard, a_permission_run_that_would_prune_past_the_share_is_held)
{
    ctx_buf b = CTX_BUF_INIT;
    store_run_stats s;
    ctx_error err;
    char *r;

    write_program();
    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 10, "one", "\"user:a@x.test\"");
    state(&b, 1);
    lines(&b);
    run_ok(G, 1, 0, &s);

    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 3, "one", "\"user:a@x.test\"");
    lines(&b);
    perm_run = 1;
    cr_assert_eq(run(G, 0, 0, &s, &err), CTX_EHELD, "%s", err.text);
    cr_assert(strstr(err.text, "would delete 7 of the 10"), "%s", err.text);
    cr_assert_eq(s.pruned, 0);
    cr_assert_eq(live(), 10, "nothing pruned");
    r = last_run();
    cr_assert(!strncmp(r, "held|", 5), "%s", r);
    free(r);

    run_ok(G, 0, 1, &s);
    cr_assert_eq(s.pruned, 7);
    cr_assert_eq(live(), 3);
    perm_run = 0;
}

/* ---- F: documents opened to everyone ---- */

/* readable_by_z - a bit per document z@x.test (in no ACL but everyone) can find: 1 << n for dn. */
static unsigned readable_by_z(void)
{
    char *got = tu_search_titles(st, "z@x.test", "zebra"), *p, *save = NULL;
    unsigned bits = 0;

    for (p = strtok_r(got, "|", &save); p; p = strtok_r(NULL, "|", &save))
        bits |= 1u << atoi(p + 1);
    free(got);
    return bits;
}

Test(guard, opening_more_than_max_everyone_documents_to_everyone_is_held)
{
    ctx_buf b = CTX_BUF_INIT;
    store_run_stats s;
    ctx_error err;

    write_program();
    ctx_buf_puts(&b, HELLO "{\"type\":\"PRINCIPAL\",\"kind\":\"user\",\"id\":\"user:z@x.test\"}\n");
    records(&b, 1, 3, "one", "\"everyone\"");
    records(&b, 4, 6, "one", "\"user:a@x.test\"");
    state(&b, 1);
    lines(&b);
    run_ok("\"max_everyone\": 3", 0, 0, &s);
    cr_assert_eq(s.to_everyone, 3);

    /* d4..d7 become readable by everyone through RECORDs, d8 through an ACL
     * message: 5 > 3. d1..d3 already were and do not count. */
    ctx_buf_puts(&b, HELLO);
    records(&b, 1, 3, "one", "\"everyone\"");
    state(&b, 2);
    records(&b, 4, 2, "one", "\"everyone\",\"user:a@x.test\"");
    state(&b, 3);
    records(&b, 6, 2, "two", "\"everyone\"");
    ctx_buf_puts(&b, "{\"type\":\"ACL\",\"stream\":\"s\",\"id\":\"d8\","
                     "\"acl\":{\"allow\":[\"everyone\"]}}\n");
    state(&b, 4);
    lines(&b);
    cr_assert_eq(run("\"max_everyone\": 3", 0, 0, &s, &err), CTX_EHELD, "%s", err.text);
    cr_assert(strstr(err.text, "more than 3 documents of source s readable by everyone"
                     " (guard.max_everyone)"), "%s", err.text);
    cr_assert_eq(readable_by_z(), 0x3e, "only the batches before the limit (d1..d5)");
    run_ok("\"max_everyone\": 3", 0, 1, &s);
    cr_assert_eq(readable_by_z(), 0x1fe, "confirmed: d1..d8");
}

Test(guard, bad_guard_values_name_the_key)
{
    store_run_stats s;
    ctx_error err;
    char text[1024];
    json_t *j;
    ctx_config cfg;

    (void)s;
    snprintf(text, sizeof text, "{\"sources\": [{\"name\": \"s\", \"type\": \"exec\","
             " \"command\": [\"true\"], \"guard\": {\"max_delete_share\": 1.5}}]}");
    j = json_loads(text, 0, NULL);
    memset(&cfg, 0, sizeof cfg);
    cr_assert_eq(ctx_config_parse(j, ".", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[0].guard.max_delete_share: 1.5 is not a share; use"
                     " 0..1"), "%s", err.text);
    ctx_config_free(&cfg);
    json_decref(j);
    j = json_loads("{\"sources\": [{\"name\": \"s\", \"type\": \"exec\", \"command\": [\"true\"],"
                   " \"guard\": {\"max_everyon\": 5}}]}", 0, NULL);
    memset(&cfg, 0, sizeof cfg);
    cr_assert_eq(ctx_config_parse(j, ".", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[0].guard"), "%s", err.text);
    cr_assert(strstr(err.text, "max_everyone"), "did you mean: %s", err.text);
    ctx_config_free(&cfg);
    json_decref(j);
}

/* ---- E: warnings name their item and repeats are summarized ---- */

/* The run's record: a program's LOG warnings, with a kind and without, summarized. */
Test(guard, exec_warnings_with_a_kind_are_summarized_per_kind_in_the_run_record)
{
    ctx_buf b = CTX_BUF_INIT;
    store_run_stats s;
    sqlite3_stmt *q;
    json_t *w, *k;

    write_program();
    ctx_buf_puts(&b, HELLO);
    for (int i = 1; i <= 5; i++)
        ctx_buf_printf(&b, "{\"type\":\"LOG\",\"level\":\"warn\",\"kind\":\"s.no_owner\","
                       "\"stream\":\"s\",\"id\":\"d%d\",\"message\":\"no owner\"}\n"
                       "{\"type\":\"LOG\",\"level\":\"warn\",\"message\":\"slow page\"}\n", i);
    ctx_buf_puts(&b, "{\"type\":\"LOG\",\"level\":\"info\",\"message\":\"not a warning\"}\n");
    records(&b, 1, 1, "one", "\"user:a@x.test\"");
    lines(&b);
    run_ok("", 0, 0, &s);

    cr_assert_eq(sqlite3_prepare_v2(store_db(st), "SELECT warnings FROM sync_runs ORDER BY id"
                                    " DESC LIMIT 1", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    w = json_loads((const char *)sqlite3_column_text(q, 0), 0, NULL);
    sqlite3_finalize(q);
    cr_assert_eq(json_array_size(w), 2);
    k = json_array_get(w, 0);
    cr_assert_str_eq(json_string_value(json_object_get(k, "kind")), "s.no_owner");
    cr_assert_eq(json_integer_value(json_object_get(k, "count")), 5);
    cr_assert_str_eq(json_string_value(json_object_get(k, "message")), "no owner");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(k, "examples"), 0)), "s/d1");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(k, "examples"), 2)), "s/d3");
    cr_assert_eq(json_array_size(json_object_get(k, "examples")), 3);
    k = json_array_get(w, 1);
    cr_assert_str_eq(json_string_value(json_object_get(k, "kind")), "slow page",
                     "a line without a kind is counted by its text");
    cr_assert_eq(json_integer_value(json_object_get(k, "count")), 5);
    cr_assert_eq(json_array_size(json_object_get(k, "examples")), 0, "the text is the example");
    json_decref(w);
}

/* Run `ctxgate ARGS` in root; stdout+stderr into root/out.txt; the exit status. */
static int ctxgate(const char *args, char **out)
{
    char cmd[PATH_MAX * 2 + 512], bin[PATH_MAX], path[PATH_MAX + 16];
    size_t len;
    int rc;

    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(cmd, sizeof cmd, "cd %s && %s/ctxgate %s >out.txt 2>&1", root, bin, args);
    rc = system(cmd);
    snprintf(path, sizeof path, "%s/out.txt", root);
    cr_assert_eq(ctx_read_file(path, out, &len), 0);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

Test(guard, repeated_warnings_name_the_item_and_are_summarized)
{
    char cfg[PATH_MAX + 512], *out;
    json_t *j, *w;

    for (int i = 0; i < 40; i++) {
        char name[64], text[64];
        snprintf(name, sizeof name, "docs/f%02d.md", i);
        snprintf(text, sizeof text, "# File %d\nzebra\n", i);
        tu_write(root, name, text);
    }
    tu_write(root, "docs/open/_acl.json", "{\"allow\": [\"user:a@x.test\"]}");
    tu_write(root, "docs/open/ok.md", "# Fine\nzebra\n");
    snprintf(cfg, sizeof cfg, "{\"data_dir\": \"./data\", \"sources\": [{\"name\": \"docs\","
             " \"type\": \"files\", \"path\": \"%s/docs\"}]}", root);
    tu_write(root, "ctxgate.json", cfg);

    cr_assert_eq(ctxgate("sync", &out), 0, "%s", out);
    /* The first three name their file; then one line says the rest are counted. */
    cr_assert_eq(count_of(out, "nobody will see it"), 4, "%s", out);
    cr_assert(strstr(out, "files/f00.md: file has no permissions"), "%s", out);
    cr_assert(strstr(out, "more warnings of kind \"files.no_acl\" follow"), "%s", out);
    cr_assert(strstr(out, "40 warnings of kind \"files.no_acl\" (e.g. files/f00.md,"
                     " files/f01.md, files/f02.md)"), "%s", out);
    cr_assert(!strstr(out, "ok.md"), "%s", out);
    cr_assert(strstr(out, "ctxgate: docs: 40 warnings (summarized above"), "%s", out);
    free(out);

    /* The run's record keeps the summary; status shows it. */
    cr_assert_eq(ctxgate("status", &out), 0, "%s", out);
    cr_assert(strstr(out, "40 warnings of kind files.no_acl: file has no permissions"
                     " (front matter, sidecar or _acl.json): nobody will see it"
                     " (e.g. files/f00.md, files/f01.md, files/f02.md)"), "%s", out);
    free(out);
    cr_assert_eq(ctxgate("status --json", &out), 0, "%s", out);
    cr_assert(j = json_loads(out, 0, NULL), "%s", out);
    w = json_object_get(json_array_get(json_object_get(j, "sources"), 0), "last_run_warnings");
    cr_assert_eq(json_array_size(w), 1, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(w, 0), "count")), 40);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(w, 0), "kind")),
                     "files.no_acl");
    cr_assert_eq(json_array_size(json_object_get(json_array_get(w, 0), "examples")), 3);
    json_decref(j);
    free(out);
}

/* The held run through the binary: exit status, message, status, --confirm. */
Test(guard, the_cli_reports_a_held_run_and_confirm_applies_it)
{
    char cfg[PATH_MAX + 512], *out;
    int i;

    for (i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "docs/f%d.md", i);
        tu_write(root, name, "---\nallow: [\"user:a@x.test\"]\n---\nzebra\n");
    }
    snprintf(cfg, sizeof cfg, "{\"data_dir\": \"./data\", \"sources\": [{\"name\": \"docs\","
             " \"type\": \"files\", \"path\": \"%s/docs\", \"guard\": {" G "}}]}", root);
    tu_write(root, "ctxgate.json", cfg);
    cr_assert_eq(ctxgate("sync", &out), 0, "%s", out);
    free(out);
    for (i = 0; i < 3; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/docs/f%d.md", root, i);
        cr_assert_eq(unlink(path), 0);
    }
    cr_assert_eq(ctxgate("sync", &out), 1, "%s", out);
    cr_assert(strstr(out, "source docs: held: this run would delete 3 of the 4 documents"),
              "%s", out);
    cr_assert(strstr(out, "run `ctxgate sync docs --confirm`"), "%s", out);
    free(out);
    cr_assert_eq(ctxgate("status", &out), 0, "%s", out);
    cr_assert(strstr(out, "last run held: "), "%s", out);
    free(out);
    cr_assert_eq(ctxgate("sync docs --confirm", &out), 0, "%s", out);
    cr_assert(strstr(out, "3 deleted"), "%s", out);
    free(out);
    cr_assert_eq(ctxgate("status", &out), 0, "%s", out);
    cr_assert(strstr(out, "last run ok"), "%s", out);
    free(out);
}
