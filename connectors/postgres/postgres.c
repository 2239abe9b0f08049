/*
 * postgres.c - the PostgreSQL connector (libpq). Each configured stream is a
 * table or a SELECT, read through a server-side cursor inside one READ ONLY
 * REPEATABLE READ transaction and incrementally by an (updated_at, id) tuple
 * cursor; permissions, labels and soft deletes come from columns. Users and
 * groups come from two optional queries, read as the stream "principals".
 *
 * Streams: "principals" (when configured), then one per streams[] entry.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/opts.h"
#include "../../core/util.h"
#include "../sdk/ctxgate/connector.h"

/* ---- configuration ---- */

typedef struct pg_stream_cfg {
    char *name, *table, *query, *id, *title;
    ctx_strlist body;
    char *url, *url_template, *updated_at;
    int64_t lookback_seconds;
    char *allow_users, *allow_groups, *deny_users, *deny_groups;
    json_t *allow_everyone;   /* a column name (string) or a boolean */
    char *labels, *acl_delimiter, *deleted;
    ctx_strlist metadata;
} pg_stream_cfg;

typedef struct pg_principals_cfg {
    char *groups_query, *users_query;
} pg_principals_cfg;

typedef struct pg_cfg {
    char *conninfo, *password_env, *password_file;
    int64_t connect_timeout, retries, batch_rows, state_every;
    ctx_objlist streams;      /* of pg_stream_cfg */
    json_t *principals;
} pg_cfg;

static const ctx_opt stream_opts[] = {
    {"name", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, name), 1,
     "stream name (letters, digits, '_', '-', '.'; not \"principals\")", NULL, 0},
    {"table", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, table), 0,
     "table or view to read, \"name\" or \"schema.name\" (or use query)", NULL, 0},
    {"query", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, query), 0,
     "a SELECT to read instead of a table; it is wrapped as a subselect", NULL, 0},
    {"id", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, id), 1,
     "column holding the row's unique key", NULL, 0},
    {"title", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, title), 0,
     "column holding the title", NULL, 0},
    {"body", CTX_OPT_STRLIST, NULL, offsetof(pg_stream_cfg, body), 0,
     "column, or array of columns joined with blank lines, holding the text", NULL, 0},
    {"url", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, url), 0,
     "column holding the row's link (or use url_template)", NULL, 0},
    {"url_template", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, url_template), 0,
     "link built from the id, e.g. \"https://crm.example.com/t/{id}\"", NULL, 0},
    {"updated_at", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, updated_at), 0,
     "cursor column (timestamp, timestamptz, date or integer); without it every"
     " read is a full read", NULL, 0},
    {"lookback_seconds", CTX_OPT_INT, "0", offsetof(pg_stream_cfg, lookback_seconds), 0,
     "also re-read rows whose updated_at is this close before the cursor (late"
     " commits)", NULL, 0},
    {"allow_users", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, allow_users), 0,
     "column (text[] or delimited text) of users who may read the row", NULL, 0},
    {"allow_groups", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, allow_groups), 0,
     "column (text[] or delimited text) of groups who may read the row", NULL, 0},
    {"deny_users", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, deny_users), 0,
     "column (text[] or delimited text) of users who may not read the row", NULL, 0},
    {"deny_groups", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, deny_groups), 0,
     "column (text[] or delimited text) of groups who may not read the row", NULL, 0},
    {"allow_everyone", CTX_OPT_JSON, NULL, offsetof(pg_stream_cfg, allow_everyone), 0,
     "boolean column, or true: every authenticated user may read the row", NULL, 0},
    {"labels", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, labels), 0,
     "column (text[] or delimited text) of labels such as \"confidential\"", NULL, 0},
    {"acl_delimiter", CTX_OPT_STRING, ",", offsetof(pg_stream_cfg, acl_delimiter), 0,
     "separator inside delimited ACL and label strings", NULL, 0},
    {"deleted", CTX_OPT_STRING, NULL, offsetof(pg_stream_cfg, deleted), 0,
     "soft-delete column: boolean, or a timestamp that is NULL while the row lives",
     NULL, 0},
    {"metadata", CTX_OPT_STRLIST, NULL, offsetof(pg_stream_cfg, metadata), 0,
     "extra columns stored in the record's metadata JSON (at most 50)", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt principals_opts[] = {
    {"groups_query", CTX_OPT_STRING, NULL, offsetof(pg_principals_cfg, groups_query), 0,
     "SELECT returning (group_name, member); a member \"group:x\" is a nested group,"
     " anything else a user", NULL, 0},
    {"users_query", CTX_OPT_STRING, NULL, offsetof(pg_principals_cfg, users_query), 0,
     "SELECT returning (account, email, display_name); an account is mapped to"
     " user:<email> when the two differ", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt pg_opts[] = {
    {"conninfo", CTX_OPT_STRING, NULL, offsetof(pg_cfg, conninfo), 1,
     "libpq connection string or URI; keep the password out of it", NULL, 0},
    {"password_env", CTX_OPT_STRING, NULL, offsetof(pg_cfg, password_env), 0,
     "name of the environment variable holding the password", NULL, 0},
    {"password_file", CTX_OPT_STRING, NULL, offsetof(pg_cfg, password_file), 0,
     "file whose first line is the password", NULL, 0},
    {"connect_timeout", CTX_OPT_INT, "10", offsetof(pg_cfg, connect_timeout), 0,
     "seconds to wait for one connection attempt (0 = wait forever)", NULL, 0},
    {"retries", CTX_OPT_INT, "3", offsetof(pg_cfg, retries), 0,
     "further connection attempts, with exponential backoff, before the run fails",
     NULL, 0},
    {"batch_rows", CTX_OPT_INT, "1000", offsetof(pg_cfg, batch_rows), 0,
     "rows fetched from the server-side cursor per round trip", NULL, 0},
    {"state_every", CTX_OPT_INT, NULL, offsetof(pg_cfg, state_every), 0,
     "rows between checkpoints (default: batch_rows)", NULL, 0},
    {"streams", CTX_OPT_OBJLIST, NULL, offsetof(pg_cfg, streams), 0,
     "tables or queries to index, one stream each", stream_opts, sizeof(pg_stream_cfg)},
    {"principals", CTX_OPT_JSON, NULL, offsetof(pg_cfg, principals), 0,
     "users and groups: {\"groups_query\": ..., \"users_query\": ...}", NULL, 0},
    CTX_OPT_END,
};

typedef struct pg_conn {
    pg_cfg cfg;
    pg_principals_cfg princ;
    int has_princ;
} pg_conn;

#define PG_MAX_METADATA 50
#define PG_BACKOFF_MS 250
#define PG_BACKOFF_MAX_MS 10000

/* Type OIDs (catalog/pg_type_d.h is a server header; these never change). */
enum {
    OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_DATE = 1082,
    OID_TIMESTAMP = 1114, OID_TIMESTAMPTZ = 1184, OID_NUMERIC = 1700,
};

static int pg_err(ctx_conn_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int pg_err(ctx_conn_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    e->code = code;
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    return code;
}

static void pg_log(const ctx_host *host, ctx_emitter *em, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void pg_log(const ctx_host *host, ctx_emitter *em, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    host->xLog(em, level, msg);
}

/* check_stream - the rules the option table cannot express, for streams[i]. */
static int check_stream(const pg_conn *c, size_t i, ctx_error *err)
{
    const pg_stream_cfg *s = (const pg_stream_cfg *)c->cfg.streams.v + i;
    const json_t *ev = s->allow_everyone;
    size_t j;

    if (!ctx_valid_name(s->name) || !strcmp(s->name, "principals"))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].name: \"%s\" is not a valid"
                             " stream name; use letters, digits, '_', '-' or '.' (and not"
                             " \"principals\")", i, s->name);
    for (j = 0; j < i; j++)
        if (!strcmp(((const pg_stream_cfg *)c->cfg.streams.v)[j].name, s->name))
            return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].name: \"%s\" is already"
                                 " used by streams[%zu]; names must be unique", i, s->name, j);
    if (!s->table == !s->query)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu]: set exactly one of \"table\""
                             " and \"query\"", i);
    if (s->table && (!*s->table || s->table[0] == '.' || s->table[strlen(s->table) - 1] == '.'))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].table: \"%s\" is not a table"
                             " name; use \"name\" or \"schema.name\"", i, s->table);
    if (s->url && s->url_template)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu]: set \"url\" or"
                             " \"url_template\", not both", i);
    if (s->url_template && !strstr(s->url_template, "{id}"))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].url_template: \"%s\" has no"
                             " \"{id}\" placeholder", i, s->url_template);
    if (ev && !json_is_string(ev) && !json_is_boolean(ev))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].allow_everyone: expected a"
                             " boolean column name or true, got %s", i, ctx_json_typename(ev));
    if (!s->allow_users && !s->allow_groups && !json_is_string(ev) && !json_is_true(ev))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu]: no permissions; set"
                             " allow_users, allow_groups or allow_everyone (rows without an"
                             " allow list are invisible to everyone)", i);
    if (!*s->acl_delimiter)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].acl_delimiter: must not be"
                             " empty", i);
    if (s->lookback_seconds < 0)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].lookback_seconds: must be"
                             " >= 0", i);
    if (s->lookback_seconds && !s->updated_at)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].lookback_seconds: needs"
                             " \"updated_at\"", i);
    if (s->metadata.n > PG_MAX_METADATA)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].metadata: %zu columns; at"
                             " most %d", i, s->metadata.n, PG_MAX_METADATA);
    return CTX_OK;
}

/* check_cfg - cross-key rules of the whole config. */
static int check_cfg(pg_conn *c, ctx_error *err)
{
    pg_cfg *g = &c->cfg;
    PQconninfoOption *opts;
    char *why = NULL;
    size_t i;
    int rc;

    if (!(opts = PQconninfoParse(g->conninfo, &why))) {
        /* libpq quotes the offending token, which may be part of a password. */
        rc = ctx_error_set(err, CTX_ECONFIG, "conninfo: not a valid libpq connection"
                           " string%s%s", why && !strstr(g->conninfo, "password") ? ": " : "",
                           why && !strstr(g->conninfo, "password") ? why : "");
        PQfreemem(why);
        return rc;
    }
    PQconninfoFree(opts);
    if (g->password_env && g->password_file)
        return ctx_error_set(err, CTX_ECONFIG, "password_env, password_file: set one of"
                             " them, not both");
    if (g->password_env && !*g->password_env)
        return ctx_error_set(err, CTX_ECONFIG, "password_env: must name an environment"
                             " variable");
    if (g->connect_timeout < 0 || g->connect_timeout > 3600)
        return ctx_error_set(err, CTX_ECONFIG, "connect_timeout: %lld is out of range;"
                             " use 0..3600 seconds", (long long)g->connect_timeout);
    if (g->retries < 0 || g->retries > 30)
        return ctx_error_set(err, CTX_ECONFIG, "retries: %lld is out of range; use 0..30",
                             (long long)g->retries);
    if (g->batch_rows < 1 || g->batch_rows > 1000000)
        return ctx_error_set(err, CTX_ECONFIG, "batch_rows: %lld is out of range; use"
                             " 1..1000000", (long long)g->batch_rows);
    if (g->state_every < 0)
        return ctx_error_set(err, CTX_ECONFIG, "state_every: must be >= 1");
    if (!g->state_every)
        g->state_every = g->batch_rows;
    if (g->principals) {
        if ((rc = ctx_opts_parse(principals_opts, g->principals, &c->princ, "principals",
                                 err)))
            return rc;
        c->has_princ = 1;
        if (!c->princ.groups_query && !c->princ.users_query)
            return ctx_error_set(err, CTX_ECONFIG, "principals: set groups_query,"
                                 " users_query or both");
    }
    if (!g->streams.n && !c->has_princ)
        return ctx_error_set(err, CTX_ECONFIG, "streams: configure at least one stream"
                             " (or principals)");
    for (i = 0; i < g->streams.n; i++)
        if ((rc = check_stream(c, i, err)))
            return rc;
    return CTX_OK;
}

static const char *pg_spec(void)
{
    static char *spec;
    if (!spec) {
        json_t *s = ctx_opts_schema(pg_opts, "postgres connector");
        json_t *props = json_object_get(s, "properties");
        json_t *items = json_object_get(json_object_get(props, "streams"), "items");
        json_t *p = ctx_opts_schema(principals_opts, NULL);
        json_object_set_new(p, "description",
                            json_string("users and groups read as the stream \"principals\""));
        json_object_set_new(props, "principals", p);
        json_object_set_new(json_object_get(items, "properties"), "allow_everyone",
                            json_pack("{s:[{s:s},{s:s}],s:s}", "anyOf", "type", "string",
                                      "type", "boolean", "description",
                                      "boolean column, or true: every authenticated user"
                                      " may read the row"));
        spec = json_dumps(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(s);
    }
    return spec;
}

static void pg_close(void *conn)
{
    pg_conn *c = conn;
    if (!c)
        return;
    ctx_opts_free(principals_opts, &c->princ);
    ctx_opts_free(pg_opts, &c->cfg);
    ctx_free(c);
}

static int pg_open(const char *config_json, void **pconn, ctx_conn_error *e)
{
    pg_conn *c;
    ctx_error err;
    int rc;

    *pconn = NULL;
    if (!(c = ctx_calloc(1, sizeof *c)))
        return pg_err(e, CTX_CONN_ENOMEM, "out of memory");
    if ((rc = ctx_opts_parse_text(pg_opts, config_json, &c->cfg, &err))) {
        ctx_free(c);
        return pg_err(e, rc, "%s", err.text);
    }
    if ((rc = check_cfg(c, &err))) {
        pg_close(c);
        return pg_err(e, rc, "%s", err.text);
    }
    *pconn = c;
    return CTX_CONN_OK;
}

/* ---- connecting ---- */

/*
 * get_password - the password from password_env or password_file into *pw
 * (new; wipe and free it), or *pw = NULL when neither is set (libpq then
 * uses conninfo, PGPASSWORD or ~/.pgpass).
 */
static int get_password(const pg_conn *c, char **pw, ctx_conn_error *e)
{
    const char *v;
    char *text = NULL;
    size_t len = 0;

    *pw = NULL;
    if (c->cfg.password_env) {
        if (!(v = getenv(c->cfg.password_env)))
            return pg_err(e, CTX_CONN_ECONFIG, "password_env: the environment variable"
                          " \"%s\" is not set; export it before the sync",
                          c->cfg.password_env);
        if (!(*pw = ctx_strdup(v)))
            return pg_err(e, CTX_CONN_ENOMEM, "out of memory");
        return CTX_CONN_OK;
    }
    if (!c->cfg.password_file)
        return CTX_CONN_OK;
    if (ctx_read_file(c->cfg.password_file, &text, &len))
        return pg_err(e, CTX_CONN_ECONFIG, "password_file: cannot read %s: %s",
                      c->cfg.password_file, strerror(errno));
    len = strcspn(text, "\r\n");
    text[len] = '\0';
    *pw = text;
    return CTX_CONN_OK;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        ctx_free(s);
    }
}

/* flatten - libpq's multi-line message as one line, after "FATAL:" if any. */
static void flatten(const char *msg, char *out, size_t len)
{
    const char *fatal = strstr(msg, "FATAL:");
    size_t n = 0;

    if (fatal) {
        msg = fatal + 6;
        while (*msg == ' ')
            msg++;
    }
    for (; *msg && n + 1 < len; msg++) {
        char ch = *msg == '\n' || *msg == '\t' || *msg == '\r' ? ' ' : *msg;
        if (ch == ' ' && (n == 0 || out[n - 1] == ' '))
            continue;
        out[n++] = ch;
    }
    while (n && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

/* scrub - overwrite every occurrence of secret in s (defence in depth). */
static void scrub(char *s, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    char *p;

    if (!n)
        return;
    while ((p = strstr(s, secret)))
        memset(p, '*', n);
}

static int is_auth_failure(const char *msg)
{
    return strstr(msg, "authentication failed") || strstr(msg, "no password supplied") ||
           strstr(msg, "no pg_hba.conf entry") || strstr(msg, "password is required") ||
           strstr(msg, "permission denied for database") ||
           (strstr(msg, "role \"") && strstr(msg, "does not exist"));
}

static const char *password_hint(const pg_conn *c)
{
    if (c->cfg.password_env)
        return "check password_env";
    if (c->cfg.password_file)
        return "check password_file";
    return "set password_env or password_file";
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * session_setup - settings that make text output stable, so cursors
 * round-trip exactly. Text arrives as UTF-8, except from a SQL_ASCII
 * database: PostgreSQL cannot convert its bytes (it would reject the row),
 * so they arrive as stored and the host repairs what is not UTF-8.
 */
static int session_setup(PGconn *db, ctx_conn_error *e)
{
    const char *enc = PQparameterStatus(db, "server_encoding");
    char sql[256], msg[400];
    PGresult *res;
    int rc = CTX_CONN_OK;

    snprintf(sql, sizeof sql, "SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD';"
             " SET IntervalStyle TO 'postgres'; SET extra_float_digits TO 3;"
             " SET client_encoding TO '%s'",
             enc && !strcmp(enc, "SQL_ASCII") ? "SQL_ASCII" : "UTF8");
    res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        flatten(PQerrorMessage(db), msg, sizeof msg);
        rc = pg_err(e, CTX_CONN_ESOURCE, "conninfo: session setup failed: %s", msg);
    }
    PQclear(res);
    return rc;
}

/*
 * pg_connect - open a connection (*out new: PQfinish it), trying 1 + retries
 * times with exponential backoff. Rejected credentials fail at once with
 * CTX_CONN_EAUTH; an unreachable server fails with CTX_CONN_ESOURCE naming
 * host and port. No message ever carries the password.
 */
static int pg_connect(const pg_conn *c, PGconn **out, ctx_conn_error *e)
{
    const char *kw[6], *val[6];
    char timeout[32], msg[400], host[160], port[32];
    char *pw = NULL;
    PGconn *db = NULL;
    int64_t attempt, backoff = PG_BACKOFF_MS;
    int rc, n = 0;

    *out = NULL;
    if ((rc = get_password(c, &pw, e)))
        return rc;
    /* Keywords after dbname override what the expanded conninfo says. */
    kw[n] = "dbname", val[n++] = c->cfg.conninfo;
    kw[n] = "fallback_application_name", val[n++] = "ctxgate";
    if (pw)
        kw[n] = "password", val[n++] = pw;
    if (c->cfg.connect_timeout) {
        snprintf(timeout, sizeof timeout, "%lld", (long long)c->cfg.connect_timeout);
        kw[n] = "connect_timeout", val[n++] = timeout;
    }
    kw[n] = NULL, val[n] = NULL;

    for (attempt = 0;; attempt++) {
        db = PQconnectdbParams(kw, val, 1);
        if (!db) {
            rc = pg_err(e, CTX_CONN_ENOMEM, "conninfo: out of memory");
            goto done;
        }
        if (PQstatus(db) == CONNECTION_OK)
            break;
        flatten(PQerrorMessage(db), msg, sizeof msg);
        scrub(msg, pw);
        if (is_auth_failure(msg)) {
            rc = pg_err(e, CTX_CONN_EAUTH, "conninfo: %s; %s", msg, password_hint(c));
            goto done;
        }
        if (attempt >= c->cfg.retries) {
            const char *h = PQhost(db), *p = PQport(db);
            snprintf(host, sizeof host, "%s", h && *h ? h : "(default)");
            snprintf(port, sizeof port, "%s", p && *p ? p : "5432");
            rc = pg_err(e, CTX_CONN_ESOURCE, "conninfo: cannot connect to host \"%s\" port"
                        " %s (%lld attempt%s): %s", host, port, (long long)attempt + 1,
                        attempt ? "s" : "", msg);
            goto done;
        }
        PQfinish(db);
        db = NULL;
        sleep_ms(backoff);
        backoff = backoff * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : backoff * 2;
    }
    if ((rc = session_setup(db, e)))
        goto done;
    *out = db;
    db = NULL;
    rc = CTX_CONN_OK;
done:
    if (db)
        PQfinish(db);
    wipe_free(pw);
    return rc;
}

/* ---- SQL text ---- */

/* append_ident - the identifier, quoted by libpq, or CTX_ENOMEM. */
static int append_ident(ctx_buf *b, PGconn *db, const char *name)
{
    char *q = PQescapeIdentifier(db, name, strlen(name));
    int rc;
    if (!q)
        return CTX_ENOMEM;
    rc = ctx_buf_puts(b, q);
    PQfreemem(q);
    return rc;
}

static int append_col(ctx_buf *b, PGconn *db, const char *name)
{
    return ctx_buf_puts(b, "src.") || append_ident(b, db, name) ? CTX_ENOMEM : CTX_OK;
}

static int append_literal(ctx_buf *b, PGconn *db, const char *s)
{
    char *q = PQescapeLiteral(db, s, strlen(s));
    int rc;
    if (!q)
        return CTX_ENOMEM;
    rc = ctx_buf_puts(b, q);
    PQfreemem(q);
    return rc;
}

/*
 * append_source - "<table> AS src" with each part of "schema.name" quoted,
 * or "(<query>) AS src" with trailing semicolons dropped.
 */
static int append_source(ctx_buf *b, PGconn *db, const char *table, const char *query)
{
    if (table) {
        const char *dot = strchr(table, '.');
        if (dot) {
            char *schema = ctx_strndup(table, (size_t)(dot - table));
            int rc = !schema || append_ident(b, db, schema) || ctx_buf_puts(b, ".");
            ctx_free(schema);
            if (rc)
                return CTX_ENOMEM;
            table = dot + 1;
        }
        return append_ident(b, db, table) || ctx_buf_puts(b, " AS src") ? CTX_ENOMEM : CTX_OK;
    }
    {
        size_t n = strlen(query);
        while (n && (query[n - 1] == ';' || query[n - 1] == ' ' || query[n - 1] == '\n' ||
                     query[n - 1] == '\t' || query[n - 1] == '\r'))
            n--;
        return ctx_buf_puts(b, "(") || ctx_buf_append(b, query, n) ||
                       ctx_buf_puts(b, "\n) AS src")
                   ? CTX_ENOMEM
                   : CTX_OK;
    }
}

/* res_message - the server's primary message of a failed result, one line. */
static void res_message(PGconn *db, const PGresult *res, char *out, size_t len)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    flatten(m ? m : PQerrorMessage(db), out, len);
}

static int res_is(const PGresult *res, const char *sqlstate)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s && !strcmp(s, sqlstate);
}

/* exec_cmd - run a command that returns no rows; what names it in errors. */
static int exec_cmd(PGconn *db, const char *sql, const char *what, ctx_conn_error *e)
{
    PGresult *res = PQexec(db, sql);
    char msg[400];
    int rc = CTX_CONN_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        res_message(db, res, msg, sizeof msg);
        rc = pg_err(e, CTX_CONN_ESOURCE, "%s: %s", what, msg);
    }
    PQclear(res);
    return rc;
}

/* A list of owned strings, reused row after row. */
typedef struct str_list {
    char **v;
    size_t n, cap;
} str_list;

static int sl_add(str_list *l, const char *prefix, const char *s, size_t len)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    char *d;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = ctx_realloc(l->v, cap * sizeof *v);
        if (!v)
            return CTX_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (!(d = ctx_malloc(plen + len + 1)))
        return CTX_ENOMEM;
    if (plen)
        memcpy(d, prefix, plen);
    memcpy(d + plen, s, len);
    d[plen + len] = '\0';
    l->v[l->n++] = d;
    return CTX_OK;
}

static void sl_clear(str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        ctx_free(l->v[i]);
    l->n = 0;
}

static void sl_free(str_list *l)
{
    sl_clear(l);
    ctx_free(l->v);
    memset(l, 0, sizeof *l);
}

/*
 * add_principal - add one ACL value: "everyone" and values that already
 * carry "user:" or "group:" go in as they are; others get prefix (NULL for
 * labels, which are not principals). Blank values are skipped.
 */
static int add_principal(str_list *l, const char *prefix, const char *s, size_t len)
{
    while (len && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' ||
                   s[len - 1] == '\r'))
        len--;
    if (!len)
        return CTX_OK;
    if (prefix && ((len == 8 && !memcmp(s, "everyone", 8)) ||
                   (len > 5 && !memcmp(s, "user:", 5)) || (len > 6 && !memcmp(s, "group:", 6))))
        prefix = NULL;
    return sl_add(l, prefix, s, len);
}

/* ---- reading a document stream ---- */

enum { ACL_ALLOW_USERS, ACL_ALLOW_GROUPS, ACL_DENY_USERS, ACL_DENY_GROUPS, ACL_LABELS, ACL_N };

/* Where each configured column lands in the SELECT list; -1 when absent. */
typedef struct pg_plan {
    int id, ts, ts_ms, title, body, nbody, url, acl[ACL_N], everyone, deleted, meta;
    unsigned ts_type;          /* type OID of updated_at, 0 without one */
} pg_plan;

static void plan_reset(pg_plan *p)
{
    p->id = p->ts = p->ts_ms = p->title = p->body = p->url = -1;
    p->everyone = p->deleted = p->meta = -1;
    for (int k = 0; k < ACL_N; k++)
        p->acl[k] = -1;
    p->nbody = 0;
    p->ts_type = 0;
}

enum { CURSOR_NONE, CURSOR_INCR, CURSOR_RESUME };

typedef struct pg_reader {
    const pg_conn *c;
    const pg_stream_cfg *s;
    size_t si;                 /* index in streams[], for messages */
    PGconn *db;
    const ctx_host *host;
    ctx_emitter *em;
    ctx_conn_error *e;
    pg_plan p;
    int mode;                  /* CURSOR_*: where this read starts */
    ctx_buf cur_ts, cur_id;    /* cursor of the last row emitted (or the old state) */
    int have_cursor;
    int64_t rows, since_state, null_ids, null_ts;
    ctx_buf body, url, acl_text;
    str_list allow, deny, labels;
} pg_reader;

static const char *const acl_key[ACL_N] = {"allow_users", "allow_groups", "deny_users",
                                           "deny_groups", "labels"};

static const char *acl_column(const pg_stream_cfg *s, int k)
{
    switch (k) {
    case ACL_ALLOW_USERS: return s->allow_users;
    case ACL_ALLOW_GROUPS: return s->allow_groups;
    case ACL_DENY_USERS: return s->deny_users;
    case ACL_DENY_GROUPS: return s->deny_groups;
    default: return s->labels;
    }
}

static int find_col(const PGresult *res, const char *name)
{
    for (int i = 0; i < PQnfields(res); i++)
        if (!strcmp(PQfname(res, i), name))
            return i;
    return -1;
}

/* no_column - the error for a configured column the source does not have. */
static int no_column(pg_reader *r, const PGresult *res, const char *key, const char *name)
{
    char cols[200];
    size_t n = 0;

    cols[0] = '\0';
    for (int i = 0; i < PQnfields(res) && n + 4 < sizeof cols; i++) {
        int w = snprintf(cols + n, sizeof cols - n, "%s%s", i ? ", " : "", PQfname(res, i));
        if (w < 0 || (size_t)w >= sizeof cols - n) {
            snprintf(cols + (n < sizeof cols - 5 ? n : sizeof cols - 5), 5, ", ...");
            break;
        }
        n += (size_t)w;
    }
    return pg_err(r->e, CTX_CONN_ECONFIG, "streams[%zu].%s: no column \"%s\" in %s%s%s;"
                  " its columns are: %s", r->si, key, name, r->s->table ? "table \"" : "",
                  r->s->table ? r->s->table : "the query's result", r->s->table ? "\"" : "",
                  cols);
}

static const char *ts_type_name(unsigned oid)
{
    switch (oid) {
    case OID_TIMESTAMP: return "timestamp";
    case OID_TIMESTAMPTZ: return "timestamptz";
    case OID_DATE: return "date";
    case OID_INT2: return "smallint";
    case OID_INT4: return "integer";
    case OID_INT8: return "bigint";
    case OID_NUMERIC: return "numeric";
    default: return NULL;
    }
}

static int is_time(unsigned oid)
{
    return oid == OID_TIMESTAMP || oid == OID_TIMESTAMPTZ || oid == OID_DATE;
}

static int is_bool_or_time(unsigned oid)
{
    return oid == OID_BOOL || is_time(oid);
}

/* type_name - the SQL name of a type, for messages. */
static void type_name(PGconn *db, unsigned oid, char *out, size_t len)
{
    char param[16];
    const char *vals[1] = {param};
    PGresult *res;

    snprintf(param, sizeof param, "%u", oid);
    snprintf(out, len, "type %u", oid);
    res = PQexecParams(db, "SELECT format_type($1::oid, NULL)", 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/*
 * describe - run the source with LIMIT 0 to learn its columns, and check
 * every configured column against them. Errors name the config key.
 */
static int describe(pg_reader *r, PGresult **out)
{
    const pg_stream_cfg *s = r->s;
    ctx_buf sql = CTX_BUF_INIT;
    PGresult *res;
    char msg[400], tn[64];
    const char *key = s->table ? "table" : "query";
    int rc, col;
    size_t i;

    *out = NULL;
    if (ctx_buf_puts(&sql, "SELECT * FROM ") || append_source(&sql, r->db, s->table, s->query) ||
        ctx_buf_puts(&sql, " LIMIT 0")) {
        ctx_buf_free(&sql);
        return pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");
    }
    res = PQexec(r->db, sql.data);
    ctx_buf_free(&sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        res_message(r->db, res, msg, sizeof msg);
        if (PQstatus(r->db) == CONNECTION_BAD)
            rc = pg_err(r->e, CTX_CONN_ESOURCE, "streams[%zu]: connection to the server"
                        " lost: %s", r->si, msg);
        else
            rc = pg_err(r->e, res_is(res, "42601") ? CTX_CONN_ECONFIG : CTX_CONN_ESOURCE,
                        "streams[%zu].%s: %s (stream \"%s\")", r->si, key, msg, s->name);
        PQclear(res);
        return rc;
    }
#define NEED(k, name)                                                                    \
    do {                                                                                 \
        if ((col = find_col(res, (name))) < 0) {                                         \
            rc = no_column(r, res, (k), (name));                                         \
            goto fail;                                                                   \
        }                                                                                \
    } while (0)
    NEED("id", s->id);
    if (s->updated_at) {
        NEED("updated_at", s->updated_at);
        if (!ts_type_name(PQftype(res, col))) {
            type_name(r->db, PQftype(res, col), tn, sizeof tn);
            rc = pg_err(r->e, CTX_CONN_ECONFIG, "streams[%zu].updated_at: column \"%s\" is"
                        " %s; use a timestamp, timestamptz, date or integer column",
                        r->si, s->updated_at, tn);
            goto fail;
        }
    }
    if (s->title)
        NEED("title", s->title);
    for (i = 0; i < s->body.n; i++) {
        char k[32];
        snprintf(k, sizeof k, s->body.n > 1 ? "body[%zu]" : "body", i);
        NEED(k, s->body.v[i]);
    }
    if (s->url)
        NEED("url", s->url);
    for (i = 0; i < ACL_N; i++)
        if (acl_column(s, (int)i))
            NEED(acl_key[i], acl_column(s, (int)i));
    if (json_is_string(s->allow_everyone)) {
        NEED("allow_everyone", json_string_value(s->allow_everyone));
        if (PQftype(res, col) != OID_BOOL) {
            type_name(r->db, PQftype(res, col), tn, sizeof tn);
            rc = pg_err(r->e, CTX_CONN_ECONFIG, "streams[%zu].allow_everyone: column \"%s\""
                        " is %s; use a boolean column or true", r->si,
                        json_string_value(s->allow_everyone), tn);
            goto fail;
        }
    }
    if (s->deleted) {
        NEED("deleted", s->deleted);
        if (!is_bool_or_time(PQftype(res, col))) {
            type_name(r->db, PQftype(res, col), tn, sizeof tn);
            rc = pg_err(r->e, CTX_CONN_ECONFIG, "streams[%zu].deleted: column \"%s\" is %s;"
                        " use a boolean, or a timestamp that is NULL while the row lives",
                        r->si, s->deleted, tn);
            goto fail;
        }
    }
    for (i = 0; i < s->metadata.n; i++) {
        char k[32];
        snprintf(k, sizeof k, "metadata[%zu]", i);
        NEED(k, s->metadata.v[i]);
    }
#undef NEED
    *out = res;
    return CTX_CONN_OK;
fail:
    PQclear(res);
    return rc;
}

/*
 * build_select - the cursor's query: the configured columns in a fixed
 * order (positions recorded in r->p), the cursor condition and the order.
 * ACL and label columns go through to_json so a text[] and a delimited
 * string arrive in one parseable form. *nparams receives how many of
 * $1/$2 the query uses.
 */
static int build_select(pg_reader *r, const PGresult *desc, ctx_buf *b, int *nparams)
{
    const pg_stream_cfg *s = r->s;
    PGconn *db = r->db;
    int n = 0, k, bad = 0;
    size_t i;

#define SEP() (bad |= ctx_buf_puts(b, n ? ", " : "SELECT "))
    *nparams = 0;
    plan_reset(&r->p);
    r->p.ts_type = s->updated_at ? PQftype(desc, find_col(desc, s->updated_at)) : 0;

    SEP(), bad |= append_col(b, db, s->id), r->p.id = n++;
    if (s->updated_at) {
        SEP(), bad |= append_col(b, db, s->updated_at), r->p.ts = n++;
        if (is_time(r->p.ts_type)) {
            SEP();
            bad |= ctx_buf_puts(b, "CASE WHEN isfinite(") || append_col(b, db, s->updated_at) ||
                   ctx_buf_puts(b, ") THEN (extract(epoch FROM ") ||
                   append_col(b, db, s->updated_at) || ctx_buf_puts(b, ") * 1000)::bigint END");
            r->p.ts_ms = n++;
        }
    }
    if (s->title)
        SEP(), bad |= append_col(b, db, s->title), r->p.title = n++;
    for (i = 0; i < s->body.n; i++) {
        SEP(), bad |= append_col(b, db, s->body.v[i]);
        if (!i)
            r->p.body = n;
        n++;
    }
    r->p.nbody = (int)s->body.n;
    if (s->url)
        SEP(), bad |= append_col(b, db, s->url), r->p.url = n++;
    for (k = 0; k < ACL_N; k++) {
        if (!acl_column(s, k))
            continue;
        SEP();
        bad |= ctx_buf_puts(b, "to_json(") || append_col(b, db, acl_column(s, k)) ||
               ctx_buf_puts(b, ")::text");
        r->p.acl[k] = n++;
    }
    if (json_is_string(s->allow_everyone)) {
        SEP();
        bad |= ctx_buf_puts(b, "(") ||
               append_col(b, db, json_string_value(s->allow_everyone)) ||
               ctx_buf_puts(b, " IS TRUE)");
        r->p.everyone = n++;
    }
    if (s->deleted) {
        SEP();
        bad |= ctx_buf_puts(b, "(") || append_col(b, db, s->deleted) ||
               ctx_buf_puts(b, PQftype(desc, find_col(desc, s->deleted)) == OID_BOOL
                                   ? " IS TRUE)" : " IS NOT NULL)");
        r->p.deleted = n++;
    }
    if (s->metadata.n) {
        SEP();
        bad |= ctx_buf_puts(b, "json_build_object(");
        for (i = 0; i < s->metadata.n; i++)
            bad |= ctx_buf_puts(b, i ? ", " : "") || append_literal(b, db, s->metadata.v[i]) ||
                   ctx_buf_puts(b, ", ") || append_col(b, db, s->metadata.v[i]);
        bad |= ctx_buf_puts(b, ")::text");
        r->p.meta = n++;
    }
#undef SEP

    bad |= ctx_buf_puts(b, " FROM ") || append_source(b, db, s->table, s->query);
    if (r->mode == CURSOR_INCR && s->lookback_seconds) {
        /* Integer cursors subtract the window in their own units. */
        bad |= ctx_buf_puts(b, " WHERE ") || append_col(b, db, s->updated_at) ||
               ctx_buf_printf(b, is_time(r->p.ts_type) ? " >= $1::%s - interval '%lld seconds'"
                                                       : " >= $1::%s - %lld",
                              ts_type_name(r->p.ts_type), (long long)s->lookback_seconds);
        *nparams = 1;
    } else if (r->mode == CURSOR_INCR) {
        bad |= ctx_buf_puts(b, " WHERE (") || append_col(b, db, s->updated_at) ||
               ctx_buf_puts(b, ", ") || append_col(b, db, s->id) ||
               ctx_buf_printf(b, ") > ($1::%s, $2)", ts_type_name(r->p.ts_type));
        *nparams = 2;
    } else if (r->mode == CURSOR_RESUME) {
        bad |= ctx_buf_puts(b, " WHERE ") || append_col(b, db, s->id) ||
               ctx_buf_puts(b, " > $1");
        *nparams = 1;
    }
    bad |= ctx_buf_puts(b, " ORDER BY ");
    if (s->updated_at)
        bad |= append_col(b, db, s->updated_at) || ctx_buf_puts(b, ", ");
    bad |= append_col(b, db, s->id);
    return bad ? pg_err(r->e, CTX_CONN_ENOMEM, "out of memory") : CTX_CONN_OK;
}

/*
 * load_state - decide where this read starts. With updated_at: after the
 * state's (cursor_ts, cursor_id). Without: after cursor_id only when the
 * state marks an interrupted pass ("partial"), else from the beginning.
 */
static int load_state(pg_reader *r, const char *state, int full)
{
    json_t *j, *ts, *id;
    int rc = CTX_CONN_OK;

    r->mode = CURSOR_NONE;
    if (full || !state)
        return CTX_CONN_OK;
    j = json_loads(state, 0, NULL);
    ts = json_object_get(j, "cursor_ts");
    id = json_object_get(j, "cursor_id");
    if (!json_is_object(j)) {
        pg_log(r->host, r->em, CTX_CONN_LOG_WARN, "stream \"%s\": the saved state is not a"
               " JSON object; reading from the beginning", r->s->name);
    } else if (r->s->updated_at && json_is_string(ts) && json_is_string(id)) {
        r->mode = CURSOR_INCR;
    } else if (!r->s->updated_at && json_is_string(id) &&
               json_is_true(json_object_get(j, "partial"))) {
        r->mode = CURSOR_RESUME;
    }
    if (r->mode != CURSOR_NONE) {
        ctx_buf_reset(&r->cur_id);
        ctx_buf_reset(&r->cur_ts);
        if (ctx_buf_puts(&r->cur_id, json_string_value(id)) ||
            (r->mode == CURSOR_INCR && ctx_buf_puts(&r->cur_ts, json_string_value(ts))))
            rc = pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");
        r->have_cursor = 1;
    }
    json_decref(j);
    return rc;
}

/*
 * emit_state - checkpoint at the cursor of the last row emitted. final
 * marks the end of the pass: without updated_at the next run starts over.
 */
static int emit_state(pg_reader *r, int final)
{
    json_t *j;
    char *text;
    int rc;

    if (r->s->updated_at && r->have_cursor)
        j = json_pack("{s:s,s:s}", "cursor_ts", r->cur_ts.data, "cursor_id", r->cur_id.data);
    else if (!r->s->updated_at && r->have_cursor && !final)
        j = json_pack("{s:s,s:b}", "cursor_id", r->cur_id.data, "partial", 1);
    else
        j = json_object();
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");
    rc = r->host->xState(r->em, r->s->name, text);
    free(text);
    r->since_state = 0;
    return rc ? pg_err(r->e, CTX_CONN_ECANCELED, "stopped by the host") : CTX_CONN_OK;
}

/*
 * add_acl_values - parse a to_json() value: an array (of strings or
 * numbers) or a string split at the delimiter; add each value.
 */
static int add_acl_values(pg_reader *r, str_list *l, const char *prefix, const char *text,
                          size_t len)
{
    const char *delim = r->s->acl_delimiter;
    json_t *j, *v;
    size_t i;
    int rc = CTX_CONN_OK;

    /* SQL_ASCII databases hand out any bytes; the JSON parser wants UTF-8. */
    if (!ctx_utf8_valid(text, len)) {
        size_t nbad;
        ctx_buf_reset(&r->acl_text);
        if (ctx_utf8_repair(text, len, &r->acl_text, &nbad))
            return CTX_ENOMEM;
        text = r->acl_text.data;
        len = r->acl_text.len;
    }
    if (!(j = json_loadb(text, len, JSON_DECODE_ANY, NULL)))
        return CTX_CONN_OK;
    if (json_is_string(j)) {
        const char *p = json_string_value(j), *end = p + json_string_length(j);
        size_t dl = strlen(delim);
        while (!rc && p <= end) {
            const char *q = strstr(p, delim);
            if (!q || q > end)
                q = end;
            rc = add_principal(l, prefix, p, (size_t)(q - p));
            p = q + dl;
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            char num[32];
            if (json_is_string(v))
                rc = add_principal(l, prefix, json_string_value(v), json_string_length(v));
            else if (json_is_integer(v)) {
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
                rc = add_principal(l, prefix, num, strlen(num));
            }
            if (rc)
                break;
        }
    } else if (json_is_integer(j)) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(j));
        rc = add_principal(l, prefix, num, strlen(num));
    }
    json_decref(j);
    return rc;
}

/* build_url - url_template with every "{id}" replaced by the id, %-encoded. */
static int build_url(ctx_buf *b, const char *tmpl, const char *id)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *p = tmpl, *q;

    ctx_buf_reset(b);
    while ((q = strstr(p, "{id}"))) {
        if (ctx_buf_append(b, p, (size_t)(q - p)))
            return CTX_ENOMEM;
        for (const unsigned char *c = (const unsigned char *)id; *c; c++) {
            char enc[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            int plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                        (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.' ||
                        *c == '~';
            if (plain ? ctx_buf_append(b, c, 1) : ctx_buf_append(b, enc, 3))
                return CTX_ENOMEM;
        }
        p = q + 4;
    }
    return ctx_buf_puts(b, p);
}

static int set_cursor(pg_reader *r, const char *ts, const char *id)
{
    ctx_buf_reset(&r->cur_id);
    ctx_buf_reset(&r->cur_ts);
    if (ctx_buf_puts(&r->cur_id, id) || (ts && ctx_buf_puts(&r->cur_ts, ts)))
        return CTX_ENOMEM;
    r->have_cursor = 1;
    return CTX_OK;
}

#define VAL(col) PQgetvalue(res, row, (col))
#define ISNULL(col) ((col) < 0 || PQgetisnull(res, row, (col)))

/* emit_row - one fetched row as a RECORD or a DELETE. */
static int emit_row(pg_reader *r, const PGresult *res, int row)
{
    const pg_plan *p = &r->p;
    const char *id, *body = NULL;
    size_t body_len = 0;
    ctx_record rec;
    ctx_acl acl;
    int k, rc;

    if (ISNULL(p->id)) {
        if (!r->null_ids++)
            pg_log(r->host, r->em, CTX_CONN_LOG_WARN, "stream \"%s\": a row has a NULL id"
                   " (column \"%s\"); skipped", r->s->name, r->s->id);
        return CTX_CONN_OK;
    }
    id = VAL(p->id);
    if (r->s->updated_at && ISNULL(p->ts))
        r->null_ts++; /* sorts last; the cursor stays at the last dated row */
    else if (set_cursor(r, r->s->updated_at ? VAL(p->ts) : NULL, id))
        return pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");

    if (!ISNULL(p->deleted) && VAL(p->deleted)[0] == 't')
        return r->host->xDelete(r->em, r->s->name, id)
                   ? pg_err(r->e, CTX_CONN_ECANCELED, "stopped by the host")
                   : CTX_CONN_OK;

    if (p->nbody == 1) {
        body = VAL(p->body);
        body_len = (size_t)PQgetlength(res, row, p->body);
    } else if (p->nbody > 1) {
        ctx_buf_reset(&r->body);
        for (k = 0; k < p->nbody; k++) {
            int len = PQgetlength(res, row, p->body + k);
            if (ISNULL(p->body + k) || !len)
                continue;
            if ((r->body.len && ctx_buf_puts(&r->body, "\n\n")) ||
                ctx_buf_append(&r->body, VAL(p->body + k), (size_t)len))
                return pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");
        }
        body = r->body.data ? r->body.data : "";
        body_len = r->body.len;
    }

    sl_clear(&r->allow);
    sl_clear(&r->deny);
    sl_clear(&r->labels);
    for (k = 0; k < ACL_N; k++) {
        str_list *l = k == ACL_LABELS ? &r->labels
                      : k == ACL_DENY_USERS || k == ACL_DENY_GROUPS ? &r->deny : &r->allow;
        const char *prefix = k == ACL_LABELS ? NULL
                             : k == ACL_ALLOW_USERS || k == ACL_DENY_USERS ? "user:" : "group:";
        if (ISNULL(p->acl[k]))
            continue;
        if (add_acl_values(r, l, prefix, VAL(p->acl[k]),
                           (size_t)PQgetlength(res, row, p->acl[k])))
            return pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");
    }
    if (json_is_true(r->s->allow_everyone) ||
        (!ISNULL(p->everyone) && VAL(p->everyone)[0] == 't'))
        if (sl_add(&r->allow, NULL, "everyone", 8))
            return pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");

    memset(&acl, 0, sizeof acl);
    acl.allow = (const char *const *)r->allow.v;
    acl.n_allow = r->allow.n;
    acl.deny = (const char *const *)r->deny.v;
    acl.n_deny = r->deny.n;
    acl.labels = (const char *const *)r->labels.v;
    acl.n_labels = r->labels.n;

    memset(&rec, 0, sizeof rec);
    rec.stream = r->s->name;
    rec.id = id;
    rec.title = ISNULL(p->title) ? "" : VAL(p->title);
    rec.body = body ? body : "";
    rec.body_len = body_len;
    if (!ISNULL(p->url)) {
        rec.url = VAL(p->url);
    } else if (r->s->url_template) {
        if (build_url(&r->url, r->s->url_template, id))
            return pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");
        rec.url = r->url.data;
    }
    rec.metadata_json = ISNULL(p->meta) ? NULL : VAL(p->meta);
    rec.updated_at_ms = ISNULL(p->ts_ms) ? 0 : strtoll(VAL(p->ts_ms), NULL, 10);
    rec.acl = &acl;
    rc = r->host->xRecord(r->em, &rec);
    return rc ? pg_err(r->e, CTX_CONN_ECANCELED, "stopped by the host") : CTX_CONN_OK;
}

#undef VAL
#undef ISNULL

/* fetch_failed - the error for a failed FETCH: a lost connection says so. */
static int fetch_failed(pg_reader *r, const PGresult *res)
{
    char msg[400];

    res_message(r->db, res, msg, sizeof msg);
    if (PQstatus(r->db) == CONNECTION_BAD)
        return pg_err(r->e, CTX_CONN_ESOURCE, "streams[%zu]: connection to the server lost"
                      " after %lld rows of stream \"%s\" (%s); the next run resumes from the"
                      " last checkpoint", r->si, (long long)r->rows, r->s->name, msg);
    return pg_err(r->e, CTX_CONN_ESOURCE, "streams[%zu]: reading stream \"%s\" failed"
                  " after %lld rows: %s", r->si, r->s->name, (long long)r->rows, msg);
}

/* next_result - the result of the query sent last; drains the rest. New. */
static PGresult *next_result(PGconn *db)
{
    PGresult *res = PQgetResult(db), *extra;
    while ((extra = PQgetResult(db)))
        PQclear(extra);
    return res;
}

static int read_stream(pg_reader *r, const char *state, int full)
{
    const pg_cfg *g = &r->c->cfg;
    ctx_buf sql = CTX_BUF_INIT;
    PGresult *desc = NULL, *res = NULL;
    const char *params[2];
    char fetch[64], msg[400];
    int rc, nparams, i, n, in_flight = 0;

    if ((rc = load_state(r, state, full)))
        return rc;
    if ((rc = exec_cmd(r->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "BEGIN",
                       r->e)))
        return rc;
    if ((rc = describe(r, &desc)))
        goto done;
    if ((rc = ctx_buf_puts(&sql, "DECLARE ctxgate_rows NO SCROLL CURSOR FOR ")) ||
        (rc = build_select(r, desc, &sql, &nparams)))
        goto done;
    pg_log(r->host, r->em, CTX_CONN_LOG_DEBUG, "stream \"%s\": %s", r->s->name, sql.data);
    if (r->mode == CURSOR_RESUME) {
        params[0] = r->cur_id.data;
    } else {
        params[0] = r->cur_ts.data;
        params[1] = r->cur_id.data;
    }
    res = PQexecParams(r->db, sql.data, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        res_message(r->db, res, msg, sizeof msg);
        rc = pg_err(r->e, CTX_CONN_ESOURCE, "streams[%zu].%s: %s (stream \"%s\")", r->si,
                    r->s->table ? "table" : "query", msg, r->s->name);
        goto done;
    }
    snprintf(fetch, sizeof fetch, "FETCH FORWARD %lld FROM ctxgate_rows",
             (long long)g->batch_rows);
    /*
     * Pipelined: the next FETCH is sent before this batch is indexed, so the
     * server reads and formats rows on one core while the host tokenizes on
     * the other. Memory stays at two batches.
     */
    PQclear(res);
    res = NULL;
    if (!PQsendQuery(r->db, fetch)) {
        rc = fetch_failed(r, NULL);
        goto done;
    }
    in_flight = 1;
    do {
        res = next_result(r->db);
        in_flight = 0;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            rc = fetch_failed(r, res);
            goto done;
        }
        n = PQntuples(res);
        if (n == g->batch_rows) {
            if (!PQsendQuery(r->db, fetch)) {
                rc = fetch_failed(r, NULL);
                goto done;
            }
            in_flight = 1;
        }
        for (i = 0; i < n; i++) {
            if ((rc = emit_row(r, res, i)))
                goto done;
            r->rows++;
            if (++r->since_state >= g->state_every && (rc = emit_state(r, 0)))
                goto done;
        }
        PQclear(res);
        res = NULL;
    } while (n == g->batch_rows);
    if ((rc = exec_cmd(r->db, "COMMIT", "COMMIT", r->e)))
        goto done;
    if (r->null_ids)
        pg_log(r->host, r->em, CTX_CONN_LOG_WARN, "stream \"%s\": skipped %lld rows with a"
               " NULL id (column \"%s\")", r->s->name, (long long)r->null_ids, r->s->id);
    if (r->null_ts)
        pg_log(r->host, r->em, CTX_CONN_LOG_WARN, "stream \"%s\": %lld rows have a NULL"
               " updated_at (column \"%s\"); only full syncs read them again", r->s->name,
               (long long)r->null_ts, r->s->updated_at);
    rc = emit_state(r, 1);
done:
    PQclear(res);
    if (in_flight)
        PQclear(next_result(r->db)); /* leave the connection usable */
    PQclear(desc);
    ctx_buf_free(&sql);
    if (rc == CTX_ENOMEM)
        pg_err(r->e, CTX_CONN_ENOMEM, "out of memory");
    return rc;
}

/* ---- reading principals ---- */

/*
 * A principals query runs through its own cursor: SELECT the normalized
 * columns of (<query>) AS src(<names>).
 */
static int declare_query(PGconn *db, const char *cursor, const char *select,
                         const char *query, const char *cols, const char *order,
                         const char *key, ctx_conn_error *e)
{
    ctx_buf sql = CTX_BUF_INIT;
    char msg[400];
    PGresult *res;
    int rc = CTX_CONN_OK;

    if (ctx_buf_printf(&sql, "DECLARE %s NO SCROLL CURSOR FOR SELECT %s FROM ", cursor,
                       select) ||
        append_source(&sql, db, NULL, query) || ctx_buf_printf(&sql, "(%s)%s", cols, order)) {
        ctx_buf_free(&sql);
        return pg_err(e, CTX_CONN_ENOMEM, "out of memory");
    }
    res = PQexec(db, sql.data);
    ctx_buf_free(&sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        res_message(db, res, msg, sizeof msg);
        rc = pg_err(e, res_is(res, "42601") ? CTX_CONN_ECONFIG : CTX_CONN_ESOURCE,
                    "principals.%s: %s", key, msg);
    }
    PQclear(res);
    return rc;
}

/*
 * fix_utf8 - s itself when it is well-formed UTF-8, else a copy in buf with
 * each bad sequence replaced by U+FFFD; NULL when out of memory. The host
 * repairs record text but takes principal names as given, and a name must
 * read the same in a PRINCIPAL as in the ACLs (repaired in add_acl_values).
 */
static const char *fix_utf8(ctx_buf *buf, const char *s)
{
    size_t nbad;

    if (!s || ctx_utf8_valid(s, strlen(s)))
        return s;
    ctx_buf_reset(buf);
    if (ctx_utf8_repair(s, strlen(s), buf, &nbad))
        return NULL;
    return buf->data ? buf->data : "";
}

/* The SQL of the principal names: prefix unless the value already has one. */
#define USER_NAME(col)                                                                   \
    "CASE WHEN " col "::text LIKE 'user:%' THEN " col "::text ELSE 'user:' || " col      \
    "::text END"

/* fetch_batch - the next batch of a principals cursor into *res (replaced). */
static int fetch_batch(PGconn *db, const char *fetch, const char *what, PGresult **res,
                       ctx_conn_error *e)
{
    char msg[400];

    PQclear(*res);
    *res = PQexec(db, fetch);
    if (PQresultStatus(*res) == PGRES_TUPLES_OK)
        return CTX_CONN_OK;
    res_message(db, *res, msg, sizeof msg);
    return pg_err(e, CTX_CONN_ESOURCE, "principals.%s: %s", what, msg);
}

static int read_users(const pg_conn *c, PGconn *db, const ctx_host *host, ctx_emitter *em,
                      ctx_conn_error *e)
{
    PGresult *res = NULL;
    ctx_buf fix[3] = {CTX_BUF_INIT, CTX_BUF_INIT, CTX_BUF_INIT};
    char fetch[64];
    int rc, i, n;

    rc = declare_query(db, "ctxgate_users",
                       USER_NAME("src.account") ", src.email::text, src.display_name::text,"
                       " src.email::text IS DISTINCT FROM src.account::text",
                       c->princ.users_query, "account, email, display_name",
                       " WHERE src.account IS NOT NULL ORDER BY 1", "users_query", e);
    if (rc)
        return rc;
    snprintf(fetch, sizeof fetch, "FETCH FORWARD %lld FROM ctxgate_users",
             (long long)c->cfg.batch_rows);
    do {
        if ((rc = fetch_batch(db, fetch, "users_query", &res, e)))
            goto done;
        n = PQntuples(res);
        for (i = 0; i < n; i++) {
            ctx_principal pr;
            char *maps_to = NULL;
            memset(&pr, 0, sizeof pr);
            pr.kind = CTX_PRINCIPAL_USER;
            pr.id = fix_utf8(&fix[0], PQgetvalue(res, i, 0));
            pr.email = PQgetisnull(res, i, 1) ? NULL : fix_utf8(&fix[1], PQgetvalue(res, i, 1));
            pr.display_name = PQgetisnull(res, i, 2) ? NULL
                                                     : fix_utf8(&fix[2], PQgetvalue(res, i, 2));
            if (!pr.id || (!pr.email && !PQgetisnull(res, i, 1)) ||
                (!pr.display_name && !PQgetisnull(res, i, 2))) {
                rc = pg_err(e, CTX_CONN_ENOMEM, "out of memory");
                goto done;
            }
            if (pr.email && *pr.email && PQgetvalue(res, i, 3)[0] == 't') {
                size_t len = strlen(pr.email);
                if (!(maps_to = ctx_malloc(len + 6))) {
                    rc = pg_err(e, CTX_CONN_ENOMEM, "out of memory");
                    goto done;
                }
                memcpy(maps_to, "user:", 5);
                memcpy(maps_to + 5, pr.email, len + 1);
                pr.maps_to = strcmp(maps_to, pr.id) ? maps_to : NULL;
            }
            rc = host->xPrincipal(em, &pr);
            ctx_free(maps_to);
            if (rc) {
                rc = pg_err(e, CTX_CONN_ECANCELED, "stopped by the host");
                goto done;
            }
        }
    } while (n == c->cfg.batch_rows);
    rc = CTX_CONN_OK;
done:
    PQclear(res);
    for (i = 0; i < 3; i++)
        ctx_buf_free(&fix[i]);
    return rc;
}

/*
 * emit_group - one group with all its members. seen (the names emitted in
 * this read, for the next state) gains the name; gone (the previous read's
 * names) loses it.
 */
static int emit_group(const ctx_host *host, ctx_emitter *em, const char *name,
                      const str_list *members, json_t *seen, json_t *gone,
                      ctx_conn_error *e)
{
    ctx_principal pr;

    if (seen && json_array_append_new(seen, json_string(name)))
        return pg_err(e, CTX_CONN_ENOMEM, "out of memory");
    if (gone)
        json_object_del(gone, name);
    memset(&pr, 0, sizeof pr);
    pr.kind = CTX_PRINCIPAL_GROUP;
    pr.id = name;
    pr.display_name = name + 6;
    pr.members = (const char *const *)members->v;
    pr.n_members = members->n;
    return host->xPrincipal(em, &pr) ? pg_err(e, CTX_CONN_ECANCELED, "stopped by the host")
                                     : CTX_CONN_OK;
}

/*
 * read_groups - rows (group_name, member) sorted by the group's principal
 * name, so only one group's members are held at a time. A member that
 * starts with "group:" is a nested group, "user:" or anything else a user;
 * a NULL member declares the group without adding anyone. Groups of the
 * previous read (gone, a set) that no row names any more are emitted with
 * no members, so their members lose access; seen collects this read's.
 */
static int read_groups(const pg_conn *c, PGconn *db, const ctx_host *host, ctx_emitter *em,
                       json_t *seen, json_t *gone, ctx_conn_error *e)
{
    PGresult *res = NULL;
    ctx_buf cur = CTX_BUF_INIT;
    str_list members = {NULL, 0, 0};
    ctx_buf fix[2] = {CTX_BUF_INIT, CTX_BUF_INIT};
    char fetch[64];
    int rc, i, n, have = 0;

    rc = declare_query(db, "ctxgate_groups",
                       "CASE WHEN src.group_name::text LIKE 'group:%' THEN src.group_name::text"
                       " ELSE 'group:' || src.group_name::text END, src.member::text",
                       c->princ.groups_query, "group_name, member",
                       " WHERE src.group_name IS NOT NULL ORDER BY 1, 2", "groups_query", e);
    if (rc)
        return rc;
    snprintf(fetch, sizeof fetch, "FETCH FORWARD %lld FROM ctxgate_groups",
             (long long)c->cfg.batch_rows);
    do {
        if ((rc = fetch_batch(db, fetch, "groups_query", &res, e)))
            goto done;
        n = PQntuples(res);
        for (i = 0; i < n; i++) {
            const char *g = fix_utf8(&fix[0], PQgetvalue(res, i, 0));
            const char *m = fix_utf8(&fix[1], PQgetvalue(res, i, 1));
            if (!g || !m)
                goto oom;
            if (have && strcmp(cur.data, g)) {
                if ((rc = emit_group(host, em, cur.data, &members, seen, gone, e)))
                    goto done;
                sl_clear(&members);
                have = 0;
            }
            if (!have) {
                ctx_buf_reset(&cur);
                if (ctx_buf_puts(&cur, g))
                    goto oom;
                have = 1;
            }
            if (PQgetisnull(res, i, 1))
                continue;
            if (!strcmp(m, "everyone")) {
                /* Everyone is implied for every user; it is not a member. */
                pg_log(host, em, CTX_CONN_LOG_WARN, "principals.groups_query: %s lists"
                       " \"everyone\" as a member; ignored", g);
                continue;
            }
            if (!strncmp(m, "group:", 6) || !strncmp(m, "user:", 5))
                rc = add_principal(&members, NULL, m, strlen(m));
            else
                rc = add_principal(&members, "user:", m, strlen(m));
            if (rc)
                goto oom;
        }
    } while (n == c->cfg.batch_rows);
    if (have && (rc = emit_group(host, em, cur.data, &members, seen, gone, e)))
        goto done;
    sl_clear(&members);
    {
        const char *name;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(gone, tmp, name, v) {
            if (strncmp(name, "group:", 6))
                continue;
            pg_log(host, em, CTX_CONN_LOG_INFO, "principals: %s is gone from groups_query;"
                   " its members are cleared", name);
            if ((rc = emit_group(host, em, name, &members, NULL, NULL, e)))
                goto done;
        }
    }
    rc = CTX_CONN_OK;
    goto done;
oom:
    rc = pg_err(e, CTX_CONN_ENOMEM, "out of memory");
done:
    PQclear(res);
    ctx_buf_free(&cur);
    ctx_buf_free(&fix[0]);
    ctx_buf_free(&fix[1]);
    sl_free(&members);
    return rc;
}

/*
 * read_principals - users then groups, in one snapshot; one STATE at the
 * end: {"groups": [...]}, the groups this read emitted, so the next read
 * can clear the members of groups that disappeared.
 */
static int read_principals(const pg_conn *c, PGconn *db, const char *state,
                           const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    json_t *old = state ? json_loads(state, 0, NULL) : NULL;
    json_t *gone = json_object(), *seen = json_array(), *st = NULL, *v;
    char *text = NULL;
    size_t i;
    int rc;

    if (!gone || !seen) {
        rc = pg_err(e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    json_array_foreach(json_object_get(old, "groups"), i, v)
        if (json_is_string(v))
            json_object_set(gone, json_string_value(v), json_true());
    if ((rc = exec_cmd(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "BEGIN", e)))
        goto done;
    if (c->princ.users_query && (rc = read_users(c, db, host, em, e)))
        goto done;
    if (c->princ.groups_query && (rc = read_groups(c, db, host, em, seen, gone, e)))
        goto done;
    if ((rc = exec_cmd(db, "COMMIT", "COMMIT", e)))
        goto done;
    st = json_pack("{s:O}", "groups", seen);
    if (!st || !(text = json_dumps(st, JSON_COMPACT))) {
        rc = pg_err(e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    rc = host->xState(em, "principals", text)
             ? pg_err(e, CTX_CONN_ECANCELED, "stopped by the host")
             : CTX_CONN_OK;
done:
    free(text);
    json_decref(st);
    json_decref(seen);
    json_decref(gone);
    json_decref(old);
    return rc;
}

/* ---- the vtable ---- */

static const pg_stream_cfg *find_stream(const pg_conn *c, const char *name, size_t *idx)
{
    for (size_t i = 0; i < c->cfg.streams.n; i++) {
        const pg_stream_cfg *s = (const pg_stream_cfg *)c->cfg.streams.v + i;
        if (!strcmp(s->name, name)) {
            *idx = i;
            return s;
        }
    }
    return NULL;
}

static int pg_read(void *conn, const char *stream, const char *state, int full,
                   const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    const pg_conn *c = conn;
    const pg_stream_cfg *s = NULL;
    PGconn *db = NULL;
    pg_reader r;
    size_t si = 0;
    int rc;

    if (strcmp(stream, "principals") || !c->has_princ) {
        if (!(s = find_stream(c, stream, &si)))
            return pg_err(e, CTX_CONN_EINVAL, "no stream \"%s\" in this source's config",
                          stream);
    }
    if ((rc = pg_connect(c, &db, e)))
        return rc;
    if (!s) {
        rc = read_principals(c, db, state, host, em, e);
    } else {
        memset(&r, 0, sizeof r);
        r.c = c;
        r.s = s;
        r.si = si;
        r.db = db;
        r.host = host;
        r.em = em;
        r.e = e;
        rc = read_stream(&r, state, full);
        ctx_buf_free(&r.cur_ts);
        ctx_buf_free(&r.cur_id);
        ctx_buf_free(&r.body);
        ctx_buf_free(&r.url);
        ctx_buf_free(&r.acl_text);
        sl_free(&r.allow);
        sl_free(&r.deny);
        sl_free(&r.labels);
    }
    /* Closing the connection also ends an open transaction. */
    PQfinish(db);
    return rc;
}

/*
 * pg_check - connect, run a trivial query, then describe every stream and
 * principals query (LIMIT 0) so a wrong table or column shows up here.
 */
static int pg_check(void *conn, ctx_conn_error *e)
{
    const pg_conn *c = conn;
    PGconn *db = NULL;
    PGresult *res = NULL;
    pg_reader r;
    size_t i;
    int rc;

    if ((rc = pg_connect(c, &db, e)))
        return rc;
    res = PQexec(db, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[400];
        res_message(db, res, msg, sizeof msg);
        rc = pg_err(e, CTX_CONN_ESOURCE, "conninfo: SELECT 1 failed: %s", msg);
        goto done;
    }
    if ((rc = exec_cmd(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "BEGIN", e)))
        goto done;
    for (i = 0; i < c->cfg.streams.n; i++) {
        memset(&r, 0, sizeof r);
        r.c = c;
        r.s = (const pg_stream_cfg *)c->cfg.streams.v + i;
        r.si = i;
        r.db = db;
        r.e = e;
        PQclear(res);
        if ((rc = describe(&r, &res)))
            goto done;
    }
    if (c->princ.users_query &&
        (rc = declare_query(db, "ctxgate_users", "*", c->princ.users_query,
                            "account, email, display_name", " LIMIT 0", "users_query", e)))
        goto done;
    if (c->princ.groups_query &&
        (rc = declare_query(db, "ctxgate_groups", "*", c->princ.groups_query,
                            "group_name, member", " LIMIT 0", "groups_query", e)))
        goto done;
    rc = exec_cmd(db, "COMMIT", "COMMIT", e);
done:
    PQclear(res);
    PQfinish(db);
    return rc;
}

static int pg_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    const pg_conn *c = conn;
    size_t i;
    int stop;

    if (c->has_princ && fn(arg, "principals", "{\"kind\":\"principals\"}"))
        return pg_err(e, CTX_CONN_ECANCELED, "discover stopped by the host");
    for (i = 0; i < c->cfg.streams.n; i++) {
        const pg_stream_cfg *s = (const pg_stream_cfg *)c->cfg.streams.v + i;
        json_t *d = json_pack("{s:s,s:s,s:b}", "kind", "documents",
                              s->table ? "table" : "query", s->table ? s->table : s->query,
                              "incremental", s->updated_at != NULL);
        char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;
        json_decref(d);
        if (!text)
            return pg_err(e, CTX_CONN_ENOMEM, "out of memory");
        stop = fn(arg, s->name, text);
        free(text);
        if (stop)
            return pg_err(e, CTX_CONN_ECANCELED, "discover stopped by the host");
    }
    return CTX_CONN_OK;
}

const ctx_connector ctx__postgres_connector = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_connector), "postgres", "1.0.0",
    pg_spec, pg_open, pg_check, pg_discover, pg_read, pg_close,
};
