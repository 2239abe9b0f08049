/*
 * service_ship.c - cluster mode's audit shipping: the writer writes each
 * batch to the local audit log as in the embedded mode (so an answer is
 * audited before PostgreSQL is involved), and this thread ships the log's
 * records on to PostgreSQL (pgaudit_ship), exactly once, retrying every
 * second while PostgreSQL cannot be reached. A record's tokens stay
 * pending for this process's budget checks until PostgreSQL holds it.
 * Also: the cluster's token counts for the budget checks (bpg).
 */
#include "service_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../core/util.h"
#include "../indexer/pgaudit.h"
#include "budget.h"

/* Records per shipping statement; a log longer than this (after an
 * outage) goes in several, one after the other. */
#define SHIP_BATCH 1000
/* How often a shipper that cannot reach PostgreSQL tries again, and how
 * long a failed connect keeps the budget checks from trying again. */
#define SHIP_RETRY_MS 1000
/* How often the local log's shipped records past audit.retain are pruned. */
#define SHIP_PRUNE_MS 3600000

static char *dup_or_empty(const char *v) { return ctx_strdup(v ? v : ""); }

/* deadline - CLOCK_REALTIME ms from now, for pthread_cond_timedwait. */
static struct timespec deadline(int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void svc__ship_hand(svc *s, const audit_item *items, size_t n, int64_t last_id)
{
    pthread_mutex_lock(&s->smu);
    for (size_t i = 0; i < n; i++) {
        const audit_item *it = &items[i];
        ship_wait *w;
        if (!it->spans[0] && !it->spans[1])
            continue; /* its tokens were not pended */
        if (s->nsw == s->capsw) {
            size_t cap = s->capsw ? s->capsw * 2 : 64;
            ship_wait *v = ctx_realloc(s->sw, cap * sizeof *v);
            if (!v) { /* counted once shipped, a moment late */
                pthread_mutex_unlock(&s->smu);
                for (int k = 0; k < 2; k++)
                    if (it->spans[k])
                        svc__budget_pend(s, k, k ? it->r.agent : it->r.user, it->r.tokens, -1);
                pthread_mutex_lock(&s->smu);
                continue;
            }
            s->sw = v;
            s->capsw = cap;
        }
        w = &s->sw[s->nsw++];
        w->id = it->id;
        w->tokens = it->r.tokens;
        w->name[0] = it->spans[0] && it->r.user ? ctx_strdup(it->r.user) : NULL;
        w->name[1] = it->spans[1] && it->r.agent ? ctx_strdup(it->r.agent) : NULL;
    }
    if (last_id > s->swritten)
        s->swritten = last_id;
    s->sdue = 1;
    pthread_cond_signal(&s->scv);
    pthread_mutex_unlock(&s->smu);
}

/* settle - PostgreSQL holds every local id up to mark: their tokens are
 * counted there now, no longer pending here. Under smu. */
static void settle(svc *s, int64_t mark)
{
    size_t i = 0;

    while (i < s->nsw && s->sw[i].id <= mark) {
        for (int k = 0; k < 2; k++) {
            if (s->sw[i].name[k])
                svc__budget_pend(s, k, s->sw[i].name[k], s->sw[i].tokens, -1);
            ctx_free(s->sw[i].name[k]);
        }
        i++;
    }
    if (i) {
        memmove(s->sw, s->sw + i, (s->nsw - i) * sizeof *s->sw);
        s->nsw -= i;
    }
    if (mark > s->shipped)
        s->shipped = mark;
    pthread_cond_broadcast(&s->sdone);
}

/* round_once - one shipping statement, connecting first when needed. */
static int round_once(svc *s, pgstore **pg, ctx_store **log, int64_t *mark, int64_t *sent,
                      ctx_error *err)
{
    int rc;

    *sent = 0;
    if (!*log && (rc = store_audit_open(s->store_path, log, err)))
        return rc;
    if (!*pg && (rc = pgstore_open(&s->ccfg, pg, err)))
        return rc;
    if ((rc = pgaudit_ship(*pg, *log, s->node, SHIP_BATCH, mark, sent, err))) {
        pgstore_close(*pg); /* opened again at the next try */
        *pg = NULL;
    }
    return rc;
}

/* prune_local - the shipped records past audit.retain leave the local log. */
static void prune_local(svc *s, ctx_store *log, int64_t mark)
{
    int64_t retain, n = 0;
    ctx_error err;

    pthread_rwlock_rdlock(&s->clock);
    retain = s->cfg->audit_retain_ms;
    pthread_rwlock_unlock(&s->clock);
    if (retain < 0 || !log)
        return;
    if (store_audit_prune_shipped(log, mark, ctx_now_ms() - retain, 2000, &n, &err))
        ctx_log(CTX_LOG_WARN, "audit", "%s", err.text);
    else if (n)
        ctx_log(CTX_LOG_INFO, "audit", "pruned %lld shipped records from the local audit log",
                (long long)n);
}

static void *shipper(void *arg)
{
    svc *s = arg;
    pgstore *pg = NULL;
    ctx_store *log = NULL;
    int64_t next_prune = ctx_mono_ns() / 1000000 + 60000, retry_at = 0;
    int down = 0;

    pthread_mutex_lock(&s->smu);
    for (;;) {
        int64_t mark = 0, sent = 0, now = ctx_mono_ns() / 1000000;
        /* While PostgreSQL is away, one try a SHIP_RETRY_MS whatever the
         * writer hands over meanwhile (each batch would be a connect). */
        struct timespec until =
            deadline(down ? (retry_at > now ? retry_at - now : 0) : SHIP_RETRY_MS);
        ctx_error err;
        int rc, stopping;
        while ((down || !s->sdue) && !s->sstop)
            if (pthread_cond_timedwait(&s->scv, &s->smu, &until) == ETIMEDOUT)
                break;
        stopping = s->sstop;
        if (!s->sdue && !stopping && !down && s->shipped >= s->swritten && s->shipped >= 0) {
            now = ctx_mono_ns() / 1000000;
            if (now >= next_prune) {
                mark = s->shipped;
                pthread_mutex_unlock(&s->smu);
                prune_local(s, log, mark);
                pthread_mutex_lock(&s->smu);
                next_prune = now + SHIP_PRUNE_MS;
            }
            continue;
        }
        s->sdue = 0;
        pthread_mutex_unlock(&s->smu);
        rc = round_once(s, &pg, &log, &mark, &sent, &err);
        if (rc && !down)
            ctx_log(CTX_LOG_WARN, "audit", "cannot ship audit records to the cluster: %s; they"
                    " stay in the local audit log and go when PostgreSQL answers again",
                    err.text);
        if (!rc && down)
            ctx_log(CTX_LOG_INFO, "audit", "PostgreSQL answers again: shipping the audit"
                    " records held meanwhile");
        down = rc != 0;
        retry_at = ctx_mono_ns() / 1000000 + SHIP_RETRY_MS;
        pthread_mutex_lock(&s->smu);
        if (rc) {
            if (stopping)
                break;
            continue; /* again after SHIP_RETRY_MS */
        }
        settle(s, mark);
        if (sent >= SHIP_BATCH)
            s->sdue = 1; /* more where these came from */
        else if (stopping)
            break;
    }
    pthread_mutex_unlock(&s->smu);
    pgstore_close(pg);
    store_close(log);
    return NULL;
}

int svc__ship_start(svc *s, const ctx_config *cfg, ctx_error *err)
{
    const ctx_cluster_cfg *c = &cfg->cluster;

    pthread_mutex_init(&s->smu, NULL);
    pthread_cond_init(&s->scv, NULL);
    pthread_cond_init(&s->sdone, NULL);
    if (!c->conninfo || !*c->conninfo)
        return CTX_OK;
    s->cluster = 1;
    s->ccfg = *c;
    s->ccfg.conninfo = dup_or_empty(c->conninfo);
    s->ccfg.password_env = dup_or_empty(c->password_env);
    s->ccfg.password_file = dup_or_empty(c->password_file);
    s->ccfg.replica = dup_or_empty(c->replica);
    if (!s->ccfg.conninfo || !s->ccfg.password_env || !s->ccfg.password_file ||
        !s->ccfg.replica)
        return ctx_error_set(err, CTX_ENOMEM, "service: out of memory");
    pgaudit_node(&s->ccfg, s->node, sizeof s->node);
    s->shipped = -1;
    s->sdue = 1; /* what an earlier process left in the log goes first */
    if (pthread_create(&s->shipper, NULL, shipper, s))
        return ctx_error_set(err, CTX_ENOMEM, "service: cannot start the audit shipper");
    s->ship_started = 1;
    return CTX_OK;
}

void svc__ship_stop(svc *s)
{
    if (s->ship_started) {
        pthread_mutex_lock(&s->smu);
        s->sstop = 1;
        s->sdue = 1;
        pthread_cond_signal(&s->scv);
        pthread_mutex_unlock(&s->smu);
        pthread_join(s->shipper, NULL);
        s->ship_started = 0;
    }
    for (size_t i = 0; i < s->nsw; i++)
        for (int k = 0; k < 2; k++)
            ctx_free(s->sw[i].name[k]);
    ctx_free(s->sw);
    s->sw = NULL;
    s->nsw = s->capsw = 0;
    ctx_free(s->ccfg.conninfo);
    ctx_free(s->ccfg.password_env);
    ctx_free(s->ccfg.password_file);
    ctx_free(s->ccfg.replica);
    memset(&s->ccfg, 0, sizeof s->ccfg);
    pthread_mutex_destroy(&s->smu);
    pthread_cond_destroy(&s->scv);
    pthread_cond_destroy(&s->sdone);
}

int svc__ship_wait(svc *s, int64_t ms, ctx_error *err)
{
    struct timespec until = deadline(ms);
    int rc = CTX_OK;

    if (!s->cluster)
        return CTX_OK;
    pthread_mutex_lock(&s->smu);
    int64_t want = s->swritten;
    s->sdue = 1;
    pthread_cond_signal(&s->scv);
    while (s->shipped < want || s->shipped < 0)
        if (pthread_cond_timedwait(&s->sdone, &s->smu, &until) == ETIMEDOUT) {
            rc = ctx_error_set(err, CTX_EIO, "cluster: this process's audit records are not"
                               " in PostgreSQL after %lld ms (is it reachable? the log says"
                               " why); try again", (long long)ms);
            break;
        }
    pthread_mutex_unlock(&s->smu);
    return rc;
}

/* connected - bpg, opened when needed (under bpgmu). */
static int connected(svc *s, ctx_error *err)
{
    int64_t now = ctx_mono_ns() / 1000000;
    int rc;

    if (s->bpg)
        return CTX_OK;
    /* Fail fast while it stays down: a connect per request would make
     * every budgeted search wait for it. */
    if (s->bpg_failed && now - s->bpg_failed < SHIP_RETRY_MS)
        return ctx_error_set(err, CTX_EIO, "%s", s->bpg_why);
    if ((rc = pgstore_open(&s->ccfg, &s->bpg, err))) {
        s->bpg_failed = now;
        snprintf(s->bpg_why, sizeof s->bpg_why, "%s", err->text);
        return rc;
    }
    s->bpg_failed = 0;
    return CTX_OK;
}

/* A read that fails drops the connection, and is tried once more on a new
 * one when the old one had been open a while (PostgreSQL restarted since):
 * the first request after a restart is not failed for a dead socket. */
static int lazy_get(void *self, int kind, const char *name, int64_t span, int64_t start,
                    int64_t *tokens, ctx_error *err)
{
    svc *s = self;
    int rc;

    for (int again = 0;; again++) {
        int fresh = !s->bpg;
        if ((rc = connected(s, err)) ||
            !(rc = pgaudit_usage_get(s->bpg, kind, name, span, start, tokens, err)))
            return rc;
        svc__cluster_drop(s);
        if (fresh || again)
            return rc;
    }
}

static int lazy_scan(void *self, int64_t span, int64_t start,
                     int (*fn)(void *arg, int kind, const char *name, int64_t tokens),
                     void *arg, ctx_error *err)
{
    svc *s = self;
    int rc = connected(s, err);

    /* not tried again: fn may have seen rows of the failed read */
    if (!rc && (rc = pgaudit_usage_scan(s->bpg, span, start, fn, arg, err)) &&
        rc != CTX_ENOMEM)
        svc__cluster_drop(s);
    return rc;
}

void svc__cluster_counts(svc *s, budget_counts *out)
{
    /* Connected at the first read: a caller no budget limits never waits
     * for PostgreSQL, nor fails while it is away. */
    out->xGet = lazy_get;
    out->xScan = lazy_scan;
    out->self = s;
}

void svc__cluster_drop(svc *s)
{
    pgstore_close(s->bpg);
    s->bpg = NULL;
}
