#!/usr/bin/env bash
# Side-by-side redis-benchmark runs of basalt-server and redis-server (issue 2's check):
#   [EXTRA="CMD args;CMD args"] bench/redis-benchmark-pair.sh [runs] [requests-P1] [requests-P16] [tests]
# (tests: redis-benchmark's -t list, default set,get; EXTRA: custom commands run after them)
# Both servers are pinned to core 0 (basalt with --threads 1), redis-benchmark to core 1.
# Runs alternate basalt, redis, basalt, ... and the script prints the median requests/s
# of each server per test and pipeline depth, and the ratio basalt/redis.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; n1=${2:-300000}; n16=${3:-2000000}; tests=${4:-set,get}
basalt=${BASALT_BIN:-target/release/basalt-server}
[ -x "$basalt" ] || cargo build --release -p basalt-server
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
scratch=$(mktemp -d)
bport=$(free_port); rport=$(free_port)
taskset -c 0 "$basalt" --port "$bport" --threads 1 --save '' --dir "$scratch" >"$scratch/basalt.log" 2>&1 & bpid=$!
taskset -c 0 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$scratch" >"$scratch/redis.log" 2>&1 & rpid=$!
trap 'kill $bpid $rpid 2>/dev/null || true' EXIT
for p in $bport $rport; do
  for _ in $(seq 1 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
results="$scratch/results"
for depth in 1 16; do
  n=$n1; [ "$depth" = 16 ] && n=$n16
  for run in $(seq 1 "$runs"); do
    for srv in basalt redis; do
      port=$bport; [ $srv = redis ] && port=$rport
      taskset -c 1 redis-benchmark -p "$port" -t "$tests" -r 1000000 -d 64 -c 50 -P "$depth" -n "$n" -q 2>/dev/null \
        | tr '\r' '\n' | grep 'requests per second' \
        | sed -E "s/^ *([A-Z_]+).*: ([0-9.]+) requests per second.*/$srv $depth \1 \2/" >> "$results"
      # EXTRA: further commands run after the -t tests (so they find what those built),
      # separated by ';', e.g. "HGET myhash element:__rand_int__;ZRANGE myzset 0 9".
      IFS=';' read -ra extra <<< "${EXTRA:-}"
      for cmd in "${extra[@]}"; do
        read -ra words <<< "$cmd"
        taskset -c 1 redis-benchmark -p "$port" -r 1000000 -c 50 -P "$depth" -n "$n" -q "${words[@]}" 2>/dev/null \
          | tr '\r' '\n' | grep 'requests per second' \
          | sed -E "s/^ *([A-Z_]+).*: ([0-9.]+) requests per second.*/$srv $depth \1 \2/" >> "$results"
      done
    done
  done
done
echo "command: redis-benchmark -t $tests -r 1000000 -d 64 -c 50 -P {1,16} -n {$n1,$n16} -q${EXTRA:+, then $EXTRA}; $runs alternating runs"
echo "| test | pipeline | basalt-server req/s (median) | redis-server req/s (median) | ratio |"
echo "|---|---:|---:|---:|---:|"
python3 - "$results" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    srv, depth, test, rps = line.split()
    d[(test, int(depth), srv)].append(float(rps))
tests = sorted({k[0] for k in d}, key=lambda t: list(d).index((t, 1, "basalt")) if (t, 1, "basalt") in d else 0)
for depth in (1, 16):
    for test in tests:
        b = statistics.median(d[(test, depth, "basalt")]); r = statistics.median(d[(test, depth, "redis")])
        print(f"| {test} | {depth} | {b:,.0f} | {r:,.0f} | {b/r:.2f} |")
PY
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
