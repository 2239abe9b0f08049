/*
 * test_odbc.c - the odbc connector against two real unixODBC drivers that
 * the test registers itself (an odbcinst.ini in a temp dir, ODBCSYSINI
 * pointing at it): the SQLite3 driver (libsqliteodbc) on a database file
 * the test writes, and psqlODBC (odbc-postgresql) on the PostgreSQL of
 * scripts/pg.sh. Syncs go through the real sync runner into a real store;
 * assertions look at the store with SQL and at permission-filtered search.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../agent/sync.h"
#include "../../connectors/conformance.h"
#include "../../connectors/registry.h"
#include "../../core/config.h"
#include "../../indexer/store.h"
#include "../lib/pgtest.h"
#include "../lib/synctest.h"
#include "../lib/testutil.h"

#define SQLITE_DRIVER "/usr/lib/x86_64-linux-gnu/odbc/libsqlite3odbc.so"
#define PSQL_DRIVER "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so"

enum { LITE, PG };

static struct {
    char dir[256];       /* temp dir: store, odbcinst.ini, the SQLite source */
    ctx_store *st;
    sqlite3 *lite;       /* the SQLite source database */
    PGconn *pg;          /* the test's own PostgreSQL connection, for fixtures */
    char people[64];     /* table of users that people() made, for load_cfg */
    char why[2048];
} F;

/* Registers both drivers for this process, before its first ODBC call. */
static void setup(void)
{
    char path[512];
    ctx_error err;
    FILE *f;

    snprintf(F.dir, sizeof F.dir, "/tmp/ctxgate-odbctest.XXXXXX");
    cr_assert(mkdtemp(F.dir) != NULL);
    snprintf(path, sizeof path, "%s/odbcinst.ini", F.dir);
    cr_assert((f = fopen(path, "w")) != NULL);
    fprintf(f, "[ctxSQLite3]\nDriver=%s\n\n[ctxPostgreSQL]\nDriver=%s\n", SQLITE_DRIVER,
            PSQL_DRIVER);
    fclose(f);
    snprintf(path, sizeof path, "%s/odbc.ini", F.dir);
    cr_assert((f = fopen(path, "w")) != NULL);
    fclose(f);
    setenv("ODBCSYSINI", F.dir, 1);
    setenv("ODBCINSTINI", "odbcinst.ini", 1);
    setenv("ODBCINI", path, 1);
    snprintf(path, sizeof path, "%s/ctxgate.db", F.dir);
    cr_assert(store_open(path, 0, &F.st, &err) == CTX_OK, "%s", err.text);
    tsync_use(F.st);
    snprintf(path, sizeof path, "%s/source.db", F.dir);
    cr_assert(sqlite3_open(path, &F.lite) == SQLITE_OK);
}

static void teardown(void)
{
    store_close(F.st);
    sqlite3_close(F.lite);
    PQfinish(F.pg);
    if (F.dir[0])
        tu_rmrf(F.dir);
}

TestSuite(odbc, .init = setup, .fini = teardown, .timeout = 120);

/* pg - the fixture connection to the test PostgreSQL. */
static PGconn *pg(void)
{
    if (!F.pg) {
        cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
        F.pg = pgtest_connect(NULL, F.why, sizeof F.why);
        cr_assert(F.pg != NULL, "%s", F.why);
    }
    return F.pg;
}

/* src - run one formatted SQL statement on the backend's source database. */
static void src(int be, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void src(int be, const char *fmt, ...)
{
    va_list ap;
    char *sql, *msg = NULL;

    va_start(ap, fmt);
    cr_assert(vasprintf(&sql, fmt, ap) >= 0);
    va_end(ap);
    if (be == LITE) {
        cr_assert(sqlite3_exec(F.lite, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql, msg);
    } else {
        cr_assert(pgtest_exec(pg(), F.why, sizeof F.why, "%s", sql) == 0, "%s", F.why);
    }
    free(sql);
}

/* table - a table name of this test: unique in the shared PostgreSQL. */
static void table(int be, char *buf, size_t len, const char *prefix)
{
    if (be == PG)
        pgtest_name(buf, len, prefix);
    else
        snprintf(buf, len, "%s", prefix);
}

/* kv - the value of key in a libpq conninfo "k=v k=v", into out. */
static void kv(const char *conninfo, const char *key, char *out, size_t len)
{
    const char *p = conninfo;
    size_t kl = strlen(key);

    out[0] = '\0';
    while (p && *p) {
        while (*p == ' ')
            p++;
        if (!strncmp(p, key, kl) && p[kl] == '=') {
            size_t n = strcspn(p + kl + 1, " ");
            snprintf(out, len, "%.*s", (int)n, p + kl + 1);
            return;
        }
        p = strchr(p, ' ');
    }
}

/* conn_string - the ODBC connection string of the backend's source. */
static void conn_string(int be, char *out, size_t len)
{
    char host[128], port[16], db[64], user[64];
    const char *tcp = getenv("CTX_TEST_PG_TCP");

    if (be == LITE) {
        /* No StepAPI=1 and no UseDeclareFetch=1 below: the connector adds them. */
        snprintf(out, len, "Driver=ctxSQLite3;Database=%s/source.db", F.dir);
        return;
    }
    cr_assert(tcp && *tcp, "CTX_TEST_PG_TCP is not set; %s", PGTEST_MISSING);
    kv(tcp, "host", host, sizeof host);
    kv(tcp, "port", port, sizeof port);
    kv(tcp, "dbname", db, sizeof db);
    kv(tcp, "user", user, sizeof user);
    snprintf(out, len, "Driver=ctxPostgreSQL;Servername=%s;Port=%s;Database=%s;UID=%s",
             host, port, db, user);
}

/*
 * people - declare users (search answers only known users): a table of
 * accounts that load_cfg reads as principals.users_query.
 */
static void people(int be, const char *values)
{
    table(be, F.people, sizeof F.people, "people");
    src(be, "CREATE TABLE %s (account TEXT, email TEXT, name TEXT)", F.people);
    src(be, "INSERT INTO %s VALUES %s", F.people, values);
}

/*
 * load_cfg - a config whose one source is {"name": "db", "type": "odbc",
 * "connection_string": <the backend's>} (PostgreSQL: plus "password_env":
 * "CTX_TEST_PGPASSWORD"), the users of people() and the keys of fmt: JSON
 * written with ' for ".
 */
static void load_cfg(ctx_config *cfg, int be, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void load_cfg(ctx_config *cfg, int be, const char *fmt, ...)
{
    va_list ap;
    char cs[512];
    json_t *s;

    va_start(ap, fmt);
    s = tsync_vsource(fmt, ap);
    va_end(ap);
    if (F.people[0] && !json_object_get(s, "principals")) {
        char q[128];
        snprintf(q, sizeof q, "SELECT account, email, name FROM %s", F.people);
        json_object_set_new(s, "principals", json_pack("{s:s}", "users_query", q));
    }
    json_object_set_new(s, "name", json_string("db"));
    json_object_set_new(s, "type", json_string("odbc"));
    if (!json_object_get(s, "connection_string") && !json_object_get(s, "dsn")) {
        conn_string(be, cs, sizeof cs);
        json_object_set_new(s, "connection_string", json_string(cs));
    }
    if (be == PG && !json_object_get(s, "password_env") && !json_object_get(s, "dsn"))
        json_object_set_new(s, "password_env", json_string("CTX_TEST_PGPASSWORD"));
    tsync_config(cfg, F.dir, s);
}

/* ---- full and incremental syncs ---- */

/*
 * full_then_incremental - the same scenario on both drivers: ACLs from a
 * delimited string (SQLite) or text[] (PostgreSQL), groups and users from
 * queries, then an incremental sync that reads only what changed.
 */
static void full_then_incremental(int be)
{
    char docs[64], users[64], groups[64], titles[256];
    ctx_config cfg;
    store_run_stats s;
    char *state;

    table(be, docs, sizeof docs, "docs");
    table(be, users, sizeof users, "users");
    table(be, groups, sizeof groups, "grp");
    if (be == LITE) {
        src(be, "CREATE TABLE %s (id INTEGER PRIMARY KEY, title TEXT, body TEXT,"
            " updated_at TIMESTAMP NOT NULL, readers TEXT, teams TEXT, tags TEXT,"
            " public INTEGER)", docs);
        src(be, "INSERT INTO %s VALUES"
            " (1, 'Payroll policy', 'salary bands zebra', '2024-01-01 10:00:00', 'alice', NULL,"
            "  'confidential;pii', 0),"
            " (2, 'Engineering handbook', 'deploy pipeline walrus', '2024-01-02 10:00:00', NULL,"
            "  'eng;ops', NULL, 0),"
            " (3, 'Lunch menu', 'pizza tuesday walrus', '2024-01-03 10:00:00', NULL, NULL, NULL,"
            "  1)", docs);
    } else {
        src(be, "CREATE TABLE %s (id integer PRIMARY KEY, title text, body text,"
            " updated_at timestamptz NOT NULL, readers text[], teams text[], tags text[],"
            " public boolean)", docs);
        src(be, "INSERT INTO %s VALUES"
            " (1, 'Payroll policy', 'salary bands zebra', '2024-01-01 10:00:00+00', '{alice}',"
            "  NULL, '{confidential,pii}', false),"
            " (2, 'Engineering handbook', 'deploy pipeline walrus', '2024-01-02 10:00:00+00',"
            "  NULL, '{eng,ops}', NULL, false),"
            " (3, 'Lunch menu', 'pizza tuesday walrus', '2024-01-03 10:00:00+00', NULL, NULL,"
            "  NULL, true)", docs);
    }
    src(be, "CREATE TABLE %s (account TEXT, email TEXT, name TEXT)", users);
    src(be, "INSERT INTO %s VALUES ('alice', NULL, 'Alice'), ('bob', NULL, 'Bob'),"
        " ('carol', 'carol@example.com', 'Carol')", users);
    src(be, "CREATE TABLE %s (g TEXT, m TEXT)", groups);
    src(be, "INSERT INTO %s VALUES ('eng', 'bob'), ('ops', 'carol')", groups);

    load_cfg(&cfg, be, "{'state_every': 2, 'principals': {'users_query': 'SELECT account,"
             " email, name FROM %s', 'groups_query': 'SELECT g, m FROM %s'},"
             " 'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'title': 'title',"
             " 'body': 'body', 'updated_at': 'updated_at', 'allow_users': 'readers',"
             " 'allow_groups': 'teams', 'labels': 'tags', 'acl_delimiter': ';',"
             " 'allow_everyone': 'public', 'url_template': 'https://intra.example/d/{id}'}]}",
             users, groups, docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 3);
    cr_assert_eq(s.principals, 3 + 2);
    cr_assert_eq(tsync_live_docs(), 3);
    cr_assert_eq(tsync_hits("alice", "zebra", NULL, 0), 1);
    cr_assert_eq(tsync_hits("bob", "zebra", NULL, 0), 0);
    cr_assert_eq(tsync_hits("bob", "walrus", titles, sizeof titles), 2, "%s", titles);
    cr_assert_eq(tsync_hits("carol@example.com", "walrus", NULL, 0), 2, "carol maps to her email");
    cr_assert_eq(tsync_hits("alice", "walrus", titles, sizeof titles), 1, "%s", titles);
    cr_assert_str_eq(titles, "Lunch menu");
    cr_assert_eq(tsync_int("SELECT count(*) FROM documents WHERE url ="
                        " 'https://intra.example/d/2'"), 1);
    cr_assert_eq(tsync_int("SELECT updated_at FROM documents WHERE ext_id = '1'"),
                 1704103200000LL);
    state = tsync_state("docs");
    cr_assert(strstr(state, "\"cursor_id\":\"3\""), "%s", state);
    cr_assert(strstr(state, "2024-01-03 10:00:00"), "%s", state);
    free(state);

    /* Nothing changed: nothing read. */
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records + s.unchanged, 0);

    /* One update, one new row: exactly those two. */
    if (be == LITE) {
        src(be, "UPDATE %s SET body = 'salary bands okapi', updated_at = '2024-02-01 10:00:00'"
            " WHERE id = 1", docs);
        src(be, "INSERT INTO %s VALUES (4, 'Roadmap', 'okapi plans', '2024-02-02 10:00:00',"
            " 'bob', NULL, NULL, 0)", docs);
    } else {
        src(be, "UPDATE %s SET body = 'salary bands okapi', updated_at ="
            " '2024-02-01 10:00:00+00' WHERE id = 1", docs);
        src(be, "INSERT INTO %s VALUES (4, 'Roadmap', 'okapi plans', '2024-02-02 10:00:00+00',"
            " '{bob}', NULL, NULL, false)", docs);
    }
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 2);
    cr_assert_eq(tsync_live_docs(), 4);
    cr_assert_eq(tsync_hits("alice", "okapi", titles, sizeof titles), 1, "%s", titles);
    cr_assert_str_eq(titles, "Payroll policy");
    cr_assert_eq(tsync_hits("bob", "okapi", titles, sizeof titles), 1, "%s", titles);
    cr_assert_str_eq(titles, "Roadmap");
    cr_assert_eq(tsync_hits("alice", "zebra", NULL, 0), 0, "the old text is gone");
    ctx_config_free(&cfg);
}

Test(odbc, sqlite_full_then_incremental)
{
    full_then_incremental(LITE);
}

Test(odbc, psqlodbc_full_then_incremental)
{
    full_then_incremental(PG);
}

/* ---- equal timestamps across a checkpoint, interrupted and resumed ---- */

static void equal_timestamps(int be)
{
    char docs[64], *state;
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    sync_opts o;
    tsync_cancel ca = {0, 7};
    int rc;

    table(be, docs, sizeof docs, "docs");
    src(be, "CREATE TABLE %s (id VARCHAR(10) PRIMARY KEY, body TEXT, updated_at TIMESTAMP,"
        " readers TEXT)", docs);
    for (int i = 1; i <= 10; i++)
        src(be, "INSERT INTO %s VALUES ('r%02d', 'word%d text', '2024-05-05 12:00:00.123456',"
            " 'alice')", docs, i, i);
    load_cfg(&cfg, be, "{'state_every': 3, 'streams': [{'name': 'docs', 'table': '%s',"
             " 'id': 'id', 'body': 'body', 'updated_at': 'updated_at',"
             " 'allow_users': 'readers'}]}", docs);

    /* Stopped after the 7th record: rows 1-6 and the checkpoint at r06 stay. */
    memset(&o, 0, sizeof o);
    o.cancel = &ca.flag;
    o.progress = tsync_cancel_progress;
    o.progress_arg = &ca;
    rc = tsync_run_opts(&cfg, &o, &s, &err);
    cr_assert_eq(rc, CTX_ECANCELED, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert_eq(tsync_live_docs(), 6);
    state = tsync_state("docs");
    cr_assert(strstr(state, "\"cursor_id\":\"r06\""), "%s", state);
    cr_assert(strstr(state, "2024-05-05 12:00:00.123456"), "%s", state);
    free(state);

    /* Resumed: exactly the four rows after the checkpoint, none twice. */
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 4);
    cr_assert_eq(s.unchanged, 0);
    cr_assert_eq(tsync_live_docs(), 10);
    state = tsync_state("docs");
    cr_assert(strstr(state, "\"cursor_id\":\"r10\""), "%s", state);
    free(state);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records + s.unchanged, 0, "the tuple cursor does not re-read ties");

    /* A new row with the same timestamp and a later id is still picked up. */
    src(be, "INSERT INTO %s VALUES ('r11', 'word11 text', '2024-05-05 12:00:00.123456',"
        " 'alice')", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 1);
    cr_assert_eq(tsync_int("SELECT count(*) FROM documents WHERE ext_id = 'r11'"), 1);
    cr_assert_eq(tsync_int("SELECT count(DISTINCT ext_id) FROM documents"), 11);
    ctx_config_free(&cfg);
}

Test(odbc, sqlite_equal_timestamps_across_a_checkpoint)
{
    equal_timestamps(LITE);
}

Test(odbc, psqlodbc_equal_timestamps_across_a_checkpoint)
{
    equal_timestamps(PG);
}

/* Without updated_at every read is full; an interrupted pass resumes after its last id. */
Test(odbc, sqlite_no_cursor_column_resumes_a_pass)
{
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    sync_opts o;
    tsync_cancel ca = {0, 3};
    char *state;
    int rc;

    src(LITE, "CREATE TABLE docs (id INTEGER, body TEXT)");
    for (int i = 1; i <= 6; i++)
        src(LITE, "INSERT INTO docs VALUES (%d, 'row %d')", i * 10, i);
    load_cfg(&cfg, LITE, "{'state_every': 2, 'streams': [{'name': 'docs', 'table': 'docs',"
             " 'id': 'id', 'body': 'body', 'allow_everyone': true}]}");
    memset(&o, 0, sizeof o);
    o.cancel = &ca.flag;
    o.progress = tsync_cancel_progress;
    o.progress_arg = &ca;
    rc = tsync_run_opts(&cfg, &o, &s, &err);
    cr_assert_eq(rc, CTX_ECANCELED, "%s: %s", ctx_rc_name(rc), err.text);
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{\"cursor_id\":\"20\",\"partial\":true}");
    free(state);
    /* Resumed after id 20 (compared as an integer: 100 > 20), then the pass is complete. */
    src(LITE, "INSERT INTO docs VALUES (100, 'row 100')");
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 5);
    cr_assert_eq(tsync_live_docs(), 7);
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{}");
    free(state);
    ctx_config_free(&cfg);
}

/* ---- long and non-ASCII text ---- */

/* big_text - about 1.5 MB of words with 2-, 3- and 4-byte UTF-8 characters. New. */
static char *big_text(size_t *len)
{
    static const char word[] = "Grüße 日本語 😀 naïve okapi ";
    size_t wl = sizeof word - 1, n = (1536 * 1024) / wl + 1;
    char *t = malloc(n * wl + 16);

    cr_assert(t);
    for (size_t i = 0; i < n; i++)
        memcpy(t + i * wl, word, wl);
    memcpy(t + n * wl, "endmarker", 10);
    *len = n * wl + 9;
    return t;
}

static void long_and_unicode_text(int be)
{
    char docs[64], *body, *title, *text;
    ctx_config cfg;
    store_run_stats s;
    size_t len;

    table(be, docs, sizeof docs, "docs");
    text = big_text(&len);
    people(be, "('zoë', NULL, NULL), ('zoe', NULL, NULL)");
    cr_assert_gt(len, 1024 * 1024);
    src(be, "CREATE TABLE %s (id INTEGER, title TEXT, body TEXT, readers TEXT)", docs);
    src(be, "INSERT INTO %s VALUES (1, 'Zoë''s 日本 notes 😀', '%s', 'zoë'),"
        " (2, 'short', 'ascii only hyrax', 'zoë')", docs, text);
    load_cfg(&cfg, be, "{'max_record_bytes': 8388608, 'streams': [{'name': 'docs', 'table':"
             " '%s', 'id': 'id', 'title': 'title', 'body': 'body', 'allow_users':"
             " 'readers'}]}", docs);
    cfg.sources[0].max_record_bytes = 8 * 1024 * 1024;
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 2);
    cr_assert_eq(s.repaired_utf8, 0, "the driver's text arrives as valid UTF-8");
    body = tsync_text("SELECT body FROM documents WHERE ext_id = '1'");
    title = tsync_text("SELECT title FROM documents WHERE ext_id = '1'");
    cr_assert(body);
    cr_assert_eq(strlen(body), len, "the whole value, read in pieces");
    cr_assert(!memcmp(body, text, len), "the text is intact across piece boundaries");
    cr_assert_str_eq(title, "Zoë's 日本 notes 😀");
    cr_assert_eq(tsync_hits("zoë", "endmarker", NULL, 0), 1);
    cr_assert_eq(tsync_hits("zoë", "hyrax", NULL, 0), 1);
    cr_assert_eq(tsync_hits("zoe", "hyrax", NULL, 0), 0);
    free(body);
    free(title);
    free(text);
    ctx_config_free(&cfg);
}

Test(odbc, sqlite_long_and_unicode_text)
{
    long_and_unicode_text(LITE);
}

Test(odbc, psqlodbc_long_and_unicode_text)
{
    long_and_unicode_text(PG);
}

/* ---- NULLs, numbers and dates ---- */

static void nulls_everywhere(int be)
{
    char docs[64], *title, *body, *state;
    ctx_config cfg;
    store_run_stats s;

    table(be, docs, sizeof docs, "docs");
    people(be, "('alice', NULL, NULL)");
    src(be, "CREATE TABLE %s (id VARCHAR(10), title TEXT, body TEXT, summary TEXT, link TEXT,"
        " updated_at TIMESTAMP, readers TEXT, teams TEXT, tags TEXT, gone INTEGER,"
        " everyone INTEGER, extra TEXT)", docs);
    src(be, "INSERT INTO %s VALUES"
        " (NULL, 'no id', 'orphan text', NULL, NULL, '2024-01-01 00:00:00', 'alice', NULL,"
        "  NULL, NULL, NULL, NULL),"
        " ('n1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
        " ('n2', 'Hidden', 'secret heron notes', NULL, NULL, '2024-01-02 00:00:00', NULL, NULL,"
        "  NULL, NULL, NULL, NULL),"
        " ('n3', 'Visible', NULL, 'public heron notes', NULL, '2024-01-03 00:00:00',"
        "  'alice,', NULL, NULL, 0, NULL, NULL)", docs);
    load_cfg(&cfg, be, "{'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'title':"
             " 'title', 'body': ['body', 'summary'], 'url': 'link', 'updated_at': 'updated_at',"
             " 'allow_users': 'readers', 'allow_groups': 'teams', 'labels': 'tags', 'deleted':"
             " 'gone', 'allow_everyone': 'everyone', 'metadata': ['extra']}]}", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 3, "the NULL-id row is skipped");
    cr_assert_eq(s.deletes, 0, "a NULL soft-delete column means live");
    title = tsync_text("SELECT title FROM documents WHERE ext_id = 'n1'");
    body = tsync_text("SELECT body FROM documents WHERE ext_id = 'n1'");
    cr_assert_str_eq(title, "");
    cr_assert_str_eq(body, "");
    free(title);
    free(body);
    cr_assert_eq(tsync_int("SELECT count(*) FROM acl_entries e JOIN documents d ON"
                        " d.acl_id = e.acl_id WHERE d.ext_id IN ('n1', 'n2')"), 0);
    cr_assert_eq(tsync_hits("alice", "heron", NULL, 0), 1);
    cr_assert_eq(tsync_hits("alice", "secret", NULL, 0), 0);
    body = tsync_text("SELECT metadata FROM documents WHERE ext_id = 'n3'");
    cr_assert_str_eq(body, "{\"extra\":null}");
    free(body);
    state = tsync_state("docs");
    cr_assert(strstr(state, "2024-01-03 00:00:00") && strstr(state, "\"n3\""), "%s", state);
    free(state);
    ctx_config_free(&cfg);
}

Test(odbc, sqlite_nulls_everywhere)
{
    nulls_everywhere(LITE);
}

Test(odbc, psqlodbc_nulls_everywhere)
{
    nulls_everywhere(PG);
}

static void numbers_and_dates(int be)
{
    char docs[64], *meta, *state;
    ctx_config cfg;
    json_t *j;

    table(be, docs, sizeof docs, "docs");
    src(be, "CREATE TABLE %s (id INTEGER, body TEXT, day DATE, n INTEGER, big BIGINT,"
        " price NUMERIC(10,2), ratio DOUBLE PRECISION, at TIMESTAMP)", docs);
    src(be, "INSERT INTO %s VALUES"
        " (1, 'first gnu', '2024-03-01', 42, 9007199254740993, 12.50, 0.25,"
        "  '2024-03-01 08:30:00'),"
        " (2, 'second gnu', '2024-03-02', -7, 0, 0.05, 1.5, '2024-03-02 09:00:00'),"
        " (3, 'third gnu', '2024-03-02', 0, 1, 100, 2, '2024-03-02 09:00:01')", docs);
    load_cfg(&cfg, be, "{'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body':"
             " 'body', 'updated_at': 'day', 'allow_everyone': true, 'metadata': ['n', 'big',"
             " 'price', 'ratio', 'at', 'day']}]}", docs);
    cr_assert_eq(tsync_ok(&cfg, 0).records, 3);
    cr_assert_eq(tsync_int("SELECT updated_at FROM documents WHERE ext_id = '1'"),
                 1709251200000LL, "a DATE cursor gives midnight UTC");
    meta = tsync_text("SELECT metadata FROM documents WHERE ext_id = '1'");
    j = json_loads(meta, 0, NULL);
    cr_assert(j, "%s", meta);
    cr_assert_eq(json_integer_value(json_object_get(j, "n")), 42, "%s", meta);
    cr_assert_eq(json_integer_value(json_object_get(j, "big")), 9007199254740993LL, "%s", meta);
    if (be == PG)
        cr_assert_str_eq(json_string_value(json_object_get(j, "price")), "12.50",
                         "decimals keep their digits: %s", meta);
    else /* SQLite's NUMERIC affinity stores 12.50 as the REAL 12.5 */
        cr_assert(json_number_value(json_object_get(j, "price")) == 12.5, "%s", meta);
    cr_assert(json_real_value(json_object_get(j, "ratio")) == 0.25, "%s", meta);
    cr_assert_str_eq(json_string_value(json_object_get(j, "day")), "2024-03-01", "%s", meta);
    cr_assert(!strncmp(json_string_value(json_object_get(j, "at")), "2024-03-01 08:30:00", 19),
              "%s", meta);
    json_decref(j);
    free(meta);
    state = tsync_state("docs");
    cr_assert(strstr(state, "\"cursor_ts\":\"2024-03-02\""), "%s", state);
    free(state);
    /* Two rows share the last date: a new row of that date with a later id is read. */
    src(be, "INSERT INTO %s VALUES (4, 'fourth gnu', '2024-03-02', 1, 1, 1, 1, NULL)", docs);
    cr_assert_eq(tsync_ok(&cfg, 0).records, 1);
    ctx_config_free(&cfg);
}

Test(odbc, sqlite_numbers_and_dates)
{
    numbers_and_dates(LITE);
}

Test(odbc, psqlodbc_numbers_and_dates)
{
    numbers_and_dates(PG);
}

/* An integer cursor column works too, and lookback re-reads its window. */
Test(odbc, sqlite_integer_cursor_with_lookback)
{
    ctx_config cfg;
    store_run_stats s;

    src(LITE, "CREATE TABLE docs (id INTEGER, body TEXT, version INTEGER)");
    src(LITE, "INSERT INTO docs VALUES (1, 'one', 100), (2, 'two', 200), (3, 'three', 300)");
    load_cfg(&cfg, LITE, "{'streams': [{'name': 'docs', 'table': 'docs', 'id': 'id', 'body':"
             " 'body', 'updated_at': 'version', 'lookback_seconds': 150,"
             " 'allow_everyone': true}]}");
    cr_assert_eq(tsync_ok(&cfg, 0).records, 3);
    cr_assert_eq(tsync_int("SELECT updated_at FROM documents WHERE ext_id = '1'"), 0,
                 "an integer version is not a time");
    src(LITE, "INSERT INTO docs VALUES (4, 'four', 301)");
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 1);
    cr_assert_eq(s.unchanged, 2, "rows 2 and 3 fall in the window and are unchanged");
    ctx_config_free(&cfg);
}

/* A timestamptz cursor with lookback: a late row within the window is still read. */
Test(odbc, psqlodbc_timestamptz_cursor_with_lookback)
{
    char docs[64];
    ctx_config cfg;
    store_run_stats s;

    table(PG, docs, sizeof docs, "docs");
    src(PG, "CREATE TABLE %s (id int, body text, at timestamptz)", docs);
    src(PG, "INSERT INTO %s VALUES (1, 'one', '2024-01-01 10:00:00+00'),"
        " (2, 'two', '2024-01-01 12:00:00+00')", docs);
    load_cfg(&cfg, PG, "{'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body':"
             " 'body', 'updated_at': 'at', 'lookback_seconds': 3600, 'allow_everyone':"
             " true}]}", docs);
    cr_assert_eq(tsync_ok(&cfg, 0).records, 2);
    cr_assert_eq(tsync_int("SELECT updated_at FROM documents WHERE ext_id = '2'"),
                 1704110400000LL, "the offset is read");
    /* Committed late with an older time, inside the hour before the cursor. */
    src(PG, "INSERT INTO %s VALUES (3, 'three', '2024-01-01 11:30:00+00'),"
        " (4, 'four', '2024-01-01 09:00:00+00')", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 1, "row 3 is in the window, row 4 is not");
    cr_assert_eq(s.unchanged, 1);
    cr_assert_eq(tsync_int("SELECT count(*) FROM documents WHERE ext_id = '3'"), 1);
    ctx_config_free(&cfg);
}

/* ISO 8601 text and DATE cursors move back in their own form, so text compares right. */
Test(odbc, sqlite_text_and_date_cursors_with_lookback)
{
    ctx_config cfg;
    store_run_stats s;

    src(LITE, "CREATE TABLE docs (id INTEGER, body TEXT, at TEXT)");
    src(LITE, "INSERT INTO docs VALUES (1, 'one', '2024-01-01T10:00:00Z'),"
        " (2, 'two', '2024-01-01T12:00:00Z')");
    load_cfg(&cfg, LITE, "{'streams': [{'name': 'docs', 'table': 'docs', 'id': 'id', 'body':"
             " 'body', 'updated_at': 'at', 'lookback_seconds': 3600, 'allow_everyone':"
             " true}]}");
    cr_assert_eq(tsync_ok(&cfg, 0).records, 2);
    src(LITE, "INSERT INTO docs VALUES (3, 'three', '2024-01-01T11:30:00Z'),"
        " (4, 'four', '2024-01-01T09:00:00Z')");
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 1, "row 3 is in the window, row 4 is not");
    cr_assert_eq(s.unchanged, 1);
    ctx_config_free(&cfg);

    src(LITE, "CREATE TABLE days (id INTEGER, body TEXT, day DATE)");
    src(LITE, "INSERT INTO days VALUES (1, 'one', '2024-02-27'), (2, 'two', '2024-03-01')");
    load_cfg(&cfg, LITE, "{'streams': [{'name': 'days', 'table': 'days', 'id': 'id', 'body':"
             " 'body', 'updated_at': 'day', 'lookback_seconds': 86400, 'allow_everyone':"
             " true}]}");
    cr_assert_eq(tsync_ok(&cfg, 0).records, 2);
    src(LITE, "INSERT INTO days VALUES (3, 'three', '2024-02-29')");
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 1, "a day back from 2024-03-01 is 2024-02-29");
    cr_assert_eq(s.unchanged, 1);
    ctx_config_free(&cfg);
}

/* ---- errors ---- */

Test(odbc, unknown_dsn_names_the_sqlstate)
{
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    int rc;

    load_cfg(&cfg, LITE, "{'dsn': 'no_such_dsn', 'streams': [{'name': 'docs', 'table': 't',"
             " 'id': 'id', 'allow_everyone': true}]}");
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_ECONFIG, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "[IM002]"), "%s", err.text);
    cr_assert(strstr(err.text, "dsn:"), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(odbc, wrong_password_is_eauth_with_the_sqlstate_and_without_the_password)
{
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    int rc;

    setenv("CTX_ODBC_WRONG_PW", "Wr0ng-Secret-99", 1);
    load_cfg(&cfg, PG, "{'password_env': 'CTX_ODBC_WRONG_PW', 'streams': [{'name': 'docs',"
             " 'table': 't', 'id': 'id', 'allow_everyone': true}]}");
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_EAUTH, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "[28P01]") || strstr(err.text, "[08001]"), "%s", err.text);
    cr_assert(strstr(err.text, "password authentication failed"), "%s", err.text);
    cr_assert(strstr(err.text, "check password_env"), "%s", err.text);
    cr_assert(!strstr(err.text, "Wr0ng-Secret-99"), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(odbc, unreachable_server_retries_then_fails_with_the_sqlstate)
{
    char cs[256];
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    int rc, port = pgtest_free_port();

    cr_assert(port > 0);
    snprintf(cs, sizeof cs, "Driver=ctxPostgreSQL;Servername=127.0.0.1;Port=%d;"
             "Database=x;UID=x", port);
    load_cfg(&cfg, LITE, "{'connection_string': '%s', 'retries': 1, 'connect_timeout': 5,"
             " 'streams': [{'name': 'docs', 'table': 't', 'id': 'id', 'allow_everyone':"
             " true}]}", cs);
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_ESOURCE, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "(2 attempts)"), "%s", err.text);
    cr_assert(strstr(err.text, "[08001]"), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(odbc, psqlodbc_connection_lost_mid_read_fails_then_resumes)
{
    char docs[64], app[64], cs[512];
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    sync_opts o;
    tsync_killer k = {NULL, NULL, 0};
    int64_t kept;
    int rc;

    table(PG, docs, sizeof docs, "docs");
    pgtest_name(app, sizeof app, "ctxkill");
    src(PG, "CREATE TABLE %s (id int, body text, updated_at timestamptz)", docs);
    src(PG, "INSERT INTO %s SELECT i, 'row ' || i, '2024-01-01'::timestamptz + i * interval"
        " '1 s' FROM generate_series(1, 40) i", docs);
    conn_string(PG, cs, sizeof cs);
    /*
     * Two rows per round trip, so the read is still talking to the server:
     * this fails unless the connector turned on psqlODBC's UseDeclareFetch.
     */
    strcat(cs, ";Fetch=2;pqopt={application_name=");
    strcat(cs, app);
    strcat(cs, "}");
    load_cfg(&cfg, PG, "{'connection_string': '%s', 'state_every': 1, 'streams': [{'name':"
             " 'docs', 'table': '%s', 'id': 'id', 'body': 'body', 'updated_at': 'updated_at',"
             " 'allow_everyone': true}]}", cs, docs);
    memset(&o, 0, sizeof o);
    k.db = pg();
    k.app = app;
    o.progress = tsync_kill_progress;
    o.progress_arg = &k;
    /* Progress comes from the thread that applies the rows: a queue of one
     * message keeps the connector a row or two ahead of it, so the kill
     * lands while the read is going (see test_postgres's twin). */
    o.queue_msgs = 1;
    rc = tsync_run_opts(&cfg, &o, &s, &err);
    cr_assert_eq(rc, CTX_ESOURCE, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "streams[0]: connection to the server lost after"), "%s",
              err.text);
    cr_assert(strstr(err.text, "resumes from the last checkpoint"), "%s", err.text);
    /* With a STATE per row, the rows read before the loss stay; the next run reads the rest. */
    kept = tsync_live_docs();
    cr_assert(kept >= 1 && kept < 40, "kept %lld", (long long)kept);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 40 - kept);
    cr_assert_eq(tsync_live_docs(), 40);
    ctx_config_free(&cfg);
}

static void vanished_table(int be)
{
    char docs[64];
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    int rc;

    table(be, docs, sizeof docs, "docs");
    src(be, "CREATE TABLE %s (id INTEGER, body TEXT)", docs);
    src(be, "INSERT INTO %s VALUES (1, 'aardvark')", docs);
    load_cfg(&cfg, be, "{'streams': [{'name': 'notes', 'table': '%s', 'id': 'id', 'body':"
             " 'body', 'allow_everyone': true}]}", docs);
    tsync_ok(&cfg, 0);
    src(be, "DROP TABLE %s", docs);
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_ESOURCE, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "streams[0].table:"), "%s", err.text);
    cr_assert(strstr(err.text, "stream \"notes\""), "%s", err.text);
    cr_assert(strstr(err.text, docs), "%s", err.text);
    cr_assert(strstr(err.text, be == PG ? "[42P01]" : "[HY000]"), "%s", err.text);
    cr_assert(strstr(err.text, "check the table name"), "%s", err.text);
    cr_assert_eq(tsync_live_docs(), 1, "a failed run removes nothing");
    ctx_config_free(&cfg);
}

Test(odbc, sqlite_vanished_table)
{
    vanished_table(LITE);
}

Test(odbc, psqlodbc_vanished_table)
{
    vanished_table(PG);
}

/* ---- permissions and deletes ---- */

Test(odbc, sqlite_acl_change_takes_effect)
{
    ctx_config cfg;

    people(LITE, "('alice', NULL, NULL), ('bob', NULL, NULL), ('carol', NULL, NULL)");
    src(LITE, "CREATE TABLE docs (id INTEGER, body TEXT, readers TEXT, deny TEXT,"
        " updated_at TIMESTAMP)");
    src(LITE, "INSERT INTO docs VALUES (1, 'merger plans quokka', '[\"alice\", \"bob\"]', NULL,"
        " '2024-01-01 00:00:00')");
    load_cfg(&cfg, LITE, "{'streams': [{'name': 'docs', 'table': 'docs', 'id': 'id', 'body':"
             " 'body', 'allow_users': 'readers', 'deny_users': 'deny', 'updated_at':"
             " 'updated_at'}]}");
    tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_hits("alice", "quokka", NULL, 0), 1);
    cr_assert_eq(tsync_hits("bob", "quokka", NULL, 0), 1);
    src(LITE, "UPDATE docs SET readers = 'alice', updated_at = '2024-01-02 00:00:00'");
    tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_hits("alice", "quokka", NULL, 0), 1);
    cr_assert_eq(tsync_hits("bob", "quokka", NULL, 0), 0, "revoked");
    src(LITE, "UPDATE docs SET readers = '{alice,\"carol\"}', deny = 'alice',"
        " updated_at = '2024-01-03 00:00:00'");
    tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_hits("alice", "quokka", NULL, 0), 0, "denied");
    cr_assert_eq(tsync_hits("carol", "quokka", NULL, 0), 1, "an array literal is split");
    ctx_config_free(&cfg);
}

static void soft_deletes(int be)
{
    char docs[64];
    ctx_config cfg;
    store_run_stats s;

    table(be, docs, sizeof docs, "docs");
    people(be, "('anyone', NULL, NULL)");
    src(be, "CREATE TABLE %s (id INTEGER, body TEXT, updated_at TIMESTAMP, deleted_at"
        " TIMESTAMP)", docs);
    src(be, "INSERT INTO %s VALUES (1, 'ibis one', '2024-01-01 00:00:00', NULL),"
        " (2, 'ibis two', '2024-01-02 00:00:00', NULL)", docs);
    load_cfg(&cfg, be, "{'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body':"
             " 'body', 'updated_at': 'updated_at', 'deleted': 'deleted_at',"
             " 'allow_everyone': true}]}", docs);
    tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_hits("anyone", "ibis", NULL, 0), 2);
    src(be, "UPDATE %s SET deleted_at = '2024-01-05 00:00:00', updated_at ="
        " '2024-01-05 00:00:00' WHERE id = 1", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.deletes, 1);
    cr_assert_eq(tsync_live_docs(), 1);
    cr_assert_eq(tsync_hits("anyone", "ibis", NULL, 0), 1);
    /* A hard delete is found by a full sync, which prunes what it did not see. */
    src(be, "DELETE FROM %s WHERE id = 2", docs);
    tsync_ok(&cfg, 1);
    cr_assert_eq(tsync_live_docs(), 0);
    ctx_config_free(&cfg);
}

Test(odbc, sqlite_soft_deletes)
{
    soft_deletes(LITE);
}

Test(odbc, psqlodbc_soft_deletes)
{
    soft_deletes(PG);
}

/*
 * permission_sync - an allow list changed with updated_at untouched and a
 * hard DELETE: an incremental sync sees neither, a permission sync both,
 * and it re-chunks nothing.
 */
static void permission_sync(int be)
{
    char docs[64], *before, *after;
    ctx_config cfg;
    store_run_stats s;

    table(be, docs, sizeof docs, "pdocs");
    people(be, "('alice', NULL, NULL), ('bob', NULL, NULL)");
    src(be, "CREATE TABLE %s (id INTEGER, body TEXT, readers TEXT, updated_at TIMESTAMP)",
        docs);
    src(be, "INSERT INTO %s VALUES (1, 'tapir one', 'alice', '2024-01-01 00:00:00'),"
        " (2, 'tapir two', 'alice', '2024-01-02 00:00:00'),"
        " (3, 'tapir three', 'alice', '2024-01-03 00:00:00')", docs);
    load_cfg(&cfg, be, "{'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body':"
             " 'body', 'allow_users': 'readers', 'updated_at': 'updated_at'}]}", docs);
    tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_hits("alice", "tapir", NULL, 0), 3);
    src(be, "UPDATE %s SET readers = 'bob' WHERE id = 1", docs);
    src(be, "DELETE FROM %s WHERE id = 3", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.acls + s.deletes + s.pruned + s.records, 0);
    cr_assert_eq(tsync_hits("alice", "tapir", NULL, 0), 3, "not seen by an incremental sync");

    before = tsync_chunk_sig(0);
    s = tsync_perm_ok(&cfg);
    cr_assert_eq(s.acls, 1);
    cr_assert_eq(s.pruned + s.deletes, 1);
    cr_assert_eq(s.unchanged, 2);
    cr_assert_eq(s.records + s.chunks, 0, "nothing re-chunked");
    cr_assert_eq(tsync_hits("alice", "tapir", NULL, 0), 1);
    cr_assert_eq(tsync_hits("bob", "tapir", NULL, 0), 1);
    after = tsync_chunk_sig(0);
    cr_assert_str_eq(after, "docs/1#0=tapir one\ndocs/2#0=tapir two");
    cr_assert(strstr(before, "docs/3#0=tapir three"), "%s", before);
    free(before);
    free(after);
    ctx_config_free(&cfg);
}

Test(odbc, sqlite_permission_sync)
{
    permission_sync(LITE);
}

Test(odbc, psqlodbc_permission_sync)
{
    permission_sync(PG);
}

/* ---- discover, check, spec, config errors ---- */

static int collect(void *arg, const char *name, const char *desc)
{
    (void)desc;
    strcat((char *)arg, name);
    strcat((char *)arg, ";");
    return 0;
}

Test(odbc, discover_check_spec_and_config_errors)
{
    char names[128] = "";
    ctx_config cfg;
    registry_conn conn;
    ctx_conn_error ce;
    ctx_error err;
    json_t *spec, *root;
    int rc;

    src(LITE, "CREATE TABLE docs (id INTEGER, title TEXT, updated_at BLOB)");
    load_cfg(&cfg, LITE, "{'principals': {'groups_query': 'SELECT 1, 2'}, 'streams': [{'name':"
             " 'a', 'table': 'docs', 'id': 'id', 'title': 'title', 'allow_everyone': true}]}");
    cr_assert(registry_open(&cfg.sources[0], &conn, &err) == CTX_OK, "%s", err.text);
    memset(&ce, 0, sizeof ce);
    cr_assert_eq(conn.vt->xDiscover(conn.conn, collect, names, &ce), CTX_CONN_OK);
    cr_assert_str_eq(names, "principals;a;");
    rc = conn.vt->xCheck(conn.conn, &ce);
    cr_assert_eq(rc, CTX_CONN_OK, "%s", ce.text);
    spec = json_loads(conn.vt->xSpec(), 0, NULL);
    cr_assert(json_object_get(json_object_get(spec, "properties"), "connection_string"));
    cr_assert(json_object_get(json_object_get(json_object_get(json_object_get(spec,
              "properties"), "principals"), "properties"), "users_query"));
    json_decref(spec);
    registry_close(&conn);
    ctx_config_free(&cfg);

    load_cfg(&cfg, LITE, "{'streams': [{'name': 'a', 'table': 'docs', 'id': 'id', 'title':"
             " 'titel', 'allow_everyone': true}]}");
    cr_assert(registry_open(&cfg.sources[0], &conn, &err) == CTX_OK, "%s", err.text);
    rc = conn.vt->xCheck(conn.conn, &ce);
    cr_assert_eq(rc, CTX_CONN_ECONFIG, "%s", ce.text);
    cr_assert(strstr(ce.text, "streams[0].title: no column \"titel\""), "%s", ce.text);
    cr_assert(strstr(ce.text, "its columns are: id, title, updated_at"), "%s", ce.text);
    registry_close(&conn);
    ctx_config_free(&cfg);

    load_cfg(&cfg, LITE, "{'streams': [{'name': 'a', 'table': 'docs', 'id': 'id',"
             " 'updated_at': 'updated_at', 'allow_everyone': true}]}");
    cr_assert(registry_open(&cfg.sources[0], &conn, &err) == CTX_OK, "%s", err.text);
    rc = conn.vt->xCheck(conn.conn, &ce);
    cr_assert_eq(rc, CTX_CONN_ECONFIG, "%s", ce.text);
    cr_assert(strstr(ce.text, "streams[0].updated_at: column \"updated_at\" is binary"), "%s",
              ce.text);
    registry_close(&conn);
    ctx_config_free(&cfg);

    /* Both or neither of dsn and connection_string; unknown keys with a suggestion. */
    root = json_loads("{\"sources\": [{\"name\": \"x\", \"type\": \"odbc\", \"dsn\": \"a\","
                      " \"connection_string\": \"DSN=a\", \"streams\": []}]}", 0, NULL);
    memset(&cfg, 0, sizeof cfg);
    cr_assert(ctx_config_parse(root, NULL, &cfg, &err) == CTX_OK, "%s", err.text);
    rc = registry_open(&cfg.sources[0], &conn, &err);
    cr_assert_eq(rc, CTX_ECONFIG);
    cr_assert(strstr(err.text, "dsn, connection_string: set exactly one"), "%s", err.text);
    ctx_config_free(&cfg);
    json_decref(root);
    root = json_loads("{\"sources\": [{\"name\": \"x\", \"type\": \"odbc\", \"dsn\": \"a\","
                      " \"streams\": [{\"name\": \"s\", \"tabel\": \"t\", \"id\": \"id\"}]}]}",
                      0, NULL);
    memset(&cfg, 0, sizeof cfg);
    cr_assert(ctx_config_parse(root, NULL, &cfg, &err) == CTX_OK, "%s", err.text);
    rc = registry_open(&cfg.sources[0], &conn, &err);
    cr_assert_eq(rc, CTX_ECONFIG);
    cr_assert(strstr(err.text, "did you mean \"table\""), "%s", err.text);
    ctx_config_free(&cfg);
    json_decref(root);
}

/* ---- the conformance suite, over psqlODBC ---- */

Test(odbc, psqlodbc_passes_the_conformance_suite)
{
    char docs[64], cs[512], cfg[2048], mutate[256];
    conform_target t = {.type = "odbc"};
    conform_opts o = {0};
    conform_report rep;
    json_t *config, *bad;
    ctx_error err;
    char *out = NULL;
    size_t len;
    FILE *f;

    table(PG, docs, sizeof docs, "conform");
    src(PG, "CREATE TABLE %s (id text PRIMARY KEY, title text, body text, updated_at"
        " timestamptz, readers text[], gone boolean DEFAULT false)", docs);
    src(PG, "INSERT INTO %s (id, title, body, updated_at, readers) VALUES"
        " ('r1', 'One', 'first row', now() - interval '3 hours', '{group:eng,user:ann}'),"
        " ('r2', 'Two', 'second row', now() - interval '2 hours', '{group:eng}'),"
        " ('r3', 'Three', 'third row', now() - interval '1 hour', '{everyone}')", docs);
    conn_string(PG, cs, sizeof cs);
    snprintf(cfg, sizeof cfg, "{\"connection_string\": \"%s\", \"password_env\":"
             " \"CTX_TEST_PGPASSWORD\", \"state_every\": 1, \"streams\": [{\"name\": \"rows\","
             " \"table\": \"%s\", \"id\": \"id\", \"title\": \"title\", \"body\": \"body\","
             " \"updated_at\": \"updated_at\", \"allow_users\": \"readers\", \"deleted\":"
             " \"gone\"}]}", cs, docs);
    /* The postgres connector's hook changes the same kind of table. */
    snprintf(mutate, sizeof mutate, "sh tests/integration/conformance/pg-mutate.sh %s", docs);
    setenv("CTX_TEST_BADPW", "not-the-password", 1);
    cr_assert_not_null(config = json_loads(cfg, 0, NULL), "%s", cfg);
    bad = json_deep_copy(config);
    json_object_set_new(bad, "password_env", json_string("CTX_TEST_BADPW"));
    json_object_set_new(bad, "retries", json_integer(0));
    cr_assert_not_null(f = open_memstream(&out, &len));
    o.mutate = mutate;
    o.bad_config = bad;
    o.validator = "scripts/validate-json.py";
    o.out = f;
    memset(&rep, 0, sizeof rep);
    conform_run(&t, config, &o, &rep, &err);
    fclose(f);
    cr_assert_eq(rep.failed, 0, "failed checks:\n%s", out);
    cr_assert_eq(rep.skipped, 0, "skipped checks:\n%s", out);
    cr_assert_geq(rep.passed, 16, "%s", out);
    cr_assert(strstr(out, "PASS check.bad_config: xCheck fails with rc 7"), "%s", out);
    free(out);
    json_decref(bad);
    json_decref(config);
}
