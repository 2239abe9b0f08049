/*
 * test_acl.c - the access cache (retrieval/acl.c): a user's principals and
 * readable ACL sets are served from the cache only while the store's
 * access generation stands. Each kind of change that moves what someone
 * may read (a membership revoked or granted, a new ACL set, a deny entry,
 * an account mapped to the user), committed on another connection, is
 * seen by the next search on a connection that had cached the old answer.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/ingest.h"
#include "retrieval/acl.h"
#include "retrieval/search.h"
#include "tests/lib/testutil.h"

static char *dir;
static ctx_store *reader, *writer;
static ingest_ctx ic;
static store_run_stats rstats;
static int64_t source;

static void put_group(const char *group, const char *const *members, size_t n)
{
    ctx_principal p = {CTX_PRINCIPAL_GROUP, group, NULL, NULL, NULL, members, n};
    ctx_error err;
    cr_assert_eq(store_begin(writer, &err), 0);
    cr_assert_eq(store_principal_put(writer, source, &p, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(writer, &err), 0);
}

static void put_doc(const char *id, const char *const *allow, size_t nallow,
                    const char *const *deny, size_t ndeny)
{
    ctx_acl acl = {allow, nallow, deny, ndeny, NULL, 0};
    const char *body = "quarterly forecast numbers";
    ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
    ctx_error err;
    cr_assert_eq(store_begin(writer, &err), 0);
    cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(writer, &err), 0);
}

/* seen - the titles user finds for "forecast", "a|b|..." (static). */
static const char *seen(const char *user)
{
    static char buf[256];
    search_opts so = {0};
    search_result r;
    ctx_error err;
    so.k = 10;
    so.match_principals_max = 1 + (rand() % 2) * 100; /* either plan */
    cr_assert_eq(search_lexical(store_db(reader), user, "forecast", &so, &r, &err), 0);
    buf[0] = 0;
    /* in title order, so the answer does not depend on ranking */
    for (const char *want = "abcd"; *want; want++)
        for (size_t i = 0; i < r.n; i++)
            if (r.hits[i].title[0] == *want && strlen(r.hits[i].title) == 1) {
                size_t len = strlen(buf);
                snprintf(buf + len, sizeof buf - len, "%s%c", len ? "|" : "", *want);
            }
    search_result_free(&r);
    return buf;
}

Test(acl_cache, every_change_of_access_is_seen_by_the_next_search)
{
    static const char *const g_fin[] = {"group:finance"}, *const u_ann[] = {"user:ann@t.test"},
                             *const ann_only[] = {"user:ann@t.test"};
    ctx_principal acct = {CTX_PRINCIPAL_USER, "user:ann-old", NULL, NULL, "user:ann@t.test",
                          NULL, 0};
    static const char *const acct_only[] = {"user:ann-old"};
    acl_access a1, a2;
    ctx_error err;

    dir = tu_tmpdir("aclcache");
    writer = tu_store(dir);
    reader = tu_store(dir);
    source = tu_source_with_user(writer, "user:ann@t.test", &ic, &rstats);
    put_group("group:finance", u_ann, 1);
    put_doc("a", g_fin, 1, NULL, 0);

    cr_assert_str_eq(seen("ann@t.test"), "a");
    /* The cache answers the same while nothing changes. */
    cr_assert_eq(acl_access_get(store_db(reader), "ann@t.test", &a1, &err), 0);
    cr_assert_eq(acl_access_get(store_db(reader), "ann@t.test", &a2, &err), 0);
    cr_assert_eq(a1.principals.n, a2.principals.n);
    cr_assert_eq(a1.readable.n, 1);
    acl_access_free(&a1);
    acl_access_free(&a2);

    /* Revoked: ann leaves finance. */
    put_group("group:finance", NULL, 0);
    cr_assert_str_eq(seen("ann@t.test"), "", "a revoked membership still served");
    /* Granted again. */
    put_group("group:finance", u_ann, 1);
    cr_assert_str_eq(seen("ann@t.test"), "a");
    /* A new ACL set, naming ann directly. */
    put_doc("b", ann_only, 1, NULL, 0);
    cr_assert_str_eq(seen("ann@t.test"), "a|b");
    /* A deny entry in a new set: b now allows finance but denies ann. */
    put_doc("b", g_fin, 1, ann_only, 1);
    cr_assert_str_eq(seen("ann@t.test"), "a", "a new deny entry is not applied");
    /* An old account's documents, once the account maps to ann. */
    put_doc("c", acct_only, 1, NULL, 0);
    cr_assert_str_eq(seen("ann@t.test"), "a");
    cr_assert_eq(store_begin(writer, &err), 0);
    cr_assert_eq(store_principal_put(writer, source, &acct, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(writer, &err), 0);
    cr_assert_str_eq(seen("ann@t.test"), "a|c", "the account mapping is not seen");
    /* Unknown users are never cached as anything but nothing. */
    cr_assert_str_eq(seen("nobody@t.test"), "");

    store_close(reader);
    store_close(writer);
    tu_rmrf(dir);
    free(dir);
}
