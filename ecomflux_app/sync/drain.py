"""Backlog drain: a shop's waiting orders posted through QBO batch requests, 30 documents a request.

A worker that starts a shop's job first looks at the shop's waiting order deliveries (queued, or parked
and due: a reconnect after days, QBO back from an outage, a flash sale). From BACKLOG_MIN on, it claims
up to ROUND_BATCHES x 30 of them (the same lease as one delivery), resolves their customers and items
together and posts their documents through orders.post_orders, whose post_batch keeps every single
post's guarantee (ledger lock, 'posting' mark, requestid, lookup of uncertain rows). The round's
batches are in flight at once, each on its own thread, database connection and QBO client, so one
worker drains at the realm's batch budget even when QBO takes seconds per batch; the worker still
counts as ONE of the shop's share (queue.shop_share), so other shops keep a worker. Anything the
drain does not take goes the single path (dispatch.process_batch), the job's own ids included.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from .. import runtime
from ..db import database
from ..models import Shop, WebhookDelivery, utcnow
from ..quickbooks.client import QboClient, connection_for
from ..quickbooks.limiter import RealmLimiter
from ..statuses import DeliveryStatus
from ..work_results import Outcome
from .dispatch import CLAIMABLE, FAIR_SLICE_SECONDS, claim_many, process_batch, process_delivery, run_claimed, settle
from . import inbox
from .uninstall import ensure_shop_active
from .orders import TRIGGER_TOPICS, order_day, post_orders, prepare_order_references
from .shop_settings import shop_settings
from .posting import BATCH_MAX

log = logging.getLogger(__name__)

BACKLOG_MIN = 10  # waiting orders of one shop from which they go in batches (fewer: single posts)
ROUND_BATCHES = 3  # batch requests one worker has in flight at once (3 workers: 9 of the realm's 10)
# A round's batch call may wait this long for the realm's batch budget (38 a minute refill one by one).
BATCH_WAIT_SECONDS = 10.0
BUDGET_WAIT_SECONDS = 5.0  # a drain waits this long at most for the realm's next batch request


def process_shop_jobs(shop_domain: str, delivery_ids: list[int], *, slice_seconds: float = FAIR_SLICE_SECONDS,
                      redis_conn=None) -> dict:
    """A shop's job: drain rounds while the shop has a backlog and the slice lasts, then the job's own
    deliveries not drained yet through the single path (which hands the rest on after the slice)."""
    started = time.monotonic()
    statuses: dict[str, int] = {}
    while time.monotonic() - started < slice_seconds:
        drained = drain_round(shop_domain)
        if not drained:
            break
        for status, count in drained.items():
            statuses[f"drained_{status}"] = statuses.get(f"drained_{status}", 0) + count
    left = max(0.0, slice_seconds - (time.monotonic() - started))
    for status, count in process_batch(shop_domain, delivery_ids, slice_seconds=left, redis_conn=redis_conn).items():
        statuses[status] = statuses.get(status, 0) + count
    return statuses


def process_inbox(shop_domain: str, job_id: str, *, redis_conn=None) -> dict:
    """Intake's job for a shop: take the ids its inbox holds now and run them as the shop's job."""
    delivery_ids = inbox.take(redis_conn or runtime.redis(), shop_domain, job_id)
    if not delivery_ids:  # an earlier inbox job took them (two can wait after a lost one, see inbox.py)
        return {}
    return process_shop_jobs(shop_domain, delivery_ids, redis_conn=redis_conn)


def process_one(delivery_id: int, *, force: bool = False):
    """A single delivery's job (the sweeper's, a reconnect's, a replay's): an order of a shop with a
    backlog starts a drain round first, so a flood of single jobs is posted in batches too."""
    if not force:
        with database.connection_context():
            row = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
        if row is not None and row.status in CLAIMABLE and row.topic in TRIGGER_TOPICS.values():
            return process_shop_jobs(row.shop_domain, [delivery_id])
    return process_delivery(delivery_id, force=force)


def waiting_orders(shop: Shop, topic: str, limit: int):
    """The shop's order deliveries waiting to run (oldest first): queued, or parked and due now."""
    now = utcnow()
    return (WebhookDelivery.select(WebhookDelivery.id)
            .where((WebhookDelivery.shop == shop.id) & (WebhookDelivery.topic == topic)
                   & (WebhookDelivery.status.in_((DeliveryStatus.RECEIVED, DeliveryStatus.QUEUED))
                      | ((WebhookDelivery.status == DeliveryStatus.PENDING)
                         & (WebhookDelivery.next_attempt_at.is_null() | (WebhookDelivery.next_attempt_at <= now)))))
            .order_by(WebhookDelivery.id).limit(limit))


def drain_round(shop_domain: str) -> dict[str, int]:
    """One round for the shop's backlog; returns the statuses its deliveries ended in ({}: no backlog,
    no batch budget now, or nothing the drain may take)."""
    with database.connection_context():
        context = _drain_context(shop_domain)
        if context is None:
            return {}
        shop, conn, settings, topic, budget = context
        if waiting_orders(shop, topic, BACKLOG_MIN).count() < BACKLOG_MIN:
            return {}
        claimed = _claim_round(shop, topic, budget * BATCH_MAX)
        statuses: dict[str, int] = {}
        orders, deliveries = [], []
        for delivery in claimed:
            order = _postable(delivery, settings)
            if order is None:  # not a plain post (bad body, before the start date): the handler decides
                status = run_claimed(delivery)
                statuses[status] = statuses.get(status, 0) + 1
            else:
                orders.append(order)
                deliveries.append(delivery)
    for status in _post_round(shop, conn, settings, orders, deliveries):
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def _claim_round(shop: Shop, topic: str, want: int) -> list[WebhookDelivery]:
    """Up to `want` of the shop's oldest waiting orders, claimed: rows another worker's round took in
    between are replaced by the next ones (a few tries), so concurrent rounds send full batches."""
    claimed: list[WebhookDelivery] = []
    for _try in range(3):
        ids = [row.id for row in waiting_orders(shop, topic, want - len(claimed))]
        claimed += claim_many(ids) if ids else []
        if not ids or len(claimed) >= want:
            break
    return claimed


def _drain_context(shop_domain: str):
    """(shop, connection, settings, trigger topic, batches this round) when the shop may drain now."""
    shop = Shop.get_or_none(Shop.domain == shop_domain)
    if shop is None:
        return None
    try:
        shop = ensure_shop_active(shop)
        conn = connection_for(shop)
    except Exception:  # noqa: BLE001 - uninstalled, not connected: the single path parks each delivery
        return None
    settings = shop_settings(shop, conn)
    topic = TRIGGER_TOPICS.get(settings.trigger, "orders/fulfilled")
    if topic == "orders/paid" and settings.document_type == "invoice":
        return None  # each such delivery also records its payment: the handler's own path
    limiter = RealmLimiter(runtime.redis())
    budget, refill = limiter.batch_headroom(conn.realm_id)
    if not budget and refill <= BUDGET_WAIT_SECONDS:
        # The batch budget refills one request at a time: waiting for the next one beats posting the
        # backlog one by one, whose calls would take the room batches need (this worker is within its
        # shop's share, so other shops are not waiting for it).
        time.sleep(refill)
        budget, refill = limiter.batch_headroom(conn.realm_id)
    budget = min(ROUND_BATCHES, budget)
    return (shop, conn, settings, topic, budget) if budget > 0 else None


def _postable(delivery: WebhookDelivery, settings) -> dict | None:
    """The order a claimed delivery posts as it is, or None when its handler has more to decide."""
    try:
        order = json.loads(delivery.body)
    except ValueError:
        return None
    if not isinstance(order, dict) or order.get("id") in (None, ""):
        return None
    day = order_day(order)
    if settings.sync_start_date and day and day < settings.sync_start_date:
        return None
    return order


def _post_round(shop: Shop, conn, settings, orders: list[dict], deliveries: list[WebhookDelivery]) -> list[str]:
    """Post the round's orders, one QBO batch per thread, and settle each delivery; returns their statuses."""
    if not orders:
        return []
    with database.connection_context():
        try:
            prepare_order_references(shop, orders, settings, QboClient(conn))
        except Exception as exc:  # noqa: BLE001 - every delivery of the round waits alike
            return [settle(d, exc) for d in deliveries]
    chunks = [(orders[i:i + BATCH_MAX], deliveries[i:i + BATCH_MAX]) for i in range(0, len(orders), BATCH_MAX)]
    with ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="drain") as pool:
        done = pool.map(lambda chunk: _post_chunk(shop, conn, settings, *chunk), chunks)
        return [status for statuses in done for status in statuses]


def _post_chunk(shop: Shop, conn, settings, orders: list[dict], deliveries: list[WebhookDelivery]) -> list[str]:
    """One batch request's orders, on this thread's own database connection and QBO client."""
    with database.connection_context():
        client = QboClient(conn)
        client.batch_wait = BATCH_WAIT_SECONDS
        try:
            results: list[Outcome | Exception] = post_orders(shop, orders, settings, client,
                                                             deliveries=deliveries, prepared=True)
        except Exception as exc:  # noqa: BLE001 - an uncertain batch: every row is looked up next time
            results = [exc] * len(orders)
        with database.atomic():  # one commit for the batch's deliveries
            return [settle(delivery, result) for delivery, result in zip(deliveries, results)]

