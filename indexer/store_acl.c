/*
 * store_acl.c - who may read what: principals, memberships and identity
 * mappings as sources declare them, labels, and ACL sets interned once per
 * (source, lists) with a memo of recently interned ones.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

static int principal_kind(const char *name)
{
    if (!strncmp(name, "user:", 5))
        return CTX_PRINCIPAL_USER;
    if (!strncmp(name, "group:", 6))
        return CTX_PRINCIPAL_GROUP;
    if (!strcmp(name, "everyone"))
        return 3;
    return 0;
}

int store_principal_id(ctx_store *st, const char *name, int64_t *id, ctx_error *err)
{
    sqlite3_stmt *s;
    ctx_buf fixed = CTX_BUF_INIT;
    int rc, kind;

    /* One spelling per principal: repair here, where every name passes. */
    if (!ctx_utf8_valid(name, strlen(name))) {
        if (ctx_utf8_repair(name, strlen(name), &fixed, NULL))
            return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
        rc = store_principal_id(st, fixed.data, id, err);
        ctx_buf_free(&fixed);
        return rc;
    }
    kind = principal_kind(name);

    if (!kind || (kind != 3 && !name[kind == CTX_PRINCIPAL_USER ? 5 : 6]))
        return ctx_error_set(err, CTX_EINVAL,
                             "principal \"%s\": expected \"user:<id>\", \"group:<id>\""
                             " or \"everyone\"", name);
    if (!(s = store__stmt(st, Q_PRIN_GET, err)))
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if ((rc = store__get_id(st, s, id, err, "look up principal")) || *id)
        return rc;
    if (!(s = store__stmt(st, Q_PRIN_ADD, err)))
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, kind);
    if ((rc = store__step_done(st, s, err, "add principal")))
        return rc;
    *id = sqlite3_last_insert_rowid(st->db);
    return CTX_OK;
}

/* principal_declare - source says principal id exists (see declared_by). */
static int principal_declare(ctx_store *st, int64_t id, int64_t source, const char *display,
                             const char *email, ctx_error *err)
{
    sqlite3_stmt *s = store__stmt(st, Q_PRIN_DECLARE, err);
    int rc;

    if (!s)
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, 1);
    sqlite3_bind_text(s, 3, display, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, email, -1, SQLITE_STATIC);
    if ((rc = store__step_done(st, s, err, "declare principal")))
        return rc;
    if (!(s = store__stmt(st, Q_DECLARED_BY, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, source);
    return store__step_done(st, s, err, "declare principal");
}

int store_principal_put(ctx_store *st, int64_t source, const ctx_principal *p,
                        ctx_error *err)
{
    sqlite3_stmt *s;
    int64_t id, other;
    int rc;
    size_t i;

    if (!p->id || principal_kind(p->id) != p->kind)
        return ctx_error_set(err, CTX_EINVAL,
                             "PRINCIPAL \"%s\": id must start with \"%s\"",
                             p->id ? p->id : "(null)",
                             p->kind == CTX_PRINCIPAL_GROUP ? "group:" : "user:");
    if ((rc = store_principal_id(st, p->id, &id, err)))
        return rc;

    if (p->kind == CTX_PRINCIPAL_USER) {
        if (p->maps_to) {
            /*
             * A source-local account: the canonical user it stands for is
             * the one who logs in, so only that user is declared.
             */
            if (principal_kind(p->maps_to) != CTX_PRINCIPAL_USER)
                return ctx_error_set(err, CTX_EINVAL,
                                     "PRINCIPAL \"%s\": maps_to \"%s\" must be a user:",
                                     p->id, p->maps_to);
            if ((rc = store_principal_id(st, p->maps_to, &other, err)) ||
                (rc = principal_declare(st, other, source, NULL, p->email, err)))
                return rc;
            if (other == id)
                return CTX_OK;
            if (!(s = store__stmt(st, Q_IDENT_PUT, err)))
                return CTX_ESTORE;
            sqlite3_bind_int64(s, 1, id);
            sqlite3_bind_int64(s, 2, source);
            sqlite3_bind_int64(s, 3, other);
            return store__step_done(st, s, err, "map account");
        }
        if (!(s = store__stmt(st, Q_IDENT_DEL, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, source);
        if ((rc = store__step_done(st, s, err, "unmap account")))
            return rc;
        return principal_declare(st, id, source, p->display_name, p->email, err);
    }

    if ((rc = principal_declare(st, id, source, p->display_name, NULL, err)))
        return rc;
    if (!(s = store__stmt(st, Q_MEMB_CLEAR, err)))
        return CTX_ESTORE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, source);
    if ((rc = store__step_done(st, s, err, "clear members")))
        return rc;
    for (i = 0; i < p->n_members; i++) {
        if ((rc = store_principal_id(st, p->members[i], &other, err))) {
            ctx_error_prefix(err, "PRINCIPAL \"%s\": members[%zu]: ", p->id, i);
            return rc;
        }
        if (principal_kind(p->members[i]) == 3)
            return ctx_error_set(err, CTX_EINVAL,
                                 "PRINCIPAL \"%s\": members[%zu]: \"everyone\" cannot be"
                                 " a member; allow \"everyone\" on the item instead",
                                 p->id, i);
        if (!(s = store__stmt(st, Q_MEMB_ADD, err)))
            return CTX_ESTORE;
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, other);
        sqlite3_bind_int64(s, 3, source);
        if ((rc = store__step_done(st, s, err, "add member")))
            return rc;
    }
    return CTX_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* label_id - the id of a label, interned when new; spelled as valid UTF-8. */
static int label_id(ctx_store *st, const char *name, int64_t *id, ctx_error *err)
{
    ctx_buf fixed = CTX_BUF_INIT;
    sqlite3_stmt *s;
    int rc;

    if (!ctx_utf8_valid(name, strlen(name))) {
        if (ctx_utf8_repair(name, strlen(name), &fixed, NULL))
            return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
        rc = label_id(st, fixed.data, id, err);
        ctx_buf_free(&fixed);
        return rc;
    }
    if (!(s = store__stmt(st, Q_LABEL_GET, err)))
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if ((rc = store__get_id(st, s, id, err, "look up label")) || *id)
        return rc;
    if (!(s = store__stmt(st, Q_LABEL_ADD, err)))
        return CTX_ESTORE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if ((rc = store__step_done(st, s, err, "add label")))
        return rc;
    *id = sqlite3_last_insert_rowid(st->db);
    return CTX_OK;
}

/* Sorted, de-duplicated ids of names; interning each name as needed. */
static int intern_list(ctx_store *st, const char *const *names, size_t n, int labels,
                       int64_t **out, size_t *nout, ctx_error *err)
{
    int64_t *ids = ctx_calloc(n ? n : 1, sizeof *ids);
    size_t i, k = 0;
    int rc = CTX_OK;

    if (!ids)
        return ctx_error_set(err, CTX_ENOMEM, "store: out of memory");
    for (i = 0; i < n; i++) {
        if (!names[i]) {
            rc = ctx_error_set(err, CTX_EINVAL, "ACL entry %zu is NULL", i);
            goto fail;
        }
        if (labels) {
            if ((rc = label_id(st, names[i], &ids[i], err)))
                goto fail;
        } else if ((rc = store_principal_id(st, names[i], &ids[i], err))) {
            goto fail;
        }
    }
    qsort(ids, n, sizeof *ids, cmp_i64);
    for (i = 0; i < n; i++)
        if (!k || ids[k - 1] != ids[i])
            ids[k++] = ids[i];
    *out = ids;
    *nout = k;
    return CTX_OK;
fail:
    ctx_free(ids);
    return rc;
}

static int tokens(ctx_buf *b, char prefix, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ctx_buf_printf(b, "%s%c%lld", i ? " " : "", prefix, (long long)ids[i]))
            return CTX_ENOMEM;
    return ctx_buf_append(b, "", 0);
}

static int acl_intern(ctx_store *st, int64_t source, const ctx_acl *acl, int64_t *acl_id,
                      ctx_error *err);

/*
 * acl_key - what an ACL set's hash is taken of: its source and its tokens.
 * The same lists in two sources are two sets (schema v7), each read with
 * its own source's view of the caller.
 */
static int acl_key(ctx_buf *b, int64_t source, const char *allow, const char *deny,
                   const char *labels)
{
    return ctx_buf_printf(b, "s%lld|%s|%s|%s", (long long)source, allow, deny, labels);
}

static int memo_key(int64_t source, const ctx_acl *acl, ctx_buf *b, uint32_t *h)
{
    const char *const *lists[3] = {acl->allow, acl->deny, acl->labels};
    size_t ns[3] = {acl->n_allow, acl->n_deny, acl->labels ? acl->n_labels : 0};
    char num[24];
    size_t at = sizeof num;
    uint64_t v = (uint64_t)source;

    /* The source's digits by hand: a printf was a third of a memo hit. */
    num[--at] = '\x1f';
    do {
        num[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (ctx_buf_append(b, num + at, sizeof num - at))
        return -1;

    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < ns[i]; j++)
            if (!lists[i][j] || ctx_buf_puts(b, lists[i][j]) || ctx_buf_append(b, "\x1e", 1))
                return -1;
        if (ctx_buf_append(b, "\x1f", 1))
            return -1;
    }
    *h = 2166136261u;
    for (size_t i = 0; i < b->len; i++)
        *h = (*h ^ (unsigned char)b->data[i]) * 16777619u;
    return 0;
}

/* memo_slot - the first (which 0) or second (1) slot of a key of hash h. */
static size_t memo_slot(uint32_t h, int which)
{
    return which ? (h / ACL_CACHE) % ACL_CACHE : h % ACL_CACHE;
}

/*
 * memo_put - key (stolen) -> acl_id into its first slot; the entry there
 * moves to its own other slot, and the one in that slot is forgotten.
 */
static void memo_put(ctx_store *st, char *key, uint32_t h, int64_t acl_id)
{
    size_t at = memo_slot(h, 0);
    acl_memo *m = &st->memo[at];

    if (m->key) {
        size_t other = memo_slot(m->hash, memo_slot(m->hash, 0) == at);
        if (other != at) {
            ctx_free(st->memo[other].key);
            st->memo[other] = *m;
            m->key = NULL;
        }
    }
    ctx_free(m->key);
    m->key = key;
    m->acl_id = acl_id;
    m->hash = h;
}

int store_acl_intern(ctx_store *st, int64_t source, const ctx_acl *acl, int64_t *acl_id,
                     ctx_error *err)
{
    ctx_buf *mk = &st->memo_buf;
    int memo = 0, rc;
    uint32_t h = 0;

    ctx_buf_reset(mk);
    if (acl && !memo_key(source, acl, mk, &h)) {
        memo = 1;
        for (int i = 0; i < 2; i++) {
            const acl_memo *m = &st->memo[memo_slot(h, i)];
            if (m->key && m->hash == h && !strcmp(m->key, mk->data)) {
                *acl_id = m->acl_id;
                return CTX_OK;
            }
        }
    }
    rc = acl_intern(st, source, acl, acl_id, err);
    if (!rc && memo)
        memo_put(st, ctx_strdup(mk->data), h, *acl_id);
    return rc;
}

static int acl_intern(ctx_store *st, int64_t source, const ctx_acl *acl, int64_t *acl_id,
                      ctx_error *err)
{
    static const ctx_acl none = {NULL, 0, NULL, 0, NULL, 0};
    int64_t *ids[3] = {NULL, NULL, NULL};
    size_t n[3] = {0, 0, 0};
    ctx_buf tok[3] = {CTX_BUF_INIT, CTX_BUF_INIT, CTX_BUF_INIT}, key = CTX_BUF_INIT;
    sqlite3_stmt *s;
    char hash[65];
    const void *part;
    size_t plen;
    int rc, i;
    size_t j;

    if (!acl)
        acl = &none;
    if ((rc = intern_list(st, acl->allow, acl->n_allow, 0, &ids[0], &n[0], err)) ||
        (rc = intern_list(st, acl->deny, acl->n_deny, 0, &ids[1], &n[1], err)) ||
        (rc = intern_list(st, acl->labels, acl->n_labels, 1, &ids[2], &n[2], err)))
        goto done;
    rc = CTX_ENOMEM;
    if (tokens(&tok[0], 'p', ids[0], n[0]) || tokens(&tok[1], 'p', ids[1], n[1]) ||
        tokens(&tok[2], 'l', ids[2], n[2]) ||
        acl_key(&key, source, tok[0].data, tok[1].data, tok[2].data)) {
        ctx_error_set(err, rc, "store: out of memory");
        goto done;
    }
    part = key.data;
    plen = key.len;
    ctx_hash_hex(&part, &plen, 1, hash);

    rc = CTX_ESTORE;
    if (!(s = store__stmt(st, Q_ACL_GET, err)))
        goto done;
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
    if ((rc = store__get_id(st, s, acl_id, err, "look up ACL")) || *acl_id)
        goto done;
    rc = CTX_ESTORE;
    if (!(s = store__stmt(st, Q_ACL_ADD, err)))
        goto done;
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
    for (i = 0; i < 3; i++)
        sqlite3_bind_text(s, 2 + i, tok[i].data, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, source);
    if ((rc = store__step_done(st, s, err, "add ACL")))
        goto done;
    *acl_id = sqlite3_last_insert_rowid(st->db);
    for (i = 0; i < 2; i++) {
        for (j = 0; j < n[i]; j++) {
            rc = CTX_ESTORE;
            if (!(s = store__stmt(st, Q_ACL_ENTRY, err)))
                goto done;
            sqlite3_bind_int64(s, 1, *acl_id);
            sqlite3_bind_int(s, 2, i);
            sqlite3_bind_int64(s, 3, ids[i][j]);
            if ((rc = store__step_done(st, s, err, "add ACL entry")))
                goto done;
        }
    }
    for (j = 0; j < n[2]; j++) {
        rc = CTX_ESTORE;
        if (!(s = store__stmt(st, Q_ACL_LABEL, err)))
            goto done;
        sqlite3_bind_int64(s, 1, *acl_id);
        sqlite3_bind_int64(s, 2, ids[2][j]);
        if ((rc = store__step_done(st, s, err, "add ACL label")))
            goto done;
    }
    rc = CTX_OK;
done:
    for (i = 0; i < 3; i++) {
        ctx_free(ids[i]);
        ctx_buf_free(&tok[i]);
    }
    ctx_buf_free(&key);
    return rc;
}

int store_acl_everyone(ctx_store *st, int64_t acl_id, int *yes, ctx_error *err)
{
    int64_t n;
    int rc = store__one_int(st,
                            "SELECT count(*) FROM acl_entries WHERE acl_id = ?1 AND deny = 0"
                            " AND principal_id = (SELECT id FROM principals"
                            " WHERE name = 'everyone')",
                            acl_id, NULL, 0, &n, "read ACL", err);
    *yes = n > 0;
    return rc;
}
