/*
 * exec.c - the exec connector: runs a program that speaks the ctxgate
 * connector protocol (one JSON request on its stdin, JSON lines back on its
 * stdout; README.md and schemas/protocol/) and turns its lines into host
 * calls. A program that crashes, hangs, or prints anything but valid
 * messages fails the call; it is then killed with its process group and
 * reaped, and the end of its stderr goes into the error and the run's log.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../core/opts.h"
#include "../../core/util.h"
#include "../registry.h"
#include "exec.h"
#include "../../core/json.h"

typedef struct exec_cfg {
    ctx_strlist command;
    json_t *env;
    ctx_strlist pass_env;
    json_t *config;
    int64_t timeout_seconds;
    int64_t max_line_bytes;
} exec_cfg;

static const ctx_opt exec_opts[] = {
    {"command", CTX_OPT_STRLIST, NULL, offsetof(exec_cfg, command), 1,
     "the program and its arguments, e.g. [\"python3\", \"connector.py\"]; relative paths are"
     " relative to the config file", NULL, 0},
    {"env", CTX_OPT_JSON, NULL, offsetof(exec_cfg, env), 0,
     "environment variables of the program, {\"NAME\": \"value\"}; of ctxgate's own"
     " environment only PATH, HOME, LANG, LC_ALL, LC_CTYPE, TZ and TMPDIR are passed", NULL, 0},
    {"pass_env", CTX_OPT_STRLIST, NULL, offsetof(exec_cfg, pass_env), 0,
     "names of ctxgate's environment variables to pass on as they are (e.g. an API token)",
     NULL, 0},
    {"config", CTX_OPT_JSON, NULL, offsetof(exec_cfg, config), 0,
     "object handed to the program in every request (its own settings)", NULL, 0},
    {"timeout_seconds", CTX_OPT_INT, "300", offsetof(exec_cfg, timeout_seconds), 0,
     "fail when the program prints no line for this many seconds", NULL, 0},
    {"max_line_bytes", CTX_OPT_INT, "67108864", offsetof(exec_cfg, max_line_bytes), 0,
     "longest line the program may print (one RECORD with its body, as JSON)", NULL, 0},
    CTX_OPT_END,
};

typedef struct exec_conn {
    exec_cfg cfg;
    char **argv;     /* new; NULL-terminated, strings borrowed from cfg.command */
    char **envp;     /* new; NULL-terminated, strings new */
    size_t nenv;
    char label[120]; /* the command for messages: "python3 connector.py" */
} exec_conn;

static const char *exec_spec(void)
{
    static char *spec;
    if (!spec) {
        json_t *s = ctx_opts_schema(exec_opts, "exec connector"),
               *p = json_object_get(s, "properties");
        json_object_set_new(json_object_get(p, "env"), "type", json_string("object"));
        json_object_set_new(json_object_get(p, "env"), "additionalProperties",
                            json_pack("{s:s}", "type", "string"));
        json_object_set_new(json_object_get(p, "config"), "type", json_string("object"));
        json_object_set_new(json_object_get(p, "timeout_seconds"), "minimum", json_integer(1));
        json_object_set_new(json_object_get(p, "max_line_bytes"), "minimum",
                            json_integer(1024));
        spec = ctx_json_text(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(s);
    }
    return spec;
}

/* ---- the program's environment ---- */

static int env_name_ok(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Set name=value in x->envp, replacing an earlier value of name. */
static int env_put(exec_conn *x, const char *name, const char *value)
{
    size_t nl = strlen(name), i;
    char *kv = ctx_malloc(nl + strlen(value) + 2), **v;

    if (!kv)
        return CTX_ENOMEM;
    sprintf(kv, "%s=%s", name, value);
    for (i = 0; i < x->nenv; i++)
        if (!strncmp(x->envp[i], kv, nl + 1)) {
            ctx_free(x->envp[i]);
            x->envp[i] = kv;
            return CTX_OK;
        }
    if (!(v = ctx_realloc(x->envp, (x->nenv + 2) * sizeof *v))) {
        ctx_free(kv);
        return CTX_ENOMEM;
    }
    x->envp = v;
    x->envp[x->nenv++] = kv;
    x->envp[x->nenv] = NULL;
    return CTX_OK;
}

/*
 * The program sees only harmless variables of ours, then pass_env, then
 * env: a credential in ctxgate's environment reaches it only when named.
 */
static int build_env(exec_conn *x, ctx_conn_error *e)
{
    static const char *const base[] = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
                                       "TMPDIR", NULL};
    const char *k, *v;
    json_t *jv;
    int rc = CTX_OK;

    if (!getenv("PATH"))
        rc = env_put(x, "PATH", "/usr/local/bin:/usr/bin:/bin");
    for (size_t i = 0; !rc && base[i]; i++)
        if ((v = getenv(base[i])))
            rc = env_put(x, base[i], v);
    for (size_t i = 0; !rc && i < x->cfg.pass_env.n; i++) {
        k = x->cfg.pass_env.v[i];
        if (!env_name_ok(k))
            return conn_errf(e, CTX_CONN_ECONFIG, "pass_env[%zu]: \"%.60s\" is not a variable"
                          " name; use letters, digits and '_'", i, k);
        if ((v = getenv(k)))
            rc = env_put(x, k, v);
    }
    if (x->cfg.env && !json_is_object(x->cfg.env))
        return conn_errf(e, CTX_CONN_ECONFIG, "env: expected an object {\"NAME\": \"value\"},"
                      " got %s", ctx_json_typename(x->cfg.env));
    json_object_foreach(x->cfg.env, k, jv) {
        if (rc)
            break;
        if (!env_name_ok(k))
            return conn_errf(e, CTX_CONN_ECONFIG, "env: \"%.60s\" is not a variable name; use"
                          " letters, digits and '_'", k);
        if (!json_is_string(jv))
            return conn_errf(e, CTX_CONN_ECONFIG, "env.%s: expected a string, got %s", k,
                          ctx_json_typename(jv));
        rc = env_put(x, k, json_string_value(jv));
    }
    if (!rc && !x->envp)
        rc = env_put(x, "PATH", "/usr/local/bin:/usr/bin:/bin");
    return rc ? conn_errf(e, CTX_CONN_ENOMEM, "out of memory") : CTX_OK;
}

static void exec_close(void *conn)
{
    exec_conn *x = conn;
    for (size_t i = 0; i < x->nenv; i++)
        ctx_free(x->envp[i]);
    ctx_free(x->envp);
    ctx_free(x->argv);
    ctx_opts_free(exec_opts, &x->cfg);
    ctx_free(x);
}

static int exec_open(const char *config_json, void **pconn, ctx_conn_error *e)
{
    exec_conn *x;
    ctx_error err;
    size_t i;
    int rc;

    if (!(x = ctx_calloc(1, sizeof *x)))
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    if ((rc = ctx_opts_parse_text(exec_opts, config_json, &x->cfg, &err))) {
        ctx_free(x);
        return conn_errf(e, rc, "%s", err.text);
    }
    if (!x->cfg.command.n) {
        rc = conn_errf(e, CTX_CONN_ECONFIG, "command: empty; give the program and its"
                    " arguments, e.g. [\"python3\", \"connector.py\"]");
        goto fail;
    }
    for (i = 0; i < x->cfg.command.n; i++)
        if (i == 0 && !*x->cfg.command.v[0]) {
            rc = conn_errf(e, CTX_CONN_ECONFIG, "command[0]: empty; name the program to run");
            goto fail;
        }
    if (x->cfg.config && !json_is_object(x->cfg.config)) {
        rc = conn_errf(e, CTX_CONN_ECONFIG, "config: expected an object (the program's own"
                    " settings), got %s", ctx_json_typename(x->cfg.config));
        goto fail;
    }
    if (x->cfg.timeout_seconds < 1 || x->cfg.timeout_seconds > 86400 * 7) {
        rc = conn_errf(e, CTX_CONN_ECONFIG, "timeout_seconds: %lld is out of range; use 1 to"
                    " 604800", (long long)x->cfg.timeout_seconds);
        goto fail;
    }
    if (x->cfg.max_line_bytes < 1024 || x->cfg.max_line_bytes > ((int64_t)1 << 32)) {
        rc = conn_errf(e, CTX_CONN_ECONFIG, "max_line_bytes: %lld is out of range; use 1024 to"
                    " 4294967296", (long long)x->cfg.max_line_bytes);
        goto fail;
    }
    if ((rc = build_env(x, e)))
        goto fail;
    if (!(x->argv = ctx_calloc(x->cfg.command.n + 1, sizeof *x->argv))) {
        rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        goto fail;
    }
    for (i = 0; i < x->cfg.command.n; i++) {
        x->argv[i] = x->cfg.command.v[i];
        snprintf(x->label + strlen(x->label), sizeof x->label - strlen(x->label), "%s%s",
                 i ? " " : "", x->cfg.command.v[i]);
    }
    *pconn = x;
    return CTX_CONN_OK;
fail:
    exec_close(x);
    return rc;
}

/* ---- one run of the program ---- */

#define ERR_TAIL 4096          /* bytes of the program's stderr kept */
#define KILL_GRACE_NS 2000000000ull

typedef struct child {
    exec_conn *x;
    pid_t pid;
    int in, out, err;          /* our ends; -1 once closed */
    char *req;                 /* new: the request line, being written */
    size_t req_len, req_off;
    char *buf;                 /* new: stdout bytes; [pos, len) not handed out yet */
    size_t pos, len, cap, scan;
    long lineno;
    int killed;                /* we signalled it before it exited */
    uint64_t deadline;         /* fail when no line arrives before this */
    char tail[ERR_TAIL];       /* the last ERR_TAIL bytes of stderr */
    size_t tail_len;
    const ctx_host *host;      /* read only; NULL for spec, check, discover */
    ctx_emitter *em;
} child;

static uint64_t idle_ns(const child *c)
{
    return (uint64_t)c->x->cfg.timeout_seconds * 1000000000ull;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int child_start(child *c, exec_conn *x, json_t *req, ctx_conn_error *e)
{
    static const int reset[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1,
                                SIGUSR2, SIGALRM};
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rc;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dfl;
    char *line;

    memset(c, 0, sizeof *c);
    c->x = x;
    c->pid = -1;
    c->in = c->out = c->err = -1;
    if (!(line = ctx_json_text(req, JSON_COMPACT)) || !(c->req = ctx_malloc(strlen(line) + 2))) {
        free(line);
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    }
    c->req_len = (size_t)sprintf(c->req, "%s\n", line);
    free(line);
    /* stdin is a socket so a program that never reads it costs us an EPIPE
     * from send(MSG_NOSIGNAL), not a SIGPIPE. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
        pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        rc = conn_errf(e, CTX_CONN_EIO, "%s: cannot make pipes: %s", x->label, strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[1], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigemptyset(&dfl);
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++)
        sigaddset(&dfl, reset[i]);
    /* Its own process group: a timeout kills what it started too, and a ^C
     * meant for ctxgate does not reach it behind our back. */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    rc = posix_spawnp(&c->pid, x->argv[0], &fa, &at, x->argv, x->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc) {
        c->pid = -1;
        rc = conn_errf(e, CTX_CONN_ECONFIG, "command[0]: cannot run \"%.100s\": %s; give an"
                    " existing program (relative paths are relative to the config file, bare"
                    " names are looked up in PATH)", x->argv[0], strerror(rc));
        goto fail;
    }
    c->in = in[0];
    c->out = out[0];
    c->err = err[0];
    close(in[1]);
    close(out[1]);
    close(err[1]);
    fcntl(c->out, F_SETFL, O_NONBLOCK);
    fcntl(c->err, F_SETFL, O_NONBLOCK);
    c->deadline = ctx_mono_ns() + idle_ns(c);
    return CTX_CONN_OK;
fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
    }
    ctx_free(c->req);
    c->req = NULL;
    return rc;
}

static void keep_stderr(child *c, const char *p, size_t n)
{
    if (n >= ERR_TAIL) {
        p += n - ERR_TAIL;
        n = ERR_TAIL;
    }
    if (c->tail_len + n > ERR_TAIL) {
        size_t drop = c->tail_len + n - ERR_TAIL;
        memmove(c->tail, c->tail + drop, c->tail_len - drop);
        c->tail_len -= drop;
    }
    memcpy(c->tail + c->tail_len, p, n);
    c->tail_len += n;
}

/* Read what fd has; 0 = went on, 1 = EOF, -1 = error (errno). */
static int drain(int fd, char *into, size_t room, size_t *got)
{
    ssize_t n = read(fd, into, room);
    *got = 0;
    if (n > 0) {
        *got = (size_t)n;
        return 0;
    }
    if (n == 0)
        return 1;
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
}

/* Wait for the program to do something: take its output, feed its input. */
static int pump(child *c, ctx_conn_error *e)
{
    struct pollfd pf[3];
    int nfds = 0, ms, r;
    uint64_t now = ctx_mono_ns();
    size_t got;

    if (now >= c->deadline)
        return conn_errf(e, CTX_CONN_ESOURCE, "%s: no line for %lld s after line %ld"
                      " (timeout_seconds); the program hangs: fix it, or raise"
                      " \"timeout_seconds\" if it needs longer", c->x->label,
                      (long long)c->x->cfg.timeout_seconds, c->lineno);
    if (c->in >= 0)
        pf[nfds++] = (struct pollfd){c->in, POLLOUT, 0};
    if (c->out >= 0)
        pf[nfds++] = (struct pollfd){c->out, POLLIN, 0};
    if (c->err >= 0)
        pf[nfds++] = (struct pollfd){c->err, POLLIN, 0};
    ms = (int)((c->deadline - now + 999999) / 1000000);
    if ((r = poll(pf, (nfds_t)nfds, ms)) < 0)
        return errno == EINTR ? CTX_CONN_OK
                              : conn_errf(e, CTX_CONN_EIO, "%s: poll: %s", c->x->label,
                                       strerror(errno));
    for (int i = 0; r > 0 && i < nfds; i++) {
        if (!pf[i].revents)
            continue;
        if (pf[i].fd == c->in) {
            ssize_t n = send(c->in, c->req + c->req_off, c->req_len - c->req_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                c->req_off += (size_t)n;
            /* Done, or it closed its stdin: it does not want the rest. */
            if (c->req_off == c->req_len || (n < 0 && errno != EAGAIN && errno != EINTR))
                close_fd(&c->in);
        } else if (pf[i].fd == c->out) {
            int st = drain(c->out, c->buf + c->len, c->cap - c->len, &got);
            c->len += got;
            if (st)
                close_fd(&c->out);
        } else {
            char tmp[4096];
            int st = drain(c->err, tmp, sizeof tmp, &got);
            keep_stderr(c, tmp, got);
            if (st)
                close_fd(&c->err);
        }
    }
    return CTX_CONN_OK;
}

/*
 * child_line - the next line of the program's stdout, without its newline,
 * in *line (borrowed until the next call), or *line = NULL once stdout and
 * stderr are both closed. Fails on the idle timeout and on a line longer
 * than max_line_bytes.
 */
static int child_line(child *c, const char **line, size_t *len, ctx_conn_error *e)
{
    size_t max = (size_t)c->x->cfg.max_line_bytes;
    char *nl;
    int rc;

    *line = NULL;
    for (;;) {
        if (c->scan < c->pos)
            c->scan = c->pos;
        nl = c->len > c->scan ? memchr(c->buf + c->scan, '\n', c->len - c->scan) : NULL;
        if (nl ||
            (c->out < 0 && c->len > c->pos)) {
            /* A last line without a newline is still a line. */
            size_t end = nl ? (size_t)(nl - c->buf) : c->len;
            *line = c->buf + c->pos;
            *len = end - c->pos;
            c->pos = nl ? end + 1 : end;
            c->lineno++;
            c->deadline = ctx_mono_ns() + idle_ns(c);
            if (*len > max)
                return conn_errf(e, CTX_CONN_ETOOBIG, "%s: line %ld is longer than"
                              " max_line_bytes (%zu bytes); send smaller records or raise"
                              " \"max_line_bytes\"", c->x->label, c->lineno, max);
            return CTX_CONN_OK;
        }
        c->scan = c->len;
        if (c->len - c->pos > max)
            return conn_errf(e, CTX_CONN_ETOOBIG, "%s: line %ld is longer than max_line_bytes"
                          " (%zu bytes); send smaller records or raise \"max_line_bytes\"",
                          c->x->label, c->lineno + 1, max);
        if (c->out < 0 && c->err < 0)
            return CTX_CONN_OK;
        if (c->cap - c->len < 65536) {
            /* Move the unread part to the front before growing. */
            char *nb;
            if (c->pos)
                memmove(c->buf, c->buf + c->pos, c->len - c->pos);
            c->len -= c->pos;
            c->scan -= c->pos;
            c->pos = 0;
            if (c->cap - c->len < 65536) {
                size_t cap = c->cap ? c->cap * 2 : 131072;
                if (!(nb = ctx_realloc(c->buf, cap)))
                    return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
                c->buf = nb;
                c->cap = cap;
            }
        }
        if ((rc = pump(c, e)))
            return rc;
    }
}

static int exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid;
}

/*
 * child_end - close our ends and reap the program: it gets timeout_seconds
 * to exit (none when force), then SIGTERM to its process group, then
 * SIGKILL. What it left running in its group is killed either way. Returns
 * the wait status.
 */
static int child_end(child *c, int force)
{
    uint64_t deadline = ctx_mono_ns() + (force ? 0 : idle_ns(c));
    struct timespec nap = {0, 10000000};
    int status = 0, termed = 0;

    close_fd(&c->in);
    close_fd(&c->out);
    close_fd(&c->err);
    ctx_free(c->req);
    ctx_free(c->buf);
    c->req = c->buf = NULL;
    if (c->pid < 0)
        return 0;
    while (!exited(c->pid)) {
        if (ctx_mono_ns() >= deadline) {
            if (termed)
                break;
            kill(-c->pid, SIGTERM);
            termed = 1;
            deadline = ctx_mono_ns() + KILL_GRACE_NS;
        }
        nanosleep(&nap, NULL);
    }
    /* The leader is not reaped yet, so its group id cannot have been reused. */
    kill(-c->pid, SIGKILL);
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    c->pid = -1;
    c->killed = termed;
    return status;
}

/* The last bytes of stderr on one line, for an error message. New. */
static char *stderr_tail(const child *c, size_t max)
{
    size_t off = c->tail_len > max ? c->tail_len - max : 0, nbad;
    ctx_buf b = CTX_BUF_INIT;

    while (off < c->tail_len && (c->tail[off] & 0xC0) == 0x80)
        off++;
    while (c->tail_len > off && (c->tail[c->tail_len - 1] == '\n'))
        ((child *)c)->tail_len--;
    if (ctx_utf8_repair(c->tail + off, c->tail_len - off, &b, &nbad) || !b.data)
        return NULL;
    for (char *p = b.data; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    return ctx_buf_steal(&b);
}

/* Put the program's stderr where a person will look: the run's log and the error. */
static void report_stderr(child *c, int failed, ctx_conn_error *e)
{
    char *all, *end;

    if (!c->tail_len)
        return;
    if (c->host && (all = stderr_tail(c, ERR_TAIL))) {
        char *msg = ctx_malloc(strlen(all) + 160);
        if (msg) {
            sprintf(msg, "stderr of %.100s: %s", c->x->label, all);
            c->host->xLog(c->em, failed ? CTX_CONN_LOG_ERROR : CTX_CONN_LOG_INFO, msg);
            ctx_free(msg);
        }
        ctx_free(all);
    }
    if (failed && (end = stderr_tail(c, 200))) {
        size_t n = strlen(e->text);
        snprintf(e->text + n, sizeof e->text - n, "; stderr: %s%s",
                 c->tail_len > 200 ? "..." : "", end);
        ctx_free(end);
    }
}

/* ---- the conversation ---- */

/* Where an answer is: before HELLO, between HELLO and DONE, after DONE. */
enum { WANT_HELLO, TALKING, DONE };

typedef struct talk talk;
struct talk {
    const char *request;       /* "spec", "check", "discover", "read" */
    unsigned allowed;          /* EXEC_BIT()s of the answers besides LOG, ERROR, DONE */
    int (*on_msg)(talk *t, child *c, exec_msg *m, ctx_conn_error *e);
    ctx_stream_fn fn;          /* discover */
    void *fn_arg;
    char *spec;                /* spec: new */
    const char *must;          /* a message the answer must hold ("SPEC"), or NULL */
    int seen;                  /* it did */
};

static int line_err(child *c, ctx_conn_error *e, int code, const char *what)
{
    return conn_errf(e, code, "%s: line %ld: %s", c->x->label, c->lineno, what);
}

static int on_hello(child *c, exec_msg *m, ctx_conn_error *e)
{
    if (m->protocol == EXEC_PROTOCOL)
        return CTX_CONN_OK;
    return conn_errf(e, CTX_CONN_ESOURCE, "%s: speaks protocol %lld, this ctxgate speaks %d;"
                  " use a version of the program for protocol %d (or a ctxgate for %lld)",
                  c->x->label, (long long)m->protocol, EXEC_PROTOCOL, EXEC_PROTOCOL,
                  (long long)m->protocol);
}

static void log_msg(child *c, int level, const char *text)
{
    if (c->host)
        c->host->xLog(c->em, level, text);
    else
        ctx_log(level, "exec", "%s: %s", c->x->label, text);
}

/* One message: the order rules every request shares, then the request's own. */
static int dispatch(talk *t, child *c, exec_msg *m, int *state, ctx_conn_error *e)
{
    char what[200];

    if (*state == DONE) {
        snprintf(what, sizeof what, "%s after DONE; DONE must be the last line", m->type_name);
        return line_err(c, e, CTX_CONN_ESOURCE, what);
    }
    if (*state == WANT_HELLO) {
        if (m->type != EXEC_HELLO) {
            snprintf(what, sizeof what, "%s before HELLO; the first line must be"
                     " {\"type\":\"HELLO\",\"protocol\":%d}", m->type_name, EXEC_PROTOCOL);
            return line_err(c, e, CTX_CONN_ESOURCE, what);
        }
        *state = TALKING;
        return on_hello(c, m, e);
    }
    switch (m->type) {
    case EXEC_LOG:
        /* A warning with a kind is one the host names and summarizes. */
        if (m->kind && *m->kind && m->level == CTX_CONN_LOG_WARN && c->host &&
            CTX_HOST_HAS(c->host, xWarn))
            c->host->xWarn(c->em, m->kind, m->stream, m->id, m->message);
        else
            log_msg(c, m->level, m->message);
        return CTX_CONN_OK;
    case EXEC_ERROR:
        return conn_errf(e, m->code ? m->code : CTX_CONN_ESOURCE, "%s: %s failed: %.300s",
                      c->x->label, t->request, m->message);
    case EXEC_DONE:
        *state = DONE;
        return CTX_CONN_OK;
    }
    if (!(t->allowed & EXEC_BIT(m->type))) {
        snprintf(what, sizeof what, "%s is not an answer to a \"%s\" request", m->type_name,
                 t->request);
        return line_err(c, e, CTX_CONN_ESOURCE, what);
    }
    t->seen |= t->must && !strcmp(m->type_name, t->must);
    return t->on_msg(t, c, m, e);
}

/* The exit status in words, or NULL for a clean exit. */
static const char *status_text(int status, char *buf, size_t n)
{
    if (WIFEXITED(status) && !WEXITSTATUS(status))
        return NULL;
    if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, n, "ended with wait status %d", status);
    return buf;
}

/*
 * talk_run - send one request (req is stolen) and handle every line of the
 * answer. Succeeds only when the program said HELLO first and DONE last and
 * then exited with status 0.
 */
static int talk_run(exec_conn *x, json_t *req, talk *t, const ctx_host *host,
                    ctx_emitter *em, ctx_conn_error *e)
{
    char sbuf[80];
    const char *line, *why;
    size_t len;
    int rc, status, state = WANT_HELLO;
    child c;

    if (!req)
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    json_object_set_new(req, "protocol", json_integer(EXEC_PROTOCOL));
    json_object_set_new(req, "type", json_string(t->request));
    json_object_set_new(req, "config",
                        x->cfg.config ? json_incref(x->cfg.config) : json_object());
    rc = child_start(&c, x, req, e);
    json_decref(req);
    if (rc)
        return rc;
    c.host = host;
    c.em = em;
    for (;;) {
        exec_msg m;
        ctx_error perr;

        if ((rc = child_line(&c, &line, &len, e)) || !line)
            break;
        if (ctx__exec_parse_line(line, len, &m, &perr)) {
            rc = line_err(&c, e, CTX_CONN_ESOURCE, perr.text);
            break;
        }
        rc = dispatch(t, &c, &m, &state, e);
        ctx__exec_msg_free(&m);
        if (rc)
            break;
    }
    status = child_end(&c, rc != 0);
    why = status_text(status, sbuf, sizeof sbuf);
    if (!rc && c.killed)
        rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: still ran %lld s after closing its stdout"
                    " (timeout_seconds) and was killed; exit after DONE", x->label,
                    (long long)x->cfg.timeout_seconds);
    else if (!rc && why)
        rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: %s%s", x->label, why,
                    state == DONE ? " after DONE" : "");
    else if (!rc && state != DONE)
        rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: ended after %ld lines without DONE; the output"
                    " was cut short (print {\"type\":\"DONE\"} last)", x->label, c.lineno);
    else if (!rc && t->must && !t->seen)
        rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: answered \"%s\" without a %s message",
                    x->label, t->request, t->must);
    else if (rc && why && !c.killed) {
        size_t n = strlen(e->text);
        snprintf(e->text + n, sizeof e->text - n, " (the program %s)", why);
    }
    report_stderr(&c, rc != 0, e);
    return rc;
}

/* ---- the requests ---- */

static int on_spec(talk *t, child *c, exec_msg *m, ctx_conn_error *e)
{
    (void)c;
    (void)e;
    free(t->spec);
    t->spec = m->json;
    m->json = NULL;
    return CTX_CONN_OK;
}

int exec_child_spec(void *conn, char **spec_json, ctx_conn_error *e)
{
    talk t = {"spec", EXEC_BIT(EXEC_SPEC), on_spec, NULL, NULL, NULL, "SPEC", 0};
    int rc = talk_run(conn, json_object(), &t, NULL, NULL, e);

    *spec_json = NULL;
    if (rc) {
        free(t.spec);
        return rc;
    }
    *spec_json = t.spec;
    return CTX_CONN_OK;
}

static int on_check(talk *t, child *c, exec_msg *m, ctx_conn_error *e)
{
    (void)t;
    if (m->ok)
        return CTX_CONN_OK;
    return conn_errf(e, m->code ? m->code : CTX_CONN_ESOURCE, "%s: check failed: %.300s",
                  c->x->label, m->message ? m->message : "(no message)");
}

static int exec_check(void *conn, ctx_conn_error *e)
{
    talk t = {"check", EXEC_BIT(EXEC_CHECK), on_check, NULL, NULL, NULL, "CHECK", 0};
    return talk_run(conn, json_object(), &t, NULL, NULL, e);
}

static int on_stream(talk *t, child *c, exec_msg *m, ctx_conn_error *e)
{
    if (t->fn(t->fn_arg, m->name, m->json ? m->json : "{}"))
        return conn_errf(e, CTX_CONN_ECANCELED, "%s: discover stopped by the host", c->x->label);
    return CTX_CONN_OK;
}

static int exec_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    talk t = {"discover", EXEC_BIT(EXEC_STREAM), on_stream, fn, arg, NULL, NULL, 0};
    return talk_run(conn, json_object(), &t, NULL, NULL, e);
}

static int on_data(talk *t, child *c, exec_msg *m, ctx_conn_error *e)
{
    const ctx_host *h = c->host;
    int stop = 0;

    (void)t;
    switch (m->type) {
    case EXEC_RECORD:
        stop = h->xRecord(c->em, &m->rec);
        break;
    case EXEC_DELETE:
        stop = h->xDelete(c->em, m->stream, m->id);
        break;
    case EXEC_ACL:
        stop = h->xAcl(c->em, m->stream, m->id, m->has_acl ? &m->acl : NULL);
        break;
    case EXEC_PRINCIPAL:
        stop = h->xPrincipal(c->em, &m->principal);
        break;
    case EXEC_STATE:
        stop = h->xState(c->em, m->stream, m->json);
        break;
    }
    if (stop)
        return conn_errf(e, CTX_CONN_ECANCELED, "%s: line %ld: the host refused the %s",
                      c->x->label, c->lineno, m->type_name);
    return CTX_CONN_OK;
}

static int exec_read(void *conn, const char *stream, const char *state, int full,
                     const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    talk t = {"read",
              EXEC_BIT(EXEC_RECORD) | EXEC_BIT(EXEC_DELETE) | EXEC_BIT(EXEC_ACL) |
                  EXEC_BIT(EXEC_PRINCIPAL) | EXEC_BIT(EXEC_STATE),
              on_data, NULL, NULL, NULL, NULL, 0};
    json_t *st = state ? ctx_json_loads(state, 0, NULL) : json_null();

    return talk_run(conn,
                    json_pack("{s:s,s:o,s:b}", "stream", stream, "state",
                              st ? st : json_null(), "full", full),
                    &t, host, em, e);
}

/*
 * exec_read_permissions - a read request with "mode": "permissions", sent
 * as a full read without state: a program that knows the mode answers with
 * ACL lines (no bodies); one that does not answers with a full read, whose
 * RECORDs the host then takes for their ACLs only. Either way the host
 * prunes what was not sent.
 */
static int exec_read_permissions(void *conn, const char *stream, const char *state,
                                 const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    talk t = {"read",
              EXEC_BIT(EXEC_RECORD) | EXEC_BIT(EXEC_DELETE) | EXEC_BIT(EXEC_ACL) |
                  EXEC_BIT(EXEC_PRINCIPAL) | EXEC_BIT(EXEC_STATE),
              on_data, NULL, NULL, NULL, NULL, 0};

    (void)state; /* the protocol has no resume point for a permission read */
    return talk_run(conn,
                    json_pack("{s:s,s:o,s:b,s:s}", "stream", stream, "state", json_null(),
                              "full", 1, "mode", "permissions"),
                    &t, host, em, e);
}

const ctx_connector ctx__exec_connector = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_connector), "exec", "1.0.0",
    exec_spec, exec_open, exec_check, exec_discover, exec_read, exec_close,
    /* ---- version 2 ---- */
    exec_read_permissions,
};
