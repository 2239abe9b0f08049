/*
 * test_config.c - a bad config gets an error naming the path and the fix.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "connectors/registry.h"
#include "core/config.h"
#include "core/opts.h"
#include "core/util.h"
#include "tests/lib/testutil.h"

static int parse(const char *text, ctx_config *cfg, ctx_error *err)
{
    json_t *root = json_loads(text, 0, NULL);
    int rc;
    cr_assert_not_null(root, "test JSON is malformed: %s", text);
    memset(cfg, 0, sizeof *cfg);
    rc = ctx_config_parse(root, "/base", cfg, err);
    json_decref(root);
    return rc;
}

Test(config, good_config_resolves_data_dir_and_sources)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{\"data_dir\":\"d\",\"sources\":[{\"name\":\"a\",\"type\":\"files\","
                       "\"path\":\"x\"}]}", &cfg, &err), 0, "%s", err.text);
    cr_assert_str_eq(cfg.data_dir, "/base/d");
    cr_assert_eq(cfg.nsources, 1);
    cr_assert_str_eq(cfg.sources[0].name, "a");
    /* Host keys are taken out; the connector sees only its own. */
    cr_assert_null(json_object_get(cfg.sources[0].conn, "name"));
    cr_assert_str_eq(json_string_value(json_object_get(cfg.sources[0].conn, "path")), "x");
    cr_assert_eq(cfg.chunk_max_tokens, 256);
    ctx_config_free(&cfg);
}

Test(config, unknown_top_level_key_suggests)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{\"data_dri\":\"d\",\"sources\":[]}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "unknown key \"data_dri\", did you mean \"data_dir\""), "%s",
              err.text);
    ctx_config_free(&cfg);
}

Test(config, missing_sources_and_wrong_types_are_named)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "missing required key \"sources\""), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"sources\":{}}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources: expected an array"), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"sources\":[],\"chunk\":{\"max_tokens\":\"big\"}}", &cfg, &err),
                 CTX_ECONFIG);
    cr_assert(strstr(err.text, "chunk.max_tokens: expected an integer, got string"), "%s",
              err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"sources\":[],\"chunk\":{\"max_tokens\":2}}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "chunk.max_tokens: 2 is out of range"), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(config, source_errors_name_the_index)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"a\",\"type\":\"files\"},{\"type\":\"files\"}]}",
                       &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[1].name: missing"), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"a\",\"type\":\"files\"},"
                       "{\"name\":\"a\",\"type\":\"files\"}]}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[1].name: \"a\" is already used by sources[0]"), "%s",
              err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"bad name\",\"type\":\"files\"}]}", &cfg, &err),
                 CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[0].name"), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(config, agent_and_schedule_errors_are_named)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{\"agent\":{\"max_job\":2},\"sources\":[]}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "agent") && strstr(err.text, "did you mean \"max_jobs\""), "%s",
              err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"agent\":{\"max_jobs\":0},\"sources\":[]}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "agent.max_jobs") && strstr(err.text, "1..64"), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"a\",\"type\":\"files\","
                       "\"schedule\":{\"sync\":5}}]}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[0].schedule") && strstr(err.text, "sync"), "%s",
              err.text);
    ctx_config_free(&cfg);
    /* defaults: every source is synced every 15 minutes */
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"a\",\"type\":\"files\",\"path\":\".\"}]}",
                       &cfg, &err), CTX_OK, "%s", err.text);
    cr_assert_str_eq(cfg.sources[0].schedule.sync, "15m");
    cr_assert_str_eq(cfg.agent.embed, "1m");
    cr_assert(!json_object_get(cfg.sources[0].conn, "schedule"));
    ctx_config_free(&cfg);
}

Test(config, search_weights_have_defaults_and_bounds)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{\"sources\":[]}", &cfg, &err), CTX_OK, "%s", err.text);
    cr_assert_float_eq(cfg.search.w_lexical, 1.0, 1e-12);
    cr_assert_float_eq(cfg.search.w_vector, 1.0, 1e-12);
    cr_assert_eq(cfg.search.rrf_k, 60);
    cr_assert_str_eq(cfg.search.fusion, "rrf");
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"fusion\":\"scores\"},\"sources\":[]}", &cfg, &err),
                 CTX_OK, "%s", err.text);
    cr_assert_str_eq(cfg.search.fusion, "scores");
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"fusion\":\"max\"},\"sources\":[]}", &cfg, &err),
                 CTX_ECONFIG);
    cr_assert(strstr(err.text, "search.fusion") && strstr(err.text, "\"scores\""), "%s",
              err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"w_lexical\":0.5,\"w_vector\":2,\"rrf_k\":10},"
                       "\"sources\":[]}", &cfg, &err), CTX_OK, "%s", err.text);
    cr_assert_float_eq(cfg.search.w_lexical, 0.5, 1e-12);
    cr_assert_float_eq(cfg.search.w_vector, 2.0, 1e-12);
    cr_assert_eq(cfg.search.rrf_k, 10);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"w_lexical\":0,\"w_vector\":0},\"sources\":[]}", &cfg,
                       &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "w_lexical") && strstr(err.text, "not both 0"), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"w_vector\":-1},\"sources\":[]}", &cfg, &err),
                 CTX_ECONFIG);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"rrf_k\":0},\"sources\":[]}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "search.rrf_k"), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"depth\":30},\"sources\":[]}", &cfg, &err), CTX_OK,
                 "%s", err.text);
    cr_assert_eq(cfg.search.depth, 30);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"depth\":1001},\"sources\":[]}", &cfg, &err),
                 CTX_ECONFIG);
    cr_assert(strstr(err.text, "search.depth") && strstr(err.text, "1..1000"), "%s", err.text);
    ctx_config_free(&cfg);
    /* expansion and proximity: off unless set, and bounded */
    cr_assert_eq(parse("{\"sources\":[]}", &cfg, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(cfg.search.expand_terms, 0);
    cr_assert_eq(cfg.search.expand_docs, 10);
    cr_assert_float_eq(cfg.search.expand_weight, 0.5, 1e-12);
    cr_assert_float_eq(cfg.search.proximity, 0.0, 1e-12);
    cr_assert_float_eq(cfg.search.doc_decay, 0.0, 1e-12);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"expand_terms\":3,\"expand_docs\":5,"
                       "\"expand_weight\":0.2,\"proximity\":1},\"sources\":[]}", &cfg, &err),
                 CTX_OK, "%s", err.text);
    cr_assert_eq(cfg.search.expand_terms, 3);
    cr_assert_eq(cfg.search.expand_docs, 5);
    cr_assert_float_eq(cfg.search.expand_weight, 0.2, 1e-12);
    cr_assert_float_eq(cfg.search.proximity, 1.0, 1e-12);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"expand_terms\":17},\"sources\":[]}", &cfg, &err),
                 CTX_ECONFIG);
    cr_assert(strstr(err.text, "search.expand"), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"expand_weight\":0},\"sources\":[]}", &cfg, &err),
                 CTX_ECONFIG);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"proximity\":-1},\"sources\":[]}", &cfg, &err),
                 CTX_ECONFIG);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"embeddings\":{\"max_retry_after\":0},\"sources\":[]}", &cfg,
                       &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "embeddings.max_retry_after") && strstr(err.text, "1..86400"),
              "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"doc_decay\":0.95},\"sources\":[]}", &cfg, &err),
                 CTX_ECONFIG);
    cr_assert(strstr(err.text, "search.doc_decay") && strstr(err.text, "0..0.9"), "%s",
              err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"doc_decay\":0.3},\"sources\":[]}", &cfg, &err),
                 CTX_OK, "%s", err.text);
    cr_assert_float_eq(cfg.search.doc_decay, 0.3, 1e-12);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"w_vector\":\"high\"},\"sources\":[]}", &cfg, &err),
                 CTX_ECONFIG);
    cr_assert(strstr(err.text, "w_vector") && strstr(err.text, "a number"), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"search\":{\"w_vectr\":1},\"sources\":[]}", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "did you mean \"w_vector\""), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(config, connector_keys_are_checked_by_the_connector)
{
    ctx_config cfg;
    ctx_error err;
    registry_conn rc;

    cr_assert_eq(parse("{\"sources\":[{\"name\":\"a\",\"type\":\"files\",\"path\":\"/tmp\"},"
                       "{\"name\":\"b\",\"type\":\"files\",\"pth\":\"/tmp\"}]}", &cfg, &err), 0);
    cr_assert_eq(registry_open(&cfg.sources[0], &rc, &err), 0, "%s", err.text);
    registry_close(&rc);
    cr_assert_eq(registry_open(&cfg.sources[1], &rc, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[1]: unknown key \"pth\", did you mean \"path\""), "%s",
              err.text);
    ctx_config_free(&cfg);
}

Test(config, unknown_connector_type)
{
    ctx_config cfg;
    ctx_error err;
    registry_conn rc;
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"a\",\"type\":\"postgress\"}]}", &cfg, &err), 0);
    cr_assert_eq(registry_open(&cfg.sources[0], &rc, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "sources[0].type: unknown connector \"postgress\""), "%s", err.text);
    ctx_config_free(&cfg);
}

Test(config, file_errors_carry_line_and_column)
{
    char *dir = tu_tmpdir("cfg"), path[4096];
    ctx_config cfg;
    ctx_error err;

    snprintf(path, sizeof path, "%s/ctxgate.json", dir);
    tu_write(dir, "ctxgate.json", "{\n  \"sources\": [\n    {\"name\": \"a\",}\n  ]\n}\n");
    cr_assert_eq(ctx_config_load(path, &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "ctxgate.json:3:"), "%s", err.text);
    cr_assert(strstr(err.text, "invalid JSON"), "%s", err.text);
    ctx_config_free(&cfg);
    cr_assert_eq(ctx_config_load("/nonexistent/ctxgate.json", &cfg, &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "ctxgate init"), "%s", err.text);
    ctx_config_free(&cfg);
    tu_rmrf(dir);
    free(dir);
}

typedef struct inner {
    char *col;
    ctx_strlist cols;
} inner;
typedef struct outer {
    char *name;
    int64_t n;
    int flag;
    ctx_objlist items;
} outer;
static const ctx_opt inner_opts[] = {
    {"col", CTX_OPT_STRING, NULL, offsetof(inner, col), 1, "a column", NULL, 0},
    {"cols", CTX_OPT_STRLIST, NULL, offsetof(inner, cols), 0, "columns", NULL, 0},
    CTX_OPT_END,
};
static const ctx_opt outer_opts[] = {
    {"name", CTX_OPT_STRING, "dflt", offsetof(outer, name), 0, "a name", NULL, 0},
    {"n", CTX_OPT_INT, "7", offsetof(outer, n), 0, "a number", NULL, 0},
    {"flag", CTX_OPT_BOOL, "true", offsetof(outer, flag), 0, "a flag", NULL, 0},
    {"items", CTX_OPT_OBJLIST, NULL, offsetof(outer, items), 0, "items", inner_opts,
     sizeof(inner)},
    CTX_OPT_END,
};

/* auth_with - parse a config whose "auth" object is auth (its inside). */
static int auth_with(const char *auth, ctx_config *cfg, ctx_error *err)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"sources\": [], \"serve\": {\"public_url\":"
             " \"https://ctx.example.com\"}, \"auth\": {%s}}", auth);
    return parse(text, cfg, err);
}

Test(config, an_identity_provider_issuer_must_be_https_or_loopback)
{
    static const char *const bad[] = {"http://idp.example.com", "ftp://idp.example.com",
                                      "ctxgate", "http://127.0.0.1.evil.test", "https://"};
    static const char *const good[] = {"https://idp.example.com/realms/acme",
                                       "http://127.0.0.1:8080", "http://localhost"};
    ctx_config cfg;
    ctx_error err;
    char a[256];

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(a, sizeof a, "\"discovery\": true, \"issuer\": \"%s\"", bad[i]);
        cr_assert_eq(auth_with(a, &cfg, &err), CTX_ECONFIG, "%s taken", bad[i]);
        cr_assert(strstr(err.text, "auth.issuer") && strstr(err.text, "https"), "%s",
                  err.text);
        ctx_config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(a, sizeof a, "\"discovery\": true, \"issuer\": \"%s\"", good[i]);
        cr_assert_eq(auth_with(a, &cfg, &err), 0, "%s: %s", good[i], err.text);
        ctx_config_free(&cfg);
    }
    /* without discovery the issuer is any string (static keys, development) */
    cr_assert_eq(auth_with("\"issuer\": \"ctxgate\"", &cfg, &err), 0, "%s", err.text);
    ctx_config_free(&cfg);
}

Test(config, auth_defaults_and_ranges)
{
    static const char *const bad[][2] = {
        {"\"jwks_refresh_min_s\": -1", "auth.jwks_refresh_min_s"},
        {"\"jwks_refresh_min_s\": 3601", "auth.jwks_refresh_min_s"},
        {"\"jwks_ttl_s\": 0", "auth.jwks_ttl_s"},
        {"\"jwks_timeout_ms\": 50", "auth.jwks_timeout_ms"},
        {"\"user_claim\": \"\"", "auth.user_claim"},
        {"\"agent_claims\": [\"azp\", \"\"]", "auth.agent_claims[1]"},
        {"\"agent_claim\": \"azp\"", "did you mean \"agent_claims\""},
    };
    ctx_config cfg;
    ctx_error err;

    cr_assert_eq(auth_with("", &cfg, &err), 0, "%s", err.text);
    cr_assert_eq(cfg.auth.discovery, 0);
    cr_assert_eq(cfg.auth.jwks_refresh_min_s, 30);
    cr_assert_eq(cfg.auth.jwks_ttl_s, 3600);
    cr_assert_eq(cfg.auth.jwks_timeout_ms, 3000);
    cr_assert_str_eq(cfg.auth.user_claim, "sub");
    cr_assert_eq(cfg.auth.agent_claims.n, 0, "[] stands for act.sub");
    cr_assert_str_eq(cfg.auth.resource, "https://ctx.example.com");
    ctx_config_free(&cfg);
    cr_assert_eq(auth_with("\"agent_claims\": \"azp\", \"user_claim\": \"email\"", &cfg,
                           &err), 0, "%s", err.text);
    cr_assert_eq(cfg.auth.agent_claims.n, 1, "a single name is a list of one");
    cr_assert_str_eq(cfg.auth.agent_claims.v[0], "azp");
    cr_assert_str_eq(cfg.auth.user_claim, "email");
    ctx_config_free(&cfg);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(auth_with(bad[i][0], &cfg, &err), CTX_ECONFIG, "%s taken", bad[i][0]);
        cr_assert(strstr(err.text, bad[i][1]), "%s: %s", bad[i][0], err.text);
        ctx_config_free(&cfg);
    }
}

Test(opts, defaults_lists_and_nested_errors)
{
    outer o;
    ctx_error err;
    json_t *j = json_loads("{\"items\":[{\"col\":\"a\",\"cols\":\"b\"},{\"col\":\"c\","
                           "\"cols\":[\"d\",\"e\"]}]}", 0, NULL);
    memset(&o, 0, sizeof o);
    cr_assert_eq(ctx_opts_parse(outer_opts, j, &o, "", &err), 0, "%s", err.text);
    cr_assert_str_eq(o.name, "dflt");
    cr_assert_eq(o.n, 7);
    cr_assert_eq(o.flag, 1);
    cr_assert_eq(o.items.n, 2);
    cr_assert_str_eq(((inner *)o.items.v)[0].cols.v[0], "b");
    cr_assert_eq(((inner *)o.items.v)[1].cols.n, 2);
    ctx_opts_free(outer_opts, &o);
    json_decref(j);

    j = json_loads("{\"items\":[{\"col\":\"a\"},{\"coll\":\"c\"}]}", 0, NULL);
    memset(&o, 0, sizeof o);
    cr_assert_eq(ctx_opts_parse(outer_opts, j, &o, "src", &err), CTX_ECONFIG);
    cr_assert_str_eq(err.text, "src.items[1]: unknown key \"coll\", did you mean \"col\"");
    json_decref(j);

    j = json_loads("{\"items\":[{\"cols\":[\"x\"]}]}", 0, NULL);
    memset(&o, 0, sizeof o);
    cr_assert_eq(ctx_opts_parse(outer_opts, j, &o, "", &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "items[0]: missing required key \"col\""), "%s", err.text);
    json_decref(j);
}

Test(opts, schema_describes_the_table)
{
    json_t *s = ctx_opts_schema(outer_opts, "t");
    cr_assert_str_eq(json_string_value(json_object_get(s, "type")), "object");
    cr_assert(json_is_false(json_object_get(s, "additionalProperties")));
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(s, "properties"), "n"), "default")), 7);
    json_decref(s);
}

Test(util, suggest_and_utf8)
{
    const char *const names[] = {"table", "query", "title", NULL};
    ctx_buf b = CTX_BUF_INIT;
    size_t bad;
    cr_assert_str_eq(ctx_suggest("tabel", names), "table");
    cr_assert_null(ctx_suggest("zzzzzzzz", names));
    cr_assert(ctx_utf8_valid("h\xC3\xA9", 3));
    cr_assert(!ctx_utf8_valid("\xC0\xAF", 2));          /* overlong */
    cr_assert(!ctx_utf8_valid("\xED\xA0\x80", 3));      /* surrogate */
    cr_assert_eq(ctx_utf8_repair("a\xFF" "b\0c", 5, &b, &bad), 0);
    cr_assert_eq(bad, 1);
    cr_assert_str_eq(b.data, "a\xEF\xBF\xBD" "bc");
    ctx_buf_free(&b);
}

/* One check at load serves every command: `sync` used to accept a schedule
 * that only `agent` refused. */
Test(config, bad_schedules_fail_at_load_naming_the_field)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"sources\":[{\"name\":\"a\",\"type\":\"files\",\"schedule\":{\"sync\":\"soon\"}}]}",
         "sources[0].schedule.sync: \"soon\": bad minute field"},
        {"{\"sources\":[{\"name\":\"a\",\"type\":\"files\",\"enabled\":false,"
         "\"schedule\":{\"full\":\"0 0 31 2 *\"}}]}",
         "sources[0].schedule.full: \"0 0 31 2 *\" matches no date"},
        {"{\"sources\":[{\"name\":\"a\",\"type\":\"files\",\"schedule\":"
         "{\"permissions\":\"5x\"}}]}", "sources[0].schedule.permissions:"},
        {"{\"sources\":[],\"agent\":{\"embed\":\"61 * * * *\"}}", "agent.embed:"},
        {"{\"sources\":[],\"agent\":{\"maintain\":\"every hour\"}}", "agent.maintain:"},
        {"{\"sources\":[],\"agent\":{\"retry\":\"@daily\"}}",
         "agent.retry: \"@daily\" is not an interval; use one like \"30s\""},
        {"{\"sources\":[],\"agent\":{\"jitter\":\"lots\"}}", "agent.jitter:"},
        {"{\"sources\":[],\"agent\":{\"history_keep\":0}}", "agent.history_keep: 0 is out"},
        {"{\"sources\":[],\"agent\":{\"history_retain\":\"forever\"}}",
         "agent.history_retain: \"forever\" is not an interval; use one like \"30d\""},
        {"{\"sources\":[],\"serve\":{\"listen\":\"8080\"}}",
         "serve.listen: \"8080\" is not host:port; use an IPv4 address and a port"},
        {"{\"sources\":[],\"serve\":{\"listen\":\"127.0.0.1:80x\"}}", "serve.listen:"},
        {"{\"sources\":[],\"serve\":{\"listen\":\"myhost:8080\"}}",
         "serve.listen: \"myhost\" is not an IPv4 address"},
        {"{\"sources\":[],\"audit\":{\"retain\":\"3 months\"}}",
         "audit.retain: \"3 months\" is not an interval; use one like \"90d\" (s, m, h, d:"
         " seconds to days), or \"off\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ctx_config cfg;
        ctx_error err;
        cr_assert_eq(parse(cases[i].json, &cfg, &err), CTX_ECONFIG, "%s", cases[i].json);
        cr_assert(strstr(err.text, cases[i].want), "%s: got %s", cases[i].json, err.text);
        ctx_config_free(&cfg);
    }
}

Test(config, good_schedules_and_bounds_load_with_documented_defaults)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"a\",\"type\":\"files\",\"schedule\":"
                       "{\"sync\":\"*/10 * * * *\",\"permissions\":\"\",\"full\":\"@weekly\"}}],"
                       "\"agent\":{\"jitter\":\"0s\",\"maintain\":\"\"}}", &cfg, &err), CTX_OK,
                 "%s", err.text);
    cr_assert_eq(cfg.audit_retain_ms, 90LL * 86400 * 1000); /* audit.retain "90d" */
    cr_assert_eq(cfg.agent.history_keep, 1000);
    cr_assert_eq(cfg.agent.history_retain_ms, 30LL * 86400 * 1000);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"sources\":[],\"audit\":{\"retain\":\"off\"},"
                       "\"agent\":{\"history_retain\":\"off\"}}", &cfg, &err), CTX_OK, "%s",
                 err.text);
    cr_assert_eq(cfg.audit_retain_ms, -1);
    cr_assert_eq(cfg.agent.history_retain_ms, -1);
    ctx_config_free(&cfg);
}

Test(config, agent_granted_an_unknown_source_is_refused)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"wiki\",\"type\":\"files\"}],"
                       "\"agents\":[{\"name\":\"h\",\"sources\":[\"wiki\",\"wkii\"]}]}", &cfg,
                       &err), CTX_ECONFIG);
    cr_assert(strstr(err.text, "agents[0].sources[1]: \"wkii\" is not a configured source;"
                               " name one of sources[].name, or \"*\""), "%s", err.text);
    ctx_config_free(&cfg);
    /* A configured source, even a disabled one, and "*" are fine. */
    cr_assert_eq(parse("{\"sources\":[{\"name\":\"wiki\",\"type\":\"files\",\"enabled\":false}],"
                       "\"agents\":[{\"name\":\"h\",\"sources\":[\"wiki\"]},"
                       "{\"name\":\"all\",\"sources\":\"*\"}]}", &cfg, &err), CTX_OK, "%s",
                 err.text);
    ctx_config_free(&cfg);
}

Test(config, budgets_are_checked_at_load)
{
    static const struct {
        const char *budgets, *want;
    } cases[] = {
        {"[{\"tokens\": 5}]", "budgets[0]: give either \"user\" or \"agent\""},
        {"[{\"user\": \"a\", \"agent\": \"h\", \"tokens\": 5}]", "budgets[0]: give either"},
        {"[{\"user\": \"a\"}]", "budgets[0]: missing required key \"tokens\""},
        {"[{\"user\": \"a\", \"tokens\": 0}]", "budgets[0].tokens: 0; use a positive number"},
        {"[{\"user\": \"a\", \"tokens\": 5, \"per\": \"week\"}]",
         "budgets[0].per: \"week\"; use \"hour\" or \"day\""},
        {"[{\"agent\": \"ghost\", \"tokens\": 5}]",
         "budgets[0].agent: \"ghost\" is not a registered agent; name one of agents[].name"},
        {"[{\"user\": \"a\", \"tokens\": 5}, {\"user\": \"a\", \"tokens\": 9, \"per\": \"day\"}]",
         "budgets[1]: the same user and window as budgets[0]; keep one"},
        {"[{\"user\": \"a\", \"tokens\": 5, \"per_day\": 1}]", "unknown key \"per_day\""},
    };
    char text[512];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ctx_config cfg;
        ctx_error err;
        snprintf(text, sizeof text, "{\"sources\": [], \"agents\": [{\"name\": \"h\","
                 " \"sources\": \"*\"}], \"budgets\": %s}", cases[i].budgets);
        cr_assert_eq(parse(text, &cfg, &err), CTX_ECONFIG, "%s", text);
        cr_assert(strstr(err.text, cases[i].want), "%s: got %s", text, err.text);
        ctx_config_free(&cfg);
    }
}

Test(config, budgets_parse_with_their_windows)
{
    ctx_config cfg;
    ctx_error err;
    cr_assert_eq(parse("{\"sources\": [], \"agents\": [{\"name\": \"h\", \"sources\": \"*\"}],"
                       " \"budgets\": [{\"agent\": \"h\", \"tokens\": 500, \"per\": \"hour\"},"
                       " {\"user\": \"*\", \"tokens\": 9000},"
                       " {\"user\": \"a\", \"tokens\": 10, \"per\": \"hour\"},"
                       " {\"user\": \"a\", \"tokens\": 100, \"per\": \"day\"}]}", &cfg, &err),
                 CTX_OK, "%s", err.text);
    cr_assert_eq(cfg.nbudgets, 4);
    cr_assert_str_eq(cfg.budgets[0].agent, "h");
    cr_assert_null(cfg.budgets[0].user);
    cr_assert_eq(cfg.budgets[0].per_ms, 3600000);
    cr_assert_str_eq(cfg.budgets[1].per, "day"); /* the default window */
    cr_assert_eq(cfg.budgets[1].per_ms, 86400000);
    ctx_config_free(&cfg);
}

Test(config, cluster_section_defaults_and_checks)
{
    static const struct {
        const char *cluster, *want;
    } bad[] = {
        {"{\"conninfo\": \"host=h\", \"lease_s\": 2}", "cluster.lease_s: 2 is out of range"},
        {"{\"conninfo\": \"host=h\", \"password_env\": \"A\", \"password_file\": \"f\"}",
         "set one of them, not both"},
        {"{\"password_env\": \"A\"}", "cluster.conninfo: required when a password is given"},
        {"{\"conninfo\": \"host=h password=x\"}", "cluster.conninfo: holds a password"},
        {"{\"conninfo\": \"host=h\", \"leas_s\": 40}", "did you mean \"lease_s\""},
        {"[]", "cluster: expected an object"},
        {"{\"conninfo\": \"host=h\", \"max_lag_s\": 0}",
         "cluster.max_lag_s: 0 is out of range"},
        {"{\"conninfo\": \"host=h\", \"replica\": \"Web-1\"}",
         "cluster.replica: \"Web-1\" is not a replica name"},
        {"{\"replica\": \"r1\"}", "cluster.replica: needs cluster.conninfo"},
    };
    ctx_config cfg;
    ctx_error err;
    char text[512];

    /* No section: the embedded mode. */
    cr_assert_eq(parse("{\"sources\":[]}", &cfg, &err), 0, "%s", err.text);
    cr_assert_str_eq(cfg.cluster.conninfo, "");
    cr_assert_eq(cfg.cluster.lease_s, 30);
    cr_assert_str_eq(cfg.cluster.replica, "");
    cr_assert_eq(cfg.cluster.max_lag_s, 30);
    ctx_config_free(&cfg);
    cr_assert_eq(parse("{\"sources\":[],\"cluster\":{\"conninfo\":\"host=db dbname=c\","
                       "\"password_env\":\"PGPW\",\"lease_s\":60}}", &cfg, &err), 0, "%s",
                 err.text);
    cr_assert_str_eq(cfg.cluster.conninfo, "host=db dbname=c");
    cr_assert_str_eq(cfg.cluster.password_env, "PGPW");
    cr_assert_eq(cfg.cluster.lease_s, 60);
    ctx_config_free(&cfg);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "{\"sources\":[],\"cluster\":%s}", bad[i].cluster);
        cr_assert_eq(parse(text, &cfg, &err), CTX_ECONFIG, "%s", bad[i].cluster);
        cr_assert(strstr(err.text, bad[i].want), "%s: %s", bad[i].cluster, err.text);
        ctx_config_free(&cfg);
    }}
