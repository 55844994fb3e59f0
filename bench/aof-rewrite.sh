#!/usr/bin/env bash
# BGREWRITEAOF of 1M keys (64-byte values, RDB base), basalt-server vs redis-server
# 7.0.15, each pinned to core 0, the load generator to core 1. The time is from the
# command to the moment the new base file appears under its final name (both servers
# rename it only when it is complete). Automatic rewrites are off.
# Usage: bench/aof-rewrite.sh BIN_DIR   Env: PORT_B (7512), PORT_R (7513), ROUNDS (3).
set -u
BIN=${1:?usage: $0 BIN_DIR}
PORT_B=${PORT_B:-7512}
PORT_R=${PORT_R:-7513}
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wait_port() { for _ in $(seq 1 100); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done; return 1; }
now_ms() { date +%s%3N; }
for round in $(seq 1 "$ROUNDS"); do
  for srv in basalt redis; do
    dir=$work/$srv; rm -rf "$dir"; mkdir -p "$dir"
    opts=(--bind 127.0.0.1 --save '' --dir "$dir" --appendonly yes --auto-aof-rewrite-percentage 0)
    if [ $srv = basalt ]; then
      port=$PORT_B
      taskset -a -c 0 "$BIN/basalt-server" --port $port --threads 1 "${opts[@]}" >"$dir/log" 2>&1 &
    else
      port=$PORT_R
      taskset -c 0 redis-server --port $port "${opts[@]}" >"$dir/log" 2>&1 &
    fi
    pid=$!
    wait_port $port || { echo "$srv did not start"; kill $pid; continue; }
    taskset -c 1 "$BIN/basalt-bench" --port $port --clients 50 --pipeline 64 --key-pattern sequential \
      --ratio 0:1 --keyspace 1000000 --requests 1000000 --data-size 64 >/dev/null 2>&1
    keys=$(redis-cli -p $port dbsize)
    t0=$(now_ms)
    redis-cli -p $port bgrewriteaof >/dev/null
    while [ ! -e "$dir/appendonlydir/appendonly.aof.2.base.rdb" ]; do sleep 0.01; done
    t1=$(now_ms)
    base=$(stat -c %s "$dir/appendonlydir/appendonly.aof.2.base.rdb")
    echo "round=$round server=$srv keys=$keys rewrite_ms=$((t1 - t0)) base_bytes=$base"
    kill $pid; wait $pid 2>/dev/null
  done
done
uptime
