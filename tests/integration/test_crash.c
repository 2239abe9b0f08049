/*
 * test_crash.c - kill -9 the real `ctxgate sync` at 24 random instants
 * (with edits and deletions in between), let it finish, and compare the
 * store with a clean sync of the final tree: no document or chunk lost or
 * duplicated, same permissions, and SQLite and FTS5 integrity checks pass.
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

/* Run `ctxgate sync`; kill it with SIGKILL after delay_us (0 = let it finish). */
static int run_sync(const char *dir, long delay_us)
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
        execl(bin, bin, "--config", cfg, "sync", (char *)NULL);
        _exit(127);
    }
    if (delay_us) {
        usleep((useconds_t)delay_us);
        kill(pid, SIGKILL);
    }
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
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
