/*
 * pglsa.h - the lsa embedder in cluster mode (docs/cluster.md, "Vectors
 * computed once"): its model is trained once, by the cluster's embed job,
 * on every live document PostgreSQL holds (chunked as the replicas chunk
 * them), and the model file is kept in ctxgate.lsa_models, from which
 * every worker and replica fetches it into its data_dir: the workers embed
 * chunks with it, the replicas their queries.
 */
#ifndef CTX_INDEXER_PGLSA_H
#define CTX_INDEXER_PGLSA_H

#include "chunker.h"
#include "lsa.h"
#include "pgstore.h"

/*
 * pglsa_current - the newest model of dim in ctxgate.lsa_models: hash
 * (LSA_HASH_LEN hex digits, "" when there is none), the live documents it
 * was trained on (*docs) and when (*trained_at, ms, the database's clock;
 * both may be NULL). Its file is fetched into data_dir (written under a
 * temporary name, fsynced, renamed) when data_dir has none; lsa_load checks it.
 */
int pglsa_current(pgstore *pg, const char *data_dir, int dim, char hash[LSA_HASH_LEN + 1],
                  int64_t *docs, int64_t *trained_at, ctx_error *err);

/*
 * pglsa_ensure - the model the cluster's embed job uses: the current one
 * while the documents changed since its training (content, readers or
 * deletion) are at most share of those it was trained on; else a new one
 * trained on PostgreSQL's documents chunked with co (*trained 1), saved in
 * data_dir and stored in lsa_models (older models of dim removed: every
 * replica has the file of the model it serves). Nothing to train on:
 * CTX_ENOTFOUND.
 */
int pglsa_ensure(pgstore *pg, const char *data_dir, const lsa_train_opts *opt,
                 const chunker_opts *co, double share, volatile sig_atomic_t *cancel,
                 char hash[LSA_HASH_LEN + 1], int *trained, ctx_error *err);

#endif
