"""python-redis-lock scenarios: mutual exclusion between processes, auto-renewal keeps a
lock alive past its expire time, and an abandoned lock expires so others can take it.
"""

import multiprocessing
import time

import redis
import redis_lock

from common import expect, wait_until


def _worker(host, port, name, counter, inside, n, errors):
    r = redis.Redis(host=host, port=port, socket_timeout=30)
    for _ in range(n):
        with redis_lock.Lock(r, name, expire=30):
            # Anyone else inside at the same time is a broken lock.
            if r.incr(inside) != 1:
                errors.put("two holders at once")
            v = int(r.get(counter) or 0)
            time.sleep(0.001)
            r.set(counter, v + 1)
            r.decr(inside)
    r.close()


def mutual_exclusion(ctx):
    """4 processes x 25 critical sections: the counter is exact, never two holders."""
    r = ctx.client()
    name = ctx.key("mutex")
    counter, inside = ctx.key("counter"), ctx.key("inside")

    a = redis_lock.Lock(r, name, expire=30)
    assert a.acquire(blocking=False), "first acquire"
    b = redis_lock.Lock(r, name, expire=30)
    expect(b.acquire(blocking=False), False, "second acquire while held")
    expect(b.acquire(timeout=1), False, "blocking acquire that times out")
    expect(b.locked(), True, "locked() seen by another client")
    expect(a.get_owner_id(), a.id, "owner id")
    try:
        b.release()
    except redis_lock.NotAcquired:
        pass
    else:
        raise AssertionError("release by a non-owner succeeded")
    a.release()
    expect(a.locked(), False, "locked() after release")

    mp = multiprocessing.get_context("fork")
    errors = mp.Queue()
    procs = [mp.Process(target=_worker,
                        args=(ctx.host, ctx.port, name, counter, inside, 25, errors))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        if p.is_alive():
            p.kill()
            raise AssertionError("a lock worker did not finish")
        expect(p.exitcode, 0, "lock worker exit code")
    assert errors.empty(), f"mutual exclusion broken: {errors.get()}"
    expect(int(r.get(counter)), 100, "counter after 100 locked increments")


def auto_renewal(ctx):
    """A lock with expire=2 and auto_renewal stays held past its expire time."""
    r = ctx.client()
    name = ctx.key("renewed")
    # The renewal thread extends every 2/3 of the expire time; 2 s leaves it 0.67 s of
    # slack on a loaded machine.
    lock = redis_lock.Lock(r, name, expire=2, auto_renewal=True)
    assert lock.acquire(blocking=False), "acquire"
    other = redis_lock.Lock(ctx.client(), name, expire=2)
    # Hold it for two expire periods; no one else may take it meanwhile.
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        expect(other.acquire(blocking=False), False, "acquire while renewed lock is held")
        time.sleep(0.1)
    expect(lock.get_owner_id(), lock.id, "owner after two expire periods")
    ttl = r.pttl("lock:" + name)
    assert 0 < ttl <= 2000, f"PTTL of a renewed lock with expire=2: {ttl}"
    lock.release()
    assert other.acquire(blocking=False), "acquire after release"
    other.release()

    # extend() resets the expire of a lock without auto-renewal.
    ext = redis_lock.Lock(r, name, expire=5)
    assert ext.acquire(blocking=False), "acquire for extend"
    ext.extend(expire=100)
    ttl = r.pttl("lock:" + name)
    assert 5000 < ttl <= 100000, f"PTTL after extend(100): {ttl}"
    ext.release()


def expiry(ctx):
    """An abandoned lock expires; a blocked waiter then gets it; reset() frees a lock."""
    r = ctx.client()
    name = ctx.key("abandoned")
    lock = redis_lock.Lock(r, name, expire=1)
    assert lock.acquire(blocking=False), "acquire"
    # Never released: the holder "crashed".
    waiter = redis_lock.Lock(ctx.client(), name, expire=20)
    # Nothing signals an expiry, so the waiter polls with short blocking acquires.
    wait_until(lambda: waiter.acquire(blocking=True, timeout=1),
               "blocking acquire once the abandoned lock expired")
    expect(waiter.get_owner_id(), waiter.id, "new owner")
    try:
        lock.release()
    except redis_lock.NotAcquired:
        pass
    else:
        raise AssertionError("release of an expired lock owned by another succeeded")
    waiter.release()

    # Release signals a blocked waiter (BLPOP on the signal list) well before expiry.
    holder = redis_lock.Lock(r, name, expire=60)
    assert holder.acquire(blocking=False), "acquire long lock"
    got = multiprocessing.get_context("fork").Queue()

    def wait_for_it():
        c = redis.Redis(host=ctx.host, port=ctx.port, socket_timeout=60)
        got.put(redis_lock.Lock(c, name, expire=60).acquire(timeout=50))

    p = multiprocessing.get_context("fork").Process(target=wait_for_it)
    p.start()
    wait_until(lambda: r.execute_command("CLIENT", "LIST").count("cmd=blpop") >= 1,
               "waiter blocked in BLPOP")
    holder.release()
    expect(got.get(timeout=30), True, "waiter acquired after release")
    p.join(timeout=10)

    redis_lock.Lock(r, name).reset()
    expect(redis_lock.Lock(r, name).locked(), False, "locked() after reset")


SCENARIOS = [
    ("redis-lock.mutual-exclusion", mutual_exclusion),
    ("redis-lock.auto-renewal", auto_renewal),
    ("redis-lock.expiry", expiry),
]
