/*
 * mcp_service.h - the MCP tools over the retrieval service: search and
 * fetch run as svc_search / svc_fetch for one caller, so MCP answers are
 * the same permissions, agent grant, token budget and audit as the HTTP
 * API. Two transports:
 *
 *   POST /mcp  Streamable HTTP (one JSON answer per request; no SSE
 *              stream, no session), Bearer JWT like /v1, Origin checked;
 *              MCP-Protocol-Version, Mcp-Method and Mcp-Name go to
 *              mcp_handle_http, which sets the status; with
 *              /.well-known/oauth-protected-resource (RFC 9728).
 *   stdio      `ctxgate mcp`: one JSON-RPC message per line; the caller is
 *              CTXGATE_USER acting through CTXGATE_AGENT from the
 *              environment of whoever started it (cli_mcp refuses to start
 *              without a user or with an agent the config lacks).
 */
#ifndef CTX_RETRIEVAL_MCP_SERVICE_H
#define CTX_RETRIEVAL_MCP_SERVICE_H

#include <stdio.h>

#include "http.h"
#include "mcp.h"
#include "service.h"

/* The caller an MCP backend answers for; strings borrowed. */
typedef struct mcp_caller {
    svc *service;
    svc_identity who;
    /* set by a tool when a token budget refused it, or a replica's store
     * too far behind PostgreSQL (replica_gate_store): the transport answers
     * that tool call with a tool error carrying this text (budget_answer) */
    char spent[CTX_ERRMSG_MAX];
} mcp_caller;

/* mcp_service_backend - a backend whose tools run as caller (borrowed). */
mcp_backend mcp_service_backend(mcp_caller *caller);

/* mcp_http_register - fill the /mcp and protected-resource routes of srv. */
int mcp_http_register(http_server *srv, svc *service, const ctx_config *cfg);

/*
 * mcp_stdio - answer messages from in on out until end of input. Returns 0
 * at end of input.
 */
int mcp_stdio(svc *service, const svc_identity *who, FILE *in, FILE *out);

#endif
