"""The whole install as a browser walks it over HTTP: app -> Shopify authorize -> callback -> admin -> app."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
import requests

from ecomflux_app.models import Shop
from ecomflux_app.sandbox.serving import BackgroundServer
from tests.helpers import drain, post_webhook

SHOP = "browser-shop.myshopify.com"


@pytest.fixture(scope="module")
def served(app):
    server = BackgroundServer(app).start()
    original = app.config["APP_URL"]
    app.config["APP_URL"] = server.url  # the redirect_uri must point at the served app
    yield server.url
    app.config["APP_URL"] = original
    server.stop()


def walk(url: str) -> list[requests.Response]:
    """Follow every redirect like a browser, keeping each hop."""
    with requests.Session() as browser:
        resp = browser.get(url, timeout=10)
        return resp.history + [resp]


def test_code_grant_install_lands_in_the_embedded_app(served, db, shopify_sandbox):
    shopify_sandbox.set_app_url(served)
    hops = walk(f"{served}/auth?shop={SHOP}")
    paths = [urlparse(h.url).path for h in hops]
    assert paths == ["/auth", f"/{SHOP}/admin/oauth/authorize", "/auth/callback",
                     f"/{SHOP}/admin/apps/{shopify_sandbox.state.api_key}", "/"]
    final = hops[-1]
    assert final.status_code == 200 and urlparse(final.url).netloc == urlparse(served).netloc
    shop = Shop.get(Shop.domain == SHOP)
    assert shop.status == "active" and shop.refresh_token
    assert shopify_sandbox.stats["code_grants"] == 1 and shopify_sandbox.stats["token_exchanges"] == 0


def test_reinstall_by_code_grant_after_uninstall(served, client, db, redis_conn, shopify_sandbox):
    shopify_sandbox.set_app_url(served)
    walk(f"{served}/auth?shop={SHOP}")
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP})
    drain(redis_conn)
    assert Shop.get(Shop.domain == SHOP).status == "uninstalled"
    hops = walk(f"{served}/auth?shop={SHOP}")
    assert hops[-1].status_code == 200
    back = Shop.get(Shop.domain == SHOP)
    assert back.status == "active" and back.access_token and Shop.select().count() == 1


def test_opening_an_uninstalled_app_reinstalls_by_token_exchange(served, client, db, redis_conn, shopify_sandbox):
    shopify_sandbox.set_app_url(served)
    walk(f"{served}/auth?shop={SHOP}")
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP})
    drain(redis_conn)
    # The merchant opens the app from the admin again: the page gets an id_token and exchanges it.
    hops = walk(f"{shopify_sandbox.url}/{SHOP}/admin/apps/{shopify_sandbox.state.api_key}")
    assert hops[-1].status_code == 200
    assert Shop.get(Shop.domain == SHOP).status == "active"
    assert shopify_sandbox.stats["token_exchanges"] == 1
