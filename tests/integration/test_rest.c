/*
 * test_rest.c - the REST connector through the real sync runner and store,
 * against tests/saas/server.py (a ticket tracker and a wiki) started per
 * test: every pagination style, incremental reads, permissions from fields
 * and from a permissions endpoint, principals, deletes, retries, faults,
 * OAuth2 refresh and secrets kept out of logs. Behaviour only, no timing.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connectors/conformance.h"
#include "core/util.h"
#include "tests/lib/testutil.h"

#define TRACKER_TOKEN "tracker-token-s3cret-0042"
#define WIKI_SECRET "wiki-client-s3cret-0042"

static char *root;
static ctx_store *st;
static pid_t server;
static int port;
static char src[32768];

/*
 * spawn_server - tests/saas/server.py on a free port (*pport), over HTTPS
 * with the test certificate when tls; its first line is the port.
 */
static pid_t spawn_server(int tls, int *pport)
{
    int fds[2];
    pid_t pid;
    FILE *f;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* A test process killed from outside takes its server along. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (tls)
            execlp("python3", "python3", "tests/saas/server.py", "--tls",
                   "tests/saas/tls/cert.pem", "tests/saas/tls/key.pem", (char *)NULL);
        else
            execlp("python3", "python3", "tests/saas/server.py", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    cr_assert(f && fscanf(f, "%d", pport) == 1, "tests/saas/server.py did not start");
    fclose(f);
    return pid;
}

static void stop_server(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static void setup(void)
{
    root = tu_tmpdir("rest");
    st = tu_store(root);
    setenv("CTX_TEST_TRACKER_TOKEN", TRACKER_TOKEN, 1);
    setenv("CTX_TEST_WIKI_SECRET", WIKI_SECRET, 1);
    server = spawn_server(0, &port);
}

static void teardown(void)
{
    if (server > 0)
        stop_server(server);
    store_close(st);
    tu_rmrf(root);
    free(root);
}

TestSuite(rest, .init = setup, .fini = teardown);

/* ---- talking to the server's control endpoints ---- */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    ctx_buf_append(arg, p, size * n);
    return size * n;
}

/* http - GET (body NULL) or POST body to the server; the answer, new. */
static char *http(const char *path, const char *body)
{
    CURL *h = curl_easy_init();
    ctx_buf b = CTX_BUF_INIT;
    char url[512];
    long status = 0;

    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    cr_assert_eq(curl_easy_perform(h), CURLE_OK, "control request %s failed", path);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    cr_assert_eq(status, 200, "control %s: HTTP %ld: %s", path, status, b.data);
    ctx_buf_puts(&b, "");
    return ctx_buf_steal(&b);
}

static void ctl(const char *what, const char *json)
{
    char path[128];
    snprintf(path, sizeof path, "/_control/%s", what);
    free(http(path, json ? json : "{}"));
}

/* hits - how many GETs the server saw for path (no query). */
static int64_t hits(const char *path)
{
    char *text = http("/_control/stats", NULL);
    json_t *j = json_loads(text, 0, NULL);
    int64_t n = json_integer_value(json_object_get(json_object_get(j, "paths"), path));
    json_decref(j);
    free(text);
    return n;
}

/*
 * early_retries - requests the server refused because they came before the
 * wait it had asked for (Retry-After, a rate-limit reset): a connector that
 * skips its waits makes this non-zero even when the sync still succeeds.
 */
static int64_t early_retries(void)
{
    char *text = http("/_control/stats", NULL);
    json_t *j = json_loads(text, 0, NULL);
    int64_t n = json_integer_value(json_object_get(j, "early_retries"));
    cr_assert(json_is_integer(json_object_get(j, "early_retries")), "%s", text);
    json_decref(j);
    free(text);
    return n;
}

/* status_of - the HTTP status of a GET of path with the tracker's API key. */
static long status_of(const char *path)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "X-API-Key: " TRACKER_TOKEN);
    ctx_buf b = CTX_BUF_INIT;
    char url[512];
    long status = 0;

    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    cr_assert_eq(curl_easy_perform(h), CURLE_OK, "GET %s failed", path);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    ctx_buf_free(&b);
    return status;
}

static int64_t tokens_issued(void)
{
    char *text = http("/_control/stats", NULL);
    json_t *j = json_loads(text, 0, NULL);
    int64_t n = json_integer_value(json_object_get(j, "tokens"));
    json_decref(j);
    free(text);
    return n;
}

/* ---- sources ---- */

#define TICKETS(name, pagination, extra)                                                 \
    "{\"name\":\"" name "\",\"endpoint\":\"/tracker/tickets\",\"records\":\"items\","    \
    "\"title\":\"title\",\"body\":\"description\",\"updated_at\":\"updated_at\","         \
    "\"allow_users\":\"acl.users\",\"allow_groups\":\"acl.groups\",\"pagination\":\""     \
    pagination "\",\"page_size\":3" extra "}"
#define INCR ",\"since_param\":\"updated_since\""
#define TRACKER_PRINCIPALS                                                               \
    "{\"name\":\"users\",\"kind\":\"users\",\"endpoint\":\"/tracker/users\","             \
    "\"records\":\"items\",\"pagination\":\"offset\",\"page_size\":3},"                   \
    "{\"name\":\"groups\",\"kind\":\"groups\",\"endpoint\":\"/tracker/groups\","          \
    "\"records\":\"items\",\"member_groups\":\"subgroups\",\"pagination\":\"link\","      \
    "\"page_size\":2}"

/* tracker - the tracker source with bearer auth, fast retries, extra keys and streams. */
static const char *tracker(const char *extra, const char *streams)
{
    snprintf(src, sizeof src,
             "{\"name\":\"tracker\",\"type\":\"rest\",\"base_url\":\"http://127.0.0.1:%d\","
             "\"auth\":{\"type\":\"bearer\",\"secret_env\":\"CTX_TEST_TRACKER_TOKEN\"},"
             "\"backoff_ms\":20,\"max_backoff_ms\":100,%s\"streams\":[%s]}",
             port, extra, streams);
    return src;
}

static const char *wiki(const char *extra)
{
    snprintf(src, sizeof src,
             "{\"name\":\"wiki\",\"type\":\"rest\",\"base_url\":\"http://127.0.0.1:%d/\","
             "\"auth\":{\"type\":\"oauth2\",\"client_id\":\"ctxgate\","
             "\"token_url\":\"/oauth/token\",\"secret_env\":\"CTX_TEST_WIKI_SECRET\"},"
             "\"backoff_ms\":20,\"max_backoff_ms\":100,%s\"streams\":["
             "{\"name\":\"users\",\"kind\":\"users\",\"endpoint\":\"/wiki/users\","
             "\"records\":\"results\",\"id\":\"accountId\",\"display_name\":\"displayName\","
             "\"pagination\":\"page\",\"page_size\":2},"
             "{\"name\":\"groups\",\"kind\":\"groups\",\"endpoint\":\"/wiki/groups\","
             "\"records\":\"results\",\"id\":\"name\",\"members\":\"users\","
             "\"member_groups\":\"groups\",\"pagination\":\"cursor\","
             "\"cursor_path\":\"paging.next\",\"page_size\":1},"
             "{\"name\":\"pages\",\"endpoint\":\"/wiki/pages\",\"records\":\"results\","
             "\"title\":\"title\",\"body\":\"body.storage\",\"updated_at\":\"lastModified\","
             "\"since_param\":\"since\",\"url_template\":\"http://wiki.test/p/{id}\","
             "\"permissions_endpoint\":\"/wiki/pages/{id}/permissions\","
             "\"pagination\":\"link\",\"page_size\":4,"
             "\"deleted_endpoint\":\"/wiki/pages/deleted\"}]}",
             port, extra ? extra : "");
    return src;
}

static void sync_ok(const char *source, int full, store_run_stats *s)
{
    ctx_error err;
    int rc = tu_sync(st, source, full, s, &err);
    cr_assert_eq(rc, 0, "sync failed: %s", rc ? err.text : "");
}

/* sync_fails - the sync fails; its message is copied into msg. */
static int sync_fails(const char *source, char *msg, size_t len)
{
    store_run_stats s;
    ctx_error err;
    int rc = tu_sync(st, source, 0, &s, &err);
    cr_assert_neq(rc, 0, "the sync was expected to fail");
    snprintf(msg, len, "%s", err.text);
    return rc;
}

static int64_t docs(const char *stream)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM documents WHERE deleted = 0 AND"
             " stream = '%s'", stream);
    return tu_count(st, sql);
}

static int sees(const char *user, const char *title)
{
    return tu_sees(st, user, "zebra", title);
}

static int nseen(const char *user)
{
    char *got = tu_search_titles(st, user, "zebra");
    int n = *got ? 1 : 0;
    for (char *p = got; *p; p++)
        n += *p == '|';
    free(got);
    return n;
}

#define assert_has(hay, needle) \
    cr_assert(strstr(hay, needle), "expected \"%s\" in: %s", needle, hay)

/* ---- pagination and incremental reads ---- */

Test(rest, every_pagination_style_reads_every_record_once)
{
    store_run_stats s;
    sync_ok(tracker("", TICKETS("by_page", "page", ",\"limit_param\":\"per_page\"") ","
                        TICKETS("by_offset", "offset", "") ","
                        TICKETS("by_cursor", "cursor", "") ","
                        TICKETS("by_link", "link", "")),
            0, &s);
    cr_assert_eq(s.records, 80, "records %lld", (long long)s.records);
    cr_assert_eq(docs("by_page"), 20);
    cr_assert_eq(docs("by_offset"), 20);
    cr_assert_eq(docs("by_cursor"), 20);
    cr_assert_eq(docs("by_link"), 20);
    /* 20 items, 3 a page: 7 pages each (the last one short). */
    cr_assert_eq(hits("/tracker/tickets"), 28);
}

Test(rest, a_server_capping_the_page_size_is_read_to_the_end)
{
    store_run_stats s;
    ctl("config", "{\"max_limit\":4}");
    sync_ok(tracker("", TICKETS("by_page", "page", ",\"limit_param\":\"per_page\","
                                "\"page_size\":10") ","
                        TICKETS("by_offset", "offset", ",\"page_size\":10")),
            0, &s);
    cr_assert_eq(docs("by_page"), 20);
    cr_assert_eq(docs("by_offset"), 20);
}

Test(rest, second_sync_reads_only_what_changed)
{
    store_run_stats s;
    const char *cfg = tracker("", TRACKER_PRINCIPALS "," TICKETS("tickets", "cursor", INCR));

    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records, 20);
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records, 0, "nothing changed, yet %lld records", (long long)s.records);
    ctl("update", "{\"collection\":\"tracker.tickets\",\"id\":3,"
                  "\"set\":{\"title\":\"Ticket 3 zebra renamed\"}}");
    ctl("update", "{\"collection\":\"tracker.tickets\",\"id\":8,\"set\":{\"reporter\":\"u3\"}}");
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records + s.unchanged, 2, "expected the 2 changed tickets, got %lld",
                 (long long)(s.records + s.unchanged));
    cr_assert(sees("dee@x.test", "Ticket 3 zebra renamed"));
    cr_assert_eq(docs("tickets"), 20);
}

Test(rest, lookback_rereads_items_that_show_up_late)
{
    store_run_stats s;
    /* Ticket 99 appears after the first sync, dated 2 minutes before its cursor. */
    const char *late = "{\"collection\":\"tracker.tickets\",\"item\":{\"id\":99,"
                       "\"project\":\"P1\",\"title\":\"Ticket 99 zebra\","
                       "\"reporter\":\"u4\",\"updated_at\":\"2026-01-01T00:18:00Z\"}}";

    sync_ok(tracker("", TICKETS("tickets", "cursor", INCR)), 0, &s);
    ctl("add", late);
    sync_ok(tracker("", TICKETS("tickets", "cursor", INCR)), 0, &s);
    cr_assert_eq(docs("tickets"), 20, "without lookback a late item is missed");
    sync_ok(tracker("", TICKETS("tickets", "page", INCR ",\"limit_param\":\"per_page\","
                                "\"lookback_seconds\":300")),
            0, &s);
    cr_assert_eq(s.records, 1, "only the late ticket is new");
    cr_assert_eq(s.unchanged, 6, "tickets 15..20 (from 5 minutes before the cursor) were read"
                                 " again, unchanged: %lld", (long long)s.unchanged);
    cr_assert_eq(docs("tickets"), 21);
    cr_assert(tu_count(st, "SELECT count(*) FROM documents WHERE ext_id = '99'") == 1);
}

Test(rest, records_changing_between_pages_are_not_lost)
{
    store_run_stats s;
    /* After page 1, ticket 1 changes and moves to the end; the rest shift left. */
    ctl("faults", "[{\"path\":\"/tracker/tickets\",\"type\":\"touch\","
                  "\"collection\":\"tracker.tickets\",\"ids\":[1,2]}]");
    sync_ok(tracker("", TICKETS("tickets", "page", INCR ",\"limit_param\":\"per_page\"")), 0,
            &s);
    cr_assert_eq(docs("tickets"), 20, "items were skipped: %lld of 20",
                 (long long)docs("tickets"));
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE ext_id = '4'"), 1);
}

Test(rest, a_server_ignoring_since_still_gives_every_record_once)
{
    store_run_stats s;
    /* The server does not know "changed_after": every answer is the whole list. */
    const char *cfg = tracker("", TICKETS("tickets", "page",
                                          ",\"since_param\":\"changed_after\","
                                          "\"limit_param\":\"per_page\""));
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records, 20);
    cr_assert_eq(hits("/tracker/tickets"), 8, "7 pages and one restart that found nothing new");
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records + s.unchanged, 0, "the cursor still filters what was read");
}

/* ---- permissions and principals ---- */

Test(rest, permissions_from_fields_and_principals)
{
    store_run_stats s;
    sync_ok(tracker("", TRACKER_PRINCIPALS "," TICKETS("tickets", "cursor", INCR)), 0, &s);
    cr_assert_eq(s.principals, 7, "principals %lld", (long long)s.principals);
    /* dee reports everything; ann is in eng through eng-leads; cy is support. */
    cr_assert_eq(nseen("dee@x.test"), 20);
    cr_assert_eq(nseen("ann@x.test"), 10);
    cr_assert(sees("ann@x.test", "Ticket 1 zebra"));
    cr_assert(!sees("ann@x.test", "Ticket 2 zebra"));
    cr_assert_eq(nseen("ben@x.test"), 10);
    cr_assert(sees("cy@x.test", "Ticket 2 zebra"));
    cr_assert(!sees("cy@x.test", "Ticket 1 zebra"));
    cr_assert_eq(nseen("mallory@x.test"), 0);
    cr_assert_eq(nseen("u1"), 0, "an account is not a login");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM identities"), 4);

    /* A revoked membership takes effect on the next sync. */
    ctl("update", "{\"collection\":\"tracker.groups\",\"id\":\"eng\",\"set\":"
                  "{\"subgroups\":[]}}");
    sync_ok(tracker("", TRACKER_PRINCIPALS "," TICKETS("tickets", "cursor", INCR)), 0, &s);
    cr_assert_eq(nseen("ann@x.test"), 0);
    cr_assert_eq(nseen("ben@x.test"), 10);
}

Test(rest, wiki_permissions_endpoint_groups_and_oauth2)
{
    store_run_stats s;
    sync_ok(wiki(NULL), 0, &s);
    cr_assert_eq(docs("pages"), 12);
    /* ann: wiki-hr (and wiki-staff through nesting), but page 5 is cy's only. */
    cr_assert_eq(nseen("ann@x.test"), 11);
    cr_assert(!sees("ann@x.test", "Page 5 zebra"));
    cr_assert_eq(nseen("ben@x.test"), 6);
    cr_assert(sees("ben@x.test", "Page 2 zebra"));
    cr_assert_eq(nseen("cy@x.test"), 1);
    cr_assert(sees("cy@x.test", "Page 5 zebra"));
    cr_assert_eq(tokens_issued(), 1, "one token serves the whole run");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE url ="
                              " 'http://wiki.test/p/1001'"), 1);

    /* Lifting page 5's restriction (which bumps the page) opens it to the space. */
    ctl("update", "{\"collection\":\"wiki.pages\",\"id\":\"1005\",\"set\":"
                  "{\"restrictions\":{\"users\":[],\"groups\":[]}}}");
    sync_ok(wiki(NULL), 0, &s);
    cr_assert_eq(s.records + s.unchanged, 1);
    cr_assert_eq(s.acls, 1, "the record's new permissions are a permission change");
    cr_assert(sees("ann@x.test", "Page 5 zebra"));
    cr_assert(!sees("cy@x.test", "Page 5 zebra"));
}

Test(rest, a_group_that_disappears_loses_its_members)
{
    store_run_stats s;
    const char *cfg = tracker("", TRACKER_PRINCIPALS "," TICKETS("tickets", "cursor", INCR));
    sync_ok(cfg, 0, &s);
    cr_assert_eq(nseen("ann@x.test"), 10);
    ctl("delete", "{\"collection\":\"tracker.groups\",\"id\":\"eng-leads\"}");
    sync_ok(cfg, 0, &s);
    cr_assert_eq(nseen("ann@x.test"), 0);
    cr_assert_eq(nseen("ben@x.test"), 10);
}

/* example_source - sources[0] of an examples/rest profile, pointed at this test's server. */
static const char *example_source(const char *path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr), *so;
    char url[64], *text;

    cr_assert_not_null(doc, "%s: %s", path, jerr.text);
    so = json_array_get(json_object_get(doc, "sources"), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    json_object_set_new(so, "base_url", json_string(url));
    text = json_dumps(so, JSON_COMPACT);
    snprintf(src, sizeof src, "%s", text);
    free(text);
    json_decref(doc);
    return src;
}

Test(rest, the_example_profiles_sync)
{
    store_run_stats s;
    setenv("TRACKER_TOKEN", TRACKER_TOKEN, 1);
    setenv("WIKI_CLIENT_SECRET", WIKI_SECRET, 1);
    sync_ok(example_source("examples/rest/tickets.json"), 0, &s);
    cr_assert_eq(docs("tickets"), 20);
    cr_assert_eq(docs("comments"), 6);
    cr_assert_eq(docs("projects"), 2);
    cr_assert_eq(s.principals, 7);
    cr_assert(sees("ann@x.test", "Ticket 1 zebra"));
    sync_ok(example_source("examples/rest/wiki.json"), 0, &s);
    cr_assert_eq(docs("pages"), 12);
    cr_assert_eq(docs("spaces"), 2);
    cr_assert(sees("cy@x.test", "Page 5 zebra"));
}

/* ---- deletes ---- */

Test(rest, deleted_endpoint_removes_items)
{
    store_run_stats s;
    const char *cfg = tracker("", TRACKER_PRINCIPALS "," TICKETS("tickets", "offset", INCR
                                          ",\"deleted_endpoint\":\"/tracker/tickets/deleted\""));
    sync_ok(cfg, 0, &s);
    cr_assert_eq(docs("tickets"), 20);
    ctl("delete", "{\"collection\":\"tracker.tickets\",\"id\":5}");
    ctl("delete", "{\"collection\":\"tracker.tickets\",\"id\":12}");
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.deletes, 2);
    cr_assert_eq(docs("tickets"), 18);
    cr_assert(!sees("dee@x.test", "Ticket 5 zebra"));
    /* The deleted list is read incrementally too: nothing new, nothing deleted. */
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_state WHERE state LIKE"
                              " '%deleted_since%'"), 1);
}

Test(rest, full_sync_prunes_what_is_gone)
{
    store_run_stats s;
    const char *cfg = tracker("", TRACKER_PRINCIPALS "," TICKETS("tickets", "link", INCR));
    sync_ok(cfg, 0, &s);
    ctl("delete", "{\"collection\":\"tracker.tickets\",\"id\":7}");
    sync_ok(cfg, 0, &s);
    cr_assert_eq(docs("tickets"), 20, "an incremental read cannot see a delete");
    sync_ok(cfg, 1, &s);
    cr_assert_eq(s.pruned, 1);
    cr_assert_eq(docs("tickets"), 19);
    cr_assert(!sees("dee@x.test", "Ticket 7 zebra"));
}

/*
 * A permission sync walks the list endpoints (and the permissions endpoint)
 * without since: ACL changes that did not move the updated time and hard
 * deletes (no deleted endpoint) are applied, and nothing is re-chunked.
 */
Test(rest, permission_sync_applies_silent_acl_changes_and_hard_deletes)
{
    store_run_stats s;
    const char *cfg = tracker("", TRACKER_PRINCIPALS "," TICKETS("tickets", "page", INCR));
    int64_t max_chunk;

    sync_ok(cfg, 0, &s);
    cr_assert(sees("ann@x.test", "Ticket 1 zebra"));
    cr_assert(!sees("cy@x.test", "Ticket 1 zebra"));
    ctl("update", "{\"collection\":\"tracker.tickets\",\"id\":1,\"touch\":false,\"set\":"
                  "{\"project\":\"P2\",\"reporter\":\"u3\"}}");
    ctl("delete", "{\"collection\":\"tracker.tickets\",\"id\":9}");
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records + s.acls + s.deletes + s.pruned, 0, "an incremental sync sees none");
    cr_assert(sees("ann@x.test", "Ticket 1 zebra"));
    max_chunk = tu_count(st, "SELECT max(id) FROM chunks");

    sync_ok(cfg, TU_PERMISSIONS, &s);
    cr_assert_eq(s.acls, 1);
    cr_assert_eq(s.pruned, 1);
    cr_assert_eq(s.unchanged, 19);
    cr_assert_eq(s.records + s.chunks, 0, "nothing re-chunked");
    cr_assert(!sees("ann@x.test", "Ticket 1 zebra"));
    cr_assert(sees("cy@x.test", "Ticket 1 zebra"));
    cr_assert(!sees("dee@x.test", "Ticket 9 zebra"));
    cr_assert_eq(docs("tickets"), 19);
    /* Only the re-labelled ticket's chunks are new rows (same text, new ACL). */
    {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM chunks c JOIN documents d ON"
                 " d.id = c.doc_id WHERE c.id > %lld AND d.ext_id <> '1'", (long long)max_chunk);
        cr_assert_eq(tu_count(st, sql), 0, "unchanged tickets keep their chunks");
    }
}

Test(rest, permission_sync_reads_the_permissions_endpoint)
{
    store_run_stats s;

    sync_ok(wiki(NULL), 0, &s);
    cr_assert(!sees("ann@x.test", "Page 5 zebra"));
    ctl("update", "{\"collection\":\"wiki.pages\",\"id\":\"1005\",\"touch\":false,\"set\":"
                  "{\"restrictions\":{\"users\":[],\"groups\":[]}}}");
    sync_ok(wiki(NULL), TU_PERMISSIONS, &s);
    cr_assert_eq(s.acls, 1);
    cr_assert_eq(s.records + s.chunks, 0);
    cr_assert(sees("ann@x.test", "Page 5 zebra"));
    cr_assert(!sees("cy@x.test", "Page 5 zebra"));
}

/* ---- rate limits and faults ---- */

/* recovers - with faults queued, the sync still reads all 20 tickets in n requests. */
static void recovers(const char *faults, const char *cfg, int64_t n)
{
    store_run_stats s;
    ctl("faults", faults);
    sync_ok(cfg, 0, &s);
    cr_assert_eq(docs("tickets"), 20);
    cr_assert_eq(hits("/tracker/tickets"), n, "%lld requests, expected %lld",
                 (long long)hits("/tracker/tickets"), (long long)n);
    cr_assert_eq(early_retries(), 0, "a request came before the server's Retry-After");
}

/* The fake server itself: a retry that does not wait is refused and counted. */
Test(rest, the_server_refuses_and_counts_a_retry_that_does_not_wait)
{
    ctl("faults", "[{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":429,"
                  "\"retry_after\":30},"
                  "{\"path\":\"/tracker/users\",\"type\":\"status\",\"code\":503,"
                  "\"retry_after_date\":30}]");
    cr_assert_eq(status_of("/tracker/tickets"), 429);
    cr_assert_eq(early_retries(), 0);
    cr_assert_eq(status_of("/tracker/tickets"), 429, "retried at once: still 429");
    cr_assert_eq(early_retries(), 1);
    cr_assert_eq(status_of("/tracker/users"), 503);
    cr_assert_eq(status_of("/tracker/users"), 429, "retried before the HTTP-date");
    cr_assert_eq(early_retries(), 2);
    /* Another path was not asked to wait. */
    cr_assert_eq(status_of("/tracker/groups"), 200);
    cr_assert_eq(early_retries(), 2);
    ctl("reset", NULL);
    cr_assert_eq(early_retries(), 0);
}

Test(rest, retry_after_seconds_is_honoured)
{
    /* 7 pages and one retry. */
    recovers("[{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":429,"
             "\"retry_after\":1,\"skip\":2}]",
             tracker("", TICKETS("tickets", "cursor", INCR)), 8);
}

Test(rest, retry_after_http_date_and_503_are_honoured)
{
    recovers("[{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":503,"
             "\"retry_after_date\":1,\"skip\":1},"
             "{\"path\":\"/tracker/users\",\"type\":\"status\",\"code\":429,"
             "\"retry_after_date\":1}]",
             tracker("", TRACKER_PRINCIPALS "," TICKETS("tickets", "page",
                                                        ",\"limit_param\":\"per_page\"")),
             8);
    cr_assert_eq(hits("/tracker/users"), 3, "2 pages and one retry");
    cr_assert_eq(early_retries(), 0);
}

Test(rest, server_errors_are_retried_then_succeed)
{
    /* 7 pages and three retries: 500 twice on page 2, 503 once on page 4. */
    recovers("[{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":500,"
             "\"count\":2,\"skip\":1},"
             "{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":503,"
             "\"count\":1,\"skip\":3}]",
             tracker("", TICKETS("tickets", "offset", "")), 10);
}

Test(rest, rate_limit_headers_are_honoured)
{
    /* An exhausted window waits for its reset; nothing is retried. */
    recovers("[{\"path\":\"/tracker/tickets\",\"type\":\"ratelimit\",\"reset\":1}]",
             tracker("\"requests_per_second\":50,", TICKETS("tickets", "cursor", "")), 7);
}

Test(rest, a_429_without_retry_after_waits_for_the_rate_limit_reset)
{
    recovers("[{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":429,"
             "\"reset\":1,\"skip\":3}]",
             tracker("", TICKETS("tickets", "link", "")), 8);
}

Test(rest, a_retry_after_beyond_the_limit_fails_at_once)
{
    char msg[600];
    ctl("faults", "[{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":429,"
                  "\"retry_after\":3600}]");
    sync_fails(tracker("\"max_retry_after\":60,", TICKETS("tickets", "cursor", "")), msg,
               sizeof msg);
    assert_has(msg, "HTTP 429 asks to wait 3600 s, more than max_retry_after (60 s)");
    cr_assert_eq(hits("/tracker/tickets"), 1);
}

Test(rest, bounded_retries_fail_cleanly_and_resume_from_the_last_state)
{
    store_run_stats s;
    char msg[600];
    const char *cfg;

    /* Pages 1 and 2 succeed, page 3 keeps answering 503. */
    ctl("faults", "[{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":503,"
                  "\"count\":100,\"skip\":2}]");
    cfg = tracker("\"retries\":2,", TICKETS("tickets", "cursor", INCR));
    sync_fails(cfg, msg, sizeof msg);
    assert_has(msg, "streams[0] (tickets)");
    assert_has(msg, "GET /tracker/tickets");
    assert_has(msg, "HTTP 503");
    assert_has(msg, "3 attempts");
    cr_assert_eq(hits("/tracker/tickets"), 5);
    cr_assert_eq(docs("tickets"), 6, "two whole pages were committed with their STATE");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs WHERE status = 'failed'"), 1);

    ctl("reset", NULL);
    sync_ok(tracker("\"retries\":2,", TICKETS("tickets", "cursor", INCR)), 0, &s);
    cr_assert_eq(s.records, 14, "the run resumes after the last STATE");
    cr_assert_eq(docs("tickets"), 20);
}

Test(rest, a_stall_past_the_timeout_fails_cleanly)
{
    char msg[600];
    ctl("faults", "[{\"path\":\"/tracker/tickets\",\"type\":\"stall\",\"seconds\":8,"
                  "\"skip\":1}]");
    sync_fails(tracker("\"timeout\":2,\"retries\":0,", TICKETS("tickets", "cursor", INCR)),
               msg, sizeof msg);
    assert_has(msg, "streams[0] (tickets)");
    assert_has(msg, "timeout");
    cr_assert_eq(docs("tickets"), 3);
}

Test(rest, truncated_json_is_a_clear_error)
{
    char msg[600];
    ctl("faults", "[{\"path\":\"/tracker/tickets\",\"type\":\"truncate\",\"skip\":1}]");
    sync_fails(tracker("", TICKETS("tickets", "cursor", INCR)), msg, sizeof msg);
    assert_has(msg, "streams[0] (tickets)");
    assert_has(msg, "GET /tracker/tickets?");
    assert_has(msg, "not valid JSON");
    cr_assert_eq(docs("tickets"), 3, "the bad page committed nothing");
}

Test(rest, invalid_utf8_is_a_clear_error)
{
    char msg[600];
    ctl("faults", "[{\"path\":\"/tracker/tickets\",\"type\":\"bad_utf8\"}]");
    sync_fails(tracker("", TICKETS("tickets", "page", "")), msg, sizeof msg);
    assert_has(msg, "streams[0] (tickets)");
    assert_has(msg, "GET /tracker/tickets?");
    assert_has(msg, "not valid UTF-8");
    cr_assert_eq(docs("tickets"), 0);
}

Test(rest, an_html_page_is_a_clear_error)
{
    char msg[600];
    ctl("faults", "[{\"path\":\"/tracker/users\",\"type\":\"not_json\"}]");
    sync_fails(tracker("", TRACKER_PRINCIPALS), msg, sizeof msg);
    assert_has(msg, "streams[0] (users)");
    assert_has(msg, "not JSON (Content-Type text/html)");
    sync_fails(tracker("", TICKETS("tickets", "cursor", ",\"records\":\"data.rows\"")), msg,
               sizeof msg);
    assert_has(msg, "no array at records path \"data.rows\"");
}

/* ---- credentials ---- */

Test(rest, oauth2_token_is_refreshed_on_401)
{
    store_run_stats s;
    sync_ok(wiki(NULL), 0, &s);
    cr_assert_eq(tokens_issued(), 1);
    ctl("expire_tokens", NULL);
    ctl("update", "{\"collection\":\"wiki.pages\",\"id\":\"1003\",\"set\":{}}");
    sync_ok(wiki(NULL), 0, &s);
    cr_assert_eq(tokens_issued(), 2);
    cr_assert_eq(s.records + s.unchanged, 1);
}

Test(rest, oauth2_token_is_refreshed_before_it_expires)
{
    store_run_stats s;
    /* A token good for 2 s is renewed ahead of every request (5 s margin). */
    ctl("config", "{\"token_ttl\":2}");
    sync_ok(wiki(NULL), 0, &s);
    cr_assert_gt(tokens_issued(), 1);
    cr_assert_eq(docs("pages"), 12);
}

Test(rest, the_token_endpoint_is_retried_and_a_bad_client_secret_is_eauth)
{
    store_run_stats s;
    char msg[600];

    ctl("faults", "[{\"path\":\"/oauth/token\",\"type\":\"status\",\"code\":503,"
                  "\"retry_after\":0}]");
    sync_ok(wiki(NULL), 0, &s);
    cr_assert_eq(tokens_issued(), 1);
    cr_assert_eq(docs("pages"), 12);
    cr_assert_eq(early_retries(), 0);
    setenv("CTX_TEST_WIKI_SECRET", "not-the-secret", 1);
    cr_assert_eq(sync_fails(wiki(NULL), msg, sizeof msg), CTX_EAUTH);
    assert_has(msg, "streams[0] (users): auth.token_url: POST /oauth/token: HTTP 401");
    assert_has(msg, "check auth.client_id and the secret");
    cr_assert(!strstr(msg, "not-the-secret"), "%s", msg);
}

Test(rest, api_key_and_basic_auth)
{
    store_run_stats s;
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"t2\",\"type\":\"rest\",\"base_url\":\"http://127.0.0.1:%d\","
             "\"auth\":{\"type\":\"api_key\",\"secret_env\":\"CTX_TEST_TRACKER_TOKEN\"},"
             "\"streams\":[" TICKETS("tickets", "cursor", "") "]}", port);
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records, 20);
    tu_write(root, "pw", TRACKER_TOKEN "\n");
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"t3\",\"type\":\"rest\",\"base_url\":\"http://127.0.0.1:%d\","
             "\"auth\":{\"type\":\"basic\",\"username\":\"bot\",\"secret_file\":\"%s/pw\"},"
             "\"streams\":[" TICKETS("tickets", "cursor", "") "]}", port, root);
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records, 20);
}

Test(rest, tls_is_verified_and_a_ca_file_can_be_given)
{
    store_run_stats s;
    char msg[600], cfg[4096];
    int tls_port;
    pid_t tls = spawn_server(1, &tls_port);
#define TLS_SOURCE(extra)                                                                \
    "{\"name\":\"tls\",\"type\":\"rest\",\"base_url\":\"https://127.0.0.1:%d\"," extra     \
    "\"retries\":0,\"auth\":{\"type\":\"bearer\",\"secret_env\":\"CTX_TEST_TRACKER_TOKEN\"}," \
    "\"streams\":[" TICKETS("tickets", "cursor", "") "]}"

    /* A self-signed server is refused unless its CA is given. */
    snprintf(cfg, sizeof cfg, TLS_SOURCE(""), tls_port);
    sync_fails(cfg, msg, sizeof msg);
    assert_has(msg, "GET /tracker/tickets");
    assert_has(msg, "certificate");
    snprintf(cfg, sizeof cfg, TLS_SOURCE("\"ca_file\":\"tests/saas/tls/cert.pem\","), tls_port);
    sync_ok(cfg, 0, &s);
    cr_assert_eq(s.records, 20);
    stop_server(tls);
}

Test(rest, rejected_credentials_fail_with_eauth)
{
    char msg[600];
    setenv("CTX_TEST_TRACKER_TOKEN", "wrong-token-value", 1);
    cr_assert_eq(sync_fails(tracker("", TICKETS("tickets", "cursor", "")), msg, sizeof msg),
                 CTX_EAUTH);
    assert_has(msg, "HTTP 401");
    cr_assert_eq(hits("/tracker/tickets"), 1, "a rejected credential is not retried");
}

Test(rest, the_secret_never_appears_in_logs_or_errors)
{
    char msg[600], logpath[4096], *log = NULL;
    size_t len = 0;
    int saved, fd;

    ctl("faults", "[{\"path\":\"/tracker/tickets\",\"type\":\"status\",\"code\":429,"
                  "\"retry_after\":0},"
                  "{\"path\":\"/tracker/tickets\",\"type\":\"echo_auth\"}]");
    snprintf(logpath, sizeof logpath, "%s/stderr.log", root);
    ctx_log_set_level(CTX_LOG_DEBUG);
    fflush(stderr);
    saved = dup(2);
    fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    sync_fails(tracker("", TICKETS("tickets", "cursor", "")), msg, sizeof msg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(ctx_read_file(logpath, &log, &len), 0);
    assert_has(log, "HTTP 429");
    assert_has(msg, "HTTP 400");
    assert_has(msg, "Bearer ****");
    cr_assert(!strstr(msg, TRACKER_TOKEN), "the token leaked into the error: %s", msg);
    cr_assert(!strstr(log, TRACKER_TOKEN), "the token leaked into the log: %s", log);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs WHERE error LIKE"
                              " '%" TRACKER_TOKEN "%'"), 0);
    ctx_free(log);
}

/* ---- the conformance suite ---- */

/*
 * conformance - the suite on source_json's own keys, with the mutate hook,
 * and a wrong secret as the bad config; every check passes.
 */
static void conformance(const char *source_json)
{
    conform_target t = {.type = "rest"};
    conform_opts o = {0};
    conform_report rep;
    ctx_error err;
    char mutate[128], *out = NULL;
    size_t len;
    json_t *cfg = json_loads(source_json, 0, NULL), *bad;
    FILE *f = open_memstream(&out, &len);

    /* The suite gives the connector its own keys only. */
    json_object_del(cfg, "name");
    json_object_del(cfg, "type");
    /* Bad credentials: check must fail on them, not only on a bad address. */
    setenv("CTX_TEST_BAD_SECRET", "not-the-secret", 1);
    bad = json_deep_copy(cfg);
    json_object_set_new(json_object_get(bad, "auth"), "secret_env",
                        json_string("CTX_TEST_BAD_SECRET"));
    snprintf(mutate, sizeof mutate, "sh tests/integration/conformance/rest-mutate.sh %d",
             port);
    o.mutate = mutate;
    o.bad_config = bad;
    o.validator = "scripts/validate-json.py";
    o.out = f;
    conform_run(&t, cfg, &o, &rep, &err);
    fclose(f);
    cr_assert_eq(rep.failed, 0, "failed checks:\n%s", out);
    cr_assert_eq(rep.skipped, 0, "skipped checks:\n%s", out);
    cr_assert(strstr(out, "PASS check.bad_config: xCheck fails with rc 7"), "%s", out);
    free(out);
    json_decref(bad);
    json_decref(cfg);
}

Test(rest, the_tracker_passes_the_conformance_suite)
{
    conformance(tracker("", TICKETS("tickets", "cursor", INCR
                                    ",\"deleted_endpoint\":\"/tracker/tickets/deleted\"")));
}

Test(rest, the_wiki_passes_the_conformance_suite)
{
    conformance(wiki(NULL));
}

/* ---- configuration ---- */

Test(rest, config_errors_name_the_key_and_the_fix)
{
    char msg[600];
    sync_fails(tracker("\"retires\":2,", TICKETS("tickets", "cursor", "")), msg, sizeof msg);
    assert_has(msg, "did you mean \"retries\"");
    sync_fails(tracker("", TICKETS("tickets", "pages", "")), msg, sizeof msg);
    assert_has(msg, "streams[0].pagination");
    sync_fails(tracker("", "{\"name\":\"t\",\"endpoint\":\"/tracker/tickets\"}"), msg,
               sizeof msg);
    assert_has(msg, "no permissions");
    sync_fails(tracker("", TICKETS("tickets", "cursor",
                                   ",\"deleted_endpoint\":\"https://evil.test/deleted\"")),
               msg, sizeof msg);
    assert_has(msg, "streams[0]: an endpoint is on another host than base_url");
    unsetenv("CTX_TEST_TRACKER_TOKEN");
    sync_fails(tracker("", TICKETS("tickets", "cursor", "")), msg, sizeof msg);
    assert_has(msg, "auth.secret_env");
}
