/*
 * config.c - load and check ctxgate.json (see config.h).
 */
#include "config.h"
#include "config_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "opts.h"
#include "schedule.h"
#include "util.h"
#include "json.h"

typedef struct chunk_cfg {
    int64_t max_tokens, overlap_tokens;
} chunk_cfg;

typedef struct top_cfg {
    char *data_dir;
    json_t *chunk;
    json_t *embeddings;
    json_t *agent;
    json_t *sources;
    ctx_objlist agents;
    ctx_objlist budgets;
    json_t *auth;
    json_t *serve;
    json_t *audit;
    json_t *search;
    json_t *cluster;
} top_cfg;

typedef struct audit_cfg {
    int store_queries;
    char *retain;
} audit_cfg;

static const ctx_opt grant_opts[] = {
    {"name", CTX_OPT_STRING, NULL, offsetof(ctx_agent_grant, name), 1,
     "the agent's name: a token's act.sub", NULL, 0},
    {"sources", CTX_OPT_STRLIST, NULL, offsetof(ctx_agent_grant, sources), 1,
     "sources it may read (\"*\" = all)", NULL, 0},
    {"labels", CTX_OPT_STRLIST, NULL, offsetof(ctx_agent_grant, labels), 0,
     "labels it may read (\"*\" = any); documents without labels are always in", NULL, 0},
    {"max_k", CTX_OPT_INT, "20", offsetof(ctx_agent_grant, max_k), 0,
     "most results of one search (1..1000)", NULL, 0},
    {"max_tokens", CTX_OPT_INT, "4000", offsetof(ctx_agent_grant, max_tokens), 0,
     "most tokens of context in one answer", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt top_opts[] = {
    {"data_dir", CTX_OPT_STRING, "./data", offsetof(top_cfg, data_dir), 0,
     "directory of the store and indexes, relative to this file", NULL, 0},
    {"chunk", CTX_OPT_JSON, NULL, offsetof(top_cfg, chunk), 0,
     "chunking: {\"max_tokens\": 256, \"overlap_tokens\": 32}", NULL, 0},
    {"embeddings", CTX_OPT_JSON, NULL, offsetof(top_cfg, embeddings), 0,
     "the embedder: {\"provider\": \"hash\", \"dim\": 384}", NULL, 0},
    {"agent", CTX_OPT_JSON, NULL, offsetof(top_cfg, agent), 0,
     "the maintenance agent: {\"max_jobs\": 2, \"embed\": \"1m\"}", NULL, 0},
    {"sources", CTX_OPT_JSON, NULL, offsetof(top_cfg, sources), 1,
     "the sources to sync: an array of objects with name and type", NULL, 0},
    {"agents", CTX_OPT_OBJLIST, NULL, offsetof(top_cfg, agents), 0,
     "agents that may act for users, each with its grant", grant_opts,
     sizeof(ctx_agent_grant)},
    {"budgets", CTX_OPT_OBJLIST, NULL, offsetof(top_cfg, budgets), 0,
     "token budgets: tokens of context a user or an agent may be served per UTC hour or day",
     ctx__budget_opts, sizeof(ctx_budget)},
    {"auth", CTX_OPT_JSON, NULL, offsetof(top_cfg, auth), 0,
     "bearer tokens: {\"issuer\", \"audience\", \"hs256_secret_env\"}", NULL, 0},
    {"serve", CTX_OPT_JSON, NULL, offsetof(top_cfg, serve), 0,
     "the HTTP service: {\"listen\": \"127.0.0.1:8080\"}", NULL, 0},
    {"audit", CTX_OPT_JSON, NULL, offsetof(top_cfg, audit), 0,
     "the audit log: {\"store_queries\": false}", NULL, 0},
    {"search", CTX_OPT_JSON, NULL, offsetof(top_cfg, search), 0,
     "hybrid fusion: {\"w_lexical\": 1, \"w_vector\": 1, \"rrf_k\": 60}", NULL, 0},
    {"cluster", CTX_OPT_JSON, NULL, offsetof(top_cfg, cluster), 0,
     "cluster mode (preview): {\"conninfo\": \"host=... dbname=...\", \"password_env\": ...}",
     NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt cluster_opts[] = {
    {"conninfo", CTX_OPT_STRING, "", offsetof(ctx_cluster_cfg, conninfo), 0,
     "libpq connection string of the PostgreSQL that holds the system of record and the job"
     " schedule; keep the password out of it (\"\" = embedded mode)", NULL, 0},
    {"password_env", CTX_OPT_STRING, "", offsetof(ctx_cluster_cfg, password_env), 0,
     "environment variable holding the PostgreSQL password", NULL, 0},
    {"password_file", CTX_OPT_STRING, "", offsetof(ctx_cluster_cfg, password_file), 0,
     "file holding the PostgreSQL password (its first line)", NULL, 0},
    {"lease_s", CTX_OPT_INT, "30", offsetof(ctx_cluster_cfg, lease_s), 0,
     "seconds a worker's claim on a job lasts unless renewed (5..3600); a killed worker's"
     " job is taken by another after this", NULL, 0},
    {"replica", CTX_OPT_STRING, "", offsetof(ctx_cluster_cfg, replica), 0,
     "this serve's replica name (a-z, 0-9, _; up to 40): its logical replication slot is"
     " ctxgate_<name>, and serve follows PostgreSQL into its own data_dir (\"\" = no"
     " following)", NULL, 0},
    {"max_lag_s", CTX_OPT_INT, "30", offsetof(ctx_cluster_cfg, max_lag_s), 0,
     "a replica further behind PostgreSQL than this (seconds, 1..86400) answers searches"
     " 503 rather than serve stale permissions", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt auth_opts[] = {
    {"issuer", CTX_OPT_STRING, "ctxgate", offsetof(ctx_auth_cfg, issuer), 0,
     "the iss every token must carry", NULL, 0},
    {"audience", CTX_OPT_STRING, "ctxgate", offsetof(ctx_auth_cfg, audience), 0,
     "the aud every token must carry (or list)", NULL, 0},
    {"hs256_secret_env", CTX_OPT_STRING, "CTXGATE_JWT_SECRET",
     offsetof(ctx_auth_cfg, hs256_secret_env), 0,
     "environment variable holding the HS256 secret (at least 32 bytes)", NULL, 0},
    {"hs256_secret_file", CTX_OPT_STRING, "", offsetof(ctx_auth_cfg, hs256_secret_file), 0,
     "file holding the HS256 secret, used when the variable is unset", NULL, 0},
    {"public_keys", CTX_OPT_STRLIST, NULL, offsetof(ctx_auth_cfg, public_keys), 0,
     "PEM public key files: an RSA key verifies RS256 tokens, a P-256 key ES256", NULL, 0},
    {"clock_skew_s", CTX_OPT_INT, "60", offsetof(ctx_auth_cfg, clock_skew_s), 0,
     "seconds of leeway on exp and nbf (0..600)", NULL, 0},
    {"discovery", CTX_OPT_BOOL, "false", offsetof(ctx_auth_cfg, discovery), 0,
     "issuer is an OpenID provider's URL (https, or http to 127.0.0.1/localhost): read its"
     " /.well-known/openid-configuration at start and check tokens with its JWKS", NULL, 0},
    {"jwks_refresh_min_s", CTX_OPT_INT, "30", offsetof(ctx_auth_cfg, jwks_refresh_min_s), 0,
     "a token naming an unknown kid fetches the JWKS again, at most once per this many"
     " seconds (0..3600)", NULL, 0},
    {"jwks_ttl_s", CTX_OPT_INT, "3600", offsetof(ctx_auth_cfg, jwks_ttl_s), 0,
     "seconds the JWKS is kept when its answer has no Cache-Control max-age (1..86400); a"
     " max-age is taken between jwks_refresh_min_s and a day",
     NULL, 0},
    {"jwks_timeout_ms", CTX_OPT_INT, "3000", offsetof(ctx_auth_cfg, jwks_timeout_ms), 0,
     "most milliseconds one fetch of the discovery document or JWKS may take (100..30000)",
     NULL, 0},
    {"user_claim", CTX_OPT_STRING, "sub", offsetof(ctx_auth_cfg, user_claim), 0,
     "the claim naming the user: \"sub\", \"email\", \"preferred_username\" or any other;"
     " \"a.b\" is claim b inside object a", NULL, 0},
    {"agent_claims", CTX_OPT_STRLIST, NULL, offsetof(ctx_auth_cfg, agent_claims), 0,
     "claims naming the agent acting for the user, the first present wins (e.g. [\"act.sub\","
     " \"azp\"]); default [\"act.sub\"] (RFC 8693 delegation)", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt serve_opts[] = {
    {"listen", CTX_OPT_STRING, "127.0.0.1:8080", offsetof(ctx_serve_cfg, listen), 0,
     "address and port to listen on", NULL, 0},
    {"threads", CTX_OPT_INT, "4", offsetof(ctx_serve_cfg, threads), 0,
     "worker threads, each with its own store connection (1..256)", NULL, 0},
    {"max_body_bytes", CTX_OPT_INT, "65536", offsetof(ctx_serve_cfg, max_body_bytes), 0,
     "largest request body; larger is 413", NULL, 0},
    {"user_rate", CTX_OPT_INT, "20", offsetof(ctx_serve_cfg, user_rate), 0,
     "requests per second per user (token bucket); 0 = unlimited", NULL, 0},
    {"user_burst", CTX_OPT_INT, "40", offsetof(ctx_serve_cfg, user_burst), 0,
     "requests a user may make at once", NULL, 0},
    {"agent_rate", CTX_OPT_INT, "100", offsetof(ctx_serve_cfg, agent_rate), 0,
     "requests per second per agent (token bucket); 0 = unlimited", NULL, 0},
    {"agent_burst", CTX_OPT_INT, "200", offsetof(ctx_serve_cfg, agent_burst), 0,
     "requests an agent may make at once", NULL, 0},
    {"public_url", CTX_OPT_STRING, "", offsetof(ctx_serve_cfg, public_url), 0,
     "base URL clients reach the service at (default http://<listen>)", NULL, 0},
    /* admin endpoints: one static bearer token, kept out of the file itself */
    {"admin_token_env", CTX_OPT_STRING, "CTXGATE_ADMIN_TOKEN",
     offsetof(ctx_serve_cfg, admin_token_env), 0,
     "environment variable holding the admin bearer token (at least 32 bytes) that"
     " /metrics and /v1/admin/ need", NULL, 0},
    {"admin_token_file", CTX_OPT_STRING, "", offsetof(ctx_serve_cfg, admin_token_file), 0,
     "file holding the admin bearer token, used when the variable is unset", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt search_opts_table[] = {
    {"w_lexical", CTX_OPT_NUMBER, "1", offsetof(ctx_search_cfg, w_lexical), 0,
     "weight of the lexical leg in hybrid fusion (0 turns it off)", NULL, 0},
    {"w_vector", CTX_OPT_NUMBER, "1", offsetof(ctx_search_cfg, w_vector), 0,
     "weight of the vector leg in hybrid fusion (0 turns it off)", NULL, 0},
    {"fusion", CTX_OPT_STRING, "rrf", offsetof(ctx_search_cfg, fusion), 0,
     "how hybrid fuses its legs: \"rrf\" (reciprocal rank fusion, by ranks) or \"scores\""
     " (each leg's scores scaled to 0..1 over its candidates, weighted and summed)", NULL, 0},
    {"rrf_k", CTX_OPT_INT, "60", offsetof(ctx_search_cfg, rrf_k), 0,
     "reciprocal rank fusion's k: a hit at rank r adds w / (rrf_k + r)", NULL, 0},
    {"depth", CTX_OPT_INT, "0", offsetof(ctx_search_cfg, depth), 0,
     "candidates each leg of hybrid hands to the fusion, 1..1000; 0 = 4 times k, at least 50",
     NULL, 0},
    {"expand_terms", CTX_OPT_INT, "0", offsetof(ctx_search_cfg, expand_terms), 0,
     "lexical search (alone or as hybrid's leg) asks again with up to this many words of its"
     " first answer's best pages (pseudo-relevance feedback); 0 turns it off, at most 16",
     NULL, 0},
    {"expand_docs", CTX_OPT_INT, "10", offsetof(ctx_search_cfg, expand_docs), 0,
     "how many of the first answer's best documents the added words come from, 1..100",
     NULL, 0},
    {"expand_weight", CTX_OPT_NUMBER, "0.5", offsetof(ctx_search_cfg, expand_weight), 0,
     "the best added word counts this fraction of its IDF (the others less), (0, 1]", NULL, 0},
    {"proximity", CTX_OPT_NUMBER, "0", offsetof(ctx_search_cfg, proximity), 0,
     "lexical search (alone or as hybrid's leg) reorders its best 50 chunks by a bonus for the"
     " query's words close together: this weight times the lesser IDF over the distance"
     " squared, per pair; 0 turns it off, at most 10", NULL, 0},
    {"doc_decay", CTX_OPT_NUMBER, "0", offsetof(ctx_search_cfg, doc_decay), 0,
     "lexical search (alone or as hybrid's leg) scores a document by its best chunk plus this"
     " times its second, its square times its third, ... among the best 200 chunks; 0 ranks"
     " a document by its best chunk alone; 0..0.9", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt audit_opts[] = {
    {"store_queries", CTX_OPT_BOOL, "false", offsetof(audit_cfg, store_queries), 0,
     "keep query text in the audit log; false keeps its SHA-256 only", NULL, 0},
    {"retain", CTX_OPT_STRING, "90d", offsetof(audit_cfg, retain), 0,
     "how long records are kept, e.g. \"90d\" (a year: \"365d\"); the maintain job prunes"
     " older ones; \"off\" keeps them all", NULL, 0},
    CTX_OPT_END,
};

/* parse_section - a JSON object section by table (missing = all defaults). */
static int parse_section(const ctx_opt *table, json_t *v, void *dst, const char *name,
                         ctx_error *err)
{
    json_t *o = v ? json_incref(v) : json_object();
    int rc = ctx_opts_parse(table, o, dst, name, err);
    json_decref(o);
    return rc;
}

static int check_auth(ctx_auth_cfg *a, ctx_error *err)
{
    if (a->discovery && !ctx_url_https_or_loopback(a->issuer))
        return ctx_error_set(err, CTX_ECONFIG, "auth.issuer: \"%s\" is not an https URL (http"
                             " is allowed to 127.0.0.1 or localhost only); with auth.discovery"
                             " set it to the provider's issuer URL", a->issuer);
    if (a->jwks_refresh_min_s < 0 || a->jwks_refresh_min_s > 3600)
        return ctx_error_set(err, CTX_ECONFIG, "auth.jwks_refresh_min_s: out of range; use"
                             " 0..3600");
    if (a->jwks_ttl_s < 1 || a->jwks_ttl_s > 86400)
        return ctx_error_set(err, CTX_ECONFIG, "auth.jwks_ttl_s: out of range; use 1..86400");
    if (a->jwks_timeout_ms < 100 || a->jwks_timeout_ms > 30000)
        return ctx_error_set(err, CTX_ECONFIG, "auth.jwks_timeout_ms: out of range; use"
                             " 100..30000");
    if (!*a->user_claim)
        return ctx_error_set(err, CTX_ECONFIG, "auth.user_claim: empty; use \"sub\" or the"
                             " claim that names your users");
    for (size_t i = 0; i < a->agent_claims.n; i++)
        if (!*a->agent_claims.v[i])
            return ctx_error_set(err, CTX_ECONFIG, "auth.agent_claims[%zu]: empty; name a"
                                 " claim such as \"act.sub\", \"azp\" or \"client_id\"", i);
    return CTX_OK;
}

/* check_cluster - the cluster section's values, once parsed. */
static int check_cluster(const ctx_cluster_cfg *c, ctx_error *err)
{
    if (!*c->conninfo && (*c->password_env || *c->password_file))
        return ctx_error_set(err, CTX_ECONFIG, "cluster.conninfo: required when a password is"
                             " given; set it to the PostgreSQL's conninfo, or drop the"
                             " cluster section for the embedded mode");
    if (*c->password_env && *c->password_file)
        return ctx_error_set(err, CTX_ECONFIG, "cluster.password_env, cluster.password_file:"
                             " set one of them, not both");
    if (strstr(c->conninfo, "password"))
        return ctx_error_set(err, CTX_ECONFIG, "cluster.conninfo: holds a password; move it"
                             " to cluster.password_env or cluster.password_file");
    if (c->lease_s < 5 || c->lease_s > 3600)
        return ctx_error_set(err, CTX_ECONFIG, "cluster.lease_s: %lld is out of range; use"
                             " 5..3600 (seconds)", (long long)c->lease_s);
    if (c->max_lag_s < 1 || c->max_lag_s > 86400)
        return ctx_error_set(err, CTX_ECONFIG, "cluster.max_lag_s: %lld is out of range; use"
                             " 1..86400 (seconds)", (long long)c->max_lag_s);
    if (strlen(c->replica) > 40 || strspn(c->replica, "abcdefghijklmnopqrstuvwxyz0123456789_")
        != strlen(c->replica))
        return ctx_error_set(err, CTX_ECONFIG, "cluster.replica: \"%s\" is not a replica name;"
                             " use up to 40 of a-z, 0-9 and _", c->replica);
    if (*c->replica && !*c->conninfo)
        return ctx_error_set(err, CTX_ECONFIG, "cluster.replica: needs cluster.conninfo (the"
                             " PostgreSQL to follow)");
    return CTX_OK;
}

static int check_grants(ctx_config *cfg, ctx_error *err)
{
    int rc;

    for (size_t i = 0; i < cfg->nagents; i++) {
        const ctx_agent_grant *g = &cfg->agents[i];
        if (!ctx_valid_name(g->name))
            return ctx_error_set(err, CTX_ECONFIG, "agents[%zu].name: not a valid name; use"
                                 " letters, digits, '_', '-' or '.'", i);
        if (g->max_k < 1 || g->max_k > 1000 || g->max_tokens < 1)
            return ctx_error_set(err, CTX_ECONFIG, "agents[%zu].%s: out of range; use %s", i,
                                 g->max_tokens < 1 ? "max_tokens" : "max_k",
                                 g->max_tokens < 1 ? "a positive number" : "1..1000");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->agents[j].name, g->name))
                return ctx_error_set(err, CTX_ECONFIG, "agents[%zu].name: \"%s\" is already"
                                     " used by agents[%zu]", i, g->name, j);
    }
    if (cfg->auth.clock_skew_s < 0 || cfg->auth.clock_skew_s > 600)
        return ctx_error_set(err, CTX_ECONFIG, "auth.clock_skew_s: out of range; use 0..600");
    if ((rc = check_auth(&cfg->auth, err)))
        return rc;
    if (cfg->serve.threads < 1 || cfg->serve.threads > 256)
        return ctx_error_set(err, CTX_ECONFIG, "serve.threads: out of range; use 1..256");
    if (cfg->serve.max_body_bytes < 256)
        return ctx_error_set(err, CTX_ECONFIG, "serve.max_body_bytes: use at least 256");
    if (cfg->serve.user_rate < 0 || cfg->serve.agent_rate < 0 || cfg->serve.user_burst < 1 ||
        cfg->serve.agent_burst < 1)
        return ctx_error_set(err, CTX_ECONFIG, "serve: rates must be >= 0 and bursts >= 1");
    return CTX_OK;
}

static const ctx_opt chunk_opts[] = {
    {"max_tokens", CTX_OPT_INT, "256", offsetof(chunk_cfg, max_tokens), 0,
     "token budget of one chunk (16..8192)", NULL, 0},
    {"overlap_tokens", CTX_OPT_INT, "32", offsetof(chunk_cfg, overlap_tokens), 0,
     "tokens repeated from the end of one chunk at the start of the next", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt embed_opts[] = {
    {"provider", CTX_OPT_STRING, "hash", offsetof(ctx_embed_cfg, provider), 0,
     "\"hash\" (built in, no network), \"lsa\" (built in, no network: a model trained on"
     " the indexed chunks by `ctxgate embed`) or \"openai\" (any OpenAI-compatible endpoint)",
     NULL, 0},
    {"model", CTX_OPT_STRING, "", offsetof(ctx_embed_cfg, model), 0,
     "model name; hash: \"v1\", openai: e.g. \"text-embedding-3-small\"", NULL, 0},
    {"dim", CTX_OPT_INT, "384", offsetof(ctx_embed_cfg, dim), 0,
     "vector dimension (2..8192); must be what the model returns; lsa: the dimensions"
     " the trained model keeps", NULL, 0},
    {"base_url", CTX_OPT_STRING, "", offsetof(ctx_embed_cfg, base_url), 0,
     "openai: the endpoint up to /v1 (default https://api.openai.com/v1)", NULL, 0},
    {"api_key_env", CTX_OPT_STRING, "OPENAI_API_KEY", offsetof(ctx_embed_cfg, api_key_env), 0,
     "openai: environment variable holding the API key", NULL, 0},
    {"batch_size", CTX_OPT_INT, "64", offsetof(ctx_embed_cfg, batch_size), 0,
     "chunks per request and per transaction (1..2048)", NULL, 0},
    {"timeout_ms", CTX_OPT_INT, "30000", offsetof(ctx_embed_cfg, timeout_ms), 0,
     "openai: time limit of one request", NULL, 0},
    {"max_retries", CTX_OPT_INT, "5", offsetof(ctx_embed_cfg, max_retries), 0,
     "openai: retries of 429, 5xx and timeouts, with backoff honouring Retry-After", NULL, 0},
    {"query_timeout_ms", CTX_OPT_INT, "2000", offsetof(ctx_embed_cfg, query_timeout_ms), 0,
     "openai: time limit of embedding a search's query, never retried; past it the search"
     " answers from the lexical leg (50..60000)", NULL, 0},
    {"concurrency", CTX_OPT_INT, "1", offsetof(ctx_embed_cfg, concurrency), 0,
     "openai: requests in flight at once (1..64)", NULL, 0},
    {"max_retry_after", CTX_OPT_INT, "300", offsetof(ctx_embed_cfg, max_retry_after), 0,
     "openai: the longest wait a 429's or 503's Retry-After (seconds or an HTTP-date) may ask"
     " for, in seconds; a server asking more fails the run, which the next embed run"
     " resumes (1..86400)", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt agent_opts[] = {
    {"max_jobs", CTX_OPT_INT, "2", offsetof(ctx_agent_cfg, max_jobs), 0,
     "jobs run at once (1..64)", NULL, 0},
    {"max_retries", CTX_OPT_INT, "3", offsetof(ctx_agent_cfg, max_retries), 0,
     "retries of a failed job before it waits for its next scheduled time", NULL, 0},
    {"retry", CTX_OPT_STRING, "30s", offsetof(ctx_agent_cfg, retry), 0,
     "first retry delay, doubled at each retry", NULL, 0},
    {"jitter", CTX_OPT_STRING, "0s", offsetof(ctx_agent_cfg, jitter), 0,
     "the most a job's start is delayed (stable per job), so sources do not start together",
     NULL, 0},
    {"embed", CTX_OPT_STRING, "1m", offsetof(ctx_agent_cfg, embed), 0,
     "schedule of the embedding job (an interval or a cron expression)", NULL, 0},
    {"maintain", CTX_OPT_STRING, "1h", offsetof(ctx_agent_cfg, maintain), 0,
     "schedule of index upkeep: ranking statistics, FTS5 merge, WAL checkpoint, pruning"
     " of the audit log and run history", NULL, 0},
    {"history_keep", CTX_OPT_INT, "1000", offsetof(ctx_agent_cfg, history_keep), 0,
     "sync runs kept per source and job runs per job, newest first (1..1000000)", NULL, 0},
    {"history_retain", CTX_OPT_STRING, "30d", offsetof(ctx_agent_cfg, history_retain), 0,
     "sync and job runs older than this are pruned (a source's last run, last good run and"
     " last hold stay); \"off\" bounds them by history_keep alone", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt schedule_opts[] = {
    {"sync", CTX_OPT_STRING, "15m", offsetof(ctx_schedule_cfg, sync), 0,
     "incremental sync: an interval (\"15m\") or a cron expression in UTC (\"*/15 * * * *\")",
     NULL, 0},
    {"permissions", CTX_OPT_STRING, "5m", offsetof(ctx_schedule_cfg, permissions), 0,
     "permission sync: ids and ACLs of every stream (deletes what is gone, never"
     " re-chunks), users and groups; \"\" turns it off", NULL, 0},
    {"full", CTX_OPT_STRING, "@daily", offsetof(ctx_schedule_cfg, full), 0,
     "full refresh that prunes what the source no longer has; \"\" turns it off", NULL, 0},
    {"permission_streams", CTX_OPT_STRLIST, NULL, offsetof(ctx_schedule_cfg, permission_streams),
     0, "the streams a permission sync reads as usual, not by ids and ACLs (default"
     " \"principals\", \"users\", \"groups\")", NULL, 0},
    CTX_OPT_END,
};

/* ---- a source's "guard" (sync guards against mass changes) ---- */
static const ctx_opt guard_opts[] = {
    {"max_delete_share", CTX_OPT_NUMBER, "0.5", offsetof(ctx_guard_cfg, max_delete_share), 0,
     "a sync that would delete or prune more than this share of the source's documents is"
     " held until `ctxgate sync SOURCE --confirm` (0..1; 1 turns it off)", NULL, 0},
    {"min_deletes", CTX_OPT_INT, "10", offsetof(ctx_guard_cfg, min_deletes), 0,
     "a run deleting no more than this many documents is never held by max_delete_share"
     " (a small source's ordinary churn)", NULL, 0},
    {"max_everyone", CTX_OPT_INT, "1000", offsetof(ctx_guard_cfg, max_everyone), 0,
     "a sync that would make more than this many documents readable by everyone is held"
     " until `ctxgate sync SOURCE --confirm` (0 turns it off)", NULL, 0},
    CTX_OPT_END,
};

static int parse_guard(json_t *obj, size_t i, ctx_guard_cfg *g, ctx_error *err)
{
    char where[48];
    json_t *v = json_object_get(obj, "guard");
    int rc;

    snprintf(where, sizeof where, "sources[%zu].guard", i);
    v = v ? json_incref(v) : json_object();
    rc = ctx_opts_parse(guard_opts, v, g, where, err);
    json_decref(v);
    if (rc)
        return rc;
    if (!(g->max_delete_share >= 0 && g->max_delete_share <= 1))
        return ctx_error_set(err, CTX_ECONFIG, "%s.max_delete_share: %g is not a share; use"
                             " 0..1 (0.5 = half the source; 1 turns the guard off)", where,
                             g->max_delete_share);
    if (g->min_deletes < 0)
        return ctx_error_set(err, CTX_ECONFIG, "%s.min_deletes: use a count >= 0", where);
    if (g->max_everyone < 0)
        return ctx_error_set(err, CTX_ECONFIG, "%s.max_everyone: use a count >= 0 (0 turns"
                             " the guard off)", where);
    return CTX_OK;
}
/* ---- end of "guard" ---- */

/* The host's keys in a source object; everything else is the connector's. */
static const char *const host_keys[] = {"name", "type", "plugin", "enabled",
                                        "max_record_bytes", "schedule", "directory",
                                        "principals_from", "max_permission_age", "guard",
                                        NULL};

static int is_host_key(const char *k)
{
    for (const char *const *h = host_keys; *h; h++)
        if (!strcmp(*h, k))
            return 1;
    return 0;
}

static int parse_source(json_t *obj, size_t i, ctx_source_cfg *s, ctx_error *err)
{
    const char *key;
    json_t *v;

    s->index = i;
    s->enabled = 1;
    s->max_record_bytes = 16 * 1024 * 1024;
    if (!json_is_object(obj))
        return ctx_error_set(err, CTX_ECONFIG, "sources[%zu]: expected an object, got %s", i,
                             ctx_json_typename(obj));
    v = json_object_get(obj, "name");
    if (!json_is_string(v) || !ctx_valid_name(json_string_value(v)))
        return ctx_error_set(err, CTX_ECONFIG,
                             "sources[%zu].name: %s; give each source a unique name of"
                             " letters, digits, '_', '-' or '.'", i,
                             v ? "not a valid name" : "missing");
    v = json_object_get(obj, "type");
    if (!json_is_string(v))
        return ctx_error_set(err, CTX_ECONFIG,
                             "sources[%zu].type: %s; use \"files\", \"postgres\" or"
                             " \"plugin\" (with \"plugin\": \"path/to/connector.so\")",
                             i, v ? "expected a string" : "missing");
    s->name = ctx_strdup(json_string_value(json_object_get(obj, "name")));
    s->type = ctx_strdup(json_string_value(v));
    if ((v = json_object_get(obj, "plugin"))) {
        if (!json_is_string(v))
            return ctx_error_set(err, CTX_ECONFIG, "sources[%zu].plugin: expected a path", i);
        s->plugin = ctx_strdup(json_string_value(v));
    }
    if ((v = json_object_get(obj, "enabled"))) {
        if (!json_is_boolean(v))
            return ctx_error_set(err, CTX_ECONFIG, "sources[%zu].enabled: expected true or false", i);
        s->enabled = json_is_true(v);
    }
    if ((v = json_object_get(obj, "max_record_bytes"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1024)
            return ctx_error_set(err, CTX_ECONFIG,
                                 "sources[%zu].max_record_bytes: expected an integer >= 1024", i);
        s->max_record_bytes = json_integer_value(v);
    }
    if ((v = json_object_get(obj, "directory"))) {
        if (!json_is_boolean(v))
            return ctx_error_set(err, CTX_ECONFIG,
                                 "sources[%zu].directory: expected true or false (true: this"
                                 " source's users, groups and mappings govern every source)", i);
        s->directory = json_is_true(v);
    }
    if ((v = json_object_get(obj, "max_permission_age"))) {
        sched_spec spec;
        ctx_error perr;
        char what[64];
        snprintf(what, sizeof what, "sources[%zu].max_permission_age", i);
        if (json_is_string(v) && !strcmp(json_string_value(v), "off"))
            s->max_permission_age_ms = -1;
        else if (!json_is_string(v) || sched_parse(json_string_value(v), what, &spec, &perr) ||
                 spec.every_ms <= 0)
            return ctx_error_set(err, CTX_ECONFIG,
                                 "%s: expected a duration such as \"30m\", \"1h\" or \"2d\","
                                 " or \"off\" to never withhold the source", what);
        else
            s->max_permission_age_ms = spec.every_ms;
    }
    if ((v = json_object_get(obj, "principals_from"))) {
        size_t j;
        json_t *e;
        if (!json_is_array(v))
            return ctx_error_set(err, CTX_ECONFIG,
                                 "sources[%zu].principals_from: expected an array of source"
                                 " names, e.g. [\"okta\"]", i);
        if (!(s->principals_from.v = ctx_calloc(json_array_size(v) + 1, sizeof(char *))))
            return CTX_ENOMEM;
        json_array_foreach(v, j, e) {
            if (!json_is_string(e))
                return ctx_error_set(err, CTX_ECONFIG,
                                     "sources[%zu].principals_from[%zu]: expected a source"
                                     " name", i, j);
            if (!(s->principals_from.v[s->principals_from.n++] =
                      ctx_strdup(json_string_value(e))))
                return CTX_ENOMEM;
        }
    }
    {
        char where[48];
        json_t *sch = json_object_get(obj, "schedule");
        int rc;
        snprintf(where, sizeof where, "sources[%zu].schedule", i);
        sch = sch ? json_incref(sch) : json_object();
        rc = ctx_opts_parse(schedule_opts, sch, &s->schedule, where, err);
        json_decref(sch);
        if (rc)
            return rc;
    }
    {
        int rc = parse_guard(obj, i, &s->guard, err);
        if (rc)
            return rc;
    }
    if (!(s->conn = json_object()))
        return CTX_ENOMEM;
    json_object_foreach(obj, key, v) {
        if (!is_host_key(key))
            json_object_set(s->conn, key, v);
    }
    return s->name && s->type ? CTX_OK : CTX_ENOMEM;
}

/* Each principals_from entry names another configured source. */
static int check_principals_from(const ctx_config *cfg, ctx_error *err)
{
    for (size_t i = 0; i < cfg->nsources; i++) {
        const ctx_source_cfg *s = &cfg->sources[i];
        for (size_t j = 0; j < s->principals_from.n; j++) {
            const char *name = s->principals_from.v[j];
            const ctx_source_cfg *other = ctx_config_source(cfg, name);
            if (!other || other == s)
                return ctx_error_set(err, CTX_ECONFIG,
                                     "sources[%zu].principals_from[%zu]: \"%s\" is %s; name"
                                     " another source of this config whose users and groups"
                                     " should govern \"%s\"", i, j, name,
                                     other ? "this source itself" : "not a configured source",
                                     s->name);
        }
    }
    return CTX_OK;
}

int ctx_config_parse(json_t *root, const char *base_dir, ctx_config *cfg, ctx_error *err)
{
    top_cfg top = {0};
    chunk_cfg chunk = {256, 32};
    size_t i, j, n;
    int rc;

    if ((rc = ctx_opts_parse(top_opts, root, &top, "", err)))
        return rc;
    if (top.chunk && (rc = ctx_opts_parse(chunk_opts, top.chunk, &chunk, "chunk", err)))
        goto done;
    if (chunk.max_tokens < 16 || chunk.max_tokens > 8192) {
        rc = ctx_error_set(err, CTX_ECONFIG, "chunk.max_tokens: %lld is out of range; use 16..8192",
                           (long long)chunk.max_tokens);
        goto done;
    }
    if (chunk.overlap_tokens < 0 || chunk.overlap_tokens > chunk.max_tokens / 2) {
        rc = ctx_error_set(err, CTX_ECONFIG,
                           "chunk.overlap_tokens: %lld is out of range; use 0..max_tokens/2",
                           (long long)chunk.overlap_tokens);
        goto done;
    }
    cfg->chunk_max_tokens = chunk.max_tokens;
    cfg->chunk_overlap_tokens = chunk.overlap_tokens;

    {
        json_t *e = top.embeddings ? json_incref(top.embeddings) : json_object();
        rc = ctx_opts_parse(embed_opts, e, &cfg->embeddings, "embeddings", err);
        json_decref(e);
        if (rc)
            goto done;
    }
    if (cfg->embeddings.dim < 2 || cfg->embeddings.dim > 8192) {
        rc = ctx_error_set(err, CTX_ECONFIG, "embeddings.dim: %lld is out of range; use 2..8192",
                           (long long)cfg->embeddings.dim);
        goto done;
    }
    if (cfg->embeddings.batch_size < 1 || cfg->embeddings.batch_size > 2048) {
        rc = ctx_error_set(err, CTX_ECONFIG,
                           "embeddings.batch_size: %lld is out of range; use 1..2048",
                           (long long)cfg->embeddings.batch_size);
        goto done;
    }
    if (cfg->embeddings.concurrency < 1 || cfg->embeddings.concurrency > 64) {
        rc = ctx_error_set(err, CTX_ECONFIG,
                           "embeddings.concurrency: %lld is out of range; use 1..64",
                           (long long)cfg->embeddings.concurrency);
        goto done;
    }
    if (cfg->embeddings.query_timeout_ms < 50 || cfg->embeddings.query_timeout_ms > 60000) {
        rc = ctx_error_set(err, CTX_ECONFIG,
                           "embeddings.query_timeout_ms: %lld is out of range; use 50..60000",
                           (long long)cfg->embeddings.query_timeout_ms);
        goto done;
    }
    if (cfg->embeddings.max_retry_after < 1 || cfg->embeddings.max_retry_after > 86400) {
        rc = ctx_error_set(err, CTX_ECONFIG,
                           "embeddings.max_retry_after: %lld is out of range; use 1..86400"
                           " (seconds)", (long long)cfg->embeddings.max_retry_after);
        goto done;
    }
    if (strcmp(cfg->embeddings.provider, "hash") && strcmp(cfg->embeddings.provider, "openai") &&
        strcmp(cfg->embeddings.provider, "lsa")) {
        rc = ctx_error_set(err, CTX_ECONFIG, "embeddings.provider: unknown provider \"%s\";"
                           " use \"hash\", \"lsa\" or \"openai\"", cfg->embeddings.provider);
        goto done;
    }

    {
        json_t *a = top.agent ? json_incref(top.agent) : json_object();
        rc = ctx_opts_parse(agent_opts, a, &cfg->agent, "agent", err);
        json_decref(a);
        if (rc)
            goto done;
    }
    if (cfg->agent.max_jobs < 1 || cfg->agent.max_jobs > 64 || cfg->agent.max_retries < 0 ||
        cfg->agent.max_retries > 20) {
        rc = ctx_error_set(err, CTX_ECONFIG, "agent.%s: out of range; use %s",
                           cfg->agent.max_jobs < 1 || cfg->agent.max_jobs > 64 ? "max_jobs"
                                                                                : "max_retries",
                           cfg->agent.max_jobs < 1 || cfg->agent.max_jobs > 64 ? "1..64"
                                                                                : "0..20");
        goto done;
    }

    {
        audit_cfg au = {0};
        if ((rc = parse_section(auth_opts, top.auth, &cfg->auth, "auth", err)) ||
            (rc = parse_section(serve_opts, top.serve, &cfg->serve, "serve", err)) ||
            (rc = parse_section(audit_opts, top.audit, &au, "audit", err)) ||
            (rc = parse_section(search_opts_table, top.search, &cfg->search, "search", err)) ||
            (rc = parse_section(cluster_opts, top.cluster, &cfg->cluster, "cluster", err)) ||
            (rc = check_cluster(&cfg->cluster, err))) {
            ctx_opts_free(audit_opts, &au);
            goto done;
        }
        cfg->audit_store_queries = au.store_queries;
        rc = sched_interval(au.retain, "audit.retain", "\"90d\"", 1, &cfg->audit_retain_ms,
                            err);
        ctx_opts_free(audit_opts, &au);
        if (rc)
            goto done;
        if (!(cfg->search.w_lexical >= 0 && cfg->search.w_vector >= 0) ||
            cfg->search.w_lexical + cfg->search.w_vector <= 0 || cfg->search.w_lexical > 1e6 ||
            cfg->search.w_vector > 1e6) {
            rc = ctx_error_set(err, CTX_ECONFIG, "search: w_lexical and w_vector must be"
                               " between 0 and 1e6 and not both 0; use 1 and 1 for equal legs");
            goto done;
        }
        if (cfg->search.depth < 0 || cfg->search.depth > 1000) {
            rc = ctx_error_set(err, CTX_ECONFIG, "search.depth: out of range; use 0 (4 times"
                               " k, at least 50) or 1..1000");
            goto done;
        }
        if (strcmp(cfg->search.fusion, "rrf") && strcmp(cfg->search.fusion, "scores")) {
            rc = ctx_error_set(err, CTX_ECONFIG, "search.fusion: \"%s\" is not a fusion;"
                               " use \"rrf\" or \"scores\"", cfg->search.fusion);
            goto done;
        }
        if (cfg->search.rrf_k < 1 || cfg->search.rrf_k > 1000) {
            rc = ctx_error_set(err, CTX_ECONFIG, "search.rrf_k: out of range; use 1..1000"
                               " (60 is the usual)");
            goto done;
        }
        if (cfg->search.expand_terms < 0 || cfg->search.expand_terms > 16 ||
            cfg->search.expand_docs < 1 || cfg->search.expand_docs > 100 ||
            !(cfg->search.expand_weight > 0 && cfg->search.expand_weight <= 1) ||
            !(cfg->search.proximity >= 0 && cfg->search.proximity <= 10)) {
            rc = ctx_error_set(err, CTX_ECONFIG, "search.expand_*: out of range; use"
                               " expand_terms 0..16, expand_docs 1..100 and expand_weight"
                               " in (0, 1], proximity 0..10");
            goto done;
        }
        if (!(cfg->search.doc_decay >= 0 && cfg->search.doc_decay <= 0.9)) {
            rc = ctx_error_set(err, CTX_ECONFIG, "search.doc_decay: out of range; use"
                               " 0..0.9 (0 ranks a document by its best chunk alone)");
            goto done;
        }
        cfg->agents = top.agents.v;
        cfg->nagents = top.agents.n;
        top.agents.v = NULL;
        top.agents.n = 0;
        cfg->budgets = top.budgets.v;
        cfg->nbudgets = top.budgets.n;
        top.budgets.v = NULL;
        top.budgets.n = 0;
        if ((rc = check_grants(cfg, err)))
            goto done;
        cfg->auth.resource = cfg->serve.public_url;
    }

    if (top.data_dir[0] == '/' || !base_dir || !*base_dir) {
        cfg->data_dir = ctx_strdup(top.data_dir);
    } else {
        ctx_buf b = CTX_BUF_INIT;
        ctx_buf_printf(&b, "%s/%s", base_dir, top.data_dir);
        cfg->data_dir = ctx_buf_steal(&b);
    }

    if (!json_is_array(top.sources)) {
        rc = ctx_error_set(err, CTX_ECONFIG, "sources: expected an array of source objects, got %s",
                           ctx_json_typename(top.sources));
        goto done;
    }
    n = json_array_size(top.sources);
    if (!(cfg->sources = ctx_calloc(n ? n : 1, sizeof *cfg->sources))) {
        rc = CTX_ENOMEM;
        goto done;
    }
    for (i = 0; i < n; i++) {
        cfg->nsources = i + 1;
        if ((rc = parse_source(json_array_get(top.sources, i), i, &cfg->sources[i], err)))
            goto done;
        for (j = 0; j < i; j++) {
            if (!strcmp(cfg->sources[j].name, cfg->sources[i].name)) {
                rc = ctx_error_set(err, CTX_ECONFIG,
                                   "sources[%zu].name: \"%s\" is already used by sources[%zu];"
                                   " names must be unique", i, cfg->sources[i].name, j);
                goto done;
            }
        }
    }
    if ((rc = check_principals_from(cfg, err)) || (rc = ctx__config_check(cfg, err)))
        goto done;
    rc = CTX_OK;
done:
    ctx_opts_free(top_opts, &top);
    return rc;
}

int ctx_config_load(const char *path, ctx_config *cfg, ctx_error *err)
{
    json_error_t jerr;
    json_t *root;
    char dir[PATH_MAX];
    const char *slash;
    int rc;

    memset(cfg, 0, sizeof *cfg);
    cfg->path = ctx_strdup(path);
    root = ctx_json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (jerr.line < 0 || strstr(jerr.text, "unable to open"))
            return ctx_error_set(err, CTX_ECONFIG,
                                 "%s: cannot read the config file (%s); create one with"
                                 " `ctxgate init` or pass --config FILE", path, jerr.text);
        return ctx_error_set(err, CTX_ECONFIG, "%s:%d:%d: invalid JSON: %s", path, jerr.line,
                             jerr.column, jerr.text);
    }
    slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        snprintf(dir, sizeof dir, ".");
    rc = ctx_config_parse(root, dir, cfg, err);
    json_decref(root);
    if (rc)
        ctx_error_prefix(err, "%s: ", path);
    return rc;
}

void ctx_config_free(ctx_config *cfg)
{
    for (size_t i = 0; i < cfg->nsources; i++) {
        ctx_free(cfg->sources[i].name);
        ctx_free(cfg->sources[i].type);
        ctx_free(cfg->sources[i].plugin);
        json_decref(cfg->sources[i].conn);
        for (size_t j = 0; j < cfg->sources[i].principals_from.n; j++)
            ctx_free(cfg->sources[i].principals_from.v[j]);
        ctx_free(cfg->sources[i].principals_from.v);
        ctx_opts_free(schedule_opts, &cfg->sources[i].schedule);
    }
    ctx_opts_free(agent_opts, &cfg->agent);
    for (size_t i = 0; i < cfg->nagents; i++)
        ctx_opts_free(grant_opts, &cfg->agents[i]);
    ctx_free(cfg->agents);
    for (size_t i = 0; i < cfg->nbudgets; i++)
        ctx_opts_free(ctx__budget_opts, &cfg->budgets[i]);
    ctx_free(cfg->budgets);
    ctx_opts_free(auth_opts, &cfg->auth);
    ctx_opts_free(serve_opts, &cfg->serve);
    ctx_opts_free(search_opts_table, &cfg->search);
    ctx_opts_free(cluster_opts, &cfg->cluster);
    ctx_free(cfg->sources);
    ctx_opts_free(embed_opts, &cfg->embeddings);
    ctx_free(cfg->data_dir);
    ctx_free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

const ctx_source_cfg *ctx_config_source(const ctx_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nsources; i++)
        if (!strcmp(cfg->sources[i].name, name))
            return &cfg->sources[i];
    return NULL;
}

const ctx_agent_grant *ctx_config_agent(const ctx_config *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->nagents; i++)
        if (!strcmp(cfg->agents[i].name, name))
            return &cfg->agents[i];
    return NULL;
}

void ctx_config_store_path(const ctx_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "%s/ctxgate.db", cfg->data_dir);
}

/* The host's keys of a source, as JSON Schema properties (new reference). */
static json_t *host_props(const char *type)
{
    json_t *p, *sch = ctx_opts_schema(schedule_opts, NULL);
    json_object_set_new(sch, "description",
                        json_string("when the maintenance agent (`ctxgate agent`) runs this"
                                    " source's jobs"));
    p = json_pack("{s:{s:s,s:s,s:s},s:{s:s,s:s},s:{s:s,s:b,s:s},s:{s:s,s:i,s:i,s:s},s:o,"
                  "s:{s:s,s:b,s:s},s:{s:s,s:s},s:{s:s,s:{s:s},s:s}}",
                     "name", "type", "string", "pattern", "^[A-Za-z0-9_.-]+$",
                     "description", "unique name of the source",
                     "type", "const", type, "description", "connector type",
                     "enabled", "type", "boolean", "default", 1,
                     "description", "false skips the source in `ctxgate sync`",
                     "max_record_bytes", "type", "integer", "minimum", 1024,
                     "default", 16 * 1024 * 1024,
                     "description", "bodies larger than this fail the run with a clear error",
                     "schedule", sch,
                     "directory", "type", "boolean", "default", 0,
                     "description", "true: this source's users, groups and account mappings"
                     " govern every source's documents (an identity provider's feed)",
                     "max_permission_age", "type", "string", "description",
                     "withhold the source's documents once its permissions were last synced"
                     " (a permission or full sync) longer ago than this, e.g. \"1h\"; \"off\""
                     " never; default: 3 x the permissions schedule (at least 15m) once the"
                     " maintenance agent syncs them, else never",
                     "principals_from", "type", "array", "items", "type", "string",
                     "description", "other sources whose users, groups and mappings govern"
                     " this source's documents besides its own");
    sch = ctx_opts_schema(guard_opts, NULL);
    json_object_set_new(sch, "description",
                        json_string("sync guards: a run that would delete too much of the"
                                    " source or open too many documents to everyone is held"));
    json_object_set_new(p, "guard", sch);
    return p;
}

json_t *ctx_config_schema(json_t *connectors)
{
    json_t *root, *branches = json_array(), *spec, *props, *plugin;
    const char *type;

    json_object_foreach(connectors, type, spec) {
        json_t *b = json_deep_copy(spec), *hp = host_props(type), *req;
        props = json_object_get(b, "properties");
        if (!props) {
            props = json_object();
            json_object_set_new(b, "properties", props);
        }
        json_object_update(props, hp);
        json_decref(hp);
        req = json_object_get(b, "required");
        if (!json_is_array(req)) {
            req = json_array();
            json_object_set_new(b, "required", req);
        }
        json_array_append_new(req, json_string("name"));
        json_array_append_new(req, json_string("type"));
        json_object_del(b, "title");
        json_object_set_new(b, "title", json_sprintf("%s source", type));
        json_array_append_new(branches, b);
    }
    /* A plugin's own keys are its business: its spec checks them on open. */
    plugin = json_pack("{s:s,s:s,s:o,s:[s,s,s]}", "title", "plugin source", "type", "object",
                       "properties", host_props("plugin"), "required", "name", "type", "plugin");
    json_object_set_new(json_object_get(plugin, "properties"), "plugin",
                        json_pack("{s:s,s:s}", "type", "string", "description",
                                  "path of the connector .so (relative to this file)"));
    json_array_append_new(branches, plugin);

    root = ctx_opts_schema(top_opts, "ctxgate configuration");
    json_object_set_new(root, "$schema",
                        json_string("https://json-schema.org/draft/2020-12/schema"));
    props = json_object_get(root, "properties");
    json_object_set_new(props, "chunk", ctx_opts_schema(chunk_opts, NULL));
    json_object_set_new(json_object_get(props, "chunk"), "description",
                        json_string("how documents are cut into chunks"));
    json_object_set_new(props, "embeddings", ctx_opts_schema(embed_opts, NULL));
    json_object_set_new(json_object_get(props, "embeddings"), "description",
                        json_string("the embedder that gives chunks their vectors"));
    json_object_set_new(props, "agent", ctx_opts_schema(agent_opts, NULL));
    json_object_set_new(json_object_get(props, "agent"), "description",
                        json_string("the maintenance agent: how it runs jobs"));
    json_object_set_new(props, "auth", ctx_opts_schema(auth_opts, NULL));
    json_object_set_new(json_object_get(props, "auth"), "description",
                        json_string("how bearer tokens of `ctxgate serve` are checked"));
    json_object_set_new(props, "serve", ctx_opts_schema(serve_opts, NULL));
    json_object_set_new(json_object_get(props, "serve"), "description",
                        json_string("the HTTP service (`ctxgate serve`)"));
    json_object_set_new(props, "search", ctx_opts_schema(search_opts_table, NULL));
    json_object_set_new(json_object_get(props, "search"), "description",
                        json_string("how hybrid retrieval fuses its lexical and vector legs"));
    json_object_set_new(props, "audit", ctx_opts_schema(audit_opts, NULL));
    json_object_set_new(json_object_get(props, "audit"), "description",
                        json_string("the audit log of searches and fetches"));
    json_object_set_new(props, "cluster", ctx_opts_schema(cluster_opts, NULL));
    json_object_set_new(json_object_get(props, "cluster"), "description",
                        json_string("cluster mode (preview, docs/cluster.md): PostgreSQL holds"
                                    " the system of record and the job schedule"));
    json_object_set_new(props, "sources",
                        json_pack("{s:s,s:s,s:{s:o}}", "type", "array", "description",
                                  "the sources to sync", "items", "oneOf", branches));
    return root;
}
