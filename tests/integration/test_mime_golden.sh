#!/usr/bin/env bash
# Golden tests for mime/: runs mime_dump (the parse in its limited child,
# exactly as the daemon does it) on every tests/data/mime/*.eml and diffs
# the dump against the .ref beside it. NAME.args, when present, holds extra
# mime_dump options for that message. One "ok NAME" / "not ok NAME" line per
# message. UPDATE=1 rewrites the .ref files instead: review each one by eye
# before committing, they must be right, not merely what the code printed.
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
done
exit $fail
