/*
 * service.h - the retrieval service, independent of any transport: a caller
 * (a user and the agent acting for them) asks to search or to fetch one
 * document and gets a JSON answer. The HTTP API (retrieval/http.h) and MCP
 * are thin layers over svc_search and svc_fetch.
 *
 * Access is the user's permissions (the search legs apply them before
 * ranking) intersected with the agent's grant from the config's "agents":
 * the sources it may read (passed into the search plan) and the labels it
 * may read (a document carrying a label outside the grant is dropped). A
 * caller with no user, or an agent not registered, gets nothing.
 *
 * Every search and fetch is audited (store table audit): who, what (the
 * query or its SHA-256, by audit.store_queries), which documents, how many
 * tokens, how long, and the outcome. Records are written by one writer
 * thread in batches; svc_audit_flush waits until every record so far is in.
 *
 * Threads: any number of threads may call svc_search and svc_fetch at once.
 * Each call borrows one of a pool of workers, each with its own store
 * connection (SQLite connections here are NOMUTEX: one thread at a time).
 * The vector index is shared read-only and caught up by svc_index_refresh
 * under a write lock. A search embeds its query first, holding neither a
 * worker nor a lock, within embeddings.query_timeout_ms and without
 * retries; its read lock covers the vector leg alone.
 */
#ifndef CTX_RETRIEVAL_SERVICE_H
#define CTX_RETRIEVAL_SERVICE_H

#include <jansson.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/ctx.h"

typedef struct svc svc;

/* Who asks: the user (a token's sub) and the acting agent (act.sub). Borrowed. */
typedef struct svc_identity {
    const char *user;
    const char *agent;
} svc_identity;

/* A search request. Strings borrowed (svc_request_parse: owned by root). */
typedef struct svc_request {
    const char *query;
    int k;                          /* 0 = min(10, the grant's max_k) */
    const char *mode;               /* "lexical", "vector" or "hybrid" (default) */
    const char **sources;           /* only these sources (NULL = the grant's) */
    size_t nsources;
    const char **labels;            /* only documents with one of these labels */
    size_t nlabels;
    int64_t max_tokens;             /* 0 = the grant's max_tokens */
    json_t *root;                   /* svc_request_parse: the parsed body, owned */
} svc_request;

/* The longest query accepted, in bytes. */
#define SVC_QUERY_MAX 4096

/*
 * svc_request_parse - a request from a JSON body of len bytes. A body that
 * is not JSON, an unknown field or a field of the wrong type or range fails
 * with CTX_EINVAL and a message naming the field ("k: expected an integer
 * 1..1000"). *req must be svc_request_free'd whatever the result.
 */
int svc_request_parse(const char *body, size_t len, svc_request *req, ctx_error *err);
void svc_request_free(svc_request *req);

/*
 * svc_new - a service over cfg (borrowed: it must outlive the service) with
 * at most nworkers store connections. Opens one connection to check the
 * store and loads the vector index. *out new: svc_free.
 */
int svc_new(const ctx_config *cfg, int nworkers, svc **out, ctx_error *err);

/*
 * svc_warm - open every worker's connection and fill what a connection
 * keeps for searching (rank_warm: the chunk map, the common words' counts
 * per ACL set and frequency maps; the first connection walks, the others
 * copy it), so no request pays for a first sight of a common word. A
 * server calls it before it says it is serving; skipping it costs only
 * those first sights.
 */
int svc_warm(svc *s, ctx_error *err);

/*
 * svc_rewarm - keep the warm state current: when the store has moved on
 * since the last warm-up (chunks added or deleted), warm a new one on a
 * connection of its own while the workers serve with theirs, and let
 * each copy it before its next request. Checks at most every
 * SVC_REWARM_CHECK_MS and walks at most every max(SVC_REWARM_MIN_MS,
 * SVC_REWARM_SHARE times the last warm-up's duration); force skips
 * those clocks, not the check.
 * serve's loop calls it; *did (may be NULL) = 1 when it warmed. Nothing
 * before svc_warm. CTX_OK or the warm-up's error (the old state stays).
 */
#define SVC_REWARM_CHECK_MS 10000
#define SVC_REWARM_MIN_MS 60000
#define SVC_REWARM_SHARE 20
int svc_rewarm(svc *s, int force, int *did, ctx_error *err);

/*
 * svc_reload - serve cfg (borrowed, as in svc_new) from now on: agents and
 * their grants, sources, audit and embedding settings. Returns once no call
 * uses the previous config, which the caller may then free. A config of
 * another data_dir is refused (CTX_ECONFIG) and the old one kept.
 */
int svc_reload(svc *s, const ctx_config *cfg, ctx_error *err);

/* svc_free - flush the audit log and free everything; no call may be running. */
void svc_free(svc *s);

/*
 * svc_search - search for id. Returns CTX_OK with *answer (new) holding
 * {"query","mode","k","results":[...],"tokens","max_tokens","truncated",
 * "untrusted_content":true,"note","context"}; each result has doc_id,
 * external_id (the source's own id of the document), chunk_id, title, url, source, labels, score, acl_synced_at, citation,
 * tokens and text. In vector and hybrid modes "vector_leg" says whether
 * the vector leg took part: {"used": true}, or {"used": false, "reason",
 * "message"} where reason is "timeout" or "embedder_error" (the query
 * could not be embedded in time or at all) or "index_changed" (the index
 * moved to another model meanwhile): the results are then the lexical
 * leg's alone, in vector mode too; or "no_index" (no model has vectors
 * yet) or "disabled" (search.w_vector is 0). CTX_EAUTH: no user or an
 * unregistered agent (nothing searched). CTX_EINVAL: a bad request (err names the field). Anything
 * else is a failure of the service. Audited in every case.
 */
int svc_search(svc *s, const svc_identity *id, const svc_request *req, json_t **answer,
               ctx_error *err);

/*
 * svc_fetch - document doc_id if id may read it: CTX_OK and *answer (new)
 * {"doc_id","external_id","stream","title","url","source","labels","acl_synced_at","citation",
 * "text","tokens","truncated","untrusted_content":true,"note"}, the text
 * cut to the grant's max_tokens. CTX_ENOTFOUND alike for missing, deleted
 * and forbidden. CTX_EAUTH as in svc_search. Audited.
 */
int svc_fetch(svc *s, const svc_identity *id, int64_t doc_id, json_t **answer, ctx_error *err);

/*
 * svc_fetch_ref - svc_fetch of the document ref names: its internal id in
 * decimal ("42"), or SOURCE:EXTERNAL_ID ("wiki:pages/Home:v2"; the first
 * ':' ends the source name, which never holds one, and the rest is the
 * source's own id). A ref naming nothing, or nothing the caller may read,
 * is CTX_ENOTFOUND alike. ref borrowed; *answer as svc_fetch's.
 */
int svc_fetch_ref(svc *s, const svc_identity *id, const char *ref, json_t **answer,
                  ctx_error *err);

/*
 * svc_index_refresh - follow the store: load the active model's vector
 * index when it changed, catch up with new vectors and tombstones (and
 * open it again when a fifth of it is dead, see below). Run
 * every few seconds by the server; searches wait only for the catch-up.
 */
int svc_index_refresh(svc *s, ctx_error *err);

/*
 * svc_index_info - the loaded vector index's live vectors and the dead
 * ones it still holds (0, 0 without one). svc_index_refresh opens the
 * index again once the dead pass a fifth of it, so memory does not keep
 * the vectors of replaced chunks.
 */
void svc_index_info(svc *s, size_t *vectors, size_t *dead);

/* svc_ready - 1 when the store answers and the vector index (if any model) is loaded. */
int svc_ready(svc *s);

/*
 * svc_audit_refusal - audit a request refused before it reached the
 * service (outcome, a static string: "invalid", "rate_limited", ...).
 */
void svc_audit_refusal(svc *s, const svc_identity *id, const char *action, const char *outcome);

/* svc_audit_flush - wait until every audit record so far is in the store. */
void svc_audit_flush(svc *s);

/*
 * svc_explain - why user (through agent, NULL: directly) may or may not
 * read document ref (an id or SOURCE:EXTERNAL_ID), as explain_access says
 * it under the served config: for operators (the admin endpoint), never for
 * a caller's own token. *answer new; CTX_ENOTFOUND when there is no such
 * document.
 */
int svc_explain(svc *s, const char *user, const char *agent, const char *ref, json_t **answer,
                ctx_error *err);

/*
 * svc_permission_ages - each configured source's permission age, bound and
 * whether it is withheld, as {"source": {"synced_at", "age_s",
 * "max_permission_age_s", "withheld"}} (new; NULL on error).
 */
json_t *svc_permission_ages(svc *s);

/*
 * svc_usage - tokens served since start per user and per agent, as new JSON
 * {"users":{name:tokens},"agents":{name:tokens}} (for /metrics).
 */
json_t *svc_usage(svc *s);

/*
 * svc_budget_check - whether a token budget of id is spent (CTX_ELIMIT,
 * with the message naming it, and *reset_ms when it resets; may be NULL).
 */
int svc_budget_check(svc *s, const svc_identity *id, int64_t *reset_ms, ctx_error *err);

/*
 * svc_budgets - every budget's state now (budget_status: used, remaining,
 * reset time per budget and name) as a new JSON array; NULL on error.
 */
json_t *svc_budgets(svc *s);

/* svc_store_path - the store's file, borrowed. */
const char *svc_store_path(const svc *s);

/* The note every answer carries beside retrieved text. */
extern const char svc_untrusted_note[];

#endif
