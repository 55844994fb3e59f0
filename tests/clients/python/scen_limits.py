"""`limits` scenarios: the fixed window, moving window and sliding-window-counter strategies
on Redis storage enforce exactly the configured counts, alone and with several processes
hitting the same limit, and let hits through again once the window has passed.
"""

import multiprocessing

from limits import parse
from limits.storage import RedisStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from common import expect, wait_until


def _storage(ctx):
    return RedisStorage(ctx.url, key_prefix=ctx.prefix, socket_timeout=10)


def _hitter(url, prefix, strategy_cls, limit, ident, n, results):
    limiter = strategy_cls(RedisStorage(url, key_prefix=prefix, socket_timeout=10))
    item = parse(limit)
    results.put(sum(1 for _ in range(n) if limiter.hit(item, ident)))


def _scenario(strategy_cls):
    def run(ctx):
        storage = _storage(ctx)
        expect(storage.check(), True, "storage health check")
        limiter = strategy_cls(storage)

        # Sequential: exactly `amount` hits go through in a long window.
        item = parse("10/hour")
        got = [limiter.hit(item, "user", "a") for _ in range(15)]
        expect(got, [True] * 10 + [False] * 5, "15 hits against 10/hour")
        expect(limiter.test(item, "user", "a"), False, "test() once exhausted")
        expect(limiter.get_window_stats(item, "user", "a").remaining, 0, "remaining")
        # Another identifier has its own budget.
        expect(limiter.hit(item, "user", "b"), True, "hit for another identifier")
        expect(limiter.get_window_stats(item, "user", "b").remaining, 9,
               "remaining for the other identifier")
        # Costs count as several hits (what a refused costly hit leaves behind differs
        # between strategies, so nothing is hit after it).
        expect(limiter.hit(item, "user", "c", cost=7), True, "hit with cost 7")
        expect(limiter.test(item, "user", "c", cost=3), True, "test() cost 3 fits")
        expect(limiter.test(item, "user", "c", cost=4), False, "test() cost 4 does not")
        expect(limiter.hit(item, "user", "c", cost=4), False, "hit cost 4 over the budget")
        # clear() resets the limit.
        limiter.clear(item, "user", "a")
        expect(limiter.hit(item, "user", "a"), True, "hit after clear")

        # Concurrent: 4 processes x 20 hits against 25/hour: exactly 25 pass.
        mp = multiprocessing.get_context("fork")
        results = mp.Queue()
        procs = [mp.Process(target=_hitter,
                            args=(ctx.url, ctx.prefix, strategy_cls, "25/hour", "shared",
                                  20, results))
                 for _ in range(4)]
        for p in procs:
            p.start()
        passed = 0
        for _ in procs:
            passed += results.get(timeout=120)
        for p in procs:
            p.join(timeout=30)
            expect(p.exitcode, 0, "hitter process exit code")
        expect(passed, 25, "hits that passed from 4 processes against 25/hour")

        # A short window lets hits through again once it has passed. (2 s, not 1 s: the
        # four hits must land in one window even on a loaded machine.)
        short = parse("3 per 2 seconds")
        expect([limiter.hit(short, "s") for _ in range(4)], [True, True, True, False],
               "4 hits against 3 per 2 seconds")
        wait_until(lambda: limiter.test(short, "s"), "limit 3 per 2 seconds to reopen")
        expect(limiter.hit(short, "s"), True, "hit after the window passed")
        storage.storage.close()

    return run


SCENARIOS = [
    ("limits.fixed-window", _scenario(FixedWindowRateLimiter)),
    ("limits.moving-window", _scenario(MovingWindowRateLimiter)),
    ("limits.sliding-window-counter", _scenario(SlidingWindowCounterRateLimiter)),
]
