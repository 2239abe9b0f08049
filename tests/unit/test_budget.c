/*
 * test_budget.c - which budgets limit a caller and when one is spent, over
 * the counts of a real audit log file, at fixed times (budget.h).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "indexer/store.h"
#include "retrieval/budget.h"
#include "tests/lib/testutil.h"

#define HOUR 3600000LL
#define DAY (24 * HOUR)
/* 2026-03-04 10:30 UTC */
#define NOW (1772620200000LL)

static char *dir;
static ctx_store *log_;
static ctx_config cfg;

static void setup(void)
{
    static const char text[] =
        "{\"sources\": [], \"agents\": [{\"name\": \"h\", \"sources\": \"*\"},"
        " {\"name\": \"g\", \"sources\": \"*\"}],"
        " \"budgets\": [{\"user\": \"ann\", \"tokens\": 100, \"per\": \"hour\"},"
        "  {\"user\": \"*\", \"tokens\": 1000, \"per\": \"day\"},"
        "  {\"agent\": \"h\", \"tokens\": 500, \"per\": \"day\"}]}";
    char path[4096];
    ctx_error err;
    json_t *root = json_loads(text, 0, NULL);

    dir = tu_tmpdir("budget");
    memset(&cfg, 0, sizeof cfg);
    cr_assert_eq(ctx_config_parse(root, dir, &cfg, &err), CTX_OK, "%s", err.text);
    json_decref(root);
    snprintf(path, sizeof path, "%s/ctxgate.db", dir);
    cr_assert_eq(store_audit_open(path, &log_, &err), CTX_OK, "%s", err.text);
}

static void teardown(void)
{
    store_close(log_);
    ctx_config_free(&cfg);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(budget, .init = setup, .fini = teardown);

static void served(int kind, const char *name, int64_t span, int64_t at, int64_t tokens)
{
    ctx_error err;
    cr_assert_eq(store_usage_add(log_, kind, name, span, at - at % span, tokens, &err), CTX_OK,
                 "%s", err.text);
}

static int64_t extra;
static int64_t pending(void *arg, int kind, const char *name)
{
    (void)arg;
    return kind == BUDGET_USER && !strcmp(name, "bob") ? extra : 0;
}

Test(budget, a_named_budget_replaces_the_star_one_and_resets_with_its_window)
{
    ctx_error err;
    int64_t reset;

    cr_assert_eq(budget_spans(&cfg, BUDGET_USER), 3u); /* an hour and a day */
    cr_assert_eq(budget_spans(&cfg, BUDGET_AGENT), 2u);
    served(BUDGET_USER, "ann", HOUR, NOW, 99);
    cr_assert_eq(budget_check(log_, &cfg, "ann", "h", NOW, NULL, NULL, &reset, &err), CTX_OK);
    served(BUDGET_USER, "ann", HOUR, NOW, 1);
    cr_assert_eq(budget_check(log_, &cfg, "ann", "h", NOW, NULL, NULL, &reset, &err),
                 CTX_ELIMIT);
    cr_assert(strstr(err.text, "budgets[0] (user \"ann\": 100 tokens per hour) has served 100"
                               " tokens to user \"ann\"; it resets at 2026-03-04T11:00:00Z"
                               " (in 1800 s)"), "%s", err.text);
    cr_assert_eq(reset, NOW - NOW % HOUR + HOUR);
    /* The next hour is a new window. */
    cr_assert_eq(budget_check(log_, &cfg, "ann", "h", NOW + HOUR, NULL, NULL, &reset, &err),
                 CTX_OK);
    /* ann's own budget replaces "*": a day's 2000 is not hers to spend. */
    served(BUDGET_USER, "ann", DAY, NOW, 2000);
    cr_assert_eq(budget_check(log_, &cfg, "ann", NULL, NOW + HOUR, NULL, NULL, NULL, &err),
                 CTX_OK);
}

Test(budget, the_star_budget_counts_each_user_apart_and_pending_tokens_count)
{
    ctx_error err;

    served(BUDGET_USER, "bob", DAY, NOW, 999);
    cr_assert_eq(budget_check(log_, &cfg, "bob", "g", NOW, pending, NULL, NULL, &err), CTX_OK);
    extra = 1; /* served, still in the writer's queue */
    cr_assert_eq(budget_check(log_, &cfg, "bob", "g", NOW, pending, NULL, NULL, &err),
                 CTX_ELIMIT);
    cr_assert(strstr(err.text, "budgets[1] (user \"*\": 1000 tokens per day) has served 1000"
                               " tokens to user \"bob\""), "%s", err.text);
    extra = 0;
    cr_assert_eq(budget_check(log_, &cfg, "cid", "g", NOW, pending, NULL, NULL, &err), CTX_OK);
}

Test(budget, an_agent_budget_stops_every_user_of_it_and_status_shows_all)
{
    ctx_error err;
    json_t *st, *e;
    size_t i;
    int seen = 0;

    served(BUDGET_AGENT, "h", DAY, NOW, 500);
    cr_assert_eq(budget_check(log_, &cfg, "cid", "h", NOW, NULL, NULL, NULL, &err), CTX_ELIMIT);
    cr_assert(strstr(err.text, "budgets[2] (agent \"h\": 500 tokens per day)"), "%s", err.text);
    cr_assert_eq(budget_check(log_, &cfg, "cid", "g", NOW, NULL, NULL, NULL, &err), CTX_OK);
    served(BUDGET_USER, "bob", DAY, NOW, 10);
    cr_assert_eq(budget_status(log_, &cfg, NOW, NULL, NULL, &st, &err), CTX_OK, "%s", err.text);
    json_array_foreach(st, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        json_int_t b = json_integer_value(json_object_get(e, "budget"));
        if (b == 2) {
            cr_assert_str_eq(name, "h");
            cr_assert_eq(json_integer_value(json_object_get(e, "remaining")), 0);
            cr_assert_str_eq(json_string_value(json_object_get(e, "resets_at_iso")),
                             "2026-03-05T00:00:00Z");
            seen |= 1;
        } else if (b == 1) {
            cr_assert_str_eq(name, "bob"); /* ann has her own */
            cr_assert_eq(json_integer_value(json_object_get(e, "used")), 10);
            seen |= 2;
        } else {
            cr_assert_str_eq(name, "ann");
            cr_assert_eq(json_integer_value(json_object_get(e, "used")), 0);
            seen |= 4;
        }
    }
    cr_assert_eq(seen, 7, "%s", json_dumps(st, 0));
    json_decref(st);
}
