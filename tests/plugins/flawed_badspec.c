/* flawed_badspec.c - the jsonl connector with FLAW_BAD_SPEC (see flawed.c). */
#define FLAW_BAD_SPEC
#include "flawed.c"
