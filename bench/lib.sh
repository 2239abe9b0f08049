# lib.sh - what the service benchmarks share (sourced by serve_load.sh and
# serve_ab.sh).

# search_lua QUESTIONS MODE TOKEN - a wrk script that POSTs one of the
# questions (a line each), picked at random, to /v1/search as TOKEN's
# bearer, k=10, in MODE.
search_lua() {
    echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    echo "wrk.headers[\"Authorization\"] = \"Bearer $3\""
    echo 'local bodies = {'
    while IFS= read -r q; do
        printf '  [[{"query": "%s", "k": 10, "mode": "%s"}]],\n' "$q" "$2"
    done <"$1"
    echo '}'
    echo 'request = function()'
    echo '  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])'
    echo 'end'
}
