/*
 * ctxgate/connector.h - the connector plugin ABI, version 3.
 *
 * A connector pulls items from one kind of source (a database, an API, a
 * directory) and hands them to the host as messages: RECORD, DELETE, ACL,
 * PRINCIPAL, STATE, LOG. The host decides what is committed and when; a
 * connector never touches the store.
 *
 * A plugin is a shared object exporting one function, ctx_connector_entry(),
 * that returns a pointer to a static ctx_connector. The host checks
 * abi_version and struct_size before it reads any other member, so a plugin
 * built against an older header keeps loading: members are only ever
 * appended, and the host never reads past struct_size.
 *
 * Ownership, everywhere in this header:
 *   - Every pointer the host passes into a connector callback (config_json,
 *     stream, state_json, host, em, fn, arg, err) is BORROWED: valid until
 *     that callback returns, never to be freed by the connector. Copy what
 *     you keep; never use host, em or fn after the callback returned.
 *   - Every pointer a connector passes to a host function (ctx_host's
 *     members, ctx_stream_fn) is BORROWED by the host for that call only:
 *     the host copies what it keeps before it returns, so the connector may
 *     free or reuse the buffer right after. This holds for everything
 *     reachable from it too (a ctx_record's acl, the acl's arrays, ...).
 *   - The host never frees memory a connector allocated and the connector
 *     never frees the host's: each side frees its own, with its own
 *     allocator (a plugin may be linked against another libc malloc).
 *   - Static data (the ctx_connector, its name and version, xSpec's text)
 *     must stay valid and unchanged until the host dlclose()s the plugin.
 *   - Strings are NUL-terminated UTF-8 unless a length is given beside them.
 *     Ill-formed UTF-8 is repaired by the host (U+FFFD) and logged; a NUL
 *     byte inside a body is dropped. A pointer documented "may be NULL" is
 *     absent when NULL; an array with a count of 0 may be NULL.
 *   - The connector's handle (void *conn) is created by xOpen and destroyed
 *     by xClose; nothing else frees it. xClose is called exactly once for
 *     every successful xOpen, and never after a failed one.
 *   - Errors: each callback that takes a ctx_conn_error *err gets one the
 *     host owns, zeroed before the call. On failure, return the code and
 *     write a one-line message into err->text (truncate to fit; err->code
 *     may be left 0, the return value is what counts). Name the config key
 *     and the fix; never put a secret (password, token) in the text.
 *
 * Return values: callbacks return CTX_CONN_OK (0) or one of the CTX_CONN_*
 * codes below. Host functions return 0 to go on; any non-zero return means
 * "stop": the connector calls no host function again in that callback and
 * returns CTX_CONN_ECANCELED promptly (the host already knows why).
 *
 * Threading: the host calls one connector handle from one thread at a time,
 * but different handles of the same connector may be used at the same time
 * from different threads: state shared between handles (statics, globals)
 * must be safe for that. xSpec and ctx_connector_entry are never called
 * concurrently with themselves, so building the spec once on first use is
 * fine. Host functions must be
 * called from the thread that called xRead (or xDiscover for fn), before it
 * returns; a connector may read with threads of its own but emits from the
 * calling thread only. Nothing of the connector may still run when xClose
 * returns (the host may dlclose the plugin right after). The host's own
 * work on what a connector emits may run on a thread of the host's: a host
 * function that returns 0 has taken the message (copied it and checked
 * what needs no store), not necessarily stored it yet. Messages are
 * stored in the order they were emitted, a STATE commits everything
 * before it, and a message the host cannot store makes the next host
 * call return non-zero (or xRead's end fail): the rules below hold as
 * written. xNextId waits until everything emitted before it is stored.
 */
#ifndef CTXGATE_CONNECTOR_H
#define CTXGATE_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Version 2 appended xReadPermissions to ctx_connector and xWarn to
 * ctx_host; version 3 appended xNextId to ctx_host. The host loads plugins
 * built for version 1, 2 or 3 and never reads a member past the plugin's
 * struct_size; a plugin calls xWarn and xNextId only through CTX_HOST_HAS.
 */
#define CTX_CONNECTOR_ABI_VERSION 3

#if defined(__GNUC__)
#define CTX_CONNECTOR_EXPORT __attribute__((visibility("default")))
#else
#define CTX_CONNECTOR_EXPORT
#endif

/* Result codes a connector returns; the same numbers as the host's ctx_rc. */
enum {
    CTX_CONN_OK = 0,
    CTX_CONN_ENOMEM = 1,
    CTX_CONN_EINVAL = 2,
    CTX_CONN_ECONFIG = 3,    /* config is wrong: name the key in the message */
    CTX_CONN_EIO = 4,
    CTX_CONN_ESOURCE = 6,    /* the source failed or is unreachable */
    CTX_CONN_EAUTH = 7,      /* credentials rejected */
    CTX_CONN_ECANCELED = 10, /* an emitter call returned non-zero: stop */
    CTX_CONN_ETOOBIG = 11,   /* an item is over a configured limit */
};

/* An error the connector fills in; owned by the host, zeroed before each call. */
typedef struct ctx_conn_error {
    int code;
    char text[512]; /* "streams[0].table: relation \"x\" does not exist" */
} ctx_conn_error;

/*
 * Permissions of one item. Principals: "user:<id>", "group:<id>", "everyone".
 * An item with an empty allow list is visible to nobody (fail closed).
 * Borrowed by the host for the call it is passed to, strings and arrays too.
 */
typedef struct ctx_acl {
    const char *const *allow;   /* n_allow principals that may read */
    size_t n_allow;
    const char *const *deny;    /* n_deny principals that may not, even if allowed */
    size_t n_deny;
    const char *const *labels;  /* n_labels labels such as "confidential" */
    size_t n_labels;
} ctx_acl;

/*
 * RECORD: insert or replace one item, keyed by (stream, id). Borrowed by the
 * host for the xRecord call only, with everything it points to.
 */
typedef struct ctx_record {
    const char *stream;         /* required */
    const char *id;             /* required: the source's key, as text */
    const char *title;          /* may be NULL */
    const char *url;            /* may be NULL */
    const char *body;           /* may be NULL; body_len bytes, no NUL needed */
    size_t body_len;
    const char *metadata_json;  /* may be NULL; a JSON object as text */
    int64_t updated_at_ms;      /* source's modification time, 0 if unknown */
    const ctx_acl *acl;         /* NULL means "no ACL": the item is invisible */
} ctx_record;

typedef enum ctx_principal_kind {
    CTX_PRINCIPAL_USER = 1,
    CTX_PRINCIPAL_GROUP = 2,
} ctx_principal_kind;

/*
 * PRINCIPAL: a user or a group as the source knows it.
 * For a group, members replaces this source's member list of that group
 * (members are users or groups; groups nest). For a user, maps_to names the
 * canonical user a source-local account stands for (e.g. by email), or NULL.
 * Borrowed by the host for the xPrincipal call only.
 */
typedef struct ctx_principal {
    int kind;                   /* ctx_principal_kind */
    const char *id;             /* "user:alice@example.com", "group:hr" */
    const char *display_name;   /* may be NULL */
    const char *email;          /* may be NULL */
    const char *maps_to;        /* users only; may be NULL */
    const char *const *members; /* groups only */
    size_t n_members;
} ctx_principal;

typedef struct ctx_emitter ctx_emitter; /* the host's, opaque */

typedef enum ctx_log_level_conn {
    CTX_CONN_LOG_DEBUG = 0,
    CTX_CONN_LOG_INFO = 1,
    CTX_CONN_LOG_WARN = 2,
    CTX_CONN_LOG_ERROR = 3,
} ctx_log_level_conn;

/*
 * The host's side, handed to xRead with the em to pass back to each call.
 * Both are borrowed: valid only during that xRead, from its thread. Every
 * function returns 0 to go on, or a non-zero code telling the connector to
 * stop reading: call no host function again and return CTX_CONN_ECANCELED
 * (the host's error explains why). Every pointer argument is borrowed by the
 * host for the call only. Messages of one xRead are about its stream only.
 */
typedef struct ctx_host {
    uint32_t abi_version;      /* CTX_CONNECTOR_ABI_VERSION of the host */
    uint32_t struct_size;      /* sizeof(ctx_host) of the host */
    int (*xRecord)(ctx_emitter *em, const ctx_record *rec);
    /* DELETE: the item is gone at the source; unknown ids are ignored. */
    int (*xDelete)(ctx_emitter *em, const char *stream, const char *id);
    /* ACL: change only the permissions of an item already sent (NULL: nobody). */
    int (*xAcl)(ctx_emitter *em, const char *stream, const char *id,
                const ctx_acl *acl);
    int (*xPrincipal)(ctx_emitter *em, const ctx_principal *p);
    /*
     * STATE: everything emitted for this stream so far is complete up to
     * state_json (a JSON object, opaque to the host). The host commits the
     * items before it and this state in one transaction, and hands the last
     * committed state back to xRead on the next run, byte for byte. Messages
     * after the last STATE of a read are committed when xRead returns 0, and
     * thrown away when it fails. Resuming from ANY state emitted must lose
     * nothing (items before it are committed; the rest must come again).
     */
    int (*xState)(ctx_emitter *em, const char *stream, const char *state_json);
    /* LOG: one line (level: ctx_log_level_conn) into the run's log; no secrets. */
    void (*xLog)(ctx_emitter *em, int level, const char *msg);
    /* ---- version 1 members above; append new members below ---- */
    /*
     * WARN (version 2; a host older than it lacks it: call
     * through CTX_HOST_HAS(host, xWarn), else xLog): a warning about one
     * item. kind is a stable key of the kind of problem ("files.no_acl");
     * stream and id name the item (either may be NULL); msg says what is
     * wrong without the item. The host names the item in its log, and
     * summarizes repeats of a kind (a count and a few examples) on the
     * terminal and in the run's record. All borrowed for the call.
     */
    void (*xWarn)(ctx_emitter *em, const char *kind, const char *stream, const char *id,
                  const char *msg);
    /* ---- version 2 members above; append new members below ---- */
    /*
     * NEXT ID (version 3; a host older than it lacks it, and a host that
     * keeps no items, such as a conformance or print-only host, may leave
     * it NULL: call through CTX_HOST_HAS(host, xNextId)): the id of the
     * first live item of stream the host holds whose id sorts after
     * `after` byte for byte (strcmp order; after NULL or "": the first),
     * into *id, or *id = NULL when there is none. It counts what this read
     * sent so far, committed or not. *id is the host's: valid until the
     * next call to any host function, copy it to keep it.
     *
     * It lets a connector whose source lists its items in id order find
     * deletions without remembering the items in its state: walk the
     * source and the host's ids side by side (a merge), send a DELETE for
     * each id the host holds that the source skipped, and resume after a
     * STATE from the id the state names. An item the host does not hold
     * (never sent, or refused) is sent again.
     */
    int (*xNextId)(ctx_emitter *em, const char *stream, const char *after, const char **id);
} ctx_host;

/* CTX_HOST_HAS - host (a const ctx_host *) has the appended member m, set. */
#define CTX_HOST_HAS(host, m)                                                            \
    ((host)->struct_size >= offsetof(ctx_host, m) + sizeof((host)->m) && (host)->m)

/*
 * xDiscover reports each stream it can read through this callback: name is
 * the stream's ([A-Za-z0-9_.-]+), desc_json a JSON object describing it or
 * NULL; both borrowed for the call. arg is the host's: pass it through. A
 * non-zero return means stop: call fn no more and return CTX_CONN_ECANCELED.
 */
typedef int (*ctx_stream_fn)(void *arg, const char *name, const char *desc_json);

typedef struct ctx_connector {
    uint32_t abi_version;      /* CTX_CONNECTOR_ABI_VERSION it was built for */
    uint32_t struct_size;      /* sizeof(ctx_connector) it was built with */
    const char *name;          /* "postgres"; static */
    const char *version;       /* the connector's own version; static */

    /*
     * xSpec: JSON Schema (draft 2020-12) of the connector's config, as text
     * the connector owns: static, or built once and kept until unload; the
     * host never frees it. Called without a handle, before or after xOpen,
     * any number of times: return the same text each time.
     */
    const char *(*xSpec)(void);

    /*
     * xOpen: parse config_json (the source's object minus the host's keys
     * name/type/plugin/enabled/max_record_bytes; borrowed) and create a
     * handle in *pconn, owned by the connector until xClose. No network yet.
     * Unknown keys are errors; messages name the key ("streams[0].tabel").
     * On failure *pconn is ignored: free what you allocated before returning.
     */
    int (*xOpen)(const char *config_json, void **pconn, ctx_conn_error *err);

    /*
     * xCheck: can the source be reached with these credentials? It must
     * really try (connect, log in, open the file): a wrong password or a
     * missing directory fails here, with CTX_CONN_EAUTH or CTX_CONN_ESOURCE.
     */
    int (*xCheck)(void *conn, ctx_conn_error *err);

    /* xDiscover: call fn once per stream, in the order they should be read. */
    int (*xDiscover)(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *err);

    /*
     * xRead: read one stream, starting after state_json (the last committed
     * STATE, or NULL the first time), and emit through host. Emit STATE
     * often (every few thousand items): it is the resume point after a
     * crash. full != 0 asks for every item as if there were no state; the
     * state is still given so a connector can tell what it sent last time
     * (a group that vanished must be sent again with no members). When a
     * full read was interrupted, the next run calls xRead with full != 0
     * again, given the last STATE that read emitted: still every item.
     * stream and state_json are borrowed for the call. A read from a state
     * sends only what changed after it: new and changed items (RECORD, or
     * ACL when only permissions changed), DELETE for items that are gone.
     * End every successful read with a STATE.
     */
    int (*xRead)(void *conn, const char *stream, const char *state_json,
                 int full, const ctx_host *host, ctx_emitter *em,
                 ctx_conn_error *err);

    /* xClose: free the handle and everything it owns; conn is never NULL. */
    void (*xClose)(void *conn);
    /* ---- version 1 members above; append new members below ---- */

    /*
     * xReadPermissions (version 2; optional, may be NULL): the permission
     * read of one stream, cheap enough to run every few minutes. Read only
     * what names each item and decides who may see it (ids and ACL columns,
     * a list endpoint without bodies, stat() and ACL sidecars), never the
     * content, and emit:
     *   - ACL (host->xAcl) once for EVERY item the stream has now, with its
     *     current permissions, changed or not: the host compares with what
     *     it stored and re-labels only what differs, never re-chunks;
     *   - DELETE for items known to be gone (a soft-delete column);
     *   - STATE now and then (every few thousand items) and at the end: the
     *     host commits there, so memory stays flat; it does not store the
     *     state as the stream's resume point (that stays the content read's).
     * When the read ends with 0, every stored item of the stream that got no
     * ACL in it is gone at the source: the host deletes it (as a full read
     * prunes). An interrupted permission read prunes nothing. Send no
     * RECORD (a RECORD here counts only for its acl). state_json is NULL, or the last STATE this connector
     * emitted in an interrupted permission read of the stream: resume after
     * it only if every item not yet sent comes after it, else start over.
     * A connector without this member gets full reads (xRead with full = 1)
     * in its place, of which the host applies only ACLs and deletes.
     * Threading, ownership and errors as xRead.
     */
    int (*xReadPermissions)(void *conn, const char *stream, const char *state_json,
                            const ctx_host *host, ctx_emitter *em, ctx_conn_error *err);
    /* ---- version 2 members above; append new members below ---- */
} ctx_connector;

/*
 * The one symbol a plugin exports. It returns a pointer to static data
 * that stays valid until the host dlclose()s the plugin; the host never
 * writes to it nor frees it. It may be called more than once and must
 * return the same pointer. Define it with CTX_CONNECTOR_EXPORT in front.
 */
typedef const ctx_connector *(*ctx_connector_entry_fn)(void);
#define CTX_CONNECTOR_ENTRY "ctx_connector_entry"
CTX_CONNECTOR_EXPORT const ctx_connector *ctx_connector_entry(void);

#ifdef __cplusplus
}
#endif
#endif
