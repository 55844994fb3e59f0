#!/usr/bin/env bash
# Side-by-side rate-limiting throughput of basalt-server and redis-server (issue 9):
#   bench/ratelimit-pair.sh [runs] [requests]
# - basalt-server: CL.THROTTLE key 20 100 60 1 and RL.CHECK key GCRA 20 100 60000;
# - redis-server: the same GCRA as a Lua script (bench/gcra.lua) through EVALSHA, the way
#   applications rate-limit without a native command (also run on basalt-server, for
#   reference);
# each with redis-benchmark, 50 clients, pipeline 1 and 16, keys random over 100000.
# Both servers are pinned to core 0 (basalt with --threads 1), the load to core 1. Runs
# alternate basalt, redis, basalt, ...; the script prints the medians and the ratios of
# the native commands to Redis's EVALSHA. Not run by the tests: numbers need a quiet
# machine (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; n=${2:-300000}
basalt=${BASALT_SERVER:-target/release/basalt-server}
[ -x "$basalt" ] || cargo build --release -p basalt-server
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
scratch=$(mktemp -d)
bport=${BPORT:-$(free_port)}; rport=${RPORT:-$(free_port)}
taskset -c 0 "$basalt" --port "$bport" --bind 127.0.0.1 --threads 1 --save '' --dir "$scratch" >"$scratch/basalt.log" 2>&1 & bpid=$!
taskset -c 0 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$scratch" >"$scratch/redis.log" 2>&1 & rpid=$!
trap 'kill $bpid $rpid 2>/dev/null || true; rm -rf "$scratch"' EXIT
for p in $bport $rport; do
  for _ in $(seq 1 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
# Loaded from the file on both servers: the same SHA1.
sha=""
for p in $bport $rport; do sha=$(redis-cli -p "$p" script load "$(cat bench/gcra.lua)"); done
bench() { # port depth command...
  local port=$1 depth=$2; shift 2
  taskset -c 1 redis-benchmark -p "$port" -c 50 -P "$depth" -n "$n" -r 100000 -q "$@" 2>/dev/null \
    | tr '\r' '\n' | grep 'requests per second' \
    | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/' | tail -1
}
results="$scratch/results"
for _ in $(seq 1 "$runs"); do
  for srv in basalt redis; do
    port=$bport; [ $srv = redis ] && port=$rport
    for depth in 1 16; do
      if [ $srv = basalt ]; then
        # Fresh state for each command so none of them runs on the other's keys.
        redis-cli -p "$port" flushall >/dev/null
        echo "basalt CL.THROTTLE-P$depth $(bench "$port" "$depth" CL.THROTTLE key:__rand_int__ 20 100 60 1)" >> "$results"
        redis-cli -p "$port" flushall >/dev/null
        echo "basalt RL.CHECK-GCRA-P$depth $(bench "$port" "$depth" RL.CHECK key:__rand_int__ GCRA 20 100 60000)" >> "$results"
      fi
      redis-cli -p "$port" flushall >/dev/null
      echo "$srv EVALSHA-gcra.lua-P$depth $(bench "$port" "$depth" EVALSHA "$sha" 1 key:__rand_int__ 20 100 60 1)" >> "$results"
    done
  done
done
echo "redis-benchmark -c 50 -P {1,16} -n $n -r 100000 -q <command> on key:__rand_int__"
echo "  CL.THROTTLE key 20 100 60 1 | RL.CHECK key GCRA 20 100 60000 | EVALSHA <bench/gcra.lua> 1 key 20 100 60 1"
echo "$runs alternating runs; servers on core 0 (basalt --threads 1), load on core 1"
echo "| test | basalt-server (median) | redis-server (median) |"
echo "|---|---:|---:|"
python3 - "$results" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    srv, test, v = line.split()
    if test not in order: order.append(test)
    d[(test, srv)].append(float(v))
med = {k: statistics.median(v) for k, v in d.items()}
for test in order:
    b = med.get((test, "basalt")); r = med.get((test, "redis"))
    cell = lambda x: f"{x:,.0f}" if x is not None else "-"
    print(f"| {test} | {cell(b)} | {cell(r)} |")
print()
print("| native command on basalt-server vs EVALSHA gcra.lua on redis-server | ratio |")
print("|---|---:|")
for depth in (1, 16):
    lua = med[(f"EVALSHA-gcra.lua-P{depth}", "redis")]
    for native in ("CL.THROTTLE", "RL.CHECK-GCRA"):
        print(f"| {native} P{depth} | {med[(f'{native}-P{depth}', 'basalt')] / lua:.2f} |")
PY
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
