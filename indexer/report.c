/*
 * report.c - the store's state and the audit log's records as JSON for
 * operators (see report.h).
 */
#include "report.h"

#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/json.h"
#include "vindex.h"

/* prepare - sql on st's connection; CTX_ESTORE naming what on failure. */
static int prepare(ctx_store *st, const char *sql, sqlite3_stmt **s, const char *what,
                   ctx_error *err)
{
    if (sqlite3_prepare_v2(store_db(st), sql, -1, s, NULL) != SQLITE_OK)
        return store_errf(st, err, what);
    return CTX_OK;
}

/* finish - the end of a stepping loop: CTX_OK when it ran out of rows. */
static int finish(ctx_store *st, sqlite3_stmt *s, int step, const char *what, ctx_error *err)
{
    int rc = step == SQLITE_DONE ? CTX_OK : store_errf(st, err, what);
    sqlite3_finalize(s);
    return rc;
}

/* text - a column as a JSON string, or null. */
static json_t *text(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? json_string((const char *)t) : json_null();
}

/* one_int - the first column of sql's first row (?1 bound to arg), or dflt. */
static int64_t one_int(ctx_store *st, const char *sql, int64_t arg, int64_t dflt)
{
    sqlite3_stmt *s;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) != SQLITE_OK)
        return dflt;
    sqlite3_bind_int64(s, 1, arg);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

int report_sources(ctx_store *st, int64_t now, json_t **out, ctx_error *err)
{
    static const char sql[] =
        "SELECT s.name, s.type,"
        " (SELECT count(*) FROM documents d WHERE d.source_id = s.id AND d.deleted = 0),"
        " (SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id"
        "   WHERE d.source_id = s.id),"
        " r.status, r.started_at, r.finished_at, r.records, r.unchanged, r.deletes, r.error,"
        " (SELECT max(finished_at) FROM sync_runs o WHERE o.source_id = s.id AND o.status = 'ok'),"
        " r.warnings, r.held_reason"
        " FROM sources s LEFT JOIN sync_runs r ON r.id ="
        "  (SELECT max(id) FROM sync_runs x WHERE x.source_id = s.id) ORDER BY s.name";
    sqlite3_stmt *s;
    int step, rc;

    *out = NULL;
    if ((rc = prepare(st, sql, &s, "status", err)))
        return rc;
    *out = json_array();
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t last_ok = sqlite3_column_int64(s, 11);
        const char *w = (const char *)sqlite3_column_text(s, 12);
        json_t *wj = w ? ctx_json_loads(w, 0, NULL) : NULL;
        json_t *o = json_pack("{s:o,s:o,s:I,s:I,s:o,s:I,s:I,s:I,s:o}", "source", text(s, 0),
                              "type", text(s, 1), "documents",
                              (json_int_t)sqlite3_column_int64(s, 2), "chunks",
                              (json_int_t)sqlite3_column_int64(s, 3), "last_run", text(s, 4),
                              "last_run_started_at", (json_int_t)sqlite3_column_int64(s, 5),
                              "last_run_records", (json_int_t)sqlite3_column_int64(s, 7),
                              "lag_ms", (json_int_t)(last_ok ? now - last_ok : -1),
                              "last_error", text(s, 10));
        if (!o) {
            json_decref(wj);
            continue;
        }
        json_object_set_new(o, "last_run_warnings", wj ? wj : json_array());
        if (sqlite3_column_type(s, 13) != SQLITE_NULL)
            json_object_set_new(o, "held_reason", text(s, 13));
        json_array_append_new(*out, o);
    }
    if ((rc = finish(st, s, step, "status", err))) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int report_runs(ctx_store *st, const char *source, int64_t limit, json_t **out,
                ctx_error *err)
{
    static const char sql[] =
        "SELECT r.id, s.name, r.started_at, r.finished_at, r.full, r.status, r.records,"
        " r.unchanged, r.deletes, r.chunks, r.pruned, r.error, r.held_reason"
        " FROM sync_runs r JOIN sources s ON s.id = r.source_id"
        " WHERE ?1 IS NULL OR s.name = ?1 ORDER BY r.id DESC LIMIT ?2";
    sqlite3_stmt *s;
    int step, rc;

    *out = NULL;
    if ((rc = prepare(st, sql, &s, "runs", err)))
        return rc;
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, limit > 0 && limit <= 1000 ? limit : 20);
    *out = json_array();
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(
            *out, json_pack("{s:I,s:o,s:I,s:o,s:b,s:o,s:I,s:I,s:I,s:I,s:I,s:o,s:o}", "id",
                            (json_int_t)sqlite3_column_int64(s, 0), "source", text(s, 1),
                            "started_at", (json_int_t)sqlite3_column_int64(s, 2),
                            "finished_at",
                            sqlite3_column_type(s, 3) == SQLITE_NULL
                                ? json_null() : json_integer(sqlite3_column_int64(s, 3)),
                            "full", sqlite3_column_int(s, 4), "status", text(s, 5), "records",
                            (json_int_t)sqlite3_column_int64(s, 6), "unchanged",
                            (json_int_t)sqlite3_column_int64(s, 7), "deletes",
                            (json_int_t)sqlite3_column_int64(s, 8), "chunks",
                            (json_int_t)sqlite3_column_int64(s, 9), "pruned",
                            (json_int_t)sqlite3_column_int64(s, 10), "error", text(s, 11),
                            "held_reason", text(s, 12)));
    if ((rc = finish(st, s, step, "runs", err))) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int report_index(ctx_store *st, const char *data_dir, int64_t now, json_t **out,
                 ctx_error *err)
{
    int64_t active = 0, target = 0, depth = 0, vectors, built, rows, last_embed;
    char *model = NULL, *next = NULL, path[4096];
    int dim = 0, tdim = 0, have_file = 0, rc;
    struct stat sb;

    *out = NULL;
    if ((rc = store_embed_models(st, &active, &target, err)) ||
        (active && (rc = store_embed_model_info(st, active, &model, &dim, err))) ||
        (target && (rc = store_embed_model_info(st, target, &next, &tdim, err))) ||
        (rc = store_embed_depth(st, &depth, err))) {
        ctx_free(model);
        ctx_free(next);
        return rc;
    }
    vectors = one_int(st, "SELECT count(*) FROM vectors WHERE model_id = ?1", active, 0);
    if (active) {
        vindex_path(data_dir, active, path, sizeof path);
        have_file = stat(path, &sb) == 0;
    }
    built = one_int(st, "SELECT built_at FROM term_df_meta", 0, 0);
    last_embed = one_int(st, "SELECT max(finished_at) FROM agent_jobs WHERE kind = 'embed'"
                             " AND status = 'ok'", 0, 0);
    rows = one_int(st, "SELECT nrows FROM term_df_meta", 0, -1);
    *out = json_pack("{s:{s:s?,s:i,s:s?,s:I,s:I},s:{s:b,s:I},s:{s:I,s:I},s:I,s:I}",
                     "embeddings", "model", model, "dim", dim, "switching_to", next,
                     "queue", (json_int_t)depth, "vectors", (json_int_t)vectors,
                     "vector_index", "file_present", have_file, "bytes",
                     (json_int_t)(have_file ? sb.st_size : 0),
                     "ranking_stats", "chunks_at_build", (json_int_t)rows, "age_ms",
                     (json_int_t)(built ? now - built : -1),
                     "last_embed_ok_ms_ago", (json_int_t)(last_embed ? now - last_embed : -1),
                     "failed_jobs_last_day",
                     (json_int_t)one_int(st, "SELECT count(*) FROM agent_jobs WHERE"
                                             " status = 'failed' AND started_at > ?1",
                                         now - 86400000, 0));
    ctx_free(model);
    ctx_free(next);
    return *out ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "status: out of memory");
}

int report_jobs(ctx_store *st, int64_t now, int64_t limit, json_t **out, ctx_error *err)
{
    /* Running ones first (no finished_at), then the newest finished. */
    static const char sql[] =
        "SELECT id, source, kind, attempt, started_at, finished_at, status, error"
        " FROM agent_jobs ORDER BY finished_at IS NOT NULL, id DESC LIMIT ?1";
    sqlite3_stmt *s;
    json_t *jobs;
    int step, rc;

    *out = NULL;
    if ((rc = prepare(st, sql, &s, "jobs", err)))
        return rc;
    sqlite3_bind_int64(s, 1, limit > 0 && limit <= 1000 ? limit : 50);
    jobs = json_array();
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(
            jobs, json_pack("{s:I,s:o,s:o,s:i,s:I,s:o,s:o,s:o}", "id",
                            (json_int_t)sqlite3_column_int64(s, 0), "source", text(s, 1),
                            "kind", text(s, 2), "attempt", sqlite3_column_int(s, 3),
                            "started_at", (json_int_t)sqlite3_column_int64(s, 4),
                            "finished_at",
                            sqlite3_column_type(s, 5) == SQLITE_NULL
                                ? json_null() : json_integer(sqlite3_column_int64(s, 5)),
                            "status", text(s, 6), "error", text(s, 7)));
    if ((rc = finish(st, s, step, "jobs", err))) {
        json_decref(jobs);
        return rc;
    }
    *out = json_pack("{s:o,s:I}", "jobs", jobs, "failed_last_day",
                     (json_int_t)one_int(st, "SELECT count(*) FROM agent_jobs WHERE"
                                             " status = 'failed' AND started_at > ?1",
                                         now - 86400000, 0));
    return *out ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "jobs: out of memory");
}

int report_audit(ctx_store *log, const report_audit_q *q, json_t **out, ctx_error *err)
{
    static const char sql[] =
        "SELECT id, at, user, agent, action, query, query_sha256, doc_ids, tokens, latency_us,"
        " outcome FROM audit WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR agent = ?2)"
        " AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR outcome = ?4)"
        " AND at >= ?5 AND (?6 = 0 OR at < ?6) AND (?7 = 0 OR id < ?7)"
        " ORDER BY id DESC LIMIT ?8";
    sqlite3_stmt *s;
    int step, rc;

    *out = NULL;
    if ((rc = prepare(log, sql, &s, "audit", err)))
        return rc;
    sqlite3_bind_text(s, 1, q->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, q->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, q->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, q->outcome, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, q->since);
    sqlite3_bind_int64(s, 6, q->until);
    sqlite3_bind_int64(s, 7, q->before_id);
    sqlite3_bind_int64(s, 8, q->limit > 0 && q->limit <= 1000 ? q->limit : 100);
    *out = json_array();
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *ids = (const char *)sqlite3_column_text(s, 7);
        json_t *docs = ids ? ctx_json_loads(ids, 0, NULL) : NULL;
        json_t *o = json_pack("{s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:o}", "id",
                              (json_int_t)sqlite3_column_int64(s, 0), "at",
                              (json_int_t)sqlite3_column_int64(s, 1), "user", text(s, 2),
                              "agent", text(s, 3), "action", text(s, 4), "query",
                              text(s, 5), "query_sha256", text(s, 6), "doc_ids",
                              docs ? docs : json_array(), "tokens",
                              (json_int_t)sqlite3_column_int64(s, 8), "latency_us",
                              (json_int_t)sqlite3_column_int64(s, 9), "outcome", text(s, 10));
        if (o)
            json_array_append_new(*out, o);
    }
    if ((rc = finish(log, s, step, "audit", err))) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* usage_totals - {name: {tokens, requests}} per user (col "user") or agent. */
static int usage_totals(ctx_store *log, const char *col, int64_t since, json_t *into,
                        ctx_error *err)
{
    char sql[256];
    sqlite3_stmt *s;
    int step, rc;

    snprintf(sql, sizeof sql, "SELECT %s, sum(tokens), count(*) FROM audit WHERE at >= ?1"
             " AND %s IS NOT NULL GROUP BY 1 ORDER BY 2 DESC", col, col);
    if ((rc = prepare(log, sql, &s, "usage", err)))
        return rc;
    sqlite3_bind_int64(s, 1, since);
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        json_object_set_new(into, (const char *)sqlite3_column_text(s, 0),
                            json_pack("{s:I,s:I}", "tokens",
                                      (json_int_t)sqlite3_column_int64(s, 1), "requests",
                                      (json_int_t)sqlite3_column_int64(s, 2)));
    return finish(log, s, step, "usage", err);
}

/* usage_series - per bucket and per user or agent, appended to into. */
static int usage_series(ctx_store *log, const char *col, const char *by, int64_t since,
                        int64_t bucket_ms, json_t *into, ctx_error *err)
{
    char sql[256];
    sqlite3_stmt *s;
    int step, rc;

    snprintf(sql, sizeof sql, "SELECT (at / ?2) * ?2, %s, sum(tokens), count(*) FROM audit"
             " WHERE at >= ?1 AND %s IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2", col, col);
    if ((rc = prepare(log, sql, &s, "usage", err)))
        return rc;
    sqlite3_bind_int64(s, 1, since);
    sqlite3_bind_int64(s, 2, bucket_ms);
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(into, json_pack("{s:I,s:s,s:s,s:I,s:I}", "t",
                                              (json_int_t)sqlite3_column_int64(s, 0), "by",
                                              by, "name", sqlite3_column_text(s, 1), "tokens",
                                              (json_int_t)sqlite3_column_int64(s, 2),
                                              "requests",
                                              (json_int_t)sqlite3_column_int64(s, 3)));
    return finish(log, s, step, "usage", err);
}

int report_usage(ctx_store *log, int64_t since, int64_t bucket_ms, json_t **out,
                 ctx_error *err)
{
    json_t *users = json_object(), *agents = json_object(), *series = json_array();
    int rc;

    *out = NULL;
    if ((rc = usage_totals(log, "user", since, users, err)) ||
        (rc = usage_totals(log, "agent", since, agents, err)) ||
        (bucket_ms > 0 && ((rc = usage_series(log, "user", "user", since, bucket_ms, series,
                                              err)) ||
                           (rc = usage_series(log, "agent", "agent", since, bucket_ms, series,
                                              err))))) {
        json_decref(users);
        json_decref(agents);
        json_decref(series);
        return rc;
    }
    *out = json_pack("{s:o,s:o}", "users", users, "agents", agents);
    if (bucket_ms > 0)
        json_object_set_new(*out, "series", series);
    else
        json_decref(series);
    return CTX_OK;
}
