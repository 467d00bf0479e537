"""Enqueues deliveries and re-enqueues any whose job was lost, expired or is due for a retry."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis

from ..models import WebhookDelivery, utcnow
from rq.serializers import JSONSerializer

from ..queue import enqueue, enqueue_batch, shop_queue_name

log = logging.getLogger(__name__)

PROCESS_JOB = "workers.jobs.process_delivery"
LIVE_JOB_STATES = ("queued", "started", "scheduled", "deferred")


def job_id_for(delivery_id: int) -> str:
    return f"delivery-{delivery_id}"


def _job_alive(conn: redis.Redis, delivery_id: int) -> bool:
    """True when Redis still holds a queued or running job for the delivery (backlog, not loss)."""
    from rq.job import Job, NoSuchJobError

    try:
        job = Job.fetch(job_id_for(delivery_id), connection=conn, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in LIVE_JOB_STATES


def _enqueue_job(conn: redis.Redis, delivery: WebhookDelivery) -> None:
    enqueue(conn, shop_queue_name(delivery.shop_domain), PROCESS_JOB, delivery.id, job_id=job_id_for(delivery.id))


def enqueue_many(conn: redis.Redis, deliveries: list[tuple[str, int]]) -> None:
    """Enqueue (shop domain, delivery id) pairs in one round trip; raises RedisError on failure."""
    enqueue_batch(conn, [(shop_queue_name(shop), PROCESS_JOB, (did,), job_id_for(did)) for shop, did in deliveries])


def enqueue_delivery(conn: redis.Redis, delivery: WebhookDelivery) -> bool:
    """Put a delivery on its shop's queue and mark it queued; False (row untouched) if Redis is down."""
    try:
        _enqueue_job(conn, delivery)
    except redis.RedisError as exc:
        log.warning("enqueue of delivery %s failed, the sweeper will retry: %s", delivery.id, exc)
        return False
    WebhookDelivery.update(enqueued_at=utcnow(), status="queued").where(
        (WebhookDelivery.id == delivery.id) & (WebhookDelivery.status.in_(("received", "queued", "pending")))
    ).execute()
    return True


def due_deliveries(stale_after: timedelta, limit: int = 1000):
    """Rows that should be running but have no live job: lost enqueues, dead workers, due retries."""
    now = utcnow()
    stale = now - stale_after
    return (
        WebhookDelivery.select()
        .where(
            # Intake inserts rows as 'queued'; 'received' means their enqueue failed (Redis down).
            (WebhookDelivery.status == "received")
            | ((WebhookDelivery.status == "queued") & (WebhookDelivery.enqueued_at < stale))
            | ((WebhookDelivery.status == "processing") & (WebhookDelivery.lease_until < now))
            | ((WebhookDelivery.status == "pending") & (WebhookDelivery.next_attempt_at <= now))
        )
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )


def sweep(conn: redis.Redis, stale_after_seconds: int = 60) -> int:
    """Re-enqueue every due delivery; returns how many were enqueued."""
    count = 0
    for delivery in due_deliveries(timedelta(seconds=stale_after_seconds)):
        try:
            if delivery.status == "queued" and _job_alive(conn, delivery.id):
                continue  # still waiting its turn in a backlog: not lost
            _enqueue_job(conn, delivery)
        except redis.RedisError as exc:
            log.warning("sweeper cannot reach Redis: %s", exc)
            break
        # Queued again with a live job (a pending row keeps its last error as the reason it waited).
        WebhookDelivery.update(status="queued", enqueued_at=utcnow(), next_attempt_at=None).where(
            (WebhookDelivery.id == delivery.id) & (WebhookDelivery.status == delivery.status)).execute()
        count += 1
    if count:
        log.info("sweeper re-enqueued %d deliveries", count)
    return count


def resume_pending(conn: redis.Redis, shop_domain: str) -> int:
    """After a reconnect: re-enqueue the shop's deliveries parked while QBO was unreachable."""
    rows = WebhookDelivery.select().where(
        (WebhookDelivery.shop_domain == shop_domain)
        & (WebhookDelivery.status == "pending")
        & (WebhookDelivery.next_attempt_at.is_null())
    )
    count = 0
    for delivery in rows:
        _enqueue_job(conn, delivery)
        count += 1
    return count
