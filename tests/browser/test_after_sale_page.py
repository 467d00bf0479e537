"""The page's Reconciliation and History import cards over the real pipeline (sandboxes + worker)."""

from __future__ import annotations

import pytest

from tests.browser.embedded_fixtures import screenshot
from tests.browser.quality import check_a11y
from tests.browser.test_embedded_flow import _expect, _open, intuit  # noqa: F401 - fixture reuse
from tests.helpers import drain

pytestmark = pytest.mark.browser


def test_sample_week_finds_a_dropped_order_and_posts_it(request, browser_page, page_url, intuit, redis_conn, db):  # noqa: F811
    from datetime import datetime, timedelta, timezone

    from tests.fixtures_flow import simple_order

    connected = request.getfixturevalue("connected_shop")
    expect = _expect()
    # The webhook for this order never arrived: only Shopify knows it. It was placed inside the
    # sample week (the last full 7 days), whatever day the suite runs.
    when = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
    connected.shopify.add_order(connected.shop.domain,
                                dict(simple_order(9301, "#9301", when=when), fulfillment_status="fulfilled"))
    page = _open(browser_page, page_url, connected.shop.domain)
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Check a sample week").click()
    expect(page.locator("#reconcile-status")).to_contain_text("Checking")
    drain(redis_conn)  # the reconciliation job runs on the worker's bulk queue
    expect(page.locator("#reconcile-rows")).to_contain_text("#9301")
    expect(page.locator("#reconcile-rows")).to_contain_text("Missing in QuickBooks")
    check_a11y(page, "11-reconciliation")
    screenshot(page, "11-reconciliation")
    page.get_by_role("button", name="Post missing orders").click()
    expect(page.locator("#reconcile-status")).to_contain_text("Posting")
    drain(redis_conn)
    assert [d["DocNumber"] for d in connected.documents("SalesReceipt")] == ["9301"]


def test_history_import_shows_progress(request, browser_page, page_url, intuit, redis_conn, db):  # noqa: F811
    from tests.fixtures_flow import simple_order

    connected = request.getfixturevalue("connected_shop")
    expect = _expect()
    for n in range(3):
        connected.shopify.add_order(connected.shop.domain,
                                    dict(simple_order(9400 + n, f"#{9400 + n}"), fulfillment_status="fulfilled"))
    page = _open(browser_page, page_url, connected.shop.domain)
    page.fill("#backfill-since", "2026-11-01")
    page.get_by_role("button", name="Start import").click()
    expect(page.locator("#backfill-status")).to_contain_text("Import since 2026-11-01")
    drain(redis_conn)
    expect(page.locator("#backfill-status")).to_contain_text("3 posted")
    check_a11y(page, "12-history-import")
    screenshot(page, "12-history-import")
    assert len(connected.documents("SalesReceipt")) == 3


def test_a_total_changed_in_quickbooks_is_fixed_from_the_page_once(request, browser_page, page_url, intuit,  # noqa: F811
                                                                     client, redis_conn, db):
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from tests.fixtures_flow import simple_order
    from tests.helpers import post_webhook

    connected = request.getfixturevalue("connected_shop")
    expect = _expect()
    when = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
    order = dict(simple_order(9302, "#9302", when=when), fulfillment_status="fulfilled")
    connected.shopify.add_order(connected.shop.domain, order)
    assert post_webhook(client, "orders/fulfilled", connected.shop.domain, order).status_code == 200
    drain(redis_conn)
    [receipt] = connected.documents("SalesReceipt")
    with connected.intuit.state.lock:  # the bookkeeper raises a line by 10.00 in QuickBooks
        target = connected.intuit.company(connected.realm).entities["SalesReceipt"][receipt["Id"]]
        target["Line"][0]["Amount"] = float(Decimal(str(target["Line"][0]["Amount"])) + Decimal("10"))
        target["TotalAmt"] = float(Decimal(str(target["TotalAmt"])) + Decimal("10"))
    page = _open(browser_page, page_url, connected.shop.domain)
    page.get_by_role("button", name="Check a sample week").click()
    expect(page.locator("#reconcile-status")).to_contain_text("Checking")  # queued before the worker runs
    drain(redis_conn)
    expect(page.locator("#reconcile-fix-rows")).to_contain_text("Total differs")
    with page.expect_response(lambda r: r.url.endswith("/fix") and r.status == 202):  # queued before the worker runs
        page.get_by_role("button", name="Post adjustment").click()
    expect(page.locator("#reconcile-fix-rows")).to_contain_text("Fixing")
    drain(redis_conn)
    expect(page.locator("#reconcile-fix-rows")).to_contain_text("Fixed")
    screenshot(page, "13-reconciliation-fix")
    assert [Decimal(str(m["TotalAmt"])) for m in connected.documents("CreditMemo")] == [Decimal("10.00")]
