/*
 * test_auth.c - retrieval/auth.c without HTTP: key loading refuses what
 * cannot be a key, minted tokens verify, and each claim rule (exp and nbf
 * with skew, iss, aud as a string or a list, sub, act.sub, crit, size)
 * holds on its own; the claims naming the user and the agent are the
 * configured ones; serve.public_url is an accepted audience. Keys are made
 * with openssl at test time.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "retrieval/auth.h"
#include "tests/lib/testutil.h"

#define SECRET "unit-secret-0123456789-abcdefghijklmnopq"

static char *dir;
static ctx_auth_cfg cfg;
static char *keys[2];

static void setup(void)
{
    char cmd[PATH_MAX * 2];
    dir = tu_tmpdir("auth");
    snprintf(cmd, sizeof cmd, "cd %s && openssl genrsa -out rsa.key 2048 2>/dev/null &&"
             " openssl rsa -in rsa.key -pubout -out rsa.pem 2>/dev/null &&"
             " openssl genrsa -out small.key 1024 2>/dev/null &&"
             " openssl rsa -in small.key -pubout -out small.pem 2>/dev/null", dir);
    cr_assert_eq(system(cmd), 0);
    memset(&cfg, 0, sizeof cfg);
    cfg.issuer = "iss-x";
    cfg.audience = "aud-x";
    cfg.hs256_secret_env = "CTX_UNIT_SECRET";
    cfg.hs256_secret_file = "";
    cfg.clock_skew_s = 60;
    setenv("CTX_UNIT_SECRET", SECRET, 1);
}

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
    for (int i = 0; i < 2; i++) {
        free(keys[i]);
        keys[i] = NULL;
    }
}

TestSuite(auth, .init = setup, .fini = teardown);

static char *path_of(const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return strdup(p);
}

static char *sign(const char *claims)
{
    jwt_t *j;
    char *t;
    cr_assert_eq(jwt_new(&j), 0);
    cr_assert_eq(jwt_add_grants_json(j, claims), 0);
    cr_assert_eq(jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)SECRET,
                             (int)strlen(SECRET)), 0);
    t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static int check(const auth *a, const char *claims, auth_identity *id, ctx_error *err)
{
    char *t = sign(claims);
    int rc = auth_verify(a, t, (int64_t)time(NULL), id, err);
    free(t);
    return rc;
}

Test(auth, keys_that_cannot_be_keys_are_refused)
{
    auth *a = NULL;
    ctx_error err;
    char *list[1];

    setenv("CTX_UNIT_SECRET", "short", 1);
    cr_assert_eq(auth_new(&cfg, &a, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "at least 32"), "%s", err.text);
    unsetenv("CTX_UNIT_SECRET");
    cr_assert_eq(auth_new(&cfg, &a, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "no key"), "%s", err.text);
    keys[0] = path_of("small.pem");
    list[0] = keys[0];
    cfg.public_keys.v = list;
    cfg.public_keys.n = 1;
    cr_assert_eq(auth_new(&cfg, &a, &err), CTX_ECONFIG, "a 1024-bit RSA key was taken");
    keys[1] = path_of("rsa.key");
    list[0] = keys[1];
    cr_assert_eq(auth_new(&cfg, &a, &err), CTX_ECONFIG, "a private key file was taken");
    cr_assert(strstr(err.text, "public_keys[0]"), "%s", err.text);
    cr_assert_null(a);
}

Test(auth, minted_tokens_verify_and_claims_are_checked_one_by_one)
{
    auth *a;
    auth_identity id;
    ctx_error err;
    char *tok, claims[512];
    long now = (long)time(NULL);

    cr_assert_eq(auth_new(&cfg, &a, &err), 0, "%s", err.text);
    cr_assert_eq(auth_mint(a, "ann@x", "bot", 60, &tok, &err), 0);
    cr_assert_eq(auth_verify(a, tok, now, &id, &err), 0, "%s", err.text);
    cr_assert_str_eq(id.user, "ann@x");
    cr_assert_str_eq(id.agent, "bot");
    /* expiry: skew counts, past it does not */
    cr_assert_eq(auth_verify(a, tok, now + 100, &id, &err), 0);
    cr_assert_eq(auth_verify(a, tok, now + 200, &id, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "expired"), "%s", err.text);
    cr_assert_str_eq(id.user, "", "a refused token left an identity behind");
    free(tok);

#define CLAIMS(...) snprintf(claims, sizeof claims, __VA_ARGS__)
    CLAIMS("{\"sub\":\"u\",\"exp\":%ld,\"iss\":\"iss-x\",\"aud\":[\"other\",\"aud-x\"]}", now + 60);
    cr_assert_eq(check(a, claims, &id, &err), 0, "aud as a list: %s", err.text);
    cr_assert_str_eq(id.agent, "");
    CLAIMS("{\"sub\":\"u\",\"exp\":%ld,\"iss\":\"iss-x\",\"aud\":[\"other\"]}", now + 60);
    cr_assert_eq(check(a, claims, &id, &err), CTX_EAUTH);
    CLAIMS("{\"sub\":\"u\",\"exp\":%ld,\"iss\":\"iss-x\"}", now + 60);
    cr_assert_eq(check(a, claims, &id, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "aud missing"), "%s", err.text);
    CLAIMS("{\"sub\":\"u\",\"exp\":%ld,\"aud\":\"aud-x\"}", now + 60);
    cr_assert_eq(check(a, claims, &id, &err), CTX_EAUTH);
    CLAIMS("{\"sub\":\"u\",\"iss\":\"iss-x\",\"aud\":\"aud-x\"}");
    cr_assert_eq(check(a, claims, &id, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "exp missing"), "%s", err.text);
    CLAIMS("{\"sub\":\"u\",\"exp\":\"%ld\",\"iss\":\"iss-x\",\"aud\":\"aud-x\"}", now + 60);
    cr_assert_eq(check(a, claims, &id, &err), CTX_EAUTH, "exp as a string was taken");
    CLAIMS("{\"sub\":\"u\",\"exp\":%ld,\"nbf\":%ld,\"iss\":\"iss-x\",\"aud\":\"aud-x\"}",
           now + 600, now + 300);
    cr_assert_eq(check(a, claims, &id, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "nbf"), "%s", err.text);
    CLAIMS("{\"sub\":\"\",\"exp\":%ld,\"iss\":\"iss-x\",\"aud\":\"aud-x\"}", now + 60);
    cr_assert_eq(check(a, claims, &id, &err), CTX_EAUTH);
    CLAIMS("{\"sub\":\"u\",\"act\":\"bot\",\"exp\":%ld,\"iss\":\"iss-x\",\"aud\":\"aud-x\"}",
           now + 60);
    cr_assert_eq(check(a, claims, &id, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "act.sub"), "%s", err.text);
#undef CLAIMS
    auth_free(a);
}

Test(auth, malformed_tokens_are_refused)
{
    static const char *const bad[] = {"", "abc", "a.b", "a..c", ".b.c", "a.b.c.d",
                                      "eyJhbGciOiJIUzI1NiJ9.e30.", "!!!.e30.AAAA"};
    auth *a;
    auth_identity id;
    ctx_error err;
    char *huge = ctx_malloc(AUTH_TOKEN_MAX + 10);

    cr_assert_eq(auth_new(&cfg, &a, &err), 0, "%s", err.text);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(auth_verify(a, bad[i], time(NULL), &id, &err), CTX_EAUTH, "%s", bad[i]);
    memset(huge, 'a', AUTH_TOKEN_MAX + 9);
    huge[AUTH_TOKEN_MAX + 9] = '\0';
    huge[10] = '.';
    huge[20] = '.';
    cr_assert_eq(auth_verify(a, huge, time(NULL), &id, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "too long"), "%s", err.text);
    ctx_free(huge);
    /* a crit header is refused even when signed right */
    {
        jwt_t *j;
        char *t;
        cr_assert_eq(jwt_new(&j), 0);
        jwt_add_grants_json(j, "{\"sub\":\"u\",\"exp\":9999999999,\"iss\":\"iss-x\","
                               "\"aud\":\"aud-x\"}");
        jwt_add_header(j, "crit", "exp");
        jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET));
        t = jwt_encode_str(j);
        cr_assert_eq(auth_verify(a, t, time(NULL), &id, &err), CTX_EAUTH);
        cr_assert(strstr(err.text, "critical"), "%s", err.text);
        free(t);
        jwt_free(j);
    }
    auth_free(a);
}

Test(auth, the_configured_claims_name_the_user_and_the_agent)
{
    char *agents[] = {"act.sub", "azp", "client_id"};
    auth *a;
    auth_identity id;
    ctx_error err;

    cfg.user_claim = "email";
    cfg.agent_claims.v = agents;
    cfg.agent_claims.n = 3;
    cr_assert_eq(auth_new(&cfg, &a, &err), 0, "%s", err.text);
#define CL(rest) "{\"exp\":9999999999,\"iss\":\"iss-x\",\"aud\":\"aud-x\"," rest "}"
    cr_assert_eq(check(a, CL("\"sub\":\"00u1\",\"email\":\"ann@x\",\"azp\":\"bot\","
                             "\"client_id\":\"cid\""), &id, &err), 0, "%s", err.text);
    cr_assert_str_eq(id.user, "ann@x");
    cr_assert_str_eq(id.agent, "bot", "azp comes before client_id");
    cr_assert_eq(check(a, CL("\"email\":\"ann@x\",\"act\":{\"sub\":\"deleg\"},"
                             "\"azp\":\"bot\""), &id, &err), 0, "%s", err.text);
    cr_assert_str_eq(id.agent, "deleg", "act.sub comes first");
    cr_assert_eq(check(a, CL("\"email\":\"ann@x\",\"client_id\":\"cid\""), &id, &err), 0);
    cr_assert_str_eq(id.agent, "cid");
    cr_assert_eq(check(a, CL("\"email\":\"ann@x\""), &id, &err), 0);
    cr_assert_str_eq(id.agent, "", "no agent claim: no agent");
    /* the user claim is required; sub does not stand in for it */
    cr_assert_eq(check(a, CL("\"sub\":\"ann\""), &id, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "email (the user)"), "%s", err.text);
    cr_assert_eq(check(a, CL("\"email\":7"), &id, &err), CTX_EAUTH);
    cr_assert_eq(check(a, CL("\"email\":\"\""), &id, &err), CTX_EAUTH);
    /* a present but malformed agent claim is refused, not skipped */
    cr_assert_eq(check(a, CL("\"email\":\"a@x\",\"azp\":[\"bot\"]"), &id, &err), CTX_EAUTH);
    cr_assert(strstr(err.text, "azp (the agent)"), "%s", err.text);
    cr_assert_eq(check(a, CL("\"email\":\"a@x\",\"act\":\"bot\""), &id, &err), CTX_EAUTH);
    auth_free(a);

    /* nested and namespaced (dotted) claim names */
    cfg.user_claim = "https://example.com/claims.user";
    cfg.agent_claims.n = 0;
    cr_assert_eq(auth_new(&cfg, &a, &err), 0, "%s", err.text);
    cr_assert_eq(check(a, CL("\"https://example.com/claims.user\":\"ns\",\"azp\":\"b\""),
                       &id, &err), 0, "%s", err.text);
    cr_assert_str_eq(id.user, "ns");
    cr_assert_str_eq(id.agent, "", "agent_claims [] means act.sub only");
    auth_free(a);
    cfg.user_claim = "ext.uid";
    cr_assert_eq(auth_new(&cfg, &a, &err), 0, "%s", err.text);
    cr_assert_eq(check(a, CL("\"ext\":{\"uid\":\"nested\"}"), &id, &err), 0, "%s", err.text);
    cr_assert_str_eq(id.user, "nested");
    cr_assert_eq(check(a, CL("\"ext\":{\"other\":\"x\"},\"sub\":\"s\""), &id, &err),
                 CTX_EAUTH);
    auth_free(a);
    cfg.user_claim = NULL;
}

Test(auth, the_resource_is_an_audience_too)
{
    auth *a;
    auth_identity id;
    ctx_error err;

    cfg.resource = "https://ctx.example.com";
    cr_assert_eq(auth_new(&cfg, &a, &err), 0, "%s", err.text);
    cr_assert_eq(check(a, "{\"sub\":\"u\",\"exp\":9999999999,\"iss\":\"iss-x\","
                          "\"aud\":[\"other\",\"https://ctx.example.com\"]}", &id, &err), 0,
                 "%s", err.text);
    cr_assert_eq(check(a, "{\"sub\":\"u\",\"exp\":9999999999,\"iss\":\"iss-x\","
                          "\"aud\":\"aud-x\"}", &id, &err), 0, "%s", err.text);
    cr_assert_eq(check(a, "{\"sub\":\"u\",\"exp\":9999999999,\"iss\":\"iss-x\","
                          "\"aud\":\"https://ctx.example.com/\"}", &id, &err), CTX_EAUTH);
    cr_assert_eq(check(a, "{\"sub\":\"u\",\"exp\":9999999999,\"iss\":\"iss-x\","
                          "\"aud\":[]}", &id, &err), CTX_EAUTH);
    auth_free(a);
    cfg.resource = NULL;
}
