#!/bin/sh
# bench/cluster_sync.sh - a full sync of N rows from a PostgreSQL source
# (default 200000 rows of ~1 KB, bench/lib.sh's docs table) in the embedded
# mode and in cluster mode (issue 14), in one run on one throwaway
# PostgreSQL that is both the source and the cluster's store:
#   - embedded, one source (`ctxgate sync` into SQLite);
#   - cluster, one worker (`ctxgate sync` with a cluster section);
#   - embedded, the rows split over two sources (docs_a, docs_b), one sync
#     after the other;
#   - cluster, the same two sources and two workers (`ctxgate agent --once`
#     twice at once, each claiming a source's job), timed until both end.
# Prints a markdown table (wall seconds, rows/s, CPU seconds of ctxgate)
# and checks that each cluster holds every row once. Nothing is asserted
# about speed.
#
#   sh bench/cluster_sync.sh            (N=200000, BUILD=build/release)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
N=${N:-200000}
. bench/lib.sh
pg_bench_work clusterbench
docs_tables
docs_fill "$N"
$PSQL <<SQL
CREATE TABLE docs_a AS SELECT * FROM docs WHERE id % 2 = 0;
CREATE TABLE docs_b AS SELECT * FROM docs WHERE id % 2 = 1;
ALTER TABLE docs_a ADD PRIMARY KEY (id);
ALTER TABLE docs_b ADD PRIMARY KEY (id);
CREATE INDEX ON docs_a(updated_at, id);
CREATE INDEX ON docs_b(updated_at, id);
SQL

src() { # src NAME TABLE
    printf '{"name": "%s", "type": "postgres", "batch_rows": 2000,
      "conninfo": "host=%s port=%s dbname=ctxtest user=postgres",
      "schedule": {"sync": "1h", "permissions": "", "full": ""},
      "streams": [{"name": "docs", "table": "%s", "id": "id", "title": "title",
                   "body": "body", "updated_at": "updated_at",
                   "allow_groups": "groups"}]}' "$1" "$pgdir" "$PGPORT" "$2"
}
config() { # config DIR CLUSTER_DB SOURCES_JSON
    mkdir -p "$1"
    cluster=""
    # (the agents' embed job off: this measures the sync alone)
    [ -z "$2" ] || cluster="\"agent\": {\"embed\": \"\"}, \"cluster\": {\"conninfo\": \"host=$pgdir port=$PGPORT dbname=$2 user=postgres\"},"
    printf '{"data_dir": "data", %s "sources": [%s]}\n' "$cluster" "$3" >"$1/ctxgate.json"
}
cpu_of() { awk '{ printf "%.1f", $3 + $4 }' "$1"; }
timed() { # timed DIR CMD... - wall seconds; CPU in $1/cpu
    d=$1
    shift
    /usr/bin/time -f "%e %M %U %S" -o "$d/time" "$@" >"$d/out" 2>"$d/err" ||
        { cat "$d/err" >&2; exit 1; }
    awk '{ print $1 }' "$d/time"
}
rows_in() { # rows_in DB SOURCE - live documents of SOURCE in that cluster
    psql -X -q -At -h "$pgdir" -p "$PGPORT" -U postgres -d "$1" -c \
        "SELECT count(*), count(DISTINCT d.ext_id) FROM ctxgate.documents d
           JOIN ctxgate.sources s ON s.id = d.source
          WHERE s.name = '$2' AND NOT d.deleted"
}

load=$(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
echo "| mode | sources | workers | rows | wall s | rows/s | CPU s (ctxgate) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row() { printf '| %s | %s | %s | %s | %s | %.0f | %s |\n' "$1" "$2" "$3" "$4" "$5" \
            "$(echo "$4 / $5" | bc -l)" "$6"; }

d=$work/embedded1
config "$d" "" "$(src bench docs)"
s=$(cd "$d" && timed "$d" "$BIN" sync)
row embedded 1 1 "$N" "$s" "$(cpu_of "$d/time")"

$PSQL -c "CREATE DATABASE cluster1" >/dev/null
d=$work/cluster1
config "$d" cluster1 "$(src bench docs)"
s=$(cd "$d" && timed "$d" "$BIN" sync)
row cluster 1 1 "$N" "$s" "$(cpu_of "$d/time")"
echo "cluster1 bench: $(rows_in cluster1 bench) (documents, distinct ids)" >&2

d=$work/embedded2
config "$d" "" "$(src a docs_a), $(src b docs_b)"
t0=$(date +%s.%N)
(cd "$d" && "$BIN" sync a >/dev/null 2>&1 && "$BIN" sync b >/dev/null 2>&1)
s=$(echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.2f')
row embedded 2 1 "$N" "$s" "-"

$PSQL -c "CREATE DATABASE cluster2" >/dev/null
d=$work/cluster2
config "$d" cluster2 "$(src a docs_a), $(src b docs_b)"
mkdir -p "$d/w1" "$d/w2"
t0=$(date +%s.%N)
(cd "$d" && /usr/bin/time -f "%e %M %U %S" -o "$d/w1/time" "$BIN" agent --once \
    >"$d/w1/out" 2>"$d/w1/err") &
p1=$!
(cd "$d" && /usr/bin/time -f "%e %M %U %S" -o "$d/w2/time" "$BIN" agent --once \
    >"$d/w2/out" 2>"$d/w2/err") &
p2=$!
wait $p1 || { cat "$d/w1/err" >&2; exit 1; }
wait $p2 || { cat "$d/w2/err" >&2; exit 1; }
s=$(echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.2f')
cpu=$(cat "$d/w1/time" "$d/w2/time" | awk '{ c += $3 + $4 } END { printf "%.1f", c }')
row cluster 2 2 "$N" "$s" "$cpu"
echo "cluster2 a: $(rows_in cluster2 a), b: $(rows_in cluster2 b) (documents, distinct ids)" >&2
echo "load before: $load; after: $(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)" >&2
