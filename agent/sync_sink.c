/*
 * sync_sink.c - the embedded store as a sync sink (see indexer/sync_sink.h): each
 * member is the store or ingest call the sync runner made before the face.
 */
#include "../indexer/sync_sink.h"

#include "../core/util.h"
#include "../retrieval/rank.h"

static int s_source(void *self, const char *name, const char *type, int64_t *id,
                    ctx_error *err)
{
    return store_source(self, name, type, id, err);
}

static int s_live(void *self, int64_t source, int64_t *n, ctx_error *err)
{
    return store_source_live(self, source, n, err);
}

static int s_held(void *self, int64_t source, char *why, size_t len, ctx_error *err)
{
    return store_source_held(self, source, why, len, err);
}

static int s_run_begin(void *self, int64_t source, int mode, int64_t *run, ctx_error *err)
{
    return store_run_begin(self, source, mode, run, err);
}

static int s_run_finish(void *self, int64_t run, const char *status, const store_run_stats *s,
                        const char *error, ctx_error *err)
{
    return store_run_finish(self, run, status, s, error, err);
}

static int s_run_note(void *self, int64_t run, const char *warnings, const char *held,
                      ctx_error *err)
{
    return store_run_note(self, run, warnings, held, err);
}

static int s_begin(void *self, ctx_error *err) { return store_begin(self, err); }
static int s_commit(void *self, ctx_error *err) { return store_commit(self, err); }
static void s_rollback(void *self) { store_rollback(self); }

static int s_pending_get(void *self, int64_t source, const char *stream, int64_t *epoch,
                         ctx_error *err)
{
    return store_pending_get(self, source, stream, epoch, err);
}

static int s_pending_put(void *self, int64_t source, const char *stream, int64_t epoch,
                         ctx_error *err)
{
    return store_pending_put(self, source, stream, epoch, err);
}

static int s_pending_clear(void *self, int64_t source, const char *stream, ctx_error *err)
{
    return store_pending_clear(self, source, stream, err);
}

static int s_state_get(void *self, int64_t source, const char *stream, char **state,
                       ctx_error *err)
{
    return store_state_get(self, source, stream, state, err);
}

static int s_state_put(void *self, int64_t source, const char *stream, const char *state,
                       ctx_error *err)
{
    return store_state_put(self, source, stream, state, err);
}

static int s_record(void *self, ingest_ctx *c, const ingest_prep *p, ctx_error *err)
{
    (void)self;
    return ingest_apply(c, p, err);
}

static int s_delete(void *self, ingest_ctx *c, const char *stream, const char *id,
                    ctx_error *err)
{
    (void)self;
    return ingest_delete(c, stream, id, err);
}

static int s_acl(void *self, ingest_ctx *c, const char *stream, const char *id,
                 const ctx_acl *acl, ctx_error *err)
{
    (void)self;
    return ingest_acl(c, stream, id, acl, err);
}

static int s_acl_seen(void *self, ingest_ctx *c, const char *stream, const char *id,
                      const ctx_acl *acl, ctx_error *err)
{
    (void)self;
    return ingest_acl_seen(c, stream, id, acl, err);
}

static int s_principal(void *self, int64_t source, const ctx_principal *p, ctx_error *err)
{
    return store_principal_put(self, source, p, err);
}

static int s_perm_begin(void *self, ctx_error *err) { return store_perm_begin(self, err); }

static int s_prune_count(void *self, int64_t source, const char *stream, int64_t epoch,
                         int perm, int64_t *n, ctx_error *err)
{
    return perm ? store_perm_prune_count(self, source, stream, n, err)
                : store_prune_count(self, source, stream, epoch, n, err);
}

static int s_prune(void *self, int64_t source, const char *stream, int64_t epoch, int perm,
                   int64_t *n, ctx_error *err)
{
    return perm ? store_perm_prune(self, source, stream, epoch, n, err)
                : store_prune(self, source, stream, epoch, n, err);
}

static int s_doc_next(void *self, int64_t source, const char *stream, const char *after,
                      char **out, ctx_error *err)
{
    return store_doc_next(self, source, stream, after, out, err);
}

static int s_acl_synced(void *self, int64_t source, int64_t at, ctx_error *err)
{
    return store_source_acl_synced_put(self, source, at, err);
}

/* Ranking statistics follow the index when it has grown or shrunk enough
 * to matter (rank.h). */
static void s_run_end(void *self, const char *source_name)
{
    ctx_error err;

    if (rank_stats_refresh(store_db(self), 0, &err))
        ctx_log(CTX_LOG_WARN, "sync", "source %s: ranking statistics not refreshed: %s",
                source_name, err.text);
}

void sync_sink_store(ctx_store *st, sync_sink *out)
{
    static const sync_sink vt = {
        NULL, "store", 1, s_source, NULL, NULL, s_live, s_held, s_run_begin, s_run_finish,
        s_run_note, s_begin, s_commit, s_rollback, s_pending_get, s_pending_put,
        s_pending_clear, s_state_get, s_state_put, s_record, s_delete, s_acl, s_acl_seen,
        s_principal, s_perm_begin, s_prune_count, s_prune, s_doc_next, s_acl_synced,
        s_run_end,
    };

    *out = vt;
    out->self = st;
}
