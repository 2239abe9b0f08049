#!/bin/sh
# serve_load.sh - load on `ctxgate serve`: wrk against POST /v1/search,
# after a WARMUP run, RUNS times (default 3) of DURATION (30s) with
# CONNECTIONS (50), reporting after each run requests/s, p50 and p99
# latency, errors (non-2xx and socket errors) and the server's RSS, so
# growth across runs shows. Nothing is asserted: the numbers go to
# docs/benchmarks.md by hand.
#
#   sh bench/serve_load.sh                       # the demo company, 3 x 30 s
#   DOCS=86000 sh bench/serve_load.sh            # ~100k chunks (see below)
#   DURATION=10s RUNS=1 sh bench/serve_load.sh   # a quick check
#   CONFIG=/path/ctxgate.json sh bench/serve_load.sh   # an existing store
#
# With DOCS, the corpus is bench/search_lexical's (Zipf vocabulary, ~1 KB
# documents, 1.16 chunks each, users u0001/u1/u10/u50/u100 reading 0.1% to
# 100%), built once into /tmp/ctxgate-bench, copied and embedded with the
# hash model; each request asks one of QUERIES (200) random questions of
# three words: one of the 100 commonest and two of the rest.
#
# Environment: WARMUP (10s: a first run reported as "warm-up"; 0: none),
# BUILD (build/release), CONFIG (a ctxgate.json whose store is
# synced; default: the demo corpus synced and embedded into a temp dir),
# DOCS, MODE (hybrid), EMBED (hash, or lsa: trained on the corpus, 128
# dimensions; with hash, hybrid answers from its lexical leg, so a hybrid
# whose vector leg runs needs lsa), QUERY (the demo's one question), USER_ID
# (alice@northwind.test; with DOCS user:u10), AGENT (bench; with CONFIG it
# must be in its "agents"), THREADS (wrk threads, 2), SERVE_THREADS (2),
# PORT (18099), QUESTIONS (a file of questions, one a line, asked at random;
# with CONFIG, e.g. a PREPARE_ONLY dir's, instead of QUERY alone).
#
#   PREPARE_ONLY=/tmp/h1m DOCS=1000000 EMBED=lsa sh bench/serve_load.sh   # once
#   CONFIG=/tmp/h1m/ctxgate.json QUESTIONS=/tmp/h1m/questions USER_ID=user:u10 \
#       sh bench/serve_load.sh                       # then as often as needed
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
: "${BUILD:=build/release}" "${DURATION:=30s}" "${CONNECTIONS:=50}" "${RUNS:=3}"
: "${THREADS:=2}" "${MODE:=hybrid}" "${QUERY:=vacation policy for new parents}" "${WARMUP:=10s}"
: "${AGENT:=bench}" "${PORT:=18099}" "${SERVE_THREADS:=2}" "${QUERIES:=200}" "${EMBED:=hash}"
case $EMBED in
    hash) EMBEDDINGS='{"provider": "hash", "dim": 384}' ;;
    lsa) EMBEDDINGS='{"provider": "lsa", "dim": 128}' ;;
    *) echo "serve_load: EMBED is hash or lsa, not $EMBED" >&2; exit 2 ;;
esac
if [ -n "${DOCS:-}" ]; then : "${USER_ID:=user:u10}"; else : "${USER_ID:=alice@northwind.test}"; fi
command -v wrk >/dev/null || { echo "serve_load: wrk is missing (make deps)" >&2; exit 2; }
[ -x "$BUILD/ctxgate" ] || make --no-print-directory BUILD="$BUILD" "$BUILD/ctxgate" >/dev/null
bin=$(realpath "$BUILD/ctxgate")

# PREPARE_ONLY=DIR: build the corpus, config and questions in DIR, kept,
# and stop there (bench/search_cost.sh counts instructions over them).
if [ -n "${PREPARE_ONLY:-}" ]; then work=$PREPARE_ONLY; mkdir -p "$work"; else
    work=$(mktemp -d /tmp/ctxgate-load.XXXXXX); fi
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
            [ -n "${PREPARE_ONLY:-}" ] || rm -rf "$work"; }
trap cleanup EXIT INT TERM

CTXGATE_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CTXGATE_JWT_SECRET
config() { # config SOURCE-NAME SOURCE-PATH
    cat >"$work/ctxgate.json" <<JSON
{"data_dir": "./data", "embeddings": $EMBEDDINGS,
 "sources": [{"name": "$1", "type": "files", "path": "$2"}],
 "agents": [{"name": "$AGENT", "sources": "*", "labels": "*", "max_k": 10, "max_tokens": 4000}],
 "serve": {"listen": "127.0.0.1:$PORT", "threads": $SERVE_THREADS, "user_rate": 0, "agent_rate": 0}}
JSON
    CONFIG=$work/ctxgate.json
}
if [ -z "${CONFIG:-}" ] && [ -n "${DOCS:-}" ]; then
    make -s BUILD="$BUILD" "$BUILD/bench/search_lexical"
    "$BUILD/bench/search_lexical" --docs "$DOCS" --pg none --queries 1 --warmup 0 --checks 0 \
        >/dev/null
    mkdir -p "$work/data" "$work/empty"
    cp "/tmp/ctxgate-bench/lexical-$DOCS-v5000-z1-s42.db" "$work/data/ctxgate.db"
    config bench "$work/empty"
    "$bin" --config "$CONFIG" embed >/dev/null
    # Three words a question: one of the 100 commonest, two of the rest.
    sqlite3 "$work/data/ctxgate.db" "SELECT term FROM term_df ORDER BY df DESC LIMIT 100" \
        >"$work/common"
    sqlite3 "$work/data/ctxgate.db" "SELECT term FROM term_df ORDER BY df DESC LIMIT -1 OFFSET 100" \
        >"$work/rest"
    awk -v n="$QUERIES" 'FNR == 1 { f++ } f == 1 { c[nc++] = $0 } f == 2 { r[nr++] = $0 }
        END { srand(42); for (i = 0; i < n; i++)
              print c[int(rand() * nc)] " " r[int(rand() * nr)] " " r[int(rand() * nr)] }' \
        "$work/common" "$work/rest" >"$work/questions"
elif [ -z "${CONFIG:-}" ]; then
    config northwind "$(realpath examples/demo)"
    "$bin" --config "$CONFIG" sync >/dev/null
    "$bin" --config "$CONFIG" embed >/dev/null
fi
if [ -n "${QUESTIONS:-}" ]; then cp "$QUESTIONS" "$work/questions"; fi
[ -s "$work/questions" ] || echo "$QUERY" >"$work/questions"
[ -z "${PREPARE_ONLY:-}" ] || exit 0
token=$("$bin" --config "$CONFIG" token mint --user "$USER_ID" --agent "$AGENT" --ttl 2h)
"$bin" --config "$CONFIG" serve --no-agent --listen "127.0.0.1:$PORT" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 1200); do # the vector index may be built first
    grep -q "serving on" "$work/serve.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "serving on" "$work/serve.log" || { cat "$work/serve.log" >&2; exit 1; }

search_lua "$work/questions" "$MODE" "$token" >"$work/search.lua"

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$pid/status"; }
chunks=$(sqlite3 "$(dirname "$CONFIG")/data/ctxgate.db" "SELECT count(*) FROM chunks" 2>/dev/null ||
    echo "?")
echo "## ctxgate serve under wrk: POST /v1/search ($MODE) as $USER_ID, $chunks chunks,"
echo "$CONNECTIONS connections, $DURATION, $SERVE_THREADS server threads"
echo
echo "| run | requests/s | p50 | p99 | non-2xx | socket errors | RSS after |"
echo "|---|---|---|---|---|---|---|"
echo "| before | | | | | | $(rss) |"
# A new server spends its first seconds building what its connections keep
# (frequency maps: a word gets one on its fourth search); the warm-up run
# is that, shown on its own row (WARMUP=0 skips it).
for run in $( [ "$WARMUP" = 0 ] || echo warm-up) $(seq "$RUNS"); do
    d=$DURATION; [ "$run" = warm-up ] && d=$WARMUP
    out=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$d" --latency -s "$work/search.lua" \
        "http://127.0.0.1:$PORT/v1/search")
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    sock=$(echo "$out" | sed -n 's/.*Socket errors: *//p')
    echo "| $run | $rps | $p50 | $p99 | ${non2xx:-0} | ${sock:-none} | $(rss) |"
done
