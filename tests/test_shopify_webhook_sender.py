"""Webhooks signed and sent over HTTP by the Shopify sandbox land exactly once, duplicated or out of order."""

from __future__ import annotations

import pytest

from ecomflux_app.models import Shop, WebhookDelivery
from ecomflux_app.sandbox.serving import BackgroundServer
from tests.helpers import drain

SHOP = "sender-shop.myshopify.com"


@pytest.fixture(scope="module")
def app_url(app):
    server = BackgroundServer(app).start()
    yield server.url
    server.stop()


def test_signed_duplicated_webhook_lands_once(app_url, client, db, redis_conn, install_shop, shopify_sandbox):
    install_shop(SHOP)
    results = shopify_sandbox.send_webhook(f"{app_url}/webhooks", SHOP, "customers/data_request",
                                           {"shop_domain": SHOP, "customer": {"id": 5}, "orders_requested": []},
                                           duplicate=3)
    assert [r["status"] for r in results] == [200, 200, 200, 200]
    assert len({r["webhook_id"] for r in results}) == 1
    assert WebhookDelivery.select().count() == 1
    drain(redis_conn)
    row = WebhookDelivery.get()
    assert (row.status, row.attempts, row.topic) == ("processed", 1, "customers/data_request")
    assert row.headers["x-shopify-webhook-id"] == results[0]["webhook_id"]


def test_out_of_order_batch_with_duplicates_lands_exactly_once(app_url, db, redis_conn, install_shop,
                                                              shopify_sandbox):
    install_shop(SHOP)
    deliveries = [
        {"shop": SHOP, "topic": "customers/data_request", "payload": {"shop_domain": SHOP, "customer": {"id": i}}}
        for i in range(5)
    ] + [{"shop": SHOP, "topic": "orders/paid", "payload": {"id": 4100 + i, "name": f"#{4100 + i}"}}
         for i in range(3)] + [{"shop": SHOP, "topic": "app/uninstalled", "payload": {"domain": SHOP}}]
    results = shopify_sandbox.send_batch(f"{app_url}/webhooks", deliveries, order="shuffle", seed=7, duplicate=1)
    assert len(results) == 18 and {r["status"] for r in results} == {200}
    sent_ids = [r["webhook_id"] for r in results]
    assert WebhookDelivery.select().count() == 9
    arrival = [d.triggered_at for d in WebhookDelivery.select().order_by(WebhookDelivery.id)]
    assert arrival != sorted(arrival)  # they really arrived out of order
    assert {d.webhook_id for d in WebhookDelivery.select()} == set(sent_ids)
    drain(redis_conn)
    rows = list(WebhookDelivery.select())
    # Each delivery ran at most once; order handlers may belong to another module, the rest finished.
    assert all(r.attempts <= 1 for r in rows)
    assert all(r.status == "processed" for r in rows if r.topic != "orders/paid")
    assert Shop.get(Shop.domain == SHOP).status == "uninstalled"


def test_batch_is_delivered_in_the_requested_order(app_url, db, install_shop, shopify_sandbox):
    install_shop(SHOP)
    deliveries = [{"shop": SHOP, "topic": "customers/data_request", "webhook_id": f"b-{i}",
                   "payload": {"shop_domain": SHOP, "customer": {"id": i}}} for i in range(4)]
    results = shopify_sandbox.send_batch(f"{app_url}/webhooks", deliveries, order="reverse")
    assert [r["webhook_id"] for r in results] == ["b-3", "b-2", "b-1", "b-0"]
    rows = list(WebhookDelivery.select().order_by(WebhookDelivery.id))
    assert [r.webhook_id for r in rows] == ["b-3", "b-2", "b-1", "b-0"]
    # Triggered-At still tells the true order of events.
    stamps = {r.webhook_id: r.triggered_at for r in rows}
    assert stamps["b-0"] < stamps["b-1"] < stamps["b-2"] < stamps["b-3"]


def test_webhook_signed_with_another_secret_is_rejected(app_url, db, install_shop, shopify_sandbox):
    install_shop(SHOP)
    results = shopify_sandbox.send_webhook(f"{app_url}/webhooks", SHOP, "shop/redact", {"shop_domain": SHOP},
                                           secret="not-the-app-secret")
    assert results[0]["status"] == 401
    assert WebhookDelivery.select().count() == 0


def test_sandbox_uninstall_revokes_and_notifies_then_reinstall_works(app_url, app, db, redis_conn, install_shop,
                                                                     shopify_sandbox):
    import requests

    from ecomflux_app.shopify.graphql import fetch_shop_info

    shop = install_shop(SHOP)
    resp = requests.post(f"{shopify_sandbox.url}/_sandbox/shops/{SHOP}/uninstall",
                         json={"target": f"{app_url}/webhooks"}, timeout=10).json()
    assert resp["revoked"] == 2 and resp["results"][0]["status"] == 200
    drain(redis_conn)
    gone = Shop.get(Shop.domain == SHOP)
    assert (gone.status, gone.access_token) == ("uninstalled", None)
    back = install_shop(SHOP)
    assert back.id == shop.id and back.status == "active"
    assert fetch_shop_info(back)["myshopify_domain"] == SHOP
