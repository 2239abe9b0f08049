/*
 * test_util.c - core/util helpers added for the connectors: ISO 8601 times
 * and the owned string list.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/ctx.h"
#include "core/util.h"

static int64_t iso(const char *s)
{
    int64_t ms = 0;
    cr_assert_eq(ctx_iso8601_ms(s, &ms), CTX_OK, "\"%s\" was refused", s);
    return ms;
}

Test(util, iso8601_forms)
{
    cr_assert_eq(iso("1970-01-01"), 0);
    cr_assert_eq(iso("2026-01-01T00:00:00Z"), 1767225600000LL);
    cr_assert_eq(iso("2026-01-01 00:00:00"), 1767225600000LL);
    cr_assert_eq(iso("2026-01-01T00:00:00.25Z"), 1767225600250LL);
    cr_assert_eq(iso("2026-01-01T02:00:00+02:00"), 1767225600000LL);
    cr_assert_eq(iso("2025-12-31T19:30:00-0430"), 1767225600000LL);
}

Test(util, iso8601_rejects_the_rest)
{
    static const char *const bad[] = {"", "2026", "2026-1-1", "2026-13-01", "2026-01-01T",
                                      "2026-01-01T25:00:00", "2026-01-01T00:00:00Q",
                                      "yesterday", "2026-01-01T00:00:00+x", NULL};
    int64_t ms;
    for (size_t i = 0; bad[i]; i++)
        cr_assert_eq(ctx_iso8601_ms(bad[i], &ms), CTX_EINVAL, "\"%s\" was taken", bad[i]);
}

Test(util, strvec_owns_and_reuses)
{
    ctx_strvec l = CTX_STRVEC_INIT;
    for (int i = 0; i < 20; i++)
        cr_assert_eq(ctx_strvec_add(&l, i % 2 ? "user:" : NULL, "ann-and-more", 3), 0);
    cr_assert_eq(l.n, 20);
    cr_assert_str_eq(l.v[0], "ann");
    cr_assert_str_eq(l.v[1], "user:ann");
    ctx_strvec_clear(&l);
    cr_assert_eq(l.n, 0);
    cr_assert_geq(l.cap, 20);
    cr_assert_eq(ctx_strvec_add(&l, "group:", "eng", 3), 0);
    cr_assert_str_eq(l.v[0], "group:eng");
    ctx_strvec_free(&l);
    cr_assert_null(l.v);
    cr_assert_eq(l.n, 0);
}

Test(util, scrub_masks_every_occurrence)
{
    char msg[] = "token abc123 and again abc123.";
    ctx_scrub(msg, "abc123");
    cr_assert_str_eq(msg, "token ****** and again ******.");
    ctx_scrub(msg, "");
    ctx_scrub(msg, NULL);
    cr_assert_str_eq(msg, "token ****** and again ******.");
    ctx_wipe_free(ctx_strdup("secret"));
    ctx_wipe_free(NULL);
}

Test(util, in_sorted_finds_exactly_the_members)
{
    static const int64_t v[] = {-5, 0, 3, 9, 9, 40};
    for (int64_t x = -7; x <= 42; x++) {
        int want = x == -5 || x == 0 || x == 3 || x == 9 || x == 40;
        cr_assert_eq(ctx_in_sorted(v, 6, x), want, "%lld", (long long)x);
    }
    cr_assert(!ctx_in_sorted(v, 0, 0));
    cr_assert(!ctx_in_sorted(NULL, 0, 7));
}

Test(util, base64_both_alphabets_and_bad_input)
{
    unsigned char out[16];

    /* "\xfb\xff" is "-_8" URL-safe and "+/8" standard */
    cr_assert_eq(ctx_b64_decode("-_8", 3, 1, out), 2);
    cr_assert(out[0] == 0xfb && out[1] == 0xff);
    cr_assert_eq(ctx_b64_decode("+/8", 3, 0, out), 2);
    cr_assert(out[0] == 0xfb && out[1] == 0xff);
    cr_assert_eq(ctx_b64_decode("+/8", 3, 1, out), -1, "standard letters in a URL text");
    cr_assert_eq(ctx_b64_decode("-_8", 3, 0, out), -1, "URL letters in a standard text");
    cr_assert_eq(ctx_b64_decode("QUJD", 4, 0, out), 3);
    cr_assert(!memcmp(out, "ABC", 3));
    cr_assert_eq(ctx_b64_decode("QUJDR", 5, 0, out), -1, "a length no encoding gives");
    cr_assert_eq(ctx_b64_decode("QU=D", 4, 0, out), -1, "padding inside");
    cr_assert_eq(ctx_b64_decode("", 0, 1, out), 0);
}
