# lib.sh - what the benchmark scripts share, sourced from the repository
# root: the wrk script of the service benchmarks (serve_load.sh,
# serve_ab.sh), and the rows, throwaway PostgreSQL and timing of the sync
# benchmarks (sync_pg.sh, sync_odbc.sh, sync_rest.sh, perm_sync.sh,
# fts5_alone.sh).

# search_lua QUESTIONS MODE TOKEN - a wrk script that POSTs one of the
# questions (a line each), picked at random, to /v1/search as TOKEN's
# bearer, k=10, in MODE.
search_lua() {
    echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    echo "wrk.headers[\"Authorization\"] = \"Bearer $3\""
    echo 'local bodies = {'
    while IFS= read -r q; do
        printf '  [[{"query": "%s", "k": 10, "mode": "%s"}]],\n' "$q" "$2"
    done <"$1"
    echo '}'
    echo 'request = function()'
    echo '  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])'
    echo 'end'
}

# bench_vocab - the generated rows' English vocabulary (482 words, the
# commonest first), on one line.
bench_vocab() {
    tr '\n' ' ' <<'EOF' | sed 's/ $//'
the of and to in is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will
more can out other its into only some time could them these two may then do first any now
such like our over man me even most made after also did many before must through back years
where much your way well down should because each just those people how too little state
good very make world still own see men work long get here between both life being under
never day same another know while last might us great old year off come since against go
came right used take three states himself few house use during without again place american
around however home small found thought went say part once general high upon school every
does got united left number course war until always away something fact though water less
public put think almost hand enough far took head yet government system better set told
nothing night end why called didnt eyes find going look asked later knew point next program
city business give group toward young days let room president side social given present
several order national possible rather second face per among form important often things
looking early white case john become large big need four within felt along children saw best
church ever least power development light thing seemed family interest want members mind
country area others done turned although open god service certain kind problem began
different door thus help sense means whole matter perhaps itself york times law human line
above name example action company hands local show whether five history gave today either
act feet across taken past quite anything seen having death week experience body word half
really field am car words already themselves information tell together college shall money
period held keep sure free real probably seems behind cannot miss political air question
making office brought whose special major heard problems ago became federal moment study
available known result street economic boy position reason change south board individual job
areas society west close turn love community true court force full seem wife future age
wanted department voice center woman control common policy necessary following front
sometimes six girl clear further land run students provide feel party able mother music
education university child effect level stood military town short morning total outside rate
figure class art century washington north usually plan leave therefore evidence too million
sound top black strong hard various says believe type value play surface soon mean near
lines table peace modern tax road red book personal process situation minutes increase idea
english alone women gone nor living months america started longer dark private past
EOF
}

# pg_bench_work NAME - a work dir /tmp/ctxgate-NAME.XXXXXX ($work) holding
# a throwaway PostgreSQL in $work/pg ($pgdir; scripts/pg.sh), both gone
# when the script exits (cleanup, set as the EXIT trap; a script with more
# to stop replaces the trap and calls it). Sets PGPORT, and PSQL: psql as
# the superuser on database ctxtest over the unix socket, stopping at the
# first error.
pg_bench_work() {
    work=$(mktemp -d "/tmp/ctxgate-$1.XXXXXX")
    chmod 755 "$work"   # the server runs as postgres and needs to reach pg/
    pgdir=$work/pg
    trap cleanup EXIT INT TERM
    eval "$(sh scripts/pg.sh start "$pgdir")"
    PSQL="psql -X -q -v ON_ERROR_STOP=1 -h $pgdir -p $PGPORT -U postgres -d ctxtest"
}

cleanup() { sh scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$work"; }

# docs_tables - the tables of the sync benchmarks: vocab(i, w), and
# docs(id, title, body, updated_at, groups text[]) with an (updated_at, id)
# index, the incremental cursor, as a real source would have. Sets NV, the
# number of words.
docs_tables() {
    $PSQL <<SQL
CREATE TABLE vocab(i int PRIMARY KEY, w text);
INSERT INTO vocab SELECT row_number() OVER () - 1, w
    FROM unnest(string_to_array('$(bench_vocab)', ' ')) AS w;
CREATE TABLE docs(id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL,
                  updated_at timestamptz NOT NULL, groups text[] NOT NULL);
CREATE INDEX docs_cursor ON docs(updated_at, id);
SQL
    NV=$($PSQL -At -c "SELECT count(*) FROM vocab")
}

# docs_fill N [WORDS] - add rows to docs until it holds N (ids 1..N): the
# title "Document <id> <word>", a body of WORDS (190) words drawn with
# random()^2, so common words are common (about 1 KB at 190, a sentence
# every 17 words), updated_at spread over one day, and an ACL of two
# groups out of 50. VACUUM ANALYZE after.
docs_fill() {
    have=$($PSQL -At -c "SELECT count(*) FROM docs")
    [ "$have" -lt "$1" ] || return 0
    echo "generating rows $have..$1" >&2
    # 0 * i keeps the word subquery correlated, so it runs per row; 0 * j
    # keeps string_agg an aggregate of the subquery, not of the outer query.
    $PSQL -c "INSERT INTO docs
        SELECT i, 'Document ' || i || ' ' || v.a[1 + (i * 7) % $NV],
               (SELECT string_agg(v.a[1 + floor(power(random(), 2) * $NV)::int + 0 * j],
                                  CASE WHEN j % 17 = 0 THEN '. ' ELSE ' ' END)
                  FROM generate_series(1, ${2:-190} + 0 * i) j),
               timestamptz '2026-01-01' + (i % 86400) * interval '1 second',
               ARRAY['g' || (i % 50), 'g' || ((i * 7) % 50)]
        FROM generate_series($have + 1, $1) i,
             (SELECT array_agg(w ORDER BY i) AS a FROM vocab) v"
    $PSQL -c "VACUUM ANALYZE docs"
}

# measure CMD... - run CMD under /usr/bin/time, its stdout into $work/out
# and its stderr into $work/err; print "seconds peak_rss_kb cpu_seconds"
# (CMD's user + sys: wall time on a shared machine depends on its load,
# CPU time less so). A failing CMD shows its stderr and ends the script.
measure() {
    /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >"$work/out" 2>"$work/err" ||
        { cat "$work/err" >&2; exit 1; }
    awk '{ printf "%s %s %.1f\n", $1, $2, $3 + $4 }' "$work/time"
}
