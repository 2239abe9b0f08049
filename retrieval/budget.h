/*
 * budget.h - token budgets (the config's "budgets"): which ones limit a
 * caller, whether one is spent, and the state of each for `ctxgate usage`,
 * /metrics and /v1/admin/budgets. Windows are UTC hours and days; the
 * counts live in the audit log's file (store_usage_*), written with the
 * audit records, so every replica sharing the data_dir counts as one.
 */
#ifndef CTX_RETRIEVAL_BUDGET_H
#define CTX_RETRIEVAL_BUDGET_H

#include <jansson.h>

#include "../core/config.h"
#include "../core/util.h"
#include "../indexer/pgstore.h"
#include "../indexer/store.h"

#define BUDGET_USER 0
#define BUDGET_AGENT 1

/* budget_spans - the windows counted for kind (BUDGET_USER/AGENT): bit 0
 * an hour, bit 1 a day; 0 when no budget limits that kind. */
unsigned budget_spans(const ctx_config *cfg, int kind);

/* budget_span_ms - the length of span bit i (0: an hour, 1: a day). */
int64_t budget_span_ms(int i);

/*
 * Pending tokens: served but not yet in the file (the audit writer's
 * queue); pending(arg, kind, name) returns them, or NULL for none.
 */
typedef int64_t (*budget_pending_fn)(void *arg, int kind, const char *name);

/*
 * budget_check - is a budget of user or agent (either may be NULL) spent
 * at now (ms)? CTX_OK when not; CTX_ELIMIT with a message naming the
 * budget, what it allows, what was served and when it resets; *reset_ms
 * (may be NULL) receives that time (the latest, when several are spent).
 * log is the audit log (store_audit_open), read only; CTX_ESTORE if it
 * cannot be read.
 */
int budget_check(ctx_store *log, const ctx_config *cfg, const char *user, const char *agent,
                 int64_t now, budget_pending_fn pending, void *parg, int64_t *reset_ms,
                 ctx_error *err);

/*
 * Where the counts are read: the audit log's file (budget_check and
 * budget_status), or the cluster's (pgaudit_usage_get/_scan in cluster
 * mode). Members as store_usage_get and store_usage_scan, self first.
 */
typedef struct budget_counts {
    int (*xGet)(void *self, int kind, const char *name, int64_t span, int64_t start,
                int64_t *tokens, ctx_error *err);
    int (*xScan)(void *self, int64_t span, int64_t start,
                 int (*fn)(void *arg, int kind, const char *name, int64_t tokens), void *arg,
                 ctx_error *err);
    void *self;
} budget_counts;

/* budget_counts_cluster - the cluster's counts on pg (pgaudit.h; borrowed). */
void budget_counts_cluster(pgstore *pg, budget_counts *out);

/* budget_check_in, budget_status_in - budget_check and budget_status over
 * counts (borrowed; NULL: nothing counted yet). */
int budget_check_in(const budget_counts *counts, const ctx_config *cfg, const char *user,
                    const char *agent, int64_t now, budget_pending_fn pending, void *parg,
                    int64_t *reset_ms, ctx_error *err);
int budget_status_in(const budget_counts *counts, const ctx_config *cfg, int64_t now,
                     budget_pending_fn pending, void *parg, json_t **out, ctx_error *err);

/*
 * budget_status - every budget's state at now as a new JSON array: one
 * entry per budget that names a user or an agent, and per name served in
 * the window for a "*" budget; each {"budget": index, "kind", "name",
 * "per", "tokens", "used", "remaining", "resets_at" (ms),
 * "resets_at_iso"}. log may be NULL (no log yet: nothing used).
 */
int budget_status(ctx_store *log, const ctx_config *cfg, int64_t now, budget_pending_fn pending,
                  void *parg, json_t **out, ctx_error *err);

/*
 * budget_prometheus - status (budget_status's array, borrowed) as
 * Prometheus text appended to b: per budget and name the allowance, the
 * tokens used and remaining, and the reset time (Unix seconds).
 */
void budget_prometheus(const json_t *status, ctx_buf *b);

#endif
