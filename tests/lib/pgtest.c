/*
 * pgtest.c - connect to the test PostgreSQL and run SQL (see pgtest.h).
 */
#include "pgtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const char *pgtest_conninfo(void)
{
    const char *s = getenv("CTX_TEST_PG");
    return s && *s ? s : NULL;
}

const char *pgtest_password(void)
{
    return getenv("CTX_TEST_PGPASSWORD");
}

PGconn *pgtest_connect(const char *extra, char *why, size_t whylen)
{
    const char *kw[4] = {"dbname", "password", "application_name", NULL};
    const char *val[4];
    char conninfo[1024];
    PGconn *db;
    int n;

    if (!pgtest_conninfo()) {
        snprintf(why, whylen, "%s", PGTEST_MISSING);
        return NULL;
    }
    n = snprintf(conninfo, sizeof conninfo, "%s %s", pgtest_conninfo(), extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof conninfo) {
        snprintf(why, whylen, "CTX_TEST_PG is too long");
        return NULL;
    }
    val[0] = conninfo;
    val[1] = pgtest_password();
    val[2] = "ctxgate-test-helper";
    val[3] = NULL;
    db = PQconnectdbParams(kw, val, 1);
    if (PQstatus(db) != CONNECTION_OK) {
        snprintf(why, whylen, "cannot connect to CTX_TEST_PG: %s", PQerrorMessage(db));
        PQfinish(db);
        return NULL;
    }
    PQclear(PQexec(db, "SET client_min_messages TO warning"));
    return db;
}

int pgtest_exec(PGconn *db, char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    char *sql;
    int n, rc = 0;
    PGresult *res;

    va_start(ap, fmt);
    n = vasprintf(&sql, fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "%.200s: %s", sql, PQerrorMessage(db));
        rc = -1;
    }
    PQclear(res);
    free(sql);
    return rc;
}

void pgtest_name(char *buf, size_t len, const char *prefix)
{
    static int counter;
    snprintf(buf, len, "%s_%d_%d", prefix, (int)getpid(), ++counter);
}

PGconn *pgtest_db_make(PGconn *admin, const char *prefix, char *name, size_t len, char *why,
                       size_t whylen)
{
    char extra[128];

    pgtest_name(name, len, prefix);
    if (pgtest_exec(admin, why, whylen, "CREATE DATABASE %s", name))
        return NULL;
    snprintf(extra, sizeof extra, "dbname=%s", name);
    return pgtest_connect(extra, why, whylen);
}

void pgtest_db_drop(PGconn *admin, PGconn *db, const char *name)
{
    char why[512];

    PQfinish(db);
    if (!admin || !name || !*name)
        return;
    pgtest_exec(admin, why, sizeof why, "SELECT pg_drop_replication_slot(slot_name)"
                " FROM pg_replication_slots WHERE database = '%s' AND NOT active", name);
    pgtest_exec(admin, why, sizeof why, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
}

int pgtest_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

    if (fd < 0)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Bound but never listening: connections to it are refused. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}
