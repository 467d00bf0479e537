"""OrderPlan + resolved references -> the QBO SalesReceipt or Invoice create body."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Mapping

from .document_kinds import kind_of, read_totals
from .money import quantize
from .plan import (
    DESCRIPTION_MAX, DISCOUNT, GIFT_CARD, PRODUCT, SHIPPING, TAX_EXCLUDED, TAX_INCLUSIVE, TAX_US, OrderPlan, Refs,
    TranslationError,
)


def _num(value: Decimal) -> Decimal:
    """Amounts stay Decimal in the payload; translate.jsonout.dumps writes them as JSON numbers."""
    return quantize(value)


def sales_item_line(plan: Any, line: PlanLine, refs: Refs) -> dict[str, Any]:
    """One SalesItemLineDetail line (order documents and refunds alike); the item must be resolved."""
    item_id = line.item_id or (refs.items.get(line.item_key) if line.item_key else None)
    if not item_id:
        raise TranslationError(f"refs.items[{line.item_key}]", "no QuickBooks item for this line")
    detail: dict[str, Any] = {"ItemRef": {"value": item_id}, "Qty": line.qty, "UnitPrice": line.unit_price}
    if plan.tax_mode == TAX_INCLUSIVE:
        detail["TaxInclusiveAmt"] = _num(line.gross_amount if line.gross_amount is not None else line.amount)
    tax_code = {"value": line.tax_code_id} if line.tax_code_id else _tax_code(plan, line.taxable)
    if tax_code:
        detail["TaxCodeRef"] = tax_code
    return {"DetailType": "SalesItemLineDetail", "Amount": _num(line.amount), "Description": line.description,
            "SalesItemLineDetail": detail}


def tax_header(plan: Any) -> dict[str, Any]:
    """Document-level tax fields (orders and refunds alike): Shopify's tax, and how lines carry it."""
    out: dict[str, Any] = {}
    if plan.tax_mode in (TAX_US, TAX_EXCLUDED, TAX_INCLUSIVE):
        # Sending TotalTax stops QBO (automated sales tax) from recomputing Shopify's tax.
        out["TxnTaxDetail"] = {"TotalTax": _num(plan.tax_total)}
    rates = getattr(plan, "tax_rates", ())
    if rates and plan.tax_mode in (TAX_EXCLUDED, TAX_INCLUSIVE):
        # Non-US: Shopify's tax per QBO rate; QBO takes these as rounding corrections of its own.
        out["TxnTaxDetail"]["TaxLine"] = [
            {"Amount": _num(r.amount), "DetailType": "TaxLineDetail", "TaxLineDetail": {
                "TaxRateRef": {"value": r.rate_id}, "PercentBased": True, "TaxPercent": r.percent,
                "NetAmountTaxable": _num(r.net)}}
            for r in rates]
    if plan.tax_mode == TAX_EXCLUDED:
        out["GlobalTaxCalculation"] = "TaxExcluded"
    elif plan.tax_mode == TAX_INCLUSIVE:
        out["GlobalTaxCalculation"] = "TaxInclusive"
    return out


def _tax_code(plan: OrderPlan, taxable: bool) -> dict[str, str] | None:
    if plan.tax_mode == TAX_US or (plan.tax_mode == TAX_INCLUSIVE and plan.us_company):
        return {"value": "TAX" if taxable else "NON"}
    if plan.tax_mode in (TAX_EXCLUDED, TAX_INCLUSIVE):
        code = plan.taxable_tax_code_id if taxable else plan.exempt_tax_code_id
        return {"value": code} if code else None
    return None


def render_document(plan: OrderPlan, refs: Refs) -> dict[str, Any]:
    """The QBO SalesReceipt or Invoice create body for plan; every unresolved item must be in refs.

    Amounts are Decimal: serialize with translate.jsonout.dumps (never through float).
    """
    body: dict[str, Any] = {
        "DocNumber": plan.doc_number,
        "TxnDate": plan.txn_date.isoformat(),
        "PrivateNote": plan.private_note,
        "CustomerRef": {"value": refs.customer_id},
    }
    out_lines: list[dict[str, Any]] = []
    discount_inserted = False

    def add_discount_line() -> None:
        detail: dict[str, Any] = {"PercentBased": False}
        if plan.discount_account_id:
            detail["DiscountAccountRef"] = {"value": plan.discount_account_id}
        out_lines.append({
            "DetailType": "DiscountLineDetail", "Amount": _num(plan.discount_line_amount),
            "Description": plan.discount_description[:DESCRIPTION_MAX], "DiscountLineDetail": detail,
        })

    # The discount line sits under the lines it reduces: products, plus shipping when part of
    # the discount is a shipping discount (so it never exceeds the subtotal above it).
    covered = (PRODUCT, GIFT_CARD, DISCOUNT, SHIPPING) if plan.shipping_discount_total else (PRODUCT, GIFT_CARD, DISCOUNT)
    for line in plan.lines:
        if not discount_inserted and plan.discount_line_amount and line.kind not in covered:
            add_discount_line()
            discount_inserted = True
        out_lines.append(sales_item_line(plan, line, refs))
    if not discount_inserted and plan.discount_line_amount:
        add_discount_line()
    for n, line_json in enumerate(out_lines, start=1):
        line_json["LineNum"] = n
    body["Line"] = out_lines

    body.update(tax_header(plan))
    if plan.currency_ref:
        body["CurrencyRef"] = {"value": plan.currency_ref}
        if plan.exchange_rate is not None:
            body["ExchangeRate"] = plan.exchange_rate
    if plan.class_id:
        body["ClassRef"] = {"value": plan.class_id}
    if plan.department_id:
        body["DepartmentRef"] = {"value": plan.department_id}
    if plan.bill_email and re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", plan.bill_email):
        body["BillEmail"] = {"Address": plan.bill_email}
    if plan.customer.billing and plan.customer.billing.to_qbo():
        body["BillAddr"] = plan.customer.billing.to_qbo()
    if plan.customer.shipping and plan.customer.shipping.to_qbo():
        body["ShipAddr"] = plan.customer.shipping.to_qbo()
    if not kind_of(plan.doc_type).takes_payments:  # paid when written: where the money landed, and how
        if plan.deposit_account_id:
            body["DepositToAccountRef"] = {"value": plan.deposit_account_id}
        method = refs.payment_method_id or plan.payment_method_id
        if method:
            body["PaymentMethodRef"] = {"value": method}
    else:
        if plan.due_date:
            body["DueDate"] = plan.due_date.isoformat()
    return body


def document_totals(document: Mapping[str, Any]) -> dict[str, Decimal]:
    """What a rendered document adds up to, the way QBO totals it (used by tests and preview)."""
    totals = read_totals(document)
    return {"items": totals.items, "discounts": totals.discounts, "tax": totals.tax, "total": totals.computed}
