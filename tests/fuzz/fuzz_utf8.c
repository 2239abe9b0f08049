/*
 * fuzz_utf8.c - libFuzzer target for ctx_utf8_valid and ctx_utf8_repair,
 * which every connector's text passes through. Checks the validator against
 * a reference decoder written from the RFC 3629 table, and that a repair is
 * valid, NUL-free, exact about what it replaced, idempotent, and the
 * identity on valid input.
 */
#include <stdint.h>
#include <string.h>

#include "core/ctx.h"
#include "core/util.h"
#include "fuzz.h"

/* RFC 3629 section 4, one well-formed sequence at a time; 0 if none. */
static size_t ref_seq(const unsigned char *s, size_t n)
{
    static const struct { unsigned char lo, hi, c1lo, c1hi, len; } row[] = {
        {0x00, 0x7F, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 2},
        {0xE0, 0xE0, 0xA0, 0xBF, 3}, {0xE1, 0xEC, 0x80, 0xBF, 3},
        {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3},
        {0xF0, 0xF0, 0x90, 0xBF, 4}, {0xF1, 0xF3, 0x80, 0xBF, 4},
        {0xF4, 0xF4, 0x80, 0x8F, 4},
    };
    for (size_t r = 0; r < sizeof row / sizeof row[0]; r++) {
        if (s[0] < row[r].lo || s[0] > row[r].hi)
            continue;
        if (n < row[r].len)
            return 0;
        if (row[r].len > 1 && (s[1] < row[r].c1lo || s[1] > row[r].c1hi))
            return 0;
        for (size_t k = 2; k < row[r].len; k++)
            if (s[k] < 0x80 || s[k] > 0xBF)
                return 0;
        return row[r].len;
    }
    return 0;
}

static int ref_valid(const unsigned char *s, size_t n)
{
    size_t i = 0, k;
    while (i < n) {
        if (!(k = ref_seq(s + i, n - i)))
            return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    ctx_buf out = CTX_BUF_INIT, again = CTX_BUF_INIT;
    size_t nbad = (size_t)-1, nbad2 = (size_t)-1, nnul = 0, i;
    int valid = ctx_utf8_valid(s, size);

    FUZZ_CHECK(valid == ref_valid(data, size), "ctx_utf8_valid says %d, RFC 3629 says %d",
               valid, !valid);
    for (i = 0; i < size; i++)
        nnul += data[i] == 0;

    FUZZ_CHECK(ctx_utf8_repair(s, size, &out, &nbad) == CTX_OK, "repair failed");
    FUZZ_CHECK(out.data != NULL && out.data[out.len] == '\0', "output not NUL terminated");
    FUZZ_CHECK(ctx_utf8_valid(out.data, out.len), "repaired output is not valid UTF-8");
    FUZZ_CHECK(memchr(out.data, 0, out.len) == NULL, "repaired output has a NUL byte");
    /* Every replacement swaps one byte for the three of U+FFFD. */
    FUZZ_CHECK(out.len == size - nnul - nbad + 3 * nbad,
               "len %zu, input %zu, NULs %zu, replaced %zu", out.len, size, nnul, nbad);
    FUZZ_CHECK((nbad == 0) == valid, "valid=%d but %zu replacements", valid, nbad);
    if (valid && !nnul)
        FUZZ_CHECK(out.len == size && !memcmp(out.data, data, size),
                   "valid input came back changed");

    /* Repairing appends: a second repair of the output onto itself
     * replaces nothing and leaves the first copy alone. */
    FUZZ_CHECK(ctx_utf8_repair(out.data, out.len, &again, &nbad2) == CTX_OK, "repair failed");
    FUZZ_CHECK(nbad2 == 0 && again.len == out.len && !memcmp(again.data, out.data, out.len),
               "repair is not idempotent");
    FUZZ_CHECK(ctx_utf8_repair(s, size, &again, NULL) == CTX_OK, "repair failed");
    FUZZ_CHECK(again.len == 2 * out.len && !memcmp(again.data, out.data, out.len) &&
                   !memcmp(again.data + out.len, out.data, out.len),
               "repair onto a non-empty buffer lost or changed what was there");

    ctx_buf_free(&out);
    ctx_buf_free(&again);
    return 0;
}
