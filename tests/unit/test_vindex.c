/*
 * test_vindex.c - the vector index as derived data: saved and loaded, rebuilt
 * from the store when its file is missing, torn or of another model, caught
 * up with vectors and tombstones added since; the SIMD and scalar kernels
 * agree; and on a large index a filtered graph walk never returns a vector
 * outside the filter while finding what an exact scan finds.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/embed.h"
#include "indexer/ingest.h"
#include "indexer/vindex.h"
#include "retrieval/vsearch.h"
#include "tests/lib/testutil.h"

static unsigned rng = 777;

static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static int rnd(unsigned n)
{
    rng = rng * 1103515245u + 12345u;
    return (int)((rng >> 8) % n);
}

Test(vindex, simd_and_scalar_kernels_agree)
{
    float a[389], b[389];
    for (int i = 0; i < 389; i++) {
        a[i] = frand();
        b[i] = frand();
    }
    for (size_t d = 1; d <= 389; d += 7) {
        vindex_simd_set(1);
        float x = vindex_l2sq(a, b, d);
        vindex_simd_set(0);
        float y = vindex_l2sq(a, b, d);
        cr_assert_float_eq(x, y, 1e-4 * (y + 1), "d=%zu: %f vs %f", d, x, y);
    }
    vindex_simd_set(1);
}

/* ---- with a store ---- */

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

    dir = tu_tmpdir("vindex");
    st = tu_store(dir);
    cr_assert_eq(store_source(st, "s", "test", &source, &err), 0);
    tu_ingest_init(&ic, st, source, &stats);
    c.dim = 48;
    cr_assert_eq(embed_open(&c, &emb, &err), 0);
}

static void teardown(void)
{
    embed_close(emb);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void put_docs(int from, int to)
{
    const char *allow[1] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    ctx_error err;
    char id[16], body[64];

    cr_assert_eq(store_begin(st, &err), 0);
    for (int i = from; i < to; i++) {
        snprintf(id, sizeof id, "d%d", i);
        snprintf(body, sizeof body, "w%d w%d w%d", i, i % 7, i % 13);
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
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

/* Everything the index holds equals the store's live vectors. */
static void check_equals_store(vindex *vi)
{
    vindex_info info;
    int64_t all[1] = {0};
    vindex_filter f = {all, 1, NULL, 0};
    int64_t acl = tu_count(st, "SELECT min(acl_id) FROM chunks");
    vindex_hit *hits = calloc(1000, sizeof *hits);
    size_t n;
    ctx_error err;
    float q[48];
    const char *t = "w3";
    size_t len = 2;

    all[0] = acl;
    vindex_get_info(vi, &info);
    cr_assert_eq((int64_t)(info.n - info.dead), tu_count(st, "SELECT count(*) FROM vectors"));
    cr_assert_eq((int64_t)vindex_count(vi, &f), tu_count(st, "SELECT count(*) FROM vectors"));
    cr_assert_eq(embed_texts(emb, &t, &len, 1, q, &err), 0);
    cr_assert_eq(vindex_search_exact(vi, q, 1000, &f, hits, &n, &err), 0);
    cr_assert_eq((int64_t)n, tu_count(st, "SELECT count(*) FROM vectors"));
    for (size_t i = 0; i < n; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM vectors WHERE chunk_id = %lld",
                 (long long)hits[i].chunk_id);
        cr_assert_eq(tu_count(st, sql), 1, "chunk %lld is not in the store",
                     (long long)hits[i].chunk_id);
    }
    free(hits);
}

TestSuite(vindex_store, .init = setup, .fini = teardown);

Test(vindex_store, missing_file_is_built_then_loaded_and_caught_up)
{
    char path[4096];
    vindex *vi;
    int how;
    ctx_error err;
    size_t added, removed;

    put_docs(0, 50);
    embed_all();
    vindex_path(dir, model(), path, sizeof path);
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0, "%s", err.text);
    cr_assert_eq(how, VINDEX_BUILT);
    check_equals_store(vi);
    cr_assert_eq(vindex_save(vi, path, &err), 0, "%s", err.text);
    vindex_free(vi);

    /* More vectors, some deletions: loaded from the file, then caught up. */
    put_docs(50, 80);
    embed_all();
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_delete(&ic, "s", "d3", &err), 0);
    cr_assert_eq(ingest_delete(&ic, "s", "d60", &err), 0);
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0, "%s", err.text);
    cr_assert_eq(how, VINDEX_LOADED);
    check_equals_store(vi);
    /* Nothing new: a second catch-up is a no-op. */
    cr_assert_eq(vindex_catch_up(vi, st, &added, &removed, &err), 0);
    cr_assert_eq(added, 0);
    cr_assert_eq(removed, 0);
    vindex_free(vi);
}

static void corrupt(const char *path, long at, int truncate_it)
{
    FILE *f;
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    if (truncate_it) {
        cr_assert_eq(truncate(path, sb.st_size / 2), 0);
        return;
    }
    f = fopen(path, "r+b");
    cr_assert(f);
    fseek(f, at < 0 ? sb.st_size + at : at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at < 0 ? sb.st_size + at : at, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

Test(vindex_store, torn_or_foreign_file_is_rebuilt)
{
    static const long where[] = {0, 40, 200, -30, -3};
    char path[4096];
    vindex *vi, *loaded;
    int how;
    ctx_error err;

    put_docs(0, 40);
    embed_all();
    vindex_path(dir, model(), path, sizeof path);
    cr_assert_eq(vindex_build(st, model(), &vi, &err), 0);
    for (size_t i = 0; i <= sizeof where / sizeof where[0]; i++) {
        cr_assert_eq(vindex_save(vi, path, &err), 0);
        cr_assert_eq(vindex_load(path, &loaded, &err), 0, "%s", err.text);
        vindex_free(loaded);
        if (i < sizeof where / sizeof where[0])
            corrupt(path, where[i], 0);
        else
            corrupt(path, 0, 1);
        cr_assert_eq(vindex_load(path, &loaded, &err), CTX_EIO, "case %zu loaded", i);
        cr_assert(strstr(err.text, "torn") || strstr(err.text, "not an index"), "%s", err.text);
        cr_assert_eq(vindex_open(st, path, model(), &loaded, &how, &err), 0, "%s", err.text);
        cr_assert_eq(how, VINDEX_BUILT);
        check_equals_store(loaded);
        vindex_free(loaded);
    }
    /* Another model's file under this name: rebuilt too. */
    cr_assert_eq(vindex_save(vi, path, &err), 0);
    cr_assert_eq(vindex_open(st, path, model() + 1, &loaded, &how, &err), CTX_ENOTFOUND);
    vindex_free(vi);
}

Test(vindex_store, many_tombstones_trigger_a_rebuild)
{
    char path[4096];
    vindex *vi;
    int how;
    ctx_error err;
    char id[16];

    put_docs(0, 400);
    embed_all();
    vindex_path(dir, model(), path, sizeof path);
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    cr_assert_eq(vindex_save(vi, path, &err), 0);
    vindex_free(vi);
    cr_assert_eq(store_begin(st, &err), 0);
    for (int i = 0; i < 150; i++) {
        snprintf(id, sizeof id, "d%d", i);
        cr_assert_eq(ingest_delete(&ic, "s", id, &err), 0);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    cr_assert_eq(how, VINDEX_BUILT);
    vindex_info info;
    vindex_get_info(vi, &info);
    cr_assert_eq(info.dead, 0);
    cr_assert_eq(info.n, 250);
    vindex_free(vi);
}

/* ---- a large index without a store ---- */

#define LN 12000
#define LD 32
#define LACL 200

/* Vectors around 16 centres, chunk ids 1000 + i, random ACL sets and sources. */
static void clustered(float *v, float c[16][LD], int64_t *ids, int64_t *acl, int64_t *src,
                      int n)
{
    for (int k = 0; k < 16; k++)
        for (int j = 0; j < LD; j++)
            c[k][j] = frand();
    for (int i = 0; i < n; i++) {
        int k = rnd(16);
        for (int j = 0; j < LD; j++)
            v[i * LD + j] = c[k][j] + frand();
        embed_normalize(v + i * LD, LD);
        ids[i] = 1000 + i;
        acl[i] = 1 + rnd(LACL);
        src[i] = 1 + rnd(3);
    }
}

Test(vindex, filtered_graph_walk_never_leaves_the_filter)
{
    vindex *vi = vindex_new(LD, 1, 16);
    float *v = malloc(sizeof(float) * LN * LD), c[16][LD], q[LD];
    int64_t *ids = malloc(sizeof(int64_t) * LN), *acl = malloc(sizeof(int64_t) * LN),
            *src = malloc(sizeof(int64_t) * LN);
    vindex_hit ann[50], ex[50];
    ctx_error err;
    double recall = 0;
    int nq = 0;

    clustered(v, c, ids, acl, src, LN);
    cr_assert_eq(vindex_add(vi, LN, v, ids, acl, src, LN, &err), 0, "%s", err.text);
    for (int i = 0; i < LN; i += 97)
        vindex_remove(vi, ids[i], i);

    for (int t = 0; t < 60; t++) {
        int64_t allowed[LACL], srcs[1] = {1 + rnd(3)};
        size_t na = 0, nann, nex;
        int share = 1 + rnd(100); /* percent of ACL sets */
        for (int a = 1; a <= LACL; a++)
            if (rnd(100) < share)
                allowed[na++] = a;
        vindex_filter f = {allowed, na, t % 3 ? NULL : srcs, 1};
        int k = 1 + rnd(50);
        for (int j = 0; j < LD; j++)
            q[j] = c[rnd(16)][j] + frand();
        embed_normalize(q, LD);
        cr_assert_eq(vindex_search_ann(vi, q, k, 256, &f, ann, &nann, &err), 0);
        cr_assert_eq(vindex_search_exact(vi, q, k, &f, ex, &nex, &err), 0);
        for (size_t i = 0; i < nann; i++) {
            int64_t slot = ann[i].chunk_id - 1000;
            int ok = 0;
            for (size_t a = 0; a < na; a++)
                ok |= allowed[a] == acl[slot];
            cr_assert(ok, "LEAK: chunk %lld with ACL %lld is outside the filter",
                      (long long)ann[i].chunk_id, (long long)acl[slot]);
            cr_assert(slot % 97 != 0, "tombstoned chunk %lld returned", (long long)ann[i].chunk_id);
            cr_assert(!f.source_ids || src[slot] == srcs[0], "wrong source");
        }
        for (size_t i = 0; i < nex; i++) {
            int64_t slot = ex[i].chunk_id - 1000;
            cr_assert(slot % 97 != 0);
            cr_assert(!f.source_ids || src[slot] == srcs[0]);
        }
        /* The planner over the same: k found whenever k are allowed. */
        vsearch_opts vo = {0};
        vindex_hit got[50];
        size_t ngot;
        vsearch_stats vs;
        vo.k = k;
        vo.exact_max = 100;
        cr_assert_eq(vsearch_plan(vi, q, &f, &vo, got, &ngot, &vs, &err), 0);
        cr_assert_eq(ngot, nex, "plan %d found %zu of %zu", vs.plan, ngot, nex);
        if (nex) {
            size_t hit = 0;
            for (size_t i = 0; i < nex; i++)
                for (size_t j = 0; j < ngot; j++)
                    hit += ex[i].chunk_id == got[j].chunk_id;
            recall += (double)hit / (double)nex;
            nq++;
        }
    }
    cr_assert_gt(recall / nq, 0.9, "recall %f", recall / nq);
    vindex_free(vi);
    free(v);
    free(ids);
    free(acl);
    free(src);
}

/*
 * The exact scan rules rows out by their int8 codes and an int16 query:
 * it must answer what measuring every allowed row in floats answers. Rows
 * come in near-identical pairs (1e-3 apart), where a loose bound would cut
 * the wrong twin; dimensions cover the kernel's 32- and 16-wide steps and
 * its tail; both kernels.
 */
Test(vindex, exact_scan_answers_what_a_float_scan_answers)
{
    static const size_t dims[] = {32, 48, 389};
    enum { N = 3000, NACL = 40 };

    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        size_t d = dims[di];
        vindex *vi = vindex_new((int)d, 1, 16);
        float *v = malloc(sizeof(float) * N * d), *q = malloc(sizeof(float) * d);
        int64_t ids[N], acl[N], src[N];
        ctx_error err;

        for (int i = 0; i < N; i++) {
            for (size_t j = 0; j < d; j++)
                v[i * d + j] = i % 2 ? v[(i - 1) * d + j] + frand() * 2e-3f : frand();
            embed_normalize(v + i * d, d);
            ids[i] = 1000 + i;
            acl[i] = 1 + rnd(NACL);
            src[i] = 1 + rnd(2);
        }
        cr_assert_eq(vindex_add(vi, N, v, ids, acl, src, N, &err), 0, "%s", err.text);
        for (int i = 0; i < N; i += 11)
            vindex_remove(vi, ids[i], i);
        for (int t = 0; t < 40; t++) {
            int64_t allowed[NACL], srcs[1] = {1 + rnd(2)};
            size_t na = 0, nex, nbf = 0;
            int k = 1 + rnd(30);
            struct { float dist; int64_t id; } bf[N], tmp;
            vindex_hit ex[30];

            vindex_simd_set(t % 2);
            for (int a = 1; a <= NACL; a++)
                if (rnd(100) < 30)
                    allowed[na++] = a;
            vindex_filter f = {allowed, na, t % 3 ? NULL : srcs, 1};
            /* near a row half the time: the nearest rows are twins then */
            for (size_t j = 0; j < d; j++)
                q[j] = t % 2 ? v[(size_t)rnd(N) * d + j] + frand() * 1e-2f : frand();
            embed_normalize(q, d);
            cr_assert_eq(vindex_search_exact(vi, q, k, &f, ex, &nex, &err), 0, "%s", err.text);
            for (int i = 0; i < N; i++) {
                int ok = i % 11 != 0 && (!f.source_ids || src[i] == srcs[0]), in = 0;
                for (size_t a = 0; a < na; a++)
                    in |= allowed[a] == acl[i];
                if (!ok || !in)
                    continue;
                bf[nbf].dist = vindex_l2sq(q, v + (size_t)i * d, d);
                bf[nbf++].id = ids[i];
            }
            for (size_t i = 1; i < nbf; i++) /* insertion sort: few rows */
                for (size_t j = i; j > 0 && bf[j].dist < bf[j - 1].dist; j--) {
                    tmp = bf[j];
                    bf[j] = bf[j - 1];
                    bf[j - 1] = tmp;
                }
            cr_assert_eq(nex, nbf < (size_t)k ? nbf : (size_t)k, "d=%zu query %d", d, t);
            for (size_t i = 0; i < nex; i++)
                cr_assert_eq(ex[i].chunk_id, bf[i].id,
                             "d=%zu query %d: hit %zu is %lld (%.9f), a float scan says %lld"
                             " (%.9f)", d, t, i, (long long)ex[i].chunk_id,
                             (double)(2 * (1 - ex[i].score)), (long long)bf[i].id,
                             (double)bf[i].dist);
        }
        vindex_simd_set(1);
        vindex_free(vi);
        free(v);
        free(q);
    }
}

static void same_hits(const vindex_hit *a, size_t na, const vindex_hit *b, size_t nb,
                      const char *what)
{
    cr_assert_eq(na, nb, "%s: %zu hits against %zu", what, na, nb);
    for (size_t i = 0; i < na; i++)
        cr_assert_eq(a[i].chunk_id, b[i].chunk_id, "%s: hit %zu is %lld, not %lld", what, i,
                     (long long)a[i].chunk_id, (long long)b[i].chunk_id);
}

Test(vindex, partition_stays_in_the_filter_and_all_lists_are_exact)
{
    vindex *vi = vindex_new(LD, 1, 16), *back;
    float *v = malloc(sizeof(float) * LN * LD), c[16][LD], q[LD];
    int64_t *ids = malloc(sizeof(int64_t) * LN), *acl = malloc(sizeof(int64_t) * LN),
            *src = malloc(sizeof(int64_t) * LN);
    char *d = tu_tmpdir("ivf"), path[4096];
    vindex_hit ivf[50], ex[50], all[50];
    ctx_error err;
    double recall = 0;
    int nq = 0, half = LN / 2;

    clustered(v, c, ids, acl, src, LN);
    /* Half before the partition is trained, half after: those go to lists only. */
    cr_assert_eq(vindex_add(vi, (size_t)half, v, ids, acl, src, half, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_lists(vi), 0, "partitioned below the size that asks for it");
    cr_assert_eq(vindex_partition(vi, 40, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_lists(vi), 40);
    cr_assert_eq(vindex_add(vi, (size_t)(LN - half), v + (size_t)half * LD, ids + half,
                            acl + half, src + half, LN, &err),
                 0, "%s", err.text);
    for (int i = 0; i < LN; i += 97)
        vindex_remove(vi, ids[i], i);
    /* Kept in the file, so the loaded index answers the same. */
    snprintf(path, sizeof path, "%s/ivf.idx", d);
    cr_assert_eq(vindex_save(vi, path, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_load(path, &back, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_lists(back), 40);

    for (int t = 0; t < 60; t++) {
        int64_t allowed[LACL], srcs[1] = {1 + rnd(3)};
        size_t na = 0, nivf, nex, nall, nback;
        int share = 1 + rnd(100); /* percent of ACL sets */
        for (int a = 1; a <= LACL; a++)
            if (rnd(100) < share)
                allowed[na++] = a;
        vindex_filter f = {allowed, na, t % 3 ? NULL : srcs, 1};
        int k = 1 + rnd(50);
        for (int j = 0; j < LD; j++)
            q[j] = c[rnd(16)][j] + frand();
        embed_normalize(q, LD);
        cr_assert_eq(vindex_search_exact(vi, q, k, &f, ex, &nex, &err), 0);
        /* Every list probed: exactly the exact scan's answer. */
        cr_assert_eq(vindex_search_ivf(vi, q, k, 40, &f, all, &nall, &err), 0);
        same_hits(all, nall, ex, nex, "all lists");
        /* Two lists at least: never outside the filter, and k whenever k are allowed. */
        cr_assert_eq(vindex_search_ivf(vi, q, k, 2, &f, ivf, &nivf, &err), 0);
        cr_assert_eq(nivf, nex, "found %zu of %zu", nivf, nex);
        for (size_t i = 0; i < nivf; i++) {
            int64_t slot = ivf[i].chunk_id - 1000;
            int ok = 0;
            for (size_t a = 0; a < na; a++)
                ok |= allowed[a] == acl[slot];
            cr_assert(ok, "LEAK: chunk %lld with ACL %lld is outside the filter",
                      (long long)ivf[i].chunk_id, (long long)acl[slot]);
            cr_assert(slot % 97 != 0, "tombstoned chunk %lld returned",
                      (long long)ivf[i].chunk_id);
            cr_assert(!f.source_ids || src[slot] == srcs[0], "wrong source");
        }
        cr_assert_eq(vindex_search_ivf(back, q, k, 2, &f, all, &nback, &err), 0);
        same_hits(all, nback, ivf, nivf, "loaded");
        /* The planner takes the partition once the allowed set is large. */
        {
            vsearch_opts vo = {0};
            vindex_hit got[50];
            size_t ngot, hit = 0;
            vsearch_stats vs;
            vo.k = k;
            vo.exact_max = 100;
            vo.nprobe = 10; /* a quarter of the lists */
            cr_assert_eq(vsearch_plan(vi, q, &f, &vo, got, &ngot, &vs, &err), 0);
            cr_assert_eq(ngot, nex, "plan %d found %zu of %zu", vs.plan, ngot, nex);
            if (vs.allowed > 100)
                cr_assert_eq(vs.plan, VSEARCH_IVF);
            for (size_t i = 0; i < nex; i++)
                for (size_t j = 0; j < ngot; j++)
                    hit += ex[i].chunk_id == got[j].chunk_id;
            if (nex) {
                recall += (double)hit / (double)nex;
                nq++;
            }
        }
    }
    cr_assert_gt(recall / nq, 0.9, "recall %f", recall / nq);

    /* A vector added after loading goes to its list and is found. */
    {
        int64_t id = 999999, a = 1, s = 1;
        vindex_filter f = {&a, 1, NULL, 0};
        size_t nivf;
        cr_assert_eq(vindex_add(back, 1, v, &id, &a, &s, LN + 1, &err), 0, "%s", err.text);
        cr_assert_eq(vindex_search_ivf(back, v, 1, 1, &f, ivf, &nivf, &err), 0);
        cr_assert_eq(nivf, 1);
        cr_assert_eq(ivf[0].chunk_id, id);
    }
    vindex_free(back);
    vindex_free(vi);
    tu_rmrf(d);
    free(d);
    free(v);
    free(ids);
    free(acl);
    free(src);
}

Test(vindex, partitioned_by_itself_at_50000_live_vectors)
{
    enum { N = 50000, D = 8 };
    vindex *vi = vindex_new(D, 1, 8);
    float *v = malloc(sizeof(float) * N * D);
    int64_t *ids = malloc(sizeof(int64_t) * N), *one = malloc(sizeof(int64_t) * N);
    vindex_hit hit[1];
    size_t n;
    ctx_error err;

    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++)
            v[i * D + j] = frand();
        embed_normalize(v + i * D, D);
        ids[i] = i + 1;
        one[i] = 1;
    }
    cr_assert_eq(vindex_add(vi, N - 1, v, ids, one, one, N - 1, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_lists(vi), 0);
    cr_assert_eq(vindex_add(vi, 1, v + (N - 1) * D, ids + N - 1, one, one, N, &err), 0);
    cr_assert_eq(vindex_lists(vi), 2048);
    /* Each vector is in a list: probing its nearest list finds it first. */
    for (int i = 0; i < N; i += 4999) {
        vindex_filter f = {one, 1, NULL, 0};
        cr_assert_eq(vindex_search_ivf(vi, v + (size_t)i * D, 1, 1, &f, hit, &n, &err), 0);
        cr_assert_eq(n, 1);
        cr_assert_eq(hit[0].chunk_id, ids[i], "vector %d not in its nearest list", i);
    }
    vindex_free(vi);
    free(v);
    free(ids);
    free(one);
}

Test(vindex_store, maintenance_prunes_tombstones_and_other_models_files)
{
    char path[4096], old[4096], other[4096], tmp[4096];
    vindex *vi;
    int how;
    ctx_error err;
    int64_t pruned, last, floor;

    put_docs(0, 60);
    embed_all();
    vindex_path(dir, model(), path, sizeof path);
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    cr_assert_eq(vindex_save(vi, path, &err), 0);
    /* A copy from before the deletions, for later. */
    snprintf(old, sizeof old, "%s/old.idx", dir);
    cr_assert_eq(vindex_save(vi, old, &err), 0);
    vindex_free(vi);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_delete(&ic, "s", "d1", &err), 0);
    cr_assert_eq(ingest_delete(&ic, "s", "d2", &err), 0);
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vector_tombstones"), 2);

    /* The file does not hold the tombstones yet: nothing is pruned. */
    snprintf(other, sizeof other, "%s/vectors-%lld.idx", dir, (long long)model() + 7);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    tu_write(dir, "vectors-99.idx", "another model's file");
    tu_write(dir, "ignored.idx", "not ours");
    cr_assert_eq(rename(old, other), 0);
    tu_write(dir, strrchr(tmp, '/') + 1, "a save that never finished");
    cr_assert_eq(vindex_maintain(st, dir, &pruned, &err), 0, "%s", err.text);
    cr_assert_eq(pruned, 0);
    cr_assert_neq(access(other, F_OK), 0, "another model's index file was kept");
    cr_assert_neq(access(tmp, F_OK), 0);
    cr_assert_eq(access(path, F_OK), 0);

    /* Caught up and saved: now they go, and the floor rises. */
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    cr_assert_eq(vindex_save(vi, path, &err), 0);
    vindex_free(vi);
    cr_assert_eq(vindex_maintain(st, dir, &pruned, &err), 0, "%s", err.text);
    cr_assert_eq(pruned, 2);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vector_tombstones"), 0);
    cr_assert_eq(store_tombstone_marks(st, &last, &floor, &err), 0);
    cr_assert_eq(floor, last);

    /* The current file still loads; a file from before the floor is rebuilt. */
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    cr_assert_eq(how, VINDEX_LOADED);
    check_equals_store(vi);
    cr_assert_eq(vindex_save(vi, old, &err), 0);
    vindex_free(vi);
    put_docs(60, 61);
    embed_all();
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(ingest_delete(&ic, "s", "d5", &err), 0);
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    check_equals_store(vi);
    vindex_free(vi);
    /* A stale copy put back after a prune: rebuilt, never trusted. */
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    cr_assert_eq(vindex_save(vi, path, &err), 0);
    vindex_free(vi);
    cr_assert_eq(vindex_maintain(st, dir, &pruned, &err), 0);
    cr_assert_eq(pruned, 1);
    cr_assert_eq(rename(old, path), 0);
    cr_assert_eq(vindex_open(st, path, model(), &vi, &how, &err), 0);
    cr_assert_eq(how, VINDEX_BUILT);
    check_equals_store(vi);
    vindex_free(vi);
}

/*
 * A long-lived server squeezes the dead vectors out of its index in memory
 * (issue 16: its memory stays flat while chunks are replaced): the slots
 * past the graph's are compacted, and every answer, exact and by the
 * partition, filtered by ACL sets and sources, stays what the uncompacted
 * index gives; so do the counts, and vectors added afterwards.
 */
Test(vindex, compaction_drops_dead_vectors_and_changes_no_answer)
{
    vindex *vi = vindex_new(LD, 1, 16), *ref;
    float *v = malloc(sizeof(float) * LN * LD), c[16][LD], q[LD];
    int64_t *ids = malloc(sizeof(int64_t) * LN), *acl = malloc(sizeof(int64_t) * LN),
            *src = malloc(sizeof(int64_t) * LN);
    char *d = tu_tmpdir("compact"), path[4096];
    vindex_hit a[50], b[50];
    vindex_info before, after;
    ctx_error err;
    size_t dead_tail = 0, dead_graph = 0;
    int half = LN / 2;

    clustered(v, c, ids, acl, src, LN);
    cr_assert_eq(vindex_add(vi, (size_t)half, v, ids, acl, src, half, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_partition(vi, 40, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_add(vi, (size_t)(LN - half), v + (size_t)half * LD, ids + half,
                            acl + half, src + half, LN, &err), 0, "%s", err.text);
    for (int i = 0; i < LN; i++)
        if (i < half ? i % 50 == 0 : i % 3 == 0) {
            vindex_remove(vi, ids[i], i);
            dead_graph += i < half;
            dead_tail += i >= half;
        }
    snprintf(path, sizeof path, "%s/ref.idx", d);
    cr_assert_eq(vindex_save(vi, path, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_load(path, &ref, &err), 0, "%s", err.text);
    vindex_get_info(vi, &before);
    cr_assert_eq(vindex_compact(vi), dead_tail);
    vindex_get_info(vi, &after);
    cr_assert_eq(after.n, before.n - dead_tail);
    cr_assert_eq(after.dead, dead_graph, "the graph's dead stay: %zu", after.dead);
    cr_assert_eq(vindex_compact(vi), 0, "nothing more to drop");

    for (int round = 0; round < 2; round++) {
        if (round) { /* new vectors after it: the room kept is used, both agree */
            for (int i = 0; i < LN; i += 3)
                ids[i] += 1000000;
            for (int i = 0; i < LN; i += 600) {
                cr_assert_eq(vindex_add(vi, 1, v + (size_t)i * LD, ids + i, acl + i, src + i,
                                        LN + i, &err), 0, "%s", err.text);
                cr_assert_eq(vindex_add(ref, 1, v + (size_t)i * LD, ids + i, acl + i, src + i,
                                        LN + i, &err), 0, "%s", err.text);
            }
        }
        for (int t = 0; t < 80; t++) {
            int64_t allowed[LACL], srcs[1] = {1 + rnd(3)};
            size_t na = 0, n1, n2;
            int share = 1 + rnd(100), k = 1 + rnd(50);
            for (int x = 1; x <= LACL; x++)
                if (rnd(100) < share)
                    allowed[na++] = x;
            vindex_filter f = {allowed, na, t % 3 ? NULL : srcs, 1};
            for (int j = 0; j < LD; j++)
                q[j] = c[rnd(16)][j] + frand();
            embed_normalize(q, LD);
            cr_assert_eq(vindex_count(vi, &f), vindex_count(ref, &f), "query %d", t);
            cr_assert_eq(vindex_search_exact(vi, q, k, &f, a, &n1, &err), 0);
            cr_assert_eq(vindex_search_exact(ref, q, k, &f, b, &n2, &err), 0);
            same_hits(a, n1, b, n2, "exact");
            for (int np = 2; np <= 40; np += 38) {
                cr_assert_eq(vindex_search_ivf(vi, q, k, np, &f, a, &n1, &err), 0);
                cr_assert_eq(vindex_search_ivf(ref, q, k, np, &f, b, &n2, &err), 0);
                same_hits(a, n1, b, n2, np == 2 ? "two lists" : "every list");
            }
        }
    }
    vindex_free(vi);
    vindex_free(ref);
    tu_rmrf(d);
    free(d);
    free(v);
    free(ids);
    free(acl);
    free(src);
}
