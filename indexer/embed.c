/*
 * embed.c - the hash, lsa and OpenAI-compatible embedders and the queue
 * worker (see embed.h; the lsa models themselves are lsa.c's).
 */
#include "embed.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/util.h"
#include "lsa.h"
#include "../core/json.h"
#include "../core/retry.h"

enum { PROV_HASH = 1, PROV_OPENAI = 2, PROV_LSA = 3 };

struct embed_provider {
    int kind;
    int dim;
    int batch_size;
    char *name;        /* as recorded in the store */
    char *model;       /* as sent to the server */
    char *url;         /* openai: base_url + "/embeddings" */
    char *auth;        /* openai: "Authorization: Bearer ..." or NULL */
    int timeout_ms, max_retries, retry_base_ms, retry_max_ms;
    int64_t max_retry_after_ms;
    int concurrency;   /* openai: requests in flight */
    CURL **curl;       /* openai: one handle per request in flight */
    lsa_embedder *lsa; /* lsa: the model and a tokenizer */
};

/* ---- hash embedder ---- */

#define FNV_OFF 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static void add_feature(float *out, int dim, uint64_t h, float w)
{
    h = mix64(h);
    out[h % (uint64_t)dim] += (h >> 63) ? -w : w;
}

void embed_normalize(float *v, int dim)
{
    double ss = 0;
    for (int i = 0; i < dim; i++)
        ss += (double)v[i] * v[i];
    if (ss <= 0)
        return;
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < dim; i++)
        v[i] *= inv;
}

/*
 * Words are runs of ASCII letters and digits (case folded) and of bytes of
 * multi-byte UTF-8 characters, as in lexical search. Each word adds +-1 to
 * one bucket, each pair of neighbouring words +-0.5 to another: the sign
 * bit keeps collisions from piling up in one direction.
 */
void embed_hash(const char *text, size_t len, int dim, float *out)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    uint64_t prev = 0;
    int have_prev = 0;

    memset(out, 0, (size_t)dim * sizeof *out);
    while (p < end) {
        uint64_t h = FNV_OFF;
        const unsigned char *s;
        while (p < end && !(*p >= 0x80 || (*p >= '0' && *p <= '9') ||
                            ((*p | 32) >= 'a' && (*p | 32) <= 'z')))
            p++;
        s = p;
        while (p < end && (*p >= 0x80 || (*p >= '0' && *p <= '9') ||
                           ((*p | 32) >= 'a' && (*p | 32) <= 'z'))) {
            unsigned char c = *p < 0x80 ? (unsigned char)(*p | 32) : *p;
            if (*p <= '9')
                c = *p;
            h = (h ^ c) * FNV_PRIME;
            p++;
        }
        if (p == s)
            break;
        add_feature(out, dim, h, 1.0f);
        if (have_prev)
            add_feature(out, dim, prev * 31 + h + 0x9e3779b97f4a7c15ULL, 0.5f);
        prev = h;
        have_prev = 1;
    }
    embed_normalize(out, dim);
}

/* ---- providers ---- */

static int provider_kind(const char *name)
{
    if (!name || !strcmp(name, "hash"))
        return PROV_HASH;
    if (!strcmp(name, "openai"))
        return PROV_OPENAI;
    if (!strcmp(name, "lsa"))
        return PROV_LSA;
    return 0;
}

static int open_kind(const embed_cfg *cfg, int kind, const char *model, int dim,
                     embed_provider **out, ctx_error *err)
{
    embed_provider *p;
    ctx_buf b = CTX_BUF_INIT;

    *out = NULL;
    if (dim < 2 || dim > 8192)
        return ctx_error_set(err, CTX_ECONFIG, "embeddings.dim: %d is out of range; use 2..8192",
                             dim);
    if (!(p = ctx_calloc(1, sizeof *p)))
        return ctx_error_set(err, CTX_ENOMEM, "embed: out of memory");
    p->kind = kind;
    p->dim = dim;
    p->batch_size = cfg->batch_size > 0 ? cfg->batch_size : 64;
    p->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    p->max_retries = cfg->max_retries >= 0 ? cfg->max_retries : 5;
    p->retry_base_ms = cfg->retry_base_ms > 0 ? cfg->retry_base_ms : 500;
    p->retry_max_ms = cfg->retry_max_ms > 0 ? cfg->retry_max_ms : 60000;
    p->max_retry_after_ms = cfg->max_retry_after_ms > 0 ? cfg->max_retry_after_ms : 300000;
    p->concurrency = kind == PROV_OPENAI && cfg->concurrency > 1 ? cfg->concurrency : 1;
    if (p->concurrency > 64)
        p->concurrency = 64;
    if (kind == PROV_HASH) {
        p->model = ctx_strdup(model && *model ? model : "v1");
        ctx_buf_printf(&b, "hash:%s@%d", p->model ? p->model : "", dim);
    } else if (kind == PROV_LSA) {
        lsa_model *m = NULL;
        int rc;
        if (!model || !*model) {
            embed_close(p);
            return ctx_error_set(err, CTX_ECONFIG, "embeddings: the lsa provider has no trained"
                                 " model yet; run `ctxgate embed` to train one");
        }
        if ((rc = lsa_load(cfg->data_dir ? cfg->data_dir : ".", model, dim, &m, err)) ||
            (rc = lsa_embedder_new(m, &p->lsa, err))) {
            lsa_release(m);
            embed_close(p);
            return rc;
        }
        lsa_release(m);
        p->model = ctx_strdup(model);
        ctx_buf_printf(&b, "lsa:%s@%d", model, dim);
    } else {
        const char *base = cfg->base_url && *cfg->base_url ? cfg->base_url
                                                            : "https://api.openai.com/v1";
        const char *env = cfg->api_key_env && *cfg->api_key_env ? cfg->api_key_env
                                                                : "OPENAI_API_KEY";
        const char *key = getenv(env);
        size_t bl = strlen(base);
        if (!model || !*model) {
            embed_close(p);
            return ctx_error_set(err, CTX_ECONFIG, "embeddings.model: required for the openai"
                                 " provider, e.g. \"text-embedding-3-small\"");
        }
        while (bl && base[bl - 1] == '/')
            bl--;
        p->model = ctx_strdup(model);
        ctx_buf_printf(&b, "openai:%s", model);
        {
            ctx_buf u = CTX_BUF_INIT;
            ctx_buf_printf(&u, "%.*s/embeddings", (int)bl, base);
            p->url = ctx_buf_steal(&u);
        }
        if (key && *key) {
            ctx_buf a = CTX_BUF_INIT;
            ctx_buf_printf(&a, "Authorization: Bearer %s", key);
            p->auth = ctx_buf_steal(&a);
        } else if (!cfg->base_url || !*cfg->base_url) {
            embed_close(p);
            ctx_buf_free(&b);
            return ctx_error_set(err, CTX_ECONFIG, "embeddings: $%s is not set; export the API"
                                 " key or name another variable in embeddings.api_key_env",
                                 env);
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if ((p->curl = ctx_calloc((size_t)p->concurrency, sizeof *p->curl)))
            for (int i = 0; i < p->concurrency; i++)
                if (!(p->curl[i] = curl_easy_init()))
                    break;
        if (!p->url || !p->curl || !p->curl[p->concurrency - 1]) {
            embed_close(p);
            ctx_buf_free(&b);
            return ctx_error_set(err, CTX_ENOMEM, "embed: cannot start libcurl");
        }
    }
    p->name = ctx_buf_steal(&b);
    if (!p->name || !p->model) {
        embed_close(p);
        return ctx_error_set(err, CTX_ENOMEM, "embed: out of memory");
    }
    *out = p;
    return CTX_OK;
}

int embed_open(const embed_cfg *cfg, embed_provider **out, ctx_error *err)
{
    int kind = provider_kind(cfg->provider);
    if (!kind)
        return ctx_error_set(err, CTX_ECONFIG, "embeddings.provider: unknown provider \"%s\";"
                             " use \"hash\", \"lsa\" or \"openai\"", cfg->provider);
    return open_kind(cfg, kind, cfg->model, cfg->dim > 0 ? cfg->dim : 384, out, err);
}

int embed_open_model(const embed_cfg *base, const char *name, int dim, embed_provider **out,
                     ctx_error *err)
{
    const char *colon = strchr(name, ':');
    char model[256];

    *out = NULL;
    if (colon && !strncmp(name, "hash:", 5)) {
        const char *at = strrchr(colon + 1, '@');
        snprintf(model, sizeof model, "%.*s", (int)(at ? at - colon - 1 : (long)strlen(colon + 1)),
                 colon + 1);
        return open_kind(base, PROV_HASH, model, dim, out, err);
    }
    if (colon && !strncmp(name, "lsa:", 4)) {
        const char *at = strrchr(colon + 1, '@');
        snprintf(model, sizeof model, "%.*s", (int)(at ? at - colon - 1 : (long)strlen(colon + 1)),
                 colon + 1);
        return open_kind(base, PROV_LSA, model, dim, out, err);
    }
    if (colon && !strncmp(name, "openai:", 7))
        return open_kind(base, PROV_OPENAI, colon + 1, dim, out, err);
    return ctx_error_set(err, CTX_ECONFIG, "embeddings: the store's model \"%s\" has no"
                         " provider here; run `ctxgate embed` with a provider", name);
}

int embed_cfg_name(const embed_cfg *cfg, char *buf, size_t len, int *dim, ctx_error *err)
{
    int kind = provider_kind(cfg->provider);

    *dim = cfg->dim > 0 ? cfg->dim : 384;
    if (kind == PROV_HASH) {
        snprintf(buf, len, "hash:%s@%d", cfg->model && *cfg->model ? cfg->model : "v1", *dim);
        return CTX_OK;
    }
    if (kind == PROV_OPENAI && cfg->model && *cfg->model) {
        snprintf(buf, len, "openai:%s", cfg->model);
        return CTX_OK;
    }
    return ctx_error_set(err, CTX_ECONFIG, "embeddings.provider: \"%s\" names no model before"
                         " it is opened%s", cfg->provider ? cfg->provider : "",
                         kind == PROV_LSA ? " (lsa is trained on a store's chunks)" :
                         kind == PROV_OPENAI ? "; set embeddings.model" : "");
}

void embed_close(embed_provider *p)
{
    if (!p)
        return;
    for (int i = 0; p->curl && i < p->concurrency; i++)
        if (p->curl[i])
            curl_easy_cleanup(p->curl[i]);
    ctx_free(p->curl);
    lsa_embedder_free(p->lsa);
    ctx_free(p->name);
    ctx_free(p->model);
    ctx_free(p->url);
    ctx_free(p->auth);
    ctx_free(p);
}

const char *embed_model_name(const embed_provider *p) { return p->name; }
int embed_dim(const embed_provider *p) { return p->dim; }
int embed_batch_items(const embed_provider *p) { return p->batch_size * p->concurrency; }

/* ---- OpenAI-compatible HTTP ---- */

typedef struct http_reply {
    ctx_buf body;
    char retry_after[96]; /* the Retry-After header's value, "" when absent */
} http_reply;

static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
    http_reply *r = arg;
    if (r->body.len + size * n > (size_t)512 << 20)
        return 0; /* a runaway reply: abort the transfer */
    return ctx_buf_append(&r->body, ptr, size * n) ? 0 : size * n;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *arg)
{
    http_reply *r = arg;
    size_t len = size * n;
    if (len > 12 && !strncasecmp(ptr, "Retry-After:", 12)) {
        size_t k = len - 12 < sizeof r->retry_after - 1 ? len - 12 : sizeof r->retry_after - 1;
        memcpy(r->retry_after, ptr + 12, k);
        r->retry_after[k] = '\0'; /* blanks and CRLF are ctx_retry_after_ms's to skip */
    }
    return len;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The server's own words about an error, if its body says any. */
static void server_message(const ctx_buf *body, char *out, size_t len)
{
    json_t *root = body->len ? ctx_json_loadb(body->data, body->len, 0, NULL) : NULL;
    json_t *m = json_object_get(json_object_get(root, "error"), "message");
    if (json_is_string(m))
        snprintf(out, len, ": %s", json_string_value(m));
    else if (body->len)
        snprintf(out, len, ": %.120s", body->data);
    else
        out[0] = '\0';
    json_decref(root);
}

/* parse_reply - fill out from a 200 reply, checking count and dimension. */
static int parse_reply(embed_provider *p, const ctx_buf *body, size_t n, float *out,
                       ctx_error *err)
{
    json_error_t jerr;
    json_t *root = ctx_json_loadb(body->data ? body->data : "", body->len, 0, &jerr);
    json_t *data = json_object_get(root, "data"), *item;
    unsigned char *seen = NULL;
    size_t i;
    int rc = CTX_ESOURCE;

    if (!json_is_array(data)) {
        ctx_error_set(err, rc, "embeddings: POST %s: the reply has no \"data\" array (%s);"
                      " is base_url an OpenAI-compatible /v1 endpoint?", p->url,
                      root ? "wrong shape" : jerr.text);
        goto done;
    }
    if (json_array_size(data) != n) {
        ctx_error_set(err, rc, "embeddings: POST %s: %zu vectors for %zu texts; the server"
                      " must answer every input", p->url, json_array_size(data), n);
        goto done;
    }
    if (!(seen = ctx_calloc(n, 1))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "embed: out of memory");
        goto done;
    }
    json_array_foreach(data, i, item) {
        json_t *vec = json_object_get(item, "embedding"), *ix = json_object_get(item, "index"), *x;
        size_t at = json_is_integer(ix) ? (size_t)json_integer_value(ix) : i, j;
        if (at >= n || seen[at]) {
            ctx_error_set(err, rc, "embeddings: POST %s: data[%zu].index %zu is out of range or"
                          " repeated", p->url, i, at);
            goto done;
        }
        seen[at] = 1;
        if (!json_is_array(vec) || json_array_size(vec) != (size_t)p->dim) {
            ctx_error_set(err, rc, "embeddings: model \"%s\" at %s returned %zu dimensions,"
                          " expected %d; set embeddings.dim to what the model gives (a new"
                          " dimension re-embeds everything)", p->model, p->url,
                          json_is_array(vec) ? json_array_size(vec) : 0, p->dim);
            goto done;
        }
        json_array_foreach(vec, j, x) {
            if (!json_is_number(x)) {
                ctx_error_set(err, rc, "embeddings: POST %s: data[%zu].embedding[%zu] is not"
                              " a number", p->url, i, j);
                goto done;
            }
            out[at * (size_t)p->dim + j] = (float)json_number_value(x);
        }
        embed_normalize(out + at * (size_t)p->dim, p->dim);
    }
    rc = CTX_OK;
done:
    ctx_free(seen);
    json_decref(root);
    return rc;
}

/* One request of n texts on handle c, retried as configured. */
static int embed_request(embed_provider *p, CURL *c, const char *const *texts,
                         const size_t *lens, size_t n, float *out, ctx_error *err)
{
    json_t *req = json_object(), *in = json_array();
    struct curl_slist *hdr = NULL;
    http_reply r = {CTX_BUF_INIT, ""};
    char *body = NULL, msg[256];
    long status = 0;
    int64_t wait = 0;
    ctx_backoff bo;
    CURLcode cc = CURLE_OK;
    int attempt, rc, built = req && in;

    for (size_t i = 0; built && i < n; i++)
        built = !json_array_append_new(in, json_stringn_nocheck(texts[i], lens[i]));
    if (built && !json_object_set_new(req, "model", json_string(p->model)) &&
        !json_object_set_new(req, "input", in))
        body = ctx_json_text(req, JSON_COMPACT); /* every text in it, or none sent */
    else if (req)
        json_decref(in);
    json_decref(req);
    ctx_backoff_init(&bo, p->retry_base_ms, p->retry_max_ms, (uint64_t)ctx_mono_ns());
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    if (p->auth)
        hdr = curl_slist_append(hdr, p->auth);
    if (!body || !hdr) {
        rc = ctx_error_set(err, CTX_ENOMEM, "embed: out of memory");
        goto done;
    }
    for (attempt = 0;; attempt++) {
        ctx_buf_reset(&r.body);
        r.retry_after[0] = '\0';
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, p->url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)p->timeout_ms);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        cc = curl_easy_perform(c);
        status = 0;
        if (cc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (cc == CURLE_OK && status == 200) {
            rc = parse_reply(p, &r.body, n, out, err);
            goto done;
        }
        /* Only what may pass by itself is retried: rate limits, server
         * errors, timeouts and broken connections. */
        if (cc == CURLE_OK && !ctx_retry_status(status)) {
            server_message(&r.body, msg, sizeof msg);
            rc = ctx_error_set(err, status == 401 || status == 403 ? CTX_EAUTH : CTX_ESOURCE,
                               "embeddings: POST %s: HTTP %ld%s%s", p->url, status, msg,
                               status == 401 || status == 403
                                   ? "; check the key in embeddings.api_key_env" : "");
            goto done;
        }
        if (attempt >= p->max_retries)
            break;
        /* The server's Retry-After (seconds or an HTTP-date) in full, never less;
         * else a backoff with jitter. */
        wait = cc == CURLE_OK ? ctx_retry_after_ms(r.retry_after, ctx_now_ms()) : -1;
        if (wait > p->max_retry_after_ms) {
            rc = ctx_error_set(err, CTX_ESOURCE, "embeddings: POST %s: HTTP %ld asks to wait"
                               " %lld s, more than embeddings.max_retry_after (%lld s); the"
                               " next embed run resumes", p->url, status,
                               (long long)(wait / 1000),
                               (long long)(p->max_retry_after_ms / 1000));
            goto done;
        }
        if (wait < 0)
            wait = ctx_backoff_next(&bo);
        if (cc == CURLE_OK)
            snprintf(msg, sizeof msg, "HTTP %ld", status);
        else
            snprintf(msg, sizeof msg, "%s", curl_easy_strerror(cc));
        ctx_log(CTX_LOG_WARN, "embed", "POST %s: %s; retrying in %lld ms (%d of %d)", p->url,
                msg, (long long)wait, attempt + 1, p->max_retries);
        sleep_ms(wait);
    }
    if (cc == CURLE_OK) {
        server_message(&r.body, msg, sizeof msg);
        rc = ctx_error_set(err, CTX_ESOURCE, "embeddings: POST %s: HTTP %ld%s after %d attempts;"
                           " the server is overloaded or failing, try later", p->url, status,
                           msg, attempt + 1);
    } else {
        rc = ctx_error_set(err, CTX_ESOURCE, "embeddings: POST %s: %s after %d attempts; check"
                           " embeddings.base_url and embeddings.timeout_ms", p->url,
                           curl_easy_strerror(cc), attempt + 1);
    }
done:
    curl_slist_free_all(hdr);
    free(body);
    ctx_buf_free(&r.body);
    return rc;
}

/*
 * The texts go in requests of batch_size, up to concurrency of them at once,
 * each worker on its own handle. The first failure is the answer; out is
 * then not to be used, and nothing has been written anywhere.
 */
typedef struct fanout {
    embed_provider *p;
    const char *const *texts;
    const size_t *lens;
    size_t n, next;
    float *out;
    pthread_mutex_t mu;
    int rc;
    ctx_error err;
} fanout;

typedef struct fanout_worker {
    fanout *f;
    CURL *c;
} fanout_worker;

static void *fanout_run(void *arg)
{
    fanout_worker *w = arg;
    fanout *f = w->f;
    size_t bs = (size_t)f->p->batch_size;

    for (;;) {
        size_t at, m;
        ctx_error e;
        int rc;
        pthread_mutex_lock(&f->mu);
        at = f->next;
        f->next += bs;
        rc = f->rc;
        pthread_mutex_unlock(&f->mu);
        if (rc || at >= f->n)
            return NULL;
        m = f->n - at < bs ? f->n - at : bs;
        rc = embed_request(f->p, w->c, f->texts + at, f->lens + at, m,
                           f->out + at * (size_t)f->p->dim, &e);
        if (rc) {
            pthread_mutex_lock(&f->mu);
            if (!f->rc) {
                f->rc = rc;
                f->err = e;
            }
            pthread_mutex_unlock(&f->mu);
            return NULL;
        }
    }
}

static int embed_openai(embed_provider *p, const char *const *texts, const size_t *lens,
                        size_t n, float *out, ctx_error *err)
{
    size_t nreq = (n + (size_t)p->batch_size - 1) / (size_t)p->batch_size;
    size_t nw = nreq < (size_t)p->concurrency ? nreq : (size_t)p->concurrency, started = 0;
    pthread_t th[64];
    fanout_worker w[64];
    fanout f;

    if (nw <= 1) {
        /* One handle, the requests in turn. */
        for (size_t at = 0; at < n; at += (size_t)p->batch_size) {
            size_t m = n - at < (size_t)p->batch_size ? n - at : (size_t)p->batch_size;
            int rc = embed_request(p, p->curl[0], texts + at, lens + at, m,
                                   out + at * (size_t)p->dim, err);
            if (rc)
                return rc;
        }
        return CTX_OK;
    }
    memset(&f, 0, sizeof f);
    f.p = p;
    f.texts = texts;
    f.lens = lens;
    f.n = n;
    f.out = out;
    pthread_mutex_init(&f.mu, NULL);
    for (size_t i = 0; i < nw; i++) {
        w[i].f = &f;
        w[i].c = p->curl[i];
        if (pthread_create(&th[i], NULL, fanout_run, &w[i]))
            break;
        started++;
    }
    if (!started)
        fanout_run(&w[0]);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&f.mu);
    if (f.rc && err)
        *err = f.err;
    return f.rc;
}

int embed_texts(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                float *out, ctx_error *err)
{
    if (!n)
        return CTX_OK;
    if (p->kind == PROV_HASH) {
        for (size_t i = 0; i < n; i++)
            embed_hash(texts[i], lens[i], p->dim, out + i * (size_t)p->dim);
        return CTX_OK;
    }
    if (p->kind == PROV_LSA) {
        for (size_t i = 0; i < n; i++) {
            int rc = lsa_embed(p->lsa, texts[i], lens[i], out + i * (size_t)p->dim, err);
            if (rc)
                return rc;
        }
        return CTX_OK;
    }
    return embed_openai(p, texts, lens, n, out, err);
}

/* ---- queue worker ---- */

void embed_text_hash(const char *text, size_t len, unsigned char out[16])
{
    const void *part = text;
    char hex[65];
    ctx_hash_hex(&part, &len, 1, hex);
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
}

/* One batch: embed what is not reusable, then write all of it or nothing. */
static int run_batch(ctx_store *st, embed_provider *p, int64_t model_id,
                     const store_embed_batch *b, embed_run_stats *s, ctx_error *err)
{
    size_t n = b->n, dim = (size_t)p->dim, nnew = 0, i;
    float *vecs = ctx_malloc(n * dim * sizeof *vecs), *fresh = NULL;
    unsigned char (*hash)[16] = ctx_malloc(n * sizeof *hash);
    const char **texts = ctx_malloc(n * sizeof *texts);
    size_t *lens = ctx_malloc(n * sizeof *lens), *at = ctx_malloc(n * sizeof *at);
    int rc, found, applied;

    if (!vecs || !hash || !texts || !lens || !at) {
        rc = ctx_error_set(err, CTX_ENOMEM, "embed: out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        embed_text_hash(b->items[i].text, b->items[i].len, hash[i]);
        if ((rc = store_vector_reuse(st, model_id, hash[i], vecs + i * dim, (int)dim, &found,
                                     err)))
            goto done;
        if (found) {
            s->reused++;
            continue;
        }
        texts[nnew] = b->items[i].text;
        lens[nnew] = b->items[i].len;
        at[nnew++] = i;
    }
    if (nnew) {
        if (!(fresh = ctx_malloc(nnew * dim * sizeof *fresh))) {
            rc = ctx_error_set(err, CTX_ENOMEM, "embed: out of memory");
            goto done;
        }
        if ((rc = embed_texts(p, texts, lens, nnew, fresh, err)))
            goto done;
        for (i = 0; i < nnew; i++)
            memcpy(vecs + at[i] * dim, fresh + i * dim, dim * sizeof *vecs);
        s->embedded += (int64_t)nnew;
    }
    if ((rc = store_begin(st, err)))
        goto done;
    for (i = 0; i < n; i++) {
        if ((rc = store_vector_put(st, b->items[i].chunk_id, model_id, hash[i], vecs + i * dim,
                                   (int)dim, &applied, err))) {
            store_rollback(st);
            goto done;
        }
        s->skipped += !applied;
    }
    if ((rc = store_commit(st, err)))
        store_rollback(st);
done:
    ctx_free(vecs);
    ctx_free(fresh);
    ctx_free(hash);
    ctx_free(texts);
    ctx_free(lens);
    ctx_free(at);
    return rc;
}

int embed_run(ctx_store *st, embed_provider *p, int max_batches, volatile sig_atomic_t *cancel,
              embed_run_stats *stats, ctx_error *err)
{
    embed_run_stats local;
    store_embed_batch b = {NULL, 0};
    int64_t model_id, queued, after = 0, n;
    int rc;

    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if ((rc = store_embed_model(st, p->name, p->dim, &model_id, err)) ||
        (rc = store_embed_prepare(st, model_id, &queued, err)))
        return rc;
    while (max_batches <= 0 || stats->batches < max_batches) {
        if (cancel && *cancel)
            return ctx_error_set(err, CTX_ECANCELED, "embed: canceled");
        if ((rc = store_embed_take(st, after, (size_t)embed_batch_items(p), &b, err)))
            return rc;
        if (!b.n) {
            store_embed_batch_free(&b);
            break;
        }
        after = b.items[b.n - 1].chunk_id;
        rc = run_batch(st, p, model_id, &b, stats, err);
        store_embed_batch_free(&b);
        if (rc)
            return rc;
        stats->batches++;
    }
    if ((rc = store_embed_depth(st, &stats->remaining, err)))
        return rc;
    if (stats->remaining)
        return CTX_OK;
    if ((rc = store_embed_switch(st, &stats->switched, err)))
        return rc;
    /* Old vectors go in slices, so no transaction holds the store long. */
    do {
        if ((rc = store_vectors_retire(st, 10000, &n, err)))
            return rc;
        stats->retired += n;
    } while (n);
    return CTX_OK;
}

int embed_model_lexical(const char *model_name)
{
    return model_name && !strncmp(model_name, "hash:", 5);
}
