/*
 * meta.c - front matter and ACL files for the files connector (see meta.h).
 */
#include "meta.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../core/ctx.h"
#include "../../core/json.h"
#include "../../core/util.h"

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    if (e - s >= 2 && ((*s == '"' && e[-1] == '"') || (*s == '\'' && e[-1] == '\''))) {
        e[-1] = '\0';
        s++;
    }
    return s;
}

/* A flow list "[a, b]" or a bare scalar, into a JSON array. */
static json_t *parse_list(char *v)
{
    json_t *a = json_array();
    char *p, *tok, *save = NULL;

    v = trim(v);
    if (*v == '[') {
        p = v + 1;
        if ((tok = strrchr(p, ']')))
            *tok = '\0';
    } else {
        p = v;
    }
    for (tok = strtok_r(p, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok);
        if (*t)
            json_array_append_new(a, json_string(t));
    }
    return a;
}

/*
 * files__front_matter - if text starts with a "---" line, read key: value
 * lines up to the closing "---" into a JSON object (*fm, new) and set
 * *body_off past it. Otherwise *fm = NULL and *body_off = 0.
 */
int files__front_matter(const char *text, size_t len, json_t **fm, size_t *body_off,
                        char *why, size_t whylen)
{
    size_t i, line_start;
    json_t *o;

    *fm = NULL;
    *body_off = 0;
    if (len < 4 || strncmp(text, "---", 3) || (text[3] != '\n' && text[3] != '\r'))
        return 0;
    o = json_object();
    i = text[3] == '\r' ? 5 : 4;
    while (i < len) {
        char line[4096], *colon, *k;
        size_t n;
        line_start = i;
        while (i < len && text[i] != '\n')
            i++;
        n = i - line_start;
        if (i < len)
            i++;
        if (n >= sizeof line) {
            /* Cutting would keep a prefix of the last entry: "group:eng" of
             * "group:eng-leads" is another, larger group. */
            snprintf(why, whylen, "front matter line \"%.40s...\" is longer than %zu bytes;"
                     " put long lists in a <file>.acl.json sidecar", text + line_start,
                     sizeof line - 1);
            json_decref(o);
            return -1;
        }
        memcpy(line, text + line_start, n);
        line[n] = '\0';
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        if (!strcmp(line, "---")) {
            *fm = o;
            *body_off = i;
            return 0;
        }
        if (!*trim(line) || line[0] == '#')
            continue;
        if (!(colon = strchr(line, ':'))) {
            snprintf(why, whylen, "front matter line \"%.60s\": expected \"key: value\"", line);
            json_decref(o);
            return -1;
        }
        *colon = '\0';
        k = trim(line);
        if (!*k ||
            k[strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")]) {
            snprintf(why, whylen, "front matter line \"%.60s:...\": expected \"key: value\""
                     " with a plain key", line);
            json_decref(o);
            return -1;
        }
        if (!strcmp(k, "allow") || !strcmp(k, "deny") || !strcmp(k, "labels"))
            json_object_set_new(o, k, parse_list(colon + 1));
        else
            json_object_set_new(o, k, json_string(trim(colon + 1)));
    }
    snprintf(why, whylen, "front matter has no closing \"---\" line");
    json_decref(o);
    return -1;
}

static int list_of(json_t *obj, const char *key, const char ***out, size_t *n, char *why,
                   size_t whylen)
{
    json_t *a = json_object_get(obj, key), *v;
    size_t i;

    *out = NULL;
    *n = 0;
    if (!a)
        return 0;
    if (!json_is_array(a)) {
        snprintf(why, whylen, "\"%s\": expected an array of strings", key);
        return -1;
    }
    *out = ctx_calloc(json_array_size(a) + 1, sizeof(char *));
    json_array_foreach(a, i, v) {
        if (!json_is_string(v)) {
            snprintf(why, whylen, "\"%s\"[%zu]: expected a string", key, i);
            return -1;
        }
        (*out)[(*n)++] = json_string_value(v);
    }
    return 0;
}

void files__acl_free(file_acl *a)
{
    ctx_free(a->allow);
    ctx_free(a->deny);
    ctx_free(a->labels);
    json_decref(a->src);
    memset(a, 0, sizeof *a);
}

/* files__acl_from - take the allow/deny/labels of obj (a borrowed reference). */
int files__acl_from(json_t *obj, file_acl *a, char *why, size_t whylen)
{
    char *canon;
    const void *p;
    size_t l;
    json_t *c;

    a->src = json_incref(obj);
    if (list_of(obj, "allow", &a->allow, &a->n_allow, why, whylen) ||
        list_of(obj, "deny", &a->deny, &a->n_deny, why, whylen) ||
        list_of(obj, "labels", &a->labels, &a->n_labels, why, whylen))
        return -1;
    c = json_pack("{s:O?,s:O?,s:O?}", "a", json_object_get(obj, "allow"), "d",
                  json_object_get(obj, "deny"), "l", json_object_get(obj, "labels"));
    canon = ctx_json_text(c, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(c);
    p = canon;
    l = canon ? strlen(canon) : 0;
    ctx_hash_hex(&p, &l, 1, a->sig);
    free(canon);
    return 0;
}

json_t *files__load_json(const char *path, char *why, size_t whylen, int *missing)
{
    json_error_t jerr;
    json_t *j;
    struct stat sb;

    *missing = stat(path, &sb) < 0;
    if (*missing)
        return NULL;
    j = ctx_json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        snprintf(why, whylen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
                 jerr.text);
    else if (!json_is_object(j)) {
        snprintf(why, whylen, "%s: expected a JSON object", path);
        json_decref(j);
        j = NULL;
    }
    return j;
}
