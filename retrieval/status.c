/*
 * status.c - sources, permissions and the index in one report (status.h).
 */
#include "status.h"

#include <string.h>

#include "../indexer/pgreport.h"
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

/*
 * cluster_part - in cluster mode, the sources as PostgreSQL has them (their
 * runs are written there, not here) with this store's chunks and live
 * documents beside them ("local_documents"), and the "cluster" object
 * (pgreport.h), with this replica's stored LSN when it is one. PostgreSQL
 * out of reach: *sources is left as the store has it and the cluster
 * object says why ({"error": ...}), so the rest of the status still shows.
 */
static int cluster_part(const ctx_config *cfg, ctx_store *st, int64_t now, json_t **sources,
                        json_t **out, ctx_error *err)
{
    json_t *pgsrc = NULL, *local = *sources, *o, *mine = NULL;
    ctx_error perr;
    size_t i, j;
    int rc;

    *out = NULL;
    if (cfg->cluster.replica && *cfg->cluster.replica &&
        (rc = pgreport_replica(st, cfg->cluster.replica, &mine, err)))
        return rc;
    perr.code = CTX_OK;
    perr.text[0] = '\0';
    if (pgreport_cluster(&cfg->cluster, now, &pgsrc, out, &perr)) {
        *out = json_pack("{s:s}", "error", perr.text);
    } else {
        json_array_foreach(pgsrc, i, o) {
            const char *name = json_string_value(json_object_get(o, "source"));
            json_t *l, *chunks = json_integer(0), *docs = json_integer(0);
            json_array_foreach(local, j, l) {
                if (!strcmp(name, json_string_value(json_object_get(l, "source")))) {
                    json_decref(chunks);
                    json_decref(docs);
                    chunks = json_incref(json_object_get(l, "chunks"));
                    docs = json_incref(json_object_get(l, "documents"));
                    break;
                }
            }
            json_object_set_new(o, "chunks", chunks);
            json_object_set_new(o, "local_documents", docs);
        }
        json_decref(local);
        *sources = pgsrc;
    }
    if (!*out) {
        json_decref(mine);
        return ctx_error_set(err, CTX_ENOMEM, "status: out of memory");
    }
    if (mine)
        json_object_set_new(*out, "this_replica", mine);
    return CTX_OK;
}

int status_report(const ctx_config *cfg, ctx_store *st, int64_t now, json_t **out,
                  ctx_error *err)
{
    json_t *sources = NULL, *perms = NULL, *index = NULL, *cluster = NULL;
    int rc;

    *out = NULL;
    if ((rc = report_sources(st, now, &sources, err)) ||
        (rc = permissions(cfg, st, now, &perms, err)) ||
        (rc = report_index(st, cfg->data_dir, now, &index, err)) ||
        (cfg->cluster.conninfo && *cfg->cluster.conninfo &&
         (rc = cluster_part(cfg, st, now, &sources, &cluster, err)))) {
        json_decref(sources);
        json_decref(perms);
        json_decref(index);
        return rc;
    }
    *out = json_pack("{s:o,s:o,s:o}", "sources", sources, "permissions", perms, "index", index);
    if (*out && cluster)
        json_object_set_new(*out, "cluster", cluster);
    else
        json_decref(cluster);
    return *out ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "status: out of memory");
}
