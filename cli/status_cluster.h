/*
 * status_cluster.h - the cluster part of `ctxgate status` as text
 * (retrieval/status.h's "cluster" object).
 */
#ifndef CTX_CLI_STATUS_CLUSTER_H
#define CTX_CLI_STATUS_CLUSTER_H

#include <jansson.h>

/*
 * cli_status_cluster_print - r's "cluster" object (r borrowed; nothing
 * printed without one): the schema version, each job with its
 * schedule, lease and last outcome, each replica slot with how far behind
 * it is, and this replica's stored LSN. Returns 1 when the cluster could
 * not be read (the reason printed), else 0.
 */
int cli_status_cluster_print(const json_t *r);

#endif
