/*
 * rest_int.h - what the REST connector's files share: its configuration,
 * its connection and one HTTP answer, and the functions one file gives the
 * other. rest.c: options, open/close, reading streams, the vtable;
 * rest_http.c: the requests (auth, rate budget, retries) and the JSON and
 * URL helpers the mapping uses. Connector-internal.
 */
#ifndef CTX_CONNECTORS_REST_INT_H
#define CTX_CONNECTORS_REST_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdint.h>

#include "../../core/opts.h"
#include "../../core/util.h"
#include "../sdk/ctxgate/connector.h"

typedef struct rest_stream_cfg {
    char *name, *kind, *endpoint, *records;
    json_t *params;
    char *id, *title;
    ctx_strlist body;
    char *url, *url_template, *updated_at, *since_param;
    char *allow_users, *allow_groups, *deny_users, *deny_groups, *labels;
    int allow_everyone;
    char *permissions_endpoint, *permissions_users, *permissions_groups;
    char *deleted_endpoint, *deleted_records, *deleted_id, *deleted_at;
    char *pagination, *page_param, *offset_param, *limit_param, *cursor_param, *cursor_path;
    int64_t page_size, start_page, lookback_seconds;
    char *email, *display_name, *members, *member_groups;
} rest_stream_cfg;

typedef struct rest_auth_cfg {
    char *type, *secret_env, *secret_file, *header, *username, *client_id, *token_url,
        *scope;
} rest_auth_cfg;

typedef struct rest_cfg {
    char *base_url, *ca_file;
    json_t *auth;
    int64_t connect_timeout, timeout, retries, backoff_ms, max_backoff_ms, max_retry_after;
    int64_t requests_per_second, max_page_bytes;
    ctx_objlist streams;   /* of rest_stream_cfg */
} rest_cfg;

enum { AUTH_NONE, AUTH_BEARER, AUTH_API_KEY, AUTH_BASIC, AUTH_OAUTH2 };
enum { KIND_DOCS, KIND_USERS, KIND_GROUPS };
enum { PAGE_NONE, PAGE_NUMBER, PAGE_OFFSET, PAGE_CURSOR, PAGE_LINK };

typedef struct rest_conn {
    rest_cfg cfg;
    rest_auth_cfg auth;
    int auth_kind;
    CURL *curl;
    char *secret;             /* loaded on first use; wiped on close */
    char *token;              /* oauth2 access token */
    int64_t token_exp_ms;
    uint64_t next_ok_ns;      /* the rate budget: no request before this (ctx_mono_ns) */
    uint64_t rng;
    const ctx_host *host;     /* during xRead only, for retry logs */
    ctx_emitter *em;
} rest_conn;

/* One HTTP answer. */
typedef struct rest_resp {
    long status;
    ctx_buf body, link;
    size_t max;
    int too_big;
    char retry_after[64], ctype[96];
    int64_t rl_remaining, rl_reset;   /* -1 when absent */
} rest_resp;

#define REST_STATE_MAX 512

/* ---- rest.c ---- */

/* rest_log - a line for the host's log during xRead (nothing outside it). */
void rest_log(const rest_conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* rest_err_prefix - put "what: " in front of e's message. */
void rest_err_prefix(ctx_conn_error *e, const char *what);

/* rest_endpoint_url - base_url joined with endpoint (or endpoint, when absolute) into out. */
int rest_endpoint_url(const rest_conn *c, ctx_buf *out, const char *endpoint);

/* ---- rest_http.c ---- */

/*
 * rest_http_call - GET url (or, with form, POST it to the OAuth2 token
 * endpoint) into resp, a 2xx answer, with the credential, the shared rate
 * budget and bounded retries (429 and 5xx; an OAuth2 401 gets one fresh
 * token). what names the stream in messages. resp: rest_resp_free.
 */
int rest_http_call(rest_conn *c, const char *what, const char *url, const char *form,
                   rest_resp *resp, ctx_conn_error *e);

/* rest_parse_answer - the JSON of a 2xx answer (new, *root); bad UTF-8 or JSON named. */
int rest_parse_answer(const rest_conn *c, const char *what, const char *url,
                      const rest_resp *r, json_t **root, ctx_conn_error *e);

void rest_resp_free(rest_resp *r);

/* rest_jpath - the value at a dotted path in v ("" is v), or NULL; borrowed. */
json_t *rest_jpath(json_t *v, const char *path);

/* rest_jtext - a scalar as text (numbers, booleans into buf); NULL otherwise. */
const char *rest_jtext(const json_t *v, char *buf, size_t len);

/* rest_parse_time - ms since the epoch of an ISO 8601 time or epoch seconds; -1 if neither. */
int64_t rest_parse_time(const char *s);

/* rest_cmp_id - two ids in order: numerically when both are digits, else bytewise. */
int rest_cmp_id(const char *a, const char *b);

/* rest_url_path - the part of url after scheme and host, for messages; borrowed. */
const char *rest_url_path(const char *url);

/* rest_same_origin - 1 when a and b have the same scheme://host:port. */
int rest_same_origin(const char *a, const char *b);

/* rest_copy_value - a header value (n bytes at v) into dst, cut to cap, NUL-ended. */
void rest_copy_value(char *dst, size_t cap, const char *v, size_t n);

#endif
