/*
 * sync.c - the sync runner (see sync.h).
 */
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../core/util.h"
#include "../indexer/ingest.h"
#include "sync_pipe.h"
#include "../core/json.h"

/* ---- warning summary: kinds, counts and a few examples ---- */

#define WARN_EXAMPLES 3   /* shown as they come, and kept in the run's record */
#define WARN_KINDS 32     /* distinct kinds kept; more fold into "other" */

typedef struct warn_kind {
    char *kind;           /* "files.no_acl", or a plain LOG line's text */
    int level;            /* the highest seen */
    int64_t count;
    char *message;        /* the first one's message, without the item */
    char *examples[WARN_EXAMPLES]; /* items ("files/a.md") or, for plain lines, the text */
    size_t nexamples;
} warn_kind;

typedef struct warn_summary {
    warn_kind kinds[WARN_KINDS + 1]; /* the last: "other" */
    size_t n;
    int other_used;
} warn_summary;

/*
 * The host side of the connector ABI: what ctx_emitter points to. While a
 * stream is read, two threads share it: the connector's (the caller's),
 * which checks and copies each message and queues it, and the applier,
 * which applies the queue to the store in order (sync_pipe.h). Each member
 * below says whose it is then; between reads, all are the caller's.
 */
struct ctx_emitter {
    /* the applier's during a read */
    const sync_sink *sk;      /* where messages go (sync_sink.h) */
    ingest_ctx ing;           /* (its chunk and max_record_bytes are read by both) */
    store_run_stats stats;    /* (but warnings, counted in nwarnings) */
    ctx_error err;            /* the first failure, reported over the connector's */
    char held[CTX_ERRMSG_MAX]; /* why the run is held; "" = not held */
    uint64_t last_progress;
    /* the connector thread's during a read */
    const char *stream;       /* the stream being read */
    ctx_error cerr;           /* a failure found on this side (cfailed), in message order */
    int cfailed;
    warn_summary warns;
    pretok *tok;              /* tokenizes chunks for the applier (em_record); or NULL */
    int64_t nrecords, ntok_ahead; /* records prepared in this read, and tokenized by tok */
    char *next_id;            /* xNextId's last answer: valid until the next host call */
    int64_t nwarnings;        /* warnings counted (atomic: progress reads it) */
    /* both: the queue between them, and what neither changes during a read */
    sync_pipe pipe;
    const sync_opts *opts;
    const char *source_name;
    int64_t run;              /* this run's id: the epoch of streams not resumed */
    int perm;                 /* the stream is read for its permissions only */
    int partial;              /* some stream was read from a checkpoint, not whole */
    uint64_t t0;
    const ctx_guard_cfg *guard;
    int64_t live_at_start;    /* the source's live documents when the run began */
};

/* ---- sync guards against mass changes ----
 *
 * A run that would delete or prune more than guard.max_delete_share of
 * the documents the source had when it began (and more than
 * guard.min_deletes of them), or make more than
 * guard.max_everyone documents readable by everyone, is held: the open
 * batch (everything since the last STATE) is rolled back, the run ends
 * with status 'held' and the reason, and the checkpoint before it stays.
 * The source stays held (sync_source) until a run with --confirm
 * (sync_opts.confirm) or with both guards off in the config. A full
 * run's prune is counted before it is done: when it would pass the
 * share, the last batch is committed without it and the run is held.
 */

static int hold(ctx_emitter *em, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int hold(ctx_emitter *em, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(em->held, sizeof em->held, fmt, ap);
    va_end(ap);
    return ctx_error_set(&em->err, CTX_EHELD, "held: %s; if that is right, run `ctxgate"
                         " sync %s --confirm`", em->held, em->source_name);
}

/* guard_deletes - hold when this run's deletes and prunes, plus more, pass the share. */
static int guard_deletes(ctx_emitter *em, int64_t more)
{
    int64_t n = em->stats.deletes + em->stats.pruned + more;

    if (em->opts->confirm || em->guard->max_delete_share >= 1 || em->live_at_start <= 0 ||
        n <= em->guard->min_deletes ||
        (double)n <= em->guard->max_delete_share * (double)em->live_at_start)
        return CTX_OK;
    return hold(em, "this run would delete %lld of the %lld documents source %s had (%.0f%%),"
                " more than guard.max_delete_share (%.0f%%)", (long long)n,
                (long long)em->live_at_start, em->source_name,
                100.0 * (double)n / (double)em->live_at_start,
                100.0 * em->guard->max_delete_share);
}

/* guard_everyone - hold when more documents became readable by everyone than allowed. */
static int guard_everyone(ctx_emitter *em)
{
    if (em->opts->confirm || em->guard->max_everyone <= 0 ||
        em->stats.to_everyone <= em->guard->max_everyone)
        return CTX_OK;
    return hold(em, "this run would make more than %lld documents of source %s readable by"
                " everyone (guard.max_everyone)", (long long)em->guard->max_everyone,
                em->source_name);
}

/* flush_guard - the sink's records counted (xFlush), then the guard on
 * them: what a commit point checks before it commits. */
static int flush_guard(ctx_emitter *em)
{
    int rc;

    if (em->sk->xFlush && (rc = em->sk->xFlush(em->sk->self, &em->err)))
        return rc;
    return guard_everyone(em);
}

/* ---- the warning summary ---- */

static warn_kind *warn_find(warn_summary *w, const char *kind)
{
    warn_kind *k;

    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->kinds[i].kind, kind))
            return &w->kinds[i];
    if (w->n < WARN_KINDS)
        k = &w->kinds[w->n];
    else
        k = &w->kinds[WARN_KINDS];
    if (!k->kind) {
        if (!(k->kind = ctx_strdup(w->n < WARN_KINDS ? kind : "other")))
            return NULL;
        if (w->n < WARN_KINDS)
            w->n++;
        else
            w->other_used = 1;
    }
    return k;
}

/*
 * note_warning - count one warning of kind about item (NULL: a plain
 * line); the first WARN_EXAMPLES of a kind go to the log as they come,
 * naming the item, and the next one says the rest are counted.
 */
static void note_warning(ctx_emitter *em, int level, const char *kind, const char *item,
                         const char *msg)
{
    char part[160];
    warn_kind *k = warn_find(&em->warns, kind);

    snprintf(part, sizeof part, "source %s", em->source_name);
    __atomic_add_fetch(&em->nwarnings, 1, __ATOMIC_RELAXED);
    if (!k) {
        ctx_log(level, part, "%s%s%s", item ? item : "", item ? ": " : "", msg);
        return;
    }
    k->count++;
    if (level > k->level)
        k->level = level;
    if (!k->message)
        k->message = ctx_strdup(msg);
    /* A plain line's text is its kind: only items make examples. (The
     * "other" kind keeps the lines it folds in.) */
    if ((item || k == &em->warns.kinds[WARN_KINDS]) && k->nexamples < WARN_EXAMPLES) {
        char *ex = ctx_strdup(item ? item : msg);
        if (ex)
            k->examples[k->nexamples++] = ex;
    }
    if (k->count <= WARN_EXAMPLES)
        ctx_log(level, part, "%s%s%s", item ? item : "", item ? ": " : "", msg);
    else if (k->count == WARN_EXAMPLES + 1)
        ctx_log(level, part, "more warnings of kind \"%.80s\" follow; counted, and"
                " summarized at the end of the run", k->kind);
}

/* warn_json - the summary as a JSON array (new text), or NULL when there were none. */
static char *warn_json(const warn_summary *w)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    json_t *a = json_array();
    char *text;

    for (size_t i = 0; a && i <= WARN_KINDS; i++) {
        const warn_kind *k = &w->kinds[i];
        json_t *ex;
        if (!k->kind || (i == WARN_KINDS && !w->other_used))
            continue;
        ex = json_array();
        for (size_t j = 0; j < k->nexamples; j++)
            json_array_append_new(ex, json_string(k->examples[j]));
        json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:s,s:o}", "kind", k->kind, "level",
                                           levels[k->level >= 0 && k->level <= 3 ? k->level : 2],
                                           "count", (json_int_t)k->count, "message",
                                           k->message ? k->message : "", "examples", ex));
    }
    text = a && json_array_size(a) ? ctx_json_text(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

/* warn_report - at the end of a run, one line per kind that had more than the examples. */
static void warn_report(ctx_emitter *em)
{
    char part[160];

    snprintf(part, sizeof part, "source %s", em->source_name);
    for (size_t i = 0; i <= WARN_KINDS; i++) {
        const warn_kind *k = &em->warns.kinds[i];
        if (!k->kind || k->count <= WARN_EXAMPLES)
            continue;
        if (!k->nexamples) {
            ctx_log(k->level, part, "%lld times: %s", (long long)k->count, k->kind);
            continue;
        }
        ctx_log(k->level, part, "%lld warnings of kind \"%.80s\" (e.g. %s%s%s%s%s): %s",
                (long long)k->count, k->kind, k->examples[0] ? k->examples[0] : "",
                k->examples[1] ? ", " : "", k->examples[1] ? k->examples[1] : "",
                k->examples[2] ? ", " : "", k->examples[2] ? k->examples[2] : "",
                k->message ? k->message : "");
    }
}

static void warn_free(warn_summary *w)
{
    for (size_t i = 0; i <= WARN_KINDS; i++) {
        ctx_free(w->kinds[i].kind);
        ctx_free(w->kinds[i].message);
        for (size_t j = 0; j < w->kinds[i].nexamples; j++)
            ctx_free(w->kinds[i].examples[j]);
    }
    memset(w, 0, sizeof *w);
}

/* ---- messages from the connector's thread to the applier's ---- */

enum { MSG_RECORD, MSG_DELETE, MSG_ACL, MSG_PRINCIPAL, MSG_STATE };

/* One message, in one block with everything it points to (but prep). */
typedef struct sync_msg {
    sync_pipe_node node;
    int kind;
    ingest_prep *prep;         /* RECORD: new, freed with the message */
    const char *stream, *id;   /* DELETE, ACL (and a permission read's RECORD), STATE */
    const char *state;         /* STATE */
    const ctx_acl *acl;        /* ACL: NULL or &acl_copy */
    ctx_acl acl_copy;
    ctx_principal p;           /* PRINCIPAL */
} sync_msg;

/* msg_pack - m's strings and arrays laid out in k (see ctx_pack). */
static void msg_pack(sync_msg *m, ctx_pack *k, const char *stream, const char *id,
                     const char *state, const ctx_acl *acl, const ctx_principal *p)
{
    m->stream = ctx_pack_str(k, stream);
    m->id = ctx_pack_str(k, id);
    m->state = ctx_pack_str(k, state);
    m->acl = NULL;
    if (acl) {
        m->acl_copy.allow = ctx_pack_strv(k, acl->allow, acl->n_allow);
        m->acl_copy.n_allow = acl->n_allow;
        m->acl_copy.deny = ctx_pack_strv(k, acl->deny, acl->n_deny);
        m->acl_copy.n_deny = acl->n_deny;
        m->acl_copy.labels = ctx_pack_strv(k, acl->labels, acl->n_labels);
        m->acl_copy.n_labels = acl->n_labels;
        m->acl = &m->acl_copy;
    }
    if (p) {
        m->p = *p;
        m->p.id = ctx_pack_str(k, p->id);
        m->p.display_name = ctx_pack_str(k, p->display_name);
        m->p.email = ctx_pack_str(k, p->email);
        m->p.maps_to = ctx_pack_str(k, p->maps_to);
        m->p.members = ctx_pack_strv(k, p->members, p->n_members);
    }
}

/* msg_new - a new message holding copies of its arguments; NULL: out of memory. */
static sync_msg *msg_new(int kind, const char *stream, const char *id, const char *state,
                         const ctx_acl *acl, const ctx_principal *p)
{
    ctx_pack k = {NULL, sizeof(sync_msg)};
    sync_msg measured, *m;

    msg_pack(&measured, &k, stream, id, state, acl, p);
    if (!(m = ctx_malloc(k.used)))
        return NULL;
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->node.bytes = k.used;
    k.base = (char *)m;
    k.used = sizeof *m;
    msg_pack(m, &k, stream, id, state, acl, p);
    return m;
}

static void msg_free(sync_pipe_node *node)
{
    sync_msg *m = (sync_msg *)node;

    ctx_free(m->prep);
    ctx_free(m);
}

/* progress - on the applier's thread (or after a read): the counts so far. */
static void progress(ctx_emitter *em, int done)
{
    store_run_stats s;
    uint64_t now;

    if (!em->opts->progress)
        return;
    now = ctx_mono_ns();
    if (!done && now - em->last_progress < 250000000u)
        return;
    em->last_progress = now;
    s = em->stats;
    s.warnings = __atomic_load_n(&em->nwarnings, __ATOMIC_RELAXED);
    em->opts->progress(em->opts->progress_arg, em->source_name, em->stream, &s,
                       (double)(now - em->t0) / 1e9, done);
}

/*
 * apply - one message into the store, on the applier's thread, inside the
 * open transaction; errors into em->err. A cancel is seen here too, so a
 * sync stops at the next message it applies, however far ahead the
 * connector is.
 */
static int apply(void *arg, sync_pipe_node *node)
{
    ctx_emitter *em = arg;
    sync_msg *m = (sync_msg *)node;
    int rc = CTX_OK;

    if (em->opts->cancel && *em->opts->cancel)
        return ctx_error_set(&em->err, CTX_ECANCELED, "sync of %s canceled", em->source_name);
    switch (m->kind) {
    case MSG_RECORD:
        if (!(rc = em->sk->xRecord(em->sk->self, &em->ing, m->prep, &em->err)))
            rc = guard_everyone(em);
        break;
    case MSG_ACL:
        /* A permission read takes a RECORD for its ACL only (a connector
         * without a permission mode is read in full for it). */
        rc = (em->perm ? em->sk->xAclSeen : em->sk->xAcl)(em->sk->self, &em->ing, m->stream,
                                                          m->id, m->acl, &em->err);
        if (!rc)
            rc = guard_everyone(em);
        break;
    case MSG_DELETE:
        if (!(rc = em->sk->xDelete(em->sk->self, &em->ing, m->stream, m->id, &em->err)))
            rc = guard_deletes(em, 0);
        break;
    case MSG_PRINCIPAL:
        if (!(rc = em->sk->xPrincipal(em->sk->self, em->ing.source, &m->p, &em->err)))
            em->stats.principals++;
        break;
    case MSG_STATE:
        /* The checkpoint and everything before it, in one transaction. A
         * permission read's STATE only marks a commit point: the stream's
         * resume point stays the content read's. */
        if ((rc = flush_guard(em)) ||
            (!em->perm && (rc = em->sk->xStatePut(em->sk->self, em->ing.source, m->stream,
                                                  m->state, &em->err))) ||
            (rc = em->sk->xCommit(em->sk->self, &em->err)) ||
            (rc = em->sk->xBegin(em->sk->self, &em->err)))
            break;
        em->stats.states++;
        break;
    }
    if (!rc && (m->kind == MSG_RECORD || m->kind == MSG_ACL))
        progress(em, 0);
    return rc;
}

/* refuse - a failure found on the connector's side (its text in em->cerr). */
static int refuse(ctx_emitter *em, int rc)
{
    em->cfailed = rc ? rc : CTX_EINTERNAL;
    return em->cfailed;
}

/* check_go - 0 to take the connector's next message, else the reason to stop. */
static int check_go(ctx_emitter *em)
{
    int rc;

    if (em->cfailed)
        return em->cfailed;
    if ((rc = sync_pipe_failed(&em->pipe)))
        return rc;
    if (em->opts->cancel && *em->opts->cancel) {
        ctx_error_set(&em->cerr, CTX_ECANCELED, "sync of %s canceled", em->source_name);
        return refuse(em, CTX_ECANCELED);
    }
    return CTX_OK;
}

/* A message for another stream than the one being read is a connector bug. */
static int check_stream(ctx_emitter *em, const char *kind, const char *stream)
{
    if (stream && !strcmp(stream, em->stream))
        return CTX_OK;
    ctx_error_set(&em->cerr, CTX_EINVAL, "%s for stream \"%s\" while reading \"%s\"", kind,
                  stream ? stream : "(null)", em->stream);
    return refuse(em, CTX_EINVAL);
}

/* emit - queue m (NULL: it could not be made) for the applier. */
static int emit(ctx_emitter *em, sync_msg *m)
{
    if (!m) {
        ctx_error_set(&em->cerr, CTX_ENOMEM, "stream %s: out of memory", em->stream);
        return refuse(em, CTX_ENOMEM);
    }
    return sync_pipe_push(&em->pipe, &m->node);
}

static int em_record(ctx_emitter *em, const ctx_record *rec)
{
    ingest_ctx pc = {0};
    ingest_prep *prep;
    sync_msg *m;
    int rc;

    if ((rc = check_go(em)) || (rc = check_stream(em, "RECORD", rec->stream)))
        return rc;
    if (em->perm)
        return emit(em, msg_new(MSG_ACL, rec->stream, rec->id, NULL, rec->acl, NULL));
    /* What needs no store is done here, beside the applier; and FTS5's
     * tokenizing of the chunks when the applier is behind (pretok.h), so
     * that neither side idles while the other is the bound. */
    pc.chunk = em->ing.chunk;
    pc.max_record_bytes = em->ing.max_record_bytes;
    pc.tok = em->tok && sync_pipe_backlog(&em->pipe) ? em->tok : NULL;
    if ((rc = ingest_prepare(&pc, rec, &prep, &em->cerr)))
        return refuse(em, rc);
    em->nrecords++;
    em->ntok_ahead += pc.tok != NULL;
    if (!(m = msg_new(MSG_RECORD, NULL, NULL, NULL, NULL, NULL))) {
        ctx_free(prep);
        return emit(em, NULL);
    }
    m->prep = prep;
    m->node.bytes += prep->bytes;
    return emit(em, m);
}

static int em_delete(ctx_emitter *em, const char *stream, const char *id)
{
    int rc;
    if ((rc = check_go(em)) || (rc = check_stream(em, "DELETE", stream)))
        return rc;
    return emit(em, msg_new(MSG_DELETE, stream, id, NULL, NULL, NULL));
}

static int em_acl(ctx_emitter *em, const char *stream, const char *id, const ctx_acl *acl)
{
    int rc;
    if ((rc = check_go(em)) || (rc = check_stream(em, "ACL", stream)))
        return rc;
    return emit(em, msg_new(MSG_ACL, stream, id, NULL, acl, NULL));
}

static int em_principal(ctx_emitter *em, const ctx_principal *p)
{
    int rc;
    if ((rc = check_go(em)))
        return rc;
    return emit(em, msg_new(MSG_PRINCIPAL, NULL, NULL, NULL, NULL, p));
}

static int em_state(ctx_emitter *em, const char *stream, const char *state)
{
    json_t *j;
    int rc;

    if ((rc = check_go(em)) || (rc = check_stream(em, "STATE", stream)))
        return rc;
    j = state ? ctx_json_loads(state, 0, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        ctx_error_set(&em->cerr, CTX_EINVAL, "STATE for %s: not a JSON object", stream);
        return refuse(em, CTX_EINVAL);
    }
    json_decref(j);
    return emit(em, msg_new(MSG_STATE, stream, NULL, state, NULL, NULL));
}

static void em_log(ctx_emitter *em, int level, const char *msg)
{
    char part[160];

    /* Warnings and errors are counted by their text (a connector without
     * xWarn has no other key); repeats are summarized. */
    if (level >= CTX_CONN_LOG_WARN) {
        char kind[128];
        snprintf(kind, sizeof kind, "%s", msg ? msg : "");
        note_warning(em, level, kind, NULL, msg ? msg : "");
        return;
    }
    snprintf(part, sizeof part, "source %s", em->source_name);
    ctx_log(level, part, "%s", msg ? msg : "");
}

static void em_warn(ctx_emitter *em, const char *kind, const char *stream, const char *id,
                    const char *msg)
{
    char item[512];

    snprintf(item, sizeof item, "%s%s%s", stream ? stream : "", stream && id ? "/" : "",
             id ? id : "");
    note_warning(em, CTX_CONN_LOG_WARN, kind && *kind ? kind : "unnamed", *item ? item : NULL,
                 msg ? msg : "");
}

static int em_next_id(ctx_emitter *em, const char *stream, const char *after, const char **id)
{
    int rc;

    *id = NULL;
    ctx_free(em->next_id);
    em->next_id = NULL;
    if ((rc = check_go(em)) || (rc = check_stream(em, "NEXT ID", stream)))
        return rc;
    /* It answers with what was sent so far: the store must have it all. The
     * applier is idle until the next push, so the store is this thread's. */
    if ((rc = sync_pipe_drain(&em->pipe)))
        return rc;
    if ((rc = em->sk->xDocNext(em->sk->self, em->ing.source, stream, after, &em->next_id,
                               &em->err)))
        return sync_pipe_fail(&em->pipe, rc);
    *id = em->next_id;
    return CTX_OK;
}

static const ctx_host host = {
    CTX_CONNECTOR_ABI_VERSION, sizeof(ctx_host),
    em_record, em_delete, em_acl, em_principal, em_state, em_log, em_warn, em_next_id,
};

typedef struct stream_list {
    char **v;
    size_t n;
} stream_list;

static int add_stream(void *arg, const char *name, const char *desc)
{
    stream_list *l = arg;
    char **v;
    (void)desc;
    if (!(v = ctx_realloc(l->v, (l->n + 1) * sizeof *v)))
        return CTX_ENOMEM;
    l->v = v;
    if (!(l->v[l->n] = ctx_strdup(name)))
        return CTX_ENOMEM;
    l->n++;
    return CTX_OK;
}

/* wanted - stream passes opts->filter (or there is none). */
static int wanted(const sync_opts *opts, const char *stream)
{
    if (!opts->filter)
        return 1;
    for (size_t i = 0; i < opts->nfilter; i++)
        if (!strcmp(opts->filter[i], stream))
            return 1;
    return 0;
}

static int lock_source(const char *dir, const char *name, int *fd, ctx_error *err)
{
    char path[4096];

    *fd = -1;
    if (!dir)
        return CTX_OK;
    snprintf(path, sizeof path, "%s/%s.lock", dir, name);
    if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return ctx_error_set(err, CTX_EIO, "lock %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
        close(*fd);
        *fd = -1;
        return ctx_error_set(err, CTX_EBUSY,
                             "source %s is being synced by another process (lock %s)",
                             name, path);
    }
    return CTX_OK;
}

/* How a run reads one stream. */
enum { READ_INCR, READ_FULL, READ_PERM };

/* stream_mode - how this run reads stream before a pending full run is
 * considered: in a permission run, principal streams as usual. */
static int stream_mode(const sync_opts *opts, const char *stream)
{
    if (opts->permissions) {
        for (size_t i = 0; i < opts->nprincipal_streams; i++)
            if (!strcmp(opts->principal_streams[i], stream))
                return READ_INCR;
        return READ_PERM;
    }
    return opts->full ? READ_FULL : READ_INCR;
}

/*
 * begin_stream - settle the read's mode and epoch: a full run of the stream
 * left unfinished is resumed as a full run with its epoch; a new full run is
 * recorded as pending (committed) before its first message.
 */
static int begin_stream(ctx_emitter *em, const char *stream, int *mode)
{
    int64_t pending = 0;
    int rc;

    em->ing.epoch = em->run;
    if ((rc = em->sk->xPendingGet(em->sk->self, em->ing.source, stream, &pending, &em->err)))
        return rc;
    if (pending) {
        ctx_log(CTX_LOG_INFO, "sync", "source %s: resuming the unfinished full sync of"
                " stream %s (run %lld) as a full sync", em->source_name, stream,
                (long long)pending);
        *mode = READ_FULL;
        em->ing.epoch = pending;
        return CTX_OK;
    }
    if (*mode != READ_FULL)
        return CTX_OK;
    if ((rc = em->sk->xBegin(em->sk->self, &em->err)))
        return rc;
    if ((rc = em->sk->xPendingPut(em->sk->self, em->ing.source, stream, em->run, &em->err)) ||
        (rc = em->sk->xCommit(em->sk->self, &em->err)))
        em->sk->xRollback(em->sk->self);
    return rc;
}

/*
 * finish_stream - after a read that returned 0, in its transaction: a full
 * or permission read prunes what it did not see, and a full run is no
 * longer pending. CTX_EHELD when the prune would pass the delete guard:
 * then nothing is pruned and a full run stays pending.
 */
static int finish_stream(ctx_emitter *em, const char *stream, int mode)
{
    int64_t n = 0;
    int rc;

    if (mode == READ_INCR)
        return CTX_OK;
    /* Counted first: over the guard's share the run is held (CTX_EHELD). */
    rc = em->sk->xPruneCount(em->sk->self, em->ing.source, stream, em->ing.epoch,
                             mode == READ_PERM, &n, &em->err);
    if (rc || (n && (rc = guard_deletes(em, n))))
        return rc;
    rc = em->sk->xPrune(em->sk->self, em->ing.source, stream, em->ing.epoch, mode == READ_PERM,
                        &n, &em->err);
    if (rc)
        return rc;
    em->stats.pruned += n;
    if (mode == READ_FULL)
        return em->sk->xPendingClear(em->sk->self, em->ing.source, stream, &em->err);
    return CTX_OK;
}

static int read_stream(ctx_emitter *em, registry_conn *rc_, const char *stream, int mode)
{
    ctx_read_permissions_fn xperm = NULL;
    ctx_conn_error ce;
    char *state = NULL;
    int rc, wrc;

    em->stream = stream;
    if ((rc = begin_stream(em, stream, &mode)))
        return rc;
    if (mode == READ_PERM && !(xperm = registry_read_permissions(rc_->vt)))
        ctx_log(CTX_LOG_INFO, "sync", "source %s: connector %s has no permission mode;"
                " stream %s is read in full and only its ACLs and deletes are applied",
                em->source_name, rc_->vt->name, stream);
    em->perm = mode == READ_PERM;
    /* A full read gets the state too: the connector re-reads everything but
     * may need to know what it sent last time (groups to retract). */
    if (!xperm &&
        (rc = em->sk->xStateGet(em->sk->self, em->ing.source, stream, &state, &em->err)))
        goto done;
    /* An incremental read from a checkpoint reads only what changed. */
    if (mode == READ_INCR && state)
        em->partial = 1;
    if (mode == READ_PERM && (rc = em->sk->xPermBegin(em->sk->self, &em->err)))
        goto done;
    if ((rc = em->sk->xBegin(em->sk->self, &em->err)))
        goto done;
    sync_pipe_start(&em->pipe, !em->opts->serial, em->opts->queue_msgs, em->opts->queue_bytes,
                    apply, msg_free, em);
    em->cfailed = 0;
    memset(&ce, 0, sizeof ce);
    if (xperm)
        rc = xperm(rc_->conn, stream, NULL, &host, em, &ce);
    else
        rc = rc_->vt->xRead(rc_->conn, stream, state, mode != READ_INCR, &host, em, &ce);
    /* What was queued is applied first (its STATEs commit); the first
     * failure in message order is the real reason: the applier's, then
     * one found on the connector's side, then the connector's own. */
    wrc = sync_pipe_finish(&em->pipe);
    if (em->tok)
        ctx_log(CTX_LOG_DEBUG, "sync", "%s: %lld of %lld records tokenized ahead of the store",
                stream, (long long)em->ntok_ahead, (long long)em->nrecords);
    em->ntok_ahead = em->nrecords = 0;
    if (wrc) {
        rc = wrc;
    } else if (em->cfailed) {
        rc = em->cfailed;
        em->err = em->cerr;
    } else if (rc) {
        registry_conn_error(&ce, rc, &em->err);
        rc = em->err.code;
    }
    if (rc) {
        em->sk->xRollback(em->sk->self);
        goto done;
    }
    if ((rc = flush_guard(em))) {
        em->sk->xRollback(em->sk->self);
        goto done;
    }
    /* Over a guard, what was read is kept and the prune waits for a
     * confirmed run: the full run stays pending with its epoch. */
    rc = finish_stream(em, stream, mode);
    if (rc == CTX_EHELD) {
        if (em->sk->xCommit(em->sk->self, &em->err))
            em->sk->xRollback(em->sk->self);
        goto done;
    }
    if (rc || (rc = em->sk->xCommit(em->sk->self, &em->err)))
        em->sk->xRollback(em->sk->self);
done:
    em->perm = 0;
    em->ing.epoch = em->run;
    ctx_free(state);
    progress(em, 1);
    return rc;
}

/* mark_acl_synced - a run that read every stream's permissions whole and
 * finished (a full or permission run, or a first sync that had no
 * checkpoint to start from): the source's permissions are as fresh as the
 * run's start. */
static void mark_acl_synced(const sync_sink *sk, const sync_opts *opts, int partial,
                            int64_t source, const char *name, int64_t started_at)
{
    ctx_error err;

    if ((!opts->full && !opts->permissions && partial) || opts->nstreams || opts->filter)
        return;
    if (sk->xAclSynced(sk->self, source, started_at, &err))
        ctx_log(CTX_LOG_WARN, "sync", "source %s: permission sync time not recorded: %s",
                name, err.text);
}

int sync_source(ctx_store *st, const ctx_source_cfg *src, const sync_opts *opts,
                store_run_stats *stats, ctx_error *err)
{
    sync_sink sk;

    sync_sink_store(st, &sk);
    return sync_source_to(&sk, src, opts, stats, err);
}

int sync_source_to(const sync_sink *sk, const ctx_source_cfg *src, const sync_opts *opts,
                   store_run_stats *stats, ctx_error *err)
{
    ctx_emitter em;
    registry_conn conn = {0};
    stream_list streams = {NULL, 0};
    ctx_conn_error ce;
    int64_t run = 0, started_at;
    int rc, lockfd = -1, guards_off, locked = 0;
    size_t i;

    memset(&em, 0, sizeof em);
    if (stats)
        memset(stats, 0, sizeof *stats);
    if ((rc = lock_source(opts->lock_dir, src->name, &lockfd, err)))
        return rc;
    if ((rc = registry_open(src, &conn, err)))
        goto out;

    em.sk = sk;
    em.opts = opts;
    em.source_name = src->name;
    em.ing.store = sk->chunks ? sk->self : NULL;
    em.ing.stats = &em.stats;
    em.ing.max_record_bytes = src->max_record_bytes;
    em.ing.chunk.max_tokens = opts->chunk_max_tokens ? (int)opts->chunk_max_tokens : 256;
    em.ing.chunk.overlap_tokens = (int)opts->chunk_overlap_tokens;
    em.t0 = ctx_mono_ns();
    em.guard = &src->guard;
    /* For tokenizing chunks ahead of the store (em_record). Without it,
     * FTS5 does it all. */
    if (!opts->permissions && !opts->serial && sk->chunks) {
        ctx_error terr;
        if (pretok_open(&em.tok, &terr))
            ctx_log(CTX_LOG_DEBUG, "sync", "%s", terr.text);
    }

    if ((rc = sk->xSource(sk->self, src->name, conn.vt->name, &em.ing.source, err)))
        goto out;
    if (sk->xLock) {
        if ((rc = sk->xLock(sk->self, em.ing.source, src->name, err)))
            goto out;
        locked = 1;
    }
    if ((rc = sk->xLive(sk->self, em.ing.source, &em.live_at_start, err)))
        goto out;
    /* A held source stays held until a confirmed run (or a config
     * without guards): a second unconfirmed run would otherwise measure
     * the share against what the held one already deleted. A run of some
     * streams only (the agent's permissions job) still goes, under the
     * guards: revocations must not wait for a person. */
    guards_off = opts->confirm ||
                 (src->guard.max_delete_share >= 1 && src->guard.max_everyone <= 0);
    if (!guards_off && !opts->filter &&
        (rc = sk->xHeld(sk->self, em.ing.source, em.held, sizeof em.held, err)))
        goto out;
    started_at = ctx_now_ms();
    if ((rc = sk->xRunBegin(sk->self, em.ing.source, opts->permissions ? 2 : opts->full, &run,
                            err)))
        goto out;
    em.ing.epoch = em.run = run;
    if (em.held[0]) {
        char why[CTX_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", em.held);
        rc = hold(&em, "%s (a run before this one was held; nothing was read)", why);
        /* keep the first reason as it was, not nested run after run */
        snprintf(em.held, sizeof em.held, "%s", why);
    }

    if (rc) {
        /* held before reading */
    } else if (opts->nstreams) {
        for (i = 0; i < opts->nstreams; i++)
            if ((rc = add_stream(&streams, opts->streams[i], NULL)))
                break;
    } else {
        memset(&ce, 0, sizeof ce);
        rc = conn.vt->xDiscover(conn.conn, add_stream, &streams, &ce);
        if (rc)
            registry_conn_error(&ce, rc, &em.err);
    }
    if (rc == CTX_ENOMEM)
        ctx_error_set(&em.err, rc, "out of memory");
    for (i = 0; !rc && i < streams.n; i++)
        if (wanted(opts, streams.v[i]))
            rc = read_stream(&em, &conn, streams.v[i], stream_mode(opts, streams.v[i]));
    if (!rc)
        mark_acl_synced(sk, opts, em.partial, em.ing.source, src->name, started_at);

    em.stats.warnings = em.nwarnings;
    if (rc)
        ctx_error_prefix(&em.err, "source %s: ", src->name);
    warn_report(&em);
    {
        ctx_error ferr;
        char *warnings = warn_json(&em.warns);
        const char *status = !rc                   ? "ok"
                             : rc == CTX_ECANCELED ? "canceled"
                             : rc == CTX_EHELD     ? "held"
                                                   : "failed";
        /* held_reason: why, for a held run; "" for a run without guards,
         * which lifts an earlier hold; NULL otherwise. */
        const char *held = em.held[0] ? em.held : guards_off && !rc ? "" : NULL;
        int frc = sk->xRunFinish(sk->self, run, status, &em.stats, rc ? em.err.text : NULL,
                                 &ferr);
        if (!frc && (warnings || held))
            frc = sk->xRunNote(sk->self, run, warnings, held, &ferr);
        ctx_free(warnings);
        if (frc && !rc) {
            rc = frc;
            em.err = ferr;
        }
    }
    /* Derived statistics (the store's ranking statistics); a failure here
     * loses no data. */
    if (rc != CTX_ECANCELED && sk->xRunEnd)
        sk->xRunEnd(sk->self, src->name);
    if (rc && err)
        *err = em.err;
    if (stats)
        *stats = em.stats;
out:
    pretok_close(em.tok);
    warn_free(&em.warns);
    ctx_free(em.next_id);
    for (i = 0; i < streams.n; i++)
        ctx_free(streams.v[i]);
    ctx_free(streams.v);
    registry_close(&conn);
    if (locked)
        sk->xUnlock(sk->self, em.ing.source);
    if (lockfd >= 0)
        close(lockfd);
    return rc;
}
