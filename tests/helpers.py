"""Test helpers shared across modules: signed webhook posting and draining the queues."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from ecomflux_app.config import DEV_SHOPIFY_API_SECRET, SHOPIFY_API_VERSION
from ecomflux_app.shopify.webhooks import sign


def webhook_headers(topic: str, shop: str, body: bytes, secret: str = DEV_SHOPIFY_API_SECRET,
                    webhook_id: str | None = None, triggered_at: str | None = None) -> dict:
    # Like Shopify: the event happened now unless a test replays an older one.
    triggered_at = triggered_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": triggered_at,
        "X-Shopify-API-Version": SHOPIFY_API_VERSION,
    }


def post_webhook(client, topic: str, shop: str, payload, *, secret: str = DEV_SHOPIFY_API_SECRET,
                 webhook_id: str | None = None, raw: bytes | None = None, triggered_at: str | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post("/webhooks", data=body,
                       headers=webhook_headers(topic, shop, body, secret, webhook_id, triggered_at))


def drain(conn) -> int:
    """Run every queued job in-process until the queues are empty; returns jobs run."""
    from ecomflux_app.work_queue import make_worker

    worker = make_worker(conn, simple=True)
    count = 0
    while worker.work(burst=True, logging_level="WARNING"):
        count += 1
        worker = make_worker(conn, simple=True)
    return count


def record_job(label: str) -> str:
    """A job body for queue tests: appends its label to a Redis list so tests can read the run order."""
    from ecomflux_app import runtime

    runtime.redis().rpush("test:job-order", label)
    return label


def walk(value):
    """Every node of a JSON value, depth first (tests that inspect whole payloads)."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def failing_job(message: str) -> None:
    """A job body for support tests: crashes the way a bug outside a delivery's handler would."""
    raise RuntimeError(message)


def app_env(app) -> dict:
    """The environment that points a child process (worker, web server) at this test app's database and Redis."""
    import os

    cfg = app.config
    env = dict(os.environ)
    for key in ("DATABASE_URL", "REDIS_URL", "QBO_API_BASE_URL", "INTUIT_ENVIRONMENT", "SHOPIFY_SHOP_BASE_URL",
                "SECRET_KEY", "INTUIT_CLIENT_ID", "INTUIT_CLIENT_SECRET"):
        env[key] = str(cfg[key])
    env["ENCRYPTION_KEYS"] = ",".join(cfg["ENCRYPTION_KEYS"])
    env["ECOMFLUX_INSTANCE"] = cfg["INSTANCE_PATH"]
    return env


def run_killed_after_qbo_write(monkeypatch, delivery_id: int, dies) -> None:
    """Process a delivery whose worker dies right after QBO wrote the document of the first ledger row
    matching `dies(source_key)`: QBO has it, the ledger row stays 'posting' and never hears of it."""
    from ecomflux_app.sync import dispatch, posting
    from tests.test_faults import WorkerKilled

    real = posting._posted

    def killed(record, *args, **kwargs):
        if dies(record.source_key):
            raise WorkerKilled()
        return real(record, *args, **kwargs)

    monkeypatch.setattr(posting, "_posted", killed)
    try:
        dispatch.process_delivery(delivery_id)
    except WorkerKilled:
        pass
    finally:
        monkeypatch.setattr(posting, "_posted", real)


def as_if_the_dead_worker_timed_out(redis_conn, delivery_id: int) -> None:
    """What time does for a dead worker: its ledger lock and its delivery lease expire."""
    from datetime import timedelta

    from ecomflux_app.models import WebhookDelivery, utcnow

    redis_conn.delete(*redis_conn.keys("ecomflux:post:*") or ["-"])
    WebhookDelivery.update(lease_until=utcnow() - timedelta(seconds=1)).where(WebhookDelivery.id == delivery_id).execute()


def let_unanswered_batches_end() -> None:
    """What time does after a batch write went unanswered: its 'posting' rows pass the time QBO could still
    be working through it (posting.BATCH_IN_FLIGHT_SECONDS), and parked deliveries come due."""
    from datetime import timedelta

    from ecomflux_app.models import SyncRecord, WebhookDelivery, utcnow
    from ecomflux_app.sync.posting import BATCH_IN_FLIGHT_SECONDS

    SyncRecord.update(updated_at=utcnow() - timedelta(seconds=BATCH_IN_FLIGHT_SECONDS + 1)).where(
        SyncRecord.status == "posting").execute()
    WebhookDelivery.update(next_attempt_at=utcnow() - timedelta(seconds=1)).where(
        WebhookDelivery.status == "pending").execute()
