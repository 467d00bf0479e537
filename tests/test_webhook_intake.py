"""Webhook intake: HMAC, one durable row per delivery, enqueue after commit, clear statuses."""

from __future__ import annotations

import json
import logging

from ecomflux_app.models import Shop, WebhookDelivery
from ecomflux_app.queue import get_queue, shop_queue_name
from ecomflux_app.shopify.webhooks import sign, verify
from ecomflux_app.sync.sweeper import queued_delivery_ids
from tests.helpers import post_webhook, webhook_headers

SHOP = "intake-shop.myshopify.com"


def make_shop(domain=SHOP):
    return Shop.create(domain=domain, access_token="shpat_x")


def test_verify_accepts_current_and_previous_secret_only():
    body = b'{"id": 1}'
    assert verify(body, sign(body, "new"), ["new", "old"])
    assert verify(body, sign(body, "old"), ["new", "old"])
    assert not verify(body, sign(body, "other"), ["new", "old"])
    assert not verify(body, None, ["new"])
    assert not verify(body + b" ", sign(body, "new"), ["new"])


def test_forged_webhook_is_401_and_logged_without_a_row(client, db, caplog):
    make_shop()
    body = b'{"id": 5}'
    headers = webhook_headers("orders/fulfilled", SHOP, body, secret="not-the-secret")
    with caplog.at_level(logging.WARNING):
        resp = client.post("/webhooks", data=body, headers=headers)
    assert resp.status_code == 401
    assert WebhookDelivery.select().count() == 0
    assert any("invalid HMAC" in r.getMessage() and SHOP in r.getMessage() for r in caplog.records)


def test_signed_webhook_lands_as_row_and_job(client, db, redis_conn):
    make_shop()
    resp = post_webhook(client, "orders/fulfilled", SHOP, {"id": 42, "name": "#1042"}, webhook_id="wh-1")
    assert resp.status_code == 200
    row = WebhookDelivery.get(WebhookDelivery.webhook_id == "wh-1")
    assert (row.status, row.order_id, row.order_name, row.shop.domain) == ("queued", "42", "#1042", SHOP)
    assert "x-shopify-hmac-sha256" not in row.headers and row.headers["x-shopify-topic"] == "orders/fulfilled"
    assert queued_delivery_ids(redis_conn, SHOP) == [row.id]


def test_duplicate_delivery_is_acknowledged_once(client, db, redis_conn):
    make_shop()
    for _ in range(3):
        assert post_webhook(client, "orders/fulfilled", SHOP, {"id": 7}, webhook_id="same").status_code == 200
    assert WebhookDelivery.select().count() == 1
    assert queued_delivery_ids(redis_conn, SHOP) == [WebhookDelivery.get().id]


def test_malformed_json_is_recorded_as_failed_not_enqueued(client, db, redis_conn):
    make_shop()
    resp = post_webhook(client, "orders/fulfilled", SHOP, None, raw=b"{not json")
    assert resp.status_code == 200
    row = WebhookDelivery.get()
    assert row.status == "failed" and row.error.startswith("malformed JSON payload")
    assert row.body == "{not json"
    assert get_queue(redis_conn, shop_queue_name(SHOP)).count == 0


def test_unknown_topic_and_unknown_shop_are_ignored_with_reason(client, db):
    make_shop()
    assert post_webhook(client, "products/create", SHOP, {"id": 1}).status_code == 200
    assert post_webhook(client, "orders/fulfilled", "nobody.myshopify.com", {"id": 2}).status_code == 200
    rows = {r.topic: r for r in WebhookDelivery.select()}
    assert rows["products/create"].status == "ignored" and "unsupported topic" in rows["products/create"].error
    assert rows["orders/fulfilled"].status == "ignored" and "unknown shop" in rows["orders/fulfilled"].error


def test_redis_down_keeps_row_received_and_sweeper_recovers(client, db, redis_conn, monkeypatch):
    """Enqueue failure never loses the delivery: the row stays 'received' and the sweeper enqueues it."""
    from ecomflux_app.queue import connect_redis
    from ecomflux_app.sync import sweeper
    from ecomflux_app.web import webhooks

    make_shop()
    # A real connection to a port where nothing listens: Redis is "down" for the intake writer.
    dead = connect_redis("redis://127.0.0.1:1/0")
    monkeypatch.setattr(webhooks._writer, "_redis_factory", lambda: dead)
    assert post_webhook(client, "orders/fulfilled", SHOP, {"id": 9}).status_code == 200
    monkeypatch.undo()
    row = WebhookDelivery.get()
    assert (row.status, row.enqueued_at) == ("received", None)
    assert get_queue(redis_conn, shop_queue_name(SHOP)).count == 0
    WebhookDelivery.update(received_at=row.received_at.replace(year=2020)).execute()
    assert sweeper.sweep(redis_conn, 60) == 1
    assert get_queue(redis_conn, shop_queue_name(SHOP)).jobs[0].args == [row.id]
    assert WebhookDelivery.get().enqueued_at is not None


def test_burst_from_many_threads_lands_every_delivery_once(app, db, redis_conn):
    """Concurrent requests share group commits; every acknowledged delivery has one row and one job."""
    from concurrent.futures import ThreadPoolExecutor

    make_shop()

    def send(i):
        with app.test_client() as c:
            return post_webhook(c, "orders/fulfilled", SHOP, {"id": i % 50}, webhook_id=f"burst-{i % 150}").status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(send, range(300)))
    assert statuses == [200] * 300
    assert WebhookDelivery.select().count() == 150
    # Group commits batch the jobs (one per shop per commit); together they cover each row once.
    assert sorted(queued_delivery_ids(redis_conn, SHOP)) == [d.id for d in WebhookDelivery.select().order_by(WebhookDelivery.id)]


def test_body_is_stored_raw_for_replay(client, db):
    make_shop()
    payload = {"id": 11, "note": "café ☕"}
    body = json.dumps(payload, ensure_ascii=False).encode()
    post_webhook(client, "orders/fulfilled", SHOP, None, raw=body)
    assert json.loads(WebhookDelivery.get().body) == payload


def test_intake_answers_other_methods_and_crashes_with_json_not_pages(client, db, monkeypatch, caplog):
    from ecomflux_app.web import webhooks

    make_shop()
    resp = client.get("/webhooks")
    assert (resp.status_code, resp.get_json()) == (405, {"error": "method not allowed"})

    def broken(values):
        raise RuntimeError("writer exploded")

    monkeypatch.setattr(webhooks._writer, "submit", broken)
    with caplog.at_level(logging.ERROR):
        resp = post_webhook(client, "orders/fulfilled", SHOP, {"id": 3})
    # A 5xx makes Shopify deliver it again; the body never leaks the exception.
    assert (resp.status_code, resp.get_json()) == (500, {"error": "internal error"})
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert any("webhook intake crashed" in r.getMessage() for r in caplog.records)


def test_other_paths_still_reach_the_flask_app(client):
    assert client.get("/webhooksX").status_code == 404
    assert client.get("/healthz").status_code in (200, 503)
