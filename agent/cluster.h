/*
 * cluster.h - `ctxgate agent` in cluster mode: a worker that claims due
 * jobs from PostgreSQL's schedule (pgstore.h), runs each under a lease it
 * renews, and records the outcome, so any number of workers on any number
 * of machines run each job once per schedule (docs/cluster.md).
 */
#ifndef CTX_AGENT_CLUSTER_H
#define CTX_AGENT_CLUSTER_H

#include "../core/config.h"
#include "../indexer/pgvectors.h"
#include "jobs.h"

/*
 * cluster_daemon - work cfg's source jobs (sync, permissions, full) off the
 * cluster schedule until *opts->stop (with opts->once: until nothing is
 * due). One job at a time per worker; run more workers for more at once.
 * The embed job is the cluster's (cluster_embed), under source "*"; the
 * maintain job is not run in cluster mode. A
 * job whose lease this worker loses (it could not renew in time) is
 * canceled; on stop the running job is canceled and its lease freed, so
 * another worker takes it at once and resumes from its last checkpoint.
 * cfg is borrowed. SIGHUP (opts->reload) is not yet honoured here.
 */
int cluster_daemon(const ctx_config *cfg, const agent_daemon_opts *opts, ctx_error *err);

/*
 * cluster_embed - one run of the cluster's embed job (cluster_embed.c): the
 * vectors of cfg's embedder for every document PostgreSQL holds, chunked
 * with cfg's chunk settings, written to ctxgate.chunk_vectors for the
 * replicas (pgvectors.h). Its own connection and embedder. s may be NULL.
 */
int cluster_embed(const ctx_config *cfg, volatile sig_atomic_t *cancel, pgvec_stats *s,
                  ctx_error *err);

#endif
