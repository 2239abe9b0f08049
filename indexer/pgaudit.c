/*
 * pgaudit.c - the cluster's audit log and token counts in PostgreSQL:
 * local records shipped exactly once, budgets' counts, the reports of
 * `ctxgate audit` / `usage` and the console, and retention (see pgaudit.h).
 */
#include "pgaudit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/json.h"
#include "../core/util.h"
#include "pgstore_int.h"

/* Records per statement when a command ships a whole log first. */
#define SHIP_ALL_BATCH 1000

#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

/*
 * One statement, so all of it or none: the records (a record PostgreSQL
 * already holds under its origin and local id is skipped), the tokens of
 * those inserted added to an hour's and a day's window per user and per
 * agent (rows taken in key order, so two replicas' statements never wait
 * on each other in a cycle), and the origin's mark. Data-modifying WITH
 * parts run to completion whether or not the outer statement reads them.
 */
static const char ship_sql[] =
    "WITH r AS (SELECT * FROM json_to_recordset($3::json) AS x(id bigint, at bigint,"
    "  \"user\" text, agent text, action text, query text, query_sha256 text, doc_ids text,"
    "  tokens bigint, latency_us bigint, outcome text)),"
    " ins AS (INSERT INTO ctxgate.audit (origin, log_id, node, at, \"user\", agent, action,"
    "  query, query_sha256, doc_ids, tokens, latency_us, outcome)"
    "  SELECT $1, id, $2, at, \"user\", agent, action, query, query_sha256, doc_ids, tokens,"
    "  latency_us, outcome FROM r ORDER BY id ON CONFLICT (origin, log_id) DO NOTHING"
    "  RETURNING at, \"user\", agent, tokens),"
    " w AS (SELECT k.kind, k.name, s.span, ins.at - ins.at % s.span AS start,"
    "  sum(ins.tokens)::bigint AS tokens FROM ins"
    "  CROSS JOIN LATERAL (VALUES (0, ins.\"user\"), (1, ins.agent)) AS k(kind, name)"
    "  CROSS JOIN (VALUES (3600000::bigint), (86400000::bigint)) AS s(span)"
    "  WHERE ins.tokens > 0 AND k.name IS NOT NULL GROUP BY 1, 2, 3, 4),"
    " u AS (INSERT INTO ctxgate.usage_window AS t (kind, name, span, start, tokens)"
    "  SELECT kind, name, span, start, tokens FROM w ORDER BY 1, 2, 3, 4"
    "  ON CONFLICT (kind, name, span, start) DO UPDATE SET tokens = t.tokens + EXCLUDED.tokens)"
    " INSERT INTO ctxgate.audit_origins AS o (origin, node, shipped, shipped_at)"
    " VALUES ($1, $2, $4::bigint, " NOW_MS ") ON CONFLICT (origin) DO UPDATE SET"
    " node = EXCLUDED.node, shipped = greatest(o.shipped, EXCLUDED.shipped),"
    " shipped_at = EXCLUDED.shipped_at";

/* mark_of - the highest local id PostgreSQL holds for origin (0: none). */
static int mark_of(pgstore *pg, const char *origin, int64_t *mark, ctx_error *err)
{
    PGresult *r = pg__q(pg, err, "read the audit log's mark",
                        "SELECT shipped FROM ctxgate.audit_origins WHERE origin = $1", 1,
                        origin);

    if (!r)
        return err->code;
    *mark = PQntuples(r) ? pg__get64(r, 0, 0) : 0;
    PQclear(r);
    return CTX_OK;
}

int pgaudit_ship(pgstore *pg, ctx_store *log, const char *node, int64_t limit, int64_t *mark,
                 int64_t *sent, ctx_error *err)
{
    char origin[PGAUDIT_ORIGIN_LEN], *text = NULL;
    int64_t have = 0, last_local = 0, last = 0;
    json_t *rows = NULL;
    pg_num b;
    int rc;

    *sent = 0;
    *mark = 0;
    if ((rc = store_audit_origin(log, 0, origin, err)) || (rc = mark_of(pg, origin, &have, err)) ||
        (rc = store_audit_last_id(log, &last_local, err)))
        return rc;
    if (last_local < have) {
        /*
         * The log is behind what it shipped: an older copy of it (a backup
         * restored). Its ids never go back otherwise (a new log has a new
         * origin; pruning keeps the newest record), so everything it holds
         * was shipped already, and what it writes next would reuse ids
         * PostgreSQL holds. A new origin, marked as shipped up to here.
         */
        ctx_log(CTX_LOG_WARN, "audit", "the local audit log's ids (up to %lld) are behind what"
                " the cluster holds for it (%lld): an older copy of the log; its new records"
                " go under a new origin", (long long)last_local, (long long)have);
        if ((rc = store_audit_origin(log, 1, origin, err)) ||
            (rc = pg__ok(pg, err, "record the audit log's new origin",
                         "INSERT INTO ctxgate.audit_origins (origin, node, shipped, shipped_at)"
                         " VALUES ($1, $2, $3::bigint, " NOW_MS ")", 3, origin, node,
                         pg__i64(&b, last_local))))
            return rc;
        have = last_local;
    }
    *mark = have;
    if ((rc = store_audit_rows(log, have, limit, &rows, &last, err)))
        return rc;
    if (!json_array_size(rows)) {
        json_decref(rows);
        return CTX_OK;
    }
    if (!(text = ctx_json_text(rows, JSON_COMPACT))) {
        json_decref(rows);
        return ctx_error_set(err, CTX_ENOMEM, "audit: out of memory");
    }
    rc = pg__ok(pg, err, "ship audit records", ship_sql, 4, origin, node, text,
                pg__i64(&b, last));
    if (!rc) {
        *sent = (int64_t)json_array_size(rows);
        *mark = last;
    }
    ctx_free(text);
    json_decref(rows);
    return rc;
}

void pgaudit_node(const ctx_cluster_cfg *c, char *buf, size_t n)
{
    if (c->replica && *c->replica)
        snprintf(buf, n, "%s", c->replica);
    else if (gethostname(buf, n - 1) || !*buf)
        snprintf(buf, n, "unknown");
    buf[n - 1] = '\0';
}

int pgaudit_open_shipped(const ctx_cluster_cfg *c, const char *store_path, pgstore **out,
                         ctx_error *err)
{
    char path[4096], node[128];
    ctx_store *log = NULL;
    int64_t mark = 0, sent = SHIP_ALL_BATCH;
    ctx_error lerr;
    int rc;

    if ((rc = pgstore_open(c, out, err)))
        return rc;
    if (store_audit_path(store_path, path, sizeof path, &lerr) || access(path, F_OK))
        return CTX_OK; /* nothing served from this data_dir */
    pgaudit_node(c, node, sizeof node);
    if ((rc = store_audit_open(store_path, &log, &lerr)))
        sent = 0;
    while (!rc && sent >= SHIP_ALL_BATCH)
        rc = pgaudit_ship(*out, log, node, SHIP_ALL_BATCH, &mark, &sent, &lerr);
    if (rc)
        ctx_log(CTX_LOG_WARN, "audit", "the local audit log's records not yet in the cluster"
                " are left out: %s", lerr.text);
    store_close(log);
    if (rc == CTX_EIO) { /* the connection broke: the read would too */
        pgstore_close(*out);
        *out = NULL;
        *err = lerr;
        return rc;
    }
    return CTX_OK;
}

int pgaudit_usage_get(pgstore *pg, int kind, const char *name, int64_t span, int64_t start,
                      int64_t *tokens, ctx_error *err)
{
    pg_num a, b, c;
    PGresult *r = pg__q(pg, err, "read a token count",
                        "SELECT tokens FROM ctxgate.usage_window WHERE kind = $1 AND name = $2"
                        " AND span = $3 AND start = $4", 4, pg__i64(&a, kind), name,
                        pg__i64(&b, span), pg__i64(&c, start));

    *tokens = 0;
    if (!r)
        return err->code;
    if (PQntuples(r))
        *tokens = pg__get64(r, 0, 0);
    PQclear(r);
    return CTX_OK;
}

int pgaudit_usage_scan(pgstore *pg, int64_t span, int64_t start,
                       int (*fn)(void *arg, int kind, const char *name, int64_t tokens),
                       void *arg, ctx_error *err)
{
    pg_num a, b;
    PGresult *r = pg__q(pg, err, "read the token counts",
                        "SELECT kind, name, tokens FROM ctxgate.usage_window WHERE span = $1"
                        " AND start = $2 ORDER BY kind, name", 2, pg__i64(&a, span),
                        pg__i64(&b, start));
    int rc = CTX_OK;

    if (!r)
        return err->code;
    for (int i = 0; i < PQntuples(r) && !rc; i++)
        rc = fn(arg, (int)pg__get64(r, i, 0), PQgetvalue(r, i, 1), pg__get64(r, i, 2));
    PQclear(r);
    return rc;
}

/* col - a text column as JSON (null for NULL). */
static json_t *col(PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c) ? json_null() : json_string(PQgetvalue(r, row, c));
}

int pgaudit_report(pgstore *pg, const report_audit_q *q, json_t **out, ctx_error *err)
{
    pg_num since, until, before, limit;
    PGresult *r;

    *out = NULL;
    r = pg__q(pg, err, "read the audit log",
              "SELECT id, at, \"user\", agent, action, query, query_sha256, doc_ids, tokens,"
              " latency_us, outcome, node FROM ctxgate.audit"
              " WHERE ($1::text IS NULL OR \"user\" = $1) AND ($2::text IS NULL OR agent = $2)"
              " AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR outcome = $4)"
              " AND at >= $5::bigint AND ($6::bigint = 0 OR at < $6)"
              " AND ($7::bigint = 0 OR id < $7) ORDER BY id DESC LIMIT $8::bigint",
              8, q->user, q->agent, q->action, q->outcome, pg__i64(&since, q->since),
              pg__i64(&until, q->until), pg__i64(&before, q->before_id),
              pg__i64(&limit, q->limit > 0 && q->limit <= 1000 ? q->limit : 100));
    if (!r)
        return err->code;
    *out = json_array();
    for (int i = 0; *out && i < PQntuples(r); i++) {
        json_t *docs = ctx_json_loads(PQgetvalue(r, i, 7), 0, NULL);
        json_t *o = json_pack("{s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:o,s:o}", "id",
                              (json_int_t)pg__get64(r, i, 0), "at",
                              (json_int_t)pg__get64(r, i, 1), "user", col(r, i, 2), "agent",
                              col(r, i, 3), "action", col(r, i, 4), "query", col(r, i, 5),
                              "query_sha256", col(r, i, 6), "doc_ids",
                              docs ? docs : json_array(), "tokens",
                              (json_int_t)pg__get64(r, i, 8), "latency_us",
                              (json_int_t)pg__get64(r, i, 9), "outcome", col(r, i, 10), "node",
                              col(r, i, 11));
        if (!o || json_array_append_new(*out, o)) {
            json_decref(*out);
            *out = NULL;
        }
    }
    PQclear(r);
    return *out ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "audit: out of memory");
}

/* totals - {name: {tokens, requests}} per user (col "user") or agent. */
static int totals(pgstore *pg, const char *c, int64_t since, json_t *into, ctx_error *err)
{
    char sql[256];
    pg_num a;
    PGresult *r;

    snprintf(sql, sizeof sql, "SELECT %s, sum(tokens), count(*) FROM ctxgate.audit WHERE"
             " at >= $1::bigint AND %s IS NOT NULL GROUP BY 1 ORDER BY 2 DESC", c, c);
    if (!(r = pg__q(pg, err, "read the usage", sql, 1, pg__i64(&a, since))))
        return err->code;
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(into, PQgetvalue(r, i, 0),
                            json_pack("{s:I,s:I}", "tokens", (json_int_t)pg__get64(r, i, 1),
                                      "requests", (json_int_t)pg__get64(r, i, 2)));
    PQclear(r);
    return CTX_OK;
}

/* series - per bucket and per user or agent, appended to into. */
static int series(pgstore *pg, const char *c, const char *by, int64_t since, int64_t bucket_ms,
                  json_t *into, ctx_error *err)
{
    char sql[256];
    pg_num a, b;
    PGresult *r;

    snprintf(sql, sizeof sql, "SELECT (at / $2::bigint) * $2::bigint, %s, sum(tokens), count(*)"
             " FROM ctxgate.audit WHERE at >= $1::bigint AND %s IS NOT NULL"
             " GROUP BY 1, 2 ORDER BY 1, 2", c, c);
    if (!(r = pg__q(pg, err, "read the usage", sql, 2, pg__i64(&a, since),
                    pg__i64(&b, bucket_ms))))
        return err->code;
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(into, json_pack("{s:I,s:s,s:s,s:I,s:I}", "t",
                                              (json_int_t)pg__get64(r, i, 0), "by", by, "name",
                                              PQgetvalue(r, i, 1), "tokens",
                                              (json_int_t)pg__get64(r, i, 2), "requests",
                                              (json_int_t)pg__get64(r, i, 3)));
    PQclear(r);
    return CTX_OK;
}

int pgaudit_usage(pgstore *pg, int64_t since, int64_t bucket_ms, json_t **out, ctx_error *err)
{
    json_t *users = json_object(), *agents = json_object(), *ser = json_array();
    int rc;

    *out = NULL;
    if ((rc = totals(pg, "\"user\"", since, users, err)) ||
        (rc = totals(pg, "agent", since, agents, err)) ||
        (bucket_ms > 0 &&
         ((rc = series(pg, "\"user\"", "user", since, bucket_ms, ser, err)) ||
          (rc = series(pg, "agent", "agent", since, bucket_ms, ser, err))))) {
        json_decref(users);
        json_decref(agents);
        json_decref(ser);
        return rc;
    }
    *out = json_pack("{s:o,s:o}", "users", users, "agents", agents);
    if (bucket_ms > 0)
        json_object_set_new(*out, "series", ser);
    else
        json_decref(ser);
    return *out ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "usage: out of memory");
}

int pgaudit_prune(pgstore *pg, int64_t before_ms, int64_t windows_before_ms, int64_t batch,
                  int64_t *records, int64_t *windows, ctx_error *err)
{
    pg_num a, b;
    PGresult *r;
    int64_t n;

    *records = *windows = 0;
    if (batch < 1)
        batch = 1;
    /* Each batch its own statement (autocommit): shippers wait for one
     * batch's locks at most, never for the whole prune. */
    while (before_ms != INT64_MIN) {
        if (!(r = pg__q(pg, err, "prune the audit log",
                        "DELETE FROM ctxgate.audit WHERE id IN (SELECT id FROM ctxgate.audit"
                        " WHERE at < $1::bigint ORDER BY at LIMIT $2::bigint)", 2,
                        pg__i64(&a, before_ms), pg__i64(&b, batch))))
            return err->code;
        n = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
        *records += n;
        if (n < batch)
            break;
    }
    if (!(r = pg__q(pg, err, "prune the token counts",
                    "DELETE FROM ctxgate.usage_window WHERE start < $1::bigint", 1,
                    pg__i64(&a, windows_before_ms))))
        return err->code;
    *windows = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return CTX_OK;
}
