/*
 * pretok.h - the store's FTS5 tokenizer run ahead of the store: a sync's
 * connector thread tokenizes each chunk's text, and the applier's FTS5
 * insert replays those tokens instead of tokenizing it again.
 *
 * Tokenizing is about a quarter of the applier's work per record and
 * needs no store; the connector thread idles most of a sync. The store
 * connection's "porter" tokenizer is replaced by a wrapper (pretok_install)
 * that replays a staged token list when FTS5 tokenizes exactly the staged
 * text as a document, and hands everything else (queries, highlights,
 * deletes, any text not staged) to SQLite's own porter tokenizer. The
 * tokens are made by that same tokenizer with the same arguments, so what
 * the index receives is the same either way.
 */
#ifndef CTX_INDEXER_PRETOK_H
#define CTX_INDEXER_PRETOK_H

#include <sqlite3.h>
#include <stddef.h>

#include "../core/ctx.h"
#include "../core/util.h"

/* A tokenizer for one thread (pretok_open). */
typedef struct pretok pretok;

/*
 * pretok_open - a tokenizer like the one chunks_fts declares ('porter
 * unicode61 remove_diacritics 2'), on a private in-memory connection; *out
 * new (pretok_close). Returns CTX_OK, or CTX_ESTORE when SQLite has no
 * FTS5 (*out NULL; a sync then simply does not tokenize ahead).
 */
int pretok_open(pretok **out, ctx_error *err);

/* pretok_close - t and its connection; NULL is fine. */
void pretok_close(pretok *t);

/*
 * pretok_run - the tokens of text[0..len) appended to out, in the form
 * pretok_slot.toks takes. Returns CTX_OK, CTX_ENOMEM, or CTX_EINVAL when
 * the tokenizer failed otherwise (out then holds part of the tokens).
 */
int pretok_run(pretok *t, const char *text, size_t len, ctx_buf *out);

/*
 * What the next FTS5 insert on a connection may replay: toks (nbytes,
 * from pretok_run) are the tokens of text[0..len). All borrowed; text
 * NULL when nothing is staged. The connection's owner sets it around the
 * insert and clears it after.
 */
typedef struct pretok_slot {
    const char *text;
    size_t len;
    const unsigned char *toks;
    size_t nbytes;
} pretok_slot;

/*
 * pretok_install - register the replaying wrapper as db's "porter"
 * tokenizer, reading slot (borrowed: it must outlive db). Call it before
 * any FTS5 table is used on db: a table keeps the tokenizer it found when
 * it was first opened. Returns CTX_OK, or CTX_ESTORE without FTS5 (then
 * nothing changed).
 */
int pretok_install(sqlite3 *db, pretok_slot *slot);

#endif
