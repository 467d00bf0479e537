"""Admin GraphQL reads against the sandbox: REST-shaped orders, date windows, pagination, throttling, auth."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from ecomflux_app.models import Shop
from ecomflux_app.shopify import graphql
from ecomflux_app.shopify.errors import ShopifyReauthRequired, ShopifyThrottled
from ecomflux_app.shopify.graphql import fetch_order, fetch_orders, fetch_shop_info

SHOP = "reads-shop.myshopify.com"


def rest_order(order_id: int, processed_at: str, **extra) -> dict:
    """A REST-shaped order as a webhook would carry it: discounts, shipping, taxes, customer, a refund."""
    order = {
        "id": order_id,
        "name": f"#{order_id}",
        "email": "ada@example.com",
        "processed_at": processed_at,
        "created_at": processed_at,
        "currency": "USD",
        "presentment_currency": "USD",
        "taxes_included": False,
        "financial_status": "paid",
        "fulfillment_status": "fulfilled",
        "payment_gateway_names": ["shopify_payments"],
        "total_price": "98.80",
        "subtotal_price": "80.00",
        "total_tax": "8.80",
        "total_discounts": "10.00",
        "current_total_price": "98.80",
        "current_subtotal_price": "80.00",
        "current_total_tax": "8.80",
        "total_tip_received": "0.00",
        "tax_lines": [{"title": "State Tax", "rate": 0.08, "price": "8.80"}],
        "discount_applications": [{"type": "discount_code", "code": "SAVE10", "value": "10.0",
                                   "value_type": "fixed_amount", "allocation_method": "across",
                                   "target_selection": "all", "target_type": "line_item"}],
        "discount_codes": [{"code": "SAVE10", "amount": "10.00", "type": "fixed_amount"}],
        "line_items": [
            {"id": order_id * 10 + 1, "sku": "MUG-1", "title": "Mug", "variant_title": "Blue", "quantity": 2,
             "current_quantity": 2, "price": "25.00", "taxable": True, "gift_card": False,
             "tax_lines": [{"title": "State Tax", "rate": 0.08, "price": "3.20"}],
             "discount_allocations": [{"amount": "5.00", "discount_application_index": 0}], "duties": []},
            {"id": order_id * 10 + 2, "sku": "TEE-1", "title": "Tee", "variant_title": None, "quantity": 1,
             "current_quantity": 1, "price": "40.00", "taxable": True, "gift_card": False,
             "tax_lines": [{"title": "State Tax", "rate": 0.08, "price": "2.80"}],
             "discount_allocations": [{"amount": "5.00", "discount_application_index": 0}], "duties": []},
        ],
        "shipping_lines": [{"id": order_id * 10 + 9, "title": "Standard", "code": "STD", "price": "10.00",
                            "discounted_price": "10.00", "discount_allocations": [],
                            "tax_lines": [{"title": "State Tax", "rate": 0.08, "price": "0.80"}]}],
        "customer": {"id": 555, "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
                     "phone": "+15550001111"},
        "billing_address": {"first_name": "Ada", "last_name": "Lovelace", "address1": "1 Main St",
                            "city": "Springfield", "province_code": "IL", "country_code": "US", "zip": "62701"},
        "shipping_address": {"first_name": "Ada", "last_name": "Lovelace", "address1": "1 Main St",
                             "city": "Springfield", "province_code": "IL", "country_code": "US", "zip": "62701"},
        "refunds": [],
    }
    order.update(extra)
    return order


@pytest.fixture
def shop(install_shop):
    return install_shop(SHOP, currency="USD", timezone="America/Chicago", country="US", name="Reads Shop",
                        email="owner@reads.example")


def test_shop_info_comes_from_graphql(shop):
    info = fetch_shop_info(shop)
    assert info == {"name": "Reads Shop", "email": "owner@reads.example", "currency": "USD",
                    "timezone": "America/Chicago", "country": "US", "myshopify_domain": SHOP}
    stored = Shop.get(Shop.domain == SHOP)
    assert (stored.name, stored.timezone, stored.country) == ("Reads Shop", "America/Chicago", "US")


def test_fetch_order_round_trips_the_rest_shape(shop, shopify_sandbox):
    refund = {"id": 9001, "created_at": "2026-03-02T10:00:00Z", "note": "broken",
              "refund_line_items": [{"line_item_id": 10011, "quantity": 1, "restock_type": "return",
                                     "subtotal": "20.00", "total_tax": "1.60"}],
              "transactions": [{"id": 77, "kind": "refund", "status": "success", "gateway": "shopify_payments",
                                "amount": "21.60"}]}
    shopify_sandbox.add_order(SHOP, rest_order(1001, "2026-03-01T15:30:00Z", refunds=[refund]))
    order = fetch_order(shop, 1001)
    assert order["id"] == 1001 and order["name"] == "#1001"
    # Times come back in the shop's timezone, as webhook bodies carry them.
    assert order["processed_at"] == "2026-03-01T09:30:00-06:00"
    assert datetime.fromisoformat(order["processed_at"]) == datetime.fromisoformat("2026-03-01T15:30:00+00:00")
    assert (order["current_total_price"], order["current_subtotal_price"], order["current_total_tax"]) == (
        "98.80", "80.00", "8.80")
    assert order["current_total_price_set"]["shop_money"] == {"amount": "98.80", "currency_code": "USD"}
    assert order["total_tip_received"] == "0.00"
    assert (order["financial_status"], order["fulfillment_status"], order["taxes_included"]) == (
        "paid", "fulfilled", False)
    first, second = order["line_items"]
    assert (first["id"], first["sku"], first["title"], first["variant_title"], first["quantity"],
            first["current_quantity"], first["price"], first["taxable"], first["gift_card"]) == (
        10011, "MUG-1", "Mug", "Blue", 2, 2, "25.00", True, False)
    assert first["tax_lines"][0]["price"] == "3.20" and first["tax_lines"][0]["rate"] == 0.08
    assert first["discount_allocations"] == [{"discount_application_index": 0, "amount": "5.00",
                                              "amount_set": first["discount_allocations"][0]["amount_set"]}]
    assert second["sku"] == "TEE-1" and second["variant_title"] is None
    ship = order["shipping_lines"][0]
    assert (ship["title"], ship["price"], ship["discounted_price"], ship["tax_lines"][0]["price"]) == (
        "Standard", "10.00", "10.00", "0.80")
    assert order["discount_applications"] == [{"type": "discount_code", "code": "SAVE10", "value": "10.00",
                                               "value_type": "fixed_amount", "allocation_method": "across",
                                               "target_selection": "all", "target_type": "line_item"}]
    assert order["discount_codes"] == [{"code": "SAVE10", "amount": "10.00", "type": "fixed_amount"}]
    assert order["customer"]["id"] == 555 and order["customer"]["first_name"] == "Ada"
    assert order["billing_address"]["country_code"] == "US" and order["shipping_address"]["zip"] == "62701"
    assert order["payment_gateway_names"] == ["shopify_payments"]
    (r,) = order["refunds"]
    assert (r["id"], r["order_id"], r["refund_line_items"][0]["line_item_id"],
            r["refund_line_items"][0]["subtotal"], r["transactions"][0]["amount"]) == (9001, 1001, 10011, "20.00",
                                                                                       "21.60")
    # Money stays exact text: summing as Decimal reproduces the total to the cent.
    lines = sum(Decimal(li["price"]) * li["quantity"] - sum(Decimal(a["amount"]) for a in li["discount_allocations"])
                for li in order["line_items"])
    assert lines + Decimal(ship["discounted_price"]) + Decimal(order["total_tax"]) == Decimal("98.80")


def test_fetch_order_missing_is_none(shop):
    assert fetch_order(shop, 424242) is None


def test_fetch_orders_filters_window_and_paginates_in_order(shop, shopify_sandbox):
    for i in range(7):
        shopify_sandbox.add_order(SHOP, rest_order(2000 + i, f"2026-04-0{i + 1}T12:00:00Z"))
    shopify_sandbox.add_order(SHOP, rest_order(1999, "2026-03-20T12:00:00Z"))  # before the window
    seen, cursor, pages = [], None, 0
    while True:
        orders, cursor = fetch_orders(shop, datetime(2026, 4, 1), datetime(2026, 4, 7), cursor=cursor, page_size=2)
        pages += 1
        seen += [o["id"] for o in orders]
        if cursor is None:
            break
    # until is exclusive for datetimes: April 7 12:00 is out.
    assert seen == [2000, 2001, 2002, 2003, 2004, 2005]
    assert pages == 3


def test_fetch_orders_date_bounds_use_the_shop_timezone(shop, shopify_sandbox):
    # 2026-04-02 03:00Z is still April 1 in Chicago (UTC-5 in April).
    shopify_sandbox.add_order(SHOP, rest_order(3001, "2026-04-02T03:00:00Z"))
    shopify_sandbox.add_order(SHOP, rest_order(3002, "2026-04-02T06:00:00Z"))
    orders, cursor = fetch_orders(shop, date(2026, 4, 1), date(2026, 4, 1))
    assert [o["id"] for o in orders] == [3001] and cursor is None


def test_throttled_query_waits_for_the_bucket_then_succeeds(shop, shopify_sandbox, monkeypatch):
    waits = []
    monkeypatch.setattr(graphql, "sleep", waits.append)
    shopify_sandbox.add_order(SHOP, rest_order(4001, "2026-04-02T06:00:00Z"))
    shopify_sandbox.throttle(SHOP, 2)
    assert fetch_order(shop, 4001)["id"] == 4001
    assert len(waits) == 2 and all(0 < w <= graphql.MAX_INLINE_WAIT for w in waits)


def test_persistent_throttling_raises_a_retryable_error(shop, shopify_sandbox, monkeypatch):
    monkeypatch.setattr(graphql, "sleep", lambda s: None)
    shopify_sandbox.throttle(SHOP, 50)
    with pytest.raises(ShopifyThrottled) as info:
        fetch_order(shop, 1)
    assert info.value.delay_seconds >= 1


def test_revoked_token_marks_reauth_and_parks(shop, shopify_sandbox):
    shopify_sandbox.revoke(SHOP)
    with pytest.raises(ShopifyReauthRequired):
        fetch_order(shop, 1)
    stored = Shop.get(Shop.domain == SHOP)
    assert stored.status == "reauth_required" and stored.access_token is None
    assert "401" in stored.auth_error or "invalid_grant" in stored.auth_error
    calls = shopify_sandbox.stats["graphql_calls"] + shopify_sandbox.stats["graphql_unauthorized"]
    with pytest.raises(ShopifyReauthRequired):
        fetch_order(stored, 1)
    # Never loops: a shop needing re-auth makes no further Shopify calls.
    assert shopify_sandbox.stats["graphql_calls"] + shopify_sandbox.stats["graphql_unauthorized"] == calls


def test_shops_cannot_read_each_other(install_shop, shopify_sandbox):
    a = install_shop("alpha-shop.myshopify.com")
    install_shop("beta-shop.myshopify.com")
    shopify_sandbox.add_order("beta-shop.myshopify.com", rest_order(5001, "2026-04-02T06:00:00Z"))
    assert fetch_order(a, 5001) is None
    orders, _ = fetch_orders(a, date(2026, 1, 1))
    assert orders == []


GOLDEN = __import__("pathlib").Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", sorted(p.stem for p in (GOLDEN / "orders").glob("*.json")))
def test_graphql_read_translates_exactly_like_the_webhook_body(name, install_shop, shopify_sandbox):
    """A golden webhook order read back through GraphQL gives the same QuickBooks document."""
    import json

    from ecomflux_app.translate.jsonout import dumps
    from ecomflux_app.translate.order import ShopFacts
    from ecomflux_app.translate.preview import preview_document
    from ecomflux_app.translate.settings import SyncSettings

    case = json.loads((GOLDEN / "cases.json").read_text())[name]
    webhook_order = json.loads((GOLDEN / "orders" / f"{name}.json").read_text())
    webhook_order = webhook_order.get("order", webhook_order)
    shop = install_shop(SHOP, currency=case["shop"]["currency"], timezone=case["shop"]["timezone"])
    shopify_sandbox.add_order(SHOP, webhook_order)
    read_back = fetch_order(shop, webhook_order["id"])
    settings, facts = SyncSettings.from_values(case["settings"]), ShopFacts(**case["shop"])
    expected = json.loads(dumps(preview_document(webhook_order, settings, facts)))
    actual = json.loads(dumps(preview_document(read_back, settings, facts)))
    assert actual == expected


def test_long_order_pages_its_line_items_and_every_query_fits_the_cost_limit(shop, shopify_sandbox):
    order = rest_order(6001, "2026-04-02T06:00:00Z")
    template = order["line_items"][0]
    order["line_items"] = [dict(template, id=60000 + i, sku=f"SKU-{i}", discount_allocations=[], tax_lines=[])
                           for i in range(60)]
    shopify_sandbox.add_order(SHOP, order)
    shopify_sandbox.state.graphql_log.clear()
    got = fetch_order(shop, 6001)
    assert [li["sku"] for li in got["line_items"]] == [f"SKU-{i}" for i in range(60)]
    log = shopify_sandbox.state.graphql_log
    # The order query brings the first page of line items; each further page is one more query.
    assert [e["root"] for e in log] == ["order"] * 3 and graphql.LINE_ITEMS_PAGE * 2 < 60 <= graphql.LINE_ITEMS_PAGE * 3
    assert max(entry["requested_cost"] for entry in log) <= 1000


def test_backfill_page_queries_stay_under_the_cost_limit(shop, shopify_sandbox):
    for i in range(5):
        shopify_sandbox.add_order(SHOP, rest_order(7000 + i, f"2026-04-0{i + 1}T12:00:00Z", refunds=[
            {"id": 70000 + i, "created_at": "2026-04-09T00:00:00Z", "refund_line_items": [], "transactions": [],
             "order_adjustments": [{"id": 1, "kind": "shipping_refund", "amount": "-10.00", "tax_amount": "-0.80"}]}]))
    shopify_sandbox.state.graphql_log.clear()
    orders, cursor = fetch_orders(shop, date(2026, 4, 1), page_size=250)
    assert [o["id"] for o in orders] == [7000 + i for i in range(5)] and cursor is None
    assert orders[0]["refunds"][0]["order_adjustments"][0]["kind"] == "shipping_refund"
    assert orders[0]["refunds"][0]["order_adjustments"][0]["amount"] == "-10.00"
    assert max(entry["requested_cost"] for entry in shopify_sandbox.state.graphql_log) <= 1000


def test_sandbox_refuses_a_query_over_the_single_query_cost_limit(shop):
    too_big = "query { orders(first: 250) { nodes { id lineItems(first: 250) { nodes { id } } } } }"
    with pytest.raises(graphql.ShopifyError) as info:
        graphql.execute(shop, too_big)
    assert "MAX_COST_EXCEEDED" in info.value.codes


def test_an_empty_cost_bucket_turns_into_a_retry_later_with_the_refill_time(shop, shopify_sandbox, monkeypatch):
    waits = []
    monkeypatch.setattr(graphql, "sleep", waits.append)
    shopify_sandbox.add_order(SHOP, rest_order(8001, "2026-04-02T06:00:00Z"))
    shopify_sandbox.set_rate_limits(bucket_max=800, restore_rate=1)  # room for one order read, slow refill
    assert fetch_order(shop, 8001)["id"] == 8001
    with pytest.raises(ShopifyThrottled) as info:
        fetch_order(shop, 8001)
    # Refill needs minutes at 1 point/s: no in-process wait, the delivery is retried later instead.
    assert waits == [] and info.value.delay_seconds > graphql.MAX_INLINE_WAIT


def test_search_query_bounds(shop):
    from ecomflux_app.shopify.graphql import search_query

    assert search_query(shop, date(2026, 4, 1), date(2026, 4, 1)) == (
        "processed_at:>='2026-04-01T05:00:00Z' processed_at:<'2026-04-02T05:00:00Z'")
    assert search_query(shop, datetime(2026, 4, 1, 12), None, "updated_at") == "updated_at:>='2026-04-01T12:00:00Z'"
    assert search_query(shop, None, datetime(2026, 4, 2)) == "processed_at:<'2026-04-02T00:00:00Z'"
