#!/bin/sh
# vector_search.sh - build and run bench/vector_search (see the file's head).
#
#   sh bench/vector_search.sh                      # 1,000,000 chunks (~12 min on 2 cores, ~2 GB)
#   BENCH_N=20000 sh bench/vector_search.sh        # quick check (~1 min)
#
# Environment: BENCH_N (chunks, default 1000000), BENCH_QUERIES (default 200),
# BENCH_ARGS (more options: --dim D, --m M), BUILD (default build/release).
# The markdown report goes to stdout and to /tmp/ctxgate-bench/vector_search-$BENCH_N.md.
set -eu
cd "$(dirname "$0")/.."
: "${BENCH_N:=1000000}"
: "${BENCH_QUERIES:=200}"
: "${BENCH_ARGS:=}"
: "${BUILD:=build/release}"
make -s BUILD="$BUILD" "$BUILD/bench/vector_search"
mkdir -p /tmp/ctxgate-bench
out=/tmp/ctxgate-bench/vector_search-$BENCH_N.md
# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
BENCH_N=$BENCH_N BENCH_QUERIES=$BENCH_QUERIES "$BUILD/bench/vector_search" $BENCH_ARGS >"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
echo "(report saved to $out)" >&2
