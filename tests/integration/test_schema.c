/*
 * test_schema.c - schemas/config.schema.json is what `ctxgate schema`
 * prints (so it cannot drift from the option tables), and real configs
 * validate against it while broken ones do not.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/lib/testutil.h"

static json_t *run_json(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    json_error_t jerr;
    json_t *j;
    cr_assert_not_null(p);
    j = json_loadf(p, 0, &jerr);
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
    cr_assert_not_null(j, "%s: %s", cmd, jerr.text);
    return j;
}

Test(schema, committed_schema_matches_the_code)
{
    char cmd[4200];
    json_error_t jerr;
    json_t *printed, *committed;

    snprintf(cmd, sizeof cmd, "%s/ctxgate schema", tu_build_dir());
    printed = run_json(cmd);
    committed = json_load_file("schemas/config.schema.json", 0, &jerr);
    cr_assert_not_null(committed, "%s", jerr.text);
    cr_assert(json_equal(printed, committed),
              "schemas/config.schema.json is stale: regenerate it with `ctxgate schema`");
    json_decref(printed);
    json_decref(committed);
}

static int validate(const char *file)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/validate-json.py"
             " schemas/config.schema.json %s", file);
    return system(cmd);
}

Test(schema, configs_validate)
{
    char *dir = tu_tmpdir("schema"), path[4200];

    cr_assert_eq(validate("examples/ctxgate.json"), 0);
    tu_write(dir, "pg.json",
             "{\"sources\":[{\"name\":\"crm\",\"type\":\"postgres\",\"conninfo\":\"host=x\","
             "\"streams\":[{\"name\":\"t\",\"table\":\"t\",\"id\":\"id\",\"body\":[\"a\",\"b\"]}]},"
             "{\"name\":\"p\",\"type\":\"plugin\",\"plugin\":\"x.so\",\"anything\":1}]}");
    snprintf(path, sizeof path, "%s/pg.json", dir);
    cr_assert_eq(validate(path), 0);
    tu_write(dir, "bad.json",
             "{\"sources\":[{\"name\":\"crm\",\"type\":\"postgres\",\"conninfo\":\"host=x\","
             "\"streams\":[{\"name\":\"t\",\"tabel\":\"t\",\"id\":\"id\"}]}]}");
    snprintf(path, sizeof path, "%s/bad.json", dir);
    cr_assert_neq(validate(path), 0, "a misspelled key must not validate");
    tu_rmrf(dir);
    free(dir);
}
