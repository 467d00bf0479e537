"""A reconciliation adjustment: one visible line that brings an order's QBO total back to Shopify's.

When the bookkeeper changed an order's document in QBO (or it was posted short), reconciliation can
post the difference as a document of its own instead of editing theirs: a Sales Receipt / Invoice
when QBO is short, a Credit Memo when QBO holds too much. It carries no tax (the difference is not a
taxed sale), is dated like the order's document (the same period), and its identity is the ledger
key adjust:<order id>:<document id>:<QBO total>:<Shopify total>, so a repeated request is one document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from .document_kinds import kind_of, kind_or_none
from .item import ItemRequest, SPECIAL_ITEMS
from .money import ZERO, format_money, quantize
from .plan import DOC_NUMBER_MAX, PRIVATE_NOTE_MAX, TAX_EXCLUDED, TAX_US, PlanLine, Refs, TranslationError
from .render import sales_item_line, tax_header

ADJUST_PREFIX = "adjust:"
ITEM_KEY = "special:refund_adjustment"


@dataclass(frozen=True)
class AdjustmentPlan:
    """The one-line document that closes a total difference."""

    source_key: str
    entity: str  # SalesReceipt | Invoice (QBO is short) | CreditMemo (QBO holds too much)
    order_id: str
    doc_number: str
    marker: str
    private_note: str
    txn_date: date
    amount: Decimal  # positive
    lines: tuple[PlanLine, ...]
    tax_mode: str
    us_company: bool
    tax_total: Decimal = ZERO
    taxable_tax_code_id: str | None = None
    exempt_tax_code_id: str | None = None
    currency_ref: str | None = None

    def item_requests(self) -> list[ItemRequest]:
        name, item_type = SPECIAL_ITEMS[ITEM_KEY]
        return [ItemRequest(key=ITEM_KEY, name=name, sku=None, item_type=item_type)]


def adjustment_key(order_id: str, document_id: str, qbo_total: Decimal, shopify_total: Decimal) -> str:
    return f"{ADJUST_PREFIX}{order_id}:{document_id}:{format_money(qbo_total)}:{format_money(shopify_total)}"


def plan_adjustment(order_id: str, order_name: str, document_type: str, document_id: str, doc_number: str,
                    txn_date: date, qbo_total: Decimal, shopify_total: Decimal, *, us_company: bool = True,
                    exempt_tax_code_id: str | None = None, currency_ref: str | None = None) -> AdjustmentPlan:
    """The adjustment for a document totalling qbo_total where Shopify implies shopify_total."""
    difference = quantize(shopify_total - qbo_total)
    if difference == 0:
        raise TranslationError("total", "the totals agree: nothing to adjust")
    adjusted = kind_or_none(document_type)
    if adjusted is None or adjusted.adjusted_down_as is None:
        raise TranslationError("document_type", f"cannot adjust a {document_type}")
    key = adjustment_key(order_id, document_id, qbo_total, shopify_total)
    entity = document_type if difference > 0 else adjusted.adjusted_down_as
    amount = abs(difference)
    suffix = f"-A{abs(hash_key(key)) % 10000:04d}"
    number = doc_number[:DOC_NUMBER_MAX - len(suffix)] + suffix
    marker = f"ecomflux:{key}"
    what = "short of" if difference > 0 else "more than"
    description = (f"Reconciliation adjustment for Shopify order {order_name}: QuickBooks document {doc_number} "
                   f"was {format_money(amount)} {what} Shopify's {format_money(shopify_total)}")
    line = PlanLine(kind="adjustment", description=description[:4000], qty=Decimal(1), unit_price=amount,
                    amount=amount, taxable=False, item_key=ITEM_KEY)
    note = f"{description} [{marker}]"
    return AdjustmentPlan(
        source_key=key, entity=entity, order_id=str(order_id), doc_number=number, marker=marker,
        private_note=note[:PRIVATE_NOTE_MAX], txn_date=txn_date, amount=amount, lines=(line,),
        tax_mode=TAX_US if us_company else TAX_EXCLUDED, us_company=us_company,
        exempt_tax_code_id=exempt_tax_code_id, currency_ref=currency_ref)


def hash_key(key: str) -> int:
    """A stable (not per-process salted) small hash for the DocNumber suffix."""
    value = 0
    for char in key:
        value = (value * 131 + ord(char)) % 1_000_003
    return value


def render_adjustment(plan: AdjustmentPlan, customer_id: str, item_id: str,
                      deposit_account_id: str | None = None) -> dict[str, Any]:
    """The create body: one untaxed line, the document's tax fields at zero."""
    refs = Refs(customer_id=customer_id, items={ITEM_KEY: item_id})
    body: dict[str, Any] = {
        "DocNumber": plan.doc_number, "TxnDate": plan.txn_date.isoformat(), "PrivateNote": plan.private_note,
        "CustomerRef": {"value": customer_id},
        "Line": [dict(sales_item_line(plan, line, refs), LineNum=n) for n, line in enumerate(plan.lines, start=1)],
    }
    body.update(tax_header(plan))
    if plan.currency_ref:
        body["CurrencyRef"] = {"value": plan.currency_ref}
    if deposit_account_id and kind_of(plan.entity).carries_deposit_account:
        body["DepositToAccountRef"] = {"value": deposit_account_id}
    return body
