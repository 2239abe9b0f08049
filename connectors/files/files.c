/*
 * files.c - the files connector: a directory tree of Markdown, text and
 * JSON documents. Permissions come from front matter, a sidecar
 * `<file>.acl.json`, or the nearest `_acl.json` above the file; users and
 * groups from `_principals.json` at the root. Incremental by ctime since the
 * last walk began; files that disappeared become DELETEs, found by walking
 * the tree beside the host's ids (xNextId). The checkpoint is a cursor.
 *
 * Streams: "principals" (from _principals.json) and "files".
 *
 * A file's url is its front matter's, else url_base joined with its path,
 * else none: the server's own paths (file://...) never leave it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../../core/opts.h"
#include "../../core/util.h"
#include "../registry.h"
#include "../sdk/ctxgate/connector.h"
#include "../../core/json.h"
#include "links.h"
#include "meta.h"

typedef struct files_cfg {
    char *path;
    ctx_strlist extensions;
    int64_t state_every;
    char *url_base;
} files_cfg;

static const ctx_opt files_opts[] = {
    {"path", CTX_OPT_STRING, NULL, offsetof(files_cfg, path), 1,
     "root directory of the documents", NULL, 0},
    {"extensions", CTX_OPT_STRLIST, NULL, offsetof(files_cfg, extensions), 0,
     "file extensions to index (default .md, .markdown, .txt, .json)", NULL, 0},
    {"state_every", CTX_OPT_INT, "1000", offsetof(files_cfg, state_every), 0,
     "emit a checkpoint after this many files", NULL, 0},
    {"url_base", CTX_OPT_STRING, NULL, offsetof(files_cfg, url_base), 0,
     "http(s) address the tree is published at, e.g. \"https://wiki.corp.test/docs\": a"
     " file's url is it joined with the file's path (front matter url wins); without it"
     " a file has no url", NULL, 0},
    CTX_OPT_END,
};

typedef struct files_conn {
    files_cfg cfg;
} files_conn;


static const char *files_spec(void)
{
    static char *spec;
    if (!spec) {
        json_t *s = ctx_opts_schema(files_opts, "files connector");
        spec = ctx_json_text(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(s);
    }
    return spec;
}

static int files_open(const char *config_json, void **pconn, ctx_conn_error *e)
{
    files_conn *c;
    ctx_error err;
    int rc;

    if (!(c = ctx_calloc(1, sizeof *c)))
        return conn_errf(e, CTX_CONN_ENOMEM, "out of memory");
    if ((rc = ctx_opts_parse_text(files_opts, config_json, &c->cfg, &err))) {
        ctx_free(c);
        return conn_errf(e, rc, "%s", err.text);
    }
    if (c->cfg.state_every < 1)
        c->cfg.state_every = 1000;
    if (c->cfg.url_base && !files__url_ok(c->cfg.url_base)) {
        rc = conn_errf(e, CTX_CONN_ECONFIG, "url_base: \"%.200s\" is not an http(s) address;"
                       " give where readers open the tree, e.g. \"https://wiki.corp.test/docs\","
                       " or leave it out (files then carry no url)", c->cfg.url_base);
        ctx_opts_free(files_opts, &c->cfg);
        ctx_free(c);
        return rc;
    }
    {
        /* Absolute root: messages then name the real place. */
        char real[PATH_MAX];
        if (realpath(c->cfg.path, real)) {
            char *dup = ctx_strdup(real);
            if (dup) {
                ctx_free(c->cfg.path);
                c->cfg.path = dup;
            }
        }
    }
    *pconn = c;
    return CTX_CONN_OK;
}

static void files_close(void *conn)
{
    files_conn *c = conn;
    ctx_opts_free(files_opts, &c->cfg);
    ctx_free(c);
}

static int files_check(void *conn, ctx_conn_error *e)
{
    files_conn *c = conn;
    struct stat sb;

    if (stat(c->cfg.path, &sb) < 0)
        return conn_errf(e, CTX_CONN_ESOURCE, "path: %s: %s; point \"path\" at an existing"
                      " directory", c->cfg.path, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return conn_errf(e, CTX_CONN_ESOURCE, "path: %s is not a directory", c->cfg.path);
    return CTX_CONN_OK;
}

static int files_discover(void *conn, ctx_stream_fn fn, void *arg, ctx_conn_error *e)
{
    int rc = files_check(conn, e);
    if (rc)
        return rc;
    if (fn(arg, "principals", "{\"kind\":\"principals\"}") ||
        fn(arg, "files", "{\"kind\":\"documents\"}"))
        return conn_errf(e, CTX_CONN_ECANCELED, "discover stopped by the host");
    return CTX_CONN_OK;
}

/*
 * The checkpoint, the same size however large the tree (see the README's
 * "Incremental syncs"): where the walk is, when it began, and a sum over
 * the permission files it passed. What each file was, is in the store.
 */
enum { PHASE_FILES = 0, PHASE_ACLS = 1 };

typedef struct files_state {
    int64_t since;       /* ns: start of the last finished walk; 0: none, send every file */
    int64_t start;       /* ns: start of this walk */
    uint64_t perm[2];    /* sum of the permission files' fingerprints walked so far */
    uint64_t prev[2];    /* the same sum at the end of the last finished walk */
    int has_prev;
    int phase;           /* PHASE_FILES, then PHASE_ACLS when the permission files changed */
    char *after;         /* resume after this path (new); NULL: from the start */
} files_state;

/* A folder on the walk's path, with its _acl.json once a file needed it. */
typedef struct dir_frame {
    char *dir;        /* the folder's path from the root, "" for the root (new) */
    json_t *acl;      /* parsed _acl.json (new reference), or NULL */
    int loaded;       /* 0: not read yet; 1: read (acl may be NULL); -1: broken */
    char *why;        /* why it is broken (new) */
} dir_frame;

typedef struct walk {
    files_conn *c;
    const ctx_host *host;
    ctx_emitter *em;
    ctx_conn_error *e;
    files_state st;
    dir_frame *frames;   /* one per folder from the root to the one being walked */
    size_t depth, cap;
    char *known;         /* the next id the host holds (new), in a merge; NULL: none left */
    int merge;           /* the host lists its ids (xNextId): deletions are found */
    int64_t since_state;
    int full;            /* send every file (a full or permission read) */
    int acl_only;        /* stat, sidecars, front matter; ACLs only (permission read, ACL pass) */
    int perm_read;       /* xReadPermissions: its STATEs are commit points only */
} walk;

static int is_doc(const files_conn *c, const char *name)
{
    static const char *const def[] = {".md", ".markdown", ".txt", ".json", NULL};
    const char *dot = strrchr(name, '.');
    size_t i;

    if (!dot || name[0] == '.' || name[0] == '_' || strstr(name, ".acl.json"))
        return 0;
    if (c->cfg.extensions.n) {
        for (i = 0; i < c->cfg.extensions.n; i++) {
            const char *x = c->cfg.extensions.v[i];
            if (!strcasecmp(dot + 1, x[0] == '.' ? x + 1 : x))
                return 1;
        }
        return 0;
    }
    for (i = 0; def[i]; i++)
        if (!strcasecmp(dot, def[i]))
            return 1;
    return 0;
}

/*
 * folder_acl - the nearest _acl.json at or above the folder being walked
 * (borrowed), or NULL when there is none. Each is read the first time a
 * file needs it, and kept while the walk is inside its folder. A broken one
 * sets *bad and w->e.
 */
static json_t *folder_acl(walk *w, int *bad)
{
    char path[PATH_MAX], why[512];
    size_t i = w->depth;

    while (i-- > 0) {
        dir_frame *f = &w->frames[i];
        if (!f->loaded) {
            int missing;
            snprintf(path, sizeof path, "%s/%s%s_acl.json", w->c->cfg.path, f->dir,
                     *f->dir ? "/" : "");
            why[0] = '\0';
            f->acl = files__load_json(path, why, sizeof why, &missing);
            f->loaded = 1;
            if (!f->acl && !missing) {
                f->loaded = -1;
                f->why = ctx_strdup(why);
            }
        }
        if (f->loaded < 0) {
            conn_errf(w->e, CTX_CONN_ESOURCE, "%s; fix the file", f->why ? f->why : "_acl.json");
            *bad = 1;
            return NULL;
        }
        if (f->acl)
            return f->acl;
    }
    return NULL;
}

/* ---- one file ---- */

static const char *first_heading(const char *body, size_t len, char *buf, size_t buflen)
{
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        while (i < len && body[i] != '\n')
            i++;
        if (i - s > 2 && body[s] == '#' && body[s + 1] == ' ') {
            snprintf(buf, buflen, "%.*s", (int)(i - s - 2), body + s + 2);
            return buf;
        }
        i++;
    }
    return NULL;
}

/* A plain text file's title is its first non-blank line. */
static const char *first_line(const char *body, size_t len, char *buf, size_t buflen)
{
    size_t i = 0, s, e;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    s = i;
    while (i < len && body[i] != '\n')
        i++;
    e = i;
    while (e > s && (body[e - 1] == ' ' || body[e - 1] == '\r'))
        e--;
    if (e == s || e - s > 200)
        return NULL;
    snprintf(buf, buflen, "%.*s", (int)(e - s), body + s);
    return buf;
}

/* warn - a warning about file rel, of kind (a key the host summarizes by). */
static void warn(walk *w, const char *kind, const char *rel, const char *msg)
{
    char line[PATH_MAX + 256];

    if (CTX_HOST_HAS(w->host, xWarn)) {
        w->host->xWarn(w->em, kind, "files", rel, msg);
        return;
    }
    snprintf(line, sizeof line, "%s: %s", rel, msg);
    w->host->xLog(w->em, CTX_CONN_LOG_WARN, line);
}

/*
 * skip_file - a file whose text or permissions cannot be read is not
 * indexed: it is logged and retracted if an earlier version was indexed
 * (fail closed: its old permissions may be the ones being fixed). The host
 * then does not hold it, so the next run tries it again. The other files
 * go on.
 */
static int skip_file(walk *w, const char *rel, const char *why)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s; skipped until fixed", rel, why);
    w->host->xLog(w->em, CTX_CONN_LOG_ERROR, msg);
    return w->host->xDelete(w->em, "files", rel) ? CTX_CONN_ECANCELED : CTX_CONN_OK;
}

/*
 * has_own_acl - whether a permission read must open the file: a JSON item
 * or a front matter ("---" first line) may carry the allow list. Other
 * files get theirs from a sidecar or _acl.json, and stat() is all they cost.
 */
static int has_own_acl(const char *abs, const char *ext)
{
    char head[4];
    FILE *f;
    size_t n;

    if (ext && !strcasecmp(ext, ".json"))
        return 1;
    if (!(f = fopen(abs, "rb")))
        return 1; /* let the full open report it */
    n = fread(head, 1, sizeof head, f);
    fclose(f);
    return n == 4 && !strncmp(head, "---", 3) && (head[3] == '\n' || head[3] == '\r');
}

/*
 * emit_file - send the file rel (at abs, stat sb): a RECORD with its text
 * and permissions, or with acl_only its permissions alone (an ACL).
 */
static int emit_file(walk *w, const char *rel, const char *abs, const struct stat *sb)
{
    char *text = NULL, why[512] = "", sidecar[PATH_MAX], titlebuf[256], *url = NULL;
    size_t len = 0, body_off = 0;
    json_t *fm = NULL, *doc = NULL, *acl_obj = NULL, *side = NULL, *meta, *item = NULL;
    json_t *merged = NULL;
    const char *title = NULL, *body, *ext = strrchr(rel, '.');
    file_acl acl;
    ctx_acl cacl;
    ctx_record rec;
    int rc = CTX_CONN_OK, missing, bad = 0;
    char *meta_s = NULL;

    memset(&acl, 0, sizeof acl);
    if (w->acl_only && !has_own_acl(abs, ext)) {
        text = NULL; /* the ACL is in a sidecar or _acl.json: no need to read it */
    } else if (ctx_read_file(abs, &text, &len)) {
        /* Vanished between readdir and open: gone, as far as this run knows. */
        warn(w, "files.vanished", rel, "file vanished while reading; skipped");
        return w->host->xDelete(w->em, "files", rel) ? CTX_CONN_ECANCELED : CTX_CONN_OK;
    }
    body = text;

    if (!text) {
        body = "";
    } else if (ext && !strcasecmp(ext, ".json")) {
        json_error_t jerr;
        doc = ctx_json_loadb(text, len, 0, &jerr);
        if (json_is_object(doc) && json_is_string(json_object_get(doc, "body"))) {
            body = json_string_value(json_object_get(doc, "body"));
            len = json_string_length(json_object_get(doc, "body"));
            title = json_string_value(json_object_get(doc, "title"));
            item = doc;
        }
    } else if (files__front_matter(text, len, &fm, &body_off, why, sizeof why) < 0) {
        rc = skip_file(w, rel, why);
        goto done;
    } else if (fm) {
        body = text + body_off;
        len -= body_off;
        title = json_string_value(json_object_get(fm, "title"));
        item = fm;
    }
    /*
     * The item's own allow list wins. Without one, the sidecar or the
     * nearest _acl.json applies, and an item's deny and labels are added to
     * it (a deny-only item still denies).
     */
    if (item && json_object_get(item, "allow")) {
        acl_obj = item;
    } else {
        snprintf(sidecar, sizeof sidecar, "%s.acl.json", abs);
        side = files__load_json(sidecar, why, sizeof why, &missing);
        if (!side && !missing) {
            rc = skip_file(w, rel, why);
            goto done;
        }
        acl_obj = side;
        if (!acl_obj) {
            acl_obj = folder_acl(w, &bad);
            if (bad) {
                rc = w->e->code == CTX_CONN_ENOMEM ? w->e->code : skip_file(w, rel, w->e->text);
                goto done;
            }
        }
        if (item && (json_object_get(item, "deny") || json_object_get(item, "labels"))) {
            static const char *const extend[] = {"deny", "labels"};
            merged = acl_obj ? json_deep_copy(acl_obj) : json_object();
            for (int k = 0; merged && k < 2; k++) {
                json_t *add = json_object_get(item, extend[k]), *to;
                if (!json_is_array(add))
                    continue;
                to = json_object_get(merged, extend[k]);
                if (json_is_array(to))
                    json_array_extend(to, add);
                else
                    json_object_set(merged, extend[k], add);
            }
            acl_obj = merged;
        }
    }
    if (acl_obj && files__acl_from(acl_obj, &acl, why, sizeof why) < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "permissions: %s", why);
        rc = skip_file(w, rel, msg);
        goto done;
    }

    cacl.allow = acl.allow;
    cacl.n_allow = acl.n_allow;
    cacl.deny = acl.deny;
    cacl.n_deny = acl.n_deny;
    cacl.labels = acl.labels;
    cacl.n_labels = acl.n_labels;
    if (w->acl_only) {
        /* every file, changed or not: the host compares and keeps it */
        if (w->host->xAcl(w->em, "files", rel, acl_obj ? &cacl : NULL))
            rc = CTX_CONN_ECANCELED;
        goto done;
    }
    if (!acl_obj)
        warn(w, "files.no_acl", rel, "file has no permissions (front matter, sidecar or"
             " _acl.json): nobody will see it");

    if (!title)
        title = first_heading(body, len, titlebuf, sizeof titlebuf);
    if (!title && ext && !strcasecmp(ext, ".txt"))
        title = first_line(body, len, titlebuf, sizeof titlebuf);
    if (!title) {
        const char *base = strrchr(rel, '/');
        title = base ? base + 1 : rel;
    }
    /* The author's url, else one under url_base; never the server's path. */
    if (fm && json_is_string(json_object_get(fm, "url")))
        url = ctx_strdup(json_string_value(json_object_get(fm, "url")));
    else if (doc && json_is_string(json_object_get(doc, "url")))
        url = ctx_strdup(json_string_value(json_object_get(doc, "url")));
    else if (w->c->cfg.url_base && !(url = files__url(w->c->cfg.url_base, rel)))
        warn(w, "files.url", rel, "out of memory building its url; sent without one");
    meta = json_pack("{s:s,s:I}", "path", rel, "size", (json_int_t)sb->st_size);
    meta_s = ctx_json_text(meta, JSON_COMPACT);
    json_decref(meta);

    memset(&rec, 0, sizeof rec);
    rec.stream = "files";
    rec.id = rel;
    rec.title = title;
    rec.url = url; /* NULL: no url */
    rec.body = body;
    rec.body_len = len;
    rec.metadata_json = meta_s;
    rec.updated_at_ms = (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
    rec.acl = acl_obj ? &cacl : NULL;
    if (w->host->xRecord(w->em, &rec))
        rc = CTX_CONN_ECANCELED;
done:
    ctx_free(url);
    files__acl_free(&acl);
    json_decref(merged);
    json_decref(fm);
    json_decref(doc);
    json_decref(side);
    free(meta_s);
    ctx_free(text);
    return rc;
}

/* ---- the checkpoint ---- */

static void sum_hex(const uint64_t v[2], char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)v[0], (unsigned long long)v[1]);
}

static int hex_sum(const char *s, uint64_t v[2])
{
    char half[17];

    if (!s || strlen(s) != 32 || s[strspn(s, "0123456789abcdef")])
        return -1;
    for (int i = 0; i < 2; i++) {
        memcpy(half, s + 16 * i, 16);
        half[16] = '\0';
        v[i] = strtoull(half, NULL, 16);
    }
    return 0;
}

/*
 * state_parse - the checkpoint text into *st (st->after new). Anything
 * else, the per-file map of versions before 2 included, is no checkpoint:
 * since = 0, so every file is sent again (the host skips unchanged text
 * by its hash) and deletions are still found. So is one whose walks
 * linked files under another url_base than links ("" for none; before
 * "links" was kept, files linked to their file:// path): every url then
 * changes, and only a whole walk sends them. Never fails.
 */
static void state_parse(const char *text, const char *links, files_state *st)
{
    json_t *j = text ? ctx_json_loads(text, 0, NULL) : NULL, *v;

    memset(st, 0, sizeof *st);
    if (!json_is_object(j) || json_integer_value(json_object_get(j, "walk")) != 2)
        goto done;
    v = json_object_get(j, "links");
    if (!json_is_string(v) || strcmp(json_string_value(v), links))
        goto done;
    v = json_object_get(j, "since");
    st->since = json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
    st->has_prev = !hex_sum(json_string_value(json_object_get(j, "prev")), st->prev);
    v = json_object_get(j, "start");
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        goto done; /* a finished walk: the next one starts afresh */
    if (hex_sum(json_string_value(json_object_get(j, "perm")), st->perm))
        goto done;
    st->start = json_integer_value(v);
    v = json_object_get(j, "phase");
    st->phase = json_is_string(v) && !strcmp(json_string_value(v), "acls") ? PHASE_ACLS
                                                                          : PHASE_FILES;
    v = json_object_get(j, "after");
    if (json_is_string(v) && json_string_length(v) && !memchr(json_string_value(v), 0,
                                                              json_string_length(v)))
        st->after = ctx_strdup(json_string_value(v));
done:
    json_decref(j);
}

/*
 * emit_state - a STATE: during a walk, its start, the permission sum so
 * far and the last file passed; after it (done), only what the next walk
 * compares with. Both name the url_base the files were linked under. A
 * permission read's STATE is a commit point only.
 */
static int emit_state(walk *w, int done, const char *after)
{
    char perm[33], prev[33], *s;
    const char *links = w->c->cfg.url_base ? w->c->cfg.url_base : "";
    json_t *j;
    int rc;

    if (w->perm_read) {
        w->since_state = 0;
        return w->host->xState(w->em, "files", "{\"permissions\":true}") ? CTX_CONN_ECANCELED
                                                                           : CTX_CONN_OK;
    }
    sum_hex(w->st.perm, perm);
    sum_hex(w->st.prev, prev);
    if (done)
        j = json_pack("{s:i,s:I,s:s,s:s}", "walk", 2, "since", (json_int_t)w->st.start, "prev",
                      perm, "links", links);
    else
        j = json_pack("{s:i,s:I,s:I,s:s,s:s*,s:s,s:s*,s:s}", "walk", 2, "since",
                      (json_int_t)w->st.since, "start", (json_int_t)w->st.start, "perm", perm,
                      "prev", w->st.has_prev ? prev : NULL, "phase",
                      w->st.phase == PHASE_ACLS ? "acls" : "files", "after", after, "links",
                      links);
    s = j ? ctx_json_text(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return conn_errf(w->e, CTX_CONN_ENOMEM, "out of memory");
    rc = w->host->xState(w->em, "files", s);
    free(s);
    w->since_state = 0;
    return rc ? CTX_CONN_ECANCELED : CTX_CONN_OK;
}

/*
 * walk_start - the time a walk starts, in ns, such that a file changed
 * after the walk looked at it gets a ctime at or after it, and a file
 * changed before the walk began an earlier one (so the next walk does not
 * read it again). File times come from a coarse clock that lags the real
 * one by a tick or more, or from the real clock (Linux's fine-grained
 * times for a file whose times were just read): take the real time, then
 * wait until the coarse clock has passed it. Should it not within 200 ms,
 * the coarse time is still right, and some unchanged files are read again.
 */
static int64_t walk_start(void)
{
    struct timespec t;
    int64_t real;

    clock_gettime(CLOCK_REALTIME, &t);
    real = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
#ifdef CLOCK_REALTIME_COARSE
    {
        const struct timespec nap = {0, 1000000};
        int64_t coarse = 0;
        for (int i = 0; i < 200; i++) {
            clock_gettime(CLOCK_REALTIME_COARSE, &t);
            coarse = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
            if (coarse >= real)
                return real;
            nanosleep(&nap, NULL);
        }
        return coarse;
    }
#else
    return real;
#endif
}

static int64_t ctime_ns(const struct stat *sb)
{
    return (int64_t)sb->st_ctim.tv_sec * 1000000000 + sb->st_ctim.tv_nsec;
}

/*
 * perm_add - add a permission file (_acl.json or a sidecar) to the walk's
 * sum: its path, inode, size and times. A sum does not depend on the
 * order, so a walk resumed halfway adds up to the same.
 */
static void perm_add(walk *w, const char *rel, const struct stat *sb)
{
    char hex[65], meta[96];
    const void *parts[2] = {rel, meta};
    size_t lens[2];
    uint64_t v[2];

    snprintf(meta, sizeof meta, "\n%llu:%lld:%lld.%09ld:%lld", (unsigned long long)sb->st_ino,
             (long long)sb->st_size, (long long)sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec,
             (long long)ctime_ns(sb));
    lens[0] = strlen(rel);
    lens[1] = strlen(meta);
    ctx_hash_hex(parts, lens, 2, hex);
    hex[32] = '\0';
    if (hex_sum(hex, v))
        return;
    w->st.perm[0] += v[0];
    w->st.perm[1] += v[1];
}

static int is_perm_file(const char *name)
{
    size_t n = strlen(name);
    return !strcmp(name, "_acl.json") || (n > 9 && !strcmp(name + n - 9, ".acl.json"));
}

/* ---- the walk ---- */

/* next_known - w->known becomes the host's next id after `after`. */
static int next_known(walk *w, const char *after)
{
    const char *id = NULL;
    int rc = w->host->xNextId(w->em, "files", after, &id);

    /* after may be w->known itself: it is freed only now. */
    ctx_free(w->known);
    w->known = NULL;
    if (rc)
        return CTX_CONN_ECANCELED;
    if (id && !(w->known = ctx_strdup(id)))
        return conn_errf(w->e, CTX_CONN_ENOMEM, "out of memory");
    return CTX_CONN_OK;
}

/*
 * merge_to - in a merge, every id the host holds before rel (or all that
 * are left, rel NULL) is gone from the tree: DELETE it. *held: the host
 * holds rel itself.
 */
static int merge_to(walk *w, const char *rel, int *held)
{
    int rc = CTX_CONN_OK;

    *held = 0;
    while (!rc && w->known && (!rel || strcmp(w->known, rel) < 0)) {
        if (w->host->xDelete(w->em, "files", w->known))
            return CTX_CONN_ECANCELED;
        rc = next_known(w, w->known);
    }
    if (!rc && rel && w->known && !strcmp(w->known, rel)) {
        *held = 1;
        rc = next_known(w, rel);
    }
    return rc;
}

/* One entry of a folder; dir: it is one (so it sorts as "name/"). */
typedef struct entry {
    char *name;
    int dir;
} entry;

/*
 * cmp_entry - the order of the paths the entries lead to: a folder "a"
 * as "a/", so that "a-b.md" < "a/x.md" as their paths compare. A walk
 * then passes every path in strcmp order, the host's order of ids.
 */
static int cmp_entry(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    const unsigned char *x = (const unsigned char *)a->name, *y = (const unsigned char *)b->name;

    while (*x && *x == *y)
        x++, y++;
    return (int)(*x ? *x : a->dir ? '/' : 0) - (int)(*y ? *y : b->dir ? '/' : 0);
}

/*
 * visit_file - one document in the walk: in a merge, DELETE the ids the
 * host holds before it; then send it when it is new to the host, changed
 * since the last walk began (ctime), or every file is to be sent.
 */
static int visit_file(walk *w, const char *rel, const char *abs, const struct stat *sb)
{
    int rc, held = 0;

    if (w->merge && (rc = merge_to(w, rel, &held)))
        return rc;
    if (w->full || w->acl_only || !w->st.since || (w->merge && !held) ||
        ctime_ns(sb) >= w->st.since)
        rc = emit_file(w, rel, abs, sb);
    else
        rc = CTX_CONN_OK;
    if (!rc && ++w->since_state >= w->c->cfg.state_every)
        rc = emit_state(w, 0, rel);
    return rc;
}

static int push_frame(walk *w, const char *rel)
{
    if (w->depth == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        dir_frame *f = ctx_realloc(w->frames, cap * sizeof *f);
        if (!f)
            return conn_errf(w->e, CTX_CONN_ENOMEM, "out of memory");
        w->frames = f;
        w->cap = cap;
    }
    memset(&w->frames[w->depth], 0, sizeof *w->frames);
    if (!(w->frames[w->depth].dir = ctx_strdup(rel)))
        return conn_errf(w->e, CTX_CONN_ENOMEM, "out of memory");
    w->depth++;
    return CTX_CONN_OK;
}

static void pop_frame(walk *w)
{
    dir_frame *f = &w->frames[--w->depth];
    ctx_free(f->dir);
    ctx_free(f->why);
    json_decref(f->acl);
}

/*
 * walk_dir - walk folder rel (relative to the root) in path order, one
 * folder's entries in memory at a time. When the walk resumes after
 * st.after, what sorts before it is passed by.
 */
static int walk_dir(walk *w, const char *rel)
{
    char abs[PATH_MAX], child_rel[PATH_MAX], child_abs[PATH_MAX];
    entry *ents = NULL;
    size_t n = 0, cap = 0, i;
    struct dirent *de;
    struct stat sb;
    DIR *d;
    int rc;

    snprintf(abs, sizeof abs, "%s%s%s", w->c->cfg.path, *rel ? "/" : "", rel);
    if (!(d = opendir(abs)))
        return conn_errf(w->e, CTX_CONN_ESOURCE, "%s: %s", abs, strerror(errno));
    if ((rc = push_frame(w, rel))) {
        closedir(d);
        return rc;
    }
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            entry *ne;
            cap = cap ? cap * 2 : 32;
            if (!(ne = ctx_realloc(ents, cap * sizeof *ne))) {
                rc = conn_errf(w->e, CTX_CONN_ENOMEM, "out of memory");
                goto done;
            }
            ents = ne;
        }
        if (!(ents[n].name = ctx_strdup(de->d_name))) {
            rc = conn_errf(w->e, CTX_CONN_ENOMEM, "out of memory");
            goto done;
        }
        ents[n].dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            snprintf(child_abs, sizeof child_abs, "%s/%s", abs, de->d_name);
            ents[n].dir = lstat(child_abs, &sb) == 0 && S_ISDIR(sb.st_mode);
        }
        n++;
    }
    if (n) /* qsort wants a non-NULL array even for none */
        qsort(ents, n, sizeof *ents, cmp_entry);
    for (i = 0; i < n && !rc; i++) {
        const char *name = ents[i].name;
        int doc = !ents[i].dir && is_doc(w->c, name), perm = !ents[i].dir && is_perm_file(name);
        if (!ents[i].dir && !doc && !perm)
            continue;
        if (!ctx_utf8_valid(name, strlen(name))) {
            /* The host would store a repaired id, which this walk would
             * never find again: the file would be deleted and sent anew
             * by every sync. */
            warn(w, "files.bad_name", *rel ? rel : ".", "a name in this folder is not valid"
                 " UTF-8; skipped, rename it");
            continue;
        }
        if ((size_t)snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, *rel ? "/" : "",
                             name) >= sizeof child_rel ||
            (size_t)snprintf(child_abs, sizeof child_abs, "%s/%s", w->c->cfg.path,
                             child_rel) >= sizeof child_abs) {
            rc = conn_errf(w->e, CTX_CONN_ESOURCE, "%s/%s: path longer than %d bytes", rel,
                           name, PATH_MAX);
            break;
        }
        if (w->st.after) {
            /* Resuming: pass by what the checkpoint covers. A folder sorts
             * as "name/", and the resume point may be inside it. */
            size_t len = strlen(child_rel);
            int c = strcmp(child_rel, w->st.after);
            if (ents[i].dir) {
                c = strncmp(child_rel, w->st.after, len);
                if (!c)
                    c = (unsigned char)'/' - (unsigned char)w->st.after[len];
                if (!c)
                    c = -2; /* the resume point is inside: go in */
                else if (c < 0)
                    continue;
            } else if (c <= 0) {
                continue;
            }
            if (c > 0) {
                ctx_free(w->st.after);
                w->st.after = NULL;
            }
        }
        if (lstat(child_abs, &sb) < 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            rc = walk_dir(w, child_rel);
        else if (S_ISREG(sb.st_mode) && perm && !w->acl_only)
            perm_add(w, child_rel, &sb);
        else if (S_ISREG(sb.st_mode) && doc)
            rc = visit_file(w, child_rel, child_abs, &sb);
    }
done:
    for (i = 0; i < n; i++)
        ctx_free(ents[i].name);
    ctx_free(ents);
    pop_frame(w);
    closedir(d);
    return rc;
}

static int read_files(files_conn *c, const char *state, int full, int perm,
                      const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    walk w;
    int rc;

    memset(&w, 0, sizeof w);
    w.c = c;
    w.host = host;
    w.em = em;
    w.e = e;
    w.full = full || perm;
    w.acl_only = perm;
    w.perm_read = perm;
    if ((rc = files_check(c, e)))
        return rc;
    if (!perm)
        state_parse(state, c->cfg.url_base ? c->cfg.url_base : "", &w.st);
    if (w.full || !w.st.start) {
        /* A new walk. A full one sends every file and resumes nowhere: a
         * killed full read is read whole again. */
        ctx_free(w.st.after);
        w.st.after = NULL;
        w.st.phase = PHASE_FILES;
        w.st.perm[0] = w.st.perm[1] = 0;
        w.st.start = walk_start();
    }
    /* Deletions come from the host's list; a host without one (an older
     * one, or one that keeps nothing) finds them by full reads. */
    w.merge = !w.full && CTX_HOST_HAS(host, xNextId);
    if (w.st.phase == PHASE_FILES) {
        if (w.merge)
            rc = next_known(&w, w.st.after);
        if (!rc)
            rc = walk_dir(&w, "");
        if (!rc && w.merge)
            rc = merge_to(&w, NULL, &(int){0});
        /* A permission file changed, came or went: every file's permissions
         * are checked again, as a permission read does (the host re-labels
         * those that differ). A first walk sent them all already. */
        if (!rc && !w.full && w.st.since && w.st.has_prev &&
            (w.st.perm[0] != w.st.prev[0] || w.st.perm[1] != w.st.prev[1])) {
            w.st.phase = PHASE_ACLS;
            rc = emit_state(&w, 0, NULL);
        }
    }
    if (!rc && w.st.phase == PHASE_ACLS) {
        w.acl_only = 1;
        w.merge = 0;
        rc = walk_dir(&w, "");
    }
    if (!rc)
        rc = emit_state(&w, 1, NULL);
    while (w.depth)
        pop_frame(&w);
    ctx_free(w.frames);
    ctx_free(w.known);
    ctx_free(w.st.after);
    return rc;
}

/* ---- principals ---- */

static int read_principals(files_conn *c, const ctx_host *host, ctx_emitter *em,
                           ctx_conn_error *e)
{
    char path[PATH_MAX], why[512] = "";
    json_t *root, *arr, *p;
    int missing, rc = CTX_CONN_OK;
    size_t i, j;

    snprintf(path, sizeof path, "%s/_principals.json", c->cfg.path);
    root = files__load_json(path, why, sizeof why, &missing);
    if (!root) {
        if (missing)
            return host->xState(em, "principals", "{}") ? CTX_CONN_ECANCELED : CTX_CONN_OK;
        return conn_errf(e, CTX_CONN_ESOURCE, "%s; fix the file", why);
    }
    arr = json_object_get(root, "users");
    json_array_foreach(arr, i, p) {
        ctx_principal pr;
        memset(&pr, 0, sizeof pr);
        pr.kind = CTX_PRINCIPAL_USER;
        pr.id = json_string_value(json_object_get(p, "id"));
        pr.display_name = json_string_value(json_object_get(p, "name"));
        pr.email = json_string_value(json_object_get(p, "email"));
        pr.maps_to = json_string_value(json_object_get(p, "maps_to"));
        if (!pr.id || strncmp(pr.id, "user:", 5)) {
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: users[%zu].id: expected \"user:<id>\"",
                           path, i);
            goto done;
        }
        if (host->xPrincipal(em, &pr)) {
            rc = CTX_CONN_ECANCELED;
            goto done;
        }
    }
    arr = json_object_get(root, "groups");
    json_array_foreach(arr, i, p) {
        ctx_principal pr;
        json_t *m = json_object_get(p, "members"), *mv;
        const char **members;
        memset(&pr, 0, sizeof pr);
        pr.kind = CTX_PRINCIPAL_GROUP;
        pr.id = json_string_value(json_object_get(p, "id"));
        pr.display_name = json_string_value(json_object_get(p, "name"));
        if (!pr.id || strncmp(pr.id, "group:", 6)) {
            rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: groups[%zu].id: expected \"group:<id>\"",
                           path, i);
            goto done;
        }
        members = ctx_calloc(json_array_size(m) + 1, sizeof *members);
        json_array_foreach(m, j, mv) {
            if (!json_is_string(mv)) {
                ctx_free(members);
                rc = conn_errf(e, CTX_CONN_ESOURCE, "%s: groups[%zu].members[%zu]: expected a"
                            " string", path, i, j);
                goto done;
            }
            members[pr.n_members++] = json_string_value(mv);
        }
        pr.members = members;
        rc = host->xPrincipal(em, &pr) ? CTX_CONN_ECANCELED : CTX_CONN_OK;
        ctx_free(members);
        if (rc)
            goto done;
    }
    rc = host->xState(em, "principals", "{}") ? CTX_CONN_ECANCELED : CTX_CONN_OK;
done:
    json_decref(root);
    return rc;
}

static int files_read(void *conn, const char *stream, const char *state, int full,
                      const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    files_conn *c = conn;

    if (!strcmp(stream, "principals"))
        return read_principals(c, host, em, e);
    if (!strcmp(stream, "files"))
        return read_files(c, state, full, 0, host, em, e);
    return conn_errf(e, CTX_CONN_EINVAL, "no stream \"%s\"; the files connector has"
                  " \"principals\" and \"files\"", stream);
}

/* files_read_permissions - stat every file, read only sidecars, _acl.json,
 * JSON items and front matter; one ACL message per file. */
static int files_read_permissions(void *conn, const char *stream, const char *state,
                                  const ctx_host *host, ctx_emitter *em, ctx_conn_error *e)
{
    files_conn *c = conn;

    (void)state; /* no resume point: a walk is cheap to start over */
    if (!strcmp(stream, "principals"))
        return read_principals(c, host, em, e);
    if (!strcmp(stream, "files"))
        return read_files(c, NULL, 0, 1, host, em, e);
    return conn_errf(e, CTX_CONN_EINVAL, "no stream \"%s\"; the files connector has"
                  " \"principals\" and \"files\"", stream);
}

const ctx_connector ctx__files_connector = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_connector), "files", "1.0.0",
    files_spec, files_open, files_check, files_discover, files_read, files_close,
    /* ---- version 2 ---- */
    files_read_permissions,
};
