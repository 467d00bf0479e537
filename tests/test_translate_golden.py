"""Golden tests: realistic Shopify order bodies -> the exact QBO payload and balance figures."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from ecomflux_app.translate.jsonout import dumps, loads
from ecomflux_app.translate.order import ShopFacts, document_totals, plan_order
from ecomflux_app.translate.preview import preview_document
from ecomflux_app.translate.settings import SyncSettings
from tests.helpers import walk

GOLDEN = Path(__file__).parent / "golden"
CASES = json.loads((GOLDEN / "cases.json").read_text())
# Set ECOMFLUX_GOLDEN_UPDATE=1 to rewrite expected files after a deliberate change (then review the diff).
UPDATE = os.environ.get("ECOMFLUX_GOLDEN_UPDATE") == "1"


def _load(name: str):
    order = loads((GOLDEN / "orders" / f"{name}.json").read_text())
    case = CASES[name]
    assert SyncSettings.validate_values(case["settings"]) == {}
    return order, SyncSettings.from_values(case["settings"]), ShopFacts(**case["shop"])


def test_every_order_fixture_has_a_case_and_an_expected_file():
    orders = {p.stem for p in (GOLDEN / "orders").glob("*.json")}
    expected = {p.stem for p in (GOLDEN / "expected").glob("*.json")}
    assert orders == set(CASES) == expected
    assert len(orders) >= 15


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_payload(name):
    order, settings, shop = _load(name)
    result = preview_document(order, settings, shop)
    path = GOLDEN / "expected" / f"{name}.json"
    text = dumps(result, indent=2) + "\n"
    if UPDATE:
        path.write_text(text)
    assert loads(text) == loads(path.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_document_adds_up(name):
    order, settings, shop = _load(name)
    plan = plan_order(order, settings, shop)
    doc = preview_document(order, settings, shop)["document"]
    for value in walk(doc):
        assert not isinstance(value, float)
    for line in doc["Line"]:
        if line["DetailType"] == "SalesItemLineDetail":
            detail = line["SalesItemLineDetail"]
            assert (detail["Qty"] * detail["UnitPrice"]).quantize(Decimal("0.01")) == line["Amount"], line
            assert ":" not in detail["ItemRef"]["value"] or detail["ItemRef"]["value"].startswith("<item:")
    totals = document_totals(doc)
    assert totals["total"] == plan.document_total
    assert totals["tax"] == plan.tax_total or plan.tax_mode == "tax_line"
    bag = order["current_total_price_set"]
    key = "presentment_money" if plan.currency == order["presentment_currency"] else "shop_money"
    # As sold: Shopify's current total plus the money its refunds sent back (documents of their own).
    refunded = sum((Decimal(t["amount"]) for r in order.get("refunds") or [] for t in r.get("transactions") or []
                    if t.get("kind") == "refund" and t.get("status") == "success"), Decimal("0"))
    expected_total = Decimal(bag[key]["amount"]) + refunded
    assert plan.balance.expected == expected_total
    if plan.balance.ok:
        assert plan.document_total + plan.gift_card_redeemed == expected_total
    assert len(doc["DocNumber"]) <= 21
    assert plan.marker in doc["PrivateNote"]
    assert (doc.get("DueDate") is not None) == (plan.doc_type == "Invoice")
    assert ("DepositToAccountRef" in doc) == (plan.doc_type == "SalesReceipt")


def test_only_the_deliberately_unbalanced_order_fails_the_balance_check():
    failing = []
    for name in sorted(CASES):
        order, settings, shop = _load(name)
        if not plan_order(order, settings, shop).balance.ok:
            failing.append(name)
    assert failing == ["unbalanced_total"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_both_document_types_carry_the_same_lines_and_totals(name):
    order, settings, shop = _load(name)
    docs = {}
    for kind in ("sales_receipt", "invoice"):
        values = settings.to_values()
        values["document_type"] = kind
        docs[kind] = preview_document(order, SyncSettings.from_values(values), shop)
    receipt, invoice = docs["sales_receipt"], docs["invoice"]
    assert receipt["document_type"] == "SalesReceipt" and invoice["document_type"] == "Invoice"
    assert receipt["document"]["Line"] == invoice["document"]["Line"]
    assert receipt["balance"] == invoice["balance"]
    assert document_totals(receipt["document"]) == document_totals(invoice["document"])
    assert "DueDate" in invoice["document"] and "DepositToAccountRef" not in invoice["document"]
    assert "DueDate" not in receipt["document"]
