/*
 * cli.h - what the command files share with cli/main.c.
 */
#ifndef CTX_CLI_CLI_H
#define CTX_CLI_CLI_H

#include "../core/config.h"
#include "../indexer/embed.h"
#include "../indexer/store.h"
#include "../indexer/vindex.h"
#include "../retrieval/search.h"

/*
 * cli_open - load the config given with --config, make its data dir (unless
 * readonly, which also wants the store to exist), open the store and record
 * the config's source trust in it. cfg must be ctx_config_free'd and *st
 * store_close'd whatever the result.
 */
int cli_open(ctx_config *cfg, ctx_store **st, int readonly, ctx_error *err);

/*
 * cli_open_vectors - the active model's index, caught up, and an embedder
 * of that model for queries (both new: vindex_free, embed_close). No model
 * yet: both NULL, and vector search finds nothing.
 */
int cli_open_vectors(const ctx_config *cfg, ctx_store *st, vindex **vi, embed_provider **emb,
                     ctx_error *err);

/*
 * cli_search_run - the search `ctxgate search` runs: mode "lexical",
 * "vector" or "hybrid" (fused with cfg's weights) for user, with so's k,
 * per_doc (every mode), sources and
 * labels. vi and emb from cli_open_vectors (unused for lexical). *why is
 * NULL when the vector leg was used (or not wanted: lexical), else why
 * not: "disabled" (w_vector 0), "no_index", "lexical_model" (hybrid with
 * the hash embedder: embed_model_lexical), or "timeout" / "embedder_error"
 * (the query could not be embedded within embeddings.query_timeout_ms: the
 * lexical leg answers alone, in vector mode too). All borrowed; *res must
 * be search_result_free'd.
 */
int cli_search_run(const ctx_config *cfg, ctx_store *st, vindex *vi, embed_provider *emb,
                   const char *mode, const char *user, const char *query, const search_opts *so,
                   search_result *res, const char **why, ctx_error *err);

#define CLI_EVAL_USAGE                                                                   \
    "eval --qrels FILE --as USER [--agent A] [--mode lexical|vector|hybrid]\n"           \
    "       [--k N] [--source S] [--readable] [--json] [--compare RUN.json]\n"          \
    "                        ask each question of FILE (TSV question<TAB>ids or JSON\n"  \
    "                        lines) as USER and score the first N distinct documents:\n"\
    "                        found@N, MRR@N, nDCG@N, recall@N (mode default hybrid,\n"   \
    "                        N 10; --source S: ids are S's external ids; --readable:\n" \
    "                        judge only by the relevant documents USER may read;\n"     \
    "                        --compare: against an earlier run's --json output, each\n" \
    "                        question paired, with a 95% interval of the difference)"

/* cli_eval - `ctxgate eval`; 0 when scored, 2 for bad arguments or qrels, else 1. */
int cli_eval(int argc, char **argv);

#define CLI_EXPLAIN_USAGE                                                                \
    "explain --as USER [--agent A] [--json] DOC\n"                                       \
    "                        why USER (through agent A) may or may not read DOC\n"      \
    "                        (its id or SOURCE:EXTERNAL_ID): the principal path and\n"   \
    "                        which source said each edge, the ACL, the grant, the\n"     \
    "                        permissions' age"

/* cli_explain - `ctxgate explain`; the exit status: 0 readable, 3 not, else an error. */
int cli_explain(int argc, char **argv);

#endif
