/*
 * test_sqlmap.c - the mapping the SQL connectors share, without a
 * database: rows in, messages out through a recording host. ACL value
 * forms, the cursor state, resuming, users and groups.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/sql/sqlmap.h"

/* The recording host: each message as one line of text in out. */
static ctx_buf out;

static void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void line(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx_buf_puts(&out, buf);
    ctx_buf_puts(&out, "\n");
}

static void list(char *buf, size_t len, const char *const *v, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", v[i]);
}

static int h_record(ctx_emitter *em, const ctx_record *r)
{
    char a[256], d[256], l[256];
    (void)em;
    list(a, sizeof a, r->acl->allow, r->acl->n_allow);
    list(d, sizeof d, r->acl->deny, r->acl->n_deny);
    list(l, sizeof l, r->acl->labels, r->acl->n_labels);
    line("RECORD %s/%s title=%s body=%.*s url=%s allow=%s deny=%s labels=%s ms=%lld",
         r->stream, r->id, r->title, (int)r->body_len, r->body, r->url ? r->url : "-", a, d, l,
         (long long)r->updated_at_ms);
    return 0;
}

static int h_delete(ctx_emitter *em, const char *stream, const char *id)
{
    (void)em;
    line("DELETE %s/%s", stream, id);
    return 0;
}

static int h_principal(ctx_emitter *em, const ctx_principal *p)
{
    char m[256];
    (void)em;
    list(m, sizeof m, p->members, p->n_members);
    if (p->kind == CTX_PRINCIPAL_USER)
        line("USER %s maps_to=%s", p->id, p->maps_to ? p->maps_to : "-");
    else
        line("GROUP %s members=%s", p->id, m);
    return 0;
}

static int h_state(ctx_emitter *em, const char *stream, const char *state)
{
    (void)em;
    line("STATE %s %s", stream, state);
    return 0;
}

static void h_log(ctx_emitter *em, int level, const char *msg)
{
    (void)em, (void)level, (void)msg;
}

static const ctx_host host = {CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_host), h_record, h_delete,
                              NULL, h_principal, h_state, h_log, NULL};

static void reset(void)
{
    ctx_buf_reset(&out);
    ctx_buf_puts(&out, "");
}

static void fini(void)
{
    ctx_buf_free(&out);
}

TestSuite(sqlmap, .init = reset, .fini = fini);

/* A connector with only the shared keys. */
typedef struct t_cfg {
    sqlmap_cfg sql;
} t_cfg;

static const ctx_opt t_opts[] = {SQLMAP_OPTS(t_cfg, sql), CTX_OPT_END};

/* parse - the config text ('' for ""), checked; state_every defaults to 2. */
static int parse(t_cfg *g, sqlmap_conf *c, const char *text, ctx_error *err)
{
    char *t = strdup(text);
    int rc;

    for (char *p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    memset(g, 0, sizeof *g);
    memset(c, 0, sizeof *c);
    rc = ctx_opts_parse_text(t_opts, t, g, err);
    free(t);
    if (!rc && (rc = sqlmap_check(&g->sql, 2, c, err)))
        ctx_opts_free(t_opts, g);
    return rc;
}

static void done(t_cfg *g, sqlmap_conf *c)
{
    sqlmap_conf_free(c);
    ctx_opts_free(t_opts, g);
}

static sqlmap_val v(const char *s)
{
    sqlmap_val x = {s, s ? strlen(s) : 0};
    return x;
}

/* emit - one row of stream 0: id, ts, title, body, and the five ACL columns. */
static int emit(sqlmap_reader *r, const char *id, const char *ts, const char *allow_users,
                const char *allow_groups, const char *deny_users, const char *labels,
                int deleted)
{
    sqlmap_val body = v("text");
    sqlmap_row m;

    memset(&m, 0, sizeof m);
    m.id = v(id);
    m.ts = v(ts);
    m.title = v("T");
    m.body = &body;
    m.nbody = 1;
    m.acl[SQLMAP_ALLOW_USERS] = v(allow_users);
    m.acl[SQLMAP_ALLOW_GROUPS] = v(allow_groups);
    m.acl[SQLMAP_DENY_USERS] = v(deny_users);
    m.acl[SQLMAP_LABELS] = v(labels);
    m.deleted = deleted;
    m.ts_ms = 7;
    return sqlmap_emit_row(r, &m);
}

#define STREAM_CFG                                                                       \
    "{'streams': [{'name': 'docs', 'table': 'public.docs', 'id': 'id', 'title': 't',"     \
    " 'body': 'b', 'updated_at': 'ts', 'allow_users': 'u', 'allow_groups': 'g',"        \
    " 'deny_users': 'd', 'labels': 'l', 'acl_delimiter': ';',"                          \
    " 'url_template': 'https://x.test/{id}'}]}"

Test(sqlmap, acl_values_in_every_form)
{
    t_cfg g;
    sqlmap_conf c;
    sqlmap_reader r;
    ctx_conn_error e;
    ctx_error err;

    cr_assert_eq(parse(&g, &c, STREAM_CFG, &err), CTX_OK, "%s", err.text);
    sqlmap_reader_init(&r, (const sqlmap_stream *)g.sql.streams.v, 0, g.sql.state_every, &host,
                       NULL, &e);
    cr_assert_eq(sqlmap_load_state(&r, NULL, 0), CTX_OK);
    /* Delimited, with blanks and prefixes already there. */
    cr_assert_eq(emit(&r, "1", "2024-01-01", " ann ; user:bob;;", "eng;group:ops", NULL,
                      "pii", 0), CTX_OK);
    /* A JSON array (numbers too) and a PostgreSQL array literal with quotes and NULL. */
    cr_assert_eq(emit(&r, "2", "2024-01-02", "[\"ann\", 42]", "{eng,\"big team\",NULL}",
                      "{everyone}", "[\"a;b\"]", 0), CTX_OK);
    /* A soft-deleted row; an id that needs %-encoding in the URL. */
    cr_assert_eq(emit(&r, "3", "2024-01-03", "ann", NULL, NULL, NULL, 1), CTX_OK);
    cr_assert_eq(emit(&r, "a/b c", "2024-01-04", "ann", NULL, NULL, NULL, 0), CTX_OK);
    cr_assert_eq(sqlmap_finish(&r), CTX_OK);
    cr_assert_str_eq(out.data,
        "RECORD docs/1 title=T body=text url=https://x.test/1 allow=user:ann,user:bob,"
        "group:eng,group:ops deny= labels=pii ms=7\n"
        "RECORD docs/2 title=T body=text url=https://x.test/2 allow=user:ann,user:42,"
        "group:eng,group:big team deny=everyone labels=a;b ms=7\n"
        "STATE docs {\"cursor_ts\":\"2024-01-02\",\"cursor_id\":\"2\"}\n"
        "DELETE docs/3\n"
        "RECORD docs/a/b c title=T body=text url=https://x.test/a%2Fb%20c allow=user:ann deny="
        " labels= ms=7\n"
        "STATE docs {\"cursor_ts\":\"2024-01-04\",\"cursor_id\":\"a/b c\"}\n"
        "STATE docs {\"cursor_ts\":\"2024-01-04\",\"cursor_id\":\"a/b c\"}\n");
    sqlmap_reader_free(&r);
    done(&g, &c);
}

Test(sqlmap, where_a_read_starts)
{
    t_cfg g;
    sqlmap_conf c;
    sqlmap_reader r;
    ctx_conn_error e;
    ctx_error err;

    cr_assert_eq(parse(&g, &c, STREAM_CFG, &err), CTX_OK, "%s", err.text);
    sqlmap_reader_init(&r, (const sqlmap_stream *)g.sql.streams.v, 0, 100, &host, NULL, &e);
    cr_assert_eq(sqlmap_load_state(&r, "{\"cursor_ts\":\"t\",\"cursor_id\":\"9\"}", 0), CTX_OK);
    cr_assert_eq(r.mode, SQLMAP_CURSOR_INCR);
    cr_assert_str_eq(r.cur_ts.data, "t");
    cr_assert_str_eq(r.cur_id.data, "9");
    cr_assert_eq(sqlmap_load_state(&r, "{\"cursor_ts\":\"t\",\"cursor_id\":\"9\"}", 1), CTX_OK);
    cr_assert_eq(r.mode, SQLMAP_CURSOR_NONE, "a full read ignores the state");
    cr_assert_eq(sqlmap_load_state(&r, "not json", 0), CTX_OK);
    cr_assert_eq(r.mode, SQLMAP_CURSOR_NONE);
    /* A row without a timestamp is sent but does not move the cursor. */
    cr_assert_eq(sqlmap_load_state(&r, "{\"cursor_ts\":\"t\",\"cursor_id\":\"9\"}", 0), CTX_OK);
    cr_assert_eq(emit(&r, "10", NULL, "ann", NULL, NULL, NULL, 0), CTX_OK);
    cr_assert_eq(emit(&r, NULL, "u", "ann", NULL, NULL, NULL, 0), CTX_OK);
    cr_assert_eq(sqlmap_finish(&r), CTX_OK);
    cr_assert(strstr(out.data, "RECORD docs/10 "), "%s", out.data);
    cr_assert(!strstr(out.data, "RECORD docs/(null)"), "a NULL id is skipped: %s", out.data);
    cr_assert(strstr(out.data, "STATE docs {\"cursor_ts\":\"t\",\"cursor_id\":\"9\"}\n"), "%s",
              out.data);
    sqlmap_reader_free(&r);
    done(&g, &c);
}

Test(sqlmap, config_rules_name_the_key)
{
    static const struct {
        const char *cfg, *want;
    } bad[] = {
        {"{}", "streams: configure at least one stream"},
        {"{'streams': [{'name': 'a', 'id': 'id', 'allow_everyone': true}]}",
         "streams[0]: set exactly one of \"table\" and \"query\""},
        {"{'streams': [{'name': 'principals', 'table': 't', 'id': 'id'}]}",
         "streams[0].name: \"principals\" is not a valid stream name"},
        {"{'streams': [{'name': 'a', 'table': 't', 'id': 'id'}]}", "streams[0]: no permissions"},
        {"{'streams': [{'name': 'a', 'table': 't.', 'id': 'id', 'allow_everyone': true}]}",
         "streams[0].table: \"t.\" is not a table name"},
        {"{'password_env': 'X', 'password_file': 'f', 'principals': {'users_query': 'q'}}",
         "password_env, password_file: set one of them"},
        {"{'principals': {}}", "principals: set groups_query, users_query or both"},
        {"{'principals': {'group_query': 'q'}}", "did you mean \"groups_query\""},
        {"{'retries': 99, 'principals': {'users_query': 'q'}}", "retries: 99 is out of range"},
    };
    t_cfg g;
    sqlmap_conf c;
    ctx_error err;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(parse(&g, &c, bad[i].cfg, &err), CTX_ECONFIG, "%s was taken", bad[i].cfg);
        cr_assert(strstr(err.text, bad[i].want), "%s: %s", bad[i].cfg, err.text);
        sqlmap_conf_free(&c);
    }
}

Test(sqlmap, users_and_groups)
{
    t_cfg g;
    sqlmap_conf c;
    sqlmap_princ_reader p;
    ctx_conn_error e;
    ctx_error err;

    cr_assert_eq(parse(&g, &c, "{'principals': {'users_query': 'u', 'groups_query': 'g'}}",
                       &err), CTX_OK, "%s", err.text);
    cr_assert_eq(sqlmap_principals_begin(&p, "{\"groups\":[\"group:old\",\"group:eng\"]}", &host,
                                         NULL, &e), CTX_OK);
    cr_assert_eq(sqlmap_user(&p, "ann", "ann@x.test", "Ann"), CTX_OK);
    cr_assert_eq(sqlmap_user(&p, "user:bob", NULL, NULL), CTX_OK);
    cr_assert_eq(sqlmap_user(&p, "cy@x.test", "cy@x.test", NULL), CTX_OK);
    cr_assert_eq(sqlmap_group_row(&p, "eng", "ann"), CTX_OK);
    cr_assert_eq(sqlmap_group_row(&p, "group:eng", "group:ops"), CTX_OK);
    cr_assert_eq(sqlmap_group_row(&p, "eng", "everyone"), CTX_OK);
    cr_assert_eq(sqlmap_group_row(&p, "ops", NULL), CTX_OK);
    cr_assert_eq(sqlmap_principals_end(&p), CTX_OK);
    cr_assert_str_eq(out.data,
        "USER user:ann maps_to=user:ann@x.test\n"
        "USER user:bob maps_to=-\n"
        "USER user:cy@x.test maps_to=-\n"
        "GROUP group:eng members=user:ann,group:ops\n"
        "GROUP group:ops members=\n"
        "GROUP group:old members=\n"
        "STATE principals {\"groups\":[\"group:eng\",\"group:ops\"]}\n");
    sqlmap_principals_free(&p);
    done(&g, &c);
}

static int ident(ctx_buf *b, const char *name, size_t len, void *arg)
{
    (void)arg;
    return ctx_buf_puts(b, "[") || ctx_buf_append(b, name, len) || ctx_buf_puts(b, "]");
}

Test(sqlmap, source_sql)
{
    ctx_buf b = CTX_BUF_INIT;

    cr_assert_eq(sqlmap_source(&b, "crm.tickets", NULL, ident, NULL), CTX_OK);
    cr_assert_str_eq(b.data, "[crm].[tickets] src");
    ctx_buf_reset(&b);
    cr_assert_eq(sqlmap_source(&b, NULL, "SELECT 1 ;\n ", ident, NULL), CTX_OK);
    cr_assert_str_eq(b.data, "(SELECT 1\n) src");
    ctx_buf_free(&b);
}
