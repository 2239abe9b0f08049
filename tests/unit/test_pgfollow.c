/*
 * test_pgfollow.c - the replica's reading of pgoutput messages
 * (indexer/pgfollow_apply.c) without a server: transactions counted and
 * the LSN moved at COMMIT, transactions at or below the stored LSN
 * skipped, marks moving the LSN, changes to tables it does not follow
 * ignored, and every message cut short refused as malformed, never read
 * past its end.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/pgfollow_int.h"

typedef struct msg {
    unsigned char b[256];
    size_t n;
} msg;

static void put(msg *m, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        m->b[m->n++] = (unsigned char)(v >> (8 * i));
}

static void put_str(msg *m, const char *s)
{
    size_t len = strlen(s) + 1;

    memcpy(m->b + m->n, s, len);
    m->n += len;
}

static msg begin(uint64_t final_lsn)
{
    msg m = {{0}, 0};

    put(&m, 'B', 1);
    put(&m, final_lsn, 8);
    put(&m, 0, 8);     /* commit time */
    put(&m, 42, 4);    /* xid */
    return m;
}

static msg commit(uint64_t lsn, uint64_t end)
{
    msg m = {{0}, 0};

    put(&m, 'C', 1);
    put(&m, 0, 1);
    put(&m, lsn, 8);
    put(&m, end, 8);
    put(&m, 0, 8);
    return m;
}

/* A RELATION message for public.other (id int, b text): not followed. */
static msg relation(void)
{
    msg m = {{0}, 0};

    put(&m, 'R', 1);
    put(&m, 16400, 4);
    put_str(&m, "public");
    put_str(&m, "other");
    put(&m, 'd', 1);
    put(&m, 2, 2);
    put(&m, 1, 1);
    put_str(&m, "id");
    put(&m, 23, 4);
    put(&m, 0xffffffff, 4);
    put(&m, 0, 1);
    put_str(&m, "b");
    put(&m, 25, 4);
    put(&m, 0xffffffff, 4);
    return m;
}

static msg insert(void)
{
    msg m = {{0}, 0};

    put(&m, 'I', 1);
    put(&m, 16400, 4);
    put(&m, 'N', 1);
    put(&m, 2, 2);
    put(&m, 't', 1);
    put(&m, 1, 4);
    put(&m, '7', 1);
    put(&m, 'n', 1);
    return m;
}

static msg mark(uint64_t at, const char *prefix)
{
    msg m = {{0}, 0};

    put(&m, 'M', 1);
    put(&m, 0, 1);     /* not transactional */
    put(&m, at, 8);
    put_str(&m, prefix);
    put(&m, 1, 4);
    put(&m, 'x', 1);
    return m;
}

static pgfollow *fresh(uint64_t lsn)
{
    pgfollow *f = ctx_calloc(1, sizeof *f);

    cr_assert_not_null(f);
    f->lsn = lsn;
    return f;
}

static int feed(pgfollow *f, const msg *m, uint64_t *last, pgfollow_step_info *info,
                ctx_error *err)
{
    return pgf__message(f, m->b, m->n, last, info, err);
}

Test(pgfollow, a_transaction_moves_the_lsn_at_commit_and_one_already_applied_is_skipped)
{
    pgfollow *f = fresh(0x1000);
    pgfollow_step_info info = {0};
    uint64_t last = 0;
    ctx_error err;
    msg seq[] = {begin(0x0800), relation(), insert(), commit(0x0800, 0x0900),
                 begin(0x2000), insert(), commit(0x2000, 0x2100)};

    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        cr_assert_eq(feed(f, &seq[i], &last, &info, &err), CTX_OK, "message %zu: %s", i,
                     err.text);
    cr_assert_eq(info.skipped, 1);
    cr_assert_eq(info.txns, 1);
    cr_assert_eq(f->lsn, 0x2100);
    cr_assert_eq(last, 0x2100);
    pgf__cache_clear(f);
    ctx_free(f);
}

Test(pgfollow, a_mark_moves_the_lsn_and_other_messages_do_not)
{
    pgfollow *f = fresh(0x1000);
    pgfollow_step_info info = {0};
    uint64_t last = 0;
    ctx_error err;
    msg other = mark(0x9000, "someone_else"), ours = mark(0x5000, PGF_MARK),
        old = mark(0x0500, PGF_MARK);

    cr_assert_eq(feed(f, &other, &last, &info, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(f->lsn, 0x1000);
    cr_assert_eq(feed(f, &ours, &last, &info, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(f->lsn, 0x5000);
    cr_assert_eq(last, 0x5000);
    cr_assert_eq(feed(f, &old, &last, &info, &err), CTX_OK, "%s", err.text);
    cr_assert_eq(f->lsn, 0x5000, "a mark never moves the LSN back");
    cr_assert_eq(info.txns + info.skipped, 0);
    pgf__cache_clear(f);
    ctx_free(f);
}

Test(pgfollow, every_message_cut_short_is_refused_never_read_past)
{
    msg whole[] = {begin(0x10), commit(0x10, 0x20), relation(), insert(),
                   mark(0x30, PGF_MARK)};

    for (size_t k = 0; k < sizeof whole / sizeof whole[0]; k++) {
        for (size_t cut = 1; cut < whole[k].n; cut++) {
            pgfollow *f = fresh(0);
            pgfollow_step_info info = {0};
            uint64_t last = 0;
            ctx_error err;
            msg rel = relation();
            /* the exact length on the heap, so that reading past it is caught */
            unsigned char *b = ctx_malloc(cut);
            int rc;
            cr_assert_not_null(b);
            memcpy(b, whole[k].b, cut);
            if (whole[k].b[0] == 'I')
                cr_assert_eq(feed(f, &rel, &last, &info, &err), CTX_OK);
            rc = pgf__message(f, b, cut, &last, &info, &err);
            cr_assert_eq(rc, CTX_ESTORE, "message %c cut at %zu of %zu: rc %d",
                         whole[k].b[0], cut, whole[k].n, rc);
            cr_assert(strstr(err.text, "malformed"), "%s", err.text);
            ctx_free(b);
            pgf__cache_clear(f);
            ctx_free(f);
        }
    }
}
