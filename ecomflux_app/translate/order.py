"""Shopify order -> OrderPlan (what to post, with a balance check) -> QBO SalesReceipt/Invoice JSON.

Money: every amount is read from the order's *_set in one currency (shop_money, or
presentment_money when a multicurrency company posts in the buyer's currency) as Decimal.

The document carries the order AS SOLD: a refund that sent money back is a document of its own
(translate.refund), so its lines, shipping and tax are added back here whenever the payload is
already net of it. Refunds that moved no money (lines taken off before payment) stay netted.

What the balance check compares (BalanceCheck):
    expected = Shopify's current_total_price (reflects edits and refunds) plus what the refunds that
               moved money took off it (their lines' subtotal and tax, shipping refunded and its tax,
               duties refunded, refund adjustments: for a refund that balances, its transactions):
               the total as sold, less the edits that moved no money
    computed = sum of item lines (products, gift cards sold, shipping, duties, additional fees,
               tips, tax line)
               - discounts + TotalTax (line amounts are net of tax, also for taxes_included
               orders: QBO keeps Line.Amount net and the gross in TaxInclusiveAmt)
    i.e. the document total BEFORE gift-card redemptions. A gift card redeemed as payment is a
    visible negative line against the gift card liability item, so the QBO document total
    (plan.document_total, QBO TotalAmt) is expected - gift_card_redeemed: what was really paid.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any, Mapping

from .document_kinds import kind_for_setting
from .inclusive import net_discount, net_of_included_tax
from .item import sanitize_item_name, sanitize_sku
from .money import ZERO, MoneyError, format_money, quantize, sum_money
from .plan import (
    CENT_STEP, DESCRIPTION_MAX, DISCOUNT, DOC_NUMBER_MAX, DUTY, FEE, GIFT_CARD, GIFT_CARD_GATEWAY, MARKER_PREFIX,
    PRIVATE_NOTE_MAX, PRODUCT, REDEMPTION, SHIPPING, SHIPPING_ITEM_ID, TAX, TAX_AS_LINE, TAX_EXCLUDED,
    TAX_INCLUSIVE, TAX_US, TIP, BalanceCheck, DiscountEntry, OrderPlan, PlanLine, Refs, RemovedLine, ShopFacts,
    TaxEntry, TranslationError,
)
from .reading import (
    MoneyReader, choose_currency, doc_number_for, exchange_rate_for, identity_for, money_reader_for, moved_money,
    objects, order_marker, rate_of, text, txn_date_for, whole,
)
from .render import document_totals, render_document
from .settings import SyncSettings
from .tax_codes import applies as global_tax_applies, assign_tax_codes, destination_country, shopify_tax_lines

MAX_QUANTITY = 10_000_000

__all__ = [
    "BalanceCheck", "DiscountEntry", "MoneyReader", "OrderPlan", "PlanLine", "Refs", "RemovedLine", "ShopFacts",
    "TaxEntry", "TranslationError", "doc_number_for", "document_totals", "identity_for", "money_reader_for",
    "order_marker", "plan_order", "render_document", "txn_date_for", "CENT_STEP", "DOC_NUMBER_MAX",
    "MARKER_PREFIX", "PRIVATE_NOTE_MAX", "SHIPPING_ITEM_ID", "TAX_AS_LINE", "TAX_EXCLUDED", "TAX_INCLUSIVE",
    "TAX_US", "MoneyError", "product_item",
]


def _discount_titles(order: Mapping[str, Any]) -> list[tuple[str, str | None, str]]:
    """(title, code, target_type) per discount_applications index."""
    out: list[tuple[str, str | None, str]] = []
    for i, app in enumerate(objects(order, "discount_applications")):
        code = text(app.get("code")) if app.get("type") == "discount_code" else None
        title = code or text(app.get("title")) or text(app.get("description")) or "Discount"
        target = text(app.get("target_type")) or "line_item"
        out.append((title, code, target))
    return out


def _prorate(amount: Decimal, current: int, original: int) -> Decimal:
    if original <= 0 or current == original:
        return amount
    return quantize(amount * current / original)


def _refunded_quantity(order: Mapping[str, Any], line_id: str | None, money: bool) -> int:
    """Units of a line taken off by the order's refunds that moved money (money=True) or by the others."""
    refunded = 0
    if line_id:
        for r, refund in enumerate(objects(order, "refunds")):
            if moved_money(refund) != money:
                continue
            for k, rli in enumerate(objects(refund, "refund_line_items")):
                if text(rli.get("line_item_id")) == line_id:
                    refunded += whole(rli.get("quantity"), f"refunds[{r}].refund_line_items[{k}].quantity")
    return refunded


def _current_quantity(order: Mapping[str, Any], li: Mapping[str, Any], where: str, quantity: int) -> int:
    """Units as sold: current_quantity plus what money-moving refunds took back (they are documents of
    their own); older payloads without current_quantity: quantity minus what the edits took off."""
    line_id = text(li.get("id"))
    if li.get("current_quantity") is not None:
        return whole(li["current_quantity"], f"{where}.current_quantity") + _refunded_quantity(order, line_id, True)
    return max(quantity - _refunded_quantity(order, line_id, False), 0)


@dataclasses.dataclass
class _AddedBack:
    """What the money-moving refunds in the payload took off Shopify's current_* figures."""

    total: Decimal = ZERO  # off current_total_price
    tax: Decimal = ZERO  # off current_total_tax
    duties: Decimal = ZERO  # off current_total_duties


def _money_refunds_added_back(order: Mapping[str, Any], read: "MoneyReader") -> _AddedBack:
    """The as-sold correction: each money-moving refund's lines, shipping, duties and adjustments with
    their tax (gross amounts for taxes_included orders), i.e. what its refund document adds up to."""
    out = _AddedBack()
    included = bool(order.get("taxes_included"))
    for r, refund in enumerate(objects(order, "refunds")):
        if not moved_money(refund):
            continue
        where = f"refunds[{r}]"
        for k, rli in enumerate(objects(refund, "refund_line_items")):
            subtotal = read.amount(rli, "subtotal", f"{where}.refund_line_items[{k}]", default=ZERO)
            tax = read.amount(rli, "total_tax", f"{where}.refund_line_items[{k}]", default=ZERO)
            out.total += subtotal + (ZERO if included else tax)
            out.tax += tax
        shipping_adjusted = False
        for a, adj in enumerate(objects(refund, "order_adjustments")):
            if adj.get("kind") != "shipping_refund":  # a discrepancy: money back beyond (or short of) the lines
                amount = -read.amount(adj, "amount", f"{where}.order_adjustments[{a}]", default=ZERO)
                tax = -read.amount(adj, "tax_amount", f"{where}.order_adjustments[{a}]", default=ZERO)
                out.total += amount + tax
                out.tax += tax
                continue
            shipping_adjusted = True
            amount = abs(read.amount(adj, "amount", f"{where}.order_adjustments[{a}]"))
            tax = abs(read.amount(adj, "tax_amount", f"{where}.order_adjustments[{a}]", default=ZERO))
            out.total += amount + (ZERO if included else tax)
            out.tax += tax
        if not shipping_adjusted:  # newer payloads: refund_shipping_lines
            for s, rsl in enumerate(objects(refund, "refund_shipping_lines")):
                amount = read.amount(rsl, "subtotal_amount", f"{where}.refund_shipping_lines[{s}]", default=ZERO)
                tax = read.amount(rsl, "tax_amount", f"{where}.refund_shipping_lines[{s}]", default=ZERO)
                out.total += amount + (ZERO if included else tax)
                out.tax += tax
        duties = read.amount(refund, "total_duties", where, default=ZERO)
        out.total += duties
        out.duties += duties
    out.total, out.tax, out.duties = quantize(out.total), quantize(out.tax), quantize(out.duties)
    return out


def _proration_fix(order: Mapping[str, Any], read: "MoneyReader") -> Decimal:
    """Cent correction so prorated discounts on partially removed lines match Shopify's own total.

    A line reduced from 3 to 1 keeps a third of its discount; Shopify may round that third the
    other way. When its current_total_discounts differs from ours by no more than a cent per
    prorated allocation, the difference goes to the first prorated allocation.
    """
    if not (order.get("current_total_discounts_set") or order.get("current_total_discounts") is not None):
        return ZERO
    ours = ZERO
    prorated = 0
    for i, li in enumerate(objects(order, "line_items")):
        where = f"line_items[{i}]"
        quantity = whole(li.get("quantity"), f"{where}.quantity")
        current = _current_quantity(order, li, where, quantity)
        if current <= 0:
            continue
        for j, alloc in enumerate(objects(li, "discount_allocations")):
            ours += _prorate(read.amount(alloc, "amount", f"{where}.discount_allocations[{j}]"), current, quantity)
            prorated += 1 if current < quantity else 0
    if not prorated:
        return ZERO
    for i, sl in enumerate(objects(order, "shipping_lines")):
        if sl.get("is_removed"):
            continue
        allocs = objects(sl, "discount_allocations")
        if allocs:
            ours += sum_money(read.amount(a, "amount", f"shipping_lines[{i}].discount_allocations[{j}]")
                              for j, a in enumerate(allocs))
        else:
            price = read.amount(sl, "price", f"shipping_lines[{i}]")
            ours += price - read.amount(sl, "discounted_price", f"shipping_lines[{i}]", default=price)
    theirs = read.amount(order, "current_total_discounts", "order", default=ours)
    diff = theirs - ours
    return diff if abs(diff) <= CENT_STEP * prorated else ZERO


def product_item(sku: str | None, title: str | None, description: str,
                 settings: SyncSettings) -> tuple[str | None, str | None, str | None]:
    """(item key, item id from settings, item name) for a product line: the SAME item for an order
    line and for its refund (SKU first, then title, then the fallback item)."""
    if sku:
        return f"sku:{sku}", None, sanitize_item_name(description)  # the variant: one QBO item per SKU
    if title:
        return f"title:{sanitize_item_name(title)}", None, sanitize_item_name(title)
    if settings.fallback_item_id:
        return None, settings.fallback_item_id, None
    return "special:fallback", None, None


def shipping_item_id(settings: SyncSettings) -> str | None:
    """The item shipping posts to, on an order and on its refund: QBO's own shipping line where the
    company allows it, else the shipping item from settings (None: one is created)."""
    return SHIPPING_ITEM_ID if settings.company.shipping_allowed else settings.shipping_item_id


def tax_mode_for(settings: SyncSettings, taxes_included: bool) -> str:
    """How a document carries Shopify's tax, on an order and on its refund (plan.TAX_*)."""
    if settings.tax_handling == "tax_line" and not taxes_included:
        return TAX_AS_LINE
    if taxes_included:
        return TAX_INCLUSIVE
    return TAX_US if settings.company.is_us else TAX_EXCLUDED


class _DiscountTally:
    """The order's discounts per discount application, gathered as the lines carrying them are read."""

    def __init__(self, read: MoneyReader, titles: list[tuple[str, str | None, str]], proration_fix: Decimal) -> None:
        self.read = read
        self.titles = titles
        self.proration_fix = proration_fix  # goes to the first prorated allocation, then is spent
        self.by_index: dict[int, Decimal] = {}  # -1: no application index; -2: a shipping line's own discount

    def allocations(self, obj: Mapping[str, Any], where: str, current: int, original: int
                    ) -> list[tuple[int, Decimal]]:
        """A line's discount allocations as (application index, amount), prorated to the units still sold."""
        read = self.read
        out: list[tuple[int, Decimal]] = []
        for j, alloc in enumerate(objects(obj, "discount_allocations")):
            amount = _prorate(read.amount(alloc, "amount", f"{where}.discount_allocations[{j}]"), current, original)
            if self.proration_fix and 0 < current < original:
                amount += self.proration_fix
                self.proration_fix = ZERO
            idx = alloc.get("discount_application_index")
            index = whole(idx, f"{where}.discount_allocations[{j}].discount_application_index") if idx is not None else -1
            out.append((index, amount))
        return out

    def note(self, allocs: list[tuple[int, Decimal]]) -> None:
        """Count a line's allocations towards their discount applications."""
        for index, amount in allocs:
            self.by_index[index] = self.by_index.get(index, ZERO) + amount

    def label(self, allocs: list[tuple[int, Decimal]]) -> str:
        """The names of the discounts on a line, for its discount line's description."""
        titles = self.titles
        names = []
        for index, _ in allocs:
            name = titles[index][0] if 0 <= index < len(titles) else "Discount"
            if name not in names:
                names.append(name)
        return ", ".join(names) or "Discount"

    def entries(self) -> tuple[DiscountEntry, ...]:
        """One entry per discount application the order still carries, those without an index last."""
        titles = self.titles
        return tuple(
            DiscountEntry(
                title=(titles[i][0] if 0 <= i < len(titles) else ("Shipping discount" if i == -2 else "Discount")),
                code=titles[i][1] if 0 <= i < len(titles) else None,
                amount=amount,
                target=(titles[i][2] if 0 <= i < len(titles) else ("shipping_line" if i == -2 else "line_item")),
            )
            for i, amount in sorted(self.by_index.items(), key=lambda kv: (kv[0] < 0, kv[0]))
            if amount
        )


# line index -> (discount on it, Shopify's tax on it, index of its discount line or None):
# what a tax-inclusive order needs to split each amount into net + tax.
_Taxed = dict[int, tuple[Decimal, Decimal, int | None]]


@dataclasses.dataclass
class _Goods:
    """What the goods lines add up to, and what they leave to the later steps."""

    tips_total: Decimal
    tip_line_pending: Decimal  # tips not rung up as a line item: they get a tip line of their own
    subtotal: Decimal = ZERO  # products + gift cards sold, before discounts
    gift_card_sold: Decimal = ZERO
    line_discounts: Decimal = ZERO
    # product lines Shopify marks taxable, whatever their tax_lines say
    declared_taxable: list[int] = dataclasses.field(default_factory=list)
    removed: list[RemovedLine] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Tax:
    """Shopify's tax on the order and how the document carries it."""

    total: Decimal
    entries: tuple[TaxEntry, ...]
    mode: str


def _order_id_and_name(order: Mapping[str, Any]) -> tuple[str, str]:
    """The order's id and name (#1001), both required."""
    order_id = text(order.get("id"))
    if not order_id:
        raise TranslationError("id", "missing order id")
    order_name = text(order.get("name")) or (f"#{order['order_number']}" if order.get("order_number") else None)
    if not order_name:
        raise TranslationError("name", "missing order name")
    return order_id, order_name


def _currency(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts
              ) -> tuple[MoneyReader, str, str | None, Decimal | None]:
    """The currency the document is in and the reader of its amounts; for a foreign currency, its
    CurrencyRef and Shopify's exchange rate to the home currency."""
    money_key, currency, plain_ok, currency_ref = choose_currency(order, settings, shop)
    read = MoneyReader(money_key, plain_ok)
    shop_currency = (text(order.get("currency")) or shop.currency).upper()
    home_currency = settings.company.home_currency
    exchange_rate = exchange_rate_for(order, currency, home_currency, shop_currency) if currency_ref else None
    return read, currency, currency_ref, exchange_rate


def _tips_total(order: Mapping[str, Any], read: MoneyReader) -> Decimal:
    """Tips the buyer added at checkout."""
    return read.amount(order, "total_tip_received", "order", default=ZERO) \
        if (order.get("total_tip_received_set") or order.get("total_tip_received") not in (None, "")) else ZERO


def _discount_line(description: str, discount: Decimal, taxable: bool, settings: SyncSettings,
                   source_id: str | None) -> PlanLine:
    """A discount as an item line of its own (discounts as items), right after the line it reduces."""
    return PlanLine(
        kind=DISCOUNT, description=description[:DESCRIPTION_MAX],
        qty=Decimal(1), unit_price=-discount, amount=-discount, taxable=taxable,
        item_id=settings.discount_item_id, source_id=source_id,
        item_key=None if settings.discount_item_id else "special:discount",
    )


def _goods_lines(order: Mapping[str, Any], settings: SyncSettings, read: MoneyReader, tally: _DiscountTally,
                 lines: list[PlanLine], taxed: _Taxed, use_discount_items: bool) -> _Goods:
    """The goods sold: one line per order line still sold, each discount as a line of its own when
    discounts are items; lines and units taken off by edits are listed as removed."""
    tips_total = _tips_total(order, read)
    goods = _Goods(tips_total=tips_total, tip_line_pending=tips_total)
    items = objects(order, "line_items")
    if not items:
        raise TranslationError("line_items", "order has no line items")
    for i, li in enumerate(items):
        where = f"line_items[{i}]"
        quantity = whole(li.get("quantity"), f"{where}.quantity")
        if not 0 <= quantity <= MAX_QUANTITY:
            raise TranslationError(f"{where}.quantity", f"{quantity} is not a plausible quantity")
        current = _current_quantity(order, li, where, quantity)
        description = text(li.get("name")) or text(li.get("title")) or f"Line {i + 1}"
        if current <= 0:
            goods.removed.append(RemovedLine(text(li.get("id")), description, quantity))
            continue
        if current > quantity:
            raise TranslationError(f"{where}.current_quantity", f"{current} is more than quantity {quantity}")
        _goods_line(li, where, description, quantity, current, settings, read, tally, lines, taxed, goods,
                    use_discount_items)
        if current < quantity:
            goods.removed.append(RemovedLine(text(li.get("id")), description, quantity - current))
    return goods


def _goods_line(li: Mapping[str, Any], where: str, description: str, quantity: int, current: int,
                settings: SyncSettings, read: MoneyReader, tally: _DiscountTally, lines: list[PlanLine],
                taxed: _Taxed, goods: _Goods, use_discount_items: bool) -> None:
    """One order line at its price times the units still sold, then its discount line if it has one."""
    price = read.amount(li, "price", where)
    amount = quantize(price * current)
    allocs = tally.allocations(li, where, current, quantity)
    discount = sum_money(a for _, a in allocs)
    line_tax = sum_money(_prorate(read.amount(t, "price", f"{where}.tax_lines[{k}]"), current, quantity)
                         for k, t in enumerate(objects(li, "tax_lines")))
    sku = sanitize_sku(text(li.get("sku")))
    kind, item_key, item_id, item_name, taxable = _sold_item(li, sku, description, amount, line_tax, len(lines),
                                                             settings, goods)
    line_index = len(lines)
    taxed[line_index] = (discount, line_tax, None)
    lines.append(PlanLine(
        kind=kind, description=description[:DESCRIPTION_MAX], qty=Decimal(current), unit_price=price,
        amount=amount, taxable=taxable, item_key=item_key, item_id=item_id, item_name=item_name,
        sku=sku if kind == PRODUCT else None, source_id=text(li.get("id")),
        tax_lines=shopify_tax_lines(li, where, read, current, quantity) if global_tax_applies(settings) else (),
        tax_exempt=kind == PRODUCT and li.get("taxable") is False,
    ))
    if discount:
        tally.note(allocs)
        goods.line_discounts += discount
        if use_discount_items:
            taxed[line_index] = (discount, line_tax, len(lines))
            lines.append(_discount_line(f"Discount ({tally.label(allocs)}) on {description}", discount, taxable,
                                        settings, text(li.get("id"))))


def _sold_item(li: Mapping[str, Any], sku: str | None, description: str, amount: Decimal, line_tax: Decimal,
               line_index: int, settings: SyncSettings, goods: _Goods
               ) -> tuple[str, str | None, str | None, str | None, bool]:
    """What an order line sold and the item it posts to, counted in the goods' totals: a tip rung up as an
    item, a gift card (a liability, not revenue) or a product; as (kind, item key, item id, name, taxable)."""
    is_gift_card = bool(li.get("gift_card"))
    title = text(li.get("title"))
    is_tip = (goods.tip_line_pending > 0 and not is_gift_card and li.get("product_id") in (None, "")
              and (title or "").strip().lower() in ("tip", "tips") and amount <= goods.tip_line_pending)
    if is_tip:
        kind = TIP
        item_id = settings.tips_item_id
        item_key: str | None = None if item_id else "special:tip"
        taxable = False
        goods.tip_line_pending -= amount
        item_name = None
    elif is_gift_card:
        kind = GIFT_CARD
        item_id = settings.gift_card_liability_item_id
        item_key = None if item_id else "special:gift_card"
        taxable = False
        goods.gift_card_sold += amount
        goods.subtotal += amount
        item_name = None
    else:
        kind = PRODUCT
        item_key, item_id, item_name = product_item(sku, title, description, settings)
        taxable = bool(li.get("taxable", True)) and line_tax > 0
        if li.get("taxable", True):
            goods.declared_taxable.append(line_index)
        goods.subtotal += amount
    return kind, item_key, item_id, item_name, taxable


def _shipping_lines(order: Mapping[str, Any], settings: SyncSettings, read: MoneyReader, tally: _DiscountTally,
                    lines: list[PlanLine], taxed: _Taxed, use_discount_items: bool) -> tuple[Decimal, Decimal]:
    """Shipping: one line per shipping line at its full price, its discount kept visible (a line of its
    own when discounts are items); returns (shipping total, shipping discounts)."""
    global_tax = global_tax_applies(settings)
    shipping_total = ZERO
    shipping_discounts = ZERO
    ship_item_id = shipping_item_id(settings)
    for i, sl in enumerate(objects(order, "shipping_lines")):
        where = f"shipping_lines[{i}]"
        if sl.get("is_removed"):
            continue
        price = read.amount(sl, "price", where)
        allocs = tally.allocations(sl, where, 1, 1)
        if allocs:
            discount = sum_money(a for _, a in allocs)
        else:
            discounted = read.amount(sl, "discounted_price", where, default=price)
            discount = price - discounted
            if discount:
                allocs = [(-2, discount)]
        ship_tax = sum_money(read.amount(t, "price", f"{where}.tax_lines[{k}]")
                             for k, t in enumerate(objects(sl, "tax_lines")))
        title = text(sl.get("title")) or text(sl.get("code")) or "Shipping"
        shipping_total += price
        ship_index = len(lines)
        taxed[ship_index] = (discount, ship_tax, None)
        lines.append(PlanLine(
            kind=SHIPPING, description=f"Shipping: {title}"[:DESCRIPTION_MAX], qty=Decimal(1), unit_price=price,
            amount=price, taxable=ship_tax > 0, item_id=ship_item_id,
            item_key=None if ship_item_id else "special:shipping", source_id=text(sl.get("id")),
            tax_lines=shopify_tax_lines(sl, where, read) if global_tax else (),
        ))
        if discount:
            shipping_discounts += discount
            tally.note(allocs)
            if use_discount_items:
                taxed[ship_index] = (discount, ship_tax, len(lines))
                label = tally.label([a for a in allocs if a[0] != -2]) if any(a[0] != -2 for a in allocs) else "Shipping discount"
                lines.append(_discount_line(f"Shipping discount ({label})", discount, ship_tax > 0, settings,
                                            text(sl.get("id"))))
    return shipping_total, shipping_discounts


def _shipping_refunded_lines(order: Mapping[str, Any], settings: SyncSettings, read: MoneyReader,
                             lines: list[PlanLine], taxed: _Taxed) -> tuple[Decimal, list[str]]:
    """Shipping taken off by edits (refunds that moved no money) as visible negative shipping lines;
    returns (shipping refunded, the ids of the refunds the document thereby reflects)."""
    # current_* figures are net of these edits. Refunds that moved money are documents of their own:
    # the sale keeps its shipping.
    ship_item_id = shipping_item_id(settings)
    shipping_refunded = ZERO
    refund_ids: list[str] = []
    for r, refund in enumerate(objects(order, "refunds")):
        if moved_money(refund):
            continue
        if text(refund.get("id")):
            refund_ids.append(str(refund.get("id")))
        for a, adj in enumerate(objects(refund, "order_adjustments")):
            if adj.get("kind") != "shipping_refund":
                continue
            refunded = abs(read.amount(adj, "amount", f"refunds[{r}].order_adjustments[{a}]"))
            refunded_tax = abs(read.amount(adj, "tax_amount", f"refunds[{r}].order_adjustments[{a}]", default=ZERO))
            if refunded:
                shipping_refunded += refunded
                taxed[len(lines)] = (ZERO, -refunded_tax, None)
                lines.append(PlanLine(
                    kind=SHIPPING, description="Shipping refunded", qty=Decimal(1), unit_price=-refunded,
                    amount=-refunded, taxable=False, item_id=ship_item_id,
                    item_key=None if ship_item_id else "special:shipping", source_id=text(refund.get("id")),
                ))
    return shipping_refunded, refund_ids


def _duties_line(order: Mapping[str, Any], settings: SyncSettings, read: MoneyReader, lines: list[PlanLine],
                 added_back: _AddedBack) -> Decimal:
    """Duties (cross-border) as one line: the order total says what is still charged."""
    duties_total = ZERO
    duties_set = order.get("current_total_duties_set") or order.get("original_total_duties_set")
    if isinstance(duties_set, Mapping):
        duties_total = read.amount({"d_set": duties_set}, "d", "current_total_duties")
        if order.get("current_total_duties_set"):
            duties_total += added_back.duties
    else:
        for i, li in enumerate(objects(order, "line_items")):
            for k, duty in enumerate(objects(li, "duties")):
                duties_total += read.amount(duty, "price", f"line_items[{i}].duties[{k}]")
    if duties_total:
        lines.append(PlanLine(
            kind=DUTY, description="Duties", qty=Decimal(1), unit_price=duties_total, amount=duties_total,
            taxable=False, item_id=settings.duties_item_id,
            item_key=None if settings.duties_item_id else "special:duties",
        ))
    return duties_total


def _fees_line(order: Mapping[str, Any], read: MoneyReader, lines: list[PlanLine]) -> None:
    """Additional fees Shopify charged on top (e.g. import fees collected at checkout) as one line."""
    fees_set = order.get("current_total_additional_fees_set")
    fees_total = read.amount({"f_set": fees_set}, "f", "current_total_additional_fees") \
        if isinstance(fees_set, Mapping) else ZERO
    if fees_total:
        lines.append(PlanLine(
            kind=FEE, description="Additional fees", qty=Decimal(1), unit_price=fees_total, amount=fees_total,
            taxable=False, item_key="special:fees",
        ))


def _tip_line(settings: SyncSettings, lines: list[PlanLine], tip_line_pending: Decimal) -> None:
    """Tips not already rung up as a line item, as a tip line."""
    if tip_line_pending > 0:
        lines.append(PlanLine(
            kind=TIP, description="Tip", qty=Decimal(1), unit_price=tip_line_pending, amount=tip_line_pending,
            taxable=False, item_id=settings.tips_item_id,
            item_key=None if settings.tips_item_id else "special:tip",
        ))


def _tax(order: Mapping[str, Any], settings: SyncSettings, read: MoneyReader, lines: list[PlanLine],
         taxed: _Taxed, declared_taxable: list[int], added_back: _AddedBack) -> _Tax:
    """Tax exactly as Shopify computed it: a tax line (tax as an item), amounts split into net + tax
    (taxes included), or the document's tax total; marks the taxable lines when only the order has tax."""
    tax_total = read.amount(order, "current_total_tax", "order", default=ZERO) + added_back.tax \
        if (order.get("current_total_tax_set") or order.get("current_total_tax") is not None) \
        else read.amount(order, "total_tax", "order", default=ZERO)
    tax_entries = tuple(
        TaxEntry(title=text(t.get("title")) or "Tax",
                 rate=rate_of(t.get("rate"), f"tax_lines[{k}].rate"),
                 amount=read.amount(t, "price", f"tax_lines[{k}]"))
        for k, t in enumerate(objects(order, "tax_lines"))
    )
    taxes_included = bool(order.get("taxes_included"))
    if tax_total and not any(line.taxable for line in lines):
        # Tax only at order level (no per-line tax_lines): the lines Shopify calls taxable carry it.
        for i in declared_taxable:
            lines[i] = dataclasses.replace(lines[i], taxable=True)
    tax_mode = tax_mode_for(settings, taxes_included)
    if tax_mode == TAX_AS_LINE:
        if tax_total:
            lines.append(PlanLine(
                kind=TAX, description="Sales tax: " + (", ".join(t.title for t in tax_entries) or "Tax"),
                qty=Decimal(1), unit_price=tax_total, amount=tax_total, taxable=False,
                item_id=settings.tax_item_id, item_key=None if settings.tax_item_id else "special:tax",
            ))
    elif tax_mode == TAX_INCLUSIVE:
        if not global_tax_applies(settings):  # tax_codes splits gross amounts by each line's code
            lines[:] = net_of_included_tax(lines, taxed, tax_total)
    return _Tax(tax_total, tax_entries, tax_mode)


def _tax_codes(order: Mapping[str, Any], settings: SyncSettings, lines: list[PlanLine], tax: _Tax
               ) -> tuple[tuple, str | None, tuple]:
    """Non-US companies: a QBO tax code on every line and Shopify's tax per QBO rate (translate.tax_codes);
    returns (tax rates, what keeps the document from posting, taxes the admin must map)."""
    tax_rates: tuple = ()
    tax_unmapped: tuple = ()
    tax_issue: str | None = None
    if global_tax_applies(settings) and tax.mode in (TAX_EXCLUDED, TAX_INCLUSIVE):
        coded = assign_tax_codes(lines, tax.total, tax.mode == TAX_INCLUSIVE, settings.company.tax_setup,
                                 settings.tax_code_map, settings.exempt_tax_code_id, destination_country(order))
        lines[:], tax_rates, tax_issue, tax_unmapped = list(coded.lines), coded.rates, coded.issue, coded.unmapped
    return tax_rates, tax_issue, tax_unmapped


def _redemption_line(order: Mapping[str, Any], settings: SyncSettings, read: MoneyReader, lines: list[PlanLine],
                     warnings: list[str]) -> Decimal:
    """Gift cards used as payment: a visible reduction against the gift card liability item."""
    redeemed, redemption_note = _gift_card_redeemed(order, read)
    if redemption_note:
        warnings.append(redemption_note)
    if redeemed:
        lines.append(PlanLine(
            kind=REDEMPTION, description="Gift card redeemed as payment", qty=Decimal(1),
            unit_price=-redeemed, amount=-redeemed, taxable=False,
            item_id=settings.gift_card_liability_item_id,
            item_key=None if settings.gift_card_liability_item_id else "special:gift_card",
        ))
    return redeemed


def _discount_line_amount(lines: list[PlanLine], taxed: _Taxed, discount_total: Decimal, tax_mode: str,
                          use_discount_items: bool) -> Decimal:
    """The document's discount line (DiscountLineDetail): nothing when discounts are item lines."""
    if use_discount_items:
        return ZERO
    if tax_mode == TAX_INCLUSIVE:
        # Net of the tax share: QBO adds TotalTax on top of net amounts.
        return sum_money(net_discount(lines[i], taxed[i]) for i in taxed)
    return discount_total


def _discount_description(discounts: tuple[DiscountEntry, ...], tax_mode: str) -> str:
    """The discount line's description: each discount with its code or title and amount."""
    return ("Discounts (tax included): " if tax_mode == TAX_INCLUSIVE else "Discounts: ") + "; ".join(
        f"{d.title}{' (shipping)' if d.target == 'shipping_line' else ''} {format_money(d.amount)}" for d in discounts
    ) if discounts else ""


def _balance_check(order: Mapping[str, Any], read: MoneyReader, lines: list[PlanLine], discount_line_amount: Decimal,
                   tax: _Tax, redeemed: Decimal, added_back: _AddedBack) -> tuple[Decimal, BalanceCheck]:
    """The rounding check against Shopify's total (see the module docstring); returns (document total, check)."""
    as_sold = order.get("current_total_price_set") or order.get("current_total_price") is not None
    expected = read.amount(order, "current_total_price", "order") + added_back.total if as_sold \
        else read.amount(order, "total_price", "order")
    lines_sum = sum_money(line.amount for line in lines)
    tax_added = tax.total if tax.mode in (TAX_US, TAX_EXCLUDED, TAX_INCLUSIVE) else ZERO
    document_total = quantize(lines_sum - discount_line_amount + tax_added)
    computed = quantize(document_total + redeemed)
    return document_total, _balance(expected, computed, document_total, tax.mode, tax.total,
                                    added_back.total if as_sold else ZERO)


def _private_note(order: Mapping[str, Any], order_id: str, order_name: str, marker: str) -> str:
    """The document's private note: the Shopify order, its marker and the order's note."""
    private_note = f"Shopify order {order_name} (id {order_id}) [{marker}]"
    note = text(order.get("note"))
    if note:
        private_note += f"\nNote: {note}"
    return private_note[:PRIVATE_NOTE_MAX]


def plan_order(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts | None = None) -> OrderPlan:
    """Translate a Shopify order (REST webhook shape) into an OrderPlan; raises TranslationError."""
    if not isinstance(order, Mapping):
        raise TranslationError("order", "expected a JSON object")
    shop = shop or ShopFacts()
    order_id, order_name = _order_id_and_name(order)
    company = settings.company
    warnings: list[str] = []

    read, currency, currency_ref, exchange_rate = _currency(order, settings, shop)

    # Non-US companies: discounts are item lines so each carries its line's tax code.
    global_tax = global_tax_applies(settings)
    use_discount_items = bool(settings.discount_item_id) or global_tax
    tally = _DiscountTally(read, _discount_titles(order), _proration_fix(order, read))
    added_back = _money_refunds_added_back(order, read)

    lines: list[PlanLine] = []
    taxed: _Taxed = {}
    goods = _goods_lines(order, settings, read, tally, lines, taxed, use_discount_items)
    shipping_total, shipping_discounts = _shipping_lines(order, settings, read, tally, lines, taxed, use_discount_items)
    shipping_refunded, refund_ids = _shipping_refunded_lines(order, settings, read, lines, taxed)
    duties_total = _duties_line(order, settings, read, lines, added_back)
    _fees_line(order, read, lines)
    _tip_line(settings, lines, goods.tip_line_pending)
    tax = _tax(order, settings, read, lines, taxed, goods.declared_taxable, added_back)
    redeemed = _redemption_line(order, settings, read, lines, warnings)
    tax_rates, tax_issue, tax_unmapped = _tax_codes(order, settings, lines, tax)

    discount_total = goods.line_discounts + shipping_discounts
    discounts = tally.entries()
    discount_line_amount = _discount_line_amount(lines, taxed, discount_total, tax.mode, use_discount_items)
    document_total, balance = _balance_check(order, read, lines, discount_line_amount, tax, redeemed, added_back)
    if tax_issue:
        balance = BalanceCheck(balance.expected, balance.computed, False, tax_issue)

    identity = identity_for(order)
    txn_date = txn_date_for(order, shop.timezone)
    sale_kind = kind_for_setting(settings.document_type)
    doc_type = sale_kind.entity
    gateway = _gateway(order)
    marker = order_marker(order_id)
    return OrderPlan(
        doc_type=doc_type, order_id=order_id, order_name=order_name, source_key=f"order:{order_id}",
        doc_number=doc_number_for(order_name, settings.doc_number_prefix), txn_date=txn_date,
        due_date=txn_date + timedelta(days=settings.invoice_terms_days) if sale_kind.takes_payments else None,
        private_note=_private_note(order, order_id, order_name, marker), marker=marker, currency=currency,
        home_currency=company.home_currency, currency_ref=currency_ref, exchange_rate=exchange_rate,
        customer=identity, lines=tuple(lines), discounts=discounts, discount_total=quantize(discount_total),
        discount_line_amount=quantize(discount_line_amount),
        discount_description=_discount_description(discounts, tax.mode), subtotal=quantize(goods.subtotal),
        shipping_total=quantize(shipping_total), shipping_discount_total=quantize(shipping_discounts),
        tax_total=tax.total, tax_mode=tax.mode, tax_lines=tax.entries, tips_total=quantize(goods.tips_total),
        duties_total=quantize(duties_total), gift_card_sold=quantize(goods.gift_card_sold), gift_card_redeemed=redeemed,
        document_total=document_total, payment_gateway=gateway,
        payment_method_id=_payment_method(settings.payment_method_map, gateway) if gateway else None,
        deposit_account_id=settings.clearing_account_for(gateway) or settings.deposit_account_id, class_id=settings.class_id,
        department_id=settings.department_id, bill_email=identity.email, removed_lines=tuple(goods.removed),
        balance=balance, warnings=tuple(warnings), us_company=company.is_us,
        reflected_refund_ids=tuple(refund_ids), shipping_refunded=quantize(shipping_refunded),
        taxable_tax_code_id=settings.taxable_tax_code_id, exempt_tax_code_id=settings.exempt_tax_code_id,
        discount_account_id=settings.discount_account_id, tax_rates=tax_rates, tax_unmapped=tax_unmapped,
    )


def _gift_card_redeemed(order: Mapping[str, Any], read: MoneyReader) -> tuple[Decimal, str | None]:
    """Gift card payments from order transactions (sale/capture on the gift_card gateway)."""
    transactions = order.get("transactions")
    gateways = _gateway_names(order)
    if not isinstance(transactions, list):
        if GIFT_CARD_GATEWAY in gateways:
            return ZERO, ("paid partly by gift card but the order carries no transactions: "
                          "the document shows the full total")
        return ZERO, None
    total = ZERO
    for k, tx in enumerate(transactions):
        if not isinstance(tx, Mapping):
            raise TranslationError(f"transactions[{k}]", "expected an object")
        if tx.get("gateway") != GIFT_CARD_GATEWAY or tx.get("status") not in ("success", None):
            continue
        kind = tx.get("kind")
        if kind not in ("sale", "capture"):
            continue  # money back to the card is its refund's own document: the sale keeps the redemption
        total += read.amount(tx, "amount", f"transactions[{k}]")
    return quantize(total), None


def _gateway_names(order: Mapping[str, Any]) -> list[str]:
    raw = order.get("payment_gateway_names")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise TranslationError("payment_gateway_names", "expected a list of gateway names")
    return [str(g) for g in raw if isinstance(g, (str, int))]


def _gateway(order: Mapping[str, Any]) -> str | None:
    names = [g for g in _gateway_names(order) if g]
    for name in names:
        if name != GIFT_CARD_GATEWAY:
            return name
    return text(order.get("gateway")) or (names[0] if names else None)


def _payment_method(mapping: Mapping[str, str], gateway: str) -> str | None:
    if gateway in mapping:
        return mapping[gateway]
    lowered = {k.lower(): v for k, v in mapping.items()}
    return lowered.get(gateway.lower()) or lowered.get("*") or lowered.get("default")


def _balance(expected: Decimal, computed: Decimal, document_total: Decimal, tax_mode: str,
             tax_total: Decimal, added_back: Decimal = ZERO) -> BalanceCheck:
    if computed == expected:
        if document_total < 0:
            why = "gift card redemptions exceed the order total" if document_total != computed else \
                "the order's remaining lines are worth less than their discounts"
            return BalanceCheck(expected, computed, False,
                                f"{why}: the QuickBooks document would total {format_money(document_total)}, "
                                f"below zero")
        return BalanceCheck(expected, computed, True, None)
    diff = computed - expected
    figure = f"Shopify's current_total_price is {format_money(expected)}" if not added_back else (
        f"the order as sold totals {format_money(expected)} in Shopify (current_total_price "
        f"{format_money(expected - added_back)} + {format_money(added_back)} refunded as separate documents)")
    return BalanceCheck(
        expected, computed, False,
        f"QuickBooks document would total {format_money(computed)} but {figure} "
        f"(difference {format_money(diff)}; tax mode {tax_mode}, tax "
        f"{format_money(tax_total)})",
    )
