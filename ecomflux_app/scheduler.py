"""Periodic jobs: each fires at most once per interval across all worker machines (Redis SET NX)."""

from __future__ import annotations

import logging
import threading

import redis

from .work_queue import CONTROL_QUEUE, enqueue

log = logging.getLogger(__name__)

# (name, interval seconds, job path). Jobs themselves live in workers/jobs.py.
SCHEDULE: list[tuple[str, int, str]] = [
    ("sweep", 5, "workers.jobs.sweep"),
    ("qbo-keepalive", 6 * 3600, "workers.jobs.qbo_keepalive"),
    ("daily-reconcile", 24 * 3600, "workers.jobs.daily_reconcile"),
    ("daily-payouts", 24 * 3600, "workers.jobs.sync_all_payouts"),
    ("payouts-waiting", 15 * 60, "workers.jobs.retry_waiting_payouts"),
]


def tick(conn: redis.Redis, schedule=None) -> list[str]:
    """Enqueue every scheduled job whose interval has elapsed; returns the names enqueued."""
    fired = []
    for name, interval, job in schedule or SCHEDULE:
        if conn.set(f"ecomflux:schedule:{name}", "1", nx=True, ex=interval):
            enqueue(conn, CONTROL_QUEUE, job)
            fired.append(name)
    return fired


class SchedulerThread(threading.Thread):
    """Calls tick() every few seconds until stopped; survives Redis outages."""

    def __init__(self, conn: redis.Redis, every: float = 2.0):
        super().__init__(name="ecomflux-scheduler", daemon=True)
        self.conn = conn
        self.every = every
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                tick(self.conn)
            except redis.RedisError as exc:
                log.warning("scheduler tick skipped: %s", exc)
            self.stopped.wait(self.every)
