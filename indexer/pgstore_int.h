/*
 * pgstore_int.h - what pgstore.c and pgstore_doc.c share (indexer-internal).
 */
#ifndef CTX_INDEXER_PGSTORE_INT_H
#define CTX_INDEXER_PGSTORE_INT_H

#include <libpq-fe.h>

#include "pgstore.h"

/* An ACL set this connection has seen: kept across a run's batches. */
typedef struct pg_acl_seen {
    int64_t source, id;
    int pending;              /* seen in the open transaction: dropped if it rolls back */
    char key[65];
} pg_acl_seen;

#define PG_ACL_CACHE 4096     /* sets remembered per connection; more are looked up */
#define PG_STMTS 128          /* statements prepared per connection; more are planned each time */
#define PG_PIPELINE 128       /* records sent before their answers are read (pgstore_doc.c) */

/* A record sent in pipeline mode whose answer is not read yet. */
typedef struct pg_sent {
    store_run_stats *stats;   /* where its counts go (borrowed) */
    int64_t acl, chunks, bytes;
    int everyone;             /* its new ACL set allows everyone */
    char hash[65];
    char *what;               /* "stream/id", for an error (owned) */
} pg_sent;

struct pgstore {
    PGconn *db;
    char owner[128];          /* host:pid: the worker name in runs and leases */
    int64_t lease_ms;
    pg_acl_seen *acls;        /* PG_ACL_CACHE of them, nacls used */
    size_t nacls;
    char **stmts;             /* PG_STMTS texts prepared, each as "ctxgate_<its hash>" */
    size_t nstmts;
    pg_sent *sent;            /* PG_PIPELINE of them, nsent in flight */
    size_t nsent;
};

/* pg__acl_cache_end - the open transaction committed (1) or rolled back (0). */
void pg__acl_cache_end(pgstore *pg, int committed);

/*
 * pg__flush - read the answers of the records sent ahead (pgstore_doc.c)
 * and count them; the first error is returned, naming its record. Every
 * synchronous query runs it first (pg__q, pg__ok), so answers are read in
 * order and nothing waits behind them. pg__discard drops them unread, for
 * a rollback.
 */
int pg__flush(pgstore *pg, ctx_error *err);
void pg__discard(pgstore *pg);

/* pg__prepared - the name sql is prepared under on this connection
 * (prepared now if it was not; into name, 32 bytes); -1 when it could not
 * be (err set), 1 when the statement table is full (run it unprepared). */
int pg__prepared(pgstore *pg, const char *sql, int n, char name[32], ctx_error *err);

/* pg__connect - a connection to c's PostgreSQL (password from its env or
 * file; replication 1: a logical replication connection), or NULL with err. */
PGconn *pg__connect(const ctx_cluster_cfg *c, int replication, ctx_error *err);

/* A number as text, for a query parameter. */
typedef struct pg_num {
    char s[24];
} pg_num;

const char *pg__i64(pg_num *b, int64_t v);
/* pg__get64 - the value at (row, col) as a number; 0 for NULL. */
int64_t pg__get64(PGresult *r, int row, int col);
/* pg__fail - err from r (cleared) or the connection, naming what. */
int pg__fail(pgstore *pg, PGresult *r, ctx_error *err, const char *what);
/* pg__q - run sql with n text parameters (const char *, NULL = SQL NULL);
 * the result (PQclear it), or NULL with err set. */
PGresult *pg__q(pgstore *pg, ctx_error *err, const char *what, const char *sql, int n, ...);
/* pg__ok - pg__q for a statement whose result is not read (n 0: several
 * statements may be given). */
int pg__ok(pgstore *pg, ctx_error *err, const char *what, const char *sql, int n, ...);

/* The sink's messages (pgstore_doc.c); contracts as sync_sink's members. */
int pg__record(void *self, ingest_ctx *c, const ingest_prep *p, ctx_error *err);
int pg__delete(void *self, ingest_ctx *c, const char *stream, const char *id, ctx_error *err);
int pg__acl(void *self, ingest_ctx *c, const char *stream, const char *id, const ctx_acl *acl,
            ctx_error *err);
int pg__acl_seen(void *self, ingest_ctx *c, const char *stream, const char *id,
                 const ctx_acl *acl, ctx_error *err);
int pg__principal(void *self, int64_t source, const ctx_principal *p, ctx_error *err);
int pg__prune_count(void *self, int64_t source, const char *stream, int64_t epoch, int perm,
                    int64_t *n, ctx_error *err);
int pg__prune(void *self, int64_t source, const char *stream, int64_t epoch, int perm,
              int64_t *n, ctx_error *err);

#endif
