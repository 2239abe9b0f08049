/*
 * vindex.c - the vector index's life beside the store: load or build,
 * catch up with vectors and tombstones, rebuild when torn or too full of
 * tombstones (see vindex.h).
 */
#include "vindex.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

/* Vectors go to the graph in slices: FAISS inserts a slice in parallel. */
#define ADD_SLICE 4096
#define HNSW_M 16

typedef struct pending {
    vindex *vi;
    int dim;
    size_t n;
    float *vecs;
    int64_t chunk[ADD_SLICE], acl[ADD_SLICE], src[ADD_SLICE], seq;
    size_t added;
    ctx_error *err;
} pending;

static int flush(pending *p)
{
    int rc = vindex_add(p->vi, p->n, p->vecs, p->chunk, p->acl, p->src, p->seq, p->err);
    p->added += p->n;
    p->n = 0;
    return rc;
}

static int on_vector(void *arg, const store_vector_row *r)
{
    pending *p = arg;
    if (r->dim != p->dim)
        return ctx_error_set(p->err, CTX_EINTERNAL, "vector index: chunk %lld has %d"
                             " dimensions, the model %d", (long long)r->chunk_id, r->dim, p->dim);
    memcpy(p->vecs + p->n * (size_t)p->dim, r->vec, (size_t)p->dim * sizeof(float));
    p->chunk[p->n] = r->chunk_id;
    p->acl[p->n] = r->acl_id;
    p->src[p->n] = r->source_id;
    p->seq = r->seq;
    return ++p->n == ADD_SLICE ? flush(p) : CTX_OK;
}

typedef struct tomb_ctx {
    vindex *vi;
    size_t removed;
} tomb_ctx;

static int on_tomb(void *arg, int64_t seq, int64_t chunk_id)
{
    tomb_ctx *t = arg;
    vindex_remove(t->vi, chunk_id, seq);
    t->removed++;
    return CTX_OK;
}

int vindex_catch_up(vindex *vi, ctx_store *st, size_t *added, size_t *removed, ctx_error *err)
{
    vindex_info info;
    pending *p;
    tomb_ctx t = {vi, 0};
    int rc;

    vindex_get_info(vi, &info);
    if (!(p = ctx_calloc(1, sizeof *p)) ||
        !(p->vecs = ctx_malloc((size_t)ADD_SLICE * (size_t)info.dim * sizeof(float)))) {
        ctx_free(p);
        return ctx_error_set(err, CTX_ENOMEM, "vector index: out of memory");
    }
    p->vi = vi;
    p->dim = info.dim;
    p->err = err;
    /* Tombstones first: a vector added below whose chunk is already gone
     * leaves a tombstone newer than tomb_seq, applied on the next pass. */
    rc = store_tombstones_scan(st, info.tomb_seq, on_tomb, &t, err);
    if (!rc)
        rc = store_vectors_scan(st, info.model_id, info.seq, on_vector, p, err);
    if (!rc && p->n)
        rc = flush(p);
    /* Tombstones that raced the vector scan. */
    if (!rc)
        rc = store_tombstones_scan(st, info.tomb_seq, on_tomb, &t, err);
    if (added)
        *added = p->added;
    if (removed)
        *removed = t.removed;
    ctx_free(p->vecs);
    ctx_free(p);
    return rc;
}

int vindex_build(ctx_store *st, int64_t model_id, vindex **out, ctx_error *err)
{
    char *name = NULL;
    int64_t last, floor;
    int dim, rc;
    vindex *vi;

    *out = NULL;
    if ((rc = store_embed_model_info(st, model_id, &name, &dim, err)))
        return rc;
    ctx_free(name);
    if (!(vi = vindex_new(dim, model_id, HNSW_M)))
        return ctx_error_set(err, CTX_ENOMEM, "vector index: out of memory");
    /* Tombstones before now concern vectors the scan will not see. */
    if ((rc = store_tombstone_marks(st, &last, &floor, err))) {
        vindex_free(vi);
        return rc;
    }
    vindex_remove(vi, -1, last);
    if ((rc = vindex_catch_up(vi, st, NULL, NULL, err))) {
        vindex_free(vi);
        return rc;
    }
    *out = vi;
    return CTX_OK;
}

int vindex_open(ctx_store *st, const char *path, int64_t model_id, vindex **out, int *how,
                ctx_error *err)
{
    vindex *vi = NULL;
    vindex_info info;
    ctx_error lerr;
    int rc;

    *out = NULL;
    *how = VINDEX_LOADED;
    rc = vindex_load(path, &vi, &lerr);
    if (!rc) {
        int64_t last, floor;
        vindex_get_info(vi, &info);
        if ((rc = store_tombstone_marks(st, &last, &floor, err))) {
            vindex_free(vi);
            return rc;
        }
        /* Another model's file, or one older than the tombstones kept. */
        if (info.model_id != model_id || info.tomb_seq < floor) {
            vindex_free(vi);
            vi = NULL;
            rc = CTX_EINVAL;
        }
    } else if (rc != CTX_ENOTFOUND) {
        ctx_log(CTX_LOG_WARN, "vindex", "%s; rebuilding it from the store", lerr.text);
    }
    if (rc) {
        *how = VINDEX_BUILT;
        return (rc = vindex_build(st, model_id, out, err));
    }
    if ((rc = vindex_catch_up(vi, st, NULL, NULL, err))) {
        vindex_free(vi);
        return rc;
    }
    /* Tombstoned vectors still cost graph walks: past a fifth, rebuild. */
    vindex_get_info(vi, &info);
    if (info.dead > 64 && info.dead * 5 > info.n) {
        vindex_free(vi);
        *how = VINDEX_BUILT;
        return vindex_build(st, model_id, out, err);
    }
    *out = vi;
    return CTX_OK;
}

void vindex_path(const char *data_dir, int64_t model_id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/vectors-%lld.idx", data_dir, (long long)model_id);
}

int vindex_maintain(ctx_store *st, const char *data_dir, int64_t *pruned, ctx_error *err)
{
    int64_t active, target, upto = -1;
    struct dirent *e;
    DIR *d;
    int rc;

    if (pruned)
        *pruned = 0;
    if ((rc = store_embed_models(st, &active, &target, err)))
        return rc;
    if (!(d = opendir(data_dir)))
        return ctx_error_set(err, CTX_EIO, "vector index: cannot list %s", data_dir);
    while ((e = readdir(d))) {
        char path[4096], *end;
        int64_t model, seq, tomb;
        long long id;
        if (strncmp(e->d_name, "vectors-", 8))
            continue;
        id = strtoll(e->d_name + 8, &end, 10);
        if (end == e->d_name + 8 || (strcmp(end, ".idx") && strcmp(end, ".idx.tmp")))
            continue;
        snprintf(path, sizeof path, "%s/%s", data_dir, e->d_name);
        /* A .tmp is a save that never finished; other models' files are done with. */
        if (!strcmp(end, ".idx.tmp") || (id != active && id != target)) {
            unlink(path);
            continue;
        }
        if (vindex_peek(path, &model, &seq, &tomb) || model != id)
            tomb = 0; /* it will be rebuilt anyway; keep every tombstone meanwhile */
        upto = upto < 0 || tomb < upto ? tomb : upto;
    }
    closedir(d);
    /* No index file of the active model yet: it will be built from the
     * store, which needs no tombstones, but keep them until it exists. */
    if (upto <= 0 || !active)
        return CTX_OK;
    {
        char path[4096];
        vindex_path(data_dir, active, path, sizeof path);
        if (access(path, F_OK))
            return CTX_OK;
    }
    return store_tombstones_prune(st, upto, pruned, err);
}
