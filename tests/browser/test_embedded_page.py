"""The Accounting page driven in headless chromium, offline (App Bridge and Polaris CDN scripts fail)."""

from __future__ import annotations

import json
import re

import pytest

from tests.api_fixtures import SHOP_A, add_delivery, add_record, connect_qbo, golden_order
from tests.browser.embedded_fixtures import screenshot
from tests.browser.quality import check_a11y

pytestmark = pytest.mark.browser

COMPANY_LISTS = {
    "accounts": [{"id": "35", "name": "Undeposited Funds", "type": "Other Current Asset"},
                 {"id": "36", "name": "Checking", "type": "Bank"},
                 {"id": "79", "name": "Sales of Product Income", "type": "Income"},
                 {"id": "86", "name": "Discounts given", "type": "Income"}],
    "deposit_accounts": [{"id": "35", "name": "Undeposited Funds", "type": "Other Current Asset"},
                         {"id": "36", "name": "Checking", "type": "Bank"}],
    "income_accounts": [{"id": "79", "name": "Sales of Product Income", "type": "Income"}],
    "discount_accounts": [{"id": "86", "name": "Discounts given", "type": "Income"}],
    "items": [{"id": "7", "name": "Shipping", "type": "Service"}, {"id": "8", "name": "Sales tax", "type": "Service"}],
    "classes": [{"id": "500", "name": "Online store"}],
    "departments": [{"id": "2", "name": "Warehouse East"}],
    "customers": [{"id": "58", "name": "Shopify Guest"}],
}


@pytest.fixture
def shop(install_shop):
    return install_shop(SHOP_A, name="Maple & Co")


def _expect():
    from playwright.sync_api import expect

    return expect


def _open(browser_page, page_url, shop_domain=SHOP_A, **kwargs):
    page = browser_page(**kwargs)
    page.goto(page_url(shop_domain))
    _expect()(page.locator("#app")).to_have_attribute("data-ready", "true")
    return page


def _seed_company_lists(db, redis_conn, shop_row):
    conn = connect_qbo(shop_row)
    # What GET /api/options read from the company, cached per shop and realm.
    redis_conn.set(f"ecomflux:qbo-options:{SHOP_A}:{conn.realm_id}", json.dumps(COMPANY_LISTS), ex=300)
    return conn


def _seed_activity(shop_row):
    from decimal import Decimal

    add_record(shop_row, 1001, "posted", age_minutes=50, shopify_total=Decimal("59.90"),
               qbo_total=Decimal("59.90"))
    add_record(shop_row, 1002, "flagged", age_minutes=40, shopify_total=Decimal("120.00"),
               qbo_total=Decimal("119.99"), reason="QuickBooks total 119.99 differs from Shopify total 120.00")
    order = dict(golden_order("discounted_shipping"), id=1003, name="#1003")
    add_record(shop_row, 1003, "failed", age_minutes=30, delivery=add_delivery(shop_row, order),
               reason="Business Validation Error: Item 'Gift wrap' is inactive", error_code="6000",
               error_element="Line.ItemRef")
    add_record(shop_row, 1004, "waiting_reconnect", age_minutes=20, shopify_total=Decimal("18.50"))


def test_first_visit_not_connected_and_empty(browser_page, page_url, shop):
    expect = _expect()
    page = _open(browser_page, page_url)
    expect(page.get_by_role("heading", name="Accounting", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Connect QuickBooks")).to_be_visible()
    expect(page.get_by_text("No orders synced yet")).to_be_visible()
    expect(page.locator("#count-posted")).to_have_text("0")
    expect(page.locator("#last-sync")).to_have_text("never")
    expect(page.locator("#reconnect-banner")).to_be_hidden()
    expect(page.get_by_text("Connect QuickBooks to choose accounts")).to_be_visible()
    expect(page.locator("#page-error")).to_be_hidden()
    check_a11y(page, "01-not-connected-empty")
    screenshot(page, "01-not-connected-empty")


def test_choose_invoice_save_reload_persists(browser_page, page_url, shop, db):
    from ecomflux_app.models import ShopSettings

    expect = _expect()
    page = _open(browser_page, page_url)
    expect(page.get_by_label("Sales Receipt")).to_be_checked()
    page.get_by_label("Invoice").check()
    page.get_by_label("Document number prefix").fill("SH-")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    values = ShopSettings.get(ShopSettings.shop == shop).values
    assert values["document_type"] == "invoice" and values["doc_number_prefix"] == "SH-"
    page.reload()
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    expect(page.get_by_label("Invoice")).to_be_checked()
    expect(page.get_by_label("Document number prefix")).to_have_value("SH-")


def test_settings_by_keyboard_only(browser_page, page_url, shop, db):
    from ecomflux_app.models import ShopSettings

    expect = _expect()
    page = _open(browser_page, page_url)
    page.get_by_label("Sales Receipt").focus()
    page.keyboard.press("ArrowDown")  # native radio group: arrows move the choice
    expect(page.get_by_label("Invoice")).to_be_checked()
    for _ in range(60):  # Tab through the form to the save button; every control is reachable
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "save-settings":
            break
    else:
        pytest.fail("Save settings is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    assert ShopSettings.get(ShopSettings.shop == shop).values["document_type"] == "invoice"


def test_invalid_settings_show_per_field_errors(browser_page, page_url, shop, db):
    from ecomflux_app.models import ShopSettings

    expect = _expect()
    page = _open(browser_page, page_url)
    page.get_by_label("Document number prefix").fill("WAY-TOO-LONG-PREFIX")
    page.get_by_label("Customer matching").select_option("none")  # needs a default customer
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#err-doc_number_prefix")).to_have_text("at most 10 characters")
    expect(page.locator("#err-default_customer_id")).to_contain_text("required")
    expect(page.locator("#settings-summary")).to_contain_text("Fix 2 fields")
    expect(page.get_by_label("Document number prefix")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("document.activeElement.id") in ("doc_number_prefix", "default_customer_id")
    assert ShopSettings.select().count() == 0
    check_a11y(page, "06-settings-field-errors")
    screenshot(page, "06-settings-field-errors")
    # Fixing the fields clears the errors and saves.
    page.get_by_label("Document number prefix").fill("SH-")
    page.get_by_label("Customer matching").select_option("email")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    expect(page.locator("#err-doc_number_prefix")).to_be_hidden()


def test_connected_company_fills_the_dropdowns(browser_page, page_url, shop, db, redis_conn):
    from ecomflux_app.models import ShopSettings

    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    page = _open(browser_page, page_url)
    expect(page.get_by_text("Connected to Sandbox Company")).to_be_visible()
    expect(page.get_by_role("button", name="Disconnect")).to_be_visible()
    deposit = page.get_by_label("Deposit account")
    expect(deposit.locator("option")).to_have_text(["Not set", "Undeposited Funds", "Checking"])
    deposit.select_option(label="Undeposited Funds")
    page.get_by_label("Income account").select_option(label="Sales of Product Income")
    page.get_by_label("Refund account").select_option(label="Checking")
    page.get_by_label("Shipping item").select_option(label="Shipping (Service)")
    page.get_by_label("Location").select_option(label="Warehouse East")
    page.get_by_label("Tax handling").select_option("tax_line")
    expect(page.get_by_label("Tax line item")).to_be_visible()  # shown only for tax_line
    page.get_by_label("Tax line item").select_option(label="Sales tax (Service)")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    values = ShopSettings.get(ShopSettings.shop == shop).values
    assert (values["deposit_account_id"], values["income_account_id"], values["shipping_item_id"],
            values["department_id"], values["tax_item_id"], values["refund_account_id"]) == ("35", "79", "7", "2", "8", "36")
    check_a11y(page, "02-connected-settings")
    screenshot(page, "02-connected-settings")


def test_activity_lists_posted_flagged_failed_and_retries(browser_page, page_url, shop, db, redis_conn):
    from ecomflux_app.models import WebhookDelivery

    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)
    page = _open(browser_page, page_url)
    posted = page.locator('tr[data-order-id="1001"]')
    expect(posted).to_contain_text("#1001")
    expect(posted).to_contain_text("Posted")
    expect(posted).to_contain_text("Sales Receipt SH-1001")
    expect(posted).to_contain_text("USD 59.90")
    flagged = page.locator('tr[data-order-id="1002"]')
    expect(flagged).to_contain_text("Flagged")
    expect(flagged).to_contain_text("differs from Shopify total 120.00")
    expect(flagged).to_contain_text("QuickBooks: USD 119.99")
    expect(page.locator('tr[data-order-id="1004"]')).to_contain_text("Pending")
    expect(page.locator('tr[data-order-id="1004"]')).to_contain_text("Waiting for QuickBooks to be reconnected")
    expect(page.locator("#count-posted")).to_have_text("1")
    expect(page.locator("#count-failed")).to_have_text("1")
    expect(page.locator("#last-sync")).not_to_have_text("never")
    check_a11y(page, "03-activity")
    screenshot(page, "03-activity")
    failed = page.locator('tr[data-order-id="1003"]')
    expect(failed).to_contain_text("QuickBooks error 6000, Line.ItemRef")
    failed.get_by_role("button", name="Retry order #1003").click()
    expect(failed.get_by_role("button")).to_have_text("Queued")
    delivery = WebhookDelivery.get(WebhookDelivery.order_id == "1003")
    assert delivery.status != "failed"
    # The filter narrows the list.
    page.get_by_label("Show").select_option("flagged")
    expect(page.locator("#activity-rows tr")).to_have_count(1)
    expect(page.locator("#activity-rows tr")).to_contain_text("#1002")


def test_activity_pagination(browser_page, page_url, shop, db):
    expect = _expect()
    for n in range(23):
        add_record(shop, 2000 + n, "posted", age_minutes=100 - n)
    page = _open(browser_page, page_url)
    expect(page.locator("#activity-rows tr")).to_have_count(10)
    expect(page.locator("#page-label")).to_have_text("Page 1 of 3")
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#page-label")).to_have_text("Page 2 of 3")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#activity-rows tr")).to_have_count(3)
    expect(page.get_by_role("button", name="Next")).to_be_disabled()


def test_reconnect_banner_when_connection_needs_the_admin(browser_page, page_url, shop, db):
    expect = _expect()
    connect_qbo(shop, status="reconnect_required")
    add_record(shop, 1004, "waiting_reconnect")
    page = _open(browser_page, page_url)
    banner = page.locator("#reconnect-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("QuickBooks needs to be reconnected")
    expect(banner.get_by_role("button", name="Reconnect QuickBooks")).to_be_visible()
    expect(page.locator("#count-pending")).to_have_text("1")
    check_a11y(page, "04-reconnect-banner")
    screenshot(page, "04-reconnect-banner")


def test_works_at_375px(browser_page, page_url, shop, db, redis_conn):
    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)
    page = _open(browser_page, page_url, viewport={"width": 375, "height": 812})
    expect(page.locator('tr[data-order-id="1001"]')).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"page scrolls sideways by {overflow}px at 375 px"
    box = page.get_by_role("button", name="Save settings").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375
    check_a11y(page, "05-mobile-375")
    screenshot(page, "05-mobile-375")


def test_preview_of_a_synced_order(browser_page, page_url, shop, db):
    expect = _expect()
    _seed_activity(shop)
    page = _open(browser_page, page_url)
    page.get_by_label("Order", exact=True).select_option("1003")
    page.get_by_role("button", name="Preview document").click()
    result = page.locator("#preview-result")
    expect(result).to_be_visible()
    expect(page.locator("#preview-result-title")).to_contain_text("Sales Receipt")
    expect(page.locator("#preview-balance")).to_have_text("Balances with Shopify's total to the cent.")
    expect(page.locator("#preview-lines tr").first).to_be_visible()
    amounts = page.locator("#preview-lines td.num:nth-child(3)").all_inner_texts()
    assert amounts and all(re.fullmatch(r"−?\d+\.\d\d", a) for a in amounts if a), amounts
    page.get_by_text("Full QuickBooks payload").click()
    expect(page.locator("#preview-json")).to_contain_text('"DocNumber"')
    check_a11y(page, "07-preview")
    screenshot(page, "07-preview")


def test_preview_of_pasted_json_and_bad_json(browser_page, page_url, shop):
    expect = _expect()
    page = _open(browser_page, page_url)
    page.get_by_label("Order JSON").fill("{broken")
    page.get_by_role("button", name="Preview document").click()
    expect(page.locator("#err-preview-order")).to_contain_text("not valid JSON")
    page.get_by_label("Order JSON").fill(json.dumps(golden_order("line_and_order_discounts_invoice")))
    page.get_by_role("button", name="Preview document").click()
    expect(page.locator("#preview-result")).to_be_visible()
    expect(page.locator("#err-preview-order")).to_be_hidden()


def test_disconnect_asks_for_confirmation(browser_page, page_url, shop, db, redis_conn):
    from ecomflux_app.models import QboConnection

    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    page = _open(browser_page, page_url)
    page.get_by_role("button", name="Disconnect").click()
    dialog = page.get_by_role("dialog", name="Disconnect QuickBooks?")
    expect(dialog).to_be_visible()
    check_a11y(page, "13-disconnect-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert QboConnection.get(QboConnection.shop == shop).status == "connected"
    expect(page.get_by_role("button", name="Disconnect")).to_be_focused()  # focus returns to the trigger


def test_app_bridge_token_is_used_when_app_bridge_loads(browser_page, page_url, shop, shopify_sandbox):
    """Inside the admin, fetches carry shopify.idToken(), not the document-load token."""
    fresh = shopify_sandbox.session_token(SHOP_A, expires_in=300)
    page = browser_page(cdn="none")
    page.route("https://cdn.shopify.com/shopifycloud/polaris.js", lambda route: route.abort())
    page.route("https://cdn.shopify.com/shopifycloud/app-bridge.js", lambda route: route.fulfill(
        content_type="text/javascript",
        body="window.shopify = {idToken: function () { return Promise.resolve(%s); }, toast: {show: function (m) {"
             " window.__toasts = (window.__toasts || []).concat([m]); }}};" % json.dumps(fresh)))
    with page.expect_request(re.compile(r".*/api/status$")) as status_request:
        page.goto(page_url(SHOP_A))
    assert status_request.value.headers["authorization"] == f"Bearer {fresh}"
    _expect()(page.locator("#app")).to_have_attribute("data-ready", "true")
    page.get_by_role("button", name="Save settings").click()
    _expect()(page.locator("#settings-status")).to_have_text("Settings saved.")
    assert page.evaluate("window.__toasts") == ["Settings saved"]


def test_declined_consent_is_explained_on_return(browser_page, page_url, shop):
    expect = _expect()
    page = browser_page()
    page.goto(page_url(SHOP_A) + "&qbo_error=access_denied")
    expect(page.locator("#connect-error")).to_contain_text("declined at Intuit")
    expect(page.get_by_role("button", name="Connect QuickBooks")).to_be_visible()


def test_api_failure_shows_an_error_state(browser_page, page_url, shop):
    """When the API cannot be reached the page says so instead of spinning forever."""
    expect = _expect()
    page = browser_page()
    page.route(re.compile(r".*/api/status$"), lambda route: route.abort("connectionrefused"))
    page.goto(page_url(SHOP_A))
    expect(page.locator("#page-error")).to_contain_text("could not be reached")
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")


def test_loading_state_then_content(browser_page, page_url, shop):
    expect = _expect()
    page = browser_page()
    held = []
    page.route(re.compile(r".*/api/status$"), lambda route: held.append(route))
    page.goto(page_url(SHOP_A))
    expect(page.get_by_text("Loading connection…")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("aria-busy", "true")
    expect(page.get_by_label("Invoice")).to_be_disabled()  # nothing editable before settings load
    expect(page.get_by_role("button", name="Save settings")).to_be_disabled()
    check_a11y(page, "00-loading")
    screenshot(page, "00-loading")
    assert held, "the status request was not intercepted"
    held[0].continue_()
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    expect(page.get_by_role("button", name="Connect QuickBooks")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("aria-busy", "false")


def test_disconnect_confirmed_by_keyboard(browser_page, page_url, shop, db, redis_conn):
    from ecomflux_app.models import QboConnection

    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    page = _open(browser_page, page_url)
    page.get_by_role("button", name="Disconnect").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Disconnect QuickBooks?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice has focus
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Disconnect")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    try:
        import ecomflux_app.quickbooks.connection  # noqa: F401
    except ImportError:
        # Without the connection module the page says so and nothing changes.
        expect(page.locator("#connect-error")).to_contain_text("Could not disconnect")
        assert QboConnection.get(QboConnection.shop == shop).status == "connected"
    else:
        expect(page.get_by_role("button", name="Connect QuickBooks")).to_be_visible()
        assert QboConnection.get(QboConnection.shop == shop).status == "not_connected"


def test_different_company_offers_an_explicit_replace(browser_page, page_url, shop, db):
    expect = _expect()
    connect_qbo(shop)
    page = browser_page()
    page.goto(page_url(SHOP_A) + "&qbo_error=different_company")
    expect(page.locator("#connect-error")).to_contain_text("different QuickBooks company")
    replace = page.get_by_role("button", name="Replace with the other company")
    expect(replace).to_be_visible()
    with page.expect_request(re.compile(r".*/api/qbo/connect$")) as connect_request:
        replace.click()
    assert json.loads(connect_request.value.post_data) == {"replace": True}
