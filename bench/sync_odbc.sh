#!/bin/sh
# bench/sync_odbc.sh - the odbc connector through psqlODBC beside the
# postgres connector (libpq), on the same table of one throwaway PostgreSQL.
#
# Generates ROWS (200000) of sync_pg.sh's rows (~1 KB of English-like text,
# an ACL of two groups out of 50), then RUNS (2) times, alternately, a full
# `ctxgate sync` of the table into an empty store with each connector: the
# same stream, the same chunking (the host's), a checkpoint every 2000 rows,
# both over the server's unix socket. psqlODBC is Debian's odbc-postgresql,
# registered for this run only (an odbcinst.ini in the work dir) under
# unixODBC; the connector turns on its UseDeclareFetch, FETCH (unset: the
# driver's 100) sets its rows per round trip. Prints one markdown row per
# run (seconds, rows/s, CPU seconds, peak RSS from /usr/bin/time), then the
# best rows/s of each and their ratio (and the ratio of their least CPU
# seconds, steadier on a shared machine), and checks that both stores hold
# the same documents and chunks. Nothing about speed is asserted.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
ROWS=${ROWS:-200000}
RUNS=${RUNS:-2}
DRIVER=${DRIVER:-/usr/lib/$(gcc -print-multiarch)/odbc/psqlodbcw.so}
[ -f "$DRIVER" ] || { echo "sync_odbc: no $DRIVER; install odbc-postgresql (make deps)" >&2
                      exit 2; }
. bench/lib.sh
pg_bench_work odbcbench
docs_tables
docs_fill "$ROWS"
mb=$($PSQL -At -c "SELECT round(sum(octet_length(body)) / 1048576.0, 1) FROM docs")

printf '[benchPostgreSQL]\nDriver=%s\n' "$DRIVER" >"$work/odbcinst.ini"
: >"$work/odbc.ini"
export ODBCSYSINI="$work" ODBCINSTINI=odbcinst.ini ODBCINI="$work/odbc.ini"

# config NAME TYPE KEYS - $work/NAME.json: a source of TYPE with KEYS (its
# connection and checkpoint keys), syncing the docs table into $work/NAME.
config() {
    cat >"$work/$1.json" <<EOF
{"data_dir": "$1",
 "sources": [{"name": "bench", "type": "$2", $3,
   "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}]}
EOF
}
config libpq postgres "\"conninfo\": \"host=$pgdir port=$PGPORT dbname=ctxtest user=postgres\",
   \"batch_rows\": 2000"
cs="Driver=benchPostgreSQL;Servername=$pgdir;Port=$PGPORT;Database=ctxtest;UID=postgres"
config odbc odbc "\"connection_string\": \"$cs${FETCH:+;Fetch=$FETCH}\", \"state_every\": 2000"

echo "| connector | run | rows | body MB | full sync s | rows/s | CPU s | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq "$RUNS"); do
    for c in libpq odbc; do
        rm -rf "${work:?}/$c"
        set -- $(measure "$BIN" --config "$work/$c.json" sync)
        echo "$c $r $1 $2 $3" >>"$work/runs"
        awk -v c="$c" -v r="$r" -v n="$ROWS" -v mb="$mb" -v s="$1" -v kb="$2" -v cpu="$3" \
            'BEGIN { printf "| %s | %d | %d | %.0f | %.1f | %.0f | %.1f | %.0f |\n",
                     c == "odbc" ? "odbc (psqlODBC)" : "postgres (libpq)", r, n, mb, s,
                     n / s, cpu, kb / 1024 }'
    done
done

# Both stores must hold the same documents (their content hashes), cut
# into the same chunks.
for c in libpq odbc; do
    { sqlite3 "$work/$c/ctxgate.db" "SELECT count(*), sum(ntokens) FROM chunks"
      sqlite3 "$work/$c/ctxgate.db" "SELECT ext_id, hash FROM documents ORDER BY ext_id" |
          md5sum; } >"$work/$c.sum"
done
cmp -s "$work/libpq.sum" "$work/odbc.sum" ||
    { echo "sync_odbc: the stores differ: libpq $(cat "$work/libpq.sum")," \
           "odbc $(cat "$work/odbc.sum")" >&2; exit 1; }

echo
awk -v n="$ROWS" -v chunks="$(head -1 "$work/libpq.sum" | cut -d'|' -f1)" '
    {
        if (!($1 in best) || $3 < best[$1]) best[$1] = $3
        if (!($1 in cpu) || $5 < cpu[$1]) cpu[$1] = $5
    }
    END {
        printf "Best of each: postgres (libpq) %.0f rows/s, odbc (psqlODBC) %.0f rows/s;",
               n / best["libpq"], n / best["odbc"]
        printf " odbc/libpq %.2f (by ctxgate CPU seconds: %.2f).", best["libpq"] / best["odbc"],
               cpu["libpq"] / cpu["odbc"]
        printf " Both stores: the same %d chunks.\n", chunks
    }' "$work/runs"
