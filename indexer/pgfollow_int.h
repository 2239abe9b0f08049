/*
 * pgfollow_int.h - what pgfollow.c and pgfollow_apply.c share
 * (indexer-internal).
 */
#ifndef CTX_INDEXER_PGFOLLOW_INT_H
#define CTX_INDEXER_PGFOLLOW_INT_H

#include "ingest.h"
#include "pgfollow.h"
#include "pgstore.h"

/* The tables followed, and the columns read of each (by name). */
enum { PGF_OTHER, PGF_SOURCES, PGF_DOCS, PGF_PRINCIPALS, PGF_MEMBERS, PGF_VECTORS };
#define PGF_COLS 16

/* documents */
enum { D_ID, D_SOURCE, D_STREAM, D_EXT, D_TITLE, D_URL, D_BODY, D_META, D_UPDATED, D_ACL,
       D_HASH, D_EPOCH, D_DELETED };
/* sources */
enum { S_ID, S_NAME, S_TYPE, S_SYNCED };
/* principals */
enum { P_SOURCE, P_ID, P_KIND, P_DISPLAY, P_EMAIL, P_MAPS };
/* memberships */
enum { M_SOURCE, M_PRINCIPAL, M_MEMBER };
/* chunk_vectors */
enum { V_DOC, V_MODEL, V_HASH, V_VEC };

/* One row: each column's text (NUL-terminated) and kind: 't' a value,
 * 'n' NULL, 'u' unchanged (TOASTed, not sent), 0 not sent at all. */
typedef struct pgf_row {
    const char *v[PGF_COLS];
    char kind[PGF_COLS];
} pgf_row;

typedef struct pgf_rel {
    uint32_t oid;
    int table;                /* PGF_* */
    int natts;
    signed char map[64];      /* attribute i is column map[i], or -1 */
} pgf_rel;

typedef struct pgf_acl {
    int64_t id;
    ctx_acl acl;              /* points into strs */
    char **strs;              /* allow, then deny, then labels; each owned */
} pgf_acl;

typedef struct pgf_source {
    int64_t pg_id, local_id;
} pgf_source;

/* A principal changed in the open transaction, with its group's members. */
typedef struct pgf_principal {
    int64_t source;           /* PostgreSQL's source id */
    char *id, *kind, *display, *email, *maps;
    char **members;
    size_t nmembers;
} pgf_principal;

struct pgfollow {
    const ctx_config *cfg;    /* borrowed */
    ctx_store *st;            /* borrowed */
    pgstore *pg;
    char slot[64];
    int started;
    uint64_t lsn;             /* the stored LSN (the last applied transaction's end) */
    uint64_t stored;          /* lsn as the store holds it (committed): unchanged, not written */
    uint64_t confirmed;       /* what the server was told */
    int64_t moved_at;         /* when the slot was last advanced or a mark written (ms) */
    int skip;                 /* the open transaction was applied before (at or below lsn) */
    int new_sources;          /* a source was added locally in this step */
    int64_t docs;             /* document rows applied in this step */
    ingest_ctx ing;
    store_run_stats stats;
    pgf_rel rels[32];
    size_t nrels;
    pgf_acl *acls;
    size_t nacls;
    pgf_source *sources;
    size_t nsources;
    pgf_principal *pending;
    size_t npending;
    /* vectors computed in the cluster (pgfollow_vec.c) */
    int64_t vmodel;           /* the store's model vectors are put for (the queue's) */
    int64_t vactive;          /* the store's active model; 0: none yet */
    char vname[256];          /* vmodel's name, as PostgreSQL's rows name it */
    int vdim;
    int64_t vputs;            /* vectors put in this step */
    int64_t vprune_at;        /* when waiting chunks that are gone were last pruned (ms) */
    int64_t vlsa_at;          /* lsa: when the cluster's model was last looked up (ms) */
};

/* The prefix of the marks a replica writes into the WAL (pgfollow.c). */
#define PGF_MARK "ctxgate_replica"

/* pgf__message - one pgoutput message (data, len) in the open SQLite
 * transaction; *last the highest commit end LSN read; info's txns counts
 * those applied, skipped those at or below f->lsn (applied before). */
int pgf__message(pgfollow *f, const unsigned char *data, size_t len, uint64_t *last,
                 pgfollow_step_info *info, ctx_error *err);
/* pgf__copy - every table under the open snapshot into the open SQLite transaction. */
int pgf__copy(pgfollow *f, ctx_error *err);
/* pgf__vec_open - the replica's vector tables, and the configured model made
 * the store's target (a switch) when another is active; outside any
 * transaction, at each start. */
int pgf__vec_open(pgfollow *f, ctx_error *err);
/* pgf__vec_row - a chunk_vectors row ('I'/'U' a new row, 'D' a key) into the
 * replica's mirror of them; a vector of the queue's model goes to the
 * chunks waiting for its text at once. In the open SQLite transaction. */
int pgf__vec_row(pgfollow *f, int type, const pgf_row *r, ctx_error *err);
/* pgf__vec_settle - chunks queued since the last step: each gets its
 * text's vector (the store's own, or the mirror's) or waits for it. In the
 * open SQLite transaction, before the LSN is stored. */
int pgf__vec_settle(pgfollow *f, ctx_error *err);
/* pgf__vec_after - after the step's commit: a target model with every vector
 * becomes the active one (old vectors retired); gone chunks stop waiting. */
int pgf__vec_after(pgfollow *f, ctx_error *err);
/* pgf__copy_vectors - the chunk_vectors rows under the open snapshot. */
int pgf__copy_vectors(pgfollow *f, ctx_error *err);

/* pgf__txn_reset - forget the open transaction's pending principals. */
void pgf__txn_reset(pgfollow *f);
/* pgf__cache_clear - forget the remembered ACL sets and sources. */
void pgf__cache_clear(pgfollow *f);

#endif
