"""The page over the real pipeline: Intuit sandbox consent, orders posted by the worker, revoke -> reconnect."""

from __future__ import annotations

import re

import pytest

from tests.browser.embedded_fixtures import screenshot
from tests.browser.quality import check_a11y
from tests.helpers import drain, post_webhook

pytestmark = pytest.mark.browser


@pytest.fixture
def intuit(request):
    try:
        return request.getfixturevalue("intuit_sandbox")
    except pytest.FixtureLookupError:
        pytest.skip("the Intuit sandbox fixture (tests/fixtures_intuit.py) is not available yet")


@pytest.fixture
def live_app_url(app, live_server):
    """Intuit must redirect the browser back to the server the browser is using."""
    saved = app.config["APP_URL"]
    app.config["APP_URL"] = live_server.url
    yield live_server.url
    app.config["APP_URL"] = saved


def _expect():
    from playwright.sync_api import expect

    return expect


def _open(browser_page, page_url, shop_domain):
    page = browser_page()
    page.goto(page_url(shop_domain))
    _expect()(page.locator("#app")).to_have_attribute("data-ready", "true")
    return page


def _approve_at_intuit(page, intuit, live_app_url, realm: str | None = None):
    """On the Intuit sandbox consent page: pick the company when asked, then Approve."""
    page.wait_for_url(re.compile("^" + re.escape(intuit.url)))
    if realm is not None:
        choice = page.locator(f'input[value="{realm}"], option[value="{realm}"]')
        if choice.count():
            tag = choice.first.evaluate("e => e.tagName")
            if tag == "OPTION":
                choice.first.locator("xpath=..").select_option(realm)
            else:
                choice.first.check()
    page.locator("#approve").click()
    page.wait_for_url(re.compile("^" + re.escape(live_app_url) + "/qbo/callback"))


def test_connect_through_intuit_consent_then_dropdowns_come_from_the_company(
        browser_page, page_url, install_shop, intuit, live_app_url, db):
    from ecomflux_app.models import QboConnection

    expect = _expect()
    shop = install_shop("connect-shop.myshopify.com", name="Connect Shop")
    realm = intuit.create_company(name="Maple Books LLC", country="US")
    page = _open(browser_page, page_url, shop.domain)
    page.get_by_role("button", name="Connect QuickBooks").click()
    page.wait_for_url(re.compile("^" + re.escape(intuit.url)))
    screenshot(page, "08-intuit-consent")
    _approve_at_intuit(page, intuit, live_app_url, realm=realm)
    expect(page.get_by_text(re.compile("Connected to"))).to_be_visible()
    conn = QboConnection.get(QboConnection.shop == shop)
    assert conn.status == "connected" and conn.realm_id == realm and conn.company_name == "Maple Books LLC"
    # Back in the admin (the admin reopens the app with a fresh token).
    page.goto(page_url(shop.domain))
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    expect(page.locator("#company-name")).to_have_text("Maple Books LLC")
    deposit = page.get_by_label("Deposit account")
    expect(deposit.locator("option").nth(1)).to_be_attached()  # filled from the company's accounts
    page.get_by_label("Invoice").check()
    deposit.select_option(index=1)
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    page.reload()
    expect(page.get_by_label("Invoice")).to_be_checked()


def test_consent_link_finished_in_another_browser_connects_nothing(
        browser_page, page_url, install_shop, intuit, live_app_url, db):
    """The connect link is bound to the browser that clicked Connect (first-party cookie set at top level)."""
    from ecomflux_app.models import QboConnection

    expect = _expect()
    shop = install_shop("bound-shop.myshopify.com", name="Bound Shop")
    realm = intuit.create_company(name="Stranger Books", country="US")
    page = _open(browser_page, page_url, shop.domain)
    with page.expect_request(re.compile(re.escape(live_app_url) + r"/qbo/start\?ticket=")):
        page.get_by_role("button", name="Connect QuickBooks").click()
    page.wait_for_url(re.compile("^" + re.escape(intuit.url)))
    assert any(c["name"] == "ecomflux_qbo_oauth" and c["path"] == "/qbo" and c["httpOnly"]
               for c in page.context.cookies())
    other = browser_page()  # another browser: the consent link is approved there
    other.goto(page.url)
    _approve_at_intuit(other, intuit, live_app_url, realm=realm)
    expect(other.locator("h1")).to_have_text("QuickBooks not connected")
    expect(other.get_by_role("status")).to_contain_text("started in another browser")
    assert QboConnection.select().where(QboConnection.shop == shop).count() == 0
    # The admin's own browser still finishes the flow it began.
    _approve_at_intuit(page, intuit, live_app_url, realm=realm)
    expect(page.get_by_text(re.compile("Connected to Stranger Books"))).to_be_visible()


def test_posted_order_shows_in_activity(request, browser_page, page_url, intuit, client, redis_conn, db):
    from tests.fixtures_flow import simple_order

    connected_shop = request.getfixturevalue("connected_shop")
    expect = _expect()
    assert post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order(9001, "#9001")).status_code == 200
    drain(redis_conn)
    [doc] = connected_shop.documents("SalesReceipt")
    page = _open(browser_page, page_url, connected_shop.shop.domain)
    row = page.locator('tr[data-order-id="9001"]')
    expect(row).to_contain_text("Posted")
    expect(row).to_contain_text(doc["DocNumber"])
    expect(row).to_contain_text("USD 26.60")
    expect(page.locator("#count-posted")).to_have_text("1")
    check_a11y(page, "09-posted-order")
    screenshot(page, "09-posted-order")


def test_reconnect_banner_after_revoke_and_orders_post_after_reconnect(
        request, browser_page, page_url, intuit, client, redis_conn, db, live_app_url):
    from datetime import timedelta

    from ecomflux_app.models import QboConnection, SyncRecord, utcnow
    from tests.fixtures_flow import simple_order

    expect = _expect()
    connected_shop = request.getfixturevalue("connected_shop")
    intuit.revoke_all(connected_shop.realm)
    QboConnection.update(access_token_expires_at=utcnow() - timedelta(minutes=1)).execute()
    post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order(9101, "#9101"))
    drain(redis_conn)
    assert QboConnection.get().status == "reconnect_required"
    assert connected_shop.documents("SalesReceipt") == []
    page = _open(browser_page, page_url, connected_shop.shop.domain)
    banner = page.locator("#reconnect-banner")
    expect(banner).to_be_visible()
    expect(page.locator('tr[data-order-id="9101"]')).to_contain_text("Pending")
    check_a11y(page, "10-reconnect-after-revoke")
    screenshot(page, "10-reconnect-after-revoke")
    banner.get_by_role("button", name="Reconnect QuickBooks").click()
    _approve_at_intuit(page, intuit, live_app_url, realm=connected_shop.realm)
    assert QboConnection.get().status == "connected"
    drain(redis_conn)  # the parked order resumes by itself
    page.goto(page_url(connected_shop.shop.domain))
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    expect(page.locator("#reconnect-banner")).to_be_hidden()
    expect(page.locator('tr[data-order-id="9101"]')).to_contain_text("Posted")
    assert SyncRecord.get(SyncRecord.order_id == "9101").status == "posted"
    assert len(connected_shop.documents("SalesReceipt")) == 1


def test_authorization_ending_soon_is_shown_and_the_reconnect_url_starts_the_flow(
        request, browser_page, page_url, intuit, db, live_app_url):
    """Intuit's 5-year limit: a warning ahead of it, and Intuit's Reconnect URL landing starts the connect flow."""
    from datetime import timedelta

    from ecomflux_app.models import QboConnection, utcnow

    expect = _expect()
    connected_shop = request.getfixturevalue("connected_shop")
    page = _open(browser_page, page_url, connected_shop.shop.domain)
    expect(page.locator("#qbo-authorization-banner")).to_be_hidden()
    intuit.state.set_hard_deadline(connected_shop.realm, 9 * 86400 + 3600)
    QboConnection.update(refresh_token_hard_expires_at=utcnow() + timedelta(days=9, hours=1)).execute()
    page = _open(browser_page, page_url, connected_shop.shop.domain)
    banner = page.locator("#qbo-authorization-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("(9 days)")
    screenshot(page, "13-authorization-ends-soon")
    # /qbo/reconnect?shop=... sends the merchant to the app page with qbo=reconnect (inside the Shopify admin
    # in production); the page then starts the connect flow by itself.
    landing = browser_page()
    landing.goto(page_url(connected_shop.shop.domain) + "&qbo=reconnect")
    _approve_at_intuit(landing, intuit, live_app_url, realm=connected_shop.realm)
    expect(landing.get_by_text(re.compile("Connected to"))).to_be_visible()
    assert QboConnection.get().refresh_token_hard_expires_at - utcnow() > timedelta(days=5 * 365 - 1)
