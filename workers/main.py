"""Worker entry point: the fair per-shop RQ worker plus the periodic scheduler thread."""

from __future__ import annotations

from ecomflux_app import runtime
from ecomflux_app.work_queue import make_worker
from ecomflux_app.scheduler import SchedulerThread


def run_worker(burst: bool = False, name: str | None = None, with_scheduler: bool = True, simple: bool = True) -> bool:
    runtime.config()
    conn = runtime.redis()
    scheduler = None
    if with_scheduler and not burst:
        scheduler = SchedulerThread(conn)
        scheduler.start()
    try:
        return make_worker(conn, name=name, simple=simple).work(burst=burst, logging_level="INFO")
    finally:
        if scheduler:
            scheduler.stopped.set()
