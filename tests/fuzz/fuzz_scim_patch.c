/*
 * fuzz_scim_patch.c - libFuzzer target for scim__patch, the SCIM PatchOp an
 * identity provider sends (outside input: paths, value filters such as
 * members[value eq "x"], and the variants of each provider). The first byte
 * picks a user or a group resource; the rest is the request body. Checks
 * that a body that is not JSON never reaches it, that a refusal is a 4xx
 * with a message, and that an accepted patch leaves an object.
 */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "core/ctx.h"
#include "fuzz.h"
#include "retrieval/scim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char user[] =
    "{\"schemas\": [\"" SCIM_USER_URN "\", \"" SCIM_ENTERPRISE_URN "\"], \"id\": \"u1\","
    " \"userName\": \"bob@corp.test\", \"active\": true, \"displayName\": \"Bob\","
    " \"emails\": [{\"value\": \"bob@corp.test\", \"type\": \"work\", \"primary\": true}],"
    " \"name\": {\"givenName\": \"Bob\", \"familyName\": \"Okafor\"},"
    " \"" SCIM_ENTERPRISE_URN "\": {\"department\": \"eng\"}}";
static const char group[] =
    "{\"schemas\": [\"" SCIM_GROUP_URN "\"], \"id\": \"g1\", \"displayName\": \"Engineering\","
    " \"members\": [{\"value\": \"u1\", \"display\": \"Bob\"}, {\"value\": \"u2\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int is_group;
    json_t *res, *patch;
    scim_fail f = {0, NULL};
    ctx_error err;
    int rc;

    if (size < 1)
        return 0;
    is_group = data[0] & 1;
    if (!(patch = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL)))
        return 0;
    res = json_loads(is_group ? group : user, 0, NULL);
    FUZZ_CHECK(res, "the seed resource is not JSON");
    memset(&err, 0, sizeof err);
    rc = scim__patch(res, patch, is_group ? SCIM_GROUP_URN : SCIM_USER_URN, &f, &err);
    if (rc) {
        FUZZ_CHECK(f.status >= 400 && f.status < 500, "a refusal with status %d", f.status);
        FUZZ_CHECK(err.text[0], "a refusal without a message");
    } else {
        FUZZ_CHECK(json_is_object(res), "an accepted patch left no object");
    }
    json_decref(res);
    json_decref(patch);
    return 0;
}
