/*
 * test_store.c - schema creation and versioning, ACL interning, principals.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "indexer/ingest.h"
#include "retrieval/acl.h"
#include "tests/lib/testutil.h"

static char *dir;
static ctx_store *st;

static void setup(void)
{
    dir = tu_tmpdir("store");
    st = tu_store(dir);
}

static void teardown(void)
{
    if (st)
        store_close(st);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, fresh_store_is_wal_and_versioned)
{
    cr_assert_eq(tu_count(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM principals WHERE name = 'everyone'"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
}

Test(store, reopening_keeps_data_and_newer_schema_is_refused)
{
    char path[4096];
    ctx_error err;
    ctx_store *again;
    int64_t id;

    cr_assert_eq(store_source(st, "a", "files", &id, &err), 0);
    store_close(st);
    st = tu_store(dir);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sources"), 1);
    cr_assert_eq(store_exec(st, "PRAGMA user_version = 99", &err), 0);
    store_close(st);
    st = NULL;
    snprintf(path, sizeof path, "%s/ctxgate.db", dir);
    cr_assert_eq(store_open(path, 0, &again, &err), CTX_ESTORE);
    cr_assert(strstr(err.text, "schema version 99 is newer"), "%s", err.text);
}

/* back_to_v6 - undo schema v7, as a store of an older ctxgate has it. */
static void back_to_v6(ctx_store *s)
{
    ctx_error err;
    cr_assert_eq(store_exec(s, "DROP INDEX acl_sets_source;"
                               "ALTER TABLE acl_sets DROP COLUMN source_id;"
                               "DROP TABLE declared_by; DROP TABLE source_trust;"
                               "DROP TRIGGER sources_INSERT; DROP TRIGGER acl_sets_UPDATE;"
                               "PRAGMA user_version = 6", &err), 0, "%s", err.text);
}

/*
 * v7 gives every ACL set to one source. Two sources whose documents carry
 * the same lists shared one set before; after the upgrade each has its
 * own, the moved documents keep their text (re-indexed, not re-read), and
 * declarations made before v7 are attributed by evidence.
 */
Test(store, v7_gives_each_source_its_own_acl_sets)
{
    const char *allow[] = {"group:eng"}, *members[] = {"user:bob@x"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    ctx_principal g = {.kind = CTX_PRINCIPAL_GROUP, .id = "group:eng", .members = members,
                       .n_members = 1};
    ctx_error err;
    int64_t a, b, shared;
    ingest_ctx ic;
    store_run_stats stats;

    cr_assert_eq(store_source(st, "a", "files", &a, &err), 0);
    cr_assert_eq(store_source(st, "b", "files", &b, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_principal_put(st, a, &g, &err), 0, "%s", err.text);
    {
        ctx_principal u = {.kind = CTX_PRINCIPAL_USER, .id = "user:bob@x"};
        cr_assert_eq(store_principal_put(st, a, &u, &err), 0, "%s", err.text);
    }
    for (int i = 0; i < 2; i++) {
        ctx_record r = {.stream = "docs", .id = i ? "b1" : "a1",
                        .title = i ? "beta notes" : "alpha notes",
                        .body = "the quarterly roadmap", .body_len = 21, .acl = &acl};
        tu_ingest_init(&ic, st, i ? b : a, &stats);
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
    cr_assert_eq(tu_count(st, "SELECT count(DISTINCT acl_id) FROM documents"), 2);
    /* As v6 made it: one set for both, and a declaration nobody owns. */
    shared = tu_count(st, "SELECT min(acl_id) FROM documents");
    cr_assert_eq(store_exec(st, "UPDATE documents SET acl_id = (SELECT min(acl_id) FROM"
                                " documents); UPDATE chunks SET acl_id = (SELECT min(acl_id)"
                                " FROM documents); DELETE FROM acl_sets WHERE id NOT IN"
                                " (SELECT acl_id FROM documents); DELETE FROM acl_entries"
                                " WHERE acl_id NOT IN (SELECT id FROM acl_sets);"
                                " DELETE FROM declared_by;", &err), 0, "%s", err.text);
    back_to_v6(st);
    store_close(st);
    st = tu_store(dir);
    cr_assert_eq(tu_count(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    cr_assert_eq(tu_count(st, "SELECT count(DISTINCT acl_id) FROM documents"), 2);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents d JOIN acl_sets s"
                              " ON s.id = d.acl_id AND s.source_id = d.source_id"), 2,
                 "each document's set is its own source's");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks c JOIN documents d ON d.id ="
                              " c.doc_id WHERE c.acl_id = d.acl_id"), 2);
    cr_assert_eq(tu_count(st, "SELECT source_id FROM acl_sets WHERE id = (SELECT acl_id"
                              " FROM documents WHERE ext_id = 'a1')"), a);
    cr_assert_eq(shared, tu_count(st, "SELECT acl_id FROM documents WHERE ext_id = 'a1'"),
                 "the first source keeps the set");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM acl_entries WHERE acl_id ="
                              " (SELECT acl_id FROM documents WHERE ext_id = 'b1')"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH"
                              " 'roadmap'"), 2, "the moved document is still found");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM declared_by WHERE source_id = 1"), 2,
                 "bob (a member) and eng (a group with members) are a's");
}

/* A store made before v6 kept its audit log in a table: opening it moves
 * the rows, ids and all, to the log's own file, once. */
Test(store, audit_rows_of_an_older_store_move_to_the_log_file)
{
    char path[4096], logpath[4096];
    ctx_error err;
    ctx_store *log;

    snprintf(path, sizeof path, "%s/ctxgate.db", dir);
    cr_assert_eq(store_audit_path(path, logpath, sizeof logpath, &err), CTX_OK);
    cr_assert(strstr(logpath, "/ctxgate-audit.db"), "%s", logpath);
    for (int pass = 0; pass < 2; pass++) {
        /* As v5 left it; the second pass is a crash after the log's commit
         * and before the store's: the rows are still in both. */
        cr_assert_eq(store_exec(st, "CREATE TABLE audit(id INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
                                    " user TEXT, agent TEXT, action TEXT NOT NULL, query TEXT,"
                                    " query_sha256 TEXT, doc_ids TEXT NOT NULL, tokens INTEGER"
                                    " NOT NULL, latency_us INTEGER NOT NULL, outcome TEXT NOT NULL);"
                                    "INSERT INTO audit VALUES(7, 1000, 'u', 'a', 'search', 'q',"
                                    " 'h', '[1]', 12, 30, 'ok'), (9, 2000, 'v', NULL, 'fetch',"
                                    " NULL, NULL, '[]', 0, 5, 'not_found');", &err), 0,
                     "%s", err.text);
        back_to_v6(st);
        cr_assert_eq(store_exec(st, "PRAGMA user_version = 5", &err), 0);
        store_close(st);
        st = tu_store(dir);
        cr_assert_eq(tu_count(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
        cr_assert_eq(tu_count(st, "SELECT count(*) FROM sqlite_master WHERE name = 'audit'"), 0);
        cr_assert_eq(store_audit_open(path, &log, &err), CTX_OK, "%s", err.text);
        cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit"), 2);
        cr_assert_eq(tu_count(log, "SELECT tokens FROM audit WHERE id = 7 AND user = 'u'"
                                   " AND doc_ids = '[1]'"), 12);
        cr_assert_eq(tu_count(log, "SELECT count(*) FROM audit WHERE id = 9 AND agent IS NULL"
                                   " AND outcome = 'not_found'"), 1);
        store_close(log);
    }
    cr_assert_eq(store_audit_path(":memory:", logpath, sizeof logpath, &err), CTX_ESTORE);
    cr_assert(strstr(err.text, "data_dir"), "%s", err.text);
}

Test(store, acl_sets_are_interned_regardless_of_order)
{
    const char *a1[] = {"group:b", "user:a", "group:b"}, *a2[] = {"user:a", "group:b"};
    const char *l1[] = {"pii"};
    ctx_acl x = {a1, 3, NULL, 0, NULL, 0}, y = {a2, 2, NULL, 0, NULL, 0};
    ctx_acl z = {a2, 2, NULL, 0, l1, 1}, w = {a2, 2, a1, 1, NULL, 0};
    int64_t ix, iy, iz, iw, inone, iempty;
    ctx_error err;

    cr_assert_eq(store_acl_intern(st, 1, &x, &ix, &err), 0, "%s", err.text);
    cr_assert_eq(store_acl_intern(st, 1, &y, &iy, &err), 0);
    cr_assert_eq(store_acl_intern(st, 1, &z, &iz, &err), 0);
    cr_assert_eq(store_acl_intern(st, 1, &w, &iw, &err), 0);
    cr_assert_eq(ix, iy);
    cr_assert_neq(ix, iz, "labels are part of the set");
    cr_assert_neq(ix, iw, "deny is part of the set");
    cr_assert_eq(store_acl_intern(st, 1, NULL, &inone, &err), 0);
    {
        ctx_acl e = {NULL, 0, NULL, 0, NULL, 0};
        cr_assert_eq(store_acl_intern(st, 1, &e, &iempty, &err), 0);
    }
    cr_assert_eq(inone, iempty, "no ACL and an empty ACL are the same: nobody");
    {
        int64_t other;
        cr_assert_eq(store_acl_intern(st, 2, &x, &other, &err), 0);
        cr_assert_neq(other, ix, "the same lists in another source are that source's own set");
        cr_assert_eq(tu_count(st, "SELECT count(DISTINCT source_id) FROM acl_sets"), 2);
    }
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM acl_entries WHERE acl_id ="
                              " (SELECT min(id) FROM acl_sets)"), 2);
}

Test(store, bad_principal_names_are_rejected)
{
    const char *bad[] = {"alice"};
    ctx_acl a = {bad, 1, NULL, 0, NULL, 0};
    int64_t id;
    ctx_error err;
    cr_assert_eq(store_acl_intern(st, 1, &a, &id, &err), CTX_EINVAL);
    cr_assert(strstr(err.text, "expected \"user:<id>\""), "%s", err.text);
    cr_assert_eq(store_principal_id(st, "user:", &id, &err), CTX_EINVAL);
}

Test(store, principals_nest_map_and_resolve)
{
    const char *eng[] = {"user:bo", "group:oncall"}, *oncall[] = {"user:acct7"};
    ctx_principal pe = {CTX_PRINCIPAL_GROUP, "group:eng", NULL, NULL, NULL, eng, 2};
    ctx_principal po = {CTX_PRINCIPAL_GROUP, "group:oncall", NULL, NULL, NULL, oncall, 1};
    ctx_principal pa = {CTX_PRINCIPAL_USER, "user:acct7", NULL, "al@x", "user:al@x", NULL, 0};
    ctx_principal pb = {CTX_PRINCIPAL_USER, "user:bo", "Bo", NULL, NULL, NULL, 0};
    ctx_principal loop = {CTX_PRINCIPAL_GROUP, "group:oncall", NULL, NULL, NULL,
                          (const char *[]){"group:eng", "user:acct7"}, 2};
    acl_principals p;
    ctx_error err;
    int64_t src;

    cr_assert_eq(store_source(st, "s", "t", &src, &err), 0);
    cr_assert_eq(store_principal_put(st, src, &pe, &err), 0, "%s", err.text);
    cr_assert_eq(store_principal_put(st, src, &po, &err), 0, "%s", err.text);
    cr_assert_eq(store_principal_put(st, src, &pa, &err), 0, "%s", err.text);
    cr_assert_eq(store_principal_put(st, src, &pb, &err), 0, "%s", err.text);

    /* al logs in; the account acct7 stands for al: al, acct7, oncall, eng, everyone. */
    cr_assert_eq(acl_resolve(store_db(st), "al@x", &p, &err), 0, "%s", err.text);
    cr_assert_eq(p.n, 5);
    acl_principals_free(&p);
    /* The account itself is not a login. */
    cr_assert_eq(acl_resolve(store_db(st), "acct7", &p, &err), CTX_ENOTFOUND);
    cr_assert_eq(p.n, 0);
    /* bo: bo, eng, everyone. */
    cr_assert_eq(acl_resolve(store_db(st), "user:bo", &p, &err), 0);
    cr_assert_eq(p.n, 3);
    acl_principals_free(&p);
    /* A membership cycle terminates. */
    cr_assert_eq(store_principal_put(st, src, &loop, &err), 0, "%s", err.text);
    cr_assert_eq(acl_resolve(store_db(st), "bo", &p, &err), 0);
    cr_assert_eq(p.n, 4);
    acl_principals_free(&p);
    /* A group cannot contain everyone. */
    {
        ctx_principal ev = {CTX_PRINCIPAL_GROUP, "group:all", NULL, NULL, NULL,
                            (const char *[]){"everyone"}, 1};
        cr_assert_eq(store_principal_put(st, src, &ev, &err), CTX_EINVAL);
        cr_assert(strstr(err.text, "cannot be a member"), "%s", err.text);
    }
}

Test(store, names_are_interned_as_valid_utf8)
{
    const char *al[] = {"group:caf\xE9"}, *lb[] = {"conf\xFFidential"};
    ctx_acl a = {al, 1, NULL, 0, lb, 1};
    int64_t id, again;
    ctx_error err;

    cr_assert_eq(store_acl_intern(st, 1, &a, &id, &err), 0, "%s", err.text);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM principals WHERE name = 'group:caf'"
                              " || char(65533)"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM labels WHERE name = 'conf' || char(65533)"
                              " || 'idential'"), 1);
    /* The repaired spelling is the same principal as the valid one. */
    cr_assert_eq(store_principal_id(st, "group:caf\xEF\xBF\xBD", &again, &err), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM principals WHERE name LIKE 'group:caf%'"), 1);
}

/* Two agents started together create the same new store at once. */
/* A full run pending per stream; the permission sync time only moves forward. */
Test(store, pending_full_runs_and_the_permission_sync_time)
{
    ctx_error err;
    int64_t src, epoch, at;

    cr_assert_eq(store_source(st, "s", "files", &src, &err), 0, "%s", err.text);
    cr_assert_eq(store_pending_get(st, src, "docs", &epoch, &err), 0, "%s", err.text);
    cr_assert_eq(epoch, 0);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_pending_put(st, src, "docs", 42, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(store_pending_get(st, src, "docs", &epoch, &err), 0);
    cr_assert_eq(epoch, 42);
    cr_assert_eq(store_pending_get(st, src, "other", &epoch, &err), 0);
    cr_assert_eq(epoch, 0, "per stream");
    cr_assert_eq(store_pending_clear(st, src, "docs", &err), 0, "%s", err.text);
    cr_assert_eq(store_pending_get(st, src, "docs", &epoch, &err), 0);
    cr_assert_eq(epoch, 0);

    cr_assert_eq(store_source_acl_synced_at(st, src, &at, &err), 0, "%s", err.text);
    cr_assert_eq(at, 0, "never");
    cr_assert_eq(store_source_acl_synced_put(st, src, 2000, &err), 0, "%s", err.text);
    cr_assert_eq(store_source_acl_synced_put(st, src, 1000, &err), 0, "%s", err.text);
    cr_assert_eq(store_source_acl_synced_at(st, src, &at, &err), 0);
    cr_assert_eq(at, 2000, "a slower, older run does not move it back");
}

/* What a permission run did not see is deleted, chunks and all; the rest stays. */
Test(store, permission_prune_deletes_exactly_the_unseen)
{
    const char *allow[] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    store_chunk ch = {"some text", 9, 2};
    store_doc_info info;
    ctx_error err;
    int64_t src, acl_id, ids[3] = {0, 0, 0}, n;
    char ext[8];

    cr_assert_eq(store_source(st, "s", "files", &src, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_acl_intern(st, src, &acl, &acl_id, &err), 0);
    for (int i = 0; i < 3; i++) {
        store_doc d = {src, "docs", ext, "t", NULL, "b", NULL, 1, 0, acl_id, "h", 1};
        snprintf(ext, sizeof ext, "d%d", i);
        cr_assert_eq(store_doc_write(st, &d, &ids[i], &err), 0, "%s", err.text);
        cr_assert_eq(store_chunks_add(st, ids[i], "t", acl_id, &ch, 1, &err), 0);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(store_perm_begin(st, &err), 0, "%s", err.text);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_doc_acl_lookup(st, src, "docs", "d1", &info, &err), 0, "%s", err.text);
    cr_assert(info.id == ids[1] && info.acl_id == acl_id && !info.deleted);
    cr_assert_eq(store_perm_seen(st, ids[0], &err), 0, "%s", err.text);
    cr_assert_eq(store_perm_seen(st, ids[2], &err), 0);
    cr_assert_eq(store_perm_seen(st, ids[2], &err), 0, "an id seen twice");
    cr_assert_eq(store_perm_prune(st, src, "docs", 9, &n, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 1 AND ext_id = 'd1'"),
                 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks"), 2);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts"), 2);
    /* A new run starts from an empty set. */
    cr_assert_eq(store_perm_begin(st, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_perm_prune(st, src, "docs", 10, &n, &err), 0);
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(n, 2);
}

/* store_doc_next lists a stream's live ids in byte order, as strcmp sorts them. */
Test(store, next_document_in_byte_order_skips_tombstones_and_other_streams)
{
    static const char *const ids[] = {"a/x.md", "a-b.md", "b.md", "\xc3\xa9.md", "A.md"};
    const char *allow[] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    ctx_error err;
    int64_t src, acl_id, doc;
    char *next = NULL, *after = NULL;
    const char *want[] = {"A.md", "a-b.md", "a/x.md", "\xc3\xa9.md"};
    size_t k = 0;

    cr_assert_eq(store_source(st, "s", "files", &src, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_acl_intern(st, src, &acl, &acl_id, &err), 0);
    for (size_t i = 0; i < 5; i++) {
        store_doc d = {src, "files", ids[i], "t", NULL, "b", NULL, 1, 0, acl_id, "h", 1};
        doc = 0;
        cr_assert_eq(store_doc_write(st, &d, &doc, &err), 0, "%s", err.text);
        if (!strcmp(ids[i], "b.md"))
            cr_assert_eq(store_doc_delete(st, doc, 1, &err), 0, "%s", err.text);
    }
    {
        store_doc d = {src, "other", "a.md", "t", NULL, "b", NULL, 1, 0, acl_id, "h", 1};
        doc = 0;
        cr_assert_eq(store_doc_write(st, &d, &doc, &err), 0, "%s", err.text);
    }
    /* Uncommitted writes count: the sync runner asks inside its batch. */
    do {
        cr_assert_eq(store_doc_next(st, src, "files", after, &next, &err), 0, "%s", err.text);
        if (next) {
            cr_assert(k < 4, "more ids than written: %s", next);
            cr_assert_str_eq(next, want[k], "id %zu", k);
            k++;
        }
        ctx_free(after);
        after = next;
    } while (next);
    cr_assert_eq(k, 4);
    cr_assert_eq(store_commit(st, &err), 0);
}

Test(store_race, processes_creating_one_store_at_once_all_open_it)
{
    char *d = tu_tmpdir("storerace"), path[4096];
    int failed = 0;

    for (int round = 0; round < 60; round++) {
        pid_t p[3];
        snprintf(path, sizeof path, "%s/s%d.db", d, round);
        for (int i = 0; i < 3; i++) {
            if (!(p[i] = fork())) {
                ctx_store *s;
                ctx_error e;
                if (store_open(path, 0, &s, &e)) {
                    fprintf(stderr, "store_open: %s\n", e.text);
                    _exit(1);
                }
                store_close(s);
                _exit(0);
            }
        }
        for (int i = 0; i < 3; i++) {
            int status;
            cr_assert_eq(waitpid(p[i], &status, 0), p[i]);
            failed += !WIFEXITED(status) || WEXITSTATUS(status);
        }
    }
    cr_assert_eq(failed, 0, "%d of 180 opens failed", failed);
    tu_rmrf(d);
    free(d);
}

/* ingest_one - a one-chunk document id with body into source src, committed. */
static void ingest_one(int64_t src, const char *id, const char *body)
{
    const char *allow[] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    ctx_record r = {.stream = "docs", .id = id, .title = id, .body = body,
                    .body_len = strlen(body), .acl = &acl};
    store_run_stats stats;
    ingest_ctx ic;
    ctx_error err;

    tu_ingest_init(&ic, st, src, &stats);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
}

/* delete_one - document id of source src deleted, committed. */
static void delete_one(int64_t src, const char *id)
{
    store_run_stats stats;
    ingest_ctx ic;
    ctx_error err;

    tu_ingest_init(&ic, st, src, &stats);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_delete(&ic, "docs", id, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
}

/*
 * v11 takes AUTOINCREMENT off chunks and hands out ids itself: a store of
 * v10 keeps its chunks and ids, and no id is ever handed out twice, not
 * even the highest one's after its chunk went away, nor across a reopen.
 */
Test(store, v11_chunk_ids_are_never_reused)
{
    ctx_error err;
    int64_t src;

    cr_assert_eq(store_source(st, "s", "files", &src, &err), 0);
    ingest_one(src, "a", "alpha apples");
    ingest_one(src, "b", "beta bananas");
    ingest_one(src, "c", "gamma cherries");
    delete_one(src, "c");
    /* As v10 left it: AUTOINCREMENT, and its mark above the last chunk. */
    cr_assert_eq(store_exec(st, "CREATE TABLE chunks_v10(id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                " doc_id INTEGER NOT NULL, seq INTEGER NOT NULL, ntokens"
                                " INTEGER NOT NULL, acl_id INTEGER NOT NULL, UNIQUE(doc_id, seq));"
                                "INSERT INTO chunks_v10 SELECT * FROM chunks;"
                                "DELETE FROM sqlite_sequence WHERE name = 'chunks';"
                                "DROP TABLE chunks; ALTER TABLE chunks_v10 RENAME TO chunks;"
                                "CREATE INDEX chunks_acl ON chunks(acl_id);"
                                "UPDATE sqlite_sequence SET seq = 3 WHERE name = 'chunks';"
                                "PRAGMA user_version = 10", &err), 0, "%s", err.text);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sqlite_master WHERE name = 'chunks'"
                              " AND sql LIKE '%AUTOINCREMENT%'"), 1);
    store_close(st);
    st = tu_store(dir);
    cr_assert_eq(tu_count(st, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sqlite_master WHERE name = 'chunks'"
                              " AND sql LIKE '%AUTOINCREMENT%'"), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'chunks'"
                              " AND type = 'index'"), 2, "chunks_acl and the unique (doc_id, seq)");
    cr_assert_eq(tu_count(st, "SELECT sum(c.id * (CASE d.ext_id WHEN 'a' THEN 10 ELSE 1 END))"
                              " FROM chunks c JOIN documents d ON d.id = c.doc_id"), 12,
                 "a's chunk is 1, b's is 2");
    cr_assert_eq(tu_count(st, "SELECT seq FROM sqlite_sequence WHERE name = 'chunks'"), 3);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'banana'"),
                 1);
    ingest_one(src, "d", "delta dates");
    cr_assert_eq(tu_count(st, "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id"
                              " WHERE d.ext_id = 'd'"), 4, "not 3, whose chunk went away");
    cr_assert_eq(tu_count(st, "SELECT seq FROM sqlite_sequence WHERE name = 'chunks'"), 4);
    delete_one(src, "d");
    store_close(st);
    st = tu_store(dir);
    ingest_one(src, "e", "epsilon elderberries");
    cr_assert_eq(tu_count(st, "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id"
                              " WHERE d.ext_id = 'e'"), 5);
    /* an update re-makes the chunk under a new id too */
    ingest_one(src, "a", "alpha apricots");
    cr_assert_eq(tu_count(st, "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id"
                              " WHERE d.ext_id = 'a'"), 6);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH"
                              " 'apricot OR apple OR date'"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sqlite_sequence WHERE name = 'chunks'"), 1);
    cr_assert_eq(tu_count(st, "SELECT seq FROM sqlite_sequence WHERE name = 'chunks'"), 6);
    cr_assert_eq(store_exec(st, "INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')",
                            &err), 0, "%s", err.text);
}

/* The memo of interned ACLs (two slots a key, displacement, eviction)
 * always answers the set the store holds, however many sets pass by. */
Test(store, acl_memo_answers_right_across_many_sets)
{
    static int64_t ids[700];
    ctx_error err;
    int64_t src;

    cr_assert_eq(store_source(st, "s", "files", &src, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < 700; i++) {
            int k = pass == 1 ? 699 - i : (i * 37) % 700; /* other orders each pass */
            char g[32];
            const char *allow[] = {g};
            ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
            int64_t id;
            snprintf(g, sizeof g, "group:g%d", k);
            cr_assert_eq(store_acl_intern(st, src, &acl, &id, &err), 0, "%s", err.text);
            if (!pass)
                ids[k] = id;
            else
                cr_assert_eq(id, ids[k], "set %d", k);
        }
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM acl_sets"), 700);
}
