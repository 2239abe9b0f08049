/*
 * chunker.h - split a document body into chunks that fit a token budget,
 * breaking at paragraphs, then sentences, then words, with a little overlap
 * so a fact cut at a boundary is still found whole in one of the two.
 */
#ifndef CTX_INDEXER_CHUNKER_H
#define CTX_INDEXER_CHUNKER_H

#include <stddef.h>

typedef struct chunker_opts {
    int max_tokens;      /* budget per chunk, default 256 */
    int overlap_tokens;  /* carried from the end of one chunk into the next, default 32 */
} chunker_opts;

#define CHUNKER_DEFAULTS {256, 32}

/* A chunk is a span of the body; spans may overlap by the overlap budget. */
typedef struct chunk_span {
    size_t off, len;
    int ntokens;
} chunk_span;

/*
 * chunker_split - spans covering text[0..len). *out is new (ctx_free it),
 * *n may be 0 for an empty or all-whitespace body. Returns 0 or CTX_ENOMEM.
 */
int chunker_split(const char *text, size_t len, const chunker_opts *opts,
                  chunk_span **out, size_t *n);

/*
 * chunker_count_tokens - an estimate of a model tokenizer's count: one per
 * short word, more for long words, one per punctuation mark and per
 * non-ASCII character. Retrieval packs answers with the same estimate.
 */
int chunker_count_tokens(const char *s, size_t len);

#endif
