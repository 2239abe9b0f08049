/*
 * fuzz_exec_msg.c - libFuzzer target for the exec connector's line parser
 * (ctx__exec_parse_line): the input is one line a connector program printed.
 * A line is either refused with a message, or every field the host will
 * read is there, of its type, readable to its length, and JSON texts handed
 * on (state, spec, metadata, descriptions) parse as JSON objects again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "connectors/exec/exec.h"
#include "core/util.h"
#include "fuzz.h"

static void check_str(const char *what, const char *s, int may_be_null)
{
    volatile size_t n;

    FUZZ_CHECK(s || may_be_null, "%s is NULL", what);
    if (s) {
        n = strlen(s); /* ASan: the string ends inside its buffer */
        FUZZ_CHECK(ctx_utf8_valid(s, n), "%s is not valid UTF-8", what);
    }
}

/* n non-empty strings; with also set, each a principal ("user:...", "group:..." or also). */
static void check_list(const char *what, const char *const *v, size_t n, const char *also)
{
    FUZZ_CHECK(n == 0 || v != NULL, "%s: %zu entries but no array", what, n);
    for (size_t i = 0; i < n; i++) {
        check_str(what, v[i], 0);
        FUZZ_CHECK(v[i][0], "%s[%zu] is empty", what, i);
        if (also)
            FUZZ_CHECK(!strncmp(v[i], "user:", 5) || !strncmp(v[i], "group:", 6) ||
                           !strcmp(v[i], also), "%s[%zu] = \"%s\" is not a principal", what,
                       i, v[i]);
    }
}

static void check_object_text(const char *what, const char *s)
{
    json_t *j;

    FUZZ_CHECK(s != NULL, "%s is NULL", what);
    j = json_loads(s, 0, NULL);
    FUZZ_CHECK(json_is_object(j), "%s is not a JSON object: %s", what, s);
    json_decref(j);
}

static void check_acl(const exec_msg *m)
{
    if (!m->has_acl)
        return;
    check_list("allow", m->acl.allow, m->acl.n_allow, "everyone");
    check_list("deny", m->acl.deny, m->acl.n_deny, "everyone");
    check_list("labels", m->acl.labels, m->acl.n_labels, NULL);
}

static void check_msg(const exec_msg *m)
{
    volatile unsigned char sum = 0;

    FUZZ_CHECK(m->type >= EXEC_HELLO && m->type <= EXEC_DONE, "type %d", m->type);
    FUZZ_CHECK(json_is_object(m->root), "no root object");
    check_str("type_name", m->type_name, 0);
    switch (m->type) {
    case EXEC_HELLO:
        FUZZ_CHECK(m->protocol >= 0, "protocol %lld", (long long)m->protocol);
        check_str("name", m->name, 1);
        check_str("version", m->version, 1);
        break;
    case EXEC_SPEC:
        check_object_text("spec", m->json);
        break;
    case EXEC_CHECK:
        FUZZ_CHECK(m->ok == 0 || m->ok == 1, "ok %d", m->ok);
        check_str("message", m->message, 1);
        break;
    case EXEC_STREAM:
        check_str("stream name", m->name, 0);
        FUZZ_CHECK(m->name[0], "empty stream name");
        if (m->json)
            check_object_text("description", m->json);
        break;
    case EXEC_RECORD:
        check_str("stream", m->rec.stream, 0);
        check_str("id", m->rec.id, 0);
        FUZZ_CHECK(m->rec.stream[0] && m->rec.id[0], "empty stream or id");
        check_str("title", m->rec.title, 1);
        check_str("url", m->rec.url, 1);
        FUZZ_CHECK(m->rec.body || !m->rec.body_len, "NULL body of %zu bytes", m->rec.body_len);
        for (size_t i = 0; i < m->rec.body_len; i++)
            sum ^= (unsigned char)m->rec.body[i];
        (void)sum;
        if (m->rec.metadata_json)
            check_object_text("metadata", m->rec.metadata_json);
        FUZZ_CHECK(m->rec.updated_at_ms >= 0, "updated_at_ms %lld",
                   (long long)m->rec.updated_at_ms);
        FUZZ_CHECK(m->rec.acl == (m->has_acl ? &m->acl : NULL), "rec.acl and has_acl disagree");
        check_acl(m);
        break;
    case EXEC_DELETE:
        check_str("stream", m->stream, 0);
        check_str("id", m->id, 0);
        break;
    case EXEC_ACL:
        check_str("stream", m->stream, 0);
        check_str("id", m->id, 0);
        check_acl(m);
        break;
    case EXEC_PRINCIPAL:
        check_str("id", m->principal.id, 0);
        FUZZ_CHECK(m->principal.kind == CTX_PRINCIPAL_USER
                       ? !strncmp(m->principal.id, "user:", 5) && !m->principal.n_members
                       : m->principal.kind == CTX_PRINCIPAL_GROUP &&
                             !strncmp(m->principal.id, "group:", 6) && !m->principal.maps_to,
                   "kind %d, id \"%s\"", m->principal.kind, m->principal.id);
        check_str("display_name", m->principal.display_name, 1);
        check_str("email", m->principal.email, 1);
        check_str("maps_to", m->principal.maps_to, 1);
        check_list("members", m->principal.members, m->principal.n_members, "");
        break;
    case EXEC_STATE:
        check_str("stream", m->stream, 0);
        check_object_text("state", m->json);
        break;
    case EXEC_LOG:
        FUZZ_CHECK(m->level >= CTX_CONN_LOG_DEBUG && m->level <= CTX_CONN_LOG_ERROR, "level %d",
                   m->level);
        check_str("message", m->message, 0);
        break;
    case EXEC_ERROR:
        check_str("message", m->message, 0);
        FUZZ_CHECK(m->code == 0 || m->code == CTX_CONN_ECONFIG || m->code == CTX_CONN_ESOURCE ||
                       m->code == CTX_CONN_EAUTH, "code %d", m->code);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    exec_msg m, again;
    ctx_error err;
    char *text;

    memset(&err, 0, sizeof err);
    if (ctx__exec_parse_line((const char *)data, size, &m, &err)) {
        FUZZ_CHECK(err.code && err.text[0] && memchr(err.text, 0, sizeof err.text),
                   "refused with code %d and no message", err.code);
        FUZZ_CHECK(m.root == NULL && m.json == NULL && m.lists == NULL,
                   "a refused line left something to free");
        return 0;
    }
    check_msg(&m);
    /* What was accepted is accepted again when printed back. */
    text = json_dumps(m.root, JSON_COMPACT);
    FUZZ_CHECK(text != NULL, "cannot print the accepted message");
    FUZZ_CHECK(ctx__exec_parse_line(text, strlen(text), &again, &err) == 0,
               "re-printed message refused: %s (%s)", err.text, text);
    FUZZ_CHECK(again.type == m.type, "type %d became %d", m.type, again.type);
    ctx__exec_msg_free(&again);
    free(text);
    ctx__exec_msg_free(&m);
    return 0;
}
