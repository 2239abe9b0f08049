/*
 * ingest.h - apply one connector message to the store: repair text, intern
 * the ACL, skip unchanged content by hash, chunk and index what changed.
 * The caller (the sync runner) owns the transaction around these calls.
 */
#ifndef CTX_INDEXER_INGEST_H
#define CTX_INDEXER_INGEST_H

#include "chunker.h"
#include "pretok.h"
#include "store.h"

typedef struct ingest_ctx {
    ctx_store *store;
    int64_t source;          /* store id of the source */
    int64_t epoch;           /* the run's id: marks documents seen */
    chunker_opts chunk;
    int64_t max_record_bytes; /* bodies over this are refused, 0 = no limit */
    store_run_stats *stats;  /* counters updated in place; borrowed */
    pretok *tok;             /* the preparing thread's, or NULL: FTS5 tokenizes (borrowed) */
    /* (ingest_prepare reads chunk, max_record_bytes and tok only) */
} ingest_ctx;

/*
 * ingest_record - insert or update a document and its chunks. Unchanged
 * content (same hash) is only marked seen; a changed ACL alone re-labels
 * the chunks without re-chunking. Errors name the record ("tickets/42").
 * It is ingest_prepare, then ingest_apply.
 */
int ingest_record(ingest_ctx *c, const ctx_record *rec, ctx_error *err);

/*
 * A RECORD in two steps, so that a sync can do the first on one thread
 * while the second runs on another:
 *   - ingest_prepare does what needs no store: checks the id and
 *     max_record_bytes, repairs ill-formed UTF-8, drops metadata that is
 *     not a JSON object (logged), hashes the content, chunks the body
 *     and, with c->tok, tokenizes each chunk for FTS5 (pretok.h). It
 *     reads only c->chunk, c->max_record_bytes and c->tok (which only the
 *     preparing thread uses), never the store nor the counters, and copies
 *     what it keeps: rec may go right after.
 *   - ingest_apply does the rest in the store, in message order: interns
 *     the ACL, skips unchanged content by hash, writes the document and
 *     its chunks, and counts (repairs included) in c->stats.
 */
typedef struct ingest_prep {
    const char *stream, *id, *title, *url, *body, *meta; /* title, url, body, meta may be NULL */
    size_t tlen, ulen, blen, mlen;
    int64_t updated_at_ms;
    const ctx_acl *acl;      /* NULL: no ACL; else &acl_copy */
    ctx_acl acl_copy;
    const chunk_span *spans; /* of body; nspans may be 0 (empty body) */
    size_t nspans;
    const unsigned char *toks; /* NULL, or span i's FTS5 tokens (pretok_run) at */
    const size_t *tok_ends;    /* toks[i ? tok_ends[i - 1] : 0 .. tok_ends[i]) */
    int64_t repaired;        /* ill-formed sequences fixed */
    size_t bytes;            /* the size of the one block it lives in */
    char hash[65];
} ingest_prep;

/*
 * ingest_prepare - *out is new (one block: ctx_free it), everything in it
 * borrowed from it. Errors as ingest_record's: CTX_EINVAL (no stream or
 * id), CTX_ETOOBIG (over max_record_bytes), CTX_ENOMEM.
 */
int ingest_prepare(const ingest_ctx *c, const ctx_record *rec, ingest_prep **out,
                   ctx_error *err);

/* ingest_apply - p (borrowed) into the store, inside the caller's transaction. */
int ingest_apply(ingest_ctx *c, const ingest_prep *p, ctx_error *err);

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
