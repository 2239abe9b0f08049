/*
 * flawed.c - the jsonl connector of examples/connector-template with one
 * deliberate flaw, chosen at compile time, for the conformance suite to
 * catch (tests/integration/test_conformance.c):
 *   FLAW_NO_ACL    records and ACL messages go out without their ACL
 *   FLAW_NO_STATE  xRead ignores the state it is given: every read is a first
 *   FLAW_CHECK_OK  xCheck succeeds whatever the config says
 * The flaws wrap the template's callbacks instead of editing its code.
 */
#define ctx_connector_entry jsonl_entry
#include "../../examples/connector-template/jsonl.c"
#undef ctx_connector_entry

#if defined(FLAW_NO_ACL)
/* The template emits through this host, which passes everything on to the
 * real one but drops the permissions. em is really a pass_through. */
typedef struct pass_through {
    const ctx_host *host;
    ctx_emitter *em;
} pass_through;

static int pt_record(ctx_emitter *em, const ctx_record *rec)
{
    pass_through *p = (pass_through *)em;
    ctx_record r = *rec;
    r.acl = NULL;
    return p->host->xRecord(p->em, &r);
}

static int pt_delete(ctx_emitter *em, const char *stream, const char *id)
{
    pass_through *p = (pass_through *)em;
    return p->host->xDelete(p->em, stream, id);
}

static int pt_acl(ctx_emitter *em, const char *stream, const char *id, const ctx_acl *acl)
{
    pass_through *p = (pass_through *)em;
    (void)acl;
    return p->host->xAcl(p->em, stream, id, NULL);
}

static int pt_principal(ctx_emitter *em, const ctx_principal *pr)
{
    pass_through *p = (pass_through *)em;
    return p->host->xPrincipal(p->em, pr);
}

static int pt_state(ctx_emitter *em, const char *stream, const char *state)
{
    pass_through *p = (pass_through *)em;
    return p->host->xState(p->em, stream, state);
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
#if defined(FLAW_NO_ACL)
    ctx_host h = {CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_host), pt_record, pt_delete, pt_acl,
                  pt_principal, pt_state, pt_log};
    pass_through p = {host, em};
    return jsonl_read(conn, stream, state, full, &h, (ctx_emitter *)&p, e);
#elif defined(FLAW_NO_STATE)
    (void)state;
    return jsonl_read(conn, stream, NULL, full, host, em, e);
#else
    return jsonl_read(conn, stream, state, full, host, em, e);
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

CTX_CONNECTOR_EXPORT const ctx_connector *ctx_connector_entry(void)
{
    static ctx_connector c;
    if (!c.name) {
        c = jsonl_connector;
        c.name = "flawed";
        c.xRead = flawed_read;
        c.xCheck = flawed_check;
    }
    return &c;
}
