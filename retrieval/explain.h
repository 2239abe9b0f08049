/*
 * explain.h - why a caller may or may not read a document, for operators:
 * the verdict and every reason behind it (the principal path and which
 * source stated each edge, the document's allow, deny and labels, the
 * agent's grant, the permissions' age), and the warnings a source's
 * permissions deserve (ACLs naming principals nobody declared, documents
 * no known user can read).
 */
#ifndef CTX_RETRIEVAL_EXPLAIN_H
#define CTX_RETRIEVAL_EXPLAIN_H

#include <jansson.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/ctx.h"

/* explain reads through the connection it is handed (see indexer/store_read.h). */
typedef struct sqlite3 sqlite3;

/*
 * explain_doc_ref - the internal id of the document ref names: its id
 * ("42") or "source:external_id" (split after the first ':' that ends the
 * name of a source the store knows). Deleted documents resolve too.
 * CTX_ENOTFOUND when there is none.
 */
int explain_doc_ref(sqlite3 *db, const char *ref, int64_t *doc_id, ctx_error *err);

/*
 * explain_access - may user, through agent (NULL: the user directly), read
 * document ref now? *out (new) is the verdict ("readable", true or false),
 * "reasons" (sentences, in the order they were checked) and the facts
 * behind them: "document", "principals" (each of the user's principals
 * where the document's source is concerned, with the edge and the source
 * that stated it), "allow", "deny", "labels", "trusted_sources", "agent",
 * "permissions". cfg (borrowed) supplies grants and permission bounds.
 * The answer is the search's: both go through the same access code.
 */
int explain_access(sqlite3 *db, const ctx_config *cfg, const char *user, const char *agent,
                   const char *ref, int64_t now_ms, json_t **out, ctx_error *err);

/*
 * explain_source_warnings - what is wrong with the permissions of the
 * source named name, as {"source", "documents", "undeclared": {"count",
 * "examples"}, "readable_by_nobody": bool, "warnings": [sentences]} (new),
 * or NULL when the store has no such source.
 */
json_t *explain_source_warnings(sqlite3 *db, const char *name, ctx_error *err);

#endif
