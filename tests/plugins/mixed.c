/*
 * mixed.c - a test connector (a real .so) that emits every kind of message
 * in a fixed order, for the sync runner's pipeline tests: "count" records
 * with ids "%08d" in stream "items" and a STATE every "state_every";
 * on request a DELETE of an earlier item every "delete_every", an ACL
 * change every "acl_every", a group PRINCIPAL every "principal_every", a
 * warning every "warn_every", and every "next_id_every" records a check
 * that xNextId already answers with the record just sent. "fail_at" makes
 * the read fail before record n; "big_at" makes record n's body "big_bytes"
 * long. With "trace": a path, it writes there how many records it sent
 * and whether a host function told it to stop. Config is read with
 * strstr/sscanf to need nothing but the SDK header.
 */
#include <ctxgate/connector.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mixed {
    int count, state_every, delete_every, acl_every, principal_every, warn_every;
    int next_id_every, fail_at, big_at, big_bytes, words;
    char trace[512];
} mixed;

static int num(const char *json, const char *key, int def)
{
    const char *p = strstr(json, key);
    int v;
    if (!p)
        return def;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        p++;
    return sscanf(p, "%d", &v) == 1 ? v : def;
}

static const char *m_spec(void)
{
    return "{\"type\":\"object\"}";
}

static int m_open(const char *cfg, void **pconn, ctx_conn_error *e)
{
    mixed *m = calloc(1, sizeof *m);
    const char *t;
    (void)e;
    if (!m)
        return CTX_CONN_ENOMEM;
    m->count = num(cfg, "\"count\"", 100);
    m->state_every = num(cfg, "\"state_every\"", 10);
    m->delete_every = num(cfg, "\"delete_every\"", 0);
    m->acl_every = num(cfg, "\"acl_every\"", 0);
    m->principal_every = num(cfg, "\"principal_every\"", 0);
    m->warn_every = num(cfg, "\"warn_every\"", 0);
    m->next_id_every = num(cfg, "\"next_id_every\"", 0);
    m->fail_at = num(cfg, "\"fail_at\"", -1);
    m->big_at = num(cfg, "\"big_at\"", -1);
    m->big_bytes = num(cfg, "\"big_bytes\"", 100000);
    m->words = num(cfg, "\"words\"", 40);
    if ((t = strstr(cfg, "\"trace\"")) && (t = strchr(t + 7, '"')))
        sscanf(t + 1, "%511[^\"]", m->trace);
    *pconn = m;
    return CTX_CONN_OK;
}

static int m_check(void *conn, ctx_conn_error *e)
{
    (void)conn;
    (void)e;
    return CTX_CONN_OK;
}

static int m_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    (void)conn;
    (void)e;
    return fn(arg, "items", "{}");
}

/* body - item i's text: words drawn from a small vocabulary, sentence by sentence. */
static char *body(const mixed *m, int i, size_t *len)
{
    static const char *const vocab[] = {"alpha", "bravo", "charlie", "delta", "echo",
                                        "foxtrot", "golf", "hotel", "india", "juliet",
                                        "kilo", "lima", "mike", "november", "oscar"};
    size_t cap = m->big_at == i ? (size_t)m->big_bytes + 1 : (size_t)m->words * 12 + 64;
    char *b = malloc(cap);
    size_t n = 0;
    unsigned x = (unsigned)i * 2654435761u + 1;

    if (!b)
        return NULL;
    if (m->big_at == i) {
        memset(b, 'x', (size_t)m->big_bytes);
        *len = (size_t)m->big_bytes;
        return b;
    }
    n += (size_t)snprintf(b, cap, "item %d", i);
    for (int w = 0; w < m->words; w++) {
        x = x * 1103515245u + 12345u;
        n += (size_t)snprintf(b + n, cap - n, "%s%s", w % 9 == 8 ? ". " : " ",
                              vocab[(x >> 16) % 15]);
    }
    *len = n;
    return b;
}

static int m_read(void *conn, const char *stream, const char *state, int full,
                  const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    mixed *m = conn;
    const char *readers[2] = {NULL, "user:ann"};
    char group[32], gid[32], id[32], prev[32], st[64], *text = NULL;
    int start = 0, sent = 0, stopped = 0, rc = CTX_CONN_OK;

    if (state && !full)
        start = num(state, "\"n\"", 0);
    for (int i = start; i < m->count; i++) {
        size_t len = 0;
        snprintf(group, sizeof group, "group:g%d", i % 5);
        readers[0] = group;
        ctx_acl acl = {readers, 2, NULL, 0, NULL, 0};
        if (i == m->fail_at) {
            snprintf(e->text, sizeof e->text, "mixed: told to fail at %d", i);
            rc = CTX_CONN_ESOURCE;
            break;
        }
        snprintf(id, sizeof id, "%08d", i);
        if (!(text = body(m, i, &len))) {
            rc = CTX_CONN_ENOMEM;
            break;
        }
        ctx_record r = {stream, id, id, NULL, text, len, NULL, 0, &acl};
        if ((stopped = host->xRecord(em, &r)))
            break;
        free(text);
        text = NULL;
        sent++;
        if (m->next_id_every && i % m->next_id_every == 0 && CTX_HOST_HAS(host, xNextId)) {
            const char *next = NULL;
            snprintf(prev, sizeof prev, "%08d", i - 1);
            if ((stopped = host->xNextId(em, stream, i ? prev : NULL, &next)))
                break;
            if (!next || strcmp(next, id)) {
                snprintf(e->text, sizeof e->text, "mixed: next id after %s is %s, not %s",
                         prev, next ? next : "(none)", id);
                rc = CTX_CONN_EINVAL;
                break;
            }
        }
        if (m->delete_every && i % m->delete_every == m->delete_every - 1) {
            snprintf(prev, sizeof prev, "%08d", i / 2);
            if ((stopped = host->xDelete(em, stream, prev)))
                break;
        }
        if (m->acl_every && i % m->acl_every == m->acl_every - 1) {
            const char *only[] = {"group:g9"};
            ctx_acl other = {only, 1, NULL, 0, NULL, 0};
            snprintf(prev, sizeof prev, "%08d", i / 3);
            if ((stopped = host->xAcl(em, stream, prev, &other)))
                break;
        }
        if (m->principal_every && i % m->principal_every == 0) {
            char user[32];
            const char *members[] = {user, "user:ann"};
            snprintf(user, sizeof user, "user:u%d", i);
            snprintf(gid, sizeof gid, "group:g%d", i % 5);
            ctx_principal p = {CTX_PRINCIPAL_GROUP, gid, gid, NULL, NULL, members, 2};
            if ((stopped = host->xPrincipal(em, &p)))
                break;
        }
        if (m->warn_every && i % m->warn_every == 0 && CTX_HOST_HAS(host, xWarn))
            host->xWarn(em, "mixed.sample", stream, id, "a sampled item");
        if ((i + 1) % m->state_every == 0) {
            snprintf(st, sizeof st, "{\"n\": %d}", i + 1);
            if ((stopped = host->xState(em, stream, st)))
                break;
        }
    }
    free(text);
    if (!rc && !stopped) {
        snprintf(st, sizeof st, "{\"n\": %d}", m->count);
        stopped = host->xState(em, stream, st);
    }
    if (m->trace[0]) {
        FILE *f = fopen(m->trace, "w");
        if (f) {
            fprintf(f, "sent %d stopped %d\n", sent, stopped != 0);
            fclose(f);
        }
    }
    return stopped ? CTX_CONN_ECANCELED : rc;
}

static void m_close(void *conn) { free(conn); }

static const ctx_connector mixed_connector = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_connector), "mixed", "1.0",
    m_spec, m_open, m_check, m_discover, m_read, m_close,
};

CTX_CONNECTOR_EXPORT const ctx_connector *ctx_connector_entry(void)
{
    return &mixed_connector;
}
