"""Reading Shopify order JSON: typed fields, money in the document's currency, dates, names, identity."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .customer import Address, CustomerIdentity
from .money import MoneyError, parse_money, quantize
from .plan import DOC_NUMBER_MAX, MARKER_PREFIX, ShopFacts, TranslationError
from .settings import SyncSettings


class MoneyReader:
    """Reads amounts (x_set[money_key].amount, else plain x when in shop currency) as cent Decimals."""

    def __init__(self, money_key: str, plain_ok: bool) -> None:
        self.money_key = money_key
        self.plain_ok = plain_ok  # plain (non-_set) fields are in shop currency

    def amount(self, obj: Mapping[str, Any], name: str, where: str, default: Decimal | None = None) -> Decimal:
        set_value = obj.get(f"{name}_set")
        if isinstance(set_value, Mapping) and isinstance(set_value.get(self.money_key), Mapping):
            raw = set_value[self.money_key].get("amount")
            return cents(raw, f"{where}.{name}_set.{self.money_key}.amount")
        if self.plain_ok and obj.get(name) is not None:
            return cents(obj.get(name), f"{where}.{name}")
        if default is not None:
            return default
        raise TranslationError(f"{where}.{name}", "missing amount")


def cents(raw: Any, where: str) -> Decimal:
    try:
        return quantize(parse_money(raw, where))
    except MoneyError as exc:
        raise TranslationError(where, str(exc)) from exc


def text(value: Any) -> str | None:
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def whole(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise TranslationError(where, f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise TranslationError(where, f"expected a whole number, got {value!r}")


def objects(order: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = order.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise TranslationError(name, "expected a list of objects")
    return value


def money_back(tx: Mapping[str, Any]) -> bool:
    """A successful refund transaction: money that actually went back to the buyer."""
    return tx.get("kind") == "refund" and tx.get("status") in ("success", None)


def moved_money(refund: Mapping[str, Any]) -> bool:
    """Whether a refund sent money back; one that did not is an order edit (lines taken off before payment)."""
    return any(money_back(tx) for tx in objects(refund, "transactions"))


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

    email = text(order.get("email")) or text(order.get("contact_email")) or text(customer.get("email"))
    first = text(customer.get("first_name")) or text(raw_bill.get("first_name")) or text(raw_ship.get("first_name"))
    last = text(customer.get("last_name")) or text(raw_bill.get("last_name")) or text(raw_ship.get("last_name"))
    company = (billing.company if billing else None) or (shipping.company if shipping else None)
    phone = (text(customer.get("phone")) or text(order.get("phone"))
             or (billing.phone if billing else None) or (shipping.phone if shipping else None))
    customer_id = text(customer.get("id"))
    guest = not (email or first or last or company)
    return CustomerIdentity(
        email=email, first_name=first, last_name=last, company=company, phone=phone,
        billing=billing or default_addr, shipping=shipping, shopify_customer_id=customer_id, guest=guest,
    )


def choose_currency(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts
                     ) -> tuple[str, str, bool, str | None]:
    """(money_key, document currency, plain fields usable, CurrencyRef or None).

    Multicurrency company: post in the buyer's (presentment) currency when the shop sells in
    the home currency, else in the shop's currency. Otherwise post home-currency amounts,
    whichever of shop_money / presentment_money holds them.
    """
    home = settings.company.home_currency
    shop_currency = (text(order.get("currency")) or shop.currency).upper()
    presentment = (text(order.get("presentment_currency")) or shop_currency).upper()
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
    if key == "presentment_money" and not _has_presentment(order):
        # Older payloads carry only shop amounts: post those, in the shop's currency.
        key, currency = "shop_money", shop_currency
    if currency != home and not settings.company.multicurrency:
        raise TranslationError(
            "currency",
            f"order is in {currency} but the QuickBooks company's home currency is {home} "
            "and multicurrency is off",
        )
    currency_ref = currency if (settings.company.multicurrency and currency != home) else None
    return key, currency, key == "shop_money", currency_ref


def _has_presentment(order: Mapping[str, Any]) -> bool:
    for name in ("current_total_price_set", "total_price_set"):
        bag = order.get(name)
        if isinstance(bag, Mapping) and isinstance(bag.get("presentment_money"), Mapping):
            return True
    return False


def money_reader_for(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts | None = None
                     ) -> tuple[MoneyReader, str, str | None]:
    """(reader, document currency, CurrencyRef or None) — the same choice plan_order makes, so
    refunds and payments for an order are posted in its document's currency."""
    money_key, currency, plain_ok, currency_ref = choose_currency(order, settings, shop or ShopFacts())
    return MoneyReader(money_key, plain_ok), currency, currency_ref


def exchange_rate_for(order: Mapping[str, Any], currency: str, home: str, shop_currency: str) -> Decimal | None:
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


def rate_of(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        # Shopify sends tax rates as JSON numbers; a rate is informational, not money.
        return Decimal(repr(value))
    try:
        return parse_money(value, where)
    except MoneyError:
        return None


def foreign_exchange_rate(order: Mapping[str, Any], settings: SyncSettings, shop: ShopFacts | None,
                          currency: str) -> Decimal | None:
    """The rate plan_order puts on the order's document, for its refunds and payments too."""
    shop_currency = (text(order.get("currency")) or (shop or ShopFacts()).currency).upper()
    return exchange_rate_for(order, currency, settings.company.home_currency, shop_currency)
