/*
 * synctest.h - what the connector integration tests share: build a config
 * from compact JSON, run a source through the real sync runner into a real
 * store, and look at that store with SQL and permission-filtered search.
 * Uses Criterion's asserts: a failed step fails the calling test.
 */
#ifndef CTX_TESTS_SYNCTEST_H
#define CTX_TESTS_SYNCTEST_H

#include <jansson.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "../../agent/sync.h"
#include "../../core/config.h"
#include "../../indexer/store.h"

/* tsync_use - the store every other call works on (borrowed; the test closes it). */
void tsync_use(ctx_store *st);

/*
 * tsync_vsource - the JSON object of the formatted text, written with '
 * for " (so C strings stay readable). New reference.
 */
json_t *tsync_vsource(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/*
 * tsync_config - parse {"data_dir": data_dir, "sources": [src]} into *cfg
 * (ctx_config_free it). src is stolen.
 */
void tsync_config(ctx_config *cfg, const char *data_dir, json_t *src);

/* tsync_run_opts - one sync of the config's first source; o's chunk sizes are set here. */
int tsync_run_opts(ctx_config *cfg, sync_opts *o, store_run_stats *stats, ctx_error *err);
int tsync_run(ctx_config *cfg, int full, store_run_stats *stats, ctx_error *err);
/* tsync_ok - a sync that must succeed. */
store_run_stats tsync_ok(ctx_config *cfg, int full);

/*
 * tsync_perm_ok - a permission run (sync --permissions) of the config's
 * first source that must succeed; principal streams as the agent reads them.
 */
store_run_stats tsync_perm_ok(ctx_config *cfg);

/*
 * tsync_chunk_sig - every live chunk as "stream/ext_id#seq=text" lines in
 * (stream, ext_id, seq) order; with ids, each line ends in " @chunk_id".
 * New (free it). Equal before and after a run: nothing was re-chunked.
 */
char *tsync_chunk_sig(int ids);

/* tsync_int - first column of the first row of a store query (sqlite3_mprintf format); -1 without a row. */
int64_t tsync_int(const char *fmt, ...);
/* tsync_text - like tsync_int for text; new (free it), NULL without a row. */
char *tsync_text(const char *fmt, ...);
/* tsync_live_docs - documents not deleted. */
int64_t tsync_live_docs(void);
/* tsync_state - the committed state of stream; new, NULL when none. */
char *tsync_state(const char *stream);
/* tsync_hits - how many results user gets for query; "t1|t2" into titles (may be NULL). */
size_t tsync_hits(const char *user, const char *query, char *titles, size_t len);

/*
 * A progress callback (sync_opts.progress) that sets flag once records
 * reach n; until then it waits out the runner's 250 ms report interval per
 * record, so the run stops after exactly n records.
 */
typedef struct tsync_cancel {
    volatile sig_atomic_t flag;
    int64_t records;
} tsync_cancel;

void tsync_cancel_progress(void *arg, const char *source, const char *stream,
                           const store_run_stats *s, double seconds, int done);

/*
 * A progress callback that terminates, once the first record is in, every
 * PostgreSQL backend whose application_name is app (through db): the
 * connection of the connector under test is lost mid-read.
 */
typedef struct tsync_killer {
    PGconn *db;
    const char *app;
    int done;
} tsync_killer;

void tsync_kill_progress(void *arg, const char *source, const char *stream,
                         const store_run_stats *s, double seconds, int done);

#endif
