"""Runs one webhook delivery: claims the row with a lease, routes it by topic, records the outcome."""

from __future__ import annotations

import importlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from peewee import InterfaceError, OperationalError

from ..db import database
from ..models import Shop, WebhookDelivery, utcnow
from ..statuses import DeliveryStatus
from ..work_results import FatalError, RetryLater, WaitingForReconnect
from .sweeper import enqueue_continuation
from .. import runtime

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# A batch job gives its worker back after this long, so other shops' work is served in between.
FAIR_SLICE_SECONDS = 2.0
MAX_RETRIES = 12  # transient failures; after that the row fails visibly and support can replay it

# Topic -> handler, by dotted path so each topic's module is loaded only when needed: one for every
# subscribed topic of the registry (shopify/topics.py), as tests/test_topic_registry.py checks.
TOPIC_HANDLERS = {
    "orders/fulfilled": "ecomflux_app.sync.order_webhooks:handle_order_webhook",
    "orders/paid": "ecomflux_app.sync.order_webhooks:handle_order_webhook",
    "orders/cancelled": "ecomflux_app.sync.cancellations:handle_cancelled",
    "refunds/create": "ecomflux_app.sync.refunds:handle_refund",
    "app/uninstalled": "ecomflux_app.sync.uninstall:handle_uninstalled",
    "customers/data_request": "ecomflux_app.sync.compliance:handle_data_request",
    "customers/redact": "ecomflux_app.sync.compliance:handle_customer_redact",
    "shop/redact": "ecomflux_app.sync.compliance:handle_shop_redact",
}

# Statuses from which a delivery may be (re)claimed for processing.
CLAIMABLE = (DeliveryStatus.RECEIVED, DeliveryStatus.QUEUED, DeliveryStatus.PENDING)


@dataclass
class DeliveryContext:
    """What a handler gets: the row, its parsed payload and the shop (None if unknown)."""

    delivery: WebhookDelivery
    payload: dict
    shop: Shop | None


def _handler(topic: str):
    target = TOPIC_HANDLERS.get(topic)
    if target is None:
        return None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def claim(delivery_id: int, *, force: bool = False) -> WebhookDelivery | None:
    """Atomically move a claimable row to processing; None if another worker has it or it is done."""
    now = utcnow()
    cond = (WebhookDelivery.id == delivery_id) & (
        (WebhookDelivery.status.in_(CLAIMABLE))
        | ((WebhookDelivery.status == DeliveryStatus.PROCESSING) & (WebhookDelivery.lease_until < now))
    )
    if force:
        cond = (WebhookDelivery.id == delivery_id) & (
            (WebhookDelivery.status != DeliveryStatus.PROCESSING) | (WebhookDelivery.lease_until < now)
        )
    updated = (
        WebhookDelivery.update(
            status=DeliveryStatus.PROCESSING,
            lease_until=now + LEASE,
            started_at=now,
            attempts=WebhookDelivery.attempts + 1,
            next_attempt_at=None,
        )
        .where(cond)
        .execute()
    )
    return WebhookDelivery.get_by_id(delivery_id) if updated else None


def claim_many(delivery_ids: list[int]) -> list[WebhookDelivery]:
    """claim() for many rows in two statements: those claimable now, in id order (the others are left)."""
    now = utcnow()
    lease_until = now + LEASE  # this claim's own mark: no other claim writes the same instant
    (WebhookDelivery.update(status=DeliveryStatus.PROCESSING, lease_until=lease_until, started_at=now,
                            attempts=WebhookDelivery.attempts + 1, next_attempt_at=None)
     .where(WebhookDelivery.id.in_(delivery_ids)
            & (WebhookDelivery.status.in_(CLAIMABLE)
               | ((WebhookDelivery.status == DeliveryStatus.PROCESSING) & (WebhookDelivery.lease_until < now))))
     .execute())
    return list(WebhookDelivery.select().where(
        WebhookDelivery.id.in_(delivery_ids) & (WebhookDelivery.status == DeliveryStatus.PROCESSING)
        & (WebhookDelivery.lease_until == lease_until) & (WebhookDelivery.started_at == now))
        .order_by(WebhookDelivery.id))


def _finish(delivery: WebhookDelivery, status: str, error: str | None = None, detail: dict | None = None,
            next_attempt_at=None) -> None:
    WebhookDelivery.update(
        status=status,
        error=error,
        error_detail=detail,
        finished_at=utcnow(),
        lease_until=None,
        next_attempt_at=next_attempt_at,
    ).where(WebhookDelivery.id == delivery.id).execute()


def process_delivery(delivery_id: int, *, force: bool = False) -> str | None:
    """Process one delivery; returns the status it ended in, or None when it was not ours to run."""
    with database.connection_context():
        delivery = claim(delivery_id, force=force)
        if delivery is None:
            return None
        return run_claimed(delivery)


def run_claimed(delivery: WebhookDelivery) -> str:
    """Run a claimed delivery's handler and record how it ended; returns that status."""
    handler = _handler(delivery.topic)
    if handler is None:
        _finish(delivery, DeliveryStatus.IGNORED, f"unsupported topic {delivery.topic!r}")
        return DeliveryStatus.IGNORED
    try:
        payload = json.loads(delivery.body)
        if not isinstance(payload, dict):
            raise ValueError("payload is not a JSON object")
    except ValueError as exc:
        _finish(delivery, DeliveryStatus.FAILED, f"malformed JSON payload: {exc}")
        return DeliveryStatus.FAILED
    shop = Shop.get_or_none(Shop.domain == delivery.shop_domain)
    try:
        outcome = handler(DeliveryContext(delivery=delivery, payload=payload, shop=shop))
    except Exception as exc:  # noqa: BLE001 - settle() maps every failure to a row status
        return settle(delivery, exc)
    return settle(delivery, outcome)


def settle(delivery: WebhookDelivery, result) -> str:
    """Record a claimed delivery's result (an Outcome, or what its handler raised); returns the status."""
    if isinstance(result, WaitingForReconnect):
        _finish(delivery, DeliveryStatus.PENDING, result.reason)
        return DeliveryStatus.PENDING
    if isinstance(result, RetryLater):
        if delivery.attempts >= MAX_RETRIES:
            _finish(delivery, DeliveryStatus.FAILED, f"gave up after {delivery.attempts} attempts: {result.reason}", result.detail)
            return DeliveryStatus.FAILED
        _finish(delivery, DeliveryStatus.PENDING, result.reason, result.detail,
                next_attempt_at=utcnow() + timedelta(seconds=result.delay_seconds))
        return DeliveryStatus.PENDING
    if isinstance(result, FatalError):
        _finish(delivery, DeliveryStatus.FAILED, result.reason, result.detail)
        return DeliveryStatus.FAILED
    if isinstance(result, (OperationalError, InterfaceError)):
        # Lost database connection mid-handler: the ledger keeps QBO exactly-once, so retry.
        database.close()
        with database.connection_context():
            _finish(delivery, DeliveryStatus.PENDING, f"database error, will retry: {result}",
                    next_attempt_at=utcnow() + timedelta(seconds=5))
        return DeliveryStatus.PENDING
    if isinstance(result, Exception):  # a bug must not leave the row stuck in processing
        if getattr(result, "retryable", False):
            # Adapter errors that know they are transient (throttling, 5xx, timeouts) retry later.
            delay = float(getattr(result, "retry_after", 0) or 30)
            _finish(delivery, DeliveryStatus.PENDING, f"will retry: {result}", None,
                    next_attempt_at=utcnow() + timedelta(seconds=delay))
            return DeliveryStatus.PENDING
        log.error("delivery %s (%s) crashed", delivery.id, delivery.topic, exc_info=result)
        _finish(delivery, DeliveryStatus.FAILED, f"internal error: {type(result).__name__}: {result}")
        return DeliveryStatus.FAILED
    _finish(delivery, result.status, result.error, result.detail)
    return result.status


def process_batch(shop_domain: str, delivery_ids: list[int], *, slice_seconds: float = FAIR_SLICE_SECONDS,
                  redis_conn=None) -> dict:
    """Process a shop's batch in arrival order; past the time slice the rest goes back to the front
    of the shop queue (a new job), so a shop with a backlog cannot hold a worker from the others."""
    started = time.monotonic()
    with database.connection_context():
        # The sweeper sees this batch's waiting rows as fresh while it runs (see sweeper.live_jobs).
        WebhookDelivery.update(enqueued_at=utcnow()).where(
            WebhookDelivery.id.in_(delivery_ids) & (WebhookDelivery.status == DeliveryStatus.QUEUED)).execute()
    statuses: dict[str, int] = {}
    for position, delivery_id in enumerate(delivery_ids):
        status = process_delivery(delivery_id) or "skipped"
        statuses[status] = statuses.get(status, 0) + 1
        rest = delivery_ids[position + 1:]
        if rest and time.monotonic() - started >= slice_seconds:
            if redis_conn is None:
                redis_conn = runtime.redis()
            # If Redis is unreachable now the rows stay 'queued' and the sweeper re-enqueues them.
            enqueue_continuation(redis_conn, shop_domain, rest)
            statuses["continued"] = len(rest)
            break
    return statuses
