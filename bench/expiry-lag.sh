#!/usr/bin/env bash
# Expiry lag and the latency of other clients while many keys expire at once,
# basalt-server vs redis-server 7.0.15 (issue 5: >= 99% of expired keys reclaimed within
# 1 s of their deadline with 1M volatile keys, no latency spikes from expiry).
#
# For each server (pinned to core 0; Basalt with --threads 1):
#   1. load LIVE persistent keys (live:N) and KEYS keys (vol:N) that all expire at the
#      same instant T (SET ... PXAT T), T = LEAD seconds after the load starts;
#   2. steady window before T: open-loop GETs of live keys at RATE ops/s -> p50/p99;
#   3. expiry window from T-1 s to T+WINDOW s: the same load -> p50/p99; meanwhile
#      DBSIZE is read every 0.05 s (it counts expired keys not yet reclaimed) and the
#      script reports when it fell to 1% of KEYS (lag99) and to 0 (lag100) after T.
# Nobody reads the volatile keys: only active expiry reclaims them.
#
# Usage: bench/expiry-lag.sh BIN_DIR    (release builds of basalt-server, basalt-bench)
# Env: KEYS (1000000), LIVE (100000), RATE (20000), CLIENTS (8), LEAD (20), WINDOW (8),
#      PORT_B (7550), PORT_R (7551), SERVERS ("basalt redis").
set -u
BIN=${1:?usage: $0 BIN_DIR}
KEYS=${KEYS:-1000000}; LIVE=${LIVE:-100000}; RATE=${RATE:-20000}; CLIENTS=${CLIENTS:-8}
LEAD=${LEAD:-20}; WINDOW=${WINDOW:-8}
PORT_B=${PORT_B:-7550}; PORT_R=${PORT_R:-7551}; SERVERS=${SERVERS:-basalt redis}
. "$(dirname "$0")/common.sh"
work=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
now_ms() { date +%s%3N; }
rows=()
for srv in $SERVERS; do
  dir=$work/$srv; mkdir -p "$dir"
  port=$PORT_B; [ "$srv" = redis ] && port=$PORT_R
  pid=$(start_server "$srv" "$port" "$dir"); pids+=("$pid")
  wait_port "$port" || { echo "$srv did not start" >&2; cat "$dir/log" >&2; exit 1; }
  fill=(--port "$port" --clients 50 --pipeline 64 --key-pattern sequential --duration 3600 --quiet)
  taskset -c 1 "$BIN/basalt-bench" "${fill[@]}" --ratio 0:1 --keyspace "$LIVE" \
    --requests "$LIVE" --key-prefix live: --data-size 32 >/dev/null 2>&1
  T=$(( $(now_ms) + LEAD * 1000 ))
  taskset -c 1 "$BIN/basalt-bench" "${fill[@]}" --command "SET __key__ __data__ PXAT $T" \
    --ratio 1 --keyspace "$KEYS" --requests "$KEYS" --key-prefix vol: --data-size 32 >/dev/null 2>&1
  loaded=$(redis-cli -p "$port" dbsize)
  left=$(( (T - $(now_ms)) / 1000 - 2 ))
  [ "$left" -lt 2 ] && { echo "$srv: loading took too long for LEAD=$LEAD" >&2; exit 1; }
  load=(--port "$port" --clients "$CLIENTS" --rate "$RATE" --ratio 1:0 --keyspace "$LIVE"
    --key-prefix live: --key-pattern uniform --quiet)
  taskset -c 1 "$BIN/basalt-bench" "${load[@]}" --duration "$left" --json "$dir/steady.json" >/dev/null 2>&1
  while [ "$(now_ms)" -lt $((T - 1000)) ]; do sleep 0.01; done
  taskset -c 1 "$BIN/basalt-bench" "${load[@]}" --duration $((WINDOW + 1)) \
    --json "$dir/expiry.json" >/dev/null 2>&1 &
  bench=$!
  lag99=-; lag100=-
  while [ "$(now_ms)" -lt $((T + WINDOW * 1000)) ]; do
    n=$(( $(redis-cli -p "$port" dbsize) - LIVE )); t=$(( $(now_ms) - T ))
    if [ "$t" -ge 0 ]; then
      [ "$lag99" = - ] && [ "$n" -le $((KEYS / 100)) ] && lag99=$t
      [ "$n" -le 0 ] && { lag100=$t; break; }
    fi
    sleep 0.05
  done
  wait "$bench"
  kill "$pid"; wait "$pid" 2>/dev/null
  read -r s50 s99 <<<"$(percentiles "$dir/steady.json")"
  read -r e50 e99 <<<"$(percentiles "$dir/expiry.json")"
  rows+=("$(printf '%-7s %9d %9d %10.3f %10.3f %10.3f %10.3f %10s %10s' "$srv" "$KEYS" "$loaded" \
    "$s50" "$s99" "$e50" "$e99" "$lag99" "$lag100")")
done
echo "$KEYS keys expiring at one instant, $LIVE live keys read open loop at $RATE GET/s over $CLIENTS connections; server on core 0, load on core 1"
printf '%-7s %9s %9s %10s %10s %10s %10s %10s %10s\n' server volatile dbsize 'p50 ms' 'p99 ms' \
  'exp p50' 'exp p99' 'lag99 ms' 'lag100 ms'
printf '%s\n' "${rows[@]}"
echo "(lag: ms after the deadline until DBSIZE fell to 1% of the volatile keys / to none; - = not within ${WINDOW} s)"
uptime
