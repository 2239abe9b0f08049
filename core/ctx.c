/*
 * ctx.c - errors, logging, allocation and clocks shared by every part.
 */
#include "ctx.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <time.h>

int ctx_error_set(ctx_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ctx_error_prefix(ctx_error *err, const char *fmt, ...)
{
    char pre[CTX_ERRMSG_MAX], old[CTX_ERRMSG_MAX];
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->text, sizeof old);
    {
        size_t np = strnlen(pre, sizeof err->text - 1);
        memcpy(err->text, pre, np);
        memcpy(err->text + np, old, strnlen(old, sizeof err->text - 1 - np));
        err->text[np + strnlen(old, sizeof err->text - 1 - np)] = '\0';
    }
}

const char *ctx_rc_name(int code)
{
    static const char *const names[] = {
        "CTX_OK",       "CTX_ENOMEM",   "CTX_EINVAL",   "CTX_ECONFIG",
        "CTX_EIO",      "CTX_ESTORE",   "CTX_ESOURCE",  "CTX_EAUTH",
        "CTX_ENOTFOUND", "CTX_EABI",    "CTX_ECANCELED", "CTX_ETOOBIG",
        "CTX_EINTERNAL", "CTX_EBUSY",   "CTX_EHELD",
    };
    if (code < 0 || (size_t)code >= sizeof names / sizeof names[0])
        return "CTX_UNKNOWN";
    return names[code];
}

static int log_level = CTX_LOG_INFO;

void ctx_log_set_level(int level) { log_level = level; }
int ctx_log_get_level(void) { return log_level; }

void ctx_vlog(int level, const char *part, const char *fmt, va_list ap)
{
    static const char *const tag[] = {"debug", "info", "warn", "error"};
    char line[2048];
    int n;

    if (level < log_level)
        return;
    if (level < 0 || level > CTX_LOG_ERROR)
        level = CTX_LOG_ERROR;
    /* Build the whole line first so concurrent writers do not interleave. */
    n = snprintf(line, sizeof line, "%s %s: ", tag[level], part);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    fprintf(stderr, "%s\n", line);
}

void ctx_log(int level, const char *part, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx_vlog(level, part, fmt, ap);
    va_end(ap);
}

/* Allocations left before the injected failure (0: none armed), and whether it came. */
static long alloc_countdown;
static int alloc_fired;

void ctx_alloc_fail_at(long n)
{
    __atomic_store_n(&alloc_fired, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&alloc_countdown, n > 0 ? n : 0, __ATOMIC_RELAXED);
}

int ctx_alloc_failed(void)
{
    return __atomic_load_n(&alloc_fired, __ATOMIC_RELAXED);
}

/* inject - 1 when this allocation is the one ctx_alloc_fail_at named. */
static int inject(void)
{
    if (__builtin_expect(__atomic_load_n(&alloc_countdown, __ATOMIC_RELAXED) <= 0, 1))
        return 0;
    if (__atomic_sub_fetch(&alloc_countdown, 1, __ATOMIC_RELAXED) != 0)
        return 0; /* not yet, or another thread's was the one */
    __atomic_store_n(&alloc_fired, 1, __ATOMIC_RELAXED);
    return 1;
}

void *ctx_malloc(size_t n) { return inject() ? NULL : malloc(n ? n : 1); }
void *ctx_calloc(size_t n, size_t size)
{
    return inject() ? NULL : calloc(n ? n : 1, size ? size : 1);
}
void *ctx_realloc(void *p, size_t n) { return inject() ? NULL : realloc(p, n ? n : 1); }
void ctx_free(void *p) { free(p); }

void ctx_mem_long_lived(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 256 * 1024); /* a set value also stops it moving */
#endif
}

void ctx_mem_give_back(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

char *ctx_strndup(const char *s, size_t n)
{
    char *d = ctx_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *ctx_strdup(const char *s)
{
    return s ? ctx_strndup(s, strlen(s)) : NULL;
}

int64_t ctx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t ctx_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
