#!/usr/bin/env bash
# Latency of other clients and memory during BGSAVE, basalt-server vs redis-server 7.0.15
# (issue 6's targets: p99 during BGSAVE <= 2x steady state, peak memory <= 1.10x before).
#
# For each server (pinned to core 0; Basalt with --threads 1, all its threads on core 0):
#   1. load KEYS keys of VALUE bytes (sequential SETs from basalt-bench on core 1);
#   2. steady window: an open-loop GET:SET 1:1 load at RATE ops/s over CLIENTS
#      connections, uniform keys, for STEADY seconds -> p50/p99;
#   3. BGSAVE window: the same load, BGSAVE, and the window ends (basalt-bench
#      --stop-file) when INFO says rdb_bgsave_in_progress:0 -> p50/p99;
#      steps 2 and 3 are repeated RUNS times; the table shows their medians;
#   4. memory window: the same again with a second BGSAVE, the memory sampled every
#      0.1 s meanwhile: PSS (proportional set size, from /proc/PID/smaps_rollup) of the
#      server and its children, so Redis's forked child counts with the pages it shares
#      with its parent counted once -> peak; and this window's p99 too.
#      Why two windows: reading smaps_rollup walks the page tables of the whole process
#      (7-14 ms for a 370 MB server on the 2-core VM), on some core, holding the
#      process's mmap lock; sampled during the latency window it adds its own stalls.
# Prints one table: both servers, the p99 ratio (median during / median steady) and the
# memory ratio (peak during / before).
#
# While a window runs, the script itself must stay off the load generator's core: the
# server's core is busy with the save, so anything the script starts lands on core 1,
# and a redis-cli started every 0.1 s to poll INFO (fork, exec, dynamic linking: a few
# ms each) delayed the load generator's sends (its send-lag p99 went from 0.1-0.3 to
# 3.5 ms) and made every server's p99 during BGSAVE look 3-5x its steady p99. So the
# windows poll over one connection kept open (bash's /dev/tcp) and sleep with `read -t`
# on a FIFO nobody writes: builtins, no new process.
#
# Usage: bench/bgsave-latency.sh BIN_DIR   (release builds of basalt-server, basalt-bench)
# Env: KEYS (2000000), VALUE (100), RATE (20000), CLIENTS (8), STEADY (10), RUNS (3),
#      PORT_B (7540), PORT_R (7541), SERVERS ("basalt redis"),
#      BASALT_ARGS (extra basalt-server arguments, e.g. "--save-yield-seconds 0"),
#      WORK_DIR (where the servers write their files; default a new directory under
#      $TMPDIR; e.g. one on /dev/shm to take the disk out of the measurement).
# A quiet machine with 2+ cores; nothing is asserted, the numbers go to stdout.
set -u
BIN=${1:?usage: $0 BIN_DIR}
KEYS=${KEYS:-2000000}
VALUE=${VALUE:-100}
RATE=${RATE:-20000}
CLIENTS=${CLIENTS:-8}
STEADY=${STEADY:-10}
RUNS=${RUNS:-3}
PORT_B=${PORT_B:-7540}
PORT_R=${PORT_R:-7541}
SERVERS=${SERVERS:-basalt redis}
for p in "$PORT_B" "$PORT_R"; do
  if ss -ltn | grep -q ":$p "; then echo "port $p busy" >&2; exit 1; fi
done
work=$(mktemp -d ${WORK_DIR:+-p "$WORK_DIR"})
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/common.sh"
# Sleeps $1 seconds without starting a process (`read -t` on a FIFO nobody writes: fd 4).
nap() { read -r -t "$1" -u 4 _; }
# PSS in kB of a process and its children (0 if gone) into $PSS, without starting a
# process (see above).
pss() {
  local total=0 p f line k kids=() lines=()
  for f in /proc/"$1"/task/*/children; do
    [ -r "$f" ] && { read -ra k < "$f" 2>/dev/null; kids+=("${k[@]}"); }
  done
  for p in "$1" "${kids[@]}"; do
    # One read of the whole file: `read` line by line seeks back after each line, and
    # every seek makes the kernel walk the page tables again.
    mapfile -t lines 2>/dev/null < "/proc/$p/smaps_rollup" || continue
    for line in "${lines[@]}"; do
      [[ $line == Pss:* ]] && { read -r _ k _ <<< "$line"; total=$((total + k)); }
    done
  done
  PSS=$total
}
# INFO persistence over the connection on fd 3; true while a BGSAVE runs. Sets $STATUS
# to rdb_last_bgsave_status.
in_progress() {
  local hdr body
  printf 'INFO persistence\r\n' >&3
  IFS= read -r hdr <&3; hdr=${hdr#\$}; hdr=${hdr%$'\r'}
  LC_ALL=C IFS= read -r -N "$((hdr + 2))" body <&3
  STATUS=${body#*rdb_last_bgsave_status:}; STATUS=${STATUS%%$'\r'*}
  [[ $body == *rdb_bgsave_in_progress:1* ]]
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
load_args=(--clients "$CLIENTS" --rate "$RATE" --ratio 1:1 --keyspace "$KEYS"
  --key-pattern uniform --data-size "$VALUE" --quiet)
rows=()
for srv in $SERVERS; do
  dir=$work/$srv; mkdir -p "$dir"
  port=$PORT_B; [ "$srv" = redis ] && port=$PORT_R
  extra=()
  [ "$srv" = basalt ] && read -ra extra <<< "${BASALT_ARGS:-}"
  pid=$(start_server "$srv" "$port" "$dir" "${extra[@]}")
  pids+=("$pid")
  wait_port "$port" || { echo "$srv did not start" >&2; cat "$dir/log" >&2; exit 1; }
  taskset -c 1 "$BIN/basalt-bench" --port "$port" --clients 50 --pipeline 64 \
    --key-pattern sequential --ratio 0:1 --keyspace "$KEYS" --requests "$KEYS" \
    --data-size "$VALUE" --duration 3600 --quiet >/dev/null 2>&1
  echo "$srv: $(redis-cli -p "$port" dbsize) keys loaded" >&2

  rm -f "$work/never"; mkfifo "$work/never"; exec 4<>"$work/never"
  exec 3<>"/dev/tcp/127.0.0.1/$port"

  # One BGSAVE under the load; $1 = sample memory (1) or not (0). Sets win50, win99,
  # peak (kB), secs, status.
  window() {
    local stop=$dir/stop bench t0 t1
    rm -f "$stop"
    taskset -c 1 "$BIN/basalt-bench" --port "$port" "${load_args[@]}" --warmup 1 \
      --duration 3600 --stop-file "$stop" --json "$dir/bgsave.json" >/dev/null 2>&1 &
    bench=$!
    nap 1     # the warm-up second: the measured window starts with the snapshot
    t0=$EPOCHREALTIME
    printf 'BGSAVE\r\n' >&3; IFS= read -r _ <&3
    peak=$before
    while in_progress; do
      if [ "$1" = 1 ]; then pss "$pid"; [ "$PSS" -gt "$peak" ] && peak=$PSS; fi
      nap 0.1
    done
    t1=$EPOCHREALTIME
    touch "$stop"
    wait "$bench"
    status=$STATUS
    secs=$(echo "$t1 - $t0" | bc -l)
    read -r win50 win99 <<<"$(percentiles "$dir/bgsave.json")"
  }
  s50s=() s99s=() b50s=() b99s=() bsecss=()
  for _ in $(seq 1 "$RUNS"); do
    taskset -c 1 "$BIN/basalt-bench" --port "$port" "${load_args[@]}" --warmup 1 \
      --duration "$STEADY" --json "$dir/steady.json" >/dev/null 2>&1
    read -r s50 s99 <<<"$(percentiles "$dir/steady.json")"
    s50s+=("$s50") s99s+=("$s99")
    pss "$pid"; before=$PSS
    window 0
    b50s+=("$win50") b99s+=("$win99") bsecss+=("$secs") bstatus=$status
    echo "$srv run: steady p99 $s99 ms, during BGSAVE p99 $win99 ms" >&2
  done
  s50=$(median "${s50s[@]}") s99=$(median "${s99s[@]}")
  b50=$(median "${b50s[@]}") b99=$(median "${b99s[@]}") bsecs=$(median "${bsecss[@]}")
  pss "$pid"; before=$PSS
  window 1
  m99=$win99
  exec 3>&- 4>&-
  kill "$pid"; wait "$pid" 2>/dev/null

  rows+=("$(printf '%-7s %9d %10.3f %10.3f %10.3f %10.3f %8.2fx %10d %10d %7.2fx %10.3f %8.1f %s' \
    "$srv" "$KEYS" "$s50" "$s99" "$b50" "$b99" "$(echo "$b99 / $s99" | bc -l)" \
    "$((before / 1024))" "$((peak / 1024))" "$(echo "$peak / $before" | bc -l)" \
    "$m99" "$bsecs" "$bstatus/$status")")
done
echo "keys=$KEYS value=${VALUE}B load=GET:SET 1:1 open loop ${RATE} ops/s over $CLIENTS connections; server on core 0, load on core 1"
printf '%-7s %9s %10s %10s %10s %10s %9s %10s %10s %8s %10s %8s %s\n' server keys \
  'p50 ms' 'p99 ms' 'bg p50 ms' 'bg p99 ms' 'p99 x' 'PSS MB' 'peak MB' 'mem x' \
  'PSS-p99 ms' 'bgsave s' status
printf '%s\n' "${rows[@]}"
uptime
