/*
 * json.c - a compact JSON writer for jansson values (see json.h).
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"

/* escape[c]: 0 = as is, else the letter after '\', or 'u' for \u00XX */
static const char escape[256] = {
    ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't',
    [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',
    [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u',
    [0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u',
    [0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u',
    [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"', ['\\'] = '\\',
};

static int put_string(const char *s, size_t n, ctx_buf *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    if (ctx_buf_reserve(out, n + 2) || ctx_buf_append(out, "\"", 1))
        return CTX_ENOMEM;
    for (; i < n; i++) {
        char e = escape[p[i]], seq[8];
        size_t len = 2;
        if (!e)
            continue;
        if (ctx_buf_append(out, s + run, i - run))
            return CTX_ENOMEM;
        run = i + 1;
        seq[0] = '\\';
        seq[1] = e;
        if (e == 'u')
            len = (size_t)snprintf(seq, sizeof seq, "\\u%04X", p[i]);
        if (ctx_buf_append(out, seq, len))
            return CTX_ENOMEM;
    }
    if (ctx_buf_append(out, s + run, n - run) || ctx_buf_append(out, "\"", 1))
        return CTX_ENOMEM;
    return CTX_OK;
}

/*
 * As jansson writes a real: 17 significant digits, ".0" when that would
 * read back as an integer, and the exponent without '+' or leading zeros.
 */
static int put_real(double d, ctx_buf *out)
{
    char num[40], *e;
    int n = snprintf(num, sizeof num, "%.17g", d);

    if (n < 0 || (size_t)n >= sizeof num - 2)
        return CTX_ENOMEM;
    if (!(e = strchr(num, 'e'))) {
        if (!strchr(num, '.')) {
            memcpy(num + n, ".0", 3);
            n += 2;
        }
    } else {
        char *from = ++e;
        if (*e == '-')
            from = ++e;
        else if (*e == '+')
            from++;
        while (*from == '0' && from[1])
            from++;
        memmove(e, from, strlen(from) + 1);
        n = (int)strlen(num);
    }
    return ctx_buf_append(out, num, (size_t)n);
}

int ctx_json_write(const json_t *v, ctx_buf *out)
{
    char num[32];
    int rc = CTX_OK;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        if (ctx_buf_append(out, "{", 1))
            return CTX_ENOMEM;
        /* json_object_foreach wants a non-const object; it only reads */
        json_object_foreach((json_t *)v, key, val) {
            if ((!first && ctx_buf_append(out, ",", 1)) ||
                put_string(key, strlen(key), out) || ctx_buf_append(out, ":", 1) ||
                ctx_json_write(val, out))
                return CTX_ENOMEM;
            first = 0;
        }
        return ctx_buf_append(out, "}", 1);
    }
    case JSON_ARRAY:
        if (ctx_buf_append(out, "[", 1))
            return CTX_ENOMEM;
        for (size_t i = 0; i < json_array_size(v) && !rc; i++)
            rc = (i && ctx_buf_append(out, ",", 1)) || ctx_json_write(json_array_get(v, i), out);
        return rc || ctx_buf_append(out, "]", 1) ? CTX_ENOMEM : CTX_OK;
    case JSON_STRING:
        return put_string(json_string_value(v), json_string_length(v), out);
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return ctx_buf_puts(out, num);
    case JSON_REAL:
        return put_real(json_real_value(v), out);
    case JSON_TRUE:
        return ctx_buf_append(out, "true", 4);
    case JSON_FALSE:
        return ctx_buf_append(out, "false", 5);
    case JSON_NULL:
        return ctx_buf_append(out, "null", 4);
    }
    return CTX_EINTERNAL;
}

char *ctx_json_dumps(const json_t *v, size_t *len)
{
    ctx_buf b = CTX_BUF_INIT;

    if (!v || ctx_json_write(v, &b) || ctx_buf_append(&b, "", 0)) {
        ctx_buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return ctx_buf_steal(&b);
}

/* ---- jansson's allocations, guarded (json.h) ---------------------------- */

static __thread int json_oom;

static void *json_alloc(size_t n)
{
    void *p = ctx_malloc(n);
    if (!p)
        json_oom = 1;
    return p;
}

static void json_release(void *p)
{
    ctx_free(p);
}

void ctx_json_init(void)
{
    json_set_alloc_funcs(json_alloc, json_release);
}

/* guard - v, or NULL (v released, e saying why) when an allocation failed. */
static json_t *guard(json_t *v, json_error_t *e)
{
    if (!json_oom)
        return v;
    json_decref(v);
    if (e) {
        memset(e, 0, sizeof *e);
        snprintf(e->text, sizeof e->text, "out of memory");
        e->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_out_of_memory;
    }
    return NULL;
}

json_t *ctx_json_loads(const char *text, size_t flags, json_error_t *e)
{
    json_oom = 0;
    return guard(json_loads(text, flags, e), e);
}

json_t *ctx_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *e)
{
    json_oom = 0;
    return guard(json_loadb(buf, len, flags, e), e);
}

json_t *ctx_json_load_file(const char *path, size_t flags, json_error_t *e)
{
    json_oom = 0;
    return guard(json_load_file(path, flags, e), e);
}

char *ctx_json_text(const json_t *v, size_t flags)
{
    char *s;

    json_oom = 0;
    s = json_dumps(v, flags);
    if (json_oom) {
        free(s);
        return NULL;
    }
    return s;
}
