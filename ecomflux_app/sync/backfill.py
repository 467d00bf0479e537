"""Historical import: pages of Shopify orders (GraphQL) posted through the one posting path, in QBO batches.

Per page, orders.post_orders resolves the customers and items of all its orders together (one
directory read, one lookup batch, one create batch), then posting.post_batch creates the documents
30 per batch request under the same ledger locks, 'posting' marks, lookups of uncertain rows and
attempt records as a live order. The cursor is saved after every page: a rerun resumes there.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from .. import runtime
from ..models import BackfillRun, Shop, SyncRecord, utcnow
from ..queue import BULK_QUEUE, enqueue
from ..quickbooks.client import QboClient, connection_for
from ..quickbooks.errors import QboError
from ..translate.settings import SyncSettings
from .orders import post_orders, shop_settings
from .outcomes import FatalError, RetryLater, WaitingForReconnect
from .posting import translate_error
from .refunds import mark_reflected

log = logging.getLogger(__name__)

PAGE_SIZE = 90  # three full document batches per page
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


def _bump(counts: dict, key: str) -> None:
    """Count as it happens (posted/failed also on the run row), so a crash mid-page loses no count and
    the resumed page, which skips what is done, counts nothing twice."""
    counts[key] += 1
    run_id = counts.get("run_id")
    if run_id and key in ("posted", "failed", "flagged"):
        column = BackfillRun.posted if key == "posted" else BackfillRun.failed
        BackfillRun.update({column: column + 1}).where(BackfillRun.id == run_id).execute()


def post_page(shop: Shop, orders: list[dict], settings: SyncSettings, client: QboClient,
              run_id: int | None = None) -> dict:
    """Post a page of orders exactly once through the one posting path (orders.post_orders: ledger lock,
    attempt records, batch writes); returns counts {posted, skipped, failed, flagged}."""
    counts: dict = {"posted": 0, "skipped": 0, "failed": 0, "flagged": 0, "run_id": run_id}
    work: list[dict] = []
    done = {r.source_key for r in SyncRecord.select(SyncRecord.source_key).where(
        (SyncRecord.shop == shop.id) & SyncRecord.status.in_(DONE_STATUSES)
        & SyncRecord.source_key.in_([f"order:{o.get('id')}" for o in orders]))}
    for order in orders:
        if f"order:{order.get('id')}" in done or not eligible(order, settings)[0]:
            _bump(counts, "skipped")
        else:
            work.append(order)
    later: list[Exception] = []

    def count(order: dict, outcome) -> None:
        if isinstance(outcome, (RetryLater, WaitingForReconnect)):  # e.g. another worker holds it: page again
            later.append(outcome)
        elif isinstance(outcome, Exception):
            _bump(counts, "failed")
        elif outcome.status == "posted":
            _bump(counts, "posted")
            mark_reflected(shop, order)
        elif outcome.status == "flagged":
            _bump(counts, "flagged")
        else:
            _bump(counts, "skipped")

    post_orders(shop, work, settings, client, each=count)
    if settings.document_type == "invoice":
        _record_payments(shop, work, settings, client)
    if later:
        raise later[0]
    return counts


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
