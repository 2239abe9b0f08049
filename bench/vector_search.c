/*
 * vector_search.c - the permission-aware vector index under load: N chunks
 * of 384-d clustered unit vectors in 1000 ACL sets, and users allowed
 * 0.1%, 1%, 10%, 50% and 100% of them. Reports the build rate, memory per
 * vector, and per share recall@10 against an exact filtered scan with
 * p50/p99 latency for the planner (vsearch_plan), for the exact scan and
 * the partition (or, below its size, the graph) forced, to place
 * VSEARCH_EXACT_MAX, and for the naive "ANN top-100, then filter" beside
 * it; then the partition's recall and time by lists probed (to place
 * VSEARCH_NPROBE), and the hash embedder's throughput.
 *
 *   build/release/bench/vector_search [--n N] [--queries Q] [--dim D] [--m M]
 *
 * Environment: BENCH_N and BENCH_QUERIES override the defaults (1000000,
 * 200). Markdown on stdout.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "indexer/embed.h"
#include "indexer/vindex.h"
#include "retrieval/vsearch.h"

#define NACL 1000
#define NCLUSTERS 2000
#define K 10

static const char *const plan_name[] = {"auto", "exact", "HNSW", "IVF"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd64(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static float gauss(void)
{
    double u = ((double)(rnd64() >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(rnd64() >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static double now_s(void) { return (double)ctx_mono_ns() / 1e9; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* One vector near a random cluster centre: centre + noise, normalized. */
static void sample(const float *centres, int dim, float noise, float *out)
{
    const float *c = centres + (rnd64() % NCLUSTERS) * (uint64_t)dim;
    for (int j = 0; j < dim; j++)
        out[j] = c[j] + noise * gauss();
    embed_normalize(out, dim);
}

typedef struct timing {
    double recall, p50, p99;
} timing;

static void summarize(double *lat, int n, double recall, timing *t)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    t->recall = recall / n;
    t->p50 = lat[n / 2] * 1e3;
    t->p99 = lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] * 1e3;
}

static double overlap(const vindex_hit *truth, size_t nt, const vindex_hit *got, size_t ng)
{
    size_t hit = 0;
    if (!nt)
        return 1.0;
    for (size_t i = 0; i < nt; i++)
        for (size_t j = 0; j < ng; j++)
            hit += truth[i].chunk_id == got[j].chunk_id;
    return (double)hit / (double)nt;
}

int main(int argc, char **argv)
{
    static const double shares[] = {0.001, 0.01, 0.10, 0.50, 1.0};
    size_t n = getenv("BENCH_N") ? (size_t)atol(getenv("BENCH_N")) : 1000000;
    int nq = getenv("BENCH_QUERIES") ? atoi(getenv("BENCH_QUERIES")) : 200, dim = 384, M = 16;
    float noise = 0.06f;
    float *centres, *vecs, *queries;
    int64_t *ids, *acls, *srcs, all_acl[NACL];
    uint16_t *acl_of;
    vindex *vi;
    vindex_info info;
    ctx_error err;
    double t0, build_s;
    long rss0, rss1;
    const size_t slice = 16384;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n"))
            n = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--queries"))
            nq = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim"))
            dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--m"))
            M = atoi(argv[i + 1]);
    }
    if (n < 1000 || nq < 10 || dim < 8) {
        fprintf(stderr, "usage: vector_search [--n N>=1000] [--queries Q>=10] [--dim D] [--m M]\n");
        return 2;
    }
    centres = malloc(sizeof(float) * NCLUSTERS * (size_t)dim);
    vecs = malloc(sizeof(float) * slice * (size_t)dim);
    queries = malloc(sizeof(float) * (size_t)nq * (size_t)dim);
    ids = malloc(sizeof(int64_t) * slice);
    acls = malloc(sizeof(int64_t) * slice);
    srcs = malloc(sizeof(int64_t) * slice);
    acl_of = malloc(sizeof(uint16_t) * (n + 1));
    if (!centres || !vecs || !queries || !ids || !acls || !srcs || !acl_of)
        return 1;
    for (size_t i = 0; i < (size_t)NCLUSTERS * (size_t)dim; i++)
        centres[i] = gauss() / sqrtf((float)dim);
    for (int a = 0; a < NACL; a++)
        all_acl[a] = a + 1;

    printf("# bench/vector_search: %zu chunks, %d dimensions, %d clusters, %d ACL sets,"
           " HNSW M=%d, %s kernel\n\n", n, dim, NCLUSTERS, NACL, M,
           vindex_simd() ? "AVX2/FMA" : "scalar");
    rss0 = rss_kb();
    vi = vindex_new(dim, 1, M);
    t0 = now_s();
    for (size_t done = 0; done < n; done += slice) {
        size_t m = n - done < slice ? n - done : slice;
        for (size_t i = 0; i < m; i++) {
            sample(centres, dim, noise, vecs + i * (size_t)dim);
            ids[i] = (int64_t)(done + i + 1);
            acls[i] = (int64_t)(rnd64() % NACL) + 1; /* ACL sets are spread evenly */
            acl_of[ids[i]] = (uint16_t)acls[i];
            srcs[i] = 1;
        }
        if (vindex_add(vi, m, vecs, ids, acls, srcs, (int64_t)(done + m), &err)) {
            fprintf(stderr, "%s\n", err.text);
            return 1;
        }
        if ((done / slice) % 8 == 7)
            fprintf(stderr, "\r  built %zu of %zu (%.0f/s)", done + m, n,
                    (double)(done + m) / (now_s() - t0));
    }
    build_s = now_s() - t0;
    fprintf(stderr, "\n");
    rss1 = rss_kb();
    vindex_get_info(vi, &info);
    printf("| build | vectors/s | partition lists | memory per vector (index) |"
           " memory per vector (RSS) |\n");
    printf("|---|---|---|---|---|\n");
    printf("| %.1f s | %.0f | %zu | %.0f B | %.0f B |\n\n", build_s, (double)n / build_s,
           vindex_lists(vi), (double)info.bytes / (double)n,
           (double)(rss1 - rss0) * 1024.0 / (double)n);

    for (int q = 0; q < nq; q++)
        sample(centres, dim, noise, queries + (size_t)q * (size_t)dim);

    printf("| allowed | vectors | plan (auto) | recall@10 | p50 ms | p99 ms | exact p50 | exact p99"
           " | IVF p50 | IVF p99 | IVF recall | naive top-100+filter recall | naive p50 |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t s = 0; s < sizeof shares / sizeof shares[0]; s++) {
        size_t nacl = (size_t)(shares[s] * NACL + 0.5);
        vindex_filter f = {all_acl, nacl ? nacl : 1, NULL, 0};
        vindex_filter everyone = {all_acl, NACL, NULL, 0};
        double *lat[4], rec[4] = {0, 0, 0, 0};
        int plans[4] = {0, 0, 0, 0}, fell = 0, best = 1;
        timing t[4];
        for (int j = 0; j < 4; j++)
            lat[j] = malloc(sizeof(double) * (size_t)nq);
        for (int q = 0; q < nq; q++) {
            const float *qv = queries + (size_t)q * (size_t)dim;
            vindex_hit truth[K], got[K], wide[100];
            size_t nt, ng, nw, kept = 0;
            vsearch_opts vo = {0};
            vsearch_stats vs;
            double t1;

            /* 0: the planner; 1: exact forced; 2: IVF forced; 3: naive. */
            t1 = now_s();
            vindex_search_exact(vi, qv, K, &f, truth, &nt, &err);
            lat[1][q] = now_s() - t1;
            rec[1] += 1.0;

            vo.k = K;
            t1 = now_s();
            vsearch_plan(vi, qv, &f, &vo, got, &ng, &vs, &err);
            lat[0][q] = now_s() - t1;
            rec[0] += overlap(truth, nt, got, ng);
            plans[vs.plan]++;
            fell += vs.fell_back;

            vo.plan = vindex_lists(vi) ? VSEARCH_IVF : VSEARCH_ANN;
            t1 = now_s();
            vsearch_plan(vi, qv, &f, &vo, got, &ng, &vs, &err);
            lat[2][q] = now_s() - t1;
            rec[2] += overlap(truth, nt, got, ng);

            /* Naive: the 100 nearest of everything, then the caller's filter. */
            t1 = now_s();
            if (vindex_lists(vi))
                vindex_search_ivf(vi, qv, 100, VSEARCH_NPROBE, &everyone, wide, &nw, &err);
            else
                vindex_search_ann(vi, qv, 100, 128, &everyone, wide, &nw, &err);
            for (size_t i = 0; i < nw && kept < K; i++)
                if (acl_of[wide[i].chunk_id] <= (nacl ? nacl : 1))
                    got[kept++] = wide[i];
            lat[3][q] = now_s() - t1;
            rec[3] += overlap(truth, nt, got, kept);
        }
        for (int j = 0; j < 4; j++)
            summarize(lat[j], nq, rec[j], &t[j]);
        for (int p = 1; p < 4; p++)
            if (plans[p] > plans[best])
                best = p;
        printf("| %.1f%% | %zu | %s%s | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.3f |"
               " %.3f | %.2f |\n",
               shares[s] * 100, vindex_count(vi, &f), plan_name[best], fell ? " (fallback)" : "",
               t[0].recall, t[0].p50, t[0].p99, t[1].p50, t[1].p99, t[2].p50, t[2].p99,
               t[2].recall, t[3].recall, t[3].p50);
        for (int j = 0; j < 4; j++)
            free(lat[j]);
    }

    /* Where VSEARCH_NPROBE belongs: the partition's recall and time by lists probed. */
    printf("\n| allowed | nprobe | IVF recall@10 | IVF p50 ms | IVF p99 ms |\n|---|---|---|---|---|\n");
    for (size_t s = 2; s < sizeof shares / sizeof shares[0]; s++) {
        static const int probes[] = {4, 8, 16, 32, 64};
        size_t nacl = (size_t)(shares[s] * NACL + 0.5);
        vindex_filter f = {all_acl, nacl, NULL, 0};
        vindex_hit *truth = malloc(sizeof *truth * K * (size_t)nq);
        size_t *nt = malloc(sizeof *nt * (size_t)nq);
        for (int q = 0; q < nq; q++)
            vindex_search_exact(vi, queries + (size_t)q * (size_t)dim, K, &f,
                                truth + (size_t)q * K, &nt[q], &err);
        for (size_t p = 0; p < sizeof probes / sizeof probes[0] && vindex_lists(vi); p++) {
            double *lat = malloc(sizeof(double) * (size_t)nq), rec = 0;
            timing t;
            for (int q = 0; q < nq; q++) {
                vindex_hit got[K];
                size_t ng;
                double t1 = now_s();
                vindex_search_ivf(vi, queries + (size_t)q * (size_t)dim, K, probes[p], &f, got,
                                  &ng, &err);
                lat[q] = now_s() - t1;
                rec += overlap(truth + (size_t)q * K, nt[q], got, ng);
            }
            summarize(lat, nq, rec, &t);
            printf("| %.0f%% | %d | %.3f | %.2f | %.2f |\n", shares[s] * 100, probes[p],
                   t.recall, t.p50, t.p99);
            free(lat);
        }
        free(truth);
        free(nt);
    }
    vindex_free(vi);

    /* The hash embedder: chunks of ~200 words from a 5000-word vocabulary. */
    {
        int nt = 20000;
        char *text = malloc(2048);
        float *out = malloc(sizeof(float) * 384);
        double t1, secs;
        size_t len = 0;
        t1 = now_s();
        for (int i = 0; i < nt; i++) {
            len = 0;
            for (int w = 0; w < 200 && len < 1900; w++)
                len += (size_t)snprintf(text + len, 2048 - len, "w%llu ",
                                        (unsigned long long)(rnd64() % 5000));
            embed_hash(text, len, 384, out);
        }
        secs = now_s() - t1;
        printf("\n| hash embedder | chunks/s | MB/s |\n|---|---|---|\n");
        printf("| 384-d, ~200 words/chunk | %.0f | %.1f |\n", nt / secs,
               (double)nt * (double)len / secs / 1e6);
        free(text);
        free(out);
    }
    free(acl_of);
    free(centres);
    free(vecs);
    free(queries);
    free(ids);
    free(acls);
    free(srcs);
    return 0;
}
