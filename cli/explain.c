/*
 * explain.c - `ctxgate explain`: why a user (through an agent) may or may
 * not read a document, as retrieval/explain.h finds it, for a terminal or
 * as JSON.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../core/util.h"
#include "../retrieval/explain.h"
#include "cli.h"

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* names - a JSON array of strings as "a, b, c", or "(none)". */
static void names(const char *label, json_t *arr)
{
    size_t i;
    json_t *v;

    printf("%-17s", label);
    if (!json_array_size(arr))
        printf("(none)");
    json_array_foreach(arr, i, v)
        printf("%s%s", i ? ", " : "", json_string_value(v));
    printf("\n");
}

static void print(json_t *a)
{
    json_t *doc = json_object_get(a, "document"), *perms = json_object_get(a, "permissions");
    json_t *v;
    size_t i;

    printf("document %lld  %s:%s  \"%s\"%s\n",
           (long long)json_integer_value(json_object_get(doc, "doc_id")), str(doc, "source"),
           str(doc, "external_id"), str(doc, "title"),
           json_is_true(json_object_get(doc, "deleted")) ? "  (deleted)" : "");
    printf("verdict          %s for %s\n",
           json_is_true(json_object_get(a, "readable")) ? "READABLE" : "NOT READABLE",
           str(a, "user"));
    json_array_foreach(json_object_get(a, "reasons"), i, v)
        printf("  - %s\n", json_string_value(v));
    printf("principals where %s is concerned:\n", str(doc, "source"));
    if (!json_array_size(json_object_get(a, "principals")))
        printf("  (none)\n");
    json_array_foreach(json_object_get(a, "principals"), i, v) {
        const char *by = str(v, "by");
        printf("  %-32s %s%s%s%s\n", str(v, "principal"), str(v, "via"), *by ? " (said by " : "",
               by, *by ? ")" : "");
    }
    names("allow", json_object_get(a, "allow"));
    names("deny", json_object_get(a, "deny"));
    names("labels", json_object_get(a, "labels"));
    names("facts from", json_object_get(a, "trusted_sources"));
    if (json_is_object(perms)) {
        json_t *at = json_object_get(perms, "synced_at");
        json_t *max = json_object_get(perms, "max_permission_age_s");
        if (json_is_integer(at))
            printf("permissions      synced %.0fs ago",
                   (double)(ctx_now_ms() - json_integer_value(at)) / 1000.0);
        else
            printf("permissions      never synced by a permission or full sync");
        if (json_is_integer(max))
            printf(", max age %llds", (long long)json_integer_value(max));
        else
            printf(", no max age");
        printf("%s\n", json_is_true(json_object_get(perms, "withheld")) ? ", WITHHELD" : "");
    }
}

int cli_explain(int argc, char **argv)
{
    static const struct option lo[] = {{"as", required_argument, NULL, 'u'},
                                       {"agent", required_argument, NULL, 'a'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    const char *user = NULL, *agent = NULL;
    int c, as_json = 0, rc;
    ctx_config cfg;
    ctx_store *st = NULL;
    ctx_error err;
    json_t *a = NULL;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'u')
            user = optarg;
        else if (c == 'a')
            agent = optarg;
        else if (c == 'j')
            as_json = 1;
        else
            return 2;
    }
    if (!user || optind != argc - 1) {
        fprintf(stderr, "ctxgate: explain: usage: %s\n", CLI_EXPLAIN_USAGE);
        return 2;
    }
    if (!(rc = cli_open(&cfg, &st, 1, &err)))
        rc = explain_access(store_db(st), &cfg, user, agent, argv[optind], ctx_now_ms(), &a,
                            &err);
    store_close(st);
    ctx_config_free(&cfg);
    if (rc) {
        fprintf(stderr, "ctxgate: explain: %s\n", err.text);
        return rc == CTX_ECONFIG ? 2 : 1;
    }
    if (as_json) {
        json_dumpf(a, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        print(a);
    }
    rc = json_is_true(json_object_get(a, "readable")) ? 0 : 3;
    json_decref(a);
    return rc;
}
