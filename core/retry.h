/*
 * retry.h - when an HTTP client of ours asks again: which answers are worth
 * another attempt, how long a server's Retry-After asks to wait (seconds or
 * an HTTP-date, RFC 9110 10.2.3), and an exponential backoff with jitter
 * when it says nothing. Shared by the REST connector and the embedder.
 */
#ifndef CTX_CORE_RETRY_H
#define CTX_CORE_RETRY_H

#include <stdint.h>

/* ctx_retry_status - 1 for the statuses that pass by themselves: 429, 500, 502, 503, 504. */
int ctx_retry_status(long status);

/*
 * ctx_retry_after_ms - the wait a Retry-After header value asks for, in ms
 * from now_ms: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2026
 * 07:28:00 GMT"; a date past is 0). -1 when value is NULL, empty or
 * neither. Surrounding blanks are ignored.
 */
int64_t ctx_retry_after_ms(const char *value, int64_t now_ms);

/* An exponential backoff: base_ms doubling up to max_ms. */
typedef struct ctx_backoff {
    int64_t next_ms;            /* the next delay before jitter; set to base_ms */
    int64_t max_ms;
    uint64_t rand;              /* xorshift state, any non-zero seed */
} ctx_backoff;

void ctx_backoff_init(ctx_backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed);

/*
 * ctx_backoff_next - the next delay: half the current step plus a random
 * half (so many clients' retries spread), then the step doubles (to max).
 */
int64_t ctx_backoff_next(ctx_backoff *b);

#endif
