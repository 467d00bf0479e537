"""Shopify refund (refunds/create body) -> RefundPlan -> QBO RefundReceipt or CreditMemo JSON.

What the balance check compares:
    expected = the refund's successful refund transactions (money that actually left)
    computed = refunded lines (subtotal after discounts) + shipping refunded + adjustments
               (refund discrepancies etc., shown as visible lines) + tax refunded (as Shopify computed it)
A mismatch is flagged, never posted.

Shopify's order_adjustments carry NEGATIVE amounts for money given back (a 5.00 shipping refund is
amount -5.00), so a line's amount is the negated adjustment.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from .document_kinds import REFUND_RECEIPT, SALES_RECEIPT, kind_of, kind_for_setting, kind_or_none
from .item import SPECIAL_ITEMS, ItemRequest, sanitize_item_name, sanitize_sku
from .money import ZERO, format_money, quantize, sum_money
from .order import product_item, shipping_item_id, tax_mode_for
from .plan import (
    DESCRIPTION_MAX, DOC_NUMBER_MAX, GIFT_CARD, PRIVATE_NOTE_MAX, PRODUCT, SHIPPING, TAX, TAX_AS_LINE,
    BalanceCheck, PlanLine, Refs, ShopFacts, TranslationError,
)
from .reading import (
    doc_number_for, foreign_exchange_rate, identity_for, money_back, money_reader_for, moved_money, objects,
    order_marker, text, txn_date_for, whole,
)
from .render import sales_item_line, tax_header
from .settings import SyncSettings
from .tax_codes import code_refund
from .customer import CustomerIdentity

ADJUSTMENT = "adjustment"
REFUND_MARKER_PREFIX = "ecomflux:refund:"
UNIT_PLACES = Decimal("0.0000001")


@dataclass(frozen=True)
class RefundPlan:
    """Everything needed to render one refund document for one Shopify refund."""

    doc_type: str  # RefundReceipt | CreditMemo
    refund_id: str
    order_id: str
    order_name: str
    source_key: str  # refund:<id>
    doc_number: str
    order_doc_number: str
    marker: str  # ecomflux:refund:<id>
    private_note: str
    txn_date: Any
    currency: str
    currency_ref: str | None
    customer: CustomerIdentity
    lines: tuple[PlanLine, ...]
    tax_total: Decimal
    tax_mode: str
    shipping_total: Decimal
    adjustments_total: Decimal
    document_total: Decimal
    balance: BalanceCheck
    us_company: bool = True
    taxable_tax_code_id: str | None = None
    exempt_tax_code_id: str | None = None
    class_id: str | None = None
    department_id: str | None = None
    tax_rates: tuple[Any, ...] = ()  # non-US: Shopify's refunded tax per QBO rate (translate.tax_codes)
    exchange_rate: Decimal | None = None  # foreign currency: Shopify's own rate, as on the order document

    @property
    def empty(self) -> bool:
        """Nothing to post: no lines and no money (e.g. a restock-only refund)."""
        return not self.lines and self.tax_total == 0 and self.balance.expected == 0

    def item_requests(self, item_type: str = "NonInventory") -> list[ItemRequest]:
        out: list[ItemRequest] = []
        for line in self.lines:
            if line.item_id or not line.item_key or any(r.key == line.item_key for r in out):
                continue
            if line.item_key in SPECIAL_ITEMS:
                name, special_type = SPECIAL_ITEMS[line.item_key]
                out.append(ItemRequest(key=line.item_key, name=name, sku=None, item_type=special_type))
            else:
                out.append(ItemRequest(key=line.item_key, name=line.item_name or sanitize_item_name(line.description),
                                       sku=line.sku, item_type=item_type, description=line.description))
        return out


def refund_marker(refund_id: str) -> str:
    return f"{REFUND_MARKER_PREFIX}{refund_id}"


def refund_doc_number(order_doc_number: str, refund_id: str) -> str:
    """<order doc number>-R<last digits of the refund id>, <= 21 chars, deterministic."""
    suffix = f"-R{refund_id[-6:]}"
    return order_doc_number[:DOC_NUMBER_MAX - len(suffix)] + suffix


def refunded_transactions_total(refund: Mapping[str, Any], read: Any) -> Decimal:
    """Money that actually left for this refund: successful refund transactions."""
    total = ZERO
    for k, tx in enumerate(objects(refund, "transactions")):
        if money_back(tx):
            total += read.amount(tx, "amount", f"transactions[{k}]")
    return quantize(total)


def refund_moment(refund: Mapping[str, Any]) -> dict[str, Any]:
    """When the money went back: the refund's processed (else created) time, else its money transaction's;
    never the order's date (a refund in a later month belongs to that month). Raises TranslationError."""
    moments = [refund.get("processed_at"), refund.get("created_at")]
    moments += [tx.get("processed_at") or tx.get("created_at") for tx in objects(refund, "transactions") if money_back(tx)]
    found = next((m for m in moments if isinstance(m, str) and m.strip()), None)
    if found is None:
        raise TranslationError("refund.processed_at", "missing refund date (processed_at / created_at)")
    return {"processed_at": found}


def _refund_ids(refund: Mapping[str, Any], order: Mapping[str, Any]) -> tuple[str, str, str]:
    """The refund's id, its order's id and the order's name, the ids required."""
    refund_id = text(refund.get("id"))
    if not refund_id:
        raise TranslationError("refund.id", "missing refund id")
    order_id = text(order.get("id")) or text(refund.get("order_id"))
    if not order_id:
        raise TranslationError("order.id", "missing order id")
    order_name = text(order.get("name")) or f"#{order.get('order_number') or order_id}"
    return refund_id, order_id, order_name


def _refunded_goods_lines(refund: Mapping[str, Any], order: Mapping[str, Any], settings: SyncSettings, read: Any,
                          lines: list[PlanLine]) -> Decimal:
    """One line per refunded order line (the same item as on the sale), net of tax; returns their tax."""
    taxes_included = bool(order.get("taxes_included"))
    order_lines = {text(li.get("id")): li for li in objects(order, "line_items")}
    tax_total = ZERO
    for k, rli in enumerate(objects(refund, "refund_line_items")):
        where = f"refund_line_items[{k}]"
        quantity = whole(rli.get("quantity"), f"{where}.quantity")
        li = rli.get("line_item") if isinstance(rli.get("line_item"), Mapping) else None
        li = li or order_lines.get(text(rli.get("line_item_id"))) or {}
        subtotal = read.amount(rli, "subtotal", where)
        line_tax = read.amount(rli, "total_tax", where, default=ZERO)
        tax_total += line_tax
        if quantity <= 0 and not subtotal:
            continue
        description = text(li.get("name")) or text(li.get("title")) or f"Refunded line {k + 1}"
        net = subtotal - line_tax if taxes_included else subtotal
        if li.get("gift_card"):
            key_id: tuple[str | None, str | None, str | None] = (
                None if settings.gift_card_liability_item_id else "special:gift_card",
                settings.gift_card_liability_item_id, None)
            kind = GIFT_CARD
        else:
            key_id = product_item(sanitize_sku(text(li.get("sku"))), text(li.get("title")), description, settings)
            kind = PRODUCT
        qty = Decimal(quantity) if quantity > 0 else Decimal(1)
        unit = (net / qty).quantize(UNIT_PLACES)
        if quantize(unit * qty) != net:  # keep Qty x UnitPrice == Amount (QBO checks it)
            qty, unit = Decimal(1), net
            description = f"{description} (x{quantity})"
        lines.append(PlanLine(
            kind=kind, description=f"Refund: {description}"[:DESCRIPTION_MAX], qty=qty, unit_price=unit, amount=net,
            taxable=line_tax > 0, item_key=key_id[0], item_id=key_id[1], item_name=key_id[2],
            sku=sanitize_sku(text(li.get("sku"))) if kind == PRODUCT else None, source_id=text(rli.get("line_item_id")),
            gross_amount=subtotal if taxes_included else None,
        ))
    return tax_total


def _refunded_shipping_and_adjustments(refund: Mapping[str, Any], settings: SyncSettings, read: Any,
                                       taxes_included: bool, lines: list[PlanLine]
                                       ) -> tuple[Decimal, Decimal, Decimal]:
    """Shipping refunded, and refund adjustments (discrepancies etc.) as visible lines; returns
    (shipping total, adjustments total, their tax)."""
    ship_item_id = shipping_item_id(settings)
    tax_total = ZERO
    shipping_total = ZERO
    adjustments_total = ZERO
    shipping_from_adjustments = False
    for a, adj in enumerate(objects(refund, "order_adjustments")):
        where = f"order_adjustments[{a}]"
        amount = -read.amount(adj, "amount", where)
        adj_tax = -read.amount(adj, "tax_amount", where, default=ZERO)
        tax_total += adj_tax
        kind_name = text(adj.get("kind")) or "adjustment"
        if kind_name == "shipping_refund":
            shipping_from_adjustments = True
            shipping_total += amount
            lines.append(_shipping_line(amount, adj_tax, ship_item_id, taxes_included, text(adj.get("id"))))
            continue
        if not amount:
            continue
        adjustments_total += amount
        label = "Refund discrepancy" if kind_name == "refund_discrepancy" else f"Refund adjustment ({kind_name})"
        reason = text(adj.get("reason"))
        lines.append(PlanLine(
            kind=ADJUSTMENT, description=(f"{label}: {reason}" if reason else label)[:DESCRIPTION_MAX],
            qty=Decimal(1), unit_price=amount, amount=amount, taxable=False,
            item_key="special:refund_adjustment", source_id=text(adj.get("id")),
        ))
    if not shipping_from_adjustments:  # newer payloads: refund_shipping_lines
        for s, rsl in enumerate(objects(refund, "refund_shipping_lines")):
            where = f"refund_shipping_lines[{s}]"
            amount = read.amount(rsl, "subtotal_amount", where, default=ZERO)
            ship_tax = read.amount(rsl, "tax_amount", where, default=ZERO)
            tax_total += ship_tax
            if amount:
                shipping_total += amount
                lines.append(_shipping_line(amount, ship_tax, ship_item_id, taxes_included, text(rsl.get("id"))))
    return shipping_total, adjustments_total, tax_total


def _refund_tax_mode(settings: SyncSettings, taxes_included: bool, tax_total: Decimal, lines: list[PlanLine]) -> str:
    """How the refund document carries the tax refunded; a tax line when tax is an item."""
    tax_mode = tax_mode_for(settings, taxes_included)
    if tax_mode == TAX_AS_LINE and tax_total:
        lines.append(PlanLine(kind=TAX, description="Sales tax refunded", qty=Decimal(1), unit_price=tax_total,
                              amount=tax_total, taxable=False, item_id=settings.tax_item_id,
                              item_key=None if settings.tax_item_id else "special:tax"))
    return tax_mode


def _refund_doc_type_and_balance(refund: Mapping[str, Any], settings: SyncSettings, read: Any,
                                 document_total: Decimal, order_doc_type: str | None, invoice_paid: bool
                                 ) -> tuple[str, BalanceCheck]:
    """RefundReceipt (money out) or CreditMemo (a credit on the invoice), and the check of the document
    total against the money that actually left."""
    expected = refunded_transactions_total(refund, read)
    sale = (kind_for_setting(settings.document_type) if order_doc_type is None
            else kind_or_none(order_doc_type) or SALES_RECEIPT)
    # A paid invoice's money went back out of the bank, not into a credit: a receipt of the refund.
    doc_type = (REFUND_RECEIPT.entity if sale.takes_payments and invoice_paid and expected > 0
                else sale.refunded_as or REFUND_RECEIPT.entity)
    no_money = not any(tx.get("kind") == "refund" for tx in objects(refund, "transactions"))
    if kind_of(doc_type).leaves_credit and no_money:
        expected = document_total  # lines removed from an unpaid invoice: a credit, no money to check against
    if document_total == expected:
        balance = BalanceCheck(expected, document_total, True, None)
    else:
        balance = BalanceCheck(expected, document_total, False, (
            f"refund lines + tax total {format_money(document_total)} but Shopify refunded "
            f"{format_money(expected)} in transactions (difference {format_money(document_total - expected)})"))
    return doc_type, balance


def _refund_private_note(refund: Mapping[str, Any], refund_id: str, order_id: str, order_name: str,
                         base_number: str, marker: str) -> str:
    """The refund document's private note: the refund, its order and sale document, their markers, the note."""
    note = text(refund.get("note"))
    private_note = (f"Refund {refund_id} of Shopify order {order_name} (QuickBooks document {base_number}) "
                    f"[{marker}] [order {order_marker(order_id)}]")
    if note:
        private_note += f"\nNote: {note}"
    return private_note[:PRIVATE_NOTE_MAX]


def plan_refund(refund: Mapping[str, Any], order: Mapping[str, Any], settings: SyncSettings,
                shop: ShopFacts | None = None, order_doc_number: str | None = None,
                order_doc_type: str | None = None, invoice_paid: bool = False) -> RefundPlan:
    """Translate a Shopify refund of order into a RefundPlan; raises TranslationError.

    Receipt mode: a RefundReceipt (money out). Invoice mode: a CreditMemo against the customer's
    open invoice; but when the invoice was paid (invoice_paid) and money actually left, a
    RefundReceipt, since the money went back out of the bank rather than into a credit."""
    if not isinstance(refund, Mapping) or not isinstance(order, Mapping):
        raise TranslationError("refund", "expected JSON objects")
    shop = shop or ShopFacts()
    refund_id, order_id, order_name = _refund_ids(refund, order)
    read, currency, currency_ref = money_reader_for(order, settings, shop)
    company = settings.company
    taxes_included = bool(order.get("taxes_included"))

    lines: list[PlanLine] = []
    goods_tax = _refunded_goods_lines(refund, order, settings, read, lines)
    shipping_total, adjustments_total, other_tax = _refunded_shipping_and_adjustments(
        refund, settings, read, taxes_included, lines)
    tax_total = quantize(goods_tax + other_tax)
    tax_mode = _refund_tax_mode(settings, taxes_included, tax_total, lines)

    lines_sum = sum_money(line.amount for line in lines)
    document_total = quantize(lines_sum + (tax_total if tax_mode != TAX_AS_LINE else ZERO))
    doc_type, balance = _refund_doc_type_and_balance(refund, settings, read, document_total, order_doc_type,
                                                     invoice_paid)

    base_number = order_doc_number or doc_number_for(order_name, settings.doc_number_prefix)
    marker = refund_marker(refund_id)
    when = refund_moment(refund)
    return code_refund(RefundPlan(
        doc_type=doc_type, refund_id=refund_id, order_id=order_id, order_name=order_name,
        source_key=f"refund:{refund_id}", doc_number=refund_doc_number(base_number, refund_id),
        order_doc_number=base_number, marker=marker,
        private_note=_refund_private_note(refund, refund_id, order_id, order_name, base_number, marker),
        txn_date=txn_date_for(when, shop.timezone), currency=currency, currency_ref=currency_ref,
        customer=identity_for(order), lines=tuple(lines), tax_total=tax_total, tax_mode=tax_mode,
        shipping_total=quantize(shipping_total), adjustments_total=quantize(adjustments_total),
        document_total=document_total, balance=balance, us_company=company.is_us,
        taxable_tax_code_id=settings.taxable_tax_code_id, exempt_tax_code_id=settings.exempt_tax_code_id,
        class_id=settings.class_id, department_id=settings.department_id,
        exchange_rate=foreign_exchange_rate(order, settings, shop, currency) if currency_ref else None,
    ), order, settings)  # non-US: the order's tax codes per line


def _shipping_line(amount: Decimal, tax: Decimal, ship_item_id: str | None, taxes_included: bool,
                   source_id: str | None) -> PlanLine:
    net = amount - tax if taxes_included else amount
    return PlanLine(kind=SHIPPING, description="Shipping refunded", qty=Decimal(1), unit_price=net, amount=net,
                    taxable=tax > 0, item_id=ship_item_id, item_key=None if ship_item_id else "special:shipping",
                    source_id=source_id, gross_amount=amount if taxes_included else None)


def render_refund(plan: RefundPlan, refs: Refs, deposit_account_id: str | None = None) -> dict[str, Any]:
    """The RefundReceipt / CreditMemo create body; a RefundReceipt needs the money-out account."""
    if kind_of(plan.doc_type).carries_deposit_account and not deposit_account_id:
        raise TranslationError("refund_account_id", "a Refund Receipt needs the account the money left from")
    out: list[dict[str, Any]] = []
    for n, line in enumerate(plan.lines, start=1):
        out.append(dict(sales_item_line(plan, line, refs), LineNum=n))
    body: dict[str, Any] = {
        "DocNumber": plan.doc_number, "TxnDate": plan.txn_date.isoformat(), "PrivateNote": plan.private_note,
        "CustomerRef": {"value": refs.customer_id}, "Line": out,
    }
    body.update(tax_header(plan))  # Shopify's tax, not QBO's
    if plan.currency_ref:
        body["CurrencyRef"] = {"value": plan.currency_ref}
        if plan.exchange_rate is not None:
            body["ExchangeRate"] = plan.exchange_rate
    if plan.class_id:
        body["ClassRef"] = {"value": plan.class_id}
    if plan.department_id:
        body["DepartmentRef"] = {"value": plan.department_id}
    if kind_of(plan.doc_type).carries_deposit_account:
        body["DepositToAccountRef"] = {"value": deposit_account_id}
    return body
