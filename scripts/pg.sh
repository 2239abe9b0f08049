#!/bin/sh
# pg.sh - a throwaway PostgreSQL 15 for the integration tests.
#
#   eval "$(sh scripts/pg.sh start DIR)"   initdb in DIR, start, print exports
#   sh scripts/pg.sh stop DIR              stop it and remove DIR
#
# The server listens on a unix socket in DIR and on 127.0.0.1 (a free port).
# The superuser "postgres" is trusted; the test role "ctxtest" (password
# "ctxtest-pw", may create databases and replication slots) must authenticate
# with SCRAM, so the tests exercise real password authentication. As root, the server runs as
# the "postgres" account through runuser; otherwise as the current user.
# Only the export lines go to stdout; progress and errors go to stderr.
set -eu

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROLE=ctxtest
ROLE_PW=ctxtest-pw
DB=ctxtest
MARK=.ctxgate-pg    # start leaves it in DIR; stop removes only such a DIR
# Logical decoding for the search replicas (docs/cluster.md): one slot each.
LOGICAL="-c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=32"

die() { echo "pg.sh: $*" >&2; exit 1; }

usage() { die "usage: sh scripts/pg.sh start|stop DIR"; }

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac

if [ "$(id -u)" -eq 0 ]; then
    RUN="runuser -u postgres --"
else
    RUN=""
fi

# A port nothing listens on (the server may still lose a race; start retries).
pick_port() {
    while :; do
        p=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 + 20000 ))
        if command -v ss >/dev/null 2>&1; then
            ss -ltnH "sport = :$p" 2>/dev/null | grep -q . && continue
        fi
        echo "$p"
        return
    done
}

start() {
    [ -x "$PGBIN/initdb" ] || die "$PGBIN/initdb not found; install the postgresql package (make deps)"
    [ -e "$dir/$MARK" ] && die "$dir already holds a test server; stop it first"
    # A unix socket path must fit in 107 bytes: DIR/.s.PGSQL.NNNNN
    [ ${#dir} -le 90 ] || die "$dir is too long for a unix socket path; use a shorter DIR"
    mkdir -p "$dir"
    : > "$dir/$MARK"
    if [ -n "$RUN" ]; then
        chown postgres "$dir" "$dir/$MARK"
        $RUN test -w "$dir" || die "user postgres cannot write $dir; use a DIR under /tmp"
    fi

    $RUN "$PGBIN/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=trust >"$dir/initdb.log" 2>&1 ||
        die "initdb failed; see $dir/initdb.log"
    # First match wins: the superuser is trusted, everyone else needs SCRAM.
    $RUN sh -c "cat > '$dir/data/pg_hba.conf'" <<EOF
local all postgres trust
local all all scram-sha-256
local replication postgres trust
local replication all scram-sha-256
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
host replication postgres 127.0.0.1/32 trust
host replication all 127.0.0.1/32 scram-sha-256
EOF

    tries=0
    while :; do
        port=$(pick_port)
        if $RUN "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir' -c fsync=off -c password_encryption=scram-sha-256 $LOGICAL" \
            start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        [ $tries -lt 5 ] || die "the server did not start; see $dir/server.log"
    done

    psql() { $RUN "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"; }
    psql -d postgres -c "CREATE ROLE $ROLE LOGIN CREATEDB REPLICATION PASSWORD '$ROLE_PW'" >/dev/null ||
        die "cannot create role $ROLE"
    psql -d postgres -c "CREATE DATABASE $DB OWNER $ROLE" >/dev/null ||
        die "cannot create database $DB"

    echo "export PGHOST='$dir' PGPORT='$port'"
    echo "export CTX_TEST_PG='host=$dir port=$port dbname=$DB user=$ROLE'"
    echo "export CTX_TEST_PG_TCP='host=127.0.0.1 port=$port dbname=$DB user=$ROLE'"
    echo "export CTX_TEST_PGPASSWORD='$ROLE_PW'"
}

stop() {
    [ -d "$dir" ] || exit 0
    [ -e "$dir/$MARK" ] || die "$dir was not made by pg.sh start; not removing it"
    if [ -f "$dir/data/postmaster.pid" ]; then
        $RUN "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
            echo "pg.sh: pg_ctl stop failed; removing $dir anyway" >&2
    fi
    rm -rf "$dir"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
