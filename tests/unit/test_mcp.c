/*
 * test_mcp.c - the MCP JSON-RPC layer with a backend of two documents:
 * the handshake, tools/list, search and fetch in the shape ChatGPT
 * connectors expect, and an error naming the problem for every bad input.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "retrieval/mcp.h"

static int fake_search(void *arg, const char *query, json_t **results, json_t **extra,
                       ctx_error *err)
{
    (void)arg;
    *extra = NULL;
    if (!strcmp(query, "explode"))
        return ctx_error_set(err, CTX_ESTORE, "disk on fire at /var/secret/path");
    *results = json_pack("[{s:s,s:s,s:s}]", "id", "42", "title", "Salary bands", "url",
                         "https://x.test/42");
    if (!strcmp(query, "stale"))
        *extra = json_pack("{s:[{s:s,s:s}]}", "withheld", "source", "crm", "reason",
                           "permissions last synced 2h ago");
    return CTX_OK;
}

static int fake_fetch(void *arg, const char *id, json_t **doc, ctx_error *err)
{
    (void)arg;
    (void)err;
    *doc = strcmp(id, "42") ? NULL
                            : json_pack("{s:s,s:s,s:s,s:s}", "id", "42", "title", "Salary bands",
                                        "text", "Band A: ...", "url", "https://x.test/42");
    return CTX_OK;
}

static const mcp_backend be = {fake_search, fake_fetch, NULL};

/* call - mcp_handle on text; the parsed answer (new) or NULL for none. */
static json_t *call(const char *text)
{
    char *out = mcp_handle(&be, text, strlen(text));
    json_t *j;
    if (!out)
        return NULL;
    j = json_loads(out, 0, NULL);
    cr_assert(j, "answer is not JSON: %s", out);
    free(out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "jsonrpc")), "2.0");
    return j;
}

static int error_code(json_t *j)
{
    return (int)json_integer_value(json_object_get(json_object_get(j, "error"), "code"));
}

Test(mcp, initialize_negotiates_the_version)
{
    json_t *j = call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                     "{\"protocolVersion\":\"2025-03-26\",\"capabilities\":{},"
                     "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
    json_t *r = json_object_get(j, "result");
    cr_assert_str_eq(json_string_value(json_object_get(r, "protocolVersion")), "2025-03-26");
    cr_assert(json_object_get(json_object_get(r, "capabilities"), "tools"));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")),
                     "ctxgate");
    json_decref(j);
    /* an unknown version gets our newest */
    j = call("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"initialize\",\"params\":"
             "{\"protocolVersion\":\"1999-01-01\"}}");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "result"),
                                                       "protocolVersion")),
                     mcp_protocol_versions[0]);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "a");
    json_decref(j);
    /* the initialized notification gets no answer */
    cr_assert_null(call("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
}

Test(mcp, tools_list_names_search_and_fetch_with_schemas)
{
    json_t *j = call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(json_object_get(j, "result"), "tools");
    cr_assert_eq(json_array_size(tools), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
                     "search");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 1), "name")),
                     "fetch");
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_array_get(tools, i);
        cr_assert(json_is_object(json_object_get(t, "inputSchema")));
        cr_assert(strstr(json_string_value(json_object_get(t, "description")), "untrusted"));
    }
    json_decref(j);
}

Test(mcp, search_and_fetch_answer_one_text_item_and_structured_content)
{
    json_t *j = call("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
                     "{\"name\":\"search\",\"arguments\":{\"query\":\"salary\"}}}");
    json_t *r = json_object_get(j, "result"), *content = json_object_get(r, "content"), *inner;
    cr_assert_eq(json_array_size(content), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(content, 0), "type")),
                     "text");
    inner = json_loads(json_string_value(json_object_get(json_array_get(content, 0), "text")), 0,
                       NULL);
    cr_assert(json_equal(inner, json_object_get(r, "structuredContent")));
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(inner, "results"), 0), "id")),
                     "42");
    cr_assert(json_is_false(json_object_get(r, "isError")));
    json_decref(inner);
    json_decref(j);

    j = call("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"fetch\",\"arguments\":{\"id\":\"42\"}}}");
    r = json_object_get(json_object_get(j, "result"), "structuredContent");
    cr_assert_str_eq(json_string_value(json_object_get(r, "text")), "Band A: ...");
    cr_assert(json_is_true(json_object_get(json_object_get(r, "metadata"), "untrusted_content")));
    json_decref(j);

    /* not allowed and missing look the same */
    j = call("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"fetch\",\"arguments\":{\"id\":\"7\"}}}");
    r = json_object_get(j, "result");
    cr_assert(json_is_true(json_object_get(r, "isError")));
    cr_assert_null(json_object_get(r, "structuredContent"));
    json_decref(j);

    /* sources withheld for stale permissions are named beside the results */
    j = call("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"search\",\"arguments\":{\"query\":\"stale\"}}}");
    r = json_object_get(json_object_get(j, "result"), "structuredContent");
    cr_assert_eq(json_array_size(json_object_get(r, "results")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(r, "withheld"), 0), "source")), "crm");
    json_decref(j);

    /* a backend failure says nothing about the server's insides */
    j = call("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"search\",\"arguments\":{\"query\":\"explode\"}}}");
    r = json_object_get(j, "result");
    cr_assert(json_is_true(json_object_get(r, "isError")));
    char *text = json_dumps(r, 0);
    cr_assert_null(strstr(text, "secret"), "%s", text);
    free(text);
    json_decref(j);
}

Test(mcp, bad_messages_get_errors_that_name_the_problem)
{
    static const struct {
        const char *in;
        int code;
        const char *says;
    } bad[] = {
        {"{not json", -32700, "parse error"},
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600, "batches"},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", -32600, "jsonrpc"},
        {"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", -32600, "id"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", -32600, "method"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":[]}", -32602,
         "params"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}", -32601, "not found"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}", -32602,
         "name"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"rm\"}}",
         -32602, "unknown tool"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"search\",\"arguments\":{\"query\":3}}}",
         -32602, "query"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"fetch\",\"arguments\":\"x\"}}",
         -32602, "arguments"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = call(bad[i].in);
        const char *m;
        cr_assert(j, "no answer to %s", bad[i].in);
        cr_assert_eq(error_code(j), bad[i].code, "%s", bad[i].in);
        m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        cr_assert(m && strstr(m, bad[i].says), "%s -> %s", bad[i].in, m);
        json_decref(j);
    }
    json_t *j = call("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}");
    cr_assert(json_is_object(json_object_get(j, "result")));
    json_decref(j);
}
