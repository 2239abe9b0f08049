/*
 * rest_http.c - the REST connector's requests: credentials (bearer, API
 * key, basic, OAuth2 client credentials with a cached token), the rate
 * budget shared by a source's streams, retries with backoff on 429, 5xx
 * and transport errors (Retry-After honoured up to a bound), answers
 * capped in size and parsed; and the JSON and URL helpers of the mapping.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../core/json.h"
#include "../../core/retry.h"
#include "../registry.h"
#include "rest_int.h"

/* ---- secrets and small helpers ---- */

/* load_secret - the secret from secret_env or secret_file, once. */
static int load_secret(rest_conn *c, ctx_conn_error *e)
{
    char *text = NULL;
    size_t len = 0;
    const char *v;

    if (c->secret || c->auth_kind == AUTH_NONE || !c->cfg.auth)
        return CTX_CONN_OK;
    if (c->auth.secret_env) {
        if (!(v = getenv(c->auth.secret_env)) || !*v)
            return conn_errf(e, CTX_CONN_ECONFIG, "auth.secret_env: the environment variable"
                            " \"%s\" is not set; export it before the sync",
                            c->auth.secret_env);
        if (!(c->secret = ctx_strdup(v)))
            return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        return CTX_CONN_OK;
    }
    if (ctx_read_file(c->auth.secret_file, &text, &len))
        return conn_errf(e, CTX_CONN_ECONFIG, "auth.secret_file: cannot read %s: %s",
                        c->auth.secret_file, strerror(errno));
    text[strcspn(text, "\r\n")] = '\0';
    c->secret = text;
    return CTX_CONN_OK;
}

/* sleep_until - sleep until ctx_mono_ns() reaches t (CLOCK_MONOTONIC, ns). */
static void sleep_until(uint64_t t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* hold - no request of this credential before ms milliseconds from now. */
static void hold(rest_conn *c, int64_t ms)
{
    uint64_t until = ctx_mono_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000u;
    if (until > c->next_ok_ns)
        c->next_ok_ns = until;
}

/* rest_url_path - the part of url after scheme and host, for messages. Borrowed. */
const char *rest_url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? p : url;
}

/* rest_same_origin - 1 when a and b have the same scheme://host:port. */
int rest_same_origin(const char *a, const char *b)
{
    size_t la = (size_t)(rest_url_path(a) - a), lb = (size_t)(rest_url_path(b) - b);
    if (a[la] != '/')
        la = strlen(a);
    if (b[lb] != '/')
        lb = strlen(b);
    return la == lb && !strncasecmp(a, b, la);
}

/*
 * rest_jpath - the value at a dotted path in v ("" is v itself), or NULL.
 * Borrowed from v.
 */
json_t *rest_jpath(json_t *v, const char *path)
{
    char key[256];
    size_t n;

    while (v && path && *path) {
        n = strcspn(path, ".");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        v = json_object_get(v, key);
        path += n;
        if (*path == '.')
            path++;
    }
    return v;
}

/*
 * rest_jtext - a scalar as text: strings as they are, numbers and booleans
 * printed into buf; NULL for null, objects, arrays and absent values.
 */
const char *rest_jtext(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, len, "%.17g", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return NULL;
}

/*
 * rest_parse_time - milliseconds since the epoch of an ISO 8601 date or time
 * (ctx_iso8601_ms) or of epoch seconds (milliseconds when above 1e11, as
 * number or digits). -1 if neither.
 */
int64_t rest_parse_time(const char *s)
{
    int64_t ms;
    char *end;

    if (!s || !*s)
        return -1;
    if (strspn(s, "0123456789.") == strlen(s)) {
        double v = strtod(s, &end);
        if (*end)
            return -1;
        return v > 1e11 ? (int64_t)v : (int64_t)(v * 1000.0);
    }
    return ctx_iso8601_ms(s, &ms) ? -1 : ms;
}

/* rest_cmp_id - order of two ids: numerically when both are digits, else bytewise. */
int rest_cmp_id(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && lb && strspn(a, "0123456789") == la && strspn(b, "0123456789") == lb &&
        la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    rest_resp *r = arg;
    size_t len = size * n;
    if (r->body.len + len > r->max) {
        r->too_big = 1;
        return 0;
    }
    return ctx_buf_append(&r->body, p, len) ? 0 : len;
}

/* header_is - the value of "Name: value" when line is that header, else NULL. */
static const char *header_is(const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    const char *v;
    if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
        return NULL;
    for (v = line + n + 1; v < line + len && (*v == ' ' || *v == '\t'); v++)
        ;
    *vlen = (size_t)(line + len - v);
    while (*vlen && (v[*vlen - 1] == '\r' || v[*vlen - 1] == '\n' || v[*vlen - 1] == ' '))
        (*vlen)--;
    return v;
}

void rest_copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    rest_resp *r = arg;
    size_t len = size * n, vl;
    const char *v;
    char num[32];

    if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
        /* A new answer (after 100 Continue): forget the previous headers. */
        r->retry_after[0] = r->ctype[0] = '\0';
        r->rl_remaining = r->rl_reset = -1;
        ctx_buf_reset(&r->link);
    } else if ((v = header_is(p, len, "Retry-After", &vl))) {
        rest_copy_value(r->retry_after, sizeof r->retry_after, v, vl);
    } else if ((v = header_is(p, len, "Content-Type", &vl))) {
        rest_copy_value(r->ctype, sizeof r->ctype, v, vl);
    } else if ((v = header_is(p, len, "X-RateLimit-Remaining", &vl))) {
        rest_copy_value(num, sizeof num, v, vl);
        r->rl_remaining = strtoll(num, NULL, 10);
    } else if ((v = header_is(p, len, "X-RateLimit-Reset", &vl))) {
        rest_copy_value(num, sizeof num, v, vl);
        r->rl_reset = strtoll(num, NULL, 10);
    } else if ((v = header_is(p, len, "Link", &vl))) {
        if ((r->link.len && ctx_buf_puts(&r->link, ",")) || ctx_buf_append(&r->link, v, vl))
            return 0;
    }
    return len;
}

static void resp_reset(rest_resp *r, size_t max)
{
    ctx_buf_reset(&r->body);
    ctx_buf_reset(&r->link);
    r->status = 0;
    r->too_big = 0;
    r->max = max;
    r->retry_after[0] = r->ctype[0] = '\0';
    r->rl_remaining = r->rl_reset = -1;
}

void rest_resp_free(rest_resp *r)
{
    ctx_buf_free(&r->body);
    ctx_buf_free(&r->link);
}

/* setup - the options every request carries; TLS verification stays on. */
static int setup(rest_conn *c, const char *url, rest_resp *resp, char *ebuf)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    return curl_easy_setopt(h, CURLOPT_URL, url) ||
           curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") ||
           curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
           curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg.connect_timeout * 1000) ||
           curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->cfg.timeout * 1000) ||
           curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) ||
           curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) ||
           (c->cfg.ca_file && curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file)) ||
           curl_easy_setopt(h, CURLOPT_USERAGENT, "ctxgate-rest/1.0") ||
           curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "") ||
           curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) ||
           curl_easy_setopt(h, CURLOPT_WRITEDATA, resp) ||
           curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) ||
           curl_easy_setopt(h, CURLOPT_HEADERDATA, resp) ||
           curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
}

/* perform - run the prepared request; a transport failure is described in msg. */
static int perform(rest_conn *c, rest_resp *resp, const char *ebuf, char *msg, size_t len)
{
    CURLcode cc = curl_easy_perform(c->curl);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        return 0;
    }
    if (resp->too_big)
        snprintf(msg, len, "the answer is larger than max_page_bytes (%lld)",
                 (long long)c->cfg.max_page_bytes);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        snprintf(msg, len, "no complete answer within the timeout (%llds); raise timeout"
                 " or check the server", (long long)c->cfg.timeout);
    else
        snprintf(msg, len, "%s", *ebuf ? ebuf : curl_easy_strerror(cc));
    return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
                   cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT ||
                   resp->too_big
               ? -2
               : -1;
}

/* snippet - the start of an answer body on one line, secrets masked. */
static void snippet(const rest_conn *c, const rest_resp *r, char *out, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < r->body.len && n + 1 < len && n < 160; i++) {
        unsigned char ch = (unsigned char)r->body.data[i];
        out[n++] = ch < 0x20 || ch >= 0x7f ? ' ' : (char)ch;
    }
    out[n] = '\0';
    ctx_scrub(out, c->secret);
    ctx_scrub(out, c->token);
}

static int fetch_token(rest_conn *c, ctx_conn_error *e);

/* auth_headers - the request's credentials; *hl (new) is freed by the caller. */
static int auth_headers(rest_conn *c, struct curl_slist **hl, ctx_conn_error *e)
{
    ctx_buf h = CTX_BUF_INIT;
    struct curl_slist *l;
    int rc = 0;

    *hl = curl_slist_append(NULL, "Accept: application/json");
    if (!*hl)
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    switch (c->auth_kind) {
    case AUTH_BEARER:
        rc = ctx_buf_printf(&h, "Authorization: Bearer %s", c->secret);
        break;
    case AUTH_OAUTH2:
        rc = ctx_buf_printf(&h, "Authorization: Bearer %s", c->token);
        break;
    case AUTH_API_KEY:
        rc = ctx_buf_printf(&h, "%s: %s", c->auth.header, c->secret);
        break;
    case AUTH_BASIC:
        if (curl_easy_setopt(c->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) ||
            curl_easy_setopt(c->curl, CURLOPT_USERNAME, c->auth.username) ||
            curl_easy_setopt(c->curl, CURLOPT_PASSWORD, c->secret))
            return conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot set basic auth");
        return CTX_CONN_OK;
    default:
        return CTX_CONN_OK;
    }
    l = rc ? NULL : curl_slist_append(*hl, h.data);
    if (h.data)
        explicit_bzero(h.data, h.len);
    ctx_buf_free(&h);
    if (!l)
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    *hl = l;
    return CTX_CONN_OK;
}

/*
 * wait_budget - sleep until the shared rate budget allows the next request,
 * then book the one after it. The requests are spaced 2% wider than
 * 1/requests_per_second, in ns: spaced exactly, from a millisecond clock
 * (truncated, and 1000 / rps rounded down), a server counted rps + 1 of
 * them within one second (bench/sync_rest.sh); the 2% (20 ms in every
 * second) also absorbs the jitter between sending and arriving.
 */
static void wait_budget(rest_conn *c)
{
    if (c->next_ok_ns > ctx_mono_ns())
        sleep_until(c->next_ok_ns);
    if (c->cfg.requests_per_second)
        c->next_ok_ns = ctx_mono_ns() +
                        (uint64_t)(1020000000 / c->cfg.requests_per_second);
}

/* reset_ms - ms until an exhausted X-RateLimit window resets; -1 when not exhausted. */
static int64_t reset_ms(const rest_resp *r)
{
    int64_t now = ctx_now_ms(), until;
    if (r->rl_remaining != 0 || r->rl_reset < 0)
        return -1;
    /* Reset is epoch seconds (GitHub) or seconds from now (others). */
    until = r->rl_reset > 1000000000 ? r->rl_reset * 1000 : now + r->rl_reset * 1000;
    return until > now ? until - now : 0;
}

/* note_limits - after a success: an exhausted X-RateLimit window blocks until its reset. */
static void note_limits(rest_conn *c, const rest_resp *r)
{
    int64_t wait = reset_ms(r);
    if (wait < 0)
        return;
    if (wait > c->cfg.max_retry_after * 1000)
        wait = c->cfg.max_retry_after * 1000;
    hold(c, wait);
    rest_log(c, CTX_CONN_LOG_INFO, "rate limit exhausted; next request in %lld ms",
             (long long)wait);
}

/* client_auth - the token request's options: the form, client id and secret. */
static int client_auth(rest_conn *c, const char *form, struct curl_slist **hl)
{
    *hl = curl_slist_append(NULL, "Accept: application/json");
    return !*hl || curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, form) ||
           curl_easy_setopt(c->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) ||
           curl_easy_setopt(c->curl, CURLOPT_USERNAME, c->auth.client_id) ||
           curl_easy_setopt(c->curl, CURLOPT_PASSWORD, c->secret);
}

/*
 * rest_http_call - GET url (or, with form, POST it to the OAuth2 token
 * endpoint) into resp, a 2xx answer, with the credential, the shared rate
 * budget and bounded retries: 429 and 5xx wait Retry-After or the
 * X-RateLimit reset when given, else an exponential backoff with jitter;
 * an OAuth2 401 gets one fresh token. what names the stream in messages.
 */
int rest_http_call(rest_conn *c, const char *what, const char *url, const char *form,
                   rest_resp *resp, ctx_conn_error *e)
{
    char ebuf[CURL_ERROR_SIZE], msg[300], snip[200];
    const char *method = form ? "POST" : "GET";
    struct curl_slist *hl = NULL;
    int64_t attempt = 0, delay;
    ctx_backoff bo;
    int rc, refreshed = 0, tr;

    if ((rc = load_secret(c, e)))
        return rc;
    ctx_backoff_init(&bo, c->cfg.backoff_ms, c->cfg.max_backoff_ms, c->rng);
    c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull; /* the next call's */
    for (;;) {
        wait_budget(c);
        resp_reset(resp, (size_t)c->cfg.max_page_bytes);
        ebuf[0] = '\0';
        /* Refresh a little before the expiry, so no request carries a dead token. */
        if (!form && c->auth_kind == AUTH_OAUTH2 &&
            (!c->token || ctx_now_ms() + 5000 >= c->token_exp_ms) &&
            (rc = fetch_token(c, e))) {
            rest_err_prefix(e, what);
            break;
        }
        if (setup(c, url, resp, ebuf)) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot set request options");
            break;
        }
        if (form && client_auth(c, form, &hl)) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot set the token request");
            break;
        }
        if (!form && (rc = auth_headers(c, &hl, e)))
            break;
        if (curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hl)) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "libcurl: cannot set headers");
            break;
        }
        tr = perform(c, resp, ebuf, msg, sizeof msg);
        curl_slist_free_all(hl);
        hl = NULL;
        if (!tr && resp->status >= 200 && resp->status < 300) {
            note_limits(c, resp);
            return CTX_CONN_OK;
        }
        if (!tr && form && (resp->status == 400 || resp->status == 401 || resp->status == 403)) {
            snippet(c, resp, snip, sizeof snip);
            rc = conn_errf(e, CTX_CONN_EAUTH, "%s: POST %s: HTTP %ld (%s); check"
                          " auth.client_id and the secret", what, rest_url_path(url), resp->status,
                          snip);
            break;
        }
        if (!tr && !form && resp->status == 401 && c->auth_kind == AUTH_OAUTH2 && !refreshed) {
            rest_log(c, CTX_CONN_LOG_INFO, "%s: GET %s: HTTP 401; fetching a new token",
                     what, rest_url_path(url));
            ctx_wipe_free(c->token);
            c->token = NULL;
            refreshed = 1;
            continue;
        }
        if (!tr && (resp->status == 401 || resp->status == 403)) {
            rc = conn_errf(e, CTX_CONN_EAUTH, "%s: %s %s: HTTP %ld, credentials rejected;"
                          " %s", what, method, rest_url_path(url), resp->status,
                          !c->cfg.auth || c->auth_kind == AUTH_NONE
                              ? "the API wants credentials: set auth"
                          : c->auth.secret_env ? "check the secret in auth.secret_env"
                                               : "check the secret in auth.secret_file");
            break;
        }
        if (tr == -2 || (!tr && !ctx_retry_status(resp->status))) {
            if (!tr) {
                snippet(c, resp, snip, sizeof snip);
                snprintf(msg, sizeof msg, "HTTP %ld: %s", resp->status, snip);
            }
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: %s %s: %s", what, method, rest_url_path(url),
                          msg);
            break;
        }
        if (!tr)
            snprintf(msg, sizeof msg, "HTTP %ld", resp->status);
        if (attempt >= c->cfg.retries) {
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: %s %s: %s, still failing after %lld"
                          " attempt%s; nothing past the last checkpoint was committed", what,
                          method, rest_url_path(url), msg, (long long)attempt + 1,
                          attempt ? "s" : "");
            break;
        }
        attempt++;
        delay = tr ? -1 : ctx_retry_after_ms(resp->retry_after, ctx_now_ms());
        if (!tr && delay < 0)
            delay = reset_ms(resp);
        if (delay > c->cfg.max_retry_after * 1000) {
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: %s %s: %s asks to wait %lld s, more than"
                          " max_retry_after (%lld s)", what, method, rest_url_path(url), msg,
                          (long long)(delay / 1000), (long long)c->cfg.max_retry_after);
            break;
        }
        if (delay < 0)
            delay = ctx_backoff_next(&bo);
        rest_log(c, CTX_CONN_LOG_WARN, "%s: %s %s: %s; retry %lld of %lld in %lld ms", what,
                 method, rest_url_path(url), msg, (long long)attempt, (long long)c->cfg.retries,
                 (long long)delay);
        /* The wait belongs to the credential: every stream of the source waits too. */
        hold(c, delay);
    }
    curl_slist_free_all(hl);
    return rc;
}

/*
 * fetch_token - a new OAuth2 access token (client credentials grant),
 * client id and secret sent with HTTP basic auth, retried like any request.
 */
static int fetch_token(rest_conn *c, ctx_conn_error *e)
{
    rest_resp resp = {0};
    ctx_buf url = CTX_BUF_INIT, form = CTX_BUF_INIT;
    json_t *root = NULL, *tok;
    int rc;

    ctx_wipe_free(c->token);
    c->token = NULL;
    if (rest_endpoint_url(c, &url, c->auth.token_url) ||
        ctx_buf_puts(&form, "grant_type=client_credentials")) {
        rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    if (c->auth.scope) {
        char *q = curl_easy_escape(c->curl, c->auth.scope, 0);
        rc = !q || ctx_buf_printf(&form, "&scope=%s", q);
        curl_free(q);
        if (rc) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
            goto done;
        }
    }
    if ((rc = rest_http_call(c, "auth.token_url", url.data, form.data, &resp, e)))
        goto done;
    root = resp.body.data ? ctx_json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
    tok = json_object_get(root, "access_token");
    if (!json_is_string(tok) || !*json_string_value(tok)) {
        rc = conn_errf(e, CTX_CONN_EAUTH, "auth.token_url: POST %s: the answer has no"
                      " \"access_token\"", rest_url_path(url.data));
        goto done;
    }
    if (!(c->token = ctx_strdup(json_string_value(tok)))) {
        rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    {
        json_int_t exp = json_integer_value(json_object_get(root, "expires_in"));
        c->token_exp_ms = exp > 0 ? ctx_now_ms() + exp * 1000 : INT64_MAX;
    }
    rc = CTX_CONN_OK;
done:
    json_decref(root);
    if (form.data)
        explicit_bzero(form.data, form.len);
    ctx_buf_free(&form);
    ctx_buf_free(&url);
    rest_resp_free(&resp);
    return rc;
}

/* utf8_bad_at - offset of the first ill-formed sequence in s[0..n), or n. */
static size_t utf8_bad_at(const char *s, size_t n)
{
    size_t i = 0, len;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        len = ch < 0x80 ? 1 : (ch >> 5) == 6 ? 2 : (ch >> 4) == 14 ? 3 : (ch >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n || !ctx_utf8_valid(s + i, len))
            return i;
        i += len;
    }
    return n;
}

/*
 * rest_parse_answer - the JSON of a 2xx answer (new reference in *root). Invalid
 * UTF-8, non-JSON and truncated JSON fail naming the place.
 */
int rest_parse_answer(const rest_conn *c, const char *what, const char *url,
                      const rest_resp *r, json_t **root, ctx_conn_error *e)
{
    json_error_t jerr;
    char snip[200];

    *root = NULL;
    if (!r->body.len)
        return conn_errf(e, CTX_CONN_ESOURCE, "%s: GET %s: the answer is empty; expected"
                        " JSON", what, rest_url_path(url));
    if (!ctx_utf8_valid(r->body.data, r->body.len)) {
        size_t ok = utf8_bad_at(r->body.data, r->body.len), n = r->body.len;
        return conn_errf(e, CTX_CONN_ESOURCE, "%s: GET %s: the answer is not valid UTF-8"
                        " (first bad byte at offset %zu of %zu)", what, rest_url_path(url), ok, n);
    }
    if (!(*root = ctx_json_loadb(r->body.data, r->body.len, JSON_DECODE_ANY, &jerr))) {
        if (r->ctype[0] && !strstr(r->ctype, "json")) {
            snippet(c, r, snip, sizeof snip);
            return conn_errf(e, CTX_CONN_ESOURCE, "%s: GET %s: the answer is not JSON"
                            " (Content-Type %s): %s", what, rest_url_path(url), r->ctype, snip);
        }
        return conn_errf(e, CTX_CONN_ESOURCE, "%s: GET %s: the answer is not valid JSON"
                        " (truncated?): %s at line %d column %d of %zu bytes", what,
                        rest_url_path(url), jerr.text, jerr.line, jerr.column, r->body.len);
    }
    return CTX_CONN_OK;
}
