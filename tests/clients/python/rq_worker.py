"""Runs one RQ worker in burst mode on one queue, then exits (used by scen_rq.py).

Usage: python3 rq_worker.py REDIS_URL QUEUE_NAME WORKER_NAME
"""

import sys

from redis import Redis
from rq import Queue, Worker


def main():
    url, queue_name, worker_name = sys.argv[1:4]
    conn = Redis.from_url(url, socket_timeout=30)
    queue = Queue(queue_name, connection=conn)
    worker = Worker([queue], connection=conn, name=worker_name)
    # Burst: work until the queue is empty, then exit 0.
    worker.work(burst=True, logging_level="WARNING")


if __name__ == "__main__":
    main()
