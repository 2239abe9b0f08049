/*
 * postgres.c - the PostgreSQL connector (libpq). Each configured stream is a
 * table or a SELECT, read through a server-side cursor inside one READ ONLY
 * REPEATABLE READ transaction and incrementally by an (updated_at, id) tuple
 * cursor; permissions, labels and soft deletes come from columns. Users and
 * groups come from two optional queries, read as the stream "principals".
 * The mapping of rows to messages is shared with odbc.c (../sql/sqlmap.h).
 *
 * Streams: "principals" (when configured), then one per streams[] entry.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/opts.h"
#include "../../core/util.h"
#include "../sdk/ctxgate/connector.h"
#include "../sql/sqlmap.h"

/* ---- configuration ---- */

typedef struct pg_cfg {
    char *conninfo;
    int64_t batch_rows;
    sqlmap_cfg sql;
} pg_cfg;

static const ctx_opt pg_opts[] = {
    {"conninfo", CTX_OPT_STRING, NULL, offsetof(pg_cfg, conninfo), 1,
     "libpq connection string or URI; keep the password out of it", NULL, 0},
    {"batch_rows", CTX_OPT_INT, "1000", offsetof(pg_cfg, batch_rows), 0,
     "rows fetched from the server-side cursor per round trip", NULL, 0},
    SQLMAP_OPTS(pg_cfg, sql),
    CTX_OPT_END,
};

typedef struct pg_conn {
    pg_cfg cfg;
    sqlmap_conf sc;
} pg_conn;

/* Type OIDs (catalog/pg_type_d.h is a server header; these never change). */
enum {
    OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_DATE = 1082,
    OID_TIMESTAMP = 1114, OID_TIMESTAMPTZ = 1184, OID_NUMERIC = 1700,
};


/* check_cfg - cross-key rules of the whole config. */
static int check_cfg(void *conn, ctx_error *err)
{
    pg_conn *c = conn;
    pg_cfg *g = &c->cfg;
    PQconninfoOption *opts;
    char *why = NULL;
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
    if (g->batch_rows < 1 || g->batch_rows > 1000000)
        return ctx_error_set(err, CTX_ECONFIG, "batch_rows: %lld is out of range; use"
                             " 1..1000000", (long long)g->batch_rows);
    return sqlmap_check(&g->sql, g->batch_rows, &c->sc, err);
}

static const char *pg_spec(void)
{
    static char *spec;
    if (!spec)
        spec = sqlmap_spec(pg_opts, "postgres connector");
    return spec;
}

static void pg_close(void *conn)
{
    pg_conn *c = conn;
    if (!c)
        return;
    sqlmap_conf_free(&c->sc);
    ctx_opts_free(pg_opts, &c->cfg);
    ctx_free(c);
}

static int pg_open(const char *config_json, void **pconn, ctx_conn_error *e)
{
    return sqlmap_open(pg_opts, sizeof(pg_conn), check_cfg, pg_close, config_json, pconn, e);
}


/* ---- connecting ---- */


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

static int is_auth_failure(const char *msg)
{
    return strstr(msg, "authentication failed") || strstr(msg, "no password supplied") ||
           strstr(msg, "no pg_hba.conf entry") || strstr(msg, "password is required") ||
           strstr(msg, "permission denied for database") ||
           (strstr(msg, "role \"") && strstr(msg, "does not exist"));
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
        rc = conn_errf(e, CTX_CONN_ESOURCE, "conninfo: session setup failed: %s", msg);
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
    int64_t attempt, backoff = SQLMAP_BACKOFF_MS;
    int rc, n = 0;

    *out = NULL;
    if ((rc = sqlmap_password(&c->cfg.sql, &pw, e)))
        return rc;
    /* Keywords after dbname override what the expanded conninfo says. */
    kw[n] = "dbname", val[n++] = c->cfg.conninfo;
    kw[n] = "fallback_application_name", val[n++] = "ctxgate";
    if (pw)
        kw[n] = "password", val[n++] = pw;
    if (c->cfg.sql.connect_timeout) {
        snprintf(timeout, sizeof timeout, "%lld", (long long)c->cfg.sql.connect_timeout);
        kw[n] = "connect_timeout", val[n++] = timeout;
    }
    kw[n] = NULL, val[n] = NULL;

    for (attempt = 0;; attempt++) {
        db = PQconnectdbParams(kw, val, 1);
        if (!db) {
            rc = conn_errf(e, CTX_CONN_ENOMEM, "conninfo: out of memory");
            goto done;
        }
        if (PQstatus(db) == CONNECTION_OK)
            break;
        flatten(PQerrorMessage(db), msg, sizeof msg);
        ctx_scrub(msg, pw);
        if (is_auth_failure(msg)) {
            rc = conn_errf(e, CTX_CONN_EAUTH, "conninfo: %s; %s", msg,
                           sqlmap_password_hint(&c->cfg.sql));
            goto done;
        }
        if (attempt >= c->cfg.sql.retries) {
            const char *h = PQhost(db), *p = PQport(db);
            snprintf(host, sizeof host, "%s", h && *h ? h : "(default)");
            snprintf(port, sizeof port, "%s", p && *p ? p : "5432");
            rc = conn_errf(e, CTX_CONN_ESOURCE, "conninfo: cannot connect to host \"%s\" port"
                        " %s (%lld attempt%s): %s", host, port, (long long)attempt + 1,
                        attempt ? "s" : "", msg);
            goto done;
        }
        PQfinish(db);
        db = NULL;
        sqlmap_backoff(&backoff);
    }
    if ((rc = session_setup(db, e)))
        goto done;
    *out = db;
    db = NULL;
    rc = CTX_CONN_OK;
done:
    if (db)
        PQfinish(db);
    ctx_wipe_free(pw);
    return rc;
}

/* ---- SQL text ---- */

/* pg_ident - the identifier, quoted by libpq (a sqlmap_ident_fn; arg is the PGconn). */
static int pg_ident(ctx_buf *b, const char *name, size_t len, void *db)
{
    char *q = PQescapeIdentifier(db, name, len);
    int rc;
    if (!q)
        return CTX_ENOMEM;
    rc = ctx_buf_puts(b, q);
    PQfreemem(q);
    return rc;
}

static int append_col(ctx_buf *b, PGconn *db, const char *name)
{
    return ctx_buf_puts(b, "src.") || pg_ident(b, name, strlen(name), db) ? CTX_ENOMEM : CTX_OK;
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
        rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: %s", what, msg);
    }
    PQclear(res);
    return rc;
}

/* ---- the principals queries' cursors ---- */

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
        sqlmap_source(&sql, NULL, query, pg_ident, db) || ctx_buf_printf(&sql, "(%s)%s", cols, order)) {
        ctx_buf_free(&sql);
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    }
    res = PQexec(db, sql.data);
    ctx_buf_free(&sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        res_message(db, res, msg, sizeof msg);
        rc = conn_errf(e, res_is(res, "42601") ? CTX_CONN_ECONFIG : CTX_CONN_ESOURCE,
                    "principals.%s: %s", key, msg);
    }
    PQclear(res);
    return rc;
}
/* ---- reading a document stream ---- */

/* Where each configured column lands in the SELECT list; -1 when absent. */
typedef struct pg_plan {
    int id, ts, ts_ms, title, body, nbody, url, acl[SQLMAP_ACL_N], everyone, deleted, meta;
    unsigned ts_type;          /* type OID of updated_at, 0 without one */
    unsigned deleted_type;     /* type OID of deleted, 0 without one */
} pg_plan;

static void plan_reset(pg_plan *p)
{
    p->id = p->ts = p->ts_ms = p->title = p->body = p->url = -1;
    p->everyone = p->deleted = p->meta = -1;
    for (int k = 0; k < SQLMAP_ACL_N; k++)
        p->acl[k] = -1;
    p->nbody = 0;
    p->ts_type = p->deleted_type = 0;
}

typedef struct pg_reader {
    const pg_conn *c;
    PGconn *db;
    sqlmap_reader m;           /* the stream, the cursor, the emitting */
    pg_plan p;
} pg_reader;

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

/* wrong_type - the error for a column of a type the key cannot use. */
static int wrong_type(pg_reader *r, const char *key, const char *col, unsigned oid,
                      const char *use)
{
    char tn[64];
    type_name(r->db, oid, tn, sizeof tn);
    return conn_errf(r->m.e, CTX_CONN_ECONFIG, "streams[%zu].%s: column \"%s\" is %s; use %s",
                  r->m.si, key, col, tn, use);
}

/*
 * describe - run the source with LIMIT 0 to learn its columns, check every
 * configured column against them and note the types build_select needs.
 * Errors name the config key.
 */
static int describe(pg_reader *r)
{
    const sqlmap_stream *s = r->m.s;
    sqlmap_col cols[SQLMAP_MAX_COLS];
    int pos[SQLMAP_MAX_COLS];
    const char **names = NULL;
    ctx_buf sql = CTX_BUF_INIT;
    PGresult *res;
    char msg[400];
    size_t i, ncols = sqlmap_columns(s, cols);
    int rc = CTX_CONN_OK, n;

    plan_reset(&r->p);
    if (ctx_buf_puts(&sql, "SELECT * FROM ") || sqlmap_source(&sql, s->table, s->query, pg_ident, r->db) ||
        ctx_buf_puts(&sql, " LIMIT 0")) {
        ctx_buf_free(&sql);
        return conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
    }
    res = PQexec(r->db, sql.data);
    ctx_buf_free(&sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        res_message(r->db, res, msg, sizeof msg);
        if (PQstatus(r->db) == CONNECTION_BAD)
            rc = conn_errf(r->m.e, CTX_CONN_ESOURCE, "streams[%zu]: connection to the server"
                        " lost: %s", r->m.si, msg);
        else
            rc = conn_errf(r->m.e, res_is(res, "42601") ? CTX_CONN_ECONFIG : CTX_CONN_ESOURCE,
                        "streams[%zu].%s: %s (stream \"%s\")", r->m.si,
                        s->table ? "table" : "query", msg, s->name);
        PQclear(res);
        return rc;
    }
    n = PQnfields(res);
    if (!(names = ctx_calloc((size_t)n + 1, sizeof *names))) {
        rc = conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < n; k++)
        names[k] = PQfname(res, k);
    if ((rc = sqlmap_resolve(&r->m, cols, ncols, names, (size_t)n, pos)))
        goto done;
    for (i = 0; i < ncols && !rc; i++) {
        unsigned oid = PQftype(res, pos[i]);
        if (cols[i].role == SQLMAP_COL_TS) {
            r->p.ts_type = oid;
            if (!ts_type_name(oid))
                rc = wrong_type(r, "updated_at", cols[i].name, oid,
                                "a timestamp, timestamptz, date or integer column");
        } else if (cols[i].role == SQLMAP_COL_EVERYONE && oid != OID_BOOL) {
            rc = wrong_type(r, "allow_everyone", cols[i].name, oid,
                            "a boolean column or true");
        } else if (cols[i].role == SQLMAP_COL_DELETED) {
            r->p.deleted_type = oid;
            if (oid != OID_BOOL && !is_time(oid))
                rc = wrong_type(r, "deleted", cols[i].name, oid,
                                "a boolean, or a timestamp that is NULL while the row lives");
        }
    }
done:
    ctx_free(names);
    PQclear(res);
    return rc;
}

/*
 * build_select - the cursor's query: the configured columns in
 * sqlmap_columns order (positions recorded in r->p), the cursor condition
 * and the order. ACL and label columns go through to_json so a text[] and a
 * delimited string arrive in one parseable form. *nparams receives how many
 * of $1/$2 the query uses.
 */
static int build_select(pg_reader *r, ctx_buf *b, int *nparams)
{
    const sqlmap_stream *s = r->m.s;
    sqlmap_col cols[SQLMAP_MAX_COLS];
    PGconn *db = r->db;
    size_t i, ncols = sqlmap_columns(s, cols);
    int n = 0, bad = 0;

    *nparams = 0;
    for (i = 0; i < ncols; i++) {
        const sqlmap_col *col = &cols[i];
        if (r->m.perm && !sqlmap_perm_col(col->role))
            continue; /* a permission read never reads content */
        if (col->role == SQLMAP_COL_META && col->sub) {
            bad |= ctx_buf_puts(b, ", ") || append_literal(b, db, col->name) ||
                   ctx_buf_puts(b, ", ") || append_col(b, db, col->name);
            continue;
        }
        bad |= ctx_buf_puts(b, n ? ", " : "SELECT ");
        switch (col->role) {
        case SQLMAP_COL_TS:
            bad |= append_col(b, db, col->name);
            r->p.ts = n++;
            if (is_time(r->p.ts_type)) {
                bad |= ctx_buf_puts(b, ", CASE WHEN isfinite(") || append_col(b, db, col->name) ||
                       ctx_buf_puts(b, ") THEN (extract(epoch FROM ") ||
                       append_col(b, db, col->name) || ctx_buf_puts(b, ") * 1000)::bigint END");
                r->p.ts_ms = n++;
            }
            continue;
        case SQLMAP_COL_ACL:
            bad |= ctx_buf_puts(b, "to_json(") || append_col(b, db, col->name) ||
                   ctx_buf_puts(b, ")::text");
            r->p.acl[col->sub] = n++;
            continue;
        case SQLMAP_COL_EVERYONE:
            bad |= ctx_buf_puts(b, "(") || append_col(b, db, col->name) ||
                   ctx_buf_puts(b, " IS TRUE)");
            r->p.everyone = n++;
            continue;
        case SQLMAP_COL_DELETED:
            bad |= ctx_buf_puts(b, "(") || append_col(b, db, col->name) ||
                   ctx_buf_puts(b, r->p.deleted_type == OID_BOOL ? " IS TRUE)" : " IS NOT NULL)");
            r->p.deleted = n++;
            continue;
        case SQLMAP_COL_META:
            bad |= ctx_buf_puts(b, "json_build_object(") || append_literal(b, db, col->name) ||
                   ctx_buf_puts(b, ", ") || append_col(b, db, col->name);
            r->p.meta = n++;
            continue;
        default:
            break;
        }
        bad |= append_col(b, db, col->name);
        if (col->role == SQLMAP_COL_ID)
            r->p.id = n;
        else if (col->role == SQLMAP_COL_TITLE)
            r->p.title = n;
        else if (col->role == SQLMAP_COL_URL)
            r->p.url = n;
        else if (col->role == SQLMAP_COL_BODY && !col->sub)
            r->p.body = n;
        n++;
    }
    if (r->p.meta >= 0)
        bad |= ctx_buf_puts(b, ")::text");
    r->p.nbody = r->m.perm ? 0 : (int)s->body.n;

    bad |= ctx_buf_puts(b, " FROM ") || sqlmap_source(b, s->table, s->query, pg_ident, db);
    if (r->m.mode == SQLMAP_CURSOR_INCR && s->lookback_seconds) {
        /* Integer cursors subtract the window in their own units. */
        bad |= ctx_buf_puts(b, " WHERE ") || append_col(b, db, s->updated_at) ||
               ctx_buf_printf(b, is_time(r->p.ts_type) ? " >= $1::%s - interval '%lld seconds'"
                                                       : " >= $1::%s - %lld",
                              ts_type_name(r->p.ts_type), (long long)s->lookback_seconds);
        *nparams = 1;
    } else if (r->m.mode == SQLMAP_CURSOR_INCR) {
        bad |= ctx_buf_puts(b, " WHERE (") || append_col(b, db, s->updated_at) ||
               ctx_buf_puts(b, ", ") || append_col(b, db, s->id) ||
               ctx_buf_printf(b, ") > ($1::%s, $2)", ts_type_name(r->p.ts_type));
        *nparams = 2;
    } else if (r->m.mode == SQLMAP_CURSOR_RESUME) {
        bad |= ctx_buf_puts(b, " WHERE ") || append_col(b, db, s->id) ||
               ctx_buf_puts(b, " > $1");
        *nparams = 1;
    }
    /* A permission read keeps no cursor, so it needs no order (no sort). */
    if (!r->m.perm) {
        bad |= ctx_buf_puts(b, " ORDER BY ");
        if (s->updated_at)
            bad |= append_col(b, db, s->updated_at) || ctx_buf_puts(b, ", ");
        bad |= append_col(b, db, s->id);
    }
    return bad ? conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory") : CTX_CONN_OK;
}

/* val - one field of a fetched row; NULL (or an absent column) has p == NULL. */
static sqlmap_val val(const PGresult *res, int row, int col)
{
    sqlmap_val v = {NULL, 0};
    if (col >= 0 && !PQgetisnull(res, row, col)) {
        v.p = PQgetvalue(res, row, col);
        v.len = (size_t)PQgetlength(res, row, col);
    }
    return v;
}

/* emit_row - one fetched row, mapped, to sqlmap_emit_row. */
static int emit_row(pg_reader *r, const PGresult *res, int row)
{
    const pg_plan *p = &r->p;
    sqlmap_val body[64];
    sqlmap_row m;
    sqlmap_val v;
    int k;

    memset(&m, 0, sizeof m);
    m.id = val(res, row, p->id);
    m.ts = val(res, row, p->ts);
    m.title = val(res, row, p->title);
    m.url = val(res, row, p->url);
    m.meta = val(res, row, p->meta);
    for (k = 0; k < p->nbody; k++)
        body[k] = val(res, row, p->body + k);
    m.body = body;
    m.nbody = (size_t)p->nbody;
    for (k = 0; k < SQLMAP_ACL_N; k++)
        m.acl[k] = val(res, row, p->acl[k]);
    m.everyone = (v = val(res, row, p->everyone)).p && v.p[0] == 't';
    m.deleted = (v = val(res, row, p->deleted)).p && v.p[0] == 't';
    m.ts_ms = (v = val(res, row, p->ts_ms)).p ? strtoll(v.p, NULL, 10) : 0;
    return sqlmap_emit_row(&r->m, &m);
}

/* fetch_failed - the error for a failed FETCH: a lost connection says so. */
static int fetch_failed(pg_reader *r, const PGresult *res)
{
    char msg[400];

    res_message(r->db, res, msg, sizeof msg);
    if (PQstatus(r->db) == CONNECTION_BAD)
        return conn_errf(r->m.e, CTX_CONN_ESOURCE, "streams[%zu]: connection to the server lost"
                      " after %lld rows of stream \"%s\" (%s); the next run resumes from the"
                      " last checkpoint", r->m.si, (long long)r->m.rows, r->m.s->name, msg);
    return conn_errf(r->m.e, CTX_CONN_ESOURCE, "streams[%zu]: reading stream \"%s\" failed"
                  " after %lld rows: %s", r->m.si, r->m.s->name, (long long)r->m.rows, msg);
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
    PGresult *res = NULL;
    const char *params[2];
    char fetch[64], msg[400];
    int rc, nparams, i, n, in_flight = 0;

    if ((rc = sqlmap_load_state(&r->m, state, full)))
        return rc;
    if ((rc = exec_cmd(r->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "BEGIN",
                       r->m.e)))
        return rc;
    if ((rc = describe(r)))
        goto done;
    if ((rc = ctx_buf_puts(&sql, "DECLARE ctxgate_rows NO SCROLL CURSOR FOR ")) ||
        (rc = build_select(r, &sql, &nparams)))
        goto done;
    sqlmap_log(r->m.host, r->m.em, CTX_CONN_LOG_DEBUG, "stream \"%s\": %s", r->m.s->name, sql.data);
    if (r->m.mode == SQLMAP_CURSOR_RESUME) {
        params[0] = r->m.cur_id.data;
    } else {
        params[0] = r->m.cur_ts.data;
        params[1] = r->m.cur_id.data;
    }
    res = PQexecParams(r->db, sql.data, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        res_message(r->db, res, msg, sizeof msg);
        rc = conn_errf(r->m.e, CTX_CONN_ESOURCE, "streams[%zu].%s: %s (stream \"%s\")", r->m.si,
                    r->m.s->table ? "table" : "query", msg, r->m.s->name);
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
        for (i = 0; i < n; i++)
            if ((rc = emit_row(r, res, i)))
                goto done;
        PQclear(res);
        res = NULL;
    } while (n == g->batch_rows);
    if ((rc = exec_cmd(r->db, "COMMIT", "COMMIT", r->m.e)))
        goto done;
    rc = sqlmap_finish(&r->m);
done:
    PQclear(res);
    if (in_flight)
        PQclear(next_result(r->db)); /* leave the connection usable */
    ctx_buf_free(&sql);
    if (rc == CTX_ENOMEM)
        conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
    return rc;
}

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
    return conn_errf(e, CTX_CONN_ESOURCE, "principals.%s: %s", what, msg);
}

static const char *field(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/*
 * read_rows - run one principals query through a cursor and hand each row
 * to sqlmap_user (users) or sqlmap_group_row (groups).
 */
static int read_rows(const pg_conn *c, PGconn *db, sqlmap_princ_reader *pr, int groups,
                     ctx_conn_error *e)
{
    const char *cursor = groups ? "ctxgate_groups" : "ctxgate_users";
    const char *key = groups ? "groups_query" : "users_query";
    PGresult *res = NULL;
    char fetch[64];
    int rc, i, n;

    if (groups)
        /* Sorted by the principal name, so each group's rows are together. */
        rc = declare_query(db, cursor, "CASE WHEN src.group_name::text LIKE 'group:%' THEN"
                           " src.group_name::text ELSE 'group:' || src.group_name::text END,"
                           " src.member::text", c->sc.princ.groups_query, "group_name, member",
                           " WHERE src.group_name IS NOT NULL ORDER BY 1, 2", key, e);
    else
        rc = declare_query(db, cursor, "src.account::text, src.email::text,"
                           " src.display_name::text", c->sc.princ.users_query,
                           "account, email, display_name",
                           " WHERE src.account IS NOT NULL ORDER BY 1", key, e);
    if (rc)
        return rc;
    snprintf(fetch, sizeof fetch, "FETCH FORWARD %lld FROM %s", (long long)c->cfg.batch_rows,
             cursor);
    do {
        if ((rc = fetch_batch(db, fetch, key, &res, e)))
            goto done;
        n = PQntuples(res);
        for (i = 0; i < n; i++) {
            if (groups)
                rc = sqlmap_group_row(pr, field(res, i, 0), field(res, i, 1));
            else
                rc = sqlmap_user(pr, field(res, i, 0), field(res, i, 1), field(res, i, 2));
            if (rc)
                goto done;
        }
    } while (n == c->cfg.batch_rows);
    rc = CTX_CONN_OK;
done:
    PQclear(res);
    return rc;
}

/* What run_query needs: sqlmap_read_principals hands it back. */
typedef struct pg_princ_arg {
    const pg_conn *c;
    PGconn *db;
    ctx_conn_error *e;
} pg_princ_arg;

static int run_query(void *arg, sqlmap_princ_reader *pr, int groups)
{
    pg_princ_arg *a = arg;
    return read_rows(a->c, a->db, pr, groups, a->e);
}

/* read_principals - users then groups in one snapshot; one STATE at the end. */
static int read_principals(const pg_conn *c, PGconn *db, const char *state,
                           const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    pg_princ_arg a = {c, db, e};
    int rc;

    if ((rc = exec_cmd(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "BEGIN", e)) ||
        (rc = sqlmap_read_principals(&c->sc, state, host, em, e, run_query, &a)))
        return rc;
    return exec_cmd(db, "COMMIT", "COMMIT", e);
}

/* ---- the vtable ---- */

/*
 * pg_read_any - xRead, or (perm) xReadPermissions: the same cursor over
 * the id, ACL, allow_everyone and deleted columns only, one ACL message per
 * live row. The principals stream is read the same way in both.
 */
static int pg_read_any(void *conn, const char *stream, const char *state, int full, int perm,
                       const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    const pg_conn *c = conn;
    const sqlmap_stream *s = NULL;
    PGconn *db = NULL;
    pg_reader r;
    size_t si = 0;
    int rc;

    if ((rc = sqlmap_pick(&c->cfg.sql, &c->sc, stream, &s, &si, e)) ||
        (rc = pg_connect(c, &db, e)))
        return rc;
    if (!s) {
        rc = read_principals(c, db, state, host, em, e);
    } else {
        memset(&r, 0, sizeof r);
        r.c = c;
        r.db = db;
        sqlmap_reader_init(&r.m, s, si, c->cfg.sql.state_every, host, em, e);
        r.m.acl_json = 1;
        r.m.perm = perm;
        rc = read_stream(&r, perm ? NULL : state, full || perm);
        sqlmap_reader_free(&r.m);
    }
    /* Closing the connection also ends an open transaction. */
    PQfinish(db);
    return rc;
}

static int pg_read(void *conn, const char *stream, const char *state, int full,
                   const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    return pg_read_any(conn, stream, state, full, 0, host, em, e);
}

static int pg_read_permissions(void *conn, const char *stream, const char *state,
                               const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    return pg_read_any(conn, stream, state, 0, 1, host, em, e);
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
        rc = conn_errf(e, CTX_CONN_ESOURCE, "conninfo: SELECT 1 failed: %s", msg);
        goto done;
    }
    if ((rc = exec_cmd(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "BEGIN", e)))
        goto done;
    for (i = 0; i < c->cfg.sql.streams.n; i++) {
        memset(&r, 0, sizeof r);
        r.c = c;
        r.db = db;
        sqlmap_reader_init(&r.m, (const sqlmap_stream *)c->cfg.sql.streams.v + i, i, 1, NULL,
                           NULL, e);
        if ((rc = describe(&r)))
            goto done;
    }
    if (c->sc.princ.users_query &&
        (rc = declare_query(db, "ctxgate_users", "*", c->sc.princ.users_query,
                            "account, email, display_name", " LIMIT 0", "users_query", e)))
        goto done;
    if (c->sc.princ.groups_query &&
        (rc = declare_query(db, "ctxgate_groups", "*", c->sc.princ.groups_query,
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
    return sqlmap_discover(&c->cfg.sql, &c->sc, fn, arg, e);
}

const ctx_connector ctx__postgres_connector = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_connector), "postgres", "1.0.0",
    pg_spec, pg_open, pg_check, pg_discover, pg_read, pg_close,
    /* ---- version 2 ---- */
    pg_read_permissions,
};
