/*
 * pgstore.c - cluster mode's system of record in PostgreSQL: the schema,
 * its migrations and the sync sink (see pgstore.h, docs/cluster.md).
 */
#include "pgstore.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/util.h"
#include "pgstore_int.h"

/*
 * The migrations, in order: step i brings the schema from version i to
 * i + 1. Append only; a shipped step is never edited. Identifiers are
 * compared byte-wise (COLLATE "C"), as SQLite compares them.
 */
static const char *const steps[] = {
    /* 1: the system of record and the job schedule */
    "CREATE TABLE ctxgate.sources ("
    " id bigserial PRIMARY KEY, name text COLLATE \"C\" NOT NULL UNIQUE, type text NOT NULL,"
    " acl_synced_at bigint);"
    "CREATE TABLE ctxgate.acl_sets ("
    " id bigserial PRIMARY KEY, source bigint NOT NULL REFERENCES ctxgate.sources,"
    " key text NOT NULL, everyone boolean NOT NULL, UNIQUE (source, key));"
    "CREATE TABLE ctxgate.acl_entries ("
    " acl bigint NOT NULL REFERENCES ctxgate.acl_sets ON DELETE CASCADE,"
    " effect text NOT NULL CHECK (effect IN ('allow', 'deny')),"
    " principal text COLLATE \"C\" NOT NULL, PRIMARY KEY (acl, effect, principal));"
    "CREATE TABLE ctxgate.acl_labels ("
    " acl bigint NOT NULL REFERENCES ctxgate.acl_sets ON DELETE CASCADE,"
    " label text COLLATE \"C\" NOT NULL, PRIMARY KEY (acl, label));"
    "CREATE TABLE ctxgate.documents ("
    " id bigserial PRIMARY KEY, source bigint NOT NULL REFERENCES ctxgate.sources,"
    " stream text COLLATE \"C\" NOT NULL, ext_id text COLLATE \"C\" NOT NULL,"
    " title text, url text, body text, metadata text, updated_at bigint,"
    " acl bigint REFERENCES ctxgate.acl_sets, hash text NOT NULL,"
    " epoch bigint NOT NULL, perm_epoch bigint, deleted boolean NOT NULL DEFAULT false,"
    " changed_at timestamptz NOT NULL DEFAULT now(), UNIQUE (source, stream, ext_id));"
    "CREATE TABLE ctxgate.principals ("
    " source bigint NOT NULL REFERENCES ctxgate.sources, id text COLLATE \"C\" NOT NULL,"
    " kind text NOT NULL, display_name text, email text, maps_to text,"
    " PRIMARY KEY (source, id));"
    "CREATE TABLE ctxgate.memberships ("
    " source bigint NOT NULL REFERENCES ctxgate.sources,"
    " principal text COLLATE \"C\" NOT NULL, member text COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY (source, principal, member));"
    "CREATE TABLE ctxgate.checkpoints ("
    " source bigint NOT NULL REFERENCES ctxgate.sources, stream text COLLATE \"C\" NOT NULL,"
    " state text, pending_epoch bigint, PRIMARY KEY (source, stream));"
    "CREATE TABLE ctxgate.sync_runs ("
    " id bigserial PRIMARY KEY, source bigint NOT NULL REFERENCES ctxgate.sources,"
    " mode int NOT NULL, worker text NOT NULL, started_at bigint NOT NULL,"
    " finished_at bigint, status text NOT NULL, records bigint, unchanged bigint,"
    " deletes bigint, acls bigint, principals bigint, states bigint, pruned bigint,"
    " bytes bigint, error text, warnings text, held_reason text);"
    "CREATE INDEX sync_runs_source ON ctxgate.sync_runs (source, id);"
    "CREATE TABLE ctxgate.jobs ("
    " source text COLLATE \"C\" NOT NULL, kind text NOT NULL, next_at bigint NOT NULL,"
    " lease_owner text, lease_until bigint, last_start bigint, last_end bigint,"
    " last_status text, last_error text, runs bigint NOT NULL DEFAULT 0,"
    " PRIMARY KEY (source, kind));",
    /* 2: what the search replicas follow by logical decoding (pgfollow.c) */
    "CREATE PUBLICATION ctxgate_replicas FOR TABLE ctxgate.sources, ctxgate.documents,"
    " ctxgate.principals, ctxgate.memberships;",
    /* 3: the cluster's audit log and token counts (pgaudit.c): each
     * replica's local log shipped by (origin, log_id), exactly once */
    "CREATE TABLE ctxgate.audit ("
    " id bigserial PRIMARY KEY, origin text COLLATE \"C\" NOT NULL, log_id bigint NOT NULL,"
    " node text NOT NULL, at bigint NOT NULL, \"user\" text COLLATE \"C\","
    " agent text COLLATE \"C\", action text NOT NULL, query text, query_sha256 text,"
    " doc_ids text NOT NULL, tokens bigint NOT NULL, latency_us bigint NOT NULL,"
    " outcome text NOT NULL, UNIQUE (origin, log_id));"
    "CREATE INDEX audit_at ON ctxgate.audit (at);"
    "CREATE INDEX audit_user ON ctxgate.audit (\"user\", at);"
    "CREATE INDEX audit_agent ON ctxgate.audit (agent, at);"
    "CREATE TABLE ctxgate.audit_origins ("
    " origin text COLLATE \"C\" PRIMARY KEY, node text NOT NULL, shipped bigint NOT NULL,"
    " shipped_at bigint NOT NULL);"
    "CREATE TABLE ctxgate.usage_window ("
    " kind smallint NOT NULL, name text COLLATE \"C\" NOT NULL, span bigint NOT NULL,"
    " start bigint NOT NULL, tokens bigint NOT NULL, PRIMARY KEY (kind, name, span, start));",
    /* 4: vectors computed once in the cluster (pgvectors.c), followed by the replicas */
    "CREATE TABLE ctxgate.embed_models ("
    " name text COLLATE \"C\" PRIMARY KEY, dim int NOT NULL);"
    "CREATE TABLE ctxgate.chunk_vectors ("
    " doc bigint NOT NULL, model text COLLATE \"C\" NOT NULL, text_hash bytea NOT NULL,"
    " vec bytea NOT NULL, PRIMARY KEY (doc, model, text_hash));"
    "CREATE INDEX chunk_vectors_hash ON ctxgate.chunk_vectors (model, text_hash);"
    "CREATE TABLE ctxgate.doc_embeds ("
    " model text COLLATE \"C\" NOT NULL, doc bigint NOT NULL, hash text NOT NULL,"
    " chunking text NOT NULL, PRIMARY KEY (model, doc));"
    "CREATE TABLE ctxgate.lsa_models ("
    " hash text COLLATE \"C\" PRIMARY KEY, dim int NOT NULL, docs bigint NOT NULL,"
    " trained_at bigint NOT NULL, file bytea NOT NULL);"
    "ALTER PUBLICATION ctxgate_replicas ADD TABLE ctxgate.chunk_vectors;",
};

/* An advisory lock key of ctxgate's own: "ctxg" and the purpose. */
#define LOCK_MIGRATE 0x63747867
#define LOCK_SOURCE 0x63747873

int pg__fail(pgstore *pg, PGresult *r, ctx_error *err, const char *what)
{
    const char *msg = r ? PQresultErrorMessage(r) : "";

    if (!msg || !*msg)
        msg = PQerrorMessage(pg->db);
    if (!msg || !*msg)
        msg = "the connection is lost or unusable";
    ctx_error_set(err, PQstatus(pg->db) == CONNECTION_OK ? CTX_ESTORE : CTX_EIO,
                  "cluster: %s: %.*s", what, (int)strcspn(msg, "\n"), msg);
    PQclear(r);
    return err->code;
}

/*
 * Statements with parameters are prepared on first use and executed by
 * name after that: planning the sink's statements each time cost more than
 * running them (bench/cluster_sync.sh: 1,474 rows/s planned, 7,653
 * prepared, at 30,000 rows). The text is the key (callers pass literals,
 * but a copy compared in full costs nothing beside a round trip), and the
 * name is made from a hash of the text, so one name is one statement for
 * every ctxgate process, whatever order each prepared them in.
 */
static int find_stmt(const pgstore *pg, const char *sql, char name[32])
{
    const void *part = sql;
    size_t len = strlen(sql);
    char hex[65];

    ctx_hash_hex(&part, &len, 1, hex);
    snprintf(name, 32, "ctxgate_%.20s", hex);
    for (size_t i = 0; i < pg->nstmts; i++)
        if (!strcmp(pg->stmts[i], sql))
            return 1;
    return 0;
}

static int find_or_prepare(pgstore *pg, const char *sql, int n, char name[32], PGresult **fail)
{
    size_t i = pg->nstmts;
    PGresult *r;

    *fail = NULL;
    if (find_stmt(pg, sql, name))
        return 0;
    if (i == PG_STMTS || (!pg->stmts && !(pg->stmts = ctx_calloc(PG_STMTS, sizeof(char *)))) ||
        !(pg->stmts[i] = ctx_strdup(sql)))
        return 1;
    r = PQprepare(pg->db, name, sql, n, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        ctx_free(pg->stmts[i]);
        pg->stmts[i] = NULL;
        *fail = r;
        return -1;
    }
    PQclear(r);
    pg->nstmts++;
    return 0;
}

int pg__prepared(pgstore *pg, const char *sql, int n, char name[32], ctx_error *err)
{
    PGresult *r;
    int rc;

    if (find_stmt(pg, sql, name))
        return 0;
    if (pg->nsent && pg__flush(pg, err))
        return -1;
    if ((rc = find_or_prepare(pg, sql, n, name, &r)) < 0)
        pg__fail(pg, r, err, "prepare a statement");
    return rc;
}

/* exec - sql with n text parameters, prepared when it has any. A failed
 * PREPARE is the caller's error, as a failed execution would be. */
static PGresult *exec(pgstore *pg, const char *sql, int n, const char *const *v)
{
    char name[32];
    PGresult *r;
    int rc;

    /* A pipeline that could not be ended (the connection was cut off in
     * the middle of a batch) leaves nothing to run a query on: fail it as
     * the lost connection it is, not as a misuse of pipeline mode. */
    if (PQpipelineStatus(pg->db) != PQ_PIPELINE_OFF)
        return NULL;
    if (!n)
        return PQexec(pg->db, sql);
    if ((rc = find_or_prepare(pg, sql, n, name, &r)) < 0)
        return r;
    if (rc > 0)
        return PQexecParams(pg->db, sql, n, NULL, v, NULL, NULL, 0);
    return PQexecPrepared(pg->db, name, n, v, NULL, NULL, 0);
}

/* vq - pg__q's body: the records sent ahead are read first, then sql
 * runs with n parameters taken from ap. */
static PGresult *vq(pgstore *pg, ctx_error *err, const char *what, const char *sql, int n,
                    va_list ap)
{
    const char *v[16];
    PGresult *r;
    ExecStatusType t;

    for (int i = 0; i < n && i < 16; i++)
        v[i] = va_arg(ap, const char *);
    if (pg->nsent && pg__flush(pg, err))
        return NULL;
    r = exec(pg, sql, n, v);
    t = PQresultStatus(r);
    if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK)
        return r;
    pg__fail(pg, r, err, what);
    return NULL;
}

PGresult *pg__q(pgstore *pg, ctx_error *err, const char *what, const char *sql, int n, ...)
{
    PGresult *r;
    va_list ap;

    va_start(ap, n);
    r = vq(pg, err, what, sql, n, ap);
    va_end(ap);
    return r;
}

int pg__ok(pgstore *pg, ctx_error *err, const char *what, const char *sql, int n, ...)
{
    PGresult *r;
    va_list ap;

    va_start(ap, n);
    r = vq(pg, err, what, sql, n, ap);
    va_end(ap);
    if (!r)
        return err->code;
    PQclear(r);
    return CTX_OK;
}

const char *pg__i64(pg_num *b, int64_t v)
{
    memset(b, 0, sizeof *b);
    snprintf(b->s, sizeof b->s, "%lld", (long long)v);
    return b->s;
}

int64_t pg__get64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* ---- opening and migrating ---- */

static int read_password(const ctx_cluster_cfg *c, char **pw, ctx_error *err)
{
    const char *v;
    size_t len = 0;

    *pw = NULL;
    if (c->password_env && *c->password_env) {
        if (!(v = getenv(c->password_env)))
            return ctx_error_set(err, CTX_ECONFIG, "cluster.password_env: the environment"
                                 " variable \"%s\" is not set; export it first",
                                 c->password_env);
        return (*pw = ctx_strdup(v)) ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "out of memory");
    }
    if (!c->password_file || !*c->password_file)
        return CTX_OK;
    if (ctx_read_file(c->password_file, pw, &len))
        return ctx_error_set(err, CTX_ECONFIG, "cluster.password_file: cannot read %s: %s",
                             c->password_file, strerror(errno));
    (*pw)[strcspn(*pw, "\r\n")] = '\0';
    return CTX_OK;
}

static int migrate(pgstore *pg, ctx_error *err)
{
    const int want = (int)(sizeof steps / sizeof steps[0]);
    char step[32];
    pg_num b;
    PGresult *r;
    int have, rc;

    /* A schema already at this version needs nothing: read it first, so a
     * role that may only read (a replica's) never runs the DDL below, whose
     * privileges PostgreSQL checks even when it would change nothing. */
    r = PQexec(pg->db, "SELECT max(version) FROM ctxgate.schema_version");
    have = PQresultStatus(r) == PGRES_TUPLES_OK ? (int)pg__get64(r, 0, 0) : -1;
    PQclear(r);
    if (have == want)
        return CTX_OK;
    if ((rc = pg__ok(pg, err, "begin", "BEGIN", 0)))
        return rc;
    /* One opener migrates; the others wait here, then find nothing to do. */
    if ((rc = pg__ok(pg, err, "lock the schema", "SELECT pg_advisory_xact_lock($1, 1)", 1,
                     pg__i64(&b, LOCK_MIGRATE))) ||
        (rc = pg__ok(pg, err, "create schema ctxgate",
                     "CREATE SCHEMA IF NOT EXISTS ctxgate;"
                     " CREATE TABLE IF NOT EXISTS ctxgate.schema_version (version int NOT NULL);"
                     " INSERT INTO ctxgate.schema_version SELECT 0 WHERE NOT EXISTS"
                     " (SELECT 1 FROM ctxgate.schema_version)", 0)))
        goto fail;
    if (!(r = pg__q(pg, err, "read the schema version",
                    "SELECT max(version) FROM ctxgate.schema_version", 0))) {
        rc = err->code;
        goto fail;
    }
    have = (int)pg__get64(r, 0, 0);
    PQclear(r);
    if (have > want) {
        rc = ctx_error_set(err, CTX_ESTORE, "cluster: the database's schema ctxgate is at"
                           " version %d, newer than this ctxgate knows (%d); upgrade ctxgate",
                           have, want);
        goto fail;
    }
    for (int v = have; v < want; v++) {
        snprintf(step, sizeof step, "migration to version %d", v + 1);
        if ((rc = pg__ok(pg, err, step, steps[v], 0)))
            goto fail;
    }
    if (have < want) {
        if ((rc = pg__ok(pg, err, "record the schema version",
                         "UPDATE ctxgate.schema_version SET version = $1", 1,
                         pg__i64(&b, want))))
            goto fail;
        ctx_log(CTX_LOG_INFO, "cluster", "schema ctxgate migrated from version %d to %d", have,
                want);
    }
    return pg__ok(pg, err, "commit the migration", "COMMIT", 0);
fail:
    PQclear(PQexec(pg->db, "ROLLBACK"));
    return rc;
}

PGconn *pg__connect(const ctx_cluster_cfg *c, int replication, ctx_error *err)
{
    /* connect_timeout first: the conninfo's own, when it has one, comes
     * later and wins; without one a silent host costs 10 s, not TCP's
     * minutes, to whatever waits on the connect (a budget check, a status) */
    const char *kw[6] = {"connect_timeout", "dbname", "application_name", NULL, NULL, NULL};
    const char *val[6];
    PGconn *db;
    char *pw = NULL;
    int n = 3;

    if (!c->conninfo || !*c->conninfo) {
        ctx_error_set(err, CTX_ECONFIG, "cluster.conninfo: not set; cluster mode needs"
                      " the PostgreSQL's conninfo");
        return NULL;
    }
    if (read_password(c, &pw, err))
        return NULL;
    val[0] = "10";
    val[1] = c->conninfo;
    val[2] = "ctxgate";
    if (pw) {
        kw[n] = "password";
        val[n++] = pw;
    }
    if (replication) {
        kw[n] = "replication";
        val[n++] = "database";
    }
    kw[n] = NULL;
    val[n] = NULL;
    db = PQconnectdbParams(kw, val, 1);
    if (pw) {
        memset(pw, 0, strlen(pw));
        ctx_free(pw);
    }
    if (!db || PQstatus(db) != CONNECTION_OK) {
        const char *msg = db ? PQerrorMessage(db) : "out of memory";
        ctx_error_set(err, CTX_EIO, "cluster: cannot connect to PostgreSQL%s (%s): %.*s",
                      replication ? " for replication" : "", c->conninfo,
                      (int)strcspn(msg, "\n"), msg);
        PQfinish(db);
        return NULL;
    }
    return db;
}

int pgstore_open(const ctx_cluster_cfg *c, pgstore **out, ctx_error *err)
{
    char host[64] = "";
    pgstore *pg;
    int rc;

    *out = NULL;
    if (!(pg = ctx_calloc(1, sizeof *pg)))
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    if (!(pg->db = pg__connect(c, 0, err))) {
        rc = err->code;
        pgstore_close(pg);
        return rc;
    }
    gethostname(host, sizeof host - 1);
    snprintf(pg->owner, sizeof pg->owner, "%s:%ld", host, (long)getpid());
    pg->lease_ms = c->lease_s > 0 ? c->lease_s * 1000 : 30000;
    if ((rc = pg__ok(pg, err, "session settings",
                     "SET client_min_messages TO warning; SET TIME ZONE 'UTC'", 0)) ||
        (rc = migrate(pg, err))) {
        pgstore_close(pg);
        return rc;
    }
    *out = pg;
    return CTX_OK;
}

void pgstore_close(pgstore *pg)
{
    if (!pg)
        return;
    pg__discard(pg);
    ctx_free(pg->sent);
    PQfinish(pg->db);
    for (size_t i = 0; i < pg->nstmts; i++)
        ctx_free(pg->stmts[i]);
    ctx_free(pg->stmts);
    ctx_free(pg->acls);
    ctx_free(pg);
}

const char *pgstore_owner(const pgstore *pg) { return pg->owner; }

int pgstore_version(pgstore *pg, int *version, ctx_error *err)
{
    PGresult *r = pg__q(pg, err, "read the schema version",
                        "SELECT max(version) FROM ctxgate.schema_version", 0);

    if (!r)
        return err->code;
    *version = (int)pg__get64(r, 0, 0);
    PQclear(r);
    return CTX_OK;
}

/* ---- the sink: sources, runs, transactions, checkpoints ---- */

static int k_source(void *self, const char *name, const char *type, int64_t *id,
                    ctx_error *err)
{
    PGresult *r = pg__q(self, err, "record the source",
                        "INSERT INTO ctxgate.sources (name, type) VALUES ($1, $2)"
                        " ON CONFLICT (name) DO UPDATE SET type = EXCLUDED.type RETURNING id",
                        2, name, type);

    if (!r)
        return err->code;
    *id = pg__get64(r, 0, 0);
    PQclear(r);
    return CTX_OK;
}

/* A session-level advisory lock: it goes with the connection, so a killed
 * runner's source is free as soon as PostgreSQL sees the connection drop. */
static int k_lock(void *self, int64_t source, const char *name, ctx_error *err)
{
    pg_num a, b;
    PGresult *r = pg__q(self, err, "lock the source", "SELECT pg_try_advisory_lock($1, $2)", 2,
                        pg__i64(&a, LOCK_SOURCE), pg__i64(&b, source));
    int got;

    if (!r)
        return err->code;
    got = !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    if (!got)
        return ctx_error_set(err, CTX_EBUSY, "source %s is being synced by another process"
                             " of the cluster", name);
    return CTX_OK;
}

static void k_unlock(void *self, int64_t source)
{
    pg_num a, b;
    ctx_error err;

    PQclear(pg__q(self, &err, "unlock the source", "SELECT pg_advisory_unlock($1, $2)", 2,
                  pg__i64(&a, LOCK_SOURCE), pg__i64(&b, source)));
}

static int k_live(void *self, int64_t source, int64_t *n, ctx_error *err)
{
    pg_num a;
    PGresult *r = pg__q(self, err, "count live documents",
                        "SELECT count(*) FROM ctxgate.documents WHERE source = $1"
                        " AND NOT deleted", 1, pg__i64(&a, source));

    if (!r)
        return err->code;
    *n = pg__get64(r, 0, 0);
    PQclear(r);
    return CTX_OK;
}

static int k_held(void *self, int64_t source, char *why, size_t len, ctx_error *err)
{
    pg_num a;
    PGresult *r = pg__q(self, err, "read the hold",
                        "SELECT held_reason FROM ctxgate.sync_runs WHERE source = $1"
                        " AND held_reason IS NOT NULL ORDER BY id DESC LIMIT 1", 1,
                        pg__i64(&a, source));

    if (!r)
        return err->code;
    snprintf(why, len, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return CTX_OK;
}

static int k_run_begin(void *self, int64_t source, int mode, int64_t *run, ctx_error *err)
{
    pgstore *pg = self;
    pg_num a, b, c;
    PGresult *r;
    int rc;

    /* Under the source's lock: a run still "running" was cut off. */
    if ((rc = pg__ok(pg, err, "close interrupted runs",
                     "UPDATE ctxgate.sync_runs SET status = 'interrupted', finished_at = $2"
                     " WHERE source = $1 AND status = 'running'", 2, pg__i64(&a, source),
                     pg__i64(&b, ctx_now_ms()))))
        return rc;
    r = pg__q(pg, err, "record the run",
              "INSERT INTO ctxgate.sync_runs (source, mode, worker, started_at, status)"
              " VALUES ($1, $2, $3, $4, 'running') RETURNING id", 4, pg__i64(&a, source),
              pg__i64(&b, mode), pg->owner, pg__i64(&c, ctx_now_ms()));
    if (!r)
        return err->code;
    *run = pg__get64(r, 0, 0);
    PQclear(r);
    return CTX_OK;
}

static int k_run_finish(void *self, int64_t run, const char *status, const store_run_stats *s,
                        const char *error, ctx_error *err)
{
    pg_num v[10];

    return pg__ok(self, err, "record the run's end",
                  "UPDATE ctxgate.sync_runs SET finished_at = $2, status = $3, records = $4,"
                  " unchanged = $5, deletes = $6, acls = $7, principals = $8, states = $9,"
                  " pruned = $10, bytes = $11, error = $12 WHERE id = $1", 12,
                  pg__i64(&v[0], run), pg__i64(&v[1], ctx_now_ms()), status,
                  pg__i64(&v[2], s->records), pg__i64(&v[3], s->unchanged),
                  pg__i64(&v[4], s->deletes), pg__i64(&v[5], s->acls),
                  pg__i64(&v[6], s->principals), pg__i64(&v[7], s->states),
                  pg__i64(&v[8], s->pruned), pg__i64(&v[9], s->bytes), error);
}

static int k_run_note(void *self, int64_t run, const char *warnings, const char *held,
                      ctx_error *err)
{
    pg_num a;

    return pg__ok(self, err, "record the run's notes",
                  "UPDATE ctxgate.sync_runs SET warnings = coalesce($2, warnings),"
                  " held_reason = coalesce($3, held_reason) WHERE id = $1", 3,
                  pg__i64(&a, run), warnings, held);
}

static int k_begin(void *self, ctx_error *err)
{
    return pg__ok(self, err, "begin", "BEGIN", 0);
}

static int k_commit(void *self, ctx_error *err)
{
    int rc = pg__ok(self, err, "commit", "COMMIT", 0);

    pg__acl_cache_end(self, !rc);
    return rc;
}

static void k_rollback(void *self)
{
    pgstore *pg = self;
    ctx_error ignored;

    /* The answers are read (and counted, as the embedded side counts what
     * it rolls back) up to the first that failed. */
    pg__flush(pg, &ignored);
    PQclear(PQexec(pg->db, "ROLLBACK"));
    pg__acl_cache_end(pg, 0);
}

static int k_pending_get(void *self, int64_t source, const char *stream, int64_t *epoch,
                         ctx_error *err)
{
    pg_num a;
    PGresult *r = pg__q(self, err, "read the pending full run",
                        "SELECT pending_epoch FROM ctxgate.checkpoints WHERE source = $1"
                        " AND stream = $2", 2, pg__i64(&a, source), stream);

    if (!r)
        return err->code;
    *epoch = PQntuples(r) ? pg__get64(r, 0, 0) : 0;
    PQclear(r);
    return CTX_OK;
}

static int k_pending_put(void *self, int64_t source, const char *stream, int64_t epoch,
                         ctx_error *err)
{
    pg_num a, b;

    return pg__ok(self, err, "record the pending full run",
                  "INSERT INTO ctxgate.checkpoints (source, stream, pending_epoch)"
                  " VALUES ($1, $2, $3) ON CONFLICT (source, stream)"
                  " DO UPDATE SET pending_epoch = EXCLUDED.pending_epoch", 3,
                  pg__i64(&a, source), stream, pg__i64(&b, epoch));
}

static int k_pending_clear(void *self, int64_t source, const char *stream, ctx_error *err)
{
    pg_num a;

    return pg__ok(self, err, "clear the pending full run",
                  "UPDATE ctxgate.checkpoints SET pending_epoch = NULL WHERE source = $1"
                  " AND stream = $2", 2, pg__i64(&a, source), stream);
}

static int k_state_get(void *self, int64_t source, const char *stream, char **state,
                       ctx_error *err)
{
    pg_num a;
    PGresult *r = pg__q(self, err, "read the checkpoint",
                        "SELECT state FROM ctxgate.checkpoints WHERE source = $1"
                        " AND stream = $2 AND state IS NOT NULL", 2, pg__i64(&a, source),
                        stream);

    *state = NULL;
    if (!r)
        return err->code;
    if (PQntuples(r) && !(*state = ctx_strdup(PQgetvalue(r, 0, 0)))) {
        PQclear(r);
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    }
    PQclear(r);
    return CTX_OK;
}

static int k_state_put(void *self, int64_t source, const char *stream, const char *state,
                       ctx_error *err)
{
    pg_num a;

    return pg__ok(self, err, "record the checkpoint",
                  "INSERT INTO ctxgate.checkpoints (source, stream, state) VALUES ($1, $2, $3)"
                  " ON CONFLICT (source, stream) DO UPDATE SET state = EXCLUDED.state", 3,
                  pg__i64(&a, source), stream, state);
}

static int k_acl_synced(void *self, int64_t source, int64_t at, ctx_error *err)
{
    pg_num a, b;

    return pg__ok(self, err, "record the permission sync time",
                  "UPDATE ctxgate.sources SET acl_synced_at = $2 WHERE id = $1", 2,
                  pg__i64(&a, source), pg__i64(&b, at));
}

static int k_doc_next(void *self, int64_t source, const char *stream, const char *after,
                      char **out, ctx_error *err)
{
    pg_num a;
    PGresult *r = pg__q(self, err, "find the next document",
                        "SELECT ext_id FROM ctxgate.documents WHERE source = $1 AND stream = $2"
                        " AND NOT deleted AND ext_id > $3 ORDER BY ext_id LIMIT 1", 3,
                        pg__i64(&a, source), stream, after ? after : "");

    *out = NULL;
    if (!r)
        return err->code;
    if (PQntuples(r) && !(*out = ctx_strdup(PQgetvalue(r, 0, 0)))) {
        PQclear(r);
        return ctx_error_set(err, CTX_ENOMEM, "out of memory");
    }
    PQclear(r);
    return CTX_OK;
}

static int k_perm_begin(void *self, ctx_error *err)
{
    /* What a permission run saw is marked with its epoch (perm_epoch): a
     * new run has a new epoch, so nothing needs emptying. */
    (void)self;
    (void)err;
    return CTX_OK;
}

static int k_flush(void *self, ctx_error *err)
{
    return pg__flush(self, err);
}

void pgstore_sink(pgstore *pg, sync_sink *out)
{
    static const sync_sink vt = {
        NULL, "postgres", 0, k_source, k_lock, k_unlock, k_live, k_held, k_run_begin,
        k_run_finish, k_run_note, k_begin, k_commit, k_rollback, k_pending_get,
        k_pending_put, k_pending_clear, k_state_get, k_state_put, pg__record, pg__delete,
        pg__acl, pg__acl_seen, pg__principal, k_perm_begin, pg__prune_count, pg__prune,
        k_doc_next, k_acl_synced, NULL, k_flush,
    };

    *out = vt;
    out->self = pg;
}
