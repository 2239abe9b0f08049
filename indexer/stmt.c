/*
 * stmt.c - prepared statements kept per connection (see stmt.h).
 */
#include "stmt.h"

#include <pthread.h>
#include <string.h>

#include "../core/ctx.h"

/* Statements kept per connection; past this, stmt_put finalizes. */
#define STMT_CACHE_MAX 64

typedef struct entry {
    sqlite3_stmt *s;
    int busy;               /* handed out, not yet given back */
} entry;

typedef struct cache {
    sqlite3 *db;
    entry v[STMT_CACHE_MAX];
    int n;
    struct cache *next;
} cache;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static cache *caches;

static cache *find(sqlite3 *db)
{
    for (cache *c = caches; c; c = c->next)
        if (c->db == db)
            return c;
    return NULL;
}

/*
 * Whether e holds sql: equal text, whatever the address. A caller may
 * build two queries in one buffer, so the same pointer is not the same
 * SQL; the compare costs tens of nanoseconds against a query's hundreds
 * of microseconds.
 */
static int same_sql(const entry *e, const char *sql)
{
    return !strcmp(sqlite3_sql(e->s), sql);
}

int stmt_get(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    cache *c;
    int rc;

    pthread_mutex_lock(&mu);
    if ((c = find(db))) {
        for (int i = 0; i < c->n; i++) {
            entry *e = &c->v[i];
            if (!e->busy && same_sql(e, sql)) {
                e->busy = 1;
                *out = e->s;
                pthread_mutex_unlock(&mu);
                return SQLITE_OK;
            }
        }
    }
    pthread_mutex_unlock(&mu);

    if ((rc = sqlite3_prepare_v2(db, sql, -1, out, NULL)) != SQLITE_OK || !*out)
        return rc;
    pthread_mutex_lock(&mu);
    if (!(c = find(db)) && (c = ctx_calloc(1, sizeof *c))) {
        c->db = db;
        c->next = caches;
        caches = c;
    }
    if (c && c->n < STMT_CACHE_MAX)
        c->v[c->n++] = (entry){*out, 1};
    pthread_mutex_unlock(&mu);
    return SQLITE_OK;
}

void stmt_put(sqlite3_stmt *s)
{
    cache *c;

    if (!s)
        return;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    pthread_mutex_lock(&mu);
    if ((c = find(sqlite3_db_handle(s)))) {
        for (int i = 0; i < c->n; i++) {
            if (c->v[i].s == s) {
                c->v[i].busy = 0;
                pthread_mutex_unlock(&mu);
                return;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    sqlite3_finalize(s); /* the cache was full when it was prepared */
}

void stmt_close(sqlite3 *db)
{
    cache *c = NULL, **pp;

    pthread_mutex_lock(&mu);
    for (pp = &caches; *pp; pp = &(*pp)->next) {
        if ((*pp)->db == db) {
            c = *pp;
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        sqlite3_finalize(c->v[i].s);
    ctx_free(c);
}

fts5_api *stmt_fts5_api(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *s;

    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &s, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_pointer(s, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(s);
    sqlite3_finalize(s);
    return api;
}
