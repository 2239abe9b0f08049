/*
 * store_scim.c - SCIM-provisioned users and groups (schema v12) and the
 * principal facts they stand for in their source's name (see store_scim.h).
 * Every write retracts what the resource stood for, writes it, and states
 * its facts again, so a rename, a deactivation or a membership change is
 * one transaction that the access generation sees at commit.
 */
#include "store_scim.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "stmt.h"
#include "store_int.h"

/*
 * run - run sql with arguments described by fmt ('i' int64_t, 't' text,
 * NULL text binds NULL); rows are ignored. A statement of the cache.
 */
static int run(ctx_store *st, ctx_error *err, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *s;
    va_list ap;
    int rc, i = 1;

    if (stmt_get(st->db, sql, &s) != SQLITE_OK)
        return store_errf(st, err, "scim");
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++, i++) {
        if (*f == 'i')
            sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
        else
            sqlite3_bind_text(s, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
    }
    va_end(ap);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    stmt_put(s);
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "scim");
}

/* first_text - the first column of the first row (new), or NULL: none. */
static int first_text(ctx_store *st, char **out, ctx_error *err, const char *sql,
                      int64_t a, const char *b, const char *c)
{
    sqlite3_stmt *s;
    int rc;

    *out = NULL;
    if (stmt_get(st->db, sql, &s) != SQLITE_OK)
        return store_errf(st, err, "scim");
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, c, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL &&
        !(*out = ctx_strdup((const char *)sqlite3_column_text(s, 0)))) {
        stmt_put(s);
        return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
    }
    stmt_put(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "scim");
}

void store_scim_row_free(store_scim_row *r)
{
    ctx_free(r->id);
    ctx_free(r->name);
    ctx_free(r->external_id);
    ctx_free(r->body);
    ctx_free(r->principal);
    memset(r, 0, sizeof *r);
}

#define ROW_COLS "id, kind, name, external_id, body, principal, active, created_at," \
                 " modified_at, version"

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? ctx_strdup((const char *)t) : NULL;
}

/* row_read - the ROW_COLS of s's current row into *r (new strings). */
static int row_read(sqlite3_stmt *s, store_scim_row *r, ctx_error *err)
{
    memset(r, 0, sizeof *r);
    r->id = col_dup(s, 0);
    r->kind = sqlite3_column_int(s, 1);
    r->name = col_dup(s, 2);
    r->external_id = col_dup(s, 3);
    r->body = col_dup(s, 4);
    r->principal = col_dup(s, 5);
    r->active = sqlite3_column_int(s, 6);
    r->created_at = sqlite3_column_int64(s, 7);
    r->modified_at = sqlite3_column_int64(s, 8);
    r->version = sqlite3_column_int64(s, 9);
    if (!r->id || !r->name || !r->body || !r->principal) {
        store_scim_row_free(r);
        return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
    }
    return CTX_OK;
}

int store_scim_get(ctx_store *st, int64_t source, int kind, const char *id,
                   store_scim_row *out, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    memset(out, 0, sizeof *out);
    if (stmt_get(st->db, "SELECT " ROW_COLS " FROM scim_resources WHERE source_id = ?1"
                 " AND id = ?2 AND kind = ?3", &s) != SQLITE_OK)
        return store_errf(st, err, "scim: read resource");
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, kind);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = row_read(s, out, err);
    else if (rc == SQLITE_DONE)
        rc = ctx_error_set(err, CTX_ENOTFOUND, "%s %s not found",
                           kind == CTX_PRINCIPAL_USER ? "User" : "Group", id);
    else
        rc = store_errf(st, err, "scim: read resource");
    stmt_put(s);
    return rc;
}

int store_scim_members(ctx_store *st, int64_t source, const char *group_id,
                       store_scim_member_fn fn, void *arg, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc, stop = 0;

    if (stmt_get(st->db, "SELECT r.id, r.name, r.kind FROM scim_members m"
                 " JOIN scim_resources r ON r.source_id = m.source_id AND r.id = m.member_id"
                 " WHERE m.source_id = ?1 AND m.group_id = ?2 ORDER BY r.id", &s) != SQLITE_OK)
        return store_errf(st, err, "scim: read members");
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, group_id, -1, SQLITE_STATIC);
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW)
        stop = fn(arg, (const char *)sqlite3_column_text(s, 0),
                  (const char *)sqlite3_column_text(s, 1), sqlite3_column_int(s, 2));
    stmt_put(s);
    if (stop)
        return stop;
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "scim: read members");
}

/* The list's filters; stmt_get knows a statement by its SQL's address, so
 * every shape is a string of its own. */
#define LIST_FROM " FROM scim_resources WHERE source_id = ?1 AND kind = ?2"
#define LIST_PAGE " ORDER BY created_at, id LIMIT ?4 OFFSET ?5"
#define BY_NAME " AND name_key = lower(?3)"
#define BY_EXT " AND external_id = ?3"
#define BY_ID " AND id = ?3"
#define BY_EMAIL                                                                           \
    " AND EXISTS (SELECT 1 FROM json_each(body, '$.emails') e"                             \
    "  WHERE lower(json_extract(e.value, '$.value')) = lower(?3))"
static const char *const count_sql[] = {
    "SELECT count(*)" LIST_FROM, "SELECT count(*)" LIST_FROM BY_NAME,
    "SELECT count(*)" LIST_FROM BY_EXT, "SELECT count(*)" LIST_FROM BY_ID,
    "SELECT count(*)" LIST_FROM BY_EMAIL};
static const char *const page_sql[] = {
    "SELECT " ROW_COLS LIST_FROM LIST_PAGE, "SELECT " ROW_COLS LIST_FROM BY_NAME LIST_PAGE,
    "SELECT " ROW_COLS LIST_FROM BY_EXT LIST_PAGE, "SELECT " ROW_COLS LIST_FROM BY_ID LIST_PAGE,
    "SELECT " ROW_COLS LIST_FROM BY_EMAIL LIST_PAGE};

int store_scim_list(ctx_store *st, int64_t source, int kind, const char *attr,
                    const char *value, int64_t start, int64_t count, store_scim_row_fn fn,
                    void *arg, int64_t *total, ctx_error *err)
{
    sqlite3_stmt *s;
    int w = 0, rc, stop = 0;

    if (attr && !strcmp(attr, "name"))
        w = 1;
    else if (attr && !strcmp(attr, "externalId"))
        w = 2;
    else if (attr && !strcmp(attr, "id"))
        w = 3;
    else if (attr && !strcmp(attr, "email"))
        w = 4;
    else if (attr)
        return ctx_error_set(err, CTX_EINVAL, "scim: cannot filter on %s", attr);
    if (stmt_get(st->db, count_sql[w], &s) != SQLITE_OK)
        return store_errf(st, err, "scim: list");
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_int(s, 2, kind);
    if (w)
        sqlite3_bind_text(s, 3, value, -1, SQLITE_STATIC);
    *total = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    stmt_put(s);
    if (count <= 0 || start > *total)
        return CTX_OK;
    if (stmt_get(st->db, page_sql[w], &s) != SQLITE_OK)
        return store_errf(st, err, "scim: list");
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_int(s, 2, kind);
    if (w)
        sqlite3_bind_text(s, 3, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, count);
    sqlite3_bind_int64(s, 5, start > 1 ? start - 1 : 0);
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_scim_row r;
        if ((rc = row_read(s, &r, err))) {
            stmt_put(s);
            return rc;
        }
        stop = fn(arg, &r);
        store_scim_row_free(&r);
    }
    stmt_put(s);
    if (stop)
        return stop;
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "scim: list");
}

/* ---- facts ---- */

/*
 * Names held by an active user of the source other than resource id: a
 * tombstone block never falls on them, and an alias one of them holds is
 * not taken over.
 */
#define HELD_SQL                                                                         \
    "SELECT 1 FROM scim_resources r WHERE r.source_id = ?1 AND r.id != ?2 AND r.active = 1" \
    " AND r.kind = 1 AND (r.principal = ?3 OR EXISTS (SELECT 1 FROM scim_aliases a"        \
    "  WHERE a.source_id = ?1 AND a.resource_id = r.id AND a.principal = ?3))"

static int held_elsewhere(ctx_store *st, int64_t source, const char *id, const char *name,
                          int *held, ctx_error *err)
{
    char *t = NULL;
    int rc = first_text(st, &t, err, HELD_SQL, source, id, name);
    *held = t != NULL;
    ctx_free(t);
    return rc;
}

/* block - block name for source (or lift the block: on = 0). */
static int block(ctx_store *st, int64_t source, const char *name, int on, ctx_error *err)
{
    int64_t pid;
    int rc = store_principal_id(st, name, &pid, err);

    if (rc)
        return rc;
    return on ? run(st, err, "INSERT OR IGNORE INTO principal_blocks(principal_id, source_id)"
                    " VALUES(?1, ?2)", "ii", pid, source)
              : run(st, err, "DELETE FROM principal_blocks WHERE principal_id = ?1 AND"
                    " source_id = ?2", "ii", pid, source);
}

/* A user's names as stored: its principal, then its aliases. */
typedef struct names {
    char **v;
    size_t n;
} names;

static void names_free(names *l)
{
    for (size_t i = 0; i < l->n; i++)
        ctx_free(l->v[i]);
    ctx_free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int names_add(names *l, const char *s)
{
    char **v = ctx_realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return CTX_ENOMEM;
    l->v = v;
    if (!(l->v[l->n] = ctx_strdup(s)))
        return CTX_ENOMEM;
    l->n++;
    return CTX_OK;
}

static int names_read(ctx_store *st, int64_t source, const char *id, const char *principal,
                      names *out, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    out->v = NULL;
    out->n = 0;
    if (names_add(out, principal))
        return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
    if (stmt_get(st->db, "SELECT principal FROM scim_aliases WHERE source_id = ?1 AND"
                 " resource_id = ?2 ORDER BY principal", &s) != SQLITE_OK)
        return store_errf(st, err, "scim: read aliases");
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (names_add(out, (const char *)sqlite3_column_text(s, 0))) {
            stmt_put(s);
            return ctx_error_set(err, CTX_ENOMEM, "scim: out of memory");
        }
    stmt_put(s);
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "scim: read aliases");
}

/* retract - drop the facts the stored resource (kind, principal) stated. */
static int retract(ctx_store *st, int64_t source, int kind, const char *principal,
                   ctx_error *err)
{
    int64_t pid;
    int rc;

    if ((rc = store_principal_id(st, principal, &pid, err)) ||
        (rc = run(st, err, "DELETE FROM declared_by WHERE principal_id = ?1 AND"
                  " source_id = ?2", "ii", pid, source)))
        return rc;
    if (kind == CTX_PRINCIPAL_USER)
        return run(st, err, "DELETE FROM identities WHERE user_id = ?1 AND source_id = ?2",
                   "ii", pid, source) ||
               run(st, err, "DELETE FROM memberships WHERE member_id = ?1 AND source_id = ?2",
                   "ii", pid, source) ? err->code : CTX_OK;
    return run(st, err, "DELETE FROM memberships WHERE source_id = ?2 AND"
               " (group_id = ?1 OR member_id = ?1)", "ii", pid, source);
}

/* join_parents - the stored resource id is a member of its groups' principals. */
static int join_parents(ctx_store *st, int64_t source, const char *id, const char *principal,
                        ctx_error *err)
{
    int64_t pid;
    int rc = store_principal_id(st, principal, &pid, err);
    if (rc)
        return rc;
    return run(st, err, "INSERT OR IGNORE INTO memberships(group_id, member_id, source_id)"
               " SELECT p.id, ?3, ?1 FROM scim_members m JOIN scim_resources g"
               "  ON g.source_id = m.source_id AND g.id = m.group_id"
               " JOIN principals p ON p.name = g.principal"
               " WHERE m.source_id = ?1 AND m.member_id = ?2", "iti", source, id, pid);
}

/* assert_user - state the facts of the user r as now stored. */
static int assert_user(ctx_store *st, int64_t source, const store_scim_res *r, ctx_error *err)
{
    ctx_principal p;
    int rc, held = 0;

    for (size_t i = 0; i <= r->naliases; i++) {
        const char *name = i ? r->aliases[i - 1] : r->principal;
        /* An inactive user's alias that an active user holds stays open; its
         * own principal is its alone (taken, aliases_clash) and is blocked. */
        held = 0;
        if (i && !r->active && (rc = held_elsewhere(st, source, r->id, name, &held, err)))
            return rc;
        if ((r->active || !held) && (rc = block(st, source, name, !r->active, err)))
            return rc;
    }
    if (!r->active)
        return CTX_OK;
    memset(&p, 0, sizeof p);
    p.kind = CTX_PRINCIPAL_USER;
    p.id = r->principal;
    p.display_name = r->display;
    p.email = r->email;
    if ((rc = store_principal_put(st, source, &p, err)))
        return rc;
    for (size_t i = 0; i < r->naliases; i++) {
        if (!strcmp(r->aliases[i], r->principal))
            continue;
        if ((rc = held_elsewhere(st, source, r->id, r->aliases[i], &held, err)))
            return rc;
        if (held) {
            ctx_log(CTX_LOG_WARN, "scim", "User %s: alias %s is held by another user; not"
                    " mapped", r->id, r->aliases[i]);
            continue;
        }
        p.id = r->aliases[i];
        p.maps_to = r->principal;
        if ((rc = store_principal_put(st, source, &p, err)))
            return rc;
    }
    return join_parents(st, source, r->id, r->principal, err);
}

/* assert_group - state the facts of the group r as now stored. */
static int assert_group(ctx_store *st, int64_t source, const store_scim_res *r,
                        ctx_error *err)
{
    sqlite3_stmt *s;
    ctx_principal p;
    names members = {NULL, 0};
    int rc;

    if (stmt_get(st->db, "SELECT r.principal FROM scim_members m JOIN scim_resources r"
                 " ON r.source_id = m.source_id AND r.id = m.member_id"
                 " WHERE m.source_id = ?1 AND m.group_id = ?2 AND r.active = 1"
                 " ORDER BY r.principal", &s) != SQLITE_OK)
        return store_errf(st, err, "scim: read members");
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, r->id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (names_add(&members, (const char *)sqlite3_column_text(s, 0))) {
            rc = SQLITE_NOMEM;
            break;
        }
    stmt_put(s);
    if (rc != SQLITE_DONE) {
        names_free(&members);
        return rc == SQLITE_NOMEM ? ctx_error_set(err, CTX_ENOMEM, "scim: out of memory")
                                  : store_errf(st, err, "scim: read members");
    }
    memset(&p, 0, sizeof p);
    p.kind = CTX_PRINCIPAL_GROUP;
    p.id = r->principal;
    p.display_name = r->display ? r->display : r->name;
    p.members = (const char *const *)members.v;
    p.n_members = members.n;
    rc = store_principal_put(st, source, &p, err);
    names_free(&members);
    return rc ? rc : join_parents(st, source, r->id, r->principal, err);
}

/* tombstone - block each of old's names that r (NULL: deleted) no longer holds. */
static int tombstone(ctx_store *st, int64_t source, const char *id, const names *old,
                     const store_scim_res *r, ctx_error *err)
{
    for (size_t i = 0; i < old->n; i++) {
        int keep = 0, held = 0, rc;
        for (size_t j = 0; r && j < r->naliases; j++)
            keep |= !strcmp(old->v[i], r->aliases[j]);
        if (r && !strcmp(old->v[i], r->principal))
            keep = 1;
        if (keep)
            continue;
        /* v[0], the old principal, was this user's alone: always blocked */
        if (i && (rc = held_elsewhere(st, source, id, old->v[i], &held, err)))
            return rc;
        if (!held && (rc = block(st, source, old->v[i], 1, err)))
            return rc;
    }
    return CTX_OK;
}

/* taken - no other resource of source takes r's name (per kind) or principal. */
static int taken(ctx_store *st, int64_t source, const store_scim_res *r, int *why,
                 ctx_error *err)
{
    sqlite3_stmt *s;
    int rc, hit = 0;
    const char *what = NULL;

    if (stmt_get(st->db, "SELECT (name_key = lower(?3) AND kind = ?5), principal = ?4"
                 " FROM scim_resources WHERE source_id = ?1 AND id != ?2 AND"
                 " ((name_key = lower(?3) AND kind = ?5) OR principal = ?4) LIMIT 1",
                 &s) != SQLITE_OK)
        return store_errf(st, err, "scim: check uniqueness");
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->principal, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, r->kind);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        hit = 1;
        what = sqlite3_column_int(s, 0) ? "name" : "principal";
    }
    stmt_put(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_errf(st, err, "scim: check uniqueness");
    if (!hit)
        return CTX_OK;
    *why = STORE_SCIM_CONFLICT;
    if (!strcmp(what, "name"))
        return ctx_error_set(err, CTX_EINVAL, "%s: \"%s\" is taken by another %s",
                             r->kind == CTX_PRINCIPAL_USER ? "userName" : "displayName",
                             r->name, r->kind == CTX_PRINCIPAL_USER ? "User" : "Group");
    return ctx_error_set(err, CTX_EINVAL, "another resource already stands for principal %s;"
                         " the attribute the principal is made of must be unique",
                         r->principal);
}

/*
 * aliases_clash - r's aliases name no other resource's principal, and r's
 * principal is no other active user's alias: else deactivating one would
 * leave the other's name open, or a new user would take over a name that
 * another stands for.
 */
static int aliases_clash(ctx_store *st, int64_t source, const store_scim_res *r, int *why,
                         ctx_error *err)
{
    char *t = NULL;
    int rc;

    for (size_t i = 0; i < r->naliases; i++) {
        if (!strcmp(r->aliases[i], r->principal))
            continue;
        if ((rc = first_text(st, &t, err, "SELECT id FROM scim_resources WHERE source_id = ?1"
                             " AND id != ?2 AND principal = ?3", source, r->id, r->aliases[i])))
            return rc;
        if (t) {
            ctx_free(t);
            *why = STORE_SCIM_CONFLICT;
            return ctx_error_set(err, CTX_EINVAL, "\"%s\" (from the user's emails) is the"
                                 " principal another resource stands for; give each user"
                                 " an address of their own", r->aliases[i]);
        }
    }
    if ((rc = first_text(st, &t, err, "SELECT r.id FROM scim_aliases a JOIN scim_resources r"
                         " ON r.source_id = a.source_id AND r.id = a.resource_id"
                         " WHERE a.source_id = ?1 AND a.resource_id != ?2 AND a.principal = ?3"
                         " AND r.active = 1", source, r->id, r->principal)))
        return rc;
    if (t) {
        ctx_free(t);
        *why = STORE_SCIM_CONFLICT;
        return ctx_error_set(err, CTX_EINVAL, "principal %s is an address of another active"
                             " user; the attribute the principal is made of must be unique",
                             r->principal);
    }
    return CTX_OK;
}

/* check_members - every member id names a resource of source other than r. */
static int check_members(ctx_store *st, int64_t source, const store_scim_res *r, int *why,
                         ctx_error *err)
{
    for (size_t i = 0; i < r->nmembers; i++) {
        char *t = NULL;
        int rc = first_text(st, &t, err, "SELECT id FROM scim_resources WHERE source_id = ?1"
                            " AND id = ?2 AND id != ?3", source, r->members[i], r->id);
        if (rc)
            return rc;
        if (!t) {
            *why = STORE_SCIM_BAD_MEMBER;
            return ctx_error_set(err, CTX_EINVAL, "members[%zu].value: \"%s\" is %s", i,
                                 r->members[i], !strcmp(r->members[i], r->id)
                                                    ? "the group itself"
                                                    : "no User or Group of this service");
        }
        ctx_free(t);
    }
    return CTX_OK;
}

static int write_row(ctx_store *st, int64_t source, const store_scim_res *r, int create,
                     ctx_error *err)
{
    int64_t now = ctx_now_ms();
    int rc;

    if (create)
        rc = run(st, err, "INSERT INTO scim_resources(source_id, id, kind, name, name_key,"
                 " external_id, active, body, principal, created_at, modified_at, version)"
                 " VALUES(?1, ?2, ?3, ?4, lower(?4), ?5, ?6, ?7, ?8, ?9, ?9, 1)",
                 "itittitti", source, r->id, (int64_t)r->kind, r->name, r->external_id,
                 (int64_t)(r->active != 0), r->body, r->principal, now);
    else
        rc = run(st, err, "UPDATE scim_resources SET name = ?3, name_key = lower(?3),"
                 " external_id = ?4, active = ?5, body = ?6, principal = ?7,"
                 " modified_at = ?8, version = version + 1 WHERE source_id = ?1 AND id = ?2",
                 "itttitti", source, r->id, r->name, r->external_id, (int64_t)(r->active != 0),
                 r->body, r->principal, now);
    if (rc || (rc = run(st, err, "DELETE FROM scim_aliases WHERE source_id = ?1 AND"
                        " resource_id = ?2", "it", source, r->id)))
        return rc;
    for (size_t i = 0; i < r->naliases; i++)
        if ((rc = run(st, err, "INSERT OR IGNORE INTO scim_aliases(source_id, resource_id,"
                      " principal) VALUES(?1, ?2, ?3)", "itt", source, r->id, r->aliases[i])))
            return rc;
    if (r->kind != CTX_PRINCIPAL_GROUP)
        return CTX_OK;
    if ((rc = run(st, err, "DELETE FROM scim_members WHERE source_id = ?1 AND group_id = ?2",
                  "it", source, r->id)))
        return rc;
    for (size_t i = 0; i < r->nmembers; i++)
        if ((rc = run(st, err, "INSERT OR IGNORE INTO scim_members(source_id, group_id,"
                      " member_id) VALUES(?1, ?2, ?3)", "itt", source, r->id, r->members[i])))
            return rc;
    return CTX_OK;
}

int store_scim_put(ctx_store *st, int64_t source, const store_scim_res *r, int create,
                   int *why, ctx_error *err)
{
    store_scim_row old;
    names oldnames = {NULL, 0};
    int rc, have;

    *why = 0;
    if ((rc = store_begin(st, err)))
        return rc;
    rc = store_scim_get(st, source, r->kind, r->id, &old, err);
    have = rc == CTX_OK;
    if (rc == CTX_ENOTFOUND && create)
        rc = CTX_OK;
    else if (have && create)
        rc = ctx_error_set(err, CTX_EINVAL, "id %s exists", r->id), *why = STORE_SCIM_CONFLICT;
    if (rc || (rc = taken(st, source, r, why, err)) ||
        (r->kind == CTX_PRINCIPAL_USER && (rc = aliases_clash(st, source, r, why, err))) ||
        (rc = check_members(st, source, r, why, err)))
        goto done;
    if (have && ((rc = names_read(st, source, old.id, old.principal, &oldnames, err)) ||
                 (rc = retract(st, source, old.kind, old.principal, err))))
        goto done;
    if ((rc = write_row(st, source, r, create, err)))
        goto done;
    if (r->kind == CTX_PRINCIPAL_USER) {
        if ((rc = assert_user(st, source, r, err)) ||
            (have && (rc = tombstone(st, source, r->id, &oldnames, r, err))))
            goto done;
    } else if ((rc = assert_group(st, source, r, err))) {
        goto done;
    }
    /* A user's activity and a group's name reach the groups they are in. */
    rc = store_commit(st, err);
done:
    if (rc)
        store_rollback(st);
    if (have)
        store_scim_row_free(&old);
    names_free(&oldnames);
    return rc;
}

int store_scim_delete(ctx_store *st, int64_t source, int kind, const char *id,
                      ctx_error *err)
{
    store_scim_row old;
    names oldnames = {NULL, 0};
    int rc;

    if ((rc = store_begin(st, err)))
        return rc;
    if ((rc = store_scim_get(st, source, kind, id, &old, err))) {
        store_rollback(st);
        return rc;
    }
    if ((rc = names_read(st, source, id, old.principal, &oldnames, err)) ||
        (rc = retract(st, source, kind, old.principal, err)) ||
        (rc = run(st, err, "DELETE FROM scim_resources WHERE source_id = ?1 AND id = ?2",
                  "it", source, id)) ||
        (rc = run(st, err, "DELETE FROM scim_aliases WHERE source_id = ?1 AND"
                  " resource_id = ?2", "it", source, id)) ||
        (rc = run(st, err, "DELETE FROM scim_members WHERE source_id = ?1 AND"
                  " (group_id = ?2 OR member_id = ?2)", "it", source, id)) ||
        (kind == CTX_PRINCIPAL_USER && (rc = tombstone(st, source, id, &oldnames, NULL, err))))
        goto done;
    rc = store_commit(st, err);
done:
    if (rc)
        store_rollback(st);
    store_scim_row_free(&old);
    names_free(&oldnames);
    return rc;
}
