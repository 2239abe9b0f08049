/*
 * test_chunker.c - chunks stay within budget, cover the text, break at
 * sentences and paragraphs when they can, and overlap as configured.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/ctx.h"
#include "core/util.h"
#include "indexer/chunker.h"

static void covered(const char *text, const chunk_span *v, size_t n)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < len; i++) {
        int in = 0;
        if (text[i] == ' ' || text[i] == '\n')
            continue;
        for (size_t j = 0; j < n && !in; j++)
            in = i >= v[j].off && i < v[j].off + v[j].len;
        cr_assert(in, "byte %zu ('%c') is in no chunk", i, text[i]);
    }
}

Test(chunker, empty_and_blank_bodies_have_no_chunks)
{
    chunk_span *v;
    size_t n;
    cr_assert_eq(chunker_split("", 0, NULL, &v, &n), 0);
    cr_assert_eq(n, 0);
    ctx_free(v);
    cr_assert_eq(chunker_split("  \n\n \t", 6, NULL, &v, &n), 0);
    cr_assert_eq(n, 0);
    ctx_free(v);
}

Test(chunker, short_text_is_one_chunk)
{
    const char *t = "One sentence. Two sentences.";
    chunk_span *v;
    size_t n;
    cr_assert_eq(chunker_split(t, strlen(t), NULL, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0].off, 0);
    cr_assert_eq(v[0].len, strlen(t));
    ctx_free(v);
}

Test(chunker, long_text_respects_budget_and_breaks_at_sentences)
{
    ctx_buf b = CTX_BUF_INIT;
    chunker_opts o = {32, 12};
    chunk_span *v;
    size_t n;

    for (int i = 0; i < 60; i++)
        ctx_buf_printf(&b, "Sentence number %d talks about topic %d. ", i, i % 7);
    cr_assert_eq(chunker_split(b.data, b.len, &o, &v, &n), 0);
    cr_assert_gt(n, 5);
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(v[i].ntokens, 32, "chunk %zu has %d tokens", i, v[i].ntokens);
        cr_assert_eq(v[i].ntokens, chunker_count_tokens(b.data + v[i].off, v[i].len));
        /* Every chunk starts a sentence and ends one. */
        cr_assert_eq(b.data[v[i].off], 'S');
        cr_assert_eq(b.data[v[i].off + v[i].len - 1], '.');
    }
    covered(b.data, v, n);
    /* Overlap: a chunk starts before the previous one ends. */
    cr_assert_lt(v[1].off, v[0].off + v[0].len);
    ctx_free(v);
    ctx_buf_free(&b);
}

Test(chunker, no_overlap_when_zero)
{
    ctx_buf b = CTX_BUF_INIT;
    chunker_opts o = {20, 0};
    chunk_span *v;
    size_t n;

    for (int i = 0; i < 30; i++)
        ctx_buf_printf(&b, "Line %d is here.\n\n", i);
    cr_assert_eq(chunker_split(b.data, b.len, &o, &v, &n), 0);
    for (size_t i = 1; i < n; i++)
        cr_assert_geq(v[i].off, v[i - 1].off + v[i - 1].len);
    covered(b.data, v, n);
    ctx_free(v);
    ctx_buf_free(&b);
}

Test(chunker, huge_word_and_huge_sentence_are_cut)
{
    ctx_buf b = CTX_BUF_INIT;
    chunker_opts o = {16, 4};
    chunk_span *v;
    size_t n;

    for (int i = 0; i < 2000; i++)
        ctx_buf_puts(&b, "x");
    ctx_buf_puts(&b, " ");
    for (int i = 0; i < 300; i++)
        ctx_buf_puts(&b, "word ");
    cr_assert_eq(chunker_split(b.data, b.len, &o, &v, &n), 0);
    cr_assert_gt(n, 10);
    for (size_t i = 0; i < n; i++)
        cr_assert_leq(v[i].ntokens, 16);
    covered(b.data, v, n);
    ctx_free(v);
    ctx_buf_free(&b);
}

Test(chunker, never_splits_utf8)
{
    ctx_buf b = CTX_BUF_INIT;
    chunker_opts o = {10, 2};
    chunk_span *v;
    size_t n;

    for (int i = 0; i < 200; i++)
        ctx_buf_puts(&b, "\xE6\x97\xA5\xE6\x9C\xAC");  /* 日本, no spaces */
    cr_assert_eq(chunker_split(b.data, b.len, &o, &v, &n), 0);
    cr_assert_gt(n, 1);
    for (size_t i = 0; i < n; i++)
        cr_assert(ctx_utf8_valid(b.data + v[i].off, v[i].len), "chunk %zu splits UTF-8", i);
    ctx_free(v);
    ctx_buf_free(&b);
}

Test(chunker, token_estimate)
{
    cr_assert_eq(chunker_count_tokens("", 0), 0);
    cr_assert_eq(chunker_count_tokens("the cat sat", 11), 3);
    cr_assert_eq(chunker_count_tokens("a, b.", 5), 4);
    cr_assert_eq(chunker_count_tokens("internationalization", 20), 4);
}
