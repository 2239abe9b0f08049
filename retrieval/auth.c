/*
 * auth.c - bearer token verification and development minting (see auth.h).
 */
#include "auth.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../core/json.h"
#include "oidc.h"

typedef struct auth_key {
    jwt_alg_t alg;
    unsigned char *key;     /* the secret, or the PEM text */
    size_t len;
} auth_key;

struct auth {
    char *issuer, *audience;
    char *resource;         /* serve.public_url: an aud accepted too (RFC 8707), or NULL */
    int64_t skew;
    auth_key *keys;
    size_t nkeys;
    const auth_key *secret; /* the HS256 key, if any */
    oidc *idp;              /* the OpenID provider's keys, or NULL */
    char *user_claim;
    char **agent_claims;    /* tried in order */
    size_t nagent_claims;
};

static void key_wipe(auth_key *k)
{
    if (k->key) {
        OPENSSL_cleanse(k->key, k->len);
        ctx_free(k->key);
    }
}

void auth_free(auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nkeys; i++)
        key_wipe(&a->keys[i]);
    ctx_free(a->keys);
    oidc_free(a->idp);
    ctx_free(a->user_claim);
    for (size_t i = 0; i < a->nagent_claims; i++)
        ctx_free(a->agent_claims[i]);
    ctx_free(a->agent_claims);
    ctx_free(a->resource);
    ctx_free(a->issuer);
    ctx_free(a->audience);
    ctx_free(a);
}

static int add_key(auth *a, jwt_alg_t alg, unsigned char *key, size_t len, ctx_error *err)
{
    auth_key *v = ctx_realloc(a->keys, (a->nkeys + 1) * sizeof *v);
    if (!v)
        return ctx_error_set(err, CTX_ENOMEM, "auth: out of memory");
    a->keys = v;
    v[a->nkeys].alg = alg;
    v[a->nkeys].key = key;
    v[a->nkeys].len = len;
    a->nkeys++;
    return CTX_OK;
}

/* pem_alg - the algorithm a PEM public key is for, or JWT_ALG_INVAL. */
static jwt_alg_t pem_alg(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
    jwt_alg_t alg = JWT_ALG_INVAL;

    if (k && EVP_PKEY_base_id(k) == EVP_PKEY_RSA && EVP_PKEY_bits(k) >= 2048)
        alg = JWT_ALG_RS256;
    else if (k && EVP_PKEY_base_id(k) == EVP_PKEY_EC && EVP_PKEY_bits(k) == 256)
        alg = JWT_ALG_ES256;
    EVP_PKEY_free(k);
    BIO_free(b);
    return alg;
}

/* claims_new - which claims name the user and the agent, and the resource. */
static int claims_new(auth *a, const ctx_auth_cfg *cfg, ctx_error *err)
{
    static const char *const dflt[] = {"act.sub"};
    const char *const *v = cfg->agent_claims.n ? (const char *const *)cfg->agent_claims.v
                                               : dflt;
    size_t n = cfg->agent_claims.n ? cfg->agent_claims.n : 1;

    if (!(a->user_claim = ctx_strdup(cfg->user_claim && *cfg->user_claim ? cfg->user_claim
                                                                         : "sub")) ||
        !(a->agent_claims = ctx_calloc(n, sizeof *a->agent_claims)) ||
        (cfg->resource && *cfg->resource && !(a->resource = ctx_strdup(cfg->resource))))
        return ctx_error_set(err, CTX_ENOMEM, "auth: out of memory");
    for (; a->nagent_claims < n; a->nagent_claims++)
        if (!(a->agent_claims[a->nagent_claims] = ctx_strdup(v[a->nagent_claims])))
            return ctx_error_set(err, CTX_ENOMEM, "auth: out of memory");
    return CTX_OK;
}

int auth_new(const ctx_auth_cfg *cfg, auth **out, ctx_error *err)
{
    const char *env = cfg->hs256_secret_env && *cfg->hs256_secret_env
                          ? getenv(cfg->hs256_secret_env) : NULL;
    auth *a;
    char *text = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    if (!(a = ctx_calloc(1, sizeof *a)) || !(a->issuer = ctx_strdup(cfg->issuer)) ||
        !(a->audience = ctx_strdup(cfg->audience))) {
        auth_free(a);
        return ctx_error_set(err, CTX_ENOMEM, "auth: out of memory");
    }
    a->skew = cfg->clock_skew_s;
    if ((rc = claims_new(a, cfg, err)))
        goto fail;
    if (env && *env) {
        text = ctx_strdup(env);
        len = strlen(env);
    } else if (cfg->hs256_secret_file && *cfg->hs256_secret_file) {
        if (ctx_read_file(cfg->hs256_secret_file, &text, &len)) {
            rc = ctx_error_set(err, CTX_ECONFIG, "auth.hs256_secret_file: cannot read %s",
                               cfg->hs256_secret_file);
            goto fail;
        }
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            text[--len] = '\0';
    }
    if (text) {
        if (len < 32) {
            OPENSSL_cleanse(text, len);
            ctx_free(text);
            rc = ctx_error_set(err, CTX_ECONFIG, "auth: the HS256 secret is %zu bytes; use at"
                               " least 32 random bytes", len);
            goto fail;
        }
        if ((rc = add_key(a, JWT_ALG_HS256, (unsigned char *)text, len, err))) {
            ctx_wipe_free(text);
            goto fail;
        }
        a->secret = NULL; /* set below: keys may move while growing */
    }
    for (size_t i = 0; i < cfg->public_keys.n; i++) {
        const char *path = cfg->public_keys.v[i];
        jwt_alg_t alg;
        if (ctx_read_file(path, &text, &len)) {
            rc = ctx_error_set(err, CTX_ECONFIG, "auth.public_keys[%zu]: cannot read %s", i,
                               path);
            goto fail;
        }
        if ((alg = pem_alg(text, len)) == JWT_ALG_INVAL) {
            ctx_free(text);
            rc = ctx_error_set(err, CTX_ECONFIG, "auth.public_keys[%zu]: %s is not a PEM public"
                               " key of RSA (2048 bits or more, RS256) or P-256 (ES256)", i,
                               path);
            goto fail;
        }
        if ((rc = add_key(a, alg, (unsigned char *)text, len, err))) {
            ctx_free(text);
            goto fail;
        }
    }
    for (size_t i = 0; i < a->nkeys; i++)
        if (a->keys[i].alg == JWT_ALG_HS256)
            a->secret = &a->keys[i];
    if (cfg->discovery && (rc = oidc_new(cfg, &a->idp, err)))
        goto fail;
    if (!a->nkeys && !a->idp) {
        rc = ctx_error_set(err, CTX_ECONFIG, "auth: no key to check tokens with; set %s (an"
                           " HS256 secret), auth.hs256_secret_file, auth.public_keys or"
                           " auth.discovery with the provider's URL in auth.issuer",
                           cfg->hs256_secret_env && *cfg->hs256_secret_env
                               ? cfg->hs256_secret_env : "auth.hs256_secret_env");
        goto fail;
    }
    *out = a;
    return CTX_OK;
fail:
    auth_free(a);
    return rc;
}

/* json_part - a base64url segment decoded as a JSON object (new), or NULL. */
static json_t *json_part(const char *s, size_t n)
{
    unsigned char *buf = ctx_malloc(n * 3 / 4 + 2);
    json_t *j = NULL;
    long len;

    if (!buf)
        return NULL;
    if ((len = ctx_b64_decode(s, n, 1, buf)) > 0)
        j = ctx_json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    ctx_free(buf);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* hs256_ok - the signature is the HMAC of header.payload under the secret. */
static int hs256_ok(const auth_key *k, const char *token, size_t signed_len, const char *sig,
                    size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE], given[64];
    unsigned int maclen = 0;
    long glen;

    if (siglen > 80 || (glen = ctx_b64_decode(sig, siglen, 1, given)) != 32)
        return 0;
    if (!HMAC(EVP_sha256(), k->key, (int)k->len, (const unsigned char *)token, signed_len, mac,
              &maclen) || maclen != 32)
        return 0;
    return CRYPTO_memcmp(mac, given, 32) == 0;
}

static int deny(ctx_error *err, const char *why)
{
    return ctx_error_set(err, CTX_EAUTH, "token rejected: %s", why);
}

static int aud_ok(json_t *aud, const char *want)
{
    size_t i;
    json_t *v;

    if (!want)
        return 0;
    if (json_is_string(aud))
        return !strcmp(json_string_value(aud), want);
    json_array_foreach(aud, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), want))
            return 1;
    return 0;
}

/*
 * claim_at - the claim at path in claims (borrowed), or NULL. A name that
 * is a claim as it stands wins (namespaced claims carry dots); otherwise
 * "a.b" is member b of object a.
 */
static json_t *claim_at(json_t *claims, const char *path)
{
    json_t *v = json_object_get(claims, path);
    const char *dot;

    if (v)
        return v;
    while ((dot = strchr(path, '.')) && json_is_object(claims)) {
        claims = json_object_getn(claims, path, (size_t)(dot - path));
        path = dot + 1;
    }
    return json_is_object(claims) ? json_object_get(claims, path) : NULL;
}

/*
 * name_from - copy the claim at path into buf (len bytes). 0 when absent,
 * 1 when copied, -1 when present but not a non-empty string that fits.
 */
static int name_from(json_t *claims, const char *path, char *buf, size_t len)
{
    json_t *v = claim_at(claims, path);
    const char *dot = strchr(path, '.');

    if (!v) {
        /* "act.sub" with an act that is no object is malformed, not absent */
        if (dot && !json_object_get(claims, path) &&
            json_object_getn(claims, path, (size_t)(dot - path)))
            return -1;
        return 0;
    }
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= len ||
        strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    snprintf(buf, len, "%s", json_string_value(v));
    return 1;
}

/* try_key - the claims (new) of token when key (a PEM or the secret) of alg verifies it. */
static json_t *try_key(jwt_alg_t alg, const unsigned char *key, size_t len, const char *token)
{
    jwt_t *jwt = NULL;
    char *grants = NULL;
    json_t *claims = NULL;

    if (jwt_decode(&jwt, token, key, (int)len) == 0 && jwt && jwt_get_alg(jwt) == alg &&
        (grants = jwt_get_grants_json(jwt, NULL)))
        claims = ctx_json_loads(grants, 0, NULL);
    free(grants);
    jwt_free(jwt);
    return claims;
}

/*
 * verify_sig - the claims (new) of the token when a key made for alg
 * verifies it: the provider's key named by kid (or each of its keys of alg
 * when the token names none), then the static keys. NULL otherwise; *why
 * says which.
 */
static json_t *verify_sig(const auth *a, const char *token, size_t signed_len, jwt_alg_t alg,
                          const char *kid, int64_t now, const char **why)
{
    const char *sig = token + signed_len + 1, *dot1 = strchr(token, '.');
    json_t *claims = NULL;

    *why = "bad signature, or no key for its algorithm";
    if (alg == JWT_ALG_INVAL) {
        *why = "algorithm not accepted";
        return NULL;
    }
    if (a->idp && alg != JWT_ALG_HS256) {
        oidc_keyset *ks = oidc_acquire(a->idp, kid, now);
        int named = 0, ok = 0;
        for (size_t i = 0; i < ks->n && !ok; i++) {
            const oidc_key *k = &ks->keys[i];
            if (kid && strcmp(k->kid, kid))
                continue;
            named = 1;
            ok = k->alg == alg && oidc_verify(k, token, signed_len, sig, strlen(sig));
        }
        oidc_release(a->idp, ks);
        if (ok) {
            if (!(claims = json_part(dot1 + 1, signed_len - (size_t)(dot1 + 1 - token))))
                *why = "claims are not base64url JSON";
            return claims;
        }
        if (kid && !named && !a->nkeys)
            *why = "unknown kid (the provider's JWKS has no such key)";
    }
    for (size_t i = 0; i < a->nkeys && !claims; i++) {
        const auth_key *k = &a->keys[i];
        if (k->alg != alg)
            continue;
        if (k->alg == JWT_ALG_HS256 && !hs256_ok(k, token, signed_len, sig, strlen(sig)))
            continue;
        claims = try_key(alg, k->key, k->len, token);
    }
    return claims;
}

int auth_verify(const auth *a, const char *token, int64_t now, auth_identity *id,
                ctx_error *err)
{
    const char *dot1, *dot2, *alg_name, *kid = NULL, *why;
    json_t *hdr = NULL, *claims = NULL, *v;
    jwt_alg_t alg;
    size_t n;
    int rc = CTX_EAUTH, got;

    memset(id, 0, sizeof *id);
    if (!token || (n = strlen(token)) == 0 || n > AUTH_TOKEN_MAX)
        return deny(err, "missing or too long");
    if (!(dot1 = strchr(token, '.')) || !(dot2 = strchr(dot1 + 1, '.')) ||
        strchr(dot2 + 1, '.') || dot1 == token || dot2 == dot1 + 1 || !dot2[1])
        return deny(err, "not a signed JWT (three non-empty parts)");
    if (!(hdr = json_part(token, (size_t)(dot1 - token))))
        return deny(err, "header is not base64url JSON");
    alg_name = json_string_value(json_object_get(hdr, "alg"));
    if (!alg_name || !strcmp(alg_name, "none") || !strcasecmp(alg_name, "none")) {
        rc = deny(err, "alg none is not accepted");
        goto done;
    }
    if (json_object_get(hdr, "crit")) {
        rc = deny(err, "critical header extensions are not supported");
        goto done;
    }
    if ((v = json_object_get(hdr, "kid")) &&
        (!(kid = json_string_value(v)) || strlen(kid) != json_string_length(v))) {
        rc = deny(err, "kid is not a string");
        goto done;
    }
    alg = !strcmp(alg_name, "HS256")   ? JWT_ALG_HS256
          : !strcmp(alg_name, "RS256") ? JWT_ALG_RS256
          : !strcmp(alg_name, "ES256") ? JWT_ALG_ES256
                                       : JWT_ALG_INVAL;
    /* The keys decide: only a key made for the header's algorithm is tried. */
    if (!(claims = verify_sig(a, token, (size_t)(dot2 - token), alg, kid, now, &why))) {
        rc = deny(err, why);
        goto done;
    }
    v = json_object_get(claims, "exp");
    if (!json_is_integer(v)) {
        rc = deny(err, "exp missing");
        goto done;
    }
    id->exp = json_integer_value(v);
    if (now > id->exp + a->skew) {
        rc = deny(err, "expired");
        goto done;
    }
    v = json_object_get(claims, "nbf");
    if (v && (!json_is_integer(v) || now + a->skew < json_integer_value(v))) {
        rc = deny(err, "not valid yet (nbf)");
        goto done;
    }
    v = json_object_get(claims, "iss");
    if (!json_is_string(v) || strcmp(json_string_value(v), a->issuer)) {
        rc = deny(err, v ? "wrong issuer" : "iss missing");
        goto done;
    }
    v = json_object_get(claims, "aud");
    if (!v || (!aud_ok(v, a->audience) && !aud_ok(v, a->resource))) {
        rc = deny(err, v ? "wrong audience" : "aud missing");
        goto done;
    }
    if (name_from(claims, a->user_claim, id->user, sizeof id->user) != 1) {
        rc = ctx_error_set(err, CTX_EAUTH, "token rejected: %s (the user) missing or not a"
                           " short string", a->user_claim);
        goto done;
    }
    for (size_t i = 0; i < a->nagent_claims; i++) {
        if ((got = name_from(claims, a->agent_claims[i], id->agent, sizeof id->agent)) < 0) {
            rc = ctx_error_set(err, CTX_EAUTH, "token rejected: %s (the agent) malformed",
                               a->agent_claims[i]);
            goto done;
        }
        if (got)
            break;
    }
    rc = CTX_OK;
done:
    if (rc)
        memset(id, 0, sizeof *id);
    json_decref(claims);
    json_decref(hdr);
    return rc;
}

int auth_mint(const auth *a, const char *user, const char *agent, int64_t ttl, char **token,
              ctx_error *err)
{
    jwt_t *jwt = NULL;
    json_t *act = NULL;
    char *actjs = NULL;
    int64_t now = ctx_now_ms() / 1000;
    int rc = CTX_OK;

    *token = NULL;
    if (!a->secret)
        return ctx_error_set(err, CTX_ECONFIG, "token mint: no HS256 secret configured (set"
                             " auth.hs256_secret_env's variable or auth.hs256_secret_file)");
    if (jwt_new(&jwt) || jwt_set_alg(jwt, JWT_ALG_HS256, a->secret->key, (int)a->secret->len) ||
        jwt_add_grant(jwt, "iss", a->issuer) || jwt_add_grant(jwt, "aud", a->audience) ||
        jwt_add_grant(jwt, "sub", user) || jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)(now + ttl)))
        rc = ctx_error_set(err, CTX_ENOMEM, "token mint: libjwt failed");
    if (!rc && agent) {
        act = json_pack("{s:{s:s}}", "act", "sub", agent);
        actjs = act ? ctx_json_text(act, JSON_COMPACT) : NULL;
        if (!actjs || jwt_add_grants_json(jwt, actjs))
            rc = ctx_error_set(err, CTX_ENOMEM, "token mint: libjwt failed");
    }
    if (!rc && !(*token = jwt_encode_str(jwt)))
        rc = ctx_error_set(err, CTX_ENOMEM, "token mint: libjwt failed");
    free(actjs);
    json_decref(act);
    jwt_free(jwt);
    return rc;
}
