/*
 * synctest.c - configs, syncs and store queries for the connector
 * integration tests (see synctest.h).
 */
#include "synctest.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../agent/jobs.h"
#include "../../retrieval/search.h"
#include "pgtest.h"

static ctx_store *cur;

void tsync_use(ctx_store *st)
{
    cur = st;
}

json_t *tsync_vsource(const char *fmt, va_list ap)
{
    char *text;
    json_t *src;
    json_error_t jerr;

    cr_assert(vasprintf(&text, fmt, ap) >= 0);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    src = json_loads(text, 0, &jerr);
    cr_assert(src != NULL, "test config: %s: %s", jerr.text, text);
    free(text);
    return src;
}

void tsync_config(ctx_config *cfg, const char *data_dir, json_t *src)
{
    json_t *root = json_pack("{s:s,s:[o]}", "data_dir", data_dir, "sources", src);
    ctx_error err;
    int rc;

    memset(cfg, 0, sizeof *cfg);
    rc = ctx_config_parse(root, NULL, cfg, &err);
    json_decref(root);
    cr_assert(rc == CTX_OK, "config: %s", err.text);
}

int tsync_run_opts(ctx_config *cfg, sync_opts *o, store_run_stats *stats, ctx_error *err)
{
    o->chunk_max_tokens = cfg->chunk_max_tokens;
    o->chunk_overlap_tokens = cfg->chunk_overlap_tokens;
    memset(err, 0, sizeof *err);
    return sync_source(cur, &cfg->sources[0], o, stats, err);
}

int tsync_run(ctx_config *cfg, int full, store_run_stats *stats, ctx_error *err)
{
    sync_opts o;
    memset(&o, 0, sizeof o);
    o.full = full;
    return tsync_run_opts(cfg, &o, stats, err);
}

store_run_stats tsync_ok(ctx_config *cfg, int full)
{
    store_run_stats s;
    ctx_error err;
    int rc = tsync_run(cfg, full, &s, &err);
    cr_assert(rc == CTX_OK, "sync failed: %s: %s", ctx_rc_name(rc), err.text);
    return s;
}

store_run_stats tsync_perm_ok(ctx_config *cfg)
{
    const char *pstreams[32];
    store_run_stats s;
    sync_opts o;
    ctx_error err;
    int rc;

    memset(&o, 0, sizeof o);
    o.permissions = 1;
    o.nprincipal_streams = jobs_principal_streams(&cfg->sources[0], pstreams, 32);
    o.principal_streams = pstreams;
    rc = tsync_run_opts(cfg, &o, &s, &err);
    cr_assert(rc == CTX_OK, "permission sync failed: %s: %s", ctx_rc_name(rc), err.text);
    return s;
}

char *tsync_chunk_sig(int ids)
{
    return tsync_text("SELECT coalesce(group_concat(line, char(10)), '') FROM (SELECT"
                      " d.stream || '/' || d.ext_id || '#' || c.seq || '=' || f.text ||"
                      " CASE WHEN %d THEN ' @' || c.id ELSE '' END AS line"
                      " FROM documents d JOIN chunks c ON c.doc_id = d.id"
                      " JOIN chunks_fts f ON f.rowid = c.id WHERE d.deleted = 0"
                      " ORDER BY d.stream, d.ext_id, c.seq)", ids);
}

/* query - prepare the formatted query; the caller finalizes. */
static sqlite3_stmt *query(const char *fmt, va_list ap)
{
    sqlite3_stmt *s;
    char *sql = sqlite3_vmprintf(fmt, ap);

    cr_assert(sqlite3_prepare_v2(store_db(cur), sql, -1, &s, NULL) == SQLITE_OK, "%s: %s",
              sql, sqlite3_errmsg(store_db(cur)));
    sqlite3_free(sql);
    return s;
}

int64_t tsync_int(const char *fmt, ...)
{
    sqlite3_stmt *s;
    va_list ap;
    int64_t v = -1;

    va_start(ap, fmt);
    s = query(fmt, ap);
    va_end(ap);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

char *tsync_text(const char *fmt, ...)
{
    sqlite3_stmt *s;
    va_list ap;
    char *v = NULL;

    va_start(ap, fmt);
    s = query(fmt, ap);
    va_end(ap);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        v = strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
}

int64_t tsync_live_docs(void)
{
    return tsync_int("SELECT count(*) FROM documents WHERE deleted = 0");
}

char *tsync_state(const char *stream)
{
    return tsync_text("SELECT state FROM sync_state WHERE stream = %Q", stream);
}

size_t tsync_hits(const char *user, const char *q, char *titles, size_t len)
{
    search_result r;
    ctx_error err;
    size_t n, i, off = 0;

    cr_assert(search_lexical(store_db(cur), user, q, NULL, &r, &err) == CTX_OK, "%s",
              err.text);
    n = r.n;
    if (titles) {
        titles[0] = '\0';
        for (i = 0; i < r.n && off < len; i++)
            off += (size_t)snprintf(titles + off, len - off, "%s%s", i ? "|" : "",
                                    r.hits[i].title);
    }
    search_result_free(&r);
    return n;
}

void tsync_cancel_progress(void *arg, const char *source, const char *stream,
                           const store_run_stats *s, double seconds, int done)
{
    tsync_cancel *c = arg;
    (void)source, (void)stream, (void)seconds;
    if (done)
        return;
    if (s->records >= c->records)
        c->flag = 1;
    else
        usleep(260 * 1000);
}

void tsync_kill_progress(void *arg, const char *source, const char *stream,
                         const store_run_stats *s, double seconds, int done)
{
    tsync_killer *k = arg;
    char why[512];
    (void)source, (void)stream, (void)seconds;
    if (done || k->done || s->records < 1)
        return;
    k->done = 1;
    pgtest_exec(k->db, why, sizeof why, "SELECT pg_terminate_backend(pid, 5000) FROM"
                " pg_stat_activity WHERE application_name = '%s'", k->app);
}
