/*
 * vsearch.c - vector search inside what the caller may read (see vsearch.h).
 */
#include "vsearch.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/stmt.h"
#include "acl.h"
#include "../core/json.h"

#define EF_MAX 4096

int vsearch_plan(const vindex *vi, const float *q, const vindex_filter *f,
                 const vsearch_opts *opts, vindex_hit *out, size_t *n, vsearch_stats *stats,
                 ctx_error *err)
{
    vsearch_stats local;
    vindex_info info;
    int k = opts && opts->k > 0 ? opts->k : 10;
    int plan = opts ? opts->plan : VSEARCH_AUTO;
    size_t exact_max = opts && opts->exact_max > 0 ? (size_t)opts->exact_max : VSEARCH_EXACT_MAX;
    int ef_min = opts && opts->ef_min > 0 ? opts->ef_min : VSEARCH_EF_MIN;
    double share, ef;
    int rc;

    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    *n = 0;
    if (k > 1000)
        k = 1000;
    vindex_get_info(vi, &info);
    stats->allowed = vindex_count(vi, f);
    if (!stats->allowed)
        return CTX_OK;
    /*
     * The graph keeps only the vectors a walk passes that the selector
     * lets through, so the walk must look at about k / share candidates
     * to find k of them: the queue that would hold max(ef_min, 4k) for
     * an unfiltered search is divided by the allowed share, so it holds
     * about as many allowed vectors (set with bench/vector_search).
     */
    share = (double)stats->allowed / (double)(info.n - info.dead ? info.n - info.dead : 1);
    ef = (VSEARCH_EF_WIDEN * k > ef_min ? VSEARCH_EF_WIDEN * k : ef_min) /
         (share > 0 ? share : 1e-9);
    /*
     * Never the graph walk unless forced: its path runs through every
     * vector, so a document the caller cannot read could move their
     * answer. The partition's lists were trained before (a new vector only
     * joins its nearest list), and an index without them holds under the
     * 50,000 vectors that trigger the training, which scan exactly.
     */
    if (plan == VSEARCH_AUTO)
        plan = stats->allowed > exact_max && vindex_lists(vi) ? VSEARCH_IVF : VSEARCH_EXACT;
    stats->plan = plan;
    if (plan == VSEARCH_IVF) {
        stats->nprobe = opts && opts->nprobe > 0 ? opts->nprobe : VSEARCH_NPROBE;
        if ((rc = vindex_search_ivf(vi, q, k, stats->nprobe, f, out, n, err)))
            return rc;
        if (*n >= (size_t)k || *n >= stats->allowed)
            return CTX_OK;
        stats->fell_back = 1;
    }
    if (plan == VSEARCH_ANN) {
        stats->ef = ef > EF_MAX ? EF_MAX : (int)ef;
        if ((rc = vindex_search_ann(vi, q, k, stats->ef, f, out, n, err)))
            return rc;
        if (*n >= (size_t)k || *n >= stats->allowed)
            return CTX_OK;
        stats->fell_back = 1;
    }
    return vindex_search_exact(vi, q, k, f, out, n, err);
}

/* source_ids - ids of the named sources, sorted (new). */
static int source_ids(sqlite3 *db, const vsearch_opts *o, acl_principals *out, ctx_error *err)
{
    json_t *a = json_array();
    sqlite3_stmt *s;
    char *js;
    int rc;

    for (size_t i = 0; i < o->nsources; i++)
        json_array_append_new(a, json_string(o->sources[i]));
    js = ctx_json_text(a, JSON_COMPACT);
    json_decref(a);
    if (!js)
        return ctx_error_set(err, CTX_ENOMEM, "vsearch: out of memory");
    if (stmt_get(db, "SELECT id FROM sources WHERE name IN"
                 " (SELECT value FROM json_each(?1)) ORDER BY 1", &s) != SQLITE_OK) {
        free(js);
        return ctx_error_set(err, CTX_ESTORE, "vsearch: %s", sqlite3_errmsg(db));
    }
    sqlite3_bind_text(s, 1, js, -1, SQLITE_STATIC);
    rc = acl__collect(s, out, err);
    free(js);
    return rc;
}

/* over_per_doc - does out already hold opts->per_doc chunks of h's document? */
static int over_per_doc(const search_result *out, const search_hit *h, const vsearch_opts *opts)
{
    size_t same = 0;

    if (!opts || opts->per_doc <= 0)
        return 0;
    for (size_t j = 0; j < out->n; j++)
        same += out->hits[j].doc_id == h->doc_id;
    return same >= (size_t)opts->per_doc;
}

/*
 * The hits are read from the store (search__hit), each checked once more:
 * live document, readable ACL set. The index is derived data and a chunk
 * deleted since its last catch-up must not be served.
 */
int vsearch(sqlite3 *db, const vindex *vi, const char *user, const float *q,
            const vsearch_opts *opts, search_result *out, vsearch_stats *stats, ctx_error *err)
{
    acl_principals acls = {NULL, 0}, srcs = {NULL, 0};
    acl_access acc;
    vindex_filter f;
    vindex_hit *hits = NULL;
    int k = opts && opts->k > 0 ? opts->k : 10;
    size_t n = 0, i;
    int rc, want;

    out->hits = NULL;
    out->n = 0;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (k > 1000)
        k = 1000;
    rc = acl_access_get(db, user, &acc, err);
    if (rc == CTX_ENOTFOUND)
        rc = CTX_OK; /* fail closed, and say nothing about why */
    if (rc || !vi)
        goto done;
    if (opts && opts->labels) {
        if ((rc = acl_readable_filter(db, &acc.readable, opts->labels, &acls, err)))
            goto done;
    } else {
        acls = acc.readable; /* taken over */
        memset(&acc.readable, 0, sizeof acc.readable);
    }
    if (!acls.n)
        goto done;
    if (opts && opts->nsources && (rc = source_ids(db, opts, &srcs, err)))
        goto done;
    if (opts && opts->nsources && !srcs.n)
        goto done;
    f.acl_ids = acls.ids;
    f.nacl = acls.n;
    f.source_ids = opts && opts->nsources ? srcs.ids : NULL;
    f.nsource = srcs.n;
    /*
     * A hit the store no longer has (the index is behind) is dropped; then
     * the plan runs again for more, so k live hits come back if they exist.
     */
    /* collapsing per document may need more chunks than k: ask a few times k */
    want = opts && opts->per_doc > 0 && k * 4 + 8 < 1000 ? k * 4 + 8 : k;
    for (;;) {
        vsearch_opts o2;
        memset(&o2, 0, sizeof o2);
        if (opts)
            o2 = *opts;
        o2.k = want;
        search_result_free(out);
        ctx_free(hits);
        if (!(hits = ctx_calloc((size_t)want, sizeof *hits)) ||
            !(out->hits = ctx_calloc((size_t)k, sizeof *out->hits))) {
            rc = ctx_error_set(err, CTX_ENOMEM, "vsearch: out of memory");
            goto done;
        }
        if ((rc = vsearch_plan(vi, q, &f, &o2, hits, &n, stats, err)))
            goto done;
        for (i = 0; i < n && (int)out->n < k; i++) {
            search_hit *h = &out->hits[out->n];
            int64_t acl = 0;
            int got;
            memset(h, 0, sizeof *h);
            h->chunk_id = hits[i].chunk_id;
            h->score = hits[i].score;
            if ((got = search__hit(db, h, opts && opts->ids_only, &acl, err)) < 0) {
                rc = -got;
                goto done;
            }
            if (!got)
                continue; /* deleted since the index caught up */
            if (!ctx_in_sorted(acls.ids, acls.n, acl) || over_per_doc(out, h, opts)) {
                search_hit_clear(h);
                continue;
            }
            out->n++;
        }
        if ((int)out->n >= k || n < (size_t)want || want >= 1000)
            break;
        want = want * 4 > 1000 ? 1000 : want * 4;
    }
    rc = CTX_OK;
done:
    if (rc)
        search_result_free(out);
    ctx_free(hits);
    acl_access_free(&acc);
    acl_principals_free(&acls);
    acl_principals_free(&srcs);
    return rc;
}
