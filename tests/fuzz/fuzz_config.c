/*
 * fuzz_config.c - libFuzzer target for the config path: ctxgate.json bytes
 * through json_loadb and ctx_config_parse (and, from a file, through
 * ctx_config_load), each source's connector keys through ctx_opts_parse with
 * a table that has every option type (nested OBJLIST, STRLIST, JSON), and
 * the files connector's xOpen. Checks that what parses holds the documented
 * ranges and that failures carry a message.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/opts.h"
#include "core/util.h"
#include "ctxgate/connector.h"
#include "fuzz.h"

extern const ctx_connector ctx__files_connector;

/* A connector config shaped like a database connector's: streams of tables. */
typedef struct child_cfg {
    char *name;
    ctx_strlist labels;
} child_cfg;

typedef struct stream_cfg {
    char *name, *table, *query, *id_column;
    ctx_strlist columns, allow;
    int64_t batch;
    int incremental;
    ctx_objlist children;
} stream_cfg;

typedef struct conn_cfg {
    char *path, *dsn;
    ctx_strlist extensions;
    int64_t state_every;
    int verbose;
    ctx_objlist streams;
    json_t *extra;
} conn_cfg;

static const ctx_opt child_opts[] = {
    {"name", CTX_OPT_STRING, NULL, offsetof(child_cfg, name), 1, "child name", NULL, 0},
    {"labels", CTX_OPT_STRLIST, NULL, offsetof(child_cfg, labels), 0, "labels", NULL, 0},
    CTX_OPT_END,
};

static const ctx_opt stream_opts[] = {
    {"name", CTX_OPT_STRING, NULL, offsetof(stream_cfg, name), 1, "stream name", NULL, 0},
    {"table", CTX_OPT_STRING, NULL, offsetof(stream_cfg, table), 0, "table", NULL, 0},
    {"query", CTX_OPT_STRING, NULL, offsetof(stream_cfg, query), 0, "query", NULL, 0},
    {"id_column", CTX_OPT_STRING, "id", offsetof(stream_cfg, id_column), 0, "key column",
     NULL, 0},
    {"columns", CTX_OPT_STRLIST, NULL, offsetof(stream_cfg, columns), 0, "columns", NULL, 0},
    {"allow", CTX_OPT_STRLIST, NULL, offsetof(stream_cfg, allow), 0, "principals", NULL, 0},
    {"batch", CTX_OPT_INT, "500", offsetof(stream_cfg, batch), 0, "rows per batch", NULL, 0},
    {"incremental", CTX_OPT_BOOL, "true", offsetof(stream_cfg, incremental), 0,
     "read only what changed", NULL, 0},
    {"children", CTX_OPT_OBJLIST, NULL, offsetof(stream_cfg, children), 0, "child tables",
     child_opts, sizeof(child_cfg)},
    CTX_OPT_END,
};

static const ctx_opt conn_opts[] = {
    {"path", CTX_OPT_STRING, ".", offsetof(conn_cfg, path), 0, "root", NULL, 0},
    {"dsn", CTX_OPT_STRING, NULL, offsetof(conn_cfg, dsn), 0, "connection string", NULL, 0},
    {"extensions", CTX_OPT_STRLIST, NULL, offsetof(conn_cfg, extensions), 0, "extensions",
     NULL, 0},
    {"state_every", CTX_OPT_INT, "1000", offsetof(conn_cfg, state_every), 0, "checkpoint",
     NULL, 0},
    {"verbose", CTX_OPT_BOOL, "false", offsetof(conn_cfg, verbose), 0, "chatty", NULL, 0},
    {"streams", CTX_OPT_OBJLIST, NULL, offsetof(conn_cfg, streams), 0, "streams",
     stream_opts, sizeof(stream_cfg)},
    {"extra", CTX_OPT_JSON, NULL, offsetof(conn_cfg, extra), 0, "anything", NULL, 0},
    CTX_OPT_END,
};

static void check_error(int rc, const ctx_error *err, const char *what)
{
    FUZZ_CHECK(err->code == rc, "%s: returned %d but err.code is %d", what, rc, err->code);
    FUZZ_CHECK(memchr(err->text, 0, sizeof err->text) && err->text[0],
               "%s: failed with %d and no message", what, rc);
}

static void check_strlist(const ctx_strlist *l)
{
    FUZZ_CHECK(l->n == 0 || l->v, "strlist of %zu without an array", l->n);
    for (size_t i = 0; i < l->n; i++)
        FUZZ_CHECK(l->v[i] && strlen(l->v[i]) < (1u << 20), "strlist[%zu] is NULL", i);
}

static void check_conn(const conn_cfg *c)
{
    const stream_cfg *s = c->streams.v;

    FUZZ_CHECK(c->path != NULL, "path has a default but is NULL");
    check_strlist(&c->extensions);
    FUZZ_CHECK(c->verbose == 0 || c->verbose == 1, "bool is %d", c->verbose);
    for (size_t i = 0; i < c->streams.n; i++) {
        const child_cfg *ch = s[i].children.v;
        FUZZ_CHECK(s[i].name && s[i].id_column, "streams[%zu]: required key is NULL", i);
        check_strlist(&s[i].columns);
        check_strlist(&s[i].allow);
        for (size_t j = 0; j < s[i].children.n; j++) {
            FUZZ_CHECK(ch[j].name, "streams[%zu].children[%zu].name is NULL", i, j);
            check_strlist(&ch[j].labels);
        }
    }
}

/* ctx_opts_parse, then the same ctx_opts_free a connector's xClose does. */
static void parse_conn(json_t *obj, const char *path)
{
    conn_cfg c;
    ctx_error err;
    int rc;

    memset(&c, 0, sizeof c);
    memset(&err, 0, sizeof err);
    rc = ctx_opts_parse(conn_opts, obj, &c, path, &err);
    if (rc) {
        check_error(rc, &err, "ctx_opts_parse");
        /* "On failure, whatever was filled is freed again." */
        FUZZ_CHECK(!c.path && !c.dsn && !c.extensions.v && !c.streams.v && !c.extra,
                   "ctx_opts_parse failed (%s) but left fields filled", err.text);
        return;
    }
    check_conn(&c);
    ctx_opts_free(conn_opts, &c);
    FUZZ_CHECK(!c.path && !c.dsn && !c.extensions.v && !c.streams.v && !c.extra,
               "ctx_opts_free left fields filled");
}

static int valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", *s))
            return 0;
    return 1;
}

static void check_config(const ctx_config *cfg)
{
    char store[4096];

    FUZZ_CHECK(cfg->chunk_max_tokens >= 16 && cfg->chunk_max_tokens <= 8192,
               "chunk_max_tokens %lld", (long long)cfg->chunk_max_tokens);
    FUZZ_CHECK(cfg->chunk_overlap_tokens >= 0 &&
                   cfg->chunk_overlap_tokens <= cfg->chunk_max_tokens / 2,
               "chunk_overlap_tokens %lld", (long long)cfg->chunk_overlap_tokens);
    FUZZ_CHECK(cfg->data_dir != NULL, "data_dir is NULL");
    ctx_config_store_path(cfg, store, sizeof store);
    for (size_t i = 0; i < cfg->nsources; i++) {
        const ctx_source_cfg *s = &cfg->sources[i];
        FUZZ_CHECK(s->name && valid_name(s->name), "sources[%zu].name invalid", i);
        FUZZ_CHECK(s->type, "sources[%zu].type is NULL", i);
        FUZZ_CHECK(s->index == i, "sources[%zu].index is %zu", i, s->index);
        FUZZ_CHECK(s->enabled == 0 || s->enabled == 1, "enabled is %d", s->enabled);
        FUZZ_CHECK(s->max_record_bytes >= 1024, "max_record_bytes %lld",
                   (long long)s->max_record_bytes);
        FUZZ_CHECK(json_is_object(s->conn), "sources[%zu].conn is not an object", i);
        FUZZ_CHECK(!json_object_get(s->conn, "name") && !json_object_get(s->conn, "type") &&
                       !json_object_get(s->conn, "enabled"),
                   "sources[%zu].conn kept a host key", i);
        FUZZ_CHECK(ctx_config_source(cfg, s->name) == s, "sources[%zu] not found by name", i);
    }
}

/* The files connector's xOpen parses the host's leftover keys as text. */
static void open_files(const ctx_source_cfg *s)
{
    ctx_conn_error e;
    void *conn = NULL;
    char *text = json_dumps(s->conn, JSON_COMPACT);
    int rc;

    if (!text)
        return;
    memset(&e, 0, sizeof e);
    rc = ctx__files_connector.xOpen(text, &conn, &e);
    if (rc) {
        FUZZ_CHECK(e.code == rc && e.text[0] && memchr(e.text, 0, sizeof e.text),
                   "files xOpen failed with %d, err.code %d, no message", rc, e.code);
        FUZZ_CHECK(conn == NULL, "files xOpen failed but set a handle");
    } else {
        FUZZ_CHECK(conn != NULL, "files xOpen succeeded without a handle");
        ctx__files_connector.xClose(conn);
    }
    free(text);
}

/* Where the input is written for ctx_config_load; removed at exit. */
static char dir[64], file[96];

static void cleanup(void)
{
    unlink(file);
    rmdir(dir);
}

/*
 * ctx_config_load on the same bytes: it must agree with ctx_config_parse
 * whenever the JSON is the kind it reads (an object or array at the root),
 * and its messages start with the file's name.
 */
static void load_file(const uint8_t *data, size_t size, int parse_rc, int same_json)
{
    ctx_config cfg;
    ctx_error err;
    FILE *f = fopen(file, "wb");
    int rc;

    FUZZ_CHECK(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write %s",
               file);
    memset(&err, 0, sizeof err);
    rc = ctx_config_load(file, &cfg, &err);
    if (rc) {
        check_error(rc, &err, "ctx_config_load");
        FUZZ_CHECK(!strncmp(err.text, file, strlen(file)),
                   "ctx_config_load message does not name the file: %s", err.text);
    } else {
        check_config(&cfg);
        FUZZ_CHECK(cfg.path && !strcmp(cfg.path, file), "cfg.path is not the file");
    }
    if (same_json)
        FUZZ_CHECK(!rc == !parse_rc, "ctx_config_load gave %d, ctx_config_parse %d: %s", rc,
                   parse_rc, err.text);
    ctx_config_free(&cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    json_t *schema = ctx_opts_schema(conn_opts, "fuzz");
    char *text = json_dumps(schema, JSON_COMPACT);

    (void)argc;
    (void)argv;
    FUZZ_CHECK(text != NULL, "ctx_opts_schema gave no JSON");
    free(text);
    json_decref(schema);

    snprintf(dir, sizeof dir, "%s/ctxgate-fuzz-config.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    FUZZ_CHECK(mkdtemp(dir), "mkdtemp %s failed", dir);
    snprintf(file, sizeof file, "%s/ctxgate.json", dir);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root;
    ctx_config cfg;
    ctx_error err;
    int rc;

    /* The flags ctx_config_load uses, plus any root so non-objects reach
     * the parser's type checks. */
    root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        load_file(data, size, 0, 0);
        return 0;
    }

    memset(&cfg, 0, sizeof cfg);
    memset(&err, 0, sizeof err);
    rc = ctx_config_parse(root, ".", &cfg, &err);
    if (rc) {
        check_error(rc, &err, "ctx_config_parse");
    } else {
        check_config(&cfg);
        for (size_t i = 0; i < cfg.nsources; i++) {
            char path[64];
            snprintf(path, sizeof path, "sources[%zu]", i);
            parse_conn(cfg.sources[i].conn, path);
            if (!strcmp(cfg.sources[i].type, "files"))
                open_files(&cfg.sources[i]);
        }
    }
    ctx_config_free(&cfg);
    load_file(data, size, rc, json_is_object(root) || json_is_array(root));

    /* The whole document as one connector config: unknown keys, "did you
     * mean", and every option type at the top level. */
    parse_conn(root, "");
    json_decref(root);
    return 0;
}
