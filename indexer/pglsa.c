/*
 * pglsa.c - the lsa model of cluster mode: trained once on PostgreSQL's
 * documents, kept in ctxgate.lsa_models, fetched by whoever needs its
 * file (see pglsa.h).
 */
#include "pglsa.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/util.h"
#include "pgstore_int.h"

#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

/* fetch - the model's file from lsa_models into data_dir, atomically. */
static int fetch(pgstore *pg, const char *data_dir, const char *hash, ctx_error *err)
{
    const char *v[1] = {hash};
    char path[4096], tmp[4200];
    PGresult *r;
    int fd, rc = CTX_OK;
    size_t len, done = 0;
    const char *data;

    lsa_model_path(data_dir, hash, path, sizeof path);
    if (access(path, F_OK) == 0)
        return CTX_OK;
    r = PQexecParams(pg->db, "SELECT file FROM ctxgate.lsa_models WHERE hash = $1", 1, NULL, v,
                     NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return pg__fail(pg, r, err, "fetch the lsa model");
    if (PQntuples(r) != 1) {
        PQclear(r);
        return ctx_error_set(err, CTX_ENOTFOUND, "cluster: lsa model %s is no longer in"
                             " PostgreSQL; run the embed job again", hash);
    }
    data = PQgetvalue(r, 0, 0);
    len = (size_t)PQgetlength(r, 0, 0);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (ctx_mkdir_p(data_dir) < 0 || (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
        PQclear(r);
        return ctx_error_set(err, CTX_EIO, "cluster: cannot write %s: %s", tmp,
                             strerror(errno));
    }
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (done < len || fsync(fd) || close(fd) || rename(tmp, path)) {
        rc = ctx_error_set(err, CTX_EIO, "cluster: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    PQclear(r);
    if (!rc)
        ctx_log(CTX_LOG_INFO, "cluster", "lsa model %s fetched from PostgreSQL (%zu bytes)",
                hash, len);
    return rc;
}

int pglsa_current(pgstore *pg, const char *data_dir, int dim, char hash[LSA_HASH_LEN + 1],
                  int64_t *docs, int64_t *trained_at, ctx_error *err)
{
    pg_num a;
    PGresult *r = pg__q(pg, err, "read the lsa model",
                        "SELECT hash, docs, trained_at FROM ctxgate.lsa_models WHERE dim = $1"
                        " ORDER BY trained_at DESC, hash LIMIT 1", 1, pg__i64(&a, dim));

    hash[0] = '\0';
    if (!r)
        return err->code;
    if (PQntuples(r)) {
        snprintf(hash, LSA_HASH_LEN + 1, "%s", PQgetvalue(r, 0, 0));
        if (docs)
            *docs = pg__get64(r, 0, 1);
        if (trained_at)
            *trained_at = pg__get64(r, 0, 2);
    }
    PQclear(r);
    return hash[0] ? fetch(pg, data_dir, hash, err) : CTX_OK;
}

/* The training's texts: every live document, chunked as a replica chunks it. */
typedef struct corpus {
    pgstore *pg;
    const chunker_opts *co;
    char after[24];           /* the last document read */
    int64_t seq, docs;
} corpus;

static int next_texts(void *arg, int64_t after, size_t max, store_embed_batch *out,
                      ctx_error *err)
{
    corpus *c = arg;
    char lim[16];
    PGresult *r;
    size_t cap = 0;
    int n;

    (void)after;
    out->items = NULL;
    out->n = 0;
    snprintf(lim, sizeof lim, "%zu", max / 8 ? max / 8 : 1);
    if (!(r = pg__q(c->pg, err, "read documents to train on", "SELECT id, title, body FROM"
                    " ctxgate.documents WHERE NOT deleted AND id > $1 ORDER BY id LIMIT $2", 2,
                    c->after, lim)))
        return err->code;
    n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        const char *title = PQgetisnull(r, i, 1) ? "" : PQgetvalue(r, i, 1);
        const char *body = PQgetvalue(r, i, 2);
        chunk_span *spans = NULL, empty = {0, 0, 0};
        size_t ns = 0;
        if (chunker_split(body, strlen(body), c->co, &spans, &ns))
            goto oom;
        for (size_t k = 0; k < (ns ? ns : 1); k++) {
            const chunk_span *sp = ns ? &spans[k] : &empty;
            ctx_buf t = CTX_BUF_INIT;
            if (out->n == cap) {
                store_embed_item *g = ctx_realloc(out->items, (cap ? 2 * cap : 64) * sizeof *g);
                if (!g) {
                    ctx_free(spans);
                    goto oom;
                }
                out->items = g;
                cap = cap ? 2 * cap : 64;
            }
            if (ctx_buf_printf(&t, "%s\n", title) || ctx_buf_append(&t, body + sp->off, sp->len)) {
                ctx_buf_free(&t);
                ctx_free(spans);
                goto oom;
            }
            out->items[out->n].chunk_id = ++c->seq;
            out->items[out->n].len = t.len;
            out->items[out->n++].text = ctx_buf_steal(&t);
        }
        ctx_free(spans);
        c->docs++;
    }
    if (n)
        snprintf(c->after, sizeof c->after, "%s", PQgetvalue(r, n - 1, 0));
    PQclear(r);
    return CTX_OK;
oom:
    PQclear(r);
    store_embed_batch_free(out);
    return ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
}

/* store - the new model's file into lsa_models; older ones of dim go. */
static int store_model(pgstore *pg, const char *data_dir, const char *hash, int dim,
                       int64_t docs, ctx_error *err)
{
    char path[4096], *file = NULL, d[24], n[24];
    size_t len = 0;
    const char *v[4];
    int lens[4] = {0, 0, 0, 0}, fmts[4] = {0, 0, 0, 1}, rc;
    PGresult *r;

    lsa_model_path(data_dir, hash, path, sizeof path);
    if (ctx_read_file(path, &file, &len))
        return ctx_error_set(err, CTX_EIO, "cluster: cannot read %s: %s", path,
                             strerror(errno));
    snprintf(d, sizeof d, "%d", dim);
    snprintf(n, sizeof n, "%lld", (long long)docs);
    v[0] = hash;
    v[1] = d;
    v[2] = n;
    v[3] = file;
    lens[3] = (int)len;
    r = PQexecParams(pg->db, "WITH n AS (INSERT INTO ctxgate.lsa_models (hash, dim, docs,"
                     " trained_at, file) VALUES ($1, $2, $3, " NOW_MS ", $4) ON CONFLICT (hash)"
                     " DO UPDATE SET trained_at = EXCLUDED.trained_at, docs = EXCLUDED.docs"
                     " RETURNING hash) DELETE FROM ctxgate.lsa_models WHERE dim = $2::int"
                     " AND hash NOT IN (SELECT hash FROM n)", 4, NULL, v, lens, fmts, 0);
    ctx_free(file);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return pg__fail(pg, r, err, "store the lsa model");
    PQclear(r);
    rc = CTX_OK;
    return rc;
}

int pglsa_ensure(pgstore *pg, const char *data_dir, const lsa_train_opts *opt,
                 const chunker_opts *co, double share, volatile sig_atomic_t *cancel,
                 char hash[LSA_HASH_LEN + 1], int *trained, ctx_error *err)
{
    int64_t docs = 0, at = 0, changed;
    lsa_train_stats ts;
    corpus c;
    PGresult *r;
    pg_num a;
    int rc;

    *trained = 0;
    if ((rc = pglsa_current(pg, data_dir, opt->dim, hash, &docs, &at, err)))
        return rc;
    if (hash[0]) {
        if (!(r = pg__q(pg, err, "count changed documents", "SELECT count(*) FROM"
                        " ctxgate.documents WHERE changed_at > to_timestamp($1::bigint"
                        " / 1000.0)", 1, pg__i64(&a, at))))
            return err->code;
        changed = pg__get64(r, 0, 0);
        PQclear(r);
        if ((double)changed <= share * (double)docs)
            return CTX_OK;
        ctx_log(CTX_LOG_INFO, "cluster", "lsa model %s: %lld documents changed since it was"
                " trained on %lld; training a new one", hash, (long long)changed,
                (long long)docs);
    }
    if (ctx_mkdir_p(data_dir) < 0)
        return ctx_error_set(err, CTX_EIO, "data_dir %s: cannot create it: %s", data_dir,
                             strerror(errno));
    memset(&c, 0, sizeof c);
    c.pg = pg;
    c.co = co;
    snprintf(c.after, sizeof c.after, "0");
    if ((rc = lsa_train_texts(next_texts, &c, data_dir, opt, cancel, hash, &ts, err)))
        return rc;
    ctx_log(CTX_LOG_INFO, "cluster", "lsa model %s trained on %lld documents (%lld chunks,"
            " %lld terms) in %.2fs", hash, (long long)c.docs, (long long)ts.chunks,
            (long long)ts.terms, ts.seconds);
    if ((rc = store_model(pg, data_dir, hash, opt->dim, c.docs, err)))
        return rc;
    *trained = 1;
    return CTX_OK;
}
