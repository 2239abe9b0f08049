/*
 * service_fetch.c - one document by id or reference under the same checks
 * as search, an operator's explain, and the sources' permission ages.
 */
#include "service_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "acl.h"
#include "explain.h"
#include "replica_gate.h"

/*
 * readable - may user read ACL set acl_id of source source_id, now? Not
 * when the source is withheld for the age of its permissions.
 */
static int readable(svc *s, worker *w, const char *user, int64_t acl_id, int64_t source_id,
                    ctx_error *err)
{
    fresh_report fr;
    acl_access a;
    int ok = 0;

    if (svc__fresh_get(s, w, &fr, err))
        return 0;
    for (size_t i = 0; i < fr.nwithheld; i++)
        if (fr.withheld[i] == source_id) {
            fresh_report_free(&fr);
            return 0;
        }
    fresh_report_free(&fr);
    if (!acl_access_get(store_db(w->st), user, &a, err))
        for (size_t i = 0; i < a.readable.n && !ok; i++)
            ok = a.readable.ids[i] == acl_id;
    acl_access_free(&a);
    return ok;
}

int svc_explain(svc *s, const char *user, const char *via, const char *ref, json_t **answer,
                ctx_error *err)
{
    uint64_t t0 = ctx_mono_ns();
    worker *w;
    int rc;

    *answer = NULL;
    pthread_rwlock_rdlock(&s->clock);
    if (!(w = svc__take(s, err))) {
        pthread_rwlock_unlock(&s->clock);
        return err->code;
    }
    rc = explain_access(store_db(w->st), s->cfg, user, via, ref, ctx_now_ms(), answer, err);
    svc__give(s, w);
    {
        /* An operator looked: the log says at whom and at what. */
        svc_identity who = {user, via};
        json_t *ids = json_array();
        json_t *doc = *answer ? json_object_get(*answer, "document") : NULL;
        if (doc)
            json_array_append(ids, json_object_get(doc, "doc_id"));
        svc__audit(s, &who, "explain", ref, ids, 0, t0, rc ? "error" : "ok");
        json_decref(ids);
    }
    pthread_rwlock_unlock(&s->clock);
    return rc;
}

json_t *svc_permission_ages(svc *s)
{
    fresh_report fr;
    ctx_error err;
    json_t *out = NULL;
    int64_t now = ctx_now_ms();
    worker *w;

    pthread_rwlock_rdlock(&s->clock);
    if ((w = svc__take(s, &err))) {
        if (!svc__fresh_get(s, w, &fr, &err)) {
            out = json_object();
            for (size_t i = 0; out && i < fr.n; i++) {
                const fresh_source *f = &fr.v[i];
                json_object_set_new(
                    out, f->name,
                    json_pack("{s:o,s:o,s:o,s:b}", "synced_at",
                              f->synced_at ? json_integer(f->synced_at) : json_null(), "age_s",
                              f->synced_at ? json_integer((now - f->synced_at) / 1000)
                                           : json_null(),
                              "max_permission_age_s",
                              f->bound_ms < 0 ? json_null() : json_integer(f->bound_ms / 1000),
                              "withheld", f->withheld));
            }
            fresh_report_free(&fr);
        }
        svc__give(s, w);
    }
    pthread_rwlock_unlock(&s->clock);
    return out;
}

/*
 * resolve_ref - the document a reference names, or 0: a positive decimal
 * internal id, or SOURCE:EXTERNAL_ID. A source name has no ':' (config
 * names are [A-Za-z0-9_.-]), so the first ':' ends it and the external id
 * may hold more. Whether the caller may read it is not looked at here:
 * the fetch answers a forbidden and a missing document alike.
 */
static int64_t resolve_ref(worker *w, const char *ref)
{
    const char *colon = strchr(ref, ':');
    int64_t doc = 0;

    if (!colon) {
        char *end;
        long long n;
        errno = 0;
        n = strtoll(ref, &end, 10);
        return *ref >= '1' && *ref <= '9' && !*end && !errno && n > 0 ? (int64_t)n : 0;
    }
    if (colon == ref || !colon[1])
        return 0;
    store_doc_by_ext(w->st, ref, (size_t)(colon - ref), colon + 1, &doc);
    return doc;
}

/* fetch_locked - svc_fetch under the config's read lock; ref, when set, names the document. */
static int fetch_locked(svc *s, const svc_identity *id, int64_t doc_id, const char *ref,
                        json_t **answer, ctx_error *err)
{
    uint64_t t0 = ctx_mono_ns();
    const ctx_agent_grant *g = svc__grant_of(s, id);
    json_t *labels = NULL, *ids = NULL;
    int rc = CTX_ENOTFOUND, ntok = 0;
    char cite[32];
    store_doc_view d;
    worker *w;

    *answer = NULL;
    if (!g) {
        svc__audit(s, id, "fetch", NULL, NULL, 0, t0, "denied");
        return ctx_error_set(err, CTX_EAUTH, "%s", !id || !id->user || !*id->user
                                                       ? "no user: a token must name the user"
                                                       : "agent is not registered in the"
                                                         " config's \"agents\"");
    }
    if ((rc = svc__budget_check(s, id, NULL, err))) { /* spent: 429, naming the budget */
        svc__audit(s, id, "fetch", NULL, NULL, 0, t0, rc == CTX_ELIMIT ? "budget" : "error");
        return rc;
    }
    if (!(w = svc__take(s, err))) {
        svc__audit(s, id, "fetch", NULL, NULL, 0, t0, "error");
        return err->code;
    }
    /* a replica's store read by a process that does not follow it (mcp) */
    if ((rc = replica_gate_store(s->cfg, w->st, ctx_now_ms(), err))) {
        svc__give(s, w);
        svc__audit(s, id, "fetch", NULL, NULL, 0, t0, "error");
        return rc;
    }
    rc = CTX_ENOTFOUND; /* until the document is found readable */
    if (ref)
        doc_id = resolve_ref(w, ref);
    if (doc_id > 0 && !store_doc_get(w->st, doc_id, &d, NULL)) {
        labels = svc__acl_labels_of(w, d.acl_id);
        if (d.source && svc__has(&g->sources, d.source) && svc__labels_ok(g, NULL, labels) &&
            readable(s, w, id->user, d.acl_id, d.source_id, err)) {
            size_t len = d.body ? strlen(d.body) : 0;
            size_t keep = svc__fit(d.body ? d.body : "", len, g->max_tokens, &ntok);
            char *text = ctx_strndup(d.body ? d.body : "", keep);
            snprintf(cite, sizeof cite, "[doc %lld]", (long long)doc_id);
            *answer = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:O,s:I,s:s,s:s,s:i,s:b,s:b,s:s}",
                                "doc_id", (json_int_t)doc_id, "external_id",
                                d.ext_id ? d.ext_id : "", "stream", d.stream ? d.stream : "",
                                "title", d.title ? d.title : "", "url", d.url ? d.url : "",
                                "source", d.source, "labels", labels, "acl_synced_at",
                                (json_int_t)d.acl_synced_at, "citation", cite, "text",
                                text ? text : "", "tokens", ntok, "truncated", keep < len,
                                "untrusted_content", 1, "note", svc_untrusted_note);
            ctx_free(text);
            rc = *answer ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "out of memory");
        }
        store_doc_release(w->st);
    }
    svc__give(s, w);
    json_decref(labels);
    if (rc == CTX_ENOTFOUND)
        ctx_error_set(err, CTX_ENOTFOUND, "no such document");
    ids = rc ? json_array() : json_pack("[I]", (json_int_t)doc_id);
    if ((!ids || svc__audit(s, id, "fetch", NULL, ids, rc ? 0 : ntok, t0,
                            !rc ? "ok" : rc == CTX_ENOTFOUND ? "not_found" : "error")) &&
        !rc) {
        json_decref(*answer); /* an answer is given only with its record */
        *answer = NULL;
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory: the answer could not be audited");
    }
    json_decref(ids);
    if (!rc) {
        svc__usage_add(s, id->user, 0, ntok);
        svc__usage_add(s, id->agent, 1, ntok);
    }
    return rc;
}

int svc_fetch(svc *s, const svc_identity *id, int64_t doc_id, json_t **answer, ctx_error *err)
{
    int rc;
    pthread_rwlock_rdlock(&s->clock);
    rc = fetch_locked(s, id, doc_id, NULL, answer, err);
    pthread_rwlock_unlock(&s->clock);
    return rc;
}

int svc_fetch_ref(svc *s, const svc_identity *id, const char *ref, json_t **answer,
                  ctx_error *err)
{
    int rc;
    pthread_rwlock_rdlock(&s->clock);
    rc = fetch_locked(s, id, 0, ref ? ref : "", answer, err);
    pthread_rwlock_unlock(&s->clock);
    return rc;
}
