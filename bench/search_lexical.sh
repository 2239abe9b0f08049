#!/bin/sh
# search_lexical.sh - build bench/search_lexical, start a throwaway PostgreSQL
# on a unix socket (no TCP), run the benchmark against it, stop PostgreSQL.
#
#   sh bench/search_lexical.sh                       # 200000 documents
#   BENCH_DOCS=20000 sh bench/search_lexical.sh      # quick run (~1 min)
#
# Environment (all optional):
#   BENCH_DOCS     documents (default 200000)
#   BENCH_QUERIES  timed queries per user and system (default 500)
#   BENCH_DIR      store files, PostgreSQL data and results (default
#                  /tmp/ctxgate-bench); kept between runs so an unchanged
#                  corpus is not rebuilt (BENCH_ARGS=--fresh forces it)
#   BENCH_ARGS     more options for the binary (see --help)
#   BUILD          build directory (default build/release)
#   PG_BIN         PostgreSQL binaries (default: the last /usr/lib/postgresql/*/bin)
#
# The markdown report goes to stdout and to $BENCH_DIR/search_lexical-$BENCH_DOCS.md.
set -eu
cd "$(dirname "$0")/.."

: "${BENCH_DOCS:=200000}"
: "${BENCH_QUERIES:=500}"
: "${BENCH_DIR:=/tmp/ctxgate-bench}"
: "${BENCH_ARGS:=}"
: "${BUILD:=build/release}"
if [ -z "${PG_BIN:-}" ]; then
    for d in /usr/lib/postgresql/*/bin; do PG_BIN=$d; done # the last is the newest
fi

if [ ! -x "$PG_BIN/pg_ctl" ]; then
    echo "search_lexical.sh: no PostgreSQL binaries (PG_BIN=$PG_BIN); run make deps" >&2
    exit 1
fi

# Until the PostgreSQL connector exists, the library builds without it.
cppflags=
[ -f connectors/postgres/postgres.c ] || cppflags=-DCTX_NO_POSTGRES
make -s BUILD="$BUILD" CPPFLAGS="$cppflags" "$BUILD/bench/search_lexical"

mkdir -p "$BENCH_DIR"
pgdir=$BENCH_DIR/pg
mkdir -p "$pgdir"

# PostgreSQL refuses to run as root: as root, run its tools as "postgres".
if [ "$(id -u)" = 0 ]; then
    chown postgres "$pgdir"
    as_pg() { runuser -u postgres -- "$@"; }
    pguser=postgres
else
    as_pg() { "$@"; }
    pguser=$(id -un)
fi

if [ ! -f "$pgdir/data/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$pgdir/data" -A trust -U "$pguser" >"$pgdir/initdb.log" 2>&1 || {
        cat "$pgdir/initdb.log" >&2
        exit 1
    }
fi
# A server left running by an interrupted run is stopped, not reused.
as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" status >/dev/null 2>&1 &&
    as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null

# Memory settings generous to PostgreSQL: the whole table and its indexes fit
# in shared_buffers, and JIT (which adds compile time to big scans) is off.
as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -o \
    "-k $pgdir -c listen_addresses='' -c shared_buffers=1GB -c work_mem=64MB \
     -c max_wal_size=4GB -c jit=off" start >/dev/null
trap 'as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null' EXIT INT TERM

out=$BENCH_DIR/search_lexical-$BENCH_DOCS.md
# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
"$BUILD/bench/search_lexical" --docs "$BENCH_DOCS" --queries "$BENCH_QUERIES" \
    --dir "$BENCH_DIR" --pg "host=$pgdir user=$pguser dbname=postgres" $BENCH_ARGS \
    >"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
echo "(report saved to $out)" >&2
