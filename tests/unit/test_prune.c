/*
 * test_prune.c - the maintain pass keeps the audit log and the run history
 * bounded: audit records older than audit.retain go and newer ones stay,
 * the file gives its pages back, and sync_runs / agent_jobs keep their
 * bound without losing the rows the agent and `status` read.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "agent/jobs.h"
#include "core/config.h"
#include "core/util.h"
#include "indexer/store.h"
#include "tests/lib/testutil.h"

#define DAY (86400LL * 1000)

static char *dir;

static void setup(void) { dir = tu_tmpdir("prune"); }

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

TestSuite(prune, .init = setup, .fini = teardown);

/* config - a config of no sources with data_dir = dir and the extra keys. */
static void config(ctx_config *cfg, const char *extra)
{
    char text[1024];
    ctx_error err;
    json_t *root;

    snprintf(text, sizeof text, "{\"data_dir\": \"%s\", \"sources\": []%s%s}", dir,
             *extra ? ", " : "", extra);
    root = json_loads(text, 0, NULL);
    cr_assert_not_null(root, "%s", text);
    memset(cfg, 0, sizeof *cfg);
    cr_assert_eq(ctx_config_parse(root, dir, cfg, &err), CTX_OK, "%s", err.text);
    json_decref(root);
}

/* audit_log - the audit log of dir's store, opened. */
static ctx_store *audit_log(void)
{
    char path[4096];
    ctx_store *log;
    ctx_error err;

    snprintf(path, sizeof path, "%s/ctxgate.db", dir);
    cr_assert_eq(store_audit_open(path, &log, &err), CTX_OK, "%s", err.text);
    return log;
}

/* put - n records by user at time at, each with a 1 KB query text. */
static void put(ctx_store *log, const char *user, int64_t at, int n)
{
    char query[1024];
    ctx_error err;
    store_audit_rec r;

    memset(query, 'q', sizeof query - 1);
    query[sizeof query - 1] = '\0';
    memset(&r, 0, sizeof r);
    r.at = at;
    r.user = user;
    r.agent = "helper";
    r.action = "search";
    r.query = query;
    r.tokens = 10;
    r.outcome = "ok";
    cr_assert_eq(store_begin(log, &err), CTX_OK, "%s", err.text);
    for (int i = 0; i < n; i++)
        cr_assert_eq(store_audit_put(log, &r, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(store_commit(log, &err), CTX_OK, "%s", err.text);
}

Test(prune, maintain_drops_audit_records_older_than_retain_and_keeps_newer)
{
    int64_t now = ctx_now_ms(), pages_before, pages_after;
    ctx_store *st = tu_store(dir), *log = audit_log();
    ctx_config cfg;
    ctx_error err;

    config(&cfg, "\"audit\": {\"retain\": \"7d\"}");
    cr_assert_eq(cfg.audit_retain_ms, 7 * DAY);
    /* More old records than one prune batch holds: the batches go on. */
    put(log, "user:old", now - 30 * DAY, 4500);
    put(log, "user:edge", now - 7 * DAY - 60000, 3);
    put(log, "user:new", now - 6 * DAY, 5);
    put(log, "user:now", now - 1000, 2);
    pages_before = tu_count(log, "PRAGMA page_count");
    cr_assert_eq(jobs_maintain(&cfg, st, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit WHERE user IN ('user:old',"
                              " 'user:edge')"), 0);
    cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit WHERE user = 'user:new'"), 5);
    cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit WHERE user = 'user:now'"), 2);
    /* The file gave the pruned pages back (incremental auto-vacuum). */
    cr_assert_eq(tu_count(log, "PRAGMA auto_vacuum"), 2);
    cr_assert_eq(tu_count(log, "PRAGMA freelist_count"), 0);
    pages_after = tu_count(log, "PRAGMA page_count");
    cr_assert_lt(pages_after * 10, pages_before, "%lld pages of %lld left",
                 (long long)pages_after, (long long)pages_before);
    store_close(log);
    store_close(st);
    ctx_config_free(&cfg);
}

/* Every record past retain: the newest stays, so the next record's id is
 * above every id the log ever gave (a cluster node's shipped ids are
 * never given again). */
Test(prune, the_newest_record_stays_so_no_id_is_given_twice)
{
    int64_t now = ctx_now_ms(), top;
    ctx_store *st = tu_store(dir), *log = audit_log();
    ctx_config cfg;
    ctx_error err;

    config(&cfg, "\"audit\": {\"retain\": \"7d\"}");
    put(log, "user:old", now - 30 * DAY, 10);
    top = tu_count(log, "SELECT max(id) FROM audit");
    cr_assert_eq(jobs_maintain(&cfg, st, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit"), 1);
    cr_assert_eq(tu_count(log, "SELECT max(id) FROM audit"), top);
    put(log, "user:now", now, 1);
    cr_assert_eq(tu_count(log, "SELECT max(id) FROM audit"), top + 1);
    store_close(log);
    store_close(st);
    ctx_config_free(&cfg);
}

Test(prune, retain_off_keeps_every_record)
{
    int64_t now = ctx_now_ms();
    ctx_store *st = tu_store(dir), *log = audit_log();
    ctx_config cfg;
    ctx_error err;

    config(&cfg, "\"audit\": {\"retain\": \"off\"}");
    cr_assert_eq(cfg.audit_retain_ms, -1);
    put(log, "user:old", now - 3000 * DAY, 3);
    cr_assert_eq(jobs_maintain(&cfg, st, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit"), 3);
    store_close(log);
    store_close(st);
    ctx_config_free(&cfg);
}

/* A writer appending records the whole time a prune runs. */
typedef struct writer_arg {
    int64_t at;
    int n, failed;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    char path[4096];
    ctx_store *log;
    ctx_error err;
    store_audit_rec r;

    snprintf(path, sizeof path, "%s/ctxgate.db", dir);
    if (store_audit_open(path, &log, &err)) {
        w->failed = w->n;
        return NULL;
    }
    memset(&r, 0, sizeof r);
    r.at = w->at;
    r.user = "user:live";
    r.action = "fetch";
    r.outcome = "ok";
    for (int i = 0; i < w->n; i++)
        if (store_audit_put(log, &r, &err))
            w->failed++;
    store_close(log);
    return NULL;
}

Test(prune, writers_go_on_while_the_audit_log_is_pruned)
{
    int64_t now = ctx_now_ms(), n = 0, pages = 0;
    ctx_store *log = audit_log();
    writer_arg w = {now, 3000, 0};
    pthread_t t;
    ctx_error err;

    put(log, "user:old", now - 400 * DAY, 20000);
    cr_assert_eq(pthread_create(&t, NULL, writer, &w), 0);
    cr_assert_eq(store_audit_prune(log, now - 90 * DAY, 500, &n, &err), CTX_OK, "%s",
                 err.text);
    cr_assert_eq(store_audit_reclaim(log, 64, &pages, &err), CTX_OK, "%s", err.text);
    pthread_join(t, NULL);
    cr_assert_eq(n, 20000);
    cr_assert_gt(pages, 0);
    cr_assert_eq(w.failed, 0, "%d of the writer's records failed", w.failed);
    cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit WHERE user = 'user:live'"), 3000);
    cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit"), 3000);
    store_close(log);
}

/* run - a sync_runs row of source 1. */
static void run(ctx_store *st, int id, int64_t at, const char *status, const char *held)
{
    char sql[512];
    ctx_error err;

    snprintf(sql, sizeof sql,
             "INSERT INTO sync_runs(id, source_id, started_at, finished_at, full, status,"
             " held_reason) VALUES(%d, 1, %lld, %lld, 0, '%s', %s%s%s)", id, (long long)at,
             (long long)at + 10, status, held ? "'" : "", held ? held : "NULL",
             held ? "'" : "");
    cr_assert_eq(store_exec(st, sql, &err), CTX_OK, "%s", err.text);
}

static void job(ctx_store *st, const char *source, const char *kind, int64_t at)
{
    int64_t id;
    ctx_error err;

    cr_assert_eq(store_job_start(st, source, kind, 0, at, &id, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(store_job_finish(st, id, at + 5, "ok", NULL, &err), CTX_OK, "%s", err.text);
}

Test(prune, history_is_pruned_to_its_bound_keeping_what_is_read)
{
    int64_t now = ctx_now_ms(), last = 0;
    ctx_store *st = tu_store(dir);
    ctx_config cfg;
    ctx_error err;
    char *ids;

    config(&cfg, "\"agent\": {\"history_keep\": 3, \"history_retain\": \"10d\"}");
    cr_assert_eq(cfg.agent.history_keep, 3);
    cr_assert_eq(cfg.agent.history_retain_ms, 10 * DAY);
    /* Runs 1-5 are 20 days old, 6-10 an hour old. Run 1 is the source's
     * last good run, run 2 its last hold; the rest failed. */
    run(st, 1, now - 20 * DAY, "ok", NULL);
    run(st, 2, now - 20 * DAY, "held", "deletes 90% of the documents");
    for (int i = 3; i <= 5; i++)
        run(st, i, now - 20 * DAY + i, "failed", NULL);
    for (int i = 6; i <= 10; i++)
        run(st, i, now - 3600000 + i, "failed", NULL);
    /* maintain: all old; sync of a: five recent. */
    for (int i = 0; i < 6; i++)
        job(st, NULL, "maintain", now - 20 * DAY + i);
    for (int i = 0; i < 5; i++)
        job(st, "a", "sync", now - 60000 + i);
    cr_assert_eq(jobs_maintain(&cfg, st, &err), CTX_OK, "%s", err.text);
    ids = tu_text(st, "SELECT group_concat(id) FROM (SELECT id FROM sync_runs ORDER BY id)");
    cr_assert_str_eq(ids, "1,2,8,9,10");
    free(ids);
    /* The hold is still in force; the last good run is still known. */
    {
        char reason[128];
        cr_assert_eq(store_source_held(st, 1, reason, sizeof reason, &err), CTX_OK);
        cr_assert_str_eq(reason, "deletes 90% of the documents");
    }
    /* The maintain job's own row of this pass is not there (jobs_maintain
     * does not record itself); the newest old one stays for the schedule. */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE kind = 'maintain'"), 1);
    cr_assert_eq(store_job_last(st, NULL, "maintain", &last, &err), CTX_OK);
    cr_assert_eq(last, now - 20 * DAY + 5);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE kind = 'sync'"), 3);
    cr_assert_eq(tu_count(st, "SELECT min(started_at) FROM agent_jobs WHERE kind = 'sync'"),
                 now - 60000 + 2);
    store_close(st);
    ctx_config_free(&cfg);
}

Test(prune, history_keep_alone_bounds_the_rows_when_retain_is_off)
{
    int64_t now = ctx_now_ms(), runs = 0, jobs = 0;
    ctx_store *st = tu_store(dir);
    ctx_error err;

    for (int i = 1; i <= 50; i++)
        run(st, i, now - 5000 * DAY + i, i == 50 ? "ok" : "failed", NULL);
    cr_assert_eq(store_history_prune(st, 7, INT64_MIN, 4, &runs, &jobs, &err), CTX_OK, "%s",
                 err.text);
    cr_assert_eq(runs, 43);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs"), 7);
    cr_assert_eq(tu_count(st, "SELECT min(id) FROM sync_runs"), 44);
    store_close(st);
}
