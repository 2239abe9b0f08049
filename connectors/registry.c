/*
 * registry.c - built-in connectors and .so plugins behind one vtable.
 */
#include "registry.h"
#include "../core/json.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

extern const ctx_connector ctx__exec_connector;
extern const ctx_connector ctx__files_connector;
extern const ctx_connector ctx__odbc_connector;
extern const ctx_connector ctx__postgres_connector;
extern const ctx_connector ctx__rest_connector;
extern const ctx_connector ctx__scim_connector;

static const ctx_connector *const builtins[] = {
    &ctx__exec_connector,
    &ctx__files_connector,
    &ctx__odbc_connector,
    &ctx__postgres_connector,
    &ctx__rest_connector,
    &ctx__scim_connector,
};

static const char *const builtin_names[] = {"exec", "files", "odbc", "postgres", "rest", "scim",
                                            NULL};

const char *const *registry_builtin_names(void) { return builtin_names; }

const ctx_connector *registry_builtin(const char *type)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (!strcmp(builtins[i]->name, type))
            return builtins[i];
    return NULL;
}

/* Size of a version 1 connector struct: up to and including xClose. */
#define V1_SIZE (offsetof(ctx_connector, xClose) + sizeof(void (*)(void *)))

int registry_check_abi(const ctx_connector *vt, const char *what, ctx_error *err)
{
    if (!vt)
        return ctx_error_set(err, CTX_EABI, "%s: the entry point returned NULL", what);
    if (vt->abi_version < 1 || vt->abi_version > CTX_CONNECTOR_ABI_VERSION)
        return ctx_error_set(err, CTX_EABI,
                             "%s: built for connector ABI %u, this ctxgate speaks 1 to %d;"
                             " rebuild it against this ctxgate's SDK",
                             what, vt->abi_version, CTX_CONNECTOR_ABI_VERSION);
    if (vt->struct_size < V1_SIZE)
        return ctx_error_set(err, CTX_EABI,
                             "%s: struct_size %u is smaller than ABI 1's %zu; the plugin"
                             " was built with a broken header", what, vt->struct_size,
                             (size_t)V1_SIZE);
    if (!vt->name || !vt->xSpec || !vt->xOpen || !vt->xCheck || !vt->xDiscover ||
        !vt->xRead || !vt->xClose)
        return ctx_error_set(err, CTX_EABI,
                             "%s: name and every version 1 callback (xSpec, xOpen, xCheck,"
                             " xDiscover, xRead, xClose) must be set", what);
    return CTX_OK;
}

/* Size of a version 2 connector struct: up to and including xReadPermissions. */
#define V2_SIZE (offsetof(ctx_connector, xReadPermissions) + sizeof(void (*)(void)))

ctx_read_permissions_fn registry_read_permissions(const ctx_connector *vt)
{
    if (vt->abi_version < 2 || vt->struct_size < V2_SIZE)
        return NULL;
    return vt->xReadPermissions;
}

int registry_load_plugin(const char *path, const ctx_connector **vt, void **dl,
                         ctx_error *err)
{
    ctx_connector_entry_fn entry;
    void *h;
    int rc;

    *vt = NULL;
    *dl = NULL;
    if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
        return ctx_error_set(err, CTX_EABI, "plugin %s: cannot load: %s", path, dlerror());
    *(void **)&entry = dlsym(h, CTX_CONNECTOR_ENTRY);
    if (!entry) {
        dlclose(h);
        return ctx_error_set(err, CTX_EABI, "plugin %s: no symbol %s; export it with"
                             " CTX_CONNECTOR_EXPORT", path, CTX_CONNECTOR_ENTRY);
    }
    if ((rc = registry_check_abi(entry(), path, err))) {
        dlclose(h);
        return rc;
    }
    *vt = entry();
    *dl = h;
    return CTX_OK;
}

int conn_errf(ctx_conn_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    e->code = code;
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    return code;
}

int registry_conn_error(const ctx_conn_error *ce, int rc, ctx_error *err)
{
    return ctx_error_set(err, rc ? rc : CTX_ESOURCE, "%s",
                         ce->text[0] ? ce->text : "connector failed without a message");
}

int registry_open(const ctx_source_cfg *src, registry_conn *out, ctx_error *err)
{
    ctx_conn_error ce;
    char *json;
    int rc;

    memset(out, 0, sizeof *out);
    if (!strcmp(src->type, "plugin")) {
        if (!src->plugin)
            return ctx_error_set(err, CTX_ECONFIG, "sources[%zu].plugin: missing; type"
                                 " \"plugin\" needs the path of the connector .so", src->index);
        if ((rc = registry_load_plugin(src->plugin, &out->vt, &out->dl, err))) {
            ctx_error_prefix(err, "sources[%zu]: ", src->index);
            return rc;
        }
    } else if (!(out->vt = registry_builtin(src->type))) {
        char names[256] = "";
        for (size_t i = 0; builtin_names[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s\"%s\"",
                     i ? ", " : "", builtin_names[i]);
        return ctx_error_set(err, CTX_ECONFIG,
                             "sources[%zu].type: unknown connector \"%s\"; built in are"
                             " %s, or use \"plugin\"", src->index, src->type, names);
    } else if ((rc = registry_check_abi(out->vt, src->type, err))) {
        return rc;
    }

    if (!(json = ctx_json_text(src->conn, JSON_COMPACT)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    memset(&ce, 0, sizeof ce);
    rc = out->vt->xOpen(json, &out->conn, &ce);
    ctx_free(json);
    if (rc) {
        registry_conn_error(&ce, rc, err);
        ctx_error_prefix(err, "sources[%zu]: ", src->index);
        if (out->dl)
            dlclose(out->dl);
        memset(out, 0, sizeof *out);
        return err ? err->code : rc;
    }
    return CTX_OK;
}

void registry_close(registry_conn *rc)
{
    if (rc->vt && rc->conn)
        rc->vt->xClose(rc->conn);
    if (rc->dl)
        dlclose(rc->dl);
    memset(rc, 0, sizeof *rc);
}
