#!/bin/sh
# bench/perm_sync.sh - the permission sync (`ctxgate sync --permissions`)
# of PostgreSQL rows, beside the full sync.
#
# For each size in $SIZES (default "200000 1000000"): generate that many
# rows (about 40 words of English-like text, an ACL of two groups out of
# 50) in a throwaway PostgreSQL, then measure with /usr/bin/time:
#   - the first `ctxgate sync` (reads every row): seconds, peak RSS;
#     (every measurement also gives ctxgate's own CPU seconds, user + sys:
#     wall time on a shared machine depends on its load, CPU time less so)
#   - change the groups of 1% of the rows WITHOUT touching updated_at and
#     hard-DELETE 0.1%, then `ctxgate sync --permissions`: seconds, peak
#     RSS, and the permission changes and deletes it reports;
#   - `sync --permissions` again with nothing changed;
#   - the same kind of changes to other rows, then `sync --full`, the only
#     way to catch them before the permission sync existed.
# One markdown table row per size. Nothing here is asserted.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
SIZES=${SIZES:-"200000 1000000"}
. bench/lib.sh
pg_bench_work permbench
docs_tables

cat > "$work/ctxgate.json" <<JSON
{"data_dir": "data",
 "sources": [{"name": "bench", "type": "postgres",
   "conninfo": "host=$pgdir port=$PGPORT dbname=ctxtest user=postgres",
   "batch_rows": 2000,
   "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}]}
JSON

# change MOD: 1% of the rows get other groups (updated_at untouched), 0.1% go.
change() {
    $PSQL -c "UPDATE docs SET groups = ARRAY['g' || ((id * 13 + $1) % 50)]
              WHERE id % 100 = $1"
    $PSQL -c "DELETE FROM docs WHERE id % 1000 = $1 + 50"
}

echo "| rows | full sync s | full RSS MB | permission sync s (CPU s) | RSS MB | permission changes | deleted | again, nothing changed s (CPU s) | RSS MB | sync --full s (CPU s), same changes | RSS MB | full/permission |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
    $PSQL -c "TRUNCATE docs"
    docs_fill "$n" 40

    rm -rf "$work/data"
    echo "full sync" >&2
    set -- $(measure "$BIN" --config "$work/ctxgate.json" sync)
    full_s=$1 full_kb=$2

    change 1
    echo "permission sync" >&2
    set -- $(measure "$BIN" --config "$work/ctxgate.json" sync --permissions)
    perm_s=$1 perm_kb=$2 perm_cpu=$3
    cat "$work/out" >&2
    acls=$(sed -n 's/.* \([0-9]*\) permission changes.*/\1/p' "$work/out")
    dels=$(sed -n 's/.* \([0-9]*\) deleted.*/\1/p' "$work/out")

    set -- $(measure "$BIN" --config "$work/ctxgate.json" sync --permissions)
    again_s=$1 again_kb=$2 again_cpu=$3

    change 2
    echo "sync --full" >&2
    set -- $(measure "$BIN" --config "$work/ctxgate.json" sync --full)
    refull_s=$1 refull_kb=$2 refull_cpu=$3
    cat "$work/out" >&2

    awk -v n="$n" -v f="$full_s" -v fk="$full_kb" -v p="$perm_s" -v pk="$perm_kb" \
        -v pc="$perm_cpu" -v a="$acls" -v d="$dels" -v g="$again_s" -v gk="$again_kb" \
        -v gc="$again_cpu" -v r="$refull_s" -v rk="$refull_kb" -v rc="$refull_cpu" 'BEGIN {
        printf "| %d | %.1f | %.0f | %.1f (%.1f) | %.0f | %d | %d | %.1f (%.1f) | %.0f | %.1f (%.1f) | %.0f | %.1fx |\n",
               n, f, fk / 1024, p, pc, pk / 1024, a, d, g, gc, gk / 1024, r, rc, rk / 1024, r / p }'
done
