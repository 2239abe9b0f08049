/*
 * test_files.c - the files connector through the real sync runner and
 * store: permissions from front matter, sidecars and folder defaults,
 * incremental syncs, deletions, permission-only changes, bad input.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/ingest.h"
#include "retrieval/search.h"
#include "tests/lib/synctest.h"
#include "tests/lib/testutil.h"

static char *root, *docs, src[8192];
static ctx_store *st;

static void setup(void)
{
    root = tu_tmpdir("files");
    snprintf(src, sizeof src, "%s/docs", root);
    docs = strdup(src);
    snprintf(src, sizeof src, "{\"name\":\"wiki\",\"type\":\"files\",\"path\":\"%s\"}", docs);
    tu_write(docs, "_principals.json",
             "{\"users\":[{\"id\":\"user:ann@x.test\"},{\"id\":\"user:ben@x.test\"},"
             "{\"id\":\"user:cy@x.test\"},{\"id\":\"user:acct-ann\",\"maps_to\":\"user:ann@x.test\"}],"
             "\"groups\":[{\"id\":\"group:hr\",\"members\":[\"group:hr-leads\"]},"
             "{\"id\":\"group:hr-leads\",\"members\":[\"user:ann@x.test\"]},"
             "{\"id\":\"group:eng\",\"members\":[\"user:ben@x.test\",\"user:cy@x.test\"]}]}");
    tu_write(docs, "hr/_acl.json", "{\"allow\":[\"group:hr\"],\"labels\":[\"confidential\"]}");
    tu_write(docs, "hr/pay.md", "---\ntitle: Pay bands\nallow: [group:hr]\n---\n"
                                "Pay bands for zebra engineers are listed here.\n");
    tu_write(docs, "hr/default.md", "# Folder default doc\n\nThe zebra policy for HR only.\n");
    tu_write(docs, "eng/design.md", "---\ntitle: Design\nallow: [group:eng]\ndeny: [user:cy@x.test]\n"
                                    "---\nThe zebra service design.\n");
    tu_write(docs, "eng/notes.txt", "Zebra notes from the account.\n");
    tu_write(docs, "eng/notes.txt.acl.json", "{\"allow\":[\"user:acct-ann\"]}");
    tu_write(docs, "all/hello.json", "{\"title\":\"Hello\",\"body\":\"Zebra welcome for all.\","
                                     "\"allow\":[\"everyone\"]}");
    tu_write(docs, "all/noacl.md", "# No ACL\n\nZebra text nobody may read.\n");
    st = tu_store(root);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(root);
    free(root);
    free(docs);
}

TestSuite(files, .init = setup, .fini = teardown);

static void sync_ok(store_run_stats *s)
{
    ctx_error err;
    int rc = tu_sync(st, src, 0, s, &err);
    cr_assert_eq(rc, 0, "sync failed: %s", rc ? err.text : "");
}

static void assert_sees(const char *user, const char *expect)
{
    char *got = tu_search_titles(st, user, "zebra");
    cr_assert_str_eq(got, expect, "%s sees [%s], expected [%s]", user, got, expect);
    free(got);
}

/* Titles are sorted by score; compare as sets by sorting words. */
static int has(const char *user, const char *title)
{
    char *got = tu_search_titles(st, user, "zebra"), *p;
    int found = 0;
    for (p = strtok(got, "|"); p; p = strtok(NULL, "|"))
        found |= !strcmp(p, title);
    free(got);
    return found;
}

Test(files, permissions_from_every_place)
{
    store_run_stats s;
    sync_ok(&s);
    cr_assert_eq(s.records, 6);
    cr_assert_eq(s.principals, 7);
    /* ann: hr via nested group, the account's file, and everyone. */
    cr_assert(has("ann@x.test", "Pay bands"));
    cr_assert(has("ann@x.test", "Folder default doc"));
    cr_assert(has("ann@x.test", "Zebra notes from the account."));
    cr_assert(has("ann@x.test", "Hello"));
    cr_assert(!has("ann@x.test", "Design"));
    /* ben: eng and everyone. cy: denied on Design. */
    cr_assert(has("ben@x.test", "Design"));
    cr_assert(!has("ben@x.test", "Pay bands"));
    cr_assert(!has("cy@x.test", "Design"));
    assert_sees("cy@x.test", "Hello");
    /* Unknown users, an account that is not a login, and no-ACL docs: nothing. */
    assert_sees("mallory@x.test", "");
    assert_sees("acct-ann", "");
    assert_sees("", "");
    for (const char *u = "ann@x.test"; u; u = NULL)
        cr_assert(!has(u, "No ACL"));
}

Test(files, second_sync_reads_nothing_changed)
{
    store_run_stats s;
    sync_ok(&s);
    sync_ok(&s);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(s.deletes, 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0"), 6);
}

Test(files, edits_deletes_and_permission_changes)
{
    store_run_stats s;
    int64_t chunks_before;
    struct timespec later[2];

    sync_ok(&s);
    chunks_before = tu_count(st, "SELECT count(*) FROM chunks");

    /* An edit is re-read and re-chunked; the old text is gone. */
    tu_write(docs, "eng/design.md", "---\ntitle: Design\nallow: [group:eng]\n---\n"
                                    "The zebra service design, second edition with giraffes.\n");
    /* mtime resolution: force a different mtime. */
    clock_gettime(CLOCK_REALTIME, &later[0]);
    later[0].tv_sec += 5;
    later[1] = later[0];
    {
        char p[8192];
        snprintf(p, sizeof p, "%s/eng/design.md", docs);
        utimensat(AT_FDCWD, p, later, 0);
    }
    sync_ok(&s);
    cr_assert_eq(s.records, 1);
    cr_assert(has("cy@x.test", "Design"), "deny removed in the edit must take effect");
    {
        char *g = tu_search_titles(st, "ben@x.test", "giraffes");
        cr_assert_str_eq(g, "Design");
        free(g);
    }

    /* A folder ACL change alone: permission change, no re-chunking. */
    tu_write(docs, "hr/_acl.json", "{\"allow\":[\"group:eng\"]}");
    sync_ok(&s);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(s.acls, 1);
    cr_assert(has("ben@x.test", "Folder default doc"));
    cr_assert(!has("ann@x.test", "Folder default doc"));
    cr_assert(has("ann@x.test", "Pay bands"), "front matter ACL must not follow the folder");

    /* A deleted file disappears. */
    {
        char p[8192];
        snprintf(p, sizeof p, "%s/hr/pay.md", docs);
        cr_assert_eq(unlink(p), 0);
    }
    sync_ok(&s);
    cr_assert_eq(s.deletes, 1);
    cr_assert(!has("ann@x.test", "Pay bands"));
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 1"), 1);
    cr_assert_lt(tu_count(st, "SELECT count(*) FROM chunks"), chunks_before + 2);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks"),
                 tu_count(st, "SELECT count(*) FROM chunks_fts"));
}

Test(files, revoked_membership_takes_effect)
{
    store_run_stats s;
    sync_ok(&s);
    cr_assert(has("ann@x.test", "Pay bands"));
    tu_write(docs, "_principals.json",
             "{\"users\":[{\"id\":\"user:ann@x.test\"}],"
             "\"groups\":[{\"id\":\"group:hr\",\"members\":[]},"
             "{\"id\":\"group:hr-leads\",\"members\":[\"user:ann@x.test\"]}]}");
    sync_ok(&s);
    cr_assert(!has("ann@x.test", "Pay bands"));
    cr_assert(has("ann@x.test", "Hello"));
}

Test(files, full_refresh_prunes_and_keeps_what_it_saw)
{
    store_run_stats s;
    ctx_error err;
    sync_ok(&s);
    /* Make the store believe a document exists that the source no longer has. */
    {
        ctx_record r = {"files", "gone.md", "Gone", NULL, "zebra ghost", 11, NULL, 0, NULL};
        ingest_ctx ic;
        memset(&ic, 0, sizeof ic);
        ic.store = st;
        ic.source = tu_count(st, "SELECT id FROM sources WHERE name = 'wiki'");
        ic.epoch = 0;
        ic.stats = &s;
        cr_assert_eq(store_begin(st, &err), 0);
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
        cr_assert_eq(store_commit(st, &err), 0);
    }
    cr_assert_eq(tu_sync(st, src, 1, &s, &err), 0, "%s", err.text);
    cr_assert_eq(s.pruned, 1);
    cr_assert_eq(s.records, 0, "unchanged documents are not re-indexed on a full run");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0"), 6);
}

/*
 * A permission sync reads stat(), sidecars, _acl.json and front matter:
 * changed ACLs from each of those are applied and a removed file is deleted,
 * and no chunk is made again.
 */
Test(files, permission_sync_applies_acls_and_deletes_without_rechunking)
{
    store_run_stats s;
    ctx_error err;
    char *sig0, *sig1, *ids0, *ids1, path[8192];
    int64_t at = 0;

    sync_ok(&s);
    assert_sees("user:ben@x.test", "Design|Hello");
    sig0 = tu_text(st, "SELECT group_concat(l, '|') FROM (SELECT d.ext_id || '#' || c.seq ||"
                       " '=' || f.text AS l FROM documents d JOIN chunks c ON c.doc_id = d.id JOIN chunks_fts f"
                       " ON f.rowid = c.id WHERE d.deleted = 0 AND d.ext_id <> 'eng/design.md'"
                       " ORDER BY d.ext_id, c.seq)");
    ids0 = tu_text(st, "SELECT group_concat(id) FROM (SELECT c.id FROM documents d JOIN"
                       " chunks c ON c.doc_id = d.id WHERE d.ext_id IN ('hr/pay.md',"
                       " 'all/hello.json') ORDER BY c.id)");

    /* A sidecar, a folder default and a front matter change; a file goes. */
    tu_write(docs, "eng/notes.txt.acl.json", "{\"allow\":[\"group:eng\"]}");
    tu_write(docs, "hr/_acl.json", "{\"allow\":[\"group:hr\",\"user:cy@x.test\"]}");
    snprintf(path, sizeof path, "%s/eng/design.md", docs);
    cr_assert_eq(unlink(path), 0);
    tu_write(docs, "all/noacl.md", "---\nallow: [user:ben@x.test]\n---\n# No ACL\n\n"
                                    "Zebra text nobody may read.\n");
    cr_assert_eq(tu_sync(st, src, TU_PERMISSIONS, &s, &err), 0, "%s", err.text);
    cr_assert_eq(s.acls, 3, "notes.txt, hr/default.md and all/noacl.md: %lld",
                 (long long)s.acls);
    cr_assert_eq(s.pruned + s.deletes, 1);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(s.chunks, 0, "nothing re-chunked");
    cr_assert(has("user:ben@x.test", "Hello") && has("user:ben@x.test", "No ACL") &&
              has("user:ben@x.test", "Zebra notes from the account.") &&
              !has("user:ben@x.test", "Design"));
    cr_assert(has("user:cy@x.test", "Folder default doc"));
    cr_assert(!has("user:ann@x.test", "Zebra notes from the account."));
    cr_assert_eq(tu_count(st, "SELECT deleted FROM documents WHERE ext_id = 'eng/design.md'"), 1);

    /* The permission run changed no text (the front matter edit of noacl.md
     * is content, for the next content sync), and unchanged files keep
     * their very chunks. */
    sig1 = tu_text(st, "SELECT group_concat(l, '|') FROM (SELECT d.ext_id || '#' || c.seq ||"
                       " '=' || f.text AS l FROM documents d JOIN chunks c ON c.doc_id = d.id JOIN chunks_fts f"
                       " ON f.rowid = c.id WHERE d.deleted = 0 ORDER BY d.ext_id, c.seq)");
    ids1 = tu_text(st, "SELECT group_concat(id) FROM (SELECT c.id FROM documents d JOIN"
                       " chunks c ON c.doc_id = d.id WHERE d.ext_id IN ('hr/pay.md',"
                       " 'all/hello.json') ORDER BY c.id)");
    cr_assert_str_eq(sig0, sig1);
    cr_assert_str_eq(ids0, ids1);
    free(sig0);
    free(sig1);
    free(ids0);
    free(ids1);
    cr_assert_eq(store_source_acl_synced_at(st, tu_count(st, "SELECT id FROM sources"), &at,
                                            &err), 0, "%s", err.text);
    cr_assert_gt(at, 0);
}

Test(files, a_broken_file_is_skipped_retracted_and_retried)
{
    store_run_stats s;
    char p[8192];
    struct timespec later[2];

    sync_ok(&s);
    cr_assert(has("ben@x.test", "Design"));
    /* Break the front matter of an indexed file: it must vanish, not keep
     * serving under the permissions it had. */
    tu_write(docs, "eng/design.md", "---\ntitle: Design\nallow [group:eng]\n---\nzebra\n");
    tu_write(docs, "eng/broken.md", "---\ntitle: Broken\nallow: [group:eng]\nzebra\n");
    sync_ok(&s);
    cr_assert_eq(s.deletes, 1);
    cr_assert(!has("ben@x.test", "Design"));
    cr_assert(!has("ben@x.test", "Broken"));
    cr_assert(has("ben@x.test", "Hello"), "the other files are still served");
    /* Fixed: the next sync picks it up although nothing else changed. */
    tu_write(docs, "eng/design.md", "---\ntitle: Design\nallow: [group:eng]\n---\nzebra\n");
    clock_gettime(CLOCK_REALTIME, &later[0]);
    later[0].tv_sec += 5;
    later[1] = later[0];
    snprintf(p, sizeof p, "%s/eng/design.md", docs);
    utimensat(AT_FDCWD, p, later, 0);
    sync_ok(&s);
    cr_assert(has("ben@x.test", "Design"));
    cr_assert(!has("ben@x.test", "Broken"));
}

Test(files, long_front_matter_line_is_refused_not_cut)
{
    store_run_stats s;
    ctx_buf b = CTX_BUF_INIT;
    ctx_buf_puts(&b, "---\nallow: [");
    for (int i = 0; i < 400; i++)
        ctx_buf_printf(&b, "user:someone%03d@x.test, ", i);
    ctx_buf_puts(&b, "group:eng-leads]\n---\nzebra long\n");
    tu_write(docs, "eng/long.md", b.data);
    ctx_buf_free(&b);
    sync_ok(&s);
    /* Cut at 4095 bytes, "group:eng-leads" could have become "group:eng". */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE ext_id = 'eng/long.md'"), 0);
    cr_assert(!has("ben@x.test", "eng/long.md"));
}

Test(files, deny_only_front_matter_adds_to_the_folder_acl)
{
    store_run_stats s;
    tu_write(docs, "hr/secret.md", "---\ntitle: Secret\ndeny: [user:ann@x.test]\n---\nzebra\n");
    tu_write(docs, "_principals.json",
             "{\"users\":[{\"id\":\"user:ann@x.test\"},{\"id\":\"user:hal@x.test\"}],"
             "\"groups\":[{\"id\":\"group:hr\",\"members\":[\"user:ann@x.test\",\"user:hal@x.test\"]}]}");
    sync_ok(&s);
    cr_assert(has("hal@x.test", "Secret"), "the folder's allow list applies");
    cr_assert(!has("ann@x.test", "Secret"), "the item's deny applies too");
}

Test(files, invalid_utf8_is_repaired_and_counted)
{
    store_run_stats s;
    tu_write(docs, "all/bytes.md", "---\nallow: [everyone]\n---\nzebra \xFF\xFE bytes\n");
    sync_ok(&s);
    cr_assert_geq(s.repaired_utf8, 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE body LIKE"
                              " '%zebra ' || char(65533) || '%'"), 1);
}

Test(files, oversized_file_fails_cleanly)
{
    store_run_stats s;
    ctx_error err;
    char big_src[8400];
    ctx_buf b = CTX_BUF_INIT;
    ctx_buf_puts(&b, "---\nallow: [everyone]\n---\n");
    for (int i = 0; i < 300; i++)
        ctx_buf_puts(&b, "zebra words fill this line up to some length for the test.\n");
    tu_write(docs, "all/big.md", b.data);
    ctx_buf_free(&b);
    snprintf(big_src, sizeof big_src, "{\"name\":\"wiki\",\"type\":\"files\",\"path\":\"%s\","
             "\"max_record_bytes\":4096}", docs);
    cr_assert_eq(tu_sync(st, big_src, 0, &s, &err), CTX_ETOOBIG);
    cr_assert(strstr(err.text, "all/big.md"), "%s", err.text);
    cr_assert(strstr(err.text, "max_record_bytes"), "%s", err.text);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents"), 0);
}

Test(files, missing_directory_is_a_clear_error)
{
    store_run_stats s;
    ctx_error err;
    cr_assert_eq(tu_sync(st, "{\"name\":\"w\",\"type\":\"files\",\"path\":\"/nonexistent/dir\"}",
                         0, &s, &err), CTX_ESOURCE);
    cr_assert(strstr(err.text, "/nonexistent/dir"), "%s", err.text);
    cr_assert(strstr(err.text, "existing directory"), "%s", err.text);
}

/* ---- urls: the author's, or under url_base, never the server's path ---- */

static char *files_state(void);

static char *url_of(const char *rel)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT url FROM documents WHERE ext_id = '%s'", rel);
    return tu_text(st, sql);
}

Test(files, without_url_base_no_file_carries_a_server_path)
{
    store_run_stats s;
    char *u;

    tu_write(docs, "all/linked.md", "---\ntitle: Linked\nallow: [everyone]\n"
                                    "url: https://wiki.x.test/linked\n---\nZebra link.\n");
    sync_ok(&s);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0"), 7);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE url LIKE '%file:%'"
                              " OR url LIKE '%/%docs/%' OR url LIKE '/%'"), 0,
                 "a url names the server's files");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE url IS NOT NULL"
                              " AND url <> ''"), 1, "only the front matter's url is kept");
    u = url_of("all/linked.md");
    cr_assert_str_eq(u, "https://wiki.x.test/linked");
    free(u);
    u = url_of("hr/pay.md");
    cr_assert_str_eq(u, "");
    free(u);
}

Test(files, url_base_is_joined_with_the_path_percent_encoded)
{
    store_run_stats s;
    ctx_error err;
    char cfg[8192], *u;

    tu_write(docs, "all/Q3 plan #2 \xc3\xbc.md", "---\nallow: [everyone]\n---\nZebra plan.\n");
    tu_write(docs, "all/linked.md", "---\ntitle: Linked\nallow: [everyone]\n"
                                    "url: https://elsewhere.x.test/l\n---\nZebra link.\n");
    snprintf(cfg, sizeof cfg, "{\"name\":\"wiki\",\"type\":\"files\",\"path\":\"%s\","
             "\"url_base\":\"https://wiki.x.test/docs/\"}", docs);
    cr_assert_eq(tu_sync(st, cfg, 0, &s, &err), 0, "%s", err.text);
    u = url_of("hr/pay.md");
    cr_assert_str_eq(u, "https://wiki.x.test/docs/hr/pay.md");
    free(u);
    u = url_of("all/Q3 plan #2 \xc3\xbc.md");
    cr_assert_str_eq(u, "https://wiki.x.test/docs/all/Q3%20plan%20%232%20%C3%BC.md");
    free(u);
    u = url_of("all/linked.md");
    cr_assert_str_eq(u, "https://elsewhere.x.test/l", "the author's url wins");
    free(u);
    cr_assert_eq(tu_sync(st, cfg, 0, &s, &err), 0, "%s", err.text);
    cr_assert_eq(s.records, 0, "an unchanged tree under the same url_base sends nothing");
    /* a base without the trailing slash joins the same; another url_base
     * changes every url, so even an incremental sync sends every file once */
    snprintf(cfg, sizeof cfg, "{\"name\":\"wiki\",\"type\":\"files\",\"path\":\"%s\","
             "\"url_base\":\"http://intranet.x.test:8080/w\"}", docs);
    cr_assert_eq(tu_sync(st, cfg, 0, &s, &err), 0, "%s", err.text);
    cr_assert_eq(s.records, 7, "%lld files re-sent", (long long)s.records);
    u = url_of("eng/notes.txt");
    cr_assert_str_eq(u, "http://intranet.x.test:8080/w/eng/notes.txt");
    free(u);
    u = url_of("all/linked.md");
    cr_assert_str_eq(u, "https://elsewhere.x.test/l");
    free(u);
}

/*
 * A store synced by a version that linked file:// paths (its checkpoint
 * names no url_base): the next incremental sync sends every file once,
 * and no url names the server's files any more.
 */
Test(files, an_upgraded_checkpoint_relinks_every_file)
{
    store_run_stats s;
    ctx_error err;
    char *state;

    sync_ok(&s);
    cr_assert_eq(store_exec(st, "UPDATE documents SET url = 'file:///srv/docs/' || ext_id,"
                                " hash = 'from-before'", &err), 0, "%s", err.text);
    cr_assert_eq(store_exec(st, "UPDATE sync_state SET state = json_remove(state, '$.links')"
                                " WHERE stream = 'files'", &err), 0, "%s", err.text);
    state = files_state();
    cr_assert(!strstr(state, "links"), "%s", state);
    free(state);
    sync_ok(&s);
    cr_assert_eq(s.records, 6, "%lld files re-sent", (long long)s.records);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE url LIKE 'file:%'"), 0);
    state = files_state();
    cr_assert(strstr(state, "\"links\":\"\""), "%s", state);
    free(state);
    sync_ok(&s);
    cr_assert_eq(s.records, 0);
}

Test(files, a_url_base_that_is_not_http_is_refused)
{
    static const char *const bad[] = {"file:///srv/wiki", "wiki.x.test/docs", "https://",
                                      "https:///path", "https://wiki.x.test/a b"};
    store_run_stats s;
    ctx_error err;
    char cfg[8192];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cfg, sizeof cfg, "{\"name\":\"wiki\",\"type\":\"files\",\"path\":\"%s\","
                 "\"url_base\":\"%s\"}", docs, bad[i]);
        cr_assert_neq(tu_sync(st, cfg, 0, &s, &err), 0, "%s was accepted", bad[i]);
        cr_assert(strstr(err.text, "url_base"), "%s", err.text);
        cr_assert(strstr(err.text, "http(s)"), "%s", err.text);
    }
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents"), 0);
}

/* ---- the checkpoint: a cursor, not a list of files ---- */

/* The committed state of the files stream (new). */
static char *files_state(void)
{
    return tu_text(st, "SELECT state FROM sync_state WHERE stream = 'files'");
}

/* bulk - n files bulk/dNN/fNNN.md from `from` on, readable by group:eng. */
static void bulk(int from, int n, const char *extra)
{
    char rel[64], text[256];
    for (int i = from; i < from + n; i++) {
        snprintf(rel, sizeof rel, "bulk/d%02d/f%03d.md", i % 10, i);
        snprintf(text, sizeof text, "---\nallow: [group:eng]\n---\n# Bulk %d\n\nzebra bulk %d%s\n",
                 i, i, extra);
        tu_write(docs, rel, text);
    }
}

static void rm_doc(const char *rel)
{
    char p[8192];
    snprintf(p, sizeof p, "%s/%s", docs, rel);
    cr_assert_eq(unlink(p), 0, "%s", p);
}

Test(files, a_checkpoint_does_not_grow_with_the_tree)
{
    store_run_stats s;
    char *small, *large;

    snprintf(src, sizeof src, "{\"name\":\"wiki\",\"type\":\"files\",\"path\":\"%s\","
             "\"state_every\":7}", docs);
    sync_ok(&s);
    small = files_state();
    bulk(0, 400, "");
    sync_ok(&s);
    cr_assert_eq(s.records, 400);
    large = files_state();
    cr_assert_eq(strlen(large), strlen(small), "6 files: %s; 406 files: %s", small, large);
    cr_assert_lt(strlen(large), 128, "%s", large);
    cr_assert_null(strstr(large, ".md"), "no file in the state: %s", large);
    free(small);
    free(large);
}

/*
 * Stopped between checkpoints (as a kill -9 leaves it, the open batch
 * rolled back), an incremental walk resumes at its last checkpoint: the
 * edits and deletions before it are not sent again, the rest come once.
 */
Test(files, a_stopped_walk_resumes_without_loss_or_duplicates, .timeout = 120)
{
    static const char *const gone[] = {"bulk/d00/f000.md", "bulk/d05/f015.md",
                                       "bulk/d09/f029.md"};
    store_run_stats s, s1;
    ctx_config cfg;
    ctx_error err;
    sync_opts o;
    tsync_cancel ca = {0, 4};
    char *state;
    int64_t edited, rc;

    snprintf(src, sizeof src, "{\"name\":\"wiki\",\"type\":\"files\",\"path\":\"%s\","
             "\"state_every\":3}", docs);
    bulk(0, 30, "");
    sync_ok(&s);
    cr_assert_eq(s.records, 36);

    /* Ten edits spread over the walk, three deletions. */
    for (int i = 1; i < 30; i += 3)
        bulk(i, 1, " edited");
    for (size_t i = 0; i < 3; i++)
        rm_doc(gone[i]);
    {
        char text[9000];
        snprintf(text, sizeof text, "{\"sources\": [%s]}", src);
        json_t *conf = json_loads(text, 0, NULL);
        memset(&cfg, 0, sizeof cfg);
        cr_assert_eq(ctx_config_parse(conf, ".", &cfg, &err), 0, "%s", err.text);
        json_decref(conf);
    }
    /* The files stream alone: the progress reports then start at its first record. */
    memset(&o, 0, sizeof o);
    o.streams = (const char *[]){"files"};
    o.nstreams = 1;
    o.cancel = &ca.flag;
    o.progress = tsync_cancel_progress;
    o.progress_arg = &ca;
    rc = sync_source(st, &cfg.sources[0], &o, &s1, &err);
    ctx_config_free(&cfg);
    cr_assert_eq(rc, CTX_ECANCELED, "rc %lld, %lld records", (long long)rc, (long long)s1.records);
    state = files_state();
    cr_assert(strstr(state, "\"after\":\"bulk/"), "stopped mid-walk: %s", state);
    free(state);
    edited = tu_count(st, "SELECT count(*) FROM documents WHERE body LIKE '%edited%'");
    cr_assert_gt(edited, 0, "a checkpoint came after the first edits");
    cr_assert_lt(edited, 10);

    sync_ok(&s);
    cr_assert_eq(s.records, 10 - edited, "only the edits after the checkpoint: %lld",
                 (long long)s.records);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE body LIKE '%edited%'"), 10);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0"), 33);
    for (size_t i = 0; i < 3; i++) {
        char q[256];
        snprintf(q, sizeof q, "SELECT deleted FROM documents WHERE ext_id = '%s'", gone[i]);
        cr_assert_eq(tu_count(st, q), 1, "%s is deleted", gone[i]);
    }
    /* One set of chunks per live document: nothing indexed twice. */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id"
                              " WHERE d.deleted = 0"),
                 tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0"));
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks"),
                 tu_count(st, "SELECT count(*) FROM chunks_fts"));
    sync_ok(&s);
    cr_assert_eq(s.records + s.deletes + s.acls, 0);
}

/*
 * Deletions come from walking the tree beside the store's ids: the walk's
 * order must be the store's byte order, or a file would be deleted and sent
 * again. Names that sort differently as paths than as folder entries.
 */
Test(files, deletions_are_found_in_path_order)
{
    static const char *const names[] = {"o/a-b.md", "o/a.md", "o/a/x.md", "o/a0.md",
                                        "o/a/b/c.md", "o/A.md", "o/\xc3\xa9t\xc3\xa9.md",
                                        "o/a b.md", "o/a_/y.md", "o/ab.md"};
    store_run_stats s;
    size_t n = sizeof names / sizeof *names;

    for (size_t i = 0; i < n; i++)
        tu_write(docs, names[i], "---\nallow: [group:eng]\n---\nzebra order\n");
    /* Not UTF-8: the store would keep another id than the walk finds. */
    tu_write(docs, "o/bad\xff.md", "---\nallow: [group:eng]\n---\nzebra bad name\n");
    sync_ok(&s);
    cr_assert_eq(s.records, 6 + n);
    cr_assert_geq(s.warnings, 1);
    sync_ok(&s);
    cr_assert_eq(s.records + s.deletes + s.acls, 0, "%lld records, %lld deletes",
                 (long long)s.records, (long long)s.deletes);
    for (size_t i = 0; i < n; i += 2)
        rm_doc(names[i]);
    sync_ok(&s);
    cr_assert_eq(s.deletes, (int64_t)(n + 1) / 2);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0"),
                 6 + (int64_t)n / 2);
}

/* A removed sidecar changes no file's own times: the permission sum finds it. */
Test(files, a_removed_sidecar_is_a_permission_change)
{
    store_run_stats s;

    sync_ok(&s);
    cr_assert(has("ann@x.test", "Zebra notes from the account."));
    rm_doc("eng/notes.txt.acl.json");
    sync_ok(&s);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(s.acls, 1, "notes.txt lost its permissions: %lld", (long long)s.acls);
    cr_assert(!has("ann@x.test", "Zebra notes from the account."));
    sync_ok(&s);
    cr_assert_eq(s.records + s.acls + s.deletes, 0);
}

/*
 * A checkpoint of the version before (a map of every file) is taken as no
 * checkpoint: every file is read again, unchanged ones are kept by their
 * hash, files gone are deleted, and the state becomes a cursor.
 */
Test(files, an_old_checkpoint_means_one_whole_walk)
{
    store_run_stats s;
    ctx_error err;
    char *state;

    sync_ok(&s);
    cr_assert_eq(store_exec(st, "UPDATE sync_state SET state = '{\"files\":{\"hr/pay.md\":"
                                "\"1.000000000:10:none\"}}' WHERE stream = 'files'", &err), 0);
    rm_doc("all/noacl.md");
    sync_ok(&s);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(s.unchanged, 5);
    cr_assert_eq(s.deletes, 1);
    state = files_state();
    cr_assert(strstr(state, "\"walk\":2") && !strstr(state, "\"files\""), "%s", state);
    free(state);
}
