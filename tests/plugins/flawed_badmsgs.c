/* flawed_badmsgs.c - the jsonl connector with FLAW_BAD_MESSAGES (see flawed.c). */
#define FLAW_BAD_MESSAGES
#include "flawed.c"
