/*
 * embed.h - embedders (text -> L2-normalized float32 vectors) and the queue
 * worker that gives every chunk a vector of the configured model.
 *
 * Providers: "hash" (built in, deterministic, no network: signed feature
 * hashing of words and word pairs), "lsa" (built in, no network: a model
 * trained on the store's own chunks, see lsa.h) and "openai" (any
 * OpenAI-compatible POST {base_url}/embeddings endpoint, through libcurl).
 */
#ifndef CTX_INDEXER_EMBED_H
#define CTX_INDEXER_EMBED_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "store.h"

typedef struct embed_cfg {
    const char *provider;     /* "hash" (default), "lsa" or "openai" */
    const char *model;        /* hash: "v1" (default); lsa: the trained model's hash;
                                 openai: the model name */
    int dim;                  /* vector dimension; 384 by default */
    const char *base_url;     /* openai: default "https://api.openai.com/v1" */
    const char *api_key_env;  /* openai: env var holding the key (OPENAI_API_KEY) */
    int batch_size;           /* texts per request / per transaction; 64 */
    int timeout_ms;           /* openai: per request; 30000 */
    int max_retries;          /* openai: retries of 429, 5xx, timeouts; 5 */
    int retry_base_ms;        /* openai: first backoff, doubling; 500 */
    int retry_max_ms;         /* openai: longest backoff step; 60000 */
    int64_t max_retry_after_ms; /* openai: longest Retry-After honoured (0: 300000); a
                                 * longer one fails the request rather than retry early */
    int concurrency;          /* openai: requests in flight at once (1..64); 1 */
    const char *data_dir;     /* lsa: where the model files are */
} embed_cfg;

typedef struct embed_provider embed_provider;

/*
 * embed_open - a provider for cfg (borrowed; copied). An unknown provider
 * or a bad dimension is CTX_ECONFIG naming the key. *out new: embed_close.
 */
int embed_open(const embed_cfg *cfg, embed_provider **out, ctx_error *err);

/*
 * embed_open_model - a provider for a model recorded in the store under
 * name (as embed_model_name gave it) and dim, taking the endpoint settings
 * of base. Queries must be embedded by the model whose vectors are served,
 * which during a switch is not the configured one. *out new.
 */
int embed_open_model(const embed_cfg *base, const char *name, int dim,
                     embed_provider **out, ctx_error *err);

void embed_close(embed_provider *p);

/*
 * embed_cfg_name - the model name embed_open would record for cfg, without
 * opening it (no key, no network): "hash:<model>@<dim>" or
 * "openai:<model>" into buf, its dimension into *dim. The lsa provider
 * has no name before a training: CTX_ECONFIG, as is an unknown provider.
 */
int embed_cfg_name(const embed_cfg *cfg, char *buf, size_t len, int *dim, ctx_error *err);

/* embed_model_name - "hash:v1@384", "lsa:<hash>@<dim>" or "openai:<model>"; borrowed. */
const char *embed_model_name(const embed_provider *p);
int embed_dim(const embed_provider *p);

/*
 * embed_batch_items - texts the queue worker takes per transaction:
 * batch_size times concurrency (a request's worth per request in flight).
 */
int embed_batch_items(const embed_provider *p);

/*
 * embed_texts - n vectors of embed_dim floats each into out (n * dim),
 * L2-normalized. texts[i] has lens[i] bytes. Either all n are filled or the
 * call fails: a wrong count or dimension from a server is CTX_ESOURCE with
 * the URL, the numbers and the fix. The openai provider sends requests of
 * batch_size texts, up to concurrency of them at once.
 */
int embed_texts(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                float *out, ctx_error *err);

/* embed_hash - the hash embedder itself: text -> out[dim], normalized. */
void embed_hash(const char *text, size_t len, int dim, float *out);

/* embed_text_hash - the 16 bytes a vector is keyed by beside its model: the
 * first half of the text's SHA-256 (the text as embedded: title, a newline,
 * the chunk). Identical text reuses a vector; other text never does. */
void embed_text_hash(const char *text, size_t len, unsigned char out[16]);

/* embed_normalize - scale v[dim] to unit length (a zero vector stays zero). */
void embed_normalize(float *v, int dim);

typedef struct embed_run_stats {
    int64_t embedded;   /* vectors computed by the provider */
    int64_t reused;     /* vectors copied from identical text */
    int64_t skipped;    /* queued chunks gone before their vector was written */
    int64_t batches;
    int64_t remaining;  /* queue depth at the end */
    int64_t retired;    /* vectors of an old model deleted after a switch */
    int switched;       /* the provider's model became the active one */
} embed_run_stats;

/*
 * embed_run - the queue worker. Makes p's model the queue's model (see
 * store_embed_prepare), then up to max_batches times (0 = until the queue
 * is empty): take a batch, embed it, and write its vectors in one
 * transaction, so a failure leaves nothing half-applied. When the queue
 * is empty and p's model was the target, it becomes active atomically and
 * the old model's vectors are deleted. cancel (may be NULL) stops between
 * batches with CTX_ECANCELED. stats may be NULL.
 */
int embed_run(ctx_store *st, embed_provider *p, int max_batches,
              volatile sig_atomic_t *cancel, embed_run_stats *stats, ctx_error *err);

/*
 * embed_model_lexical - 1 when the model (as embed_model_name names it)
 * only matches the words a text shares with another, as the lexical leg
 * does: the hash embedder. Fusing it with the lexical leg adds noise, not
 * meaning (on the gitdocs kit hybrid scored below lexical), so hybrid
 * search answers from the lexical leg alone and says so.
 */
int embed_model_lexical(const char *model_name);

#endif
