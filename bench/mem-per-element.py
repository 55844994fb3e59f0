#!/usr/bin/env python3
"""Bytes of RSS per element, basalt-server next to redis-server (docs/benchmarks.md).

For each shape below, a fresh server is started, its RSS (VmRSS in /proc/PID/status) is
read after a short settling pause and a warm-up batch of PINGs, N elements are written with pipelined commands (batches of 1000, one element per
command), and the RSS growth divided by N is the cost of one element. Both servers run
with persistence off, pinned to core 0 (Basalt with --threads 1); shapes alternate
basalt, redis, basalt, ... and the median of the runs is printed.

    bench/mem-per-element.py [--n 1000000] [--runs 1] [--shapes hash,list_rpush]
                             [--basalt target/release/basalt-server] [--port-base 0]

--port-base P uses ports P and P+1 (0: ask the kernel for free ports). Needs no client
library: commands are written as RESP and replies (one line each) are counted.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# name -> (description, command template for element i)
SHAPES = {
    "string": ("string keys, 16-byte key + 32-byte value",
               lambda i: [b"SET", b"key:%012d" % i, b"v" * 32]),
    "string_ttl": ("same, with a TTL",
                   lambda i: [b"SET", b"key:%012d" % i, b"v" * 32, b"EX", b"86400"]),
    "hash": ("hash field (one hash, field `member:%08d`, value `v%08d`)",
             lambda i: [b"HSET", b"h", b"member:%08d" % i, b"v%08d" % i]),
    "set": ("set member (one set, `member:%08d`)",
            lambda i: [b"SADD", b"s", b"member:%08d" % i]),
    "zset": ("sorted-set member (one zset, `member:%08d`, score i)",
             lambda i: [b"ZADD", b"z", b"%d" % i, b"member:%08d" % i]),
    "list_rpush": ("list element by RPUSH (one list, `member:%08d`)",
                   lambda i: [b"RPUSH", b"l", b"member:%08d" % i]),
    "list_lpush": ("list element by LPUSH (one list, `member:%08d`)",
                   lambda i: [b"LPUSH", b"l", b"member:%08d" % i]),
}


def resp(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def connect(port, deadline=10.0):
    end = time.time() + deadline
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(resp([b"PING"]))
            if s.recv(64).startswith(b"+PONG"):
                return s
            s.close()
        except OSError:
            pass
        if time.time() > end:
            raise RuntimeError(f"server on port {port} did not answer PING")
        time.sleep(0.05)


def warm_up(sock, n=2000):
    """Sends n PINGs in one batch (sizes the connection's buffers) and reads the replies."""
    sock.sendall(resp([b"PING"]) * n)
    lines = 0
    while lines < n:
        lines += sock.recv(1 << 16).count(b"\n")


def load(sock, shape, n, batch=1000):
    make = SHAPES[shape][1]
    for start in range(0, n, batch):
        count = min(batch, n - start)
        sock.sendall(b"".join(resp(make(i)) for i in range(start, start + count)))
        buf = b""
        lines = 0
        while lines < count:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("connection closed")
            if b"-" in chunk[:1] or b"\r\n-" in chunk:
                raise RuntimeError(f"error reply: {chunk[:200]!r}")
            buf += chunk
            lines += chunk.count(b"\n")
        del buf


def measure(kind, binary, port, shape, n):
    with tempfile.TemporaryDirectory() as d:
        cmd = ["taskset", "-c", "0", binary, "--port", str(port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", d]
        if kind == "basalt":
            cmd += ["--threads", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            sock = connect(port)
            # Let the allocator settle: memory freed during start-up is returned to the
            # OS lazily, on a later allocation after a delay (mimalloc), which would
            # otherwise shrink RSS by a few MB in the middle of the load.
            time.sleep(1.5)
            warm_up(sock)
            time.sleep(0.3)
            before = rss_kib(proc.pid)
            load(sock, shape, n)
            time.sleep(0.5)
            after = rss_kib(proc.pid)
            sock.close()
            return (after - before) * 1024 / n
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--basalt", default="target/release/basalt-server")
    p.add_argument("--redis", default="redis-server")
    p.add_argument("--port-base", type=int, default=0)
    a = p.parse_args()
    shapes = a.shapes.split(",")
    for s in shapes:
        if s not in SHAPES:
            sys.exit(f"unknown shape {s}; known: {', '.join(SHAPES)}")
    if not os.access(a.basalt, os.X_OK):
        sys.exit(f"{a.basalt} not found: cargo build --release -p basalt-server")
    ports = {"basalt": a.port_base or free_port(), "redis": (a.port_base + 1) if a.port_base else free_port()}
    bins = {"basalt": a.basalt, "redis": a.redis}
    print(f"# {a.n} elements per shape, {a.runs} run(s), median RSS growth per element")
    print("| what | basalt-server | redis-server | basalt / redis |")
    print("|---|---:|---:|---:|")
    for shape in shapes:
        got = {"basalt": [], "redis": []}
        for _ in range(a.runs):
            for kind in ("basalt", "redis"):
                got[kind].append(measure(kind, bins[kind], ports[kind], shape, a.n))
        b, r = statistics.median(got["basalt"]), statistics.median(got["redis"])
        print(f"| {SHAPES[shape][0]} | {b:.1f} B | {r:.1f} B | {b / r:.2f} |", flush=True)
    print(f"# load average at the end: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
