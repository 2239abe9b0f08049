/*
 * test_postgres.c - the postgres connector against the real PostgreSQL of
 * scripts/pg.sh, driven through the real sync runner into a real store;
 * assertions look at the store with SQL and at permission-filtered search.
 * Each test makes its own tables (and store) so tests can run in parallel.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../agent/sync.h"
#include "../../connectors/registry.h"
#include "../../core/config.h"
#include "../../indexer/store.h"
#include "../lib/pgtest.h"
#include "../lib/synctest.h"
#include "../lib/testutil.h"

static struct {
    PGconn *db;          /* the test's own connection, for fixtures */
    char dir[256];       /* temp dir of the store */
    ctx_store *st;
    char dropdb[64];     /* a database the test made, dropped in teardown */
    char why[2048];
} F;

static void setup(void)
{
    char path[512];
    ctx_error err;

    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    F.db = pgtest_connect(NULL, F.why, sizeof F.why);
    cr_assert(F.db != NULL, "%s", F.why);
    snprintf(F.dir, sizeof F.dir, "/tmp/ctxgate-pgtest.XXXXXX");
    cr_assert(mkdtemp(F.dir) != NULL);
    snprintf(path, sizeof path, "%s/ctxgate.db", F.dir);
    cr_assert(store_open(path, 0, &F.st, &err) == CTX_OK, "%s", err.text);
    tsync_use(F.st);
}

static void teardown(void)
{
    store_close(F.st);
    if (F.db && F.dropdb[0])
        pgtest_exec(F.db, F.why, sizeof F.why, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                    F.dropdb);
    PQfinish(F.db);
    if (F.dir[0])
        tu_rmrf(F.dir);
}

TestSuite(postgres, .init = setup, .fini = teardown, .timeout = 120);

#define SQL(...)                                                                         \
    cr_assert(pgtest_exec(F.db, F.why, sizeof F.why, __VA_ARGS__) == 0, "%s", F.why)

/*
 * load_cfg - a config whose one source is {"name": "pg", "type": "postgres",
 * "conninfo": CTX_TEST_PG, "password_env": "CTX_TEST_PGPASSWORD"} plus the
 * keys of fmt: JSON written with ' for " (so C strings stay readable).
 */
static void load_cfg(ctx_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void load_cfg(ctx_config *cfg, const char *fmt, ...)
{
    va_list ap;
    json_t *src;

    va_start(ap, fmt);
    src = tsync_vsource(fmt, ap);
    va_end(ap);
    json_object_set_new(src, "name", json_string("pg"));
    json_object_set_new(src, "type", json_string("postgres"));
    if (!json_object_get(src, "conninfo"))
        json_object_set_new(src, "conninfo", json_string(pgtest_conninfo()));
    if (!json_object_get(src, "password_env"))
        json_object_set_new(src, "password_env", json_string("CTX_TEST_PGPASSWORD"));
    tsync_config(cfg, F.dir, src);
}

/* Users table with declared accounts (account = login name, no email). */
static void make_users(const char *t, const char *values)
{
    SQL("CREATE TABLE %s (account text, email text, name text)", t);
    SQL("INSERT INTO %s VALUES %s", t, values);
}

/* ---- 1. full sync with ACL arrays and delimited strings ---- */

Test(postgres, full_sync_acl_arrays_and_delimited)
{
    char docs[64], users[64], groups[64], titles[256];
    ctx_config cfg;
    store_run_stats s;
    char *state, *url, *meta;
    json_t *j;

    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(users, sizeof users, "users");
    pgtest_name(groups, sizeof groups, "groups");
    SQL("CREATE TABLE %s (id integer PRIMARY KEY, title text, body text,"
        " updated_at timestamptz NOT NULL, readers text[], teams text, blocked text[],"
        " tags text[], public boolean)", docs);
    SQL("INSERT INTO %s VALUES"
        " (1, 'Payroll policy', 'salary bands quarterly review zebra', '2024-01-01', '{alice}',"
        "  NULL, NULL, '{confidential,pii}', false),"
        " (2, 'Engineering handbook', 'deploy pipeline kubernetes walrus', '2024-01-02', NULL,"
        "  'eng;ops', NULL, NULL, NULL),"
        " (3, 'Incident notes', 'postmortem outage walrus', '2024-01-03', '{user:dave}', 'eng',"
        "  '{bob}', NULL, false),"
        " (4, 'Lunch menu', 'pizza tuesday', '2024-01-04', NULL, NULL, NULL, NULL, true)", docs);
    make_users(users, "('alice', NULL, 'Alice'), ('bob', NULL, 'Bob'), ('carol', NULL, 'Carol'),"
                      " ('dave', NULL, 'Dave'), ('erin', NULL, 'Erin')");
    SQL("CREATE TABLE %s (g text, m text)", groups);
    SQL("INSERT INTO %s VALUES ('eng', 'bob'), ('eng', 'carol'), ('ops', 'erin')", groups);

    load_cfg(&cfg, "{'principals': {'users_query': 'SELECT account, email, name FROM %s',"
                   " 'groups_query': 'SELECT g, m FROM %s'},"
                   " 'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'title': 'title',"
                   " 'body': 'body', 'updated_at': 'updated_at', 'allow_users': 'readers',"
                   " 'allow_groups': 'teams', 'deny_users': 'blocked', 'labels': 'tags',"
                   " 'acl_delimiter': ';', 'allow_everyone': 'public',"
                   " 'url_template': 'https://intra.example/docs/{id}',"
                   " 'metadata': ['updated_at', 'public']}]}",
             users, groups, docs);
    s = tsync_ok(&cfg, 0);

    cr_assert_eq(s.records, 4);
    cr_assert_eq(s.principals, 5 + 2);
    cr_assert_eq(tsync_live_docs(), 4);
    /* Short bodies: one chunk each, and the stats agree with the table. */
    cr_assert_eq(tsync_int("SELECT count(*) FROM chunks"), 4);
    cr_assert_eq(s.chunks, 4);
    cr_assert_eq(tsync_int("SELECT count(*) FROM chunks_fts"), 4);

    /* Group member finds it; deny beats allow; outsiders find nothing. */
    cr_assert_eq(tsync_hits("bob", "walrus", titles, sizeof titles), 1);
    cr_assert_str_eq(titles, "Engineering handbook");
    cr_assert_eq(tsync_hits("carol", "walrus", NULL, 0), 2);
    cr_assert_eq(tsync_hits("erin", "walrus", titles, sizeof titles), 1, "ops via 'eng;ops'");
    cr_assert_eq(tsync_hits("dave", "walrus", titles, sizeof titles), 1, "user:dave kept as is");
    cr_assert_str_eq(titles, "Incident notes");
    cr_assert_eq(tsync_hits("alice", "walrus", NULL, 0), 0);
    cr_assert_eq(tsync_hits("alice", "zebra", NULL, 0), 1);
    cr_assert_eq(tsync_hits("bob", "zebra", NULL, 0), 0);
    cr_assert_eq(tsync_hits("alice", "pizza", NULL, 0), 1, "allow_everyone column");
    cr_assert_eq(tsync_hits("mallory", "pizza", NULL, 0), 0, "undeclared users see nothing");

    /* Labels from the text[] column, URL from the template, metadata JSON. */
    cr_assert_eq(tsync_int("SELECT count(*) FROM documents d JOIN acl_labels al ON al.acl_id ="
                        " d.acl_id JOIN labels l ON l.id = al.label_id WHERE d.ext_id = '1'"
                        " AND l.name IN ('confidential', 'pii')"), 2);
    url = tsync_text("SELECT url FROM documents WHERE ext_id = '2'");
    cr_assert_str_eq(url, "https://intra.example/docs/2");
    free(url);
    meta = tsync_text("SELECT metadata FROM documents WHERE ext_id = '4'");
    j = json_loads(meta, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "updated_at")),
                     "2024-01-04T00:00:00+00:00");
    cr_assert(json_is_true(json_object_get(j, "public")));
    json_decref(j);
    free(meta);
    cr_assert_eq(tsync_int("SELECT updated_at FROM documents WHERE ext_id = '4'"), 1704326400000LL);

    /* The checkpoint is the last row's tuple, timestamps as PostgreSQL prints them. */
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{\"cursor_ts\":\"2024-01-04 00:00:00+00\",\"cursor_id\":\"4\"}");
    free(state);
    ctx_config_free(&cfg);
}

/* ---- 2. incremental ---- */

Test(postgres, incremental_reads_only_changed_rows)
{
    char docs[64], users[64];
    ctx_config cfg;
    store_run_stats s;
    int64_t chunk_before, chunk_after;

    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(users, sizeof users, "users");
    SQL("CREATE TABLE %s (id bigint PRIMARY KEY, title text, body text, updated_at timestamp,"
        " readers text)", docs);
    SQL("INSERT INTO %s SELECT i, 'Doc ' || i, 'body of document number ' || i || ' heron',"
        " timestamp '2024-03-01 00:00:00.000001' + i * interval '1 minute', 'alice'"
        " FROM generate_series(1, 20) AS i", docs);
    make_users(users, "('alice', NULL, NULL)");
    load_cfg(&cfg, "{'batch_rows': 7, 'principals': {'users_query': 'SELECT account, email,"
                   " name FROM %s'}, 'streams': [{'name': 'docs', 'table': '%s', 'id': 'id',"
                   " 'title': 'title', 'body': 'body', 'updated_at': 'updated_at',"
                   " 'allow_users': 'readers'}]}", users, docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 20);
    cr_assert_eq(s.states, 1 + 2 + 1, "principals, after rows 7 and 14, end: %lld", (long long)s.states);
    chunk_before = tsync_int("SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id"
                          " WHERE d.ext_id = '10'");

    /* Three rows change content, one only moves its timestamp. */
    SQL("UPDATE %s SET body = body || ' revised', updated_at = now() WHERE id IN (3, 11, 17)",
        docs);
    SQL("UPDATE %s SET updated_at = now() WHERE id = 5", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 3);
    cr_assert_eq(s.unchanged, 1, "re-read but not re-chunked");
    cr_assert_eq(s.chunks, 3);
    cr_assert_eq(tsync_live_docs(), 20);
    chunk_after = tsync_int("SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id"
                         " WHERE d.ext_id = '10'");
    cr_assert_eq(chunk_before, chunk_after, "an untouched row keeps its chunks");
    cr_assert_eq(tsync_hits("alice", "revised", NULL, 0), 3);

    /* Nothing changed: nothing read. */
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records + s.unchanged, 0);
    ctx_config_free(&cfg);

    /* A lookback window re-reads the recent rows; the host skips them by hash. */
    load_cfg(&cfg, "{'principals': {'users_query': 'SELECT account, email, name FROM %s'},"
                   " 'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'title': 'title',"
                   " 'body': 'body', 'updated_at': 'updated_at', 'allow_users': 'readers',"
                   " 'lookback_seconds': 3600}]}", users, docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(s.unchanged, 4, "the four rows touched in the last hour");
    ctx_config_free(&cfg);
}

/* ---- 3. equal timestamps across checkpoints, interrupted and resumed ---- */

Test(postgres, equal_timestamps_resume_without_loss_or_duplicates)
{
    char docs[64], path[512], *state;
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    sync_opts o;
    tsync_cancel ca = {0, 7};
    ctx_store *clean;
    int64_t chunks_clean;
    int rc;

    pgtest_name(docs, sizeof docs, "docs");
    SQL("CREATE TABLE %s (id text PRIMARY KEY, body text, updated_at timestamptz, readers text[])",
        docs);
    SQL("INSERT INTO %s SELECT 'r' || lpad(i::text, 2, '0'), repeat('word' || i || ' ', 10 * i),"
        " timestamptz '2024-05-05 12:00:00.123456+00', '{alice}' FROM generate_series(1, 10) i",
        docs);
    load_cfg(&cfg, "{'batch_rows': 4, 'state_every': 3, 'streams': [{'name': 'docs',"
                   " 'table': '%s', 'id': 'id', 'body': 'body', 'updated_at': 'updated_at',"
                   " 'allow_users': 'readers'}]}", docs);
    cfg.chunk_max_tokens = 16;
    cfg.chunk_overlap_tokens = 4;

    /* Stopped after the 7th record: rows 1-6 and the checkpoint at r06 stay. */
    memset(&o, 0, sizeof o);
    o.cancel = &ca.flag;
    o.progress = tsync_cancel_progress;
    o.progress_arg = &ca;
    rc = tsync_run_opts(&cfg, &o, &s, &err);
    cr_assert_eq(rc, CTX_ECANCELED, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert_eq(tsync_live_docs(), 6);
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{\"cursor_ts\":\"2024-05-05 12:00:00.123456+00\","
                            "\"cursor_id\":\"r06\"}");
    free(state);

    /* Resumed: exactly the four rows after the checkpoint, none twice. */
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 4);
    cr_assert_eq(s.unchanged, 0);
    cr_assert_eq(tsync_live_docs(), 10);
    cr_assert_eq(tsync_int("SELECT count(DISTINCT ext_id) FROM documents"), 10);
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{\"cursor_ts\":\"2024-05-05 12:00:00.123456+00\","
                            "\"cursor_id\":\"r10\"}");
    free(state);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records + s.unchanged, 0, "the tuple cursor does not re-read ties");

    /* The index equals a clean sync's. */
    snprintf(path, sizeof path, "%s/clean.db", F.dir);
    cr_assert(store_open(path, 0, &clean, &err) == CTX_OK, "%s", err.text);
    {
        ctx_store *mine = F.st;
        F.st = clean;
        tsync_use(clean);
        s = tsync_ok(&cfg, 0);
        cr_assert_eq(s.records, 10);
        chunks_clean = tsync_int("SELECT count(*) FROM chunks");
        F.st = mine;
        tsync_use(mine);
    }
    store_close(clean);
    cr_assert(chunks_clean > 10, "bodies of up to 100 words make several chunks");
    cr_assert_eq(tsync_int("SELECT count(*) FROM chunks"), chunks_clean);
    cr_assert_eq(tsync_int("SELECT count(*) FROM chunks_fts"), chunks_clean);
    ctx_config_free(&cfg);
}

/* Without updated_at every read is full; an interrupted pass still resumes. */
Test(postgres, no_cursor_column_reads_everything_and_resumes_a_pass)
{
    char docs[64], *state;
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    sync_opts o;
    tsync_cancel ca = {0, 3};
    int rc;

    pgtest_name(docs, sizeof docs, "docs");
    SQL("CREATE TABLE %s (id int, body text, version bigint)", docs);
    SQL("INSERT INTO %s SELECT i, 'entry ' || i, 100 + i FROM generate_series(1, 7) i", docs);
    load_cfg(&cfg, "{'state_every': 2, 'streams': [{'name': 'docs', 'table': '%s', 'id': 'id',"
                   " 'body': 'body', 'allow_everyone': true}]}", docs);
    memset(&o, 0, sizeof o);
    o.cancel = &ca.flag;
    o.progress = tsync_cancel_progress;
    o.progress_arg = &ca;
    rc = tsync_run_opts(&cfg, &o, &s, &err);
    cr_assert_eq(rc, CTX_ECANCELED, "%s: %s", ctx_rc_name(rc), err.text);
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{\"cursor_id\":\"2\",\"partial\":true}");
    free(state);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 5, "the pass resumes after id 2");
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{}", "a finished pass starts over next time");
    free(state);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.unchanged, 7);
    ctx_config_free(&cfg);

    /* An integer cursor column, with a lookback in its own units. */
    load_cfg(&cfg, "{'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body': 'body',"
                   " 'updated_at': 'version', 'allow_everyone': true}]}", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.unchanged, 7, "no usable state yet: a full read");
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{\"cursor_ts\":\"107\",\"cursor_id\":\"7\"}");
    free(state);
    SQL("UPDATE %s SET body = 'entry 3 changed', version = 108 WHERE id = 3", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 1);
    cr_assert_eq(s.unchanged, 0);
    ctx_config_free(&cfg);
    load_cfg(&cfg, "{'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body': 'body',"
                   " 'updated_at': 'version', 'lookback_seconds': 2, 'allow_everyone': true}]}",
             docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.unchanged, 3, "versions 106..108");
    ctx_config_free(&cfg);
}

/* ---- 4. soft delete, and full refresh pruning hard deletes ---- */

Test(postgres, soft_delete_and_full_refresh_prune)
{
    char docs[64], users[64];
    ctx_config cfg;
    store_run_stats s;

    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(users, sizeof users, "users");
    SQL("CREATE TABLE %s (id int, title text, body text, updated_at timestamptz,"
        " deleted_at timestamptz, readers text)", docs);
    SQL("INSERT INTO %s SELECT i, 'Note ' || i, 'kestrel note ' || i,"
        " '2024-02-01'::timestamptz + i * interval '1 hour', NULL, 'alice'"
        " FROM generate_series(1, 5) i", docs);
    make_users(users, "('alice', NULL, NULL)");
    /* A query stream: wrapped as a subselect, so its columns work like a table's. */
    load_cfg(&cfg, "{'principals': {'users_query': 'SELECT account, email, name FROM %s'},"
                   " 'streams': [{'name': 'notes', 'query': 'SELECT id, title, body, updated_at,"
                   " deleted_at, readers FROM %s WHERE id > 0;', 'id': 'id', 'title': 'title',"
                   " 'body': 'body', 'updated_at': 'updated_at', 'deleted': 'deleted_at',"
                   " 'allow_users': 'readers'}]}", users, docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 5);
    cr_assert_eq(tsync_hits("alice", "kestrel", NULL, 0), 5);

    SQL("UPDATE %s SET deleted_at = now(), updated_at = now() WHERE id = 2", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.deletes, 1);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(tsync_int("SELECT deleted FROM documents WHERE ext_id = '2'"), 1);
    cr_assert_eq(tsync_int("SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id"
                        " WHERE d.ext_id = '2'"), 0);
    cr_assert_eq(tsync_hits("alice", "kestrel", NULL, 0), 4);

    /* A hard delete is invisible to an incremental read ... */
    SQL("DELETE FROM %s WHERE id = 3", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_live_docs(), 4);
    /* ... and pruned by a full refresh. */
    s = tsync_ok(&cfg, 1);
    cr_assert_eq(s.pruned, 1);
    cr_assert_eq(s.unchanged, 3);
    cr_assert_eq(tsync_live_docs(), 3);
    cr_assert_eq(tsync_int("SELECT deleted FROM documents WHERE ext_id = '3'"), 1);
    cr_assert_eq(tsync_hits("alice", "kestrel", NULL, 0), 3);
    ctx_config_free(&cfg);
}

/* ---- 5. permission change without content change ---- */

Test(postgres, acl_change_takes_effect_next_sync)
{
    char docs[64], users[64];
    ctx_config cfg;
    store_run_stats s;
    int64_t synced_before;

    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(users, sizeof users, "users");
    SQL("CREATE TABLE %s (id int, body text, updated_at timestamptz, readers text[],"
        " tags text)", docs);
    SQL("INSERT INTO %s VALUES (1, 'merger plans osprey', '2024-01-01', '{alice}', 'secret'),"
        " (2, 'public osprey facts', '2024-01-02', '{alice,bob}', NULL)", docs);
    make_users(users, "('alice', NULL, NULL), ('bob', NULL, NULL)");
    load_cfg(&cfg, "{'principals': {'users_query': 'SELECT account, email, name FROM %s'},"
                   " 'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body': 'body',"
                   " 'updated_at': 'updated_at', 'allow_users': 'readers', 'labels': 'tags'}]}",
             users, docs);
    tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_hits("alice", "osprey", NULL, 0), 2);
    cr_assert_eq(tsync_hits("bob", "osprey", NULL, 0), 1);
    synced_before = tsync_int("SELECT acl_synced_at FROM documents WHERE ext_id = '1'");

    usleep(5 * 1000);
    SQL("UPDATE %s SET readers = '{bob}', tags = 'secret,legal', updated_at = now()"
        " WHERE id = 1", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 0, "content is the same: not re-chunked");
    cr_assert_eq(s.unchanged, 1);
    cr_assert_eq(tsync_hits("alice", "merger", NULL, 0), 0);
    cr_assert_eq(tsync_hits("bob", "merger", NULL, 0), 1);
    cr_assert_eq(tsync_int("SELECT count(*) FROM documents d JOIN acl_labels al ON al.acl_id ="
                        " d.acl_id WHERE d.ext_id = '1'"), 2);
    cr_assert(tsync_int("SELECT acl_synced_at FROM documents WHERE ext_id = '1'") > synced_before);
    ctx_config_free(&cfg);
}

/* ---- 5b. permission sync: ids and ACLs only ---- */

/*
 * An allow list changed without touching updated_at and a hard DELETE are
 * both invisible to an incremental sync; a permission sync applies the one
 * and deletes the other without re-chunking anything.
 */
Test(postgres, permission_sync_applies_acl_changes_and_hard_deletes_without_rechunking)
{
    char docs[64], users[64], *before, *ids_before, *after;
    ctx_config cfg;
    store_run_stats s;
    int64_t at0 = 0, at1 = 0, src;
    ctx_error err;

    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(users, sizeof users, "users");
    SQL("CREATE TABLE %s (id int, title text, body text, updated_at timestamptz,"
        " readers text[], hidden boolean)", docs);
    SQL("INSERT INTO %s SELECT i, 'Memo ' || i, 'heron memo number ' || i,"
        " '2024-03-01'::timestamptz + i * interval '1 minute', '{alice}', false"
        " FROM generate_series(1, 6) i", docs);
    make_users(users, "('alice', NULL, NULL), ('bob', NULL, NULL)");
    load_cfg(&cfg, "{'principals': {'users_query': 'SELECT account, email, name FROM %s'},"
                   " 'streams': [{'name': 'memos', 'table': '%s', 'id': 'id', 'title': 'title',"
                   " 'body': 'body', 'updated_at': 'updated_at', 'allow_users': 'readers',"
                   " 'deleted': 'hidden'}]}", users, docs);
    tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_hits("alice", "heron", NULL, 0), 6);
    src = tsync_int("SELECT id FROM sources WHERE name = 'pg'");
    cr_assert_eq(store_source_acl_synced_at(F.st, src, &at0, &err), CTX_OK, "%s", err.text);
    cr_assert_gt(at0, 0, "a first sync (no checkpoint) reads every row's permissions");

    /* Revoke alice from 2, grant bob 3, hard-delete 5; updated_at untouched. */
    SQL("UPDATE %s SET readers = '{bob}' WHERE id = 2", docs);
    SQL("UPDATE %s SET readers = '{alice,bob}' WHERE id = 3", docs);
    SQL("DELETE FROM %s WHERE id = 5", docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records + s.acls + s.deletes + s.pruned, 0, "an incremental sync sees none");
    cr_assert_eq(store_source_acl_synced_at(F.st, src, &at1, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(at1, at0, "an incremental sync from a checkpoint is no permission sync");
    cr_assert_eq(tsync_hits("alice", "heron", NULL, 0), 6);

    before = tsync_chunk_sig(0);
    ids_before = tsync_chunk_sig(1);
    s = tsync_perm_ok(&cfg);
    cr_assert_eq(s.acls, 2, "two allow lists changed");
    cr_assert_eq(s.pruned + s.deletes, 1, "one row is gone");
    cr_assert_eq(s.unchanged, 5, "every live row checked, none re-read as content");
    cr_assert_eq(s.records, 0, "nothing re-read as content");
    cr_assert_eq(s.chunks, 0, "nothing re-chunked");
    cr_assert_eq(tsync_hits("alice", "heron", NULL, 0), 4);
    cr_assert_eq(tsync_hits("bob", "heron", NULL, 0), 2);
    cr_assert_eq(tsync_int("SELECT deleted FROM documents WHERE ext_id = '5'"), 1);
    /* Chunk texts are those of before, minus the deleted row's. */
    after = tsync_chunk_sig(0);
    cr_assert(strstr(before, "memos/5#0=") && !strstr(after, "memos/5#0="), "%s", after);
    cr_assert_eq(strlen(after) + strlen("memos/5#0=heron memo number 5\n"), strlen(before),
                 "%s\n---\n%s", before, after);
    free(after);
    /* Rows whose permissions did not change keep their very chunks. */
    after = tsync_chunk_sig(1);
    for (const char *id = "146"; *id; id++) {
        char line[64];
        snprintf(line, sizeof line, "memos/%c#0=heron memo number %c @", *id, *id);
        const char *a = strstr(ids_before, line), *b = strstr(after, line);
        cr_assert(a && b, "%s", line);
        cr_assert_eq(atoll(a + strlen(line)), atoll(b + strlen(line)), "%s", line);
    }
    free(after);
    free(before);
    free(ids_before);
    cr_assert_eq(store_source_acl_synced_at(F.st, src, &at1, &err), CTX_OK, "%s", err.text);
    cr_assert(at1 > at0, "a permission sync is recorded");

    /* A second permission sync finds nothing to do; a soft delete is a DELETE. */
    SQL("UPDATE %s SET hidden = true WHERE id = 6", docs);
    s = tsync_perm_ok(&cfg);
    cr_assert_eq(s.acls, 0);
    cr_assert_eq(s.deletes + s.pruned, 1);
    cr_assert_eq(tsync_hits("alice", "heron", NULL, 0), 3);
    /* The incremental cursor is the content read's: the next sync reads nothing new. */
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 0);
    ctx_config_free(&cfg);
}

/* ---- 6. bad input ---- */

Test(postgres, wrong_password_is_eauth_without_the_password)
{
    static const char secret[] = "not-the-password-7f3a";
    char docs[64];
    ctx_config cfg;
    store_run_stats s;
    registry_conn conn;
    ctx_conn_error ce;
    ctx_error err;
    int rc;

    pgtest_name(docs, sizeof docs, "docs");
    setenv("CTX_TEST_BADPW", secret, 1);
    load_cfg(&cfg, "{'password_env': 'CTX_TEST_BADPW', 'retries': 2, 'streams': [{'name':"
                   " 'docs', 'table': '%s', 'id': 'id', 'allow_everyone': true}]}", docs);
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_EAUTH, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "conninfo: password authentication failed for user \"ctxtest\""),
              "%s", err.text);
    cr_assert(strstr(err.text, "check password_env"), "%s", err.text);
    cr_assert(!strstr(err.text, secret), "the password leaked: %s", err.text);
    cr_assert(!strstr(err.text, "attempts"), "credentials are not retried: %s", err.text);
    cr_assert_eq(tsync_int("SELECT count(*) FROM sync_runs WHERE status = 'failed'"
                        " AND error NOT LIKE '%%%s%%'", secret), 1);

    /* xCheck says the same. */
    cr_assert(registry_open(&cfg.sources[0], &conn, &err) == CTX_OK, "%s", err.text);
    memset(&ce, 0, sizeof ce);
    rc = conn.vt->xCheck(conn.conn, &ce);
    cr_assert_eq(rc, CTX_CONN_EAUTH, "%d: %s", rc, ce.text);
    cr_assert(!strstr(ce.text, secret));
    registry_close(&conn);
    ctx_config_free(&cfg);

    /* An unset password variable is a config error naming the variable. */
    unsetenv("CTX_TEST_NO_SUCH_PW");
    load_cfg(&cfg, "{'password_env': 'CTX_TEST_NO_SUCH_PW', 'streams': [{'name': 'docs',"
                   " 'table': '%s', 'id': 'id', 'allow_everyone': true}]}", docs);
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_ECONFIG, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "password_env: the environment variable \"CTX_TEST_NO_SUCH_PW\""
                               " is not set"), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(postgres, unreachable_server_is_esource_naming_host_and_port)
{
    char port[16], conninfo[128];
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    int rc, p = pgtest_free_port();

    cr_assert(p > 0);
    snprintf(port, sizeof port, "%d", p);
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=x user=y", p);
    load_cfg(&cfg, "{'conninfo': '%s', 'retries': 1, 'connect_timeout': 2, 'streams':"
                   " [{'name': 'docs', 'table': 't', 'id': 'id', 'allow_everyone': true}]}",
             conninfo);
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_ESOURCE, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "cannot connect to host \"127.0.0.1\" port"), "%s", err.text);
    cr_assert(strstr(err.text, port), "%s", err.text);
    cr_assert(strstr(err.text, "(2 attempts)"), "%s", err.text);
    cr_assert(strstr(err.text, "refused"), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(postgres, vanished_table_names_stream_and_table)
{
    char docs[64], want[160];
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    char *state;
    int rc;

    pgtest_name(docs, sizeof docs, "docs");
    SQL("CREATE TABLE %s (id int, body text, updated_at timestamptz)", docs);
    SQL("INSERT INTO %s VALUES (1, 'plover', now())", docs);
    load_cfg(&cfg, "{'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body': 'body',"
                   " 'updated_at': 'updated_at', 'allow_everyone': true}]}", docs);
    tsync_ok(&cfg, 0);
    state = tsync_state("docs");
    SQL("DROP TABLE %s", docs);
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_ESOURCE, "%s: %s", ctx_rc_name(rc), err.text);
    snprintf(want, sizeof want, "streams[0].table: relation \"%s\" does not exist (stream"
             " \"docs\")", docs);
    cr_assert(strstr(err.text, want), "%s", err.text);
    {
        char *after = tsync_state("docs");
        cr_assert_str_eq(after, state, "a failed read keeps the checkpoint");
        free(after);
    }
    free(state);
    cr_assert_eq(tsync_live_docs(), 1);
    ctx_config_free(&cfg);
}

/* open_err - registry_open's error for a source config. */
static int open_err(const char *json, ctx_error *err)
{
    ctx_config cfg;
    registry_conn conn;
    int rc;

    load_cfg(&cfg, "%s", json);
    rc = registry_open(&cfg.sources[0], &conn, err);
    if (!rc)
        registry_close(&conn);
    ctx_config_free(&cfg);
    return rc;
}

Test(postgres, invalid_config_is_rejected_with_the_path)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{'streams': [{'name': 'd', 'tabel': 't', 'id': 'id', 'allow_everyone': true}]}",
         "sources[0]: streams[0]: unknown key \"tabel\", did you mean \"table\""},
        {"{'batch_row': 5, 'streams': [{'name': 'd', 'table': 't', 'id': 'id'}]}",
         "unknown key \"batch_row\", did you mean \"batch_rows\""},
        {"{'streams': [{'name': 'd', 'table': 't', 'query': 'SELECT 1', 'id': 'id',"
         " 'allow_everyone': true}]}",
         "streams[0]: set exactly one of \"table\" and \"query\""},
        {"{'streams': [{'name': 'd', 'table': 't', 'id': 'id'}]}",
         "streams[0]: no permissions"},
        {"{'streams': [{'name': 'd', 'table': 't', 'allow_everyone': true}]}",
         "streams[0]: missing required key \"id\""},
        {"{'streams': [{'name': 'd', 'table': 't', 'id': 'id', 'allow_everyone': 'yes please'},"
         " {'name': 'd', 'table': 'u', 'id': 'id', 'allow_everyone': true}]}",
         "streams[1].name: \"d\" is already used by streams[0]"},
        {"{'password_file': '/x', 'streams': [{'name': 'd', 'table': 't', 'id': 'id',"
         " 'allow_everyone': true}]}",
         "password_env, password_file: set one of them, not both"},
        {"{'principals': {'group_query': 'SELECT 1'}}",
         "principals: unknown key \"group_query\", did you mean \"groups_query\""},
        {"{'streams': [{'name': 'principals', 'table': 't', 'id': 'id', 'allow_everyone': true}]}",
         "streams[0].name: \"principals\" is not a valid stream name"},
        {"{'conninfo': 'host', 'streams': [{'name': 'd', 'table': 't', 'id': 'id',"
         " 'allow_everyone': true}]}",
         "conninfo: not a valid libpq connection string"},
        {"{'streams': [{'name': 'd', 'table': 't', 'id': 'id', 'allow_everyone': 1}]}",
         "streams[0].allow_everyone: expected a boolean column name or true"},
    };
    ctx_error err;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = open_err(cases[i].json, &err);
        cr_assert_eq(rc, CTX_ECONFIG, "case %zu: %s: %s", i, ctx_rc_name(rc), err.text);
        cr_assert(strstr(err.text, cases[i].want), "case %zu: %s", i, err.text);
    }
}

Test(postgres, nulls_everywhere)
{
    char docs[64], users[64];
    ctx_config cfg;
    store_run_stats s;
    char *title, *body, *state;

    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(users, sizeof users, "users");
    SQL("CREATE TABLE %s (id text, title text, body text, summary text, link text,"
        " updated_at timestamptz, readers text[], teams text, tags text, gone boolean,"
        " everyone boolean, extra jsonb)", docs);
    SQL("INSERT INTO %s VALUES"
        " (NULL, 'no id', 'orphan text', NULL, NULL, '2024-01-01', '{alice}', NULL, NULL, NULL,"
        "  NULL, NULL),"
        " ('n1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
        " ('n2', 'Hidden', 'secret heron notes', NULL, NULL, '2024-01-02', NULL, NULL, NULL,"
        "  NULL, NULL, NULL),"
        " ('n3', 'Visible', NULL, 'public heron notes', NULL, '2024-01-03', '{alice, NULL}',"
        "  NULL, NULL, false, NULL, '{\"k\": [1, 2]}')", docs);
    make_users(users, "('alice', NULL, NULL), (NULL, 'x@y', NULL)");
    load_cfg(&cfg, "{'principals': {'users_query': 'SELECT account, email, name FROM %s'},"
                   " 'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'title': 'title',"
                   " 'body': ['body', 'summary'], 'url': 'link', 'updated_at': 'updated_at',"
                   " 'allow_users': 'readers', 'allow_groups': 'teams', 'labels': 'tags',"
                   " 'deleted': 'gone', 'allow_everyone': 'everyone', 'metadata': ['extra']}]}",
             users, docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 3, "the NULL-id row is skipped");
    cr_assert_eq(s.deletes, 0, "a NULL soft-delete column means live");
    cr_assert_eq(tsync_live_docs(), 3);
    cr_assert_eq(tsync_int("SELECT count(*) FROM documents WHERE title = 'no id'"), 0);
    title = tsync_text("SELECT title FROM documents WHERE ext_id = 'n1'");
    body = tsync_text("SELECT body FROM documents WHERE ext_id = 'n1'");
    cr_assert_str_eq(title, "");
    cr_assert_str_eq(body, "");
    free(title);
    free(body);
    /* NULL permission columns: an empty ACL, which nobody may read. */
    cr_assert_eq(tsync_int("SELECT count(*) FROM acl_entries e JOIN documents d ON"
                        " d.acl_id = e.acl_id WHERE d.ext_id IN ('n1', 'n2')"), 0);
    cr_assert_eq(tsync_hits("alice", "heron", NULL, 0), 1);
    cr_assert_eq(tsync_hits("alice", "secret", NULL, 0), 0);
    /* The NULL-dated row sorts last and does not move the cursor. */
    state = tsync_state("docs");
    cr_assert_str_eq(state, "{\"cursor_ts\":\"2024-01-03 00:00:00+00\",\"cursor_id\":\"n3\"}");
    free(state);
    ctx_config_free(&cfg);
}

Test(postgres, oversized_row_fails_cleanly_and_commits_nothing_past_the_checkpoint)
{
    char docs[64];
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    char *state_before, *state_after;
    int rc;

    pgtest_name(docs, sizeof docs, "docs");
    SQL("CREATE TABLE %s (id text, body text, updated_at timestamptz)", docs);
    SQL("INSERT INTO %s VALUES ('a1', 'small one', '2024-01-01'), ('a2', 'small two',"
        " '2024-01-02'), ('a3', 'small three', '2024-01-03')", docs);
    load_cfg(&cfg, "{'batch_rows': 2, 'state_every': 1, 'streams': [{'name': 'docs', 'table':"
                   " '%s', 'id': 'id', 'body': 'body', 'updated_at': 'updated_at',"
                   " 'allow_everyone': true}]}", docs);
    tsync_ok(&cfg, 0);
    state_before = tsync_state("docs");
    cr_assert(strstr(state_before, "\"a3\""), "%s", state_before);

    SQL("INSERT INTO %s VALUES ('b4', repeat('x', 50 * 1024 * 1024), '2024-01-04'),"
        " ('a5', 'after the big one', '2024-01-05')", docs);
    rc = tsync_run(&cfg, 0, &s, &err);
    cr_assert_eq(rc, CTX_ETOOBIG, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "docs/b4"), "%s", err.text);
    cr_assert(strstr(err.text, "max_record_bytes"), "%s", err.text);
    state_after = tsync_state("docs");
    cr_assert_str_eq(state_after, state_before);
    cr_assert_eq(tsync_live_docs(), 3);
    cr_assert_eq(tsync_int("SELECT count(*) FROM documents WHERE ext_id IN ('b4', 'a5')"), 0);
    cr_assert_eq(tsync_int("SELECT count(*) FROM sync_runs WHERE status = 'failed'"), 1);
    free(state_before);
    free(state_after);
    ctx_config_free(&cfg);
}

Test(postgres, invalid_utf8_is_repaired_by_the_host)
{
    char dbname[64], docs[64], users[64], extra[96], why[1024];
    ctx_config cfg;
    store_run_stats s;
    PGconn *adb;

    /* A UTF8 database refuses bad bytes; a SQL_ASCII one stores them as given. */
    pgtest_name(dbname, sizeof dbname, "ctxascii");
    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(users, sizeof users, "users");
    SQL("CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
        dbname);
    snprintf(F.dropdb, sizeof F.dropdb, "%s", dbname);
    snprintf(extra, sizeof extra, "dbname=%s", dbname);
    adb = pgtest_connect(extra, why, sizeof why);
    cr_assert(adb != NULL, "%s", why);
#define ASQL(...) cr_assert(pgtest_exec(adb, why, sizeof why, __VA_ARGS__) == 0, "%s", why)
    ASQL("CREATE TABLE %s (id text, title text, body text, readers text)", docs);
    ASQL("INSERT INTO %s VALUES ('u1', E'Caf\\xe9', E'cr\\xe8me brulee \\xff\\xfe recipe',"
         " E'alice,b\\xffd')", docs);
    ASQL("CREATE TABLE %s (account text, email text, name text)", users);
    ASQL("INSERT INTO %s VALUES ('alice', NULL, 'Alice'), (E'b\\xffd', NULL, NULL)", users);
#undef ASQL
    PQfinish(adb);

    load_cfg(&cfg, "{'conninfo': '%s dbname=%s', 'principals': {'users_query':"
                   " 'SELECT account, email, name FROM %s'}, 'streams': [{'name': 'docs',"
                   " 'table': '%s', 'id': 'id', 'title': 'title', 'body': 'body',"
                   " 'allow_users': 'readers'}]}",
             pgtest_conninfo(), dbname, users, docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.records, 1);
    cr_assert(s.repaired_utf8 >= 3, "title and body repaired: %lld", (long long)s.repaired_utf8);
    cr_assert_eq(tsync_int("SELECT instr(body, char(65533)) > 0 FROM documents WHERE ext_id = 'u1'"),
                 1);
    cr_assert_eq(tsync_int("SELECT instr(title, char(65533)) > 0 FROM documents WHERE ext_id = 'u1'"),
                 1);
    cr_assert_eq(tsync_hits("alice", "brulee", NULL, 0), 1);
    cr_assert_eq(tsync_hits("b\xef\xbf\xbd" "d", "brulee", NULL, 0), 1, "repaired ACL values too");
    ctx_config_free(&cfg);
}

Test(postgres, connection_lost_mid_read_fails_then_resumes)
{
    char docs[64], app[64];
    ctx_config cfg;
    store_run_stats s;
    ctx_error err;
    sync_opts o;
    tsync_killer k;
    int rc;

    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(app, sizeof app, "ctxkill");
    SQL("CREATE TABLE %s (id int, body text, updated_at timestamptz)", docs);
    SQL("INSERT INTO %s SELECT i, 'row ' || i, '2024-01-01'::timestamptz + i * interval '1 s'"
        " FROM generate_series(1, 6) i", docs);
    load_cfg(&cfg, "{'conninfo': '%s application_name=%s', 'batch_rows': 2, 'state_every': 1,"
                   " 'streams': [{'name': 'docs', 'table': '%s', 'id': 'id', 'body': 'body',"
                   " 'updated_at': 'updated_at', 'allow_everyone': true}]}",
             pgtest_conninfo(), app, docs);
    memset(&o, 0, sizeof o);
    memset(&k, 0, sizeof k);
    k.db = F.db;
    k.app = app;
    o.progress = tsync_kill_progress;
    o.progress_arg = &k;
    /* Progress comes from the thread that applies the rows; a queue of one
     * message keeps the connector at most a row or two ahead of it, so the
     * kill lands while the read is still going (with the default queue all
     * six rows can be read before the first is applied). */
    o.queue_msgs = 1;
    rc = tsync_run_opts(&cfg, &o, &s, &err);
    cr_assert_eq(rc, CTX_ESOURCE, "%s: %s", ctx_rc_name(rc), err.text);
    cr_assert(strstr(err.text, "streams[0]: connection to the server lost after"), "%s",
              err.text);
    /*
     * The kill lands after 2 rows; the batch already fetched (the next FETCH
     * is pipelined) may still be indexed. With a STATE per row, exactly the
     * rows read before the loss stay, and the resumed run reads the rest.
     */
    {
        int64_t kept = tsync_live_docs();
        char want[64];
        snprintf(want, sizeof want, "lost after %lld rows", (long long)kept);
        cr_assert(kept >= 2 && kept <= 4, "kept %lld", (long long)kept);
        cr_assert(strstr(err.text, want), "%s (kept %lld)", err.text, (long long)kept);
        s = tsync_ok(&cfg, 0);
        cr_assert_eq(s.records, 6 - kept);
    }
    cr_assert_eq(tsync_live_docs(), 6);
    ctx_config_free(&cfg);
}

/* ---- 7. principals: nested groups and account mapping ---- */

Test(postgres, principals_nested_groups_and_mapped_accounts)
{
    char docs[64], users[64], groups[64], titles[256];
    ctx_config cfg;
    store_run_stats s;

    pgtest_name(docs, sizeof docs, "docs");
    pgtest_name(users, sizeof users, "users");
    pgtest_name(groups, sizeof groups, "groups");
    SQL("CREATE TABLE %s (id int, title text, body text, grp text)", docs);
    SQL("INSERT INTO %s VALUES (1, 'Roadmap', 'architecture roadmap falcon', 'eng-all'),"
        " (2, 'Forecast', 'pipeline forecast falcon', 'sales')", docs);
    SQL("CREATE TABLE %s (login text, mail text, display text)", users);
    SQL("INSERT INTO %s VALUES ('bob', 'bob@example.com', 'Bob'),"
        " ('carol', 'carol@example.com', 'Carol'), ('dave@example.com', 'dave@example.com',"
        " 'Dave')", users);
    SQL("CREATE TABLE %s (group_name text, member text)", groups);
    SQL("INSERT INTO %s VALUES ('eng-all', 'group:eng-backend'), ('eng-backend', 'bob'),"
        " ('group:sales', 'user:carol'), ('empty', NULL)", groups);
    load_cfg(&cfg, "{'principals': {'users_query': 'SELECT login, mail, display FROM %s',"
                   " 'groups_query': 'SELECT * FROM %s'}, 'streams': [{'name': 'docs', 'table':"
                   " '%s', 'id': 'id', 'title': 'title', 'body': 'body', 'allow_groups':"
                   " 'grp'}]}", users, groups, docs);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(s.principals, 3 + 4, "3 users, 4 groups");

    cr_assert_eq(tsync_hits("bob@example.com", "falcon", titles, sizeof titles), 1);
    cr_assert_str_eq(titles, "Roadmap", "via eng-backend inside eng-all");
    cr_assert_eq(tsync_hits("carol@example.com", "falcon", titles, sizeof titles), 1);
    cr_assert_str_eq(titles, "Forecast");
    cr_assert_eq(tsync_hits("dave@example.com", "falcon", NULL, 0), 0, "declared, in no group");
    cr_assert_eq(tsync_hits("bob", "falcon", NULL, 0), 0, "a source account is not a login");

    cr_assert_eq(tsync_int("SELECT count(*) FROM identities i JOIN principals a ON a.id ="
                        " i.account_id JOIN principals u ON u.id = i.user_id WHERE a.name ="
                        " 'user:bob' AND u.name = 'user:bob@example.com'"), 1);
    cr_assert_eq(tsync_int("SELECT count(*) FROM principals WHERE name = 'user:dave@example.com'"
                        " AND declared = 1 AND display_name = 'Dave'"), 1);
    cr_assert_eq(tsync_int("SELECT count(*) FROM memberships m JOIN principals g ON g.id ="
                        " m.group_id JOIN principals x ON x.id = m.member_id WHERE g.name ="
                        " 'group:eng-all' AND x.name = 'group:eng-backend'"), 1);
    cr_assert_eq(tsync_int("SELECT count(*) FROM principals WHERE name = 'group:empty'"
                        " AND declared = 1"), 1);

    /* A group that disappears from groups_query loses its members. */
    SQL("DELETE FROM %s WHERE member = 'bob'", groups);
    s = tsync_ok(&cfg, 0);
    cr_assert_eq(tsync_hits("bob@example.com", "falcon", NULL, 0), 0);
    cr_assert_eq(tsync_int("SELECT count(*) FROM memberships m JOIN principals g ON g.id ="
                        " m.group_id WHERE g.name = 'group:eng-backend'"), 0);
    cr_assert_eq(tsync_hits("carol@example.com", "falcon", NULL, 0), 1);
    ctx_config_free(&cfg);
}

/* ---- discover, check and spec ---- */

static int collect(void *arg, const char *name, const char *desc)
{
    char *out = arg;
    (void)desc;
    strcat(out, name);
    strcat(out, ";");
    return 0;
}

Test(postgres, discover_check_and_spec)
{
    char docs[64], names[256] = "";
    ctx_config cfg;
    registry_conn conn;
    ctx_conn_error ce;
    ctx_error err;
    json_t *spec;
    int rc;

    pgtest_name(docs, sizeof docs, "docs");
    SQL("CREATE TABLE %s (id int, title text, updated_at text)", docs);
    load_cfg(&cfg, "{'principals': {'groups_query': 'SELECT 1, 2'}, 'streams': [{'name': 'a',"
                   " 'table': 'public.%s', 'id': 'id', 'title': 'title', 'allow_everyone':"
                   " true}, {'name': 'b', 'query': 'SELECT 1 AS id', 'id': 'id',"
                   " 'allow_everyone': true}]}", docs);
    cr_assert(registry_open(&cfg.sources[0], &conn, &err) == CTX_OK, "%s", err.text);
    memset(&ce, 0, sizeof ce);
    cr_assert_eq(conn.vt->xDiscover(conn.conn, collect, names, &ce), CTX_CONN_OK, "%s", ce.text);
    cr_assert_str_eq(names, "principals;a;b;");
    rc = conn.vt->xCheck(conn.conn, &ce);
    cr_assert_eq(rc, CTX_CONN_OK, "%s", ce.text);

    spec = json_loads(conn.vt->xSpec(), 0, NULL);
    cr_assert(json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
                  json_object_get(spec, "properties"), "streams"), "items"), "properties"),
                  "table"), "description"));
    cr_assert(json_object_get(json_object_get(json_object_get(json_object_get(spec, "properties"),
                  "principals"), "properties"), "groups_query"));
    json_decref(spec);
    registry_close(&conn);
    ctx_config_free(&cfg);

    /* xCheck finds a misspelled column and a cursor column of the wrong type. */
    load_cfg(&cfg, "{'streams': [{'name': 'a', 'table': '%s', 'id': 'id', 'title': 'titel',"
                   " 'allow_everyone': true}]}", docs);
    cr_assert(registry_open(&cfg.sources[0], &conn, &err) == CTX_OK, "%s", err.text);
    rc = conn.vt->xCheck(conn.conn, &ce);
    cr_assert_eq(rc, CTX_CONN_ECONFIG, "%s", ce.text);
    cr_assert(strstr(ce.text, "streams[0].title: no column \"titel\""), "%s", ce.text);
    cr_assert(strstr(ce.text, "its columns are: id, title, updated_at"), "%s", ce.text);
    registry_close(&conn);
    ctx_config_free(&cfg);

    load_cfg(&cfg, "{'streams': [{'name': 'a', 'table': '%s', 'id': 'id', 'updated_at':"
                   " 'updated_at', 'allow_everyone': true}]}", docs);
    cr_assert(registry_open(&cfg.sources[0], &conn, &err) == CTX_OK, "%s", err.text);
    rc = conn.vt->xCheck(conn.conn, &ce);
    cr_assert_eq(rc, CTX_CONN_ECONFIG, "%s", ce.text);
    cr_assert(strstr(ce.text, "streams[0].updated_at: column \"updated_at\" is text"), "%s",
              ce.text);
    registry_close(&conn);
    ctx_config_free(&cfg);
}
