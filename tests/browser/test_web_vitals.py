"""Built for Shopify performance budgets on the page's main flows, CPU throttled 4x (results in web-vitals.json).

Each flow runs RUNS times in a fresh page; the 75th percentile of each metric is held to its budget."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api_fixtures import SHOP_A, add_delivery, add_record, golden_order
from tests.browser.quality import RUNS, assert_budgets, read_vitals, start_vitals
from tests.browser.test_embedded_page import _expect, _seed_activity, _seed_company_lists, shop  # noqa: F401

pytestmark = pytest.mark.browser

SETTLED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def _load(browser_page, page_url):
    """A fresh page with the observers installed, loaded and painted (a person reacts after that)."""
    page = browser_page()
    start_vitals(page)
    page.goto(page_url(SHOP_A))
    _expect()(page.locator("#app")).to_have_attribute("data-ready", "true")
    page.evaluate(SETTLED)
    return page


def _measure(browser_page, page_url, flow) -> list[dict]:
    runs = []
    for n in range(RUNS):
        page = _load(browser_page, page_url)
        flow(page, n)
        runs.append(read_vitals(page))
        page.close()
    return runs


def test_first_load_within_budgets(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)

    def flow(page, n):
        _expect()(page.locator('[data-status][data-order-id="1003"]')).to_be_visible()

    summary = assert_budgets("first_load", _measure(browser_page, page_url, flow), interactive=False)
    assert "/static/embedded/polaris-fallback.js" in summary["js_files"]


def test_save_settings_within_budgets(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    _seed_company_lists(db, redis_conn, shop)

    def flow(page, n):
        page.get_by_label("Invoice" if n % 2 == 0 else "Sales Receipt").check()
        page.get_by_label("Deposit account").select_option(label="Checking")
        page.get_by_label("Document number prefix").fill(f"S{n}-")
        page.get_by_role("button", name="Save settings").click()
        _expect()(page.locator("#settings-status")).to_have_text("Settings saved.")

    assert_budgets("save_settings", _measure(browser_page, page_url, flow), interactive=True)


def test_retry_an_order_within_budgets(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)
    for n in range(RUNS):  # one failed order per run: a retried order is no longer retryable
        order = dict(golden_order("discounted_shipping"), id=1100 + n, name=f"#{1100 + n}")
        add_record(shop, 1100 + n, "failed", age_minutes=10, delivery=add_delivery(shop, order),
                   shopify_total=Decimal("10.00"), reason="Business Validation Error", error_code="6000")

    def flow(page, n):
        row = page.locator(f'[data-status][data-order-id="{1100 + n}"]')
        row.get_by_role("button", name=f"Retry order #{1100 + n}").click()
        _expect()(row.get_by_role("button")).to_have_text("Queued")

    assert_budgets("retry_order", _measure(browser_page, page_url, flow), interactive=True)


def test_preview_within_budgets(browser_page, page_url, shop, db):  # noqa: F811
    _seed_activity(shop)

    def flow(page, n):
        expect = _expect()
        page.get_by_label("Order", exact=True).select_option("1003")
        page.get_by_role("button", name="Preview document").click()
        expect(page.locator("#preview-result")).to_be_visible()
        expect(page.locator("#preview-lines tr").first).to_be_visible()
        page.get_by_text("Full QuickBooks payload").click()
        expect(page.locator("#preview-json")).to_be_visible()

    assert_budgets("preview", _measure(browser_page, page_url, flow), interactive=True)
