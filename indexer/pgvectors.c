/*
 * pgvectors.c - the cluster's embed job: vectors computed once, in
 * PostgreSQL, for the replicas to follow (see pgvectors.h, docs/cluster.md).
 */
#include "pgvectors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "pgstore_int.h"

#define DOCS_PER_BATCH 64

static const char hexd[] = "0123456789abcdef";

void pgvec_chunking(const chunker_opts *co, char *buf, size_t len)
{
    snprintf(buf, len, "%d/%d", co->max_tokens, co->overlap_tokens);
}

void pgvec_encode(const float *v, int dim, char *hex)
{
    for (int i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int b = 0; b < 4; b++, u >>= 8) {
            *hex++ = hexd[(u >> 4) & 15];
            *hex++ = hexd[u & 15];
        }
    }
    *hex = '\0';
}

static int nibble(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int pgvec_decode(const char *text, int dim, float *v)
{
    if (!text || text[0] != '\\' || text[1] != 'x' || strlen(text + 2) != (size_t)dim * 8)
        return -1;
    text += 2;
    for (int i = 0; i < dim; i++) {
        uint32_t u = 0;
        for (int b = 0; b < 4; b++) {
            int hi = nibble(text[8 * i + 2 * b]), lo = nibble(text[8 * i + 2 * b + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            u |= (uint32_t)(hi << 4 | lo) << (8 * b);
        }
        memcpy(&v[i], &u, 4);
    }
    return 0;
}

static void hash_hex(const unsigned char h[16], char out[33])
{
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hexd[h[i] >> 4];
        out[2 * i + 1] = hexd[h[i] & 15];
    }
    out[32] = '\0';
}

/* One chunk of a batch: its text as embedded, and where its vector is. */
typedef struct vchunk {
    int64_t doc;
    char *text;               /* "title\ntext" (new) */
    size_t len;
    char hash[33];
    size_t vec;               /* index into the batch's distinct texts */
} vchunk;

typedef struct vtext {
    char hash[33];
    size_t first;             /* the chunk whose text it is */
    int have;                 /* its vector is known (in PostgreSQL, or embedded now) */
} vtext;

typedef struct vbatch {
    vchunk *c;
    size_t n, cap;
    vtext *t;
    size_t nt;
    int64_t *docs;
    char (*dochash)[65];
    size_t ndocs;
    float *vecs;              /* nt * dim */
} vbatch;

static void batch_free(vbatch *b)
{
    for (size_t i = 0; i < b->n; i++)
        ctx_free(b->c[i].text);
    ctx_free(b->c);
    ctx_free(b->t);
    ctx_free(b->docs);
    ctx_free(b->dochash);
    ctx_free(b->vecs);
    memset(b, 0, sizeof *b);
}

static int add_chunk(vbatch *b, int64_t doc, const char *title, const char *text, size_t len)
{
    ctx_buf t = CTX_BUF_INIT;
    unsigned char h[16];
    vchunk *c;

    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        vchunk *g = ctx_realloc(b->c, cap * sizeof *g);
        if (!g)
            return CTX_ENOMEM;
        b->c = g;
        b->cap = cap;
    }
    /* as the replica's queue reads a chunk back: title, newline, text */
    if (ctx_buf_printf(&t, "%s\n", title ? title : "") || ctx_buf_append(&t, text, len) ||
        ctx_buf_append(&t, "", 0)) {
        ctx_buf_free(&t);
        return CTX_ENOMEM;
    }
    c = &b->c[b->n++];
    memset(c, 0, sizeof *c);
    c->doc = doc;
    c->len = t.len;
    c->text = ctx_buf_steal(&t);
    if (!c->text) {
        b->n--;
        return CTX_ENOMEM;
    }
    embed_text_hash(c->text, c->len, h);
    hash_hex(h, c->hash);
    return CTX_OK;
}

/* chunk_doc - the document's chunks as a replica's ingest makes them. */
static int chunk_doc(vbatch *b, int64_t doc, const char *title, const char *body,
                     const chunker_opts *co)
{
    chunk_span *spans = NULL;
    size_t n = 0, blen = body ? strlen(body) : 0;
    int rc = CTX_OK;

    if (chunker_split(body ? body : "", blen, co, &spans, &n))
        return CTX_ENOMEM;
    if (!n) /* an empty body still has one chunk: the title */
        rc = add_chunk(b, doc, title, "", 0);
    for (size_t i = 0; !rc && i < n; i++)
        rc = add_chunk(b, doc, title, body + spans[i].off, spans[i].len);
    ctx_free(spans);
    return rc;
}

static __thread const vchunk *sort_base; /* qsort's comparator has no argument */

static int by_hash(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    int c = strcmp(sort_base[*x].hash, sort_base[*y].hash);

    return c ? c : (*x > *y) - (*x < *y);
}

/* index_texts - the distinct texts of the batch, each chunk pointing at its
 * own (the first chunk of a text is its representative). */
static int index_texts(vbatch *b)
{
    size_t *ord = ctx_malloc((b->n ? b->n : 1) * sizeof *ord);

    if (!ord || !(b->t = ctx_calloc(b->n ? b->n : 1, sizeof *b->t))) {
        ctx_free(ord);
        return CTX_ENOMEM;
    }
    for (size_t i = 0; i < b->n; i++)
        ord[i] = i;
    sort_base = b->c;
    qsort(ord, b->n, sizeof *ord, by_hash);
    for (size_t i = 0; i < b->n; i++) {
        vchunk *c = &b->c[ord[i]];
        if (!i || strcmp(c->hash, b->t[b->nt - 1].hash)) {
            memcpy(b->t[b->nt].hash, c->hash, 33);
            b->t[b->nt].first = ord[i];
            b->nt++;
        }
        c->vec = b->nt - 1;
    }
    ctx_free(ord);
    return CTX_OK;
}

/* hash_array - the texts' hashes as a text[] literal (hex: nothing to quote). */
static char *hash_array(const vbatch *b)
{
    ctx_buf a = CTX_BUF_INIT;
    int rc = ctx_buf_puts(&a, "{");

    for (size_t i = 0; !rc && i < b->nt; i++)
        rc = ctx_buf_printf(&a, "%s%s", i ? "," : "", b->t[i].hash);
    if (rc || ctx_buf_puts(&a, "}")) {
        ctx_buf_free(&a);
        return NULL;
    }
    return ctx_buf_steal(&a);
}

/* known_vectors - the batch's texts some document already has a vector of. */
static int known_vectors(pgstore *pg, const char *model, vbatch *b, int dim, int64_t *reused,
                         ctx_error *err)
{
    char *arr = hash_array(b);
    PGresult *r;

    if (!arr)
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    r = pg__q(pg, err, "read known vectors",
              "SELECT DISTINCT ON (v.text_hash) encode(v.text_hash, 'hex'), v.vec"
              " FROM ctxgate.chunk_vectors v WHERE v.model = $1 AND v.text_hash IN"
              " (SELECT decode(x, 'hex') FROM unnest($2::text[]) x)", 2, model, arr);
    ctx_free(arr);
    if (!r)
        return err->code;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *h = PQgetvalue(r, i, 0);
        for (size_t j = 0; j < b->nt; j++)
            if (!b->t[j].have && !strcmp(b->t[j].hash, h) &&
                !pgvec_decode(PQgetvalue(r, i, 1), dim, b->vecs + j * (size_t)dim)) {
                b->t[j].have = 1;
                (*reused)++;
            }
    }
    PQclear(r);
    return CTX_OK;
}

/* embed_missing - one embedder call for the texts without a vector. */
static int embed_missing(embed_provider *p, vbatch *b, int64_t *embedded, ctx_error *err)
{
    size_t dim = (size_t)embed_dim(p), n = 0;
    const char **texts = ctx_malloc((b->nt ? b->nt : 1) * sizeof *texts);
    size_t *lens = ctx_malloc((b->nt ? b->nt : 1) * sizeof *lens);
    size_t *at = ctx_malloc((b->nt ? b->nt : 1) * sizeof *at);
    float *out = NULL;
    int rc = CTX_OK;

    if (!texts || !lens || !at) {
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < b->nt; j++)
        if (!b->t[j].have) {
            texts[n] = b->c[b->t[j].first].text;
            lens[n] = b->c[b->t[j].first].len;
            at[n++] = j;
        }
    if (!n)
        goto done;
    if (!(out = ctx_malloc(n * dim * sizeof *out))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = embed_texts(p, texts, lens, n, out, err)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        memcpy(b->vecs + at[i] * dim, out + i * dim, dim * sizeof *out);
        b->t[at[i]].have = 1;
    }
    *embedded += (int64_t)n;
done:
    ctx_free(texts);
    ctx_free(lens);
    ctx_free(at);
    ctx_free(out);
    return rc;
}

/* write_batch - every document's rows, stale ones deleted, and their marks, in one
 * transaction. Arrays: one row per distinct (document, text). */
static int write_batch(pgstore *pg, const char *model, const char *chunking, vbatch *b,
                       int dim, ctx_error *err)
{
    ctx_buf d = CTX_BUF_INIT, h = CTX_BUF_INIT, v = CTX_BUF_INIT, ds = CTX_BUF_INIT,
            dh = CTX_BUF_INIT;
    char *hex = ctx_malloc((size_t)dim * 8 + 1);
    int rc = hex ? CTX_OK : CTX_ENOMEM, first = 1;

    rc = rc || ctx_buf_puts(&d, "{") || ctx_buf_puts(&h, "{") || ctx_buf_puts(&v, "{") ||
         ctx_buf_puts(&ds, "{") || ctx_buf_puts(&dh, "{");
    for (size_t i = 0; !rc && i < b->n; i++) {
        int dup = 0;
        for (size_t k = i; k-- > 0 && b->c[k].doc == b->c[i].doc;)
            if (b->c[k].vec == b->c[i].vec) {
                dup = 1;
                break;
            }
        if (dup)
            continue;
        pgvec_encode(b->vecs + b->c[i].vec * (size_t)dim, dim, hex);
        rc = ctx_buf_printf(&d, "%s%lld", first ? "" : ",", (long long)b->c[i].doc) ||
             ctx_buf_printf(&h, "%s%s", first ? "" : ",", b->c[i].hash) ||
             ctx_buf_printf(&v, "%s%s", first ? "" : ",", hex);
        first = 0;
    }
    for (size_t i = 0; !rc && i < b->ndocs; i++)
        rc = ctx_buf_printf(&ds, "%s%lld", i ? "," : "", (long long)b->docs[i]) ||
             ctx_buf_printf(&dh, "%s%s", i ? "," : "", b->dochash[i]);
    rc = rc || ctx_buf_puts(&d, "}") || ctx_buf_puts(&h, "}") || ctx_buf_puts(&v, "}") ||
         ctx_buf_puts(&ds, "}") || ctx_buf_puts(&dh, "}");
    if (rc) {
        rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = pg__ok(pg, err, "begin", "BEGIN", 0)))
        goto done;
    /* A document's rows of texts it no longer has go; then its new ones. */
    if ((rc = pg__ok(pg, err, "delete replaced vectors",
                     "DELETE FROM ctxgate.chunk_vectors v WHERE v.model = $1"
                     " AND v.doc = ANY($2::bigint[]) AND NOT EXISTS (SELECT 1 FROM"
                     " unnest($3::bigint[], $4::text[]) k(doc, h)"
                     " WHERE k.doc = v.doc AND decode(k.h, 'hex') = v.text_hash)", 4, model,
                     ds.data, d.data, h.data)) ||
        (rc = pg__ok(pg, err, "write vectors",
                     "INSERT INTO ctxgate.chunk_vectors (doc, model, text_hash, vec)"
                     " SELECT k.doc, $1, decode(k.h, 'hex'), decode(k.v, 'hex')"
                     " FROM unnest($2::bigint[], $3::text[], $4::text[]) k(doc, h, v)"
                     " ON CONFLICT DO NOTHING", 4, model, d.data, h.data, v.data)) ||
        (rc = pg__ok(pg, err, "record the embedded documents",
                     "INSERT INTO ctxgate.doc_embeds (model, doc, hash, chunking)"
                     " SELECT $1, k.doc, k.h, $4 FROM unnest($2::bigint[], $3::text[]) k(doc, h)"
                     " ON CONFLICT (model, doc) DO UPDATE SET hash = EXCLUDED.hash,"
                     " chunking = EXCLUDED.chunking", 4, model, ds.data, dh.data, chunking)) ||
        (rc = pg__ok(pg, err, "commit vectors", "COMMIT", 0)))
        PQclear(PQexec(pg->db, "ROLLBACK"));
done:
    ctx_free(hex);
    ctx_buf_free(&d);
    ctx_buf_free(&h);
    ctx_buf_free(&v);
    ctx_buf_free(&ds);
    ctx_buf_free(&dh);
    return rc;
}

/* model_row - the model in ctxgate.embed_models, its dimension checked. */
static int model_row(pgstore *pg, const char *model, int dim, ctx_error *err)
{
    pg_num a;
    PGresult *r = pg__q(pg, err, "record the model",
                        "WITH n AS (INSERT INTO ctxgate.embed_models (name, dim) VALUES ($1, $2)"
                        " ON CONFLICT (name) DO NOTHING RETURNING dim)"
                        " SELECT dim FROM n UNION ALL SELECT dim FROM ctxgate.embed_models"
                        " WHERE name = $1", 2, model, pg__i64(&a, dim));
    int have;

    if (!r)
        return err->code;
    have = PQntuples(r) ? (int)pg__get64(r, 0, 0) : dim;
    PQclear(r);
    if (have != dim)
        return ctx_error_set(err, CTX_ECONFIG, "embeddings: model \"%s\" is recorded in the"
                             " cluster with %d dimensions, the config says %d; fix"
                             " embeddings.dim or name the model differently", model, have, dim);
    return CTX_OK;
}

#define TODO_SQL                                                                         \
    "SELECT d.id, d.hash, d.title, d.body FROM ctxgate.documents d"                      \
    " LEFT JOIN ctxgate.doc_embeds e ON e.model = $1 AND e.doc = d.id"                   \
    " WHERE NOT d.deleted AND d.id > $2"                                                 \
    " AND (e.doc IS NULL OR e.hash <> d.hash OR e.chunking <> $3) ORDER BY d.id LIMIT $4"

/* sliced - sql (a statement deleting at most SLICE rows, $1 = arg) until it
 * deletes none, each slice its own transaction: a replica reads a decoded
 * transaction whole, so none is made of a million rows. *n adds them up. */
#define SLICE "10000"
static int sliced(pgstore *pg, const char *what, const char *sql, const char *arg, int64_t *n,
                  ctx_error *err)
{
    int64_t got;

    do {
        PGresult *r = pg__q(pg, err, what, sql, arg ? 1 : 0, arg);
        if (!r)
            return err->code;
        got = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
        *n += got;
    } while (got > 0);
    return CTX_OK;
}

/* retire_others - every live document has this model's vectors: the others go. */
static int retire_others(pgstore *pg, const char *model, const char *chunking,
                         int64_t *retired, ctx_error *err)
{
    PGresult *r = pg__q(pg, err, "look for other models", "SELECT count(*) FROM"
                        " ctxgate.embed_models WHERE name <> $1", 1, model);
    int64_t others, docs = 0;
    int rc;

    if (!r)
        return err->code;
    others = pg__get64(r, 0, 0);
    PQclear(r);
    if (!others)
        return CTX_OK;
    if (!(r = pg__q(pg, err, "look for documents left", TODO_SQL, 4, model, "0", chunking,
                    "1")))
        return err->code;
    others = PQntuples(r);
    PQclear(r);
    if (others)
        return CTX_OK; /* the switch is not over: the old vectors still serve */
    if ((rc = sliced(pg, "retire other models",
                     "DELETE FROM ctxgate.chunk_vectors WHERE ctid IN (SELECT ctid FROM"
                     " ctxgate.chunk_vectors WHERE model <> $1 LIMIT " SLICE ")", model,
                     retired, err)) ||
        (rc = sliced(pg, "retire other models",
                     "DELETE FROM ctxgate.doc_embeds WHERE ctid IN (SELECT ctid FROM"
                     " ctxgate.doc_embeds WHERE model <> $1 LIMIT " SLICE ")", model, &docs,
                     err)))
        return rc;
    return pg__ok(pg, err, "retire other models", "DELETE FROM ctxgate.embed_models"
                  " WHERE name <> $1", 1, model);
}

int pgvec_embed_run(pgstore *pg, embed_provider *p, const chunker_opts *co,
                    volatile sig_atomic_t *cancel, pgvec_stats *s, ctx_error *err)
{
    const char *model = embed_model_name(p);
    int dim = embed_dim(p), rc;
    char chunking[32], lim[16], after[24] = "0";
    pgvec_stats local;
    PGresult *r;

    if (!s)
        s = &local;
    memset(s, 0, sizeof *s);
    pgvec_chunking(co, chunking, sizeof chunking);
    snprintf(lim, sizeof lim, "%d", DOCS_PER_BATCH);
    if ((rc = model_row(pg, model, dim, err)))
        return rc;
    /* Tombstoned documents: their marks and their vectors go together. */
    if ((rc = sliced(pg, "delete the vectors of deleted documents",
                     "WITH gone AS (DELETE FROM ctxgate.doc_embeds e WHERE (e.model, e.doc) IN"
                     " (SELECT g.model, g.doc FROM ctxgate.doc_embeds g JOIN ctxgate.documents d"
                     " ON d.id = g.doc WHERE d.deleted LIMIT 1000) RETURNING e.doc, e.model)"
                     " DELETE FROM ctxgate.chunk_vectors c USING gone"
                     " WHERE c.doc = gone.doc AND c.model = gone.model", NULL, &s->purged,
                     err)))
        return rc;
    for (;;) {
        vbatch b;
        int n;
        if (cancel && *cancel)
            return ctx_error_set(err, CTX_ECANCELED, "embed: canceled");
        if (!(r = pg__q(pg, err, "read documents to embed", TODO_SQL, 4, model, after,
                        chunking, lim)))
            return err->code;
        if (!(n = PQntuples(r))) {
            PQclear(r);
            break;
        }
        memset(&b, 0, sizeof b);
        b.docs = ctx_calloc((size_t)n, sizeof *b.docs);
        b.dochash = ctx_calloc((size_t)n, sizeof *b.dochash);
        rc = b.docs && b.dochash ? CTX_OK : CTX_ENOMEM;
        for (int i = 0; !rc && i < n; i++) {
            b.docs[i] = pg__get64(r, i, 0);
            snprintf(b.dochash[i], sizeof b.dochash[i], "%s", PQgetvalue(r, i, 1));
            b.ndocs++;
            rc = chunk_doc(&b, b.docs[i], PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
                           PQgetvalue(r, i, 3), co);
        }
        snprintf(after, sizeof after, "%s", PQgetvalue(r, n - 1, 0));
        PQclear(r);
        if (!rc && (rc = index_texts(&b)) == CTX_OK &&
            !(b.vecs = ctx_malloc((b.nt ? b.nt : 1) * (size_t)dim * sizeof *b.vecs)))
            rc = CTX_ENOMEM;
        if (rc == CTX_ENOMEM)
            rc = ctx_error_set(err, CTX_ENOMEM, "out of memory");
        if (!rc)
            rc = known_vectors(pg, model, &b, dim, &s->reused, err);
        if (!rc)
            rc = embed_missing(p, &b, &s->embedded, err);
        if (!rc)
            rc = write_batch(pg, model, chunking, &b, dim, err);
        if (!rc) {
            s->docs += (int64_t)b.ndocs;
            s->chunks += (int64_t)b.n;
        }
        batch_free(&b);
        if (rc)
            return rc;
    }
    return retire_others(pg, model, chunking, &s->retired, err);
}
