/*
 * conform_suite.c - the conformance suite (see conformance.h): its reads,
 * the checks that only read, and conform_run, which runs them all.
 */
#include "conform_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/json.h"
#include "exec/exec.h"

/* ---- the suite ---- */

void cf__report(suite *s, int status, const char *name, const char *fmt, ...)
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

static int collect(void *arg, json_t *msg)
{
    return json_array_append(arg, msg) ? CTX_ENOMEM : 0;
}

/*
 * read_stream - a read through a host that holds the ids in held (an
 * object, updated by the read; NULL: a host that keeps nothing).
 */
void cf__read_stream(suite *s, const char *stream, json_t *state, int full, json_t *held,
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
json_t *cf__held_of(suite *s, const char *stream)
{
    json_t *h = json_object_get(s->held, stream);

    if (!h) {
        h = json_object();
        json_object_set_new(s->held, stream, h);
    }
    return h;
}

void cf__readout_free(readout *r)
{
    json_decref(r->msgs);
    ctx_buf_free(&r->why);
}

const char *cf__mtype(json_t *m) { return json_string_value(json_object_get(m, "type")); }

/* A message's id; "" when it has none (the messages check reports that). */
const char *cf__mid(json_t *m)
{
    const char *id = json_string_value(json_object_get(m, "id"));
    return id ? id : "";
}

/* The last STATE among msgs (borrowed), or NULL. */
json_t *cf__last_state(json_t *msgs)
{
    for (size_t i = json_array_size(msgs); i-- > 0;)
        if (!strcmp(cf__mtype(json_array_get(msgs, i)), "STATE"))
            return json_object_get(json_array_get(msgs, i), "state");
    return NULL;
}

/* Add the ids of the RECORDs among msgs[0..n) to the set ids (an object). */
void cf__add_ids(json_t *ids, json_t *msgs, size_t n)
{
    for (size_t i = 0; i < n && i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        if (!strcmp(cf__mtype(m), "RECORD"))
            json_object_set_new(ids, cf__mid(m), json_true());
    }
}

/* The first id of want that is not in have, or NULL. */
const char *cf__missing_id(json_t *want, json_t *have)
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
size_t cf__count_type(json_t *msgs, const char *type, const char **first_id)
{
    size_t i, n = 0;
    json_t *m;

    json_array_foreach(msgs, i, m) {
        const char *t = cf__mtype(m);
        if (type ? strcmp(t, type) != 0
                 : strcmp(t, "RECORD") && strcmp(t, "DELETE") && strcmp(t, "ACL"))
            continue;
        if (!n++ && first_id)
            *first_id = cf__mid(m);
    }
    return n;
}

/*
 * run_cmd - run argv (argv[0] looked up in PATH) in dir (NULL = here),
 * with its output (stdout and stderr, the first 2 KiB) appended to out.
 * Returns its exit status, or -1 if it could not run or was killed.
 */
int cf__run_cmd(const char *const *argv, const char *dir, ctx_buf *out)
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
            cf__report(s, FAIL, name, "not JSON: line %d: %s", jerr.line, jerr.text);
        else
            cf__report(s, FAIL, name, "%s", why_not);
        cf__report(s, SKIP, cname, "no spec to validate against");
        return;
    }
    if (!cf__schema_shape(spec, "spec", &why) &&
        (!type || strcmp(type, "object") || !json_is_object(json_object_get(spec, "properties"))))
        cf__why_add(&why, "spec: a config schema has \"type\": \"object\" and \"properties\"");
    if (why.len)
        cf__report(s, FAIL, name, "%s", why.data);
    else
        cf__report(s, PASS, name, "%zu properties, \"type\": \"object\"",
                   json_object_size(json_object_get(spec, "properties")));
    ctx_buf_reset(&why);
    cf__schema_validate(spec, config, "config", &why);
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
            if (cf__run_cmd(argv, NULL, &out))
                cf__why_add(&why, "%s: %s", s->o->validator, out.data ? out.data : "failed");
            unlink(sp);
            unlink(cp);
            rmdir(dir);
        }
        ctx_buf_free(&out);
    }
    if (why.len)
        cf__report(s, FAIL, cname, "%s", why.data);
    else
        cf__report(s, PASS, cname, "the config validates against the spec%s",
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
        cf__report(s, FAIL, "check", "xCheck failed on the good config: %s",
                   json_string_value(json_object_get(msg, "message")));
    else
        cf__report(s, PASS, "check", "xCheck succeeds on the config");
    json_decref(msg);

    bad = s->o->bad_config ? json_incref(s->o->bad_config) : derive_bad_config(config);
    if (!bad) {
        cf__report(s, SKIP, "check.bad_config", "the config has no top-level string to break;"
                   " give a config the connector must refuse (--bad-config FILE)");
        return;
    }
    if ((rc = conform_open(s->t, bad, &bc, NULL, &err))) {
        if (strstr(err.text, "without a message"))
            cf__report(s, FAIL, "check.bad_config", "xOpen refused the broken config without a"
                       " message; fill in ctx_conn_error.text");
        else
            cf__report(s, PASS, "check.bad_config", "xOpen refuses it: %s", err.text);
    } else {
        msg = conform_check_msg(&bc, &rc);
        if (!rc)
            cf__report(s, FAIL, "check.bad_config", "xCheck accepted a config it must refuse (%s);"
                       " xCheck has to reach the source with the given credentials",
                       s->o->bad_config ? "the --bad-config" : "every top-level string replaced by"
                       " \"/nonexistent/ctxgate-conformance-bad\"");
        else if (strstr(json_string_value(json_object_get(msg, "message")), "without a message"))
            cf__report(s, FAIL, "check.bad_config", "xCheck failed (rc %d) without a message;"
                       " fill in ctx_conn_error.text", rc);
        else
            cf__report(s, PASS, "check.bad_config", "xCheck fails with rc %d: %s", rc,
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
            cf__report(s, FAIL, "discover", "stream %zu: \"%s\" is not a name of letters, digits,"
                       " '_', '-', '.'", i, name);
            rc = CTX_EINVAL;
            break;
        }
        json_array_foreach(s->streams, j, v) {
            if (!strcmp(json_string_value(v), name)) {
                cf__report(s, FAIL, "discover", "stream \"%s\" is reported twice", name);
                rc = CTX_EINVAL;
            }
        }
        json_array_append_new(s->streams, json_string(name));
    }
    json_decref(found);
    if (rc == CTX_EINVAL)
        return rc;
    if (rc) {
        cf__report(s, FAIL, "discover", "%s", err.text);
        return rc;
    }
    if (!json_array_size(s->streams)) {
        cf__report(s, FAIL, "discover", "no streams; xDiscover must report at least one");
        return CTX_EINVAL;
    }
    cf__report(s, PASS, "discover", "%zu stream%s", json_array_size(s->streams),
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
        cf__read_stream(s, stream, NULL, 0, cf__held_of(s, stream), &r);
        if (r.rc) {
            cf__report(s, FAIL, "read", "stream %s: %s", stream, r.err.text);
            cf__readout_free(&r);
            ctx_buf_free(&why);
            return r.rc;
        }
        problems += r.problems;
        if (r.why.len)
            ctx_buf_printf(&why, "%s%s", why.len ? "; " : "", r.why.data);
        json_array_foreach(r.msgs, j, m) {
            const char *t = cf__mtype(m);
            nrec += !strcmp(t, "RECORD");
            nstate += !strcmp(t, "STATE");
            if ((!strcmp(t, "RECORD") || !strcmp(t, "ACL")) &&
                json_is_null(json_object_get(m, "acl")) && !noacl++)
                noacl_id = cf__mid(m);
            if (!strcmp(t, "LOG"))
                continue;
            /* Only the last non-LOG message of the read matters for unfinished. */
            if (!strcmp(t, "STATE"))
                unfinished = NULL;
            else if (!unfinished)
                unfinished = stream;
        }
        if (!unfinished && !cf__last_state(r.msgs))
            unfinished = stream;
        if (cf__last_state(r.msgs))
            json_object_set(s->state, stream, cf__last_state(r.msgs));
        json_object_set(s->base, stream, r.msgs);
        /* The ids below are borrowed from s->base, which keeps the messages. */
        cf__readout_free(&r);
        if (unfinished)
            break;
    }
    cf__report(s, PASS, "read", "%zu stream%s: %zu records, %zu STATEs",
               json_array_size(s->streams), json_array_size(s->streams) == 1 ? "" : "s", nrec,
               nstate);
    if (problems)
        cf__report(s, FAIL, "messages", "%zu ill-formed: %s", problems, why.data);
    else
        cf__report(s, PASS, "messages", "every message well formed (ids, UTF-8, sizes, JSON)");
    ctx_buf_free(&why);
    if (!nrec)
        cf__report(s, SKIP, "records.acl", "the source gave no records; the suite needs items");
    else if (noacl)
        cf__report(s, FAIL, "records.acl", "%zu of %zu records without an ACL (first: %s); set"
                   " ctx_record.acl, an item without one is invisible", noacl, nrec, noacl_id);
    else
        cf__report(s, PASS, "records.acl", "all %zu records carry an ACL", nrec);
    if (unfinished)
        cf__report(s, FAIL, "state.final", "stream %s: the read does not end with a STATE, so the"
                   " next run cannot start after it", unfinished);
    else
        cf__report(s, PASS, "state.final", "every stream's read ends with a STATE");
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
        cf__read_stream(s, stream, json_object_get(s->state, stream), 1, NULL, &r);
        cf__add_ids(want, msgs, json_array_size(msgs));
        cf__add_ids(have, r.msgs, json_array_size(r.msgs));
        if (r.rc)
            cf__report(s, FAIL, "read.full", "stream %s: %s", stream, r.err.text);
        else if ((lost = cf__missing_id(want, have)))
            cf__report(s, FAIL, "read.full", "stream %s: a full read with the last state leaves out"
                   " \"%s\"; full != 0 means every item, whatever the state", stream, lost);
        json_decref(want);
        json_decref(have);
        cf__readout_free(&r);
        if (r.rc || lost)
            return;
    }
    cf__report(s, PASS, "read.full", "a full read returns every item even when given a state");
}

/* Read each stream on from its last state; nothing changed, so no item may come. */
static void check_unchanged(suite *s)
{
    const char *stream, *id = NULL;
    json_t *msgs;

    json_object_foreach(s->base, stream, msgs) {
        readout r;
        size_t n;
        cf__read_stream(s, stream, json_object_get(s->state, stream), 0, cf__held_of(s, stream),
                        &r);
        n = cf__count_type(r.msgs, NULL, &id);
        if (r.rc)
            cf__report(s, FAIL, "incremental.unchanged", "stream %s: %s", stream, r.err.text);
        else if (n)
            cf__report(s, FAIL, "incremental.unchanged", "stream %s: the second read sent %zu"
                       " items although nothing changed (first: %s); start after the state", stream,
                       n, id);
        if (!r.rc && cf__last_state(r.msgs))
            json_object_set(s->state, stream, cf__last_state(r.msgs));
        cf__readout_free(&r);
        if (r.rc || n)
            return;
    }
    cf__report(s, PASS, "incremental.unchanged", "a read from the last STATE sends nothing when"
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
        cf__add_ids(all, msgs, json_array_size(msgs));
        at = ctx_calloc(json_array_size(msgs) + 1, sizeof *at);
        for (i = 0; at && i < json_array_size(msgs); i++)
            if (!strcmp(cf__mtype(json_array_get(msgs, i)), "STATE"))
                at[nst++] = i;
        for (k = 0; k < nst && k < max; k++) {
            /* Evenly spread over the states, always the first and the last. */
            size_t pos = at[max >= nst ? k : k * (nst - 1) / (max - 1)];
            json_t *have = json_object(), *held = json_object();
            const char *lost, *gone = NULL;
            readout r;
            /* The host holds what the first read sent before that STATE. */
            cf__add_ids(held, msgs, pos);
            cf__read_stream(s, stream, json_object_get(json_array_get(msgs, pos), "state"), 0,
                            held, &r);
            json_decref(held);
            reads++;
            cf__add_ids(have, msgs, pos);
            cf__add_ids(have, r.msgs, json_array_size(r.msgs));
            cf__count_type(r.msgs, "DELETE", &gone);
            lost = r.rc ? NULL : cf__missing_id(all, have);
            if (r.rc || lost || gone)
                cf__report(s, FAIL, "resume", "stream %s, STATE %zu of %zu (message %zu): %s%s%s",
                           stream, k + 1, nst, pos, r.rc ? r.err.text : lost ? "lost item " : "",
                           r.rc ? "" : lost ? lost : "DELETE of ",
                           r.rc || lost ? "" : gone ? gone : "");
            json_decref(have);
            cf__readout_free(&r);
            if (r.rc || lost || gone) {
                json_decref(all);
                ctx_free(at);
                return;
            }
        }
        json_decref(all);
        ctx_free(at);
    }
    cf__report(s, PASS, "resume", "%zu resumed reads, each from an emitted STATE, lose nothing",
               reads);
}

/* A host function's non-zero return stops the read: no more calls, a non-zero rc. */
static void check_stop(suite *s)
{
    const char *stream;
    json_t *msgs;
    size_t after_stop;
    int rc, stopped;

    json_object_foreach(s->base, stream, msgs) {
        if (cf__count_type(msgs, "RECORD", NULL))
            break;
    }
    rc = cf__read_to_first_record(&s->conn, stream, &stopped, &after_stop);
    if (!stopped)
        cf__report(s, FAIL, "read.stop", "stream %s: the read sent no RECORD this time",
                   stream);
    else if (after_stop)
        cf__report(s, FAIL, "read.stop", "stream %s: %zu host calls after xRecord returned"
                   " non-zero; stop at once and return CTX_CONN_ECANCELED", stream,
                   after_stop);
    else if (!rc)
        cf__report(s, FAIL, "read.stop", "stream %s: xRead returned 0 after xRecord asked"
                   " it to stop; return CTX_CONN_ECANCELED", stream);
    else
        cf__report(s, PASS, "read.stop", "xRead stops at once when the host says so"
                   " (rc %d)", rc);
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
        cf__report(&s, FAIL, "open", "%s", err->text);
        return rc;
    }
    cf__report(&s, PASS, "open", "%s %s, ABI %u", s.conn.vt->name,
               s.conn.vt->version ? s.conn.vt->version : "", s.conn.vt->abi_version);
    check_spec(&s);
    check_check(&s, config);
    if (!check_discover(&s) && !check_first_read(&s)) {
        check_full(&s);
        check_unchanged(&s);
        check_resume(&s);
        check_stop(&s);
        cf__check_mutations(&s);
        cf__check_permissions(&s);
        cf__check_killed_full(&s);
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
