/*
 * test_crash.c - kill -9 the real `ctxgate sync` at 24 random instants
 * (with edits and deletions in between), let it finish, and compare the
 * store with a clean sync of the final tree: no document or chunk lost or
 * duplicated, same permissions, and SQLite and FTS5 integrity checks pass.
 * Then kill -9 `sync --full` runs (files, PostgreSQL) at random instants:
 * the deletes such a run was to prune still happen on the next plain sync.
 * And kill -9 `sync --permissions` runs: a killed one prunes nothing (or,
 * killed after its commit, exactly what is gone); the next one finishes.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "tests/lib/pgtest.h"
#include "tests/lib/testutil.h"

#define NFILES 1500
#define KILLS 24

static char bin[4096];

static void write_tree(const char *docs, int gen)
{
    char rel[64], text[2048];
    for (int i = 0; i < NFILES; i++) {
        /* Generation 1 edits every 7th file and deletes every 11th. */
        if (gen && i % 11 == 0) {
            char p[4200];
            snprintf(p, sizeof p, "%s/d%02d/f%04d.md", docs, i % 10, i);
            unlink(p);
            continue;
        }
        snprintf(rel, sizeof rel, "d%02d/f%04d.md", i % 10, i);
        snprintf(text, sizeof text,
                 "---\ntitle: File %d\nallow: [group:g%d, user:u%d@t.test]\n---\n"
                 "Paragraph one of file %d%s talks about topic %d and topic %d. "
                 "It repeats a little so that chunks have some length to them.\n\n"
                 "Paragraph two of file %d mentions keyword k%d and keyword k%d.\n",
                 i, i % 5, i % 13, i, gen && i % 7 == 0 ? " (edited)" : "", i % 17, i % 23,
                 i, i % 29, i % 31);
        tu_write(docs, rel, text);
    }
}

static void write_config(const char *dir, const char *docs)
{
    char text[8192];
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"chunk\": {\"max_tokens\": 24, \"overlap_tokens\": 6},"
             " \"sources\": [{\"name\": \"t\", \"type\": \"files\", \"path\": \"%s\","
             " \"state_every\": 40}]}", docs);
    tu_write(dir, "ctxgate.json", text);
}

/* Run `ctxgate sync [arg]`; kill it with SIGKILL after delay_us (0 = let it finish). */
static int run_sync_arg(const char *dir, const char *arg, long delay_us)
{
    char cfg[4200];
    pid_t pid;
    int status;

    snprintf(cfg, sizeof cfg, "%s/ctxgate.json", dir);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(bin, bin, "--config", cfg, "sync", arg, (char *)NULL);
        _exit(127);
    }
    if (delay_us) {
        usleep((useconds_t)delay_us);
        kill(pid, SIGKILL);
    }
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static int run_sync(const char *dir, long delay_us)
{
    return run_sync_arg(dir, NULL, delay_us);
}

/* One line per live document: id, hash, principals allowed, chunk count. */
static char *snapshot(const char *dir)
{
    char path[4200];
    ctx_store *st;
    sqlite3_stmt *s;
    ctx_buf b = CTX_BUF_INIT;

    snprintf(path, sizeof path, "%s/data", dir);
    st = tu_store(path);
    cr_assert_eq(sqlite3_prepare_v2(store_db(st),
        "SELECT d.ext_id, d.hash, d.deleted,"
        " (SELECT group_concat(name, ',') FROM (SELECT p.name FROM acl_entries e"
        "   JOIN principals p ON p.id = e.principal_id WHERE e.acl_id = d.acl_id ORDER BY 1)),"
        " (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)"
        " FROM documents d ORDER BY d.ext_id", -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW)
        ctx_buf_printf(&b, "%s %s %d %s %d\n", sqlite3_column_text(s, 0),
                       sqlite3_column_text(s, 1), sqlite3_column_int(s, 2),
                       sqlite3_column_text(s, 3), sqlite3_column_int(s, 4));
    sqlite3_finalize(s);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks"),
                 tu_count(st, "SELECT count(*) FROM chunks_fts"), "chunks and FTS rows differ");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM (SELECT doc_id, seq FROM chunks"
                              " GROUP BY 1, 2 HAVING count(*) > 1)"), 0);
    {
        sqlite3_stmt *ic;
        cr_assert_eq(sqlite3_prepare_v2(store_db(st), "PRAGMA integrity_check", -1, &ic, NULL),
                     SQLITE_OK);
        cr_assert_eq(sqlite3_step(ic), SQLITE_ROW);
        cr_assert_str_eq((const char *)sqlite3_column_text(ic, 0), "ok");
        sqlite3_finalize(ic);
    }
    {
        ctx_error err;
        cr_assert_eq(store_exec(st, "INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')",
                                &err), 0, "FTS5 integrity: %s", err.text);
    }
    store_close(st);
    return ctx_buf_steal(&b);
}

static int64_t progress_mark(const char *dir)
{
    char path[4200];
    ctx_store *st;
    int64_t n;
    snprintf(path, sizeof path, "%s/data", dir);
    st = tu_store(path);
    /* Any committed batch changes this: new rows, or rows written by a later run. */
    n = tu_count(st, "SELECT count(*) + total(seen_epoch) FROM documents");
    store_close(st);
    return n;
}

static long elapsed_us(const char *dir)
{
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(run_sync(dir, 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &z);
    return (z.tv_sec - a.tv_sec) * 1000000L + (z.tv_nsec - a.tv_nsec) / 1000;
}

Test(crash, kill_9_anywhere_loses_and_duplicates_nothing, .timeout = 900)
{
    char *crash = tu_tmpdir("crash"), *clean = tu_tmpdir("clean"), docs[4200];
    char *want, *got;
    long full_us;
    int killed_mid = 0, progressed = 0;
    int64_t last_n = -1;

    snprintf(bin, sizeof bin, "%s/ctxgate", tu_build_dir());
    cr_assert_eq(access(bin, X_OK), 0, "%s not built", bin);
    snprintf(docs, sizeof docs, "%s/docs", crash);
    srand((unsigned)time(NULL));

    /* How long a clean sync of generation 0 takes sets the kill window. */
    write_tree(docs, 0);
    write_config(clean, docs);
    full_us = elapsed_us(clean);
    write_config(crash, docs);

    /*
     * Kill somewhere in the first two thirds of a full sync's time (start-up
     * takes the first sixth). A resumed run has less left to do than a full
     * one. When a run outlives its kill, the tree changes (edits, deletions,
     * then back) so the next runs have work again.
     */
    for (int gen = 0, tries = 0; (killed_mid < KILLS || progressed < KILLS / 3) && tries < 400;
         tries++) {
        long at = full_us / 6 + rand() % (full_us * 2 / 3 > 1 ? full_us * 2 / 3 : 1);
        if (run_sync(crash, at) == -SIGKILL) {
            int64_t n = progress_mark(crash);
            killed_mid++;
            progressed += n != last_n;
            if (getenv("CTX_CRASH_DEBUG"))
                fprintf(stderr, "kill at %ldus of %ldus: mark %lld\n", at, full_us, (long long)n);
            last_n = n;
        } else {
            gen = !gen;
            write_tree(docs, gen);
        }
    }
    cr_assert_geq(killed_mid, KILLS, "only %d runs were killed mid-sync", killed_mid);
    cr_assert_geq(progressed, KILLS / 3, "only %d kills fell between checkpoints", progressed);
    cr_assert_eq(run_sync(crash, 0), 0);

    /* The clean store: one uninterrupted sync of each generation. */
    write_config(clean, docs);
    cr_assert_eq(run_sync(clean, 0), 0);
    want = snapshot(clean);
    got = snapshot(crash);
    cr_assert_gt(strlen(want), 1000);
    cr_assert(!strcmp(want, got), "store after %d kills differs from a clean sync", KILLS);
    free(want);
    free(got);
    tu_rmrf(crash);
    tu_rmrf(clean);
    free(crash);
    free(clean);
}

/* ---- a killed full run still prunes ---- */

/* live - how many live documents the store in dir/data has, and of ids (a
 * SQL list such as "'a', 'b'") how many are live. */
static int64_t live(const char *dir, const char *ids, int64_t *of_ids)
{
    char path[4200], sql[1024];
    ctx_store *st;
    int64_t n;

    snprintf(path, sizeof path, "%s/data", dir);
    st = tu_store(path);
    n = tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM documents WHERE deleted = 0 AND ext_id IN (%s)",
             ids);
    *of_ids = tu_count(st, sql);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id"
                              " WHERE d.deleted = 1"), 0, "a deleted document kept chunks");
    store_close(st);
    return n;
}

/* timed_full - how long an uninterrupted `sync --full` of dir takes, in us. */
static long timed_full(const char *dir)
{
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(run_sync_arg(dir, "--full", 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &z);
    return (z.tv_sec - a.tv_sec) * 1000000L + (z.tv_nsec - a.tv_nsec) / 1000;
}

/* Rounds of kill_full_rounds: at least MIN_ROUNDS, and until MIN_KILLS of
 * them were killed mid-way, at most MAX_ROUNDS. */
#define MIN_ROUNDS 6
#define MIN_KILLS 3
#define MAX_ROUNDS 12

/*
 * kill_full_rounds - rounds: remove two items (del(arg, round, ids)
 * removes them at the source and writes their ids as a SQL list), kill -9
 * `sync --full` somewhere in its first three quarters, then run two plain
 * syncs: the two are gone from the store and nothing else is. A run that
 * ended before its kill shrinks the window (the machine got faster).
 */
static void kill_full_rounds(const char *dir, int64_t total,
                             void (*del)(void *arg, int round, char *ids, size_t len),
                             void *arg)
{
    long full_us = timed_full(dir);
    int killed = 0, r;
    int64_t of;

    cr_assert_eq(live(dir, "''", &of), total);
    for (r = 0; r < MAX_ROUNDS && (r < MIN_ROUNDS || killed < MIN_KILLS); r++) {
        char ids[512];
        long at = full_us / 8 + rand() % (full_us * 5 / 8 > 1 ? full_us * 5 / 8 : 1);
        del(arg, r, ids, sizeof ids);
        total -= 2;
        if (run_sync_arg(dir, "--full", at) == -SIGKILL)
            killed++;
        else
            full_us = at;
        cr_assert_eq(run_sync(dir, 0), 0);
        cr_assert_eq(run_sync(dir, 0), 0);
        cr_assert_eq(live(dir, ids, &of), total, "round %d (kill at %ldus of %ldus)", r, at,
                     full_us);
        cr_assert_eq(of, 0, "round %d: removed %s still live (kill at %ldus of %ldus)", r, ids,
                     at, full_us);
    }
    cr_assert_geq(killed, MIN_KILLS, "only %d of %d full runs were killed mid-way", killed, r);
}

#define KILL_FILES 5000

static void write_flat_tree(const char *docs)
{
    char rel[64], text[512];
    for (int i = 0; i < KILL_FILES; i++) {
        snprintf(rel, sizeof rel, "d%02d/f%05d.md", i % 20, i);
        snprintf(text, sizeof text, "---\nallow: [group:g%d]\n---\n# File %d\n\n"
                 "Body of file %d about topic %d.\n", i % 7, i, i, i % 41);
        tu_write(docs, rel, text);
    }
}

static void del_files(void *arg, int round, char *ids, size_t len)
{
    const char *docs = arg;
    char p[4200];
    int a = (977 * round + 13) % (KILL_FILES / 2), b = KILL_FILES - 1 - 131 * round;
    snprintf(p, sizeof p, "%s/d%02d/f%05d.md", docs, a % 20, a);
    cr_assert_eq(unlink(p), 0, "%s", p);
    snprintf(p, sizeof p, "%s/d%02d/f%05d.md", docs, b % 20, b);
    cr_assert_eq(unlink(p), 0, "%s", p);
    snprintf(ids, len, "'d%02d/f%05d.md', 'd%02d/f%05d.md'", a % 20, a, b % 20, b);
}

Test(crash, kill_9_during_full_sync_of_files_still_prunes, .timeout = 900)
{
    char *dir = tu_tmpdir("killfull"), docs[4200], text[8192];

    snprintf(bin, sizeof bin, "%s/ctxgate", tu_build_dir());
    cr_assert_eq(access(bin, X_OK), 0, "%s not built", bin);
    srand((unsigned)time(NULL));
    snprintf(docs, sizeof docs, "%s/docs", dir);
    write_flat_tree(docs);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"sources\": [{\"name\": \"t\", \"type\": \"files\","
             " \"path\": \"%s\", \"state_every\": 100}]}", docs);
    tu_write(dir, "ctxgate.json", text);
    cr_assert_eq(run_sync(dir, 0), 0);
    kill_full_rounds(dir, KILL_FILES, del_files, docs);
    tu_rmrf(dir);
    free(dir);
}

#define KILL_ROWS 20000

typedef struct pg_fix {
    PGconn *db;
    char table[64];
} pg_fix;

static void del_rows(void *arg, int round, char *ids, size_t len)
{
    pg_fix *f = arg;
    char why[1024];
    int a = (4099 * round + 7) % (KILL_ROWS / 2), b = KILL_ROWS - 3 - 577 * round;
    cr_assert_eq(pgtest_exec(f->db, why, sizeof why, "DELETE FROM %s WHERE id IN (%d, %d)",
                             f->table, a, b), 0, "%s", why);
    snprintf(ids, len, "'%d', '%d'", a, b);
}

Test(crash, kill_9_during_full_sync_of_postgres_still_prunes, .timeout = 900)
{
    char *dir = tu_tmpdir("killpg"), text[8192], why[1024];
    pg_fix f;

    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    snprintf(bin, sizeof bin, "%s/ctxgate", tu_build_dir());
    cr_assert_eq(access(bin, X_OK), 0, "%s not built", bin);
    srand((unsigned)time(NULL) ^ 0x5a5a);
    f.db = pgtest_connect(NULL, why, sizeof why);
    cr_assert(f.db != NULL, "%s", why);
    pgtest_name(f.table, sizeof f.table, "killfull");
    cr_assert_eq(pgtest_exec(f.db, why, sizeof why, "CREATE TABLE %s (id int PRIMARY KEY,"
                             " body text, updated_at timestamptz, readers text[])", f.table),
                 0, "%s", why);
    cr_assert_eq(pgtest_exec(f.db, why, sizeof why, "INSERT INTO %s SELECT i, 'row ' || i ||"
                             " ' about topic ' || (i %% 97), '2024-01-01'::timestamptz +"
                             " i * interval '1 second', ARRAY['u' || (i %% 11)]"
                             " FROM generate_series(1, %d) i", f.table, KILL_ROWS), 0, "%s",
                 why);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"sources\": [{\"name\": \"p\", \"type\": \"postgres\","
             " \"conninfo\": \"%s\", \"password_env\": \"CTX_TEST_PGPASSWORD\","
             " \"state_every\": 500, \"streams\": [{\"name\": \"rows\", \"table\": \"%s\","
             " \"id\": \"id\", \"body\": \"body\", \"updated_at\": \"updated_at\","
             " \"allow_users\": \"readers\"}]}]}", pgtest_conninfo(), f.table);
    tu_write(dir, "ctxgate.json", text);
    cr_assert_eq(run_sync(dir, 0), 0);
    kill_full_rounds(dir, KILL_ROWS, del_rows, &f);
    pgtest_exec(f.db, why, sizeof why, "DROP TABLE %s", f.table);
    PQfinish(f.db);
    tu_rmrf(dir);
    free(dir);
}

/* live_docs - live documents of the store in dir/data. */
static int64_t live_docs(const char *dir)
{
    int64_t of;
    return live(dir, "''", &of);
}

Test(crash, kill_9_during_permission_sync_prunes_all_or_nothing, .timeout = 900)
{
    char *dir = tu_tmpdir("killperm"), docs[4200], text[8192], ids[512];
    struct timespec a, z;
    long perm_us;
    int64_t total = KILL_FILES, of, n;
    int killed = 0, r;

    snprintf(bin, sizeof bin, "%s/ctxgate", tu_build_dir());
    cr_assert_eq(access(bin, X_OK), 0, "%s not built", bin);
    srand((unsigned)time(NULL) ^ 0x3c3c);
    snprintf(docs, sizeof docs, "%s/docs", dir);
    write_flat_tree(docs);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"sources\": [{\"name\": \"t\", \"type\": \"files\","
             " \"path\": \"%s\", \"state_every\": 100}]}", docs);
    tu_write(dir, "ctxgate.json", text);
    cr_assert_eq(run_sync(dir, 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(run_sync_arg(dir, "--permissions", 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &z);
    perm_us = (z.tv_sec - a.tv_sec) * 1000000L + (z.tv_nsec - a.tv_nsec) / 1000;
    cr_assert_eq(live_docs(dir), total);

    for (r = 0; r < MAX_ROUNDS && (r < MIN_ROUNDS || killed < MIN_KILLS); r++) {
        long at = perm_us / 8 + rand() % (perm_us * 5 / 8 > 1 ? perm_us * 5 / 8 : 1);
        del_files(docs, r, ids, sizeof ids);
        if (run_sync_arg(dir, "--permissions", at) != -SIGKILL) {
            perm_us = at; /* it ended before the kill: aim earlier */
        } else {
            killed++;
            /* All or nothing: a run killed before its prune committed pruned
             * nothing; one killed after it (while recording the run) pruned
             * exactly the two. Never anything else. */
            n = live(dir, ids, &of);
            cr_assert(n == total || (n == total - 2 && of == 0), "round %d: a killed permission"
                      " run left %lld of %lld live, %lld of the removed (kill at %ldus of %ldus)",
                      r, (long long)n, (long long)total, (long long)of, at, perm_us);
        }
        cr_assert_eq(run_sync_arg(dir, "--permissions", 0), 0);
        total -= 2;
        cr_assert_eq(live(dir, ids, &of), total, "round %d", r);
        cr_assert_eq(of, 0, "round %d: %s still live", r, ids);
    }
    cr_assert_geq(killed, MIN_KILLS, "only %d of %d permission runs were killed mid-way",
                  killed, r);
    tu_rmrf(dir);
    free(dir);
}
