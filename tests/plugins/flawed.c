/*
 * flawed.c - the jsonl connector of examples/connector-template with one
 * deliberate flaw, chosen at compile time, for the conformance suite to
 * catch (tests/integration/test_conformance.c):
 *   FLAW_NO_ACL    records and ACL messages go out without their ACL
 *   FLAW_NO_STATE  xRead ignores the state it is given: every read is a first
 *   FLAW_CHECK_OK  xCheck succeeds whatever the config says
 *   FLAW_BAD_SPEC  xSpec is no JSON Schema: a misspelt type, a wrong "required"
 *   FLAW_BAD_MESSAGES  titles are not UTF-8 and metadata is not an object
 *   FLAW_NO_STOP   reads on when the host says stop
 *   FLAW_FULL_INCREMENTAL  a full read given a state reads on from it: after a
 *                  full run is interrupted and run again, what it skips would
 *                  be pruned
 * The flaws wrap the template's callbacks instead of editing its code.
 */
#define ctx_connector_entry jsonl_entry
#include "../../examples/connector-template/jsonl.c"
#undef ctx_connector_entry

#if defined(FLAW_NO_ACL) || defined(FLAW_BAD_MESSAGES) || defined(FLAW_NO_STOP)
#define FLAW_HOST
/* The template emits through this host, which passes everything on to the
 * real one but spoils records. em is really a pass_through. */
typedef struct pass_through {
    const ctx_host *host;
    ctx_emitter *em;
} pass_through;

/* What the template gets back from the host. */
static int answer(int rc)
{
#if defined(FLAW_NO_STOP)
    (void)rc;
    return 0;
#else
    return rc;
#endif
}

static int pt_record(ctx_emitter *em, const ctx_record *rec)
{
    pass_through *p = (pass_through *)em;
    ctx_record r = *rec;
#if defined(FLAW_NO_ACL)
    r.acl = NULL;
#elif defined(FLAW_BAD_MESSAGES)
    r.title = "caf\xe9 in Latin-1";
    r.metadata_json = "[1, 2]";
#endif
    return answer(p->host->xRecord(p->em, &r));
}

static int pt_delete(ctx_emitter *em, const char *stream, const char *id)
{
    pass_through *p = (pass_through *)em;
    return answer(p->host->xDelete(p->em, stream, id));
}

static int pt_acl(ctx_emitter *em, const char *stream, const char *id, const ctx_acl *acl)
{
    pass_through *p = (pass_through *)em;
#if defined(FLAW_NO_ACL)
    acl = NULL;
#endif
    return answer(p->host->xAcl(p->em, stream, id, acl));
}

static int pt_principal(ctx_emitter *em, const ctx_principal *pr)
{
    pass_through *p = (pass_through *)em;
    return answer(p->host->xPrincipal(p->em, pr));
}

static int pt_state(ctx_emitter *em, const char *stream, const char *state)
{
    pass_through *p = (pass_through *)em;
    return answer(p->host->xState(p->em, stream, state));
}

static void pt_log(ctx_emitter *em, int level, const char *msg)
{
    pass_through *p = (pass_through *)em;
    p->host->xLog(p->em, level, msg);
}
#endif

static int flawed_read(void *conn, const char *stream, const char *state, int full,
                       const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
#if defined(FLAW_HOST)
    ctx_host h = {CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_host), pt_record, pt_delete, pt_acl,
                  pt_principal, pt_state, pt_log, NULL};
    pass_through p = {host, em};
    return jsonl_read(conn, stream, state, full, &h, (ctx_emitter *)&p, e);
#elif defined(FLAW_NO_STATE)
    (void)state;
    return jsonl_read(conn, stream, NULL, full, host, em, e);
#elif defined(FLAW_FULL_INCREMENTAL)
    (void)full;
    return jsonl_read(conn, stream, state, 0, host, em, e);
#else
    return jsonl_read(conn, stream, state, full, host, em, e);
#endif
}

/* The permission read goes through the same flawed host as xRead. */
static int flawed_read_permissions(void *conn, const char *stream, const char *state,
                                   const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
#if defined(FLAW_HOST)
    ctx_host h = {CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_host), pt_record, pt_delete, pt_acl,
                  pt_principal, pt_state, pt_log};
    pass_through p = {host, em};
    return jsonl_read_permissions(conn, stream, state, &h, (ctx_emitter *)&p, e);
#else
    return jsonl_read_permissions(conn, stream, state, host, em, e);
#endif
}

static int flawed_check(void *conn, ctx_conn_error *e)
{
#if defined(FLAW_CHECK_OK)
    (void)conn;
    (void)e;
    return CTX_CONN_OK;
#else
    return jsonl_check(conn, e);
#endif
}

static const char *flawed_spec(void)
{
#if defined(FLAW_BAD_SPEC)
    return "{\"type\": \"objekt\", \"properties\": {\"path\": {\"type\": 5}},"
           " \"required\": \"path\"}";
#else
    return jsonl_spec();
#endif
}

CTX_CONNECTOR_EXPORT const ctx_connector *ctx_connector_entry(void)
{
    static ctx_connector c;
    if (!c.name) {
        c = jsonl_connector;
        c.name = "flawed";
        c.xRead = flawed_read;
        c.xReadPermissions = flawed_read_permissions;
        c.xCheck = flawed_check;
        c.xSpec = flawed_spec;
    }
    return &c;
}
