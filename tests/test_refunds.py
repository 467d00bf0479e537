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


def test_invoice_mode_refund_is_a_credit_memo(client, redis_conn, connected_shop):
    connected_shop.settings(document_type="invoice")
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    send(client, connected_shop, "refunds/create", make_refund(order, qty=1))
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    [memo] = connected_shop.documents("CreditMemo")
    assert connected_shop.documents("RefundReceipt") == []
    assert amount(memo["TotalAmt"]) == Decimal("10.80")
    assert memo["CustomerRef"] == invoice["CustomerRef"]
    assert invoice["DocNumber"] in memo["PrivateNote"]


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


def test_refund_already_reflected_in_the_order_document_is_not_posted_again(client, redis_conn, connected_shop):
    order = simple_order()
    refund = make_refund(order, qty=1)
    # Shopify only knows the order after the refund: the fetched order is already net of it
    connected_shop.shopify.add_order(connected_shop.shop.domain, order_with_refund(order, refund))
    send(client, connected_shop, "refunds/create", refund)
    drain(redis_conn)
    [receipt] = connected_shop.documents("SalesReceipt")
    assert amount(receipt["TotalAmt"]) == Decimal("15.80")  # 26.60 - 10.80
    assert connected_shop.documents("RefundReceipt") == []
    assert SyncRecord.get(SyncRecord.source_key == "refund:7001").status == "skipped"
    # and the order's own webhook later is a duplicate too
    send(client, connected_shop, "orders/fulfilled", order_with_refund(order, refund))
    drain(redis_conn)
    assert len(connected_shop.documents("SalesReceipt")) == 1


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
