"""Enqueues deliveries and re-enqueues any whose job was lost, expired or is due for a retry."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis

from .. import runtime
from ..models import WebhookDelivery, utcnow
from ..statuses import DeliveryStatus
from rq.serializers import JSONSerializer

from ..work_queue import enqueue, enqueue_batch, get_queue, shop_queue_name
from . import inbox

log = logging.getLogger(__name__)

PROCESS_JOB = "workers.jobs.process_delivery"
# A batch's unprocessed rest, handed on after its time slice (see dispatch.process_batch).
BATCH_JOB = "workers.jobs.process_deliveries"
# Intake's job: it takes the shop's inbox when it starts (one waits per shop at most, see inbox.py).
INBOX_JOB = "workers.jobs.process_inbox"
BATCH_PREFIX = "deliveries-"
LIVE_JOB_STATES = ("queued", "started", "scheduled", "deferred")


def job_id_for(delivery_id: int) -> str:
    return f"delivery-{delivery_id}"


def batch_job_id(delivery_ids: list[int]) -> str:
    """Unique per batch: no two batches share a first id, length and last id."""
    return f"{BATCH_PREFIX}{delivery_ids[0]}-{delivery_ids[-1]}-{len(delivery_ids)}"


def _batch_range(job_id: str) -> tuple[int, int] | None:
    if not job_id.startswith(BATCH_PREFIX):
        return None
    first, last, _count = job_id[len(BATCH_PREFIX):].split("-")
    return min(int(first), int(last)), max(int(first), int(last))


class LiveJobs:
    """What the shop's queue holds for its waiting deliveries: batch id ranges and the inbox's ids."""

    def __init__(self, ranges: list[tuple[int, int]], inbox_ids: set[int]):
        self.ranges, self.inbox_ids = ranges, inbox_ids

    def covers(self, delivery_id: int) -> bool:
        return delivery_id in self.inbox_ids or any(lo <= delivery_id <= hi for lo, hi in self.ranges)


def live_jobs(conn: redis.Redis, shop_domain: str) -> LiveJobs:
    """The shop's batch jobs still waiting in its queue, and its inbox when an inbox job waits to take it.

    A running batch is not looked at: it refreshes its rows' enqueued_at when it starts and hands
    the rest on after its slice, so its rows do not go stale while it lives (unless one delivery
    alone outlasts SWEEP_AFTER_SECONDS: then the rest are re-enqueued early, and the claim still
    runs each row once), and a batch whose worker was killed is recovered after
    SWEEP_AFTER_SECONDS instead of after RQ's job timeout.
    A range may also span ids of another batch (two web processes interleave ids); such a row
    only counts as alive until that job starts, so a lost job is re-enqueued late, never lost.
    Ids in the inbox with no inbox job waiting (it was lost) are not alive: the sweep re-enqueues them.
    """
    job_ids = get_queue(conn, shop_queue_name(shop_domain)).get_job_ids()
    ranges = [r for r in map(_batch_range, job_ids) if r is not None]
    waiting = any(inbox.is_inbox_job(j) for j in job_ids)
    return LiveJobs(ranges, set(inbox.waiting_ids(conn, shop_domain)) if waiting else set())


def queued_delivery_ids(conn: redis.Redis, shop_domain: str) -> list[int]:
    """Every delivery id the shop's queue holds a job for (single, batch, or the inbox the first waiting
    inbox job takes), in queue order."""
    out: list[int] = []
    inbox_seen = False
    for job in get_queue(conn, shop_queue_name(shop_domain)).get_jobs():
        if job.func_name == BATCH_JOB:
            out.extend(job.args[1])
        elif job.func_name == PROCESS_JOB:
            out.append(job.args[0])
        elif job.func_name == INBOX_JOB and not inbox_seen:
            inbox_seen = True
            out.extend(inbox.waiting_ids(conn, shop_domain))
    return out


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
    """Put (shop domain, delivery id) pairs in their shops' inboxes in one round trip, and enqueue an
    inbox job for each shop that has none waiting (a second round trip, only then); raises RedisError
    on failure."""
    by_shop: dict[str, list[int]] = {}
    for shop, did in deliveries:
        by_shop.setdefault(shop, []).append(did)
    to_start = inbox.push(conn, by_shop)
    if to_start:
        enqueue_batch(conn, [(shop_queue_name(shop), INBOX_JOB, (shop, job_id), job_id)
                             for shop, job_id in to_start.items()])


def enqueue_continuation(conn: redis.Redis, shop_domain: str, delivery_ids: list[int]) -> None:
    """Put the unprocessed rest of a batch back at the FRONT of its shop queue (arrival order kept)."""
    enqueue(conn, shop_queue_name(shop_domain), BATCH_JOB, shop_domain, delivery_ids,
            job_id=batch_job_id(delivery_ids), at_front=True)


def enqueue_delivery(conn: redis.Redis, delivery: WebhookDelivery) -> bool:
    """Put a delivery on its shop's queue and mark it queued; False (row untouched) if Redis is down."""
    try:
        _enqueue_job(conn, delivery)
    except redis.RedisError as exc:
        log.warning("enqueue of delivery %s failed, the sweeper will retry: %s", delivery.id, exc)
        return False
    WebhookDelivery.update(enqueued_at=utcnow(), status=DeliveryStatus.QUEUED).where(
        (WebhookDelivery.id == delivery.id)
        & (WebhookDelivery.status.in_((DeliveryStatus.RECEIVED, DeliveryStatus.QUEUED, DeliveryStatus.PENDING)))
    ).execute()
    return True


def due_deliveries(stale_after: timedelta, limit: int, after_id: int = 0, *, queued: bool):
    """Rows that should be running but have no live job (ids above `after_id`, oldest first): with
    `queued`, queued rows whose job may be lost; without, failed enqueues, dead workers, due retries."""
    now = utcnow()
    if queued:
        due = (WebhookDelivery.status == DeliveryStatus.QUEUED) & (WebhookDelivery.enqueued_at < now - stale_after)
    else:
        # Intake inserts rows as 'queued'; 'received' means their enqueue failed (Redis down).
        due = ((WebhookDelivery.status == DeliveryStatus.RECEIVED)
               | ((WebhookDelivery.status == DeliveryStatus.PROCESSING) & (WebhookDelivery.lease_until < now))
               | ((WebhookDelivery.status == DeliveryStatus.PENDING) & (WebhookDelivery.next_attempt_at <= now)))
    return (
        # The columns the sweep needs, not the bodies: with a backlog of thousands this ran every 5 s.
        WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.status, WebhookDelivery.shop_domain)
        .where((WebhookDelivery.id > after_id) & due)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )


def sweep(conn: redis.Redis, stale_after_seconds: int = 60, page: int = 1000, max_pages: int = 10) -> int:
    """Re-enqueue every due delivery; returns how many were enqueued.

    Retries come due, leases run out and failed enqueues are swept first, then the stale queued rows,
    a page at a time past the last one seen: a backlog's oldest rows are stale yet alive in their
    batch jobs, and one first page of them used to hide every row behind it for as long as the
    backlog lasted."""
    stale_after = timedelta(seconds=stale_after_seconds)
    count, live = 0, {}
    try:
        count += sum(_sweep_row(conn, d, live) for d in due_deliveries(stale_after, page, queued=False))
        after = 0
        for _page in range(max_pages):
            rows = list(due_deliveries(stale_after, page, after, queued=True))
            count += sum(_sweep_row(conn, d, live) for d in rows)
            if len(rows) < page:
                break
            after = rows[-1].id
    except redis.RedisError as exc:
        log.warning("sweeper cannot reach Redis: %s", exc)
    if count:
        log.info("sweeper re-enqueued %d deliveries", count)
    return count


def _sweep_row(conn: redis.Redis, delivery: WebhookDelivery, live: dict[str, LiveJobs]) -> bool:
    """Enqueue one due row unless it still waits in a live job; True when enqueued (RedisError raises)."""
    if delivery.status == DeliveryStatus.QUEUED:
        if delivery.shop_domain not in live:
            live[delivery.shop_domain] = live_jobs(conn, delivery.shop_domain)
        # The shop's live jobs first (read once per sweep): with a backlog of thousands, a Redis read
        # per row made each sweep hold a worker for seconds, every 5 s.
        if live[delivery.shop_domain].covers(delivery.id) or _job_alive(conn, delivery.id):
            return False  # still waiting its turn in a backlog: not lost
    _enqueue_job(conn, delivery)
    # Queued again with a live job (a pending row keeps its last error as the reason it waited).
    WebhookDelivery.update(status=DeliveryStatus.QUEUED, enqueued_at=utcnow(), next_attempt_at=None).where(
        (WebhookDelivery.id == delivery.id) & (WebhookDelivery.status == delivery.status)).execute()
    return True


def resume_pending(conn: redis.Redis, shop_domain: str) -> int:
    """After a reconnect: re-enqueue the shop's deliveries parked while QBO was unreachable."""
    rows = WebhookDelivery.select().where(
        (WebhookDelivery.shop_domain == shop_domain)
        & (WebhookDelivery.status == DeliveryStatus.PENDING)
        & (WebhookDelivery.next_attempt_at.is_null())
    )
    count = 0
    for delivery in rows:
        _enqueue_job(conn, delivery)
        count += 1
    return count


def resume_parked(shop_domain: str) -> int:
    """After an install or a reconnect: the shop's parked deliveries run again now; with Redis down they
    are made due instead, so the sweeper runs them as soon as it can (nothing waits for another event)."""
    try:
        return resume_pending(runtime.redis(), shop_domain)
    except redis.RedisError as exc:
        log.warning("resume of %s deferred to the sweeper: %s", shop_domain, exc)
        return WebhookDelivery.update(next_attempt_at=utcnow()).where(
            (WebhookDelivery.shop_domain == shop_domain) & (WebhookDelivery.status == DeliveryStatus.PENDING)
            & (WebhookDelivery.next_attempt_at.is_null())).execute()
