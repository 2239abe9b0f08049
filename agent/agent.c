/*
 * agent.c - the job table, its timing rules and the threads that run jobs
 * (see agent.h). One mutex guards the table; a job's thread takes it only
 * to record that the job ended.
 */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const kind_names[AGENT_JOB_KINDS] = {"sync", "permissions", "full",
                                                        "embed", "maintain"};

const char *agent_job_kind_name(agent_job_kind k)
{
    return k < AGENT_JOB_KINDS ? kind_names[k] : "?";
}

typedef struct agent_slot {
    agent *a;
    size_t job;
    pthread_t thread;
    int joined;
} agent_slot;

struct agent {
    pthread_mutex_t mu;
    pthread_cond_t changed;      /* a job ended, or stop/wake */
    agent_job *jobs;
    size_t njobs;
    agent_slot *slots;           /* one per job: a job runs at most once at a time */
    agent_opts opts;
    agent_hooks hooks;
    int running;
    int stopping;
    volatile sig_atomic_t cancel;
};

/* due - when a job that last started at start is next due. */
static int64_t due_after(const agent *a, const agent_job *j, int64_t start)
{
    char key[256];
    int64_t t = sched_next(&j->spec, start);

    if (t < 0)
        return INT64_MAX; /* a cron expression that never matches */
    snprintf(key, sizeof key, "%s/%s", j->source ? j->source : "", kind_names[j->kind]);
    return t + sched_jitter(key, a->opts.jitter_ms);
}

int agent_new(const agent_job *jobs, size_t njobs, const agent_opts *opts,
              const agent_hooks *hooks, agent **out, ctx_error *err)
{
    agent *a;
    int64_t now;

    *out = NULL;
    if (!hooks || !hooks->now || !hooks->run)
        return ctx_error_set(err, CTX_EINVAL, "agent: the now and run hooks are required");
    if (!(a = ctx_calloc(1, sizeof *a)) || !(a->jobs = ctx_calloc(njobs + 1, sizeof *a->jobs)) ||
        !(a->slots = ctx_calloc(njobs + 1, sizeof *a->slots))) {
        if (a)
            ctx_free(a->jobs);
        ctx_free(a);
        return ctx_error_set(err, CTX_ENOMEM, "agent: out of memory");
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->changed, NULL);
    a->hooks = *hooks;
    a->opts.max_jobs = opts && opts->max_jobs > 0 ? opts->max_jobs : 2;
    a->opts.max_retries = opts && opts->max_retries >= 0 ? opts->max_retries : 3;
    a->opts.retry_ms = opts && opts->retry_ms > 0 ? opts->retry_ms : 30000;
    a->opts.jitter_ms = opts ? opts->jitter_ms : 0;
    now = a->hooks.now(a->hooks.arg);
    a->njobs = njobs;
    for (size_t i = 0; i < njobs; i++) {
        agent_job *j = &a->jobs[i];
        *j = jobs[i];
        j->source = NULL;
        j->running = 0;
        j->attempt = 0;
        if (jobs[i].source && !(j->source = ctx_strdup(jobs[i].source))) {
            a->njobs = i;
            agent_free(a);
            return ctx_error_set(err, CTX_ENOMEM, "agent: out of memory");
        }
        j->next_at = j->last_start ? due_after(a, j, j->last_start) : now;
        if (j->next_at < now)
            j->next_at = now;
        a->slots[i].a = a;
        a->slots[i].job = i;
        a->slots[i].joined = 1;
    }
    *out = a;
    return CTX_OK;
}

void agent_free(agent *a)
{
    if (!a)
        return;
    agent_stop(a);
    agent_drain(a);
    for (size_t i = 0; i < a->njobs; i++)
        ctx_free(a->jobs[i].source);
    ctx_free(a->jobs);
    ctx_free(a->slots);
    pthread_cond_destroy(&a->changed);
    pthread_mutex_destroy(&a->mu);
    ctx_free(a);
}

/* source_busy - another job of the same source is running (mu held). */
static int source_busy(const agent *a, const agent_job *j)
{
    for (size_t i = 0; j->source && i < a->njobs; i++)
        if (a->jobs[i].running && a->jobs[i].source && !strcmp(a->jobs[i].source, j->source))
            return 1;
    return 0;
}

/* finished - the timing rules once job i has ended with rc (mu held). */
static void finished(agent *a, agent_job *j, int rc, int64_t now)
{
    int64_t regular = due_after(a, j, j->last_start);

    j->running = 0;
    j->last_rc = rc;
    a->running--;
    if (rc == CTX_OK || rc == CTX_ECANCELED) {
        j->attempt = 0;
        j->next_at = regular;
    } else if (rc == CTX_EBUSY) {
        /* another process runs it: not a failure, look again soon */
        j->next_at = now + a->opts.retry_ms;
    } else if (rc == CTX_EHELD) {
        /* a sync guard waits for a person: retrying cannot help */
        j->attempt = 0;
        j->next_at = regular;
    } else if (j->attempt < a->opts.max_retries) {
        int64_t delay = a->opts.retry_ms << (j->attempt < 20 ? j->attempt : 20);
        j->attempt++;
        j->next_at = now + delay < regular ? now + delay : regular;
    } else {
        j->attempt = 0;
        j->next_at = regular;
    }
    /* A run longer than its interval does not pile up: once, right away. */
    if (j->next_at < now)
        j->next_at = now;
}

static void *job_thread(void *p)
{
    agent_slot *slot = p;
    agent *a = slot->a;
    agent_job copy;
    ctx_error err;
    int64_t id = 0, end;
    int rc;

    pthread_mutex_lock(&a->mu);
    copy = a->jobs[slot->job];
    pthread_mutex_unlock(&a->mu);

    memset(&err, 0, sizeof err);
    if (a->hooks.record_start)
        id = a->hooks.record_start(a->hooks.arg, &copy, copy.last_start);
    rc = a->hooks.run(a->hooks.arg, &copy, &a->cancel, &err);
    end = a->hooks.now(a->hooks.arg);
    if (rc && !err.text[0])
        ctx_error_set(&err, rc, "failed without a message");
    if (a->hooks.record_end)
        a->hooks.record_end(a->hooks.arg, id, &copy, end, rc, rc ? err.text : NULL);
    if (rc == CTX_EHELD)
        ctx_log(CTX_LOG_WARN, "agent", "%s %s: %s", kind_names[copy.kind],
                copy.source ? copy.source : "store", err.text);
    else if (rc && rc != CTX_EBUSY && rc != CTX_ECANCELED)
        ctx_log(CTX_LOG_WARN, "agent", "%s %s failed (attempt %d): %s",
                kind_names[copy.kind], copy.source ? copy.source : "store", copy.attempt + 1,
                err.text);

    pthread_mutex_lock(&a->mu);
    finished(a, &a->jobs[slot->job], rc, end);
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* reap - join the threads of jobs that have ended (mu held). */
static void reap(agent *a)
{
    for (size_t i = 0; i < a->njobs; i++)
        if (!a->slots[i].joined && !a->jobs[i].running) {
            pthread_join(a->slots[i].thread, NULL);
            a->slots[i].joined = 1;
        }
}

int agent_tick(agent *a, int64_t now)
{
    int started = 0;

    pthread_mutex_lock(&a->mu);
    reap(a);
    while (!a->stopping && a->running < a->opts.max_jobs) {
        agent_job *best = NULL;
        size_t bi = 0;
        for (size_t i = 0; i < a->njobs; i++) {
            agent_job *j = &a->jobs[i];
            if (j->running || j->next_at > now || source_busy(a, j))
                continue;
            if (!best || j->next_at < best->next_at) {
                best = j;
                bi = i;
            }
        }
        if (!best)
            break;
        best->running = 1;
        best->last_start = now;
        a->running++;
        a->slots[bi].joined = 0;
        if (pthread_create(&a->slots[bi].thread, NULL, job_thread, &a->slots[bi])) {
            /* no thread: try again at the next tick */
            best->running = 0;
            a->running--;
            a->slots[bi].joined = 1;
            best->next_at = now + a->opts.retry_ms;
            ctx_log(CTX_LOG_ERROR, "agent", "cannot start a thread: %s", strerror(errno));
            break;
        }
        started++;
    }
    pthread_mutex_unlock(&a->mu);
    return started;
}

int64_t agent_next_due(agent *a)
{
    int64_t t = -1;

    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->njobs; i++)
        if (!a->jobs[i].running && (t < 0 || a->jobs[i].next_at < t))
            t = a->jobs[i].next_at;
    pthread_mutex_unlock(&a->mu);
    return t;
}

int agent_wait(agent *a, int64_t until)
{
    int n;

    pthread_mutex_lock(&a->mu);
    if (until > 0) {
        struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
        pthread_cond_timedwait(&a->changed, &a->mu, &ts);
    } else if (a->running) {
        pthread_cond_wait(&a->changed, &a->mu);
    }
    reap(a);
    n = a->running;
    pthread_mutex_unlock(&a->mu);
    return n;
}

void agent_wake(agent *a)
{
    pthread_mutex_lock(&a->mu);
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->mu);
}

void agent_stop(agent *a)
{
    pthread_mutex_lock(&a->mu);
    a->stopping = 1;
    a->cancel = 1;
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->mu);
}

void agent_drain(agent *a)
{
    pthread_mutex_lock(&a->mu);
    while (a->running)
        pthread_cond_wait(&a->changed, &a->mu);
    reap(a);
    pthread_mutex_unlock(&a->mu);
}

size_t agent_job_count(const agent *a) { return a->njobs; }

int agent_job_state(agent *a, size_t i, agent_job *out)
{
    if (i >= a->njobs)
        return CTX_ENOTFOUND;
    pthread_mutex_lock(&a->mu);
    *out = a->jobs[i];
    pthread_mutex_unlock(&a->mu);
    return CTX_OK;
}
