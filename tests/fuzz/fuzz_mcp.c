/*
 * fuzz_mcp.c - libFuzzer target for the MCP message handler: any bytes in,
 * and the answer is either nothing (a notification) or one JSON-RPC object
 * with "jsonrpc": "2.0" and exactly one of result and error.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "retrieval/mcp.h"

static int f_search(void *arg, const char *q, json_t **results, json_t **extra,
                    ctx_error *err)
{
    (void)arg;
    (void)err;
    *extra = NULL;
    *results = json_pack("[{s:s,s:s,s:s}]", "id", "1", "title", q, "url", "u");
    return CTX_OK;
}

static int f_fetch(void *arg, const char *id, json_t **doc, ctx_error *err)
{
    (void)arg;
    (void)err;
    *doc = id[0] == '1' ? json_pack("{s:s,s:s,s:s,s:s}", "id", id, "title", "t", "text", "x",
                                    "url", "u")
                        : NULL;
    return CTX_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const mcp_backend be = {f_search, f_fetch, NULL};
    char *out = mcp_handle(&be, (const char *)data, size);
    const char *version;
    json_t *j;

    if (!out)
        return 0;
    j = json_loads(out, 0, NULL);
    FUZZ_CHECK(j && json_is_object(j), "answer is not a JSON object: %s", out);
    version = json_string_value(json_object_get(j, "jsonrpc"));
    FUZZ_CHECK(version && !strcmp(version, "2.0"), "no jsonrpc 2.0: %s", out);
    FUZZ_CHECK(!json_object_get(j, "result") != !json_object_get(j, "error"),
               "need exactly one of result and error: %s", out);
    json_decref(j);
    free(out);
    return 0;
}
