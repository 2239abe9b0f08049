/* flawed_checkok.c - the jsonl connector with FLAW_CHECK_OK (see flawed.c). */
#define FLAW_CHECK_OK
#include "flawed.c"
