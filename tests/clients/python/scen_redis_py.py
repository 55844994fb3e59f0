"""redis-py scenarios: commands over every data type, pipelines, transactions with a WATCH
retry loop under contention from several processes, pub/sub and the `Lock` helper.
"""

import multiprocessing
import os
import sys
import time

import redis
from redis.exceptions import LockError, LockNotOwnedError, ResponseError, WatchError

from common import expect, wait_until

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import redis_py_smoke  # noqa: E402  (tests/clients/redis_py_smoke.py)


def _smoke(proto):
    def run(ctx):
        r = ctx.client(protocol=proto)
        failed = []
        for name, fn in redis_py_smoke.checks(r, proto, ctx.prefix):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - every failing check is reported
                failed.append(f"{name} ({type(e).__name__}: {e})")
        assert not failed, "; ".join(failed)

    return run


def commands(ctx):
    """Hashes, lists, sets, sorted sets, bitmaps, HyperLogLog, typed errors, SCAN types."""
    r = ctx.client()
    k = ctx.key

    expect(r.hset(k("h"), mapping={"a": "1", "b": "2"}), 2, "HSET mapping")
    expect(r.hgetall(k("h")), {"a": "1", "b": "2"}, "HGETALL")
    expect(r.hincrby(k("h"), "a", 9), 10, "HINCRBY")
    expect(r.hmget(k("h"), ["a", "zz", "b"]), ["10", None, "2"], "HMGET")
    expect(sorted(r.hkeys(k("h"))), ["a", "b"], "HKEYS")
    expect(r.hdel(k("h"), "b", "zz"), 1, "HDEL")
    expect(r.hlen(k("h")), 1, "HLEN")

    expect(r.rpush(k("l"), "a", "b", "c"), 3, "RPUSH")
    expect(r.lpush(k("l"), "z"), 4, "LPUSH")
    expect(r.lrange(k("l"), 0, -1), ["z", "a", "b", "c"], "LRANGE")
    expect(r.lpop(k("l"), 2), ["z", "a"], "LPOP count")
    expect(r.lmove(k("l"), k("l2"), "RIGHT", "LEFT"), "c", "LMOVE")
    expect(r.blpop([k("empty"), k("l2")], timeout=1), (k("l2"), "c"), "BLPOP ready key")
    expect(r.blpop([k("empty")], timeout=0.1), None, "BLPOP timeout")
    expect(r.llen(k("l")), 1, "LLEN")

    expect(r.sadd(k("s1"), "a", "b", "c"), 3, "SADD")
    r.sadd(k("s2"), "b", "c", "d")
    expect(r.sinter(k("s1"), k("s2")), {"b", "c"}, "SINTER")
    expect(r.sunion(k("s1"), k("s2")), {"a", "b", "c", "d"}, "SUNION")
    expect(r.sismember(k("s1"), "a"), True, "SISMEMBER")
    expect(r.smismember(k("s1"), ["a", "x"]), [True, False], "SMISMEMBER")

    expect(r.zadd(k("z"), {"a": 1, "b": 2.5, "c": 3}), 3, "ZADD")
    expect(r.zrange(k("z"), 0, -1, withscores=True),
           [("a", 1.0), ("b", 2.5), ("c", 3.0)], "ZRANGE WITHSCORES")
    expect(r.zincrby(k("z"), 10, "a"), 11.0, "ZINCRBY")
    expect(r.zrangebyscore(k("z"), 2, 5), ["b", "c"], "ZRANGEBYSCORE")
    expect(r.zrank(k("z"), "a"), 2, "ZRANK")
    expect(r.zpopmin(k("z")), [("b", 2.5)], "ZPOPMIN")
    expect(r.zadd(k("z"), {"c": 1}, xx=True, ch=True), 1, "ZADD XX CH")

    expect(r.setbit(k("bits"), 7, 1), 0, "SETBIT")
    expect(r.bitcount(k("bits")), 1, "BITCOUNT")
    expect(r.pfadd(k("hll"), *[f"m{i}" for i in range(100)]), 1, "PFADD")
    assert 95 <= r.pfcount(k("hll")) <= 105, f"PFCOUNT of 100 members: {r.pfcount(k('hll'))}"

    try:
        r.lpush(k("h"), "x")
    except ResponseError as e:
        assert str(e).startswith("WRONGTYPE"), f"LPUSH on a hash: {e}"
    else:
        raise AssertionError("LPUSH on a hash did not fail")

    expect(set(r.scan_iter(match=f"{ctx.prefix}:*", _type="zset")), {k("z")}, "SCAN TYPE zset")
    expect(r.type(k("s1")), "set", "TYPE set")

    # The same commands through a RESP3 connection, where replies are maps, sets, doubles.
    r3 = ctx.client(protocol=3)
    expect(r3.hgetall(k("h")), {"a": "10"}, "RESP3 HGETALL")
    expect(r3.zscore(k("z"), "a"), 11.0, "RESP3 ZSCORE")
    expect(r3.smembers(k("s2")), {"b", "c", "d"}, "RESP3 SMEMBERS")


def streams(ctx):
    """XADD/XRANGE/XLEN and a consumer group: XREADGROUP, XPENDING, XACK, XCLAIM."""
    r = ctx.client()
    s = ctx.key("stream")
    ids = [r.xadd(s, {"n": str(i)}) for i in range(5)]
    expect(r.xlen(s), 5, "XLEN")
    expect([e[1]["n"] for e in r.xrange(s)], ["0", "1", "2", "3", "4"], "XRANGE fields")
    expect(r.xgroup_create(s, "g", id="0"), True, "XGROUP CREATE")
    got = r.xreadgroup("g", "c1", {s: ">"}, count=3)
    expect([e[0] for e in got[0][1]] if got else got, ids[:3], "XREADGROUP ids")
    pending = r.xpending(s, "g")
    expect(pending["pending"], 3, "XPENDING count")
    expect(r.xack(s, "g", ids[0], ids[1]), 2, "XACK")
    claimed = r.xclaim(s, "g", "c2", 0, [ids[2]])
    expect([e[0] for e in claimed], [ids[2]], "XCLAIM")
    expect(r.xtrim(s, maxlen=2, approximate=False), 3, "XTRIM MAXLEN")


def pipelines(ctx):
    """Non-transactional and transactional pipelines, errors inside both."""
    r = ctx.client()
    k = ctx.key

    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(k("p", i), i)
    for i in range(100):
        p.incr(k("p", i))
    res = p.execute()
    expect(res[:100], [True] * 100, "pipeline SET replies")
    expect(res[100:], list(range(1, 101)), "pipeline INCR replies")

    # MULTI/EXEC through a transactional pipeline.
    p = r.pipeline(transaction=True)
    p.set(k("t"), "1").incr(k("t")).get(k("t")).lpush(k("tl"), "x").lrange(k("tl"), 0, -1)
    expect(p.execute(), [True, 2, "2", 1, ["x"]], "transaction replies")

    # A runtime error inside EXEC does not roll back the other commands.
    p = r.pipeline(transaction=True)
    p.set(k("rt"), "abc").incr(k("rt")).set(k("rt2"), "ok")
    res = p.execute(raise_on_error=False)
    expect(res[0], True, "EXEC slot 0")
    assert isinstance(res[1], ResponseError), f"EXEC slot 1 should be an error: {res[1]!r}"
    expect(res[2], True, "EXEC slot 2")
    expect(r.get(k("rt2")), "ok", "command after a runtime error inside EXEC ran")

    # A command rejected while queueing aborts the whole transaction (EXECABORT).
    p = r.pipeline(transaction=True)
    p.set(k("ab"), "1")
    p.execute_command("SET", k("ab"))  # wrong number of arguments
    try:
        p.execute()
    except ResponseError as e:
        assert "EXECABORT" in str(e) or "wrong number of arguments" in str(e), \
            f"queued-error transaction raised {e!r}"
    else:
        raise AssertionError("transaction with a queue-time error did not fail")
    expect(r.exists(k("ab")), 0, "EXECABORT must not run any command")


def _watch_worker(host, port, key, n, retries_key):
    r = redis.Redis(host=host, port=port, socket_timeout=10)
    retries = 0
    for _ in range(n):
        while True:
            with r.pipeline() as p:
                try:
                    p.watch(key)
                    value = int(p.get(key) or 0)
                    p.multi()
                    p.set(key, value + 1)
                    p.execute()
                    break
                except WatchError:
                    retries += 1
    r.incrby(retries_key, retries)
    r.close()


def watch_contention(ctx):
    """A WATCH/GET/MULTI/SET/EXEC retry loop in 4 processes: the counter ends exact."""
    r = ctx.client()
    k = ctx.key

    # Deterministic first: another client's write aborts a watched transaction...
    other = ctx.client()
    r.set(k("w"), "0")
    with r.pipeline() as p:
        p.watch(k("w"))
        other.set(k("w"), "changed")
        p.multi()
        p.set(k("w"), "mine")
        try:
            p.execute()
        except WatchError:
            pass
        else:
            raise AssertionError("EXEC succeeded although a watched key was written")
    expect(r.get(k("w")), "changed", "value after an aborted transaction")
    # ...and a transaction whose watched keys were not touched goes through.
    with r.pipeline() as p:
        p.watch(k("w"))
        p.multi()
        p.set(k("w"), "mine")
        expect(p.execute(), [True], "EXEC with untouched watched key")

    procs, n, per = [], 4, 50
    mp = multiprocessing.get_context("fork")
    for _ in range(n):
        pr = mp.Process(target=_watch_worker,
                        args=(ctx.host, ctx.port, k("counter"), per, k("retries")))
        pr.start()
        procs.append(pr)
    for pr in procs:
        pr.join(timeout=120)
        if pr.is_alive():
            pr.kill()
            raise AssertionError("a WATCH worker process did not finish")
        expect(pr.exitcode, 0, "WATCH worker exit code")
    expect(int(r.get(k("counter"))), n * per,
           f"counter after {n}x{per} WATCH-guarded increments "
           f"(retries: {r.get(k('retries'))})")


def _pubsub(proto):
    def run(ctx):
        r = ctx.client(protocol=proto)
        sub = ctx.client(protocol=proto)
        ch, pat = ctx.key("news"), ctx.key("n*")
        ps = sub.pubsub()
        ps.subscribe(ch)
        ps.psubscribe(pat)

        def next_message(what):
            return wait_until(lambda: ps.get_message(timeout=0.2), what)

        m = next_message("subscribe confirmation")
        expect((m["type"], m["channel"], m["data"]), ("subscribe", ch, 1), "subscribe reply")
        m = next_message("psubscribe confirmation")
        expect((m["type"], m["channel"], m["data"]), ("psubscribe", pat, 2), "psubscribe reply")

        expect(r.pubsub_numsub(ch), [(ch, 1)], "PUBSUB NUMSUB")
        assert ch in r.pubsub_channels(ctx.key("*")), "PUBSUB CHANNELS lacks the channel"
        assert r.pubsub_numpat() >= 1, "PUBSUB NUMPAT"
        expect(r.publish(ch, "hello"), 2, "PUBLISH receivers (channel + pattern)")
        got = [next_message("published message"), next_message("pattern message")]
        kinds = sorted((m["type"], m["channel"], m["data"], m.get("pattern")) for m in got)
        expect(kinds, [("message", ch, "hello", None), ("pmessage", ch, "hello", pat)],
               "delivered messages")

        # Many messages arrive complete and in order.
        for i in range(50):
            r.publish(ctx.key("nums"), str(i))
        nums = [next_message(f"pattern message {i}")["data"] for i in range(50)]
        expect(nums, [str(i) for i in range(50)], "message order")

        ps.unsubscribe(ch)
        m = next_message("unsubscribe confirmation")
        expect((m["type"], m["channel"]), ("unsubscribe", ch), "unsubscribe reply")
        expect(r.publish(ctx.key("other"), "x"), 0, "PUBLISH to a channel nobody hears")
        ps.punsubscribe()
        m = next_message("punsubscribe confirmation")
        expect((m["type"], m["data"]), ("punsubscribe", 0), "punsubscribe reply")
        ps.close()

    return run


def _lock_worker(host, port, name, counter, n):
    r = redis.Redis(host=host, port=port, socket_timeout=10)
    for _ in range(n):
        with r.lock(name, timeout=10, blocking_timeout=60):
            # A read-modify-write that only stays exact under mutual exclusion.
            v = int(r.get(counter) or 0)
            time.sleep(0.001)
            r.set(counter, v + 1)
    r.close()


def lock(ctx):
    """redis-py's Lock: exclusion between processes, blocking timeout, extend, ownership."""
    r = ctx.client()
    k = ctx.key

    a = r.lock(k("lock"), timeout=30)
    assert a.acquire(blocking=False), "first acquire failed"
    b = r.lock(k("lock"), timeout=30)
    expect(b.acquire(blocking=False), False, "second acquire while held")
    expect(b.acquire(blocking_timeout=0.2), False, "blocking acquire that times out")
    assert a.owned() and a.locked(), "owner sees the lock as owned"
    assert a.extend(30), "extend"
    ttl = r.pttl(k("lock"))
    assert 30000 < ttl <= 60000, f"PTTL after extend(30): {ttl}"
    a.release()
    assert b.acquire(blocking=False), "acquire after release"
    b.release()

    # A lock that expired and was taken by someone else can't be released by the first.
    c = r.lock(k("short"), timeout=0.2)
    assert c.acquire(blocking=False), "acquire short lock"
    wait_until(lambda: not r.exists(k("short")), "short lock expiry")
    d = r.lock(k("short"), timeout=30)
    assert d.acquire(blocking=False), "acquire after expiry"
    try:
        c.release()
    except LockNotOwnedError:
        pass
    else:
        raise AssertionError("release of an expired lock owned by another client succeeded")
    try:
        c.extend(10)
    except LockError:
        pass
    else:
        raise AssertionError("extend of a lock owned by another client succeeded")
    d.release()

    procs, n, per = [], 3, 30
    mp = multiprocessing.get_context("fork")
    for _ in range(n):
        pr = mp.Process(target=_lock_worker,
                        args=(ctx.host, ctx.port, k("mutex"), k("counter"), per))
        pr.start()
        procs.append(pr)
    for pr in procs:
        pr.join(timeout=120)
        if pr.is_alive():
            pr.kill()
            raise AssertionError("a lock worker process did not finish")
        expect(pr.exitcode, 0, "lock worker exit code")
    expect(int(r.get(k("counter"))), n * per, "counter incremented under the lock")


SCENARIOS = [
    ("redis-py.smoke-resp2", _smoke(2)),
    ("redis-py.smoke-resp3", _smoke(3)),
    ("redis-py.commands", commands),
    ("redis-py.streams", streams),
    ("redis-py.pipelines", pipelines),
    ("redis-py.watch-contention", watch_contention),
    ("redis-py.pubsub-resp2", _pubsub(2)),
    ("redis-py.pubsub-resp3", _pubsub(3)),
    ("redis-py.lock", lock),
]
