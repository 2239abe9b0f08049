/*
 * cluster.h - `ctxgate agent` in cluster mode: a worker that claims due
 * jobs from PostgreSQL's schedule (pgstore.h), runs each under a lease it
 * renews, and records the outcome, so any number of workers on any number
 * of machines run each job once per schedule (docs/cluster.md).
 */
#ifndef CTX_AGENT_CLUSTER_H
#define CTX_AGENT_CLUSTER_H

#include "../core/config.h"
#include "jobs.h"

/*
 * cluster_daemon - work cfg's source jobs (sync, permissions, full) off the
 * cluster schedule until *opts->stop (with opts->once: until nothing is
 * due). One job at a time per worker; run more workers for more at once.
 * The store-wide embed and maintain jobs are not run in cluster mode. A
 * job whose lease this worker loses (it could not renew in time) is
 * canceled; on stop the running job is canceled and its lease freed, so
 * another worker takes it at once and resumes from its last checkpoint.
 * cfg is borrowed. SIGHUP (opts->reload) is not yet honoured here.
 */
int cluster_daemon(const ctx_config *cfg, const agent_daemon_opts *opts, ctx_error *err);

#endif
