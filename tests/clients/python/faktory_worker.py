"""A PyPI `faktory` worker for the Faktory scenario (run as its own process: the library
installs signal handlers and exits the process when it stops).

Usage: faktory_worker.py FAKTORY_URL QUEUE REDIS_HOST REDIS_PORT SUM_KEY

Jobs: `add(a, b)` stores a + b at SUM_KEY through redis-py; `flaky(key)` fails on its first
attempt (counted at `key`) and succeeds on the next.
"""

import logging
import sys

import faktory
import redis

url, queue, host, port, sum_key = sys.argv[1:6]
r = redis.Redis(host=host, port=int(port), decode_responses=True)


def add(a, b):
    r.set(sum_key, a + b)


def flaky(key):
    if r.incr(key) == 1:
        raise RuntimeError("first attempt fails")


logging.basicConfig(level=logging.INFO)
w = faktory.Worker(faktory=url, queues=[queue], concurrency=2, use_threads=True)
w.register("add", add)
w.register("flaky", flaky)
w.run()
