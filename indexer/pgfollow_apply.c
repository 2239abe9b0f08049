/*
 * pgfollow_apply.c - pgoutput's messages (protocol version 1: BEGIN,
 * RELATION, INSERT, UPDATE, DELETE, COMMIT; the others are skipped) and
 * the first copy's rows, applied to the replica's store as a local sync
 * applies connector messages (see pgfollow.h, docs/cluster.md).
 *
 * ACL sets are never changed once written (a set is its key), so a set is
 * read by id from PostgreSQL when a document names it and remembered;
 * likewise a source's name. A group's members come with its principal row
 * in the same transaction (the writer replaces them together), so they
 * are applied at its COMMIT as one PRINCIPAL message.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "pgfollow_int.h"
#include "pgstore_int.h"

#define ACL_CACHE 1024

static const char *const table_cols[][PGF_COLS] = {
    [PGF_SOURCES] = {"id", "name", "type", "acl_synced_at"},
    [PGF_DOCS] = {"id", "source", "stream", "ext_id", "title", "url", "body", "metadata",
                  "updated_at", "acl", "hash", "epoch", "deleted"},
    [PGF_PRINCIPALS] = {"source", "id", "kind", "display_name", "email", "maps_to"},
    [PGF_MEMBERS] = {"source", "principal", "member"},
    [PGF_VECTORS] = {"doc", "model", "text_hash", "vec"},
};

static int bad(ctx_error *err, const char *what)
{
    return ctx_error_set(err, CTX_ESTORE, "cluster: a decoded change is malformed (%s)", what);
}

static int64_t num(const pgf_row *r, int c)
{
    return r->kind[c] == 't' ? strtoll(r->v[c], NULL, 10) : 0;
}

static const char *val(const pgf_row *r, int c)
{
    return r->kind[c] == 't' ? r->v[c] : NULL;
}

/* ---- what PostgreSQL is asked: sources and ACL sets by id ---- */

static int source_local(pgfollow *f, int64_t pg_id, int64_t *local, ctx_error *err)
{
    pg_num b;
    PGresult *r;
    pgf_source *grown;
    int rc;

    for (size_t i = 0; i < f->nsources; i++)
        if (f->sources[i].pg_id == pg_id) {
            *local = f->sources[i].local_id;
            return CTX_OK;
        }
    if (!(r = pg__q(f->pg, err, "read a source", "SELECT name, type FROM ctxgate.sources"
                    " WHERE id = $1", 1, pg__i64(&b, pg_id))))
        return err->code;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return ctx_error_set(err, CTX_ESTORE, "cluster: source %lld is not in PostgreSQL",
                             (long long)pg_id);
    }
    rc = store_source(f->st, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), local, err);
    PQclear(r);
    if (rc)
        return rc;
    if (!(grown = ctx_realloc(f->sources, (f->nsources + 1) * sizeof *grown)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    f->sources = grown;
    f->sources[f->nsources].pg_id = pg_id;
    f->sources[f->nsources++].local_id = *local;
    f->new_sources = 1;
    return CTX_OK;
}

static void acl_free(pgf_acl *a)
{
    size_t n = a->acl.n_allow + a->acl.n_deny + a->acl.n_labels;

    for (size_t i = 0; i < n; i++)
        ctx_free(a->strs[i]);
    ctx_free(a->strs);
}

void pgf__cache_clear(pgfollow *f)
{
    for (size_t i = 0; i < f->nacls; i++)
        acl_free(&f->acls[i]);
    ctx_free(f->acls);
    f->acls = NULL;
    f->nacls = 0;
    ctx_free(f->sources);
    f->sources = NULL;
    f->nsources = 0;
    pgf__txn_reset(f);
}

static int acl_get(pgfollow *f, int64_t id, const ctx_acl **out, ctx_error *err)
{
    pg_num b;
    PGresult *e, *l;
    pgf_acl a = {0};
    size_t ne, nl, k = 0;

    for (size_t i = 0; i < f->nacls; i++)
        if (f->acls[i].id == id) {
            *out = &f->acls[i].acl;
            return CTX_OK;
        }
    if (!f->acls && !(f->acls = ctx_calloc(ACL_CACHE, sizeof *f->acls)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    if (f->nacls == ACL_CACHE) {
        for (size_t i = 0; i < f->nacls; i++)
            acl_free(&f->acls[i]);
        f->nacls = 0;
    }
    pg__i64(&b, id);
    /* allow before deny: "allow" < "deny" */
    if (!(e = pg__q(f->pg, err, "read an ACL set", "SELECT effect, principal FROM"
                    " ctxgate.acl_entries WHERE acl = $1 ORDER BY effect, principal", 1, b.s)))
        return err->code;
    if (!(l = pg__q(f->pg, err, "read an ACL set's labels", "SELECT label FROM"
                    " ctxgate.acl_labels WHERE acl = $1 ORDER BY label", 1, b.s))) {
        PQclear(e);
        return err->code;
    }
    ne = (size_t)PQntuples(e);
    nl = (size_t)PQntuples(l);
    if (!(a.strs = ctx_calloc(ne + nl + 1, sizeof *a.strs)))
        goto oom;
    for (size_t i = 0; i < ne; i++, k++) {
        if (!(a.strs[k] = ctx_strdup(PQgetvalue(e, (int)i, 1))))
            goto oom;
        if (!strcmp(PQgetvalue(e, (int)i, 0), "allow"))
            a.acl.n_allow++;
        else
            a.acl.n_deny++;
    }
    for (size_t i = 0; i < nl; i++, k++)
        if (!(a.strs[k] = ctx_strdup(PQgetvalue(l, (int)i, 0))))
            goto oom;
    a.acl.n_labels = nl;
    a.acl.allow = (const char *const *)a.strs;
    a.acl.deny = (const char *const *)a.strs + a.acl.n_allow;
    a.acl.labels = (const char *const *)a.strs + ne;
    a.id = id;
    PQclear(e);
    PQclear(l);
    f->acls[f->nacls] = a;
    *out = &f->acls[f->nacls++].acl;
    return CTX_OK;
oom:
    for (size_t i = 0; a.strs && i < k; i++)
        ctx_free(a.strs[i]);
    ctx_free(a.strs);
    PQclear(e);
    PQclear(l);
    return ctx_error_set(err, CTX_ENOMEM, "out of memory");
}

/* ---- applying rows ---- */

static int apply_source(pgfollow *f, const pgf_row *r, ctx_error *err)
{
    int64_t local;
    int rc;

    if (r->kind[S_ID] != 't')
        return bad(err, "a source without id");
    if ((rc = source_local(f, num(r, S_ID), &local, err)))
        return rc;
    if (r->kind[S_SYNCED] == 't')
        return store_source_acl_synced_put(f->st, local, num(r, S_SYNCED), err);
    return CTX_OK;
}

/* doc_content - the text columns pgoutput left out (unchanged, stored
 * out of line), read by id; *res holds them (PQclear it). */
static int doc_content(pgfollow *f, pgf_row *r, PGresult **res, ctx_error *err)
{
    static const int cols[] = {D_TITLE, D_URL, D_BODY, D_META};
    pg_num b;

    if (!(*res = pg__q(f->pg, err, "read a document", "SELECT title, url, body, metadata FROM"
                       " ctxgate.documents WHERE id = $1", 1, pg__i64(&b, num(r, D_ID)))))
        return err->code;
    if (PQntuples(*res) != 1)
        return bad(err, "a changed document is not in PostgreSQL");
    for (int i = 0; i < 4; i++)
        if (r->kind[cols[i]] == 'u') {
            r->kind[cols[i]] = PQgetisnull(*res, 0, i) ? 'n' : 't';
            r->v[cols[i]] = PQgetvalue(*res, 0, i);
        }
    return CTX_OK;
}

static int apply_doc(pgfollow *f, pgf_row *r, ctx_error *err)
{
    static const ctx_acl nobody = {0};
    const ctx_acl *acl = NULL;
    const char *stream = val(r, D_STREAM), *ext = val(r, D_EXT), *hash = val(r, D_HASH);
    store_doc_info info;
    PGresult *res = NULL;
    ctx_record rec;
    int rc;

    if (!stream || !ext || !hash || r->kind[D_SOURCE] != 't' || r->kind[D_DELETED] != 't')
        return bad(err, "a document without source, stream, ext_id, hash or deleted");
    if ((rc = source_local(f, num(r, D_SOURCE), &f->ing.source, err)))
        return rc;
    f->ing.epoch = num(r, D_EPOCH);
    f->docs++;
    if (!strcmp(r->v[D_DELETED], "t"))
        return ingest_delete(&f->ing, stream, ext, err);
    if (r->kind[D_ACL] == 't' && (rc = acl_get(f, num(r, D_ACL), &acl, err)))
        return rc;
    if ((rc = store_doc_lookup(f->st, f->ing.source, stream, ext, &info, err)))
        return rc;
    if (info.id && !info.deleted && !strcmp(info.hash, hash))
        return ingest_acl(&f->ing, stream, ext, acl ? acl : &nobody, err);
    for (int c = D_TITLE; c <= D_META; c++)
        if (r->kind[c] == 'u') {
            if ((rc = doc_content(f, r, &res, err))) {
                PQclear(res);
                return rc;
            }
            break;
        }
    memset(&rec, 0, sizeof rec);
    rec.stream = stream;
    rec.id = ext;
    rec.title = val(r, D_TITLE);
    rec.url = val(r, D_URL);
    rec.body = val(r, D_BODY);
    rec.body_len = rec.body ? strlen(rec.body) : 0;
    rec.metadata_json = val(r, D_META);
    rec.updated_at_ms = num(r, D_UPDATED);
    rec.acl = acl;
    rc = ingest_record(&f->ing, &rec, err);
    PQclear(res);
    return rc;
}

void pgf__txn_reset(pgfollow *f)
{
    for (size_t i = 0; i < f->npending; i++) {
        pgf_principal *p = &f->pending[i];
        ctx_free(p->id);
        ctx_free(p->kind);
        ctx_free(p->display);
        ctx_free(p->email);
        ctx_free(p->maps);
        for (size_t j = 0; j < p->nmembers; j++)
            ctx_free(p->members[j]);
        ctx_free(p->members);
    }
    ctx_free(f->pending);
    f->pending = NULL;
    f->npending = 0;
}

static pgf_principal *pending_find(pgfollow *f, int64_t source, const char *id)
{
    for (size_t i = f->npending; i-- > 0;)
        if (f->pending[i].source == source && !strcmp(f->pending[i].id, id))
            return &f->pending[i];
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? ctx_strdup(s) : NULL;
}

/* A principal row: it (and its members, which follow) replaces what the store has. */
static int note_principal(pgfollow *f, const pgf_row *r, ctx_error *err)
{
    pgf_principal *p, *grown;

    if (r->kind[P_SOURCE] != 't' || r->kind[P_ID] != 't' || r->kind[P_KIND] != 't')
        return bad(err, "a principal without source, id or kind");
    if (!(p = pending_find(f, num(r, P_SOURCE), r->v[P_ID]))) {
        if (!(grown = ctx_realloc(f->pending, (f->npending + 1) * sizeof *grown)))
            return ctx_error_set(err, CTX_ENOMEM, "out of memory");
        f->pending = grown;
        p = &f->pending[f->npending++];
        memset(p, 0, sizeof *p);
        p->source = num(r, P_SOURCE);
        if (!(p->id = ctx_strdup(r->v[P_ID])))
            return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    }
    ctx_free(p->kind);
    ctx_free(p->display);
    ctx_free(p->email);
    ctx_free(p->maps);
    for (size_t j = 0; j < p->nmembers; j++)
        ctx_free(p->members[j]);
    p->nmembers = 0;
    p->kind = ctx_strdup(r->v[P_KIND]);
    p->display = dup_or_null(val(r, P_DISPLAY));
    p->email = dup_or_null(val(r, P_EMAIL));
    p->maps = dup_or_null(val(r, P_MAPS));
    if (!p->kind)
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    return CTX_OK;
}

static int note_member(pgfollow *f, const pgf_row *r, ctx_error *err)
{
    pgf_principal *p;
    char **grown;

    if (r->kind[M_SOURCE] != 't' || r->kind[M_PRINCIPAL] != 't' || r->kind[M_MEMBER] != 't')
        return bad(err, "a membership without source, principal or member");
    if (!(p = pending_find(f, num(r, M_SOURCE), r->v[M_PRINCIPAL]))) {
        ctx_log(CTX_LOG_WARN, "replica", "a member of %s came without its group's row;"
                " skipped", r->v[M_PRINCIPAL]);
        return CTX_OK;
    }
    if (!(grown = ctx_realloc(p->members, (p->nmembers + 1) * sizeof *grown)) ||
        !(grown[p->nmembers] = ctx_strdup(r->v[M_MEMBER]))) {
        if (grown)
            p->members = grown;
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    }
    p->members = grown;
    p->nmembers++;
    return CTX_OK;
}

static int apply_principals(pgfollow *f, ctx_error *err)
{
    int rc = CTX_OK;

    for (size_t i = 0; i < f->npending && !rc; i++) {
        pgf_principal *q = &f->pending[i];
        ctx_principal p;
        int64_t local;
        memset(&p, 0, sizeof p);
        p.kind = !strcmp(q->kind, "group") ? CTX_PRINCIPAL_GROUP : CTX_PRINCIPAL_USER;
        p.id = q->id;
        p.display_name = q->display;
        p.email = q->email;
        p.maps_to = q->maps;
        p.members = (const char *const *)q->members;
        p.n_members = q->nmembers;
        if (!(rc = source_local(f, q->source, &local, err)))
            rc = store_principal_put(f->st, local, &p, err);
    }
    pgf__txn_reset(f);
    return rc;
}

/* ---- pgoutput's messages ---- */

typedef struct rd {
    const unsigned char *p;
    size_t len, at;
    int bad;
} rd;

static uint64_t rd_n(rd *r, int bytes)
{
    uint64_t v = 0;

    if (r->at + (size_t)bytes > r->len) {
        r->bad = 1;
        return 0;
    }
    for (int i = 0; i < bytes; i++)
        v = v << 8 | r->p[r->at++];
    return v;
}

static const char *rd_str(rd *r)
{
    const char *s = (const char *)r->p + r->at;
    const void *end = r->at < r->len ? memchr(s, 0, r->len - r->at) : NULL;

    if (!end) {
        r->bad = 1;
        return "";
    }
    r->at += (size_t)((const char *)end - s) + 1;
    return s;
}

static pgf_rel *rel_find(pgfollow *f, uint32_t oid)
{
    for (size_t i = 0; i < f->nrels; i++)
        if (f->rels[i].oid == oid)
            return &f->rels[i];
    return NULL;
}

static int on_relation(pgfollow *f, rd *r, ctx_error *err)
{
    uint32_t oid = (uint32_t)rd_n(r, 4);
    const char *ns = rd_str(r), *name = rd_str(r);
    pgf_rel *rel = rel_find(f, oid);
    int natts;

    rd_n(r, 1);
    natts = (int)rd_n(r, 2);
    if (!rel) {
        if (f->nrels == sizeof f->rels / sizeof f->rels[0])
            return bad(err, "too many relations");
        rel = &f->rels[f->nrels++];
    }
    memset(rel, 0, sizeof *rel);
    rel->oid = oid;
    rel->table = strcmp(ns, "ctxgate")            ? PGF_OTHER
                 : !strcmp(name, "sources")       ? PGF_SOURCES
                 : !strcmp(name, "documents")     ? PGF_DOCS
                 : !strcmp(name, "principals")    ? PGF_PRINCIPALS
                 : !strcmp(name, "memberships")   ? PGF_MEMBERS
                 : !strcmp(name, "chunk_vectors") ? PGF_VECTORS
                                                  : PGF_OTHER;
    if (natts > 64)
        return bad(err, "a relation with too many columns");
    rel->natts = natts;
    for (int i = 0; i < natts; i++) {
        const char *col;
        rd_n(r, 1);
        col = rd_str(r);
        rd_n(r, 8);
        rel->map[i] = -1;
        for (int c = 0; rel->table != PGF_OTHER && c < PGF_COLS && table_cols[rel->table][c];
             c++)
            if (!strcmp(table_cols[rel->table][c], col))
                rel->map[i] = (signed char)c;
    }
    return r->bad ? bad(err, "RELATION") : CTX_OK;
}

/* read_tuple - TupleData into row; values copied into *buf (ctx_free it). */
static int read_tuple(rd *r, const pgf_rel *rel, pgf_row *row, char **buf, ctx_error *err)
{
    int n = (int)rd_n(r, 2);
    size_t used = 0;

    memset(row, 0, sizeof *row);
    if (!(*buf = ctx_malloc(r->len + PGF_COLS + 1)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    for (int i = 0; i < n && !r->bad; i++) {
        int kind = (int)rd_n(r, 1), c = i < rel->natts ? rel->map[i] : -1;
        size_t len = 0;
        if (kind == 't') {
            len = (size_t)rd_n(r, 4);
            if (r->at + len > r->len) {
                r->bad = 1;
                break;
            }
        } else if (kind != 'n' && kind != 'u') {
            r->bad = 1;
            break;
        }
        if (c >= 0) {
            row->kind[c] = (char)kind;
            if (kind == 't') {
                memcpy(*buf + used, r->p + r->at, len);
                (*buf)[used + len] = '\0';
                row->v[c] = *buf + used;
                used += len + 1;
            }
        }
        r->at += len;
    }
    return r->bad ? bad(err, "TupleData") : CTX_OK;
}

static int on_change(pgfollow *f, int type, rd *r, ctx_error *err)
{
    pgf_rel *rel = rel_find(f, (uint32_t)rd_n(r, 4));
    pgf_row row;
    char *buf = NULL;
    int t = (int)rd_n(r, 1), rc;

    if (r->bad)
        return bad(err, "a change cut short");
    if (!rel)
        return bad(err, "a change to a relation not described");
    /* The old row (an update's changed key, a delete's key): read past it. */
    if ((type == 'U' && (t == 'K' || t == 'O')) || type == 'D') {
        if (t != 'K' && t != 'O')
            return bad(err, "a delete without its key");
        if ((rc = read_tuple(r, rel, &row, &buf, err)))
            goto out;
        /* memberships are replaced with their group's row; a vector goes by its key */
        if (type == 'D') {
            if (!f->skip && rel->table == PGF_VECTORS)
                rc = pgf__vec_row(f, 'D', &row, err);
            goto out;
        }
        ctx_free(buf);
        buf = NULL;
        t = (int)rd_n(r, 1);
    }
    if (t != 'N')
        return bad(err, "a change without its new row");
    if ((rc = read_tuple(r, rel, &row, &buf, err)))
        goto out;
    if (f->skip || rel->table == PGF_OTHER)
        goto out;
    switch (rel->table) {
    case PGF_SOURCES:
        rc = apply_source(f, &row, err);
        break;
    case PGF_DOCS:
        rc = apply_doc(f, &row, err);
        break;
    case PGF_PRINCIPALS:
        rc = note_principal(f, &row, err);
        break;
    case PGF_VECTORS:
        rc = pgf__vec_row(f, type, &row, err);
        break;
    default:
        rc = note_member(f, &row, err);
        break;
    }
out:
    ctx_free(buf);
    return rc;
}

int pgf__message(pgfollow *f, const unsigned char *data, size_t len, uint64_t *last,
                 pgfollow_step_info *info, ctx_error *err)
{
    rd r = {data, len, 1, 0};
    uint64_t end;
    int rc;

    if (!len)
        return bad(err, "an empty message");
    switch (data[0]) {
    case 'B':
        /* Commit order: a commit below the stored end was applied before. */
        f->skip = rd_n(&r, 8) < f->lsn;
        rd_n(&r, 8);       /* commit time */
        rd_n(&r, 4);       /* xid */
        pgf__txn_reset(f);
        return r.bad ? bad(err, "BEGIN") : CTX_OK;
    case 'C':
        rd_n(&r, 1);
        rd_n(&r, 8);
        end = rd_n(&r, 8);
        rd_n(&r, 8);       /* commit time */
        if (r.bad)
            return bad(err, "COMMIT");
        if (end > *last)
            *last = end;
        if (f->skip) {
            f->skip = 0;
            info->skipped++;
            return CTX_OK;
        }
        if ((rc = apply_principals(f, err)))
            return rc;
        f->lsn = end;
        info->txns++;
        return CTX_OK;
    case 'M':
        /* A mark (pgfollow.c): not in a transaction, so every commit before
         * it in the WAL was sent before it; the slot may move up to it. */
        if (rd_n(&r, 1) == 0) {
            uint64_t at = rd_n(&r, 8);
            const char *prefix = rd_str(&r);
            size_t clen = (size_t)rd_n(&r, 4);
            if (r.bad || r.at + clen > r.len)
                return bad(err, "MESSAGE");
            if (!strcmp(prefix, PGF_MARK)) {
                if (at > f->lsn)
                    f->lsn = at;
                if (at > *last)
                    *last = at;
            }
        }
        return CTX_OK;
    case 'R':
        return on_relation(f, &r, err);
    case 'I':
    case 'U':
    case 'D':
        return on_change(f, data[0], &r, err);
    default:
        return CTX_OK;     /* ORIGIN, TYPE, TRUNCATE: nothing to apply */
    }
}

/* ---- the first copy ---- */

static void row_from(PGresult *res, int i, pgf_row *row)
{
    memset(row, 0, sizeof *row);
    for (int c = 0; c < PQnfields(res) && c < PGF_COLS; c++) {
        row->kind[c] = PQgetisnull(res, i, c) ? 'n' : 't';
        row->v[c] = PQgetvalue(res, i, c);
    }
}

static int copy_principals(pgfollow *f, ctx_error *err)
{
    PGresult *p, *m;
    int np, nm, j = 0, rc = CTX_OK;

    if (!(p = pg__q(f->pg, err, "copy the principals", "SELECT source, id, kind, display_name,"
                    " email, maps_to FROM ctxgate.principals ORDER BY source, id", 0)))
        return err->code;
    if (!(m = pg__q(f->pg, err, "copy the memberships", "SELECT source, principal, member FROM"
                    " ctxgate.memberships ORDER BY source, principal, member", 0))) {
        PQclear(p);
        return err->code;
    }
    np = PQntuples(p);
    nm = PQntuples(m);
    for (int i = 0; i < np && !rc; i++) {
        pgf_row row;
        int64_t src;
        const char *id;
        row_from(p, i, &row);
        src = num(&row, P_SOURCE);
        id = row.v[P_ID];
        if ((rc = note_principal(f, &row, err)))
            break;
        /* both ordered by (source, principal) byte-wise: its members follow */
        for (; j < nm; j++) {
            pgf_row mr;
            int64_t ms;
            int cmp;
            row_from(m, j, &mr);
            ms = num(&mr, M_SOURCE);
            cmp = ms != src ? (ms < src ? -1 : 1) : strcmp(mr.v[M_PRINCIPAL], id);
            if (cmp > 0)
                break;
            if (cmp == 0 && (rc = note_member(f, &mr, err)))
                break;
        }
        if (!rc)
            rc = apply_principals(f, err);
    }
    PQclear(p);
    PQclear(m);
    return rc;
}

int pgf__copy(pgfollow *f, ctx_error *err)
{
    PGresult *r;
    int rc, n;

    if (!(r = pg__q(f->pg, err, "copy the sources", "SELECT id, name, type, acl_synced_at FROM"
                    " ctxgate.sources ORDER BY id", 0)))
        return err->code;
    for (int i = 0; i < PQntuples(r); i++) {
        pgf_row row;
        row_from(r, i, &row);
        if ((rc = apply_source(f, &row, err))) {
            PQclear(r);
            return rc;
        }
    }
    PQclear(r);
    if ((rc = pg__ok(f->pg, err, "copy the documents", "DECLARE pgf_docs NO SCROLL CURSOR FOR"
                     " SELECT id, source, stream, ext_id, title, url, body, metadata,"
                     " updated_at, acl, hash, epoch, deleted FROM ctxgate.documents"
                     " WHERE NOT deleted ORDER BY id", 0)))
        return rc;
    do {
        if (!(r = pg__q(f->pg, err, "copy the documents", "FETCH 500 FROM pgf_docs", 0)))
            return err->code;
        n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            pgf_row row;
            row_from(r, i, &row);
            if ((rc = apply_doc(f, &row, err))) {
                PQclear(r);
                return rc;
            }
        }
        PQclear(r);
    } while (n > 0);
    if ((rc = pg__ok(f->pg, err, "copy the documents", "CLOSE pgf_docs", 0)) ||
        (rc = pgf__copy_vectors(f, err)))
        return rc;
    return copy_principals(f, err);
}
