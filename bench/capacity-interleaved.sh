#!/usr/bin/env bash
# basalt-server vs redis-server at full load: basalt-bench is the client (it spends a
# fraction of redis-benchmark's CPU per request, so the server's core, not the client's,
# is what runs out), and each round runs every test on both servers back to back (which
# goes first alternates by round). Prints per test the median ops/s, the median of the
# per-round ratios with its quartiles, the rounds Basalt won, and how busy each server's
# core was (CPU seconds per second of the run: near 1.00 means the server was the limit).
#   [P=1] [D=3] bench/capacity-interleaved.sh [rounds]
# P > 1 sends batches of P requests per connection and waits for all replies before the
# next batch (basalt-bench --batch), as redis-benchmark -P does. Servers pinned to core 0
# (basalt with --threads 1), the client to core 1; 50 connections, 64-byte values; the
# keys are filled first with redis-benchmark (lpush, sadd, hset, zadd at pipeline 16).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-9}; depth=${P:-1}; secs=${D:-3}
BIN=$(cd "$(dirname "${BASALT_BIN:-target/release/basalt-server}")" && pwd)
[ -x "$BIN/basalt-server" ] || cargo build --release -p basalt-server
bench=target/release/basalt-bench
[ -x "$bench" ] || cargo build --release -p basalt-bench
source bench/common.sh
start_collections_pair
batch=(); [ "$depth" -gt 1 ] && batch=(--batch)
# run <port> <pid> <command template>: prints "ops/s core-busy"
run() {
  local c0 c1
  c0=$(cpu_ticks "$2")
  taskset -c 1 "$bench" -p "$1" -c 50 -P "$depth" "${batch[@]}" --duration "$secs" --key-prefix '' \
    --keyspace 1000000 -d 64 --command "$3" -q --json "$scratch/run.json" >/dev/null 2>&1
  c1=$(cpu_ticks "$2")
  echo "$(jq -r .ops_per_sec "$scratch/run.json") $(echo "($c1 - $c0) / $CLK_TCK / $secs" | bc -l)"
}
for r in $(seq 1 "$rounds"); do
  for t in lpush lpop sadd hset zadd hget zrange; do
    case $t in
      lpush) c='LPUSH mylist __data__' ;;
      lpop) c='LPOP mylist' ;;
      sadd) c='SADD myset element:__key__' ;;
      hset) c='HSET myhash element:__key__ __data__' ;;
      zadd) c='ZADD myzset __key__ element:__key__' ;;
      hget) c='HGET myhash element:__key__' ;;
      zrange) c='ZRANGE myzset 0 9' ;;
    esac
    if [ $((r % 2)) = 0 ]; then
      b=$(run "$bport" "$bpid" "$c"); x=$(run "$rport" "$rpid" "$c")
    else
      x=$(run "$rport" "$rpid" "$c"); b=$(run "$bport" "$bpid" "$c")
    fi
    echo "$t $b $x" >> "$scratch/res"
  done
done
python3 - "$scratch/res" "$depth" "$rounds" "$secs" <<'PY'
import sys, statistics as st, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, b, bb, x, xb = line.split()
    rows[t].append((float(b), float(bb), float(x), float(xb)))
mode = "batches of " + sys.argv[2] if sys.argv[2] != "1" else "pipeline 1"
print(f"basalt-bench, 50 connections, {mode}, {sys.argv[3]} rounds of {sys.argv[4]} s per test and server")
print("| test | basalt ops/s | redis ops/s | median ratio | quartiles | rounds won | core busy basalt / redis |")
print("|---|---:|---:|---:|---|---:|---|")
for t, v in rows.items():
    q = sorted(b / x for b, _, x, _ in v); k = len(q)
    print(f"| {t.upper()} | {st.median(r[0] for r in v):,.0f} | {st.median(r[2] for r in v):,.0f} "
          f"| {st.median(q):.3f} | {q[k // 4]:.3f}–{q[3 * k // 4]:.3f} | {sum(x > 1 for x in q)}/{k} "
          f"| {st.median(r[1] for r in v):.2f} / {st.median(r[3] for r in v):.2f} |")
PY
