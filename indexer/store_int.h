/*
 * store_int.h - what the store's files (store.c, store_acl.c, store_doc.c,
 * store_embed.c) share: the connection struct, the statement ids and the
 * helpers that run them. Indexer-internal: never included outside indexer/.
 */
#ifndef CTX_INDEXER_STORE_INT_H
#define CTX_INDEXER_STORE_INT_H

#include "pretok.h"
#include "store.h"

/* The cached statements: store__sql_text holds each one's SQL (store.c). */
enum {
    Q_SOURCE_GET, Q_SOURCE_ADD,
    Q_STATE_GET, Q_STATE_PUT, Q_STATE_CLEAR,
    Q_PRIN_GET, Q_PRIN_ADD, Q_PRIN_DECLARE, Q_DECLARED_BY, Q_MEMB_CLEAR, Q_MEMB_ADD,
    Q_IDENT_PUT, Q_IDENT_DEL,
    Q_LABEL_GET, Q_LABEL_ADD,
    Q_ACL_GET, Q_ACL_ADD, Q_ACL_ENTRY, Q_ACL_LABEL,
    Q_DOC_LOOKUP, Q_DOC_INSERT, Q_DOC_UPDATE, Q_DOC_TOUCH, Q_DOC_SET_ACL,
    Q_DOC_TOMB,
    Q_CHUNK_IDS, Q_FTS_DEL, Q_CHUNK_DEL_DOC, Q_CHUNK_ADD, Q_FTS_ADD, Q_ACL_TOKENS,
    Q_CHUNK_TEXT,
    Q_PRUNE_GONE, Q_PRUNE_FTS, Q_PRUNE_CHUNKS, Q_PRUNE_DOCS, Q_GONE_ADD, Q_GONE_TRIM,
    Q_RUN_STALE, Q_RUN_ADD, Q_RUN_FINISH,
    Q_QUEUE_ADD, Q_QUEUE_DEL, Q_VEC_DEL, Q_TOMB_ADD,
    Q_PRUNE_TOMB, Q_PRUNE_VEC, Q_PRUNE_QUEUE,
    Q_SET_GET, Q_SET_PUT, Q_SET_DEL, Q_MODEL_GET, Q_MODEL_ADD, Q_MODEL_BY_ID,
    Q_QUEUE_TAKE, Q_QUEUE_DEPTH, Q_VEC_REUSE, Q_VEC_ADD,
    Q_VEC_SCAN, Q_TOMB_SCAN, Q_VEC_RETIRE, Q_VEC_OF_DOC, Q_CHUNK_AT,
    Q_TOMB_LAST, Q_TOMB_PRUNE,
    Q_AUDIT_ADD,
    Q_PERM_SEEN, Q_PERM_LOOKUP, /* permission runs (store_perm.c) */
    Q_CHUNK_TEXTS, Q_CHUNK_COUNT, /* training a model (lsa.c) */
    Q_DOC_NEXT, /* a connector's merge of its listing with the store (store_doc_next) */
    Q_CHUNK_MARK, Q_CHUNK_MARK_PUT, Q_CHUNK_MARK_ADD, /* chunk ids (store__chunk_id) */
    /* retrieval's reads (store_read.c; store_read_prepare takes Q_RD_DOC..Q_RD_LABELS) */
    Q_RD_DOC, Q_RD_BY_EXT, Q_RD_EXT, Q_RD_REF, Q_RD_CHUNK_ACL, Q_RD_LABELS,
    Q_COUNT
};

extern const char *const store__sql_text[Q_COUNT];

/* The FTS5 tokens of recently used ACL sets, so indexing a chunk is one
 * plain INSERT. Cleared on rollback: a rolled-back id can be reused. */
#define TOKEN_CACHE 64
typedef struct acl_tokens {
    int64_t acl_id;   /* 0 = empty slot */
    char *tok[3];     /* allow, deny, labels; owned */
} acl_tokens;

/* Recently interned ACLs by their names as given, so a repeated ACL costs
 * one hash and one compare. Each key has two slots (store_acl.c): with
 * one, two sets a sync alternates between that hashed to the same slot
 * missed every time, and a miss is a SHA-256 and SQL. Cleared on rollback
 * like the token cache. */
#define ACL_CACHE 256
typedef struct acl_memo {
    char *key;        /* allow names \x1f deny names \x1f labels; owned */
    int64_t acl_id;
    uint32_t hash;    /* of key: where its two slots are */
} acl_memo;

struct ctx_store {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    int in_tx;
    acl_tokens cache[TOKEN_CACHE];
    acl_memo memo[ACL_CACHE];
    ctx_buf memo_buf;     /* the key being looked up (store_acl_intern) */
    /*
     * FTS5 rows to delete at commit. FTS5 flushes its pending index
     * whenever a write goes to a lower rowid than the last one, so deleting
     * an old chunk right after indexing new ones flushed on every update.
     * Deletes wait here and run in ascending order just before COMMIT.
     */
    int64_t *fts_del;
    size_t n_fts_del, cap_fts_del;
    /* A chunk's tokens, made on a sync's connector thread, for the FTS5
     * insert that store_chunks_add runs (pretok.h). */
    pretok_slot tok_slot;
    /* The last chunk id handed out in the open transaction (0: none yet;
     * store__chunk_id), written to sqlite_sequence at commit. */
    int64_t chunk_mark;
};

/*
 * store__stmt - the cached statement for id, prepared on first use, reset
 * and unbound; borrowed (the connection owns it). NULL on error, with err set.
 */
sqlite3_stmt *store__stmt(ctx_store *st, int id, ctx_error *err);

/*
 * store__chunk_id - a new chunk id for the open transaction: above every id
 * the store ever handed out, so FTS5 rows are only appended and a deleted
 * chunk's id never comes back (schema v11).
 */
int store__chunk_id(ctx_store *st, int64_t *id, ctx_error *err);

/* store__step_done - run a statement expected to return no rows; then reset it. */
int store__step_done(ctx_store *st, sqlite3_stmt *s, ctx_error *err, const char *what);

/* store__get_id - run a one-column lookup; *id = 0 when there is no row. */
int store__get_id(ctx_store *st, sqlite3_stmt *s, int64_t *id, ctx_error *err,
                  const char *what);

/*
 * store__one_int - the integer the one-row query sql gives with ?1 = a,
 * ?2 = b (unbound when NULL), ?3 = c; a statement of its own, finalized.
 */
int store__one_int(ctx_store *st, const char *sql, int64_t a, const char *b, int64_t c,
                   int64_t *out, const char *what, ctx_error *err);

#endif
