"""Basalt's native job queues from Python: plain redis-py (`execute_command` on the JOB.*
commands) and the PyPI `faktory` client and worker on Basalt's Faktory port.

These scenarios are Basalt-only (Redis has no JOB.* commands and no Faktory port): the
runner skips every `jobs.*` and `faktory.*` scenario when CLIENTS_TARGET=redis. The
Faktory scenario needs BASALT_FAKTORY_PORT (`.ci/run` starts basalt-server with
`--faktory-port`).
"""

import json
import os
import signal
import subprocess
import threading

from common import Ctx, child_env, expect, python_exe, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


def as_dict(reply):
    """A map reply as a dict: redis-py hands RESP3 maps over as dicts already, RESP2 ones
    as flat lists of pairs. None stays None."""
    if reply is None or isinstance(reply, dict):
        return reply
    return dict(zip(reply[0::2], reply[1::2]))


def job_get(r, jid):
    return as_dict(r.execute_command("JOB.GET", jid))


def fetch_one(r, *args):
    """JOB.FETCH returning the first job as a dict, or None."""
    jobs = r.execute_command("JOB.FETCH", *args)
    return as_dict(jobs[0]) if jobs else None


def redis_py_push_fetch_ack(ctx: Ctx):
    r = ctx.client()
    q = ctx.key("jobs")
    low = r.execute_command("JOB.PUSH", q, "low", "PRIORITY", 1)
    high = r.execute_command("JOB.PUSH", q, "high", "PRIORITY", 9, "ID", ctx.key("high"))
    expect(high, ctx.key("high"), "a jid given with ID")
    # Pushing the same ID again is a no-op answering it.
    expect(r.execute_command("JOB.PUSH", q, "dup", "ID", ctx.key("high")), high, "idempotent push")

    job = fetch_one(r, q, "WORKER", "py-1")
    expect((job["jid"], job["payload"], job["attempt"]), (high, "high", 1), "highest priority first")
    token = job["token"]
    expect(job_get(r, high)["state"], "active", "state after FETCH")
    r.execute_command("JOB.PROGRESS", high, token, 40, "reading")
    expect(job_get(r, high)["progress"], 40, "progress")
    expect(r.execute_command("JOB.ACK", high, token, "RESULT", "42", "IDEMPOTENCY", "k1"),
           "42", "ACK returns the result")
    # A retried ACK with the same idempotency key gets the stored result back.
    expect(r.execute_command("JOB.ACK", high, "other-token", "IDEMPOTENCY", "k1"), "42",
           "repeated ACK")
    info = job_get(r, high)
    expect((info["state"], info["result"], info["worker"]), ("completed", "42", "py-1"),
           "completed job")

    # A failure with retries left comes back with its error; NORETRY makes it dead.
    job = fetch_one(r, q)
    expect(job["jid"], low, "the other job")
    out = as_dict(r.execute_command("JOB.FAIL", low, job["token"], "boom", "RETRY_IN", 0))
    expect(out["state"], "failed", "FAIL with retries left")
    again = wait_until(lambda: fetch_one(r, q), "the retried job is delivered again")
    expect((again["jid"], again["attempt"], again["error"]), (low, 2, "boom"), "retry")
    # The first claim is stale now.
    try:
        r.execute_command("JOB.ACK", low, job["token"])
        raise AssertionError("an ACK with a stale claim was accepted")
    except Exception as e:  # noqa: BLE001 - redis-py raises ResponseError
        assert str(e).startswith("STALE"), f"stale ACK error: {e}"
    out = as_dict(r.execute_command("JOB.FAIL", low, again["token"], "fatal", "NORETRY"))
    expect((out["state"], out["retry_at"]), ("dead", -1), "FAIL NORETRY")
    dead = [as_dict(j) for j in r.execute_command("DLQ.LIST", q)]
    expect([d["jid"] for d in dead], [low], "dead-letter list")
    expect(r.execute_command("DLQ.REQUEUE", q, "ALL"), 1, "requeued")
    stats = as_dict(r.execute_command("QUEUE.STATS", q))
    expect((stats["waiting"], stats["completed"], stats["dead"]), (1, 1, 0), "queue stats")
    expect(r.type(q), "queue", "TYPE of a queue")


def redis_py_blocking_fetch(ctx: Ctx):
    r = ctx.client()
    q = ctx.key("block")
    got = {}

    def waiter():
        c = ctx.client(socket_timeout=30)
        got["job"] = fetch_one(c, q, "BLOCK", 15000)

    t = threading.Thread(target=waiter)
    t.start()
    # The waiter is blocked once the server lists it as a blocked client.
    wait_until(lambda: r.info("clients").get("blocked_clients", 0) >= 1, "the fetch blocks")
    jid = r.execute_command("JOB.PUSH", q, "wake up")
    t.join(30)
    assert not t.is_alive(), "the blocked fetch never returned"
    expect(got["job"]["jid"], jid, "the pushed job wakes the blocked fetch")


def faktory_python_push_process_retry(ctx: Ctx):
    import faktory  # noqa: PLC0415 - the library under test

    assert ctx.faktory_port, "BASALT_FAKTORY_PORT is not set (basalt-server --faktory-port)"
    r = ctx.client()
    # Retries on the engine's backoff (1 s first) instead of Faktory's 15+ s.
    old = r.config_get("faktory-retry-backoff")["faktory-retry-backoff"]
    r.config_set("faktory-retry-backoff", "job")
    worker = None
    try:
        url = f"tcp://{ctx.host}:{ctx.faktory_port}"
        q = ctx.prefix + "-fq"
        add_jid, flaky_jid = ctx.prefix + "-add", ctx.prefix + "-flaky"
        with faktory.connection(url) as c:
            assert c.queue("add", args=(2, 3), queue=q, jid=add_jid, retry=3), "PUSH add"
            assert c.queue("flaky", args=(ctx.key("tries"),), queue=q, jid=flaky_jid,
                           retry=3), "PUSH flaky"
        # The Faktory jobs are Basalt jobs: their JSON is the payload.
        info = job_get(r, add_jid)
        expect((info["state"], info["queue"]), ("waiting", q), "pushed job seen by JOB.GET")
        payload = json.loads(info["payload"])
        expect((payload["jobtype"], payload["args"]), ("add", [2, 3]), "payload")

        worker = subprocess.Popen(
            [python_exe(), os.path.join(HERE, "faktory_worker.py"), url, q, ctx.host,
             str(ctx.port), ctx.key("sum")],
            env=child_env(HERE), start_new_session=True)
        wait_until(lambda: job_get(r, add_jid)["state"] == "completed", "add completed", 60)
        wait_until(lambda: job_get(r, flaky_jid)["state"] == "completed",
                   "flaky completed after a retry", 60)
        expect(r.get(ctx.key("sum")), "5", "the worker's result")
        info = job_get(r, flaky_jid)
        expect((info["attempts"], info["failures"]), (2, 1), "one failure, then success")
        err = json.loads(info["errors"][0])
        expect((err["errtype"], err["message"]), ("RuntimeError", "first attempt fails"),
               "the failure Faktory reported")
    finally:
        r.config_set("faktory-retry-backoff", old)
        if worker is not None:
            try:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(worker.pid, signal.SIGKILL)


SCENARIOS = [
    ("jobs.redis_py_push_fetch_ack", redis_py_push_fetch_ack),
    ("jobs.redis_py_blocking_fetch", redis_py_blocking_fetch),
    ("faktory.python_push_process_retry", faktory_python_push_process_retry),
]
