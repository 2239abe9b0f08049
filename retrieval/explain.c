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
#include "../indexer/store_read.h"
#include "acl.h"
#include "fresh.h"

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
    const char *p;
    int digits = *ref != 0;

    *doc_id = 0;
    for (p = ref; *p; p++)
        digits &= isdigit((unsigned char)*p) != 0;
    if (digits) {
        *doc_id = store_explain_doc_id(db, atoll(ref));
        if (*doc_id > 0)
            return CTX_OK;
    }
    for (p = strchr(ref, ':'); p; p = strchr(p + 1, ':')) {
        int rc = store_explain_doc_by_ext(db, ref, (size_t)(p - ref), p + 1, doc_id, err);
        if (rc)
            return rc;
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

/* What walk_edge adds an edge as: the kind of step, and for a group the member. */
enum { STEP_ACCOUNT, STEP_EVERYONE, STEP_GROUP };
typedef struct walk_step {
    path *p;
    int kind;
    const char *member;     /* STEP_GROUP: the principal the group holds */
} walk_step;

static int walk_edge(void *arg, int64_t id, const char *name, const char *by)
{
    walk_step *w = arg;
    char edge[600];

    if (w->kind == STEP_ACCOUNT)
        return path_add(w->p, id, name, "an account mapped to the user", by);
    if (w->kind == STEP_EVERYONE)
        return path_add(w->p, id, "everyone", "the user is declared", by);
    snprintf(edge, sizeof edge, "member: %s", w->member);
    return path_add(w->p, id, name, edge, by);
}

/*
 * walk - user's principals where source src's documents are concerned,
 * each with the edge that gave it and the source that stated that edge.
 * The same facts acl.c's view reads, walked one step at a time.
 */
static int walk(sqlite3 *db, int64_t src, int64_t me, const char *user, path *p,
                ctx_error *err)
{
    walk_step w = {p, STEP_ACCOUNT, NULL};
    int rc;

    if ((rc = path_add(p, me, user, "the user", NULL)))
        return rc;
    rc = store_explain_accounts(db, src, me, walk_edge, &w, err);
    w.kind = STEP_EVERYONE;
    if (!rc)
        rc = store_explain_everyone(db, src, me, walk_edge, &w, err);
    /* Breadth first over memberships: each group once, by its first edge. */
    w.kind = STEP_GROUP;
    for (size_t i = 0; !rc && i < p->n; i++) {
        /* The node's JSON outlives a move of p->v: its string stays put. */
        w.member = json_string_value(json_object_get(p->v[i].j, "principal"));
        rc = store_explain_groups(db, src, p->v[i].id, walk_edge, &w, err);
    }
    if (rc == CTX_ESTORE)
        return rc; /* err says what SQLite said */
    return rc ? ctx_error_set(err, rc, "explain: out of memory") : CTX_OK;
}

/* ---- the verdict ---------------------------------------------------------- */

/* The document explain_access is about, as store_explain_doc gives it. */
typedef struct doc_seen {
    int64_t doc_id, src, acl_id;
    int deleted;
    char *src_name;     /* new */
    json_t *doc;        /* new: the answer's "document" */
} doc_seen;

static void doc_take(void *arg, const store_explain_row *d)
{
    doc_seen *x = arg;

    x->src = d->source_id;
    x->src_name = ctx_strdup(d->source);
    x->acl_id = d->acl_id;
    x->deleted = d->deleted;
    x->doc = json_pack("{s:I,s:s,s:s,s:s,s:s?,s:b,s:I}", "doc_id", (json_int_t)x->doc_id,
                       "source", x->src_name, "stream", d->stream, "external_id", d->ext_id,
                       "title", d->title, "deleted", x->deleted, "acl_synced_at",
                       (json_int_t)d->acl_synced_at);
}

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
    doc_seen seen = {0, 0, 0, 0, NULL, NULL};

    *out = NULL;
    acl_user_name(user, uname, sizeof uname);
    if ((rc = explain_doc_ref(db, ref, &doc_id, err)))
        goto done;
    seen.doc_id = doc_id;
    if ((rc = store_explain_doc(db, doc_id, doc_take, &seen, err)))
        goto done;
    src = seen.src;
    src_name = seen.src_name;
    acl_id = seen.acl_id;
    deleted = seen.deleted;
    doc = seen.doc;
    if (!doc || !src_name) {
        rc = ctx_error_set(err, CTX_ENOMEM, "explain: out of memory");
        goto done;
    }
    if (!(allow = store_explain_acl_names(db, acl_id, 0, err)) ||
        !(deny = store_explain_acl_names(db, acl_id, 1, err)) ||
        !(labels = store_explain_acl_labels(db, acl_id, err)) ||
        !(trusted = store_explain_trusted(db, src, err))) {
        rc = err->code;
        goto done;
    }
    if (deleted) {
        ok = 0;
        reason(reasons, "the document was deleted at the source");
    }

    /* Who the user is where this source's documents are concerned. */
    me = store_explain_user(db, uname);
    if (me > 0 && store_explain_blocks(db, me) > 0) {
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
    json_t *undeclared, *examples, *warnings, *out;
    int64_t src, docs, reachable;
    size_t n;

    src = store_explain_source(db, name);
    if (src <= 0)
        return NULL;
    docs = store_explain_live(db, src);
    if (!(undeclared = store_explain_undeclared(db, src, err)))
        return NULL;
    reachable = store_explain_reachable(db, src);
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
