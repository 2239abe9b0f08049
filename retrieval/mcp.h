/*
 * mcp.h - the Model Context Protocol server side, independent of the
 * transport: one JSON-RPC 2.0 message in, at most one out. `ctxgate mcp`
 * feeds it lines from stdin; the HTTP service feeds it POST /mcp bodies.
 *
 * Two tools, in the shape ChatGPT connectors and deep research expect:
 *   search(query) -> one text item holding {"results":[{"id","title","url"}]}
 *                    (and "withheld": sources left out, with why)
 *   fetch(id)     -> one text item holding {"id","title","text","url","metadata"}
 * each also as structuredContent. What they return is data from the
 * organization's documents: the tool descriptions and every result say it
 * is untrusted content, never instructions.
 *
 * Protocol revisions: 2026-07-28 (stateless: no handshake; every request
 * carries its version and the client's capabilities in params._meta;
 * server/discover lists what this server speaks) and the initialize-based
 * 2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05. Each message is
 * answered on its own: a request whose _meta names a version is served
 * under that revision, any other under the one its initialize agreed.
 */
#ifndef CTX_RETRIEVAL_MCP_H
#define CTX_RETRIEVAL_MCP_H

#include <jansson.h>

#include "../core/ctx.h"

/* The protocol revisions this server speaks, newest first. */
extern const char *const mcp_protocol_versions[];

/* The newest revision an initialize handshake can agree on. */
#define MCP_LEGACY_LATEST "2025-11-25"

typedef struct mcp_backend {
    /* *results: a new array of {"id","title","url"} (may be empty); *extra:
     * NULL, or a new object whose members join the answer ("withheld"). */
    int (*search)(void *arg, const char *query, json_t **results, json_t **extra,
                  ctx_error *err);
    /* *doc: a new {"id","title","text","url","metadata"}, or NULL when the
     * caller may not see it or it does not exist (the same answer). */
    int (*fetch)(void *arg, const char *id, json_t **doc, ctx_error *err);
    void *arg;
} mcp_backend;

/*
 * mcp_handle - answer one message (len bytes of JSON). Returns the answer
 * as new JSON text, or NULL for a notification (nothing to send). Never
 * fails: bad input gets a JSON-RPC error naming the problem.
 */
char *mcp_handle(const mcp_backend *be, const char *msg, size_t len);

/* The MCP request headers of one POST /mcp (each NULL when absent). */
typedef struct mcp_http_headers {
    const char *protocol_version;   /* MCP-Protocol-Version */
    const char *method;             /* Mcp-Method */
    const char *name;               /* Mcp-Name (may be =?base64?...?=) */
} mcp_http_headers;

/*
 * mcp_handle_http - mcp_handle for one POST /mcp body and its headers h.
 * *status gets the HTTP status to answer with: 202 with no answer (a
 * notification); 400 for an unsupported version (a header or _meta naming
 * one: UnsupportedProtocolVersion, -32022), a 2026-07-28 request without
 * its required _meta (-32602), or headers that do not match the body
 * (HeaderMismatch, -32020); 404 for a method a 2026-07-28 request names and
 * this server lacks (-32601); 200 otherwise (a JSON-RPC error, if any, in
 * the body, as the initialize-based revisions have it).
 */
char *mcp_handle_http(const mcp_backend *be, const char *msg, size_t len,
                      const mcp_http_headers *h, int *status);

#endif
