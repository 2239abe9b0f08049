/*
 * qrels.c - the questions file of `ctxgate eval` (TSV or JSON lines) and the
 * metrics of one ranked answer. Strict on purpose: a line that cannot be
 * read stops the parse, so a typo never quietly drops a question.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "qrels.h"
#include "../core/json.h"

enum { FMT_NONE, FMT_TSV, FMT_JSONL };

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* trim - s[0..*n) without the white space around it. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && is_space(*s)) {
        s++;
        (*n)--;
    }
    while (*n && is_space(s[*n - 1]))
        (*n)--;
    return s;
}

static int has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return 1;
    return 0;
}

/*
 * add_id - id[0..n) (trimmed, not empty) as "source:external_id" to it->
 * relevant unless already there.
 */
static int add_id(qrels_item *it, const char *id, size_t n, const char *source, int line,
                  ctx_error *err)
{
    ctx_buf b = CTX_BUF_INIT;
    char **v;
    int rc;

    if (source)
        rc = ctx_buf_printf(&b, "%s:%.*s", source, (int)n, id);
    else if (!memchr(id, ':', n) || id[0] == ':' || id[n - 1] == ':')
        return ctx_error_set(err, CTX_EINVAL, "line %d: id \"%.*s\" names no source and"
                             " document: write SOURCE:EXTERNAL_ID, or give the source"
                             " (--source) for bare ids", line, (int)(n > 80 ? 80 : n), id);
    else
        rc = ctx_buf_append(&b, id, n);
    if (rc) {
        ctx_buf_free(&b);
        return ctx_error_set(err, CTX_ENOMEM, "qrels: out of memory");
    }
    if (has(it->relevant, it->nrelevant, b.data)) {
        ctx_buf_free(&b);
        return CTX_OK;
    }
    if (!(v = ctx_realloc(it->relevant, (it->nrelevant + 1) * sizeof *v))) {
        ctx_buf_free(&b);
        return ctx_error_set(err, CTX_ENOMEM, "qrels: out of memory");
    }
    it->relevant = v;
    v[it->nrelevant++] = ctx_buf_steal(&b);
    return CTX_OK;
}

static int set_question(qrels_item *it, const char *q, size_t n, int line, ctx_error *err)
{
    q = trim(q, &n);
    if (!n)
        return ctx_error_set(err, CTX_EINVAL, "line %d: empty question; write the question"
                             " first, then its relevant documents", line);
    if (!(it->question = ctx_malloc(n + 1)))
        return ctx_error_set(err, CTX_ENOMEM, "qrels: out of memory");
    memcpy(it->question, q, n);
    it->question[n] = '\0';
    return CTX_OK;
}

/* tsv_line - "question<TAB>id,id,..." into it. */
static int tsv_line(qrels_item *it, const char *s, size_t n, const char *source, int line,
                    ctx_error *err)
{
    const char *tab = memchr(s, '\t', n), *p, *end = s + n;
    int rc;

    if (!tab)
        return ctx_error_set(err, CTX_EINVAL, "line %d: no TAB; a TSV line is"
                             " question<TAB>id1,id2,...", line);
    if (memchr(tab + 1, '\t', (size_t)(end - tab - 1)))
        return ctx_error_set(err, CTX_EINVAL, "line %d: more than one TAB; a TSV line is"
                             " question<TAB>id1,id2,... (ids are separated by commas)", line);
    if ((rc = set_question(it, s, (size_t)(tab - s), line, err)))
        return rc;
    for (p = tab + 1; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = (size_t)((comma ? comma : end) - p);
        const char *id = trim(p, &len);
        if (len && (rc = add_id(it, id, len, source, line, err)))
            return rc;
        p = comma ? comma + 1 : end;
    }
    if (!it->nrelevant)
        return ctx_error_set(err, CTX_EINVAL, "line %d: no relevant ids after the TAB;"
                             " list at least one, separated by commas", line);
    return CTX_OK;
}

/* json_line - {"question": "...", "relevant": [...]} into it. */
static int json_line(qrels_item *it, const char *s, size_t n, const char *source, int line,
                     ctx_error *err)
{
    json_error_t jerr;
    json_t *o = ctx_json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr), *q, *rel, *v;
    const char *key;
    size_t i;
    int rc = CTX_OK;

    if (!o)
        return ctx_error_set(err, CTX_EINVAL, "line %d: bad JSON at column %d: %s; each line"
                             " is one object {\"question\": ..., \"relevant\": [...]}", line,
                             jerr.column, jerr.text);
    if (!json_is_object(o)) {
        rc = ctx_error_set(err, CTX_EINVAL, "line %d: not a JSON object; each line is one"
                           " object {\"question\": ..., \"relevant\": [...]}", line);
        goto done;
    }
    json_object_foreach(o, key, v) {
        if (strcmp(key, "question") && strcmp(key, "relevant")) {
            rc = ctx_error_set(err, CTX_EINVAL, "line %d: unknown key \"%.60s\"; a line has"
                               " only \"question\" and \"relevant\"", line, key);
            goto done;
        }
    }
    q = json_object_get(o, "question");
    rel = json_object_get(o, "relevant");
    if (!json_is_string(q)) {
        rc = ctx_error_set(err, CTX_EINVAL, "line %d: \"question\" must be a string", line);
        goto done;
    }
    if (memchr(json_string_value(q), 0, json_string_length(q))) {
        rc = ctx_error_set(err, CTX_EINVAL, "line %d: the question holds a NUL character;"
                           " remove it", line);
        goto done;
    }
    if ((rc = set_question(it, json_string_value(q), json_string_length(q), line, err)))
        goto done;
    if (!json_is_array(rel) || !json_array_size(rel)) {
        rc = ctx_error_set(err, CTX_EINVAL, "line %d: \"relevant\" must be a non-empty array"
                           " of \"source:external_id\" strings", line);
        goto done;
    }
    json_array_foreach(rel, i, v) {
        const char *id = json_string_value(v);
        size_t len = json_string_length(v);
        if (id)
            id = trim(id, &len);
        if (!id || !len || memchr(id, 0, len)) {
            rc = ctx_error_set(err, CTX_EINVAL, "line %d: relevant[%zu] must be a non-empty"
                               " string without NUL characters", line, i);
            goto done;
        }
        if ((rc = add_id(it, id, len, source, line, err)))
            goto done;
    }
done:
    json_decref(o);
    return rc;
}

int qrels_parse(const char *text, size_t len, const char *source, qrels *out, ctx_error *err)
{
    const char *p = text, *end = text + len;
    int line = 0, fmt = FMT_NONE, fmt_line = 0, rc;

    memset(out, 0, sizeof *out);
    if (source && (!*source || strchr(source, ':')))
        return ctx_error_set(err, CTX_EINVAL, "qrels: source \"%s\" must be a source's name"
                             " (not empty, no ':')", source);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p), tn;
        const char *s = p;
        qrels_item *v;

        p = nl ? nl + 1 : end;
        line++;
        if (n && s[n - 1] == '\r')
            n--;
        tn = n;
        trim(s, &tn);
        if (!tn || s[0] == '#')
            continue;
        if (memchr(s, 0, n))
            return ctx_error_set(err, CTX_EINVAL, "line %d: holds a NUL byte; the file must"
                                 " be text", line);
        if (!ctx_utf8_valid(s, n))
            return ctx_error_set(err, CTX_EINVAL, "line %d: not UTF-8; save the file as"
                                 " UTF-8", line);
        if (fmt == FMT_NONE) {
            fmt_line = line;
            if (*trim(s, &tn) == '{')
                fmt = FMT_JSONL;
            else if (memchr(s, '\t', n))
                fmt = FMT_TSV;
            else
                return ctx_error_set(err, CTX_EINVAL, "line %d: unknown format: neither TSV"
                                     " (question<TAB>id1,id2,...) nor JSON lines"
                                     " ({\"question\": ..., \"relevant\": [...]})", line);
        } else if (fmt == FMT_JSONL && *trim(s, &tn) != '{') {
            return ctx_error_set(err, CTX_EINVAL, "line %d: not a JSON object, but line %d"
                                 " made this file JSON lines; write every line as"
                                 " {\"question\": ..., \"relevant\": [...]}", line, fmt_line);
        }
        if (!(v = ctx_realloc(out->v, (out->n + 1) * sizeof *v)))
            return ctx_error_set(err, CTX_ENOMEM, "qrels: out of memory");
        out->v = v;
        memset(&v[out->n], 0, sizeof *v);
        v[out->n].line = line;
        out->n++;
        rc = fmt == FMT_TSV ? tsv_line(&v[out->n - 1], s, n, source, line, err)
                            : json_line(&v[out->n - 1], s, n, source, line, err);
        if (rc)
            return rc;
    }
    if (!out->n)
        return ctx_error_set(err, CTX_EINVAL, "qrels: no questions; write one per line as"
                             " question<TAB>id1,id2,... or as JSON lines");
    return CTX_OK;
}

int qrels_load(const char *path, const char *source, qrels *out, ctx_error *err)
{
    ctx_buf b = CTX_BUF_INIT;
    char buf[8192];
    size_t n;
    FILE *f;
    int rc;

    memset(out, 0, sizeof *out);
    if (!(f = fopen(path, "rb")))
        return ctx_error_set(err, CTX_EIO, "qrels %s: %s", path, strerror(errno));
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (ctx_buf_append(&b, buf, n)) {
            fclose(f);
            ctx_buf_free(&b);
            return ctx_error_set(err, CTX_ENOMEM, "qrels %s: out of memory", path);
        }
    }
    if (ferror(f)) {
        rc = ctx_error_set(err, CTX_EIO, "qrels %s: read error", path);
    } else if ((rc = qrels_parse(b.data ? b.data : "", b.len, source, out, err))) {
        char msg[CTX_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->text);
        ctx_error_set(err, rc, "%s: %s", path, msg);
    }
    fclose(f);
    ctx_buf_free(&b);
    return rc;
}

void qrels_free(qrels *q)
{
    for (size_t i = 0; i < q->n; i++) {
        for (size_t j = 0; j < q->v[i].nrelevant; j++)
            ctx_free(q->v[i].relevant[j]);
        ctx_free(q->v[i].relevant);
        ctx_free(q->v[i].question);
    }
    ctx_free(q->v);
    q->v = NULL;
    q->n = 0;
}

static int in(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return 1;
    return 0;
}

void qrels_score(const char *const *relevant, size_t nrelevant, const char *const *ranked,
                 size_t nranked, int k, qrels_scores *out)
{
    size_t nrel = 0, rank = 0;
    double dcg = 0, ideal = 0;

    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < nrelevant; i++)
        nrel += !in(relevant, i, relevant[i]);
    if (!nrel || k < 1)
        return;
    for (size_t i = 0; i < nranked && rank < (size_t)k; i++) {
        if (in(ranked, i, ranked[i]))
            continue; /* ranked before: its first place counts */
        rank++;
        if (!in(relevant, nrelevant, ranked[i]))
            continue;
        out->hits++;
        dcg += 1.0 / log2((double)rank + 1.0);
        if (!out->rr)
            out->rr = 1.0 / (double)rank;
    }
    for (size_t i = 1; i <= nrel && i <= (size_t)k; i++)
        ideal += 1.0 / log2((double)i + 1.0);
    out->found = out->hits ? 1.0 : 0.0;
    out->ndcg = dcg / ideal;
    out->recall = (double)out->hits / (double)nrel;
}

static int by_value(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

void qrels_compare(const double *a, const double *b, size_t n, qrels_paired *out)
{
    double *means;
    uint64_t s = 0x9e3779b97f4a7c15u; /* fixed: the same scores, the same interval */

    memset(out, 0, sizeof *out);
    if (!n)
        return;
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        out->mean_a += a[i] / (double)n;
        out->mean_b += b[i] / (double)n;
        out->better += b[i] > a[i] + 1e-9;
        out->worse += b[i] < a[i] - 1e-9;
    }
    out->diff = out->mean_b - out->mean_a;
    out->lo = out->hi = out->diff;
    if (!(means = ctx_malloc(QRELS_RESAMPLES * sizeof *means)))
        return; /* no memory for the interval: it stays the point */
    for (size_t r = 0; r < QRELS_RESAMPLES; r++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            size_t j;
            s ^= s << 13; /* xorshift64 */
            s ^= s >> 7;
            s ^= s << 17;
            j = (size_t)(s % n);
            sum += b[j] - a[j];
        }
        means[r] = sum / (double)n;
    }
    qsort(means, QRELS_RESAMPLES, sizeof *means, by_value);
    out->lo = means[QRELS_RESAMPLES / 40];               /* 2.5% */
    out->hi = means[QRELS_RESAMPLES - 1 - QRELS_RESAMPLES / 40]; /* 97.5% */
    ctx_free(means);
}
