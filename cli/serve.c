/*
 * serve.c - `ctxgate serve`, `token mint`, `audit` and `usage` (see serve.h).
 */
#include "serve.h"

#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../agent/jobs.h"
#include "../agent/replica.h"
#include "../core/schedule.h"
#include "../core/config.h"
#include "../core/util.h"
#include "../indexer/pgaudit.h"
#include "../indexer/report.h"
#include "../indexer/store.h"
#include "../retrieval/admin.h"
#include "../retrieval/auth.h"
#include "../retrieval/budget.h"
#include "../retrieval/http.h"
#include "../retrieval/mcp_service.h"
#include "../retrieval/replica_gate.h"
#include "../retrieval/service.h"
#include "../core/json.h"

static volatile sig_atomic_t stop_asked, agent_quit, agent_reload, serve_reload, replica_quit;

static void on_stop(int sig)
{
    (void)sig;
    stop_asked = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    agent_reload = 1;
    serve_reload = 1;
}

/*
 * reload - SIGHUP: read the config again. Its agents and grants, sources,
 * audit and embedding settings and the token keys serve the next request;
 * *live (the last reloaded config, or NULL) is replaced and freed. A config
 * or a key that does not load changes nothing. serve.* stays as started.
 */
static void reload(const char *config_path, ctx_config **live, svc *service,
                   http_server *srv, auth **au)
{
    ctx_config *next = ctx_calloc(1, sizeof *next);
    auth *nau = NULL;
    ctx_error err;

    if (!next) {
        ctx_log(CTX_LOG_ERROR, "serve", "reload: out of memory; the running config stays");
        return;
    }
    if (ctx_config_load(config_path, next, &err) || auth_new(&next->auth, &nau, &err) ||
        svc_reload(service, next, &err)) {
        ctx_log(CTX_LOG_ERROR, "serve", "reload of %s refused: %s; the running config stays",
                config_path, err.text);
        auth_free(nau);
        ctx_config_free(next);
        ctx_free(next);
        return;
    }
    auth_free(http_auth_set(srv, nau));
    *au = nau;
    if (*live) {
        ctx_config_free(*live);
        ctx_free(*live);
    }
    *live = next;
    ctx_log(CTX_LOG_INFO, "serve", "reloaded %s: %zu agents, %zu sources", config_path,
            next->nagents, next->nsources);
}

/* A search replica's follower (cluster.replica set; agent/replica.h). */
static void *run_replica(void *arg)
{
    ctx_error err;

    if (replica_follow(arg, 0, &replica_quit, NULL, &err))
        ctx_log(CTX_LOG_ERROR, "replica", "stopped: %s", err.text);
    return NULL;
}

typedef struct agent_thread {
    const char *config_path;
    int rc;
    ctx_error err;
} agent_thread;

static void *run_agent(void *arg)
{
    agent_thread *t = arg;
    agent_daemon_opts ao = {0, &agent_quit, &agent_reload};
    t->rc = agent_daemon(t->config_path, &ao, &t->err);
    if (t->rc)
        ctx_log(CTX_LOG_ERROR, "agent", "stopped: %s", t->err.text);
    return NULL;
}

int cli_serve(int argc, char **argv, const char *config_path)
{
    static const struct option lo[] = {{"listen", required_argument, NULL, 'l'},
                                       {"no-agent", no_argument, NULL, 'n'},
                                       {NULL, 0, NULL, 0}};
    const char *listen = NULL;
    int c, no_agent = 0, rc;
    ctx_config cfg;
    ctx_error err;
    svc *service = NULL;
    auth *au = NULL;
    http_server *srv = NULL;
    http_opts ho;
    pthread_t agent_tid;
    agent_thread at;
    ctx_config *live = NULL;
    int agent_running = 0, replica_running = 0;
    pthread_t replica_tid;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'l')
            listen = optarg;
        else if (c == 'n')
            no_agent = 1;
        else
            return 2;
    }
    /* the search caches are replaced whole while serving: their memory must go back */
    ctx_mem_long_lived();
    if ((rc = ctx_config_load(config_path, &cfg, &err)))
        goto fail;
    if (ctx_mkdir_p(cfg.data_dir) < 0) {
        rc = ctx_error_set(&err, CTX_EIO, "data_dir %s: cannot create it", cfg.data_dir);
        goto fail;
    }
    if (!cfg.nagents)
        ctx_log(CTX_LOG_WARN, "serve", "no \"agents\" in %s: every request will be refused;"
                " register the agents that may act for users", config_path);
    if ((rc = auth_new(&cfg.auth, &au, &err)) ||
        (rc = svc_new(&cfg, (int)cfg.serve.threads, &service, &err)))
        goto fail;
    if (svc_warm(service, &err))
        ctx_log(CTX_LOG_WARN, "serve", "could not load the search caches ahead: %s", err.text);
    memset(&ho, 0, sizeof ho);
    ho.cfg = &cfg;
    ho.service = service;
    ho.auth = au;
    ho.listen = listen;
    if ((rc = http_start(&ho, &srv, &err)) ||
        (rc = mcp_http_register(srv, service, &cfg)
                  ? ctx_error_set(&err, CTX_EINTERNAL, "cannot route /mcp")
                  : CTX_OK) ||
        (rc = admin_http_register(srv, service)
                  ? ctx_error_set(&err, CTX_EINTERNAL, "cannot route the admin endpoints")
                  : CTX_OK))
        goto fail;
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    signal(SIGHUP, on_hup);
    signal(SIGPIPE, SIG_IGN);
    if (!no_agent) {
        memset(&at, 0, sizeof at);
        at.config_path = config_path;
        if (pthread_create(&agent_tid, NULL, run_agent, &at) == 0)
            agent_running = 1;
        else
            ctx_log(CTX_LOG_ERROR, "serve", "cannot start the maintenance agent");
    }
    if (*cfg.cluster.replica) {
        replica_gate_start(cfg.cluster.max_lag_s * 1000);
        if (pthread_create(&replica_tid, NULL, run_replica, &cfg) == 0)
            replica_running = 1;
        else
            ctx_log(CTX_LOG_ERROR, "serve", "cannot start the replica's follower");
    }
    fprintf(stderr, "ctxgate: serving on %s%s\n", http_base_url(srv),
            no_agent ? " (no maintenance agent)" : " with the maintenance agent");
    if (*cfg.serve.public_url) /* the public URL hides the port bound */
        fprintf(stderr, "ctxgate: listening on port %d\n", http_port(srv));
    while (!stop_asked) {
        /* Follow the vector index the agent keeps up to date. */
        for (int i = 0; i < 20 && !stop_asked; i++) {
            usleep(100 * 1000);
            if (serve_reload) {
                serve_reload = 0;
                reload(config_path, &live, service, srv, &au);
            }
        }
        if (!stop_asked && svc_index_refresh(service, &err))
            ctx_log(CTX_LOG_WARN, "serve", "vector index: %s", err.text);
        /* and the search caches the store has moved past */
        if (!stop_asked && svc_rewarm(service, 0, NULL, &err))
            ctx_log(CTX_LOG_WARN, "serve", "search caches: %s", err.text);
    }
    fprintf(stderr, "ctxgate: stopping\n");
    http_stop(srv);
    if (agent_running) {
        agent_quit = 1;
        pthread_join(agent_tid, NULL);
    }
    if (replica_running) {
        replica_quit = 1;
        pthread_join(replica_tid, NULL);
    }
    svc_free(service);
    auth_free(au);
    if (live) {
        ctx_config_free(live);
        ctx_free(live);
    }
    ctx_config_free(&cfg);
    return 0;
fail:
    fprintf(stderr, "ctxgate: %s\n", err.text);
    http_stop(srv);
    svc_free(service);
    auth_free(au);
    ctx_config_free(&cfg);
    return rc == CTX_ECONFIG ? 2 : 1;
}

/* duration - "90", "30s", "15m", "1h", "2d" in seconds; -1 if not one. */
static int64_t duration(const char *s)
{
    sched_spec d;
    ctx_error err;
    char *end;
    long long n = strtoll(s, &end, 10);

    if (*s && !*end && n > 0)
        return n;
    if (sched_parse(s, "duration", &d, &err) || d.every_ms <= 0)
        return -1;
    return d.every_ms / 1000;
}

int cli_token(int argc, char **argv, const char *config_path)
{
    static const struct option lo[] = {{"user", required_argument, NULL, 'u'},
                                       {"agent", required_argument, NULL, 'a'},
                                       {"ttl", required_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    const char *user = NULL, *agent_name = NULL;
    int64_t ttl = 3600;
    ctx_config cfg;
    ctx_error err;
    auth *au = NULL;
    char *token = NULL;
    int c, rc;

    if (argc < 2 || strcmp(argv[1], "mint")) {
        fprintf(stderr, "ctxgate: token: usage: token mint --user U [--agent A] [--ttl 1h]\n");
        return 2;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'u')
            user = optarg;
        else if (c == 'a')
            agent_name = optarg;
        else if (c == 't' && (ttl = duration(optarg)) > 0)
            continue;
        else {
            fprintf(stderr, "ctxgate: token mint: --ttl takes a duration like 90s, 15m, 1h\n");
            return 2;
        }
    }
    if (!user || !*user) {
        fprintf(stderr, "ctxgate: token mint: --user U is required (the token's sub)\n");
        return 2;
    }
    if ((rc = ctx_config_load(config_path, &cfg, &err)) ||
        (rc = auth_new(&cfg.auth, &au, &err)) ||
        (rc = auth_mint(au, user, agent_name, ttl, &token, &err))) {
        fprintf(stderr, "ctxgate: %s\n", err.text);
        auth_free(au);
        ctx_config_free(&cfg);
        return rc == CTX_ECONFIG ? 2 : 1;
    }
    if (agent_name && !ctx_config_agent(&cfg, agent_name))
        fprintf(stderr, "ctxgate: warning: agent \"%s\" is not in the config's \"agents\";"
                " the service will refuse this token\n", agent_name);
    printf("%s\n", token);
    free(token);
    auth_free(au);
    ctx_config_free(&cfg);
    return 0;
}

/* since_ms - T as ms since the epoch: an ISO 8601 time, or a duration ago. */
static int since_ms(const char *t, int64_t *ms)
{
    int64_t secs;
    if (!ctx_iso8601_ms(t, ms))
        return 0;
    if ((secs = duration(t)) > 0) {
        *ms = ctx_now_ms() - secs * 1000;
        return 0;
    }
    return -1;
}

/*
 * open_log - the config's audit log, or an exit status with the message
 * printed. The store is opened first: one made before the log had a file
 * of its own moves its records there then. In cluster mode *pg is the
 * cluster's log instead (every node's records; this data_dir's shipped
 * first) and *log is NULL.
 */
static int open_log(const char *config_path, ctx_config *cfg, ctx_store **log, pgstore **pg)
{
    char path[4096];
    ctx_store *st;
    ctx_error err;

    *log = NULL;
    *pg = NULL;
    if (ctx_config_load(config_path, cfg, &err) == CTX_OK) {
        ctx_config_store_path(cfg, path, sizeof path);
        if (cfg->cluster.conninfo && *cfg->cluster.conninfo) {
            if (pgaudit_open_shipped(&cfg->cluster, path, pg, &err) == CTX_OK)
                return 0;
            fprintf(stderr, "ctxgate: %s\n", err.text);
            return err.code == CTX_ECONFIG ? 2 : 1;
        }
        if (access(path, F_OK) != 0) {
            fprintf(stderr, "ctxgate: no store at %s yet\n", path);
            return 1;
        }
        if (store_open(path, 0, &st, &err) == CTX_OK) {
            store_close(st);
            if (store_audit_open(path, log, &err) == CTX_OK)
                return 0;
        }
    }
    fprintf(stderr, "ctxgate: %s\n", err.text);
    return err.code == CTX_ECONFIG ? 2 : 1;
}

int cli_audit(int argc, char **argv, const char *config_path)
{
    static const struct option lo[] = {{"user", required_argument, NULL, 'u'},
                                       {"agent", required_argument, NULL, 'a'},
                                       {"since", required_argument, NULL, 's'},
                                       {"limit", required_argument, NULL, 'n'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    report_audit_q q;
    int c, as_json = 0, rc;
    ctx_config cfg;
    ctx_store *st;
    pgstore *pg;
    ctx_error err;
    json_t *arr = NULL, *o;
    size_t i;

    memset(&q, 0, sizeof q);
    q.limit = 100;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'u')
            q.user = optarg;
        else if (c == 'a')
            q.agent = optarg;
        else if (c == 'j')
            as_json = 1;
        else if (c == 'n')
            q.limit = atoll(optarg);
        else if (c == 's' && !since_ms(optarg, &q.since))
            continue;
        else {
            fprintf(stderr, "ctxgate: audit: --since takes an ISO 8601 time or a duration"
                    " (1h: the last hour)\n");
            return 2;
        }
    }
    if ((rc = open_log(config_path, &cfg, &st, &pg))) {
        ctx_config_free(&cfg);
        return rc;
    }
    if (pg ? pgaudit_report(pg, &q, &arr, &err) : report_audit(st, &q, &arr, &err)) {
        fprintf(stderr, "ctxgate: audit: %s\n", err.text);
        pgstore_close(pg);
        store_close(st);
        ctx_config_free(&cfg);
        return 1;
    }
    if (as_json) {
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_array_clear(arr); /* printed whole: no lines after it */
    }
    json_array_foreach(arr, i, o) {
        const char *qt = json_string_value(json_object_get(o, "query"));
        const char *qh = json_string_value(json_object_get(o, "query_sha256"));
        const char *user = json_string_value(json_object_get(o, "user"));
        const char *via = json_string_value(json_object_get(o, "agent"));
        char *ids = json_dumps(json_object_get(o, "doc_ids"), JSON_COMPACT);
        printf("%lld %-6s %-9s user=%s agent=%s docs=%s tokens=%lld %.1fms %s%s%.12s\n",
               (long long)json_integer_value(json_object_get(o, "at")),
               json_string_value(json_object_get(o, "action")),
               json_string_value(json_object_get(o, "outcome")), user ? user : "-",
               via ? via : "-", ids ? ids : "[]",
               (long long)json_integer_value(json_object_get(o, "tokens")),
               (double)json_integer_value(json_object_get(o, "latency_us")) / 1000.0,
               qt ? "query=" : "", qt ? qt : qh ? "sha256=" : "", qt ? "" : qh ? qh : "");
        if (json_object_get(o, "node")) /* cluster mode: the node that answered */
            printf("    node=%s\n", json_string_value(json_object_get(o, "node")));
        free(ids);
    }
    json_decref(arr);
    pgstore_close(pg);
    store_close(st);
    ctx_config_free(&cfg);
    return 0;
}

/* print_budgets - budget_status's array as a table. */
static void print_budgets(const json_t *b)
{
    size_t i;
    json_t *e;

    printf("\n%-11s %-6s %-30s %-5s %10s %10s %10s  %s\n", "budget", "kind", "name", "per",
           "tokens", "used", "remaining", "resets at");
    json_array_foreach(b, i, e) {
        char name[32];
        snprintf(name, sizeof name, "budgets[%lld]",
                 (long long)json_integer_value(json_object_get(e, "budget")));
        printf("%-11s %-6s %-30s %-5s %10lld %10lld %10lld  %s\n", name,
               json_string_value(json_object_get(e, "kind")),
               json_string_value(json_object_get(e, "name")),
               json_string_value(json_object_get(e, "per")),
               (long long)json_integer_value(json_object_get(e, "tokens")),
               (long long)json_integer_value(json_object_get(e, "used")),
               (long long)json_integer_value(json_object_get(e, "remaining")),
               json_string_value(json_object_get(e, "resets_at_iso")));
    }
}

int cli_usage(int argc, char **argv, const char *config_path)
{
    static const struct option lo[] = {{"since", required_argument, NULL, 's'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    static const char *const what[2] = {"users", "agents"};
    int64_t since = 0;
    int c, as_json = 0, rc;
    ctx_config cfg;
    ctx_store *st;
    pgstore *pg;
    ctx_error err;
    json_t *root = NULL;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'j')
            as_json = 1;
        else if (c == 's' && !since_ms(optarg, &since))
            continue;
        else {
            return 2;
        }
    }
    if ((rc = open_log(config_path, &cfg, &st, &pg))) {
        ctx_config_free(&cfg);
        return rc;
    }
    if (pg ? pgaudit_usage(pg, since, 0, &root, &err) : report_usage(st, since, 0, &root, &err)) {
        fprintf(stderr, "ctxgate: usage: %s\n", err.text);
        pgstore_close(pg);
        store_close(st);
        ctx_config_free(&cfg);
        return 1;
    }
    for (int i = 0; i < 2 && !as_json; i++) {
        const char *name;
        json_t *v;
        printf("%-30s %12s %10s\n", i ? "agent" : "user", "tokens", "requests");
        json_object_foreach(json_object_get(root, what[i]), name, v)
            printf("%-30s %12lld %10lld\n", name,
                   (long long)json_integer_value(json_object_get(v, "tokens")),
                   (long long)json_integer_value(json_object_get(v, "requests")));
        if (!i)
            printf("\n");
    }
    if (cfg.nbudgets) {
        json_t *b = NULL;
        budget_counts bc;
        if (pg)
            budget_counts_cluster(pg, &bc);
        else
            bc = (budget_counts){NULL, NULL, NULL};
        if (pg ? budget_status_in(&bc, &cfg, ctx_now_ms(), NULL, NULL, &b, &err)
               : budget_status(st, &cfg, ctx_now_ms(), NULL, NULL, &b, &err)) {
            fprintf(stderr, "ctxgate: usage: %s\n", err.text);
        } else {
            if (!as_json)
                print_budgets(b);
            json_object_set_new(root, "budgets", b);
        }
    }
    if (as_json) {
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    }
    json_decref(root);
    pgstore_close(pg);
    store_close(st);
    ctx_config_free(&cfg);
    return 0;
}

/*
 * mcp_agent_known - 1 when the config registers agent. Else prints why
 * `ctxgate mcp` will not start, naming the agents it does register.
 */
static int mcp_agent_known(const ctx_config *cfg, const char *name, const char *config_path)
{
    ctx_buf names = CTX_BUF_INIT;

    for (size_t i = 0; i < cfg->nagents; i++)
        if (cfg->agents[i].name && !strcmp(cfg->agents[i].name, name))
            return 1;
    for (size_t i = 0; i < cfg->nagents && i < 20; i++) {
        ctx_buf_puts(&names, i ? ", " : "");
        ctx_buf_puts(&names, cfg->agents[i].name ? cfg->agents[i].name : "?");
    }
    ctx_buf_append(&names, "", 1);
    fprintf(stderr, "ctxgate: mcp: CTXGATE_AGENT=%s is not an agent of %s (its \"agents\": %s);"
            " set CTXGATE_AGENT to one of them, or register \"%s\" under \"agents\" with"
            " the sources it may read\n", name, config_path,
            cfg->nagents ? names.data : "none", name);
    ctx_buf_free(&names);
    return 0;
}

int cli_mcp(int argc, char **argv, const char *config_path)
{
    const char *user = getenv("CTXGATE_USER"), *acting = getenv("CTXGATE_AGENT");
    svc_identity who;
    ctx_config cfg;
    ctx_error err;
    svc *service = NULL;
    int rc;

    (void)argc;
    (void)argv;
    /* The identity is fixed for the process: a caller nobody named, or an
     * agent nobody registered, would only ever get empty answers. */
    if (!user || !*user) {
        fprintf(stderr, "ctxgate: mcp: CTXGATE_USER is not set; set it to the person the"
                        " agent acts for (the user id the sources' permissions name, e.g."
                        " alice@corp.test), and CTXGATE_AGENT to a registered agent\n");
        return 2;
    }
    if (!acting || !*acting) {
        fprintf(stderr, "ctxgate: mcp: CTXGATE_AGENT is not set; set it to the name of an"
                        " agent under \"agents\" in the config (the agent acting for %s)\n",
                user);
        return 2;
    }
    if ((rc = ctx_config_load(config_path, &cfg, &err))) {
        fprintf(stderr, "ctxgate: %s\n", err.text);
        ctx_config_free(&cfg);
        return rc == CTX_ECONFIG ? 2 : 1;
    }
    if (!mcp_agent_known(&cfg, acting, config_path)) {
        ctx_config_free(&cfg);
        return 2;
    }
    if ((rc = svc_new(&cfg, 1, &service, &err))) {
        fprintf(stderr, "ctxgate: %s\n", err.text);
        ctx_config_free(&cfg);
        return rc == CTX_ECONFIG ? 2 : 1;
    }
    who.user = user;
    who.agent = acting;
    /* stdout carries the protocol only; everything else goes to stderr. */
    rc = mcp_stdio(service, &who, stdin, stdout);
    svc_free(service);
    ctx_config_free(&cfg);
    return rc ? 1 : 0;
}
