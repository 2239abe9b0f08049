/*
 * test_vdelta.c - the vector index's files kept up to date by deltas:
 * nothing is written when nothing changed; new vectors cost bytes in
 * proportion to their number; the main file with its deltas, and after
 * vindex_maintain merged them, answers exactly what an index rebuilt from
 * the store answers (deletions and ACL changes included); and the lock:
 * writers in two real processes keep one chain, a writer waits for the
 * holder, and vindex_maintain never deletes a live writer's temporary file;
 * a few vectors more cost the index a block of rows, not a copy; a model
 * switch keeps the old model's files until it flips.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/embed.h"
#include "indexer/ingest.h"
#include "indexer/vindex.h"
#include "indexer/vindex_int.h"
#include "retrieval/search.h"
#include "retrieval/vsearch.h"
#include "tests/lib/testutil.h"

#define DIM 48

static char *dir;
static ctx_store *st;
static ingest_ctx ic;
static store_run_stats stats;
static embed_provider *emb;

static void setup(void)
{
    embed_cfg c = {0};
    ctx_error err;
    int64_t source;

    /* the children below are forked without exec */
    vindex_threads_set(1);
    dir = tu_tmpdir("vdelta");
    st = tu_store(dir);
    source = tu_source_with_user(st, "user:ann@t.test", &ic, &stats);
    (void)source;
    c.dim = DIM;
    cr_assert_eq(embed_open(&c, &emb, &err), 0);
}

static void teardown(void)
{
    embed_close(emb);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(vdelta, .init = setup, .fini = teardown, .timeout = 240);

/* put_docs - documents d<from>..d<to-1>; every third one a group's only. */
static void put_docs(int from, int to)
{
    const char *all[1] = {"everyone"}, *grp[1] = {"group:x"};
    ctx_acl open = {all, 1, NULL, 0, NULL, 0}, closed = {grp, 1, NULL, 0, NULL, 0};
    ctx_error err;
    char id[16], body[96];

    cr_assert_eq(store_begin(st, &err), 0);
    for (int i = from; i < to; i++) {
        snprintf(id, sizeof id, "d%d", i);
        snprintf(body, sizeof body, "w%d w%d w%d common", i, i % 7, i % 13);
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0,
                        i % 3 ? &open : &closed};
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);
}

static void delete_doc(int i)
{
    ctx_error err;
    char id[16];
    snprintf(id, sizeof id, "d%d", i);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_delete(&ic, "s", id, &err), 0);
    cr_assert_eq(store_commit(st, &err), 0);
}

/* reacl - document i readable by everyone (open) or by group:y only. */
static void reacl(int i, int open)
{
    const char *all[1] = {"everyone"}, *grp[1] = {"group:y"};
    ctx_acl acl = {open ? all : grp, 1, NULL, 0, NULL, 0};
    ctx_error err;
    char id[16];
    snprintf(id, sizeof id, "d%d", i);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_acl(&ic, "s", id, &acl, &err), 0, "%s", err.text);
    cr_assert_eq(store_commit(st, &err), 0);
}

static void embed_all(void)
{
    ctx_error err;
    cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
}

static int64_t model(void)
{
    int64_t a, t;
    ctx_error err;
    cr_assert_eq(store_embed_models(st, &a, &t, &err), 0);
    return a;
}

static void update(vindex_update_stats *us)
{
    ctx_error err;
    cr_assert_eq(vindex_update(st, dir, model(), -1, NULL, us, &err), 0, "%s", err.text);
}

/* What a directory holds: each vectors-* file's name, inode, mtime and size. */
static char *listing(void)
{
    ctx_buf b = CTX_BUF_INIT;
    struct dirent *e;
    DIR *d = opendir(dir);
    cr_assert(d);
    while ((e = readdir(d))) {
        char path[4096];
        struct stat sb;
        if (strncmp(e->d_name, "vectors-", 8))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cr_assert_eq(stat(path, &sb), 0);
        ctx_buf_printf(&b, "%s %llu %lld.%09ld %lld\n", e->d_name,
                       (unsigned long long)sb.st_ino, (long long)sb.st_mtim.tv_sec,
                       sb.st_mtim.tv_nsec, (long long)sb.st_size);
    }
    closedir(d);
    ctx_buf_puts(&b, "");
    return ctx_buf_steal(&b);
}

static int64_t last_seq(void)
{
    return tu_count(st, "SELECT coalesce(max(seq), 0) FROM vectors");
}

static int64_t last_tomb(void)
{
    int64_t last, floor;
    ctx_error err;
    cr_assert_eq(store_tombstone_marks(st, &last, &floor, &err), 0);
    return last;
}

Test(vdelta, nothing_new_writes_nothing)
{
    vindex_update_stats us;
    vindex_files_info before, after;
    ctx_error err;
    char *a, *b;

    put_docs(0, 300);
    embed_all();
    update(&us);
    cr_assert(us.built);
    cr_assert_gt(us.bytes, 0);
    cr_assert_eq(vindex_files(dir, model(), &before, &err), 0);
    cr_assert(before.main_ok);
    cr_assert_eq(before.seq, last_seq());
    a = listing();
    for (int round = 0; round < 3; round++) {
        update(&us);
        cr_assert_eq(us.bytes, 0, "round %d wrote %llu bytes", round,
                     (unsigned long long)us.bytes);
        cr_assert(!us.built && !us.merged && !us.added && !us.removed);
        /* chunks that wait for a vector change nothing in the files either */
        if (round == 1)
            put_docs(300, 310);
    }
    b = listing();
    cr_assert_str_eq(a, b, "the files changed:\n%s\nthen:\n%s", a, b);
    cr_assert_eq(vindex_files(dir, model(), &after, &err), 0);
    /* the generation: what the files hold */
    cr_assert_eq(after.seq, before.seq);
    cr_assert_eq(after.tomb_seq, before.tomb_seq);
    cr_assert_eq(after.deltas, 0);
    ctx_free(a);
    ctx_free(b);
}

Test(vdelta, new_vectors_cost_bytes_in_proportion_to_their_number)
{
    vindex_update_stats us;
    char main_path[4096];
    struct stat m0, m1;
    ctx_error err;
    vindex_files_info fi;
    static const int adds[] = {1, 10, 100, 1000};
    int at = 2000;

    put_docs(0, at);
    embed_all();
    update(&us);
    vindex_path(dir, model(), main_path, sizeof main_path);
    cr_assert_eq(stat(main_path, &m0), 0);
    for (size_t i = 0; i < sizeof adds / sizeof adds[0]; i++) {
        put_docs(at, at + adds[i]);
        at += adds[i];
        embed_all();
        update(&us);
        cr_assert(!us.built && !us.merged);
        cr_assert_eq(us.added, (size_t)adds[i]);
        cr_assert_eq(us.removed, 0);
        /* a head, the vectors with their ids, a tail: nothing else */
        cr_assert_eq(us.bytes, 40 + (uint64_t)adds[i] * (16 + 4 * DIM) + 56,
                     "%d vectors took %llu bytes", adds[i], (unsigned long long)us.bytes);
    }
    /* the main file was not touched */
    cr_assert_eq(stat(main_path, &m1), 0);
    cr_assert_eq(m1.st_ino, m0.st_ino);
    cr_assert_eq(m1.st_mtim.tv_sec, m0.st_mtim.tv_sec);
    cr_assert_eq(m1.st_mtim.tv_nsec, m0.st_mtim.tv_nsec);
    cr_assert_eq(vindex_files(dir, model(), &fi, &err), 0);
    cr_assert_eq(fi.deltas, 4);
    cr_assert_eq(fi.other, 0);
    cr_assert_eq(fi.seq, last_seq());
    /* deletions cost 8 bytes each */
    delete_doc(5);
    delete_doc(6);
    update(&us);
    cr_assert_eq(us.removed, 2);
    cr_assert_eq(us.added, 0);
    cr_assert_eq(us.bytes, 40 + 2 * 8 + 56);
}

/* answers - what every ACL set's exact search and ann's vector search find, as text (new). */
static char *answers(vindex *vi)
{
    ctx_buf b = CTX_BUF_INIT;
    static const char *const queries[] = {"w3 common", "w11 w5", "w250", "common"};
    int64_t acls[64];
    size_t nacl = 0;
    sqlite3_stmt *s;
    vindex_hit hits[40];
    ctx_error err;
    float q[DIM];

    cr_assert_eq(sqlite3_prepare_v2(store_db(st), "SELECT DISTINCT acl_id FROM chunks"
                                    " UNION SELECT id FROM acl_sets ORDER BY 1",
                                    -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW && nacl < 64)
        acls[nacl++] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    for (size_t qi = 0; qi < sizeof queries / sizeof queries[0]; qi++) {
        size_t len = strlen(queries[qi]), n;
        search_result r;
        vsearch_opts vo = {0};
        cr_assert_eq(embed_texts(emb, &queries[qi], &len, 1, q, &err), 0);
        for (size_t a = 0; a < nacl; a++) {
            vindex_filter f = {&acls[a], 1, NULL, 0};
            cr_assert_eq(vindex_search_exact(vi, q, 40, &f, hits, &n, &err), 0);
            ctx_buf_printf(&b, "q%zu acl %lld count %zu:", qi, (long long)acls[a],
                           vindex_count(vi, &f));
            for (size_t i = 0; i < n; i++)
                ctx_buf_printf(&b, " %lld %a", (long long)hits[i].chunk_id, hits[i].score);
            ctx_buf_puts(&b, "\n");
        }
        vo.k = 25;
        vo.plan = VSEARCH_EXACT;
        cr_assert_eq(vsearch(store_db(st), vi, "ann@t.test", q, &vo, &r, NULL, &err), 0,
                     "%s", err.text);
        {
            char *t = tu_search_answer(&r);
            ctx_buf_printf(&b, "ann q%zu: %s\n", qi, t);
            ctx_free(t);
        }
        search_result_free(&r);
    }
    return ctx_buf_steal(&b);
}

/*
 * files_answers - the answers of what the files alone hold: the main file
 * and its chain applied, nothing read from the store (new).
 */
static char *files_answers(void)
{
    vindex *vi;
    vindex_info info;
    vdelta_set set;
    ctx_error err;
    char path[4096], *a;

    vindex_path(dir, model(), path, sizeof path);
    cr_assert_eq(vindex_load(path, &vi, &err), 0, "%s", err.text);
    cr_assert_eq(vdelta_list(dir, model(), &set, &err), 0);
    for (size_t i = 0; i < set.n; i++)
        if (set.d[i].chained)
            cr_assert_eq(vdelta_apply(vi, dir, &set.d[i], &err), 0, "%s", err.text);
    vdelta_set_free(&set);
    vindex_get_info(vi, &info);
    cr_assert_eq(info.seq, last_seq(), "the files do not hold every vector");
    cr_assert_eq(info.tomb_seq, last_tomb(), "the files do not hold every tombstone");
    a = answers(vi);
    vindex_free(vi);
    return a;
}

/* open_answers - the answers of vindex_open's index (files, then the store), new. */
static char *open_answers(void)
{
    vindex *vi;
    int how;
    ctx_error err;
    char path[4096], *a;

    vindex_path(dir, model(), path, sizeof path);
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0, "%s", err.text);
    cr_assert_eq(how, VINDEX_LOADED);
    a = answers(vi);
    vindex_free(vi);
    return a;
}

static char *rebuilt_answers(void)
{
    vindex *vi;
    ctx_error err;
    char *a;
    cr_assert_eq(vindex_build(st, model(), &vi, &err), 0, "%s", err.text);
    a = answers(vi);
    vindex_free(vi);
    return a;
}

Test(vdelta, deltas_and_their_merge_answer_as_a_rebuild)
{
    vindex_update_stats us;
    vindex_files_info fi;
    int64_t pruned;
    ctx_error err;
    char *d, *r, *m;

    put_docs(0, 400);
    embed_all();
    update(&us);
    cr_assert(us.built);
    /* rounds of new documents, deletions and permission changes, a delta each */
    for (int round = 0; round < 4; round++) {
        put_docs(400 + round * 50, 450 + round * 50);
        delete_doc(round * 7 + 1);
        delete_doc(400 + round * 50 + 3); /* one of this round's own */
        reacl(round * 11 + 2, round % 2);
        reacl(round * 11 + 3, 0);
        embed_all();
        update(&us);
        cr_assert_gt(us.bytes, 0);
        cr_assert_gt(us.removed, 0);
    }
    cr_assert_eq(vindex_files(dir, model(), &fi, &err), 0);
    cr_assert_eq(fi.deltas, 4);
    d = files_answers();
    r = rebuilt_answers();
    cr_assert_str_eq(d, r, "main file + deltas:\n%s\nrebuilt:\n%s", d, r);
    ctx_free(d);
    d = open_answers();
    cr_assert_str_eq(d, r);
    /* merged: one file again, the same answers, and the tombstones it holds pruned */
    cr_assert_eq(vindex_maintain(st, dir, &pruned, &err), 0, "%s", err.text);
    cr_assert_gt(pruned, 0);
    cr_assert_eq(vindex_files(dir, model(), &fi, &err), 0);
    cr_assert_eq(fi.deltas + fi.other, 0);
    cr_assert(fi.main_ok);
    m = files_answers();
    cr_assert_str_eq(m, r, "merged:\n%s\nrebuilt:\n%s", m, r);
    /* and deltas go on from the merged file */
    put_docs(700, 720);
    delete_doc(701);
    embed_all();
    update(&us);
    cr_assert_eq(us.added, 19);
    ctx_free(d);
    ctx_free(m);
    ctx_free(r);
    d = files_answers();
    r = rebuilt_answers();
    cr_assert_str_eq(d, r);
    ctx_free(d);
    ctx_free(r);
}

/* The partition's answers: the main file caught up from the store, as before deltas. */
Test(vdelta, a_partitioned_index_answers_alike_from_deltas)
{
    vindex_update_stats us;
    vindex *vi, *base;
    char path[4096];
    int how;
    ctx_error err;
    int64_t all[8];
    size_t nacl = 0;
    float q[DIM];
    const char *text = "w5 common";
    size_t len = strlen(text);
    sqlite3_stmt *s;

    put_docs(0, 600);
    embed_all();
    vindex_path(dir, model(), path, sizeof path);
    cr_assert_eq(vindex_build(st, model(), &vi, &err), 0);
    cr_assert_eq(vindex_partition(vi, 12, &err), 0);
    cr_assert_eq(vindex_save(vi, path, &err), 0);
    vindex_free(vi);
    for (int round = 0; round < 3; round++) {
        put_docs(600 + round * 40, 640 + round * 40);
        delete_doc(round * 5 + 4);
        reacl(round * 9 + 1, 0);
        embed_all();
        update(&us);
        cr_assert(!us.built);
    }
    cr_assert_eq(sqlite3_prepare_v2(store_db(st), "SELECT id FROM acl_sets ORDER BY 1", -1,
                                    &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW && nacl < 8)
        all[nacl++] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    cr_assert_eq(embed_texts(emb, &text, &len, 1, q, &err), 0);
    /* with deltas, and the same main file caught up from the store alone */
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    cr_assert_eq(how, VINDEX_LOADED);
    cr_assert_eq(vindex_load(path, &base, &err), 0);
    cr_assert_eq(vindex_catch_up(base, st, NULL, NULL, &err), 0);
    for (int probe = 1; probe <= 12; probe += 11) {
        vindex_filter f = {all, nacl, NULL, 0};
        vindex_hit h1[30], h2[30];
        size_t n1, n2;
        cr_assert_eq(vindex_search_ivf(vi, q, 30, probe, &f, h1, &n1, &err), 0);
        cr_assert_eq(vindex_search_ivf(base, q, 30, probe, &f, h2, &n2, &err), 0);
        cr_assert_eq(n1, n2);
        for (size_t i = 0; i < n1; i++) {
            cr_assert_eq(h1[i].chunk_id, h2[i].chunk_id, "nprobe %d, hit %zu", probe, i);
            cr_assert_eq(h1[i].score, h2[i].score);
        }
    }
    vindex_free(vi);
    vindex_free(base);
}

Test(vdelta, a_torn_delta_is_caught_up_from_the_store_then_merged_away)
{
    vindex_update_stats us;
    vindex_files_info fi;
    struct dirent *e;
    char path[4096] = "";
    ctx_error err;
    char *d, *r;
    FILE *f;
    DIR *dd;
    int c;

    put_docs(0, 200);
    embed_all();
    update(&us);
    put_docs(200, 260);
    delete_doc(3);
    embed_all();
    update(&us);
    put_docs(260, 280);
    embed_all();
    update(&us);
    /* flip a byte inside the first delta: its ends still look whole */
    cr_assert((dd = opendir(dir)));
    while ((e = readdir(dd)))
        if (strstr(e->d_name, ".dlt") && (!*path || strcmp(e->d_name, strrchr(path, '/') + 1) < 0))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(dd);
    cr_assert((f = fopen(path, "r+b")));
    fseek(f, 300, SEEK_SET);
    c = fgetc(f);
    fseek(f, 300, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    cr_assert_eq(vindex_files(dir, model(), &fi, &err), 0);
    cr_assert_eq(fi.deltas, 2);
    /* opened: the chain stops at it and the store fills in */
    r = rebuilt_answers();
    d = open_answers();
    cr_assert_str_eq(d, r);
    ctx_free(d);
    cr_assert_eq(vindex_maintain(st, dir, NULL, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_files(dir, model(), &fi, &err), 0);
    cr_assert_eq(fi.deltas + fi.other, 0);
    d = files_answers();
    cr_assert_str_eq(d, r);
    ctx_free(d);
    ctx_free(r);
}

/* ---- the lock, across processes ---- */

/*
 * child_update - fork a process that runs vindex_update (wait_ms) rounds
 * times (< 0: until the file dir/stop exists) on a store connection of its
 * own and exits with its rc.
 */
static pid_t child_update(int wait_ms, int rounds)
{
    int64_t m = model();
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (!pid) {
        ctx_store *cst;
        vindex_update_stats us;
        ctx_error err;
        int rc = 0;
        char db[4096], stop[4096];
        snprintf(db, sizeof db, "%s/ctxgate.db", dir);
        snprintf(stop, sizeof stop, "%s/stop", dir);
        if (store_open(db, 0, &cst, &err))
            _exit(100);
        for (int i = 0; (rounds < 0 ? access(stop, F_OK) != 0 : i < rounds) && !rc; i++)
            rc = vindex_update(cst, dir, m, wait_ms, NULL, &us, &err);
        store_close(cst);
        _exit(rc);
    }
    return pid;
}

static int exit_code(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died");
    return WEXITSTATUS(status);
}

Test(vdelta, a_writer_waits_for_the_lock_holder)
{
    vindex_update_stats us;
    vindex_files_info fi;
    ctx_error err;
    int go[2], ready[2], status;
    pid_t holder, pid;
    char c;

    put_docs(0, 100);
    embed_all();
    update(&us);
    put_docs(100, 120);
    embed_all();
    /* Another process holds the lock (not this one: a child forked while
     * it held it would hold it too, the descriptor being shared). */
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(ready), 0);
    holder = fork();
    cr_assert_neq(holder, -1);
    if (!holder) {
        int fd;
        if (vindex_lock(dir, 0, NULL, &fd, &err) || write(ready[1], "r", 1) != 1 ||
            read(go[0], &c, 1) != 1)
            _exit(1);
        _exit(0);
    }
    cr_assert_eq(read(ready[0], &c, 1), 1);
    /* a writer is refused at once... */
    cr_assert_eq(exit_code(child_update(0, 1)), CTX_EBUSY);
    /* ...or waits, and writes nothing meanwhile */
    pid = child_update(-1, 1);
    usleep(300 * 1000);
    cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "the writer did not wait");
    cr_assert_eq(vindex_files(dir, model(), &fi, &err), 0);
    cr_assert_eq(fi.deltas + fi.other, 0);
    cr_assert_eq(write(go[1], "g", 1), 1);
    cr_assert_eq(exit_code(holder), 0);
    cr_assert_eq(exit_code(pid), 0);
    cr_assert_eq(vindex_files(dir, model(), &fi, &err), 0);
    cr_assert_eq(fi.deltas, 1);
    cr_assert_eq(fi.seq, last_seq());
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
}

Test(vdelta, writers_in_two_processes_keep_one_chain)
{
    vindex_update_stats us;
    vindex_files_info fi;
    ctx_error err;
    char *d, *r;

    put_docs(0, 200);
    embed_all();
    update(&us);
    /* two processes bring the files up to the store again and again while
     * documents come and go here, a few at a time */
    {
        char stop[4096];
        pid_t a = child_update(-1, -1), b = child_update(-1, -1);
        for (int i = 0; i < 120; i++) {
            put_docs(200 + i, 201 + i);
            if (i % 4 == 0)
                delete_doc(i / 4 + 1);
            embed_all();
        }
        tu_write(dir, "stop", "");
        cr_assert_eq(exit_code(a), 0);
        cr_assert_eq(exit_code(b), 0);
        snprintf(stop, sizeof stop, "%s/stop", dir);
        unlink(stop);
    }
    update(&us);
    cr_assert_eq(vindex_files(dir, model(), &fi, &err), 0);
    cr_assert_eq(fi.other, 0, "%zu deltas off the chain", fi.other);
    cr_assert_eq(fi.seq, last_seq());
    cr_assert_eq(fi.tomb_seq, last_tomb());
    d = files_answers();
    r = rebuilt_answers();
    cr_assert_str_eq(d, r);
    ctx_free(d);
    ctx_free(r);
}

Test(vdelta, maintain_never_deletes_a_live_writers_temporary_file)
{
    vindex_update_stats us;
    char live[4096], dead[4096];
    int go[2], ready[2];
    ctx_error err;
    pid_t pid;
    char c;

    put_docs(0, 50);
    embed_all();
    update(&us);
    snprintf(live, sizeof live, "%s/vectors-%lld.dlt.tmp", dir, (long long)model());
    snprintf(dead, sizeof dead, "%s/vectors-%lld.idx.tmp", dir, (long long)model());
    tu_write(dir, strrchr(dead, '/') + 1, "a save that never finished");
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(ready), 0);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (!pid) {
        /* a writer halfway through its file, as vdelta_write and vindex_save hold it */
        FILE *f;
        int lockfd;
        if (vindex__tmp_open(live, &f, &lockfd, &err) || fputs("half", f) < 0 || fflush(f))
            _exit(1);
        if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(2);
        _exit(0);
    }
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert_eq(vindex_maintain(st, dir, NULL, &err), 0, "%s", err.text);
    cr_assert_eq(access(live, F_OK), 0, "a live writer's file was deleted");
    cr_assert_neq(access(dead, F_OK), 0, "a dead writer's file was kept");
    /* its writer gone (killed mid-write, say), it goes too */
    cr_assert_eq(write(go[1], "g", 1), 1);
    cr_assert_eq(exit_code(pid), 0);
    cr_assert_eq(vindex_maintain(st, dir, NULL, &err), 0, "%s", err.text);
    cr_assert_neq(access(live, F_OK), 0);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
}

/*
 * Adding a few vectors to a large index allocates a block of rows at most:
 * the rows already held never move (a std::vector would have copied them
 * all into a buffer a quarter larger, both alive at once).
 */
Test(vdelta, a_few_vectors_more_cost_a_block_not_a_copy)
{
    enum { N = 20000, D = 64 };
    vindex *vi = vindex_new(D, 1, 16);
    float *v = malloc(sizeof(float) * N * D);
    int64_t *ids = malloc(sizeof(int64_t) * N), acl[N], src[N];
    vindex_info a, b;
    ctx_error err;

    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++)
            v[i * D + j] = (float)((i * 7919 + j * 104729) % 1000) / 1000.0f - 0.5f;
        embed_normalize(v + i * D, D);
        ids[i] = i + 1;
        acl[i] = 1;
        src[i] = 1;
    }
    cr_assert_eq(vindex_add(vi, N - 8, v, ids, acl, src, N - 8, &err), 0);
    cr_assert_eq(vindex_partition(vi, 16, &err), 0);
    vindex_get_info(vi, &a);
    for (int i = N - 8; i < N; i++)
        cr_assert_eq(vindex_add(vi, 1, v + (size_t)i * D, ids + i, acl + i, src + i, i + 1, &err),
                     0);
    vindex_get_info(vi, &b);
    /* 8 rows: at most a new block of floats and one of codes, and the
     * small per-slot arrays' growth; not a quarter of the index */
    cr_assert_lt(b.bytes - a.bytes, a.bytes / 10, "%zu bytes became %zu", a.bytes, b.bytes);
    cr_assert_eq(b.n, N);
    vindex_free(vi);
    free(v);
    free(ids);
}

/*
 * A model switch with deltas: while the new model's vectors are made, the
 * old model's files keep taking deltas and answering; after the flip the
 * new model's main file is built, and vindex_maintain deletes every file
 * of the old one, its deltas too.
 */
Test(vdelta, a_model_switch_keeps_the_old_files_until_it_flips)
{
    vindex_update_stats us;
    vindex_files_info fi;
    embed_provider *next;
    embed_run_stats rs;
    embed_cfg c = {0};
    int64_t old, active, target;
    ctx_error err;
    char path[4096];
    struct stat sb;

    put_docs(0, 300);
    embed_all();
    update(&us);
    old = model();
    put_docs(300, 320);
    embed_all();
    update(&us);
    cr_assert_eq(us.added, 20);
    /* another model: a few batches only, the old one still active */
    c.dim = 32;
    c.batch_size = 16;
    cr_assert_eq(embed_open(&c, &next, &err), 0);
    cr_assert_eq(embed_run(st, next, 3, NULL, &rs, &err), 0, "%s", err.text);
    cr_assert_gt(rs.remaining, 0);
    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    cr_assert_eq(active, old);
    cr_assert_neq(target, 0);
    delete_doc(7);
    update(&us); /* the active model's files take the deletion */
    cr_assert_eq(us.removed, 1);
    cr_assert_eq(vindex_files(dir, old, &fi, &err), 0);
    cr_assert_eq(fi.deltas, 2);
    /* the rest, then the flip */
    cr_assert_eq(embed_run(st, next, 0, NULL, &rs, &err), 0, "%s", err.text);
    cr_assert(rs.switched);
    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    cr_assert_eq(target, 0);
    cr_assert_neq(active, old);
    cr_assert_eq(vindex_update(st, dir, active, -1, NULL, &us, &err), 0, "%s", err.text);
    cr_assert(us.built);
    cr_assert_eq(vindex_maintain(st, dir, NULL, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_files(dir, old, &fi, &err), 0);
    cr_assert(!fi.main_ok);
    cr_assert_eq(fi.deltas + fi.other, 0, "the old model's deltas were kept");
    vindex_path(dir, active, path, sizeof path);
    cr_assert_eq(stat(path, &sb), 0);
    embed_close(next);
}
