/*
 * pgjobs.c - the cluster's job schedule with leases in ctxgate.jobs (see
 * pgstore.h, docs/cluster.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "pgstore_int.h"

/* The database's clock in ms: every lease and due time is compared with it. */
#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

int pgstore_now(pgstore *pg, int64_t *ms, ctx_error *err)
{
    PGresult *r = pg__q(pg, err, "read the clock", "SELECT " NOW_MS, 0);

    if (!r)
        return err->code;
    *ms = pg__get64(r, 0, 0);
    PQclear(r);
    return CTX_OK;
}

int pgstore_job_ensure(pgstore *pg, const char *source, const char *kind, ctx_error *err)
{
    return pg__ok(pg, err, "record the job",
                  "INSERT INTO ctxgate.jobs (source, kind, next_at) VALUES ($1, $2, " NOW_MS ")"
                  " ON CONFLICT (source, kind) DO NOTHING", 2, source, kind);
}

/* key_array - keys as a PostgreSQL text[] literal (new); NULL: out of memory.
 * Source names are [A-Za-z0-9_.-] (config.c), kinds fixed: nothing to escape. */
static char *key_array(const char *const *keys, size_t n)
{
    ctx_buf b = CTX_BUF_INIT;
    int rc = ctx_buf_puts(&b, "{");

    for (size_t i = 0; !rc && i < n; i++)
        rc = ctx_buf_printf(&b, "%s\"%s\"", i ? "," : "", keys[i]);
    if (rc || ctx_buf_puts(&b, "}")) {
        ctx_buf_free(&b);
        return NULL;
    }
    return ctx_buf_steal(&b);
}

int pgstore_job_claim(pgstore *pg, const char *const *keys, size_t n, pgstore_job *job,
                      int *got, ctx_error *err)
{
    char *arr = key_array(keys, n);
    pg_num lease;
    PGresult *r;

    *got = 0;
    memset(job, 0, sizeof *job);
    if (!arr)
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    /* Under READ COMMITTED a row another worker claimed and committed
     * after this statement's snapshot is re-checked when locked: its new
     * lease fails the condition and it is not taken twice. */
    r = pg__q(pg, err, "claim a job",
              "WITH c AS (SELECT j.source, j.kind FROM ctxgate.jobs j"
              "  WHERE j.next_at <= " NOW_MS
              "  AND (j.lease_until IS NULL OR j.lease_until < " NOW_MS ")"
              "  AND (j.source || '/' || j.kind) = ANY($2::text[])"
              "  AND NOT EXISTS (SELECT 1 FROM ctxgate.jobs o WHERE o.source = j.source"
              "   AND o.kind <> j.kind AND o.lease_until >= " NOW_MS ")"
              "  ORDER BY j.next_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED)"
              " UPDATE ctxgate.jobs u SET lease_owner = $1, lease_until = " NOW_MS " + $3,"
              "  last_start = " NOW_MS ", runs = u.runs + 1"
              " FROM c WHERE u.source = c.source AND u.kind = c.kind"
              " RETURNING u.source, u.kind, u.last_start", 3, pg->owner, arr,
              pg__i64(&lease, pg->lease_ms));
    ctx_free(arr);
    if (!r)
        return err->code;
    if (PQntuples(r)) {
        snprintf(job->source, sizeof job->source, "%s", PQgetvalue(r, 0, 0));
        snprintf(job->kind, sizeof job->kind, "%s", PQgetvalue(r, 0, 1));
        job->started_at = pg__get64(r, 0, 2);
        *got = 1;
    }
    PQclear(r);
    return CTX_OK;
}

int pgstore_job_renew(pgstore *pg, const pgstore_job *job, int *mine, ctx_error *err)
{
    pg_num lease;
    PGresult *r = pg__q(pg, err, "renew the job's lease",
                        "UPDATE ctxgate.jobs SET lease_until = " NOW_MS " + $4"
                        " WHERE source = $1 AND kind = $2 AND lease_owner = $3", 4,
                        job->source, job->kind, pg->owner, pg__i64(&lease, pg->lease_ms));

    *mine = 0;
    if (!r)
        return err->code;
    *mine = atoi(PQcmdTuples(r)) == 1;
    PQclear(r);
    return CTX_OK;
}

int pgstore_job_finish(pgstore *pg, const pgstore_job *job, int64_t next_at,
                       const char *status, const char *error, int *mine, ctx_error *err)
{
    pg_num at;
    PGresult *r = pg__q(pg, err, "record the job's end",
                        "UPDATE ctxgate.jobs SET lease_owner = NULL, lease_until = NULL,"
                        " next_at = CASE WHEN $4::bigint < 0 THEN next_at ELSE $4 END,"
                        " last_end = " NOW_MS ", last_status = $5, last_error = $6"
                        " WHERE source = $1 AND kind = $2 AND lease_owner = $3", 6,
                        job->source, job->kind, pg->owner, pg__i64(&at, next_at), status,
                        error);

    *mine = 0;
    if (!r)
        return err->code;
    *mine = atoi(PQcmdTuples(r)) == 1;
    PQclear(r);
    return CTX_OK;
}

int pgstore_job_release_all(pgstore *pg, int64_t *n, ctx_error *err)
{
    PGresult *r = pg__q(pg, err, "free this worker's leases",
                        "UPDATE ctxgate.jobs SET lease_owner = NULL, lease_until = NULL"
                        " WHERE lease_owner = $1", 1, pg->owner);

    *n = 0;
    if (!r)
        return err->code;
    *n = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return CTX_OK;
}
