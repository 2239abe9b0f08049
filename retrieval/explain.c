/*
 * explain.c - the reasons behind an access verdict, and a source's
 * permission warnings. See explain.h.
 */
#include "explain.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/stmt.h"
#include "acl.h"
#include "fresh.h"

/* The sources whose facts govern source ?1's documents: its own, the
 * directories, and those it takes principals_from (as acl.c's view). */
#define TRUST_CTE                                                                            \
    "t(id) AS (SELECT ?1 UNION SELECT s.id FROM source_trust x"                              \
    "  JOIN sources s ON s.name = x.trusted"                                                 \
    "  WHERE x.source IN ((SELECT name FROM sources WHERE id = ?1), '*'))"

/* ---- small readers ------------------------------------------------------ */

/* strings - column 0 of every row of sql (parameters ?1 = a, ?2 = b when
 * it has one) as a JSON array (new); NULL on error. */
static json_t *strings(sqlite3 *db, const char *sql, int64_t a, int64_t b, ctx_error *err)
{
    sqlite3_stmt *s;
    json_t *arr = json_array();
    int rc;

    if (stmt_get(db, sql, &s) != SQLITE_OK) {
        ctx_error_set(err, CTX_ESTORE, "explain: %s", sqlite3_errmsg(db));
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
        ctx_error_set(err, CTX_ESTORE, "explain: %s", sqlite3_errmsg(db));
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

static int in_json(json_t *arr, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (!strcmp(json_string_value(v), name))
            return 1;
    return 0;
}

/* ---- documents by reference --------------------------------------------- */

int explain_doc_ref(sqlite3 *db, const char *ref, int64_t *doc_id, ctx_error *err)
{
    static const char by_ext[] =
        "SELECT d.id FROM documents d JOIN sources s ON s.id = d.source_id"
        " WHERE s.name = ?1 AND d.ext_id = ?2 ORDER BY d.deleted, d.id LIMIT 1";
    const char *p;
    int digits = *ref != 0;

    *doc_id = 0;
    for (p = ref; *p; p++)
        digits &= isdigit((unsigned char)*p) != 0;
    if (digits) {
        *doc_id = one_int(db, "SELECT id FROM documents WHERE id = ?1", atoll(ref), NULL);
        if (*doc_id > 0)
            return CTX_OK;
    }
    for (p = strchr(ref, ':'); p; p = strchr(p + 1, ':')) {
        sqlite3_stmt *s;
        if (stmt_get(db, by_ext, &s) != SQLITE_OK)
            return ctx_error_set(err, CTX_ESTORE, "explain: %s", sqlite3_errmsg(db));
        sqlite3_bind_text(s, 1, ref, (int)(p - ref), SQLITE_STATIC);
        sqlite3_bind_text(s, 2, p + 1, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW)
            *doc_id = sqlite3_column_int64(s, 0);
        stmt_put(s);
        if (*doc_id)
            return CTX_OK;
    }
    *doc_id = 0;
    return ctx_error_set(err, CTX_ENOTFOUND,
                         "no document \"%s\": give its id or SOURCE:EXTERNAL_ID", ref);
}

/* ---- the principal path -------------------------------------------------- */

typedef struct node {
    int64_t id;
    json_t *j;      /* {"principal", "via", "by"}; owned by the answer's array */
} node;

typedef struct path {
    node *v;
    size_t n, cap;
    json_t *arr;    /* the answer's "principals" */
} path;

static int path_has(const path *p, int64_t id)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].id == id)
            return 1;
    return 0;
}

static int path_add(path *p, int64_t id, const char *name, const char *via, const char *by)
{
    if (path_has(p, id))
        return CTX_OK;
    if (p->n == p->cap) {
        node *v = ctx_realloc(p->v, (p->cap = p->cap ? p->cap * 2 : 16) * sizeof *v);
        if (!v)
            return CTX_ENOMEM;
        p->v = v;
    }
    p->v[p->n].id = id;
    p->v[p->n].j = json_pack("{s:s,s:s,s:s?}", "principal", name, "via", via, "by", by);
    json_array_append(p->arr, p->v[p->n].j);
    json_decref(p->v[p->n].j);
    p->n++;
    return CTX_OK;
}

/*
 * walk - user's principals where source src's documents are concerned,
 * each with the edge that gave it and the source that stated that edge.
 * The same facts acl.c's view reads, walked one step at a time.
 */
static int walk(sqlite3 *db, int64_t src, int64_t me, const char *user, path *p,
                ctx_error *err)
{
    static const char accounts_sql[] =
        "WITH " TRUST_CTE
        " SELECT i.account_id, a.name, s.name FROM identities i JOIN principals a"
        " ON a.id = i.account_id JOIN sources s ON s.id = i.source_id"
        " WHERE i.user_id = ?2 AND i.source_id IN t ORDER BY 1";
    static const char everyone_sql[] =
        "WITH " TRUST_CTE
        " SELECT p.id, s.name FROM declared_by d JOIN sources s ON s.id = d.source_id,"
        " principals p WHERE p.kind = 3 AND d.principal_id = ?2 AND d.source_id IN t"
        " ORDER BY s.name LIMIT 1";
    static const char groups_sql[] =
        "WITH " TRUST_CTE
        " SELECT m.group_id, g.name, s.name FROM memberships m JOIN principals g"
        " ON g.id = m.group_id JOIN sources s ON s.id = m.source_id"
        " WHERE m.member_id = ?2 AND m.source_id IN t ORDER BY s.name, g.name";
    sqlite3_stmt *s;
    int rc = CTX_OK;

    if ((rc = path_add(p, me, user, "the user", NULL)))
        return rc;
    if (stmt_get(db, accounts_sql, &s) != SQLITE_OK)
        goto sqlfail;
    sqlite3_bind_int64(s, 1, src);
    sqlite3_bind_int64(s, 2, me);
    while (!rc && sqlite3_step(s) == SQLITE_ROW)
        rc = path_add(p, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
                      "an account mapped to the user", (const char *)sqlite3_column_text(s, 2));
    stmt_put(s);
    if (stmt_get(db, everyone_sql, &s) != SQLITE_OK)
        goto sqlfail;
    sqlite3_bind_int64(s, 1, src);
    sqlite3_bind_int64(s, 2, me);
    if (!rc && sqlite3_step(s) == SQLITE_ROW)
        rc = path_add(p, sqlite3_column_int64(s, 0), "everyone", "the user is declared",
                      (const char *)sqlite3_column_text(s, 1));
    stmt_put(s);
    /* Breadth first over memberships: each group once, by its first edge. */
    for (size_t i = 0; !rc && i < p->n; i++) {
        /* The node's JSON outlives a move of p->v: its string stays put. */
        const char *via = json_string_value(json_object_get(p->v[i].j, "principal"));
        if (stmt_get(db, groups_sql, &s) != SQLITE_OK)
            goto sqlfail;
        sqlite3_bind_int64(s, 1, src);
        sqlite3_bind_int64(s, 2, p->v[i].id);
        while (!rc && sqlite3_step(s) == SQLITE_ROW) {
            char edge[600];
            snprintf(edge, sizeof edge, "member: %s", via);
            rc = path_add(p, sqlite3_column_int64(s, 0),
                          (const char *)sqlite3_column_text(s, 1), edge,
                          (const char *)sqlite3_column_text(s, 2));
        }
        stmt_put(s);
    }
    return rc ? ctx_error_set(err, rc, "explain: out of memory") : CTX_OK;
sqlfail:
    return ctx_error_set(err, CTX_ESTORE, "explain: %s", sqlite3_errmsg(db));
}

/* ---- the verdict ---------------------------------------------------------- */

static const char doc_sql[] =
    "SELECT d.id, d.source_id, s.name, d.stream, d.ext_id, d.title, d.acl_id, d.deleted,"
    " d.acl_synced_at FROM documents d JOIN sources s ON s.id = d.source_id WHERE d.id = ?1";
static const char list_sql[] =
    "SELECT p.name FROM acl_entries e JOIN principals p ON p.id = e.principal_id"
    " WHERE e.acl_id = ?1 AND e.deny = ?2 ORDER BY p.name";
static const char labels_sql[] =
    "SELECT l.name FROM acl_labels a JOIN labels l ON l.id = a.label_id"
    " WHERE a.acl_id = ?1 ORDER BY l.name";
static const char trusted_sql[] =
    "WITH " TRUST_CTE " SELECT s.name FROM t JOIN sources s ON s.id = t.id"
    " ORDER BY s.id <> ?1, s.name";

static void reason(json_t *reasons, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason(json_t *reasons, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_array_append_new(reasons, json_string(buf));
}

/* matched - the names of path p also in list (new JSON array). */
static json_t *matched(const path *p, json_t *list)
{
    json_t *m = json_array();
    for (size_t i = 0; i < p->n; i++) {
        const char *n = json_string_value(json_object_get(p->v[i].j, "principal"));
        if (in_json(list, n))
            json_array_append_new(m, json_string(n));
    }
    return m;
}

/* grant_check - may agent g hand out a document of src with labels? */
static int grant_check(const ctx_agent_grant *g, const char *src, json_t *labels,
                       json_t *reasons)
{
    size_t i, j;
    json_t *l;
    int any_src = 0, any_label = 0;

    for (j = 0; j < g->sources.n; j++)
        any_src |= !strcmp(g->sources.v[j], "*") || !strcmp(g->sources.v[j], src);
    if (!any_src) {
        reason(reasons, "agent %s may not read source %s (its grant's \"sources\")", g->name,
               src);
        return 0;
    }
    for (j = 0; j < g->labels.n; j++)
        any_label |= !strcmp(g->labels.v[j], "*");
    json_array_foreach(labels, i, l) {
        int ok = any_label;
        for (j = 0; j < g->labels.n && !ok; j++)
            ok = !strcmp(g->labels.v[j], json_string_value(l));
        if (!ok) {
            reason(reasons, "agent %s may not read label %s (its grant's \"labels\")", g->name,
                   json_string_value(l));
            return 0;
        }
    }
    reason(reasons, "agent %s's grant covers source %s and the document's labels", g->name,
           src);
    return 1;
}

int explain_access(sqlite3 *db, const ctx_config *cfg, const char *user, const char *agent,
                   const char *ref, int64_t now_ms, json_t **out, ctx_error *err)
{
    char uname[1024], *src_name = NULL;
    json_t *reasons = json_array(), *allow = NULL, *deny = NULL, *labels = NULL;
    json_t *trusted = NULL, *doc = NULL, *perms = json_null(), *agent_j = json_null();
    path p = {NULL, 0, 0, json_array()};
    int64_t doc_id, src = 0, acl_id = 0, me;
    int rc, deleted = 0, ok = 1, acl_ok = 0, engine_ok = 0;
    sqlite3_stmt *s;

    *out = NULL;
    acl_user_name(user, uname, sizeof uname);
    if ((rc = explain_doc_ref(db, ref, &doc_id, err)))
        goto done;
    if (stmt_get(db, doc_sql, &s) != SQLITE_OK) {
        rc = ctx_error_set(err, CTX_ESTORE, "explain: %s", sqlite3_errmsg(db));
        goto done;
    }
    sqlite3_bind_int64(s, 1, doc_id);
    if (sqlite3_step(s) == SQLITE_ROW) {
        src = sqlite3_column_int64(s, 1);
        src_name = ctx_strdup((const char *)sqlite3_column_text(s, 2));
        acl_id = sqlite3_column_int64(s, 6);
        deleted = sqlite3_column_int(s, 7);
        doc = json_pack("{s:I,s:s,s:s,s:s,s:s?,s:b,s:I}", "doc_id", (json_int_t)doc_id,
                        "source", src_name, "stream", sqlite3_column_text(s, 3),
                        "external_id", sqlite3_column_text(s, 4), "title",
                        sqlite3_column_text(s, 5), "deleted", deleted, "acl_synced_at",
                        (json_int_t)sqlite3_column_int64(s, 8));
    }
    stmt_put(s);
    if (!doc || !src_name) {
        rc = ctx_error_set(err, CTX_ENOMEM, "explain: out of memory");
        goto done;
    }
    if (!(allow = strings(db, list_sql, acl_id, 0, err)) ||
        !(deny = strings(db, list_sql, acl_id, 1, err)) ||
        !(labels = strings(db, labels_sql, acl_id, 0, err)) ||
        !(trusted = strings(db, trusted_sql, src, 0, err))) {
        rc = err->code;
        goto done;
    }
    if (deleted) {
        ok = 0;
        reason(reasons, "the document was deleted at the source");
    }

    /* Who the user is where this source's documents are concerned. */
    me = one_int(db, "SELECT id FROM principals WHERE name = ?1 AND kind = 1 AND declared = 1",
                 0, uname);
    if (me > 0 && one_int(db, "SELECT count(*) FROM principal_blocks WHERE principal_id = ?1",
                          me, NULL) > 0) {
        ok = 0;
        reason(reasons, "%s was deprovisioned by a directory (SCIM: deleted or active"
               " false): a deprovisioned user reads nothing", uname);
    } else if (me <= 0) {
        ok = 0;
        reason(reasons, "%s is declared by no source: users become known when a source"
               " declares them (a users stream or query, a _principals.json, a directory)",
               uname);
    } else {
        json_t *ma, *md;
        if ((rc = walk(db, src, me, uname, &p, err)))
            goto done;
        ma = matched(&p, allow);
        md = matched(&p, deny);
        acl_ok = json_array_size(ma) && !json_array_size(md);
        if (!json_array_size(allow))
            reason(reasons, "the document's allow list is empty: nobody may read it");
        else if (!json_array_size(ma))
            reason(reasons, "none of %s's principals where %s is concerned is on the allow"
                   " list (only the facts of %s count there)", uname, src_name,
                   json_array_size(trusted) > 1 ? "it and the sources it trusts" : "it");
        else
            reason(reasons, "allowed through %s", json_string_value(json_array_get(ma, 0)));
        if (json_array_size(md))
            reason(reasons, "denied through %s", json_string_value(json_array_get(md, 0)));
        json_object_set_new(doc, "matched_allow", ma);
        json_object_set_new(doc, "matched_deny", md);
        /* The engine's own answer: explain never disagrees with search. */
        {
            acl_access a;
            ctx_error aerr;
            if (!acl_access_get(db, uname, &a, &aerr))
                for (size_t i = 0; i < a.readable.n && !engine_ok; i++)
                    engine_ok = a.readable.ids[i] == acl_id;
            acl_access_free(&a);
        }
        if (engine_ok != acl_ok) {
            reason(reasons, "the access engine says %s: trust it (and report this)",
                   engine_ok ? "readable" : "not readable");
            acl_ok = engine_ok;
        }
        if (!acl_ok)
            ok = 0;
    }

    if (agent) {
        const ctx_agent_grant *g = ctx_config_agent(cfg, agent);
        if (!g) {
            ok = 0;
            reason(reasons, "agent %s is not registered in the config's \"agents\"", agent);
            agent_j = json_pack("{s:s,s:b}", "name", agent, "registered", 0);
        } else {
            int gok = grant_check(g, src_name, labels, reasons);
            ok &= gok;
            agent_j = json_pack("{s:s,s:b,s:b}", "name", agent, "registered", 1, "grants", gok);
        }
    }

    {
        fresh_report fr;
        if ((rc = fresh_check(db, cfg, now_ms, &fr, err))) {
            fresh_report_free(&fr);
            goto done;
        }
        for (size_t i = 0; i < fr.n; i++) {
            const fresh_source *f = &fr.v[i];
            if (strcmp(f->name, src_name))
                continue;
            json_decref(perms);
            perms = json_pack("{s:o,s:o,s:b}", "synced_at",
                              f->synced_at ? json_integer(f->synced_at) : json_null(),
                              "max_permission_age_s",
                              f->bound_ms < 0 ? json_null() : json_integer(f->bound_ms / 1000),
                              "withheld", f->withheld);
            if (f->withheld) {
                ok = 0;
                reason(reasons, "source %s is withheld: %s", src_name, f->why);
            }
        }
        fresh_report_free(&fr);
    }
    if (ok)
        reason(reasons, "readable");
    *out = json_pack("{s:b,s:s,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "readable", ok, "user",
                     uname, "reasons", reasons, "document", doc, "principals", p.arr,
                     "trusted_sources", trusted, "allow", allow, "deny", deny, "labels",
                     labels, "agent", agent_j, "permissions", perms);
    if (!*out)
        rc = ctx_error_set(err, CTX_ENOMEM, "explain: out of memory");
done:
    json_decref(reasons);
    json_decref(doc);
    json_decref(allow);
    json_decref(deny);
    json_decref(labels);
    json_decref(trusted);
    json_decref(perms);
    json_decref(agent_j);
    json_decref(p.arr);
    ctx_free(p.v);
    ctx_free(src_name);
    return rc;
}

/* ---- a source's warnings ------------------------------------------------- */

json_t *explain_source_warnings(sqlite3 *db, const char *name, ctx_error *err)
{
    /* Principals the source's live ACLs name that nothing governing it declared:
     * a user nobody declared, a group none of its trusted sources declared. */
    static const char undeclared_sql[] =
        "WITH " TRUST_CTE
        " SELECT DISTINCT p.name FROM acl_sets a JOIN acl_entries e ON e.acl_id = a.id"
        " JOIN principals p ON p.id = e.principal_id"
        " WHERE a.source_id = ?1 AND EXISTS (SELECT 1 FROM chunks c"
        "  WHERE c.acl_id = a.id) AND ((p.kind = 1 AND p.declared = 0) OR (p.kind = 2"
        "  AND NOT EXISTS (SELECT 1 FROM declared_by d WHERE d.principal_id = p.id"
        "  AND d.source_id IN t)))"
        " ORDER BY p.name";
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
    json_t *undeclared, *examples, *warnings, *out;
    int64_t src, docs, reachable;
    size_t n;

    src = one_int(db, "SELECT id FROM sources WHERE name = ?1", 0, name);
    if (src <= 0)
        return NULL;
    docs = one_int(db, "SELECT count(*) FROM documents WHERE source_id = ?1 AND deleted = 0",
                   src, NULL);
    if (!(undeclared = strings(db, undeclared_sql, src, 0, err)))
        return NULL;
    reachable = one_int(db, reachable_sql, src, NULL);
    n = json_array_size(undeclared);
    examples = json_array();
    for (size_t i = 0; i < n && i < 5; i++)
        json_array_append(examples, json_array_get(undeclared, i));
    json_decref(undeclared);
    warnings = json_array();
    if (n) {
        char ex[512] = "";
        size_t i;
        json_t *v;
        json_array_foreach(examples, i, v) {
            size_t len = strlen(ex);
            snprintf(ex + len, sizeof ex - len, "%s%s", i ? ", " : "", json_string_value(v));
        }
        reason(warnings, "%s: its ACLs name %zu principal%s that no source governing it"
               " declared (%s%s): nobody reaches them; declare users and groups with a"
               " users/groups stream, a _principals.json, or take them from a directory"
               " (\"directory\": true, \"principals_from\")", name, n, n == 1 ? "" : "s",
               ex, n > 5 ? ", ..." : "");
    }
    if (docs > 0 && reachable == 0)
        reason(warnings, "%s: %lld documents, and no known user can read any of them; the"
               " users and groups its ACLs name are not declared where its documents are"
               " concerned", name, (long long)docs);
    out = json_pack("{s:s,s:I,s:{s:I,s:o},s:b,s:o}", "source", name, "documents",
                    (json_int_t)docs, "undeclared", "count", (json_int_t)n, "examples",
                    examples, "readable_by_nobody", docs > 0 && reachable == 0, "warnings",
                    warnings);
    return out;
}
