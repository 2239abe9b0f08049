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
work=$(mktemp -d /tmp/ctxgate-syncbench.XXXXXX)
chmod 755 "$work"   # the server runs as postgres and needs to reach pg/
pgdir=$work/pg
cleanup() { sh scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
eval "$(sh scripts/pg.sh start "$pgdir")"
PSQL="psql -X -q -v ON_ERROR_STOP=1 -h $pgdir -p $PGPORT -U postgres -d ctxtest"

# A small English vocabulary; random()^2 skews it so common words are common.
$PSQL <<'SQL'
CREATE TABLE vocab(i int PRIMARY KEY, w text);
INSERT INTO vocab SELECT row_number() OVER () - 1, w FROM unnest(string_to_array(
'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no will more can out other its into only some time could them these two may then do first any now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three states himself few house use during without again place american around however home small found thought went say part once general high upon school every does got united left number course war until always away something fact though water less public put think almost hand enough far took head yet government system better set told nothing night end why called didnt eyes find going look asked later knew point next program city business give group toward young days let room president side social given present several order national possible rather second face per among form important often things looking early white case john become large big need four within felt along children saw best church ever least power development light thing seemed family interest want members mind country area others done turned although open god service certain kind problem began different door thus help sense means whole matter perhaps itself york times law human line above name example action company hands local show whether five history gave today either act feet across taken past quite anything seen having death week experience body word half really field am car words already themselves information tell together college shall money period held keep sure free real probably seems behind cannot miss political air question making office brought whose special major heard problems ago became federal moment study available known result street economic boy position reason change south board individual job areas society west close turn love community true court force full seem wife future age wanted department voice center woman control common policy necessary following front sometimes six girl clear further land run students provide feel party able mother music education university child effect level stood military town short morning total outside rate figure class art century washington north usually plan leave therefore evidence too million sound top black strong hard various says believe type value play surface soon mean near lines table peace modern tax road red book personal process situation minutes increase idea english alone women gone nor living months america started longer dark private past', ' ')) AS w;
CREATE TABLE docs(id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL,
                  updated_at timestamptz NOT NULL, groups text[] NOT NULL);
-- The incremental cursor is (updated_at, id): index it as a real source would.
CREATE INDEX docs_cursor ON docs(updated_at, id);
SQL
NV=$($PSQL -At -c "SELECT count(*) FROM vocab")

cat > "$work/ctxgate.json" <<EOF
{"data_dir": "data",
 "sources": [{"name": "bench", "type": "postgres",
   "conninfo": "host=$pgdir port=$PGPORT dbname=ctxtest user=postgres",
   "batch_rows": 2000,
   "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}]}
EOF

measure() { # measure CMD... -> "seconds peak_rss_kb" on stdout
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" ||
        { cat "$work/err" >&2; exit 1; }
    cat "$work/time"
}

echo "| rows | body MB | full sync s | rows/s | MB/s | peak RSS MB | reference s | ours/ref | 1% incremental s | full/incremental |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
    have=$($PSQL -At -c "SELECT count(*) FROM docs")
    if [ "$have" -lt "$n" ]; then
        echo "generating rows $have..$n" >&2
        # 0 * i keeps the word subquery correlated, so it runs per row.
        $PSQL -c "INSERT INTO docs
            SELECT i, 'Document ' || i || ' ' || v.a[1 + (i * 7) % $NV],
                   (SELECT string_agg(v.a[1 + floor(power(random(), 2) * $NV)::int],
                                      CASE WHEN j % 17 = 0 THEN '. ' ELSE ' ' END)
                      FROM generate_series(1, 190 + 0 * i) j),
                   timestamptz '2026-01-01' + (i % 86400) * interval '1 second',
                   ARRAY['g' || (i % 50), 'g' || ((i * 7) % 50)]
            FROM generate_series($have + 1, $n) i,
                 (SELECT array_agg(w ORDER BY i) AS a FROM vocab) v"
        $PSQL -c "VACUUM ANALYZE docs"
    fi
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
