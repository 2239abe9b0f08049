/*
 * conform_int.h - what the conformance suite's files share (connectors/
 * conformance.c runs a connector by hand; conform_suite.c, conform_mutate.c
 * and conform_schema.c are the suite). Not a face: conformance.h is.
 */
#ifndef CTX_CONFORM_INT_H
#define CTX_CONFORM_INT_H

#include "conformance.h"

#include "../core/util.h"

enum { PASS, FAIL, SKIP };

typedef struct suite {
    const conform_target *t;
    const conform_opts *o;
    FILE *out;
    conform_report *rep;
    registry_conn conn;
    json_t *keys;         /* what xOpen was given */
    json_t *streams;      /* [name, ...] */
    json_t *base;         /* stream -> messages of the first read */
    json_t *state;        /* stream -> the last STATE (object) read so far */
    json_t *held;         /* stream -> {id: true} a host would hold after the reads so far */
} suite;

/* One read's messages and outcome. */
typedef struct readout {
    json_t *msgs;
    size_t problems;
    ctx_buf why;
    ctx_error err;
    int rc;
} readout;

void cf__report(suite *s, int status, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * cf__read_stream - a read through a host that holds the ids in held
 * (an object, updated by the read; NULL: a host that keeps nothing).
 */
void cf__read_stream(suite *s, const char *stream, json_t *state, int full, json_t *held,
                     readout *r);
json_t *cf__held_of(suite *s, const char *stream);
void cf__readout_free(readout *r);
const char *cf__mtype(json_t *m);
const char *cf__mid(json_t *m);
json_t *cf__last_state(json_t *msgs);
void cf__add_ids(json_t *ids, json_t *msgs, size_t n);
const char *cf__missing_id(json_t *want, json_t *have);
size_t cf__count_type(json_t *msgs, const char *type, const char **first_id);
int cf__run_cmd(const char *const *argv, const char *dir, ctx_buf *out);

/*
 * cf__read_to_first_record - a read whose host asks it to stop at its
 * first RECORD: the connector's rc, whether it was asked (*stopped) and how
 * many host calls it made after that (*after_stop).
 */
int cf__read_to_first_record(registry_conn *conn, const char *stream, int *stopped,
                             size_t *after_stop);

/* JSON Schema (conform_schema.c): a spec's shape, and a value against it. */
int cf__why_add(ctx_buf *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cf__schema_shape(json_t *sc, const char *path, ctx_buf *why);
int cf__schema_validate(json_t *sc, json_t *v, const char *path, ctx_buf *why);

/* The checks that change the source (conform_mutate.c). */
void cf__check_mutations(suite *s);
void cf__check_permissions(suite *s);
void cf__check_killed_full(suite *s);

#endif
