/*
 * pretok.c - chunk text tokenized on the connector's thread and replayed
 * into FTS5 on the applier's (see pretok.h).
 */
#include "pretok.h"

#include <stdint.h>
#include <string.h>

#include "../core/ctx.h"
#include "stmt.h"

/* The arguments porter gets from chunks_fts's "tokenize" option (store.c, schema v1). */
static const char *const porter_args[] = {"unicode61", "remove_diacritics", "2"};
#define NARGS ((int)(sizeof porter_args / sizeof *porter_args))

/*
 * A token as pretok_run lays it out: four bytes (its own length n, where it
 * starts after the previous token's start, its length in the text, its
 * flags) and then its n bytes; or, when a number does not fit in a byte,
 * LONG_TOKEN and the four as int32_t. A chunk's tokens take about 1.6
 * times its text, and replaying one is a load and a call.
 */
#define LONG_TOKEN 255
typedef struct long_head {
    int32_t n, skip, span, tflags;
} long_head;

struct pretok {
    sqlite3 *db;           /* only to reach FTS5's porter */
    fts5_tokenizer fn;
    Fts5Tokenizer *inner;
    ctx_buf *out;          /* pretok_run's, while it runs */
    int last;              /* the previous token's start, while it runs */
};

int pretok_open(pretok **out, ctx_error *err)
{
    pretok *t = ctx_calloc(1, sizeof *t);
    fts5_api *api;
    void *ud;

    *out = NULL;
    if (!t)
        return ctx_error_set(err, CTX_ENOMEM, "tokenizer: out of memory");
    if (sqlite3_open_v2(":memory:", &t->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        !(api = stmt_fts5_api(t->db)) || api->xFindTokenizer(api, "porter", &ud, &t->fn) ||
        t->fn.xCreate(ud, (const char **)porter_args, NARGS, &t->inner) != SQLITE_OK) {
        pretok_close(t);
        return ctx_error_set(err, CTX_ESTORE, "tokenizer: SQLite's FTS5 porter tokenizer"
                             " is not available");
    }
    *out = t;
    return CTX_OK;
}

void pretok_close(pretok *t)
{
    if (!t)
        return;
    if (t->inner)
        t->fn.xDelete(t->inner);
    sqlite3_close(t->db);
    ctx_free(t);
}

static int keep_token(void *arg, int tflags, const char *tok, int n, int start, int end)
{
    pretok *t = arg;
    unsigned char *at;

    /* A tokenizer goes forward through its text; anything else would not
     * round-trip, so it is not taken (the caller then keeps no tokens). */
    if (start < t->last || end < start || n < 0 || tflags < 0)
        return SQLITE_ERROR;
    if (ctx_buf_reserve(t->out, 1 + sizeof(long_head) + (size_t)n))
        return SQLITE_NOMEM;
    at = (unsigned char *)t->out->data + t->out->len;
    if (n < LONG_TOKEN && start - t->last <= 255 && end - start <= 255 && tflags <= 255) {
        *at++ = (unsigned char)n;
        *at++ = (unsigned char)(start - t->last);
        *at++ = (unsigned char)(end - start);
        *at++ = (unsigned char)tflags;
    } else {
        long_head h = {n, start - t->last, end - start, tflags};
        *at++ = LONG_TOKEN;
        memcpy(at, &h, sizeof h);
        at += sizeof h;
    }
    memcpy(at, tok, (size_t)n);
    t->out->len = (size_t)(at + n - (unsigned char *)t->out->data);
    t->last = start;
    return SQLITE_OK;
}

int pretok_run(pretok *t, const char *text, size_t len, ctx_buf *out)
{
    int rc;

    if (!len)
        return CTX_OK;
    if (len > INT32_MAX)
        return CTX_ENOMEM;
    t->out = out;
    t->last = 0;
    rc = t->fn.xTokenize(t->inner, t, FTS5_TOKENIZE_DOCUMENT, text, (int)len, keep_token);
    t->out = NULL;
    return rc == SQLITE_OK ? CTX_OK : rc == SQLITE_NOMEM ? CTX_ENOMEM : CTX_EINVAL;
}

/* What pretok_install registers: SQLite's porter and the connection's slot. */
typedef struct wrap_def {
    fts5_tokenizer porter;
    void *porter_ud;
    pretok_slot *slot;
} wrap_def;

/* One instance of the wrapper: porter made with the same arguments. */
typedef struct wrap_tok {
    const wrap_def *def;
    Fts5Tokenizer *inner;
    int replay;            /* made with porter_args: staged tokens are its own */
} wrap_tok;

static int wrap_create(void *ud, const char **argv, int argc, Fts5Tokenizer **out)
{
    const wrap_def *def = ud;
    wrap_tok *w = ctx_calloc(1, sizeof *w);
    int rc;

    *out = NULL;
    if (!w)
        return SQLITE_NOMEM;
    w->def = def;
    if ((rc = def->porter.xCreate(def->porter_ud, argv, argc, &w->inner)) != SQLITE_OK) {
        ctx_free(w);
        return rc;
    }
    w->replay = argc == NARGS;
    for (int i = 0; w->replay && i < NARGS; i++)
        w->replay = argv[i] && !strcmp(argv[i], porter_args[i]);
    *out = (Fts5Tokenizer *)w;
    return SQLITE_OK;
}

static void wrap_delete(Fts5Tokenizer *tok)
{
    wrap_tok *w = (wrap_tok *)tok;

    w->def->porter.xDelete(w->inner);
    ctx_free(w);
}

static int wrap_tokenize(Fts5Tokenizer *tok, void *ctx, int flags, const char *text, int len,
                         int (*emit)(void *, int, const char *, int, int, int))
{
    wrap_tok *w = (wrap_tok *)tok;
    const pretok_slot *s = w->def->slot;
    const unsigned char *p, *end;
    int at;

    if (!w->replay || flags != FTS5_TOKENIZE_DOCUMENT || !s->text || len <= 0 ||
        (size_t)len != s->len || (text != s->text && memcmp(text, s->text, s->len)))
        return w->def->porter.xTokenize(w->inner, ctx, flags, text, len, emit);
    for (p = s->toks, end = p + s->nbytes, at = 0; p < end;) {
        long_head h;
        int rc;
        if (*p != LONG_TOKEN) {
            h.n = p[0];
            h.skip = p[1];
            h.span = p[2];
            h.tflags = p[3];
            p += 4;
        } else {
            memcpy(&h, p + 1, sizeof h);
            p += 1 + sizeof h;
        }
        at += h.skip;
        if ((rc = emit(ctx, h.tflags, (const char *)p, h.n, at, at + h.span)) != SQLITE_OK)
            return rc;
        p += h.n;
    }
    return SQLITE_OK;
}

static void wrap_free(void *ud) { ctx_free(ud); }

int pretok_install(sqlite3 *db, pretok_slot *slot)
{
    fts5_tokenizer wrap = {wrap_create, wrap_delete, wrap_tokenize};
    fts5_api *api = stmt_fts5_api(db);
    wrap_def *def;

    if (!api || !(def = ctx_calloc(1, sizeof *def)))
        return CTX_ESTORE;
    def->slot = slot;
    if (api->xFindTokenizer(api, "porter", &def->porter_ud, &def->porter) != SQLITE_OK ||
        api->xCreateTokenizer(api, "porter", def, &wrap, wrap_free) != SQLITE_OK) {
        ctx_free(def);
        return CTX_ESTORE;
    }
    return CTX_OK;
}
