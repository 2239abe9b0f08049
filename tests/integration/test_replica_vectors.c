/*
 * test_replica_vectors.c - vectors computed once in the cluster (issue 14,
 * docs/cluster.md "Vectors computed once"), through the real binary
 * against the PostgreSQL of scripts/pg.sh and a local OpenAI-compatible
 * embeddings server (tests/embed_server.py, which counts every text it is
 * asked for). The cluster's embed job writes ctxgate.chunk_vectors; two
 * replicas take their vectors from the stream and never call the embedder
 * for a chunk; a vector is only ever a chunk's whose text it was computed
 * from.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/embed.h"
#include "indexer/store.h"
#include "tests/lib/pgtest.h"
#include "tests/lib/testutil.h"

#define SECRET "test-secret-0123456789-abcdefghijklmnop"
#define ISS "ctxgate-test"
#define AUD "ctxgate-api"

static struct {
    PGconn *admin, *db;
    char name[64];           /* the database this test made */
    char tag[16];            /* in this test's replica names (slots are server-wide) */
    char bin[4096];
    char *root;
    pid_t server, serve;     /* the embeddings server; a serve to stop at the end */
    const char *embeddings;  /* the configs' embeddings section (NULL: the server's m1) */
    char model[64];          /* the model every replica's vector must be of */
    int port;                /* the embeddings server's */
    char why[1024];
} F;

static void setup(void)
{
    cr_assert(pgtest_conninfo() != NULL, PGTEST_MISSING);
    F.admin = pgtest_connect(NULL, F.why, sizeof F.why);
    cr_assert(F.admin != NULL, "%s", F.why);
    snprintf(F.tag, sizeof F.tag, "%ld", (long)getpid());
    F.db = pgtest_db_make(F.admin, "rvec", F.name, sizeof F.name, F.why, sizeof F.why);
    cr_assert(F.db != NULL, "%s", F.why);
    snprintf(F.bin, sizeof F.bin, "%s/ctxgate", tu_build_dir());
    {
        char real[4096];
        cr_assert(realpath(F.bin, real) != NULL && access(real, X_OK) == 0, "%s not built",
                  F.bin);
        snprintf(F.bin, sizeof F.bin, "%s", real);
    }
    F.root = tu_tmpdir("rvec");
    F.server = tu_embed_server(16, "5", &F.port);
    snprintf(F.model, sizeof F.model, "openai:m1");
}

static void teardown(void)
{
    if (F.serve > 0) {
        kill(F.serve, SIGTERM);
        waitpid(F.serve, NULL, 0);
    }
    if (F.server > 0) {
        kill(F.server, SIGTERM);
        waitpid(F.server, NULL, 0);
    }
    pgtest_db_drop(F.admin, F.db, F.name);
    PQfinish(F.admin);
    if (F.root) {
        tu_rmrf(F.root);
        free(F.root);
    }
}

TestSuite(replica_vectors, .init = setup, .fini = teardown, .timeout = 600);

/* node - F.root/name/ctxgate.json: the demo source, the embeddings server's
 * model m1 (16 dimensions), cluster mode; replica NULL for a writer. */
static char *node(const char *name, const char *replica, const char *docs)
{
    static char dirs[8][4200];
    static int n;
    char *dir = dirs[n++ % 8], rep[96] = "", text[8192], emb[256];

    snprintf(dir, sizeof dirs[0], "%s/%s", F.root, name);
    if (replica)
        snprintf(rep, sizeof rep, ", \"replica\": \"%s%s\"", replica, F.tag);
    if (F.embeddings)
        snprintf(emb, sizeof emb, "%s", F.embeddings);
    else
        snprintf(emb, sizeof emb, "{\"provider\": \"openai\", \"model\": \"m1\", \"dim\": 16,"
                 " \"base_url\": \"http://127.0.0.1:%d/v1\", \"batch_size\": 16}", F.port);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"data\", \"chunk\": {\"max_tokens\": 48, \"overlap_tokens\": 8},"
             " \"sources\": [{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"}],"
             " \"embeddings\": %s,"
             " \"search\": {\"w_lexical\": 1, \"w_vector\": 1},"
             " \"agent\": {\"embed\": \"1m\"},"
             " \"agents\": [{\"name\": \"desk\", \"sources\": \"*\", \"labels\": \"*\","
             "  \"max_k\": 50, \"max_tokens\": 1000000}],"
             " \"auth\": {\"issuer\": \"" ISS "\", \"audience\": \"" AUD "\","
             "  \"hs256_secret_env\": \"CTXGATE_TEST_SECRET\"},"
             " \"serve\": {\"listen\": \"127.0.0.1:0\", \"threads\": 2},"
             " \"cluster\": {\"conninfo\": \"%s dbname=%s\","
             "  \"password_env\": \"CTX_TEST_PGPASSWORD\"%s}}",
             docs, emb, pgtest_conninfo(), F.name, rep);
    tu_write(dir, "ctxgate.json", text);
    return dir;
}

static char *demo_copy(const char *name)
{
    static char path[4200];
    char cmd[9000];

    snprintf(path, sizeof path, "%s/%s", F.root, name);
    snprintf(cmd, sizeof cmd, "cp -r examples/demo %s", path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    return path;
}

/* run - `ctxgate ARGS` in dir; its exit status. */
static int run(const char *dir, const char *args)
{
    int status;
    char *out = tu_cli(dir, args, 1, &status);

    if (status)
        fprintf(stderr, "ctxgate %s in %s: %s\n", args, dir, out);
    free(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static long long pg_count(const char *sql)
{
    PGresult *r = PQexec(F.db, sql);
    long long n;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(F.db));
    n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static long long store_count(const char *dir, const char *sql)
{
    char path[4200];
    ctx_store *st;
    long long n;

    snprintf(path, sizeof path, "%s/data", dir);
    st = tu_store(path);
    n = (long long)tu_count(st, sql);
    store_close(st);
    return n;
}

/* ---- what the embeddings server was asked ---- */

/* chunk_texts - the texts the server embedded for chunks (a chunk's text has
 * a newline after its title; a query has none): *distinct of them, *max the
 * most times one was asked for. */
static void chunk_texts(long long *distinct, long long *max)
{
    char *s = tu_http(F.port, "/stats", NULL);
    json_t *j = json_loads(s, 0, NULL), *seen = json_object_get(j, "seen"), *v;
    const char *text;

    cr_assert(json_is_object(seen), "%s", s);
    *distinct = *max = 0;
    json_object_foreach(seen, text, v) {
        if (!strchr(text, '\n'))
            continue;
        (*distinct)++;
        if (json_integer_value(v) > *max)
            *max = json_integer_value(v);
    }
    json_decref(j);
    free(s);
}

/* ---- what a replica holds ---- */

/*
 * vectors_true - every vector in dir's store is of the text its chunk holds
 * now (the hash of "title\ntext", as the embed queue reads it), and is of
 * the model F.model with 16 dimensions: a replica never serves a vector of text
 * it does not hold. Returns how many there are.
 */
static long long vectors_true(const char *dir)
{
    char path[4200];
    ctx_store *st;
    sqlite3_stmt *q;
    long long n = 0;

    snprintf(path, sizeof path, "%s/data", dir);
    st = tu_store(path);
    cr_assert_eq(sqlite3_prepare_v2(store_db(st),
                                    "SELECT v.text_hash, f.c0, f.c1, m.name, v.dim"
                                    " FROM vectors v JOIN chunks_fts_content f"
                                    " ON f.id = v.chunk_id JOIN embed_models m"
                                    " ON m.id = v.model_id", -1, &q, NULL), SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        ctx_buf b = CTX_BUF_INIT;
        unsigned char h[16];
        const char *title = (const char *)sqlite3_column_text(q, 1);
        const char *text = (const char *)sqlite3_column_text(q, 2);
        ctx_buf_printf(&b, "%s\n%s", title ? title : "", text ? text : "");
        embed_text_hash(b.data, b.len, h);
        cr_assert_eq(sqlite3_column_bytes(q, 0), 16);
        cr_assert(!memcmp(h, sqlite3_column_blob(q, 0), 16),
                  "%s: a vector of other text than its chunk's: %.80s", dir, b.data);
        cr_assert_str_eq((const char *)sqlite3_column_text(q, 3), F.model);
        cr_assert_eq(sqlite3_column_int(q, 4), 16);
        ctx_buf_free(&b);
        n++;
    }
    sqlite3_finalize(q);
    store_close(st);
    return n;
}

/* search_json - `search --json` of query as user in mode: the answer
 * without local ids and sync times (another store's numbering), and its
 * vector_leg; both new. */
static char *search_json(const char *dir, const char *user, const char *mode,
                         const char *query, char **leg)
{
    char args[512], *out, *dump;
    json_t *j, *r;
    json_error_t je;
    size_t i;
    int status;

    snprintf(args, sizeof args, "search --as %s --k 20 --mode %s --json '%s'", user, mode,
             query);
    out = tu_cli(dir, args, 0, &status);
    cr_assert_eq(status, 0, "search in %s failed: %s", dir, out);
    j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "%s: %s", je.text, out);
    free(out);
    *leg = json_dumps(json_object_get(j, "vector_leg"), JSON_SORT_KEYS | JSON_COMPACT |
                      JSON_ENCODE_ANY);
    json_array_foreach(json_object_get(j, "results"), i, r) {
        json_object_del(r, "doc_id");
        json_object_del(r, "acl_synced_at");
    }
    cr_assert_gt(json_array_size(json_object_get(j, "results")), 0, "%s %s found nothing",
                 mode, query);
    json_object_del(j, "vector_leg");
    dump = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return dump;
}

static const char *const users[] = {"user:alice@northwind.test", "user:carol@northwind.test",
                                    "user:bob@northwind.test"};
static const char *const queries[] = {"budget", "leave policy", "incident", "office move"};

/* same_vector_answers - a and b answer every user and query alike, in hybrid
 * and vector mode, and both with their vector leg. */
static void same_vector_answers(const char *a, const char *b)
{
    static const char *const modes[] = {"hybrid", "vector"};

    for (size_t u = 0; u < sizeof users / sizeof users[0]; u++)
        for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++)
            for (size_t m = 0; m < 2; m++) {
                char *la, *lb, *x = search_json(a, users[u], modes[m], queries[q], &la);
                char *y = search_json(b, users[u], modes[m], queries[q], &lb);
                cr_assert_str_eq(la, "{\"used\":true}", "%s %s in %s: %s", modes[m],
                                 queries[q], a, la);
                cr_assert_str_eq(lb, "{\"used\":true}", "%s %s in %s: %s", modes[m],
                                 queries[q], b, lb);
                cr_assert_str_eq(x, y, "%s %s as %s: the replicas differ", modes[m],
                                 queries[q], users[u]);
                free(la);
                free(lb);
                free(x);
                free(y);
            }
}

/* ---- the tests ---- */

Test(replica_vectors, each_text_is_embedded_once_and_both_replicas_answer_from_its_vectors)
{
    char *docs = demo_copy("docs"), *w = node("w", NULL, docs), *ra = node("ra", "va", docs);
    char *rb = node("rb", "vb", docs), path[4400], *leg, *ans;
    long long distinct, max, chunks, before;

    cr_assert_eq(run(w, "sync"), 0);
    /* A replica before any vector exists answers from the lexical leg, saying so. */
    cr_assert_eq(run(rb, "follow --once"), 0);
    ans = search_json(rb, users[0], "hybrid", "budget", &leg);
    cr_assert(strstr(leg, "\"used\":false") && strstr(leg, "no_index"), "%s", leg);
    free(ans);
    free(leg);
    chunk_texts(&distinct, &max);
    cr_assert_eq(distinct, 0, "a replica called the embedder for a chunk");

    /* The cluster's embed job: each distinct chunk text once. */
    cr_assert_eq(run(w, "embed"), 0);
    chunk_texts(&distinct, &max);
    cr_assert_gt(distinct, 50);
    cr_assert_eq(max, 1, "a text was embedded more than once");
    cr_assert_eq(distinct, pg_count("SELECT count(DISTINCT text_hash) FROM"
                                    " ctxgate.chunk_vectors WHERE model = 'openai:m1'"));
    /* one replica from a first copy, the other from the stream */
    cr_assert_eq(run(ra, "follow --once"), 0);
    cr_assert_eq(run(rb, "follow --once"), 0);
    chunks = store_count(ra, "SELECT count(*) FROM chunks");
    cr_assert_eq(store_count(rb, "SELECT count(*) FROM chunks"), chunks);
    cr_assert_eq(vectors_true(ra), chunks, "every chunk of ra has its vector");
    cr_assert_eq(vectors_true(rb), chunks, "every chunk of rb has its vector");
    cr_assert_eq(store_count(ra, "SELECT count(*) FROM embed_queue"), 0);
    cr_assert_eq(store_count(rb, "SELECT count(*) FROM embed_queue"), 0);
    same_vector_answers(ra, rb);
    chunk_texts(&distinct, &max);
    cr_assert_eq(max, 1, "a replica embedded a chunk itself");
    /* A second run has nothing to do: no call at all. */
    before = distinct;
    cr_assert_eq(run(w, "embed"), 0);
    chunk_texts(&distinct, &max);
    cr_assert_eq(distinct, before);
    cr_assert_eq(max, 1);

    /* An edit and a deletion: the edited document's new text waits on the
     * replicas until the cluster embeds it; the old vectors are never served. */
    snprintf(path, sizeof path, "%s/finance/expense-policy.md", docs);
    {
        FILE *fp = fopen(path, "a");
        cr_assert_not_null(fp);
        fputs("\n\nTaxis after midnight are reimbursed in full with a receipt from the"
              " driver.\n", fp);
        fclose(fp);
    }
    snprintf(path, sizeof path, "%s/finance/office-move-costs.md", docs);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(ra, "follow --once"), 0);
    cr_assert_gt(store_count(ra, "SELECT count(*) FROM embed_queue"), 0);
    chunks = store_count(ra, "SELECT count(*) FROM chunks");
    cr_assert_lt(vectors_true(ra), chunks, "the new text has no vector yet");
    ans = search_json(ra, users[0], "hybrid", "taxis after midnight", &leg);
    cr_assert(strstr(ans, "Expense policy") || strstr(ans, "expense-policy"), "%s", ans);
    free(ans);
    free(leg);
    cr_assert_eq(run(w, "embed"), 0);
    chunk_texts(&distinct, &max);
    cr_assert_gt(distinct, before, "the edited document's new text was embedded");
    cr_assert_eq(max, 1, "only the new text was embedded; the rest was reused");
    cr_assert_eq(run(ra, "follow --once"), 0);
    cr_assert_eq(run(rb, "follow --once"), 0);
    chunks = store_count(ra, "SELECT count(*) FROM chunks");
    cr_assert_eq(store_count(rb, "SELECT count(*) FROM chunks"), chunks);
    cr_assert_eq(vectors_true(ra), chunks);
    cr_assert_eq(vectors_true(rb), chunks);
    cr_assert_eq(store_count(rb, "SELECT count(*) FROM embed_queue"), 0);
    /* In PostgreSQL: the deleted document has no vector left, the edited one
     * only its current texts', as many as its chunks have distinct texts. */
    cr_assert_eq(pg_count("SELECT count(*) FROM ctxgate.chunk_vectors v JOIN ctxgate.documents d"
                          " ON d.id = v.doc WHERE d.ext_id LIKE '%office-move-costs.md'"), 0);
    cr_assert_eq(pg_count("SELECT count(*) FROM ctxgate.chunk_vectors v JOIN ctxgate.documents d"
                          " ON d.id = v.doc WHERE d.ext_id LIKE '%expense-policy.md'"),
                 store_count(rb, "SELECT count(DISTINCT v.text_hash) FROM vectors v"
                             " JOIN chunks c ON c.id = v.chunk_id JOIN documents d"
                             " ON d.id = c.doc_id WHERE d.ext_id LIKE '%expense-policy.md'"));
    /* ... and the replicas' mirrors hold what PostgreSQL holds */
    cr_assert_eq(store_count(ra, "SELECT count(*) FROM replica_vectors"),
                 pg_count("SELECT count(*) FROM ctxgate.chunk_vectors"));
    cr_assert_eq(store_count(rb, "SELECT count(*) FROM replica_vectors"),
                 pg_count("SELECT count(*) FROM ctxgate.chunk_vectors"));
    same_vector_answers(ra, rb);
}

Test(replica_vectors, the_embed_job_runs_once_across_two_workers)
{
    char *docs = demo_copy("docs"), *w1 = node("w1", NULL, docs), *w2 = node("w2", NULL, docs);
    char *r = node("r", "vr", docs);
    long long distinct, max, chunks;
    pid_t a, b;
    int status;

    /* Two workers at once, each until nothing is due: sync, permissions,
     * full, then the cluster's embed job, each once. */
    a = fork();
    cr_assert_neq(a, -1);
    if (!a)
        _exit(run(w1, "agent --once"));
    b = fork();
    cr_assert_neq(b, -1);
    if (!b)
        _exit(run(w2, "agent --once"));
    waitpid(a, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    waitpid(b, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(pg_count("SELECT runs FROM ctxgate.jobs WHERE source = '*' AND kind = 'embed'"),
                 1);
    cr_assert_eq(pg_count("SELECT count(*) FROM ctxgate.jobs WHERE source = '*'"
                          " AND kind = 'embed' AND last_status = 'ok'"), 1);
    /* whatever the job did not see yet (a sync still running), one more run */
    cr_assert_eq(run(w2, "embed"), 0);
    chunk_texts(&distinct, &max);
    cr_assert_gt(distinct, 50);
    cr_assert_eq(max, 1, "a text was embedded more than once");
    cr_assert_eq(run(r, "follow --once"), 0);
    chunks = store_count(r, "SELECT count(*) FROM chunks");
    cr_assert_eq(vectors_true(r), chunks);
}

/* serve_leg - a hybrid search of query as user over serve's API: its
 * vector_leg as JSON (new), and whether doc (a title) is in the results. */
static char *serve_leg(int port, const char *user, const char *query, const char *title,
                       int *found)
{
    char *tok = tu_jwt(SECRET, ISS, AUD, user, "desk", 3600), body[256], *leg;
    tu_reply r;
    json_t *j;

    snprintf(body, sizeof body, "{\"query\": \"%s\", \"mode\": \"hybrid\"}", query);
    r = tu_call(port, "POST", "/v1/search", tok, body, NULL);
    free(tok);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = json_loads(r.body, 0, NULL);
    cr_assert_not_null(j, "%s", r.body);
    leg = json_dumps(json_object_get(j, "vector_leg"), JSON_SORT_KEYS | JSON_COMPACT |
                     JSON_ENCODE_ANY);
    *found = strstr(r.body, title) != NULL;
    json_decref(j);
    tu_reply_free(&r);
    return leg;
}

Test(replica_vectors, a_serving_replica_takes_the_vectors_as_the_cluster_embeds)
{
    char *docs = demo_copy("docs"), *w = node("w", NULL, docs), *r = node("r", "vs", docs);
    char env[128], *leg = NULL;
    long long distinct, max;
    pid_t srv;
    int port, found = 0, i;

    cr_assert_eq(run(w, "sync"), 0);
    snprintf(env, sizeof env, "CTXGATE_TEST_SECRET=%s", SECRET);
    F.serve = srv = tu_serve(r, env, "--no-agent", &port);
    cr_assert(port > 0, "serve did not start (see %s/serve.log)", r);
    for (i = 0; i < 600; i++) {
        tu_reply h = tu_call(port, "GET", "/readyz", NULL, NULL, NULL);
        long st = h.status;
        tu_reply_free(&h);
        if (st == 200)
            break;
        usleep(100000);
    }
    cr_assert_lt(i, 600, "the replica never caught up");
    /* No vector in the cluster yet: the lexical leg answers, and says so. */
    leg = serve_leg(port, users[1], "budget", "2027 budget plan", &found);
    cr_assert(strstr(leg, "\"used\":false") && strstr(leg, "no_index"), "%s", leg);
    cr_assert(found);
    free(leg);
    /* The cluster embeds: the serving replica follows, and its index takes them. */
    cr_assert_eq(run(w, "embed"), 0);
    for (i = 0; i < 600; i++) {
        leg = serve_leg(port, users[1], "budget", "2027 budget plan", &found);
        if (!strcmp(leg, "{\"used\":true}"))
            break;
        free(leg);
        leg = NULL;
        usleep(100000);
    }
    cr_assert_not_null(leg, "serve never used the vector leg");
    cr_assert(found);
    free(leg);
    chunk_texts(&distinct, &max);
    cr_assert_gt(distinct, 50);
    cr_assert_eq(max, 1, "serve embedded a chunk the cluster had embedded");
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    F.serve = 0;
}

/* start - `ctxgate ARGS` in dir in the background (output to dir/log). */
static pid_t start(const char *dir, const char *args)
{
    char cmd[9000];
    pid_t pid;

    snprintf(cmd, sizeof cmd, "cd %s && exec %s --config ctxgate.json %s >>log 2>&1", dir, F.bin,
             args);
    cr_assert_neq(pid = fork(), -1);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* vector_set - every vector of dir's store as "text hash:vector" lines in
 * order (chunk ids are the store's own: left out), new. */
static char *vector_set(const char *dir)
{
    char path[4200], *t;
    ctx_store *st;

    snprintf(path, sizeof path, "%s/data", dir);
    st = tu_store(path);
    t = tu_text(st, "SELECT group_concat(x, char(10)) FROM (SELECT hex(text_hash) || ':' ||"
                    " hex(vec) AS x FROM vectors ORDER BY 1)");
    store_close(st);
    return t;
}

Test(replica_vectors, a_replica_killed_while_vectors_stream_in_ends_as_a_fresh_one)
{
    char *docs = demo_copy("docs"), *w = node("w", NULL, docs), *rk = node("rk", "vk", docs);
    char *rf = node("rf", "vf", docs), path[4400], *a, *b;
    long long chunks;

    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(w, "embed"), 0);
    srand((unsigned)getpid());
    for (int round = 0; round < 5; round++) {
        pid_t f = start(rk, "follow");
        /* three documents edited, synced and embedded while it follows */
        for (int k = 0; k < 3; k++) {
            static const char *const files[] = {"finance/expense-policy.md",
                                                "hr/parental-leave-policy.md",
                                                "engineering/oncall-runbook.md",
                                                "all-hands/welcome-guide.md"};
            FILE *fp;
            snprintf(path, sizeof path, "%s/%s", docs, files[(round + k) % 4]);
            cr_assert_not_null(fp = fopen(path, "a"));
            fprintf(fp, "\n\nRound %d, note %d: the figures were checked again.\n", round, k);
            fclose(fp);
        }
        cr_assert_eq(run(w, "sync"), 0);
        cr_assert_eq(run(w, "embed"), 0);
        usleep((useconds_t)(rand() % 400) * 1000);
        kill(f, SIGKILL);
        waitpid(f, NULL, 0);
    }
    cr_assert_eq(run(rk, "follow --once"), 0);
    cr_assert_eq(run(rf, "follow --once"), 0);
    chunks = store_count(rk, "SELECT count(*) FROM chunks");
    cr_assert_eq(store_count(rf, "SELECT count(*) FROM chunks"), chunks);
    cr_assert_eq(vectors_true(rk), chunks, "the killed replica lacks vectors");
    cr_assert_eq(vectors_true(rf), chunks);
    a = vector_set(rk);
    b = vector_set(rf);
    cr_assert_str_eq(a, b, "the killed replica's vectors differ from a fresh replica's");
    free(a);
    free(b);
    cr_assert_eq(store_count(rk, "SELECT count(*) FROM replica_vectors"),
                 pg_count("SELECT count(*) FROM ctxgate.chunk_vectors"));
    {
        long long distinct, max;
        chunk_texts(&distinct, &max);
        cr_assert_eq(max, 1, "a text was embedded twice");
    }
}

/* lsa_hash - the cluster's one lsa model (asserted to be one), new. */
static char *lsa_hash(void)
{
    PGresult *r = PQexec(F.db, "SELECT hash FROM ctxgate.lsa_models");
    char *h;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(F.db));
    cr_assert_eq(PQntuples(r), 1, "the cluster keeps one lsa model of a dimension");
    h = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return h;
}

/* same_file - dir's copy of the model file is the trainer's, byte for byte. */
static void same_file(const char *dir, const char *trainer, const char *hash)
{
    char a[4400], b[4400], *x, *y;
    size_t lx, ly;

    snprintf(a, sizeof a, "%s/data/lsa-%s.model", dir, hash);
    snprintf(b, sizeof b, "%s/data/lsa-%s.model", trainer, hash);
    cr_assert_eq(ctx_read_file(a, &x, &lx), 0, "%s has no model file %s", dir, a);
    cr_assert_eq(ctx_read_file(b, &y, &ly), 0, "%s", b);
    cr_assert(lx == ly && !memcmp(x, y, lx), "%s differs from the trained file", a);
    ctx_free(x);
    ctx_free(y);
}

Test(replica_vectors, lsa_is_trained_once_in_the_cluster_and_every_replica_uses_its_file)
{
    char *docs, *w, *ra, *rb, *h1, *h2, path[4400];
    long long chunks;
    static const char *const edited[] = {
        "finance/expense-policy.md", "hr/parental-leave-policy.md",
        "engineering/oncall-runbook.md", "all-hands/welcome-guide.md",
        "engineering/career-ladder.md", "hr/salary-bands-2026.md"};

    F.embeddings = "{\"provider\": \"lsa\", \"dim\": 16}";
    docs = demo_copy("docs");
    w = node("w", NULL, docs);
    ra = node("ra", "la", docs);
    rb = node("rb", "lb", docs);
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(rb, "follow --once"), 0); /* before any model: lexical */
    cr_assert_eq(run(w, "embed"), 0);
    h1 = lsa_hash();
    snprintf(F.model, sizeof F.model, "lsa:%s@16", h1);
    cr_assert_eq(run(ra, "follow --once"), 0);
    cr_assert_eq(run(rb, "follow --once"), 0);
    same_file(ra, w, h1);
    same_file(rb, w, h1);
    chunks = store_count(ra, "SELECT count(*) FROM chunks");
    cr_assert_eq(vectors_true(ra), chunks);
    cr_assert_eq(vectors_true(rb), chunks);
    same_vector_answers(ra, rb);
    /* Nothing changed: the model is kept, nothing is embedded again. */
    cr_assert_eq(run(w, "embed"), 0);
    h2 = lsa_hash();
    cr_assert_str_eq(h1, h2);
    free(h2);
    /* More than a fifth of the documents changed: a new model, once; each
     * replica switches to it when it has every vector of it. */
    for (size_t i = 0; i < sizeof edited / sizeof edited[0]; i++) {
        FILE *fp;
        snprintf(path, sizeof path, "%s/%s", docs, edited[i]);
        cr_assert_not_null(fp = fopen(path, "a"), "%s", path);
        fputs("\n\nThe committee reviewed this page and the quarterly figures again.\n", fp);
        fclose(fp);
    }
    cr_assert_eq(run(w, "sync"), 0);
    cr_assert_eq(run(w, "embed"), 0);
    h2 = lsa_hash();
    cr_assert_str_neq(h1, h2, "the model was not trained again");
    snprintf(F.model, sizeof F.model, "lsa:%s@16", h2);
    cr_assert_eq(run(ra, "follow --once"), 0);
    cr_assert_eq(run(rb, "follow --once"), 0);
    same_file(ra, w, h2);
    same_file(rb, w, h2);
    chunks = store_count(ra, "SELECT count(*) FROM chunks");
    cr_assert_eq(vectors_true(ra), chunks, "ra did not switch to the new model");
    cr_assert_eq(vectors_true(rb), chunks, "rb did not switch to the new model");
    cr_assert_eq(pg_count("SELECT count(DISTINCT model) FROM ctxgate.chunk_vectors"), 1);
    same_vector_answers(ra, rb);
    free(h1);
    free(h2);
    F.embeddings = NULL;
}
