/*
 * service_int.h - what the service's files (service.c, service_audit.c,
 * service_fetch.c, service_warm.c) share: struct svc, its worker pool and the few helpers
 * more than one of them calls. Retrieval-internal: only retrieval/service*.c.
 */
#ifndef CTX_RETRIEVAL_SERVICE_INT_H
#define CTX_RETRIEVAL_SERVICE_INT_H

#include <pthread.h>

#include "../indexer/embed.h"
#include "../indexer/store.h"
#include "../indexer/store_read.h"
#include "../indexer/vindex.h"
#include "fresh.h"
#include "service.h"

typedef struct worker {
    ctx_store *st;          /* its reads' statements are cached there (store_read.h) */
    uint64_t warm_gen;      /* the warm state it copied (service_warm.c) */
    int busy;
} worker;

typedef struct audit_item {
    store_audit_rec r;
    char *strs;             /* owned copies of the record's strings, one block */
    unsigned spans[2];      /* budget windows to count its tokens in: user, agent */
    int64_t id;             /* its id in the local log, once written */
} audit_item;

/* Cluster mode: a written record whose tokens stay pending until shipped. */
typedef struct ship_wait {
    int64_t id;             /* in the local log */
    char *name[2];          /* user, agent (NULL: not pended for that kind) */
    int64_t tokens;
} ship_wait;

/* Tokens queued for the audit writer, not yet in the file (budget.h). */
typedef struct pending_entry {
    char *name;
    int kind;
    int64_t tokens;
} pending_entry;

typedef struct usage_entry {
    char *name;
    int is_agent;
    int64_t tokens;
} usage_entry;

struct svc {
    /* grants, sources, audit and embedding settings: svc_reload swaps it */
    pthread_rwlock_t clock;
    const ctx_config *cfg;
    char store_path[4096], data_dir[4096];
    /* worker pool */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    worker *workers;
    int nworkers;
    /* the vector index, shared by searches */
    pthread_rwlock_t vlock;
    vindex *vi;
    int64_t vi_model;
    char vi_name[256];      /* vi_model's name and dimension, for query embedders */
    int vi_dim;
    int index_ok;           /* read by any thread: __atomic */
    /* query embedders not in use, of model qmodel, opened with the config's
     * query settings; a reload moves qgen on and the older ones are closed */
    pthread_mutex_t qmu;
    embed_provider **qidle;
    int nqidle;
    int64_t qmodel;
    uint64_t qgen;
    /* audit writer */
    pthread_mutex_t amu;
    pthread_cond_t acv, adone;
    audit_item *aq;
    size_t naq, capaq;
    uint64_t queued, written;
    uint64_t flush_to;      /* svc_audit_flush waits for the records up to here */
    int astop;
    pthread_t writer;
    ctx_store *ast;
    /* token budgets (service_budget.c): a connection reading the counts
     * in the audit log's file, opened at the first check, and the tokens
     * queued but not yet written, all under bmu */
    pthread_mutex_t bmu;
    ctx_store *bst;
    pending_entry *pend;
    size_t npend;
    /* cluster mode (service_ship.c): the shipper thread sends the local
     * log to PostgreSQL; budgets read the cluster's counts on bpg */
    int cluster;
    ctx_cluster_cfg ccfg;   /* owned copies of the config's strings */
    char node[128];         /* cluster.replica, else the host name */
    pthread_mutex_t smu;
    pthread_cond_t scv, sdone;
    pthread_t shipper;
    int ship_started, sstop, sdue;
    ship_wait *sw;          /* by id */
    size_t nsw, capsw;
    int64_t swritten;       /* the highest local id the writer wrote */
    int64_t shipped;        /* the highest local id PostgreSQL holds (-1: not known) */
    /* the cluster's counts: bpg and its state under bpgmu, never taken
     * with bmu held (bmu is taken inside it, briefly, for the pending
     * tokens), so a slow PostgreSQL holds up budget checks only, never
     * the audit writer or the shipper */
    pthread_mutex_t bpgmu;
    struct pgstore *bpg;
    int64_t bpg_failed;     /* mono ms of the last failed connect */
    char bpg_why[512];
    /* usage */
    pthread_mutex_t umu;
    usage_entry *usage;
    size_t nusage;
    /* sources' permission ages (fresh.h), checked at most once a second */
    pthread_mutex_t fmu;
    fresh_report fresh;
    int64_t fresh_at;       /* ms; 0 = not yet, or the config changed */
    /* the search caches warmed ahead (service_warm.c): a connection of its
     * own that workers copy from under wmu when their generation is older */
    pthread_mutex_t wmu;
    ctx_store *warm_st;
    uint64_t warm_gen;      /* read by any thread: __atomic */
    /* svc_rewarm's clock (one caller: serve's loop), monotonic ms */
    int64_t warm_at, warm_checked, warm_ms;
    int warm_on;            /* svc_warm was called: keep the caches warm */
};

/* ---- service.c ---- */

/*
 * svc__take - a free worker (borrowed until svc__give), in a read
 * transaction; waits when all are busy. NULL on error, with err set.
 */
worker *svc__take(svc *s, ctx_error *err);

/* svc__give - end w's read transaction and hand it back to the pool. */
void svc__give(svc *s, worker *w);

/* ---- service_warm.c ---- */

/* svc__warm_adopt - w copies the warm state if it is newer than w's (svc__take). */
void svc__warm_adopt(svc *s, worker *w);

/* svc__acl_labels_of - the labels of ACL set acl_id as a new JSON array. */
json_t *svc__acl_labels_of(worker *w, int64_t acl_id);

/* svc__has - is s in l, or l holds "*"? */
int svc__has(const ctx_strlist *l, const char *s);

/* svc__labels_ok - labels (JSON array) within the grant and matching req's filter. */
int svc__labels_ok(const ctx_agent_grant *g, const svc_request *req, json_t *labels);

/*
 * svc__fresh_get - the sources' permission ages (a copy, new:
 * fresh_report_free it), read at most once a second; under the config's
 * read lock.
 */
int svc__fresh_get(svc *s, worker *w, fresh_report *out, ctx_error *err);

/* svc__fit - the bytes of text that fit in budget tokens; *ntok gets their tokens. */
size_t svc__fit(const char *text, size_t len, int64_t budget, int *ntok);

/* svc__grant_of - the caller's agent grant (borrowed from the config), or NULL. */
const ctx_agent_grant *svc__grant_of(svc *s, const svc_identity *id);

/* ---- service_audit.c ---- */

/*
 * svc__audit - queue one audit record (strings copied); waits while the
 * queue is full. Under the config's read lock. CTX_ENOMEM when the record
 * could not be made whole (then nothing is queued, and an answer it was
 * to record must not be given).
 */
int svc__audit(svc *s, const svc_identity *id, const char *action, const char *query,
                json_t *doc_ids, int64_t tokens, uint64_t t0, const char *outcome);

/* svc__usage_add - count tokens handed to a user (is_agent 0) or an agent. */
void svc__usage_add(svc *s, const char *name, int is_agent, int64_t tokens);

/* ---- service_budget.c ---- */

/*
 * svc__budget_check - CTX_ELIMIT naming the spent budget when one of id's
 * is spent (budget_check), CTX_ESTORE when the counts cannot be read (fail
 * closed), else CTX_OK; at once when no budget is configured. Under the
 * config's read lock.
 */
int svc__budget_check(svc *s, const svc_identity *id, int64_t *reset_ms, ctx_error *err);

/* svc__budget_pend - add (sign 1) or take back (-1) tokens queued for name. */
void svc__budget_pend(svc *s, int kind, const char *name, int64_t tokens, int sign);

/* svc__budget_free - what svc_free frees of the budgets' state. */
void svc__budget_free(svc *s);

/* ---- service_ship.c (cluster mode) ---- */

struct budget_counts;

/* svc__ship_start - start the shipper when cfg has a cluster section. */
int svc__ship_start(svc *s, const ctx_config *cfg, ctx_error *err);

/* svc__ship_stop - ship what the writer wrote (one last try), stop the
 * shipper and free its state; after the writer stopped. */
void svc__ship_stop(svc *s);

/* svc__ship_hand - the writer wrote items (local ids set): their pending
 * tokens wait for the shipping, and the shipper wakes. */
void svc__ship_hand(svc *s, const audit_item *items, size_t n, int64_t last_id);

/* svc__ship_wait - wait until every record written so far is in
 * PostgreSQL, at most ms; CTX_EIO naming why not. */
int svc__ship_wait(svc *s, int64_t ms, ctx_error *err);

/* svc__cluster_counts - the cluster's token counts on bpg, connected at
 * the first read (under bmu); a read fails CTX_EIO while PostgreSQL
 * cannot be reached. */
void svc__cluster_counts(svc *s, struct budget_counts *out);

/* svc__cluster_drop - bpg failed: close it (under bmu). */
void svc__cluster_drop(svc *s);

/* svc__audit_writer - the audit writer thread's body; arg is the svc. */
void *svc__audit_writer(void *arg);

#endif
