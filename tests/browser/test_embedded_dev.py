"""`make dev` path: /dev opens the page in a plain tab and the page refreshes its token from /dev/session-token."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.browser
DEMO_SHOP = "demo-shop.myshopify.com"


@pytest.fixture
def dev_server(app, shopify_sandbox, monkeypatch):
    """A DEV_MODE twin of the test app (same database, Redis and sandboxes) served over HTTP."""
    from ecomflux_app import create_app, runtime
    from ecomflux_app.sandbox.serving import BackgroundServer
    from ecomflux_app.web import dev

    # Document tokens that are already "about to expire": the page must fetch fresh ones itself.
    monkeypatch.setattr(dev, "DOCUMENT_TOKEN_TTL_SECONDS", 8)
    shopify_sandbox.add_shop(DEMO_SHOP, name="Demo Shop")
    dev_app = create_app(dict(app.config, DEV_MODE=True))
    server = BackgroundServer(dev_app).start()
    yield server
    server.stop()
    runtime.init(app.config)  # give the session app its runtime config back


def test_dev_entry_opens_the_page_and_refreshes_tokens(dev_server, browser_page, db):
    from playwright.sync_api import expect

    from ecomflux_app.models import Shop

    page = browser_page()
    api_auth: list[str] = []
    page.on("request", lambda r: api_auth.append(r.headers.get("authorization", ""))
            if "/api/" in r.url else None)
    with page.expect_response(re.compile(r".*/dev/session-token$")) as minted:
        page.goto(f"{dev_server.url}/dev")
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    expect(page.get_by_text("Demo Shop")).to_be_visible()
    document_token = parse_qs(urlparse(page.url).query)["id_token"][0]
    fresh = minted.value.json()["session_token"]
    assert fresh != document_token
    assert api_auth and all(h == f"Bearer {fresh}" for h in api_auth)
    assert Shop.get(Shop.domain == DEMO_SHOP).is_active  # first load installed it by token exchange
    page.get_by_label("Invoice").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
