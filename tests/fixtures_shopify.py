"""The session-scoped local Shopify sandbox, served over HTTP and reachable in-process for assertions."""

from __future__ import annotations

import pytest

from ecomflux_app.config import DEV_SHOPIFY_API_KEY, DEV_SHOPIFY_API_SECRET
from ecomflux_app.sandbox.serving import BackgroundServer
from ecomflux_app.sandbox.shopify_server import create_shopify_sandbox


class ShopifySandbox:
    """Handle on the running sandbox: its URL, config overrides and in-process state helpers."""

    def __init__(self, server: BackgroundServer, app):
        self.server = server
        self.app = app
        self.state = app.sandbox

    @property
    def url(self) -> str:
        return self.server.url

    def config_overrides(self) -> dict:
        return {"SHOPIFY_SHOP_BASE_URL": f"{self.url}/{{shop}}"}

    def reset(self) -> None:
        self.state.reset()
        # Plus-plan limits keep multi-order tests from waiting on the bucket; throttling is tested
        # explicitly with throttle() or set_rate_limits().
        self.state.set_rate_limits(bucket_max=20000, restore_rate=1000)

    # Helpers tests call directly (the same operations exist over HTTP under /_sandbox/).
    def add_shop(self, domain: str, **info):
        return self.state.ensure_shop(domain, **info)

    def add_order(self, shop: str, order: dict) -> dict:
        return self.state.put_order(shop, order)

    def session_token(self, shop: str, **kwargs) -> str:
        return self.state.session_token(shop, **kwargs)

    def set_token_lifetimes(self, access_ttl: int | None = None, refresh_ttl: int | None = None) -> None:
        self.state.set_token_lifetimes(access_ttl, refresh_ttl)

    def set_app_url(self, url: str | None) -> None:
        """Where "open the app in the admin" (<shop>/admin/apps/<key>) sends the browser."""
        self.state.app_url = url

    def revoke(self, shop: str) -> int:
        return self.state.revoke(shop)

    def set_rate_limits(self, bucket_max: float | None = None, restore_rate: float | None = None) -> None:
        self.state.set_rate_limits(bucket_max, restore_rate)

    def throttle(self, shop: str, count: int = 1) -> None:
        self.state.throttle(shop, count)

    def hold(self, shop: str, root: str = "order", count: int = 1):
        """A slow Shopify: the shop's next `count` reads of `root` wait until the Hold is released."""
        return self.state.hold(shop, root, count)

    def send_webhook(self, target: str, shop: str, topic: str, payload, **options) -> list[dict]:
        return self.state.send_webhook(target, shop, topic, payload, **options)

    def send_batch(self, target: str, deliveries: list[dict], **options) -> list[dict]:
        return self.state.send_batch(target, deliveries, **options)

    @property
    def stats(self) -> dict:
        return self.state.stats


@pytest.fixture(scope="session")
def shopify_sandbox():
    app = create_shopify_sandbox(DEV_SHOPIFY_API_KEY, DEV_SHOPIFY_API_SECRET)
    server = BackgroundServer(app).start()
    yield ShopifySandbox(server, app)
    server.stop()


@pytest.fixture
def install_shop(app, shopify_sandbox):
    """Factory: install a shop through the real token-exchange path; returns the stored Shop."""
    from ecomflux_app.db import database
    from ecomflux_app.sync.installs import install_via_token_exchange
    from ecomflux_app.shopify.session_token import verify_session_token

    def install(domain: str = "sandbox-shop.myshopify.com", **info):
        shopify_sandbox.add_shop(domain, **info)
        token = shopify_sandbox.session_token(domain)
        session = verify_session_token(token, app.config["SHOPIFY_API_KEY"], [app.config["SHOPIFY_API_SECRET"]])
        with database.connection_context():
            return install_via_token_exchange(session)

    return install
