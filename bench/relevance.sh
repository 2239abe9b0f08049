#!/bin/sh
# relevance.sh - how well ctxgate finds the right pages of the gitdocs kit
# (../shared/eval/gitdocs, or KIT=dir): Debian's git-doc as 237 pages with
# allow lists, loaded through a real files source, and the kit's 40
# questions asked with `ctxgate eval` as user:root and user:ben, lexically,
# then by vector and hybrid with each built-in embedder (hash, and lsa
# trained on the corpus; EMBEDDERS="hash lsa", LSA_DIM=128), beside the
# kit's FTS5 baseline. Prints one markdown table. Nothing is tuned and
# nothing asserted about the figures; the script does check that score.py,
# fed ctxgate's own rankings, gives the numbers `ctxgate eval` printed.
#
#   sh bench/relevance.sh          (BUILD=build/release, KIT, KEEP=1 keeps the work dir)
#   QUESTIONS=bench/tune_gitdocs.tsv sh bench/relevance.sh
#                                  (another question set in the kit's format: our
#                                  own tuning set, so the kit's 40 stay unseen)
#   SEARCH='{"expand_terms": 0}' sh bench/relevance.sh
#                                  (the config's search section, to compare settings)
#
# Exit status: 0 done, 2 the kit or git-doc missing (and git-doc could not
# be installed), 1 anything else, including eval and score.py disagreeing.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
: "${BUILD:=build/release}" "${KIT:=$repo/../shared/eval/gitdocs}" "${KEEP:=}"
: "${QUESTIONS:=}" "${EMBEDDERS:=hash lsa}" "${LSA_DIM:=128}" "${SEARCH:=}"
K=10
USERS="user:root user:ben"

if [ ! -f "$KIT/extract.py" ] || [ ! -f "$KIT/questions.tsv" ]; then
    echo "relevance.sh: no gitdocs kit at $KIT; set KIT=dir" >&2
    exit 2
fi
KIT=$(cd "$KIT" && pwd)
[ -n "$QUESTIONS" ] || QUESTIONS=$KIT/questions.tsv
QUESTIONS=$(realpath "$QUESTIONS")
if [ ! -d /usr/share/doc/git-doc ]; then
    echo "relevance.sh: git-doc is not installed; installing it (make deps lists it)" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq git-doc >&2 ||
        [ ! -d /usr/share/doc/git-doc ]; then
        echo "relevance.sh: git-doc is not installed and could not be; run" \
            "\`apt-get install -y git-doc\` (or \`make deps\`) and try again" >&2
        exit 2
    fi
fi
make --no-print-directory BUILD="$BUILD" "$BUILD/ctxgate" >&2
bin=$repo/$BUILD/ctxgate

work=$(mktemp -d /tmp/ctxgate-relevance.XXXXXX)
if [ -z "$KEEP" ]; then
    trap 'rm -rf "$work"' EXIT INT TERM
else
    echo "relevance.sh: work dir $work is kept" >&2
fi

# The corpus, as the kit's README loads it: one JSON file per page and
# _principals.json, read by a files source.
python3 "$KIT/extract.py" "$work/gitdocs.jsonl" --files "$work/gitdocs" >&2
search=""
[ -z "$SEARCH" ] || search=" \"search\": $SEARCH,"
cat >"$work/ctxgate.json" <<EOF
{"data_dir": "./data", "embeddings": {"provider": "hash"},$search
 "sources": [{"name": "gitdocs", "type": "files", "path": "./gitdocs", "extensions": [".json"]}]}
EOF
"$bin" --config "$work/ctxgate.json" sync >&2

# A files source names a document by its path: the kit's page git-rebase is
# gitdocs:git-rebase.json. The questions, with their ids so named.
awk -F '\t' 'BEGIN { OFS = "\t" } /^#/ || !NF { next } {
    n = split($2, id, ","); s = ""
    for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") id[i] ".json"
    print $1, s }' "$QUESTIONS" >"$work/qrels.tsv"

# evaluate MODE USER - `ctxgate eval --json` into $work/MODE.USER.json, and
# with --readable (judged only by the relevant pages USER may read) into
# $work/MODE.USER.readable.json
evaluate() {
    "$bin" --config "$work/ctxgate.json" eval --qrels "$work/qrels.tsv" --source gitdocs \
        --as "$2" --mode "$1" --k $K --json >"$work/$1.$2.json" 2>"$work/$1.$2.err"
    "$bin" --config "$work/ctxgate.json" eval --qrels "$work/qrels.tsv" --source gitdocs \
        --as "$2" --mode "$1" --k $K --json --readable >"$work/$1.$2.readable.json" \
        2>>"$work/$1.$2.err"
}

for u in $USERS; do
    evaluate lexical "$u"
done
# One embedder after the other on the same store: each `embed` is a model
# switch, and eval searches with the active model.
for e in $EMBEDDERS; do
    case $e in lsa) extra=", \"dim\": $LSA_DIM" ;; *) extra="" ;; esac
    sed "s/\"provider\": \"hash\"}/\"provider\": \"$e\"$extra}/" "$work/ctxgate.json" \
        >"$work/ctxgate.$e.json"
    "$bin" --config "$work/ctxgate.$e.json" embed >&2
    for u in $USERS; do
        for m in vector hybrid; do
            evaluate $m "$u"
            mv "$work/$m.$u.json" "$work/$m-$e.$u.json"
            mv "$work/$m.$u.readable.json" "$work/$m-$e.$u.readable.json"
        done
    done
done

# score.py over a ranking file (relevant<TAB>ranked, the kit's ids): its
# found, MRR and nDCG, then leaks for USER, on one line.
kit_score() { # kit_score FILE USER
    python3 "$KIT/score.py" --as "$2" --pages "$work/gitdocs.jsonl" <"$1" 2>/dev/null |
        awk '{ v[$1] = $2 } END { print v["found@10"], v["MRR@10"], v["nDCG@10"], v["leaks"] }'
}

# recall@10 of a ranking file, which score.py does not print.
recall() {
    python3 - "$1" <<'EOF'
import sys
total = n = 0.0
for line in open(sys.argv[1], encoding="utf-8"):
    rel, _, ranked = line.rstrip("\n").partition("\t")
    rel = {x.strip() for x in rel.split(",") if x.strip()}
    top = []
    for x in ranked.split(","):
        x = x.strip()
        if x and x not in top:
            top.append(x)
    total += len(rel & set(top[:10])) / len(rel)
    n += 1
print(f"{total / n:.3f}")
EOF
}

# ctxgate's rankings in score.py's input format, the ids back in the kit's form.
rankings() { # rankings EVAL_JSON OUT
    python3 - "$1" "$QUESTIONS" >"$2" <<'EOF'
import json, sys
ev = json.load(open(sys.argv[1], encoding="utf-8"))
rel = [l.rstrip("\n").split("\t")[1] for l in open(sys.argv[2], encoding="utf-8")
       if l.strip() and not l.startswith("#")]
def page(ref):
    ref = ref.split(":", 1)[1]
    return ref[:-5] if ref.endswith(".json") else ref
for r, q in zip(rel, ev["per_question"]):
    print(r + "\t" + ",".join(page(x) for x in q["ranked"]))
EOF
}

echo "| system | mode | user | found@$K | MRR@$K | nDCG@$K | recall@$K | leaks |"
echo "|---|---|---|---|---|---|---|---|"
bad=0
for u in $USERS; do
    python3 "$KIT/baseline_fts5.py" "$work/gitdocs.jsonl" --questions "$QUESTIONS" \
        --user "$u" -k $K \
        >"$work/baseline.$u.tsv" 2>/dev/null
    set -- $(kit_score "$work/baseline.$u.tsv" "$u")
    echo "| kit FTS5 baseline (whole pages) | lexical | $u | $1 | $2 | $3 |" \
        "$(recall "$work/baseline.$u.tsv") | $4 |"
    modes=lexical
    for e in $EMBEDDERS; do
        modes="$modes vector-$e hybrid-$e"
    done
    for m in $modes; do
        j=$work/$m.$u.json
        set -- $(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))["means"]
print(" ".join(f"{m[x]:.3f}" for x in ("found", "mrr", "ndcg", "recall")))' "$j")
        ours="$1 $2 $3"
        ourrec=$4
        rankings "$j" "$work/$m.$u.tsv"
        set -- $(kit_score "$work/$m.$u.tsv" "$u")
        if [ "$ours" != "$1 $2 $3" ]; then
            echo "relevance.sh: $m $u: ctxgate eval says $ours, score.py says $1 $2 $3" >&2
            bad=1
        fi
        case $m in lexical) sys="ctxgate" ;; *) sys="ctxgate, ${m#*-} embedder" ;; esac
        echo "| $sys | ${m%-*} | $u | $1 | $2 | $3 | $ourrec | $4 |"
    done
done
python3 - "$work/lexical.user:ben.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["relevant"]
print(f"\nuser:ben may read {r['total'] - r['unreadable'] - r['missing']} of the"
      f" {r['total']} relevant pages; the {r['unreadable']} others count as misses.")
EOF

# The same answers judged only by the relevant pages each user may read
# (`ctxgate eval --readable`); questions with none are left out. The
# baseline's rankings are judged the same way here.
printf '\nJudged by what each user may read (`ctxgate eval --readable`):\n\n'
echo "| system | mode | user | questions | found@$K | MRR@$K | nDCG@$K | recall@$K |"
echo "|---|---|---|---|---|---|---|---|"
for u in $USERS; do
    python3 - "$work/baseline.$u.tsv" "$work/lexical.$u.json" "$u" <<'EOF'
import json, math, sys
ev = json.load(open(sys.argv[2], encoding="utf-8"))["per_question"]
sums, n = [0.0] * 4, 0
for line, q in zip(open(sys.argv[1], encoding="utf-8"), ev):
    gone = {x.split(":", 1)[1][:-5] for x in q["unreadable"] + q["missing"]}
    rel, _, ranked = line.rstrip("\n").partition("\t")
    rel = [x for x in rel.split(",") if x and x not in gone]
    if not rel:
        continue
    top = []
    for x in ranked.split(","):
        if x and x not in top:
            top.append(x)
    top = top[:10]
    hits = [i for i, x in enumerate(top) if x in rel]
    dcg = sum(1 / math.log2(i + 2) for i in hits)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(rel), 10)))
    for j, v in enumerate((1.0 if hits else 0.0, 1 / (hits[0] + 1) if hits else 0.0,
                           dcg / ideal, len(hits) / len(rel))):
        sums[j] += v
    n += 1
print(f"| kit FTS5 baseline (whole pages) | lexical | {sys.argv[3]} | {n} | "
      + " | ".join(f"{x / n:.3f}" for x in sums) + " |")
EOF
    for m in $modes; do
        python3 - "$work/$m.$u.readable.json" "$m" "$u" <<'EOF'
import json, sys
ev = json.load(open(sys.argv[1], encoding="utf-8"))
m = ev["means"]
mode = sys.argv[2]
name = "ctxgate" if mode == "lexical" else f"ctxgate, {mode.split('-')[1]} embedder"
print(f"| {name} | {mode.split('-')[0]} | {sys.argv[3]} | {ev['scored']} | "
      + " | ".join(f"{m[x]:.3f}" for x in ("found", "mrr", "ndcg", "recall")) + " |")
EOF
    done
done
if [ "$bad" -ne 0 ]; then
    echo "relevance.sh: ctxgate eval and score.py disagree (above)" >&2
    exit 1
fi
echo "relevance.sh: score.py, fed ctxgate's rankings, agrees with ctxgate eval" >&2
