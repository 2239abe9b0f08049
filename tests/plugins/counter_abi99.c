/* counter_abi99.c - the counter plugin claiming an ABI version from the future. */
#define COUNTER_ABI 99
#include "counter.c"
