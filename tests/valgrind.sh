#!/usr/bin/env bash
# make valgrind: every unit test binary, then a whole local delivery and a
# vault read-back, under valgrind memcheck. Any memory error, or a definite
# leak, fails. Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --track-origins=yes)
pass=0
fail=0
check() { # name, then the command
    local name=$1
    shift
    if "$@" >"$BUILD/test-logs/valgrind-$name.log" 2>&1; then
        echo "ok valgrind_$name"
        pass=$((pass + 1))
    else
        echo "not ok valgrind_$name (see $BUILD/test-logs/valgrind-$name.log)"
        fail=$((fail + 1))
    fi
}
mkdir -p "$BUILD/test-logs"
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    check "$(basename "$t")" "${VG[@]}" "$t"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/sp.conf" <<CONF
[server]
hostname = vg.test
data_dir = data
master_key = master.key
[mailin]
domains = mailin.test
postmaster = admin
CONF
SP=("$BUILD/sealpost" -c "$tmp/sp.conf")
"${SP[@]}" init >/dev/null 2>&1
addr=$(echo "valgrind-pass-1" | "${SP[@]}" user add vg --email vg@example.org --password-stdin \
    --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])')
check deliver "${VG[@]}" "${SP[@]}" deliver --to "$addr" <tests/data/mime/nested.eml
item=$(echo "valgrind-pass-1" | "${SP[@]}" vault list vg --json --password-stdin 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
# The parse ran (the parser child is the program started afresh: under
# valgrind, the program, not valgrind).
check deliver_parsed sh -c "echo valgrind-pass-1 | ${SP[*]} vault list vg --json --password-stdin |
    python3 -c 'import json,sys; f=json.load(sys.stdin)[0][\"flags\"]; sys.exit(1 if f else 0)'"
check vault_get sh -c "echo valgrind-pass-1 | ${VG[*]} ${SP[*]} vault get vg $item --out $tmp/out --password-stdin"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
