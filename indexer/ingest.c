/*
 * ingest.c - one message at a time into the store (see ingest.h).
 */
#include "ingest.h"

#include <jansson.h>
#include <string.h>

#include "../core/util.h"
#include "../core/json.h"

/* repair - *out is s itself when valid, else a repaired copy kept in buf. */
static int repair(const char *s, size_t len, ctx_buf *buf, const char **out,
                  size_t *outlen, int64_t *nrepaired)
{
    size_t bad = 0;

    if (!s) {
        *out = NULL;
        *outlen = 0;
        return CTX_OK;
    }
    /* NUL bytes inside a length-delimited body count as ill-formed too. */
    if (ctx_utf8_valid(s, len) && !memchr(s, '\0', len)) {
        *out = s;
        *outlen = len;
        return CTX_OK;
    }
    ctx_buf_reset(buf);
    if (ctx_utf8_repair(s, len, buf, &bad))
        return CTX_ENOMEM;
    *out = buf->data ? buf->data : "";
    *outlen = buf->len;
    *nrepaired += bad ? (int64_t)bad : 1;
    return CTX_OK;
}

/* allows_everyone - the ACL as sent names everyone among its readers. */
static int allows_everyone(const ctx_acl *acl)
{
    for (size_t i = 0; acl && i < acl->n_allow; i++)
        if (acl->allow[i] && !strcmp(acl->allow[i], "everyone"))
            return 1;
    return 0;
}

/*
 * count_acl_change - the permission counters for a document moving to
 * acl_id: acls (a live document's ACL set changed; a new document is
 * counted as indexed only) and to_everyone (readable by everyone now,
 * not before: new, a tombstone back, or an ACL that now allows everyone).
 */
static int count_acl_change(ingest_ctx *c, const store_doc_info *info, const ctx_acl *acl,
                            int64_t acl_id, ctx_error *err)
{
    int live = info->id && !info->deleted, was = 0, rc;

    if (live && info->acl_id == acl_id)
        return CTX_OK;
    if (live)
        c->stats->acls++;
    if (!allows_everyone(acl))
        return CTX_OK;
    if (live && (rc = store_acl_everyone(c->store, info->acl_id, &was, err)))
        return rc;
    if (!was)
        c->stats->to_everyone++;
    return CTX_OK;
}

int ingest_record(ingest_ctx *c, const ctx_record *rec, ctx_error *err)
{
    ctx_buf fix[5] = {CTX_BUF_INIT, CTX_BUF_INIT, CTX_BUF_INIT, CTX_BUF_INIT, CTX_BUF_INIT};
    const char *id, *title, *url, *body, *meta = NULL;
    size_t idlen, tlen, ulen, blen, mlen = 0, nspans = 0, i;
    chunk_span *spans = NULL;
    store_chunk *chunks = NULL;
    store_doc_info info;
    store_doc d;
    int64_t acl_id, doc_id;
    int rc;
    char hash[65];

    if (!rec->stream || !*rec->stream)
        return ctx_error_set(err, CTX_EINVAL, "RECORD: missing stream");
    if (!rec->id || !*rec->id)
        return ctx_error_set(err, CTX_EINVAL, "RECORD in stream \"%s\": missing id",
                             rec->stream);
    if (c->max_record_bytes > 0 && rec->body_len > (size_t)c->max_record_bytes)
        return ctx_error_set(err, CTX_ETOOBIG,
                             "RECORD %s/%s: body is %zu bytes, over max_record_bytes"
                             " (%lld); raise max_record_bytes in the source's config",
                             rec->stream, rec->id, rec->body_len,
                             (long long)c->max_record_bytes);

    rc = CTX_ENOMEM;
    if (repair(rec->id, strlen(rec->id), &fix[0], &id, &idlen, &c->stats->repaired_utf8) ||
        repair(rec->title, rec->title ? strlen(rec->title) : 0, &fix[1], &title, &tlen,
               &c->stats->repaired_utf8) ||
        repair(rec->url, rec->url ? strlen(rec->url) : 0, &fix[2], &url, &ulen,
               &c->stats->repaired_utf8) ||
        repair(rec->body, rec->body_len, &fix[3], &body, &blen, &c->stats->repaired_utf8))
        goto oom;
    if (rec->metadata_json) {
        /* Keep only a well-formed JSON object; anything else is dropped, loudly. */
        json_error_t jerr;
        json_t *m = ctx_json_loads(rec->metadata_json, JSON_REJECT_DUPLICATES, &jerr);
        if (!m && json_error_code(&jerr) == json_error_out_of_memory)
            goto oom; /* not the record's fault: it is not stored at all */
        if (json_is_object(m)) {
            meta = rec->metadata_json;
            mlen = strlen(meta);
        } else {
            ctx_log(CTX_LOG_WARN, "ingest", "RECORD %s/%s: metadata is not a JSON object (%s);"
                    " stored without it", rec->stream, id, m ? "wrong type" : jerr.text);
        }
        json_decref(m);
    }

    if ((rc = store_acl_intern(c->store, c->source, rec->acl, &acl_id, err)))
        goto out;
    if (!rec->acl || !rec->acl->n_allow)
        ctx_log(CTX_LOG_DEBUG, "ingest", "RECORD %s/%s has no allow list: nobody can read it",
                rec->stream, id);
    {
        const void *parts[4] = {title ? title : "", url ? url : "", body ? body : "",
                                meta ? meta : ""};
        size_t lens[4] = {tlen, ulen, blen, mlen};
        ctx_hash_hex(parts, lens, 4, hash);
    }
    if ((rc = store_doc_lookup(c->store, c->source, rec->stream, id, &info, err)) ||
        (rc = count_acl_change(c, &info, rec->acl, acl_id, err)))
        goto out;
    if (info.id && !info.deleted && !strcmp(info.hash, hash)) {
        c->stats->unchanged++;
        /* (counted above: a full read finds permission changes too) */
        if (info.acl_id != acl_id && (rc = store_doc_set_acl(c->store, info.id, acl_id, err)))
            goto out;
        rc = store_doc_touch(c->store, info.id, c->epoch, err);
        goto out;
    }

    d.source = c->source;
    d.stream = rec->stream;
    d.ext_id = id;
    d.title = title;
    d.url = url;
    d.body = body;
    d.body_len = blen;
    d.metadata = meta;
    d.updated_at_ms = rec->updated_at_ms;
    d.acl_id = acl_id;
    d.hash = hash;
    d.epoch = c->epoch;
    doc_id = info.id;
    if ((rc = store_doc_write(c->store, &d, &doc_id, err)))
        goto out;

    rc = CTX_ENOMEM;
    if (chunker_split(body ? body : "", blen, &c->chunk, &spans, &nspans))
        goto oom;
    if (!(chunks = ctx_calloc(nspans ? nspans : 1, sizeof *chunks)))
        goto oom;
    for (i = 0; i < nspans; i++) {
        chunks[i].text = body + spans[i].off;
        chunks[i].len = spans[i].len;
        chunks[i].ntokens = spans[i].ntokens;
    }
    if (!nspans) {
        /* An empty body still leaves the title to be found. */
        chunks[0].text = "";
        nspans = 1;
    }
    /* A document new to the store (or a tombstone, which has no chunks) has
     * nothing to drop first. */
    rc = info.id && !info.deleted
             ? store_chunks_replace(c->store, doc_id, title, acl_id, chunks, nspans, err)
             : store_chunks_add(c->store, doc_id, title, acl_id, chunks, nspans, err);
    if (rc)
        goto out;
    c->stats->records++;
    c->stats->chunks += (int64_t)nspans;
    c->stats->bytes += (int64_t)blen;
    rc = CTX_OK;
    goto out;
oom:
    rc = ctx_error_set(err, CTX_ENOMEM, "RECORD %s/%s: out of memory", rec->stream, rec->id);
out: /* every exit: rc says whether it failed */
    for (i = 0; i < 5; i++)
        ctx_buf_free(&fix[i]);
    ctx_free(spans);
    ctx_free(chunks);
    return rc;
}

int ingest_delete(ingest_ctx *c, const char *stream, const char *id, ctx_error *err)
{
    store_doc_info info;
    int rc;

    if (!stream || !*stream || !id || !*id)
        return ctx_error_set(err, CTX_EINVAL, "DELETE: stream and id are required");
    if ((rc = store_doc_lookup(c->store, c->source, stream, id, &info, err)))
        return rc;
    if (!info.id || info.deleted)
        return CTX_OK;
    c->stats->deletes++;
    return store_doc_delete(c->store, info.id, c->epoch, err);
}

/*
 * acl_target - the live document an ACL message names (found through
 * lookup) and the id of its new ACL set; *info zeroed when there is no
 * such live document (the message is then ignored).
 */
static int acl_target(ingest_ctx *c, const char *stream, const char *id, const ctx_acl *acl,
                      int (*lookup)(ctx_store *, int64_t, const char *, const char *,
                                    store_doc_info *, ctx_error *),
                      store_doc_info *info, int64_t *acl_id, ctx_error *err)
{
    int rc;

    if (!stream || !*stream || !id || !*id)
        return ctx_error_set(err, CTX_EINVAL, "ACL: stream and id are required");
    if ((rc = lookup(c->store, c->source, stream, id, info, err)))
        return rc;
    if (!info->id || info->deleted) {
        memset(info, 0, sizeof *info);
        return CTX_OK;
    }
    return store_acl_intern(c->store, c->source, acl, acl_id, err);
}

int ingest_acl(ingest_ctx *c, const char *stream, const char *id, const ctx_acl *acl,
               ctx_error *err)
{
    store_doc_info info;
    int64_t acl_id;
    int rc;

    /* The hash is not needed: the index answers without reading the row. */
    if ((rc = acl_target(c, stream, id, acl, store_doc_acl_lookup, &info, &acl_id, err)) ||
        !info.id)
        return rc;
    /* The same ACL set again is no change: nothing is counted or rewritten
     * (moving the chunks would index them again). */
    if (info.acl_id == acl_id)
        return CTX_OK;
    c->stats->acls++;
    if (info.acl_id != acl_id && allows_everyone(acl)) {
        int was = 0;
        if ((rc = store_acl_everyone(c->store, info.acl_id, &was, err)))
            return rc;
        c->stats->to_everyone += !was;
    }
    return store_doc_set_acl(c->store, info.id, acl_id, err);
}

int ingest_acl_seen(ingest_ctx *c, const char *stream, const char *id, const ctx_acl *acl,
                    ctx_error *err)
{
    store_doc_info info;
    int64_t acl_id;
    int rc;

    if ((rc = acl_target(c, stream, id, acl, store_doc_acl_lookup, &info, &acl_id, err)) ||
        !info.id)
        return rc;
    /* Counted as ingest_record counts: content unchanged, and a permission
     * change when there is one. */
    c->stats->unchanged++;
    if ((rc = count_acl_change(c, &info, acl, acl_id, err)))
        return rc;
    if (acl_id != info.acl_id && (rc = store_doc_set_acl(c->store, info.id, acl_id, err)))
        return rc;
    /* Not store_doc_touch: rewriting every row (body and all) to mark it
     * seen was most of a permission run's time. */
    return store_perm_seen(c->store, info.id, err);
}
