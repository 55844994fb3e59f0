# Shell helpers shared by the bench/*.sh scripts (sourced, not run).

# Waits up to 30 s until the server on port $1 answers PING.
wait_port() { for _ in $(seq 1 300); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done; return 1; }

# Starts basalt or redis ($1) on port $2 with directory $3, pinned to core 0, persistence
# off; extra arguments follow. Prints the pid.
start_server() {
  local srv=$1 port=$2 dir=$3; shift 3
  if [ "$srv" = basalt ]; then
    taskset -a -c 0 "$BIN/basalt-server" --port "$port" --bind 127.0.0.1 --save '' \
      --dir "$dir" --threads 1 "$@" >"$dir/log" 2>&1 &
  else
    taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$dir" "$@" >"$dir/log" 2>&1 &
  fi
  echo $!
}

# p50 and p99 (ms) of a basalt-bench --json report.
percentiles() { jq -r '"\(.latency_ms.p50) \(.latency_ms.p99)"' "$1"; }

# CPU time process $1 has used (user + system), in clock ticks of $CLK_TCK per second.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# A free loopback port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts basalt ($BIN/basalt-server) and redis on free ports with a fresh scratch
# directory, stops both on exit, and fills the keys issue 4's tests read (redis-benchmark
# lpush, sadd, hset, zadd at pipeline 16). Sets scratch, bport, rport, bpid and rpid.
start_collections_pair() {
  scratch=$(mktemp -d); mkdir "$scratch/b" "$scratch/r"
  bport=$(free_port); rport=$(free_port)
  bpid=$(start_server basalt "$bport" "$scratch/b"); rpid=$(start_server redis "$rport" "$scratch/r")
  trap 'kill $bpid $rpid 2>/dev/null || true' EXIT
  wait_port "$bport"; wait_port "$rport"
  local p
  for p in $bport $rport; do
    taskset -c 1 redis-benchmark -p "$p" -t lpush,sadd,hset,zadd -d 64 -r 1000000 -c 50 -P 16 -n 300000 -q >/dev/null 2>&1
  done
}
