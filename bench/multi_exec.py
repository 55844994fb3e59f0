#!/usr/bin/env python3
"""MULTI/EXEC throughput: transactions of five commands per second on one connection.

Sends `--batch` transactions (MULTI, INCR, INCR, SET, GET, LPUSH, EXEC) pipelined, waits
for all their replies (a final ECHO marks the end), and repeats for `--seconds`. The
request bytes are built once, so the client spends its time in recv, not in Python.

Usage: bench/multi_exec.py --port P [--batch 200] [--seconds 5]
Prints: `transactions/s <n>`.
"""

import argparse
import socket
import time


def enc(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    tx = (enc("MULTI") + enc("INCR", "mx:a") + enc("INCR", "mx:b") + enc("SET", "mx:c", "v" * 16)
          + enc("GET", "mx:c") + enc("LPUSH", "mx:l", "x") + enc("EXEC"))
    marker = b"mx-end-of-batch"
    req = tx * a.batch + enc("ECHO", marker)
    tail = b"$%d\r\n%s\r\n" % (len(marker), marker)
    s = socket.create_connection(("127.0.0.1", a.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(enc("DEL", "mx:a", "mx:b", "mx:c", "mx:l"))
    s.recv(100)
    done = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        s.sendall(req)
        buf = b""
        while not buf.endswith(tail):
            buf += s.recv(1 << 20)
        done += a.batch
        if done % (a.batch * 50) == 0:
            # Keep the list short so every run does the same work.
            s.sendall(enc("DEL", "mx:l"))
            s.recv(100)
    dt = time.perf_counter() - t0
    print(f"transactions/s {done / dt:.0f}")


if __name__ == "__main__":
    main()
