/*
 * pgfollow_vec.c - a replica takes its vectors from the cluster instead of
 * calling an embedder (see pgfollow_int.h, docs/cluster.md, "Vectors
 * computed once"). The rows of ctxgate.chunk_vectors are kept in a mirror,
 * replica_vectors (doc, model, text hash: PostgreSQL's key); a chunk in
 * the embed queue gets the vector of its own text's hash, or waits for it
 * in replica_vec_wait, so a vector is only ever given to a chunk whose
 * text it was computed from.
 */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "embed.h"
#include "pglsa.h"
#include "pgfollow_int.h"
#include "pgstore_int.h"

#define PRUNE_MS 60000        /* waiting chunks that are gone are dropped this often */
#define TAKE 256              /* queued chunks read at a time */

static int exec(pgfollow *f, const char *sql, ctx_error *err)
{
    return store_exec(f->st, sql, err);
}

/* prep - a statement of the replica's own tables (finalize it). */
static int prep(pgfollow *f, const char *sql, sqlite3_stmt **q, ctx_error *err)
{
    if (sqlite3_prepare_v2(store_db(f->st), sql, -1, q, NULL) != SQLITE_OK)
        return store_errf(f->st, err, "replica vectors");
    return CTX_OK;
}

static int done(pgfollow *f, sqlite3_stmt *q, ctx_error *err)
{
    int rc = sqlite3_step(q);

    sqlite3_finalize(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? CTX_OK
                                                 : store_errf(f->st, err, "replica vectors");
}

/* unhex - a bytea's text form ("\x" and hex) into out (up to cap bytes); its
 * length, or -1 when it is not one. */
static long unhex(const char *s, unsigned char *out, size_t cap)
{
    size_t n;

    if (!s || s[0] != '\\' || s[1] != 'x' || (n = strlen(s + 2)) % 2 || n / 2 > cap)
        return -1;
    s += 2;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return (long)(n / 2);
}

/* floats_le - dim little-endian float32 (as pgvectors.c writes them) into v. */
static void floats_le(const unsigned char *b, int dim, float *v)
{
    for (int i = 0; i < dim; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                     (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&v[i], &u, 4);
    }
}

/* agree - warn when the cluster computes vectors this replica cannot use:
 * another model, or chunks cut with other settings (its texts would never
 * match theirs). Only a warning: the lexical leg answers meanwhile. */
static int agree(pgfollow *f, const char *name, ctx_error *err)
{
    char mine[32];
    PGresult *r;

    if (!(r = pg__q(f->pg, err, "read the cluster's models", "SELECT (SELECT string_agg(name,"
                    " ', ' ORDER BY name) FROM ctxgate.embed_models), EXISTS (SELECT 1 FROM"
                    " ctxgate.embed_models WHERE name = $1), (SELECT chunking FROM"
                    " ctxgate.doc_embeds WHERE model = $1 LIMIT 1)", 1, name)))
        return err->code;
    snprintf(mine, sizeof mine, "%d/%d", f->ing.chunk.max_tokens, f->ing.chunk.overlap_tokens);
    if (!PQgetisnull(r, 0, 0) && strcmp(PQgetvalue(r, 0, 1), "t"))
        ctx_log(CTX_LOG_WARN, "replica", "%s: the cluster computes vectors of %s, not of this"
                " replica's model %s: its chunks get none (the lexical leg answers) until"
                " the embeddings sections agree", f->slot, PQgetvalue(r, 0, 0), name);
    else if (!PQgetisnull(r, 0, 2) && strcmp(PQgetvalue(r, 0, 2), mine))
        ctx_log(CTX_LOG_WARN, "replica", "%s: the cluster chunks with max_tokens/overlap %s,"
                " this replica with %s: its chunks' texts will not match (set the same"
                " chunk section everywhere)", f->slot, PQgetvalue(r, 0, 2), mine);
    PQclear(r);
    return CTX_OK;
}

int pgf__vec_open(pgfollow *f, ctx_error *err)
{
    const ctx_embed_cfg *e = &f->cfg->embeddings;
    embed_cfg ec;
    int64_t id, active, target, queued;
    char *name = NULL;
    int dim, rc;

    if ((rc = exec(f, "CREATE TABLE IF NOT EXISTS replica_vectors (doc INTEGER NOT NULL,"
                   " model TEXT NOT NULL, text_hash BLOB NOT NULL, vec BLOB NOT NULL,"
                   " PRIMARY KEY (doc, model, text_hash)) WITHOUT ROWID;"
                   "CREATE INDEX IF NOT EXISTS replica_vectors_hash ON replica_vectors"
                   " (model, text_hash);"
                   "CREATE TABLE IF NOT EXISTS replica_vec_wait (text_hash BLOB NOT NULL,"
                   " chunk_id INTEGER NOT NULL, PRIMARY KEY (text_hash, chunk_id))"
                   " WITHOUT ROWID;"
                   "CREATE TABLE IF NOT EXISTS replica_vec_state (id INTEGER PRIMARY KEY"
                   " CHECK (id = 1), model INTEGER NOT NULL, mark INTEGER NOT NULL)", err)))
        return rc;
    memset(&ec, 0, sizeof ec);
    ec.provider = e->provider;
    ec.model = e->model;
    ec.dim = (int)e->dim;
    if (e->provider && !strcmp(e->provider, "lsa")) {
        /* the cluster's trained model, its file fetched for the queries */
        char h[LSA_HASH_LEN + 1];
        dim = e->dim > 0 ? (int)e->dim : 384;
        f->vlsa_at = ctx_now_ms();
        if ((rc = pglsa_current(f->pg, f->cfg->data_dir, dim, h, NULL, NULL, err)))
            return rc;
        f->vmodel = 0;
        f->vname[0] = '\0';
        if (!h[0])
            return CTX_OK; /* none trained yet: the lexical leg answers */
        snprintf(f->vname, sizeof f->vname, "lsa:%s@%d", h, dim);
    } else if ((rc = embed_cfg_name(&ec, f->vname, sizeof f->vname, &dim, err))) {
        return rc;
    }
    if ((rc = agree(f, f->vname, err)) ||
        (rc = store_embed_model(f->st, f->vname, dim, &id, err)) ||
        (rc = store_embed_models(f->st, &active, &target, err)))
        return rc;
    /* Another model serves: the configured one is built beside it and
     * flips when every chunk has its vector (store_embed_prepare, as
     * embed_run does); back to the serving one, a half-built target goes. */
    if (active && ((active != id && target != id) || (active == id && target))) {
        if ((rc = store_embed_prepare(f->st, id, &queued, err)) ||
            (rc = store_embed_models(f->st, &active, &target, err)))
            return rc;
        ctx_log(CTX_LOG_INFO, "replica", "%s: model %s is the target; %lld chunks to take"
                " vectors from the cluster", f->slot, f->vname, (long long)queued);
    }
    f->vactive = active;
    f->vmodel = target ? target : active ? active : id;
    if ((rc = store_embed_model_info(f->st, f->vmodel, &name, &f->vdim, err)))
        return rc;
    snprintf(f->vname, sizeof f->vname, "%s", name);
    ctx_free(name);
    return CTX_OK;
}

/* put - vec (PostgreSQL's bytes) as chunk's vector of the queue's model when
 * it is still queued; the first vector a store gets makes its model active. */
static int put(pgfollow *f, int64_t chunk, const unsigned char hash[16],
               const unsigned char *bytes, int nbytes, ctx_error *err)
{
    float *v;
    int applied, rc;

    if (nbytes != f->vdim * 4)
        return CTX_OK; /* not this model's dimension: never served */
    if (!(v = ctx_malloc((size_t)f->vdim * sizeof *v)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    floats_le(bytes, f->vdim, v);
    rc = store_vector_put(f->st, chunk, f->vmodel, hash, v, f->vdim, &applied, err);
    ctx_free(v);
    if (rc || !applied)
        return rc;
    f->vputs++;
    if (!f->vactive) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO settings(key, value)"
                 " VALUES('embed.active_model', %lld)", (long long)f->vmodel);
        if ((rc = exec(f, sql, err)))
            return rc;
        f->vactive = f->vmodel;
    }
    return CTX_OK;
}

int pgf__vec_row(pgfollow *f, int type, const pgf_row *r, ctx_error *err)
{
    unsigned char hash[16], *vec = NULL;
    sqlite3_stmt *q = NULL, *w = NULL;
    long nvec = 0;
    int rc, step;

    if (r->kind[V_DOC] != 't' || r->kind[V_MODEL] != 't' ||
        unhex(r->kind[V_HASH] == 't' ? r->v[V_HASH] : NULL, hash, 16) != 16)
        return ctx_error_set(err, CTX_ESTORE, "cluster: a decoded change is malformed (a"
                             " vector without doc, model or text hash)");
    if (type == 'D') {
        if ((rc = prep(f, "DELETE FROM replica_vectors WHERE doc = ? AND model = ?"
                       " AND text_hash = ?", &q, err)))
            return rc;
        sqlite3_bind_int64(q, 1, strtoll(r->v[V_DOC], NULL, 10));
        sqlite3_bind_text(q, 2, r->v[V_MODEL], -1, SQLITE_STATIC);
        sqlite3_bind_blob(q, 3, hash, 16, SQLITE_STATIC);
        return done(f, q, err);
    }
    if (r->kind[V_VEC] == 't') {
        size_t cap = strlen(r->v[V_VEC]) / 2;
        if (!(vec = ctx_malloc(cap ? cap : 1)))
            return ctx_error_set(err, CTX_ENOMEM, "out of memory");
        nvec = unhex(r->v[V_VEC], vec, cap);
    }
    if (nvec <= 0 || nvec % 4) {
        ctx_free(vec);
        return ctx_error_set(err, CTX_ESTORE, "cluster: a decoded change is malformed (a"
                             " vector that is not float32)");
    }
    if ((rc = prep(f, "INSERT OR REPLACE INTO replica_vectors (doc, model, text_hash, vec)"
                   " VALUES (?, ?, ?, ?)", &q, err)))
        goto out;
    sqlite3_bind_int64(q, 1, strtoll(r->v[V_DOC], NULL, 10));
    sqlite3_bind_text(q, 2, r->v[V_MODEL], -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 3, hash, 16, SQLITE_STATIC);
    sqlite3_bind_blob(q, 4, vec, (int)nvec, SQLITE_STATIC);
    if ((rc = done(f, q, err)) || strcmp(r->v[V_MODEL], f->vname))
        goto out;
    /* The chunks waiting for this text take it now. */
    if ((rc = prep(f, "SELECT chunk_id FROM replica_vec_wait WHERE text_hash = ?", &w, err)))
        goto out;
    sqlite3_bind_blob(w, 1, hash, 16, SQLITE_STATIC);
    rc = CTX_OK;
    while (!rc && (step = sqlite3_step(w)) == SQLITE_ROW)
        rc = put(f, sqlite3_column_int64(w, 0), hash, vec, (int)nvec, err);
    if (!rc && step != SQLITE_DONE)
        rc = store_errf(f->st, err, "replica vectors");
    sqlite3_finalize(w);
    if (rc || (rc = prep(f, "DELETE FROM replica_vec_wait WHERE text_hash = ?", &q, err)))
        goto out;
    sqlite3_bind_blob(q, 1, hash, 16, SQLITE_STATIC);
    rc = done(f, q, err);
out:
    ctx_free(vec);
    return rc;
}

/* mirror_put - the mirror's vector of hash for chunk, if it has one (*found). */
static int mirror_put(pgfollow *f, int64_t chunk, const unsigned char hash[16], int *found,
                      ctx_error *err)
{
    sqlite3_stmt *q;
    int rc, step;

    *found = 0;
    if ((rc = prep(f, "SELECT vec FROM replica_vectors WHERE model = ? AND text_hash = ?"
                   " LIMIT 1", &q, err)))
        return rc;
    sqlite3_bind_text(q, 1, f->vname, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, hash, 16, SQLITE_STATIC);
    if ((step = sqlite3_step(q)) == SQLITE_ROW) {
        *found = 1;
        rc = put(f, chunk, hash, sqlite3_column_blob(q, 0), sqlite3_column_bytes(q, 0), err);
    } else if (step != SQLITE_DONE) {
        rc = store_errf(f->st, err, "replica vectors");
    }
    sqlite3_finalize(q);
    return rc;
}

static int wait_for(pgfollow *f, int64_t chunk, const unsigned char hash[16], ctx_error *err)
{
    sqlite3_stmt *q;
    int rc;

    if ((rc = prep(f, "INSERT OR IGNORE INTO replica_vec_wait (text_hash, chunk_id)"
                   " VALUES (?, ?)", &q, err)))
        return rc;
    sqlite3_bind_blob(q, 1, hash, 16, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, chunk);
    return done(f, q, err);
}

int pgf__vec_settle(pgfollow *f, ctx_error *err)
{
    store_embed_batch b = {NULL, 0};
    sqlite3_stmt *q;
    int64_t model = 0, mark = 0;
    float *v = NULL;
    int rc;

    if (!f->vmodel)
        return CTX_OK;
    if ((rc = prep(f, "SELECT model, mark FROM replica_vec_state WHERE id = 1", &q, err)))
        return rc;
    if (sqlite3_step(q) == SQLITE_ROW) {
        model = sqlite3_column_int64(q, 0);
        mark = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    /* Another queue (a model switch refilled it): every queued chunk again. */
    if (model != f->vmodel) {
        mark = 0;
        if ((rc = exec(f, "DELETE FROM replica_vec_wait", err)))
            return rc;
    }
    if (!(v = ctx_malloc((size_t)f->vdim * sizeof *v)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    for (;;) {
        size_t got;
        if ((rc = store_embed_take(f->st, mark, TAKE, &b, err)))
            break;
        got = b.n;
        for (size_t i = 0; !rc && i < b.n; i++) {
            unsigned char hash[16];
            int found = 0, applied;
            embed_text_hash(b.items[i].text, b.items[i].len, hash);
            /* the store's own vector of the same text first, then the cluster's */
            if (!(rc = store_vector_reuse(f->st, f->vmodel, hash, v, f->vdim, &found, err)) &&
                found) {
                rc = store_vector_put(f->st, b.items[i].chunk_id, f->vmodel, hash, v, f->vdim,
                                      &applied, err);
                f->vputs += applied;
            } else if (!rc && !(rc = mirror_put(f, b.items[i].chunk_id, hash, &found, err)) &&
                       !found) {
                rc = wait_for(f, b.items[i].chunk_id, hash, err);
            }
            mark = b.items[i].chunk_id;
        }
        store_embed_batch_free(&b);
        if (rc || !got)
            break;
    }
    ctx_free(v);
    if (rc)
        return rc;
    if ((rc = prep(f, "INSERT OR REPLACE INTO replica_vec_state (id, model, mark)"
                   " VALUES (1, ?, ?)", &q, err)))
        return rc;
    sqlite3_bind_int64(q, 1, f->vmodel);
    sqlite3_bind_int64(q, 2, mark);
    return done(f, q, err);
}

int pgf__vec_after(pgfollow *f, ctx_error *err)
{
    const char *prov = f->cfg->embeddings.provider;
    int64_t n, active, target;
    int switched = 0, rc;

    /* lsa: a model trained anew in the cluster becomes this replica's target */
    if (prov && !strcmp(prov, "lsa") && ctx_now_ms() - f->vlsa_at > 2000) {
        char h[LSA_HASH_LEN + 1], name[256];
        int dim = f->cfg->embeddings.dim > 0 ? (int)f->cfg->embeddings.dim : 384;
        f->vlsa_at = ctx_now_ms();
        if ((rc = pglsa_current(f->pg, f->cfg->data_dir, dim, h, NULL, NULL, err)))
            return rc;
        snprintf(name, sizeof name, "lsa:%s@%d", h, dim);
        if (h[0] && strcmp(name, f->vname) && (rc = pgf__vec_open(f, err)))
            return rc;
    }
    if (f->vmodel && f->vactive && f->vactive != f->vmodel) {
        /* a switch: the target flips once the queue is empty */
        if ((rc = store_embed_switch(f->st, &switched, err)))
            return rc;
        if (switched) {
            ctx_log(CTX_LOG_INFO, "replica", "%s: model %s is the active one now", f->slot,
                    f->vname);
            do {
                if ((rc = store_vectors_retire(f->st, 10000, &n, err)))
                    return rc;
            } while (n);
            if ((rc = store_embed_models(f->st, &active, &target, err)))
                return rc;
            f->vactive = active;
        }
    }
    if (ctx_now_ms() - f->vprune_at > PRUNE_MS) {
        f->vprune_at = ctx_now_ms();
        return exec(f, "DELETE FROM replica_vec_wait WHERE chunk_id NOT IN"
                    " (SELECT chunk_id FROM embed_queue)", err);
    }
    return CTX_OK;
}

int pgf__copy_vectors(pgfollow *f, ctx_error *err)
{
    PGresult *r;
    int rc, n;

    if ((rc = pg__ok(f->pg, err, "copy the vectors", "DECLARE pgf_vecs NO SCROLL CURSOR FOR"
                     " SELECT doc, model, text_hash, vec FROM ctxgate.chunk_vectors", 0)))
        return rc;
    do {
        if (!(r = pg__q(f->pg, err, "copy the vectors", "FETCH 500 FROM pgf_vecs", 0)))
            return err->code;
        n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            pgf_row row;
            memset(&row, 0, sizeof row);
            for (int c = 0; c < 4; c++) {
                row.kind[c] = PQgetisnull(r, i, c) ? 'n' : 't';
                row.v[c] = PQgetvalue(r, i, c);
            }
            if ((rc = pgf__vec_row(f, 'I', &row, err))) {
                PQclear(r);
                return rc;
            }
        }
        PQclear(r);
    } while (n > 0);
    return pg__ok(f->pg, err, "copy the vectors", "CLOSE pgf_vecs", 0);
}
