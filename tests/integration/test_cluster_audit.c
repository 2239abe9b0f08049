/*
 * test_cluster_audit.c - audit and token budgets in cluster mode, through
 * the real binary against the PostgreSQL of scripts/pg.sh: two search
 * replicas (`ctxgate serve` with cluster.replica, each its own data_dir)
 * answer, and `ctxgate audit` / `usage` and the console's endpoints on
 * either show both's records; a budget spent on one replica is refused on
 * the other; PostgreSQL stopped and started under a serving replica loses
 * no record (they wait in its local log) while a budgeted user is refused
 * (fail closed); `ctxgate mcp` ships its records as it exits. Each test
 * makes its own database (or server).
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

#define SECRET "audit-secret-0123456789-abcdefghijklmnop"
#define ADMIN "audit-admin-0123456789-abcdefghijklmnopqrstuv"
#define ISS "ctxgate-test"
#define AUD "ctxgate-api"
#define ALICE "alice@northwind.test"
#define BOB "bob@northwind.test"
#define CAROL "carol@northwind.test"

static struct {
    PGconn *admin, *db;
    char name[64];           /* the database this test made */
    char tag[16];            /* in this test's replica names (slots are server-wide) */
    char *root;              /* the test's directory */
    char own[512];           /* conninfo of a server of the test's own, or "" */
    char srv[64];            /* that server's directory */
    pid_t pids[4];           /* serves still running (killed by teardown) */
    char why[1024];
} F;

static void setup(void)
{
    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    F.admin = pgtest_connect(NULL, F.why, sizeof F.why);
    cr_assert(F.admin != NULL, "%s", F.why);
    snprintf(F.tag, sizeof F.tag, "%ld", (long)getpid());
    F.db = pgtest_db_make(F.admin, "caud", F.name, sizeof F.name, F.why, sizeof F.why);
    cr_assert(F.db != NULL, "%s", F.why);
    F.root = tu_tmpdir("claudit");
}

static void teardown(void)
{
    char cmd[256];

    pgtest_db_drop(F.admin, F.db, F.name);
    PQfinish(F.admin);
    for (int i = 0; i < 4; i++)
        if (F.pids[i] > 0) {
            kill(F.pids[i], SIGKILL);
            waitpid(F.pids[i], NULL, 0);
        }
    if (F.srv[0]) {
        snprintf(cmd, sizeof cmd, "sh scripts/pg.sh stop %s", F.srv);
        if (system(cmd))
            fprintf(stderr, "%s failed\n", cmd);
    }
    if (F.root) {
        tu_rmrf(F.root);
        free(F.root);
    }
}

TestSuite(cluster_audit, .init = setup, .fini = teardown, .timeout = 300);

/* ---- nodes ---- */

/* node - F.root/name/ctxgate.json: the demo source; replica "" for the
 * writer; extra more members of the config ("" for none). Returns the
 * directory. */
static char *node(const char *name, const char *replica, const char *extra)
{
    static char dirs[6][4200];
    static int n;
    char *dir = dirs[n++ % 6], demo[4096], cluster[2048], text[16384];

    cr_assert(realpath("examples/demo", demo));
    snprintf(dir, sizeof dirs[0], "%s/%s", F.root, name);
    snprintf(cluster, sizeof cluster,
             "\"cluster\": {\"conninfo\": \"%s%s%s\", \"password_env\": \"CTX_TEST_PGPASSWORD\""
             "%s%s%s%s, \"max_lag_s\": 3600}",
             F.own[0] ? F.own : pgtest_conninfo(), F.own[0] ? "" : " dbname=",
             F.own[0] ? "" : F.name, *replica ? ", \"replica\": \"" : "", replica,
             *replica ? F.tag : "", *replica ? "\"" : "");
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\","
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}],"
             " \"agents\": [{\"name\": \"desk\", \"sources\": \"*\", \"labels\": \"*\","
             "  \"max_k\": 5, \"max_tokens\": 200}],"
             " \"auth\": {\"issuer\": \"" ISS "\", \"audience\": \"" AUD "\","
             "  \"hs256_secret_env\": \"CTXGATE_TEST_SECRET\"},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2, \"user_rate\": 0,"
             "  \"agent_rate\": 0}%s%s%s, %s}",
             demo, *extra ? ", " : "", extra, "", cluster);
    tu_write(dir, "ctxgate.json", text);
    return dir;
}

/* cli - `ctxgate ARGS` in dir: its stdout (new); asserts it exits 0. */
static char *cli(const char *dir, const char *args)
{
    int status;
    char *out = tu_cli(dir, args, 0, &status);

    cr_assert_eq(status, 0, "ctxgate %s in %s failed: %s", args, dir, out);
    return out;
}

/* serve - `ctxgate serve --no-agent` on replica dir, once it is ready. */
static pid_t serve(const char *dir, int *port)
{
    pid_t pid = tu_serve(dir, "CTXGATE_TEST_SECRET=" SECRET " CTXGATE_ADMIN_TOKEN=" ADMIN,
                         "--no-agent", port);

    for (int i = 0; i < 4; i++)
        if (F.pids[i] <= 0) {
            F.pids[i] = pid;
            break;
        }
    cr_assert(*port > 0, "serve did not start (see %s/serve.log)", dir);
    for (int i = 0; i < 600; i++) {
        tu_reply r = tu_call(*port, "GET", "/readyz", NULL, NULL, NULL);
        long st = r.status;
        tu_reply_free(&r);
        if (st == 200)
            return pid;
        usleep(100000);
    }
    cr_assert_fail("replica %s never caught up", dir);
    return pid;
}

static int stop(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    for (int i = 0; i < 4; i++)
        if (F.pids[i] == pid)
            F.pids[i] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* search - POST /v1/search as user through desk: the status; *tokens the
 * answer's tokens (when 200), *body the reply (new) when body. */
static long search(int port, const char *user, const char *query, int64_t *tokens, char **body)
{
    char *tok = tu_jwt(SECRET, ISS, AUD, user, "desk", 3600), req[512];
    tu_reply r;
    long st;

    snprintf(req, sizeof req, "{\"query\": \"%s\", \"mode\": \"lexical\"}", query);
    r = tu_call(port, "POST", "/v1/search", tok, req, NULL);
    free(tok);
    st = r.status;
    if (tokens) {
        json_t *a = st == 200 ? json_loads(r.body, 0, NULL) : NULL;
        *tokens = a ? json_integer_value(json_object_get(a, "tokens")) : 0;
        json_decref(a);
    }
    if (body)
        *body = r.body;
    else
        tu_reply_free(&r);
    return st;
}

/* admin_get - GET path with the admin token: the JSON answer (new). */
static json_t *admin_get(int port, const char *path)
{
    const char *hd[] = {"Authorization: Bearer " ADMIN, NULL};
    tu_reply r = tu_call(port, "GET", path, NULL, NULL, hd);
    json_t *j;

    cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
    j = json_loads(r.body, 0, NULL);
    cr_assert_not_null(j, "%s", r.body);
    tu_reply_free(&r);
    return j;
}

/* db_count - one number from conn (F.db when NULL). */
static long long db_count(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn ? conn : F.db, sql);
    long long n = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r))
        n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* wait_count - wait (up to secs) until sql counts want; the last count. */
static long long wait_count(PGconn *conn, const char *sql, long long want, int secs)
{
    long long n = -1;

    for (int i = 0; i < secs * 10; i++) {
        if ((n = db_count(conn, sql)) == want)
            break;
        usleep(100000);
    }
    return n;
}

/* count_by - how many records of arr (an audit array) each value of field
 * has, as sorted compact JSON into buf. */
static void count_by(json_t *arr, const char *field, char *buf, size_t len)
{
    json_t *m = json_object(), *e;
    size_t i;

    json_array_foreach(arr, i, e) {
        const char *name = json_string_value(json_object_get(e, field));
        json_t *c = json_object_get(m, name ? name : "-");
        json_object_set_new(m, name ? name : "-",
                            json_integer(c ? json_integer_value(c) + 1 : 1));
    }
    buf[0] = '\0';
    {
        char *dump = json_dumps(m, JSON_SORT_KEYS | JSON_COMPACT);
        snprintf(buf, len, "%s", dump);
        free(dump);
    }
    json_decref(m);
}

/* ---- the tests ---- */

Test(cluster_audit, two_replicas_audit_to_postgres_and_either_reads_both)
{
    char *w = node("w", "", ""), *a = node("a", "ra", ""), *b = node("b", "rb", "");
    char want[256], got[512], *out;
    int pa, pb;
    pid_t sa, sb;
    json_t *j;

    free(cli(w, "sync"));
    sa = serve(a, &pa);
    sb = serve(b, &pb);
    cr_assert_eq(search(pa, ALICE, "vacation policy", NULL, NULL), 200);
    cr_assert_eq(search(pa, ALICE, "budget", NULL, NULL), 200);
    cr_assert_eq(search(pa, BOB, "incident", NULL, NULL), 200);
    cr_assert_eq(search(pb, BOB, "office move", NULL, NULL), 200);
    cr_assert_eq(search(pb, CAROL, "salary bands", NULL, NULL), 200);

    /* From either data_dir, every node's records (the CLI ships its own
     * data_dir's first; the servers ship theirs as they write). */
    snprintf(want, sizeof want, "{\"ra%s\":3,\"rb%s\":2}", F.tag, F.tag);
    cr_assert_eq(wait_count(NULL, "SELECT count(*) FROM ctxgate.audit", 5, 30), 5);
    for (int k = 0; k < 2; k++) {
        out = cli(k ? b : a, "audit --json");
        j = json_loads(out, 0, NULL);
        cr_assert_not_null(j, "%s", out);
        count_by(j, "node", got, sizeof got);
        cr_assert_str_eq(got, want);
        count_by(j, "user", got, sizeof got);
        cr_assert_str_eq(got, "{\"" ALICE "\":2,\"" BOB "\":2,\"" CAROL "\":1}");
        json_decref(j);
        free(out);
    }
    out = cli(b, "audit --json --user " ALICE);
    j = json_loads(out, 0, NULL);
    cr_assert_eq(json_array_size(j), 2, "%s", out);
    cr_assert_gt(json_integer_value(json_object_get(json_array_get(j, 0), "tokens")), 0);
    cr_assert_eq(strlen(json_string_value(json_object_get(json_array_get(j, 0),
                                                           "query_sha256"))), 64);
    json_decref(j);
    free(out);
    out = cli(a, "usage --json");
    j = json_loads(out, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(j, "users"), BOB), "requests")), 2, "%s",
                 out);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(j, "agents"), "desk"), "requests")), 5,
                 "%s", out);
    json_decref(j);
    free(out);

    /* The console's endpoints: b shows a's records, a request just made included. */
    cr_assert_eq(search(pa, CAROL, "plan 2027", NULL, NULL), 200);
    snprintf(want, sizeof want, "{\"ra%s\":4,\"rb%s\":2}", F.tag, F.tag);
    j = admin_get(pa, "/v1/admin/audit?limit=100");
    count_by(j, "node", got, sizeof got);
    cr_assert_str_eq(got, want, "a's answer holds the request it just made");
    json_decref(j);
    j = admin_get(pb, "/v1/admin/audit?limit=100");
    count_by(j, "node", got, sizeof got);
    cr_assert_str_eq(got, want);
    json_decref(j);
    j = admin_get(pa, "/v1/admin/usage?since=0");
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(j, "users"), CAROL), "requests")), 2);
    json_decref(j);
    cr_assert_eq(stop(sa), 0);
    cr_assert_eq(stop(sb), 0);
    /* nothing twice: PostgreSQL holds exactly the records of both logs */
    cr_assert_eq(db_count(NULL, "SELECT count(*) FROM ctxgate.audit"), 6);
    cr_assert_eq(db_count(NULL, "SELECT count(DISTINCT origin) FROM ctxgate.audit"), 2);
}

Test(cluster_audit, a_budget_spent_on_one_replica_is_refused_on_the_other)
{
    static const char budgets[] =
        "\"budgets\": [{\"user\": \"" ALICE "\", \"tokens\": 1, \"per\": \"day\"},"
        " {\"agent\": \"desk\", \"tokens\": 100000000, \"per\": \"hour\"}]";
    char *w = node("w", "", ""), *a = node("a", "ra", budgets), *b = node("b", "rb", budgets);
    char *body = NULL, *out;
    int64_t spent = 0;
    int pa, pb;
    pid_t sa, sb;
    json_t *j, *e;
    size_t i;
    int seen = 0;

    free(cli(w, "sync"));
    sa = serve(a, &pa);
    sb = serve(b, &pb);
    cr_assert_eq(search(pa, ALICE, "vacation policy", &spent, NULL), 200);
    cr_assert_gt(spent, 0);
    /* once a's record is in PostgreSQL, b refuses alice: one budget */
    cr_assert_eq(wait_count(NULL, "SELECT count(*) FROM ctxgate.usage_window WHERE kind = 0",
                            2, 30), 2);
    cr_assert_eq(search(pb, ALICE, "budget", NULL, &body), 429, "%s", body);
    cr_assert(strstr(body, "budget_exhausted") && strstr(body, "budgets[0]"), "%s", body);
    free(body);
    cr_assert_eq(search(pa, ALICE, "budget", NULL, NULL), 429);
    /* others go on, on both */
    cr_assert_eq(search(pb, BOB, "budget", NULL, NULL), 200);
    cr_assert_eq(search(pa, BOB, "incident", NULL, NULL), 200);
    /* b's budgets show what a served */
    j = admin_get(pb, "/v1/admin/budgets");
    json_array_foreach(json_object_get(j, "budgets"), i, e)
        if (!strcmp(json_string_value(json_object_get(e, "name")), ALICE)) {
            cr_assert_eq(json_integer_value(json_object_get(e, "used")), spent);
            cr_assert_eq(json_integer_value(json_object_get(e, "remaining")), 0);
            seen = 1;
        }
    cr_assert(seen, "no state for alice's budget");
    json_decref(j);
    cr_assert_eq(stop(sa), 0);
    cr_assert_eq(stop(sb), 0);
    out = cli(b, "usage --json");
    j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "%s", out);
    seen = 0;
    json_array_foreach(json_object_get(j, "budgets"), i, e)
        if (!strcmp(json_string_value(json_object_get(e, "name")), ALICE))
            seen = json_integer_value(json_object_get(e, "used")) == spent;
    cr_assert(seen, "ctxgate usage does not show alice's spent budget: %s", out);
    json_decref(j);
    free(out);
    /* the refusals are audited too, as outcome "budget", one per replica */
    cr_assert_eq(db_count(NULL, "SELECT count(*) FROM ctxgate.audit WHERE outcome = 'budget'"),
                 2);
}

/* pg_server - `sh scripts/pg.sh start F.srv`: a server of the test's own. */
static void pg_server(void)
{
    char cmd[512], line[1024];
    FILE *f;

    snprintf(F.srv, sizeof F.srv, "/tmp/ctxcla.%ld", (long)getpid());
    snprintf(cmd, sizeof cmd, "sh scripts/pg.sh start %s 2>/dev/null", F.srv);
    cr_assert_not_null(f = popen(cmd, "r"));
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "CTX_TEST_PG='"), *q;
        if (p && (q = strchr(p + 13, '\'')))
            snprintf(F.own, sizeof F.own, "%.*s", (int)(q - p - 13), p + 13);
    }
    cr_assert_eq(pclose(f), 0, "%s failed", cmd);
    cr_assert(F.own[0], "no CTX_TEST_PG from %s", cmd);
}

/* pg_ctl - stop, or start again with the options pg.sh gave it, the
 * test's own server. */
static void pg_ctl(int start)
{
    char cmd[2048], port[16];
    const char *p = strstr(F.own, "port=");

    cr_assert_not_null(p);
    snprintf(port, sizeof port, "%.*s", (int)strcspn(p + 5, " "), p + 5);
    if (start)
        snprintf(cmd, sizeof cmd,
                 "%s/usr/lib/postgresql/15/bin/pg_ctl -D %s/data -w -t 30 -l %s/server.log"
                 " -o \"-c listen_addresses=127.0.0.1 -p %s -c unix_socket_directories='%s'"
                 " -c fsync=off -c password_encryption=scram-sha-256 -c wal_level=logical"
                 " -c max_replication_slots=32 -c max_wal_senders=32\" start >/dev/null 2>&1",
                 getuid() == 0 ? "runuser -u postgres -- " : "", F.srv, F.srv, port, F.srv);
    else
        snprintf(cmd, sizeof cmd,
                 "%s/usr/lib/postgresql/15/bin/pg_ctl -D %s/data -m fast -w stop"
                 " >/dev/null 2>&1", getuid() == 0 ? "runuser -u postgres -- " : "", F.srv);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(cluster_audit, postgres_stopped_then_started_loses_no_record_and_budgets_fail_closed)
{
    static const char budgets[] =
        "\"budgets\": [{\"user\": \"" CAROL "\", \"tokens\": 100000, \"per\": \"day\"}]";
    const char *kw[] = {"dbname", "password", NULL}, *val[3];
    char *w, *r, path[4400];
    PGconn *own;
    ctx_store *log;
    ctx_error err;
    long long n;
    pid_t srv;
    int port;

    pg_server();
    w = node("w", "", "");
    r = node("r", "rr", budgets);
    free(cli(w, "sync"));
    srv = serve(r, &port);
    cr_assert_eq(search(port, ALICE, "vacation policy", NULL, NULL), 200);
    cr_assert_eq(search(port, CAROL, "budget", NULL, NULL), 200);
    val[0] = F.own;
    val[1] = pgtest_password();
    val[2] = NULL;
    own = PQconnectdbParams(kw, val, 1);
    cr_assert_eq(PQstatus(own), CONNECTION_OK, "%s", PQerrorMessage(own));
    cr_assert_eq(wait_count(own, "SELECT count(*) FROM ctxgate.audit", 2, 30), 2);
    PQfinish(own);

    pg_ctl(0);
    /* Still answering: the records wait in the local audit log... */
    cr_assert_eq(search(port, ALICE, "budget", NULL, NULL), 200);
    cr_assert_eq(search(port, BOB, "incident", NULL, NULL), 200);
    cr_assert_eq(search(port, ALICE, "office move", NULL, NULL), 200);
    /* ...but a budget cannot be counted: carol is refused, not served */
    cr_assert_neq(search(port, CAROL, "budget", NULL, NULL), 200);
    pg_ctl(1);

    /* Shipped once it is back: every record of the local log, once. */
    own = PQconnectdbParams(kw, val, 1);
    cr_assert_eq(PQstatus(own), CONNECTION_OK, "%s", PQerrorMessage(own));
    cr_assert_eq(wait_count(own, "SELECT count(*) FROM ctxgate.audit", 6, 60), 6,
                 "records were lost or doubled (see %s/serve.log)", r);
    cr_assert_eq(db_count(own, "SELECT count(*) FROM ctxgate.audit WHERE outcome = 'error'"
                               " AND \"user\" = '" CAROL "'"), 1);
    cr_assert_eq(db_count(own, "SELECT count(*) FROM ctxgate.audit WHERE \"user\" = '" ALICE
                               "' AND outcome = 'ok'"), 3);
    cr_assert_eq(db_count(own, "SELECT count(*) FROM ctxgate.audit WHERE \"user\" = '" BOB
                               "' AND outcome = 'ok'"), 1);
    /* and carol is served again once her count can be read */
    for (int i = 0; i < 100 && search(port, CAROL, "budget", NULL, NULL) != 200; i++)
        usleep(100000);
    cr_assert_eq(search(port, CAROL, "budget", NULL, NULL), 200);
    cr_assert_eq(stop(srv), 0);
    n = db_count(own, "SELECT count(*) FROM ctxgate.audit");
    cr_assert_geq(n, 8);
    snprintf(path, sizeof path, "%s/data/ctxgate.db", r);
    cr_assert_eq(store_audit_open(path, &log, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit"), n,
                 "PostgreSQL holds exactly the local log's records");
    store_close(log);
    PQfinish(own);
}

Test(cluster_audit, a_cluster_worker_prunes_the_audit_log_past_audit_retain)
{
    char *w = node("w", "", "\"audit\": {\"retain\": \"30d\"}"), sql[1024];
    long long now = (long long)ctx_now_ms(), day = 86400000LL;

    free(cli(w, "sync")); /* the schema */
    for (int i = 0; i < 5; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO ctxgate.audit (origin, log_id, node, at, action,"
                 " doc_ids, tokens, latency_us, outcome) VALUES ('o', %d, 'n', %lld, 'search',"
                 " '[]', 1, 1, 'ok')", i, i < 3 ? now - 40 * day : now - day);
        cr_assert_eq(pgtest_exec(F.db, F.why, sizeof F.why, "%s", sql), 0, "%s", F.why);
    }
    snprintf(sql, sizeof sql, "INSERT INTO ctxgate.usage_window VALUES (0, 'ann', 3600000,"
             " %lld, 5), (0, 'ann', 3600000, %lld, 5)", now - 3 * day, now - now % 3600000);
    cr_assert_eq(pgtest_exec(F.db, F.why, sizeof F.why, "%s", sql), 0, "%s", F.why);
    /* a worker with nothing left to claim prunes, then (--once) exits */
    free(cli(w, "agent --once"));
    cr_assert_eq(db_count(NULL, "SELECT count(*) FROM ctxgate.audit"), 2);
    cr_assert_eq(db_count(NULL, "SELECT min(log_id) FROM ctxgate.audit"), 3);
    cr_assert_eq(db_count(NULL, "SELECT count(*) FROM ctxgate.usage_window"), 1,
                 "the window three days old goes, the current one stays");
}

/* mcp_stdio - `ctxgate mcp` on dir's data_dir as user through desk, one
 * search per query; how many were answered and refused for a budget. */
static void mcp_stdio(const char *dir, const char *user, int queries, int *ok, int *refused)
{
    ctx_buf lines = CTX_BUF_INIT, cmd = CTX_BUF_INIT;
    char *out, *l, bin[4096];
    int status;

    cr_assert(realpath(tu_build_dir(), bin));
    ctx_buf_puts(&lines, " '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                         "\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":"
                         "{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}'"
                         " '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}'");
    for (int id = 2; id < 2 + queries; id++)
        ctx_buf_printf(&lines, " '{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\","
                       "\"params\":{\"name\":\"search\",\"arguments\":{\"query\":"
                       "\"vacation policy\"}}}'", id);
    ctx_buf_printf(&cmd, "cd %s && printf '%%s\\n'%s | CTXGATE_USER=%s CTXGATE_AGENT=desk"
                   " %s/ctxgate --config ctxgate.json mcp 2>>mcp.log", dir, lines.data, user,
                   bin);
    {
        FILE *p = popen(cmd.data, "r");
        size_t len = 0;
        FILE *m = open_memstream(&out, &len);
        char buf[4096];
        size_t n;
        cr_assert_not_null(p);
        while ((n = fread(buf, 1, sizeof buf, p)) > 0)
            fwrite(buf, 1, n, m);
        status = pclose(p);
        fclose(m);
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: %s", cmd.data, out);
    *ok = *refused = 0;
    for (l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        json_t *m = json_loads(l, 0, NULL), *res = json_object_get(m, "result");
        if (json_integer_value(json_object_get(m, "id")) >= 2) {
            const char *text = json_string_value(json_object_get(
                json_array_get(json_object_get(res, "content"), 0), "text"));
            if (!json_is_true(json_object_get(res, "isError")))
                (*ok)++;
            else if (text && strstr(text, "budgets[0]"))
                (*refused)++;
        }
        json_decref(m);
    }
    free(out);
    ctx_buf_free(&lines);
    ctx_buf_free(&cmd);
}

Test(cluster_audit, mcp_stdio_ships_its_records_at_exit_and_shares_the_budget)
{
    static const char budgets[] =
        "\"budgets\": [{\"user\": \"" ALICE "\", \"tokens\": 1, \"per\": \"day\"}]";
    char *w = node("w", "", ""), *a = node("a", "ma", budgets), *b = node("b", "mb", budgets);
    char sql[256];
    int ok, refused;

    free(cli(w, "sync"));
    free(cli(a, "follow --once"));
    free(cli(b, "follow --once"));
    /* one process: its first answer spends the budget, the second is refused
     * (its own tokens count before they reach PostgreSQL) */
    mcp_stdio(a, ALICE, 2, &ok, &refused);
    cr_assert_eq(ok, 1);
    cr_assert_eq(refused, 1);
    /* gone, its records are in PostgreSQL: shipped as it stopped */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ctxgate.audit WHERE node = 'ma%s'", F.tag);
    cr_assert_eq(db_count(NULL, sql), 2);
    /* another node's process refuses alice at once; bob is served */
    mcp_stdio(b, ALICE, 1, &ok, &refused);
    cr_assert_eq(ok, 0);
    cr_assert_eq(refused, 1);
    mcp_stdio(b, BOB, 1, &ok, &refused);
    cr_assert_eq(ok, 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ctxgate.audit WHERE node = 'mb%s'", F.tag);
    cr_assert_eq(db_count(NULL, sql), 2);
}
