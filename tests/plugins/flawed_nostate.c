/* flawed_nostate.c - the jsonl connector with FLAW_NO_STATE (see flawed.c). */
#define FLAW_NO_STATE
#include "flawed.c"
