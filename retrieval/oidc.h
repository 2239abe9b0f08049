/*
 * oidc.h - the keys of an OpenID provider: its discovery document names a
 * JWKS, whose RSA (RS256) and P-256 (ES256) keys are kept by kid, fetched
 * again on an unknown kid (at most once per jwks_refresh_min_s) and when the
 * copy expires (Cache-Control max-age, else jwks_ttl_s). auth.c asks here for
 * the key a token names; the key's type decides the algorithm.
 *
 * Threads: any number may look keys up at once. A refresh is done by one
 * thread with no lock held while it fetches; the others go on with the keys
 * they have. A failed refresh keeps the old keys.
 */
#ifndef CTX_RETRIEVAL_OIDC_H
#define CTX_RETRIEVAL_OIDC_H

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/ctx.h"

typedef struct oidc oidc;

/* One usable key of a JWKS, as the PEM public key libjwt verifies with. */
typedef struct oidc_key {
    char *kid;          /* "" when the JWK has none */
    jwt_alg_t alg;      /* JWT_ALG_RS256 or JWT_ALG_ES256: the only one it checks */
    char *pem;          /* SubjectPublicKeyInfo PEM */
    size_t pem_len;
    EVP_PKEY *pkey;     /* the same key, for oidc_verify */
} oidc_key;

/* A set of keys, shared by reference: lookups hold one while they verify. */
typedef struct oidc_keyset {
    oidc_key *keys;
    size_t n;
    int refs;           /* changed under the owning oidc's mutex */
} oidc_keyset;

/*
 * oidc_jwk_parse - one JWK (borrowed object) into *out (caller frees with
 * oidc_key_clear). RSA needs n and e (2048 bits or more), EC needs crv
 * "P-256", x and y (a point on the curve). A JWK with "use" other than "sig"
 * or an "alg" other than the key's (RS256, ES256) is CTX_ENOTFOUND: skipped,
 * not an error. Bad base64url or a missing or wrong field is CTX_EINVAL
 * naming the field.
 */
int oidc_jwk_parse(json_t *jwk, oidc_key *out, ctx_error *err);
void oidc_key_clear(oidc_key *k);

/*
 * oidc_verify - 1 when sig (base64url, siglen bytes) is k's RS256 or ES256
 * signature (JWS, RFC 7518 section 3: PKCS #1 v1.5, or ECDSA r || s) over
 * data[0..len), else 0. Done here rather than by libjwt, whose 1.x refuses
 * the "at+jwt" typ of OAuth access tokens (RFC 9068).
 */
int oidc_verify(const oidc_key *k, const char *data, size_t len, const char *sig,
                size_t siglen);

/*
 * oidc_jwks_parse - the keys of a JWKS document (text[0..len)). Keys that are
 * not for signing with RS256 or ES256 are skipped; a malformed key, a
 * repeated kid or no usable key at all is CTX_EINVAL. *out new:
 * oidc_keyset_free.
 */
int oidc_jwks_parse(const char *text, size_t len, oidc_keyset **out, ctx_error *err);
void oidc_keyset_free(oidc_keyset *s);

/*
 * oidc_url_ok - 1 when url is https://..., or http:// to 127.0.0.1,
 * [::1] or localhost (development); 0 otherwise.
 */
int oidc_url_ok(const char *url);

/*
 * oidc_new - read <cfg->issuer>/.well-known/openid-configuration (its
 * "issuer" must equal cfg->issuer) and the JWKS its jwks_uri names, within
 * cfg->jwks_timeout_ms each. An issuer or jwks_uri that is neither https nor
 * loopback http, a fetch that fails or a JWKS without a usable key is
 * CTX_ECONFIG naming the field. *out new: oidc_free.
 */
int oidc_new(const ctx_auth_cfg *cfg, oidc **out, ctx_error *err);
void oidc_free(oidc *o);

/*
 * oidc_acquire - the current keys (a new reference: oidc_release), fetched
 * again first when they have expired, or when want_kid (NULL: none wanted)
 * is not among them and the last fetch is jwks_refresh_min_s old. now is
 * seconds since the epoch. Never NULL.
 */
oidc_keyset *oidc_acquire(oidc *o, const char *want_kid, int64_t now);
void oidc_release(oidc *o, oidc_keyset *s);

/* oidc_fetches - JWKS fetches tried since oidc_new (for tests and logs). */
int64_t oidc_fetches(oidc *o);

#endif
