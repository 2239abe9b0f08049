/*
 * test_pgstore.c - the cluster schema in the PostgreSQL of scripts/pg.sh:
 * a fresh database gets it, a second open changes nothing, a database of
 * a newer ctxgate is refused, and a bad password source is named. Each
 * test makes its own database.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/util.h"
#include "indexer/ingest.h"
#include "indexer/pgstore.h"
#include "tests/lib/pgtest.h"

static struct {
    PGconn *admin;       /* on CTX_TEST_PG's own database: makes and drops ours */
    PGconn *db;          /* on ours, for looking */
    char name[64];
    char conninfo[1024];
    ctx_cluster_cfg cfg;
    char why[1024];
} F;

static void setup(void)
{
    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    F.admin = pgtest_connect(NULL, F.why, sizeof F.why);
    cr_assert(F.admin != NULL, "%s", F.why);
    F.db = pgtest_db_make(F.admin, "clu", F.name, sizeof F.name, F.why, sizeof F.why);
    cr_assert(F.db != NULL, "%s", F.why);
    snprintf(F.conninfo, sizeof F.conninfo, "%s dbname=%s", pgtest_conninfo(), F.name);
    F.cfg.conninfo = F.conninfo;
    F.cfg.password_env = "CTX_TEST_PGPASSWORD";
    F.cfg.password_file = "";
    F.cfg.lease_s = 30;
}

static void teardown(void)
{
    pgtest_db_drop(F.admin, F.db, F.name);
    PQfinish(F.admin);
}

TestSuite(pgstore, .init = setup, .fini = teardown, .timeout = 60);

/* count - the one number sql answers on our database. */
static long long count(const char *sql)
{
    PGresult *r = PQexec(F.db, sql);
    long long n;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(F.db));
    n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

#define TABLES "SELECT count(*) FROM pg_tables WHERE schemaname = 'ctxgate'"

Test(pgstore, fresh_database_gets_the_schema_and_a_second_open_changes_nothing)
{
    pgstore *pg;
    ctx_error err;
    int v = 0;

    cr_assert_eq(count("SELECT count(*) FROM pg_namespace WHERE nspname = 'ctxgate'"), 0);
    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(pgstore_version(pg, &v, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(v, PGSTORE_SCHEMA_VERSION);
    pgstore_close(pg);
    /* schema_version, the ten tables of docs/cluster.md, version 3's three
     * (audit, audit_origins, usage_window) and version 4's four
     * (embed_models, chunk_vectors, doc_embeds, lsa_models) */
    cr_assert_eq(count(TABLES), 18);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.schema_version"), 1);
    cr_assert(pgtest_exec(F.db, F.why, sizeof F.why, "INSERT INTO ctxgate.sources (name, type)"
                          " VALUES ('kept', 'files')") == 0, "%s", F.why);

    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    pgstore_close(pg);
    cr_assert_eq(count(TABLES), 18);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.schema_version"), 1);
    cr_assert_eq(count("SELECT max(version) FROM ctxgate.schema_version"),
                 PGSTORE_SCHEMA_VERSION);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.sources WHERE name = 'kept'"), 1);
}

Test(pgstore, database_of_a_newer_ctxgate_is_refused)
{
    pgstore *pg;
    ctx_error err;

    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    pgstore_close(pg);
    cr_assert(pgtest_exec(F.db, F.why, sizeof F.why,
                          "UPDATE ctxgate.schema_version SET version = 99") == 0, "%s", F.why);
    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_ESTORE);
    cr_assert_null(pg);
    cr_assert(strstr(err.text, "version 99, newer than this ctxgate knows"), "%s", err.text);
    /* nothing was touched */
    cr_assert_eq(count("SELECT max(version) FROM ctxgate.schema_version"), 99);
}

Test(pgstore, missing_password_and_wrong_password_are_named_without_the_password)
{
    pgstore *pg;
    ctx_error err;

    F.cfg.password_env = "CTX_TEST_NO_SUCH_VARIABLE";
    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "cluster.password_env: the environment variable"
                     " \"CTX_TEST_NO_SUCH_VARIABLE\" is not set"), "%s", err.text);
    setenv("CTX_TEST_WRONG_PW", "not-the-password", 1);
    F.cfg.password_env = "CTX_TEST_WRONG_PW";
    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_EIO);
    cr_assert(strstr(err.text, "cluster: cannot connect to PostgreSQL"), "%s", err.text);
    cr_assert_null(strstr(err.text, "not-the-password"), "%s", err.text);
    /* a failed open made no schema */
    cr_assert_eq(count("SELECT count(*) FROM pg_namespace WHERE nspname = 'ctxgate'"), 0);
}

/* record - one RECORD through the sink (its xRecord), as the runner applies it. */
static int record(const sync_sink *sk, ingest_ctx *c, const char *id, const ctx_acl *acl,
                  ctx_error *err)
{
    ctx_record rec = {"s", id, "T", NULL, "some body text", 14, NULL, 0, acl};
    ingest_prep *p;
    int rc;

    if ((rc = ingest_prepare(c, &rec, &p, err)))
        return rc;
    rc = sk->xRecord(sk->self, c, p, err);
    ctx_free(p);
    return rc;
}

Test(pgstore, sink_batches_roll_back_whole_and_forget_what_they_made)
{
    static const char *const allow[] = {"group:b", "group:a", "group:a"};
    static const char *const allow2[] = {"group:a", "group:b"};
    const ctx_acl acl = {allow, 3, NULL, 0, NULL, 0}, same = {allow2, 2, NULL, 0, NULL, 0};
    store_run_stats stats;
    ingest_ctx c;
    sync_sink sk;
    pgstore *pg;
    ctx_error err;
    int64_t n = 0;

    memset(&stats, 0, sizeof stats);
    memset(&c, 0, sizeof c);
    c.stats = &stats;
    c.epoch = 1;
    c.chunk.max_tokens = 256;
    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    pgstore_sink(pg, &sk);
    cr_assert_eq(sk.xSource(sk.self, "src", "files", &c.source, &err), CTX_OK, "%s", err.text);
    /* A batch that makes an ACL set, then rolls back: nothing of it stays. */
    cr_assert_eq(sk.xBegin(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(record(&sk, &c, "a", &acl, &err), CTX_OK, "%s", err.text);
    sk.xRollback(sk.self);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.acl_sets"), 0);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.documents"), 0);
    /* The same set again (order and duplicates do not matter) is made anew,
     * and the record and its checkpoint commit together. */
    cr_assert_eq(sk.xBegin(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(record(&sk, &c, "a", &same, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(record(&sk, &c, "b", &acl, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(sk.xStatePut(sk.self, c.source, "s", "{\"n\":2}", &err), CTX_OK, "%s",
                 err.text);
    cr_assert_eq(sk.xCommit(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.acl_sets"), 1);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.acl_entries"), 2);
    cr_assert_eq(count("SELECT count(DISTINCT acl) FROM ctxgate.documents"), 1);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.checkpoints WHERE state = '{\"n\":2}'"), 1);
    /* A full run of epoch 2 that saw only "b" prunes "a". */
    c.epoch = 2;
    cr_assert_eq(sk.xBegin(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(record(&sk, &c, "b", &acl, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(sk.xPruneCount(sk.self, c.source, "s", 2, 0, &n, &err), CTX_OK, "%s",
                 err.text);
    cr_assert_eq(n, 1);
    cr_assert_eq(sk.xPrune(sk.self, c.source, "s", 2, 0, &n, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(sk.xCommit(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(n, 1);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.documents WHERE ext_id = 'a' AND deleted"
                       " AND body IS NULL"), 1);
    /* (counted as applied, the rolled-back one too, as on the embedded side) */
    cr_assert_eq(stats.records, 3);
    cr_assert_eq(stats.unchanged, 1);
    pgstore_close(pg);
}

/*
 * Records are sent ahead in pipeline mode: more of them than go out before
 * an answer is read are all written and counted (the guard's to_everyone
 * too) once the runner flushes, and one that PostgreSQL refuses in the
 * middle fails the batch naming that record, rolls back whole, and leaves
 * the connection fit for the next batch.
 */
Test(pgstore, records_sent_ahead_are_counted_at_the_flush_and_a_refused_one_is_named)
{
    static const char *const all[] = {"everyone"};
    const ctx_acl acl = {all, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    ingest_ctx c;
    sync_sink sk;
    pgstore *pg;
    ctx_error err;
    char id[32];
    int rc = CTX_OK;

    memset(&stats, 0, sizeof stats);
    memset(&c, 0, sizeof c);
    c.stats = &stats;
    c.epoch = 1;
    c.chunk.max_tokens = 256;
    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    pgstore_sink(pg, &sk);
    cr_assert_not_null(sk.xFlush);
    cr_assert_eq(sk.xSource(sk.self, "src", "files", &c.source, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(sk.xBegin(sk.self, &err), CTX_OK, "%s", err.text);
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "d%03d", i);
        cr_assert_eq(record(&sk, &c, id, &acl, &err), CTX_OK, "%s", err.text);
    }
    cr_assert_eq(sk.xFlush(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(stats.records, 300);
    cr_assert_eq(stats.to_everyone, 300);
    cr_assert_eq(sk.xCommit(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"), 300);
    /* The same records again: unchanged, none newly readable by everyone. */
    memset(&stats, 0, sizeof stats);
    c.epoch = 2;
    cr_assert_eq(sk.xBegin(sk.self, &err), CTX_OK, "%s", err.text);
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "d%03d", i);
        cr_assert_eq(record(&sk, &c, id, &acl, &err), CTX_OK, "%s", err.text);
    }
    cr_assert_eq(sk.xCommit(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(stats.unchanged, 300);
    cr_assert_eq(stats.records, 0);
    cr_assert_eq(stats.to_everyone, 0);
    /* PostgreSQL refuses one record in the middle of a batch. */
    cr_assert_eq(pgtest_exec(F.db, F.why, sizeof F.why,
                             "CREATE FUNCTION ctxgate.refuse() RETURNS trigger LANGUAGE plpgsql"
                             " AS $$BEGIN RAISE EXCEPTION 'refused by the test'; END$$;"
                             " CREATE TRIGGER refuse BEFORE INSERT ON ctxgate.documents"
                             " FOR EACH ROW WHEN (NEW.ext_id = 'bad')"
                             " EXECUTE FUNCTION ctxgate.refuse()"), 0, "%s", F.why);
    c.epoch = 3;
    cr_assert_eq(sk.xBegin(sk.self, &err), CTX_OK, "%s", err.text);
    for (int i = 0; i < 100 && !rc; i++) {
        snprintf(id, sizeof id, i == 40 ? "bad" : "n%03d", i);
        rc = record(&sk, &c, id, &acl, &err);
    }
    if (!rc)
        rc = sk.xStatePut(sk.self, c.source, "s", "{\"n\":3}", &err);
    cr_assert_neq(rc, CTX_OK);
    cr_assert(strstr(err.text, "RECORD s/bad") && strstr(err.text, "refused by the test"),
              "%s", err.text);
    sk.xRollback(sk.self);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.documents WHERE ext_id LIKE 'n%'"), 0);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.checkpoints WHERE state = '{\"n\":3}'"),
                 0);
    /* The connection goes on: the next batch commits. */
    cr_assert_eq(sk.xBegin(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(record(&sk, &c, "n000", &acl, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(sk.xCommit(sk.self, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(count("SELECT count(*) FROM ctxgate.documents WHERE ext_id = 'n000'"), 1);
    pgstore_close(pg);
}

/*
 * A role that may only read the schema (a replica's, as docs/operations.md
 * grants it) opens a database already at this version: the version is read
 * first and no DDL runs. On a database without the schema the same role is
 * refused, naming what it could not do.
 */
Test(pgstore, a_read_only_role_opens_a_current_schema_and_runs_no_ddl)
{
    char role[80], super[1200], ro[1200];
    PGconn *su;
    pgstore *pg;
    ctx_error err;
    ctx_cluster_cfg cfg;

    cr_assert_eq(pgstore_open(&F.cfg, &pg, &err), CTX_OK, "%s", err.text);
    pgstore_close(pg);
    snprintf(role, sizeof role, "%s_ro", F.name);
    snprintf(super, sizeof super, "%s user=postgres dbname=postgres", pgtest_conninfo());
    su = PQconnectdb(super);
    cr_assert_eq(PQstatus(su), CONNECTION_OK, "%s", PQerrorMessage(su));
    cr_assert(pgtest_exec(su, F.why, sizeof F.why, "CREATE ROLE %s LOGIN PASSWORD 'ro-pw'",
                          role) == 0, "%s", F.why);
    cr_assert(pgtest_exec(F.db, F.why, sizeof F.why, "GRANT USAGE ON SCHEMA ctxgate TO %s;"
                          " GRANT SELECT ON ALL TABLES IN SCHEMA ctxgate TO %s", role,
                          role) == 0, "%s", F.why);
    setenv("CTX_TEST_RO_PW", "ro-pw", 1);
    snprintf(ro, sizeof ro, "%s dbname=%s user=%s", pgtest_conninfo(), F.name, role);
    cfg = F.cfg;
    cfg.conninfo = ro;
    cfg.password_env = "CTX_TEST_RO_PW";
    cr_assert_eq(pgstore_open(&cfg, &pg, &err), CTX_OK, "%s", err.text);
    pgstore_close(pg);
    /* the schema gone: the read-only role cannot make it, and says so */
    cr_assert(pgtest_exec(F.db, F.why, sizeof F.why, "DROP SCHEMA ctxgate CASCADE") == 0, "%s",
              F.why);
    cr_assert_neq(pgstore_open(&cfg, &pg, &err), CTX_OK);
    cr_assert(strstr(err.text, "create schema ctxgate") &&
              strstr(err.text, "permission denied"), "%s", err.text);
    /* (its grants went with the schema) */
    cr_assert(pgtest_exec(su, F.why, sizeof F.why, "DROP ROLE %s", role) == 0, "%s", F.why);
    PQfinish(su);
}
