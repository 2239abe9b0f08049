/*
 * test_schedule.c - intervals, cron expressions and their next times,
 * computed from fixed instants (no clock is read).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "core/schedule.h"

/* ms since the epoch of a UTC date and time */
static int64_t at(int y, int mo, int d, int h, int mi)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (int64_t)timegm(&tm) * 1000;
}

static int64_t next_of(const char *expr, int64_t after)
{
    sched_spec s;
    ctx_error err;
    cr_assert_eq(sched_parse(expr, "schedule", &s, &err), CTX_OK, "%s: %s", expr, err.text);
    return sched_next(&s, after);
}

Test(schedule, intervals)
{
    int64_t t = at(2026, 11, 25, 10, 0) + 1234;
    cr_assert_eq(next_of("15m", t), t + 15 * 60000);
    cr_assert_eq(next_of("1h30m", t), t + 90 * 60000);
    cr_assert_eq(next_of("@every 90s", t), t + 90000);
    cr_assert_eq(next_of("2d", t), t + 2 * 86400000LL);
}

Test(schedule, cron_times)
{
    /* Wednesday 2026-11-25 10:07 UTC */
    int64_t t = at(2026, 11, 25, 10, 7);
    cr_assert_eq(next_of("*/10 * * * *", t), at(2026, 11, 25, 10, 10));
    cr_assert_eq(next_of("*/10 * * * *", at(2026, 11, 25, 10, 10)), at(2026, 11, 25, 10, 20));
    cr_assert_eq(next_of("0 3 * * *", t), at(2026, 11, 26, 3, 0));
    cr_assert_eq(next_of("@hourly", t), at(2026, 11, 25, 11, 0));
    cr_assert_eq(next_of("@daily", t), at(2026, 11, 26, 0, 0));
    /* Weekdays: from Friday evening to Monday morning. */
    cr_assert_eq(next_of("0 9 * * mon-fri", at(2026, 11, 27, 18, 0)), at(2026, 11, 30, 9, 0));
    cr_assert_eq(next_of("0,30 8-18 * * 1-5", at(2026, 11, 25, 18, 30)),
                 at(2026, 11, 26, 8, 0));
    /* Sunday is 0 and 7. */
    cr_assert_eq(next_of("0 0 * * 7", t), at(2026, 11, 29, 0, 0));
    cr_assert_eq(next_of("@weekly", t), at(2026, 11, 29, 0, 0));
    /* Month rollover, year rollover, leap day. */
    cr_assert_eq(next_of("0 0 1 * *", t), at(2026, 12, 1, 0, 0));
    cr_assert_eq(next_of("30 23 31 dec *", t), at(2026, 12, 31, 23, 30));
    cr_assert_eq(next_of("0 12 29 2 *", t), at(2028, 2, 29, 12, 0));
    /* Both day fields restricted: either matches (the 1st, or a Monday). */
    cr_assert_eq(next_of("0 0 1 * mon", t), at(2026, 11, 30, 0, 0));
    /* Never: February 31st. */
    cr_assert_eq(next_of("0 0 31 2 *", t), -1);
}

Test(schedule, bad_expressions_name_the_problem)
{
    static const char *const bad[] = {
        "", "15", "0s", "10x", "@every", "@every soon", "* * * *", "* * * * * *",
        "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *",
        "5-1 * * * *", "a * * * *", "1,,2 * * * *",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sched_spec s;
        ctx_error err;
        cr_assert_eq(sched_parse(bad[i], "sources[0].schedule.sync", &s, &err), CTX_ECONFIG,
                     "\"%s\" was accepted", bad[i]);
        cr_assert(strstr(err.text, "sources[0].schedule.sync"), "%s", err.text);
        cr_assert(strstr(err.text, "15m"), "no example in: %s", err.text);
    }
}

Test(schedule, jitter_is_stable_and_bounded)
{
    int64_t a = sched_jitter("source-a/sync", 60000), b = sched_jitter("source-b/sync", 60000);
    cr_assert_eq(a, sched_jitter("source-a/sync", 60000));
    cr_assert(a >= 0 && a < 60000 && b >= 0 && b < 60000);
    cr_assert_neq(a, b);
    cr_assert_eq(sched_jitter("x", 0), 0);
}
