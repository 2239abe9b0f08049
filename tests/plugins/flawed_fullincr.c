/* flawed_fullincr.c - the jsonl connector with FLAW_FULL_INCREMENTAL (see flawed.c). */
#define FLAW_FULL_INCREMENTAL
#include "flawed.c"
