#!/bin/sh
# bench/sync_pg.sh - PostgreSQL -> ctxgate sync throughput.
#
# For each size in $SIZES (default "200000 1000000"): generate that many
# rows of ~1 KB English-like text with ACLs over 50 groups in a throwaway
# PostgreSQL, then measure
#   - a full `ctxgate sync`: rows/s, MB/s of body text, peak RSS, CPU time;
#   - an incremental sync after 1% of the rows changed;
#   - FTS5 alone (bench/fts5_alone.sh's method on these rows): the rows
#     written to a CSV file first (not timed), then imported by the sqlite3
#     shell in one transaction into an FTS5 table with ctxgate's tokenizer;
#     "rate vs FTS5" is our rows/s over its rows/s;
#   - the reference: COPY ... TO STDOUT (CSV) piped into the sqlite3 shell
#     importing into an FTS5 table with the same tokenizer;
# and print one markdown table row per size, with the load average seen
# just before the size's runs. OLD=DIR also runs DIR/ctxgate (another
# build, e.g. main's) on the same rows, right before ours, in a row of its
# own. Nothing here is asserted.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
OLD_BIN=${OLD:+$(realpath "$OLD/ctxgate")}
SIZES=${SIZES:-"200000 1000000"}
. bench/lib.sh
pg_bench_work syncbench
docs_tables

cat > "$work/ctxgate.json" <<EOC
{"data_dir": "data",
 "sources": [{"name": "bench", "type": "postgres",
   "conninfo": "host=$pgdir port=$PGPORT dbname=ctxtest user=postgres",
   "batch_rows": 2000,
   "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}]}
EOC

tok="tokenize = 'porter unicode61 remove_diacritics 2'"
echo "| build | rows | load | body MB | full sync s | rows/s | MB/s | peak RSS MB | CPU s | FTS5 alone s | FTS5 rows/s | rate vs FTS5 | reference s | ours/ref | 1% incremental s | full/incremental |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
    docs_fill "$n"
    mb=$($PSQL -At -c "SELECT round(sum(octet_length(body)) / 1048576.0, 1) FROM docs")
    load=$(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)

    # FTS5 alone: the same rows from a file, no PostgreSQL, no ctxgate.
    $PSQL -c "COPY (SELECT id, title, body, array_to_string(groups, ' ') FROM docs
                    ORDER BY id) TO STDOUT WITH (FORMAT csv)" >"$work/rows.csv"
    rm -f "$work/alone.db"*
    set -- $(measure sqlite3 "$work/alone.db" "PRAGMA journal_mode=WAL;" \
        "PRAGMA synchronous=NORMAL;" \
        "CREATE VIRTUAL TABLE ref USING fts5(id UNINDEXED, title, body, allow, $tok);" \
        ".mode csv" ".import $work/rows.csv ref")
    alone_s=$1
    rm -f "$work/alone.db"* "$work/rows.csv"

    rm -f "$work/ref.db"
    sqlite3 "$work/ref.db" "PRAGMA journal_mode=WAL; CREATE VIRTUAL TABLE ref USING fts5(id UNINDEXED, title, body, $tok);" >/dev/null
    printf '%s -c "COPY (SELECT id, title, body FROM docs) TO STDOUT WITH (FORMAT csv)" | sqlite3 "%s" ".mode csv" ".import /dev/stdin ref"\n' \
        "$PSQL" "$work/ref.db" > "$work/ref.sh"
    set -- $(measure sh "$work/ref.sh")
    ref_s=$1
    rm -f "$work/ref.db"*

    for bin in $OLD_BIN "$BIN"; do
        rm -rf "$work/data"
        set -- $(measure "$bin" --config "$work/ctxgate.json" sync)
        full_s=$1 rss_kb=$2 cpu_s=$3

        $PSQL -c "UPDATE docs SET body = body || ' revised', updated_at = now() WHERE id % 100 = 0"
        set -- $(measure "$bin" --config "$work/ctxgate.json" sync)
        inc_s=$1
        # Put the rows back so the next run and a larger size start from the same data.
        $PSQL -c "UPDATE docs SET body = left(body, -8) WHERE id % 100 = 0"
        rm -rf "$work/data"

        name=new
        [ "$bin" = "$BIN" ] || name=old
        awk -v b="$name" -v n="$n" -v ld="$load" -v mb="$mb" -v f="$full_s" -v r="$rss_kb" \
            -v cpu="$cpu_s" -v al="$alone_s" -v ref="$ref_s" -v inc="$inc_s" 'BEGIN {
            printf "| %s | %d | %s | %.0f | %.1f | %.0f | %.1f | %.0f | %.1f | %.1f | %.0f | %.2f | %.1f | %.2f | %.2f | %.0fx |\n",
                   b, n, ld, mb, f, n / f, mb / f, r / 1024, cpu, al, n / al, al / f, ref,
                   f / ref, inc, f / inc }'
    done
done
