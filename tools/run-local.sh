#!/usr/bin/env bash
# run-local.sh BINARY — what `make run` does after building: a working MX on
# 127.0.0.1:2525 from the example config, in the foreground.
#
#   1. ./var/sealpost.conf: copied from etc/sealpost.conf.example if missing
#      (an existing one is never overwritten: it may hold your changes);
#   2. ./var/data: `sealpost init` if the data dir is not initialised yet;
#   3. prints the tour (README) hints, then execs `sealpost serve`: Ctrl-C
#      (SIGINT) or SIGTERM drains and stops it, SIGHUP reloads the config.
#
# Users are not created here: creating one asks for its password, which is
# yours to choose (see the hints).
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/sealpost}
VAR=var
CONF=$VAR/sealpost.conf
DATA=$VAR/data            # data_dir = data in the example, relative to $CONF
DB=$DATA/sealpost.db      # lib/db.h DB_FILE_NAME

[ -x "$BIN" ] || { echo "run-local: $BIN not built (make)" >&2; exit 1; }
mkdir -p "$VAR"
if [ ! -f "$CONF" ]; then
    cp etc/sealpost.conf.example "$CONF"
    echo "run-local: created $CONF from etc/sealpost.conf.example"
fi
"$BIN" -c "$CONF" check-config >/dev/null || { echo "run-local: fix $CONF first" >&2; exit 1; }
if [ ! -f "$DB" ]; then
    echo "run-local: initialising $DATA"
    "$BIN" -c "$CONF" init
fi

LISTEN=$(sed -n 's/^[[:space:]]*smtp_listen[[:space:]]*=[[:space:]]*//p' "$CONF" | tail -n 1)
LISTEN=${LISTEN:-127.0.0.1:2525}

cat <<HINTS

sealpost: SMTP on $LISTEN, config $CONF. In another terminal:

  export SEALPOST_CONFIG=$PWD/$CONF
  $BIN user add alice --email alice@example.org   # prints alice's Mail-in address
  swaks --server $LISTEN --to ADDRESS --attach @file.pdf
  $BIN vault list alice
  $BIN vault get alice ITEM --out /tmp/alice

  postmaster@ and abuse@ go to the user named by [mailin] postmaster
  ("admin" in the example): $BIN user add admin --email you@example.org

Ctrl-C stops (transactions in flight finish first); kill -HUP reloads the config.

HINTS
exec "$BIN" -c "$CONF" serve
