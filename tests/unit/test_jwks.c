/*
 * test_jwks.c - retrieval/oidc.c's JWK and JWKS parsing without a network:
 * RSA (n, e) and P-256 (x, y) keys made here become PEM keys equal to the
 * originals; bad base64url, missing or short fields, points off the curve
 * and small RSA keys are refused naming the field; keys not for RS256/ES256
 * signing are skipped; a JWKS with a repeated kid or no usable key is
 * refused; only https or loopback http URLs pass; oidc_verify takes the
 * key's own signatures (ES256 as r || s) and nothing else.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string.h>

#include "core/util.h"
#include "retrieval/oidc.h"

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

static void set_bn(json_t *jwk, const char *name, EVP_PKEY *k, const char *param)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    char *s;
    int n;
    cr_assert(EVP_PKEY_get_bn_param(k, param, &bn));
    n = BN_bn2bin(bn, buf);
    s = b64url(buf, (size_t)n);
    json_object_set_new(jwk, name, json_string(s));
    ctx_free(s);
    BN_free(bn);
}

/* rsa_jwk - a new RSA key of bits (*key, new) and its JWK (new). */
static json_t *rsa_jwk(unsigned bits, EVP_PKEY **key)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "kty", "RSA", "kid", "r1", "use", "sig", "alg",
                          "RS256");
    *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    cr_assert(*key);
    set_bn(j, "n", *key, OSSL_PKEY_PARAM_RSA_N);
    set_bn(j, "e", *key, OSSL_PKEY_PARAM_RSA_E);
    return j;
}

static json_t *ec_jwk(EVP_PKEY **key)
{
    json_t *j = json_pack("{s:s,s:s,s:s}", "kty", "EC", "kid", "e1", "crv", "P-256");
    unsigned char pub[65];
    size_t len = 0;
    char *x, *y;
    *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    cr_assert(*key);
    cr_assert(EVP_PKEY_get_octet_string_param(*key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub,
                                              &len));
    cr_assert_eq(len, 65);
    x = b64url(pub + 1, 32);
    y = b64url(pub + 33, 32);
    json_object_set_new(j, "x", json_string(x));
    json_object_set_new(j, "y", json_string(y));
    ctx_free(x);
    ctx_free(y);
    return j;
}

/* same_key - the PEM of k is the public half of orig. */
static int same_key(const oidc_key *k, EVP_PKEY *orig)
{
    BIO *b = BIO_new_mem_buf(k->pem, (int)k->pem_len);
    EVP_PKEY *p = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    int eq = p && EVP_PKEY_eq(p, orig) == 1;
    EVP_PKEY_free(p);
    BIO_free(b);
    return eq;
}

static int parse(json_t *jwk, oidc_key *k, ctx_error *err)
{
    int rc = oidc_jwk_parse(jwk, k, err);
    json_decref(jwk);
    return rc;
}

Test(jwks, rsa_and_ec_jwks_become_the_same_public_keys)
{
    EVP_PKEY *rsa, *ec;
    oidc_key k;
    ctx_error err;

    cr_assert_eq(parse(rsa_jwk(2048, &rsa), &k, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(k.alg, JWT_ALG_RS256);
    cr_assert_str_eq(k.kid, "r1");
    cr_assert(same_key(&k, rsa), "the PEM is not the JWK's RSA key");
    oidc_key_clear(&k);
    cr_assert_eq(parse(ec_jwk(&ec), &k, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(k.alg, JWT_ALG_ES256);
    cr_assert_str_eq(k.kid, "e1");
    cr_assert(same_key(&k, ec), "the PEM is not the JWK's EC key");
    cr_assert(!same_key(&k, rsa));
    oidc_key_clear(&k);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

/* refused - jwk (new) is refused with code, the message naming field. */
static void refused(json_t *jwk, int code, const char *field)
{
    oidc_key k;
    ctx_error err;
    char *text = json_dumps(jwk, JSON_COMPACT);
    int rc = parse(jwk, &k, &err);
    cr_assert_eq(rc, code, "%s: got %d (%s)", text, rc, rc ? err.text : "ok");
    if (field)
        cr_assert(strstr(err.text, field), "%s: message \"%s\" does not name %s", text,
                  err.text, field);
    cr_assert_null(k.pem);
    free(text);
}

Test(jwks, bad_base64url_and_missing_fields_are_refused_by_name)
{
    EVP_PKEY *rsa, *ec;
    json_t *j;

    j = rsa_jwk(2048, &rsa);
    EVP_PKEY_free(rsa);
    json_object_set_new(j, "n", json_string("abc+def/ghi="));
    refused(j, CTX_EINVAL, "\"n\"");
    j = rsa_jwk(2048, &rsa);
    EVP_PKEY_free(rsa);
    json_object_del(j, "e");
    refused(j, CTX_EINVAL, "\"e\"");
    j = rsa_jwk(2048, &rsa);
    EVP_PKEY_free(rsa);
    json_object_set_new(j, "e", json_string("A"));  /* one char: not base64url */
    refused(j, CTX_EINVAL, "\"e\"");
    j = rsa_jwk(2048, &rsa);
    EVP_PKEY_free(rsa);
    json_object_set_new(j, "n", json_integer(5));
    refused(j, CTX_EINVAL, "\"n\"");
    j = rsa_jwk(2048, &rsa);
    EVP_PKEY_free(rsa);
    json_object_del(j, "kty");
    refused(j, CTX_EINVAL, "kty");
    j = rsa_jwk(2048, &rsa);
    EVP_PKEY_free(rsa);
    json_object_set_new(j, "kid", json_integer(7));
    refused(j, CTX_EINVAL, "kid");

    j = ec_jwk(&ec);
    EVP_PKEY_free(ec);
    json_object_del(j, "y");
    refused(j, CTX_EINVAL, "\"y\"");
    j = ec_jwk(&ec);
    EVP_PKEY_free(ec);
    json_object_set_new(j, "x", json_string("AAAA"));  /* 3 bytes, not 32 */
    refused(j, CTX_EINVAL, "\"x\"");
    j = ec_jwk(&ec);
    EVP_PKEY_free(ec);
    json_object_set_new(j, "x", json_string("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"));
    refused(j, CTX_EINVAL, "\"x\"");
    /* 32 bytes each, but (1, 1) is no point of P-256 */
    j = ec_jwk(&ec);
    EVP_PKEY_free(ec);
    json_object_set_new(j, "x", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"));
    json_object_set_new(j, "y", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"));
    refused(j, CTX_EINVAL, "P-256");
    refused(json_string("not an object"), CTX_EINVAL, "object");
}

Test(jwks, small_rsa_keys_are_refused)
{
    EVP_PKEY *rsa;
    refused(rsa_jwk(1024, &rsa), CTX_EINVAL, "2048");
    EVP_PKEY_free(rsa);
}

Test(jwks, keys_not_for_rs256_or_es256_signing_are_skipped)
{
    EVP_PKEY *rsa, *ec;
    json_t *j;

    j = rsa_jwk(2048, &rsa);
    EVP_PKEY_free(rsa);
    json_object_set_new(j, "use", json_string("enc"));
    refused(j, CTX_ENOTFOUND, NULL);
    j = rsa_jwk(2048, &rsa);
    EVP_PKEY_free(rsa);
    json_object_set_new(j, "alg", json_string("PS256"));
    refused(j, CTX_ENOTFOUND, NULL);
    j = ec_jwk(&ec);
    EVP_PKEY_free(ec);
    json_object_set_new(j, "crv", json_string("P-384"));
    refused(j, CTX_ENOTFOUND, NULL);
    j = ec_jwk(&ec);
    EVP_PKEY_free(ec);
    json_object_set_new(j, "alg", json_string("RS256"));
    refused(j, CTX_ENOTFOUND, NULL);
    refused(json_pack("{s:s,s:s}", "kty", "oct", "k", "c2VjcmV0"), CTX_ENOTFOUND, NULL);
    refused(json_pack("{s:s,s:s}", "kty", "OKP", "crv", "Ed25519"), CTX_ENOTFOUND, NULL);
}

static int jwks(json_t *keys, oidc_keyset **out, ctx_error *err)
{
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(doc, JSON_COMPACT);
    int rc = oidc_jwks_parse(text, strlen(text), out, err);
    free(text);
    json_decref(doc);
    return rc;
}

Test(jwks, a_set_keeps_its_usable_keys_and_refuses_repeats_and_emptiness)
{
    EVP_PKEY *rsa, *ec, *rsa2;
    json_t *enc = rsa_jwk(2048, &rsa2), *r = rsa_jwk(2048, &rsa), *e = ec_jwk(&ec);
    oidc_keyset *s = NULL;
    ctx_error err;

    json_object_set_new(enc, "use", json_string("enc"));
    json_object_set_new(enc, "kid", json_string("enc1"));
    cr_assert_eq(jwks(json_pack("[O,O,O]", enc, r, e), &s, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(s->n, 2, "the encryption key was kept");
    cr_assert_str_eq(s->keys[0].kid, "r1");
    cr_assert_str_eq(s->keys[1].kid, "e1");
    cr_assert(same_key(&s->keys[0], rsa) && same_key(&s->keys[1], ec));
    oidc_keyset_free(s);

    cr_assert_eq(jwks(json_pack("[O,O]", r, r), &s, &err), CTX_EINVAL);
    cr_assert(strstr(err.text, "kid \"r1\" is used twice"), "%s", err.text);
    cr_assert_eq(jwks(json_pack("[O]", enc), &s, &err), CTX_EINVAL);
    cr_assert(strstr(err.text, "no RS256 or ES256"), "%s", err.text);
    cr_assert_eq(jwks(json_array(), &s, &err), CTX_EINVAL);
    /* one malformed key spoils the set: it names the key */
    json_object_del(e, "x");
    cr_assert_eq(jwks(json_pack("[O,O]", r, e), &s, &err), CTX_EINVAL);
    cr_assert(strstr(err.text, "keys[1]") && strstr(err.text, "\"x\""), "%s", err.text);
    cr_assert_null(s);
    cr_assert_eq(oidc_jwks_parse("{\"keys\": 3}", 11, &s, &err), CTX_EINVAL);
    cr_assert_eq(oidc_jwks_parse("<html>", 6, &s, &err), CTX_EINVAL);
    json_decref(enc);
    json_decref(r);
    json_decref(e);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec);
}

Test(jwks, only_https_or_loopback_http_urls_pass)
{
    static const char *const good[] = {"https://idp.example.com", "https://idp.example.com/x",
                                       "http://127.0.0.1:8080", "http://localhost/realms/a",
                                       "http://[::1]:9000", "HTTPS://IDP.EXAMPLE.COM"};
    static const char *const bad[] = {"http://idp.example.com", "http://127.0.0.1.evil.test",
                                      "http://localhost.evil.test/", "ftp://x", "https://",
                                      "https:///path", "idp.example.com", "", "file:///etc",
                                      "http://localhost:@evil.example/jwks",
                                      "http://127.0.0.1:x@evil.example/",
                                      "https://user@idp.example.com/", "http://localhost:80x",
                                      "http://[::1]evil"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_assert(oidc_url_ok(good[i]), "%s refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert(!oidc_url_ok(bad[i]), "%s taken", bad[i]);
    cr_assert(!oidc_url_ok(NULL));
}

/* sign - base64url JWS signature (new) of data with key: RS256, or ES256 as r || s. */
static char *sign(EVP_PKEY *key, int ec, const char *data)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[512], rs[64] = {0};
    const unsigned char *p = sig;
    size_t len = sizeof sig;
    char *out;

    cr_assert(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1);
    cr_assert(EVP_DigestSign(md, sig, &len, (const unsigned char *)data, strlen(data)) == 1);
    EVP_MD_CTX_free(md);
    if (!ec)
        return b64url(sig, len);
    {
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
        const BIGNUM *r, *s;
        cr_assert(es);
        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, rs, 32);
        BN_bn2binpad(s, rs + 32, 32);
        ECDSA_SIG_free(es);
        out = b64url(rs, 64);
    }
    return out;
}

Test(jwks, a_key_verifies_its_own_signatures_and_nothing_else)
{
    static const char data[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbm4ifQ";
    EVP_PKEY *rsa, *ec, *other;
    oidc_key kr, ke, ko;
    ctx_error err;
    char *rs, *es, *os;

    cr_assert_eq(parse(rsa_jwk(2048, &rsa), &kr, &err), 0, "%s", err.text);
    cr_assert_eq(parse(ec_jwk(&ec), &ke, &err), 0, "%s", err.text);
    cr_assert_eq(parse(ec_jwk(&other), &ko, &err), 0, "%s", err.text);
    rs = sign(rsa, 0, data);
    es = sign(ec, 1, data);
    os = sign(other, 1, data);
    cr_assert(oidc_verify(&kr, data, strlen(data), rs, strlen(rs)));
    cr_assert(oidc_verify(&ke, data, strlen(data), es, strlen(es)));
    cr_assert(oidc_verify(&ko, data, strlen(data), os, strlen(os)));
    /* another key's signature, other data, a signature of the wrong kind */
    cr_assert(!oidc_verify(&ke, data, strlen(data), os, strlen(os)));
    cr_assert(!oidc_verify(&ke, data, strlen(data) - 1, es, strlen(es)));
    cr_assert(!oidc_verify(&kr, data, strlen(data), es, strlen(es)));
    cr_assert(!oidc_verify(&ke, data, strlen(data), rs, strlen(rs)));
    /* a flipped character, a cut signature, no signature, not base64url */
    es[5] = es[5] == 'A' ? 'B' : 'A';
    cr_assert(!oidc_verify(&ke, data, strlen(data), es, strlen(es)));
    cr_assert(!oidc_verify(&kr, data, strlen(data), rs, strlen(rs) - 4));
    cr_assert(!oidc_verify(&kr, data, strlen(data), "", 0));
    cr_assert(!oidc_verify(&kr, data, strlen(data), "+/==", 4));
    ctx_free(rs);
    ctx_free(es);
    ctx_free(os);
    oidc_key_clear(&kr);
    oidc_key_clear(&ke);
    oidc_key_clear(&ko);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(other);
}
