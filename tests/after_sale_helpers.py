"""Builders for after-sale payloads (refunds, payments) consistent with tests.fixtures_flow.simple_order."""

from __future__ import annotations

import copy
from decimal import Decimal


def make_refund(order: dict, refund_id: int = 7001, *, qty: int | None = None, line_subtotal: str | None = None,
                line_tax: str | None = None, shipping: str | None = None, shipping_tax: str = "0.00",
                discrepancy: str | None = None, transaction: str | None = None, sku_line: int = 0) -> dict:
    """A refunds/create body for order: qty of its first line (all by default), optional shipping refund
    and refund discrepancy; the transaction defaults to what the lines + tax + shipping add up to."""
    li = order["line_items"][sku_line]
    qty = li["quantity"] if qty is None else qty
    subtotal = Decimal(line_subtotal) if line_subtotal is not None else Decimal(li["price"]) * qty
    full_tax = sum(Decimal(t["price"]) for t in li.get("tax_lines", []))
    tax = Decimal(line_tax) if line_tax is not None else (full_tax * qty / li["quantity"]).quantize(Decimal("0.01"))
    lines = [{"id": refund_id * 10, "line_item_id": li["id"], "quantity": qty, "restock_type": "return",
              "subtotal": str(subtotal), "total_tax": str(tax), "line_item": copy.deepcopy(li)}] if qty else []
    adjustments = []
    total = subtotal + tax if qty else Decimal(0)
    if shipping:
        adjustments.append({"id": refund_id * 10 + 1, "kind": "shipping_refund", "reason": "Shipping refund",
                            "amount": str(-Decimal(shipping)), "tax_amount": str(-Decimal(shipping_tax))})
        total += Decimal(shipping) + Decimal(shipping_tax)
    if discrepancy:
        adjustments.append({"id": refund_id * 10 + 2, "kind": "refund_discrepancy", "reason": "Refund discrepancy",
                            "amount": str(-Decimal(discrepancy)), "tax_amount": "0.00"})
        total += Decimal(discrepancy)
    amount = transaction if transaction is not None else str(total)
    return {
        "id": refund_id, "order_id": order["id"], "created_at": "2026-11-21T10:00:00-05:00",
        "processed_at": "2026-11-21T10:00:00-05:00", "note": "customer return", "restock": True,
        "refund_line_items": lines, "order_adjustments": adjustments,
        "transactions": [{"id": refund_id * 100, "kind": "refund", "status": "success", "amount": amount,
                          "gateway": "shopify_payments", "currency": "USD"}],
    }


def order_with_refund(order: dict, refund: dict) -> dict:
    """The order as Shopify shows it after the refund (current_* net of it, the refund listed)."""
    out = copy.deepcopy(order)
    out["refunds"] = [copy.deepcopy(refund)]
    refunded = sum(Decimal(t["amount"]) for t in refund["transactions"])
    for rli in refund["refund_line_items"]:
        for li in out["line_items"]:
            if li["id"] == rli["line_item_id"]:
                li["current_quantity"] = li["quantity"] - rli["quantity"]
    tax = sum(Decimal(r["total_tax"]) for r in refund["refund_line_items"])
    out["current_total_price"] = str(Decimal(order["current_total_price"]) - refunded)
    out["current_total_tax"] = str(Decimal(order["current_total_tax"]) - tax)
    out["financial_status"] = "partially_refunded" if Decimal(out["current_total_price"]) > 0 else "refunded"
    return out
