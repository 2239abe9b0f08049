/*
 * auth.h - bearer tokens: who a request is from. A JWT names the user in
 * `sub` and the agent acting for them in `act.sub` (RFC 8693 delegation).
 *
 * The key decides the algorithm, never the token: an HS256 secret checks
 * HS256 tokens only, an RSA public key RS256 only, a P-256 key ES256 only.
 * A token whose header names any other algorithm (alg "none", HS256 against
 * an RSA key) is refused before its signature is looked at. HS256 MACs are
 * computed here and compared in constant time (CRYPTO_memcmp); RS256 and
 * ES256 are verified by libjwt. exp, iss and aud are required; exp and nbf
 * get the configured clock skew.
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
    char user[256];     /* sub */
    char agent[256];    /* act.sub, "" when the token names none */
    int64_t exp;        /* seconds since the epoch */
} auth_identity;

/*
 * auth_new - the verifier of cfg (borrowed during the call): the HS256
 * secret from the environment variable or file, and the PEM public keys.
 * No key at all, a secret under 32 bytes, or a key neither RSA nor P-256
 * is CTX_ECONFIG. *out new: auth_free.
 */
int auth_new(const ctx_auth_cfg *cfg, auth **out, ctx_error *err);
void auth_free(auth *a);

/*
 * auth_verify - check token at time now (seconds since the epoch). CTX_OK
 * fills *id; CTX_EAUTH names what is wrong ("expired", "wrong audience",
 * ...) in err, for logs: callers answer every failure alike.
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
