/*
 * vdelta.c - the vector index's delta files: what the embed job writes
 * instead of the whole index when vectors came or went, read after the
 * main file by vindex_open and merged into it by vindex_maintain.
 *
 * "<data_dir>/vectors-<model>.<seq>-<tomb>.dlt", in host byte order:
 *
 *   "CTXVDLT1", model i64, dim i32, 0 i32, base_seq i64, base_tomb i64
 *   ntomb x chunk id i64                      tombstones base_tomb < seq <= tomb
 *   nvec x (chunk id i64, ACL set i32, source i32, dim floats)
 *                                             the model's vectors base_seq < seq <= seq
 *   seq i64, tomb i64, ntomb u64, nvec u64, checksum u64, length u64, "CTXVEND1"
 *
 * The checksum (FNV-1a) covers every byte before it. A delta continues the
 * files before it when its base is what they hold: the main file and the
 * deltas that so continue it are the chain; the others are left out.
 */
#include "vindex_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define HEAD_LEN 40
#define TAIL_LEN 56
#define SLICE 4096

static const char DMAGIC[8] = {'C', 'T', 'X', 'V', 'D', 'L', 'T', '1'};
static const char EMAGIC[8] = {'C', 'T', 'X', 'V', 'E', 'N', 'D', '1'};

/* ---- the locked temporary file ---- */

int vindex__tmp_open(const char *tmp, FILE **f, int *lockfd, ctx_error *err)
{
    struct timespec nap = {0, 20 * 1000000L};

    *f = NULL;
    *lockfd = -1;
    for (int tries = 0; tries < 50; tries++) {
        struct stat a, b;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), keep = -1;
        if (fd < 0)
            return ctx_error_set(err, CTX_EIO, "vector index: cannot write %s: %s", tmp,
                                 strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            /* a writer, or vindex_maintain looking at a file left behind */
            close(fd);
            nanosleep(&nap, NULL);
            continue;
        }
        /* Removed by vindex_maintain between the open and the lock: again. */
        if (fstat(fd, &a) || stat(tmp, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        if (ftruncate(fd, 0) || (keep = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0 ||
            !(*f = fdopen(fd, "wb"))) {
            int e = errno;
            close(fd);
            if (*f == NULL && keep >= 0)
                close(keep);
            return ctx_error_set(err, CTX_EIO, "vector index: cannot write %s: %s", tmp,
                                 strerror(e));
        }
        *lockfd = keep;
        return CTX_OK;
    }
    return ctx_error_set(err, CTX_EBUSY, "vector index: %s is being written by another"
                         " process", tmp);
}

/* ---- reading heads and tails ---- */

static void fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ULL;
}

#define FNV_START 0xcbf29ce484222325ULL

static int64_t get64(const unsigned char *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* main_whole - the main file's head names model_id and its tail its length. */
static int main_whole(const char *path, int64_t model_id, int64_t *seq, int64_t *tomb)
{
    unsigned char t[24];
    struct stat sb;
    int64_t model;
    int fd, ok;

    if (vindex_peek(path, &model, seq, tomb) || model != model_id)
        return 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    ok = !fstat(fd, &sb) && sb.st_size > 64 &&
         pread(fd, t, sizeof t, sb.st_size - (off_t)sizeof t) == (ssize_t)sizeof t &&
         (uint64_t)get64(t + 8) == (uint64_t)sb.st_size && !memcmp(t + 16, EMAGIC, 8);
    close(fd);
    return ok;
}

/* delta_peek - d from the head and tail of data_dir/name; 0 when they do not hold. */
static int delta_peek(const char *data_dir, const char *name, int64_t model_id, vdelta *d)
{
    unsigned char h[HEAD_LEN], t[TAIL_LEN];
    char path[4096];
    struct stat sb;
    int fd, ok;

    snprintf(path, sizeof path, "%s/%s", data_dir, name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    ok = !fstat(fd, &sb) && sb.st_size >= HEAD_LEN + TAIL_LEN &&
         pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h &&
         pread(fd, t, sizeof t, sb.st_size - TAIL_LEN) == (ssize_t)sizeof t;
    close(fd);
    if (!ok || memcmp(h, DMAGIC, 8) || memcmp(t + 48, EMAGIC, 8) ||
        get64(h + 8) != model_id || (uint64_t)get64(t + 40) != (uint64_t)sb.st_size)
        return 0;
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    memcpy(&d->dim, h + 16, 4);
    d->base_seq = get64(h + 24);
    d->base_tomb = get64(h + 32);
    d->seq = get64(t);
    d->tomb = get64(t + 8);
    d->ntomb = (uint64_t)get64(t + 16);
    d->nvec = (uint64_t)get64(t + 24);
    d->size = (uint64_t)sb.st_size;
    /* the counts must fill the file exactly */
    return d->dim > 0 && d->dim <= 65536 && d->ntomb < (1ULL << 40) && d->nvec < (1ULL << 32) &&
           HEAD_LEN + d->ntomb * 8 + d->nvec * (16 + 4 * (uint64_t)d->dim) + TAIL_LEN == d->size;
}

static int by_marks(const void *a, const void *b)
{
    const vdelta *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->tomb < y->tomb ? -1 : x->tomb > y->tomb;
}

void vdelta_set_free(vdelta_set *s)
{
    ctx_free(s->d);
    memset(s, 0, sizeof *s);
}

int vdelta_list(const char *data_dir, int64_t model_id, vdelta_set *out, ctx_error *err)
{
    char path[4096], prefix[64];
    struct dirent *e;
    size_t cap = 0, plen;
    DIR *dir;

    memset(out, 0, sizeof *out);
    vindex_path(data_dir, model_id, path, sizeof path);
    out->main_ok = main_whole(path, model_id, &out->main_seq, &out->main_tomb);
    if (!out->main_ok)
        out->main_seq = out->main_tomb = 0;
    out->seq = out->main_seq;
    out->tomb = out->main_tomb;
    if (!(dir = opendir(data_dir)))
        return ctx_error_set(err, CTX_EIO, "vector index: cannot list %s: %s", data_dir,
                             strerror(errno));
    plen = (size_t)snprintf(prefix, sizeof prefix, "vectors-%lld.", (long long)model_id);
    while ((e = readdir(dir))) {
        size_t len = strlen(e->d_name);
        vdelta d;
        if (strncmp(e->d_name, prefix, plen) || len < 5 || strcmp(e->d_name + len - 4, ".dlt") ||
            len >= sizeof d.name)
            continue;
        if (!delta_peek(data_dir, e->d_name, model_id, &d)) {
            /* torn or not ours: off the chain, listed so it can be removed */
            memset(&d, 0, sizeof d);
            snprintf(d.name, sizeof d.name, "%s", e->d_name);
            d.seq = d.tomb = -1;
        }
        if (out->n == cap) {
            vdelta *v = ctx_realloc(out->d, (cap = cap ? cap * 2 : 16) * sizeof *v);
            if (!v) {
                closedir(dir);
                vdelta_set_free(out);
                return ctx_error_set(err, CTX_ENOMEM, "vector index: out of memory");
            }
            out->d = v;
        }
        out->d[out->n++] = d;
    }
    closedir(dir);
    if (out->n)
        qsort(out->d, out->n, sizeof *out->d, by_marks);
    for (size_t i = 0; out->main_ok && i < out->n; i++) {
        vdelta *d = &out->d[i];
        if (d->seq >= 0 && d->base_seq == out->seq && d->base_tomb == out->tomb &&
            (d->seq > out->seq || d->tomb > out->tomb)) {
            d->chained = 1;
            out->seq = d->seq;
            out->tomb = d->tomb;
            out->nchain++;
            out->chain_bytes += d->size;
        }
    }
    return CTX_OK;
}

/* ---- writing ---- */

typedef struct writer {
    FILE *f;
    uint64_t sum, len;
    int ok;
    int dim;
    uint64_t ntomb, nvec;
    int64_t seq, tomb;
    ctx_error *err;
} writer;

static void put(writer *w, const void *p, size_t n)
{
    if (w->ok && n && fwrite(p, 1, n, w->f) != n)
        w->ok = 0;
    fnv(&w->sum, p, n);
    w->len += n;
}

static int io_failed(writer *w, const char *tmp)
{
    return ctx_error_set(w->err, CTX_EIO, "vector index: cannot write %s: %s; check free"
                         " space in the data_dir", tmp, strerror(errno));
}

static int on_tomb(void *arg, int64_t seq, int64_t chunk_id)
{
    writer *w = arg;
    put(w, &chunk_id, 8);
    w->ntomb++;
    w->tomb = seq;
    return w->ok ? CTX_OK : io_failed(w, "a delta");
}

static int on_vector(void *arg, const store_vector_row *r)
{
    writer *w = arg;
    int32_t as[2] = {(int32_t)r->acl_id, (int32_t)r->source_id};

    if (r->dim != w->dim)
        return ctx_error_set(w->err, CTX_EINTERNAL, "vector index: chunk %lld has %d"
                             " dimensions, the model %d", (long long)r->chunk_id, r->dim,
                             w->dim);
    if (r->acl_id < 0 || r->acl_id > INT32_MAX || r->source_id < 0 || r->source_id > INT32_MAX)
        return ctx_error_set(w->err, CTX_EINVAL, "vector index: chunk %lld: ACL set or source"
                             " id out of range", (long long)r->chunk_id);
    put(w, &r->chunk_id, 8);
    put(w, as, 8);
    put(w, r->vec, (size_t)w->dim * sizeof(float));
    w->nvec++;
    w->seq = r->seq;
    return w->ok ? CTX_OK : io_failed(w, "a delta");
}

int vdelta_write(ctx_store *st, const char *data_dir, int64_t model_id, int dim,
                 int64_t base_seq, int64_t base_tomb, uint64_t *written, size_t *nvec,
                 size_t *ntomb, ctx_error *err)
{
    char tmp[4096], path[4096];
    int32_t hd[2] = {dim, 0};
    int64_t hb[2] = {base_seq, base_tomb};
    writer w;
    int rc, lockfd;

    if (written)
        *written = 0;
    *nvec = *ntomb = 0;
    snprintf(tmp, sizeof tmp, "%s/vectors-%lld.dlt.tmp", data_dir, (long long)model_id);
    memset(&w, 0, sizeof w);
    if ((rc = vindex__tmp_open(tmp, &w.f, &lockfd, err)))
        return rc;
    w.sum = FNV_START;
    w.ok = 1;
    w.dim = dim;
    w.seq = base_seq;
    w.tomb = base_tomb;
    w.err = err;
    put(&w, DMAGIC, 8);
    put(&w, &model_id, 8);
    put(&w, hd, 8);
    put(&w, hb, 16);
    /*
     * Tombstones first, then vectors, and read back in the other order: a
     * tombstone read here is of a vector committed before it, so in this
     * delta or an earlier file, and is applied after it; a vector deleted
     * after its tombstones were read has its tombstone in the next delta.
     */
    rc = store_tombstones_scan(st, base_tomb, on_tomb, &w, err);
    if (!rc)
        rc = store_vectors_scan(st, model_id, base_seq, on_vector, &w, err);
    if (!rc && (w.ntomb || w.nvec)) {
        int64_t tl[4] = {w.seq, w.tomb, (int64_t)w.ntomb, (int64_t)w.nvec};
        uint64_t total;
        put(&w, tl, sizeof tl);
        total = w.len + 24;
        {
            uint64_t sum = w.sum;
            put(&w, &sum, 8);
            put(&w, &total, 8);
            put(&w, EMAGIC, 8);
        }
        if (!w.ok || fflush(w.f) || fsync(fileno(w.f)))
            rc = io_failed(&w, tmp);
    }
    if (fclose(w.f) && !rc)
        rc = io_failed(&w, tmp);
    snprintf(path, sizeof path, "%s/vectors-%lld.%lld-%lld.dlt", data_dir,
             (long long)model_id, (long long)w.seq, (long long)w.tomb);
    if (!rc && (w.ntomb || w.nvec) && rename(tmp, path))
        rc = ctx_error_set(err, CTX_EIO, "vector index: cannot rename to %s: %s", path,
                           strerror(errno));
    if (rc || !(w.ntomb || w.nvec))
        unlink(tmp);
    close(lockfd);
    if (!rc) {
        *nvec = (size_t)w.nvec;
        *ntomb = (size_t)w.ntomb;
        if (written && (w.ntomb || w.nvec))
            *written = w.len;
    }
    return rc;
}

/* ---- reading ---- */

int vdelta_apply(vindex *vi, const char *data_dir, const vdelta *d, ctx_error *err)
{
    char path[4096];
    unsigned char buf[65536], tail[TAIL_LEN];
    uint64_t sum = FNV_START, left = d->size - TAIL_LEN, want;
    vindex_info info;
    size_t row = 16 + (size_t)d->dim * sizeof(float), got;
    int64_t *tombs = NULL, *ids = NULL, *acl = NULL, *src = NULL;
    float *vecs = NULL;
    int rc = CTX_OK;
    FILE *f;

    vindex_get_info(vi, &info);
    if (d->dim != info.dim)
        return ctx_error_set(err, CTX_EIO, "vector index: %s: %d dimensions, the index %d",
                             d->name, d->dim, info.dim);
    snprintf(path, sizeof path, "%s/%s", data_dir, d->name);
    if (!(f = fopen(path, "rb")))
        return ctx_error_set(err, CTX_EIO, "vector index: %s: %s", path, strerror(errno));
    /* The checksum before anything is applied: a torn delta changes nothing. */
    while (left && (got = fread(buf, 1, left < sizeof buf ? left : sizeof buf, f)) > 0) {
        fnv(&sum, buf, got);
        left -= got;
    }
    if (left || fread(tail, 1, TAIL_LEN, f) != TAIL_LEN) {
        fclose(f);
        return ctx_error_set(err, CTX_EIO, "vector index: %s: torn (short)", path);
    }
    fnv(&sum, tail, 32);
    if ((uint64_t)get64(tail + 32) != sum) {
        fclose(f);
        return ctx_error_set(err, CTX_EIO, "vector index: %s: torn (checksum)", path);
    }
    if (!(tombs = ctx_malloc((d->ntomb ? d->ntomb : 1) * 8)) ||
        !(ids = ctx_malloc(SLICE * 8)) || !(acl = ctx_malloc(SLICE * 8)) ||
        !(src = ctx_malloc(SLICE * 8)) ||
        !(vecs = ctx_malloc((size_t)SLICE * (size_t)d->dim * sizeof(float)))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "vector index: out of memory");
        goto done;
    }
    if (fseeko(f, HEAD_LEN, SEEK_SET) ||
        fread(tombs, 8, (size_t)d->ntomb, f) != (size_t)d->ntomb) {
        rc = ctx_error_set(err, CTX_EIO, "vector index: %s: cannot read", path);
        goto done;
    }
    for (uint64_t at = 0; at < d->nvec; at += want) {
        want = d->nvec - at < SLICE ? d->nvec - at : SLICE;
        for (uint64_t i = 0; i < want; i++) {
            int32_t as[2];
            if (fread(buf, 1, row, f) != row) {
                rc = ctx_error_set(err, CTX_EIO, "vector index: %s: cannot read", path);
                goto done;
            }
            ids[i] = get64(buf);
            memcpy(as, buf + 8, 8);
            acl[i] = as[0];
            src[i] = as[1];
            memcpy(vecs + i * (size_t)d->dim, buf + 16, row - 16);
        }
        /* the same slices as vindex_catch_up: the partition is trained alike */
        if ((rc = vindex_add(vi, (size_t)want, vecs, ids, acl, src, 0, err)))
            goto done;
    }
    for (uint64_t i = 0; i < d->ntomb; i++)
        vindex_remove(vi, tombs[i], 0);
    if ((rc = vindex_add(vi, 0, vecs, ids, acl, src, d->seq, err)))
        goto done;
    vindex_remove(vi, -1, d->tomb);
done:
    fclose(f);
    ctx_free(tombs);
    ctx_free(ids);
    ctx_free(acl);
    ctx_free(src);
    ctx_free(vecs);
    return rc;
}
