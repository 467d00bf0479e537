"""Built for Shopify performance budgets on the page's main flows, CPU throttled 4x (results in web-vitals.json)."""

from __future__ import annotations

import pytest

from tests.api_fixtures import SHOP_A
from tests.browser.quality import assert_budgets, read_vitals, start_vitals
from tests.browser.test_embedded_page import _expect, _seed_activity, _seed_company_lists, shop  # noqa: F401

pytestmark = pytest.mark.browser


def _load(browser_page, page_url):
    page = browser_page()
    start_vitals(page)
    page.goto(page_url(SHOP_A))
    _expect()(page.locator("#app")).to_have_attribute("data-ready", "true")
    return page


def test_first_load_within_budgets(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)
    page = _load(browser_page, page_url)
    _expect()(page.locator('[data-status][data-order-id="1003"]')).to_be_visible()
    vitals = read_vitals(page)
    assert "/static/embedded/polaris-fallback.js" in vitals["js_files"]
    assert_budgets("first_load", vitals, interactive=False)


def test_save_settings_within_budgets(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    page = _load(browser_page, page_url)
    page.get_by_label("Invoice").check()
    page.get_by_label("Deposit account").select_option(label="Checking")
    page.get_by_label("Document number prefix").fill("SH-")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    assert_budgets("save_settings", read_vitals(page), interactive=True)


def test_retry_an_order_within_budgets(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)
    page = _load(browser_page, page_url)
    row = page.locator('[data-status][data-order-id="1003"]')
    row.get_by_role("button", name="Retry order #1003").click()
    expect(row.get_by_role("button")).to_have_text("Queued")
    assert_budgets("retry_order", read_vitals(page), interactive=True)


def test_preview_within_budgets(browser_page, page_url, shop, db):  # noqa: F811
    expect = _expect()
    _seed_activity(shop)
    page = _load(browser_page, page_url)
    page.get_by_label("Order", exact=True).select_option("1003")
    page.get_by_role("button", name="Preview document").click()
    expect(page.locator("#preview-result")).to_be_visible()
    expect(page.locator("#preview-lines tr").first).to_be_visible()
    page.get_by_text("Full QuickBooks payload").click()
    expect(page.locator("#preview-json")).to_be_visible()
    assert_budgets("preview", read_vitals(page), interactive=True)
