/*
 * util.h - small helpers every part needs: a growable byte buffer, UTF-8
 * repair, content hashing and "did you mean" suggestions.
 */
#ifndef CTX_CORE_UTIL_H
#define CTX_CORE_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* A growable buffer, always NUL terminated when len > 0 or after append. */
typedef struct ctx_buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;
    size_t cap;
} ctx_buf;

#define CTX_BUF_INIT {NULL, 0, 0}

int ctx_buf_reserve(ctx_buf *b, size_t extra);
int ctx_buf_append(ctx_buf *b, const void *p, size_t n);
int ctx_buf_puts(ctx_buf *b, const char *s);
int ctx_buf_printf(ctx_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ctx_buf_reset(ctx_buf *b);   /* len = 0, keeps memory */
void ctx_buf_free(ctx_buf *b);
/* ctx_buf_steal - returns the data (new, caller frees) and empties b. */
char *ctx_buf_steal(ctx_buf *b);

/*
 * ctx_utf8_valid - 1 if s[0..n) is well-formed UTF-8 (no overlongs, no
 * surrogates, nothing past U+10FFFF), else 0.
 */
int ctx_utf8_valid(const char *s, size_t n);

/*
 * ctx_utf8_repair - append s[0..n) to out with every ill-formed sequence
 * replaced by U+FFFD and NUL bytes dropped. *nbad receives the number of
 * replacements. Returns 0 or CTX_ENOMEM.
 */
int ctx_utf8_repair(const char *s, size_t n, ctx_buf *out, size_t *nbad);

/* ctx_hash_hex - SHA-256 of the parts, as 64 hex chars + NUL into out. */
void ctx_hash_hex(const void *const *parts, const size_t *lens, size_t nparts,
                  char out[65]);

/*
 * ctx_suggest - the candidate closest to word by edit distance, or NULL when
 * none is close enough to be a plausible typo. candidates ends with NULL.
 * Returns a borrowed pointer into candidates.
 */
const char *ctx_suggest(const char *word, const char *const *candidates);

/* ctx_read_file - whole file into *out (new, caller frees); *len its size. */
int ctx_read_file(const char *path, char **out, size_t *len);

/*
 * ctx_iso8601_ms - *ms since the epoch of an ISO 8601 date ("2026-01-02",
 * midnight UTC) or date-time ("2026-01-02T03:04:05", "...05.123Z",
 * "...05+02:00", "...05+0200"; no offset is UTC; 'T' may be a space).
 * Returns 0, or CTX_EINVAL when s is anything else or out of range.
 */
int ctx_iso8601_ms(const char *s, int64_t *ms);

/* ctx_in_sorted - is x among v[0..n), which ascends? (binary search) */
int ctx_in_sorted(const int64_t *v, size_t n, int64_t x);

/* ctx_wipe_free - overwrite a secret string with zeros, then free it (NULL is fine). */
void ctx_wipe_free(char *s);

/* ctx_scrub - overwrite each occurrence of secret in s with '*' (a message
 * that might echo a password or token); an empty or NULL secret does nothing. */
void ctx_scrub(char *s, const char *secret);

/* A growable list of owned strings, reused item after item (ACL values). */
typedef struct ctx_strvec {
    char **v;     /* n strings, each owned */
    size_t n;
    size_t cap;
} ctx_strvec;

#define CTX_STRVEC_INIT {NULL, 0, 0}

/*
 * ctx_strvec_add - append a new string prefix + s[0..len) (prefix may be
 * NULL). Returns 0 or CTX_ENOMEM (the list is unchanged then).
 */
int ctx_strvec_add(ctx_strvec *l, const char *prefix, const char *s, size_t len);
/* ctx_strvec_clear - free the strings, keep the array for reuse. */
void ctx_strvec_clear(ctx_strvec *l);
/* ctx_strvec_free - free everything and reset l to empty. */
void ctx_strvec_free(ctx_strvec *l);

/*
 * ctx_pack - strings and arrays laid out in one allocation, by running the
 * same code twice: first with base NULL, which only adds up used (every
 * call returns NULL), then with base = a block of that many bytes, which
 * copies. Start both passes with the same used (e.g. the size of a header
 * the block begins with). The copies are borrowed from the block.
 */
typedef struct ctx_pack {
    char *base;   /* NULL: measuring */
    size_t used;  /* bytes taken so far */
} ctx_pack;

/* ctx_pack_take - len bytes aligned to align (a power of two), uninitialized. */
void *ctx_pack_take(ctx_pack *k, size_t len, size_t align);
/* ctx_pack_mem - a copy of s[0..len) plus a NUL (s NULL: NULL). */
const char *ctx_pack_mem(ctx_pack *k, const char *s, size_t len);
/* ctx_pack_str - a copy of the string s (NULL: NULL). */
const char *ctx_pack_str(ctx_pack *k, const char *s);
/* ctx_pack_strv - a copy of the n strings of v, each copied (NULL entries stay NULL);
 * NULL when n is 0. */
const char *const *ctx_pack_strv(ctx_pack *k, const char *const *v, size_t n);

/* ctx_mkdir_p - mkdir -p path (0755); 0, or -1 with errno set. */
int ctx_mkdir_p(const char *path);

/*
 * ctx_flock_take - an exclusive flock(2) on path (created if missing),
 * asked for every 20 ms for up to wait_ms (0: once; < 0: until it is had
 * or *cancel is set; cancel may be NULL). *fd receives the descriptor that
 * holds it (ctx_flock_drop), -1 otherwise. Returns CTX_OK, CTX_EBUSY
 * (another holder all along), CTX_ECANCELED or CTX_EIO (errno set). A
 * flock belongs to an open file, so it also keeps two threads of one
 * process apart, and goes with the process that held it.
 */
int ctx_flock_take(const char *path, int wait_ms, volatile sig_atomic_t *cancel, int *fd);
void ctx_flock_drop(int fd);

/*
 * ctx_url_https_or_loopback - 1 when url is https:// to a host, or http://
 * to 127.0.0.1, localhost or [::1] (an optional :port), with no userinfo
 * (user@ in front of the host, which would hide another host from a
 * prefix check); 0 otherwise. For URLs a token's keys come from.
 */
int ctx_url_https_or_loopback(const char *url);

/*
 * ctx_b64_decode - base64 s[0..n) without padding into out (room for
 * n * 3 / 4 + 1 bytes): the URL-safe alphabet ('-', '_'; RFC 4648 section
 * 5, as JOSE uses it) when url, else the standard one ('+', '/'). The
 * length written, or -1 when s is not of that alphabet or has a length no
 * encoding gives.
 */
long ctx_b64_decode(const char *s, size_t n, int url, unsigned char *out);

#endif
