#!/bin/sh
# day.sh - a day compressed (issue 16): `ctxgate serve` under wrk for
# MINUTES (10) one-minute rounds while, every minute, 1% of a PostgreSQL
# table's rows change (a new body and updated_at) and the groups of
# another 1% change, then `ctxgate sync`, `sync --permissions`, `embed` and
# `maintain` run as a separate process, as the maintenance agent's jobs would.
#
# Each minute prints one table row: requests/s, p50 and p99 (wrk), non-2xx
# answers and socket errors, serve's RSS (and of it the heap's), how long
# the sync, permission sync, embed and maintain took, and a sampled leak check: LEAK_Q (20) questions
# asked over HTTP as each of three users after that minute's syncs, every
# result's row checked against PostgreSQL's groups and memberships (a
# result its user may not read there is a leak). Nothing is asserted about
# time; the script exits 1 on a leak, a failed sync or a server error.
#
#   sh bench/day.sh                            # 1,000,000 rows, 10 minutes
#   ROWS=100000 MINUTES=3 sh bench/day.sh      # a quick run
#
# Environment: ROWS (1000000), MINUTES (10), WORDS (English body words,
# 120), TAIL (words of a long tail added to each row, 12),
# MODE (hybrid), CONNECTIONS (50), THREADS (wrk threads, 2), SERVE_THREADS
# (2), PORT (18097), LEAK_Q (20), BUILD (build/release).
set -eu
cd "$(dirname "$0")/.."
: "${ROWS:=1000000}" "${MINUTES:=10}" "${WORDS:=120}" "${MODE:=hybrid}" "${CONNECTIONS:=50}"
: "${THREADS:=2}" "${SERVE_THREADS:=2}" "${PORT:=18097}" "${LEAK_Q:=20}" "${BUILD:=build/release}"
command -v wrk >/dev/null || { echo "day.sh: wrk is missing (make deps)" >&2; exit 2; }
[ -x "$BUILD/ctxgate" ] || make --no-print-directory BUILD="$BUILD" "$BUILD/ctxgate" >/dev/null
bin=$(realpath "$BUILD/ctxgate")
. bench/lib.sh
pg_bench_work day
pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; cleanup; }
trap stop EXIT INT TERM
docs_tables
# Ten users, each in five of the 50 groups: each reads a tenth to a fifth of the rows.
$PSQL <<SQL
CREATE TABLE members(g text, u text);
INSERT INTO members SELECT 'g' || ((k * 5 + j) % 50), 'u' || k
    FROM generate_series(0, 9) k, generate_series(0, 4) j;
SQL
docs_fill "$ROWS" "$WORDS"
# The 482 English words are all common at this size; real text has a long
# tail. Each row also gets TAIL (12) words of a 50,000-word tail (t0 ..
# t49999, t<n> about as frequent as 1/n^0.7 of the rows), so questions
# name words that are rare, middling and common, as users' do.
echo "adding the tail words" >&2
# (the WHERE names the row, so the subquery runs for each)
$PSQL -c "UPDATE docs SET body = body || ' ' || (SELECT string_agg(
              't' || floor(50000 * power(random(), 3))::int, ' ')
          FROM generate_series(1, ${TAIL:-12}) WHERE docs.id IS NOT NULL)" >/dev/null
$PSQL -c "VACUUM ANALYZE docs" >/dev/null

CTXGATE_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CTXGATE_JWT_SECRET
cat >"$work/ctxgate.json" <<JSON
{"data_dir": "data", "embeddings": {"provider": "hash", "dim": 384},
 "sources": [{"name": "crm", "type": "postgres",
   "conninfo": "host=$pgdir port=$PGPORT dbname=ctxtest user=postgres", "batch_rows": 2000,
   "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}],
   "principals": {"groups_query": "SELECT g, u FROM members",
                  "users_query": "SELECT DISTINCT u, NULL, NULL FROM members"}}],
 "agents": [{"name": "bench", "sources": "*", "labels": "*", "max_k": 10, "max_tokens": 4000}],
 "serve": {"listen": "127.0.0.1:$PORT", "threads": $SERVE_THREADS, "user_rate": 0,
           "agent_rate": 0}}
JSON
ctx() { "$bin" --config "$work/ctxgate.json" "$@"; }

echo "first sync and embed of $ROWS rows" >&2
set -- $(measure "$bin" --config "$work/ctxgate.json" sync)
first_sync=$1 first_sync_kb=$2
set -- $(measure "$bin" --config "$work/ctxgate.json" embed)
first_embed=$1 first_embed_kb=$2

# Questions of three words: one of the English ones, two of the tail drawn
# as the rows draw them (so most are rare, some middling).
bench_vocab | tr ' ' '\n' >"$work/vocab"
awk -v n=200 '{ w[NR] = $0 } END { srand(7); for (i = 0; i < n; i++)
    print w[1 + int(rand() * NR)] " t" int(50000 * rand() ^ 3) " t" int(50000 * rand() ^ 3) }' \
    "$work/vocab" >"$work/questions"
token=$(ctx token mint --user user:u0 --agent bench --ttl 4h)
search_lua "$work/questions" "$MODE" "$token" >"$work/search.lua"
for u in u1 u4 u7; do
    ctx token mint --user "user:$u" --agent bench --ttl 4h >"$work/token.$u"
done

"$bin" --config "$work/ctxgate.json" serve --no-agent --listen "127.0.0.1:$PORT" \
    2>"$work/serve.log" &
pid=$!
for _ in $(seq 3000); do
    grep -q "serving on" "$work/serve.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "serving on" "$work/serve.log" || { cat "$work/serve.log" >&2; exit 1; }
rss() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
# what of it is the heap (anonymous) rather than mapped files
rss_anon() { awk '/^RssAnon/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }

# changes M - the minute's changes: 1% of the rows get a new body, another
# 1% new groups, then the syncs and embed a separate agent would run; the
# seconds of each into $work/changes.M.
changes() {
    sleep 5
    $PSQL -c "UPDATE docs SET body = body || ' ' || title, updated_at = now()
              WHERE id % 100 = $1 % 100" >/dev/null
    $PSQL -c "UPDATE docs SET groups = ARRAY['g' || ((id * 13 + $1) % 50)]
              WHERE id % 100 = ($1 + 50) % 100" >/dev/null
    t0=$(date +%s.%N)
    ctx sync >"$work/sync.$1" 2>&1 || { echo "sync failed" >"$work/changes.$1"; return; }
    t1=$(date +%s.%N)
    ctx sync --permissions >>"$work/sync.$1" 2>&1 ||
        { echo "permission sync failed" >"$work/changes.$1"; return; }
    t2=$(date +%s.%N)
    ctx embed >>"$work/sync.$1" 2>&1 || { echo "embed failed" >"$work/changes.$1"; return; }
    t3=$(date +%s.%N)
    # the agent's maintain job (hourly by default: at least once in each
    # compressed minute) merges the vector deltas and prunes
    ctx maintain >>"$work/sync.$1" 2>&1 || { echo "maintain failed" >"$work/changes.$1"; return; }
    t4=$(date +%s.%N)
    echo "$t0 $t1 $t2 $t3 $t4" |
        awk '{ printf "%.1f %.1f %.1f %.1f\n", $2 - $1, $3 - $2, $4 - $3, $5 - $4 }' \
        >"$work/changes.$1"
}

# leaks - LEAK_Q questions as each sample user; prints how many results
# PostgreSQL says that user may not read, and how many were checked.
leaks() {
    for u in u1 u4 u7; do
        head -n "$LEAK_Q" "$work/questions" | python3 -c '
import json, sys, urllib.request
port, user, token = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().strip()
for q in sys.stdin:
    body = json.dumps({"query": q.strip(), "k": 10, "mode": "hybrid"}).encode()
    req = urllib.request.Request("http://127.0.0.1:%s/v1/search" % port, body,
                                 {"Content-Type": "application/json",
                                  "Authorization": "Bearer " + token})
    for r in json.load(urllib.request.urlopen(req))["results"]:
        print("%s\t%s" % (user, r["external_id"]))' "$PORT" "$u" "$work/token.$u"
    done >"$work/answers"
    $PSQL -At -c "CREATE TEMP TABLE answers(u text, id bigint);
                  COPY answers FROM '$work/answers';
                  SELECT count(*) FILTER (WHERE NOT d.groups && ARRAY(
                             SELECT m.g FROM members m WHERE m.u = a.u)
                         OR d.id IS NULL), count(*)
                    FROM answers a LEFT JOIN docs d ON d.id = a.id" | tr '|' ' '
}

chunks=$(sqlite3 "$work/data/ctxgate.db" "SELECT count(*) FROM chunks")
echo "## A day compressed: $ROWS rows ($chunks chunks), $MINUTES minutes of wrk ($MODE,"
echo "$CONNECTIONS connections, $SERVE_THREADS server threads) while 1% of rows and 1% of"
echo "groups change every minute"
echo
echo "- first sync $first_sync s (peak RSS $((first_sync_kb / 1024)) MB), first embed" \
     "$first_embed s (peak RSS $((first_embed_kb / 1024)) MB); serve's RSS before load $(rss) MB"
echo
echo "| minute | requests/s | p50 | p99 | non-2xx | socket errors | serve RSS MB (anon) |" \
     "sync s | permissions s | embed s | maintain s | leaks / results checked |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
bad=0
for m in $(seq "$MINUTES"); do
    changes "$m" &
    cpid=$!
    out=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d 60s --latency -s "$work/search.lua" \
        "http://127.0.0.1:$PORT/v1/search")
    rss_now="$(rss) ($(rss_anon))"
    wait "$cpid" || true
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    sock=$(echo "$out" | sed -n 's/.*Socket errors: *//p')
    if grep -q failed "$work/changes.$m"; then
        cat "$work/changes.$m" "$work/sync.$m" >&2
        s_sync=failed s_perm=- s_embed=- s_maint=- bad=1
    else
        read -r s_sync s_perm s_embed s_maint <"$work/changes.$m"
    fi
    set -- $(leaks)
    echo "| $m | $rps | $p50 | $p99 | ${non2xx:-0} | ${sock:-none} | $rss_now |" \
         "$s_sync | $s_perm | $s_embed | $s_maint | $1 / $2 |"
    [ "$1" = 0 ] || bad=1
    [ -z "$non2xx" ] || bad=1
done
[ "$bad" = 0 ] || { echo "day.sh: leaks, errors or failed syncs (above)" >&2; exit 1; }
