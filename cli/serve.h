/*
 * serve.h - the retrieval service's commands: `ctxgate serve` (the HTTP API
 * with the maintenance agent in the same process), `ctxgate token mint`
 * (development tokens), `ctxgate audit` and `ctxgate usage` (the audit log).
 */
#ifndef CTX_CLI_SERVE_H
#define CTX_CLI_SERVE_H

#define CLI_SERVE_USAGE                                                                  \
    "serve [--listen HOST:PORT] [--no-agent]\n"                                          \
    "                        the HTTP API (POST /v1/search, GET /v1/documents/ID,\n"     \
    "                        /healthz, /readyz, admin-only /metrics), MCP at /mcp\n"     \
    "                        (POST, Bearer JWT; 2026-07-28, 2025-11-25, 2025-06-18),\n"  \
    "                        SCIM 2.0 at /scim/v2/ (a scim source's token), the admin\n"  \
    "                        console at /console (/v1/admin/..., the admin token)\n"     \
    "                        and the maintenance agent"
#define CLI_TOKEN_USAGE                                                                  \
    "token mint --user U [--agent A] [--ttl 1h]\n"                                       \
    "                        a development token (HS256, the configured secret)"
#define CLI_AUDIT_USAGE                                                                  \
    "audit [--user U] [--agent A] [--since T] [--limit N] [--json]\n"                    \
    "                        searches and fetches served (T: ISO 8601 or 1h, 2d ago)"
#define CLI_MCP_USAGE                                                                    \
    "mcp                     the MCP server on stdio (tools search and fetch) for\n"     \
    "                        CTXGATE_USER acting through CTXGATE_AGENT (one of the\n"    \
    "                        config's \"agents\"; both are required)"
#define CLI_USAGE_USAGE                                                                  \
    "usage [--since T] [--json]\n"                                                       \
    "                        tokens served per user and per agent, and each token\n"   \
    "                        budget's use, remainder and reset time"

/* Each returns the exit status; argv[0] is the command. config_path as for main. */
int cli_serve(int argc, char **argv, const char *config_path);
int cli_token(int argc, char **argv, const char *config_path);
int cli_audit(int argc, char **argv, const char *config_path);
int cli_usage(int argc, char **argv, const char *config_path);
int cli_mcp(int argc, char **argv, const char *config_path);

#endif
