"""The Payouts card over the real pipeline: choose accounts (with type errors), Sync payouts, see Deposits match."""

from __future__ import annotations

import pytest

from tests.browser.embedded_fixtures import screenshot
from tests.browser.test_embedded_flow import _expect, _open, intuit  # noqa: F401 - fixture reuse
from tests.helpers import drain
from tests.payout_helpers import account, post_orders, scenario

pytestmark = pytest.mark.browser


def test_payouts_card_sets_accounts_syncs_and_shows_matching_deposits(request, browser_page, page_url, intuit,  # noqa: F811
                                                                       client, redis_conn, db):
    connected = request.getfixturevalue("connected_shop")
    expect = _expect()
    orders, refund = post_orders(client, redis_conn, connected)
    made = scenario(connected, orders, refund)
    page = _open(browser_page, page_url, connected.shop.domain)
    card = page.locator("#payouts")
    card.scroll_into_view_if_needed()  # its script loads when the card is seen
    expect(card.locator("#payouts-empty")).to_be_visible()
    expect(card.locator("#payout-settings-fields")).to_be_enabled()
    # only the clearing account chosen: the other two are required with it
    page.select_option("#payout_clearing_account_id", str(account(connected, "Undeposited Funds")["Id"]))
    page.get_by_role("button", name="Save payout accounts").click()
    expect(card.locator("#err-payout_bank_account_id")).to_contain_text("required")
    expect(card.locator("#err-payout_fee_account_id")).to_contain_text("required")
    # the fee account is created on request and selected
    page.get_by_role("button", name='Create "Shopify Payments fees"').click()
    expect(card.locator("#payout-settings-status")).to_contain_text("created")
    expect(card.locator("#payout_fee_account_id")).to_have_value(str(account(connected, "Shopify Payments fees")["Id"]))
    page.select_option("#payout_bank_account_id", str(account(connected, "Checking")["Id"]))
    page.get_by_role("button", name="Save payout accounts").click()
    expect(card.locator("#payout-settings-status")).to_contain_text("saved")
    page.fill("#payouts-since", "2026-11-01")
    page.get_by_role("button", name="Sync payouts").click()
    expect(card.locator("#payouts-status")).to_contain_text("queued")
    drain(redis_conn)
    for payout_id in made["paid"]:
        row = card.locator(f'tr[data-payout="{payout_id}"]')
        expect(row).to_contain_text("Matches bank", timeout=15000)
        expect(row).to_contain_text("Paid")
        expect(row).to_contain_text("Deposit ")
    failed = card.locator(f'tr[data-payout="{made["failed"]}"]')
    expect(failed).to_contain_text("Failed")
    expect(failed).to_contain_text("Nothing posted")
    expect(card.locator("#payouts-clearing")).to_contain_text("Clearing is explained")
    screenshot(page, "13-payouts")
    assert len(connected.documents("Deposit")) == 2
