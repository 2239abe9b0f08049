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
    /* an unknown version gets our newest with a handshake; so does 2026-07-28,
     * which has none (its clients send server/discover) */
    j = call("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"initialize\",\"params\":"
             "{\"protocolVersion\":\"1999-01-01\"}}");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "result"),
                                                       "protocolVersion")),
                     "2025-11-25");
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "a");
    json_decref(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"initialize\",\"params\":"
             "{\"protocolVersion\":\"2026-07-28\"}}");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "result"),
                                                       "protocolVersion")),
                     "2025-11-25");
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

/* ---- 2026-07-28: stateless, the version in every request's _meta ---- */

#define META2026 "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"," \
                 "\"io.modelcontextprotocol/clientCapabilities\":{}}"

/* hcall - mcp_handle_http with these headers; the answer (new) or NULL, *status set. */
static json_t *hcall(const char *text, const char *version, const char *method,
                     const char *name, int *status)
{
    mcp_http_headers h = {version, method, name};
    char *out = mcp_handle_http(&be, text, strlen(text), &h, status);
    json_t *j;
    if (!out)
        return NULL;
    j = json_loads(out, 0, NULL);
    cr_assert(j, "answer is not JSON: %s", out);
    free(out);
    return j;
}

static int lists(json_t *array, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
        if (!strcmp(json_string_value(v), s))
            return 1;
    return 0;
}

Test(mcp, stateless_requests_need_no_initialize)
{
    json_t *j = call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{"
                     META2026 "}}");
    json_t *r = json_object_get(j, "result");
    cr_assert(r, "%s", json_dumps(j, 0));
    cr_assert(lists(json_object_get(r, "supportedVersions"), "2026-07-28"));
    cr_assert(lists(json_object_get(r, "supportedVersions"), "2025-11-25"));
    cr_assert(lists(json_object_get(r, "supportedVersions"), "2025-06-18"));
    cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
    cr_assert(json_is_object(json_object_get(json_object_get(r, "capabilities"), "tools")));
    cr_assert(json_integer_value(json_object_get(r, "ttlMs")) > 0);
    cr_assert_str_eq(json_string_value(json_object_get(r, "cacheScope")), "public");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
                         r, "_meta"), "io.modelcontextprotocol/serverInfo"), "name")),
                     "ctxgate");
    json_decref(j);
    /* tools/list and tools/call straight away, each on its own */
    j = call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{" META2026
             "}}");
    r = json_object_get(j, "result");
    cr_assert_eq(json_array_size(json_object_get(r, "tools")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
    cr_assert(json_is_integer(json_object_get(r, "ttlMs")));
    json_decref(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"search\",\"arguments\":{\"query\":\"bands\"}," META2026 "}}");
    r = json_object_get(j, "result");
    cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
    cr_assert_null(json_object_get(r, "ttlMs"), "a tool call is not cacheable");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
                         json_object_get(r, "structuredContent"), "results"), 0), "id")),
                     "42");
    json_decref(j);
    /* a request without _meta is served as before, without the new fields */
    j = call("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}");
    cr_assert_null(json_object_get(json_object_get(j, "result"), "resultType"));
    json_decref(j);
}

Test(mcp, a_version_mismatch_is_answered_as_2026_07_28_says)
{
    static const struct {
        const char *in, *header;
        int code, status;
        const char *says;
    } bad[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
         "\"io.modelcontextprotocol/protocolVersion\":\"2099-01-01\","
         "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
         "2099-01-01", -32022, 400, "Unsupported protocol version"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
         "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
         "2026-07-28", -32602, 400, "clientCapabilities"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
         "\"io.modelcontextprotocol/protocolVersion\":7}}}",
         NULL, -32602, 400, "must be a string"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\"}", NULL, -32602, 400,
         "protocolVersion"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", "2026-07-28", -32602, 400,
         "_meta"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", "1999-01-01", -32022, 400,
         "1999-01-01"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{" META2026 "}}",
         "2026-07-28", -32601, 404, "ping"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\",\"params\":{" META2026
         "}}", "2026-07-28", -32601, 404, "not found"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *method = strstr(bad[i].in, "server/discover") ? "server/discover"
                             : strstr(bad[i].in, "\"ping\"")      ? "ping"
                             : strstr(bad[i].in, "resources")     ? "resources/list"
                                                                  : "tools/list";
        int status = 0;
        json_t *j = hcall(bad[i].in, bad[i].header, method, NULL, &status), *e;
        cr_assert(j, "no answer to %s", bad[i].in);
        e = json_object_get(j, "error");
        cr_assert_eq(json_integer_value(json_object_get(e, "code")), bad[i].code, "%s -> %s",
                     bad[i].in, json_dumps(j, 0));
        cr_assert_eq(status, bad[i].status, "%s -> HTTP %d", bad[i].in, status);
        cr_assert(strstr(json_string_value(json_object_get(e, "message")), bad[i].says),
                  "%s -> %s", bad[i].in, json_dumps(j, 0));
        if (bad[i].code == -32022) {
            json_t *data = json_object_get(e, "data");
            cr_assert(lists(json_object_get(data, "supported"), "2026-07-28"));
            cr_assert(lists(json_object_get(data, "supported"), "2025-06-18"));
            cr_assert_str_eq(json_string_value(json_object_get(data, "requested")),
                             bad[i].header);
        }
        json_decref(j);
    }
    /* the initialize-based revisions keep their header and their 200s */
    {
        int status = 0;
        json_t *j = hcall("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", "2025-11-25",
                          NULL, NULL, &status);
        cr_assert_eq(status, 200);
        cr_assert(json_is_object(json_object_get(j, "result")));
        json_decref(j);
        j = hcall("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}", NULL, NULL, NULL,
                  &status);
        cr_assert_eq(status, 200);
        json_decref(j);
        cr_assert_null(hcall("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
                             NULL, NULL, NULL, &status));
        cr_assert_eq(status, 202);
    }
}

Test(mcp, http_headers_must_say_what_the_body_says)
{
    static const char call_search[] =
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
        "\"search\",\"arguments\":{\"query\":\"bands\"}," META2026 "}}";
    static const struct {
        const char *version, *method, *name;
        int ok;
        const char *says;
    } cases[] = {
        {"2026-07-28", "tools/call", "search", 1, NULL},
        {"2026-07-28", "tools/call", "=?base64?c2VhcmNo?=", 1, NULL},
        {NULL, "tools/call", "search", 0, "MCP-Protocol-Version is missing"},
        {"2025-11-25", "tools/call", "search", 0, "MCP-Protocol-Version '2025-11-25'"},
        {"2026-07-28", NULL, "search", 0, "Mcp-Method is missing"},
        {"2026-07-28", "tools/list", "search", 0, "Mcp-Method 'tools/list'"},
        {"2026-07-28", "tools/call", NULL, 0, "Mcp-Name is missing"},
        {"2026-07-28", "tools/call", "fetch", 0, "Mcp-Name differs"},
        {"2026-07-28", "tools/call", "=?base64?ZmV0Y2g=?=", 0, "Mcp-Name differs"},
        {"2026-07-28", "tools/call", "=?base64?!!!?=", 0, "not valid"},
    };
    static const char old_meta[] =
        "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
        "\"io.modelcontextprotocol/protocolVersion\":\"2025-06-18\"}}}";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = 0;
        json_t *j = hcall(call_search, cases[i].version, cases[i].method, cases[i].name,
                          &status), *e = json_object_get(j, "error");
        if (cases[i].ok) {
            cr_assert_eq(status, 200, "case %zu: %s", i, json_dumps(j, 0));
            cr_assert(json_object_get(j, "result"));
        } else {
            cr_assert_eq(status, 400, "case %zu", i);
            cr_assert_eq(json_integer_value(json_object_get(e, "code")), -32020);
            cr_assert(strstr(json_string_value(json_object_get(e, "message")), cases[i].says),
                      "case %zu: %s", i, json_dumps(j, 0));
        }
        json_decref(j);
    }
    /* a handshake revision named in _meta: served as one, if the header agrees */
    {
        int status = 0;
        json_t *j = hcall(old_meta, "2025-06-18", NULL, NULL, &status);
        cr_assert_eq(status, 200);
        cr_assert_null(json_object_get(json_object_get(j, "result"), "resultType"));
        json_decref(j);
        j = hcall(old_meta, "2026-07-28", "tools/list", NULL, &status);
        cr_assert_eq(status, 400);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
                     -32020);
        json_decref(j);
    }
}
