/*
 * fuzz_search_request.c - libFuzzer target for the body of POST /v1/search
 * (svc_request_parse): any bytes in, and either a refusal with a message
 * naming the problem, or a request whose every field is in range: a
 * non-empty query of at most SVC_QUERY_MAX bytes, k 0 or 1..1000, a known
 * mode, names non-empty and as many as counted, max_tokens 0 or positive.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "retrieval/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    svc_request req;
    ctx_error err;
    int rc;

    memset(&err, 0, sizeof err);
    rc = svc_request_parse((const char *)data, size, &req, &err);
    if (rc) {
        FUZZ_CHECK(rc == CTX_EINVAL || rc == CTX_ENOMEM, "unexpected code %d", rc);
        FUZZ_CHECK(err.text[0] && memchr(err.text, ':', sizeof err.text),
                   "a refusal without a message naming the field: \"%s\"", err.text);
    } else {
        FUZZ_CHECK(req.query && *req.query && strlen(req.query) <= SVC_QUERY_MAX, "query");
        FUZZ_CHECK(req.k >= 0 && req.k <= 1000, "k %d", req.k);
        FUZZ_CHECK(!req.mode || !strcmp(req.mode, "lexical") || !strcmp(req.mode, "vector") ||
                       !strcmp(req.mode, "hybrid"),
                   "mode %s", req.mode);
        FUZZ_CHECK(req.max_tokens >= 0, "max_tokens");
        for (size_t i = 0; i < req.nsources; i++)
            FUZZ_CHECK(req.sources[i] && *req.sources[i], "sources[%zu]", i);
        for (size_t i = 0; i < req.nlabels; i++)
            FUZZ_CHECK(req.labels[i] && *req.labels[i], "labels[%zu]", i);
    }
    svc_request_free(&req);
    return 0;
}
