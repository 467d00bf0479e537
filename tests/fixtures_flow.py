"""End-to-end fixtures: a shop installed through the Shopify sandbox and connected to a sandbox QBO company."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from ecomflux_app.sandbox.demo_orders import OrderGenerator


@dataclass
class Connected:
    """A connected shop with handles on both sandboxes."""

    shop: object
    realm: str
    intuit: object
    shopify: object

    def documents(self, entity: str = "SalesReceipt") -> list[dict]:
        return self.intuit.entities(self.realm, entity)

    def settings(self, **values) -> None:
        from ecomflux_app.models import ShopSettings

        row, _ = ShopSettings.get_or_create(shop=self.shop, defaults={"values": {}})
        merged = dict(row.values or {}, **values)
        ShopSettings.update(values=merged).where(ShopSettings.id == row.id).execute()


def connect_shop_to_company(shop, intuit_sandbox, realm: str) -> None:
    """Link a shop to a sandbox company with real tokens from the Intuit sandbox (no browser)."""
    from ecomflux_app.sandbox.harness import connect_to_sandbox_company

    connect_to_sandbox_company(shop, intuit_sandbox.state, realm)


@pytest.fixture
def connected_shop(app, db, install_shop, intuit_sandbox, shopify_sandbox):
    """A shop installed via token exchange and linked to a fresh US sandbox company."""
    shop = install_shop("flow-shop.myshopify.com", name="Flow Shop", currency="USD", timezone="America/New_York",
                        country="US")
    realm = intuit_sandbox.create_company(name="Flow Co", country="US")
    connect_shop_to_company(shop, intuit_sandbox, realm)
    return Connected(shop=shop, realm=realm, intuit=intuit_sandbox, shopify=shopify_sandbox)


@pytest.fixture
def orders():
    """A seeded generator of realistic, balanced order bodies."""
    return OrderGenerator(seed=3, customers=10)


def simple_order(order_id: int = 9001, name: str = "#9001", *, email: str | None = "ann@example.com",
                 first: str = "Ann", last: str = "Lee", sku: str | None = "SKU-1", title: str = "Widget",
                 price: str = "10.00", qty: int = 2, tax: str = "1.60", shipping: str = "5.00",
                 when: datetime | None = None) -> dict:
    """A minimal consistent order: qty x price + tax + shipping = current_total_price."""
    from decimal import Decimal

    total = Decimal(price) * qty + Decimal(tax) + Decimal(shipping)
    when = (when or datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc)).isoformat()
    customer = None if email is None and not first else {
        "id": 555, "email": email, "first_name": first, "last_name": last}
    address = {"first_name": first, "last_name": last, "address1": "1 Main St", "city": "Albany", "zip": "12207",
               "province_code": "NY", "country_code": "US"}
    return copy.deepcopy({
        "id": order_id, "name": name, "email": email, "currency": "USD", "presentment_currency": "USD",
        "processed_at": when, "created_at": when, "taxes_included": False, "financial_status": "paid",
        "current_total_price": str(total), "total_price": str(total),
        "current_subtotal_price": str(Decimal(price) * qty), "current_total_tax": tax, "total_tip_received": "0.00",
        "payment_gateway_names": ["shopify_payments"],
        "line_items": [{"id": order_id * 10, "sku": sku, "title": title, "name": title, "quantity": qty,
                        "current_quantity": qty, "price": price, "taxable": True, "gift_card": False,
                        "tax_lines": [{"title": "NY Tax", "price": tax, "rate": 0.08}], "discount_allocations": []}],
        "shipping_lines": [{"title": "Standard", "price": shipping, "discounted_price": shipping,
                            "discount_allocations": [], "tax_lines": []}],
        "tax_lines": [{"title": "NY Tax", "price": tax, "rate": 0.08}],
        "customer": customer, "billing_address": address if first else None,
        "shipping_address": address if first else None, "refunds": [],
    })
