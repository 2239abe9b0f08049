/*
 * vindex.h - the vector index: an HNSW graph (FAISS) and a k-means
 * partition (an inverted file) over the vectors of one embedding model,
 * with each vector's chunk id, ACL set and source, so a search can be
 * limited to what a caller may read before anything is ranked. Derived
 * data: the store's vectors table is the truth; the index is persisted
 * beside the store (a main file and deltas), caught up from it, and
 * rebuilt when its file is missing, torn or of another model.
 *
 * The C face of indexer/faiss_bridge.cpp (the index itself) and
 * indexer/vindex.c (its life beside the store). Distances are squared L2
 * on unit vectors; a hit's score is the cosine similarity, 1 - d/2.
 *
 * Threads: any number of searches may run at once on one index; adding,
 * removing, catching up and loading need it to themselves.
 */
#ifndef CTX_INDEXER_VINDEX_H
#define CTX_INDEXER_VINDEX_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vindex vindex;

typedef struct vindex_hit {
    int64_t chunk_id;
    float score;          /* cosine similarity, higher is better */
} vindex_hit;

/* Which vectors a search may see. Arrays borrowed, sorted ascending. */
typedef struct vindex_filter {
    const int64_t *acl_ids;     /* readable ACL sets; none = nothing */
    size_t nacl;
    const int64_t *source_ids;  /* only these sources; NULL = any */
    size_t nsource;
} vindex_filter;

typedef struct vindex_info {
    int64_t model_id;
    int dim;
    size_t n;             /* vectors in the graph */
    size_t dead;          /* of which tombstoned */
    int64_t seq;          /* last vectors.seq held */
    int64_t tomb_seq;     /* last vector_tombstones.seq applied */
    size_t bytes;         /* memory held, approximately */
} vindex_info;

/* ---- with the store (vindex.c) ---- */

struct ctx_store;

enum {
    VINDEX_LOADED = 0,    /* the file was good */
    VINDEX_BUILT = 1,     /* no usable file: built from the store */
};

/*
 * vindex_open - the index of model_id: load path, or build from the store
 * when the file is missing, torn (size, magic or checksum wrong) or holds
 * another model; then, when path is "<dir>/vectors-<model_id>.idx", apply
 * the deltas beside it that continue it (vindex_update), in order, up to
 * the first torn or missing one; then catch up with vectors and tombstones
 * newer than these files hold, and rebuild when tombstones pass a fifth of
 * the graph. *how says which (VINDEX_*). A bad file is never an error,
 * only a rebuild. *out new: vindex_free. No file is written: call
 * vindex_save or vindex_update.
 */
int vindex_open(struct ctx_store *st, const char *path, int64_t model_id, vindex **out,
                int *how, ctx_error *err);

/* vindex_build - a new index of model_id from every vector in the store. */
int vindex_build(struct ctx_store *st, int64_t model_id, vindex **out, ctx_error *err);

/*
 * vindex_catch_up - add vectors and apply tombstones newer than the index
 * holds. *added and *removed (may be NULL) receive the counts.
 */
int vindex_catch_up(vindex *vi, struct ctx_store *st, size_t *added, size_t *removed,
                    ctx_error *err);

/*
 * vindex_maintain - upkeep beside the store (the maintenance agent's),
 * under vindex_lock (waiting up to a minute, then CTX_EBUSY): the index
 * files of models neither active nor target are deleted; temporary files
 * are deleted only when no writer holds them (their writer's flock is
 * gone); the deltas of a model are merged into its main file and deleted;
 * and the tombstones every remaining model's files hold are pruned (see
 * store_tombstones_prune). *pruned (may be NULL) receives how many.
 */
int vindex_maintain(struct ctx_store *st, const char *data_dir, int64_t *pruned,
                    ctx_error *err);

/* vindex_path - "<data_dir>/vectors-<model_id>.idx" into buf. */
void vindex_path(const char *data_dir, int64_t model_id, char *buf, size_t len);

/*
 * The files of a model in data_dir: the main index "vectors-<m>.idx"
 * (vindex_save) and deltas "vectors-<m>.<seq>-<tomb>.dlt", each holding the
 * vectors and tombstones that came after the files before it, up to its
 * seq and tomb (indexer/vdelta.c). A write goes through "<name>.tmp",
 * locked by its writer. Whoever writes them holds "<data_dir>/vectors.lock"
 * (vindex_lock): vindex_update, vindex_maintain, the CLI's first build.
 */

/* What the files of a model hold (vindex_files). */
typedef struct vindex_files_info {
    int main_ok;          /* the main file is whole at both ends and of this model */
    int64_t seq, tomb_seq;    /* the marks of the main file and its deltas together */
    size_t deltas;        /* deltas that continue the main file */
    size_t other;         /* other deltas (merged already, torn, off the chain) */
    uint64_t delta_bytes; /* the size of the deltas that continue it */
} vindex_files_info;

/* vindex_files - what the files of model_id in data_dir hold (heads and tails only). */
int vindex_files(const char *data_dir, int64_t model_id, vindex_files_info *out,
                 ctx_error *err);

/*
 * vindex_lock - take "<data_dir>/vectors.lock", asking for up to wait_ms
 * (< 0: until *cancel, which may be NULL). *fd: pass it to vindex_unlock.
 * CTX_EBUSY names the lock when another process or thread holds it.
 */
int vindex_lock(const char *data_dir, int wait_ms, volatile sig_atomic_t *cancel, int *fd,
                ctx_error *err);
void vindex_unlock(int fd);

/* What vindex_update did. */
typedef struct vindex_update_stats {
    int built;            /* no usable main file: built from the store and written */
    int merged;           /* the deltas were many: merged into the main file */
    size_t added, removed;    /* vectors and tombstones in the delta written, if any */
    size_t vectors, dead;     /* in the index, when it was built or merged */
    uint64_t bytes;       /* written to index files; 0 when nothing changed */
    vindex_files_info files;  /* after */
} vindex_update_stats;

/* Past this many deltas vindex_update merges them itself (vindex_maintain does hourly). */
#define VINDEX_DELTAS_MAX 64

/*
 * vindex_update - bring model_id's files in data_dir up to the store, under
 * vindex_lock (wait_ms and cancel as there): nothing is written when the
 * files hold every vector and tombstone; otherwise the new ones go to a
 * delta, whose cost follows their number; the main file is built from the
 * store when missing, torn at either end, of another model or older than
 * the tombstones kept. Never reads the main file itself, unless to merge
 * more than VINDEX_DELTAS_MAX deltas.
 */
int vindex_update(struct ctx_store *st, const char *data_dir, int64_t model_id, int wait_ms,
                  volatile sig_atomic_t *cancel, vindex_update_stats *out, ctx_error *err);

/* ---- the index (faiss_bridge.cpp) ---- */

/* vindex_new - an empty index of dim-dimensional vectors, HNSW degree M. */
vindex *vindex_new(int dim, int64_t model_id, int M);
void vindex_free(vindex *vi);
void vindex_get_info(const vindex *vi, vindex_info *info);

/*
 * vindex_add - append n unit vectors (n * dim floats) with their chunk ids,
 * ACL sets and sources; seq is the last vectors.seq they cover.
 */
int vindex_add(vindex *vi, size_t n, const float *vecs, const int64_t *chunk_ids,
               const int64_t *acl_ids, const int64_t *source_ids, int64_t seq,
               ctx_error *err);

/* vindex_remove - tombstone the vector of chunk_id (if held); tomb_seq as above. */
void vindex_remove(vindex *vi, int64_t chunk_id, int64_t tomb_seq);

/* vindex_save - write to path through a temporary file and rename. */
int vindex_save(const vindex *vi, const char *path, ctx_error *err);

/*
 * vindex_peek - the model, seq and tomb_seq a file says it holds, reading
 * only its head (unchecked: a torn file is caught when loaded). CTX_EIO
 * when it is no index file.
 */
int vindex_peek(const char *path, int64_t *model_id, int64_t *seq, int64_t *tomb_seq);

/*
 * vindex_load - read path. CTX_ENOTFOUND when missing, CTX_EIO when torn
 * or not an index; *out new.
 */
int vindex_load(const char *path, vindex **out, ctx_error *err);

/* vindex_count - live vectors the filter lets through (sources ignored). */
/*
 * vindex_compact - squeeze the dead vectors out of a partitioned index in
 * memory (those past the graph's nodes; the graph's own stay), keeping the
 * room they took for the vectors to come: a long-lived server's memory
 * then stays flat while chunks are replaced. Answers do not change.
 * Returns the vectors dropped.
 */
size_t vindex_compact(vindex *vi);

size_t vindex_count(const vindex *vi, const vindex_filter *f);

/*
 * vindex_search_exact - the k nearest vectors among those the filter lets
 * through, by a SIMD scan over exactly those. out has room for k; *n set.
 */
int vindex_search_exact(const vindex *vi, const float *q, int k, const vindex_filter *f,
                        vindex_hit *out, size_t *n, ctx_error *err);

/*
 * vindex_search_ann - the same through the HNSW graph with efSearch ef; the
 * filter is applied while the graph is walked (never after a top-k), but
 * with few allowed vectors the walk may find fewer than k: the caller
 * falls back to vindex_search_exact. The graph holds only the vectors
 * added before the index was partitioned (vindex_partition): a partitioned
 * index is searched with vindex_search_ivf.
 */
int vindex_search_ann(const vindex *vi, const float *q, int k, int ef, const vindex_filter *f,
                      vindex_hit *out, size_t *n, ctx_error *err);

/*
 * vindex_partition - split the vectors into nlist lists (0: the default,
 * 2048) by spherical k-means centroids (k-means++ seeds) trained on a
 * sample of up to 32,768 vectors, and from then on put each new vector in
 * its nearest list instead of the graph. vindex_add does it by itself once
 * 50,000 vectors are live; tests call it on small indexes. The partition
 * is kept in the file; a rebuild trains anew.
 */
int vindex_partition(vindex *vi, size_t nlist, ctx_error *err);

/* vindex_lists - how many lists the partition has; 0 = not trained. */
size_t vindex_lists(const vindex *vi);

/*
 * vindex_search_ivf - the k nearest allowed vectors in the lists whose
 * centroids are nearest q: lists are scanned exactly (every allowed vector
 * in them, SIMD), nearest first, until at least nprobe lists and k allowed
 * vectors were seen. nprobe >= vindex_lists() is an exact search. No
 * partition: no hits.
 */
int vindex_search_ivf(const vindex *vi, const float *q, int k, int nprobe,
                      const vindex_filter *f, vindex_hit *out, size_t *n, ctx_error *err);

/* vindex_l2sq - squared L2 distance with the kernel in use. */
float vindex_l2sq(const float *a, const float *b, size_t d);

/*
 * vindex_simd - 1 when the AVX2/FMA kernel is in use (the CPU has both).
 * vindex_simd_set(0) forces the scalar kernel (tests compare the two);
 * vindex_simd_set(1) asks for SIMD again, granted only if the CPU can.
 */
int vindex_simd(void);
void vindex_simd_set(int on);

/*
 * vindex_threads_set - threads FAISS may use to add vectors to the graph
 * (OpenMP; n <= 0 = one a core, the default). A process that forks without
 * exec after adding vectors must first set 1: libgomp's pool does not
 * survive fork(), and the child's next parallel region waits forever.
 */
void vindex_threads_set(int n);

#ifdef __cplusplus
}
#endif

#endif
