/*
 * test_oidc.c - `ctxgate serve` checking tokens of a real OpenID provider:
 * the npm package oidc-provider (tests/oidc/provider.mjs) started on
 * 127.0.0.1, its discovery document and JWKS read by serve at start. Users'
 * tokens see what the user may read; agents are named by the configured
 * claim; tokens of another key, expired, for another audience, of another
 * issuer, alg none, HS256 over the RSA key and alg swaps are refused; a key
 * rotation at the provider is followed without a restart, an unknown kid
 * fetches no more often than jwks_refresh_min_s, the keys expire after
 * jwks_ttl_s or the provider's max-age, a failed fetch keeps them, and a
 * fetch the provider holds up holds up no other request. Everything talks
 * to 127.0.0.1 on ports the system picks.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

/* The resource identifier: serve.public_url, and the aud the provider puts
 * in its tokens (RFC 8707). */
#define RESOURCE "https://ctxgate.test"
/* A document everyone may read, labelled announcement. */
#define MOVE "Office move to 410 Mill Street (March 2027)"
/* ctxgate serves agents acting for users: the usual token's claims */
#define ALICE "sub=alice@northwind.test&act=helpdesk"

static char *dir;
static pid_t idp = -1, server = -1;
static char issuer[128], bin[PATH_MAX];
static int port;

/* ---- the provider ---- */

/*
 * idp_spawn - start the provider (its stderr to dir/idp.log) and read its
 * "ISSUER <url>" line: 1 when it came within 60 s. Else its log and state
 * go to stderr, it is killed, and 0. Only what is async-signal-safe runs
 * between fork and exec: the test process has threads of its own.
 */
static int idp_spawn(void)
{
    char line[256] = "", logp[PATH_MAX + 32];
    struct pollfd pfd;
    int fds[2], log, ok;
    FILE *f;

    snprintf(logp, sizeof logp, "%s/idp.log", dir);
    log = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
    cr_assert(log >= 0 && pipe(fds) == 0);
    idp = fork();
    cr_assert(idp >= 0);
    if (!idp) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test that crashes takes it along */
        dup2(log, 2);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("node", "node", "tests/oidc/provider.mjs", RESOURCE, (char *)NULL);
        _exit(127);
    }
    close(log);
    close(fds[1]);
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 60000) != 1) {
        char cmd[PATH_MAX + 256];
        snprintf(cmd, sizeof cmd, "cat %s/idp.log /proc/%d/wchan >&2; grep State"
                 " /proc/%d/status >&2; ps -o pid,stat,etime,time,args -p %d >&2", dir,
                 (int)idp, (int)idp, (int)idp);
        if (system(cmd)) {}
        kill(idp, SIGKILL);
        waitpid(idp, NULL, 0);
        idp = -1;
        close(fds[0]);
        return 0;
    }
    f = fdopen(fds[0], "r");
    ok = f && fgets(line, sizeof line, f) && sscanf(line, "ISSUER %127s", issuer) == 1;
    cr_assert(ok, "the OpenID provider did not start: %s", line);
    fclose(f);
    return 1;
}

/*
 * start_idp - the provider, listening. One that says nothing in 60 s
 * (seen 3 times in about 40 loaded runs, never alone; the log above says
 * where it stood) is started once more: the provider is the test's
 * instrument, not what it tests.
 */
static void start_idp(void)
{
    if (idp_spawn())
        return;
    fprintf(stderr, "test_oidc: the OpenID provider said nothing in 60 s; starting it again\n");
    cr_assert(idp_spawn(), "the OpenID provider said nothing in 60 s, twice");
}

/*
 * stop - SIGTERM *pid and wait; its exit status (0 when none ran). One that
 * has not stopped after a minute is a hang: its threads' stacks go to
 * stderr (gdb), then SIGKILL, and the status says so (-1).
 */
static int stop(pid_t *pid)
{
    int status = 0, i;
    if (*pid <= 0)
        return 0;
    kill(*pid, SIGTERM);
    for (i = 0; i < 1200 && waitpid(*pid, &status, WNOHANG) == 0; i++)
        usleep(50000);
    if (i == 1200) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "gdb -p %d -batch -ex 'thread apply all bt' >&2"
                 " 2>/dev/null", (int)*pid);
        fprintf(stderr, "pid %d did not stop after SIGTERM:\n", (int)*pid);
        if (system(cmd)) {}
        kill(*pid, SIGKILL);
        waitpid(*pid, &status, 0);
        status = -1;
    }
    *pid = -1;
    return status;
}

static char *serve_log(void);

/* stop_serve - serve stops cleanly (under ASan: without leaks). */
static void stop_serve(void)
{
    int st = stop(&server);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        char *log = serve_log();
        cr_expect(0, "serve did not stop cleanly (status %d): %s", st, log);
        ctx_free(log);
    }
}

/* ---- HTTP ---- */

typedef struct reply {
    long status;
    char *body;     /* new */
} reply;

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
    ctx_buf_append(arg, p, size * n);
    return size * n;
}

/* request - method url with an optional bearer token, body and basic auth. */
static reply request(const char *method, const char *url, const char *token, const char *body,
                     const char *userpwd)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    ctx_buf b = CTX_BUF_INIT;
    char auth[9000];
    reply r = {0, NULL};
    CURLcode cc;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (userpwd)
        curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    ctx_buf_append(&b, "", 1);
    r.body = ctx_buf_steal(&b);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

/* idp_get - the provider's answer to path (new), which must be 200. */
static char *idp_call(const char *method, const char *path)
{
    char url[512];
    reply r;
    snprintf(url, sizeof url, "%s%s", issuer, path);
    r = request(method, url, NULL, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
    return r.body;
}

/* mint - a token the provider signs, for the query q of /_test/mint. */
static char *mint(const char *q)
{
    char path[512];
    snprintf(path, sizeof path, "/_test/mint?%s", q);
    return idp_call("GET", path);
}

static long jwks_hits(void)
{
    char *t = idp_call("GET", "/_test/jwks_hits");
    long n = atol(t);
    ctx_free(t);
    return n;
}

/* search - the status of a search for query with tok; *ans the answer (new) or NULL. */
static long search(const char *tok, const char *query, json_t **ans)
{
    char url[128], body[256];
    reply r;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/search", port);
    snprintf(body, sizeof body, "{\"query\": \"%s\", \"k\": 20}", query);
    r = request("POST", url, tok, body, NULL);
    if (ans)
        *ans = json_loads(r.body, 0, NULL);
    ctx_free(r.body);
    return r.status;
}

static int has_title(json_t *ans, const char *title)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(ans, "results"), i, v)
        if (!strcmp(json_string_value(json_object_get(v, "title")), title))
            return 1;
    return 0;
}

/* sees - tok's search for query answers 200 with title among the results. */
static int sees(const char *tok, const char *query, const char *title)
{
    json_t *a = NULL;
    long st = search(tok, query, &a);
    int yes;
    cr_assert_eq(st, 200, "search for %s answered %ld", query, st);
    yes = has_title(a, title);
    json_decref(a);
    return yes;
}

/* ---- ctxgate ---- */

static void sync_demo(void)
{
    char cfg[PATH_MAX + 512], demo[PATH_MAX], cmd[PATH_MAX * 3];
    cr_assert(realpath("examples/demo", demo));
    cr_assert(realpath(tu_build_dir(), bin));
    dir = tu_tmpdir("oidc");
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 64},"
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}]}",
             demo);
    tu_write(dir, "ctxgate.json", cfg);
    snprintf(cmd, sizeof cmd, "cd %s && timeout 120 %s/ctxgate sync >/dev/null 2>&1",
             dir, bin);
    cr_assert_eq(system(cmd), 0, "sync failed: %s", cmd);
}

/*
 * start_serve - serve the synced demo with auth (the inside of the "auth"
 * object, after the issuer and discovery). 0 when it serves, else the
 * exit status of a serve that stopped (its log in dir/serve.log).
 */
static int start_serve(const char *auth_extra)
{
    char cfg[PATH_MAX + 2048], demo[PATH_MAX], cmd[PATH_MAX * 3], logp[PATH_MAX + 32];
    int status;

    cr_assert(realpath("examples/demo", demo));
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 64},"
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}],"
             " \"agents\": ["
             "  {\"name\": \"helpdesk\", \"sources\": \"*\", \"labels\": \"*\"},"
             "  {\"name\": \"app\", \"sources\": [\"northwind\"], \"labels\":"
             "   [\"announcement\"]},"
             "  {\"name\": \"announcer\", \"sources\": [\"northwind\"],"
             "   \"labels\": [\"announcement\"]},"
             "  {\"name\": \"agent-bot\", \"sources\": \"*\", \"labels\": \"*\"}],"
             " \"auth\": {\"issuer\": \"%s\", \"discovery\": true, \"hs256_secret_env\": \"\""
             "  %s},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2, \"public_url\": \""
             RESOURCE "\", \"user_rate\": 0, \"agent_rate\": 0}}",
             demo, issuer, auth_extra);
    tu_write(dir, "ctxgate.json", cfg);
    snprintf(logp, sizeof logp, "%s/serve.log", dir);
    unlink(logp);
    snprintf(cmd, sizeof cmd, "cd %s && exec %s/ctxgate serve --no-agent 2>serve.log", dir,
             bin);
    port = 0;
    server = fork();
    cr_assert(server >= 0);
    if (!server) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600 && !port; i++) {
        char line[512];
        FILE *f = fopen(logp, "r");
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "listening on port ");
            if (p)
                port = atoi(p + strlen("listening on port "));
        }
        if (f)
            fclose(f);
        if (!port && waitpid(server, &status, WNOHANG) == server) {
            server = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        }
        if (!port)
            usleep(50000);
    }
    cr_assert(port > 0, "serve did not start");
    return 0;
}

static char *serve_log(void)
{
    char p[PATH_MAX + 32], *t = NULL;
    size_t len;
    snprintf(p, sizeof p, "%s/serve.log", dir);
    cr_assert_eq(ctx_read_file(p, &t, &len), 0);
    return t;
}

static void setup(void)
{
    sync_demo();
    start_idp();
}

static void teardown(void)
{
    stop_serve();
    stop(&idp);
    if (dir) {
        tu_rmrf(dir);
        free(dir);
        dir = NULL;
    }
}

TestSuite(oidc, .init = setup, .fini = teardown, .timeout = 240);

/* ---- tokens taken apart ---- */

static char *b64url(const unsigned char *s, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = ctx_malloc(n * 4 / 3 + 4), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        if (i + 1 < n)
            *o++ = a[v >> 6 & 63];
        if (i + 2 < n)
            *o++ = a[v & 63];
    }
    *o = '\0';
    return out;
}

/*
 * reheader - tok with its header replaced by hdr (JSON) and its signature by
 * sig: "keep" keeps it, "" drops it, "hmac:<key>" is HS256 over the new
 * header and payload with key. New.
 */
static char *reheader(const char *tok, const char *hdr, const char *sig)
{
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    char *h = b64url((const unsigned char *)hdr, strlen(hdr)), *s;
    ctx_buf b = CTX_BUF_INIT;

    ctx_buf_printf(&b, "%s%.*s", h, (int)(d2 - d1), d1);
    if (!strcmp(sig, "keep")) {
        ctx_buf_puts(&b, d2);
    } else if (!strncmp(sig, "hmac:", 5)) {
        unsigned char mac[32];
        unsigned int len = 0;
        HMAC(EVP_sha256(), sig + 5, (int)strlen(sig + 5), (const unsigned char *)b.data, b.len,
             mac, &len);
        s = b64url(mac, len);
        ctx_buf_printf(&b, ".%s", s);
        ctx_free(s);
    } else {
        ctx_buf_printf(&b, ".%s", sig);
    }
    ctx_free(h);
    ctx_buf_append(&b, "", 1);
    return ctx_buf_steal(&b);
}

/* the PEM of the provider's key kid, as a key-confusion attacker would take it */
static char *public_pem(const char *kid)
{
    char cmd[512], *t;
    size_t len;
    snprintf(cmd, sizeof cmd, "cd %s && node -e '"
             "const c=require(\"crypto\");fetch(\"%s/jwks\").then(r=>r.json()).then(j=>{"
             "const k=j.keys.find(k=>k.kid===\"%s\");"
             "process.stdout.write(c.createPublicKey({key:k,format:\"jwk\"})"
             ".export({type:\"spki\",format:\"pem\"}))})' > pub.pem", dir, issuer, kid);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/pub.pem", dir);
    cr_assert_eq(ctx_read_file(cmd, &t, &len), 0);
    cr_assert(strstr(t, "BEGIN PUBLIC KEY"), "%s", t);
    return t;
}

/* client_token - an access token (new) of the provider's token endpoint:
 * client_credentials for client agent-bot, for this resource (RFC 8707). */
static char *client_token(void)
{
    char url[256], *t;
    json_t *j;
    reply r;

    snprintf(url, sizeof url, "%s/token", issuer);
    r = request("POST", url, NULL, "grant_type=client_credentials&scope=search&resource="
                RESOURCE, "agent-bot:agent-bot-secret");
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = json_loads(r.body, 0, NULL);
    cr_assert(json_string_value(json_object_get(j, "access_token")), "%s", r.body);
    t = ctx_strdup(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    ctx_free(r.body);
    return t;
}

/* ---- the tests ---- */

Test(oidc, user_tokens_see_what_the_user_may_and_the_metadata_names_the_provider)
{
    char *alice = mint(ALICE), *bob = mint("sub=bob@northwind.test&act=helpdesk");
    char *alice_ec = mint(ALICE "&alg=ES256"), url[128], *t;
    json_t *j;
    reply r;

    cr_assert_eq(start_serve(""), 0);
    cr_assert(sees(alice, "salary bands", "Salary bands 2026"), "alice (hr) misses it");
    cr_assert(sees(alice_ec, "salary bands", "Salary bands 2026"), "an ES256 token failed");
    cr_assert(!sees(bob, "salary bands", "Salary bands 2026"), "LEAK to bob");
    cr_assert(sees(bob, "office move", MOVE), "bob misses what everyone may read");

    /* a token of the real token endpoint (client_credentials) names no agent
     * by act.sub: it passes auth (403, not 401) and the service wants an agent */
    t = client_token();
    cr_assert_eq(search(t, "salary bands", NULL), 403);
    ctx_free(t);

    /* RFC 9728: the real authorization server, the resource tokens are for */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/.well-known/oauth-protected-resource", port);
    r = request("GET", url, NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    j = json_loads(r.body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "resource")), RESOURCE, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j,
                                                                      "authorization_servers"),
                                                      0)), issuer, "%s", r.body);
    json_decref(j);
    ctx_free(r.body);
    ctx_free(alice);
    ctx_free(alice_ec);
    ctx_free(bob);
}

Test(oidc, the_configured_claims_name_the_agent_and_the_user)
{
    char *ann = mint("sub=alice@northwind.test&act=announcer");
    char *help = mint("sub=alice@northwind.test&act=helpdesk");
    char *rogue = mint("sub=alice@northwind.test&act=rogue");
    char *by_mail = mint("sub=00u1x&email=alice@northwind.test");
    char *deleg = mint("sub=00u1x&email=alice@northwind.test&act=helpdesk"), *cli;

    /* the default: act.sub (RFC 8693) names the agent, sub the user */
    cr_assert_eq(start_serve(""), 0);
    cr_assert(sees(help, "salary bands", "Salary bands 2026"));
    cr_assert(!sees(ann, "salary bands", "Salary bands 2026"),
              "the announcer's grant did not narrow alice's reach");
    cr_assert(sees(ann, "office move", MOVE));
    cr_assert_eq(search(rogue, "salary", NULL), 403, "an unregistered agent was served");
    /* no act: no agent, refused by the service (the token itself is good) */
    cr_assert_eq(search(by_mail, "salary", NULL), 403);
    stop_serve();

    /* email names the user; act.sub, else the client (client_id), the agent */
    cr_assert_eq(start_serve(", \"user_claim\": \"email\", \"agent_claims\": [\"act.sub\","
                             " \"client_id\"]"), 0);
    cr_assert(sees(deleg, "salary bands", "Salary bands 2026"),
              "email did not name alice, or act.sub lost to client_id");
    /* no act: the minting client "app" is the agent, and its grant holds */
    cr_assert(!sees(by_mail, "salary bands", "Salary bands 2026"), "client_id was no agent");
    cr_assert(sees(by_mail, "office move", MOVE));
    /* a token without email names no user */
    cr_assert_eq(search(help, "salary", NULL), 401);
    stop_serve();

    /* sub names the user, client_id the agent: the token endpoint's
     * client_credentials token, whose client is its own subject, is served */
    cr_assert_eq(start_serve(", \"agent_claims\": [\"act.sub\", \"client_id\"]"), 0);
    cr_assert(sees(help, "salary bands", "Salary bands 2026"));
    cli = client_token();
    cr_assert_eq(search(cli, "salary", NULL), 200);
    ctx_free(cli);
    ctx_free(ann);
    ctx_free(help);
    ctx_free(rogue);
    ctx_free(by_mail);
    ctx_free(deleg);
}

Test(oidc, forged_expired_and_misaddressed_tokens_are_refused)
{
    char *good = mint(ALICE), *ec = mint(ALICE "&alg=ES256");
    char *foreign = mint(ALICE "&foreign=1");
    char *expired = mint(ALICE "&expired=1");
    char *aud = mint(ALICE "&aud=https://elsewhere.test");
    char *iss = mint(ALICE "&issuer=other");
    char *pem = public_pem("rsa-1"), hmac[4096], *t;
    long before;

    cr_assert_eq(start_serve(", \"clock_skew_s\": 0, \"jwks_refresh_min_s\": 3600"), 0);
    before = jwks_hits();
    cr_assert_eq(search(good, "salary", NULL), 200, "the control token was refused");
    cr_assert_eq(search(foreign, "salary", NULL), 401, "another key under the same kid");
    cr_assert_eq(search(expired, "salary", NULL), 401, "expired");
    cr_assert_eq(search(aud, "salary", NULL), 401, "wrong audience");
    cr_assert_eq(search(iss, "salary", NULL), 401, "wrong issuer");
    t = reheader(good, "{\"alg\":\"none\",\"kid\":\"rsa-1\"}", "");
    cr_assert_eq(search(t, "salary", NULL), 401, "alg none, no signature");
    ctx_free(t);
    t = reheader(good, "{\"alg\":\"none\",\"kid\":\"rsa-1\"}", "keep");
    cr_assert_eq(search(t, "salary", NULL), 401, "alg none, signature kept");
    ctx_free(t);
    /* key confusion: HS256 with the RSA public key as the secret */
    snprintf(hmac, sizeof hmac, "hmac:%s", pem);
    t = reheader(good, "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", hmac);
    cr_assert_eq(search(t, "salary", NULL), 401, "HS256 over the RSA key");
    ctx_free(t);
    /* the key decides: an ES256 token relabelled RS256, an RS256 one under
     * the EC key's kid */
    t = reheader(ec, "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", "keep");
    cr_assert_eq(search(t, "salary", NULL), 401, "alg swapped");
    ctx_free(t);
    t = reheader(good, "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", "keep");
    cr_assert_eq(search(t, "salary", NULL), 401, "kid swapped");
    ctx_free(t);
    t = reheader(good, "{\"alg\":\"RS256\",\"kid\":5}", "keep");
    cr_assert_eq(search(t, "salary", NULL), 401, "kid not a string");
    ctx_free(t);
    cr_assert_eq(search(ec, "salary", NULL), 200, "the ES256 control token was refused");
    cr_assert_eq(jwks_hits(), before, "a refused token fetched the JWKS again");
    ctx_free(good);
    ctx_free(ec);
    ctx_free(foreign);
    ctx_free(expired);
    ctx_free(aud);
    ctx_free(iss);
    ctx_free(pem);
}

Test(oidc, a_key_rotation_is_followed_without_a_restart)
{
    char *old = mint(ALICE), *fresh, *bogus, *kids;
    long hits;

    cr_assert_eq(start_serve(", \"jwks_refresh_min_s\": 1"), 0);
    cr_assert_eq(search(old, "salary", NULL), 200);
    kids = idp_call("POST", "/_test/rotate");
    cr_assert(!strstr(kids, "rsa-1"), "%s", kids);
    fresh = mint(ALICE);
    usleep(1100 * 1000); /* past jwks_refresh_min_s since serve's first fetch */
    hits = jwks_hits();
    cr_assert_eq(search(fresh, "salary", NULL), 200, "the new key was not fetched");
    cr_assert_eq(jwks_hits(), hits + 1, "the new kid should fetch the JWKS once");
    /* the old key is gone from the provider, so from serve */
    cr_assert_eq(search(old, "salary", NULL), 401, "a key the provider dropped still works");

    /* the provider goes away: a fetch fails, the keys serve has stay */
    stop(&idp);
    usleep(1100 * 1000);
    bogus = reheader(fresh, "{\"alg\":\"RS256\",\"kid\":\"nope\",\"typ\":\"at+jwt\"}", "keep");
    cr_assert_eq(search(bogus, "salary", NULL), 401);
    cr_assert_eq(search(fresh, "salary", NULL), 200, "a failed refresh dropped the keys");
    {
        char *log = serve_log();
        cr_assert(strstr(log, "refreshing the keys of"), "%s", log);
        ctx_free(log);
    }
    ctx_free(old);
    ctx_free(fresh);
    ctx_free(bogus);
    ctx_free(kids);
}

Test(oidc, an_unknown_kid_fetches_no_more_than_the_rate_allows)
{
    char *fresh, *kids;
    long hits;

    cr_assert_eq(start_serve(", \"jwks_refresh_min_s\": 3600"), 0);
    hits = jwks_hits();
    cr_assert_eq(hits, 1, "serve fetched the JWKS %ld times at start", hits);
    kids = idp_call("POST", "/_test/rotate");
    fresh = mint(ALICE);
    /* the last fetch (at start) is younger than an hour: no fetch, refused */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(search(fresh, "salary", NULL), 401);
    cr_assert_eq(jwks_hits(), hits, "an unknown kid fetched within jwks_refresh_min_s");
    ctx_free(fresh);
    ctx_free(kids);
}

Test(oidc, a_bad_or_unreachable_issuer_stops_serve_with_the_field_named)
{
    char *log;

    stop(&idp);
    snprintf(issuer, sizeof issuer, "http://idp.example.com");
    cr_assert_neq(start_serve(""), 0, "serve started with an http issuer");
    log = serve_log();
    cr_assert(strstr(log, "auth.issuer") && strstr(log, "https"), "%s", log);
    ctx_free(log);
    /* nothing listens on port 1 of the loopback */
    snprintf(issuer, sizeof issuer, "http://127.0.0.1:1");
    cr_assert_neq(start_serve(""), 0, "serve started without its provider's keys");
    log = serve_log();
    cr_assert(strstr(log, "auth.issuer: cannot read the discovery document"), "%s", log);
    ctx_free(log);
}

/* expire_and_follow - after the keys' time is up, a token of a key the
 * provider dropped is refused and one of its new key taken, with one fetch,
 * though jwks_refresh_min_s (an hour) forbids a fetch for an unknown kid. */
static void expire_and_follow(void)
{
    char *old = mint(ALICE), *fresh, *kids;
    long hits;

    cr_assert_eq(search(old, "salary", NULL), 200);
    kids = idp_call("POST", "/_test/rotate");
    fresh = mint(ALICE);
    usleep(1100 * 1000); /* past the copy's one second */
    hits = jwks_hits();
    cr_assert_eq(search(old, "salary", NULL), 401, "a dropped key outlived the copy's time");
    cr_assert_eq(jwks_hits(), hits + 1, "the expired copy was not fetched again once");
    cr_assert_eq(search(fresh, "salary", NULL), 200, "the new key did not come with it");
    ctx_free(old);
    ctx_free(fresh);
    ctx_free(kids);
}

Test(oidc, the_keys_expire_after_jwks_ttl_s)
{
    cr_assert_eq(start_serve(", \"jwks_refresh_min_s\": 3600, \"jwks_ttl_s\": 1"), 0);
    expire_and_follow();
}

Test(oidc, the_keys_expire_after_the_providers_max_age)
{
    char *t = idp_call("POST", "/_test/max_age?s=1");
    ctx_free(t);
    /* jwks_ttl_s is an hour: only the answer's max-age can end the copy; the
     * least max-age taken is jwks_refresh_min_s */
    cr_assert_eq(start_serve(", \"jwks_refresh_min_s\": 1, \"jwks_ttl_s\": 3600"), 0);
    expire_and_follow();
}

/*
 * Keys the provider cannot confirm are not trusted for ever: with
 * jwks_ttl_s 1, once the provider has been gone for over 4 s (4 x
 * jwks_ttl_s) a token of its key is refused. (That a failed fetch keeps
 * the keys until then is a_key_rotation_is_followed_without_a_restart's.)
 */
Test(oidc, keys_that_cannot_be_refreshed_are_dropped_after_four_ttls)
{
    char *t = mint(ALICE);

    cr_assert_eq(start_serve(", \"jwks_refresh_min_s\": 1, \"jwks_ttl_s\": 1"), 0);
    cr_assert_eq(search(t, "salary", NULL), 200);
    stop(&idp);
    sleep(6);
    cr_assert_eq(search(t, "salary", NULL), 401, "stale keys are still trusted");
    ctx_free(t);
}

typedef struct bg_search {
    const char *tok;
    long status;
} bg_search;

static void *search_bg(void *arg)
{
    bg_search *b = arg;
    b->status = search(b->tok, "salary", NULL);
    return NULL;
}

Test(oidc, a_fetch_in_progress_holds_up_no_other_request)
{
    char *known = mint(ALICE), *fresh, *kids, *t;
    bg_search bg = {NULL, 0};
    pthread_t th;
    int i;

    cr_assert_eq(start_serve(", \"jwks_refresh_min_s\": 0, \"jwks_timeout_ms\": 30000"), 0);
    kids = idp_call("POST", "/_test/rotate");
    fresh = mint(ALICE);
    t = idp_call("POST", "/_test/hold");
    ctx_free(t);
    /* a new kid: this request fetches the JWKS, which the provider holds */
    bg.tok = fresh;
    cr_assert_eq(pthread_create(&th, NULL, search_bg, &bg), 0);
    for (i = 0; i < 600; i++) {
        long n;
        t = idp_call("GET", "/_test/held");
        n = atol(t);
        ctx_free(t);
        if (n == 1)
            break;
        usleep(50000);
    }
    cr_assert_lt(i, 600, "serve never asked for the JWKS");
    /* meanwhile: a known kid is answered, another new kid is refused at
     * once with the keys serve has (no second fetch), while the first is
     * still held */
    cr_assert_eq(search(known, "salary", NULL), 200);
    cr_assert_eq(search(fresh, "salary", NULL), 401);
    t = idp_call("GET", "/_test/held");
    cr_assert_str_eq(t, "1", "the fetch ended before the others were answered");
    ctx_free(t);
    t = idp_call("POST", "/_test/release");
    ctx_free(t);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(bg.status, 200, "the request that fetched the new key was refused");
    cr_assert_eq(search(fresh, "salary", NULL), 200);
    ctx_free(known);
    ctx_free(fresh);
    ctx_free(kids);
}
