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

/*
 * jansson's allocations, guarded. jansson 2.14's lexer and dumper do not
 * check every growth of their buffers: when an allocation fails they drop
 * a byte and go on, so a parse or a dump "succeeds" with a string one byte
 * short (found by tests/unit/test_torture.c). ctx_json_init routes
 * jansson's allocations through ctx_malloc and remembers, per thread,
 * that one failed; the loaders and ctx_json_text below then fail as out
 * of memory ("out of memory" in e->text, json_error_code(e) is
 * json_error_out_of_memory) rather than hand on a damaged
 * value. Call ctx_json_init once at start, before threads.
 */
void ctx_json_init(void);
json_t *ctx_json_loads(const char *text, size_t flags, json_error_t *e);
json_t *ctx_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *e);
json_t *ctx_json_load_file(const char *path, size_t flags, json_error_t *e);
/* ctx_json_text - json_dumps(v, flags), or NULL (new; free() it). */
char *ctx_json_text(const json_t *v, size_t flags);

#endif
