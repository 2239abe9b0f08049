/*
 * acl.h - who a caller is in terms of principals: the user, the source
 * accounts mapped to them, every group reached through (nested)
 * memberships, and "everyone". Unknown users resolve to nothing.
 */
#ifndef CTX_RETRIEVAL_ACL_H
#define CTX_RETRIEVAL_ACL_H

#include <sqlite3.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "../core/util.h"

typedef struct acl_principals {
    int64_t *ids;   /* sorted ascending, owned */
    size_t n;
} acl_principals;

/*
 * acl_resolve - the principal ids of user ("user:alice@x" or "alice@x").
 * An unknown or undeclared user gives CTX_ENOTFOUND and an empty set: the
 * caller must then return nothing. *out must be acl_principals_free'd.
 */
int acl_resolve(sqlite3 *db, const char *user, acl_principals *out, ctx_error *err);

void acl_principals_free(acl_principals *p);

/*
 * acl__collect - (retrieval-internal) step s to the end, collecting column 0
 * of each row into *out, and give s back (stmt_put) whatever happens: s
 * comes from stmt_get.
 */
int acl__collect(sqlite3_stmt *s, acl_principals *out, ctx_error *err);

/*
 * acl_label_filter - the labels a readable ACL set may and must carry: an
 * agent's grant (every label of the set among the nallowed `allowed`; NULL
 * = any, so none granted is a non-NULL `allowed` with nallowed 0) and a
 * request's filter (one of `wanted`; none given = no such need). An
 * unlabeled set passes `allowed` and fails a non-empty `wanted`.
 */
typedef struct acl_label_filter {
    const char *const *allowed;
    size_t nallowed;
    const char *const *wanted;
    size_t nwanted;
} acl_label_filter;

/*
 * acl__ids_json - (retrieval-internal) ids as a JSON array appended to *b,
 * for binding to json_each(). Nonzero when out of memory.
 */
int acl__ids_json(ctx_buf *b, const int64_t *ids, size_t n);

/*
 * acl_readable_sets - the ACL sets that principals pr may read: allowed to
 * one of them and denied to none (the same rule lexical search applies),
 * and, with lf, whose labels pass it. out->ids (new; sorted ascending,
 * reusing acl_principals as an id list) must be acl_principals_free'd. No
 * principals: an empty set.
 */
int acl_readable_sets(sqlite3 *db, const acl_principals *pr, const acl_label_filter *lf,
                      acl_principals *out, ctx_error *err);

/*
 * acl_access - what a caller may read, as both search legs need it: the
 * user's principals, those of them some allow or deny list names, and the
 * ACL sets they may read (no label filter). Each list is sorted ascending.
 */
typedef struct acl_access {
    acl_principals principals, allow, deny, readable;
} acl_access;

/*
 * acl_access_get - user's access. Answers come from a process-wide cache
 * (per store file and user) while the store's access generation (bumped by
 * triggers on every change to principals, memberships, identities and ACL
 * entries) is the one they were computed at; else computed afresh. An
 * unknown user is CTX_ENOTFOUND with every list empty. *out (new) must be
 * acl_access_free'd whatever the result.
 */
int acl_access_get(sqlite3 *db, const char *user, acl_access *out, ctx_error *err);
void acl_access_free(acl_access *a);

/* acl_user_name - "user:" + user unless it already has a principal prefix. */
void acl_user_name(const char *user, char *buf, size_t len);

#endif
