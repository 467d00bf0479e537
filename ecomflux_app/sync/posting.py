"""Exactly-once QBO writes: the ledger row (models.SyncRecord), a deterministic requestid, look-before-create.

Every document (order, refund, payment, void) goes through post_document(), or post_batch() for up to
30 rows in one QBO batch request (the backfill's pages), which keeps the same steps per row:
  1. the ledger row for (shop, source_key) is taken under a Redis lock; 'posted' means done;
  2. a row left 'posting' by an attempt whose outcome is unknown (crash, timeout) is first
     looked up in QBO (DocNumber + our marker in PrivateNote) and adopted if found; a Payment has
     no DocNumber, so its caller passes find= (CustomerRef + TxnDate, then the marker), which runs
     before build() because our lost write may already have moved the balances build() reads;
  3. the write carries a requestid derived from (shop, source_key, kind), so even a lost
     response replayed by Intuit returns the same document;
  4. a 6140 duplicate DocNumber whose document carries our marker is adopted; one that is not
     ours fails clearly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable

import redis
from peewee import IntegrityError

from .. import runtime
from ..db import database
from ..models import ProcessingAttempt, Shop, SyncRecord, WebhookDelivery, utcnow
from ..statuses import DeliveryStatus, RecordStatus
from ..quickbooks.client import QboClient
from ..quickbooks.errors import (
    QboAuthError,
    QboDuplicateDocNumber,
    QboError,
    QboThrottled,
    QboTransient,
    QboValidationError,
    RealmBusy,
)
from ..translate.document_kinds import qbo_total_of
from ..translate.payment import has_marker
from ..translate.query import quote
from ..translate.requestid import request_id as make_request_id
from ..work_results import FatalError, RetryLater, WaitingForReconnect

log = logging.getLogger(__name__)

LOCK_SECONDS = 120  # > the 60 s QBO read timeout plus resolution; a dead holder frees it by itself
BATCH_MAX = 30  # QBO's batch ceiling
# QBO works through a batch's items one after another and keeps going when the caller is gone (killed,
# timed out): a row whose batch went unanswered is looked up only once that batch can no longer be
# running (Intuit ends a request after 120 s), or a lookup mid-batch would miss documents still coming.
BATCH_IN_FLIGHT_SECONDS = 130


@dataclass
class Document:
    """What to write: the entity, its payload and the figures the ledger keeps."""

    entity: str  # SalesReceipt | Invoice | RefundReceipt | CreditMemo | Payment
    payload: dict
    doc_number: str | None
    marker: str | None
    figures: dict = field(default_factory=dict)  # shopify_total, qbo_total, tax_total, shipping_total, ...
    ledger: dict = field(default_factory=dict)  # other SyncRecord columns: currency, order_date


@dataclass
class PostResult:
    status: str  # posted | skipped_duplicate | flagged
    record: SyncRecord
    adopted: bool = False


def ledger_row(shop: Shop, source_key: str, *, kind: str, order_id: str, order_name: str | None = None,
               delivery: WebhookDelivery | None = None) -> SyncRecord:
    """The ledger row for this source document, created on first sight (race-safe)."""
    row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == source_key))
    if row is not None:
        return row
    try:
        return SyncRecord.create(shop=shop, source_key=source_key, kind=kind, order_id=str(order_id),
                                 order_name=order_name, delivery=delivery)
    except IntegrityError:
        return SyncRecord.get((SyncRecord.shop == shop.id) & (SyncRecord.source_key == source_key))


def ledger_rows(shop: Shop, rows: list[dict]) -> list[SyncRecord]:
    """ledger_row for many source documents (dicts of SyncRecord columns with source_key), in three
    statements: the existing rows, one INSERT of the missing ones (a row another worker creates
    meanwhile is kept), the rows inserted."""
    keys = [row["source_key"] for row in rows]
    found = {r.source_key: r for r in SyncRecord.select().where(
        (SyncRecord.shop == shop.id) & SyncRecord.source_key.in_(keys))}
    missing = [row for row in rows if row["source_key"] not in found]
    if missing:
        SyncRecord.insert_many([dict(row, shop=shop.id) for row in missing]).on_conflict_ignore().execute()
        found.update({r.source_key: r for r in SyncRecord.select().where(
            (SyncRecord.shop == shop.id) & SyncRecord.source_key.in_([row["source_key"] for row in missing]))})
    return [found[key] for key in keys]


def _update(record: SyncRecord, **values) -> None:
    values["updated_at"] = utcnow()
    SyncRecord.update(**values).where(SyncRecord.id == record.id).execute()
    for key, value in values.items():
        setattr(record, key, value)


def _money_figures(doc: Document) -> dict:
    keys = ("shopify_total", "qbo_total", "tax_total", "shipping_total", "discount_total")
    return {k: doc.figures[k] for k in keys if doc.figures.get(k) is not None}


def find_existing(client: QboClient, entity: str, doc_number: str | None, marker: str | None) -> dict | None:
    """Our document in QBO, if a previous attempt created it: same DocNumber and our marker."""
    if not doc_number or not marker:
        return None
    for row in client.query(f"SELECT * FROM {entity} WHERE DocNumber = {quote(doc_number)}"):
        if marker in (row.get("PrivateNote") or ""):
            return row
    return None


def find_payment(client: QboClient, customer_id: str, txn_date, marker: str) -> dict | None:
    """Our Payment in QBO, if a previous attempt created it: QBO filters Payments by CustomerRef and
    TxnDate but not by PrivateNote or PaymentRefNum, so the marker is matched here."""
    sql = (f"SELECT * FROM Payment WHERE CustomerRef = {quote(str(customer_id))} "
           f"AND TxnDate = {quote(txn_date.isoformat())}")
    return next((row for row in client.query(sql) if has_marker(row.get("PrivateNote"), marker)), None)


def read_once(client: QboClient, entity: str, entity_id: str) -> Callable[[], dict]:
    """A QBO document read at most once, shared by one ledger row's find() and build()."""
    cache: dict[str, dict] = {}

    def read() -> dict:
        if "doc" not in cache:
            cache["doc"] = client.read(entity, entity_id)
        return cache["doc"]

    return read


def request_id_for(shop: Shop, record: SyncRecord, entity: str) -> str:
    """Same requestid across uncertain retries (Intuit replays instead of duplicating); a new one
    only after a definite rejection (a replay of that 400 would block the fixed document forever)."""
    key = record.source_key if not record.request_generation else f"{record.source_key}#{record.request_generation}"
    return make_request_id(shop.domain, key, entity)


def record_attempt(record: SyncRecord | None, delivery: WebhookDelivery | None, client: QboClient | None,
                   outcome: str, error: QboError | None = None, started: float | None = None,
                   exchange: dict | None = None) -> None:
    """Keep the QBO exchange (tokens never: the client keeps only method, path, params and bodies);
    a batch passes each row's own part of the exchange."""
    exchange = exchange or (client.last_exchange if client else None)
    ProcessingAttempt.create(
        delivery=delivery, sync_record=record, finished_at=utcnow(), outcome=outcome,
        request={k: exchange[k] for k in ("method", "path", "params", "request")} if exchange else None,
        response={k: exchange[k] for k in ("status", "response", "duration_ms")} if exchange else None,
        error_message=error.describe() if error else None, error_code=error.code if error else None,
        error_element=error.element if error else None,
        intuit_tid=(error.intuit_tid if error else None) or (exchange or {}).get("intuit_tid"),
        duration_ms=int((time.perf_counter() - started) * 1000) if started else None,
    )


def retry_delay(attempts: int) -> float:
    """Exponential backoff for transient failures: 10 s, 20 s, 40 s ... capped at 15 minutes."""
    return min(900.0, 10.0 * (2 ** max(0, attempts - 1)))


def translate_error(exc: QboError, record: SyncRecord) -> Exception:
    """Map a QBO error to what the dispatcher understands (retry, park, or fail for good)."""
    detail = exc.as_dict()
    if isinstance(exc, (QboThrottled, RealmBusy)):
        return RetryLater(f"QuickBooks is throttling this company: {exc.message}",
                          getattr(exc, "retry_after", 60), detail)
    if isinstance(exc, (QboTransient, QboAuthError)):
        return RetryLater(f"QuickBooks temporarily unavailable: {exc.describe()}", retry_delay(record.attempts), detail)
    return FatalError(exc.describe(), detail)


@contextmanager
def ledger_lock(shop: Shop, record: SyncRecord, busy: str = "this document is being posted by another worker",
                wait: float = 5, key: str | None = None):
    """One writer per ledger row across all workers (or per `key`: work spanning several rows); a dead
    holder's lock expires (LOCK_SECONDS)."""
    try:
        lock = runtime.redis().lock(f"ecomflux:post:{shop.id}:{key or record.source_key}", timeout=LOCK_SECONDS,
                                    blocking_timeout=wait)
        acquired = lock.acquire(blocking=wait > 0)
    except redis.RedisError as exc:
        raise RetryLater(f"ledger lock unavailable: {exc}", 15) from None
    if not acquired:
        raise RetryLater(busy, 15)
    try:
        yield
    finally:
        try:
            lock.release()
        except redis.RedisError:
            pass


def batch_in_flight(shop: Shop, record: SyncRecord) -> float:
    """Seconds until the unanswered batch write of this 'posting' row can no longer be running in QBO
    (0 when it cannot, or when its last write was a single call, whose requestid Intuit replays)."""
    if record.status != RecordStatus.POSTING or not record.document_type or not record.request_id:
        return 0.0
    if record.request_id == request_id_for(shop, record, record.document_type):
        return 0.0
    return max(0.0, BATCH_IN_FLIGHT_SECONDS - (utcnow() - record.updated_at).total_seconds())


def _wait_for_batch(shop: Shop, record: SyncRecord) -> RetryLater | None:
    left = batch_in_flight(shop, record)
    if not left:
        return None
    return RetryLater("an unanswered QuickBooks batch holding this document may still be running; "
                      "it is looked up once that batch has ended", max(left, 1.0))


def post_document(shop: Shop, client: QboClient, record: SyncRecord, build: Callable[[], Document | PostResult],
                  delivery: WebhookDelivery | None = None,
                  find: Callable[[], dict | None] | None = None) -> PostResult:
    """Create the document for this ledger row exactly once (see the module docstring)."""
    with ledger_lock(shop, record):
        return _post_locked(shop, client, record, build, delivery, find)


@dataclass
class BatchItem:
    """One ledger row of a batch write and how to build its document."""

    record: SyncRecord
    build: Callable[[], Document | PostResult]
    delivery: WebhookDelivery | None = None
    marker: str | None = None  # the PrivateNote marker its document carries: finds it after a crash


def post_batch(shop: Shop, client: QboClient, items: list[BatchItem]) -> list[PostResult | Exception]:
    """post_document for up to BATCH_MAX rows in one QBO batch request: the same ledger lock, the same
    'posting' mark and figures, the same lookup of uncertain rows, one ProcessingAttempt per row.

    Returns, per item, its PostResult or the error the single path would have raised for it (a row
    another worker holds gets RetryLater). A batch-wide outcome that is uncertain (throttled, timed
    out) raises, the rows staying 'posting' so the next attempt looks them up first."""
    if len(items) > BATCH_MAX:
        raise ValueError(f"a QBO batch holds at most {BATCH_MAX} items")
    results: dict[int, PostResult | Exception] = {}
    with ExitStack() as locks:
        held = []
        for index, item in enumerate(items):
            try:
                locks.enter_context(ledger_lock(shop, item.record, wait=0))
            except RetryLater as busy:
                results[index] = busy
                continue
            item.record = SyncRecord.get_by_id(item.record.id)
            if item.record.status in (RecordStatus.POSTED, RecordStatus.VOIDED):
                results[index] = PostResult(DeliveryStatus.SKIPPED_DUPLICATE, item.record)
            elif (waiting := _wait_for_batch(shop, item.record)) is not None:
                results[index] = waiting
            else:
                held.append(index)
        started = time.perf_counter()
        uncertain = [(i, items[i]) for i in held if items[i].record.status == RecordStatus.POSTING]
        looked_up = {i for i, item in uncertain if item.marker and item.record.document_type
                     and item.record.qbo_doc_number}
        adopted, unanswered = _adopt_uncertain(shop, client, [(i, items[i]) for i in sorted(looked_up)], started)
        looked_up -= unanswered
        results.update(adopted)
        docs: list[tuple[int, Document]] = []
        for index in held:
            if index in adopted:
                continue
            if items[index].record.status == RecordStatus.POSTING and index not in looked_up:
                results[index] = _post_single(shop, client, items[index], items[index].build)
                continue
            try:
                doc = items[index].build()
            except (FatalError, RetryLater, WaitingForReconnect) as exc:
                results[index] = exc
                continue
            except QboError as exc:
                results[index] = translate_error(exc, items[index].record)
                continue
            if isinstance(doc, PostResult):
                results[index] = doc
            else:
                docs.append((index, doc))
        results.update(_write_batch(shop, client, items, docs))
    return [results[i] for i in range(len(items))]


def _adopt_uncertain(shop: Shop, client: QboClient, rows: list[tuple[int, BatchItem]],
                     started: float) -> tuple[dict[int, PostResult], set[int]]:
    """Rows left 'posting' by a crash: their documents looked up (DocNumber + marker) in one batch read.
    Returns the adopted rows and those whose lookup QBO refused (they go the single path, never blind)."""
    if not rows:
        return {}, set()
    queries = {str(i): f"SELECT * FROM {item.record.document_type} WHERE DocNumber = {quote(item.record.qbo_doc_number)}"
               for i, item in rows}
    try:
        answers = {str(a.get("bId")): a for a in client.batch(
            [{"bId": bid, "Query": sql} for bid, sql in queries.items()], f"q-{_digest(list(queries.values()))}")}
    except RealmBusy:  # the realm's batch budget is spent: the same reads one by one (500/min budget)
        answers = {str(i): {"QueryResponse": {item.record.document_type: client.query(queries[str(i)])}}
                   for i, item in rows}
    adopted, unanswered = {}, set()
    for index, item in rows:
        answer = answers.get(str(index))
        if answer is None or "Fault" in answer:
            unanswered.add(index)
            continue
        found = (answer.get("QueryResponse") or {}).get(item.record.document_type, [])
        row = next((r for r in found if item.marker in (r.get("PrivateNote") or "")), None)
        if row is not None:
            adopted[index] = _posted(item.record, row, None, client, item.delivery, started, adopted=True, shop=shop)
    return adopted, unanswered


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\x1f".join(sorted(parts)).encode()).hexdigest()[:32]


def _write_batch(shop: Shop, client: QboClient, items: list[BatchItem],
                 docs: list[tuple[int, Document]]) -> dict[int, PostResult | Exception]:
    """Mark the rows 'posting', send one batch create, mark each answer; item faults go the single path."""
    if not docs:
        return {}
    started = time.perf_counter()
    batch_rid = make_request_id(shop.domain, f"batch:{_digest([items[i].record.source_key for i, _d in docs])}",
                                "batch")
    with database.atomic():  # one commit, before the write; each row keeps the batch's requestid (batch_in_flight)
        for index, doc in docs:
            _mark_posting(shop, items[index].record, doc, items[index].delivery, batch_rid)
    requests = [{"bId": str(index), "operation": "create", doc.entity: doc.payload} for index, doc in docs]
    try:  # client.request serializes with jsonout.dumps: the Decimal amounts stay exact
        answers = client.batch(requests, batch_rid)
    except (WaitingForReconnect, QboThrottled, RealmBusy, QboTransient, QboAuthError) as exc:
        # Outcome unknown (or nothing sent): the rows stay 'posting' and are looked up before any create.
        if isinstance(exc, QboError):
            mapped = translate_error(exc, items[docs[0][0]].record)
            for index, _doc in docs:
                record_attempt(items[index].record, items[index].delivery, client, "error", exc, started)
                if isinstance(exc, RealmBusy):  # refused by our limiter before anything was sent
                    _update(items[index].record, status=RecordStatus.PENDING, reason=mapped.reason)
            raise mapped from None
        raise
    except QboError as exc:
        log.info("batch write refused (%s): posting its documents one by one", exc.describe())
        answers = []
    by_id = {str(a.get("bId")): a for a in answers}
    exchange = client.last_exchange or {}
    out: dict[int, PostResult | Exception] = {}
    with database.atomic():  # the created documents' rows in one commit
        for (index, doc), sent in zip(docs, requests):
            item, answer = items[index], by_id.get(str(index), {})
            if doc.entity in answer:
                part = {"method": "POST", "path": "batch", "params": exchange.get("params"), "request": sent,
                        "status": exchange.get("status"), "response": json.dumps(answer, default=str),
                        "duration_ms": exchange.get("duration_ms"), "intuit_tid": exchange.get("intuit_tid")}
                out[index] = _posted(item.record, answer[doc.entity], doc, client, item.delivery, started,
                                     adopted=False, exchange=part, shop=shop)
    for index, doc in docs:
        if index not in out:
            # A fault for this item (e.g. 6140) or a refused batch: the row is 'posting', so the single path
            # looks it up before creating, adopts ours or fails with QBO's own message.
            out[index] = _post_single(shop, client, items[index], lambda doc=doc: doc, settled=True)
    return out


def _post_single(shop: Shop, client: QboClient, item: BatchItem, build, settled: bool = False) -> PostResult | Exception:
    """One row of a batch through the single path (its lock is held by the batch); settled: QBO answered
    the row's batch, so nothing of it is still running."""
    try:
        return _post_locked(shop, client, item.record, build, item.delivery, settled=settled)
    except (FatalError, RetryLater, WaitingForReconnect) as exc:
        return exc


def _post_locked(shop, client, record, build, delivery, find=None, settled: bool = False) -> PostResult:
    record = SyncRecord.get_by_id(record.id)
    if record.status in (RecordStatus.POSTED, RecordStatus.VOIDED):
        return PostResult(DeliveryStatus.SKIPPED_DUPLICATE, record)
    if not settled and (waiting := _wait_for_batch(shop, record)) is not None:
        raise waiting
    uncertain = record.status == RecordStatus.POSTING
    started = time.perf_counter()
    try:
        if uncertain and find is not None:
            found = find()
            if found is not None:
                return _posted(record, found, None, client, delivery, started, adopted=True)
        doc = build()  # may call QBO too (customer/item resolution): same error mapping as the write
        if isinstance(doc, PostResult):  # the builder decided (flagged, nothing to post)
            return doc
        rid = _mark_posting(shop, record, doc, delivery)
        existing = find_existing(client, doc.entity, doc.doc_number, doc.marker) \
            if uncertain and find is None else None
        if existing is None:
            try:
                created = client.create(doc.entity, doc.payload, rid)
            except QboDuplicateDocNumber as dup:
                existing = find_existing(client, doc.entity, doc.doc_number, doc.marker)
                if existing is None:
                    raise QboValidationError(
                        f"DocNumber {doc.doc_number} is already used by another {doc.entity} in QuickBooks "
                        "(not created by EcomFlux); set a document number prefix in settings, then retry",
                        code=dup.code, element="DocNumber", intuit_tid=dup.intuit_tid, status=dup.status) from None
            else:
                return _posted(record, created, doc, client, delivery, started, adopted=False)
        return _posted(record, existing, doc, client, delivery, started, adopted=True)
    except WaitingForReconnect:
        _update(record, status=RecordStatus.WAITING_RECONNECT, reason="QuickBooks reconnect required")
        raise
    except QboError as exc:
        record_attempt(record, delivery, client, "error", exc, started)
        mapped = translate_error(exc, record)
        if isinstance(mapped, FatalError):
            # QBO refused it: nothing was created, so a retry after a fix is a different request.
            _update(record, status=RecordStatus.FAILED, reason=exc.describe(), error_code=exc.code,
                    error_element=exc.element, intuit_tid=exc.intuit_tid,
                    request_generation=record.request_generation + 1)
        elif isinstance(exc, RealmBusy):
            # Refused by our limiter before anything was sent: no more uncertain than before.
            _update(record, status=RecordStatus.POSTING if uncertain else RecordStatus.PENDING, reason=mapped.reason)
        else:
            # Outcome unknown for transient errors on the create: stay 'posting' so the next
            # attempt looks the document up before creating (requestid replay covers it too).
            _update(record, reason=mapped.reason, error_code=exc.code, intuit_tid=exc.intuit_tid)
        raise mapped from None


def _mark_posting(shop: Shop, record: SyncRecord, doc: Document, delivery: WebhookDelivery | None,
                  batch_rid: str | None = None) -> str:
    """Before the write: the row is 'posting' (a crash leaves it uncertain) with the document's figures
    and the requestid of the write (the batch's when it goes in one)."""
    rid = request_id_for(shop, record, doc.entity)
    _update(record, status=RecordStatus.POSTING, attempts=record.attempts + 1, document_type=doc.entity,
            request_id=batch_rid or rid,
            qbo_doc_number=doc.doc_number, reason=None, error_code=None, error_element=None,
            delivery=delivery or record.delivery, **_money_figures(doc), **doc.ledger)
    return rid


def _posted(record, entity: dict, doc: Document | None, client, delivery, started, adopted: bool,
            exchange: dict | None = None, shop: Shop | None = None) -> PostResult:
    """Mark the row posted from QBO's answer; doc is None when a find= lookup adopted it before build().
    With `shop` (a batch row), the row gets back its own requestid: it names the document, not the batch."""
    total = qbo_total_of(doc.entity if doc else record.document_type, entity)
    if shop is not None:
        record.request_id = request_id_for(shop, record, doc.entity if doc else record.document_type)
    _update(record, status=RecordStatus.POSTED, request_id=record.request_id, qbo_id=str(entity.get("Id")), qbo_sync_token=str(entity.get("SyncToken", "0")),
            qbo_doc_number=entity.get("DocNumber") or (doc.doc_number if doc else record.qbo_doc_number),
            posted_at=utcnow(), reason=None, error_code=None, error_element=None,
            qbo_total=total if total is not None else (doc.figures.get("qbo_total") if doc else record.qbo_total))
    record_attempt(record, delivery, client, "adopted" if adopted else "posted", None, started, exchange)
    return PostResult(DeliveryStatus.POSTED, record, adopted=adopted)


def flag(record: SyncRecord, reason: str, **figures) -> PostResult:
    """Do not post: keep both figures and the reason for the admin and support."""
    _update(record, status=RecordStatus.FLAGGED, reason=reason, **figures)
    return PostResult(DeliveryStatus.FLAGGED, record)
