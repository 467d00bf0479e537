"""Fixtures for driving the embedded page in Debian's chromium: the app over real HTTP, a page per test."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Each run writes its screenshots under tests/artifacts/tmp (ignored by git); `make screenshots`
# points this at docs/screenshots to refresh the committed pictures the README shows.
SCREENSHOTS = Path(os.environ.get("ECOMFLUX_SCREENSHOT_DIR")
                   or Path(__file__).resolve().parent.parent / "artifacts" / "tmp" / "screenshots")
DESKTOP = {"width": 1100, "height": 900}


@pytest.fixture(scope="session")
def chromium_browser():
    """Debian's chromium under Playwright; never downloads a browser."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def live_server(app):
    """The test app served over HTTP on a loopback port (the browser needs a real server)."""
    from ecomflux_app.sandbox.serving import BackgroundServer

    server = BackgroundServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def browser_page(chromium_browser):
    """Factory: a fresh page (own context, no shared storage) at a given viewport; CDN scripts fail like offline."""
    contexts = []

    def make(viewport: dict | None = None, cdn: str = "offline"):
        context = chromium_browser.new_context(viewport=viewport or DESKTOP)
        contexts.append(context)
        page = context.new_page()
        if cdn == "offline":
            # Tests and `make dev` have no internet: App Bridge and Polaris never load.
            page.route("https://cdn.shopify.com/**", lambda route: route.abort("internetdisconnected"))
        page.set_default_timeout(10000)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page_url(live_server, shopify_sandbox):
    """Factory: the Accounting page URL as the Shopify admin opens it (shop, host, fresh id_token)."""
    from ecomflux_app.web.dev import admin_host

    def make(shop: str, expires_in: int = 600) -> str:
        token = shopify_sandbox.session_token(shop, expires_in=expires_in)
        return f"{live_server.url}/?" + urlencode({"embedded": "1", "shop": shop, "host": admin_host(shop),
                                                  "id_token": token})

    return make


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
