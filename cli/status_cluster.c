/*
 * status_cluster.c - the cluster part of `ctxgate status` as text (see
 * status_cluster.h).
 */
#include "status_cluster.h"

#include <stdio.h>

/* span - ms as "4.2s", "12m05s" or "3h20m" (absolute value) into buf. */
static const char *span(int64_t ms, char *buf, size_t len)
{
    int64_t s = (ms < 0 ? -ms : ms) / 1000;

    if (s < 60)
        snprintf(buf, len, "%.1fs", (double)(ms < 0 ? -ms : ms) / 1000.0);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
    return buf;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int64_t num(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void print_job(const json_t *j, int64_t db_now)
{
    char a[32], b[32];
    int64_t due = num(j, "due_in_ms");
    const char *last = str(j, "last_status"), *error = str(j, "last_error");

    printf("  job %s/%s:", str(j, "source"), str(j, "kind"));
    if (json_is_true(json_object_get(j, "leased")))
        printf(" running: leased by %s for %s more;", str(j, "lease_owner"),
               span(num(j, "lease_until") - db_now, a, sizeof a));
    else if (due <= 0)
        printf(" due (%s ago);", span(due, a, sizeof a));
    else
        printf(" due in %s;", span(due, a, sizeof a));
    if (last && json_is_integer(json_object_get(j, "last_end")))
        printf(" last %s, ended %s ago%s%s;", last,
               span(db_now - num(j, "last_end"), b, sizeof b), error ? ": " : "",
               error ? error : "");
    else
        printf(" never ended;");
    printf(" %lld runs\n", (long long)num(j, "runs"));
}

static void print_slot(const json_t *s)
{
    const json_t *behind = json_object_get(s, "bytes_behind");

    printf("  replica %s (slot %s): %s, ", str(s, "replica"), str(s, "slot"),
           json_is_true(json_object_get(s, "active")) ? "reading now" : "not reading now");
    if (json_is_integer(behind))
        printf("%lld bytes of WAL behind (confirmed %s, WAL at %s)",
               (long long)json_integer_value(behind), str(s, "confirmed_flush_lsn"),
               str(s, "wal_lsn"));
    else
        printf("no confirmed position yet");
    printf(", WAL %s, %lld bytes kept for it\n",
           str(s, "wal_status") ? str(s, "wal_status") : "unknown",
           (long long)num(s, "retained_bytes"));
}

int cli_status_cluster_print(const json_t *r)
{
    const json_t *c = json_object_get(r, "cluster"), *o, *mine;
    size_t i;
    int64_t db_now;

    if (!c)
        return 0;
    if (str(c, "error")) {
        printf("cluster: PostgreSQL could not be read: %s\n", str(c, "error"));
        return 1;
    }
    db_now = num(c, "database_now");
    printf("cluster: schema version %lld, %zu jobs, %zu replica slots\n",
           (long long)num(c, "schema_version"), json_array_size(json_object_get(c, "jobs")),
           json_array_size(json_object_get(c, "replicas")));
    json_array_foreach(json_object_get(r, "sources"), i, o)
        if (str(o, "last_run_worker"))
            printf("  source %s: last run %s (%s) by %s\n", str(o, "source"),
                   str(o, "last_run"), str(o, "last_run_mode"), str(o, "last_run_worker"));
    json_array_foreach(json_object_get(c, "jobs"), i, o)
        print_job(o, db_now);
    json_array_foreach(json_object_get(c, "replicas"), i, o)
        print_slot(o);
    if ((mine = json_object_get(c, "this_replica")))
        printf("  this data_dir is replica %s: applied up to %s\n", str(mine, "replica"),
               str(mine, "lsn") ? str(mine, "lsn") : "nothing yet (no first copy)");
    return 0;
}
