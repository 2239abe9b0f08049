/*
 * conform_mutate.c - the conformance checks that change the source through
 * the target's mutate command, read permissions, and kill full reads.
 */
#include "conform_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/json.h"

/* Run the mutate command; 0 or FAIL reported under name. */
static int mutate(suite *s, const char *name, const char *verb, const char *stream,
                  const char *id, const char *principal)
{
    char script[4200];
    ctx_buf out = CTX_BUF_INIT;
    int rc;

    /* "$@" keeps ids with spaces or quotes intact. */
    snprintf(script, sizeof script, "%s \"$@\"", s->o->mutate);
    const char *argv[] = {"sh", "-c", script, "mutate", verb, stream, id, principal, NULL};
    if ((rc = cf__run_cmd(argv, s->o->mutate_dir, &out)))
        cf__report(s, FAIL, name, "`%s %s %s %s%s%s` exited with %d: %s", s->o->mutate, verb,
               stream, id, principal ? " " : "", principal ? principal : "", rc,
               out.data ? out.data : "");
    ctx_buf_free(&out);
    return rc;
}

/* Read stream on from its state after a change; rc, with FAIL reported. */
static int read_after(suite *s, const char *name, const char *stream, readout *r)
{
    cf__read_stream(s, stream, json_object_get(s->state, stream), 0, cf__held_of(s, stream), r);
    if (r->rc) {
        cf__report(s, FAIL, name, "stream %s: %s", stream, r->err.text);
        return r->rc;
    }
    if (cf__last_state(r->msgs))
        json_object_set(s->state, stream, cf__last_state(r->msgs));
    return CTX_OK;
}

/* The message about id among msgs of that type, or NULL. */
static json_t *find_msg(json_t *msgs, const char *type, const char *id)
{
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        if (!strcmp(cf__mtype(m), type) && !strcmp(cf__mid(m), id))
            return m;
    }
    return NULL;
}

static int in_list(json_t *list, const char *p)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (!strcmp(json_string_value(v), p))
            return 1;
    }
    return 0;
}

static void check_touch(suite *s, const char *stream, const char *id)
{
    const char *name = "incremental.changed", *other = NULL;
    readout r;
    size_t i;
    json_t *m;

    if (mutate(s, name, "touch", stream, id, NULL) || read_after(s, name, stream, &r))
        return;
    json_array_foreach(r.msgs, i, m) {
        const char *t = cf__mtype(m);
        if ((!strcmp(t, "RECORD") || !strcmp(t, "DELETE") || !strcmp(t, "ACL")) &&
            strcmp(cf__mid(m), id) && !other)
            other = cf__mid(m);
    }
    if (!find_msg(r.msgs, "RECORD", id))
        cf__report(s, FAIL, name, "after `touch %s %s` the next read sent no RECORD for it", stream,
                   id);
    else if (other)
        cf__report(s, FAIL, name, "after `touch %s %s` the next read also sent \"%s\", which did"
                   " not change", stream, id, other);
    else
        cf__report(s, PASS, name, "after `touch %s %s` the next read sends that item only", stream,
                   id);
    cf__readout_free(&r);
}

static void check_delete(suite *s, const char *stream, const char *id)
{
    readout r;

    if (mutate(s, "delete", "delete", stream, id, NULL) || read_after(s, "delete", stream, &r))
        return;
    if (find_msg(r.msgs, "DELETE", id))
        cf__report(s, PASS, "delete", "after `delete %s %s` the next read sends its DELETE", stream,
                   id);
    else
        cf__report(s, FAIL, "delete", "after `delete %s %s` the next read sent no DELETE for it;"
                   " a deleted item must disappear at the next sync", stream, id);
    cf__readout_free(&r);
}

static void check_revoke(suite *s, const char *stream, const char *id, const char *who)
{
    json_t *m, *acl;
    readout r;

    if (mutate(s, "revoke", "revoke", stream, id, who) || read_after(s, "revoke", stream, &r))
        return;
    if (!(m = find_msg(r.msgs, "ACL", id)))
        m = find_msg(r.msgs, "RECORD", id);
    acl = json_object_get(m, "acl");
    if (!m)
        cf__report(s, FAIL, "revoke", "after `revoke %s %s %s` the next read sent neither ACL nor"
                   " RECORD for it", stream, id, who);
    else if (!json_is_null(acl) && in_list(json_object_get(acl, "allow"), who) &&
             !in_list(json_object_get(acl, "deny"), who))
        cf__report(s, FAIL, "revoke", "after `revoke %s %s %s` the item's new %s still allows %s",
                   stream, id, who, cf__mtype(m), who);
    else
        cf__report(s, PASS, "revoke", "after `revoke %s %s %s` the next read's %s no longer"
                   " allows it", stream, id, who, cf__mtype(m));
    cf__readout_free(&r);
}

/* Change the source: one item touched, one deleted, one loses a principal. */
void cf__check_mutations(suite *s)
{
    static const char *const names[] = {"incremental.changed", "delete", "revoke"};
    const char *stream = NULL, *touch = NULL, *del = NULL, *rev = NULL, *who = NULL;
    json_t *msgs, *m;
    size_t i;

    if (!s->o->mutate) {
        for (i = 0; i < 3; i++)
            cf__report(s, SKIP, names[i], "no mutate command (--mutate CMD) to change the source;"
                       " see docs/connector-guide.md");
        return;
    }
    json_object_foreach(s->base, stream, msgs) {
        if (cf__count_type(msgs, "RECORD", &touch))
            break;
    }
    /* The last record is deleted; revoked is the first other one with an allow list. */
    json_array_foreach(msgs, i, m) {
        if (!strcmp(cf__mtype(m), "RECORD"))
            del = cf__mid(m);
    }
    json_array_foreach(msgs, i, m) {
        json_t *allow = json_object_get(json_object_get(m, "acl"), "allow");
        if (strcmp(cf__mtype(m), "RECORD") || !strcmp(cf__mid(m), del) || !json_array_size(allow))
            continue;
        rev = cf__mid(m);
        who = json_string_value(json_array_get(allow, 0));
        break;
    }
    check_touch(s, stream, touch);
    check_delete(s, stream, del);
    if (rev)
        check_revoke(s, stream, rev, who);
    else
        cf__report(s, SKIP, "revoke", "stream %s needs a second record with an allow list", stream);
}

/* ---- permission reads and interrupted full reads ---- */

/* acl_map - id -> acl of the RECORDs and ACLs among msgs (later wins; a
 * DELETE drops the id). New object. */
static json_t *acl_map(json_t *msgs, size_t *nrecords)
{
    json_t *map = json_object(), *m;
    size_t i;

    if (nrecords)
        *nrecords = 0;
    json_array_foreach(msgs, i, m) {
        const char *t = cf__mtype(m);
        if (!strcmp(t, "RECORD") || !strcmp(t, "ACL")) {
            json_object_set(map, cf__mid(m), json_object_get(m, "acl"));
            if (nrecords && !strcmp(t, "RECORD"))
                (*nrecords)++;
        } else if (!strcmp(t, "DELETE")) {
            json_object_del(map, cf__mid(m));
        }
    }
    return map;
}

/*
 * check_permissions - per document stream, a permission read sends no
 * RECORD, ends with a STATE, and names exactly the items a full read sends
 * now, each with the same ACL (the host prunes the rest, so one left out
 * would be deleted).
 */
void cf__check_permissions(suite *s)
{
    const char *stream, *bad = NULL;
    char why[600] = "";
    size_t nstreams = 0, nitems = 0;
    json_t *msgs;

    if (!registry_read_permissions(s->conn.vt)) {
        cf__report(s, SKIP, "read.permissions", "no xReadPermissions (ABI 2): permission syncs read"
                   " this connector in full");
        return;
    }
    json_object_foreach(s->base, stream, msgs) {
        readout full, perm;
        json_t *want, *have, *v;
        const char *id;
        size_t nrec = 0;

        if (!cf__count_type(msgs, "RECORD", NULL))
            continue; /* users and groups: the host reads those as usual */
        cf__read_stream(s, stream, json_object_get(s->state, stream), 1, NULL, &full);
        cf__read_stream(s, stream, NULL, CONFORM_READ_PERMISSIONS, NULL, &perm);
        want = acl_map(full.msgs, NULL);
        have = acl_map(perm.msgs, &nrec);
        if (full.rc || perm.rc)
            snprintf(why, sizeof why, "stream %s: %s", stream,
                     full.rc ? full.err.text : perm.err.text);
        else if (nrec)
            snprintf(why, sizeof why, "stream %s: %zu RECORDs; a permission read sends ACLs"
                     " (no bodies)", stream, nrec);
        else if (!cf__last_state(perm.msgs) ||
                 strcmp(cf__mtype(json_array_get(perm.msgs, json_array_size(perm.msgs) - 1)),
                        "STATE"))
            snprintf(why, sizeof why, "stream %s: the permission read does not end with a"
                     " STATE", stream);
        json_object_foreach(want, id, v) {
            if (why[0])
                break;
            if (!json_object_get(have, id))
                snprintf(why, sizeof why, "stream %s: item \"%.200s\" of the full read has no"
                         " ACL in the permission read (the host would delete it)", stream, id);
            else if (!json_equal(v, json_object_get(have, id)))
                snprintf(why, sizeof why, "stream %s: item \"%.200s\" has another ACL in the"
                         " permission read than in the full read", stream, id);
        }
        json_object_foreach(have, id, v) {
            if (why[0])
                break;
            if (!json_object_get(want, id))
                snprintf(why, sizeof why, "stream %s: the permission read names \"%.200s\","
                         " which the full read does not send", stream, id);
        }
        nstreams++;
        nitems += json_object_size(want);
        json_decref(want);
        json_decref(have);
        cf__readout_free(&full);
        cf__readout_free(&perm);
        if (why[0]) {
            bad = why;
            break;
        }
    }
    if (bad)
        cf__report(s, FAIL, "read.permissions", "%s", bad);
    else
        cf__report(s, PASS, "read.permissions", "%zu stream%s: the permission read names the same"
                   " %zu items with the same ACLs as a full read, no bodies, ends with a STATE",
                   nstreams, nstreams == 1 ? "" : "s", nitems);
}

/* Collect messages, and stop the read when `left` of them were taken. */
typedef struct stop_after {
    json_t *msgs;
    size_t left;
} stop_after;

static int collect_until(void *arg, json_t *msg)
{
    stop_after *a = arg;
    if (!a->left)
        return CTX_ECANCELED;
    a->left--;
    return json_array_append(a->msgs, msg) ? CTX_ENOMEM : 0;
}

/* add_items - the ids of the RECORDs and ACLs among msgs[0..n) into the set ids. */
static void add_items(json_t *ids, json_t *msgs, size_t n)
{
    for (size_t i = 0; i < n && i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        if (!strcmp(cf__mtype(m), "RECORD") || !strcmp(cf__mtype(m), "ACL"))
            json_object_set_new(ids, cf__mid(m), json_true());
    }
}

#define KILLS_PER_RUN 6

/*
 * kill_once - one full read stopped after k messages, then run again as a
 * full read from the last STATE it emitted (what the host committed), as
 * the host resumes an interrupted full run. *seen receives the items the
 * committed part and the rerun sent (new set). 0, or FAIL reported.
 */
static int kill_once(suite *s, const char *stream, size_t k, json_t **seen)
{
    stop_after a = {json_array(), k};
    json_t *state = json_object_get(s->state, stream), *committed_state = state;
    ctx_error err;
    readout r;
    size_t upto = 0;
    int rc;

    {
        char *text = state ? ctx_json_text(state, JSON_COMPACT) : NULL;
        rc = conform_read(&s->conn, stream, text, 1, collect_until, &a, NULL, NULL, &err);
        free(text);
    }
    if (rc && rc != CTX_ECANCELED) {
        cf__report(s, FAIL, "full.killed", "stream %s: full read stopped after %zu messages: %s",
                   stream, k, err.text);
        json_decref(a.msgs);
        return rc;
    }
    /* What the host committed: everything up to the last STATE taken. */
    for (size_t i = 0; i < json_array_size(a.msgs); i++)
        if (!strcmp(cf__mtype(json_array_get(a.msgs, i)), "STATE")) {
            upto = i + 1;
            committed_state = json_object_get(json_array_get(a.msgs, i), "state");
        }
    *seen = json_object();
    add_items(*seen, a.msgs, upto);
    cf__read_stream(s, stream, committed_state, 1, NULL, &r);
    json_decref(a.msgs);
    if (r.rc) {
        cf__report(s, FAIL, "full.killed", "stream %s: the rerun after a stop at message %zu"
                   " failed: %s", stream, k, r.err.text);
        cf__readout_free(&r);
        json_decref(*seen);
        *seen = NULL;
        return r.rc;
    }
    add_items(*seen, r.msgs, json_array_size(r.msgs));
    cf__readout_free(&r);
    return CTX_OK;
}

/*
 * check_killed_full - with mutate, delete one more item; then stop full
 * reads at random messages and run them again (kill_once): the items
 * neither the committed part nor the rerun sent, which the host prunes,
 * must be exactly the deleted one.
 */
void cf__check_killed_full(suite *s)
{
    const char *stream = NULL, *gone = NULL, *id;
    json_t *msgs = NULL, *stored, *m, *v;
    readout base;
    size_t i, n, kills[KILLS_PER_RUN];
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

    json_object_foreach(s->base, stream, msgs) {
        if (cf__count_type(msgs, "RECORD", NULL))
            break;
    }
    if (!stream)
        return;
    /* What the store holds now: the items of a full read. */
    cf__read_stream(s, stream, NULL, 1, NULL, &base);
    if (base.rc) {
        cf__report(s, FAIL, "full.killed", "stream %s: %s", stream, base.err.text);
        cf__readout_free(&base);
        return;
    }
    stored = json_object();
    add_items(stored, base.msgs, json_array_size(base.msgs));
    n = json_array_size(base.msgs);
    /* The victim: a record in the middle, so kills land before and after it. */
    json_array_foreach(base.msgs, i, m) {
        if (!strcmp(cf__mtype(m), "RECORD") && i >= n / 2) {
            gone = cf__mid(m);
            break;
        }
    }
    if (s->o->mutate && gone && mutate(s, "full.killed", "delete", stream, gone, NULL)) {
        json_decref(stored);
        cf__readout_free(&base);
        return;
    }
    if (!s->o->mutate)
        gone = NULL;
    srand(seed);
    for (size_t k = 0; k < KILLS_PER_RUN; k++) {
        json_t *seen = NULL;
        const char *pruned = NULL, *extra = NULL;
        kills[k] = n > 1 ? 1 + (size_t)rand() % (n - 1) : 1;
        if (kill_once(s, stream, kills[k], &seen))
            break;
        json_object_foreach(stored, id, v) {
            if (!json_object_get(seen, id) && (!gone || strcmp(id, gone)) && !pruned)
                pruned = id;
        }
        if (gone && json_object_get(seen, gone))
            extra = gone;
        json_decref(seen);
        if (pruned || extra) {
            cf__report(s, FAIL, "full.killed", "stream %s: full read stopped after %zu of %zu"
                       " messages (seed %u) and run again: %s\"%.200s\"%s", stream, kills[k], n,
                       seed, pruned ? "" : "the deleted item ", pruned ? pruned : extra,
                       pruned ? " was sent neither before the last STATE nor by the rerun: the"
                       " host would delete it" : " was sent again: it would stay");
            json_decref(stored);
            cf__readout_free(&base);
            return;
        }
        if (k + 1 == KILLS_PER_RUN)
            cf__report(s, PASS, "full.killed", "stream %s: %d full reads stopped at random"
                       " messages (seed %u, of %zu) and run again from their last STATE leave"
                       " out %s", stream, KILLS_PER_RUN, seed, n,
                       gone ? "exactly the deleted item" : "nothing");
    }
    json_decref(stored);
    cf__readout_free(&base);
}
