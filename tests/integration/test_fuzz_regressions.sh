#!/usr/bin/env bash
# Replays the kept fuzz findings (tests/data/fuzz-regressions/NAME/*) through
# their harness (fuzz/fuzz_NAME.c) built with a plain main
# ($BUILD/fuzz-replay/fuzz_NAME, see the Makefile), in whatever build runs
# the suite (plain or ASan): each input must pass the harness's checks
# again. Also replays each harness's seed corpus, so a harness that no
# longer runs at all shows here, not only under `make fuzz`.
# One "ok NAME" / "not ok NAME - reason" line per input (seeds: per harness).
set -u
SRC=${SEALPOST_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
cd "$SRC" || exit 1
export SEALPOST_BIN=${SEALPOST_BIN:-$SRC/$BUILD/sealpost}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "${SEALPOST_ASAN:-}" = 1 ]; then
    # GLib's and GMime's one-time caches are not ours to free.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
fi

for dir in tests/data/fuzz-regressions/*/; do
    name=$(basename "$dir")
    bin="$BUILD/fuzz-replay/fuzz_$name"
    if [ ! -x "$bin" ]; then
        echo "not ok fuzz-regression-$name - $bin not built"
        continue
    fi
    for f in "$dir"*; do
        [ -f "$f" ] || continue
        if timeout 120 "$bin" "$f" >"$tmp/out" 2>&1; then
            echo "ok fuzz-regression-$name-$(basename "$f")"
        else
            echo "not ok fuzz-regression-$name-$(basename "$f") - $(tail -c 400 "$tmp/out" | tr '\n' ' ')"
        fi
    done
done

fuzz/seeds.sh "$tmp/seeds" >/dev/null 2>&1 || echo "not ok fuzz-seeds-built - fuzz/seeds.sh failed"
for bin in "$BUILD"/fuzz-replay/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin" | sed 's/^fuzz_//')
    [ -d "$tmp/seeds/$name" ] || continue
    n=$(ls "$tmp/seeds/$name" | wc -l)
    if timeout 600 "$bin" "$tmp/seeds/$name" >"$tmp/out" 2>&1; then
        echo "ok fuzz-seeds-$name ($n inputs)"
    else
        echo "not ok fuzz-seeds-$name - $(tail -c 400 "$tmp/out" | tr '\n' ' ')"
    fi
done
