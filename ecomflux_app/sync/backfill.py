"""Historical import: pages of Shopify orders (GraphQL) posted through the one posting path, in QBO batches.

Per page, orders.post_orders resolves the customers and items of all its orders together (one
directory read, one lookup batch, one create batch), then posting.post_batch creates the documents
30 per batch request under the same ledger locks, 'posting' marks, lookups of uncertain rows and
attempt records as a live order. The cursor is saved after every page: a rerun resumes there.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Callable

from .. import runtime
from ..models import BackfillRun, Shop, SyncRecord, utcnow
from ..statuses import DeliveryStatus, RecordStatus, RunStatus
from ..work_queue import BULK_QUEUE, enqueue
from ..quickbooks.client import QboClient, connection_for
from ..quickbooks.errors import QboError
from ..translate.document_kinds import kind_for_setting
from ..translate.settings import SyncSettings
from .orders import post_orders
from .shop_settings import shop_settings
from ..work_results import FatalError, RetryLater, WaitingForReconnect
from .posting import translate_error
from .refunds import _moved_money, mark_reflected, post_refund
from .payments import post_payment_for_order
from ..shopify.graphql import fetch_orders

log = logging.getLogger(__name__)

PAGE_SIZE = 90  # three full document batches per page
LEASE = timedelta(minutes=5)  # renewed every page and every HEARTBEAT_SECONDS while posting one
HEARTBEAT_SECONDS = 30
QUEUED_LEASE = timedelta(minutes=30)  # a queued job may wait behind fresh per-shop work
RESUMABLE = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.FAILED)
DONE_STATUSES = (RecordStatus.POSTED, RecordStatus.VOIDED, RecordStatus.SKIPPED)


def eligible(order: dict, settings: SyncSettings) -> tuple[bool, str | None]:
    """Would the webhooks have posted this order? (not cancelled; paid or fulfilled per the trigger)."""
    if order.get("cancelled_at"):
        return False, "cancelled"
    if settings.trigger == "paid":
        ok = order.get("financial_status") in ("paid", "partially_refunded", "refunded")
        return ok, None if ok else f"not paid ({order.get('financial_status')})"
    ok = order.get("fulfillment_status") in ("fulfilled", "partial")
    return ok, None if ok else f"not fulfilled ({order.get('fulfillment_status')})"


def start_backfill(shop: Shop, since: date, until: date | None = None, enqueue_job: bool = True,
                   owner: str | None = None) -> BackfillRun:
    """Record the run and queue it on the bulk queue (served after fresh per-shop work); `owner` is a
    process that runs it itself (the CLI) instead."""
    token = owner or (_job_token() if enqueue_job else None)  # None: whoever runs it first takes it
    run = BackfillRun.create(shop=shop, since=since, until=until, status=RunStatus.RUNNING, owner=token,
                             lease_until=utcnow() + (QUEUED_LEASE if enqueue_job else LEASE))
    if enqueue_job:
        _enqueue(run, token)
    return run


def _job_token() -> str:
    return f"job:{uuid.uuid4().hex[:12]}"


def _enqueue(run: BackfillRun, token: str, delay: timedelta | None = None) -> None:
    enqueue(runtime.redis(), BULK_QUEUE, "workers.jobs.run_backfill", run.id, token, delay=delay,
            job_id=None if delay else f"backfill-{run.id}-{token[4:]}")


def stalled(run: BackfillRun, now: datetime | None = None) -> bool:
    """A 'running' run whose lease has passed: the process running it died (or its job was lost)."""
    until = run.lease_until or (run.started_at + LEASE if run.started_at else None)
    return run.status == RunStatus.RUNNING and until is not None and until < (now or utcnow())


def active_run(shop: Shop) -> BackfillRun | None:
    """The shop's run that is running or stopped halfway (stalled), if any."""
    return (BackfillRun.select().where((BackfillRun.shop == shop.id) & (BackfillRun.status == RunStatus.RUNNING))
            .order_by(BackfillRun.id.desc()).first())


def claim(run_id: int, owner: str, lease: timedelta = LEASE) -> bool:
    """Take (or keep) the run for `owner` unless another live process holds it."""
    now = utcnow()
    free = (BackfillRun.owner.is_null() | (BackfillRun.owner == owner) | BackfillRun.lease_until.is_null()
            | (BackfillRun.lease_until < now))
    return BackfillRun.update(owner=owner, lease_until=now + lease, status=RunStatus.RUNNING).where(
        (BackfillRun.id == run_id) & BackfillRun.status.in_(RESUMABLE) & free).execute() == 1


def heartbeat(run_id: int, owner: str, lease: timedelta = LEASE) -> bool:
    """Extend our lease; False when the run is no longer ours (cancelled, or taken over after we stalled)."""
    return BackfillRun.update(lease_until=utcnow() + lease).where(
        (BackfillRun.id == run_id) & (BackfillRun.owner == owner) & (BackfillRun.status == RunStatus.RUNNING)).execute() == 1


def resume_backfill(run: BackfillRun, enqueue_job: bool = True) -> BackfillRun:
    """Continue a stalled, paused or failed run on the bulk queue from its cursor (ValueError if it is live)."""
    run = BackfillRun.get_by_id(run.id)
    if run.status not in RESUMABLE or (run.status == RunStatus.RUNNING and not stalled(run)):
        raise ValueError(f"backfill #{run.id} is {run.status}" + (" and alive" if run.status == RunStatus.RUNNING else "")
                         + ": nothing to resume")
    token = _job_token()
    BackfillRun.update(status=RunStatus.RUNNING, owner=token, lease_until=utcnow() + QUEUED_LEASE, error=None,
                       finished_at=None).where(BackfillRun.id == run.id).execute()
    if enqueue_job:
        _enqueue(run, token)
    return BackfillRun.get_by_id(run.id)


def cancel_backfill(run: BackfillRun, by: str) -> BackfillRun:
    """Stop a run for good (a live process stops after its current page); what it posted stays posted."""
    BackfillRun.update(status=RunStatus.CANCELLED, owner=None, lease_until=None, finished_at=utcnow(),
                       error=f"cancelled by {by}").where(
        (BackfillRun.id == run.id) & BackfillRun.status.in_(RESUMABLE)).execute()
    return BackfillRun.get_by_id(run.id)


def _bump(counts: dict, key: str) -> None:
    """Count as it happens (posted/failed also on the run row), so a crash mid-page loses no count and
    the resumed page, which skips what is done, counts nothing twice."""
    counts[key] += 1
    run_id = counts.get("run_id")
    if run_id and key in ("posted", "failed", "flagged"):
        column = BackfillRun.posted if key == "posted" else BackfillRun.failed
        BackfillRun.update({column: column + 1}).where(BackfillRun.id == run_id).execute()


def post_page(shop: Shop, orders: list[dict], settings: SyncSettings, client: QboClient,
              run_id: int | None = None, beat: Callable[[], object] | None = None) -> dict:
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
        if beat is not None:
            beat()
        if isinstance(outcome, (RetryLater, WaitingForReconnect)):  # e.g. another worker holds it: page again
            later.append(outcome)
        elif isinstance(outcome, Exception):
            _bump(counts, "failed")
        elif outcome.status == DeliveryStatus.POSTED:
            _bump(counts, "posted")
            mark_reflected(shop, order)
        elif outcome.status == DeliveryStatus.FLAGGED:
            _bump(counts, "flagged")
        else:
            _bump(counts, "skipped")

    post_orders(shop, work, settings, client, each=count)
    if kind_for_setting(settings.document_type).takes_payments:
        _record_payments(shop, work, settings, client)
    _record_refunds(shop, work, settings, client)
    if later:
        raise later[0]
    return counts


def _record_refunds(shop: Shop, orders: list[dict], settings: SyncSettings, client: QboClient) -> None:
    """Historical orders are posted as sold: the money their refunds sent back gets its own documents."""
    for order in orders:
        refunds = [r for r in order.get("refunds") or [] if isinstance(r, dict) and r.get("id") and _moved_money(r)]
        row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"order:{order['id']}"))
        if not refunds or row is None or row.status != RecordStatus.POSTED:
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
    for order in orders:
        if order.get("financial_status") not in ("paid", "partially_paid", "partially_refunded", "refunded"):
            continue
        row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"order:{order['id']}"))
        if row is None or row.status != RecordStatus.POSTED:
            continue
        try:
            post_payment_for_order(shop, order, settings, client=client)
        except (FatalError, RetryLater) as exc:
            log.info("backfill: payment for order %s not recorded: %s", order.get("id"), exc.reason)


def run_backfill(backfill_id: int, max_pages: int | None = None, requeue: bool = True,
                 owner: str = "worker") -> BackfillRun:
    """Continue the run from its saved cursor until Shopify has no more pages (or max_pages), holding
    its lease as `owner`; a run another live process holds, or one cancelled, is left alone.

    Throttling (Shopify or QBO) and transient trouble: the job is queued again after the delay asked
    for (requeue=False: the RetryLater is raised to the caller, e.g. the CLI, instead)."""
    run = BackfillRun.get_by_id(backfill_id)
    if run.status in (RunStatus.DONE, RunStatus.CANCELLED):
        return run
    if not claim(run.id, owner):
        log.info("backfill #%s is held by %s until %s: not run by %s", run.id, run.owner, run.lease_until, owner)
        return run
    shop = run.shop
    try:
        conn = connection_for(shop)
    except WaitingForReconnect as exc:
        return _stop(run.id, RunStatus.PAUSED, exc.reason)
    client = QboClient(conn)
    settings = shop_settings(shop, conn)
    pages = 0
    BackfillRun.update(error=None).where(BackfillRun.id == run.id).execute()
    beat = _beater(run.id, owner)
    while True:
        run = BackfillRun.get_by_id(backfill_id)
        if run.status != RunStatus.RUNNING or run.owner != owner:  # cancelled, or taken over while we were stalled
            return run
        try:
            orders, next_cursor = fetch_orders(shop, run.since, run.until, cursor=run.cursor, page_size=PAGE_SIZE)
            post_page(shop, orders, settings, client, run_id=run.id, beat=beat)
        except WaitingForReconnect as exc:
            return _stop(run.id, RunStatus.PAUSED, exc.reason)
        except (RetryLater, QboError) as exc:  # ShopifyThrottled included
            if isinstance(exc, QboError):  # from the page's reference reads/creates
                exc = translate_error(exc, SyncRecord(attempts=1))
                if isinstance(exc, FatalError):
                    return _stop(run.id, RunStatus.FAILED, exc.reason)
            delay = timedelta(seconds=max(1.0, float(exc.delay_seconds)))
            BackfillRun.update(error=f"waiting: {exc.reason}", lease_until=utcnow() + delay + (
                QUEUED_LEASE if requeue else LEASE)).where(BackfillRun.id == run.id).execute()
            if not requeue:
                raise
            _enqueue(run, owner, delay=delay)
            return BackfillRun.get_by_id(run.id)
        done = next_cursor is None
        BackfillRun.update(
            cursor=next_cursor, seen=BackfillRun.seen + len(orders), status=RunStatus.DONE if done else RunStatus.RUNNING,
            finished_at=utcnow() if done else None, error=None, lease_until=utcnow() + LEASE,
        ).where(BackfillRun.id == run.id).execute()
        pages += 1
        if done or (max_pages is not None and pages >= max_pages):
            return BackfillRun.get_by_id(run.id)


def pause_backfill(run_id: int, reason: str) -> BackfillRun:
    """Stop running it for now, lease released: it can be resumed and blocks no new import."""
    return _stop(run_id, RunStatus.PAUSED, reason)


def _stop(run_id: int, status: str, reason: str) -> BackfillRun:
    BackfillRun.update(status=status, error=reason, owner=None, lease_until=None,
                       finished_at=utcnow() if status == RunStatus.FAILED else None).where(BackfillRun.id == run_id).execute()
    return BackfillRun.get_by_id(run_id)


def _beater(run_id: int, owner: str) -> Callable[[], None]:
    """A heartbeat for post_page: renews the lease at most every HEARTBEAT_SECONDS."""
    last = [time.monotonic()]

    def beat() -> None:
        if time.monotonic() - last[0] >= HEARTBEAT_SECONDS:
            last[0] = time.monotonic()
            heartbeat(run_id, owner)

    return beat


def progress(run: BackfillRun) -> dict:
    """The run as the page and the CLI show it; `stalled`: its process died, resume or cancel it."""
    return {"id": run.id, "since": run.since.isoformat() if run.since else None,
            "until": run.until.isoformat() if run.until else None, "status": run.status, "seen": run.seen,
            "posted": run.posted, "failed": run.failed, "error": run.error, "stalled": stalled(run),
            "runner": ("command line" if (run.owner or "").startswith("cli:") else "queue") if run.owner else None,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}
