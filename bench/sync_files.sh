#!/bin/sh
# bench/sync_files.sh - the files connector's sync of a tree of small files.
#
# For each size in $SIZES (default "20000 80000 320000 1000000"): generate
# that many Markdown files of about 300 bytes in a temp tree (1,000 to a
# folder, one _acl.json at the root, 1% with their own front matter), then
# time with /usr/bin/time:
#   - the first `ctxgate sync` (every file is new);
#   - the same sync again, nothing changed;
#   - after rewriting 1% of the files and deleting 0.1% of the others.
# Each is one row of a markdown table: seconds, files walked per second,
# ctxgate's CPU seconds (user + sys: wall time on a shared machine depends
# on its load, CPU time less so), the files stream's checkpoint as stored
# (bytes), peak RSS, what the run reported, and the 1-minute load average
# before it. Nothing here is asserted.
#
#   sh bench/sync_files.sh                       # all four sizes
#   SIZES=20000 sh bench/sync_files.sh           # one
#   BUILD=build/before sh bench/sync_files.sh    # another build's ctxgate
#   TIMEOUT=900 sh bench/sync_files.sh           # stop a sync after 900 s
#
# A sync stopped by $TIMEOUT is one row saying so, and the size's other
# syncs are skipped.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
BIN=$(realpath "$BUILD/ctxgate")
SIZES=${SIZES:-"20000 80000 320000 1000000"}
TIMEOUT=${TIMEOUT:-0}
work=$(mktemp -d "${TMPDIR:-/tmp}/ctxgate-filesbench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

cat >"$work/ctxgate.json" <<JSON
{"data_dir": "data",
 "sources": [{"name": "docs", "type": "files", "path": "tree"}]}
JSON

# gen N: the tree. File i is tree/<i/100000>/<i/1000 % 100>/f<i>.md.
gen() {
    python3 - "$work/tree" "$1" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi"
         " omicron pi rho sigma tau upsilon phi chi psi omega").split()
os.makedirs(root, exist_ok=True)
with open(os.path.join(root, "_acl.json"), "w") as f:
    f.write('{"allow": ["group:staff"]}\n')
last = None
for i in range(n):
    d = os.path.join(root, "%02d" % (i // 100000), "%02d" % (i // 1000 % 100))
    if d != last:
        os.makedirs(d, exist_ok=True)
        last = d
    body = " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(40))
    head = "---\nallow: [group:team%d]\n---\n" % (i % 50) if i % 100 == 37 else ""
    with open(os.path.join(d, "f%07d.md" % i), "w") as f:
        f.write("%s# Document %d\n\n%s\n" % (head, i, body))
PY
}

# change N: rewrite 1% of the files (i % 100 == 1), delete 0.1% (i % 1000 == 5).
change() {
    python3 - "$work/tree" "$1" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    if i % 100 != 1 and i % 1000 != 5:
        continue
    p = os.path.join(root, "%02d" % (i // 100000), "%02d" % (i // 1000 % 100),
                     "f%07d.md" % i)
    if i % 1000 == 5:
        os.unlink(p)
    else:
        with open(p, "a") as f:
            f.write("\nchanged\n")
PY
}

# measure NAME N: one sync, one table row; fails when it timed out.
measure() {
    load=$(cut -d' ' -f1 /proc/loadavg)
    rc=0
    (cd "$work" && /usr/bin/time -f "%e %M %U %S" -o "$work/time" timeout "$TIMEOUT" \
        "$BIN" --config "$work/ctxgate.json" sync >"$work/out" 2>"$work/err") || rc=$?
    if [ "$rc" = 124 ]; then
        echo "| $2 | $1 | > $TIMEOUT | | | | | stopped by TIMEOUT | $load |"
        return 1
    elif [ "$rc" != 0 ]; then
        cat "$work/err" >&2
        exit 1
    fi
    state=$(sqlite3 "$work/data/ctxgate.db" \
        "SELECT coalesce(sum(length(state)), 0) FROM sync_state WHERE stream = 'files'")
    said=$(sed -n 's/^docs: \(.* pruned\),.*/\1/p' "$work/out")
    awk -v name="$1" -v n="$2" -v st="$state" -v said="$said" -v load="$load" '{
        printf "| %d | %s | %.2f | %.0f | %.2f | %d | %.0f | %s | %s |\n",
               n, name, $1, ($1 > 0 ? n / $1 : 0), $3 + $4, st, $2 / 1024, said, load }' \
        "$work/time"
}

echo "| files | sync | seconds | files/s | CPU s | state bytes | peak RSS MB | reported | load |"
echo "|---:|---|---:|---:|---:|---:|---:|---|---:|"
for n in $SIZES; do
    rm -rf "$work/tree" "$work/data"
    echo "generating $n files" >&2
    gen "$n"
    sync
    measure "first" "$n" || continue
    measure "no change" "$n" || continue
    change "$n"
    measure "1% changed, 0.1% deleted" "$n" || continue
done
