/*
 * testutil.h - helpers shared by the test binaries: temp dirs, writing
 * files, opening a store and syncing a source described by JSON.
 */
#ifndef CTX_TESTS_TESTUTIL_H
#define CTX_TESTS_TESTUTIL_H

#include <stdint.h>
#include <sys/types.h>

#include "agent/sync.h"
#include "core/config.h"
#include "indexer/store.h"

/* tu_tmpdir - a new directory under /tmp; returns a static-lifetime copy. */
char *tu_tmpdir(const char *tag);
void tu_rmrf(const char *path);
/* tu_write - write text to dir/rel, creating parent dirs. */
void tu_write(const char *dir, const char *rel, const char *text);
/* tu_store - open (create) dir/ctxgate.db; aborts the test on failure. */
ctx_store *tu_store(const char *dir);
/*
 * tu_sync - parse a config whose "sources" is [source_json] and run one sync
 * of it; returns the rc, stats and err filled. full: 0 incremental, 1 full,
 * TU_PERMISSIONS a permission run (sync --permissions).
 */
#define TU_PERMISSIONS 2
int tu_sync(ctx_store *st, const char *source_json, int full, store_run_stats *stats,
            ctx_error *err);
/*
 * tu_ingest_init - *ic ready to ingest into st for source (epoch 1, chunks
 * of 256 tokens), counting into *stats (zeroed). Both borrowed.
 */
struct ingest_ctx;
struct search_result;
void tu_ingest_init(struct ingest_ctx *ic, ctx_store *st, int64_t source, store_run_stats *stats);
/*
 * tu_source_with_user - source "s" in st with user (a principal name such
 * as "user:ann@t.test") declared in it and committed; *ic ready to ingest
 * into it as tu_ingest_init leaves it. Returns the source id.
 */
int64_t tu_source_with_user(ctx_store *st, const char *user, struct ingest_ctx *ic,
                            store_run_stats *stats);
/* tu_text - the text result of a one-value SQL query; new (free it), "" for NULL. */
char *tu_text(ctx_store *st, const char *sql);
/* tu_count - the integer result of a one-value SQL query. */
int64_t tu_count(ctx_store *st, const char *sql);
/* tu_search_titles - "title1|title2|..." of what user finds (k=50), new. */
char *tu_search_titles(ctx_store *st, const char *user, const char *query);
/* tu_sees - 1 when title is among what user finds for query. */
int tu_sees(ctx_store *st, const char *user, const char *query, const char *title);
/* tu_build_dir - where the binaries under test were built (env CTX_BUILD). */
const char *tu_build_dir(void);
/*
 * tu_cli - run `ctxgate --config DIR/ctxgate.json ARGS` (the binary under
 * test): its stdout, and its stderr too when with_stderr, new; *status is
 * pclose's.
 */
char *tu_cli(const char *dir, const char *args, int with_stderr, int *status);

/*
 * tests/embed_server.py, the local OpenAI-compatible embeddings server:
 * tu_embed_server starts it (vectors of dim, "stall" steps of stall_s
 * seconds), sets *port and returns its pid (SIGTERM and waitpid it);
 * tu_http POSTs body to its path (GET when body is NULL) and returns the
 * reply (new); tu_embed_script sets its next answers (a JSON list).
 */
pid_t tu_embed_server(int dim, const char *stall_s, int *port);
char *tu_http(int port, const char *path, const char *body);
void tu_embed_script(int port, const char *json_list);

/* A reply to tu_call: the status, the body and the headers tests look at. */
typedef struct tu_reply {
    long status;
    char *body;                     /* new; tu_reply_free */
    char retry_after[32], www_auth[512], location[512], content_type[128], csp[512];
} tu_reply;

/*
 * tu_call - one HTTP request to 127.0.0.1:port: method and path, a Bearer
 * token (NULL: none), a body (NULL: none) and more request headers (a
 * NULL-ended list, or NULL); "Content-Type: application/json" unless they
 * name one. A request that cannot be made at all aborts the test.
 */
tu_reply tu_call(int port, const char *method, const char *path, const char *token,
                 const char *body, const char *const *headers);
void tu_reply_free(tu_reply *r);

/*
 * tu_jwt - a development token (new): HS256 with secret over {"sub": user,
 * "act": {"sub": acting} (when not NULL), "iss", "aud", "exp": now + ttl}.
 */
char *tu_jwt(const char *secret, const char *iss, const char *aud, const char *user,
             const char *acting, long ttl);

/*
 * tu_serve - start `ctxgate serve ARGS` in dir (its ctxgate.json) with env
 * (e.g. "A=1 B=2") in front, stderr to dir/serve.log; *port is the port it
 * says it serves on (0 when it did not say so within 30 s). SIGTERM and
 * waitpid the pid it returns.
 */
pid_t tu_serve(const char *dir, const char *env, const char *args, int *port);

/* tu_search_answer - every field of r, each score to the bit, as text (new). */
char *tu_search_answer(const struct search_result *r);

#endif
