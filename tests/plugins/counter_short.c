/* counter_short.c - the counter plugin with a struct_size too small for ABI 1. */
#define COUNTER_SIZE 16
#include "counter.c"
