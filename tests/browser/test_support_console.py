"""The support console in Debian chromium: sign in, filter the log, open a masked detail, reveal, replay."""

from __future__ import annotations

import json

from ecomflux_app.models import AuditLog, Shop, WebhookDelivery
from ecomflux_app.work_queue import get_queue, shop_queue_name
from ecomflux_app.staff import create_staff
from tests.browser.embedded_fixtures import screenshot
from tests.browser.quality import check_a11y

SHOP = "console-shop.myshopify.com"
PASSWORD = "correct horse battery"


def _deliveries():
    shop = Shop.create(domain=SHOP, access_token="x")
    for i in range(6):
        WebhookDelivery.create(
            webhook_id=f"wh-ok-{i}", topic="orders/paid", shop_domain=SHOP, shop=shop, status="posted",
            body=json.dumps({"id": 100 + i, "name": f"#{100 + i}"}), order_id=str(100 + i), order_name=f"#{100 + i}")
    return WebhookDelivery.create(
        webhook_id="wh-failed-1", topic="orders/fulfilled", shop_domain=SHOP, shop=shop, status="failed",
        error="QBO rejected the document: 6000 Business Validation Error", attempts=3,
        headers={"X-Shopify-Topic": "orders/fulfilled"}, order_id="555", order_name="#555",
        body=json.dumps({"id": 555, "name": "#555", "email": "secret.buyer@private.example",
                         "customer": {"first_name": "Secretia", "email": "secret.buyer@private.example"}}))


def _sign_in(page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/support/webhooks")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_operator_signs_in_filters_opens_reveals_and_replays(live_server, browser_page, db, redis_conn):
    create_staff("op@example.com", PASSWORD, "operator")
    failed = _deliveries()
    page = browser_page()
    blocked = []  # anything the console's CSP refused (an inline script or style left behind)
    page.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)

    page.goto(f"{live_server.url}/support/webhooks")
    assert page.url.startswith(f"{live_server.url}/support/login")  # unauthenticated -> sign-in page
    check_a11y(page, "support-01-login")
    screenshot(page, "support-01-login")
    _sign_in(page, live_server.url, "op@example.com", PASSWORD)
    page.wait_for_selector("h1:has-text('Webhook deliveries')")
    assert page.locator("tbody tr").count() == 7
    check_a11y(page, "support-02-log")
    screenshot(page, "support-02-log")

    page.select_option("select[name=status]", "failed")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**status=failed**")
    assert page.locator("tbody tr").count() == 1
    assert "#555" in page.locator("tbody").inner_text()
    check_a11y(page, "support-03-filtered-failed")
    screenshot(page, "support-03-filtered-failed")

    page.click(f"tbody a:text-is('{failed.id}')")
    page.wait_for_selector("#payload")
    payload = page.locator("#payload").inner_text()
    assert "secret.buyer@private.example" not in payload and "Secretia" not in payload
    assert "6000 Business Validation Error" in page.content()
    check_a11y(page, "support-04-detail-masked")
    screenshot(page, "support-04-detail-masked")

    page.click("#reveal")
    page.wait_for_selector("#payload:has-text('secret.buyer@private.example')")
    assert AuditLog.select().where(AuditLog.action == "reveal").count() == 1
    check_a11y(page, "support-05-revealed")
    screenshot(page, "support-05-revealed")

    page.click("#replay")
    page.wait_for_selector(".flash:has-text('Replay queued')")
    assert WebhookDelivery.get_by_id(failed.id).status == "queued"
    assert [j.args for j in get_queue(redis_conn, shop_queue_name(SHOP)).jobs] == [[failed.id]]
    check_a11y(page, "support-06-replay-queued")
    screenshot(page, "support-06-replay-queued")
    # The stylesheet is the console's own file, applied under the CSP.
    assert page.locator("header").evaluate("e => getComputedStyle(e).display") == "flex"
    assert blocked == []

    page.get_by_role("link", name="Queues & shops").click()
    page.wait_for_selector("h1:has-text('Queues and shops')")
    check_a11y(page, "support-08-health")
    screenshot(page, "support-08-health")
    page.get_by_role("link", name="Audit trail").click()
    page.wait_for_selector("h1")
    check_a11y(page, "support-09-audit")


def test_sign_out_ends_the_session_for_a_copied_cookie_too(live_server, browser_page, db):
    create_staff("op@example.com", PASSWORD, "operator")
    page = browser_page()
    _sign_in(page, live_server.url, "op@example.com", PASSWORD)
    page.wait_for_selector("h1:has-text('Webhook deliveries')")
    [cookie] = [c for c in page.context.cookies() if c["name"] == "ecomflux_support"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/support"
    thief = browser_page()
    thief.context.add_cookies([cookie])
    thief.goto(f"{live_server.url}/support/webhooks")
    thief.wait_for_selector("h1:has-text('Webhook deliveries')")  # a copy works while the session lives
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/support/login")
    thief.goto(f"{live_server.url}/support/webhooks")
    assert thief.url.startswith(f"{live_server.url}/support/login")


def test_viewer_sees_no_replay_or_reveal_and_throttling_is_shown(live_server, browser_page, db):
    create_staff("viewer@example.com", PASSWORD, "viewer")
    failed = _deliveries()
    page = browser_page()
    _sign_in(page, live_server.url, "viewer@example.com", PASSWORD)
    page.wait_for_selector("h1:has-text('Webhook deliveries')")
    page.goto(f"{live_server.url}/support/webhooks/{failed.id}")
    page.wait_for_selector("#payload")
    assert page.locator("#replay").count() == 0 and page.locator("#reveal").count() == 0
    assert page.locator("#replay-failed").count() == 0

    other = browser_page()
    for _ in range(5):
        _sign_in(other, live_server.url, "viewer@example.com", "wrong password!")
    _sign_in(other, live_server.url, "viewer@example.com", PASSWORD)  # right password, but too soon
    alert = other.locator("[role=alert]").inner_text()
    assert "too many sign-in attempts" in alert.lower() and "try again in" in alert.lower()
    check_a11y(other, "support-07-locked-out")
    screenshot(other, "support-07-locked-out")
