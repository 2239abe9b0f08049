/*
 * test_scim.c - the SCIM PATCH engine (retrieval/scim_patch.c) case by
 * case: a resource, the operations, and the resource expected after them
 * or the refusal (status and scimType); and the scim source's set-up
 * checks (retrieval/scim.c scim_open).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/util.h"
#include "retrieval/scim.h"
#include "tests/lib/testutil.h"

typedef struct patch_case {
    const char *name, *res, *ops;
    const char *want;           /* the resource after, or NULL: refused */
    int status;                 /* refused: the status */
    const char *type;           /* and the scimType */
} patch_case;

#define G "{\"displayName\": \"Eng\", \"members\": [{\"value\": \"u1\"}, {\"value\": \"u2\"}]}"
#define U "{\"userName\": \"bob\", \"active\": true, \"emails\": [{\"type\": \"work\"," \
          " \"value\": \"b@x\", \"primary\": true}], \"name\": {\"givenName\": \"Bob\"}}"
#define EXT "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

static const patch_case cases[] = {
    {"okta add members", G,
     "[{\"op\": \"add\", \"path\": \"members\", \"value\": [{\"value\": \"u3\"},"
     " {\"value\": \"u1\"}]}]",
     "{\"displayName\": \"Eng\", \"members\": [{\"value\": \"u1\"}, {\"value\": \"u2\"},"
     " {\"value\": \"u3\"}]}", 0, NULL},
    {"okta remove by filter", G,
     "[{\"op\": \"remove\", \"path\": \"members[value eq \\\"u1\\\"]\"}]",
     "{\"displayName\": \"Eng\", \"members\": [{\"value\": \"u2\"}]}", 0, NULL},
    {"okta replace members", G,
     "[{\"op\": \"replace\", \"path\": \"members\", \"value\": [{\"value\": \"u9\"}]}]",
     "{\"displayName\": \"Eng\", \"members\": [{\"value\": \"u9\"}]}", 0, NULL},
    {"okta rename with the id along", "{\"id\": \"g1\", \"displayName\": \"Eng\"}",
     "[{\"op\": \"replace\", \"value\": {\"id\": \"g1\", \"displayName\": \"Ops\"}}]",
     "{\"id\": \"g1\", \"displayName\": \"Ops\"}", 0, NULL},
    {"okta deactivate", U, "[{\"op\": \"replace\", \"value\": {\"active\": false}}]",
     "{\"userName\": \"bob\", \"active\": false, \"emails\": [{\"type\": \"work\", \"value\":"
     " \"b@x\", \"primary\": true}], \"name\": {\"givenName\": \"Bob\"}}", 0, NULL},
    {"entra Add members, capitalized", G,
     "[{\"op\": \"Add\", \"path\": \"members\", \"value\": [{\"$ref\": null, \"value\":"
     " \"u3\"}]}]",
     "{\"displayName\": \"Eng\", \"members\": [{\"value\": \"u1\"}, {\"value\": \"u2\"},"
     " {\"$ref\": null, \"value\": \"u3\"}]}", 0, NULL},
    {"entra Remove members by value array", G,
     "[{\"op\": \"Remove\", \"path\": \"members\", \"value\": [{\"value\": \"u2\"}]}]",
     "{\"displayName\": \"Eng\", \"members\": [{\"value\": \"u1\"}]}", 0, NULL},
    {"remove every member", G, "[{\"op\": \"remove\", \"path\": \"members\"}]",
     "{\"displayName\": \"Eng\"}", 0, NULL},
    {"entra filter path with sub-attribute", U,
     "[{\"op\": \"Replace\", \"path\": \"emails[type eq \\\"work\\\"].value\", \"value\":"
     " \"new@x\"}, {\"op\": \"Replace\", \"path\": \"name.familyName\", \"value\": \"O\"}]",
     "{\"userName\": \"bob\", \"active\": true, \"emails\": [{\"type\": \"work\", \"value\":"
     " \"new@x\", \"primary\": true}], \"name\": {\"givenName\": \"Bob\", \"familyName\":"
     " \"O\"}}", 0, NULL},
    {"a filter that matches nothing makes the element", "{\"userName\": \"bob\"}",
     "[{\"op\": \"Add\", \"path\": \"emails[type eq \\\"work\\\"].value\", \"value\":"
     " \"w@x\"}]",
     "{\"userName\": \"bob\", \"emails\": [{\"type\": \"work\", \"value\": \"w@x\"}]}", 0,
     NULL},
    {"entra path-less value whose keys are paths", U,
     "[{\"op\": \"Add\", \"value\": {\"name.givenName\": \"Robert\", \"displayName\":"
     " \"Rob\"}}]",
     "{\"userName\": \"bob\", \"active\": true, \"emails\": [{\"type\": \"work\", \"value\":"
     " \"b@x\", \"primary\": true}], \"name\": {\"givenName\": \"Robert\"}, \"displayName\":"
     " \"Rob\"}", 0, NULL},
    {"extension attribute by URN path", "{\"userName\": \"bob\"}",
     "[{\"op\": \"add\", \"path\": \"" EXT ":department\", \"value\": \"R&D\"}]",
     "{\"userName\": \"bob\", \"" EXT "\": {\"department\": \"R&D\"}}", 0, NULL},
    {"extension object without a path", "{\"userName\": \"bob\", \"" EXT "\": {\"a\": 1}}",
     "[{\"op\": \"replace\", \"value\": {\"" EXT "\": {\"b\": 2}}}]",
     "{\"userName\": \"bob\", \"" EXT "\": {\"a\": 1, \"b\": 2}}", 0, NULL},
    {"core URN prefix is the attribute itself", "{\"userName\": \"bob\"}",
     "[{\"op\": \"replace\", \"path\":"
     " \"urn:ietf:params:scim:schemas:core:2.0:User:userName\", \"value\": \"rob\"}]",
     "{\"userName\": \"rob\"}", 0, NULL},
    {"attribute names ignore case", "{\"userName\": \"bob\"}",
     "[{\"op\": \"replace\", \"path\": \"USERNAME\", \"value\": \"rob\"}]",
     "{\"userName\": \"rob\"}", 0, NULL},
    {"removing what is not there", G,
     "[{\"op\": \"remove\", \"path\": \"members[value eq \\\"nobody\\\"]\"}]", G, 0, NULL},
    {"replace with a filter matching nothing", G,
     "[{\"op\": \"replace\", \"path\": \"members[value eq \\\"nobody\\\"]\", \"value\":"
     " {\"value\": \"u5\"}}]", NULL, 400, "noTarget"},
    {"unknown op", G, "[{\"op\": \"copy\", \"path\": \"members\"}]", NULL, 400,
     "invalidSyntax"},
    {"no operations", G, "[]", NULL, 400, "invalidSyntax"},
    {"remove without a path", G, "[{\"op\": \"remove\"}]", NULL, 400, "noTarget"},
    {"id is read-only", "{\"id\": \"g1\"}",
     "[{\"op\": \"replace\", \"path\": \"id\", \"value\": \"g2\"}]", NULL, 400, "mutability"},
    {"id changed in a path-less value", "{\"id\": \"g1\"}",
     "[{\"op\": \"replace\", \"value\": {\"id\": \"g2\"}}]", NULL, 400, "mutability"},
    {"a filter with another operator", G,
     "[{\"op\": \"remove\", \"path\": \"members[value co \\\"u\\\"]\"}]", NULL, 400,
     "invalidFilter"},
    {"an unclosed filter", G, "[{\"op\": \"remove\", \"path\": \"members[value eq \\\"u\"}]",
     NULL, 400, "invalidFilter"},
    {"a filter on a single value", "{\"userName\": \"bob\"}",
     "[{\"op\": \"replace\", \"path\": \"userName[value eq \\\"x\\\"]\", \"value\": {}}]",
     NULL, 400, "invalidPath"},
    {"add without a value", G, "[{\"op\": \"add\", \"path\": \"members\"}]", NULL, 400,
     "invalidValue"},
};

Test(scim_patch, every_case)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const patch_case *c = &cases[i];
        json_t *res = json_loads(c->res, 0, NULL), *ops = json_loads(c->ops, 0, NULL), *patch;
        scim_fail f = {0, NULL};
        ctx_error err;
        int rc;

        cr_assert(res && ops, "%s: bad test JSON", c->name);
        patch = json_pack("{s:[s],s:o}", "schemas", SCIM_PATCH_URN, "Operations", ops);
        rc = scim__patch(res, patch, SCIM_USER_URN, &f, &err);
        if (c->want) {
            json_t *want = json_loads(c->want, 0, NULL);
            char *got = json_dumps(res, JSON_SORT_KEYS | JSON_COMPACT);
            cr_assert_eq(rc, 0, "%s: refused: %s", c->name, err.text);
            cr_assert(json_equal(res, want), "%s: got %s, want %s", c->name, got, c->want);
            free(got);
            json_decref(want);
        } else {
            cr_assert_neq(rc, 0, "%s: accepted", c->name);
            cr_assert_eq(f.status, c->status, "%s: %d %s", c->name, f.status, err.text);
            cr_assert_str_eq(f.type, c->type, "%s: %s (%s)", c->name, f.type, err.text);
            cr_assert(strlen(err.text) > 0, "%s: no detail", c->name);
        }
        json_decref(res);
        json_decref(patch);
    }
}

Test(scim_patch, a_request_that_is_not_a_patchop_is_refused)
{
    json_t *res = json_loads(G, 0, NULL);
    json_t *p = json_loads("{\"Operations\": [{\"op\": \"remove\", \"path\": \"members\"}]}",
                           0, NULL);
    scim_fail f = {0, NULL};
    ctx_error err;

    cr_assert_neq(scim__patch(res, p, SCIM_GROUP_URN, &f, &err), 0);
    cr_assert_str_eq(f.type, "invalidSyntax");
    cr_assert(strstr(err.text, SCIM_PATCH_URN), "%s", err.text);
    cr_assert_eq(json_array_size(json_object_get(res, "members")), 2, "changed anyway");
    json_decref(res);
    json_decref(p);
}

/* ---- set-up ---- */

/* open_with_top - scim_open on a config of these sources and more top-level keys. */
static int open_with_top(const char *top, const char *sources, ctx_error *err)
{
    char *dir = tu_tmpdir("scimcfg"), text[2048], path[1024], db[1024];
    ctx_config cfg;
    scim *s = NULL;
    int rc;

    snprintf(text, sizeof text, "{\"data_dir\": \".\", %s \"sources\": [%s]}", top, sources);
    tu_write(dir, "ctxgate.json", text);
    snprintf(path, sizeof path, "%s/ctxgate.json", dir);
    snprintf(db, sizeof db, "%s/ctxgate.db", dir);
    rc = ctx_config_load(path, &cfg, err);
    if (!rc)
        rc = scim_open(&cfg, db, &s, err);
    if (!rc)
        cr_assert(s, "no scim service for a scim source");
    scim_close(s);
    ctx_config_free(&cfg);
    tu_rmrf(dir);
    free(dir);
    return rc;
}

static int open_with(const char *sources, ctx_error *err)
{
    return open_with_top("", sources, err);
}

/* In cluster mode each replica has its own store: SCIM there is refused. */
Test(scim_setup, a_scim_source_in_cluster_mode_is_refused)
{
    ctx_error err;

    cr_assert_eq(open_with_top("\"cluster\": {\"conninfo\": \"host=127.0.0.1 dbname=c\"},",
                               "{\"name\": \"idp\", \"type\": \"scim\"}", &err),
                 CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[0]") && strstr(err.text, "cluster mode"), "%s",
              err.text);
}

Test(scim_setup, options_are_checked_naming_the_key)
{
    ctx_error err;

    setenv("CTXGATE_TEST_SCIM_OK", "0123456789abcdef0123456789abcdef", 1);
    setenv("CTXGATE_TEST_SCIM_SHORT", "short", 1);
    cr_assert_eq(open_with("{\"name\": \"idp\", \"type\": \"scim\", \"directory\": true,"
                           " \"token_env\": \"CTXGATE_TEST_SCIM_OK\"}", &err), 0, "%s",
                 err.text);
    cr_assert_eq(open_with("{\"name\": \"idp\", \"type\": \"scim\", \"user_principal\":"
                           " \"mail\"}", &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[0].user_principal"), "%s", err.text);
    cr_assert_eq(open_with("{\"name\": \"idp\", \"type\": \"scim\", \"user_aliases\":"
                           " [\"email\", \"phone\"]}", &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "user_aliases[1]"), "%s", err.text);
    cr_assert_eq(open_with("{\"name\": \"idp\", \"type\": \"scim\", \"group_principal\":"
                           " \"name\"}", &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "group_principal"), "%s", err.text);
    cr_assert_eq(open_with("{\"name\": \"idp\", \"type\": \"scim\", \"tokn_env\": \"X\"}",
                           &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "token_env"), "no did-you-mean: %s", err.text);
    cr_assert_eq(open_with("{\"name\": \"idp\", \"type\": \"scim\", \"token_env\":"
                           " \"CTXGATE_TEST_SCIM_SHORT\"}", &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "at least 32"), "%s", err.text);
    cr_assert_eq(open_with("{\"name\": \"idp\", \"type\": \"scim\", \"token_env\":"
                           " \"CTXGATE_TEST_SCIM_UNSET\"}", &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "CTXGATE_TEST_SCIM_UNSET"), "%s", err.text);
    cr_assert_eq(open_with("{\"name\": \"a\", \"type\": \"scim\"},"
                           " {\"name\": \"b\", \"type\": \"scim\"}", &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "second source of type"), "%s", err.text);
}
