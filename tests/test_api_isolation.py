"""A session token for shop A can never read or change shop B, through any route or the page."""

from __future__ import annotations

import json

from tests.api_fixtures import (SHOP_A, SHOP_B, add_delivery, add_record, bearer, connect_qbo,  # noqa: F401
                                golden_order, two_shops)


def _seed_b(shop_b):
    """Shop B: connected, custom settings, a posted and a failed order with its delivery."""
    from ecomflux_app.models import ShopSettings

    connect_qbo(shop_b, company="B Books Inc")
    ShopSettings.create(shop=shop_b, values={"document_type": "invoice", "doc_number_prefix": "BBB-"})
    order = dict(golden_order(), id=777001, name="#B777")
    failed = add_record(shop_b, 777001, "failed", delivery=add_delivery(shop_b, order), reason="B's secret failure")
    posted = add_record(shop_b, 777002, "posted")
    return failed, posted


def test_status_counts_and_company_are_per_shop(client, db, two_shops, bearer):  # noqa: F811
    shop_a, shop_b = two_shops
    _seed_b(shop_b)
    add_record(shop_a, 5001, "posted")
    a = client.get("/api/status", headers=bearer(SHOP_A)).json
    b = client.get("/api/status", headers=bearer(SHOP_B)).json
    assert a["shop"] == SHOP_A and a["qbo"]["state"] == "not_connected" and a["qbo"]["company_name"] is None
    assert a["counts"]["posted"] == 1 and a["counts"]["failed"] == 0
    assert b["qbo"]["company_name"] == "B Books Inc" and b["counts"] == dict(b["counts"], posted=1, failed=1)


def test_settings_read_and_write_stay_in_the_token_shop(client, db, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import ShopSettings

    shop_a, shop_b = two_shops
    _seed_b(shop_b)
    a = client.get("/api/settings", headers=bearer(SHOP_A)).json["settings"]
    assert a["document_type"] == "sales_receipt" and a["doc_number_prefix"] == ""
    # Naming the other shop anywhere in the request changes nothing: the token's dest decides.
    resp = client.put(f"/api/settings?shop={SHOP_B}", json={"doc_number_prefix": "AAA-"},
                      headers=dict(bearer(SHOP_A), **{"X-Shopify-Shop-Domain": SHOP_B}))
    assert resp.status_code == 200
    assert ShopSettings.get(ShopSettings.shop == shop_b).values == {"document_type": "invoice",
                                                                    "doc_number_prefix": "BBB-"}
    assert ShopSettings.get(ShopSettings.shop == shop_a).values["doc_number_prefix"] == "AAA-"


def test_activity_lists_only_the_token_shop(client, db, two_shops, bearer):  # noqa: F811
    shop_a, shop_b = two_shops
    _seed_b(shop_b)
    add_record(shop_a, 5001, "posted")
    body = client.get(f"/api/orders?shop={SHOP_B}", headers=bearer(SHOP_A)).json
    assert [o["order_id"] for o in body["orders"]] == ["5001"] and body["total"] == 1
    assert client.get("/api/orders?q=777001", headers=bearer(SHOP_A)).json["orders"] == []
    assert "B's secret failure" not in json.dumps(client.get("/api/orders", headers=bearer(SHOP_A)).json)


def test_retry_of_another_shops_order_is_not_found(client, db, redis_conn, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import WebhookDelivery

    shop_a, shop_b = two_shops
    failed, _ = _seed_b(shop_b)
    resp = client.post("/api/orders/777001/retry", headers=bearer(SHOP_A))
    assert resp.status_code == 404
    assert WebhookDelivery.get_by_id(failed.delivery_id).status == "failed"
    assert redis_conn.keys("rq:queue:*") == []


def test_preview_cannot_read_another_shops_order(client, db, two_shops, bearer):  # noqa: F811
    shop_a, shop_b = two_shops
    _seed_b(shop_b)
    resp = client.post("/api/preview", json={"order_id": "777001"}, headers=bearer(SHOP_A))
    assert resp.status_code == 422 and "order_id" in resp.json["errors"]
    # B itself can preview it, with B's settings.
    own = client.post("/api/preview", json={"order_id": "777001"}, headers=bearer(SHOP_B))
    assert own.status_code == 200 and own.json["document_type"] == "Invoice"
    assert own.json["document"]["DocNumber"].startswith("BBB-")


def test_options_connect_and_disconnect_act_on_the_token_shop_only(client, db, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import QboConnection

    shop_a, shop_b = two_shops
    _seed_b(shop_b)
    resp = client.get("/api/options", headers=bearer(SHOP_A))
    assert resp.status_code == 409 and resp.json["state"] == "not_connected"  # A is not connected, B is
    client.post("/api/qbo/disconnect", headers=bearer(SHOP_A))
    client.post("/api/qbo/connect", headers=bearer(SHOP_A))
    b = QboConnection.get(QboConnection.shop == shop_b)
    assert b.status == "connected" and b.company_name == "B Books Inc"


def test_page_for_shop_b_cannot_be_opened_with_shop_a_token(client, two_shops, shopify_sandbox):  # noqa: F811
    resp = client.get("/", query_string={"shop": SHOP_B, "id_token": shopify_sandbox.session_token(SHOP_A)})
    assert resp.status_code == 401 and resp.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert b"Shop B" not in resp.data and b"Shop A" not in resp.data
    # frame-ancestors names the verified shop, never the one asked for in the query string.
    assert SHOP_B not in resp.headers["Content-Security-Policy"]


def test_uninstalled_shop_token_cannot_use_the_api(client, db, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import Shop

    Shop.update(status="uninstalled", access_token=None).where(Shop.domain == SHOP_A).execute()
    assert client.get("/api/settings", headers=bearer(SHOP_A)).status_code == 409
    assert client.get("/api/orders", headers=bearer(SHOP_A)).status_code == 409
    assert client.get("/api/status", headers=bearer(SHOP_A)).json["installed"] is False
