"""Replays: put a delivery back through the normal exactly-once path (never a second QBO document)."""

from __future__ import annotations

import logging

import redis

from .. import runtime
from ..models import AuditLog, WebhookDelivery, utcnow
from ..statuses import DeliveryStatus
from .sweeper import enqueue_delivery

log = logging.getLogger(__name__)

REPLAYABLE = (DeliveryStatus.FAILED, DeliveryStatus.FLAGGED, DeliveryStatus.IGNORED, DeliveryStatus.PENDING,
              DeliveryStatus.POSTED, DeliveryStatus.PROCESSED, DeliveryStatus.SKIPPED_DUPLICATE,
              DeliveryStatus.RECEIVED, DeliveryStatus.QUEUED)
BULK_PROGRESS_KEY = "ecomflux:bulk-replay:{job}"


def replay_delivery(delivery_id: int, actor: str | None = None) -> str:
    """Re-queue one delivery; a posted order replays to 'skipped_duplicate' through the ledger.

    Returns 'queued', 'scheduled' (Redis down: the sweeper enqueues it) or 'busy' (being processed).
    """
    updated = WebhookDelivery.update(status=DeliveryStatus.QUEUED, next_attempt_at=None, lease_until=None,
                                     enqueued_at=utcnow()).where(
        (WebhookDelivery.id == delivery_id) & WebhookDelivery.status.in_(REPLAYABLE)).execute()
    if not updated:
        return "busy"
    if actor:
        AuditLog.create(staff_email=actor, action="replay", target=f"delivery:{delivery_id}")
    delivery = WebhookDelivery.get_by_id(delivery_id)
    try:
        ok = enqueue_delivery(runtime.redis(), delivery)
    except redis.RedisError:
        ok = False
    if not ok:
        # Marked 'received' so the sweeper enqueues it as soon as Redis answers.
        WebhookDelivery.update(status=DeliveryStatus.RECEIVED, enqueued_at=None).where(WebhookDelivery.id == delivery_id).execute()
        return "scheduled"
    return DeliveryStatus.QUEUED


def replay_many(delivery_ids: list[int], job_key: str | None = None, actor: str | None = None) -> dict:
    """Bulk replay (run as a background job); progress is kept in Redis for the console."""
    conn = runtime.redis()
    key = BULK_PROGRESS_KEY.format(job=job_key) if job_key else None
    counts = {"total": len(delivery_ids), "done": 0, "queued": 0, "scheduled": 0, "busy": 0}
    for delivery_id in delivery_ids:
        result = replay_delivery(delivery_id, actor=None)
        counts[result] = counts.get(result, 0) + 1
        counts["done"] += 1
        if key and (counts["done"] % 25 == 0 or counts["done"] == counts["total"]):
            conn.hset(key, mapping=counts)
            conn.expire(key, 24 * 3600)
    if actor:
        AuditLog.create(staff_email=actor, action="bulk_replay", detail=counts)
    return counts
