/*
 * test_torture.c - fail the Nth allocation (curl's torture style) for
 * every N an operation makes, in config parsing, exec protocol messages,
 * ingest and the search request path: each failure must come back as an
 * error, with nothing half committed and nothing leaked (LeakSanitizer
 * checks the process at exit), and a run the failure did not stop must
 * give exactly the answer of an untortured run. jansson allocates through
 * ctx_malloc here (ctx_json_init), so its allocations fail too; SQLite's
 * own do not.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/exec/exec.h"
#include "core/config.h"
#include "core/json.h"
#include "core/util.h"
#include "indexer/ingest.h"
#include "retrieval/search.h"
#include "retrieval/service.h"
#include "tests/lib/testutil.h"

/* More than any operation here makes: a loop that reaches it is stuck. */
#define TORTURE_MAX 200000

static long failing; /* the allocation that fails in this run, for messages */

static void setup(void)
{
    ctx_json_init();
}

TestSuite(torture, .init = setup, .timeout = 600);

/*
 * torture - op(arg) with allocation n failing, for n = 1, 2, ... until a
 * run makes fewer than n allocations. op returns 0 for success. A failed
 * run must have had its failure injected (no other reason to fail), and
 * after each run check(arg, rc, injected) asserts the state. Returns the
 * number of runs that failed.
 */
static long torture(int (*op)(void *), void (*check)(void *, int, int), void *arg)
{
    long n, failed = 0;

    for (n = 1; n < TORTURE_MAX; n++) {
        int rc, injected;

        ctx_alloc_fail_at(n);
        failing = n;
        rc = op(arg);
        injected = ctx_alloc_failed();
        ctx_alloc_fail_at(0);
        cr_assert(rc == 0 || injected, "allocation %ld: failed (%d) with no failure injected",
                  n, rc);
        check(arg, rc, injected);
        failed += rc != 0;
        if (!injected)
            break;
    }
    cr_assert_lt(n, TORTURE_MAX);
    return failed;
}

/* ---- config ---------------------------------------------------------- */

static const char config_text[] =
    "{\"data_dir\": \"/tmp/ctxgate-torture\","
    " \"sources\": ["
    "  {\"name\": \"wiki\", \"type\": \"files\", \"path\": \"/tmp\", \"extensions\": [\".md\"]},"
    "  {\"name\": \"crm\", \"type\": \"postgres\", \"conninfo\": \"dbname=crm\","
    "   \"streams\": [{\"name\": \"notes\", \"table\": \"notes\", \"id\": \"id\","
    "    \"body\": \"body\", \"updated_at\": \"updated_at\", \"allow_groups\": \"acl\"}],"
    "   \"principals\": {\"groups_query\": \"SELECT g, m FROM gm\"}},"
    "  {\"name\": \"dir\", \"type\": \"files\", \"path\": \"/tmp\", \"directory\": true}],"
    " \"agents\": [{\"name\": \"helper\", \"sources\": [\"wiki\", \"crm\"],"
    "   \"labels\": [\"internal\"], \"max_k\": 20},"
    "  {\"name\": \"all\", \"sources\": \"*\", \"labels\": \"*\"}],"
    " \"search\": {\"w_vector\": 0.5, \"rrf_k\": 30, \"doc_decay\": 0.2},"
    " \"auth\": {\"issuer\": \"https://idp.test\", \"audience\": \"ctxgate\"}}";

typedef struct config_case {
    ctx_config want;
    ctx_config got;
} config_case;

static int config_op(void *arg)
{
    config_case *c = arg;
    json_error_t jerr;
    ctx_error err;
    json_t *root = json_loads(config_text, 0, &jerr);
    int rc;

    memset(&c->got, 0, sizeof c->got);
    if (!root)
        return CTX_ENOMEM;
    rc = ctx_config_parse(root, NULL, &c->got, &err);
    if (rc)
        cr_assert(err.text[0], "an error with no message");
    json_decref(root);
    return rc;
}

static void config_check(void *arg, int rc, int injected)
{
    config_case *c = arg;

    (void)injected;
    if (!rc) {
        /* nothing dropped quietly */
        cr_assert_eq(c->got.nsources, c->want.nsources);
        cr_assert_eq(c->got.nagents, c->want.nagents);
        for (size_t i = 0; i < c->want.nsources; i++)
            cr_assert_str_eq(c->got.sources[i].name, c->want.sources[i].name);
        cr_assert_float_eq(c->got.search.doc_decay, c->want.search.doc_decay, 1e-12);
    }
    ctx_config_free(&c->got);
}

Test(torture, config_parsing)
{
    config_case c;

    cr_assert_eq(config_op(&c), 0);
    c.want = c.got;
    cr_assert_gt(torture(config_op, config_check, &c), 10);
    ctx_config_free(&c.want);
}

/* ---- exec protocol messages ------------------------------------------ */

static const char *const exec_lines[] = {
    "{\"type\": \"RECORD\", \"stream\": \"tickets\", \"id\": \"T-1\", \"title\": \"VPN\","
    " \"body\": \"the tunnel drops\", \"url\": \"https://t.test/1\","
    " \"updated_at_ms\": 1767323045000, \"metadata\": {\"prio\": 2, \"tags\": [\"a\"]},"
    " \"acl\": {\"allow\": [\"group:it\", \"user:ann\"], \"deny\": [\"user:bob\"],"
    " \"labels\": [\"internal\"]}}",
    "{\"type\": \"PRINCIPAL\", \"kind\": \"group\", \"id\": \"group:it\","
    " \"members\": [\"user:ann\", \"user:cy\", \"group:ops\"]}",
    "{\"type\": \"STATE\", \"stream\": \"tickets\", \"state\": {\"cursor\": \"abc\", \"n\": 4}}",
    "{\"type\": \"ACL\", \"stream\": \"tickets\", \"id\": \"T-2\","
    " \"acl\": {\"allow\": [\"everyone\"]}}",
    "{\"type\": \"LOG\", \"level\": \"warn\", \"message\": \"slow\", \"kind\": \"t.slow\"}",
};

typedef struct exec_case {
    const char *line;
    exec_msg want, got;
} exec_case;

static int exec_op(void *arg)
{
    exec_case *c = arg;
    ctx_error err;
    int rc = ctx__exec_parse_line(c->line, strlen(c->line), &c->got, &err);

    if (rc && !ctx_alloc_failed())
        cr_log_error("%s", err.text);

    if (rc)
        cr_assert(err.text[0], "an error with no message");
    return rc;
}

static void exec_check(void *arg, int rc, int injected)
{
    exec_case *c = arg;

    (void)injected;
    if (rc)
        return; /* nothing to free on failure */
    cr_assert_eq(c->got.type, c->want.type);
    cr_assert_eq(c->got.acl.n_allow, c->want.acl.n_allow);
    cr_assert_eq(c->got.acl.n_deny, c->want.acl.n_deny);
    cr_assert_eq(c->got.principal.n_members, c->want.principal.n_members);
    cr_assert_eq(c->got.rec.body_len, c->want.rec.body_len);
    cr_assert_eq(!c->got.json, !c->want.json);
    if (c->want.json)
        cr_assert_str_eq(c->got.json, c->want.json);
    cr_assert_eq(!c->got.metadata, !c->want.metadata);
    if (c->want.metadata)
        cr_assert_str_eq(c->got.metadata, c->want.metadata);
    ctx__exec_msg_free(&c->got);
}

Test(torture, exec_messages)
{
    for (size_t i = 0; i < sizeof exec_lines / sizeof *exec_lines; i++) {
        exec_case c = {exec_lines[i]};
        cr_assert_eq(exec_op(&c), 0, "%s", exec_lines[i]);
        c.want = c.got;
        torture(exec_op, exec_check, &c);
        ctx__exec_msg_free(&c.want);
    }
}

/* ---- ingest ---------------------------------------------------------- */

typedef struct ingest_case {
    ctx_store *st;
    ingest_ctx ic;
    const ctx_record *rec;
    int64_t chunks;             /* the chunks of the document, untortured */
} ingest_case;

static int ingest_op(void *arg)
{
    ingest_case *c = arg;
    ctx_error err;
    int rc = store_begin(c->st, &err);

    if (!rc && !(rc = ingest_record(&c->ic, c->rec, &err)))
        rc = store_commit(c->st, &err);
    if (rc) {
        cr_assert(err.text[0], "an error with no message");
        cr_log_info("allocation %ld: %s", failing, err.text);
        store_rollback(c->st);
    }
    return rc;
}

static void ingest_check(void *arg, int rc, int injected)
{
    ingest_case *c = arg;
    ctx_error err;
    int64_t docs = tu_count(c->st, "SELECT count(*) FROM documents");
    int64_t chunks = tu_count(c->st, "SELECT count(*) FROM chunks");
    int64_t fts = tu_count(c->st, "SELECT count(*) FROM chunks_fts");

    (void)injected;
    if (rc) { /* all or nothing */
        cr_assert_eq(docs, 0, "allocation %ld failed, and a document is in", failing);
        cr_assert_eq(chunks, 0);
        cr_assert_eq(fts, 0);
    } else {
        cr_assert_eq(docs, 1);
        cr_assert_eq(chunks, c->chunks);
        cr_assert_eq(fts, c->chunks);
        if (injected) { /* a failure it could do without: start again from nothing */
            cr_assert_eq(store_begin(c->st, &err), 0);
            cr_assert_eq(ingest_delete(&c->ic, "d", "doc1", &err), 0, "%s", err.text);
            cr_assert_eq(store_exec(c->st, "DELETE FROM documents", &err), 0, "%s", err.text);
            cr_assert_eq(store_commit(c->st, &err), 0, "%s", err.text);
        }
    }
}

Test(torture, ingest)
{
    char *dir = tu_tmpdir("torture");
    const char *allow[] = {"group:it", "user:ann"}, *labels[] = {"internal"};
    ctx_acl acl = {allow, 2, NULL, 0, labels, 1};
    ctx_buf body = CTX_BUF_INIT;
    store_run_stats stats;
    ingest_case c;

    for (int i = 0; i < 600; i++)
        cr_assert_eq(ctx_buf_printf(&body, "%sword%d", i % 40 ? " " : "\n\n", i % 97), 0);
    ctx_record rec = {"d", "doc1", "A title", "https://t.test/1", body.data, body.len,
                      "{\"k\": 1}", 0, &acl};
    c.rec = &rec;
    /* untortured, in a store of its own, to know the chunks */
    c.st = tu_store(dir);
    tu_source_with_user(c.st, "user:ann", &c.ic, &stats);
    cr_assert_eq(ingest_op(&c), 0);
    c.chunks = tu_count(c.st, "SELECT count(*) FROM chunks");
    cr_assert_gt(c.chunks, 1);
    store_close(c.st);
    tu_rmrf(dir);
    free(dir);

    dir = tu_tmpdir("torture");
    c.st = tu_store(dir);
    tu_source_with_user(c.st, "user:ann", &c.ic, &stats);
    cr_assert_gt(torture(ingest_op, ingest_check, &c), 10);
    store_close(c.st);
    ctx_buf_free(&body);
    tu_rmrf(dir);
    free(dir);
}

/* ---- the search request path ------------------------------------------ */

typedef struct search_case {
    svc *s;
    const char *body;
    char *want;                 /* the untortured answer's results, as JSON text */
    char *got;
} search_case;

static int search_op(void *arg)
{
    search_case *c = arg;
    svc_identity id = {"alice@northwind.test", "all"};
    svc_request req;
    json_t *ans = NULL;
    ctx_error err;
    int rc = svc_request_parse(c->body, strlen(c->body), &req, &err);

    c->got = NULL;
    if (!rc)
        rc = svc_search(c->s, &id, &req, &ans, &err);
    if (rc) {
        cr_assert(err.text[0], "an error with no message");
        cr_assert_null(ans, "an answer with an error");
    } else {
        c->got = ctx_json_text(json_object_get(ans, "results"), JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(ans);
        if (!c->got)
            rc = CTX_ENOMEM; /* the test's own dump ran out */
    }
    svc_request_free(&req);
    return rc;
}

static void search_check(void *arg, int rc, int injected)
{
    search_case *c = arg;

    (void)injected;
    if (!rc && c->want)
        cr_assert_str_eq(c->got, c->want, "allocation %ld failed, and the answer differs:"
                         "\n%.300s\n%.300s", failing, c->got, c->want);
    free(c->got);
}

Test(torture, search_requests)
{
    static const char *const bodies[] = {
        "{\"query\": \"policy plan salary\", \"k\": 5, \"mode\": \"lexical\"}",
        "{\"query\": \"vacation policy\", \"mode\": \"hybrid\", \"max_tokens\": 200}",
    };
    char demo[PATH_MAX], src[PATH_MAX + 64], text[PATH_MAX + 512];
    char *dir = tu_tmpdir("torture-svc");
    ctx_store *st = tu_store(dir);
    store_run_stats stats;
    ctx_config cfg;
    ctx_error err;
    json_t *root;
    svc *s;

    cr_assert(realpath("examples/demo", demo));
    snprintf(src, sizeof src, "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}",
             demo);
    cr_assert_eq(tu_sync(st, src, 0, &stats, &err), 0, "%s", err.text);
    store_close(st);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"%s\", \"sources\": [%s], \"agents\": [{\"name\": \"all\","
             " \"sources\": \"*\", \"labels\": \"*\", \"max_tokens\": 100000}]}", dir, src);
    cr_assert(root = json_loads(text, 0, NULL));
    cr_assert_eq(ctx_config_parse(root, NULL, &cfg, &err), 0, "%s", err.text);
    json_decref(root);
    cr_assert_eq(svc_new(&cfg, 1, &s, &err), 0, "%s", err.text);
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        search_case c = {s, bodies[i], NULL, NULL};
        cr_assert_eq(search_op(&c), 0, "%s", bodies[i]);
        c.want = c.got;
        cr_assert(strstr(c.want, "northwind"), "found nothing: %s", c.want);
        torture(search_op, search_check, &c);
        free(c.want);
    }
    svc_free(s);
    ctx_config_free(&cfg);
    tu_rmrf(dir);
    free(dir);
}
