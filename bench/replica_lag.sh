#!/bin/sh
# bench/replica_lag.sh - a search replica's lag and apply rate WHILE a
# cluster sync runs (issue 14): `ctxgate serve --no-agent` as replica r1
# of an empty cluster, caught up (/readyz 200), then a writer's cluster
# sync of N rows (default 200000, bench/lib.sh's docs table) started
# beside it. Every second (SAMPLE_S) the script reads the replica's
# /metrics gauge ctxgate_replica_lag_seconds, its slot's bytes behind
# pg_current_wal_lsn() (pg_replication_slots), the live documents in the
# replica's store and in PostgreSQL, until the writer ended and the
# replica holds all N rows. Prints the samples' summary as markdown (max
# and median lag, changes/s) and keeps the samples in $work/samples.tsv
# while it runs (KEEP=1: printed at the end). Nothing is asserted about
# speed; the sampling itself costs a few psql/sqlite3/curl calls a sample.
#
#   sh bench/replica_lag.sh            (N=200000, BUILD=build/release)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
N=${N:-200000}
PORT=${PORT:-18097}
SAMPLE_S=${SAMPLE_S:-1}
. bench/lib.sh
pg_bench_work replicalag
spid=
stop_all() { [ -z "$spid" ] || { kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; }
             $PSQL -d cluster1 -c "SELECT pg_drop_replication_slot(slot_name)
                                   FROM pg_replication_slots" >/dev/null 2>&1 || true
             cleanup; }
trap stop_all EXIT INT TERM
docs_tables
docs_fill "$N"
$PSQL -c "CREATE DATABASE cluster1" >/dev/null
conn="host=$pgdir port=$PGPORT user=postgres"
src='{"name": "bench", "type": "postgres", "batch_rows": 2000,
      "conninfo": "'"$conn"' dbname=ctxtest",
      "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                   "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}'
mkdir -p "$work/writer" "$work/replica"
printf '{"data_dir": "data", "cluster": {"conninfo": "%s dbname=cluster1"}, "sources": [%s]}\n' \
    "$conn" "$src" >"$work/writer/ctxgate.json"
printf '{"data_dir": "data", "cluster": {"conninfo": "%s dbname=cluster1", "replica": "r1",
  "max_lag_s": 86400}, "serve": {"listen": "127.0.0.1:%s", "threads": 2},
  "sources": [%s]}\n' "$conn" "$PORT" "$src" >"$work/replica/ctxgate.json"
CTXGATE_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
CTXGATE_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CTXGATE_ADMIN_TOKEN CTXGATE_JWT_SECRET

# The replica, on the empty cluster (its first copy is of nothing).
(cd "$work/replica" && exec "$BIN" serve --no-agent 2>serve.log) &
spid=$!
for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] && break
    sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] ||
    { cat "$work/replica/serve.log" >&2; exit 1; }

lag() { curl -s -H "Authorization: Bearer $CTXGATE_ADMIN_TOKEN" "http://127.0.0.1:$PORT/metrics" |
            awk '$1 == "ctxgate_replica_lag_seconds" { print $2 }'; }
behind() { $PSQL -d cluster1 -At -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(),
               confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'ctxgate_r1'"; }
applied() { sqlite3 "$work/replica/data/ctxgate.db" \
                "SELECT count(*) FROM documents WHERE deleted = 0" 2>/dev/null || echo 0; }
written() { $PSQL -d cluster1 -At -c "SELECT count(*) FROM ctxgate.documents WHERE NOT deleted"; }

load=$(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
t0=$(date +%s.%N)
(cd "$work/writer" && exec /usr/bin/time -f "%e %U %S" -o ../wtime "$BIN" sync \
    >../wout 2>../werr) &
wpid=$!
wend=
samples=$work/samples.tsv
printf 't_s\twriter_running\tlag_s\tbytes_behind\treplica_docs\tpg_docs\n' >"$samples"
while :; do
    sleep "$SAMPLE_S"
    running=1
    if [ -z "$wend" ] && ! kill -0 "$wpid" 2>/dev/null; then
        wait "$wpid" || { cat "$work/werr" >&2; exit 1; }
        wend=$(echo "$(date +%s.%N) - $t0" | bc -l)
    fi
    [ -z "$wend" ] || running=0
    t=$(echo "$(date +%s.%N) - $t0" | bc -l)
    a=$(applied)
    printf '%.1f\t%s\t%s\t%s\t%s\t%s\n' "$t" "$running" "$(lag)" "$(behind)" "$a" "$(written)" \
        >>"$samples"
    [ "$running" = 0 ] && [ "$a" -ge "$N" ] && break
    [ "$(echo "$t > 900" | bc)" = 0 ] || { echo "replica_lag: not caught up in 900 s" >&2; break; }
done
caught=$(tail -n 1 "$samples" | cut -f 1)
wwall=$(awk '{ print $1 }' "$work/wtime")

# med_max COLUMN WHEN - "median max" of a column over the samples taken
# while the writer ran (WHEN 1) or all of them (WHEN any).
med_max() {
    awk -F '\t' -v c="$1" -v w="$2" 'NR > 1 && (w == "any" || $2 == w) { print $c }' "$samples" |
        sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "- -"; exit }
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[NR] }'
}
at_end=$(awk -F '\t' 'NR > 1 && $2 == 1 { a = $5 } END { print a + 0 }' "$samples")
first=$(awk -F '\t' 'NR > 1 && $5 > 0 { print $1; exit }' "$samples")
echo "| what | value |"
echo "|---|---:|"
printf '| writer: rows synced | %s |\n' "$N"
printf '| writer: seconds (rows/s) | %s (%.0f) |\n' "$wwall" "$(echo "$N / $wwall" | bc -l)"
printf '| replica: rows applied when the writer ended | %s |\n' "$at_end"
printf '| replica: all rows applied at (s after the sync began) | %s |\n' "$caught"
printf '| replica: changes/s, the sync start to the last row applied | %.0f |\n' \
    "$(echo "$N / $caught" | bc -l)"
printf '| replica: apply rate while the writer ran (changes/s) | %.0f |\n' \
    "$(echo "$at_end / $wwall" | bc -l)"
printf '| replica: first rows seen applied at (s) | %s |\n' "${first:--}"
set -- $(med_max 3 1)
printf '| replica lag while the sync ran, median / max (s) | %s / %s |\n' "$1" "$2"
set -- $(med_max 3 any)
printf '| replica lag over all samples, median / max (s) | %s / %s |\n' "$1" "$2"
set -- $(med_max 4 1)
printf '| slot bytes behind while the sync ran, median / max | %s / %s |\n' "$1" "$2"
printf '| samples (%s s apart plus their own time) | %s |\n' "$SAMPLE_S" \
    "$(($(wc -l <"$samples") - 1))"
echo "replica holds $(applied) live documents of $N; PostgreSQL $(written)" >&2
echo "load before: $load; after: $(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)" >&2
[ -z "${KEEP:-}" ] || cat "$samples" >&2
