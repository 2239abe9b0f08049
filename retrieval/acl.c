/*
 * acl.c - resolve a user to the principals whose documents they may read.
 */
#include "acl.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/stmt.h"
#include "../core/json.h"

/*
 * A caller's view from each source: (src, principal) for every principal
 * the user holds where source src's documents are concerned. Only the
 * facts of src itself and of the sources it trusts (source_trust: by name,
 * '*' = a directory every source trusts) count there: the accounts they map
 * to the user, the groups their memberships reach (UNION stops on cycles),
 * and "everyone" when one of them declared the user. The user must be
 * declared by some source at all, and not deprovisioned by a directory
 * (principal_blocks, written by SCIM), or there is no view.
 */
#define VIEW_CTE                                                                              \
    "WITH RECURSIVE"                                                                          \
    " me(id) AS (SELECT id FROM principals WHERE name = ?1 AND kind = 1 AND declared = 1"     \
    "   AND id NOT IN (SELECT principal_id FROM principal_blocks)),"                          \
    " trust(src, t) AS (SELECT id, id FROM sources"                                           \
    "   UNION SELECT s.id, t.id FROM source_trust x JOIN sources s ON x.source IN (s.name, '*')" \
    "   JOIN sources t ON t.name = x.trusted),"                                               \
    " seed(src, id) AS (SELECT s.id, me.id FROM sources s, me"                                \
    "   UNION SELECT t.src, i.account_id FROM identities i JOIN trust t ON t.t = i.source_id"  \
    "   WHERE i.user_id IN (SELECT id FROM me)),"                                             \
    " reach(src, id) AS (SELECT src, id FROM seed"                                            \
    "   UNION SELECT r.src, m.group_id FROM reach r JOIN memberships m ON m.member_id = r.id"  \
    "   JOIN trust t ON t.src = r.src AND t.t = m.source_id),"                                \
    " view(src, id) AS (SELECT src, id FROM reach"                                            \
    "   UNION SELECT t.src, p.id FROM trust t JOIN declared_by d ON d.source_id = t.t"         \
    "   JOIN principals p ON p.kind = 3 WHERE d.principal_id IN (SELECT id FROM me))"

/* Every principal of the caller's views, for the MATCH's allow tokens. */
static const char resolve_sql[] = VIEW_CTE " SELECT DISTINCT id FROM view ORDER BY 1";

/* The ACL sets a view reads: allowed to one of its principals, denied to none. */
static const char readable_sql[] =
    VIEW_CTE
    " SELECT a.id FROM view v JOIN acl_entries e ON e.principal_id = v.id AND e.deny = 0"
    "  JOIN acl_sets a ON a.id = e.acl_id AND a.source_id = v.src"
    " EXCEPT SELECT a.id FROM view v JOIN acl_entries e ON e.principal_id = v.id"
    "  AND e.deny = 1 JOIN acl_sets a ON a.id = e.acl_id AND a.source_id = v.src"
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

/*
 * Of the readable sets (?1, a JSON array), those the label filter lets
 * through; each part only when it restricts (the statement cache keeps the
 * shapes apart).
 */
#define FILTER_SQL "SELECT value FROM json_each(?1)"
#define LABEL_NOT_ALLOWED                                                                    \
    " EXCEPT SELECT a.acl_id FROM acl_labels a JOIN labels l ON l.id = a.label_id"           \
    "  WHERE l.name NOT IN (SELECT value FROM json_each(?2))"
#define LABEL_WANTED                                                                         \
    " INTERSECT SELECT a.acl_id FROM acl_labels a JOIN labels l ON l.id = a.label_id"        \
    "  WHERE l.name IN (SELECT value FROM json_each(?3))"

#define WITHHELD " EXCEPT SELECT id FROM acl_sets WHERE source_id IN (SELECT value FROM json_each(?4))"

static const char *const filter_sql[8] = {
    FILTER_SQL " ORDER BY 1",
    FILTER_SQL LABEL_NOT_ALLOWED " ORDER BY 1",
    FILTER_SQL LABEL_WANTED " ORDER BY 1",
    FILTER_SQL LABEL_NOT_ALLOWED LABEL_WANTED " ORDER BY 1",
    FILTER_SQL WITHHELD " ORDER BY 1",
    FILTER_SQL LABEL_NOT_ALLOWED WITHHELD " ORDER BY 1",
    FILTER_SQL LABEL_WANTED WITHHELD " ORDER BY 1",
    FILTER_SQL LABEL_NOT_ALLOWED LABEL_WANTED WITHHELD " ORDER BY 1",
};

int acl__ids_json(ctx_buf *b, const int64_t *ids, size_t n)
{
    int rc = ctx_buf_puts(b, "[");
    for (size_t i = 0; !rc && i < n; i++)
        rc = ctx_buf_printf(b, "%s%lld", i ? "," : "", (long long)ids[i]);
    return rc || ctx_buf_puts(b, "]");
}

/* names_json - strings as a JSON array (new), NULL when out of memory. */
static char *names_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    char *s;
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    s = a ? ctx_json_text(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

int acl_readable_filter(sqlite3 *db, const acl_principals *readable,
                        const acl_label_filter *lf, acl_principals *out, ctx_error *err)
{
    ctx_buf js = CTX_BUF_INIT, wj = CTX_BUF_INIT;
    char *allowed = NULL, *wanted = NULL;
    sqlite3_stmt *s = NULL;
    int rc, shape = 0;

    out->ids = NULL;
    out->n = 0;
    if (!readable->n)
        return CTX_OK;
    if (lf && lf->allowed)
        shape |= 1;
    if (lf && lf->nwanted)
        shape |= 2;
    if (lf && lf->nwithheld)
        shape |= 4;
    if (acl__ids_json(&js, readable->ids, readable->n) ||
        ((shape & 4) && acl__ids_json(&wj, lf->withheld, lf->nwithheld)) ||
        ((shape & 1) && !(allowed = names_json(lf->allowed, lf->nallowed))) ||
        ((shape & 2) && !(wanted = names_json(lf->wanted, lf->nwanted)))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "acl: out of memory");
        goto done;
    }
    if (stmt_get(db, filter_sql[shape], &s) != SQLITE_OK) {
        rc = ctx_error_set(err, CTX_ESTORE, "acl: %s", sqlite3_errmsg(db));
        goto done;
    }
    sqlite3_bind_text(s, 1, js.data, (int)js.len, SQLITE_STATIC);
    if (allowed)
        sqlite3_bind_text(s, 2, allowed, -1, SQLITE_STATIC);
    if (wanted)
        sqlite3_bind_text(s, 3, wanted, -1, SQLITE_STATIC);
    if (shape & 4)
        sqlite3_bind_text(s, 4, wj.data, (int)wj.len, SQLITE_STATIC);
    rc = acl__collect(s, out, err);
done:
    ctx_buf_free(&js);
    ctx_buf_free(&wj);
    free(allowed);
    free(wanted);
    return rc;
}

/* ---- the access cache ---------------------------------------------------- */

/* The caller's principals that some allow (deny = 0) or deny list names. */
static const char named_sql[] =
    "SELECT DISTINCT principal_id FROM acl_entries"
    " WHERE deny = ?2 AND principal_id IN (SELECT value FROM json_each(?1)) ORDER BY 1";

/* Slots of the cache; a user's slot is chosen by hash, the newest wins. */
#define ACCESS_SLOTS 256

typedef struct access_slot {
    char *key;              /* store file NUL user, or NULL when empty */
    size_t keylen;
    int64_t gen;
    acl_access a;
} access_slot;

static pthread_mutex_t access_mu = PTHREAD_MUTEX_INITIALIZER;
static access_slot access_cache[ACCESS_SLOTS];

void acl_access_free(acl_access *a)
{
    acl_principals_free(&a->principals);
    acl_principals_free(&a->allow);
    acl_principals_free(&a->deny);
    acl_principals_free(&a->readable);
}

static int ids_copy(acl_principals *to, const acl_principals *from)
{
    to->n = 0;
    if (!(to->ids = ctx_malloc((from->n ? from->n : 1) * sizeof *to->ids)))
        return CTX_ENOMEM;
    if (from->n)
        memcpy(to->ids, from->ids, from->n * sizeof *to->ids);
    to->n = from->n;
    return CTX_OK;
}

static int access_copy(acl_access *to, const acl_access *from)
{
    memset(to, 0, sizeof *to);
    if (ids_copy(&to->principals, &from->principals) || ids_copy(&to->allow, &from->allow) ||
        ids_copy(&to->deny, &from->deny) || ids_copy(&to->readable, &from->readable)) {
        acl_access_free(to);
        return CTX_ENOMEM;
    }
    return CTX_OK;
}

/* access_gen - the store's access generation, or -1 (no cache then). */
static int64_t access_gen(sqlite3 *db)
{
    sqlite3_stmt *s;
    int64_t gen = -1;

    if (stmt_get(db, "SELECT gen FROM access_gen", &s) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        gen = sqlite3_column_int64(s, 0);
    stmt_put(s);
    return gen;
}

static int named(sqlite3 *db, const char *pjson, int deny, acl_principals *out, ctx_error *err)
{
    sqlite3_stmt *s;

    out->ids = NULL;
    out->n = 0;
    if (stmt_get(db, named_sql, &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "acl: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, pjson, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, deny);
    return acl__collect(s, out, err);
}

/* access_compute - user's access from the store. */
static int access_compute(sqlite3 *db, const char *user, acl_access *a, ctx_error *err)
{
    ctx_buf js = CTX_BUF_INIT;
    int rc;

    if ((rc = acl_resolve(db, user, &a->principals, err)))
        return rc;
    if (acl__ids_json(&js, a->principals.ids, a->principals.n)) {
        ctx_buf_free(&js);
        return ctx_error_set(err, CTX_ENOMEM, "acl: out of memory");
    }
    if (!(rc = named(db, js.data, 0, &a->allow, err)) &&
        !(rc = named(db, js.data, 1, &a->deny, err))) {
        sqlite3_stmt *s;
        if (stmt_get(db, readable_sql, &s) != SQLITE_OK) {
            rc = ctx_error_set(err, CTX_ESTORE, "acl: %s", sqlite3_errmsg(db));
        } else {
            sqlite3_bind_text(s, 1, user, -1, SQLITE_TRANSIENT);
            rc = acl__collect(s, &a->readable, err);
        }
    }
    ctx_buf_free(&js);
    return rc;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    while (n--)
        h = (h ^ (unsigned char)*p++) * 1099511628211ull;
    return h;
}

int acl_access_get(sqlite3 *db, const char *user, acl_access *out, ctx_error *err)
{
    const char *file = sqlite3_db_filename(db, "main");
    char name[1024];
    ctx_buf key = CTX_BUF_INIT;
    access_slot *slot;
    int64_t gen;
    int rc;

    memset(out, 0, sizeof *out);
    if (!user || !*user || !strcmp(user, "user:"))
        return ctx_error_set(err, CTX_ENOTFOUND, "no user given");
    acl_user_name(user, name, sizeof name);
    /* A store in memory or a temp file has no name to share a cache by. */
    if (!file || !*file || (gen = access_gen(db)) < 0)
        return access_compute(db, name, out, err);
    if (ctx_buf_puts(&key, file) || ctx_buf_append(&key, "", 1) || ctx_buf_puts(&key, name)) {
        ctx_buf_free(&key);
        return ctx_error_set(err, CTX_ENOMEM, "acl: out of memory");
    }
    slot = &access_cache[fnv1a(key.data, key.len) % ACCESS_SLOTS];
    pthread_mutex_lock(&access_mu);
    if (slot->key && slot->gen == gen && slot->keylen == key.len &&
        !memcmp(slot->key, key.data, key.len)) {
        rc = access_copy(out, &slot->a);
        pthread_mutex_unlock(&access_mu);
        ctx_buf_free(&key);
        return rc ? ctx_error_set(err, CTX_ENOMEM, "acl: out of memory") : CTX_OK;
    }
    pthread_mutex_unlock(&access_mu);
    /*
     * Computed at or after gen, and kept as of gen: a change committed
     * meanwhile has a newer generation, so the next call computes again.
     */
    if ((rc = access_compute(db, name, out, err))) {
        ctx_buf_free(&key);
        return rc; /* unknown users are not cached: they cost a lookup only */
    }
    pthread_mutex_lock(&access_mu);
    /* Another user's entry gives way; this user's newer one does not. */
    if (!slot->key || slot->keylen != key.len || memcmp(slot->key, key.data, key.len) ||
        slot->gen <= gen) {
        acl_access copy;
        if (!access_copy(&copy, out)) {
            ctx_free(slot->key);
            acl_access_free(&slot->a);
            slot->keylen = key.len;
            slot->key = ctx_buf_steal(&key);
            slot->gen = gen;
            slot->a = copy;
        }
    }
    pthread_mutex_unlock(&access_mu);
    ctx_buf_free(&key);
    return CTX_OK;
}
