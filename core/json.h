/*
 * json.h - JSON text of a jansson value, for response bodies.
 *
 * json_dumps checks every string's UTF-8 again as it writes it, one code
 * point at a time: 1.13M instructions of an 8.3M-instruction hybrid
 * request whose answer carries 15 KB of text (bench/serve_cost.sh). A
 * jansson string is valid UTF-8 by construction, so this writer only
 * escapes, copying the runs between escapes. Its output is byte for byte
 * json_dumps(v, JSON_COMPACT)'s (tests/unit/test_json.c holds it to that).
 */
#ifndef CTX_CORE_JSON_H
#define CTX_CORE_JSON_H

#include <jansson.h>

#include "util.h"

/* ctx_json_write - append v's compact JSON text to out: 0 or CTX_ENOMEM. */
int ctx_json_write(const json_t *v, ctx_buf *out);

/* ctx_json_dumps - v's compact JSON text (malloc'd; NULL when out of
 * memory or v is NULL), its length in *len when len is not NULL. */
char *ctx_json_dumps(const json_t *v, size_t *len);

#endif
