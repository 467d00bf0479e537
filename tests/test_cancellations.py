"""orders/cancelled: void (never delete) the unpaid Invoice / Sales Receipt, or post the refunds; exactly once."""

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


def cancelled(order, refund=None):
    out = order_with_refund(order, refund) if refund else dict(order)
    out["cancelled_at"] = "2026-11-21T09:00:00-05:00"
    out["cancel_reason"] = "customer"
    return out


def test_cancelled_unpaid_invoice_is_voided_not_deleted_exactly_once(client, redis_conn, connected_shop):
    connected_shop.settings(document_type="invoice")
    order = simple_order()
    order["financial_status"] = "pending"
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    for webhook_id in ("c1", "c2"):
        send(client, connected_shop, "orders/cancelled", cancelled(order), webhook_id=webhook_id)
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")  # still there: history kept
    assert amount(invoice["TotalAmt"]) == 0 and amount(invoice["Balance"]) == 0
    assert invoice["PrivateNote"].startswith("Voided") and invoice["SyncToken"] == "1"
    assert SyncRecord.get(SyncRecord.source_key == "order:9001").status == "voided"
    assert SyncRecord.get(SyncRecord.source_key == "cancel:9001").status == "posted"
    for delivery in WebhookDelivery.select().where(WebhookDelivery.topic == "orders/cancelled"):
        assert dispatch.process_delivery(delivery.id, force=True) == "skipped_duplicate"
    assert connected_shop.documents("Invoice")[0]["SyncToken"] == "1"  # voided once


def test_cancelled_sales_receipt_without_refund_is_voided(client, redis_conn, connected_shop):
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    drain(redis_conn)
    send(client, connected_shop, "orders/cancelled", cancelled(order))
    drain(redis_conn)
    [receipt] = connected_shop.documents("SalesReceipt")
    assert amount(receipt["TotalAmt"]) == 0 and receipt["PrivateNote"].startswith("Voided")
    assert WebhookDelivery.get(WebhookDelivery.topic == "orders/cancelled").status == "posted"


def test_cancellation_after_payment_posts_the_refund_and_keeps_the_documents(client, redis_conn, connected_shop):
    connected_shop.settings(document_type="invoice")
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    send(client, connected_shop, "orders/paid", order)
    drain(redis_conn)
    refund = make_refund(order, shipping="5.00")
    send(client, connected_shop, "orders/cancelled", cancelled(order, refund))
    send(client, connected_shop, "refunds/create", refund)  # Shopify sends the refund too: one document
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    assert amount(invoice["TotalAmt"]) == Decimal("26.60")  # not voided: it was paid
    assert len(connected_shop.documents("Payment")) == 1
    # the invoice was paid and the money went back out: a Refund Receipt, not a customer credit
    assert connected_shop.documents("CreditMemo") == []
    [refund_doc] = connected_shop.documents("RefundReceipt")
    assert amount(refund_doc["TotalAmt"]) == Decimal("26.60") and invoice["DocNumber"] in refund_doc["PrivateNote"]
    assert SyncRecord.get(SyncRecord.source_key == "cancel:9001").status == "skipped"
    assert SyncRecord.get(SyncRecord.source_key == "refund:7001").status == "posted"


def test_paid_invoice_cancelled_without_refund_is_flagged_not_voided(client, redis_conn, connected_shop):
    connected_shop.settings(document_type="invoice")
    order = simple_order()
    send(client, connected_shop, "orders/fulfilled", order)
    send(client, connected_shop, "orders/paid", order)
    drain(redis_conn)
    send(client, connected_shop, "orders/cancelled", cancelled(order))
    drain(redis_conn)
    [invoice] = connected_shop.documents("Invoice")
    assert amount(invoice["TotalAmt"]) == Decimal("26.60")
    assert WebhookDelivery.get(WebhookDelivery.topic == "orders/cancelled").status == "flagged"


def test_cancellation_with_money_back_before_posting_books_the_sale_and_its_refund_once(
        client, redis_conn, connected_shop):
    """Money came in and went back: whatever order the deliveries arrive in, the books get the sale as
    sold and the refund on its own day (before, a cancellation first meant neither was ever booked)."""
    order = simple_order()
    refund = make_refund(order)
    send(client, connected_shop, "orders/cancelled", cancelled(order, refund))
    send(client, connected_shop, "refunds/create", refund)
    send(client, connected_shop, "orders/fulfilled", order)  # late
    drain(redis_conn)
    [receipt] = connected_shop.documents("SalesReceipt")
    [refund_doc] = connected_shop.documents("RefundReceipt")
    assert (amount(receipt["TotalAmt"]), amount(refund_doc["TotalAmt"])) == (Decimal("26.60"), Decimal("21.60"))
    assert (receipt["TxnDate"], refund_doc["TxnDate"]) == ("2026-11-20", "2026-11-21")
    assert SyncRecord.get(SyncRecord.source_key == "cancel:9001").status == "skipped"
    assert SyncRecord.get(SyncRecord.source_key == "refund:7001").status == "posted"


def test_cancellation_without_money_before_posting_writes_nothing_even_when_the_order_arrives_late(
        client, redis_conn, connected_shop):
    order = dict(simple_order(), financial_status="pending")
    send(client, connected_shop, "orders/cancelled", cancelled(order))
    drain(redis_conn)
    send(client, connected_shop, "orders/fulfilled", order)  # delivered after the cancellation
    drain(redis_conn)
    for entity in ("SalesReceipt", "Invoice", "RefundReceipt", "CreditMemo"):
        assert connected_shop.documents(entity) == []
    assert SyncRecord.get(SyncRecord.source_key == "cancel:9001").status == "skipped"
    assert SyncRecord.get(SyncRecord.source_key == "order:9001").status == "skipped"
    assert WebhookDelivery.get(WebhookDelivery.topic == "orders/fulfilled").status == "processed"
