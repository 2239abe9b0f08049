/*
 * config.h - the ctxgate.json file: where the data lives, how to chunk, and
 * the sources. Each source object mixes the host's keys (name, type, plugin,
 * enabled, max_record_bytes, schedule, directory, principals_from,
 * max_permission_age) with its
 * connector's own keys; the host takes
 * its keys and hands the rest to the connector, which rejects what it does
 * not know. Errors name the path: `sources[1].streams[0]: unknown key ...`.
 */
#ifndef CTX_CORE_CONFIG_H
#define CTX_CORE_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "ctx.h"

#include "opts.h"

/* A source's "schedule": when the maintenance agent runs its jobs. */
typedef struct ctx_schedule_cfg {
    char *sync;               /* incremental content sync, e.g. "15m" */
    char *permissions;        /* principal streams only, e.g. "5m"; "" = never */
    char *full;               /* full refresh with pruning, e.g. "@daily"; "" = never */
    ctx_strlist permission_streams;  /* which streams carry users and groups */
} ctx_schedule_cfg;

/* A source's "guard": how much one sync may change before it is held. */
typedef struct ctx_guard_cfg {
    double max_delete_share;  /* deletes + prunes over this share of live docs: held; 1 = off */
    int64_t min_deletes;      /* ... and over this many: a few deletes are never held */
    int64_t max_everyone;     /* docs newly readable by everyone over this: held; 0 = off */
} ctx_guard_cfg;

typedef struct ctx_source_cfg {
    char *name;               /* unique, [A-Za-z0-9_.-]+ */
    char *type;               /* built-in connector name, or "plugin" */
    char *plugin;             /* path of a .so when type is "plugin" */
    int enabled;
    int64_t max_record_bytes;
    int directory;            /* its users, groups and mappings govern every source */
    ctx_strlist principals_from; /* sources whose principal facts govern this one's too */
    int64_t max_permission_age_ms; /* withhold past this; 0 = the default, -1 = "off" */
    json_t *conn;             /* the connector's keys only; owned */
    size_t index;             /* position in sources[], for messages */
    ctx_schedule_cfg schedule;
    ctx_guard_cfg guard;      /* sync guards against mass changes */
} ctx_source_cfg;

/* The "agent" section: how the maintenance agent runs jobs. */
typedef struct ctx_agent_cfg {
    int64_t max_jobs;         /* jobs at once */
    int64_t max_retries;      /* retries of a failed job before its next scheduled time */
    char *retry;              /* first retry delay, doubled each time */
    char *jitter;             /* most a job is delayed, stable per job */
    char *embed;              /* how often the embedding queue is worked off */
    char *maintain;           /* ranking statistics, FTS5 merge, WAL checkpoint */
    int64_t history_keep;     /* sync_runs per source, agent_jobs per job: newest kept */
    char *history_retain;     /* ... and none older than this ("off": no time bound) */
    int64_t history_retain_ms; /* history_retain parsed; -1 = "off" */
} ctx_agent_cfg;

/* The "embeddings" section: which embedder gives chunks their vectors. */
typedef struct ctx_embed_cfg {
    char *provider;           /* "hash" or "openai" */
    char *model;              /* hash: "v1"; openai: the model name */
    int64_t dim;
    char *base_url;           /* openai: the /v1 endpoint */
    char *api_key_env;        /* openai: env var with the key */
    int64_t batch_size;
    int64_t timeout_ms;
    int64_t max_retries;
    int64_t concurrency;      /* openai: requests in flight at once */
    int64_t query_timeout_ms; /* openai: embedding a search's query, no retries */
    int64_t max_retry_after;  /* openai: longest Retry-After waited for, seconds */
} ctx_embed_cfg;

/* One "agents" entry: an agent allowed to act for users, and its grant. */
typedef struct ctx_agent_grant {
    char *name;               /* the token's act.sub */
    ctx_strlist sources;      /* sources it may read; "*" = all */
    ctx_strlist labels;       /* labels it may read; "*" = any (unlabeled always) */
    int64_t max_k;            /* most results per search */
    int64_t max_tokens;       /* most tokens of context per answer */
} ctx_agent_grant;

/*
 * One "budgets" entry: the tokens of context a user or an agent may be
 * served in a UTC hour or day, counted in the audit log's file so every
 * replica sharing the data_dir shares it (retrieval/budget.c).
 */
typedef struct ctx_budget {
    char *user;               /* a user, or "*": each user no entry names */
    char *agent;              /* or an agent (then user is NULL), or "*" likewise */
    int64_t tokens;           /* served per window, >= 1 */
    char *per;                /* "hour" or "day" */
    int64_t per_ms;           /* 3600000 or 86400000 (from per) */
} ctx_budget;

/* The "auth" section: how bearer tokens are checked. */
typedef struct ctx_auth_cfg {
    char *issuer;             /* required iss */
    char *audience;           /* required aud */
    char *hs256_secret_env;   /* env var holding the HS256 secret */
    char *hs256_secret_file;  /* or a file holding it */
    ctx_strlist public_keys;  /* PEM files: RSA keys verify RS256, P-256 keys ES256 */
    int64_t clock_skew_s;     /* leeway on exp and nbf */
    /* An OpenID provider (retrieval/oidc.h): issuer is its URL, its keys
     * come from its discovery document's jwks_uri. */
    int discovery;
    int64_t jwks_refresh_min_s;  /* least seconds between fetches on an unknown kid */
    int64_t jwks_ttl_s;       /* keys kept this long when the JWKS has no max-age */
    int64_t jwks_timeout_ms;  /* most one fetch may take */
    char *user_claim;         /* the claim naming the user, "sub"; "a.b" is a nested one */
    ctx_strlist agent_claims; /* claims naming the agent, first present wins; [] = act.sub */
    const char *resource;     /* serve.public_url, also accepted as aud; borrowed */
} ctx_auth_cfg;

/* The "serve" section: the HTTP service. */
typedef struct ctx_serve_cfg {
    char *listen;             /* host:port */
    int64_t threads;          /* worker threads */
    int64_t max_body_bytes;
    int64_t user_rate, user_burst;    /* requests per second per user, and burst */
    int64_t agent_rate, agent_burst;  /* the same per agent */
    char *public_url;         /* base URL clients see, for resource metadata */
    /* The admin bearer token (/metrics, /v1/admin/...): from this variable,
     * else this file; neither set = admin endpoints answer 401. */
    char *admin_token_env;
    char *admin_token_file;
} ctx_serve_cfg;

/* search: how hybrid retrieval fuses its legs (reciprocal rank fusion). */
typedef struct ctx_search_cfg {
    double w_lexical, w_vector; /* each leg's weight, >= 0, not both 0 */
    char *fusion;               /* "rrf" (by ranks) or "scores" (each leg's scores min-max) */
    int64_t rrf_k;              /* rrf: score = sum of w / (rrf_k + rank), 1..1000 */
    int64_t depth;              /* hybrid: candidates per leg, 0 = max(4k, 50) */
    /* the lexical leg's query expansion (search_expand): words added
     * (0 = off, up to 16), documents read (1..100), weight (0..1] */
    int64_t expand_terms, expand_docs;
    double expand_weight;
    double proximity;           /* the lexical leg's proximity weight, 0..10 (0 = off) */
    double doc_decay;           /* a document's later chunks' weight, 0..0.9 (search.h) */
} ctx_search_cfg;

/*
 * The "cluster" section: cluster mode (docs/cluster.md). Unset conninfo =
 * the embedded mode (one SQLite store and its FAISS files per data_dir).
 */
typedef struct ctx_cluster_cfg {
    char *conninfo;           /* libpq conninfo of the shared PostgreSQL; "" = not a cluster */
    char *password_env;       /* env var holding its password, or "" */
    char *password_file;      /* or a file holding it, or "" */
    int64_t lease_s;          /* a job claim lasts this long unless renewed (5..3600) */
    char *replica;            /* serve follows PostgreSQL as replica "name" (slot
                               * ctxgate_<name>); "" = it does not follow */
    int64_t max_lag_s;        /* past this lag a replica answers searches 503 */
} ctx_cluster_cfg;

typedef struct ctx_config {
    char *path;               /* the file it came from, or NULL */
    char *data_dir;           /* absolute or relative to the config file */
    int64_t chunk_max_tokens;
    int64_t chunk_overlap_tokens;
    ctx_source_cfg *sources;
    size_t nsources;
    ctx_embed_cfg embeddings;
    ctx_agent_cfg agent;
    ctx_agent_grant *agents;  /* registered agents (the "agents" array) */
    size_t nagents;
    ctx_auth_cfg auth;
    ctx_serve_cfg serve;
    int audit_store_queries;  /* audit.store_queries: text, else its SHA-256 */
    int64_t audit_retain_ms;  /* audit.retain: older records pruned; -1 = "off" */
    ctx_search_cfg search;    /* hybrid fusion */
    ctx_budget *budgets;      /* token budgets (the "budgets" array) */
    size_t nbudgets;
    ctx_cluster_cfg cluster;  /* cluster mode, when cluster.conninfo is set */
} ctx_config;

/*
 * ctx_config_load - read and check path. A missing file, bad JSON (with line
 * and column), an unknown key or a wrong type fail with CTX_ECONFIG and a
 * message naming the place and the fix. *cfg must be ctx_config_free'd
 * whatever the result.
 */
int ctx_config_load(const char *path, ctx_config *cfg, ctx_error *err);

/* ctx_config_parse - the same from a parsed root; base_dir resolves data_dir. */
int ctx_config_parse(json_t *root, const char *base_dir, ctx_config *cfg,
                     ctx_error *err);

void ctx_config_free(ctx_config *cfg);

/*
 * ctx_config_schema - JSON Schema of the config file built from the same
 * tables the parser uses. connectors maps a type name to that connector's
 * config schema (borrowed); each becomes one "oneOf" branch of a source.
 * Returns a new reference.
 */
json_t *ctx_config_schema(json_t *connectors);

/* ctx_config_source - the source named name, or NULL. Borrowed. */
const ctx_source_cfg *ctx_config_source(const ctx_config *cfg, const char *name);

/* ctx_config_agent - the registered agent named name, or NULL. Borrowed. */
const ctx_agent_grant *ctx_config_agent(const ctx_config *cfg, const char *name);

/* ctx_config_store_path - "<data_dir>/ctxgate.db" into buf. */
void ctx_config_store_path(const ctx_config *cfg, char *buf, size_t len);

#endif
