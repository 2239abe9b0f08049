/*
 * budget.c - token budgets over the counts of the audit log's file (see
 * budget.h).
 */
#include "budget.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../indexer/pgaudit.h"

static const int64_t spans[2] = {3600000, 86400000};

int64_t budget_span_ms(int i) { return spans[i & 1]; }

static int span_bit(int64_t per_ms) { return per_ms == spans[1]; }

static const char *who_of(const ctx_budget *b) { return b->user ? b->user : b->agent; }

static int kind_of(const ctx_budget *b) { return b->user ? BUDGET_USER : BUDGET_AGENT; }

unsigned budget_spans(const ctx_config *cfg, int kind)
{
    unsigned m = 0;

    for (size_t i = 0; i < cfg->nbudgets; i++)
        if (kind_of(&cfg->budgets[i]) == kind)
            m |= 1u << span_bit(cfg->budgets[i].per_ms);
    return m;
}

/* named - does an entry of kind name this name? Then only those entries
 * limit it, whatever their windows: "*" is for everyone else. */
static int named(const ctx_config *cfg, int kind, const char *name)
{
    for (size_t i = 0; i < cfg->nbudgets; i++) {
        const ctx_budget *b = &cfg->budgets[i];
        if (kind_of(b) == kind && !strcmp(who_of(b), name))
            return 1;
    }
    return 0;
}

/* applies - does b limit (kind, name)? Its own entry, or "*" when none names it. */
static int applies(const ctx_config *cfg, const ctx_budget *b, int kind, const char *name)
{
    if (kind_of(b) != kind)
        return 0;
    if (strcmp(who_of(b), "*"))
        return !strcmp(who_of(b), name);
    return !named(cfg, kind, name);
}

static void iso(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The audit log's file as counts. */
static int file_get(void *self, int kind, const char *name, int64_t span, int64_t start,
                    int64_t *tokens, ctx_error *err)
{
    return store_usage_get(self, kind, name, span, start, tokens, err);
}

static int file_scan(void *self, int64_t span, int64_t start,
                     int (*fn)(void *arg, int kind, const char *name, int64_t tokens),
                     void *arg, ctx_error *err)
{
    return store_usage_scan(self, span, start, fn, arg, err);
}

static int pg_get(void *self, int kind, const char *name, int64_t span, int64_t start,
                  int64_t *tokens, ctx_error *err)
{
    return pgaudit_usage_get(self, kind, name, span, start, tokens, err);
}

static int pg_scan(void *self, int64_t span, int64_t start,
                   int (*fn)(void *arg, int kind, const char *name, int64_t tokens), void *arg,
                   ctx_error *err)
{
    return pgaudit_usage_scan(self, span, start, fn, arg, err);
}

void budget_counts_cluster(pgstore *pg, budget_counts *out)
{
    out->xGet = pg_get;
    out->xScan = pg_scan;
    out->self = pg;
}

/* used_of - (kind, name)'s tokens in b's window at now: the counts' plus pending. */
static int used_of(const budget_counts *log, const ctx_budget *b, int kind, const char *name,
                   int64_t now, budget_pending_fn pending, void *parg, int64_t *used,
                   ctx_error *err)
{
    int64_t start = now - now % b->per_ms, extra = pending ? pending(parg, kind, name) : 0;
    int rc;

    *used = 0;
    /* pending first: the writer commits, then forgets what it wrote, so a
     * record is counted twice for a moment, never missed */
    if (log && (rc = log->xGet(log->self, kind, name, b->per_ms, start, used, err)))
        return rc;
    *used += extra;
    return CTX_OK;
}

int budget_check(ctx_store *log, const ctx_config *cfg, const char *user, const char *agent,
                 int64_t now, budget_pending_fn pending, void *parg, int64_t *reset_ms,
                 ctx_error *err)
{
    budget_counts c = {file_get, file_scan, log};

    return budget_check_in(log ? &c : NULL, cfg, user, agent, now, pending, parg, reset_ms,
                           err);
}

int budget_check_in(const budget_counts *log, const ctx_config *cfg, const char *user,
                    const char *agent, int64_t now, budget_pending_fn pending, void *parg,
                    int64_t *reset_ms, ctx_error *err)
{
    const char *names[2] = {user, agent};
    int64_t latest = 0;
    int rc, spent = 0;

    if (reset_ms)
        *reset_ms = 0;
    for (size_t i = 0; i < cfg->nbudgets; i++) {
        const ctx_budget *b = &cfg->budgets[i];
        int kind = kind_of(b);
        int64_t used, reset;
        char when[32];
        if (!names[kind] || !*names[kind] || !applies(cfg, b, kind, names[kind]))
            continue;
        if ((rc = used_of(log, b, kind, names[kind], now, pending, parg, &used, err)))
            return rc;
        if (used < b->tokens)
            continue;
        reset = now - now % b->per_ms + b->per_ms;
        if (reset <= latest)
            continue;
        latest = reset;
        iso(reset, when, sizeof when);
        spent = 1;
        ctx_error_set(err, CTX_ELIMIT,
                      "token budget spent: budgets[%zu] (%s \"%s\": %lld tokens per %s) has"
                      " served %lld tokens to %s \"%s\"; it resets at %s (in %lld s); ask an"
                      " admin to raise budgets[%zu].tokens, or wait", i,
                      kind ? "agent" : "user", who_of(b), (long long)b->tokens, b->per,
                      (long long)used, kind ? "agent" : "user", names[kind], when,
                      (long long)((reset - now + 999) / 1000), i);
    }
    if (reset_ms)
        *reset_ms = latest;
    return spent ? CTX_ELIMIT : CTX_OK;
}

/* One budget's state for one name. */
static int add_state(json_t *arr, size_t index, const ctx_budget *b, const char *name,
                     int64_t used, int64_t now)
{
    int64_t reset = now - now % b->per_ms + b->per_ms;
    char when[32];

    iso(reset, when, sizeof when);
    return json_array_append_new(
        arr, json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s}", "budget", (json_int_t)index,
                       "kind", b->user ? "user" : "agent", "name", name, "per", b->per,
                       "tokens", (json_int_t)b->tokens, "used", (json_int_t)used,
                       "remaining", (json_int_t)(used < b->tokens ? b->tokens - used : 0),
                       "resets_at", (json_int_t)reset, "resets_at_iso", when))
               ? CTX_ENOMEM
               : CTX_OK;
}

typedef struct star_scan {
    const ctx_config *cfg;
    const ctx_budget *b;
    size_t index;
    int64_t now;
    budget_pending_fn pending;
    void *parg;
    json_t *arr;
} star_scan;

static int star_one(void *arg, int kind, const char *name, int64_t tokens)
{
    star_scan *ss = arg;

    if (kind != kind_of(ss->b) || !applies(ss->cfg, ss->b, kind, name))
        return 0;
    if (ss->pending)
        tokens += ss->pending(ss->parg, kind, name);
    return add_state(ss->arr, ss->index, ss->b, name, tokens, ss->now);
}

int budget_status(ctx_store *log, const ctx_config *cfg, int64_t now, budget_pending_fn pending,
                  void *parg, json_t **out, ctx_error *err)
{
    budget_counts c = {file_get, file_scan, log};

    return budget_status_in(log ? &c : NULL, cfg, now, pending, parg, out, err);
}

int budget_status_in(const budget_counts *log, const ctx_config *cfg, int64_t now,
                     budget_pending_fn pending, void *parg, json_t **out, ctx_error *err)
{
    json_t *arr = json_array();
    int rc = arr ? CTX_OK : CTX_ENOMEM;

    for (size_t i = 0; !rc && i < cfg->nbudgets; i++) {
        const ctx_budget *b = &cfg->budgets[i];
        int64_t used;
        if (strcmp(who_of(b), "*")) {
            if (!(rc = used_of(log, b, kind_of(b), who_of(b), now, pending, parg, &used, err)))
                rc = add_state(arr, i, b, who_of(b), used, now);
        } else if (log) {
            star_scan ss = {cfg, b, i, now, pending, parg, arr};
            rc = log->xScan(log->self, b->per_ms, now - now % b->per_ms, star_one, &ss, err);
        }
    }
    if (rc == CTX_ENOMEM)
        ctx_error_set(err, rc, "budgets: out of memory");
    if (rc) {
        json_decref(arr);
        arr = NULL;
    }
    *out = arr;
    return rc;
}

/* label - a Prometheus label value, escaped. */
static void label(ctx_buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            ctx_buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            ctx_buf_puts(b, "\\n");
        else
            ctx_buf_append(b, s, 1);
    }
}

void budget_prometheus(const json_t *status, ctx_buf *b)
{
    static const struct {
        const char *metric, *field, *help;
        int64_t scale;
    } m[] = {
        {"ctxgate_budget_tokens", "tokens", "Tokens the budget allows per window.", 1},
        {"ctxgate_budget_used_tokens", "used", "Tokens served in the budget's current window.",
         1},
        {"ctxgate_budget_remaining_tokens", "remaining",
         "Tokens left in the budget's current window (0: searches and fetches answer 429).", 1},
        {"ctxgate_budget_reset_timestamp_seconds", "resets_at",
         "When the budget's current window ends (Unix time).", 1000},
    };
    size_t i;
    json_t *e;

    for (size_t k = 0; k < sizeof m / sizeof *m; k++) {
        ctx_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", m[k].metric, m[k].help,
                       m[k].metric);
        json_array_foreach(status, i, e) {
            ctx_buf_printf(b, "%s{budget=\"%lld\",kind=\"", m[k].metric,
                           (long long)json_integer_value(json_object_get(e, "budget")));
            label(b, json_string_value(json_object_get(e, "kind")));
            ctx_buf_puts(b, "\",name=\"");
            label(b, json_string_value(json_object_get(e, "name")));
            ctx_buf_puts(b, "\",per=\"");
            label(b, json_string_value(json_object_get(e, "per")));
            ctx_buf_printf(b, "\"} %lld\n",
                           (long long)(json_integer_value(json_object_get(e, m[k].field)) /
                                       m[k].scale));
        }
    }
}
