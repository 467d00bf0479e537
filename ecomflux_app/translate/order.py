"""Shopify order -> OrderPlan (what to post, with a balance check) -> QBO SalesReceipt/Invoice JSON.

Money: every amount is read from the order's *_set in one currency (shop_money, or
presentment_money when a multicurrency company posts in the buyer's currency) as Decimal.

What the balance check compares (BalanceCheck):
    expected = Shopify's current_total_price (reflects edits and refunds)
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
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .customer import Address, CustomerIdentity
from .item import SPECIAL_ITEMS, ItemRequest, sanitize_item_name, sanitize_sku
from .money import ZERO, MoneyError, allocate, format_money, parse_money, quantize, sum_money
from .settings import SyncSettings

DOC_NUMBER_MAX = 21
PRIVATE_NOTE_MAX = 4000
DESCRIPTION_MAX = 4000
MARKER_PREFIX = "ecomflux:order:"
SHIPPING_ITEM_ID = "SHIPPING_ITEM_ID"
GIFT_CARD_GATEWAY = "gift_card"
CENT_STEP = Decimal("0.01")

# Line kinds in a plan.
PRODUCT, GIFT_CARD, SHIPPING, DUTY, FEE, TIP, TAX, DISCOUNT, REDEMPTION = (
    "product", "gift_card", "shipping", "duty", "fee", "tip", "tax", "discount", "gift_card_redemption",
)

# How tax appears on the document.
TAX_US = "us_total_tax"           # US company: TxnTaxDetail.TotalTax + line TaxCodeRef TAX/NON
TAX_EXCLUDED = "tax_excluded"     # non-US: GlobalTaxCalculation TaxExcluded + TotalTax
TAX_INCLUSIVE = "tax_inclusive"   # taxes_included order: GlobalTaxCalculation TaxInclusive
TAX_AS_LINE = "tax_line"          # settings.tax_handling == tax_line: tax is an item line


class TranslationError(ValueError):
    """The order cannot be translated; field names the offending part of the input."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ShopFacts:
    """What the translation needs to know about the shop."""

    timezone: str = "UTC"
    currency: str = "USD"


@dataclass(frozen=True)
class PlanLine:
    """One document line. item_id is known from settings; otherwise item_key is resolved by sync."""

    kind: str
    description: str
    qty: Decimal
    unit_price: Decimal
    amount: Decimal
    taxable: bool
    item_key: str | None = None
    item_id: str | None = None
    item_name: str | None = None
    sku: str | None = None
    source_id: str | None = None
    # Tax-inclusive documents: amount/unit_price are net of tax (QBO's Line.Amount) and
    # gross_amount is what Shopify charged (SalesItemLineDetail.TaxInclusiveAmt).
    gross_amount: Decimal | None = None


@dataclass(frozen=True)
class DiscountEntry:
    """One Shopify discount application and how much of it this order still carries."""

    title: str
    code: str | None
    amount: Decimal
    target: str  # line_item | shipping_line


@dataclass(frozen=True)
class TaxEntry:
    title: str
    rate: Decimal | None
    amount: Decimal


@dataclass(frozen=True)
class RemovedLine:
    source_id: str | None
    description: str
    quantity: int


@dataclass(frozen=True)
class BalanceCheck:
    """Shopify's total vs. the total the payload implies; ok only when equal to the cent."""

    expected: Decimal
    computed: Decimal
    ok: bool
    reason: str | None = None

    def to_values(self) -> dict[str, Any]:
        return {"expected": format_money(self.expected), "computed": format_money(self.computed),
                "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True)
class OrderPlan:
    """Everything needed to render one QBO document for one Shopify order."""

    doc_type: str  # SalesReceipt | Invoice
    order_id: str
    order_name: str
    source_key: str
    doc_number: str
    txn_date: date
    due_date: date | None
    private_note: str
    marker: str
    currency: str
    home_currency: str
    currency_ref: str | None
    exchange_rate: Decimal | None
    customer: CustomerIdentity
    lines: tuple[PlanLine, ...]
    discounts: tuple[DiscountEntry, ...]
    discount_total: Decimal
    discount_line_amount: Decimal  # the DiscountLineDetail amount (0 when discounts are item lines)
    discount_description: str
    subtotal: Decimal  # products + gift cards sold, before discounts
    shipping_total: Decimal  # before shipping discounts
    shipping_discount_total: Decimal
    tax_total: Decimal
    tax_mode: str
    tax_lines: tuple[TaxEntry, ...]
    tips_total: Decimal
    duties_total: Decimal
    gift_card_sold: Decimal
    gift_card_redeemed: Decimal
    document_total: Decimal
    payment_gateway: str | None
    payment_method_id: str | None
    deposit_account_id: str | None
    class_id: str | None
    department_id: str | None
    bill_email: str | None
    removed_lines: tuple[RemovedLine, ...]
    balance: BalanceCheck
    warnings: tuple[str, ...] = ()
    us_company: bool = True
    # Refunds whose effect the document already carries (current_* figures are net of them):
    # the refund sync must not post them again.
    reflected_refund_ids: tuple[str, ...] = ()
    shipping_refunded: Decimal = ZERO
    taxable_tax_code_id: str | None = None  # non-US TaxCodeRef for taxable lines
    exempt_tax_code_id: str | None = None
    discount_account_id: str | None = None

    @property
    def item_keys(self) -> list[str]:
        """Item keys the sync must resolve to QBO item ids (deduplicated, in line order)."""
        keys: list[str] = []
        for line in self.lines:
            if line.item_id is None and line.item_key and line.item_key not in keys:
                keys.append(line.item_key)
        return keys

    def item_requests(self, item_type: str = "NonInventory") -> list[ItemRequest]:
        """What to look up or create for each unresolved item key."""
        out: list[ItemRequest] = []
        for key in self.item_keys:
            line = next(line for line in self.lines if line.item_key == key)
            if key in SPECIAL_ITEMS:
                name, special_type = SPECIAL_ITEMS[key]
                out.append(ItemRequest(key=key, name=name, sku=None, item_type=special_type))
            else:
                out.append(ItemRequest(key=key, name=line.item_name or sanitize_item_name(line.description),
                                       sku=line.sku, item_type=item_type, description=line.description))
        return out


@dataclass(frozen=True)
class Refs:
    """QBO ids the sync resolved for a plan: the customer and every unresolved item key."""

    customer_id: str
    items: Mapping[str, str] = field(default_factory=dict)
    payment_method_id: str | None = None


# ---------------------------------------------------------------- reading the order


class MoneyReader:
    """Reads amounts (x_set[money_key].amount, else plain x when in shop currency) as cent Decimals."""

    def __init__(self, money_key: str, plain_ok: bool) -> None:
        self.money_key = money_key
        self.plain_ok = plain_ok  # plain (non-_set) fields are in shop currency

    def amount(self, obj: Mapping[str, Any], name: str, where: str, default: Decimal | None = None) -> Decimal:
        set_value = obj.get(f"{name}_set")
        if isinstance(set_value, Mapping) and isinstance(set_value.get(self.money_key), Mapping):
            raw = set_value[self.money_key].get("amount")
            return _money(raw, f"{where}.{name}_set.{self.money_key}.amount")
        if self.plain_ok and obj.get(name) is not None:
            return _money(obj.get(name), f"{where}.{name}")
        if default is not None:
            return default
        raise TranslationError(f"{where}.{name}", "missing amount")


def _money(raw: Any, where: str) -> Decimal:
    try:
        return quantize(parse_money(raw, where))
    except MoneyError as exc:
        raise TranslationError(where, str(exc)) from exc


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise TranslationError(where, f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise TranslationError(where, f"expected a whole number, got {value!r}")


def _list(order: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = order.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise TranslationError(name, "expected a list of objects")
    return value


def _zone(name: str) -> timezone | ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    # Shopify's display form, e.g. "(GMT-05:00) Eastern Time (US & Canada)".
    m = re.match(r"^\(GMT([+-])(\d{2}):(\d{2})\)", name or "")
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return timezone(delta if m.group(1) == "+" else -delta)
    return timezone.utc


def txn_date_for(order: Mapping[str, Any], shop_timezone: str) -> date:
    """The order's processed date in the shop's timezone (created_at when processed_at is absent)."""
    raw = order.get("processed_at") or order.get("created_at")
    where = "processed_at" if order.get("processed_at") else "created_at"
    if not isinstance(raw, str) or not raw.strip():
        raise TranslationError("processed_at", "missing order date")
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise TranslationError(where, f"not an ISO timestamp: {raw!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(_zone(shop_timezone)).date()


def doc_number_for(order_name: str, prefix: str = "") -> str:
    """DocNumber: prefix + order name without '#', <= 21 chars.

    When too long, the END of the name is kept (order numbers live there) so the cut is
    deterministic and distinct orders stay distinct as long as their numbers do.
    """
    name = re.sub(r"\s+", "", order_name).lstrip("#") or order_name.strip()
    prefix = re.sub(r"[\t\r\n]", "", prefix)[:DOC_NUMBER_MAX - 1]
    room = DOC_NUMBER_MAX - len(prefix)
    if len(name) > room:
        name = name[-room:]
    return prefix + name


def order_marker(order_id: str) -> str:
    """The stable PrivateNote marker the sync searches for after an uncertain failure."""
    return f"{MARKER_PREFIX}{order_id}"


def identity_for(order: Mapping[str, Any]) -> CustomerIdentity:
    customer = order.get("customer") if isinstance(order.get("customer"), Mapping) else {}
    assert isinstance(customer, Mapping)
    billing = Address.from_shopify(order.get("billing_address"))
    shipping = Address.from_shopify(order.get("shipping_address"))
    default_addr = Address.from_shopify(customer.get("default_address"))
    raw_bill = order.get("billing_address") if isinstance(order.get("billing_address"), Mapping) else {}
    raw_ship = order.get("shipping_address") if isinstance(order.get("shipping_address"), Mapping) else {}
    assert isinstance(raw_bill, Mapping) and isinstance(raw_ship, Mapping)

    email = _str(order.get("email")) or _str(order.get("contact_email")) or _str(customer.get("email"))
    first = _str(customer.get("first_name")) or _str(raw_bill.get("first_name")) or _str(raw_ship.get("first_name"))
    last = _str(customer.get("last_name")) or _str(raw_bill.get("last_name")) or _str(raw_ship.get("last_name"))
    company = (billing.company if billing else None) or (shipping.company if shipping else None)
    phone = (_str(customer.get("phone")) or _str(order.get("phone"))
             or (billing.phone if billing else None) or (shipping.phone if shipping else None))
    customer_id = _str(customer.get("id"))
    guest = not (email or first or last or company)
    return CustomerIdentity(
        email=email, first_name=first, last_name=last, company=company, phone=phone,
        billing=billing or default_addr, shipping=shipping, shopify_customer_id=customer_id, guest=guest,
    )


# ---------------------------------------------------------------- planning


def _choose_currency(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts
                     ) -> tuple[str, str, bool, str | None]:
    """(money_key, document currency, plain fields usable, CurrencyRef or None).

    Multicurrency company: post in the buyer's (presentment) currency when the shop sells in
    the home currency, else in the shop's currency. Otherwise post home-currency amounts,
    whichever of shop_money / presentment_money holds them.
    """
    home = settings.company.home_currency
    shop_currency = (_str(order.get("currency")) or shop.currency).upper()
    presentment = (_str(order.get("presentment_currency")) or shop_currency).upper()
    if presentment == shop_currency:
        key, currency = "shop_money", shop_currency
    elif settings.company.multicurrency:
        if shop_currency == home or presentment == home:
            key, currency = "presentment_money", presentment
        else:
            key, currency = "shop_money", shop_currency
    elif shop_currency == home:
        key, currency = "shop_money", shop_currency
    else:
        key, currency = "presentment_money", presentment
    if currency != home and not settings.company.multicurrency:
        raise TranslationError(
            "currency",
            f"order is in {currency} but the QuickBooks company's home currency is {home} "
            "and multicurrency is off",
        )
    currency_ref = currency if (settings.company.multicurrency and currency != home) else None
    return key, currency, key == "shop_money", currency_ref


def money_reader_for(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts | None = None
                     ) -> tuple[MoneyReader, str, str | None]:
    """(reader, document currency, CurrencyRef or None) — the same choice plan_order makes, so
    refunds and payments for an order are posted in its document's currency."""
    money_key, currency, plain_ok, currency_ref = _choose_currency(order, settings, shop or ShopFacts())
    return MoneyReader(money_key, plain_ok), currency, currency_ref


def _exchange_rate(order: Mapping[str, Any], currency: str, home: str, shop_currency: str) -> Decimal | None:
    """Home units per document unit, from Shopify's own two totals (only when shop currency is home)."""
    if currency == home or shop_currency != home:
        return None
    total_set = order.get("total_price_set")
    if not isinstance(total_set, Mapping):
        return None
    try:
        shop_amt = parse_money(total_set["shop_money"]["amount"], "total_price_set.shop_money")
        pres_amt = parse_money(total_set["presentment_money"]["amount"], "total_price_set.presentment_money")
    except (KeyError, TypeError, MoneyError):
        return None
    if pres_amt == 0:
        return None
    return (shop_amt / pres_amt).quantize(Decimal("0.000001"))


def _discount_titles(order: Mapping[str, Any]) -> list[tuple[str, str | None, str]]:
    """(title, code, target_type) per discount_applications index."""
    out: list[tuple[str, str | None, str]] = []
    for i, app in enumerate(_list(order, "discount_applications")):
        code = _str(app.get("code")) if app.get("type") == "discount_code" else None
        title = code or _str(app.get("title")) or _str(app.get("description")) or "Discount"
        target = _str(app.get("target_type")) or "line_item"
        out.append((title, code, target))
    return out


def _prorate(amount: Decimal, current: int, original: int) -> Decimal:
    if original <= 0 or current == original:
        return amount
    return quantize(amount * current / original)


def _current_quantity(order: Mapping[str, Any], li: Mapping[str, Any], where: str, quantity: int) -> int:
    """current_quantity when Shopify sends it; older payloads: quantity minus refunded quantities."""
    if li.get("current_quantity") is not None:
        return _int(li["current_quantity"], f"{where}.current_quantity")
    line_id = _str(li.get("id"))
    refunded = 0
    if line_id:
        for r, refund in enumerate(_list(order, "refunds")):
            for k, rli in enumerate(_list(refund, "refund_line_items")):
                if _str(rli.get("line_item_id")) == line_id:
                    refunded += _int(rli.get("quantity"), f"refunds[{r}].refund_line_items[{k}].quantity")
    return max(quantity - refunded, 0)


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
    for i, li in enumerate(_list(order, "line_items")):
        where = f"line_items[{i}]"
        quantity = _int(li.get("quantity"), f"{where}.quantity")
        current = _current_quantity(order, li, where, quantity)
        if current <= 0:
            continue
        for j, alloc in enumerate(_list(li, "discount_allocations")):
            ours += _prorate(read.amount(alloc, "amount", f"{where}.discount_allocations[{j}]"), current, quantity)
            prorated += 1 if current < quantity else 0
    if not prorated:
        return ZERO
    for i, sl in enumerate(_list(order, "shipping_lines")):
        if sl.get("is_removed"):
            continue
        allocs = _list(sl, "discount_allocations")
        if allocs:
            ours += sum_money(read.amount(a, "amount", f"shipping_lines[{i}].discount_allocations[{j}]")
                              for j, a in enumerate(allocs))
        else:
            price = read.amount(sl, "price", f"shipping_lines[{i}]")
            ours += price - read.amount(sl, "discounted_price", f"shipping_lines[{i}]", default=price)
    theirs = read.amount(order, "current_total_discounts", "order", default=ours)
    diff = theirs - ours
    return diff if abs(diff) <= CENT_STEP * prorated else ZERO


def plan_order(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts | None = None) -> OrderPlan:
    """Translate a Shopify order (REST webhook shape) into an OrderPlan; raises TranslationError."""
    if not isinstance(order, Mapping):
        raise TranslationError("order", "expected a JSON object")
    shop = shop or ShopFacts()
    order_id = _str(order.get("id"))
    if not order_id:
        raise TranslationError("id", "missing order id")
    order_name = _str(order.get("name")) or (f"#{order['order_number']}" if order.get("order_number") else None)
    if not order_name:
        raise TranslationError("name", "missing order name")
    company = settings.company
    warnings: list[str] = []

    money_key, currency, plain_ok, currency_ref = _choose_currency(order, settings, shop)
    read = MoneyReader(money_key, plain_ok)
    shop_currency = (_str(order.get("currency")) or shop.currency).upper()
    exchange_rate = _exchange_rate(order, currency, company.home_currency, shop_currency) if currency_ref else None

    titles = _discount_titles(order)
    discount_by_index: dict[int, Decimal] = {}
    use_discount_items = bool(settings.discount_item_id)

    proration_fix = _proration_fix(order, read)

    def allocations(obj: Mapping[str, Any], where: str, current: int, original: int
                    ) -> list[tuple[int, Decimal]]:
        nonlocal proration_fix
        out: list[tuple[int, Decimal]] = []
        for j, alloc in enumerate(_list(obj, "discount_allocations")):
            amount = _prorate(read.amount(alloc, "amount", f"{where}.discount_allocations[{j}]"), current, original)
            if proration_fix and 0 < current < original:
                amount += proration_fix
                proration_fix = ZERO
            idx = alloc.get("discount_application_index")
            index = _int(idx, f"{where}.discount_allocations[{j}].discount_application_index") if idx is not None else -1
            out.append((index, amount))
        return out

    def note_discounts(allocs: list[tuple[int, Decimal]]) -> None:
        for index, amount in allocs:
            discount_by_index[index] = discount_by_index.get(index, ZERO) + amount

    def discount_label(allocs: list[tuple[int, Decimal]]) -> str:
        names = []
        for index, _ in allocs:
            name = titles[index][0] if 0 <= index < len(titles) else "Discount"
            if name not in names:
                names.append(name)
        return ", ".join(names) or "Discount"

    lines: list[PlanLine] = []
    # line index -> (discount on it, Shopify's tax on it, index of its discount line or None):
    # what a tax-inclusive order needs to split each amount into net + tax.
    taxed: dict[int, tuple[Decimal, Decimal, int | None]] = {}
    removed: list[RemovedLine] = []
    subtotal = ZERO
    gift_card_sold = ZERO
    line_discounts = ZERO
    tips_total = read.amount(order, "total_tip_received", "order", default=ZERO) \
        if (order.get("total_tip_received_set") or order.get("total_tip_received") not in (None, "")) else ZERO
    tip_line_pending = tips_total

    items = _list(order, "line_items")
    if not items:
        raise TranslationError("line_items", "order has no line items")
    for i, li in enumerate(items):
        where = f"line_items[{i}]"
        quantity = _int(li.get("quantity"), f"{where}.quantity")
        current = _current_quantity(order, li, where, quantity)
        description = _str(li.get("name")) or _str(li.get("title")) or f"Line {i + 1}"
        if current <= 0:
            removed.append(RemovedLine(_str(li.get("id")), description, quantity))
            continue
        if current > quantity:
            raise TranslationError(f"{where}.current_quantity", f"{current} is more than quantity {quantity}")
        price = read.amount(li, "price", where)
        amount = quantize(price * current)
        allocs = allocations(li, where, current, quantity)
        discount = sum_money(a for _, a in allocs)
        line_tax = sum_money(_prorate(read.amount(t, "price", f"{where}.tax_lines[{k}]"), current, quantity)
                             for k, t in enumerate(_list(li, "tax_lines")))
        is_gift_card = bool(li.get("gift_card"))
        sku = sanitize_sku(_str(li.get("sku")))
        title = _str(li.get("title"))
        is_tip = (tip_line_pending > 0 and not is_gift_card and li.get("product_id") in (None, "")
                  and (title or "").strip().lower() in ("tip", "tips") and amount <= tip_line_pending)
        if is_tip:
            kind = TIP
            item_id = settings.tips_item_id
            item_key: str | None = None if item_id else "special:tip"
            taxable = False
            tip_line_pending -= amount
            item_name = None
        elif is_gift_card:
            kind = GIFT_CARD
            item_id = settings.gift_card_liability_item_id
            item_key = None if item_id else "special:gift_card"
            taxable = False
            gift_card_sold += amount
            subtotal += amount
            item_name = None
        else:
            kind = PRODUCT
            item_id = None
            if sku:
                item_key = f"sku:{sku}"
                item_name = sanitize_item_name(description)  # the variant: one QBO item per SKU
            elif title:
                item_key = f"title:{sanitize_item_name(title)}"
                item_name = sanitize_item_name(title)
            elif settings.fallback_item_id:
                item_key, item_id, item_name = None, settings.fallback_item_id, None
            else:
                item_key, item_name = "special:fallback", None
            taxable = bool(li.get("taxable", True)) and line_tax > 0
            subtotal += amount
        line_index = len(lines)
        taxed[line_index] = (discount, line_tax, None)
        lines.append(PlanLine(
            kind=kind, description=description[:DESCRIPTION_MAX], qty=Decimal(current), unit_price=price,
            amount=amount, taxable=taxable, item_key=item_key, item_id=item_id, item_name=item_name,
            sku=sku if kind == PRODUCT else None, source_id=_str(li.get("id")),
        ))
        if discount:
            note_discounts(allocs)
            line_discounts += discount
            if use_discount_items:
                taxed[line_index] = (discount, line_tax, len(lines))
                lines.append(PlanLine(
                    kind=DISCOUNT, description=f"Discount ({discount_label(allocs)}) on {description}"[:DESCRIPTION_MAX],
                    qty=Decimal(1), unit_price=-discount, amount=-discount, taxable=taxable,
                    item_id=settings.discount_item_id, source_id=_str(li.get("id")),
                ))
        if current < quantity:
            removed.append(RemovedLine(_str(li.get("id")), description, quantity - current))

    # Shipping: one line per shipping line at its full price; its discounts stay visible.
    shipping_total = ZERO
    shipping_discounts = ZERO
    if company.shipping_allowed:
        ship_item_id: str | None = SHIPPING_ITEM_ID
    else:
        ship_item_id = settings.shipping_item_id
    for i, sl in enumerate(_list(order, "shipping_lines")):
        where = f"shipping_lines[{i}]"
        if sl.get("is_removed"):
            continue
        price = read.amount(sl, "price", where)
        allocs = allocations(sl, where, 1, 1)
        if allocs:
            discount = sum_money(a for _, a in allocs)
        else:
            discounted = read.amount(sl, "discounted_price", where, default=price)
            discount = price - discounted
            if discount:
                allocs = [(-2, discount)]
        ship_tax = sum_money(read.amount(t, "price", f"{where}.tax_lines[{k}]")
                             for k, t in enumerate(_list(sl, "tax_lines")))
        title = _str(sl.get("title")) or _str(sl.get("code")) or "Shipping"
        shipping_total += price
        ship_index = len(lines)
        taxed[ship_index] = (discount, ship_tax, None)
        lines.append(PlanLine(
            kind=SHIPPING, description=f"Shipping: {title}"[:DESCRIPTION_MAX], qty=Decimal(1), unit_price=price,
            amount=price, taxable=ship_tax > 0, item_id=ship_item_id,
            item_key=None if ship_item_id else "special:shipping", source_id=_str(sl.get("id")),
        ))
        if discount:
            shipping_discounts += discount
            for index, amount in allocs:
                if index == -2:
                    discount_by_index[-2] = discount_by_index.get(-2, ZERO) + amount
                else:
                    discount_by_index[index] = discount_by_index.get(index, ZERO) + amount
            if use_discount_items:
                taxed[ship_index] = (discount, ship_tax, len(lines))
                label = discount_label([a for a in allocs if a[0] != -2]) if any(a[0] != -2 for a in allocs) else "Shipping discount"
                lines.append(PlanLine(
                    kind=DISCOUNT, description=f"Shipping discount ({label})"[:DESCRIPTION_MAX], qty=Decimal(1),
                    unit_price=-discount, amount=-discount, taxable=ship_tax > 0,
                    item_id=settings.discount_item_id, source_id=_str(sl.get("id")),
                ))

    # Refunds already in the order: current_* figures are net of them, so shipping refunded
    # before this document is posted shows as a visible negative shipping line.
    shipping_refunded = ZERO
    refund_ids: list[str] = []
    for r, refund in enumerate(_list(order, "refunds")):
        if _str(refund.get("id")):
            refund_ids.append(str(refund.get("id")))
        for a, adj in enumerate(_list(refund, "order_adjustments")):
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
                    item_key=None if ship_item_id else "special:shipping", source_id=_str(refund.get("id")),
                ))

    # Duties (cross-border): the order total says what is still charged.
    duties_total = ZERO
    duties_set = order.get("current_total_duties_set") or order.get("original_total_duties_set")
    if isinstance(duties_set, Mapping):
        duties_total = read.amount({"d_set": duties_set}, "d", "current_total_duties")
    else:
        for i, li in enumerate(items):
            for k, duty in enumerate(_list(li, "duties")):
                duties_total += read.amount(duty, "price", f"line_items[{i}].duties[{k}]")
    if duties_total:
        lines.append(PlanLine(
            kind=DUTY, description="Duties", qty=Decimal(1), unit_price=duties_total, amount=duties_total,
            taxable=False, item_id=settings.duties_item_id,
            item_key=None if settings.duties_item_id else "special:duties",
        ))

    # Additional fees Shopify charged on top (e.g. import fees collected at checkout).
    fees_set = order.get("current_total_additional_fees_set")
    fees_total = read.amount({"f_set": fees_set}, "f", "current_total_additional_fees") \
        if isinstance(fees_set, Mapping) else ZERO
    if fees_total:
        lines.append(PlanLine(
            kind=FEE, description="Additional fees", qty=Decimal(1), unit_price=fees_total, amount=fees_total,
            taxable=False, item_key="special:fees",
        ))

    # Tips not already present as a line item.
    if tip_line_pending > 0:
        lines.append(PlanLine(
            kind=TIP, description="Tip", qty=Decimal(1), unit_price=tip_line_pending, amount=tip_line_pending,
            taxable=False, item_id=settings.tips_item_id,
            item_key=None if settings.tips_item_id else "special:tip",
        ))

    # Tax exactly as Shopify computed it.
    tax_total = read.amount(order, "current_total_tax", "order", default=ZERO) \
        if (order.get("current_total_tax_set") or order.get("current_total_tax") is not None) \
        else read.amount(order, "total_tax", "order", default=ZERO)
    tax_entries = tuple(
        TaxEntry(title=_str(t.get("title")) or "Tax",
                 rate=_rate(t.get("rate"), f"tax_lines[{k}].rate"),
                 amount=read.amount(t, "price", f"tax_lines[{k}]"))
        for k, t in enumerate(_list(order, "tax_lines"))
    )
    taxes_included = bool(order.get("taxes_included"))
    if settings.tax_handling == "tax_line" and not taxes_included:
        tax_mode = TAX_AS_LINE
        if tax_total:
            lines.append(PlanLine(
                kind=TAX, description="Sales tax: " + (", ".join(t.title for t in tax_entries) or "Tax"),
                qty=Decimal(1), unit_price=tax_total, amount=tax_total, taxable=False,
                item_id=settings.tax_item_id, item_key=None if settings.tax_item_id else "special:tax",
            ))
    elif taxes_included:
        tax_mode = TAX_INCLUSIVE
        lines = _net_of_included_tax(lines, taxed, tax_total)
    elif company.is_us:
        tax_mode = TAX_US
    else:
        tax_mode = TAX_EXCLUDED

    # Gift cards used as payment: a visible reduction against the liability item.
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

    discount_total = line_discounts + shipping_discounts
    discounts = tuple(
        DiscountEntry(
            title=(titles[i][0] if 0 <= i < len(titles) else ("Shipping discount" if i == -2 else "Discount")),
            code=titles[i][1] if 0 <= i < len(titles) else None,
            amount=amount,
            target=(titles[i][2] if 0 <= i < len(titles) else ("shipping_line" if i == -2 else "line_item")),
        )
        for i, amount in sorted(discount_by_index.items(), key=lambda kv: (kv[0] < 0, kv[0]))
        if amount
    )
    if use_discount_items:
        discount_line_amount = ZERO
    elif tax_mode == TAX_INCLUSIVE:
        # Net of the tax share: QBO adds TotalTax on top of net amounts.
        discount_line_amount = sum_money(_net_discount(lines[i], taxed[i]) for i in taxed)
    else:
        discount_line_amount = discount_total
    discount_description = ("Discounts (tax included): " if tax_mode == TAX_INCLUSIVE else "Discounts: ") + "; ".join(
        f"{d.title}{' (shipping)' if d.target == 'shipping_line' else ''} {format_money(d.amount)}" for d in discounts
    ) if discounts else ""

    expected = read.amount(order, "current_total_price", "order") \
        if (order.get("current_total_price_set") or order.get("current_total_price") is not None) \
        else read.amount(order, "total_price", "order")
    lines_sum = sum_money(line.amount for line in lines)
    tax_added = tax_total if tax_mode in (TAX_US, TAX_EXCLUDED, TAX_INCLUSIVE) else ZERO
    document_total = quantize(lines_sum - discount_line_amount + tax_added)
    computed = quantize(document_total + redeemed)
    balance = _balance(expected, computed, document_total, tax_mode, tax_total)

    identity = identity_for(order)
    txn_date = txn_date_for(order, shop.timezone)
    doc_type = "Invoice" if settings.document_type == "invoice" else "SalesReceipt"
    gateway = _gateway(order)
    payment_method_id = _payment_method(settings.payment_method_map, gateway) if gateway else None
    marker = order_marker(order_id)
    private_note = f"Shopify order {order_name} (id {order_id}) [{marker}]"
    note = _str(order.get("note"))
    if note:
        private_note += f"\nNote: {note}"
    private_note = private_note[:PRIVATE_NOTE_MAX]

    return OrderPlan(
        doc_type=doc_type, order_id=order_id, order_name=order_name, source_key=f"order:{order_id}",
        doc_number=doc_number_for(order_name, settings.doc_number_prefix), txn_date=txn_date,
        due_date=txn_date + timedelta(days=settings.invoice_terms_days) if doc_type == "Invoice" else None,
        private_note=private_note, marker=marker, currency=currency, home_currency=company.home_currency,
        currency_ref=currency_ref, exchange_rate=exchange_rate, customer=identity, lines=tuple(lines),
        discounts=discounts, discount_total=quantize(discount_total), discount_line_amount=quantize(discount_line_amount),
        discount_description=discount_description, subtotal=quantize(subtotal),
        shipping_total=quantize(shipping_total), shipping_discount_total=quantize(shipping_discounts),
        tax_total=tax_total, tax_mode=tax_mode, tax_lines=tax_entries, tips_total=quantize(tips_total),
        duties_total=quantize(duties_total), gift_card_sold=quantize(gift_card_sold), gift_card_redeemed=redeemed,
        document_total=document_total, payment_gateway=gateway, payment_method_id=payment_method_id,
        deposit_account_id=settings.deposit_account_id, class_id=settings.class_id,
        department_id=settings.department_id, bill_email=identity.email, removed_lines=tuple(removed),
        balance=balance, warnings=tuple(warnings), us_company=company.is_us,
        reflected_refund_ids=tuple(refund_ids), shipping_refunded=quantize(shipping_refunded),
        taxable_tax_code_id=settings.taxable_tax_code_id, exempt_tax_code_id=settings.exempt_tax_code_id,
        discount_account_id=settings.discount_account_id,
    )


def _tax_share(gross: Decimal, discount: Decimal, tax: Decimal) -> Decimal:
    """The part of a tax-inclusive gross amount that is tax, given Shopify's tax on gross - discount."""
    base = gross - discount
    if base == 0 or tax == 0:
        return tax if base == 0 else ZERO
    return quantize(gross * tax / base)


def _net_discount(line: PlanLine, meta: tuple[Decimal, Decimal, int | None]) -> Decimal:
    discount, tax, _ = meta
    gross = line.gross_amount if line.gross_amount is not None else line.amount
    return discount - (_tax_share(gross, discount, tax) - tax)


def _net_of_included_tax(lines: list[PlanLine], taxed: dict[int, tuple[Decimal, Decimal, int | None]],
                         tax_total: Decimal) -> list[PlanLine]:
    """Split tax-inclusive amounts into net + tax the way QBO stores a TaxInclusive document.

    Per line: tax share T = gross * tax / (gross - discount); net = gross - T; the discount's
    net is discount - (T - tax). So net - net discount + tax == gross - discount exactly, and
    the document's lines + TotalTax add up to Shopify's total. Shopify's per-line taxes are
    first reconciled (to the cent) with its order tax total, which is what TotalTax carries.
    """
    metas = dict(taxed)
    line_tax_sum = sum((m[1] for m in metas.values()), ZERO)
    gap = tax_total - line_tax_sum
    if gap:
        keys = [i for i, m in metas.items() if m[1] > 0] or \
               [i for i in metas if lines[i].taxable] or \
               [i for i in metas if lines[i].kind == PRODUCT]
        if keys:
            weights = [metas[i][1] if metas[i][1] > 0 else lines[i].amount - metas[i][0] for i in keys]
            for i, extra in zip(keys, allocate(gap, weights)):
                d, t, di = metas[i]
                metas[i] = (d, t + extra, di)
    out = [dataclasses.replace(line, gross_amount=line.amount) for line in lines]
    for i, (discount, tax, discount_index) in metas.items():
        line = out[i]
        gross = line.amount
        share = _tax_share(gross, discount, tax)
        net = gross - share
        out[i] = dataclasses.replace(line, amount=net, unit_price=_unit(net, line.qty),
                                     taxable=line.taxable or tax != 0)
        taxed[i] = (discount, tax, discount_index)
        if discount_index is not None:
            d_line = out[discount_index]
            net_discount = discount - (share - tax)
            out[discount_index] = dataclasses.replace(d_line, amount=-net_discount, unit_price=-net_discount,
                                                      taxable=out[i].taxable)
    return out


def _unit(amount: Decimal, qty: Decimal) -> Decimal:
    """Unit price for a net amount: exact cents when they divide, else 7 places (QBO's limit)."""
    if qty in (0, 1):
        return amount
    unit = amount / qty
    return unit.quantize(CENT_STEP) if unit == unit.quantize(CENT_STEP) else unit.quantize(Decimal("0.0000001"))


def _rate(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        # Shopify sends tax rates as JSON numbers; a rate is informational, not money.
        return Decimal(repr(value))
    try:
        return parse_money(value, where)
    except MoneyError:
        return None


def _gift_card_redeemed(order: Mapping[str, Any], read: MoneyReader) -> tuple[Decimal, str | None]:
    """Gift card payments from order transactions (sale/capture on the gift_card gateway)."""
    transactions = order.get("transactions")
    gateways = [str(g) for g in (order.get("payment_gateway_names") or [])]
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
        if kind in ("sale", "capture"):
            sign = 1
        elif kind == "refund":
            sign = -1
        else:
            continue
        total += sign * read.amount(tx, "amount", f"transactions[{k}]")
    return quantize(total), None


def _gateway(order: Mapping[str, Any]) -> str | None:
    names = [str(g) for g in (order.get("payment_gateway_names") or []) if g]
    for name in names:
        if name != GIFT_CARD_GATEWAY:
            return name
    return _str(order.get("gateway")) or (names[0] if names else None)


def _payment_method(mapping: Mapping[str, str], gateway: str) -> str | None:
    if gateway in mapping:
        return mapping[gateway]
    lowered = {k.lower(): v for k, v in mapping.items()}
    return lowered.get(gateway.lower()) or lowered.get("*") or lowered.get("default")


def _balance(expected: Decimal, computed: Decimal, document_total: Decimal, tax_mode: str,
             tax_total: Decimal) -> BalanceCheck:
    if computed == expected:
        if document_total < 0:
            return BalanceCheck(expected, computed, False,
                                f"gift card redemptions exceed the order total: document total would be "
                                f"{format_money(document_total)}")
        return BalanceCheck(expected, computed, True, None)
    diff = computed - expected
    return BalanceCheck(
        expected, computed, False,
        f"QuickBooks document would total {format_money(computed)} but Shopify's current_total_price is "
        f"{format_money(expected)} (difference {format_money(diff)}; tax mode {tax_mode}, tax "
        f"{format_money(tax_total)})",
    )


# ---------------------------------------------------------------- rendering


def _num(value: Decimal) -> Decimal:
    """Amounts stay Decimal in the payload; translate.jsonout.dumps writes them as JSON numbers."""
    return quantize(value)


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
        item_id = line.item_id or (refs.items.get(line.item_key) if line.item_key else None)
        if not item_id:
            raise TranslationError(f"refs.items[{line.item_key}]", "no QuickBooks item for this line")
        detail: dict[str, Any] = {"ItemRef": {"value": item_id}, "Qty": line.qty, "UnitPrice": line.unit_price}
        if plan.tax_mode == TAX_INCLUSIVE:
            detail["TaxInclusiveAmt"] = _num(line.gross_amount if line.gross_amount is not None else line.amount)
        tax_code = _tax_code(plan, line.taxable)
        if tax_code:
            detail["TaxCodeRef"] = tax_code
        out_lines.append({
            "DetailType": "SalesItemLineDetail", "Amount": _num(line.amount), "Description": line.description,
            "SalesItemLineDetail": detail,
        })
    if not discount_inserted and plan.discount_line_amount:
        add_discount_line()
    for n, line_json in enumerate(out_lines, start=1):
        line_json["LineNum"] = n
    body["Line"] = out_lines

    if plan.tax_mode in (TAX_US, TAX_EXCLUDED, TAX_INCLUSIVE):
        # Sending TotalTax stops QBO (automated sales tax) from recomputing Shopify's tax.
        body["TxnTaxDetail"] = {"TotalTax": _num(plan.tax_total)}
    if plan.tax_mode == TAX_EXCLUDED:
        body["GlobalTaxCalculation"] = "TaxExcluded"
    elif plan.tax_mode == TAX_INCLUSIVE:
        body["GlobalTaxCalculation"] = "TaxInclusive"
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
    if plan.doc_type == "SalesReceipt":
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
    lines: Sequence[Mapping[str, Any]] = document.get("Line", [])
    items = sum_money(Decimal(str(l["Amount"])) for l in lines if l["DetailType"] == "SalesItemLineDetail")
    discounts = sum_money(Decimal(str(l["Amount"])) for l in lines if l["DetailType"] == "DiscountLineDetail")
    tax = Decimal(str(document.get("TxnTaxDetail", {}).get("TotalTax", "0")))
    # QBO line amounts exclude tax, also on TaxInclusive documents (TaxInclusiveAmt holds the gross).
    total = items - discounts + tax
    return {"items": items, "discounts": discounts, "tax": quantize(tax), "total": quantize(total)}
