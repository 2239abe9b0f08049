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

/* prep_pack - d as a copy of s laid out in k (see ctx_pack): strings, ACL, spans, tokens. */
static void prep_pack(ingest_prep *d, ctx_pack *k, const ingest_prep *s)
{
    chunk_span *spans = ctx_pack_take(k, s->nspans * sizeof *spans, _Alignof(chunk_span));
    size_t *ends = NULL, ntoks = s->toks && s->nspans ? s->tok_ends[s->nspans - 1] : 0;
    unsigned char *toks = NULL;

    *d = *s;
    if (spans && s->nspans)
        memcpy(spans, s->spans, s->nspans * sizeof *spans);
    d->spans = spans;
    if (s->toks && s->nspans) {
        ends = ctx_pack_take(k, s->nspans * sizeof *ends, _Alignof(size_t));
        toks = ctx_pack_take(k, ntoks ? ntoks : 1, 1);
        if (ends)
            memcpy(ends, s->tok_ends, s->nspans * sizeof *ends);
        if (toks && ntoks)
            memcpy(toks, s->toks, ntoks);
    }
    d->tok_ends = ends;
    d->toks = toks;
    d->stream = ctx_pack_str(k, s->stream);
    d->id = ctx_pack_str(k, s->id);
    d->title = ctx_pack_mem(k, s->title, s->tlen);
    d->url = ctx_pack_mem(k, s->url, s->ulen);
    d->body = ctx_pack_mem(k, s->body, s->blen);
    d->meta = ctx_pack_mem(k, s->meta, s->mlen);
    memset(&d->acl_copy, 0, sizeof d->acl_copy);
    d->acl = NULL;
    if (s->acl) {
        d->acl_copy.allow = ctx_pack_strv(k, s->acl->allow, s->acl->n_allow);
        d->acl_copy.n_allow = s->acl->n_allow;
        d->acl_copy.deny = ctx_pack_strv(k, s->acl->deny, s->acl->n_deny);
        d->acl_copy.n_deny = s->acl->n_deny;
        d->acl_copy.labels = ctx_pack_strv(k, s->acl->labels, s->acl->n_labels);
        d->acl_copy.n_labels = s->acl->n_labels;
        d->acl = &d->acl_copy;
    }
}

int ingest_prepare(const ingest_ctx *c, const ctx_record *rec, ingest_prep **out,
                   ctx_error *err)
{
    ctx_buf fix[4] = {CTX_BUF_INIT, CTX_BUF_INIT, CTX_BUF_INIT, CTX_BUF_INIT};
    ctx_pack k = {NULL, sizeof(ingest_prep)};
    ingest_prep t, measured, *p;
    chunk_span *spans = NULL;
    ctx_buf toks = CTX_BUF_INIT;
    size_t idlen, i, *ends = NULL;
    int rc;

    *out = NULL;
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

    memset(&t, 0, sizeof t);
    t.stream = rec->stream;
    t.updated_at_ms = rec->updated_at_ms;
    t.acl = rec->acl;
    if (repair(rec->id, strlen(rec->id), &fix[0], &t.id, &idlen, &t.repaired) ||
        repair(rec->title, rec->title ? strlen(rec->title) : 0, &fix[1], &t.title, &t.tlen,
               &t.repaired) ||
        repair(rec->url, rec->url ? strlen(rec->url) : 0, &fix[2], &t.url, &t.ulen,
               &t.repaired) ||
        repair(rec->body, rec->body_len, &fix[3], &t.body, &t.blen, &t.repaired))
        goto oom;
    if (rec->metadata_json) {
        /* Keep only a well-formed JSON object; anything else is dropped, loudly. */
        json_error_t jerr;
        json_t *m = ctx_json_loads(rec->metadata_json, JSON_REJECT_DUPLICATES, &jerr);
        if (!m && json_error_code(&jerr) == json_error_out_of_memory)
            goto oom; /* not the record's fault: it is not stored at all */
        if (json_is_object(m)) {
            t.meta = rec->metadata_json;
            t.mlen = strlen(t.meta);
        } else {
            ctx_log(CTX_LOG_WARN, "ingest", "RECORD %s/%s: metadata is not a JSON object (%s);"
                    " stored without it", rec->stream, t.id, m ? "wrong type" : jerr.text);
        }
        json_decref(m);
    }
    {
        const void *parts[4] = {t.title ? t.title : "", t.url ? t.url : "",
                                t.body ? t.body : "", t.meta ? t.meta : ""};
        size_t lens[4] = {t.tlen, t.ulen, t.blen, t.mlen};
        ctx_hash_hex(parts, lens, 4, t.hash);
    }
    /* Chunked here even when the store turns out to hold the same content:
     * this side of a sync has time to spare, the store's side has none. */
    if (chunker_split(t.body ? t.body : "", t.blen, &c->chunk, &spans, &t.nspans))
        goto oom;
    t.spans = spans;
    /* So is FTS5's tokenizing of each chunk: the applier replays it. */
    if (c->tok && t.nspans) {
        int trc = CTX_OK;
        if (!(ends = ctx_malloc(t.nspans * sizeof *ends)))
            goto oom;
        for (i = 0; !trc && i < t.nspans; i++) {
            trc = pretok_run(c->tok, t.body + spans[i].off, spans[i].len, &toks);
            ends[i] = toks.len;
        }
        if (trc == CTX_ENOMEM)
            goto oom;
        /* (any other failure: FTS5 tokenizes this record itself) */
        if (!trc) {
            t.toks = toks.data ? (const unsigned char *)toks.data : (const unsigned char *)"";
            t.tok_ends = ends;
        }
    }
    prep_pack(&measured, &k, &t);
    if (!(p = ctx_malloc(k.used)))
        goto oom;
    t.bytes = k.used;
    k.base = (char *)p;
    k.used = sizeof *p;
    prep_pack(p, &k, &t);
    *out = p;
    rc = CTX_OK;
    goto out;
oom:
    rc = ctx_error_set(err, CTX_ENOMEM, "RECORD %s/%s: out of memory", rec->stream, rec->id);
out:
    for (i = 0; i < 4; i++)
        ctx_buf_free(&fix[i]);
    ctx_buf_free(&toks);
    ctx_free(ends);
    ctx_free(spans);
    return rc;
}

int ingest_apply(ingest_ctx *c, const ingest_prep *p, ctx_error *err)
{
    store_chunk *chunks = NULL;
    store_doc_info info;
    store_doc d;
    size_t nchunks = p->nspans, i;
    int64_t acl_id, doc_id;
    int rc;

    c->stats->repaired_utf8 += p->repaired;
    if ((rc = store_acl_intern(c->store, c->source, p->acl, &acl_id, err)))
        return rc;
    if (!p->acl || !p->acl->n_allow)
        ctx_log(CTX_LOG_DEBUG, "ingest", "RECORD %s/%s has no allow list: nobody can read it",
                p->stream, p->id);
    if ((rc = store_doc_lookup(c->store, c->source, p->stream, p->id, &info, err)) ||
        (rc = count_acl_change(c, &info, p->acl, acl_id, err)))
        return rc;
    if (info.id && !info.deleted && !strcmp(info.hash, p->hash)) {
        c->stats->unchanged++;
        /* (counted above: a full read finds permission changes too) */
        if (info.acl_id != acl_id && (rc = store_doc_set_acl(c->store, info.id, acl_id, err)))
            return rc;
        return store_doc_touch(c->store, info.id, c->epoch, err);
    }

    d.source = c->source;
    d.stream = p->stream;
    d.ext_id = p->id;
    d.title = p->title;
    d.url = p->url;
    d.body = p->body;
    d.body_len = p->blen;
    d.metadata = p->meta;
    d.updated_at_ms = p->updated_at_ms;
    d.acl_id = acl_id;
    d.hash = p->hash;
    d.epoch = c->epoch;
    doc_id = info.id;
    if ((rc = store_doc_write(c->store, &d, &doc_id, err)))
        return rc;

    if (!(chunks = ctx_calloc(nchunks ? nchunks : 1, sizeof *chunks)))
        return ctx_error_set(err, CTX_ENOMEM, "RECORD %s/%s: out of memory", p->stream,
                             p->id);
    for (i = 0; i < nchunks; i++) {
        chunks[i].text = p->body + p->spans[i].off;
        chunks[i].len = p->spans[i].len;
        chunks[i].ntokens = p->spans[i].ntokens;
        if (p->toks) {
            size_t from = i ? p->tok_ends[i - 1] : 0;
            chunks[i].toks = p->toks + from;
            chunks[i].toks_len = p->tok_ends[i] - from;
        }
    }
    if (!nchunks) {
        /* An empty body still leaves the title to be found. */
        chunks[0].text = "";
        nchunks = 1;
    }
    /* A document new to the store (or a tombstone, which has no chunks) has
     * nothing to drop first. */
    rc = info.id && !info.deleted
             ? store_chunks_replace(c->store, doc_id, p->title, acl_id, chunks, nchunks, err)
             : store_chunks_add(c->store, doc_id, p->title, acl_id, chunks, nchunks, err);
    ctx_free(chunks);
    if (rc)
        return rc;
    c->stats->records++;
    c->stats->chunks += (int64_t)nchunks;
    c->stats->bytes += (int64_t)p->blen;
    return CTX_OK;
}

int ingest_record(ingest_ctx *c, const ctx_record *rec, ctx_error *err)
{
    ingest_prep *p;
    int rc;

    if ((rc = ingest_prepare(c, rec, &p, err)))
        return rc;
    rc = ingest_apply(c, p, err);
    ctx_free(p);
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
