/*
 * test_eval.c - `ctxgate eval` through the binary on a files source synced
 * for the run: two users of different permissions, an agent whose grant
 * leaves out a label, exact metrics for each, and a relevant page that is
 * missing or that the user may not read counted rather than fatal.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tests/lib/testutil.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-6)

static char *dir;

static void setup(void)
{
    dir = tu_tmpdir("eval");
    tu_write(dir, "ctxgate.json",
             "{\"data_dir\": \"./data\","
             " \"sources\": [{\"name\": \"pages\", \"type\": \"files\", \"path\": \"./pages\","
             "  \"extensions\": [\".json\"]},"
             "  {\"name\": \"nothing\", \"type\": \"files\", \"path\": \"./nothing\","
             "   \"enabled\": false}],"
             " \"agents\": [{\"name\": \"helper\", \"sources\": [\"pages\"]},"
             "  {\"name\": \"elsewhere\", \"sources\": [\"nothing\"]}]}");
    tu_write(dir, "pages/_principals.json",
             "{\"users\": [{\"id\": \"user:root\"}, {\"id\": \"user:ben\"}],"
             " \"groups\": [{\"id\": \"group:ops\", \"members\": [\"user:ben\", \"user:root\"]},"
             "  {\"id\": \"group:hr\", \"members\": [\"user:root\"]}]}");
    tu_write(dir, "pages/vpn.json",
             "{\"title\": \"Office VPN\", \"body\": \"Set up the wireguard tunnel to reach the"
             " office network.\", \"allow\": [\"group:ops\"]}");
    tu_write(dir, "pages/salary.json",
             "{\"title\": \"Salary bands\", \"body\": \"The salary bands of each grade and how"
             " reviews move them.\", \"allow\": [\"group:hr\"], \"labels\": [\"confidential\"]}");
    tu_write(dir, "pages/printer.json",
             "{\"title\": \"Printer\", \"body\": \"Clearing a paper jam and changing the toner"
             " cartridge.\", \"allow\": [\"group:ops\", \"group:hr\"]}");
    /* Bare ids (--source pages); the third question's second page does not exist. */
    tu_write(dir, "qrels.tsv",
             "wireguard tunnel\tvpn.json\n"
             "salary bands\tsalary.json\n"
             "# a comment, skipped\n"
             "paper jam toner\tprinter.json,missing.json\n");
}

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

/* run - the command's stdout and stderr (new) and exit status. */
static char *run(const char *args, int *status)
{
    return tu_cli(dir, args, 1, status);
}

/*
 * eval_json_with - `ctxgate eval --json` as who (and through agent), with
 * the extra arguments more, parsed (new).
 */
static json_t *eval_json_with(const char *who, const char *agent, const char *mode,
                              const char *more)
{
    char args[512];
    json_error_t jerr;
    json_t *root;
    const char *brace;
    int status;
    char *out;

    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --source pages --as %s %s%s"
             " --mode %s --json %s", dir, who, agent ? "--agent " : "", agent ? agent : "",
             mode, more);
    out = run(args, &status);
    cr_assert_eq(status, 0, "%s", out);
    brace = strchr(out, '{'); /* stderr notes may come first or after */
    cr_assert(brace, "%s", out);
    root = json_loads(brace, JSON_DISABLE_EOF_CHECK, &jerr);
    cr_assert(root, "%s: %s", jerr.text, out);
    ctx_free(out);
    return root;
}

/* eval_json - eval_json_with and no extra arguments. */
static json_t *eval_json(const char *who, const char *agent, const char *mode)
{
    return eval_json_with(who, agent, mode, "");
}

static double num(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return json_number_value(b ? json_object_get(v, b) : v);
}

static json_t *question(json_t *root, size_t i)
{
    return json_array_get(json_object_get(root, "per_question"), i);
}

static void synced(void)
{
    int status;
    char *out = run("sync", &status);
    cr_assert_eq(status, 0, "%s", out);
    ctx_free(out);
}

TestSuite(eval, .init = setup, .fini = teardown);

Test(eval, two_users_score_what_they_may_read)
{
    /* The third question: printer at rank 1 of two relevant, the other missing. */
    const double half = 1.0 / (1.0 + 1.0 / log2(3.0));
    json_t *root, *ben;

    synced();
    root = eval_json("user:root", NULL, "lexical");
    cr_assert_eq(json_integer_value(json_object_get(root, "questions")), 3);
    cr_assert_eq(json_integer_value(json_object_get(root, "k")), 10);
    cr_assert(NEAR(num(root, "means", "found"), 1.0));
    cr_assert(NEAR(num(root, "means", "mrr"), 1.0));
    cr_assert(NEAR(num(root, "means", "ndcg"), (2.0 + half) / 3.0), "%f",
              num(root, "means", "ndcg"));
    cr_assert(NEAR(num(root, "means", "recall"), 2.5 / 3.0));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(root, "relevant"),
                                                    "unreadable")), 0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(root, "relevant"),
                                                    "missing")), 1);
    cr_assert(NEAR(num(question(root, 1), "ndcg", NULL), 1.0));
    cr_assert_str_eq(json_string_value(json_array_get(
                         json_object_get(question(root, 1), "ranked"), 0)), "pages:salary.json");
    cr_assert_eq(json_integer_value(json_object_get(question(root, 2), "line")), 4);
    cr_assert_str_eq(json_string_value(json_array_get(
                         json_object_get(question(root, 2), "missing"), 0)),
                     "pages:missing.json");
    cr_assert(NEAR(num(question(root, 2), "recall", NULL), 0.5));

    /* ben may not read the salary bands: that question scores 0 for him alone. */
    ben = eval_json("user:ben", NULL, "lexical");
    cr_assert(NEAR(num(ben, "means", "found"), 2.0 / 3.0));
    cr_assert(NEAR(num(ben, "means", "mrr"), 2.0 / 3.0));
    cr_assert(NEAR(num(ben, "means", "ndcg"), (1.0 + half) / 3.0));
    cr_assert(NEAR(num(ben, "means", "recall"), 0.5));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ben, "relevant"),
                                                    "unreadable")), 1);
    cr_assert(NEAR(num(question(ben, 1), "ndcg", NULL), 0.0));
    cr_assert_str_eq(json_string_value(json_array_get(
                         json_object_get(question(ben, 1), "unreadable"), 0)),
                     "pages:salary.json");
    for (size_t i = 0; i < 3; i++) {
        size_t j;
        json_t *v;
        json_array_foreach(json_object_get(question(ben, i), "ranked"), j, v)
            cr_assert_str_neq(json_string_value(v), "pages:salary.json", "a leak");
    }
    json_decref(root);
    json_decref(ben);
}

Test(eval, readable_judges_by_what_the_user_may_read)
{
    json_t *ben, *root;
    int status;
    char args[512];
    char *out;

    synced();
    /*
     * ben may not read the salary bands: that question is left out, and the
     * printer question is judged by the printer page alone (the other id
     * names no document), so both that remain score fully.
     */
    ben = eval_json_with("user:ben", NULL, "lexical", "--readable");
    cr_assert(json_is_true(json_object_get(ben, "readable_only")));
    cr_assert_eq(json_integer_value(json_object_get(ben, "questions")), 3);
    cr_assert_eq(json_integer_value(json_object_get(ben, "scored")), 2);
    cr_assert(NEAR(num(ben, "means", "found"), 1.0));
    cr_assert(NEAR(num(ben, "means", "ndcg"), 1.0), "%f", num(ben, "means", "ndcg"));
    cr_assert(NEAR(num(ben, "means", "recall"), 1.0));
    cr_assert(json_is_false(json_object_get(question(ben, 1), "scored")));
    cr_assert(json_is_true(json_object_get(question(ben, 2), "scored")));
    /* Without it, the same answers score lower: nothing else changed. */
    root = eval_json("user:ben", NULL, "lexical");
    cr_assert_eq(json_integer_value(json_object_get(root, "scored")), 3);
    cr_assert(num(root, "means", "ndcg") < 0.9);
    json_decref(ben);
    json_decref(root);

    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --source pages --as user:ben"
             " --mode lexical --readable", dir);
    out = run(args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "scored     2, against the relevant documents user:ben may read;"
                     " 1 left out, having none"), "%s", out);
    cr_assert(strstr(out, "nDCG@10    1.000"), "%s", out);
    ctx_free(out);
}

Test(eval, an_agents_grant_applies)
{
    json_t *h, *e;

    synced();
    /* helper may read no label: root through helper loses the confidential page. */
    h = eval_json("user:root", "helper", "lexical");
    cr_assert(NEAR(num(h, "means", "found"), 2.0 / 3.0));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(h, "relevant"),
                                                    "unreadable")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(h, "agent")), "helper");
    /* elsewhere was granted only a source with nothing in it: nothing is found. */
    e = eval_json("user:root", "elsewhere", "hybrid");
    cr_assert(NEAR(num(e, "means", "found"), 0.0));
    cr_assert(NEAR(num(e, "means", "ndcg"), 0.0));
    json_decref(h);
    json_decref(e);
}

Test(eval, text_output_and_bad_input)
{
    char args[512];
    int status;
    char *out;

    synced();
    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --source pages --as user:ben"
             " --mode lexical --k 5", dir);
    out = run(args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "found@5    0.667"), "%s", out);
    cr_assert(strstr(out, "1 not readable by user:ben, 1 not in the store"), "%s", out);
    cr_assert(strstr(out, "may not read them"), "%s", out);
    ctx_free(out);

    /* Without --source the bare ids name no source: refused, with the line. */
    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --as user:ben", dir);
    out = run(args, &status);
    cr_assert_eq(WEXITSTATUS(status), 2, "%s", out);
    cr_assert(strstr(out, "qrels.tsv: line 1: id \"vpn.json\" names no source"), "%s", out);
    ctx_free(out);

    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --source pages --as user:ben"
             " --agent nobody", dir);
    out = run(args, &status);
    cr_assert_eq(WEXITSTATUS(status), 2, "%s", out);
    cr_assert(strstr(out, "agent \"nobody\" is not registered"), "%s", out);
    ctx_free(out);
}

/*
 * --compare pairs each question with an earlier run's --json output: ben
 * against root on the same questions loses exactly the salary question,
 * which root reads and ben may not; a run against itself differs nowhere.
 */
Test(eval, compare_pairs_each_question_with_an_earlier_run)
{
    char args[1024], *text, *out;
    json_t *root, *ben, *c;
    int status;

    synced();
    root = eval_json("user:root", NULL, "lexical");
    text = json_dumps(root, 0);
    tu_write(dir, "root.json", text);
    free(text);

    snprintf(args, sizeof args, "--compare %s/root.json", dir);
    ben = eval_json_with("user:ben", NULL, "lexical", args);
    c = json_object_get(ben, "compare");
    cr_assert(json_is_object(c), "no compare in the answer");
    cr_assert_eq(json_integer_value(json_object_get(c, "pairs")), 3);
    cr_assert_eq(json_integer_value(json_object_get(c, "unmatched")), 0);
    cr_assert_float_eq(num(c, "ndcg", "this"), num(ben, "means", "ndcg"), 1e-9);
    cr_assert_float_eq(num(c, "ndcg", "that"), num(root, "means", "ndcg"), 1e-9);
    cr_assert_float_eq(num(c, "found", "diff"), -1.0 / 3, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(c, "found"), "worse")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(c, "found"), "better")), 0);
    cr_assert(num(c, "ndcg", "lo") <= num(c, "ndcg", "diff") &&
              num(c, "ndcg", "diff") <= num(c, "ndcg", "hi"));
    json_decref(ben);

    /* Against itself, as text: no difference, and it says so. */
    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --source pages --as user:root"
             " --mode lexical --compare %s/root.json", dir, dir);
    out = run(args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "3 questions scored in both"), "%s", out);
    cr_assert(strstr(out, "+0.000  [+0.000, +0.000]"), "%s", out);
    cr_assert(strstr(out, "cannot tell the two runs apart"), "%s", out);
    ctx_free(out);

    /* Runs scored differently are not compared: another k, another judging. */
    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --source pages --as user:root"
             " --mode lexical --k 5 --compare %s/root.json", dir, dir);
    out = run(args, &status);
    cr_assert_eq(WEXITSTATUS(status), 2, "%s", out);
    cr_assert(strstr(out, "scored at k 10, this run at k 5"), "%s", out);
    ctx_free(out);
    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --source pages --as user:root"
             " --readable --compare %s/root.json", dir, dir);
    out = run(args, &status);
    cr_assert_eq(WEXITSTATUS(status), 2, "%s", out);
    cr_assert(strstr(out, "judged alike"), "%s", out);
    ctx_free(out);
    /* Not an eval output at all: named, with the fix. */
    snprintf(args, sizeof args, "eval --qrels %s/qrels.tsv --source pages --as user:root"
             " --compare %s/qrels.tsv", dir, dir);
    out = run(args, &status);
    cr_assert_eq(WEXITSTATUS(status), 2, "%s", out);
    cr_assert(strstr(out, "--compare") && strstr(out, "ctxgate eval --json"), "%s", out);
    ctx_free(out);
    json_decref(root);
}
