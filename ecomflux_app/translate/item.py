"""QBO item names (sanitized, unique suffixes) and NonInventory/Service item payloads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

NAME_MAX = 100
SKU_MAX = 100
DESCRIPTION_MAX = 4000
_FORBIDDEN = re.compile(r"[:\t\r\n\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")

# Special plan lines whose item the sync resolves (or creates) when settings give no id.
SPECIAL_ITEMS: dict[str, tuple[str, str]] = {
    "special:shipping": ("Shipping", "Service"),
    "special:tip": ("Tips", "Service"),
    "special:gift_card": ("Gift Card Liability", "Service"),
    "special:duties": ("Duties", "Service"),
    "special:fees": ("Additional Fees", "Service"),
    "special:fallback": ("Shopify Sale", "NonInventory"),
    "special:discount": ("Discount", "Service"),
    "special:tax": ("Sales Tax Collected", "Service"),
    "special:refund_adjustment": ("Refund Adjustments", "Service"),
}


@dataclass(frozen=True)
class ItemRequest:
    """An item a plan needs: key (the ItemMap key), suggested name, SKU and type."""

    key: str
    name: str
    sku: str | None
    item_type: str
    description: str | None = None


def sanitize_item_name(name: str, fallback: str = "Item") -> str:
    """Item Name rules: no ':' (QBO's sub-item separator), tabs or newlines; <= 100 chars."""
    cleaned = _SPACES.sub(" ", _FORBIDDEN.sub(" ", name or "")).strip()
    if not cleaned:
        cleaned = fallback
    return cleaned[:NAME_MAX].rstrip()


def with_suffix(name: str, n: int, limit: int = NAME_MAX) -> str:
    """name for attempt n: n=1 is the name itself, then "name (2)", "name (3)", ... within limit."""
    if n <= 1:
        return name[:limit].rstrip()
    suffix = f" ({n})"
    return name[: limit - len(suffix)].rstrip() + suffix


def name_candidates(name: str, count: int = 20) -> Iterator[str]:
    """The deterministic sequence of names to try when QBO reports a duplicate (6240)."""
    base = sanitize_item_name(name)
    for n in range(1, count + 1):
        yield with_suffix(base, n)


_CONTROL = re.compile(r"[\t\r\n\x00-\x1f\x7f]")


def sanitize_sku(sku: str | None) -> str | None:
    """SKUs keep their ':' (only names forbid it); control characters and outer spaces go."""
    if sku is None:
        return None
    cleaned = _CONTROL.sub("", sku).strip()
    return cleaned[:SKU_MAX] or None


def item_payload(
    name: str,
    *,
    item_type: str = "NonInventory",
    income_account_id: str | None,
    sku: str | None = None,
    description: str | None = None,
    taxable: bool | None = None,
) -> dict[str, Any]:
    """A QBO Item create body for a NonInventory or Service item."""
    if item_type not in ("NonInventory", "Service"):
        raise ValueError(f"unsupported item type {item_type!r}")
    payload: dict[str, Any] = {"Name": sanitize_item_name(name), "Type": item_type}
    if income_account_id:
        payload["IncomeAccountRef"] = {"value": income_account_id}
    clean_sku = sanitize_sku(sku)
    if clean_sku:
        payload["Sku"] = clean_sku
    if description:
        payload["Description"] = description[:DESCRIPTION_MAX]
    if taxable is not None:
        payload["Taxable"] = taxable
    return payload
