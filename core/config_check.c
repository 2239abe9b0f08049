/*
 * config_check.c - the checks of a loaded config that look across sections:
 * every schedule the agent will run, the history and audit bounds, that
 * an agent's grant names configured sources, the budgets, and the address
 * `serve` will listen on. They run at load, so `sync`, `agent`, `serve` and
 * every other command accept and refuse the same files.
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "schedule.h"

/* check_schedules - each source's schedule and the agent's own jobs. */
static int check_schedules(const ctx_config *cfg, ctx_error *err)
{
    static const char *const kinds[] = {"sync", "permissions", "full"};
    char what[96];
    int rc;

    for (size_t i = 0; i < cfg->nsources; i++) {
        const ctx_schedule_cfg *s = &cfg->sources[i].schedule;
        const char *exprs[] = {s->sync, s->permissions, s->full};
        for (size_t k = 0; k < 3; k++) {
            if (!exprs[k] || !*exprs[k]) /* "" turns the job off */
                continue;
            snprintf(what, sizeof what, "sources[%zu].schedule.%s", i, kinds[k]);
            if ((rc = sched_check(exprs[k], what, err)))
                return rc;
        }
    }
    if ((cfg->agent.embed && *cfg->agent.embed &&
         (rc = sched_check(cfg->agent.embed, "agent.embed", err))) ||
        (cfg->agent.maintain && *cfg->agent.maintain &&
         (rc = sched_check(cfg->agent.maintain, "agent.maintain", err))))
        return rc;
    return CTX_OK;
}

/* check_agent - the agent's intervals and history bounds. */
static int check_agent(ctx_config *cfg, ctx_error *err)
{
    ctx_agent_cfg *a = &cfg->agent;
    int64_t ms;
    int rc;

    if ((rc = sched_interval(a->retry, "agent.retry", "\"30s\"", 0, &ms, err)))
        return rc;
    if (a->jitter && *a->jitter && strcmp(a->jitter, "0s") &&
        (rc = sched_interval(a->jitter, "agent.jitter", "\"30s\" (or \"0s\": none)", 0, &ms,
                             err)))
        return rc;
    if (a->history_keep < 1 || a->history_keep > 1000000)
        return ctx_error_set(err, CTX_ECONFIG, "agent.history_keep: %lld is out of range; use"
                             " 1..1000000 (runs kept per source and per job)",
                             (long long)a->history_keep);
    return sched_interval(a->history_retain, "agent.history_retain", "\"30d\"", 1,
                          &a->history_retain_ms, err);
}

/* check_grant_sources - each source an agent is granted is configured. */
static int check_grant_sources(const ctx_config *cfg, ctx_error *err)
{
    for (size_t i = 0; i < cfg->nagents; i++) {
        const ctx_agent_grant *g = &cfg->agents[i];
        for (size_t j = 0; j < g->sources.n; j++) {
            const char *name = g->sources.v[j];
            if (!strcmp(name, "*") || ctx_config_source(cfg, name))
                continue;
            return ctx_error_set(err, CTX_ECONFIG,
                                 "agents[%zu].sources[%zu]: \"%s\" is not a configured source;"
                                 " name one of sources[].name, or \"*\" for all of them", i, j,
                                 name);
        }
    }
    return CTX_OK;
}

/* check_listen - serve.listen is IPv4:port, as `serve` will bind it
 * (retrieval/http.c); `sync` and `agent` refused nothing here before. */
static int check_listen(const ctx_config *cfg, ctx_error *err)
{
    const char *l = cfg->serve.listen ? cfg->serve.listen : "";
    const char *colon = strrchr(l, ':'), *p;
    char host[64];
    struct in_addr a;
    long port = 0;

    for (p = colon ? colon + 1 : ""; *p >= '0' && *p <= '9' && port <= 65535; p++)
        port = port * 10 + (*p - '0');
    if (!colon || p == colon + 1 || *p || port > 65535 || (size_t)(colon - l) >= sizeof host)
        return ctx_error_set(err, CTX_ECONFIG, "serve.listen: \"%s\" is not host:port; use"
                             " an IPv4 address and a port, e.g. \"127.0.0.1:8080\"", l);
    snprintf(host, sizeof host, "%.*s", (int)(colon - l), l);
    if (strcmp(host, "localhost") && inet_pton(AF_INET, host, &a) != 1)
        return ctx_error_set(err, CTX_ECONFIG, "serve.listen: \"%s\" is not an IPv4 address;"
                             " use one such as 127.0.0.1 or 0.0.0.0 (or localhost)", host);
    return CTX_OK;
}

const ctx_opt ctx__budget_opts[] = {
    {"user", CTX_OPT_STRING, NULL, offsetof(ctx_budget, user), 0,
     "the user (a token's sub) it limits, or \"*\": each user no other entry names", NULL, 0},
    {"agent", CTX_OPT_STRING, NULL, offsetof(ctx_budget, agent), 0,
     "or the agent (one of agents[].name) it limits, or \"*\": each agent no other entry"
     " names", NULL, 0},
    {"tokens", CTX_OPT_INT, NULL, offsetof(ctx_budget, tokens), 1,
     "tokens of context served per window; once reached, searches and fetches answer 429"
     " until the window ends", NULL, 0},
    {"per", CTX_OPT_STRING, "day", offsetof(ctx_budget, per), 0,
     "the window: \"hour\" or \"day\" (UTC, starting on the hour or at midnight)", NULL, 0},
    CTX_OPT_END,
};

/* check_budgets - each entry names one user or one agent, a positive
 * count and a window; an agent must be registered. */
static int check_budgets(ctx_config *cfg, ctx_error *err)
{
    for (size_t i = 0; i < cfg->nbudgets; i++) {
        ctx_budget *b = &cfg->budgets[i];
        const char *who = b->user ? b->user : b->agent;
        if (!b->user == !b->agent)
            return ctx_error_set(err, CTX_ECONFIG, "budgets[%zu]: give either \"user\" or"
                                 " \"agent\" (one entry limits one of them)", i);
        if (!*who)
            return ctx_error_set(err, CTX_ECONFIG, "budgets[%zu].%s: empty; name one, or"
                                 " \"*\" for each", i, b->user ? "user" : "agent");
        if (b->agent && strcmp(b->agent, "*") && !ctx_config_agent(cfg, b->agent))
            return ctx_error_set(err, CTX_ECONFIG, "budgets[%zu].agent: \"%s\" is not a"
                                 " registered agent; name one of agents[].name, or \"*\"", i,
                                 b->agent);
        if (b->tokens < 1)
            return ctx_error_set(err, CTX_ECONFIG, "budgets[%zu].tokens: %lld; use a positive"
                                 " number of tokens", i, (long long)b->tokens);
        if (!strcmp(b->per, "hour"))
            b->per_ms = 3600000;
        else if (!strcmp(b->per, "day"))
            b->per_ms = 86400000;
        else
            return ctx_error_set(err, CTX_ECONFIG, "budgets[%zu].per: \"%s\"; use \"hour\""
                                 " or \"day\"", i, b->per);
        for (size_t j = 0; j < i; j++) {
            const ctx_budget *o = &cfg->budgets[j];
            if (!o->user == !b->user && !strcmp(o->user ? o->user : o->agent, who) &&
                o->per_ms == b->per_ms)
                return ctx_error_set(err, CTX_ECONFIG, "budgets[%zu]: the same %s and window"
                                     " as budgets[%zu]; keep one", i,
                                     b->user ? "user" : "agent", j);
        }
    }
    return CTX_OK;
}

int ctx__config_check(ctx_config *cfg, ctx_error *err)
{
    int rc;

    if ((rc = check_schedules(cfg, err)) || (rc = check_agent(cfg, err)) ||
        (rc = check_grant_sources(cfg, err)) || (rc = check_budgets(cfg, err)) ||
        (rc = check_listen(cfg, err)))
        return rc;
    return CTX_OK;
}
