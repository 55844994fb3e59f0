#!/usr/bin/env bash
# SET throughput with appendonly no / appendfsync everysec / appendfsync always,
# basalt-server vs redis-server 7.0.15: 50 connections, pipeline 1, 64-byte values over
# 100k keys, 8 s after 1 s of warm-up. Each server pinned to core 0 (all of Basalt's
# threads, one worker thread), the load generator to core 1; servers alternate.
# Usage: bench/aof-set.sh BIN_DIR   (release builds of basalt-server and basalt-bench)
# Env: PORT_B (7510), PORT_R (7511), ROUNDS (3). Scratch data in a temp dir.
set -u
BIN=${1:?usage: $0 BIN_DIR}
PORT_B=${PORT_B:-7510}
PORT_R=${PORT_R:-7511}
ROUNDS=${ROUNDS:-3}
for p in "$PORT_B" "$PORT_R"; do
  if ss -ltn | grep -q ":$p "; then echo "port $p busy" >&2; exit 1; fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wait_port() { for _ in $(seq 1 100); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done; return 1; }
for round in $(seq 1 "$ROUNDS"); do
  for mode in no everysec always; do
    for srv in basalt redis; do
      dir=$work/$srv-$mode; rm -rf "$dir"; mkdir -p "$dir"
      if [ "$mode" = no ]; then aof=(--appendonly no); else aof=(--appendonly yes --appendfsync "$mode"); fi
      if [ $srv = basalt ]; then
        port=$PORT_B
        taskset -a -c 0 "$BIN/basalt-server" --port $port --bind 127.0.0.1 --save '' --dir "$dir" --threads 1 "${aof[@]}" >"$dir/log" 2>&1 &
      else
        port=$PORT_R
        taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --dir "$dir" "${aof[@]}" >"$dir/log" 2>&1 &
      fi
      pid=$!
      wait_port $port || { echo "$srv did not start"; kill $pid; continue; }
      res=$(taskset -c 1 "$BIN/basalt-bench" --port $port --clients 50 --ratio 0:1 --data-size 64 \
        --keyspace 100000 --duration 8 --warmup 1 2>&1 | grep -E '^(measured|SET)' | tr '\n' ' ')
      echo "round=$round appendfsync=$mode server=$srv $res"
      kill $pid; wait $pid 2>/dev/null
    done
  done
done
uptime
