#!/bin/sh
# bench/sync_pg.sh - PostgreSQL -> ctxgate sync throughput.
#
# For each size in $SIZES (default "200000 1000000"): generate that many
# rows of ~1 KB English-like text with ACLs over 50 groups in a throwaway
# PostgreSQL, then measure
#   - a full `ctxgate sync`: rows/s, MB/s of body text, peak RSS;
#   - an incremental sync after 1% of the rows changed;
#   - the reference: COPY ... TO STDOUT (CSV) piped into the sqlite3 shell
#     importing into an FTS5 table with the same tokenizer;
# and print one markdown table row per size. Nothing here is asserted.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
SIZES=${SIZES:-"200000 1000000"}
. bench/lib.sh
pg_bench_work syncbench
docs_tables

cat > "$work/ctxgate.json" <<EOF
{"data_dir": "data",
 "sources": [{"name": "bench", "type": "postgres",
   "conninfo": "host=$pgdir port=$PGPORT dbname=ctxtest user=postgres",
   "batch_rows": 2000,
   "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}]}
EOF

echo "| rows | body MB | full sync s | rows/s | MB/s | peak RSS MB | reference s | ours/ref | 1% incremental s | full/incremental |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
    docs_fill "$n"
    mb=$($PSQL -At -c "SELECT round(sum(octet_length(body)) / 1048576.0, 1) FROM docs")

    rm -rf "$work/data"
    set -- $(measure "$BIN" --config "$work/ctxgate.json" sync)
    full_s=$1 rss_kb=$2

    rm -f "$work/ref.db"
    sqlite3 "$work/ref.db" "PRAGMA journal_mode=WAL; CREATE VIRTUAL TABLE ref USING fts5(id UNINDEXED, title, body, tokenize = 'porter unicode61 remove_diacritics 2');" >/dev/null
    printf '%s -c "COPY (SELECT id, title, body FROM docs) TO STDOUT WITH (FORMAT csv)" | sqlite3 "%s" ".mode csv" ".import /dev/stdin ref"\n' \
        "$PSQL" "$work/ref.db" > "$work/ref.sh"
    set -- $(measure sh "$work/ref.sh")
    ref_s=$1

    $PSQL -c "UPDATE docs SET body = body || ' revised', updated_at = now() WHERE id % 100 = 0"
    set -- $(measure "$BIN" --config "$work/ctxgate.json" sync)
    inc_s=$1
    # Put the rows back so a larger size starts from the same data.
    $PSQL -c "UPDATE docs SET body = left(body, -8) WHERE id % 100 = 0"

    awk -v n="$n" -v mb="$mb" -v f="$full_s" -v r="$rss_kb" -v ref="$ref_s" -v inc="$inc_s" 'BEGIN {
        printf "| %d | %.0f | %.1f | %.0f | %.1f | %.0f | %.1f | %.2f | %.2f | %.0fx |\n",
               n, mb, f, n / f, mb / f, r / 1024, ref, f / ref, inc, f / inc }'
done
