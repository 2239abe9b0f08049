/*
 * fresh.h - how current each source's permissions are. A source whose last
 * successful permission sync (or full sync, which reads every item's
 * permissions too) is older than its max_permission_age is withheld from
 * every answer until one succeeds: fail closed, and say so.
 */
#ifndef CTX_RETRIEVAL_FRESH_H
#define CTX_RETRIEVAL_FRESH_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/ctx.h"

/* FRESH_FLOOR_MS - the least default bound: 15 minutes. */
#define FRESH_FLOOR_MS (15 * 60 * 1000LL)

typedef struct fresh_source {
    const char *name;     /* borrowed from the config, or own_name */
    char own_name[256];   /* a source with documents that the config no longer names */
    int64_t id;           /* store id; 0 when the store has never seen it */
    int64_t synced_at;    /* ms since epoch of the last permission or full sync; 0 = none */
    int64_t bound_ms;     /* the max age in force; -1 = none */
    int agent;            /* the maintenance agent has run its permissions job */
    int withheld;
    char why[240];        /* when withheld: why, and what to do */
} fresh_source;

typedef struct fresh_report {
    fresh_source *v;      /* one per configured source, in config order, then
                           * each the config no longer names that has live
                           * documents (always withheld); owned */
    size_t n;
    int64_t *withheld;    /* store ids of the withheld sources, sorted; owned */
    size_t nwithheld;
} fresh_report;

/*
 * fresh_bound - the max age in force for source s: its max_permission_age;
 * by default (none set), 3 x the period of its permissions schedule (at
 * least FRESH_FLOOR_MS) when the agent runs that job (agent), else none
 * (-1): someone who syncs by hand is not surprised a week later.
 */
int64_t fresh_bound(const ctx_source_cfg *s, int agent, int64_t now_ms);

/*
 * fresh_check - every configured source's permission age at now_ms, read
 * from the store through db (borrowed), and the sources the config no
 * longer names whose documents are still in the store: nothing keeps
 * their permissions current, so they are withheld. *out (new) must be
 * fresh_report_free'd whatever the result.
 */
int fresh_check(sqlite3 *db, const ctx_config *cfg, int64_t now_ms, fresh_report *out,
                ctx_error *err);
void fresh_report_free(fresh_report *r);

/* fresh_report_copy - a copy (new arrays) of from; configured names stay borrowed. */
int fresh_report_copy(fresh_report *to, const fresh_report *from);

/*
 * fresh_withheld_json - the withheld sources as answers carry them (new):
 * [{"source", "reason", "permissions_synced_at", "max_permission_age_s"}].
 */
json_t *fresh_withheld_json(const fresh_report *r);

#endif
