#!/usr/bin/env bash
# Builds the seed corpora of the fuzz harnesses from the test data:
#   $1/config  etc/*.conf.example, every [section] of it alone, small cases
#   $1/mime    tests/data/mime/*.eml, tests/data/messages/*.eml
#   $1/vault   tamper-mode recipes and raw containers (fuzz/vault_seeds.py)
#   $1/smtp    SMTP transcripts, test messages sent through DATA
#   $1/session the same transcripts (fuzz_session reads fuzz_smtp's layout)
#   $1/http    secure-send API and page requests (fuzz/net_seeds.py)
# and adds the kept regression inputs (tests/data/fuzz-regressions/NAME/).
# Usage: fuzz/seeds.sh OUTDIR
set -eu
cd "$(dirname "$0")/.."
out=${1:?usage: fuzz/seeds.sh OUTDIR}
rm -rf "$out"
mkdir -p "$out"/config "$out"/mime "$out"/vault

# config: the example whole, and each of its sections on its own.
i=0
for f in etc/*.conf.example; do
    cp "$f" "$out/config/example-$i.conf"
    awk -v dir="$out/config" -v n="$i" '
        /^\[/ { k++ } { print > (dir "/section-" n "-" k ".conf") }' "$f"
    i=$((i + 1))
done
printf '[server]\nhostname = mx.test\ninclude = inc.conf\n' >"$out/config/include.conf"
printf '[server]\ninclude = *.conf\n' >"$out/config/include-glob.conf"
printf '[plan pro]\nstorage_quota = 10G\nmtan = yes\n[relay a]\ndriver = http\nurl = x\n' \
    >"$out/config/plan-relay.conf"

# mime: every message we have.
for f in tests/data/mime/*.eml tests/data/messages/*.eml; do
    [ -f "$f" ] || continue
    cp "$f" "$out/mime/$(basename "$(dirname "$f")")-$(basename "$f")"
done

# vault: recipes for the tamper mode (byte 0 odd) and raw garbage (even).
/usr/bin/python3 fuzz/vault_seeds.py "$out/vault"

# smtp, http: transcripts and requests (placeholders, see fuzz/fuzz_net.h).
/usr/bin/python3 fuzz/net_seeds.py "$out" tests/data/messages/*.eml tests/data/mime/*.eml

for d in tests/data/fuzz-regressions/*/; do
    [ -d "$d" ] || continue
    name=$(basename "$d")
    mkdir -p "$out/$name"
    cp "$d"* "$out/$name/" 2>/dev/null || true
done
mkdir -p "$out/session"
cp "$out"/smtp/* "$out/session/"
