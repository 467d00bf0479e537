"""The QBO document kinds EcomFlux writes, one entry each, and the one reader of a QBO document's totals.

A new kind is a new entry here plus its translator (the module.function named in `translator`);
tests/test_document_kinds.py fails on an entry that lacks what the rest of the code looks up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping

from .money import parse_money, quantize, sum_money

# What a kind records, which decides where the code treats it alike.
SALE, REFUND, PAYMENT, DEPOSIT = "sale", "refund", "payment", "deposit"
ROLES = (SALE, REFUND, PAYMENT, DEPOSIT)

# How EcomFlux takes a document back: QBO's void operation, an update with include=void, or QBO's delete
# (VOID and DELETE are QBO's operation names).
VOID, VOID_BY_UPDATE, DELETE = "void", "void_by_update", "delete"
UNDO_OPERATIONS = (VOID, VOID_BY_UPDATE, DELETE)

# Which reading of a QBO answer the ledger keeps as the document's total (SyncRecord.qbo_total).
TOTAL_AMOUNT, APPLIED_TO_INVOICES = "total", "applied"


@dataclass(frozen=True)
class QboTotals:
    """What a QBO document (as QBO answered it, or a create body) adds up to."""

    total: Decimal | None  # TotalAmt (None when the document carries none, as a create body)
    computed: Decimal  # items - discounts + tax: what QBO will total a create body to
    items: Decimal  # SalesItemLineDetail lines
    discounts: Decimal  # DiscountLineDetail lines (positive)
    tax: Decimal  # TxnTaxDetail.TotalTax
    shipping: Decimal  # SalesItemLineDetail lines on one of the shipping items asked for
    balance: Decimal | None  # what is still open: Balance, or a credit memo's RemainingCredit
    applied: Decimal  # Payment lines linked to an Invoice: what a payment settled


def _amount(value: Any, field: str) -> Decimal:
    return parse_money(value if value not in (None, "") else "0", field)


def read_totals(document: Mapping[str, Any], shipping_item_ids: Iterable[str] = ()) -> QboTotals:
    """The one reader of a QBO document's totals (amounts as QBO sends them: JSON numbers or strings)."""
    lines = document.get("Line") or []
    ship_ids = set(shipping_item_ids)

    def item_id(line: Mapping[str, Any]) -> Any:
        return ((line.get("SalesItemLineDetail") or {}).get("ItemRef") or {}).get("value")

    items = sum_money(_amount(l.get("Amount"), "Line.Amount") for l in lines
                      if l.get("DetailType") == "SalesItemLineDetail")
    discounts = sum_money(_amount(l.get("Amount"), "Line.Amount") for l in lines
                          if l.get("DetailType") == "DiscountLineDetail")
    shipping = sum_money(_amount(l.get("Amount"), "Line.Amount") for l in lines
                         if l.get("DetailType") == "SalesItemLineDetail" and item_id(l) in ship_ids)
    applied = sum_money(_amount(l.get("Amount"), "Line.Amount") for l in lines
                        if any(link.get("TxnType") == INVOICE.entity for link in l.get("LinkedTxn") or []))
    tax = quantize(_amount((document.get("TxnTaxDetail") or {}).get("TotalTax"), "TxnTaxDetail.TotalTax"))
    raw_total = document.get("TotalAmt")
    open_amount = next((document[name] for name in ("RemainingCredit", "Balance") if document.get(name) is not None),
                       None)
    balance = quantize(parse_money(open_amount, "Balance")) if open_amount is not None else None
    return QboTotals(total=quantize(parse_money(raw_total, "TotalAmt")) if raw_total is not None else None,
                     # QBO line amounts exclude tax, also on TaxInclusive documents (TaxInclusiveAmt holds the gross).
                     computed=quantize(items - discounts + tax), items=items, discounts=discounts, tax=tax,
                     shipping=shipping, balance=balance, applied=quantize(applied))


@dataclass(frozen=True)
class DocumentKind:
    """One QBO document kind and every fact the code branches on."""

    entity: str  # QBO entity name, also the ledger's SyncRecord.document_type and a batch item's key
    endpoint: str  # QBO REST path segment (/v3/company/<realm>/<endpoint>)
    label: str  # what merchants and support read
    role: str  # SALE | REFUND | PAYMENT | DEPOSIT
    translator: str  # "module.function" in translate/ that renders its create body
    undo: str  # how EcomFlux takes it back (VOID, VOID_BY_UPDATE, DELETE)
    setting: str | None = None  # settings.document_type value that posts orders as this kind
    setting_hint: str | None = None  # the settings form's line under that choice
    sign: int = 1  # +1: money or a receivable comes in; -1: it goes back out (refunds, credits)
    takes_payments: bool = False  # stays open until Payments settle it (terms, due date, orders/paid)
    refunded_as: str | None = None  # entity a refund of it is posted as (an Invoice's while it is owed)
    adjusted_down_as: str | None = None  # entity reconciliation posts when QBO holds more than Shopify
    leaves_credit: bool = False  # money owed back stays with the customer, applied to their open documents
    carries_deposit_account: bool = False  # its money lands in DepositToAccountRef (money in or out)
    cleared_by_deposit: bool = False  # its money sits in Undeposited Funds until a payout's Deposit links it
    clearing_by_default: bool = False  # without DepositToAccountRef QBO puts its money in Undeposited Funds
    ledger_total: str = TOTAL_AMOUNT  # which reading of QBO's answer the ledger keeps

    def total_of(self, document: Mapping[str, Any]) -> Decimal | None:
        """The figure the ledger keeps for this kind's QBO document."""
        totals = read_totals(document)
        if self.ledger_total == APPLIED_TO_INVOICES and document.get("Line"):
            return totals.applied  # a credit application's TotalAmt is 0 while it settles the credit applied
        return totals.total


SALES_RECEIPT = DocumentKind(
    entity="SalesReceipt", endpoint="salesreceipt", label="Sales Receipt", role=SALE,
    translator="render.render_document", undo=VOID_BY_UPDATE, setting="sales_receipt",
    setting_hint="paid orders, money deposited",
    refunded_as="RefundReceipt", adjusted_down_as="CreditMemo", carries_deposit_account=True, cleared_by_deposit=True,
    clearing_by_default=True)
INVOICE = DocumentKind(
    entity="Invoice", endpoint="invoice", label="Invoice", role=SALE,
    translator="render.render_document", undo=VOID, setting="invoice", takes_payments=True,
    setting_hint="open receivable, paid later",
    refunded_as="CreditMemo", adjusted_down_as="CreditMemo")
REFUND_RECEIPT = DocumentKind(
    entity="RefundReceipt", endpoint="refundreceipt", label="Refund Receipt", role=REFUND,
    translator="refund.render_refund", undo=VOID_BY_UPDATE, sign=-1, carries_deposit_account=True,
    cleared_by_deposit=True)
CREDIT_MEMO = DocumentKind(
    entity="CreditMemo", endpoint="creditmemo", label="Credit Memo", role=REFUND,
    translator="refund.render_refund", undo=VOID_BY_UPDATE, sign=-1, leaves_credit=True)
PAYMENT_DOC = DocumentKind(
    entity="Payment", endpoint="payment", label="Payment", role=PAYMENT,
    translator="payment.render_payment", undo=VOID_BY_UPDATE, cleared_by_deposit=True, clearing_by_default=True,
    ledger_total=APPLIED_TO_INVOICES)
DEPOSIT_DOC = DocumentKind(
    entity="Deposit", endpoint="deposit", label="Deposit", role=DEPOSIT,
    translator="deposit.render_deposit", undo=DELETE)

KINDS: tuple[DocumentKind, ...] = (SALES_RECEIPT, INVOICE, REFUND_RECEIPT, CREDIT_MEMO, PAYMENT_DOC, DEPOSIT_DOC)
_BY_ENTITY = {k.entity: k for k in KINDS}
_BY_SETTING = {k.setting: k for k in KINDS if k.setting}

# The settings.document_type choices, in the order the settings form offers them.
DOCUMENT_TYPES: tuple[str, ...] = tuple(_BY_SETTING)
DEFAULT_DOCUMENT_TYPE = SALES_RECEIPT.setting or ""


def kind_of(entity: str) -> DocumentKind:
    """The kind for a QBO entity name (as the ledger stores it); KeyError names an unknown one."""
    return _BY_ENTITY[entity]


def kind_or_none(entity: str | None) -> DocumentKind | None:
    """The kind for a QBO entity name, or None for one EcomFlux does not write (or none recorded)."""
    return _BY_ENTITY.get(entity or "")


def kind_for_setting(document_type: str) -> DocumentKind:
    """The sale kind orders are posted as for settings.document_type (an unknown value: the default)."""
    return _BY_SETTING.get(document_type, SALES_RECEIPT)


def takes_payments(entity: str | None) -> bool:
    """Whether a document of this entity stays open until Payments settle it (False for none recorded)."""
    found = kind_or_none(entity)
    return found is not None and found.takes_payments


def leaves_credit(entity: str | None) -> bool:
    """Whether a document of this entity is a credit waiting to be applied (False for none recorded)."""
    found = kind_or_none(entity)
    return found is not None and found.leaves_credit


def entities(role: str | None = None, **facts: object) -> tuple[str, ...]:
    """The entity names of the kinds with this role (any when None) and these attribute values."""
    return tuple(k.entity for k in KINDS if (role is None or k.role == role)
                 and all(getattr(k, name) == value for name, value in facts.items()))


def label(entity: str | None) -> str:
    """What merchants and support read for an entity name; an unknown one as QBO spells it."""
    found = kind_or_none(entity)
    return found.label if found else (entity or "")


def qbo_total_of(entity: str | None, document: Mapping[str, Any]) -> Decimal | None:
    """The figure the ledger keeps for a QBO document (TotalAmt unless its kind reads another)."""
    found = kind_or_none(entity)
    if found is not None:
        return found.total_of(document)
    return read_totals(document).total
