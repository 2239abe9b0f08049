/*
 * lsa.h - the trained "lsa" embedder: latent semantic analysis of the
 * store's own chunks. A model is a vocabulary of index terms, their idf and
 * a term -> d projection from a truncated SVD of the TF-IDF chunk-term
 * matrix; a text's vector is its TF-IDF vector projected and normalized.
 *
 * Models are files in data_dir, lsa-<hash>.model, named by the SHA-256 of
 * their content (first 16 hex digits), which the file also ends with.
 */
#ifndef CTX_INDEXER_LSA_H
#define CTX_INDEXER_LSA_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "store.h"

#define LSA_HASH_LEN 16
/* A model is trained again once chunks added plus chunks gone exceed this share. */
#define LSA_RETRAIN_SHARE 0.2

typedef struct lsa_model lsa_model;
typedef struct lsa_embedder lsa_embedder;

typedef struct lsa_train_opts {
    int dim;             /* dimensions kept; at most the vocabulary */
    int min_df;          /* a term in fewer chunks is dropped; 2 */
    double max_df_share; /* a term in more than this share of chunks is dropped; 0.5 */
    int max_terms;       /* the most frequent kept beyond that; 50000 */
    int power_iters;     /* range finder's power iterations; 3 */
} lsa_train_opts;

typedef struct lsa_train_stats {
    int64_t chunks;      /* chunks read */
    int64_t terms;       /* vocabulary kept */
    int64_t nnz;         /* entries of the chunk-term matrix */
    double seconds;      /* wall time of the whole training */
} lsa_train_stats;

/*
 * lsa_train - train a model on every live chunk of st (title and text, as
 * they are embedded) and write it to data_dir. hash receives its name
 * (LSA_HASH_LEN hex digits + NUL). cancel (may be NULL) stops between
 * chunks with CTX_ECANCELED. A corpus with fewer terms than dim is
 * CTX_ECONFIG naming embeddings.dim. stats may be NULL.
 */
int lsa_train(ctx_store *st, const char *data_dir, const lsa_train_opts *opt,
              volatile sig_atomic_t *cancel, char hash[LSA_HASH_LEN + 1],
              lsa_train_stats *stats, ctx_error *err);

/*
 * lsa_train_texts - lsa_train over texts next gives instead of a store's
 * chunks: next(arg, after, max, out, err) fills out (as store_chunk_texts
 * does) with up to max texts whose ids ascend above after, none at the end.
 * Cluster mode trains on PostgreSQL's documents so (pgvectors.c).
 */
typedef int (*lsa_text_fn)(void *arg, int64_t after, size_t max, store_embed_batch *out,
                           ctx_error *err);
int lsa_train_texts(lsa_text_fn next, void *arg, const char *data_dir,
                    const lsa_train_opts *opt, volatile sig_atomic_t *cancel,
                    char hash[LSA_HASH_LEN + 1], lsa_train_stats *stats, ctx_error *err);

/*
 * lsa_model_path - "<data_dir>/lsa-<hash>.model" into buf.
 */
void lsa_model_path(const char *data_dir, const char *hash, char *buf, size_t len);

/*
 * lsa_load - the model hash of data_dir, checked: a file whose checksum,
 * length, name or dimension (dim; 0 = any) does not match is CTX_ESTORE
 * saying it is damaged and how to train again; a missing one CTX_ENOTFOUND.
 * Models are shared in the process: *out is a new reference (lsa_release).
 */
int lsa_load(const char *data_dir, const char *hash, int dim, lsa_model **out, ctx_error *err);
void lsa_release(lsa_model *m);

int lsa_dim(const lsa_model *m);
/* lsa_trained_on - chunks the model was trained on and the largest chunk id then. */
void lsa_trained_on(const lsa_model *m, int64_t *chunks, int64_t *max_chunk_id);

/*
 * lsa_embedder_new - a tokenizer (FTS5's own: porter over unicode61 with
 * remove_diacritics 2) bound to m (borrowed reference; the embedder takes
 * its own). One thread at a time. *out new: lsa_embedder_free.
 */
int lsa_embedder_new(lsa_model *m, lsa_embedder **out, ctx_error *err);
void lsa_embedder_free(lsa_embedder *e);

/*
 * lsa_embed - text -> out[dim]: the normalized projection of its TF-IDF
 * vector; a text of no known term gives the zero vector. Same text, same
 * bits.
 */
int lsa_embed(lsa_embedder *e, const char *text, size_t len, float *out, ctx_error *err);

/*
 * lsa_ensure - the model the embed job should use for dim: the store's
 * target or active lsa model of that dimension, if its file loads and the
 * corpus changed by at most retrain_share of its chunks since it was
 * trained (chunks added plus chunks gone); otherwise a newly trained one
 * (*trained 1), which becomes a model switch when embed_run takes it.
 * Model files neither active nor target nor the answer are deleted.
 */
int lsa_ensure(ctx_store *st, const char *data_dir, const lsa_train_opts *opt,
               double retrain_share, volatile sig_atomic_t *cancel,
               char hash[LSA_HASH_LEN + 1], int *trained, lsa_train_stats *stats,
               ctx_error *err);

#endif
