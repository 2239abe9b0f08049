/*
 * status.h - the whole state an operator asks about, as one JSON object:
 * `ctxgate status --json` prints it and GET /v1/admin/status answers it.
 *
 *   {"sources":     report_sources: documents, chunks, last run, lag, errors,
 *    "permissions": per configured source, the permission age against its
 *                   max_permission_age (fresh.h), withheld or not, and the
 *                   permission warnings explain finds,
 *    "index":       report_index: embedding model, queue, vectors, files,
 *    "cluster":     in cluster mode only (indexer/pgreport.h): schema_version,
 *                   the jobs and their leases, the replicas' slots and their
 *                   bytes behind, this_replica (a replica's stored LSN); or
 *                   {"error": why} when PostgreSQL cannot be read}
 *
 * In cluster mode "sources" are PostgreSQL's (documents, last run, lag from
 * ctxgate.sync_runs), each with this store's chunks and local_documents.
 */
#ifndef CTX_RETRIEVAL_STATUS_H
#define CTX_RETRIEVAL_STATUS_H

#include <jansson.h>
#include <stdint.h>

#include "../core/config.h"
#include "../core/ctx.h"
#include "../indexer/store.h"

/* status_report - the object above for cfg's store st at now (ms); *out new. */
int status_report(const ctx_config *cfg, ctx_store *st, int64_t now, json_t **out,
                  ctx_error *err);

#endif
