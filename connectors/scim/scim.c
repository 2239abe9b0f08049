/*
 * scim.c - the "scim" source type: its options (shared with the SCIM
 * endpoints of `ctxgate serve`) and a connector that has no streams. The
 * source's users, groups and memberships arrive over SCIM, never by a sync,
 * so a sync of it reads nothing and changes nothing.
 */
#include "scim.h"

#include <stddef.h>
#include <string.h>

#include "../../core/json.h"
#include "../../core/util.h"
#include "../registry.h"

const ctx_opt scim_opts[] = {
    {"token_env", CTX_OPT_STRING, NULL, offsetof(scim_cfg, token_env), 0,
     "environment variable holding the bearer token the identity provider sends"
     " (32 bytes or more); unset with token_file too: the serve admin token", NULL, 0},
    {"token_file", CTX_OPT_STRING, NULL, offsetof(scim_cfg, token_file), 0,
     "file holding that token, when token_env is not set", NULL, 0},
    {"user_principal", CTX_OPT_STRING, "userName", offsetof(scim_cfg, user_principal), 0,
     "the User attribute that names the principal user:<value>, as tokens name the user:"
     " userName, email (the primary one) or externalId", NULL, 0},
    {"user_aliases", CTX_OPT_STRLIST, NULL, offsetof(scim_cfg, user_aliases), 0,
     "User attributes (userName, email, externalId) whose user:<value> names other"
     " sources' ACLs use for the same person; mapped to the principal (default"
     " [\"email\"])", NULL, 0},
    {"group_principal", CTX_OPT_STRING, "displayName", offsetof(scim_cfg, group_principal), 0,
     "the Group attribute that names the principal group:<value>: displayName,"
     " externalId or id", NULL, 0},
    CTX_OPT_END,
};

static int one_of(const char *v, const char *const *names)
{
    for (; *names; names++)
        if (!strcmp(v, *names))
            return 1;
    return 0;
}

int scim_cfg_parse(json_t *conn, scim_cfg *out, ctx_error *err)
{
    static const char *const user_attrs[] = {"userName", "email", "externalId", NULL};
    static const char *const group_attrs[] = {"displayName", "externalId", "id", NULL};
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = ctx_opts_parse(scim_opts, conn, out, "", err)))
        return rc;
    if (!out->user_aliases.v && json_object_get(conn, "user_aliases") == NULL) {
        if (!(out->user_aliases.v = ctx_calloc(2, sizeof(char *))) ||
            !(out->user_aliases.v[0] = ctx_strdup("email")))
            rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        else
            out->user_aliases.n = 1;
    }
    if (!rc && !one_of(out->user_principal, user_attrs))
        rc = ctx_error_set(err, CTX_ECONFIG, "user_principal: \"%s\" is not userName, email"
                           " or externalId", out->user_principal);
    for (size_t i = 0; !rc && i < out->user_aliases.n; i++)
        if (!one_of(out->user_aliases.v[i], user_attrs))
            rc = ctx_error_set(err, CTX_ECONFIG, "user_aliases[%zu]: \"%s\" is not userName,"
                               " email or externalId", i, out->user_aliases.v[i]);
    if (!rc && !one_of(out->group_principal, group_attrs))
        rc = ctx_error_set(err, CTX_ECONFIG, "group_principal: \"%s\" is not displayName,"
                           " externalId or id", out->group_principal);
    if (rc)
        ctx_opts_free(scim_opts, out);
    return rc;
}

/* ---- the connector: configured like a source, read by nobody ---- */

static const char *scim_spec(void)
{
    static char *spec;
    if (!spec) {
        json_t *s = ctx_opts_schema(scim_opts, "SCIM directory (provisioned through serve)");
        spec = ctx_json_text(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(s);
    }
    return spec;
}

static int scim_open(const char *config_json, void **pconn, ctx_conn_error *e)
{
    scim_cfg *c;
    json_t *conn = ctx_json_loads(config_json, 0, NULL);
    ctx_error err;
    int rc;

    if (!conn)
        return conn_errf(e, CTX_CONN_EINVAL, "config: not JSON");
    if (!(c = ctx_calloc(1, sizeof *c))) {
        json_decref(conn);
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    }
    rc = scim_cfg_parse(conn, c, &err);
    json_decref(conn);
    if (rc) {
        ctx_free(c);
        return conn_errf(e, rc, "%s", err.text);
    }
    *pconn = c;
    return CTX_CONN_OK;
}

static void scim_close(void *conn)
{
    ctx_opts_free(scim_opts, conn);
    ctx_free(conn);
}

static int scim_check(void *conn, ctx_conn_error *e)
{
    (void)conn;
    (void)e;
    return CTX_CONN_OK;
}

/* No streams: users and groups come in over /scim/v2 of `ctxgate serve`. */
static int scim_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    (void)conn;
    (void)fn;
    (void)arg;
    (void)e;
    return CTX_CONN_OK;
}

static int scim_read(void *conn, const char *stream, const char *state_json, int full,
                     const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    (void)conn;
    (void)state_json;
    (void)full;
    (void)host;
    (void)em;
    return conn_errf(e, CTX_CONN_EINVAL, "stream \"%s\": a scim source has no streams; its"
                     " users and groups arrive over SCIM (ctxgate serve, /scim/v2)", stream);
}

const ctx_connector ctx__scim_connector = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_connector), "scim", "1.0.0",
    scim_spec, scim_open, scim_check, scim_discover, scim_read, scim_close,
    /* ---- version 2 ---- */
    NULL,
};
