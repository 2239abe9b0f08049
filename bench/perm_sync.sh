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
work=$(mktemp -d /tmp/ctxgate-permbench.XXXXXX)
chmod 755 "$work"   # the server runs as postgres and needs to reach pg/
pgdir=$work/pg
cleanup() { sh scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
eval "$(sh scripts/pg.sh start "$pgdir")"
PSQL="psql -X -q -v ON_ERROR_STOP=1 -h $pgdir -p $PGPORT -U postgres -d ctxtest"

$PSQL <<'SQL'
CREATE TABLE vocab(i int PRIMARY KEY, w text);
INSERT INTO vocab SELECT row_number() OVER () - 1, w FROM unnest(string_to_array(
'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no will more can out other its into only some time could them these two may then do first any now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three states himself few house use during without again place american around however home small found thought went say part once general high upon school every does got united left number course war until always away something fact though water less public put think almost hand enough far took head yet government system better set told nothing night end why called eyes find going look asked later knew point next program city business give group toward young days let room president side social given present several order national possible rather second face per among form important often things looking early white case john become large big need four within felt along children saw best church ever least power development light thing seemed family interest want members mind country area others done turned although open god service certain kind problem began different door thus help sense means whole matter perhaps itself york times law human line above name example action company hands local show whether five history gave today either act feet across taken past quite anything seen having death week experience body word half really field am car words already themselves information tell together college shall money period held keep sure free real probably seems behind cannot miss political air question making office brought whose special major heard problems ago became federal moment study available known result street economic boy position reason change south board individual job areas society west close turn love community true court force full seem wife future age wanted department voice center woman control common policy necessary following front sometimes six girl clear further land run students provide feel party able mother music education university child effect level stood military town short morning total outside rate figure class art century washington north usually plan leave therefore evidence too million sound top black strong hard various says believe type value play surface soon mean near lines table peace modern tax road red book personal process situation minutes increase idea english alone women gone nor living months america started longer dark private', ' ')) AS w;
CREATE TABLE docs(id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL,
                  updated_at timestamptz NOT NULL, groups text[] NOT NULL);
CREATE INDEX docs_cursor ON docs(updated_at, id);
SQL
NV=$($PSQL -At -c "SELECT count(*) FROM vocab")

cat > "$work/ctxgate.json" <<JSON
{"data_dir": "data",
 "sources": [{"name": "bench", "type": "postgres",
   "conninfo": "host=$pgdir port=$PGPORT dbname=ctxtest user=postgres",
   "batch_rows": 2000,
   "streams": [{"name": "docs", "table": "docs", "id": "id", "title": "title",
                "body": "body", "updated_at": "updated_at", "allow_groups": "groups"}]}]}
JSON

measure() { # measure CMD... -> "seconds peak_rss_kb cpu_seconds" (ctxgate's user + sys)
    /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >"$work/out" 2>"$work/err" ||
        { cat "$work/err" >&2; exit 1; }
    awk '{ printf "%s %s %.1f\n", $1, $2, $3 + $4 }' "$work/time"
}

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
    echo "generating $n rows" >&2
    # 0 * i keeps the word subquery correlated, so it runs per row; 0 * j
    # keeps string_agg an aggregate of the subquery, not of the outer query.
    $PSQL -c "INSERT INTO docs
        SELECT i, 'Document ' || i || ' ' || v.a[1 + (i * 7) % $NV],
               (SELECT string_agg(v.a[1 + floor(power(random(), 2) * $NV)::int + 0 * j], ' ')
                  FROM generate_series(1, 40 + 0 * i) j),
               timestamptz '2026-01-01' + (i % 86400) * interval '1 second',
               ARRAY['g' || (i % 50), 'g' || ((i * 7) % 50)]
        FROM generate_series(1, $n) i,
             (SELECT array_agg(w ORDER BY i) AS a FROM vocab) v"
    $PSQL -c "VACUUM ANALYZE docs"

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
