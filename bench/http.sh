#!/bin/bash
# bench/http.sh — secure-send HTTP throughput against nginx, side by side.
#
# What it measures, in one run, for each file size (default 20 MB, 200 MB,
# 1 GB; MB = 10^6 bytes):
#   * upload: POST /api/v1/sends with the file (encrypted as it streams in,
#     fsynced before 201), UPLOADS runs, median MB/s;
#   * download: POST /s/TOKEN with the code (decrypted chunk by chunk as it
#     streams out) and the same bytes from nginx as a static file, RUNS
#     times each, interleaved (the order alternates), median MB/s of each
#     and their ratio; every download's sha256 is checked;
#   * parallel: PARALLEL downloads at once of each, aggregate MB/s (at the
#     size given by --parallel-size, default 200 MB);
#   * memory: serve's peak RSS (VmHWM from /proc/PID/status), reset with
#     clear_refs before each phase, and serve restarted for each size, so
#     the numbers can be compared across sizes;
#   * ceilings: libsodium's raw secretstream push/pull speed on this CPU
#     (bench_sscrypt.c) and the vault reader/writer on a file without HTTP
#     (bench_vault.c).
# The client is curl writing into tmpfs; its time_total is the transfer
# time, the sha256 is computed after the clock stopped.
#
# Installs what it needs on Debian (nginx, curl, the build deps) when run
# as root. nginx runs on its own random loopback port from a temp prefix
# (never the system service); sealpost runs from a temp dir with its own
# config. Everything is removed at the end.
#
# Usage: bench/http.sh [--sizes "20 200 1000"] [--runs N] [--uploads N]
#                      [--parallel N] [--parallel-size MB] [--out FILE]
# The report (markdown) goes to stdout and to --out; progress to stderr.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
SIZES="20 200 1000"
RUNS=7
UPLOADS=5
PARALLEL=4
PAR_SIZE=200
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --sizes) SIZES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --uploads) UPLOADS=$2; shift 2 ;;
    --parallel) PARALLEL=$2; shift 2 ;;
    --parallel-size) PAR_SIZE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "usage: bench/http.sh [--sizes \"20 200 1000\"] [--runs N] [--uploads N] [--parallel N] [--parallel-size MB] [--out FILE]" >&2; exit 2 ;;
    esac
done

say() { echo "# $*" >&2; }
die() { echo "bench/http.sh: $*" >&2; exit 1; }

# ---- tools ------------------------------------------------------------

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v cc >/dev/null || need+=(build-essential)
pkg-config --exists libsodium 2>/dev/null || need+=(libsodium-dev pkg-config)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}: run as root (apt-get) or install them"
    say "installing ${need[*]}"
    # A package's postinst must not start the system nginx on port 80.
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >&2
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

BIN=${SEALPOST_BIN:-$SRC/build/sealpost}
if [ -z "${SEALPOST_BIN:-}" ]; then
    if [ "$(id -u)" = 0 ] && ! pkg-config --exists libmicrohttpd gmime-3.0 2>/dev/null; then
        make -C "$SRC" deps >&2
    fi
    say "building sealpost"
    make -C "$SRC" -j"$(nproc)" build/sealpost build/libsealpost.a >&2
fi
[ -x "$BIN" ] || die "no binary at $BIN"

# ---- work dir, clean-up ----------------------------------------------

WORK=$(mktemp -d /tmp/sp-bench-http.XXXXXX)
DL=$(mktemp -d /dev/shm/sp-bench-dl.XXXXXX 2>/dev/null || mktemp -d "$WORK/dl.XXXXXX")
chmod 755 "$WORK" # nginx's workers (user www-data) read $WORK/www
SERVE_PID=""
cleanup() {
    [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
    [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null
    sleep 0.2
    rm -rf "$WORK" "$DL"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

say "compiling the ceiling helpers"
SODIUM_CFLAGS=$(pkg-config --cflags libsodium)
SODIUM_LIBS=$(pkg-config --libs libsodium)
cc -O2 -o "$WORK/bench_sscrypt" "$HERE/bench_sscrypt.c" $SODIUM_CFLAGS $SODIUM_LIBS
cc -O2 -std=c17 -D_GNU_SOURCE -I"$SRC" -o "$WORK/bench_vault" "$HERE/bench_vault.c" \
    "$SRC/build/libsealpost.a" $SODIUM_CFLAGS $SODIUM_LIBS

# ---- disk -------------------------------------------------------------

max_size=0
for s in $SIZES; do [ "$s" -gt "$max_size" ] && max_size=$s; done
# Source file, UPLOADS encrypted copies (then all but one revoked), the vault
# helper's container, with 25% to spare; the downloads go to tmpfs.
need_mb=$(( max_size * (UPLOADS + 3) * 5 / 4 ))
avail_mb=$(df -Pm /tmp | awk 'NR==2 {print $4}')
shm_mb=$(df -Pm "$DL" | awk 'NR==2 {print $4}')
say "disk: ${avail_mb} MB free in /tmp (need about ${need_mb}), ${shm_mb} MB in $DL"
SIZES_RUN=""
for s in $SIZES; do
    if [ $(( s * (UPLOADS + 3) * 5 / 4 )) -gt "$avail_mb" ] || [ $(( s * (PARALLEL + 1) )) -gt "$shm_mb" ]; then
        say "skipping ${s} MB: not enough disk"
        SKIPPED="${SKIPPED:-} $s"
    else
        SIZES_RUN="$SIZES_RUN $s"
    fi
done

# ---- nginx ------------------------------------------------------------

mkdir -p "$WORK/www" "$WORK/nginx/tmp"
NG_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
# bench/http.sh: a plain static file server, Debian's defaults for the
# things that matter here (sendfile on, tcp_nopush on, one worker per core).
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
$( [ "$(id -u)" = 0 ] && echo "user www-data;" )
events { worker_connections 256; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    types { }
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NG_PORT;
        root $WORK/www;
    }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
    || die "nginx did not start: $(cat "$WORK/nginx/error.log")"
NG_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')

# ---- sealpost ---------------------------------------------------------

SP_DIR=$WORK/sp
mkdir -p "$SP_DIR"
SP_PORT=$(free_port)
SMTP_PORT=$(free_port)
RELAY_PORT=$(free_port) # nothing listens: notifications stay queued
SP=http://127.0.0.1:$SP_PORT
cat >"$SP_DIR/sealpost.conf" <<EOF
# bench/http.sh: a throw-away instance on loopback
[server]
hostname = bench.local
data_dir = data
smtp_listen = 127.0.0.1:$SMTP_PORT
http_listen = 127.0.0.1:$SP_PORT
public_url = $SP
kdf = interactive
master_key = master.key

[mailin]
domains = mailin.bench
postmaster = bench

[outbound]
relayhost = 127.0.0.1:$RELAY_PORT
from = sealpost@bench.local

[sendlink]
max_downloads = 10000
api_rate_limit = 0
http_timeout = 10m

[plan bench]
max_file_size = $(( max_size * 2 ))M
storage_quota = 1T
code = yes
choose_expiry = yes
EOF
spc() { "$BIN" -c "$SP_DIR/sealpost.conf" "$@"; }
spc init >/dev/null 2>>"$SP_DIR/setup.log"
echo "bench-password" | spc user add bench --email bench@example.org --plan bench --json \
    --password-stdin >/dev/null 2>>"$SP_DIR/setup.log"
KEY=$(spc apikey create bench --json 2>>"$SP_DIR/setup.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

serve_start() {
    # Started directly (not through spc) so that $! is serve's own pid.
    "$BIN" -c "$SP_DIR/sealpost.conf" serve >>"$SP_DIR/serve.log" 2>&1 &
    SERVE_PID=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$SP/healthz" 2>/dev/null && return 0
        kill -0 "$SERVE_PID" 2>/dev/null || die "serve exited: $(tail -5 "$SP_DIR/serve.log")"
        sleep 0.1
    done
    die "serve did not answer /healthz"
}
serve_stop() {
    kill "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_PID=""
}
# Peak RSS since the last reset, in KiB (clear_refs 5 resets VmHWM to VmRSS).
hwm_reset() { echo 5 >"/proc/$SERVE_PID/clear_refs" 2>/dev/null || true; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$SERVE_PID/status"; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$SERVE_PID/status"; }
# CPU time (user + system, clock ticks) of serve, and of nginx's master and workers.
ticks() { cat "$@" 2>/dev/null | awk '{t += $14 + $15} END {print t + 0}'; }
sp_ticks() { ticks "/proc/$SERVE_PID/stat"; }
ng_ticks() {
    local m
    m=$(cat "$WORK/nginx/nginx.pid")
    ticks "/proc/$m/stat" $(pgrep -P "$m" | sed 's|.*|/proc/&/stat|')
}
HZ=$(getconf CLK_TCK)
# ms of CPU per GB moved: ms_per_gb TICKS BYTES
ms_per_gb() { awk -v t="$1" -v b="$2" -v hz="$HZ" 'BEGIN {printf "%.0f\n", t * 1000 / hz / (b / 1e9)}'; }

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit}; if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s–%s", lo, hi}'; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.0f\n", b / t / 1e6}'; }

# ---- transfers ----------------------------------------------------------

# upload FILE → prints "MB/s id url code"
upload() {
    local f=$1 w
    w=$(curl -sS -o "$WORK/resp.json" -w '%{http_code} %{time_total} %{size_upload}' \
        -H "Authorization: Bearer $KEY" -F "file=@$f" -F to=bob@example.org \
        -F protect=code -F max_downloads=10000 -F expires=1d "$SP/api/v1/sends")
    set -- $w
    [ "$1" = 201 ] || die "upload: HTTP $1: $(cat "$WORK/resp.json")"
    [ "$3" -ge "$(stat -c %s "$f")" ] || die "upload: only $3 bytes sent"
    python3 - "$WORK/resp.json" "$(mbps "$(stat -c %s "$f")" "$2")" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(sys.argv[2], d["id"], d["url"], d["code"])
EOF
}

# fetch sp|ng OUTFILE → prints "MB/s"; checks status, length and sha256
fetch() {
    local who=$1 out=$2 w
    if [ "$who" = sp ]; then
        w=$(curl -sS -o "$out" -w '%{http_code} %{time_total} %{size_download}' -d "code=$CODE" "$URL")
    else
        w=$(curl -sS -o "$out" -w '%{http_code} %{time_total} %{size_download}' "$NG_URL")
    fi
    set -- $w
    [ "$1" = 200 ] || die "$who download: HTTP $1"
    [ "$3" = "$BYTES" ] || die "$who download: $3 bytes, want $BYTES"
    [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$SUM" ] || die "$who download: sha256 differs"
    rm -f "$out"
    mbps "$3" "$2"
}

# parallel sp|ng → prints aggregate MB/s of PARALLEL downloads at once
parallel() {
    local who=$1 i t0 t1 pids=()
    t0=$(date +%s.%N)
    for i in $(seq "$PARALLEL"); do
        if [ "$who" = sp ]; then
            curl -sS -o "$DL/par$i" -d "code=$CODE" "$URL" &
        else
            curl -sS -o "$DL/par$i" "$NG_URL" &
        fi
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "$who parallel download failed"; done
    t1=$(date +%s.%N)
    for i in $(seq "$PARALLEL"); do
        [ "$(sha256sum "$DL/par$i" | cut -d' ' -f1)" = "$SUM" ] || die "$who parallel download $i: sha256 differs"
        rm -f "$DL/par$i"
    done
    awk -v b="$BYTES" -v n="$PARALLEL" -v t="$(echo "$t1 - $t0" | bc -l 2>/dev/null || python3 -c "print($t1 - $t0)")" \
        'BEGIN {printf "%.0f\n", b * n / t / 1e6}'
}

# ---- ceilings -----------------------------------------------------------

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say "ceiling: libsodium secretstream in memory"
SS=$("$WORK/bench_sscrypt" 512)
# For scale: the same cipher and MAC (RFC 8439 ChaCha20-Poly1305, not the
# secretstream framing) in OpenSSL, which has AVX-512 code that libsodium
# 1.0.18 lacks. Not used by sealpost; a pointer to what the CPU can do.
OSSL=""
if command -v openssl >/dev/null; then
    OSSL=$(openssl speed -evp chacha20-poly1305 -bytes 65536 -seconds 2 2>/dev/null |
        awk '/^ChaCha20-Poly1305/ {sub(/k$/, "", $2); printf "%.0f", $2 * 1000 / 1e6}')
fi
say "ceiling: vault writer/reader on a file (200 MB)"
VAULT=$("$WORK/bench_vault" "$WORK/vault.bin" 200)
rm -f "$WORK/vault.bin"

# ---- per size -------------------------------------------------------------

declare -A R
for s in $SIZES_RUN; do
    BYTES=$(( s * 1000000 ))
    F=$WORK/www/file-$s.bin
    say "size $s MB: making $F"
    head -c "$BYTES" /dev/urandom >"$F"
    chmod 644 "$F"
    SUM=$(sha256sum "$F" | cut -d' ' -f1)
    NG_URL=http://127.0.0.1:$NG_PORT/file-$s.bin

    serve_start
    R[$s,rss_idle]=$(rss)
    hwm_reset
    ups=()
    ids=()
    up_t0=$(sp_ticks)
    for i in $(seq "$UPLOADS"); do
        read -r m id url code < <(upload "$F")
        say "  upload $i: $m MB/s"
        ups+=("$m")
        ids+=("$id")
        [ "$i" = 1 ] && { URL=$url; CODE=$code; }
    done
    R[$s,hwm_up]=$(hwm)
    R[$s,up_cpu]=$(ms_per_gb $(( $(sp_ticks) - up_t0 )) $(( BYTES * UPLOADS )))
    R[$s,up]=$(printf '%s\n' "${ups[@]}" | median)
    R[$s,up_range]=$(printf '%s\n' "${ups[@]}" | minmax)
    # Keep the first send, revoke the others (their files go at once).
    for id in "${ids[@]:1}"; do
        curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $KEY" "$SP/api/v1/sends/$id"
    done

    # Warm up both (page cache, connections), verified but not counted.
    fetch sp "$DL/warm" >/dev/null
    fetch ng "$DL/warm" >/dev/null
    hwm_reset
    sps=()
    ngs=()
    sp_t0=$(sp_ticks)
    ng_t0=$(ng_ticks)
    for i in $(seq "$RUNS"); do
        if [ $((i % 2)) = 1 ]; then
            a=$(fetch sp "$DL/sp"); b=$(fetch ng "$DL/ng")
        else
            b=$(fetch ng "$DL/ng"); a=$(fetch sp "$DL/sp")
        fi
        say "  download $i: sealpost $a MB/s, nginx $b MB/s"
        sps+=("$a")
        ngs+=("$b")
    done
    # Each server is idle while the other one is measured: its ticks are its own downloads'.
    R[$s,sp_cpu]=$(ms_per_gb $(( $(sp_ticks) - sp_t0 )) $(( BYTES * RUNS )))
    R[$s,ng_cpu]=$(ms_per_gb $(( $(ng_ticks) - ng_t0 )) $(( BYTES * RUNS )))
    R[$s,sp]=$(printf '%s\n' "${sps[@]}" | median)
    R[$s,ng]=$(printf '%s\n' "${ngs[@]}" | median)
    R[$s,sp_range]=$(printf '%s\n' "${sps[@]}" | minmax)
    R[$s,ng_range]=$(printf '%s\n' "${ngs[@]}" | minmax)
    if [ "$s" = "$PAR_SIZE" ] && [ "$PARALLEL" -gt 1 ]; then
        psp=()
        png=()
        for i in 1 2 3; do
            psp+=("$(parallel sp)")
            png+=("$(parallel ng)")
            say "  parallel x$PARALLEL $i: sealpost ${psp[-1]} MB/s, nginx ${png[-1]} MB/s"
        done
        R[par,sp]=$(printf '%s\n' "${psp[@]}" | median)
        R[par,ng]=$(printf '%s\n' "${png[@]}" | median)
    fi
    R[$s,hwm_dl]=$(hwm)
    serve_stop
    # The last send goes too; the next size starts from an empty sends dir.
    rm -f "$F"
    spc send revoke "${ids[0]}" >/dev/null 2>&1 || true
done

# ---- report ---------------------------------------------------------------

CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
report() {
    echo "### Run $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Command: \`bench/http.sh --sizes \"$SIZES\" --runs $RUNS --uploads $UPLOADS --parallel $PARALLEL --parallel-size $PAR_SIZE\`"
    echo
    echo "Machine: $CPU, $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM," \
        "kernel $(uname -r); nginx $NG_VERSION; libmicrohttpd $(pkg-config --modversion libmicrohttpd 2>/dev/null || echo ?)," \
        "libsodium $(pkg-config --modversion libsodium); curl $(curl --version | awk 'NR==1 {print $2}');" \
        "sealpost $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$SRC" diff --quiet 2>/dev/null || echo +dirty)."
    echo "MB = 10^6 bytes. Client: curl into tmpfs; sha256 of every download checked." \
        "Load average before: $LOAD0; after: $(cut -d' ' -f1-3 /proc/loadavg)" \
        "(other work on the machine lowers the MB/s; it inflates the CPU-per-GB columns much less, though in a VM not to zero)."
    echo
    echo "| size | upload MB/s (median of $UPLOADS), serve CPU per GB | sealpost download MB/s (median of $RUNS) | nginx MB/s (median of $RUNS) | ratio | server CPU per GB downloaded, sealpost / nginx | serve RSS idle | peak RSS upload | peak RSS download |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for s in $SIZES_RUN; do
        ratio=$(awk -v a="${R[$s,sp]}" -v b="${R[$s,ng]}" 'BEGIN {printf "%.0f%%", 100 * a / b}')
        echo "| $s MB | ${R[$s,up]} (${R[$s,up_range]}), ${R[$s,up_cpu]} ms | ${R[$s,sp]} (${R[$s,sp_range]}) | ${R[$s,ng]} (${R[$s,ng_range]}) | $ratio | ${R[$s,sp_cpu]} ms / ${R[$s,ng_cpu]} ms |" \
            "$(( R[$s,rss_idle] / 1024 )) MiB | $(( R[$s,hwm_up] / 1024 )) MiB | $(( R[$s,hwm_dl] / 1024 )) MiB |"
    done
    if [ -n "${SKIPPED:-}" ]; then
        echo
        echo "Skipped for lack of disk:${SKIPPED} MB."
    fi
    if [ -n "${R[par,sp]:-}" ]; then
        echo
        echo "Parallel: $PARALLEL downloads of $PAR_SIZE MB at once, aggregate (median of 3):" \
            "sealpost ${R[par,sp]} MB/s, nginx ${R[par,ng]} MB/s" \
            "($(awk -v a="${R[par,sp]}" -v b="${R[par,ng]}" 'BEGIN {printf "%.0f%%", 100 * a / b}'))."
    fi
    echo
    echo "Ceilings on this CPU (one core, no HTTP; libsodium and the reader per CPU-second, best of 5):"
    echo
    echo "| what | chunk | MB/s |"
    echo "| --- | --- | --- |"
    echo "$SS" | awk '{printf "| libsodium secretstream %s (memory) | %d KiB | %s |\n", $1, $2/1024, $3}'
    echo "$VAULT" | awk -F"|" '{printf "| %s | %s | %s |\n", $1, $2, $3}'
    if [ -n "$OSSL" ]; then
        echo "| for scale: OpenSSL $(openssl version | awk '{print $2}') ChaCha20-Poly1305 AEAD (\`openssl speed -evp\`, wall clock; not used by sealpost) | 64 KiB | $OSSL |"
    fi
}
if [ -n "$OUT" ]; then report | tee "$OUT"; else report; fi
