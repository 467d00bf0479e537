"""Historical import: pages of Shopify orders (GraphQL) posted through the same ledger, with QBO batch writes.

Per page: the customers and items of all its orders are resolved together (one directory read, one
lookup batch, one create batch), then the documents are created 30 per batch request. Before a
batch, its ledger rows are set to 'posting' (so a crash leaves them "uncertain", and the next
attempt looks them up in QBO by DocNumber + marker before creating anything); the batch requestid
is derived from its rows' source keys. The cursor is saved after every page: a rerun resumes there.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, timedelta
from decimal import Decimal

from .. import runtime
from ..models import BackfillRun, Shop, SyncRecord, utcnow
from ..queue import BULK_QUEUE, enqueue
from ..quickbooks.client import QboClient, connection_for
from ..quickbooks.errors import QboAuthError, QboError, QboThrottled, QboTransient, RealmBusy
from ..translate.order import TranslationError, order_marker, plan_order
from ..translate.query import quote
from ..translate.requestid import request_id as make_request_id
from ..translate.settings import SyncSettings
from .orders import build_order_document, post_order, shop_facts, shop_settings
from .outcomes import FatalError, RetryLater, WaitingForReconnect
from .posting import Document, PostResult, _money_figures, _update, ledger_row, request_id_for, translate_error
from .references import _Lookup, _batch_queries, prepare_references
from .refunds import mark_reflected

log = logging.getLogger(__name__)

PAGE_SIZE = 90  # three full document batches per page
BATCH_MAX = 30
DONE_STATUSES = ("posted", "voided", "skipped")


def eligible(order: dict, settings: SyncSettings) -> tuple[bool, str | None]:
    """Would the webhooks have posted this order? (not cancelled; paid or fulfilled per the trigger)."""
    if order.get("cancelled_at"):
        return False, "cancelled"
    if settings.trigger == "paid":
        ok = order.get("financial_status") in ("paid", "partially_refunded", "refunded")
        return ok, None if ok else f"not paid ({order.get('financial_status')})"
    ok = order.get("fulfillment_status") in ("fulfilled", "partial")
    return ok, None if ok else f"not fulfilled ({order.get('fulfillment_status')})"


def start_backfill(shop: Shop, since: date, until: date | None = None, enqueue_job: bool = True) -> BackfillRun:
    """Record the run and queue it on the bulk queue (served after fresh per-shop work)."""
    run = BackfillRun.create(shop=shop, since=since, until=until, status="running")
    if enqueue_job:
        enqueue(runtime.redis(), BULK_QUEUE, "workers.jobs.run_backfill", run.id, job_id=f"backfill-{run.id}")
    return run


def adopt_uncertain(client: QboClient, records: list[SyncRecord]) -> set[int]:
    """Rows left 'posting' by a crash: look their documents up (DocNumber + our marker), 30 queries per
    batch call, and adopt those QBO has; the rest were never created and are posted normally."""
    lookups = [_Lookup(str(r.id), f"SELECT * FROM {r.document_type} WHERE DocNumber = {quote(r.qbo_doc_number)}",
                       r.document_type) for r in records if r.document_type and r.qbo_doc_number]
    if not lookups:
        return set()
    found = _batch_queries(client, lookups)
    adopted = set()
    for record in records:
        marker = order_marker(record.order_id)
        row = next((row for row in found.get(str(record.id), []) if marker in (row.get("PrivateNote") or "")), None)
        if row is not None:
            total = row.get("TotalAmt")
            _update(record, status="posted", qbo_id=str(row.get("Id")), qbo_sync_token=str(row.get("SyncToken", "0")),
                    qbo_doc_number=row.get("DocNumber") or record.qbo_doc_number, posted_at=utcnow(),
                    qbo_total=Decimal(str(total)) if total is not None else record.qbo_total)
            adopted.add(record.id)
    return adopted


def _bump(counts: dict, key: str) -> None:
    """Count as it happens (posted/failed also on the run row), so a crash mid-page loses no count and
    the resumed page, which skips what is done, counts nothing twice."""
    counts[key] += 1
    run_id = counts.get("run_id")
    if run_id and key in ("posted", "failed", "flagged"):
        column = BackfillRun.posted if key == "posted" else BackfillRun.failed
        BackfillRun.update({column: column + 1}).where(BackfillRun.id == run_id).execute()


def _batch_request_id(shop: Shop, records: list[SyncRecord]) -> str:
    digest = hashlib.sha256("\x1f".join(sorted(r.source_key for r in records)).encode()).hexdigest()[:32]
    return make_request_id(shop.domain, f"batch:{digest}", "batch")


def post_page(shop: Shop, orders: list[dict], settings: SyncSettings, client: QboClient,
              run_id: int | None = None) -> dict:
    """Post a page of orders exactly once; returns counts {posted, skipped, failed, flagged}."""
    counts: dict = {"posted": 0, "skipped": 0, "failed": 0, "flagged": 0, "run_id": run_id}
    work: list[tuple[dict, SyncRecord]] = []
    for order in orders:
        ok, why = eligible(order, settings)
        record = SyncRecord.get_or_none((SyncRecord.shop == shop.id)
                                        & (SyncRecord.source_key == f"order:{order.get('id')}"))
        if record is not None and record.status in DONE_STATUSES:
            _bump(counts, "skipped")
            continue
        if not ok:
            _bump(counts, "skipped")
            continue
        record = record or ledger_row(shop, f"order:{order['id']}", kind="order", order_id=str(order["id"]),
                                      order_name=order.get("name"))
        work.append((order, record))
    plans = []
    for order, _ in work:
        try:
            plans.append(plan_order(order, settings, shop_facts(shop)))
        except TranslationError:
            pass  # build_order_document flags it below
    prepare_references(shop, client, settings, [p for p in plans if p.balance.ok])

    adopted = adopt_uncertain(client, [record for _o, record in work if record.status == "posting"])
    batchable: list[tuple[dict, SyncRecord, Document]] = []
    for order, record in work:
        if record.id in adopted:
            _bump(counts, "posted")
            mark_reflected(shop, order)
            continue
        try:
            doc = build_order_document(shop, order, settings, client, record)
        except FatalError:
            _bump(counts, "failed")
            continue
        if isinstance(doc, PostResult):
            _bump(counts, "flagged")
            continue
        batchable.append((order, record, doc))
    for start in range(0, len(batchable), BATCH_MAX):
        _post_batch(shop, client, batchable[start:start + BATCH_MAX], settings, counts)
    if settings.document_type == "invoice":
        _record_payments(shop, [order for order, _r in work], settings, client)
    _record_refunds(shop, [order for order, _r in work], settings, client)
    return counts


def _record_refunds(shop: Shop, orders: list[dict], settings: SyncSettings, client: QboClient) -> None:
    """Historical orders are posted as sold: the money their refunds sent back gets its own documents."""
    from .refunds import _moved_money, post_refund

    for order in orders:
        refunds = [r for r in order.get("refunds") or [] if isinstance(r, dict) and r.get("id") and _moved_money(r)]
        row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"order:{order['id']}"))
        if not refunds or row is None or row.status != "posted":
            continue
        for refund in refunds:
            try:
                post_refund(shop, dict(refund, order_id=refund.get("order_id") or order["id"]), settings, client.conn,
                            client=client, order=order)
            except (FatalError, RetryLater) as exc:
                log.info("backfill: refund %s of order %s not posted: %s", refund.get("id"), order.get("id"),
                         exc.reason)


def _record_payments(shop: Shop, orders: list[dict], settings: SyncSettings, client: QboClient) -> None:
    """Invoice mode: historical invoices that Shopify shows as paid get their Payments (else they stay open)."""
    from .payments import post_payment_for_order

    for order in orders:
        if order.get("financial_status") not in ("paid", "partially_paid", "partially_refunded", "refunded"):
            continue
        row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"order:{order['id']}"))
        if row is None or row.status != "posted":
            continue
        try:
            post_payment_for_order(shop, order, settings, client=client)
        except (FatalError, RetryLater) as exc:
            log.info("backfill: payment for order %s not recorded: %s", order.get("id"), exc.reason)


def _single(shop: Shop, order: dict, settings: SyncSettings, client: QboClient, counts: dict) -> None:
    try:
        outcome = post_order(shop, order, settings, client.conn, client=client)
    except FatalError:
        _bump(counts, "failed")
        return
    if outcome.status == "posted":
        _bump(counts, "posted")
        mark_reflected(shop, order)
    elif outcome.status == "flagged":
        _bump(counts, "flagged")
    else:
        _bump(counts, "skipped")


def _post_batch(shop: Shop, client: QboClient, chunk: list[tuple[dict, SyncRecord, Document]],
                settings: SyncSettings, counts: dict) -> None:
    for _order, record, doc in chunk:
        _update(record, status="posting", attempts=record.attempts + 1, document_type=doc.entity,
                request_id=request_id_for(shop, record, doc.entity), qbo_doc_number=doc.doc_number, reason=None,
                error_code=None, error_element=None, **_money_figures(doc), **doc.ledger)
    items = [{"bId": str(record.id), "operation": "create", doc.entity: doc.payload} for _o, record, doc in chunk]
    try:  # client.request serializes with jsonout.dumps: the Decimal amounts stay exact
        answers = client.batch(items, _batch_request_id(shop, [r for _o, r, _d in chunk]))
    except WaitingForReconnect:
        raise
    except (QboThrottled, RealmBusy, QboTransient, QboAuthError) as exc:
        # Outcome unknown: the rows stay 'posting' and the resumed page looks them up before creating.
        raise translate_error(exc, chunk[0][1]) from None
    except QboError as exc:
        log.info("backfill batch failed (%s): posting its orders one by one", exc.describe())
        for order, _record, _doc in chunk:  # rows are 'posting': each is looked up before any create
            _single(shop, order, settings, client, counts)
        return
    by_id = {str(a.get("bId")): a for a in answers}
    for order, record, doc in chunk:
        answer = by_id.get(str(record.id), {})
        if doc.entity in answer:
            entity = answer[doc.entity]
            total = entity.get("TotalAmt")
            _update(record, status="posted", qbo_id=str(entity.get("Id")),
                    qbo_sync_token=str(entity.get("SyncToken", "0")),
                    qbo_doc_number=entity.get("DocNumber") or doc.doc_number, posted_at=utcnow(),
                    qbo_total=Decimal(str(total)) if total is not None else doc.figures.get("qbo_total"))
            _bump(counts, "posted")
            mark_reflected(shop, order)
        else:  # a fault for this item (e.g. 6140): the single path adopts ours or fails clearly
            _single(shop, order, settings, client, counts)


def run_backfill(backfill_id: int, max_pages: int | None = None, requeue: bool = True) -> BackfillRun:
    """Continue the run from its saved cursor until Shopify has no more pages (or max_pages).

    Throttling (Shopify or QBO) and transient trouble: the job is queued again after the delay asked
    for (requeue=False: the RetryLater is raised to the caller, e.g. the CLI, instead)."""
    from ..shopify.graphql import fetch_orders

    run = BackfillRun.get_by_id(backfill_id)
    if run.status == "done":
        return run
    shop = run.shop
    try:
        conn = connection_for(shop)
    except WaitingForReconnect as exc:
        BackfillRun.update(status="paused", error=exc.reason).where(BackfillRun.id == run.id).execute()
        return BackfillRun.get_by_id(run.id)
    client = QboClient(conn)
    settings = shop_settings(shop, conn)
    pages = 0
    BackfillRun.update(status="running", error=None).where(BackfillRun.id == run.id).execute()
    while True:
        run = BackfillRun.get_by_id(backfill_id)
        try:
            orders, next_cursor = fetch_orders(shop, run.since, run.until, cursor=run.cursor, page_size=PAGE_SIZE)
            post_page(shop, orders, settings, client, run_id=run.id)
        except WaitingForReconnect as exc:
            BackfillRun.update(status="paused", error=exc.reason).where(BackfillRun.id == run.id).execute()
            return BackfillRun.get_by_id(run.id)
        except (RetryLater, QboError) as exc:  # ShopifyThrottled included
            if isinstance(exc, QboError):  # from the page's reference reads/creates
                exc = translate_error(exc, SyncRecord(attempts=1))
                if isinstance(exc, FatalError):
                    BackfillRun.update(status="failed", error=exc.reason, finished_at=utcnow()).where(
                        BackfillRun.id == run.id).execute()
                    return BackfillRun.get_by_id(run.id)
            BackfillRun.update(error=f"waiting: {exc.reason}").where(BackfillRun.id == run.id).execute()
            if not requeue:
                raise
            enqueue(runtime.redis(), BULK_QUEUE, "workers.jobs.run_backfill", run.id,
                    delay=timedelta(seconds=max(1.0, float(exc.delay_seconds))))
            return BackfillRun.get_by_id(run.id)
        done = next_cursor is None
        BackfillRun.update(
            cursor=next_cursor, seen=BackfillRun.seen + len(orders), status="done" if done else "running", finished_at=utcnow() if done else None, error=None,
        ).where(BackfillRun.id == run.id).execute()
        pages += 1
        if done or (max_pages is not None and pages >= max_pages):
            return BackfillRun.get_by_id(run.id)


def progress(run: BackfillRun) -> dict:
    return {"id": run.id, "since": run.since.isoformat() if run.since else None,
            "until": run.until.isoformat() if run.until else None, "status": run.status, "seen": run.seen,
            "posted": run.posted, "failed": run.failed, "error": run.error,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}
