"""orders/paid in invoice mode: Payments linked to the invoice (LinkedTxn), partial payments, exactly once."""

from __future__ import annotations

import copy
from decimal import Decimal

from ecomflux_app.models import SyncRecord, WebhookDelivery
from ecomflux_app.sync import dispatch
from tests.fixtures_flow import simple_order
from tests.helpers import drain, post_webhook


def send(client, connected, topic, payload, webhook_id=None):
    resp = post_webhook(client, topic, connected.shop.domain, payload, webhook_id=webhook_id)
    assert resp.status_code == 200, resp.data


def amount(value) -> Decimal:
    return Decimal(str(value))


def invoice_balance(connected) -> Decimal:
    [invoice] = connected.documents("Invoice")
    return amount(invoice["Balance"])


def with_transactions(order, *txs, status="partially_paid"):
    out = copy.deepcopy(order)
    out["financial_status"] = status
    out["transactions"] = [{"id": tid, "kind": "sale", "status": "success", "amount": amt, "gateway": gw,
                            "processed_at": "2026-11-22T12:00:00-05:00"} for tid, amt, gw in txs]
    return out


def test_invoice_then_payment_links_the_payment_and_closes_the_invoice(client, redis_conn, connected_shop):
    accounts = connected_shop.documents("Account")
    bank = [a for a in accounts if a.get("AccountType") == "Bank"][-1]
    method = connected_shop.documents("PaymentMethod")[0]
    connected_shop.settings(document_type="invoice", deposit_account_id=bank["Id"],
                            payment_method_map={"shopify_payments": method["Id"]})
    order = simple_order()
    order["financial_status"] = "pending"
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    assert invoice_balance(connected_shop) == Decimal("26.60")
    paid = dict(order, financial_status="paid")
    for webhook_id in ("p1", "p2"):
        send(client, connected_shop, "orders/paid", paid, webhook_id=webhook_id)
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    [payment] = connected_shop.documents("Payment")
    assert amount(payment["TotalAmt"]) == Decimal("26.60")
    assert payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    assert payment["CustomerRef"] == invoice["CustomerRef"]
    assert payment["DepositToAccountRef"]["value"] == bank["Id"]
    assert payment["PaymentMethodRef"]["value"] == method["Id"]
    assert amount(invoice["Balance"]) == 0
    row = SyncRecord.get(SyncRecord.kind == "payment")
    assert row.status == "posted" and row.source_key == "payment:9001:paid-26.60"
    for delivery in WebhookDelivery.select().where(WebhookDelivery.topic == "orders/paid"):
        dispatch.process_delivery(delivery.id, force=True)
    assert len(connected_shop.documents("Payment")) == 1


def test_partial_payments_by_transaction_each_post_once(client, redis_conn, connected_shop):
    connected_shop.intuit.put_entity(connected_shop.realm, "Account", {
        "Name": "PayPal Clearing", "AccountType": "Bank", "AccountSubType": "Checking"})
    banks = [a["Id"] for a in connected_shop.documents("Account") if a.get("AccountType") == "Bank"]
    assert len(set(banks)) == 2
    connected_shop.settings(document_type="invoice", deposit_account_id=banks[0],
                            deposit_account_map={"manual": banks[-1]})
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    first = with_transactions(order, (501, "10.00", "shopify_payments"))
    send(client, connected_shop, "orders/paid", first)
    drain(redis_conn)
    assert invoice_balance(connected_shop) == Decimal("16.60")
    second = with_transactions(order, (501, "10.00", "shopify_payments"), (502, "16.60", "manual"), status="paid")
    send(client, connected_shop, "orders/paid", second)
    send(client, connected_shop, "orders/paid", second, webhook_id="again")
    drain(redis_conn)
    payments = connected_shop.documents("Payment")
    assert sorted(amount(p["TotalAmt"]) for p in payments) == [Decimal("10.00"), Decimal("16.60")]
    deposits = {amount(p["TotalAmt"]): p["DepositToAccountRef"]["value"] for p in payments}
    assert deposits == {Decimal("10.00"): banks[0], Decimal("16.60"): banks[-1]}  # per gateway
    assert invoice_balance(connected_shop) == 0
    assert {r.source_key for r in SyncRecord.select().where(SyncRecord.kind == "payment")} == \
        {"payment:9001:501", "payment:9001:502"}


def test_partial_payment_without_transactions_uses_amount_paid_so_far(client, redis_conn, connected_shop):
    connected_shop.settings(document_type="invoice")
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    send(client, connected_shop, "orders/paid", dict(order, financial_status="partially_paid", total_outstanding="6.60"))
    drain(redis_conn)
    assert invoice_balance(connected_shop) == Decimal("6.60")
    send(client, connected_shop, "orders/paid", dict(order, financial_status="paid", total_outstanding="0.00"))
    drain(redis_conn)
    assert sorted(amount(p["TotalAmt"]) for p in connected_shop.documents("Payment")) == \
        [Decimal("6.60"), Decimal("20.00")]
    assert invoice_balance(connected_shop) == 0


def test_payment_before_the_invoice_posts_the_invoice_first(client, redis_conn, connected_shop):
    connected_shop.settings(document_type="invoice")  # trigger stays "fulfilled"
    send(client, connected_shop, "orders/paid", simple_order())
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    [payment] = connected_shop.documents("Payment")
    assert payment["Line"][0]["LinkedTxn"][0]["TxnId"] == invoice["Id"]
    assert amount(invoice["Balance"]) == 0


def test_paid_trigger_in_invoice_mode_posts_invoice_and_payment(client, redis_conn, connected_shop):
    connected_shop.settings(document_type="invoice", trigger="paid")
    send(client, connected_shop, "orders/paid", simple_order())
    drain(redis_conn)
    assert len(connected_shop.documents("Invoice")) == 1
    assert len(connected_shop.documents("Payment")) == 1
    assert invoice_balance(connected_shop) == 0


def test_payment_timed_out_after_qbo_wrote_it_is_found_by_its_marker_not_repeated(client, redis_conn, connected_shop,
                                                                                   monkeypatch):
    from ecomflux_app.models import ProcessingAttempt
    from ecomflux_app.quickbooks import client as qbo_client
    from tests.test_faults import wait_for

    connected_shop.settings(document_type="invoice")
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    monkeypatch.setattr(qbo_client, "TIMEOUT", (2, 1))  # the client gives up after 1 s; QBO finishes anyway
    connected_shop.intuit.inject_fault(connected_shop.realm, "timeout", seconds=1.5, endpoint="POST payment")
    send(client, connected_shop, "orders/paid", order)
    drain(redis_conn)
    delivery = WebhookDelivery.get(WebhookDelivery.topic == "orders/paid")
    assert delivery.status == "pending"
    assert SyncRecord.get(SyncRecord.kind == "payment").status == "posting"  # outcome unknown
    wait_for(lambda: len(connected_shop.documents("Payment")) == 1, what="the timed-out payment to land")
    # Intuit's requestid retention is undocumented: without the lookup the invoice, now at 0, would flag it.
    connected_shop.intuit.forget_request_ids(connected_shop.realm)
    assert dispatch.process_delivery(delivery.id) == "posted"
    [payment] = connected_shop.documents("Payment")
    row = SyncRecord.get(SyncRecord.kind == "payment")
    assert (row.status, row.qbo_id, row.qbo_total) == ("posted", payment["Id"], Decimal("26.60"))
    assert f"[ecomflux:{row.source_key}]" in payment["PrivateNote"]
    assert ProcessingAttempt.select().where((ProcessingAttempt.sync_record == row.id)
                                            & (ProcessingAttempt.outcome == "adopted")).count() == 1
    assert invoice_balance(connected_shop) == 0


def test_payment_lookup_after_a_crash_adopts_its_own_payment_not_a_similar_one(client, redis_conn, connected_shop,
                                                                               monkeypatch):
    from tests.helpers import as_if_the_dead_worker_timed_out, run_killed_after_qbo_write

    connected_shop.settings(document_type="invoice")
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    send(client, connected_shop, "orders/paid", with_transactions(order, (501, "20.00", "shopify_payments")))
    drain(redis_conn)
    both = with_transactions(order, (501, "20.00", "shopify_payments"), (50, "6.60", "manual"), status="paid")
    assert post_webhook(client, "orders/paid", connected_shop.shop.domain, both, webhook_id="second").status_code == 200
    delivery = WebhookDelivery.get(WebhookDelivery.webhook_id == "second")
    run_killed_after_qbo_write(monkeypatch, delivery.id, lambda key: key == "payment:9001:50")
    assert SyncRecord.get(SyncRecord.source_key == "payment:9001:50").status == "posting"
    connected_shop.intuit.forget_request_ids(connected_shop.realm)
    as_if_the_dead_worker_timed_out(redis_conn, delivery.id)
    assert dispatch.process_delivery(delivery.id) == "posted"
    by_amount = {amount(p["TotalAmt"]): p["Id"] for p in connected_shop.documents("Payment")}
    assert set(by_amount) == {Decimal("20.00"), Decimal("6.60")}  # one each: nothing posted twice
    # "payment:9001:50" is a prefix of "payment:9001:501": the marker must match whole
    assert SyncRecord.get(SyncRecord.source_key == "payment:9001:50").qbo_id == by_amount[Decimal("6.60")]
    assert SyncRecord.get(SyncRecord.source_key == "payment:9001:501").qbo_id == by_amount[Decimal("20.00")]
    assert invoice_balance(connected_shop) == 0


def test_payment_is_dated_the_day_the_money_came_in_not_the_order_date(client, redis_conn, connected_shop):
    """Net terms: invoiced on the 20th, paid on 3 December (late evening in New York, already the 4th
    in UTC). orders/paid carries no transactions: they are read from Shopify, and the Payment takes the
    paid transaction's day in the shop's timezone, so A/R at the end of November is right."""
    connected_shop.settings(document_type="invoice")
    order = dict(simple_order(), financial_status="pending")
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    paid = dict(order, financial_status="paid")
    connected_shop.shopify.add_order(connected_shop.shop.domain, dict(paid, transactions=[
        {"id": 601, "kind": "sale", "status": "success", "amount": "26.60", "gateway": "shopify_payments",
         "processed_at": "2026-12-03T22:30:00-05:00"}]))
    send(client, connected_shop, "orders/paid", paid)
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    [payment] = connected_shop.documents("Payment")
    assert invoice["TxnDate"] == "2026-11-20" and payment["TxnDate"] == "2026-12-03"
    assert amount(payment["TotalAmt"]) == Decimal("26.60") and amount(invoice["Balance"]) == 0
    assert SyncRecord.get(SyncRecord.kind == "payment").source_key == "payment:9001:601"


def test_payment_without_transactions_anywhere_is_dated_when_shopify_said_it_was_paid(client, redis_conn,
                                                                                      connected_shop):
    connected_shop.settings(document_type="invoice")
    order = dict(simple_order(), financial_status="pending")
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    resp = post_webhook(client, "orders/paid", connected_shop.shop.domain, dict(order, financial_status="paid"),
                        triggered_at="2026-12-02T15:00:00.000Z")
    assert resp.status_code == 200
    drain(redis_conn)
    [payment] = connected_shop.documents("Payment")
    assert payment["TxnDate"] == "2026-12-02"
