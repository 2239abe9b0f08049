/*
 * test_stmt.c - the per-connection statement cache (indexer/stmt).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "indexer/stmt.h"

static sqlite3 *db;

static void setup(void)
{
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
                              NULL, NULL, NULL),
                 SQLITE_OK);
}

static void teardown(void)
{
    stmt_close(db);
    /* Every statement handed out was given back or closed: close succeeds. */
    cr_assert_eq(sqlite3_close(db), SQLITE_OK, "a statement outlived the cache");
}

static const char count_sql[] = "SELECT count(*) FROM t WHERE x >= ?1";

static int64_t count_from(int64_t lo)
{
    sqlite3_stmt *s;
    int64_t n;
    cr_assert_eq(stmt_get(db, count_sql, &s), SQLITE_OK);
    sqlite3_bind_int64(s, 1, lo);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    n = sqlite3_column_int64(s, 0);
    stmt_put(s);
    return n;
}

TestSuite(stmt, .init = setup, .fini = teardown);

Test(stmt, a_given_back_statement_is_reused_reset_and_unbound)
{
    sqlite3_stmt *a, *b;

    cr_assert_eq(stmt_get(db, count_sql, &a), SQLITE_OK);
    sqlite3_bind_int64(a, 1, 3);
    cr_assert_eq(sqlite3_step(a), SQLITE_ROW); /* left mid-result */
    stmt_put(a);
    cr_assert_eq(stmt_get(db, count_sql, &b), SQLITE_OK);
    cr_assert_eq(a, b, "the statement was prepared again");
    cr_assert_not(sqlite3_stmt_busy(b), "given back without a reset");
    /* The binding was cleared: NULL compares as nothing, so no row counts. */
    cr_assert_eq(sqlite3_step(b), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int64(b, 0), 0);
    stmt_put(b);
}

Test(stmt, the_same_sql_by_another_pointer_is_the_same_statement)
{
    char copy[sizeof count_sql];
    sqlite3_stmt *a, *b;

    memcpy(copy, count_sql, sizeof copy);
    cr_assert_eq(stmt_get(db, count_sql, &a), SQLITE_OK);
    stmt_put(a);
    cr_assert_eq(stmt_get(db, copy, &b), SQLITE_OK);
    cr_assert_eq(a, b);
    stmt_put(b);
}

Test(stmt, one_holder_at_a_time)
{
    sqlite3_stmt *outer, *inner;

    /* Nested use of one SQL: each holder has its own statement. */
    cr_assert_eq(stmt_get(db, count_sql, &outer), SQLITE_OK);
    sqlite3_bind_int64(outer, 1, 2);
    cr_assert_eq(stmt_get(db, count_sql, &inner), SQLITE_OK);
    cr_assert_neq(outer, inner);
    sqlite3_bind_int64(inner, 1, 1);
    cr_assert_eq(sqlite3_step(inner), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int64(inner, 0), 3);
    cr_assert_eq(sqlite3_step(outer), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int64(outer, 0), 2, "the inner use moved the outer's binding");
    stmt_put(inner);
    stmt_put(outer);
    cr_assert_eq(count_from(3), 1);
}

Test(stmt, a_schema_change_is_followed)
{
    cr_assert_eq(count_from(1), 3);
    cr_assert_eq(sqlite3_exec(db, "DROP TABLE t; CREATE TABLE t(y, x);"
                                  " INSERT INTO t VALUES (0, 5);",
                              NULL, NULL, NULL),
                 SQLITE_OK, "a cached statement held the table");
    cr_assert_eq(count_from(1), 1);
}

Test(stmt, a_bad_statement_is_an_error_and_not_kept)
{
    sqlite3_stmt *s = (sqlite3_stmt *)1;
    cr_assert_eq(stmt_get(db, "SELECT nope FROM t", &s), SQLITE_ERROR);
    cr_assert_null(s);
    stmt_put(NULL);
}

Test(stmt, past_the_cache_statements_are_finalized)
{
    char sql[100][48];
    sqlite3_stmt *s[100];

    /* More distinct statements than the cache keeps, all held at once. */
    for (int i = 0; i < 100; i++) {
        snprintf(sql[i], sizeof sql[i], "SELECT %d + count(*) FROM t", i);
        cr_assert_eq(stmt_get(db, sql[i], &s[i]), SQLITE_OK);
    }
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(sqlite3_step(s[i]), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int(s[i], 0), i + 3);
        stmt_put(s[i]);
    }
    /* The first ones were kept: asked again, they are not prepared anew. */
    {
        sqlite3_stmt *again;
        cr_assert_eq(stmt_get(db, sql[0], &again), SQLITE_OK);
        cr_assert_eq(again, s[0]);
        stmt_put(again);
    }
}

Test(stmt, caches_are_per_connection)
{
    sqlite3 *other;
    sqlite3_stmt *a, *b;

    cr_assert_eq(sqlite3_open(":memory:", &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(stmt_get(db, count_sql, &a), SQLITE_OK);
    stmt_put(a);
    cr_assert_eq(stmt_get(other, count_sql, &b), SQLITE_OK);
    cr_assert_neq(a, b);
    cr_assert_eq(sqlite3_db_handle(b), other);
    stmt_put(b);
    stmt_close(other);
    cr_assert_eq(sqlite3_close(other), SQLITE_OK);
}
