"""Out-of-order app/uninstalled: a late delivery from before a reinstall is checked with Shopify, not obeyed."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest

from ecomflux_app.models import QboConnection, Shop, WebhookDelivery, utcnow
from ecomflux_app.sandbox.serving import BackgroundServer
from ecomflux_app.shopify.webhooks import triggered_at
from ecomflux_app.sync import dispatch
from ecomflux_app.sync.dispatch import DeliveryContext
from ecomflux_app.sync.uninstall import handle_uninstalled
from ecomflux_app.sync.sweeper import sweep
from tests.fixtures_flow import simple_order
from tests.helpers import drain, post_webhook

SHOP = "flow-shop.myshopify.com"  # the connected_shop fixture's shop


@pytest.fixture(scope="module")
def app_url(app):
    server = BackgroundServer(app).start()
    yield server.url
    server.stop()


def shopify_now() -> str:
    """A Triggered-At stamp for an event happening now, in Shopify's format."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def uninstall_at_shopify(shopify_sandbox, shop: str = SHOP) -> str:
    """The merchant uninstalls: Shopify revokes our tokens at once; the webhook is delayed. Returns its stamp."""
    stamp = shopify_now()
    assert shopify_sandbox.revoke(shop) == 2  # access + refresh token
    return stamp


def checks(shopify_sandbox) -> int:
    """Admin GraphQL requests the sandbox has answered, authorized or not."""
    return shopify_sandbox.stats["graphql_calls"] + shopify_sandbox.stats["graphql_unauthorized"]


def uninstall_row(webhook_id: str) -> WebhookDelivery:
    return WebhookDelivery.get(WebhookDelivery.webhook_id == webhook_id)


def test_late_uninstall_from_before_a_reinstall_is_ignored_and_orders_keep_posting(
        app_url, client, redis_conn, connected_shop, install_shop, shopify_sandbox):
    stamp = uninstall_at_shopify(shopify_sandbox)
    reinstalled = install_shop(SHOP)
    asked_before = checks(shopify_sandbox)
    # Shopify's retry of the old uninstall arrives only now, signed and stamped by the sandbox.
    [sent] = shopify_sandbox.send_webhook(f"{app_url}/webhooks", SHOP, "app/uninstalled", {"domain": SHOP},
                                          webhook_id="late-uninstall", triggered_at=stamp)
    assert sent["status"] == 200
    drain(redis_conn)
    row = uninstall_row("late-uninstall")
    assert row.status == "ignored" and row.error.startswith("stale app/uninstalled ignored")
    assert row.error_detail == {"stale_uninstall": True, "token_check": "accepted",
                                "triggered_at": triggered_at(stamp).isoformat() + "Z",
                                "installed_at": reinstalled.installed_at.isoformat() + "Z"}
    assert checks(shopify_sandbox) == asked_before + 1  # one cheap read, no loop
    kept = Shop.get(Shop.domain == SHOP)
    assert (kept.status, kept.access_token, kept.refresh_token, kept.token_version) == (
        "active", reinstalled.access_token, reinstalled.refresh_token, reinstalled.token_version)
    qbo = QboConnection.get(QboConnection.shop == kept.id)
    assert qbo.status == "connected" and qbo.access_token and qbo.refresh_token

    assert post_webhook(client, "orders/fulfilled", SHOP, simple_order(9001, "#9001")).status_code == 200
    drain(redis_conn)
    order = WebhookDelivery.get(WebhookDelivery.order_id == "9001")
    assert order.status == "posted"
    [document] = connected_shop.documents()
    assert "9001" in document["DocNumber"]

    # Replaying the stale delivery asks again and changes nothing.
    assert dispatch.process_delivery(row.id, force=True) == "ignored"
    again = Shop.get(Shop.domain == SHOP)
    assert (again.status, again.access_token, again.token_version) == ("active", kept.access_token, kept.token_version)


def test_uninstall_after_the_reinstall_drops_tokens_without_asking(client, redis_conn, connected_shop, install_shop,
                                                                   shopify_sandbox):
    uninstall_at_shopify(shopify_sandbox)
    install_shop(SHOP)
    later = uninstall_at_shopify(shopify_sandbox)  # the merchant really uninstalls again
    asked_before = checks(shopify_sandbox)
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP}, webhook_id="real-uninstall", triggered_at=later)
    drain(redis_conn)
    row = uninstall_row("real-uninstall")
    assert row.status == "processed" and row.error_detail == {"shopify_tokens_dropped": True,
                                                              "qbo_tokens_dropped": True}
    assert checks(shopify_sandbox) == asked_before  # newer than the install: nothing to ask
    gone = Shop.get(Shop.domain == SHOP)
    assert (gone.status, gone.access_token, gone.refresh_token) == ("uninstalled", None, None)
    qbo = QboConnection.get(QboConnection.shop == gone.id)
    assert (qbo.status, qbo.access_token, qbo.refresh_token) == ("not_connected", None, None)
    post_webhook(client, "orders/fulfilled", SHOP, simple_order(9002, "#9002"))
    drain(redis_conn)
    assert WebhookDelivery.get(WebhookDelivery.order_id == "9002").status == "pending"
    assert connected_shop.documents() == []


def test_late_uninstall_is_obeyed_when_shopify_refuses_the_token(client, redis_conn, connected_shop, install_shop,
                                                                 shopify_sandbox):
    first = uninstall_at_shopify(shopify_sandbox)
    install_shop(SHOP)
    second = uninstall_at_shopify(shopify_sandbox)  # uninstalled again; both webhooks are late
    refused_before = shopify_sandbox.stats["graphql_unauthorized"]
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP}, webhook_id="old-uninstall", triggered_at=first)
    drain(redis_conn)
    row = uninstall_row("old-uninstall")
    assert row.status == "processed"
    assert row.error_detail["token_check"] == "refused" and row.error_detail["shopify_tokens_dropped"] is True
    # 401, one refresh (refused: the refresh token died with the uninstall), then no more asking.
    assert shopify_sandbox.stats["graphql_unauthorized"] == refused_before + 1
    assert shopify_sandbox.stats["refresh_failures"] == 1
    gone = Shop.get(Shop.domain == SHOP)
    assert (gone.status, gone.access_token, gone.refresh_token) == ("uninstalled", None, None)
    assert QboConnection.get(QboConnection.shop == gone.id).status == "not_connected"

    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP}, webhook_id="new-uninstall", triggered_at=second)
    drain(redis_conn)
    newer = uninstall_row("new-uninstall")
    assert newer.status == "processed" and "already uninstalled" in newer.error


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_shopify_unreachable_during_the_check_retries_later_and_touches_nothing(
        app, client, redis_conn, connected_shop, install_shop, shopify_sandbox, monkeypatch):
    stamp = uninstall_at_shopify(shopify_sandbox)
    reinstalled = install_shop(SHOP)
    qbo_before = QboConnection.get(QboConnection.shop == reinstalled.id)
    reachable = app.config["SHOPIFY_SHOP_BASE_URL"]
    monkeypatch.setitem(app.config, "SHOPIFY_SHOP_BASE_URL", f"http://127.0.0.1:{closed_port()}/{{shop}}")
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP}, webhook_id="late-uninstall", triggered_at=stamp)
    drain(redis_conn)
    row = uninstall_row("late-uninstall")
    assert (row.status, row.attempts) == ("pending", 1)
    assert "unreachable" in row.error and row.next_attempt_at > utcnow()
    same = Shop.get(Shop.domain == SHOP)
    assert (same.status, same.access_token, same.refresh_token, same.token_version, same.auth_error) == (
        "active", reinstalled.access_token, reinstalled.refresh_token, reinstalled.token_version, None)
    qbo = QboConnection.get(QboConnection.shop == same.id)
    assert (qbo.status, qbo.access_token, qbo.token_version) == (
        "connected", qbo_before.access_token, qbo_before.token_version)

    # Shopify is back and the retry comes due: the normal retry path runs the check again.
    monkeypatch.setitem(app.config, "SHOPIFY_SHOP_BASE_URL", reachable)
    WebhookDelivery.update(next_attempt_at=utcnow() - timedelta(seconds=1)).where(
        WebhookDelivery.id == row.id).execute()
    assert sweep(redis_conn, 60) == 1
    drain(redis_conn)
    retried = uninstall_row("late-uninstall")
    assert (retried.status, retried.attempts) == ("ignored", 2)
    assert Shop.get(Shop.domain == SHOP).access_token == reinstalled.access_token


@pytest.mark.parametrize("stamp", ["not-a-time", "2026-13-45T99:00:00Z"])
def test_unreadable_triggered_at_drops_as_before(client, redis_conn, connected_shop, install_shop, shopify_sandbox,
                                                  stamp):
    install_shop(SHOP)  # the token still works, but without a readable stamp we do not second-guess
    asked_before = checks(shopify_sandbox)
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP}, webhook_id="odd-uninstall", triggered_at=stamp)
    drain(redis_conn)
    assert uninstall_row("odd-uninstall").status == "processed"
    assert checks(shopify_sandbox) == asked_before
    assert Shop.get(Shop.domain == SHOP).status == "uninstalled"


def test_reinstall_while_the_uninstall_runs_keeps_the_new_tokens(db, connected_shop, install_shop):
    seen = Shop.get(Shop.domain == SHOP)  # what the handler loaded
    row = WebhookDelivery.create(webhook_id="racing-uninstall", topic="app/uninstalled", shop_domain=SHOP, shop=seen,
                                 body="{}", triggered_at=shopify_now())
    fresh = install_shop(SHOP)  # commits before the handler's drop
    outcome = handle_uninstalled(DeliveryContext(delivery=row, payload={}, shop=seen))
    assert outcome.status == "ignored" and "reinstalled" in outcome.error
    kept = Shop.get(Shop.domain == SHOP)
    assert (kept.status, kept.access_token) == ("active", fresh.access_token)
    assert QboConnection.get(QboConnection.shop == kept.id).status == "connected"


def test_triggered_at_reads_shopify_stamps_as_naive_utc():
    assert triggered_at("2025-03-11T20:54:30.516267807Z") == datetime(2025, 3, 11, 20, 54, 30, 516267)
    assert triggered_at("2025-03-11T15:54:30-05:00") == datetime(2025, 3, 11, 20, 54, 30)
    assert triggered_at("2025-03-11T20:54:30") == datetime(2025, 3, 11, 20, 54, 30)
    assert triggered_at(None, {"x-shopify-triggered-at": "2025-03-11T20:54:30Z"}) == datetime(2025, 3, 11, 20, 54, 30)
    assert triggered_at("", {"X-Shopify-Triggered-At": "2025-03-11T20:54:30Z"}) == datetime(2025, 3, 11, 20, 54, 30)
    assert triggered_at(None, {}) is None and triggered_at("   ") is None and triggered_at("soon") is None
