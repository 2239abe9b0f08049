/*
 * sync_pipe.c - the sync runner's bounded FIFO and its applier thread (see
 * sync_pipe.h).
 */
#include "sync_pipe.h"

#include <signal.h>
#include <string.h>
#include <time.h>

#include "../core/ctx.h"

/*
 * The applier is woken when this many messages wait (or the queue is half
 * full, or someone waits for it), not at every push: a wake-up costs the
 * pushing thread a system call. Messages never wait longer than LINGER_MS.
 */
#define WAKE_BATCH 32
#define LINGER_MS 20

static int get_failed(sync_pipe *p)
{
    return __atomic_load_n(&p->failed, __ATOMIC_ACQUIRE);
}

/* set_failed - with p->mu held: the first error stays. */
static void set_failed(sync_pipe *p, int rc)
{
    if (rc && !p->failed)
        __atomic_store_n(&p->failed, rc, __ATOMIC_RELEASE);
}

static void *applier(void *arg)
{
    sync_pipe *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        sync_pipe_node *m;
        int rc = 0, skip;

        if (!p->head) {
            struct timespec until;
            if (p->closing)
                break;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += LINGER_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            p->applier_waits = 1;
            p->applier_naps++;
            p->applier_wait_ns -= ctx_mono_ns();
            pthread_cond_timedwait(&p->more, &p->mu, &until);
            p->applier_wait_ns += ctx_mono_ns();
            p->applier_waits = 0;
            continue;
        }
        m = p->head;
        if (!(p->head = m->next))
            p->tail = NULL;
        p->nmsgs--;
        p->nbytes -= m->bytes;
        p->busy = 1;
        skip = p->failed != 0;
        /* Half empty before the pusher goes on: it is woken once per half
         * queue, not once per message. */
        if (p->pusher_waits && p->nmsgs <= p->max_msgs / 2 && p->nbytes <= p->max_bytes / 2)
            pthread_cond_signal(&p->room);
        pthread_mutex_unlock(&p->mu);

        if (!skip)
            rc = p->apply(p->arg, m);
        p->free_msg(m);

        pthread_mutex_lock(&p->mu);
        p->busy = 0;
        if (rc && !p->failed) {
            set_failed(p, rc);
            pthread_cond_signal(&p->room);
        }
        if (!p->head && p->barrier_waits)
            pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void sync_pipe_start(sync_pipe *p, int threaded, size_t max_msgs, size_t max_bytes,
                    sync_pipe_apply_fn apply, sync_pipe_free_fn free_msg, void *arg)
{
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;

    memset(p, 0, sizeof *p);
    p->apply = apply;
    p->free_msg = free_msg;
    p->arg = arg;
    p->max_msgs = max_msgs ? max_msgs : SYNC_PIPE_MAX_MSGS;
    p->max_bytes = max_bytes ? max_bytes : SYNC_PIPE_MAX_BYTES;
    if (!threaded || pthread_condattr_init(&ca))
        return;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_mutex_init(&p->mu, NULL);
    if (!rc && (rc = pthread_cond_init(&p->more, &ca)))
        pthread_mutex_destroy(&p->mu);
    pthread_condattr_destroy(&ca);
    if (rc)
        return;
    pthread_cond_init(&p->room, NULL);
    pthread_cond_init(&p->idle, NULL);
    /* Signals stay with the threads that were there: a handler that sets
     * a flag (SIGTERM, SIGINT) runs where the caller expects it. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&p->thread, NULL, applier, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        ctx_log(CTX_LOG_DEBUG, "sync", "no applier thread (%s): messages are applied as"
                " they come", strerror(rc));
        pthread_cond_destroy(&p->idle);
        pthread_cond_destroy(&p->room);
        pthread_cond_destroy(&p->more);
        pthread_mutex_destroy(&p->mu);
        return;
    }
    pthread_setname_np(p->thread, "ctxgate-apply");
    p->threaded = 1;
}

int sync_pipe_push(sync_pipe *p, sync_pipe_node *msg)
{
    size_t wake;
    int rc;

    msg->next = NULL;
    if (!p->threaded) {
        if ((rc = p->failed) || (rc = p->apply(p->arg, msg)))
            set_failed(p, rc);
        p->free_msg(msg);
        return p->failed;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->failed && p->head &&
           (p->nmsgs >= p->max_msgs || p->nbytes + msg->bytes > p->max_bytes)) {
        if (p->applier_waits)
            pthread_cond_signal(&p->more);
        p->pusher_waits = 1;
        p->pusher_naps++;
        p->pusher_wait_ns -= ctx_mono_ns();
        pthread_cond_wait(&p->room, &p->mu);
        p->pusher_wait_ns += ctx_mono_ns();
        p->pusher_waits = 0;
    }
    if ((rc = p->failed)) {
        pthread_mutex_unlock(&p->mu);
        p->free_msg(msg);
        return rc;
    }
    if (p->tail)
        p->tail->next = msg;
    else
        p->head = msg;
    p->tail = msg;
    p->pushed++;
    p->nmsgs++;
    p->nbytes += msg->bytes;
    wake = p->max_msgs < WAKE_BATCH ? p->max_msgs : WAKE_BATCH;
    if (p->applier_waits && (p->nmsgs >= wake || p->nbytes >= p->max_bytes / 2))
        pthread_cond_signal(&p->more);
    pthread_mutex_unlock(&p->mu);
    return CTX_OK;
}

int sync_pipe_drain(sync_pipe *p)
{
    int rc;

    if (!p->threaded)
        return p->failed;
    pthread_mutex_lock(&p->mu);
    p->barrier_waits++;
    if (p->applier_waits)
        pthread_cond_signal(&p->more);
    while (p->head || p->busy)
        pthread_cond_wait(&p->idle, &p->mu);
    p->barrier_waits--;
    rc = p->failed;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int sync_pipe_backlog(sync_pipe *p)
{
    int behind;

    if (!p->threaded)
        return 0;
    pthread_mutex_lock(&p->mu);
    behind = p->nmsgs >= p->max_msgs / 4 || p->nbytes >= p->max_bytes / 4;
    pthread_mutex_unlock(&p->mu);
    return behind;
}

int sync_pipe_failed(sync_pipe *p)
{
    return get_failed(p);
}

int sync_pipe_fail(sync_pipe *p, int rc)
{
    if (!p->threaded) {
        set_failed(p, rc);
        return p->failed;
    }
    pthread_mutex_lock(&p->mu);
    set_failed(p, rc);
    rc = p->failed;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int sync_pipe_finish(sync_pipe *p)
{
    if (!p->threaded)
        return p->failed;
    pthread_mutex_lock(&p->mu);
    p->closing = 1;
    pthread_cond_signal(&p->more);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    p->threaded = 0;
    ctx_log(CTX_LOG_DEBUG, "sync", "%zu messages; the applier waited for them %zu times"
            " (%.2f s), the connector for room %zu times (%.2f s)", p->pushed,
            p->applier_naps, (double)p->applier_wait_ns / 1e9, p->pusher_naps,
            (double)p->pusher_wait_ns / 1e9);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->room);
    pthread_cond_destroy(&p->more);
    pthread_mutex_destroy(&p->mu);
    return p->failed;
}
