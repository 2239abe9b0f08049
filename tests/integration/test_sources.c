/*
 * test_sources.c - no source can widen what another source grants. Each
 * principal fact (a user declared, a group's members, an account mapped)
 * counts only for the documents of the source that stated it and of the
 * sources that trust it ("directory": true, "principals_from"). Tested on
 * the reproduction (the demo company plus a files source that maps
 * alice to mallory and puts mallory in group:hr), on trust configured both
 * ways, and by an oracle over random sources whose facts conflict on
 * purpose, checked against a model computed here in C.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "indexer/ingest.h"
#include "retrieval/acl.h"
#include "retrieval/explain.h"
#include "retrieval/search.h"
#include "tests/lib/testutil.h"

static char *dir;
static ctx_store *st;

static void setup(void)
{
    dir = tu_tmpdir("sources");
    st = tu_store(dir);
}

static void teardown(void)
{
    store_close(st);
    tu_rmrf(dir);
    free(dir);
}

TestSuite(sources, .init = setup, .fini = teardown);

/*
 * sync_config - parse {"sources": [sources_json]}, record its trust in the
 * store as every command does, and sync each source once.
 */
static void sync_config(const char *sources_json)
{
    char text[16384];
    json_error_t jerr;
    json_t *root;
    ctx_config cfg;
    ctx_error err;

    snprintf(text, sizeof text, "{\"sources\": [%s]}", sources_json);
    root = json_loads(text, 0, &jerr);
    cr_assert(root, "bad test JSON: %s", jerr.text);
    memset(&cfg, 0, sizeof cfg);
    cr_assert_eq(ctx_config_parse(root, ".", &cfg, &err), 0, "%s", err.text);
    json_decref(root);
    cr_assert_eq(store_trust_apply(st, &cfg, &err), 0, "%s", err.text);
    for (size_t i = 0; i < cfg.nsources; i++) {
        sync_opts so;
        store_run_stats stats;
        memset(&so, 0, sizeof so);
        so.chunk_max_tokens = cfg.chunk_max_tokens;
        so.chunk_overlap_tokens = cfg.chunk_overlap_tokens;
        cr_assert_eq(sync_source(st, &cfg.sources[i], &so, &stats, &err), 0, "%s: %s",
                     cfg.sources[i].name, err.text);
    }
    ctx_config_free(&cfg);
}

static const char evil_principals[] =
    "{\"users\": [{\"id\": \"user:alice@northwind.test\","
    "              \"maps_to\": \"user:mallory@evil.test\"},"
    "             {\"id\": \"user:mallory@evil.test\"}],"
    " \"groups\": [{\"id\": \"group:hr\", \"members\": [\"user:mallory@evil.test\"]}]}";

/* The reproduction, as a user would set it up with two sources. */
Test(sources, a_second_source_cannot_map_or_group_its_way_into_the_first)
{
    char *evil = tu_tmpdir("evil"), json[8192];

    tu_write(evil, "_principals.json", evil_principals);
    tu_write(evil, "hr/notes.md", "---\ntitle: notes\nallow: [\"group:hr\"]\n---\nEvil notes on salary bands.\n");
    snprintf(json, sizeof json,
             "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"examples/demo\"},"
             "{\"name\": \"files\", \"type\": \"files\", \"path\": \"%s\"}", evil);
    sync_config(json);

    cr_assert(tu_sees(st, "alice@northwind.test", "salary bands", "Salary bands 2026"),
              "alice (hr-leads, inside northwind's hr) reads the bands");
    cr_assert_not(tu_sees(st, "mallory@evil.test", "salary bands", "Salary bands 2026"),
                  "files' group:hr and its mapping of alice give mallory nothing of northwind");
    cr_assert(tu_sees(st, "mallory@evil.test", "salary bands", "notes"),
              "files' own group:hr governs files' own document");
    cr_assert_not(tu_sees(st, "alice@northwind.test", "salary bands", "notes"),
                  "northwind's group:hr is not files' group:hr");
    {
        /* Nor does everyone: files declared mallory, northwind never did. */
        char *t = tu_search_titles(st, "mallory@evil.test", "vacation policy holiday");
        cr_assert_str_eq(t, "", "mallory saw %s", t);
        free(t);
    }
    tu_rmrf(evil);
    free(evil);
}

/* run - a ctxgate command line's exit status; its stdout+stderr into out. */
static int run(const char *args, char *out, size_t n)
{
    char cmd[8192];
    size_t len = 0;
    FILE *p;

    snprintf(cmd, sizeof cmd, "%s/ctxgate %s 2>&1", tu_build_dir(), args);
    cr_assert((p = popen(cmd, "r")));
    while (len + 1 < n && fgets(out + len, (int)(n - len), p))
        len += strlen(out + len);
    out[len] = 0;
    return WEXITSTATUS(pclose(p));
}

/* `ctxgate explain`: the verdict, the path, and which source said each edge. */
Test(sources, explain_names_the_path_and_who_said_each_edge)
{
    char *evil = tu_tmpdir("evil"), text[8192], args[8192], out[16384];
    char demo[PATH_MAX];

    cr_assert(realpath("examples/demo", demo));
    tu_write(evil, "_principals.json", evil_principals);
    snprintf(text, sizeof text,
             "{\"data_dir\": \"%s/data\", \"sources\": ["
             "{\"name\": \"northwind\", \"type\": \"files\", \"path\": \"%s\"},"
             "{\"name\": \"files\", \"type\": \"files\", \"path\": \"%s\"}],"
             " \"agents\": [{\"name\": \"helpdesk\", \"sources\": \"*\","
             " \"labels\": [\"internal\"]}]}", dir, demo, evil);
    tu_write(dir, "ctxgate.json", text);
    snprintf(args, sizeof args, "--config %s/ctxgate.json sync", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);

    snprintf(args, sizeof args, "--config %s/ctxgate.json explain --as alice@northwind.test"
             " northwind:hr/salary-bands-2026.md", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "READABLE for user:alice@northwind.test"), "%s", out);
    cr_assert(strstr(out, "allowed through group:hr"), "%s", out);
    cr_assert(strstr(out, "member: group:hr-leads (said by northwind)"), "%s", out);

    snprintf(args, sizeof args, "--config %s/ctxgate.json explain --as alice@northwind.test"
             " --agent helpdesk northwind:hr/salary-bands-2026.md", dir);
    cr_assert_eq(run(args, out, sizeof out), 3, "%s", out);
    cr_assert(strstr(out, "agent helpdesk may not read label confidential"), "%s", out);

    snprintf(args, sizeof args, "--config %s/ctxgate.json explain --json --as"
             " mallory@evil.test northwind:hr/salary-bands-2026.md", dir);
    cr_assert_eq(run(args, out, sizeof out), 3, "%s", out);
    {
        json_t *a = json_loads(out, 0, NULL), *v;
        size_t i;
        cr_assert(a, "%s", out);
        cr_assert(json_is_false(json_object_get(a, "readable")));
        json_array_foreach(json_object_get(a, "principals"), i, v)
            cr_assert_str_neq(json_string_value(json_object_get(v, "principal")), "group:hr",
                              "files' group:hr is no path into northwind");
        cr_assert_eq(json_array_size(json_object_get(a, "trusted_sources")), 1);
        json_decref(a);
    }
    snprintf(args, sizeof args, "--config %s/ctxgate.json explain --as alice@northwind.test"
             " northwind:no/such.md", dir);
    cr_assert_eq(run(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "no document \"northwind:no/such.md\""), "%s", out);
    tu_rmrf(evil);
    free(evil);
}

/* A source whose ACLs name principals nobody declared says so, by name. */
Test(sources, sync_and_status_warn_about_undeclared_principals)
{
    char *f = tu_tmpdir("undeclared"), text[4096], args[4096], out[16384];
    json_t *w;
    ctx_error err;

    tu_write(f, "a.md", "---\ntitle: a\nallow: [group:ghosts, user:nobody@x.test]\n---\nhi\n");
    snprintf(text, sizeof text, "{\"data_dir\": \"%s/data\", \"sources\": [{\"name\": \"f\","
             " \"type\": \"files\", \"path\": \"%s\"}]}", dir, f);
    tu_write(dir, "ctxgate.json", text);
    snprintf(args, sizeof args, "--config %s/ctxgate.json sync", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "warning: f: its ACLs name 2 principals that no source governing it"
                          " declared (group:ghosts, user:nobody@x.test)"), "%s", out);
    cr_assert(strstr(out, "warning: f: 1 documents, and no known user can read any"), "%s",
              out);
    snprintf(args, sizeof args, "--config %s/ctxgate.json status --json", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "no known user can read any"), "%s", out);

    /* Declared: the group and its member; the user named directly stays unknown. */
    tu_write(f, "_principals.json", "{\"users\": [{\"id\": \"user:ann@x.test\"}],"
             " \"groups\": [{\"id\": \"group:ghosts\", \"members\": [\"user:ann@x.test\"]}]}");
    snprintf(args, sizeof args, "--config %s/ctxgate.json sync", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "its ACLs name 1 principal that no source governing it declared"
                          " (user:nobody@x.test)"), "%s", out);
    cr_assert_null(strstr(out, "no known user can read"), "%s", out);
    store_close(st);
    {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/data", dir);
        st = tu_store(path);
    }
    w = explain_source_warnings(store_db(st), "f", &err);
    cr_assert(w);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(w, "undeclared"), "count")),
                 1);
    cr_assert(json_is_false(json_object_get(w, "readable_by_nobody")));
    json_decref(w);
    cr_assert_null(explain_source_warnings(store_db(st), "nosuch", &err));
    tu_rmrf(f);
    free(f);
}

/* Trust configured: a directory governs all; principals_from one consumer. */
Test(sources, directories_and_principals_from_extend_a_sources_facts)
{
    char *idp = tu_tmpdir("idp"), *wiki = tu_tmpdir("wiki"), *crm = tu_tmpdir("crm");
    char json[8192];

    tu_write(idp, "_principals.json",
             "{\"users\": [{\"id\": \"user:ann@t.test\"}, {\"id\": \"user:ben@t.test\"}],"
             " \"groups\": [{\"id\": \"group:staff\", \"members\": [\"user:ann@t.test\"]}]}");
    tu_write(wiki, "_principals.json",
             "{\"groups\": [{\"id\": \"group:editors\", \"members\": [\"user:ben@t.test\"]}]}");
    tu_write(wiki, "page.md", "---\ntitle: page\nallow: [\"group:staff\"]\n---\nThe handbook page.\n");
    tu_write(crm, "deal.md", "---\ntitle: deal\nallow: [\"group:editors\"]\n---\nThe handbook deal.\n");
    tu_write(crm, "all.md", "---\ntitle: all\nallow: [\"everyone\"]\n---\nThe handbook for all.\n");

    /* No trust: neither wiki nor crm knows anybody. */
    snprintf(json, sizeof json,
             "{\"name\": \"idp\", \"type\": \"files\", \"path\": \"%s\"},"
             "{\"name\": \"wiki\", \"type\": \"files\", \"path\": \"%s\"},"
             "{\"name\": \"crm\", \"type\": \"files\", \"path\": \"%s\"}", idp, wiki, crm);
    sync_config(json);
    cr_assert_not(tu_sees(st, "ann@t.test", "handbook", "page"));
    cr_assert_not(tu_sees(st, "ben@t.test", "handbook", "deal"));
    cr_assert_not(tu_sees(st, "ann@t.test", "handbook", "all"),
                  "crm declared nobody: its everyone is nobody");

    /* idp a directory, crm takes wiki's facts too. */
    snprintf(json, sizeof json,
             "{\"name\": \"idp\", \"type\": \"files\", \"path\": \"%s\", \"directory\": true},"
             "{\"name\": \"wiki\", \"type\": \"files\", \"path\": \"%s\"},"
             "{\"name\": \"crm\", \"type\": \"files\", \"path\": \"%s\","
             " \"principals_from\": [\"wiki\"]}", idp, wiki, crm);
    sync_config(json);
    cr_assert(tu_sees(st, "ann@t.test", "handbook", "page"), "staff comes from the directory");
    cr_assert_not(tu_sees(st, "ben@t.test", "handbook", "page"));
    cr_assert(tu_sees(st, "ben@t.test", "handbook", "deal"), "crm trusts wiki's editors");
    cr_assert(tu_sees(st, "ann@t.test", "handbook", "all"), "the directory declared ann");
    cr_assert_not(tu_sees(st, "ann@t.test", "handbook", "deal"));

    /* Taken back: the trust goes with the config. */
    snprintf(json, sizeof json,
             "{\"name\": \"idp\", \"type\": \"files\", \"path\": \"%s\"},"
             "{\"name\": \"wiki\", \"type\": \"files\", \"path\": \"%s\"},"
             "{\"name\": \"crm\", \"type\": \"files\", \"path\": \"%s\"}", idp, wiki, crm);
    sync_config(json);
    cr_assert_not(tu_sees(st, "ann@t.test", "handbook", "page"));
    cr_assert_not(tu_sees(st, "ben@t.test", "handbook", "deal"));
    tu_rmrf(idp);
    tu_rmrf(wiki);
    tu_rmrf(crm);
    free(idp);
    free(wiki);
    free(crm);
}

Test(sources, principals_from_must_name_another_configured_source)
{
    static const char *const bad[] = {
        "{\"sources\": [{\"name\": \"a\", \"type\": \"files\", \"path\": \".\","
        " \"principals_from\": [\"okta\"]}]}",
        "{\"sources\": [{\"name\": \"a\", \"type\": \"files\", \"path\": \".\","
        " \"principals_from\": [\"a\"]}]}",
        "{\"sources\": [{\"name\": \"a\", \"type\": \"files\", \"path\": \".\","
        " \"principals_from\": \"b\"}]}",
        "{\"sources\": [{\"name\": \"a\", \"type\": \"files\", \"path\": \".\","
        " \"directory\": \"yes\"}]}",
    };
    static const char *const says[] = {"principals_from[0]: \"okta\" is not a configured",
                                       "is this source itself", "principals_from: expected",
                                       "directory: expected true or false"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *root = json_loads(bad[i], 0, NULL);
        ctx_config cfg;
        ctx_error err;
        memset(&cfg, 0, sizeof cfg);
        cr_assert_eq(ctx_config_parse(root, ".", &cfg, &err), CTX_ECONFIG, "%s", bad[i]);
        cr_assert(strstr(err.text, says[i]), "%s", err.text);
        ctx_config_free(&cfg);
        json_decref(root);
    }
}

/* ---- the oracle ----------------------------------------------------------- */

#define NSRC 4
#define NUSER 6
#define NACCT 4
#define NGROUP 5
#define NDOC 48
/* Principal numbering of the model: users, accounts, groups, everyone. */
#define P_USER(i) (i)
#define P_ACCT(i) (NUSER + (i))
#define P_GROUP(i) (NUSER + NACCT + (i))
#define P_EVERYONE (NUSER + NACCT + NGROUP)
#define NPRIN (P_EVERYONE + 1)

typedef struct model {
    int directory[NSRC];
    int from[NSRC][NSRC];          /* from[s][t]: s takes t's facts */
    int declares[NSRC][NUSER];     /* s declared user u */
    int maps[NSRC][NACCT];         /* s maps account a to user maps-1 (0: not) */
    int member[NSRC][NGROUP][NPRIN]; /* s says principal p is in group g */
    int doc_src[NDOC];
    int allow[NDOC][NPRIN], deny[NDOC][NPRIN];
} model;

static void name_of(int p, char *buf, size_t n)
{
    if (p < NUSER)
        snprintf(buf, n, "user:u%d@t.test", p);
    else if (p < NUSER + NACCT)
        snprintf(buf, n, "user:acct%d@other.test", p - NUSER);
    else if (p < P_EVERYONE)
        snprintf(buf, n, "group:g%d", p - NUSER - NACCT);
    else
        snprintf(buf, n, "everyone");
}

static int trusts(const model *m, int s, int t)
{
    return s == t || m->directory[t] || m->from[s][t];
}

/* may_read - the model's answer: may user u read document d? */
static int may_read(const model *m, int u, int d)
{
    int s = m->doc_src[d], have[NPRIN] = {0}, known = 0, grew;

    for (int t = 0; t < NSRC; t++) {
        known |= m->declares[t][u];
        for (int a = 0; a < NACCT; a++)
            known |= m->maps[t][a] == u + 1;
    }
    if (!known)
        return 0; /* declared by no source at all */
    have[P_USER(u)] = 1;
    for (int t = 0; t < NSRC; t++) {
        if (!trusts(m, s, t))
            continue;
        if (m->declares[t][u])
            have[P_EVERYONE] = 1;
        for (int a = 0; a < NACCT; a++)
            if (m->maps[t][a] == u + 1)
                have[P_ACCT(a)] = have[P_EVERYONE] = 1;
    }
    do {
        grew = 0;
        for (int t = 0; t < NSRC; t++)
            for (int g = 0; g < NGROUP && trusts(m, s, t); g++)
                for (int p = 0; p < NPRIN; p++)
                    if (m->member[t][g][p] && have[p] && !have[P_GROUP(g)])
                        have[P_GROUP(g)] = grew = 1;
    } while (grew);
    for (int p = 0; p < NPRIN; p++)
        if (have[p] && m->deny[d][p])
            return 0;
    for (int p = 0; p < NPRIN; p++)
        if (have[p] && m->allow[d][p])
            return 1;
    return 0;
}

static void random_model(model *m)
{
    memset(m, 0, sizeof *m);
    for (int s = 0; s < NSRC; s++) {
        m->directory[s] = rand() % 5 == 0;
        for (int t = 0; t < NSRC; t++)
            m->from[s][t] = t != s && rand() % 4 == 0;
        for (int u = 0; u < NUSER; u++)
            m->declares[s][u] = rand() % 3 == 0;
        for (int a = 0; a < NACCT; a++)
            m->maps[s][a] = rand() % 3 == 0 ? 1 + rand() % NUSER : 0;
        /* The same group names in every source, members chosen apart. */
        for (int g = 0; g < NGROUP; g++)
            for (int p = 0; p < P_EVERYONE; p++)
                m->member[s][g][p] = p != P_GROUP(g) && rand() % 6 == 0;
    }
    for (int d = 0; d < NDOC; d++) {
        m->doc_src[d] = rand() % NSRC;
        for (int p = 0; p < NPRIN; p++) {
            m->allow[d][p] = rand() % (p == P_EVERYONE ? 8 : 5) == 0;
            m->deny[d][p] = rand() % 14 == 0;
        }
    }
}

/* The model's config: its sources and their trust (load fills it). */
static char srcname[NSRC][8];
static char *from[NSRC][NSRC];
static ctx_source_cfg scfg[NSRC];
static ctx_config cfg;

/* load - the model into the store, as sources would emit it. */
static void load(const model *m)
{
    char names[NPRIN][64];
    const char *allow[NPRIN], *deny[NPRIN], *members[NPRIN];
    int64_t sid[NSRC];
    ctx_error err;

    for (int p = 0; p < NPRIN; p++)
        name_of(p, names[p], sizeof names[p]);
    memset(&cfg, 0, sizeof cfg);
    memset(scfg, 0, sizeof scfg);
    for (int s = 0; s < NSRC; s++) {
        snprintf(srcname[s], sizeof srcname[s], "s%d", s);
        cr_assert_eq(store_source(st, srcname[s], "files", &sid[s], &err), 0);
        scfg[s].name = srcname[s];
        scfg[s].directory = m->directory[s];
        scfg[s].principals_from.v = from[s];
        for (int t = 0; t < NSRC; t++)
            if (m->from[s][t])
                from[s][scfg[s].principals_from.n++] = srcname[t];
    }
    cfg.sources = scfg;
    cfg.nsources = NSRC;
    cr_assert_eq(store_trust_apply(st, &cfg, &err), 0, "%s", err.text);

    cr_assert_eq(store_begin(st, &err), 0);
    for (int s = 0; s < NSRC; s++) {
        for (int u = 0; u < NUSER; u++) {
            ctx_principal p = {.kind = CTX_PRINCIPAL_USER, .id = names[P_USER(u)]};
            if (m->declares[s][u])
                cr_assert_eq(store_principal_put(st, sid[s], &p, &err), 0, "%s", err.text);
        }
        for (int a = 0; a < NACCT; a++) {
            ctx_principal p = {.kind = CTX_PRINCIPAL_USER, .id = names[P_ACCT(a)]};
            if (!m->maps[s][a])
                continue;
            p.maps_to = names[P_USER(m->maps[s][a] - 1)];
            cr_assert_eq(store_principal_put(st, sid[s], &p, &err), 0, "%s", err.text);
        }
        for (int g = 0; g < NGROUP; g++) {
            ctx_principal p = {.kind = CTX_PRINCIPAL_GROUP, .id = names[P_GROUP(g)],
                               .members = members};
            for (int q = 0; q < NPRIN; q++)
                if (m->member[s][g][q])
                    members[p.n_members++] = names[q];
            cr_assert_eq(store_principal_put(st, sid[s], &p, &err), 0, "%s", err.text);
        }
    }
    for (int d = 0; d < NDOC; d++) {
        ctx_acl acl = {allow, 0, deny, 0, NULL, 0};
        char id[16], title[16];
        const char *body = "the shared ledger of the quarter";
        ctx_record r = {"docs", id, title, NULL, body, strlen(body), NULL, 0, &acl};
        ingest_ctx ic;
        store_run_stats stats;
        snprintf(id, sizeof id, "d%d", d);
        snprintf(title, sizeof title, "doc%02d", d);
        for (int p = 0; p < NPRIN; p++) {
            if (m->allow[d][p])
                allow[acl.n_allow++] = names[p];
            if (m->deny[d][p])
                deny[acl.n_deny++] = names[p];
        }
        tu_ingest_init(&ic, st, sid[m->doc_src[d]], &stats);
        cr_assert_eq(ingest_record(&ic, &r, &err), 0, "%s", err.text);
    }
    cr_assert_eq(store_commit(st, &err), 0, "%s", err.text);
}

/*
 * check_explain - `explain` agrees with the model about user and document
 * d, and a readable verdict names a principal of the path that the allow
 * list holds.
 */
static void check_explain(const model *m, const char *user, int d, int want)
{
    char ref[32];
    json_t *a, *ma;
    ctx_error err;

    /* Both forms of a reference: the internal id, the source's own id. */
    if (d % 2)
        snprintf(ref, sizeof ref, "%d", d + 1);
    else
        snprintf(ref, sizeof ref, "s%d:d%d", m->doc_src[d], d);
    cr_assert_eq(explain_access(store_db(st), &cfg, user, NULL, ref, ctx_now_ms(), &a, &err), 0,
                 "%s", err.text);
    cr_assert_eq(json_is_true(json_object_get(a, "readable")), want, "explain %s doc %d: %s",
                 user, d, json_dumps(a, 0));
    ma = json_object_get(json_object_get(a, "document"), "matched_allow");
    if (want)
        cr_assert_gt(json_array_size(ma), 0);
    json_decref(a);
}

/* Random sources with conflicting facts: every user's answer is the model's. */
Test(sources, oracle_conflicting_facts_across_sources, .timeout = 120)
{
    int seen[2] = {0, 0};

    srand(12);
    for (int round = 0; round < 12; round++) {
        model m;
        random_model(&m);
        if (round) {
            store_close(st);
            tu_rmrf(dir);
            free(dir);
            dir = tu_tmpdir("sources");
            st = tu_store(dir);
        }
        load(&m);
        for (int u = 0; u < NUSER + 1; u++) {
            char user[64];
            name_of(u < NUSER ? P_USER(u) : P_ACCT(0), user, sizeof user);
            for (int plan = 0; plan < 2; plan++) {
                search_opts so = {0};
                search_result r;
                ctx_error err;
                int got[NDOC] = {0};
                so.k = NDOC + 10;
                so.match_principals_max = plan ? 1 : 100;
                cr_assert_eq(search_lexical(store_db(st), user, "ledger", &so, &r, &err), 0,
                             "%s", err.text);
                for (size_t i = 0; i < r.n; i++)
                    got[atoi(r.hits[i].title + 3)] = 1;
                search_result_free(&r);
                for (int d = 0; d < NDOC; d++) {
                    /* An account is no one who logs in: it reads nothing itself. */
                    int want = u < NUSER ? may_read(&m, u, d) : 0;
                    cr_assert_eq(got[d], want, "round %d, %s, doc%02d of s%d: got %d, want %d",
                                 round, user, d, m.doc_src[d], got[d], want);
                    seen[want]++;
                    if (plan == 0 && round < 3)
                        check_explain(&m, user, d, want);
                }
            }
        }
    }
    cr_assert(seen[0] > 500 && seen[1] > 500, "a one-sided oracle: %d hidden, %d read",
              seen[0], seen[1]);
}
