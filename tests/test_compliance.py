"""Compliance topics and app/uninstalled end to end: signed webhook -> row -> drain() -> handler."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ecomflux_app.models import (ComplianceRequest, CustomerMap, ProcessingAttempt, QboConnection, Shop, SyncRecord,
                                 WebhookDelivery)
from ecomflux_app.sync.compliance import scrub
from tests.helpers import drain, post_webhook

SHOP = "gdpr-shop.myshopify.com"
ADA = {"id": 555, "email": "ada@example.com", "phone": "+15550001111", "first_name": "Ada", "last_name": "Lovelace"}
BOB = {"id": 777, "email": "bob@example.com", "phone": "+15550002222", "first_name": "Bob", "last_name": "Builder"}


def order_body(order_id: int, customer: dict) -> dict:
    address = {"first_name": customer["first_name"], "last_name": customer["last_name"],
               "name": f"{customer['first_name']} {customer['last_name']}", "address1": "1 Main St",
               "city": "Springfield", "zip": "62701", "province_code": "IL", "country_code": "US",
               "phone": customer["phone"]}
    return {"id": order_id, "name": f"#{order_id}", "email": customer["email"], "phone": customer["phone"],
            "current_total_price": "54.00", "note": f"call {customer['first_name']} at the door",
            "customer": dict(customer), "billing_address": address, "shipping_address": address,
            "line_items": [{"id": order_id * 10, "name": "Mug - Blue", "title": "Mug", "sku": "MUG-1",
                            "price": "50.00", "quantity": 1}]}


@pytest.fixture
def shop(install_shop):
    return install_shop(SHOP)


@pytest.fixture
def stored(db, shop):
    """What we hold after syncing Ada's two orders (one refunded) and Bob's one order."""
    rows = {}
    for oid, customer in ((1001, ADA), (1002, ADA), (2001, BOB)):
        rows[oid] = WebhookDelivery.create(webhook_id=f"wh-{oid}", topic="orders/paid", shop_domain=SHOP, shop=shop,
                                           body=json.dumps(order_body(oid, customer)), status="posted",
                                           order_id=str(oid), order_name=f"#{oid}")
    rows["refund"] = WebhookDelivery.create(
        webhook_id="wh-r1", topic="refunds/create", shop_domain=SHOP, shop=shop, status="posted", order_id="1001",
        resource_id="9001", body=json.dumps({"id": 9001, "order_id": 1001, "note": "Ada changed her mind",
                                             "refund_line_items": [{"line_item_id": 10010, "quantity": 1}]}))
    for oid, qbo in ((1001, "145"), (2001, "146")):
        rows[f"sync-{oid}"] = SyncRecord.create(shop=shop, source_key=f"order:{oid}", order_id=str(oid),
                                                order_name=f"#{oid}", status="posted", document_type="SalesReceipt",
                                                qbo_id=qbo, shopify_total=Decimal("54.00"), delivery=rows[oid])
    ProcessingAttempt.create(delivery=rows[1001], sync_record=rows["sync-1001"], outcome="posted",
                             request={"Customer": {"DisplayName": "Ada Lovelace", "GivenName": "Ada",
                                                   "PrimaryEmailAddr": {"Address": "ada@example.com"}},
                                      "SalesReceipt": {"CustomerRef": {"value": "58", "name": "Ada Lovelace"},
                                                       "TotalAmt": "54.00"}},
                             response={"SalesReceipt": {"Id": "145", "TotalAmt": 54.0}})
    CustomerMap.create(shop=shop, key="hash-ada", shopify_customer_id="555", qbo_customer_id="58",
                       display_name="Ada Lovelace")
    CustomerMap.create(shop=shop, key="hash-bob", shopify_customer_id="777", qbo_customer_id="59",
                       display_name="Bob Builder")
    return rows


def body_of(webhook_id: str) -> str:
    return WebhookDelivery.get(WebhookDelivery.webhook_id == webhook_id).body


def test_scrub_keeps_ids_amounts_and_product_names():
    out = scrub(order_body(1, ADA))
    assert out["id"] == 1 and out["name"] == "#1" and out["current_total_price"] == "54.00"
    assert out["line_items"][0]["name"] == "Mug - Blue"
    assert out["customer"] == {"id": 555, "email": None, "phone": None, "first_name": None, "last_name": None}
    assert out["billing_address"]["name"] is None and out["billing_address"]["country_code"] == "US"
    assert out["email"] is None and out["note"] is None


def test_data_request_exports_only_that_customers_data(client, redis_conn, stored):
    payload = {"shop_id": 1, "shop_domain": SHOP, "orders_requested": [1001, 1002],
               "customer": {"id": 555, "email": "ada@example.com", "phone": "+15550001111"},
               "data_request": {"id": 9999}}
    assert post_webhook(client, "customers/data_request", SHOP, payload, webhook_id="dr-1").status_code == 200
    drain(redis_conn)
    delivery = WebhookDelivery.get(WebhookDelivery.webhook_id == "dr-1")
    assert delivery.status == "processed"
    request = ComplianceRequest.get(ComplianceRequest.kind == "customers/data_request")
    export = request.export
    assert request.customer_id == "555" and export["data_request_id"] == 9999
    assert export["orders"] == ["1001", "1002"]
    assert sorted(d["webhook_id"] for d in export["webhook_deliveries"]) == ["wh-1001", "wh-1002", "wh-r1"]
    assert [r["qbo_id"] for r in export["ledger"]] == ["145"]
    assert export["quickbooks_customers"] == [{"qbo_customer_id": "58", "display_name": "Ada Lovelace"}]
    assert "bob@example.com" not in json.dumps(export) and "Builder" not in json.dumps(export)


def test_customer_redact_erases_personal_data_and_keeps_accounting(client, redis_conn, stored):
    post_webhook(client, "customers/data_request", SHOP, {"shop_domain": SHOP, "customer": {"id": 555},
                                                          "orders_requested": [1001]}, webhook_id="dr-1")
    payload = {"shop_id": 1, "shop_domain": SHOP, "orders_to_redact": [1001, 1002],
               "customer": {"id": 555, "email": "ada@example.com", "phone": "+15550001111"}}
    assert post_webhook(client, "customers/redact", SHOP, payload, webhook_id="cr-1").status_code == 200
    drain(redis_conn)
    assert WebhookDelivery.get(WebhookDelivery.webhook_id == "cr-1").status == "processed"
    for webhook_id in ("wh-1001", "wh-1002", "cr-1", "dr-1"):
        text = body_of(webhook_id)
        for personal in ("ada@example.com", "Lovelace", "+15550001111", "1 Main St", "62701"):
            assert personal not in text, (webhook_id, personal)
    kept = json.loads(body_of("wh-1001"))
    assert (kept["id"], kept["current_total_price"], kept["customer"]["id"]) == (1001, "54.00", 555)
    assert kept["line_items"][0]["sku"] == "MUG-1"
    assert "Ada" not in body_of("wh-r1")  # the refund's free-text note
    assert "bob@example.com" in body_of("wh-2001")  # another customer is untouched
    attempt = ProcessingAttempt.get()
    assert "Ada" not in json.dumps(attempt.request) and "ada@" not in json.dumps(attempt.request)
    assert attempt.request["SalesReceipt"]["CustomerRef"]["value"] == "58"
    assert attempt.response["SalesReceipt"]["Id"] == "145"
    ada_map = CustomerMap.get(CustomerMap.shopify_customer_id == "555")
    assert (ada_map.display_name, ada_map.qbo_customer_id) == (None, "58")
    assert CustomerMap.get(CustomerMap.shopify_customer_id == "777").display_name == "Bob Builder"
    record = SyncRecord.get(SyncRecord.order_id == "1001")
    assert (record.qbo_id, record.shopify_total, record.status) == ("145", Decimal("54.00"), "posted")
    assert ComplianceRequest.get(ComplianceRequest.kind == "customers/data_request").export is None
    assert "redacted customer 555" in ComplianceRequest.get(ComplianceRequest.kind == "customers/redact").summary


def test_shop_redact_erases_everything_personal_for_the_shop(client, redis_conn, stored):
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP}, webhook_id="un-1")
    drain(redis_conn)
    assert post_webhook(client, "shop/redact", SHOP, {"shop_id": 1, "shop_domain": SHOP},
                        webhook_id="sr-1").status_code == 200
    drain(redis_conn)
    assert WebhookDelivery.get(WebhookDelivery.webhook_id == "sr-1").status == "processed"
    for row in WebhookDelivery.select():
        for personal in ("ada@example.com", "bob@example.com", "Lovelace", "Builder", "1 Main St"):
            assert personal not in row.body
    shop = Shop.get(Shop.domain == SHOP)
    assert (shop.status, shop.email, shop.access_token) == ("redacted", None, None) and shop.redacted_at
    assert {m.display_name for m in CustomerMap.select()} == {None}
    assert sorted(r.qbo_id for r in SyncRecord.select()) == ["145", "146"]


def test_shop_redact_for_a_reinstalled_shop_is_ignored(client, redis_conn, stored):
    post_webhook(client, "shop/redact", SHOP, {"shop_domain": SHOP}, webhook_id="sr-1")
    drain(redis_conn)
    assert WebhookDelivery.get(WebhookDelivery.webhook_id == "sr-1").status == "ignored"
    assert "bob@example.com" in body_of("wh-2001") and Shop.get(Shop.domain == SHOP).status == "active"


def test_compliance_for_an_unknown_shop_is_processed_without_error(client, db, redis_conn):
    post_webhook(client, "customers/redact", "never-installed.myshopify.com",
                 {"shop_domain": "never-installed.myshopify.com", "customer": {"id": 1, "email": "x@y.z"}},
                 webhook_id="cr-x")
    post_webhook(client, "shop/redact", "never-installed.myshopify.com", {"shop_domain": "never-installed.myshopify.com"},
                 webhook_id="sr-x")
    drain(redis_conn)
    rows = {d.webhook_id: d for d in WebhookDelivery.select()}
    assert rows["cr-x"].status == "processed" and "x@y.z" not in rows["cr-x"].body
    assert rows["sr-x"].status == "processed"


def test_uninstall_is_idempotent_and_drops_qbo_tokens(client, redis_conn, shop):
    QboConnection.create(shop=shop, realm_id="9130", company_name="Books Co", status="connected",
                         access_token="qbo-access", refresh_token="qbo-refresh")
    for webhook_id in ("un-1", "un-1", "un-2"):  # a duplicate delivery and a second real one
        assert post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP}, webhook_id=webhook_id).status_code == 200
    drain(redis_conn)
    rows = {d.webhook_id: d for d in WebhookDelivery.select()}
    assert set(rows) == {"un-1", "un-2"}
    assert rows["un-1"].status == rows["un-2"].status == "processed"
    assert rows["un-1"].attempts == rows["un-2"].attempts == 1
    assert "already uninstalled" in rows["un-2"].error
    gone = Shop.get(Shop.domain == SHOP)
    assert (gone.status, gone.access_token, gone.refresh_token) == ("uninstalled", None, None) and gone.uninstalled_at
    qbo = QboConnection.get(QboConnection.shop == gone.id)
    assert (qbo.status, qbo.access_token, qbo.refresh_token, qbo.realm_id, qbo.company_name) == (
        "not_connected", None, None, "9130", "Books Co")


def test_uninstall_for_unknown_shop_is_processed(client, db, redis_conn):
    post_webhook(client, "app/uninstalled", "ghost.myshopify.com", {"domain": "ghost.myshopify.com"},
                 webhook_id="un-g")
    drain(redis_conn)
    assert WebhookDelivery.get(WebhookDelivery.webhook_id == "un-g").status == "processed"


def test_unreadable_bodies_lose_personal_data_too(client, redis_conn, stored, shop):
    WebhookDelivery.create(webhook_id="bad-1", topic="orders/paid", shop_domain=SHOP, shop=shop, status="failed",
                           body='{"id": 1003, "email": "ADA@example.com", truncated')
    post_webhook(client, "customers/redact", SHOP, {"shop_domain": SHOP, "orders_to_redact": [],
                                                    "customer": {"id": 555, "email": "ada@example.com"}})
    drain(redis_conn)
    assert "ada@example.com" not in body_of("bad-1").lower() and '"id": 1003' in body_of("bad-1")
    post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP})
    drain(redis_conn)
    post_webhook(client, "shop/redact", SHOP, {"shop_domain": SHOP})
    drain(redis_conn)
    assert body_of("bad-1") == "[unparseable body erased by shop/redact]"
