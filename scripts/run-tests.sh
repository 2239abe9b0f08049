#!/bin/sh
# Run every test binary given on the command line against a PostgreSQL
# started for this run (scripts/pg.sh) and stopped at the end, then print
# one closing line: "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build/asan}"
export CTX_BUILD="$BUILD"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

pgdir=$(mktemp -d /tmp/ctxgate-pg.XXXXXX)
cleanup() { sh scripts/pg.sh stop "$pgdir" >/dev/null 2>&1; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
if ! env_lines=$(sh scripts/pg.sh start "$pgdir"); then
    echo "run-tests: could not start PostgreSQL (see above)" >&2
    exit 1
fi
eval "$env_lines"

passed=0 failed=0 bad=""
for t in "$@"; do
    echo "== $t"
    out=$(mktemp)
    "$t" --jobs 2 >"$out" 2>&1
    rc=$?
    cat "$out"
    line=$(grep -a "Synthesis:" "$out" | tail -1)
    p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    rm -f "$out"
    passed=$((passed + ${p:-0}))
    if [ -z "$line" ]; then
        failed=$((failed + 1)); bad="$bad $t"
    else
        failed=$((failed + ${f:-0} + ${c:-0}))
        [ "$rc" -ne 0 ] && bad="$bad $t"
    fi
done
echo
[ -n "$bad" ] && echo "failing:$bad"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ -z "$bad" ]
