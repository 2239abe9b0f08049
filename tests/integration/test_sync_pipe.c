/*
 * test_sync_pipe.c - the sync runner reads a connector on one thread and
 * applies its messages to the store on another (agent/sync_pipe.h). What
 * the store ends up with must not depend on that: a failure on either
 * side keeps exactly what the last STATE before it committed, a store
 * error stops the connector, xNextId sees every record sent before it, and
 * a sync through a tiny queue leaves the store a serial sync leaves.
 * Driven by tests/plugins/mixed.c, loaded as a plugin.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

static char *dir;
static ctx_store *st;

static void setup(void)
{
    dir = tu_tmpdir("pipe");
    st = tu_store(dir);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(pipe, .init = setup, .fini = teardown);

/* How a test runs the sync; zero: the defaults (pipelined, default queue). */
typedef struct how {
    int serial, full, permissions;
    size_t queue_msgs, queue_bytes;
} how;

/*
 * run - sync the mixed plugin into s with config keys extra (and
 * max_record_bytes when given) the way h says.
 */
static int run(ctx_store *s, const char *extra, const how *h, store_run_stats *stats,
               ctx_error *err)
{
    char text[4096];
    json_error_t jerr;
    json_t *root;
    ctx_config cfg;
    sync_opts so;
    int rc;

    snprintf(text, sizeof text, "{\"sources\": [{\"name\": \"m\", \"type\": \"plugin\","
             " \"plugin\": \"%s/tests/plugins/mixed.so\"%s%s}]}", tu_build_dir(),
             *extra ? ", " : "", extra);
    root = json_loads(text, 0, &jerr);
    cr_assert(root, "%s: %s", jerr.text, text);
    memset(&cfg, 0, sizeof cfg);
    rc = ctx_config_parse(root, ".", &cfg, err);
    json_decref(root);
    cr_assert_eq(rc, 0, "%s", err->text);
    memset(&so, 0, sizeof so);
    so.full = h->full;
    so.permissions = h->permissions;
    so.serial = h->serial;
    so.queue_msgs = h->queue_msgs;
    so.queue_bytes = h->queue_bytes;
    so.chunk_max_tokens = 24;
    so.chunk_overlap_tokens = 4;
    memset(err, 0, sizeof *err);
    rc = sync_source(s, &cfg.sources[0], &so, stats, err);
    ctx_config_free(&cfg);
    return rc;
}

/* fresh - st closed, and a new empty store in its place (in dir/N, N counting up). */
static void fresh(void)
{
    static int n;
    char path[4096];

    store_close(st);
    snprintf(path, sizeof path, "%s/%d", dir, ++n);
    cr_assert_eq(ctx_mkdir_p(path), 0);
    st = tu_store(path);
}

static int64_t docs(ctx_store *s)
{
    return tu_count(s, "SELECT count(*) FROM documents WHERE deleted = 0");
}

static int64_t state_n(ctx_store *s)
{
    return tu_count(s, "SELECT coalesce(max(json_extract(state, '$.n')), -1) FROM sync_state");
}

/* trace - what the plugin wrote to its trace file: records sent, and whether it was stopped. */
static void trace(int *sent, int *stopped)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/trace", dir);
    cr_assert((f = fopen(path, "r")), "no trace at %s", path);
    cr_assert_eq(fscanf(f, "sent %d stopped %d", sent, stopped), 2);
    fclose(f);
}

/* signature - everything a sync stored that does not depend on the clock, as text (new). */
static char *signature(ctx_store *s)
{
    return tu_text(s, "SELECT group_concat(x, char(10)) FROM (SELECT x FROM ("
                      " SELECT 'd|' || stream || '|' || ext_id || '|' || coalesce(title, '')"
                      "  || '|' || coalesce(body, '') || '|' || hash || '|' || acl_id || '|'"
                      "  || deleted || '|' || seen_epoch || '|' || id AS x FROM documents"
                      " UNION ALL SELECT 'c|' || c.id || '|' || c.doc_id || '|' || c.seq"
                      "  || '|' || c.ntokens || '|' || c.acl_id || '|' || f.text || '|'"
                      "  || f.allow FROM chunks c JOIN chunks_fts f ON f.rowid = c.id"
                      " UNION ALL SELECT 'a|' || id || '|' || hash || '|' || allow_tokens"
                      "  FROM acl_sets"
                      " UNION ALL SELECT 'p|' || name || '|' || kind || '|'"
                      "  || coalesce(display_name, '') FROM principals"
                      " UNION ALL SELECT 'm|' || group_id || '|' || member_id FROM memberships"
                      " UNION ALL SELECT 's|' || stream || '|' || state FROM sync_state"
                      " UNION ALL SELECT 'r|' || id || '|' || status || '|' || records || '|'"
                      "  || unchanged || '|' || deletes || '|' || acls || '|' || chunks"
                      "  || '|' || coalesce(warnings, '') FROM sync_runs"
                      " UNION ALL SELECT 'f|' || count(*) FROM chunks_fts"
                      " ) ORDER BY x)");
}

static void stats_eq(const store_run_stats *a, const store_run_stats *b)
{
    cr_assert_eq(a->records, b->records);
    cr_assert_eq(a->unchanged, b->unchanged);
    cr_assert_eq(a->deletes, b->deletes);
    cr_assert_eq(a->acls, b->acls);
    cr_assert_eq(a->principals, b->principals);
    cr_assert_eq(a->states, b->states);
    cr_assert_eq(a->chunks, b->chunks);
    cr_assert_eq(a->bytes, b->bytes);
    cr_assert_eq(a->pruned, b->pruned);
    cr_assert_eq(a->warnings, b->warnings);
    cr_assert_eq(a->to_everyone, b->to_everyone);
}

Test(pipe, connector_error_behind_many_queued_records_keeps_exactly_the_last_state)
{
    static const how hows[] = {{0, 0, 0, 0, 0}, {0, 0, 0, 3, 0}, {0, 0, 0, 100000, 0},
                               {1, 0, 0, 0, 0}};
    store_run_stats s;
    ctx_error err;

    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        cr_assert_eq(run(st, "\"count\": 5000, \"state_every\": 1000, \"fail_at\": 4700,"
                         " \"words\": 12", &hows[i], &s, &err), CTX_ESOURCE, "%s", err.text);
        cr_assert(strstr(err.text, "told to fail at 4700"), "%s", err.text);
        cr_assert_eq(docs(st), 4000, "how %zu: up to the STATE at 4000, no more", i);
        cr_assert_eq(state_n(st), 4000);
        cr_assert_eq(s.states, 4);
        cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks"),
                     tu_count(st, "SELECT count(*) FROM chunks_fts"));
        /* The next run resumes after it, and nothing is there twice. */
        cr_assert_eq(run(st, "\"count\": 5000, \"state_every\": 1000, \"words\": 12", &hows[i],
                         &s, &err), 0, "%s", err.text);
        cr_assert_eq(s.records, 1000);
        cr_assert_eq(docs(st), 5000);
        fresh();
    }
}

Test(pipe, record_over_max_record_bytes_stops_the_read_at_the_last_state)
{
    static const how hows[] = {{0, 0, 0, 0, 0}, {0, 0, 0, 2, 0}, {1, 0, 0, 0, 0}};
    char extra[512];
    store_run_stats s;
    ctx_error err;
    int sent, stopped;

    snprintf(extra, sizeof extra, "\"count\": 3000, \"state_every\": 500, \"big_at\": 1234,"
             " \"big_bytes\": 5000, \"max_record_bytes\": 4000, \"trace\": \"%s/trace\"", dir);
    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        cr_assert_eq(run(st, extra, &hows[i], &s, &err), CTX_ETOOBIG, "%s", err.text);
        cr_assert(strstr(err.text, "RECORD items/00001234: body is 5000 bytes"), "%s",
                  err.text);
        cr_assert_eq(docs(st), 1000);
        cr_assert_eq(state_n(st), 1000);
        trace(&sent, &stopped);
        cr_assert_eq(sent, 1234, "the connector is told to stop at the refused record");
        cr_assert(stopped);
        cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs WHERE status = 'failed'"
                                  " AND error LIKE '%max_record_bytes%'"), 1);
        fresh();
    }
}

/* inject - a store failure on st's connection: inserting item 3500 aborts. */
static void inject(void)
{
    ctx_error err;

    cr_assert_eq(store_exec(st, "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.documents"
                                " WHEN NEW.ext_id = '00003500'"
                                " BEGIN SELECT RAISE(ABORT, 'injected failure'); END;", &err),
                 0, "%s", err.text);
}

Test(pipe, store_error_stops_the_connector_rolls_back_and_wins_over_its_error)
{
    static const how hows[] = {{0, 0, 0, 0, 0}, {0, 0, 0, 4, 256}, {1, 0, 0, 0, 0},
                               {0, 0, 0, 100000, 0}};
    char extra[512];
    store_run_stats s;
    ctx_error err;
    int sent, stopped;

    snprintf(extra, sizeof extra, "\"count\": 8000, \"state_every\": 1000, \"words\": 8,"
             " \"trace\": \"%s/trace\"", dir);
    /* The connector is told to stop; with a queue of 100000 it may have
     * sent everything by then (not asked here, but below). */
    for (size_t i = 0; i < 3; i++) {
        inject();
        cr_assert_eq(run(st, extra, &hows[i], &s, &err), CTX_ESTORE, "%s", err.text);
        cr_assert(strstr(err.text, "injected failure"), "%s", err.text);
        cr_assert_eq(docs(st), 3000, "how %zu", i);
        cr_assert_eq(state_n(st), 3000);
        trace(&sent, &stopped);
        cr_assert(stopped, "how %zu: the connector was told to stop", i);
        cr_assert(sent >= 3500 && sent < 8000, "how %zu: sent %d", i, sent);
        fresh();
    }
    /* The connector fails too, after the record the store refuses: the
     * store's error came first in message order, and is the one reported. */
    snprintf(extra, sizeof extra, "\"count\": 8000, \"state_every\": 1000, \"words\": 8,"
             " \"fail_at\": 3600");
    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        inject();
        cr_assert_eq(run(st, extra, &hows[i], &s, &err), CTX_ESTORE, "%s", err.text);
        cr_assert(strstr(err.text, "injected failure"), "%s", err.text);
        cr_assert_eq(docs(st), 3000);
        fresh();
    }
}

Test(pipe, next_id_sees_every_record_sent_before_it)
{
    static const how hows[] = {{0, 0, 0, 0, 0}, {0, 0, 0, 100000, 0}, {1, 0, 0, 0, 0}};
    store_run_stats s;
    ctx_error err;

    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        /* Asked after every 7th record, long before its STATE. */
        cr_assert_eq(run(st, "\"count\": 2000, \"state_every\": 1000, \"next_id_every\": 7,"
                         " \"words\": 6", &hows[i], &s, &err), 0, "how %zu: %s", i, err.text);
        cr_assert_eq(docs(st), 2000);
        fresh();
    }
}

/*
 * The same runs through a queue of 2 messages and 4 KB, the default queue
 * and serially: stores identical in every row the clock does not write.
 */
Test(pipe, any_queue_leaves_the_store_a_serial_sync_leaves)
{
    static const how hows[] = {{1, 0, 0, 0, 0}, {0, 0, 0, 2, 4096}, {0, 0, 0, 0, 0}};
    static const char *const extra =
        "\"count\": 3000, \"state_every\": 250, \"delete_every\": 7, \"acl_every\": 5,"
        " \"principal_every\": 100, \"warn_every\": 400, \"words\": 60";
    char *sig[3], *path;
    store_run_stats s[3][4];
    ctx_error err;

    for (size_t i = 0; i < 3; i++) {
        ctx_store *x;
        how h = hows[i];
        cr_assert(asprintf(&path, "%s/s%zu", dir, i) > 0);
        cr_assert_eq(ctx_mkdir_p(path), 0);
        x = tu_store(path);
        cr_assert_eq(run(x, extra, &h, &s[i][0], &err), 0, "%s", err.text);
        /* Again from scratch, everything unchanged, and pruned at the end. */
        h.full = 1;
        cr_assert_eq(run(x, extra, &h, &s[i][1], &err), 0, "%s", err.text);
        /* A permission run (the plugin has no permission mode: read in full). */
        h.full = 0;
        h.permissions = 1;
        cr_assert_eq(run(x, extra, &h, &s[i][2], &err), 0, "%s", err.text);
        /* Fewer items at the source: a full run prunes the rest. */
        h.permissions = 0;
        h.full = 1;
        cr_assert_eq(run(x, "\"count\": 2500, \"state_every\": 250, \"acl_every\": 3,"
                         " \"words\": 60", &h, &s[i][3], &err), 0, "%s", err.text);
        sig[i] = signature(x);
        store_close(x);
        free(path);
    }
    cr_assert(s[0][0].records == 3000 && s[0][0].deletes > 300 && s[0][0].acls > 300 &&
              s[0][0].principals == 30 && s[0][0].warnings == 8 && s[0][0].chunks > 6000,
              "the serial run did what the test is about");
    cr_assert(strlen(sig[0]) > 100000, "%zu bytes of signature", strlen(sig[0]));
    cr_assert(s[0][1].unchanged > 2000 && s[0][2].unchanged > 2000 && s[0][3].pruned > 0);
    for (size_t i = 1; i < 3; i++) {
        for (size_t r = 0; r < 4; r++)
            stats_eq(&s[i][r], &s[0][r]);
        cr_assert_str_eq(sig[i], sig[0], "how %zu", i);
    }
    for (size_t i = 0; i < 3; i++)
        free(sig[i]);
}
