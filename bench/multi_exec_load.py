#!/usr/bin/env python3
"""Closed-loop MULTI/EXEC load: each transaction is MULTI, 5 x INCR of distinct keys, EXEC.

    bench/multi_exec_load.py PORT [--procs 2] [--conns 8] [--batch 32] [--seconds 10]

Each connection sends `batch` transactions per write and waits for all their replies
(counted by line feeds: every reply of this workload is a single line, so a
transaction's replies hold exactly 12). Processes avoid the GIL; the result line is
`transactions/s <n>`. Used by bench/scripting-pair.sh; the client cost per transaction is
the same for every server it drives, so same-run ratios compare servers.
"""
import argparse, multiprocessing, socket, time

def tx_bytes(i):
    out = [b"*1\r\n$5\r\nMULTI\r\n"]
    for k in range(5):
        key = b"tx:%d:%d" % (i % 10000, k)
        out.append(b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(key), key))
    out.append(b"*1\r\n$4\r\nEXEC\r\n")
    return b"".join(out)

def worker(port, conns, batch, seconds, q):
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    payloads = [b"".join(tx_bytes(c * 1000 + j) for j in range(batch)) for c in range(conns)]
    want = 12 * batch
    done = 0
    start = time.time()
    end = start + seconds
    while time.time() < end:
        for s, p in zip(socks, payloads):
            s.sendall(p)
        for s in socks:
            got = 0
            while got < want:
                got += s.recv(1 << 20).count(b"\n")
        done += conns * batch
    q.put(done / (time.time() - start))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(a.port, a.conns, a.batch, a.seconds, q)) for _ in range(a.procs)]
    for p in ps: p.start()
    total = sum(q.get() for _ in ps)
    for p in ps: p.join()
    print("transactions/s %.0f" % total)

if __name__ == "__main__":
    main()
