/*
 * jobs.h - what the maintenance agent's jobs do, and the daemon loop that
 * runs them (`ctxgate agent`, and inside `ctxgate serve`).
 */
#ifndef CTX_AGENT_JOBS_H
#define CTX_AGENT_JOBS_H

#include <signal.h>

#include "../core/config.h"
#include "../indexer/embed.h"
#include "../indexer/lsa.h"
#include "../indexer/store.h"
#include "../indexer/vindex.h"
#include "agent.h"

/* embed_cfg_from - the embedder settings of a config (strings borrowed). */
void embed_cfg_from(const ctx_config *cfg, embed_cfg *ec);

/*
 * embed_cfg_query_from - the settings a search's query is embedded with:
 * the config's endpoint, embeddings.query_timeout_ms as the whole time
 * limit, no retries and one request (strings borrowed). A search waits
 * for its query; the sync job's patience would stall it.
 */
void embed_cfg_query_from(const ctx_config *cfg, embed_cfg *ec);

typedef struct embed_job_stats {
    embed_run_stats run;
    const char *model;        /* the provider's model (valid until the next call) */
    vindex_update_stats index;    /* what the active model's index files took; 0s if none */
    int trained;              /* lsa: a new model was trained (a model switch follows) */
    lsa_train_stats train;    /* lsa: what the training read and took, when trained */
} embed_job_stats;

/*
 * jobs_embed - work the embedding queue off (max_batches, 0 = all), then
 * bring the active model's vector index files up to date (vindex_update:
 * nothing written when nothing changed, else a delta). One embed job at a
 * time per data_dir: it holds "<data_dir>/embed.lock" throughout, waiting
 * for it up to wait_ms (0: CTX_EBUSY at once if another process or thread
 * runs one; < 0: until *cancel), so two agents, or an agent and `ctxgate
 * embed`, never embed the same chunks or write the same files at once.
 */
int jobs_embed(const ctx_config *cfg, ctx_store *st, int max_batches, int wait_ms,
               volatile sig_atomic_t *cancel, embed_job_stats *out, ctx_error *err);

/*
 * jobs_maintain - index upkeep: ranking statistics rebuilt, FTS5 segments
 * merged, vector index files of retired models deleted and their
 * tombstones pruned, the history and audit log pruned (jobs_prune), the
 * WAL checkpointed, PRAGMA optimize.
 */
int jobs_maintain(const ctx_config *cfg, ctx_store *st, ctx_error *err);

typedef struct prune_stats {
    int64_t audit;            /* audit records deleted */
    int64_t pages;            /* audit file pages given back */
    int64_t runs, jobs;       /* sync_runs and agent_jobs rows deleted */
    int64_t windows;          /* token counts of budget windows long over */
} prune_stats;

/*
 * jobs_prune - the maintain job's pruning, as of now (ms): the sync_runs
 * and agent_jobs history to agent.history_keep / history_retain, and the
 * audit log of the config's store to audit.retain, its freed pages given
 * back, and the token counts of budget windows over for a day. *out
 * (may be NULL) receives the counts.
 */
int jobs_prune(const ctx_config *cfg, ctx_store *st, int64_t now, prune_stats *out,
               ctx_error *err);

/*
 * jobs_principal_streams - the streams a permission run of src reads as
 * usual (users, groups): schedule.permission_streams, or "principals",
 * "users" and "groups". Up to max into out (borrowed from src or static);
 * returns how many.
 */
size_t jobs_principal_streams(const ctx_source_cfg *src, const char **out, size_t max);

typedef struct agent_daemon_opts {
    int once;                          /* run what is due now, wait for it, return */
    volatile sig_atomic_t *stop;       /* SIGTERM/SIGINT: stop taking jobs, finish, return */
    volatile sig_atomic_t *reload;     /* SIGHUP: read the config file again */
} agent_daemon_opts;

/*
 * agent_daemon - run the jobs config_path asks for until *stop. A config
 * that fails to reload is reported and the old one kept.
 */
int agent_daemon(const char *config_path, const agent_daemon_opts *opts, ctx_error *err);

#endif
