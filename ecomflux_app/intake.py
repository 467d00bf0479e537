"""Group commit for webhook intake: many requests' rows go in one INSERT, one commit, one Redis round trip.

Each request thread hands its row to the process's writer thread and waits. The writer takes
whatever has queued up (one row at low load, hundreds under a burst), inserts them with
ON CONFLICT DO NOTHING RETURNING (duplicate delivery ids simply return nothing), commits, then
enqueues the new rows' jobs through one pipeline, and only then wakes the requests. So every 200
still means "committed, then enqueued", while the per-row cost of round trips and SQL building
is shared by the batch.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue as queue_mod
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import redis
from peewee import InterfaceError, OperationalError, SqliteDatabase

from .db import database
from .models import WebhookDelivery, utcnow

log = logging.getLogger(__name__)

MAX_BATCH = 256
COLUMNS = (
    "webhook_id", "event_id", "topic", "shop_domain", "shop_id", "api_version", "triggered_at", "headers",
    "body", "status", "error", "attempts", "order_id", "order_name", "resource_id", "received_at", "enqueued_at",
)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class PendingRow:
    """One request's row waiting for the writer; `outcome` is inserted | duplicate | error."""

    values: dict
    # Held until the writer is done with the row: a bare lock is a single futex, where an Event
    # costs a Condition and a waiter lock per wait (measurable at thousands of requests a second).
    done: threading.Lock = field(default_factory=_held_lock)
    outcome: str = "error"
    delivery_id: int | None = None
    error: str | None = None


class IntakeWriter:
    """A per-process writer thread that batches webhook rows."""

    def __init__(self, redis_factory, max_batch: int = MAX_BATCH):
        self._redis_factory = redis_factory
        self._max_batch = max_batch
        self._queue: queue_mod.SimpleQueue[PendingRow] = queue_mod.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def _ensure_thread(self) -> None:
        # gunicorn forks workers: each process needs its own writer thread.
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue_mod.SimpleQueue()
                    threading.Thread(target=self._run, name="ecomflux-intake-writer", daemon=True).start()
                    self._pid = os.getpid()

    def submit(self, values: dict, timeout: float = 4.0) -> PendingRow:
        """Queue a row and wait until it is committed (and enqueued when its status is 'queued')."""
        self._ensure_thread()
        pending = PendingRow(values)
        self._queue.put(pending)
        if not pending.done.acquire(timeout=timeout):
            pending.outcome, pending.error = "error", "intake writer timed out"
        return pending

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue_mod.Empty:
                    break
            try:
                try:
                    self._write(batch)
                except (OperationalError, InterfaceError):
                    # A pooled connection the server dropped (restart, failover): reconnect once.
                    # The insert is idempotent (ON CONFLICT DO NOTHING), so a retry is safe.
                    database.close()
                    self._write(batch)
            except Exception as exc:  # the requests answer 503 and Shopify retries: nothing is lost
                log.exception("intake batch of %d failed", len(batch))
                for pending in batch:
                    pending.outcome, pending.error = "error", f"{type(exc).__name__}: {exc}"
                if not database.is_closed():
                    database.close()
            finally:
                for pending in batch:
                    pending.done.release()

    def _write(self, batch: list[PendingRow]) -> None:
        convert = [(c, WebhookDelivery._meta.columns[c].db_value) for c in COLUMNS]
        params: list = []
        for pending in batch:
            values = pending.values
            params.extend([to_db(values[c]) for c, to_db in convert])
        sql = _insert_sql(len(batch), database.param)
        database.connect(reuse_if_open=True)
        # One statement is its own transaction (peewee runs in autocommit): no BEGIN/COMMIT round trips.
        with _sqlite_writer_turn():
            inserted = {wid: did for did, wid in database.execute_sql(sql, params).fetchall()}
        to_enqueue = []
        for pending in batch:
            wid = pending.values["webhook_id"]
            if wid in inserted:
                pending.outcome, pending.delivery_id = "inserted", inserted.pop(wid)
                if pending.values["status"] == "queued":
                    to_enqueue.append(pending)
            else:
                pending.outcome = "duplicate"
        if to_enqueue:
            self._enqueue(to_enqueue)

    def _enqueue(self, rows: list[PendingRow]) -> None:
        from .sync.sweeper import enqueue_many

        try:
            enqueue_many(self._redis_factory(), [(r.values["shop_domain"], r.delivery_id) for r in rows])
        except redis.RedisError as exc:
            # Rows are committed: mark them 'received' so the sweeper enqueues them when Redis is back.
            log.warning("enqueue of %d deliveries failed, the sweeper will retry: %s", len(rows), exc)
            ids = [r.delivery_id for r in rows]
            WebhookDelivery.update(status="received", enqueued_at=None).where(WebhookDelivery.id.in_(ids)).execute()


@lru_cache(maxsize=MAX_BATCH)
def _insert_sql(rows: int, param: str) -> str:
    """The multi-row INSERT for a batch of `rows` (built once per size)."""
    row_sql = "(" + ", ".join([param] * len(COLUMNS)) + ")"
    return (
        f'INSERT INTO "{WebhookDelivery._meta.table_name}" ({", ".join(COLUMNS)}) VALUES '
        + ", ".join([row_sql] * rows)
        + " ON CONFLICT (webhook_id) DO NOTHING RETURNING id, webhook_id"
    )


@contextmanager
def _sqlite_writer_turn():
    """On SQLite, take turns with the other web processes' writers through a file lock.

    SQLite lets one writer in at a time and makes the others poll with sleeps of up to 100 ms
    (its busy handler); a blocking flock hands the turn over as soon as it is free instead.
    """
    path = getattr(database.obj, "database", None)
    if not isinstance(database.obj, SqliteDatabase) or not path or path == ":memory:":
        yield
        return
    with open(f"{path}.intake-lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def row_values(**values) -> dict:
    """Fill the defaults a delivery row needs; 'queued' rows get enqueued_at now (the enqueue intent)."""
    now = utcnow()
    values.setdefault("attempts", 0)
    values.setdefault("received_at", now)
    values["headers"] = values.get("headers") or {}
    values["enqueued_at"] = now if values.get("status") == "queued" else None
    for key in COLUMNS:
        values.setdefault(key, None)
    return values
