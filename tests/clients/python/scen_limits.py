"""`limits` scenarios: the fixed window, moving window and sliding-window-counter strategies
on Redis storage enforce exactly the configured counts, alone and with several processes
hitting the same limit, and let hits through again once the window has passed.

`limits.agrees-with-rl-check` runs one workload through `limits` (fixed and moving
window, Lua path) and through Basalt's `RL.CHECK key FIXED` / `RL.CHECK key LOG`, and
checks that every request gets the same decision from both and from a plain model of the
two algorithms. Against a server without `RL.CHECK` (the reference run on Redis) only
`limits` is checked against the model.
"""

import multiprocessing
import time

import redis

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


# The agreement workload: limits per second for three keys, and each round's requests as
# (key index, cost). Fixed windows get cost 1 only: `limits` counts a refused costly hit
# in a fixed window (INCRBY first, compare after) while RL.CHECK FIXED charges only what
# it allows, so after such a refusal a smaller hit would pass in one and not the other.
AGREE_LIMITS = [3, 5, 8]
AGREE_ROUNDS = [
    [(k, 1) for _ in range(10) for k in range(3)],
    [(0, 1), (1, 1), (2, 1)] * 2 + [(2, 1)] * 7 + [(0, 1)] * 3 + [(1, 1)] * 4,
    [(k, 1) for k in (2, 2, 1, 0, 2, 1, 0, 0, 1, 2, 2, 2, 1, 1, 2, 2, 2, 0)],
]
AGREE_COSTS = [
    [(k, c) for c in (1, 2, 1, 3, 1, 1, 2) for k in range(3)],
    [(0, 3), (0, 1), (1, 5), (1, 1), (2, 6), (2, 2), (2, 1), (0, 2), (1, 4), (2, 1)],
    [(2, 8), (1, 2), (1, 3), (1, 1), (0, 1), (0, 1), (0, 1), (0, 1), (2, 1)],
]
# Attempts at fitting a round inside one second of server time before giving up (a round
# that straddles a boundary is run again on fresh keys, never judged).
AGREE_ATTEMPTS = 5


def _model(requests):
    """Decisions of a limit per window that charges only what it allows: a fixed window,
    or a sliding log within one window (nothing expires inside a round)."""
    used = [0] * len(AGREE_LIMITS)
    out = []
    for k, cost in requests:
        ok = used[k] + cost <= AGREE_LIMITS[k]
        if ok:
            used[k] += cost
        out.append(ok)
    return out


def _server_ms(r):
    secs, usecs = r.time()
    return secs * 1000 + usecs // 1000


def _wait_window_start(r):
    """Sleeps until just after the start of the next even second of server time, so a
    round never shares a window with the previous one (limits' fixed window key lives 1 s
    from its first hit; moving-window entries 1 s)."""
    now = _server_ms(r)
    target = (now // 2000 + 1) * 2000 + 20
    time.sleep((target - now) / 1000)
    wait_until(lambda: _server_ms(r) >= target, "server time to reach the next window")


def _rl_check(r, key, alg, limit, cost):
    reply = r.execute_command("RL.CHECK", key, alg, limit, 1000, "COST", cost)
    if not isinstance(reply, dict):  # RESP2: the map's pairs as a flat array
        reply = dict(zip(reply[::2], reply[1::2]))
    return reply["allowed"] == 1


def _has_rl_check(r, probe_key):
    try:
        r.execute_command("RL.INFO", probe_key)
        return True
    except redis.ResponseError as e:
        if "unknown command" in str(e):
            return False
        raise


def agrees_with_rl_check(ctx):
    r = ctx.client()
    has_rl = _has_rl_check(r, ctx.key("probe"))
    storage = _storage(ctx)
    fixed = FixedWindowRateLimiter(storage)
    moving = MovingWindowRateLimiter(storage)
    items = [parse(f"{n} per 1 second") for n in AGREE_LIMITS]
    totals = {"fixed": [0, 0], "moving": [0, 0]}
    for rnd, (plain, costly) in enumerate(zip(AGREE_ROUNDS, AGREE_COSTS)):
        for attempt in range(AGREE_ATTEMPTS):
            tag = f"r{rnd}a{attempt}"
            _wait_window_start(r)
            start = _server_ms(r)
            got = {"fixed": [], "moving": [], "rl-fixed": [], "rl-log": []}
            for k, cost in plain:
                got["fixed"].append(fixed.hit(items[k], tag, "f", str(k), cost=cost))
                if has_rl:
                    key = ctx.key("rlf", tag, k)
                    got["rl-fixed"].append(_rl_check(r, key, "FIXED", AGREE_LIMITS[k], cost))
            for k, cost in costly:
                got["moving"].append(moving.hit(items[k], tag, "m", str(k), cost=cost))
                if has_rl:
                    key = ctx.key("rll", tag, k)
                    got["rl-log"].append(_rl_check(r, key, "LOG", AGREE_LIMITS[k], cost))
            if _server_ms(r) // 1000 == start // 1000:
                break
        else:
            raise AssertionError(f"round {rnd} never fit in one second of server time")
        expect(got["fixed"], _model(plain), f"round {rnd}: limits fixed window")
        expect(got["moving"], _model(costly), f"round {rnd}: limits moving window")
        if has_rl:
            expect(got["rl-fixed"], got["fixed"], f"round {rnd}: RL.CHECK FIXED vs limits")
            expect(got["rl-log"], got["moving"], f"round {rnd}: RL.CHECK LOG vs limits")
        totals["fixed"][0] += sum(got["fixed"])
        totals["fixed"][1] += sum(got["rl-fixed"]) if has_rl else sum(got["fixed"])
        totals["moving"][0] += sum(got["moving"])
        totals["moving"][1] += sum(got["rl-log"]) if has_rl else sum(got["moving"])
    expect(totals["fixed"][1], totals["fixed"][0], "allowed in total, fixed windows")
    expect(totals["moving"][1], totals["moving"][0], "allowed in total, moving windows")
    storage.storage.close()


SCENARIOS = [
    ("limits.fixed-window", _scenario(FixedWindowRateLimiter)),
    ("limits.moving-window", _scenario(MovingWindowRateLimiter)),
    ("limits.sliding-window-counter", _scenario(SlidingWindowCounterRateLimiter)),
    ("limits.agrees-with-rl-check", agrees_with_rl_check),
]
