/*
 * vindex.c - the vector index's life beside the store: load or build,
 * apply deltas, catch up with vectors and tombstones, rebuild when torn or
 * too full of tombstones; write deltas and merge them, under a lock that
 * every writer of the files takes (see vindex.h).
 */
#include "vindex_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/util.h"
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

/*
 * apply_deltas - the deltas that continue vi's file, when path is a model's
 * main file in its data_dir. A torn one ends the chain (the store fills
 * in, or the tombstone floor asks for a rebuild).
 */
static int apply_deltas(vindex *vi, const char *path, int64_t model_id, ctx_error *err)
{
    char dir[4096], want[64];
    const char *slash = strrchr(path, '/');
    vindex_info info;
    vdelta_set set;
    ctx_error derr;
    int rc;

    snprintf(want, sizeof want, "vectors-%lld.idx", (long long)model_id);
    if (!slash || strcmp(slash + 1, want) || (size_t)(slash - path) >= sizeof dir)
        return CTX_OK;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if ((rc = vdelta_list(dir, model_id, &set, err)))
        return rc;
    vindex_get_info(vi, &info);
    /* the chain was found from the file's head; vi is that file */
    if (set.main_seq == info.seq && set.main_tomb == info.tomb_seq) {
        for (size_t i = 0; i < set.n; i++) {
            if (!set.d[i].chained)
                continue;
            if (vdelta_apply(vi, dir, &set.d[i], &derr)) {
                ctx_log(CTX_LOG_WARN, "vindex", "%s; caught up from the store instead",
                        derr.text);
                break;
            }
        }
    }
    vdelta_set_free(&set);
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
        if (info.model_id == model_id && (rc = apply_deltas(vi, path, model_id, err))) {
            vindex_free(vi);
            return rc;
        }
        vindex_get_info(vi, &info);
        if ((rc = store_tombstone_marks(st, &last, &floor, err))) {
            vindex_free(vi);
            return rc;
        }
        /* Another model's file, or files older than the tombstones kept. */
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

int vindex_files(const char *data_dir, int64_t model_id, vindex_files_info *out,
                 ctx_error *err)
{
    vdelta_set set;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = vdelta_list(data_dir, model_id, &set, err)))
        return rc;
    out->main_ok = set.main_ok;
    out->seq = set.seq;
    out->tomb_seq = set.tomb;
    out->deltas = set.nchain;
    out->other = set.n - set.nchain;
    out->delta_bytes = set.chain_bytes;
    vdelta_set_free(&set);
    return CTX_OK;
}

int vindex_lock(const char *data_dir, int wait_ms, volatile sig_atomic_t *cancel, int *fd,
                ctx_error *err)
{
    char path[4096];
    int rc;

    snprintf(path, sizeof path, "%s/vectors.lock", data_dir);
    rc = ctx_flock_take(path, wait_ms, cancel, fd);
    if (rc == CTX_EBUSY)
        return ctx_error_set(err, rc, "vector index: another process is writing the index"
                             " files of %s (lock %s); try again", data_dir, path);
    if (rc == CTX_ECANCELED)
        return ctx_error_set(err, rc, "vector index: canceled while waiting for %s", path);
    if (rc)
        return ctx_error_set(err, rc, "vector index: cannot lock %s: %s", path,
                             strerror(errno));
    return CTX_OK;
}

void vindex_unlock(int fd) { ctx_flock_drop(fd); }

/* drop_deltas - unlink every delta of model_id in data_dir (lock held). */
static void drop_deltas(const char *data_dir, const vdelta_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", data_dir, set->d[i].name);
        unlink(path);
    }
}

/*
 * rewrite - the main file of model_id written from vi, or from what
 * vindex_open makes of the files and the store when vi is NULL (a merge);
 * then the deltas it holds are deleted (lock held).
 */
static int rewrite(ctx_store *st, const char *data_dir, int64_t model_id, vindex *vi,
                   vindex_update_stats *out, ctx_error *err)
{
    char path[4096];
    vindex *mine = NULL;
    vindex_info info;
    vdelta_set set;
    struct stat sb;
    int rc, how;

    vindex_path(data_dir, model_id, path, sizeof path);
    if (!vi && (rc = vindex_open(st, path, model_id, &mine, &how, err)))
        return rc;
    if ((rc = vindex_save(vi ? vi : mine, path, err)))
        goto done;
    vindex_get_info(vi ? vi : mine, &info);
    out->vectors = info.n - info.dead;
    out->dead = info.dead;
    if (!stat(path, &sb))
        out->bytes += (uint64_t)sb.st_size;
    /* everything the deltas held is in the main file now */
    if (!(rc = vdelta_list(data_dir, model_id, &set, err))) {
        drop_deltas(data_dir, &set);
        vdelta_set_free(&set);
    }
done:
    vindex_free(mine);
    return rc;
}

int vindex_update(ctx_store *st, const char *data_dir, int64_t model_id, int wait_ms,
                  volatile sig_atomic_t *cancel, vindex_update_stats *out, ctx_error *err)
{
    int64_t last_seq, last_tomb, floor;
    vdelta_set set;
    char *name = NULL;
    int rc, fd, dim;

    memset(out, 0, sizeof *out);
    memset(&set, 0, sizeof set);
    if ((rc = vindex_lock(data_dir, wait_ms, cancel, &fd, err)))
        return rc;
    if ((rc = store_embed_model_info(st, model_id, &name, &dim, err)) ||
        (rc = vdelta_list(data_dir, model_id, &set, err)) ||
        (rc = store_vectors_last(st, model_id, &last_seq, err)) ||
        (rc = store_tombstone_marks(st, &last_tomb, &floor, err)))
        goto done;
    if (!set.main_ok || set.tomb < floor) {
        vindex *vi;
        if ((rc = vindex_build(st, model_id, &vi, err)))
            goto done;
        out->built = 1;
        rc = rewrite(st, data_dir, model_id, vi, out, err);
        vindex_free(vi);
    } else if (last_seq > set.seq || last_tomb > set.tomb) {
        rc = vdelta_write(st, data_dir, model_id, dim, set.seq, set.tomb, &out->bytes,
                          &out->added, &out->removed, err);
        /* A merge now and then keeps opening the index from costing more
         * and more files, when vindex_maintain does not run. */
        if (!rc && set.nchain + 1 > VINDEX_DELTAS_MAX) {
            out->merged = 1;
            rc = rewrite(st, data_dir, model_id, NULL, out, err);
        }
    }
    if (!rc)
        rc = vindex_files(data_dir, model_id, &out->files, err);
done:
    vdelta_set_free(&set);
    ctx_free(name);
    vindex_unlock(fd);
    return rc;
}

static int ends_with(const char *s, size_t len, const char *tail)
{
    size_t n = strlen(tail);
    return len >= n && !strcmp(s + len - n, tail);
}

/* tmp_unused - path is a temporary file no writer holds; it is locked into *fd. */
static int tmp_unused(const char *path, int *fd)
{
    if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
        close(*fd);
        *fd = -1;
        return 0;
    }
    return 1;
}

int vindex_maintain(ctx_store *st, const char *data_dir, int64_t *pruned, ctx_error *err)
{
    int64_t active, target, upto = -1, keep[2];
    struct dirent *e;
    DIR *d;
    int rc, lock;

    if (pruned)
        *pruned = 0;
    if ((rc = store_embed_models(st, &active, &target, err)))
        return rc;
    if ((rc = vindex_lock(data_dir, 60000, NULL, &lock, err)))
        return rc;
    if (!(d = opendir(data_dir))) {
        vindex_unlock(lock);
        return ctx_error_set(err, CTX_EIO, "vector index: cannot list %s", data_dir);
    }
    while ((e = readdir(d))) {
        char path[4096], *end;
        size_t len = strlen(e->d_name);
        long long id;
        int fd;
        if (strncmp(e->d_name, "vectors-", 8))
            continue;
        id = strtoll(e->d_name + 8, &end, 10);
        if (end == e->d_name + 8 || *end != '.' ||
            (!ends_with(e->d_name, len, ".idx") && !ends_with(e->d_name, len, ".dlt") &&
             !ends_with(e->d_name, len, ".tmp")))
            continue;
        snprintf(path, sizeof path, "%s/%s", data_dir, e->d_name);
        /* A .tmp is a write that never finished, unless its writer still holds it. */
        if (ends_with(e->d_name, len, ".tmp")) {
            if (tmp_unused(path, &fd)) {
                unlink(path);
                close(fd);
            }
            continue;
        }
        /* other models' files are done with */
        if (id != active && id != target)
            unlink(path);
    }
    closedir(d);
    keep[0] = active;
    keep[1] = target;
    for (int i = 0; i < 2 && !rc; i++) {
        vindex_update_stats us;
        vdelta_set set;
        if (!keep[i] || (i && keep[1] == keep[0]))
            continue;
        if ((rc = vdelta_list(data_dir, keep[i], &set, err)))
            break;
        /* the deltas into the main file: one file to open again */
        if (set.main_ok && set.n) {
            memset(&us, 0, sizeof us);
            vdelta_set_free(&set);
            if ((rc = rewrite(st, data_dir, keep[i], NULL, &us, err)) ||
                (rc = vdelta_list(data_dir, keep[i], &set, err)))
                break;
        }
        /* No file of the active model yet: it will be built from the
         * store, which needs no tombstones, but keep them until it exists. */
        if (!set.main_ok && i == 0)
            upto = 0;
        else if (set.main_ok)
            upto = upto < 0 || set.tomb < upto ? set.tomb : upto;
        vdelta_set_free(&set);
    }
    if (!rc && upto > 0 && active)
        rc = store_tombstones_prune(st, upto, pruned, err);
    vindex_unlock(lock);
    return rc;
}
