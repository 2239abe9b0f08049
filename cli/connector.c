/*
 * connector.c - `ctxgate connector ...` (see connector.h): a thin wrapper
 * over connectors/conformance.h that parses arguments, finds the config and
 * prints each message as one JSON line on stdout.
 */
#include "connector.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../connectors/conformance.h"
#include "../connectors/registry.h"
#include "../core/json.h"
#include "../core/util.h"

/*
 * main() moves into the config file's directory before it runs a command,
 * so that paths inside the config work; paths on the command line (--plugin,
 * --mutate, --bad-config) are the user's, relative to where the user was.
 */
static char start_dir[PATH_MAX];

__attribute__((constructor)) static void remember_start_dir(void)
{
    if (!getcwd(start_dir, sizeof start_dir))
        start_dir[0] = '\0';
}

typedef struct args {
    conform_target t;
    conform_opts o;
    const char *source, *state, *bad_config;
    const char *streams[64];
    size_t nstreams;
    int full;
    char plugin[PATH_MAX], validator[PATH_MAX], bad_path[PATH_MAX];
} args;

/* path relative to the start directory, into buf; returns buf. */
static const char *from_start(const char *path, char *buf, size_t len)
{
    if (path[0] == '/' || !start_dir[0])
        snprintf(buf, len, "%s", path);
    else
        snprintf(buf, len, "%s/%s", start_dir, path);
    return buf;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "ctxgate: connector: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: ctxgate [--config FILE] %s\n", CLI_CONNECTOR_USAGE);
    return 2;
}

static int parse_args(int argc, char **argv, args *a)
{
    static const struct option lo[] = {
        {"plugin", required_argument, NULL, 'p'}, {"exec", required_argument, NULL, 'e'},
        {"type", required_argument, NULL, 't'},   {"source", required_argument, NULL, 'S'},
        {"stream", required_argument, NULL, 's'}, {"state", required_argument, NULL, 'x'},
        {"full", no_argument, NULL, 'f'},         {"mutate", required_argument, NULL, 'm'},
        {"bad-config", required_argument, NULL, 'b'},
        {"validator", required_argument, NULL, 'v'}, {NULL, 0, NULL, 0}};
    int c, kinds = 0;

    memset(a, 0, sizeof *a);
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'p': a->t.plugin = from_start(optarg, a->plugin, sizeof a->plugin); kinds++; break;
        case 'e': a->t.exec = optarg; kinds++; break;
        case 't': a->t.type = optarg; kinds++; break;
        case 'S': a->source = optarg; break;
        case 'x': a->state = optarg; break;
        case 'f': a->full = 1; break;
        case 'm': a->o.mutate = optarg; break;
        case 'b': a->bad_config = from_start(optarg, a->bad_path, sizeof a->bad_path); break;
        case 'v': a->o.validator = from_start(optarg, a->validator, sizeof a->validator); break;
        case 's':
            if (a->nstreams == 64)
                return usage_error("--stream: at most 64");
            a->streams[a->nstreams++] = optarg;
            break;
        default:
            return 2;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (kinds > 1)
        return usage_error("give one of --plugin, --exec and --type");
    if (a->state && a->nstreams != 1)
        return usage_error("--state %s: goes with exactly one --stream", a->state);
    if (a->state) {
        json_t *st = ctx_json_loads(a->state, 0, NULL);
        int ok = json_is_object(st);
        json_decref(st);
        if (!ok)
            return usage_error("--state %s: expected the JSON object of a STATE line's"
                               " \"state\"", a->state);
    }
    a->o.mutate_dir = start_dir[0] ? start_dir : NULL;
    return 0;
}

/*
 * The connector's keys from path: the file is either those keys, or a
 * ctxgate.json whose source (--source NAME, or its only one) is taken,
 * host keys and all. New reference, or NULL with the reason printed.
 */
static json_t *load_config(const char *path, const char *source)
{
    json_error_t jerr;
    json_t *root = ctx_json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *srcs, *s, *pick = NULL;
    size_t i;

    if (!root) {
        fprintf(stderr, "ctxgate: connector: --config %s: line %d: %s\n", path, jerr.line,
                jerr.text);
        return NULL;
    }
    if (!json_is_object(root) || !(srcs = json_object_get(root, "sources"))) {
        if (source)
            fprintf(stderr, "ctxgate: connector: --source %s: %s has no \"sources\"\n", source,
                    path);
        return source ? (json_decref(root), NULL) : root;
    }
    json_array_foreach(srcs, i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (source ? name && !strcmp(name, source) : json_array_size(srcs) == 1)
            pick = json_deep_copy(s);
    }
    if (!pick)
        fprintf(stderr, "ctxgate: connector: %s: %s; name one of its sources with --source\n",
                path, source ? "no source of that name" : "more than one source");
    else
        json_object_del(pick, "name");
    json_decref(root);
    return pick;
}

static void print_msg(json_t *msg)
{
    json_dumpf(msg, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
}

static int print_cb(void *arg, json_t *msg)
{
    (void)arg;
    print_msg(msg);
    return ferror(stdout) ? CTX_EIO : 0;
}

static int run_read(registry_conn *conn, const args *a, ctx_error *err)
{
    json_t *found = NULL;
    int rc = CTX_OK;
    size_t i;

    if (!a->nstreams)
        rc = conform_discover(conn, &found, err);
    for (i = 0; !rc && i < (a->nstreams ? a->nstreams : json_array_size(found)); i++) {
        const char *stream = a->nstreams ? a->streams[i]
                                         : json_string_value(json_object_get(
                                               json_array_get(found, i), "name"));
        size_t problems = 0;
        ctx_buf why = CTX_BUF_INIT;
        rc = conform_read(conn, stream, a->state, a->full, print_cb, NULL, &problems, &why,
                          err);
        if (problems)
            fprintf(stderr, "ctxgate: connector: stream %s: %zu ill-formed messages: %s\n",
                    stream, problems, why.data);
        ctx_buf_free(&why);
    }
    json_decref(found);
    return rc;
}

/*
 * spec_only - the SPEC of a connector named by --plugin or --type, without
 * a config: a setup UI asks what a connector takes before any config
 * exists. xSpec needs no instance, so nothing is opened.
 */
static int spec_only(const args *a)
{
    registry_conn conn;
    ctx_error err;
    json_t *m;
    int rc = CTX_OK;

    memset(&conn, 0, sizeof conn);
    if (a->t.plugin) {
        rc = registry_load_plugin(a->t.plugin, &conn.vt, &conn.dl, &err);
    } else if (!(conn.vt = registry_builtin(a->t.type))) {
        ctx_buf names = CTX_BUF_INIT;
        for (const char *const *n = registry_builtin_names(); *n; n++)
            ctx_buf_printf(&names, "%s%s", names.len ? ", " : "", *n);
        rc = ctx_error_set(&err, CTX_ECONFIG, "--type %s: no such built-in connector; use one"
                           " of %s, or --plugin FILE.so", a->t.type, names.data);
        ctx_buf_free(&names);
    } else {
        rc = registry_check_abi(conn.vt, a->t.type, &err);
    }
    if (rc) {
        fprintf(stderr, "ctxgate: connector spec: %s\n", err.text);
        registry_close(&conn);
        return rc == CTX_ECONFIG ? 2 : 1;
    }
    if ((m = conform_spec_msg(&conn)))
        print_msg(m);
    else
        fprintf(stderr, "ctxgate: connector spec: the %s connector's spec is not JSON\n",
                conn.vt->name);
    json_decref(m);
    registry_close(&conn);
    fflush(stdout);
    return m ? 0 : 1;
}

int cli_connector(int argc, char **argv, const char *config_path)
{
    static const char *const subs[] = {"spec", "check", "discover", "read", "test", NULL};
    const char *sub = argc > 1 ? argv[1] : "";
    registry_conn conn;
    ctx_error err;
    json_t *config, *m, *found;
    args a;
    size_t i;
    int rc;

    for (i = 0; subs[i] && strcmp(subs[i], sub); i++)
        ;
    if (!subs[i])
        return usage_error("unknown subcommand \"%s\"", sub);
    optind = 2;
    if ((rc = parse_args(argc, argv, &a)))
        return rc;
    if (!strcmp(sub, "spec") && (a.t.plugin || a.t.type))
        return spec_only(&a);
    if (!(config = load_config(config_path, a.source)))
        return 2;
    if (a.bad_config && !(a.o.bad_config = load_config(a.bad_config, NULL))) {
        json_decref(config);
        return 2;
    }

    if (!strcmp(sub, "test")) {
        conform_report rep;
        conform_run(&a.t, config, &a.o, &rep, &err);
        json_decref(config);
        json_decref(a.o.bad_config);
        return rep.failed ? 1 : 0;
    }
    json_decref(a.o.bad_config);
    rc = conform_open(&a.t, config, &conn, NULL, &err);
    json_decref(config);
    if (rc) {
        fprintf(stderr, "ctxgate: connector: %s\n", err.text);
        return rc == CTX_ECONFIG ? 2 : 1;
    }
    if (!strcmp(sub, "spec")) {
        if ((m = conform_spec_msg(&conn)))
            print_msg(m);
        else
            rc = ctx_error_set(&err, CTX_EINVAL, "the %s connector's spec is not JSON",
                               conn.vt->name);
        json_decref(m);
    } else if (!strcmp(sub, "check")) {
        m = conform_check_msg(&conn, &rc);
        print_msg(m);
        if (rc)
            ctx_error_set(&err, rc, "%s", json_string_value(json_object_get(m, "message")));
        json_decref(m);
    } else if (!strcmp(sub, "discover")) {
        if (!(rc = conform_discover(&conn, &found, &err))) {
            json_array_foreach(found, i, m) {
                print_msg(m);
            }
        }
        json_decref(found);
    } else {
        rc = run_read(&conn, &a, &err);
    }
    registry_close(&conn);
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "ctxgate: connector %s: %s\n", sub, err.text);
        return 1;
    }
    return 0;
}
