/*
 * sync_pipe.h - the sync runner's bounded FIFO between the thread that
 * reads a connector and the one thread that applies its messages to the
 * store, in the order they were sent. It knows nothing of the messages:
 * each begins with a sync_pipe_node, and the pipe hands them to its apply
 * function one by one.
 */
#ifndef CTX_AGENT_SYNC_PIPE_H
#define CTX_AGENT_SYNC_PIPE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* The first member of every message; the pipe's own. */
typedef struct sync_pipe_node {
    struct sync_pipe_node *next;
    size_t bytes;    /* what the message holds, counted against max_bytes */
} sync_pipe_node;

/*
 * apply: one message, on the applier thread; returns 0 or the error that
 * stops the pipe (the rest is then freed unapplied). free_msg: frees a
 * message, applied or not, on whichever thread has it last.
 */
typedef int (*sync_pipe_apply_fn)(void *arg, sync_pipe_node *msg);
typedef void (*sync_pipe_free_fn)(sync_pipe_node *msg);

typedef struct sync_pipe {
    sync_pipe_apply_fn apply;
    sync_pipe_free_fn free_msg;
    void *arg;
    int threaded;                   /* 0: push applies on the caller's thread */
    size_t max_msgs, max_bytes;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t more, room, idle; /* for the applier, the pusher, a barrier */
    sync_pipe_node *head, *tail;
    size_t nmsgs, nbytes;
    int busy;                       /* the applier holds a message */
    int closing, pusher_waits, applier_waits, barrier_waits;
    int failed;                     /* the first error; read without the lock too */
    /* what waited on what (sync_pipe_finish logs them at debug level) */
    size_t pushed, applier_naps, pusher_naps;
    uint64_t applier_wait_ns, pusher_wait_ns;
} sync_pipe;

#define SYNC_PIPE_MAX_MSGS 1024             /* default bound, in messages */
#define SYNC_PIPE_MAX_BYTES (16u << 20)     /* default bound, in bytes */

/*
 * sync_pipe_start - a pipe whose applier thread calls apply(arg, msg) for
 * each message pushed, in order. max_msgs and max_bytes bound what is
 * queued (0: the defaults above); a message bigger than max_bytes alone
 * still goes, by itself. threaded 0 (or a thread that cannot be started)
 * makes a pipe that applies each message inside sync_pipe_push. The
 * applier thread blocks every signal. Every started pipe must be
 * sync_pipe_finish'ed.
 */
void sync_pipe_start(sync_pipe *p, int threaded, size_t max_msgs, size_t max_bytes,
                    sync_pipe_apply_fn apply, sync_pipe_free_fn free_msg, void *arg);

/*
 * sync_pipe_push - queue msg (stolen: freed by the pipe whatever happens),
 * waiting while the queue is full. Returns 0, or the pipe's first error:
 * then msg was freed unapplied, and so will be anything pushed after.
 */
int sync_pipe_push(sync_pipe *p, sync_pipe_node *msg);

/*
 * sync_pipe_drain - a barrier: returns when every message pushed before
 * has been applied (or dropped after an error), with the pipe's first
 * error or 0. Until the next push the applier touches nothing, so the
 * caller may use what apply uses (the store).
 */
int sync_pipe_drain(sync_pipe *p);

/*
 * sync_pipe_backlog - 1 when the applier is behind: a quarter of the bound
 * (in messages or in bytes) or more waits in the queue; 0 otherwise, and
 * always for a pipe without a thread. For the pusher: work it could do
 * for the applier is worth doing only then.
 */
int sync_pipe_backlog(sync_pipe *p);

/* sync_pipe_failed - the first error so far (0: none); any thread, no wait. */
int sync_pipe_failed(sync_pipe *p);

/*
 * sync_pipe_fail - record rc as the pipe's error unless it has one (call
 * after sync_pipe_drain, for a failure of the caller's own use of what
 * apply uses); returns the pipe's first error.
 */
int sync_pipe_fail(sync_pipe *p, int rc);

/*
 * sync_pipe_finish - apply what is queued, stop the applier thread and
 * free the pipe; returns its first error or 0. At debug level it logs how
 * long each side waited for the other (what bounds the sync's speed).
 */
int sync_pipe_finish(sync_pipe *p);

#endif
