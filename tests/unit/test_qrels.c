/*
 * test_qrels.c - the questions file of `ctxgate eval` (TSV and JSON lines,
 * and every way a line can be wrong) and the metrics, against figures
 * worked out by hand.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "retrieval/qrels.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

static void parse_ok(const char *text, const char *source, qrels *q)
{
    ctx_error err;
    int rc = qrels_parse(text, strlen(text), source, q, &err);
    cr_assert_eq(rc, CTX_OK, "%s", err.text);
}

/* parse_fails - the parse fails with CTX_EINVAL and a message holding want. */
static void parse_fails(const char *text, size_t len, const char *source, const char *want)
{
    qrels q;
    ctx_error err;
    int rc = qrels_parse(text, len, source, &q, &err);

    cr_assert_eq(rc, CTX_EINVAL, "parsed: %s", text);
    cr_assert(strstr(err.text, want), "\"%s\" lacks \"%s\"", err.text, want);
    qrels_free(&q);
}

Test(qrels, tsv_with_bare_ids_and_a_source)
{
    qrels q;

    parse_ok("# the kit's layout\n"
             "\n"
             "How do I stash?\tgit-stash, user-manual,,git-stash\r\n"
             "  Who wrote this line?  \tgit-blame\n", "gitdocs", &q);
    cr_assert_eq(q.n, 2);
    cr_assert_str_eq(q.v[0].question, "How do I stash?");
    cr_assert_eq(q.v[0].line, 3);
    cr_assert_eq(q.v[0].nrelevant, 2, "a repeated id counts once, empty ones not at all");
    cr_assert_str_eq(q.v[0].relevant[0], "gitdocs:git-stash");
    cr_assert_str_eq(q.v[0].relevant[1], "gitdocs:user-manual");
    cr_assert_str_eq(q.v[1].question, "Who wrote this line?");
    cr_assert_eq(q.v[1].line, 4);
    cr_assert_str_eq(q.v[1].relevant[0], "gitdocs:git-blame");
    qrels_free(&q);
}

Test(qrels, tsv_with_source_ids)
{
    qrels q;

    parse_ok("q one\twiki:pages/Home:v2,docs:a.md\n", NULL, &q);
    cr_assert_eq(q.n, 1);
    cr_assert_eq(q.v[0].nrelevant, 2);
    cr_assert_str_eq(q.v[0].relevant[0], "wiki:pages/Home:v2", "the first ':' ends the source");
    cr_assert_str_eq(q.v[0].relevant[1], "docs:a.md");
    qrels_free(&q);
}

Test(qrels, json_lines)
{
    qrels q;

    parse_ok("{\"question\": \"where is the VPN guide?\", \"relevant\": [\"docs:vpn.md\"]}\n"
             "# a comment\n"
             "{\"relevant\": [\"wiki:b\"], \"question\": \"second\"}\n", NULL, &q);
    cr_assert_eq(q.n, 2);
    cr_assert_eq(q.v[1].line, 3);
    cr_assert_str_eq(q.v[1].relevant[0], "wiki:b");
    qrels_free(&q);
    parse_ok("{\"question\": \"where is the VPN guide?\", \"relevant\": [\"vpn.md\"]}\n"
             "{\"relevant\": [\"a.md\", \"b, c.md\"], \"question\": \"second\"}", "docs", &q);
    cr_assert_eq(q.n, 2);
    cr_assert_str_eq(q.v[0].question, "where is the VPN guide?");
    cr_assert_str_eq(q.v[0].relevant[0], "docs:vpn.md");
    cr_assert_eq(q.v[1].line, 2);
    cr_assert_eq(q.v[1].nrelevant, 2);
    cr_assert_str_eq(q.v[1].relevant[1], "docs:b, c.md", "JSON ids may hold commas");
    qrels_free(&q);
}

Test(qrels, bad_lines_name_the_line_and_the_fix)
{
    static const char bad_utf8[] = "q\tdocs:a\n\xff\xfe\tdocs:b\n";
    static const char nul[] = "q\tdocs:a\nq\0x\tdocs:b\n";

    parse_fails("q\tdocs:a\n\t docs:b\n", 19, NULL, "line 2: empty question");
    parse_fails("q\tdocs:a\nq2\t , ,\n", 17, NULL, "line 2: no relevant ids");
    parse_fails("q\tgit-stash\n", 12, NULL, "line 1: id \"git-stash\" names no source");
    parse_fails("q\tgit-stash\n", 12, NULL, "--source");
    parse_fails("just a question\n", 16, NULL, "line 1: unknown format");
    parse_fails("q\tdocs:a\nno tab here\n", 21, NULL, "line 2: no TAB");
    parse_fails("q\tdocs:a\textra\n", 15, NULL, "line 1: more than one TAB");
    parse_fails("{\"question\": \"q\", \"relevant\": [\"docs:a\"]}\n{\"question\": \"q2\",\n",
                62, NULL, "line 2: bad JSON");
    parse_fails("{\"question\": \"q\", \"relevant\": [\"docs:a\"]}\nq2\tdocs:b\n", 53, NULL,
                "line 2: not a JSON object, but line 1");
    parse_fails("{\"question\": \"q\", \"relevent\": [\"docs:a\"]}\n", 43, NULL,
                "line 1: unknown key \"relevent\"");
    parse_fails("{\"question\": \"  \", \"relevant\": [\"docs:a\"]}\n", 43, NULL,
                "line 1: empty question");
    parse_fails("{\"question\": \"q\", \"relevant\": []}\n", 34, NULL,
                "line 1: \"relevant\" must be a non-empty array");
    parse_fails("{\"question\": \"q\", \"relevant\": [\"docs:a\", 7]}\n", 45, NULL,
                "line 1: relevant[1]");
    parse_fails("{\"question\": 3, \"relevant\": [\"docs:a\"]}\n", 39, NULL,
                "\"question\" must be a string");
    parse_fails("[\"q\", \"docs:a\"]\n", 16, NULL, "line 1: unknown format");
    parse_fails(bad_utf8, sizeof bad_utf8 - 1, NULL, "line 2: not UTF-8");
    parse_fails(nul, sizeof nul - 1, NULL, "line 2: holds a NUL byte");
    parse_fails("# only a comment\n\n", 18, NULL, "no questions");
    parse_fails("", 0, NULL, "no questions");
    parse_fails("q\ta\n", 4, "bad:source", "must be a source's name");
}

Test(qrels, load_names_the_file)
{
    qrels q;
    ctx_error err;

    cr_assert_eq(qrels_load("/nonexistent/qrels.tsv", NULL, &q, &err), CTX_EIO);
    cr_assert(strstr(err.text, "/nonexistent/qrels.tsv"), "%s", err.text);
    qrels_free(&q);
}

static void score(const char *const *rel, size_t nrel, const char *const *ranked, size_t n,
                  int k, qrels_scores *s)
{
    qrels_score(rel, nrel, ranked, n, k, s);
}

Test(qrels, two_relevant_at_ranks_one_and_three)
{
    static const char *const rel[] = {"s:a", "s:b"};
    static const char *const ranked[] = {"s:a", "s:x", "s:b", "s:y"};
    qrels_scores s;

    score(rel, 2, ranked, 4, 10, &s);
    /* DCG 1/log2(2) + 1/log2(4) = 1.5; ideal 1 + 1/log2(3). */
    cr_assert(NEAR(s.ndcg, 1.5 / (1.0 + 1.0 / log2(3.0))), "ndcg %f", s.ndcg);
    cr_assert(fabs(s.ndcg - 0.9197207) < 1e-6, "ndcg %f", s.ndcg);
    cr_assert(NEAR(s.rr, 1.0) && NEAR(s.found, 1.0) && NEAR(s.recall, 1.0));
    cr_assert_eq(s.hits, 2);
    /* At k = 2 only a counts; the ideal is still over two places. */
    score(rel, 2, ranked, 4, 2, &s);
    cr_assert(NEAR(s.ndcg, 1.0 / (1.0 + 1.0 / log2(3.0))), "ndcg %f", s.ndcg);
    cr_assert(NEAR(s.recall, 0.5), "recall %f", s.recall);
}

Test(qrels, reciprocal_rank_recall_and_found)
{
    static const char *const one[] = {"s:a"};
    static const char *const three[] = {"s:a", "s:b", "s:c"};
    static const char *const ranked[] = {"s:x", "s:y", "s:a"};
    static const char *const r2[] = {"s:x", "s:a"};
    qrels_scores s;

    score(one, 1, ranked, 3, 10, &s);
    cr_assert(NEAR(s.rr, 1.0 / 3.0) && NEAR(s.ndcg, 0.5) && NEAR(s.recall, 1.0));
    cr_assert(NEAR(s.found, 1.0));
    /* Outside the top k: nothing. */
    score(one, 1, ranked, 3, 2, &s);
    cr_assert(s.rr == 0 && s.ndcg == 0 && s.recall == 0 && s.found == 0 && s.hits == 0);
    /* One of three at rank 2: DCG 1/log2(3), ideal 1 + 1/log2(3) + 1/2. */
    score(three, 3, r2, 2, 10, &s);
    cr_assert(NEAR(s.rr, 0.5));
    cr_assert(NEAR(s.recall, 1.0 / 3.0));
    cr_assert(NEAR(s.ndcg, (1.0 / log2(3.0)) / (1.5 + 1.0 / log2(3.0))), "ndcg %f", s.ndcg);
    /* Nothing ranked. */
    score(three, 3, NULL, 0, 10, &s);
    cr_assert(s.rr == 0 && s.ndcg == 0 && s.recall == 0 && s.found == 0);
}

Test(qrels, duplicates_collapse_to_their_first_place)
{
    static const char *const rel[] = {"s:a", "s:b", "s:a"};
    static const char *const ranked[] = {"s:x", "s:x", "s:x", "s:a", "s:a", "s:b"};
    qrels_scores s;

    /* Distinct: x, a, b. a is second, b third. */
    score(rel, 3, ranked, 6, 10, &s);
    cr_assert(NEAR(s.rr, 0.5), "rr %f", s.rr);
    cr_assert_eq(s.hits, 2);
    cr_assert(NEAR(s.recall, 1.0), "a repeated relevant id counts once: %f", s.recall);
    cr_assert(NEAR(s.ndcg, (1.0 / log2(3.0) + 0.5) / (1.0 + 1.0 / log2(3.0))), "ndcg %f",
              s.ndcg);
    /* k = 2 is x and a, not x three times. */
    score(rel, 3, ranked, 6, 2, &s);
    cr_assert_eq(s.hits, 1);
    cr_assert(NEAR(s.recall, 0.5));
}

Test(qrels, no_relevant_scores_zero)
{
    static const char *const ranked[] = {"s:a"};
    qrels_scores s;

    score(NULL, 0, ranked, 1, 10, &s);
    cr_assert(s.rr == 0 && s.ndcg == 0 && s.recall == 0 && s.found == 0);
}

Test(qrels, paired_comparison_and_its_interval)
{
    static const double zero[4] = {0, 0, 0, 0}, one[4] = {1, 1, 1, 1};
    static const double a[6] = {0.2, 0.5, 1.0, 0.0, 0.3, 0.6};
    static const double b[6] = {0.4, 0.5, 0.0, 0.0, 0.9, 0.7};
    qrels_paired p, again;

    /* Every question better by 1: the interval is the point. */
    qrels_compare(zero, one, 4, &p);
    cr_assert_eq(p.n, 4);
    cr_assert_eq(p.better, 4);
    cr_assert_eq(p.worse, 0);
    cr_assert_float_eq(p.diff, 1.0, 1e-12);
    cr_assert_float_eq(p.lo, 1.0, 1e-12);
    cr_assert_float_eq(p.hi, 1.0, 1e-12);

    /* Mixed: three better, one worse, two tied; the mean is -0.1/6 and
     * the interval, which resamples the pairs, spans both signs. */
    qrels_compare(a, b, 6, &p);
    cr_assert_eq(p.better, 3);
    cr_assert_eq(p.worse, 1);
    cr_assert_float_eq(p.mean_a, 2.6 / 6, 1e-12);
    cr_assert_float_eq(p.mean_b, 2.5 / 6, 1e-12);
    cr_assert_float_eq(p.diff, -0.1 / 6, 1e-12);
    cr_assert(p.lo < 0 && p.hi > 0 && p.lo <= p.diff && p.diff <= p.hi, "[%f, %f]", p.lo, p.hi);
    /* No resample's mean is past the worst or best pair (-1, +0.6). */
    cr_assert(p.lo >= -1.0 && p.hi <= 0.6, "[%f, %f]", p.lo, p.hi);
    /* The same scores, the same interval. */
    qrels_compare(a, b, 6, &again);
    cr_assert_float_eq(again.lo, p.lo, 0);
    cr_assert_float_eq(again.hi, p.hi, 0);

    /* Nothing to compare: all zeros. */
    qrels_compare(a, b, 0, &p);
    cr_assert_eq(p.n, 0);
    cr_assert_float_eq(p.diff, 0.0, 0);
    cr_assert_float_eq(p.lo, 0.0, 0);
}
