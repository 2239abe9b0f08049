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

/* Append " OR "-joined p<id> tokens. */
static int append_tokens(ctx_buf *b, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ctx_buf_printf(b, "%sp%lld", i ? " OR " : "", (long long)ids[i]))
            return CTX_ENOMEM;
    return CTX_OK;
}

/*
 * build_match - the MATCH expression: the query's words, restricted to
 * chunks allowed to one of allow[] (unless acl_in_match is 0: the caller
 * then filters by ACL set in SQL) and denied to none of deny[].
 */
static int build_match(const char *query, int acl_in_match, const int64_t *allow,
                       size_t nallow, const int64_t *deny, size_t ndeny, char **out);

int search_fts_query(const char *query, const int64_t *principals, size_t n, char **out)
{
    *out = NULL;
    if (!n)
        return CTX_OK; /* nobody: nothing to search */
    return build_match(query, 1, principals, n, principals, n, out);
}

static int build_match(const char *query, int acl_in_match, const int64_t *allow,
                       size_t nallow, const int64_t *deny, size_t ndeny, char **out)
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
    if (!nterms)
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
    if (ctx_buf_puts(&b, "))"))
        goto done;
    if (acl_in_match && (ctx_buf_puts(&b, " AND (allow : (") ||
                         append_tokens(&b, allow, nallow) || ctx_buf_puts(&b, "))")))
        goto done;
    if (ctx_buf_puts(&b, ")"))
        goto done;
    /* Only principals that some deny list names can deny anything. */
    if (ndeny && (ctx_buf_puts(&b, " NOT (deny : (") || append_tokens(&b, deny, ndeny) ||
                  ctx_buf_puts(&b, "))")))
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
 * Ranking happens inside the FTS5 query (title counts double; the permission
 * columns count nothing); only the best rows are joined for display, and
 * only their text is read. %s is where the plan puts its ACL join and
 * filter, and the optional source filter.
 */
static const char search_sql_fmt[] =
    "WITH top AS ("
    "  SELECT f.rowid AS id, bm25(chunks_fts, 2.0, 1.0, 0.0, 0.0, 0.0) AS rank"
    "  FROM chunks_fts f%s"
    "  WHERE chunks_fts MATCH ?1%s ORDER BY rank LIMIT ?2)"
    " SELECT t.id, -t.rank, c.doc_id, s.name, d.title, d.url,"
    "  (SELECT text FROM chunks_fts WHERE rowid = t.id), d.acl_synced_at"
    " FROM top t JOIN chunks c ON c.id = t.id JOIN documents d ON d.id = c.doc_id"
    " JOIN sources s ON s.id = d.source_id"
    " WHERE d.deleted = 0 ORDER BY t.rank";

/* The caller's principals that some allow (deny = 0) or deny list names. */
static const char named_sql[] =
    "SELECT DISTINCT principal_id FROM acl_entries"
    " WHERE deny = ?2 AND principal_id IN (SELECT value FROM json_each(?1)) ORDER BY 1";

/* ACL sets the caller may read: allowed to one of them, denied to none. */
static const char readable_sql[] =
    "SELECT json_group_array(acl_id) FROM ("
    " SELECT acl_id FROM acl_entries WHERE deny = 0"
    "  AND principal_id IN (SELECT value FROM json_each(?1))"
    " EXCEPT SELECT acl_id FROM acl_entries WHERE deny = 1"
    "  AND principal_id IN (SELECT value FROM json_each(?1)))";

/*
 * Above this many principals an OR of their tokens costs more inside FTS5
 * than a lookup of each candidate's ACL set (measured in bench/README.md).
 */
#define MATCH_PRINCIPALS_MAX 32

static char *ids_json(const int64_t *ids, size_t n)
{
    ctx_buf b = CTX_BUF_INIT;
    ctx_buf_puts(&b, "[");
    for (size_t i = 0; i < n; i++)
        ctx_buf_printf(&b, "%s%lld", i ? "," : "", (long long)ids[i]);
    ctx_buf_puts(&b, "]");
    return ctx_buf_steal(&b);
}

/* named - which of the principals (as JSON) some allow or deny list names. */
static int named(sqlite3 *db, const char *pjson, int deny, acl_principals *out, ctx_error *err)
{
    sqlite3_stmt *s;

    out->ids = NULL;
    out->n = 0;
    if (sqlite3_prepare_v2(db, named_sql, -1, &s, NULL) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, pjson, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, deny);
    return acl__collect(s, out, err);
}

/* readable - the readable ACL set ids as a JSON array (new). */
static int readable(sqlite3 *db, const char *pjson, char **out, ctx_error *err)
{
    sqlite3_stmt *s;
    int rc;

    *out = NULL;
    if (sqlite3_prepare_v2(db, readable_sql, -1, &s, NULL) != SQLITE_OK)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, pjson, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = ctx_strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW)
        return ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
    return *out ? CTX_OK : ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
}

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
    acl_principals pr = {NULL, 0}, allow = {NULL, 0}, deny = {NULL, 0};
    sqlite3_stmt *s = NULL;
    char *match = NULL, *srcs = NULL, *pjson = NULL, *acls = NULL, sql[2048];
    int k = opts && opts->k > 0 ? opts->k : 10, per_doc = opts ? opts->per_doc : 0;
    int max_match = opts && opts->match_principals_max > 0 ? opts->match_principals_max
                                                          : MATCH_PRINCIPALS_MAX;
    int limit, rc, step, acl_in_match;
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
    rc = CTX_ENOMEM;
    if (!(pjson = ids_json(pr.ids, pr.n)))
        goto oom;
    /* Only principals some ACL names can change an answer. */
    if ((rc = named(db, pjson, 0, &allow, err)) || (rc = named(db, pjson, 1, &deny, err)))
        goto done;
    if (!allow.n)
        goto done; /* no document allows any of them */
    acl_in_match = allow.n <= (size_t)max_match;
    if (!acl_in_match && (rc = readable(db, pjson, &acls, err)))
        goto done;
    rc = build_match(query ? query : "", acl_in_match, allow.ids, allow.n, deny.ids,
                     acl_in_match ? deny.n : 0, &match);
    if (rc)
        goto oom;
    if (!match)
        goto done;
    if (opts && opts->nsources) {
        json_t *a = json_array();
        for (i = 0; i < opts->nsources; i++)
            json_array_append_new(a, json_string(opts->sources[i]));
        srcs = json_dumps(a, JSON_COMPACT);
        json_decref(a);
    }
    /*
     * Many principals: the words alone go to FTS5, and each candidate's ACL
     * set is checked in the same query, before ORDER BY rank and LIMIT:
     * bm25() runs only on rows that pass.
     */
    snprintf(sql, sizeof sql, search_sql_fmt,
             acl_in_match && !srcs ? "" :
             srcs ? " JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id"
                    " JOIN sources s ON s.id = d.source_id"
                  : " JOIN chunks c ON c.id = f.rowid",
             acl_in_match ? (srcs ? " AND s.name IN (SELECT value FROM json_each(?4))" : "")
             : srcs ? " AND c.acl_id IN (SELECT value FROM json_each(?3))"
                      " AND s.name IN (SELECT value FROM json_each(?4))"
                    : " AND c.acl_id IN (SELECT value FROM json_each(?3))");

    /* Collapsing chunks per document may need more rows than k: fetch a few
     * times k and widen once more if that was not enough. */
    limit = per_doc ? k * 4 + 8 : k;
    for (;;) {
        size_t nrows = 0;
        search_result_free(out);
        if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
            rc = ctx_error_set(err, CTX_ESTORE, "search: %s", sqlite3_errmsg(db));
            goto done;
        }
        sqlite3_bind_text(s, 1, match, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, limit);
        if (acls)
            sqlite3_bind_text(s, 3, acls, -1, SQLITE_STATIC);
        if (srcs)
            sqlite3_bind_text(s, 4, srcs, -1, SQLITE_STATIC);
        cap = 0;
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            int64_t doc = sqlite3_column_int64(s, 2);
            size_t same = 0;
            search_hit *h;
            nrows++;
            if ((int)out->n >= k)
                continue;
            for (i = 0; per_doc && i < out->n; i++)
                same += out->hits[i].doc_id == doc;
            if (per_doc && (int)same >= per_doc)
                continue;
            if (out->n == cap) {
                cap = cap ? cap * 2 : 16;
                if (!(h = ctx_realloc(out->hits, cap * sizeof *h))) {
                    rc = ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
                    goto done;
                }
                out->hits = h;
            }
            h = &out->hits[out->n++];
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
    goto done;
oom:
    rc = ctx_error_set(err, CTX_ENOMEM, "search: out of memory");
done:
    if (rc)
        search_result_free(out);
    sqlite3_finalize(s);
    ctx_free(match);
    ctx_free(pjson);
    ctx_free(acls);
    free(srcs);
    acl_principals_free(&pr);
    acl_principals_free(&allow);
    acl_principals_free(&deny);
    return rc;
}
