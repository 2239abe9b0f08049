/*
 * test_json.c - ctx_json_write writes what json_dumps(v, JSON_COMPACT)
 * writes, byte for byte, over random documents: strings with every
 * control character, quotes, backslashes, NULs and multi-byte UTF-8;
 * integers at both ends; reals of every size and sign.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static unsigned rng = 2026;

static unsigned rnd(unsigned n)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) % n;
}

static json_t *random_string(void)
{
    static const char *const pieces[] = {"a", "Z", " ", "\"", "\\", "/", "\x7f", "\xc3\xa9",
                                         "\xe2\x80\xa8", "\xf0\x9f\x98\x80", "text ", "\n\r\t"};
    char s[64];
    size_t n = 0, want = rnd(20);

    while (n < want) {
        if (rnd(3) == 0) {
            s[n++] = (char)rnd(0x20); /* any control character, NUL too */
            continue;
        }
        const char *p = pieces[rnd(sizeof pieces / sizeof *pieces)];
        size_t len = strlen(p);
        if (n + len > sizeof s)
            break;
        memcpy(s + n, p, len);
        n += len;
    }
    return json_stringn(s, n);
}

static json_t *random_real(void)
{
    static const double fixed[] = {0.0, -0.0, 1.0, -3.0, 0.5, 1e-5, 1e20, 1e300, 5e-324,
                                   DBL_MAX, -DBL_MIN, 0.1, 1.0 / 61, 123456789012345678.0};
    if (rnd(2))
        return json_real(fixed[rnd(sizeof fixed / sizeof *fixed)]);
    return json_real(ldexp((double)rnd(1u << 24) - (1 << 23), (int)rnd(200) - 100));
}

static json_t *random_value(int depth)
{
    switch (rnd(depth > 3 ? 6 : 8)) {
    case 0: return random_string();
    case 1: return json_integer(rnd(2) ? (json_int_t)rnd(1000000) - 500000
                                       : rnd(2) ? INT64_MAX : INT64_MIN);
    case 2: return random_real();
    case 3: return json_true();
    case 4: return json_false();
    case 5: return json_null();
    case 6: {
        json_t *a = json_array();
        for (unsigned i = rnd(5); i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = rnd(5); i > 0; i--) {
            json_t *k = random_string();
            /* keys are C strings: cut at the first NUL */
            json_object_set_new(o, json_string_value(k), random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

Test(json, writes_what_json_dumps_writes)
{
    for (int t = 0; t < 3000; t++) {
        json_t *v = random_value(0);
        char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t len = 0;
        char *got = ctx_json_dumps(v, &len);
        cr_assert_not_null(want);
        cr_assert_not_null(got);
        cr_assert_eq(len, strlen(want), "document %d: length %zu, json_dumps wrote %zu", t,
                     len, strlen(want));
        cr_assert_str_eq(got, want, "document %d", t);
        free(want);
        free(got);
        json_decref(v);
    }
    cr_assert_null(ctx_json_dumps(NULL, NULL));
}
