/*
 * agent.h - the maintenance agent: runs each source's jobs on their
 * schedules (content sync, permission and group sync, full-refresh
 * pruning), embeds what changed and keeps the index healthy, with a limit
 * on concurrent jobs, retries with backoff, and a record of every job in
 * the store.
 *
 * A job never runs twice at once: in one agent a running job's source is
 * busy, and across processes the sync runner's per-source lock refuses a
 * second runner (the job is then recorded as "busy" and tried again soon).
 *
 * The agent reads no clock and spawns no thread of its own accord: the
 * caller's hooks give the time and run the jobs, so tests drive it with a
 * fake clock; agent_run() is the daemon loop built from the same pieces.
 */
#ifndef CTX_AGENT_AGENT_H
#define CTX_AGENT_AGENT_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/ctx.h"
#include "../core/schedule.h"

typedef enum agent_job_kind {
    AGENT_JOB_SYNC,         /* incremental content sync of one source */
    AGENT_JOB_PERMISSIONS,  /* permission run: ids and ACLs of every stream, prunes what
                               is gone; users and groups read as usual (sync_opts) */
    AGENT_JOB_FULL,         /* full refresh: re-read everything, prune what is gone */
    AGENT_JOB_EMBED,        /* store-wide: vectors for chunks that lack them */
    AGENT_JOB_MAINTAIN,     /* store-wide: ranking statistics, FTS5 merge, WAL checkpoint */
    AGENT_JOB_KINDS
} agent_job_kind;

const char *agent_job_kind_name(agent_job_kind k);

typedef struct agent_job {
    char *source;           /* NULL for store-wide jobs */
    agent_job_kind kind;
    sched_spec spec;
    int64_t next_at;        /* ms; when it is due */
    int64_t last_start;     /* ms; 0 = never ran */
    int attempt;            /* failures in a row */
    int running;
    int last_rc;            /* outcome of the last run */
} agent_job;

typedef struct agent_hooks {
    /* The time in ms since the epoch (tests give a fake one). */
    int64_t (*now)(void *arg);
    /* Run one job to the end, on a thread of the agent; cancel turns
     * non-zero on shutdown. */
    int (*run)(void *arg, const agent_job *job, volatile sig_atomic_t *cancel,
               ctx_error *err);
    /* Record a job's start (returns an id) and end; may be NULL. */
    int64_t (*record_start)(void *arg, const agent_job *job, int64_t now);
    void (*record_end)(void *arg, int64_t id, const agent_job *job, int64_t now, int rc,
                       const char *error);
    void *arg;
} agent_hooks;

typedef struct agent_opts {
    int max_jobs;           /* at once (default 2) */
    int max_retries;        /* retries of a failed job before it waits for its schedule (3) */
    int64_t retry_ms;       /* first retry delay, doubled each time (default 30 s) */
    int64_t jitter_ms;      /* a stable per-job delay in [0, jitter_ms) (default 0) */
} agent_opts;

typedef struct agent agent;

/*
 * agent_new - an agent over the given jobs (copied). Each is due at the
 * schedule's next time after its last_start, or now if it never ran or
 * that time has passed. *out must be agent_free'd.
 */
int agent_new(const agent_job *jobs, size_t njobs, const agent_opts *opts,
              const agent_hooks *hooks, agent **out, ctx_error *err);
void agent_free(agent *a);

/*
 * agent_jobs_from_config - the jobs cfg asks for: per enabled source its
 * sync, permissions and full schedules, and the store-wide embed and
 * maintain jobs. *jobs must be agent_jobs_free'd.
 */
int agent_jobs_from_config(const ctx_config *cfg, agent_job **jobs, size_t *n, ctx_error *err);
void agent_jobs_free(agent_job *jobs, size_t n);

/*
 * agent_tick - start every due job that may start now (each on its own
 * thread), oldest due first. Returns how many started.
 */
int agent_tick(agent *a, int64_t now);

/* agent_next_due - the earliest next_at of the jobs not running; -1 if none. */
int64_t agent_next_due(agent *a);

/*
 * agent_wait - block until a job finishes, agent_stop or agent_wake is
 * called, or real time (CLOCK_REALTIME, ms) reaches until (0 = no limit).
 * Returns the number of jobs still running.
 */
int agent_wait(agent *a, int64_t until);
void agent_wake(agent *a);

/* agent_stop - cancel running jobs and start no more; agent_drain waits for them. */
void agent_stop(agent *a);
void agent_drain(agent *a);

/* agent_job_state - a copy of job i (for status and tests). */
int agent_job_state(agent *a, size_t i, agent_job *out);
size_t agent_job_count(const agent *a);

#endif
