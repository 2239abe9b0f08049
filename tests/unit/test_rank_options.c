/*
 * test_rank_options.c - the lexical ranking's options, each on a corpus
 * made to show it: query expansion from the caller's own best hits,
 * proximity, and a document scored by its chunks together (doc_decay); off,
 * each answers exactly as the one-pass search.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "indexer/ingest.h"
#include "retrieval/search.h"
#include "tests/lib/testutil.h"

/*
 * Query expansion (search_expand): a page that shares no word with the
 * query but shares words with the best hit is found once the best hit's
 * words are added; words of a chunk the caller cannot read are never
 * added (bob's page would bring "quokka"); with expansion off the answer
 * is the one-pass answer exactly.
 */
Test(rank_options, expansion_finds_the_neighbours_of_the_best_hit)
{
    static const char *const docs[][2] = {
        {"rebase guide", "rebase rewrites commits onto upstream history"},
        {"replay notes", "rewrites commits onto upstream history when replaying"},
        {"animals", "the quokka habitat"},
    };
    char *dir = tu_tmpdir("expand");
    ctx_store *st = tu_store(dir);
    const char *everyone[] = {"everyone"}, *bob_only[] = {"user:bob"};
    ctx_acl acl = {everyone, 1, NULL, 0, NULL, 0}, bob = {bob_only, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    search_result r, plain;
    search_opts so = {.k = 10};
    ingest_ctx ic;
    ctx_error err;
    char *a, *b;

    tu_source_with_user(st, "user:alice", &ic, &stats);
    cr_assert_eq(store_begin(st, &err), 0);
    for (size_t i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "d%zu", i);
        ctx_record rec = {"s", id, docs[i][0], NULL, docs[i][1], strlen(docs[i][1]),
                          NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    /* so the added words are rare (in under 1/20 of the chunks) */
    for (int i = 0; i < 60; i++) {
        char id[8], body[64];
        snprintf(id, sizeof id, "f%d", i);
        snprintf(body, sizeof body, "filler page number %d of many", i);
        ctx_record rec = {"s", id, id, NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    {
        const char *body = "rebase rebase quokka quokka quokka quokka";
        ctx_record rec = {"s", "secret", "secret", NULL, body, strlen(body), NULL, 0, &bob};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);

    cr_assert_eq(search_lexical(store_db(st), "alice", "rebase", &so, &plain, &err), 0,
                 "%s", err.text);
    cr_assert_eq(plain.n, 1, "one page says rebase");
    cr_assert_str_eq(plain.hits[0].title, "rebase guide");

    so.expand = (search_expand){.terms = 5, .docs = 5, .weight = 0.5};
    cr_assert_eq(search_lexical(store_db(st), "alice", "rebase", &so, &r, &err), 0, "%s",
                 err.text);
    cr_assert_eq(r.n, 2, "the best hit's words find its neighbour, and nothing of bob's");
    cr_assert_str_eq(r.hits[0].title, "rebase guide");
    cr_assert_str_eq(r.hits[1].title, "replay notes");
    cr_assert(r.hits[0].score > r.hits[1].score);
    search_result_free(&r);

    /* the same again, and under the other plan: deterministic */
    so.match_principals_max = 1;
    cr_assert_eq(search_lexical(store_db(st), "alice", "rebase", &so, &r, &err), 0, "%s",
                 err.text);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.hits[1].title, "replay notes");
    search_result_free(&r);

    /* off: byte for byte the one-pass answer */
    so.expand.terms = 0;
    so.match_principals_max = 0;
    cr_assert_eq(search_lexical(store_db(st), "alice", "rebase", &so, &r, &err), 0, "%s",
                 err.text);
    a = tu_search_answer(&plain);
    b = tu_search_answer(&r);
    cr_assert_str_eq(a, b);
    ctx_free(a);
    ctx_free(b);
    search_result_free(&r);
    search_result_free(&plain);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

/* Proximity (search_opts.proximity): of two chunks that score the same,
 * the one whose query words stand together comes first; off, the tie
 * breaks on the id as before. */
Test(rank_options, proximity_puts_words_together_first)
{
    static const char *const docs[] = {
        "merge conflict one two three four five six",
        "merge one two three four five six conflict",
    };
    char *dir = tu_tmpdir("prox");
    ctx_store *st = tu_store(dir);
    const char *everyone[] = {"everyone"};
    ctx_acl acl = {everyone, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    search_result r;
    search_opts so = {.k = 10};
    ingest_ctx ic;
    ctx_error err;

    tu_source_with_user(st, "user:alice", &ic, &stats);
    cr_assert_eq(store_begin(st, &err), 0);
    for (int i = 0; i < 12; i++) {
        char id[8], body[64];
        snprintf(id, sizeof id, "d%d", i);
        snprintf(body, sizeof body, "%s", i < 2 ? docs[i] : "other words entirely");
        ctx_record rec = {"s", id, "t", NULL, body, strlen(body), NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);
    cr_assert_eq(search_lexical(store_db(st), "alice", "merge conflict", &so, &r, &err), 0,
                 "%s", err.text);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.hits[0].score, r.hits[1].score, "a tie");
    cr_assert(r.hits[0].chunk_id > r.hits[1].chunk_id, "broken on the id");
    search_result_free(&r);
    so.proximity = 1;
    cr_assert_eq(search_lexical(store_db(st), "alice", "merge conflict", &so, &r, &err), 0,
                 "%s", err.text);
    cr_assert_eq(r.n, 2);
    cr_assert(strstr(r.hits[0].text, "merge conflict"), "together first: %s", r.hits[0].text);
    cr_assert(r.hits[0].score > r.hits[1].score);
    search_result_free(&r);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}


/*
 * doc_decay: "many" has three long chunks that each say harbor once, "one"
 * a single shorter chunk that says it once, which scores more than any of
 * many's. A document ranked by its best chunk puts one first; summed with
 * weights 1, 0.9, 0.81 many comes first, its score the weighted sum of its
 * chunks' own. Without per-document collapsing doc_decay does nothing.
 * (That chunks the caller may not read add nothing is the leak oracle's
 * forbidden_documents_change_no_answer, which runs with doc_decay too.)
 */
Test(rank_options, doc_decay_sums_a_documents_chunks)
{
    char *dir = tu_tmpdir("decay");
    ctx_store *st = tu_store(dir);
    const char *everyone[] = {"everyone"};
    ctx_acl acl = {everyone, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    search_result r, chunks;
    search_opts so = {.k = 10, .per_doc = 1};
    ingest_ctx ic;
    ctx_error err;
    ctx_buf many = CTX_BUF_INIT, one = CTX_BUF_INIT;
    double sum = 0, w = 1;
    char *a, *b;

    for (int p = 0; p < 3; p++) {
        cr_assert_eq(ctx_buf_printf(&many, "%sharbor", p ? "\n\n" : ""), 0);
        for (int i = 0; i < 199; i++)
            cr_assert_eq(ctx_buf_printf(&many, " filler%d", i), 0);
    }
    cr_assert_eq(ctx_buf_printf(&one, "harbor"), 0);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(ctx_buf_printf(&one, " lights%d", i), 0);
    tu_source_with_user(st, "user:alice", &ic, &stats);
    cr_assert_eq(store_begin(st, &err), 0);
    {
        ctx_record m = {"s", "many", "many", NULL, many.data, many.len, NULL, 0, &acl};
        ctx_record o = {"s", "one", "one", NULL, one.data, one.len, NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &m, &err), 0, "%s", err.text);
        cr_assert_eq(ingest_record(&ic, &o, &err), 0, "%s", err.text);
    }
    for (int i = 0; i < 10; i++) {
        char id[8];
        snprintf(id, sizeof id, "f%d", i);
        ctx_record rec = {"s", id, "t", NULL, "other words entirely", 20, NULL, 0, &acl};
        cr_assert_eq(ingest_record(&ic, &rec, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0);

    /* every chunk, to know their scores */
    so.per_doc = 0;
    cr_assert_eq(search_lexical(store_db(st), "alice", "harbor", &so, &chunks, &err), 0, "%s",
                 err.text);
    cr_assert_eq(chunks.n, 4, "three chunks of many, one of one");
    cr_assert_str_eq(chunks.hits[0].title, "one");
    for (size_t i = 1; i < 4; i++) {
        cr_assert_str_eq(chunks.hits[i].title, "many");
        sum += w * chunks.hits[i].score;
        w *= 0.9;
    }
    so.doc_decay = 0.9; /* per_doc 0: no summing */
    cr_assert_eq(search_lexical(store_db(st), "alice", "harbor", &so, &r, &err), 0, "%s",
                 err.text);
    a = tu_search_answer(&chunks);
    b = tu_search_answer(&r);
    cr_assert_str_eq(a, b);
    ctx_free(a);
    ctx_free(b);
    search_result_free(&r);

    so.per_doc = 1;
    so.doc_decay = 0;
    cr_assert_eq(search_lexical(store_db(st), "alice", "harbor", &so, &r, &err), 0, "%s",
                 err.text);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.hits[0].title, "one");
    search_result_free(&r);
    so.doc_decay = 0.9;
    cr_assert_eq(search_lexical(store_db(st), "alice", "harbor", &so, &r, &err), 0, "%s",
                 err.text);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.hits[0].title, "many");
    cr_assert_float_eq(r.hits[0].score, sum, 1e-9);
    cr_assert_eq(r.hits[0].chunk_id, chunks.hits[1].chunk_id, "its best chunk is shown");
    cr_assert_str_eq(r.hits[1].title, "one");
    search_result_free(&r);

    search_result_free(&chunks);
    ctx_buf_free(&many);
    ctx_buf_free(&one);
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}
