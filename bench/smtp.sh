#!/bin/bash
# bench/smtp.sh — sealpost's SMTP receiver against Postfix, side by side,
# on loopback (issue 3 "Benchmark"). Not a test: run it by hand, as root
# (it apt-installs its tools and starts a private Postfix instance).
#
#   sudo bench/smtp.sh            # full run, prints the table
#
# What it does, in one run:
#  1. installs Debian's postfix (smtp-source, and the peer) without letting
#     the package configure or start a system instance, and builds sealpost;
#  2. sets up, under a temp dir on the same disk for both peers:
#     - a private Postfix (own config_directory, queue_directory, log file),
#       listening only on 127.0.0.1:$PF_PORT, final destination for one
#       virtual domain whose every address lands in one Maildir; every other
#       transport is error:, so nothing can leave the machine;
#     - sealpost (`init`, one user, `serve`) on 127.0.0.1:$SP_PORT, default
#       limits and checks (DKIM/SPF on: loopback clients need no DNS);
#  3. memory per idle connection: $IDLE_CONNS sessions held open against a
#     fresh `serve`, VmRSS delta after the banner and after EHLO;
#  4. for each size and concurrency, $RUNS interleaved runs of smtp-source
#     against each peer (order alternates per run), one new SMTP session per
#     message (smtp-source's default), and prints medians and the ratio.
#     Postfix's queue is drained and `sync` run before every measured run.
#
# Knobs (environment): BENCH_RUNS (3), BENCH_SIZES ("10240 1048576"),
# BENCH_CONCS ("1 10 50"), BENCH_MSGS_SMALL (2000), BENCH_MSGS_LARGE (200),
# BENCH_IDLE_CONNS (5000), BENCH_DIR (/var/tmp), BENCH_SP_PORT (2527),
# BENCH_PF_PORT (2526), BENCH_KEEP=1 keeps the temp dir, BENCH_ONLY=
# "sealpost" or "postfix" runs one peer, BENCH_SKIP_IDLE=1, BENCH_SP_BIN=
# another sealpost binary (before/after comparisons), BENCH_FILE= a message
# file every run sends instead of smtp-source's generated plain text
# (smtp-source -F; set BENCH_SIZES to its size for the table's label, e.g.
# a base64 attachment made by bench/attach_msg.py).
#
# Paired rounds of two sealpost binaries (small changes drown in the run to
# run spread of a whole table on a shared host):
#   sudo BENCH_AB=/path/to/old/sealpost bench/smtp.sh
# runs, per size and concurrency, BENCH_AB_ROUNDS (10) rounds of one
# smtp-source run against each binary (a fresh `serve` on the same data
# dir each time, the order flipping every round) and prints the median of
# the per-round ratios new/old (new = this tree's build, or BENCH_SP_BIN).
# No Postfix and no idle test in this mode.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
SIZES=${BENCH_SIZES:-"10240 1048576"}
CONCS=${BENCH_CONCS:-"1 10 50"}
MSGS_SMALL=${BENCH_MSGS_SMALL:-2000}
MSGS_LARGE=${BENCH_MSGS_LARGE:-200}
IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
SP_PORT=${BENCH_SP_PORT:-2527}
SP_HTTP=$((SP_PORT + 1000))
PF_PORT=${BENCH_PF_PORT:-2526}
ONLY=${BENCH_ONLY:-}
PY=/usr/bin/python3
# Largest message the large runs send, for Postfix's message_size_limit.
PF_SIZE_LIMIT=$((64 * 1024 * 1024))
# Messages each binary gets before paired rounds start (BENCH_AB).
AB_WARMUP=300

say() { printf '%s\n' "$*" >&2; }
die() { say "smtp.sh: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get, and Postfix's master must start as root)"

# ---- 1. tools ----
need=()
command -v smtp-source >/dev/null || need+=(postfix)
[ -x $PY ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    say "installing: ${need[*]}"
    # "No configuration": the package writes no main.cf and starts nothing.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
fi
if [ -n "${BENCH_SP_BIN:-}" ]; then
    SP=$BENCH_SP_BIN
else
    make -C "$ROOT" -s deps >&2 # the build's own Debian packages, as `make test` does
    make -C "$ROOT" -s build/sealpost >&2
    SP="$ROOT/build/sealpost"
fi

# ---- 2. the two peers ----
TMP=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sealpost-bench.XXXXXX")
chmod 755 "$TMP"
PF="$TMP/postfix"
SPD="$TMP/sealpost"
SERVE_PID=
cleanup() {
    set +e
    [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
    [ -f "$PF/etc/main.cf" ] && postfix -c "$PF/etc" stop >/dev/null 2>&1
    if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$TMP"; else say "kept $TMP"; fi
}
trap cleanup EXIT

port_busy() { # port: whether something listens there already
    $PY -c 'import socket, sys; sys.exit(0 if socket.socket().connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

wait_port() { # port: until something answers 220 there
    local i
    for i in $(seq 1 100); do
        if $PY - "$1" <<'EOF' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
sys.exit(0 if s.recv(512).startswith(b"220") else 1)
EOF
        sleep 0.1
    done
    die "nothing answers on 127.0.0.1:$1"
}

pf_setup() {
    mkdir -p "$PF/etc" "$PF/spool" "$PF/data" "$PF/mail"
    chown postfix "$PF/data"
    chown nobody:nogroup "$PF/mail"
    sed "s/@LISTEN@/127.0.0.1:$PF_PORT/" "$ROOT/bench/postfix-master.cf" >"$PF/etc/master.cf"
    cat >"$PF/etc/main.cf" <<EOF
# Private bench instance written by bench/smtp.sh: loopback only, final
# destination for bench.test (virtual Maildir), every other transport error.
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = pf.bench.test
mydomain = bench.test
myorigin = \$myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
default_transport = error:bench instance delivers nowhere else
relay_transport = error:bench instance delivers nowhere else
local_transport = error:bench instance delivers nowhere else
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $PF/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_peername_lookup = no
message_size_limit = $PF_SIZE_LIMIT
mailbox_size_limit = 0
virtual_mailbox_limit = 0
alias_maps =
alias_database =
biff = no
maillog_file = $PF/maillog
EOF
    port_busy "$PF_PORT" && die "127.0.0.1:$PF_PORT is taken (BENCH_PF_PORT=)"
    postfix -c "$PF/etc" check >&2
    postfix -c "$PF/etc" start >&2
    wait_port "$PF_PORT"
}

pf_queue_len() {
    find "$PF/spool/incoming" "$PF/spool/active" "$PF/spool/deferred" \
        "$PF/spool/maildrop" -type f 2>/dev/null | wc -l
}

pf_drain() {
    local i
    for i in $(seq 1 1200); do
        [ "$(pf_queue_len)" = 0 ] && return 0
        sleep 0.1
    done
    die "postfix queue did not drain"
}

sp_setup() {
    mkdir -p "$SPD"
    cat >"$SPD/sealpost.conf" <<EOF
# written by bench/smtp.sh
[server]
hostname = sp.bench.test
data_dir = data
smtp_listen = 127.0.0.1:$SP_PORT
http_listen = 127.0.0.1:$SP_HTTP
public_url = http://127.0.0.1:$SP_HTTP
master_key = master.key
kdf = interactive
default_plan = bench

[mailin]
domains = mailin.bench.test
postmaster = bench
# The idle test holds $IDLE_CONNS sessions from 127.0.0.1.
max_connections = $((IDLE_CONNS + 1000))
max_connections_per_ip = $((IDLE_CONNS + 1000))

[plan bench]
# 0: no quota (the large runs store a few GB).
storage_quota = 0
EOF
    "$SP" -c "$SPD/sealpost.conf" init >/dev/null
    SP_RCPT=$(printf 'bench-password\n' | "$SP" -c "$SPD/sealpost.conf" user add bench \
        --email bench@example.org --json --password-stdin |
        $PY -c 'import json,sys; print(json.load(sys.stdin)["address"])')
}

sp_start() { # [binary]
    port_busy "$SP_PORT" && die "127.0.0.1:$SP_PORT is taken (BENCH_SP_PORT=)"
    ulimit -n $((IDLE_CONNS * 2 + 1024))
    "${1:-$SP}" -c "$SPD/sealpost.conf" serve >>"$SPD/serve.log" 2>&1 &
    SERVE_PID=$!
    wait_port "$SP_PORT"
}

sp_stop() {
    kill "$SERVE_PID"
    wait "$SERVE_PID" || true
    SERVE_PID=
}

sp_delivered() { grep -c 'status=delivered' "$SPD/serve.log" || true; }

# ---- machine facts ----
facts() {
    local dev
    dev=$(df --output=source "$TMP" | tail -1)
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- sealpost: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+dirty')"
    echo "- postfix: $(postconf -d -h mail_version)"
    echo "- nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "- memory: $(free -m | awk '/^Mem:/{print $2}') MiB; kernel $(uname -r)"
    echo "- disk: $TMP on $dev ($(df -T "$TMP" | awk 'NR==2{print $2}'), rotational=$(lsblk -ndo ROTA "$dev" 2>/dev/null || echo '?'))"
}

# ---- 3. memory per idle connection ----
idle_test() {
    sp_start
    $PY "$ROOT/bench/idle_conns.py" 127.0.0.1 "$SP_PORT" "$SERVE_PID" "$IDLE_CONNS"
    sp_stop
}

# ---- 4. throughput ----
run_one() { # peer size conc msgs -> msgs/s on stdout
    local peer=$1 size=$2 conc=$3 msgs=$4 port to before after t0 t1
    if [ "$peer" = sealpost ]; then
        port=$SP_PORT to=$SP_RCPT before=$(sp_delivered)
    else
        port=$PF_PORT to="user@bench.test"
        pf_drain
    fi
    sync
    t0=$(date +%s.%N)
    smtp-source -s "$conc" -m "$msgs" $(if [ -n "${BENCH_FILE:-}" ]; then echo -F "$BENCH_FILE"; else echo -l "$size"; fi) -M client.bench.test \
        -f sender@client.bench.test -t "$to" "127.0.0.1:$port" >&2 ||
        die "smtp-source against $peer failed (size=$size conc=$conc)"
    t1=$(date +%s.%N)
    if [ "$peer" = sealpost ]; then
        after=$(sp_delivered)
        [ $((after - before)) -eq "$msgs" ] ||
            die "sealpost logged $((after - before)) deliveries, want $msgs"
    fi
    awk -v m="$msgs" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", m / (b - a) }'
}

median() { # [printf format]
    tr ' ' '\n' | grep . | sort -g | awk -v f="${1:-%.1f}\n" '{v[NR]=$1} END {
    if (NR == 0) exit; if (NR % 2) printf f, v[(NR+1)/2]; else printf f, (v[NR/2]+v[NR/2+1])/2 }'; }

human() { [ "$1" -ge 1048576 ] && echo "$(($1 / 1048576)) MiB" || echo "$(($1 / 1024)) KiB"; }

# ---- 5. paired rounds of two sealpost binaries ----
ab_mode() {
    local old=$1 rounds=${BENCH_AB_ROUNDS:-10} size conc msgs r bin v a b
    [ -x "$old" ] || die "BENCH_AB=$old is not an executable"
    sp_setup
    echo "## Machine"
    facts
    echo "- old binary: $old"
    echo
    echo "## Paired rounds (messages/s; new = $SP)"
    echo
    # Warm-up, not counted: the first runs on a fresh data dir are slow
    # for whichever binary comes first.
    for bin in "$old" "$SP"; do
        sp_start "$bin"
        run_one sealpost 10240 1 "$AB_WARMUP" >/dev/null
        sp_stop
    done
    echo "| size | sessions | msgs/run | rounds | old (median) | new (median) | new/old (median of rounds) | new/old per round |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for size in $SIZES; do
        if [ "$size" -ge 1048576 ]; then msgs=$MSGS_LARGE; else msgs=$MSGS_SMALL; fi
        for conc in $CONCS; do
            local olds="" news="" ratios=""
            for r in $(seq 1 "$rounds"); do
                a="" b=""
                for bin in $([ $((r % 2)) = 1 ] && echo "$old $SP" || echo "$SP $old"); do
                    sp_start "$bin"
                    v=$(run_one sealpost "$size" "$conc" "$msgs")
                    sp_stop
                    if [ "$bin" = "$old" ]; then a=$v; else b=$v; fi
                    say "size=$size conc=$conc round=$r $([ "$bin" = "$old" ] && echo old || echo new)=$v msg/s"
                done
                olds="$olds $a" news="$news $b"
                ratios="$ratios $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')"
            done
            echo "| $(human "$size") | $conc | $msgs | $rounds | $(echo "$olds" | median) |" \
                "$(echo "$news" | median) | $(echo "$ratios" | median %.3f) |$ratios |"
        done
    done
    echo
    echo "Command: BENCH_AB=$old BENCH_AB_ROUNDS=$rounds BENCH_SIZES=\"$SIZES\" BENCH_CONCS=\"$CONCS\" BENCH_MSGS_SMALL=$MSGS_SMALL BENCH_MSGS_LARGE=$MSGS_LARGE bench/smtp.sh"
}

say "temp dir: $TMP"
if [ -n "${BENCH_AB:-}" ]; then
    ab_mode "$BENCH_AB"
    exit 0
fi
[ "$ONLY" = postfix ] || sp_setup
[ "$ONLY" = sealpost ] || pf_setup

echo "## Machine"
facts
echo
if [ -z "${BENCH_SKIP_IDLE:-}" ] && [ "$ONLY" != postfix ]; then
    echo "## Memory per idle connection (sealpost serve, $IDLE_CONNS sessions)"
    echo
    echo '```'
    idle_test
    echo '```'
    echo
fi

[ "$ONLY" = postfix ] || sp_start
echo "## Throughput (messages/s, median of $RUNS interleaved runs; one session per message)"
echo
echo "| size | sessions | msgs/run | sealpost | postfix | ratio | target | runs sealpost | runs postfix |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for size in $SIZES; do
    if [ "$size" -ge 1048576 ]; then msgs=$MSGS_LARGE target=1.5; else msgs=$MSGS_SMALL target=2; fi
    for conc in $CONCS; do
        sp_runs="" pf_runs=""
        for r in $(seq 1 "$RUNS"); do
            if [ $((r % 2)) = 1 ]; then order="sealpost postfix"; else order="postfix sealpost"; fi
            for peer in $order; do
                [ -n "$ONLY" ] && [ "$peer" != "$ONLY" ] && continue
                v=$(run_one "$peer" "$size" "$conc" "$msgs")
                say "size=$size conc=$conc run=$r $peer=$v msg/s"
                if [ "$peer" = sealpost ]; then sp_runs="$sp_runs $v"; else pf_runs="$pf_runs $v"; fi
            done
        done
        sp_med=$(echo "$sp_runs" | median || true)
        pf_med=$(echo "$pf_runs" | median || true)
        ratio=$(awk -v a="${sp_med:-0}" -v b="${pf_med:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        tgt="-"
        [ "$conc" -le 10 ] && tgt="≥ ${target}×"
        [ "$size" -ge 1048576 ] && tgt="≥ ${target}×"
        echo "| $(human "$size") | $conc | $msgs | ${sp_med:--} | ${pf_med:--} | $ratio | $tgt |${sp_runs} |${pf_runs} |"
    done
done
[ "$ONLY" = postfix ] || sp_stop
echo
echo "Command: BENCH_RUNS=$RUNS BENCH_SIZES=\"$SIZES\" BENCH_CONCS=\"$CONCS\" BENCH_MSGS_SMALL=$MSGS_SMALL BENCH_MSGS_LARGE=$MSGS_LARGE bench/smtp.sh"
