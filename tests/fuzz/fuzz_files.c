/*
 * fuzz_files.c - libFuzzer target for the files connector's parsers: the
 * input is written into a scratch tree as a Markdown and a text document
 * (front matter), a JSON document, a folder _acl.json, a sidecar
 * <file>.acl.json and _principals.json in turn, and the connector reads the
 * tree through a small host whose emitters check every message the way the
 * real host relies on (ids and streams set, body_len readable, JSON that
 * parses) and count them: reading from the bare tree's checkpoint must send
 * exactly what the added file changed. The host holds the ids it was sent
 * and answers xNextId from them, as the sync runner does from the store.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ctxgate/connector.h"
#include "fuzz.h"

extern const ctx_connector ctx__files_connector;

/* The host's side of a read: what it saw, for the checks after xRead. */
struct ctx_emitter {
    const char *stream;     /* the stream being read */
    size_t max_body;        /* no body can be longer than the input file */
    int records, deletes, acls, principals, states;
    char *last_state;       /* new; the last STATE's JSON */
    char held[8][32];       /* the ids the host holds (the tree has few, all short) */
    int nheld;
};

static char root[64];
static void *conn;
static char *base_state;    /* the checkpoint of the bare tree */
static ctx_emitter base_em; /* what the host holds after reading it */

static int held_at(const ctx_emitter *em, const char *id)
{
    for (int i = 0; i < em->nheld; i++)
        if (!strcmp(em->held[i], id))
            return i;
    return -1;
}

static void check_json_object(const char *what, const char *s)
{
    json_error_t jerr;
    json_t *j;

    FUZZ_CHECK(s != NULL, "%s is NULL", what);
    j = json_loads(s, 0, &jerr);
    FUZZ_CHECK(json_is_object(j), "%s is not a JSON object: %s (%s)", what, s, jerr.text);
    json_decref(j);
}

static void check_str(const char *what, const char *s)
{
    FUZZ_CHECK(s != NULL, "%s is NULL", what);
    FUZZ_CHECK(strlen(s) < (1u << 24), "%s is absurdly long", what);
}

static void check_list(const char *what, const char *const *v, size_t n)
{
    FUZZ_CHECK(n == 0 || v != NULL, "%s: %zu entries but no array", what, n);
    for (size_t i = 0; i < n; i++)
        check_str(what, v[i]);
}

static void check_acl(const ctx_acl *acl)
{
    if (!acl)
        return;
    check_list("acl.allow", acl->allow, acl->n_allow);
    check_list("acl.deny", acl->deny, acl->n_deny);
    check_list("acl.labels", acl->labels, acl->n_labels);
}

static void check_stream(ctx_emitter *em, const char *stream)
{
    check_str("stream", stream);
    FUZZ_CHECK(!strcmp(stream, em->stream), "message for stream \"%s\" while reading \"%s\"",
               stream, em->stream);
}

static int h_record(ctx_emitter *em, const ctx_record *rec)
{
    volatile unsigned char sum = 0;

    FUZZ_CHECK(rec != NULL, "RECORD without a record");
    check_stream(em, rec->stream);
    check_str("record id", rec->id);
    FUZZ_CHECK(rec->id[0], "empty record id");
    if (rec->title)
        check_str("title", rec->title);
    if (rec->url)
        check_str("url", rec->url);
    FUZZ_CHECK(rec->body || !rec->body_len, "body is NULL with body_len %zu", rec->body_len);
    FUZZ_CHECK(rec->body_len <= em->max_body, "body_len %zu is longer than any file (%zu)",
               rec->body_len, em->max_body);
    /* Touch every byte: ASan reports a body_len past the buffer. */
    for (size_t i = 0; i < rec->body_len; i++)
        sum ^= (unsigned char)rec->body[i];
    (void)sum;
    if (rec->metadata_json)
        check_json_object("metadata_json", rec->metadata_json);
    FUZZ_CHECK(rec->updated_at_ms >= 0, "updated_at_ms %lld", (long long)rec->updated_at_ms);
    check_acl(rec->acl);
    em->records++;
    if (held_at(em, rec->id) < 0 && em->nheld < 8 && strlen(rec->id) < sizeof em->held[0])
        strcpy(em->held[em->nheld++], rec->id);
    return 0;
}

static int h_delete(ctx_emitter *em, const char *stream, const char *id)
{
    check_stream(em, stream);
    check_str("delete id", id);
    em->deletes++;
    {
        int i = held_at(em, id);
        if (i >= 0)
            memmove(em->held[i], em->held[i + 1], (size_t)(--em->nheld - i) * sizeof em->held[0]);
    }
    return 0;
}

static int h_acl(ctx_emitter *em, const char *stream, const char *id, const ctx_acl *acl)
{
    check_stream(em, stream);
    check_str("acl id", id);
    check_acl(acl);
    em->acls++;
    return 0;
}

static int h_principal(ctx_emitter *em, const ctx_principal *p)
{
    FUZZ_CHECK(p != NULL, "PRINCIPAL without a principal");
    check_str("principal id", p->id);
    if (p->kind == CTX_PRINCIPAL_USER)
        FUZZ_CHECK(!strncmp(p->id, "user:", 5), "user \"%s\"", p->id);
    else
        FUZZ_CHECK(p->kind == CTX_PRINCIPAL_GROUP && !strncmp(p->id, "group:", 6),
                   "kind %d, id \"%s\"", p->kind, p->id);
    check_list("members", p->members, p->n_members);
    if (p->display_name)
        check_str("display_name", p->display_name);
    if (p->email)
        check_str("email", p->email);
    if (p->maps_to)
        check_str("maps_to", p->maps_to);
    em->principals++;
    return 0;
}

static int h_state(ctx_emitter *em, const char *stream, const char *state_json)
{
    check_stream(em, stream);
    check_json_object("state_json", state_json);
    free(em->last_state);
    em->last_state = strdup(state_json);
    em->states++;
    return 0;
}

static void h_log(ctx_emitter *em, int level, const char *msg)
{
    (void)em;
    FUZZ_CHECK(level >= CTX_CONN_LOG_DEBUG && level <= CTX_CONN_LOG_ERROR, "log level %d",
               level);
    check_str("log message", msg);
}

static int h_next_id(ctx_emitter *em, const char *stream, const char *after, const char **id)
{
    const char *best = NULL;

    check_stream(em, stream);
    for (int i = 0; i < em->nheld; i++)
        if ((!after || strcmp(em->held[i], after) > 0) && (!best || strcmp(em->held[i], best) < 0))
            best = em->held[i];
    *id = best;
    return 0;
}

static const ctx_host host = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_host), h_record, h_delete, h_acl,
    h_principal, h_state, h_log, NULL, h_next_id,
};

/*
 * xRead one stream with the host holding what it held after the read
 * `from` (NULL: nothing); returns the connector's result, em filled in.
 */
static int read_stream(const char *stream, const char *state, size_t max_body, ctx_emitter *em,
                       const ctx_emitter *from)
{
    ctx_conn_error e;
    int rc;

    memset(em, 0, sizeof *em);
    if (from) {
        memcpy(em->held, from->held, sizeof em->held);
        em->nheld = from->nheld;
    }
    memset(&e, 0, sizeof e);
    em->stream = stream;
    em->max_body = max_body;
    rc = ctx__files_connector.xRead(conn, stream, state, 0, &host, em, &e);
    if (rc) {
        FUZZ_CHECK(e.code == rc, "xRead(%s) returned %d, err.code %d", stream, rc, e.code);
        FUZZ_CHECK(e.text[0] && memchr(e.text, 0, sizeof e.text),
                   "xRead(%s) failed with %d and no message", stream, rc);
    } else {
        /* A read that finished ends with a checkpoint. */
        FUZZ_CHECK(em->states >= 1, "xRead(%s) succeeded without a STATE", stream);
    }
    return rc;
}

static void put(const char *rel, const void *data, size_t size)
{
    char path[256];
    int fd;

    snprintf(path, sizeof path, "%s/%s", root, rel);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0, "%s: %s", path, strerror(errno));
    FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size, "%s: short write", path);
    close(fd);
}

static void drop(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    unlink(path);
}

/* At exit (libFuzzer's time limit ends with exit()), remove the tree. */
static void cleanup(void)
{
    static const char *const files[] = {"doc.md", "doc.txt", "doc.json", "_acl.json",
                                        "plain.md.acl.json", "_principals.json",
                                        "plain.md", "sub/note.md", NULL};
    char path[256];

    if (conn)
        ctx__files_connector.xClose(conn);
    conn = NULL;
    free(base_state);
    for (const char *const *f = files; *f; f++)
        drop(*f);
    snprintf(path, sizeof path, "%s/sub", root);
    rmdir(path);
    rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The tree: plain.md (no permissions of its own) and sub/note.md (the same,
 * one folder down, so the _acl.json lookup walks up). Each input adds files
 * and takes them away again; base_state is the checkpoint of the bare tree,
 * so every read says exactly what the added file changed.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char plain[] = "# Plain\n\nNo front matter here.\n";
    static const char note[] = "Just a note.\nSecond line.\n";
    ctx_conn_error e;
    ctx_emitter em;
    char cfg[128], path[128];

    (void)argc;
    (void)argv;
    snprintf(root, sizeof root, "%s/ctxgate-fuzz-files.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    FUZZ_CHECK(mkdtemp(root), "mkdtemp %s: %s", root, strerror(errno));
    atexit(cleanup);
    snprintf(path, sizeof path, "%s/sub", root);
    FUZZ_CHECK(mkdir(path, 0700) == 0, "mkdir %s: %s", path, strerror(errno));
    put("plain.md", plain, sizeof plain - 1);
    put("sub/note.md", note, sizeof note - 1);
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"}", root);
    memset(&e, 0, sizeof e);
    FUZZ_CHECK(ctx__files_connector.xOpen(cfg, &conn, &e) == CTX_CONN_OK, "xOpen: %s", e.text);
    FUZZ_CHECK(read_stream("files", NULL, 64, &em, NULL) == CTX_CONN_OK && em.records == 2,
               "reading the bare tree gave %d records", em.records);
    base_state = em.last_state;
    em.last_state = NULL;
    base_em = em;
    return 0;
}

/*
 * After a read from base_state: what it must have sent, when it succeeded.
 * A file whose text or permissions cannot be parsed is skipped and
 * retracted instead (a DELETE), so each expected message may have become a
 * DELETE, but nothing may be sent twice or go missing.
 */
static void expect(int rc, const ctx_emitter *em, int records, int acls, const char *what)
{
    if (rc)
        return;
    FUZZ_CHECK(em->records <= records && em->acls <= acls &&
                   em->records + em->acls + em->deletes == records + acls,
               "%s: %d records, %d ACLs, %d deletes; expected %d records and %d ACLs"
               " (each possibly retracted instead)", what, em->records, em->acls, em->deletes,
               records, acls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Bodies come from the input or the two fixed files, both short. */
    size_t max_body = size > 64 ? size : 64;
    ctx_emitter em, again;
    int rc;

    /* Markdown and plain text (both may have front matter) are new; read
     * again from the new checkpoint, nothing changed, so nothing is sent. */
    put("doc.md", data, size);
    put("doc.txt", data, size);
    rc = read_stream("files", base_state, max_body, &em, &base_em);
    expect(rc, &em, 2, 0, "doc.md + doc.txt");
    if (!rc) {
        FUZZ_CHECK(read_stream("files", em.last_state, max_body, &again, &em) == CTX_CONN_OK,
                   "the first read succeeded, re-reading the same tree failed");
        /* Skipped files are tried (and retracted) again; nothing else is sent. */
        FUZZ_CHECK(again.records == 0 && again.acls == 0 && again.deletes == em.deletes,
                   "unchanged tree: %d records, %d ACLs, %d deletes after %d skipped",
                   again.records, again.acls, again.deletes, em.deletes);
        free(again.last_state);
    }
    free(em.last_state);
    drop("doc.md");
    drop("doc.txt");

    /* A JSON document: {"title", "body", "url", "allow", ...}. */
    put("doc.json", data, size);
    rc = read_stream("files", base_state, max_body, &em, &base_em);
    expect(rc, &em, 1, 0, "doc.json");
    free(em.last_state);
    drop("doc.json");

    /* Folder permissions: plain.md and sub/note.md both resolve to them,
     * and only their ACL changed. */
    put("_acl.json", data, size);
    rc = read_stream("files", base_state, max_body, &em, &base_em);
    expect(rc, &em, 0, 2, "_acl.json");
    free(em.last_state);
    drop("_acl.json");

    /* A sidecar for plain.md: a permission file came, so both files'
     * permissions are sent again (the host keeps what did not change). */
    put("plain.md.acl.json", data, size);
    rc = read_stream("files", base_state, max_body, &em, &base_em);
    expect(rc, &em, 0, 2, "plain.md.acl.json");
    free(em.last_state);
    drop("plain.md.acl.json");

    /* Users and groups. */
    put("_principals.json", data, size);
    read_stream("principals", NULL, max_body, &em, NULL);
    free(em.last_state);
    drop("_principals.json");
    return 0;
}
