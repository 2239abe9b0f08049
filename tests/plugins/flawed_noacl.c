/* flawed_noacl.c - the jsonl connector with FLAW_NO_ACL (see flawed.c). */
#define FLAW_NO_ACL
#include "flawed.c"
