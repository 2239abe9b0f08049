/*
 * registry.h - find a connector by type (built in, or a .so plugin loaded
 * with dlopen), check its ABI, and open it on a source's config. Built-in
 * connectors go through the same vtable and checks as plugins.
 */
#ifndef CTX_CONNECTORS_REGISTRY_H
#define CTX_CONNECTORS_REGISTRY_H

#include "../core/config.h"
#include "../core/ctx.h"
#include "sdk/ctxgate/connector.h"

/* An opened connector on one source. */
typedef struct registry_conn {
    const ctx_connector *vt;  /* borrowed: static data of the connector */
    void *conn;               /* the connector's handle, from xOpen */
    void *dl;                 /* dlopen handle of a plugin, or NULL */
} registry_conn;

/* registry_builtin - the built-in connector of that type, or NULL. */
const ctx_connector *registry_builtin(const char *type);

/* registry_builtin_names - NULL-terminated list, static. */
const char *const *registry_builtin_names(void);

/*
 * registry_check_abi - refuse a connector whose abi_version is not 1 to ours or
 * whose struct_size is smaller than version 1's, before reading any other
 * member; then require every version 1 callback.
 */
int registry_check_abi(const ctx_connector *vt, const char *what, ctx_error *err);

/* A connector's xReadPermissions (ABI version 2). */
typedef int (*ctx_read_permissions_fn)(void *conn, const char *stream, const char *state_json,
                                       const ctx_host *host, ctx_emitter *em,
                                       ctx_conn_error *err);

/*
 * registry_read_permissions - vt's xReadPermissions, or NULL when it has none
 * or was built for ABI 1 (whose struct ends before it: never read past it).
 * vt must have passed registry_check_abi.
 */
ctx_read_permissions_fn registry_read_permissions(const ctx_connector *vt);

/*
 * registry_load_plugin - dlopen(path, RTLD_NOW|RTLD_LOCAL), resolve
 * ctx_connector_entry, check the ABI. *dl is new: dlclose it when done.
 */
int registry_load_plugin(const char *path, const ctx_connector **vt, void **dl,
                         ctx_error *err);

/*
 * registry_open - resolve the source's connector and call its xOpen on the
 * connector keys. Errors are prefixed "sources[i]: ". rc must be
 * registry_close'd on success.
 */
int registry_open(const ctx_source_cfg *src, registry_conn *rc, ctx_error *err);
void registry_close(registry_conn *rc);

/*
 * conn_errf - fill a connector's error with code and the formatted
 * text; returns code (the built-in connectors' one error setter).
 */
int conn_errf(ctx_conn_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* registry_conn_error - copy a connector's error into a host error. */
int registry_conn_error(const ctx_conn_error *ce, int rc, ctx_error *err);

#endif
