/*
 * schedule.h - when a job runs next. A schedule is an interval ("15m",
 * "1h30m", "@every 90s") or a five-field cron expression in UTC
 * ("*\/10 * * * *", "0 3 * * 1-5", "0,30 8-18 * * mon-fri", "@hourly",
 * "@daily", "@weekly").
 * Times are milliseconds since the epoch; nothing here reads a clock.
 */
#ifndef CTX_CORE_SCHEDULE_H
#define CTX_CORE_SCHEDULE_H

#include <stdint.h>

#include "ctx.h"

typedef struct sched_spec {
    int64_t every_ms;      /* > 0: an interval; then the cron fields are unused */
    uint64_t minute;       /* bit m: minute m (0..59) */
    uint32_t hour;         /* bit h (0..23) */
    uint32_t dom;          /* bit d (1..31) */
    uint16_t month;        /* bit m (1..12) */
    uint8_t dow;           /* bit d (0..6, Sunday 0) */
    int dom_any, dow_any;  /* the field was "*": cron's day rule needs to know */
} sched_spec;

/*
 * sched_parse - expr into *out. On error, err names what is wrong and how a
 * valid one looks; what prefixes the message (a config path).
 */
int sched_parse(const char *expr, const char *what, sched_spec *out, ctx_error *err);

/*
 * sched_check - expr is a schedule that ever comes: sched_parse's errors,
 * and a cron expression no date matches ("0 0 31 2 *") is one too. What
 * every command checks at config load (config_check.c).
 */
int sched_check(const char *expr, const char *what, ctx_error *err);

/*
 * sched_interval - expr as an interval ("30s", "90d", "@every 1h") into
 * *ms; "off" gives -1 when off_ok. Anything else is an error naming what
 * and showing example.
 */
int sched_interval(const char *expr, const char *what, const char *example, int off_ok,
                   int64_t *ms, ctx_error *err);

/*
 * sched_next - the first time strictly after `after` when the job is due.
 * An interval counts from `after` (the last run's start). -1 if a cron
 * expression never matches (e.g. "0 0 31 2 *").
 */
int64_t sched_next(const sched_spec *s, int64_t after);

/*
 * sched_jitter - a deterministic delay in [0, max_ms) for job `key`, so many
 * sources on one schedule do not all start in the same second.
 */
int64_t sched_jitter(const char *key, int64_t max_ms);

#endif
