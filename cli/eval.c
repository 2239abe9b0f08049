/*
 * eval.c - `ctxgate eval`: how well the deployment answers a set of
 * questions with known relevant documents, as one user (through one agent),
 * in one search mode. Operators run it to judge their own data and a change
 * of model; the numbers are per distinct document, as answers show them.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../indexer/store_read.h"
#include "../retrieval/explain.h"
#include "../retrieval/fresh.h"
#include "../retrieval/qrels.h"
#include "cli.h"

/* What became of one relevant id for this user. */
enum { REF_READABLE, REF_UNREADABLE, REF_MISSING };

/* One question's answer and scores. */
typedef struct eval_row {
    char **ranked;          /* the first k distinct documents, "source:external_id"; owned */
    size_t nranked;
    int *reach;             /* per relevant id: REF_*; owned */
    qrels_scores sc;
    int skipped;            /* --readable and no relevant document readable: not scored */
} eval_row;

/* granted - 1 when l names s or holds "*" (a grant's list). */
static int granted(const ctx_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s) || !strcmp(l->v[i], "*"))
            return 1;
    return 0;
}

/*
 * reach_of - whether user (through agent) may read the document ref names
 * now, as explain (and so search) decides it: REF_* or a negated CTX_* code.
 */
static int reach_of(ctx_store *st, const ctx_config *cfg, const char *user, const char *agent,
                    const char *ref, ctx_error *err)
{
    json_t *a = NULL;
    int rc = explain_access(store_db(st), cfg, user, agent, ref, ctx_now_ms(), &a, err);

    if (rc == CTX_ENOTFOUND)
        return REF_MISSING;
    if (rc)
        return -rc;
    if (json_is_true(json_object_get(json_object_get(a, "document"), "deleted")))
        rc = REF_MISSING;
    else
        rc = json_is_true(json_object_get(a, "readable")) ? REF_READABLE : REF_UNREADABLE;
    json_decref(a);
    return rc;
}

/*
 * collapse - res's hits as the first k distinct documents, each named
 * "source:external_id" (new strings into row->ranked).
 */
static int collapse(ctx_store *st, const search_result *res, int k, eval_row *row,
                    ctx_error *err)
{
    if (!(row->ranked = ctx_calloc((size_t)k, sizeof *row->ranked)))
        return ctx_error_set(err, CTX_ENOMEM, "eval: out of memory");
    for (size_t i = 0; i < res->n && row->nranked < (size_t)k; i++) {
        char *source, *ext_id;
        ctx_buf b = CTX_BUF_INIT;
        size_t j;
        int rc = store_doc_name(st, res->hits[i].doc_id, &source, &ext_id, NULL);

        if (rc == CTX_ENOMEM)
            return ctx_error_set(err, CTX_ENOMEM, "eval: out of memory");
        if (rc)
            continue; /* gone since the search: it was not there to be seen */
        rc = ctx_buf_printf(&b, "%s:%s", source, ext_id ? ext_id : "");
        ctx_free(source);
        ctx_free(ext_id);
        if (rc) {
            ctx_buf_free(&b);
            return ctx_error_set(err, CTX_ENOMEM, "eval: out of memory");
        }
        for (j = 0; j < row->nranked && strcmp(row->ranked[j], b.data); j++)
            ;
        if (j < row->nranked)
            ctx_buf_free(&b); /* another chunk of a document already ranked */
        else
            row->ranked[row->nranked++] = ctx_buf_steal(&b);
    }
    return CTX_OK;
}

static json_t *strs_json(char *const *v, size_t n, const int *reach, int want)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        if (!reach || reach[i] == want)
            json_array_append_new(a, json_string(v[i]));
    return a;
}

/* A question cut to width columns for the table, not inside a UTF-8 sequence. */
static void short_question(const char *q, char *out, size_t width)
{
    size_t n = strlen(q);

    if (n <= width) {
        snprintf(out, width + 1, "%s", q);
        return;
    }
    n = width - 3;
    while (n && ((unsigned char)q[n] & 0xC0) == 0x80)
        n--;
    snprintf(out, width + 1, "%.*s...", (int)n, q);
}

/*
 * score_row - row's scores against q's relevant documents: all of them, or
 * with readable set only those the user may read (none: the row is skipped,
 * since no answer could score on it for this user).
 */
static int score_row(const qrels_item *q, eval_row *row, int readable, int k, ctx_error *err)
{
    const char **rel;
    size_t n = 0;

    if (!readable) {
        qrels_score((const char *const *)q->relevant, q->nrelevant,
                    (const char *const *)row->ranked, row->nranked, k, &row->sc);
        return CTX_OK;
    }
    if (!(rel = ctx_calloc(q->nrelevant, sizeof *rel)))
        return ctx_error_set(err, CTX_ENOMEM, "eval: out of memory");
    for (size_t j = 0; j < q->nrelevant; j++)
        if (row->reach[j] == REF_READABLE)
            rel[n++] = q->relevant[j];
    row->skipped = n == 0;
    qrels_score(rel, n, (const char *const *)row->ranked, row->nranked, k, &row->sc);
    ctx_free(rel);
    return CTX_OK;
}

/*
 * compare_load - the earlier run at path (`ctxgate eval --json` output),
 * checked to be scored as this one is (same k, same --readable). NULL with
 * err set when it is not.
 */
static json_t *compare_load(const char *path, int k, int readable, ctx_error *err)
{
    json_error_t je;
    json_t *run = json_load_file(path, 0, &je), *per;

    if (!run) {
        ctx_error_set(err, CTX_EINVAL, "--compare %s: %s (line %d); give the output of an"
                      " earlier `ctxgate eval --json`", path, je.text, je.line);
        return NULL;
    }
    per = json_object_get(run, "per_question");
    if (!json_is_array(per) || !json_is_integer(json_object_get(run, "k"))) {
        ctx_error_set(err, CTX_EINVAL, "--compare %s: no \"per_question\" or \"k\"; give the"
                      " output of an earlier `ctxgate eval --json`", path);
    } else if (json_integer_value(json_object_get(run, "k")) != k) {
        ctx_error_set(err, CTX_EINVAL, "--compare %s: scored at k %lld, this run at k %d;"
                      " compare runs of the same --k", path,
                      (long long)json_integer_value(json_object_get(run, "k")), k);
    } else if (json_is_true(json_object_get(run, "readable_only")) != readable) {
        ctx_error_set(err, CTX_EINVAL, "--compare %s: %s --readable, this run %s; compare runs"
                      " judged alike", path, readable ? "scored without" : "scored with",
                      readable ? "with it" : "without it");
    } else {
        return run;
    }
    json_decref(run);
    return NULL;
}

static const char *const compare_metric[4] = {"ndcg", "mrr", "found", "recall"};

static double row_metric(const eval_row *row, int m)
{
    return m == 0 ? row->sc.ndcg : m == 1 ? row->sc.rr : m == 2 ? row->sc.found : row->sc.recall;
}

/*
 * compare_runs - this run's scored questions paired with the earlier run's
 * (by question text; a question not scored in both is left out, counted
 * in *unmatched): out[m] for each of compare_metric.
 */
static int compare_runs(const json_t *run, const qrels *qr, const eval_row *rows,
                        qrels_paired out[4], size_t *unmatched, ctx_error *err)
{
    const json_t *per = json_object_get(run, "per_question");
    double *v = ctx_calloc(qr->n ? qr->n * 8 : 1, sizeof *v);
    size_t n = 0;

    if (!v)
        return ctx_error_set(err, CTX_ENOMEM, "eval: out of memory");
    *unmatched = 0;
    for (size_t i = 0; i < qr->n; i++) {
        const json_t *hit = NULL, *e;
        size_t j;
        if (rows[i].skipped) {
            continue;
        }
        json_array_foreach(per, j, e) {
            const char *q = json_string_value(json_object_get(e, "question"));
            if (q && !strcmp(q, qr->v[i].question) &&
                json_is_true(json_object_get(e, "scored"))) {
                hit = e;
                break;
            }
        }
        if (!hit) {
            (*unmatched)++;
            continue;
        }
        for (int m = 0; m < 4; m++) {
            v[m * qr->n + n] = json_number_value(json_object_get(hit, compare_metric[m]));
            v[(4 + m) * qr->n + n] = row_metric(&rows[i], m);
        }
        n++;
    }
    for (int m = 0; m < 4; m++)
        qrels_compare(v + m * qr->n, v + (4 + m) * qr->n, n, &out[m]);
    ctx_free(v);
    return CTX_OK;
}

static json_t *compare_json(const char *path, const qrels_paired pr[4], size_t unmatched)
{
    json_t *o = json_pack("{s:s,s:I,s:I}", "file", path, "pairs", (json_int_t)pr[0].n,
                          "unmatched", (json_int_t)unmatched);
    for (int m = 0; m < 4; m++)
        json_object_set_new(o, compare_metric[m],
                            json_pack("{s:f,s:f,s:f,s:f,s:f,s:I,s:I}", "this", pr[m].mean_b,
                                      "that", pr[m].mean_a, "diff", pr[m].diff, "lo", pr[m].lo,
                                      "hi", pr[m].hi, "better", (json_int_t)pr[m].better,
                                      "worse", (json_int_t)pr[m].worse));
    return o;
}

static void compare_print(const char *path, const qrels_paired pr[4], size_t unmatched, int k)
{
    static const char *const label[4] = {"nDCG", "MRR", "found", "recall"};
    char name[24];

    printf("\ncompared with %s: %zu questions scored in both", path, pr[0].n);
    if (unmatched)
        printf(" (%zu of this run's not in it, left out)", unmatched);
    printf("\n%-10s %6s %6s %7s  %-18s %6s %5s\n", "", "this", "that", "diff", "95% interval",
           "better", "worse");
    for (int m = 0; m < 4; m++) {
        snprintf(name, sizeof name, "%s@%d", label[m], k);
        printf("%-10s %6.3f %6.3f %+7.3f  [%+.3f, %+.3f]   %6zu %5zu\n", name, pr[m].mean_b,
               pr[m].mean_a, pr[m].diff, pr[m].lo, pr[m].hi, pr[m].better, pr[m].worse);
    }
    if (pr[0].lo <= 0 && pr[0].hi >= 0)
        printf("nDCG@%d's interval holds 0: these questions cannot tell the two runs apart\n", k);
    else
        printf("nDCG@%d: this run is %s, beyond what chance among these questions explains"
               " (95%%)\n", k, pr[0].diff > 0 ? "better" : "worse");
}

int cli_eval(int argc, char **argv)
{
    static const struct option lo[] = {{"qrels", required_argument, NULL, 'q'},
                                       {"as", required_argument, NULL, 'u'},
                                       {"agent", required_argument, NULL, 'a'},
                                       {"mode", required_argument, NULL, 'm'},
                                       {"k", required_argument, NULL, 'k'},
                                       {"source", required_argument, NULL, 's'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"readable", no_argument, NULL, 'r'},
                                       {"compare", required_argument, NULL, 'c'},
                                       {NULL, 0, NULL, 0}};
    const char *path = NULL, *user = NULL, *agent = NULL, *mode = "hybrid", *source = NULL;
    const char *against = NULL;
    json_t *earlier = NULL;
    qrels_paired pr[4];
    size_t unmatched = 0;
    const char **srcs = NULL;
    size_t nsrcs = 0, nrel = 0, nunread = 0, nmissing = 0, ndegraded = 0, nscored = 0;
    int c, k = 10, as_json = 0, readable = 0, rc, status = 1;
    double sum_found = 0, sum_rr = 0, sum_ndcg = 0, sum_recall = 0, denom;
    qrels qr;
    ctx_config cfg;
    ctx_store *st = NULL;
    ctx_error err;
    fresh_report fr;
    acl_label_filter lf;
    search_opts so;
    vindex *vi = NULL;
    embed_provider *emb = NULL;
    eval_row *rows = NULL;
    const ctx_agent_grant *g = NULL;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 'q')
            path = optarg;
        else if (c == 'u')
            user = optarg;
        else if (c == 'a')
            agent = optarg;
        else if (c == 'm')
            mode = optarg;
        else if (c == 'k')
            k = atoi(optarg);
        else if (c == 's')
            source = optarg;
        else if (c == 'j')
            as_json = 1;
        else if (c == 'r')
            readable = 1;
        else if (c == 'c')
            against = optarg;
        else
            return 2;
    }
    if (!path || !user || optind != argc) {
        fprintf(stderr, "ctxgate: eval: usage: %s\n", CLI_EVAL_USAGE);
        return 2;
    }
    if (k < 1 || k > 1000) {
        fprintf(stderr, "ctxgate: eval: --k must be 1..1000\n");
        return 2;
    }
    if (strcmp(mode, "lexical") && strcmp(mode, "vector") && strcmp(mode, "hybrid")) {
        fprintf(stderr, "ctxgate: eval: --mode must be lexical, vector or hybrid\n");
        return 2;
    }
    memset(&fr, 0, sizeof fr);
    if ((rc = qrels_load(path, source, &qr, &err))) {
        fprintf(stderr, "ctxgate: eval: %s\n", err.text);
        qrels_free(&qr);
        return rc == CTX_EINVAL ? 2 : 1;
    }
    if ((rc = cli_open(&cfg, &st, 1, &err)))
        goto fail;
    /* An agent's grant as the service applies it: its sources, its labels, its max_k. */
    if (agent) {
        if (!(g = ctx_config_agent(&cfg, agent))) {
            fprintf(stderr, "ctxgate: eval: agent \"%s\" is not registered in the config's"
                    " \"agents\"; register it or leave out --agent\n", agent);
            status = 2;
            goto done;
        }
        if (k > g->max_k) {
            fprintf(stderr, "ctxgate: eval: agent %s may ask for at most %lld results: k is"
                    " %lld\n", agent, (long long)g->max_k, (long long)g->max_k);
            k = (int)g->max_k;
        }
        if (!(srcs = ctx_calloc(cfg.nsources + 1, sizeof *srcs))) {
            rc = ctx_error_set(&err, CTX_ENOMEM, "eval: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < cfg.nsources; i++)
            if (granted(&g->sources, cfg.sources[i].name))
                srcs[nsrcs++] = cfg.sources[i].name;
    }
    if (against && !(earlier = compare_load(against, k, readable, &err))) {
        fprintf(stderr, "ctxgate: eval: %s\n", err.text);
        status = 2;
        goto done;
    }
    /* Sources whose permissions are too old are withheld, as in search. */
    if ((rc = fresh_check(store_db(st), &cfg, ctx_now_ms(), &fr, &err)))
        goto fail;
    memset(&lf, 0, sizeof lf);
    if (g && !granted(&g->labels, "*")) {
        static const char *const no_label[1] = {NULL};
        lf.allowed = g->labels.n ? (const char *const *)g->labels.v : no_label;
        lf.nallowed = g->labels.n;
    }
    lf.withheld = fr.withheld;
    lf.nwithheld = fr.nwithheld;
    memset(&so, 0, sizeof so);
    so.k = k;
    so.per_doc = 1;
    so.sources = g ? srcs : NULL;
    so.nsources = nsrcs;
    so.labels = lf.allowed || lf.nwithheld ? &lf : NULL;
    if (strcmp(mode, "lexical")) {
        if ((rc = cli_open_vectors(&cfg, st, &vi, &emb, &err)))
            goto fail;
        if (!emb)
            fprintf(stderr, "ctxgate: eval: no embedding model yet (run `ctxgate embed`): the"
                    " vector leg finds nothing\n");
    }
    if ((rc = store_read_prepare(st, "eval", &err)))
        goto fail;
    if (!(rows = ctx_calloc(qr.n, sizeof *rows))) {
        rc = ctx_error_set(&err, CTX_ENOMEM, "eval: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < qr.n; i++) {
        const qrels_item *q = &qr.v[i];
        eval_row *row = &rows[i];
        search_result res;

        if (!(row->reach = ctx_calloc(q->nrelevant, sizeof *row->reach))) {
            rc = ctx_error_set(&err, CTX_ENOMEM, "eval: out of memory");
            goto fail;
        }
        for (size_t j = 0; j < q->nrelevant; j++) {
            int r = reach_of(st, &cfg, user, agent, q->relevant[j], &err);
            if (r < 0) {
                rc = -r;
                goto fail;
            }
            row->reach[j] = r;
            nrel++;
            nunread += r == REF_UNREADABLE;
            nmissing += r == REF_MISSING;
        }
        memset(&res, 0, sizeof res);
        if (!g || nsrcs) { /* an agent granted no source finds nothing */
            const char *why = NULL;
            rc = cli_search_run(&cfg, st, vi, emb, mode, user, q->question, &so, &res, &why,
                                &err);
            ndegraded += why && (!strcmp(why, "timeout") || !strcmp(why, "embedder_error"));
            if (!rc)
                rc = collapse(st, &res, k, row, &err);
            search_result_free(&res);
            if (rc)
                goto fail;
        }
        if ((rc = score_row(q, row, readable, k, &err)))
            goto fail;
        if (row->skipped)
            continue;
        nscored++;
        sum_found += row->sc.found;
        sum_rr += row->sc.rr;
        sum_ndcg += row->sc.ndcg;
        sum_recall += row->sc.recall;
    }

    /* Means over the questions scored (all but, with --readable, the skipped). */
    denom = nscored ? (double)nscored : 1.0;
    if (earlier && (rc = compare_runs(earlier, &qr, rows, pr, &unmatched, &err)))
        goto fail;
    if (as_json) {
        json_t *per = json_array(), *root;
        for (size_t i = 0; i < qr.n; i++) {
            const qrels_item *q = &qr.v[i];
            const eval_row *row = &rows[i];
            json_array_append_new(
                per, json_pack("{s:i,s:s,s:o,s:o,s:o,s:o,s:b,s:f,s:f,s:f,s:f}", "line", q->line,
                               "question", q->question, "relevant",
                               strs_json(q->relevant, q->nrelevant, NULL, 0), "unreadable",
                               strs_json(q->relevant, q->nrelevant, row->reach,
                                         REF_UNREADABLE),
                               "missing",
                               strs_json(q->relevant, q->nrelevant, row->reach, REF_MISSING),
                               "ranked", strs_json(row->ranked, row->nranked, NULL, 0),
                               "scored", !row->skipped, "found", row->sc.found, "mrr", row->sc.rr, "ndcg",
                               row->sc.ndcg, "recall", row->sc.recall));
        }
        root = json_pack("{s:s,s:s?,s:s,s:i,s:b,s:I,s:I,s:{s:f,s:f,s:f,s:f},s:{s:I,s:I,s:I},"
                         "s:o,s:o}", "user", user, "agent", agent, "mode", mode, "k", k,
                         "readable_only", readable, "questions", (json_int_t)qr.n, "scored",
                         (json_int_t)nscored, "means", "found", sum_found / denom, "mrr",
                         sum_rr / denom, "ndcg", sum_ndcg / denom, "recall",
                         sum_recall / denom, "relevant", "total", (json_int_t)nrel,
                         "unreadable", (json_int_t)nunread, "missing", (json_int_t)nmissing,
                         "per_question", per, "withheld", fresh_withheld_json(&fr));
        if (earlier)
            json_object_set_new(root, "compare", compare_json(against, pr, unmatched));
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(root);
    } else {
        printf("%zu questions as %s%s%s, mode %s, the first %d distinct documents\n", qr.n,
               user, agent ? " through " : "", agent ? agent : "", mode, k);
        if (readable)
            printf("scored     %zu, against the relevant documents %s may read;"
                   " %zu left out, having none\n", nscored, user, qr.n - nscored);
        printf("found@%-4d %.3f\nMRR@%-6d %.3f\nnDCG@%-5d %.3f\nrecall@%-3d %.3f\n", k,
               sum_found / denom, k, sum_rr / denom, k, sum_ndcg / denom, k,
               sum_recall / denom);
        printf("relevant   %zu: %zu readable, %zu not readable by %s, %zu not in the store\n\n",
               nrel, nrel - nunread - nmissing, nunread, user, nmissing);
        printf("%5s %5s %5s %5s %6s %4s %4s  %s\n", "line", "found", "RR", "nDCG", "recall",
               "rel", "!rd", "question");
        for (size_t i = 0; i < qr.n; i++) {
            const eval_row *row = &rows[i];
            size_t bad = 0;
            char qs[64];
            for (size_t j = 0; j < qr.v[i].nrelevant; j++)
                bad += row->reach[j] != REF_READABLE;
            short_question(qr.v[i].question, qs, 60);
            if (row->skipped) {
                printf("%5d %5s %5s %5s %6s %4zu %4zu  %s\n", qr.v[i].line, "-", "-", "-", "-",
                       qr.v[i].nrelevant, bad, qs);
                continue;
            }
            printf("%5d %5.0f %5.3f %5.3f %6.3f %4zu %4zu  %s\n", qr.v[i].line, row->sc.found,
                   row->sc.rr, row->sc.ndcg, row->sc.recall, qr.v[i].nrelevant, bad, qs);
        }
        for (size_t i = 0; i < fr.n; i++)
            if (fr.v[i].withheld)
                printf("withheld: %s: %s\n", fr.v[i].name, fr.v[i].why);
        if (earlier)
            compare_print(against, pr, unmatched, k);
    }
    fflush(stdout); /* the notes after the figures, also when both go to one file */
    if (nunread && !readable)
        fprintf(stderr, "ctxgate: eval: %zu relevant documents exist but %s%s%s may not read"
                " them, so no search can find them for this user (\"!rd\"; `ctxgate explain"
                " --as %s REF` says why; --readable scores against the readable ones)\n",
                nunread, user, agent ? " through " : "", agent ? agent : "", user);
    if (ndegraded)
        fprintf(stderr, "ctxgate: eval: %zu questions could not be embedded in time (see the"
                " warnings): the lexical leg answered them alone, so these figures are not"
                " %s mode's\n", ndegraded, mode);
    if (nmissing)
        fprintf(stderr, "ctxgate: eval: %zu relevant ids name no document in the store;"
                " check them (a files source names a document by its path, e.g."
                " docs:guide/setup.md)\n", nmissing);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "ctxgate: eval: %s\n", err.text);
    status = rc == CTX_ECONFIG ? 2 : 1;
done:
    if (rows) {
        for (size_t i = 0; i < qr.n; i++) {
            for (size_t j = 0; j < rows[i].nranked; j++)
                ctx_free(rows[i].ranked[j]);
            ctx_free(rows[i].ranked);
            ctx_free(rows[i].reach);
        }
        ctx_free(rows);
    }
    json_decref(earlier);
    vindex_free(vi);
    embed_close(emb);
    fresh_report_free(&fr);
    ctx_free(srcs);
    store_close(st);
    ctx_config_free(&cfg);
    qrels_free(&qr);
    return status;
}
