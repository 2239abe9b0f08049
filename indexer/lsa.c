/*
 * lsa.c - training, saving, loading and applying the "lsa" embedder's
 * models (see lsa.h): FTS5's tokenizer, a TF-IDF chunk-term matrix, and a
 * randomized truncated SVD with LAPACK.
 */
#include "lsa.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/util.h"
#include "stmt.h"

/* LAPACK and BLAS (Fortran calling convention), linked with FAISS. */
extern void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau,
                    double *work, const int *lwork, int *info);
extern void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda,
                    const double *tau, double *work, const int *lwork, int *info);
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info);
extern void dgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,
                   const double *alpha, const double *a, const int *lda, const double *b,
                   const int *ldb, const double *beta, double *c, const int *ldc);

#define LSA_MAGIC "CTXLSA01"
#define LSA_HEADER 40          /* magic, version, dim, terms, 0, chunks, max chunk id */
#define LSA_TRAILER 72         /* SHA-256 in hex of all before, then the file's length */
#define LSA_OVERSAMPLE 16      /* extra columns of the range finder */
#define TEXTS_PER_READ 512

/* ---- FTS5's tokenizer, from a private in-memory connection ---- */

typedef struct lsa_tok {
    sqlite3 *db;
    fts5_tokenizer mod;
    Fts5Tokenizer *tok;
} lsa_tok;

static void tok_close(lsa_tok *t)
{
    if (t->tok)
        t->mod.xDelete(t->tok);
    sqlite3_close(t->db);
    memset(t, 0, sizeof *t);
}

/* The index's own rule: tokenize = 'porter unicode61 remove_diacritics 2'. */
static int tok_open(lsa_tok *t, ctx_error *err)
{
    static const char *args[] = {"unicode61", "remove_diacritics", "2"};
    fts5_api *api = NULL;
    void *ud = NULL;

    memset(t, 0, sizeof *t);
    if (sqlite3_open_v2(":memory:", &t->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)) {
        tok_close(t);
        return ctx_error_set(err, CTX_ESTORE, "lsa: cannot open SQLite for FTS5's tokenizer");
    }
    if (!(api = stmt_fts5_api(t->db)) || api->xFindTokenizer(api, "porter", &ud, &t->mod) ||
        t->mod.xCreate(ud, args, 3, &t->tok)) {
        tok_close(t);
        return ctx_error_set(err, CTX_ESTORE, "lsa: SQLite has no FTS5 porter tokenizer");
    }
    return CTX_OK;
}

/* ---- a string -> id table (open addressing), for training and lookups ---- */

typedef struct term_tab {
    ctx_buf chars;     /* the terms, back to back */
    uint32_t *off, *len, *df, *last;  /* per id; last = last chunk counted + 1 */
    uint32_t n, cap;   /* ids used, allocated */
    uint32_t *slot;    /* id + 1, or 0 */
    uint32_t mask;
} term_tab;

static uint64_t term_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static void tab_free(term_tab *t)
{
    ctx_buf_free(&t->chars);
    ctx_free(t->off);
    ctx_free(t->len);
    ctx_free(t->df);
    ctx_free(t->last);
    ctx_free(t->slot);
    memset(t, 0, sizeof *t);
}

static int tab_rehash(term_tab *t, uint32_t nslots)
{
    uint32_t *slot = ctx_calloc(nslots, sizeof *slot);
    if (!slot)
        return CTX_ENOMEM;
    for (uint32_t id = 0; id < t->n; id++) {
        uint64_t h = term_hash(t->chars.data + t->off[id], t->len[id]);
        uint32_t i = (uint32_t)h & (nslots - 1);
        while (slot[i])
            i = (i + 1) & (nslots - 1);
        slot[i] = id + 1;
    }
    ctx_free(t->slot);
    t->slot = slot;
    t->mask = nslots - 1;
    return CTX_OK;
}

/* tab_find - the id of s, or UINT32_MAX. */
static uint32_t tab_find(const term_tab *t, const char *s, size_t n)
{
    uint32_t i;
    if (!t->slot)
        return UINT32_MAX;
    i = (uint32_t)term_hash(s, n) & t->mask;
    for (; t->slot[i]; i = (i + 1) & t->mask) {
        uint32_t id = t->slot[i] - 1;
        if (t->len[id] == n && !memcmp(t->chars.data + t->off[id], s, n))
            return id;
    }
    return UINT32_MAX;
}

/* tab_add - the id of s, added when new (with df and last 0). */
static int tab_add(term_tab *t, const char *s, size_t n, uint32_t *id)
{
    uint32_t i;
    if ((*id = tab_find(t, s, n)) != UINT32_MAX)
        return CTX_OK;
    if (n > 1024 || t->chars.len + n > UINT32_MAX || t->n == UINT32_MAX - 1)
        return CTX_ETOOBIG;
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 4096;
        uint32_t *a = ctx_realloc(t->off, cap * sizeof *a), *b, *c, *d;
        if (!a)
            return CTX_ENOMEM;
        t->off = a;
        if (!(b = ctx_realloc(t->len, cap * sizeof *b)))
            return CTX_ENOMEM;
        t->len = b;
        if (!(c = ctx_realloc(t->df, cap * sizeof *c)))
            return CTX_ENOMEM;
        t->df = c;
        if (!(d = ctx_realloc(t->last, cap * sizeof *d)))
            return CTX_ENOMEM;
        t->last = d;
        t->cap = cap;
    }
    if (!t->slot || (uint64_t)(t->n + 1) * 2 > (uint64_t)t->mask + 1)
        if (tab_rehash(t, t->slot ? (t->mask + 1) * 2 : 8192))
            return CTX_ENOMEM;
    *id = t->n;
    t->off[*id] = (uint32_t)t->chars.len;
    t->len[*id] = (uint32_t)n;
    t->df[*id] = 0;
    t->last[*id] = 0;
    if (ctx_buf_append(&t->chars, s, n))
        return CTX_ENOMEM;
    t->n++;
    i = (uint32_t)term_hash(s, n) & t->mask;
    while (t->slot[i])
        i = (i + 1) & t->mask;
    t->slot[i] = *id + 1;
    return CTX_OK;
}

/* ---- the model ---- */

struct lsa_model {
    char hash[LSA_HASH_LEN + 1];
    int dim;
    int refs;
    int64_t chunks, max_chunk_id;
    term_tab terms;    /* the vocabulary, by id */
    float *idf;        /* [terms] */
    float *proj;       /* [terms][dim] */
    lsa_model *next;   /* the process's loaded models */
};

struct lsa_embedder {
    lsa_model *m;
    lsa_tok tok;
    uint32_t *ids;     /* a text's term ids */
    size_t nids, cap;
    int oom;
    double *acc;       /* [dim] */
};

static pthread_mutex_t loaded_mu = PTHREAD_MUTEX_INITIALIZER;
static lsa_model *loaded;

static void model_free(lsa_model *m)
{
    if (!m)
        return;
    tab_free(&m->terms);
    ctx_free(m->idf);
    ctx_free(m->proj);
    ctx_free(m);
}

void lsa_model_path(const char *data_dir, const char *hash, char *buf, size_t len)
{
    snprintf(buf, len, "%s/lsa-%s.model", data_dir, hash);
}

int lsa_dim(const lsa_model *m) { return m->dim; }

void lsa_trained_on(const lsa_model *m, int64_t *chunks, int64_t *max_chunk_id)
{
    *chunks = m->chunks;
    *max_chunk_id = m->max_chunk_id;
}

static int damaged(ctx_error *err, const char *path, const char *why)
{
    return ctx_error_set(err, CTX_ESTORE, "lsa: model file %s is damaged (%s); delete it and"
                         " run `ctxgate embed` to train the model again", path, why);
}

static uint32_t rd32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static int64_t rd64(const char *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* parse - a model from the file's bytes (checked by the caller's checksum). */
static int parse(const char *path, const char *b, size_t n, int dim, lsa_model *m,
                 ctx_error *err)
{
    size_t at = LSA_HEADER, body = n - LSA_TRAILER;
    uint32_t V;

    if (memcmp(b, LSA_MAGIC, 8) || rd32(b + 8) != 1)
        return damaged(err, path, "not an lsa model of this version");
    m->dim = (int)rd32(b + 12);
    V = rd32(b + 16);
    m->chunks = rd64(b + 24);
    m->max_chunk_id = rd64(b + 32);
    if (m->dim < 2 || m->dim > 8192 || !V)
        return damaged(err, path, "bad header");
    if (dim && m->dim != dim)
        return ctx_error_set(err, CTX_ECONFIG, "lsa: model file %s has %d dimensions, the store"
                             " says %d; run `ctxgate embed` to train again", path, m->dim, dim);
    for (uint32_t i = 0; i < V; i++) {
        uint32_t len, id;
        if (at + 4 > body || (len = rd32(b + at)) > body - at - 4)
            return damaged(err, path, "terms run past the end");
        if (tab_add(&m->terms, b + at + 4, len, &id))
            return ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
        if (id != i)
            return damaged(err, path, "a term is repeated");
        at += 4 + len;
    }
    if ((body - at) / sizeof(float) != (size_t)V * ((size_t)m->dim + 1) ||
        (body - at) % sizeof(float))
        return damaged(err, path, "wrong size");
    m->idf = ctx_malloc((size_t)V * sizeof *m->idf);
    m->proj = ctx_malloc((size_t)V * (size_t)m->dim * sizeof *m->proj);
    if (!m->idf || !m->proj)
        return ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
    memcpy(m->idf, b + at, (size_t)V * sizeof *m->idf);
    at += (size_t)V * sizeof *m->idf;
    memcpy(m->proj, b + at, (size_t)V * (size_t)m->dim * sizeof *m->proj);
    return CTX_OK;
}

/* read_model - read, check and parse the file of hash. *out new. */
static int read_model(const char *data_dir, const char *hash, int dim, lsa_model **out,
                      ctx_error *err)
{
    char path[4096], sum[65], lenbuf[9];
    char *b = NULL;
    size_t n = 0;
    lsa_model *m = NULL;
    int rc;

    *out = NULL;
    lsa_model_path(data_dir, hash, path, sizeof path);
    if (ctx_read_file(path, &b, &n)) {
        if (errno == ENOENT)
            return ctx_error_set(err, CTX_ENOTFOUND, "lsa: no model file %s; run `ctxgate"
                                 " embed` to train one", path);
        return ctx_error_set(err, CTX_EIO, "lsa: cannot read %s: %s", path, strerror(errno));
    }
    if (n < LSA_HEADER + LSA_TRAILER) {
        rc = damaged(err, path, "too short");
        goto done;
    }
    {
        const void *part = b;
        size_t plen = n - LSA_TRAILER;
        ctx_hash_hex(&part, &plen, 1, sum);
    }
    memcpy(lenbuf, b + n - 8, 8);
    if (memcmp(sum, b + n - LSA_TRAILER, 64) || (size_t)rd64(lenbuf) != n) {
        rc = damaged(err, path, "checksum mismatch");
        goto done;
    }
    if (strncmp(sum, hash, LSA_HASH_LEN) || strlen(hash) != LSA_HASH_LEN) {
        rc = damaged(err, path, "its content does not match its name");
        goto done;
    }
    if (!(m = ctx_calloc(1, sizeof *m))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
        goto done;
    }
    memcpy(m->hash, hash, LSA_HASH_LEN + 1);
    if ((rc = parse(path, b, n, dim, m, err)))
        goto done;
    *out = m;
    m = NULL;
done:
    model_free(m);
    free(b);
    return rc;
}

int lsa_load(const char *data_dir, const char *hash, int dim, lsa_model **out, ctx_error *err)
{
    lsa_model *m;
    int rc;

    *out = NULL;
    pthread_mutex_lock(&loaded_mu);
    for (m = loaded; m; m = m->next)
        if (!strcmp(m->hash, hash) && (!dim || m->dim == dim)) {
            m->refs++;
            *out = m;
            pthread_mutex_unlock(&loaded_mu);
            return CTX_OK;
        }
    pthread_mutex_unlock(&loaded_mu);
    if ((rc = read_model(data_dir, hash, dim, &m, err)))
        return rc;
    pthread_mutex_lock(&loaded_mu);
    m->refs = 1;
    m->next = loaded;
    loaded = m;
    pthread_mutex_unlock(&loaded_mu);
    *out = m;
    return CTX_OK;
}

void lsa_release(lsa_model *m)
{
    lsa_model **pp;
    if (!m)
        return;
    pthread_mutex_lock(&loaded_mu);
    if (--m->refs > 0) {
        pthread_mutex_unlock(&loaded_mu);
        return;
    }
    for (pp = &loaded; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    pthread_mutex_unlock(&loaded_mu);
    model_free(m);
}

/* ---- embedding a text (fold-in) ---- */

static int push_id(uint32_t **ids, size_t *n, size_t *cap, uint32_t id)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        uint32_t *p = ctx_realloc(*ids, c * sizeof *p);
        if (!p)
            return 1;
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

static int on_query_token(void *arg, int flags, const char *tok, int n, int start, int end)
{
    lsa_embedder *e = arg;
    uint32_t id;
    (void)start;
    (void)end;
    if (flags & FTS5_TOKEN_COLOCATED)
        return SQLITE_OK;
    if ((id = tab_find(&e->m->terms, tok, (size_t)n)) == UINT32_MAX)
        return SQLITE_OK;
    if (push_id(&e->ids, &e->nids, &e->cap, id)) {
        e->oom = 1;
        return SQLITE_NOMEM;
    }
    return SQLITE_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int lsa_embedder_new(lsa_model *m, lsa_embedder **out, ctx_error *err)
{
    lsa_embedder *e;
    int rc;

    *out = NULL;
    if (!(e = ctx_calloc(1, sizeof *e)) ||
        !(e->acc = ctx_malloc((size_t)m->dim * sizeof *e->acc))) {
        ctx_free(e);
        return ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
    }
    if ((rc = tok_open(&e->tok, err))) {
        ctx_free(e->acc);
        ctx_free(e);
        return rc;
    }
    pthread_mutex_lock(&loaded_mu);
    m->refs++;
    pthread_mutex_unlock(&loaded_mu);
    e->m = m;
    *out = e;
    return CTX_OK;
}

void lsa_embedder_free(lsa_embedder *e)
{
    if (!e)
        return;
    tok_close(&e->tok);
    lsa_release(e->m);
    ctx_free(e->ids);
    ctx_free(e->acc);
    ctx_free(e);
}

int lsa_embed(lsa_embedder *e, const char *text, size_t len, float *out, ctx_error *err)
{
    const lsa_model *m = e->m;
    size_t d = (size_t)m->dim;
    double ss = 0;
    int rc;

    e->nids = 0;
    e->oom = 0;
    memset(e->acc, 0, d * sizeof *e->acc);
    if (len > INT32_MAX)
        len = INT32_MAX;
    rc = e->tok.mod.xTokenize(e->tok.tok, e, FTS5_TOKENIZE_DOCUMENT, text, (int)len,
                              on_query_token);
    if (rc != SQLITE_OK)
        return ctx_error_set(err, e->oom ? CTX_ENOMEM : CTX_EINTERNAL,
                             "lsa: tokenizing a text failed (%d)", rc);
    /* Term ids in order, so the sum is taken in the same order every time. */
    qsort(e->ids, e->nids, sizeof *e->ids, cmp_u32);
    for (size_t i = 0; i < e->nids;) {
        size_t j = i;
        double w;
        const float *row = m->proj + (size_t)e->ids[i] * d;
        while (j < e->nids && e->ids[j] == e->ids[i])
            j++;
        w = (1.0 + log((double)(j - i))) * m->idf[e->ids[i]];
        for (size_t c = 0; c < d; c++)
            e->acc[c] += w * row[c];
        i = j;
    }
    for (size_t c = 0; c < d; c++)
        ss += e->acc[c] * e->acc[c];
    ss = ss > 0 ? 1.0 / sqrt(ss) : 0;
    for (size_t c = 0; c < d; c++)
        out[c] = (float)(e->acc[c] * ss);
    return CTX_OK;
}

/* ---- training ---- */

/* The chunk-term matrix, CSR: row r's entries are col/val[ptr[r] .. ptr[r + 1]). */
typedef struct csr {
    size_t rows;
    size_t *ptr;
    uint32_t *col;
    float *val;        /* tf while reading, then the normalized TF-IDF weight */
    size_t nnz, cap;
} csr;

typedef struct reader {
    term_tab tab;
    csr a;
    uint32_t *ids;
    size_t nids, cap;
    int oom;
} reader;

static int on_train_token(void *arg, int flags, const char *tok, int n, int start, int end)
{
    reader *r = arg;
    uint32_t id;
    (void)start;
    (void)end;
    if (flags & FTS5_TOKEN_COLOCATED)
        return SQLITE_OK;
    if (tab_add(&r->tab, tok, (size_t)n, &id) == CTX_ETOOBIG)
        return SQLITE_OK; /* an absurd token is no index term worth keeping */
    if (id == UINT32_MAX || push_id(&r->ids, &r->nids, &r->cap, id)) {
        r->oom = 1;
        return SQLITE_NOMEM;
    }
    return SQLITE_OK;
}

/* add_row - the chunk's term counts as the matrix's next row. */
static int add_row(reader *r)
{
    csr *a = &r->a;
    qsort(r->ids, r->nids, sizeof *r->ids, cmp_u32);
    for (size_t i = 0; i < r->nids;) {
        size_t j = i;
        while (j < r->nids && r->ids[j] == r->ids[i])
            j++;
        if (a->nnz == a->cap) {
            size_t c = a->cap ? a->cap * 2 : 65536;
            uint32_t *col = ctx_realloc(a->col, c * sizeof *col);
            float *val;
            if (!col)
                return CTX_ENOMEM;
            a->col = col;
            if (!(val = ctx_realloc(a->val, c * sizeof *val)))
                return CTX_ENOMEM;
            a->val = val;
            a->cap = c;
        }
        a->col[a->nnz] = r->ids[i];
        a->val[a->nnz++] = (float)(j - i);
        r->tab.df[r->ids[i]]++;
        i = j;
    }
    if ((a->rows & (a->rows + 1)) == 0 || !a->ptr) {
        size_t *p = ctx_realloc(a->ptr, (2 * a->rows + 2) * sizeof *p);
        if (!p)
            return CTX_ENOMEM;
        a->ptr = p;
        if (!a->rows)
            a->ptr[0] = 0;
    }
    a->ptr[++a->rows] = a->nnz;
    return CTX_OK;
}

/* read_corpus - every live chunk, tokenized, into r; *max_id the last chunk id. */
static int read_corpus(lsa_text_fn next, void *arg, reader *r, volatile sig_atomic_t *cancel,
                       int64_t *max_id, ctx_error *err)
{
    store_embed_batch b = {NULL, 0};
    lsa_tok tok;
    int64_t after = 0;
    int rc;

    if ((rc = tok_open(&tok, err)))
        return rc;
    for (;;) {
        if (cancel && *cancel) {
            rc = ctx_error_set(err, CTX_ECANCELED, "lsa: training canceled");
            break;
        }
        if ((rc = next(arg, after, TEXTS_PER_READ, &b, err)))
            break;
        if (!b.n)
            break;
        for (size_t i = 0; i < b.n && !rc; i++) {
            const store_embed_item *it = &b.items[i];
            r->nids = 0;
            if (tok.mod.xTokenize(tok.tok, r, FTS5_TOKENIZE_DOCUMENT, it->text,
                                  it->len > INT32_MAX ? INT32_MAX : (int)it->len,
                                  on_train_token) != SQLITE_OK || add_row(r))
                rc = ctx_error_set(err, r->oom ? CTX_ENOMEM : CTX_EINTERNAL,
                                   "lsa: reading chunk %lld failed", (long long)it->chunk_id);
        }
        after = b.items[b.n - 1].chunk_id;
        store_embed_batch_free(&b);
        if (rc)
            break;
    }
    store_embed_batch_free(&b);
    tok_close(&tok);
    *max_id = after;
    return rc;
}

static __thread const term_tab *sort_tab; /* qsort has no context argument */

/* More chunks first; then the term's bytes, so the choice depends on nothing else. */
static int cmp_by_df(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    const term_tab *t = sort_tab;
    if (t->df[x] != t->df[y])
        return t->df[x] > t->df[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int cmp_by_term(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    const term_tab *t = sort_tab;
    size_t lx = t->len[x], ly = t->len[y];
    int c = memcmp(t->chars.data + t->off[x], t->chars.data + t->off[y], lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/*
 * choose_vocab - the ids of terms in [min_df, max share] chunks, ordered
 * by their bytes (first-seen ids follow the chunk order; bytes do not).
 * *keep new, *nkeep its length.
 */
static int choose_vocab(const term_tab *t, size_t rows, const lsa_train_opts *o,
                        uint32_t **keep, uint32_t *nkeep)
{
    uint32_t *k = ctx_malloc(((size_t)t->n + 1) * sizeof *k), n = 0;
    double maxdf = o->max_df_share * (double)rows;

    if (!k)
        return CTX_ENOMEM;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->df[i] >= (uint32_t)o->min_df && (double)t->df[i] <= maxdf)
            k[n++] = i;
    sort_tab = t;
    qsort(k, n, sizeof *k, cmp_by_term);
    *keep = k;
    *nkeep = n;
    return CTX_OK;
}

/* Y = A^T A X, X and Y [V][k] row-major: one pass over the rows. */
static void apply_gram(const csr *a, const double *x, double *y, size_t V, size_t k, double *t)
{
    memset(y, 0, V * k * sizeof *y);
    for (size_t r = 0; r < a->rows; r++) {
        memset(t, 0, k * sizeof *t);
        for (size_t e = a->ptr[r]; e < a->ptr[r + 1]; e++) {
            const double *xr = x + (size_t)a->col[e] * k;
            double w = a->val[e];
            for (size_t j = 0; j < k; j++)
                t[j] += w * xr[j];
        }
        for (size_t e = a->ptr[r]; e < a->ptr[r + 1]; e++) {
            double *yr = y + (size_t)a->col[e] * k;
            double w = a->val[e];
            for (size_t j = 0; j < k; j++)
                yr[j] += w * t[j];
        }
    }
}

/* orth - replace x ([V][k] row-major) by an orthonormal basis of its columns. */
static int orth(double *x, size_t V, size_t k, double *colmajor, ctx_error *err)
{
    int m = (int)V, n = (int)k, lwork = -1, info = 0;
    double q, *tau = ctx_malloc(k * sizeof *tau), *work = NULL;

    if (!tau)
        return ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
    for (size_t i = 0; i < V; i++)
        for (size_t j = 0; j < k; j++)
            colmajor[i + j * V] = x[i * k + j];
    dgeqrf_(&m, &n, colmajor, &m, tau, &q, &lwork, &info);
    lwork = (int)q + 1;
    if (!info && (work = ctx_malloc((size_t)lwork * sizeof *work))) {
        dgeqrf_(&m, &n, colmajor, &m, tau, work, &lwork, &info);
        if (!info)
            dorgqr_(&m, &n, &n, colmajor, &m, tau, work, &lwork, &info);
    }
    ctx_free(tau);
    ctx_free(work);
    if (!work)
        return ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
    if (info)
        return ctx_error_set(err, CTX_EINTERNAL, "lsa: LAPACK QR failed (%d)", info);
    for (size_t i = 0; i < V; i++)
        for (size_t j = 0; j < k; j++)
            x[i * k + j] = colmajor[i + j * V];
    return CTX_OK;
}

/* A fixed-seed normal sample (xorshift64* and Box-Muller): the same every run. */
static void gaussian(double *x, size_t n)
{
    uint64_t s = 0x2545f4914f6cdd1dULL;
    for (size_t i = 0; i < n; i += 2) {
        double u, v, r;
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        u = ((double)((s * 0x2545f4914f6cdd1dULL) >> 11) + 0.5) / 9007199254740992.0;
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        v = ((double)((s * 0x2545f4914f6cdd1dULL) >> 11) + 0.5) / 9007199254740992.0;
        r = sqrt(-2.0 * log(u));
        x[i] = r * cos(2 * M_PI * v);
        if (i + 1 < n)
            x[i + 1] = r * sin(2 * M_PI * v);
    }
}

/*
 * svd - the top d right singular vectors of a ([V] columns) into p [V][d]
 * row-major: a randomized range finder (power iterations on A^T A, QR after
 * each), then the eigenvectors of the small Q^T A^T A Q.
 */
static int svd(const csr *a, size_t V, size_t d, int iters, float *p, ctx_error *err)
{
    size_t k = d + LSA_OVERSAMPLE < V ? d + LSA_OVERSAMPLE : V;
    double *x = ctx_malloc(V * k * sizeof *x), *y = ctx_malloc(V * k * sizeof *y);
    double *cm = ctx_malloc(V * k * sizeof *cm), *t = ctx_malloc(k * sizeof *t);
    double *c = ctx_malloc(k * k * sizeof *c), *w = ctx_malloc(k * sizeof *w), *work = NULL;
    int rc = CTX_OK, n = (int)k, m = (int)V, lwork = -1, info = 0;
    double one = 1, zero = 0, q;

    if (!x || !y || !cm || !t || !c || !w) {
        rc = ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory for %zu x %zu", V, k);
        goto done;
    }
    gaussian(x, V * k);
    for (int it = 0; it <= iters; it++) {
        double *s;
        apply_gram(a, x, y, V, k, t);
        s = x, x = y, y = s;
        if ((rc = orth(x, V, k, cm, err)))
            goto done;
    }
    apply_gram(a, x, y, V, k, t);
    /* Row-major [V][k] is column-major k x V: C = X^T Y is k x k. */
    dgemm_("N", "T", &n, &n, &m, &one, x, &n, y, &n, &zero, c, &n);
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < i; j++)
            c[i + j * k] = c[j + i * k] = 0.5 * (c[i + j * k] + c[j + i * k]);
    dsyev_("V", "U", &n, c, &n, w, &q, &lwork, &info);
    lwork = (int)q + 1;
    if (info || !(work = ctx_malloc((size_t)lwork * sizeof *work))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
        goto done;
    }
    dsyev_("V", "U", &n, c, &n, w, work, &lwork, &info);
    if (info) {
        rc = ctx_error_set(err, CTX_EINTERNAL, "lsa: LAPACK eigensolver failed (%d)", info);
        goto done;
    }
    /* Largest first; each column's sign fixed by its largest entry. */
    for (size_t col = 0; col < d; col++) {
        const double *ev = c + (k - 1 - col) * k;
        double big = 0;
        for (size_t i = 0; i < V; i++) {
            double v = 0;
            for (size_t j = 0; j < k; j++)
                v += x[i * k + j] * ev[j];
            y[i] = v;
            if (fabs(v) > fabs(big))
                big = v;
        }
        for (size_t i = 0; i < V; i++)
            p[i * d + col] = (float)(big < 0 ? -y[i] : y[i]);
    }
done:
    ctx_free(x);
    ctx_free(y);
    ctx_free(cm);
    ctx_free(t);
    ctx_free(c);
    ctx_free(w);
    ctx_free(work);
    return rc;
}

static int put32(ctx_buf *b, uint32_t v) { return ctx_buf_append(b, &v, 4); }
static int put64(ctx_buf *b, int64_t v) { return ctx_buf_append(b, &v, 8); }

/* save - the model file, written whole under a temporary name, then renamed. */
static int save(const char *data_dir, const term_tab *t, const uint32_t *keep, uint32_t V,
                const float *idf, const float *p, int dim, int64_t chunks, int64_t max_id,
                char hash[LSA_HASH_LEN + 1], ctx_error *err)
{
    ctx_buf b = CTX_BUF_INIT;
    char sum[65], path[4096], tmp[4200];
    FILE *f = NULL;
    int rc = CTX_OK, bad;

    bad = ctx_buf_append(&b, LSA_MAGIC, 8) || put32(&b, 1) || put32(&b, (uint32_t)dim) ||
          put32(&b, V) || put32(&b, 0) || put64(&b, chunks) || put64(&b, max_id);
    for (uint32_t i = 0; i < V && !bad; i++)
        bad = put32(&b, t->len[keep[i]]) ||
              ctx_buf_append(&b, t->chars.data + t->off[keep[i]], t->len[keep[i]]);
    bad = bad || ctx_buf_append(&b, idf, (size_t)V * sizeof *idf) ||
          ctx_buf_append(&b, p, (size_t)V * (size_t)dim * sizeof *p);
    if (!bad) {
        const void *part = b.data;
        size_t plen = b.len;
        ctx_hash_hex(&part, &plen, 1, sum);
        bad = ctx_buf_append(&b, sum, 64) || put64(&b, (int64_t)b.len + 8);
    }
    if (bad) {
        ctx_buf_free(&b);
        return ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
    }
    memcpy(hash, sum, LSA_HASH_LEN);
    hash[LSA_HASH_LEN] = '\0';
    lsa_model_path(data_dir, hash, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "wb")) || fwrite(b.data, 1, b.len, f) != b.len || fflush(f) ||
        fsync(fileno(f))) {
        rc = ctx_error_set(err, CTX_EIO, "lsa: cannot write %s: %s", tmp, strerror(errno));
        if (f)
            fclose(f);
        unlink(tmp);
    } else if (fclose(f) || rename(tmp, path)) {
        rc = ctx_error_set(err, CTX_EIO, "lsa: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    ctx_buf_free(&b);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int store_texts(void *arg, int64_t after, size_t max, store_embed_batch *out,
                       ctx_error *err)
{
    return store_chunk_texts(arg, after, max, out, err);
}

int lsa_train(ctx_store *st, const char *data_dir, const lsa_train_opts *opt,
              volatile sig_atomic_t *cancel, char hash[LSA_HASH_LEN + 1],
              lsa_train_stats *stats, ctx_error *err)
{
    return lsa_train_texts(store_texts, st, data_dir, opt, cancel, hash, stats, err);
}

int lsa_train_texts(lsa_text_fn next, void *arg, const char *data_dir,
                    const lsa_train_opts *opt, volatile sig_atomic_t *cancel,
                    char hash[LSA_HASH_LEN + 1], lsa_train_stats *stats, ctx_error *err)
{
    lsa_train_opts o = *opt;
    lsa_train_stats local;
    reader r;
    uint32_t *newid = NULL, *keep = NULL, V = 0;
    float *idf = NULL, *p = NULL;
    int64_t max_id = 0;
    double t0 = now_s();
    size_t out = 0;
    int rc;

    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    memset(&r, 0, sizeof r);
    if (o.min_df < 1)
        o.min_df = 2;
    if (o.max_df_share <= 0 || o.max_df_share > 1)
        o.max_df_share = 0.5;
    if (o.max_terms < 1)
        o.max_terms = 50000;
    if (o.power_iters < 0)
        o.power_iters = 3;
    if (o.dim < 2 || o.dim > 8192)
        return ctx_error_set(err, CTX_ECONFIG, "embeddings.dim: %d is out of range; use 2..8192",
                             o.dim);
    if ((rc = read_corpus(next, arg, &r, cancel, &max_id, err)))
        goto done;
    stats->chunks = (int64_t)r.a.rows;
    if (!r.a.rows) {
        rc = ctx_error_set(err, CTX_ENOTFOUND, "lsa: there are no chunks to train on yet; run"
                           " `ctxgate sync` first");
        goto done;
    }
    if (!(newid = ctx_malloc(((size_t)r.tab.n + 1) * sizeof *newid))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
        goto done;
    }
    if ((rc = choose_vocab(&r.tab, r.a.rows, &o, &keep, &V))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
        goto done;
    }
    if (V > (uint32_t)o.max_terms) {
        /* Too many: the most frequent, ties by bytes (keep is in byte order
         * and qsort is not stable, so the byte rank is the key). */
        uint32_t *rank = ctx_malloc((size_t)V * sizeof *rank);
        term_tab ranked = r.tab;
        uint32_t *df = ctx_malloc((size_t)V * sizeof *df);
        if (!rank || !df) {
            ctx_free(rank);
            ctx_free(df);
            rc = ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
            goto done;
        }
        for (uint32_t i = 0; i < V; i++) {
            rank[i] = i;
            df[i] = r.tab.df[keep[i]];
        }
        ranked.df = df;
        sort_tab = &ranked;
        qsort(rank, V, sizeof *rank, cmp_by_df);
        for (uint32_t i = 0; i < (uint32_t)o.max_terms; i++)
            rank[i] = keep[rank[i]];
        sort_tab = &r.tab;
        qsort(rank, (size_t)o.max_terms, sizeof *rank, cmp_by_term);
        memcpy(keep, rank, (size_t)o.max_terms * sizeof *keep);
        V = (uint32_t)o.max_terms;
        ctx_free(rank);
        ctx_free(df);
    }
    for (uint32_t i = 0; i < r.tab.n; i++)
        newid[i] = UINT32_MAX;
    for (uint32_t i = 0; i < V; i++)
        newid[keep[i]] = i;
    stats->terms = V;
    if (V < (uint32_t)o.dim) {
        rc = ctx_error_set(err, CTX_ECONFIG, "embeddings.dim: the lsa model keeps %u terms of"
                           " %zu chunks, fewer than dim %d; lower embeddings.dim or index"
                           " more text", V, r.a.rows, o.dim);
        goto done;
    }
    if (!(idf = ctx_malloc((size_t)V * sizeof *idf)) ||
        !(p = ctx_malloc((size_t)V * (size_t)o.dim * sizeof *p))) {
        rc = ctx_error_set(err, CTX_ENOMEM, "lsa: out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < V; i++)
        idf[i] = (float)log((double)r.a.rows / (double)r.tab.df[keep[i]]);
    /* Rows of kept terms, weighted (1 + log tf) * idf and normalized, compacted in place. */
    for (size_t row = 0, e = 0; row < r.a.rows; row++) {
        size_t from = out;
        double ss = 0;
        for (; e < r.a.ptr[row + 1]; e++) {
            uint32_t id = newid[r.a.col[e]];
            double w;
            if (id == UINT32_MAX)
                continue;
            w = (1.0 + log((double)r.a.val[e])) * idf[id];
            r.a.col[out] = id;
            r.a.val[out++] = (float)w;
            ss += w * w;
        }
        for (size_t j = from; ss > 0 && j < out; j++)
            r.a.val[j] = (float)(r.a.val[j] / sqrt(ss));
        r.a.ptr[row + 1] = out;
    }
    r.a.nnz = out;
    stats->nnz = (int64_t)out;
    if ((rc = svd(&r.a, V, (size_t)o.dim, o.power_iters, p, err)))
        goto done;
    rc = save(data_dir, &r.tab, keep, V, idf, p, o.dim, (int64_t)r.a.rows, max_id, hash, err);
done:
    stats->seconds = now_s() - t0;
    tab_free(&r.tab);
    ctx_free(r.a.ptr);
    ctx_free(r.a.col);
    ctx_free(r.a.val);
    ctx_free(r.ids);
    ctx_free(newid);
    ctx_free(keep);
    ctx_free(idf);
    ctx_free(p);
    return rc;
}

/* ---- which model the embed job uses ---- */

/* model_hash - the hash of an lsa model name "lsa:<hash>@<dim>" into h, or 0. */
static int model_hash(const char *name, char h[LSA_HASH_LEN + 1])
{
    if (strncmp(name, "lsa:", 4) || strlen(name) < 4 + LSA_HASH_LEN ||
        name[4 + LSA_HASH_LEN] != '@')
        return 0;
    memcpy(h, name + 4, LSA_HASH_LEN);
    h[LSA_HASH_LEN] = '\0';
    return 1;
}

/* forget_others - delete model files named by none of keep[0..2] (empty = none). */
static void forget_others(const char *data_dir, char keep[3][LSA_HASH_LEN + 1])
{
    DIR *d = opendir(data_dir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        char path[4096];
        int mine = 0;
        if (strncmp(n, "lsa-", 4) || strlen(n) != 4 + LSA_HASH_LEN + 6 ||
            strcmp(n + 4 + LSA_HASH_LEN, ".model"))
            continue;
        for (int i = 0; i < 3; i++)
            mine |= keep[i][0] && !strncmp(n + 4, keep[i], LSA_HASH_LEN);
        if (mine)
            continue;
        snprintf(path, sizeof path, "%s/%s", data_dir, n);
        if (!unlink(path))
            ctx_log(CTX_LOG_INFO, "lsa", "deleted the retired model %s", path);
    }
    closedir(d);
}

int lsa_ensure(ctx_store *st, const char *data_dir, const lsa_train_opts *opt,
               double retrain_share, volatile sig_atomic_t *cancel,
               char hash[LSA_HASH_LEN + 1], int *trained, lsa_train_stats *stats,
               ctx_error *err)
{
    char names[3][LSA_HASH_LEN + 1] = {"", "", ""};
    int64_t ids[2];
    int rc;

    *trained = 0;
    hash[0] = '\0';
    if ((rc = store_embed_models(st, &ids[1], &ids[0], err)))
        return rc;
    for (int i = 0; i < 2; i++) {
        char *name = NULL;
        int dim = 0;
        if (!ids[i])
            continue;
        if ((rc = store_embed_model_info(st, ids[i], &name, &dim, err)))
            return rc;
        if (model_hash(name, names[i]) && dim == opt->dim && !hash[0]) {
            lsa_model *m = NULL;
            ctx_error e2;
            int64_t then, max_id, total, top, above, gone;
            if (lsa_load(data_dir, names[i], dim, &m, &e2)) {
                ctx_log(CTX_LOG_WARN, "lsa", "%s", e2.text);
            } else {
                lsa_trained_on(m, &then, &max_id);
                lsa_release(m);
                if ((rc = store_chunk_count(st, max_id, &total, &top, &above, err))) {
                    ctx_free(name);
                    return rc;
                }
                gone = then - (total - above);
                if ((double)(above + (gone > 0 ? gone : 0)) <= retrain_share * (double)then)
                    memcpy(hash, names[i], LSA_HASH_LEN + 1);
                else
                    ctx_log(CTX_LOG_INFO, "lsa", "model %s: %lld chunks added and %lld gone"
                            " since it was trained on %lld; training a new one", names[i],
                            (long long)above, (long long)(gone > 0 ? gone : 0),
                            (long long)then);
            }
        }
        ctx_free(name);
    }
    if (!hash[0]) {
        if ((rc = lsa_train(st, data_dir, opt, cancel, hash, stats, err)))
            return rc;
        *trained = 1;
    }
    memcpy(names[2], hash, LSA_HASH_LEN + 1);
    forget_others(data_dir, names);
    return CTX_OK;
}
