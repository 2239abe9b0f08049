/*
 * schedule.c - intervals and cron expressions (see schedule.h).
 */
#include "schedule.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char help[] =
    "use an interval like \"15m\", \"1h30m\" or \"@every 90s\", or a cron expression"
    " (UTC) like \"*/10 * * * *\" or \"@daily\"";

/* parse_duration - "1h30m", "90s", "250ms", "2d"; at least one second. */
static int parse_duration(const char *p, int64_t *ms)
{
    int64_t total = 0;

    if (!*p)
        return -1;
    while (*p) {
        int64_t n = 0, unit;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p)) {
            n = n * 10 + (*p++ - '0');
            if (n > 100000000)
                return -1;
        }
        if (!strncmp(p, "ms", 2))
            unit = 1, p += 2;
        else if (*p == 's')
            unit = 1000, p++;
        else if (*p == 'm')
            unit = 60000, p++;
        else if (*p == 'h')
            unit = 3600000, p++;
        else if (*p == 'd')
            unit = 86400000, p++;
        else
            return -1;
        total += n * unit;
    }
    if (total < 1000)
        return -1;
    *ms = total;
    return 0;
}

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* parse_value - a number or, for months and weekdays, a three-letter name. */
static const char *parse_value(const char *p, int field, int *v)
{
    if (isdigit((unsigned char)*p)) {
        *v = 0;
        while (isdigit((unsigned char)*p) && *v < 1000)
            *v = *v * 10 + (*p++ - '0');
        return p;
    }
    for (int i = 0; field == 3 && i < 12; i++)
        if (!strncasecmp(p, month_names[i], 3)) {
            *v = i + 1;
            return p + 3;
        }
    for (int i = 0; field == 4 && i < 7; i++)
        if (!strncasecmp(p, dow_names[i], 3)) {
            *v = i;
            return p + 3;
        }
    return NULL;
}

/*
 * parse_field - one cron field ("*", "5", "1-5", "*\/15", "0,30", "mon-fri")
 * into bits lo..hi of *bits. Returns 0, or -1 when malformed.
 */
static int parse_field(const char *f, size_t len, int field, int lo, int hi, uint64_t *bits,
                       int *any)
{
    char buf[64];
    char *item, *save = NULL;

    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, f, len);
    buf[len] = '\0';
    if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,"))
        return -1;
    *bits = 0;
    *any = buf[0] == '*'; /* as Vixie cron: "*" and "*\/n" leave the day rule alone */
    for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        int a = lo, b = hi, step = 1;
        const char *p = item;
        if (*p == '*') {
            p++;
        } else {
            if (!(p = parse_value(p, field, &a)))
                return -1;
            b = a;
            if (*p == '-' && !(p = parse_value(p + 1, field, &b)))
                return -1;
        }
        if (*p == '/') {
            if (!(p = parse_value(p + 1, 0, &step)) || step < 1)
                return -1;
            if (item[0] != '*' && b == a)
                b = hi; /* "5/15": from 5 on */
        }
        if (*p)
            return -1;
        if (field == 4 && b == 7) { /* 7 is Sunday too */
            *bits |= 1;
            if (a == 7)
                a = b = 0;
            else
                b = 6;
        }
        if (a < lo || b > hi || a > b)
            return -1;
        for (int v = a; v <= b; v += step)
            *bits |= (uint64_t)1 << v;
    }
    return *bits ? 0 : -1;
}

int sched_parse(const char *expr, const char *what, sched_spec *out, ctx_error *err)
{
    static const struct {
        const char *name, *cron;
    } macros[] = {
        {"@hourly", "0 * * * *"}, {"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"},
        {"@weekly", "0 0 * * 0"}, {"@monthly", "0 0 1 * *"},
    };
    static const struct {
        int lo, hi;
        const char *name;
    } fields[] = {{0, 59, "minute"}, {0, 23, "hour"}, {1, 31, "day of month"},
                  {1, 12, "month"},  {0, 7, "day of week"}};
    const char *p = expr;
    uint64_t bits[5];
    int any[5];

    memset(out, 0, sizeof *out);
    if (!expr || !*expr)
        return ctx_error_set(err, CTX_ECONFIG, "%s: empty schedule; %s", what, help);
    if (!strncmp(p, "@every ", 7))
        p += 7;
    if (!parse_duration(p, &out->every_ms))
        return CTX_OK;
    if (p != expr)
        return ctx_error_set(err, CTX_ECONFIG, "%s: \"%s\" is not an interval of at least"
                             " one second; %s", what, expr, help);
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
        if (!strcmp(expr, macros[i].name))
            p = macros[i].cron;
    for (int f = 0; f < 5; f++) {
        const char *start;
        while (*p == ' ' || *p == '\t')
            p++;
        start = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (p == start)
            return ctx_error_set(err, CTX_ECONFIG, "%s: \"%s\" has %d fields, cron needs 5"
                                 " (minute hour day-of-month month day-of-week); %s",
                                 what, expr, f, help);
        if (parse_field(start, (size_t)(p - start), f, fields[f].lo, fields[f].hi, &bits[f],
                        &any[f]))
            return ctx_error_set(err, CTX_ECONFIG, "%s: \"%s\": bad %s field \"%.*s\" (allowed"
                                 " %d-%d, *, lists, ranges and /steps); %s", what, expr,
                                 fields[f].name, (int)(p - start), start, fields[f].lo,
                                 fields[f].hi, help);
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return ctx_error_set(err, CTX_ECONFIG, "%s: \"%s\" has more than 5 fields; %s", what,
                             expr, help);
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    out->dow = (uint8_t)bits[4];
    out->dom_any = any[2];
    out->dow_any = any[4];
    return CTX_OK;
}

static int day_ok(const sched_spec *s, const struct tm *tm)
{
    int dom = (int)(s->dom >> tm->tm_mday & 1), dow = s->dow >> tm->tm_wday & 1;
    if (!(s->month >> (tm->tm_mon + 1) & 1))
        return 0;
    /* cron: with both day fields restricted, either one will do */
    if (s->dom_any || s->dow_any)
        return (s->dom_any || dom) && (s->dow_any || dow);
    return dom || dow;
}

int64_t sched_next(const sched_spec *s, int64_t after)
{
    time_t secs;
    struct tm tm;

    if (s->every_ms > 0)
        return after + s->every_ms;
    secs = (time_t)((after / 60000 + 1) * 60);
    gmtime_r(&secs, &tm);
    /* Five years cover every leap-day and weekday combination. */
    for (int day = 0; day < 366 * 5; day++) {
        if (day_ok(s, &tm))
            for (int h = tm.tm_hour; h < 24; h++) {
                if (!(s->hour >> h & 1))
                    continue;
                for (int m = h == tm.tm_hour ? tm.tm_min : 0; m < 60; m++)
                    if (s->minute >> m & 1) {
                        tm.tm_hour = h;
                        tm.tm_min = m;
                        tm.tm_sec = 0;
                        return (int64_t)timegm(&tm) * 1000;
                    }
            }
        tm.tm_mday++;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        secs = timegm(&tm);
        gmtime_r(&secs, &tm);
    }
    return -1;
}

int sched_check(const char *expr, const char *what, ctx_error *err)
{
    sched_spec spec;
    int rc = sched_parse(expr, what, &spec, err);

    if (!rc && sched_next(&spec, 0) < 0)
        return ctx_error_set(err, CTX_ECONFIG, "%s: \"%s\" matches no date, so the job would"
                             " never run; %s", what, expr, help);
    return rc;
}

int sched_interval(const char *expr, const char *what, const char *example, int off_ok,
                   int64_t *ms, ctx_error *err)
{
    const char *p = expr ? expr : "";

    *ms = 0;
    if (off_ok && !strcmp(p, "off")) {
        *ms = -1;
        return CTX_OK;
    }
    if (!strncmp(p, "@every ", 7))
        p += 7;
    if (parse_duration(p, ms))
        return ctx_error_set(err, CTX_ECONFIG, "%s: \"%s\" is not an interval; use one like"
                             " %s (s, m, h, d: seconds to days)%s", what, expr ? expr : "",
                             example, off_ok ? ", or \"off\"" : "");
    return CTX_OK;
}

int64_t sched_jitter(const char *key, int64_t max_ms)
{
    uint64_t h = 1469598103934665603ull;

    if (max_ms <= 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (int64_t)(h % (uint64_t)max_ms);
}
