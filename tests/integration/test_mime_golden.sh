#!/usr/bin/env bash
# Golden tests for mime/: runs mime_dump (the parse in its limited child,
# exactly as the daemon does it) on every tests/data/mime/*.eml and diffs
# the dump against the .ref beside it. NAME.args, when present, holds extra
# mime_dump options for that message. One "ok NAME" / "not ok NAME" line per
# message. UPDATE=1 rewrites the .ref files instead: review each one by eye
# before committing, they must be right, not merely what the code printed.
# Each message is parsed a second time with --slices (a sink that takes
# parts as stretches of the file, as the daemon's does): the same dump must
# come out, and a few messages must give the slices they should.
#
# Then the child's limits (RULES.md 6), on messages made here: 100,000 and
# 300,000 sibling parts (GMime builds them all: about 200 and 600 MB). The
# parent must come back every time with parser_failed and a clean dump:
# memory (not under ASan, which cannot run with RLIMIT_AS), CPU time and
# wall clock; and the same limits with room to spare must not fail. Last,
# 16 parses at once from 16 threads must agree with the .ref.
set -u
SRC=${SEALPOST_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DUMP="$SRC/${BUILD:-build}/tools/mime_dump"
DATA="$SRC/tests/data/mime"
if [ ! -x "$DUMP" ]; then
    echo "not ok mime_dump - $DUMP not built (make ${BUILD:-build}/tools/mime_dump)"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for eml in "$DATA"/*.eml; do
    name=$(basename "$eml" .eml)
    ref="$DATA/$name.ref"
    args=()
    if [ -f "$DATA/$name.args" ]; then
        read -r -a args <"$DATA/$name.args"
    fi
    # the parent must survive every message: a crash here fails the test
    if ! "$DUMP" "${args[@]}" "$eml" >"$tmp/out" 2>"$tmp/err"; then
        echo "not ok mime_$name - mime_dump exited non-zero: $(head -c 300 "$tmp/err")"
        fail=1
        continue
    fi
    if grep -q '^contract:' "$tmp/out"; then
        echo "not ok mime_$name - sink contract broken: $(grep '^contract:' "$tmp/out" | head -1)"
        fail=1
        continue
    fi
    if [ "${UPDATE:-0}" = 1 ]; then
        cp "$tmp/out" "$ref"
        echo "ok mime_$name # updated"
        continue
    fi
    if [ ! -f "$ref" ]; then
        echo "not ok mime_$name - no $name.ref (run with UPDATE=1 and review it)"
        fail=1
    elif diff -u "$ref" "$tmp/out" >"$tmp/diff"; then
        echo "ok mime_$name"
    else
        echo "not ok mime_$name - dump differs from $name.ref: $(sed -n '3,12p' "$tmp/diff" | tr '\n' ' ' | head -c 400)"
        fail=1
    fi
    # The same with a sink that takes parts as stretches of the file (as
    # the daemon's does): the very same bytes must come out.
    if ! "$DUMP" --slices "${args[@]}" "$eml" >"$tmp/out" 2>"$tmp/err"; then
        echo "not ok mime_slices_$name - mime_dump exited non-zero: $(head -c 300 "$tmp/err")"
        fail=1
    elif grep -v '^slices: ' "$tmp/out" | diff -u "$ref" - >"$tmp/diff"; then
        echo "ok mime_slices_$name # $(grep '^slices: ' "$tmp/out")"
        grep '^slices: ' "$tmp/out" >"$tmp/slices_$name"
    else
        echo "not ok mime_slices_$name - dump with slices differs from $name.ref: $(sed -n '3,12p' "$tmp/diff" | tr '\n' ' ' | head -c 400)"
        fail=1
    fi
done

# Which parts are slices: a plain body and the identity-encoded parts are
# (bad-base64's text body is one); a body converted from Latin-1, base64
# and QP parts and a body with invalid UTF-8 (made valid with U+FFFD) are
# not.
for want in "plain 1" "bodies 6" "latin1 0" "bad-base64 1" "bad-qp 0" "unknown-charset 0"; do
    set -- $want
    if [ "${UPDATE:-0}" = 1 ]; then
        break
    elif [ "$(cat "$tmp/slices_$1" 2>/dev/null)" = "slices: $2" ]; then
        echo "ok mime_slices_count_$1"
    else
        echo "not ok mime_slices_count_$1 - got \"$(cat "$tmp/slices_$1" 2>/dev/null)\", want \"slices: $2\""
        fail=1
    fi
done

[ "${UPDATE:-0}" = 1 ] && exit $fail

/usr/bin/python3 - "$tmp" <<'PY'
import sys
for n in (100000, 300000):
    with open("%s/parts%d.eml" % (sys.argv[1], n), "wb") as f:
        f.write(b"From: a@example.org\nSubject: many\nMIME-Version: 1.0\n"
                b"Content-Type: multipart/mixed; boundary=m\n\n")
        f.write(b"--m\nContent-Type: text/plain\n\nx\n" * n)
        f.write(b"--m--\n")
PY

# limit_check NAME WANT_FLAGS MAX_SECONDS FILE ARGS...
limit_check() {
    local name=$1 want=$2 max=$3 file=$4
    shift 4
    local t0 t1 got
    t0=$(date +%s)
    if ! "$DUMP" "$@" "$file" >"$tmp/out" 2>"$tmp/err"; then
        echo "not ok mime_$name - mime_dump exited non-zero: $(head -c 300 "$tmp/err")"
        fail=1
        return
    fi
    t1=$(date +%s)
    got=$(sed -n 's/^flags: //p' "$tmp/out")
    if grep -q '^contract:' "$tmp/out"; then
        echo "not ok mime_$name - $(grep '^contract:' "$tmp/out" | head -1)"
        fail=1
    elif ! grep -q '^subject: ' "$tmp/out"; then
        echo "not ok mime_$name - no headers in the dump"
        fail=1
    elif [ "$got" != "$want" ]; then
        echo "not ok mime_$name - got flags \"$got\", want \"$want\""
        fail=1
    elif [ $((t1 - t0)) -gt "$max" ]; then
        echo "not ok mime_$name - took $((t1 - t0)) s, want at most $max s"
        fail=1
    else
        echo "ok mime_$name"
    fi
}

if [ -z "${SEALPOST_ASAN:-}" ] && ! echo "${BUILD:-build}" | grep -q asan; then
    limit_check limit_memory parser_failed 20 "$tmp/parts100000.eml" --memory 64M --cpu 60 --timeout 60
    limit_check limit_memory_room too_many_parts 30 "$tmp/parts100000.eml" --memory 1G --cpu 60 --timeout 60
fi
limit_check limit_cpu parser_failed 20 "$tmp/parts300000.eml" --memory 4G --cpu 1 --timeout 60
limit_check limit_wall_clock parser_failed 10 "$tmp/parts300000.eml" --memory 4G --cpu 60 --timeout 1
limit_check limit_room too_many_parts 60 "$tmp/parts300000.eml" --memory 4G --cpu 60 --timeout 60

# Also under ASan: children are started afresh (exec), not forked from
# the threaded parent, so no child inherits a lock of ASan's allocator.
threads_names="nested latin1 hostile-from-nested names"
for name in $threads_names; do
    # Generous limits: 16 children on a loaded 2-core machine (or under ASan)
    # may be slow, and this check is about agreement, not about the limits.
    if "$DUMP" --threads 16 --timeout 300 --cpu 120 "$DATA/$name.eml" >"$tmp/out" 2>/dev/null &&
        diff -q "$DATA/$name.ref" "$tmp/out" >/dev/null; then
        echo "ok mime_threads_$name"
    else
        echo "not ok mime_threads_$name - 16 parallel parses differ from $name.ref: $(grep -m1 '^contract:' "$tmp/out")"
        fail=1
    fi
done
exit $fail
