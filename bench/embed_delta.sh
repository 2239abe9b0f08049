#!/bin/sh
# embed_delta.sh - issue 16 before and after: an embed run beside N vectors
# (hash, 384-d) with nothing new, then with ADD new chunks (time, bytes the
# process wrote, bytes of vector index files written, peak RSS); then
# `ctxgate serve` with its agent: peak RSS across the embed job that takes
# ADD new chunks (VmHWM reset through /proc/PID/clear_refs first).
#
#   BASE=/tmp/ctx-base sh bench/embed_delta.sh            # N = 100000
#   BASE=/tmp/ctx-base BENCH_N=1000000 sh bench/embed_delta.sh
#
# BASE: a tree of the commit before (git archive a4ac8a4 | tar -x -C BASE);
# this script builds bench/embed_delta and ctxgate in both. Environment:
# BENCH_N (100000), ADD (1000), BUILD (build/release), PORT (18131),
# SERVE_ONLY (set: only the serve part), SIDES ("before after").
set -eu
cd "$(dirname "$0")/.."
: "${BENCH_N:=100000}" "${ADD:=1000}" "${BUILD:=build/release}" "${PORT:=18131}"
: "${BASE:?set BASE to a tree of the commit before issue 16}"
cp bench/embed_delta.c "$BASE/bench/"
make -s BUILD="$BUILD" "$BUILD/bench/embed_delta" "$BUILD/ctxgate"
make -s -C "$BASE" BUILD=build/release build/release/bench/embed_delta build/release/ctxgate
after=$(realpath "$BUILD"); before=$(realpath "$BASE/build/release")
work=/tmp/ctxgate-bench/embed_delta-$BENCH_N
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; true; }
trap cleanup EXIT INT TERM

# One store of N vectors, its main file written (its format is the same on both sides).
if [ ! -s "$work/seed/data/vectors-1.idx" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    echo "fill: $("$after/bench/embed_delta" fill "$work/seed" "$BENCH_N")" >&2
fi
side_dir() { # side_dir SIDE - a fresh copy of the seed for SIDE
    rm -rf "${work:?}/$1"
    cp -a "$work/seed" "$work/$1"
    sed -i "s|$work/seed/data|$work/$1/data|" "$work/$1/ctxgate.json"
}
echo "| side | N | run | embedded | seconds | bytes written (wchar) | index file bytes | peak RSS MB | load (1 min) |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
row() { # row SIDE RUN OUTPUT
    set -- "$1" "$2" $3
    echo "| $1 | $BENCH_N | $2 | $4 | $6 | $8 | ${10} | ${12} | $(cut -d' ' -f1 /proc/loadavg) |"
}
: "${SIDES:=before after}"
for side in $SIDES; do
    [ -n "${SERVE_ONLY:-}" ] && break
    eval "bin=\$$side"
    side_dir "$side"
    "$bin/bench/embed_delta" embed "$work/$side" >/dev/null # settle: first catch-up
    row "$side" "nothing new" "$("$bin/bench/embed_delta" embed "$work/$side")"
    "$bin/bench/embed_delta" add "$work/$side" "$ADD"
    row "$side" "$ADD new" "$("$bin/bench/embed_delta" embed "$work/$side")"
    rm -rf "${work:?}/$side"
done

# serve with its agent: peak RSS across the embed job that takes ADD new chunks.
echo
echo "| side | N | serve RSS MB before | peak RSS MB across the embed job | load (1 min) |"
echo "|---|---:|---:|---:|---:|"
CTXGATE_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CTXGATE_JWT_SECRET
for side in $SIDES; do
    eval "bin=\$$side"
    side_dir "serve-$side"
    d=$work/serve-$side
    cat >"$d/ctxgate.json" <<JSON
{"data_dir": "$d/data", "embeddings": {"provider": "hash", "dim": 384, "batch_size": 512},
 "sources": [], "agents": [{"name": "bench", "sources": "*", "labels": "*"}],
 "agent": {"embed": "2s", "maintain": ""},
 "serve": {"listen": "127.0.0.1:$PORT", "threads": 2}}
JSON
    "$bin/ctxgate" --config "$d/ctxgate.json" serve 2>"$d/serve.log" &
    pid=$!
    for _ in $(seq 1200); do grep -q "serving on" "$d/serve.log" 2>/dev/null && break; sleep 0.5; done
    grep -q "serving on" "$d/serve.log" || { cat "$d/serve.log" >&2; exit 1; }
    db=$d/data/ctxgate.db
    # the agent's first embed job has run (nothing new) and the index is loaded
    for _ in $(seq 600); do
        n=$(sqlite3 "$db" "SELECT count(*) FROM agent_jobs WHERE kind = 'embed'
                           AND status <> 'running'" 2>/dev/null || echo 0)
        [ "$n" -ge 1 ] && break; sleep 0.5
    done
    sleep 3
    rss0=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
    echo 5 >"/proc/$pid/clear_refs"
    done0=$(sqlite3 "$db" "SELECT count(*) FROM agent_jobs WHERE kind = 'embed'
                           AND status <> 'running'")
    "$bin/bench/embed_delta" add "$d" "$ADD"
    # two embed jobs after the documents came: the one that took them is done
    for _ in $(seq 1200); do
        n=$(sqlite3 "$db" "SELECT count(*) FROM agent_jobs WHERE kind = 'embed'
                           AND status <> 'running'" 2>/dev/null || echo 0)
        [ "$n" -ge $((done0 + 2)) ] && break; sleep 0.5
    done
    sleep 3 # and serve's refresh (every 2 s) caught up
    left=$(sqlite3 "$db" "SELECT count(*) FROM embed_queue")
    hwm=$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    [ "$left" = 0 ] || { echo "embed_delta: $left chunks left in the queue" >&2; exit 1; }
    rm -rf "$d"
    echo "| $side | $BENCH_N | $rss0 | $hwm | $(cut -d' ' -f1 /proc/loadavg) |"
done
