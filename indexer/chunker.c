/*
 * chunker.c - paragraph/sentence/word-aware chunking (see chunker.h).
 *
 * The body is first cut into units that never cross a sentence end or a
 * paragraph break; a unit over the budget is cut again at word boundaries.
 * Units are then packed greedily; each new chunk starts with the trailing
 * units of the previous one that fit the overlap budget.
 */
#include "chunker.h"

#include <string.h>

#include "../core/ctx.h"

static int is_word(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '_';
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int chunker_count_tokens(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run;
    int n = 0;

    while (i < len) {
        if (is_word(p[i])) {
            run = 0;
            while (i < len && is_word(p[i])) {
                i++;
                run++;
            }
            n += (int)((run + 5) / 6);
        } else if (is_space(p[i])) {
            i++;
        } else if (p[i] >= 0x80) {
            /* One per code point: skip continuation bytes. */
            i++;
            while (i < len && (p[i] & 0xC0) == 0x80)
                i++;
            n++;
        } else {
            i++;
            n++;
        }
    }
    return n;
}

typedef struct unit {
    size_t off, len;
    int ntokens;
} unit;

typedef struct units {
    unit *v;
    size_t n, cap;
} units;

static int push(units *u, size_t off, size_t len, int ntokens)
{
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 64;
        unit *v = ctx_realloc(u->v, cap * sizeof *v);
        if (!v)
            return CTX_ENOMEM;
        u->v = v;
        u->cap = cap;
    }
    u->v[u->n].off = off;
    u->v[u->n].len = len;
    u->v[u->n].ntokens = ntokens;
    u->n++;
    return CTX_OK;
}

/*
 * Cut an over-budget unit into pieces within max, walking it once atom by
 * atom (a word run, a punctuation mark, a non-ASCII character) and cutting
 * before the atom that would overflow. A word run longer than the whole
 * budget is cut inside, on a character boundary.
 */
static int push_words(units *u, const char *t, size_t off, size_t len, int max)
{
    const unsigned char *p = (const unsigned char *)t;
    size_t start = off, end = off + len, i = off, a;
    int tok = 0, at, rc;

    while (i < end) {
        a = i;
        if (is_space(p[i])) {
            i++;
            continue;
        }
        if (is_word(p[i])) {
            while (i < end && is_word(p[i]) && (int)(i - a) < 6 * max)
                i++;
            at = (int)((i - a + 5) / 6);
        } else {
            i++;
            while (i < end && (p[i] & 0xC0) == 0x80)
                i++;
            at = 1;
        }
        if (tok + at > max && a > start) {
            size_t e = a;
            while (e > start && is_space(p[e - 1]))
                e--;
            if ((rc = push(u, start, e - start, tok)))
                return rc;
            start = a;
            tok = 0;
        }
        tok += at;
    }
    return end > start ? push(u, start, end - start, tok) : CTX_OK;
}

/* A sentence ends at .!? followed by space, or at a line break before a
 * blank line, a list item or a heading. */
static size_t sentence_end(const char *t, size_t i, size_t len)
{
    const unsigned char *p = (const unsigned char *)t;

    for (; i < len; i++) {
        if ((p[i] == '.' || p[i] == '!' || p[i] == '?') && i + 1 < len && is_space(p[i + 1]))
            return i + 1;
        if (p[i] == '\n') {
            size_t j = i + 1;
            while (j < len && (p[j] == ' ' || p[j] == '\t'))
                j++;
            if (j >= len || p[j] == '\n' || p[j] == '#' || p[j] == '-' || p[j] == '*' ||
                p[j] == '|' || (p[j] >= '0' && p[j] <= '9'))
                return i + 1;
        }
    }
    return len;
}

static int split_units(const char *t, size_t len, int max, units *u)
{
    size_t i = 0, end, s, e;
    int rc, ntok;

    while (i < len) {
        end = sentence_end(t, i, len);
        /* Trim the unit; whitespace between units belongs to nobody. */
        s = i;
        e = end;
        while (s < e && is_space((unsigned char)t[s]))
            s++;
        while (e > s && is_space((unsigned char)t[e - 1]))
            e--;
        if (e > s) {
            ntok = chunker_count_tokens(t + s, e - s);
            rc = ntok > max ? push_words(u, t, s, e - s, max) : push(u, s, e - s, ntok);
            if (rc)
                return rc;
        }
        i = end;
    }
    return CTX_OK;
}

int chunker_split(const char *text, size_t len, const chunker_opts *opts,
                  chunk_span **out, size_t *n)
{
    chunker_opts def = CHUNKER_DEFAULTS;
    units u = {NULL, 0, 0};
    chunk_span *v = NULL;
    size_t nv = 0, cap = 0, first = 0, last, k;
    int max, overlap, tok, rc;

    *out = NULL;
    *n = 0;
    if (!opts)
        opts = &def;
    max = opts->max_tokens > 8 ? opts->max_tokens : 8;
    overlap = opts->overlap_tokens >= 0 ? opts->overlap_tokens : 0;
    if (overlap > max / 2)
        overlap = max / 2;
    if ((rc = split_units(text, len, max, &u)))
        goto fail;

    while (first < u.n) {
        /* Greedy: take units while the span's token count stays in budget. */
        last = first;
        tok = u.v[first].ntokens;
        /* Only whitespace lies between units, so their counts add up. */
        while (last + 1 < u.n && tok + u.v[last + 1].ntokens <= max)
            tok += u.v[++last].ntokens;
        if (nv == cap) {
            chunk_span *nvp;
            cap = cap ? cap * 2 : 8;
            if (!(nvp = ctx_realloc(v, cap * sizeof *v))) {
                rc = CTX_ENOMEM;
                goto fail;
            }
            v = nvp;
        }
        v[nv].off = u.v[first].off;
        v[nv].len = u.v[last].off + u.v[last].len - v[nv].off;
        v[nv].ntokens = tok;
        nv++;
        if (last + 1 >= u.n)
            break;
        /* Next chunk: back up over trailing units within the overlap. */
        k = last + 1;
        {
            int carried = 0;
            /* Carry only what leaves room for the next new unit: a chunk of
             * nothing but carried units would repeat the one before. */
            while (k > first + 1 && carried + u.v[k - 1].ntokens <= overlap &&
                   carried + u.v[k - 1].ntokens + u.v[last + 1].ntokens <= max) {
                carried += u.v[k - 1].ntokens;
                k--;
            }
        }
        first = k;
    }
    ctx_free(u.v);
    *out = v;
    *n = nv;
    return CTX_OK;
fail:
    ctx_free(u.v);
    ctx_free(v);
    return rc;
}
