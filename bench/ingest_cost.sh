#!/bin/sh
# bench/ingest_cost.sh - callgrind instruction counts per inserted and per
# updated record (see ingest_cost.c), stable whatever else the machine does.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
make -s "$BUILD/bench/ingest_cost"
b=$BUILD/bench/ingest_cost
cg() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
       sed -n 's/.*Collected : //p'; }
ins=$(cg "$b" insert 5000)
"$b" prepare >/dev/null
upd=$(cg "$b" update 200)
echo "| instructions per inserted record | $((ins / 5000)) |"
echo "| instructions per updated record | $((upd / 200)) |"
