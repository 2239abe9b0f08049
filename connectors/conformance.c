/*
 * conformance.c - one connector run by hand, and the conformance suite
 * (see conformance.h). Messages are captured through a host of our own
 * that checks each one as it arrives and turns it into its JSON line.
 */
#include "conformance.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/opts.h"
#include "exec/exec.h"
#include "../core/json.h"

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

/* ---- JSON Schema: the shape of a spec, and a config against it ---- */

static const char *const schema_types[] = {"object", "array", "string", "integer",
                                           "number", "boolean", "null", NULL};

static int why_add(ctx_buf *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int why_add(ctx_buf *why, const char *fmt, ...)
{
    va_list ap;
    char line[600];

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (why->len < 1500)
        ctx_buf_printf(why, "%s%s", why->len ? "; " : "", line);
    return 1;
}

static int is_type_name(const json_t *t)
{
    for (size_t i = 0; json_is_string(t) && schema_types[i]; i++)
        if (!strcmp(json_string_value(t), schema_types[i]))
            return 1;
    return 0;
}

/* schema_shape - 0 if sc looks like a JSON Schema (the keywords we know are well typed). */
static int schema_shape(json_t *sc, const char *path, ctx_buf *why)
{
    static const char *const lists[] = {"oneOf", "anyOf", "allOf", NULL};
    char sub[512];
    const char *key;
    json_t *v, *e;
    size_t i;
    int bad = 0;

    if (json_is_boolean(sc))
        return 0;
    if (!json_is_object(sc))
        return why_add(why, "%s: a schema is an object or a boolean, not %s", path,
                       ctx_json_typename(sc));
    if ((v = json_object_get(sc, "type"))) {
        if (json_is_array(v)) {
            json_array_foreach(v, i, e) {
                bad |= !is_type_name(e);
            }
        } else {
            bad |= !is_type_name(v);
        }
        if (bad)
            why_add(why, "%s.type: not one of object, array, string, integer, number,"
                    " boolean, null", path);
    }
    if ((v = json_object_get(sc, "properties"))) {
        if (!json_is_object(v))
            bad |= why_add(why, "%s.properties: expected an object", path);
        json_object_foreach(v, key, e) {
            snprintf(sub, sizeof sub, "%s.properties.%s", path, key);
            bad |= schema_shape(e, sub, why);
        }
    }
    if ((v = json_object_get(sc, "required"))) {
        if (!json_is_array(v))
            bad |= why_add(why, "%s.required: expected an array of names", path);
        json_array_foreach(v, i, e) {
            if (!json_is_string(e))
                bad |= why_add(why, "%s.required[%zu]: expected a string", path, i);
        }
    }
    if ((v = json_object_get(sc, "items"))) {
        snprintf(sub, sizeof sub, "%s.items", path);
        bad |= schema_shape(v, sub, why);
    }
    if ((v = json_object_get(sc, "additionalProperties"))) {
        snprintf(sub, sizeof sub, "%s.additionalProperties", path);
        bad |= schema_shape(v, sub, why);
    }
    if ((v = json_object_get(sc, "enum")) && (!json_is_array(v) || !json_array_size(v)))
        bad |= why_add(why, "%s.enum: expected a non-empty array", path);
    for (const char *const *l = lists; *l; l++) {
        if (!(v = json_object_get(sc, *l)))
            continue;
        if (!json_is_array(v) || !json_array_size(v))
            bad |= why_add(why, "%s.%s: expected a non-empty array of schemas", path, *l);
        json_array_foreach(v, i, e) {
            snprintf(sub, sizeof sub, "%s.%s[%zu]", path, *l, i);
            bad |= schema_shape(e, sub, why);
        }
    }
    return bad;
}

static int type_matches(const char *t, const json_t *v)
{
    if (!strcmp(t, "integer"))
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == (double)(json_int_t)json_real_value(v));
    if (!strcmp(t, "number"))
        return json_is_number(v);
    return !strcmp(t, ctx_json_typename(v));
}

/* schema_validate - 0 if v is valid against sc (the keywords schema_shape knows). */
static int schema_validate(json_t *sc, json_t *v, const char *path, ctx_buf *why)
{
    char sub[512];
    const char *key;
    json_t *k, *e, *props;
    size_t i, n;
    int bad = 0;

    if (json_is_boolean(sc))
        return json_is_true(sc) ? 0 : why_add(why, "%s: not allowed", path);
    if ((k = json_object_get(sc, "type"))) {
        int ok = 0;
        if (json_is_string(k))
            ok = type_matches(json_string_value(k), v);
        json_array_foreach(k, i, e) {
            ok |= json_is_string(e) && type_matches(json_string_value(e), v);
        }
        if (!ok)
            return why_add(why, "%s: expected %s, got %s", path,
                           json_is_string(k) ? json_string_value(k) : "another type",
                           ctx_json_typename(v));
    }
    if ((k = json_object_get(sc, "enum"))) {
        int ok = 0;
        json_array_foreach(k, i, e) {
            ok |= json_equal(e, v);
        }
        if (!ok)
            bad |= why_add(why, "%s: not one of the allowed values", path);
    }
    if ((k = json_object_get(sc, "const")) && !json_equal(k, v))
        bad |= why_add(why, "%s: must be the constant of the schema", path);
    if (json_is_number(v) && (k = json_object_get(sc, "minimum")) &&
        json_number_value(v) < json_number_value(k))
        bad |= why_add(why, "%s: below the minimum %g", path, json_number_value(k));
    if (json_is_number(v) && (k = json_object_get(sc, "maximum")) &&
        json_number_value(v) > json_number_value(k))
        bad |= why_add(why, "%s: above the maximum %g", path, json_number_value(k));
    if (json_is_string(v) && (k = json_object_get(sc, "minLength")) &&
        json_string_length(v) < (size_t)json_integer_value(k))
        bad |= why_add(why, "%s: shorter than %lld", path, (long long)json_integer_value(k));
    if (json_is_object(v)) {
        props = json_object_get(sc, "properties");
        json_array_foreach(json_object_get(sc, "required"), i, e) {
            if (json_is_string(e) && !json_object_get(v, json_string_value(e)))
                bad |= why_add(why, "%s: missing required \"%s\"", path, json_string_value(e));
        }
        json_object_foreach(v, key, e) {
            json_t *ps = json_object_get(props, key);
            json_t *ap = json_object_get(sc, "additionalProperties");
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            if (ps)
                bad |= schema_validate(ps, e, sub, why);
            else if (ap)
                bad |= schema_validate(ap, e, sub, why);
        }
    }
    if (json_is_array(v) && (k = json_object_get(sc, "items"))) {
        json_array_foreach(v, i, e) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            bad |= schema_validate(k, e, sub, why);
        }
    }
    if ((k = json_object_get(sc, "allOf"))) {
        json_array_foreach(k, i, e) {
            bad |= schema_validate(e, v, path, why);
        }
    }
    if ((k = json_object_get(sc, "anyOf")) || (k = json_object_get(sc, "oneOf"))) {
        ctx_buf tmp = CTX_BUF_INIT;
        n = 0;
        json_array_foreach(k, i, e) {
            n += !schema_validate(e, v, path, &tmp);
        }
        if (!n || (n > 1 && json_object_get(sc, "oneOf") == k))
            bad |= why_add(why, "%s: matches %zu of the %s alternatives%s%s", path, n,
                           json_object_get(sc, "oneOf") == k ? "oneOf" : "anyOf",
                           n ? "" : ": ", n ? "" : (tmp.data ? tmp.data : ""));
        ctx_buf_free(&tmp);
    }
    return bad;
}

/* ---- the suite ---- */

enum { PASS, FAIL, SKIP };

typedef struct suite {
    const conform_target *t;
    const conform_opts *o;
    FILE *out;
    conform_report *rep;
    registry_conn conn;
    json_t *keys;         /* what xOpen was given */
    json_t *streams;      /* [name, ...] */
    json_t *base;         /* stream -> messages of the first read */
    json_t *state;        /* stream -> the last STATE (object) read so far */
    json_t *held;         /* stream -> {id: true} a host would hold after the reads so far */
} suite;

static void report(suite *s, int status, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(suite *s, int status, const char *name, const char *fmt, ...)
{
    static const char *const words[] = {"PASS", "FAIL", "SKIP"};
    va_list ap;

    fprintf(s->out, "%s %s: ", words[status], name);
    va_start(ap, fmt);
    vfprintf(s->out, fmt, ap);
    va_end(ap);
    fputc('\n', s->out);
    fflush(s->out);
    if (status == PASS)
        s->rep->passed++;
    else if (status == FAIL)
        s->rep->failed++;
    else
        s->rep->skipped++;
}

/* One read's messages and outcome. */
typedef struct readout {
    json_t *msgs;
    size_t problems;
    ctx_buf why;
    ctx_error err;
    int rc;
} readout;

static int collect(void *arg, json_t *msg)
{
    return json_array_append(arg, msg) ? CTX_ENOMEM : 0;
}

/*
 * read_stream - a read through a host that holds the ids in held (an
 * object, updated by the read; NULL: a host that keeps nothing).
 */
static void read_stream(suite *s, const char *stream, json_t *state, int full, json_t *held,
                        readout *r)
{
    char *text = state ? ctx_json_text(state, JSON_COMPACT) : NULL;

    memset(r, 0, sizeof *r);
    r->msgs = json_array();
    r->rc = conform_read_held(&s->conn, stream, text, full, held, collect, r->msgs,
                              &r->problems, &r->why, &r->err);
    free(text);
}

/* The ids the suite's host holds for stream: borrowed, made on first use. */
static json_t *held_of(suite *s, const char *stream)
{
    json_t *h = json_object_get(s->held, stream);

    if (!h) {
        h = json_object();
        json_object_set_new(s->held, stream, h);
    }
    return h;
}

static void readout_free(readout *r)
{
    json_decref(r->msgs);
    ctx_buf_free(&r->why);
}

static const char *mtype(json_t *m) { return json_string_value(json_object_get(m, "type")); }

/* A message's id; "" when it has none (the messages check reports that). */
static const char *mid(json_t *m)
{
    const char *id = json_string_value(json_object_get(m, "id"));
    return id ? id : "";
}

/* The last STATE among msgs (borrowed), or NULL. */
static json_t *last_state(json_t *msgs)
{
    for (size_t i = json_array_size(msgs); i-- > 0;)
        if (!strcmp(mtype(json_array_get(msgs, i)), "STATE"))
            return json_object_get(json_array_get(msgs, i), "state");
    return NULL;
}

/* Add the ids of the RECORDs among msgs[0..n) to the set ids (an object). */
static void add_ids(json_t *ids, json_t *msgs, size_t n)
{
    for (size_t i = 0; i < n && i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        if (!strcmp(mtype(m), "RECORD"))
            json_object_set_new(ids, mid(m), json_true());
    }
}

/* The first id of want that is not in have, or NULL. */
static const char *missing_id(json_t *want, json_t *have)
{
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v) {
        if (!json_object_get(have, key))
            return key;
    }
    return NULL;
}

/* Count messages of a type (NULL: RECORD, DELETE and ACL, the item changes). */
static size_t count_type(json_t *msgs, const char *type, const char **first_id)
{
    size_t i, n = 0;
    json_t *m;

    json_array_foreach(msgs, i, m) {
        const char *t = mtype(m);
        if (type ? strcmp(t, type) != 0
                 : strcmp(t, "RECORD") && strcmp(t, "DELETE") && strcmp(t, "ACL"))
            continue;
        if (!n++ && first_id)
            *first_id = mid(m);
    }
    return n;
}

/*
 * run_cmd - run argv (argv[0] looked up in PATH) in dir (NULL = here),
 * with its output (stdout and stderr, the first 2 KiB) appended to out.
 * Returns its exit status, or -1 if it could not run or was killed.
 */
static int run_cmd(const char *const *argv, const char *dir, ctx_buf *out)
{
    int fds[2], status;
    char buf[512];
    ssize_t n;
    pid_t pid;

    fflush(NULL);
    if (pipe(fds) < 0)
        return -1;
    if ((pid = fork()) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        if (dir && chdir(dir) < 0)
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && out->len < 2048)
            ctx_buf_append(out, buf, (size_t)n);
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    while (out->len && (out->data[out->len - 1] == '\n'))
        out->data[--out->len] = '\0';
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- the checks ---- */

/*
 * A spec's shape, and a config against it (also with python3-jsonschema if
 * given): reported as name and cname. spec_text is NULL when the spec could
 * not be had; why_not says why.
 */
static void check_schema(suite *s, const char *name, const char *cname, const char *spec_text,
                         const char *why_not, json_t *config)
{
    json_error_t jerr;
    ctx_buf why = CTX_BUF_INIT;
    json_t *spec = spec_text ? ctx_json_loads(spec_text, 0, &jerr) : NULL;
    const char *type = json_string_value(json_object_get(spec, "type"));

    if (!spec) {
        if (spec_text)
            report(s, FAIL, name, "not JSON: line %d: %s", jerr.line, jerr.text);
        else
            report(s, FAIL, name, "%s", why_not);
        report(s, SKIP, cname, "no spec to validate against");
        return;
    }
    if (!schema_shape(spec, "spec", &why) &&
        (!type || strcmp(type, "object") || !json_is_object(json_object_get(spec, "properties"))))
        why_add(&why, "spec: a config schema has \"type\": \"object\" and \"properties\"");
    if (why.len)
        report(s, FAIL, name, "%s", why.data);
    else
        report(s, PASS, name, "%zu properties, \"type\": \"object\"",
               json_object_size(json_object_get(spec, "properties")));
    ctx_buf_reset(&why);
    schema_validate(spec, config, "config", &why);
    if (s->o->validator) {
        /* The meta-schema and the same config, by an independent validator. */
        char dir[] = "/tmp/ctxgate-conform.XXXXXX", sp[64], cp[64];
        ctx_buf out = CTX_BUF_INIT;
        if (mkdtemp(dir)) {
            snprintf(sp, sizeof sp, "%s/spec.json", dir);
            snprintf(cp, sizeof cp, "%s/config.json", dir);
            json_dump_file(spec, sp, 0);
            json_dump_file(config, cp, 0);
            const char *argv[] = {"python3", s->o->validator, sp, cp, NULL};
            if (run_cmd(argv, NULL, &out))
                why_add(&why, "%s: %s", s->o->validator, out.data ? out.data : "failed");
            unlink(sp);
            unlink(cp);
            rmdir(dir);
        }
        ctx_buf_free(&out);
    }
    if (why.len)
        report(s, FAIL, cname, "%s", why.data);
    else
        report(s, PASS, cname, "the config validates against the spec%s",
               s->o->validator ? " (and the meta-schema, by python3-jsonschema)" : "");
    ctx_buf_free(&why);
    json_decref(spec);
}

/* The connector's spec; for exec also the program's own, for its "config". */
static void check_spec(suite *s)
{
    ctx_conn_error ce;
    char *text = NULL;
    json_t *inner;

    check_schema(s, "spec.schema", "config.valid", s->conn.vt->xSpec(), NULL, s->keys);
    if (strcmp(s->conn.vt->name, "exec"))
        return;
    memset(&ce, 0, sizeof ce);
    if (exec_child_spec(s->conn.conn, &text, &ce))
        snprintf(ce.text + strlen(ce.text), sizeof ce.text - strlen(ce.text), "%s",
                 ce.text[0] ? "" : "the program gave no spec");
    inner = json_object_get(s->keys, "config");
    inner = inner ? json_incref(inner) : json_object();
    check_schema(s, "program.spec.schema", "program.config.valid", text, ce.text, inner);
    json_decref(inner);
    free(text);
}

/*
 * A copy of config with every top-level string of the connector's own keys
 * pointing nowhere; NULL if there is none. The host's keys (a whole source
 * given with its type) stay, and an exec source's program config is what
 * gets broken.
 */
static json_t *derive_bad_config(json_t *config)
{
    static const char *const host_keys[] = {"name", "type", "plugin", "enabled",
                                            "max_record_bytes", NULL};
    json_t *bad = json_deep_copy(config), *keys = bad, *v;
    const char *key, *type = json_string_value(json_object_get(config, "type"));
    int n = 0;

    if (type && !strcmp(type, "exec") && json_is_object(json_object_get(bad, "config")))
        keys = json_object_get(bad, "config");
    json_object_foreach(keys, key, v) {
        size_t i;
        for (i = 0; host_keys[i] && strcmp(host_keys[i], key); i++)
            ;
        if (json_is_string(v) && (keys != bad || !host_keys[i])) {
            json_object_set_new(keys, key, json_string("/nonexistent/ctxgate-conformance-bad"));
            n++;
        }
    }
    if (!n) {
        json_decref(bad);
        return NULL;
    }
    return bad;
}

static void check_check(suite *s, json_t *config)
{
    json_t *msg, *bad;
    registry_conn bc;
    ctx_error err;
    int rc;

    msg = conform_check_msg(&s->conn, &rc);
    if (rc)
        report(s, FAIL, "check", "xCheck failed on the good config: %s",
               json_string_value(json_object_get(msg, "message")));
    else
        report(s, PASS, "check", "xCheck succeeds on the config");
    json_decref(msg);

    bad = s->o->bad_config ? json_incref(s->o->bad_config) : derive_bad_config(config);
    if (!bad) {
        report(s, SKIP, "check.bad_config", "the config has no top-level string to break;"
               " give a config the connector must refuse (--bad-config FILE)");
        return;
    }
    if ((rc = conform_open(s->t, bad, &bc, NULL, &err))) {
        if (strstr(err.text, "without a message"))
            report(s, FAIL, "check.bad_config", "xOpen refused the broken config without a"
                   " message; fill in ctx_conn_error.text");
        else
            report(s, PASS, "check.bad_config", "xOpen refuses it: %s", err.text);
    } else {
        msg = conform_check_msg(&bc, &rc);
        if (!rc)
            report(s, FAIL, "check.bad_config", "xCheck accepted a config it must refuse (%s);"
                   " xCheck has to reach the source with the given credentials",
                   s->o->bad_config ? "the --bad-config" : "every top-level string replaced by"
                   " \"/nonexistent/ctxgate-conformance-bad\"");
        else if (strstr(json_string_value(json_object_get(msg, "message")), "without a message"))
            report(s, FAIL, "check.bad_config", "xCheck failed (rc %d) without a message;"
                   " fill in ctx_conn_error.text", rc);
        else
            report(s, PASS, "check.bad_config", "xCheck fails with rc %d: %s", rc,
                   json_string_value(json_object_get(msg, "message")));
        json_decref(msg);
        registry_close(&bc);
    }
    json_decref(bad);
}

static int check_discover(suite *s)
{
    json_t *found, *m;
    ctx_error err;
    size_t i;
    int rc;

    s->streams = json_array();
    rc = conform_discover(&s->conn, &found, &err);
    json_array_foreach(found, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        json_t *v;
        size_t j;
        if (!ctx_valid_name(name)) {
            report(s, FAIL, "discover", "stream %zu: \"%s\" is not a name of letters, digits,"
                   " '_', '-', '.'", i, name);
            rc = CTX_EINVAL;
            break;
        }
        json_array_foreach(s->streams, j, v) {
            if (!strcmp(json_string_value(v), name)) {
                report(s, FAIL, "discover", "stream \"%s\" is reported twice", name);
                rc = CTX_EINVAL;
            }
        }
        json_array_append_new(s->streams, json_string(name));
    }
    json_decref(found);
    if (rc == CTX_EINVAL)
        return rc;
    if (rc) {
        report(s, FAIL, "discover", "%s", err.text);
        return rc;
    }
    if (!json_array_size(s->streams)) {
        report(s, FAIL, "discover", "no streams; xDiscover must report at least one");
        return CTX_EINVAL;
    }
    report(s, PASS, "discover", "%zu stream%s", json_array_size(s->streams),
           json_array_size(s->streams) == 1 ? "" : "s");
    return CTX_OK;
}

/* The first read of every stream, as the scheduler's first run: no state, not full. */
static int check_first_read(suite *s)
{
    size_t i, j, nrec = 0, nstate = 0, problems = 0, noacl = 0;
    const char *stream, *noacl_id = NULL, *unfinished = NULL;
    ctx_buf why = CTX_BUF_INIT;
    json_t *v, *m;

    s->base = json_object();
    s->state = json_object();
    s->held = json_object();
    json_array_foreach(s->streams, i, v) {
        readout r;
        stream = json_string_value(v);
        read_stream(s, stream, NULL, 0, held_of(s, stream), &r);
        if (r.rc) {
            report(s, FAIL, "read", "stream %s: %s", stream, r.err.text);
            readout_free(&r);
            ctx_buf_free(&why);
            return r.rc;
        }
        problems += r.problems;
        if (r.why.len)
            ctx_buf_printf(&why, "%s%s", why.len ? "; " : "", r.why.data);
        json_array_foreach(r.msgs, j, m) {
            const char *t = mtype(m);
            nrec += !strcmp(t, "RECORD");
            nstate += !strcmp(t, "STATE");
            if ((!strcmp(t, "RECORD") || !strcmp(t, "ACL")) &&
                json_is_null(json_object_get(m, "acl")) && !noacl++)
                noacl_id = mid(m);
            if (!strcmp(t, "LOG"))
                continue;
            /* Only the last non-LOG message of the read matters for unfinished. */
            if (!strcmp(t, "STATE"))
                unfinished = NULL;
            else if (!unfinished)
                unfinished = stream;
        }
        if (!unfinished && !last_state(r.msgs))
            unfinished = stream;
        if (last_state(r.msgs))
            json_object_set(s->state, stream, last_state(r.msgs));
        json_object_set(s->base, stream, r.msgs);
        /* The ids below are borrowed from s->base, which keeps the messages. */
        readout_free(&r);
        if (unfinished)
            break;
    }
    report(s, PASS, "read", "%zu stream%s: %zu records, %zu STATEs",
           json_array_size(s->streams), json_array_size(s->streams) == 1 ? "" : "s", nrec,
           nstate);
    if (problems)
        report(s, FAIL, "messages", "%zu ill-formed: %s", problems, why.data);
    else
        report(s, PASS, "messages", "every message well formed (ids, UTF-8, sizes, JSON)");
    ctx_buf_free(&why);
    if (!nrec)
        report(s, SKIP, "records.acl", "the source gave no records; the suite needs items");
    else if (noacl)
        report(s, FAIL, "records.acl", "%zu of %zu records without an ACL (first: %s); set"
               " ctx_record.acl, an item without one is invisible", noacl, nrec, noacl_id);
    else
        report(s, PASS, "records.acl", "all %zu records carry an ACL", nrec);
    if (unfinished)
        report(s, FAIL, "state.final", "stream %s: the read does not end with a STATE, so the"
               " next run cannot start after it", unfinished);
    else
        report(s, PASS, "state.final", "every stream's read ends with a STATE");
    return nrec ? CTX_OK : CTX_ENOTFOUND;
}

/* A full read with the state given still returns every item. */
static void check_full(suite *s)
{
    const char *stream, *lost = NULL;
    json_t *msgs;

    json_object_foreach(s->base, stream, msgs) {
        json_t *want = json_object(), *have = json_object();
        readout r;
        read_stream(s, stream, json_object_get(s->state, stream), 1, NULL, &r);
        add_ids(want, msgs, json_array_size(msgs));
        add_ids(have, r.msgs, json_array_size(r.msgs));
        if (r.rc)
            report(s, FAIL, "read.full", "stream %s: %s", stream, r.err.text);
        else if ((lost = missing_id(want, have)))
            report(s, FAIL, "read.full", "stream %s: a full read with the last state leaves out"
                   " \"%s\"; full != 0 means every item, whatever the state", stream, lost);
        json_decref(want);
        json_decref(have);
        readout_free(&r);
        if (r.rc || lost)
            return;
    }
    report(s, PASS, "read.full", "a full read returns every item even when given a state");
}

/* Read each stream on from its last state; nothing changed, so no item may come. */
static void check_unchanged(suite *s)
{
    const char *stream, *id = NULL;
    json_t *msgs;

    json_object_foreach(s->base, stream, msgs) {
        readout r;
        size_t n;
        read_stream(s, stream, json_object_get(s->state, stream), 0, held_of(s, stream), &r);
        n = count_type(r.msgs, NULL, &id);
        if (r.rc)
            report(s, FAIL, "incremental.unchanged", "stream %s: %s", stream, r.err.text);
        else if (n)
            report(s, FAIL, "incremental.unchanged", "stream %s: the second read sent %zu"
                   " items although nothing changed (first: %s); start after the state", stream,
                   n, id);
        if (!r.rc && last_state(r.msgs))
            json_object_set(s->state, stream, last_state(r.msgs));
        readout_free(&r);
        if (r.rc || n)
            return;
    }
    report(s, PASS, "incremental.unchanged", "a read from the last STATE sends nothing when"
           " nothing changed");
}

/* Resume from (a sample of) every STATE: what came before plus the rest covers all. */
static void check_resume(suite *s)
{
    size_t max = s->o->max_resume > 1 ? s->o->max_resume : 16, reads = 0;
    const char *stream;
    json_t *msgs;

    json_object_foreach(s->base, stream, msgs) {
        json_t *all = json_object();
        size_t *at = NULL, nst = 0, i, k;
        add_ids(all, msgs, json_array_size(msgs));
        at = ctx_calloc(json_array_size(msgs) + 1, sizeof *at);
        for (i = 0; at && i < json_array_size(msgs); i++)
            if (!strcmp(mtype(json_array_get(msgs, i)), "STATE"))
                at[nst++] = i;
        for (k = 0; k < nst && k < max; k++) {
            /* Evenly spread over the states, always the first and the last. */
            size_t pos = at[max >= nst ? k : k * (nst - 1) / (max - 1)];
            json_t *have = json_object(), *held = json_object();
            const char *lost, *gone = NULL;
            readout r;
            /* The host holds what the first read sent before that STATE. */
            add_ids(held, msgs, pos);
            read_stream(s, stream, json_object_get(json_array_get(msgs, pos), "state"), 0,
                        held, &r);
            json_decref(held);
            reads++;
            add_ids(have, msgs, pos);
            add_ids(have, r.msgs, json_array_size(r.msgs));
            count_type(r.msgs, "DELETE", &gone);
            lost = r.rc ? NULL : missing_id(all, have);
            if (r.rc || lost || gone)
                report(s, FAIL, "resume", "stream %s, STATE %zu of %zu (message %zu): %s%s%s",
                       stream, k + 1, nst, pos, r.rc ? r.err.text : lost ? "lost item " : "",
                       r.rc ? "" : lost ? lost : "DELETE of ",
                       r.rc || lost ? "" : gone ? gone : "");
            json_decref(have);
            readout_free(&r);
            if (r.rc || lost || gone) {
                json_decref(all);
                ctx_free(at);
                return;
            }
        }
        json_decref(all);
        ctx_free(at);
    }
    report(s, PASS, "resume", "%zu resumed reads, each from an emitted STATE, lose nothing",
           reads);
}

static int stop_at_first_record(void *arg, json_t *msg)
{
    (void)arg;
    return strcmp(json_string_value(json_object_get(msg, "type")), "RECORD") ? 0 : CTX_ECANCELED;
}

/* A host function's non-zero return stops the read: no more calls, a non-zero rc. */
static void check_stop(suite *s)
{
    const char *stream;
    json_t *msgs;
    ctx_emitter em = {NULL, stop_at_first_record, NULL, 0, NULL, 0, 0};
    ctx_conn_error ce;
    int rc;

    json_object_foreach(s->base, stream, msgs) {
        if (count_type(msgs, "RECORD", NULL))
            break;
    }
    em.stream = stream;
    rc = capture_read(&s->conn, stream, NULL, 0, &em, &ce);
    if (!em.stopped)
        report(s, FAIL, "read.stop", "stream %s: the read sent no RECORD this time", stream);
    else if (em.after_stop)
        report(s, FAIL, "read.stop", "stream %s: %zu host calls after xRecord returned non-zero;"
               " stop at once and return CTX_CONN_ECANCELED", stream, em.after_stop);
    else if (!rc)
        report(s, FAIL, "read.stop", "stream %s: xRead returned 0 after xRecord asked it to"
               " stop; return CTX_CONN_ECANCELED", stream);
    else
        report(s, PASS, "read.stop", "xRead stops at once when the host says so (rc %d)", rc);
}

/* Run the mutate command; 0 or FAIL reported under name. */
static int mutate(suite *s, const char *name, const char *verb, const char *stream,
                  const char *id, const char *principal)
{
    char script[4200];
    ctx_buf out = CTX_BUF_INIT;
    int rc;

    /* "$@" keeps ids with spaces or quotes intact. */
    snprintf(script, sizeof script, "%s \"$@\"", s->o->mutate);
    const char *argv[] = {"sh", "-c", script, "mutate", verb, stream, id, principal, NULL};
    if ((rc = run_cmd(argv, s->o->mutate_dir, &out)))
        report(s, FAIL, name, "`%s %s %s %s%s%s` exited with %d: %s", s->o->mutate, verb,
               stream, id, principal ? " " : "", principal ? principal : "", rc,
               out.data ? out.data : "");
    ctx_buf_free(&out);
    return rc;
}

/* Read stream on from its state after a change; rc, with FAIL reported. */
static int read_after(suite *s, const char *name, const char *stream, readout *r)
{
    read_stream(s, stream, json_object_get(s->state, stream), 0, held_of(s, stream), r);
    if (r->rc) {
        report(s, FAIL, name, "stream %s: %s", stream, r->err.text);
        return r->rc;
    }
    if (last_state(r->msgs))
        json_object_set(s->state, stream, last_state(r->msgs));
    return CTX_OK;
}

/* The message about id among msgs of that type, or NULL. */
static json_t *find_msg(json_t *msgs, const char *type, const char *id)
{
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        if (!strcmp(mtype(m), type) && !strcmp(mid(m), id))
            return m;
    }
    return NULL;
}

static int in_list(json_t *list, const char *p)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (!strcmp(json_string_value(v), p))
            return 1;
    }
    return 0;
}

static void check_touch(suite *s, const char *stream, const char *id)
{
    const char *name = "incremental.changed", *other = NULL;
    readout r;
    size_t i;
    json_t *m;

    if (mutate(s, name, "touch", stream, id, NULL) || read_after(s, name, stream, &r))
        return;
    json_array_foreach(r.msgs, i, m) {
        const char *t = mtype(m);
        if ((!strcmp(t, "RECORD") || !strcmp(t, "DELETE") || !strcmp(t, "ACL")) &&
            strcmp(mid(m), id) && !other)
            other = mid(m);
    }
    if (!find_msg(r.msgs, "RECORD", id))
        report(s, FAIL, name, "after `touch %s %s` the next read sent no RECORD for it", stream,
               id);
    else if (other)
        report(s, FAIL, name, "after `touch %s %s` the next read also sent \"%s\", which did"
               " not change", stream, id, other);
    else
        report(s, PASS, name, "after `touch %s %s` the next read sends that item only", stream,
               id);
    readout_free(&r);
}

static void check_delete(suite *s, const char *stream, const char *id)
{
    readout r;

    if (mutate(s, "delete", "delete", stream, id, NULL) || read_after(s, "delete", stream, &r))
        return;
    if (find_msg(r.msgs, "DELETE", id))
        report(s, PASS, "delete", "after `delete %s %s` the next read sends its DELETE", stream,
               id);
    else
        report(s, FAIL, "delete", "after `delete %s %s` the next read sent no DELETE for it;"
               " a deleted item must disappear at the next sync", stream, id);
    readout_free(&r);
}

static void check_revoke(suite *s, const char *stream, const char *id, const char *who)
{
    json_t *m, *acl;
    readout r;

    if (mutate(s, "revoke", "revoke", stream, id, who) || read_after(s, "revoke", stream, &r))
        return;
    if (!(m = find_msg(r.msgs, "ACL", id)))
        m = find_msg(r.msgs, "RECORD", id);
    acl = json_object_get(m, "acl");
    if (!m)
        report(s, FAIL, "revoke", "after `revoke %s %s %s` the next read sent neither ACL nor"
               " RECORD for it", stream, id, who);
    else if (!json_is_null(acl) && in_list(json_object_get(acl, "allow"), who) &&
             !in_list(json_object_get(acl, "deny"), who))
        report(s, FAIL, "revoke", "after `revoke %s %s %s` the item's new %s still allows %s",
               stream, id, who, mtype(m), who);
    else
        report(s, PASS, "revoke", "after `revoke %s %s %s` the next read's %s no longer"
               " allows it", stream, id, who, mtype(m));
    readout_free(&r);
}

/* Change the source: one item touched, one deleted, one loses a principal. */
static void check_mutations(suite *s)
{
    static const char *const names[] = {"incremental.changed", "delete", "revoke"};
    const char *stream = NULL, *touch = NULL, *del = NULL, *rev = NULL, *who = NULL;
    json_t *msgs, *m;
    size_t i;

    if (!s->o->mutate) {
        for (i = 0; i < 3; i++)
            report(s, SKIP, names[i], "no mutate command (--mutate CMD) to change the source;"
                   " see docs/connector-guide.md");
        return;
    }
    json_object_foreach(s->base, stream, msgs) {
        if (count_type(msgs, "RECORD", &touch))
            break;
    }
    /* The last record is deleted; revoked is the first other one with an allow list. */
    json_array_foreach(msgs, i, m) {
        if (!strcmp(mtype(m), "RECORD"))
            del = mid(m);
    }
    json_array_foreach(msgs, i, m) {
        json_t *allow = json_object_get(json_object_get(m, "acl"), "allow");
        if (strcmp(mtype(m), "RECORD") || !strcmp(mid(m), del) || !json_array_size(allow))
            continue;
        rev = mid(m);
        who = json_string_value(json_array_get(allow, 0));
        break;
    }
    check_touch(s, stream, touch);
    check_delete(s, stream, del);
    if (rev)
        check_revoke(s, stream, rev, who);
    else
        report(s, SKIP, "revoke", "stream %s needs a second record with an allow list", stream);
}

/* ---- permission reads and interrupted full reads ---- */

/* acl_map - id -> acl of the RECORDs and ACLs among msgs (later wins; a
 * DELETE drops the id). New object. */
static json_t *acl_map(json_t *msgs, size_t *nrecords)
{
    json_t *map = json_object(), *m;
    size_t i;

    if (nrecords)
        *nrecords = 0;
    json_array_foreach(msgs, i, m) {
        const char *t = mtype(m);
        if (!strcmp(t, "RECORD") || !strcmp(t, "ACL")) {
            json_object_set(map, mid(m), json_object_get(m, "acl"));
            if (nrecords && !strcmp(t, "RECORD"))
                (*nrecords)++;
        } else if (!strcmp(t, "DELETE")) {
            json_object_del(map, mid(m));
        }
    }
    return map;
}

/*
 * check_permissions - per document stream, a permission read sends no
 * RECORD, ends with a STATE, and names exactly the items a full read sends
 * now, each with the same ACL (the host prunes the rest, so one left out
 * would be deleted).
 */
static void check_permissions(suite *s)
{
    const char *stream, *bad = NULL;
    char why[600] = "";
    size_t nstreams = 0, nitems = 0;
    json_t *msgs;

    if (!registry_read_permissions(s->conn.vt)) {
        report(s, SKIP, "read.permissions", "no xReadPermissions (ABI 2): permission syncs read"
               " this connector in full");
        return;
    }
    json_object_foreach(s->base, stream, msgs) {
        readout full, perm;
        json_t *want, *have, *v;
        const char *id;
        size_t nrec = 0;

        if (!count_type(msgs, "RECORD", NULL))
            continue; /* users and groups: the host reads those as usual */
        read_stream(s, stream, json_object_get(s->state, stream), 1, NULL, &full);
        read_stream(s, stream, NULL, CONFORM_READ_PERMISSIONS, NULL, &perm);
        want = acl_map(full.msgs, NULL);
        have = acl_map(perm.msgs, &nrec);
        if (full.rc || perm.rc)
            snprintf(why, sizeof why, "stream %s: %s", stream,
                     full.rc ? full.err.text : perm.err.text);
        else if (nrec)
            snprintf(why, sizeof why, "stream %s: %zu RECORDs; a permission read sends ACLs"
                     " (no bodies)", stream, nrec);
        else if (!last_state(perm.msgs) ||
                 strcmp(mtype(json_array_get(perm.msgs, json_array_size(perm.msgs) - 1)),
                        "STATE"))
            snprintf(why, sizeof why, "stream %s: the permission read does not end with a"
                     " STATE", stream);
        json_object_foreach(want, id, v) {
            if (why[0])
                break;
            if (!json_object_get(have, id))
                snprintf(why, sizeof why, "stream %s: item \"%.200s\" of the full read has no"
                         " ACL in the permission read (the host would delete it)", stream, id);
            else if (!json_equal(v, json_object_get(have, id)))
                snprintf(why, sizeof why, "stream %s: item \"%.200s\" has another ACL in the"
                         " permission read than in the full read", stream, id);
        }
        json_object_foreach(have, id, v) {
            if (why[0])
                break;
            if (!json_object_get(want, id))
                snprintf(why, sizeof why, "stream %s: the permission read names \"%.200s\","
                         " which the full read does not send", stream, id);
        }
        nstreams++;
        nitems += json_object_size(want);
        json_decref(want);
        json_decref(have);
        readout_free(&full);
        readout_free(&perm);
        if (why[0]) {
            bad = why;
            break;
        }
    }
    if (bad)
        report(s, FAIL, "read.permissions", "%s", bad);
    else
        report(s, PASS, "read.permissions", "%zu stream%s: the permission read names the same"
               " %zu items with the same ACLs as a full read, no bodies, ends with a STATE",
               nstreams, nstreams == 1 ? "" : "s", nitems);
}

/* Collect messages, and stop the read when `left` of them were taken. */
typedef struct stop_after {
    json_t *msgs;
    size_t left;
} stop_after;

static int collect_until(void *arg, json_t *msg)
{
    stop_after *a = arg;
    if (!a->left)
        return CTX_ECANCELED;
    a->left--;
    return json_array_append(a->msgs, msg) ? CTX_ENOMEM : 0;
}

/* add_items - the ids of the RECORDs and ACLs among msgs[0..n) into the set ids. */
static void add_items(json_t *ids, json_t *msgs, size_t n)
{
    for (size_t i = 0; i < n && i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        if (!strcmp(mtype(m), "RECORD") || !strcmp(mtype(m), "ACL"))
            json_object_set_new(ids, mid(m), json_true());
    }
}

#define KILLS_PER_RUN 6

/*
 * kill_once - one full read stopped after k messages, then run again as a
 * full read from the last STATE it emitted (what the host committed), as
 * the host resumes an interrupted full run. *seen receives the items the
 * committed part and the rerun sent (new set). 0, or FAIL reported.
 */
static int kill_once(suite *s, const char *stream, size_t k, json_t **seen)
{
    stop_after a = {json_array(), k};
    json_t *state = json_object_get(s->state, stream), *committed_state = state;
    ctx_error err;
    readout r;
    size_t upto = 0;
    int rc;

    {
        char *text = state ? ctx_json_text(state, JSON_COMPACT) : NULL;
        rc = conform_read(&s->conn, stream, text, 1, collect_until, &a, NULL, NULL, &err);
        free(text);
    }
    if (rc && rc != CTX_ECANCELED) {
        report(s, FAIL, "full.killed", "stream %s: full read stopped after %zu messages: %s",
               stream, k, err.text);
        json_decref(a.msgs);
        return rc;
    }
    /* What the host committed: everything up to the last STATE taken. */
    for (size_t i = 0; i < json_array_size(a.msgs); i++)
        if (!strcmp(mtype(json_array_get(a.msgs, i)), "STATE")) {
            upto = i + 1;
            committed_state = json_object_get(json_array_get(a.msgs, i), "state");
        }
    *seen = json_object();
    add_items(*seen, a.msgs, upto);
    read_stream(s, stream, committed_state, 1, NULL, &r);
    json_decref(a.msgs);
    if (r.rc) {
        report(s, FAIL, "full.killed", "stream %s: the rerun after a stop at message %zu"
               " failed: %s", stream, k, r.err.text);
        readout_free(&r);
        json_decref(*seen);
        *seen = NULL;
        return r.rc;
    }
    add_items(*seen, r.msgs, json_array_size(r.msgs));
    readout_free(&r);
    return CTX_OK;
}

/*
 * check_killed_full - with mutate, delete one more item; then stop full
 * reads at random messages and run them again (kill_once): the items
 * neither the committed part nor the rerun sent, which the host prunes,
 * must be exactly the deleted one.
 */
static void check_killed_full(suite *s)
{
    const char *stream = NULL, *gone = NULL, *id;
    json_t *msgs = NULL, *stored, *m, *v;
    readout base;
    size_t i, n, kills[KILLS_PER_RUN];
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

    json_object_foreach(s->base, stream, msgs) {
        if (count_type(msgs, "RECORD", NULL))
            break;
    }
    if (!stream)
        return;
    /* What the store holds now: the items of a full read. */
    read_stream(s, stream, NULL, 1, NULL, &base);
    if (base.rc) {
        report(s, FAIL, "full.killed", "stream %s: %s", stream, base.err.text);
        readout_free(&base);
        return;
    }
    stored = json_object();
    add_items(stored, base.msgs, json_array_size(base.msgs));
    n = json_array_size(base.msgs);
    /* The victim: a record in the middle, so kills land before and after it. */
    json_array_foreach(base.msgs, i, m) {
        if (!strcmp(mtype(m), "RECORD") && i >= n / 2) {
            gone = mid(m);
            break;
        }
    }
    if (s->o->mutate && gone && mutate(s, "full.killed", "delete", stream, gone, NULL)) {
        json_decref(stored);
        readout_free(&base);
        return;
    }
    if (!s->o->mutate)
        gone = NULL;
    srand(seed);
    for (size_t k = 0; k < KILLS_PER_RUN; k++) {
        json_t *seen = NULL;
        const char *pruned = NULL, *extra = NULL;
        kills[k] = n > 1 ? 1 + (size_t)rand() % (n - 1) : 1;
        if (kill_once(s, stream, kills[k], &seen))
            break;
        json_object_foreach(stored, id, v) {
            if (!json_object_get(seen, id) && (!gone || strcmp(id, gone)) && !pruned)
                pruned = id;
        }
        if (gone && json_object_get(seen, gone))
            extra = gone;
        json_decref(seen);
        if (pruned || extra) {
            report(s, FAIL, "full.killed", "stream %s: full read stopped after %zu of %zu"
                   " messages (seed %u) and run again: %s\"%.200s\"%s", stream, kills[k], n,
                   seed, pruned ? "" : "the deleted item ", pruned ? pruned : extra,
                   pruned ? " was sent neither before the last STATE nor by the rerun: the"
                            " host would delete it" : " was sent again: it would stay");
            json_decref(stored);
            readout_free(&base);
            return;
        }
        if (k + 1 == KILLS_PER_RUN)
            report(s, PASS, "full.killed", "stream %s: %d full reads stopped at random messages"
                   " (seed %u, of %zu) and run again from their last STATE leave out %s", stream,
                   KILLS_PER_RUN, seed, n, gone ? "exactly the deleted item" : "nothing");
    }
    json_decref(stored);
    readout_free(&base);
}

int conform_run(const conform_target *t, json_t *config, const conform_opts *opts,
                conform_report *rep, ctx_error *err)
{
    static const conform_opts defaults;
    suite s;
    int rc;

    memset(&s, 0, sizeof s);
    memset(rep, 0, sizeof *rep);
    s.t = t;
    s.o = opts ? opts : &defaults;
    s.out = s.o->out ? s.o->out : stdout;
    s.rep = rep;
    if ((rc = conform_open(t, config, &s.conn, &s.keys, err))) {
        report(&s, FAIL, "open", "%s", err->text);
        return rc;
    }
    report(&s, PASS, "open", "%s %s, ABI %u", s.conn.vt->name,
           s.conn.vt->version ? s.conn.vt->version : "", s.conn.vt->abi_version);
    check_spec(&s);
    check_check(&s, config);
    if (!check_discover(&s) && !check_first_read(&s)) {
        check_full(&s);
        check_unchanged(&s);
        check_resume(&s);
        check_stop(&s);
        check_mutations(&s);
        check_permissions(&s);
        check_killed_full(&s);
    }
    fprintf(s.out, "%d passed, %d failed, %d skipped\n", rep->passed, rep->failed,
            rep->skipped);
    json_decref(s.keys);
    json_decref(s.streams);
    json_decref(s.base);
    json_decref(s.state);
    json_decref(s.held);
    registry_close(&s.conn);
    return CTX_OK;
}
