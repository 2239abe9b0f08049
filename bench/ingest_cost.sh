#!/bin/sh
# bench/ingest_cost.sh - callgrind instruction counts per inserted and per
# updated record (see ingest_cost.c), stable whatever else the machine does:
# in all, and on a sync's applier thread alone (ingest_apply and the
# commits; the rest, ingest_prepare, runs on the connector's thread).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
make -s "$BUILD/bench/ingest_cost"
b=$BUILD/bench/ingest_cost
cg() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
       sed -n 's/.*Collected : //p'; }
applier="--toggle-collect=ingest_apply --toggle-collect=store_commit"
ins=$(cg "$b" insert 5000)
ins_a=$(cg $applier "$b" insert 5000)
"$b" prepare >/dev/null
upd=$(cg "$b" update 200)
"$b" prepare >/dev/null
upd_a=$(cg $applier "$b" update 200)
echo "| instructions per inserted record | $((ins / 5000)) |"
echo "| instructions per updated record | $((upd / 200)) |"
echo "| of which on the applier thread, per inserted record | $((ins_a / 5000)) |"
echo "| of which on the applier thread, per updated record | $((upd_a / 200)) |"
