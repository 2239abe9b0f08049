#!/bin/sh
# bench/sync_rest.sh - the rest connector against a SaaS-like list API on
# 127.0.0.1 (bench/rest_server.py: sync_pg.sh's kind of ~1 KB documents,
# cursor pages of 100, bearer auth, HTTP/1.1 keep-alive).
#
# 1. Throughput: RUNS (2) times, a full `ctxgate sync` of RECORDS (200000)
#    documents into an empty store: seconds, records/s, CPU seconds, peak
#    RSS (/usr/bin/time), requests and CPU seconds of the server.
# 2. Rate limits: RL_RECORDS (20000) documents with the connector's
#    requests_per_second at RPS (10), the server answering every
#    THROTTLE_EVERY-th (25th) request 429 with a Retry-After, alternately
#    delta-seconds ("2") and an HTTP-date. From the server's own clock:
#    the most requests that arrived within any 1 s (at most RPS if the
#    budget holds), and for each 429 the wait it asked for and the gap
#    before the next request (honoured when the gap is at least the wait);
#    the store must then hold every record.
# Prints markdown tables. Only correctness is checked (exit 1): every
# record stored, no more than RPS requests in 1 s, every wait honoured.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
RECORDS=${RECORDS:-200000}
RUNS=${RUNS:-2}
RL_RECORDS=${RL_RECORDS:-20000}
RPS=${RPS:-10}
THROTTLE_EVERY=${THROTTLE_EVERY:-25}
. bench/lib.sh
work=$(mktemp -d /tmp/ctxgate-restbench.XXXXXX)
server=""
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
bench_vocab >"$work/vocab"
export BENCH_REST_TOKEN=bench-token-0042

# serve N [--throttle EVERY] - (re)start the server; sets server and port.
serve() {
    [ -z "$server" ] || { kill "$server"; wait "$server" 2>/dev/null || true; }
    : >"$work/port"
    python3 bench/rest_server.py "$work/vocab" "$@" >"$work/port" &
    server=$!
    while ! [ -s "$work/port" ]; do
        kill -0 "$server" 2>/dev/null || { echo "sync_rest: the server did not start" >&2
                                           exit 1; }
        sleep 0.1
    done
    port=$(head -1 "$work/port")
}

# config [EXTRA] - the source, EXTRA its further keys ("key": value,).
config() {
    cat >"$work/ctxgate.json" <<EOF
{"data_dir": "data",
 "sources": [{"name": "bench", "type": "rest", "base_url": "http://127.0.0.1:$port",
   "auth": {"type": "bearer", "secret_env": "BENCH_REST_TOKEN"}, ${1:-}
   "streams": [{"name": "docs", "endpoint": "/api/docs", "records": "items",
                "title": "title", "body": "body", "updated_at": "updated_at",
                "allow_groups": "acl.groups", "pagination": "cursor",
                "cursor_path": "next_cursor", "page_size": 100}]}]}
EOF
}

stats() { curl -sf "http://127.0.0.1:$port/_stats?span=$RPS" >"$work/stats.json"; }

# stored N - fail unless the store holds N live documents.
stored() {
    have=$(sqlite3 "$work/data/ctxgate.db" "SELECT count(*) FROM documents WHERE NOT deleted")
    [ "$have" -eq "$1" ] || { echo "sync_rest: $have documents stored, not $1" >&2; exit 1; }
}

# 1. Throughput, RUNS times, each with a new server (its CPU time is its own).
echo "| run | records | page size | requests | full sync s | records/s | CPU s | peak RSS MB" \
     "| server CPU s |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq "$RUNS"); do
    serve "$RECORDS"
    config
    rm -rf "$work/data"
    set -- $(measure "$BIN" --config "$work/ctxgate.json" sync)
    stats
    stored "$RECORDS"
    python3 - "$work/stats.json" "$r" "$RECORDS" "$1" "$2" "$3" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
r, n, s = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
kb, cpu = int(sys.argv[5]), float(sys.argv[6])
print("| %d | %d | 100 | %d | %.1f | %.0f | %.1f | %.0f | %.1f |" % (
    r, n, st["requests"], s, n / s, cpu, kb / 1024, st["cpu_s"]))
EOF
done

# 2. Under a rate limit, with 429s.
echo
serve "$RL_RECORDS" --throttle "$THROTTLE_EVERY"
config "\"requests_per_second\": $RPS,"
rm -rf "$work/data"
set -- $(measure "$BIN" --config "$work/ctxgate.json" sync)
stats
stored "$RL_RECORDS"
python3 - "$work/stats.json" "$RL_RECORDS" "$RPS" "$1" "$have" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
n, rps, s, have = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
waits = st["retry_after"]
ok = [w for w in waits if w["honoured"]]
print("| records | served | stored | requests_per_second | requests | 200 | 429"
      " | max requests in 1 s | fastest %d requests, ms | 429s honoured | retried early"
      " | sync s |" % (rps + 1))
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print("| %d | %d | %d | %d | %d | %d | %d | %d | %.1f | %d of %d | %d | %.1f |" % (
    n, st["items"], have, rps, st["requests"], st["ok"], st["throttled"], st["max_in_1s"],
    st["min_span_ms"], len(ok), len(waits), st["early"], s))
print()
print("| 429 | Retry-After | asked ms | gap to next request ms | margin ms |")
print("|---:|---|---:|---:|---:|")
for i, w in enumerate(waits, 1):
    print("| %d | %s | %.1f | %.1f | %+.1f |" % (
        i, "delta-seconds" if w["form"] == "seconds" else "HTTP-date", w["asked_ms"],
        w["gap_ms"], w["gap_ms"] - w["asked_ms"]))
bad = []
if st["items"] < n:
    bad.append("served %d records of %d" % (st["items"], n))
if st["max_in_1s"] > rps:
    bad.append("%d requests within 1 s, more than %d" % (st["max_in_1s"], rps))
if len(ok) != len(waits) or st["early"]:
    bad.append("%d of %d waits honoured, %d early" % (len(ok), len(waits), st["early"]))
for b in bad:
    print("sync_rest: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
