/*
 * connector.h - `ctxgate connector spec|check|discover|read|test`: one
 * connector run by hand, outside the scheduler, and its conformance suite.
 */
#ifndef CTX_CLI_CONNECTOR_H
#define CTX_CLI_CONNECTOR_H

#define CLI_CONNECTOR_USAGE                                                              \
    "connector spec|check|discover|read|test --plugin PATH|--exec CMD|--type TYPE\n"    \
    "                        [--source NAME] [--stream S] [--state JSON] [--full]\n"     \
    "                        [--mutate CMD] [--bad-config FILE] [--validator SCRIPT]\n"  \
    "                        run one connector on --config FILE (its own keys, or a\n"   \
    "                        ctxgate.json with --source), printing messages as JSON\n"   \
    "                        lines; `test` runs the conformance suite; `spec` with\n"  \
    "                        --plugin or --type needs no config"

/*
 * cli_connector - the command; argv[0] is "connector". config_path is the
 * --config file, relative to the current directory. Returns the exit
 * status: 0, 1 when the connector or a check failed, 2 for a usage error.
 */
int cli_connector(int argc, char **argv, const char *config_path);

#endif
