/*
 * test_cluster.c - cluster mode against the PostgreSQL of scripts/pg.sh,
 * through the real binary: `ctxgate sync` with a "cluster" section puts
 * every document, ACL and principal of a source in PostgreSQL, exactly as
 * the embedded store holds them after the same sync; a second sync
 * changes nothing; edits and deletions follow; kill -9 of syncs mid-way
 * loses and duplicates nothing. Each test makes its own databases.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/store.h"
#include "tests/lib/pgtest.h"
#include "tests/lib/testutil.h"

static struct {
    PGconn *admin;
    char names[2][64];     /* databases this test made */
    PGconn *db[2];
    char bin[4096];
    char why[1024];
} F;

static void setup(void)
{
    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    F.admin = pgtest_connect(NULL, F.why, sizeof F.why);
    cr_assert(F.admin != NULL, "%s", F.why);
    for (int i = 0; i < 2; i++) {
        F.db[i] = pgtest_db_make(F.admin, "clus", F.names[i], sizeof F.names[i], F.why,
                                 sizeof F.why);
        cr_assert(F.db[i] != NULL, "%s", F.why);
    }
    snprintf(F.bin, sizeof F.bin, "%s/ctxgate", tu_build_dir());
    cr_assert_eq(access(F.bin, X_OK), 0, "%s not built", F.bin);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        pgtest_db_drop(F.admin, F.db[i], F.names[i]);
    PQfinish(F.admin);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 600);

/* write_config - dir/ctxgate.json: one files source over docs; in cluster
 * mode on database db (0 or 1) when db >= 0, else embedded. */
static void write_config(const char *dir, const char *docs, int db, const char *source_extra)
{
    char text[8192], cluster[2048] = "";

    if (db >= 0)
        snprintf(cluster, sizeof cluster, ", \"cluster\": {\"conninfo\": \"%s dbname=%s\","
                 " \"password_env\": \"CTX_TEST_PGPASSWORD\", \"lease_s\": 5}",
                 pgtest_conninfo(), F.names[db]);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"chunk\": {\"max_tokens\": 24, \"overlap_tokens\": 6},"
             " \"sources\": [{\"name\": \"t\", \"type\": \"files\", \"path\": \"%s\"%s}]%s}",
             docs, source_extra ? source_extra : "", cluster);
    tu_write(dir, "ctxgate.json", text);
}

/* run_sync - `ctxgate sync` of dir; killed with SIGKILL after delay_us (0:
 * let it finish). Returns the exit status, or minus the signal. */
static int run_sync_arg(const char *dir, const char *arg, long delay_us)
{
    char cfg[4200];
    pid_t pid;
    int status;

    snprintf(cfg, sizeof cfg, "%s/ctxgate.json", dir);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        if (!getenv("CTX_CLUSTER_DEBUG"))
            freopen("/dev/null", "w", stderr);
        execl(F.bin, F.bin, "--config", cfg, "sync", arg, (char *)NULL);
        _exit(127);
    }
    if (delay_us) {
        usleep((useconds_t)delay_us);
        kill(pid, SIGKILL);
    }
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static int run_sync(const char *dir, long delay_us)
{
    return run_sync_arg(dir, NULL, delay_us);
}

/* pg_text - the rows of sql on database db, one line each, fields by ' '. */
static char *pg_text(int db, const char *sql)
{
    PGresult *r = PQexec(F.db[db], sql);
    ctx_buf b = CTX_BUF_INIT;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(F.db[db]));
    for (int i = 0; i < PQntuples(r); i++)
        for (int j = 0; j < PQnfields(r); j++)
            ctx_buf_printf(&b, "%s%c", PQgetvalue(r, i, j), j + 1 < PQnfields(r) ? ' ' : '\n');
    PQclear(r);
    return b.data ? ctx_buf_steal(&b) : ctx_strdup("");
}

static long long pg_count(int db, const char *sql)
{
    char *t = pg_text(db, sql);
    long long n = atoll(t);
    free(t);
    return n;
}

/* The live documents with their hash and ACL lists, in PostgreSQL... */
static char *pg_docs(int db)
{
    return pg_text(db, "SELECT d.stream, d.ext_id, d.hash,"
                       " coalesce((SELECT string_agg(principal, ',' ORDER BY principal)"
                       "  FROM ctxgate.acl_entries e WHERE e.acl = d.acl AND effect = 'allow'),"
                       "  '-'),"
                       " coalesce((SELECT string_agg(principal, ',' ORDER BY principal)"
                       "  FROM ctxgate.acl_entries e WHERE e.acl = d.acl AND effect = 'deny'),"
                       "  '-'),"
                       " coalesce((SELECT string_agg(label, ',' ORDER BY label)"
                       "  FROM ctxgate.acl_labels l WHERE l.acl = d.acl), '-')"
                       " FROM ctxgate.documents d WHERE NOT deleted ORDER BY 1, 2");
}

/* store_rows - the rows of sql (one text column) in the embedded store of
 * dir, one line each. */
static char *store_rows(const char *dir, const char *sql)
{
    char path[4200];
    ctx_store *st;
    sqlite3_stmt *s;
    ctx_buf b = CTX_BUF_INIT;

    snprintf(path, sizeof path, "%s/data", dir);
    st = tu_store(path);
    cr_assert_eq(sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(store_db(st)));
    while (sqlite3_step(s) == SQLITE_ROW)
        ctx_buf_printf(&b, "%s\n", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    store_close(st);
    return b.data ? ctx_buf_steal(&b) : ctx_strdup("");
}

/* ... and in the embedded store of dir. */
static char *store_docs(const char *dir)
{
    return store_rows(dir, "SELECT d.stream || ' ' || d.ext_id || ' ' || d.hash || ' ' ||"
                    " coalesce((SELECT group_concat(name, ',') FROM (SELECT p.name FROM"
                    "  acl_entries e JOIN principals p ON p.id = e.principal_id"
                    "  WHERE e.acl_id = d.acl_id AND e.deny = 0 ORDER BY 1)), '-') || ' ' ||"
                    " coalesce((SELECT group_concat(name, ',') FROM (SELECT p.name FROM"
                    "  acl_entries e JOIN principals p ON p.id = e.principal_id"
                    "  WHERE e.acl_id = d.acl_id AND e.deny = 1 ORDER BY 1)), '-') || ' ' ||"
                    " coalesce((SELECT group_concat(name, ',') FROM (SELECT b.name FROM"
                    "  acl_labels l JOIN labels b ON b.id = l.label_id"
                    "  WHERE l.acl_id = d.acl_id ORDER BY 1)), '-')"
                    " FROM documents d WHERE deleted = 0 ORDER BY d.stream, d.ext_id");
}

static char *store_members(const char *dir)
{
    return store_rows(dir, "SELECT g.name || ' ' || m.name FROM memberships x"
                           " JOIN principals g ON g.id = x.group_id JOIN principals m"
                           " ON m.id = x.member_id ORDER BY 1");
}

/* same - a and b (both freed) are equal, with text of the first difference. */
static void same(char *a, char *b, const char *what)
{
    size_t i = 0;

    while (a[i] && a[i] == b[i])
        i++;
    cr_assert(!strcmp(a, b), "%s differ at byte %zu:\n%.300s\n---\n%.300s", what, i,
              a + (i > 100 ? i - 100 : 0), b + (i > 100 ? i - 100 : 0));
    free(a);
    free(b);
}

Test(cluster, demo_source_in_postgres_equals_the_embedded_store_and_follows_changes)
{
    char *cl = tu_tmpdir("cl"), *em = tu_tmpdir("em"), docs[4200], cmd[8400], path[4300];
    char *before, *after;

    snprintf(docs, sizeof docs, "%s/docs", cl);
    snprintf(cmd, sizeof cmd, "cp -r examples/demo %s", docs);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    write_config(cl, docs, 0, NULL);
    write_config(em, docs, -1, NULL);

    cr_assert_eq(run_sync(cl, 0), 0);
    cr_assert_eq(run_sync(em, 0), 0);
    cr_assert_geq(pg_count(0, "SELECT count(*) FROM ctxgate.documents"), 20);
    same(pg_docs(0), store_docs(em), "documents and their ACLs");
    /* every principal of _principals.json, owned by the source, and the
     * group memberships exactly as the embedded store has them */
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.principals p JOIN ctxgate.sources s"
                             " ON s.id = p.source WHERE s.name = 't'"), 17);
    same(pg_text(0, "SELECT principal, member FROM ctxgate.memberships ORDER BY 1, 2"),
         store_members(em), "memberships");
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.sync_runs WHERE status = 'ok'"), 1);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.checkpoints WHERE stream = 'files'"
                             " AND state IS NOT NULL"), 1);

    /* A second sync changes nothing: no row rewritten, no count moved. */
    before = pg_text(0, "SELECT id, hash, acl, changed_at, deleted FROM ctxgate.documents"
                        " ORDER BY id");
    cr_assert_eq(run_sync(cl, 0), 0);
    after = pg_text(0, "SELECT id, hash, acl, changed_at, deleted FROM ctxgate.documents"
                       " ORDER BY id");
    same(before, after, "documents after a second sync");
    cr_assert_eq(pg_count(0, "SELECT records + deletes + acls + pruned FROM ctxgate.sync_runs"
                             " ORDER BY id DESC LIMIT 1"), 0);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.acl_sets"),
                 pg_count(0, "SELECT count(DISTINCT acl) FROM ctxgate.documents"));

    /* An edited file is rewritten, a deleted one tombstoned, a new ACL moves one. */
    tu_write(docs, "engineering/new-one.md", "---\ntitle: New\nallow: [group:finance]\n---\n"
             "A brand new page about quarterly numbers.\n");
    snprintf(path, sizeof path, "%s/hr", docs);
    snprintf(cmd, sizeof cmd, "rm \"$(ls %s/*.md | head -1)\"", path);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "f=$(ls %s/finance/*.md | head -1); printf '\\nAn added line.\\n'"
             " >> \"$f\"", docs);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run_sync(cl, 0), 0);
    cr_assert_eq(run_sync(em, 0), 0);
    same(pg_docs(0), store_docs(em), "documents after edits and a deletion");
    cr_assert_eq(pg_count(0, "SELECT deletes FROM ctxgate.sync_runs ORDER BY id DESC LIMIT 1"),
                 1);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE deleted"
                             " AND (body IS NOT NULL OR title IS NOT NULL)"), 0,
                 "a tombstone kept its content");
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted AND"
                             " ext_id LIKE '%new-one.md' AND body LIKE '%quarterly numbers%'"), 1);

    /* A permission run: hr's folder ACL changes, no content does. */
    tu_write(docs, "hr/_acl.json", "{\"allow\": [\"group:hr-leads\"], \"deny\":"
             " [\"user:grace@northwind.test\"], \"labels\": [\"restricted\"]}");
    before = pg_text(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted");
    cr_assert_eq(run_sync_arg(cl, "--permissions", 0), 0);
    cr_assert_eq(run_sync_arg(em, "--permissions", 0), 0);
    same(pg_docs(0), store_docs(em), "documents after a permission run");
    cr_assert_gt(pg_count(0, "SELECT acls FROM ctxgate.sync_runs ORDER BY id DESC LIMIT 1"), 0);
    cr_assert_eq(pg_count(0, "SELECT mode FROM ctxgate.sync_runs ORDER BY id DESC LIMIT 1"), 2);
    same(before, pg_text(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"),
         "live documents after a permission run");

    /* A full run re-reads everything: nothing changes, nothing is pruned. */
    cr_assert_eq(run_sync_arg(cl, "--full", 0), 0);
    cr_assert_eq(run_sync_arg(em, "--full", 0), 0);
    same(pg_docs(0), store_docs(em), "documents after a full run");
    cr_assert_eq(pg_count(0, "SELECT records + pruned + acls FROM ctxgate.sync_runs"
                             " ORDER BY id DESC LIMIT 1"), 0);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.checkpoints"
                             " WHERE pending_epoch IS NOT NULL"), 0);
    /* A file gone before a full run: pruned (or deleted) there too. */
    snprintf(cmd, sizeof cmd, "rm \"$(ls %s/engineering/*.md | head -1)\"", docs);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run_sync_arg(cl, "--full", 0), 0);
    cr_assert_eq(run_sync_arg(em, "--full", 0), 0);
    same(pg_docs(0), store_docs(em), "documents after a full run with a file gone");
    cr_assert_eq(pg_count(0, "SELECT pruned + deletes FROM ctxgate.sync_runs"
                             " ORDER BY id DESC LIMIT 1"), 1);
    tu_rmrf(cl);
    tu_rmrf(em);
    free(cl);
    free(em);
}

/* ---- kill -9 mid-sync ---- */

#define NFILES 1200
#define KILLS 10

static void write_tree(const char *docs, int gen)
{
    char rel[64], text[1024];

    for (int i = 0; i < NFILES; i++) {
        snprintf(rel, sizeof rel, "d%02d/f%04d.md", i % 10, i);
        if (gen && i % 11 == 0) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", docs, rel);
            unlink(p);
            continue;
        }
        snprintf(text, sizeof text,
                 "---\ntitle: File %d\nallow: [group:g%d, user:u%d@t.test]\n---\n"
                 "Paragraph one of file %d%s talks about topic %d.\n\n"
                 "Paragraph two mentions keyword k%d.\n", i, i % 5, i % 13, i,
                 gen && i % 7 == 0 ? " (edited)" : "", i % 17, i % 29);
        tu_write(docs, rel, text);
    }
}

Test(cluster, kill_9_mid_sync_then_a_new_sync_loses_and_duplicates_nothing)
{
    char *crash = tu_tmpdir("clk"), *clean = tu_tmpdir("clc"), docs[4200];
    struct timespec a, z;
    long full_us;
    int killed = 0, progressed = 0;
    long long last = -1;

    snprintf(docs, sizeof docs, "%s/docs", crash);
    srand((unsigned)time(NULL));
    write_tree(docs, 0);
    /* A clean sync into the second database times the kill window. */
    write_config(clean, docs, 1, ", \"state_every\": 40");
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(run_sync(clean, 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &z);
    full_us = (z.tv_sec - a.tv_sec) * 1000000L + (z.tv_nsec - a.tv_nsec) / 1000;
    write_config(crash, docs, 0, ", \"state_every\": 40");

    for (int gen = 0, tries = 0; (killed < KILLS || progressed < KILLS / 3) && tries < 200;
         tries++) {
        long at = full_us / 8 + rand() % (full_us * 3 / 4 > 1 ? full_us * 3 / 4 : 1);
        if (run_sync(crash, at) == -SIGKILL) {
            /* killed before its schema was made, the database has no tables yet */
            long long n = pg_count(0, "SELECT (to_regclass('ctxgate.documents') IS NULL)::int")
                              ? -1
                              : pg_count(0, "SELECT count(*) + coalesce(sum(epoch), 0)"
                                            " FROM ctxgate.documents");
            killed++;
            progressed += n != last;
            last = n;
        } else {
            gen = !gen;
            write_tree(docs, gen);
        }
    }
    cr_assert_geq(killed, KILLS, "only %d runs were killed mid-sync", killed);
    cr_assert_geq(progressed, KILLS / 3, "only %d kills fell between checkpoints", progressed);
    cr_assert_eq(run_sync(crash, 0), 0);
    cr_assert_eq(run_sync(clean, 0), 0);
    same(pg_docs(0), pg_docs(1), "documents after kills and after a clean sync");
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"),
                 pg_count(1, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"));
    /* a run killed after it was recorded is closed as interrupted by the
     * next (a kill during start-up leaves no run) */
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.sync_runs WHERE status = 'running'"),
                 0);
    cr_assert_geq(pg_count(0, "SELECT count(*) FROM ctxgate.sync_runs"
                              " WHERE status = 'interrupted'"), KILLS / 3);
    tu_rmrf(crash);
    tu_rmrf(clean);
    free(crash);
    free(clean);
}

/* ---- workers: `ctxgate agent` claiming jobs from the cluster schedule ---- */

/* start_agent - `ctxgate agent` on dir's config; its log in dir/agent-N.log. */
static pid_t start_agent(const char *dir, int n)
{
    char cfg[4200], log[4200];
    pid_t pid;

    snprintf(cfg, sizeof cfg, "%s/ctxgate.json", dir);
    snprintf(log, sizeof log, "%s/agent-%d.log", dir, n);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen(log, "w", stderr);
        execl(F.bin, F.bin, "--config", cfg, "agent", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_agent(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "agent %d ended with %d", (int)pid,
              status);
}

/* wait_on - until sql on db answers at least want (polled), or timeout_s;
 * returns the last answer. A broken connection is reset. */
static long long wait_on(PGconn *db, const char *sql, long long want, int timeout_s)
{
    long long n = 0;

    for (int i = 0; i < timeout_s * 20; i++) {
        /* (before the first worker made the schema, the query fails: 0) */
        PGresult *r = PQexec(db, sql);
        if (PQstatus(db) != CONNECTION_OK)
            PQreset(db);
        n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : 0;
        PQclear(r);
        if (n >= want)
            break;
        usleep(50000);
    }
    return n;
}

static long long wait_for(const char *sql, long long want, int timeout_s)
{
    return wait_on(F.db[0], sql, want, timeout_s);
}

/* worker - "host:pid", as the worker names itself. */
static void worker(char *out, size_t len, pid_t pid)
{
    char host[64] = "";

    gethostname(host, sizeof host - 1);
    snprintf(out, len, "%s:%ld", host, (long)pid);
}

Test(cluster, two_agents_sync_each_source_exactly_once_per_schedule)
{
    char *dir = tu_tmpdir("cla"), text[8192], rel[64];
    pid_t a, b;

    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 30; i++) {
            snprintf(rel, sizeof rel, "s%d/f%02d.md", s, i);
            snprintf(text, sizeof text, "---\ntitle: S%d F%d\nallow: [group:g%d]\n---\n"
                     "Source %d file %d.\n", s, i, s, s, i);
            tu_write(dir, rel, text);
        }
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"sources\": ["
             "{\"name\": \"s0\", \"type\": \"files\", \"path\": \"s0\", \"schedule\": %s},"
             "{\"name\": \"s1\", \"type\": \"files\", \"path\": \"s1\", \"schedule\": %s},"
             "{\"name\": \"s2\", \"type\": \"files\", \"path\": \"s2\", \"schedule\": %s},"
             "{\"name\": \"s3\", \"type\": \"files\", \"path\": \"s3\", \"schedule\": %s}],"
             " \"agent\": {\"embed\": \"\"}, \"cluster\": {\"conninfo\": \"%s dbname=%s\","
             " \"password_env\": \"CTX_TEST_PGPASSWORD\", \"lease_s\": 5}}",
             "{\"sync\": \"1h\", \"permissions\": \"\", \"full\": \"\"}",
             "{\"sync\": \"1h\", \"permissions\": \"\", \"full\": \"\"}",
             "{\"sync\": \"1h\", \"permissions\": \"\", \"full\": \"\"}",
             "{\"sync\": \"1h\", \"permissions\": \"\", \"full\": \"\"}", pgtest_conninfo(),
             F.names[0]);
    tu_write(dir, "ctxgate.json", text);

    /* (the cluster's embed job, off in these configs, is test_replica_vectors') */
    a = start_agent(dir, 1);
    b = start_agent(dir, 2);
    cr_assert_eq(wait_for("SELECT count(*) FROM ctxgate.jobs WHERE last_status = 'ok'", 4, 60),
                 4, "the four sync jobs did not all finish");
    /* Two more claim rounds of both workers: nothing else is due. */
    sleep(3);
    stop_agent(a);
    stop_agent(b);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.jobs"), 4);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.jobs WHERE runs = 1"), 4,
                 "a job ran more than once");
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.sync_runs"), 4);
    cr_assert_eq(pg_count(0, "SELECT count(DISTINCT source) FROM ctxgate.sync_runs"
                             " WHERE status = 'ok'"), 4);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.jobs WHERE lease_owner IS NOT NULL"),
                 0, "a lease was left behind");
    /* due again an hour after it started (the schedule), not sooner */
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.jobs"
                             " WHERE next_at >= last_start + 3600000"), 4);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"), 120);
    tu_rmrf(dir);
    free(dir);
}

#define SLOW_N 300

/* write_slow - dir/slow.sh, a slow exec source: SLOW_N records in stream
 * "s", a STATE every 10 of them, then a pause of pause seconds. */
static void write_slow(const char *dir, const char *pause)
{
    char text[8192];

    snprintf(text, sizeof text,
             "#!/bin/sh\nread -r req\n"
             "case \"$req\" in *'\"discover\"'*)\n"
             "  printf '%%s\\n' '{\"type\":\"HELLO\",\"protocol\":1}'"
             " '{\"type\":\"STREAM\",\"name\":\"s\"}' '{\"type\":\"DONE\"}'; exit 0;;\nesac\n"
             "n=$(printf '%%s' \"$req\" | sed -n 's/.*\"n\": *\\([0-9][0-9]*\\).*/\\1/p')\n"
             "i=${n:-0}\necho '{\"type\":\"HELLO\",\"protocol\":1}'\n"
             "while [ $i -lt %d ]; do\n  i=$((i + 1))\n"
             "  echo \"{\\\"type\\\":\\\"RECORD\\\",\\\"stream\\\":\\\"s\\\","
             "\\\"id\\\":\\\"r$i\\\","
             "\\\"title\\\":\\\"R $i\\\",\\\"body\\\":\\\"body $i\\\","
             "\\\"acl\\\":{\\\"allow\\\":[\\\"group:g\\\"]}}\"\n"
             "  if [ $((i %% 10)) -eq 0 ]; then\n"
             "    echo \"{\\\"type\\\":\\\"STATE\\\",\\\"stream\\\":\\\"s\\\","
             "\\\"state\\\":{\\\"n\\\":$i}}\"\n    sleep %s\n  fi\ndone\n"
             "echo '{\"type\":\"DONE\"}'\n", SLOW_N, pause);
    tu_write(dir, "slow.sh", text);
}

Test(cluster, worker_killed_mid_job_the_other_resumes_after_the_lease)
{
    char *dir = tu_tmpdir("clw"), text[8192], wa[128], wb[128], sql[512];
    long long at_kill, lease_until, records;
    pid_t a, b;
    int status;

    write_slow(dir, "0.1");
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"sources\": [{\"name\": \"slow\", \"type\": \"exec\","
             " \"command\": [\"/bin/sh\", \"slow.sh\"],"
             " \"schedule\": {\"sync\": \"1h\", \"permissions\": \"\", \"full\": \"\"}}],"
             " \"agent\": {\"embed\": \"\"}, \"cluster\": {\"conninfo\": \"%s dbname=%s\","
             " \"password_env\": \"CTX_TEST_PGPASSWORD\", \"lease_s\": 5}}",
             pgtest_conninfo(), F.names[0]);
    tu_write(dir, "ctxgate.json", text);

    a = start_agent(dir, 1);
    worker(wa, sizeof wa, a);
    cr_assert_geq(wait_for("SELECT count(*) FROM ctxgate.documents", 50, 60), 50,
                  "the first worker committed nothing");
    kill(a, SIGKILL);
    waitpid(a, &status, 0);
    at_kill = pg_count(0, "SELECT count(*) FROM ctxgate.documents");
    cr_assert_lt(at_kill, SLOW_N, "the job ended before the kill; make slow.sh slower");
    cr_assert_eq(at_kill % 10, 0, "a batch was committed without its STATE");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ctxgate.jobs WHERE lease_owner = '%s'", wa);
    cr_assert_eq(pg_count(0, sql), 1, "the killed worker %s held no lease: %s", wa,
                 pg_text(0, "SELECT * FROM ctxgate.jobs"));
    lease_until = pg_count(0, "SELECT lease_until FROM ctxgate.jobs");

    b = start_agent(dir, 2);
    worker(wb, sizeof wb, b);
    cr_assert_eq(wait_for("SELECT count(*) FROM ctxgate.jobs WHERE last_status = 'ok'", 1, 120),
                 1, "the second worker did not complete the job");
    stop_agent(b);
    /* taken only once the lease had run out, and resumed from the checkpoint */
    cr_assert_geq(pg_count(0, "SELECT last_start FROM ctxgate.jobs"), lease_until);
    cr_assert_eq(pg_count(0, "SELECT runs FROM ctxgate.jobs"), 2);
    snprintf(sql, sizeof sql, "SELECT records FROM ctxgate.sync_runs WHERE status = 'ok'"
             " AND worker = '%s'", wb);
    records = pg_count(0, sql);
    cr_assert_eq(records, SLOW_N - at_kill, "the second run read %lld records, not the %lld"
                 " after the checkpoint", records, SLOW_N - at_kill);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"),
                 SLOW_N);
    cr_assert_eq(pg_count(0, "SELECT count(DISTINCT ext_id) FROM ctxgate.documents"), SLOW_N);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.sync_runs WHERE status = 'running'"),
                 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---- a PostgreSQL restart under a running worker ---- */

/* pg_server - `sh scripts/pg.sh start dir`: a server of the test's own,
 * its conninfo into conninfo. */
static void pg_server(const char *dir, char *conninfo, size_t len)
{
    char cmd[512], line[1024];
    FILE *f;

    snprintf(cmd, sizeof cmd, "sh scripts/pg.sh start %s 2>/dev/null", dir);
    cr_assert_not_null(f = popen(cmd, "r"));
    conninfo[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "CTX_TEST_PG='"), *q;
        if (p && (q = strchr(p + 13, '\'')))
            snprintf(conninfo, len, "%.*s", (int)(q - p - 13), p + 13);
    }
    cr_assert_eq(pclose(f), 0, "%s failed", cmd);
    cr_assert(conninfo[0], "no CTX_TEST_PG from %s", cmd);
}

Test(cluster, postgres_restart_mid_job_the_worker_reconnects_and_completes_it)
{
    char *dir = tu_tmpdir("clr"), text[8192], srv[64], conninfo[512], cmd[1024];
    const char *kw[] = {"dbname", "password", NULL}, *val[3];
    long long records;
    PGconn *db;
    pid_t a;

    snprintf(srv, sizeof srv, "/tmp/ctxclr.%ld", (long)getpid());
    pg_server(srv, conninfo, sizeof conninfo);
    val[0] = conninfo;
    val[1] = pgtest_password();
    val[2] = NULL;
    db = PQconnectdbParams(kw, val, 1);
    cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
    write_slow(dir, "0.2");
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"sources\": [{\"name\": \"slow\", \"type\": \"exec\","
             " \"command\": [\"/bin/sh\", \"slow.sh\"],"
             " \"schedule\": {\"sync\": \"1h\", \"permissions\": \"\", \"full\": \"\"}}],"
             " \"agent\": {\"embed\": \"\"}, \"cluster\": {\"conninfo\": \"%s\","
             " \"password_env\": \"CTX_TEST_PGPASSWORD\", \"lease_s\": 30}}", conninfo);
    tu_write(dir, "ctxgate.json", text);

    a = start_agent(dir, 1);
    cr_assert_geq(wait_on(db, "SELECT count(*) FROM ctxgate.documents", 50, 60), 50,
                  "the worker committed nothing");
    snprintf(cmd, sizeof cmd, "%s/usr/lib/postgresql/15/bin/pg_ctl -D %s/data -m fast -w"
             " -l %s/server.log restart >/dev/null 2>&1",
             getuid() == 0 ? "runuser -u postgres -- " : "", srv, srv);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    /* The lease is 30 s: done well before it means the worker freed and
     * took its job again itself once it had connected again. */
    cr_assert_eq(wait_on(db, "SELECT count(*) FROM ctxgate.jobs WHERE last_status = 'ok'", 1,
                         25), 1, "the job was not completed after the restart");
    stop_agent(a);
    cr_assert_eq(wait_on(db, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted",
                         SLOW_N, 1), SLOW_N);
    cr_assert_eq(wait_on(db, "SELECT count(DISTINCT ext_id) FROM ctxgate.documents", SLOW_N, 1),
                 SLOW_N);
    cr_assert_geq(wait_on(db, "SELECT runs FROM ctxgate.jobs", 2, 1), 2);
    records = wait_on(db, "SELECT records FROM ctxgate.sync_runs WHERE status = 'ok'", 1, 1);
    cr_assert(records > 0 && records < SLOW_N, "the run after the restart read %lld records:"
              " not resumed from the checkpoint", records);
    PQfinish(db);
    snprintf(cmd, sizeof cmd, "sh scripts/pg.sh stop %s", srv);
    cr_assert_eq(system(cmd), 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---- the sync guards hold in cluster mode as they do embedded ---- */

Test(cluster, mass_delete_is_held_in_postgres_until_confirmed)
{
    char *dir = tu_tmpdir("clg"), docs[4200], rel[64], *out;
    int status;

    snprintf(docs, sizeof docs, "%s/docs", dir);
    for (int i = 0; i < 40; i++) {
        snprintf(rel, sizeof rel, "f%02d.md", i);
        tu_write(docs, rel, "---\nallow: [group:g]\n---\nA page.\n");
    }
    write_config(dir, docs, 0, NULL);
    cr_assert_eq(run_sync(dir, 0), 0);
    for (int i = 0; i < 30; i++) {
        char p[4300];
        snprintf(p, sizeof p, "%s/f%02d.md", docs, i);
        unlink(p);
    }
    /* 30 of 40 is over the default share (half, past 10 deletes): held,
     * nothing deleted, and held again by the next unconfirmed run. */
    cr_assert_neq(run_sync(dir, 0), 0);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"), 40);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.sync_runs WHERE status = 'held'"
                             " AND held_reason LIKE '%guard.max_delete_share%'"), 1);
    cr_assert_neq(run_sync(dir, 0), 0);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"), 40);
    out = tu_cli(dir, "sync --confirm", 1, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"), 10);
    cr_assert_eq(pg_count(0, "SELECT deletes FROM ctxgate.sync_runs ORDER BY id DESC LIMIT 1"),
                 30);
    tu_rmrf(dir);
    free(dir);
}

/*
 * The cluster's sink sends records ahead of their answers (pipeline mode)
 * and counts them when it reads the answers; the runner flushes before a
 * checkpoint and before a stream ends, so the guard on documents newly
 * readable by everyone holds a cluster sync as it holds an embedded one:
 * the batches before the limit commit, the one past it does not, until
 * confirmed. (An exec source, so no ACL message flushes on the way.)
 */
Test(cluster, opening_more_than_max_everyone_to_everyone_is_held_in_postgres)
{
    char *dir = tu_tmpdir("cle"), text[8192], *out;
    ctx_buf b = CTX_BUF_INIT;
    int status;

    tu_write(dir, "src.sh", "#!/bin/sh\nread -r req\n"
             "case \"$req\" in *'\"discover\"'*)\n"
             "  printf '%s\\n' '{\"type\":\"HELLO\",\"protocol\":1}'"
             " '{\"type\":\"STREAM\",\"name\":\"s\"}' '{\"type\":\"DONE\"}'; exit 0;;\nesac\n"
             "cat \"$(dirname \"$0\")/lines.jsonl\"\n");
    ctx_buf_puts(&b, "{\"type\":\"HELLO\",\"protocol\":1}\n");
    for (int i = 1; i <= 13; i++) {
        ctx_buf_printf(&b, "{\"type\":\"RECORD\",\"stream\":\"s\",\"id\":\"d%d\",\"title\":"
                       "\"T\",\"body\":\"zebra %d\",\"acl\":{\"allow\":[\"everyone\"]}}\n", i,
                       i);
        if (i == 3)
            ctx_buf_puts(&b, "{\"type\":\"STATE\",\"stream\":\"s\",\"state\":{\"n\":1}}\n");
    }
    ctx_buf_puts(&b, "{\"type\":\"STATE\",\"stream\":\"s\",\"state\":{\"n\":2}}\n"
                     "{\"type\":\"DONE\"}\n");
    tu_write(dir, "lines.jsonl", b.data);
    ctx_buf_free(&b);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"sources\": [{\"name\": \"s\", \"type\": \"exec\","
             " \"command\": [\"/bin/sh\", \"%s/src.sh\"], \"guard\": {\"max_everyone\": 5}}],"
             " \"cluster\": {\"conninfo\": \"%s dbname=%s\", \"password_env\":"
             " \"CTX_TEST_PGPASSWORD\", \"lease_s\": 5}}", dir, pgtest_conninfo(), F.names[0]);
    tu_write(dir, "ctxgate.json", text);
    /* d1..d3 commit with the first checkpoint; d4..d13 pass 5 and stay out. */
    cr_assert_neq(run_sync(dir, 0), 0);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"), 3);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.checkpoints"
                             " WHERE state = '{\"n\":1}'"), 1);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.sync_runs WHERE status = 'held'"
                             " AND held_reason LIKE '%guard.max_everyone%'"), 1);
    out = tu_cli(dir, "sync --confirm", 1, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    cr_assert_eq(pg_count(0, "SELECT count(*) FROM ctxgate.documents d JOIN ctxgate.acl_sets s"
                             " ON s.id = d.acl WHERE s.everyone AND NOT d.deleted"), 13);
    tu_rmrf(dir);
    free(dir);
}
