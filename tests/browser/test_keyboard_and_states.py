"""Keyboard-only runs of connect, settings and retry, and axe on the page states no other test shows."""

from __future__ import annotations

import re

import pytest

from tests.api_fixtures import SHOP_A
from tests.browser.quality import check_a11y, tab_to
from tests.browser.test_embedded_flow import _approve_at_intuit, intuit, live_app_url  # noqa: F401
from tests.browser.test_embedded_page import _expect, _open, _seed_activity, _seed_company_lists, shop  # noqa: F401

pytestmark = pytest.mark.browser


def test_connect_by_keyboard_only(browser_page, page_url, install_shop, intuit, live_app_url, db):  # noqa: F811
    from ecomflux_app.models import QboConnection

    expect = _expect()
    shop = install_shop("keys-shop.myshopify.com", name="Keys Shop")
    realm = intuit.create_company(name="Keyboard Books", country="US")
    page = browser_page()
    page.goto(page_url(shop.domain))
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    page.locator("body").focus()
    tab_to(page, '[data-view="not_connected"] button[data-action="connect"]')
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("^" + re.escape(intuit.url)))
    # Intuit's consent page is the sandbox's, not ours: choosing the company is not what we test.
    _approve_at_intuit(page, intuit, live_app_url, realm=realm)
    expect(page.get_by_text(re.compile("Connected to"))).to_be_visible()
    assert QboConnection.get(QboConnection.shop == shop).status == "connected"


def test_settings_by_keyboard_from_the_top(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    from ecomflux_app.models import ShopSettings

    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    page = _open(browser_page, page_url)
    page.locator("body").focus()
    tab_to(page, 'input[name="document_type"]:checked')
    page.keyboard.press("ArrowDown")  # radio group: arrows move the choice
    expect(page.get_by_label("Invoice")).to_be_checked()
    tab_to(page, "#deposit_account_id")
    page.keyboard.press("ArrowDown")  # a closed select changes its value with the arrow keys
    expect(page.locator("#deposit_account_id")).to_have_value("35")
    tab_to(page, "#doc_number_prefix")
    page.keyboard.type("KB-")
    tab_to(page, "#save-settings")
    page.keyboard.press("Enter")
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    values = ShopSettings.get(ShopSettings.shop == shop).values
    assert (values["document_type"], values["deposit_account_id"], values["doc_number_prefix"]) == ("invoice", "35", "KB-")


def test_retry_by_keyboard_only(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    from ecomflux_app.models import WebhookDelivery

    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)
    page = _open(browser_page, page_url)
    page.locator("body").focus()
    tab_to(page, ".skip-link")
    page.keyboard.press("Enter")  # skip link: straight to the activity
    expect(page.locator("#activity-title")).to_be_focused()
    tab_to(page, 'button[aria-label="Retry order #1003"]')
    page.keyboard.press("Enter")
    expect(page.locator('tr[data-order-id="1003"] button')).to_have_text("Queued")
    assert WebhookDelivery.get(WebhookDelivery.order_id == "1003").status != "failed"


def test_bounce_and_message_pages_are_accessible(browser_page, live_server, shop):  # noqa: F811
    page = browser_page()
    page.goto(f"{live_server.url}/?shop={SHOP_A}")  # no session token yet: the bounce page
    _expect()(page.get_by_role("heading", name="Opening EcomFlux…")).to_be_visible()
    check_a11y(page, "14-bounce")
    page.goto(f"{live_server.url}/?shop={SHOP_A}&id_token=not-a-token")
    _expect()(page.get_by_role("heading", name="Session expired")).to_be_visible()
    check_a11y(page, "15-session-expired")


def test_loading_and_error_states_are_accessible(browser_page, page_url, shop):  # noqa: F811
    page = browser_page()
    page.route(re.compile(r".*/api/status$"), lambda route: route.abort("connectionrefused"))
    page.goto(page_url(SHOP_A))
    _expect()(page.locator("#page-error")).to_contain_text("could not be reached")
    check_a11y(page, "16-api-unreachable")


POLARIS_TAGS = ("s-page", "s-section", "s-banner", "s-button", "s-select", "s-choice-list", "s-text-field",
                "s-date-field", "s-text-area", "s-table", "s-table-body")


def test_page_is_built_from_polaris_and_app_bridge_and_degrades_offline(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)
    page = _open(browser_page, page_url)
    html = page.evaluate("() => fetch(location.href).then(r => r.text())")
    for tag in POLARIS_TAGS + ("ui-title-bar", "ui-modal"):
        assert f"<{tag}" in html, tag
    assert "data-save-bar" in html
    # Offline: no interactive s-* element is left unconverted; layout and badges stay Polaris tags.
    left = page.evaluate("""() => [...document.querySelectorAll(
        's-button, s-select, s-choice-list, s-text-field, s-date-field, s-text-area, s-table, s-table-row, s-table-cell')]
        .map(n => n.tagName)""")
    assert left == []
    assert page.evaluate("document.documentElement.classList.contains('polaris-fallback')")
    assert page.locator("s-page").count() == 1 and page.locator("s-section").count() >= 6
    assert page.locator("#activity-rows s-badge").count() == 4
    assert page.evaluate("document.querySelector('#save-settings').tagName") == "BUTTON"


def test_save_bar_discard_restores_the_saved_settings(browser_page, page_url, shop, db):  # noqa: F811
    expect = _expect()
    page = _open(browser_page, page_url)
    page.get_by_label("Document number prefix").fill("SH-")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    page.get_by_label("Document number prefix").fill("CHANGED-")
    page.get_by_label("Invoice").check()
    page.evaluate("document.getElementById('settings-form').reset()")  # what App Bridge's Discard does
    expect(page.get_by_label("Document number prefix")).to_have_value("SH-")
    expect(page.get_by_label("Sales Receipt")).to_be_checked()


FAKE_APP_BRIDGE = """
window.__calls = [];
customElements.define('ui-modal', class extends HTMLElement {});
window.shopify = {
  idToken: function () { return Promise.resolve(%s); },
  toast: {show: function (m) { window.__calls.push(['toast', m]); }},
  modal: {show: function (id) { window.__calls.push(['show', id]); return Promise.resolve(); },
          hide: function (id) { window.__calls.push(['hide', id]); return Promise.resolve(); }}
};
"""


def test_disconnect_uses_app_bridge_modal_inside_the_admin(browser_page, page_url, shop, db, redis_conn, shopify_sandbox):  # noqa: F811
    import json

    from ecomflux_app.models import QboConnection

    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    fresh = shopify_sandbox.session_token(SHOP_A, expires_in=300)
    page = browser_page(cdn="none")
    page.route("https://cdn.shopify.com/shopifycloud/polaris.js", lambda route: route.abort())
    page.route("https://cdn.shopify.com/shopifycloud/app-bridge.js", lambda route: route.fulfill(
        content_type="text/javascript", body=FAKE_APP_BRIDGE % json.dumps(fresh)))
    page.goto(page_url(SHOP_A))
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    page.get_by_role("button", name="Disconnect").click()
    assert page.evaluate("window.__calls") == [["show", "disconnect-modal"]]
    expect(page.locator("#disconnect-dialog")).to_be_hidden()  # the admin draws the modal, not us
    # App Bridge proxies the admin's modal buttons back as clicks on ours.
    page.evaluate("document.getElementById('disconnect-modal-confirm').click()")
    expect(page.get_by_role("button", name="Connect QuickBooks")).to_be_visible()
    assert QboConnection.get(QboConnection.shop == shop).status == "not_connected"
    assert page.evaluate("window.__calls")[:3] == [["show", "disconnect-modal"], ["hide", "disconnect-modal"],
                                                   ["toast", "QuickBooks disconnected"]]


def test_page_drives_polaris_components_when_the_cdn_loads(browser_page, page_url, shop, db, redis_conn):  # noqa: F811
    """With polaris.js defining the s-* elements (a stand-in implementing the documented element API:
    value, values, error, disabled, type=submit), nothing is converted and the page works through them."""
    from pathlib import Path

    from ecomflux_app.models import ShopSettings

    expect = _expect()
    _seed_company_lists(db, redis_conn, shop)
    _seed_activity(shop)
    page = browser_page(cdn="none")
    page.route("https://cdn.shopify.com/shopifycloud/app-bridge.js", lambda route: route.abort())
    page.route("https://cdn.shopify.com/shopifycloud/polaris.js", lambda route: route.fulfill(
        content_type="text/javascript", body=(Path(__file__).parent / "fake_polaris.js").read_text()))
    page.goto(page_url(SHOP_A))
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    assert page.evaluate("window.EcomfluxPolaris.native") is False
    assert page.evaluate("document.querySelector('#save-settings').tagName") == "S-BUTTON"
    expect(page.locator('#activity-rows s-table-row[data-order-id="1003"] s-badge')).to_have_text("Failed")
    # Saved values come back into the components: the deposit list filled with s-option children.
    expect(page.locator("#deposit_account_id s-option")).to_have_count(3)
    page.get_by_label("Invoice").check()
    page.get_by_label("Deposit account").select_option(label="Checking")
    page.get_by_label("Document number prefix").fill("WAY-TOO-LONG-PREFIX")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#doc_number_prefix")).to_have_attribute("error", "at most 10 characters")
    page.get_by_label("Document number prefix").fill("PW-")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    expect(page.locator("#doc_number_prefix")).not_to_have_attribute("error", re.compile(".*"))
    values = ShopSettings.get(ShopSettings.shop == shop).values
    assert (values["document_type"], values["deposit_account_id"], values["doc_number_prefix"]) == ("invoice", "36", "PW-")
    page.reload()
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    expect(page.get_by_label("Invoice")).to_be_checked()
    assert page.evaluate("document.getElementById('deposit_account_id').value") == "36"
    page.get_by_role("button", name="Retry order #1003").click()
    expect(page.locator('s-button[data-order-id="1003"]')).to_have_text("Queued")  # slotted label
