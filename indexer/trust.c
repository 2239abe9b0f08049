/*
 * trust.c - which sources' principal facts govern which source's documents
 * (source_trust, from the config), and schema v7's data step that gave
 * every ACL set a source. See "Whose facts count" in docs/architecture.md.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/config.h"
#include "../core/util.h"
#include "store.h"

/* ---- source_trust from the config ---------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The pairs cfg asks for, as "source\x1ftrusted" strings sorted bytewise. */
static int wanted_pairs(const ctx_config *cfg, ctx_strlist *out)
{
    size_t cap = 0;

    out->v = NULL;
    out->n = 0;
    for (size_t i = 0; i < cfg->nsources; i++) {
        const ctx_source_cfg *s = &cfg->sources[i];
        size_t extra = s->principals_from.n + (s->directory ? 1 : 0);
        for (size_t j = 0; j < extra; j++) {
            const char *who = j < s->principals_from.n ? s->name : "*";
            const char *trusted = j < s->principals_from.n ? s->principals_from.v[j] : s->name;
            ctx_buf b = CTX_BUF_INIT;
            if (out->n == cap) {
                char **v = ctx_realloc(out->v, (cap = cap ? cap * 2 : 8) * sizeof *v);
                if (!v)
                    return CTX_ENOMEM;
                out->v = v;
            }
            if (ctx_buf_printf(&b, "%s\x1f%s", who, trusted)) {
                ctx_buf_free(&b);
                return CTX_ENOMEM;
            }
            out->v[out->n++] = ctx_buf_steal(&b);
        }
    }
    if (out->n)
        qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return CTX_OK;
}

static void pairs_free(ctx_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        ctx_free(l->v[i]);
    ctx_free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* same_as_stored - does source_trust hold exactly want (sorted)? */
static int same_as_stored(ctx_store *st, const ctx_strlist *want, int *same, ctx_error *err)
{
    sqlite3_stmt *s;
    size_t i = 0;
    int rc;

    *same = 1;
    if (sqlite3_prepare_v2(store_db(st),
                           "SELECT source || char(31) || trusted FROM source_trust"
                           " ORDER BY 1", -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "read source trust");
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *have = (const char *)sqlite3_column_text(s, 0);
        if (i >= want->n || strcmp(have, want->v[i]))
            *same = 0;
        i++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return store_errf(st, err, "read source trust");
    if (i != want->n)
        *same = 0;
    return CTX_OK;
}

int store_trust_apply(ctx_store *st, const ctx_config *cfg, ctx_error *err)
{
    ctx_strlist want;
    sqlite3_stmt *ins = NULL;
    int rc, same;

    if ((rc = wanted_pairs(cfg, &want))) {
        pairs_free(&want);
        return ctx_error_set(err, rc, "store: out of memory");
    }
    if ((rc = same_as_stored(st, &want, &same, err)) || same)
        goto done;
    if ((rc = store_exec(st, "BEGIN IMMEDIATE", err)))
        goto done;
    if ((rc = store_exec(st, "DELETE FROM source_trust", err)))
        goto fail;
    if (sqlite3_prepare_v2(store_db(st),
                           "INSERT INTO source_trust(source, trusted) VALUES(?1, ?2)", -1,
                           &ins, NULL) != SQLITE_OK) {
        rc = store_errf(st, err, "write source trust");
        goto fail;
    }
    for (size_t i = 0; i < want.n; i++) {
        const char *sep = strchr(want.v[i], '\x1f');
        sqlite3_bind_text(ins, 1, want.v[i], (int)(sep - want.v[i]), SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, sep + 1, -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            rc = store_errf(st, err, "write source trust");
            goto fail;
        }
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    ins = NULL;
    rc = store_exec(st, "COMMIT", err);
    if (rc)
        goto fail;
    goto done;
fail:
    sqlite3_finalize(ins);
    store_exec(st, "ROLLBACK", NULL);
done:
    pairs_free(&want);
    return rc;
}

/* ---- schema v7: every ACL set gets its source --------------------------- */

typedef struct set_use {
    int64_t acl_id, source;
} set_use;

/* uses - every (ACL set, source) pair documents carry, ordered. *out new. */
static int uses(ctx_store *st, set_use **out, size_t *n, ctx_error *err)
{
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(store_db(st),
                           "SELECT DISTINCT acl_id, source_id FROM documents ORDER BY 1, 2",
                           -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "v7: read documents");
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            set_use *v = ctx_realloc(*out, (cap = cap ? cap * 2 : 64) * sizeof *v);
            if (!v) {
                sqlite3_finalize(s);
                return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
            }
            *out = v;
        }
        (*out)[*n].acl_id = sqlite3_column_int64(s, 0);
        (*out)[(*n)++].source = sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? CTX_OK : store_errf(st, err, "v7: read documents");
}

/* run - one statement with up to three integer parameters. */
static int run(ctx_store *st, const char *sql, int64_t a, int64_t b, int64_t c,
               const char *text, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "v7");
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_int64(s, 2, b);
    sqlite3_bind_int64(s, 3, c);
    if (text)
        sqlite3_bind_text(s, 4, text, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? CTX_OK : store_errf(st, err, "v7");
}

/* set_hash - the key acl_intern gives set acl_id in source (see acl_key). */
static int set_hash(ctx_store *st, int64_t acl_id, int64_t source, char hash[65],
                    ctx_error *err)
{
    sqlite3_stmt *s;
    ctx_buf key = CTX_BUF_INIT;
    int rc = CTX_OK;

    if (sqlite3_prepare_v2(store_db(st),
                           "SELECT allow_tokens, deny_tokens, label_tokens FROM acl_sets"
                           " WHERE id = ?1", -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "v7: read ACL set");
    sqlite3_bind_int64(s, 1, acl_id);
    if (sqlite3_step(s) != SQLITE_ROW)
        rc = store_errf(st, err, "v7: read ACL set");
    else if (ctx_buf_printf(&key, "s%lld|%s|%s|%s", (long long)source,
                            (const char *)sqlite3_column_text(s, 0),
                            (const char *)sqlite3_column_text(s, 1),
                            (const char *)sqlite3_column_text(s, 2)))
        rc = ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
    sqlite3_finalize(s);
    if (!rc) {
        const void *part = key.data;
        size_t plen = key.len;
        ctx_hash_hex(&part, &plen, 1, hash);
    }
    ctx_buf_free(&key);
    return rc;
}

/* copy_set - a copy of set acl_id owned by source; *copy its id. */
static int copy_set(ctx_store *st, int64_t acl_id, int64_t source, int64_t *copy,
                    ctx_error *err)
{
    char hash[65];
    int rc;

    if ((rc = set_hash(st, acl_id, source, hash, err)) ||
        (rc = run(st, "INSERT INTO acl_sets(hash, allow_tokens, deny_tokens, label_tokens,"
                      " source_id) SELECT ?4, allow_tokens, deny_tokens, label_tokens, ?2"
                      " FROM acl_sets WHERE id = ?1", acl_id, source, 0, hash, err)))
        return rc;
    *copy = sqlite3_last_insert_rowid(store_db(st));
    if ((rc = run(st, "INSERT INTO acl_entries(acl_id, deny, principal_id)"
                      " SELECT ?2, deny, principal_id FROM acl_entries WHERE acl_id = ?1",
                  acl_id, *copy, 0, NULL, err)))
        return rc;
    return run(st, "INSERT INTO acl_labels(acl_id, label_id)"
                   " SELECT ?2, label_id FROM acl_labels WHERE acl_id = ?1",
               acl_id, *copy, 0, NULL, err);
}

/* move_docs - source's documents of set from go to set to. */
static int move_docs(ctx_store *st, int64_t from, int64_t source, int64_t to, ctx_error *err)
{
    sqlite3_stmt *s;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = CTX_OK, step;

    /* Tombstones have no chunks: a plain update. */
    if ((rc = run(st, "UPDATE documents SET acl_id = ?3 WHERE acl_id = ?1 AND source_id = ?2"
                      " AND deleted = 1", from, source, to, NULL, err)))
        return rc;
    if (sqlite3_prepare_v2(store_db(st),
                           "SELECT id FROM documents WHERE acl_id = ?1 AND source_id = ?2"
                           " AND deleted = 0 ORDER BY id", -1, &s, NULL) != SQLITE_OK)
        return store_errf(st, err, "v7: read documents");
    sqlite3_bind_int64(s, 1, from);
    sqlite3_bind_int64(s, 2, source);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            int64_t *v = ctx_realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof *v);
            if (!v) {
                rc = ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
                break;
            }
            ids = v;
        }
        ids[n++] = sqlite3_column_int64(s, 0);
    }
    if (!rc && step != SQLITE_DONE)
        rc = store_errf(st, err, "v7: read documents");
    sqlite3_finalize(s);
    for (size_t i = 0; !rc && i < n; i++)
        rc = store_doc_set_acl(st, ids[i], to, err);
    ctx_free(ids);
    return rc;
}

int store__v7_split_sets(ctx_store *st, ctx_error *err)
{
    set_use *u = NULL;
    size_t n = 0;
    char hash[65];
    int rc;

    if ((rc = uses(st, &u, &n, err)))
        goto done;
    for (size_t i = 0; i < n && !rc; i++) {
        if (i == 0 || u[i - 1].acl_id != u[i].acl_id) {
            /* The first source keeps the set itself. */
            if (!(rc = set_hash(st, u[i].acl_id, u[i].source, hash, err)))
                rc = run(st, "UPDATE acl_sets SET source_id = ?2, hash = ?4 WHERE id = ?1",
                         u[i].acl_id, u[i].source, 0, hash, err);
        } else {
            int64_t copy;
            if (!(rc = copy_set(st, u[i].acl_id, u[i].source, &copy, err)))
                rc = move_docs(st, u[i].acl_id, u[i].source, copy, err);
        }
    }
    if (rc)
        goto done;
    /* Sets no document carries belong to no source (0): nobody reads them. */
    {
        sqlite3_stmt *s;
        int64_t *ids = NULL;
        size_t k = 0, cap = 0;
        if (sqlite3_prepare_v2(store_db(st),
                               "SELECT id FROM acl_sets WHERE id NOT IN"
                               " (SELECT acl_id FROM documents)", -1, &s, NULL) != SQLITE_OK) {
            rc = store_errf(st, err, "v7: read ACL sets");
            goto done;
        }
        while (!rc && sqlite3_step(s) == SQLITE_ROW) {
            if (k == cap) {
                int64_t *v = ctx_realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof *v);
                if (!v)
                    rc = ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
                else
                    ids = v;
            }
            if (!rc)
                ids[k++] = sqlite3_column_int64(s, 0);
        }
        sqlite3_finalize(s);
        for (size_t i = 0; !rc && i < k; i++)
            if (!(rc = set_hash(st, ids[i], 0, hash, err)))
                rc = run(st, "UPDATE acl_sets SET hash = ?4 WHERE id = ?1", ids[i], 0, 0, hash,
                         err);
        ctx_free(ids);
    }
done:
    ctx_free(u);
    return rc;
}
