/*
 * service_audit.c - the service's audit log writer: records queued by the
 * request threads, written in batches by one thread to the audit file
 * (store_audit_open; in cluster mode service_ship.c ships it on to
 * PostgreSQL); and the per-user and per-agent token usage.
 */
#include "service_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/util.h"
#include "../core/json.h"
#include "../indexer/pgaudit.h"
#include "budget.h"

#define AUDIT_QUEUE_MAX 65536
/* How long the audit writer lets records gather before a commit: also the
 * most a crash can lose beyond the records a commit was writing. */
#define AUDIT_LINGER_MS 20

static void unpend(svc *s, const audit_item *batch, size_t n);

void svc__usage_add(svc *s, const char *name, int is_agent, int64_t tokens)
{
    if (!name || tokens <= 0)
        return;
    pthread_mutex_lock(&s->umu);
    for (size_t i = 0; i < s->nusage; i++) {
        if (s->usage[i].is_agent == is_agent && !strcmp(s->usage[i].name, name)) {
            s->usage[i].tokens += tokens;
            pthread_mutex_unlock(&s->umu);
            return;
        }
    }
    if (s->nusage < 100000) {
        usage_entry *v = ctx_realloc(s->usage, (s->nusage + 1) * sizeof *v);
        if (v) {
            s->usage = v;
            v[s->nusage].name = ctx_strdup(name);
            v[s->nusage].is_agent = is_agent;
            v[s->nusage].tokens = tokens;
            if (v[s->nusage].name)
                s->nusage++;
        }
    }
    pthread_mutex_unlock(&s->umu);
}

json_t *svc_usage(svc *s)
{
    json_t *u = json_object(), *a = json_object();

    pthread_mutex_lock(&s->umu);
    for (size_t i = 0; i < s->nusage; i++)
        json_object_set_new(s->usage[i].is_agent ? a : u, s->usage[i].name,
                            json_integer(s->usage[i].tokens));
    pthread_mutex_unlock(&s->umu);
    return json_pack("{s:o,s:o}", "users", u, "agents", a);
}

/* svc__audit - queue one record (strings copied); waits while the queue is full. */
int svc__audit(svc *s, const svc_identity *id, const char *action, const char *query,
               json_t *doc_ids, int64_t tokens, uint64_t t0, const char *outcome)
{
    char hash[65] = "", *ids = doc_ids ? ctx_json_text(doc_ids, JSON_COMPACT) : NULL;
    const char *fields[6];
    size_t lens[6], total = 0;
    audit_item it;
    char *p;

    memset(&it, 0, sizeof it);
    if (doc_ids && !ids) {
        ctx_log(CTX_LOG_ERROR, "audit", "out of memory: a %s by %s was not recorded", action,
                id && id->user ? id->user : "(nobody)");
        return CTX_ENOMEM; /* never "[]" for documents that were handed out */
    }
    if (query) {
        const void *parts[1] = {query};
        size_t plen[1] = {strlen(query)};
        ctx_hash_hex(parts, plen, 1, hash);
    }
    fields[0] = id ? id->user : NULL;
    fields[1] = id ? id->agent : NULL;
    fields[2] = action;
    fields[3] = query && s->cfg->audit_store_queries ? query : NULL;
    fields[4] = query ? hash : NULL;
    fields[5] = ids ? ids : "[]";
    for (int i = 0; i < 6; i++)
        total += lens[i] = fields[i] ? strlen(fields[i]) + 1 : 0;
    if (!(it.strs = p = ctx_malloc(total ? total : 1))) {
        ctx_log(CTX_LOG_ERROR, "audit", "out of memory: a %s by %s was not recorded", action,
                fields[0] ? fields[0] : "(nobody)");
        free(ids);
        return CTX_ENOMEM;
    }
    {
        const char **dst[6] = {&it.r.user, &it.r.agent, &it.r.action, &it.r.query,
                               &it.r.query_sha256, &it.r.doc_ids};
        for (int i = 0; i < 6; i++) {
            if (!fields[i])
                continue;
            memcpy(p, fields[i], lens[i]);
            *dst[i] = p;
            p += lens[i];
        }
    }
    free(ids);
    it.r.at = ctx_now_ms();
    it.r.tokens = tokens;
    it.r.latency_us = (int64_t)((ctx_mono_ns() - t0) / 1000);
    it.r.outcome = outcome; /* a string literal */
    /* The budget windows its tokens count in, while the config is held;
     * queued tokens count for the budget check until they are written. */
    if (tokens > 0 && s->cfg->nbudgets) {
        it.spans[BUDGET_USER] = it.r.user ? budget_spans(s->cfg, BUDGET_USER) : 0;
        it.spans[BUDGET_AGENT] = it.r.agent ? budget_spans(s->cfg, BUDGET_AGENT) : 0;
        for (int k = 0; k < 2; k++)
            if (it.spans[k])
                svc__budget_pend(s, k, k ? it.r.agent : it.r.user, tokens, 1);
    }
    pthread_mutex_lock(&s->amu);
    while (s->naq >= AUDIT_QUEUE_MAX && !s->astop)
        pthread_cond_wait(&s->adone, &s->amu);
    if (s->naq == s->capaq) {
        size_t cap = s->capaq ? s->capaq * 2 : 64;
        audit_item *v = ctx_realloc(s->aq, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&s->amu);
            unpend(s, &it, 1);
            ctx_free(it.strs);
            ctx_log(CTX_LOG_ERROR, "audit", "out of memory: a record was not queued");
            return CTX_ENOMEM;
        }
        s->aq = v;
        s->capaq = cap;
    }
    s->aq[s->naq++] = it;
    s->queued++;
    pthread_cond_signal(&s->acv);
    pthread_mutex_unlock(&s->amu);
    return CTX_OK;
}

/* count - add r's tokens to the windows spans asks for (budget.h). */
static int count(ctx_store *log, const audit_item *it, ctx_error *err)
{
    int rc = CTX_OK;

    for (int k = 0; k < 2 && !rc; k++)
        for (int i = 0; i < 2 && !rc; i++) {
            int64_t span = budget_span_ms(i);
            if (it->spans[k] >> i & 1)
                rc = store_usage_add(log, k, k ? it->r.agent : it->r.user, span,
                                     it->r.at - it->r.at % span, it->r.tokens, err);
        }
    return rc;
}

/* unpend - the batch is written (or given up on): its tokens are no longer queued. */
static void unpend(svc *s, const audit_item *batch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            if (batch[i].spans[k])
                svc__budget_pend(s, k, k ? batch[i].r.agent : batch[i].r.user,
                                 batch[i].r.tokens, -1);
}

/* The writer: takes the whole queue and writes it in one transaction. */
void *svc__audit_writer(void *arg)
{
    svc *s = arg;
    audit_item *batch = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&s->amu);
    for (;;) {
        while (!s->naq && !s->astop)
            pthread_cond_wait(&s->acv, &s->amu);
        if (!s->naq && s->astop)
            break;
        if (!s->astop && s->written + s->naq > s->flush_to) {
            /* Let a batch gather: each commit costs a WAL append and locks,
             * which showed in perf at one or two records a commit. */
            struct timespec linger = {0, AUDIT_LINGER_MS * 1000000L};
            pthread_mutex_unlock(&s->amu);
            nanosleep(&linger, NULL);
            pthread_mutex_lock(&s->amu);
        }
        /* swap the queue out */
        batch = s->aq;
        n = s->naq;
        cap = s->capaq;
        s->aq = NULL;
        s->naq = s->capaq = 0;
        pthread_mutex_unlock(&s->amu);
        {
            ctx_error err;
            size_t written;
            int rc = store_begin(s->ast, &err);
            for (size_t i = 0; !rc && i < n; i++)
                if (!(rc = store_audit_put(s->ast, &batch[i].r, &err))) {
                    batch[i].id = store_audit_rowid(s->ast);
                    rc = count(s->ast, &batch[i], &err);
                }
            if (!rc)
                rc = store_commit(s->ast, &err);
            written = n;
            if (rc) {
                store_rollback(s->ast);
                /* Try them one by one so one bad row costs only itself. A
                 * record not written keeps its tokens pending, so a budget
                 * still counts them (fail closed): it moves past the
                 * written ones, which alone are unpended. */
                written = 0;
                for (size_t i = 0; i < n; i++) {
                    if (store_audit_put(s->ast, &batch[i].r, &err) ||
                        (batch[i].id = store_audit_rowid(s->ast), 0) ||
                        count(s->ast, &batch[i], &err)) {
                        ctx_log(CTX_LOG_ERROR, "audit", "a %s by %s was not recorded: %s",
                                batch[i].r.action, batch[i].r.user ? batch[i].r.user : "-",
                                err.text);
                        continue;
                    }
                    if (i != written) {
                        audit_item t = batch[written];
                        batch[written] = batch[i];
                        batch[i] = t;
                    }
                    written++;
                }
            }
            if (s->cluster) { /* pending until PostgreSQL holds them too */
                int64_t last = 0;
                for (size_t i = 0; i < written; i++)
                    last = batch[i].id > last ? batch[i].id : last;
                svc__ship_hand(s, batch, written, last);
            } else {
                unpend(s, batch, written);
            }
        }
        for (size_t i = 0; i < n; i++)
            ctx_free(batch[i].strs);
        ctx_free(batch);
        (void)cap;
        pthread_mutex_lock(&s->amu);
        s->written += n;
        pthread_cond_broadcast(&s->adone);
    }
    pthread_mutex_unlock(&s->amu);
    return NULL;
}

void svc_audit_refusal(svc *s, const svc_identity *id, const char *action, const char *outcome)
{
    pthread_rwlock_rdlock(&s->clock);
    svc__audit(s, id, action, NULL, NULL, 0, ctx_mono_ns(), outcome);
    pthread_rwlock_unlock(&s->clock);
}

void svc_audit_flush(svc *s)
{
    pthread_mutex_lock(&s->amu);
    uint64_t want = s->queued;
    s->flush_to = want; /* the writer does not linger for these */
    while (s->written < want)
        pthread_cond_wait(&s->adone, &s->amu);
    pthread_mutex_unlock(&s->amu);
}
