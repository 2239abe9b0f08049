/*
 * main.c - the `ctxgate` command: parses arguments and calls the parts.
 * Every command takes --config FILE (default ./ctxgate.json) and --help.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../agent/jobs.h"
#include "../agent/sync.h"
#include "../connectors/registry.h"
#include "../core/config.h"
#include "../core/util.h"
#include "../indexer/embed.h"
#include "../indexer/pgstore.h"
#include "../indexer/store_read.h"
#include "../indexer/vindex.h"
#include "../retrieval/explain.h"
#include "../retrieval/fresh.h"
#include "../retrieval/hybrid.h"
#include "../retrieval/replica_gate.h"
#include "../retrieval/search.h"
#include "../retrieval/status.h"
#include "../retrieval/vsearch.h"
#include "cli.h"
#include "connector.h"
#include "follow.h"
#include "serve.h"
#include "status_cluster.h"
#include "../core/json.h"

static volatile sig_atomic_t canceled;

static void on_signal(int sig)
{
    (void)sig;
    canceled = 1;
}

typedef struct cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} cmd;

static const char *config_path = "ctxgate.json";

static int fail(const ctx_error *err)
{
    fprintf(stderr, "ctxgate: %s\n", err->text);
    return err->code == CTX_ECONFIG ? 2 : 1;
}

/* Load config, make the data dir, open the store. */
static int open_all(ctx_config *cfg, ctx_store **st, int readonly, ctx_error *err)
{
    char path[4096];
    int rc;

    *st = NULL;
    if ((rc = ctx_config_load(config_path, cfg, err)))
        return rc;
    if (!readonly && ctx_mkdir_p(cfg->data_dir) < 0)
        return ctx_error_set(err, CTX_EIO, "data_dir %s: %s; check the path and its"
                             " permissions", cfg->data_dir, strerror(errno));
    ctx_config_store_path(cfg, path, sizeof path);
    if (readonly && access(path, F_OK) != 0)
        return ctx_error_set(err, CTX_ENOTFOUND, "no store at %s yet; run `ctxgate sync`"
                             " first", path);
    if ((rc = store_open(path, 0, st, err)))
        return rc;
    return store_trust_apply(*st, cfg, err);
}

int cli_open(ctx_config *cfg, ctx_store **st, int readonly, ctx_error *err)
{
    return open_all(cfg, st, readonly, err);
}

/* ---- init ---- */

static const char init_template[] =
    "{\n"
    "  \"data_dir\": \"./data\",\n"
    "  \"chunk\": {\"max_tokens\": 256, \"overlap_tokens\": 32},\n"
    "  \"sources\": [\n"
    "    {\"name\": \"docs\", \"type\": \"files\", \"path\": \"./docs\"}\n"
    "  ]\n"
    "}\n";

static int cmd_init(int argc, char **argv)
{
    ctx_config cfg;
    ctx_store *st;
    ctx_error err;
    FILE *f;
    int rc;
    (void)argc;
    (void)argv;

    if (access(config_path, F_OK) != 0) {
        if (!(f = fopen(config_path, "wx"))) {
            fprintf(stderr, "ctxgate: cannot create %s: %s\n", config_path, strerror(errno));
            return 1;
        }
        fputs(init_template, f);
        fclose(f);
        printf("wrote %s; edit its sources, then run `ctxgate sync`\n", config_path);
    }
    if ((rc = open_all(&cfg, &st, 0, &err))) {
        ctx_config_free(&cfg);
        return fail(&err);
    }
    printf("store ready in %s\n", cfg.data_dir);
    store_close(st);
    ctx_config_free(&cfg);
    return 0;
}

/* ---- sources ---- */

static int cmd_sources(int argc, char **argv)
{
    ctx_config cfg;
    ctx_error err;
    int rc, bad = 0;
    (void)argc;
    (void)argv;

    if ((rc = ctx_config_load(config_path, &cfg, &err))) {
        ctx_config_free(&cfg);
        return fail(&err);
    }
    for (size_t i = 0; i < cfg.nsources; i++) {
        const ctx_source_cfg *s = &cfg.sources[i];
        registry_conn conn;
        ctx_conn_error ce;
        const char *state = "ok";
        char why[CTX_ERRMSG_MAX] = "";

        if ((rc = registry_open(s, &conn, &err))) {
            state = "config error";
            snprintf(why, sizeof why, "%s", err.text);
        } else {
            memset(&ce, 0, sizeof ce);
            if ((rc = conn.vt->xCheck(conn.conn, &ce))) {
                state = "unreachable";
                snprintf(why, sizeof why, "%s", ce.text);
            }
            registry_close(&conn);
        }
        bad |= rc != 0;
        printf("%-20s %-10s %-8s %s%s%s\n", s->name, s->type, s->enabled ? "enabled" : "disabled",
               state, *why ? ": " : "", why);
    }
    ctx_config_free(&cfg);
    return bad ? 1 : 0;
}

/* ---- sync ---- */

static void show_progress(void *arg, const char *source, const char *stream,
                          const store_run_stats *s, double secs, int done)
{
    (void)arg;
    fprintf(stderr, "\r%s/%s: %lld new or changed, %lld unchanged, %lld deleted"
            " (%.0f/s)%s", source, stream, (long long)s->records, (long long)s->unchanged,
            (long long)s->deletes,
            secs > 0 ? (double)(s->records + s->unchanged) / secs : 0.0,
            done ? "\n" : "   ");
}

/* permission_warnings - what is wrong with a source's permissions, to stderr. */
static void permission_warnings(ctx_store *st, const char *source)
{
    ctx_error err;
    json_t *w = explain_source_warnings(store_db(st), source, &err), *v;
    size_t i;

    json_array_foreach(json_object_get(w, "warnings"), i, v)
        fprintf(stderr, "ctxgate: warning: %s\n", json_string_value(v));
    json_decref(w);
}

static int cmd_sync(int argc, char **argv)
{
    static const struct option lo[] = {{"full", no_argument, NULL, 'f'},
                                       {"permissions", no_argument, NULL, 'p'},
                                       {"stream", required_argument, NULL, 's'},
                                       {"confirm", no_argument, NULL, 'c'},
                                       {NULL, 0, NULL, 0}};
    const char *streams[64];
    size_t nstreams = 0;
    ctx_config cfg;
    ctx_store *st = NULL;
    ctx_error err;
    sync_opts so;
    sync_sink sink;
    pgstore *pg = NULL;
    char lockdir[4096];
    int c, rc, failed = 0, full = 0, perms = 0, confirm = 0;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'f')
            full = 1;
        else if (c == 'p')
            perms = 1;
        else if (c == 'c')
            confirm = 1;
        else if (c == 's' && nstreams < 64)
            streams[nstreams++] = optarg;
        else
            return 2;
    }
    if (full && perms) {
        fprintf(stderr, "ctxgate: sync: --full and --permissions exclude each other (a full"
                " sync reads permissions too)\n");
        return 2;
    }
    if ((rc = open_all(&cfg, &st, 0, &err))) {
        ctx_config_free(&cfg);
        return fail(&err);
    }
    for (int i = optind; i < argc; i++) {
        if (!ctx_config_source(&cfg, argv[i])) {
            fprintf(stderr, "ctxgate: sync: no source named \"%s\" in %s\n", argv[i], config_path);
            store_close(st);
            ctx_config_free(&cfg);
            return 2;
        }
    }
    /* Cluster mode (docs/cluster.md): the runs write to PostgreSQL. */
    sync_sink_store(st, &sink);
    if (cfg.cluster.conninfo && *cfg.cluster.conninfo) {
        if ((rc = pgstore_open(&cfg.cluster, &pg, &err))) {
            store_close(st);
            ctx_config_free(&cfg);
            return fail(&err);
        }
        pgstore_sink(pg, &sink);
    }
    snprintf(lockdir, sizeof lockdir, "%s/locks", cfg.data_dir);
    ctx_mkdir_p(lockdir);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    memset(&so, 0, sizeof so);
    so.full = full;
    so.streams = nstreams ? streams : NULL;
    so.nstreams = nstreams;
    so.lock_dir = lockdir;
    so.cancel = &canceled;
    so.chunk_max_tokens = cfg.chunk_max_tokens;
    so.chunk_overlap_tokens = cfg.chunk_overlap_tokens;
    so.confirm = confirm;
    if (isatty(STDERR_FILENO))
        so.progress = show_progress;

    for (size_t i = 0; i < cfg.nsources && !canceled; i++) {
        const ctx_source_cfg *src = &cfg.sources[i];
        store_run_stats stats;
        const char *pstreams[32];
        int wanted = optind >= argc;
        uint64_t t0 = ctx_mono_ns();

        for (int j = optind; j < argc; j++)
            wanted |= !strcmp(argv[j], src->name);
        if (!wanted || (!src->enabled && optind >= argc))
            continue;
        so.permissions = perms;
        so.nprincipal_streams = perms ? jobs_principal_streams(src, pstreams, 32) : 0;
        so.principal_streams = pstreams;
        rc = sync_source_to(&sink, src, &so, &stats, &err);
        if (rc) {
            fprintf(stderr, "ctxgate: %s\n", err.text);
            failed = 1;
            continue;
        }
        if (perms)
            printf("%s: permissions: %lld checked, %lld permission changes, %lld deleted,"
                   " %lld principals, %lld chunks in %.2fs\n", src->name,
                   (long long)stats.unchanged, (long long)stats.acls,
                   (long long)(stats.deletes + stats.pruned), (long long)stats.principals,
                   (long long)stats.chunks, (double)(ctx_mono_ns() - t0) / 1e9);
        else
            printf("%s: %lld indexed, %lld unchanged, %lld deleted, %lld pruned, %lld"
                   " permission changes, %lld principals, %lld chunks in %.2fs\n",
                   src->name, (long long)stats.records, (long long)stats.unchanged,
                   (long long)stats.deletes, (long long)stats.pruned, (long long)stats.acls,
                   (long long)stats.principals, (long long)stats.chunks,
                   (double)(ctx_mono_ns() - t0) / 1e9);
        if (stats.warnings)
            fprintf(stderr, "ctxgate: %s: %lld warnings (summarized above; `ctxgate status`"
                    " shows them)\n", src->name, (long long)stats.warnings);
        if (stats.repaired_utf8)
            fprintf(stderr, "ctxgate: %s: repaired %lld ill-formed UTF-8 sequences\n",
                    src->name, (long long)stats.repaired_utf8);
        if (!pg)
            permission_warnings(st, src->name);
    }
    pgstore_close(pg);
    store_close(st);
    ctx_config_free(&cfg);
    return failed || canceled ? 1 : 0;
}

/* ---- search ---- */

static int is_wordc(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
}

/* A one-line excerpt of text around the first query word found in it. */
static void excerpt(const char *text, const char *query, char *out, size_t len)
{
    const char *best = NULL, *p = query;
    char word[64];
    size_t start, n = strlen(text), w;

    while (*p && !best) {
        while (*p && !is_wordc((unsigned char)*p))
            p++;
        for (w = 0; w < sizeof word - 1 && is_wordc((unsigned char)p[w]); w++)
            word[w] = p[w];
        word[w] = '\0';
        p += w;
        while (is_wordc((unsigned char)*p))
            p++;
        if (w >= 3)
            best = strcasestr(text, word);
    }
    start = best && (size_t)(best - text) > 60 ? (size_t)(best - text) - 60 : 0;
    while (start > 0 && start < n && ((unsigned char)text[start] & 0xC0) == 0x80)
        start--;
    snprintf(out, len, "%s%.*s", start ? "..." : "", (int)(len - 8), text + start);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\t' || *c == '\r')
            *c = ' ';
    /* Do not end inside a UTF-8 sequence. */
    n = strlen(out);
    while (n && !ctx_utf8_valid(out, n))
        n--;
    out[n] = '\0';
}

/*
 * open_vectors - the active model's index, caught up (and written back when
 * it had to be built; `ctxgate embed` keeps the file current), and an
 * embedder of that model for queries, with the query settings (one request
 * within embeddings.query_timeout_ms). No model yet: both NULL, and vector
 * search finds nothing.
 */
static int open_vectors(const ctx_config *cfg, ctx_store *st, vindex **vi, embed_provider **emb,
                        ctx_error *err)
{
    int64_t active, target;
    char *name = NULL, path[4096];
    embed_cfg ec;
    int dim, how, rc;

    *vi = NULL;
    *emb = NULL;
    if ((rc = store_embed_models(st, &active, &target, err)) || !active)
        return rc;
    if ((rc = store_embed_model_info(st, active, &name, &dim, err)))
        return rc;
    embed_cfg_query_from(cfg, &ec);
    rc = embed_open_model(&ec, name, dim, emb, err);
    ctx_free(name);
    if (rc)
        return rc;
    vindex_path(cfg->data_dir, active, path, sizeof path);
    if ((rc = vindex_open(st, path, active, vi, &how, err))) {
        embed_close(*emb);
        *emb = NULL;
        return rc;
    }
    /* Written for the next search unless an embed job is writing the files. */
    if (how == VINDEX_BUILT) {
        ctx_error lerr;
        int fd;
        if (vindex_lock(cfg->data_dir, 0, NULL, &fd, &lerr) ||
            vindex_save(*vi, path, &lerr))
            ctx_log(CTX_LOG_WARN, "vindex", "%s", lerr.text);
        vindex_unlock(fd);
    }
    return CTX_OK;
}

int cli_open_vectors(const ctx_config *cfg, ctx_store *st, vindex **vi, embed_provider **emb,
                     ctx_error *err)
{
    return open_vectors(cfg, st, vi, emb, err);
}

int cli_search_run(const ctx_config *cfg, ctx_store *st, vindex *vi, embed_provider *emb,
                   const char *mode, const char *user, const char *query, const search_opts *so,
                   search_result *res, const char **why, ctx_error *err)
{
    int hybrid = !strcmp(mode, "hybrid"), degraded = 0, rc = CTX_OK;
    float *qv = NULL;

    memset(res, 0, sizeof *res);
    *why = NULL;
    if (!strcmp(mode, "lexical")) {
        search_opts lo = *so;
        search_opts_config(&lo, &cfg->search);
        return search_lexical(store_db(st), user, query, &lo, res, err);
    }
    if (hybrid && !(cfg->search.w_vector > 0)) {
        *why = "disabled";
    } else if (!emb || !vi) {
        *why = "no_index";
    } else if (hybrid && cfg->search.w_lexical > 0 && embed_model_lexical(embed_model_name(emb))) {
        *why = "lexical_model"; /* the hash embedder adds nothing to the lexical leg */
    } else if (!(qv = ctx_malloc((size_t)embed_dim(emb) * sizeof *qv))) {
        return ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
    } else {
        size_t len = strlen(query);
        uint64_t t0 = ctx_mono_ns();
        ctx_error eerr;
        if (embed_texts(emb, &query, &len, 1, qv, &eerr)) {
            int64_t ms = (int64_t)((ctx_mono_ns() - t0) / 1000000);
            *why = ms >= cfg->embeddings.query_timeout_ms * 9 / 10 ? "timeout" : "embedder_error";
            degraded = 1;
            ctx_log(CTX_LOG_WARN, "search", "query not embedded (%s after %lld ms): %s;"
                    " answering from the lexical leg", *why, (long long)ms, eerr.text);
            ctx_free(qv);
            qv = NULL;
        }
    }
    if (hybrid || degraded) {
        hybrid_opts ho;
        memset(&ho, 0, sizeof ho);
        ho.k = so->k;
        ho.per_doc = so->per_doc;
        ho.sources = so->sources;
        ho.nsources = so->nsources;
        ho.labels = so->labels;
        hybrid_opts_config(&ho, &cfg->search, degraded);
        rc = hybrid_search_vec(store_db(st), vi, qv, user, query, &ho, res, err);
    } else if (qv) {
        vsearch_opts vo;
        memset(&vo, 0, sizeof vo);
        vo.k = so->k;
        vo.per_doc = so->per_doc;
        vo.sources = so->sources;
        vo.nsources = so->nsources;
        vo.labels = so->labels;
        rc = vsearch(store_db(st), vi, user, qv, &vo, res, NULL, err);
    }
    ctx_free(qv);
    return rc;
}

static int cmd_search(int argc, char **argv)
{
    static const struct option lo[] = {{"as", required_argument, NULL, 'u'},
                                       {"k", required_argument, NULL, 'k'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"source", required_argument, NULL, 's'},
                                       {"mode", required_argument, NULL, 'm'},
                                       {NULL, 0, NULL, 0}};
    const char *user = NULL, *sources[64], *mode = "lexical";
    size_t nsources = 0;
    int c, k = 10, as_json = 0, rc;
    ctx_config cfg;
    ctx_store *st = NULL;
    ctx_error err;
    ctx_buf q = CTX_BUF_INIT;
    search_opts so;
    search_result res;
    fresh_report fr = {0};
    acl_label_filter lf;
    vindex *vi = NULL;
    embed_provider *emb = NULL;
    const char *why = NULL; /* why the vector leg was not used */
    int degraded = 0;       /* it was wanted but the query could not be embedded */

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'm')
            mode = optarg;
        else if (c == 'u')
            user = optarg;
        else if (c == 'k')
            k = atoi(optarg);
        else if (c == 'j')
            as_json = 1;
        else if (c == 's' && nsources < 64)
            sources[nsources++] = optarg;
        else
            return 2;
    }
    if (!user) {
        fprintf(stderr, "ctxgate: search: --as USER is required: results depend on who asks\n");
        return 2;
    }
    if (k < 1 || k > 1000) {
        fprintf(stderr, "ctxgate: search: --k must be 1..1000\n");
        return 2;
    }
    if (strcmp(mode, "lexical") && strcmp(mode, "vector") && strcmp(mode, "hybrid")) {
        fprintf(stderr, "ctxgate: search: --mode must be lexical, vector or hybrid\n");
        return 2;
    }
    for (int i = optind; i < argc; i++)
        ctx_buf_printf(&q, "%s%s", i > optind ? " " : "", argv[i]);
    if (!q.len) {
        fprintf(stderr, "ctxgate: search: give a QUERY\n");
        return 2;
    }
    if ((rc = open_all(&cfg, &st, 1, &err))) {
        ctx_config_free(&cfg);
        ctx_buf_free(&q);
        return fail(&err);
    }
    /* Sources whose permissions are too old are withheld, as in serve; a
     * replica's store too far behind PostgreSQL answers nothing. */
    if ((rc = replica_gate_store(&cfg, st, ctx_now_ms(), &err)) ||
        (rc = fresh_check(store_db(st), &cfg, ctx_now_ms(), &fr, &err))) {
        fresh_report_free(&fr);
        store_close(st);
        ctx_config_free(&cfg);
        ctx_buf_free(&q);
        return fail(&err);
    }
    memset(&lf, 0, sizeof lf);
    lf.withheld = fr.withheld;
    lf.nwithheld = fr.nwithheld;
    memset(&so, 0, sizeof so);
    so.k = k;
    so.per_doc = 1;
    so.sources = nsources ? sources : NULL;
    so.nsources = nsources;
    so.labels = fr.nwithheld ? &lf : NULL;
    if (strcmp(mode, "lexical"))
        rc = open_vectors(&cfg, st, &vi, &emb, &err);
    if (!rc)
        rc = cli_search_run(&cfg, st, vi, emb, mode, user, q.data, &so, &res, &why, &err);
    degraded = why && (!strcmp(why, "timeout") || !strcmp(why, "embedder_error"));
    vindex_free(vi);
    embed_close(emb);
    if (rc) {
        fresh_report_free(&fr);
        store_close(st);
        ctx_config_free(&cfg);
        ctx_buf_free(&q);
        return fail(&err);
    }
    if (as_json) {
        json_t *root = json_object(), *arr = json_array();
        for (size_t i = 0; i < res.n; i++) {
            const search_hit *h = &res.hits[i];
            char *ext_id = NULL; /* the source's own id beside ours */
            store_doc_name(st, h->doc_id, NULL, &ext_id, NULL);
            json_array_append_new(arr, json_pack("{s:I,s:s?,s:s,s:s,s:s,s:f,s:s,s:I}", "doc_id",
                                                 (json_int_t)h->doc_id, "external_id", ext_id,
                                                 "source", h->source,
                                                 "title", h->title, "url", h->url, "score",
                                                 h->score, "text", h->text, "acl_synced_at",
                                                 (json_int_t)h->acl_synced_at));
            ctx_free(ext_id);
        }
        json_object_set_new(root, "results", arr);
        json_object_set_new(root, "withheld", fresh_withheld_json(&fr));
        if (strcmp(mode, "lexical"))
            json_object_set_new(root, "vector_leg",
                                why ? json_pack("{s:b,s:s}", "used", 0, "reason", why)
                                    : json_pack("{s:b}", "used", 1));
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(root);
    } else {
        for (size_t i = 0; i < res.n; i++) {
            char ex[200];
            excerpt(res.hits[i].text, q.data, ex, sizeof ex);
            printf("%2zu. %s  [%s, score %.2f]\n    %s\n    %s\n", i + 1, res.hits[i].title,
                   res.hits[i].source, res.hits[i].score, res.hits[i].url, ex);
        }
        if (!res.n)
            printf("(no results)\n");
        for (size_t i = 0; i < fr.n; i++)
            if (fr.v[i].withheld)
                printf("withheld: %s: %s\n", fr.v[i].name, fr.v[i].why);
        if (degraded)
            printf("note: the query could not be embedded (%s): these results are the lexical"
                   " leg's alone\n", why);
        else if (why && !strcmp(why, "lexical_model"))
            printf("note: the hash embedder matches only the words the lexical leg matches:"
                   " these results are the lexical leg's alone (choose a trained or an"
                   " OpenAI-compatible embedder for a vector leg)\n");
    }
    fresh_report_free(&fr);
    search_result_free(&res);
    store_close(st);
    ctx_config_free(&cfg);
    ctx_buf_free(&q);
    return 0;
}

/* ---- embed ---- */

static int cmd_embed(int argc, char **argv)
{
    ctx_config cfg;
    ctx_store *st = NULL;
    ctx_error err;
    embed_job_stats es;
    int rc;
    uint64_t t0 = ctx_mono_ns();
    (void)argc;
    (void)argv;

    if (cli_cluster_embed(config_path, &rc)) /* cluster mode: vectors into PostgreSQL */
        return rc;
    if ((rc = open_all(&cfg, &st, 0, &err)))
        goto done;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    /* another embed job running (an agent's): wait for it, then do what is left */
    if ((rc = jobs_embed(&cfg, st, 0, -1, &canceled, &es, &err)))
        goto done;
    if (es.trained)
        printf("lsa: trained on %lld chunks, %lld terms, %lld entries in %.2fs\n",
               (long long)es.train.chunks, (long long)es.train.terms, (long long)es.train.nnz,
               es.train.seconds);
    printf("%s: %lld embedded, %lld reused, %lld skipped in %.2fs; %lld waiting%s\n",
           es.model, (long long)es.run.embedded, (long long)es.run.reused,
           (long long)es.run.skipped, (double)(ctx_mono_ns() - t0) / 1e9,
           (long long)es.run.remaining, es.run.switched ? "; now the active model" : "");
    if (es.index.built || es.index.merged)
        printf("vector index: %zu vectors (%zu deleted), %s; %llu bytes written\n",
               es.index.vectors, es.index.dead, es.index.built ? "built" : "deltas merged",
               (unsigned long long)es.index.bytes);
    else if (es.index.bytes)
        printf("vector index: a delta of %zu vectors and %zu deletions, %llu bytes; %zu"
               " deltas beside the main file\n", es.index.added, es.index.removed,
               (unsigned long long)es.index.bytes, es.index.files.deltas);
    else if (es.index.files.main_ok)
        printf("vector index: up to date, nothing written\n");
done:
    store_close(st);
    ctx_config_free(&cfg);
    return rc ? fail(&err) : 0;
}

/* ---- status ---- */

/* print_warnings - a run's warning summary (a JSON array, borrowed), one line a kind. */
static void print_warnings(json_t *a)
{
    size_t i, j;
    json_t *k, *e;

    json_array_foreach(a, i, k) {
        const char *level = json_string_value(json_object_get(k, "level"));
        const char *kind = json_string_value(json_object_get(k, "kind"));
        const char *msg = json_string_value(json_object_get(k, "message"));
        if (kind && msg && !strcmp(kind, msg)) { /* a plain line: its text is its kind */
            printf("  %lld %s%s: %s\n",
                   (long long)json_integer_value(json_object_get(k, "count")),
                   level && !strcmp(level, "error") ? "error" : "warning",
                   json_integer_value(json_object_get(k, "count")) == 1 ? "" : "s", msg);
            continue;
        }
        printf("  %lld %s%s of kind %s: %s",
               (long long)json_integer_value(json_object_get(k, "count")),
               level && !strcmp(level, "error") ? "error" : "warning",
               json_integer_value(json_object_get(k, "count")) == 1 ? "" : "s",
               json_string_value(json_object_get(k, "kind")),
               json_string_value(json_object_get(k, "message")));
        json_array_foreach(json_object_get(k, "examples"), j, e)
            printf("%s%s", j ? ", " : " (e.g. ", json_string_value(e));
        printf("%s\n", json_array_size(json_object_get(k, "examples")) ? ")" : "");
    }
}

/* print_status - `ctxgate status` as text, from status_report's JSON (borrowed). */
static void print_status(const json_t *r, int64_t now)
{
    const json_t *o, *idx = json_object_get(r, "index");
    const json_t *emb = json_object_get(idx, "embeddings");
    size_t i, j;
    json_t *v;

    json_array_foreach(json_object_get(r, "sources"), i, o) {
        int64_t lag_ms = json_integer_value(json_object_get(o, "lag_ms"));
        const char *status = json_string_value(json_object_get(o, "last_run"));
        const char *error = json_string_value(json_object_get(o, "last_error"));
        char lag[64];
        if (lag_ms >= 0)
            snprintf(lag, sizeof lag, "%.1fs ago", (double)lag_ms / 1000.0);
        else
            snprintf(lag, sizeof lag, "never");
        printf("%-16s %-8s %7lld docs %8lld chunks  last good sync %s, last run %s%s%s\n",
               json_string_value(json_object_get(o, "source")),
               json_string_value(json_object_get(o, "type")),
               (long long)json_integer_value(json_object_get(o, "documents")),
               (long long)json_integer_value(json_object_get(o, "chunks")), lag,
               status ? status : "never", error ? ": " : "", error ? error : "");
        print_warnings(json_object_get(o, "last_run_warnings"));
    }
    json_array_foreach(json_object_get(r, "permissions"), i, o) {
        const char *name = json_string_value(json_object_get(o, "source"));
        const json_t *at = json_object_get(o, "permissions_synced_at");
        int bounded = !json_is_null(json_object_get(o, "max_permission_age_s"));
        json_array_foreach(json_object_get(o, "warnings"), j, v)
            printf("warning: %s\n", json_string_value(v));
        if (json_is_true(json_object_get(o, "withheld")))
            printf("permissions %-12s WITHHELD: %s\n", name,
                   json_string_value(json_object_get(o, "reason")));
        else if (json_is_integer(at))
            printf("permissions %-12s synced %.0fs ago%s\n", name,
                   (double)(now - json_integer_value(at)) / 1000.0,
                   bounded ? "" : " (no max_permission_age)");
        else
            printf("permissions %-12s never synced by a permission or full sync%s\n", name,
                   bounded ? "" : " (no max_permission_age)");
    }
    {
        const char *model = json_string_value(json_object_get(emb, "model"));
        const char *next = json_string_value(json_object_get(emb, "switching_to"));
        int active = model != NULL;
        int have_file = json_is_true(json_object_get(json_object_get(idx, "vector_index"),
                                                     "file_present"));
        int64_t age = json_integer_value(json_object_get(json_object_get(idx, "ranking_stats"),
                                                         "age_ms"));
        printf("embeddings: %s, %lld vectors, %lld chunks waiting%s%s\n",
               model ? model : "none yet",
               (long long)json_integer_value(json_object_get(emb, "vectors")),
               (long long)json_integer_value(json_object_get(emb, "queue")),
               next ? "; re-embedding for " : "", next ? next : "");
        printf("vector index: %s; ranking statistics: %s\n",
               !active ? "none (no model)" : have_file ? "on disk" : "missing (rebuilt on next use)",
               age >= 0 ? "built" : "never built (run a sync or `ctxgate agent`)");
    }
}

static int cmd_status(int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    ctx_config cfg;
    ctx_store *st = NULL;
    ctx_error err;
    json_t *r = NULL;
    int c, as_json = 0, rc;
    int64_t now = ctx_now_ms();

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'j')
            as_json = 1;
        else
            return 2;
    }
    rc = open_all(&cfg, &st, 1, &err);
    if (rc == CTX_ENOTFOUND && cfg.cluster.conninfo && *cfg.cluster.conninfo) {
        ctx_config_free(&cfg); /* a cluster worker keeps no store: status makes an empty one */
        rc = open_all(&cfg, &st, 0, &err);
    }
    if (rc || (rc = status_report(&cfg, st, now, &r, &err))) {
        store_close(st);
        ctx_config_free(&cfg);
        return fail(&err);
    }
    if (as_json) {
        json_dumpf(r, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        print_status(r, now);
        cli_status_cluster_print(r);
    }
    /* cluster mode with PostgreSQL out of reach: reported, and exit 1 */
    rc = json_object_get(json_object_get(r, "cluster"), "error") ? 1 : 0;
    json_decref(r);
    store_close(st);
    ctx_config_free(&cfg);
    return rc;
}

/* ---- schema ---- */

static int cmd_schema(int argc, char **argv)
{
    json_t *specs = json_object(), *root;
    (void)argc;
    (void)argv;

    for (const char *const *n = registry_builtin_names(); *n; n++) {
        json_t *spec = ctx_json_loads(registry_builtin(*n)->xSpec(), 0, NULL);
        if (!spec) {
            fprintf(stderr, "ctxgate: the %s connector's spec is not JSON\n", *n);
            json_decref(specs);
            return 1;
        }
        json_object_set_new(specs, *n, spec);
    }
    root = ctx_config_schema(specs);
    json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(root);
    json_decref(specs);
    return 0;
}

/* ---- agent ---- */

static volatile sig_atomic_t reload_asked;

static void on_hup(int sig)
{
    (void)sig;
    reload_asked = 1;
}

static int cmd_agent(int argc, char **argv)
{
    static const struct option lo[] = {{"once", no_argument, NULL, 'o'}, {NULL, 0, NULL, 0}};
    agent_daemon_opts ao = {0, &canceled, &reload_asked};
    ctx_error err;
    int c;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c != 'o')
            return 2;
        ao.once = 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_hup);
    if (agent_daemon(config_path, &ao, &err))
        return fail(&err);
    return 0;
}

static int cmd_connector(int argc, char **argv)
{
    return cli_connector(argc, argv, config_path);
}

static int cmd_serve(int argc, char **argv) { return cli_serve(argc, argv, config_path); }
static int cmd_explain(int argc, char **argv) { return cli_explain(argc, argv); }
static int cmd_eval(int argc, char **argv) { return cli_eval(argc, argv); }
static int cmd_follow(int argc, char **argv) { return cli_follow(argc, argv, config_path); }
static int cmd_token(int argc, char **argv) { return cli_token(argc, argv, config_path); }
static int cmd_mcp(int argc, char **argv) { return cli_mcp(argc, argv, config_path); }
static int cmd_audit(int argc, char **argv) { return cli_audit(argc, argv, config_path); }
static int cmd_usage(int argc, char **argv) { return cli_usage(argc, argv, config_path); }

/* maintain - the agent's maintain job, once: for scripts and for an
 * operator who runs no agent. */
static int cmd_maintain(int argc, char **argv)
{
    ctx_config cfg;
    ctx_store *st = NULL;
    ctx_error err;
    int rc;
    uint64_t t0 = ctx_mono_ns();
    (void)argc;
    (void)argv;

    if (!(rc = open_all(&cfg, &st, 0, &err)) && !(rc = jobs_maintain(&cfg, st, &err)))
        printf("maintain: statistics, index segments, vector deltas and logs tidied in %.2fs\n",
               (double)(ctx_mono_ns() - t0) / 1e9);
    store_close(st);
    ctx_config_free(&cfg);
    return rc ? fail(&err) : 0;
}

static const cmd cmds[] = {
    {"init", cmd_init, "init                    write ./ctxgate.json if missing and create the store"},
    {"sources", cmd_sources, "sources                 list configured sources and check each can be reached"},
    {"sync", cmd_sync, "sync [SOURCE...] [--full | --permissions] [--stream S] [--confirm]\n"
                       "                        pull changes from sources (all by default);\n"
                       "                        --full re-reads everything and prunes what is gone;\n"
                       "                        --permissions reads only ids and ACLs: applies\n"
                       "                        permission changes, deletes what is gone;\n"
                       "                        --confirm applies a mass change a guard held"},
    {"search", cmd_search, "search --as USER [--k N] [--json] [--source S]\n"
                           "       [--mode lexical|vector|hybrid] QUERY\n"
                           "                        search what USER may read"},
    {"eval", cmd_eval, CLI_EVAL_USAGE},
    {"embed", cmd_embed, "embed                   give every chunk a vector of the configured model\n"
                         "                        and bring the vector index up to date"},
    {"maintain", cmd_maintain, "maintain                the agent's maintain job once: ranking statistics,\n"
                               "                        FTS5 segments merged, vector deltas merged, logs\n"
                               "                        trimmed, audit log and run history pruned"},
    {"agent", cmd_agent, "agent [--once]          the maintenance agent: run each source's sync,\n"
                         "                        permissions and full-refresh jobs on their\n"
                         "                        schedules, embed, keep the index healthy\n"
                         "                        (--once: what is due now, then exit);\n"
                         "                        SIGTERM stops it cleanly, SIGHUP reloads"},
    {"status", cmd_status, "status [--json]         per source: documents, chunks, last run, lag,\n"
                           "                        permission age and permission warnings"},
    {"explain", cmd_explain, CLI_EXPLAIN_USAGE},
    {"schema", cmd_schema, "schema                  print the JSON Schema of the config file"},
    {"connector", cmd_connector, CLI_CONNECTOR_USAGE},
    {"serve", cmd_serve, CLI_SERVE_USAGE},
    {"follow", cmd_follow, CLI_FOLLOW_USAGE},
    {"mcp", cmd_mcp, CLI_MCP_USAGE},
    {"token", cmd_token, CLI_TOKEN_USAGE},
    {"audit", cmd_audit, CLI_AUDIT_USAGE},
    {"usage", cmd_usage, CLI_USAGE_USAGE},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ctxgate [--config FILE] [-v] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %s\n", cmds[i].usage);
    fprintf(f, "\n--config FILE defaults to ./ctxgate.json; every command takes --help.\n");
}

int main(int argc, char **argv)
{
    int i = 1;

    ctx_json_init(); /* jansson's allocation failures become errors (core/json.h) */
    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[i + 1];
            i += 2;
        } else if (!strncmp(argv[i], "--config=", 9)) {
            config_path = argv[i] + 9;
            i++;
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            ctx_log_set_level(CTX_LOG_DEBUG);
            i++;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ctxgate: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        const char *slash;
        if (strcmp(argv[i], cmds[c].name))
            continue;
        /* Per-command --config and --help, anywhere after the command. */
        for (int j = i + 1; j < argc; j++) {
            if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) {
                printf("usage: ctxgate [--config FILE] %s\n", cmds[c].usage);
                return 0;
            }
            if (!strcmp(argv[j], "--config") && j + 1 < argc) {
                config_path = argv[j + 1];
                memmove(&argv[j], &argv[j + 2], (size_t)(argc - j - 2) * sizeof *argv);
                argc -= 2;
                j--;
            }
        }
        /* Relative paths in the config (data_dir, a connector's path, a
         * password_file) are relative to the config file: work from there. */
        if ((slash = strrchr(config_path, '/'))) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - config_path), config_path);
            if (chdir(*dir ? dir : "/") < 0) {
                fprintf(stderr, "ctxgate: --config %s: %s\n", config_path, strerror(errno));
                return 2;
            }
            config_path = slash + 1;
        }
        optind = 1;
        return cmds[c].run(argc - i, argv + i);
    }
    fprintf(stderr, "ctxgate: unknown command \"%s\"\n", argv[i]);
    usage(stderr);
    return 2;
}
