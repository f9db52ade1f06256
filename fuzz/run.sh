#!/usr/bin/env bash
# Runs every libFuzzer harness ($BUILD/fuzz/fuzz_*) for SECONDS each on its
# corpus: $BUILD/corpus/NAME (kept between runs, grows) seeded from
# fuzz/seeds.sh, with fuzz/NAME.dict when there is one. Crashes, leaks,
# timeouts and out-of-memory inputs land in $BUILD/artifacts/; copy the ones
# worth keeping to tests/data/fuzz-regressions/NAME/ once fixed.
# Prints one line per harness: execs, rate, coverage, features, corpus.
# Exit status: non-zero if any harness found something.
#   FUZZ_JOBS=N   run N harnesses at once (default 1)
#   FUZZ_ONLY=re  only the harnesses whose name matches
#   FUZZ_RUNS=N   stop each harness after N executions (or SECONDS, first)
#   FUZZ_ARGS=…   extra libFuzzer flags
#   FUZZ_CORPUS=d the working corpora (default $BUILD/corpus)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-fuzz}
secs=${1:-60}
only=${FUZZ_ONLY:-.}
seeds="$BUILD/seeds"
fuzz/seeds.sh "$seeds" || exit 1
mkdir -p "$BUILD/artifacts" "$BUILD/fuzz-logs"
fail=0

run_one() {
    local bin=$1 name corpus dict log
    name=$(basename "$bin" | sed 's/^fuzz_//')
    corpus="${FUZZ_CORPUS:-$BUILD/corpus}/$name"
    mkdir -p "$corpus"
    dict=""
    [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
    # fuzz/NAME.options: extra libFuzzer flags of one harness, one line.
    local opts=""
    [ -f "fuzz/$name.options" ] && opts=$(grep -v '^#' "fuzz/$name.options" | tr '\n' ' ')
    log="$BUILD/fuzz-logs/$name.log"
    # -timeout: one input taking longer is a finding (a hang); -rss_limit_mb
    # bounds memory like the parser child's limit does.
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
        -artifact_prefix="$BUILD/artifacts/$name-" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} \
        $dict $opts ${FUZZ_ARGS:-} \
        "$corpus" "$seeds/$name" </dev/null >"$log" 2>&1
    local rc=$?
    local execs rate cov ft units
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    units=$(ls "$corpus" | wc -l)
    printf '%-10s rc=%d execs=%s exec/s=%s cov=%s ft=%s corpus=%s seconds=%s\n' \
        "$name" "$rc" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$units" "$secs"
    if [ "$rc" -ne 0 ]; then
        grep -aE 'ERROR|SUMMARY|contract|Test unit written|panic|fatal|^fuzz_[a-z]+:|in [a-z_]+ \S+\.c:' "$log" | head -30 | sed 's/^/    /'
        return 1
    fi
    return 0
}

bins=()
for b in "$BUILD"/fuzz/fuzz_*; do
    [ -x "$b" ] || continue
    basename "$b" | grep -qE "$only" || continue
    bins+=("$b")
done
jobs=${FUZZ_JOBS:-1}
if [ "$jobs" -le 1 ]; then
    for b in "${bins[@]}"; do run_one "$b" || fail=1; done
else
    pids=()
    for b in "${bins[@]}"; do
        run_one "$b" >"$BUILD/fuzz-logs/$(basename "$b").summary" &
        pids+=($!)
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
    done
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
    cat "$BUILD"/fuzz-logs/*.summary
fi
exit $fail
