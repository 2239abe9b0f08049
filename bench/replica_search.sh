#!/bin/sh
# bench/replica_search.sh - lexical search latency through `ctxgate serve`
# on a search replica's data_dir beside an embedded data_dir (issue 14):
# the same N rows (default 100000, bench/lib.sh's docs table, an ACL of
# two groups out of 50 per row), the same users and the same questions.
#   - embedded: `ctxgate sync` of the source into its own data_dir;
#   - replica: a writer's cluster sync of the same source, then `ctxgate
#     follow --once` into an empty data_dir (the replica's first copy);
#     `serve` on it runs as replica r1, following PostgreSQL while it answers;
#   - replica_nofollow: the same replica data_dir served by a config
#     without the cluster section (nothing follows, nothing writes): what
#     the follower's own work costs the searches.
# Users (the source's users_query and groups_query): user:u1 in g0 (reads ~4%), user:u5 in
# g0..g4 (~19%), user:u50 in all 50 (100%). Questions: QUERIES (200) of
# three words, one of the vocabulary's 100 commonest and two of the rest.
# For each ROUND (1), each of MODES (all three), each user: `serve --no-agent` (2
# threads), wrk (2 threads, CONNECTIONS 50) for WARMUP (5s, not reported)
# then DURATION (20s) against POST /v1/search (lexical, k=10). Prints a
# markdown table (requests/s, p50, p99, non-2xx). Nothing is asserted.
#
#   sh bench/replica_search.sh            (N=100000, BUILD=build/release)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
: "${N:=100000}" "${PORT:=18098}" "${QUERIES:=200}" "${ROUNDS:=1}"
: "${DURATION:=20s}" "${WARMUP:=5s}" "${CONNECTIONS:=50}"
command -v wrk >/dev/null || { echo "replica_search: wrk is missing (make deps)" >&2; exit 2; }
. bench/lib.sh
pg_bench_work replicasearch
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
groups="SELECT 'g' || g AS group_name, 'u50' AS member FROM generate_series(0, 49) g
  UNION ALL SELECT 'g' || g, 'u5' FROM generate_series(0, 4) g UNION ALL SELECT 'g0', 'u1'"
users="SELECT 'u' || n AS account, 'u' || n AS email, 'U' || n AS display_name
  FROM unnest(ARRAY[1, 5, 50]) n"
src=$(printf '{"name": "bench", "type": "postgres", "batch_rows": 2000,
      "conninfo": "%s dbname=ctxtest",
      "principals": {"groups_query": "%s", "users_query": "%s"},
      "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                   "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}' \
      "$conn" "$(echo "$groups" | tr '\n' ' ')" "$(echo "$users" | tr '\n' ' ')")
common='"agents": [{"name": "bench", "sources": "*", "labels": "*", "max_k": 10,
                    "max_tokens": 4000}],
  "serve": {"listen": "127.0.0.1:'"$PORT"'", "threads": 2, "user_rate": 0, "agent_rate": 0}'
mkdir -p "$work/embedded" "$work/writer" "$work/replica" "$work/replica_nofollow"
printf '{"data_dir": "data", %s, "sources": [%s]}\n' "$common" "$src" \
    >"$work/embedded/ctxgate.json"
printf '{"data_dir": "data", "cluster": {"conninfo": "%s dbname=cluster1"}, "sources": [%s]}\n' \
    "$conn" "$src" >"$work/writer/ctxgate.json"
printf '{"data_dir": "data", "cluster": {"conninfo": "%s dbname=cluster1", "replica": "r1"},
  %s, "sources": [%s]}\n' "$conn" "$common" "$src" >"$work/replica/ctxgate.json"
printf '{"data_dir": "../replica/data", %s, "sources": [%s]}\n' "$common" "$src" \
    >"$work/replica_nofollow/ctxgate.json"
CTXGATE_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CTXGATE_JWT_SECRET

in_dir() { d=$1; shift; (cd "$d" && "$@" >"$d/out" 2>"$d/err") || { cat "$d/err" >&2; exit 1; }; }
t0=$(date +%s)
in_dir "$work/embedded" "$BIN" sync
in_dir "$work/writer" "$BIN" sync
in_dir "$work/replica" "$BIN" follow --once
live() { sqlite3 "$1/data/ctxgate.db" "SELECT count(*) FROM documents WHERE deleted = 0"; }
echo "built in $(($(date +%s) - t0)) s: embedded $(live "$work/embedded") live documents," \
     "replica $(live "$work/replica")" >&2

# Three words a question: one of the 100 commonest, two of the rest.
bench_vocab | tr ' ' '\n' | awk -v n="$QUERIES" '{ w[NR] = $0 }
    END { srand(42); for (i = 0; i < n; i++)
          print w[1 + int(rand() * 100)] " " w[101 + int(rand() * (NR - 100))] " " \
                w[101 + int(rand() * (NR - 100))] }' >"$work/questions"

serve_on() { # serve_on DIR - start serve there, wait until it answers /readyz
    (cd "$1" && exec "$BIN" serve --no-agent 2>serve.log) &
    spid=$!
    for _ in $(seq 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] &&
            return 0
        sleep 0.1
    done
    cat "$1/serve.log" >&2
    exit 1
}
serve_stop() { kill "$spid"; wait "$spid" 2>/dev/null || true; spid=; }

load=$(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
echo "| round | data_dir | user | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for mode in ${MODES:-embedded replica replica_nofollow}; do
        serve_on "$work/$mode"
        for u in u1 u5 u50; do
            token=$(cd "$work/$mode" &&
                    "$BIN" token mint --user "user:$u" --agent bench --ttl 2h)
            search_lua "$work/questions" lexical "$token" >"$work/search.lua"
            q=$(head -n 1 "$work/questions")
            echo "$mode user:$u '$q': $(curl -s -H "Authorization: Bearer $token" \
                -H 'Content-Type: application/json' -d "{\"query\": \"$q\", \"k\": 10,
                \"mode\": \"lexical\"}" "http://127.0.0.1:$PORT/v1/search" |
                grep -o '"doc_id"' | wc -l) results" >&2
            wrk -t 2 -c "$CONNECTIONS" -d "$WARMUP" -s "$work/search.lua" \
                "http://127.0.0.1:$PORT/v1/search" >/dev/null
            out=$(wrk -t 2 -c "$CONNECTIONS" -d "$DURATION" --latency -s "$work/search.lua" \
                "http://127.0.0.1:$PORT/v1/search")
            printf '| %s | %s | user:%s | %s | %s | %s | %s |\n' "$round" "$mode" "$u" \
                "$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')" \
                "$(echo "$out" | awk '$1 == "50%" { print $2 }')" \
                "$(echo "$out" | awk '$1 == "99%" { print $2 }')" \
                "$(echo "$out" | awk '/Non-2xx/ { print $NF }' | grep . || echo 0)"
        done
        serve_stop
    done
done
echo "load before: $load; after: $(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)" >&2
