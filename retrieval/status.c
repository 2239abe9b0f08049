/*
 * status.c - sources, permissions and the index in one report (status.h).
 */
#include "status.h"

#include "../indexer/report.h"
#include "explain.h"
#include "fresh.h"

/* permissions - each configured source's permission age and warnings (new). */
static int permissions(const ctx_config *cfg, ctx_store *st, int64_t now, json_t **out,
                       ctx_error *err)
{
    fresh_report fr;
    int rc;

    *out = NULL;
    if ((rc = fresh_check(store_db(st), cfg, now, &fr, err))) {
        fresh_report_free(&fr);
        return rc;
    }
    *out = json_array();
    for (size_t i = 0; i < fr.n; i++) {
        const fresh_source *f = &fr.v[i];
        ctx_error werr;
        json_t *w = explain_source_warnings(store_db(st), f->name, &werr);
        json_array_append_new(
            *out, json_pack("{s:s,s:o,s:o,s:o,s:b,s:s?,s:o}", "source", f->name,
                            "permissions_synced_at",
                            f->synced_at ? json_integer(f->synced_at) : json_null(),
                            "permission_age_s",
                            f->synced_at ? json_integer((now - f->synced_at) / 1000)
                                         : json_null(),
                            "max_permission_age_s",
                            f->bound_ms < 0 ? json_null() : json_integer(f->bound_ms / 1000),
                            "withheld", f->withheld, "reason", f->withheld ? f->why : NULL,
                            "warnings",
                            w ? json_incref(json_object_get(w, "warnings")) : json_array()));
        json_decref(w);
    }
    fresh_report_free(&fr);
    return CTX_OK;
}

int status_report(const ctx_config *cfg, ctx_store *st, int64_t now, json_t **out,
                  ctx_error *err)
{
    json_t *sources = NULL, *perms = NULL, *index = NULL;
    int rc;

    *out = NULL;
    if ((rc = report_sources(st, now, &sources, err)) ||
        (rc = permissions(cfg, st, now, &perms, err)) ||
        (rc = report_index(st, cfg->data_dir, now, &index, err))) {
        json_decref(sources);
        json_decref(perms);
        return rc;
    }
    *out = json_pack("{s:o,s:o,s:o}", "sources", sources, "permissions", perms, "index", index);
    return *out ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "status: out of memory");
}
