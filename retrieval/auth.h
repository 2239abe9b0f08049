/*
 * auth.h - bearer tokens: who a request is from. A JWT names the user in
 * auth.user_claim (`sub`) and the agent acting for them in the first present
 * of auth.agent_claims (`act.sub`, RFC 8693 delegation; or `azp`, ...).
 * With auth.discovery the keys are an OpenID provider's JWKS (oidc.h), beside
 * any static ones.
 *
 * The key decides the algorithm, never the token: an HS256 secret checks
 * HS256 tokens only, an RSA public key RS256 only, a P-256 key ES256 only.
 * A token whose header names any other algorithm (alg "none", HS256 against
 * an RSA key) is refused before its signature is looked at. HS256 MACs are
 * computed here and compared in constant time (CRYPTO_memcmp); RS256 and
 * ES256 are verified by libjwt with static keys, by oidc_verify with the
 * provider's (chosen by kid). exp, iss and aud are required (aud must hold
 * auth.audience or serve.public_url, RFC 8707); exp and nbf get the
 * configured clock skew.
 */
#ifndef CTX_RETRIEVAL_AUTH_H
#define CTX_RETRIEVAL_AUTH_H

#include <stdint.h>

#include "../core/config.h"
#include "../core/ctx.h"

typedef struct auth auth;

/* The longest token accepted, in bytes. */
#define AUTH_TOKEN_MAX 8192

typedef struct auth_identity {
    char user[256];     /* the user claim (sub) */
    char agent[256];    /* the agent claim (act.sub), "" when the token names none */
    int64_t exp;        /* seconds since the epoch */
} auth_identity;

/*
 * auth_new - the verifier of cfg (borrowed during the call): the HS256
 * secret from the environment variable or file, the PEM public keys, and
 * with cfg->discovery the provider's keys, fetched now (oidc_new). No key
 * at all, a secret under 32 bytes, a key neither RSA nor P-256, or a
 * provider whose keys cannot be read is CTX_ECONFIG. *out new: auth_free.
 */
int auth_new(const ctx_auth_cfg *cfg, auth **out, ctx_error *err);
void auth_free(auth *a);

/*
 * auth_verify - check token at time now (seconds since the epoch). CTX_OK
 * fills *id; CTX_EAUTH names what is wrong ("expired", "wrong audience",
 * ...) in err, for logs: callers answer every failure alike. Thread-safe;
 * may fetch the provider's keys again (oidc_acquire), within
 * auth.jwks_timeout_ms, in one calling thread at a time.
 */
int auth_verify(const auth *a, const char *token, int64_t now, auth_identity *id,
                ctx_error *err);

/*
 * auth_mint - a new HS256 token (caller frees) for user acting through
 * agent (NULL: none) valid for ttl seconds, with the configured issuer and
 * audience. For development: needs the HS256 secret.
 */
int auth_mint(const auth *a, const char *user, const char *agent, int64_t ttl, char **token,
              ctx_error *err);

#endif
