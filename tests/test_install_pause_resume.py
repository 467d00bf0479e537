"""Work for an uninstalled shop parks as pending and runs once the shop is installed again."""

from __future__ import annotations

import pytest

from ecomflux_app.models import WebhookDelivery
from ecomflux_app.sync import dispatch
from ecomflux_app.sync.uninstall import ensure_shop_active
from ecomflux_app.work_results import Outcome
from tests.helpers import drain, post_webhook

SHOP = "pause-shop.myshopify.com"
RAN: list[str] = []


def paused_aware_handler(ctx):
    """Stands in for an order handler: refuses to work for a shop that is not active."""
    ensure_shop_active(ctx.shop)
    RAN.append(ctx.payload["name"])
    return Outcome("processed")


@pytest.fixture
def order_handler(monkeypatch):
    RAN.clear()
    monkeypatch.setitem(dispatch.TOPIC_HANDLERS, "orders/paid", f"{__name__}:paused_aware_handler")
    return RAN


def test_uninstall_parks_work_and_reinstall_resumes_it(client, db, redis_conn, install_shop, order_handler):
    install_shop(SHOP)
    post_webhook(client, "orders/paid", SHOP, {"id": 1, "name": "#1"}, webhook_id="o-1")
    drain(redis_conn)
    assert order_handler == ["#1"]
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP})
    drain(redis_conn)
    post_webhook(client, "orders/paid", SHOP, {"id": 2, "name": "#2"}, webhook_id="o-2")
    drain(redis_conn)
    parked = WebhookDelivery.get(WebhookDelivery.webhook_id == "o-2")
    assert parked.status == "pending" and "uninstalled" in parked.error and parked.next_attempt_at is None
    assert order_handler == ["#1"]
    install_shop(SHOP)  # reinstall resumes the parked delivery
    drain(redis_conn)
    assert WebhookDelivery.get(WebhookDelivery.webhook_id == "o-2").status == "processed"
    assert order_handler == ["#1", "#2"]
