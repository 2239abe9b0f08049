/*
 * test_connector_spec.c - `ctxgate connector spec` answers with no config
 * file anywhere: a setup UI asks what a connector takes before any config
 * exists. The other subcommands still need one.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/lib/testutil.h"

static char *dir;

static char build[4096]; /* the build dir, absolute: the commands run elsewhere */

static void setup(void)
{
    dir = tu_tmpdir("spec");
    cr_assert_not_null(realpath(tu_build_dir(), build), "%s", tu_build_dir());
}

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

TestSuite(connector_spec, .init = setup, .fini = teardown, .timeout = 60);

/* ctxgate ARGS run in the empty dir (no ctxgate.json there): stdout and
 * stderr together (new), *status the exit status. */
static char *in_empty_dir(const char *args, int *status)
{
    char cmd[8192], buf[4096], *out = NULL;
    size_t n, len = 0;
    FILE *p, *m = open_memstream(&out, &len);
    struct stat sb;
    int st;

    snprintf(buf, sizeof buf, "%s/ctxgate.json", dir);
    cr_assert_neq(stat(buf, &sb), 0, "the test dir must hold no config");
    snprintf(cmd, sizeof cmd, "cd %s && %s/ctxgate %s 2>&1", dir, build, args);
    cr_assert_not_null(p = popen(cmd, "r"));
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        fwrite(buf, 1, n, m);
    st = pclose(p);
    fclose(m);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

/* spec_of - the one SPEC line's "spec" object (new). */
static json_t *spec_of(const char *out)
{
    json_error_t jerr;
    json_t *line = json_loads(out, 0, &jerr), *spec;

    cr_assert_not_null(line, "not one JSON line: %s (%s)", out, jerr.text);
    cr_assert_str_eq(json_string_value(json_object_get(line, "type")), "SPEC", "%s", out);
    spec = json_incref(json_object_get(line, "spec"));
    json_decref(line);
    cr_assert(json_is_object(spec), "%s", out);
    return spec;
}

Test(connector_spec, plugin_spec_needs_no_config)
{
    char args[4400];
    int status;
    char *out;
    json_t *spec;

    snprintf(args, sizeof args, "connector spec --plugin %s/tests/plugins/counter.so",
             build);
    out = in_empty_dir(args, &status);
    cr_assert_eq(status, 0, "%s", out);
    spec = spec_of(out);
    cr_assert(json_object_get(spec, "properties"), "%s", out);
    json_decref(spec);
    free(out);
}

Test(connector_spec, builtin_spec_needs_no_config)
{
    int status;
    char *out = in_empty_dir("connector spec --type rest", &status);
    json_t *spec;

    cr_assert_eq(status, 0, "%s", out);
    spec = spec_of(out);
    cr_assert(json_object_get(json_object_get(spec, "properties"), "base_url"), "%s", out);
    json_decref(spec);
    free(out);
}

Test(connector_spec, unknown_type_and_missing_plugin_are_named)
{
    int status;
    char *out = in_empty_dir("connector spec --type nope", &status);

    cr_assert_eq(status, 2, "%s", out);
    cr_assert(strstr(out, "--type nope: no such built-in connector; use one of exec, files,"),
              "%s", out);
    cr_assert(strstr(out, "rest"), "%s", out);
    free(out);
    out = in_empty_dir("connector spec --plugin ./absent.so", &status);
    cr_assert_neq(status, 0, "%s", out);
    cr_assert(strstr(out, "absent.so"), "%s", out);
    free(out);
}

Test(connector_spec, check_still_needs_a_config)
{
    char args[4400];
    int status;
    char *out;

    snprintf(args, sizeof args, "connector check --plugin %s/tests/plugins/counter.so",
             build);
    out = in_empty_dir(args, &status);
    cr_assert_eq(status, 2, "%s", out);
    cr_assert(strstr(out, "ctxgate.json"), "%s", out);
    free(out);
}
