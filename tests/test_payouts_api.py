"""The Payouts API behind the card: account settings with type checks, creating the accounts, Sync payouts, the list."""

from __future__ import annotations

from decimal import Decimal

from ecomflux_app.models import ShopSettings
from tests.api_fixtures import bearer  # noqa: F401 - fixture
from tests.helpers import drain
from tests.payout_helpers import account, post_orders, scenario, setup_accounts


def test_payout_accounts_are_validated_by_type_and_together(client, connected_shop, bearer):  # noqa: F811
    shop = connected_shop.shop.domain
    acc = {a["Name"]: str(a["Id"]) for a in connected_shop.documents("Account")}
    alone = client.put("/api/settings", json={"payout_clearing_account_id": acc["Undeposited Funds"]},
                       headers=bearer(shop))
    assert alone.status_code == 422
    assert set(alone.json["errors"]) == {"payout_bank_account_id", "payout_fee_account_id"}
    wrong = client.put("/api/settings", headers=bearer(shop), json={
        "payout_clearing_account_id": acc["Undeposited Funds"], "payout_bank_account_id": acc["Undeposited Funds"],
        "payout_fee_account_id": acc["Services"]})
    assert wrong.status_code == 422
    assert "differ" in wrong.json["errors"]["payout_bank_account_id"]
    typed = client.put("/api/settings", headers=bearer(shop), json={
        "payout_clearing_account_id": acc["Services"], "payout_bank_account_id": acc["Accounts Receivable (A/R)"],
        "payout_fee_account_id": acc["Services"]})
    assert typed.status_code == 422
    errors = typed.json["errors"]
    assert "Other Current Asset" in errors["payout_clearing_account_id"]
    assert "Bank" in errors["payout_bank_account_id"] and "Expense" in errors["payout_fee_account_id"]
    missing = client.put("/api/settings", headers=bearer(shop), json={
        "payout_clearing_account_id": "999", "payout_bank_account_id": acc["Checking"],
        "payout_fee_account_id": acc["Services"]})
    assert "not an active account" in missing.json["errors"]["payout_clearing_account_id"]
    assert ShopSettings.get_or_none(ShopSettings.shop == connected_shop.shop) is None  # nothing half-saved


def test_create_accounts_on_request_then_sync_and_list_payouts(client, redis_conn, connected_shop, bearer):  # noqa: F811
    shop = connected_shop.shop.domain
    made = client.post("/api/payouts/accounts", json={"create": ["clearing", "fee"]}, headers=bearer(shop))
    assert made.status_code == 201, made.json
    clearing, fees = account(connected_shop, "Shopify Payments clearing"), account(connected_shop,
                                                                                    "Shopify Payments fees")
    assert clearing["AccountType"] == "Other Current Asset" and fees["AccountType"] == "Expense"
    again = client.post("/api/payouts/accounts", json={"create": ["clearing"]}, headers=bearer(shop))
    assert again.status_code == 201 and again.json["created"]["payout_clearing_account_id"] == str(clearing["Id"])
    assert len([a for a in connected_shop.documents("Account") if a["Name"] == "Shopify Payments clearing"]) == 1
    not_ready = client.post("/api/payouts/sync", json={}, headers=bearer(shop))
    assert not_ready.status_code == 409  # no bank account chosen yet
    saved = client.put("/api/settings", headers=bearer(shop), json={
        "payout_bank_account_id": str(account(connected_shop, "Checking")["Id"])})
    assert saved.status_code == 200, saved.json
    orders, refund = post_orders(client, redis_conn, connected_shop)
    made = scenario(connected_shop, orders, refund)
    assert client.post("/api/payouts/sync", json={"since": "nope"}, headers=bearer(shop)).status_code == 400
    queued = client.post("/api/payouts/sync", json={"since": "2026-11-01"}, headers=bearer(shop))
    assert queued.status_code == 202
    drain(redis_conn)
    assert len(connected_shop.documents("Deposit")) == 2
    listing = client.get("/api/payouts", headers=bearer(shop)).json
    assert listing["configured"] is True
    rows = {p["payout_id"]: p for p in listing["payouts"]}
    assert set(rows) == {str(made["failed"]), *map(str, made["paid"])}
    for payout_id in made["paid"]:
        row = rows[str(payout_id)]
        assert row["status"] == "PAID" and row["match"]["matches"] is True
        assert Decimal(str(row["deposit"]["total"])) == Decimal(str(row["net"]))
        assert Decimal(str(row["fees"])) > 0
    assert rows[str(made["failed"])]["deposit"] is None and rows[str(made["failed"])]["status"] == "FAILED"
    assert listing["clearing"]["payouts_not_deposited"] == []


def test_payouts_are_per_shop(client, connected_shop, install_shop, bearer):  # noqa: F811
    setup_accounts(connected_shop)
    connected_shop.shopify.state.put_payout(connected_shop.shop.domain, {"issued_at": "2026-11-22T09:00:00Z"},
                                            [{"type": "ADJUSTMENT", "amount": "5.00"}])
    from ecomflux_app.sync.payouts import sync_payouts
    from datetime import date

    sync_payouts(connected_shop.shop, date(2026, 11, 1))
    other = install_shop("other-shop.myshopify.com")
    assert client.get("/api/payouts", headers=bearer(other.domain)).json["payouts"] == []
    assert len(client.get("/api/payouts", headers=bearer(connected_shop.shop.domain)).json["payouts"]) == 1


def test_support_console_lists_payouts_with_transactions_and_qbo_exchanges(client, redis_conn, connected_shop, db):
    from datetime import date

    from ecomflux_app.models import Payout
    from ecomflux_app.staff import create_staff
    from ecomflux_app.sync.payouts import sync_payouts
    from tests.test_support import PASSWORD, sign_in

    setup_accounts(connected_shop)
    orders, refund = post_orders(client, redis_conn, connected_shop)
    made = scenario(connected_shop, orders, refund)
    sync_payouts(connected_shop.shop, date(2026, 11, 1))
    assert client.get("/support/payouts/").status_code == 302  # staff only
    staff = create_staff("viewer@ecomflux.test", PASSWORD, role="viewer")
    assert sign_in(client, staff.email).status_code == 302
    listing = client.get(f"/support/payouts/?shop={connected_shop.shop.domain}").get_data(as_text=True)
    for payout_id in (*made["paid"], made["failed"]):
        assert str(payout_id) in listing
    row = Payout.get(Payout.payout_id == str(made["paid"][0]))
    page = client.get(f"/support/payouts/{row.id}").get_data(as_text=True)
    assert "CHARGE" in page and "REFUND" in page and "RESERVED_FUNDS" in page
    assert "&#34;DepositToAccountRef&#34;" in page and "posted" in page  # the QBO request we sent, its outcome
    assert "HTTP 200" in page
    failed = client.get("/support/payouts/?status=FAILED").get_data(as_text=True)
    assert str(made["failed"]) in failed and str(made["paid"][0]) not in failed


def test_history_import_also_brings_in_that_history_s_payouts(client, redis_conn, connected_shop, bearer):  # noqa: F811
    from tests.fixtures_flow import simple_order

    setup_accounts(connected_shop)
    orders = [dict(simple_order(9501 + n, f"#{9501 + n}", email=f"h{n}@example.com", first=f"H{n}"),
                   fulfillment_status="fulfilled") for n in range(2)]
    for order in orders:
        connected_shop.shopify.add_order(connected_shop.shop.domain, order)
    payout = connected_shop.shopify.state.put_payout(connected_shop.shop.domain, {
        "issued_at": "2026-11-23T09:00:00Z", "status": "PAID"}, [
        {"type": "CHARGE", "amount": o["current_total_price"], "fee": "0.90", "order_id": o["id"],
         "order_name": o["name"]} for o in orders])
    resp = client.post("/api/backfill", json={"since": "2026-11-01"}, headers=bearer(connected_shop.shop.domain))
    assert resp.status_code == 202
    drain(redis_conn)  # the orders first, then the payouts (bulk queue, in order)
    [deposit] = connected_shop.documents("Deposit")
    assert f"[ecomflux:payout:{payout['id']}]" in deposit["PrivateNote"]
    assert Decimal(str(deposit["TotalAmt"])) == sum(Decimal(o["current_total_price"]) for o in orders) - Decimal("1.80")
