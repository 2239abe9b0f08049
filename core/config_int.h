/*
 * config_int.h - what config.c and config_check.c share. Core-internal.
 */
#ifndef CTX_CORE_CONFIG_INT_H
#define CTX_CORE_CONFIG_INT_H

#include "config.h"
#include "opts.h"

/* The option table of one "budgets" entry (config_check.c). */
extern const ctx_opt ctx__budget_opts[];

/*
 * ctx__config_check - the checks across sections of a parsed config, run
 * last by ctx_config_parse: schedules (each one ever comes), the agent's
 * intervals and history bounds (fills agent.history_retain_ms), the
 * sources of each agent's grant, and the budgets (fills per_ms).
 * CTX_ECONFIG with the field and the fix.
 */
int ctx__config_check(ctx_config *cfg, ctx_error *err);

#endif
