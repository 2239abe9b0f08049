/*
 * jobs.c - the maintenance agent's jobs and its daemon loop (see jobs.h).
 * Every job opens its own store connection: jobs run on their own threads,
 * and a SQLite connection here is used by one thread only.
 */
#include "jobs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../core/util.h"
#include "../indexer/vindex.h"
#include "../retrieval/rank.h"
#include "cluster.h"
#include "sync.h"

void embed_cfg_from(const ctx_config *cfg, embed_cfg *ec)
{
    const ctx_embed_cfg *e = &cfg->embeddings;
    memset(ec, 0, sizeof *ec);
    ec->provider = e->provider;
    ec->model = e->model;
    ec->dim = (int)e->dim;
    ec->base_url = e->base_url;
    ec->api_key_env = e->api_key_env;
    ec->batch_size = (int)e->batch_size;
    ec->timeout_ms = (int)e->timeout_ms;
    ec->max_retries = (int)e->max_retries;
    ec->concurrency = (int)e->concurrency;
    ec->retry_base_ms = 500;
    ec->max_retry_after_ms = e->max_retry_after * 1000;
    ec->data_dir = cfg->data_dir;
}

void embed_cfg_query_from(const ctx_config *cfg, embed_cfg *ec)
{
    embed_cfg_from(cfg, ec);
    ec->timeout_ms = cfg->embeddings.query_timeout_ms > 0 ? (int)cfg->embeddings.query_timeout_ms
                                                          : 2000;
    ec->max_retries = 0;
    ec->concurrency = 1;
}

int jobs_embed(const ctx_config *cfg, ctx_store *st, int max_batches, int wait_ms,
               volatile sig_atomic_t *cancel, embed_job_stats *out, ctx_error *err)
{
    static __thread char model[256];
    embed_provider *emb = NULL;
    embed_cfg ec;
    int64_t active, target;
    char lock[4096];
    int rc, fd;

    memset(out, 0, sizeof *out);
    snprintf(lock, sizeof lock, "%s/embed.lock", cfg->data_dir);
    if ((rc = ctx_flock_take(lock, wait_ms, cancel, &fd)))
        return rc == CTX_EBUSY ? ctx_error_set(err, rc, "embed: another process is embedding"
                                               " into %s (lock %s)", cfg->data_dir, lock)
             : rc == CTX_ECANCELED ? ctx_error_set(err, rc, "embed: canceled while waiting"
                                                   " for %s", lock)
                                   : ctx_error_set(err, rc, "embed: cannot lock %s: %s", lock,
                                                   strerror(errno));
    embed_cfg_from(cfg, &ec);
    if (ec.provider && !strcmp(ec.provider, "lsa")) {
        /* The model is derived from the corpus: trained here, in the job, while
         * searches go on with the vectors already served. */
        static __thread char hash[LSA_HASH_LEN + 1];
        lsa_train_opts lo = {ec.dim > 0 ? ec.dim : 384, 2, 0.5, 50000, 3};
        rc = lsa_ensure(st, cfg->data_dir, &lo, LSA_RETRAIN_SHARE, cancel, hash, &out->trained,
                        &out->train, err);
        if (rc == CTX_ENOTFOUND) {
            out->model = "lsa (nothing indexed to train on yet)";
            rc = CTX_OK;
            goto done;
        }
        if (rc)
            goto done;
        ec.model = hash;
    }
    if ((rc = embed_open(&ec, &emb, err)))
        goto done;
    snprintf(model, sizeof model, "%s", embed_model_name(emb));
    out->model = model;
    if ((rc = embed_run(st, emb, max_batches, cancel, &out->run, err)))
        goto done;
    /* The files of the model searches use: a delta of what is new, if anything. */
    if ((rc = store_embed_models(st, &active, &target, err)) || !active)
        goto done;
    rc = vindex_update(st, cfg->data_dir, active, -1, cancel, &out->index, err);
done:
    embed_close(emb);
    ctx_flock_drop(fd);
    return rc;
}

/*
 * write_tx - sql in a transaction that takes the write lock first. A
 * statement that reads before it writes (FTS5's merge, the ANALYZE of
 * PRAGMA optimize) fails at once with "database is locked" when another
 * process commits between its read and its write: SQLite cannot move a
 * reader's snapshot forward, so its busy handler is not asked.
 */
static int write_tx(ctx_store *st, const char *sql, ctx_error *err)
{
    int rc;

    if ((rc = store_begin(st, err)))
        return rc;
    if ((rc = store_exec(st, sql, err)) || (rc = store_commit(st, err)))
        store_rollback(st);
    return rc;
}

int jobs_maintain(const ctx_config *cfg, ctx_store *st, ctx_error *err)
{
    int64_t pruned;
    int rc;

    if ((rc = rank_stats_refresh(store_db(st), 1, err)))
        return rc;
    /* Merge FTS5 segments a bounded amount per run (about 2000 leaf pages):
     * fewer segments, fewer doclists per query term. */
    if ((rc = write_tx(st, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('merge', 2000)",
                       err)))
        return rc;
    if ((rc = vindex_maintain(st, cfg->data_dir, &pruned, err)))
        return rc;
    /* A search connection that has not looked at the log for a day reloads. */
    if ((rc = store_gone_trim(st, ctx_now_ms() - 86400000, &pruned, err)))
        return rc;
    if ((rc = jobs_prune(cfg, st, ctx_now_ms(), NULL, err)))
        return rc;
    if ((rc = store_exec(st, "PRAGMA wal_checkpoint(TRUNCATE)", err)))
        return rc;
    return write_tx(st, "PRAGMA optimize", err);
}

/* Rows a prune batch deletes, and pages an incremental vacuum step frees:
 * each batch is one short write transaction, so the service's audit
 * writer, or a sync, waits a few milliseconds at most. */
#define PRUNE_BATCH 2000
#define RECLAIM_PAGES 512

int jobs_prune(const ctx_config *cfg, ctx_store *st, int64_t now, prune_stats *out,
               ctx_error *err)
{
    char store_path[4096], path[4096];
    prune_stats ps;
    ctx_store *log = NULL;
    int64_t before;
    int rc;

    memset(&ps, 0, sizeof ps);
    before = cfg->agent.history_retain_ms < 0 ? INT64_MIN : now - cfg->agent.history_retain_ms;
    if ((rc = store_history_prune(st, cfg->agent.history_keep, before, PRUNE_BATCH, &ps.runs,
                                  &ps.jobs, err)))
        goto done;
    /* The log beside the config's store: the file the service writes. */
    ctx_config_store_path(cfg, store_path, sizeof store_path);
    if ((rc = store_audit_path(store_path, path, sizeof path, err)))
        goto done;
    if (access(path, F_OK)) /* nothing served yet: no log to prune */
        goto done;
    /* Budget windows end within a day: two days back is past every one. */
    /* In cluster mode the log's records leave it only once shipped: the
     * shipper prunes them (service_ship.c), never this job. */
    if ((rc = store_audit_open(store_path, &log, err)) ||
        (rc = store_usage_prune(log, now - 2 * 86400000LL, &ps.windows, err)) ||
        cfg->audit_retain_ms < 0 || (cfg->cluster.conninfo && *cfg->cluster.conninfo) ||
        (rc = store_audit_prune(log, now - cfg->audit_retain_ms, PRUNE_BATCH, &ps.audit, err)))
        goto done;
    rc = store_audit_reclaim(log, RECLAIM_PAGES, &ps.pages, err);
done:
    store_close(log);
    if (!rc && (ps.runs || ps.jobs || ps.audit))
        ctx_log(CTX_LOG_INFO, "maintain", "pruned %lld audit records (%lld pages freed),"
                " %lld sync runs, %lld job runs", (long long)ps.audit, (long long)ps.pages,
                (long long)ps.runs, (long long)ps.jobs);
    if (out)
        *out = ps;
    return rc;
}

/* ---- jobs from the config ---- */

static const char *const default_perm_streams[] = {"principals", "users", "groups"};

static int add_job(agent_job **jobs, size_t *n, const char *source, agent_job_kind kind,
                   const char *expr, const char *what, ctx_error *err)
{
    agent_job *v, *j;
    int rc;

    if (!expr || !*expr)
        return CTX_OK; /* "" turns a job off */
    if (!(v = ctx_realloc(*jobs, (*n + 1) * sizeof *v)))
        return ctx_error_set(err, CTX_ENOMEM, "agent: out of memory");
    *jobs = v;
    j = &v[*n];
    memset(j, 0, sizeof *j);
    j->kind = kind;
    if ((rc = sched_parse(expr, what, &j->spec, err)))
        return rc;
    if (source && !(j->source = ctx_strdup(source)))
        return ctx_error_set(err, CTX_ENOMEM, "agent: out of memory");
    (*n)++;
    return CTX_OK;
}

int agent_jobs_from_config(const ctx_config *cfg, agent_job **jobs, size_t *n, ctx_error *err)
{
    char what[96];
    int rc = CTX_OK;

    *jobs = NULL;
    *n = 0;
    for (size_t i = 0; !rc && i < cfg->nsources; i++) {
        const ctx_source_cfg *s = &cfg->sources[i];
        if (!s->enabled)
            continue;
        snprintf(what, sizeof what, "sources[%zu].schedule.sync", i);
        rc = add_job(jobs, n, s->name, AGENT_JOB_SYNC, s->schedule.sync, what, err);
        snprintf(what, sizeof what, "sources[%zu].schedule.permissions", i);
        if (!rc)
            rc = add_job(jobs, n, s->name, AGENT_JOB_PERMISSIONS, s->schedule.permissions, what,
                         err);
        snprintf(what, sizeof what, "sources[%zu].schedule.full", i);
        if (!rc)
            rc = add_job(jobs, n, s->name, AGENT_JOB_FULL, s->schedule.full, what, err);
    }
    if (!rc)
        rc = add_job(jobs, n, NULL, AGENT_JOB_EMBED, cfg->agent.embed, "agent.embed", err);
    if (!rc)
        rc = add_job(jobs, n, NULL, AGENT_JOB_MAINTAIN, cfg->agent.maintain, "agent.maintain",
                     err);
    if (rc) {
        agent_jobs_free(*jobs, *n);
        *jobs = NULL;
        *n = 0;
    }
    return rc;
}

void agent_jobs_free(agent_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ctx_free(jobs[i].source);
    ctx_free(jobs);
}

/* ---- the daemon's hooks ---- */

typedef struct daemon_env {
    const ctx_config *cfg;
    char store_path[4096];
    char lock_dir[4096];
} daemon_env;

static int64_t real_now(void *arg)
{
    struct timeval tv;
    (void)arg;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

size_t jobs_principal_streams(const ctx_source_cfg *src, const char **out, size_t max)
{
    const ctx_strlist *l = &src->schedule.permission_streams;
    size_t n = 0;

    if (!l->n)
        for (size_t i = 0; i < 3 && n < max; i++)
            out[n++] = default_perm_streams[i];
    for (size_t i = 0; i < l->n && n < max; i++)
        out[n++] = l->v[i];
    return n;
}

static int daemon_run(void *arg, const agent_job *job, volatile sig_atomic_t *cancel,
                      ctx_error *err)
{
    daemon_env *env = arg;
    const ctx_config *cfg = env->cfg;
    ctx_store *st = NULL;
    int rc;

    if ((rc = store_open(env->store_path, 0, &st, err)) ||
        (rc = store_trust_apply(st, cfg, err))) {
        store_close(st);
        return rc;
    }
    switch (job->kind) {
    case AGENT_JOB_SYNC:
    case AGENT_JOB_FULL:
    case AGENT_JOB_PERMISSIONS: {
        const ctx_source_cfg *src = ctx_config_source(cfg, job->source);
        const char *streams[32];
        sync_opts so;
        if (!src) {
            rc = ctx_error_set(err, CTX_ECONFIG, "no source named %s any more", job->source);
            break;
        }
        memset(&so, 0, sizeof so);
        so.full = job->kind == AGENT_JOB_FULL;
        so.lock_dir = env->lock_dir;
        so.cancel = cancel;
        so.chunk_max_tokens = cfg->chunk_max_tokens;
        so.chunk_overlap_tokens = cfg->chunk_overlap_tokens;
        if (job->kind == AGENT_JOB_PERMISSIONS) {
            /* ids and ACLs of every stream, users and groups as usual */
            so.permissions = 1;
            so.nprincipal_streams = jobs_principal_streams(src, streams, 32);
            so.principal_streams = streams;
        }
        rc = sync_source(st, src, &so, NULL, err);
        break;
    }
    case AGENT_JOB_EMBED: {
        embed_job_stats es;
        /* another process embedding: "busy", tried again after agent.retry */
        rc = jobs_embed(cfg, st, 0, 0, cancel, &es, err);
        break;
    }
    case AGENT_JOB_MAINTAIN:
        rc = jobs_maintain(cfg, st, err);
        break;
    default:
        rc = ctx_error_set(err, CTX_EINTERNAL, "unknown job kind %d", (int)job->kind);
    }
    store_close(st);
    return rc;
}

static int64_t daemon_record_start(void *arg, const agent_job *job, int64_t now)
{
    daemon_env *env = arg;
    ctx_store *st;
    ctx_error err;
    int64_t id = 0;

    if (store_open(env->store_path, 0, &st, &err) ||
        store_job_start(st, job->source, agent_job_kind_name(job->kind), job->attempt, now, &id,
                        &err))
        ctx_log(CTX_LOG_WARN, "agent", "job history: %s", err.text);
    store_close(st);
    return id;
}

static void daemon_record_end(void *arg, int64_t id, const agent_job *job, int64_t now, int rc,
                              const char *error)
{
    daemon_env *env = arg;
    ctx_store *st;
    ctx_error err;
    const char *status = rc == CTX_OK          ? "ok"
                         : rc == CTX_EBUSY     ? "busy"
                         : rc == CTX_ECANCELED ? "canceled"
                         : rc == CTX_EHELD     ? "held"
                                               : "failed";
    (void)job;
    if (!id)
        return;
    if (store_open(env->store_path, 0, &st, &err) ||
        store_job_finish(st, id, now, status, error, &err))
        ctx_log(CTX_LOG_WARN, "agent", "job history: %s", err.text);
    store_close(st);
}

/* ---- the loop ---- */

/* start - an agent for cfg, each job due after its last recorded start. */
static int start(daemon_env *env, const ctx_config *cfg, agent **out, ctx_error *err)
{
    agent_hooks hooks = {real_now, daemon_run, daemon_record_start, daemon_record_end, env};
    agent_opts ao;
    agent_job *jobs = NULL;
    sched_spec d;
    ctx_store *st = NULL;
    size_t n = 0;
    int rc;

    memset(&ao, 0, sizeof ao);
    ao.max_jobs = (int)cfg->agent.max_jobs;
    ao.max_retries = (int)cfg->agent.max_retries;
    if ((rc = sched_parse(cfg->agent.retry, "agent.retry", &d, err)) ||
        (ao.retry_ms = d.every_ms) <= 0)
        return rc ? rc : ctx_error_set(err, CTX_ECONFIG, "agent.retry: use an interval, like"
                                       " \"30s\"");
    if (strcmp(cfg->agent.jitter, "0s") && *cfg->agent.jitter) {
        if ((rc = sched_parse(cfg->agent.jitter, "agent.jitter", &d, err)) ||
            (ao.jitter_ms = d.every_ms) <= 0)
            return rc ? rc : ctx_error_set(err, CTX_ECONFIG, "agent.jitter: use an interval,"
                                           " like \"30s\"");
    }
    if ((rc = agent_jobs_from_config(cfg, &jobs, &n, err)))
        return rc;
    env->cfg = cfg;
    ctx_config_store_path(cfg, env->store_path, sizeof env->store_path);
    snprintf(env->lock_dir, sizeof env->lock_dir, "%s/locks", cfg->data_dir);
    if (ctx_mkdir_p(env->lock_dir) < 0) {
        rc = ctx_error_set(err, CTX_EIO, "data_dir: cannot create %s: %s", env->lock_dir,
                           strerror(errno));
        agent_jobs_free(jobs, n);
        return rc;
    }
    if ((rc = store_open(env->store_path, 0, &st, err)))
        goto done;
    for (size_t i = 0; i < n && !rc; i++)
        rc = store_job_last(st, jobs[i].source, agent_job_kind_name(jobs[i].kind),
                            &jobs[i].last_start, err);
    store_close(st);
    if (!rc)
        rc = agent_new(jobs, n, &ao, &hooks, out, err);
done:
    agent_jobs_free(jobs, n);
    return rc;
}

int agent_daemon(const char *config_path, const agent_daemon_opts *opts, ctx_error *err)
{
    ctx_config cfg, next;
    daemon_env env;
    agent *a = NULL;
    int rc;

    memset(&env, 0, sizeof env);
    /* Cluster mode: the jobs come from PostgreSQL's schedule (cluster.h). */
    if (!(rc = ctx_config_load(config_path, &cfg, err)) && *cfg.cluster.conninfo) {
        rc = cluster_daemon(&cfg, opts, err);
        ctx_config_free(&cfg);
        return rc;
    }
    if (rc || (rc = start(&env, &cfg, &a, err))) {
        ctx_config_free(&cfg);
        return rc;
    }
    ctx_log(CTX_LOG_INFO, "agent", "started: %zu jobs, at most %d at once",
            agent_job_count(a), (int)cfg.agent.max_jobs);
    for (;;) {
        int64_t now = real_now(NULL), due;
        if (*opts->stop)
            break;
        if (opts->reload && *opts->reload) {
            ctx_error rerr;
            *opts->reload = 0;
            if (ctx_config_load(config_path, &next, &rerr)) {
                ctx_log(CTX_LOG_ERROR, "agent", "reload refused, keeping the old config: %s",
                        rerr.text);
                ctx_config_free(&next);
            } else {
                /* The running jobs finish under the old config first. */
                agent_free(a);
                a = NULL;
                if (start(&env, &next, &a, &rerr)) {
                    ctx_log(CTX_LOG_ERROR, "agent", "reload refused, keeping the old config:"
                            " %s", rerr.text);
                    ctx_config_free(&next);
                    if ((rc = start(&env, &cfg, &a, err)))
                        break;
                } else {
                    ctx_config_free(&cfg);
                    cfg = next;
                    env.cfg = &cfg;
                    ctx_log(CTX_LOG_INFO, "agent", "config reloaded: %zu jobs",
                            agent_job_count(a));
                }
            }
        }
        agent_tick(a, now);
        if (opts->once) {
            agent_drain(a);
            break;
        }
        /* Sleep until the next job is due, a job ends, or a second passes
         * (signals are seen within that second). */
        due = agent_next_due(a);
        now = real_now(NULL);
        agent_wait(a, due < 0 || due > now + 1000 ? now + 1000 : due);
    }
    if (a) {
        agent_stop(a);
        agent_drain(a);
        agent_free(a);
    }
    ctx_config_free(&cfg);
    return rc;
}
