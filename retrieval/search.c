/*
 * search.c - lexical search inside what the caller may read (see search.h).
 */
#include "search.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../core/util.h"
#include "acl.h"

/* Words too common to rank by; dropped unless they are all the query has. */
static const char *const stopwords[] = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does",
    "for", "from", "how", "i", "if", "in", "is", "it", "me", "my", "of", "on",
    "or", "our", "so", "that", "the", "their", "there", "this", "to", "us", "was",
    "we", "what", "when", "where", "which", "who", "why", "will", "with", "you",
    "your", NULL,
};

static int is_stop(const char *w)
{
    for (const char *const *s = stopwords; *s; s++)
        if (!strcmp(*s, w))
            return 1;
    return 0;
}

static int word_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

#define MAX_TERMS 32

int search_fts_query(const char *query, const int64_t *principals, size_t n, char **out)
{
    char *terms[MAX_TERMS];
    size_t nterms = 0, nstop = 0, i, j;
    const unsigned char *p = (const unsigned char *)query;
    ctx_buf b = CTX_BUF_INIT;
    int rc = CTX_OK, first;

    *out = NULL;
    /* Words are runs of letters, digits and non-ASCII; everything else,
     * including FTS5 syntax, separates them, so no input can inject syntax. */
    while (*p && nterms < MAX_TERMS) {
        const unsigned char *s;
        while (*p && !word_byte(*p))
            p++;
        s = p;
        while (*p && word_byte(*p))
            p++;
        if (p > s && p - s < 64) {
            char *w = ctx_strndup((const char *)s, (size_t)(p - s));
            if (!w) {
                rc = CTX_ENOMEM;
                goto done;
            }
            for (char *c = w; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            for (j = 0; j < nterms && strcmp(terms[j], w); j++)
                ;
            if (j < nterms) {
                ctx_free(w);
                continue;
            }
            nstop += (size_t)is_stop(w);
            terms[nterms++] = w;
        }
    }
    if (!nterms || !n)
        goto done;

    rc = CTX_ENOMEM;
    if (ctx_buf_puts(&b, "(({title text} : ("))
        goto done;
    first = 1;
    for (i = 0; i < nterms; i++) {
        /* Keep stopwords only when the query has nothing else. */
        if (nstop < nterms && is_stop(terms[i]))
            continue;
        if (ctx_buf_printf(&b, "%s\"%s\"", first ? "" : " OR ", terms[i]))
            goto done;
        first = 0;
    }
    if (ctx_buf_puts(&b, ")) AND (allow : ("))
        goto done;
    for (i = 0; i < n; i++)
        if (ctx_buf_printf(&b, "%sp%lld", i ? " OR " : "", (long long)principals[i]))
            goto done;
    if (ctx_buf_puts(&b, "))) NOT (deny : ("))
        goto done;
    for (i = 0; i < n; i++)
        if (ctx_buf_printf(&b, "%sp%lld", i ? " OR " : "", (long long)principals[i]))
            goto done;
    if (ctx_buf_puts(&b, "))"))
        goto done;
    *out = ctx_buf_steal(&b);
    rc = CTX_OK;
done:
    for (i = 0; i < nterms; i++)
        ctx_free(terms[i]);
    ctx_buf_free(&b);
    return rc;
}

/*
 * Rank inside the FTS5 query (title counts double; the permission columns
 * count nothing), take the best rows, then join for the display fields.
 */
static const char search_sql[] =
    "WITH top AS ("
    "  SELECT rowid AS id, text, bm25(chunks_fts, 2.0, 1.0, 0.0, 0.0, 0.0) AS rank"
    "  FROM chunks_fts WHERE chunks_fts MATCH ?1 ORDER BY rank LIMIT ?2)"
    " SELECT t.id, -t.rank, c.doc_id, s.name, d.title, d.url, t.text, d.acl_synced_at"
    " FROM top t JOIN chunks c ON c.id = t.id JOIN documents d ON d.id = c.doc_id"
    " JOIN sources s ON s.id = d.source_id"
    " WHERE d.deleted = 0 ORDER BY t.rank";

/* With a source filter the restriction must come before the LIMIT. */
static const char search_src_sql[] =
    "SELECT f.rowid, -bm25(chunks_fts, 2.0, 1.0, 0.0, 0.0, 0.0) AS score, c.doc_id,"
    " s.name, d.title, d.url, f.text, d.acl_synced_at"
    " FROM chunks_fts f JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id"
    " JOIN sources s ON s.id = d.source_id"
    " WHERE chunks_fts MATCH ?1 AND d.deleted = 0 AND s.name IN (SELECT value FROM json_each(?3))"
    " ORDER BY score DESC LIMIT ?2";

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return ctx_strdup(t ? (const char *)t : "");
}

void search_result_free(search_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        ctx_free(r->hits[i].source);
        ctx_free(r->hits[i].title);
        ctx_free(r->hits[i].url);
        ctx_free(r->hits[i].text);
    }
    ctx_free(r->hits);
    r->hits = NULL;
    r->n = 0;
}

int search_lexical(sqlite3 *db, const char *user, const char *query,
                   const search_opts *opts, search_result *out, ctx_error *err)
{
    acl_principals pr = {NULL, 0};
    sqlite3_stmt *s = NULL;
    char *match = NULL, *srcs = NULL;
    int k = opts && opts->k > 0 ? opts->k : 10, per_doc = opts ? opts->per_doc : 0;
    int limit, rc, step;
    size_t i, cap;

    out->hits = NULL;
    out->n = 0;
    if (k > 1000)
        k = 1000;
    rc = acl_resolve(db, user, &pr, err);
    if (rc == CTX_ENOTFOUND)
        return CTX_OK; /* fail closed, and say nothing about why */
    if (rc)
        return rc;
    if ((rc = search_fts_query(query ? query : "", pr.ids, pr.n, &match))) {
        rc = ctx_error_set(err, rc, "search: out of memory");
        goto done;
    }
    if (!match)
        goto done;
    if (opts && opts->nsources) {
        json_t *a = json_array();
        for (i = 0; i < opts->nsources; i++)
            json_array_append_new(a, json_string(opts->sources[i]));
        srcs = json_dumps(a, JSON_COMPACT);
        json_decref(a);
    }
    /* Collapsing chunks per document may need more rows than k: fetch a few
     * times k and widen once more if that was not enough. */
    limit = per_doc ? k * 4 + 8 : k;
    for (;;) {
        size_t nrows = 0;
        search_result_free(out);
        if (sqlite3_prepare_v2(db, srcs ? search_src_sql : search_sql, -1, &s, NULL) != SQLITE_OK) {
            rc = ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
            goto done;
        }
        sqlite3_bind_text(s, 1, match, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, limit);
        if (srcs)
            sqlite3_bind_text(s, 3, srcs, -1, SQLITE_STATIC);
        cap = 0;
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            int64_t doc = sqlite3_column_int64(s, 2);
            size_t same = 0;
            nrows++;
            if ((int)out->n >= k)
                continue;
            for (i = 0; per_doc && i < out->n; i++)
                same += out->hits[i].doc_id == doc;
            if (per_doc && (int)same >= per_doc)
                continue;
            if (out->n == cap) {
                search_hit *h;
                cap = cap ? cap * 2 : 16;
                if (!(h = ctx_realloc(out->hits, cap * sizeof *h))) {
                    rc = ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
                    goto done;
                }
                out->hits = h;
            }
            search_hit *h = &out->hits[out->n++];
            h->chunk_id = sqlite3_column_int64(s, 0);
            h->score = sqlite3_column_double(s, 1);
            h->doc_id = doc;
            h->source = col_dup(s, 3);
            h->title = col_dup(s, 4);
            h->url = col_dup(s, 5);
            h->text = col_dup(s, 6);
            h->acl_synced_at = sqlite3_column_int64(s, 7);
        }
        sqlite3_finalize(s);
        s = NULL;
        if (step != SQLITE_DONE) {
            rc = ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
            goto done;
        }
        if ((int)out->n >= k || (int)nrows < limit || limit >= 1 << 20)
            break;
        limit *= 8;
    }
    rc = CTX_OK;
done:
    if (rc)
        search_result_free(out);
    sqlite3_finalize(s);
    ctx_free(match);
    free(srcs);
    acl_principals_free(&pr);
    return rc;
}
