/*
 * test_pgvectors.c - how cluster mode's vectors cross PostgreSQL
 * (indexer/pgvectors.c): bytea of little-endian float32 whatever the host,
 * read back to the bit, and anything else refused; and the chunking
 * recorded beside them.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/pgvectors.h"

Test(pgvectors, a_vector_is_little_endian_float32_and_reads_back_to_the_bit)
{
    const float v[5] = {1.0f, -0.0f, 0.1f, -3.5e-38f, 65504.25f};
    float back[5];
    char hex[5 * 8 + 1], text[5 * 8 + 3];

    pgvec_encode(v, 5, hex);
    /* 1.0f is 0x3f800000: its low byte first */
    cr_assert(!strncmp(hex, "0000803f", 8), "%s", hex);
    cr_assert(!strncmp(hex + 8, "00000080", 8), "-0.0 keeps its sign bit: %s", hex);
    snprintf(text, sizeof text, "\\x%s", hex);
    cr_assert_eq(pgvec_decode(text, 5, back), 0);
    cr_assert(!memcmp(v, back, sizeof v), "not the same bits");
    /* upper-case hex, as another writer may send it, reads the same */
    for (char *p = text + 2; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    cr_assert_eq(pgvec_decode(text, 5, back), 0);
    cr_assert(!memcmp(v, back, sizeof v));
}

Test(pgvectors, anything_but_a_vector_of_the_dimension_is_refused)
{
    float back[2];

    cr_assert_eq(pgvec_decode("\\x0000803f0000803f", 2, back), 0);
    cr_assert_eq(pgvec_decode("\\x0000803f0000803f", 3, back), -1, "another dimension");
    cr_assert_eq(pgvec_decode("\\x0000803f0000803", 2, back), -1, "cut short");
    cr_assert_eq(pgvec_decode("0000803f0000803f", 2, back), -1, "no \\x");
    cr_assert_eq(pgvec_decode("\\x0000803f0000803g", 2, back), -1, "not hex");
    cr_assert_eq(pgvec_decode(NULL, 2, back), -1);
}

Test(pgvectors, the_chunking_is_recorded_as_budget_and_overlap)
{
    chunker_opts co = {48, 8};
    char buf[32];

    pgvec_chunking(&co, buf, sizeof buf);
    cr_assert_str_eq(buf, "48/8");
}
