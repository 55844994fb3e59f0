"""Runs one RQ worker on one queue (used by scen_rq.py): in burst mode it exits once the
queue is empty; with `serve` it runs until told to stop (shutdown command or signal).

Usage: python3 rq_worker.py REDIS_URL QUEUE_NAME WORKER_NAME [serve]
"""

import sys

from redis import Redis
from rq import Queue, Worker


def main():
    url, queue_name, worker_name = sys.argv[1:4]
    conn = Redis.from_url(url, socket_timeout=30)
    queue = Queue(queue_name, connection=conn)
    worker = Worker([queue], connection=conn, name=worker_name)
    burst = len(sys.argv) < 5 or sys.argv[4] != "serve"
    worker.work(burst=burst, logging_level="WARNING")


if __name__ == "__main__":
    main()
