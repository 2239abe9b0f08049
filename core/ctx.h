/*
 * ctx.h - what every part of ctxgate uses: the result codes, the error
 * struct that carries the human message beside the code, and logging.
 */
#ifndef CTX_CORE_CTX_H
#define CTX_CORE_CTX_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Result codes. 0 is success. Append only: a code's number never changes,
 * because it leaks into exit statuses, the store's run history and logs.
 */
typedef enum ctx_rc {
    CTX_OK = 0,
    CTX_ENOMEM = 1,      /* out of memory */
    CTX_EINVAL = 2,      /* bad argument or malformed input */
    CTX_ECONFIG = 3,     /* configuration is wrong; the message names the key */
    CTX_EIO = 4,         /* file system or socket error */
    CTX_ESTORE = 5,      /* SQLite reported an error */
    CTX_ESOURCE = 6,     /* the source (database, API, directory) failed */
    CTX_EAUTH = 7,       /* credentials rejected by a source */
    CTX_ENOTFOUND = 8,   /* no such thing (or not allowed: callers can't tell) */
    CTX_EABI = 9,        /* a plugin's ABI version or struct size is wrong */
    CTX_ECANCELED = 10,  /* stopped on request */
    CTX_ETOOBIG = 11,    /* an item exceeds a configured limit */
    CTX_EINTERNAL = 12,  /* a bug: an invariant did not hold */
    CTX_EBUSY = 13,      /* another process holds the lock */
    CTX_EHELD = 14,      /* a sync guard held back a mass change; confirm to go on */
    CTX_ELIMIT = 15,     /* a token budget is spent until its window ends */
} ctx_rc;

/* Human message carried beside a code. Fixed size: no ownership to track. */
#define CTX_ERRMSG_MAX 512
typedef struct ctx_error {
    int code;                    /* a ctx_rc */
    char text[CTX_ERRMSG_MAX];   /* "what: detail; fix", NUL terminated */
} ctx_error;

/*
 * ctx_error_set - record code and formatted text in *err (err may be NULL).
 * Returns code, so a caller can write `return ctx_error_set(err, ...)`.
 */
int ctx_error_set(ctx_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * ctx_error_prefix - put "prefix: " before the text already in *err.
 * Used to add context on the way up ("sources[1]: " + "streams[0]: ...").
 */
void ctx_error_prefix(ctx_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ctx_rc_name - a static name for a code ("CTX_ECONFIG"). */
const char *ctx_rc_name(int code);

/* Logging: one line per call to stderr, "LEVEL part: message". */
typedef enum ctx_log_level {
    CTX_LOG_DEBUG = 0,
    CTX_LOG_INFO = 1,
    CTX_LOG_WARN = 2,
    CTX_LOG_ERROR = 3,
} ctx_log_level;

void ctx_log_set_level(int level);
int ctx_log_get_level(void);
void ctx_log(int level, const char *part, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ctx_vlog(int level, const char *part, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Allocation that aborts on failure would hide ENOMEM paths; these don't. */
void *ctx_malloc(size_t n);
void *ctx_calloc(size_t n, size_t size);
void *ctx_realloc(void *p, size_t n);
char *ctx_strdup(const char *s);
char *ctx_strndup(const char *s, size_t n);
void ctx_free(void *p);

/*
 * ctx_alloc_fail_at - for torture tests (curl's `-t`): the nth allocation
 * through the functions above from now on fails (1 = the next one), once;
 * 0 turns it off. ctx_alloc_failed - whether that failure has happened
 * since. Process-wide; the cost when off is one relaxed atomic load.
 */
void ctx_alloc_fail_at(long n);
int ctx_alloc_failed(void);

/*
 * ctx_mem_long_lived - for a long-lived server: blocks of 256 KB and more
 * get pages of their own, so freeing one gives its memory back at once
 * (glibc's default raises that bar as big blocks are freed, up to 32 MB,
 * and then serves them from its heaps, where a freed block stays
 * resident). ctx_mem_give_back - return the free pages of the heaps too.
 * Both do nothing where the C library offers no such knob.
 */
void ctx_mem_long_lived(void);
void ctx_mem_give_back(void);

/* Wall clock in milliseconds since the epoch, and a monotonic clock in ns. */
int64_t ctx_now_ms(void);
uint64_t ctx_mono_ns(void);

#endif
