/*
 * store.c - schema, migrations, open and close, transactions and the
 * statement cache the other store files (store_int.h) write through.
 * Statements are prepared once per connection and kept in a table indexed
 * by an enum, the way SQLite's own tools cache them.
 */
#include "store_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "stmt.h"

/* Version 1 of the schema. A later version appends a migration step. */
static const char schema_v1[] =
    "CREATE TABLE sources("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    /* kind: 1 user, 2 group, 3 everyone. declared: a source said it exists. */
    "CREATE TABLE principals("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind INTEGER NOT NULL,"
    "  display_name TEXT, email TEXT, declared INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE memberships("
    "  group_id INTEGER NOT NULL, member_id INTEGER NOT NULL,"
    "  source_id INTEGER NOT NULL,"
    "  PRIMARY KEY(group_id, source_id, member_id)) WITHOUT ROWID;"
    "CREATE INDEX memberships_member ON memberships(member_id);"
    /* A source-local account (account_id) stands for a canonical user. */
    "CREATE TABLE identities("
    "  account_id INTEGER NOT NULL, source_id INTEGER NOT NULL,"
    "  user_id INTEGER NOT NULL, PRIMARY KEY(account_id, source_id)) WITHOUT ROWID;"
    "CREATE INDEX identities_user ON identities(user_id);"
    "CREATE TABLE labels(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    /* Interned ACL sets; *_tokens are what the FTS5 columns hold. */
    "CREATE TABLE acl_sets("
    "  id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
    "  allow_tokens TEXT NOT NULL, deny_tokens TEXT NOT NULL,"
    "  label_tokens TEXT NOT NULL);"
    "CREATE TABLE acl_entries("
    "  acl_id INTEGER NOT NULL, deny INTEGER NOT NULL, principal_id INTEGER NOT NULL,"
    "  PRIMARY KEY(acl_id, deny, principal_id)) WITHOUT ROWID;"
    /* Which ACL sets name a principal: retrieval's plan and ACL filter. */
    "CREATE INDEX acl_entries_principal ON acl_entries(principal_id, deny);"
    "CREATE TABLE acl_labels("
    "  acl_id INTEGER NOT NULL, label_id INTEGER NOT NULL,"
    "  PRIMARY KEY(acl_id, label_id)) WITHOUT ROWID;"
    "CREATE TABLE documents("
    "  id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL, stream TEXT NOT NULL,"
    "  ext_id TEXT NOT NULL, title TEXT, url TEXT, body TEXT, metadata TEXT,"
    "  updated_at INTEGER, hash TEXT NOT NULL, acl_id INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0, acl_synced_at INTEGER NOT NULL,"
    "  indexed_at INTEGER NOT NULL, seen_epoch INTEGER NOT NULL,"
    "  UNIQUE(source_id, stream, ext_id));"
    "CREATE INDEX documents_epoch ON documents(source_id, stream, seen_epoch);"
    /* AUTOINCREMENT: a chunk id is never reused, so FTS5 rows are only ever
     * appended in ascending rowid order (see store_commit). */
    "CREATE TABLE chunks("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  ntokens INTEGER NOT NULL, acl_id INTEGER NOT NULL,"
    "  UNIQUE(doc_id, seq));"
    "CREATE INDEX chunks_acl ON chunks(acl_id);"
    /*
     * The chunk text lives only here. allow/deny/labels hold the ACL set's
     * principal and label tokens, so a search restricts to what the caller
     * may read inside the FTS5 query itself, before anything is ranked.
     */
    "CREATE VIRTUAL TABLE chunks_fts USING fts5("
    "  title, text, allow, deny, labels,"
    "  tokenize = 'porter unicode61 remove_diacritics 2');"
    "CREATE TABLE sync_state("
    "  source_id INTEGER NOT NULL, stream TEXT NOT NULL, state TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL, PRIMARY KEY(source_id, stream));"
    "CREATE TABLE sync_runs("
    "  id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL, finished_at INTEGER, full INTEGER NOT NULL,"
    "  status TEXT NOT NULL, records INTEGER DEFAULT 0, unchanged INTEGER DEFAULT 0,"
    "  deletes INTEGER DEFAULT 0, acls INTEGER DEFAULT 0,"
    "  principals INTEGER DEFAULT 0, states INTEGER DEFAULT 0,"
    "  chunks INTEGER DEFAULT 0, pruned INTEGER DEFAULT 0, bytes INTEGER DEFAULT 0,"
    "  repaired_utf8 INTEGER DEFAULT 0, error TEXT);"
    "CREATE INDEX sync_runs_source ON sync_runs(source_id, id);"
    "INSERT INTO principals(name, kind, declared) VALUES('everyone', 3, 1);";

/*
 * Version 2: embeddings. vectors is the source of truth of the vector index
 * (which is derived and rebuildable); its seq only grows, so an index
 * remembers the last seq it holds and catches up from there. A vector whose
 * chunk goes away leaves a row in vector_tombstones for the same reason.
 * embed_queue holds the chunks still needing a vector of the model being
 * built; settings holds 'embed.active_model' (the model searches use) and
 * 'embed.target_model' (one being built in the background, if any).
 */
static const char schema_v2[] =
    "CREATE TABLE settings(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE embed_models("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, dim INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    /* vec: dim float32 values in host byte order, L2-normalized. text_hash:
     * what was embedded, so identical text (a chunk re-made by an ACL change
     * or an edit elsewhere in its document) reuses the vector. */
    "CREATE TABLE vectors("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id INTEGER NOT NULL,"
    "  model_id INTEGER NOT NULL, dim INTEGER NOT NULL, text_hash BLOB NOT NULL,"
    "  vec BLOB NOT NULL, created_at INTEGER NOT NULL, UNIQUE(chunk_id, model_id));"
    "CREATE INDEX vectors_model ON vectors(model_id, seq);"
    "CREATE INDEX vectors_text ON vectors(model_id, text_hash);"
    "CREATE TABLE vector_tombstones("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id INTEGER NOT NULL);"
    "CREATE TABLE embed_queue(chunk_id INTEGER PRIMARY KEY);"
    "INSERT INTO embed_queue(chunk_id) SELECT id FROM chunks;";

/*
 * Version 3: ranking statistics and the maintenance agent's job history.
 * term_df is derived (retrieval/rank.c rebuilds it from fts5vocab): how many
 * chunks hold each index term, and term_df_meta the chunk count it was
 * built at. agent_jobs has a row per job run: source is NULL for store-wide
 * jobs, status 'running' until it ends ('ok', 'failed', 'busy', 'canceled').
 */
static const char schema_v3[] =
    /* IF NOT EXISTS: a development build made these before v3 existed */
    "CREATE TABLE IF NOT EXISTS term_df(term TEXT PRIMARY KEY, df INTEGER NOT NULL)"
    "  WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS term_df_meta("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), nrows INTEGER NOT NULL,"
    "  built_at INTEGER NOT NULL);"
    "CREATE TABLE agent_jobs("
    "  id INTEGER PRIMARY KEY, source TEXT, kind TEXT NOT NULL, attempt INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL, finished_at INTEGER, status TEXT NOT NULL, error TEXT);"
    "CREATE INDEX agent_jobs_last ON agent_jobs(source, kind, started_at);";

/*
 * Version 4: the audit log of the retrieval service. One row per search or
 * fetch: who asked (user, agent), what (the query, or only its SHA-256),
 * which documents went out (a JSON array of ids), how many tokens, how long
 * it took in microseconds, and the outcome ('ok', 'denied', 'error', ...).
 */
#define AUDIT_TABLE                                                                      \
    "CREATE TABLE audit("                                                                \
    "  id INTEGER PRIMARY KEY, at INTEGER NOT NULL, user TEXT, agent TEXT,"              \
    "  action TEXT NOT NULL, query TEXT, query_sha256 TEXT, doc_ids TEXT NOT NULL,"      \
    "  tokens INTEGER NOT NULL, latency_us INTEGER NOT NULL, outcome TEXT NOT NULL);"    \
    "CREATE INDEX audit_at ON audit(at);"                                                \
    "CREATE INDEX audit_user ON audit(user, at);"                                        \
    "CREATE INDEX audit_agent ON audit(agent, at);"
static const char schema_v4[] = AUDIT_TABLE;

/*
 * Version 5: a generation number of everything that decides who may read
 * what (principals, memberships, identities, ACL entries), bumped by
 * triggers in the writing transaction itself, so a reader that caches a
 * user's principals and readable ACL sets (retrieval/acl.c) knows when they
 * are stale without anyone having to remember to say so.
 */
/* IF NOT EXISTS: a test takes a store back to v1 by dropping tables, not triggers. */
static const char schema_v5[] =
    "CREATE TABLE IF NOT EXISTS access_gen(gen INTEGER NOT NULL);"
    /* A random start: a store made anew at the same path never repeats an
     * older one's (path, generation), which a cache keys on. */
    "INSERT INTO access_gen SELECT abs(random() % 1000000000000000)"
    "  WHERE NOT EXISTS (SELECT 1 FROM access_gen);"
    "CREATE TRIGGER IF NOT EXISTS principals_insert AFTER INSERT ON principals BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS principals_update AFTER UPDATE ON principals BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS principals_delete AFTER DELETE ON principals BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS memberships_insert AFTER INSERT ON memberships BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS memberships_update AFTER UPDATE ON memberships BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS memberships_delete AFTER DELETE ON memberships BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS identities_insert AFTER INSERT ON identities BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS identities_update AFTER UPDATE ON identities BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS identities_delete AFTER DELETE ON identities BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS acl_entries_insert AFTER INSERT ON acl_entries BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS acl_entries_update AFTER UPDATE ON acl_entries BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS acl_entries_delete AFTER DELETE ON acl_entries BEGIN"
    "  UPDATE access_gen SET gen = gen + 1; END;";

/*
 * Version 6: the audit log moves to a file of its own (store_audit_open).
 * A commit to a database file makes every other connection to it drop its
 * whole page cache at its next read (SQLite's WAL change check is per
 * file), so with the log in the store each batch of audit records sent
 * the service's search connections back to the file: some 160 reads a
 * request. migrate() copies the rows over before it drops the table.
 */
static const char schema_v6[] = "DROP TABLE IF EXISTS audit;";

/*
 * Version 7: principal facts belong to the source that stated them. An ACL
 * set belongs to the one source whose documents carry it (source_id; its
 * hash key names the source), so whether a set is readable is decided by
 * that source's view of the caller. declared_by says which source declared
 * a user or group. source_trust says whose facts govern a source's
 * documents besides its own, by name: (source, trusted), or ('*', trusted)
 * for a directory every source trusts; store_trust_apply writes it from the
 * config. The step's hook (v7_split_sets) gives every existing set to its
 * source and attributes existing declarations to sources.
 */
#define BUMP_GEN(table, ev)                                                                  \
    "CREATE TRIGGER IF NOT EXISTS " table "_" ev " AFTER " ev " ON " table " BEGIN"         \
    "  UPDATE access_gen SET gen = gen + 1; END;"
static const char schema_v7[] =
    "ALTER TABLE acl_sets ADD COLUMN source_id INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX acl_sets_source ON acl_sets(source_id);"
    "CREATE TABLE declared_by("
    "  principal_id INTEGER NOT NULL, source_id INTEGER NOT NULL,"
    "  PRIMARY KEY(principal_id, source_id)) WITHOUT ROWID;"
    "CREATE TABLE source_trust("
    "  source TEXT NOT NULL, trusted TEXT NOT NULL, PRIMARY KEY(source, trusted))"
    "  WITHOUT ROWID;"
    BUMP_GEN("declared_by", "INSERT") BUMP_GEN("declared_by", "DELETE")
    BUMP_GEN("source_trust", "INSERT") BUMP_GEN("source_trust", "DELETE")
    BUMP_GEN("sources", "INSERT") BUMP_GEN("acl_sets", "UPDATE")
    /* Who declared what before v7: the sources whose memberships or
     * mappings name a principal, or the only source when there is one. */
    "INSERT OR IGNORE INTO declared_by(principal_id, source_id)"
    "  SELECT m.member_id, m.source_id FROM memberships m"
    "   JOIN principals p ON p.id = m.member_id WHERE p.declared = 1"
    "  UNION SELECT m.group_id, m.source_id FROM memberships m"
    "   JOIN principals p ON p.id = m.group_id WHERE p.declared = 1"
    "  UNION SELECT user_id, source_id FROM identities"
    "  UNION SELECT p.id, s.id FROM principals p, sources s"
    "   WHERE p.declared = 1 AND p.kind IN (1, 2) AND (SELECT count(*) FROM sources) = 1;";

/*
 * Version 8: sync_pending remembers a full run of a stream that has not
 * finished (crashed, killed, failed): its epoch, so the next run of the
 * stream resumes it as a full run with the same epoch and its pruning still
 * happens. source_acl_sync holds when each source's permissions were last
 * read whole (a permission run or a full run of every stream that finished),
 * for withholding sources whose permissions are too old. documents_acl
 * covers a permission run's lookups. IF NOT EXISTS: a
 * test takes a store back to an older version without dropping tables.
 */
static const char schema_v8_pending[] =
    "CREATE TABLE IF NOT EXISTS sync_pending("
    "  source_id INTEGER NOT NULL, stream TEXT NOT NULL, epoch INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL, PRIMARY KEY(source_id, stream)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS source_acl_sync("
    "  source_id INTEGER PRIMARY KEY, synced_at INTEGER NOT NULL);"
    /* A permission run looks every id up for its ACL set alone: from this
     * index, without reading the rows (and their bodies). */
    "CREATE INDEX IF NOT EXISTS documents_acl ON documents(source_id, stream, ext_id,"
    "  acl_id, deleted);";

/*
 * Version 9: sync guards and warning summaries. A run's warnings: a JSON
 * summary per kind (count, a message, a few examples); a held run (status
 * 'held') says why in held_reason.
 */
static const char schema_v9_runs[] = ""; /* add_run_columns does it */

/*
 * Version 10: chunks_gone logs every chunk deleted, in commit order (seq),
 * so a search connection's chunk map forgets exactly those chunks instead
 * of reading every chunk again after each commit that deleted some
 * (rank_chunks_load). The maintain job trims what is older than a day
 * (store_gone_trim); a connection that missed trimmed entries reloads.
 */
static const char schema_v10_gone[] =
    "CREATE TABLE IF NOT EXISTS chunks_gone("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id INTEGER NOT NULL,"
    "  at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS chunks_gone_at ON chunks_gone(at);";

/*
 * Version 11: chunks without AUTOINCREMENT. Its bookkeeping, a read and a
 * write of sqlite_sequence in every INSERT statement, was some 8,000
 * instructions of every chunk a sync indexed (issue 16). Ids are still
 * never reused: the store hands them out itself above the same high-water
 * mark, sqlite_sequence's 'chunks' row, and writes that row once per
 * commit (store__chunk_id, flush_chunk_mark); readers (rank_chunks_seq)
 * read it as before. The table is made anew, rows and ids kept; the old
 * table's row in sqlite_sequence goes with it, so the mark is carried over.
 *
 * And one index less on documents: documents_epoch (source_id, stream,
 * seen_epoch) cost some 6,000 instructions of every document inserted.
 * documents_acl ends in seen_epoch instead; what looked for old epochs
 * (a full run's prune) reads that index's entries of the stream, and a
 * document marked seen rewrites one index entry, as before.
 */
static const char schema_v11_leaner[] =
    "CREATE TABLE chunks_v11("
    "  id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  ntokens INTEGER NOT NULL, acl_id INTEGER NOT NULL, UNIQUE(doc_id, seq));"
    "INSERT INTO chunks_v11(id, doc_id, seq, ntokens, acl_id)"
    "  SELECT id, doc_id, seq, ntokens, acl_id FROM chunks ORDER BY id;"
    "CREATE TEMP TABLE chunks_mark AS SELECT max("
    "  coalesce((SELECT max(seq) FROM sqlite_sequence WHERE name = 'chunks'), 0),"
    "  coalesce((SELECT max(id) FROM chunks), 0)) AS seq;"
    "DROP TABLE chunks;"
    "ALTER TABLE chunks_v11 RENAME TO chunks;"
    "CREATE INDEX chunks_acl ON chunks(acl_id);"
    "DELETE FROM sqlite_sequence WHERE name = 'chunks';"
    "INSERT INTO sqlite_sequence(name, seq) SELECT 'chunks', seq FROM temp.chunks_mark;"
    "DROP TABLE temp.chunks_mark;"
    /* IF EXISTS: a test takes a store back to an older version, indexes as they are. */
    "DROP INDEX IF EXISTS documents_epoch;"
    "DROP INDEX IF EXISTS documents_acl;"
    "CREATE INDEX documents_acl ON documents(source_id, stream, ext_id, acl_id, deleted,"
    "  seen_epoch);";

/* The audit log's own file, version 1: the table v4 made, unchanged. */
static const char audit_schema_v1[] = AUDIT_TABLE;

/*
 * Version 2: tokens served per user and per agent in each UTC window a
 * budget counts (kind 0 a user, 1 an agent; span the window's length in
 * ms, start its first ms), written with the records in the audit writer's
 * transaction, so every replica sharing the file sees one count
 * (store_usage_add, retrieval/budget.c).
 */
static const char audit_schema_v2[] =
    "CREATE TABLE IF NOT EXISTS usage_window("
    "  kind INTEGER NOT NULL, name TEXT NOT NULL, span INTEGER NOT NULL,"
    "  start INTEGER NOT NULL, tokens INTEGER NOT NULL,"
    "  PRIMARY KEY(kind, name, span, start)) WITHOUT ROWID;";

const char *const store__sql_text[Q_COUNT] = {
    [Q_SOURCE_GET] = "SELECT id FROM sources WHERE name = ?1",
    [Q_SOURCE_ADD] = "INSERT INTO sources(name, type, created_at) VALUES(?1, ?2, ?3)",
    [Q_STATE_GET] = "SELECT state FROM sync_state WHERE source_id = ?1 AND stream = ?2",
    [Q_STATE_PUT] = "INSERT INTO sync_state(source_id, stream, state, updated_at)"
                    " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(source_id, stream)"
                    " DO UPDATE SET state = ?3, updated_at = ?4",
    [Q_STATE_CLEAR] = "DELETE FROM sync_state WHERE source_id = ?1",
    [Q_PRIN_GET] = "SELECT id FROM principals WHERE name = ?1",
    [Q_PRIN_ADD] = "INSERT INTO principals(name, kind) VALUES(?1, ?2)",
    [Q_PRIN_DECLARE] = "UPDATE principals SET declared = ?2,"
                       " display_name = coalesce(?3, display_name),"
                       " email = coalesce(?4, email) WHERE id = ?1",
    [Q_DECLARED_BY] = "INSERT OR IGNORE INTO declared_by(principal_id, source_id)"
                      " VALUES(?1, ?2)",
    [Q_MEMB_CLEAR] = "DELETE FROM memberships WHERE group_id = ?1 AND source_id = ?2",
    [Q_MEMB_ADD] = "INSERT OR IGNORE INTO memberships(group_id, member_id, source_id)"
                   " VALUES(?1, ?2, ?3)",
    [Q_IDENT_PUT] = "INSERT INTO identities(account_id, source_id, user_id)"
                    " VALUES(?1, ?2, ?3) ON CONFLICT(account_id, source_id)"
                    " DO UPDATE SET user_id = ?3",
    [Q_IDENT_DEL] = "DELETE FROM identities WHERE account_id = ?1 AND source_id = ?2",
    [Q_LABEL_GET] = "SELECT id FROM labels WHERE name = ?1",
    [Q_LABEL_ADD] = "INSERT INTO labels(name) VALUES(?1)",
    [Q_ACL_GET] = "SELECT id FROM acl_sets WHERE hash = ?1",
    [Q_ACL_ADD] = "INSERT INTO acl_sets(hash, allow_tokens, deny_tokens, label_tokens,"
                  " source_id) VALUES(?1, ?2, ?3, ?4, ?5)",
    [Q_ACL_ENTRY] = "INSERT OR IGNORE INTO acl_entries(acl_id, deny, principal_id)"
                    " VALUES(?1, ?2, ?3)",
    [Q_ACL_LABEL] = "INSERT OR IGNORE INTO acl_labels(acl_id, label_id) VALUES(?1, ?2)",
    [Q_DOC_LOOKUP] = "SELECT id, acl_id, deleted, hash FROM documents"
                     " WHERE source_id = ?1 AND stream = ?2 AND ext_id = ?3",
    /*
     * Plain single-row INSERT and UPDATE, never an UPSERT: a statement that
     * needs a statement journal opens a savepoint, and FTS5 flushes its
     * pending index at every savepoint, which made ingest twice as slow.
     */
    [Q_DOC_INSERT] = "INSERT INTO documents(source_id, stream, ext_id, title, url, body,"
                     " metadata, updated_at, hash, acl_id, deleted, acl_synced_at,"
                     " indexed_at, seen_epoch)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?11, ?12)",
    [Q_DOC_UPDATE] = "UPDATE documents SET title = ?4, url = ?5, body = ?6, metadata = ?7,"
                     " updated_at = ?8, hash = ?9, acl_id = ?10, deleted = 0,"
                     " acl_synced_at = ?11, indexed_at = ?11, seen_epoch = ?12"
                     " WHERE id = ?13",
    [Q_DOC_TOUCH] = "UPDATE documents SET seen_epoch = ?2, acl_synced_at = ?3 WHERE id = ?1",
    [Q_DOC_SET_ACL] = "UPDATE documents SET acl_id = ?2, acl_synced_at = ?3 WHERE id = ?1",
    [Q_DOC_TOMB] = "UPDATE documents SET deleted = 1, body = NULL, metadata = NULL,"
                   " seen_epoch = ?2, indexed_at = ?3 WHERE id = ?1",
    /* Chunk ids of a document, then single-row FTS5 writes per id: a
     * multi-row write to FTS5 would open a savepoint (see Q_DOC_INSERT). */
    [Q_CHUNK_IDS] = "SELECT id FROM chunks WHERE doc_id = ?1",
    [Q_FTS_DEL] = "DELETE FROM chunks_fts WHERE rowid = ?1",
    [Q_CHUNK_DEL_DOC] = "DELETE FROM chunks WHERE doc_id = ?1",
    /* The id is the store's own (schema v11, store__chunk_id). */
    [Q_CHUNK_ADD] = "INSERT INTO chunks(id, doc_id, seq, ntokens, acl_id)"
                    " VALUES(?5, ?1, ?2, ?3, ?4)",
    [Q_CHUNK_MARK] = "SELECT max(coalesce((SELECT max(seq) FROM sqlite_sequence"
                     " WHERE name = 'chunks'), 0), coalesce((SELECT max(id) FROM chunks), 0))",
    [Q_CHUNK_MARK_PUT] = "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'chunks'",
    [Q_CHUNK_MARK_ADD] = "INSERT INTO sqlite_sequence(name, seq) VALUES('chunks', ?1)",
    /* VALUES, not INSERT ... SELECT: see the note at Q_DOC_INSERT. */
    [Q_FTS_ADD] = "INSERT INTO chunks_fts(rowid, title, text, allow, deny, labels)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_ACL_TOKENS] = "SELECT allow_tokens, deny_tokens, label_tokens FROM acl_sets WHERE id = ?1",
    [Q_CHUNK_TEXT] = "SELECT c.ntokens, f.c0, f.c1 FROM chunks c"
                     " JOIN chunks_fts_content f ON f.id = c.id"
                     " WHERE c.doc_id = ?1 ORDER BY c.seq",
    [Q_PRUNE_GONE] = "INSERT INTO chunks_gone(chunk_id, at) SELECT c.id, ?4 FROM chunks c"
                     " JOIN documents d ON d.id = c.doc_id WHERE d.source_id = ?1"
                     " AND d.stream = ?2 AND d.seen_epoch < ?3 AND d.deleted = 0",
    [Q_GONE_ADD] = "INSERT INTO chunks_gone(chunk_id, at) VALUES(?1, ?2)",
    [Q_GONE_TRIM] = "DELETE FROM chunks_gone WHERE at < ?1",
    [Q_PRUNE_FTS] = "DELETE FROM chunks_fts WHERE rowid IN (SELECT c.id FROM chunks c"
                    " JOIN documents d ON d.id = c.doc_id WHERE d.source_id = ?1"
                    " AND d.stream = ?2 AND d.seen_epoch < ?3 AND d.deleted = 0)",
    [Q_PRUNE_CHUNKS] = "DELETE FROM chunks WHERE doc_id IN (SELECT id FROM documents"
                       " WHERE source_id = ?1 AND stream = ?2 AND seen_epoch < ?3"
                       " AND deleted = 0)",
    [Q_PRUNE_DOCS] = "UPDATE documents SET deleted = 1, body = NULL, metadata = NULL,"
                     " indexed_at = ?4 WHERE source_id = ?1 AND stream = ?2"
                     " AND seen_epoch < ?3 AND deleted = 0",
    [Q_RUN_STALE] = "UPDATE sync_runs SET status = 'interrupted', finished_at = ?2"
                    " WHERE source_id = ?1 AND status = 'running'",
    [Q_RUN_ADD] = "INSERT INTO sync_runs(source_id, started_at, full, status)"
                  " VALUES(?1, ?2, ?3, 'running')",
    [Q_RUN_FINISH] = "UPDATE sync_runs SET finished_at = ?2, status = ?3, records = ?4,"
                     " unchanged = ?5, deletes = ?6, acls = ?7, principals = ?8,"
                     " states = ?9, chunks = ?10, pruned = ?11, bytes = ?12,"
                     " repaired_utf8 = ?13, error = ?14 WHERE id = ?1",
    /* Embeddings (schema v2). Inside a sync batch these are single-row
     * writes by key, like everything else next to FTS5 (see Q_DOC_INSERT). */
    [Q_QUEUE_ADD] = "INSERT INTO embed_queue(chunk_id) VALUES(?1)",
    [Q_QUEUE_DEL] = "DELETE FROM embed_queue WHERE chunk_id = ?1",
    [Q_VEC_DEL] = "DELETE FROM vectors WHERE chunk_id = ?1",
    [Q_TOMB_ADD] = "INSERT INTO vector_tombstones(chunk_id) VALUES(?1)",
    /* Prune already deletes FTS5 rows by subquery; these follow it. */
    [Q_PRUNE_TOMB] = "INSERT INTO vector_tombstones(chunk_id) SELECT DISTINCT v.chunk_id"
                     " FROM vectors v JOIN chunks c ON c.id = v.chunk_id"
                     " JOIN documents d ON d.id = c.doc_id WHERE d.source_id = ?1"
                     " AND d.stream = ?2 AND d.seen_epoch < ?3 AND d.deleted = 0",
    [Q_PRUNE_VEC] = "DELETE FROM vectors WHERE chunk_id IN (SELECT c.id FROM chunks c"
                    " JOIN documents d ON d.id = c.doc_id WHERE d.source_id = ?1"
                    " AND d.stream = ?2 AND d.seen_epoch < ?3 AND d.deleted = 0)",
    [Q_PRUNE_QUEUE] = "DELETE FROM embed_queue WHERE chunk_id IN (SELECT c.id FROM chunks c"
                      " JOIN documents d ON d.id = c.doc_id WHERE d.source_id = ?1"
                      " AND d.stream = ?2 AND d.seen_epoch < ?3 AND d.deleted = 0)",
    [Q_SET_GET] = "SELECT value FROM settings WHERE key = ?1",
    [Q_SET_PUT] = "INSERT OR REPLACE INTO settings(key, value) VALUES(?1, ?2)",
    [Q_SET_DEL] = "DELETE FROM settings WHERE key = ?1",
    [Q_MODEL_GET] = "SELECT id, dim FROM embed_models WHERE name = ?1",
    [Q_MODEL_ADD] = "INSERT INTO embed_models(name, dim, created_at) VALUES(?1, ?2, ?3)",
    [Q_MODEL_BY_ID] = "SELECT name, dim FROM embed_models WHERE id = ?1",
    /* What gets embedded is the title, a newline, and the chunk's text. */
    [Q_QUEUE_TAKE] = "SELECT q.chunk_id, f.c0, f.c1 FROM embed_queue q"
                     " JOIN chunks_fts_content f ON f.id = q.chunk_id"
                     " WHERE q.chunk_id > ?1 ORDER BY q.chunk_id LIMIT ?2",
    [Q_QUEUE_DEPTH] = "SELECT count(*) FROM embed_queue",
    [Q_CHUNK_TEXTS] = "SELECT c.id, f.c0, f.c1 FROM chunks c"
                      " JOIN chunks_fts_content f ON f.id = c.id"
                      " WHERE c.id > ?1 ORDER BY c.id LIMIT ?2",
    [Q_CHUNK_COUNT] = "SELECT count(*), coalesce(max(id), 0), count(*) FILTER (WHERE id > ?1)"
                      " FROM chunks",
    [Q_VEC_REUSE] = "SELECT vec FROM vectors WHERE model_id = ?1 AND text_hash = ?2 LIMIT 1",
    [Q_VEC_ADD] = "INSERT INTO vectors(chunk_id, model_id, dim, text_hash, vec, created_at)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_VEC_SCAN] = "SELECT v.seq, v.chunk_id, c.acl_id, d.source_id, v.vec FROM vectors v"
                   " JOIN chunks c ON c.id = v.chunk_id JOIN documents d ON d.id = c.doc_id"
                   " WHERE v.model_id = ?1 AND v.seq > ?2 ORDER BY v.seq",
    /* A document's vectors by chunk position, to carry over an ACL change. */
    [Q_VEC_OF_DOC] = "SELECT c.seq, v.model_id, v.dim, v.text_hash, v.vec FROM chunks c"
                     " JOIN vectors v ON v.chunk_id = c.id WHERE c.doc_id = ?1",
    [Q_CHUNK_AT] = "SELECT id FROM chunks WHERE doc_id = ?1 AND seq = ?2",
    [Q_TOMB_SCAN] = "SELECT seq, chunk_id FROM vector_tombstones WHERE seq > ?1 ORDER BY seq",
    /* AUTOINCREMENT keeps the highest seq issued, pruned or not. */
    [Q_TOMB_LAST] = "SELECT coalesce((SELECT seq FROM sqlite_sequence"
                    " WHERE name = 'vector_tombstones'), 0)",
    [Q_TOMB_PRUNE] = "DELETE FROM vector_tombstones WHERE seq <= ?1",
    [Q_AUDIT_ADD] = "INSERT INTO audit(at, user, agent, action, query, query_sha256, doc_ids,"
                    " tokens, latency_us, outcome) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                    " ?10)",
    /* A permission run's seen set (a TEMP table: store_perm_begin). OR
     * IGNORE: an id sent twice; and no statement journal next to FTS5. */
    [Q_PERM_SEEN] = "INSERT OR IGNORE INTO temp.perm_seen(doc_id) VALUES(?1)",
    /* From documents_acl alone: the planner would take the unique index,
     * which sends every lookup to the row and its body. */
    [Q_PERM_LOOKUP] = "SELECT id, acl_id, deleted FROM documents INDEXED BY documents_acl"
                      " WHERE source_id = ?1 AND stream = ?2 AND ext_id = ?3",
    /* From documents_acl alone too: one seek, and tombstones skipped in the index. */
    [Q_DOC_NEXT] = "SELECT ext_id FROM documents INDEXED BY documents_acl"
                   " WHERE source_id = ?1 AND stream = ?2 AND ext_id > ?3 AND deleted = 0"
                   " ORDER BY ext_id LIMIT 1",
    /* Through the models (few) and vectors_model, not a scan of vectors. */
    /* CROSS JOIN: the models outside, each one's vectors by the index;
     * the other way round every embed run read the whole index (issue 16). */
    [Q_VEC_RETIRE] = "DELETE FROM vectors WHERE seq IN (SELECT v.seq FROM embed_models m"
                     " CROSS JOIN vectors v ON v.model_id = m.id WHERE m.id NOT IN"
                     " (SELECT value FROM settings"
                     "  WHERE key IN ('embed.active_model', 'embed.target_model'))"
                     " LIMIT ?1)",
    /* A live document whole, for a fetch; its permissions' age is the later of
     * its own ACL write and its source's last whole permission read. */
    [Q_RD_DOC] = "SELECT d.title, d.url, s.name, d.body, d.acl_id, max(d.acl_synced_at,"
                 " coalesce((SELECT synced_at FROM source_acl_sync a"
                 " WHERE a.source_id = d.source_id), 0)), d.ext_id, d.stream, d.source_id"
                 " FROM documents d JOIN sources s ON s.id = d.source_id"
                 " WHERE d.id = ?1 AND d.deleted = 0",
    /* The lowest id: a source's external ids are unique per stream, and when
     * two streams share one, the SOURCE:EXTERNAL_ID form names the first. */
    [Q_RD_BY_EXT] = "SELECT d.id FROM documents d JOIN sources s ON s.id = d.source_id"
                    " WHERE s.name = ?1 AND d.ext_id = ?2 AND d.deleted = 0"
                    " ORDER BY d.id LIMIT 1",
    [Q_RD_EXT] = "SELECT ext_id, stream FROM documents WHERE id = ?1",
    [Q_RD_REF] = "SELECT s.name, d.ext_id FROM documents d JOIN sources s"
                 " ON s.id = d.source_id WHERE d.id = ?1",
    [Q_RD_CHUNK_ACL] = "SELECT acl_id FROM chunks WHERE id = ?1",
    [Q_RD_LABELS] = "SELECT l.name FROM acl_labels a JOIN labels l ON l.id = a.label_id"
                    " WHERE a.acl_id = ?1 ORDER BY l.name",
};

static void token_cache_clear(ctx_store *st)
{
    st->n_fts_del = 0;
    st->chunk_mark = 0;
    for (int i = 0; i < ACL_CACHE; i++) {
        ctx_free(st->memo[i].key);
        st->memo[i].key = NULL;
    }
    for (int i = 0; i < TOKEN_CACHE; i++) {
        for (int j = 0; j < 3; j++)
            ctx_free(st->cache[i].tok[j]);
        memset(&st->cache[i], 0, sizeof st->cache[i]);
    }
}

sqlite3 *store_db(ctx_store *st) { return st->db; }

int store_errf(ctx_store *st, ctx_error *err, const char *what)
{
    return ctx_error_set(err, CTX_ESTORE, "store: %s: %s", what, sqlite3_errmsg(st->db));
}

/* store__stmt - see store_int.h. */
sqlite3_stmt *store__stmt(ctx_store *st, int id, ctx_error *err)
{
    sqlite3_stmt *s = st->q[id];

    if (!s) {
        if (sqlite3_prepare_v3(st->db, store__sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
                               &s, NULL) != SQLITE_OK) {
            store_errf(st, err, "prepare");
            return NULL;
        }
        st->q[id] = s;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* store__step_done - see store_int.h. */
int store__step_done(ctx_store *st, sqlite3_stmt *s, ctx_error *err, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store_errf(st, err, what);
    return CTX_OK;
}

/* store__get_id - see store_int.h. */
int store__get_id(ctx_store *st, sqlite3_stmt *s, int64_t *id, ctx_error *err,
                  const char *what)
{
    int rc = sqlite3_step(s);
    *id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_errf(st, err, what);
    return CTX_OK;
}

int store_exec(ctx_store *st, const char *sql, ctx_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ctx_error_set(err, CTX_ESTORE, "store: %s", msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return CTX_ESTORE;
    }
    return CTX_OK;
}

static int schema_version(ctx_store *st, int *version, ctx_error *err)
{
    sqlite3_stmt *s;

    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "read schema version");
    sqlite3_step(s);
    *version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return CTX_OK;
}

/*
 * A schema's steps: steps[i] takes a database at version i to i + 1, after
 * its hook (if any) ran in the same transaction.
 */
typedef struct schema_step {
    const char *sql;
    int (*before)(ctx_store *st, ctx_error *err);
    int (*after)(ctx_store *st, ctx_error *err);
} schema_step;

static int move_audit(ctx_store *st, ctx_error *err);
static int flush_fts_deletes(ctx_store *st, ctx_error *err);
static int flush_chunk_mark(ctx_store *st, ctx_error *err);
static int add_run_columns(ctx_store *st, ctx_error *err);

/*
 * Version 12: SCIM provisioning (indexer/store_scim.c). scim_resources holds
 * the users and groups an identity provider pushed to a source of type
 * "scim", as the provider sent them (body: their JSON without id, meta and
 * members), with the principal each stands for; scim_members the groups'
 * members by SCIM id; scim_aliases the other user: names a user maps to
 * its principal. principal_blocks names principals a directory has
 * deprovisioned (deleted or active = false): they have no view at all,
 * whoever else declares them (retrieval/acl.c). IF NOT EXISTS: a test
 * takes a store back to an older version with these tables in place.
 */
static const char schema_v12_scim[] =
    "CREATE TABLE IF NOT EXISTS scim_resources("
    "  source_id INTEGER NOT NULL, id TEXT NOT NULL, kind INTEGER NOT NULL,"
    "  name TEXT NOT NULL, name_key TEXT NOT NULL, external_id TEXT,"
    "  active INTEGER NOT NULL, body TEXT NOT NULL, principal TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL, modified_at INTEGER NOT NULL,"
    "  version INTEGER NOT NULL, PRIMARY KEY(source_id, id)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX IF NOT EXISTS scim_resources_name"
    "  ON scim_resources(source_id, kind, name_key);"
    "CREATE UNIQUE INDEX IF NOT EXISTS scim_resources_principal"
    "  ON scim_resources(source_id, principal);"
    "CREATE INDEX IF NOT EXISTS scim_resources_ext"
    "  ON scim_resources(source_id, kind, external_id);"
    "CREATE TABLE IF NOT EXISTS scim_members("
    "  source_id INTEGER NOT NULL, group_id TEXT NOT NULL, member_id TEXT NOT NULL,"
    "  PRIMARY KEY(source_id, group_id, member_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS scim_members_member ON scim_members(source_id, member_id);"
    "CREATE TABLE IF NOT EXISTS scim_aliases("
    "  source_id INTEGER NOT NULL, resource_id TEXT NOT NULL, principal TEXT NOT NULL,"
    "  PRIMARY KEY(source_id, resource_id, principal)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS principal_blocks("
    "  principal_id INTEGER NOT NULL, source_id INTEGER NOT NULL,"
    "  PRIMARY KEY(principal_id, source_id)) WITHOUT ROWID;"
    BUMP_GEN("principal_blocks", "INSERT") BUMP_GEN("principal_blocks", "DELETE");

static const schema_step store_steps[] = {
    {schema_v1, NULL, NULL}, {schema_v2, NULL, NULL},       {schema_v3, NULL, NULL},
    {schema_v4, NULL, NULL}, {schema_v5, NULL, NULL},       {schema_v6, move_audit, NULL},
    {schema_v7, NULL, store__v7_split_sets},
    {schema_v8_pending, NULL, NULL}, /* permission sync, resumable full runs */
    {schema_v9_runs, add_run_columns, NULL}, /* sync_runs.warnings, held_reason */
    {schema_v10_gone, NULL, NULL},           /* the log of deleted chunks */
    {schema_v11_leaner, NULL, NULL},         /* no AUTOINCREMENT, documents_epoch */
    {schema_v12_scim, NULL, NULL},           /* SCIM resources, principal blocks */
};
static const schema_step audit_steps[] = {{audit_schema_v1, NULL, NULL},
                                           {audit_schema_v2, NULL, NULL}};

typedef struct schema_def {
    const char *what; /* for messages: "store", "audit log" */
    const schema_step *steps;
    int nsteps;
    /* run first, before the file is turned to WAL (which writes its header):
     * settings only a new, empty file takes */
    const char *first;
} schema_def;

_Static_assert(sizeof store_steps / sizeof *store_steps == STORE_SCHEMA_VERSION,
               "a store schema step for every version");
static const schema_def store_schema = {"store", store_steps, STORE_SCHEMA_VERSION, NULL};
/* Incremental auto-vacuum: pruning old records (store_audit_prune) can give
 * the file's pages back a batch at a time (store_audit_reclaim). A log made
 * before this keeps auto_vacuum off; its freed pages are reused instead. */
static const schema_def audit_schema = {"audit log", audit_steps,
                                        (int)(sizeof audit_steps / sizeof *audit_steps),
                                        "PRAGMA auto_vacuum = INCREMENTAL"};

static int migrate(ctx_store *st, const schema_def *def, ctx_error *err)
{
    int version, rc;
    char set[64];

    if ((rc = schema_version(st, &version, err)))
        return rc;

    if (version > def->nsteps)
        return ctx_error_set(err, CTX_ESTORE,
                             "%s: schema version %d is newer than this ctxgate (%d);"
                             " upgrade ctxgate or use another data_dir",
                             def->what, version, def->nsteps);
    if (version == def->nsteps)
        return CTX_OK;
    if ((rc = store_exec(st, "BEGIN IMMEDIATE", err)))
        return rc;
    /* Another process may have migrated while we waited for the lock. */
    if ((rc = schema_version(st, &version, err)))
        goto fail;
    if (version == def->nsteps)
        return store_exec(st, "COMMIT", err);
    for (int v = version; v < def->nsteps; v++) {
        if (def->steps[v].before && (rc = def->steps[v].before(st, err)))
            goto fail;
        if ((rc = store_exec(st, def->steps[v].sql, err)))
            goto fail;
        if (def->steps[v].after && (rc = def->steps[v].after(st, err)))
            goto fail;
    }
    snprintf(set, sizeof set, "PRAGMA user_version = %d", def->nsteps);
    if ((rc = store_exec(st, set, err)))
        goto fail;
    /* A hook may have moved chunks (v7): their old FTS5 rows go now. */
    if ((rc = flush_fts_deletes(st, err)) || (rc = flush_chunk_mark(st, err)))
        goto fail;
    return store_exec(st, "COMMIT", err);
fail:
    store_exec(st, "ROLLBACK", NULL);
    return rc;
}

/*
 * SQLite counts every allocation under one global mutex unless told not
 * to; with searches on several threads that lock was contended (perf:
 * lock wait and wake in every worker). Nothing here reads those counts.
 * Too late when the program already used SQLite: then it is a no-op.
 */
static void sqlite_setup(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

static int open_db(const char *path, int flags, const schema_def *def, ctx_store **out,
                   ctx_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    ctx_store *st;
    int oflags = (flags & STORE_OPEN_READONLY)
                     ? SQLITE_OPEN_READONLY
                     : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc;

    *out = NULL;
    pthread_once(&once, sqlite_setup);
    if (!(st = ctx_calloc(1, sizeof *st)))
        return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
    if (sqlite3_open_v2(path, &st->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = ctx_error_set(err, CTX_ESTORE, "%s: cannot open %s: %s", def->what, path,
                           st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 10000);
    sqlite3_extended_result_codes(st->db, 1);
    /* Before any FTS5 use: a table keeps the tokenizer it first found. Without
     * it every chunk is simply tokenized by the insert. */
    pretok_install(st->db, &st->tok_slot);
    if (!(flags & STORE_OPEN_READONLY)) {
        /*
         * WAL + NORMAL: a process crash loses nothing committed. Turning a
         * new file to WAL takes its lock without the busy handler, so two
         * processes creating the same store at once (two agents started
         * together) saw "database is locked": try again for as long as the
         * busy timeout would have waited.
         */
        if (def->first && (rc = store_exec(st, def->first, err)))
            goto fail;
        for (int tries = 0;; tries++) {
            rc = store_exec(st, "PRAGMA journal_mode = WAL;"
                                "PRAGMA synchronous = NORMAL;"
                                "PRAGMA foreign_keys = OFF;"
                                "PRAGMA cache_size = -32768;", err);
            if (!rc)
                rc = migrate(st, def, err);
            if (!rc || (sqlite3_extended_errcode(st->db) & 0xff) != SQLITE_BUSY ||
                tries >= 1000)
                break;
            sqlite3_sleep(10);
        }
        if (rc)
            goto fail;
    }
    *out = st;
    return CTX_OK;
fail:
    store_close(st);
    return rc;
}

int store_open(const char *path, int flags, ctx_store **out, ctx_error *err)
{
    return open_db(path, flags, &store_schema, out, err);
}

int store_audit_path(const char *store_path, char *buf, size_t n, ctx_error *err)
{
    size_t len = strlen(store_path);

    if (len > 3 && !strcmp(store_path + len - 3, ".db"))
        len -= 3;
    if (!len || !strcmp(store_path, ":memory:") ||
        (size_t)snprintf(buf, n, "%.*s-audit.db", (int)len, store_path) >= n)
        return ctx_error_set(err, CTX_ESTORE,
                             "audit log: no file for a store at \"%s\"; give the store a"
                             " file path (data_dir)", store_path);
    return CTX_OK;
}

int store_audit_open(const char *store_path, ctx_store **out, ctx_error *err)
{
    char path[4096];
    int rc;

    *out = NULL;
    if ((rc = store_audit_path(store_path, path, sizeof path, err)) ||
        (rc = open_db(path, 0, &audit_schema, out, err)))
        return rc;
    /*
     * The log is only appended to. With the store's 32 MB page cache the
     * writer kept every audit page it wrote: the server's RSS grew by some
     * 300 bytes a request until that cache was full. A small cache is
     * enough for the B-tree's right edge.
     */
    if ((rc = store_exec(*out, "PRAGMA cache_size = -512", err))) {
        store_close(*out);
        *out = NULL;
    }
    return rc;
}

/*
 * move_audit - (v6) the audit rows of a store made before v6 into the
 * audit log's file, ids kept. The log commits first; if the store's own
 * commit then fails, the next open copies again and the ids make the
 * second copy a no-op.
 */
static int move_audit(ctx_store *st, ctx_error *err)
{
    static const char cols[] =
        "id, at, user, agent, action, query, query_sha256, doc_ids, tokens, latency_us, outcome";
    char sql[256];
    sqlite3_stmt *from = NULL, *to = NULL;
    ctx_store *log = NULL;
    int rc = CTX_OK, step;

    snprintf(sql, sizeof sql, "SELECT %s FROM audit ORDER BY id", cols);
    if (sqlite3_prepare_v2(st->db, sql, -1, &from, NULL) != SQLITE_OK)
        return store_errf(st, err, "read the audit rows to move");
    if ((step = sqlite3_step(from)) != SQLITE_ROW) { /* nothing to move: no file made */
        if (step != SQLITE_DONE)
            rc = store_errf(st, err, "read the audit rows to move");
        goto done;
    }
    snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO audit(%s) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
             cols);
    if ((rc = store_audit_open(sqlite3_db_filename(st->db, "main"), &log, err)) ||
        (rc = store_begin(log, err)))
        goto done;
    if (sqlite3_prepare_v2(log->db, sql, -1, &to, NULL) != SQLITE_OK) {
        rc = store_errf(log, err, "move the audit rows");
        goto done;
    }
    for (; step == SQLITE_ROW; step = sqlite3_step(from)) {
        for (int i = 0; i < 11; i++)
            sqlite3_bind_value(to, i + 1, sqlite3_column_value(from, i));
        if (sqlite3_step(to) != SQLITE_DONE) {
            rc = store_errf(log, err, "move the audit rows");
            goto done;
        }
        sqlite3_reset(to);
    }
    if (step != SQLITE_DONE)
        rc = store_errf(st, err, "read the audit rows to move");
    else
        rc = store_commit(log, err);
done:
    if (log && log->in_tx && rc)
        store_rollback(log);
    sqlite3_finalize(to);
    sqlite3_finalize(from);
    store_close(log);
    return rc;
}

void store_close(ctx_store *st)
{
    if (!st)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(st->q[i]);
    stmt_close(st->db);
    token_cache_clear(st);
    ctx_buf_free(&st->memo_buf);
    ctx_free(st->fts_del);
    sqlite3_close(st->db);
    ctx_free(st);
}

int store_begin(ctx_store *st, ctx_error *err)
{
    int rc = store_exec(st, "BEGIN IMMEDIATE", err);
    if (!rc)
        st->in_tx = 1;
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/*
 * flush_fts_deletes - the deferred FTS5 deletes, in ascending rowid order,
 * each logged in chunks_gone (single-row statements: see Q_DOC_INSERT).
 */
static int flush_fts_deletes(ctx_store *st, ctx_error *err)
{
    sqlite3_stmt *s;
    size_t i;
    int64_t now = ctx_now_ms();
    int rc = CTX_OK;

    if (!st->n_fts_del)
        return CTX_OK;
    qsort(st->fts_del, st->n_fts_del, sizeof *st->fts_del, cmp_id);
    for (i = 0; i < st->n_fts_del && !rc; i++) {
        if (!(s = store__stmt(st, Q_FTS_DEL, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, st->fts_del[i]);
        if ((rc = store__step_done(st, s, err, "drop chunk text")))
            break;
        if (!(s = store__stmt(st, Q_GONE_ADD, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, st->fts_del[i]);
        sqlite3_bind_int64(s, 2, now);
        rc = store__step_done(st, s, err, "log a dropped chunk");
    }
    st->n_fts_del = 0;
    return rc;
}

/* store__chunk_id - see store_int.h. */
int store__chunk_id(ctx_store *st, int64_t *id, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if (!st->chunk_mark) {
        /* The first of the transaction: whatever another connection wrote. */
        if (!(s = store__stmt(st, Q_CHUNK_MARK, err)))
            return CTX_ESTORE;
        if ((rc = store__get_id(st, s, &st->chunk_mark, err, "read the last chunk id")))
            return rc;
    }
    *id = ++st->chunk_mark;
    return CTX_OK;
}

/* flush_chunk_mark - the transaction's last chunk id into sqlite_sequence. */
static int flush_chunk_mark(ctx_store *st, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if (!st->chunk_mark)
        return CTX_OK;
    if (!(s = store__stmt(st, Q_CHUNK_MARK_PUT, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, st->chunk_mark);
    if ((rc = store__step_done(st, s, err, "write the last chunk id")))
        return rc;
    if (!sqlite3_changes(st->db)) {
        if (!(s = store__stmt(st, Q_CHUNK_MARK_ADD, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, st->chunk_mark);
        if ((rc = store__step_done(st, s, err, "write the last chunk id")))
            return rc;
    }
    st->chunk_mark = 0;
    return CTX_OK;
}

int store_commit(ctx_store *st, ctx_error *err)
{
    int rc = flush_fts_deletes(st, err);
    if (!rc)
        rc = flush_chunk_mark(st, err);
    if (rc)
        return rc;
    rc = store_exec(st, "COMMIT", err);
    if (!rc)
        st->in_tx = 0;
    return rc;
}

void store_rollback(ctx_store *st)
{
    token_cache_clear(st);
    if (st->in_tx || !sqlite3_get_autocommit(st->db))
        store_exec(st, "ROLLBACK", NULL);
    st->in_tx = 0;
}

/* ---- the maintenance agent's job history ---- */

/* job_stmt - prepare one statement on the job history. */
static int job_stmt(ctx_store *st, const char *sql, sqlite3_stmt **s, ctx_error *err)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, s, NULL) != SQLITE_OK)
        return store_errf(st, err, "job history");
    return CTX_OK;
}

static int job_step(ctx_store *st, sqlite3_stmt *s, ctx_error *err)
{
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    return step == SQLITE_DONE || step == SQLITE_ROW ? CTX_OK
                                                     : store_errf(st, err, "job history");
}

int store_job_start(ctx_store *st, const char *source, const char *kind, int attempt,
                    int64_t started_at, int64_t *id, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if ((rc = job_stmt(st,
                       "INSERT INTO agent_jobs(source, kind, attempt, started_at, status)"
                       " VALUES(?1, ?2, ?3, ?4, 'running')",
                       &s, err)))
        return rc;
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, attempt);
    sqlite3_bind_int64(s, 4, started_at);
    rc = job_step(st, s, err);
    *id = rc ? 0 : sqlite3_last_insert_rowid(st->db);
    return rc;
}

int store_job_finish(ctx_store *st, int64_t id, int64_t finished_at, const char *status,
                     const char *error, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if ((rc = job_stmt(st,
                       "UPDATE agent_jobs SET finished_at = ?2, status = ?3, error = ?4"
                       " WHERE id = ?1",
                       &s, err)))
        return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, finished_at);
    sqlite3_bind_text(s, 3, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, error, -1, SQLITE_STATIC);
    return job_step(st, s, err);
}

int store_job_last(ctx_store *st, const char *source, const char *kind, int64_t *started_at,
                   ctx_error *err)
{
    sqlite3_stmt *s;
    int rc, step;

    *started_at = 0;
    if ((rc = job_stmt(st,
                       "SELECT max(started_at) FROM agent_jobs"
                       " WHERE source IS ?1 AND kind = ?2",
                       &s, err)))
        return rc;
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    if ((step = sqlite3_step(s)) == SQLITE_ROW)
        *started_at = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return step == SQLITE_ROW || step == SQLITE_DONE ? CTX_OK
                                                     : store_errf(st, err, "job history");
}

int store_audit_put(ctx_store *st, const store_audit_rec *r, ctx_error *err)
{
    sqlite3_stmt *s;

    if (!(s = store__stmt(st, Q_AUDIT_ADD, err)))
        return err->code;
    sqlite3_bind_int64(s, 1, r->at);
    sqlite3_bind_text(s, 2, r->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, r->query, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, r->query_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, r->doc_ids ? r->doc_ids : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, r->tokens);
    sqlite3_bind_int64(s, 9, r->latency_us);
    sqlite3_bind_text(s, 10, r->outcome, -1, SQLITE_STATIC);
    return store__step_done(st, s, err, "audit");
}

/* ---- the sync_runs columns of schema v9, and the one-row query helper ---- */

/*
 * add_run_columns - the ops schema step: sync_runs.warnings and
 * held_reason, each only when missing (a store taken back to an older
 * version by a test keeps its columns; ALTER TABLE has no IF NOT EXISTS).
 */
static int add_run_columns(ctx_store *st, ctx_error *err)
{
    static const char *const cols[] = {"warnings", "held_reason"};
    char sql[128];
    int rc;

    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) {
        sqlite3_stmt *s;
        int have = 0;
        if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM pragma_table_info('sync_runs')"
                               " WHERE name = ?1", -1, &s, NULL) != SQLITE_OK)
            return store_errf(st, err, "schema");
        sqlite3_bind_text(s, 1, cols[i], -1, SQLITE_STATIC);
        have = sqlite3_step(s) == SQLITE_ROW;
        sqlite3_finalize(s);
        snprintf(sql, sizeof sql, "ALTER TABLE sync_runs ADD COLUMN %s TEXT", cols[i]);
        if (!have && (rc = store_exec(st, sql, err)))
            return rc;
    }
    return CTX_OK;
}

/* store__one_int - see store_int.h. */
int store__one_int(ctx_store *st, const char *sql, int64_t a, const char *b, int64_t c,
                   int64_t *out, const char *what, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    *out = 0;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, what);
    sqlite3_bind_int64(s, 1, a);
    if (b)
        sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, c);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, what);
}
