/*
 * vindex_int.h - what indexer/vindex.c, indexer/vdelta.c and
 * indexer/faiss_bridge.cpp share and nothing else uses: the locked
 * temporary file every index file is written through, and the deltas.
 */
#ifndef CTX_INDEXER_VINDEX_INT_H
#define CTX_INDEXER_VINDEX_INT_H

#include <stdint.h>
#include <stdio.h>

#include "vindex.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * vindex__tmp_open - tmp opened for writing, emptied, with an flock held
 * on it for as long as *lockfd stays open: vindex_maintain deletes only
 * the temporary files it can lock itself, so never one being written.
 * *f new (fclose it; the lock stays with *lockfd), *lockfd: close it after
 * the rename. CTX_EBUSY when another writer holds it for a second.
 */
int vindex__tmp_open(const char *tmp, FILE **f, int *lockfd, ctx_error *err);

/* One delta file as its head and tail say (vdelta.c). */
typedef struct vdelta {
    char name[96];          /* in the data_dir */
    int64_t base_seq, base_tomb, seq, tomb;
    uint64_t ntomb, nvec, size;
    int dim;
    int chained;            /* continues the main file and the deltas before it */
} vdelta;

typedef struct vdelta_set {
    int main_ok;            /* the main file's head and tail are whole, of this model */
    int64_t main_seq, main_tomb;
    int64_t seq, tomb;      /* what the main file and the chain hold */
    vdelta *d;              /* sorted by (seq, tomb) */
    size_t n, nchain;
    uint64_t chain_bytes;
} vdelta_set;

/*
 * vdelta_list - the main file of model_id in data_dir (checked at both
 * ends, not read) and its deltas, each marked chained or not. *out must be
 * vdelta_set_free'd. CTX_EIO when data_dir cannot be listed.
 */
int vdelta_list(const char *data_dir, int64_t model_id, vdelta_set *out, ctx_error *err);
void vdelta_set_free(vdelta_set *s);

/*
 * vdelta_write - the tombstones above base_tomb and model_id's vectors
 * above base_seq, from the store into a new delta beside the main file;
 * nothing is written when there are none. *written (may be NULL) gets the
 * file's size, *nvec and *ntomb what it holds.
 */
int vdelta_write(struct ctx_store *st, const char *data_dir, int64_t model_id, int dim,
                 int64_t base_seq, int64_t base_tomb, uint64_t *written, size_t *nvec,
                 size_t *ntomb, ctx_error *err);

/*
 * vdelta_apply - the delta d of data_dir into vi: its checksum first (a
 * torn delta changes nothing and is CTX_EIO), then its vectors, then its
 * tombstones, then vi's marks raised to the delta's.
 */
int vdelta_apply(vindex *vi, const char *data_dir, const vdelta *d, ctx_error *err);

#ifdef __cplusplus
}
#endif

#endif
