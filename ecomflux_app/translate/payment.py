"""orders/paid in invoice mode -> QBO Payments linked to the order's Invoice (LinkedTxn), one per payment.

Each successful sale/capture transaction is its own Payment (partial payments), keyed
payment:<order id>:<transaction id> and dated the day the money came in (the transaction's processed
time in the shop's timezone). Without transactions in the payload, the amount paid so far
(current_total_price - total_outstanding, plus what refunds sent back: the money came in before it
went out) minus what is already recorded becomes one Payment keyed
payment:<order id>:paid-<amount paid so far>, so a repeated delivery maps to the same key; it is
dated `paid_at` (when Shopify says the order was paid) when the caller knows it, else the order date.
Gift card redemptions are not payments here: the invoice already nets them out as a line.

A Payment has no DocNumber, so its findable identity is the [ecomflux:<source key>] marker in its
PrivateNote (QBO cannot filter on PrivateNote or PaymentRefNum: the sync queries by CustomerRef and
TxnDate and matches the marker itself).

A credit memo for a refund of an open invoice is applied to that invoice with a zero Payment
(credit application, key apply:<refund id>): one line links the Invoice, one the CreditMemo, both
for min(credit remaining, invoice open balance), so the lines net to the zero TotalAmt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from .document_kinds import CREDIT_MEMO, INVOICE, leaves_credit, read_totals
from .money import ZERO, MoneyError, format_money, quantize
from .plan import GIFT_CARD_GATEWAY, PRIVATE_NOTE_MAX, ShopFacts, TranslationError
from .reading import foreign_exchange_rate, money_back, money_reader_for, objects, order_marker, text, txn_date_for
from .settings import SyncSettings

PAYMENT_REF_MAX = 21
APPLY_KEY_PREFIX = "apply:"


@dataclass(frozen=True)
class PaymentPlan:
    """One QBO Payment against the order's invoice."""

    source_key: str
    order_id: str
    order_name: str
    amount: Decimal
    gateway: str | None
    txn_date: date
    reference: str | None  # PaymentRefNum (Shopify transaction id / authorization)
    marker: str  # the order's marker
    private_note: str
    currency_ref: str | None
    payment_marker: str  # ecomflux:<source key>: this Payment's own identity in PrivateNote
    exchange_rate: Decimal | None = None  # foreign currency: Shopify's own rate, as on the invoice


@dataclass(frozen=True)
class CreditApplication:
    """A zero Payment applying a credit memo to the order's open invoice (or why nothing is applied)."""

    source_key: str  # apply:<refund id>
    payment_marker: str  # ecomflux:apply:<refund id>
    refund_id: str
    order_id: str
    invoice_id: str
    credit_memo_id: str
    customer_id: str
    amount: Decimal  # min(credit remaining, invoice open balance); zero when skip_reason is set
    credit_remaining: Decimal
    invoice_balance: Decimal
    txn_date: date
    reference: str | None  # PaymentRefNum: the credit memo's number
    private_note: str
    currency_ref: str | None
    skip_reason: str | None = None

    @property
    def leftover(self) -> Decimal:
        """Credit that stays with the customer after this application."""
        return quantize(self.credit_remaining - self.amount)


def payment_marker(source_key: str) -> str:
    """The PrivateNote marker that identifies one Payment (its ledger key, prefixed)."""
    return f"ecomflux:{source_key}"


def has_marker(note: str | None, marker: str) -> bool:
    """Whether a PrivateNote carries exactly this bracketed marker (payment:1:50 is not payment:1:501)."""
    return f"[{marker}]" in (note or "")


def deposit_account_for(settings: SyncSettings, gateway: str | None) -> str | None:
    """The deposit account for a gateway: Shopify Payments' clearing account when set, else
    deposit_account_map[gateway] ('*' = any), else deposit_account_id."""
    clearing = settings.clearing_account_for(gateway)
    if clearing:
        return clearing
    mapping: Mapping[str, str] = settings.deposit_account_map or {}
    if gateway:
        lowered = {k.lower(): v for k, v in mapping.items()}
        if gateway.lower() in lowered:
            return lowered[gateway.lower()]
    return mapping.get("*") or settings.deposit_account_id


def payment_method_for(settings: SyncSettings, gateway: str | None) -> str | None:
    mapping = settings.payment_method_map or {}
    if not gateway:
        return mapping.get("*") or mapping.get("default")
    lowered = {k.lower(): v for k, v in mapping.items()}
    return lowered.get(gateway.lower()) or lowered.get("*") or lowered.get("default")


def plan_payments(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts | None = None,
                  already_recorded: Decimal = ZERO, paid_at: str | None = None) -> list[PaymentPlan]:
    """The payments this order carries (see the module docstring); raises TranslationError."""
    shop = shop or ShopFacts()
    order_id = text(order.get("id"))
    if not order_id:
        raise TranslationError("id", "missing order id")
    order_name = text(order.get("name")) or f"#{order_id}"
    read, _currency, currency_ref = money_reader_for(order, settings, shop)
    rate = foreign_exchange_rate(order, settings, shop, _currency) if currency_ref else None
    marker = order_marker(order_id)
    plans: list[PaymentPlan] = []

    def make(key: str, amount: Decimal, gateway: str | None, when: Mapping[str, Any], ref: str | None) -> PaymentPlan:
        own = payment_marker(key)
        note = f"Payment for Shopify order {order_name} via {gateway or 'unknown gateway'} [{marker}] [{own}]"
        return PaymentPlan(source_key=key, order_id=order_id, order_name=order_name, amount=quantize(amount),
                           gateway=gateway, txn_date=txn_date_for(when, shop.timezone),
                           reference=(ref or "")[:PAYMENT_REF_MAX] or None, marker=marker,
                           private_note=note[:PRIVATE_NOTE_MAX], currency_ref=currency_ref, payment_marker=own,
                           exchange_rate=rate)

    transactions = order.get("transactions")
    if isinstance(transactions, list) and transactions:
        for k, tx in enumerate(objects(order, "transactions")):
            if tx.get("kind") not in ("sale", "capture") or tx.get("status") not in ("success", None):
                continue
            if tx.get("gateway") == GIFT_CARD_GATEWAY:
                continue
            tx_id = text(tx.get("id"))
            if not tx_id:
                raise TranslationError(f"transactions[{k}].id", "missing transaction id")
            amount = read.amount(tx, "amount", f"transactions[{k}]")
            if amount <= 0:
                continue
            when = {"processed_at": tx.get("processed_at") or tx.get("created_at") or paid_at
                    or order.get("processed_at"), "created_at": order.get("created_at")}
            plans.append(make(f"payment:{order_id}:{tx_id}", amount, text(tx.get("gateway")), when,
                              text(tx.get("authorization")) or tx_id))
        return plans

    total = read.amount(order, "current_total_price", "order", default=None) \
        if (order.get("current_total_price_set") or order.get("current_total_price") is not None) \
        else read.amount(order, "total_price", "order")
    outstanding = read.amount(order, "total_outstanding", "order", default=ZERO) \
        if (order.get("total_outstanding_set") or order.get("total_outstanding") is not None) else ZERO
    if order.get("financial_status") not in ("paid", "partially_paid", "partially_refunded", "refunded", None):
        return plans
    paid = quantize(total - outstanding - _gift_cards(order, read) + _sent_back(order, read))
    amount = quantize(paid - already_recorded)
    if amount > 0:
        gateways = [g for g in (order.get("payment_gateway_names") or []) if g and g != GIFT_CARD_GATEWAY]
        gateway = gateways[0] if gateways else text(order.get("gateway"))
        when = {"processed_at": paid_at or order.get("processed_at"), "created_at": order.get("created_at")}
        plans.append(make(f"payment:{order_id}:paid-{format_money(paid)}", amount, gateway, when, None))
    return plans


def _sent_back(order: Mapping[str, Any], read: Any) -> Decimal:
    """Money the order's refunds sent back: current_total_price is net of it, but it had come in first,
    so the payment keeps it (the refund is its own document)."""
    total = ZERO
    for r, refund in enumerate(objects(order, "refunds")):
        for k, tx in enumerate(objects(refund, "transactions")):
            if money_back(tx):
                total += read.amount(tx, "amount", f"refunds[{r}].transactions[{k}]")
    return total


def _gift_cards(order: Mapping[str, Any], read: Any) -> Decimal:
    """Gift card redemptions listed in the order (already a line on the invoice)."""
    total = ZERO
    for k, tx in enumerate(objects(order, "transactions")):
        if tx.get("gateway") == GIFT_CARD_GATEWAY and tx.get("kind") in ("sale", "capture") \
                and tx.get("status") in ("success", None):
            total += read.amount(tx, "amount", f"transactions[{k}]")
    return total


def render_payment(plan: PaymentPlan, customer_id: str, invoice_id: str, deposit_account_id: str | None,
                   payment_method_id: str | None) -> dict[str, Any]:
    """The QBO Payment create body, applied to the invoice."""
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer_id}, "TotalAmt": plan.amount, "TxnDate": plan.txn_date.isoformat(),
        "PrivateNote": plan.private_note,
        "Line": [{"Amount": plan.amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": INVOICE.entity}]}],
    }
    if plan.reference:
        body["PaymentRefNum"] = plan.reference
    if deposit_account_id:
        body["DepositToAccountRef"] = {"value": deposit_account_id}
    if payment_method_id:
        body["PaymentMethodRef"] = {"value": payment_method_id}
    if plan.currency_ref:
        body["CurrencyRef"] = {"value": plan.currency_ref}
        if plan.exchange_rate is not None:
            body["ExchangeRate"] = plan.exchange_rate
    return body


def _ref_value(obj: Any) -> str | None:
    return text(obj.get("value")) if isinstance(obj, Mapping) else None


def _open_amount(doc: Mapping[str, Any], where: str) -> Decimal:
    """What QBO leaves open on the document, as cents: a credit's RemainingCredit, an invoice's Balance."""
    field = f"{where}.{'RemainingCredit' if leaves_credit(where) else 'Balance'}"
    try:
        open_amount = read_totals(doc).balance
    except MoneyError as exc:
        raise TranslationError(field, str(exc)) from None
    if open_amount is None:
        raise TranslationError(field, "missing from the QuickBooks document")
    return open_amount


def plan_credit_application(refund_id: str, order_id: str, order_name: str, credit_memo: Mapping[str, Any],
                            invoice: Mapping[str, Any]) -> CreditApplication:
    """Apply min(credit remaining, invoice open balance) of a refund's credit memo to the order's invoice."""
    key = f"{APPLY_KEY_PREFIX}{refund_id}"
    own = payment_marker(key)
    memo_id, invoice_id = text(credit_memo.get("Id")), text(invoice.get("Id"))
    if not memo_id or not invoice_id:
        raise TranslationError("Id", "the credit memo and the invoice must both exist in QuickBooks")
    # RemainingCredit is what QBO leaves to apply; Balance mirrors it on older answers.
    remaining = _open_amount(credit_memo, CREDIT_MEMO.entity)
    balance = _open_amount(invoice, INVOICE.entity)
    raw_date = text(credit_memo.get("TxnDate"))
    try:
        txn_date = date.fromisoformat(raw_date or "")
    except ValueError:
        raise TranslationError("CreditMemo.TxnDate", f"not a date: {raw_date!r}") from None
    memo_doc = text(credit_memo.get("DocNumber")) or memo_id
    invoice_doc = text(invoice.get("DocNumber")) or invoice_id
    customer = _ref_value(credit_memo.get("CustomerRef"))
    memo_currency = _ref_value(credit_memo.get("CurrencyRef"))
    invoice_currency = _ref_value(invoice.get("CurrencyRef"))
    skip = None
    if not customer or customer != _ref_value(invoice.get("CustomerRef")):
        skip = (f"credit memo {memo_doc} and invoice {invoice_doc} belong to different customers in QuickBooks: "
                "the credit stays with the customer")
    elif memo_currency and invoice_currency and memo_currency != invoice_currency:
        skip = f"credit memo {memo_doc} ({memo_currency}) and invoice {invoice_doc} ({invoice_currency}) differ in currency"
    elif remaining <= 0:
        skip = f"credit memo {memo_doc} has no credit left to apply"
    elif balance <= 0:
        skip = (f"invoice {invoice_doc} has no open balance: the credit of {format_money(remaining)} "
                "stays with the customer")
    amount = ZERO if skip else min(remaining, balance)
    note = (f"Credit memo {memo_doc} applied to invoice {invoice_doc} for Shopify order {order_name} "
            f"(refund {refund_id}) [{own}] [{order_marker(order_id)}]")
    return CreditApplication(
        source_key=key, payment_marker=own, refund_id=str(refund_id), order_id=str(order_id), invoice_id=invoice_id,
        credit_memo_id=memo_id, customer_id=customer or "", amount=amount, credit_remaining=remaining,
        invoice_balance=balance, txn_date=txn_date, reference=memo_doc[:PAYMENT_REF_MAX],
        private_note=note[:PRIVATE_NOTE_MAX], currency_ref=memo_currency, skip_reason=skip)


def render_credit_application(application: CreditApplication) -> dict[str, Any]:
    """The zero Payment create body: the invoice line and the credit memo line net to TotalAmt 0."""
    if application.skip_reason:
        raise TranslationError("amount", application.skip_reason)
    body: dict[str, Any] = {
        "CustomerRef": {"value": application.customer_id}, "TotalAmt": ZERO,
        "TxnDate": application.txn_date.isoformat(), "PrivateNote": application.private_note,
        "Line": [
            {"Amount": application.amount,
             "LinkedTxn": [{"TxnId": application.invoice_id, "TxnType": INVOICE.entity}]},
            {"Amount": application.amount,
             "LinkedTxn": [{"TxnId": application.credit_memo_id, "TxnType": CREDIT_MEMO.entity}]},
        ],
    }
    if application.reference:
        body["PaymentRefNum"] = application.reference
    if application.currency_ref:
        body["CurrencyRef"] = {"value": application.currency_ref}
    return body
