#!/bin/sh
# fts5_alone.sh - how fast FTS5 itself indexes sync_pg's rows on this
# machine, with no PostgreSQL and no ctxgate: ROWS (100000) rows of ~1 KB
# (190 words from sync_pg.sh's vocabulary, skewed the same way) as CSV in
# a file, imported by the sqlite3 shell in one transaction into an FTS5
# table with ctxgate's tokenizer, RUNS (2) times per table variant. It
# bounds what any sync into FTS5 can do here. Nothing is asserted.
set -eu
cd "$(dirname "$0")/.."
: "${ROWS:=100000}" "${RUNS:=2}"
work=$(mktemp -d /tmp/ctxgate-fts5.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# The vocabulary of sync_pg.sh's rows.
. bench/lib.sh
bench_vocab | tr ' ' '\n' >"$work/vocab"
awk -v n="$ROWS" 'NR == FNR { w[nv++] = $0; next } END {
    srand(42)
    for (i = 1; i <= n; i++) {
        b = ""
        for (j = 1; j <= 190; j++)
            b = b w[int(rand() ^ 2 * nv)] (j == 190 ? "" : j % 17 == 0 ? ". " : " ")
        printf "%d,\"Document %d %s\",\"%s\",\"g%d g%d\"\n", i, i, w[(i * 7) % nv], b, i % 50, (i * 7) % 50
    } }' "$work/vocab" /dev/null >"$work/rows.csv"

tok="tokenize = 'porter unicode61 remove_diacritics 2'"
variant() { # variant NAME CREATE-OPTIONS [SQL after create] [SQL after import]
    for r in $(seq "$RUNS"); do
        rm -f "$work/t.db"*
        s=$( { /usr/bin/time -f "%e" sqlite3 "$work/t.db" "PRAGMA journal_mode=WAL;" \
                 "PRAGMA synchronous=NORMAL;" \
                 "CREATE VIRTUAL TABLE ref USING fts5(id UNINDEXED, title, body, allow$2, $tok);" \
                 ${3:+"$3"} ".mode csv" ".import $work/rows.csv ref" ${4:+"$4"} >/dev/null; } 2>&1 |
               tail -1)
        awk -v v="$1" -v r="$r" -v s="$s" -v n="$ROWS" -v b="$(stat -c %s "$work/t.db")" \
            'BEGIN { printf "| %s | %d | %.2f | %.0f | %.0f |\n", v, r, s, n / s, b / 1048576 }'
    done
}
echo "| table | run | seconds | rows/s | file MB |"
echo "|---|---:|---:|---:|---:|"
variant "as ctxgate's (full detail, content kept)" ""
variant "merges deferred (automerge 0, then optimize)" "" \
    "INSERT INTO ref(ref, rank) VALUES('automerge', 0); INSERT INTO ref(ref, rank) VALUES('crisismerge', 1000);" \
    "INSERT INTO ref(ref) VALUES('optimize');"
variant "detail=column, content=''" ", detail=column, content=''"
