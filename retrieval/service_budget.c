/*
 * service_budget.c - the service's token budgets: the check before a
 * search or fetch, the tokens queued for the audit writer (counted until
 * written, so one process never overshoots by its own queue), and the
 * budgets' state for /metrics and /v1/admin/budgets (see budget.h). In
 * cluster mode the counts are the cluster's (service_ship.c).
 */
#include "service_int.h"

#include <string.h>

#include "../core/util.h"
#include "budget.h"

/* pending - tokens queued for (kind, name); under bmu. */
static int64_t pending(void *arg, int kind, const char *name)
{
    svc *s = arg;

    for (size_t i = 0; i < s->npend; i++)
        if (s->pend[i].kind == kind && !strcmp(s->pend[i].name, name))
            return s->pend[i].tokens;
    return 0;
}

void svc__budget_pend(svc *s, int kind, const char *name, int64_t tokens, int sign)
{
    pending_entry *v;
    size_t i;

    if (!name || tokens <= 0)
        return;
    pthread_mutex_lock(&s->bmu);
    for (i = 0; i < s->npend; i++)
        if (s->pend[i].kind == kind && !strcmp(s->pend[i].name, name))
            break;
    if (i < s->npend) {
        s->pend[i].tokens += sign * tokens;
        if (s->pend[i].tokens <= 0) { /* written: the entry goes */
            ctx_free(s->pend[i].name);
            s->pend[i] = s->pend[--s->npend];
        }
    } else if (sign > 0 && (v = ctx_realloc(s->pend, (s->npend + 1) * sizeof *v))) {
        /* out of memory: the tokens count once written, a batch later */
        s->pend = v;
        if ((v[s->npend].name = ctx_strdup(name))) {
            v[s->npend].kind = kind;
            v[s->npend].tokens = tokens;
            s->npend++;
        }
    }
    pthread_mutex_unlock(&s->bmu);
}

/* pending_locked - pending, taking bmu: for the cluster's checks, which
 * hold bpgmu across PostgreSQL reads instead. The pending tokens are read
 * before the count (budget.c's used_of), so a record shipped in between
 * counts twice for a moment, never not at all. */
static int64_t pending_locked(void *arg, int kind, const char *name)
{
    svc *s = arg;
    int64_t v;

    pthread_mutex_lock(&s->bmu);
    v = pending(s, kind, name);
    pthread_mutex_unlock(&s->bmu);
    return v;
}

/* reader - the counts' connection, opened at first use; under bmu. */
static int reader(svc *s, ctx_error *err)
{
    return s->bst ? CTX_OK : store_audit_open(s->store_path, &s->bst, err);
}

int svc__budget_check(svc *s, const svc_identity *id, int64_t *reset_ms, ctx_error *err)
{
    int rc;

    if (reset_ms)
        *reset_ms = 0;
    if (!s->cfg->nbudgets || !id)
        return CTX_OK;
    if (s->cluster) { /* the cluster's counts, plus what this process has not shipped */
        budget_counts c;
        pthread_mutex_lock(&s->bpgmu);
        svc__cluster_counts(s, &c);
        rc = budget_check_in(&c, s->cfg, id->user, id->agent, ctx_now_ms(), pending_locked, s,
                             reset_ms, err);
        pthread_mutex_unlock(&s->bpgmu);
        return rc;
    }
    pthread_mutex_lock(&s->bmu);
    if (!(rc = reader(s, err)))
        rc = budget_check(s->bst, s->cfg, id->user, id->agent, ctx_now_ms(), pending, s,
                          reset_ms, err);
    pthread_mutex_unlock(&s->bmu);
    return rc;
}

int svc_budget_check(svc *s, const svc_identity *id, int64_t *reset_ms, ctx_error *err)
{
    int rc;

    pthread_rwlock_rdlock(&s->clock);
    rc = svc__budget_check(s, id, reset_ms, err);
    pthread_rwlock_unlock(&s->clock);
    return rc;
}

json_t *svc_budgets(svc *s)
{
    json_t *out = NULL;
    ctx_error err;
    int rc = CTX_OK;

    size_t n;

    pthread_rwlock_rdlock(&s->clock);
    n = s->cfg->nbudgets;
    pthread_rwlock_unlock(&s->clock);
    /* What this process served is in the file first: a "*" budget lists
     * the names the file holds. */
    if (n)
        svc_audit_flush(s);
    pthread_rwlock_rdlock(&s->clock);
    if (s->cluster && s->cfg->nbudgets) {
        budget_counts c;
        pthread_mutex_lock(&s->bpgmu);
        svc__cluster_counts(s, &c);
        rc = budget_status_in(&c, s->cfg, ctx_now_ms(), pending_locked, s, &out, &err);
        pthread_mutex_unlock(&s->bpgmu);
    } else {
        pthread_mutex_lock(&s->bmu);
        if (s->cfg->nbudgets)
            rc = reader(s, &err);
        if (!rc)
            rc = budget_status(s->bst, s->cfg, ctx_now_ms(), pending, s, &out, &err);
        pthread_mutex_unlock(&s->bmu);
    }
    pthread_rwlock_unlock(&s->clock);
    if (rc)
        ctx_log(CTX_LOG_ERROR, "budget", "%s", err.text);
    return out;
}

void svc__budget_free(svc *s)
{
    store_close(s->bst);
    s->bst = NULL;
    svc__cluster_drop(s);
    for (size_t i = 0; i < s->npend; i++)
        ctx_free(s->pend[i].name);
    ctx_free(s->pend);
    s->pend = NULL;
    s->npend = 0;
    pthread_mutex_destroy(&s->bmu);
    pthread_mutex_destroy(&s->bpgmu);
}
