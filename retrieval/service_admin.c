/*
 * service_admin.c - the service's store and audit log read for an operator
 * (admin.h): on a worker's connection in its read transaction, or on a
 * connection of the audit log's own; in cluster mode the cluster's log in
 * PostgreSQL (pgaudit.h).
 */
#include "admin.h"

#include "../core/util.h"
#include "../indexer/pgaudit.h"
#include "service_int.h"
#include "status.h"

int svc_admin_status(svc *s, json_t **out, ctx_error *err)
{
    worker *w;
    int rc;

    *out = NULL;
    if (!(w = svc__take(s, err)))
        return err->code ? err->code : CTX_ESTORE;
    pthread_rwlock_rdlock(&s->clock);
    rc = status_report(s->cfg, w->st, ctx_now_ms(), out, err);
    pthread_rwlock_unlock(&s->clock);
    svc__give(s, w);
    return rc;
}

int svc_admin_runs(svc *s, const char *source, int64_t limit, json_t **out, ctx_error *err)
{
    worker *w;
    int rc;

    *out = NULL;
    if (!(w = svc__take(s, err)))
        return err->code ? err->code : CTX_ESTORE;
    rc = report_runs(w->st, source, limit, out, err);
    svc__give(s, w);
    return rc;
}

int svc_admin_jobs(svc *s, int64_t limit, json_t **out, ctx_error *err)
{
    worker *w;
    int rc;

    *out = NULL;
    if (!(w = svc__take(s, err)))
        return err->code ? err->code : CTX_ESTORE;
    rc = report_jobs(w->st, ctx_now_ms(), limit, out, err);
    svc__give(s, w);
    return rc;
}

/* with_log - the audit log on a connection of its own, once written up to now. */
static int with_log(svc *s, ctx_store **log, ctx_error *err)
{
    svc_audit_flush(s);
    return store_audit_open(s->store_path, log, err);
}

/* with_cluster - cluster mode: the cluster's log once this process's
 * records are in it (waiting up to 5 s for the shipper). */
static int with_cluster(svc *s, pgstore **pg, ctx_error *err)
{
    int rc;

    svc_audit_flush(s);
    if ((rc = svc__ship_wait(s, 5000, err)))
        return rc;
    return pgstore_open(&s->ccfg, pg, err);
}

int svc_admin_audit(svc *s, const report_audit_q *q, json_t **out, ctx_error *err)
{
    ctx_store *log;
    pgstore *pg = NULL;
    int rc;

    *out = NULL;
    if (s->cluster) {
        if (!(rc = with_cluster(s, &pg, err)))
            rc = pgaudit_report(pg, q, out, err);
        pgstore_close(pg);
        return rc;
    }
    if ((rc = with_log(s, &log, err)))
        return rc;
    rc = report_audit(log, q, out, err);
    store_close(log);
    return rc;
}

int svc_admin_usage(svc *s, int64_t since, int64_t bucket_ms, json_t **out, ctx_error *err)
{
    ctx_store *log;
    pgstore *pg = NULL;
    int rc;

    *out = NULL;
    if (s->cluster) {
        if (!(rc = with_cluster(s, &pg, err)))
            rc = pgaudit_usage(pg, since, bucket_ms, out, err);
        pgstore_close(pg);
        return rc;
    }
    if ((rc = with_log(s, &log, err)))
        return rc;
    rc = report_usage(log, since, bucket_ms, out, err);
    store_close(log);
    return rc;
}
