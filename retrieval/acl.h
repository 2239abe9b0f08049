/*
 * acl.h - who a caller is in terms of principals: the user, the source
 * accounts mapped to them, every group reached through (nested)
 * memberships, and "everyone", each as one source's facts (and those of
 * the sources it trusts) say. Unknown users resolve to nothing.
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
 * acl_resolve - the principal ids of user ("user:alice@x" or "alice@x") in
 * any source's view. Which of them count for a document depends on its
 * source (only the facts of that source and of the sources it trusts do),
 * so this is a superset for narrowing a search, never a permission check.
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
 * acl_label_filter - what a readable ACL set must also be: its labels an
 * agent's grant allows (every label of the set among the nallowed
 * `allowed`; NULL = any, so none granted is a non-NULL `allowed` with
 * nallowed 0) and a request's filter wants (one of `wanted`; none given =
 * no such need), and its source not withheld (`withheld`: sorted store ids
 * of sources whose permissions are too old, see fresh.h). An unlabeled set
 * passes `allowed` and fails a non-empty `wanted`.
 */
typedef struct acl_label_filter {
    const char *const *allowed;
    size_t nallowed;
    const char *const *wanted;
    size_t nwanted;
    const int64_t *withheld;
    size_t nwithheld;
} acl_label_filter;

/*
 * acl__ids_json - (retrieval-internal) ids as a JSON array appended to *b,
 * for binding to json_each(). Nonzero when out of memory.
 */
int acl__ids_json(ctx_buf *b, const int64_t *ids, size_t n);

/*
 * acl_readable_filter - of the readable ACL sets (sorted ids, as in
 * acl_access), those lf lets through (NULL: all). out->ids (new;
 * sorted ascending, reusing acl_principals as an id list) must be
 * acl_principals_free'd.
 */
int acl_readable_filter(sqlite3 *db, const acl_principals *readable,
                        const acl_label_filter *lf, acl_principals *out, ctx_error *err);

/*
 * acl_access - what a caller may read, as both search legs need it: the
 * user's principals (acl_resolve's superset), those of them some allow or
 * deny list names, and the ACL sets they may read (each set judged by its
 * own source's view; no label filter). Each list is sorted ascending.
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
