"""Golden non-US documents: each corpus order (tests/golden_nonus/orders) -> the exact QBO payloads,
Sales Receipt and Invoice, for the seeded company of its country (ids as the stand-in assigns them).

ECOMFLUX_GOLDEN_UPDATE=1 rewrites the files after a deliberate change (review the diff).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ecomflux_app.translate.jsonout import dumps, loads
from ecomflux_app.translate.order import Refs, ShopFacts, plan_order, render_document
from tests.nonus_orders import corpus, country_of
from tests.test_tax_codes import company, settings_for

GOLDEN = Path(__file__).parent / "golden_nonus"
UPDATE = os.environ.get("ECOMFLUX_GOLDEN_UPDATE") == "1"


def rendered(order: dict, country: str) -> dict:
    c = company(country)
    out = {}
    for mode in ("sales_receipt", "invoice"):
        plan = plan_order(order, settings_for(c, mode), ShopFacts(currency=order["currency"]))
        doc = render_document(plan, Refs(customer_id="CUST", items={k: f"<item:{k}>" for k in plan.item_keys}))
        out[mode] = {"balance": plan.balance.to_values(), "document": doc}
    return out


@pytest.mark.parametrize("name", sorted(corpus()))
def test_golden_nonus_payload(name):
    order_path, expected_path = GOLDEN / "orders" / f"{name}.json", GOLDEN / "expected" / f"{name}.json"
    if UPDATE:
        order_path.write_text(json.dumps(corpus()[name], indent=2, ensure_ascii=False) + "\n")
    order = loads(order_path.read_text())
    got = json.loads(dumps(rendered(order, country_of(name))))
    if UPDATE:
        expected_path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert got == json.loads(expected_path.read_text())
