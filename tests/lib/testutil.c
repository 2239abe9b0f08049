/*
 * testutil.c - see testutil.h. Failures abort: a helper that fails has
 * broken the test's premise, not its assertion.
 */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include <jwt.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "agent/jobs.h"
#include "core/util.h"
#include "indexer/ingest.h"
#include "retrieval/search.h"

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "testutil: %s: %s\n", what, detail);
    abort();
}

char *tu_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/ctxgate-%s.XXXXXX", tag);
    if (!mkdtemp(tmpl))
        die("mkdtemp", strerror(errno));
    return strdup(tmpl);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void tu_rmrf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_write(const char *dir, const char *rel, const char *text)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    if (!(f = fopen(path, "wb")))
        die(path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

ctx_store *tu_store(const char *dir)
{
    char path[4096];
    ctx_store *st;
    ctx_error err;

    snprintf(path, sizeof path, "%s/ctxgate.db", dir);
    if (store_open(path, 0, &st, &err))
        die("store_open", err.text);
    return st;
}

int tu_sync(ctx_store *st, const char *source_json, int full, store_run_stats *stats,
            ctx_error *err)
{
    char text[65536];
    json_error_t jerr;
    json_t *root;
    ctx_config cfg;
    sync_opts so;
    int rc;

    snprintf(text, sizeof text, "{\"sources\": [%s]}", source_json);
    if (!(root = json_loads(text, 0, &jerr)))
        die("tu_sync: bad JSON in test", jerr.text);
    memset(&cfg, 0, sizeof cfg);
    rc = ctx_config_parse(root, ".", &cfg, err);
    json_decref(root);
    if (!rc) {
        const char *pstreams[32];
        memset(&so, 0, sizeof so);
        so.full = full == 1;
        if (full == TU_PERMISSIONS) {
            so.permissions = 1;
            so.nprincipal_streams = jobs_principal_streams(&cfg.sources[0], pstreams, 32);
            so.principal_streams = pstreams;
        }
        so.chunk_max_tokens = cfg.chunk_max_tokens;
        so.chunk_overlap_tokens = cfg.chunk_overlap_tokens;
        rc = sync_source(st, &cfg.sources[0], &so, stats, err);
    }
    ctx_config_free(&cfg);
    return rc;
}

char *tu_text(ctx_store *st, const char *sql)
{
    sqlite3_stmt *s;
    char *v;

    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(store_db(st)));
    if (sqlite3_step(s) != SQLITE_ROW)
        die(sql, "no row");
    v = strdup(sqlite3_column_text(s, 0) ? (const char *)sqlite3_column_text(s, 0) : "");
    sqlite3_finalize(s);
    return v;
}

int64_t tu_count(ctx_store *st, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v;

    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(store_db(st)));
    if (sqlite3_step(s) != SQLITE_ROW)
        die(sql, "no row");
    v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

char *tu_search_titles(ctx_store *st, const char *user, const char *query)
{
    search_opts so = {50, 1, NULL, 0, 0};
    search_result r;
    ctx_error err;
    ctx_buf b = CTX_BUF_INIT;

    if (search_lexical(store_db(st), user, query, &so, &r, &err))
        die("search", err.text);
    ctx_buf_puts(&b, "");
    for (size_t i = 0; i < r.n; i++)
        ctx_buf_printf(&b, "%s%s", i ? "|" : "", r.hits[i].title);
    search_result_free(&r);
    return ctx_buf_steal(&b);
}

int tu_sees(ctx_store *st, const char *user, const char *query, const char *title)
{
    char *got = tu_search_titles(st, user, query), *p, *save = NULL;
    int found = 0;

    for (p = strtok_r(got, "|", &save); p; p = strtok_r(NULL, "|", &save))
        found |= !strcmp(p, title);
    free(got);
    return found;
}

const char *tu_build_dir(void)
{
    const char *b = getenv("CTX_BUILD");
    return b && *b ? b : "build/asan";
}

void tu_ingest_init(ingest_ctx *ic, ctx_store *st, int64_t source, store_run_stats *stats)
{
    memset(ic, 0, sizeof *ic);
    memset(stats, 0, sizeof *stats);
    ic->store = st;
    ic->source = source;
    ic->epoch = 1;
    ic->stats = stats;
    ic->chunk.max_tokens = 256;
}

int64_t tu_source_with_user(ctx_store *st, const char *user, ingest_ctx *ic,
                            store_run_stats *stats)
{
    ctx_principal u = {CTX_PRINCIPAL_USER, user, NULL, NULL, NULL, NULL, 0};
    int64_t source;
    ctx_error err;

    if (store_source(st, "s", "test", &source, &err))
        die("store_source", err.text);
    tu_ingest_init(ic, st, source, stats);
    if (store_begin(st, &err) || store_principal_put(st, source, &u, &err) ||
        store_commit(st, &err))
        die("declare user", err.text);
    return source;
}

char *tu_cli(const char *dir, const char *args, int with_stderr, int *status)
{
    char cmd[8192], buf[4096];
    ctx_buf b = CTX_BUF_INIT;
    size_t n;
    FILE *p;

    snprintf(cmd, sizeof cmd, "%s/ctxgate --config %s/ctxgate.json %s %s", tu_build_dir(), dir,
             args, with_stderr ? "2>&1" : "2>/dev/null");
    if (!(p = popen(cmd, "r"))) {
        fprintf(stderr, "tu_cli: cannot run %s\n", cmd);
        abort();
    }
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        ctx_buf_append(&b, buf, n);
    *status = pclose(p);
    ctx_buf_append(&b, "", 1);
    return ctx_buf_steal(&b);
}

pid_t tu_embed_server(int dim, const char *stall_s, int *port)
{
    char line[64] = "", d[16];
    int fds[2];
    pid_t pid;
    FILE *f;

    snprintf(d, sizeof d, "%d", dim);
    if (pipe(fds) || (pid = fork()) < 0) {
        fprintf(stderr, "tu_embed_server: %s\n", strerror(errno));
        abort();
    }
    if (!pid) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", "tests/embed_server.py", "--dim", d, "--stall", stall_s,
               (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof line, f) || sscanf(line, "PORT %d", port) != 1) {
        fprintf(stderr, "tu_embed_server: the embeddings server did not start: %s\n", line);
        abort();
    }
    fclose(f);
    return pid;
}

static size_t http_sink(char *p, size_t s, size_t n, void *arg)
{
    ctx_buf_append(arg, p, s * n);
    return s * n;
}

char *tu_http(int port, const char *path, const char *body)
{
    CURL *c = curl_easy_init();
    ctx_buf b = CTX_BUF_INIT;
    char url[128];

    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform(c) != CURLE_OK) {
        fprintf(stderr, "tu_http: %s failed\n", url);
        abort();
    }
    curl_easy_cleanup(c);
    ctx_buf_append(&b, "", 1);
    return ctx_buf_steal(&b);
}

/* header_sink - the headers a tu_reply keeps, as they come. */
static size_t header_sink(char *p, size_t s, size_t n, void *arg)
{
    static const struct {
        const char *name;
        size_t off, len;
    } kept[] = {
        {"Retry-After", offsetof(tu_reply, retry_after), sizeof ((tu_reply *)0)->retry_after},
        {"WWW-Authenticate", offsetof(tu_reply, www_auth), sizeof ((tu_reply *)0)->www_auth},
        {"Location", offsetof(tu_reply, location), sizeof ((tu_reply *)0)->location},
        {"Content-Type", offsetof(tu_reply, content_type),
         sizeof ((tu_reply *)0)->content_type},
        {"Content-Security-Policy", offsetof(tu_reply, csp), sizeof ((tu_reply *)0)->csp},
    };
    size_t len = s * n;

    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        size_t nl = strlen(kept[i].name), from = nl + 1, to = len;
        if (len <= nl + 1 || strncasecmp(p, kept[i].name, nl) || p[nl] != ':')
            continue;
        while (from < to && p[from] == ' ')
            from++;
        while (to > from && (p[to - 1] == '\r' || p[to - 1] == '\n'))
            to--;
        snprintf((char *)arg + kept[i].off, kept[i].len, "%.*s", (int)(to - from), p + from);
    }
    return len;
}

tu_reply tu_call(int port, const char *method, const char *path, const char *token,
                 const char *body, const char *const *headers)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    ctx_buf b = CTX_BUF_INIT;
    char url[2048], auth[9000];
    int typed = 0;
    tu_reply r;

    memset(&r, 0, sizeof r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hl = curl_slist_append(hl, auth);
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        typed |= !strncasecmp(headers[i], "Content-Type:", 13);
        hl = curl_slist_append(hl, headers[i]);
    }
    if (!typed)
        hl = curl_slist_append(hl, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_sink);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (curl_easy_perform(c) != CURLE_OK) {
        fprintf(stderr, "tu_call: %s %s failed\n", method, url);
        abort();
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    ctx_buf_append(&b, "", 1);
    r.body = ctx_buf_steal(&b);
    return r;
}

void tu_reply_free(tu_reply *r)
{
    ctx_free(r->body);
    r->body = NULL;
}

char *tu_jwt(const char *secret, const char *iss, const char *aud, const char *user,
             const char *acting, long ttl)
{
    json_t *claims = json_pack("{s:s,s:I,s:s,s:s}", "sub", user, "exp",
                               (json_int_t)time(NULL) + ttl, "iss", iss, "aud", aud);
    char *text, *tok = NULL, *out;
    jwt_t *j = NULL;

    if (acting)
        json_object_set_new(claims, "act", json_pack("{s:s}", "sub", acting));
    text = json_dumps(claims, JSON_COMPACT);
    if (!text || jwt_new(&j) || jwt_add_grants_json(j, text) ||
        jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) ||
        !(tok = jwt_encode_str(j))) {
        fprintf(stderr, "tu_jwt: cannot mint a token\n");
        abort();
    }
    out = ctx_strdup(tok);
    free(tok);
    jwt_free(j);
    free(text);
    json_decref(claims);
    return out;
}

pid_t tu_serve(const char *dir, const char *env, const char *args, int *port)
{
    char cmd[8192], logp[4096], bin[4096];
    pid_t pid, parent;

    if (!realpath(tu_build_dir(), bin))
        abort();
    snprintf(cmd, sizeof cmd, "cd %s && %s exec %s/ctxgate serve %s 2>serve.log", dir,
             env ? env : "", bin, args ? args : "");
    parent = getpid();
    if ((pid = fork()) < 0)
        abort();
    if (pid == 0) {
        /* a test that fails half-way leaves no server behind: it goes with
         * the test's process (sh execs it, so the setting carries over) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    *port = 0;
    snprintf(logp, sizeof logp, "%s/serve.log", dir);
    for (int i = 0; i < 600 && !*port; i++) {
        char line[512];
        FILE *f = fopen(logp, "r");
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "serving on http://127.0.0.1:");
            if (p)
                *port = atoi(p + strlen("serving on http://127.0.0.1:"));
        }
        if (f)
            fclose(f);
        if (!*port)
            usleep(50000);
    }
    return pid;
}

void tu_embed_script(int port, const char *json_list)
{
    ctx_buf b = CTX_BUF_INIT;

    ctx_buf_printf(&b, "{\"script\": %s}", json_list);
    ctx_free(tu_http(port, "/control", b.data));
    ctx_buf_free(&b);
}

char *tu_search_answer(const search_result *r)
{
    ctx_buf b = CTX_BUF_INIT;
    int bad = ctx_buf_printf(&b, "%zu hits\n", r->n);

    for (size_t i = 0; i < r->n && !bad; i++) {
        const search_hit *h = &r->hits[i];
        bad = ctx_buf_printf(&b, "%lld %lld %a %lld|%s|%s|%s|%s\n", (long long)h->chunk_id,
                             (long long)h->doc_id, h->score, (long long)h->acl_synced_at,
                             h->source, h->title, h->url, h->text);
    }
    if (bad)
        die("tu_search_answer", "out of memory");
    return ctx_buf_steal(&b);
}
