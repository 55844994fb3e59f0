#!/usr/bin/env bash
# Latency of other clients and memory during BGSAVE, basalt-server vs redis-server 7.0.15
# (issue 6's targets: p99 during BGSAVE <= 2x steady state, peak memory <= 1.10x before).
#
# For each server (pinned to core 0; Basalt with --threads 1, all its threads on core 0):
#   1. load KEYS keys of VALUE bytes (sequential SETs from basalt-bench on core 1);
#   2. steady window: an open-loop GET:SET 1:1 load at RATE ops/s over CLIENTS
#      connections, uniform keys, for STEADY seconds -> p50/p99;
#   3. BGSAVE window: the same load, BGSAVE, and the window ends (basalt-bench
#      --stop-file) when INFO says rdb_bgsave_in_progress:0 -> p50/p99;
#   4. memory window: the same again with a second BGSAVE, the memory sampled every
#      0.1 s meanwhile: PSS (proportional set size, from /proc/PID/smaps_rollup) of the
#      server and its children, so Redis's forked child counts with the pages it shares
#      with its parent counted once -> peak; and this window's p99 too.
#      Why two windows: reading smaps_rollup walks the page tables of the whole process
#      (7-14 ms for a 370 MB server on the 2-core VM), on some core, holding the
#      process's mmap lock; sampled during the latency window it adds its own stalls.
# Prints one table: both servers, the p99 ratio (during / steady) and the memory ratio
# (peak during / before).
#
# Usage: bench/bgsave-latency.sh BIN_DIR   (release builds of basalt-server, basalt-bench)
# Env: KEYS (2000000), VALUE (100), RATE (20000), CLIENTS (8), STEADY (10),
#      PORT_B (7540), PORT_R (7541), SERVERS ("basalt redis"),
#      BASALT_ARGS (extra basalt-server arguments, e.g. "--save-yield-seconds 0"),
#      WORK_DIR (where the servers write their files; default a new directory under
#      $TMPDIR; e.g. one on /dev/shm to take the disk out of the measurement).
# A quiet machine with 2+ cores; nothing is asserted, the numbers go to stdout.
set -u
BIN=${1:?usage: $0 BIN_DIR}
KEYS=${KEYS:-2000000}
VALUE=${VALUE:-100}
RATE=${RATE:-20000}
CLIENTS=${CLIENTS:-8}
STEADY=${STEADY:-10}
PORT_B=${PORT_B:-7540}
PORT_R=${PORT_R:-7541}
SERVERS=${SERVERS:-basalt redis}
for p in "$PORT_B" "$PORT_R"; do
  if ss -ltn | grep -q ":$p "; then echo "port $p busy" >&2; exit 1; fi
done
work=$(mktemp -d ${WORK_DIR:+-p "$WORK_DIR"})
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/common.sh"
info() { redis-cli -p "$1" info persistence | tr -d '\r' | sed -n "s/^$2://p"; }
# PSS in kB of a process and its children (0 if gone).
pss() {
  local total=0 p v
  for p in "$1" $(pgrep -P "$1"); do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo $total
}
load_args=(--clients "$CLIENTS" --rate "$RATE" --ratio 1:1 --keyspace "$KEYS"
  --key-pattern uniform --data-size "$VALUE" --quiet)
rows=()
for srv in $SERVERS; do
  dir=$work/$srv; mkdir -p "$dir"
  port=$PORT_B; [ "$srv" = redis ] && port=$PORT_R
  extra=()
  [ "$srv" = basalt ] && read -ra extra <<< "${BASALT_ARGS:-}"
  pid=$(start_server "$srv" "$port" "$dir" "${extra[@]}")
  pids+=("$pid")
  wait_port "$port" || { echo "$srv did not start" >&2; cat "$dir/log" >&2; exit 1; }
  taskset -c 1 "$BIN/basalt-bench" --port "$port" --clients 50 --pipeline 64 \
    --key-pattern sequential --ratio 0:1 --keyspace "$KEYS" --requests "$KEYS" \
    --data-size "$VALUE" --duration 3600 --quiet >/dev/null 2>&1
  echo "$srv: $(redis-cli -p "$port" dbsize) keys loaded" >&2

  taskset -c 1 "$BIN/basalt-bench" --port "$port" "${load_args[@]}" --warmup 1 \
    --duration "$STEADY" --json "$dir/steady.json" >/dev/null 2>&1
  before=$(pss "$pid")

  # One BGSAVE under the load; $1 = sample memory (1) or not (0). Sets win50, win99,
  # peak (kB), secs, status.
  window() {
    local stop=$dir/stop bench t0 t1 m
    rm -f "$stop"
    taskset -c 1 "$BIN/basalt-bench" --port "$port" "${load_args[@]}" --warmup 1 \
      --duration 3600 --stop-file "$stop" --json "$dir/bgsave.json" >/dev/null 2>&1 &
    bench=$!
    sleep 1     # the warm-up second: the measured window starts with the snapshot
    t0=$(date +%s.%N)
    redis-cli -p "$port" bgsave >/dev/null
    peak=$before
    while :; do
      if [ "$1" = 1 ]; then m=$(pss "$pid"); [ "$m" -gt "$peak" ] && peak=$m; fi
      [ "$(info "$port" rdb_bgsave_in_progress)" = 0 ] && break
      sleep 0.1
    done
    t1=$(date +%s.%N)
    touch "$stop"
    wait "$bench"
    status=$(info "$port" rdb_last_bgsave_status)
    secs=$(echo "$t1 - $t0" | bc -l)
    read -r win50 win99 <<<"$(percentiles "$dir/bgsave.json")"
  }
  window 0
  b50=$win50 b99=$win99 bsecs=$secs bstatus=$status
  window 1
  m99=$win99
  kill "$pid"; wait "$pid" 2>/dev/null

  read -r s50 s99 <<<"$(percentiles "$dir/steady.json")"
  rows+=("$(printf '%-7s %9d %10.3f %10.3f %10.3f %10.3f %8.2fx %10d %10d %7.2fx %10.3f %8.1f %s' \
    "$srv" "$KEYS" "$s50" "$s99" "$b50" "$b99" "$(echo "$b99 / $s99" | bc -l)" \
    "$((before / 1024))" "$((peak / 1024))" "$(echo "$peak / $before" | bc -l)" \
    "$m99" "$bsecs" "$bstatus/$status")")
done
echo "keys=$KEYS value=${VALUE}B load=GET:SET 1:1 open loop ${RATE} ops/s over $CLIENTS connections; server on core 0, load on core 1"
printf '%-7s %9s %10s %10s %10s %10s %9s %10s %10s %8s %10s %8s %s\n' server keys \
  'p50 ms' 'p99 ms' 'bg p50 ms' 'bg p99 ms' 'p99 x' 'PSS MB' 'peak MB' 'mem x' \
  'PSS-p99 ms' 'bgsave s' status
printf '%s\n' "${rows[@]}"
uptime
