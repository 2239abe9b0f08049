/*
 * conformance.h - run one connector outside the scheduler, and the
 * conformance suite every connector must pass. `ctxgate connector ...` is a
 * thin wrapper over this; tests call it directly.
 *
 * Messages are handed out as JSON objects of the same shapes as the exec
 * protocol's JSON lines (schemas/protocol/), e.g.
 *   {"type":"RECORD","record":{"stream":"items","id":"1",...,"acl":{...}}}
 */
#ifndef CTX_CONNECTORS_CONFORMANCE_H
#define CTX_CONNECTORS_CONFORMANCE_H

#include <jansson.h>
#include <stdio.h>

#include "../core/ctx.h"
#include "../core/util.h"
#include "registry.h"

/* Which connector: exactly one of type (built in), plugin or exec is set. */
typedef struct conform_target {
    const char *type;       /* a built-in connector's name */
    const char *plugin;     /* path of a .so */
    const char *exec;       /* a shell command for the exec connector */
    const char *base_dir;   /* relative paths in the config resolve here; NULL = "." */
} conform_target;

/*
 * conform_open - open the target on config (the connector's own keys, a
 * JSON object; borrowed). *conn must be registry_close'd on success. When
 * conn_keys is not NULL it receives what xOpen was given (new reference).
 * Errors are CTX_ECONFIG/CTX_EABI/... with the connector's message.
 */
int conform_open(const conform_target *t, json_t *config, registry_conn *conn,
                 json_t **conn_keys, ctx_error *err);

/* A message of a read, borrowed for the call. Non-zero stops the read. */
typedef int (*conform_msg_fn)(void *arg, json_t *msg);

/* conform_read's full for a permission read (xReadPermissions, ABI 2). */
#define CONFORM_READ_PERMISSIONS 2

/*
 * conform_read - xRead one stream from state (NULL = none) and hand each
 * message, converted to its JSON shape, to fn. *problems (may be NULL)
 * receives the number of ill-formed messages (id empty, bad UTF-8, STATE not
 * an object, ...); the first few are described in why, separated by "; "
 * (why may be NULL). Returns the read's result with the connector's message in err.
 * full CONFORM_READ_PERMISSIONS calls xReadPermissions instead (CTX_EABI when
 * the connector has none).
 */
int conform_read(registry_conn *conn, const char *stream, const char *state, int full,
                 conform_msg_fn fn, void *arg, size_t *problems, ctx_buf *why,
                 ctx_error *err);

/*
 * conform_read_held - conform_read through a host that holds the ids in
 * held (an object {id: true}, borrowed): it answers xNextId (ABI 3) from
 * them, and adds each RECORD's id and drops each DELETE's as it comes.
 * held NULL: a host that keeps nothing and has no xNextId (conform_read).
 */
int conform_read_held(registry_conn *conn, const char *stream, const char *state, int full,
                      json_t *held, conform_msg_fn fn, void *arg, size_t *problems,
                      ctx_buf *why, ctx_error *err);

/* conform_spec_msg - {"type":"SPEC","spec":{...}}, new; NULL if not JSON. */
json_t *conform_spec_msg(const registry_conn *conn);

/* conform_check_msg - {"type":"CHECK","check":{"status":..}} after xCheck; new. */
json_t *conform_check_msg(registry_conn *conn, int *rc);

/*
 * conform_discover - xDiscover, each stream as {"type":"STREAM","stream":
 * {"name":..,"description":{..}}} appended to *streams (new array).
 */
int conform_discover(registry_conn *conn, json_t **streams, ctx_error *err);

/* How the suite runs; zero is the default for everything. */
typedef struct conform_opts {
    /*
     * A shell command that changes the source, or NULL: the checks that
     * need a changed source then print SKIP. It is run as
     *   CMD touch STREAM ID            (change the item's content)
     *   CMD delete STREAM ID           (delete the item)
     *   CMD revoke STREAM ID PRINCIPAL (take PRINCIPAL off the item's allow list)
     * and must exit 0 when done.
     */
    const char *mutate;
    const char *mutate_dir; /* where it runs; NULL = the current directory */
    /* A config the connector must refuse (borrowed), or NULL: derived. */
    json_t *bad_config;
    /* validate-json.py (meta-schema + config check with python3-jsonschema), or NULL. */
    const char *validator;
    size_t max_resume;      /* STATEs to resume from per stream; 0 = 16 */
    FILE *out;              /* one line per check; NULL = stdout */
} conform_opts;

typedef struct conform_report {
    int passed, failed, skipped;
} conform_report;

/*
 * conform_run - the suite: spec, config, check, bad config, discover,
 * message shape, ACLs, final STATE, incremental reads, resume from every
 * STATE, with opts->mutate: change, delete and revoke; then the permission
 * read (ABI 2) against a full read, and full reads stopped at random
 * messages and run again, as the host resumes them: the union of what was
 * committed and what the rerun sent leaves out exactly the deleted item. Prints
 * "PASS|FAIL|SKIP name: detail" per check. Returns 0 when the suite ran
 * (look at rep->failed), or an error that stopped it early (the target
 * could not be opened: that is also counted as a failure).
 */
int conform_run(const conform_target *t, json_t *config, const conform_opts *opts,
                conform_report *rep, ctx_error *err);

#endif
