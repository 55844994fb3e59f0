#!/usr/bin/env bash
# SAVE time, RDB file size and load time at start for 1M keys (100-byte values),
# basalt-server vs redis-server, each pinned to core 0, the load generator to core 1.
# Usage: bench/rdb-save-load.sh BIN_DIR   (BIN_DIR holds release builds of basalt-server
# and basalt-bench). Uses ports 7530/7531 and /tmp/rdbwork/sb-*; results go to stdout.
set -u
B=${1:?usage: $0 BIN_DIR}
for side in basalt redis; do
  dir=/tmp/rdbwork/sb-$side; rm -rf $dir; mkdir -p $dir
  port=$([ $side = basalt ] && echo 7530 || echo 7531)
  if [ $side = basalt ]; then
    taskset -c 0 $B/basalt-server --port $port --bind 127.0.0.1 --save '' --dir $dir > $dir/log 2>&1 &
  else
    taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir $dir > $dir/log 2>&1 &
  fi
  pid=$!
  for i in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
  taskset -c 1 $B/basalt-bench --port $port --clients 50 --pipeline 64 --key-pattern sequential --ratio 0:1 --keyspace 1000000 --requests 1000000 --data-size 100 --key-prefix key: --duration 1800 > /dev/null 2>&1
  echo "$side dbsize $(redis-cli -p $port dbsize) used_memory $(redis-cli -p $port info memory | grep '^used_memory:' | tr -d '\r')"
  for run in 1 2 3; do
    t0=$(date +%s.%N); redis-cli -p $port save >/dev/null; t1=$(date +%s.%N)
    echo "$side save run $run: $(echo "$t1 - $t0" | bc) s, file $(stat -c %s $dir/dump.rdb) bytes"
  done
  redis-cli -p $port config set rdbcompression no >/dev/null
  t0=$(date +%s.%N); redis-cli -p $port save >/dev/null; t1=$(date +%s.%N)
  echo "$side save rdbcompression=no: $(echo "$t1 - $t0" | bc) s, file $(stat -c %s $dir/dump.rdb) bytes"
  redis-cli -p $port config set rdbcompression yes >/dev/null
  redis-cli -p $port save >/dev/null
  kill $pid; wait $pid 2>/dev/null
  for run in 1 2 3; do
    if [ $side = basalt ]; then
      taskset -c 0 $B/basalt-server --port $port --bind 127.0.0.1 --save '' --dir $dir > $dir/log2 2>&1 &
    else
      taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir $dir > $dir/log2 2>&1 &
    fi
    pid=$!
    for i in $(seq 300); do redis-cli -p $port ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    echo "$side load run $run: $(grep -o 'DB loaded from disk: [0-9.]* seconds' $dir/log2)"
    kill $pid; wait $pid 2>/dev/null
  done
done
uptime
