/*
 * fuzz_chunker.c - libFuzzer target for chunker_split. The first two bytes
 * pick the token budget and the overlap, the rest is the body. Aborts when a
 * span leaves the text, spans go backwards or add nothing new, a non-space
 * byte is in no span, a span cuts a UTF-8 character of a valid body, or a
 * span is over budget without being one indivisible atom.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/util.h"
#include "indexer/chunker.h"
#include "fuzz.h"

/* The chunker's own notion of whitespace: bytes it may leave uncovered. */
static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_word(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '_';
}

/* One atom: a run of word bytes, or one character (lead + continuations). */
static int single_atom(const unsigned char *p, size_t len)
{
    size_t i = 1;
    if (!len)
        return 0;
    if (is_word(p[0])) {
        while (i < len && is_word(p[i]))
            i++;
        return i == len;
    }
    while (i < len && (p[i] & 0xC0) == 0x80)
        i++;
    return i == len;
}

/*
 * Budgets: mostly small, so that short inputs still need several chunks,
 * plus the configured range's ends (config.c allows 16..8192) and values
 * the chunker clamps (below 8, negative).
 */
static int pick_max(uint8_t b)
{
    static const int special[] = {-1, 0, 7, 8, 16, 256, 4096, 8192};
    return b < 0xF8 ? b : special[b - 0xF8];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    chunker_opts o;
    chunk_span *v = NULL;
    size_t n = 0, len, i, j, prev_off = 0, prev_end = 0, covered = 0;
    const unsigned char *p;
    const char *text;
    int max, valid;

    if (size < 2)
        return 0;
    o.max_tokens = pick_max(data[0]);
    o.overlap_tokens = (int8_t)data[1];
    text = (const char *)data + 2;
    p = data + 2;
    len = size - 2;
    max = o.max_tokens > 8 ? o.max_tokens : 8;
    valid = ctx_utf8_valid(text, len);

    FUZZ_CHECK(chunker_split(text, len, &o, &v, &n) == CTX_OK, "chunker_split failed");
    FUZZ_CHECK(n == 0 || v != NULL, "%zu spans but no array", n);

    for (i = 0; i < n; i++) {
        const chunk_span *s = &v[i];
        size_t end = s->off + s->len;

        FUZZ_CHECK(s->len > 0 && s->off < len && s->len <= len - s->off,
                   "span %zu [%zu, +%zu) is empty or outside the text of %zu bytes", i,
                   s->off, s->len, len);
        FUZZ_CHECK(!is_space(p[s->off]) && !is_space(p[end - 1]),
                   "span %zu [%zu, %zu) starts or ends with whitespace", i, s->off, end);
        if (i) {
            FUZZ_CHECK(s->off >= prev_off, "span %zu starts at %zu, before span %zu at %zu",
                       i, s->off, i - 1, prev_off);
            /* Overlap repeats the tail of the previous span; a span that
             * repeats only that tail adds nothing to the index. */
            FUZZ_CHECK(end > prev_end,
                       "span %zu [%zu, %zu) ends at or before span %zu, which ends at %zu:"
                       " it holds nothing new (max_tokens %d, overlap_tokens %d)",
                       i, s->off, end, i - 1, prev_end, o.max_tokens, o.overlap_tokens);
        }
        /* Spans are sorted by start, so one sweep finds the uncovered. */
        for (j = covered; j < s->off; j++)
            FUZZ_CHECK(is_space(p[j]), "byte %zu (0x%02x) is in no span", j, p[j]);
        if (end > covered)
            covered = end;
        if (valid) {
            FUZZ_CHECK((p[s->off] & 0xC0) != 0x80,
                       "span %zu starts inside a UTF-8 character at %zu", i, s->off);
            FUZZ_CHECK(end == len || (p[end] & 0xC0) != 0x80,
                       "span %zu ends inside a UTF-8 character at %zu", i, end);
        }
        FUZZ_CHECK(s->ntokens >= 1, "span %zu has %d tokens", i, s->ntokens);
        if (s->ntokens > max)
            FUZZ_CHECK(single_atom(p + s->off, s->len),
                       "span %zu [%zu, %zu) has %d tokens, budget %d", i, s->off, end,
                       s->ntokens, max);
        /* Retrieval packs answers with the same estimate, so the stored
         * count must be the span's count. Only for valid UTF-8: the host
         * repairs bodies before chunking, and on broken input a stray
         * continuation byte after punctuation is counted apart. */
        if (valid)
            FUZZ_CHECK(s->ntokens == chunker_count_tokens(text + s->off, s->len),
                       "span %zu [%zu, %zu) says %d tokens, recount says %d", i, s->off, end,
                       s->ntokens, chunker_count_tokens(text + s->off, s->len));
        prev_off = s->off;
        prev_end = end;
    }
    for (j = covered; j < len; j++)
        FUZZ_CHECK(is_space(p[j]), "byte %zu (0x%02x) is in no span", j, p[j]);

    ctx_free(v);
    return 0;
}
