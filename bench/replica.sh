#!/bin/sh
# bench/replica.sh - how fast a search replica (issue 14) takes PostgreSQL's
# changes: N rows (default 200000, bench/lib.sh's docs table) synced into a
# cluster by a writer (`ctxgate sync` with a cluster section), then
#   - the replica's first copy: `ctxgate follow --once` into an empty
#     data_dir (a snapshot of the cluster's tables, chunked and indexed);
#   - a stream of changes: a tenth of the rows edited at the source and
#     synced by the writer, then `ctxgate follow --once` applying them;
# beside the embedded mode's own sync of the same rows. Prints a markdown
# table (seconds, rows/s, CPU) and checks that the replica holds every row.
# Nothing is asserted about speed.
#
#   sh bench/replica.sh            (N=200000, BUILD=build/release)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
N=${N:-200000}
. bench/lib.sh
pg_bench_work replicabench
docs_tables
docs_fill "$N"
$PSQL -c "CREATE DATABASE cluster1" >/dev/null
conn="host=$pgdir port=$PGPORT user=postgres"
src='{"name": "bench", "type": "postgres", "batch_rows": 2000,
      "conninfo": "'"$conn"' dbname=ctxtest",
      "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                   "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}'
mkdir -p "$work/embedded" "$work/writer" "$work/replica"
printf '{"data_dir": "data", "sources": [%s]}\n' "$src" >"$work/embedded/ctxgate.json"
printf '{"data_dir": "data", "cluster": {"conninfo": "%s dbname=cluster1"}, "sources": [%s]}\n' \
    "$conn" "$src" >"$work/writer/ctxgate.json"
printf '{"data_dir": "data", "cluster": {"conninfo": "%s dbname=cluster1", "replica": "r1"},
  "sources": [%s]}\n' "$conn" "$src" >"$work/replica/ctxgate.json"

timed() { # timed DIR CMD... - "wall cpu" of CMD run in DIR
    (cd "$1" && shift && /usr/bin/time -f "%e %U %S" -o ../time "$@" >../out 2>../err) ||
        { cat "$work/err" >&2; exit 1; }
    awk '{ printf "%s %.1f", $1, $2 + $3 }' "$work/time"
}
row() { printf '| %s | %s | %s | %.0f | %s |\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)" "$4"; }
live() { sqlite3 "$1/data/ctxgate.db" "SELECT count(*) FROM documents WHERE deleted = 0"; }

load=$(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
echo "| step | rows | seconds | rows/s | CPU s (ctxgate) |"
echo "|---|---:|---:|---:|---:|"
set -- $(timed "$work/embedded" "$BIN" sync)
row "embedded sync" "$N" "$1" "$2"
set -- $(timed "$work/writer" "$BIN" sync)
row "cluster sync (writer)" "$N" "$1" "$2"
set -- $(timed "$work/replica" "$BIN" follow --once)
row "replica: first copy" "$N" "$1" "$2"
echo "replica holds $(live "$work/replica") live documents of $N" >&2

m=$((N / 10))
$PSQL -c "UPDATE docs SET body = body || ' revised', updated_at = updated_at + interval '2 days'
          WHERE id % 10 = 0" >/dev/null
set -- $(timed "$work/writer" "$BIN" sync)
row "cluster sync of a tenth edited (writer)" "$m" "$1" "$2"
set -- $(timed "$work/replica" "$BIN" follow --once)
row "replica: applying the edits" "$m" "$1" "$2"
set -- $(timed "$work/embedded" "$BIN" sync)
row "embedded sync of the same edits" "$m" "$1" "$2"
echo "replica holds $(live "$work/replica") live documents; embedded $(live "$work/embedded")" >&2
echo "load before: $load; after: $(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)" >&2
$PSQL -d cluster1 -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots" \
    >/dev/null 2>&1 || true
