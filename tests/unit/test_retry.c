/*
 * test_retry.c - core/retry.c: which statuses are retried, Retry-After as
 * seconds or an HTTP-date (past dates wait nothing, garbage is absent),
 * and a backoff that doubles to its cap with its jitter inside [step/2, step].
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "core/retry.h"

Test(retry, statuses)
{
    static const long yes[] = {429, 500, 502, 503, 504};
    static const long no[] = {200, 301, 400, 401, 403, 404, 409, 501, 505};

    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        cr_assert(ctx_retry_status(yes[i]), "%ld", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        cr_assert(!ctx_retry_status(no[i]), "%ld", no[i]);
}

Test(retry, retry_after_seconds_and_dates)
{
    /* 2026-10-21 07:28:00 UTC */
    const int64_t at = INT64_C(1792567680) * 1000;

    cr_assert_eq(ctx_retry_after_ms("120", at), 120000);
    cr_assert_eq(ctx_retry_after_ms(" 0\r\n", at), 0);
    cr_assert_eq(ctx_retry_after_ms("Wed, 21 Oct 2026 07:28:30 GMT", at), 30000);
    cr_assert_eq(ctx_retry_after_ms(" Wed, 21 Oct 2026 07:30:00 GMT\r\n", at - 500), 120500);
    cr_assert_eq(ctx_retry_after_ms("Wed, 21 Oct 2026 07:00:00 GMT", at), 0, "a date past");
    /* the obsolete forms HTTP allows a recipient to read */
    cr_assert_eq(ctx_retry_after_ms("Wednesday, 21-Oct-26 07:28:10 GMT", at), 10000);
    cr_assert_eq(ctx_retry_after_ms("Wed Oct 21 07:28:20 2026", at), 20000);
    cr_assert_eq(ctx_retry_after_ms(NULL, at), -1);
    cr_assert_eq(ctx_retry_after_ms("", at), -1);
    cr_assert_eq(ctx_retry_after_ms("soon", at), -1);
    cr_assert_eq(ctx_retry_after_ms("12s", at), -1);
    cr_assert_eq(ctx_retry_after_ms("-5", at), -1);
}

Test(retry, backoff_doubles_to_its_cap_with_jitter)
{
    ctx_backoff b;
    int64_t step = 100;

    ctx_backoff_init(&b, 100, 1000, 42);
    for (int i = 0; i < 12; i++) {
        int64_t d = ctx_backoff_next(&b);
        cr_assert(d >= step / 2 && d <= step, "attempt %d: %lld not in [%lld, %lld]", i,
                  (long long)d, (long long)step / 2, (long long)step);
        step = step * 2 > 1000 ? 1000 : step * 2;
    }
    ctx_backoff_init(&b, 0, 0, 7);
    cr_assert_eq(ctx_backoff_next(&b), 0);
}
