#!/usr/bin/env bash
# SAVE time, RDB file size and load time at start for KEYS keys (100-byte values),
# basalt-server vs redis-server, each pinned to core 0, the load generator to core 1.
#
# Load time is measured two ways per restart: "ready" is the wall time from starting the
# process until PING answers +PONG (both servers answer -LOADING until the dataset is
# in; this includes exec and bind), and "log" is the server's own `DB loaded from disk:
# N seconds` line. The issue's 10M-key load comparison: `bench/rdb-save-load.sh BIN 10000000`
# (about 1.2 GB of RDB per server in WORK; 10M keys take ~2.5 GB of RAM per server).
#
# Usage: bench/rdb-save-load.sh BIN_DIR [KEYS]   (BIN_DIR holds release builds of
# basalt-server and basalt-bench; KEYS defaults to 1000000).
# Env: PORT_B (7530), PORT_R (7531), SAVES (3 SAVEs per server), LOADS (3 restarts per
# server), WORK (scratch dir, default a new temp dir, removed at the end), SERVERS
# ("basalt redis"). Results go to stdout.
set -u
B=${1:?usage: $0 BIN_DIR [KEYS]}
KEYS=${2:-1000000}
PORT_B=${PORT_B:-7530}
PORT_R=${PORT_R:-7531}
SAVES=${SAVES:-3}
LOADS=${LOADS:-3}
SERVERS=${SERVERS:-basalt redis}
if [ -n "${WORK:-}" ]; then
  work=$WORK; mkdir -p "$work"; keep=1
else
  work=$(mktemp -d); keep=0
fi
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ $keep = 0 ] && rm -rf "$work"
}
trap cleanup EXIT
for p in "$PORT_B" "$PORT_R"; do
  if ss -ltn | grep -q ":$p "; then echo "port $p busy" >&2; exit 1; fi
done
start() { # side port dir log
  if [ "$1" = basalt ]; then
    taskset -a -c 0 "$B/basalt-server" --port "$2" --bind 127.0.0.1 --save '' --dir "$3" >"$3/$4" 2>&1 &
  else
    taskset -c 0 redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly no --dir "$3" >"$3/$4" 2>&1 &
  fi
  pid=$!
}
# Waits for +PONG (not -LOADING), up to 30 minutes.
wait_ready() { for _ in $(seq 1 36000); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.05; done; return 1; }
secs() { printf '%.3f' "$(echo "$2 - $1" | bc -l)"; }
echo "keys=$KEYS value=100B; servers on core 0, loader on core 1"
for side in $SERVERS; do
  dir=$work/sb-$side; rm -rf "$dir"; mkdir -p "$dir"
  port=$([ "$side" = basalt ] && echo "$PORT_B" || echo "$PORT_R")
  start "$side" "$port" "$dir" log
  wait_ready "$port" || { echo "$side did not start" >&2; exit 1; }
  taskset -c 1 "$B/basalt-bench" --port "$port" --clients 50 --pipeline 64 --key-pattern sequential \
    --ratio 0:1 --keyspace "$KEYS" --requests "$KEYS" --data-size 100 --key-prefix key: \
    --duration 3600 > /dev/null 2>&1
  echo "$side dbsize $(redis-cli -p "$port" dbsize) used_memory $(redis-cli -p "$port" info memory | grep '^used_memory:' | tr -d '\r')"
  for run in $(seq 1 "$SAVES"); do
    t0=$(date +%s.%N); redis-cli -p "$port" save >/dev/null; t1=$(date +%s.%N)
    echo "$side save run $run: $(secs "$t0" "$t1") s, file $(stat -c %s "$dir/dump.rdb") bytes"
  done
  redis-cli -p "$port" config set rdbcompression no >/dev/null
  t0=$(date +%s.%N); redis-cli -p "$port" save >/dev/null; t1=$(date +%s.%N)
  echo "$side save rdbcompression=no: $(secs "$t0" "$t1") s, file $(stat -c %s "$dir/dump.rdb") bytes"
  redis-cli -p "$port" config set rdbcompression yes >/dev/null
  redis-cli -p "$port" save >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null; pid=
  for run in $(seq 1 "$LOADS"); do
    t0=$(date +%s.%N)
    start "$side" "$port" "$dir" log2
    wait_ready "$port" || { echo "$side did not finish loading" >&2; exit 1; }
    t1=$(date +%s.%N)
    echo "$side load run $run: ready $(secs "$t0" "$t1") s after start, dbsize $(redis-cli -p "$port" dbsize), log: $(grep -o 'DB loaded from disk: [0-9.]* seconds' "$dir/log2")"
    kill "$pid"; wait "$pid" 2>/dev/null; pid=
  done
done
uptime
