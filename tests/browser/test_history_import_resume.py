"""History import on the page: an import whose process died shows as stopped, with Resume and Cancel."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.browser.embedded_fixtures import screenshot
from tests.browser.test_embedded_flow import _expect, _open, intuit  # noqa: F401 - fixture reuse
from tests.helpers import drain

pytestmark = pytest.mark.browser


def test_a_stopped_import_can_be_resumed_from_the_page(request, browser_page, page_url, intuit, redis_conn, db):  # noqa: F811
    from ecomflux_app.models import BackfillRun, utcnow
    from ecomflux_app.sync.backfill import start_backfill
    from tests.fixtures_flow import simple_order

    connected = request.getfixturevalue("connected_shop")
    expect = _expect()
    for n in range(3):
        connected.shopify.add_order(connected.shop.domain,
                                    dict(simple_order(9500 + n, f"#{9500 + n}"), fulfillment_status="fulfilled"))
    # A terminal ran `ecomflux backfill` and was closed: the run is 'running' and nobody renews its lease.
    run = start_backfill(connected.shop, date(2026, 11, 1), enqueue_job=False, owner="cli:closed-laptop:4242")
    BackfillRun.update(lease_until=utcnow() - timedelta(seconds=1)).where(BackfillRun.id == run.id).execute()

    page = _open(browser_page, page_url, connected.shop.domain)
    expect(page.locator("#backfill-stalled")).to_contain_text("stopped before it finished")
    screenshot(page, "13-history-import-stopped")
    page.get_by_role("button", name="Resume import").click()
    expect(page.locator("#backfill-controls")).to_be_hidden()
    drain(redis_conn)
    page.reload()
    expect(page.locator("#backfill-status")).to_contain_text("3 posted")
    assert len(connected.documents("SalesReceipt")) == 3
