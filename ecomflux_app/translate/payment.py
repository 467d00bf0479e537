"""orders/paid in invoice mode -> QBO Payments linked to the order's Invoice (LinkedTxn), one per payment.

Each successful sale/capture transaction is its own Payment (partial payments), keyed
payment:<order id>:<transaction id>. Without transactions in the payload, the amount paid so far
(current_total_price - total_outstanding) minus what is already recorded becomes one Payment keyed
payment:<order id>:paid-<amount paid so far>, so a repeated delivery maps to the same key.
Gift card redemptions are not payments here: the invoice already nets them out as a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from .money import ZERO, format_money, quantize
from .plan import GIFT_CARD_GATEWAY, PRIVATE_NOTE_MAX, ShopFacts, TranslationError
from .reading import money_reader_for, objects, order_marker, text, txn_date_for
from .settings import SyncSettings

PAYMENT_REF_MAX = 21


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
    marker: str
    private_note: str
    currency_ref: str | None


def deposit_account_for(settings: SyncSettings, gateway: str | None) -> str | None:
    """The deposit account for a gateway: deposit_account_map[gateway] ('*' = any), else deposit_account_id."""
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
                  already_recorded: Decimal = ZERO) -> list[PaymentPlan]:
    """The payments this order carries (see the module docstring); raises TranslationError."""
    shop = shop or ShopFacts()
    order_id = text(order.get("id"))
    if not order_id:
        raise TranslationError("id", "missing order id")
    order_name = text(order.get("name")) or f"#{order_id}"
    read, _currency, currency_ref = money_reader_for(order, settings, shop)
    marker = order_marker(order_id)
    plans: list[PaymentPlan] = []

    def make(key: str, amount: Decimal, gateway: str | None, when: Mapping[str, Any], ref: str | None) -> PaymentPlan:
        note = (f"Payment for Shopify order {order_name} via {gateway or 'unknown gateway'} "
                f"[{marker}] [ecomflux:{key}]")
        return PaymentPlan(source_key=key, order_id=order_id, order_name=order_name, amount=quantize(amount),
                           gateway=gateway, txn_date=txn_date_for(when, shop.timezone),
                           reference=(ref or "")[:PAYMENT_REF_MAX] or None, marker=marker,
                           private_note=note[:PRIVATE_NOTE_MAX], currency_ref=currency_ref)

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
            when = {"processed_at": tx.get("processed_at") or tx.get("created_at") or order.get("processed_at"),
                    "created_at": order.get("created_at")}
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
    paid = quantize(total - outstanding - _gift_cards(order, read))
    amount = quantize(paid - already_recorded)
    if amount > 0:
        gateways = [g for g in (order.get("payment_gateway_names") or []) if g and g != GIFT_CARD_GATEWAY]
        gateway = gateways[0] if gateways else text(order.get("gateway"))
        when = {"processed_at": order.get("processed_at"), "created_at": order.get("created_at")}
        plans.append(make(f"payment:{order_id}:paid-{format_money(paid)}", amount, gateway, when, None))
    return plans


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
        "Line": [{"Amount": plan.amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
    }
    if plan.reference:
        body["PaymentRefNum"] = plan.reference
    if deposit_account_id:
        body["DepositToAccountRef"] = {"value": deposit_account_id}
    if payment_method_id:
        body["PaymentMethodRef"] = {"value": payment_method_id}
    if plan.currency_ref:
        body["CurrencyRef"] = {"value": plan.currency_ref}
    return body
