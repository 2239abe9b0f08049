#!/bin/sh
# serve_cost.sh - callgrind instructions per request of `ctxgate serve` on
# serve_load's 100k corpus: N of its questions asked WARM times over curl
# (a warm server: chunk maps, frequency maps), the counters zeroed, then
# asked once more and counted, all threads together. Prints the total per
# request and its main parts. Valgrind 3.19 has no AVX-512: the AVX2
# kernels are counted.
#
#   sh bench/serve_cost.sh
#
# Environment: N (60), WARM (6), DOCS (86000), USER_ID (user:u10), MODE
# (hybrid), BUILD (build/release), PORT (18097), EMBED (hash; lsa: the
# trained embedder, so hybrid's vector leg runs), SEARCH (the config's
# search section, e.g. '{"depth": 30}').
set -eu
cd "$(dirname "$0")/.."
: "${N:=60}" "${WARM:=6}" "${DOCS:=86000}" "${USER_ID:=user:u10}" "${MODE:=hybrid}"
: "${BUILD:=build/release}" "${PORT:=18097}" "${EMBED:=hash}" "${SEARCH:=}"
command -v valgrind >/dev/null || { echo "serve_cost: valgrind is missing (make deps)" >&2; exit 2; }
[ -x "$BUILD/ctxgate" ] || make -s BUILD="$BUILD" "$BUILD/ctxgate"
bin=$(realpath "$BUILD/ctxgate")
src=/tmp/ctxgate-bench/search-cost-$DOCS; [ "$EMBED" = hash ] || src=$src-$EMBED
[ -s "$src/questions" ] ||
    PREPARE_ONLY=$src DOCS=$DOCS EMBED=$EMBED BUILD=$BUILD sh bench/serve_load.sh
work=$(mktemp -d /tmp/ctxgate-cost.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
cp -r "$src/data" "$src/ctxgate.json" "$work/"
head -n "$N" "$src/questions" >"$work/q"
[ -z "$SEARCH" ] ||
    sed -i "s|^{\"data_dir\": \"./data\",|{\"data_dir\": \"./data\", \"search\": $SEARCH,|" \
        "$work/ctxgate.json"
[ -z "$SEARCH" ] || grep -q "\"search\"" "$work/ctxgate.json" ||
    { echo "serve_cost: could not set SEARCH in the config" >&2; exit 2; }
CTXGATE_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CTXGATE_JWT_SECRET
token=$("$bin" --config "$work/ctxgate.json" token mint --user "$USER_ID" --agent bench --ttl 2h)
(cd "$work" && exec valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$bin" \
    --config ctxgate.json serve --no-agent --listen "127.0.0.1:$PORT" 2>serve.log) &
pid=$!
for _ in $(seq 1200); do grep -q "serving on" "$work/serve.log" 2>/dev/null && break; sleep 0.5; done
grep -q "serving on" "$work/serve.log" || { cat "$work/serve.log" >&2; exit 1; }
ask() {
    while IFS= read -r q; do
        curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $token" \
            --data "{\"query\": \"$q\", \"k\": 10, \"mode\": \"$MODE\"}" \
            "http://127.0.0.1:$PORT/v1/search"
    done <"$work/q"
}
for _ in $(seq "$WARM"); do ask >/dev/null; done
callgrind_control -z "$pid" >/dev/null 2>&1
bad=$(ask | grep -vc '^200$' || true)
callgrind_control -d "$pid" >/dev/null 2>&1
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
[ "$bad" = 0 ] || { echo "serve_cost: $bad of $N requests failed" >&2; exit 1; }
out=$(ls "$work"/cg.*.1)
callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null |
    awk -v n="$N" '
        function row(name, pat) { for (k in ir) if (k ~ pat) { printf "| %s | %.2fM |\n", name, ir[k] / n / 1e6; return } }
        /^ *[0-9,]+ \(/ { v = $1; gsub(",", "", v); sub(/^ *[0-9,]+ \([ 0-9.]+%\) +/, ""); if (!($0 in ir)) ir[$0] = v }
        END {
            print "| part of a request | instructions |"; print "|---|---:|"
            row("all (every thread)", "^PROGRAM TOTALS")
            row("HTTP handler (on_request)", "retrieval/http.c:on_request \\[")
            row("search and packing (svc_search)", "retrieval/service.c:svc_search \\[")
            row("vector leg (vsearch)", "retrieval/vsearch.c:vsearch \\[")
            row("lexical leg (search_lexical)", "retrieval/search.c:search_lexical \\[")
            row("JSON out (http_json)", "retrieval/http.c:http_json \\[")
            row("JWT check (auth_verify)", "retrieval/auth.c:auth_verify \\[")
        }'
