"""GET/PUT /api/settings: defaults, per-field validation (422), persistence, company-list checks."""

from __future__ import annotations

import json

import pytest

from tests.api_fixtures import SHOP_A, bearer, connect_qbo, two_shops  # noqa: F401


def test_defaults_before_anything_is_saved(client, two_shops, bearer):  # noqa: F811
    body = client.get("/api/settings", headers=bearer(SHOP_A)).json
    assert body["saved"] is False
    assert body["settings"]["document_type"] == "sales_receipt" and body["settings"]["trigger"] == "fulfilled"
    assert body["choices"]["document_type"] == ["sales_receipt", "invoice"]
    assert "company" not in body["settings"]


def test_save_then_read_back(client, db, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import ShopSettings

    values = {"document_type": "invoice", "trigger": "paid", "deposit_account_id": "35",
              "income_account_id": "79", "doc_number_prefix": "SH-", "sync_start_date": "2026-11-01",
              "customer_matching": "email", "class_id": "", "department_id": None}
    resp = client.put("/api/settings", json=values, headers=bearer(SHOP_A))
    assert resp.status_code == 200 and resp.json["saved"] is True
    again = client.get("/api/settings", headers=bearer(SHOP_A)).json["settings"]
    for key in ("document_type", "trigger", "deposit_account_id", "income_account_id", "doc_number_prefix",
                "sync_start_date", "customer_matching"):
        assert again[key] == values[key]
    assert again["class_id"] is None
    # What the sync reads back is the same SyncSettings.
    from ecomflux_app.translate.settings import SyncSettings

    stored = SyncSettings.from_values(ShopSettings.get(ShopSettings.shop == two_shops[0]).values)
    assert stored.document_type == "invoice" and stored.sync_start_date.isoformat() == "2026-11-01"


def test_partial_update_keeps_other_fields(client, two_shops, bearer):  # noqa: F811
    client.put("/api/settings", json={"document_type": "invoice", "doc_number_prefix": "X-"}, headers=bearer(SHOP_A))
    client.put("/api/settings", json={"trigger": "paid"}, headers=bearer(SHOP_A))
    s = client.get("/api/settings", headers=bearer(SHOP_A)).json["settings"]
    assert (s["document_type"], s["doc_number_prefix"], s["trigger"]) == ("invoice", "X-", "paid")


@pytest.mark.parametrize("values,field", [
    ({"document_type": "bill"}, "document_type"),
    ({"trigger": "created"}, "trigger"),
    ({"tax_handling": "ignore"}, "tax_handling"),
    ({"customer_matching": "phone"}, "customer_matching"),
    ({"doc_number_prefix": "WAY-TOO-LONG-PREFIX"}, "doc_number_prefix"),
    ({"doc_number_prefix": "A\nB"}, "doc_number_prefix"),
    ({"sync_start_date": "31/12/2026"}, "sync_start_date"),
    ({"deposit_account_id": "35; DROP TABLE"}, "deposit_account_id"),
    ({"tax_handling": "tax_line"}, "tax_item_id"),
    ({"customer_matching": "none"}, "default_customer_id"),
    ({"colour": "blue"}, "colour"),
    ({"company": {"country": "GB"}}, "company"),
])
def test_invalid_values_get_422_with_the_field_named(client, db, two_shops, bearer, values, field):  # noqa: F811
    from ecomflux_app.models import ShopSettings

    resp = client.put("/api/settings", json=values, headers=bearer(SHOP_A))
    assert resp.status_code == 422
    assert field in resp.json["errors"] and resp.json["errors"][field]
    assert ShopSettings.select().count() == 0  # nothing half-saved


def test_several_errors_are_reported_together(client, two_shops, bearer):  # noqa: F811
    resp = client.put("/api/settings", json={"document_type": "x", "sync_start_date": "soon",
                                             "doc_number_prefix": "0123456789AB"}, headers=bearer(SHOP_A))
    assert resp.status_code == 422
    assert set(resp.json["errors"]) == {"document_type", "sync_start_date", "doc_number_prefix"}


def test_non_object_body_is_400(client, two_shops, bearer):  # noqa: F811
    resp = client.put("/api/settings", data="[1,2]", content_type="application/json", headers=bearer(SHOP_A))
    assert resp.status_code == 400
    resp = client.put("/api/settings", data="not json", content_type="application/json", headers=bearer(SHOP_A))
    assert resp.status_code == 400


def test_ids_are_checked_against_the_connected_company_lists(client, db, redis_conn, two_shops, bearer):  # noqa: F811
    shop_a, _ = two_shops
    conn = connect_qbo(shop_a)
    lists = {"accounts": [{"id": "35", "name": "Undeposited Funds", "type": "Other Current Asset"}],
             "deposit_accounts": [], "income_accounts": [], "discount_accounts": [],
             "items": [{"id": "7", "name": "Shipping", "type": "Service"}],
             "classes": [], "departments": [], "customers": []}
    # The lists the page last read (GET /api/options caches them per shop and realm).
    redis_conn.set(f"ecomflux:qbo-options:{SHOP_A}:{conn.realm_id}", json.dumps(lists), ex=60)
    bad = client.put("/api/settings", json={"deposit_account_id": "999", "shipping_item_id": "7"},
                     headers=bearer(SHOP_A))
    assert bad.status_code == 422
    assert bad.json["errors"] == {"deposit_account_id": "not an active account in Sandbox Company"}
    ok = client.put("/api/settings", json={"deposit_account_id": "35", "shipping_item_id": "7"},
                    headers=bearer(SHOP_A))
    assert ok.status_code == 200
    options = client.get("/api/options", headers=bearer(SHOP_A)).json
    assert options["company_name"] == "Sandbox Company" and options["items"][0]["name"] == "Shipping"


def test_company_facts_come_from_the_qbo_connection(client, db, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import QboConnection

    shop_a, _ = two_shops
    connect_qbo(shop_a)
    QboConnection.update(company_country="CA", home_currency="CAD", multicurrency=True).execute()
    company = client.get("/api/settings", headers=bearer(SHOP_A)).json["company"]
    assert company["country"] == "CA" and company["home_currency"] == "CAD" and company["multicurrency"] is True


def test_truncated_company_list_does_not_reject_an_id(client, db, redis_conn, two_shops, bearer):  # noqa: F811
    from ecomflux_app.web.qbo_company import MAX_LIST

    shop_a, _ = two_shops
    conn = connect_qbo(shop_a)
    customers = [{"id": str(n), "name": f"Customer {n}"} for n in range(MAX_LIST)]
    lists = {"accounts": [], "items": [], "classes": [], "departments": [], "customers": customers}
    redis_conn.set(f"ecomflux:qbo-options:{SHOP_A}:{conn.realm_id}", json.dumps(lists), ex=60)
    # Customer 5000 exists in QuickBooks but is past the first page the page could read.
    assert client.put("/api/settings", json={"default_customer_id": "5000"}, headers=bearer(SHOP_A)).status_code == 200
    assert client.put("/api/settings", json={"class_id": "77"}, headers=bearer(SHOP_A)).status_code == 422
