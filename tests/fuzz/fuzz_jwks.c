/*
 * fuzz_jwks.c - libFuzzer target for oidc_jwks_parse, the key set an
 * identity provider serves at its jwks_uri (outside input, fetched over the
 * network). Checks that a refusal says why, that an accepted set holds at
 * least one key, each with a PEM and a key object, that no two keys share
 * a kid, and that a key verifies no signature made of the input.
 */
#include <stdint.h>
#include <string.h>

#include "core/ctx.h"
#include "fuzz.h"
#include "retrieval/oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    oidc_keyset *ks = NULL;
    ctx_error err;
    int rc;

    memset(&err, 0, sizeof err);
    rc = oidc_jwks_parse((const char *)data, size, &ks, &err);
    if (rc) {
        FUZZ_CHECK(!ks, "a refused set came back");
        FUZZ_CHECK(err.text[0], "a refusal without a message (rc %d)", rc);
        return 0;
    }
    FUZZ_CHECK(ks && ks->n > 0, "an accepted set with no key");
    for (size_t i = 0; i < ks->n; i++) {
        const oidc_key *k = &ks->keys[i];
        FUZZ_CHECK(k->pem && k->pem_len && k->pkey, "key %zu has no PEM or key object", i);
        for (size_t j = 0; j < i && k->kid[0]; j++)
            FUZZ_CHECK(strcmp(k->kid, ks->keys[j].kid), "kid %s twice", k->kid);
        /* the input, taken as a signature over itself, is not one */
        FUZZ_CHECK(!oidc_verify(k, (const char *)data, size, (const char *)data, size),
                   "key %zu verified garbage", i);
    }
    oidc_keyset_free(ks);
    return 0;
}
