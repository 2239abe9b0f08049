#!/bin/sh
# fuzz.sh - run the libFuzzer targets `make fuzz` built, each for SECONDS,
# starting from tests/fuzz/corpus/<name>/ (copied to a scratch dir so the
# repository's seeds stay as they are). Prints one line per target and fails
# if any target crashed; the crashing input is kept for reproduction.
#
#   sh scripts/fuzz.sh [SECONDS] [TARGET...]     (default 60 s, every target)
#
# Environment: FUZZ_BUILD (default build/fuzz), FUZZ_ARGS (extra libFuzzer
# flags, e.g. "-jobs=2"), FUZZ_CORPUS_OUT (keep each grown corpus in
# $FUZZ_CORPUS_OUT/<name> instead of throwing it away, e.g. to measure
# coverage or to pick new seeds). A target name is what follows fuzz_.
set -u
cd "$(dirname "$0")/.." || exit 2

secs=${1:-60}
[ $# -gt 0 ] && shift
build=${FUZZ_BUILD:-build/fuzz}
bindir=$build/tests/fuzz
case $secs in
    ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got \"$secs\"" >&2; exit 2 ;;
esac

if [ $# -gt 0 ]; then
    targets=$*
else
    targets=
    for b in "$bindir"/fuzz_*; do
        [ -x "$b" ] && targets="$targets ${b##*/fuzz_}"
    done
fi
if [ -z "$targets" ]; then
    echo "fuzz.sh: no targets in $bindir; build them with \`make fuzz\`" >&2
    exit 2
fi

# UBSan in this build reports and carries on unless told to stop; a report
# must count as a crash. Leaks count too (libFuzzer's -detect_leaks).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"

# fuzz_config and fuzz_files write a file per input; on tmpfs that costs
# microseconds instead of most of the run (the targets honour TMPDIR).
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/ctxgate-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM

failed=""
for name in $targets; do
    bin=$bindir/fuzz_$name
    if [ ! -x "$bin" ]; then
        echo "fuzz.sh: $bin not built; run \`make fuzz\`" >&2
        failed="$failed $name"
        continue
    fi
    corpus=${FUZZ_CORPUS_OUT:-$scratch}/$name
    art=$build/artifacts/$name
    log=$build/logs/$name.log
    mkdir -p "$corpus" "$art" "$build/logs"
    stamp=$scratch/$name.stamp
    : >"$stamp"
    [ -d "tests/fuzz/corpus/$name" ] && cp -R "tests/fuzz/corpus/$name/." "$corpus/"
    dict=
    [ -f "tests/fuzz/dict/$name.dict" ] && dict=-dict=tests/fuzz/dict/$name.dict

    # The targets' own temp files go into the scratch dir too, so a crash
    # (no atexit) leaves nothing behind.
    # shellcheck disable=SC2086  # $dict and $FUZZ_ARGS are lists of flags
    TMPDIR=$scratch "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" $dict ${FUZZ_ARGS:-} \
        "$corpus" >"$log" 2>&1
    rc=$?

    last=$(grep -a ' cov: ' "$log" | tail -1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    status=ok
    if [ $rc -ne 0 ]; then
        status="FAILED (exit $rc, see $log)"
        failed="$failed $name"
    fi
    printf '%-14s %9s runs  %6s exec/s  cov %5s  ft %6s  corpus %5s  %s\n' "$name" \
        "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$status"
    # Inputs this run saved (earlier runs' stay in $art too).
    find "$art" -type f -newer "$stamp" | while read -r a; do
        echo "    reproduce: $bin $a"
    done
done

if [ -n "$failed" ]; then
    echo "fuzz.sh: failed:$failed" >&2
    exit 1
fi
echo "fuzz.sh: every target ran ${secs}s without a crash"
