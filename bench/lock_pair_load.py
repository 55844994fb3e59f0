#!/usr/bin/env python3
"""Closed-loop uncontended lock load: acquire then release, each connection on its own keys.

    bench/lock_pair_load.py PORT --mode basalt|redis [--conns 8] [--batch 32] [--seconds 5]

basalt: `LOCK.ACQUIRE key owner TTL 10000`, then `LOCK.RELEASE key <token it returned>`.
redis:  redis-py's `Lock` protocol: `SET key token NX PX 10000`, then `EVALSHA` of
        redis-py's own release script (`redis.lock.Lock.LUA_RELEASE_SCRIPT`, read from the
        installed redis-py) with the key and the token.

Each connection sends `batch` acquires in one write, reads their replies, then sends the
`batch` releases and reads theirs; every reply is checked (a lock not granted or not
released stops the run). The result line is `pairs/s <n>`. Used by bench/lock-pair.sh;
the client work per pair is about the same for both servers, so same-run ratios compare
servers.
"""
import argparse, re, socket, time, uuid

# LOCK.ACQUIRE's token: 20 hex digits, the first element of its reply.
TOKEN = re.compile(rb"\*3\r\n\$20\r\n([0-9a-f]{20})\r\n")


def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_replies(s, lines):
    """Reads the replies to what was sent, `lines` CRLF-terminated lines in all (nothing
    else is pending on the connection, so nothing is read beyond them)."""
    buf = bytearray()
    while buf.count(b"\r\n") < lines:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk
    return bytes(buf)


def release_sha(s):
    import redis.lock

    script = redis.lock.Lock.LUA_RELEASE_SCRIPT
    s.sendall(cmd(b"SCRIPT", b"LOAD", script.encode()))
    return read_replies(s, 2).split(b"\r\n")[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--mode", choices=["basalt", "redis"], required=True)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    socks = [socket.create_connection(("127.0.0.1", a.port)) for _ in range(a.conns)]
    keys = [[b"lockbench:%d:%d" % (c, j) for j in range(a.batch)] for c in range(a.conns)]
    granted = b"+OK\r\n" * a.batch
    released = b":1\r\n" * a.batch
    if a.mode == "redis":
        sha = release_sha(socks[0])
        # One token per key, drawn as redis-py draws them (uuid1 hex).
        tokens = [[uuid.uuid1().hex.encode() for _ in ks] for ks in keys]
        acquires = [b"".join(cmd(b"SET", k, t, b"NX", b"PX", 10000) for k, t in zip(ks, ts))
                    for ks, ts in zip(keys, tokens)]
        releases = [b"".join(cmd(b"EVALSHA", sha, 1, k, t) for k, t in zip(ks, ts))
                    for ks, ts in zip(keys, tokens)]
    else:
        owners = [b"owner%d" % c for c in range(a.conns)]
        acquires = [b"".join(cmd(b"LOCK.ACQUIRE", k, o, b"TTL", 10000) for k in ks)
                    for ks, o in zip(keys, owners)]
        # LOCK.RELEASE key <token>: everything but the token is fixed per key.
        heads = [[cmd(b"LOCK.RELEASE", k, b"x" * 20)[:-22] for k in ks] for ks in keys]
    done = 0
    start = time.time()
    end = start + a.seconds
    while time.time() < end:
        for s, p in zip(socks, acquires):
            s.sendall(p)
        if a.mode == "redis":
            for s in socks:
                if read_replies(s, a.batch) != granted:
                    raise SystemExit("a lock was not granted")
            for s, p in zip(socks, releases):
                s.sendall(p)
        else:
            for i, s in enumerate(socks):
                # [token, fence, ttl]: five lines per reply.
                toks = TOKEN.findall(read_replies(s, 5 * a.batch))
                if len(toks) != a.batch:
                    raise SystemExit("a lock was not granted")
                s.sendall(b"".join(h + t + b"\r\n" for h, t in zip(heads[i], toks)))
        for s in socks:
            if read_replies(s, a.batch) != released:
                raise SystemExit("a lock was not released")
        done += a.conns * a.batch
    print("pairs/s %.0f pairs %d" % (done / (time.time() - start), done))


if __name__ == "__main__":
    main()
