/*
 * test_replica.c - search replicas against the PostgreSQL of scripts/pg.sh
 * (wal_level = logical), through the real binary: `ctxgate sync` in
 * cluster mode writes the system of record; `ctxgate follow` and `ctxgate
 * serve` with cluster.replica copy it and follow its changes by logical
 * decoding into their own data_dir. A replica answers every user exactly
 * as the embedded mode does on the same data, through edits, deletions,
 * ACL changes and revoked memberships; a replica killed with kill -9
 * catches up with nothing lost or applied twice; a replica that cannot
 * follow answers 503 past its lag bound. Each test makes its own database
 * and drops its replicas' slots.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/store.h"
#include "tests/lib/pgtest.h"
#include "tests/lib/testutil.h"

#define SECRET "test-secret-0123456789-abcdefghijklmnop"
#define ISS "ctxgate-test"
#define AUD "ctxgate-api"

static struct {
    PGconn *admin, *db;
    char name[64];           /* the database this test made */
    char tag[16];            /* in this test's replica names (slots are server-wide) */
    char bin[4096];
    char *root;              /* the test's directory (tu_tmpdir's) */
    char own[512];           /* conninfo of a server of the test's own, or "" */
    char why[1024];
} F;

static void setup(void)
{
    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    F.admin = pgtest_connect(NULL, F.why, sizeof F.why);
    cr_assert(F.admin != NULL, "%s", F.why);
    snprintf(F.tag, sizeof F.tag, "%ld", (long)getpid());
    F.db = pgtest_db_make(F.admin, "repl", F.name, sizeof F.name, F.why, sizeof F.why);
    cr_assert(F.db != NULL, "%s", F.why);
    snprintf(F.bin, sizeof F.bin, "%s/ctxgate", tu_build_dir());
    {
        char real[4096];
        cr_assert(realpath(F.bin, real) != NULL && access(real, X_OK) == 0, "%s not built",
                  F.bin);
        snprintf(F.bin, sizeof F.bin, "%s", real);
    }
    F.root = tu_tmpdir("replica");
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

TestSuite(replica, .init = setup, .fini = teardown, .timeout = 600);

/* ---- set-up of writers, replicas and the embedded twin ---- */

/* node - F.root/name/ctxgate.json over the sources (JSON list items);
 * mode "embedded", "writer", or a replica's name (made unique per test). */
static char *node(const char *name, const char *mode, const char *sources, int max_lag_s)
{
    static char dirs[8][4200];
    static int n;
    char *dir = dirs[n++ % 8], cluster[2048] = "", text[16384];

    snprintf(dir, sizeof dirs[0], "%s/%s", F.root, name);
    if (strcmp(mode, "embedded"))
        snprintf(cluster, sizeof cluster, ", \"cluster\": {\"conninfo\": \"%s%s%s\","
                 " \"password_env\": \"CTX_TEST_PGPASSWORD\"%s%s%s%s, \"max_lag_s\": %d}",
                 F.own[0] ? F.own : pgtest_conninfo(), F.own[0] ? "" : " dbname=",
                 F.own[0] ? "" : F.name, strcmp(mode, "writer") ? ", \"replica\": \"" : "",
                 strcmp(mode, "writer") ? mode : "", strcmp(mode, "writer") ? F.tag : "",
                 strcmp(mode, "writer") ? "\"" : "", max_lag_s);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"chunk\": {\"max_tokens\": 48, \"overlap_tokens\": 8},"
             " \"sources\": [%s],"
             " \"agents\": [{\"name\": \"desk\", \"sources\": \"*\", \"labels\": \"*\","
             "  \"max_k\": 50, \"max_tokens\": 1000000}],"
             " \"auth\": {\"issuer\": \"" ISS "\", \"audience\": \"" AUD "\","
             "  \"hs256_secret_env\": \"CTXGATE_TEST_SECRET\"},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2}%s}",
             sources, cluster);
    tu_write(dir, "ctxgate.json", text);
    return dir;
}

/* demo_copy - a copy of examples/demo under F.root/name (to edit). */
static char *demo_copy(const char *name)
{
    static char path[4200];
    char cmd[9000];

    snprintf(path, sizeof path, "%s/%s", F.root, name);
    snprintf(cmd, sizeof cmd, "cp -r examples/demo %s", path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    return path;
}

/* run - `ctxgate ARGS` in dir; its exit status. */
static int run(const char *dir, const char *args)
{
    int status;
    char *out = tu_cli(dir, args, 1, &status);

    if (status)
        fprintf(stderr, "ctxgate %s in %s: %s\n", args, dir, out);
    free(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* start - `ctxgate ARGS` in dir in the background (stderr to dir/log). */
static pid_t start(const char *dir, const char *args)
{
    char cmd[9000];
    pid_t pid;

    snprintf(cmd, sizeof cmd, "cd %s && exec %s --config ctxgate.json %s >>log 2>&1", dir, F.bin,
             args);
    cr_assert_neq(pid = fork(), -1);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int reap(pid_t pid, int sig)
{
    int status;

    if (sig)
        kill(pid, sig);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* ---- what a node holds and answers ---- */

static const char *const queries[] = {"budget", "leave policy", "salary bands", "incident",
                                      "plan 2027", "office move", "investigation"};
static const char *const users[] = {"user:alice@northwind.test", "user:carol@northwind.test",
                                    "user:bob@northwind.test"};

/* answers - every query's JSON answer for user in dir, without the local
 * doc ids and sync times (another store's numbering and clock), new. */
static char *answers(const char *dir, const char *user)
{
    ctx_buf b = CTX_BUF_INIT;

    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        char args[512], *out, *dump;
        int status;
        json_t *j, *res, *r;
        json_error_t je;
        size_t i;
        snprintf(args, sizeof args, "search --as %s --k 50 --json '%s'", user, queries[q]);
        out = tu_cli(dir, args, 0, &status);
        cr_assert_eq(status, 0, "search in %s failed", dir);
        j = json_loads(out, 0, &je);
        cr_assert_not_null(j, "%s: %s", je.text, out);
        free(out);
        res = json_object_get(j, "results");
        json_array_foreach(res, i, r) {
            json_object_del(r, "doc_id");
            json_object_del(r, "acl_synced_at");
        }
        dump = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
        ctx_buf_printf(&b, "%s: %s\n", queries[q], dump);
        free(dump);
        json_decref(j);
    }
    return ctx_buf_steal(&b);
}

/* store_rows - one text column of sql over dir's store, a line per row, new. */
static char *store_rows(const char *dir, const char *sql)
{
    char path[4200];
    ctx_store *st;
    char *t;

    snprintf(path, sizeof path, "%s/data", dir);
    st = tu_store(path);
    t = tu_text(st, sql);
    store_close(st);
    return t;
}

/* holdings - what a store holds for search: live documents with their
 * hash and ACL lists, chunks, and the principals' memberships. */
static char *holdings(const char *dir)
{
    return store_rows(dir,
                      "SELECT group_concat(x, char(10)) FROM ("
                      " SELECT 'doc ' || s.name || ' ' || d.stream || ' ' || d.ext_id || ' ' ||"
                      "  d.hash || ' ' || coalesce((SELECT group_concat(name, ',') FROM (SELECT"
                      "  p.name FROM acl_entries e JOIN principals p ON p.id = e.principal_id"
                      "  WHERE e.acl_id = d.acl_id ORDER BY e.deny, 1)), '-') || ' chunks ' ||"
                      "  (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id) AS x"
                      " FROM documents d JOIN sources s ON s.id = d.source_id WHERE d.deleted = 0"
                      " UNION ALL SELECT 'member ' || g.name || ' ' || m.name FROM memberships y"
                      "  JOIN principals g ON g.id = y.group_id"
                      "  JOIN principals m ON m.id = y.member_id"
                      " ORDER BY 1)");
}

static long long live_docs(const char *dir)
{
    char *t = store_rows(dir, "SELECT count(*) FROM documents WHERE deleted = 0");
    long long n = atoll(t);

    free(t);
    return n;
}

static void same(char *a, char *b, const char *what)
{
    size_t i = 0;

    while (a[i] && a[i] == b[i])
        i++;
    cr_assert(!strcmp(a, b), "%s differ at byte %zu:\n%.400s\n---\n%.400s", what, i,
              a + (i > 100 ? i - 100 : 0), b + (i > 100 ? i - 100 : 0));
    free(a);
    free(b);
}

/* same_answers - a and b answer every user alike. */
static void same_answers(const char *a, const char *b)
{
    for (size_t u = 0; u < sizeof users / sizeof users[0]; u++) {
        char what[128];
        snprintf(what, sizeof what, "answers for %s", users[u]);
        same(answers(a, users[u]), answers(b, users[u]), what);
    }
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

/* sees - 1 when user finds the document titled title with query in dir. */
static int sees(const char *dir, const char *user, const char *query, const char *title)
{
    char args[512], *out;
    int status, yes;

    snprintf(args, sizeof args, "search --as %s --k 50 --json '%s'", user, query);
    out = tu_cli(dir, args, 0, &status);
    cr_assert_eq(status, 0);
    yes = strstr(out, title) != NULL;
    free(out);
    return yes;
}

/* ---- the tests ---- */

Test(replica, answers_as_the_embedded_mode_and_follows_edits_deletes_and_revokes)
{
    char src[4400], *docs = demo_copy("docs"), *w, *e, *r;
    char path[4400];

    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}",
             docs);
    w = node("w", "writer", src, 30);
    e = node("e", "embedded", src, 30);
    r = node("r", "ra", src, 30);
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(e, "sync"), 0);
    cr_assert_eq(run(r, "follow --once"), 0);
    same(holdings(e), holdings(r), "the stores");
    same_answers(e, r);
    cr_assert(sees(r, users[1], "Q3 2026 results", "Q3 2026 financial results"));
    cr_assert(sees(r, users[0], "salary bands", "Salary bands 2026"));

    /* An edit, a deletion, a file's ACL narrowed, a group member removed. */
    snprintf(path, sizeof path, "%s/finance/office-move-costs.md", docs);
    tu_write(docs, "engineering/new-runbook.md", "# Incident runbook\n\nPage the on-call"
             " engineer first, then open an incident channel.\n");
    tu_write(docs, "finance/q3-2026-results.txt.acl.json", "{\"allow\":"
             " [\"user:ivan@northwind.test\"], \"labels\": [\"confidential\"]}");
    cr_assert_eq(unlink(path), 0);
    {
        char *p, *text;
        size_t len;
        snprintf(path, sizeof path, "%s/_principals.json", docs);
        cr_assert_eq(ctx_read_file(path, &text, &len), 0);
        p = strstr(text, "{\"id\": \"group:hr-leads\", \"members\":"
                         " [\"user:alice@northwind.test\"]}");
        cr_assert_not_null(p, "the demo's hr-leads group changed; update this test");
        memcpy(strstr(p, "\"user:alice@northwind.test\""), "\"user:henry@northwind.test\"", 27);
        tu_write(docs, "_principals.json", text);
        ctx_free(text);
    }
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(e, "sync"), 0);
    cr_assert_eq(run(r, "follow --once"), 0);
    same(holdings(e), holdings(r), "the stores after the changes");
    same_answers(e, r);
    /* revoked: carol no longer reads the Q3 results, alice (out of hr-leads) HR's bands */
    cr_assert(!sees(r, users[1], "Q3 2026 results", "Q3 2026 financial results"));
    cr_assert(!sees(r, users[0], "salary bands", "Salary bands 2026"));
    cr_assert(sees(r, users[2], "incident", "Incident runbook"));
    /* no document twice, none lost */
    cr_assert_eq(live_docs(r), pg_count("SELECT count(*) FROM ctxgate.documents WHERE NOT"
                                        " deleted"));
}

/* tree - n files under F.root/name, generation gen: each file's text and
 * reader depend on gen, and every seventh is gone in generation 2. */
static char *tree(const char *name, int n, int gen)
{
    static char dirs[4][4200];
    static int k;
    char *dir = dirs[k++ % 4], rel[64], text[1024];

    snprintf(dir, sizeof dirs[0], "%s/%s", F.root, name);
    /* four users; the team's members change in generation 2 */
    tu_write(dir, "_principals.json", gen == 1
             ? "{\"users\": [{\"id\": \"user:u0@t.test\"}, {\"id\": \"user:u1@t.test\"},"
               " {\"id\": \"user:u2@t.test\"}, {\"id\": \"user:u3@t.test\"}], \"groups\":"
               " [{\"id\": \"group:team\", \"members\": [\"user:u0@t.test\","
               " \"user:u1@t.test\"]}]}"
             : "{\"users\": [{\"id\": \"user:u0@t.test\"}, {\"id\": \"user:u1@t.test\"},"
               " {\"id\": \"user:u2@t.test\"}, {\"id\": \"user:u3@t.test\"}], \"groups\":"
               " [{\"id\": \"group:team\", \"members\": [\"user:u0@t.test\","
               " \"user:u3@t.test\"]}]}");
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "f%03d/doc%04d.md", i % 10, i);
        if (gen == 2 && i % 7 == 0) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, rel);
            unlink(path);
            continue;
        }
        snprintf(text, sizeof text, "---\ntitle: %s doc %d\nallow: [%s%d@t.test]\n---\n"
                 "Document %d of %s, generation %d. Quarterly figures, roadmap notes and"
                 " the on-call rota for team %d. %s\n", name, i,
                 i % 11 == 0 ? "group:team, user:u" : "user:u",
                 (i + (gen == 2 && i % 3 == 0)) % 4, i, name, gen, i % 5,
                 gen == 2 && i % 2 ? "Edited: the rota moved to Tuesdays." : "");
        tu_write(dir, rel, text);
    }
    return dir;
}

Test(replica, killed_replica_catches_up_and_replicas_equal_a_fresh_rebuild_under_two_writers)
{
    char srcs[9000], *a = tree("a", 1000, 1), *b = tree("b", 1000, 1), *w, *r1, *r2, *r3;
    pid_t sa, sb, f1, f2;
    unsigned seed = (unsigned)getpid();

    snprintf(srcs, sizeof srcs, "{\"name\": \"a\", \"type\": \"files\", \"path\": \"%s\"},"
             " {\"name\": \"b\", \"type\": \"files\", \"path\": \"%s\"}", a, b);
    w = node("w", "writer", srcs, 30);
    r1 = node("r1", "ra", srcs, 30);
    r2 = node("r2", "rb", srcs, 30);
    /* Both replicas start on an empty database and follow from the start. */
    cr_assert_eq(run(r1, "follow --once"), 0);
    f1 = start(r1, "follow");
    f2 = start(r2, "follow");
    for (int gen = 1; gen <= 2; gen++) {
        if (gen == 2) {
            tree("a", 1000, 2);
            tree("b", 1000, 2);
        }
        /* two sources syncing at once, while r1 is killed and started again */
        sa = start(w, "sync a");
        sb = start(w, "sync b");
        for (int i = 0; i < 4; i++) {
            usleep(30000 + (useconds_t)(rand_r(&seed) % 220000));
            reap(f1, SIGKILL);
            f1 = start(r1, "follow");
        }
        cr_assert_eq(reap(sa, 0), 0, "sync a failed (see %s/log)", w);
        cr_assert_eq(reap(sb, 0), 0, "sync b failed (see %s/log)", w);
    }
    reap(f1, SIGKILL);
    cr_assert_eq(reap(f2, SIGTERM), 0, "follow should stop cleanly on SIGTERM");
    /* caught up; then a replica made now, from PostgreSQL alone */
    cr_assert_eq(run(r1, "follow --once"), 0);
    cr_assert_eq(run(r2, "follow --once"), 0);
    r3 = node("r3", "rc", srcs, 30);
    cr_assert_eq(run(r3, "follow --once"), 0);
    cr_assert_eq(live_docs(r1), pg_count("SELECT count(*) FROM ctxgate.documents WHERE NOT"
                                         " deleted"));
    cr_assert_eq(live_docs(r1), 2 * (1000 - 143));
    same(holdings(r3), holdings(r1), "the killed replica's store and a fresh rebuild");
    same(holdings(r3), holdings(r2), "the other replica's store and a fresh rebuild");
    for (int u = 0; u < 4; u++) {
        char user[64];
        snprintf(user, sizeof user, "user:u%d@t.test", u);
        for (int q = 0; q < 2; q++) {
            char args[256], *x, *y;
            int st1, st2;
            snprintf(args, sizeof args, "search --as %s --k 50 '%s'", user,
                     q ? "rota Tuesdays" : "quarterly roadmap");
            x = tu_cli(r1, args, 0, &st1);
            y = tu_cli(r2, args, 0, &st2);
            cr_assert(st1 == 0 && st2 == 0);
            cr_assert(strstr(x, " doc "), "%s finds nothing: %s", user, x);
            same(x, y, "the two replicas' answers");
        }
    }
}

/* hold - take the replica's slot (a replication connection streaming from
 * it), so that its follower cannot read: NULL until it could. */
static PGconn *hold(const char *replica)
{
    const char *kw[3] = {"dbname", "password", NULL};
    const char *val[3];
    char conninfo[1024], sql[256];

    snprintf(conninfo, sizeof conninfo, "%s dbname=%s replication=database", pgtest_conninfo(),
             F.name);
    val[0] = conninfo;
    val[1] = pgtest_password();
    val[2] = NULL;
    snprintf(sql, sizeof sql, "START_REPLICATION SLOT ctxgate_%s%s LOGICAL 0/0"
             " (proto_version '1', publication_names 'ctxgate_replicas')", replica, F.tag);
    for (int i = 0; i < 200; i++) {
        PGconn *c = PQconnectdbParams(kw, val, 1);
        PGresult *r;
        cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
        r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_COPY_BOTH) {
            PQclear(r);
            return c;
        }
        PQclear(r);
        PQfinish(c);
        usleep(50000);     /* the follower had it for a moment */
    }
    cr_assert_fail("could not take slot ctxgate_%s%s", replica, F.tag);
    return NULL;
}

/* status_of - the status of GET path (or a search as user when user). */
static long status_of(int port, const char *path, const char *user, char **body)
{
    char *tok = user ? tu_jwt(SECRET, ISS, AUD, user, "desk", 3600) : NULL;
    tu_reply r = user ? tu_call(port, "POST", "/v1/search", tok, "{\"query\": \"budget\"}", NULL)
                      : tu_call(port, "GET", path, NULL, NULL, NULL);
    long st = r.status;

    free(tok);
    if (body)
        *body = r.body;
    else
        tu_reply_free(&r);
    return st;
}

/* until - wait (up to 60 s) for the status of status_of to be want. */
static int until(int port, const char *path, const char *user, long want)
{
    for (int i = 0; i < 600; i++) {
        if (status_of(port, path, user, NULL) == want)
            return 1;
        usleep(100000);
    }
    return 0;
}

Test(replica, serve_is_ready_once_caught_up_shows_its_lag_and_fails_closed_past_the_bound)
{
    char src[4400], *docs = demo_copy("docs"), *w, *r, *body = NULL, env[256];
    PGconn *h;
    pid_t srv;
    int port;

    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}",
             docs);
    w = node("w", "writer", src, 30);
    r = node("r", "rs", src, 2);
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(r, "follow --once"), 0);
    cr_assert_eq(run(w, "sync --full"), 0);
    /* Started while its slot is held: never caught up, so not ready and no answers. */
    h = hold("rs");
    snprintf(env, sizeof env, "CTXGATE_TEST_SECRET=%s CTXGATE_ADMIN_TOKEN=%s", SECRET,
             "admin-token-0123456789-abcdefghijklmnopqrstuv");
    srv = tu_serve(r, env, "--no-agent", &port);
    cr_assert(port > 0, "serve did not start (see %s/serve.log)", r);
    cr_assert_eq(status_of(port, "/readyz", NULL, NULL), 503);
    cr_assert_eq(status_of(port, NULL, users[1], &body), 503);
    cr_assert(strstr(body, "replica_behind"), "%s", body);
    free(body);
    PQfinish(h);
    cr_assert(until(port, "/readyz", NULL, 200), "the replica never caught up");
    cr_assert_eq(status_of(port, NULL, users[1], &body), 200);
    cr_assert(strstr(body, "2027 budget plan"), "%s", body);
    free(body);
    {
        const char *hd[] = {"Authorization: Bearer admin-token-0123456789-abcdefghijklmnopqrstuv",
                            NULL};
        tu_reply m = tu_call(port, "GET", "/metrics", NULL, NULL, hd);
        cr_assert_eq(m.status, 200, "%s", m.body);
        cr_assert(strstr(m.body, "\nctxgate_replica_lag_seconds "), "%s", m.body);
        cr_assert(strstr(m.body, "\nctxgate_replica_ready 1\n"), "%s", m.body);
        tu_reply_free(&m);
    }
    /* A revoke reaches the serving replica. */
    tu_write(docs, "finance/_acl.json", "{\"allow\": [\"user:ivan@northwind.test\"]}");
    tu_write(docs, "finance/budget-plan-2027.md", "---\ntitle: 2027 budget plan\n---\nGone.\n");
    cr_assert_eq(run(w, "sync"), 0);
    for (int i = 0; i < 600; i++) {
        cr_assert_eq(status_of(port, NULL, users[1], &body), 200);
        if (!strstr(body, "2027 budget plan"))
            break;
        free(body);
        body = NULL;
        usleep(100000);
    }
    cr_assert(body && !strstr(body, "2027 budget plan"), "the revoke never reached the replica");
    free(body);
    /* It cannot follow: past max_lag_s (2 s) it answers 503, then again once it can. */
    h = hold("rs");
    cr_assert(until(port, NULL, users[1], 503), "a replica past its lag bound still answered");
    /* and says so to a balancer: not ready, while alive */
    cr_assert_eq(status_of(port, "/readyz", NULL, &body), 503);
    cr_assert(strstr(body, "replica_behind"), "%s", body);
    free(body);
    cr_assert_eq(status_of(port, "/healthz", NULL, NULL), 200);
    PQfinish(h);
    cr_assert(until(port, NULL, users[1], 200), "the replica never caught up again");
    cr_assert_eq(status_of(port, "/readyz", NULL, NULL), 200);
    cr_assert_eq(reap(srv, SIGTERM), 0);
}

/* pg_server - `sh scripts/pg.sh start dir`: a server of the test's own
 * (logical decoding on, as pg.sh starts every one), its conninfo in F.own. */
static void pg_server(const char *dir)
{
    char cmd[512], line[1024];
    FILE *f;

    snprintf(cmd, sizeof cmd, "sh scripts/pg.sh start %s 2>/dev/null", dir);
    cr_assert_not_null(f = popen(cmd, "r"));
    F.own[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "CTX_TEST_PG='"), *q;
        if (p && (q = strchr(p + 13, '\'')))
            snprintf(F.own, sizeof F.own, "%.*s", (int)(q - p - 13), p + 13);
    }
    cr_assert_eq(pclose(f), 0, "%s failed", cmd);
    cr_assert(F.own[0], "no CTX_TEST_PG from %s", cmd);
}

Test(replica, postgres_restart_while_following_the_replica_reconnects_and_loses_nothing)
{
    char srcs[4400], srv[64], cmd[1024], *a = tree("a", 1000, 1), *w, *r1, *r2;
    const char *kw[] = {"dbname", "password", NULL}, *val[3];
    PGconn *own;
    pid_t f, s;
    long long want;
    int i;

    snprintf(srv, sizeof srv, "/tmp/ctxrpr.%ld", (long)getpid());
    pg_server(srv);
    val[0] = F.own;
    val[1] = pgtest_password();
    val[2] = NULL;
    own = PQconnectdbParams(kw, val, 1);
    cr_assert_eq(PQstatus(own), CONNECTION_OK, "%s", PQerrorMessage(own));
    snprintf(srcs, sizeof srcs, "{\"name\": \"a\", \"type\": \"files\", \"path\": \"%s\"}", a);
    w = node("w", "writer", srcs, 30);
    r1 = node("r1", "ra", srcs, 30);
    cr_assert_eq(run(r1, "follow --once"), 0);
    f = start(r1, "follow");
    /* a sync, and PostgreSQL restarted under it and under the follower */
    s = start(w, "sync");
    usleep(150000);
    snprintf(cmd, sizeof cmd, "%s/usr/lib/postgresql/15/bin/pg_ctl -D %s/data -m fast -w"
             " -l %s/server.log restart >/dev/null 2>&1",
             getuid() == 0 ? "runuser -u postgres -- " : "", srv, srv);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    reap(s, 0);            /* it may have failed with the restart: sync again */
    cr_assert_eq(run(w, "sync"), 0);
    tree("a", 1000, 2);
    cr_assert_eq(run(w, "sync"), 0);
    PQfinish(own);
    own = PQconnectdbParams(kw, val, 1);
    cr_assert_eq(PQstatus(own), CONNECTION_OK, "%s", PQerrorMessage(own));
    {
        PGresult *r = PQexec(own, "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted");
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
        want = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    cr_assert_eq(want, 1000 - 143);
    /* the follower that saw the restart catches up by itself */
    for (i = 0; i < 600 && live_docs(r1) != want; i++)
        usleep(100000);
    cr_assert_eq(live_docs(r1), want, "the follower did not catch up after the restart (see"
                 " %s/log)", r1);
    cr_assert_eq(reap(f, SIGTERM), 0);
    cr_assert_eq(run(r1, "follow --once"), 0);
    r2 = node("r2", "rb", srcs, 30);
    cr_assert_eq(run(r2, "follow --once"), 0);
    same(holdings(r2), holdings(r1), "the store that followed a restart and a fresh rebuild");
    PQfinish(own);
    snprintf(cmd, sizeof cmd, "sh scripts/pg.sh stop %s", srv);
    cr_assert_eq(system(cmd), 0);
    F.own[0] = '\0';
}

/* follow_once - `follow --once` in dir: its counts of transactions applied
 * and skipped. */
static void follow_once(const char *dir, long long *applied, long long *skipped)
{
    int status;
    char *out = tu_cli(dir, "follow --once", 1, &status), *p;

    cr_assert_eq(status, 0, "follow --once in %s: %s", dir, out);
    cr_assert(p = strstr(out, "transactions applied"), "%s", out);
    while (p > out && p[-1] != '(')
        p--;
    cr_assert_eq(sscanf(p, "%lld transactions applied, %lld skipped", applied, skipped), 2,
                 "%s", out);
    free(out);
}

Test(replica, applied_but_unconfirmed_transactions_are_skipped_and_a_stale_store_refused)
{
    char src[4400], cmd[13000], *docs = demo_copy("docs"), *w, *x, *y, *z, *x2, path[4400];
    long long ya, ys, xa, xs;
    ctx_store *st;
    ctx_error err;

    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}",
             docs);
    w = node("w", "writer", src, 30);
    x = node("x", "rx", src, 30);
    y = node("y", "ry", src, 30);
    cr_assert_eq(run(w, "sync"), 0);
    follow_once(x, &xa, &xs);      /* x's slot starts here, */
    follow_once(y, &ya, &ys);      /* and y's, with nothing written in between */
    snprintf(cmd, sizeof cmd, "cp -r %s/data %s/x-then", x, F.root);
    cr_assert_eq(system(cmd), 0);
    for (int i = 0; i < 3; i++) {
        char rel[64], text[256];
        snprintf(rel, sizeof rel, "engineering/note-%d.md", i);
        snprintf(text, sizeof text, "# Note %d\n\nThe incident review moved to room %d.\n", i,
                 i + 4);
        tu_write(docs, rel, text);
        if (i == 1) {
            snprintf(path, sizeof path, "%s/finance/office-move-costs.md", docs);
            cr_assert_eq(unlink(path), 0);
        }
        cr_assert_eq(run(w, "sync"), 0);
    }
    follow_once(y, &ya, &ys);
    cr_assert(ya >= 3 && ys == 0, "y applied %lld, skipped %lld", ya, ys);
    /*
     * x's store becomes y's, under x's name: everything after x's slot
     * committed in the store but never confirmed to the server, as after a
     * kill between the two. x must skip it all, and move its slot on.
     */
    snprintf(cmd, sizeof cmd, "rm -rf %s/data && cp -r %s/data %s/data", x, y, x);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/data", x);
    st = tu_store(path);
    snprintf(cmd, sizeof cmd, "UPDATE replica_state SET slot = 'rx%s' WHERE slot = 'ry%s'", F.tag,
             F.tag);
    cr_assert_eq(store_exec(st, cmd, &err), 0, "%s", err.text);
    store_close(st);
    follow_once(x, &xa, &xs);
    cr_assert(xa == 0 && xs >= 3, "x applied %lld, skipped %lld: applied twice", xa, xs);
    follow_once(x, &xa, &xs);
    cr_assert(xa == 0 && xs == 0, "x's slot was not moved on (%lld, %lld)", xa, xs);
    z = node("z", "rz", src, 30);
    follow_once(z, &xa, &xs);
    same(holdings(z), holdings(x), "the store after the skip and a fresh rebuild");
    /* x's older store, behind what its slot was confirmed at: refused, not served */
    x2 = node("x2", "rx", src, 30);
    snprintf(cmd, sizeof cmd, "cp -r %s/x-then %s/data", F.root, x2);
    cr_assert_eq(system(cmd), 0);
    {
        int status;
        char *out = tu_cli(x2, "follow --once", 1, &status);
        cr_assert_neq(status, 0, "a store behind its slot was followed: %s", out);
        cr_assert(strstr(out, "rebuild the replica from an empty data_dir"), "%s", out);
        free(out);
    }
    /* a new replica name over another's store: refused, not copied over it */
    x2 = node("x3", "rq", src, 30);
    snprintf(cmd, sizeof cmd, "cp -r %s/data %s/data", y, x2);
    cr_assert_eq(system(cmd), 0);
    {
        int status;
        char *out = tu_cli(x2, "follow --once", 1, &status);
        cr_assert_neq(status, 0, "a copy went into another replica's store: %s", out);
        cr_assert(strstr(out, "give the replica an empty data_dir"), "%s", out);
        free(out);
    }
}

/* big_tree - five files under F.root/big of ~30 kB of hex words each (too
 * long and too random to stay in the row: PostgreSQL stores them out of
 * line, and pgoutput leaves them out of updates that do not change them),
 * readable by reader. */
static char *big_tree(const char *reader)
{
    static char dir[4200];
    unsigned seed = 7;

    snprintf(dir, sizeof dir, "%s/big", F.root);
    tu_write(dir, "_principals.json", "{\"users\": [{\"id\": \"user:u1@t.test\"},"
             " {\"id\": \"user:u2@t.test\"}]}");
    for (int i = 0; i < 5; i++) {
        ctx_buf b = CTX_BUF_INIT;
        char rel[32];
        ctx_buf_printf(&b, "---\ntitle: Ledger %d\nallow: [%s]\n---\nLedger %d entries:", i,
                       reader, i);
        for (int k = 0; k < 3000; k++)
            ctx_buf_printf(&b, " %08x", (unsigned)rand_r(&seed));
        ctx_buf_puts(&b, "\n");
        snprintf(rel, sizeof rel, "ledger-%d.md", i);
        tu_write(dir, rel, b.data);
        ctx_buf_free(&b);
    }
    return dir;
}

Test(replica, long_bodies_stored_out_of_line_follow_through_touches_and_acl_changes)
{
    char src[4400], *docs = big_tree("user:u1@t.test"), *w, *e, *r, *out;
    int status;

    snprintf(src, sizeof src, "{\"name\": \"big\", \"type\": \"files\", \"path\": \"%s\"}", docs);
    w = node("w", "writer", src, 30);
    e = node("e", "embedded", src, 30);
    r = node("r", "rl", src, 30);
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(r, "follow --once"), 0);
    cr_assert_eq(pg_count("SELECT (pg_relation_size(reltoastrelid) > 0)::int FROM pg_class"
                          " WHERE oid = 'ctxgate.documents'::regclass"), 1,
                 "the bodies are not stored out of line: make them longer");
    /* an unchanged sync (only marks seen), then only the readers change */
    cr_assert_eq(run(w, "sync --full"), 0);
    big_tree("user:u2@t.test");
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(e, "sync"), 0);
    cr_assert_eq(run(r, "follow --once"), 0);
    same(holdings(e), holdings(r), "the stores");
    out = tu_cli(r, "search --as user:u2@t.test --k 50 'Ledger entries'", 0, &status);
    cr_assert(status == 0 && strstr(out, "Ledger 3"), "%s", out);
    free(out);
    out = tu_cli(r, "search --as user:u1@t.test --k 50 'Ledger entries'", 0, &status);
    cr_assert(status == 0 && !strstr(out, "Ledger"), "a revoked reader still finds: %s", out);
    free(out);
    /* A writer changing only the title: the body is left out of the change
     * (stored out of line, untouched) and read by id. */
    cr_assert_eq(pg_count("WITH u AS (UPDATE ctxgate.documents SET title = 'Journal three',"
                          " hash = md5(random()::text) WHERE ext_id LIKE '%ledger-3%'"
                          " RETURNING 1) SELECT count(*) FROM u"), 1);
    cr_assert_eq(run(r, "follow --once"), 0);
    out = tu_cli(r, "search --as user:u2@t.test --k 50 'Journal three'", 0, &status);
    cr_assert(status == 0 && strstr(out, "Journal three"), "%s", out);
    free(out);
    {
        char *z = node("z", "rz", src, 30);
        cr_assert_eq(run(z, "follow --once"), 0);
        same(holdings(z), holdings(r), "the store and a fresh rebuild");
    }
}

/* readable - the external ids user may read by PostgreSQL's own tables
 * (allow through the user, "everyone" or a group reached through
 * memberships, no deny the same way), one per line between newlines. */
static char *readable(const char *user)
{
    const char *v[1] = {user};
    PGresult *r = PQexecParams(F.db,
                               "WITH RECURSIVE g(p) AS (SELECT $1::text COLLATE \"C\""
                               " UNION SELECT 'everyone' UNION SELECT m.principal"
                               " FROM ctxgate.memberships m JOIN g ON m.member = g.p)"
                               " SELECT d.ext_id FROM ctxgate.documents d WHERE NOT d.deleted"
                               " AND EXISTS (SELECT 1 FROM ctxgate.acl_entries e WHERE"
                               "  e.acl = d.acl AND e.effect = 'allow' AND e.principal IN"
                               "  (SELECT p FROM g))"
                               " AND NOT EXISTS (SELECT 1 FROM ctxgate.acl_entries e WHERE"
                               "  e.acl = d.acl AND e.effect = 'deny' AND e.principal IN"
                               "  (SELECT p FROM g))", 1, NULL, v, NULL, NULL, 0);
    ctx_buf b = CTX_BUF_INIT;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(F.db));
    ctx_buf_puts(&b, "\n");
    for (int i = 0; i < PQntuples(r); i++)
        ctx_buf_printf(&b, "%s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    return ctx_buf_steal(&b);
}

/* oracle - every answer of replica dir to every demo user and query is a
 * document PostgreSQL says that user may read; returns how many answers. */
static int oracle(const char *dir)
{
    static const char *const names[] = {"alice", "bob", "carol", "dave", "erin", "frank",
                                        "grace", "henry", "ivan", "priya", "mallory"};
    static const char *const qs[] = {"budget", "salary", "policy", "incident", "plan",
                                     "notes", "results", "leave", "roadmap", "investigation"};
    int seen = 0;

    for (size_t u = 0; u < sizeof names / sizeof names[0]; u++) {
        char user[96], *may;
        snprintf(user, sizeof user, "user:%s@northwind.test", names[u]);
        may = readable(user);
        for (size_t q = 0; q < sizeof qs / sizeof qs[0]; q++) {
            char args[256], *out;
            int status;
            json_t *j, *r;
            size_t i;
            snprintf(args, sizeof args, "search --as %s --k 50 --json '%s'", user, qs[q]);
            out = tu_cli(dir, args, 0, &status);
            cr_assert_eq(status, 0);
            cr_assert_not_null(j = json_loads(out, 0, NULL), "%s", out);
            json_array_foreach(json_object_get(j, "results"), i, r) {
                char id[600];
                snprintf(id, sizeof id, "\n%s\n",
                         json_string_value(json_object_get(r, "external_id")));
                cr_assert(strstr(may, id), "LEAK: %s got %s for '%s' from %s", user, id + 1,
                          qs[q], dir);
                seen++;
            }
            json_decref(j);
            free(out);
        }
        free(may);
    }
    return seen;
}

Test(replica, leak_oracle_on_two_replicas_before_and_after_revokes)
{
    char src[4400], *docs = demo_copy("docs"), *w, *r1, *r2, path[4400], *text, *p;
    size_t len;

    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}",
             docs);
    w = node("w", "writer", src, 30);
    r1 = node("r1", "ro", src, 30);
    r2 = node("r2", "rp", src, 30);
    cr_assert_eq(run(r2, "follow --once"), 0);     /* r2 from an empty database on */
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(r1, "follow --once"), 0);
    cr_assert_eq(run(r2, "follow --once"), 0);
    cr_assert_gt(oracle(r1), 50);
    cr_assert_gt(oracle(r2), 50);
    /* revokes: a folder to one user, a group emptied, a file denied to a group */
    tu_write(docs, "hr/_acl.json", "{\"allow\": [\"user:grace@northwind.test\"]}");
    snprintf(path, sizeof path, "%s/_principals.json", docs);
    cr_assert_eq(ctx_read_file(path, &text, &len), 0);
    cr_assert_not_null(p = strstr(text, "\"group:eng-oncall\", \"members\": ["));
    memcpy(strstr(p, "\"user:bob@northwind.test\""), "\"user:xyz@northwind.test\"", 25);
    tu_write(docs, "_principals.json", text);
    ctx_free(text);
    tu_write(docs, "finance/q3-2026-results.txt.acl.json", "{\"allow\": [\"group:finance\","
             " \"group:leadership\"], \"deny\": [\"user:priya@northwind.test\"]}");
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(r1, "follow --once"), 0);
    cr_assert_eq(run(r2, "follow --once"), 0);
    cr_assert_gt(oracle(r1), 50);
    cr_assert_gt(oracle(r2), 50);
    same(holdings(r1), holdings(r2), "the two replicas' stores");
}

Test(replica, an_idle_replica_moves_its_slot_past_writes_it_does_not_follow)
{
    char src[4400], *docs = demo_copy("docs"), *w, *r, *z, sql[256];
    PGresult *res;
    pid_t f;
    int i, past = 0;

    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}",
             docs);
    w = node("w", "writer", src, 30);
    r = node("r", "ri", src, 30);
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(r, "follow --once"), 0);
    f = start(r, "follow");
    /* writes outside the publication: nothing to apply, but WAL the slot holds */
    cr_assert(pgtest_exec(F.db, F.why, sizeof F.why, "CREATE TABLE other (x int); INSERT INTO"
                          " other SELECT generate_series(1, 5000)") == 0, "%s", F.why);
    res = PQexec(F.db, "SELECT pg_current_wal_lsn()::text");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(sql, sizeof sql, "SELECT (confirmed_flush_lsn >= '%s')::int FROM"
             " pg_replication_slots WHERE slot_name = 'ctxgate_ri%s'", PQgetvalue(res, 0, 0),
             F.tag);
    PQclear(res);
    for (i = 0; i < 300 && !past; i++) {
        past = pg_count(sql) == 1;
        if (!past)
            usleep(100000);
    }
    cr_assert(past, "the idle replica's slot stayed behind writes it does not follow");
    /* and nothing published after that is missed */
    tu_write(docs, "engineering/after.md", "# After the mark\n\nA runbook written later.\n");
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(reap(f, SIGTERM), 0);
    cr_assert_eq(run(r, "follow --once"), 0);
    z = node("z", "rj", src, 30);
    cr_assert_eq(run(z, "follow --once"), 0);
    same(holdings(z), holdings(r), "the store after a mark and a fresh rebuild");
    cr_assert(sees(r, users[2], "runbook written later", "After the mark"));
}

/* mcp_search - one search through `ctxgate mcp` (stdio) as user in dir:
 * the tools/call answer's line, new. */
static char *mcp_search(const char *dir, const char *user, const char *query)
{
    char cmd[9600], *out;
    int status;

    snprintf(cmd, sizeof cmd,
             "cd %s && printf '%%s\\n' '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
             "\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":"
             "{\"name\":\"t\",\"version\":\"1\"}}}' '{\"jsonrpc\":\"2.0\",\"method\":"
             "\"notifications/initialized\"}' '{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
             "\"tools/call\",\"params\":{\"name\":\"search\",\"arguments\":{\"query\":\"%s\"}}}'"
             " | CTXGATE_USER=%s CTXGATE_AGENT=desk %s --config ctxgate.json mcp 2>/dev/null"
             " | grep '\"id\":2'", dir, query, user + 5, F.bin);
    {
        FILE *p = popen(cmd, "r");
        ctx_buf b = CTX_BUF_INIT;
        char line[4096];

        cr_assert_not_null(p);
        while (fgets(line, sizeof line, p))
            ctx_buf_puts(&b, line);
        status = pclose(p);
        (void)status;
        out = b.data ? ctx_buf_steal(&b) : ctx_strdup("");
    }
    return out;
}

/*
 * A process that reads a replica's store without following it (`ctxgate
 * search`, `ctxgate mcp` over stdio) answers only while the store's
 * follower caught up within cluster.max_lag_s, as serve's own gate does:
 * a store nobody follows any more would otherwise serve permissions that
 * were revoked since.
 */
Test(replica, a_store_read_without_its_follower_is_refused_past_the_lag_bound)
{
    char src[4400], *docs = demo_copy("docs"), *w, *r, *out;
    int status;

    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}",
             docs);
    w = node("w", "writer", src, 30);
    r = node("r", "rl", src, 1);
    cr_assert_eq(run(w, "sync"), 0);
    /* no follower ever ran: nothing to answer from */
    out = tu_cli(r, "search --as user:alice@northwind.test budget", 1, &status);
    cr_assert_neq(status, 0, "%s", out);
    free(out);
    cr_assert_eq(run(r, "follow --once"), 0);
    cr_assert(sees(r, users[0], "salary bands", "Salary bands 2026"));
    out = mcp_search(r, users[0], "salary bands");
    cr_assert(strstr(out, "Salary bands 2026") && !strstr(out, "\"isError\":true"), "%s", out);
    free(out);
    /* nobody follows: past max_lag_s (1 s) both refuse, naming the fix */
    sleep(3);
    out = tu_cli(r, "search --as user:alice@northwind.test 'salary bands'", 1, &status);
    cr_assert_neq(status, 0, "%s", out);
    cr_assert(strstr(out, "replica_behind") && strstr(out, "cluster.max_lag_s") &&
              strstr(out, "ctxgate follow"), "%s", out);
    free(out);
    out = mcp_search(r, users[0], "salary bands");
    cr_assert(strstr(out, "\"isError\":true") && strstr(out, "replica_behind") &&
              !strstr(out, "Salary bands 2026"), "%s", out);
    free(out);
    /* caught up again: answers again */
    cr_assert_eq(run(r, "follow --once"), 0);
    cr_assert(sees(r, users[0], "salary bands", "Salary bands 2026"));
}
