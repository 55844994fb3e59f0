#!/usr/bin/env bash
# User-space instructions per command, basalt-server next to redis-server, counted by
# valgrind's callgrind (deterministic, so it works on a loaded machine):
#   bench/callgrind-pair.sh [requests] [port-base] [pipeline]
# Each server runs under callgrind (Basalt with --threads 1); for every test the counters
# are zeroed, redis-benchmark sends the same stream (pipeline 16 unless given, 50 clients, random
# members over 100000), the counters are dumped, and the script prints instructions per
# command (everything the server executed meanwhile: event loop, parsing, the command,
# replies, allocator). Tests run in order, so HGET and ZRANGE find the hash and zset
# that HSET and ZADD built. EVALSHA runs the issue-8 script (GET then INCR of one key),
# loaded with SCRIPT LOAD before the tests. ONLY=<regex> keeps the tests whose name
# matches (e.g. ONLY=EVALSHA bench/callgrind-pair.sh 50000 24000 1). SET, GET and SET EX
# (first, 32-byte values) measure the keyspace's string path: ONLY='^(SET|GET|SET EX)$'.
# CG_OPTS adds callgrind options, e.g. CG_OPTS="--cache-sim=yes --branch-sim=yes" (cache
# and branch-predictor simulation: the script then also prints data-cache misses and
# mispredicted branches per command); KEYS_RANGE sets redis-benchmark's -r (default 100000).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}; base=${2:-0}; depth=${3:-16}
range=${KEYS_RANGE:-100000}
read -ra cg_opts <<< "${CG_OPTS:-}"
basalt=${BASALT_BIN:-target/release/basalt-server}
[ -x "$basalt" ] || cargo build --release -p basalt-server
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
scratch=$(mktemp -d)
if [ "$base" = 0 ]; then bport=$(free_port); rport=$(free_port); else bport=$base; rport=$((base + 1)); fi
script="redis.call('GET', KEYS[1]) return redis.call('INCR', KEYS[1])"
sha=$(printf '%s' "$script" | sha1sum | cut -d' ' -f1)
# name|redis-benchmark arguments after the common ones
tests=(
  "SET|-t set -d 32"
  "GET|-t get -d 32"
  "SET EX|SET key:__rand_int__ vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv EX 86400"
  "INCR|-t incr"
  "HSET|-t hset"
  "HGET|HGET myhash element:__rand_int__"
  "LPUSH|-t lpush"
  "LPOP|-t lpop"
  "SADD|-t sadd"
  "ZADD|-t zadd"
  "ZRANGE 0 9|ZRANGE myzset 0 9"
  "EVALSHA|EVALSHA $sha 1 key:__rand_int__"
)
if [ -n "${ONLY:-}" ]; then
  kept=()
  for t in "${tests[@]}"; do [[ ${t%%|*} =~ $ONLY ]] && kept+=("$t"); done
  tests=("${kept[@]}")
fi
run_server() { # kind port
  local kind=$1 port=$2 pid
  if [ "$kind" = basalt ]; then
    valgrind --tool=callgrind "${cg_opts[@]}" --callgrind-out-file="$scratch/$kind.%p.out" \
      "$basalt" --port "$port" --bind 127.0.0.1 --threads 1 --save '' --appendonly no \
      --dir "$scratch" >"$scratch/$kind.log" 2>&1 &
  else
    valgrind --tool=callgrind "${cg_opts[@]}" --callgrind-out-file="$scratch/$kind.%p.out" \
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$scratch" >"$scratch/$kind.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 1 300); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
  [ "$(redis-cli -p "$port" script load "$script")" = "$sha" ]
  for t in "${tests[@]}"; do
    name=${t%%|*}; args=${t#*|}
    callgrind_control -z "$pid" >/dev/null 2>&1
    # shellcheck disable=SC2086
    redis-benchmark -p "$port" -n "$n" -P "$depth" -c 50 -r "$range" -q $args >/dev/null 2>&1
    callgrind_control -d "${name// /_}" "$pid" >/dev/null 2>&1
    sleep 0.5
    f=$(ls -t "$scratch/$kind.$pid.out".* | head -1)
    events=$(grep -E '^events:' "$f" | head -1 | cut -d' ' -f2-)
    totals=$(grep -E '^(summary|totals):' "$f" | head -1 | cut -d' ' -f2-)
    echo "$kind|$name|$events|$totals" >> "$scratch/results"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run_server basalt "$bport"
run_server redis "$rport"
echo "redis-benchmark -n $n -P $depth -c 50 -r $range per test; user-space instructions per command (callgrind${CG_OPTS:+ $CG_OPTS})"
echo "| command | basalt-server | redis-server | basalt / redis |"
echo "|---|---:|---:|---:|"
python3 - "$scratch/results" "$n" <<'PY'
import sys
n = int(sys.argv[2])
d = {}
order = []
for line in open(sys.argv[1]):
    kind, name, events, totals = line.rstrip("\n").split("|")
    d[(kind, name)] = dict(zip(events.split(), (int(x) / n for x in totals.split())))
    if name not in order:
        order.append(name)
for name in order:
    b, r = d[("basalt", name)]["Ir"], d[("redis", name)]["Ir"]
    print(f"| {name} | {b:,.0f} | {r:,.0f} | {b / r:.2f} |")
extra = [e for e in d[("basalt", order[0])] if e != "Ir"]
if extra:
    # With CG_OPTS' simulations: every other event per command, basalt / redis.
    print()
    print("| command | " + " | ".join(f"{e} basalt / redis" for e in extra) + " |")
    print("|---|" + "---:|" * len(extra))
    for name in order:
        b, r = d[("basalt", name)], d[("redis", name)]
        cells = [f"{b[e]:,.2f} / {r[e]:,.2f}" for e in extra]
        print(f"| {name} | " + " | ".join(cells) + " |")
PY
echo "basalt: $("$basalt" --version); redis: $(redis-server --version | cut -d' ' -f3)"
echo "callgrind outputs kept in $scratch"
