"""Dry run: the document an order would produce, with placeholder references, plus its figures."""

from __future__ import annotations

from typing import Any, Mapping

from .customer import match_keys
from .money import format_money
from .order import OrderPlan, Refs, ShopFacts, TranslationError, plan_order, render_document
from .settings import SyncSettings


def unwrap_order(data: Any) -> Mapping[str, Any]:
    """Accept a webhook body or a REST response ({"order": {...}})."""
    if isinstance(data, Mapping) and "id" not in data:
        inner = data.get("order")
        if isinstance(inner, Mapping):
            return inner
    return data if isinstance(data, Mapping) else {}


def placeholder_refs(plan: OrderPlan, settings: SyncSettings) -> Refs:
    """Refs that name what the sync would look up: "<item:KEY>", "<customer:KEY>"."""
    if plan.customer.guest or settings.customer_matching == "none":
        customer = settings.default_customer_id or "<customer:default>"
    else:
        keys = match_keys(plan.customer)
        customer = f"<customer:{keys[0]}>" if keys else "<customer:new>"
    return Refs(customer_id=customer, items={key: f"<item:{key}>" for key in plan.item_keys})


def plan_summary(plan: OrderPlan) -> dict[str, Any]:
    """The plan's figures as JSON-ready strings."""
    return {
        "document_type": plan.doc_type,
        "doc_number": plan.doc_number,
        "txn_date": plan.txn_date.isoformat(),
        "currency": plan.currency,
        "subtotal": format_money(plan.subtotal),
        "discount_total": format_money(plan.discount_total),
        "shipping_total": format_money(plan.shipping_total),
        "shipping_discount_total": format_money(plan.shipping_discount_total),
        "tax_total": format_money(plan.tax_total),
        "tax_mode": plan.tax_mode,
        "tips_total": format_money(plan.tips_total),
        "duties_total": format_money(plan.duties_total),
        "gift_card_sold": format_money(plan.gift_card_sold),
        "gift_card_redeemed": format_money(plan.gift_card_redeemed),
        "document_total": format_money(plan.document_total),
        "shipping_refunded": format_money(plan.shipping_refunded),
        "reflected_refund_ids": list(plan.reflected_refund_ids),
        "removed_lines": [{"description": r.description, "quantity": r.quantity} for r in plan.removed_lines],
        "item_keys": plan.item_keys,
        "warnings": list(plan.warnings),
    }


def tax_code_summary(plan: OrderPlan, settings: SyncSettings) -> dict[str, Any]:
    """Non-US: the tax code on each line and any Shopify tax still to map ({} for US companies)."""
    setup = settings.company.tax_setup
    if setup is None or settings.company.is_us:
        return {}
    rows = []
    for line in plan.lines:
        code = setup.code(line.tax_code_id)
        rows.append({"description": line.description, "tax_code_id": line.tax_code_id,
                     "tax_code": code.describe() if code else None})
    return {"line_tax_codes": rows,
            "tax_rates": [{"rate": r.rate_name, "percent": str(r.percent), "net": format_money(r.net),
                           "tax": format_money(r.amount), "quickbooks_computes": format_money(r.qbo_computed)}
                          for r in plan.tax_rates],
            "unmapped_taxes": [{"tax": u.signature, "line": u.line, "suggestions": list(u.suggestions)}
                               for u in plan.tax_unmapped]}


def preview_document(order: Mapping[str, Any], settings: SyncSettings,
                     shop_facts: ShopFacts | None = None) -> dict[str, Any]:
    """{"ok", "document", "balance", "summary"} — or {"ok": False, "error", "field"} for bad input.

    "document" keeps Decimal amounts: serialize with translate.jsonout.dumps.
    """
    try:
        plan = plan_order(order, settings, shop_facts)
        document = render_document(plan, placeholder_refs(plan, settings))
    except TranslationError as exc:
        return {"ok": False, "error": exc.message, "field": exc.field}
    return {
        "ok": plan.balance.ok,
        "document_type": plan.doc_type,
        "document": document,
        "balance": plan.balance.to_values(),
        "summary": dict(plan_summary(plan), **tax_code_summary(plan, settings)),
    }
