/*
 * store.h - the one SQLite database (WAL) that holds everything ctxgate
 * knows: sources, documents, interned ACL sets, principals and memberships,
 * chunks with their FTS5 index, per-stream sync state and sync runs.
 *
 * Retrieval reads through store_db(); only the indexer and the sync runner
 * write. Every write function expects the caller to hold a transaction
 * (store_begin) unless its comment says otherwise.
 */
#ifndef CTX_INDEXER_STORE_H
#define CTX_INDEXER_STORE_H

#include <sqlite3.h>
#include <stdint.h>

#include "../connectors/sdk/ctxgate/connector.h"
#include "../core/ctx.h"

#define STORE_SCHEMA_VERSION 12

typedef struct ctx_store ctx_store;

enum { STORE_OPEN_READONLY = 1 };

/*
 * store_open - open (creating and migrating when needed) the store at path.
 * A store written by a newer ctxgate (higher schema version) is refused
 * with CTX_ESTORE rather than guessed at. *out is new: store_close it.
 */
int store_open(const char *path, int flags, ctx_store **out, ctx_error *err);
void store_close(ctx_store *st);

/* store_db - the connection, borrowed: for read queries in retrieval. */
sqlite3 *store_db(ctx_store *st);

/* store_errf - fill err from the connection's last error, prefixed by what. */
int store_errf(ctx_store *st, ctx_error *err, const char *what);

int store_begin(ctx_store *st, ctx_error *err);
int store_commit(ctx_store *st, ctx_error *err);
void store_rollback(ctx_store *st);

/* store_exec - run SQL with no results (and no transaction of its own). */
int store_exec(ctx_store *st, const char *sql, ctx_error *err);

/* store_source - id of the source named name, creating it when new. */
int store_source(ctx_store *st, const char *name, const char *type,
                 int64_t *id, ctx_error *err);

/* store_state_get - the committed state of a stream; *state new or NULL. */
int store_state_get(ctx_store *st, int64_t source, const char *stream,
                    char **state, ctx_error *err);
int store_state_put(ctx_store *st, int64_t source, const char *stream,
                    const char *state, ctx_error *err);
/* store_state_clear - forget all stream states of a source (full refresh). */
int store_state_clear(ctx_store *st, int64_t source, ctx_error *err);

/*
 * store_principal_id - id of the principal named name ("user:x", "group:y",
 * "everyone"), interning it (undeclared) when new.
 */
int store_principal_id(ctx_store *st, const char *name, int64_t *id,
                       ctx_error *err);

/*
 * store_principal_put - apply a PRINCIPAL message from source: declare the
 * user or group, replace the group's members as this source knows them, or
 * record that a source-local account maps to a canonical user.
 */
int store_principal_put(ctx_store *st, int64_t source, const ctx_principal *p,
                        ctx_error *err);

/*
 * store_acl_intern - the id of source's ACL set equal to acl (order and
 * duplicates do not matter), creating it when new. A set belongs to one
 * source: the same lists in another source are another set. acl NULL or
 * with an empty allow list interns the empty set, which nobody may read.
 */
int store_acl_intern(ctx_store *st, int64_t source, const ctx_acl *acl, int64_t *acl_id,
                     ctx_error *err);

/*
 * store_trust_apply - record whose principal facts govern which source's
 * documents, from cfg (borrowed): a source's own facts always; every
 * source with "directory": true for all; the sources each one names in
 * "principals_from". Writes (own transaction) only when that differs from
 * what the store holds, so the access generation moves only on a change.
 */
struct ctx_config;
int store_trust_apply(ctx_store *st, const struct ctx_config *cfg, ctx_error *err);

/*
 * store__v7_split_sets - (indexer-internal) schema v7's data step, run in
 * the migration's transaction: every ACL set goes to the source whose
 * documents carry it; a set several sources carry is copied for each
 * other one and those documents move to their copy (store_doc_set_acl).
 */
int store__v7_split_sets(ctx_store *st, ctx_error *err);

/* What the store knows of a document, for change detection. */
typedef struct store_doc_info {
    int64_t id;          /* 0 when the document is not in the store */
    int64_t acl_id;
    int deleted;
    char hash[65];
} store_doc_info;

int store_doc_lookup(ctx_store *st, int64_t source, const char *stream,
                     const char *ext_id, store_doc_info *info, ctx_error *err);

/* A document's content as written by the indexer. Strings borrowed. */
typedef struct store_doc {
    int64_t source;
    const char *stream, *ext_id, *title, *url, *body, *metadata;
    size_t body_len;
    int64_t updated_at_ms;
    int64_t acl_id;
    const char *hash;
    int64_t epoch;
} store_doc;

/*
 * store_doc_write - update the row *doc_id, or insert a new one when *doc_id
 * is 0 and set *doc_id to its id.
 */
int store_doc_write(ctx_store *st, const store_doc *d, int64_t *doc_id,
                    ctx_error *err);

/* store_doc_touch - mark a document unchanged but seen in run epoch. */
int store_doc_touch(ctx_store *st, int64_t doc_id, int64_t epoch, ctx_error *err);

/* One chunk to index. Strings borrowed. */
typedef struct store_chunk {
    const char *text;
    size_t len;
    int ntokens;
    /* text's FTS5 tokens from pretok_run (nbytes of them), or NULL: the
     * insert tokenizes text itself */
    const unsigned char *toks;
    size_t toks_len;
} store_chunk;

/*
 * store_chunks_replace - drop the document's chunks and index these in their
 * place, each carrying the document's title and ACL set.
 */
int store_chunks_replace(ctx_store *st, int64_t doc_id, const char *title,
                         int64_t acl_id, const store_chunk *chunks, size_t n,
                         ctx_error *err);

/* store_chunks_add - like store_chunks_replace for a document that has none. */
int store_chunks_add(ctx_store *st, int64_t doc_id, const char *title, int64_t acl_id,
                     const store_chunk *chunks, size_t n, ctx_error *err);

/* store_doc_set_acl - move a document and its chunks to another ACL set. */
int store_doc_set_acl(ctx_store *st, int64_t doc_id, int64_t acl_id,
                      ctx_error *err);

/* store_doc_delete - drop a document's chunks and leave a tombstone. */
int store_doc_delete(ctx_store *st, int64_t doc_id, int64_t epoch,
                     ctx_error *err);

/*
 * store_prune - tombstone every live document of (source, stream) not seen
 * in run epoch; *n receives how many.
 */
int store_prune(ctx_store *st, int64_t source, const char *stream,
                int64_t epoch, int64_t *n, ctx_error *err);

/*
 * store_gone_trim - forget the log of chunks dropped before before_ms
 * (chunks_gone: every dropped chunk's id, for search connections to unmap
 * it; one that has not looked since reloads its whole map). *n receives
 * how many entries went. Runs in its own statement.
 */
int store_gone_trim(ctx_store *st, int64_t before_ms, int64_t *n, ctx_error *err);

/* Sync runs: one row per run, its counts and outcome. */
typedef struct store_run_stats {
    int64_t records, unchanged, deletes, acls, principals, states, chunks,
        pruned, bytes, repaired_utf8;
    /* Documents the run made readable by everyone: new ones allowing
     * everyone, and known ones whose new ACL allows everyone when the old
     * did not (the sync guard counts these; not stored). */
    int64_t to_everyone;
    int64_t warnings;         /* warnings the connector logged (sync runner; not stored) */
} store_run_stats;

/* store_run_begin - record a new run (own transaction); *run is its id/epoch. */
int store_run_begin(ctx_store *st, int64_t source, int full, int64_t *run,
                    ctx_error *err);
/* store_run_finish - record the outcome (own transaction). */
int store_run_finish(ctx_store *st, int64_t run, const char *status,
                     const store_run_stats *s, const char *error,
                     ctx_error *err);

/*
 * ---- Permission runs and resumable full runs (schema v8, store_perm.c) ----
 *
 * A full run of a stream is "pending" from its start until it finished and
 * pruned; the next run of that stream resumes it as a full run with the
 * same epoch. These need a transaction of the caller's, except where said.
 */

/* store_pending_get - the epoch of the stream's unfinished full run; 0 = none. */
int store_pending_get(ctx_store *st, int64_t source, const char *stream, int64_t *epoch,
                      ctx_error *err);
/* store_pending_put - mark a full run of the stream begun with epoch. */
int store_pending_put(ctx_store *st, int64_t source, const char *stream, int64_t epoch,
                      ctx_error *err);
/* store_pending_clear - the stream's full run finished (and pruned). */
int store_pending_clear(ctx_store *st, int64_t source, const char *stream, ctx_error *err);

/*
 * A permission run marks what it saw in a TEMP table of the connection, not
 * in the documents: an unchanged document is not written at all (a row
 * update would rewrite its body). store_perm_begin empties the set (no
 * transaction may be open), store_perm_seen adds a document to it, and
 * store_perm_prune deletes (tombstones, with their chunks and vectors) the
 * live documents of (source, stream) not in it; *n receives how many.
 * An interrupted run prunes nothing: the set dies with the connection.
 */
int store_perm_begin(ctx_store *st, ctx_error *err);
/* store_doc_acl_lookup - store_doc_lookup without the hash (info->hash
 * empty), answered from an index: a permission run's lookup. */
int store_doc_acl_lookup(ctx_store *st, int64_t source, const char *stream,
                         const char *ext_id, store_doc_info *info, ctx_error *err);
/*
 * store_doc_next - the ext_id of the first live document of (source, stream)
 * whose ext_id sorts after `after` (byte order; NULL or "": the first), into
 * *out (new, caller frees), or *out = NULL when there is none. One seek in
 * documents_acl; what the open transaction wrote counts.
 */
int store_doc_next(ctx_store *st, int64_t source, const char *stream, const char *after,
                   char **out, ctx_error *err);
int store_perm_seen(ctx_store *st, int64_t doc_id, ctx_error *err);
int store_perm_prune(ctx_store *st, int64_t source, const char *stream, int64_t epoch,
                     int64_t *n, ctx_error *err);
/* store_perm_prune_count - how many store_perm_prune would delete now. */
int store_perm_prune_count(ctx_store *st, int64_t source, const char *stream, int64_t *n,
                           ctx_error *err);

/*
 * store_source_acl_synced_put - record that every stream's permissions of
 * the source were read whole by a run that started at `at` (ms since the
 * epoch) and finished: a permission run or a full run.
 */
int store_source_acl_synced_put(ctx_store *st, int64_t source, int64_t at, ctx_error *err);

/*
 * store_source_acl_synced_at - when the last successful permission run or
 * full run of the source started (ms since the epoch); *at = 0 when none
 * ever finished. A read; no transaction needed.
 */
int store_source_acl_synced_at(ctx_store *st, int64_t source, int64_t *at, ctx_error *err);
/* ---- Sync guards and run notes ---- */

/* store_source_live - how many live (not deleted) documents source has. */
int store_source_live(ctx_store *st, int64_t source, int64_t *n, ctx_error *err);

/* store_prune_count - how many documents store_prune would tombstone now. */
int store_prune_count(ctx_store *st, int64_t source, const char *stream, int64_t epoch,
                      int64_t *n, ctx_error *err);

/* store_acl_everyone - *yes: ACL set acl_id allows everyone. */
int store_acl_everyone(ctx_store *st, int64_t acl_id, int *yes, ctx_error *err);

/*
 * store_source_held - reason (len bytes) receives why the source is held:
 * the reason of its last run that was held, unless a run without guards
 * (held_reason "") came after it; "" when it is not held.
 */
int store_source_held(ctx_store *st, int64_t source, char *reason, size_t len, ctx_error *err);

/*
 * store_run_note - the run's warning summary (JSON text) and, for a held
 * run, why (both borrowed, NULL = none). Outside any transaction or inside
 * the caller's.
 */
int store_run_note(ctx_store *st, int64_t run, const char *warnings, const char *held_reason,
                   ctx_error *err);

/* ---- Embeddings (schema v2) ----
 *
 * Each chunk gets at most one vector per model. New chunks enter
 * embed_queue as they are indexed; a chunk's vectors and queue entry go
 * with it, leaving a tombstone for the derived vector index. Vectors are
 * stored L2-normalized.
 */

/*
 * store_embed_model - the id of the model named name (e.g. "hash:v1"),
 * recorded with dim when new. A name already recorded with another
 * dimension fails with CTX_ECONFIG. Own statement; no transaction needed.
 */
int store_embed_model(ctx_store *st, const char *name, int dim, int64_t *model_id,
                      ctx_error *err);

/* store_embed_model_info - name (new) and dim of model_id; CTX_ENOTFOUND if none. */
int store_embed_model_info(ctx_store *st, int64_t model_id, char **name, int *dim,
                           ctx_error *err);

/*
 * store_embed_models - the active model (searches use its vectors) and the
 * target model being built in the background; 0 when none.
 */
int store_embed_models(ctx_store *st, int64_t *active, int64_t *target, ctx_error *err);

/*
 * store_embed_prepare - make model_id the model the queue works for (own
 * transaction). With no active model it becomes active at once. When
 * another model is active, model_id becomes the target: the queue is
 * refilled with every chunk lacking a vector of it, and the active model
 * keeps serving until store_embed_switch. *queued receives the queue depth.
 */
int store_embed_prepare(ctx_store *st, int64_t model_id, int64_t *queued, ctx_error *err);

/* One queued chunk to embed. */
typedef struct store_embed_item {
    int64_t chunk_id;
    char *text;      /* title, newline, text; owned by the batch */
    size_t len;
} store_embed_item;

typedef struct store_embed_batch {
    store_embed_item *items;
    size_t n;
} store_embed_batch;

/*
 * store_embed_take - up to max queued chunks with id > after, in id order
 * (a read; the queue is not changed). *out must be store_embed_batch_free'd.
 */
int store_embed_take(ctx_store *st, int64_t after, size_t max, store_embed_batch *out,
                     ctx_error *err);
void store_embed_batch_free(store_embed_batch *b);

/*
 * store_chunk_texts - up to max live chunks with id > after, in id order,
 * with the text store_embed_take gives (for training a model on them).
 * *out must be store_embed_batch_free'd.
 */
int store_chunk_texts(ctx_store *st, int64_t after, size_t max, store_embed_batch *out,
                      ctx_error *err);

/*
 * store_chunk_count - how many live chunks there are (*total), the largest
 * chunk id (*max_id) and how many have an id above after (*above).
 */
int store_chunk_count(ctx_store *st, int64_t after, int64_t *total, int64_t *max_id,
                      int64_t *above, ctx_error *err);

/* store_embed_depth - how many chunks wait in the queue. */
int store_embed_depth(ctx_store *st, int64_t *n, ctx_error *err);

/*
 * store_vector_reuse - a stored vector of model_id for text with this hash
 * into vec (dim floats); *found 0 when there is none.
 */
int store_vector_reuse(ctx_store *st, int64_t model_id, const unsigned char hash[16],
                       float *vec, int dim, int *found, ctx_error *err);

/*
 * store_vector_put - record the vector of a queued chunk and take it off
 * the queue (caller holds the transaction). A chunk no longer queued
 * (deleted, or embedded by another worker meanwhile) is skipped:
 * *applied = 0.
 */
int store_vector_put(ctx_store *st, int64_t chunk_id, int64_t model_id,
                     const unsigned char hash[16], const float *vec, int dim, int *applied,
                     ctx_error *err);

/*
 * store_embed_switch - when the queue is empty and a target model is set,
 * make it the active model in one transaction (own); *switched says so.
 */
int store_embed_switch(ctx_store *st, int *switched, ctx_error *err);

/*
 * store_vectors_retire - delete up to max vectors of models neither active
 * nor target (own transaction); *n receives how many. They need no
 * tombstones: an index belongs to one model.
 */
int store_vectors_retire(ctx_store *st, int64_t max, int64_t *n, ctx_error *err);

/* A stored vector as the index reads it; pointers valid during the callback. */
typedef struct store_vector_row {
    int64_t seq, chunk_id, acl_id, source_id;
    const float *vec;
    int dim;
} store_vector_row;

/*
 * store_vectors_scan - call fn for each vector of model_id with seq > after,
 * in seq order, streaming (nothing is held in memory). A non-zero return of
 * fn stops the scan and is returned.
 */
int store_vectors_scan(ctx_store *st, int64_t model_id, int64_t after,
                       int (*fn)(void *arg, const store_vector_row *row), void *arg,
                       ctx_error *err);

/*
 * store_tombstone_marks - *last: the highest tombstone seq ever issued (0
 * if none); *floor: tombstones up to it were pruned, so an index whose
 * tomb_seq is below it cannot catch up and must be rebuilt.
 */
int store_tombstone_marks(ctx_store *st, int64_t *last, int64_t *floor, ctx_error *err);

/*
 * store_tombstones_prune - forget the tombstones up to seq upto and raise
 * the floor to it (own transaction); *n (may be NULL) receives how many.
 */
int store_tombstones_prune(ctx_store *st, int64_t upto, int64_t *n, ctx_error *err);

/* store_vectors_last - the highest vectors.seq of model_id (0 if none). */
int store_vectors_last(ctx_store *st, int64_t model_id, int64_t *seq, ctx_error *err);

/* store_tombstones_scan - fn(arg, seq, chunk_id) for each tombstone with seq > after. */
int store_tombstones_scan(ctx_store *st, int64_t after,
                          int (*fn)(void *arg, int64_t seq, int64_t chunk_id), void *arg,
                          ctx_error *err);

/*
 * The maintenance agent's job history. These run in autocommit (no
 * transaction of the caller's): a job's row is written when it starts and
 * when it ends. source is NULL for store-wide jobs.
 */
int store_job_start(ctx_store *st, const char *source, const char *kind, int attempt,
                    int64_t started_at, int64_t *id, ctx_error *err);
int store_job_finish(ctx_store *st, int64_t id, int64_t finished_at, const char *status,
                     const char *error, ctx_error *err);
/* store_job_last - when the last run of (source, kind) started; 0 = never. */
int store_job_last(ctx_store *st, const char *source, const char *kind, int64_t *started_at,
                   ctx_error *err);

/*
 * ---- The audit log ----
 * A database file of its own beside the store (data/ctxgate.db ->
 * data/ctxgate-audit.db), so its commits do not empty the page caches of
 * the store's readers. Stores made before schema v6 kept it in an audit
 * table; opening such a store moves the rows.
 */

/* store_audit_path - the audit log's file for the store at store_path. */
int store_audit_path(const char *store_path, char *buf, size_t n, ctx_error *err);
/* store_audit_open - open (making it when missing) the audit log of the
 * store at store_path; store_audit_put appends to it, store_db reads it. */
int store_audit_open(const char *store_path, ctx_store **out, ctx_error *err);

/* One audit record; strings borrowed, NULL where unknown. */
typedef struct store_audit_rec {
    int64_t at;                 /* ms since the epoch */
    const char *user, *agent;
    const char *action;         /* "search" or "fetch" */
    const char *query;          /* the text, or NULL when only its hash is kept */
    const char *query_sha256;   /* hex */
    const char *doc_ids;        /* JSON array of the document ids returned */
    int64_t tokens;             /* tokens of context served */
    int64_t latency_us;
    const char *outcome;        /* "ok", "denied", "invalid", "error" */
} store_audit_rec;

/* store_audit_put - append one record (autocommit; no transaction needed). */
int store_audit_put(ctx_store *st, const store_audit_rec *r, ctx_error *err);

/*
 * ---- Pruning (store_prune.c) ----
 * Each deletes in batches of at most batch rows, each batch its own
 * autocommit transaction: a writer (the service's audit writer, a sync)
 * waits for one batch at most.
 */

/* store_audit_prune - delete the audit log's records older than before_ms;
 * *n receives how many. log is a store_audit_open connection. */
int store_audit_prune(ctx_store *log, int64_t before_ms, int64_t batch, int64_t *n,
                      ctx_error *err);

/*
 * store_audit_reclaim - give the log's free pages back to the file system
 * (PRAGMA incremental_vacuum, step pages a transaction), then truncate its
 * WAL. *pages receives how many pages went. A log made before ctxgate
 * set incremental auto-vacuum cannot shrink: 0, and its free pages take
 * the next records, so it does not grow past its size either.
 */
int store_audit_reclaim(ctx_store *log, int64_t step, int64_t *pages, ctx_error *err);

/*
 * store_history_prune - bound the sync_runs history (per source) and the
 * agent_jobs history (per source and job kind): rows beyond the newest
 * keep, or started before before_ms, go. Never pruned: each one's newest
 * row, a source's newest successful run and newest run that held or lifted
 * a hold, and a run still going. *runs and *jobs receive how many went.
 */
int store_history_prune(ctx_store *st, int64_t keep, int64_t before_ms, int64_t batch,
                        int64_t *runs, int64_t *jobs, ctx_error *err);

/*
 * ---- Token usage per window (store_usage.c), in the audit log's file ----
 * kind: 0 a user, 1 an agent. A window is (span, start), both ms.
 */

/* store_usage_add - add tokens to name's count in the window (an upsert;
 * in the caller's transaction, or its own). log: store_audit_open's. */
int store_usage_add(ctx_store *log, int kind, const char *name, int64_t span, int64_t start,
                    int64_t tokens, ctx_error *err);

/* store_usage_get - *tokens: name's count in the window, 0 if none. */
int store_usage_get(ctx_store *log, int kind, const char *name, int64_t span, int64_t start,
                    int64_t *tokens, ctx_error *err);

/* store_usage_scan - fn(arg, kind, name, tokens) for every count of the
 * window (span, start), by kind and name; a non-zero return of fn stops
 * the scan and is returned. name is valid during the call. */
int store_usage_scan(ctx_store *log, int64_t span, int64_t start,
                     int (*fn)(void *arg, int kind, const char *name, int64_t tokens),
                     void *arg, ctx_error *err);

/* store_usage_prune - forget windows that started before before_ms; *n
 * receives how many counts went. */
int store_usage_prune(ctx_store *log, int64_t before_ms, int64_t *n, ctx_error *err);

#endif
