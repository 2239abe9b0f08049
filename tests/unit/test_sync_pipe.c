/*
 * test_sync_pipe.c - the sync runner's queue to its store thread
 * (agent/sync_pipe.h) on its own: order kept through any bound, the bound
 * held, the first error stops it and frees the rest, a barrier sees
 * everything pushed before it, and the serial pipe does the same.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/sync_pipe.h"
#include "core/ctx.h"

typedef struct msg {
    sync_pipe_node node;
    int seq;
} msg;

typedef struct sink {
    int next;          /* the seq expected next */
    int fail_at;       /* apply fails with CTX_ESTORE at this seq (-1: never) */
    int out_of_order;
    int slow;          /* microseconds each apply takes */
    long live;         /* messages made and not yet freed */
    long max_live;
} sink;

static sink *cur;

static int apply(void *arg, sync_pipe_node *node)
{
    sink *s = arg;
    msg *m = (msg *)node;

    if (m->seq != s->next)
        s->out_of_order++;
    s->next = m->seq + 1;
    if (s->slow)
        usleep((useconds_t)s->slow);
    return m->seq == s->fail_at ? CTX_ESTORE : CTX_OK;
}

static void free_msg(sync_pipe_node *node)
{
    __atomic_sub_fetch(&cur->live, 1, __ATOMIC_RELAXED);
    free(node);
}

static msg *make(int seq, size_t bytes)
{
    msg *m = calloc(1, sizeof *m);
    long live;

    cr_assert(m);
    m->seq = seq;
    m->node.bytes = bytes;
    live = __atomic_add_fetch(&cur->live, 1, __ATOMIC_RELAXED);
    if (live > cur->max_live)
        cur->max_live = live;
    return m;
}

Test(sync_pipe, order_is_kept_through_any_bound)
{
    static const size_t bounds[][2] = {{1, 0}, {2, 0}, {7, 0}, {0, 0}, {0, 100}, {3, 1}};

    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        for (int threaded = 0; threaded <= 1; threaded++) {
            sink s = {0, -1, 0, 0, 0, 0};
            sync_pipe p;
            cur = &s;
            sync_pipe_start(&p, threaded, bounds[b][0], bounds[b][1], apply, free_msg, &s);
            for (int i = 0; i < 20000; i++)
                cr_assert_eq(sync_pipe_push(&p, &make(i, 40)->node), 0);
            cr_assert_eq(sync_pipe_finish(&p), 0);
            cr_assert_eq(s.next, 20000, "bound %zu: all applied", b);
            cr_assert_eq(s.out_of_order, 0);
            cr_assert_eq(s.live, 0, "every message freed");
        }
    }
}

Test(sync_pipe, the_bound_holds_while_the_applier_is_slow)
{
    sink s = {0, -1, 0, 200, 0, 0};
    sync_pipe p;

    cur = &s;
    sync_pipe_start(&p, 1, 8, 0, apply, free_msg, &s);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(sync_pipe_push(&p, &make(i, 10)->node), 0);
    cr_assert_eq(sync_pipe_finish(&p), 0);
    /* 8 queued, one being applied, one being made by the pusher. */
    cr_assert(s.max_live <= 10, "at most %ld messages alive", s.max_live);
    cr_assert_eq(s.next, 300);

    /* By bytes: 1000 bytes, messages of 300. */
    memset(&s, 0, sizeof s);
    s.fail_at = -1;
    s.slow = 200;
    sync_pipe_start(&p, 1, 0, 1000, apply, free_msg, &s);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(sync_pipe_push(&p, &make(i, 300)->node), 0);
    cr_assert_eq(sync_pipe_finish(&p), 0);
    cr_assert(s.max_live <= 5, "at most %ld messages alive", s.max_live);
}

Test(sync_pipe, the_first_error_stops_it_and_the_rest_is_freed)
{
    for (int threaded = 0; threaded <= 1; threaded++) {
        sink s = {0, 500, 0, 0, 0, 0};
        sync_pipe p;
        int i, rc = 0;

        cur = &s;
        sync_pipe_start(&p, threaded, 16, 0, apply, free_msg, &s);
        for (i = 0; i < 5000 && !rc; i++)
            rc = sync_pipe_push(&p, &make(i, 8)->node);
        cr_assert_eq(rc, CTX_ESTORE, "a push after the failure reports it");
        cr_assert(i > 500 && i < 500 + 16 + 3, "threaded %d: stopped at %d", threaded, i);
        cr_assert_eq(sync_pipe_failed(&p), CTX_ESTORE);
        /* Later pushes are refused, freed, and change nothing. */
        cr_assert_eq(sync_pipe_push(&p, &make(9999, 8)->node), CTX_ESTORE);
        cr_assert_eq(sync_pipe_fail(&p, CTX_EIO), CTX_ESTORE, "the first error stays");
        cr_assert_eq(sync_pipe_finish(&p), CTX_ESTORE);
        cr_assert_eq(s.next, 501, "nothing applied after the failing message");
        cr_assert_eq(s.live, 0);
    }
}

Test(sync_pipe, a_barrier_sees_everything_pushed_before_it)
{
    for (int threaded = 0; threaded <= 1; threaded++) {
        sink s = {0, -1, 0, 0, 0, 0};
        sync_pipe p;

        cur = &s;
        sync_pipe_start(&p, threaded, 0, 0, apply, free_msg, &s);
        for (int i = 0; i < 3000; i++) {
            cr_assert_eq(sync_pipe_push(&p, &make(i, 8)->node), 0);
            /* Fewer than a wake-up batch waiting: the barrier wakes it. */
            if (i % 5 == 0) {
                cr_assert_eq(sync_pipe_drain(&p), 0);
                cr_assert_eq(s.next, i + 1);
            }
        }
        /* An error of the caller's own, after a barrier, stops the pipe too. */
        cr_assert_eq(sync_pipe_drain(&p), 0);
        cr_assert_eq(sync_pipe_fail(&p, CTX_EIO), CTX_EIO);
        cr_assert_eq(sync_pipe_push(&p, &make(3000, 8)->node), CTX_EIO);
        cr_assert_eq(sync_pipe_finish(&p), CTX_EIO);
        cr_assert_eq(s.next, 3000);
        cr_assert_eq(s.live, 0);
    }
}

/* The backlog says when the applier is behind: a slow one with a full
 * queue is, a pipe without a thread never is. */
Test(sync_pipe, backlog_is_a_quarter_of_the_bound_waiting)
{
    for (int threaded = 0; threaded <= 1; threaded++) {
        sink s = {0, -1, 0, 2000, 0, 0};
        sync_pipe p;
        int seen = 0;
        cur = &s;
        sync_pipe_start(&p, threaded, 16, 0, apply, free_msg, &s);
        cr_assert_eq(sync_pipe_backlog(&p), 0, "empty");
        for (int i = 0; i < 64; i++) {
            cr_assert_eq(sync_pipe_push(&p, &make(i, 40)->node), 0);
            seen |= sync_pipe_backlog(&p);
        }
        cr_assert_eq(seen, threaded, "threaded %d", threaded);
        cr_assert_eq(sync_pipe_drain(&p), 0);
        cr_assert_eq(sync_pipe_backlog(&p), 0, "drained");
        cr_assert_eq(sync_pipe_finish(&p), 0);
        cr_assert_eq(s.next, 64);
    }
}
