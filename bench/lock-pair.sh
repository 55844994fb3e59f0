#!/usr/bin/env bash
# Uncontended lock acquire + release pairs per second (issue 10), basalt-server's
# LOCK.ACQUIRE/LOCK.RELEASE vs redis-server running redis-py's Lock protocol (SET NX PX,
# then its Lua compare-and-delete by EVALSHA):
#   bench/lock-pair.sh [runs] [seconds] [conns] [batch]
# Load: bench/lock_pair_load.py (each connection acquires `batch` locks of its own in one
# write, then releases them; needs redis-py installed for its release script). Both
# servers are pinned to core 0 (basalt with --threads 1), the load to core 1. Runs
# alternate basalt, redis, basalt, ...; the script prints the medians and the ratio of
# the rates, and of the servers' CPU time per pair (read from /proc, steadier when other
# work shares the cores). Not run by the tests; rates only mean something on a quiet
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; secs=${2:-5}; conns=${3:-8}; batch=${4:-32}
basalt=${BASALT_SERVER:-target/release/basalt-server}
[ -x "$basalt" ] || cargo build --release -p basalt-server
python3 -c 'import redis.lock' || { echo "redis-py is needed (its Lock release script)"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
scratch=$(mktemp -d)
bport=${BPORT:-$(free_port)}; rport=${RPORT:-$(free_port)}
taskset -c 0 "$basalt" --port "$bport" --bind 127.0.0.1 --threads 1 --save '' --appendonly no --dir "$scratch" >"$scratch/basalt.log" 2>&1 & bpid=$!
taskset -c 0 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$scratch" >"$scratch/redis.log" 2>&1 & rpid=$!
trap 'kill $bpid $rpid 2>/dev/null || true; rm -rf "$scratch"' EXIT
for p in $bport $rport; do
  for _ in $(seq 1 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
results="$scratch/results"
hz=$(getconf CLK_TCK)
# The server's CPU time so far, in clock ticks (utime + stime).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for run in $(seq 1 "$runs"); do
  for srv in basalt redis; do
    port=$bport; pid=$bpid; [ $srv = redis ] && { port=$rport; pid=$rpid; }
    t0=$(cpu_ticks "$pid")
    out=$(taskset -c 1 python3 bench/lock_pair_load.py "$port" --mode $srv --conns "$conns" \
            --batch "$batch" --seconds "$secs")
    t1=$(cpu_ticks "$pid")
    pps=$(echo "$out" | awk '{print $2}'); pairs=$(echo "$out" | awk '{print $4}')
    # Server CPU per pair: steadier than the rate when other work shares the cores.
    us=$(python3 -c "print(($t1 - $t0) * 1e6 / $hz / $pairs)")
    echo "$srv $pps $us" >> "$results"
  done
done
echo "bench/lock_pair_load.py --conns $conns --batch $batch --seconds $secs (acquire+release pairs/s)"
echo "$runs alternating runs; servers on core 0, load on core 1"
echo "| test | basalt-server (median) | redis-server (median) | basalt / redis |"
echo "|---|---:|---:|---:|"
python3 - "$results" <<'PY'
import sys, statistics, collections
rate = collections.defaultdict(list); cpu = collections.defaultdict(list)
for line in open(sys.argv[1]):
    srv, v, us = line.split()
    rate[srv].append(float(v)); cpu[srv].append(float(us))
b = statistics.median(rate["basalt"]); r = statistics.median(rate["redis"])
print(f"| acquire+release pairs/s | {b:,.0f} | {r:,.0f} | {b/r:.2f} |")
b = statistics.median(cpu["basalt"]); r = statistics.median(cpu["redis"])
print(f"| server CPU µs per pair | {b:.2f} | {r:.2f} | {r/b:.2f} (pairs per CPU second) |")
PY
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
