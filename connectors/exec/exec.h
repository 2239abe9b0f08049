/*
 * exec.h - the exec connector's protocol face: one line a program printed,
 * parsed and checked into an exec_msg (exec_msg.c), and the program's own
 * config schema (exec.c). The protocol itself is described in
 * connectors/exec/README.md and schemas/protocol/.
 */
#ifndef CTX_CONNECTORS_EXEC_H
#define CTX_CONNECTORS_EXEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../../core/ctx.h"
#include "../sdk/ctxgate/connector.h"

/* The protocol version this ctxgate speaks; sent in every request. */
#define EXEC_PROTOCOL 1

/* Message types a program prints; a bit each in an "allowed" mask. */
typedef enum exec_msg_type {
    EXEC_HELLO = 1,
    EXEC_SPEC,
    EXEC_CHECK,
    EXEC_STREAM,
    EXEC_RECORD,
    EXEC_DELETE,
    EXEC_ACL,
    EXEC_PRINCIPAL,
    EXEC_STATE,
    EXEC_LOG,
    EXEC_ERROR,
    EXEC_DONE,
} exec_msg_type;

#define EXEC_BIT(t) (1u << (t))

/*
 * One parsed message. Every string is BORROWED from root (or from the
 * arrays and texts below) and lives until ctx__exec_msg_free.
 */
typedef struct exec_msg {
    int type;                 /* exec_msg_type */
    json_t *root;             /* the parsed line (new reference) */
    const char *type_name;    /* "RECORD", as printed */
    int64_t protocol;         /* HELLO */
    const char *name;         /* HELLO: the program's name; STREAM: the stream's */
    const char *version;      /* HELLO, may be NULL */
    const char *stream, *id;  /* RECORD, DELETE, ACL, STATE; LOG's item, may be NULL */
    ctx_record rec;           /* RECORD; rec.acl points at acl or is NULL */
    ctx_acl acl;              /* RECORD, ACL */
    int has_acl;              /* 0: the message's acl is null (item invisible) */
    ctx_principal principal;  /* PRINCIPAL */
    char *json;               /* new: SPEC's spec, STREAM's description, STATE's state */
    char *metadata;           /* new: RECORD's metadata, or NULL */
    int ok;                   /* CHECK */
    int level;                /* LOG: ctx_log_level_conn */
    int code;                 /* CHECK and ERROR: a CTX_CONN_* code */
    const char *message;      /* LOG, ERROR, CHECK (may be NULL for CHECK) */
    const char *kind;         /* LOG: the warning's kind ("tickets.no_acl"), or NULL */
    const char **lists;       /* new: storage behind acl and members */
} exec_msg;

/*
 * ctx__exec_parse_line - parse one line (len bytes, no newline; need not be
 * NUL terminated) into *m. The line must be well-formed UTF-8 holding one
 * JSON object whose "type" is a known message, with every required field,
 * no unknown field, and each field of its type. Returns 0 or CTX_EINVAL with
 * err naming the field and the fix ("RECORD.acl.allow[1]: expected a string,
 * got integer"). On failure *m holds nothing to free; on success free it with
 * ctx__exec_msg_free.
 */
int ctx__exec_parse_line(const char *line, size_t len, exec_msg *m, ctx_error *err);

/* ctx__exec_msg_free - release what ctx__exec_parse_line filled in. */
void ctx__exec_msg_free(exec_msg *m);

/*
 * exec_child_spec - run the program of an exec connection (conn from the
 * exec connector's xOpen) with a "spec" request and return the JSON Schema of
 * its own "config" object in *spec_json (new, free with free()). Errors as
 * the connector's callbacks report them.
 */
int exec_child_spec(void *conn, char **spec_json, ctx_conn_error *err);

#endif
