/*
 * sqlmap.c - the stream mapping shared by the SQL connectors: config
 * tables and checks, cursor state, ACL splitting, rows into RECORDs and
 * principals rows into PRINCIPALs (see sqlmap.h).
 */
#include "sqlmap.h"
#include "../../core/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MAX_MS 10000
#define MAX_BODY_COLS 64

/* ---- configuration ---- */

const ctx_opt sqlmap_stream_opts[] = {
    {"name", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, name), 1,
     "stream name (letters, digits, '_', '-', '.'; not \"principals\")", NULL, 0},
    {"table", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, table), 0,
     "table or view to read, \"name\" or \"schema.name\" (or use query)", NULL, 0},
    {"query", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, query), 0,
     "a SELECT to read instead of a table; it is wrapped as a subselect", NULL, 0},
    {"id", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, id), 1,
     "column holding the row's unique key", NULL, 0},
    {"title", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, title), 0,
     "column holding the title", NULL, 0},
    {"body", CTX_OPT_STRLIST, NULL, offsetof(sqlmap_stream, body), 0,
     "column, or array of columns joined with blank lines, holding the text", NULL, 0},
    {"url", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, url), 0,
     "column holding the row's link (or use url_template)", NULL, 0},
    {"url_template", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, url_template), 0,
     "link built from the id, e.g. \"https://crm.example.com/t/{id}\"", NULL, 0},
    {"updated_at", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, updated_at), 0,
     "cursor column (timestamp, timestamptz, date or integer); without it every"
     " read is a full read", NULL, 0},
    {"lookback_seconds", CTX_OPT_INT, "0", offsetof(sqlmap_stream, lookback_seconds), 0,
     "also re-read rows whose updated_at is this close before the cursor (late"
     " commits)", NULL, 0},
    {"allow_users", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, allow_users), 0,
     "column (text[] or delimited text) of users who may read the row", NULL, 0},
    {"allow_groups", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, allow_groups), 0,
     "column (text[] or delimited text) of groups who may read the row", NULL, 0},
    {"deny_users", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, deny_users), 0,
     "column (text[] or delimited text) of users who may not read the row", NULL, 0},
    {"deny_groups", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, deny_groups), 0,
     "column (text[] or delimited text) of groups who may not read the row", NULL, 0},
    {"allow_everyone", CTX_OPT_JSON, NULL, offsetof(sqlmap_stream, allow_everyone), 0,
     "boolean column, or true: every authenticated user may read the row", NULL, 0},
    {"labels", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, labels), 0,
     "column (text[] or delimited text) of labels such as \"confidential\"", NULL, 0},
    {"acl_delimiter", CTX_OPT_STRING, ",", offsetof(sqlmap_stream, acl_delimiter), 0,
     "separator inside delimited ACL and label strings", NULL, 0},
    {"deleted", CTX_OPT_STRING, NULL, offsetof(sqlmap_stream, deleted), 0,
     "soft-delete column: boolean, or a timestamp that is NULL while the row lives",
     NULL, 0},
    {"metadata", CTX_OPT_STRLIST, NULL, offsetof(sqlmap_stream, metadata), 0,
     "extra columns stored in the record's metadata JSON (at most 50)", NULL, 0},
    CTX_OPT_END,
};

const ctx_opt sqlmap_principals_opts[] = {
    {"groups_query", CTX_OPT_STRING, NULL, offsetof(sqlmap_principals, groups_query), 0,
     "SELECT returning (group_name, member); a member \"group:x\" is a nested group,"
     " anything else a user", NULL, 0},
    {"users_query", CTX_OPT_STRING, NULL, offsetof(sqlmap_principals, users_query), 0,
     "SELECT returning (account, email, display_name); an account is mapped to"
     " user:<email> when the two differ", NULL, 0},
    CTX_OPT_END,
};

void sqlmap_log(const ctx_host *host, ctx_emitter *em, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    host->xLog(em, level, msg);
}

/* check_stream - the rules the option table cannot express, for streams[i]. */
static int check_stream(const sqlmap_cfg *g, size_t i, ctx_error *err)
{
    const sqlmap_stream *s = (const sqlmap_stream *)g->streams.v + i;
    const json_t *ev = s->allow_everyone;
    size_t j;

    if (!ctx_valid_name(s->name) || !strcmp(s->name, "principals"))
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].name: \"%s\" is not a valid"
                             " stream name; use letters, digits, '_', '-' or '.' (and not"
                             " \"principals\")", i, s->name);
    for (j = 0; j < i; j++)
        if (!strcmp(((const sqlmap_stream *)g->streams.v)[j].name, s->name))
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
    if (s->body.n > MAX_BODY_COLS)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].body: %zu columns; at most %d",
                             i, s->body.n, MAX_BODY_COLS);
    if (s->metadata.n > SQLMAP_MAX_METADATA)
        return ctx_error_set(err, CTX_ECONFIG, "streams[%zu].metadata: %zu columns; at"
                             " most %d", i, s->metadata.n, SQLMAP_MAX_METADATA);
    return CTX_OK;
}

int sqlmap_check(sqlmap_cfg *g, int64_t def_state_every, sqlmap_conf *out, ctx_error *err)
{
    size_t i;
    int rc;

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
    if (g->state_every < 0)
        return ctx_error_set(err, CTX_ECONFIG, "state_every: must be >= 1");
    if (!g->state_every)
        g->state_every = def_state_every;
    if (g->principals) {
        if ((rc = ctx_opts_parse(sqlmap_principals_opts, g->principals, &out->princ,
                                 "principals", err)))
            return rc;
        out->has_princ = 1;
        if (!out->princ.groups_query && !out->princ.users_query)
            return ctx_error_set(err, CTX_ECONFIG, "principals: set groups_query,"
                                 " users_query or both");
    }
    if (!g->streams.n && !out->has_princ)
        return ctx_error_set(err, CTX_ECONFIG, "streams: configure at least one stream"
                             " (or principals)");
    for (i = 0; i < g->streams.n; i++)
        if ((rc = check_stream(g, i, err)))
            return rc;
    return CTX_OK;
}

void sqlmap_conf_free(sqlmap_conf *c)
{
    ctx_opts_free(sqlmap_principals_opts, &c->princ);
    c->has_princ = 0;
}

char *sqlmap_spec(const ctx_opt *table, const char *title)
{
    json_t *s = ctx_opts_schema(table, title);
    json_t *props = json_object_get(s, "properties");
    json_t *items = json_object_get(json_object_get(props, "streams"), "items");
    json_t *p = ctx_opts_schema(sqlmap_principals_opts, NULL);
    char *text;

    json_object_set_new(p, "description",
                        json_string("users and groups read as the stream \"principals\""));
    json_object_set_new(props, "principals", p);
    json_object_set_new(json_object_get(items, "properties"), "allow_everyone",
                        json_pack("{s:[{s:s},{s:s}],s:s}", "anyOf", "type", "string",
                                  "type", "boolean", "description",
                                  "boolean column, or true: every authenticated user"
                                  " may read the row"));
    text = ctx_json_text(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(s);
    return text;
}

int sqlmap_open(const ctx_opt *table, size_t conn_size, int (*check)(void *conn, ctx_error *err),
                void (*close_fn)(void *conn), const char *config_json, void **pconn,
                ctx_conn_error *e)
{
    ctx_error err;
    void *c;
    int rc;

    *pconn = NULL;
    if (!(c = ctx_calloc(1, conn_size)))
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    if ((rc = ctx_opts_parse_text(table, config_json, c, &err))) {
        ctx_free(c);
        return conn_errf(e, rc, "%s", err.text);
    }
    if ((rc = check(c, &err))) {
        close_fn(c);
        return conn_errf(e, rc, "%s", err.text);
    }
    *pconn = c;
    return CTX_CONN_OK;
}

int sqlmap_pick(const sqlmap_cfg *g, const sqlmap_conf *c, const char *stream,
                const sqlmap_stream **s, size_t *si, ctx_conn_error *e)
{
    *s = NULL;
    *si = 0;
    if (!strcmp(stream, "principals") && c->has_princ)
        return CTX_CONN_OK;
    if (!(*s = sqlmap_find_stream(g, stream, si)))
        return conn_errf(e, CTX_CONN_EINVAL, "no stream \"%s\" in this source's config",
                          stream);
    return CTX_CONN_OK;
}

const sqlmap_stream *sqlmap_find_stream(const sqlmap_cfg *g, const char *name, size_t *idx)
{
    for (size_t i = 0; i < g->streams.n; i++) {
        const sqlmap_stream *s = (const sqlmap_stream *)g->streams.v + i;
        if (!strcmp(s->name, name)) {
            *idx = i;
            return s;
        }
    }
    return NULL;
}

int sqlmap_discover(const sqlmap_cfg *g, const sqlmap_conf *c, ctx_stream_fn fn, void *arg,
                    ctx_conn_error *e)
{
    size_t i;
    int stop;

    if (c->has_princ && fn(arg, "principals", "{\"kind\":\"principals\"}"))
        return conn_errf(e, CTX_CONN_ECANCELED, "discover stopped by the host");
    for (i = 0; i < g->streams.n; i++) {
        const sqlmap_stream *s = (const sqlmap_stream *)g->streams.v + i;
        json_t *d = json_pack("{s:s,s:s,s:b}", "kind", "documents",
                              s->table ? "table" : "query", s->table ? s->table : s->query,
                              "incremental", s->updated_at != NULL);
        char *text = d ? ctx_json_text(d, JSON_COMPACT) : NULL;
        json_decref(d);
        if (!text)
            return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        stop = fn(arg, s->name, text);
        free(text);
        if (stop)
            return conn_errf(e, CTX_CONN_ECANCELED, "discover stopped by the host");
    }
    return CTX_CONN_OK;
}

/* ---- passwords and retries ---- */

int sqlmap_password(const sqlmap_cfg *g, char **pw, ctx_conn_error *e)
{
    const char *v;
    char *text = NULL;
    size_t len = 0;

    *pw = NULL;
    if (g->password_env) {
        if (!(v = getenv(g->password_env)))
            return conn_errf(e, CTX_CONN_ECONFIG, "password_env: the environment variable"
                              " \"%s\" is not set; export it before the sync",
                              g->password_env);
        if (!(*pw = ctx_strdup(v)))
            return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        return CTX_CONN_OK;
    }
    if (!g->password_file)
        return CTX_CONN_OK;
    if (ctx_read_file(g->password_file, &text, &len))
        return conn_errf(e, CTX_CONN_ECONFIG, "password_file: cannot read %s: %s",
                          g->password_file, strerror(errno));
    len = strcspn(text, "\r\n");
    text[len] = '\0';
    *pw = text;
    return CTX_CONN_OK;
}

const char *sqlmap_password_hint(const sqlmap_cfg *g)
{
    if (g->password_env)
        return "check password_env";
    if (g->password_file)
        return "check password_file";
    return "set password_env or password_file";
}

void sqlmap_backoff(int64_t *ms)
{
    struct timespec ts = {(time_t)(*ms / 1000), (long)(*ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    *ms = *ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *ms * 2;
}

/* ---- ACL values ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * add_principal - add one ACL value: "everyone" and values that already
 * carry "user:" or "group:" go in as they are; others get prefix (NULL for
 * labels, which are not principals). Blank values are skipped.
 */
static int add_principal(ctx_strvec *l, const char *prefix, const char *s, size_t len)
{
    while (len && is_space(*s))
        s++, len--;
    while (len && is_space(s[len - 1]))
        len--;
    if (!len)
        return CTX_OK;
    if (prefix && ((len == 8 && !memcmp(s, "everyone", 8)) ||
                   (len > 5 && !memcmp(s, "user:", 5)) || (len > 6 && !memcmp(s, "group:", 6))))
        prefix = NULL;
    return ctx_strvec_add(l, prefix, s, len);
}

/* add_split - each piece of s[0..len) between delimiters. */
static int add_split(ctx_strvec *l, const char *prefix, const char *s, size_t len,
                     const char *delim)
{
    const char *p = s, *end = s + len;
    size_t dl = strlen(delim);
    int rc = CTX_OK;

    while (!rc && p <= end) {
        const char *q = memmem(p, (size_t)(end - p), delim, dl);
        if (!q)
            q = end;
        rc = add_principal(l, prefix, p, (size_t)(q - p));
        p = q + dl;
    }
    return rc;
}

/* add_json - an array (of strings or numbers), a string (split) or a number. */
static int add_json(ctx_strvec *l, const char *prefix, const json_t *j, const char *delim)
{
    char num[32];
    size_t i;
    json_t *v;
    int rc;

    if (json_is_string(j))
        return add_split(l, prefix, json_string_value(j), json_string_length(j), delim);
    if (json_is_integer(j)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(j));
        return add_principal(l, prefix, num, strlen(num));
    }
    json_array_foreach(j, i, v) {
        if (json_is_string(v))
            rc = add_principal(l, prefix, json_string_value(v), json_string_length(v));
        else if (json_is_integer(v))
            rc = add_json(l, prefix, v, delim);
        else
            rc = CTX_OK;
        if (rc)
            return rc;
    }
    return CTX_OK;
}

/*
 * add_pg_array - a PostgreSQL array literal "{a,"b c",NULL}" as drivers
 * print a text[] column; 0 when text is not one (then it is delimited).
 */
static int add_pg_array(ctx_strvec *l, const char *prefix, const char *s, size_t len,
                        ctx_buf *tmp, int *rc)
{
    size_t i = 1;

    if (len < 2 || s[0] != '{' || s[len - 1] != '}')
        return 0;
    *rc = CTX_OK;
    while (!*rc && i < len - 1) {
        int quoted = s[i] == '"';
        ctx_buf_reset(tmp);
        if (quoted) {
            for (i++; i < len - 1 && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < len - 1)
                    i++;
                if (ctx_buf_append(tmp, s + i, 1))
                    return *rc = CTX_ENOMEM, 1;
            }
            i++;
        } else {
            size_t st = i;
            while (i < len - 1 && s[i] != ',')
                i++;
            if (i - st == 4 && !memcmp(s + st, "NULL", 4))
                st = i;
            if (ctx_buf_append(tmp, s + st, i - st))
                return *rc = CTX_ENOMEM, 1;
        }
        if (tmp->len)
            *rc = add_principal(l, prefix, tmp->data, tmp->len);
        while (i < len - 1 && s[i] != ',')
            i++;
        i++;
    }
    return 1;
}

/*
 * add_acl_values - one ACL column's value. With acl_json it is the text of
 * a JSON value (postgres's to_json). Otherwise it is the column's text: a
 * JSON array "[...]", a PostgreSQL array literal "{...}", or a string split
 * at the delimiter.
 */
static int add_acl_values(sqlmap_reader *r, ctx_strvec *l, const char *prefix,
                          const char *text, size_t len)
{
    const char *delim = r->s->acl_delimiter;
    json_t *j;
    int rc = CTX_OK;

    /* Some databases hand out any bytes; the JSON parser wants UTF-8. */
    if (!ctx_utf8_valid(text, len)) {
        size_t nbad;
        ctx_buf_reset(&r->acl_text);
        if (ctx_utf8_repair(text, len, &r->acl_text, &nbad))
            return CTX_ENOMEM;
        text = r->acl_text.data;
        len = r->acl_text.len;
    }
    if (r->acl_json || (len && text[0] == '[')) {
        if (!(j = ctx_json_loadb(text, len, JSON_DECODE_ANY, NULL)))
            return r->acl_json ? CTX_OK : add_split(l, prefix, text, len, delim);
        rc = add_json(l, prefix, j, delim);
        json_decref(j);
        return rc;
    }
    {
        ctx_buf tmp = CTX_BUF_INIT;
        int done = add_pg_array(l, prefix, text, len, &tmp, &rc);
        ctx_buf_free(&tmp);
        if (done)
            return rc;
    }
    return add_split(l, prefix, text, len, delim);
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

/* ---- SQL text ---- */

int sqlmap_source(ctx_buf *b, const char *table, const char *query, sqlmap_ident_fn ident,
                  void *arg)
{
    size_t n;

    if (table) {
        const char *dot = strchr(table, '.');
        if (dot && (ident(b, table, (size_t)(dot - table), arg) || ctx_buf_puts(b, ".")))
            return CTX_ENOMEM;
        table = dot ? dot + 1 : table;
        return ident(b, table, strlen(table), arg) || ctx_buf_puts(b, " src") ? CTX_ENOMEM
                                                                                : CTX_OK;
    }
    n = strlen(query);
    while (n && (query[n - 1] == ';' || is_space(query[n - 1])))
        n--;
    return ctx_buf_puts(b, "(") || ctx_buf_append(b, query, n) || ctx_buf_puts(b, "\n) src")
               ? CTX_ENOMEM : CTX_OK;
}

/* ---- columns ---- */

static const char *const acl_key[SQLMAP_ACL_N] = {"allow_users", "allow_groups",
                                                  "deny_users", "deny_groups", "labels"};

static const char *acl_column(const sqlmap_stream *s, int k)
{
    switch (k) {
    case SQLMAP_ALLOW_USERS: return s->allow_users;
    case SQLMAP_ALLOW_GROUPS: return s->allow_groups;
    case SQLMAP_DENY_USERS: return s->deny_users;
    case SQLMAP_DENY_GROUPS: return s->deny_groups;
    default: return s->labels;
    }
}

static size_t add_col(sqlmap_col *out, size_t n, int role, int sub, const char *key,
                      const char *name)
{
    out[n].role = role;
    out[n].sub = sub;
    snprintf(out[n].key, sizeof out[n].key, "%s", key);
    out[n].name = name;
    return n + 1;
}

int sqlmap_perm_col(int role)
{
    return role == SQLMAP_COL_ID || role == SQLMAP_COL_ACL || role == SQLMAP_COL_EVERYONE ||
           role == SQLMAP_COL_DELETED;
}

size_t sqlmap_columns(const sqlmap_stream *s, sqlmap_col *out)
{
    char key[24];
    size_t n = 0, i;

    n = add_col(out, n, SQLMAP_COL_ID, 0, "id", s->id);
    if (s->updated_at)
        n = add_col(out, n, SQLMAP_COL_TS, 0, "updated_at", s->updated_at);
    if (s->title)
        n = add_col(out, n, SQLMAP_COL_TITLE, 0, "title", s->title);
    for (i = 0; i < s->body.n; i++) {
        snprintf(key, sizeof key, s->body.n > 1 ? "body[%zu]" : "body", i);
        n = add_col(out, n, SQLMAP_COL_BODY, (int)i, key, s->body.v[i]);
    }
    if (s->url)
        n = add_col(out, n, SQLMAP_COL_URL, 0, "url", s->url);
    for (i = 0; i < SQLMAP_ACL_N; i++)
        if (acl_column(s, (int)i))
            n = add_col(out, n, SQLMAP_COL_ACL, (int)i, acl_key[i], acl_column(s, (int)i));
    if (json_is_string(s->allow_everyone))
        n = add_col(out, n, SQLMAP_COL_EVERYONE, 0, "allow_everyone",
                    json_string_value(s->allow_everyone));
    if (s->deleted)
        n = add_col(out, n, SQLMAP_COL_DELETED, 0, "deleted", s->deleted);
    for (i = 0; i < s->metadata.n; i++) {
        snprintf(key, sizeof key, "metadata[%zu]", i);
        n = add_col(out, n, SQLMAP_COL_META, (int)i, key, s->metadata.v[i]);
    }
    return n;
}

int sqlmap_no_column(const sqlmap_reader *r, const char *key, const char *name,
                     const char *const *names, size_t n)
{
    char cols[200];
    size_t off = 0;

    cols[0] = '\0';
    for (size_t i = 0; i < n && off + 4 < sizeof cols; i++) {
        int w = snprintf(cols + off, sizeof cols - off, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= sizeof cols - off) {
            snprintf(cols + (off < sizeof cols - 5 ? off : sizeof cols - 5), 5, ", ...");
            break;
        }
        off += (size_t)w;
    }
    return conn_errf(r->e, CTX_CONN_ECONFIG, "streams[%zu].%s: no column \"%s\" in %s%s%s;"
                      " its columns are: %s", r->si, key, name, r->s->table ? "table \"" : "",
                      r->s->table ? r->s->table : "the query's result",
                      r->s->table ? "\"" : "", cols);
}

int sqlmap_resolve(const sqlmap_reader *r, const sqlmap_col *cols, size_t ncols,
                   const char *const *names, size_t n, int *pos)
{
    for (size_t i = 0; i < ncols; i++) {
        pos[i] = -1;
        for (size_t j = 0; j < n && pos[i] < 0; j++)
            if (!strcmp(names[j], cols[i].name))
                pos[i] = (int)j;
        if (pos[i] < 0)
            return sqlmap_no_column(r, cols[i].key, cols[i].name, names, n);
    }
    return CTX_CONN_OK;
}

/* ---- the reader ---- */

void sqlmap_reader_init(sqlmap_reader *r, const sqlmap_stream *s, size_t si,
                        int64_t state_every, const ctx_host *host, ctx_emitter *em,
                        ctx_conn_error *e)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    r->si = si;
    r->state_every = state_every;
    r->host = host;
    r->em = em;
    r->e = e;
}

void sqlmap_reader_free(sqlmap_reader *r)
{
    ctx_buf_free(&r->cur_ts);
    ctx_buf_free(&r->cur_id);
    ctx_buf_free(&r->body);
    ctx_buf_free(&r->url);
    ctx_buf_free(&r->acl_text);
    ctx_strvec_free(&r->allow);
    ctx_strvec_free(&r->deny);
    ctx_strvec_free(&r->labels);
}

int sqlmap_load_state(sqlmap_reader *r, const char *state, int full)
{
    json_t *j, *ts, *id;
    int rc = CTX_CONN_OK;

    r->mode = SQLMAP_CURSOR_NONE;
    if (full || !state)
        return CTX_CONN_OK;
    j = ctx_json_loads(state, 0, NULL);
    ts = json_object_get(j, "cursor_ts");
    id = json_object_get(j, "cursor_id");
    if (!json_is_object(j)) {
        sqlmap_log(r->host, r->em, CTX_CONN_LOG_WARN, "stream \"%s\": the saved state is not"
                   " a JSON object; reading from the beginning", r->s->name);
    } else if (r->s->updated_at && json_is_string(ts) && json_is_string(id)) {
        r->mode = SQLMAP_CURSOR_INCR;
    } else if (!r->s->updated_at && json_is_string(id) &&
               json_is_true(json_object_get(j, "partial"))) {
        r->mode = SQLMAP_CURSOR_RESUME;
    }
    if (r->mode != SQLMAP_CURSOR_NONE) {
        ctx_buf_reset(&r->cur_id);
        ctx_buf_reset(&r->cur_ts);
        if (ctx_buf_puts(&r->cur_id, json_string_value(id)) ||
            (r->mode == SQLMAP_CURSOR_INCR && ctx_buf_puts(&r->cur_ts, json_string_value(ts))))
            rc = conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        r->have_cursor = 1;
    }
    json_decref(j);
    return rc;
}

/*
 * emit_state - checkpoint at the cursor of the last row emitted. final
 * marks the end of the pass: without updated_at the next run starts over.
 */
static int emit_state(sqlmap_reader *r, int final)
{
    json_t *j;
    char *text;
    int rc;

    if (r->perm)
        j = json_pack("{s:b}", "permissions", 1);
    else if (r->s->updated_at && r->have_cursor)
        j = json_pack("{s:s,s:s}", "cursor_ts", r->cur_ts.data ? r->cur_ts.data : "",
                      "cursor_id", r->cur_id.data ? r->cur_id.data : "");
    else if (!r->s->updated_at && r->have_cursor && !final)
        j = json_pack("{s:s,s:b}", "cursor_id", r->cur_id.data ? r->cur_id.data : "",
                      "partial", 1);
    else
        j = json_object();
    text = j ? ctx_json_text(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    rc = r->host->xState(r->em, r->s->name, text);
    free(text);
    r->since_state = 0;
    return rc ? conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host") : CTX_CONN_OK;
}

static int set_cursor(sqlmap_reader *r, const sqlmap_val *ts, const sqlmap_val *id)
{
    ctx_buf_reset(&r->cur_id);
    ctx_buf_reset(&r->cur_ts);
    if (ctx_buf_append(&r->cur_id, id->p, id->len) ||
        (ts && ctx_buf_append(&r->cur_ts, ts->p, ts->len)))
        return CTX_ENOMEM;
    r->have_cursor = 1;
    return CTX_OK;
}

/* emit - the record or delete of one row; the cursor has moved already. */
static int emit(sqlmap_reader *r, const sqlmap_row *row)
{
    const char *body = NULL;
    size_t body_len = 0, k;
    ctx_record rec;
    ctx_acl acl;

    if (row->deleted)
        return r->host->xDelete(r->em, r->s->name, row->id.p)
                   ? conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host")
                   : CTX_CONN_OK;

    if (row->nbody == 1) {
        body = row->body[0].p;
        body_len = body ? row->body[0].len : 0;
    } else if (row->nbody > 1) {
        ctx_buf_reset(&r->body);
        for (k = 0; k < row->nbody; k++) {
            if (!row->body[k].p || !row->body[k].len)
                continue;
            if ((r->body.len && ctx_buf_puts(&r->body, "\n\n")) ||
                ctx_buf_append(&r->body, row->body[k].p, row->body[k].len))
                return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        }
        body = r->body.data ? r->body.data : "";
        body_len = r->body.len;
    }

    ctx_strvec_clear(&r->allow);
    ctx_strvec_clear(&r->deny);
    ctx_strvec_clear(&r->labels);
    for (k = 0; k < SQLMAP_ACL_N; k++) {
        ctx_strvec *l = k == SQLMAP_LABELS ? &r->labels
                         : k == SQLMAP_DENY_USERS || k == SQLMAP_DENY_GROUPS ? &r->deny
                                                                             : &r->allow;
        const char *prefix = k == SQLMAP_LABELS ? NULL
                             : k == SQLMAP_ALLOW_USERS || k == SQLMAP_DENY_USERS ? "user:"
                                                                                 : "group:";
        if (!row->acl[k].p)
            continue;
        if (add_acl_values(r, l, prefix, row->acl[k].p, row->acl[k].len))
            return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
    }
    if ((json_is_true(r->s->allow_everyone) || row->everyone) &&
        ctx_strvec_add(&r->allow, NULL, "everyone", 8))
        return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");

    memset(&acl, 0, sizeof acl);
    acl.allow = (const char *const *)r->allow.v;
    acl.n_allow = r->allow.n;
    acl.deny = (const char *const *)r->deny.v;
    acl.n_deny = r->deny.n;
    acl.labels = (const char *const *)r->labels.v;
    acl.n_labels = r->labels.n;
    if (r->perm)
        return r->host->xAcl(r->em, r->s->name, row->id.p, &acl)
                   ? conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host")
                   : CTX_CONN_OK;

    memset(&rec, 0, sizeof rec);
    rec.stream = r->s->name;
    rec.id = row->id.p;
    rec.title = row->title.p ? row->title.p : "";
    rec.body = body ? body : "";
    rec.body_len = body_len;
    if (row->url.p) {
        rec.url = row->url.p;
    } else if (r->s->url_template) {
        if (build_url(&r->url, r->s->url_template, row->id.p))
            return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        rec.url = r->url.data;
    }
    rec.metadata_json = row->meta.p;
    rec.updated_at_ms = row->ts_ms;
    rec.acl = &acl;
    return r->host->xRecord(r->em, &rec)
               ? conn_errf(r->e, CTX_CONN_ECANCELED, "stopped by the host")
               : CTX_CONN_OK;
}

int sqlmap_emit_row(sqlmap_reader *r, const sqlmap_row *row)
{
    int rc;

    if (!row->id.p) {
        if (!r->null_ids++)
            sqlmap_log(r->host, r->em, CTX_CONN_LOG_WARN, "stream \"%s\": a row has a NULL"
                       " id (column \"%s\"); skipped", r->s->name, r->s->id);
        rc = CTX_CONN_OK;
    } else {
        if (r->perm)
            ; /* no cursor: an interrupted permission read starts over */
        else if (r->s->updated_at && !row->ts.p)
            r->null_ts++; /* sorts last; the cursor stays at the last dated row */
        else if (set_cursor(r, r->s->updated_at ? &row->ts : NULL, &row->id))
            return conn_errf(r->e, CTX_CONN_ENOMEM, "out of memory");
        if ((rc = emit(r, row)))
            return rc;
    }
    r->rows++;
    if (++r->since_state >= r->state_every)
        return emit_state(r, 0);
    return CTX_CONN_OK;
}

int sqlmap_finish(sqlmap_reader *r)
{
    if (r->null_ids)
        sqlmap_log(r->host, r->em, CTX_CONN_LOG_WARN, "stream \"%s\": skipped %lld rows with"
                   " a NULL id (column \"%s\")", r->s->name, (long long)r->null_ids, r->s->id);
    if (r->null_ts)
        sqlmap_log(r->host, r->em, CTX_CONN_LOG_WARN, "stream \"%s\": %lld rows have a NULL"
                   " updated_at (column \"%s\"); only full syncs read them again", r->s->name,
                   (long long)r->null_ts, r->s->updated_at);
    return emit_state(r, 1);
}

/* ---- principals ---- */

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

int sqlmap_principals_begin(sqlmap_princ_reader *p, const char *state, const ctx_host *host,
                            ctx_emitter *em, ctx_conn_error *e)
{
    json_t *old = state ? ctx_json_loads(state, 0, NULL) : NULL, *v;
    size_t i;

    memset(p, 0, sizeof *p);
    p->host = host;
    p->em = em;
    p->e = e;
    p->gone = json_object();
    p->seen = json_array();
    if (!p->gone || !p->seen) {
        json_decref(old);
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    }
    json_array_foreach(json_object_get(old, "groups"), i, v)
        if (json_is_string(v))
            json_object_set(p->gone, json_string_value(v), json_true());
    json_decref(old);
    return CTX_CONN_OK;
}

int sqlmap_user(sqlmap_princ_reader *p, const char *account, const char *email,
                const char *display_name)
{
    ctx_principal pr;
    ctx_buf id = CTX_BUF_INIT, maps = CTX_BUF_INIT;
    int rc;

    account = fix_utf8(&p->fix[0], account);
    email = fix_utf8(&p->fix[1], email);
    display_name = fix_utf8(&p->fix[2], display_name);
    if (!account || (strncmp(account, "user:", 5) && ctx_buf_puts(&id, "user:")) ||
        ctx_buf_puts(&id, account) ||
        (email && *email && (ctx_buf_puts(&maps, "user:") || ctx_buf_puts(&maps, email)))) {
        rc = conn_errf(p->e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    memset(&pr, 0, sizeof pr);
    pr.kind = CTX_PRINCIPAL_USER;
    pr.id = id.data;
    pr.email = email;
    pr.display_name = display_name;
    pr.maps_to = maps.data && strcmp(maps.data, id.data) ? maps.data : NULL;
    rc = p->host->xPrincipal(p->em, &pr) ? conn_errf(p->e, CTX_CONN_ECANCELED,
                                                      "stopped by the host")
                                         : CTX_CONN_OK;
done:
    ctx_buf_free(&id);
    ctx_buf_free(&maps);
    return rc;
}

/*
 * emit_group - one group with all its members. seen (the names emitted in
 * this read, for the next state) gains the name; gone (the previous read's
 * names) loses it.
 */
static int emit_group(sqlmap_princ_reader *p, const char *name, int track)
{
    ctx_principal pr;

    if (track && json_array_append_new(p->seen, json_string(name)))
        return conn_errf(p->e, CTX_CONN_ENOMEM, "out of memory");
    if (track)
        json_object_del(p->gone, name);
    memset(&pr, 0, sizeof pr);
    pr.kind = CTX_PRINCIPAL_GROUP;
    pr.id = name;
    pr.display_name = name + 6;
    pr.members = (const char *const *)p->members.v;
    pr.n_members = p->members.n;
    return p->host->xPrincipal(p->em, &pr)
               ? conn_errf(p->e, CTX_CONN_ECANCELED, "stopped by the host")
               : CTX_CONN_OK;
}

int sqlmap_group_row(sqlmap_princ_reader *p, const char *group, const char *member)
{
    ctx_buf name = CTX_BUF_INIT;
    int rc;

    group = fix_utf8(&p->fix[0], group);
    member = fix_utf8(&p->fix[1], member);
    if (!group || (strncmp(group, "group:", 6) && ctx_buf_puts(&name, "group:")) ||
        ctx_buf_puts(&name, group))
        goto oom;
    if (p->have && strcmp(p->cur.data, name.data)) {
        if ((rc = emit_group(p, p->cur.data, 1)))
            goto done;
        ctx_strvec_clear(&p->members);
        p->have = 0;
    }
    if (!p->have) {
        ctx_buf_reset(&p->cur);
        if (ctx_buf_puts(&p->cur, name.data))
            goto oom;
        p->have = 1;
    }
    rc = CTX_CONN_OK;
    if (!member)
        goto done;
    if (!strcmp(member, "everyone")) {
        /* Everyone is implied for every user; it is not a member. */
        sqlmap_log(p->host, p->em, CTX_CONN_LOG_WARN, "principals.groups_query: %s lists"
                   " \"everyone\" as a member; ignored", name.data);
        goto done;
    }
    if (!strncmp(member, "group:", 6) || !strncmp(member, "user:", 5))
        rc = add_principal(&p->members, NULL, member, strlen(member));
    else
        rc = add_principal(&p->members, "user:", member, strlen(member));
    if (rc)
        goto oom;
    goto done;
oom:
    rc = conn_errf(p->e, CTX_CONN_ENOMEM, "out of memory");
done:
    ctx_buf_free(&name);
    return rc;
}

int sqlmap_principals_end(sqlmap_princ_reader *p)
{
    const char *name;
    json_t *v, *st;
    char *text;
    void *tmp;
    int rc;

    if (p->have && (rc = emit_group(p, p->cur.data, 1)))
        return rc;
    p->have = 0;
    ctx_strvec_clear(&p->members);
    json_object_foreach_safe(p->gone, tmp, name, v) {
        if (strncmp(name, "group:", 6))
            continue;
        sqlmap_log(p->host, p->em, CTX_CONN_LOG_INFO, "principals: %s is gone from"
                   " groups_query; its members are cleared", name);
        if ((rc = emit_group(p, name, 0)))
            return rc;
    }
    st = json_pack("{s:O}", "groups", p->seen);
    text = st ? ctx_json_text(st, JSON_COMPACT) : NULL;
    json_decref(st);
    if (!text)
        return conn_errf(p->e, CTX_CONN_ENOMEM, "out of memory");
    rc = p->host->xState(p->em, "principals", text)
             ? conn_errf(p->e, CTX_CONN_ECANCELED, "stopped by the host")
             : CTX_CONN_OK;
    free(text);
    return rc;
}

void sqlmap_principals_free(sqlmap_princ_reader *p)
{
    json_decref(p->gone);
    json_decref(p->seen);
    ctx_buf_free(&p->cur);
    ctx_strvec_free(&p->members);
    for (int i = 0; i < 3; i++)
        ctx_buf_free(&p->fix[i]);
    memset(p, 0, sizeof *p);
}

int sqlmap_read_principals(const sqlmap_conf *c, const char *state, const ctx_host *host,
                           ctx_emitter *em, ctx_conn_error *e, sqlmap_query_fn run, void *arg)
{
    sqlmap_princ_reader pr;
    int rc;

    if ((rc = sqlmap_principals_begin(&pr, state, host, em, e)))
        goto done;
    if (c->princ.users_query && (rc = run(arg, &pr, 0)))
        goto done;
    if (c->princ.groups_query && (rc = run(arg, &pr, 1)))
        goto done;
    rc = sqlmap_principals_end(&pr);
done:
    sqlmap_principals_free(&pr);
    return rc;
}
