"""Job functions for the RQ scenarios. RQ workers import them by name (`rq_tasks.record`),
so this module must be importable from the worker processes (PYTHONPATH has this folder).

Every job writes what it did to Redis through its own connection, so the scenario can
count how many times each job really ran, whichever worker ran it.
"""

from rq import get_current_job


def record(counts_key, i):
    """Counts one execution of job `i` (HINCRBY) and returns `i * 2`."""
    job = get_current_job()
    job.connection.hincrby(counts_key, str(i), 1)
    job.connection.hset(counts_key + ":worker", str(i), job.worker_name or "?")
    return i * 2


def fail(counts_key, i):
    """Counts one execution of job `i`, then fails with a recognisable message."""
    job = get_current_job()
    job.connection.hincrby(counts_key, str(i), 1)
    raise ValueError(f"job {i} fails on purpose")


def flaky(counts_key, i, failures):
    """Fails the first `failures` times it runs, then returns 'ok'."""
    job = get_current_job()
    n = job.connection.hincrby(counts_key, str(i), 1)
    if n <= failures:
        raise RuntimeError(f"attempt {n} of job {i} fails on purpose")
    return "ok"


def append(list_key, value):
    """Appends `value` to a list, recording the order in which jobs ran."""
    get_current_job().connection.rpush(list_key, value)
    return value
