#!/usr/bin/env bash
# Server CPU time per request, side by side: basalt-server builds and redis-server, each
# pinned to core 0 (basalt with --threads 1), redis-benchmark on core 1.
#   bench/cpu-per-request.sh [runs] [pipeline] [requests] "PREP-TESTS" "COMMAND ARGS" [basalt binaries...]
# e.g. bench/cpu-per-request.sh 7 16 2000000 zadd "ZRANGE myzset 0 9"
# PREP-TESTS (a redis-benchmark -t list, 1M requests at pipeline 16) fills each server
# first; then runs alternate between the servers and the script prints, per server, the
# median of user+system CPU microseconds per request (from /proc/PID/stat, 10 ms ticks:
# use enough requests for a few seconds per run) and of requests per second.
# Why: when redis-benchmark's own core is saturated (pipeline 16 with multi-element
# replies), requests per second is capped by the client and both servers look alike;
# the CPU a server spends per request is its own cost.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; depth=${2:-16}; n=${3:-2000000}; prep=${4:-zadd}; cmd=${5:-ZRANGE myzset 0 9}
shift $(( $# < 5 ? $# : 5 ))
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/release/basalt-server)
source bench/common.sh
scratch=$(mktemp -d)
names=(); ports=(); pids=()
for b in "${bins[@]}" redis; do
  port=$(free_port); dir=$(mktemp -d -p "$scratch")
  if [ "$b" = redis ]; then
    pid=$(start_server redis "$port" "$dir")
  else
    taskset -a -c 0 "$b" --port "$port" --bind 127.0.0.1 --save '' --dir "$dir" --threads 1 \
      >"$dir/log" 2>&1 &
    pid=$!
  fi
  names+=("$(basename "$b")#${#names[@]}"); ports+=("$port"); pids+=("$pid")
done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for p in "${ports[@]}"; do
  wait_port "$p"
  taskset -c 1 redis-benchmark -p "$p" -t "$prep" -r 1000000 -c 50 -P 16 -n 1000000 -q >/dev/null 2>&1
done
read -ra words <<< "$cmd"
for _ in $(seq 1 "$runs"); do
  for i in "${!ports[@]}"; do
    t0=$(cpu_ticks "${pids[$i]}")
    rps=$(taskset -c 1 redis-benchmark -p "${ports[$i]}" -r 1000000 -c 50 -P "$depth" -n "$n" -q "${words[@]}" 2>/dev/null \
      | tr '\r' '\n' | grep -a 'requests per second' | tail -1 | sed -E 's/.*: ([0-9.]+) requests.*/\1/')
    t1=$(cpu_ticks "${pids[$i]}")
    # CPU microseconds of the run (the script divides by n)
    echo "${names[$i]} $(( (t1 - t0) * 1000000 / CLK_TCK )) $n $rps" >> "$scratch/res"
  done
done
python3 - "$scratch/res" "$cmd" "$depth" <<'PY'
import sys, statistics as st, collections
cpu = collections.defaultdict(list); rps = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, us, n, r = line.split()
    cpu[name].append(int(us) / int(n)); rps[name].append(float(r))
print(f"{sys.argv[2]}, pipeline {sys.argv[3]}, medians of {len(next(iter(cpu.values())))} runs")
print("| server | CPU µs per request | requests/s |")
print("|---|---:|---:|")
for name in cpu:
    print(f"| {name} | {st.median(cpu[name]):.3f} | {st.median(rps[name]):,.0f} |")
PY
