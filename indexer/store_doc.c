/*
 * store_doc.c - what the sync runner writes per record: sources, sync
 * state, documents, chunks and their FTS5 rows (deletes deferred to commit,
 * store.c), ACL moves that keep vectors, prune, and the sync_runs history.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

int store_source(ctx_store *st, const char *name, const char *type, int64_t *id,
                 ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if (!(s = store__stmt(st, Q_SOURCE_GET, err)))
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if ((rc = store__get_id(st, s, id, err, "look up source")) || *id)
        return rc;
    if (!(s = store__stmt(st, Q_SOURCE_ADD, err)))
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, ctx_now_ms());
    if ((rc = store__step_done(st, s, err, "add source")))
        return rc;
    *id = sqlite3_last_insert_rowid(st->db);
    return CTX_OK;
}

int store_state_get(ctx_store *st, int64_t source, const char *stream, char **state,
                    ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    *state = NULL;
    if (!(s = store__stmt(st, Q_STATE_GET, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *state = ctx_strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_errf(st, err, "read sync state");
    return CTX_OK;
}

int store_state_put(ctx_store *st, int64_t source, const char *stream,
                    const char *state, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_STATE_PUT, err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, ctx_now_ms());
    return store__step_done(st, s, err, "write sync state");
}

int store_state_clear(ctx_store *st, int64_t source, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_STATE_CLEAR, err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    return store__step_done(st, s, err, "clear sync state");
}

/*
 * doc_lookup - a document of (source, stream, ext_id) through statement q:
 * Q_DOC_LOOKUP gives its content hash too (column 3), Q_PERM_LOOKUP reads
 * the covering index documents_acl alone and leaves the hash empty.
 */
static int doc_lookup(ctx_store *st, int q, int64_t source, const char *stream,
                      const char *ext_id, store_doc_info *info, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, q, err);
    int rc;

    memset(info, 0, sizeof *info);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, ext_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        info->id = sqlite3_column_int64(s, 0);
        info->acl_id = sqlite3_column_int64(s, 1);
        info->deleted = sqlite3_column_int(s, 2);
        if (q == Q_DOC_LOOKUP) {
            const char *h = (const char *)sqlite3_column_text(s, 3);
            snprintf(info->hash, sizeof info->hash, "%s", h ? h : "");
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_errf(st, err, "look up document");
    return CTX_OK;
}

int store_doc_lookup(ctx_store *st, int64_t source, const char *stream,
                     const char *ext_id, store_doc_info *info, ctx_error *err)
{
    return doc_lookup(st, Q_DOC_LOOKUP, source, stream, ext_id, info, err);
}

int store_doc_write(ctx_store *st, const store_doc *d, int64_t *doc_id, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, *doc_id ? Q_DOC_UPDATE : Q_DOC_INSERT, err);
    int rc;

    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, d->source);
    sqlite3_bind_text(s, 2, d->stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, d->ext_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, d->title, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, d->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, d->body ? d->body : "", (int)d->body_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, d->metadata, -1, SQLITE_STATIC);
    if (d->updated_at_ms)
        sqlite3_bind_int64(s, 8, d->updated_at_ms);
    sqlite3_bind_text(s, 9, d->hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, d->acl_id);
    sqlite3_bind_int64(s, 11, ctx_now_ms());
    sqlite3_bind_int64(s, 12, d->epoch);
    if (*doc_id)
        sqlite3_bind_int64(s, 13, *doc_id);
    if ((rc = store__step_done(st, s, err, "write document")))
        return rc;
    if (!*doc_id)
        *doc_id = sqlite3_last_insert_rowid(st->db);
    return CTX_OK;
}

int store_doc_touch(ctx_store *st, int64_t doc_id, int64_t epoch, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_DOC_TOUCH, err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    sqlite3_bind_int64(s, 2, epoch);
    sqlite3_bind_int64(s, 3, ctx_now_ms());
    return store__step_done(st, s, err, "touch document");
}

/* see store_doc_acl_lookup in store.h */
int store_doc_acl_lookup(ctx_store *st, int64_t source, const char *stream,
                         const char *ext_id, store_doc_info *info, ctx_error *err)
{
    return doc_lookup(st, Q_PERM_LOOKUP, source, stream, ext_id, info, err);
}

int store_doc_next(ctx_store *st, int64_t source, const char *stream, const char *after,
                   char **out, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_DOC_NEXT, err);
    int rc;

    *out = NULL;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, after ? after : "", -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && !(*out = ctx_strdup((const char *)sqlite3_column_text(s, 0)))) {
        sqlite3_reset(s);
        return ctx_error_set(err, CTX_ENOMEM, "next document: out of memory");
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_errf(st, err, "find the next document");
    return CTX_OK;
}

/* see store_perm_seen in store.h (the table comes from store_perm_begin). */
int store_perm_seen(ctx_store *st, int64_t doc_id, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_PERM_SEEN, err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    return store__step_done(st, s, err, "mark document seen");
}

/*
 * chunk_ids - the ids of a document's chunks, into *ids (new; *n of them).
 * Collected first because the FTS5 writes that follow would disturb a
 * statement still stepping over chunks.
 */
static int chunk_ids(ctx_store *st, int64_t doc_id, int64_t **ids, size_t *n, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_CHUNK_IDS, err);
    size_t cap = 0;
    int rc;

    *ids = NULL;
    *n = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            int64_t *v;
            cap = cap ? cap * 2 : 16;
            if (!(v = ctx_realloc(*ids, cap * sizeof *v))) {
                sqlite3_reset(s);
                return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
            }
            *ids = v;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "list chunks");
}

static int drop_chunks(ctx_store *st, int64_t doc_id, ctx_error *err)
{
    sqlite3_stmt *s;
    int64_t *ids;
    size_t n, i;
    int rc;

    if ((rc = chunk_ids(st, doc_id, &ids, &n, err)))
        return rc;
    if (st->n_fts_del + n > st->cap_fts_del) {
        size_t cap = st->cap_fts_del ? st->cap_fts_del : 256;
        int64_t *v;
        while (cap < st->n_fts_del + n)
            cap *= 2;
        if (!(v = ctx_realloc(st->fts_del, cap * sizeof *v))) {
            ctx_free(ids);
            return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
        }
        st->fts_del = v;
        st->cap_fts_del = cap;
    }
    for (i = 0; i < n; i++)
        st->fts_del[st->n_fts_del++] = ids[i];
    /* Vectors go with their chunk; the tombstone tells a derived index. */
    for (i = 0; i < n; i++) {
        int rc2;
        if (!(s = store__stmt(st, Q_VEC_DEL, err))) {
            ctx_free(ids);
            return CTX_ESTORE;
        }
        sqlite3_bind_int64(s, 1, ids[i]);
        if ((rc2 = store__step_done(st, s, err, "drop vectors"))) {
            ctx_free(ids);
            return rc2;
        }
        if (sqlite3_changes(st->db) > 0) {
            if (!(s = store__stmt(st, Q_TOMB_ADD, err))) {
                ctx_free(ids);
                return CTX_ESTORE;
            }
            sqlite3_bind_int64(s, 1, ids[i]);
            if ((rc2 = store__step_done(st, s, err, "tombstone vector"))) {
                ctx_free(ids);
                return rc2;
            }
        }
        if (!(s = store__stmt(st, Q_QUEUE_DEL, err))) {
            ctx_free(ids);
            return CTX_ESTORE;
        }
        sqlite3_bind_int64(s, 1, ids[i]);
        if ((rc2 = store__step_done(st, s, err, "dequeue chunk"))) {
            ctx_free(ids);
            return rc2;
        }
    }
    ctx_free(ids);
    if (!(s = store__stmt(st, Q_CHUNK_DEL_DOC, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    return store__step_done(st, s, err, "drop chunks");
}

int store_chunks_replace(ctx_store *st, int64_t doc_id, const char *title,
                         int64_t acl_id, const store_chunk *chunks, size_t n,
                         ctx_error *err)
{
    int rc = drop_chunks(st, doc_id, err);
    return rc ? rc : store_chunks_add(st, doc_id, title, acl_id, chunks, n, err);
}

/* acl_tokens_get - the tokens of an ACL set, from the cache or the store. */
static int acl_tokens_get(ctx_store *st, int64_t acl_id, acl_tokens **out, ctx_error *err)
{
    acl_tokens *t = &st->cache[(uint64_t)acl_id % TOKEN_CACHE];
    sqlite3_stmt *s;
    int rc;

    *out = t;
    if (t->acl_id == acl_id)
        return CTX_OK;
    for (int j = 0; j < 3; j++) {
        ctx_free(t->tok[j]);
        t->tok[j] = NULL;
    }
    t->acl_id = 0;
    if (!(s = store__stmt(st, Q_ACL_TOKENS, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, acl_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        for (int j = 0; j < 3; j++)
            t->tok[j] = ctx_strdup((const char *)sqlite3_column_text(s, j));
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return ctx_error_set(err, CTX_EINTERNAL, "store: ACL set %lld missing", (long long)acl_id);
    if (rc != SQLITE_ROW)
        return store_errf(st, err, "read ACL tokens");
    if (!t->tok[0] || !t->tok[1] || !t->tok[2])
        return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
    t->acl_id = acl_id;
    return CTX_OK;
}

int store_chunks_add(ctx_store *st, int64_t doc_id, const char *title, int64_t acl_id,
                     const store_chunk *chunks, size_t n, ctx_error *err)
{
    sqlite3_stmt *s;
    acl_tokens *tok;
    int64_t cid;
    size_t i;
    int rc;

    if ((rc = acl_tokens_get(st, acl_id, &tok, err)))
        return rc;

    for (i = 0; i < n; i++) {
        if ((rc = store__chunk_id(st, &cid, err)))
            return rc;
        if (!(s = store__stmt(st, Q_CHUNK_ADD, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, doc_id);
        sqlite3_bind_int64(s, 2, (int64_t)i);
        sqlite3_bind_int(s, 3, chunks[i].ntokens);
        sqlite3_bind_int64(s, 4, acl_id);
        sqlite3_bind_int64(s, 5, cid);
        if ((rc = store__step_done(st, s, err, "add chunk")))
            return rc;
        if (!(s = store__stmt(st, Q_QUEUE_ADD, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, cid);
        if ((rc = store__step_done(st, s, err, "queue chunk for embedding")))
            return rc;
        if (!(s = store__stmt(st, Q_FTS_ADD, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, cid);
        sqlite3_bind_text(s, 2, title ? title : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, chunks[i].text, (int)chunks[i].len, SQLITE_STATIC);
        for (int j = 0; j < 3; j++)
            sqlite3_bind_text(s, 4 + j, tok->tok[j], -1, SQLITE_STATIC);
        if (chunks[i].toks) {
            pretok_slot slot = {chunks[i].text, chunks[i].len, chunks[i].toks,
                                chunks[i].toks_len};
            st->tok_slot = slot;
        }
        rc = store__step_done(st, s, err, "index chunk");
        memset(&st->tok_slot, 0, sizeof st->tok_slot);
        if (rc)
            return rc;
    }
    return CTX_OK;
}

/* A document's vectors, kept across the re-making of its chunks. */
typedef struct kept_vec {
    int64_t seq, model_id;
    int dim;
    unsigned char hash[16];
    size_t off;                /* into the blob buffer */
} kept_vec;

typedef struct kept_vecs {
    kept_vec *v;
    size_t n, cap;
    ctx_buf blobs;
} kept_vecs;

static int vectors_keep(ctx_store *st, int64_t doc_id, kept_vecs *k, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_VEC_OF_DOC, err);
    int step;

    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        kept_vec *e;
        if (k->n == k->cap) {
            size_t cap = k->cap ? k->cap * 2 : 8;
            kept_vec *v = ctx_realloc(k->v, cap * sizeof *v);
            if (!v)
                break;
            k->v = v;
            k->cap = cap;
        }
        e = &k->v[k->n];
        e->seq = sqlite3_column_int64(s, 0);
        e->model_id = sqlite3_column_int64(s, 1);
        e->dim = sqlite3_column_int(s, 2);
        memset(e->hash, 0, sizeof e->hash);
        if (sqlite3_column_bytes(s, 3) == 16)
            memcpy(e->hash, sqlite3_column_blob(s, 3), 16);
        e->off = k->blobs.len;
        if (sqlite3_column_bytes(s, 4) != e->dim * (int)sizeof(float))
            continue; /* not a vector this store wrote: let it be re-embedded */
        if (ctx_buf_append(&k->blobs, sqlite3_column_blob(s, 4), (size_t)e->dim * sizeof(float)))
            break;
        k->n++;
    }
    sqlite3_reset(s);
    if (step == SQLITE_ROW)
        return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
    return step == SQLITE_DONE ? CTX_OK : store_errf(st, err, "read vectors");
}

/*
 * vectors_restore - give the document's new chunks the vectors of the old
 * ones at the same position (the text is the same) under new seqs, so the
 * index sees a removal and an addition with the new ACL set, and take
 * them off the embedding queue. One-row writes, as next to FTS5 anywhere.
 */
static int vectors_restore(ctx_store *st, int64_t doc_id, const kept_vecs *k, ctx_error *err)
{
    sqlite3_stmt *s;
    int64_t cid;
    int rc;

    for (size_t i = 0; i < k->n; i++) {
        const kept_vec *e = &k->v[i];
        if (!(s = store__stmt(st, Q_CHUNK_AT, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, doc_id);
        sqlite3_bind_int64(s, 2, e->seq);
        if ((rc = store__get_id(st, s, &cid, err, "find chunk")))
            return rc;
        if (!cid)
            continue;
        if (!(s = store__stmt(st, Q_VEC_ADD, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, cid);
        sqlite3_bind_int64(s, 2, e->model_id);
        sqlite3_bind_int(s, 3, e->dim);
        sqlite3_bind_blob(s, 4, e->hash, 16, SQLITE_STATIC);
        sqlite3_bind_blob(s, 5, k->blobs.data + e->off, e->dim * (int)sizeof(float),
                          SQLITE_STATIC);
        sqlite3_bind_int64(s, 6, ctx_now_ms());
        if ((rc = store__step_done(st, s, err, "carry vector")))
            return rc;
        if (!(s = store__stmt(st, Q_QUEUE_DEL, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, cid);
        if ((rc = store__step_done(st, s, err, "dequeue chunk")))
            return rc;
    }
    return CTX_OK;
}

int store_doc_set_acl(ctx_store *st, int64_t doc_id, int64_t acl_id, ctx_error *err)
{
    kept_vecs kept = {NULL, 0, 0, CTX_BUF_INIT};
    sqlite3_stmt *s;
    store_chunk *chunks = NULL;
    ctx_buf text = CTX_BUF_INIT;
    char *title = NULL;
    size_t n = 0, cap = 0, i, *offs = NULL;
    int rc, step;

    if (!(s = store__stmt(st, Q_DOC_SET_ACL, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    sqlite3_bind_int64(s, 2, acl_id);
    sqlite3_bind_int64(s, 3, ctx_now_ms());
    if ((rc = store__step_done(st, s, err, "set document ACL")))
        return rc;

    /*
     * The permission columns live in the FTS5 rows, and rewriting a row in
     * place is a write to a lower rowid (a flush; see fts_del). So the
     * chunks are indexed again under new ids with the new ACL, and the old
     * rows join the deletes at commit. Their text is copied out first.
     */
    if (!(s = store__stmt(st, Q_CHUNK_TEXT, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    rc = CTX_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 2);
        size_t len = (size_t)sqlite3_column_bytes(s, 2);
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            store_chunk *c = ctx_realloc(chunks, cap * sizeof *c);
            size_t *o = ctx_realloc(offs, cap * sizeof *o);
            if (c)
                chunks = c;
            if (o)
                offs = o;
            if (!c || !o) {
                rc = CTX_ENOMEM;
                break;
            }
        }
        if (!title && !(title = ctx_strdup((const char *)sqlite3_column_text(s, 1)))) {
            rc = CTX_ENOMEM;
            break;
        }
        offs[n] = text.len;
        chunks[n].len = len;
        chunks[n].ntokens = sqlite3_column_int(s, 0);
        chunks[n].toks = NULL;
        chunks[n].toks_len = 0;
        if (ctx_buf_append(&text, t ? t : "", len)) {
            rc = CTX_ENOMEM;
            break;
        }
        n++;
    }
    sqlite3_reset(s);
    if (rc == CTX_ENOMEM)
        rc = ctx_error_set(err, rc, "store: out of memory");
    else if (step != SQLITE_DONE)
        rc = store_errf(st, err, "read chunk text");
    for (i = 0; !rc && i < n; i++)
        chunks[i].text = text.data + offs[i];
    /* Same text, same vectors: an ACL change never re-embeds. */
    if (!rc)
        rc = vectors_keep(st, doc_id, &kept, err);
    if (!rc)
        rc = store_chunks_replace(st, doc_id, title, acl_id, chunks, n, err);
    if (!rc)
        rc = vectors_restore(st, doc_id, &kept, err);
    ctx_free(kept.v);
    ctx_buf_free(&kept.blobs);
    ctx_free(chunks);
    ctx_free(offs);
    ctx_free(title);
    ctx_buf_free(&text);
    return rc;
}

int store_doc_delete(ctx_store *st, int64_t doc_id, int64_t epoch, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if ((rc = drop_chunks(st, doc_id, err)))
        return rc;
    if (!(s = store__stmt(st, Q_DOC_TOMB, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, doc_id);
    sqlite3_bind_int64(s, 2, epoch);
    sqlite3_bind_int64(s, 3, ctx_now_ms());
    return store__step_done(st, s, err, "delete document");
}

int store_prune(ctx_store *st, int64_t source, const char *stream, int64_t epoch,
                int64_t *n, ctx_error *err)
{
    static const int order[] = {Q_PRUNE_GONE, Q_PRUNE_FTS,   Q_PRUNE_TOMB, Q_PRUNE_VEC,
                                Q_PRUNE_QUEUE, Q_PRUNE_CHUNKS, Q_PRUNE_DOCS};
    sqlite3_stmt *s;
    int rc;

    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!(s = store__stmt(st, order[i], err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, source);
        sqlite3_bind_text(s, 2, stream, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, epoch);
        if (order[i] == Q_PRUNE_DOCS || order[i] == Q_PRUNE_GONE)
            sqlite3_bind_int64(s, 4, ctx_now_ms());
        if ((rc = store__step_done(st, s, err, "prune")))
            return rc;
    }
    *n = sqlite3_changes(st->db);
    return CTX_OK;
}

int store_run_begin(ctx_store *st, int64_t source, int full, int64_t *run, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if ((rc = store_begin(st, err)))
        return rc;
    if (!(s = store__stmt(st, Q_RUN_STALE, err))) {
        rc = CTX_ESTORE;
        goto fail;
    }
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_int64(s, 2, ctx_now_ms());
    if ((rc = store__step_done(st, s, err, "close stale runs")))
        goto fail;
    if (!(s = store__stmt(st, Q_RUN_ADD, err))) {
        rc = CTX_ESTORE;
        goto fail;
    }
    sqlite3_bind_int64(s, 1, source);
    sqlite3_bind_int64(s, 2, ctx_now_ms());
    sqlite3_bind_int(s, 3, full);
    if ((rc = store__step_done(st, s, err, "start run")))
        goto fail;
    *run = sqlite3_last_insert_rowid(st->db);
    return store_commit(st, err);
fail:
    store_rollback(st);
    return rc;
}

int store_run_finish(ctx_store *st, int64_t run, const char *status,
                     const store_run_stats *r, const char *error, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_RUN_FINISH, err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, run);
    sqlite3_bind_int64(s, 2, ctx_now_ms());
    sqlite3_bind_text(s, 3, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, r->records);
    sqlite3_bind_int64(s, 5, r->unchanged);
    sqlite3_bind_int64(s, 6, r->deletes);
    sqlite3_bind_int64(s, 7, r->acls);
    sqlite3_bind_int64(s, 8, r->principals);
    sqlite3_bind_int64(s, 9, r->states);
    sqlite3_bind_int64(s, 10, r->chunks);
    sqlite3_bind_int64(s, 11, r->pruned);
    sqlite3_bind_int64(s, 12, r->bytes);
    sqlite3_bind_int64(s, 13, r->repaired_utf8);
    sqlite3_bind_text(s, 14, error, -1, SQLITE_STATIC);
    return store__step_done(st, s, err, "finish run");
}

int store_source_live(ctx_store *st, int64_t source, int64_t *n, ctx_error *err)
{
    return store__one_int(st,
                          "SELECT count(*) FROM documents WHERE source_id = ?1 AND deleted = 0",
                          source, NULL, 0, n, "count live documents", err);
}

int store_prune_count(ctx_store *st, int64_t source, const char *stream, int64_t epoch,
                      int64_t *n, ctx_error *err)
{
    return store__one_int(st,
                          "SELECT count(*) FROM documents WHERE source_id = ?1 AND stream = ?2"
                          " AND seen_epoch < ?3 AND deleted = 0", source, stream, epoch, n,
                          "count documents to prune", err);
}

int store_run_note(ctx_store *st, int64_t run, const char *warnings, const char *held_reason,
                   ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if (sqlite3_prepare_v2(st->db, "UPDATE sync_runs SET warnings = ?2, held_reason = ?3"
                           " WHERE id = ?1", -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "note run");
    sqlite3_bind_int64(s, 1, run);
    sqlite3_bind_text(s, 2, warnings, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, held_reason, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "note run");
}

int store_source_held(ctx_store *st, int64_t source, char *reason, size_t len, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    reason[0] = '\0';
    /* The last run that held or lifted a hold ("" = lifted). */
    if (sqlite3_prepare_v2(st->db, "SELECT held_reason FROM sync_runs WHERE source_id = ?1"
                           " AND held_reason IS NOT NULL ORDER BY id DESC LIMIT 1", -1, &s,
                           NULL) != SQLITE_OK)
        return store_errf(st, err, "last run");
    sqlite3_bind_int64(s, 1, source);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(reason, len, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "last run");
}

int store_gone_trim(ctx_store *st, int64_t before_ms, int64_t *n, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_GONE_TRIM, err);
    int rc;

    *n = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, before_ms);
    if (!(rc = store__step_done(st, s, err, "trim the log of dropped chunks")))
        *n = sqlite3_changes(st->db);
    return rc;
}
