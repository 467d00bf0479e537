"""refunds/create end to end: signed webhook -> worker -> strict QBO sandbox (RefundReceipt / CreditMemo), exactly once."""

from __future__ import annotations

from decimal import Decimal

from ecomflux_app.models import SyncRecord, WebhookDelivery
from ecomflux_app.sync import dispatch
from tests.after_sale_helpers import make_refund, order_with_refund
from tests.fixtures_flow import simple_order
from tests.helpers import drain, post_webhook


def send(client, connected, topic, payload, webhook_id=None):
    resp = post_webhook(client, topic, connected.shop.domain, payload, webhook_id=webhook_id)
    assert resp.status_code == 200, resp.data


def amount(value) -> Decimal:
    return Decimal(str(value))


def item_lines(doc):
    return [line for line in doc["Line"] if line.get("DetailType") == "SalesItemLineDetail"]


def test_full_refund_posts_one_refund_receipt_linked_to_the_sales_receipt(client, redis_conn, connected_shop):
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    refund = make_refund(order, shipping="5.00")
    for webhook_id in ("r1", "r2"):  # Shopify retries: still one document
        send(client, connected_shop, "refunds/create", refund, webhook_id=webhook_id)
    drain(redis_conn)
    [receipt] = connected_shop.documents("SalesReceipt")
    [doc] = connected_shop.documents("RefundReceipt")
    assert amount(doc["TotalAmt"]) == Decimal("26.60")
    assert amount(doc["TxnTaxDetail"]["TotalTax"]) == Decimal("1.60")
    assert doc["DocNumber"].startswith(receipt["DocNumber"] + "-R")
    assert "ecomflux:refund:7001" in doc["PrivateNote"] and receipt["DocNumber"] in doc["PrivateNote"]
    assert doc["CustomerRef"] == receipt["CustomerRef"]
    product, shipping = item_lines(doc)
    # the same QBO item as the order's line for that SKU
    assert product["SalesItemLineDetail"]["ItemRef"] == item_lines(receipt)[0]["SalesItemLineDetail"]["ItemRef"]
    assert amount(product["SalesItemLineDetail"]["Qty"]) == 2 and amount(product["Amount"]) == Decimal("20.00")
    assert shipping["SalesItemLineDetail"]["ItemRef"]["value"] == "SHIPPING_ITEM_ID"
    assert amount(shipping["Amount"]) == Decimal("5.00")
    # no refund account in settings: the company's first Bank account
    bank = [a for a in connected_shop.documents("Account") if a.get("AccountType") == "Bank"]
    assert doc["DepositToAccountRef"]["value"] in {a["Id"] for a in bank}
    row = SyncRecord.get(SyncRecord.source_key == "refund:7001")
    assert (row.status, row.document_type, row.qbo_id) == ("posted", "RefundReceipt", str(doc["Id"]))
    assert row.shopify_total == row.qbo_total == Decimal("26.60")
    assert sorted(d.status for d in WebhookDelivery.select().where(WebhookDelivery.topic == "refunds/create")) == \
        ["posted", "skipped_duplicate"]
    for delivery in WebhookDelivery.select().where(WebhookDelivery.topic == "refunds/create"):
        assert dispatch.process_delivery(delivery.id, force=True) == "skipped_duplicate"
    assert len(connected_shop.documents("RefundReceipt")) == 1


def test_partial_refund_by_quantity_with_discrepancy_and_settings_refund_account(client, redis_conn, connected_shop):
    order = simple_order(qty=3, tax="2.40")
    connected_shop.intuit.put_entity(connected_shop.realm, "Account", {
        "Name": "Refunds Clearing", "AccountType": "Bank", "AccountSubType": "Checking"})
    bank = [a for a in connected_shop.documents("Account") if a.get("AccountType") == "Bank"]
    assert len(bank) == 2
    connected_shop.settings(refund_account_id=bank[-1]["Id"])
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    refund = make_refund(order, qty=1, discrepancy="1.25")  # 10.00 + 0.80 tax + 1.25 goodwill
    send(client, connected_shop, "refunds/create", refund)
    drain(redis_conn)
    [doc] = connected_shop.documents("RefundReceipt")
    assert amount(doc["TotalAmt"]) == Decimal("12.05")
    assert amount(doc["TxnTaxDetail"]["TotalTax"]) == Decimal("0.80")
    assert doc["DepositToAccountRef"]["value"] == bank[-1]["Id"]
    product, adjustment = item_lines(doc)
    assert amount(product["SalesItemLineDetail"]["Qty"]) == 1 and amount(product["Amount"]) == Decimal("10.00")
    assert "Refund discrepancy" in adjustment["Description"] and amount(adjustment["Amount"]) == Decimal("1.25")


def test_refund_whose_lines_do_not_match_its_transactions_is_flagged_not_posted(client, redis_conn, connected_shop):
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    send(client, connected_shop, "refunds/create", make_refund(order, qty=1, transaction="3.00"))
    drain(redis_conn)
    assert connected_shop.documents("RefundReceipt") == []
    row = SyncRecord.get(SyncRecord.source_key == "refund:7001")
    assert row.status == "flagged" and "3.00" in row.reason
    assert WebhookDelivery.get(WebhookDelivery.topic == "refunds/create").status == "flagged"


def test_invoice_mode_cash_refund_before_orders_paid_records_the_payment_then_a_refund_receipt(
        client, redis_conn, connected_shop):
    """Money went back, so it had come in: the payment is recorded first (its orders/paid is late),
    the refund leaves the bank as a RefundReceipt, and the late orders/paid adds nothing."""
    connected_shop.settings(document_type="invoice")
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    send(client, connected_shop, "refunds/create", make_refund(order, qty=1))
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    [payment] = connected_shop.documents("Payment")
    [receipt] = connected_shop.documents("RefundReceipt")
    assert connected_shop.documents("CreditMemo") == []
    assert amount(payment["TotalAmt"]) == Decimal("26.60") and amount(invoice["Balance"]) == 0
    assert amount(receipt["TotalAmt"]) == Decimal("10.80")
    assert receipt["CustomerRef"] == invoice["CustomerRef"] and invoice["DocNumber"] in receipt["PrivateNote"]
    send(client, connected_shop, "orders/paid", order)
    drain(redis_conn)
    assert len(connected_shop.documents("Payment")) == 1


def test_refund_before_the_order_was_posted_posts_the_order_first(client, redis_conn, connected_shop):
    order = simple_order()
    # the order arrived (orders/paid is not the trigger, so nothing was posted) and then the refund
    send(client, connected_shop, "orders/paid", order)
    drain(redis_conn)
    assert connected_shop.documents("SalesReceipt") == []
    send(client, connected_shop, "refunds/create", make_refund(order, qty=1))
    drain(redis_conn)
    [receipt] = connected_shop.documents("SalesReceipt")
    [doc] = connected_shop.documents("RefundReceipt")
    assert amount(receipt["TotalAmt"]) == Decimal("26.60") and amount(doc["TotalAmt"]) == Decimal("10.80")
    assert SyncRecord.get(SyncRecord.source_key == "order:9001").status == "posted"


def test_order_read_back_after_its_refund_is_posted_as_sold_and_the_refund_on_its_own_day(
        client, redis_conn, connected_shop):
    """The sale carries the order as sold; the money that went back is its own document, dated the
    refund's day, even when the only order body at hand is already net of the refund."""
    order = simple_order()
    refund = make_refund(order, qty=1)
    # Shopify only knows the order after the refund: the fetched order is already net of it
    connected_shop.shopify.add_order(connected_shop.shop.domain, order_with_refund(order, refund))
    send(client, connected_shop, "refunds/create", refund)
    drain(redis_conn)
    [receipt] = connected_shop.documents("SalesReceipt")
    assert amount(receipt["TotalAmt"]) == Decimal("26.60")  # as sold, not 26.60 - 10.80
    assert amount(receipt["TxnTaxDetail"]["TotalTax"]) == Decimal("1.60")
    assert [amount(line["SalesItemLineDetail"]["Qty"]) for line in item_lines(receipt)][0] == 2
    [doc] = connected_shop.documents("RefundReceipt")
    assert amount(doc["TotalAmt"]) == Decimal("10.80")
    assert (receipt["TxnDate"], doc["TxnDate"]) == ("2026-11-20", "2026-11-21")  # each on its own day
    assert SyncRecord.get(SyncRecord.source_key == "refund:7001").status == "posted"
    assert SyncRecord.get(SyncRecord.source_key == "order:9001").shopify_total == Decimal("26.60")
    # and the order's own webhook later (in either shape) is a duplicate too
    send(client, connected_shop, "orders/fulfilled", order_with_refund(order, refund))
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    assert len(connected_shop.documents("SalesReceipt")) == 1
    assert len(connected_shop.documents("RefundReceipt")) == 1


def test_lines_taken_off_before_payment_stay_netted_when_the_order_is_read_after_the_edit(
        client, redis_conn, connected_shop):
    """An edit that moved no money is not a money event: the document nets it, as before."""
    connected_shop.settings(document_type="invoice")
    order = dict(simple_order(), financial_status="pending")
    edit = make_refund(order, qty=1)
    edit["transactions"] = []
    after = dict(order_with_refund(order, edit), current_total_price="15.80", financial_status="pending")
    connected_shop.shopify.add_order(connected_shop.shop.domain, after)
    send(client, connected_shop, "refunds/create", edit)
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    assert amount(invoice["TotalAmt"]) == Decimal("15.80")
    assert connected_shop.documents("CreditMemo") == [] and connected_shop.documents("RefundReceipt") == []
    row = SyncRecord.get(SyncRecord.source_key == "refund:7001")
    assert row.status == "skipped" and "already reflected" in row.reason
    assert SyncRecord.get(SyncRecord.source_key == "order:9001").reflected_refunds == "7001"


def test_refund_of_an_unknown_order_waits(client, redis_conn, connected_shop):
    send(client, connected_shop, "refunds/create", make_refund(simple_order(4242, "#4242")))
    drain(redis_conn)
    delivery = WebhookDelivery.get(WebhookDelivery.topic == "refunds/create")
    assert delivery.status in ("queued", "received", "pending") and "not known yet" in (delivery.error or "")
    assert connected_shop.documents("RefundReceipt") == []


def test_lines_removed_from_an_unpaid_invoice_become_a_credit_memo_without_money(client, redis_conn, connected_shop):
    connected_shop.settings(document_type="invoice")
    order = dict(simple_order(), financial_status="pending")
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    refund = make_refund(order, qty=1)
    refund["transactions"] = []  # nothing was paid, nothing goes back
    send(client, connected_shop, "refunds/create", refund)
    drain(redis_conn)
    [memo] = connected_shop.documents("CreditMemo")
    assert amount(memo["TotalAmt"]) == Decimal("10.80")
    assert SyncRecord.get(SyncRecord.source_key == "refund:7001").status == "posted"


def unpaid_invoice(client, redis_conn, connected, **order_kwargs):
    """Invoice mode, an order posted as an open Invoice (26.60)."""
    connected.settings(document_type="invoice")
    order = dict(simple_order(**order_kwargs), financial_status="pending")
    send(client, connected, "orders/fulfilled", order)
    drain(redis_conn)
    return order


def credit_only_refund(order, refund_id=7001):
    """Lines taken off an unpaid invoice: no money moved, a 10.80 credit."""
    refund = make_refund(order, refund_id=refund_id, qty=1)
    refund["transactions"] = []
    return refund


def test_credit_memo_for_an_open_invoice_is_applied_to_it_once(client, redis_conn, connected_shop):
    order = unpaid_invoice(client, redis_conn, connected_shop)
    refund = credit_only_refund(order)
    for webhook_id in ("r1", "r2"):
        send(client, connected_shop, "refunds/create", refund, webhook_id=webhook_id)
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    [memo] = connected_shop.documents("CreditMemo")
    [application] = connected_shop.documents("Payment")
    # a zero payment: the invoice line and the credit memo line net out
    assert amount(application["TotalAmt"]) == 0 and amount(application["UnappliedAmt"]) == 0
    assert [(line["LinkedTxn"][0]["TxnType"], line["LinkedTxn"][0]["TxnId"], amount(line["Amount"]))
            for line in application["Line"]] == [("Invoice", invoice["Id"], Decimal("10.80")),
                                                  ("CreditMemo", memo["Id"], Decimal("10.80"))]
    assert application["CustomerRef"] == invoice["CustomerRef"] == memo["CustomerRef"]
    assert application["PaymentRefNum"] == memo["DocNumber"] and application["TxnDate"] == memo["TxnDate"]
    assert "[ecomflux:apply:7001]" in application["PrivateNote"]
    assert amount(invoice["Balance"]) == Decimal("15.80") and amount(invoice["TotalAmt"]) == Decimal("26.60")
    assert amount(memo["RemainingCredit"]) == 0
    row = SyncRecord.get(SyncRecord.source_key == "apply:7001")
    assert (row.kind, row.status, row.document_type, row.qbo_id) == ("apply", "posted", "Payment", application["Id"])
    assert row.shopify_total == row.qbo_total == Decimal("10.80")  # what was applied, not the zero TotalAmt
    posted = WebhookDelivery.get((WebhookDelivery.topic == "refunds/create") & (WebhookDelivery.status == "posted"))
    assert posted.error_detail["applied"]["amount"] == "10.80"
    for delivery in WebhookDelivery.select().where(WebhookDelivery.topic == "refunds/create"):
        assert dispatch.process_delivery(delivery.id, force=True) == "skipped_duplicate"
    assert len(connected_shop.documents("Payment")) == 1
    # the customer then pays what is left: the invoice closes, and the credit counts as no payment
    paid = dict(order_with_refund(order, refund), financial_status="paid", current_total_price="15.80",
                total_outstanding="0.00")
    send(client, connected_shop, "orders/paid", paid)
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    assert amount(invoice["Balance"]) == 0
    assert sorted(amount(p["TotalAmt"]) for p in connected_shop.documents("Payment")) == [0, Decimal("15.80")]


def test_credit_larger_than_the_open_balance_applies_only_the_balance(client, redis_conn, connected_shop):
    order = unpaid_invoice(client, redis_conn, connected_shop)
    partly_paid = dict(order, financial_status="partially_paid", transactions=[
        {"id": 501, "kind": "sale", "status": "success", "amount": "20.00", "gateway": "manual",
         "processed_at": "2026-11-20T16:00:00-05:00"}])
    send(client, connected_shop, "orders/paid", partly_paid)
    drain(redis_conn)
    assert amount(connected_shop.documents("Invoice")[0]["Balance"]) == Decimal("6.60")
    send(client, connected_shop, "refunds/create", credit_only_refund(order))
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    [memo] = connected_shop.documents("CreditMemo")
    assert amount(memo["TotalAmt"]) == Decimal("10.80")
    application = next(p for p in connected_shop.documents("Payment") if amount(p["TotalAmt"]) == 0)
    assert [amount(line["Amount"]) for line in application["Line"]] == [Decimal("6.60"), Decimal("6.60")]
    assert amount(invoice["Balance"]) == 0
    assert amount(memo["RemainingCredit"]) == Decimal("4.20")  # stays with the customer
    row = SyncRecord.get(SyncRecord.source_key == "apply:7001")
    assert row.status == "posted" and row.qbo_total == Decimal("6.60")


def test_credit_for_an_invoice_with_nothing_open_is_left_as_customer_credit(client, redis_conn, connected_shop):
    order = unpaid_invoice(client, redis_conn, connected_shop)
    send(client, connected_shop, "orders/paid", dict(order, financial_status="paid"))
    drain(redis_conn)
    send(client, connected_shop, "refunds/create", credit_only_refund(order))
    drain(redis_conn)
    [memo] = connected_shop.documents("CreditMemo")
    assert amount(memo["RemainingCredit"]) == Decimal("10.80")
    assert [amount(p["TotalAmt"]) for p in connected_shop.documents("Payment")] == [Decimal("26.60")]
    row = SyncRecord.get(SyncRecord.source_key == "apply:7001")
    assert row.status == "skipped" and "no open balance" in row.reason


def test_credit_application_timed_out_after_qbo_wrote_it_is_found_not_repeated(client, redis_conn, connected_shop,
                                                                                 monkeypatch):
    from ecomflux_app.models import ProcessingAttempt
    from ecomflux_app.quickbooks import client as qbo_client
    from tests.test_faults import wait_for

    order = unpaid_invoice(client, redis_conn, connected_shop)
    monkeypatch.setattr(qbo_client, "TIMEOUT", (2, 1))  # the client gives up after 1 s; QBO finishes anyway
    connected_shop.intuit.inject_fault(connected_shop.realm, "timeout", seconds=1.5, endpoint="POST payment")
    send(client, connected_shop, "refunds/create", credit_only_refund(order))
    drain(redis_conn)
    delivery = WebhookDelivery.get(WebhookDelivery.topic == "refunds/create")
    assert delivery.status == "pending"
    assert SyncRecord.get(SyncRecord.source_key == "refund:7001").status == "posted"
    assert SyncRecord.get(SyncRecord.source_key == "apply:7001").status == "posting"  # outcome unknown
    wait_for(lambda: len(connected_shop.documents("Payment")) == 1, what="the timed-out application to land")
    connected_shop.intuit.forget_request_ids(connected_shop.realm)  # only the lookup can prevent a second one
    assert dispatch.process_delivery(delivery.id) == "posted"
    [application] = connected_shop.documents("Payment")
    row = SyncRecord.get(SyncRecord.source_key == "apply:7001")
    assert (row.status, row.qbo_id, row.qbo_total) == ("posted", application["Id"], Decimal("10.80"))
    assert ProcessingAttempt.select().where((ProcessingAttempt.sync_record == row.id)
                                            & (ProcessingAttempt.outcome == "adopted")).count() == 1
    assert amount(connected_shop.documents("Invoice")[0]["Balance"]) == Decimal("15.80")


def test_worker_killed_after_the_credit_application_was_written_retries_to_one_payment(client, redis_conn,
                                                                                      connected_shop, monkeypatch):
    from tests.helpers import as_if_the_dead_worker_timed_out, run_killed_after_qbo_write

    order = unpaid_invoice(client, redis_conn, connected_shop)
    resp = post_webhook(client, "refunds/create", connected_shop.shop.domain, credit_only_refund(order))
    assert resp.status_code == 200
    delivery = WebhookDelivery.get(WebhookDelivery.topic == "refunds/create")
    run_killed_after_qbo_write(monkeypatch, delivery.id, lambda key: key.startswith("apply:"))
    assert len(connected_shop.documents("Payment")) == 1
    assert SyncRecord.get(SyncRecord.source_key == "apply:7001").status == "posting"
    connected_shop.intuit.forget_request_ids(connected_shop.realm)
    as_if_the_dead_worker_timed_out(redis_conn, delivery.id)
    assert dispatch.process_delivery(delivery.id) == "posted"
    [application] = connected_shop.documents("Payment")
    assert SyncRecord.get(SyncRecord.source_key == "apply:7001").qbo_id == application["Id"]
    assert amount(connected_shop.documents("Invoice")[0]["Balance"]) == Decimal("15.80")


def test_refund_after_the_bookkeeper_merged_the_customer_and_deactivated_the_item_still_posts(
        client, redis_conn, connected_shop):
    realm, intuit = connected_shop.realm, connected_shop.intuit
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    [receipt] = connected_shop.documents("SalesReceipt")
    [ann] = connected_shop.documents("Customer")
    kept = intuit.put_entity(realm, "Customer", {"DisplayName": "Ann Lee (retail)",
                                                 "PrimaryEmailAddr": {"Address": "ann@example.com"}})
    intuit.edit_entity(realm, "Customer", ann["Id"], status="Deleted", DisplayName="Ann Lee (deleted)")
    widget = item_lines(receipt)[0]["SalesItemLineDetail"]["ItemRef"]["value"]
    intuit.edit_entity(realm, "Item", widget, Active=False)
    send(client, connected_shop, "refunds/create", make_refund(order))
    drain(redis_conn)
    row = SyncRecord.get(SyncRecord.source_key == "refund:7001")
    assert row.status == "posted", row.reason
    [doc] = connected_shop.documents("RefundReceipt")
    assert doc["CustomerRef"]["value"] == kept["Id"]  # the record the bookkeeper kept, found by email
    assert item_lines(doc)[0]["SalesItemLineDetail"]["ItemRef"]["value"] == widget  # reactivated, not duplicated
    assert [i["Active"] for i in connected_shop.documents("Item") if i["Id"] == widget] == [True]
    assert amount(doc["TotalAmt"]) == Decimal("21.60")
