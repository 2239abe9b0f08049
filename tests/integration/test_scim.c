/*
 * test_scim.c - SCIM 2.0 provisioning against a real `ctxgate serve` on
 * 127.0.0.1 (libcurl): request sequences shaped like Okta's and Entra
 * ID's documented ones (create a user, a group with members, PATCH members
 * in each provider's way, filter by userName, paginate, deactivate,
 * delete), each permission change checked by a search as the user before
 * and after; bad bodies answered as SCIM errors; the token door.
 *
 * The files source "docs" grants by the names the directory provides:
 *   eng/      group:Engineering          "Zephyr design"
 *   ops/      group:Operations           "Zephyr runbook"
 *   bob/      user:bob@corp.test         "Zephyr notes of Bob" (an email alias)
 *   alice/    user:alice@corp.test       "Zephyr plan of Alice"
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

#define SECRET "test-secret-0123456789-abcdefghijklmnop"
#define ADMIN "admin-token-0123456789-abcdefghijklmnopqrstuv"
#define SCIM_TOKEN "scim-token-0123456789-abcdefghijklmnopqrstuvw"
#define CORE_USER "urn:ietf:params:scim:schemas:core:2.0:User"
#define CORE_GROUP "urn:ietf:params:scim:schemas:core:2.0:Group"
#define PATCH_OP "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#define ENTERPRISE "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

static char *dir;
static pid_t server;
static int port;

static void put_doc(const char *folder, const char *acl, const char *title)
{
    char rel[128], text[256];
    snprintf(rel, sizeof rel, "docs/%s/_acl.json", folder);
    tu_write(dir, rel, acl);
    snprintf(rel, sizeof rel, "docs/%s/doc.md", folder);
    snprintf(text, sizeof text, "# %s\n\nThe zephyr project, as %s keeps it.\n", title, folder);
    tu_write(dir, rel, text);
}

/* start - sync the docs, then serve with the scim source's extra keys. */
static void start(const char *scim_extra)
{
    char cfg[4096], bin[PATH_MAX], cmd[PATH_MAX * 2 + 512];

    dir = tu_tmpdir("scim");
    cr_assert(realpath(tu_build_dir(), bin));
    put_doc("eng", "{\"allow\": [\"group:Engineering\"]}", "Zephyr design");
    put_doc("ops", "{\"allow\": [\"group:Operations\"]}", "Zephyr runbook");
    put_doc("bob", "{\"allow\": [\"user:bob@corp.test\"]}", "Zephyr notes of Bob");
    put_doc("alice", "{\"allow\": [\"user:alice@corp.test\"]}", "Zephyr plan of Alice");
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 32},"
             " \"sources\": [{\"name\": \"docs\", \"type\": \"files\", \"path\": \"./docs\"},"
             "  {\"name\": \"idp\", \"type\": \"scim\", \"directory\": true%s}],"
             " \"agents\": [{\"name\": \"helpdesk\", \"sources\": \"*\", \"labels\": \"*\"}],"
             " \"auth\": {\"issuer\": \"iss\", \"audience\": \"aud\","
             "  \"hs256_secret_env\": \"CTXGATE_TEST_SECRET\"},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2,"
             "  \"user_rate\": 0, \"agent_rate\": 0}}", scim_extra);
    tu_write(dir, "ctxgate.json", cfg);
    snprintf(cmd, sizeof cmd, "cd %s && %s/ctxgate sync >sync.log 2>&1", dir, bin);
    cr_assert_eq(system(cmd), 0, "sync failed: %s", cmd);
    snprintf(cmd, sizeof cmd, "CTXGATE_TEST_SECRET=%s CTXGATE_ADMIN_TOKEN=%s"
             " CTXGATE_TEST_SCIM=%s", SECRET, ADMIN, SCIM_TOKEN);
    server = tu_serve(dir, cmd, "--no-agent", &port);
    cr_assert(port > 0, "the server did not start");
}

static void setup(void) { start(", \"token_env\": \"CTXGATE_TEST_SCIM\""); }
static void setup_admin(void) { start(""); }
static void setup_email(void)
{
    start(", \"token_env\": \"CTXGATE_TEST_SCIM\", \"user_principal\": \"email\","
          " \"user_aliases\": [], \"group_principal\": \"externalId\"");
}

static void teardown(void)
{
    int status;
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "serve did not stop cleanly (status %d)", status);
    }
    server = 0;
    tu_rmrf(dir);
    free(dir);
}

TestSuite(scim, .init = setup, .fini = teardown, .timeout = 240);
TestSuite(scim_admin, .init = setup_admin, .fini = teardown, .timeout = 240);
TestSuite(scim_email, .init = setup_email, .fini = teardown, .timeout = 240);

/* ---- HTTP ---- */

typedef struct reply {
    long status;
    char *body;             /* new */
    json_t *json;           /* the body parsed, or NULL */
    char location[512], ctype[128];
} reply;

static reply http(const char *method, const char *path, const char *token, const char *body)
{
    static const char *const scim_type[] = {"Content-Type: application/scim+json", NULL};
    tu_reply t = tu_call(port, method, path, token, body, scim_type);
    reply r;

    memset(&r, 0, sizeof r);
    r.status = t.status;
    r.body = t.body;
    r.json = json_loads(t.body, 0, NULL);
    snprintf(r.location, sizeof r.location, "%s", t.location);
    snprintf(r.ctype, sizeof r.ctype, "%s", t.content_type);
    return r;
}

static void reply_free(reply *r)
{
    ctx_free(r->body);
    json_decref(r->json);
}

/* scim - a SCIM request with the SCIM token, expecting status; the reply. */
static reply scim(const char *method, const char *path, const char *body, long status)
{
    char full[1024];
    reply r;
    snprintf(full, sizeof full, "/scim/v2%s", path);
    r = http(method, full, SCIM_TOKEN, body);
    cr_assert_eq(r.status, status, "%s %s %s -> %ld: %s", method, path, body ? body : "",
                 r.status, r.body);
    return r;
}

/* scim_error - r is a SCIM error of status (and scimType, when type). */
static void scim_error(const reply *r, long status, const char *type)
{
    char code[8];
    json_t *schemas = json_object_get(r->json, "schemas");
    snprintf(code, sizeof code, "%ld", status);
    cr_assert_eq(r->status, status, "%ld: %s", r->status, r->body);
    cr_assert(r->json, "not JSON: %s", r->body);
    cr_assert_str_eq(json_string_value(json_array_get(schemas, 0)),
                     "urn:ietf:params:scim:api:messages:2.0:Error", "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "status")), code, "%s",
                     r->body);
    cr_assert(json_string_length(json_object_get(r->json, "detail")) > 0, "%s", r->body);
    if (type)
        cr_assert_str_eq(json_string_value(json_object_get(r->json, "scimType")), type, "%s",
                         r->body);
    cr_assert(strstr(r->ctype, "application/scim+json"), "%s", r->ctype);
}

/* create - POST body to path (201); the new resource's id (new). */
static char *create(const char *path, const char *body)
{
    reply r = scim("POST", path, body, 201);
    const char *id = json_string_value(json_object_get(r.json, "id"));
    char *out;
    cr_assert(id && *id, "%s", r.body);
    cr_assert(strstr(r.location, id), "Location %s does not name %s", r.location, id);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "meta"),
                                                       "location")), r.location);
    out = ctx_strdup(id);
    reply_free(&r);
    return out;
}

static void patch(const char *path, const char *ops)
{
    char body[4096];
    reply r;
    snprintf(body, sizeof body, "{\"schemas\": [\"" PATCH_OP "\"], \"Operations\": %s}", ops);
    r = scim("PATCH", path, body, 200);
    reply_free(&r);
}

/* ---- searching as a user ---- */

static char *token(const char *user)
{
    jwt_t *j;
    char claims[512], *t, *out;
    snprintf(claims, sizeof claims, "{\"sub\": \"%s\", \"act\": {\"sub\": \"helpdesk\"},"
             " \"iss\": \"iss\", \"aud\": \"aud\", \"exp\": %lld}", user,
             (long long)time(NULL) + 3600);
    cr_assert_eq(jwt_new(&j), 0);
    cr_assert_eq(jwt_add_grants_json(j, claims), 0);
    cr_assert_eq(jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)SECRET,
                             (int)strlen(SECRET)), 0);
    t = jwt_encode_str(j);
    out = ctx_strdup(t);
    free(t);
    jwt_free(j);
    return out;
}

/* sees - the titles user finds for "zephyr", "|"-joined and sorted by the server (new). */
static char *sees(const char *user)
{
    char *tok = token(user);
    reply r = http("POST", "/v1/search", tok, "{\"query\": \"zephyr\", \"k\": 20}");
    ctx_buf b = CTX_BUF_INIT;
    const char *names[8];
    size_t i, n = 0;
    json_t *v;

    cr_assert_eq(r.status, 200, "search as %s: %ld %s", user, r.status, r.body);
    json_array_foreach(json_object_get(r.json, "results"), i, v)
        if (n < 8)
            names[n++] = json_string_value(json_object_get(v, "title"));
    for (size_t x = 0; x < n; x++)          /* sort: answers order by score */
        for (size_t y = x + 1; y < n; y++)
            if (strcmp(names[y], names[x]) < 0) {
                const char *t = names[x];
                names[x] = names[y];
                names[y] = t;
            }
    for (size_t x = 0; x < n; x++)
        ctx_buf_printf(&b, "%s%s", x ? "|" : "", names[x]);
    ctx_buf_append(&b, "", 1);
    reply_free(&r);
    ctx_free(tok);
    return ctx_buf_steal(&b);
}

/* fetch_status - the status of fetching SOURCE:EXTERNAL_ID ref (URL-encoded) as user. */
static long fetch_status(const char *user, const char *ref)
{
    char *tok = token(user), path[256];
    reply r;
    long st;
    snprintf(path, sizeof path, "/v1/documents/%s", ref);
    r = http("GET", path, tok, NULL);
    st = r.status;
    reply_free(&r);
    ctx_free(tok);
    return st;
}

#define SEES(user, want)                                                                   \
    do {                                                                                   \
        char *got_ = sees(user);                                                           \
        cr_assert_str_eq(got_, want, "%s sees [%s], expected [%s]", user, got_, want);    \
        ctx_free(got_);                                                                    \
    } while (0)

/* ---- Okta ---- */

/*
 * Okta's documented flow: it looks the user up by userName, creates it
 * (with a password it must not keep), pushes a group, adds members with
 * an add on "members", renames with a path-less replace carrying the
 * group's id, removes members with a filter path, replaces the member
 * list, and deactivates with a path-less replace of active.
 */
Test(scim, okta_sequence_and_the_access_it_gives)
{
    char ops[2048], *bob, *carl, *grp;
    reply r;

    SEES("bob.okta@corp.test", "");
    r = scim("GET", "/Users?filter=userName%20eq%20%22bob.okta%40corp.test%22&startIndex=1"
             "&count=100", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 0, "%s", r.body);
    reply_free(&r);
    bob = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\":"
                 " \"bob.okta@corp.test\", \"name\": {\"givenName\": \"Bob\", \"familyName\":"
                 " \"Okafor\"}, \"emails\": [{\"primary\": true, \"value\": \"bob@corp.test\","
                 " \"type\": \"work\"}], \"displayName\": \"Bob Okafor\", \"locale\": \"en-US\","
                 " \"externalId\": \"00ujl29u0le5T6Aj10h7\", \"groups\": [], \"password\":"
                 " \"1mz050nq\", \"active\": true}");
    carl = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\":"
                  " \"carl@corp.test\", \"emails\": [{\"primary\": true, \"value\":"
                  " \"carl@corp.test\", \"type\": \"work\"}], \"active\": true}");
    /* The user is known now: the email alias reaches bob's notes; no group yet. */
    SEES("bob.okta@corp.test", "Zephyr notes of Bob");
    r = scim("GET", "/Users?filter=userName%20eq%20%22BOB.OKTA%40corp.test%22", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 1, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(
                         json_object_get(r.json, "Resources"), 0), "id")), bob);
    cr_assert(!strstr(r.body, "1mz050nq"), "the password came back: %s", r.body);
    reply_free(&r);

    grp = create("/Groups", "{\"schemas\": [\"" CORE_GROUP "\"], \"displayName\":"
                 " \"Engineering\", \"members\": []}");
    SEES("bob.okta@corp.test", "Zephyr notes of Bob");
    snprintf(ops, sizeof ops, "[{\"op\": \"add\", \"path\": \"members\", \"value\":"
             " [{\"value\": \"%s\", \"display\": \"bob.okta@corp.test\"},"
             "  {\"value\": \"%s\", \"display\": \"carl@corp.test\"}]}]", bob, carl);
    {
        char path[128];
        snprintf(path, sizeof path, "/Groups/%s", grp);
        patch(path, ops);
    }
    SEES("bob.okta@corp.test", "Zephyr design|Zephyr notes of Bob");
    SEES("carl@corp.test", "Zephyr design");

    /* Renamed to Operations: the old group's grant goes, the new one's comes. */
    {
        char path[128];
        snprintf(path, sizeof path, "/Groups/%s", grp);
        snprintf(ops, sizeof ops, "[{\"op\": \"replace\", \"value\": {\"id\": \"%s\","
                 " \"displayName\": \"Operations\"}}]", grp);
        patch(path, ops);
        SEES("bob.okta@corp.test", "Zephyr notes of Bob|Zephyr runbook");
        snprintf(ops, sizeof ops, "[{\"op\": \"remove\", \"path\": \"members[value eq"
                 " \\\"%s\\\"]\"}]", bob);
        patch(path, ops);
        SEES("bob.okta@corp.test", "Zephyr notes of Bob");
        SEES("carl@corp.test", "Zephyr runbook");
        r = scim("GET", path, NULL, 200);
        cr_assert_eq(json_array_size(json_object_get(r.json, "members")), 1, "%s", r.body);
        reply_free(&r);
        /* Okta's replace of the whole member list */
        snprintf(ops, sizeof ops, "[{\"op\": \"replace\", \"path\": \"members\", \"value\":"
                 " [{\"value\": \"%s\"}]}]", bob);
        patch(path, ops);
        SEES("bob.okta@corp.test", "Zephyr notes of Bob|Zephyr runbook");
        SEES("carl@corp.test", "");
    }

    /* Deactivated: nothing at all, neither by the group nor by the alias. */
    {
        char path[128];
        snprintf(path, sizeof path, "/Users/%s", bob);
        patch(path, "[{\"op\": \"replace\", \"value\": {\"active\": false}}]");
        SEES("bob.okta@corp.test", "");
        SEES("bob@corp.test", "");
        r = scim("GET", path, NULL, 200);
        cr_assert(json_is_false(json_object_get(r.json, "active")), "%s", r.body);
        reply_free(&r);
        /* and back */
        patch(path, "[{\"op\": \"replace\", \"value\": {\"active\": true}}]");
        SEES("bob.okta@corp.test", "Zephyr notes of Bob|Zephyr runbook");
    }
    ctx_free(bob);
    ctx_free(carl);
    ctx_free(grp);
}

/* ---- Entra ID ---- */

/*
 * Entra ID's documented flow: capitalized ops, "Add" of members as a value
 * array, "Remove" of members with a value array on the path "members",
 * attribute updates with filter paths (emails[type eq "work"].value),
 * "Replace" of active with the string "False", then DELETE.
 */
Test(scim, entra_sequence_and_the_access_it_gives)
{
    char ops[2048], path[128], gpath[128], *alice, *grp;
    reply r;

    r = scim("GET", "/Users?filter=userName+eq+%22alice%40corp.test%22", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 0);
    reply_free(&r);
    alice = create("/Users", "{\"schemas\": [\"" CORE_USER "\", \"" ENTERPRISE "\"],"
                   " \"externalId\": \"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef\", \"userName\":"
                   " \"alice@corp.test\", \"active\": true, \"emails\": [{\"primary\": true,"
                   " \"type\": \"work\", \"value\": \"alice@corp.test\"}], \"meta\":"
                   " {\"resourceType\": \"User\"}, \"name\": {\"formatted\": \"Alice Park\","
                   " \"familyName\": \"Park\", \"givenName\": \"Alice\"}, \"roles\": [],"
                   " \"" ENTERPRISE "\": {\"department\": \"R&D\"}}");
    snprintf(path, sizeof path, "/Users/%s", alice);
    SEES("alice@corp.test", "Zephyr plan of Alice");
    r = scim("GET", "/Groups?excludedAttributes=members&filter=displayName+eq+%22Engineering%22",
             NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 0);
    reply_free(&r);
    grp = create("/Groups", "{\"schemas\": [\"" CORE_GROUP "\"], \"externalId\":"
                 " \"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159\", \"displayName\": \"Engineering\","
                 " \"meta\": {\"resourceType\": \"Group\"}}");
    snprintf(gpath, sizeof gpath, "/Groups/%s", grp);
    snprintf(ops, sizeof ops, "[{\"op\": \"Add\", \"path\": \"members\", \"value\":"
             " [{\"$ref\": null, \"value\": \"%s\"}]}]", alice);
    patch(gpath, ops);
    SEES("alice@corp.test", "Zephyr design|Zephyr plan of Alice");
    r = scim("GET", "/Groups?excludedAttributes=members&filter=displayName+eq+%22Engineering%22",
             NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 1);
    cr_assert(!json_object_get(json_array_get(json_object_get(r.json, "Resources"), 0),
                               "members"), "members were not excluded: %s", r.body);
    reply_free(&r);

    /* Entra's attribute updates: a filter path, a sub-attribute, an extension. */
    patch(path, "[{\"op\": \"Replace\", \"path\": \"emails[type eq \\\"work\\\"].value\","
          " \"value\": \"alice.park@corp.test\"}, {\"op\": \"Replace\", \"path\":"
          " \"name.familyName\", \"value\": \"Park-Lee\"}, {\"op\": \"Add\", \"path\": \""
          ENTERPRISE ":employeeNumber\", \"value\": \"42\"}]");
    r = scim("GET", path, NULL, 200);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(
                         json_object_get(r.json, "emails"), 0), "value")),
                     "alice.park@corp.test", "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "name"),
                                                       "familyName")), "Park-Lee");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, ENTERPRISE),
                                                       "employeeNumber")), "42", "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, ENTERPRISE),
                                                       "department")), "R&D", "%s", r.body);
    reply_free(&r);
    /* The principal is the userName: her access did not move with the email. */
    SEES("alice@corp.test", "Zephyr design|Zephyr plan of Alice");

    snprintf(ops, sizeof ops, "[{\"op\": \"Remove\", \"path\": \"members\", \"value\":"
             " [{\"value\": \"%s\"}]}]", alice);
    patch(gpath, ops);
    SEES("alice@corp.test", "Zephyr plan of Alice");
    snprintf(ops, sizeof ops, "[{\"op\": \"Add\", \"path\": \"members\", \"value\":"
             " [{\"value\": \"%s\"}]}]", alice);
    patch(gpath, ops);
    SEES("alice@corp.test", "Zephyr design|Zephyr plan of Alice");

    /* Entra once sent active as the string "False". */
    patch(path, "[{\"op\": \"Replace\", \"path\": \"active\", \"value\": \"False\"}]");
    SEES("alice@corp.test", "");
    patch(path, "[{\"op\": \"Replace\", \"path\": \"active\", \"value\": true}]");
    SEES("alice@corp.test", "Zephyr design|Zephyr plan of Alice");

    /* Deleted: gone from the group, 404, and nothing readable, by search or fetch. */
    cr_assert_eq(fetch_status("alice@corp.test", "docs%3Aalice%2Fdoc.md"), 200);
    r = scim("DELETE", path, NULL, 204);
    reply_free(&r);
    SEES("alice@corp.test", "");
    cr_assert_eq(fetch_status("alice@corp.test", "docs%3Aalice%2Fdoc.md"), 404);
    cr_assert_eq(fetch_status("alice@corp.test", "docs%3Aeng%2Fdoc.md"), 404);
    r = http("GET", "/scim/v2/Users/x", SCIM_TOKEN, NULL);
    scim_error(&r, 404, NULL);
    reply_free(&r);
    {
        char full[256];
        snprintf(full, sizeof full, "/scim/v2%s", path);
        r = http("GET", full, SCIM_TOKEN, NULL);
        scim_error(&r, 404, NULL);
        reply_free(&r);
    }
    r = scim("GET", gpath, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "members")), 0, "%s", r.body);
    reply_free(&r);
    /* Provisioned again: a new id, access as the directory now says (no group). */
    ctx_free(alice);
    alice = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\":"
                   " \"alice@corp.test\", \"active\": true}");
    SEES("alice@corp.test", "Zephyr plan of Alice");
    r = scim("DELETE", gpath, NULL, 204);
    reply_free(&r);
    r = scim("GET", gpath, NULL, 404);
    reply_free(&r);
    ctx_free(alice);
    ctx_free(grp);
}

/* A PUT that renames a user: the old name reads nothing any more. */
Test(scim, put_replaces_and_a_renamed_user_leaves_no_access_behind)
{
    char path[128], body[1024], *id;
    reply r;

    id = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\": \"bob@corp.test\","
                " \"emails\": [{\"value\": \"bob@corp.test\", \"primary\": true}]}");
    SEES("bob@corp.test", "Zephyr notes of Bob");
    snprintf(path, sizeof path, "/Users/%s", id);
    snprintf(body, sizeof body, "{\"schemas\": [\"" CORE_USER "\"], \"id\": \"%s\","
             " \"userName\": \"robert@corp.test\", \"emails\": [{\"value\":"
             " \"robert@corp.test\", \"primary\": true}], \"active\": true}", id);
    r = scim("PUT", path, body, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "userName")),
                     "robert@corp.test");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "meta"),
                                                       "version")), "W/\"2\"");
    reply_free(&r);
    SEES("bob@corp.test", "");
    SEES("robert@corp.test", "");
    r = scim("PUT", "/Users/no-such-id", body, 404);
    reply_free(&r);
    ctx_free(id);
}

/*
 * One user's address may not be another's principal, either way round:
 * a user whose email is alice's userName is refused (409), and so is a
 * user named after another active user's address. So deactivating or
 * deleting alice blocks her name at once: no other user holds it.
 */
Test(scim, an_alias_never_takes_over_another_users_name)
{
    char path[128], *alice, *ann;
    reply r;

    alice = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\":"
                   " \"alice@corp.test\"}");
    r = http("POST", "/scim/v2/Users", SCIM_TOKEN, "{\"schemas\": [\"" CORE_USER "\"],"
             " \"userName\": \"ann\", \"emails\": [{\"value\": \"alice@corp.test\","
             " \"primary\": true}]}");
    scim_error(&r, 409, "uniqueness");
    cr_assert(strstr(r.body, "alice@corp.test"), "%s", r.body);
    reply_free(&r);
    ann = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\": \"ann\","
                 " \"emails\": [{\"value\": \"ann@corp.test\", \"primary\": true}]}");
    SEES("ann", "");
    SEES("alice@corp.test", "Zephyr plan of Alice");
    /* ann may not take alice's address by a later change either */
    snprintf(path, sizeof path, "/scim/v2/Users/%s", ann);
    r = http("PATCH", path, SCIM_TOKEN, "{\"schemas\": [\"" PATCH_OP "\"], \"Operations\":"
             " [{\"op\": \"replace\", \"path\": \"emails\", \"value\": [{\"value\":"
             " \"alice@corp.test\", \"primary\": true}]}]}");
    scim_error(&r, 409, "uniqueness");
    reply_free(&r);
    /* alice deactivated: her name is blocked at once, nobody else holds it */
    snprintf(path, sizeof path, "/Users/%s", alice);
    patch(path, "[{\"op\": \"replace\", \"path\": \"active\", \"value\": false}]");
    SEES("alice@corp.test", "");
    SEES("ann", "");
    r = scim("DELETE", path, NULL, 204);
    reply_free(&r);
    SEES("alice@corp.test", "");
    ctx_free(alice);
    ctx_free(ann);
}

/*
 * The other way round: a user whose address came first keeps it (and the
 * grants made to it), and a new user named after it is refused; deleting
 * the first blocks both names.
 */
Test(scim, a_name_another_user_holds_as_an_address_is_refused)
{
    char path[128], *ann;
    reply r;

    ann = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\": \"ann\","
                 " \"emails\": [{\"value\": \"alice@corp.test\", \"primary\": true}]}");
    SEES("ann", "Zephyr plan of Alice"); /* her address's grants are hers */
    r = http("POST", "/scim/v2/Users", SCIM_TOKEN, "{\"schemas\": [\"" CORE_USER "\"],"
             " \"userName\": \"alice@corp.test\"}");
    scim_error(&r, 409, "uniqueness");
    reply_free(&r);
    snprintf(path, sizeof path, "/Users/%s", ann);
    r = scim("DELETE", path, NULL, 204);
    reply_free(&r);
    SEES("alice@corp.test", "");
    SEES("ann", "");
    ctx_free(ann);
}

/* ---- an oracle: random provisioning against a model ---- */

#define NU 4
#define NG 4
static const char *const unames[NU] = {"alice@corp.test", "bob@corp.test", "carl@corp.test",
                                       "dana@corp.test"};
static const char *const own_doc[NU] = {"Zephyr plan of Alice", "Zephyr notes of Bob", NULL,
                                        NULL};
static const char *const gnames[] = {"Engineering", "Operations", "Leads", "Spare", "Eng2"};
#define NNAMES 5

typedef struct model {
    char uid[NU][40];           /* "" = not provisioned */
    int active[NU];
    char gid[NG][40];
    int gname[NG];              /* index into gnames */
    int mu[NG][NU];             /* group g lists user u */
    int mg[NG][NG];             /* group g lists group h */
} model;

/* reach - g reaches (through nesting) a group named after gnames[want]. */
static int reach(const model *m, int g, int want, int *seen)
{
    if (seen[g])
        return 0;
    seen[g] = 1;
    if (m->gname[g] == want)
        return 1;
    for (int p = 0; p < NG; p++)
        if (m->gid[p][0] && m->mg[p][g] && reach(m, p, want, seen))
            return 1;
    return 0;
}

/* expect - what user u must see under the model, as sees() prints it (new). */
static char *expect(const model *m, int u)
{
    const char *t[4];
    size_t n = 0;
    ctx_buf b = CTX_BUF_INIT;

    if (m->uid[u][0] && m->active[u]) {
        int eng = 0, ops = 0;
        for (int g = 0; g < NG; g++) {
            int seen[NG] = {0}, seen2[NG] = {0};
            if (!m->gid[g][0] || !m->mu[g][u])
                continue;
            eng |= reach(m, g, 0, seen);
            ops |= reach(m, g, 1, seen2);
        }
        if (eng)
            t[n++] = "Zephyr design";
        if (own_doc[u])
            t[n++] = own_doc[u];
        if (ops)
            t[n++] = "Zephyr runbook";
    }
    for (size_t x = 0; x < n; x++)
        for (size_t y = x + 1; y < n; y++)
            if (strcmp(t[y], t[x]) < 0) {
                const char *z = t[x];
                t[x] = t[y];
                t[y] = z;
            }
    for (size_t x = 0; x < n; x++)
        ctx_buf_printf(&b, "%s%s", x ? "|" : "", t[x]);
    ctx_buf_append(&b, "", 1);
    return ctx_buf_steal(&b);
}

static int name_used(const model *m, int name)
{
    for (int g = 0; g < NG; g++)
        if (m->gid[g][0] && m->gname[g] == name)
            return 1;
    return 0;
}

/* step - one random provisioning request, applied to the model too. */
static void step(model *m, unsigned *seed, char *what, size_t len)
{
    char path[128], body[1024];
    int u = rand_r(seed) % NU, g = rand_r(seed) % NG, h = rand_r(seed) % NG;
    int op = rand_r(seed) % 9;
    reply r;

    snprintf(what, len, "nothing");
    if (op == 0 || (!m->uid[u][0] && op < 4)) {
        if (m->uid[u][0])
            return;
        snprintf(body, sizeof body, "{\"schemas\": [\"" CORE_USER "\"], \"userName\":"
                 " \"%s\"}", unames[u]);
        char *id = create("/Users", body);
        snprintf(m->uid[u], sizeof m->uid[u], "%s", id);
        ctx_free(id);
        m->active[u] = 1;
        snprintf(what, len, "create user %s", unames[u]);
    } else if (op == 1) {
        snprintf(path, sizeof path, "/Users/%s", m->uid[u]);
        r = scim("DELETE", path, NULL, 204);
        reply_free(&r);
        m->uid[u][0] = '\0';
        for (int x = 0; x < NG; x++)
            m->mu[x][u] = 0;
        snprintf(what, len, "delete user %s", unames[u]);
    } else if (op == 2 || op == 3) {
        snprintf(path, sizeof path, "/Users/%s", m->uid[u]);
        m->active[u] = !m->active[u];
        patch(path, m->active[u] ? "[{\"op\": \"Replace\", \"path\": \"active\", \"value\":"
                                   " \"True\"}]"
                                 : "[{\"op\": \"replace\", \"value\": {\"active\": false}}]");
        snprintf(what, len, "user %s active %d", unames[u], m->active[u]);
    } else if (!m->gid[g][0]) {
        int name = rand_r(seed) % NNAMES;
        if (name_used(m, name))
            return;
        snprintf(body, sizeof body, "{\"schemas\": [\"" CORE_GROUP "\"], \"displayName\":"
                 " \"%s\"}", gnames[name]);
        char *id = create("/Groups", body);
        snprintf(m->gid[g], sizeof m->gid[g], "%s", id);
        ctx_free(id);
        m->gname[g] = name;
        memset(m->mu[g], 0, sizeof m->mu[g]);
        memset(m->mg[g], 0, sizeof m->mg[g]);
        for (int x = 0; x < NG; x++)
            m->mg[x][g] = 0;
        snprintf(what, len, "create group %s", gnames[name]);
    } else if (op == 4 && m->uid[u][0]) {
        snprintf(path, sizeof path, "/Groups/%s", m->gid[g]);
        snprintf(body, sizeof body, rand_r(seed) % 2
                 ? "[{\"op\": \"add\", \"path\": \"members\", \"value\": [{\"value\": \"%s\"}]}]"
                 : "[{\"op\": \"Add\", \"path\": \"members\", \"value\": [{\"$ref\": null,"
                   " \"value\": \"%s\"}]}]", m->uid[u]);
        patch(path, body);
        m->mu[g][u] = 1;
        snprintf(what, len, "add %s to %s", unames[u], gnames[m->gname[g]]);
    } else if (op == 5 && m->uid[u][0]) {
        snprintf(path, sizeof path, "/Groups/%s", m->gid[g]);
        snprintf(body, sizeof body, rand_r(seed) % 2
                 ? "[{\"op\": \"remove\", \"path\": \"members[value eq \\\"%s\\\"]\"}]"
                 : "[{\"op\": \"Remove\", \"path\": \"members\", \"value\": [{\"value\":"
                   " \"%s\"}]}]", m->uid[u]);
        patch(path, body);
        m->mu[g][u] = 0;
        snprintf(what, len, "remove %s from %s", unames[u], gnames[m->gname[g]]);
    } else if (op == 6 && m->gid[h][0] && h != g) {
        snprintf(path, sizeof path, "/Groups/%s", m->gid[g]);
        snprintf(body, sizeof body, "[{\"op\": \"add\", \"path\": \"members\", \"value\":"
                 " [{\"value\": \"%s\"}]}]", m->gid[h]);
        patch(path, body);
        m->mg[g][h] = 1;
        snprintf(what, len, "nest %s in %s", gnames[m->gname[h]], gnames[m->gname[g]]);
    } else if (op == 7) {
        int name = rand_r(seed) % NNAMES;
        if (name_used(m, name))
            return;
        snprintf(path, sizeof path, "/Groups/%s", m->gid[g]);
        snprintf(body, sizeof body, "[{\"op\": \"replace\", \"value\": {\"id\": \"%s\","
                 " \"displayName\": \"%s\"}}]", m->gid[g], gnames[name]);
        patch(path, body);
        snprintf(what, len, "rename %s to %s", gnames[m->gname[g]], gnames[name]);
        m->gname[g] = name;
    } else if (op == 8) {
        snprintf(path, sizeof path, "/Groups/%s", m->gid[g]);
        r = scim("DELETE", path, NULL, 204);
        reply_free(&r);
        snprintf(what, len, "delete group %s", gnames[m->gname[g]]);
        m->gid[g][0] = '\0';
        for (int x = 0; x < NG; x++)
            m->mg[x][g] = 0;
    }
}

/*
 * 150 random requests of both providers' shapes (users created, deleted,
 * deactivated and back; groups created, renamed, nested, deleted; members
 * added and removed), and after each, every user's search compared with
 * what the model says they may read.
 */
Test(scim, random_provisioning_matches_the_model)
{
    static const char *const kind_names[9] = {"create user", "delete user", "user ",
                                              "create group", "add ", "remove ", "nest ",
                                              "rename ", "delete group"};
    int kinds[9] = {0};
    model m;
    unsigned seed = 20261206;
    char what[256];

    memset(&m, 0, sizeof m);
    for (int i = 0; i < 150; i++) {
        step(&m, &seed, what, sizeof what);
        for (int k = 0; k < 9; k++)
            kinds[k] += !strncmp(what, kind_names[k], strlen(kind_names[k]));
        for (int u = 0; u < NU; u++) {
            char *want = expect(&m, u), *got = sees(unames[u]);
            cr_assert_str_eq(got, want, "step %d (%s): %s sees [%s], the model says [%s]", i,
                             what, unames[u], got, want);
            ctx_free(want);
            ctx_free(got);
        }
    }
    for (int k = 0; k < 9; k++)
        cr_assert_geq(kinds[k], 3, "only %d steps of \"%s\": the sequence tests too little",
                      kinds[k], kind_names[k]);
}

/* ---- lists ---- */

Test(scim, filters_and_pagination)
{
    char body[512], *ids[5];
    reply r;
    json_t *seen = json_object();

    for (int i = 0; i < 5; i++) {
        snprintf(body, sizeof body, "{\"schemas\": [\"" CORE_USER "\"], \"userName\":"
                 " \"u%d\", \"externalId\": \"ext-%d\", \"emails\": [{\"type\": \"work\","
                 " \"value\": \"user%d@corp.test\"}]}", i, i, i);
        ids[i] = create("/Users", body);
    }
    for (int start = 1; start <= 5; start += 2) {
        char path[128];
        json_t *v;
        size_t i;
        snprintf(path, sizeof path, "/Users?startIndex=%d&count=2", start);
        r = scim("GET", path, NULL, 200);
        cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "schemas"),
                                                          0)),
                         "urn:ietf:params:scim:api:messages:2.0:ListResponse");
        cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 5);
        cr_assert_eq(json_integer_value(json_object_get(r.json, "startIndex")), start);
        cr_assert_eq(json_integer_value(json_object_get(r.json, "itemsPerPage")),
                     start == 5 ? 1 : 2, "%s", r.body);
        json_array_foreach(json_object_get(r.json, "Resources"), i, v) {
            const char *id = json_string_value(json_object_get(v, "id"));
            cr_assert(!json_object_get(seen, id), "%s on two pages", id);
            json_object_set_new(seen, id, json_true());
        }
        reply_free(&r);
    }
    cr_assert_eq(json_object_size(seen), 5);
    json_decref(seen);
    r = scim("GET", "/Users?count=0", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 5);
    cr_assert_eq(json_array_size(json_object_get(r.json, "Resources")), 0);
    reply_free(&r);
    r = scim("GET", "/Users?filter=externalId%20eq%20%22ext-3%22", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(
                         json_object_get(r.json, "Resources"), 0), "id")), ids[3]);
    reply_free(&r);
    /* Entra ID's match on the work email */
    r = scim("GET", "/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20"
             "%22USER2%40corp.test%22", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 1, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(
                         json_object_get(r.json, "Resources"), 0), "id")), ids[2]);
    reply_free(&r);
    r = http("GET", "/scim/v2/Users?filter=title%20sw%20%22x%22", SCIM_TOKEN, NULL);
    scim_error(&r, 400, "invalidFilter");
    reply_free(&r);
    r = http("GET", "/scim/v2/Users?startIndex=abc", SCIM_TOKEN, NULL);
    scim_error(&r, 400, "invalidValue");
    reply_free(&r);
    for (int i = 0; i < 5; i++)
        ctx_free(ids[i]);
}

/* ---- refusals ---- */

Test(scim, bad_requests_are_answered_as_scim_errors)
{
    static const struct {
        const char *method, *path, *body;
        long status;
        const char *type, *names;
    } cases[] = {
        {"POST", "/Users", "{\"schemas\": [", 400, "invalidSyntax", "JSON"},
        {"POST", "/Users", "[1]", 400, "invalidSyntax", "object"},
        {"POST", "/Users", "{\"schemas\": [\"urn:example:Widget\"], \"userName\": \"w\"}", 400,
         "invalidValue", "urn:example:Widget"},
        {"POST", "/Users", "{\"userName\": \"noschemas@corp.test\"}", 400, "invalidValue",
         "schemas"},
        {"POST", "/Users", "{\"schemas\": [\"" CORE_USER "\"], \"name\": {}}", 400,
         "invalidValue", "userName"},
        {"POST", "/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\": \"\"}", 400,
         "invalidValue", "userName"},
        {"POST", "/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\": \"x@corp.test\","
         " \"active\": \"maybe\"}", 400, "invalidValue", "active"},
        {"POST", "/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\": \"DUP@corp.test\"}",
         409, "uniqueness", "userName"},
        {"POST", "/Groups", "{\"schemas\": [\"" CORE_GROUP "\"]}", 400, "invalidValue",
         "displayName"},
        {"POST", "/Groups", "{\"schemas\": [\"" CORE_GROUP "\"], \"displayName\": \"G\","
         " \"members\": [{\"value\": \"nobody\"}]}", 400, "invalidValue", "nobody"},
        {"POST", "/Groups", "{\"schemas\": [\"" CORE_GROUP "\"], \"displayName\": \"Dups\"}",
         409, "uniqueness", "displayName"},
        {"PATCH", "/Users/%s", "{\"Operations\": []}", 400, "invalidSyntax", "PatchOp"},
        {"PATCH", "/Users/%s", "{\"schemas\": [\"" PATCH_OP "\"], \"Operations\": [{\"op\":"
         " \"move\", \"path\": \"active\"}]}", 400, "invalidSyntax", "move"},
        {"PATCH", "/Users/%s", "{\"schemas\": [\"" PATCH_OP "\"], \"Operations\": [{\"op\":"
         " \"replace\", \"path\": \"id\", \"value\": \"x\"}]}", 400, "mutability", "id"},
        {"PATCH", "/Users/%s", "{\"schemas\": [\"" PATCH_OP "\"], \"Operations\": [{\"op\":"
         " \"replace\", \"path\": \"emails[type zz\", \"value\": \"x\"}]}", 400, "invalidFilter",
         "emails"},
        {"PATCH", "/Users/%s", "{\"schemas\": [\"" PATCH_OP "\"], \"Operations\": [{\"op\":"
         " \"remove\", \"path\": \"userName\"}]}", 400, "invalidValue", "userName"},
        {"PATCH", "/Users/%s", "{\"schemas\": [\"" PATCH_OP "\"], \"Operations\": [{\"op\":"
         " \"replace\", \"path\": \"userName\", \"value\": \"dup@CORP.test\"}]}", 409,
         "uniqueness", "taken"},
        {"PATCH", "/Users/nope", "{\"schemas\": [\"" PATCH_OP "\"], \"Operations\": [{\"op\":"
         " \"replace\", \"path\": \"active\", \"value\": false}]}", 404, NULL, "nope"},
        {"DELETE", "/Groups/nope", NULL, 404, NULL, "nope"},
        {"PUT", "/Users", "{}", 405, NULL, "POST"},
        {"GET", "/Nothing", NULL, 404, NULL, "ResourceTypes"},
    };
    char *dup = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\":"
                       " \"dup@corp.test\"}");
    char *other = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\":"
                         " \"other@corp.test\"}");
    char *g = create("/Groups", "{\"schemas\": [\"" CORE_GROUP "\"], \"displayName\":"
                     " \"DUPS\"}");
    reply r;

    (void)g;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        const char *hole = strstr(cases[i].path, "%s");
        if (hole)
            snprintf(path, sizeof path, "/scim/v2%.*s%s%s", (int)(hole - cases[i].path),
                     cases[i].path, other, hole + 2);
        else
            snprintf(path, sizeof path, "/scim/v2%s", cases[i].path);
        r = http(cases[i].method, path, SCIM_TOKEN, cases[i].body);
        scim_error(&r, cases[i].status, cases[i].type);
        cr_assert(strstr(r.body, cases[i].names), "case %zu: the detail does not name %s: %s",
                  i, cases[i].names, r.body);
        reply_free(&r);
    }
    /* Nothing was half applied: still two users, one group, other unchanged. */
    r = scim("GET", "/Users", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 2, "%s", r.body);
    reply_free(&r);
    r = scim("GET", "/Groups", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 1, "%s", r.body);
    reply_free(&r);
    {
        char path[128];
        snprintf(path, sizeof path, "/Users/%s", other);
        r = scim("GET", path, NULL, 200);
        cr_assert_str_eq(json_string_value(json_object_get(r.json, "userName")),
                         "other@corp.test");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "meta"),
                                                           "version")), "W/\"1\"");
        reply_free(&r);
    }
    ctx_free(dup);
    ctx_free(other);
    ctx_free(g);
}

/* Only the SCIM token opens /scim/v2 when the source names one. */
Test(scim, a_wrong_or_missing_token_is_401)
{
    char *user = token("bob@corp.test");
    const char *wrong[] = {NULL, "", SCIM_TOKEN "x", "scim-token-0123456789", ADMIN, user};
    reply r;

    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        r = http("GET", "/scim/v2/Users", wrong[i], NULL);
        scim_error(&r, 401, NULL);
        reply_free(&r);
        r = http("POST", "/scim/v2/Users", wrong[i], "{\"schemas\": [\"" CORE_USER "\"],"
                 " \"userName\": \"mallory@corp.test\"}");
        scim_error(&r, 401, NULL);
        reply_free(&r);
    }
    SEES("mallory@corp.test", "");
    r = scim("GET", "/Users", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 0);
    reply_free(&r);
    ctx_free(user);
}

Test(scim, discovery_endpoints)
{
    reply r = scim("GET", "/ServiceProviderConfig", NULL, 200);
    cr_assert(json_is_true(json_object_get(json_object_get(r.json, "patch"), "supported")));
    cr_assert(json_is_true(json_object_get(json_object_get(r.json, "filter"), "supported")));
    cr_assert(json_is_false(json_object_get(json_object_get(r.json, "bulk"), "supported")));
    reply_free(&r);
    r = scim("GET", "/ResourceTypes", NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "totalResults")), 2);
    cr_assert(strstr(r.body, "\"endpoint\":\"/Users\"") && strstr(r.body, "\"/Groups\""),
              "%s", r.body);
    reply_free(&r);
    r = scim("GET", "/Schemas", NULL, 200);
    cr_assert(strstr(r.body, CORE_USER) && strstr(r.body, CORE_GROUP), "%s", r.body);
    cr_assert(strstr(r.body, "\"userName\""), "%s", r.body);
    reply_free(&r);
    r = scim("GET", "/Schemas/" CORE_GROUP, NULL, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "id")), CORE_GROUP);
    reply_free(&r);
    r = http("POST", "/scim/v2/Schemas", SCIM_TOKEN, "{}");
    scim_error(&r, 405, NULL);
    reply_free(&r);
}

/* Without a token of its own, the serve admin token opens SCIM. */
Test(scim_admin, the_admin_token_opens_scim_without_a_scim_token)
{
    reply r = http("GET", "/scim/v2/Users", ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    reply_free(&r);
    r = http("GET", "/scim/v2/Users", SCIM_TOKEN, NULL);
    scim_error(&r, 401, NULL);
    reply_free(&r);
    r = http("GET", "/scim/v2/Users", NULL, NULL);
    scim_error(&r, 401, NULL);
    reply_free(&r);
}

/*
 * Mapped otherwise: the principal is the primary email and no alias; a
 * group is named by its externalId (Entra's object id, say).
 */
Test(scim_email, principals_from_the_email_and_the_group_external_id)
{
    char ops[512], path[128], *bob, *grp;
    reply r;

    bob = create("/Users", "{\"schemas\": [\"" CORE_USER "\"], \"userName\": \"bob.okta\","
                 " \"emails\": [{\"value\": \"old@corp.test\"}, {\"value\": \"bob@corp.test\","
                 " \"primary\": true}]}");
    SEES("bob@corp.test", "Zephyr notes of Bob");
    SEES("bob.okta", "");
    grp = create("/Groups", "{\"schemas\": [\"" CORE_GROUP "\"], \"displayName\": \"Eng team\","
                 " \"externalId\": \"Engineering\"}");
    snprintf(path, sizeof path, "/Groups/%s", grp);
    snprintf(ops, sizeof ops, "[{\"op\": \"add\", \"path\": \"members\", \"value\":"
             " [{\"value\": \"%s\"}]}]", bob);
    patch(path, ops);
    SEES("bob@corp.test", "Zephyr design|Zephyr notes of Bob");
    /* A user without the attribute the principal is made of is refused. */
    r = http("POST", "/scim/v2/Users", SCIM_TOKEN, "{\"schemas\": [\"" CORE_USER "\"],"
             " \"userName\": \"noemail\"}");
    scim_error(&r, 400, "invalidValue");
    cr_assert(strstr(r.body, "emails"), "%s", r.body);
    reply_free(&r);
    /* Two users may not stand for one principal. */
    r = http("POST", "/scim/v2/Users", SCIM_TOKEN, "{\"schemas\": [\"" CORE_USER "\"],"
             " \"userName\": \"bob2\", \"emails\": [{\"value\": \"bob@corp.test\"}]}");
    scim_error(&r, 409, "uniqueness");
    reply_free(&r);
    ctx_free(bob);
    ctx_free(grp);
}
