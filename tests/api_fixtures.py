"""Fixtures for the embedded page's API tests: installed shops, session tokens, ledger rows."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

SHOP_A = "shop-a.myshopify.com"
SHOP_B = "shop-b.myshopify.com"
GOLDEN_ORDERS = Path(__file__).parent / "golden" / "orders"


def golden_order(name: str = "discounted_shipping") -> dict:
    return json.loads((GOLDEN_ORDERS / f"{name}.json").read_text())


@pytest.fixture
def two_shops(install_shop):
    """Shops A and B, both installed through the real token-exchange path."""
    return install_shop(SHOP_A, name="Shop A"), install_shop(SHOP_B, name="Shop B")


@pytest.fixture
def bearer(shopify_sandbox):
    """Factory: Authorization headers carrying a fresh session token for a shop."""

    def make(shop: str, **kwargs) -> dict:
        kwargs.setdefault("expires_in", 300)
        return {"Authorization": f"Bearer {shopify_sandbox.session_token(shop, **kwargs)}"}

    return make


def add_delivery(shop, order: dict, topic: str = "orders/fulfilled", status: str = "failed"):
    from ecomflux_app.models import WebhookDelivery

    return WebhookDelivery.create(
        webhook_id=str(uuid.uuid4()), topic=topic, shop_domain=shop.domain, shop=shop, body=json.dumps(order),
        status=status, order_id=str(order["id"]), order_name=order.get("name"), resource_id=str(order["id"]),
    )


def add_record(shop, order_id, status: str = "posted", *, delivery=None, age_minutes: int = 0, **fields):
    from ecomflux_app.models import SyncRecord, utcnow

    stamp = utcnow() - timedelta(minutes=age_minutes)
    values = dict(
        shop=shop, source_key=f"order:{order_id}", kind="order", order_id=str(order_id),
        order_name=f"#{order_id}", status=status, document_type="SalesReceipt", currency="USD",
        shopify_total=Decimal("10.00"), delivery=delivery, updated_at=stamp, created_at=stamp,
    )
    if status == "posted":
        values.update(qbo_id=f"{order_id}9", qbo_doc_number=f"SH-{order_id}", qbo_total=Decimal("10.00"),
                      posted_at=stamp)
    values.update(fields)
    return SyncRecord.create(**values)


def connect_qbo(shop, status: str = "connected", company: str = "Sandbox Company", realm: str = "9130000000001"):
    """A QBO connection row as the connection module leaves it (tokens omitted: the API never reads them)."""
    from ecomflux_app.models import QboConnection, utcnow

    return QboConnection.create(shop=shop, realm_id=realm, company_name=company, company_country="US",
                                home_currency="USD", status=status, connected_at=utcnow(),
                                status_reason="invalid_grant" if status == "reconnect_required" else None)
