#!/bin/sh
# search_cost.sh - callgrind instructions per search on serve_load's corpus
# (DOCS documents of search_lexical's generator, embedded with the hash
# model, its 200 three-word questions): lexical and hybrid, k=10, as users
# reading 0.1%, 10% and 50%. Stable whatever else the machine does, so a
# change to the search path is measured here before it is timed. The
# questions run eight times and the first six rounds are subtracted: those
# also load what a connection keeps (the chunk map, the vector index, and
# frequency maps, which a word gets on its fourth search, one word a
# search, so a three-word question has all of its by the sixth), so the
# count is a warm server's. The first-round column is the first time the
# questions run on a new connection (REPS 1 minus REPS 0): it includes
# loading the chunk map and, per word, the first count of its document
# frequency per ACL set (rank_stats.c), so it shows what a cold server pays.
#
#   sh bench/search_cost.sh              # DOCS=86000 (~100k chunks), N=20
#
# Environment: DOCS, N (questions), BUILD (build/release).
set -eu
cd "$(dirname "$0")/.."
: "${DOCS:=86000}" "${N:=20}" "${BUILD:=build/release}"
make -s BUILD="$BUILD" "$BUILD/ctxgate" "$BUILD/bench/search_cost"
dir=/tmp/ctxgate-bench/search-cost-$DOCS
[ -s "$dir/questions" ] || PREPARE_ONLY=$dir DOCS=$DOCS BUILD=$BUILD sh bench/serve_load.sh
b=$BUILD/bench/search_cost
cg() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$b" "$dir/data/ctxgate.db" \
       "$dir/data" "$dir/questions" "$@" 2>&1 | sed -n 's/.*Collected : //p'; }
echo "| mode | user | instructions per query | first round, per query |"
echo "|---|---|---:|---:|"
for mode in lexical hybrid; do
    for user in user:u0001 user:u10 user:u50; do
        base=$(cg "$mode" "$user" "$N" 6)
        all=$(cg "$mode" "$user" "$N" 8)
        none=$(cg "$mode" "$user" "$N" 0)
        one=$(cg "$mode" "$user" "$N" 1)
        echo "| $mode | $user | $(( (all - base) / (2 * N) )) | $(( (one - none) / N )) |"
    done
done
