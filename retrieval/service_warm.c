/*
 * service_warm.c - the search caches, filled ahead of the requests and
 * kept so: the service's own connection walks (rank_warm), each worker
 * copies that state (rank_copy) before its next request once it is newer
 * than the worker's, and svc_rewarm walks again on a new connection when
 * the store has moved on, while the workers go on with what they have.
 */
#include "service_int.h"

#include <pthread.h>

#include "../core/util.h"
#include "rank.h"

static int64_t mono_ms(void) { return (int64_t)(ctx_mono_ns() / 1000000); }

/* warm_build - a new connection of its own, warmed; *out new (store_close). */
static int warm_build(svc *s, ctx_store **out, ctx_error *err)
{
    int64_t t0 = mono_ms();
    rank_warm_info info;
    ctx_store *st;
    rank_conn *rc;
    int r;

    *out = NULL;
    if ((r = store_open(s->store_path, STORE_OPEN_READONLY, &st, err)))
        return r;
    if (!(rc = rank_attach(store_db(st), err)) ||
        (r = rank_warm(rc, RANK_WARM_MIN_DF, &info, err))) {
        store_close(st);
        return rc ? r : err->code;
    }
    s->warm_ms = mono_ms() - t0;
    ctx_log(CTX_LOG_INFO, "serve",
            "search caches warmed in %.1f s: %lld chunks, counts of %lld words (%lld with"
            " frequency maps) in %lld pairs",
            (double)s->warm_ms / 1e3, (long long)rank_mapped_rows(rc), (long long)info.words,
            (long long)info.maps, (long long)info.pairs);
    *out = st;
    return CTX_OK;
}

/* warm_swap - st is the state workers copy from now; the old one goes. */
static void warm_swap(svc *s, ctx_store *st)
{
    ctx_store *old;

    pthread_mutex_lock(&s->wmu);
    old = s->warm_st;
    s->warm_st = st;
    __atomic_add_fetch(&s->warm_gen, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->wmu);
    s->warm_at = mono_ms();
    /* copies are made under wmu: no worker reads the old one now (the
     * maps it shared live on in the workers that copied them) */
    store_close(old);
}

void svc__warm_adopt(svc *s, worker *w)
{
    ctx_error err = {0};
    rank_conn *src, *dst;

    if (w->warm_gen == __atomic_load_n(&s->warm_gen, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&s->wmu);
    if (s->warm_st && (!(dst = rank_attach(store_db(w->st), &err)) ||
                       !(src = rank_attach(store_db(s->warm_st), &err)) ||
                       rank_copy(dst, src, &err)))
        ctx_log(CTX_LOG_WARN, "serve", "a worker starts cold: %s", err.text);
    w->warm_gen = s->warm_gen; /* tried once: a cold worker is still correct */
    pthread_mutex_unlock(&s->wmu);
}

/*
 * adopt_idle - the workers nobody holds copy the new state now, off the
 * request path; an idle worker would otherwise keep the old one (and its
 * share of the old maps) until it is next taken.
 */
static void adopt_idle(svc *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        int mine = 0;

        pthread_mutex_lock(&s->mu);
        if (!w->busy && w->st)
            mine = w->busy = 1;
        pthread_mutex_unlock(&s->mu);
        if (!mine)
            continue;
        svc__warm_adopt(s, w);
        pthread_mutex_lock(&s->mu);
        w->busy = 0;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

int svc_warm(svc *s, ctx_error *err)
{
    worker **all = ctx_calloc((size_t)s->nworkers, sizeof *all);
    ctx_error werr = {0};
    ctx_store *st;
    int n = 0, rc = CTX_OK, wrc;

    if (!all)
        return ctx_error_set(err, CTX_ENOMEM, "service: out of memory");
    s->warm_on = 1; /* svc_rewarm keeps it, or tries again */
    if (!(wrc = warm_build(s, &st, &werr)))
        warm_swap(s, st);
    else
        s->warm_at = mono_ms(); /* svc_rewarm tries again after its gap */
    /* All taken at once, so each one is opened (and copies), not the first again. */
    for (; n < s->nworkers && !rc; n++)
        if (!(all[n] = svc__take(s, err)))
            rc = err->code;
    while (n-- > 0)
        if (all[n])
            svc__give(s, all[n]);
    ctx_free(all);
    if (!rc && wrc) {
        *err = werr;
        rc = wrc;
    }
    return rc;
}

int svc_rewarm(svc *s, int force, int *did, ctx_error *err)
{
    int64_t now = mono_ms(), gap;
    ctx_store *st;
    rank_conn *rc;
    int behind = 0, r;

    if (did)
        *did = 0;
    if (!s->warm_on)
        return CTX_OK; /* never warmed (svc_warm): nothing to keep warm */
    /* At most one walk in SVC_REWARM_SHARE of the time, and not often. */
    gap = s->warm_ms * SVC_REWARM_SHARE;
    if (gap < SVC_REWARM_MIN_MS)
        gap = SVC_REWARM_MIN_MS;
    if (!force && (now - s->warm_checked < SVC_REWARM_CHECK_MS || now - s->warm_at < gap))
        return CTX_OK;
    s->warm_checked = now;
    behind = !s->warm_st; /* the last warm-up failed: try again */
    pthread_mutex_lock(&s->wmu);
    if (behind)
        r = CTX_OK;
    else if (!(rc = rank_attach(store_db(s->warm_st), err)))
        r = err->code;
    else
        r = rank_behind(rc, &behind, err);
    pthread_mutex_unlock(&s->wmu);
    if (r || !behind)
        return r;
    if ((r = warm_build(s, &st, err))) {
        s->warm_at = mono_ms(); /* not again before the gap */
        return r;
    }
    warm_swap(s, st);
    adopt_idle(s);
    ctx_mem_give_back(); /* what the old state held, mostly freed by now */
    if (did)
        *did = 1;
    return CTX_OK;
}
