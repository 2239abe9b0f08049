/*
 * test_cluster_status.c - `ctxgate status` and GET /v1/admin/status in
 * cluster mode against the PostgreSQL of scripts/pg.sh, through the real
 * binary: the sources with their last runs come from ctxgate.sync_runs,
 * the job schedule from ctxgate.jobs, and the replicas' slots from
 * pg_replication_slots with how far behind the WAL each is; a replica's
 * data_dir also shows the LSN it applied up to. A replica that stopped
 * following shows a slot that is not reading and behind one that
 * follows; an unreachable PostgreSQL is reported and fails the command.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "tests/lib/pgtest.h"
#include "tests/lib/testutil.h"

#define ADMIN "admin-token-0123456789-abcdefghijklmnopqrstuv"

static struct {
    PGconn *admin, *db;
    char name[64];           /* the database this test made */
    char tag[16];            /* in this test's replica names (slots are server-wide) */
    char *root;
    char why[1024];
} F;

static void setup(void)
{
    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    F.admin = pgtest_connect(NULL, F.why, sizeof F.why);
    cr_assert(F.admin != NULL, "%s", F.why);
    snprintf(F.tag, sizeof F.tag, "%ld", (long)getpid());
    F.db = pgtest_db_make(F.admin, "cstat", F.name, sizeof F.name, F.why, sizeof F.why);
    cr_assert(F.db != NULL, "%s", F.why);
    F.root = tu_tmpdir("cstatus");
}

static void teardown(void)
{
    pgtest_db_drop(F.admin, F.db, F.name);
    PQfinish(F.admin);
    if (F.root) {
        tu_rmrf(F.root);
        free(F.root);
    }
}

TestSuite(cluster_status, .init = setup, .fini = teardown, .timeout = 300);

/* node - F.root/name/ctxgate.json: the demo copy docs as source "northwind"
 * in cluster mode at conninfo (NULL: this test's database); replica: its
 * name without the tag (NULL: a writer). Returns the directory (static). */
static char *node(const char *name, const char *docs, const char *replica, const char *conninfo)
{
    static char dirs[6][4200];
    static int n;
    char *dir = dirs[n++ % 6], ci[1024], rep[128] = "", text[16384];

    snprintf(dir, sizeof dirs[0], "%s/%s", F.root, name);
    if (conninfo)
        snprintf(ci, sizeof ci, "%s", conninfo);
    else
        snprintf(ci, sizeof ci, "%s dbname=%s", pgtest_conninfo(), F.name);
    if (replica)
        snprintf(rep, sizeof rep, ", \"replica\": \"%s%s\"", replica, F.tag);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\","
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}],"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2},"
             " \"agent\": {\"embed\": \"\"},"
             " \"cluster\": {\"conninfo\": \"%s\", \"password_env\": \"CTX_TEST_PGPASSWORD\"%s}}",
             docs, ci, rep);
    tu_write(dir, "ctxgate.json", text);
    return dir;
}

/* run - `ctxgate ARGS` in dir; its exit status (its output shown on failure). */
static int run(const char *dir, const char *args)
{
    int status;
    char *out = tu_cli(dir, args, 1, &status);

    if (status)
        fprintf(stderr, "ctxgate %s in %s: %s\n", args, dir, out);
    free(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* status_json - `ctxgate status --json` in dir, parsed (new); *code its exit code. */
static json_t *status_json(const char *dir, int *code)
{
    int status;
    char *out = tu_cli(dir, "status --json", 0, &status);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);

    cr_assert_not_null(j, "status --json in %s: %s: %s", dir, je.text, out);
    free(out);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return j;
}

static long long pg_count(const char *sql)
{
    PGresult *r = PQexec(F.db, sql);
    long long n;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(F.db));
    n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* lsn - "X/Y" as a number. */
static uint64_t lsn(const char *t)
{
    unsigned hi, lo;

    cr_assert(t && sscanf(t, "%X/%X", &hi, &lo) == 2, "not an LSN: %s", t ? t : "(null)");
    return ((uint64_t)hi << 32) | lo;
}

/* by - the member of array a whose key is value (borrowed), or fail. */
static json_t *by(json_t *a, const char *key, const char *value)
{
    size_t i;
    json_t *o;

    json_array_foreach(a, i, o) {
        if (!strcmp(json_string_value(json_object_get(o, key)), value))
            return o;
    }
    cr_assert_fail("no %s %s in %s", key, value, json_dumps(a, JSON_COMPACT));
    return NULL;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long num(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

Test(cluster_status, lists_runs_jobs_and_slots_and_a_stopped_replica_falls_behind)
{
    char docs[4200], cmd[9000], ra[64], rb[64], *w, *a, *b;
    json_t *st, *c, *src, *job, *sa, *sb, *mine;
    uint64_t a_lsn, b_lsn;
    long long live;
    int code;

    snprintf(docs, sizeof docs, "%s/docs", F.root);
    snprintf(cmd, sizeof cmd, "cp -r examples/demo %s", docs);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    w = node("w", docs, NULL, NULL);
    a = node("a", docs, "ra", NULL);
    b = node("b", docs, "rb", NULL);
    snprintf(ra, sizeof ra, "ctxgate_ra%s", F.tag);
    snprintf(rb, sizeof rb, "ctxgate_rb%s", F.tag);

    /* A worker runs the source's three jobs; two replicas follow. */
    cr_assert_eq(run(w, "agent --once"), 0);
    cr_assert_eq(run(a, "follow --once"), 0);
    cr_assert_eq(run(b, "follow --once"), 0);
    live = pg_count("SELECT count(*) FROM ctxgate.documents WHERE NOT deleted");
    cr_assert_gt(live, 0);

    st = status_json(a, &code);
    cr_assert_eq(code, 0);
    src = by(json_object_get(st, "sources"), "source", "northwind");
    cr_assert_eq(num(src, "documents"), live);
    cr_assert_eq(num(src, "local_documents"), live, "the replica holds what PostgreSQL holds");
    cr_assert_gt(num(src, "chunks"), 0);
    cr_assert_str_eq(str(src, "last_run"), "ok");
    cr_assert_not_null(str(src, "last_run_worker"), "the run's worker (host:pid) is named");
    cr_assert_geq(num(src, "lag_ms"), 0, "a good run was recorded (a replica used to say never)");
    cr_assert(json_is_integer(json_object_get(src, "acl_synced_at")));
    /* a first copy builds the ranking statistics, as a local sync does */
    cr_assert_geq(json_integer_value(json_object_get(
                      json_object_get(json_object_get(st, "index"), "ranking_stats"), "age_ms")),
                  0, "ranking statistics never built");
    c = json_object_get(st, "cluster");
    cr_assert_not_null(c, "no cluster object in cluster mode");
    cr_assert_geq(num(c, "schema_version"), 2);
    cr_assert_eq(json_array_size(json_object_get(c, "jobs")), 3);
    for (int k = 0; k < 3; k++) {
        static const char *const kinds[] = {"sync", "permissions", "full"};
        job = by(json_object_get(c, "jobs"), "kind", kinds[k]);
        cr_assert_str_eq(str(job, "source"), "northwind");
        cr_assert_str_eq(str(job, "last_status"), "ok", "%s", kinds[k]);
        cr_assert_eq(num(job, "runs"), 1, "%s", kinds[k]);
        cr_assert(json_is_false(json_object_get(job, "leased")));
        cr_assert(json_is_null(json_object_get(job, "lease_owner")));
        cr_assert_gt(num(job, "due_in_ms"), 0, "%s ran: it is due again later", kinds[k]);
    }
    sa = by(json_object_get(c, "replicas"), "slot", ra);
    sb = by(json_object_get(c, "replicas"), "slot", rb);
    mine = json_object_get(c, "this_replica");
    cr_assert_not_null(mine);
    cr_assert_str_eq(str(mine, "slot"), ra);
    cr_assert_eq(lsn(str(sa, "confirmed_flush_lsn")), lsn(str(mine, "lsn")),
                 "the slot was moved to what the replica applied");
    cr_assert(json_is_integer(json_object_get(sa, "bytes_behind")));
    cr_assert_geq(num(sa, "bytes_behind"), 0);
    cr_assert_str_eq(str(sa, "replica"), ra + strlen("ctxgate_"));
    b_lsn = lsn(str(sb, "confirmed_flush_lsn"));
    json_decref(st);

    /* rb stops following; the writer syncs an edit and a new file; ra follows. */
    tu_write(docs, "engineering/new-runbook.md", "# Incident runbook\n\nPage the on-call"
             " engineer first.\n");
    tu_write(docs, "finance/budget-plan-2027.md", "---\ntitle: 2027 budget plan\n---\nRevised.\n");
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(a, "follow --once"), 0);
    /* Another worker holds a lease right now (as a running job would). */
    cr_assert(pgtest_exec(F.db, F.why, sizeof F.why,
                          "UPDATE ctxgate.jobs SET lease_owner = 'other-host:42', lease_until ="
                          " (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 60000"
                          " WHERE kind = 'permissions'") == 0, "%s", F.why);

    st = status_json(a, &code);
    cr_assert_eq(code, 0);
    c = json_object_get(st, "cluster");
    src = by(json_object_get(st, "sources"), "source", "northwind");
    cr_assert_str_eq(str(src, "last_run"), "ok");
    cr_assert_str_eq(str(src, "last_run_mode"), "incremental", "the writer's sync is the last");
    cr_assert_eq(num(src, "last_run_records"), 2);
    cr_assert_eq(num(src, "documents"), live + 1);
    job = by(json_object_get(c, "jobs"), "kind", "permissions");
    cr_assert(json_is_true(json_object_get(job, "leased")));
    cr_assert_str_eq(str(job, "lease_owner"), "other-host:42");
    sa = by(json_object_get(c, "replicas"), "slot", ra);
    sb = by(json_object_get(c, "replicas"), "slot", rb);
    a_lsn = lsn(str(sa, "confirmed_flush_lsn"));
    cr_assert_eq(a_lsn, lsn(str(json_object_get(c, "this_replica"), "lsn")));
    cr_assert_eq(lsn(str(sb, "confirmed_flush_lsn")), b_lsn, "rb's slot stayed where it was");
    cr_assert_gt(a_lsn, b_lsn, "ra followed the sync, rb did not");
    cr_assert(json_is_false(json_object_get(sb, "active")), "nothing reads rb's slot");
    cr_assert(json_is_null(json_object_get(sb, "active_pid")));
    cr_assert_geq(num(sb, "bytes_behind"), (long long)(a_lsn - b_lsn),
                  "rb is behind by at least what ra applied since");
    cr_assert_gt(num(sb, "bytes_behind"), num(sa, "bytes_behind"));
    cr_assert_str_eq(str(sb, "wal_status"), "reserved");
    json_decref(st);

    /* The same as text. */
    {
        int status;
        char *out = tu_cli(a, "status", 0, &status), want[128];
        cr_assert_eq(status, 0, "%s", out);
        snprintf(want, sizeof want, "replica rb%s (slot %s): not reading now, ", F.tag, rb);
        cr_assert(strstr(out, want), "%s", out);
        cr_assert(strstr(out, "job northwind/permissions: running: leased by other-host:42"),
                  "%s", out);
        cr_assert(strstr(out, "job northwind/sync: due in "), "%s", out);
        cr_assert(strstr(out, "this data_dir is replica ra"), "%s", out);
        cr_assert(strstr(out, "last good sync "), "%s", out);
        cr_assert(!strstr(out, "last good sync never"), "%s", out);
        free(out);
    }

    /* A worker's data_dir (no store of its own) reports the cluster too. */
    st = status_json(w, &code);
    cr_assert_eq(code, 0);
    src = by(json_object_get(st, "sources"), "source", "northwind");
    cr_assert_eq(num(src, "documents"), live + 1);
    cr_assert_eq(num(src, "local_documents"), 0);
    cr_assert_null(json_object_get(json_object_get(st, "cluster"), "this_replica"));
    json_decref(st);

    /* rb follows again: its slot catches up with ra's. */
    cr_assert_eq(run(b, "follow --once"), 0);
    st = status_json(b, &code);
    c = json_object_get(st, "cluster");
    sb = by(json_object_get(c, "replicas"), "slot", rb);
    cr_assert_geq(lsn(str(sb, "confirmed_flush_lsn")), a_lsn);
    cr_assert_eq(lsn(str(sb, "confirmed_flush_lsn")),
                 lsn(str(json_object_get(c, "this_replica"), "lsn")));
    json_decref(st);
}

Test(cluster_status, the_console_answers_it_and_an_unreachable_postgres_fails_the_command)
{
    char docs[4200], cmd[9000], ci[256], *w, *a, *x;
    json_t *st, *j;
    json_error_t je;
    pid_t srv;
    int port, code;

    snprintf(docs, sizeof docs, "%s/docs", F.root);
    snprintf(cmd, sizeof cmd, "cp -r examples/demo %s", docs);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    w = node("w", docs, NULL, NULL);
    a = node("a", docs, "rc", NULL);
    cr_assert_eq(run(w, "agent --once"), 0);
    cr_assert_eq(run(a, "follow --once"), 0);

    cr_assert(pgtest_exec(F.db, F.why, sizeof F.why,
                          "UPDATE ctxgate.jobs SET lease_owner = 'other-host:7', lease_until ="
                          " (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 600000"
                          " WHERE kind = 'full'") == 0, "%s", F.why);
    srv = tu_serve(a, "CTXGATE_ADMIN_TOKEN=" ADMIN " CTXGATE_JWT_SECRET=" ADMIN, "--no-agent",
                   &port);
    cr_assert(port > 0, "serve did not start (see %s/serve.log)", a);
    /* The console's Sources page shows the cluster part, in chromium. */
    {
        char node_cmd[9000], path[4400], *out, want[64];
        size_t len;
        json_t *p;
        snprintf(path, sizeof path, "%s/cluster-console.json", F.root);
        snprintf(node_cmd, sizeof node_cmd, "BASE=http://127.0.0.1:%d ADMIN=" ADMIN
                 " node tests/console/cluster.mjs >%s 2>%s/cluster-console.log", port, path,
                 F.root);
        cr_assert_eq(system(node_cmd), 0, "cluster.mjs failed; see %s/cluster-console.log", F.root);
        cr_assert_eq(ctx_read_file(path, &out, &len), 0);
        p = json_loads(out, 0, NULL);
        cr_assert_not_null(p, "%s", out);
        cr_assert(json_is_true(json_object_get(p, "cluster_visible")), "%s", out);
        cr_assert(json_equal(json_object_get(p, "page_jobs"), json_object_get(p, "api_jobs")),
                  "%s", out);
        cr_assert_eq(json_array_size(json_object_get(p, "page_jobs")), 3, "%s", out);
        cr_assert(json_equal(json_object_get(p, "page_slots"), json_object_get(p, "api_slots")),
                  "%s", out);
        cr_assert_eq(json_array_size(json_object_get(p, "page_slots")), 1, "%s", out);
        cr_assert_eq(json_array_size(json_object_get(p, "api_leased")), 1, "%s", out);
        cr_assert(strstr(out, "\"other-host:7 for "), "the lease is shown: %s", out);
        snprintf(want, sizeof want, "this server is replica rc%s", F.tag);
        cr_assert(strstr(json_string_value(json_object_get(p, "page_state")), want), "%s", out);
        cr_assert_eq(json_array_size(json_object_get(p, "page_errors")), 0, "%s", out);
        json_decref(p);
        ctx_free(out);
    }
    {
        const char *hd[] = {"Authorization: Bearer " ADMIN, NULL};
        tu_reply r = tu_call(port, "GET", "/v1/admin/status", NULL, NULL, hd);
        cr_assert_eq(r.status, 200, "%s", r.body);
        j = json_loads(r.body, 0, &je);
        cr_assert_not_null(j, "%s", r.body);
        tu_reply_free(&r);
    }
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    st = json_object_get(j, "cluster");
    cr_assert_eq(json_array_size(json_object_get(st, "jobs")), 3);
    cr_assert_eq(json_array_size(json_object_get(st, "replicas")), 1);
    cr_assert_not_null(json_object_get(st, "this_replica"));
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "sources"), 0), "last_run")), "ok");
    json_decref(j);

    /* Nothing listens at the conninfo's port: the local part still shows,
     * the cluster part says why, and the command fails. */
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=x user=ctxtest",
             pgtest_free_port());
    x = node("a", docs, "rc", ci);
    st = status_json(x, &code);
    cr_assert_eq(code, 1);
    cr_assert(strstr(json_string_value(json_object_get(json_object_get(st, "cluster"), "error")),
                     "cannot connect to PostgreSQL"), "%s", json_dumps(st, 0));
    cr_assert_eq(json_array_size(json_object_get(st, "sources")), 1, "the local store's source");
    json_decref(st);
}
