/* flawed_nostop.c - the jsonl connector with FLAW_NO_STOP (see flawed.c). */
#define FLAW_NO_STOP
#include "flawed.c"
