/*
 * test_pretok.c - chunks tokenized ahead of the store: the index they make
 * is the one FTS5's own tokenizing makes, the staged tokens really are the
 * ones used, and text that was not staged is tokenized as before.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/ingest.h"
#include "indexer/pretok.h"
#include "tests/lib/testutil.h"

static char *dir;

static void setup(void) { dir = tu_tmpdir("pretok"); }

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

TestSuite(pretok, .init = setup, .fini = teardown);

static const char *const bodies[] = {
    "Running runners ran; the CAFÉ's naïve façade was re-opened on 2026-12-06.",
    "   ",
    "Ünïcödé and ASCII mixed: résumé, coöperate, Straße, déjà vu. Stemming: connections"
    " connected connecting connective.",
    "",
    "word ",
};

/* sync_store - the bodies into a store at name, through ingest_record; tok or not. */
static ctx_store *sync_store(const char *name, pretok *tok)
{
    char path[4096];
    const char *allow[] = {"group:eng"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    store_run_stats stats = {0};
    ingest_ctx ic = {0};
    ctx_store *st;
    ctx_error err;

    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    cr_assert_eq(store_open(path, 0, &st, &err), 0, "%s", err.text);
    cr_assert_eq(store_source(st, "s", "files", &ic.source, &err), 0);
    ic.store = st;
    ic.epoch = 1;
    ic.stats = &stats;
    ic.chunk.max_tokens = 8; /* several overlapping chunks per body */
    ic.chunk.overlap_tokens = 2;
    ic.tok = tok;
    cr_assert_eq(store_begin(st, &err), 0);
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        char id[8];
        snprintf(id, sizeof id, "d%zu", i);
        ctx_record rec = {"docs", id, "Title Stemmed", NULL, bodies[i], strlen(bodies[i]),
                          NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
    return st;
}

/* vocab - every (term, row, column, offset) of the index, one per line. */
static char *vocab(ctx_store *st)
{
    sqlite3_stmt *s;
    ctx_buf b = CTX_BUF_INIT;

    cr_assert_eq(sqlite3_exec(store_db(st), "CREATE VIRTUAL TABLE temp.v USING"
                              " fts5vocab(main, chunks_fts, 'instance')", NULL, NULL, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(store_db(st), "SELECT term, doc, col, offset FROM temp.v"
                                    " ORDER BY 1, 2, 3, 4", -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW)
        ctx_buf_printf(&b, "%s %lld %s %d\n", (const char *)sqlite3_column_text(s, 0),
                       (long long)sqlite3_column_int64(s, 1),
                       (const char *)sqlite3_column_text(s, 2), sqlite3_column_int(s, 3));
    sqlite3_finalize(s);
    ctx_buf_append(&b, "", 1);
    return b.data;
}

Test(pretok, the_index_is_the_same_as_fts5s_own_tokenizing)
{
    pretok *tok;
    ctx_error err;
    ctx_store *a, *b;
    char *va, *vb;

    cr_assert_eq(pretok_open(&tok, &err), 0, "%s", err.text);
    a = sync_store("plain", NULL);
    b = sync_store("ahead", tok);
    va = vocab(a);
    vb = vocab(b);
    cr_assert(strlen(va) > 200, "%s", va);
    cr_assert_str_eq(va, vb);
    cr_assert_eq(tu_count(a, "SELECT count(*) FROM chunks"),
                 tu_count(b, "SELECT count(*) FROM chunks"));
    cr_assert_geq(tu_count(b, "SELECT count(*) FROM chunks_fts WHERE chunks_fts"
                              " MATCH 'connected'"), 2);
    /* and FTS5 agrees that both indexes are whole */
    cr_assert_eq(store_exec(b, "INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')",
                            &err), 0, "%s", err.text);
    free(va);
    free(vb);
    store_close(a);
    store_close(b);
    pretok_close(tok);
}

/* Staged tokens of other words are what the index gets: the replay is real. */
Test(pretok, staged_tokens_are_replayed_and_others_fall_back)
{
    const char *allow[] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    ctx_buf toks = CTX_BUF_INIT;
    char path[4096];
    pretok *tok;
    ctx_store *st;
    ctx_error err;
    int64_t src, acl_id, id = 0;

    snprintf(path, sizeof path, "%s/replay.db", dir);
    cr_assert_eq(store_open(path, 0, &st, &err), 0, "%s", err.text);
    cr_assert_eq(pretok_open(&tok, &err), 0, "%s", err.text);
    cr_assert_eq(pretok_run(tok, "zebras galloping", 16, &toks), 0);
    cr_assert_eq(store_source(st, "s", "files", &src, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_acl_intern(st, src, &acl, &acl_id, &err), 0);
    {
        store_doc d = {src, "docs", "x", "t", NULL, "b", NULL, 1, 0, acl_id, "h", 1};
        /* the second chunk's tokens deliberately are not its text's */
        store_chunk ch[2] = {{"applesauces ok!", 15, 2, NULL, 0},
                             {"apple pies here!", 16, 3, (unsigned char *)toks.data, toks.len}};
        cr_assert_eq(store_doc_write(st, &d, &id, &err), 0, "%s", err.text);
        cr_assert_eq(store_chunks_add(st, id, "t", acl_id, ch, 2, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'applesauc'"),
                 1, "a chunk without tokens is tokenized by FTS5");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'title:t'"),
                 2, "the other columns of a replayed row are tokenized by FTS5");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'zebra'"),
                 1, "the staged tokens went in for the text they were staged with");
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'pie'"),
                 0);
    /* after the insert nothing stays staged: a query tokenizes as ever */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'galloped'"),
                 1);
    ctx_buf_free(&toks);
    store_close(st);
    pretok_close(tok);
}

/* index_one - text as one chunk of a new store at name, with tokens made ahead or not. */
static ctx_store *index_one(const char *name, const char *text, pretok *tok)
{
    const char *allow[] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    ctx_buf toks = CTX_BUF_INIT;
    char path[4096];
    ctx_store *st;
    ctx_error err;
    int64_t src, acl_id, id = 0;
    store_chunk ch = {text, strlen(text), 1, NULL, 0};

    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    cr_assert_eq(store_open(path, 0, &st, &err), 0, "%s", err.text);
    if (tok) {
        cr_assert_eq(pretok_run(tok, text, strlen(text), &toks), 0);
        ch.toks = (const unsigned char *)toks.data;
        ch.toks_len = toks.len;
    }
    cr_assert_eq(store_source(st, "s", "files", &src, &err), 0);
    cr_assert_eq(store_begin(st, &err), 0);
    cr_assert_eq(store_acl_intern(st, src, &acl, &acl_id, &err), 0);
    {
        store_doc d = {src, "docs", "x", "t", NULL, text, NULL, 1, 0, acl_id, "h", 1};
        cr_assert_eq(store_doc_write(st, &d, &id, &err), 0, "%s", err.text);
        cr_assert_eq(store_chunks_add(st, id, "t", acl_id, &ch, 1, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
    ctx_buf_free(&toks);
    return st;
}

/* Tokens or gaps too long for the short form take the long one. */
Test(pretok, long_tokens_and_long_gaps_round_trip)
{
    ctx_buf text = CTX_BUF_INIT;
    ctx_error err;
    pretok *tok;
    ctx_store *a, *b;
    char *va, *vb;

    ctx_buf_puts(&text, "alpha ");
    for (int i = 0; i < 300; i++)
        ctx_buf_puts(&text, "z");
    for (int i = 0; i < 400; i++)
        ctx_buf_puts(&text, " -");
    ctx_buf_puts(&text, " beta ");
    for (int i = 0; i < 70000; i++)
        ctx_buf_puts(&text, "\xc3\xa9"); /* é: a token of 70,000 letters, folded */
    ctx_buf_puts(&text, " gamma");
    cr_assert_eq(pretok_open(&tok, &err), 0, "%s", err.text);
    a = index_one("plain", text.data, NULL);
    b = index_one("ahead", text.data, tok);
    va = vocab(a);
    vb = vocab(b);
    cr_assert_str_eq(va, vb);
    cr_assert(strstr(vb, "gamma 1 text 4"), "%.300s", vb);
    cr_assert_eq(store_exec(b, "INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')",
                            &err), 0, "%s", err.text);
    free(va);
    free(vb);
    store_close(a);
    store_close(b);
    pretok_close(tok);
    ctx_buf_free(&text);
}
