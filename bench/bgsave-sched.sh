#!/usr/bin/env bash
# Who holds the cores while basalt-server saves: a `perf sched` trace of both cores during
# a BGSAVE under the open-loop load of bench/bgsave-latency.sh (2M keys of 100 bytes,
# GET:SET 1:1 at 20k ops/s over 8 connections; server pinned to core 0 with --threads 1,
# load on core 1), then the scheduling-latency summary of the server's threads and the
# load generator, and who preempted the worker while it was runnable.
#   bench/bgsave-sched.sh BIN_DIR [seconds=8]     (needs perf and root)
# The trace stays in $OUT (default /tmp/bgsave-sched.data) for `perf sched timehist -w`.
set -u
BIN=${1:?usage: $0 BIN_DIR [seconds]}; SECS=${2:-8}
OUT=${OUT:-/tmp/bgsave-sched.data}; PORT=${PORT:-7545}
work=$(mktemp -d)
taskset -a -c 0 "$BIN/basalt-server" --port "$PORT" --bind 127.0.0.1 --save '' --dir "$work" \
  --threads 1 >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
taskset -c 1 "$BIN/basalt-bench" --port "$PORT" --clients 50 --pipeline 64 --key-pattern sequential \
  --ratio 0:1 --keyspace 2000000 --requests 2000000 --data-size 100 --quiet >/dev/null 2>&1
taskset -c 1 "$BIN/basalt-bench" --port "$PORT" --clients 8 --rate 20000 --ratio 1:1 \
  --keyspace 2000000 --key-pattern uniform --data-size 100 --quiet --warmup 1 \
  --duration $((SECS + 4)) --json "$work/r.json" >/dev/null 2>&1 &
bench=$!
sleep 2
perf sched record -a -o "$OUT" -- sleep "$SECS" >/dev/null 2>&1 &
rec=$!
sleep 1
redis-cli -p "$PORT" bgsave
wait $rec; wait $bench
echo "load p50/p99 (ms, whole run): $(jq -r '"\(.latency_ms.p50) \(.latency_ms.p99)"' "$work/r.json")"
perf sched latency -i "$OUT" --sort max 2>/dev/null | grep -E "Task|basalt-|load-"
echo "the worker preempted while runnable, by:"
perf script -i "$OUT" 2>/dev/null | grep "prev_comm=basalt-worker" | grep "prev_state=R" \
  | grep -o "next_comm=[^ ]*" | sort | uniq -c | sort -rn | head -5
