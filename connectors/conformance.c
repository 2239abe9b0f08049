/*
 * conformance.c - one connector run by hand, and the conformance suite
 * (see conformance.h). Messages are captured through a host of our own
 * that checks each one as it arrives and turns it into its JSON line.
 */
#include "conform_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../core/json.h"
#include "../core/opts.h"

/* Limits the suite holds every message to. */
#define MAX_ID_BYTES 1024
#define MAX_STREAM_BYTES 256
#define MAX_BODY_BYTES (64u << 20)
#define MAX_PROBLEMS_SHOWN 5

/* ---- opening ---- */

int conform_open(const conform_target *t, json_t *config, registry_conn *conn,
                 json_t **conn_keys, ctx_error *err)
{
    ctx_config cfg;
    json_t *src, *root;
    int rc;

    memset(conn, 0, sizeof *conn);
    memset(&cfg, 0, sizeof cfg);
    if (conn_keys)
        *conn_keys = NULL;
    if (!json_is_object(config))
        return ctx_error_set(err, CTX_ECONFIG, "config: expected a JSON object of the"
                             " connector's keys, got %s", ctx_json_typename(config));
    if (t->exec) {
        src = json_pack("{s:s,s:[s,s,s],s:O}", "type", "exec", "command", "sh", "-c",
                        t->exec, "config", config);
    } else {
        src = json_deep_copy(config);
        if (src && t->plugin)
            json_object_set_new(src, "plugin", json_string(t->plugin));
        if (src && (t->plugin || t->type))
            json_object_set_new(src, "type", json_string(t->plugin ? "plugin" : t->type));
    }
    if (!src)
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    if (!json_object_get(src, "name"))
        json_object_set_new(src, "name", json_string("connector"));
    if (!(root = json_pack("{s:[o]}", "sources", src)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    rc = ctx_config_parse(root, t->base_dir, &cfg, err);
    json_decref(root);
    if (!rc && cfg.nsources != 1)
        rc = ctx_error_set(err, CTX_ECONFIG, "config: expected one source");
    if (!rc)
        rc = registry_open(&cfg.sources[0], conn, err);
    if (!rc && conn_keys)
        *conn_keys = json_incref(cfg.sources[0].conn);
    ctx_config_free(&cfg);
    return rc;
}

/* ---- capturing messages ---- */

struct ctx_emitter {
    const char *stream;       /* the stream being read */
    conform_msg_fn fn;
    void *arg;
    size_t problems;
    ctx_buf *why;
    int stopped;              /* fn asked to stop */
    size_t after_stop;        /* host calls the connector made after that */
    json_t *held;             /* ids the host holds (borrowed, updated); NULL: none kept */
    char *next;               /* xNextId's last answer (new) */
};

static void problem(ctx_emitter *em, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(ctx_emitter *em, const char *fmt, ...)
{
    va_list ap;
    char line[600];

    if (em->problems++ >= MAX_PROBLEMS_SHOWN || !em->why)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ctx_buf_printf(em->why, "%s%s", em->why->len ? "; " : "", line);
}

/* A JSON string of s[0..n), repaired to UTF-8 (the host would do the same). */
static json_t *jstr(const char *s, size_t n)
{
    ctx_buf b = CTX_BUF_INIT;
    size_t bad = 0;
    json_t *j;

    if (!s)
        return json_null();
    if (ctx_utf8_valid(s, n) && !memchr(s, '\0', n))
        return json_stringn(s, n);
    if (ctx_utf8_repair(s, n, &b, &bad))
        return NULL;
    j = json_stringn(b.data ? b.data : "", b.len);
    ctx_buf_free(&b);
    return j;
}

static json_t *jz(const char *s) { return jstr(s, s ? strlen(s) : 0); }

/* A text field: NULL is fine, ill-formed UTF-8 is a problem. */
static void check_text(ctx_emitter *em, const char *what, const char *field, const char *s)
{
    if (s && !ctx_utf8_valid(s, strlen(s)))
        problem(em, "%s: %s is not well-formed UTF-8", what, field);
}

/* A key (stream, id): present, not empty, UTF-8, bounded. */
static void check_key(ctx_emitter *em, const char *what, const char *field, const char *s,
                      size_t max)
{
    if (!s || !*s)
        problem(em, "%s: %s is %s; every message names its item", what, field,
                s ? "empty" : "NULL");
    else if (strlen(s) > max)
        problem(em, "%s: %s is %zu bytes, over the limit of %zu", what, field, strlen(s), max);
    else
        check_text(em, what, field, s);
}

static int principal_ok(const char *p)
{
    if (!p)
        return 0;
    if (!strcmp(p, "everyone"))
        return 1;
    if (!strncmp(p, "user:", 5))
        return p[5] != '\0';
    return !strncmp(p, "group:", 6) && p[6] != '\0';
}

static json_t *jlist(ctx_emitter *em, const char *what, const char *field,
                     const char *const *v, size_t n, int principals)
{
    json_t *a = json_array();

    if (n && !v) {
        problem(em, "%s: %s has %zu entries but a NULL array", what, field, n);
        return a;
    }
    for (size_t i = 0; i < n; i++) {
        if (principals && !principal_ok(v[i]))
            problem(em, "%s: %s[%zu] \"%s\" is not \"user:<id>\", \"group:<id>\" or"
                    " \"everyone\"", what, field, i, v[i] ? v[i] : "(null)");
        else if (!principals && (!v[i] || !*v[i]))
            problem(em, "%s: %s[%zu] is empty", what, field, i);
        check_text(em, what, field, v[i]);
        json_array_append_new(a, jz(v[i]));
    }
    return a;
}

static json_t *jacl(ctx_emitter *em, const char *what, const ctx_acl *acl)
{
    if (!acl)
        return json_null();
    return json_pack("{s:o,s:o,s:o}", "allow",
                     jlist(em, what, "acl.allow", acl->allow, acl->n_allow, 1), "deny",
                     jlist(em, what, "acl.deny", acl->deny, acl->n_deny, 1), "labels",
                     jlist(em, what, "acl.labels", acl->labels, acl->n_labels, 0));
}

/* Messages for another stream than the one read are what the runner refuses. */
static void check_stream(ctx_emitter *em, const char *what, const char *stream)
{
    check_key(em, what, "stream", stream, MAX_STREAM_BYTES);
    if (stream && strcmp(stream, em->stream))
        problem(em, "%s: for stream \"%s\" while reading \"%s\"", what, stream, em->stream);
}

static int deliver(ctx_emitter *em, json_t *msg)
{
    int rc;

    if (em->stopped) {
        /* The ABI: after a non-zero return, no more host calls. */
        em->after_stop++;
        json_decref(msg);
        return CTX_ECANCELED;
    }
    if (!msg)
        return CTX_ENOMEM;
    rc = em->fn ? em->fn(em->arg, msg) : 0;
    json_decref(msg);
    if (rc)
        em->stopped = 1;
    return rc;
}

static int cap_record(ctx_emitter *em, const ctx_record *r)
{
    char what[MAX_ID_BYTES + 32];
    json_t *meta = NULL;

    snprintf(what, sizeof what, "RECORD %.1024s", r->id ? r->id : "(null)");
    check_stream(em, what, r->stream);
    check_key(em, what, "id", r->id, MAX_ID_BYTES);
    check_text(em, what, "title", r->title);
    check_text(em, what, "url", r->url);
    if (!r->body && r->body_len)
        problem(em, "%s: body is NULL but body_len is %zu", what, r->body_len);
    if (r->body_len > MAX_BODY_BYTES)
        problem(em, "%s: body is %zu bytes, over the limit of %u", what, r->body_len,
                MAX_BODY_BYTES);
    if (r->updated_at_ms < 0)
        problem(em, "%s: updated_at_ms is negative; use 0 when unknown", what);
    if (r->metadata_json) {
        meta = ctx_json_loads(r->metadata_json, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(meta)) {
            problem(em, "%s: metadata_json is not a JSON object", what);
            json_decref(meta);
            meta = NULL;
        }
    }
    if (em->held && r->id && !em->stopped)
        json_object_set_new(em->held, r->id, json_true());
    return deliver(em, json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:o}", "type", "RECORD",
                                 "stream", jz(r->stream), "id", jz(r->id), "title",
                                 jz(r->title), "url", jz(r->url), "body",
                                 jstr(r->body, r->body ? r->body_len : 0), "metadata",
                                 meta ? meta : json_null(), "updated_at_ms",
                                 (json_int_t)r->updated_at_ms, "acl", jacl(em, what, r->acl)));
}

static int cap_delete(ctx_emitter *em, const char *stream, const char *id)
{
    check_stream(em, "DELETE", stream);
    check_key(em, "DELETE", "id", id, MAX_ID_BYTES);
    if (em->held && id && !em->stopped)
        json_object_del(em->held, id);
    return deliver(em, json_pack("{s:s,s:o,s:o}", "type", "DELETE", "stream", jz(stream),
                                 "id", jz(id)));
}

static int cap_acl(ctx_emitter *em, const char *stream, const char *id, const ctx_acl *acl)
{
    check_stream(em, "ACL", stream);
    check_key(em, "ACL", "id", id, MAX_ID_BYTES);
    return deliver(em, json_pack("{s:s,s:o,s:o,s:o}", "type", "ACL", "stream", jz(stream),
                                 "id", jz(id), "acl", jacl(em, "ACL", acl)));
}

static int cap_principal(ctx_emitter *em, const ctx_principal *p)
{
    int user = p->kind == CTX_PRINCIPAL_USER;
    const char *prefix = user ? "user:" : "group:";
    json_t *m;

    if (!user && p->kind != CTX_PRINCIPAL_GROUP)
        problem(em, "PRINCIPAL %s: kind %d is neither CTX_PRINCIPAL_USER nor _GROUP",
                p->id ? p->id : "(null)", p->kind);
    else if (!p->id || strncmp(p->id, prefix, strlen(prefix)) || !principal_ok(p->id))
        problem(em, "PRINCIPAL: id \"%s\" should start with \"%s\"", p->id ? p->id : "(null)",
                prefix);
    if (p->maps_to && (!user || strncmp(p->maps_to, "user:", 5)))
        problem(em, "PRINCIPAL %s: maps_to is for users and names a \"user:<id>\"",
                p->id ? p->id : "(null)");
    if (user && p->n_members)
        problem(em, "PRINCIPAL %s: a user has no members", p->id ? p->id : "(null)");
    check_text(em, "PRINCIPAL", "id", p->id);
    check_text(em, "PRINCIPAL", "display_name", p->display_name);
    check_text(em, "PRINCIPAL", "email", p->email);
    m = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o}", "type", "PRINCIPAL", "kind",
                  user ? "user" : "group", "id", jz(p->id), "display_name", jz(p->display_name),
                  "email", jz(p->email), "maps_to", jz(p->maps_to));
    if (m && !user)
        json_object_set_new(m, "members", jlist(em, "PRINCIPAL", "members", p->members,
                                                p->n_members, 1));
    return deliver(em, m);
}

static int cap_state(ctx_emitter *em, const char *stream, const char *state)
{
    json_t *j = state ? ctx_json_loads(state, 0, NULL) : NULL;

    check_stream(em, "STATE", stream);
    if (!json_is_object(j)) {
        problem(em, "STATE: \"%.80s\" is not a JSON object", state ? state : "(null)");
        json_decref(j);
        j = json_object();
    }
    return deliver(em, json_pack("{s:s,s:o,s:o}", "type", "STATE", "stream", jz(stream),
                                 "state", j));
}

static void cap_log(ctx_emitter *em, int level, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};

    if (level < 0 || level > 3) {
        problem(em, "LOG: level %d is not a ctx_log_level_conn", level);
        level = CTX_CONN_LOG_ERROR;
    }
    check_text(em, "LOG", "message", msg);
    deliver(em, json_pack("{s:s,s:s,s:o}", "type", "LOG", "level", names[level], "message",
                          jz(msg ? msg : "")));
}

/* A WARN is kept as the LOG line a host without xWarn would have got. */
static void cap_warn(ctx_emitter *em, const char *kind, const char *stream, const char *id,
                     const char *msg)
{
    char line[1024];

    if (!kind || !*kind)
        problem(em, "WARN: missing kind");
    snprintf(line, sizeof line, "%s%s%s%s%s", stream ? stream : "", stream && id ? "/" : "",
             id ? id : "", stream || id ? ": " : "", msg ? msg : "");
    cap_log(em, CTX_CONN_LOG_WARN, line);
}

/* NEXT ID from the ids the suite says the host holds (a scan: the suite's sources are small). */
static int cap_next_id(ctx_emitter *em, const char *stream, const char *after, const char **id)
{
    const char *key, *best = NULL;
    json_t *v;

    *id = NULL;
    check_stream(em, "NEXT ID", stream);
    if (em->stopped) {
        em->after_stop++;
        return CTX_ECANCELED;
    }
    json_object_foreach(em->held, key, v) {
        if ((!after || strcmp(key, after) > 0) && (!best || strcmp(key, best) < 0))
            best = key;
    }
    ctx_free(em->next);
    em->next = best ? ctx_strdup(best) : NULL;
    if (best && !em->next)
        return CTX_ENOMEM;
    *id = em->next;
    return 0;
}

static const ctx_host capture_host = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_host),
    cap_record, cap_delete, cap_acl, cap_principal, cap_state, cap_log, cap_warn, NULL,
};

/* The same, for a host that keeps items: it answers xNextId. */
static const ctx_host capture_host_held = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_host),
    cap_record, cap_delete, cap_acl, cap_principal, cap_state, cap_log, cap_warn, cap_next_id,
};

/* xRead through the capture host; the connector's rc, and *em as it ended. */
static int capture_read(registry_conn *conn, const char *stream, const char *state, int full,
                        ctx_emitter *em, ctx_conn_error *ce)
{
    ctx_read_permissions_fn xperm;
    const ctx_host *h = em->held ? &capture_host_held : &capture_host;

    memset(ce, 0, sizeof *ce);
    if (full != CONFORM_READ_PERMISSIONS)
        return conn->vt->xRead(conn->conn, stream, state, full, h, em, ce);
    if (!(xperm = registry_read_permissions(conn->vt)))
        return conn_errf(ce, CTX_EABI, "the connector has no xReadPermissions (ABI 2)");
    return xperm(conn->conn, stream, state, h, em, ce);
}

static int stop_at_first_record(void *arg, json_t *msg)
{
    (void)arg;
    return strcmp(json_string_value(json_object_get(msg, "type")), "RECORD") ? 0 : CTX_ECANCELED;
}

int cf__read_to_first_record(registry_conn *conn, const char *stream, int *stopped,
                             size_t *after_stop)
{
    ctx_emitter em = {stream, stop_at_first_record, NULL, 0, NULL, 0, 0, NULL, NULL};
    ctx_conn_error ce;
    int rc = capture_read(conn, stream, NULL, 0, &em, &ce);

    ctx_free(em.next);
    *stopped = em.stopped;
    *after_stop = em.after_stop;
    return rc;
}

int conform_read(registry_conn *conn, const char *stream, const char *state, int full,
                 conform_msg_fn fn, void *arg, size_t *problems, ctx_buf *why,
                 ctx_error *err)
{
    return conform_read_held(conn, stream, state, full, NULL, fn, arg, problems, why, err);
}

int conform_read_held(registry_conn *conn, const char *stream, const char *state, int full,
                      json_t *held, conform_msg_fn fn, void *arg, size_t *problems,
                      ctx_buf *why, ctx_error *err)
{
    ctx_emitter em = {stream, fn, arg, 0, why, 0, 0, held, NULL};
    ctx_conn_error ce;
    int rc = capture_read(conn, stream, state, full, &em, &ce);

    ctx_free(em.next);
    if (problems)
        *problems = em.problems;
    if (rc && em.stopped)
        return ctx_error_set(err, CTX_ECANCELED, "read of %s stopped", stream);
    if (rc)
        return registry_conn_error(&ce, rc, err);
    return CTX_OK;
}

json_t *conform_spec_msg(const registry_conn *conn)
{
    json_t *spec = ctx_json_loads(conn->vt->xSpec(), 0, NULL);
    return spec ? json_pack("{s:s,s:o}", "type", "SPEC", "spec", spec) : NULL;
}

json_t *conform_check_msg(registry_conn *conn, int *rc)
{
    ctx_conn_error ce;

    memset(&ce, 0, sizeof ce);
    *rc = conn->vt->xCheck(conn->conn, &ce);
    if (!*rc)
        return json_pack("{s:s,s:b}", "type", "CHECK", "ok", 1);
    return json_pack("{s:s,s:b,s:o,s:s}", "type", "CHECK", "ok", 0, "message",
                     jz(ce.text[0] ? ce.text : "check failed without a message"), "code",
                     *rc == CTX_CONN_ECONFIG ? "config" : *rc == CTX_CONN_EAUTH ? "auth"
                                                                                : "source");
}

static int add_stream(void *arg, const char *name, const char *desc)
{
    json_t *d = desc ? ctx_json_loads(desc, 0, NULL) : NULL;
    json_t *m = json_pack("{s:s,s:o,s:o}", "type", "STREAM", "name", jz(name ? name : ""),
                          "description", json_is_object(d) ? d : json_object());

    if (d && !json_is_object(d))
        json_decref(d);
    return json_array_append_new(arg, m) ? CTX_ENOMEM : 0;
}

int conform_discover(registry_conn *conn, json_t **streams, ctx_error *err)
{
    ctx_conn_error ce;
    int rc;

    *streams = json_array();
    memset(&ce, 0, sizeof ce);
    if ((rc = conn->vt->xDiscover(conn->conn, add_stream, *streams, &ce)))
        return registry_conn_error(&ce, rc, err);
    return CTX_OK;
}
