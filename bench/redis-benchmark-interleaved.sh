#!/usr/bin/env bash
# basalt-server vs redis-server with redis-benchmark, interleaved per test: each round
# runs every test on both servers back to back (which goes first alternates by round) and
# records the ratio of that round; the script prints each test's median ratio, its
# quartiles and how many rounds Basalt won. Ratios of neighbouring runs cancel the
# machine's slow drifts that make the medians of bench/redis-benchmark-pair.sh (all tests
# on one server, then all on the other) move by ±10% between sittings.
#   [P=1] [N=50000] bench/redis-benchmark-interleaved.sh [rounds]
# Servers pinned to core 0 (basalt with --threads 1), redis-benchmark to core 1; 50
# clients, 64-byte values; the keys are filled first (lpush, sadd, hset, zadd at pipeline 16).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}; n=${N:-50000}; depth=${P:-1}
BIN=$(cd "$(dirname "${BASALT_BIN:-target/release/basalt-server}")" && pwd)
[ -x "$BIN/basalt-server" ] || cargo build --release -p basalt-server
source bench/common.sh
start_collections_pair
run() {
  taskset -c 1 redis-benchmark -p "$1" -r 1000000 -d 64 -c 50 -P "$depth" -n "$n" -q "${@:2}" 2>/dev/null \
    | tr '\r' '\n' | grep -a 'requests per second' | tail -1 | sed -E 's/.*: ([0-9.]+) requests.*/\1/'
}
for r in $(seq 1 "$rounds"); do
  for t in lpush lpop sadd hset zadd hget zrange; do
    case $t in
      hget) a=(HGET myhash element:__rand_int__) ;;
      zrange) a=(ZRANGE myzset 0 9) ;;
      *) a=(-t "$t") ;;
    esac
    if [ $((r % 2)) = 0 ]; then
      b=$(run "$bport" "${a[@]}"); x=$(run "$rport" "${a[@]}")
    else
      x=$(run "$rport" "${a[@]}"); b=$(run "$bport" "${a[@]}")
    fi
    echo "$t $b $x" >> "$scratch/res"
  done
done
python3 - "$scratch/res" "$depth" "$rounds" "$n" <<'PY'
import sys, statistics as st, collections
ratio = collections.defaultdict(list); bs = collections.defaultdict(list); rs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, b, x = line.split(); b, x = float(b), float(x)
    ratio[t].append(b / x); bs[t].append(b); rs[t].append(x)
print(f"pipeline {sys.argv[2]}, {sys.argv[3]} rounds of {sys.argv[4]} requests per test and server")
print("| test | basalt req/s | redis req/s | median ratio | quartiles | rounds won |")
print("|---|---:|---:|---:|---|---:|")
for t, q in ratio.items():
    q = sorted(q); k = len(q)
    print(f"| {t.upper()} | {st.median(bs[t]):,.0f} | {st.median(rs[t]):,.0f} | {st.median(q):.3f} "
          f"| {q[k // 4]:.3f}–{q[3 * k // 4]:.3f} | {sum(v > 1 for v in q)}/{k} |")
PY
