/*
 * pgstore_doc.c - the PostgreSQL sink's messages: documents, ACL sets,
 * principals and prunes, counted as ingest.c counts them on the embedded
 * side so the sync guards see the same numbers (see pgstore.h).
 */
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "pgstore_int.h"

/* ---- ACL sets ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* sorted_unique - v's n strings sorted, duplicates dropped, into *out
 * (new array of borrowed strings); returns how many. */
static size_t sorted_unique(const char *const *v, size_t n, const char ***out)
{
    const char **s;
    size_t m = 0;

    *out = NULL;
    if (!n || !(s = ctx_malloc(n * sizeof *s)))
        return 0;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_str);
    for (size_t i = 0; i < n; i++)
        if (s[i] && (!m || strcmp(s[m - 1], s[i])))
            s[m++] = s[i];
    *out = s;
    return m;
}

static int allows_everyone(const ctx_acl *acl)
{
    for (size_t i = 0; acl && i < acl->n_allow; i++)
        if (acl->allow[i] && !strcmp(acl->allow[i], "everyone"))
            return 1;
    return 0;
}

/* acl_key - the set's identity: a hash of its sorted lists (order and
 * duplicates do not matter; the empty set is nobody's). */
static int acl_key(const ctx_acl *acl, const char **lists[3], size_t ns[3], char key[65])
{
    ctx_buf b = CTX_BUF_INIT;
    const void *parts[1];
    size_t lens[1];
    static const char tag[3] = {'a', 'd', 'l'};

    ns[0] = sorted_unique(acl ? acl->allow : NULL, acl ? acl->n_allow : 0, &lists[0]);
    ns[1] = sorted_unique(acl ? acl->deny : NULL, acl ? acl->n_deny : 0, &lists[1]);
    ns[2] = sorted_unique(acl ? acl->labels : NULL, acl ? acl->n_labels : 0, &lists[2]);
    if (!ns[0])
        ns[1] = ns[2] = 0; /* no allow list: nobody reads it, whatever else it says */
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < ns[l]; i++)
            if (ctx_buf_append(&b, &tag[l], 1) ||
                ctx_buf_append(&b, lists[l][i], strlen(lists[l][i]) + 1)) {
                ctx_buf_free(&b);
                return CTX_ENOMEM;
            }
    parts[0] = b.data ? b.data : "";
    lens[0] = b.len;
    ctx_hash_hex(parts, lens, 1, key);
    ctx_buf_free(&b);
    return CTX_OK;
}

void pg__acl_cache_end(pgstore *pg, int committed)
{
    size_t n = 0;

    for (size_t i = 0; i < pg->nacls; i++) {
        if (pg->acls[i].pending && !committed)
            continue;
        pg->acls[i].pending = 0;
        pg->acls[n++] = pg->acls[i];
    }
    pg->nacls = n;
}

static int64_t acl_cached(const pgstore *pg, int64_t source, const char *key)
{
    for (size_t i = pg->nacls; i-- > 0;)
        if (pg->acls[i].source == source && !strcmp(pg->acls[i].key, key))
            return pg->acls[i].id;
    return 0;
}

/* acl_remember - pending until the transaction commits (an id made in a
 * transaction that rolls back is no set at all). */
static void acl_remember(pgstore *pg, int64_t source, const char *key, int64_t id)
{
    pg_acl_seen *a;

    if (!pg->acls && !(pg->acls = ctx_malloc(PG_ACL_CACHE * sizeof *pg->acls)))
        return;
    if (pg->nacls >= PG_ACL_CACHE)
        return;
    a = &pg->acls[pg->nacls++];
    a->source = source;
    a->id = id;
    a->pending = 1;
    snprintf(a->key, sizeof a->key, "%s", key);
}

/* acl_intern - the id of source's ACL set equal to acl, made when new. */
static int acl_intern(pgstore *pg, int64_t source, const ctx_acl *acl, int64_t *id,
                      ctx_error *err)
{
    static const char *const effect[2] = {"allow", "deny"};
    const char **lists[3] = {NULL, NULL, NULL};
    size_t ns[3] = {0, 0, 0};
    char key[65];
    pg_num a, b;
    PGresult *r;
    int rc = CTX_OK;

    if (acl_key(acl, lists, ns, key)) {
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        goto done;
    }
    if ((*id = acl_cached(pg, source, key)))
        goto done;
    r = pg__q(pg, err, "find the ACL set",
              "SELECT id FROM ctxgate.acl_sets WHERE source = $1 AND key = $2", 2,
              pg__i64(&a, source), key);
    if (!r) {
        rc = err->code;
        goto done;
    }
    *id = PQntuples(r) ? pg__get64(r, 0, 0) : 0;
    PQclear(r);
    if (*id) {
        acl_remember(pg, source, key, *id);
        goto done;
    }
    /* Two writers of one source never run at once (the source's lock), so
     * a plain insert cannot race another of the same key. */
    r = pg__q(pg, err, "make the ACL set",
              "INSERT INTO ctxgate.acl_sets (source, key, everyone) VALUES ($1, $2, $3)"
              " RETURNING id", 3, pg__i64(&a, source), key,
              ns[0] && allows_everyone(acl) ? "true" : "false");
    if (!r) {
        rc = err->code;
        goto done;
    }
    *id = pg__get64(r, 0, 0);
    PQclear(r);
    pg__i64(&b, *id);
    for (int l = 0; !rc && l < 2; l++)
        for (size_t i = 0; !rc && i < ns[l]; i++)
            rc = pg__ok(pg, err, "record an ACL entry",
                        "INSERT INTO ctxgate.acl_entries (acl, effect, principal)"
                        " VALUES ($1, $2, $3)", 3, b.s, effect[l], lists[l][i]);
    for (size_t i = 0; !rc && i < ns[2]; i++)
        rc = pg__ok(pg, err, "record an ACL label",
                    "INSERT INTO ctxgate.acl_labels (acl, label) VALUES ($1, $2)", 2, b.s,
                    lists[2][i]);
    if (!rc)
        acl_remember(pg, source, key, *id);
done:
    for (int l = 0; l < 3; l++)
        ctx_free(lists[l]);
    return rc;
}

/* ---- documents ---- */

typedef struct doc_info {
    int64_t id, acl;
    int deleted, everyone;  /* everyone: its ACL set allows everyone */
    char hash[65];
} doc_info;

static int doc_lookup(pgstore *pg, int64_t source, const char *stream, const char *id,
                      doc_info *d, ctx_error *err)
{
    pg_num a;
    PGresult *r = pg__q(pg, err, "look the document up",
                        "SELECT d.id, d.acl, d.deleted, d.hash, coalesce(s.everyone, false)"
                        " FROM ctxgate.documents d LEFT JOIN ctxgate.acl_sets s ON s.id = d.acl"
                        " WHERE d.source = $1 AND d.stream = $2 AND d.ext_id = $3", 3,
                        pg__i64(&a, source), stream, id);

    memset(d, 0, sizeof *d);
    if (!r)
        return err->code;
    if (PQntuples(r)) {
        d->id = pg__get64(r, 0, 0);
        d->acl = pg__get64(r, 0, 1);
        d->deleted = !strcmp(PQgetvalue(r, 0, 2), "t");
        snprintf(d->hash, sizeof d->hash, "%s", PQgetvalue(r, 0, 3));
        d->everyone = !strcmp(PQgetvalue(r, 0, 4), "t");
    }
    PQclear(r);
    return CTX_OK;
}

/* count_acl_change - as ingest.c's: acls for a live document's new set,
 * to_everyone for one readable by everyone now (everyone) and not before. */
static void count_acl_change(store_run_stats *stats, const doc_info *d, int everyone,
                             int64_t acl_id)
{
    int live = d->id && !d->deleted;

    if (live && d->acl == acl_id)
        return;
    if (live)
        stats->acls++;
    if (everyone && !(live && d->everyone))
        stats->to_everyone++;
}

static int set_acl(pgstore *pg, int64_t doc, int64_t acl, ctx_error *err)
{
    pg_num a, b;

    return pg__ok(pg, err, "move the document to its ACL set",
                  "UPDATE ctxgate.documents SET acl = $2, changed_at = now() WHERE id = $1", 2,
                  pg__i64(&a, doc), pg__i64(&b, acl));
}

/*
 * A record's write in one round trip. old is the row as it was (read in
 * the statement's snapshot, so before the upsert), which the counts need;
 * the upsert writes the record. A record whose hash is its live row's
 * keeps the row's content (the same datums: PostgreSQL copies no TOASTed
 * body) and its changed_at unless the ACL set moved: it is only marked
 * seen (epoch) and, maybe, moved to its new ACL set.
 */
#define SAME "NOT d.deleted AND d.hash = EXCLUDED.hash"
static const char record_sql[] =
    "WITH old AS (SELECT o.id, o.acl, o.deleted, o.hash, coalesce(s.everyone, false)"
    "  FROM ctxgate.documents o LEFT JOIN ctxgate.acl_sets s ON s.id = o.acl"
    "  WHERE o.source = $1 AND o.stream = $2 AND o.ext_id = $3),"
    " up AS (INSERT INTO ctxgate.documents AS d (source, stream, ext_id, title, url, body,"
    "  metadata, updated_at, acl, hash, epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
    "  $10, $11) ON CONFLICT (source, stream, ext_id) DO UPDATE SET"
    "  title = CASE WHEN " SAME " THEN d.title ELSE EXCLUDED.title END,"
    "  url = CASE WHEN " SAME " THEN d.url ELSE EXCLUDED.url END,"
    "  body = CASE WHEN " SAME " THEN d.body ELSE EXCLUDED.body END,"
    "  metadata = CASE WHEN " SAME " THEN d.metadata ELSE EXCLUDED.metadata END,"
    "  updated_at = CASE WHEN " SAME " THEN d.updated_at ELSE EXCLUDED.updated_at END,"
    "  changed_at = CASE WHEN " SAME " AND d.acl = EXCLUDED.acl THEN d.changed_at"
    "   ELSE now() END,"
    "  acl = EXCLUDED.acl, hash = EXCLUDED.hash, epoch = EXCLUDED.epoch, deleted = false)"
    " SELECT * FROM old";
#undef SAME

/*
 * Records go out in pipeline mode: up to PG_PIPELINE are sent before the
 * first answer is read, so the round trips overlap with the connector's
 * reading and PostgreSQL's writing. Their counts land when pg__flush reads
 * the answers: before any other query on the connection (pg__q, pg__ok),
 * so before the checkpoint and the commit, and when the runner asks
 * (xFlush) before it checks the guards that read those counts.
 */
int pg__record(void *self, ingest_ctx *c, const ingest_prep *p, ctx_error *err)
{
    pgstore *pg = self;
    pg_sent *t;
    int64_t acl;
    pg_num v[4];
    char name[32];
    int rc;

    c->stats->repaired_utf8 += p->repaired;
    if (!pg->nsent && PQpipelineStatus(pg->db) != PQ_PIPELINE_OFF)
        return pg__fail(pg, NULL, err, "write the document (a batch before it was cut off)");
    if ((rc = acl_intern(pg, c->source, p->acl, &acl, err)))
        return rc;
    if ((rc = pg__prepared(pg, record_sql, 11, name, err)))
        return rc < 0 ? err->code : ctx_error_set(err, CTX_EINTERNAL, "cluster: no room to"
                                                  " prepare the document's write");
    if (!pg->sent && !(pg->sent = ctx_calloc(PG_PIPELINE, sizeof *pg->sent)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    t = &pg->sent[pg->nsent];
    memset(t, 0, sizeof *t);
    if (!(t->what = ctx_malloc(strlen(p->stream) + strlen(p->id) + 2)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    sprintf(t->what, "%s/%s", p->stream, p->id);
    t->stats = c->stats;
    t->acl = acl;
    t->everyone = allows_everyone(p->acl);
    t->chunks = (int64_t)(p->nspans ? p->nspans : 1);
    t->bytes = (int64_t)p->blen;
    snprintf(t->hash, sizeof t->hash, "%s", p->hash);
    {
        const char *pv[11] = {pg__i64(&v[0], c->source), p->stream, p->id, p->title, p->url,
                              p->body ? p->body : "", p->meta, pg__i64(&v[1], p->updated_at_ms),
                              pg__i64(&v[2], acl), p->hash, pg__i64(&v[3], c->epoch)};

        if (PQpipelineStatus(pg->db) == PQ_PIPELINE_OFF && !PQenterPipelineMode(pg->db))
            rc = pg__fail(pg, NULL, err, "enter pipeline mode");
        else if (!PQsendQueryPrepared(pg->db, name, 11, pv, NULL, NULL, 0))
            rc = pg__fail(pg, NULL, err, "send the document");
    }
    if (rc) {
        ctx_error_prefix(err, "RECORD %s: ", t->what);
        ctx_free(t->what);
        pg__discard(pg);
        return rc;
    }
    pg->nsent++;
    return pg->nsent == PG_PIPELINE ? pg__flush(pg, err) : CTX_OK;
}

/* count_sent - a record's answer (the row as it was) into its counts. */
static void count_sent(const pg_sent *t, PGresult *r)
{
    doc_info d;

    memset(&d, 0, sizeof d);
    if (PQntuples(r)) {
        d.id = pg__get64(r, 0, 0);
        d.acl = pg__get64(r, 0, 1);
        d.deleted = !strcmp(PQgetvalue(r, 0, 2), "t");
        snprintf(d.hash, sizeof d.hash, "%s", PQgetvalue(r, 0, 3));
        d.everyone = !strcmp(PQgetvalue(r, 0, 4), "t");
    }
    count_acl_change(t->stats, &d, t->everyone, t->acl);
    if (d.id && !d.deleted && !strcmp(d.hash, t->hash)) {
        t->stats->unchanged++;
        return;
    }
    t->stats->records++;
    t->stats->chunks += t->chunks;
    t->stats->bytes += t->bytes;
}

/* end_pipeline - read up to the sync point and leave pipeline mode; 0 when
 * the connection is fit for the next query. */
static int end_pipeline(pgstore *pg)
{
    PGresult *r;
    int nulls = 0, synced;

    for (;;) {
        if (!(r = PQgetResult(pg->db))) {
            /* One NULL ends a query's answer; two: nothing is queued. */
            if (++nulls > 1 || PQstatus(pg->db) != CONNECTION_OK)
                return -1;
            continue;
        }
        nulls = 0;
        synced = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (synced)
            break;
    }
    return PQexitPipelineMode(pg->db) ? 0 : -1;
}

int pg__flush(pgstore *pg, ctx_error *err)
{
    int rc = CTX_OK;
    size_t i;

    if (!pg->nsent)
        return CTX_OK;
    if (!PQpipelineSync(pg->db)) {
        rc = pg__fail(pg, NULL, err, "send the documents");
        ctx_error_prefix(err, "RECORD %s: ", pg->sent[0].what);
    }
    for (i = 0; !rc && i < pg->nsent; i++) {
        PGresult *r = PQgetResult(pg->db), *end = NULL;

        /* its row, then the NULL that ends its answer; anything else fails it */
        if (PQresultStatus(r) != PGRES_TUPLES_OK || (end = PQgetResult(pg->db))) {
            if (end) {
                PQclear(r);
                r = end;
            }
            rc = pg__fail(pg, r, err, "write the document");
            ctx_error_prefix(err, "RECORD %s: ", pg->sent[i].what);
            break;
        }
        count_sent(&pg->sent[i], r);
        PQclear(r);
    }
    if (end_pipeline(pg) && !rc)
        rc = pg__fail(pg, NULL, err, "read the documents' answers");
    for (i = 0; i < pg->nsent; i++)
        ctx_free(pg->sent[i].what);
    pg->nsent = 0;
    return rc;
}

void pg__discard(pgstore *pg)
{
    if (PQpipelineStatus(pg->db) != PQ_PIPELINE_OFF) {
        if (PQpipelineSync(pg->db))
            end_pipeline(pg);
        else
            PQexitPipelineMode(pg->db);
    }
    for (size_t i = 0; i < pg->nsent; i++)
        ctx_free(pg->sent[i].what);
    pg->nsent = 0;
}

/* tombstone - what a deleted document keeps: its identity, not its content. */
#define TOMBSTONE " deleted = true, title = NULL, url = NULL, body = NULL, metadata = NULL," \
                  " hash = '', changed_at = now()"

int pg__delete(void *self, ingest_ctx *c, const char *stream, const char *id, ctx_error *err)
{
    pg_num a, b;
    PGresult *r;

    if (!stream || !*stream || !id || !*id)
        return ctx_error_set(err, CTX_EINVAL, "DELETE: stream and id are required");
    r = pg__q(self, err, "delete the document",
              "UPDATE ctxgate.documents SET epoch = $4," TOMBSTONE
              " WHERE source = $1 AND stream = $2 AND ext_id = $3 AND NOT deleted", 4,
              pg__i64(&a, c->source), stream, id, pg__i64(&b, c->epoch));
    if (!r)
        return err->code;
    c->stats->deletes += strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return CTX_OK;
}

/* acl_target - the live document an ACL message names, and its new set;
 * d->id 0 when there is no such live document (the message is ignored). */
static int acl_target(pgstore *pg, ingest_ctx *c, const char *stream, const char *id,
                      const ctx_acl *acl, doc_info *d, int64_t *acl_id, ctx_error *err)
{
    int rc;

    if (!stream || !*stream || !id || !*id)
        return ctx_error_set(err, CTX_EINVAL, "ACL: stream and id are required");
    if ((rc = doc_lookup(pg, c->source, stream, id, d, err)))
        return rc;
    if (!d->id || d->deleted) {
        memset(d, 0, sizeof *d);
        return CTX_OK;
    }
    return acl_intern(pg, c->source, acl, acl_id, err);
}

int pg__acl(void *self, ingest_ctx *c, const char *stream, const char *id, const ctx_acl *acl,
            ctx_error *err)
{
    doc_info d;
    int64_t acl_id = 0;
    int rc;

    if ((rc = acl_target(self, c, stream, id, acl, &d, &acl_id, err)) || !d.id ||
        d.acl == acl_id)
        return rc;
    count_acl_change(c->stats, &d, allows_everyone(acl), acl_id);
    return set_acl(self, d.id, acl_id, err);
}

int pg__acl_seen(void *self, ingest_ctx *c, const char *stream, const char *id,
                 const ctx_acl *acl, ctx_error *err)
{
    doc_info d;
    int64_t acl_id = 0;
    pg_num a, b;
    int rc;

    if ((rc = acl_target(self, c, stream, id, acl, &d, &acl_id, err)) || !d.id)
        return rc;
    c->stats->unchanged++;
    count_acl_change(c->stats, &d, allows_everyone(acl), acl_id);
    if (acl_id != d.acl && (rc = set_acl(self, d.id, acl_id, err)))
        return rc;
    return pg__ok(self, err, "mark the document's permissions seen",
                  "UPDATE ctxgate.documents SET perm_epoch = $2 WHERE id = $1", 2,
                  pg__i64(&a, d.id), pg__i64(&b, c->epoch));
}

/* ---- principals ---- */

static int principal_kind(const char *name)
{
    if (!strncmp(name, "user:", 5))
        return CTX_PRINCIPAL_USER;
    if (!strncmp(name, "group:", 6))
        return CTX_PRINCIPAL_GROUP;
    return 0;
}

int pg__principal(void *self, int64_t source, const ctx_principal *p, ctx_error *err)
{
    pg_num a;
    int rc;

    if (!p->id || principal_kind(p->id) != p->kind)
        return ctx_error_set(err, CTX_EINVAL, "PRINCIPAL \"%s\": id must start with \"%s\"",
                             p->id ? p->id : "(null)",
                             p->kind == CTX_PRINCIPAL_GROUP ? "group:" : "user:");
    if (p->maps_to && principal_kind(p->maps_to) != CTX_PRINCIPAL_USER)
        return ctx_error_set(err, CTX_EINVAL, "PRINCIPAL \"%s\": maps_to \"%s\" must be a"
                             " user:", p->id, p->maps_to);
    pg__i64(&a, source);
    if ((rc = pg__ok(self, err, "record the principal",
                     "INSERT INTO ctxgate.principals (source, id, kind, display_name, email,"
                     " maps_to) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, id) DO"
                     " UPDATE SET kind = EXCLUDED.kind, display_name = EXCLUDED.display_name,"
                     " email = EXCLUDED.email, maps_to = EXCLUDED.maps_to", 6, a.s, p->id,
                     p->kind == CTX_PRINCIPAL_GROUP ? "group" : "user", p->display_name,
                     p->email, p->kind == CTX_PRINCIPAL_USER ? p->maps_to : NULL)))
        return rc;
    if (p->kind != CTX_PRINCIPAL_GROUP)
        return CTX_OK;
    /* The group's members as this source knows them now, replacing the last. */
    if ((rc = pg__ok(self, err, "clear the group's members",
                     "DELETE FROM ctxgate.memberships WHERE source = $1 AND principal = $2", 2,
                     a.s, p->id)))
        return rc;
    for (size_t i = 0; i < p->n_members; i++) {
        if (!p->members[i] || !*p->members[i])
            continue;
        if ((rc = pg__ok(self, err, "record a member",
                         "INSERT INTO ctxgate.memberships (source, principal, member)"
                         " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", 3, a.s, p->id,
                         p->members[i]))) {
            ctx_error_prefix(err, "PRINCIPAL \"%s\": members[%zu]: ", p->id, i);
            return rc;
        }
    }
    return CTX_OK;
}

/* ---- prunes ---- */

/* What a full run (epoch $3) or a permission run (perm_epoch $3) did not see. */
#define UNSEEN_FULL " source = $1 AND stream = $2 AND NOT deleted AND epoch < $3"
#define UNSEEN_PERM \
    " source = $1 AND stream = $2 AND NOT deleted AND perm_epoch IS DISTINCT FROM $3"

int pg__prune_count(void *self, int64_t source, const char *stream, int64_t epoch, int perm,
                    int64_t *n, ctx_error *err)
{
    pg_num a, b;
    PGresult *r = pg__q(self, err, "count what the run did not see",
                        perm ? "SELECT count(*) FROM ctxgate.documents WHERE" UNSEEN_PERM
                             : "SELECT count(*) FROM ctxgate.documents WHERE" UNSEEN_FULL,
                        3, pg__i64(&a, source), stream, pg__i64(&b, epoch));

    if (!r)
        return err->code;
    *n = pg__get64(r, 0, 0);
    PQclear(r);
    return CTX_OK;
}

int pg__prune(void *self, int64_t source, const char *stream, int64_t epoch, int perm,
              int64_t *n, ctx_error *err)
{
    pg_num a, b;
    PGresult *r = pg__q(self, err, "prune what the run did not see",
                        perm ? "UPDATE ctxgate.documents SET" TOMBSTONE " WHERE" UNSEEN_PERM
                             : "UPDATE ctxgate.documents SET" TOMBSTONE " WHERE" UNSEEN_FULL,
                        3, pg__i64(&a, source), stream, pg__i64(&b, epoch));

    if (!r)
        return err->code;
    *n = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return CTX_OK;
}
