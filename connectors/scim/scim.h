/*
 * scim.h - the options of a source of type "scim": a directory that an
 * identity provider provisions over SCIM 2.0 through `ctxgate serve`
 * (retrieval/scim.c). The connector itself reads nothing: it exists so
 * that the source is configured, validated and listed like any other.
 */
#ifndef CTX_CONNECTORS_SCIM_H
#define CTX_CONNECTORS_SCIM_H

#include "../../core/ctx.h"
#include "../../core/opts.h"

typedef struct scim_cfg {
    char *token_env;        /* variable holding the SCIM bearer token, or NULL */
    char *token_file;       /* file holding it, or NULL; neither: the admin token */
    char *user_principal;   /* "userName", "email" or "externalId" */
    ctx_strlist user_aliases;   /* of the same names: mapped to the principal */
    char *group_principal;  /* "displayName", "externalId" or "id" */
} scim_cfg;

extern const ctx_opt scim_opts[];

/*
 * scim_cfg_parse - the options in conn (borrowed; the source's connector
 * keys) into *out (ctx_opts_free(scim_opts, out) it), checked: attribute
 * names are among those above. CTX_ECONFIG naming the key otherwise.
 */
int scim_cfg_parse(json_t *conn, scim_cfg *out, ctx_error *err);

#endif
