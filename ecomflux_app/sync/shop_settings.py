"""A shop's effective settings and facts, read from the database: the one place posting, Preview, the settings API and the CLI get them."""

from __future__ import annotations

from typing import Any, Mapping

from ..models import QboConnection, Shop, ShopSettings
from ..quickbooks.company_taxes import load_tax_setup
from ..translate.order import ShopFacts
from ..translate.settings import SyncSettings, effective_settings


def saved_values(shop: Shop) -> dict:
    """The settings the admin saved (as stored), {} when none were."""
    row = ShopSettings.get_or_none(ShopSettings.shop == shop)
    return dict(row.values or {}) if row else {}


def shop_settings(shop: Shop, conn: QboConnection | None, values: Mapping[str, Any] | None = None) -> SyncSettings:
    """The shop's settings as they are NOW (a changed document type affects later orders only): `values`
    (default: the saved ones) with the company's facts from the stored connection, whatever its state."""
    company = None
    if conn is not None:
        company = {"country": conn.company_country, "home_currency": conn.home_currency,
                   "multicurrency": bool(conn.multicurrency)}
    return effective_settings(saved_values(shop) if values is None else values, company,
                              shop_country=shop.country, shop_currency=shop.currency, tax_setup=load_tax_setup(conn))


def shop_facts(shop: Shop) -> ShopFacts:
    """What the Shopify store is like (its timezone and currency) for translation."""
    return ShopFacts(timezone=shop.timezone or "UTC", currency=shop.currency or "USD")
