#!/usr/bin/env bash
# Runs every test and prints one summary line "N passed, N failed".
#
#   unit         build/tests/test_*          (cmocka; each test case counts)
#   integration  tests/integration/test_*.sh and test_*.py
#                (each prints "ok NAME" / "not ok NAME" lines; each line
#                 counts; a script that fails without such a line counts 1)
#
# BUILD selects the build dir (build, build-asan). TESTS_FILTER=regex runs
# only matching files. Logs of each file go to $BUILD/test-logs/.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
export SEALPOST_BIN="$PWD/$BUILD/sealpost"
export SEALPOST_SRC="$PWD"
LOGS="$BUILD/test-logs"
mkdir -p "$LOGS"
filter=${TESTS_FILTER:-.}
pass=0
fail=0
failed_names=()

count_tap() { # file log rc
    local name=$1 log=$2 rc=$3 p f
    p=$(grep -cE '^ok ' "$log" || true)
    f=$(grep -cE '^not ok ' "$log" || true)
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "no test ran" >>"$log"; fi
    pass=$((pass + p)); fail=$((fail + f))
    if [ "$f" -gt 0 ]; then
        failed_names+=("$name")
        grep -E '^not ok ' "$log" | sed "s|^|  $name: |"
    fi
    printf '%-44s %3d passed, %d failed\n' "$name" "$p" "$f"
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "$name" | grep -qE "$filter" || continue
    log="$LOGS/$name.log"
    "$t" >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    pass=$((pass + p)); fail=$((fail + f))
    if [ "$f" -gt 0 ]; then failed_names+=("$name"); grep -E '^\[  (FAILED|ERROR) +\]' "$log" | sed "s|^|  $name: |"; fi
    printf '%-44s %3d passed, %d failed\n' "$name" "$p" "$f"
done

for t in tests/integration/test_*; do
    [ -f "$t" ] || continue
    name=$(basename "$t")
    echo "$name" | grep -qE "$filter" || continue
    log="$LOGS/$name.log"
    case "$t" in
    *.py) timeout 1200 /usr/bin/python3 "$t" >"$log" 2>&1 ;;
    *.sh) timeout 1200 bash "$t" >"$log" 2>&1 ;;
    *) continue ;;
    esac
    count_tap "$name" "$log" $?
done

if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed: ${failed_names[*]} (logs in $LOGS/)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
