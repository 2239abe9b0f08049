/*
 * odbc.c - the ODBC connector (unixODBC): any DSN or connection string.
 * Each configured stream is a table or a SELECT read row by row with
 * SQLFetch, every value taken in pieces with SQLGetData, incrementally by
 * an (updated_at, id) cursor. The mapping of rows to messages, the options
 * and the cursor state are shared with postgres.c (../sql/sqlmap.h).
 *
 * Streams: "principals" (when configured), then one per streams[] entry.
 */
#include <sql.h>
#include <sqlext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../../core/opts.h"
#include "../../core/util.h"
#include "../sdk/ctxgate/connector.h"
#include "../sql/sqlmap.h"
#include "../../core/json.h"

/* ---- configuration ---- */

typedef struct odbc_cfg {
    char *dsn, *connection_string;
    sqlmap_cfg sql;
} odbc_cfg;

static const ctx_opt odbc_opts[] = {
    {"dsn", CTX_OPT_STRING, NULL, offsetof(odbc_cfg, dsn), 0,
     "data source name from odbc.ini (or use connection_string)", NULL, 0},
    {"connection_string", CTX_OPT_STRING, NULL, offsetof(odbc_cfg, connection_string), 0,
     "ODBC connection string, e.g. \"Driver=PostgreSQL Unicode;Server=db;Database=crm;"
     "UID=reader\"; keep the password out of it", NULL, 0},
    SQLMAP_OPTS(odbc_cfg, sql),
    CTX_OPT_END,
};

typedef struct odbc_conn {
    odbc_cfg cfg;              /* first: sqlmap_open parses into it */
    sqlmap_conf sc;
} odbc_conn;

#define STATE_EVERY 1000
#define PIECE 65536        /* bytes per SQLGetData call */
#define MSG 400

static int check_cfg(void *conn, ctx_error *err)
{
    odbc_conn *c = conn;
    odbc_cfg *g = &c->cfg;

    if (!g->dsn == !g->connection_string)
        return ctx_error_set(err, CTX_ECONFIG, "dsn, connection_string: set exactly one of"
                             " them");
    if (g->dsn && (!*g->dsn || strpbrk(g->dsn, ";{}=")))
        return ctx_error_set(err, CTX_ECONFIG, "dsn: \"%s\" is not a data source name; for"
                             " keywords use connection_string", g->dsn);
    if (g->connection_string && !*g->connection_string)
        return ctx_error_set(err, CTX_ECONFIG, "connection_string: must not be empty");
    return sqlmap_check(&g->sql, STATE_EVERY, &c->sc, err);
}

static const char *odbc_spec(void)
{
    static char *spec;
    if (!spec)
        spec = sqlmap_spec(odbc_opts, "odbc connector");
    return spec;
}

static void odbc_close(void *conn)
{
    odbc_conn *c = conn;
    if (!c)
        return;
    sqlmap_conf_free(&c->sc);
    ctx_opts_free(odbc_opts, &c->cfg);
    ctx_free(c);
}

static int odbc_open(const char *config_json, void **pconn, ctx_conn_error *e)
{
    return sqlmap_open(odbc_opts, sizeof(odbc_conn), check_cfg, odbc_close, config_json, pconn,
                       e);
}

/* ---- diagnostics ---- */

/*
 * diag - the driver's diagnostic records of a handle as one line:
 * "[SQLSTATE] message; [SQLSTATE] message", at most three records, with
 * the driver-manager prefixes ("[unixODBC][Driver]") dropped. The first
 * SQLSTATE goes to state[6] ("" when there is none).
 */
static void diag(SQLSMALLINT type, SQLHANDLE h, char *out, size_t len, char state[6])
{
    SQLCHAR st[6], text[1024];
    SQLINTEGER native;
    SQLSMALLINT tl;
    size_t n = 0;

    out[0] = '\0';
    state[0] = '\0';
    for (SQLSMALLINT i = 1; i <= 3 && n + 1 < len; i++) {
        const char *m = (const char *)text;
        if (!SQL_SUCCEEDED(SQLGetDiagRec(type, h, i, st, &native, text, sizeof text, &tl)))
            break;
        if (i == 1)
            memcpy(state, st, 6);
        while (*m == '[') {
            const char *end = strchr(m, ']');
            if (!end)
                break;
            m = end + 1;
        }
        while (*m == ' ')
            m++;
        n += (size_t)snprintf(out + n, len - n, "%s[%s] %s", i > 1 ? "; " : "",
                              (const char *)st, m);
        if (n >= len)
            n = len - 1;
    }
    /* One line: control characters become blanks, runs of blanks one, none at the ends. */
    n = 0;
    for (const char *p = out; *p; p++) {
        char ch = *p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p;
        if (ch == ' ' && (n == 0 || out[n - 1] == ' ' || p[1] == ';'))
            continue;
        out[n++] = ch;
    }
    while (n && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    if (!out[0])
        snprintf(out, len, "the driver gave no diagnostic");
}

/*
 * is_conn_lost - a SQLSTATE that means the connection is gone: class 08,
 * PostgreSQL's 57P0x (server shut down or the backend terminated), a
 * timeout; or a driver that says so through SQL_ATTR_CONNECTION_DEAD.
 */
static int is_conn_lost(const char *state, SQLHDBC dbc)
{
    SQLUINTEGER dead = SQL_CD_FALSE;

    if (!strncmp(state, "08", 2) || !strncmp(state, "57P0", 4) || !strcmp(state, "HYT01"))
        return 1;
    return dbc && SQL_SUCCEEDED(SQLGetConnectAttr(dbc, SQL_ATTR_CONNECTION_DEAD, &dead, 0,
                                                  NULL)) && dead == SQL_CD_TRUE;
}

/* ---- connecting ---- */

typedef struct odbc_db {
    SQLHENV env;
    SQLHDBC dbc;
    char quote[4];             /* identifier quote, "" when the driver has none */
} odbc_db;

static void db_close(odbc_db *db)
{
    if (db->dbc) {
        SQLDisconnect(db->dbc);
        SQLFreeHandle(SQL_HANDLE_DBC, db->dbc);
    }
    if (db->env)
        SQLFreeHandle(SQL_HANDLE_ENV, db->env);
    memset(db, 0, sizeof *db);
}

/*
 * conn_string - the configured connection (dsn as "DSN=<dsn>") with the
 * password appended as PWD={...}, braces doubled, into b (wipe it).
 */
static int conn_string(const odbc_conn *c, const char *pw, ctx_buf *b)
{
    const char *base = c->cfg.connection_string;
    size_t n;

    if (base ? ctx_buf_puts(b, base) : ctx_buf_printf(b, "DSN=%s", c->cfg.dsn))
        return CTX_ENOMEM;
    if (!pw)
        return CTX_OK;
    n = b->len;
    while (n && (b->data[n - 1] == ' ' || b->data[n - 1] == ';'))
        n--;
    b->len = n;
    if (ctx_buf_puts(b, ";PWD={"))
        return CTX_ENOMEM;
    for (const char *p = pw; *p; p++)
        if ((*p == '}' && ctx_buf_puts(b, "}")) || ctx_buf_append(b, p, 1))
            return CTX_ENOMEM;
    return ctx_buf_puts(b, "}");
}

static int is_auth_failure(const char *state, const char *msg)
{
    return !strncmp(state, "28", 2) || strstr(msg, "authentication failed") ||
           strstr(msg, "password is required") || strstr(msg, "no password supplied") ||
           strstr(msg, "Login failed") || strstr(msg, "Access denied");
}

/* Connection errors worth another attempt: the server may come back. */
static int is_transient(const char *state)
{
    return !strncmp(state, "08", 2) || !strncmp(state, "57P0", 4) || !strcmp(state, "HYT00");
}

static const char *what(const odbc_conn *c)
{
    return c->cfg.dsn ? "dsn" : "connection_string";
}

/*
 * stream_option - the connection keyword that makes this driver stream a
 * result instead of loading all of it at SQLExecDirect, when cs lacks it;
 * NULL for other drivers. Known: psqlODBC (UseDeclareFetch) and the SQLite3
 * driver (StepAPI).
 */
static const char *stream_option(SQLHDBC dbc, const char *cs)
{
    char name[128];
    SQLSMALLINT nl = 0;

    if (!SQL_SUCCEEDED(SQLGetInfo(dbc, SQL_DRIVER_NAME, name, sizeof name, &nl)))
        return NULL;
    if (strstr(name, "psqlodbc") && !strcasestr(cs, "UseDeclareFetch"))
        return "UseDeclareFetch=1";
    if (strstr(name, "sqlite3odbc") && !strcasestr(cs, "StepAPI"))
        return "StepAPI=1";
    return NULL;
}

/*
 * odbc_connect - connect (*db filled; db_close it), trying 1 + retries times
 * with exponential backoff while the failure looks transient (SQLSTATE
 * 08xxx, HYT00). Rejected credentials fail at once with CTX_CONN_EAUTH; an
 * unknown DSN or driver (IMxxx) with CTX_CONN_ECONFIG. No message carries
 * the password. A driver known to load whole results unless told otherwise
 * is connected to again with its streaming keyword (stream_option).
 */
static int odbc_connect(const odbc_conn *c, odbc_db *db, ctx_conn_error *e)
{
    ctx_buf cs = CTX_BUF_INIT;
    char msg[MSG], state[6];
    char *pw = NULL;
    int64_t attempt, backoff = SQLMAP_BACKOFF_MS;
    SQLRETURN sr;
    SQLSMALLINT ql = 0;
    const char *opt;
    int rc, tuned = 0;

    memset(db, 0, sizeof *db);
    if ((rc = sqlmap_password(&c->cfg.sql, &pw, e)))
        return rc;
    if (conn_string(c, pw, &cs)) {
        rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    for (attempt = 0;; attempt++) {
        if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &db->env)) ||
            !SQL_SUCCEEDED(SQLSetEnvAttr(db->env, SQL_ATTR_ODBC_VERSION,
                                         (SQLPOINTER)SQL_OV_ODBC3, 0)) ||
            !SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, db->env, &db->dbc))) {
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: cannot set up the ODBC driver manager"
                            " (unixODBC)", what(c));
            goto done;
        }
        if (c->cfg.sql.connect_timeout)
            SQLSetConnectAttr(db->dbc, SQL_ATTR_LOGIN_TIMEOUT,
                              (SQLPOINTER)(intptr_t)c->cfg.sql.connect_timeout, 0);
        sr = SQLDriverConnect(db->dbc, NULL, (SQLCHAR *)cs.data, SQL_NTS, NULL, 0, NULL,
                              SQL_DRIVER_NOPROMPT);
        if (SQL_SUCCEEDED(sr) && !tuned && (opt = stream_option(db->dbc, cs.data))) {
            ctx_buf more = CTX_BUF_INIT;
            tuned = 1;
            db_close(db);
            /* A new buffer: growing cs in place could leave the password in freed memory. */
            rc = ctx_buf_printf(&more, "%s;%s", cs.data, opt);
            explicit_bzero(cs.data, cs.len);
            ctx_buf_free(&cs);
            cs = more;
            if (rc) {
                rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
                goto done;
            }
            attempt--;
            continue;
        }
        if (SQL_SUCCEEDED(sr))
            break;
        diag(SQL_HANDLE_DBC, db->dbc, msg, sizeof msg, state);
        ctx_scrub(msg, pw);
        SQLFreeHandle(SQL_HANDLE_DBC, db->dbc);
        db->dbc = NULL;
        if (is_auth_failure(state, msg)) {
            rc = conn_errf(e, CTX_CONN_EAUTH, "%s: %s; %s", what(c), msg,
                            sqlmap_password_hint(&c->cfg.sql));
            goto done;
        }
        if (!strncmp(state, "IM", 2)) {
            rc = conn_errf(e, CTX_CONN_ECONFIG, "%s: %s; check the data source name and"
                            " that its driver is registered in odbcinst.ini (odbcinst -q -d)",
                            what(c), msg);
            goto done;
        }
        if (!is_transient(state) || attempt >= c->cfg.sql.retries) {
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: cannot connect (%lld attempt%s): %s",
                            what(c), (long long)attempt + 1, attempt ? "s" : "", msg);
            goto done;
        }
        SQLFreeHandle(SQL_HANDLE_ENV, db->env);
        db->env = NULL;
        sqlmap_backoff(&backoff);
    }
    /* Hints only: a driver that cannot do them still reads. */
    SQLSetConnectAttr(db->dbc, SQL_ATTR_ACCESS_MODE, (SQLPOINTER)SQL_MODE_READ_ONLY, 0);
    if (!SQL_SUCCEEDED(SQLGetInfo(db->dbc, SQL_IDENTIFIER_QUOTE_CHAR, db->quote,
                                  sizeof db->quote, &ql)) || !strcmp(db->quote, " "))
        db->quote[0] = '\0';
    rc = CTX_CONN_OK;
done:
    if (rc)
        db_close(db);
    if (cs.data)
        explicit_bzero(cs.data, cs.len);
    ctx_buf_free(&cs);
    ctx_wipe_free(pw);
    return rc;
}

/* ---- SQL text ---- */

/*
 * odbc_ident - name quoted with the driver's quote character, doubled
 * inside (a sqlmap_ident_fn; arg is the odbc_db).
 */
static int odbc_ident(ctx_buf *b, const char *name, size_t len, void *arg)
{
    const char *q = ((const odbc_db *)arg)->quote;

    if (!*q)
        return ctx_buf_append(b, name, len);
    if (ctx_buf_puts(b, q))
        return CTX_ENOMEM;
    for (size_t i = 0; i < len; i++)
        if ((name[i] == q[0] && ctx_buf_puts(b, q)) || ctx_buf_append(b, name + i, 1))
            return CTX_ENOMEM;
    return ctx_buf_puts(b, q);
}

static int append_col(ctx_buf *b, const odbc_db *db, const char *name)
{
    return ctx_buf_puts(b, "src.") || odbc_ident(b, name, strlen(name), (void *)db) ? CTX_ENOMEM
                                                                                   : CTX_OK;
}

/* ---- reading values ---- */

/* What a selected column is read as. */
typedef struct odbc_col {
    SQLSMALLINT type;          /* SQL type from SQLDescribeCol */
    SQLULEN size;
    SQLSMALLINT digits;
    SQLSMALLINT ctype;         /* SQL_C_WCHAR or SQL_C_CHAR */
    ctx_buf buf;               /* the value of the current row (UTF-8) */
    int null;
} odbc_col;

static int is_wide(SQLSMALLINT t)
{
    return t == SQL_WCHAR || t == SQL_WVARCHAR || t == SQL_WLONGVARCHAR;
}

static int is_char(SQLSMALLINT t)
{
    return t == SQL_CHAR || t == SQL_VARCHAR || t == SQL_LONGVARCHAR || is_wide(t);
}

static int is_integer(SQLSMALLINT t)
{
    return t == SQL_INTEGER || t == SQL_SMALLINT || t == SQL_TINYINT || t == SQL_BIGINT;
}

static int is_time(SQLSMALLINT t)
{
    return t == SQL_TYPE_TIMESTAMP || t == SQL_TYPE_DATE || t == SQL_TIMESTAMP ||
           t == SQL_DATE;
}

static int is_binary(SQLSMALLINT t)
{
    return t == SQL_BINARY || t == SQL_VARBINARY || t == SQL_LONGVARBINARY;
}

/*
 * put_utf16 - append the UTF-16 units to b as UTF-8. A high surrogate at
 * the end of a piece waits in *carry for the next piece; unpaired
 * surrogates become U+FFFD.
 */
static int put_utf16(ctx_buf *b, const SQLWCHAR *w, size_t n, unsigned *carry)
{
    for (size_t i = 0; i < n; i++) {
        unsigned u = w[i], cp;
        unsigned char o[4];
        size_t k;
        if (*carry) {
            if (u >= 0xDC00 && u <= 0xDFFF) {
                cp = 0x10000 + ((*carry - 0xD800) << 10) + (u - 0xDC00);
                *carry = 0;
                goto put;
            }
            *carry = 0;
            if (ctx_buf_puts(b, "\xEF\xBF\xBD"))
                return CTX_ENOMEM;
        }
        if (u >= 0xD800 && u <= 0xDBFF) {
            *carry = u;
            continue;
        }
        cp = u >= 0xDC00 && u <= 0xDFFF ? 0xFFFD : u;
    put:
        if (cp < 0x80) {
            o[0] = (unsigned char)cp, k = 1;
        } else if (cp < 0x800) {
            o[0] = (unsigned char)(0xC0 | cp >> 6), o[1] = (unsigned char)(0x80 | (cp & 63));
            k = 2;
        } else if (cp < 0x10000) {
            o[0] = (unsigned char)(0xE0 | cp >> 12);
            o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
            o[2] = (unsigned char)(0x80 | (cp & 63));
            k = 3;
        } else {
            o[0] = (unsigned char)(0xF0 | cp >> 18);
            o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
            o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
            o[3] = (unsigned char)(0x80 | (cp & 63));
            k = 4;
        }
        if (ctx_buf_append(b, o, k))
            return CTX_ENOMEM;
    }
    return CTX_OK;
}

/*
 * get_value - column i (1-based) of the current row into col->buf, in
 * pieces of PIECE bytes so a value of any length streams through one
 * reused buffer. Character data is asked for as SQL_C_WCHAR and converted
 * to UTF-8 (a driver that cannot is asked for SQL_C_CHAR from then on);
 * other types as SQL_C_CHAR, the driver's text form. Returns CTX_CONN_OK or
 * the driver's error text in msg with *state its SQLSTATE.
 */
static int get_value(SQLHSTMT st, SQLUSMALLINT i, odbc_col *col, char *piece, char *msg,
                     char state[6])
{
    SQLLEN ind;
    SQLRETURN sr;
    unsigned carry = 0;
    int first = 1;

    ctx_buf_reset(&col->buf);
    col->null = 0;
    for (;;) {
        size_t avail = col->ctype == SQL_C_WCHAR ? PIECE - sizeof(SQLWCHAR)
                       : col->ctype == SQL_C_BINARY ? PIECE : PIECE - 1, n;
        sr = SQLGetData(st, i, col->ctype, piece, PIECE, &ind);
        if (sr == SQL_NO_DATA)
            break;
        if (!SQL_SUCCEEDED(sr)) {
            diag(SQL_HANDLE_STMT, st, msg, MSG, state);
            if (first && col->ctype == SQL_C_WCHAR &&
                (!strcmp(state, "HY003") || !strcmp(state, "HYC00") ||
                 !strcmp(state, "07006"))) {
                col->ctype = SQL_C_CHAR;
                continue;
            }
            return CTX_CONN_ESOURCE;
        }
        first = 0;
        if (ind == SQL_NULL_DATA) {
            col->null = 1;
            return CTX_CONN_OK;
        }
        n = ind == SQL_NO_TOTAL || (size_t)ind > avail ? avail : (size_t)ind;
        if (col->ctype == SQL_C_WCHAR ? put_utf16(&col->buf, (const SQLWCHAR *)piece,
                                                  n / sizeof(SQLWCHAR), &carry)
                                      : ctx_buf_append(&col->buf, piece, n))
            goto oom;
        if (sr == SQL_SUCCESS)
            break;
    }
    if (carry && ctx_buf_puts(&col->buf, "\xEF\xBF\xBD"))
        goto oom;
    if (ctx_buf_append(&col->buf, "", 0))  /* NUL-terminate an empty value */
        goto oom;
    return CTX_CONN_OK;
oom:
    snprintf(msg, MSG, "out of memory");
    memcpy(state, "HY001", 6);
    return CTX_CONN_ENOMEM;
}

/* truthy - a boolean column's text: 1/0, t/f, true/false, y/n, yes/no. */
static int truthy(const odbc_col *c)
{
    const char *v = c->buf.data;
    if (c->null || !v)
        return 0;
    if (is_time(c->type))
        return 1;   /* a deleted_at timestamp: set means deleted */
    return !strcasecmp(v, "1") || !strcasecmp(v, "t") || !strcasecmp(v, "true") ||
           !strcasecmp(v, "y") || !strcasecmp(v, "yes") ||
           (strtoll(v, NULL, 10) != 0 && strspn(v, "-0123456789") == strlen(v));
}

/*
 * parse_time - *ms of a date or timestamp as drivers print it, through
 * ctx_iso8601_ms once PostgreSQL's hour-only offset ("...:00+00", "-05")
 * has its minutes. Returns 0, or CTX_EINVAL when the text is not a time.
 */
static int parse_time(const char *s, int64_t *ms)
{
    char buf[64];
    size_t n = s ? strlen(s) : 0;

    if (!n || n + 4 > sizeof buf)
        return CTX_EINVAL;
    memcpy(buf, s, n + 1);
    if (n > 19 && (buf[n - 3] == '+' || buf[n - 3] == '-') && buf[n - 2] >= '0' &&
        buf[n - 2] <= '9' && buf[n - 1] >= '0' && buf[n - 1] <= '9')
        memcpy(buf + n, ":00", 4);
    return ctx_iso8601_ms(buf, ms);
}

/* ---- reading a document stream ---- */

typedef struct odbc_reader {
    const odbc_conn *c;
    odbc_db *db;
    sqlmap_reader m;
    SQLHSTMT st;
    sqlmap_col cols[SQLMAP_MAX_COLS];
    size_t ncols;
    odbc_col *v;               /* ncols values */
    SQLSMALLINT ts_type, id_type;
    SQLULEN ts_size, id_size;
    SQLSMALLINT ts_digits, id_digits;
    char *piece;               /* PIECE bytes for SQLGetData */
    ctx_buf lookback;          /* the cursor moved back by lookback_seconds */
    ctx_buf param[2];          /* cursor_ts and cursor_id as bound: the cursor moves */
    json_t *meta;
    char *meta_text;
} odbc_reader;

static void reader_free(odbc_reader *r)
{
    if (r->st)
        SQLFreeHandle(SQL_HANDLE_STMT, r->st);
    for (size_t i = 0; r->v && i < r->ncols; i++)
        ctx_buf_free(&r->v[i].buf);
    ctx_free(r->v);
    ctx_free(r->piece);
    ctx_buf_free(&r->lookback);
    ctx_buf_free(&r->param[0]);
    ctx_buf_free(&r->param[1]);
    json_decref(r->meta);
    free(r->meta_text);
    sqlmap_reader_free(&r->m);
}

/* hint - the likely fix for a statement's error, or "". */
static const char *hint(const char *state, const char *msg, int table)
{
    if (!strcmp(state, "42S02") || !strcmp(state, "42P01") || strstr(msg, "no such table"))
        return table ? "; check the table name (\"schema.name\") and that this login may"
                       " read it" : "; check the tables the query names";
    if (!strcmp(state, "42S22") || !strcmp(state, "42703") || strstr(msg, "no such column"))
        return "; check the column names (`ctxgate sources` runs the same checks)";
    if (!strcmp(state, "42000") || !strcmp(state, "42601"))
        return "; the query is wrapped as SELECT ... FROM (<query>) src: give it as one"
               " SELECT";
    return "";
}

/* stmt_failed - the error of a statement, naming the stream; 08xxx says "lost". */
static int stmt_failed(odbc_reader *r, SQLSMALLINT type, SQLHANDLE h, const char *doing)
{
    char msg[MSG], state[6];

    diag(type, h, msg, sizeof msg, state);
    if (is_conn_lost(state, r->db->dbc))
        return conn_errf(r->m.e, CTX_CONN_ESOURCE, "streams[%zu]: connection to the server"
                          " lost after %lld rows of stream \"%s\" (%s); the next run resumes"
                          " from the last checkpoint", r->m.si, (long long)r->m.rows,
                          r->m.s->name, msg);
    return conn_errf(r->m.e, !strcmp(state, "42000") || !strcmp(state, "42601")
                                  ? CTX_CONN_ECONFIG : CTX_CONN_ESOURCE,
                      "streams[%zu].%s: %s%s%s (stream \"%s\")%s", r->m.si,
                      r->m.s->table ? "table" : "query", doing, *doing ? " " : "", msg,
                      r->m.s->name, hint(state, msg, r->m.s->table != NULL));
}

static const char *type_word(SQLSMALLINT t)
{
    if (is_char(t))
        return "text";
    if (is_binary(t))
        return "binary";
    switch (t) {
    case SQL_BIT: return "boolean";
    case SQL_REAL: case SQL_FLOAT: case SQL_DOUBLE: return "floating point";
    case SQL_NUMERIC: case SQL_DECIMAL: return "numeric";
    case SQL_TYPE_TIME: case SQL_TIME: return "time";
    case SQL_GUID: return "uuid";
    default: return "of another type";
    }
}

/*
 * describe - run the source with no rows to learn its columns; check every
 * configured column against them and keep the types the read needs.
 */
static int describe(odbc_reader *r)
{
    const sqlmap_stream *s = r->m.s;
    ctx_buf sql = CTX_BUF_INIT;
    char **names = NULL;
    int pos[SQLMAP_MAX_COLS], rc;
    SQLSMALLINT n = 0, i;
    SQLHSTMT st = NULL;
    SQLCHAR name[256];
    SQLSMALLINT nl, type, digits, nullable;
    SQLULEN size;
    SQLSMALLINT *types = NULL;
    SQLULEN *sizes = NULL;
    SQLSMALLINT *digs = NULL;

    r->ncols = sqlmap_columns(s, r->cols);
    if (ctx_buf_puts(&sql, "SELECT * FROM ") || sqlmap_source(&sql, s->table, s->query, odbc_ident, r->db) ||
        ctx_buf_puts(&sql, " WHERE 1=0")) {
        rc = conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, r->db->dbc, &st))) {
        rc = stmt_failed(r, SQL_HANDLE_DBC, r->db->dbc, "cannot make a statement:");
        st = NULL;
        goto done;
    }
    if (!SQL_SUCCEEDED(SQLExecDirect(st, (SQLCHAR *)sql.data, SQL_NTS)) ||
        !SQL_SUCCEEDED(SQLNumResultCols(st, &n))) {
        rc = stmt_failed(r, SQL_HANDLE_STMT, st, "");
        goto done;
    }
    names = ctx_calloc((size_t)n + 1, sizeof *names);
    types = ctx_calloc((size_t)n + 1, sizeof *types);
    sizes = ctx_calloc((size_t)n + 1, sizeof *sizes);
    digs = ctx_calloc((size_t)n + 1, sizeof *digs);
    if (!names || !types || !sizes || !digs) {
        rc = conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        if (!SQL_SUCCEEDED(SQLDescribeCol(st, (SQLUSMALLINT)(i + 1), name, sizeof name, &nl,
                                          &type, &size, &digits, &nullable))) {
            rc = stmt_failed(r, SQL_HANDLE_STMT, st, "describing the columns:");
            goto done;
        }
        if (!(names[i] = ctx_strdup((const char *)name))) {
            rc = conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
            goto done;
        }
        types[i] = type, sizes[i] = size, digs[i] = digits;
    }
    if ((rc = sqlmap_resolve(&r->m, r->cols, r->ncols, (const char *const *)names, (size_t)n,
                             pos)))
        goto done;
    for (size_t k = 0; k < r->ncols && !rc; k++) {
        SQLSMALLINT t = types[pos[k]];
        const sqlmap_col *col = &r->cols[k];
        if (col->role == SQLMAP_COL_ID) {
            r->id_type = t, r->id_size = sizes[pos[k]], r->id_digits = digs[pos[k]];
        } else if (col->role == SQLMAP_COL_TS) {
            r->ts_type = t, r->ts_size = sizes[pos[k]], r->ts_digits = digs[pos[k]];
            if (!is_time(t) && !is_integer(t) && !is_char(t) &&
                !((t == SQL_NUMERIC || t == SQL_DECIMAL) && !digs[pos[k]]))
                rc = conn_errf(r->m.e, CTX_CONN_ECONFIG, "streams[%zu].updated_at: column"
                                " \"%s\" is %s (SQL type %d); use a timestamp, date, integer"
                                " or ISO 8601 text column", r->m.si, col->name,
                                type_word(t), (int)t);
        } else if (col->role == SQLMAP_COL_EVERYONE || col->role == SQLMAP_COL_DELETED) {
            if (is_binary(t) || t == SQL_REAL || t == SQL_FLOAT || t == SQL_DOUBLE)
                rc = conn_errf(r->m.e, CTX_CONN_ECONFIG, "streams[%zu].%s: column \"%s\" is"
                                " %s; use a boolean (or 0/1) column%s", r->m.si, col->key,
                                col->name, type_word(t),
                                col->role == SQLMAP_COL_DELETED
                                    ? ", or a timestamp that is NULL while the row lives" : "");
        }
    }
    if (!rc && r->m.perm) {
        /* A permission read selects the id and permission columns only. */
        size_t kept = 0;
        for (size_t k = 0; k < r->ncols; k++)
            if (sqlmap_perm_col(r->cols[k].role)) {
                r->cols[kept] = r->cols[k];
                pos[kept++] = pos[k];
            }
        r->ncols = kept;
    }
    if (!rc && !(r->v = ctx_calloc(r->ncols, sizeof *r->v)))
        rc = conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
    for (size_t k = 0; !rc && k < r->ncols; k++) {
        r->v[k].type = types[pos[k]];
        r->v[k].ctype = is_binary(types[pos[k]]) ? SQL_C_BINARY
                        : is_char(types[pos[k]]) || types[pos[k]] == SQL_GUID ||
                                  types[pos[k]] == SQL_UNKNOWN_TYPE ? SQL_C_WCHAR : SQL_C_CHAR;
    }
done:
    for (i = 0; names && i < n; i++)
        ctx_free(names[i]);
    ctx_free(names);
    ctx_free(types);
    ctx_free(sizes);
    ctx_free(digs);
    if (st)
        SQLFreeHandle(SQL_HANDLE_STMT, st);
    ctx_buf_free(&sql);
    return rc;
}

/*
 * move_back - the cursor value lookback_seconds earlier, in the form the
 * column prints (integer units, or "YYYY-MM-DD HH:MM:SS" in UTC with the
 * value's 'T' or blank, and "Z" or "+00:00" when the value had a zone, so
 * ISO text compares right too). 1 when it could, else 0 (then the read
 * falls back to the exact cursor).
 */
static int move_back(odbc_reader *r)
{
    const char *cur = r->m.cur_ts.data ? r->m.cur_ts.data : "", *time_part;
    int64_t back = r->m.s->lookback_seconds, t;
    struct tm tm;
    time_t secs;

    ctx_buf_reset(&r->lookback);
    if (is_integer(r->ts_type) || r->ts_type == SQL_NUMERIC || r->ts_type == SQL_DECIMAL)
        return !ctx_buf_printf(&r->lookback, "%lld", strtoll(cur, NULL, 10) - (long long)back);
    if (parse_time(cur, &t))
        return 0;
    secs = (time_t)(t / 1000 - back);
    if (!gmtime_r(&secs, &tm))
        return 0;
    /* The time part (after "YYYY-MM-DD") keeps its separator and says if it had an offset. */
    if (strlen(cur) <= 10)  /* a date: a date back */
        return !ctx_buf_printf(&r->lookback, "%04d-%02d-%02d", tm.tm_year + 1900,
                               tm.tm_mon + 1, tm.tm_mday);
    time_part = cur + 10;
    return !ctx_buf_printf(&r->lookback, "%04d-%02d-%02d%c%02d:%02d:%02d%s", tm.tm_year + 1900,
                           tm.tm_mon + 1, tm.tm_mday, *time_part == 'T' ? 'T' : ' ',
                           tm.tm_hour, tm.tm_min, tm.tm_sec,
                           strchr(time_part, 'Z') ? "Z"
                           : strpbrk(time_part, "+-") ? "+00:00" : "");
}

/*
 * bind_text - parameter n as text, typed like the column it is compared
 * with, so the driver converts it the way it printed it.
 */
static int bind_text(odbc_reader *r, SQLUSMALLINT n, const ctx_buf *b, SQLSMALLINT type,
                     SQLULEN size, SQLSMALLINT digits, SQLLEN *ind)
{
    const char *v = b->data ? b->data : "";
    *ind = (SQLLEN)strlen(v);
    if (type == SQL_UNKNOWN_TYPE || is_wide(type) || type == SQL_LONGVARCHAR)
        type = SQL_VARCHAR;
    if (!size || size < (SQLULEN)*ind)
        size = (SQLULEN)*ind + 1;
    if (SQL_SUCCEEDED(SQLBindParameter(r->st, n, SQL_PARAM_INPUT, SQL_C_CHAR, type, size,
                                       digits, (SQLPOINTER)v, *ind, ind)))
        return CTX_CONN_OK;
    return stmt_failed(r, SQL_HANDLE_STMT, r->st, "binding the cursor:");
}

/* build_select - the configured columns, the cursor condition and the order. */
static int build_select(odbc_reader *r, ctx_buf *b)
{
    const sqlmap_stream *s = r->m.s;
    const odbc_db *db = r->db;
    int bad = 0;

    for (size_t i = 0; i < r->ncols; i++)
        bad |= ctx_buf_puts(b, i ? ", " : "SELECT ") || append_col(b, db, r->cols[i].name);
    if (r->m.perm) {
        /* no cursor, so no condition and no order (no sort) */
        bad |= ctx_buf_puts(b, " FROM ") ||
               sqlmap_source(b, s->table, s->query, odbc_ident, (void *)db);
        return bad ? conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory") : CTX_CONN_OK;
    }
    bad |= ctx_buf_puts(b, " FROM ") || sqlmap_source(b, s->table, s->query, odbc_ident, (void *)db);
    if (r->m.mode == SQLMAP_CURSOR_INCR && s->lookback_seconds && r->lookback.data) {
        bad |= ctx_buf_puts(b, " WHERE ") || append_col(b, db, s->updated_at) ||
               ctx_buf_puts(b, " >= ?");
    } else if (r->m.mode == SQLMAP_CURSOR_INCR) {
        /* (ts, id) > (?, ?) spelled out: not every database has row values. */
        bad |= ctx_buf_puts(b, " WHERE (") || append_col(b, db, s->updated_at) ||
               ctx_buf_puts(b, " > ? OR (") || append_col(b, db, s->updated_at) ||
               ctx_buf_puts(b, " = ? AND ") || append_col(b, db, s->id) ||
               ctx_buf_puts(b, " > ?))");
    } else if (r->m.mode == SQLMAP_CURSOR_RESUME) {
        bad |= ctx_buf_puts(b, " WHERE ") || append_col(b, db, s->id) || ctx_buf_puts(b, " > ?");
    }
    bad |= ctx_buf_puts(b, " ORDER BY ");
    if (s->updated_at)
        bad |= append_col(b, db, s->updated_at) || ctx_buf_puts(b, ", ");
    bad |= append_col(b, db, s->id);
    return bad ? conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory") : CTX_CONN_OK;
}

/* meta_json - the metadata columns as a JSON object; numbers and booleans typed. */
static const char *meta_json(odbc_reader *r, size_t first)
{
    json_t *o;

    json_decref(r->meta);
    free(r->meta_text);
    r->meta_text = NULL;
    if (!(o = r->meta = json_object()))
        return NULL;
    for (size_t k = first; k < r->ncols; k++) {
        const odbc_col *v = &r->v[k];
        const char *t = v->buf.data ? v->buf.data : "";
        char *end = NULL;
        json_t *j;
        if (v->null)
            j = json_null();
        else if (v->type == SQL_BIT)
            j = json_boolean(truthy(v));
        else if (is_integer(v->type) && (strtoll(t, &end, 10), end && !*end && *t))
            j = json_integer(strtoll(t, NULL, 10));
        else if ((v->type == SQL_REAL || v->type == SQL_FLOAT || v->type == SQL_DOUBLE) &&
                 (strtod(t, &end), end && !*end && *t))
            j = json_real(strtod(t, NULL));
        else
            j = json_stringn(t, v->buf.len);
        if (!j || json_object_set_new(o, r->cols[k].name, j))
            return NULL;
    }
    return r->meta_text = ctx_json_text(o, JSON_COMPACT);
}

static sqlmap_val as_val(const odbc_col *c)
{
    sqlmap_val v = {NULL, 0};
    if (!c->null) {
        v.p = c->buf.data ? c->buf.data : "";
        v.len = c->buf.len;
    }
    return v;
}

/* emit_row - the current row's values, mapped, to sqlmap_emit_row. */
static int emit_row(odbc_reader *r)
{
    sqlmap_val body[64];
    sqlmap_row m;
    size_t k, nbody = 0;

    memset(&m, 0, sizeof m);
    for (k = 0; k < r->ncols; k++) {
        const odbc_col *v = &r->v[k];
        switch (r->cols[k].role) {
        case SQLMAP_COL_ID: m.id = as_val(v); break;
        case SQLMAP_COL_TS:
            m.ts = as_val(v);
            if (!v->null && !is_integer(v->type))
                if (parse_time(v->buf.data, &m.ts_ms))
                    m.ts_ms = 0;
            break;
        case SQLMAP_COL_TITLE: m.title = as_val(v); break;
        case SQLMAP_COL_BODY: body[nbody++] = as_val(v); break;
        case SQLMAP_COL_URL: m.url = as_val(v); break;
        case SQLMAP_COL_ACL: m.acl[r->cols[k].sub] = as_val(v); break;
        case SQLMAP_COL_EVERYONE: m.everyone = truthy(v); break;
        case SQLMAP_COL_DELETED: m.deleted = truthy(v); break;
        case SQLMAP_COL_META:
            if (!m.meta.p) {
                if (!(m.meta.p = meta_json(r, k)))
                    return conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
                m.meta.len = strlen(m.meta.p);
            }
            break;
        }
    }
    m.body = body;
    m.nbody = nbody;
    return sqlmap_emit_row(&r->m, &m);
}

static int read_stream(odbc_reader *r, const char *state, int full)
{
    ctx_buf sql = CTX_BUF_INIT;
    SQLLEN ind[3];
    SQLRETURN sr;
    char msg[MSG], st[6];
    int rc;

    if ((rc = sqlmap_load_state(&r->m, state, full)))
        return rc;
    if ((rc = describe(r)))
        goto done;
    if (r->m.mode == SQLMAP_CURSOR_INCR && r->m.s->lookback_seconds && !move_back(r)) {
        ctx_buf_free(&r->lookback);
        sqlmap_log(r->m.host, r->m.em, CTX_CONN_LOG_WARN, "stream \"%s\": cannot move the"
                   " cursor \"%s\" back by lookback_seconds; reading after it", r->m.s->name,
                   r->m.cur_ts.data);
    }
    if ((rc = build_select(r, &sql)))
        goto done;
    sqlmap_log(r->m.host, r->m.em, CTX_CONN_LOG_DEBUG, "stream \"%s\": %s", r->m.s->name,
               sql.data);
    if (!(r->piece = ctx_malloc(PIECE))) {
        rc = conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, r->db->dbc, &r->st))) {
        r->st = NULL;
        rc = stmt_failed(r, SQL_HANDLE_DBC, r->db->dbc, "cannot make a statement:");
        goto done;
    }
    /* Bound from copies: emitting rows moves r->m's cursor while the driver may still read. */
    if (ctx_buf_append(&r->param[0], r->m.cur_ts.data ? r->m.cur_ts.data : "", r->m.cur_ts.len) ||
        ctx_buf_append(&r->param[1], r->m.cur_id.data ? r->m.cur_id.data : "", r->m.cur_id.len)) {
        rc = conn_errf(r->m.e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    if (r->m.mode == SQLMAP_CURSOR_INCR && r->lookback.data) {
        rc = bind_text(r, 1, &r->lookback, r->ts_type, r->ts_size, r->ts_digits, &ind[0]);
    } else if (r->m.mode == SQLMAP_CURSOR_INCR) {
        if (!(rc = bind_text(r, 1, &r->param[0], r->ts_type, r->ts_size, r->ts_digits,
                             &ind[0])) &&
            !(rc = bind_text(r, 2, &r->param[0], r->ts_type, r->ts_size, r->ts_digits,
                             &ind[1])))
            rc = bind_text(r, 3, &r->param[1], r->id_type, r->id_size, r->id_digits, &ind[2]);
    } else if (r->m.mode == SQLMAP_CURSOR_RESUME) {
        rc = bind_text(r, 1, &r->param[1], r->id_type, r->id_size, r->id_digits, &ind[0]);
    }
    if (rc)
        goto done;
    sr = SQLExecDirect(r->st, (SQLCHAR *)sql.data, SQL_NTS);
    if (!SQL_SUCCEEDED(sr) && sr != SQL_NO_DATA) {
        rc = stmt_failed(r, SQL_HANDLE_STMT, r->st, "");
        goto done;
    }
    while (sr != SQL_NO_DATA && (sr = SQLFetch(r->st)) != SQL_NO_DATA) {
        if (!SQL_SUCCEEDED(sr)) {
            rc = stmt_failed(r, SQL_HANDLE_STMT, r->st, "fetching a row failed:");
            goto done;
        }
        for (size_t k = 0; k < r->ncols; k++) {
            if ((rc = get_value(r->st, (SQLUSMALLINT)(k + 1), &r->v[k], r->piece, msg, st))) {
                if (rc == CTX_CONN_ENOMEM) {
                    rc = conn_errf(r->m.e, rc, "out of memory");
                } else if (is_conn_lost(st, r->db->dbc)) {
                    rc = conn_errf(r->m.e, CTX_CONN_ESOURCE, "streams[%zu]: connection to the"
                               " server lost after %lld rows of stream \"%s\" (%s); the next"
                               " run resumes from the last checkpoint", r->m.si,
                               (long long)r->m.rows, r->m.s->name, msg);
                } else {
                    rc = conn_errf(r->m.e, CTX_CONN_ESOURCE, "streams[%zu].%s: reading"
                                    " column \"%s\" of stream \"%s\" after %lld rows: %s",
                                    r->m.si, r->cols[k].key, r->cols[k].name, r->m.s->name,
                                    (long long)r->m.rows, msg);
                }
                goto done;
            }
        }
        if ((rc = emit_row(r)))
            goto done;
    }
    SQLCloseCursor(r->st);
    rc = sqlmap_finish(&r->m);
done:
    ctx_buf_free(&sql);
    return rc;
}

/* ---- reading principals ---- */

/*
 * read_query - run one principals query as SELECT * FROM (<query>) src
 * ORDER BY 1[, 2] and hand each row to sqlmap_user or sqlmap_group_row.
 * Columns are taken by position: (account, email, display_name) and
 * (group_name, member).
 */
static int read_query(const odbc_conn *c, odbc_db *db, sqlmap_princ_reader *pr, int groups,
                      ctx_conn_error *e)
{
    const char *key = groups ? "groups_query" : "users_query";
    const char *q = groups ? c->sc.princ.groups_query : c->sc.princ.users_query;
    int want = groups ? 2 : 3, rc = CTX_CONN_OK, k;
    ctx_buf sql = CTX_BUF_INIT;
    odbc_col v[3];
    char msg[MSG], state[6], *piece = NULL;
    SQLHSTMT st = NULL;
    SQLSMALLINT n = 0;
    SQLRETURN sr;

    memset(v, 0, sizeof v);
    for (k = 0; k < 3; k++)
        v[k].ctype = SQL_C_WCHAR;
    if (ctx_buf_puts(&sql, "SELECT * FROM ") || sqlmap_source(&sql, NULL, q, odbc_ident, db) ||
        ctx_buf_puts(&sql, groups ? " ORDER BY 1, 2" : " ORDER BY 1") ||
        !(piece = ctx_malloc(PIECE))) {
        rc = conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
        goto done;
    }
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, db->dbc, &st))) {
        st = NULL;
        diag(SQL_HANDLE_DBC, db->dbc, msg, sizeof msg, state);
        rc = conn_errf(e, CTX_CONN_ESOURCE, "principals.%s: %s", key, msg);
        goto done;
    }
    if (!SQL_SUCCEEDED(SQLExecDirect(st, (SQLCHAR *)sql.data, SQL_NTS)) ||
        !SQL_SUCCEEDED(SQLNumResultCols(st, &n)))
        goto failed;
    if (n < want) {
        rc = conn_errf(e, CTX_CONN_ECONFIG, "principals.%s: returns %d column%s; it must"
                        " return %s", key, (int)n, n == 1 ? "" : "s",
                        groups ? "(group_name, member)" : "(account, email, display_name)");
        goto done;
    }
    while ((sr = SQLFetch(st)) != SQL_NO_DATA) {
        if (!SQL_SUCCEEDED(sr))
            goto failed;
        for (k = 0; k < want; k++)
            if ((rc = get_value(st, (SQLUSMALLINT)(k + 1), &v[k], piece, msg, state))) {
                rc = conn_errf(e, rc, "principals.%s: %s", key, msg);
                goto done;
            }
#define TEXT(i) (v[i].null ? NULL : v[i].buf.data ? v[i].buf.data : "")
        if (v[0].null)
            continue;
        rc = groups ? sqlmap_group_row(pr, TEXT(0), TEXT(1))
                    : sqlmap_user(pr, TEXT(0), TEXT(1), TEXT(2));
#undef TEXT
        if (rc)
            goto done;
    }
    goto done;
failed:
    diag(SQL_HANDLE_STMT, st, msg, sizeof msg, state);
    rc = conn_errf(e, !strcmp(state, "42000") || !strcmp(state, "42601") ? CTX_CONN_ECONFIG
                                                                          : CTX_CONN_ESOURCE,
                    "principals.%s: %s", key, msg);
done:
    if (st)
        SQLFreeHandle(SQL_HANDLE_STMT, st);
    for (k = 0; k < 3; k++)
        ctx_buf_free(&v[k].buf);
    ctx_free(piece);
    ctx_buf_free(&sql);
    return rc;
}

/* check_query - run a principals query with no rows: does it parse and run? */
static int check_query(odbc_db *db, const char *q, const char *key, ctx_conn_error *e)
{
    ctx_buf sql = CTX_BUF_INIT;
    char msg[MSG], state[6];
    SQLHSTMT st = NULL;
    int rc = CTX_CONN_OK;

    if (ctx_buf_puts(&sql, "SELECT * FROM ") || sqlmap_source(&sql, NULL, q, odbc_ident, db) ||
        ctx_buf_puts(&sql, " WHERE 1=0")) {
        ctx_buf_free(&sql);
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    }
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, db->dbc, &st))) {
        st = NULL;
        diag(SQL_HANDLE_DBC, db->dbc, msg, sizeof msg, state);
        rc = conn_errf(e, CTX_CONN_ESOURCE, "principals.%s: %s", key, msg);
    } else if (!SQL_SUCCEEDED(SQLExecDirect(st, (SQLCHAR *)sql.data, SQL_NTS))) {
        diag(SQL_HANDLE_STMT, st, msg, sizeof msg, state);
        rc = conn_errf(e, CTX_CONN_ECONFIG, "principals.%s: %s", key, msg);
    }
    if (st)
        SQLFreeHandle(SQL_HANDLE_STMT, st);
    ctx_buf_free(&sql);
    return rc;
}

/* What run_query needs: sqlmap_read_principals hands it back. */
typedef struct odbc_princ_arg {
    const odbc_conn *c;
    odbc_db *db;
    ctx_conn_error *e;
} odbc_princ_arg;

static int run_query(void *arg, sqlmap_princ_reader *pr, int groups)
{
    odbc_princ_arg *a = arg;
    return read_query(a->c, a->db, pr, groups, a->e);
}

/* ---- the vtable ---- */

/*
 * odbc_read_any - xRead, or (perm) xReadPermissions: the id, ACL,
 * allow_everyone and deleted columns only, one ACL message per live row.
 * The principals stream is read the same way in both.
 */
static int odbc_read_any(void *conn, const char *stream, const char *state, int full,
                         int perm, const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    const odbc_conn *c = conn;
    const sqlmap_stream *s = NULL;
    odbc_db db;
    odbc_reader r;
    size_t si = 0;
    int rc;

    if ((rc = sqlmap_pick(&c->cfg.sql, &c->sc, stream, &s, &si, e)) ||
        (rc = odbc_connect(c, &db, e)))
        return rc;
    if (!s) {
        odbc_princ_arg a = {c, &db, e};
        rc = sqlmap_read_principals(&c->sc, state, host, em, e, run_query, &a);
    } else {
        memset(&r, 0, sizeof r);
        r.c = c;
        r.db = &db;
        sqlmap_reader_init(&r.m, s, si, c->cfg.sql.state_every, host, em, e);
        r.m.perm = perm;
        rc = read_stream(&r, perm ? NULL : state, full || perm);
        reader_free(&r);
    }
    db_close(&db);
    return rc;
}

static int odbc_read(void *conn, const char *stream, const char *state, int full,
                     const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    return odbc_read_any(conn, stream, state, full, 0, host, em, e);
}

static int odbc_read_permissions(void *conn, const char *stream, const char *state,
                                 const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    return odbc_read_any(conn, stream, state, 0, 1, host, em, e);
}

/*
 * odbc_check - connect, then describe every stream and run every
 * principals query, so a wrong table, column or query shows up here.
 */
static int odbc_check(void *conn, ctx_conn_error *e)
{
    const odbc_conn *c = conn;
    odbc_db db;
    odbc_reader r;
    size_t i;
    int rc;

    if ((rc = odbc_connect(c, &db, e)))
        return rc;
    for (i = 0; i < c->cfg.sql.streams.n && !rc; i++) {
        memset(&r, 0, sizeof r);
        r.c = c;
        r.db = &db;
        sqlmap_reader_init(&r.m, (const sqlmap_stream *)c->cfg.sql.streams.v + i, i, 1, NULL,
                           NULL, e);
        rc = describe(&r);
        reader_free(&r);
    }
    if (!rc && c->sc.princ.users_query)
        rc = check_query(&db, c->sc.princ.users_query, "users_query", e);
    if (!rc && c->sc.princ.groups_query)
        rc = check_query(&db, c->sc.princ.groups_query, "groups_query", e);
    db_close(&db);
    return rc;
}

static int odbc_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    const odbc_conn *c = conn;
    return sqlmap_discover(&c->cfg.sql, &c->sc, fn, arg, e);
}

const ctx_connector ctx__odbc_connector = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_connector), "odbc", "1.0.0",
    odbc_spec, odbc_open, odbc_check, odbc_discover, odbc_read, odbc_close,
    /* ---- version 2 ---- */
    odbc_read_permissions,
};
