#!/bin/sh
# serve_ab.sh - two builds of ctxgate served back to back on serve_load's
# 100k corpus, alternating, so a change is timed against what it replaced
# on a machine whose speed moves by tens of percent within the hour. Each
# build gets its own copy of the store (a newer build may migrate it), a
# 3 s warm-up, then DURATION of wrk (2 threads, 50 connections, the 200
# questions as USER_ID, hybrid). Reports requests/s, p50, p99 and the
# server's read calls per request (/proc/PID/io). Nothing is asserted.
#
#   OLD=/tmp/old/build/release sh bench/serve_ab.sh    # against build/release
#
# Environment: OLD (a build directory holding ctxgate; required), NEW
# (build/release), OLD_SCHEMA (5: OLD predates schema v6), ROUNDS (2),
# DURATION (20s), DOCS (86000), USER_ID (user:u10), MODE (hybrid), PORT
# (18098).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
: "${OLD:?OLD=a build directory holding the ctxgate to compare with}"
: "${NEW:=build/release}" "${ROUNDS:=2}" "${DURATION:=20s}" "${DOCS:=86000}"
: "${USER_ID:=user:u10}" "${MODE:=hybrid}" "${PORT:=18098}"
command -v wrk >/dev/null || { echo "serve_ab: wrk is missing (make deps)" >&2; exit 2; }
[ -x "$NEW/ctxgate" ] || make --no-print-directory BUILD="$NEW" "$NEW/ctxgate" >/dev/null
for b in "$OLD" "$NEW"; do
    [ -x "$b/ctxgate" ] || { echo "serve_ab: no ctxgate in $b" >&2; exit 2; }
done
src=/tmp/ctxgate-bench/search-cost-$DOCS
[ -s "$src/questions" ] || PREPARE_ONLY=$src DOCS=$DOCS BUILD=$NEW sh bench/serve_load.sh

work=$(mktemp -d /tmp/ctxgate-ab.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
CTXGATE_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CTXGATE_JWT_SECRET
for side in old new; do
    mkdir -p "$work/$side"
    cp -r "$src/data" "$src/ctxgate.json" "$work/$side/"
done
# An OLD from before schema v6 (the audit log's own file) reads the store
# once v6's one change is undone: the audit table back in the store.
if [ "${OLD_SCHEMA:-}" = 5 ]; then
    sqlite3 "$work/old/data/ctxgate.db" "CREATE TABLE audit(id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL, user TEXT, agent TEXT, action TEXT NOT NULL, query TEXT,
        query_sha256 TEXT, doc_ids TEXT NOT NULL, tokens INTEGER NOT NULL,
        latency_us INTEGER NOT NULL, outcome TEXT NOT NULL);
        CREATE INDEX audit_at ON audit(at); CREATE INDEX audit_user ON audit(user, at);
        CREATE INDEX audit_agent ON audit(agent, at); PRAGMA user_version = 5;"
fi
token=$("$NEW/ctxgate" --config "$work/new/ctxgate.json" token mint --user "$USER_ID" \
    --agent bench --ttl 2h)
search_lua "$src/questions" "$MODE" "$token" >"$work/search.lua"

reads() { awk '/^syscr/ {print $2}' "/proc/$pid/io"; }
echo "| round | build | requests/s | p50 | p99 | reads/request |"
echo "|---|---|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for side in old new; do
        if [ $side = old ]; then bin=$(realpath "$OLD/ctxgate"); else bin=$(realpath "$NEW/ctxgate"); fi
        (cd "$work/$side" && exec "$bin" --config ctxgate.json serve --no-agent \
            --listen "127.0.0.1:$PORT" 2>serve.log) &
        pid=$!
        for _ in $(seq 600); do grep -q "serving on" "$work/$side/serve.log" 2>/dev/null && break
            sleep 0.1; done
        grep -q "serving on" "$work/$side/serve.log" || { cat "$work/$side/serve.log" >&2; exit 1; }
        url=http://127.0.0.1:$PORT/v1/search
        wrk -t 2 -c 50 -d 3s -s "$work/search.lua" "$url" >/dev/null
        r0=$(reads)
        out=$(wrk -t 2 -c 50 -d "$DURATION" --latency -s "$work/search.lua" "$url")
        r1=$(reads)
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        echo "$out" | awk -v r="$round" -v b="$side" -v rd="$(( (r1 - r0) / (n > 0 ? n : 1) ))" \
            '/^Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
             END {print "| " r " | " b " | " rps " | " p50 " | " p99 " | " rd " |"}'
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    done
done
