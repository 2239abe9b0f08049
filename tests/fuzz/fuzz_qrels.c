/*
 * fuzz_qrels.c - libFuzzer target for qrels_parse, the questions file of
 * `ctxgate eval`. The first byte picks a source for bare ids or none; the
 * rest is the file. Checks that a refusal names a line or says the file is
 * empty, that every accepted question is well formed, and that the metrics
 * stay in range and give a perfect ranking its perfect score.
 */
#include <stdint.h>
#include <string.h>

#include "core/ctx.h"
#include "core/util.h"
#include "fuzz.h"
#include "retrieval/qrels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_scores(const qrels_item *it, int k)
{
    const char *const *rel = (const char *const *)it->relevant;
    qrels_scores s;

    /* The relevant ids ranked first, in their own order: nothing better exists. */
    qrels_score(rel, it->nrelevant, rel, it->nrelevant, k, &s);
    FUZZ_CHECK(s.ndcg > 1.0 - 1e-9 && s.ndcg < 1.0 + 1e-9, "perfect ranking: ndcg %f", s.ndcg);
    FUZZ_CHECK(s.rr == 1.0 && s.found == 1.0, "perfect ranking: rr %f", s.rr);
    FUZZ_CHECK(s.hits == (it->nrelevant < (size_t)k ? it->nrelevant : (size_t)k),
               "perfect ranking: %zu hits of %zu at k %d", s.hits, it->nrelevant, k);
    /* Reversed, with every id twice: in range, and the same hits. */
    {
        const char *twice[64];
        size_t n = 0;
        qrels_scores r;
        for (size_t i = it->nrelevant; i-- > 0 && n + 2 <= 64;) {
            twice[n++] = rel[i];
            twice[n++] = rel[i];
        }
        qrels_score(rel, it->nrelevant, twice, n, k, &r);
        FUZZ_CHECK(r.ndcg >= 0 && r.ndcg <= 1.0 + 1e-9, "ndcg %f", r.ndcg);
        FUZZ_CHECK(r.recall >= 0 && r.recall <= 1.0, "recall %f", r.recall);
        FUZZ_CHECK(r.rr >= 0 && r.rr <= 1.0, "rr %f", r.rr);
        FUZZ_CHECK(it->nrelevant > 32 || r.hits == s.hits, "repeats changed the hits");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *source = size && (data[0] & 1) ? "src" : NULL;
    const char *text = size ? (const char *)data + 1 : "";
    size_t len = size ? size - 1 : 0;
    int k = size ? 1 + (data[0] >> 1) % 12 : 10;
    qrels q;
    ctx_error err;
    int rc = qrels_parse(text, len, source, &q, &err), last = 0;

    if (rc) {
        FUZZ_CHECK(rc == CTX_EINVAL || rc == CTX_ENOMEM, "rc %d", rc);
        FUZZ_CHECK(!strncmp(err.text, "line ", 5) || strstr(err.text, "no questions"),
                   "a refusal names no line: %s", err.text);
        qrels_free(&q);
        return 0;
    }
    FUZZ_CHECK(q.n > 0, "accepted with no question");
    for (size_t i = 0; i < q.n; i++) {
        const qrels_item *it = &q.v[i];
        size_t ql = strlen(it->question);
        FUZZ_CHECK(it->line > last, "line %d after line %d", it->line, last);
        last = it->line;
        FUZZ_CHECK(ql > 0 && ctx_utf8_valid(it->question, ql), "question %zu", i);
        FUZZ_CHECK(it->question[0] != ' ' && it->question[ql - 1] != ' ', "untrimmed");
        FUZZ_CHECK(it->nrelevant > 0, "question %zu has no relevant id", i);
        for (size_t j = 0; j < it->nrelevant; j++) {
            const char *id = it->relevant[j], *colon = strchr(id, ':');
            FUZZ_CHECK(colon && colon > id && colon[1], "id \"%s\" is not source:id", id);
            FUZZ_CHECK(!source || !strncmp(id, "src:", 4), "id \"%s\" lost its source", id);
            for (size_t m = 0; m < j; m++)
                FUZZ_CHECK(strcmp(it->relevant[m], id), "id \"%s\" twice", id);
        }
        check_scores(it, k);
    }
    qrels_free(&q);
    return 0;
}
