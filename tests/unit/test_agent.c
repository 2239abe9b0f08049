/*
 * test_agent.c - the maintenance agent's timing rules on a fake clock:
 * schedules, the limit on concurrent jobs, one job per source at a time,
 * retries with backoff, "busy" from another process, shutdown.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "agent/agent.h"

#define MIN 60000LL

typedef struct call {
    char source[16];
    agent_job_kind kind;
    int64_t at;
} call;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t now;
    call calls[512];
    int ncalls;
    int fail_left;          /* the next this-many runs fail */
    int fail_rc;
    int hold;               /* runs block while set */
    int inside;             /* runs in progress */
    int max_inside;
} F = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static int64_t fake_now(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&F.mu);
    int64_t t = F.now;
    pthread_mutex_unlock(&F.mu);
    return t;
}

static int fake_run(void *arg, const agent_job *job, volatile sig_atomic_t *cancel,
                    ctx_error *err)
{
    int rc = CTX_OK;
    (void)arg;
    pthread_mutex_lock(&F.mu);
    call *c = &F.calls[F.ncalls++];
    snprintf(c->source, sizeof c->source, "%s", job->source ? job->source : "");
    c->kind = job->kind;
    c->at = F.now;
    if (++F.inside > F.max_inside)
        F.max_inside = F.inside;
    pthread_cond_broadcast(&F.cv);
    while (F.hold && !*cancel)
        pthread_cond_wait(&F.cv, &F.mu);
    if (F.fail_left > 0) {
        F.fail_left--;
        rc = ctx_error_set(err, F.fail_rc, "the source said no");
    }
    if (*cancel)
        rc = CTX_ECANCELED;
    F.inside--;
    pthread_mutex_unlock(&F.mu);
    return rc;
}

static void set_now(int64_t t)
{
    pthread_mutex_lock(&F.mu);
    F.now = t;
    pthread_mutex_unlock(&F.mu);
}

static void release(void)
{
    pthread_mutex_lock(&F.mu);
    F.hold = 0;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
}

/* wait_inside - until n runs are inside fake_run at once */
static void wait_inside(int n)
{
    pthread_mutex_lock(&F.mu);
    while (F.inside < n)
        pthread_cond_wait(&F.cv, &F.mu);
    pthread_mutex_unlock(&F.mu);
}

static void reset(void)
{
    pthread_mutex_lock(&F.mu);
    F.now = 1000 * MIN;
    F.ncalls = F.fail_left = F.hold = F.inside = F.max_inside = 0;
    F.fail_rc = CTX_ESOURCE;
    pthread_mutex_unlock(&F.mu);
}

static agent_job job(const char *source, agent_job_kind kind, const char *every)
{
    agent_job j;
    ctx_error err;
    memset(&j, 0, sizeof j);
    j.source = (char *)source;
    j.kind = kind;
    cr_assert_eq(sched_parse(every, "test", &j.spec, &err), 0, "%s", err.text);
    return j;
}

static agent *make(const agent_job *jobs, size_t n, int max_jobs)
{
    agent_hooks h = {fake_now, fake_run, NULL, NULL, NULL};
    agent_opts o = {max_jobs, 3, 30000, 0};
    agent *a;
    ctx_error err;
    cr_assert_eq(agent_new(jobs, n, &o, &h, &a, &err), 0, "%s", err.text);
    return a;
}

static int count(const char *source, agent_job_kind kind)
{
    int n = 0;
    for (int i = 0; i < F.ncalls; i++)
        n += !strcmp(F.calls[i].source, source) && F.calls[i].kind == kind;
    return n;
}

/* Step the fake clock minute by minute from now to end, ticking each time. */
static void run_until(agent *a, int64_t end, int64_t step)
{
    for (int64_t t = F.now; t <= end; t += step) {
        set_now(t);
        agent_tick(a, t);
        agent_drain(a);
    }
}

Test(agent, jobs_run_on_their_schedules)
{
    reset();
    agent_job jobs[] = {job("a", AGENT_JOB_SYNC, "10m"), job("b", AGENT_JOB_SYNC, "15m"),
                        job("c", AGENT_JOB_PERMISSIONS, "*/20 * * * *")};
    agent *a = make(jobs, 3, 3);
    int64_t t0 = F.now;

    run_until(a, t0 + 60 * MIN, MIN);
    /* never-run jobs are due at once, then every interval */
    cr_assert_eq(count("a", AGENT_JOB_SYNC), 7);
    cr_assert_eq(count("b", AGENT_JOB_SYNC), 5);
    /* cron: at :00, :20, :40 of each hour (t0 is on the hour), plus at start */
    cr_assert_eq(count("c", AGENT_JOB_PERMISSIONS), 4);
    agent_free(a);
}

Test(agent, a_last_start_is_remembered)
{
    reset();
    agent_job j = job("a", AGENT_JOB_SYNC, "10m");
    j.last_start = F.now - 4 * MIN; /* ran 4 minutes ago, in an earlier life */
    agent *a = make(&j, 1, 2);
    agent_job s;

    cr_assert_eq(agent_tick(a, F.now), 0);
    agent_job_state(a, 0, &s);
    cr_assert_eq(s.next_at, F.now + 6 * MIN);
    agent_free(a);
}

Test(agent, concurrency_is_limited_and_a_source_runs_one_job_at_a_time)
{
    reset();
    agent_job jobs[] = {job("a", AGENT_JOB_SYNC, "10m"), job("a", AGENT_JOB_FULL, "1h"),
                        job("b", AGENT_JOB_SYNC, "10m"), job("c", AGENT_JOB_SYNC, "10m")};
    agent *a = make(jobs, 4, 2);

    F.hold = 1;
    cr_assert_eq(agent_tick(a, F.now), 2); /* limit 2: a (one of its jobs) and b */
    wait_inside(2);
    cr_assert_eq(agent_tick(a, F.now), 0);
    release();
    agent_drain(a);
    cr_assert_eq(agent_tick(a, F.now), 2); /* a's other job and c */
    agent_drain(a);
    cr_assert_eq(agent_tick(a, F.now), 0);
    cr_assert_eq(F.max_inside, 2);
    cr_assert_eq(count("a", AGENT_JOB_SYNC) + count("a", AGENT_JOB_FULL), 2);
    /* a's two jobs never overlapped: both ran, in different ticks */
    for (int i = 0; i < 2; i++)
        cr_assert(strcmp(F.calls[i].source, F.calls[i == 0].source), "same source together");
    agent_free(a);
}

/* A sync a guard held waits for a person: no retries, the next run on its schedule. */
Test(agent, a_held_sync_is_not_retried)
{
    reset();
    agent_job j = job("a", AGENT_JOB_SYNC, "1h");
    agent *a = make(&j, 1, 1);
    int64_t t0 = F.now;
    agent_job s;

    F.fail_left = 10;
    F.fail_rc = CTX_EHELD;
    run_until(a, t0 + 10 * MIN, 1000);
    cr_assert_eq(F.ncalls, 1, "%d runs", F.ncalls);
    agent_job_state(a, 0, &s);
    cr_assert_eq(s.next_at, F.calls[0].at + 60 * MIN);
    cr_assert_eq(s.attempt, 0);
    cr_assert_eq(s.last_rc, CTX_EHELD);
    agent_free(a);
}

Test(agent, failures_retry_with_backoff_then_wait_for_the_schedule)
{
    reset();
    agent_job j = job("a", AGENT_JOB_SYNC, "1h");
    agent *a = make(&j, 1, 1);
    int64_t t0 = F.now;
    agent_job s;

    F.fail_left = 10; /* more than the retries */
    run_until(a, t0 + 10 * MIN, 1000);
    /* t0, then 30 s, 60 s and 120 s later: the first try and 3 retries */
    cr_assert_eq(F.ncalls, 4);
    cr_assert_eq(F.calls[1].at - F.calls[0].at, 30000);
    cr_assert_eq(F.calls[2].at - F.calls[1].at, 60000);
    cr_assert_eq(F.calls[3].at - F.calls[2].at, 120000);
    agent_job_state(a, 0, &s);
    cr_assert_eq(s.next_at, F.calls[3].at + 60 * MIN); /* the schedule from the last start */
    cr_assert_eq(s.attempt, 0);

    /* a success after one failure resets the count */
    F.fail_left = 1;
    run_until(a, F.calls[3].at + 62 * MIN, 1000);
    cr_assert_eq(F.ncalls, 6);
    agent_job_state(a, 0, &s);
    cr_assert_eq(s.attempt, 0);
    cr_assert_eq(s.last_rc, 0);
    agent_free(a);
}

Test(agent, busy_elsewhere_is_not_a_failure)
{
    reset();
    agent_job j = job("a", AGENT_JOB_SYNC, "1h");
    agent *a = make(&j, 1, 1);
    agent_job s;

    F.fail_left = 1;
    F.fail_rc = CTX_EBUSY;
    agent_tick(a, F.now);
    agent_drain(a);
    agent_job_state(a, 0, &s);
    cr_assert_eq(s.attempt, 0);
    cr_assert_eq(s.next_at, F.now + 30000);
    agent_free(a);
}

Test(agent, stop_cancels_running_jobs_and_starts_no_more)
{
    reset();
    agent_job jobs[] = {job("a", AGENT_JOB_SYNC, "10m"), job("b", AGENT_JOB_SYNC, "10m")};
    agent *a = make(jobs, 2, 1);
    agent_job s;

    F.hold = 1;
    cr_assert_eq(agent_tick(a, F.now), 1);
    wait_inside(1);
    agent_stop(a);
    pthread_mutex_lock(&F.mu); /* wake the held run: it sees cancel, not a release */
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
    agent_drain(a);
    cr_assert_eq(agent_tick(a, F.now), 0);
    cr_assert_eq(F.ncalls, 1);
    agent_job_state(a, 0, &s);
    cr_assert_eq(s.last_rc, CTX_ECANCELED);
    agent_free(a);
}
