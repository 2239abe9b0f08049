/*
 * search_lexical.c - latency of permission-filtered lexical search: ctxgate's
 * search_lexical() (SQLite FTS5, ACL inside the MATCH) against PostgreSQL
 * (tsvector + GIN, int[] ACL + GIN) on the same corpus, users and queries.
 *
 * The corpus is synthetic and reproducible from --seed: a Zipf-distributed
 * vocabulary, ~1 KB documents, one "project" reader group per document, and
 * five users whose nested group memberships let them read exactly 0.1%, 1%,
 * 10%, 50% and 100% of the documents. The store is filled through the real
 * write path (store_principal_put + ingest_record in batched transactions);
 * PostgreSQL gets the very same chunks (chunker_split with the same options)
 * through COPY. Prints markdown tables; see bench/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ctx.h"
#include "core/util.h"
#include "indexer/chunker.h"
#include "indexer/ingest.h"
#include "indexer/store.h"
#include "retrieval/acl.h"
#include "retrieval/rank.h"
#include "retrieval/search.h"

/* ------------------------------------------------------------------ options */

typedef struct opts {
    long docs, queries, vocab, warmup, batch, checks;
    uint64_t seed;
    double zipf_s, budget;
    const char *dir, *pg;
    int fresh;
    int cold;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: search_lexical [options]\n"
            "  --docs N      documents to index (default 200000)\n"
            "  --queries N   timed queries per user and system (default 500)\n"
            "  --vocab N     vocabulary size (default 5000)\n"
            "  --zipf S      Zipf exponent of word frequencies (default 1.0)\n"
            "  --seed N      generator seed (default 42)\n"
            "  --warmup N    untimed queries per user before timing (default 20)\n"
            "  --batch N     records per store transaction (default 5000)\n"
            "  --checks N    queries per user whose match counts are compared\n"
            "                between the two systems (default 20)\n"
            "  --budget S    stop timing a user on one system after S seconds and\n"
            "                report the queries done so far (default 300; the\n"
            "                queries are i.i.d., so a prefix is a fair sample)\n"
            "  --dir DIR     where the store lives (default /tmp/ctxgate-bench)\n"
            "  --pg CONN     libpq conninfo (default: PG* env vars); \"none\" skips PG\n"
            "  --fresh       rebuild the store and the PG table even if present\n"
            "  --cold        search without the warm-up `ctxgate serve` does at start\n"
            "                (rank_warm): first sights of words are then timed\n"
            "environment: BENCH_SLOW_MS=N prints each of our queries slower than N ms;\n"
            "  BENCH_EXPAND=terms,docs,weight times our queries with query expansion;\n"
            "  BENCH_PROXIMITY=w with the proximity reordering of weight w;\n"
            "  BENCH_ONLY=10%%,100%% times only those shares;\n"
            "  BENCH_NO_VISIBLE=1 skips counting each user's documents (a scan of\n"
            "  every document: minutes under valgrind; the report then says -1);\n"
            "  BENCH_DUMP=FILE appends each of our answers (ids, scores in %%a) to FILE\n");
}

static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {
        {"docs", 1, 0, 'd'},   {"queries", 1, 0, 'q'}, {"vocab", 1, 0, 'v'},
        {"zipf", 1, 0, 'z'},   {"seed", 1, 0, 's'},    {"warmup", 1, 0, 'w'},
        {"batch", 1, 0, 'b'},  {"checks", 1, 0, 'c'},  {"dir", 1, 0, 'D'},
        {"pg", 1, 0, 'p'},     {"fresh", 0, 0, 'f'},   {"budget", 1, 0, 'B'},
        {"cold", 0, 0, 'C'},   {"help", 0, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;

    *o = (opts){.docs = 200000, .queries = 500, .vocab = 5000, .warmup = 20,
                .batch = 5000, .checks = 20, .seed = 42, .zipf_s = 1.0, .budget = 300,
                .dir = "/tmp/ctxgate-bench", .pg = ""};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'd': o->docs = atol(optarg); break;
        case 'q': o->queries = atol(optarg); break;
        case 'v': o->vocab = atol(optarg); break;
        case 'z': o->zipf_s = atof(optarg); break;
        case 's': o->seed = strtoull(optarg, NULL, 10); break;
        case 'w': o->warmup = atol(optarg); break;
        case 'b': o->batch = atol(optarg); break;
        case 'c': o->checks = atol(optarg); break;
        case 'D': o->dir = optarg; break;
        case 'p': o->pg = optarg; break;
        case 'f': o->fresh = 1; break;
        case 'C': o->cold = 1; break;
        case 'B': o->budget = atof(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (o->docs < 1000 || o->queries < 1 || o->vocab < 1000 || o->vocab > 100000 ||
        o->batch < 1 || o->zipf_s <= 0) {
        fprintf(stderr, "search_lexical: need --docs >= 1000, --queries >= 1,"
                        " 1000 <= --vocab <= 100000, --batch >= 1, --zipf > 0\n");
        return -1;
    }
    return 0;
}

static double now_s(void) { return (double)ctx_mono_ns() / 1e9; }

/* The machine's 1-minute load average: latencies mean little on a busy box,
 * so the report says how busy it was. */
static double loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "search_lexical: %s: %s\n", what, detail);
    exit(1);
}

/* ---------------------------------------------------------- random numbers */

/* splitmix64: tiny, fast, and seedable per document, so document i is the
 * same text whichever system it is generated for and in whatever order. */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static rng rng_for(uint64_t seed, uint64_t stream, uint64_t i)
{
    rng r = {seed * 0x2545F4914F6CDD1Dull ^ (stream << 56) ^ (i * 0xD1B54A32D192ED03ull)};
    rng_next(&r);
    return r;
}

static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }
static long rng_below(rng *r, long n) { return (long)(rng_unit(r) * (double)n); }

/* --------------------------------------------------------------- vocabulary */

/*
 * Pseudo-words built from syllables, always ending consonant + 'a' or 'o':
 * no suffix the Porter (FTS5) or Snowball (PostgreSQL 'english') stemmers
 * strip ends that way, and no stopword of either is 5+ letters ending so.
 * Each word is therefore its own stem in both systems, and a query means
 * the same thing on both sides. Frequent words are shorter, as in English.
 */
#define WORD_MAX 16

typedef struct vocab {
    long n;
    char (*w)[WORD_MAX];
    double *cdf; /* cdf[r] = P(rank <= r) under Zipf(s) */
} vocab;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static void make_word(rng *r, long rank, char *out)
{
    static const char cons[] = "bdfgklmnprstvz", vow[] = "aeiou", coda[] = "lmnrst";
    size_t len = 5 + (rank >= 30) + (rank >= 300) + (rank >= 2000) + (size_t)rng_below(r, 2), n = 0;

    while (n + 2 < len) {
        out[n++] = cons[rng_below(r, 14)];
        out[n++] = vow[rng_below(r, 5)];
        if (n + 3 < len && rng_below(r, 10) < 3)
            out[n++] = coda[rng_below(r, 6)];
    }
    out[n++] = cons[rng_below(r, 14)];
    out[n++] = rng_below(r, 2) ? 'a' : 'o';
    out[n] = '\0';
}

static void vocab_build(vocab *v, long n, double s, uint64_t seed)
{
    size_t cap = 1;
    char **slots;
    double sum = 0;
    rng r = rng_for(seed, 1, 0);
    long i;

    while (cap < (size_t)n * 4)
        cap <<= 1;
    slots = calloc(cap, sizeof *slots);
    v->n = n;
    v->w = calloc((size_t)n, sizeof *v->w);
    v->cdf = calloc((size_t)n, sizeof *v->cdf);
    if (!slots || !v->w || !v->cdf)
        die("vocabulary", "out of memory");
    for (i = 0; i < n; i++) {
        for (;;) {
            size_t h;
            make_word(&r, i, v->w[i]);
            for (h = str_hash(v->w[i]) & (cap - 1); slots[h] && strcmp(slots[h], v->w[i]);
                 h = (h + 1) & (cap - 1))
                ;
            if (!slots[h]) {
                slots[h] = v->w[i];
                break;
            }
        }
        sum += 1.0 / pow((double)(i + 1), s);
        v->cdf[i] = sum;
    }
    for (i = 0; i < n; i++)
        v->cdf[i] /= sum;
    free(slots);
}

static const char *vocab_zipf(const vocab *v, rng *r)
{
    double u = rng_unit(r);
    long lo = 0, hi = v->n - 1;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (v->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return v->w[lo];
}

static void vocab_free(vocab *v)
{
    free(v->w);
    free(v->cdf);
}

/* ---------------------------------------------------------------- documents */

/* Appends that cannot fail quietly: a benchmark has no use for partial text. */
static void put(ctx_buf *b, const char *s, size_t n)
{
    if (ctx_buf_append(b, s, n))
        die("generate", "out of memory");
}

static void puts_(ctx_buf *b, const char *s) { put(b, s, strlen(s)); }

/* A title of 3-7 words and a body of ~0.8-1.2 KB: sentences of 6-18 words,
 * paragraphs of 3-5 sentences, so the chunker sees realistic boundaries. */
static void gen_doc(const vocab *v, uint64_t seed, long i, ctx_buf *title, ctx_buf *body)
{
    rng r = rng_for(seed, 2, (uint64_t)i);
    long nw = 3 + rng_below(&r, 5), target = 800 + rng_below(&r, 400), sent = 0, k;

    ctx_buf_reset(title);
    ctx_buf_reset(body);
    for (k = 0; k < nw; k++) {
        if (k)
            puts_(title, " ");
        puts_(title, vocab_zipf(v, &r));
    }
    title->data[0] = (char)(title->data[0] - 'a' + 'A');
    while ((long)body->len < target) {
        long words = 6 + rng_below(&r, 13), para = 3 + rng_below(&r, 3);
        size_t start = body->len;
        for (k = 0; k < words; k++) {
            if (k)
                puts_(body, rng_below(&r, 10) ? " " : ", ");
            puts_(body, vocab_zipf(v, &r));
        }
        body->data[start] = (char)(body->data[start] - 'a' + 'A');
        puts_(body, ++sent % para == 0 ? ".\n\n" : ". ");
    }
}

/* ------------------------------------------------------------- permissions */

/*
 * Document i may be read by group:proj-(i mod 1000). Readers reach project
 * groups through nesting, as in a directory where a site's reader group
 * holds department groups:
 *
 *   user:u0001 -> proj-007                                   0.1%
 *   user:u1    -> team-x -> proj-010..019                    1%
 *   user:u10   -> dept-3 -> proj-300..399                    10%
 *   user:u50   -> half   -> dept-0..4 -> proj-000..499       50%
 *   user:u100  -> staff  -> dept-0..9 -> proj-000..999       100%
 *
 * So the shares are exact (for --docs a multiple of 1000), and the 100% user
 * resolves to ~1000 principals: the worst case for an ACL expressed as one
 * OR of principal tokens.
 */
#define NPROJ 1000

typedef struct bench_user {
    const char *label, *name;
    double share;
} bench_user;

static const bench_user users[] = {
    {"0.1%", "user:u0001", 0.001}, {"1%", "user:u1", 0.01}, {"10%", "user:u10", 0.10},
    {"50%", "user:u50", 0.50},     {"100%", "user:u100", 1.0},
};
#define NUSERS (sizeof users / sizeof users[0])

static int declare_group(ctx_store *st, int64_t src, const char *id, const char **members,
                         size_t n, ctx_error *err)
{
    ctx_principal p = {.kind = CTX_PRINCIPAL_GROUP, .id = id, .members = members,
                       .n_members = n};
    return store_principal_put(st, src, &p, err);
}

static int declare_principals(ctx_store *st, int64_t src, ctx_error *err)
{
    const char *m[4];
    char id[64], dept[64];
    size_t i, n;
    int rc;

    for (i = 0; i < NUSERS; i++) {
        ctx_principal p = {.kind = CTX_PRINCIPAL_USER, .id = users[i].name};
        if ((rc = store_principal_put(st, src, &p, err)))
            return rc;
    }
    m[0] = "user:u1";
    if ((rc = declare_group(st, src, "group:team-x", m, 1, err)))
        return rc;
    m[0] = "user:u50";
    if ((rc = declare_group(st, src, "group:half", m, 1, err)))
        return rc;
    m[0] = "user:u100";
    if ((rc = declare_group(st, src, "group:staff", m, 1, err)))
        return rc;
    for (i = 0; i < 10; i++) {
        n = 0;
        m[n++] = "group:staff";
        if (i == 3)
            m[n++] = "user:u10";
        if (i < 5)
            m[n++] = "group:half";
        snprintf(id, sizeof id, "group:dept-%zu", i);
        if ((rc = declare_group(st, src, id, m, n, err)))
            return rc;
    }
    for (i = 0; i < NPROJ; i++) {
        n = 0;
        snprintf(dept, sizeof dept, "group:dept-%zu", i / 100);
        m[n++] = dept;
        if (i == 7)
            m[n++] = "user:u0001";
        if (i >= 10 && i < 20)
            m[n++] = "group:team-x";
        snprintf(id, sizeof id, "group:proj-%03zu", i);
        if ((rc = declare_group(st, src, id, m, n, err)))
            return rc;
    }
    return CTX_OK;
}

static void proj_name(long i, char *buf, size_t len)
{
    snprintf(buf, len, "group:proj-%03ld", i % NPROJ);
}

/* -------------------------------------------------------------- the store */

static void store_path(const opts *o, char *buf, size_t len)
{
    snprintf(buf, len, "%s/lexical-%ld-v%ld-z%g-s%llu.db", o->dir, o->docs, o->vocab,
             o->zipf_s, (unsigned long long)o->seed);
}

/* Everything through the code path a sync uses: principals, then records
 * with a commit every --batch records, inside a recorded run. */
static void build_store(const opts *o, const vocab *v, const char *path)
{
    char tmp[4200], grp[64];
    ctx_store *st = NULL;
    ctx_error err = {0};
    store_run_stats stats = {0};
    ingest_ctx ing = {.chunk = CHUNKER_DEFAULTS, .stats = &stats};
    ctx_buf title = CTX_BUF_INIT, body = CTX_BUF_INIT;
    int64_t run;
    double t0 = now_s(), t1;
    struct stat sb;
    long i;

    snprintf(tmp, sizeof tmp, "%s.building", path);
    unlink(tmp);
    if (store_open(tmp, 0, &st, &err) ||
        store_source(st, "bench", "bench", &ing.source, &err) ||
        store_run_begin(st, ing.source, 1, &run, &err))
        die("store", err.text);
    ing.store = st;
    ing.epoch = run;
    if (store_begin(st, &err) || declare_principals(st, ing.source, &err))
        die("principals", err.text);
    for (i = 0; i < o->docs; i++) {
        char id[32];
        const char *allow[1] = {grp};
        ctx_acl acl = {.allow = allow, .n_allow = 1};
        ctx_record rec = {.stream = "docs", .id = id, .acl = &acl};

        gen_doc(v, o->seed, i, &title, &body);
        snprintf(id, sizeof id, "%ld", i);
        proj_name(i, grp, sizeof grp);
        rec.title = title.data;
        rec.body = body.data;
        rec.body_len = body.len;
        if (ingest_record(&ing, &rec, &err))
            die("ingest", err.text);
        if ((i + 1) % o->batch == 0) {
            if (store_commit(st, &err) || store_begin(st, &err))
                die("commit", err.text);
            if ((i + 1) % (o->batch * 10) == 0)
                fprintf(stderr, "  ingested %ld/%ld (%.0f docs/s)\n", i + 1, o->docs,
                        (double)(i + 1) / (now_s() - t0));
        }
    }
    if (store_commit(st, &err) || store_run_finish(st, run, "ok", &stats, NULL, &err))
        die("commit", err.text);
    t1 = now_s();
    store_close(st);
    if (rename(tmp, path))
        die("rename", strerror(errno));
    stat(path, &sb);
    printf("- ingest (generate + ingest_record, batches of %ld): %ld docs, %lld chunks,"
           " %.1f s, %.0f docs/s; store %.0f MB\n",
           o->batch, o->docs, (long long)stats.chunks, t1 - t0, (double)o->docs / (t1 - t0),
           (double)sb.st_size / 1048576.0);
    ctx_buf_free(&title);
    ctx_buf_free(&body);
}

/* ------------------------------------------------------------- PostgreSQL */

static PGresult *pg_ok(PGconn *pg, PGresult *r, const char *what)
{
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_COPY_IN)
        die(what, PQerrorMessage(pg));
    return r;
}

static void pg_exec(PGconn *pg, const char *sql)
{
    PQclear(pg_ok(pg, PQexec(pg, sql), sql));
}

/* COPY text format: backslash, tab, newline and CR must be escaped. */
static void copy_field(ctx_buf *b, const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        switch (s[i]) {
        case '\\': puts_(b, "\\\\"); break;
        case '\t': puts_(b, "\\t"); break;
        case '\n': puts_(b, "\\n"); break;
        case '\r': puts_(b, "\\r"); break;
        default: put(b, &s[i], 1);
        }
    }
}

/*
 * The same chunks the store holds (chunker_split with the ingest options),
 * each with the title and the principal id of its reader group, so the
 * GIN-indexed int[] && user principals is the same test as FTS5's allow.
 */
static void build_pg(const opts *o, const vocab *v, PGconn *pg, ctx_store *st, const char *tag)
{
    chunker_opts co = CHUNKER_DEFAULTS;
    ctx_buf title = CTX_BUF_INIT, body = CTX_BUF_INIT, line = CTX_BUF_INIT;
    int64_t proj_id[NPROJ];
    ctx_error err = {0};
    char grp[64], sql[256];
    double t0, t1, t2;
    long i, rows = 0;
    PGresult *r;

    /* The principal ids are the store's, so both sides test the same ids. */
    for (i = 0; i < NPROJ; i++) {
        proj_name(i, grp, sizeof grp);
        if (store_principal_id(st, grp, &proj_id[i], &err))
            die("principal id", err.text);
    }
    t0 = now_s();
    pg_exec(pg, "DROP TABLE IF EXISTS bench_chunks");
    pg_exec(pg, "CREATE TABLE bench_chunks(id bigint, doc bigint, title text, body text,"
                " acl int[], tsv tsvector GENERATED ALWAYS AS ("
                " setweight(to_tsvector('english', title), 'A') ||"
                " setweight(to_tsvector('english', body), 'B')) STORED)");
    PQclear(pg_ok(pg, PQexec(pg, "COPY bench_chunks(id, doc, title, body, acl) FROM STDIN"),
                  "COPY"));
    for (i = 0; i < o->docs; i++) {
        chunk_span *sp = NULL;
        size_t n = 0, k;
        gen_doc(v, o->seed, i, &title, &body);
        if (chunker_split(body.data, body.len, &co, &sp, &n))
            die("chunk", "out of memory");
        for (k = 0; k < n; k++) {
            ctx_buf_reset(&line);
            if (ctx_buf_printf(&line, "%ld\t%ld\t", ++rows, i))
                die("COPY", "out of memory");
            copy_field(&line, title.data, title.len);
            puts_(&line, "\t");
            copy_field(&line, body.data + sp[k].off, sp[k].len);
            if (ctx_buf_printf(&line, "\t{%lld}\n", (long long)proj_id[i % NPROJ]))
                die("COPY", "out of memory");
            if (PQputCopyData(pg, line.data, (int)line.len) != 1)
                die("COPY", PQerrorMessage(pg));
        }
        ctx_free(sp);
    }
    if (PQputCopyEnd(pg, NULL) != 1)
        die("COPY", PQerrorMessage(pg));
    while ((r = PQgetResult(pg))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            die("COPY", PQerrorMessage(pg));
        PQclear(r);
    }
    t1 = now_s();
    pg_exec(pg, "SET maintenance_work_mem = '1GB'");
    pg_exec(pg, "CREATE INDEX bench_chunks_tsv ON bench_chunks USING gin(tsv)");
    pg_exec(pg, "CREATE INDEX bench_chunks_acl ON bench_chunks USING gin(acl)");
    pg_exec(pg, "VACUUM ANALYZE bench_chunks");
    snprintf(sql, sizeof sql, "COMMENT ON TABLE bench_chunks IS '%s'", tag);
    pg_exec(pg, sql);
    t2 = now_s();
    r = pg_ok(pg, PQexec(pg, "SELECT pg_total_relation_size('bench_chunks')"), "size");
    printf("- PostgreSQL load: %ld rows; COPY (with tsvector) %.1f s, GIN indexes + ANALYZE"
           " %.1f s; table + indexes %.0f MB\n",
           rows, t1 - t0, t2 - t1, atof(PQgetvalue(r, 0, 0)) / 1048576.0);
    PQclear(r);
    ctx_buf_free(&title);
    ctx_buf_free(&body);
    ctx_buf_free(&line);
}

/* The table is reused when its comment matches this corpus. */
static int pg_table_current(PGconn *pg, const char *tag)
{
    PGresult *r = pg_ok(pg, PQexec(pg, "SELECT obj_description(to_regclass('bench_chunks'),"
                                       " 'pg_class')"), "check table");
    int same = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) && !strcmp(PQgetvalue(r, 0, 0), tag);
    PQclear(r);
    return same;
}

/* ------------------------------------------------------------------ queries */

/*
 * 1-3 words (30/40/30%), each drawn from one of three frequency bands:
 * common (the 50 most frequent words: in ~30-100% of documents), middle
 * (ranks 50-999) and rare (the rest). Uniform within a band: a query log is
 * topical, not a sample of running text.
 */
enum { BAND_COMMON, BAND_MID, BAND_RARE };
#define COMMON_TOP 50
#define MID_TOP 1000

typedef struct query {
    char text[3 * WORD_MAX + 4];   /* for search_lexical: "w1 w2" */
    char tsq[3 * WORD_MAX + 10];   /* for to_tsquery: "w1 | w2" */
    int common;                    /* has a word from the common band */
} query;

static query *gen_queries(const vocab *v, long n, uint64_t seed)
{
    query *q = calloc((size_t)n, sizeof *q);
    rng r = rng_for(seed, 3, 0);
    long i, k;

    if (!q)
        die("queries", "out of memory");
    for (i = 0; i < n; i++) {
        long u = rng_below(&r, 10), nw = u < 3 ? 1 : u < 7 ? 2 : 3;
        for (k = 0; k < nw; k++) {
            long b = rng_below(&r, 10), rank;
            if (b < 3) {
                rank = rng_below(&r, COMMON_TOP);
                q[i].common = 1;
            } else if (b < 7) {
                rank = COMMON_TOP + rng_below(&r, MID_TOP - COMMON_TOP);
            } else {
                rank = MID_TOP + rng_below(&r, v->n - MID_TOP);
            }
            strcat(q[i].text, k ? " " : "");
            strcat(q[i].text, v->w[rank]);
            strcat(q[i].tsq, k ? " | " : "");
            strcat(q[i].tsq, v->w[rank]);
        }
    }
    return q;
}

/* ------------------------------------------------------------------ timing */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values. */
static double pct(const double *v, long n, double p)
{
    long i = (long)ceil(p / 100.0 * (double)n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

typedef struct lat {
    long n;       /* queries timed (fewer than asked when over --budget) */
    double p50, p99, max;
    double p99_common, p99_other; /* p99 of queries with / without a common word */
} lat;

static lat summarize(double *ms, const query *q, long n)
{
    double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    long na = 0, nb = 0, i;
    lat l;

    if (!a || !b)
        die("summarize", "out of memory");
    for (i = 0; i < n; i++) {
        if (q[i].common)
            a[na++] = ms[i];
        else
            b[nb++] = ms[i];
    }
    qsort(a, (size_t)na, sizeof *a, cmp_double);
    qsort(b, (size_t)nb, sizeof *b, cmp_double);
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    l.n = n;
    l.p50 = pct(ms, n, 50);
    l.p99 = pct(ms, n, 99);
    l.max = ms[n - 1];
    l.p99_common = na ? pct(a, na, 99) : 0;
    l.p99_other = nb ? pct(b, nb, 99) : 0;
    free(a);
    free(b);
    return l;
}

static void ours_one(sqlite3 *db, const char *user, const query *q, size_t *hits)
{
    search_opts so = {.k = 10};
    search_result res = {0};
    ctx_error err = {0};
    const char *slow = getenv("BENCH_SLOW_MS"), *x = getenv("BENCH_EXPAND");
    double t0 = slow ? now_s() : 0;
    if (x && sscanf(x, "%d,%d,%lf", &so.expand.terms, &so.expand.docs, &so.expand.weight) != 3)
        die("BENCH_EXPAND", "want terms,docs,weight");
    if (getenv("BENCH_PROXIMITY"))
        so.proximity = atof(getenv("BENCH_PROXIMITY"));
    if (search_lexical(db, user, q->text, &so, &res, &err))
        die("search_lexical", err.text);
    if (slow && (now_s() - t0) * 1e3 > atof(slow))
        fprintf(stderr, "  slow: %s \"%s\" %.2f ms (rare_only %d windowed %d mapped %d"
                        " rare_mapped %d by_readable %d)\n",
                user, q->text, (now_s() - t0) * 1e3, res.rare_only, res.windowed, res.mapped,
                res.rare_mapped, res.by_readable);
    *hits = res.n;
    if (getenv("BENCH_DUMP")) { /* to compare two builds' answers */
        FILE *f = fopen(getenv("BENCH_DUMP"), "a");
        if (!f)
            die("BENCH_DUMP", strerror(errno));
        fprintf(f, "%s \"%s\":", user, q->text);
        for (size_t i = 0; i < res.n; i++)
            fprintf(f, " %lld/%a", (long long)res.hits[i].chunk_id, res.hits[i].score);
        fprintf(f, "\n");
        fclose(f);
    }
    search_result_free(&res);
}

static const char pg_search_sql[] =
    "SELECT id, doc, title, body, ts_rank(tsv, q) AS r"
    " FROM bench_chunks, to_tsquery('english', $1) AS q"
    " WHERE tsv @@ q AND acl && $2::int[] ORDER BY r DESC LIMIT 10";

static void pg_one(PGconn *pg, const char *principals, const query *q, size_t *hits)
{
    const char *params[2] = {q->tsq, principals};
    PGresult *r = pg_ok(pg, PQexecParams(pg, pg_search_sql, 2, NULL, params, NULL, NULL, 0),
                        "PG search");
    *hits = (size_t)PQntuples(r);
    PQclear(r);
}

/* ------------------------------------------------------------ cross-checks */

/* Documents the user may read, counted from the store's relational tables
 * (not through FTS5), to confirm the share the ACL design promises. */
static long visible_docs(sqlite3 *db, const char *pjson)
{
    sqlite3_stmt *s;
    long n = -1;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM documents d WHERE d.deleted = 0 AND EXISTS"
                           " (SELECT 1 FROM acl_entries e WHERE e.acl_id = d.acl_id"
                           "  AND e.deny = 0 AND e.principal_id IN"
                           "  (SELECT value FROM json_each(?1)))",
                           -1, &s, NULL) != SQLITE_OK)
        die("visible", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, pjson, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* Chunks matching q that the principals may read, in FTS5, using the very
 * MATCH expression search_lexical builds. */
static long fts_count(sqlite3 *db, const acl_principals *p, const char *text)
{
    sqlite3_stmt *s;
    char *match = NULL;
    long n = -1;
    if (search_fts_query(text, p->ids, p->n, &match) || !match)
        die("fts_count", "no MATCH expression");
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?1",
                           -1, &s, NULL) != SQLITE_OK)
        die("fts_count", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, match, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    ctx_free(match);
    return n;
}

static long pg_count(PGconn *pg, const char *principals, const char *tsq)
{
    const char *params[2] = {tsq, principals};
    PGresult *r = pg_ok(pg, PQexecParams(pg,
                                         "SELECT count(*) FROM bench_chunks"
                                         " WHERE tsv @@ to_tsquery('english', $1)"
                                         " AND acl && $2::int[]",
                                         2, NULL, params, NULL, NULL, 0),
                        "PG count");
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* ---------------------------------------------------------------- the run */

typedef struct user_result {
    size_t nprincipals;
    long visible;
    double mean_hits;
    lat ours, pg;
    int have_pg;
    long checked, mismatched;
} user_result;

static const char *mark(int ok) { return ok ? "yes" : "**no**"; }

static void print_tables(const opts *o, const user_result *res)
{
    size_t u;

    printf("\n### search_lexical (k=10) vs PostgreSQL, %ld docs, %ld queries per user\n\n",
           o->docs, o->queries);
    printf("| share | principals | docs visible | ours p50 ms | ours p99 ms | PG p50 ms |"
           " PG p99 ms | p50 ours/PG | p99 ours/PG | p50<=5 | p99<=50 | faster than PG |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|:-:|\n");
    for (u = 0; u < NUSERS; u++) {
        const user_result *r = &res[u];
        printf("| %s | %zu | %ld | %.2f | %.2f |", users[u].label, r->nprincipals, r->visible,
               r->ours.p50, r->ours.p99);
        if (r->have_pg)
            printf(" %.2f | %.2f | %.2f | %.2f |", r->pg.p50, r->pg.p99,
                   r->ours.p50 / r->pg.p50, r->ours.p99 / r->pg.p99);
        else
            printf(" - | - | - | - |");
        printf(" %s | %s | %s |\n", mark(r->ours.p50 <= 5), mark(r->ours.p99 <= 50),
               r->have_pg ? mark(r->ours.p50 < r->pg.p50 && r->ours.p99 < r->pg.p99) : "-");
    }
    printf("\n#### Tail by query kind (p99 ms; \"common\" = has one of the %d most frequent"
           " words)\n\n", COMMON_TOP);
    printf("| share | mean hits | ours n | ours p99 common | ours p99 other | ours max |"
           " PG n | PG p99 common | PG p99 other | PG max | counts equal |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|\n");
    for (u = 0; u < NUSERS; u++) {
        const user_result *r = &res[u];
        printf("| %s | %.1f | %ld | %.2f | %.2f | %.2f |", users[u].label, r->mean_hits,
               r->ours.n, r->ours.p99_common, r->ours.p99_other, r->ours.max);
        if (r->have_pg)
            printf(" %ld | %.2f | %.2f | %.2f | %ld/%ld |\n", r->pg.n, r->pg.p99_common,
                   r->pg.p99_other, r->pg.max, r->checked - r->mismatched, r->checked);
        else
            printf(" - | - | - | - | - |\n");
    }
}

/*
 * run_user - time user u's queries on ctxgate (pg == NULL) or on
 * PostgreSQL, with the match-count checks. All users' ctxgate phases run
 * before any PostgreSQL phase: this machine's page cache holds under 2 GB,
 * and a PostgreSQL phase that scans its table evicts the store's pages,
 * which the next ctxgate phase would then read from disk (in a run that
 * alternated, the last user's p50 tripled). PostgreSQL's data stays in its
 * own shared_buffers either way.
 */
/* wanted_user - is users[u] among BENCH_ONLY's comma-separated labels (or is it unset)? */
static int wanted_user(size_t u)
{
    const char *only = getenv("BENCH_ONLY");
    char list[256], item[32];

    if (!only)
        return 1;
    snprintf(list, sizeof list, ",%s,", only);
    snprintf(item, sizeof item, ",%s,", users[u].label);
    return strstr(list, item) != NULL;
}

static void run_user(const opts *o, sqlite3 *db, PGconn *pg, size_t u, const query *q,
                     user_result *r)
{
    acl_principals p = {0};
    ctx_error err = {0};
    ctx_buf pj = CTX_BUF_INIT, parr = CTX_BUF_INIT;
    double *ms = malloc((size_t)o->queries * sizeof *ms);
    size_t hits, i, total = 0;
    double start;
    long n;

    if (!ms || acl_resolve(db, users[u].name, &p, &err))
        die("acl_resolve", err.text);
    r->nprincipals = p.n;
    /* The same ids as a JSON array (for SQLite) and an int[] literal (for PG). */
    puts_(&pj, "[");
    puts_(&parr, "{");
    for (i = 0; i < p.n; i++)
        if (ctx_buf_printf(&pj, "%s%lld", i ? "," : "", (long long)p.ids[i]) ||
            ctx_buf_printf(&parr, "%s%lld", i ? "," : "", (long long)p.ids[i]))
            die("principals", "out of memory");
    puts_(&pj, "]");
    puts_(&parr, "}");
    r->visible = getenv("BENCH_NO_VISIBLE") ? -1 : visible_docs(db, pj.data);

    /* Warm-up and checks get a slice of the budget, so a slow system cannot
     * spend it all before timing starts. */
    start = now_s();
    for (n = 0; !pg && n < o->warmup && now_s() - start < o->budget / 10; n++)
        ours_one(db, users[u].name, &q[n % o->queries], &hits);
    start = now_s();
    for (n = 0; !pg && n < o->queries && now_s() - start < o->budget; n++) {
        double t0 = now_s();
        ours_one(db, users[u].name, &q[n], &hits);
        ms[n] = (now_s() - t0) * 1e3;
        total += hits;
    }
    if (!pg) {
        r->mean_hits = (double)total / (double)n;
        r->ours = summarize(ms, q, n);
        fprintf(stderr, "  %s: ours p50 %.2f p99 %.2f ms (n=%ld)\n", users[u].label,
                r->ours.p50, r->ours.p99, r->ours.n);
    }

    if (pg) {
        r->have_pg = 1;
        start = now_s();
        for (n = 0; n < o->warmup && now_s() - start < o->budget / 10; n++)
            pg_one(pg, parr.data, &q[n % o->queries], &hits);
        start = now_s();
        for (n = 0; n < o->queries && now_s() - start < o->budget; n++) {
            double t0 = now_s();
            pg_one(pg, parr.data, &q[n], &hits);
            ms[n] = (now_s() - t0) * 1e3;
        }
        r->pg = summarize(ms, q, n);
        /* Same semantics on both sides: the number of readable matches of a
         * query must agree, or the latency comparison would be meaningless. */
        start = now_s();
        for (n = 0; n < o->checks && n < o->queries && now_s() - start < o->budget / 5; n++) {
            long a = fts_count(db, &p, q[n].text), b = pg_count(pg, parr.data, q[n].tsq);
            r->checked++;
            if (a != b) {
                r->mismatched++;
                fprintf(stderr, "  mismatch %s \"%s\": fts5 %ld, pg %ld\n", users[u].label,
                        q[n].text, a, b);
            }
        }
    }
    if (pg)
        fprintf(stderr, "  %s: pg p50 %.2f p99 %.2f ms (n=%ld)\n", users[u].label, r->pg.p50,
                r->pg.p99, r->pg.n);
    free(ms);
    ctx_buf_free(&pj);
    ctx_buf_free(&parr);
    acl_principals_free(&p);
}

int main(int argc, char **argv)
{
    opts o;
    vocab v;
    query *q;
    char path[4096], tag[256];
    ctx_store *st = NULL;
    ctx_error err = {0};
    PGconn *pg = NULL;
    user_result res[NUSERS];
    struct stat sb;
    double t0, load0;
    size_t u;

    if (parse_opts(argc, argv, &o))
        return 2;
    ctx_log_set_level(CTX_LOG_WARN);
    if (mkdir(o.dir, 0755) && errno != EEXIST)
        die(o.dir, strerror(errno));
    vocab_build(&v, o.vocab, o.zipf_s, o.seed);
    q = gen_queries(&v, o.queries, o.seed);
    memset(res, 0, sizeof res);

    printf("## bench/search_lexical: %ld docs, vocabulary %ld (Zipf s=%g), seed %llu\n\n",
           o.docs, o.vocab, o.zipf_s, (unsigned long long)o.seed);
    store_path(&o, path, sizeof path);
    if (o.fresh || stat(path, &sb)) {
        build_store(&o, &v, path);
    } else {
        printf("- store: reusing %s (%.0f MB; --fresh rebuilds)\n", path,
               (double)sb.st_size / 1048576.0);
    }
    /* term_df, as a sync leaves it behind (rank.h): search no longer reads
     * it (its statistics are over each caller's readable chunks), but
     * bench/serve_load.sh picks its words from it. */
    {
        double t = now_s();
        if (store_open(path, 0, &st, &err) || rank_stats_refresh(store_db(st), 0, &err))
            die("rank stats", err.text);
        store_close(st);
        printf("- term_df (when missing or stale; not read by search): %.2f s\n", now_s() - t);
    }
    /* Search the way retrieval does: its own read-only connection. */
    if (store_open(path, STORE_OPEN_READONLY, &st, &err))
        die("store", err.text);
    if (!o.cold) {
        /* what `ctxgate serve` does before it answers (svc_warm) */
        rank_warm_info wi;
        rank_conn *rc;
        double t = now_s();
        if (!(rc = rank_attach(store_db(st), &err)) || rank_warm(rc, RANK_WARM_MIN_DF, &wi, &err))
            die("rank_warm", err.text);
        printf("- warm-up as `ctxgate serve` does it (rank_warm): %.2f s; counts of %lld"
               " words, %lld with frequency maps, %lld (ACL set, count) pairs\n",
               now_s() - t, (long long)wi.words, (long long)wi.maps, (long long)wi.pairs);
    } else {
        printf("- no warm-up (--cold): first sights of words are timed\n");
    }

    if (strcmp(o.pg, "none")) {
        pg = PQconnectdb(o.pg);
        if (PQstatus(pg) != CONNECTION_OK)
            die("PostgreSQL", PQerrorMessage(pg));
        PQclear(PQexec(pg, "SET client_min_messages = warning"));
        snprintf(tag, sizeof tag, "ctxgate bench docs=%ld vocab=%ld zipf=%g seed=%llu", o.docs,
                 o.vocab, o.zipf_s, (unsigned long long)o.seed);
        if (o.fresh || !pg_table_current(pg, tag)) {
            build_pg(&o, &v, pg, st, tag);
        } else {
            printf("- PostgreSQL: reusing table bench_chunks (--fresh rebuilds)\n");
        }
        {
            PGresult *r = pg_ok(pg, PQexec(pg, "SELECT version()"), "version");
            printf("- %s\n", PQgetvalue(r, 0, 0));
            PQclear(r);
        }
    }
    printf("- SQLite %s; queries: 1-3 words, 30%% of words common, 40%% middle,"
           " 30%% rare; %ld warm-up queries per user and system\n",
           sqlite3_libversion(), o.warmup);

    t0 = now_s();
    load0 = loadavg();
    for (u = 0; u < NUSERS; u++)
        if (wanted_user(u))
            run_user(&o, store_db(st), NULL, u, q, &res[u]);
    for (u = 0; pg && u < NUSERS; u++)
        if (wanted_user(u))
            run_user(&o, store_db(st), pg, u, q, &res[u]);
    printf("- timed runs: %.0f s; load average %.2f before, %.2f after (%ld CPUs)\n",
           now_s() - t0, load0, loadavg(), sysconf(_SC_NPROCESSORS_ONLN));
    print_tables(&o, res);

    if (pg)
        PQfinish(pg);
    store_close(st);
    free(q);
    vocab_free(&v);
    return 0;
}
