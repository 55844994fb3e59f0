"""Shared helpers for the Python client-compatibility scenarios.

A scenario is a function `fn(ctx)` that raises on failure (AssertionError with a clear
message, or whatever the library raised) and returns normally on success. It never
asserts how long something took: waits are bounded by `wait_until`, which fails with a
message naming what never happened.

Every scenario works under its own random key prefix (`ctx.prefix`) and deletes its
keys at the end, so scenarios can share one server (and run against a server that holds
other data) without seeing each other.
"""

import os
import sys
import time
import uuid

import redis


class Ctx:
    """What a scenario knows about the server it tests and its own namespace."""

    def __init__(self, host, port, name):
        self.host = host
        self.port = port
        self.name = name
        # Short and free of characters that some libraries treat specially (':' is used
        # by RQ and limits as their own separator, so it stays out of the prefix).
        self.prefix = "cc-" + uuid.uuid4().hex[:10]
        # Basalt's Faktory listener (`--faktory-port`), for the faktory.* scenarios.
        self.faktory_port = int(os.environ.get("BASALT_FAKTORY_PORT") or 0)
        self._clients = []

    @property
    def url(self):
        return f"redis://{self.host}:{self.port}/0"

    def client(self, **kw):
        """A new redis-py client (decode_responses=True unless told otherwise)."""
        kw.setdefault("decode_responses", True)
        kw.setdefault("socket_timeout", 10)
        c = redis.Redis(host=self.host, port=self.port, **kw)
        self._clients.append(c)
        return c

    def key(self, *parts):
        return ":".join((self.prefix,) + tuple(str(p) for p in parts))

    def cleanup(self):
        """Deletes every key that starts with the prefix (best effort) and closes clients."""
        try:
            c = redis.Redis(host=self.host, port=self.port, socket_timeout=10)
            batch = []
            for k in c.scan_iter(match=f"*{self.prefix}*", count=500):
                batch.append(k)
                if len(batch) >= 500:
                    c.delete(*batch)
                    batch = []
            if batch:
                c.delete(*batch)
            c.close()
        except Exception:  # noqa: BLE001 - cleanup must not hide the scenario's outcome
            pass
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass


def expect(got, want, what):
    """Fails with `what: expected X, got Y` unless got == want."""
    assert got == want, f"{what}: expected {want!r}, got {got!r}"


def wait_until(pred, what, timeout=20.0, step=0.02):
    """Polls `pred()` until it is truthy and returns its value; fails after `timeout` s.

    The bound only keeps a broken server from hanging the suite: a scenario passes or
    fails on what happened, never on how fast.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not true after {timeout:.0f} s")
        time.sleep(step)


def python_exe():
    """The interpreter running this suite (workers use the same one)."""
    return sys.executable or "python3"


def child_env(extra_path):
    """Environment for helper processes: PYTHONPATH includes `extra_path`."""
    env = dict(os.environ)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = extra_path + (os.pathsep + old if old else "")
    return env
