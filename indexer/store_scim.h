/*
 * store_scim.h - the users and groups an identity provider provisions over
 * SCIM 2.0 into a source of type "scim" (retrieval/scim.c speaks the
 * protocol), and the principal facts they stand for in that source's name:
 * declarations, account mappings, memberships and deprovisioning blocks.
 * See "SCIM provisioning" in docs/architecture.md.
 */
#ifndef CTX_INDEXER_STORE_SCIM_H
#define CTX_INDEXER_STORE_SCIM_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A resource to write. Everything borrowed for the call. */
typedef struct store_scim_res {
    const char *id;                 /* the SCIM id (server-assigned) */
    int kind;                       /* CTX_PRINCIPAL_USER or CTX_PRINCIPAL_GROUP */
    const char *name;               /* userName / displayName; unique per kind,
                                     * compared ASCII case-insensitively */
    const char *external_id;        /* or NULL */
    int active;                     /* users: 0 = deprovisioned; groups: 1 */
    const char *body;               /* the resource's JSON text, kept as given */
    const char *principal;          /* "user:..." / "group:..." it stands for */
    const char *display, *email;    /* for the principal's row; may be NULL */
    const char *const *aliases;     /* users: other "user:..." names mapped to it */
    size_t naliases;
    const char *const *members;     /* groups: SCIM ids of member users and groups */
    size_t nmembers;
} store_scim_res;

/* Why store_scim_put refused (with CTX_EINVAL). */
enum {
    STORE_SCIM_CONFLICT = 1,        /* the name or the principal is taken */
    STORE_SCIM_BAD_MEMBER = 2,      /* a member id names no resource, or the group */
};

/* A stored resource as read back. Strings new: store_scim_row_free. */
typedef struct store_scim_row {
    char *id, *name, *external_id, *body, *principal;
    int kind, active;
    int64_t created_at, modified_at, version;   /* ms since the epoch; 1, 2, ... */
} store_scim_row;

void store_scim_row_free(store_scim_row *r);

/*
 * store_scim_put - create (create = 1) or replace resource r of source and
 * bring the source's principal facts in line with it, in one transaction
 * of its own:
 *   - an active user declares its principal and maps each alias to it, and
 *     is a member of the principal of every group listing it; any block
 *     on those names that source placed is lifted;
 *   - an inactive user contributes no facts, and its names are blocked;
 *   - a group declares its principal with its active members' principals;
 *   - names a user held before and holds no more (renamed, alias gone) are
 *     blocked, unless another active user of the source holds them.
 * Refusals: CTX_ENOTFOUND (replace of a missing id or another kind),
 * CTX_EINVAL with *why (STORE_SCIM_*) and a message naming the field.
 */
int store_scim_put(ctx_store *st, int64_t source, const store_scim_res *r, int create,
                   int *why, ctx_error *err);

/*
 * store_scim_delete - delete the resource (own transaction): its facts go,
 * it leaves every group, and a user's names stay blocked (as above) until
 * an active user of the source holds them again. CTX_ENOTFOUND when
 * source has no resource id of kind.
 */
int store_scim_delete(ctx_store *st, int64_t source, int kind, const char *id,
                      ctx_error *err);

/* store_scim_get - resource id of kind into *out; CTX_ENOTFOUND when none. */
int store_scim_get(ctx_store *st, int64_t source, int kind, const char *id,
                   store_scim_row *out, ctx_error *err);

/*
 * store_scim_members - call fn for each member of group_id, in id order:
 * its SCIM id, name and kind (borrowed for the call). A non-zero return
 * of fn stops and is returned.
 */
typedef int (*store_scim_member_fn)(void *arg, const char *id, const char *name, int kind);
int store_scim_members(ctx_store *st, int64_t source, const char *group_id,
                       store_scim_member_fn fn, void *arg, ctx_error *err);

/*
 * store_scim_list - the resources of kind in creation order, *total of
 * them matching, fn called for at most count of them from the start'th
 * (1-based). attr: NULL (all), "name" (ASCII case-insensitive equality),
 * "externalId" or "id" (exact), or "email" (one of the emails' values,
 * ASCII case-insensitively), compared with value. Rows borrowed for the
 * call; a non-zero return of fn stops and is returned.
 */
typedef int (*store_scim_row_fn)(void *arg, const store_scim_row *row);
int store_scim_list(ctx_store *st, int64_t source, int kind, const char *attr,
                    const char *value, int64_t start, int64_t count, store_scim_row_fn fn,
                    void *arg, int64_t *total, ctx_error *err);

#endif
