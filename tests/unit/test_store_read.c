/*
 * test_store_read.c - the store's read face (indexer/store_read.h): a
 * fetch's document (live only, its strings held across other reads), a
 * reference's lookup, a document's name, ACL labels, a chunk's ACL and
 * text, the sync-run counts, and a read snapshot.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/ingest.h"
#include "indexer/store_read.h"
#include "tests/lib/testutil.h"

static char *dir;
static ctx_store *st;
static int64_t src;

/* put - ingest one record of stream "docs" into source "s" (own transaction). */
static void put(const char *stream, const char *id, const char *title, const char *body,
                const ctx_acl *acl)
{
    ingest_ctx ic;
    store_run_stats stats;
    ctx_error err;
    ctx_record r = {.stream = stream, .id = id, .title = title, .url = "https://x.test/d",
                    .body = body, .body_len = strlen(body), .acl = acl};

    tu_ingest_init(&ic, st, src, &stats);
    cr_assert_eq(store_begin(st, &err), 0, "%s", err.text);
    cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
}

static int64_t doc_of(const char *stream, const char *ext)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM documents WHERE stream = '%s' AND ext_id = '%s'",
             stream, ext);
    return tu_count(st, sql);
}

static const char *const allow[] = {"user:ann@t.test"};
static const char *const labels[] = {"pii", "confidential"};
static const ctx_acl acl = {allow, 1, NULL, 0, labels, 2};

static void setup(void)
{
    ingest_ctx ic;
    store_run_stats stats;

    dir = tu_tmpdir("store_read");
    st = tu_store(dir);
    src = tu_source_with_user(st, "user:ann@t.test", &ic, &stats);
    put("docs", "d1", "Roadmap", "the quarterly roadmap", &acl);
    put("docs", "d2", "Old plan", "last year's plan", &acl);
    put("wiki", "d1", "Wiki roadmap", "the wiki's page", &acl);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(store_read, .init = setup, .fini = teardown);

Test(store_read, a_fetch_reads_live_documents_only_and_holds_them_across_reads)
{
    int64_t d1 = doc_of("docs", "d1"), d2 = doc_of("docs", "d2");
    store_doc_view d;
    json_t *l;
    char *ext = NULL;
    ctx_error err;

    cr_assert_eq(store_read_prepare(st, "test", &err), 0, "%s", err.text);
    cr_assert_eq(store_doc_get(st, d1, &d, &err), 0, "%s", err.text);
    /* other reads meanwhile leave the held row alone */
    l = store_acl_labels(st, d.acl_id);
    cr_assert_eq(store_doc_name(st, d2, NULL, &ext, &err), 0, "%s", err.text);
    cr_assert_str_eq(ext, "d2");
    ctx_free(ext);
    cr_assert_str_eq(d.title, "Roadmap");
    cr_assert_str_eq(d.body, "the quarterly roadmap");
    cr_assert_str_eq(d.url, "https://x.test/d");
    cr_assert_str_eq(d.source, "s");
    cr_assert_str_eq(d.ext_id, "d1");
    cr_assert_str_eq(d.stream, "docs");
    cr_assert_eq(d.source_id, src);
    cr_assert_eq(d.acl_id, tu_count(st, "SELECT acl_id FROM documents WHERE ext_id = 'd2'"));
    store_doc_release(st);
    cr_assert_eq(json_array_size(l), 2);
    cr_assert_str_eq(json_string_value(json_array_get(l, 0)), "confidential");
    cr_assert_str_eq(json_string_value(json_array_get(l, 1)), "pii");
    json_decref(l);

    /* a deleted document is not fetched, and neither is one that never was */
    {
        ingest_ctx ic;
        store_run_stats stats;
        tu_ingest_init(&ic, st, src, &stats);
        cr_assert_eq(store_begin(st, &err), 0, "%s", err.text);
        cr_assert_eq(ingest_delete(&ic, "docs", "d2", &err), 0, "%s", err.text);
        cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_doc_get(st, d2, &d, &err), CTX_ENOTFOUND);
    cr_assert_eq(store_doc_get(st, d2 + 100, &d, &err), CTX_ENOTFOUND);
    cr_assert_null(d.body);
}

Test(store_read, a_reference_finds_the_live_document_with_the_lowest_id)
{
    int64_t doc;
    const char *ref = "s:d1";

    /* the source name is the bytes before the ':'; two streams share "d1" */
    store_doc_by_ext(st, ref, 1, ref + 2, &doc);
    cr_assert_eq(doc, doc_of("docs", "d1"));
    cr_assert_lt(doc, doc_of("wiki", "d1"));
    store_doc_by_ext(st, "t", 1, "d1", &doc);
    cr_assert_eq(doc, 0, "another source's name finds nothing");
    cr_assert_eq(store_exec(st, "UPDATE documents SET deleted = 1 WHERE stream = 'docs'"
                                " AND ext_id = 'd1'", NULL), 0);
    store_doc_by_ext(st, ref, 1, ref + 2, &doc);
    cr_assert_eq(doc, doc_of("wiki", "d1"), "a deleted document is skipped");
}

Test(store_read, a_name_covers_deleted_documents_and_says_when_there_is_none)
{
    int64_t d2 = doc_of("docs", "d2");
    char *source = NULL, *ext = NULL;
    ctx_error err;

    cr_assert_eq(store_exec(st, "UPDATE documents SET deleted = 1 WHERE stream = 'docs'"
                                " AND ext_id = 'd2'", NULL), 0);
    cr_assert_eq(store_doc_name(st, d2, &source, &ext, &err), 0, "%s", err.text);
    cr_assert_str_eq(source, "s");
    cr_assert_str_eq(ext, "d2");
    ctx_free(source);
    ctx_free(ext);
    cr_assert_eq(store_doc_name(st, d2 + 100, &source, &ext, &err), CTX_ENOTFOUND);
    cr_assert_null(source);
    cr_assert_null(ext);
}

/* content_got - what store_chunk_content handed over. */
static void content_got(void *arg, const char *title, const char *text)
{
    char *out = arg;
    snprintf(out, 256, "%s|%s", title ? title : "(null)", text ? text : "(null)");
}

Test(store_read, a_chunk_gives_its_acl_set_and_text)
{
    int64_t chunk = tu_count(st, "SELECT c.id FROM chunks c JOIN documents d"
                                 " ON d.id = c.doc_id WHERE d.title = 'Roadmap'");
    char got[256] = "";
    ctx_error err;

    cr_assert_eq(store_chunk_acl(st, chunk),
                 tu_count(st, "SELECT acl_id FROM documents WHERE title = 'Roadmap'"));
    cr_assert_eq(store_chunk_acl(st, chunk + 1000), -1);
    cr_assert_eq(store_chunk_content(store_db(st), chunk, content_got, got, "test", &err), 0);
    cr_assert_str_eq(got, "Roadmap|the quarterly roadmap");
    got[0] = '\0';
    cr_assert_eq(store_chunk_content(store_db(st), chunk + 1000, content_got, got, "test", &err),
                 0);
    cr_assert_str_eq(got, "", "no call for a chunk that is not there");
    {
        json_t *none = store_acl_labels(st, 999999);
        cr_assert_eq(json_array_size(none), 0);
        json_decref(none);
    }
}

/* runs_got - store_run_counts' rows as "source/status=n;". */
static int runs_got(void *arg, const char *source, const char *status, int64_t n)
{
    char *out = arg;
    size_t len = strlen(out);
    snprintf(out + len, 256 - len, "%s/%s=%lld;", source, status, (long long)n);
    return 0;
}

static int runs_stop(void *arg, const char *source, const char *status, int64_t n)
{
    (void)arg;
    (void)source;
    (void)status;
    (void)n;
    return 7;
}

Test(store_read, run_counts_group_by_source_and_status)
{
    store_run_stats s;
    int64_t run;
    char got[256] = "";
    ctx_error err;

    memset(&s, 0, sizeof s);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(store_run_begin(st, src, 0, &run, &err), 0, "%s", err.text);
        cr_assert_eq(store_run_finish(st, run, i ? "ok" : "failed", &s, NULL, &err), 0, "%s",
                     err.text);
    }
    cr_assert_eq(store_run_counts(st, runs_got, got, &err), 0, "%s", err.text);
    cr_assert(strstr(got, "s/ok=2;") && strstr(got, "s/failed=1;"), "%s", got);
    cr_assert_eq(store_run_counts(st, runs_stop, NULL, &err), 7, "fn's answer stops the scan");
}

Test(store_read, a_snapshot_sees_one_state_until_it_ends)
{
    char path[4096];
    ctx_store *other;
    ctx_error err;
    char *ext = NULL;
    int64_t d1 = doc_of("docs", "d1");

    snprintf(path, sizeof path, "%s/ctxgate.db", dir);
    cr_assert_eq(store_open(path, 0, &other, &err), 0, "%s", err.text);
    cr_assert_eq(store_snapshot_begin(st, "test", &err), 0, "%s", err.text);
    cr_assert_eq(store_doc_name(st, d1, NULL, &ext, &err), 0, "%s", err.text);
    ctx_free(ext);
    cr_assert(store_ping(st));
    cr_assert_eq(store_exec(other, "UPDATE documents SET ext_id = 'moved' WHERE stream = 'docs'"
                                   " AND ext_id = 'd1'", &err), 0, "%s", err.text);
    cr_assert_eq(store_doc_name(st, d1, NULL, &ext, &err), 0, "%s", err.text);
    cr_assert_str_neq(ext, "moved", "the snapshot does not see a later write");
    ctx_free(ext);
    store_snapshot_end(st);
    cr_assert_eq(store_doc_name(st, d1, NULL, &ext, &err), 0, "%s", err.text);
    cr_assert_str_eq(ext, "moved");
    ctx_free(ext);
    store_snapshot_end(st); /* no transaction open: nothing to do */
    store_close(other);
}
