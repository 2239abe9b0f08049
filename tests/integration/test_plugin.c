/*
 * test_plugin.c - connectors built as .so and loaded like a user's plugin:
 * ABI and struct size are checked before anything else is touched; a
 * failing read keeps exactly what was committed up to its last STATE, and
 * the next run resumes from there.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/registry.h"
#include "tests/lib/testutil.h"

static char *dir;
static ctx_store *st;

static void setup(void)
{
    dir = tu_tmpdir("plugin");
    st = tu_store(dir);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(plugin, .init = setup, .fini = teardown);

static int sync_plugin(const char *so, const char *extra, store_run_stats *s, ctx_error *err)
{
    char src[4096];
    snprintf(src, sizeof src, "{\"name\":\"c\",\"type\":\"plugin\",\"plugin\":\"%s/tests/plugins/%s\"%s%s}",
             tu_build_dir(), so, *extra ? "," : "", extra);
    return tu_sync(st, src, 0, s, err);
}

Test(plugin, loads_and_syncs)
{
    store_run_stats s;
    ctx_error err;
    cr_assert_eq(sync_plugin("counter.so", "\"count\": 35", &s, &err), 0, "%s", err.text);
    cr_assert_eq(s.records, 35);
    cr_assert_eq(s.states, 4);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents"), 35);
    char *t = tu_search_titles(st, "nobody@x", "counter");
    cr_assert_str_eq(t, "", "an unknown user sees nothing, even what everyone may see");
    free(t);
}

Test(plugin, abi_mismatches_are_refused)
{
    store_run_stats s;
    ctx_error err;
    cr_assert_eq(sync_plugin("counter_abi99.so", "", &s, &err), CTX_EABI);
    cr_assert(strstr(err.text, "built for connector ABI 99"), "%s", err.text);
    cr_assert(strstr(err.text, "sources[0]"), "%s", err.text);
    cr_assert_eq(sync_plugin("counter_short.so", "", &s, &err), CTX_EABI);
    cr_assert(strstr(err.text, "struct_size 16"), "%s", err.text);
    cr_assert_eq(sync_plugin("no_entry.so", "", &s, &err), CTX_EABI);
    cr_assert(strstr(err.text, "no symbol ctx_connector_entry"), "%s", err.text);
    cr_assert_eq(sync_plugin("missing.so", "", &s, &err), CTX_EABI);
    cr_assert(strstr(err.text, "cannot load"), "%s", err.text);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents"), 0);
}

Test(plugin, failure_keeps_last_checkpoint_and_resumes)
{
    store_run_stats s;
    ctx_error err;
    cr_assert_eq(sync_plugin("counter.so", "\"count\": 100, \"fail_after\": 25", &s, &err),
                 CTX_ESOURCE);
    cr_assert(strstr(err.text, "told to fail after 25"), "%s", err.text);
    /* 25 emitted, checkpoints at 10 and 20: the 5 after are rolled back. */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents"), 20);
    cr_assert_eq(tu_count(st, "SELECT json_extract(state, '$.n') FROM sync_state"), 20);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs WHERE status = 'failed'"
                              " AND error LIKE '%told to fail%'"), 1);
    cr_assert_eq(sync_plugin("counter.so", "\"count\": 100", &s, &err), 0, "%s", err.text);
    cr_assert_eq(s.records, 80);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents"), 100);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks"), 100);
}

Test(plugin, message_for_another_stream_fails_the_run)
{
    store_run_stats s;
    ctx_error err;
    cr_assert_eq(sync_plugin("counter.so", "\"wrong_stream\": 1", &s, &err), CTX_EINVAL);
    cr_assert(strstr(err.text, "RECORD for stream \"other\" while reading \"items\""), "%s",
              err.text);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents"), 0);
}

Test(plugin, builtins_pass_the_same_abi_check)
{
    ctx_error err;
    for (const char *const *n = registry_builtin_names(); *n; n++)
        cr_assert_eq(registry_check_abi(registry_builtin(*n), *n, &err), 0, "%s", err.text);
}
