"""Payouts end to end: Shopify Payments payouts (GraphQL sandbox) -> one QBO Deposit each in the strict sandbox."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ecomflux_app.models import Payout, SyncRecord
from ecomflux_app.sync.payouts import sync_payouts
from tests.payout_helpers import account_balance, amount, post_orders, scenario, setup_accounts

SINCE = date(2026, 11, 1)


def payout_net(connected, payout_id) -> Decimal:
    book = connected.shopify.state.shops[connected.shop.domain].payouts
    return book.net(int(payout_id))


def test_each_paid_payout_is_one_deposit_equal_to_its_net_and_clearing_nets_to_zero(client, redis_conn,
                                                                                    connected_shop):
    ids = setup_accounts(connected_shop)
    orders, refund = post_orders(client, redis_conn, connected_shop)
    made = scenario(connected_shop, orders, refund)
    result = sync_payouts(connected_shop.shop, SINCE)
    assert (result["posted"], result["waiting"], result["failed"]) == (2, 0, 0), result
    deposits = connected_shop.documents("Deposit")
    assert len(deposits) == 2
    by_payout = {p: next(d for d in deposits if f"[ecomflux:payout:{p}]" in d["PrivateNote"]) for p in made["paid"]}
    for payout_id, deposit in by_payout.items():
        assert amount(deposit["TotalAmt"]) == payout_net(connected_shop, payout_id)
        assert deposit["DepositToAccountRef"]["value"] == ids["bank"]
        row = SyncRecord.get(SyncRecord.source_key == f"payout:{payout_id}")
        assert (row.status, row.qbo_id) == ("posted", str(deposit["Id"]))
        assert row.shopify_total == row.qbo_total == payout_net(connected_shop, payout_id)
    assert not any(f"ecomflux:payout:{made['failed']}" in d["PrivateNote"] for d in deposits)
    # Sales Receipts in Undeposited Funds are linked, not re-entered as account lines.
    first = by_payout[made["paid"][0]]
    linked = [line["LinkedTxn"][0] for line in first["Line"] if line.get("LinkedTxn")]
    assert {l["TxnType"] for l in linked} >= {"SalesReceipt"}
    assert len([l for l in linked if l["TxnType"] == "SalesReceipt"]) == 2
    # fees: every fee in the payouts lands in the fee account, as negative lines
    book = connected_shop.shopify.state.shops[connected_shop.shop.domain].payouts
    all_fees = sum(Decimal(t["fee"]) for t in book.transactions.values() if t["type"] != "TRANSFER")
    fee_lines = [line for d in deposits for line in d["Line"]
                 if not line.get("LinkedTxn") and line["DepositLineDetail"]["AccountRef"]["value"] == ids["fee"]
                 and (line["Description"].startswith("Shopify Payments processing fees")
                      or line["Description"].startswith("Chargeback fee"))]
    assert sum(amount(line["Amount"]) for line in fee_lines) == -all_fees
    # refund and chargeback are visible lines
    descriptions = " | ".join(line.get("Description", "") for d in deposits for line in d["Line"])
    assert "Chargeback #9102" in descriptions and "Chargeback fee #9102" in descriptions
    assert "reserve" in descriptions and "fee correction" in descriptions
    # every order was paid out (the failed payout's money came back in the third): clearing holds nothing
    assert account_balance(connected_shop, ids["clearing"]) == 0
    # a second run (and a third) posts nothing more
    again = sync_payouts(connected_shop.shop, SINCE)
    sync_payouts(connected_shop.shop)
    assert again["posted"] == 0 and again["already"] == 2
    assert len(connected_shop.documents("Deposit")) == 2
    failed = Payout.get(Payout.payout_id == str(made["failed"]))
    assert failed.status == "FAILED"


def test_dedicated_clearing_account_uses_account_lines_and_receipts_deposit_there(client, redis_conn, connected_shop):
    ids = setup_accounts(connected_shop, clearing="Shopify Payments clearing")
    orders, refund = post_orders(client, redis_conn, connected_shop)
    for receipt in connected_shop.documents("SalesReceipt"):
        assert receipt["DepositToAccountRef"]["value"] == ids["clearing"]
    [refund_doc] = connected_shop.documents("RefundReceipt")
    assert refund_doc["DepositToAccountRef"]["value"] == ids["clearing"]
    made = scenario(connected_shop, orders, refund)
    assert sync_payouts(connected_shop.shop, SINCE)["posted"] == 2
    deposits = connected_shop.documents("Deposit")
    assert all(not line.get("LinkedTxn") for d in deposits for line in d["Line"])
    for payout_id in made["paid"]:
        deposit = next(d for d in deposits if f"[ecomflux:payout:{payout_id}]" in d["PrivateNote"])
        assert amount(deposit["TotalAmt"]) == payout_net(connected_shop, payout_id)
    assert account_balance(connected_shop, ids["clearing"]) == 0


def test_payout_waits_for_its_orders_then_posts_once(client, redis_conn, connected_shop):
    from tests.fixtures_flow import simple_order
    from tests.helpers import drain, post_webhook

    setup_accounts(connected_shop)
    posted = simple_order(9201, "#9201")
    late = simple_order(9202, "#9202", email="late@example.com", first="Late")
    post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, posted)
    drain(redis_conn)
    state = connected_shop.shopify.state
    payout = state.put_payout(connected_shop.shop.domain, {"issued_at": "2026-11-22T09:00:00Z", "status": "PAID"}, [
        {"type": "CHARGE", "amount": posted["current_total_price"], "fee": "1.00", "order_id": 9201,
         "order_name": "#9201", "processed_at": "2026-11-20T15:00:00Z"},
        {"type": "CHARGE", "amount": late["current_total_price"], "fee": "1.00", "order_id": 9202,
         "order_name": "#9202", "processed_at": "2026-11-20T15:00:00Z"}])
    result = sync_payouts(connected_shop.shop, SINCE)
    assert result["waiting"] == 1 and not connected_shop.documents("Deposit")
    row = Payout.get(Payout.payout_id == str(payout["id"]))
    assert "#9202" in row.wait_reason and "#9201" not in row.wait_reason
    post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, late)
    drain(redis_conn)
    assert sync_payouts(connected_shop.shop, SINCE)["posted"] == 1
    [deposit] = connected_shop.documents("Deposit")
    assert amount(deposit["TotalAmt"]) == amount(posted["current_total_price"]) * 2 - 2
    assert Payout.get_by_id(row.id).wait_reason is None


def test_a_payout_that_fails_after_its_deposit_was_posted_is_reversed(client, redis_conn, connected_shop):
    ids = setup_accounts(connected_shop)
    orders, refund = post_orders(client, redis_conn, connected_shop, count=2, refund_first=False)
    state = connected_shop.shopify.state
    payout = state.put_payout(connected_shop.shop.domain, {"issued_at": "2026-11-22T09:00:00Z", "status": "PAID"}, [
        {"type": "CHARGE", "amount": o["current_total_price"], "fee": "0.50", "order_id": o["id"],
         "order_name": o["name"]} for o in orders])
    assert sync_payouts(connected_shop.shop, SINCE)["posted"] == 1
    assert account_balance(connected_shop, ids["clearing"]) == 0
    state.set_payout_status(connected_shop.shop.domain, payout["id"], "FAILED")
    result = sync_payouts(connected_shop.shop, SINCE)
    assert result["reversed"] == 1
    assert connected_shop.documents("Deposit") == []
    record = SyncRecord.get(SyncRecord.source_key == f"payout:{payout['id']}")
    assert record.status == "voided" and "failed" in record.reason
    # the sales are back in clearing, waiting for the payout that returns them
    assert account_balance(connected_shop, ids["clearing"]) == sum(amount(o["current_total_price"]) for o in orders)
    assert sync_payouts(connected_shop.shop, SINCE)["reversed"] == 0


def test_foreign_currency_payout_is_flagged_with_the_reason(client, redis_conn, connected_shop):
    setup_accounts(connected_shop)
    state = connected_shop.shopify.state
    payout = state.put_payout(connected_shop.shop.domain, {"issued_at": "2026-11-22T09:00:00Z", "status": "PAID",
                                                           "currency": "EUR"},
                              [{"type": "ADJUSTMENT", "amount": "10.00", "currency": "EUR"}])
    result = sync_payouts(connected_shop.shop, SINCE)
    assert result["flagged"] == 1
    record = SyncRecord.get(SyncRecord.source_key == f"payout:{payout['id']}")
    assert record.status == "flagged" and "EUR" in record.reason and "USD" in record.reason
    assert connected_shop.documents("Deposit") == []


def test_reconciliation_covers_payouts_missing_edited_and_reversed(client, redis_conn, connected_shop):
    from ecomflux_app.sync.reconcile import reconcile_range

    setup_accounts(connected_shop)
    orders, refund = post_orders(client, redis_conn, connected_shop)
    made = scenario(connected_shop, orders, refund)
    before = reconcile_range(connected_shop.shop, date(2026, 11, 15), date(2026, 11, 30)).report
    assert before["counts"]["payout_missing"] == 2  # paid, not synced yet
    sync_payouts(connected_shop.shop, SINCE)
    clean = reconcile_range(connected_shop.shop, date(2026, 11, 15), date(2026, 11, 30)).report
    assert {k: clean["counts"][k] for k in ("payout_missing", "payout_duplicated", "payout_mismatch",
                                            "payout_not_paid_out")} == dict.fromkeys(
        ("payout_missing", "payout_duplicated", "payout_mismatch", "payout_not_paid_out"), 0)
    assert clean["payouts"]["paid"] == 2 and clean["payouts"]["clearing"]["reserve_held"] == "0.00"
    # the bookkeeper edits one Deposit in QuickBooks: reconciliation says which and by how much
    deposit = next(d for d in connected_shop.documents("Deposit") if str(made["paid"][1]) in d["PrivateNote"])
    connected_shop.intuit.edit_entity(connected_shop.realm, "Deposit", deposit["Id"], TotalAmt=1.00)
    edited = reconcile_range(connected_shop.shop, date(2026, 11, 15), date(2026, 11, 30)).report
    [diff] = [d for d in edited["differences"] if d["kind"] == "payout_mismatch"]
    assert diff["order_id"] == str(made["paid"][1]) and diff["qbo"] == "1.0"
