/*
 * store_read.h - what retrieval and the cli read of the store outside the
 * query planner: a worker's read snapshot, a document for a fetch, the
 * names and labels behind a result, the facts behind an explain verdict
 * (store_explain.c), a chunk's stored text for the search's refinements,
 * and the sync-run counts the metrics show. Reads only.
 *
 * Two kinds of reader. Functions taking a ctx_store run statements cached
 * on that connection (prepared once, like the store's own). Functions
 * taking a bare connection (sqlite3 *) serve code that is handed one, as
 * the planner is (explain's callers, the lexical search): their statements
 * are kept per connection by stmt.h.
 */
#ifndef CTX_INDEXER_STORE_READ_H
#define CTX_INDEXER_STORE_READ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "store.h"

/* ---- a connection's reads (store_read.c) ---- */

/*
 * store_read_prepare - prepare the statements the functions below run, so
 * that a connection that cannot is refused when it opens, not at its first
 * answer. Errors: CTX_ESTORE, "store: <what>: <SQLite's message>".
 */
int store_read_prepare(ctx_store *st, const char *what, ctx_error *err);

/*
 * store_snapshot_begin - open a read transaction (a deferred BEGIN): every
 * read until store_snapshot_end sees one snapshot, and statements do not
 * each take and drop the WAL read lock. Errors: CTX_ESTORE, "store:
 * <what>: <SQLite's message>".
 */
int store_snapshot_begin(ctx_store *st, const char *what, ctx_error *err);

/*
 * store_snapshot_end - end the read transaction, if one is open (COMMIT,
 * or ROLLBACK when that fails), after letting go of any document still
 * held (store_doc_get).
 */
void store_snapshot_end(ctx_store *st);

/* store_ping - 1 when the store answers a read of its sources, else 0. */
int store_ping(ctx_store *st);

/* A live document as a fetch hands it out. Strings borrowed: see store_doc_get. */
typedef struct store_doc_view {
    int64_t source_id, acl_id;
    /* the later of the document's own ACL write and its source's last
     * whole permission read (ms since the epoch) */
    int64_t acl_synced_at;
    const char *title, *url, *source, *body, *ext_id, *stream; /* NULL where unset */
} store_doc_view;

/*
 * store_doc_get - live (not deleted) document doc_id into *d. Its strings
 * stay valid until store_doc_release, store_snapshot_end or the next
 * store_doc_get on st; other reads may run meanwhile. CTX_ENOTFOUND (err
 * untouched) when there is no such live document; CTX_ESTORE when it
 * could not be read.
 */
int store_doc_get(ctx_store *st, int64_t doc_id, store_doc_view *d, ctx_error *err);

/* store_doc_release - let go of the document store_doc_get holds, if any. */
void store_doc_release(ctx_store *st);

/*
 * store_doc_by_ext - *doc_id: the live document of the source named by
 * the nsource bytes at source whose external id is ext_id; the lowest id
 * when two streams share it; 0 when there is none or it could not be read.
 */
void store_doc_by_ext(ctx_store *st, const char *source, size_t nsource, const char *ext_id,
                      int64_t *doc_id);

/*
 * store_doc_name - the external id (*ext_id) of document doc_id, live or
 * deleted, and when source is not NULL the name of its source (*source).
 * Both new (ctx_free them); *ext_id NULL when the document has none.
 * CTX_ENOTFOUND when there is no such document, CTX_ESTORE when it could
 * not be read, CTX_ENOMEM (err set for these two).
 */
int store_doc_name(ctx_store *st, int64_t doc_id, char **source, char **ext_id,
                   ctx_error *err);

/* store_chunk_acl - the ACL set of chunk chunk_id; -1 when there is no such chunk. */
int64_t store_chunk_acl(ctx_store *st, int64_t chunk_id);

/*
 * store_acl_labels - the labels of ACL set acl_id, by name, as a new JSON
 * array of strings; NULL when out of memory or when they could not all be
 * read (a label left unread could be the one that forbids).
 */
json_t *store_acl_labels(ctx_store *st, int64_t acl_id);

/*
 * store_run_counts - fn(arg, source, status, n) for each (source, status)
 * of the sync runs recorded, with how many runs; the strings are valid
 * during the call. A non-zero return of fn stops the scan and is returned.
 * CTX_ESTORE (err set) when the runs could not be read.
 */
int store_run_counts(ctx_store *st,
                     int (*fn)(void *arg, const char *source, const char *status, int64_t n),
                     void *arg, ctx_error *err);

/* ---- a bare connection's reads ---- */

/*
 * store_chunk_content - fn(arg, title, text) with the title and text
 * chunk chunk_id was indexed with (either NULL where unset; valid during
 * the call); fn is not called when there is no such chunk. Errors:
 * CTX_ESTORE, "<what>: <SQLite's message>" when the statement could not
 * be prepared.
 */
int store_chunk_content(sqlite3 *db, int64_t chunk_id,
                        void (*fn)(void *arg, const char *title, const char *text), void *arg,
                        const char *what, ctx_error *err);

/* ---- the facts behind an explain verdict (store_explain.c) ----
 *
 * Errors of these, where they report them: CTX_ESTORE, "explain: <SQLite's
 * message>". "Trusted" sources of src: its own, the directories, and the
 * sources it takes principals_from (as the access engine's view, acl.c).
 */

/* store_explain_doc_id - doc_id when a document (live or deleted) has that id, else -1. */
int64_t store_explain_doc_id(sqlite3 *db, int64_t doc_id);

/*
 * store_explain_doc_by_ext - *doc_id: the document of the source named by
 * the nsource bytes at source whose external id is ext_id, a live one
 * before a deleted one, the lowest id first; 0 when there is none.
 */
int store_explain_doc_by_ext(sqlite3 *db, const char *source, size_t nsource,
                             const char *ext_id, int64_t *doc_id, ctx_error *err);

/* A document, live or deleted, as explain shows it. Strings borrowed: during fn. */
typedef struct store_explain_row {
    int64_t id, source_id, acl_id, acl_synced_at;
    int deleted;
    const char *source, *stream, *ext_id, *title;
} store_explain_row;

/* store_explain_doc - fn(arg, d) with document doc_id; not called when there is none. */
int store_explain_doc(sqlite3 *db, int64_t doc_id,
                      void (*fn)(void *arg, const store_explain_row *d), void *arg,
                      ctx_error *err);

/*
 * These answer a new JSON array of names, NULL on error: the principals
 * ACL set acl_id allows (deny 0) or denies (deny 1), by name; its labels,
 * by name; the names of the sources trusted for src's documents, src first.
 */
json_t *store_explain_acl_names(sqlite3 *db, int64_t acl_id, int deny, ctx_error *err);
json_t *store_explain_acl_labels(sqlite3 *db, int64_t acl_id, ctx_error *err);
json_t *store_explain_trusted(sqlite3 *db, int64_t src, ctx_error *err);

/* store_explain_user - the id of the declared user principal named name, else -1. */
int64_t store_explain_user(sqlite3 *db, const char *name);

/* store_explain_blocks - how many directory blocks (SCIM deprovisioning) principal
 * has; -1 on error. */
int64_t store_explain_blocks(sqlite3 *db, int64_t principal);

/*
 * An edge of the principal path: principal id (named name; NULL for the
 * everyone principal), stated by the source named by. Strings valid during
 * the call; a non-zero return stops the walk and is returned.
 */
typedef int (*store_edge_fn)(void *arg, int64_t id, const char *name, const char *by);

/*
 * store_explain_accounts - fn for each source-local account mapped to user
 * by a source trusted for src (by account id); store_explain_everyone - fn
 * once, for the everyone principal, when such a source declared user (the
 * first by name); store_explain_groups - fn for each group that such a
 * source says member belongs to (by source name, then group name). A read
 * that fails midway ends quietly; CTX_ESTORE (err set) when it could not
 * start.
 */
int store_explain_accounts(sqlite3 *db, int64_t src, int64_t user, store_edge_fn fn, void *arg,
                           ctx_error *err);
int store_explain_everyone(sqlite3 *db, int64_t src, int64_t user, store_edge_fn fn, void *arg,
                           ctx_error *err);
int store_explain_groups(sqlite3 *db, int64_t src, int64_t member, store_edge_fn fn, void *arg,
                         ctx_error *err);

/* store_explain_source - the id of the source named name, else -1. */
int64_t store_explain_source(sqlite3 *db, const char *name);

/* store_explain_live - how many live documents source src has; -1 on error. */
int64_t store_explain_live(sqlite3 *db, int64_t src);

/*
 * store_explain_undeclared - the principals the live ACLs of src name that
 * nothing governing it declared (a user nobody declared, a group none of
 * its trusted sources declared), by name: a new JSON array, NULL on error.
 */
json_t *store_explain_undeclared(sqlite3 *db, int64_t src, ctx_error *err);

/*
 * store_explain_reachable - how many ACL sets of src's live documents some
 * known user reaches (its deny lists aside); -1 on error.
 */
int64_t store_explain_reachable(sqlite3 *db, int64_t src);

#endif
