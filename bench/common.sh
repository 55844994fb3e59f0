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
