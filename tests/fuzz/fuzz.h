/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz/ share: a check that
 * names the broken invariant and aborts, so libFuzzer records the input.
 */
#ifndef CTX_TESTS_FUZZ_H
#define CTX_TESTS_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

/* FUZZ_CHECK(cond, fmt, ...) - abort with a message when cond is false. */
#define FUZZ_CHECK(cond, ...)                                                     \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "\n%s:%d: fuzz check failed: %s\n  ", __FILE__,       \
                    __LINE__, #cond);                                             \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            abort();                                                              \
        }                                                                         \
    } while (0)

#endif
