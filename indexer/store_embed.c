/*
 * store_embed.c - embeddings in the store: models and the active/target
 * switch, the embedding queue, vectors, and the tombstones a derived
 * vector index (vindex.c) catches up from.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

int store_embed_model(ctx_store *st, const char *name, int dim, int64_t *model_id,
                      ctx_error *err)
{
    sqlite3_stmt *s;
    int rc, have;

    *model_id = 0;
    if (!(s = store__stmt(st, Q_MODEL_GET, err)))
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *model_id = sqlite3_column_int64(s, 0);
        have = sqlite3_column_int(s, 1);
        sqlite3_reset(s);
        if (have != dim)
            return ctx_error_set(err, CTX_ECONFIG,
                                 "embeddings: model \"%s\" is recorded with %d dimensions,"
                                 " the config says %d; fix embeddings.dim or name the"
                                 " model differently", name, have, dim);
        return CTX_OK;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_errf(st, err, "look up model");
    if (!(s = store__stmt(st, Q_MODEL_ADD, err)))
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, dim);
    sqlite3_bind_int64(s, 3, ctx_now_ms());
    if ((rc = store__step_done(st, s, err, "add model")))
        return rc;
    *model_id = sqlite3_last_insert_rowid(st->db);
    return CTX_OK;
}

int store_embed_model_info(ctx_store *st, int64_t model_id, char **name, int *dim,
                           ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_MODEL_BY_ID, err);
    int rc;

    *name = NULL;
    *dim = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, model_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *name = ctx_strdup((const char *)sqlite3_column_text(s, 0));
        *dim = sqlite3_column_int(s, 1);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return ctx_error_set(err, CTX_ENOTFOUND, "embeddings: no model %lld", (long long)model_id);
    if (rc != SQLITE_ROW)
        return store_errf(st, err, "read model");
    return *name ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
}

static int setting_get(ctx_store *st, const char *key, int64_t *v, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_SET_GET, err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    return store__get_id(st, s, v, err, "read setting");
}

static int setting_put(ctx_store *st, const char *key, int64_t v, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, v ? Q_SET_PUT : Q_SET_DEL, err);
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (v)
        sqlite3_bind_int64(s, 2, v);
    return store__step_done(st, s, err, "write setting");
}

int store_embed_models(ctx_store *st, int64_t *active, int64_t *target, ctx_error *err)
{
    int rc = setting_get(st, "embed.active_model", active, err);
    return rc ? rc : setting_get(st, "embed.target_model", target, err);
}

int store_embed_depth(ctx_store *st, int64_t *n, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_QUEUE_DEPTH, err);
    return s ? store__get_id(st, s, n, err, "count queue") : CTX_ESTORE;
}

/* refill_queue - every chunk lacking a vector of model_id, and nothing else. */
static int refill_queue(ctx_store *st, int64_t model_id, ctx_error *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DELETE FROM embed_queue;"
             "INSERT INTO embed_queue(chunk_id) SELECT id FROM chunks c WHERE NOT EXISTS"
             " (SELECT 1 FROM vectors v WHERE v.chunk_id = c.id AND v.model_id = %lld)",
             (long long)model_id);
    return store_exec(st, sql, err);
}

int store_embed_prepare(ctx_store *st, int64_t model_id, int64_t *queued, ctx_error *err)
{
    int64_t active, target;
    int rc;

    *queued = 0;
    if ((rc = store_begin(st, err)))
        return rc;
    if ((rc = store_embed_models(st, &active, &target, err)))
        goto fail;
    if (!active) {
        rc = setting_put(st, "embed.active_model", model_id, err);
    } else if (active == model_id) {
        /* Back to the serving model: a half-built target is abandoned. */
        if (target && !(rc = setting_put(st, "embed.target_model", 0, err)))
            rc = refill_queue(st, model_id, err);
    } else if (target != model_id) {
        if (!(rc = setting_put(st, "embed.target_model", model_id, err)))
            rc = refill_queue(st, model_id, err);
    }
    if (rc || (rc = store_embed_depth(st, queued, err)))
        goto fail;
    return store_commit(st, err);
fail:
    store_rollback(st);
    return rc;
}

void store_embed_batch_free(store_embed_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        ctx_free(b->items[i].text);
    ctx_free(b->items);
    b->items = NULL;
    b->n = 0;
}

/* read_texts - the rows of s (id, title, text) into out, for either query below. */
static int read_texts(ctx_store *st, sqlite3_stmt *s, int64_t after, size_t max,
                      store_embed_batch *out, ctx_error *err)
{
    int rc;

    out->items = NULL;
    out->n = 0;
    if (!s)
        return CTX_ESTORE;
    if (!(out->items = ctx_calloc(max ? max : 1, sizeof *out->items)))
        return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_embed_item *it = &out->items[out->n];
        ctx_buf b = CTX_BUF_INIT;
        const char *title = (const char *)sqlite3_column_text(s, 1);
        const char *text = (const char *)sqlite3_column_text(s, 2);
        if (ctx_buf_printf(&b, "%s\n%s", title ? title : "", text ? text : "")) {
            ctx_buf_free(&b);
            sqlite3_reset(s);
            store_embed_batch_free(out);
            return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
        }
        it->chunk_id = sqlite3_column_int64(s, 0);
        it->len = b.len;
        it->text = ctx_buf_steal(&b);
        out->n++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_embed_batch_free(out);
        return store_errf(st, err, "read chunk texts");
    }
    return CTX_OK;
}

int store_embed_take(ctx_store *st, int64_t after, size_t max, store_embed_batch *out,
                     ctx_error *err)
{
    return read_texts(st, store__stmt(st, Q_QUEUE_TAKE, err), after, max, out, err);
}

int store_chunk_texts(ctx_store *st, int64_t after, size_t max, store_embed_batch *out,
                      ctx_error *err)
{
    return read_texts(st, store__stmt(st, Q_CHUNK_TEXTS, err), after, max, out, err);
}

int store_chunk_count(ctx_store *st, int64_t after, int64_t *total, int64_t *max_id,
                      int64_t *above, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_CHUNK_COUNT, err);
    int rc;

    *total = *max_id = *above = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, after);
    if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        *total = sqlite3_column_int64(s, 0);
        *max_id = sqlite3_column_int64(s, 1);
        *above = sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? CTX_OK : store_errf(st, err, "count chunks");
}

int store_vector_reuse(ctx_store *st, int64_t model_id, const unsigned char hash[16],
                       float *vec, int dim, int *found, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_VEC_REUSE, err);
    int rc;

    *found = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_blob(s, 2, hash, 16, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == dim * (int)sizeof(float)) {
        memcpy(vec, sqlite3_column_blob(s, 0), (size_t)dim * sizeof(float));
        *found = 1;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_errf(st, err, "look up vector");
    return CTX_OK;
}

int store_vector_put(ctx_store *st, int64_t chunk_id, int64_t model_id,
                     const unsigned char hash[16], const float *vec, int dim, int *applied,
                     ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_QUEUE_DEL, err);
    int rc;

    *applied = 0;
    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, chunk_id);
    if ((rc = store__step_done(st, s, err, "dequeue chunk")))
        return rc;
    if (sqlite3_changes(st->db) == 0)
        return CTX_OK;
    if (!(s = store__stmt(st, Q_VEC_ADD, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, chunk_id);
    sqlite3_bind_int64(s, 2, model_id);
    sqlite3_bind_int(s, 3, dim);
    sqlite3_bind_blob(s, 4, hash, 16, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, vec, dim * (int)sizeof(float), SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, ctx_now_ms());
    if ((rc = store__step_done(st, s, err, "write vector")))
        return rc;
    *applied = 1;
    return CTX_OK;
}

int store_embed_switch(ctx_store *st, int *switched, ctx_error *err)
{
    int64_t active, target, depth;
    int rc;

    *switched = 0;
    if ((rc = store_begin(st, err)))
        return rc;
    if ((rc = store_embed_models(st, &active, &target, err)) ||
        (rc = store_embed_depth(st, &depth, err)))
        goto fail;
    if (target && !depth) {
        if ((rc = setting_put(st, "embed.active_model", target, err)) ||
            (rc = setting_put(st, "embed.target_model", 0, err)))
            goto fail;
        *switched = 1;
    }
    return store_commit(st, err);
fail:
    store_rollback(st);
    return rc;
}

int store_vectors_retire(ctx_store *st, int64_t max, int64_t *n, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    *n = 0;
    if ((rc = store_begin(st, err)))
        return rc;
    if (!(s = store__stmt(st, Q_VEC_RETIRE, err))) {
        store_rollback(st);
        return CTX_ESTORE;
    }
    sqlite3_bind_int64(s, 1, max);
    if ((rc = store__step_done(st, s, err, "retire vectors"))) {
        store_rollback(st);
        return rc;
    }
    *n = sqlite3_changes(st->db);
    return store_commit(st, err);
}

int store_vectors_scan(ctx_store *st, int64_t model_id, int64_t after,
                       int (*fn)(void *arg, const store_vector_row *row), void *arg,
                       ctx_error *err)
{
    sqlite3_stmt *s;
    store_vector_row r;
    int rc, step;

    /* A statement of its own: fn may use the cached ones. */
    if (sqlite3_prepare_v2(st->db, store__sql_text[Q_VEC_SCAN], -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "prepare vector scan");
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_int64(s, 2, after);
    rc = CTX_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        r.seq = sqlite3_column_int64(s, 0);
        r.chunk_id = sqlite3_column_int64(s, 1);
        r.acl_id = sqlite3_column_int64(s, 2);
        r.source_id = sqlite3_column_int64(s, 3);
        r.vec = sqlite3_column_blob(s, 4);
        r.dim = sqlite3_column_bytes(s, 4) / (int)sizeof(float);
        if ((rc = fn(arg, &r)))
            break;
    }
    if (!rc && step != SQLITE_DONE)
        rc = store_errf(st, err, "scan vectors");
    sqlite3_finalize(s);
    return rc;
}

int store_vectors_last(ctx_store *st, int64_t model_id, int64_t *seq, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    *seq = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT coalesce(max(seq), 0) FROM vectors"
                           " WHERE model_id = ?1", -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "prepare last vector");
    sqlite3_bind_int64(s, 1, model_id);
    if ((rc = sqlite3_step(s)) == SQLITE_ROW)
        *seq = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? CTX_OK : store_errf(st, err, "read last vector");
}

int store_tombstones_scan(ctx_store *st, int64_t after,
                          int (*fn)(void *arg, int64_t seq, int64_t chunk_id), void *arg,
                          ctx_error *err)
{
    sqlite3_stmt *s;
    int rc = CTX_OK, step;

    if (sqlite3_prepare_v2(st->db, store__sql_text[Q_TOMB_SCAN], -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "prepare tombstone scan");
    sqlite3_bind_int64(s, 1, after);
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if ((rc = fn(arg, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1))))
            break;
    if (!rc && step != SQLITE_DONE)
        rc = store_errf(st, err, "scan tombstones");
    sqlite3_finalize(s);
    return rc;
}

int store_tombstone_marks(ctx_store *st, int64_t *last, int64_t *floor, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_TOMB_LAST, err);
    int rc;

    *last = *floor = 0;
    if (!s)
        return CTX_ESTORE;
    if ((rc = store__get_id(st, s, last, err, "read tombstone marks")))
        return rc;
    return setting_get(st, "embed.tomb_floor", floor, err);
}

int store_tombstones_prune(ctx_store *st, int64_t upto, int64_t *n, ctx_error *err)
{
    sqlite3_stmt *s;
    int64_t last, floor;
    int rc;

    if (n)
        *n = 0;
    if ((rc = store_begin(st, err)))
        return rc;
    if ((rc = store_tombstone_marks(st, &last, &floor, err)))
        goto fail;
    if (upto > last)
        upto = last;
    if (upto <= floor)
        return store_commit(st, err);
    if (!(s = store__stmt(st, Q_TOMB_PRUNE, err))) {
        rc = CTX_ESTORE;
        goto fail;
    }
    sqlite3_bind_int64(s, 1, upto);
    if ((rc = store__step_done(st, s, err, "prune tombstones")))
        goto fail;
    if (n)
        *n = sqlite3_changes(st->db);
    if ((rc = setting_put(st, "embed.tomb_floor", upto, err)))
        goto fail;
    return store_commit(st, err);
fail:
    store_rollback(st);
    return rc;
}
