#!/usr/bin/env bash
# PUBLISH fan-out, basalt-server vs redis-server 7.0.15 side by side: 1, 100 and 1000
# subscribers on one channel, one pipelining publisher, messages delivered per second.
# Each server is pinned to CPU 0 (taskset), the load generator to the other CPUs; runs
# alternate between the servers and the median of RUNS is reported.
#
#   bench/pubsub-pair.sh [BASALT_BIN] [BENCH_BIN]      (env: PORT_B, PORT_R, RUNS, SIZE)
set -euo pipefail
BASALT=${1:-target/release/basalt-server}
BENCH=${2:-target/release/basalt-bench}
PORT_B=${PORT_B:-7380}
PORT_R=${PORT_R:-7381}
RUNS=${RUNS:-5}
SIZE=${SIZE:-16}
NCPU=$(nproc)
CLIENT_CPUS=$([ "$NCPU" -gt 1 ] && echo "1-$((NCPU - 1))" || echo 0)
for p in "$PORT_B" "$PORT_R"; do
  if ss -ltn | grep -q ":$p "; then echo "port $p busy" >&2; exit 1; fi
done
dir=$(mktemp -d)
taskset -c 0 "$BASALT" --port "$PORT_B" --bind 127.0.0.1 --threads 1 --save '' --dir "$dir" --maxclients 4096 >"$dir/basalt.log" 2>&1 &
bpid=$!
taskset -c 0 redis-server --port "$PORT_R" --bind 127.0.0.1 --save '' --appendonly no \
  --maxclients 4096 --dir "$dir" >"$dir/redis.log" 2>&1 &
rpid=$!
trap 'kill $bpid $rpid 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-12s %-10s %14s %14s %7s\n' subscribers messages basalt/s redis/s ratio
for subs in 1 100 1000; do
  msgs=$(( subs == 1 ? 200000 : (subs == 100 ? 20000 : 2000) ))
  : >"$dir/b" ; : >"$dir/r"
  for _ in $(seq "$RUNS"); do
    for which in b r; do
      port=$([ $which = b ] && echo "$PORT_B" || echo "$PORT_R")
      taskset -c "$CLIENT_CPUS" "$BENCH" pubsub --addr "127.0.0.1:$port" --subscribers "$subs" \
        --messages "$msgs" --size "$SIZE" --pipeline 16 --readers 2 --json \
        | sed 's/.*"delivered_per_sec":\([0-9]*\).*/\1/' >>"$dir/$which"
    done
  done
  b=$(median <"$dir/b"); r=$(median <"$dir/r")
  printf '%-12s %-10s %14s %14s %7.2f\n' "$subs" "$msgs" "$b" "$r" "$(echo "$b / $r" | bc -l)"
done
