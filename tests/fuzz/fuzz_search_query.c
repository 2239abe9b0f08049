/*
 * fuzz_search_query.c - libFuzzer target for search_fts_query, which turns
 * a user's question into the FTS5 MATCH expression that also carries the
 * permission filter. The expression is run against an in-memory chunks_fts
 * made like the store's: SQLite must accept it (user text never becomes
 * FTS5 syntax), and it must only ever return rows the principals may read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/ctx.h"
#include "retrieval/search.h"
#include "fuzz.h"

/* The caller is principals 1 and 2 (ids are store rowids: positive). */
static const int64_t principals[] = {1, 2};
#define NPRINCIPALS (sizeof principals / sizeof principals[0])

/*
 * Rows with words a query may hit. readable says whether principals 1 and
 * 2 may see the row: allow has p1 or p2, and deny has neither.
 */
static const struct {
    const char *title, *text, *allow, *deny, *labels;
    int readable;
} rows[] = {
    {"Vacation policy", "Employees get 25 days of paid leave per year.", "p1", "", "", 1},
    {"Salaries 2024", "The salary bands for engineering and sales.", "p7", "", "l1", 0},
    {"Board minutes", "The board approved the budget; leave policy unchanged.", "p2",
     "p1", "l1", 0},
    {"Café menu", "Crème brûlée, naïve coffee, 東京 ramen and ünïcödé words.",
     "p2 p9", "p5", "", 1},
    {"Incident report", "Outage of the payments API: root cause and next steps.",
     "p9", "p2", "", 0},
};
#define NROWS (sizeof rows / sizeof rows[0])

static sqlite3 *db;
static sqlite3_stmt *match_stmt;

static void die_sqlite(const char *what)
{
    fprintf(stderr, "fuzz_search_query: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    abort();
}

/* Same columns and tokenizer as store.c's chunks_fts. */
static void setup(void)
{
    sqlite3_stmt *ins;
    size_t i;

    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        die_sqlite("open");
    if (sqlite3_exec(db,
                     "CREATE VIRTUAL TABLE chunks_fts USING fts5(title, text, allow, deny,"
                     " labels, tokenize='porter unicode61 remove_diacritics 2')",
                     NULL, NULL, NULL) != SQLITE_OK)
        die_sqlite("create");
    if (sqlite3_prepare_v2(db, "INSERT INTO chunks_fts(rowid, title, text, allow, deny, labels)"
                               " VALUES(?1, ?2, ?3, ?4, ?5, ?6)", -1, &ins, NULL) != SQLITE_OK)
        die_sqlite("prepare insert");
    for (i = 0; i < NROWS; i++) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)i + 1);
        sqlite3_bind_text(ins, 2, rows[i].title, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, rows[i].text, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, rows[i].allow, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, rows[i].deny, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, rows[i].labels, -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE)
            die_sqlite("insert");
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    /* The ranking search.c uses, so bm25's argument checks run too. */
    if (sqlite3_prepare_v2(db, "SELECT rowid, bm25(chunks_fts, 2.0, 1.0, 0.0, 0.0, 0.0)"
                               " FROM chunks_fts WHERE chunks_fts MATCH ?1 ORDER BY 2",
                           -1, &match_stmt, NULL) != SQLITE_OK)
        die_sqlite("prepare match");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q, *expr = NULL;
    int rc, step;

    if (!db)
        setup();
    if (!(q = malloc(size + 1)))
        return 0;
    memcpy(q, data, size);
    q[size] = '\0';

    /* No principals: nothing may be searched, whatever the words. */
    FUZZ_CHECK(search_fts_query(q, principals, 0, &expr) == CTX_OK, "search_fts_query failed");
    FUZZ_CHECK(expr == NULL, "a query without principals gave \"%s\"", expr);

    rc = search_fts_query(q, principals, NPRINCIPALS, &expr);
    FUZZ_CHECK(rc == CTX_OK, "search_fts_query failed with %d", rc);
    if (expr) {
        sqlite3_bind_text(match_stmt, 1, expr, -1, SQLITE_STATIC);
        while ((step = sqlite3_step(match_stmt)) == SQLITE_ROW) {
            sqlite3_int64 id = sqlite3_column_int64(match_stmt, 0);
            FUZZ_CHECK(id >= 1 && id <= (sqlite3_int64)NROWS && rows[id - 1].readable,
                       "query \"%s\" (MATCH %s) returned row %lld, which principals 1 and 2"
                       " may not read", q, expr, (long long)id);
        }
        FUZZ_CHECK(step == SQLITE_DONE, "SQLite rejected MATCH %s for query \"%s\": %s", expr,
                   q, sqlite3_errmsg(db));
        sqlite3_reset(match_stmt);
        sqlite3_clear_bindings(match_stmt);
    }
    ctx_free(expr);
    free(q);
    return 0;
}
