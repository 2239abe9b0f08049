/*
 * test_agent_daemon.c - `ctxgate agent` as a real process: --once runs every
 * job of a fresh store and records it; two agents on one store never run a
 * job of the same source at the same time (a slow exec connector makes
 * runs overlap if they could); SIGTERM stops an agent cleanly mid-job;
 * SIGHUP with a broken config keeps the old one; a bad schedule is named;
 * embed jobs of two processes take turns (data/embed.lock).
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "indexer/vindex.h"
#include "tests/lib/testutil.h"

static char *dir;

/* A connector that takes its time: each read sleeps before its record. */
static const char slow_py[] =
    "import json, sys, time\n"
    "req = json.loads(sys.stdin.readline())\n"
    "def out(m): print(json.dumps(m), flush=True)\n"
    "out({'type': 'HELLO', 'protocol': 1, 'name': 'slow'})\n"
    "if req['type'] == 'discover':\n"
    "    out({'type': 'STREAM', 'name': 'items'})\n"
    "    out({'type': 'STREAM', 'name': 'principals'})\n"
    "elif req['type'] == 'read' and req['stream'] == 'items':\n"
    "    time.sleep(req['config'].get('sleep', 0))\n"
    "    n = (req['state'] or {}).get('n', 0) + 1\n"
    "    out({'type': 'RECORD', 'stream': 'items', 'id': 'i%d' % n, 'title': 'item %d' % n,\n"
    "         'body': 'slow item', 'acl': {'allow': ['group:staff']}})\n"
    "    out({'type': 'STATE', 'stream': 'items', 'state': {'n': n}})\n"
    "elif req['type'] == 'read':\n"
    "    out({'type': 'PRINCIPAL', 'kind': 'user', 'id': 'user:ann'})\n"
    "    out({'type': 'PRINCIPAL', 'kind': 'group', 'id': 'group:staff',\n"
    "         'members': ['user:ann']})\n"
    "    out({'type': 'STATE', 'stream': 'principals', 'state': {}})\n"
    "out({'type': 'DONE'})\n";

static void write_config(const char *schedule, double sleep_s)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 32},"
             " \"agent\": {\"max_jobs\": 2, \"retry\": \"1s\", \"embed\": \"2s\","
             "  \"maintain\": \"1h\"},"
             " \"sources\": [{\"name\": \"slow\", \"type\": \"exec\","
             "  \"command\": [\"python3\", \"slow.py\"], \"config\": {\"sleep\": %.2f},"
             "  \"schedule\": %s}]}",
             sleep_s, schedule);
    tu_write(dir, "ctxgate.json", cfg);
}

static void setup(void)
{
    dir = tu_tmpdir("agentd");
    tu_write(dir, "slow.py", slow_py);
}

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

TestSuite(agent_daemon, .init = setup, .fini = teardown, .timeout = 120);

/* spawn - `ctxgate agent ARGS` in dir, stderr to dir/name.log. */
static pid_t spawn(const char *args, const char *name)
{
    char cmd[PATH_MAX * 3], bin[PATH_MAX];
    pid_t pid;

    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(cmd, sizeof cmd, "cd %s && exec %s/ctxgate agent %s 2>%s.log", dir, bin, args,
             name);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* log_of - what the agent called name wrote to stderr (static buffer). */
static const char *log_of(const char *name)
{
    static char text[65536];
    char path[PATH_MAX + 16];
    size_t n = 0;
    FILE *f;

    snprintf(path, sizeof path, "%s/%s.log", dir, name);
    text[0] = '\0';
    if ((f = fopen(path, "r"))) {
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    return text;
}

static int wait_exit(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *db_path(void)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/data/ctxgate.db", dir);
    return path;
}

static ctx_store *open_store(void)
{
    ctx_store *st;
    ctx_error err;
    cr_assert_eq(store_open(db_path(), 0, &st, &err), 0, "%s", err.text);
    return st;
}

Test(agent_daemon, once_runs_every_job_and_records_it)
{
    ctx_store *st;

    write_config("{\"sync\": \"10m\", \"permissions\": \"5m\", \"full\": \"@daily\"}", 0);
    cr_assert_eq(wait_exit(spawn("--once", "a")), 0);
    st = open_store();
    /* sync, permissions, full for the source; embed and maintain store-wide (max 2 at once,
     * so --once runs the first two and waits) */
    cr_assert_geq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE status = 'ok'"), 2);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE status <> 'ok'"), 0);
    store_close(st);

    /* The next --once runs what is still due, nothing twice; after 2 s the
     * embed job is due again and finds the synced chunk. */
    cr_assert_eq(wait_exit(spawn("--once", "b")), 0);
    cr_assert_eq(wait_exit(spawn("--once", "c")), 0);
    sleep(3);
    cr_assert_eq(wait_exit(spawn("--once", "d")), 0);
    st = open_store();
    cr_assert_eq(tu_count(st, "SELECT count(DISTINCT kind) FROM agent_jobs"), 5);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE kind = 'maintain'"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents WHERE deleted = 0"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM term_df_meta"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM vectors"), 1);
    /* the permissions job read the principals stream only */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM principals WHERE name = 'group:staff'"), 1);
    store_close(st);
}

Test(agent_daemon, two_agents_never_run_a_source_twice_at_once)
{
    ctx_store *st;
    pid_t a, b;

    /* Each sync takes 0.6 s and is due every second: two agents want it
     * all the time. */
    write_config("{\"sync\": \"1s\", \"permissions\": \"\", \"full\": \"\"}", 0.6);
    a = spawn("", "a");
    b = spawn("", "b");
    /* Until three runs are done (a slow machine takes longer), at most 2 min. */
    for (int i = 0; i < 600 && access(db_path(), F_OK) != 0; i++)
        usleep(100 * 1000);
    st = open_store();
    for (int i = 0; i < 1200 && tu_count(st, "SELECT count(*) FROM sync_runs"
                                             " WHERE status = 'ok'") < 3; i++)
        usleep(100 * 1000);
    store_close(st);
    kill(a, SIGTERM);
    kill(b, SIGTERM);
    cr_assert_eq(wait_exit(a), 0, "%s", log_of("a"));
    cr_assert_eq(wait_exit(b), 0, "%s", log_of("b"));

    st = open_store();
    cr_assert_geq(tu_count(st, "SELECT count(*) FROM sync_runs WHERE status = 'ok'"), 3);
    /* The lock turned the other agent away at least once ... */
    cr_assert_geq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE status = 'busy'"), 1);
    /* ... and no two runs of the source overlap in time. */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs r1 JOIN sync_runs r2"
                              " ON r1.id < r2.id AND r1.source_id = r2.source_id"
                              " WHERE r2.started_at < r1.finished_at"
                              "   AND r1.started_at < r2.finished_at"),
                 0);
    /* Every job that started also ended: nothing left 'running'. */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE status = 'running'"), 0);
    /* The items the runs made are all there, each once: one per committed
     * checkpoint. */
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM documents"),
                 tu_count(st, "SELECT json_extract(state, '$.n') FROM sync_state"
                              " WHERE stream = 'items'"));
    store_close(st);
}

Test(agent_daemon, sigterm_mid_job_stops_cleanly)
{
    ctx_store *st;
    pid_t a;

    write_config("{\"sync\": \"1h\", \"permissions\": \"\", \"full\": \"\"}", 3);
    a = spawn("", "a");
    sleep(1); /* inside the 3 s read */
    kill(a, SIGTERM);
    cr_assert_eq(wait_exit(a), 0);
    st = open_store();
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE status = 'running'"), 0);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs WHERE status = 'running'"), 0);
    store_close(st);
}

Test(agent_daemon, a_broken_reload_keeps_the_old_config)
{
    pid_t a;

    write_config("{\"sync\": \"1h\", \"permissions\": \"\", \"full\": \"\"}", 0);
    a = spawn("", "a");
    sleep(1);
    tu_write(dir, "ctxgate.json", "{\"sources\": [ this is not json");
    kill(a, SIGHUP);
    sleep(2);
    cr_assert_eq(waitpid(a, NULL, WNOHANG), 0, "the agent died on a bad reload");
    kill(a, SIGTERM);
    cr_assert_eq(wait_exit(a), 0);
    cr_assert(strstr(log_of("a"), "reload refused") && strstr(log_of("a"), "invalid JSON"),
              "%s", log_of("a"));
}

Test(agent_daemon, a_bad_schedule_is_named)
{
    write_config("{\"sync\": \"every now and then\"}", 0);
    cr_assert_eq(wait_exit(spawn("--once", "a")), 2); /* a config error */
    cr_assert(strstr(log_of("a"), "sources[0].schedule.sync") && strstr(log_of("a"), "15m"),
              "%s", log_of("a"));
}

/* cli - `ctxgate ARGS` in dir; its stdout into out (static); the exit status. */
static int cli(const char *args, const char **out)
{
    static char text[8192];
    char cmd[PATH_MAX * 3], bin[PATH_MAX];
    size_t n;
    FILE *p;
    int st;

    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(cmd, sizeof cmd, "cd %s && %s/ctxgate %s 2>/dev/null", dir, bin, args);
    cr_assert_not_null(p = popen(cmd, "r"));
    n = fread(text, 1, sizeof text - 1, p);
    text[n] = '\0';
    st = pclose(p);
    *out = text;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * The permissions job is `sync --permissions`: an ACL sidecar changed and a
 * file removed are applied by the job alone (no content sync scheduled),
 * and by the command, with nothing re-chunked.
 */
Test(agent_daemon, the_permissions_job_applies_revocations_and_deletes)
{
    const char *out;
    ctx_store *st;
    char path[PATH_MAX];

    tu_write(dir, "docs/_principals.json",
             "{\"users\": [{\"id\": \"user:ann\"}, {\"id\": \"user:bo\"}]}");
    tu_write(dir, "docs/a.md", "# Alpha\n\nwalrus alpha\n");
    tu_write(dir, "docs/a.md.acl.json", "{\"allow\": [\"user:ann\", \"user:bo\"]}");
    tu_write(dir, "docs/b.md", "# Beta\n\nwalrus beta\n");
    tu_write(dir, "docs/b.md.acl.json", "{\"allow\": [\"user:ann\"]}");
    tu_write(dir, "docs/c.md", "# Gamma\n\nwalrus gamma\n");
    tu_write(dir, "docs/c.md.acl.json", "{\"allow\": [\"user:bo\"]}");
    tu_write(dir, "ctxgate.json",
             "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 32},"
             " \"agent\": {\"embed\": \"\", \"maintain\": \"\"},"
             " \"sources\": [{\"name\": \"w\", \"type\": \"files\", \"path\": \"docs\","
             "  \"schedule\": {\"sync\": \"\", \"permissions\": \"5m\", \"full\": \"\"}}]}");
    cr_assert_eq(cli("sync", &out), 0, "%s", out);
    st = open_store();
    cr_assert(tu_sees(st, "user:ann", "walrus", "Alpha"));
    store_close(st);

    /* The job: ann loses Alpha, Beta is gone. */
    tu_write(dir, "docs/a.md.acl.json", "{\"allow\": [\"user:bo\"]}");
    snprintf(path, sizeof path, "%s/docs/b.md", dir);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(wait_exit(spawn("--once", "a")), 0, "%s", log_of("a"));
    st = open_store();
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE kind = 'permissions'"
                              " AND status = 'ok'"), 1);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM sync_runs WHERE full = 2 AND status = 'ok'"
                              " AND acls = 1 AND pruned = 1 AND chunks = 0 AND records = 0"), 1);
    cr_assert(!tu_sees(st, "user:ann", "walrus", "Alpha"));
    cr_assert(tu_sees(st, "user:bo", "walrus", "Alpha"));
    cr_assert(!tu_sees(st, "user:ann", "walrus", "Beta"));
    store_close(st);

    /* The command, with its summary. */
    tu_write(dir, "docs/c.md.acl.json", "{\"allow\": [\"user:ann\"]}");
    cr_assert_eq(cli("sync --permissions w", &out), 0, "%s", out);
    cr_assert(strstr(out, "w: permissions: 2 checked, 1 permission changes, 0 deleted"), "%s",
              out);
    cr_assert(strstr(out, " 0 chunks"), "%s", out);
    st = open_store();
    cr_assert(tu_sees(st, "user:ann", "walrus", "Gamma"));
    store_close(st);
    cr_assert_eq(cli("sync --full --permissions", &out), 2);
}

/* spawn_cli - `ctxgate ARGS` in dir (not the agent), output to dir/name.log. */
static pid_t spawn_cli(const char *args, const char *name)
{
    char cmd[PATH_MAX * 3], bin[PATH_MAX];
    pid_t pid;

    cr_assert(realpath(tu_build_dir(), bin));
    snprintf(cmd, sizeof cmd, "cd %s && exec %s/ctxgate %s >%s.log 2>&1", dir, bin, args, name);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/*
 * One embed job at a time per data_dir, whichever process runs it: while
 * another holds data/embed.lock an agent's embed job is recorded busy and
 * writes nothing, and `ctxgate embed` waits its turn; two agents embedding
 * all the time keep the index files one chain that holds every vector.
 */
Test(agent_daemon, embed_jobs_take_turns_across_processes)
{
    char lock[PATH_MAX], data[PATH_MAX];
    vindex_files_info fi;
    int64_t active, target;
    ctx_error err;
    ctx_store *st;
    int fd, status;
    pid_t a, b, e;

    write_config("{\"sync\": \"1s\", \"permissions\": \"\", \"full\": \"\"}", 0);
    cr_assert_eq(wait_exit(spawn("--once", "a")), 0, "%s", log_of("a"));
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(lock, sizeof lock, "%s/embed.lock", data);
    cr_assert_eq(ctx_flock_take(lock, 0, NULL, &fd), 0);
    sleep(3); /* the embed job is due again */
    cr_assert_eq(wait_exit(spawn("--once", "b")), 0, "%s", log_of("b"));
    st = open_store();
    cr_assert_geq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE kind = 'embed'"
                               " AND status = 'busy'"), 1, "%s", log_of("b"));
    store_close(st);
    /* the command waits for the holder */
    e = spawn_cli("embed", "e");
    usleep(500 * 1000);
    cr_assert_eq(waitpid(e, &status, WNOHANG), 0, "`ctxgate embed` did not wait");
    ctx_flock_drop(fd);
    cr_assert_eq(wait_exit(e), 0, "%s", log_of("e"));

    /* two agents, syncing and embedding every second, for a few seconds */
    {
        char cfg[2048];
        snprintf(cfg, sizeof cfg,
                 "{\"data_dir\": \"./data\", \"embeddings\": {\"provider\": \"hash\", \"dim\": 32},"
                 " \"agent\": {\"max_jobs\": 3, \"retry\": \"1s\", \"embed\": \"1s\","
                 "  \"maintain\": \"2s\"},"
                 " \"sources\": [{\"name\": \"slow\", \"type\": \"exec\","
                 "  \"command\": [\"python3\", \"slow.py\"], \"config\": {\"sleep\": 0.2},"
                 "  \"schedule\": {\"sync\": \"1s\", \"permissions\": \"\", \"full\": \"\"}}]}");
        tu_write(dir, "ctxgate.json", cfg);
    }
    a = spawn("", "a2");
    b = spawn("", "b2");
    sleep(8);
    kill(a, SIGTERM);
    kill(b, SIGTERM);
    cr_assert_eq(wait_exit(a), 0, "%s", log_of("a2"));
    cr_assert_eq(wait_exit(b), 0, "%s", log_of("b2"));
    /* the last word: what the agents left, brought up to the store */
    cr_assert_eq(wait_exit(spawn_cli("embed", "e2")), 0, "%s", log_of("e2"));
    st = open_store();
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE kind IN"
                              " ('embed', 'maintain') AND status NOT IN ('ok', 'busy')"), 0);
    cr_assert_gt(tu_count(st, "SELECT count(*) FROM agent_jobs WHERE kind = 'embed'"
                              " AND status = 'ok'"), 2);
    cr_assert_eq(tu_count(st, "SELECT count(*) FROM embed_queue"), 0);
    cr_assert_eq(store_embed_models(st, &active, &target, &err), 0);
    cr_assert_eq(vindex_files(data, active, &fi, &err), 0);
    cr_assert(fi.main_ok);
    cr_assert_eq(fi.other, 0, "%zu deltas off the chain", fi.other);
    cr_assert_eq(fi.seq, tu_count(st, "SELECT max(seq) FROM vectors"));
    {
        vindex *vi;
        vindex_info info;
        char path[PATH_MAX + 64];
        int how;
        vindex_path(data, active, path, sizeof path);
        cr_assert_eq(vindex_open(st, path, active, &vi, &how, &err), 0, "%s", err.text);
        cr_assert_eq(how, VINDEX_LOADED);
        vindex_get_info(vi, &info);
        cr_assert_eq((int64_t)(info.n - info.dead), tu_count(st, "SELECT count(*) FROM vectors"));
        vindex_free(vi);
    }
    store_close(st);
}
