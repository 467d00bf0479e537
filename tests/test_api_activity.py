"""Activity (paginated ledger), retry through the delivery path, preview, counts and the dev token shim."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from tests.api_fixtures import (SHOP_A, add_delivery, add_record, bearer, connect_qbo,  # noqa: F401
                                golden_order, two_shops)


def test_activity_is_newest_first_and_paginated(client, db, two_shops, bearer):  # noqa: F811
    shop_a, _ = two_shops
    for n in range(25):
        add_record(shop_a, 1000 + n, "posted", age_minutes=100 - n)
    first = client.get("/api/orders?per_page=10", headers=bearer(SHOP_A)).json
    assert (first["total"], first["pages"], first["page"]) == (25, 3, 1)
    assert [o["order_id"] for o in first["orders"][:2]] == ["1024", "1023"]
    last = client.get("/api/orders?per_page=10&page=3", headers=bearer(SHOP_A)).json
    assert [o["order_id"] for o in last["orders"]] == [str(n) for n in range(1004, 999, -1)]
    seen = set()
    for page in (1, 2, 3):
        seen |= {o["order_id"] for o in client.get(f"/api/orders?per_page=10&page={page}",
                                                    headers=bearer(SHOP_A)).json["orders"]}
    assert len(seen) == 25
    # Out-of-range and junk paging parameters are clamped, never a 500.
    assert client.get("/api/orders?per_page=5000&page=-3", headers=bearer(SHOP_A)).json["per_page"] == 100
    assert client.get("/api/orders?page=abc", headers=bearer(SHOP_A)).json["page"] == 1


def test_activity_row_shows_status_document_amounts_and_reason(client, db, two_shops, bearer):  # noqa: F811
    from decimal import Decimal

    shop_a, _ = two_shops
    add_record(shop_a, 2001, "posted")
    add_record(shop_a, 2002, "flagged", shopify_total=Decimal("59.90"), qbo_total=Decimal("59.89"),
               reason="QBO total 59.89 differs from Shopify 59.90")
    add_record(shop_a, 2003, "waiting_reconnect")
    add_record(shop_a, 2004, "failed", reason="Duplicate Document Number Error", error_code="6140",
               error_element="DocNumber")
    rows = {o["order_id"]: o for o in client.get("/api/orders", headers=bearer(SHOP_A)).json["orders"]}
    assert rows["2001"]["status"] == "posted" and rows["2001"]["qbo_doc_number"] == "SH-2001"
    assert rows["2001"]["shopify_total"] == "10.00" and rows["2001"]["can_retry"] is False
    assert rows["2002"]["status"] == "flagged" and rows["2002"]["qbo_total"] == "59.89"
    assert rows["2002"]["reason"].startswith("QBO total") and rows["2002"]["can_retry"] is True
    assert rows["2003"]["status"] == "pending" and rows["2003"]["ledger_status"] == "waiting_reconnect"
    assert (rows["2004"]["error_code"], rows["2004"]["error_element"]) == ("6140", "DocNumber")


def test_status_filter(client, db, two_shops, bearer):  # noqa: F811
    shop_a, _ = two_shops
    add_record(shop_a, 1, "posted")
    add_record(shop_a, 2, "failed")
    add_record(shop_a, 3, "posting")
    ids = lambda s: [o["order_id"] for o in client.get(f"/api/orders?status={s}", headers=bearer(SHOP_A)).json["orders"]]  # noqa: E731
    assert ids("failed") == ["2"] and ids("pending") == ["3"] and ids("posted") == ["1"]
    resp = client.get("/api/orders?status=bogus", headers=bearer(SHOP_A))
    assert resp.status_code == 422 and "status" in resp.json["errors"]


def test_counts_and_last_sync(client, db, two_shops, bearer):  # noqa: F811
    shop_a, _ = two_shops
    add_record(shop_a, 1, "posted", age_minutes=30)
    newest = add_record(shop_a, 2, "posted", age_minutes=5)
    add_record(shop_a, 3, "flagged")
    add_record(shop_a, 4, "waiting_reconnect")
    body = client.get("/api/status", headers=bearer(SHOP_A)).json
    assert {k: body["counts"][k] for k in ("posted", "pending", "flagged", "failed", "total")} == {
        "posted": 2, "pending": 1, "flagged": 1, "failed": 0, "total": 4}
    assert body["last_sync_at"] == newest.posted_at.isoformat() + "Z"


def test_retry_requeues_the_orders_delivery(client, db, redis_conn, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import WebhookDelivery
    from ecomflux_app.work_queue import get_queue, shop_queue_name
    from ecomflux_app.sync.sweeper import job_id_for

    shop_a, _ = two_shops
    order = dict(golden_order(), id=3001, name="#3001")
    delivery = add_delivery(shop_a, order, status="failed")
    add_record(shop_a, 3001, "failed", delivery=delivery, reason="QuickBooks was down")
    resp = client.post("/api/orders/3001/retry", headers=bearer(SHOP_A))
    assert resp.status_code == 202 and resp.json["delivery_id"] == delivery.id
    row = WebhookDelivery.get_by_id(delivery.id)
    assert row.status != "failed"
    if row.status == "queued":
        assert job_id_for(delivery.id) in get_queue(redis_conn, shop_queue_name(SHOP_A)).job_ids


def test_retry_finds_the_delivery_by_order_id_when_the_ledger_has_none(client, db, redis_conn, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import WebhookDelivery

    shop_a, _ = two_shops
    delivery = add_delivery(shop_a, dict(golden_order(), id=3002), status="flagged")
    add_record(shop_a, 3002, "flagged")
    assert client.post("/api/orders/3002/retry", headers=bearer(SHOP_A)).status_code == 202
    assert WebhookDelivery.get_by_id(delivery.id).status != "flagged"


@pytest.mark.parametrize("status", ["posted", "posting", "waiting_reconnect"])
def test_only_failed_or_flagged_orders_can_be_retried(client, db, redis_conn, two_shops, bearer, status):  # noqa: F811
    shop_a, _ = two_shops
    add_record(shop_a, 4001, status, delivery=add_delivery(shop_a, dict(golden_order(), id=4001), status="posted"))
    resp = client.post("/api/orders/4001/retry", headers=bearer(SHOP_A))
    assert resp.status_code == 409
    assert redis_conn.keys("rq:queue:*") == []


def test_retry_without_any_delivery_is_409_and_unknown_order_404(client, db, two_shops, bearer):  # noqa: F811
    shop_a, _ = two_shops
    add_record(shop_a, 4002, "failed")
    assert client.post("/api/orders/4002/retry", headers=bearer(SHOP_A)).status_code == 409
    assert client.post("/api/orders/999999/retry", headers=bearer(SHOP_A)).status_code == 404


def test_preview_of_pasted_order_json(client, two_shops, bearer):  # noqa: F811
    order = golden_order("discounted_shipping")
    resp = client.post("/api/preview", json={"order_json": json.dumps(order)}, headers=bearer(SHOP_A))
    assert resp.status_code == 200
    body = resp.json
    assert body["ok"] is True and body["document_type"] == "SalesReceipt" and body["document_label"] == "Sales Receipt"
    assert body["summary"]["document_total"] == order["current_total_price"]
    assert any(line.get("DetailType") == "SalesItemLineDetail" for line in body["document"]["Line"])
    # Amounts are exact decimals in the JSON text, never floats rounded on the way.
    assert '"Amount": ' in resp.data.decode() or '"Amount":' in resp.data.decode()


def test_preview_uses_saved_settings_and_unsaved_overrides(client, two_shops, bearer):  # noqa: F811
    order = golden_order("discounted_shipping")
    client.put("/api/settings", json={"document_type": "invoice", "doc_number_prefix": "WEB-"}, headers=bearer(SHOP_A))
    saved = client.post("/api/preview", json={"order": order}, headers=bearer(SHOP_A)).json
    assert saved["document_type"] == "Invoice" and saved["document"]["DocNumber"].startswith("WEB-")
    override = client.post("/api/preview", json={"order": order, "settings": {"document_type": "sales_receipt"}},
                           headers=bearer(SHOP_A)).json
    assert override["document_type"] == "SalesReceipt"
    bad = client.post("/api/preview", json={"order": order, "settings": {"document_type": "bill"}},
                      headers=bearer(SHOP_A))
    assert bad.status_code == 422 and "document_type" in bad.json["errors"]


def test_preview_of_a_stored_order_by_id(client, db, two_shops, bearer):  # noqa: F811
    shop_a, _ = two_shops
    add_delivery(shop_a, dict(golden_order("guest_pos"), id=5555, name="#5555"), status="posted")
    resp = client.post("/api/preview", json={"order_id": "5555"}, headers=bearer(SHOP_A))
    assert resp.status_code == 200 and "5555" in json.dumps(resp.json["document"])


@pytest.mark.parametrize("body,field", [
    ({}, "order"),
    ({"order_json": "{not json"}, "order_json"),
    ({"order_json": "[1, 2]"}, "order"),
    ({"order_id": "123456789"}, "order_id"),
])
def test_preview_input_errors_are_per_field(client, two_shops, bearer, body, field):  # noqa: F811
    resp = client.post("/api/preview", json=body, headers=bearer(SHOP_A))
    assert resp.status_code == 422 and field in resp.json["errors"]


def test_preview_of_untranslatable_order_is_an_answer_not_a_500(client, two_shops, bearer):  # noqa: F811
    resp = client.post("/api/preview", json={"order": {"id": 1, "line_items": "nonsense"}}, headers=bearer(SHOP_A))
    assert resp.status_code in (200, 422)
    assert resp.json.get("ok") is False or "errors" in resp.json


def test_connect_answers_clearly_when_quickbooks_cannot_start(client, two_shops, bearer, monkeypatch):  # noqa: F811
    import requests

    from ecomflux_app.quickbooks import oauth

    def unreachable(*_args):
        # What AuthClient raises when Intuit's discovery document cannot be fetched.
        raise requests.ConnectionError("discovery document unreachable")

    monkeypatch.setattr(oauth, "auth_client", unreachable)
    resp = client.post("/api/qbo/connect", headers=bearer(SHOP_A))
    assert resp.status_code == 503
    assert resp.json["error"] == "QuickBooks could not be reached to start the connection; try again"


def test_reconnect_required_is_reported(client, db, two_shops, bearer):  # noqa: F811
    shop_a, _ = two_shops
    connect_qbo(shop_a, status="reconnect_required")
    qbo = client.get("/api/status", headers=bearer(SHOP_A)).json["qbo"]
    assert qbo["state"] == "reconnect_required" and qbo["reconnect_required"] is True
    assert qbo["reason"] == "invalid_grant"
    assert client.get("/api/options", headers=bearer(SHOP_A)).status_code == 409


# -- dev shim ---------------------------------------------------------------------------------------
def _dev_app(app, dev_mode: bool) -> Flask:
    """Only the dev blueprint, on a throwaway app (the session app runs with DEV_MODE off)."""
    from ecomflux_app.web import dev

    dev_app = Flask("dev-shim-test")
    dev_app.config.update(SHOPIFY_API_KEY=app.config["SHOPIFY_API_KEY"],
                          SHOPIFY_API_SECRET=app.config["SHOPIFY_API_SECRET"], DEV_MODE=dev_mode)
    dev_app.register_blueprint(dev.bp)
    return dev_app


def test_dev_routes_are_absent_outside_dev_mode(client):
    assert client.get("/dev").status_code == 404
    assert client.get("/dev/session-token").status_code == 404


def test_dev_shim_mints_tokens_our_verifier_accepts(app):
    from urllib.parse import parse_qs, urlparse

    from ecomflux_app.shopify.session_token import verify_session_token

    dev_client = _dev_app(app, True).test_client()
    resp = dev_client.get("/dev")
    assert resp.status_code == 302
    query = parse_qs(urlparse(resp.headers["Location"]).query)
    assert query["shop"] == ["demo-shop.myshopify.com"] and query["host"][0]
    key, secret = app.config["SHOPIFY_API_KEY"], app.config["SHOPIFY_API_SECRET"]
    assert verify_session_token(query["id_token"][0], key, [secret]).shop == "demo-shop.myshopify.com"
    fresh = dev_client.get("/dev/session-token?shop=other-demo.myshopify.com").json
    assert verify_session_token(fresh["session_token"], key, [secret]).shop == "other-demo.myshopify.com"
    assert dev_client.get("/dev/session-token?shop=evil.example.com").status_code == 400
    # Registered by mistake without DEV_MODE, the routes still refuse.
    assert _dev_app(app, False).test_client().get("/dev/session-token").status_code == 404
