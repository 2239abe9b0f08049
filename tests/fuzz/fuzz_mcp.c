/*
 * fuzz_mcp.c - libFuzzer target for the MCP message handler: any bytes in,
 * and the answer is either nothing (a notification) or one JSON-RPC object
 * with "jsonrpc": "2.0" and exactly one of result and error. An input
 * starting "#H:VERSION|METHOD|NAME\n" goes to mcp_handle_http with those
 * headers (the rest is the body), and its status must be one it documents.
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

/* http_headers - split "#H:a|b|c\n" at the start of *data into h (in hbuf). */
static int http_headers(const uint8_t **data, size_t *size, char *hbuf, size_t cap,
                        mcp_http_headers *h)
{
    const uint8_t *nl;
    char *f[3] = {NULL, NULL, NULL}, *p;
    size_t n;

    if (*size < 4 || memcmp(*data, "#H:", 3) || !(nl = memchr(*data, '\n', *size)))
        return 0;
    n = (size_t)(nl - *data) - 3;
    if (n >= cap || memchr(*data + 3, '\0', n))
        return 0;
    memcpy(hbuf, *data + 3, n);
    hbuf[n] = '\0';
    p = hbuf;
    for (int i = 0; i < 3 && p; i++) {
        f[i] = p;
        if ((p = strchr(p, '|')))
            *p++ = '\0';
    }
    h->protocol_version = f[0] && *f[0] ? f[0] : NULL;
    h->method = f[1] && *f[1] ? f[1] : NULL;
    h->name = f[2] && *f[2] ? f[2] : NULL;
    *size -= (size_t)(nl + 1 - *data);
    *data = nl + 1;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const mcp_backend be = {f_search, f_fetch, NULL};
    mcp_http_headers h;
    char hbuf[512], *out;
    const char *version;
    int status = 0;
    json_t *j;

    if (http_headers(&data, &size, hbuf, sizeof hbuf, &h)) {
        out = mcp_handle_http(&be, (const char *)data, size, &h, &status);
        FUZZ_CHECK(out ? status == 200 || status == 400 || status == 404 : status == 202,
                   "status %d with answer %s", status, out ? out : "(none)");
    } else {
        out = mcp_handle(&be, (const char *)data, size);
    }

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
