/*
 * sqlmap.h - what the SQL connectors (postgres, odbc) share: the option
 * tables of a stream and of the principals queries and their checks, the
 * password and retry helpers, the (updated_at, id) cursor state, ACL value
 * splitting, and turning one mapped row into a RECORD or a DELETE and
 * users and group rows into PRINCIPALs. A connector only talks to its
 * database: it builds the SQL, fetches the values and hands them here.
 */
#ifndef CTX_CONNECTORS_SQLMAP_H
#define CTX_CONNECTORS_SQLMAP_H

#include <stddef.h>
#include <stdint.h>

#include "../../core/opts.h"
#include "../../core/util.h"
#include "../registry.h"
#include "../sdk/ctxgate/connector.h"

/* ---- configuration ---- */

/* One streams[] entry; parsed by sqlmap_stream_opts. */
typedef struct sqlmap_stream {
    char *name, *table, *query, *id, *title;
    ctx_strlist body;
    char *url, *url_template, *updated_at;
    int64_t lookback_seconds;
    char *allow_users, *allow_groups, *deny_users, *deny_groups;
    json_t *allow_everyone;   /* a column name (string) or a boolean */
    char *labels, *acl_delimiter, *deleted;
    ctx_strlist metadata;
} sqlmap_stream;

/* The "principals" object; parsed by sqlmap_principals_opts. */
typedef struct sqlmap_principals {
    char *groups_query, *users_query;
} sqlmap_principals;

/* The keys every SQL connector has, embedded in its config struct. */
typedef struct sqlmap_cfg {
    char *password_env, *password_file;
    int64_t connect_timeout, retries, state_every;
    ctx_objlist streams;      /* of sqlmap_stream */
    json_t *principals;
} sqlmap_cfg;

extern const ctx_opt sqlmap_stream_opts[];
extern const ctx_opt sqlmap_principals_opts[];

/*
 * SQLMAP_OPTS - the option rows of sqlmap_cfg for a connector whose config
 * struct `type` holds it in `member`; put them into the connector's table
 * after its own keys. state_every has no default here: sqlmap_check sets it.
 */
#define SQLMAP_OPTS(type, member)                                                        \
    {"password_env", CTX_OPT_STRING, NULL, offsetof(type, member.password_env), 0,       \
     "name of the environment variable holding the password", NULL, 0},                 \
    {"password_file", CTX_OPT_STRING, NULL, offsetof(type, member.password_file), 0,     \
     "file whose first line is the password", NULL, 0},                                  \
    {"connect_timeout", CTX_OPT_INT, "10", offsetof(type, member.connect_timeout), 0,    \
     "seconds to wait for one connection attempt (0 = wait forever)", NULL, 0},          \
    {"retries", CTX_OPT_INT, "3", offsetof(type, member.retries), 0,                     \
     "further connection attempts, with exponential backoff, before the run fails",     \
     NULL, 0},                                                                           \
    {"state_every", CTX_OPT_INT, NULL, offsetof(type, member.state_every), 0,            \
     "rows between checkpoints (default: batch_rows)", NULL, 0},                         \
    {"streams", CTX_OPT_OBJLIST, NULL, offsetof(type, member.streams), 0,                \
     "tables or queries to index, one stream each", sqlmap_stream_opts,                  \
     sizeof(sqlmap_stream)},                                                             \
    {"principals", CTX_OPT_JSON, NULL, offsetof(type, member.principals), 0,             \
     "users and groups: {\"groups_query\": ..., \"users_query\": ...}", NULL, 0}

/* What a connector keeps of its parsed config besides its own keys. */
typedef struct sqlmap_conf {
    sqlmap_principals princ;
    int has_princ;
} sqlmap_conf;

/*
 * sqlmap_check - the rules of sqlmap_cfg the option table cannot express:
 * password_env/password_file, ranges, principals (parsed into out->princ),
 * each stream. A state_every of 0 becomes def_state_every. Errors name the
 * key and the fix.
 */
int sqlmap_check(sqlmap_cfg *g, int64_t def_state_every, sqlmap_conf *out, ctx_error *err);

/* sqlmap_conf_free - free what sqlmap_check put into *c. */
void sqlmap_conf_free(sqlmap_conf *c);

/*
 * sqlmap_spec - the JSON Schema of a connector's table whose rows include
 * SQLMAP_OPTS, with principals and allow_everyone spelled out. New text
 * (free() it); NULL when out of memory.
 */
char *sqlmap_spec(const ctx_opt *table, const char *title);

/*
 * sqlmap_open - xOpen of a SQL connector: a zeroed handle of conn_size
 * bytes whose first member is the config struct that table fills, then
 * check (the connector's own rules; it ends with sqlmap_check). On failure
 * the handle is released with close_fn and the message goes into e.
 */
int sqlmap_open(const ctx_opt *table, size_t conn_size, int (*check)(void *conn, ctx_error *err),
                void (*close_fn)(void *conn), const char *config_json, void **pconn,
                ctx_conn_error *e);

/* sqlmap_find_stream - streams[] entry by name (borrowed), *idx its index; or NULL. */
const sqlmap_stream *sqlmap_find_stream(const sqlmap_cfg *g, const char *name, size_t *idx);

/*
 * sqlmap_pick - what xRead was asked for: *s = NULL for "principals" (when
 * configured), else the streams[] entry and its index. An unknown name is
 * CTX_CONN_EINVAL.
 */
int sqlmap_pick(const sqlmap_cfg *g, const sqlmap_conf *c, const char *stream,
                const sqlmap_stream **s, size_t *si, ctx_conn_error *e);

/* sqlmap_discover - "principals" (when configured) then one per stream. */
int sqlmap_discover(const sqlmap_cfg *g, const sqlmap_conf *c, ctx_stream_fn fn, void *arg,
                    ctx_conn_error *e);

/* ---- small helpers ---- */

/* sqlmap_log - a formatted LOG message through host (one line, at most 1 KB). */
void sqlmap_log(const ctx_host *host, ctx_emitter *em, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * sqlmap_password - the password from password_env or password_file into
 * *pw (new; release it with ctx_wipe_free), or *pw = NULL when neither
 * is set.
 */
int sqlmap_password(const sqlmap_cfg *g, char **pw, ctx_conn_error *e);
/* sqlmap_password_hint - "check password_env", ... for auth failures. Static. */
const char *sqlmap_password_hint(const sqlmap_cfg *g);
/* sqlmap_backoff - sleep *ms, then double it up to the cap (10 s). */
void sqlmap_backoff(int64_t *ms);
#define SQLMAP_BACKOFF_MS 250

/* ---- SQL text ---- */

/* A connector's identifier quoting: append name[0..len) quoted to b; 0 or CTX_ENOMEM. */
typedef int (*sqlmap_ident_fn)(ctx_buf *b, const char *name, size_t len, void *arg);

/*
 * sqlmap_source - append "<table> src" with each part of "schema.name"
 * quoted by ident, or "(<query>\n) src" with trailing semicolons and blanks
 * dropped. No "AS": some databases refuse it before a table alias.
 */
int sqlmap_source(ctx_buf *b, const char *table, const char *query, sqlmap_ident_fn ident,
                  void *arg);

/* ---- reading a document stream ---- */

enum { SQLMAP_ALLOW_USERS, SQLMAP_ALLOW_GROUPS, SQLMAP_DENY_USERS, SQLMAP_DENY_GROUPS,
       SQLMAP_LABELS, SQLMAP_ACL_N };

#define SQLMAP_MAX_METADATA 50
/* id, updated_at, title, url, 5 ACL columns, allow_everyone, deleted. */
#define SQLMAP_MAX_COLS (11 + SQLMAP_MAX_METADATA + 64)

/* Which config key a selected column comes from. */
enum { SQLMAP_COL_ID, SQLMAP_COL_TS, SQLMAP_COL_TITLE, SQLMAP_COL_BODY, SQLMAP_COL_URL,
       SQLMAP_COL_ACL, SQLMAP_COL_EVERYONE, SQLMAP_COL_DELETED, SQLMAP_COL_META };

/* A configured column: the key naming it in messages and the column. */
typedef struct sqlmap_col {
    int role;            /* SQLMAP_COL_* */
    int sub;             /* body/metadata index, or SQLMAP_ALLOW_USERS.. for ACL */
    char key[24];        /* "body[1]", "allow_users" */
    const char *name;    /* borrowed from the stream config */
} sqlmap_col;

/*
 * sqlmap_columns - the stream's configured columns in one fixed order (id,
 * updated_at, title, body..., url, ACL columns, allow_everyone, deleted,
 * metadata...) into out[SQLMAP_MAX_COLS]; returns how many. Body is
 * limited to 64 columns by sqlmap_check.
 */
size_t sqlmap_columns(const sqlmap_stream *s, sqlmap_col *out);

/*
 * sqlmap_perm_col - whether a permission read selects columns of this role
 * (SQLMAP_COL_*): the id, the ACL columns, allow_everyone and deleted.
 */
int sqlmap_perm_col(int role);

/* One value of a row: p == NULL is SQL NULL, else p[len] is a NUL. Borrowed. */
typedef struct sqlmap_val {
    const char *p;
    size_t len;
} sqlmap_val;

/* One row, mapped; every pointer borrowed for the call. */
typedef struct sqlmap_row {
    sqlmap_val id, ts, title, url, meta;   /* ts: the cursor value as text */
    const sqlmap_val *body;                /* nbody parts, NULL parts skipped */
    size_t nbody;
    sqlmap_val acl[SQLMAP_ACL_N];
    int everyone, deleted;                 /* already read as booleans */
    int64_t ts_ms;                         /* 0 when unknown */
} sqlmap_row;

enum { SQLMAP_CURSOR_NONE, SQLMAP_CURSOR_INCR, SQLMAP_CURSOR_RESUME };

/* The connector-independent part of reading one stream. */
typedef struct sqlmap_reader {
    const sqlmap_stream *s;
    size_t si;                 /* index in streams[], for messages */
    int64_t state_every;
    int acl_json;              /* ACL values are JSON (postgres's to_json), else text */
    const ctx_host *host;
    ctx_emitter *em;
    ctx_conn_error *e;
    int mode;                  /* SQLMAP_CURSOR_*: where this read starts */
    int perm;                  /* a permission read: rows become ACLs, no cursor */
    ctx_buf cur_ts, cur_id;    /* cursor of the last row emitted (or the old state) */
    int have_cursor;
    int64_t rows, since_state, null_ids, null_ts;
    ctx_buf body, url, acl_text;
    ctx_strvec allow, deny, labels;
} sqlmap_reader;

/* sqlmap_reader_init - zero *r and set what it reads; free with sqlmap_reader_free. */
void sqlmap_reader_init(sqlmap_reader *r, const sqlmap_stream *s, size_t si,
                        int64_t state_every, const ctx_host *host, ctx_emitter *em,
                        ctx_conn_error *e);
/* sqlmap_reader_free - free the buffers of *r (not the stream or host, borrowed). */
void sqlmap_reader_free(sqlmap_reader *r);

/*
 * sqlmap_load_state - decide where this read starts (r->mode). With
 * updated_at: after the state's (cursor_ts, cursor_id). Without: after
 * cursor_id only when the state marks an interrupted pass ("partial").
 */
int sqlmap_load_state(sqlmap_reader *r, const char *state, int full);

/*
 * sqlmap_emit_row - one row as a RECORD or (deleted) a DELETE; moves the
 * cursor, and emits a STATE every state_every rows. In a permission read
 * (r->perm) a live row is an ACL message and no cursor is kept: the STATEs
 * are commit points only.
 */
int sqlmap_emit_row(sqlmap_reader *r, const sqlmap_row *row);

/* sqlmap_finish - the end of a pass: warnings about skipped rows, final STATE. */
int sqlmap_finish(sqlmap_reader *r);

/*
 * sqlmap_no_column - the error for streams[si].<key> naming a column the
 * source does not have; names (n of them) are the source's columns.
 */
int sqlmap_no_column(const sqlmap_reader *r, const char *key, const char *name,
                     const char *const *names, size_t n);

/*
 * sqlmap_resolve - find every configured column (cols, ncols) among the
 * source's column names; pos[i] receives the index of cols[i]. Fails with
 * sqlmap_no_column for the first one missing.
 */
int sqlmap_resolve(const sqlmap_reader *r, const sqlmap_col *cols, size_t ncols,
                   const char *const *names, size_t n, int *pos);

/* ---- principals ---- */

/* The read of the "principals" stream; see sqlmap_principals_begin. */
typedef struct sqlmap_princ_reader {
    const ctx_host *host;
    ctx_emitter *em;
    ctx_conn_error *e;
    json_t *gone, *seen;       /* the previous read's groups; this read's */
    ctx_buf cur;               /* the group being collected */
    int have;
    ctx_strvec members;
    ctx_buf fix[3];
} sqlmap_princ_reader;

/* sqlmap_principals_begin - state is the last STATE of "principals" or NULL. */
int sqlmap_principals_begin(sqlmap_princ_reader *p, const char *state, const ctx_host *host,
                            ctx_emitter *em, ctx_conn_error *e);

/*
 * sqlmap_user - one row of users_query: user:<account> (prefixed unless it
 * has it), mapped to user:<email> when the email is set and differs.
 * email and display_name may be NULL.
 */
int sqlmap_user(sqlmap_princ_reader *p, const char *account, const char *email,
                const char *display_name);

/*
 * sqlmap_group_row - one row of groups_query; rows must come sorted by
 * group so one group's members are held at a time. member NULL declares
 * the group; "group:x" is a nested group; anything else a user.
 */
int sqlmap_group_row(sqlmap_princ_reader *p, const char *group, const char *member);

/*
 * sqlmap_principals_end - emit the last group, clear the members of groups
 * no row named any more, and emit the STATE {"groups": [...]}.
 */
int sqlmap_principals_end(sqlmap_princ_reader *p);
/* sqlmap_principals_free - free what sqlmap_principals_begin and the rows kept. */
void sqlmap_principals_free(sqlmap_princ_reader *p);

/*
 * sqlmap_read_principals - the stream "principals": run(arg, pr, 0) for
 * users_query, run(arg, pr, 1) for groups_query (each configured one; run
 * hands its rows to sqlmap_user or sqlmap_group_row), then the STATE.
 */
typedef int (*sqlmap_query_fn)(void *arg, sqlmap_princ_reader *pr, int groups);
int sqlmap_read_principals(const sqlmap_conf *c, const char *state, const ctx_host *host,
                           ctx_emitter *em, ctx_conn_error *e, sqlmap_query_fn run, void *arg);

#endif
