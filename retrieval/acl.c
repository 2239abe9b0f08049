/*
 * acl.c - resolve a user to the principals whose documents they may read.
 */
#include "acl.h"

#include <stdio.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/stmt.h"

/*
 * The user, the source accounts mapped to the user, then every group
 * reachable from any of those. UNION (not UNION ALL) makes the recursion
 * stop on membership cycles.
 */
static const char resolve_sql[] =
    "WITH RECURSIVE"
    " me(id) AS (SELECT id FROM principals WHERE name = ?1 AND kind = 1 AND declared = 1),"
    " seed(id) AS (SELECT id FROM me"
    "   UNION SELECT account_id FROM identities WHERE user_id IN (SELECT id FROM me)),"
    " reach(id) AS (SELECT id FROM seed"
    "   UNION SELECT m.group_id FROM memberships m JOIN reach r ON m.member_id = r.id)"
    " SELECT id FROM reach"
    " UNION SELECT id FROM principals WHERE kind = 3 AND EXISTS (SELECT 1 FROM me)"
    " ORDER BY 1";

void acl_user_name(const char *user, char *buf, size_t len)
{
    if (!strncmp(user, "user:", 5))
        snprintf(buf, len, "%s", user);
    else
        snprintf(buf, len, "user:%s", user);
}

int acl__collect(sqlite3_stmt *s, acl_principals *out, ctx_error *err)
{
    size_t cap = 0;
    int rc;

    out->ids = NULL;
    out->n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            int64_t *v;
            cap = cap ? cap * 2 : 16;
            if (!(v = ctx_realloc(out->ids, cap * sizeof *v))) {
                stmt_put(s);
                acl_principals_free(out);
                return ctx_error_set(err, CTX_ENOMEM, "acl: out of memory");
            }
            out->ids = v;
        }
        out->ids[out->n++] = sqlite3_column_int64(s, 0);
    }
    if (rc != SQLITE_DONE) {
        rc = ctx_error_set(err, CTX_ESTORE, "acl: %s", sqlite3_errmsg(sqlite3_db_handle(s)));
        stmt_put(s);
        acl_principals_free(out);
        return rc;
    }
    stmt_put(s);
    return CTX_OK;
}

int acl_resolve(sqlite3 *db, const char *user, acl_principals *out, ctx_error *err)
{
    sqlite3_stmt *s = NULL;
    char name[1024];
    int rc;

    out->ids = NULL;
    out->n = 0;
    if (!user || !*user || !strcmp(user, "user:"))
        return ctx_error_set(err, CTX_ENOTFOUND, "no user given");
    acl_user_name(user, name, sizeof name);
    if (stmt_get(db, resolve_sql, &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "acl: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if ((rc = acl__collect(s, out, err)))
        return rc;
    if (!out->n)
        return ctx_error_set(err, CTX_ENOTFOUND, "unknown user %s", name);
    return CTX_OK;
}

void acl_principals_free(acl_principals *p)
{
    ctx_free(p->ids);
    p->ids = NULL;
    p->n = 0;
}

/* Allowed to one of the principals (a JSON array), denied to none. */
static const char readable_sets_sql[] =
    "SELECT acl_id FROM acl_entries WHERE deny = 0"
    "  AND principal_id IN (SELECT value FROM json_each(?1))"
    " EXCEPT SELECT acl_id FROM acl_entries WHERE deny = 1"
    "  AND principal_id IN (SELECT value FROM json_each(?1))"
    " ORDER BY 1";

int acl_readable_sets(sqlite3 *db, const acl_principals *pr, acl_principals *out,
                      ctx_error *err)
{
    ctx_buf js = CTX_BUF_INIT;
    sqlite3_stmt *s = NULL;
    int rc;

    out->ids = NULL;
    out->n = 0;
    if (!pr->n)
        return CTX_OK;
    rc = ctx_buf_puts(&js, "[");
    for (size_t i = 0; !rc && i < pr->n; i++)
        rc = ctx_buf_printf(&js, "%s%lld", i ? "," : "", (long long)pr->ids[i]);
    if (rc || ctx_buf_puts(&js, "]")) {
        ctx_buf_free(&js);
        return ctx_error_set(err, CTX_ENOMEM, "acl: out of memory");
    }
    if (stmt_get(db, readable_sets_sql, &s) != SQLITE_OK) {
        ctx_buf_free(&js);
        return ctx_error_set(err, CTX_ESTORE, "acl: %s", sqlite3_errmsg(db));
    }
    sqlite3_bind_text(s, 1, js.data, (int)js.len, SQLITE_STATIC);
    rc = acl__collect(s, out, err);
    ctx_buf_free(&js);
    return rc;
}
