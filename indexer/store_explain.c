/*
 * store_explain.c - the facts behind an explain verdict and a source's
 * permission warnings (retrieval/explain.c): a document by reference, its
 * ACL set's names, the principal path's edges, whom a source's ACLs name.
 * Reads on the connection explain is handed; see store_read.h.
 */
#include "store_int.h"
#include "store_read.h"

#include "stmt.h"

/* The sources whose facts govern source ?1's documents: its own, the
 * directories, and those it takes principals_from (as acl.c's view). */
#define TRUST_CTE                                                                            \
    "t(id) AS (SELECT ?1 UNION SELECT s.id FROM source_trust x"                              \
    "  JOIN sources s ON s.name = x.trusted"                                                 \
    "  WHERE x.source IN ((SELECT name FROM sources WHERE id = ?1), '*'))"

static int sql_err(sqlite3 *db, ctx_error *err)
{
    return ctx_error_set(err, CTX_ESTORE, "explain: %s", sqlite3_errmsg(db));
}

/* strings - column 0 of every row of sql (parameters ?1 = a, ?2 = b when
 * it has one) as a JSON array (new); NULL on error. */
static json_t *strings(sqlite3 *db, const char *sql, int64_t a, int64_t b, ctx_error *err)
{
    sqlite3_stmt *s;
    json_t *arr = json_array();
    int rc;

    if (stmt_get(db, sql, &s) != SQLITE_OK) {
        sql_err(db, err);
        json_decref(arr);
        return NULL;
    }
    sqlite3_bind_int64(s, 1, a);
    if (sqlite3_bind_parameter_count(s) >= 2)
        sqlite3_bind_int64(s, 2, b);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(arr, json_string((const char *)sqlite3_column_text(s, 0)));
    stmt_put(s);
    if (rc != SQLITE_DONE) {
        sql_err(db, err);
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* one_int - the first column of sql's first row, ?1 bound to text if given
 * else to a; -1 when there is no row. */
static int64_t one_int(sqlite3 *db, const char *sql, int64_t a, const char *text)
{
    sqlite3_stmt *s;
    int64_t v = -1;

    if (stmt_get(db, sql, &s) != SQLITE_OK)
        return -1;
    if (text)
        sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(s, 1, a);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    stmt_put(s);
    return v;
}

/* ---- documents ---------------------------------------------------------- */

int64_t store_explain_doc_id(sqlite3 *db, int64_t doc_id)
{
    return one_int(db, "SELECT id FROM documents WHERE id = ?1", doc_id, NULL);
}

int store_explain_doc_by_ext(sqlite3 *db, const char *source, size_t nsource,
                             const char *ext_id, int64_t *doc_id, ctx_error *err)
{
    static const char by_ext[] =
        "SELECT d.id FROM documents d JOIN sources s ON s.id = d.source_id"
        " WHERE s.name = ?1 AND d.ext_id = ?2 ORDER BY d.deleted, d.id LIMIT 1";
    sqlite3_stmt *s;

    *doc_id = 0;
    if (stmt_get(db, by_ext, &s) != SQLITE_OK)
        return sql_err(db, err);
    sqlite3_bind_text(s, 1, source, (int)nsource, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ext_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        *doc_id = sqlite3_column_int64(s, 0);
    stmt_put(s);
    return CTX_OK;
}

int store_explain_doc(sqlite3 *db, int64_t doc_id,
                      void (*fn)(void *arg, const store_explain_row *d), void *arg,
                      ctx_error *err)
{
    static const char doc_sql[] =
        "SELECT d.id, d.source_id, s.name, d.stream, d.ext_id, d.title, d.acl_id, d.deleted,"
        " d.acl_synced_at FROM documents d JOIN sources s ON s.id = d.source_id"
        " WHERE d.id = ?1";
    sqlite3_stmt *s;

    if (stmt_get(db, doc_sql, &s) != SQLITE_OK)
        return sql_err(db, err);
    sqlite3_bind_int64(s, 1, doc_id);
    if (sqlite3_step(s) == SQLITE_ROW) {
        store_explain_row d = {
            .id = sqlite3_column_int64(s, 0),
            .source_id = sqlite3_column_int64(s, 1),
            .source = (const char *)sqlite3_column_text(s, 2),
            .stream = (const char *)sqlite3_column_text(s, 3),
            .ext_id = (const char *)sqlite3_column_text(s, 4),
            .title = (const char *)sqlite3_column_text(s, 5),
            .acl_id = sqlite3_column_int64(s, 6),
            .deleted = sqlite3_column_int(s, 7),
            .acl_synced_at = sqlite3_column_int64(s, 8),
        };
        fn(arg, &d);
    }
    stmt_put(s);
    return CTX_OK;
}

/* ---- an ACL set and its source --------------------------------------------- */

json_t *store_explain_acl_names(sqlite3 *db, int64_t acl_id, int deny, ctx_error *err)
{
    return strings(db,
                   "SELECT p.name FROM acl_entries e JOIN principals p ON p.id = e.principal_id"
                   " WHERE e.acl_id = ?1 AND e.deny = ?2 ORDER BY p.name",
                   acl_id, deny, err);
}

json_t *store_explain_acl_labels(sqlite3 *db, int64_t acl_id, ctx_error *err)
{
    return strings(db, store__sql_text[Q_RD_LABELS], acl_id, 0, err);
}

json_t *store_explain_trusted(sqlite3 *db, int64_t src, ctx_error *err)
{
    return strings(db,
                   "WITH " TRUST_CTE " SELECT s.name FROM t JOIN sources s ON s.id = t.id"
                   " ORDER BY s.id <> ?1, s.name",
                   src, 0, err);
}

/* ---- the principal path -------------------------------------------------- */

int64_t store_explain_user(sqlite3 *db, const char *name)
{
    return one_int(db,
                   "SELECT id FROM principals WHERE name = ?1 AND kind = 1 AND declared = 1",
                   0, name);
}

int64_t store_explain_blocks(sqlite3 *db, int64_t principal)
{
    return one_int(db, "SELECT count(*) FROM principal_blocks WHERE principal_id = ?1",
                   principal, NULL);
}

/*
 * edges - fn for the rows of sql (?1 = src, ?2 = id): columns principal id,
 * then its name and the stating source's name (named 1), or the source's
 * name alone (named 0); at most one row when once.
 */
static int edges(sqlite3 *db, const char *sql, int64_t src, int64_t id, int named, int once,
                 store_edge_fn fn, void *arg, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc = CTX_OK;

    if (stmt_get(db, sql, &s) != SQLITE_OK)
        return sql_err(db, err);
    sqlite3_bind_int64(s, 1, src);
    sqlite3_bind_int64(s, 2, id);
    while (!rc && sqlite3_step(s) == SQLITE_ROW) {
        rc = fn(arg, sqlite3_column_int64(s, 0),
                named ? (const char *)sqlite3_column_text(s, 1) : NULL,
                (const char *)sqlite3_column_text(s, named ? 2 : 1));
        if (once)
            break;
    }
    stmt_put(s);
    return rc;
}

int store_explain_accounts(sqlite3 *db, int64_t src, int64_t user, store_edge_fn fn, void *arg,
                           ctx_error *err)
{
    static const char accounts_sql[] =
        "WITH " TRUST_CTE
        " SELECT i.account_id, a.name, s.name FROM identities i JOIN principals a"
        " ON a.id = i.account_id JOIN sources s ON s.id = i.source_id"
        " WHERE i.user_id = ?2 AND i.source_id IN t ORDER BY 1";
    return edges(db, accounts_sql, src, user, 1, 0, fn, arg, err);
}

int store_explain_everyone(sqlite3 *db, int64_t src, int64_t user, store_edge_fn fn, void *arg,
                           ctx_error *err)
{
    static const char everyone_sql[] =
        "WITH " TRUST_CTE
        " SELECT p.id, s.name FROM declared_by d JOIN sources s ON s.id = d.source_id,"
        " principals p WHERE p.kind = 3 AND d.principal_id = ?2 AND d.source_id IN t"
        " ORDER BY s.name LIMIT 1";
    return edges(db, everyone_sql, src, user, 0, 1, fn, arg, err);
}

int store_explain_groups(sqlite3 *db, int64_t src, int64_t member, store_edge_fn fn, void *arg,
                         ctx_error *err)
{
    static const char groups_sql[] =
        "WITH " TRUST_CTE
        " SELECT m.group_id, g.name, s.name FROM memberships m JOIN principals g"
        " ON g.id = m.group_id JOIN sources s ON s.id = m.source_id"
        " WHERE m.member_id = ?2 AND m.source_id IN t ORDER BY s.name, g.name";
    return edges(db, groups_sql, src, member, 1, 0, fn, arg, err);
}

/* ---- a source's warnings ------------------------------------------------- */

int64_t store_explain_source(sqlite3 *db, const char *name)
{
    return one_int(db, "SELECT id FROM sources WHERE name = ?1", 0, name);
}

int64_t store_explain_live(sqlite3 *db, int64_t src)
{
    return one_int(db, "SELECT count(*) FROM documents WHERE source_id = ?1 AND deleted = 0",
                   src, NULL);
}

json_t *store_explain_undeclared(sqlite3 *db, int64_t src, ctx_error *err)
{
    /* A user nobody declared, a group none of its trusted sources declared. */
    static const char undeclared_sql[] =
        "WITH " TRUST_CTE
        " SELECT DISTINCT p.name FROM acl_sets a JOIN acl_entries e ON e.acl_id = a.id"
        " JOIN principals p ON p.id = e.principal_id"
        " WHERE a.source_id = ?1 AND EXISTS (SELECT 1 FROM chunks c"
        "  WHERE c.acl_id = a.id) AND ((p.kind = 1 AND p.declared = 0) OR (p.kind = 2"
        "  AND NOT EXISTS (SELECT 1 FROM declared_by d WHERE d.principal_id = p.id"
        "  AND d.source_id IN t)))"
        " ORDER BY p.name";
    return strings(db, undeclared_sql, src, 0, err);
}

int64_t store_explain_reachable(sqlite3 *db, int64_t src)
{
    /* ACL sets of live documents that some known user reaches (deny aside). */
    static const char reachable_sql[] =
        "WITH RECURSIVE " TRUST_CTE ","
        " reach(id) AS (SELECT id FROM principals WHERE kind = 1 AND declared = 1"
        "  UNION SELECT account_id FROM identities WHERE source_id IN t"
        "  UNION SELECT m.group_id FROM memberships m JOIN reach r ON m.member_id = r.id"
        "   WHERE m.source_id IN t),"
        " who(id) AS (SELECT id FROM reach UNION SELECT p.id FROM principals p"
        "  WHERE p.kind = 3 AND EXISTS (SELECT 1 FROM declared_by d JOIN principals u"
        "  ON u.id = d.principal_id AND u.kind = 1 WHERE d.source_id IN t))"
        " SELECT count(*) FROM acl_sets a WHERE a.source_id = ?1"
        "  AND EXISTS (SELECT 1 FROM chunks c WHERE c.acl_id = a.id)"
        "  AND EXISTS (SELECT 1 FROM acl_entries e WHERE e.acl_id = a.id AND e.deny = 0"
        "  AND e.principal_id IN who)";
    return one_int(db, reachable_sql, src, NULL);
}
