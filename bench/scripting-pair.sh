#!/usr/bin/env bash
# Side-by-side scripting and transaction throughput of basalt-server and redis-server
# (issue 8):
#   bench/scripting-pair.sh [runs] [requests] [seconds]
# - EVALSHA of a small script (GET then INCR of one key out of 100000) with
#   redis-benchmark, pipeline 1 and 16, 50 clients;
# - MULTI + 5 INCR + EXEC with basalt-bench (50 connections, 16 transactions in flight
#   each; a `;` template sends the seven commands as one request) and, as before, with
#   bench/multi_exec_load.py (8 connections, 32 transactions per write).
# Both servers are pinned to core 0 (basalt with --threads 1), the load to core 1. Runs
# alternate basalt, redis, basalt, ...; the script prints the medians and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; n=${2:-300000}; secs=${3:-8}
basalt=${BASALT_SERVER:-target/release/basalt-server}
[ -x "$basalt" ] || cargo build --release -p basalt-server
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
scratch=$(mktemp -d)
bport=${BPORT:-$(free_port)}; rport=${RPORT:-$(free_port)}
taskset -c 0 "$basalt" --port "$bport" --threads 1 --save '' >"$scratch/basalt.log" 2>&1 & bpid=$!
taskset -c 0 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$scratch" >"$scratch/redis.log" 2>&1 & rpid=$!
trap 'kill $bpid $rpid 2>/dev/null || true' EXIT
for p in $bport $rport; do
  for _ in $(seq 1 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
script="redis.call('GET', KEYS[1]) return redis.call('INCR', KEYS[1])"
bench=${BASALT_BENCH:-target/release/basalt-bench}
[ -x "$bench" ] || cargo build --release -p basalt-bench
tx="MULTI ; INCR tx:__key__:0 ; INCR tx:__key__:1 ; INCR tx:__key__:2 ; INCR tx:__key__:3 ; INCR tx:__key__:4 ; EXEC"
for p in $bport $rport; do sha=$(redis-cli -p "$p" script load "$script"); done
results="$scratch/results"
for run in $(seq 1 "$runs"); do
  for srv in basalt redis; do
    port=$bport; [ $srv = redis ] && port=$rport
    for depth in 1 16; do
      rps=$(taskset -c 1 redis-benchmark -p "$port" -c 50 -P "$depth" -n "$n" -r 100000 -q \
              EVALSHA "$sha" 1 key:__rand_int__ 2>/dev/null | tr '\r' '\n' \
              | grep 'requests per second' | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/' | tail -1)
      echo "$srv EVALSHA-P$depth $rps" >> "$results"
    done
    tps=$(taskset -c 1 python3 bench/multi_exec_load.py "$port" --seconds "$secs" | awk '{print $2}')
    echo "$srv MULTI/EXEC-5-py $tps" >> "$results"
    # The same transactions from basalt-bench (Rust): the Python client kept both
    # servers below ~80% of their core.
    taskset -c 1 "$bench" -p "$port" -c 50 -P 16 --keyspace 10000 --duration "$secs" \
      --command "$tx" --json "$scratch/tx.json" >/dev/null 2>&1
    echo "$srv MULTI/EXEC-5 $(jq -r .ops_per_sec "$scratch/tx.json")" >> "$results"
  done
done
echo "EVALSHA: redis-benchmark -c 50 -P {1,16} -n $n -r 100000 EVALSHA <sha of: $script> 1 key:__rand_int__"
echo "MULTI/EXEC-5-py: bench/multi_exec_load.py --conns 8 --batch 32 --seconds $secs (transactions/s)"
echo "MULTI/EXEC-5: basalt-bench -c 50 -P 16 --keyspace 10000 --duration $secs --command \"$tx\" (transactions/s)"
echo "$runs alternating runs; servers on core 0, load on core 1"
echo "| test | basalt-server (median) | redis-server (median) | ratio |"
echo "|---|---:|---:|---:|"
python3 - "$results" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    srv, test, v = line.split()
    if test not in order: order.append(test)
    d[(test, srv)].append(float(v))
for test in order:
    b = statistics.median(d[(test, "basalt")]); r = statistics.median(d[(test, "redis")])
    print(f"| {test} | {b:,.0f} | {r:,.0f} | {b/r:.2f} |")
PY
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
