/*
 * embed_delta.c - what an embed run costs beside an index of N vectors:
 * the time, the bytes the process wrote (write calls, /proc/self/io
 * wchar), the bytes of vector index files it wrote, and its peak RSS.
 * Built against either tree (issue 16's before and after) by
 * bench/embed_delta.sh:
 *
 *   embed_delta fill DIR N     a store of N one-chunk documents in DIR/data,
 *                              embedded (hash, 384-d) and its index written
 *   embed_delta add DIR N      N documents more, not embedded
 *   embed_delta embed DIR      one embed job (jobs_embed); a line of numbers
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "agent/jobs.h"
#include "core/config.h"
#include "core/util.h"
#include "indexer/ingest.h"
#include "indexer/vindex.h"

static volatile sig_atomic_t never;

static int64_t wchar(void)
{
    char line[256];
    long long v = -1;
    FILE *f = fopen("/proc/self/io", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %lld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* One line per index file: name inode mtime size. */
typedef struct snap {
    char name[128];
    unsigned long long ino;
    long long mtime_ns, size;
} snap;

static size_t snapshot(const char *data, snap *s, size_t max)
{
    struct dirent *e;
    size_t n = 0;
    DIR *d = opendir(data);
    while (d && (e = readdir(d)) && n < max) {
        char path[4096];
        struct stat sb;
        if (strncmp(e->d_name, "vectors-", 8))
            continue;
        snprintf(path, sizeof path, "%s/%s", data, e->d_name);
        if (stat(path, &sb))
            continue;
        snprintf(s[n].name, sizeof s[n].name, "%s", e->d_name);
        s[n].ino = (unsigned long long)sb.st_ino;
        s[n].mtime_ns = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
        s[n].size = (long long)sb.st_size;
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* written - the bytes of files in b that are new or changed since a. */
static long long written(const snap *a, size_t na, const snap *b, size_t nb)
{
    long long sum = 0;
    for (size_t i = 0; i < nb; i++) {
        int same = 0;
        for (size_t j = 0; j < na && !same; j++)
            same = !strcmp(a[j].name, b[i].name) && a[j].ino == b[i].ino &&
                   a[j].mtime_ns == b[i].mtime_ns;
        if (!same)
            sum += b[i].size;
    }
    return sum;
}

static int open_dir(const char *dir, ctx_config *cfg, ctx_store **st, ctx_error *err)
{
    char path[4096];
    int rc;
    snprintf(path, sizeof path, "%s/ctxgate.json", dir);
    if ((rc = ctx_config_load(path, cfg, err)))
        return rc;
    ctx_mkdir_p(cfg->data_dir);
    ctx_config_store_path(cfg, path, sizeof path);
    return store_open(path, 0, st, err);
}

static int add_docs(ctx_store *st, long n, ctx_error *err)
{
    static const char *const words[] = {"invoice", "salary", "roadmap", "ticket", "release",
                                        "contract", "budget", "incident", "review", "policy"};
    const char *allow[1] = {"everyone"};
    ctx_acl acl = {allow, 1, NULL, 0, NULL, 0};
    store_run_stats stats;
    ingest_ctx ic;
    int64_t have = 0;
    sqlite3_stmt *s;
    int rc;

    memset(&ic, 0, sizeof ic);
    memset(&stats, 0, sizeof stats);
    if ((rc = store_source(st, "bench", "bench", &ic.source, err)))
        return rc;
    ic.store = st;
    ic.epoch = 1;
    ic.stats = &stats;
    ic.chunk.max_tokens = 256;
    if (sqlite3_prepare_v2(store_db(st), "SELECT count(*) FROM documents", -1, &s, NULL) ==
        SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        have = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    for (long i = 0; i < n; i += 5000) {
        if ((rc = store_begin(st, err)))
            return rc;
        for (long j = i; j < n && j < i + 5000; j++) {
            char id[32], body[256];
            long k = (long)have + j;
            snprintf(id, sizeof id, "doc-%ld", k);
            snprintf(body, sizeof body, "%s %s %s w%ld w%ld w%ld note %ld",
                     words[k % 10], words[(k / 10) % 10], words[(k / 100) % 10], k % 997,
                     k % 9973, k % 99991, k);
            ctx_record r = {"docs", id, id, NULL, body, strlen(body), NULL, 0, &acl};
            if ((rc = ingest_record(&ic, &r, err))) {
                store_rollback(st);
                return rc;
            }
        }
        if ((rc = store_commit(st, err)))
            return rc;
    }
    return CTX_OK;
}

static int embed_once(ctx_config *cfg, ctx_store *st, ctx_error *err)
{
    snap a[4096], b[4096];
    size_t na = snapshot(cfg->data_dir, a, 4096), nb;
    embed_job_stats es;
    struct rusage ru;
    int64_t w0 = wchar();
    uint64_t t0 = ctx_mono_ns();
    int rc;

#ifdef VINDEX_DELTAS_MAX
    rc = jobs_embed(cfg, st, 0, -1, &never, &es, err);
#else
    rc = jobs_embed(cfg, st, 0, &never, &es, err);
#endif
    if (rc)
        return rc;
    nb = snapshot(cfg->data_dir, b, 4096);
    getrusage(RUSAGE_SELF, &ru);
    printf("embedded %lld  seconds %.3f  wchar %lld  index_bytes %lld  peak_rss_mb %ld\n",
           (long long)es.run.embedded, (double)(ctx_mono_ns() - t0) / 1e9,
           (long long)(wchar() - w0), written(a, na, b, nb), ru.ru_maxrss / 1024);
    return CTX_OK;
}

int main(int argc, char **argv)
{
    ctx_config cfg;
    ctx_store *st = NULL;
    ctx_error err;
    int rc;

    if (argc < 3 || (strcmp(argv[1], "embed") && argc < 4)) {
        fprintf(stderr, "usage: embed_delta fill|add DIR N | embed DIR\n");
        return 2;
    }
    if (!strcmp(argv[1], "fill")) {
        char cfgtext[512];
        snprintf(cfgtext, sizeof cfgtext, "{\"data_dir\": \"%s/data\", \"embeddings\":"
                 " {\"provider\": \"hash\", \"dim\": 384, \"batch_size\": 512},"
                 " \"sources\": []}", argv[2]);
        ctx_mkdir_p(argv[2]);
        {
            char path[4096];
            FILE *f;
            snprintf(path, sizeof path, "%s/ctxgate.json", argv[2]);
            if (!(f = fopen(path, "w")) || fputs(cfgtext, f) < 0 || fclose(f))
                return 1;
        }
    }
    if ((rc = open_dir(argv[2], &cfg, &st, &err)))
        goto done;
    if (strcmp(argv[1], "embed") && (rc = add_docs(st, atol(argv[3]), &err)))
        goto done;
    if (strcmp(argv[1], "add"))
        rc = embed_once(&cfg, st, &err);
done:
    if (rc)
        fprintf(stderr, "embed_delta: %s\n", err.text);
    store_close(st);
    ctx_config_free(&cfg);
    return rc ? 1 : 0;
}
