/*
 * counter.c - a test connector built as a real .so and loaded with dlopen,
 * like a user's plugin. It emits "count" records in stream "items" with a
 * STATE every "state_every", resumes after the state's "n", and misbehaves
 * on request: "fail_after" stops with an error, "wrong_stream" emits for a
 * stream it was not asked for. Config is parsed with sscanf to stay free of
 * any library but the SDK header.
 */
#include <ctxgate/connector.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef COUNTER_ABI
#define COUNTER_ABI CTX_CONNECTOR_ABI_VERSION
#endif
#ifndef COUNTER_SIZE
#define COUNTER_SIZE sizeof(ctx_connector)
#endif

typedef struct counter {
    int count, state_every, fail_after, wrong_stream;
} counter;

static int num(const char *json, const char *key, int def)
{
    const char *p = strstr(json, key);
    int v;
    if (!p)
        return def;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        p++;
    if (sscanf(p, "%d", &v) != 1)
        return def;
    return v;
}

static const char *c_spec(void)
{
    return "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"}}}";
}

static int c_open(const char *cfg, void **pconn, ctx_conn_error *e)
{
    counter *c = calloc(1, sizeof *c);
    (void)e;
    if (!c)
        return CTX_CONN_ENOMEM;
    c->count = num(cfg, "\"count\"", 100);
    c->state_every = num(cfg, "\"state_every\"", 10);
    c->fail_after = num(cfg, "\"fail_after\"", -1);
    c->wrong_stream = strstr(cfg, "\"wrong_stream\"") != NULL;
    *pconn = c;
    return CTX_CONN_OK;
}

static int c_check(void *conn, ctx_conn_error *e)
{
    (void)conn;
    (void)e;
    return CTX_CONN_OK;
}

static int c_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    (void)conn;
    (void)e;
    return fn(arg, "items", "{}");
}

static int c_read(void *conn, const char *stream, const char *state, int full,
                  const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    counter *c = conn;
    const char *allow[] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    int start = 0, emitted = 0;
    char id[32], body[96], st[64];

    if (state && !full)
        start = num(state, "\"n\"", 0);
    for (int i = start; i < c->count; i++) {
        if (c->fail_after >= 0 && emitted == c->fail_after) {
            snprintf(e->text, sizeof e->text, "counter: told to fail after %d", c->fail_after);
            return CTX_CONN_ESOURCE;
        }
        snprintf(id, sizeof id, "%d", i);
        snprintf(body, sizeof body, "counter item number %d of the plugin", i);
        ctx_record r = {c->wrong_stream ? "other" : stream, id, id, NULL, body, strlen(body),
                        NULL, 0, &acl};
        if (host->xRecord(em, &r))
            return CTX_CONN_ECANCELED;
        emitted++;
        if ((i + 1) % c->state_every == 0) {
            snprintf(st, sizeof st, "{\"n\": %d}", i + 1);
            if (host->xState(em, stream, st))
                return CTX_CONN_ECANCELED;
        }
    }
    snprintf(st, sizeof st, "{\"n\": %d}", c->count);
    return host->xState(em, stream, st) ? CTX_CONN_ECANCELED : CTX_CONN_OK;
}

static void c_close(void *conn) { free(conn); }

static const ctx_connector counter_connector = {
    COUNTER_ABI, COUNTER_SIZE, "counter", "1.0",
    c_spec, c_open, c_check, c_discover, c_read, c_close,
};

CTX_CONNECTOR_EXPORT const ctx_connector *ctx_connector_entry(void)
{
    return &counter_connector;
}
