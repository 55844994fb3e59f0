#!/usr/bin/env python3
"""Smoke test of a Redis-compatible server with redis-py, the most used Python client.

Runs the same basic checks over RESP2 and over RESP3 (protocol=3): strings, counters,
expiry, MSET/MGET, SCAN iteration, pipelining, DEL/EXISTS and INFO parsing. Every key it
touches lives under a random prefix and is deleted at the end, so it can run against any
server on loopback without disturbing other data.

Usage:
    python3 tests/clients/redis_py_smoke.py --port 6379 [--host 127.0.0.1]

Exit status 0 when every check passes, 1 when any fails, 2 when redis-py is missing or the
server cannot be reached. Needs the `redis` package (pip install redis).
"""

import argparse
import sys
import traceback
import uuid

try:
    import redis
except ImportError:
    print("redis-py is not installed: pip install redis", file=sys.stderr)
    sys.exit(2)


class Checker:
    """Runs named checks, records failures with a clear message, keeps going."""

    def __init__(self):
        self.passed = 0
        self.failed = []

    def run(self, name, fn):
        try:
            fn()
        except AssertionError as e:
            self.failed.append(f"{name}: {e}")
            print(f"FAIL {name}: {e}")
        except redis.RedisError as e:
            self.failed.append(f"{name}: server error {type(e).__name__}: {e}")
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        except Exception as e:  # a client-side crash is a failure too, with its trace
            self.failed.append(f"{name}: {type(e).__name__}: {e}")
            print(f"FAIL {name}: unexpected {type(e).__name__}: {e}")
            traceback.print_exc()
        else:
            self.passed += 1
            print(f"ok   {name}")


def expect(got, want, what):
    assert got == want, f"{what}: expected {want!r}, got {got!r}"


def checks(r, proto, prefix):
    """Yields (name, function) pairs for one connection speaking `proto`."""
    k = lambda name: f"{prefix}:{proto}:{name}"  # noqa: E731

    def ping():
        expect(r.ping(), True, "PING")
        expect(r.echo("hi"), "hi", "ECHO")

    def set_get():
        expect(r.set(k("s"), "hello"), True, "SET")
        expect(r.get(k("s")), "hello", "GET")
        expect(r.get(k("missing")), None, "GET of a missing key")
        expect(r.set(k("s"), "x", nx=True), None, "SET NX on an existing key")
        expect(r.set(k("s"), "world", xx=True, get=True), "hello", "SET XX GET")
        expect(r.strlen(k("s")), 5, "STRLEN")
        expect(r.append(k("s"), "!"), 6, "APPEND")
        expect(r.getrange(k("s"), 0, 4), "world", "GETRANGE")

    def binary_values():
        raw = redis.Redis(host=r.connection_pool.connection_kwargs["host"],
                          port=r.connection_pool.connection_kwargs["port"],
                          protocol=proto, decode_responses=False)
        value = bytes(range(256))
        expect(raw.set(k("bin"), value), True, "SET binary")
        expect(raw.get(k("bin")), value, "GET binary")
        raw.close()

    def counters():
        expect(r.incr(k("n")), 1, "INCR new key")
        expect(r.incrby(k("n"), 41), 42, "INCRBY")
        expect(r.decr(k("n")), 41, "DECR")
        expect(r.incrbyfloat(k("f"), 10.5), 10.5, "INCRBYFLOAT")
        expect(r.incrbyfloat(k("f"), 0.1), 10.6, "INCRBYFLOAT precision")
        r.set(k("notnum"), "abc")
        try:
            r.incr(k("notnum"))
        except redis.ResponseError as e:
            expect(str(e), "value is not an integer or out of range", "INCR error text")
        else:
            raise AssertionError("INCR on a non-integer did not fail")

    def expiry():
        r.set(k("e"), "v")
        expect(r.ttl(k("e")), -1, "TTL without expiry")
        expect(r.expire(k("e"), 100), True, "EXPIRE")
        ttl = r.ttl(k("e"))
        assert 99 <= ttl <= 100, f"TTL after EXPIRE 100: got {ttl}"
        pttl = r.pttl(k("e"))
        assert 98000 <= pttl <= 100000, f"PTTL after EXPIRE 100: got {pttl}"
        expect(r.persist(k("e")), True, "PERSIST")
        expect(r.ttl(k("e")), -1, "TTL after PERSIST")
        expect(r.ttl(k("nokey")), -2, "TTL of a missing key")
        expect(r.set(k("ex"), "v", ex=50), True, "SET EX")
        assert 49 <= r.ttl(k("ex")) <= 50, "TTL after SET EX 50"

    def mset_mget():
        expect(r.mset({k("a"): "1", k("b"): "2"}), True, "MSET")
        expect(r.mget([k("a"), k("missing"), k("b")]), ["1", None, "2"], "MGET")
        expect(r.msetnx({k("a"): "x", k("c"): "3"}), False, "MSETNX with an existing key")
        expect(r.exists(k("c")), 0, "MSETNX must not set any key")

    def scan():
        wanted = {k(f"scan:{i}") for i in range(25)}
        r.mset({name: "v" for name in wanted})
        found = set(r.scan_iter(match=k("scan:*"), count=7))
        expect(found, wanted, "SCAN iteration with MATCH")
        keys = set(r.keys(k("scan:1*")))
        expect(keys, {n for n in wanted if n.startswith(k("scan:1"))}, "KEYS pattern")

    def pipeline():
        p = r.pipeline(transaction=False)
        p.set(k("p1"), "a")
        p.incr(k("p2"))
        p.get(k("p1"))
        p.incr(k("p1"))  # an error inside a pipeline must not break the others
        p.get(k("missing"))
        res = p.execute(raise_on_error=False)
        expect(res[:3], [True, 1, "a"], "pipeline replies")
        assert isinstance(res[3], redis.ResponseError), f"pipeline error slot: {res[3]!r}"
        expect(res[4], None, "pipeline nil reply")

    def delete_exists():
        r.mset({k("d1"): "1", k("d2"): "2"})
        expect(r.exists(k("d1"), k("d2"), k("missing")), 2, "EXISTS count")
        expect(r.delete(k("d1"), k("missing")), 1, "DEL count")
        expect(r.exists(k("d1")), 0, "EXISTS after DEL")
        expect(r.unlink(k("d2")), 1, "UNLINK")
        expect(r.type(k("s")), "string", "TYPE")

    def info():
        info = r.info()
        assert isinstance(info, dict), f"INFO parsed to {type(info).__name__}"
        assert "redis_version" in info, "INFO lacks redis_version"
        assert isinstance(info.get("connected_clients"), int), \
            f"connected_clients not an int: {info.get('connected_clients')!r}"
        server = r.info("server")
        assert "redis_version" in server and "tcp_port" in server, \
            f"INFO server lacks fields: {sorted(server)[:10]}"
        expect(server["tcp_port"], r.connection_pool.connection_kwargs["port"], "tcp_port")
        keyspace = r.info("keyspace")
        assert "db0" in keyspace and keyspace["db0"]["keys"] >= 1, \
            f"INFO keyspace: {keyspace!r}"

    def hello():
        reply = r.execute_command("HELLO", proto)
        if proto == 2:
            # RESP2 has no maps: the reply is a flat [field, value, ...] list.
            assert isinstance(reply, list) and len(reply) % 2 == 0, \
                f"HELLO 2 reply: {reply!r}"
            reply = dict(zip(reply[::2], reply[1::2]))
        assert isinstance(reply, dict), f"HELLO reply parsed to {type(reply).__name__}"
        for field in ("server", "version", "proto", "id", "mode", "role", "modules"):
            assert field in reply, f"HELLO reply lacks {field!r}: {sorted(reply)}"
        got = reply["proto"]
        expect(got, proto, "HELLO proto field")

    return [
        ("ping/echo", ping),
        ("set/get", set_get),
        ("binary values", binary_values),
        ("counters", counters),
        ("expire/ttl", expiry),
        ("mset/mget", mset_mget),
        ("scan_iter", scan),
        ("pipeline", pipeline),
        ("delete/exists", delete_exists),
        ("info parsing", info),
        ("hello", hello),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()

    prefix = f"smoke:{uuid.uuid4().hex[:12]}"
    c = Checker()
    for proto in (2, 3):
        r = redis.Redis(host=args.host, port=args.port, protocol=proto,
                        decode_responses=True, socket_timeout=5)
        try:
            r.ping()
        except redis.RedisError as e:
            print(f"cannot reach {args.host}:{args.port} with RESP{proto}: {e}",
                  file=sys.stderr)
            sys.exit(2)
        for name, fn in checks(r, proto, prefix):
            c.run(f"resp{proto} {name}", fn)
        leftovers = list(r.scan_iter(match=f"{prefix}:*", count=100))
        if leftovers:
            r.delete(*leftovers)
        r.close()

    print(f"{c.passed} passed, {len(c.failed)} failed")
    if c.failed:
        print("failures:")
        for f in c.failed:
            print(f"  {f}")
        sys.exit(1)


if __name__ == "__main__":
    main()
