/*
 * fresh.c - each source's permission age against its bound, and the
 * sources withheld for it. See fresh.h.
 */
#include "fresh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/schedule.h"
#include "../core/util.h"
#include "../indexer/stmt.h"

/*
 * A source's last finished permission or full run (source_acl_sync, kept by
 * the sync runner: the start of that run, so a change made while it read
 * is not vouched for), and whether the agent has ever run its permissions
 * job, whatever came of it (from then on the agent is to keep them fresh:
 * a stopped agent, or one whose every run fails, fails closed). An index
 * lookup (agent_jobs_last), not a walk of the job history. Incremental
 * runs from a checkpoint do not count: they read what changed, not the
 * permissions of what did not.
 */
static const char synced_sql[] =
    "SELECT s.id, (SELECT synced_at FROM source_acl_sync a WHERE a.source_id = s.id),"
    " EXISTS (SELECT 1 FROM agent_jobs j WHERE j.source = s.name AND j.kind = 'permissions')"
    " FROM sources s WHERE s.name = ?1";

int64_t fresh_bound(const ctx_source_cfg *s, int agent, int64_t now_ms)
{
    sched_spec spec;
    ctx_error err;
    int64_t period, a, b;

    if (s->max_permission_age_ms)
        return s->max_permission_age_ms; /* set: a duration, or -1 for "off" */
    if (!agent || !s->schedule.permissions || !*s->schedule.permissions ||
        sched_parse(s->schedule.permissions, "schedule.permissions", &spec, &err))
        return -1;
    if (spec.every_ms > 0) {
        period = spec.every_ms;
    } else {
        /* A cron schedule: the gap between its next two times from now. */
        if ((a = sched_next(&spec, now_ms)) < 0 || (b = sched_next(&spec, a)) < 0)
            return -1;
        period = b - a;
    }
    return 3 * period > FRESH_FLOOR_MS ? 3 * period : FRESH_FLOOR_MS;
}

/* span - ms as "3h 12m", "45s", "2d 4h" into buf. */
static void span(int64_t ms, char *buf, size_t n)
{
    int64_t s = ms / 1000;
    if (s < 60)
        snprintf(buf, n, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(buf, n, "%lldm", (long long)(s / 60));
    else if (s < 86400)
        snprintf(buf, n, "%lldh %lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    else
        snprintf(buf, n, "%lldd %lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* live_docs - *live = 1 if source has a document not deleted. */
static int live_docs(sqlite3 *db, int64_t source, int64_t *live, ctx_error *err)
{
    sqlite3_stmt *s;
    int step;

    if (stmt_get(db, "SELECT EXISTS (SELECT 1 FROM documents WHERE source_id = ?1"
                     " AND deleted = 0)", &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "fresh: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(s, 1, source);
    step = sqlite3_step(s);
    *live = step == SQLITE_ROW && sqlite3_column_int64(s, 0);
    stmt_put(s);
    return step == SQLITE_ROW ? CTX_OK : ctx_error_set(err, CTX_ESTORE, "fresh: %s",
                                                       sqlite3_errmsg(db));
}

/*
 * unconfigured - add to out each store source with live documents that the
 * config does not name (removed from it, or a store shared with another
 * config): withheld, since no sync keeps their permissions current.
 */
static int unconfigured(sqlite3 *db, const ctx_config *cfg, fresh_report *out, ctx_error *err)
{
    sqlite3_stmt *s;
    int step, rc = CTX_OK;

    /* the configured ones are skipped before their documents are looked at */
    if (stmt_get(db, "SELECT id, name FROM sources ORDER BY id", &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "fresh: %s", sqlite3_errmsg(db));
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 1);
        fresh_source *v, *f;
        int64_t *w, live = 0;
        size_t i;

        for (i = 0; i < cfg->nsources && strcmp(cfg->sources[i].name, name ? name : ""); i++)
            ;
        if (i < cfg->nsources)
            continue;
        if ((rc = live_docs(db, sqlite3_column_int64(s, 0), &live, err)))
            break;
        if (!live)
            continue;
        if (!(v = ctx_realloc(out->v, (out->n + 1) * sizeof *v))) {
            rc = ctx_error_set(err, CTX_ENOMEM, "fresh: out of memory");
            break;
        }
        out->v = v;
        if (!(w = ctx_realloc(out->withheld, (out->nwithheld + 1) * sizeof *w))) {
            rc = ctx_error_set(err, CTX_ENOMEM, "fresh: out of memory");
            break;
        }
        out->withheld = w;
        f = memset(&out->v[out->n++], 0, sizeof *f);
        snprintf(f->own_name, sizeof f->own_name, "%s", name ? name : "");
        f->name = f->own_name;
        f->id = sqlite3_column_int64(s, 0);
        f->bound_ms = -1;
        f->withheld = 1;
        snprintf(f->why, sizeof f->why,
                 "source %s is no longer in the config, so nothing keeps its permissions"
                 " current; add it back to serve its documents again", f->own_name);
        out->withheld[out->nwithheld++] = f->id;
    }
    if (!rc && step != SQLITE_DONE)
        rc = ctx_error_set(err, CTX_ESTORE, "fresh: %s", sqlite3_errmsg(db));
    stmt_put(s);
    return rc;
}

int fresh_check(sqlite3 *db, const ctx_config *cfg, int64_t now_ms, fresh_report *out,
                ctx_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = CTX_OK;

    memset(out, 0, sizeof *out);
    if (!cfg->nsources)
        return unconfigured(db, cfg, out, err);
    if (!(out->v = ctx_calloc(cfg->nsources, sizeof *out->v)) ||
        !(out->withheld = ctx_calloc(cfg->nsources, sizeof *out->withheld)))
        return ctx_error_set(err, CTX_ENOMEM, "fresh: out of memory");
    if (stmt_get(db, synced_sql, &s) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "fresh: %s", sqlite3_errmsg(db));
    for (size_t i = 0; i < cfg->nsources && !rc; i++) {
        const ctx_source_cfg *src = &cfg->sources[i];
        fresh_source *f = &out->v[out->n++];
        char age[32], bound[32];
        int step;

        f->name = src->name;
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, src->name, -1, SQLITE_STATIC);
        if ((step = sqlite3_step(s)) == SQLITE_ROW) {
            f->id = sqlite3_column_int64(s, 0);
            f->synced_at = sqlite3_column_int64(s, 1);
            f->agent = sqlite3_column_int(s, 2);
        } else if (step != SQLITE_DONE) {
            rc = ctx_error_set(err, CTX_ESTORE, "fresh: %s", sqlite3_errmsg(db));
            break;
        }
        f->bound_ms = fresh_bound(src, f->agent, now_ms);
        if (!f->id || f->bound_ms < 0 || (f->synced_at && now_ms - f->synced_at <= f->bound_ms))
            continue;
        f->withheld = 1;
        out->withheld[out->nwithheld++] = f->id;
        span(f->bound_ms, bound, sizeof bound);
        if (!f->synced_at) {
            snprintf(f->why, sizeof f->why,
                     "permissions never synced (no permission or full sync yet) and"
                     " max_permission_age is %s; run `ctxgate sync --permissions %s`",
                     bound, src->name);
        } else {
            span(now_ms - f->synced_at, age, sizeof age);
            snprintf(f->why, sizeof f->why,
                     "permissions last synced %s ago, longer than max_permission_age %s%s;"
                     " run `ctxgate sync --permissions %s`", age, bound,
                     src->max_permission_age_ms ? "" : " (3 x the agent's permissions"
                                                      " schedule)", src->name);
        }
    }
    stmt_put(s);
    if (!rc)
        rc = unconfigured(db, cfg, out, err);
    if (out->nwithheld)
        qsort(out->withheld, out->nwithheld, sizeof *out->withheld, cmp_i64);
    return rc;
}

void fresh_report_free(fresh_report *r)
{
    ctx_free(r->v);
    ctx_free(r->withheld);
    memset(r, 0, sizeof *r);
}

int fresh_report_copy(fresh_report *to, const fresh_report *from)
{
    memset(to, 0, sizeof *to);
    if (!from->n)
        return CTX_OK;
    if (!(to->v = ctx_malloc(from->n * sizeof *to->v)) ||
        !(to->withheld = ctx_malloc(from->n * sizeof *to->withheld))) {
        fresh_report_free(to);
        return CTX_ENOMEM;
    }
    memcpy(to->v, from->v, from->n * sizeof *to->v);
    for (size_t i = 0; i < from->n; i++)
        if (from->v[i].name == from->v[i].own_name)
            to->v[i].name = to->v[i].own_name;
    if (from->nwithheld)
        memcpy(to->withheld, from->withheld, from->nwithheld * sizeof *to->withheld);
    to->n = from->n;
    to->nwithheld = from->nwithheld;
    return CTX_OK;
}

json_t *fresh_withheld_json(const fresh_report *r)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < r->n; i++) {
        const fresh_source *f = &r->v[i];
        if (!f->withheld)
            continue;
        json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:I}", "source", f->name, "reason",
                                           f->why,
                                           "permissions_synced_at",
                                           f->synced_at ? json_integer(f->synced_at)
                                                        : json_null(),
                                           "max_permission_age_s",
                                           (json_int_t)(f->bound_ms / 1000)));
    }
    return a;
}
