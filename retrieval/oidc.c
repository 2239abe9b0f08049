/*
 * oidc.c - an OpenID provider's signing keys: discovery, JWKS fetch and
 * parse (JWK to EVP_PKEY and PEM with OpenSSL 3), RS256/ES256 signature
 * checks, and the cache that refreshes them (see oidc.h).
 */
#include "oidc.h"

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/json.h"
#include "../core/util.h"

/* A discovery document or JWKS larger than this is refused. */
#define OIDC_DOC_MAX (1024 * 1024)
/* Most seconds a JWKS's Cache-Control max-age keeps it; the least is
 * jwks_refresh_min_s (and 1), so "no-cache" cannot fetch per request. */
#define OIDC_MAXAGE_MAX 86400
/* Keys that could not be refreshed for this many jwks_ttl_s are dropped:
 * a provider that stays unreadable, or serves a set ctxgate refuses, may
 * have taken a key back; after this, its tokens are refused (fail closed)
 * until a fetch succeeds. */
#define OIDC_STALE_TTLS 4

struct oidc {
    char *issuer, *jwks_uri;
    int64_t refresh_min_s, ttl_s, timeout_ms;
    pthread_mutex_t mu;
    oidc_keyset *keys;      /* current; never NULL after oidc_new */
    int64_t fetched_at;     /* seconds: the last fetch tried */
    int64_t expires_at;     /* seconds: the current keys' end */
    int64_t good_at;        /* seconds: the current keys' fetch */
    int fetching;           /* a thread is fetching: others use what they have */
    int64_t fetches;
};

/* ---- JWK ---- */

void oidc_key_clear(oidc_key *k)
{
    EVP_PKEY_free(k->pkey);
    ctx_free(k->kid);
    ctx_free(k->pem);
    memset(k, 0, sizeof *k);
}

void oidc_keyset_free(oidc_keyset *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        oidc_key_clear(&s->keys[i]);
    ctx_free(s->keys);
    ctx_free(s);
}

/*
 * b64url - the base64url (no padding, RFC 7515 section 2) member name of jwk
 * decoded into a new buffer; *len its size. NULL when missing, empty or not
 * base64url.
 */
static unsigned char *b64url(json_t *jwk, const char *name, size_t *len)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    size_t n = s ? strlen(s) : 0;
    unsigned char *out;
    long o;

    if (!n || n % 4 == 1 || !(out = ctx_malloc(n * 3 / 4 + 1)))
        return NULL;
    if ((o = ctx_b64_decode(s, n, 1, out)) < 0) {
        ctx_free(out);
        return NULL;
    }
    *len = (size_t)o;
    return out;
}

/* to_pem - k as a SubjectPublicKeyInfo PEM into out; 0 or -1. */
static int to_pem(EVP_PKEY *k, oidc_key *out)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;
    int rc = -1;

    if (b && PEM_write_bio_PUBKEY(b, k) && (n = BIO_get_mem_data(b, &p)) > 0 &&
        (out->pem = ctx_malloc((size_t)n + 1))) {
        memcpy(out->pem, p, (size_t)n);
        out->pem[n] = '\0';
        out->pem_len = (size_t)n;
        rc = 0;
    }
    BIO_free(b);
    return rc;
}

/* fromdata - an EVP_PKEY of type name ("RSA", "EC") from params, or NULL. */
static EVP_PKEY *fromdata(const char *name, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = bld ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    EVP_PKEY_CTX *c = params ? EVP_PKEY_CTX_new_from_name(NULL, name, NULL) : NULL;
    EVP_PKEY *k = NULL;

    if (!c || EVP_PKEY_fromdata_init(c) <= 0 ||
        EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        k = NULL;
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(params);
    return k;
}

static int rsa_key(json_t *jwk, EVP_PKEY **out, ctx_error *err)
{
    size_t nl = 0, el = 0;
    unsigned char *n = b64url(jwk, "n", &nl), *e = b64url(jwk, "e", &el);
    BIGNUM *bn = n ? BN_bin2bn(n, (int)nl, NULL) : NULL, *be = e ? BN_bin2bn(e, (int)el, NULL)
                                                                  : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    int rc = CTX_OK;

    *out = NULL;
    if (!n || !e)
        rc = ctx_error_set(err, CTX_EINVAL, "jwk: \"%s\" missing or not base64url",
                           !n ? "n" : "e");
    else if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
             !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
             !(*out = fromdata("RSA", bld)))
        rc = ctx_error_set(err, CTX_EINVAL, "jwk: n and e are not an RSA public key");
    else if (EVP_PKEY_bits(*out) < 2048 || BN_is_one(be) || !BN_is_odd(be))
        rc = ctx_error_set(err, CTX_EINVAL, "jwk: RSA key of %d bits or a bad exponent; RS256"
                           " needs 2048 bits or more", EVP_PKEY_bits(*out));
    if (rc) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    ctx_free(n);
    ctx_free(e);
    return rc;
}

static int ec_key(json_t *jwk, EVP_PKEY **out, ctx_error *err)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    size_t xl = 0, yl = 0;
    unsigned char *x = NULL, *y = NULL, pub[65];
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY_CTX *chk = NULL;
    int rc = CTX_OK;

    *out = NULL;
    if (!crv || strcmp(crv, "P-256"))
        return ctx_error_set(err, CTX_ENOTFOUND, "jwk: crv %s is not P-256",
                             crv ? crv : "(missing)");
    x = b64url(jwk, "x", &xl);
    y = b64url(jwk, "y", &yl);
    if (!x || !y || xl != 32 || yl != 32) {
        rc = ctx_error_set(err, CTX_EINVAL, "jwk: \"%s\" missing, not base64url or not 32"
                           " bytes", !x || xl != 32 ? "x" : "y");
        goto done;
    }
    pub[0] = 4; /* uncompressed point (SEC 1) */
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    if (!(bld = OSSL_PARAM_BLD_new()) ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub) ||
        !(*out = fromdata("EC", bld)) || !(chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL)) ||
        EVP_PKEY_public_check(chk) != 1) {
        rc = ctx_error_set(err, CTX_EINVAL, "jwk: x and y are not a point on P-256");
        EVP_PKEY_free(*out);
        *out = NULL;
    }
done:
    EVP_PKEY_CTX_free(chk);
    OSSL_PARAM_BLD_free(bld);
    ctx_free(x);
    ctx_free(y);
    return rc;
}

int oidc_jwk_parse(json_t *jwk, oidc_key *out, ctx_error *err)
{
    const char *kty, *use, *alg, *kid;
    EVP_PKEY *k = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    if (!json_is_object(jwk))
        return ctx_error_set(err, CTX_EINVAL, "jwk: not an object");
    kty = json_string_value(json_object_get(jwk, "kty"));
    use = json_string_value(json_object_get(jwk, "use"));
    alg = json_string_value(json_object_get(jwk, "alg"));
    kid = json_string_value(json_object_get(jwk, "kid"));
    if (!kty)
        return ctx_error_set(err, CTX_EINVAL, "jwk: \"kty\" missing");
    if (json_object_get(jwk, "kid") && (!kid || strlen(kid) > 256))
        return ctx_error_set(err, CTX_EINVAL, "jwk: \"kid\" is not a string of 256 bytes or"
                             " less");
    if (json_object_get(jwk, "use") && (!use || strcmp(use, "sig")))
        return ctx_error_set(err, CTX_ENOTFOUND, "jwk: use is not \"sig\"");
    if (!strcmp(kty, "RSA")) {
        if (alg && strcmp(alg, "RS256"))
            return ctx_error_set(err, CTX_ENOTFOUND, "jwk: RSA key for %s, not RS256", alg);
        rc = rsa_key(jwk, &k, err);
        out->alg = JWT_ALG_RS256;
    } else if (!strcmp(kty, "EC")) {
        if (alg && strcmp(alg, "ES256"))
            return ctx_error_set(err, CTX_ENOTFOUND, "jwk: EC key for %s, not ES256", alg);
        rc = ec_key(jwk, &k, err);
        out->alg = JWT_ALG_ES256;
    } else {
        return ctx_error_set(err, CTX_ENOTFOUND, "jwk: kty %s is neither RSA nor EC", kty);
    }
    if (rc) {
        out->alg = JWT_ALG_NONE;
        return rc;
    }
    out->pkey = k;
    if (!(out->kid = ctx_strdup(kid ? kid : "")) || to_pem(k, out)) {
        oidc_key_clear(out);
        rc = ctx_error_set(err, CTX_ENOMEM, "jwk: out of memory");
    }
    return rc;
}

/* unb64 - base64url s[0..n) into out (room for cap bytes); its length or -1. */
static long unb64(const char *s, size_t n, unsigned char *out, size_t cap)
{
    if (n / 4 * 3 + 3 > cap)
        return -1;
    return ctx_b64_decode(s, n, 1, out);
}

int oidc_verify(const oidc_key *k, const char *data, size_t len, const char *sig,
                size_t siglen)
{
    unsigned char raw[1024], der[80], *p = der;
    const unsigned char *use = raw;
    long n = unb64(sig, siglen, raw, sizeof raw);
    size_t uselen;
    EVP_MD_CTX *md;
    int ok = 0;

    if (n <= 0 || !k->pkey)
        return 0;
    uselen = (size_t)n;
    if (k->alg == JWT_ALG_ES256) {
        /* JWS carries r || s, 32 bytes each; OpenSSL wants DER */
        ECDSA_SIG *es;
        BIGNUM *r, *s;
        int dl;
        if (n != 64)
            return 0;
        es = ECDSA_SIG_new();
        r = BN_bin2bn(raw, 32, NULL);
        s = BN_bin2bn(raw + 32, 32, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return 0;
        }
        dl = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        if (dl <= 0)
            return 0;
        use = der;
        uselen = (size_t)dl;
    } else if (k->alg != JWT_ALG_RS256) {
        return 0;
    }
    if (!(md = EVP_MD_CTX_new()))
        return 0;
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
        EVP_DigestVerify(md, use, uselen, (const unsigned char *)data, len) == 1)
        ok = 1;
    EVP_MD_CTX_free(md);
    return ok;
}

int oidc_jwks_parse(const char *text, size_t len, oidc_keyset **out, ctx_error *err)
{
    json_t *doc = ctx_json_loadb(text, len, 0, NULL), *keys = json_object_get(doc, "keys"), *v;
    oidc_keyset *s = ctx_calloc(1, sizeof *s);
    size_t i;
    int rc = CTX_OK;

    *out = NULL;
    if (!s) {
        json_decref(doc);
        return ctx_error_set(err, CTX_ENOMEM, "jwks: out of memory");
    }
    if (!json_is_array(keys)) {
        rc = ctx_error_set(err, CTX_EINVAL, "jwks: not a JSON object with a \"keys\" array");
        goto done;
    }
    if (!(s->keys = ctx_calloc(json_array_size(keys) + 1, sizeof *s->keys))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "jwks: out of memory");
        goto done;
    }
    json_array_foreach(keys, i, v) {
        ctx_error e;
        int r = oidc_jwk_parse(v, &s->keys[s->n], &e);
        if (r == CTX_ENOTFOUND)
            continue;
        if (r) {
            rc = ctx_error_set(err, r, "jwks: keys[%zu]: %s", i, e.text);
            goto done;
        }
        for (size_t j = 0; j < s->n; j++)
            if (!strcmp(s->keys[j].kid, s->keys[s->n].kid)) {
                rc = ctx_error_set(err, CTX_EINVAL, "jwks: keys[%zu]: kid \"%s\" is used twice",
                                   i, s->keys[j].kid);
                oidc_key_clear(&s->keys[s->n]);
                goto done;
            }
        s->n++;
    }
    if (!s->n)
        rc = ctx_error_set(err, CTX_EINVAL, "jwks: no RS256 or ES256 signing key among its %zu",
                           json_array_size(keys));
done:
    json_decref(doc);
    if (rc) {
        oidc_keyset_free(s);
        return rc;
    }
    s->refs = 1;
    *out = s;
    return CTX_OK;
}

/* ---- fetching ---- */

int oidc_url_ok(const char *url) { return ctx_url_https_or_loopback(url); }

typedef struct fetch_buf {
    ctx_buf body;
    int64_t max_age;    /* from Cache-Control, -1 when none */
    int too_big;
} fetch_buf;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    fetch_buf *f = arg;
    if (f->body.len + size * n > OIDC_DOC_MAX) {
        f->too_big = 1;
        return 0;
    }
    return ctx_buf_append(&f->body, p, size * n) ? 0 : size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    fetch_buf *f = arg;
    size_t len = size * n;
    char line[512], *m;

    if (len < 14 || len >= sizeof line || strncasecmp(p, "Cache-Control:", 14))
        return len;
    memcpy(line, p, len);
    line[len] = '\0';
    for (char *c = line; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    if (strstr(line, "no-store") || strstr(line, "no-cache"))
        f->max_age = 0;
    else if ((m = strstr(line, "max-age=")) && m[8] >= '0' && m[8] <= '9')
        f->max_age = strtoll(m + 8, NULL, 10);
    return len;
}

/*
 * fetch - GET url into a new NUL-terminated *body within timeout_ms, no
 * redirects, http and https only; *max_age from Cache-Control or -1.
 */
static int fetch(const char *url, int64_t timeout_ms, char **body, size_t *len,
                 int64_t *max_age, ctx_error *err)
{
    CURL *c = curl_easy_init();
    fetch_buf f = {CTX_BUF_INIT, -1, 0};
    long status = 0;
    CURLcode cc;

    *body = NULL;
    if (!c)
        return ctx_error_set(err, CTX_ENOMEM, "%s: out of memory", url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &f);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ctxgate");
    cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK || status != 200 || ctx_buf_append(&f.body, "", 1)) {
        ctx_buf_free(&f.body);
        if (f.too_big)
            return ctx_error_set(err, CTX_ESOURCE, "%s: larger than %d bytes", url,
                                 OIDC_DOC_MAX);
        if (cc != CURLE_OK)
            return ctx_error_set(err, CTX_ESOURCE, "%s: %s", url, curl_easy_strerror(cc));
        return ctx_error_set(err, CTX_ESOURCE, "%s: HTTP status %ld, not 200", url, status);
    }
    *len = f.body.len - 1;
    *body = ctx_buf_steal(&f.body);
    *max_age = f.max_age;
    return CTX_OK;
}

/* load_keys - fetch and parse the JWKS; *expires the time its copy ends. */
static int load_keys(oidc *o, int64_t now, oidc_keyset **out, int64_t *expires, ctx_error *err)
{
    char *body;
    size_t len;
    int64_t max_age, ttl, least = o->refresh_min_s > 1 ? o->refresh_min_s : 1;
    int rc;

    *out = NULL;
    if ((rc = fetch(o->jwks_uri, o->timeout_ms, &body, &len, &max_age, err)))
        return rc;
    rc = oidc_jwks_parse(body, len, out, err);
    ctx_free(body);
    ttl = max_age < 0                 ? o->ttl_s
          : max_age < least           ? least
          : max_age > OIDC_MAXAGE_MAX ? OIDC_MAXAGE_MAX
                                      : max_age;
    *expires = now + ttl;
    return rc;
}

int oidc_new(const ctx_auth_cfg *cfg, oidc **out, ctx_error *err)
{
    char url[2048], *body = NULL;
    const char *iss, *jwks;
    size_t len, n = strlen(cfg->issuer);
    int64_t max_age, now = ctx_now_ms() / 1000;
    json_t *doc = NULL;
    oidc *o;
    ctx_error e;
    int rc;

    *out = NULL;
    if (!oidc_url_ok(cfg->issuer))
        return ctx_error_set(err, CTX_ECONFIG, "auth.issuer: \"%s\" is not an https URL (http"
                             " only to 127.0.0.1 or localhost); use the provider's issuer URL",
                             cfg->issuer);
    /* OpenID Connect Discovery 1.0, section 4: the issuer, minus a trailing
     * slash, then /.well-known/openid-configuration. */
    if (n && cfg->issuer[n - 1] == '/')
        n--;
    snprintf(url, sizeof url, "%.*s/.well-known/openid-configuration", (int)n, cfg->issuer);
    if (!(o = ctx_calloc(1, sizeof *o)))
        return ctx_error_set(err, CTX_ENOMEM, "auth: out of memory");
    pthread_mutex_init(&o->mu, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    o->refresh_min_s = cfg->jwks_refresh_min_s;
    o->ttl_s = cfg->jwks_ttl_s;
    o->timeout_ms = cfg->jwks_timeout_ms;
    if ((rc = fetch(url, o->timeout_ms, &body, &len, &max_age, &e))) {
        rc = ctx_error_set(err, CTX_ECONFIG, "auth.issuer: cannot read the discovery document:"
                           " %s", e.text);
        goto fail;
    }
    doc = ctx_json_loadb(body, len, 0, NULL);
    iss = json_string_value(json_object_get(doc, "issuer"));
    jwks = json_string_value(json_object_get(doc, "jwks_uri"));
    if (!iss || strcmp(iss, cfg->issuer)) {
        rc = ctx_error_set(err, CTX_ECONFIG, "auth.issuer: %s names issuer \"%s\", not \"%s\";"
                           " set auth.issuer to exactly the provider's issuer", url,
                           iss ? iss : "(none)", cfg->issuer);
        goto fail;
    }
    if (!jwks || !oidc_url_ok(jwks)) {
        rc = ctx_error_set(err, CTX_ECONFIG, "auth.issuer: %s: jwks_uri %s%s", url,
                           jwks ? jwks : "missing", jwks ? " is not https (nor loopback http)"
                                                         : "");
        goto fail;
    }
    if (!(o->issuer = ctx_strdup(cfg->issuer)) || !(o->jwks_uri = ctx_strdup(jwks))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "auth: out of memory");
        goto fail;
    }
    o->fetches = 1;
    o->fetched_at = o->good_at = now;
    if ((rc = load_keys(o, now, &o->keys, &o->expires_at, &e))) {
        rc = ctx_error_set(err, CTX_ECONFIG, "auth.issuer: the provider's keys: %s", e.text);
        goto fail;
    }
    json_decref(doc);
    ctx_free(body);
    *out = o;
    return CTX_OK;
fail:
    json_decref(doc);
    ctx_free(body);
    oidc_free(o);
    return rc;
}

void oidc_free(oidc *o)
{
    if (!o)
        return;
    if (o->keys && --o->keys->refs == 0)
        oidc_keyset_free(o->keys);
    pthread_mutex_destroy(&o->mu);
    ctx_free(o->issuer);
    ctx_free(o->jwks_uri);
    ctx_free(o);
}

static int has_kid(const oidc_keyset *s, const char *kid)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->keys[i].kid, kid))
            return 1;
    return 0;
}

/*
 * drop_stale - the keys the provider has not confirmed for OIDC_STALE_TTLS
 * jwks_ttl_s give way to an empty set (callers holding them finish with
 * them). Under o->mu. Out of memory: they stay until the next try.
 */
static void drop_stale(oidc *o)
{
    oidc_keyset *none = ctx_calloc(1, sizeof *none);

    if (!none)
        return;
    ctx_log(CTX_LOG_ERROR, "auth", "the keys of %s could not be refreshed for %lld s (%d x"
            " auth.jwks_ttl_s): dropped; its tokens are refused until a fetch succeeds",
            o->issuer, (long long)(OIDC_STALE_TTLS * o->ttl_s), OIDC_STALE_TTLS);
    none->refs = 1;
    if (--o->keys->refs == 0)
        oidc_keyset_free(o->keys);
    o->keys = none;
}

oidc_keyset *oidc_acquire(oidc *o, const char *want_kid, int64_t now)
{
    oidc_keyset *s, *fresh = NULL;
    int64_t expires = 0;
    int go = 0;
    ctx_error err;

    pthread_mutex_lock(&o->mu);
    s = o->keys;
    /* Decide under the lock, fetch without it: one thread fetches, the rest
     * answer from the keys they have. */
    if (!o->fetching &&
        (now >= o->expires_at ||
         (want_kid && !has_kid(s, want_kid) && now - o->fetched_at >= o->refresh_min_s))) {
        o->fetching = 1;
        o->fetched_at = now;
        o->fetches++;
        go = 1;
    }
    s->refs++;
    pthread_mutex_unlock(&o->mu);
    if (!go)
        return s;
    if (load_keys(o, now, &fresh, &expires, &err)) {
        ctx_log(CTX_LOG_WARN, "auth", "refreshing the keys of %s failed; the %zu known keys"
                " stay: %s", o->issuer, s->n, err.text);
        /* try again after refresh_min_s, not on every request */
        expires = now + (o->refresh_min_s > 0 ? o->refresh_min_s : 1);
    }
    pthread_mutex_lock(&o->mu);
    o->fetching = 0;
    if (fresh) {
        if (--o->keys->refs == 0)
            oidc_keyset_free(o->keys);
        o->keys = fresh;
        o->expires_at = expires;
        o->good_at = now;
        fresh->refs++;
        s->refs--; /* s is still held by this thread's caller's old ref; swap it */
        if (s->refs == 0)
            oidc_keyset_free(s);
        s = fresh;
        ctx_log(CTX_LOG_INFO, "auth", "keys of %s refreshed: %zu", o->issuer, fresh->n);
    } else {
        if (o->expires_at <= now)
            o->expires_at = expires;
        if (o->keys->n && now - o->good_at > OIDC_STALE_TTLS * o->ttl_s) {
            drop_stale(o);
            /* this request too is answered from what is left */
            if (--s->refs == 0)
                oidc_keyset_free(s);
            s = o->keys;
            s->refs++;
        }
    }
    pthread_mutex_unlock(&o->mu);
    return s;
}

void oidc_release(oidc *o, oidc_keyset *s)
{
    int last;

    if (!s)
        return;
    pthread_mutex_lock(&o->mu);
    last = --s->refs == 0;
    pthread_mutex_unlock(&o->mu);
    if (last)
        oidc_keyset_free(s);
}

int64_t oidc_fetches(oidc *o)
{
    int64_t n;
    pthread_mutex_lock(&o->mu);
    n = o->fetches;
    pthread_mutex_unlock(&o->mu);
    return n;
}
