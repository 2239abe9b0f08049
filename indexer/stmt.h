/*
 * stmt.h - prepared statements kept per connection between queries.
 *
 * A search prepares a dozen statements; preparing them again for every
 * query cost more than running them on a small allowed set. stmt_get
 * hands out an idle statement of the same SQL that an earlier stmt_put
 * gave back on the same connection, or prepares a new one; stmt_put
 * resets it and keeps it. A statement is never handed to two holders at
 * once, so the same SQL may be open twice (nested) on one connection.
 *
 * The cache of a connection is dropped by stmt_close (store_close calls
 * it before closing): a connection with cached statements cannot close.
 * A connection is used by one thread at a time, as everywhere in ctxgate;
 * the registry of caches itself is locked.
 */
#ifndef CTX_INDEXER_STMT_H
#define CTX_INDEXER_STMT_H

#include <sqlite3.h>

/* stmt_get - sqlite3_prepare_v2's result code; *out is the statement. */
int stmt_get(sqlite3 *db, const char *sql, sqlite3_stmt **out);

/* stmt_put - give s back (reset, bindings cleared); NULL is fine. */
void stmt_put(sqlite3_stmt *s);

/* stmt_close - finalize the cached statements of db and forget them. */
void stmt_close(sqlite3 *db);

/* stmt_fts5_api - FTS5's API on db (to find or add a tokenizer), or NULL without FTS5. */
fts5_api *stmt_fts5_api(sqlite3 *db);

#endif
