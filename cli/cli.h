/*
 * cli.h - what the command files share with cli/main.c.
 */
#ifndef CTX_CLI_CLI_H
#define CTX_CLI_CLI_H

#include "../core/config.h"
#include "../indexer/store.h"

/*
 * cli_open - load the config given with --config, make its data dir (unless
 * readonly, which also wants the store to exist), open the store and record
 * the config's source trust in it. cfg must be ctx_config_free'd and *st
 * store_close'd whatever the result.
 */
int cli_open(ctx_config *cfg, ctx_store **st, int readonly, ctx_error *err);

#define CLI_EXPLAIN_USAGE                                                                \
    "explain --as USER [--agent A] [--json] DOC\n"                                       \
    "                        why USER (through agent A) may or may not read DOC\n"      \
    "                        (its id or SOURCE:EXTERNAL_ID): the principal path and\n"   \
    "                        which source said each edge, the ACL, the grant, the\n"     \
    "                        permissions' age"

/* cli_explain - `ctxgate explain`; the exit status: 0 readable, 3 not, else an error. */
int cli_explain(int argc, char **argv);

#endif
