/*
 * config_int.h - what config.c and config_check.c share. Core-internal.
 */
#ifndef CTX_CORE_CONFIG_INT_H
#define CTX_CORE_CONFIG_INT_H

#include "config.h"

/*
 * ctx__config_check - the checks across sections of a parsed config, run
 * last by ctx_config_parse: schedules (each one ever comes), the agent's
 * intervals and history bounds (fills agent.history_retain_ms), and the
 * sources of each agent's grant. CTX_ECONFIG with the field and the fix.
 */
int ctx__config_check(ctx_config *cfg, ctx_error *err);

#endif
