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
 */
#ifndef CTX_RETRIEVAL_MCP_H
#define CTX_RETRIEVAL_MCP_H

#include <jansson.h>

#include "../core/ctx.h"

/* The protocol revisions this server speaks, newest first. */
extern const char *const mcp_protocol_versions[];

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

#endif
