#!/usr/bin/env bash
# Latency of other clients while a huge hash is deleted, basalt-server vs redis-server
# 7.0.15 (issue 5: the p99 of other clients while a 10M-element hash is UNLINKed stays
# within 10 ms of steady state).
#
# For each server (pinned to core 0; Basalt with --threads 1):
#   1. build one hash of FIELDS fields (HSET big f:N v, pipelined from core 1) and LIVE
#      string keys;
#   2. steady window: open-loop GETs of the live keys at RATE ops/s for WINDOW s -> p99;
#   3. UNLINK window: the same load; 1 s in, UNLINK big (or $DELCMD) -> p99, max; the
#      UNLINK's own round trip is reported too.
#
# Usage: bench/unlink-latency.sh BIN_DIR   (release builds of basalt-server, basalt-bench)
# Env: FIELDS (10000000), LIVE (100000), RATE (20000), CLIENTS (8), WINDOW (6),
#      DELCMD (UNLINK), PORT_B (7560), PORT_R (7561), SERVERS ("basalt redis").
set -u
BIN=${1:?usage: $0 BIN_DIR}
FIELDS=${FIELDS:-10000000}; LIVE=${LIVE:-100000}; RATE=${RATE:-20000}; CLIENTS=${CLIENTS:-8}
WINDOW=${WINDOW:-6}; DELCMD=${DELCMD:-UNLINK}
PORT_B=${PORT_B:-7560}; PORT_R=${PORT_R:-7561}; SERVERS=${SERVERS:-basalt redis}
. "$(dirname "$0")/common.sh"
work=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
rows=()
for srv in $SERVERS; do
  dir=$work/$srv; mkdir -p "$dir"
  port=$PORT_B; [ "$srv" = redis ] && port=$PORT_R
  pid=$(start_server "$srv" "$port" "$dir"); pids+=("$pid")
  wait_port "$port" || { echo "$srv did not start" >&2; cat "$dir/log" >&2; exit 1; }
  fill=(--port "$port" --clients 50 --pipeline 64 --key-pattern sequential --duration 3600 --quiet)
  taskset -c 1 "$BIN/basalt-bench" "${fill[@]}" --ratio 0:1 --keyspace "$LIVE" \
    --requests "$LIVE" --key-prefix live: --data-size 32 >/dev/null 2>&1
  taskset -c 1 "$BIN/basalt-bench" "${fill[@]}" --command "HSET big __key__ __data__" --ratio 1 \
    --keyspace "$FIELDS" --requests "$FIELDS" --key-prefix f: --data-size 8 >/dev/null 2>&1
  fields=$(redis-cli -p "$port" hlen big)
  load=(--port "$port" --clients "$CLIENTS" --rate "$RATE" --ratio 1:0 --keyspace "$LIVE"
    --key-prefix live: --key-pattern uniform --quiet)
  taskset -c 1 "$BIN/basalt-bench" "${load[@]}" --warmup 1 --duration "$WINDOW" \
    --json "$dir/steady.json" >/dev/null 2>&1
  taskset -c 1 "$BIN/basalt-bench" "${load[@]}" --duration "$WINDOW" --json "$dir/unlink.json" \
    >/dev/null 2>&1 &
  bench=$!
  sleep 1
  t0=$(date +%s%N); redis-cli -p "$port" "$DELCMD" big >/dev/null; t1=$(date +%s%N)
  wait "$bench"
  kill "$pid"; wait "$pid" 2>/dev/null
  read -r s50 s99 <<<"$(percentiles "$dir/steady.json")"
  read -r u50 u99 <<<"$(percentiles "$dir/unlink.json")"
  umax=$(jq -r '.latency_ms.max // "-"' "$dir/unlink.json")
  rows+=("$(printf '%-7s %10d %10.3f %10.3f %10.3f %10.3f %10s %10.3f' "$srv" "$fields" "$s50" "$s99" \
    "$u50" "$u99" "$umax" "$(echo "($t1 - $t0) / 1000000" | bc -l)")")
done
echo "$DELCMD of a hash of $FIELDS fields while $LIVE live keys are read open loop at $RATE GET/s over $CLIENTS connections; server on core 0, load on core 1"
printf '%-7s %10s %10s %10s %10s %10s %10s %10s\n' server fields 'p50 ms' 'p99 ms' 'del p50' \
  'del p99' 'del max' "$DELCMD ms"
printf '%s\n' "${rows[@]}"
uptime
