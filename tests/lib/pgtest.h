/*
 * pgtest.h - helpers for tests that talk to the PostgreSQL started by
 * scripts/pg.sh. The server is named by two environment variables the test
 * runner exports: CTX_TEST_PG (a libpq conninfo) and CTX_TEST_PGPASSWORD.
 * Free of Criterion: this file is linked into every test binary.
 */
#ifndef CTX_TESTS_PGTEST_H
#define CTX_TESTS_PGTEST_H

#include <libpq-fe.h>
#include <stddef.h>

/* The message a PostgreSQL test fails with when CTX_TEST_PG is unset. */
#define PGTEST_MISSING                                                              \
    "CTX_TEST_PG is not set: these tests need the PostgreSQL of scripts/pg.sh;"     \
    " run `eval \"$(sh scripts/pg.sh start /tmp/ctxpg)\"` (or `make test`) first"

/* pgtest_conninfo - CTX_TEST_PG, or NULL when unset or empty. Borrowed. */
const char *pgtest_conninfo(void);

/* pgtest_password - CTX_TEST_PGPASSWORD, or NULL. Borrowed. */
const char *pgtest_password(void);

/*
 * pgtest_connect - connect to CTX_TEST_PG with extra conninfo appended
 * (e.g. "dbname=other"; NULL for none). Returns a new connection, or NULL
 * with the reason in why.
 */
PGconn *pgtest_connect(const char *extra, char *why, size_t whylen);

/*
 * pgtest_exec - run one formatted SQL command (any result). Returns 0, or
 * -1 with the server's message in why.
 */
int pgtest_exec(PGconn *db, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* pgtest_name - "<prefix>_<pid>_<n>": a table name no other test uses. */
void pgtest_name(char *buf, size_t len, const char *prefix);

/*
 * pgtest_db_make - a database of the test's own, "<prefix>_<pid>_<n>" (into
 * name), made through admin (a connection to CTX_TEST_PG's database).
 * Returns a new connection to it, or NULL with the reason in why.
 */
PGconn *pgtest_db_make(PGconn *admin, const char *prefix, char *name, size_t len, char *why,
                       size_t whylen);

/* pgtest_db_drop - close db (may be NULL), then drop the database's idle
 * replication slots (a database with slots cannot go) and the database.
 * Errors are ignored: a teardown. */
void pgtest_db_drop(PGconn *admin, PGconn *db, const char *name);

/* pgtest_free_port - a TCP port on 127.0.0.1 that nothing listens on, or 0. */
int pgtest_free_port(void);

#endif
