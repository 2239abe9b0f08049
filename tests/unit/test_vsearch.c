/*
 * test_vsearch.c - the leak oracle for the vector and hybrid legs: random
 * users, nested (even cyclic) groups, documents with random allow and deny
 * lists. Every vector answer, under each plan (exact scan, graph walk with
 * selector, automatic), is compared with a brute-force oracle computed
 * from the store's own vectors: nothing outside what the user may read,
 * and under the exact plan exactly the oracle's k best. Then ACLs and
 * memberships change, the index catches up, and everything is checked
 * again. Hybrid answers stay inside the allowed set too, and find chunks
 * that have no vector yet.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/embed.h"
#include "indexer/ingest.h"
#include "indexer/vindex.h"
#include "retrieval/hybrid.h"
#include "retrieval/vsearch.h"
#include "tests/lib/testutil.h"

#define NUSERS 12
#define NGROUPS 10
#define NDOCS 600
#define NWORDS 30
#define DIM 48

#define NPRIN (NUSERS + NGROUPS + 1)
#define P_GROUP(i) (NUSERS + (i))
#define P_EVERYONE (NPRIN - 1)

static char names[NPRIN][32];
static int member[NPRIN][NPRIN];
static int allow[NDOCS][NPRIN], deny[NDOCS][NPRIN];
static unsigned rng = 4242;

static int rnd(unsigned n)
{
    rng = rng * 1103515245u + 12345u;
    return (int)((rng >> 8) % n);
}

static void closure(int u, int *in)
{
    int changed = 1;
    memset(in, 0, sizeof(int) * NPRIN);
    in[u] = 1;
    while (changed) {
        changed = 0;
        for (int a = 0; a < NPRIN; a++)
            for (int g = 0; g < NGROUPS; g++)
                if (in[a] && member[a][P_GROUP(g)] && !in[P_GROUP(g)])
                    in[P_GROUP(g)] = changed = 1;
    }
    in[P_EVERYONE] = 1;
}

static int may_read(int d, const int *in)
{
    int ok = 0;
    for (int p = 0; p < NPRIN; p++) {
        if (in[p] && deny[d][p])
            return 0;
        ok |= in[p] && allow[d][p];
    }
    return ok;
}

static void random_acl(int d)
{
    int n = rnd(4);
    memset(allow[d], 0, sizeof allow[d]);
    memset(deny[d], 0, sizeof deny[d]);
    for (int i = 0; i < n; i++) {
        int r = rnd(100);
        allow[d][r < 8 ? P_EVERYONE : r < 50 ? rnd(NUSERS) : P_GROUP(rnd(NGROUPS))] = 1;
    }
    if (rnd(5) == 0)
        deny[d][rnd(3) ? P_GROUP(rnd(NGROUPS)) : rnd(NUSERS)] = 1;
}

static char *dir;
static ctx_store *st;
static ingest_ctx ic;
static store_run_stats rstats;
static embed_provider *emb;
static int64_t source;

static void put_groups(void)
{
    ctx_error err;
    for (int g = 0; g < NGROUPS; g++) {
        const char *m[NPRIN];
        ctx_principal p = {CTX_PRINCIPAL_GROUP, names[P_GROUP(g)], NULL, NULL, NULL, m, 0};
        for (int a = 0; a < P_EVERYONE; a++)
            if (member[a][P_GROUP(g)])
                m[p.n_members++] = names[a];
        cr_assert_eq(store_principal_put(st, source, &p, &err), 0, "%s", err.text);
    }
}

static void put_doc(int d, int as_record)
{
    const char *al[NPRIN], *dl[NPRIN];
    ctx_acl acl = {al, 0, dl, 0, NULL, 0};
    ctx_error err;
    char id[16], body[160] = "";

    for (int p = 0; p < NPRIN; p++) {
        if (allow[d][p])
            al[acl.n_allow++] = names[p];
        if (deny[d][p])
            dl[acl.n_deny++] = names[p];
    }
    snprintf(id, sizeof id, "d%d", d);
    if (as_record) {
        for (int k = 0; k < 8; k++) {
            char w[16];
            snprintf(w, sizeof w, "word%d ", rnd(NWORDS));
            strcat(body, w);
        }
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    } else {
        cr_assert_eq(ingest_acl(&ic, "s", id, &acl, &err), 0, "%s", err.text);
    }
}

static void build(void)
{
    embed_cfg c = {0};
    ctx_error err;

    dir = tu_tmpdir("vsearch");
    st = tu_store(dir);
    for (int i = 0; i < NUSERS; i++)
        snprintf(names[i], sizeof names[i], "user:u%d@t.test", i);
    for (int i = 0; i < NGROUPS; i++)
        snprintf(names[P_GROUP(i)], sizeof names[0], "group:g%d", i);
    snprintf(names[P_EVERYONE], sizeof names[0], "everyone");
    cr_assert_eq(store_source(st, "s", "test", &source, &err), 0);
    tu_ingest_init(&ic, st, source, &rstats);
    cr_assert_eq(store_begin(st, &err), 0);
    for (int i = 0; i < NUSERS; i++) {
        ctx_principal p = {CTX_PRINCIPAL_USER, names[i], NULL, NULL, NULL, NULL, 0};
        cr_assert_eq(store_principal_put(st, source, &p, &err), 0, "%s", err.text);
    }
    for (int g = 0; g < NGROUPS; g++)
        for (int k = 0; k < 3; k++) {
            int a = rnd(10) < 7 ? rnd(NUSERS) : P_GROUP(rnd(NGROUPS));
            if (a != P_GROUP(g))
                member[a][P_GROUP(g)] = 1;
        }
    put_groups();
    for (int d = 0; d < NDOCS; d++) {
        random_acl(d);
        put_doc(d, 1);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    c.dim = DIM;
    cr_assert_eq(embed_open(&c, &emb, &err), 0);
    cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
}

static void finish(void)
{
    embed_close(emb);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

/* The oracle's ranking: every allowed chunk's vector from the store. */
typedef struct cand {
    float d;
    int64_t chunk;
} cand;

static int by_d(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return (x->d > y->d) - (x->d < y->d);
}

static size_t oracle(int u, const float *q, cand *out)
{
    sqlite3_stmt *s;
    int in[NPRIN];
    size_t n = 0;

    closure(u, in);
    cr_assert_eq(sqlite3_prepare_v2(store_db(st),
                                    "SELECT v.chunk_id, d.ext_id, v.vec FROM vectors v JOIN chunks c"
                                    " ON c.id = v.chunk_id JOIN documents d ON d.id = c.doc_id"
                                    " WHERE d.deleted = 0", -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        int d = atoi((const char *)sqlite3_column_text(s, 1) + 1);
        if (!may_read(d, in))
            continue;
        out[n].chunk = sqlite3_column_int64(s, 0);
        out[n].d = vindex_l2sq(q, sqlite3_column_blob(s, 2), DIM);
        n++;
    }
    sqlite3_finalize(s);
    qsort(out, n, sizeof *out, by_d);
    return n;
}

/* strict: the index is caught up, so answers must equal the oracle's. */
static void check_queries(vindex *vi, int nq, int strict)
{
    static cand want[NDOCS * 2];
    for (int i = 0; i < nq; i++) {
        int u = rnd(NUSERS + 1), plan = i % 3, k = 1 + rnd(30);
        char user[40], text[64];
        const char *t = text;
        size_t len;
        float q[DIM];
        search_result r;
        vsearch_opts vo = {0};
        vsearch_stats vs;
        ctx_error err;
        size_t nwant = 0;

        snprintf(user, sizeof user, "%s", u < NUSERS ? names[u] + 5 : "stranger@t.test");
        snprintf(text, sizeof text, "word%d word%d", rnd(NWORDS), rnd(NWORDS));
        len = strlen(text);
        cr_assert_eq(embed_texts(emb, &t, &len, 1, q, &err), 0);
        vo.k = k;
        vo.plan = plan; /* auto, exact, graph walk */
        cr_assert_eq(vsearch(store_db(st), vi, user, q, &vo, &r, &vs, &err), 0, "%s", err.text);
        if (u < NUSERS)
            nwant = oracle(u, q, want);
        cr_assert(!strict || r.n == (nwant < (size_t)k ? nwant : (size_t)k),
                     "%s: %zu hits of k %d, %zu allowed (index: %zu), plan %d, fell back %d", user,
                     r.n, k, nwant, vs.allowed, vs.plan, vs.fell_back);
        for (size_t h = 0; h < r.n; h++) {
            size_t j;
            for (j = 0; j < nwant && want[j].chunk != r.hits[h].chunk_id; j++)
                ;
            cr_assert(j < nwant, "LEAK: %s got chunk %lld (%s) under plan %d", user,
                      (long long)r.hits[h].chunk_id, r.hits[h].title, vs.plan);
            /* Exact plan: exactly the oracle's best k (up to ties). */
            if (strict && vs.plan == VSEARCH_EXACT)
                cr_assert_float_eq(1.0 - r.hits[h].score, want[h].d / 2.0, 1e-4,
                                   "rank %zu differs from the oracle", h);
        }
        search_result_free(&r);
    }
}

/* open_index - the active model's index, built from the store and saved. */
static vindex *open_index(void)
{
    char path[4096];
    vindex *vi;
    int how;
    ctx_error err;
    int64_t active, target;

    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    vindex_path(dir, active, path, sizeof path);
    cr_assert_eq(vindex_open(st, path, active, &vi, &how, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_save(vi, path, &err), 0);
    return vi;
}

Test(vsearch, equals_the_oracle_and_never_leaks)
{
    vindex *vi;
    ctx_error err;

    build();
    vi = open_index();
    check_queries(vi, 300, 1);

    /* Revoke and grant: ACLs of a third of the documents, memberships, deletions. */
    cr_assert_eq(store_begin(st, &err), 0);
    for (int d = 0; d < NDOCS; d += 3) {
        random_acl(d);
        put_doc(d, 0);
    }
    for (int k = 0; k < 12; k++) {
        int a = rnd(NUSERS), g = rnd(NGROUPS);
        member[a][P_GROUP(g)] = !member[a][P_GROUP(g)];
    }
    put_groups();
    for (int d = 1; d < NDOCS; d += 50) {
        char id[16];
        snprintf(id, sizeof id, "d%d", d);
        cr_assert_eq(ingest_delete(&ic, "s", id, &err), 0);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
    /* The old index, not caught up: deleted chunks and stale ACLs must
     * still never be served (the store check behind the index). */
    check_queries(vi, 60, 0);
    cr_assert_eq(vindex_catch_up(vi, st, NULL, NULL, &err), 0);
    check_queries(vi, 300, 1);
    vindex_free(vi);
    finish();
}

/* legs - a lexical and a vector answer over the chunks ids[0..2] with
 * these scores, as the legs hand them to hybrid_fuse (ids and scores). */
static void legs(const int64_t *ids, const double *ls, const double *vs, search_result *lex,
                 search_result *vec)
{
    static const int lorder[3] = {0, 1, 2}, vorder[3] = {2, 1, 0};
    lex->hits = ctx_calloc(3, sizeof *lex->hits);
    vec->hits = ctx_calloc(3, sizeof *vec->hits);
    cr_assert(lex->hits && vec->hits);
    lex->n = vec->n = 3;
    for (int r = 0; r < 3; r++) {
        lex->hits[r].chunk_id = ids[lorder[r]];
        lex->hits[r].score = ls[lorder[r]];
        vec->hits[r].chunk_id = ids[vorder[r]];
        vec->hits[r].score = vs[vorder[r]];
    }
}

/*
 * The two fusions on the same legs. Lexically A leads B by a hair and C
 * trails far behind; by vector C leads, B is a little above A. By ranks
 * A and C tie ahead of B (each is once first and once last); by scaled
 * scores B, close to the best in both legs, comes first.
 */
Test(vsearch, fusion_by_scores_weighs_the_gaps_ranks_do_not)
{
    static const double ls[3] = {10.0, 9.9, 1.0}, vs[3] = {0.0, 0.1, 0.9};
    int64_t ids[3];
    search_result lex, vec, out;
    search_opts so = {0};
    hybrid_opts ho = {0};
    ctx_error err;
    int u;

    build();
    /* Three chunks one user may read, whichever they are. */
    so.k = 3;
    for (u = 0; u < NUSERS; u++) {
        cr_assert_eq(search_lexical(store_db(st), names[u] + 5, "word1 word2 word3", &so,
                                    &lex, &err), 0, "%s", err.text);
        if (lex.n == 3)
            break;
        search_result_free(&lex);
    }
    cr_assert(u < NUSERS, "no user reads three chunks with these words");
    for (int i = 0; i < 3; i++)
        ids[i] = lex.hits[i].chunk_id;
    search_result_free(&lex);

    ho.k = 3;
    legs(ids, ls, vs, &lex, &vec);
    cr_assert_eq(hybrid_fuse(store_db(st), &lex, &vec, &ho, &out, &err), 0, "%s", err.text);
    cr_assert_eq(out.n, 3);
    cr_assert_neq(out.hits[0].chunk_id, ids[1], "by ranks B is not first");
    cr_assert_eq(out.hits[2].chunk_id, ids[1], "by ranks B is last");
    search_result_free(&out);

    ho.by_scores = 1;
    legs(ids, ls, vs, &lex, &vec);
    cr_assert_eq(hybrid_fuse(store_db(st), &lex, &vec, &ho, &out, &err), 0, "%s", err.text);
    cr_assert_eq(out.n, 3);
    cr_assert_eq(out.hits[0].chunk_id, ids[1], "by scores B is first");
    /* B: 8.9/9 + 0.1/0.9; A: 1 + 0; C: 0 + 1. */
    cr_assert_float_eq(out.hits[0].score, 8.9 / 9 + 0.1 / 0.9, 1e-9);
    cr_assert_float_eq(out.hits[1].score, 1.0, 1e-9);
    /* The hits are read from the store: the user's own chunks, whole. */
    for (size_t i = 0; i < out.n; i++)
        cr_assert(out.hits[i].text && out.hits[i].doc_id > 0);
    search_result_free(&out);
    finish();
}

Test(vsearch, hybrid_stays_inside_and_finds_unembedded_chunks)
{
    vindex *vi;
    ctx_error err;

    build();
    vi = open_index();
    /* A document for everyone, indexed but not embedded. */
    {
        const char *al[1] = {"everyone"};
        ctx_acl acl = {al, 1, NULL, 0, NULL, 0};
        const char *body = "zyzzyva quokka unembedded";
        ctx_record r = {"s", "fresh", "fresh", NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(store_begin(st, &err), 0);
        cr_assert_eq(ingest_record(&ic, &r, &err), 0);
        cr_assert_eq(store_commit(st, &err), 0);
    }
    for (int i = 0; i < 200; i++) {
        int u = rnd(NUSERS + 1), in[NPRIN];
        char user[40], text[64];
        hybrid_opts ho = {0};
        search_result r;

        snprintf(user, sizeof user, "%s", u < NUSERS ? names[u] + 5 : "stranger@t.test");
        snprintf(text, sizeof text, i % 10 ? "word%d word%d" : "quokka", rnd(NWORDS),
                 rnd(NWORDS));
        ho.k = 1 + rnd(20);
        ho.w_lexical = 1 + rnd(3);
        ho.w_vector = 1 + rnd(3);
        ho.by_scores = rnd(2);
        if (!(i % 10)) {
            /* Equal weights: the only lexical match ranks with the best vector. */
            ho.k = 3 + rnd(10);
            ho.w_lexical = ho.w_vector = 1;
        }
        cr_assert_eq(hybrid_search(store_db(st), vi, emb, user, text, &ho, &r, &err), 0);
        if (u < NUSERS)
            closure(u, in);
        cr_assert(u < NUSERS || r.n == 0, "a stranger got %zu hits", r.n);
        for (size_t h = 0; h < r.n; h++) {
            if (!strcmp(r.hits[h].title, "fresh"))
                continue;
            int d = atoi(r.hits[h].title + 1);
            cr_assert(may_read(d, in), "LEAK: %s got d%d from hybrid", user, d);
        }
        if (!(i % 10) && u < NUSERS) {
            int found = 0;
            for (size_t h = 0; h < r.n; h++)
                found |= !strcmp(r.hits[h].title, "fresh");
            cr_assert(found, "the unembedded chunk is found lexically");
        }
        search_result_free(&r);
    }
    /* An embedder of another dimension than the index: lexical leg only. */
    {
        embed_cfg c = {0};
        embed_provider *other;
        hybrid_opts ho = {0};
        search_result r;
        c.dim = DIM * 2;
        cr_assert_eq(embed_open(&c, &other, &err), 0);
        ho.k = 5;
        cr_assert_eq(hybrid_search(store_db(st), vi, other, names[0] + 5, "quokka", &ho, &r,
                                   &err), 0, "%s", err.text);
        cr_assert_eq(r.n, 1);
        cr_assert_str_eq(r.hits[0].title, "fresh");
        search_result_free(&r);
        embed_close(other);
    }
    /* The source filter of the vector leg: its own source, or an unknown one. */
    {
        const char *own[1] = {"s"}, *other[1] = {"nope"};
        const char *t = "word1 word2";
        size_t len = strlen(t);
        float q[DIM];
        vsearch_opts vo = {0};
        search_result all, mine, none;
        cr_assert_eq(embed_texts(emb, &t, &len, 1, q, &err), 0);
        vo.k = 50;
        cr_assert_eq(vsearch(store_db(st), vi, names[0] + 5, q, &vo, &all, NULL, &err), 0);
        vo.sources = own;
        vo.nsources = 1;
        cr_assert_eq(vsearch(store_db(st), vi, names[0] + 5, q, &vo, &mine, NULL, &err), 0);
        vo.sources = other;
        cr_assert_eq(vsearch(store_db(st), vi, names[0] + 5, q, &vo, &none, NULL, &err), 0);
        cr_assert_gt(all.n, 0);
        cr_assert_eq(mine.n, all.n);
        cr_assert_eq(none.n, 0);
        search_result_free(&all);
        search_result_free(&mine);
        search_result_free(&none);
    }
    vindex_free(vi);
    finish();
}

/*
 * An agent's label grant is part of the allowed set, not a filter after
 * ranking: 1,200 documents with a label it may not read outrank the five it
 * may, in both legs, and still the five come back, and nothing else.
 */
static size_t titles_with(const search_result *r, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += !strncmp(r->hits[i].title, prefix, strlen(prefix));
    return n;
}

Test(vsearch, labels_are_filtered_before_ranking)
{
    static const char *const internal[] = {"internal"}, *const nothing[] = {"no-such-label"};
    const char *everyone[1] = {"everyone"}, *secret[1] = {"secret"}, *intl[1] = {"internal"};
    acl_label_filter only_internal = {internal, 1, NULL, 0}, want_internal = {NULL, 0, internal, 1},
                     none = {nothing, 1, nothing, 1}, unlabeled = {nothing, 0, NULL, 0};
    const acl_label_filter *filters[4] = {&only_internal, &want_internal, &none, &unlabeled};
    const size_t expect[4] = {5, 3, 0, 2};
    float q[DIM];
    vindex *vi;
    ctx_error err;

    dir = tu_tmpdir("vlabels");
    st = tu_store(dir);
    source = tu_source_with_user(st, "user:lab@t.test", &ic, &rstats);
    cr_assert_eq(store_begin(st, &err), 0);
    for (int d = 0; d < 1205; d++) {
        /* 1,200 secret, 3 internal, 2 unlabeled; the secret ones match best. */
        ctx_acl acl = {everyone, 1, NULL, 0, d < 1200 ? secret : intl, d < 1203};
        const char *body = d < 1200 ? "zebra zebra zebra stripes" : "zebra crossing notes";
        char id[16];
        snprintf(id, sizeof id, "%s%d", d < 1200 ? "secret" : d < 1203 ? "internal" : "plain", d);
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    {
        embed_cfg c = {0};
        c.dim = DIM;
        cr_assert_eq(embed_open(&c, &emb, &err), 0);
        cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
    }
    vi = open_index();
    embed_hash("zebra zebra zebra stripes", 25, DIM, q);
    for (int f = 0; f < 4; f++) {
        search_opts so = {0};
        vsearch_opts vo = {0};
        hybrid_opts ho = {0};
        search_result r;

        so.k = vo.k = ho.k = 10;
        so.labels = vo.labels = ho.labels = filters[f];
        cr_assert_eq(search_lexical(store_db(st), "lab@t.test", "zebra", &so, &r, &err), 0);
        cr_assert_eq(r.n, expect[f], "lexical, filter %d: %zu hits", f, r.n);
        cr_assert_eq(titles_with(&r, "secret"), 0);
        search_result_free(&r);
        cr_assert_eq(vsearch(store_db(st), vi, "lab@t.test", q, &vo, &r, NULL, &err), 0);
        cr_assert_eq(r.n, expect[f], "vector, filter %d: %zu hits", f, r.n);
        cr_assert_eq(titles_with(&r, "secret"), 0);
        search_result_free(&r);
        cr_assert_eq(hybrid_search(store_db(st), vi, emb, "lab@t.test", "zebra stripes", &ho, &r,
                                   &err), 0);
        cr_assert_eq(r.n, expect[f], "hybrid, filter %d: %zu hits", f, r.n);
        cr_assert_eq(titles_with(&r, "secret"), 0);
        if (f == 1)
            cr_assert_eq(titles_with(&r, "internal"), 3);
        search_result_free(&r);
    }
    /* Without a filter the secret ones are what ranks first. */
    {
        search_opts so = {0};
        search_result r;
        so.k = 10;
        cr_assert_eq(search_lexical(store_db(st), "lab@t.test", "zebra", &so, &r, &err), 0);
        cr_assert_eq(titles_with(&r, "secret"), 10);
        search_result_free(&r);
    }
    vindex_free(vi);
    finish();
}

/* vanswer - every hit's chunk id and score (to the bit) as text (new). */
static char *vanswer(const search_result *r)
{
    ctx_buf b = CTX_BUF_INIT;

    cr_assert_eq(ctx_buf_printf(&b, "%zu:", r->n), 0);
    for (size_t i = 0; i < r->n; i++)
        cr_assert_eq(ctx_buf_printf(&b, " %lld/%a", (long long)r->hits[i].chunk_id,
                                    r->hits[i].score),
                     0);
    return ctx_buf_steal(&b);
}

#define FV_QUERIES 20

/*
 * fv_answers - user's answers to FV_QUERIES fixed queries: the vector leg
 * under the exact plan and under the automatic plan made to leave it
 * (exact_max 1: the partition's lists, or without a partition the exact
 * scan again, never the graph), and hybrid. plans[] gets the automatic
 * plan of each.
 */
static void fv_answers(vindex *vi, const char *user, char *out[FV_QUERIES][3], int *plans)
{
    ctx_error err;

    for (int i = 0; i < FV_QUERIES; i++) {
        char text[64];
        const char *t = text;
        size_t len;
        float q[DIM];
        vsearch_opts exact = {0}, leave = {0};
        hybrid_opts ho = {0};
        vsearch_stats vs;
        search_result r;

        snprintf(text, sizeof text, "word%d word%d", (i * 7) % NWORDS, (i * 11 + 3) % NWORDS);
        len = strlen(text);
        cr_assert_eq(embed_texts(emb, &t, &len, 1, q, &err), 0);
        exact.k = leave.k = ho.k = 10;
        exact.plan = VSEARCH_EXACT;
        leave.exact_max = 1;
        cr_assert_eq(vsearch(store_db(st), vi, user, q, &exact, &r, NULL, &err), 0, "%s",
                     err.text);
        out[i][0] = vanswer(&r);
        search_result_free(&r);
        cr_assert_eq(vsearch(store_db(st), vi, user, q, &leave, &r, &vs, &err), 0, "%s",
                     err.text);
        out[i][1] = vanswer(&r);
        plans[i] = vs.plan;
        search_result_free(&r);
        cr_assert_eq(hybrid_search(store_db(st), vi, emb, user, text, &ho, &r, &err), 0, "%s",
                     err.text);
        out[i][2] = vanswer(&r);
        search_result_free(&r);
    }
}

/*
 * Issue 12, part 5, on the vector leg: a user's vector and hybrid answers
 * (chunk ids, order, scores to the bit) stay the same when documents they
 * may not read are added with the same words, embedded and caught up by
 * the index, under the exact plan and the partition's (trained before
 * them: a new vector only joins its nearest list). The automatic plan
 * never takes the graph walk, whose path every vector changes.
 */
Test(vsearch, forbidden_vectors_change_no_answer, .timeout = 300)
{
    const char *zed[1] = {"user:zed@t.test"};
    ctx_acl zed_acl = {zed, 1, NULL, 0, NULL, 0};
    char *before[FV_QUERIES][3], *after[FV_QUERIES][3], *zed0[FV_QUERIES][3];
    int plans[FV_QUERIES], moved = 0;
    vindex *vi;
    ctx_error err;
    int u = 0;

    build();
    {
        ctx_principal p = {CTX_PRINCIPAL_USER, zed[0], NULL, NULL, NULL, NULL, 0};
        cr_assert_eq(store_begin(st, &err), 0);
        cr_assert_eq(store_principal_put(st, source, &p, &err), 0, "%s", err.text);
        cr_assert_eq(store_commit(st, &err), 0);
    }
    vi = open_index();
    /* a user who reads something */
    for (int in[NPRIN], n = 0; u < NUSERS; u++, n = 0) {
        closure(u, in);
        for (int d = 0; d < NDOCS; d++)
            n += may_read(d, in);
        if (n >= 20)
            break;
    }
    cr_assert_lt(u, NUSERS);

    /* no partition yet: leaving the exact plan's bound still scans exactly */
    fv_answers(vi, names[u] + 5, before, plans);
    for (int i = 0; i < FV_QUERIES; i++) {
        cr_assert_eq(plans[i], VSEARCH_EXACT, "query %d: plan %d", i, plans[i]);
        cr_assert_str_eq(before[i][1], before[i][0]);
        for (int j = 0; j < 3; j++)
            ctx_free(before[i][j]);
    }

    cr_assert_eq(vindex_partition(vi, 16, &err), 0, "%s", err.text);
    fv_answers(vi, names[u] + 5, before, plans);
    for (int i = 0; i < FV_QUERIES; i++)
        cr_assert_eq(plans[i], VSEARCH_IVF, "query %d: plan %d", i, plans[i]);
    fv_answers(vi, zed[0] + 5, zed0, plans);

    cr_assert_eq(store_begin(st, &err), 0);
    for (int d = 0; d < 900; d++) {
        char id[16], body[160] = "";
        for (int k = 0; k < 8; k++) {
            char w[16];
            snprintf(w, sizeof w, "word%d ", rnd(NWORDS));
            strcat(body, w);
        }
        snprintf(id, sizeof id, "z%d", d);
        ctx_record r = {"s", id, id, NULL, body, strlen(body), NULL, 0, &zed_acl};
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
    cr_assert_eq(vindex_catch_up(vi, st, NULL, NULL, &err), 0, "%s", err.text);

    fv_answers(vi, names[u] + 5, after, plans);
    for (int i = 0; i < FV_QUERIES; i++)
        for (int j = 0; j < 3; j++) {
            cr_assert_str_eq(after[i][j], before[i][j], "query %d, %s", i,
                             j == 0 ? "exact" : j == 1 ? "partition" : "hybrid");
            ctx_free(after[i][j]);
            ctx_free(before[i][j]);
        }
    /* zed reads the new ones: his answers did move */
    fv_answers(vi, zed[0] + 5, after, plans);
    for (int i = 0; i < FV_QUERIES; i++) {
        moved += strcmp(after[i][0], zed0[i][0]) != 0;
        for (int j = 0; j < 3; j++) {
            ctx_free(after[i][j]);
            ctx_free(zed0[i][j]);
        }
    }
    cr_assert_eq(moved, FV_QUERIES, "zed's answers moved for %d of %d", moved, FV_QUERIES);
    vindex_free(vi);
    finish();
}

/*
 * Vector answers are collapsed per document when asked (every interface
 * asks: per_doc 1): documents long enough for several chunks, each chunk
 * near the query, give k distinct documents, where without collapsing the
 * same documents fill several places.
 */
Test(vsearch, vector_answers_collapse_per_document)
{
    const char *everyone[1] = {"everyone"};
    ctx_acl acl = {everyone, 1, NULL, 0, NULL, 0};
    vsearch_opts vo = {0};
    search_result r;
    float q[DIM];
    vindex *vi;
    ctx_error err;
    size_t dups = 0;

    dir = tu_tmpdir("vperdoc");
    st = tu_store(dir);
    source = tu_source_with_user(st, "user:reader@t.test", &ic, &rstats);
    ic.chunk.max_tokens = 16; /* several chunks a document */
    ic.chunk.overlap_tokens = 0;
    cr_assert_eq(store_begin(st, &err), 0);
    for (int d = 0; d < 30; d++) {
        char id[16], body[2048] = "";
        for (int c = 0; c < 6; c++)
            strcat(body, "harbor lantern harbor lantern ledger harbor lantern meadow. ");
        snprintf(id, sizeof id, "long%d", d);
        ctx_record rec = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    {
        embed_cfg c = {0};
        c.dim = DIM;
        cr_assert_eq(embed_open(&c, &emb, &err), 0);
        cr_assert_eq(embed_run(st, emb, 0, NULL, NULL, &err), 0, "%s", err.text);
    }
    vi = open_index();
    embed_hash("harbor lantern", 14, DIM, q);
    vo.k = 10;
    cr_assert_eq(vsearch(store_db(st), vi, "reader@t.test", q, &vo, &r, NULL, &err), 0);
    cr_assert_eq(r.n, 10);
    for (size_t i = 0; i < r.n; i++)
        for (size_t j = 0; j < i; j++)
            dups += r.hits[i].doc_id == r.hits[j].doc_id;
    cr_assert_gt(dups, 0, "without collapsing, documents repeat (the test means something)");
    search_result_free(&r);
    vo.per_doc = 1;
    cr_assert_eq(vsearch(store_db(st), vi, "reader@t.test", q, &vo, &r, NULL, &err), 0);
    cr_assert_eq(r.n, 10, "k distinct documents");
    for (size_t i = 0; i < r.n; i++)
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(r.hits[i].doc_id, r.hits[j].doc_id, "hits %zu and %zu", i, j);
    search_result_free(&r);
    /*
     * Hybrid's legs hand over ranks only, read for the fused answer: a
     * document deleted after the vector index caught up (not caught up
     * again here) is passed over, and k distinct live documents still come.
     */
    cr_assert_eq(store_begin(st, &err), 0);
    for (int d = 0; d < 30; d += 2) {
        char id[16];
        snprintf(id, sizeof id, "long%d", d);
        cr_assert_eq(ingest_delete(&ic, "s", id, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    for (int w = 0; w < 2; w++) {
        hybrid_opts ho = {0};
        ho.k = 10;
        ho.per_doc = 1;
        ho.w_lexical = w ? 0.01 : 1; /* the vector leg's ranks lead, then the lexical's */
        ho.w_vector = w ? 1 : 0.01;
        cr_assert_eq(hybrid_search(store_db(st), vi, emb, "reader@t.test", "harbor lantern",
                                   &ho, &r, &err), 0, "%s", err.text);
        cr_assert_eq(r.n, 10, "k distinct live documents (%zu, w %d)", r.n, w);
        for (size_t i = 0; i < r.n; i++) {
            cr_assert(r.hits[i].title && atoi(r.hits[i].title + 4) % 2,
                      "deleted document %s served", r.hits[i].title);
            cr_assert(r.hits[i].text, "hit %zu has its text", i);
            for (size_t j = 0; j < i; j++)
                cr_assert_neq(r.hits[i].doc_id, r.hits[j].doc_id, "hits %zu and %zu", i, j);
        }
        search_result_free(&r);
    }
    vindex_free(vi);
    finish();
}
