/*
 * test_pgaudit.c - the cluster's audit log in the PostgreSQL of
 * scripts/pg.sh (pgaudit.h): local audit logs shipped exactly once with
 * their token counts, an older copy of a log shipping nothing twice, the
 * reports over every node, budgets over the cluster's counts, and the
 * retention. Each test makes its own database.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/util.h"
#include "indexer/pgaudit.h"
#include "retrieval/budget.h"
#include "tests/lib/pgtest.h"
#include "tests/lib/testutil.h"

#define HOUR 3600000LL
#define DAY (24 * HOUR)
/* 2026-03-04 10:30 UTC */
#define NOW (1772620200000LL)

static struct {
    PGconn *admin, *db;
    char name[64];
    char conninfo[1024];
    ctx_cluster_cfg cfg;
    char *dir;
    char why[1024];
} F;

static void setup(void)
{
    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    F.admin = pgtest_connect(NULL, F.why, sizeof F.why);
    cr_assert(F.admin != NULL, "%s", F.why);
    F.db = pgtest_db_make(F.admin, "aud", F.name, sizeof F.name, F.why, sizeof F.why);
    cr_assert(F.db != NULL, "%s", F.why);
    snprintf(F.conninfo, sizeof F.conninfo, "%s dbname=%s", pgtest_conninfo(), F.name);
    F.cfg.conninfo = F.conninfo;
    F.cfg.password_env = "CTX_TEST_PGPASSWORD";
    F.cfg.password_file = "";
    F.cfg.replica = "";
    F.cfg.lease_s = 30;
    F.dir = tu_tmpdir("pgaudit");
}

static void teardown(void)
{
    pgtest_db_drop(F.admin, F.db, F.name);
    PQfinish(F.admin);
    if (F.dir) {
        tu_rmrf(F.dir);
        free(F.dir);
    }
}

TestSuite(pgaudit, .init = setup, .fini = teardown, .timeout = 60);

static long long count(const char *sql)
{
    PGresult *r = PQexec(F.db, sql);
    long long n;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(F.db));
    n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* local_log - the audit log of F.dir/<name>/ctxgate.db (new). */
static ctx_store *local_log(const char *name)
{
    char path[4096];
    ctx_store *log;
    ctx_error err;

    snprintf(path, sizeof path, "%s/%s", F.dir, name);
    tu_write(path, "keep", "");
    snprintf(path, sizeof path, "%s/%s/ctxgate.db", F.dir, name);
    cr_assert_eq(store_audit_open(path, &log, &err), CTX_OK, "%s", err.text);
    return log;
}

static void put(ctx_store *log, int64_t at, const char *user, const char *agent,
                int64_t tokens, const char *outcome)
{
    store_audit_rec r = {at, user, agent, "search", NULL, "ab12", "[1,2]", tokens, 5, outcome};
    ctx_error err;

    cr_assert_eq(store_audit_put(log, &r, &err), CTX_OK, "%s", err.text);
}

static int64_t ship(pgstore *pg, ctx_store *log, const char *node, int64_t limit,
                    int64_t *mark)
{
    int64_t sent = -1, m = -1;
    ctx_error err;

    cr_assert_eq(pgaudit_ship(pg, log, node, limit, &m, &sent, &err), CTX_OK, "%s", err.text);
    if (mark)
        *mark = m;
    return sent;
}

Test(pgaudit, records_ship_once_with_their_counts_and_both_nodes_report)
{
    ctx_store *a = local_log("a"), *b = local_log("b");
    pgstore *pg, *pg2;
    ctx_error err;
    int64_t mark;
    json_t *out;
    report_audit_q q;

    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(pgstore_open(&F.cfg, &pg2, &err), CTX_OK, "%s", err.text);
    put(a, NOW, "ann", "desk", 100, "ok");
    put(a, NOW + 1, "bob", NULL, 40, "ok");
    put(a, NOW + 2, "ann", "desk", 0, "denied");
    put(b, NOW + 3, "ann", "desk", 7, "ok");
    /* two at a time, so the mark moves in steps */
    cr_assert_eq(ship(pg, a, "web1", 2, &mark), 2);
    cr_assert_eq(mark, 2);
    cr_assert_eq(ship(pg, a, "web1", 2, &mark), 1);
    cr_assert_eq(mark, 3);
    cr_assert_eq(ship(pg, a, "web1", 2, &mark), 0, "nothing new: nothing sent");
    cr_assert_eq(mark, 3);
    /* the second process sharing log a finds nothing to send either */
    cr_assert_eq(ship(pg2, a, "web1", 1000, NULL), 0);
    cr_assert_eq(ship(pg2, b, "web2", 1000, NULL), 1);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.audit"), 4);
    cr_assert_eq(count("SELECT count(DISTINCT origin) FROM ctxgate.audit"), 2);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.audit WHERE node = 'web1'"), 3);
    /* counts: an hour and a day, per user and per agent; none for 0 tokens */
    cr_assert_eq(count("SELECT tokens FROM ctxgate.usage_window WHERE kind = 0 AND"
                       " name = 'ann' AND span = 3600000"), 107);
    cr_assert_eq(count("SELECT tokens FROM ctxgate.usage_window WHERE kind = 1 AND"
                       " name = 'desk' AND span = 86400000"), 107);
    cr_assert_eq(count("SELECT tokens FROM ctxgate.usage_window WHERE kind = 0 AND"
                       " name = 'bob' AND span = 86400000"), 40);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.usage_window"), 6, "ann, desk, bob: x2");

    /* the mark lost (as if another process shipped and this one did not
     * see it): the records go again, and are neither stored nor counted twice */
    cr_assert_eq(count("SELECT count(*) FROM (SELECT 1 FROM ctxgate.audit_origins) x"), 2);
    PQclear(PQexec(F.db, "UPDATE ctxgate.audit_origins SET shipped = 0"));
    cr_assert_eq(ship(pg, a, "web1", 1000, &mark), 3);
    cr_assert_eq(ship(pg, b, "web2", 1000, NULL), 1);
    cr_assert_eq(mark, 3);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.audit"), 4);
    cr_assert_eq(count("SELECT tokens FROM ctxgate.usage_window WHERE kind = 0 AND"
                       " name = 'ann' AND span = 3600000"), 107);

    memset(&q, 0, sizeof q);
    cr_assert_eq(pgaudit_report(pg, &q, &out, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(json_array_size(out), 4);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "node")),
                     "web2", "newest (last to arrive) first");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 0), "tokens")), 7);
    cr_assert_eq(json_array_size(json_object_get(json_array_get(out, 0), "doc_ids")), 2);
    cr_assert(json_is_null(json_object_get(json_array_get(out, 1), "query")));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 1), "query_sha256")),
                     "ab12");
    json_decref(out);
    q.user = "ann";
    q.outcome = "ok";
    cr_assert_eq(pgaudit_report(pg, &q, &out, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(json_array_size(out), 2);
    json_decref(out);
    memset(&q, 0, sizeof q);
    q.limit = 1;
    cr_assert_eq(pgaudit_report(pg, &q, &out, &err), CTX_OK, "%s", err.text);
    q.before_id = json_integer_value(json_object_get(json_array_get(out, 0), "id"));
    json_decref(out);
    q.limit = 10;
    cr_assert_eq(pgaudit_report(pg, &q, &out, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(json_array_size(out), 3, "the page before the newest");
    json_decref(out);

    cr_assert_eq(pgaudit_usage(pg, 0, HOUR, &out, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(out, "users"), "ann"), "tokens")),
                 107);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(out, "users"), "ann"), "requests")),
                 3);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(out, "agents"), "desk"), "tokens")),
                 107);
    cr_assert_eq(json_array_size(json_object_get(out, "series")), 3, "ann, bob, desk");
    json_decref(out);
    pgstore_close(pg);
    pgstore_close(pg2);
    store_close(a);
    store_close(b);
}

/*
 * An older copy of a log (a backup restored: the same origin, ids behind
 * what PostgreSQL holds for it) ships none of its records again: they all
 * were; what it writes next goes under a new origin, so no id PostgreSQL
 * holds is reused.
 */
Test(pgaudit, an_older_copy_of_a_log_ships_nothing_twice_and_goes_on_under_a_new_origin)
{
    ctx_store *a = local_log("a");
    char cmd[8400], o1[PGAUDIT_ORIGIN_LEN], o2[PGAUDIT_ORIGIN_LEN];
    pgstore *pg;
    ctx_error err;
    int64_t mark;

    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    for (int i = 0; i < 3; i++)
        put(a, NOW + i, "ann", NULL, 1, "ok");
    cr_assert_eq(ship(pg, a, "web1", 1000, &mark), 3);
    cr_assert_eq(store_audit_origin(a, 0, o1, &err), CTX_OK, "%s", err.text);
    store_close(a);
    snprintf(cmd, sizeof cmd, "cp %s/a/ctxgate-audit.db %s/backup.db", F.dir, F.dir);
    cr_assert_eq(system(cmd), 0);
    a = local_log("a");
    put(a, NOW + 3, "ann", NULL, 1, "ok");
    put(a, NOW + 4, "ann", NULL, 1, "ok");
    cr_assert_eq(ship(pg, a, "web1", 1000, &mark), 2);
    cr_assert_eq(mark, 5);
    store_close(a);
    /* the backup put back: ids 1..3, the same origin */
    snprintf(cmd, sizeof cmd, "rm -f %s/a/ctxgate-audit.db* && cp %s/backup.db"
             " %s/a/ctxgate-audit.db", F.dir, F.dir, F.dir);
    cr_assert_eq(system(cmd), 0);
    a = local_log("a");
    cr_assert_eq(ship(pg, a, "web1", 1000, &mark), 0, "its records were all shipped");
    cr_assert_eq(mark, 3);
    cr_assert_eq(store_audit_origin(a, 0, o2, &err), CTX_OK, "%s", err.text);
    cr_assert_str_neq(o1, o2);
    put(a, NOW + 10, "ann", NULL, 1, "ok");
    cr_assert_eq(ship(pg, a, "web1", 1000, &mark), 1, "id 4 again, under the new origin");
    cr_assert_eq(mark, 4);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.audit"), 6);
    cr_assert_eq(count("SELECT tokens FROM ctxgate.usage_window WHERE kind = 0 AND"
                       " span = 86400000"), 6);
    pgstore_close(pg);
    store_close(a);
}

Test(pgaudit, budgets_read_the_cluster_counts)
{
    static const char text[] =
        "{\"sources\": [], \"budgets\": [{\"user\": \"ann\", \"tokens\": 100, \"per\": \"hour\"},"
        " {\"user\": \"*\", \"tokens\": 1000, \"per\": \"day\"}]}";
    ctx_store *a = local_log("a"), *b = local_log("b");
    json_t *root = json_loads(text, 0, NULL), *st;
    budget_counts bc;
    ctx_config cfg;
    pgstore *pg;
    ctx_error err;
    int64_t now = ctx_now_ms();

    memset(&cfg, 0, sizeof cfg);
    cr_assert_eq(ctx_config_parse(root, F.dir, &cfg, &err), CTX_OK, "%s", err.text);
    json_decref(root);
    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    budget_counts_cluster(pg, &bc);
    /* two nodes each serve ann 60 tokens this hour: 120 in the cluster */
    put(a, now, "ann", NULL, 60, "ok");
    cr_assert_eq(ship(pg, a, "web1", 1000, NULL), 1);
    cr_assert_eq(budget_check_in(&bc, &cfg, "ann", NULL, now, NULL, NULL, NULL, &err), CTX_OK,
                 "%s", err.text);
    put(b, now, "ann", NULL, 60, "ok");
    cr_assert_eq(ship(pg, b, "web2", 1000, NULL), 1);
    cr_assert_eq(budget_check_in(&bc, &cfg, "ann", NULL, now, NULL, NULL, NULL, &err),
                 CTX_ELIMIT);
    cr_assert(strstr(err.text, "budgets[0]") && strstr(err.text, "served 120 tokens"), "%s",
              err.text);
    put(a, now, "cy", NULL, 999, "ok");
    cr_assert_eq(ship(pg, a, "web1", 1000, NULL), 1);
    cr_assert_eq(budget_status_in(&bc, &cfg, now, NULL, NULL, &st, &err), CTX_OK, "%s",
                 err.text);
    /* ann's own budget, and "*" for cy (ann is named, so not under "*") */
    cr_assert_eq(json_array_size(st), 2, "%s", json_dumps(st, 0));
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(st, 0), "used")), 120);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(st, 1), "name")), "cy");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(st, 1), "remaining")), 1);
    json_decref(st);
    pgstore_close(pg);
    store_close(a);
    store_close(b);
    ctx_config_free(&cfg);
}

Test(pgaudit, retention_prunes_records_and_old_windows_and_shipped_local_records)
{
    ctx_store *a = local_log("a");
    int64_t now = ctx_now_ms(), recs, wins, mark, n, last;
    int64_t noon = now - now % DAY - DAY + 12 * HOUR; /* yesterday's: one window each */
    pgstore *pg;
    ctx_error err;

    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    for (int i = 0; i < 5; i++)
        put(a, noon - 100 * DAY + i, "ann", NULL, 3, "ok");
    for (int i = 0; i < 3; i++)
        put(a, noon + i, "ann", NULL, 3, "ok");
    cr_assert_eq(ship(pg, a, "web1", 1000, &mark), 8);
    cr_assert_eq(pgaudit_prune(pg, now - 90 * DAY, now - 2 * DAY, 2, &recs, &wins, &err), CTX_OK,
                 "%s", err.text);
    cr_assert_eq(recs, 5);
    cr_assert_eq(wins, 2, "ann's hour and day 100 days ago");
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.audit"), 3);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.usage_window"), 2);
    cr_assert_eq(pgaudit_prune(pg, INT64_MIN, now - 2 * DAY, 2, &recs, &wins, &err), CTX_OK,
                 "%s", err.text);
    cr_assert_eq(recs, 0, "audit.retain off keeps every record");
    /* locally: only what is shipped and past the retention goes, and never
     * the newest record */
    cr_assert_eq(store_audit_prune_shipped(a, 3, now - 90 * DAY, 2, &n, &err), CTX_OK, "%s",
                 err.text);
    cr_assert_eq(n, 3);
    cr_assert_eq(store_audit_prune_shipped(a, mark, now + DAY, 2, &n, &err), CTX_OK, "%s",
                 err.text);
    cr_assert_eq(n, 4);
    cr_assert_eq(store_audit_last_id(a, &last, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(last, 8, "the newest record stays");
    put(a, now, "ann", NULL, 3, "ok");
    cr_assert_eq(ship(pg, a, "web1", 1000, &mark), 1);
    cr_assert_eq(mark, 9);
    /* a name that is not UTF-8 does not stop the shipping */
    put(a, now, "b\xffob", NULL, 3, "ok");
    put(a, now, "ann", NULL, 3, "ok");
    cr_assert_eq(ship(pg, a, "web1", 1000, &mark), 2);
    cr_assert_eq(mark, 11);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.audit WHERE \"user\" = 'b?ob'"), 1);
    pgstore_close(pg);
    store_close(a);
}
