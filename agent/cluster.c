/*
 * cluster.c - the cluster worker's loop: claim, run under a renewed lease,
 * record (see cluster.h).
 */
#include "cluster.h"

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../core/util.h"
#include "../indexer/pgaudit.h"
#include "../indexer/pgstore.h"
#include "sync.h"

/* The schedule's name for a store-wide job (source names are [A-Za-z0-9_.-]). */
#define ALL_SOURCES "*"

static const char *job_source(const agent_job *job)
{
    return job->source ? job->source : ALL_SOURCES;
}

/* One running job: its thread runs the sync, the loop renews the lease. */
typedef struct cluster_run {
    const ctx_config *cfg;
    const agent_job *job;
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    int done;
    int rc;
    ctx_error err;
    volatile sig_atomic_t cancel;
} cluster_run;

/* run_sync - the job on its own connection (a pgstore is one thread's). */
static void *run_thread(void *arg)
{
    cluster_run *r = arg;
    const ctx_config *cfg = r->cfg;
    const ctx_source_cfg *src =
        r->job->source ? ctx_config_source(cfg, r->job->source) : NULL;
    const char *streams[32];
    pgstore *pg = NULL;
    sync_sink sink;
    sync_opts so;
    int rc;

    memset(&so, 0, sizeof so);
    if (r->job->kind == AGENT_JOB_EMBED) {
        rc = cluster_embed(cfg, &r->cancel, NULL, &r->err);
    } else if (!src) {
        rc = ctx_error_set(&r->err, CTX_ECONFIG, "no source named %s any more",
                           r->job->source);
    } else if (!(rc = pgstore_open(&cfg->cluster, &pg, &r->err))) {
        pgstore_sink(pg, &sink);
        so.full = r->job->kind == AGENT_JOB_FULL;
        so.permissions = r->job->kind == AGENT_JOB_PERMISSIONS;
        if (so.permissions) {
            so.nprincipal_streams = jobs_principal_streams(src, streams, 32);
            so.principal_streams = streams;
        }
        so.cancel = &r->cancel;
        so.chunk_max_tokens = cfg->chunk_max_tokens;
        so.chunk_overlap_tokens = cfg->chunk_overlap_tokens;
        rc = sync_source_to(&sink, src, &so, NULL, &r->err);
    }
    pgstore_close(pg);
    pthread_mutex_lock(&r->mu);
    r->rc = rc;
    r->done = 1;
    pthread_cond_signal(&r->done_cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* wait_done - until the job ends or ms pass; 1 when it has ended. */
static int wait_done(cluster_run *r, int64_t ms)
{
    struct timespec until;
    int done;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    if (!r->done)
        pthread_cond_timedwait(&r->done_cv, &r->mu, &until);
    done = r->done;
    pthread_mutex_unlock(&r->mu);
    return done;
}

static const char *status_of(int rc)
{
    return !rc                   ? "ok"
           : rc == CTX_ECANCELED ? "canceled"
           : rc == CTX_EBUSY     ? "busy"
           : rc == CTX_EHELD     ? "held"
                                 : "failed";
}

/*
 * run_claimed - run job under the lease of claim, renewing it every third
 * of lease_s, and record how it ended. *stop cancels it (its lease is
 * then freed with the job still due).
 */
static int run_claimed(const ctx_config *cfg, pgstore *pg, const agent_job *job,
                       const pgstore_job *claim, int64_t retry_ms, int64_t jitter_ms,
                       volatile sig_atomic_t *stop, ctx_error *err)
{
    cluster_run r;
    pthread_t th;
    char key[300];
    int64_t regular, next, now = 0;
    int mine = 1, rc, stopped = 0;

    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.job = job;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.done_cv, NULL);
    ctx_log(CTX_LOG_INFO, "cluster", "%s %s: claimed (lease %llds)", claim->kind, claim->source,
            (long long)cfg->cluster.lease_s);
    if (pthread_create(&th, NULL, run_thread, &r)) {
        rc = ctx_error_set(err, CTX_EINTERNAL, "cannot start a job thread: %s",
                           strerror(errno));
        pgstore_job_finish(pg, claim, -1, "failed", err->text, &mine, err);
        goto out;
    }
    while (!wait_done(&r, cfg->cluster.lease_s * 1000 / 3)) {
        ctx_error rerr;
        if (*stop && !stopped) {
            stopped = 1;
            r.cancel = 1;
        }
        if (pgstore_job_renew(pg, claim, &mine, &rerr))
            ctx_log(CTX_LOG_WARN, "cluster", "%s %s: lease not renewed: %s", claim->kind,
                    claim->source, rerr.text);
        else if (!mine && !r.cancel) {
            ctx_log(CTX_LOG_WARN, "cluster", "%s %s: another worker holds the lease now;"
                    " stopping this run", claim->kind, claim->source);
            r.cancel = 1;
        }
    }
    pthread_join(th, NULL);
    if (r.rc && r.rc != CTX_ECANCELED && r.rc != CTX_EBUSY)
        ctx_log(CTX_LOG_WARN, "cluster", "%s %s: %s", claim->kind, claim->source, r.err.text);
    /* The next time from the schedule, as the embedded agent sets it (agent.c). */
    snprintf(key, sizeof key, "%s/%s", job_source(job), agent_job_kind_name(job->kind));
    regular = sched_next(&job->spec, claim->started_at);
    regular = regular < 0 ? INT64_MAX : regular + sched_jitter(key, jitter_ms);
    if ((rc = pgstore_now(pg, &now, err)))
        goto out;
    if (stopped && r.rc == CTX_ECANCELED)
        next = -1; /* stopped, not done: due again for the next worker */
    else if (r.rc == CTX_EBUSY || (r.rc && r.rc != CTX_EHELD && r.rc != CTX_ECANCELED))
        next = now + retry_ms < regular ? now + retry_ms : regular;
    else
        next = regular;
    rc = pgstore_job_finish(pg, claim, next, status_of(r.rc), r.rc ? r.err.text : NULL, &mine,
                            err);
    if (!rc && !mine)
        ctx_log(CTX_LOG_WARN, "cluster", "%s %s: ended after its lease passed to another"
                " worker; its outcome is not recorded", claim->kind, claim->source);
out:
    pthread_cond_destroy(&r.done_cv);
    pthread_mutex_destroy(&r.mu);
    return rc;
}

/* sleep_ms - up to ms, waking early on *stop. */
static void sleep_ms(int64_t ms, volatile sig_atomic_t *stop)
{
    for (int64_t t = 0; t < ms && !*stop; t += 100) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
}

/* audit_prune - audit.retain over the cluster's audit log, and budget
 * windows over two days old; 0 when done. */
static int audit_prune(const ctx_config *cfg, pgstore *pg)
{
    int64_t now = ctx_now_ms(), recs = 0, wins = 0;
    ctx_error e;

    if (pgaudit_prune(pg, cfg->audit_retain_ms < 0 ? INT64_MIN : now - cfg->audit_retain_ms,
                      now - 2 * 86400000LL, 2000, &recs, &wins, &e)) {
        ctx_log(CTX_LOG_WARN, "cluster", "%s", e.text);
        return -1;
    }
    if (recs)
        ctx_log(CTX_LOG_INFO, "cluster", "pruned %lld audit records", (long long)recs);
    return 0;
}

int cluster_daemon(const ctx_config *cfg, const agent_daemon_opts *opts, ctx_error *err)
{
    agent_job *jobs = NULL;
    char **keys = NULL;
    size_t n = 0, nk = 0;
    pgstore *pg = NULL;
    sched_spec d;
    int64_t retry_ms = 30000, jitter_ms = 0, prune_at = 0;
    int rc;

    if ((rc = sched_parse(cfg->agent.retry, "agent.retry", &d, err)))
        return rc;
    retry_ms = d.every_ms > 0 ? d.every_ms : retry_ms;
    if (strcmp(cfg->agent.jitter, "0s") && *cfg->agent.jitter) {
        if ((rc = sched_parse(cfg->agent.jitter, "agent.jitter", &d, err)))
            return rc;
        jitter_ms = d.every_ms > 0 ? d.every_ms : 0;
    }
    if ((rc = agent_jobs_from_config(cfg, &jobs, &n, err)))
        return rc;
    if ((rc = pgstore_open(&cfg->cluster, &pg, err)))
        goto done;
    /* A lease under this worker's name (host:pid) is a dead process's
     * that had the same name (a container restarted as pid 1): free it. */
    {
        int64_t freed = 0;
        if ((rc = pgstore_job_release_all(pg, &freed, err)))
            goto done;
    }
    if (!(keys = ctx_calloc(n + 1, sizeof *keys))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const char *kind = agent_job_kind_name(jobs[i].kind);
        char key[300];
        if (!jobs[i].source && jobs[i].kind != AGENT_JOB_EMBED)
            continue; /* maintain: the local index's, not the cluster's */
        if ((rc = pgstore_job_ensure(pg, job_source(&jobs[i]), kind, err)))
            goto done;
        snprintf(key, sizeof key, "%s/%s", job_source(&jobs[i]), kind);
        if (!(keys[nk++] = ctx_strdup(key))) {
            rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
            goto done;
        }
    }
    ctx_log(CTX_LOG_INFO, "cluster", "worker %s: %zu jobs in the cluster schedule",
            pgstore_owner(pg), nk);
    while (!*opts->stop) {
        pgstore_job claim;
        const agent_job *job = NULL;
        ctx_error lerr;
        int got = 0;
        /* A lost connection (a PostgreSQL restart, a failover) is opened
         * again; what it leased runs out and is claimed again. */
        if (!pg) {
            int64_t freed = 0;
            if (pgstore_open(&cfg->cluster, &pg, &lerr)) {
                if (opts->once) {
                    *err = lerr;
                    rc = lerr.code;
                    break;
                }
                ctx_log(CTX_LOG_WARN, "cluster", "%s; trying again in a second", lerr.text);
                sleep_ms(1000, opts->stop);
                continue;
            }
            /* Nothing runs here now: what this worker leased before the
             * connection broke is due again for any worker, at once. */
            if (pgstore_job_release_all(pg, &freed, &lerr))
                ctx_log(CTX_LOG_WARN, "cluster", "%s", lerr.text);
            else if (freed)
                ctx_log(CTX_LOG_INFO, "cluster", "connected again; freed %lld leases of"
                        " this worker", (long long)freed);
        }
        if (pgstore_job_claim(pg, (const char *const *)keys, nk, &claim, &got, &lerr)) {
            ctx_log(CTX_LOG_WARN, "cluster", "%s; connecting again", lerr.text);
            pgstore_close(pg);
            pg = NULL;
            continue;
        }
        if (!got) {
            /* Idle: the cluster's audit retention, at most hourly (pgaudit.h). */
            if (ctx_now_ms() >= prune_at && !audit_prune(cfg, pg))
                prune_at = ctx_now_ms() + 3600000;
            if (opts->once)
                break;
            sleep_ms(1000, opts->stop);
            continue;
        }
        for (size_t i = 0; i < n && !job; i++)
            if ((jobs[i].source || jobs[i].kind == AGENT_JOB_EMBED) &&
                !strcmp(job_source(&jobs[i]), claim.source) &&
                !strcmp(agent_job_kind_name(jobs[i].kind), claim.kind))
                job = &jobs[i];
        if (!job || run_claimed(cfg, pg, job, &claim, retry_ms, jitter_ms, opts->stop, &lerr)) {
            ctx_log(CTX_LOG_WARN, "cluster", "%s %s: %s; connecting again", claim.kind,
                    claim.source, job ? lerr.text : "not a job of this config");
            pgstore_close(pg);
            pg = NULL;
        }
    }
done:
    for (size_t i = 0; i < nk; i++)
        ctx_free(keys[i]);
    ctx_free(keys);
    pgstore_close(pg);
    agent_jobs_free(jobs, n);
    return rc;
}
