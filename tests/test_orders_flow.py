"""Orders end to end: signed webhook -> intake -> worker -> strict QBO sandbox, exactly once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ecomflux_app.models import CustomerMap, ProcessingAttempt, SyncRecord, WebhookDelivery, utcnow
from ecomflux_app.sync import dispatch, posting
from ecomflux_app.sync.sweeper import sweep
from tests.fixtures_flow import connect_shop_to_company, simple_order
from tests.helpers import drain, post_webhook

TOPIC = "orders/fulfilled"


def send(client, connected, order, topic=TOPIC, webhook_id=None):
    resp = post_webhook(client, topic, connected.shop.domain, order, webhook_id=webhook_id)
    assert resp.status_code == 200, resp.data
    return resp


def qbo_calls(connected) -> int:
    return connected.intuit.counters(connected.realm)["requests"]


def test_fulfilled_order_posts_one_sales_receipt_matching_shopify(client, redis_conn, connected_shop):
    send(client, connected_shop, simple_order())
    drain(redis_conn)
    [doc] = connected_shop.documents("SalesReceipt")
    assert Decimal(str(doc["TotalAmt"])) == Decimal("26.60")
    item_lines = [line for line in doc["Line"] if line.get("DetailType") == "SalesItemLineDetail"]
    widget = next(line for line in item_lines if line["SalesItemLineDetail"].get("Qty") == 2)
    assert Decimal(str(widget["SalesItemLineDetail"]["UnitPrice"])) == Decimal("10.00")
    record = SyncRecord.get()
    assert (record.status, record.document_type, record.qbo_id) == ("posted", "SalesReceipt", str(doc["Id"]))
    assert record.shopify_total == record.qbo_total == Decimal("26.60")
    assert "ecomflux:order:9001" in doc["PrivateNote"]
    assert WebhookDelivery.get().status == "posted"


def test_duplicate_deliveries_and_replays_create_one_document(client, redis_conn, connected_shop):
    order = simple_order()
    for webhook_id in ("a", "b", "c"):
        send(client, connected_shop, order, webhook_id=webhook_id)
    send(client, connected_shop, order, webhook_id="a")  # the same delivery id again: deduplicated at intake
    drain(redis_conn)
    statuses = sorted(d.status for d in WebhookDelivery.select())
    assert statuses == ["posted", "skipped_duplicate", "skipped_duplicate"]
    for delivery in WebhookDelivery.select():  # support replays every one of them
        assert dispatch.process_delivery(delivery.id, force=True) == "skipped_duplicate"
    assert len(connected_shop.documents("SalesReceipt")) == 1


def test_invoice_mode_posts_an_invoice_and_setting_change_affects_later_orders(client, redis_conn, connected_shop):
    send(client, connected_shop, simple_order(9001, "#9001"))
    drain(redis_conn)
    connected_shop.settings(document_type="invoice")
    send(client, connected_shop, simple_order(9002, "#9002"))
    drain(redis_conn)
    assert len(connected_shop.documents("SalesReceipt")) == 1
    [invoice] = connected_shop.documents("Invoice")
    assert Decimal(str(invoice["TotalAmt"])) == Decimal("26.60")


def test_repeat_buyer_rolls_up_under_one_customer_and_costs_one_call(client, redis_conn, connected_shop):
    send(client, connected_shop, simple_order(9001, "#9001"))
    drain(redis_conn)
    before = qbo_calls(connected_shop)
    send(client, connected_shop, simple_order(9002, "#9002"))
    drain(redis_conn)
    assert qbo_calls(connected_shop) - before == 1  # cached customer and item: only the document write
    assert len(connected_shop.intuit.entities(connected_shop.realm, "Customer")) == 1
    docs = connected_shop.documents("SalesReceipt")
    assert len({d["CustomerRef"]["value"] for d in docs}) == 1
    assert CustomerMap.select().count() >= 1


def test_balance_mismatch_is_flagged_with_both_figures_and_not_posted(client, redis_conn, connected_shop):
    order = simple_order()
    order["current_total_price"] = "26.61"
    send(client, connected_shop, order)
    drain(redis_conn)
    assert connected_shop.documents("SalesReceipt") == []
    record = SyncRecord.get()
    assert record.status == "flagged" and record.shopify_total == Decimal("26.61")
    assert record.qbo_total == Decimal("26.60") and record.reason
    assert WebhookDelivery.get().status == "flagged"


def test_crash_after_qbo_write_adopts_the_document_instead_of_creating_another(client, redis_conn, connected_shop,
                                                                             monkeypatch):
    """The worker dies between QBO's answer and the ledger update: recovery finds the document."""
    real_posted = posting._posted

    class WorkerKilled(BaseException):
        pass

    def die(*_args, **_kwargs):
        raise WorkerKilled()

    monkeypatch.setattr(posting, "_posted", die)
    send(client, connected_shop, simple_order())
    delivery = WebhookDelivery.get()
    with pytest.raises(WorkerKilled):
        dispatch.process_delivery(delivery.id)
    assert SyncRecord.get().status == "posting" and len(connected_shop.documents("SalesReceipt")) == 1
    monkeypatch.setattr(posting, "_posted", real_posted)
    # The dead worker's lease runs out; the sweeper hands the row to another worker.
    WebhookDelivery.update(lease_until=utcnow() - timedelta(seconds=1)).execute()
    redis_conn.flushdb()
    assert sweep(redis_conn, stale_after_seconds=0) == 1
    drain(redis_conn)
    assert len(connected_shop.documents("SalesReceipt")) == 1
    record = SyncRecord.get()
    assert record.status == "posted"
    assert ProcessingAttempt.select().where(ProcessingAttempt.outcome == "adopted").count() == 1


def test_throttling_parks_the_order_then_it_posts(client, redis_conn, connected_shop):
    connected_shop.intuit.inject_fault(connected_shop.realm, "429", count=1)
    send(client, connected_shop, simple_order())
    drain(redis_conn)
    delivery = WebhookDelivery.get()
    assert delivery.status == "pending" and "throttl" in delivery.error.lower()
    assert delivery.next_attempt_at > utcnow() + timedelta(seconds=30)
    assert connected_shop.documents("SalesReceipt") == []
    # A minute later (time moved by hand): the realm pause is over and the retry is due.
    redis_conn.delete(f"ecomflux:qbo:pause:{connected_shop.realm}")
    WebhookDelivery.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    assert sweep(redis_conn, 60) == 1
    drain(redis_conn)
    assert WebhookDelivery.get().status == "posted" and len(connected_shop.documents("SalesReceipt")) == 1


def test_revoked_connection_parks_orders_until_reconnect_then_posts_once(client, redis_conn, connected_shop):
    from ecomflux_app.models import QboConnection
    from ecomflux_app.sync.sweeper import resume_parked

    connected_shop.intuit.revoke_all(connected_shop.realm)
    QboConnection.update(access_token_expires_at=utcnow() - timedelta(minutes=1)).execute()
    send(client, connected_shop, simple_order(9001, "#9001"))
    drain(redis_conn)
    assert QboConnection.get().status == "reconnect_required"
    send(client, connected_shop, simple_order(9002, "#9002"))
    drain(redis_conn)
    assert {d.status for d in WebhookDelivery.select()} == {"pending"}
    assert connected_shop.documents("SalesReceipt") == []
    connect_shop_to_company(connected_shop.shop, connected_shop.intuit, connected_shop.realm)  # admin reconnects
    assert resume_parked(connected_shop.shop.domain) == 2
    drain(redis_conn)
    assert len(connected_shop.documents("SalesReceipt")) == 2
    assert {d.status for d in WebhookDelivery.select()} == {"posted"}


def test_docnumber_taken_by_someone_else_fails_with_qbo_message_and_element(client, redis_conn, connected_shop):
    from ecomflux_app.translate.order import doc_number_for

    connected_shop.intuit.put_entity(connected_shop.realm, "SalesReceipt",
                                     {"DocNumber": doc_number_for("#9001"), "PrivateNote": "typed by the bookkeeper"})
    send(client, connected_shop, simple_order())
    drain(redis_conn)
    record = SyncRecord.get()
    assert record.status == "failed" and record.error_element == "DocNumber"
    assert "already used" in record.reason
    assert WebhookDelivery.get().status == "failed"


def test_display_name_taken_by_a_vendor_gets_the_next_candidate(client, redis_conn, connected_shop):
    connected_shop.intuit.put_entity(connected_shop.realm, "Vendor", {"DisplayName": "Ann Lee"})
    send(client, connected_shop, simple_order())
    drain(redis_conn)
    [customer] = connected_shop.intuit.entities(connected_shop.realm, "Customer")
    assert customer["DisplayName"] != "Ann Lee" and customer["DisplayName"].startswith("Ann Lee")
    assert SyncRecord.get().status == "posted"


def _same_named_buyer(order_id: int, email: str, zip_code: str) -> dict:
    order = simple_order(order_id, f"#{order_id}", email=email)
    order["customer"]["id"] = order_id  # another Shopify customer
    for address in ("billing_address", "shipping_address"):
        order[address]["zip"] = zip_code
    return order


def test_buyers_who_share_a_name_get_their_own_customers(client, redis_conn, connected_shop):
    """Different people named Ann Lee (the plain name taken by a vendor) each get a QBO customer of their own."""
    connected_shop.intuit.put_entity(connected_shop.realm, "Vendor", {"DisplayName": "Ann Lee"})
    buyers = [(9001, "ann.one@example.com", "12207"), (9002, "ann.two@example.com", "10001"),
              (9003, "ann.three@example.com", "94105")]
    for order_id, email, zip_code in buyers:
        send(client, connected_shop, _same_named_buyer(order_id, email, zip_code))
        drain(redis_conn)
    customers = {c["Id"]: c for c in connected_shop.intuit.entities(connected_shop.realm, "Customer")}
    assert sorted(c["PrimaryEmailAddr"]["Address"] for c in customers.values()) == sorted(b[1] for b in buyers)
    assert len({c["DisplayName"] for c in customers.values()}) == 3
    for doc in connected_shop.documents("SalesReceipt"):
        order_email = next(b[1] for b in buyers if f"ecomflux:order:{b[0]}" in doc["PrivateNote"])
        assert customers[doc["CustomerRef"]["value"]]["PrimaryEmailAddr"]["Address"] == order_email


def test_a_name_known_to_be_taken_costs_no_refused_create(client, redis_conn, connected_shop):
    send(client, connected_shop, _same_named_buyer(9001, "ann.one@example.com", "12207"))
    drain(redis_conn)
    before = connected_shop.intuit.counters(connected_shop.realm)
    refused = before["by_endpoint"].get("POST customer", 0)
    send(client, connected_shop, _same_named_buyer(9002, "ann.two@example.com", "10001"))
    drain(redis_conn)
    after = connected_shop.intuit.counters(connected_shop.realm)
    # The customer directory knows the name is taken: one create under the next free name, the document.
    assert after["requests"] - before["requests"] == 2
    assert after["by_endpoint"].get("POST customer", 0) - refused == 1
    names = sorted(c["DisplayName"] for c in connected_shop.intuit.entities(connected_shop.realm, "Customer"))
    assert names == ["Ann Lee", "Ann Lee (2)"]


def test_same_name_at_the_same_postal_code_rolls_up_even_under_a_suffixed_name(client, redis_conn, connected_shop):
    """Matching by name and postal code also knows the names we suffixed ("Ann Lee (2)") for that person."""
    connected_shop.intuit.put_entity(connected_shop.realm, "Vendor", {"DisplayName": "Ann Lee"})
    send(client, connected_shop, _same_named_buyer(9001, "ann.one@example.com", "12207"))
    drain(redis_conn)
    CustomerMap.delete().execute()  # as after a reinstall: only QBO remembers her
    order = _same_named_buyer(9002, None, "12207")
    order["customer"]["id"] = 9001
    send(client, connected_shop, order)
    drain(redis_conn)
    [customer] = connected_shop.intuit.entities(connected_shop.realm, "Customer")
    assert customer["DisplayName"] == "Ann Lee (2)"
    assert {d["CustomerRef"]["value"] for d in connected_shop.documents("SalesReceipt")} == {customer["Id"]}


def test_apostrophes_and_colons_in_names(client, redis_conn, connected_shop):
    order = simple_order(email="sean.o'brien@example.com", first="Seán", last="O'Brien", sku=None,
                         title="Rain Shell: Alpine")
    send(client, connected_shop, order)
    drain(redis_conn)
    send(client, connected_shop, simple_order(9002, "#9002", email="sean.o'brien@example.com", first="Seán",
                                              last="O'Brien", sku=None, title="Rain Shell: Alpine"))
    drain(redis_conn)
    assert len(connected_shop.intuit.entities(connected_shop.realm, "Customer")) == 1
    names = [i["Name"] for i in connected_shop.intuit.entities(connected_shop.realm, "Item")]
    assert all(":" not in n for n in names)
    assert SyncRecord.select().where(SyncRecord.status == "posted").count() == 2


def test_gift_card_redemption_reads_transactions_and_posts_what_was_paid(client, redis_conn, connected_shop):
    """Webhook bodies carry no transactions: the order is read once via GraphQL so the gift card
    part is booked against the liability instead of as money deposited."""
    order = simple_order()
    order["payment_gateway_names"] = ["gift_card", "shopify_payments"]
    stored = dict(order, transactions=[
        {"id": 1, "kind": "sale", "status": "success", "gateway": "gift_card", "amount": "10.00"},
        {"id": 2, "kind": "sale", "status": "success", "gateway": "shopify_payments", "amount": "16.60"},
    ])
    connected_shop.shopify.add_order(connected_shop.shop.domain, stored)
    send(client, connected_shop, order)
    drain(redis_conn)
    [doc] = connected_shop.documents("SalesReceipt")
    assert Decimal(str(doc["TotalAmt"])) == Decimal("16.60")  # 26.60 charged, 10.00 of it by gift card
    record = SyncRecord.get()
    assert record.status == "posted" and record.shopify_total == Decimal("26.60")
