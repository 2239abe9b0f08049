/*
 * follow.h - `ctxgate follow`: a search replica's follower alone (cluster
 * mode, docs/cluster.md); `ctxgate serve` runs the same on a thread.
 */
#ifndef CTX_CLI_FOLLOW_H
#define CTX_CLI_FOLLOW_H

#define CLI_FOLLOW_USAGE                                                                 \
    "follow [--once]         cluster mode with cluster.replica: copy PostgreSQL's\n"     \
    "                        documents, ACLs and principals into this data_dir, then\n"  \
    "                        follow its changes (--once: until caught up, then exit)"

/* cli_follow - the exit status: 0, 2 for bad arguments or config, else 1. */
int cli_follow(int argc, char **argv, const char *config_path);

/* cli_cluster_embed - `ctxgate embed` in cluster mode: one run of the
 * cluster's embed job (vectors into PostgreSQL for the replicas). 0 when
 * the config is not a cluster's (embed locally); else 1, *status the exit
 * status. */
int cli_cluster_embed(const char *config_path, int *status);

#endif
