#!/usr/bin/env bash
# Jobs pushed + fetched + acked per second (issue 11): basalt-server's JOB.* vs BullMQ on
# redis-server 7.0.15, the same job count and payload:
#   bench/jobs-pair.sh [runs] [jobs] [payload_bytes] [concurrency]
# Load: bench/jobs_pair_load.mjs (Node; ioredis and bullmq from tests/clients/node, run
# `npm ci` there first). Each run pushes all jobs, then processes them all; the rate is
# jobs / (push time + process time). Both servers are pinned to core 0 (basalt with
# --threads 1, persistence off on both), the load to core 1. Runs alternate basalt,
# basalt-pipe, basalt-batch, basalt-rust, bullmq (the modes: bench/jobs_pair_load.mjs);
# the script prints the medians and the ratios, and the servers' CPU time per job (read
# from /proc, steadier when other work shares the cores). Mode
# basalt-rust is basalt-batch's workload driven by `basalt-bench jobs` (Rust, crates/bench/
# src/jobs.rs) instead of Node: the Node generator saturates its core before Basalt's
# server does, so only this mode shows Basalt's server-bound rate (its process time ends
# at the last ACK, without the up-to-1 s BLOCK tail of loops left waiting on the empty
# queue). Not run by the tests; rates only mean something on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; jobs=${2:-20000}; size=${3:-100}; conc=${4:-16}
basalt=${BASALT_SERVER:-target/release/basalt-server}
[ -x "$basalt" ] || cargo build --release -p basalt-server
bench=${BASALT_BENCH:-$(dirname "$basalt")/basalt-bench}
[ -x "$bench" ] || { cargo build --release -p basalt-bench; bench=${CARGO_TARGET_DIR:-target}/release/basalt-bench; }
[ -d tests/clients/node/node_modules/bullmq ] || (cd tests/clients/node && npm ci --ignore-scripts --no-audit --no-fund)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
scratch=$(mktemp -d)
bport=${BPORT:-$(free_port)}; rport=${RPORT:-$(free_port)}
taskset -a -c 0 "$basalt" --port "$bport" --bind 127.0.0.1 --threads 1 --save '' --appendonly no --dir "$scratch" >"$scratch/basalt.log" 2>&1 & bpid=$!
taskset -c 0 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$scratch" >"$scratch/redis.log" 2>&1 & rpid=$!
trap 'kill $bpid $rpid 2>/dev/null || true; rm -rf "$scratch"' EXIT
for p in $bport $rport; do
  for _ in $(seq 1 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
results="$scratch/results"
hz=$(getconf CLK_TCK)
# The server's CPU time so far, in clock ticks (utime + stime).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq 1 "$runs"); do
  for mode in basalt basalt-pipe basalt-batch basalt-rust bullmq; do
    port=$bport; pid=$bpid; [ $mode = bullmq ] && { port=$rport; pid=$rpid; }
    t0=$(cpu_ticks "$pid")
    if [ $mode = basalt-rust ]; then
      out=$(taskset -c 1 "$bench" jobs --addr "127.0.0.1:$port" --jobs "$jobs" --size "$size" --concurrency "$conc")
    else
      out=$(taskset -c 1 node bench/jobs_pair_load.mjs "$mode" "$port" "$jobs" "$size" "$conc")
    fi
    t1=$(cpu_ticks "$pid")
    rate=$(echo "$out" | awk '{print $1}')
    us=$(python3 -c "print(($t1 - $t0) * 1e6 / $hz / $jobs)")
    echo "$mode $rate $us $out" >> "$results"
    echo "run $run $mode: $out (jobs/s push_ms process_ms), server CPU ${us} µs/job" >&2
  done
done
echo "node bench/jobs_pair_load.mjs MODE PORT $jobs $size $conc; basalt-rust: basalt-bench jobs --jobs $jobs --size $size --concurrency $conc (jobs pushed+fetched+acked per second)"
echo "$runs alternating runs; servers on core 0, load on core 1"
echo "| mode | jobs/s (median) | server CPU µs per job (median) | vs BullMQ (jobs/s) |"
echo "|---|---:|---:|---:|"
python3 - "$results" <<'PY'
import sys, statistics, collections
rate = collections.defaultdict(list); cpu = collections.defaultdict(list)
for line in open(sys.argv[1]):
    mode, v, us = line.split()[:3]
    rate[mode].append(float(v)); cpu[mode].append(float(us))
base = statistics.median(rate["bullmq"])
names = {"basalt": "Basalt JOB.FETCH + JOB.ACK, one job per slot",
         "basalt-pipe": "Basalt, ACK + next FETCH in one round trip",
         "basalt-batch": "Basalt JOB.FETCH COUNT 100 + pipelined ACKs",
         "basalt-rust": "Basalt, batched as above, Rust load (basalt-bench jobs)",
         "bullmq": "BullMQ on redis-server"}
for mode in ["basalt", "basalt-pipe", "basalt-batch", "basalt-rust", "bullmq"]:
    r = statistics.median(rate[mode]); c = statistics.median(cpu[mode])
    print(f"| {names[mode]} | {r:,.0f} | {c:.1f} | {r/base:.2f} |")
PY
echo "load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
