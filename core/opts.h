/*
 * opts.h - declarative option tables: one row per config key with its type,
 * default, place in a C struct and description. The same table parses a
 * JSON object (rejecting unknown keys with "did you mean"), frees what it
 * filled, and renders the JSON Schema a connector's spec returns.
 */
#ifndef CTX_CORE_OPTS_H
#define CTX_CORE_OPTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ctx.h"

typedef enum ctx_opt_type {
    CTX_OPT_STRING,   /* char *            (new, freed by ctx_opts_free) */
    CTX_OPT_INT,      /* int64_t */
    CTX_OPT_BOOL,     /* int (0/1) */
    CTX_OPT_STRLIST,  /* ctx_strlist; a lone string is taken as a list of one */
    CTX_OPT_OBJLIST,  /* ctx_objlist of structs parsed with .sub */
    CTX_OPT_JSON,     /* json_t * (new reference), any JSON value */
    CTX_OPT_NUMBER,   /* double; an integer is taken too */
} ctx_opt_type;

typedef struct ctx_strlist {
    char **v;
    size_t n;
} ctx_strlist;

typedef struct ctx_objlist {
    void *v;      /* n structs of the sub table's elem_size */
    size_t n;
} ctx_objlist;

typedef struct ctx_opt {
    const char *key;
    int type;              /* ctx_opt_type */
    const char *def;       /* default as text for STRING/INT/BOOL, or NULL */
    size_t offset;         /* where in the struct */
    int required;
    const char *desc;      /* one line; goes into the JSON Schema */
    const struct ctx_opt *sub;   /* OBJLIST: the element's table */
    size_t elem_size;            /* OBJLIST: sizeof the element struct */
} ctx_opt;

/* A table ends with a row whose key is NULL. */
#define CTX_OPT_END {NULL, 0, NULL, 0, 0, NULL, NULL, 0}

/*
 * ctx_opts_parse - fill *dst from obj by table. Unknown keys, wrong types and
 * missing required keys fail with CTX_ECONFIG and a message of the form
 * `<path>: unknown key "tabel", did you mean "table"`. path may be "" for the
 * top level. On failure, whatever was filled is freed again.
 */
int ctx_opts_parse(const ctx_opt *table, json_t *obj, void *dst,
                   const char *path, ctx_error *err);

/*
 * ctx_opts_parse_text - ctx_opts_parse of the JSON object in text, as a
 * connector's xOpen receives it. Bad JSON is CTX_ECONFIG naming the place.
 */
int ctx_opts_parse_text(const ctx_opt *table, const char *text, void *dst,
                        ctx_error *err);

/* ctx_valid_name - 1 if s is a non-empty name of letters, digits, '_', '-', '.'. */
int ctx_valid_name(const char *s);

/* ctx_opts_free - free everything ctx_opts_parse put into *dst. */
void ctx_opts_free(const ctx_opt *table, void *dst);

/* ctx_opts_schema - JSON Schema (draft 2020-12) of the table. New reference. */
json_t *ctx_opts_schema(const ctx_opt *table, const char *title);

/* ctx_json_typename - "object", "string", ... for messages. */
const char *ctx_json_typename(const json_t *v);

#endif
