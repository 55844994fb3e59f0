"""RQ scenarios: 200 jobs through two worker processes (each job runs exactly once,
failures land in the failed registry), retries, and job dependencies.
"""

import os
import subprocess

from rq import Queue, Retry, Worker
from rq.command import send_shutdown_command
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from common import child_env, expect, python_exe, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


def _run_workers(ctx, queue_name, n, timeout=180):
    """Starts `n` burst workers on the queue and waits until every one has exited.

    Job ids carry the scenario's prefix so that cleanup finds `rq:job:<id>` and
    `rq:results:<id>`; the workers' own `rq:worker:<name>` keys carry it through the name.
    """
    procs = [
        subprocess.Popen(
            [python_exe(), os.path.join(HERE, "rq_worker.py"), ctx.url, queue_name,
             f"{ctx.prefix}-w{i}"],
            env=child_env(HERE), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        for i in range(n)
    ]
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outputs.append(out)
            if p.returncode != 0:
                raise AssertionError(
                    f"worker exited with {p.returncode}: {out.strip()[-600:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outputs


def _cleanup_queue(q):
    try:
        q.delete(delete_jobs=True)
    except Exception:  # noqa: BLE001 - best effort
        pass


def jobs(ctx):
    """200 jobs, 10 of which fail, processed by two worker processes."""
    r = ctx.client(decode_responses=False)
    q = Queue(ctx.prefix, connection=r)
    counts = ctx.key("counts")
    failing = {i for i in range(200) if i % 20 == 7}
    try:
        enqueued = {}
        for i in range(200):
            fn = "rq_tasks.fail" if i in failing else "rq_tasks.record"
            job = q.enqueue(fn, counts, i, job_id=f"{ctx.prefix}-job-{i}")
            enqueued[i] = job.id
        expect(q.count, 200, "queue length after enqueue")

        _run_workers(ctx, q.name, 2)

        c = ctx.client()
        ran = c.hgetall(counts)
        expect(sorted(int(i) for i in ran), list(range(200)), "jobs that ran")
        many = {i: n for i, n in ran.items() if n != "1"}
        assert not many, f"jobs that ran more than once: {many}"
        expect(q.count, 0, "queue length after the workers exited")

        ok_ids = {enqueued[i] for i in range(200) if i not in failing}
        fail_ids = {enqueued[i] for i in failing}
        finished = set(FinishedJobRegistry(queue=q).get_job_ids())
        failed = set(FailedJobRegistry(queue=q).get_job_ids())
        expect(finished, ok_ids, "finished registry")
        expect(failed, fail_ids, "failed registry")

        for job in Job.fetch_many(list(enqueued.values()), connection=r):
            i = int(job.id.rsplit("-", 1)[1])
            if i in failing:
                expect(job.get_status(), "failed", f"status of job {i}")
                assert "fails on purpose" in (job.exc_info or ""), \
                    f"exc_info of job {i}: {job.exc_info!r}"
            else:
                expect(job.get_status(), "finished", f"status of job {i}")
                expect(job.return_value(), i * 2, f"result of job {i}")
    finally:
        _cleanup_queue(q)


def retries(ctx):
    """Jobs that fail twice then succeed with Retry(max=2); one that exhausts its retries."""
    r = ctx.client(decode_responses=False)
    q = Queue(ctx.prefix, connection=r)
    counts = ctx.key("counts")
    try:
        ok = [q.enqueue("rq_tasks.flaky", counts, i, 2, retry=Retry(max=2),
                        job_id=f"{ctx.prefix}-flaky-{i}") for i in range(5)]
        bad = q.enqueue("rq_tasks.flaky", counts, 99, 3, retry=Retry(max=2),
                        job_id=f"{ctx.prefix}-doomed")
        _run_workers(ctx, q.name, 1)

        c = ctx.client()
        expect(c.hgetall(counts), {**{str(i): "3" for i in range(5)}, "99": "3"},
               "attempts per job")
        for job in ok:
            job.refresh()
            expect(job.get_status(), "finished", f"status of {job.id}")
            expect(job.return_value(), "ok", f"result of {job.id}")
        bad.refresh()
        expect(bad.get_status(), "failed", "status of the job that exhausted its retries")
        expect(set(FailedJobRegistry(queue=q).get_job_ids()), {bad.id}, "failed registry")
    finally:
        _cleanup_queue(q)


def dependencies(ctx):
    """A chain of jobs where each depends on the previous runs in chain order."""
    r = ctx.client(decode_responses=False)
    q = Queue(ctx.prefix, connection=r)
    order = ctx.key("order")
    try:
        # Dependents wait in a deferred registry until their parent finishes.
        prev = q.enqueue("rq_tasks.append", order, "0", job_id=f"{ctx.prefix}-chain-0")
        for i in range(1, 6):
            prev = q.enqueue("rq_tasks.append", order, str(i), depends_on=prev,
                             job_id=f"{ctx.prefix}-chain-{i}")
        expect(q.count, 1, "only the head of the chain is queued")
        _run_workers(ctx, q.name, 1)
        expect(ctx.client().lrange(order, 0, -1), [str(i) for i in range(6)],
               "order the chain ran in")
        expect(prev.get_status(), "finished", "status of the last job")
    finally:
        _cleanup_queue(q)


def shutdown_command(ctx):
    """`send_shutdown_command` reaches a running worker through pub/sub; it exits."""
    r = ctx.client(decode_responses=False)
    q = Queue(ctx.prefix, connection=r)
    name = f"{ctx.prefix}-serving"
    p = subprocess.Popen(
        [python_exe(), os.path.join(HERE, "rq_worker.py"), ctx.url, q.name, name, "serve"],
        env=child_env(HERE), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        c = ctx.client()
        channel = f"rq:pubsub:{name}"
        wait_until(lambda: p.poll() is not None or c.pubsub_numsub(channel) == [(channel, 1)],
                   "worker subscribed to its command channel")
        assert p.poll() is None, f"worker exited early: {p.communicate()[0][-600:]}"
        expect([w.name for w in Worker.all(queue=q)], [name], "registered workers")
        send_shutdown_command(r, name)
        out, _ = p.communicate(timeout=30)
        expect(p.returncode, 0, f"worker exit code after the shutdown command ({out[-300:]})")
        expect(Worker.all(queue=q), [], "registered workers after shutdown")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        _cleanup_queue(q)


SCENARIOS = [
    ("rq.jobs", jobs),
    ("rq.retries", retries),
    ("rq.dependencies", dependencies),
    ("rq.shutdown-command", shutdown_command),
]
