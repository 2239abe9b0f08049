#!/bin/sh
# serve_load.sh - load on `ctxgate serve`: wrk against POST /v1/search,
# RUNS times (default 3) of DURATION (30s) with CONNECTIONS (50), reporting
# after each run requests/s, p99 latency, errors (non-2xx and socket errors)
# and the server's RSS, so growth across runs shows. Nothing is asserted:
# the numbers go to docs/benchmarks.md by hand.
#
#   sh bench/serve_load.sh                       # the demo company, 3 x 30 s
#   DURATION=10s RUNS=1 sh bench/serve_load.sh   # a quick check
#   CONFIG=/path/ctxgate.json sh bench/serve_load.sh   # an existing store
#
# Environment: BUILD (build/release), CONFIG (a ctxgate.json whose store is
# synced; default: the demo corpus synced and embedded into a temp dir),
# MODE (hybrid), QUERY, USER_ID (alice@northwind.test), AGENT (bench; with
# CONFIG it must be in its "agents"), THREADS (wrk threads, 2), PORT (18099).
set -eu
cd "$(dirname "$0")/.."
: "${BUILD:=build/release}" "${DURATION:=30s}" "${CONNECTIONS:=50}" "${RUNS:=3}"
: "${THREADS:=2}" "${MODE:=hybrid}" "${QUERY:=vacation policy for new parents}"
: "${USER_ID:=alice@northwind.test}" "${AGENT:=bench}" "${PORT:=18099}"
command -v wrk >/dev/null || { echo "serve_load: wrk is missing (make deps)" >&2; exit 2; }
[ -x "$BUILD/ctxgate" ] || make --no-print-directory BUILD="$BUILD" "$BUILD/ctxgate" >/dev/null
bin=$(realpath "$BUILD/ctxgate")

work=$(mktemp -d /tmp/ctxgate-load.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

CTXGATE_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CTXGATE_JWT_SECRET
if [ -z "${CONFIG:-}" ]; then
    demo=$(realpath examples/demo)
    cat >"$work/ctxgate.json" <<JSON
{"data_dir": "./data", "embeddings": {"provider": "hash", "dim": 384},
 "sources": [{"name": "northwind", "type": "files", "path": "$demo"}],
 "agents": [{"name": "$AGENT", "sources": "*", "labels": "*", "max_k": 10, "max_tokens": 4000}],
 "serve": {"listen": "127.0.0.1:$PORT", "threads": 2, "user_rate": 0, "agent_rate": 0}}
JSON
    CONFIG=$work/ctxgate.json
    "$bin" --config "$CONFIG" sync >/dev/null
    "$bin" --config "$CONFIG" embed >/dev/null
fi
token=$("$bin" --config "$CONFIG" token mint --user "$USER_ID" --agent "$AGENT" --ttl 2h)
"$bin" --config "$CONFIG" serve --no-agent --listen "127.0.0.1:$PORT" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do
    grep -q "serving on" "$work/serve.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "serving on" "$work/serve.log" || { cat "$work/serve.log" >&2; exit 1; }

cat >"$work/search.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"query": "$QUERY", "k": 10, "mode": "$MODE"}'
LUA

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$pid/status"; }
echo "## ctxgate serve under wrk: POST /v1/search ($MODE), $CONNECTIONS connections, $DURATION"
echo
echo "| run | requests/s | p99 | non-2xx | socket errors | RSS after |"
echo "|---|---|---|---|---|---|"
echo "| before | | | | | $(rss) |"
for run in $(seq "$RUNS"); do
    out=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -s "$work/search.lua" \
        "http://127.0.0.1:$PORT/v1/search")
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    sock=$(echo "$out" | sed -n 's/.*Socket errors: *//p')
    echo "| $run | $rps | $p99 | ${non2xx:-0} | ${sock:-none} | $(rss) |"
done
