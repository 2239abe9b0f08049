/*
 * exec_msg.c - the exec protocol's line parser: one line a connector
 * program printed becomes a checked exec_msg, or an error naming the field.
 * Strict on purpose: a typo in a field name must fail the run, not silently
 * drop an ACL. schemas/protocol/messages.schema.json says the same in JSON.
 */
#include <stdlib.h>
#include <string.h>

#include "../../core/opts.h"
#include "../../core/util.h"
#include "exec.h"
#include "../../core/json.h"

/* What a field may hold. */
enum {
    F_STR = 1,    /* a non-empty string */
    F_TEXT,       /* any string (may be empty) */
    F_INT,        /* an integer >= 0 */
    F_BOOL,
    F_OBJ,        /* a JSON object */
    F_STRS,       /* an array of non-empty strings */
    F_LEVEL,      /* "debug" | "info" | "warn" | "error" */
    F_CODE,       /* "config" | "source" | "auth" */
    F_KIND,       /* "user" | "group" */
    F_ACL,        /* {"allow": [...], "deny"?: [...], "labels"?: [...]} */
};

#define NULLABLE 0x100  /* or null, which reads as absent */
#define REQUIRED 0x200  /* must be present (possibly as null if NULLABLE) */

typedef struct field {
    const char *key;
    int kind;             /* F_* | NULLABLE | REQUIRED */
} field;

typedef struct msg_def {
    const char *name;
    field fields[10];     /* ends with a NULL key; "type" is implied */
} msg_def;

/* Indexed by exec_msg_type. */
static const msg_def defs[] = {
    [EXEC_HELLO] = {"HELLO", {{"protocol", F_INT | REQUIRED}, {"name", F_STR},
                              {"version", F_STR}}},
    [EXEC_SPEC] = {"SPEC", {{"spec", F_OBJ | REQUIRED}}},
    [EXEC_CHECK] = {"CHECK", {{"ok", F_BOOL | REQUIRED}, {"message", F_TEXT},
                              {"code", F_CODE}}},
    [EXEC_STREAM] = {"STREAM", {{"name", F_STR | REQUIRED}, {"description", F_OBJ}}},
    [EXEC_RECORD] = {"RECORD", {{"stream", F_STR | REQUIRED}, {"id", F_STR | REQUIRED},
                                {"title", F_TEXT | NULLABLE}, {"url", F_TEXT | NULLABLE},
                                {"body", F_TEXT | NULLABLE}, {"metadata", F_OBJ | NULLABLE},
                                {"updated_at_ms", F_INT}, {"acl", F_ACL | NULLABLE | REQUIRED}}},
    [EXEC_DELETE] = {"DELETE", {{"stream", F_STR | REQUIRED}, {"id", F_STR | REQUIRED}}},
    [EXEC_ACL] = {"ACL", {{"stream", F_STR | REQUIRED}, {"id", F_STR | REQUIRED},
                          {"acl", F_ACL | NULLABLE | REQUIRED}}},
    [EXEC_PRINCIPAL] = {"PRINCIPAL", {{"kind", F_KIND | REQUIRED}, {"id", F_STR | REQUIRED},
                                      {"display_name", F_TEXT | NULLABLE},
                                      {"email", F_TEXT | NULLABLE},
                                      {"maps_to", F_STR | NULLABLE}, {"members", F_STRS}}},
    [EXEC_STATE] = {"STATE", {{"stream", F_STR | REQUIRED}, {"state", F_OBJ | REQUIRED}}},
    [EXEC_LOG] = {"LOG", {{"level", F_LEVEL | REQUIRED}, {"message", F_TEXT | REQUIRED},
                          {"kind", F_STR}, {"stream", F_STR}, {"id", F_STR}}},
    [EXEC_ERROR] = {"ERROR", {{"message", F_TEXT | REQUIRED}, {"code", F_CODE}}},
    [EXEC_DONE] = {"DONE", {{NULL, 0}}},
};
#define NDEFS (sizeof defs / sizeof defs[0])

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const codes[] = {"config", "source", "auth", NULL};
static const int code_values[] = {CTX_CONN_ECONFIG, CTX_CONN_ESOURCE, CTX_CONN_EAUTH};
static const char *const kinds[] = {"user", "group", NULL};
static const char *const acl_keys[] = {"allow", "deny", "labels", NULL};

/* Index of s in words (NULL-terminated), or -1. */
static int word_index(const char *s, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (!strcmp(s, words[i]))
            return i;
    return -1;
}

static int unknown_key(const char *where, const char *key, const char *const *names,
                       ctx_error *err)
{
    const char *s = ctx_suggest(key, names);
    return ctx_error_set(err, CTX_EINVAL, "%s: unknown field \"%s\"%s%s%s; a newer protocol"
                         " needs a newer ctxgate", where, key, s ? ", did you mean \"" : "",
                         s ? s : "", s ? "\"" : "");
}

/* "user:<id>", "group:<id>" or "everyone": a typo in a deny must not pass. */
static int is_principal(const char *s)
{
    return (!strncmp(s, "user:", 5) && s[5]) || (!strncmp(s, "group:", 6) && s[6]) ||
           !strcmp(s, "everyone");
}

static int check_strs(const char *where, json_t *v, int principals, ctx_error *err)
{
    size_t i;
    json_t *s;

    if (!json_is_array(v))
        return ctx_error_set(err, CTX_EINVAL, "%s: expected an array of strings, got %s",
                             where, ctx_json_typename(v));
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || !json_string_length(s))
            return ctx_error_set(err, CTX_EINVAL, "%s[%zu]: expected a non-empty string,"
                                 " got %s", where, i, json_is_string(s) ? "\"\"" :
                                 ctx_json_typename(s));
        if (principals && !is_principal(json_string_value(s)))
            return ctx_error_set(err, CTX_EINVAL, "%s[%zu]: \"%.80s\" is not a principal;"
                                 " expected \"user:<id>\", \"group:<id>\" or \"everyone\"",
                                 where, i, json_string_value(s));
    }
    return CTX_OK;
}

static int check_enum(const char *where, json_t *v, const char *const *words, ctx_error *err)
{
    char list[96] = "";

    if (json_is_string(v) && word_index(json_string_value(v), words) >= 0)
        return CTX_OK;
    for (int i = 0; words[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "",
                 words[i]);
    return ctx_error_set(err, CTX_EINVAL, "%s: expected one of %s, got %s", where, list,
                         json_is_string(v) ? "another string" : ctx_json_typename(v));
}

static int check_field(const char *where, int kind, json_t *v, ctx_error *err)
{
    const char *k;
    json_t *x;
    int rc;

    switch (kind & 0xff) {
    case F_STR:
    case F_TEXT:
        if (!json_is_string(v))
            return ctx_error_set(err, CTX_EINVAL, "%s: expected a string, got %s", where,
                                 ctx_json_typename(v));
        if ((kind & 0xff) == F_STR && !json_string_length(v))
            return ctx_error_set(err, CTX_EINVAL, "%s: must not be empty", where);
        return CTX_OK;
    case F_INT:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return ctx_error_set(err, CTX_EINVAL, "%s: expected an integer >= 0, got %s",
                                 where, ctx_json_typename(v));
        return CTX_OK;
    case F_BOOL:
        if (!json_is_boolean(v))
            return ctx_error_set(err, CTX_EINVAL, "%s: expected true or false, got %s",
                                 where, ctx_json_typename(v));
        return CTX_OK;
    case F_OBJ:
        if (!json_is_object(v))
            return ctx_error_set(err, CTX_EINVAL, "%s: expected an object, got %s", where,
                                 ctx_json_typename(v));
        return CTX_OK;
    case F_STRS:
        return check_strs(where, v, 0, err);
    case F_LEVEL:
        return check_enum(where, v, levels, err);
    case F_CODE:
        return check_enum(where, v, codes, err);
    case F_KIND:
        return check_enum(where, v, kinds, err);
    case F_ACL:
        if (!json_is_object(v))
            return ctx_error_set(err, CTX_EINVAL, "%s: expected {\"allow\": [...]} or null,"
                                 " got %s", where, ctx_json_typename(v));
        json_object_foreach(v, k, x) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.%s", where, k);
            if (word_index(k, acl_keys) < 0)
                return unknown_key(where, k, acl_keys, err);
            if ((rc = check_strs(sub, x, strcmp(k, "labels") != 0, err)))
                return rc;
        }
        if (!json_object_get(v, "allow"))
            return ctx_error_set(err, CTX_EINVAL, "%s.allow: missing; list who may read"
                                 " the item (null for the whole acl makes it invisible)", where);
        return CTX_OK;
    }
    return ctx_error_set(err, CTX_EINTERNAL, "%s: no such field kind %d", where, kind);
}

/* Every key known and typed, every required key there. */
static int check_fields(const msg_def *d, json_t *root, ctx_error *err)
{
    const char *names[12], *key;
    const field *f;
    json_t *v;
    size_t n = 0;
    int rc;

    names[n++] = "type";
    for (f = d->fields; f->key; f++)
        names[n++] = f->key;
    names[n] = NULL;
    json_object_foreach(root, key, v) {
        char where[160];
        if (!strcmp(key, "type"))
            continue;
        for (f = d->fields; f->key && strcmp(f->key, key); f++)
            ;
        if (!f->key)
            return unknown_key(d->name, key, names, err);
        snprintf(where, sizeof where, "%s.%s", d->name, key);
        if (json_is_null(v) && (f->kind & NULLABLE))
            continue;
        if ((rc = check_field(where, f->kind, v, err)))
            return rc;
    }
    for (f = d->fields; f->key; f++)
        if ((f->kind & REQUIRED) && !json_object_get(root, f->key))
            return ctx_error_set(err, CTX_EINVAL, "%s.%s: missing; it is required%s", d->name,
                                 f->key, (f->kind & NULLABLE) ? " (null is allowed)" : "");
    return CTX_OK;
}

/* A string member (checked already), or NULL when absent or null. */
static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Point v at n strings of the array a, taking slots from m->lists at *used. */
static void take_list(exec_msg *m, json_t *a, size_t *used, const char *const **v, size_t *n)
{
    size_t i;
    json_t *s;

    *v = m->lists + *used;
    *n = json_array_size(a);
    json_array_foreach(a, i, s)
        m->lists[(*used)++] = json_string_value(s);
}

static size_t count(json_t *o, const char *key)
{
    return json_array_size(json_object_get(o, key));
}

/* Fill m->acl from the message's "acl" (checked already; may be null). */
static int take_acl(exec_msg *m, ctx_error *err)
{
    json_t *a = json_object_get(m->root, "acl");
    size_t used = 0;

    if (json_is_null(a))
        return CTX_OK;
    if (!(m->lists = ctx_calloc(count(a, "allow") + count(a, "deny") + count(a, "labels") + 1,
                                sizeof *m->lists)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    take_list(m, json_object_get(a, "allow"), &used, &m->acl.allow, &m->acl.n_allow);
    take_list(m, json_object_get(a, "deny"), &used, &m->acl.deny, &m->acl.n_deny);
    take_list(m, json_object_get(a, "labels"), &used, &m->acl.labels, &m->acl.n_labels);
    m->has_acl = 1;
    return CTX_OK;
}

static char *dump(json_t *v, ctx_error *err)
{
    char *s = ctx_json_text(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        ctx_error_set(err, CTX_ENOMEM, "out of memory");
    return s;
}

static int take_principal(exec_msg *m, ctx_error *err)
{
    ctx_principal *p = &m->principal;
    json_t *members = json_object_get(m->root, "members");
    int user = !strcmp(str(m->root, "kind"), "user");
    size_t used = 0;

    p->kind = user ? CTX_PRINCIPAL_USER : CTX_PRINCIPAL_GROUP;
    p->id = str(m->root, "id");
    p->display_name = str(m->root, "display_name");
    p->email = str(m->root, "email");
    p->maps_to = str(m->root, "maps_to");
    if (strncmp(p->id, user ? "user:" : "group:", user ? 5 : 6) || !p->id[user ? 5 : 6])
        return ctx_error_set(err, CTX_EINVAL, "PRINCIPAL.id: \"%.80s\" is not a %s; expected"
                             " \"%s<id>\"", p->id, user ? "user" : "group",
                             user ? "user:" : "group:");
    if (user && members)
        return ctx_error_set(err, CTX_EINVAL, "PRINCIPAL.members: only a group has members"
                             " (%s is a user)", p->id);
    if (!user && p->maps_to)
        return ctx_error_set(err, CTX_EINVAL, "PRINCIPAL.maps_to: only a user maps to a"
                             " canonical user (%s is a group)", p->id);
    if (p->maps_to && strncmp(p->maps_to, "user:", 5))
        return ctx_error_set(err, CTX_EINVAL, "PRINCIPAL.maps_to: \"%.80s\": expected"
                             " \"user:<id>\"", p->maps_to);
    if (!members)
        return CTX_OK;
    if (!(m->lists = ctx_calloc(json_array_size(members) + 1, sizeof *m->lists)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    take_list(m, members, &used, &p->members, &p->n_members);
    for (size_t i = 0; i < p->n_members; i++)
        if (!is_principal(p->members[i]) || !strcmp(p->members[i], "everyone"))
            return ctx_error_set(err, CTX_EINVAL, "PRINCIPAL.members[%zu]: \"%.80s\":"
                                 " expected \"user:<id>\" or \"group:<id>\"", i,
                                 p->members[i]);
    return CTX_OK;
}

/* Pull the checked fields out into the C shapes the host takes. */
static int take(exec_msg *m, ctx_error *err)
{
    json_t *r = m->root;
    const char *s;
    int rc;

    m->stream = str(r, "stream");
    m->id = str(r, "id");
    m->message = str(r, "message");
    m->name = str(r, "name");
    if ((s = str(r, "code")))
        m->code = code_values[word_index(s, codes)];
    switch (m->type) {
    case EXEC_HELLO:
        m->protocol = json_integer_value(json_object_get(r, "protocol"));
        m->version = str(r, "version");
        return CTX_OK;
    case EXEC_SPEC:
        return (m->json = dump(json_object_get(r, "spec"), err)) ? CTX_OK : CTX_ENOMEM;
    case EXEC_STREAM:
        if (!ctx_valid_name(m->name))
            return ctx_error_set(err, CTX_EINVAL, "STREAM.name: \"%.80s\": use letters,"
                                 " digits, '_', '-' and '.'", m->name);
        if (json_object_get(r, "description") &&
            !(m->json = dump(json_object_get(r, "description"), err)))
            return CTX_ENOMEM;
        return CTX_OK;
    case EXEC_CHECK:
        m->ok = json_is_true(json_object_get(r, "ok"));
        return CTX_OK;
    case EXEC_RECORD:
        if ((rc = take_acl(m, err)))
            return rc;
        m->rec.stream = m->stream;
        m->rec.id = m->id;
        m->rec.title = str(r, "title");
        m->rec.url = str(r, "url");
        m->rec.body = str(r, "body");
        m->rec.body_len = m->rec.body ? json_string_length(json_object_get(r, "body")) : 0;
        m->rec.updated_at_ms = json_integer_value(json_object_get(r, "updated_at_ms"));
        m->rec.acl = m->has_acl ? &m->acl : NULL;
        if (json_is_object(json_object_get(r, "metadata")) &&
            !(m->metadata = dump(json_object_get(r, "metadata"), err)))
            return CTX_ENOMEM;
        m->rec.metadata_json = m->metadata;
        return CTX_OK;
    case EXEC_ACL:
        return take_acl(m, err);
    case EXEC_PRINCIPAL:
        return take_principal(m, err);
    case EXEC_STATE:
        return (m->json = dump(json_object_get(r, "state"), err)) ? CTX_OK : CTX_ENOMEM;
    case EXEC_LOG:
        m->level = word_index(str(r, "level"), levels);
        m->kind = str(r, "kind");
        return CTX_OK;
    default:
        return CTX_OK;
    }
}

int ctx__exec_parse_line(const char *line, size_t len, exec_msg *m, ctx_error *err)
{
    json_error_t jerr;
    const char *type;
    size_t t;
    int rc;

    memset(m, 0, sizeof *m);
    if (!ctx_utf8_valid(line, len))
        return ctx_error_set(err, CTX_EINVAL, "not valid UTF-8; print UTF-8 JSON (escape"
                             " binary data, e.g. as base64)");
    if (!(m->root = ctx_json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr))) {
        /* Quote the start of the line, cut at a character boundary. */
        int show = len > 60 ? 60 : (int)len;
        while (show > 0 && (size_t)show < len && (line[show] & 0xC0) == 0x80)
            show--;
        return ctx_error_set(err, CTX_EINVAL, "not a JSON message (column %d: %s): \"%.*s\";"
                             " print one JSON object per line and nothing else on stdout"
                             " (use stderr or LOG for messages)", jerr.column, jerr.text, show,
                             line);
    }
    if (!json_is_object(m->root)) {
        rc = ctx_error_set(err, CTX_EINVAL, "expected a JSON object, got %s",
                           ctx_json_typename(m->root));
        goto fail;
    }
    if (!(type = str(m->root, "type"))) {
        rc = ctx_error_set(err, CTX_EINVAL, "\"type\": missing or not a string; every message"
                           " names its type, e.g. {\"type\": \"RECORD\", ...}");
        goto fail;
    }
    for (t = 1; t < NDEFS && strcmp(defs[t].name, type); t++)
        ;
    if (t == NDEFS) {
        const char *names[NDEFS], *s;
        for (t = 1; t < NDEFS; t++)
            names[t - 1] = defs[t].name;
        names[NDEFS - 1] = NULL;
        s = ctx_suggest(type, names);
        rc = ctx_error_set(err, CTX_EINVAL, "unknown message type \"%.40s\"%s%s%s; known are"
                           " HELLO, SPEC, CHECK, STREAM, RECORD, DELETE, ACL, PRINCIPAL, STATE,"
                           " LOG, ERROR, DONE", type, s ? " (did you mean \"" : "",
                           s ? s : "", s ? "\")" : "");
        goto fail;
    }
    m->type = (int)t;
    m->type_name = defs[t].name;
    if ((rc = check_fields(&defs[t], m->root, err)) || (rc = take(m, err)))
        goto fail;
    return CTX_OK;
fail:
    ctx__exec_msg_free(m);
    return rc;
}

void ctx__exec_msg_free(exec_msg *m)
{
    json_decref(m->root);
    free(m->json);
    free(m->metadata);
    ctx_free(m->lists);
    memset(m, 0, sizeof *m);
}
