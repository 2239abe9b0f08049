/*
 * ingest.h - apply one connector message to the store: repair text, intern
 * the ACL, skip unchanged content by hash, chunk and index what changed.
 * The caller (the sync runner) owns the transaction around these calls.
 */
#ifndef CTX_INDEXER_INGEST_H
#define CTX_INDEXER_INGEST_H

#include "chunker.h"
#include "store.h"

typedef struct ingest_ctx {
    ctx_store *store;
    int64_t source;          /* store id of the source */
    int64_t epoch;           /* the run's id: marks documents seen */
    chunker_opts chunk;
    int64_t max_record_bytes; /* bodies over this are refused, 0 = no limit */
    store_run_stats *stats;  /* counters updated in place; borrowed */
} ingest_ctx;

/*
 * ingest_record - insert or update a document and its chunks. Unchanged
 * content (same hash) is only marked seen; a changed ACL alone re-labels
 * the chunks without re-chunking. Errors name the record ("tickets/42").
 */
int ingest_record(ingest_ctx *c, const ctx_record *rec, ctx_error *err);

/* ingest_delete - tombstone the document; deleting an unknown id is a no-op. */
int ingest_delete(ingest_ctx *c, const char *stream, const char *id, ctx_error *err);

/* ingest_acl - change only the document's permissions; unknown id is a no-op, and so
 * is an ACL the document already has (not counted as a permission change). */
int ingest_acl(ingest_ctx *c, const char *stream, const char *id, const ctx_acl *acl,
               ctx_error *err);

/*
 * ingest_acl_seen - a permission run's view of one item that is still at the
 * source: when the stored ACL differs, move the document to the new ACL set
 * (counted in acls; chunk text and vectors are kept, nothing is re-chunked);
 * count it unchanged (its content is) and mark it seen (store_perm_seen: the
 * caller ran store_perm_begin) so the run's pruning keeps it. An id the store does not have (or has deleted) is left
 * to the content sync: a permission run never creates a document.
 */
int ingest_acl_seen(ingest_ctx *c, const char *stream, const char *id, const ctx_acl *acl,
                    ctx_error *err);

#endif
