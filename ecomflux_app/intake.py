"""Group commit for webhook intake: many requests' rows go in one INSERT, one commit, one Redis round trip.

Each request thread hands its row to the process's writer thread and waits. The writer takes
whatever has queued up (one row at low load, hundreds under a burst), inserts them with
ON CONFLICT DO NOTHING RETURNING (duplicate delivery ids simply return nothing; SQLite learns the
new ids without RETURNING, see _sqlite_inserted), commits, then
enqueues the new rows' jobs through one pipeline, and only then wakes the requests. So every 200
still means "committed, then enqueued", while the per-row cost of round trips and SQL building
is shared by the batch.

The writer is also the only thread that reads the database: it resolves the batch's shop ids
(cached briefly, one query for the domains it does not know), so a process holds one connection
for intake however many request threads it runs (the pool would otherwise open one per thread).

Under load the writer also waits a moment (the gather window) before it writes, so that more
requests share each commit: like PostgreSQL's commit_delay, it applies only when the previous
batch ended moments ago and more than one row is at hand, so a lone webhook is written at once.
Measured at 200 senders on 2 cores (4 processes x 32 threads): 2 ms gave ~8% more webhooks/s than
no window, 5 ms the same as 2, and 20 ms capped each process at 32 rows per 20 ms with longer waits.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue as queue_mod
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import msgspec
import redis
from peewee import CharField, IntegrityError, InterfaceError, OperationalError, SqliteDatabase, TextField

from .db import binds_binary, database, execute_numbered, intake_database
from .models import Shop, WebhookDelivery, utcnow
from .statuses import DeliveryStatus
from .shopify.topics import SHOPLESS_TOPICS
from .sync.sweeper import enqueue_many

log = logging.getLogger(__name__)

MAX_BATCH = 256
GATHER_SECONDS = 0.002
SHOP_CACHE_SECONDS = 30.0
COLUMNS = (
    "webhook_id", "event_id", "topic", "shop_domain", "shop_id", "api_version", "triggered_at", "headers",
    "body", "raw_body", "status", "error", "attempts", "order_id", "order_name", "resource_id", "received_at", "enqueued_at",
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
    shop_status: str | None = None  # the shop's state as the writer saw it (cached up to SHOP_CACHE_SECONDS)


class IntakeWriter:
    """A per-process writer thread that batches webhook rows."""

    def __init__(self, redis_factory, max_batch: int = MAX_BATCH, gather_seconds: float = GATHER_SECONDS):
        self._redis_factory = redis_factory
        self._max_batch = max_batch
        self.gather_seconds = gather_seconds
        self._sleep = time.sleep
        self._queue: queue_mod.SimpleQueue[PendingRow] = queue_mod.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._checkpointer = SqliteCheckpointer()
        # domain -> ((shop id, status), expiry); only the writer thread reads or writes it. Unknown shops are
        # never cached: an install may be seconds old.
        self._shop_ids: dict[str, tuple[tuple[int, str], float]] = {}

    def forget_shops(self) -> None:
        """Drop the cached shop ids (tests empty the tables; ids restart)."""
        self._shop_ids = {}

    def _ensure_thread(self) -> None:
        # The web server runs several worker processes: each needs its own writer thread.
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

    def _drain(self, batch: list[PendingRow]) -> None:
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue_mod.Empty:
                return

    def _next_batch(self, last_size: int, last_end: float) -> list[PendingRow]:
        """Block for a row, take what else is queued and, under load, what arrives in the gather window."""
        batch = [self._queue.get()]
        self._drain(batch)
        if self._under_load(len(batch), last_size, last_end):
            self._sleep(self.gather_seconds)  # let more requests join this commit
            self._drain(batch)
        return batch

    def _run(self) -> None:
        last_size, last_end = 0, 0.0
        while True:
            batch = self._next_batch(last_size, last_end)
            try:
                self._commit(batch)
            except Exception as exc:  # the requests answer 503 and Shopify retries: nothing is lost
                log.exception("intake batch of %d failed", len(batch))
                self._fail(batch, exc)
                db = intake_database()
                if not db.is_closed():
                    db.close()
            finally:
                for pending in batch:
                    pending.done.release()
                last_size, last_end = len(batch), time.monotonic()

    def _commit(self, batch: list[PendingRow]) -> None:
        """Write the batch, recovering from what a retry fixes; a row that cannot be written as it came
        is written alone, escaped if it must be, so it never turns away the rows that shared its commit."""
        try:
            self._write_retrying(batch)
        except (OperationalError, InterfaceError):
            raise  # the database is unreachable: every request answers 503 and Shopify retries
        except Exception as exc:  # a value one row holds (the database refused it, or it cannot be encoded)
            if len(batch) > 1:
                log.warning("intake batch of %d refused (%s: %s); writing its rows one by one", len(batch),
                            type(exc).__name__, exc)
            for pending in batch:
                row_exc = exc
                if len(batch) > 1:
                    try:
                        self._write_retrying([pending])
                        continue
                    except (OperationalError, InterfaceError) as lost:
                        self._fail([pending], lost)
                        continue
                    except Exception as alone_exc:
                        row_exc = alone_exc
                self._write_escaped(pending, row_exc)

    def _write_escaped(self, pending: PendingRow, exc: Exception) -> None:
        """Last resort for a row that cannot be written as it came: its text escaped to ASCII, its bytes
        kept, stored as failed with the reason, so the delivery is acknowledged and can be looked at."""
        values = pending.values
        log.error("webhook %s (%s) not storable as received, stored escaped: %s: %s", values.get("webhook_id"),
                  values.get("topic"), type(exc).__name__, exc)
        pending.values = escape_row(values, f"stored escaped, not as received ({type(exc).__name__}: {exc})")
        try:
            self._write_retrying([pending])
        except Exception as again:  # nothing stores it: 503, and Shopify delivers it again
            log.error("webhook %s (%s) refused even escaped: %s", values.get("webhook_id"), values.get("topic"), again)
            self._fail([pending], again)

    def _write_retrying(self, batch: list[PendingRow]) -> None:
        """Write the batch, once more after a dropped connection or a stale cached shop id."""
        try:
            self._write(batch)
        except (OperationalError, InterfaceError):
            # A connection the server dropped (restart, failover): reconnect once.
            # The insert is idempotent (ON CONFLICT DO NOTHING), so a retry is safe.
            intake_database().close()
            self._write(batch)
        except IntegrityError:
            # A cached shop id whose row is gone (shop/redact, then a reinstall): look again.
            self.forget_shops()
            self._write(batch)

    @staticmethod
    def _fail(batch: list[PendingRow], exc: Exception) -> None:
        """Mark rows not recorded: their requests answer 503 and Shopify delivers them again."""
        for pending in batch:
            pending.outcome, pending.error = "error", f"{type(exc).__name__}: {exc}"

    def _under_load(self, size: int, last_size: int, last_end: float) -> bool:
        """Whether to wait for more rows: batches are arriving back to back and not already full."""
        return (self.gather_seconds > 0 and size < self._max_batch and (size > 1 or last_size > 1)
                and time.monotonic() - last_end < self.gather_seconds)

    def _resolve_shops(self, db, batch: list[PendingRow]) -> None:
        """Set each row's shop id (and note its shop's state); a queued row for a shop we do not hold
        is ignored, with the reason."""
        now = time.monotonic()
        shops: dict[str, tuple[int, str] | None] = {}
        for pending in batch:
            domain = pending.values["shop_domain"]
            hit = self._shop_ids.get(domain)
            shops[domain] = hit[0] if hit and hit[1] > now else None
        missing = [d for d, shop in shops.items() if shop is None]
        if missing:
            for shop_id, domain, status in (Shop.select(Shop.id, Shop.domain, Shop.status)
                                            .where(Shop.domain.in_(missing)).tuples().bind(db)):
                shops[domain] = (shop_id, status)
                self._shop_ids[domain] = ((shop_id, status), now + SHOP_CACHE_SECONDS)
        for pending in batch:
            values = pending.values
            shop = shops[values["shop_domain"]]
            values["shop_id"], pending.shop_status = shop if shop else (None, None)
            if (values["shop_id"] is None and values["status"] == DeliveryStatus.QUEUED
                    and values["topic"] not in SHOPLESS_TOPICS):
                values["status"], values["error"], values["enqueued_at"] = (
                    DeliveryStatus.IGNORED, f"unknown shop {values['shop_domain']}", None)

    def _write(self, batch: list[PendingRow]) -> None:
        db = intake_database()
        db.connect(reuse_if_open=True)
        self._resolve_shops(db, batch)
        sqlite = isinstance(db, SqliteDatabase)
        sql, params = _values_insert(db, batch, returning=not sqlite)
        # One statement is its own transaction (peewee runs in autocommit): no BEGIN/COMMIT round trips.
        with _sqlite_writer_turn() as turn:
            if turn:
                self._checkpointer.configure_writer()
            if sqlite:
                inserted = _sqlite_inserted(db, db.execute_sql(sql, params), batch)
            else:
                cursor = execute_numbered(db, sql, params) if binds_binary(db) else db.execute_sql(sql, params)
                inserted = {wid: did for did, wid in cursor.fetchall()}
        if turn:
            self._checkpointer.written(sum(len(p.values["body"] or "") for p in batch))
        to_enqueue = []
        for pending in batch:
            wid = pending.values["webhook_id"]
            if wid in inserted:
                pending.outcome, pending.delivery_id = "inserted", inserted.pop(wid)
                if pending.values["status"] == DeliveryStatus.QUEUED:
                    to_enqueue.append(pending)
            else:
                pending.outcome = "duplicate"
        if to_enqueue:
            self._enqueue(db, to_enqueue)

    def _enqueue(self, db, rows: list[PendingRow]) -> None:
        try:
            enqueue_many(self._redis_factory(), [(r.values["shop_domain"], r.delivery_id) for r in rows])
        except redis.RedisError as exc:
            # Rows are committed: mark them 'received' so the sweeper enqueues them when Redis is back.
            log.warning("enqueue of %d deliveries failed, the sweeper will retry: %s", len(rows), exc)
            ids = [r.delivery_id for r in rows]
            (WebhookDelivery.update(status=DeliveryStatus.RECEIVED, enqueued_at=None).where(WebhookDelivery.id.in_(ids))
             .bind(db).execute())


def _sqlite_inserted(db, cursor, batch: list[PendingRow]) -> dict[str, int]:
    """{webhook id: row id} of the rows a SQLite INSERT ... ON CONFLICT DO NOTHING (no RETURNING) wrote.

    RETURNING made the writer step once per row, and pysqlite lets go of the GIL around every step:
    each row meant taking the GIL back from the request threads while the other processes waited for
    the writers' turn. Without it the statement is one step. An INTEGER PRIMARY KEY takes max(id) + 1
    for each new row, and one statement holds SQLite's write lock throughout, so the rows it wrote have
    the contiguous ids up to lastrowid, in VALUES order. Measured, 19.8 KB bodies, 200 senders,
    interleaved with the RETURNING form (each on its own database, 6 rounds of 6 s): 0.335 vs 0.316 of
    the bare ceiling (median), ahead in each of the 6 rounds."""
    count, last = cursor.rowcount, cursor.lastrowid
    if count <= 0:
        return {}
    if count == len(batch):
        return {p.values["webhook_id"]: last - count + 1 + n for n, p in enumerate(batch)}
    # Some were duplicates: the written rows are the id range, read back (rare: a redelivery in the batch).
    return dict(db.execute_sql(f'SELECT webhook_id, id FROM "{_TABLE}" WHERE id BETWEEN ? AND ?',
                               (last - count + 1, last)).fetchall())


def _headers_json(value: dict) -> str:
    """The headers column's JSON text (sorted keys, like the model's JSONField)."""
    return msgspec.json.encode(value, order="sorted").decode()


# Column values as the database takes them; the headers as JSON through msgspec (the model's
# JSONField would use the json module, a few times slower on every delivery).
_CONVERTERS = [(c, _headers_json if c == "headers" else WebhookDelivery._meta.columns[c].db_value) for c in COLUMNS]
# psycopg 3 takes the exact bytes as they are (the model's BlobField would wrap them in psycopg2's type).
_PSYCOPG3_CONVERTERS = [(c, (lambda value: value) if c == "raw_body" else to_db) for c, to_db in _CONVERTERS]
_TABLE = WebhookDelivery._meta.table_name
_ON_CONFLICT = " ON CONFLICT (webhook_id) DO NOTHING"
_RETURNING = " RETURNING id, webhook_id"


def _values_insert(db, batch: list[PendingRow], returning: bool = True) -> tuple[str, list]:
    """The multi-row VALUES statement and its parameters for a batch.

    On PostgreSQL this replaced one JSON parameter expanded by json_populate_recordset: that
    re-encoded each body inside another JSON document (every quote escaped) for the server to parse
    again, and its cost grew with the body. Measured per row with 17 KB order bodies (32-row batches,
    client and server backend CPU): JSON 63-74 us client + 208-292 us server; psycopg2 VALUES (one
    escaped literal per body, its fastest batch path) 55-58 us + 125 us; COPY into a staging table
    (ON CONFLICT ... RETURNING needs a second statement) 87-100 + 270-375 us. With psycopg 3 the
    parameters go apart from the statement: each body's bytes as they are, neither quoted nor lexed
    (15 KB, 32-row batches, same minutes: psycopg2 107-110 + 143-159 us, psycopg 3 53-57 + 106-117 us),
    and the statement is written with $n placeholders, so psycopg 3 sends it without scanning it
    (see db.execute_numbered)."""
    numbered = binds_binary(db)
    converters = _PSYCOPG3_CONVERTERS if numbered else _CONVERTERS
    params: list = []
    for pending in batch:
        values = pending.values
        params.extend([to_db(values[c]) for c, to_db in converters])
    return _values_sql(len(batch), None if numbered else db.param, returning), params


@lru_cache(maxsize=4 * MAX_BATCH)
def _values_sql(rows: int, param: str | None, returning: bool = True) -> str:
    """The multi-row INSERT for a batch of `rows` (built once per size): `param` as every placeholder,
    or PostgreSQL's numbered $1..$n when None; with `returning`, it answers the new rows' ids."""
    width = len(COLUMNS)
    if param is None:
        rows_sql = ", ".join("(" + ", ".join(f"${r * width + c}" for c in range(1, width + 1)) + ")" for r in range(rows))
    else:
        rows_sql = ", ".join(["(" + ", ".join([param] * width) + ")"] * rows)
    return (f'INSERT INTO "{_TABLE}" ({", ".join(COLUMNS)}) VALUES ' + rows_sql + _ON_CONFLICT
            + (_RETURNING if returning else ""))


@contextmanager
def _sqlite_writer_turn():
    """On SQLite, take turns with the other web processes' writers through a file lock.

    SQLite lets one writer in at a time and makes the others poll with sleeps of up to 100 ms
    (its busy handler); a blocking flock hands the turn over as soon as it is free instead.
    """
    path = getattr(database.obj, "database", None)
    if not isinstance(database.obj, SqliteDatabase) or not path or path == ":memory:":
        yield False
        return
    with open(f"{path}.intake-lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


class SqliteCheckpointer:
    """Keeps SQLite's WAL checkpoints out of the intake's commits, in a thread of their own.

    By default the connection whose commit takes the WAL past 1,000 pages copies it back into the
    database file (and syncs it) inside that commit, while the other web processes wait for their
    turn: with 15 KB order bodies that happened every ~250 rows and was the largest per-KB cost of
    the SQLite intake (measured: 0.24 of the bare ceiling with it, 0.41 without it, p99 363 -> 189 ms).
    The writer's connection turns automatic checkpoints off; after every CHECKPOINT_BYTES of bodies
    this thread runs a PASSIVE checkpoint on its own connection, in the intake writers' turn (their
    flock), so that it completes and the WAL is reused; a request waits for it at most one
    checkpoint of ~4 MB. Workers' connections keep SQLite's default, so they checkpoint too."""

    CHECKPOINT_BYTES = 4 * 1024 * 1024

    def __init__(self):
        self._configured = None  # the writer connection that has autocheckpoint off
        self._pending = 0
        self._wake = threading.Event()
        self._pid: int | None = None
        self.checkpoints = 0  # completed by this process (tests and the curious read it)

    def configure_writer(self) -> None:
        conn = database.connection()
        if conn is not self._configured:
            database.execute_sql("PRAGMA wal_autocheckpoint=0")
            self._configured = conn

    def written(self, nbytes: int) -> None:
        """Count what a commit wrote; past CHECKPOINT_BYTES, wake the checkpoint thread."""
        self._pending += nbytes
        if self._pending >= self.CHECKPOINT_BYTES:
            self._pending = 0
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._wake = threading.Event()
                threading.Thread(target=self._run, name="ecomflux-sqlite-checkpoint", daemon=True).start()
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                database.connect(reuse_if_open=True)
                # In the writers' turn: with no intake commit appending meanwhile the checkpoint copies
                # the whole WAL, and the next commit starts it again from its beginning. Beside four
                # processes appending it never caught up, so the WAL was never reused: 1.7 GB of WAL
                # for 0.8 GB of database after a 9 s bench run, and each commit cost more as it grew.
                with _sqlite_writer_turn():
                    database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
                self.checkpoints += 1
            except Exception:  # a checkpoint is housekeeping: the next one, or a worker's, catches up
                log.warning("SQLite WAL checkpoint failed", exc_info=True)


# Text columns and their widths (None: unbounded), from the model: a value is cut to fit here, once,
# rather than at each place that fills a row. The body is made storable by body_columns.
_TEXT_COLUMNS = [(c, getattr(WebhookDelivery._meta.columns[c], "max_length", None)) for c in COLUMNS
                 if isinstance(WebhookDelivery._meta.columns[c], (CharField, TextField)) and c not in ("headers", "body")]


def body_columns(raw: bytes) -> tuple[str, bytes | None]:
    """(body, raw_body) for a delivery's bytes: the text itself when it is UTF-8 without NUL (the text
    column holds it byte for byte), else a readable copy with those bytes replaced plus the exact bytes."""
    if b"\x00" not in raw:
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError:
            pass
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd"), raw


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(value: str) -> str:
    """Text every database and driver takes: NUL (PostgreSQL text cannot hold it; a JSON "\u0000"
    decodes to one) and lone surrogates (a JSON "\ud800" decodes to one; UTF-8 cannot encode it) replaced."""
    value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = _SURROGATE.sub("\ufffd", value)
    return value


def row_values(**values) -> dict:
    """Fill the defaults a delivery row needs; 'queued' rows get enqueued_at now (the enqueue intent).

    Text is made storable: cut to its column's width (an oversized header must not cost the row),
    NUL and lone surrogates replaced."""
    now = utcnow()
    values.setdefault("attempts", 0)
    values.setdefault("received_at", now)
    values["headers"] = values.get("headers") or {}
    values["enqueued_at"] = now if values.get("status") == DeliveryStatus.QUEUED else None
    for key in COLUMNS:
        values.setdefault(key, None)
    for key, width in _TEXT_COLUMNS:
        if isinstance(values[key], str):
            values[key] = storable_text(values[key][:width])
    return values


def _ascii(value):
    """A value as plain ASCII text (backslash escapes for the rest), for the last-resort row."""
    if isinstance(value, str):
        return value.encode("ascii", errors="backslashreplace").decode("ascii")
    if isinstance(value, dict):
        return {_ascii(str(k)): _ascii(v) for k, v in value.items()}
    return value


def escape_row(values: dict, reason: str) -> dict:
    """A copy of a row that no value can keep out of the database: every text in ASCII, not enqueued,
    'failed' with the reason (the exact bytes stay in raw_body)."""
    out = {key: _ascii(value) for key, value in values.items()}
    if isinstance(values.get("body"), str) and out["body"] != values["body"] and values.get("raw_body") is None:
        out["raw_body"] = values["body"].encode("utf-8", errors="surrogatepass")
    for key, width in _TEXT_COLUMNS:
        if isinstance(out[key], str):
            out[key] = out[key][:width]
    out.update(status=DeliveryStatus.FAILED, error=reason[:2000], enqueued_at=None)
    return out
