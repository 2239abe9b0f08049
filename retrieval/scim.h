/*
 * scim.h - SCIM 2.0 provisioning (RFC 7643, RFC 7644) in `ctxgate serve`:
 * an identity provider creates, replaces, patches and deletes Users and
 * Groups under /scim/v2, and they become the principal facts of the
 * configured source of type "scim" (indexer/store_scim.h), a directory.
 * Errors are SCIM errors (schemas, status, scimType, detail). See
 * docs/scim.md for the endpoints and docs/architecture.md for the design.
 */
#ifndef CTX_RETRIEVAL_SCIM_H
#define CTX_RETRIEVAL_SCIM_H

#include <jansson.h>

#include "../core/config.h"
#include "../core/ctx.h"
#include "http.h"

typedef struct scim scim;

/*
 * scim_open - the SCIM service of cfg's source of type "scim" (borrowed;
 * must outlive it), writing to the store at store_path through a
 * connection of its own. *out is new (scim_close it), or NULL when no
 * source is of type "scim". Two such sources, bad options or a token
 * shorter than 32 bytes: CTX_ECONFIG naming the key.
 */
int scim_open(const ctx_config *cfg, const char *store_path, scim **out, ctx_error *err);
void scim_close(scim *s);

/*
 * scim_handle - answer a request under /scim/v2/ (req borrowed). base is
 * the service's public base URL, for meta.location. admin: the request
 * carried the serve admin token, which opens SCIM when the source names
 * no token of its own. s NULL: 404, SCIM is not configured.
 */
void scim_handle(scim *s, const char *base, const http_req *req, int admin, http_resp *resp);

/* ---- between scim.c and scim_patch.c ---- */

#define SCIM_USER_URN "urn:ietf:params:scim:schemas:core:2.0:User"
#define SCIM_GROUP_URN "urn:ietf:params:scim:schemas:core:2.0:Group"
#define SCIM_ENTERPRISE_URN "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define SCIM_PATCH_URN "urn:ietf:params:scim:api:messages:2.0:PatchOp"

/* A refusal: the HTTP status and the scimType (static, or NULL). */
typedef struct scim_fail {
    int status;
    const char *type;
} scim_fail;

/*
 * scim__patch - apply the PatchOp request patch (borrowed) to res (the
 * resource as served, members included), in place. core is the resource's
 * core schema URN. A refusal fills *f and err (the detail) and returns
 * CTX_EINVAL; res may then be half changed (the caller drops it).
 */
int scim__patch(json_t *res, const json_t *patch, const char *core, scim_fail *f,
                ctx_error *err);

/* scim__get - o's member named key, compared ASCII case-insensitively; borrowed. */
json_t *scim__get(const json_t *o, const char *key, const char **real);

#endif
