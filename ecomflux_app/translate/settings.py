"""Per-shop sync settings and QuickBooks company facts, with parsing and per-field validation."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

from .document_kinds import DEFAULT_DOCUMENT_TYPE, DOCUMENT_TYPES

TRIGGERS = ("fulfilled", "paid")
# shopify: keep Shopify's tax figures on the document (TxnTaxDetail / GlobalTaxCalculation);
# tax_line: post tax as its own line on tax_item_id (companies without sales tax set up).
TAX_HANDLING = ("shopify", "tax_line")
# email_then_name: email, then name + shipping postal code, else create; email: email only;
# none: every order goes to default_customer_id.
CUSTOMER_MATCHING = ("email_then_name", "email", "none")
ITEM_TYPES = ("NonInventory", "Service")
DOC_NUMBER_PREFIX_MAX = 10
_QBO_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")

# Settings that hold a QBO entity id (validated as ids, empty means "not set").
ID_FIELDS = (
    "deposit_account_id",
    "income_account_id",
    "shipping_item_id",
    "discount_item_id",
    "discount_account_id",
    "default_customer_id",
    "class_id",
    "department_id",
    "refund_account_id",
    "gift_card_liability_item_id",
    "tips_item_id",
    "fallback_item_id",
    "duties_item_id",
    "tax_item_id",
    "taxable_tax_code_id",
    "exempt_tax_code_id",
    "payout_clearing_account_id",
    "payout_bank_account_id",
    "payout_fee_account_id",
    "payout_chargeback_account_id",
    "payout_adjustment_account_id",
)
# Shopify Payments payouts: where its sales wait (clearing), where payouts land (bank), fees.
PAYOUT_ACCOUNT_FIELDS = ("payout_clearing_account_id", "payout_bank_account_id", "payout_fee_account_id")
# The gateway whose money Shopify pays out (the others keep their mapped accounts).
SHOPIFY_PAYMENTS_GATEWAY = "shopify_payments"


@dataclass(frozen=True)
class CompanyFacts:
    """What the connected QBO company is like (read from CompanyInfo/Preferences, not typed by the admin)."""

    country: str = "US"
    home_currency: str = "USD"
    multicurrency: bool = False
    shipping_allowed: bool = True
    automated_sales_tax: bool = True
    # Non-US: the company's tax codes (translate.tax_codes.TaxSetup), read from QBO by the sync.
    tax_setup: Any = field(default=None, compare=False, repr=False)

    @property
    def is_us(self) -> bool:
        return self.country == "US"

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None) -> "CompanyFacts":
        facts, _ = _parse_company(values or {})
        return facts

    def to_values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "tax_setup"}


@dataclass(frozen=True)
class SyncSettings:
    """How a shop's orders become QBO documents; ids are QBO entity ids (strings), None = not set."""

    document_type: str = DEFAULT_DOCUMENT_TYPE
    trigger: str = "fulfilled"
    deposit_account_id: str | None = None
    income_account_id: str | None = None
    shipping_item_id: str | None = None
    discount_item_id: str | None = None
    discount_account_id: str | None = None
    tax_handling: str = "shopify"
    default_customer_id: str | None = None
    customer_matching: str = "email_then_name"
    doc_number_prefix: str = ""
    class_id: str | None = None
    department_id: str | None = None
    sync_start_date: date | None = None
    refund_account_id: str | None = None
    gift_card_liability_item_id: str | None = None
    tips_item_id: str | None = None
    fallback_item_id: str | None = None
    duties_item_id: str | None = None
    tax_item_id: str | None = None
    taxable_tax_code_id: str | None = None
    exempt_tax_code_id: str | None = None
    item_type: str = "NonInventory"
    invoice_terms_days: int = 30
    payment_method_map: dict[str, str] = field(default_factory=dict)
    deposit_account_map: dict[str, str] = field(default_factory=dict)  # gateway -> deposit account (Payments)
    # Shopify Payments: sales, payments and refunds through it go into/out of the clearing account;
    # each paid payout is one Deposit from clearing into the bank account, fees to the fee account.
    payout_clearing_account_id: str | None = None
    payout_bank_account_id: str | None = None
    payout_fee_account_id: str | None = None
    payout_chargeback_account_id: str | None = None  # default: the fee account
    payout_adjustment_account_id: str | None = None  # default: the fee account
    payouts_start_date: date | None = None  # payouts issued before it are not posted
    # Non-US: Shopify tax signature ("VAT 20%", "GST 5% + PST 7%") -> QBO tax code id, set on the page.
    tax_code_map: dict[str, str] = field(default_factory=dict)
    company: CompanyFacts = field(default_factory=CompanyFacts)
    # Fields from_values() could not read (they kept their defaults); validate() reports them.
    parse_errors: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None) -> "SyncSettings":
        """Build settings from stored/posted values; invalid fields fall back to their defaults.

        Use validate_values() first when the values come from a user (it reports those fields).
        """
        settings, errors = parse_settings(values or {})
        return dataclasses.replace(settings, parse_errors=errors) if errors else settings

    @classmethod
    def validate_values(cls, values: Mapping[str, Any]) -> dict[str, str]:
        """Per-field errors for raw values ({} when they are acceptable)."""
        settings, errors = parse_settings(values)
        for name, message in dataclasses.replace(settings, parse_errors={}).validate().items():
            errors.setdefault(name, message)
        return errors

    def validate(self) -> dict[str, str]:
        """Per-field errors: fields from_values() could not read, then cross-field rules ({} when valid)."""
        errors: dict[str, str] = dict(self.parse_errors)
        if self.tax_handling == "tax_line" and not self.tax_item_id:
            errors["tax_item_id"] = "required when tax_handling is tax_line"
        if self.customer_matching == "none" and not self.default_customer_id:
            errors["default_customer_id"] = "required when customer_matching is none"
        chosen = [name for name in PAYOUT_ACCOUNT_FIELDS if getattr(self, name)]
        if chosen and len(chosen) < len(PAYOUT_ACCOUNT_FIELDS):
            for name in PAYOUT_ACCOUNT_FIELDS:
                if not getattr(self, name):
                    errors[name] = "required for Shopify Payments payouts (clearing, bank and fee accounts together)"
        if self.payout_clearing_account_id and self.payout_clearing_account_id == self.payout_bank_account_id:
            errors["payout_bank_account_id"] = "must differ from the clearing account (payouts move money between them)"
        if not self.company.shipping_allowed and not self.shipping_item_id:
            # Not an error: the sync creates a "Shipping" service item; noted for completeness.
            pass
        return errors

    def to_values(self) -> dict[str, Any]:
        """JSON-ready values (dates as ISO strings); from_values(to_values()) round-trips."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "parse_errors":
                continue
            value = getattr(self, f.name)
            if isinstance(value, CompanyFacts):
                out[f.name] = value.to_values()
            elif isinstance(value, date):
                out[f.name] = value.isoformat()
            elif isinstance(value, dict):
                out[f.name] = dict(value)
            else:
                out[f.name] = value
        return out

    @property
    def payouts_enabled(self) -> bool:
        """Clearing, bank and fee accounts are all set: payouts post as Deposits."""
        return all(getattr(self, name) for name in PAYOUT_ACCOUNT_FIELDS)

    def clearing_account_for(self, gateway: str | None) -> str | None:
        """The clearing account for money through this gateway (Shopify Payments only), else None."""
        if self.payout_clearing_account_id and gateway and gateway.lower() == SHOPIFY_PAYMENTS_GATEWAY:
            return self.payout_clearing_account_id
        return None

    def with_company(self, company: CompanyFacts) -> "SyncSettings":
        return dataclasses.replace(self, company=company)


def _parse_company(values: Mapping[str, Any]) -> tuple[CompanyFacts, dict[str, str]]:
    errors: dict[str, str] = {}
    default = CompanyFacts()
    kwargs: dict[str, Any] = {}
    country = values.get("country")
    if country not in (None, ""):
        if isinstance(country, str) and _COUNTRY.match(country.upper()):
            kwargs["country"] = country.upper()
        else:
            errors["company.country"] = "must be a two-letter country code"
    currency = values.get("home_currency")
    if currency not in (None, ""):
        if isinstance(currency, str) and _CURRENCY.match(currency.upper()):
            kwargs["home_currency"] = currency.upper()
        else:
            errors["company.home_currency"] = "must be a three-letter currency code"
    for name in ("multicurrency", "shipping_allowed", "automated_sales_tax"):
        if name in values and values[name] is not None:
            if isinstance(values[name], bool):
                kwargs[name] = values[name]
            else:
                errors[f"company.{name}"] = "must be true or false"
    return dataclasses.replace(default, **kwargs), errors


def effective_settings(values: Mapping[str, Any], company: Mapping[str, Any] | None, *, shop_country: str | None,
                       shop_currency: str | None, tax_setup: Any = None) -> SyncSettings:
    """A shop's settings as they post: its chosen values with the QBO company's facts, the shop's own country
    and currency standing in for what the company has not told (US and USD only when the shop has none)."""
    told = dict(company or {})
    told["country"] = told.get("country") or shop_country
    told["home_currency"] = told.get("home_currency") or shop_currency
    facts = dataclasses.replace(CompanyFacts.from_values(told), tax_setup=tax_setup)
    # The company's facts come from QuickBooks (or the shop), never from the saved values.
    return SyncSettings.from_values({k: v for k, v in values.items() if k != "company"}).with_company(facts)


def parse_settings(values: Mapping[str, Any]) -> tuple[SyncSettings, dict[str, str]]:
    """Parse raw values into settings plus per-field errors; bad fields keep their defaults."""
    errors: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    if not isinstance(values, Mapping):
        return SyncSettings(), {"_": "settings must be an object"}

    known = {f.name for f in dataclasses.fields(SyncSettings)} - {"parse_errors"}
    for name in values:
        if name not in known:
            errors[name] = "unknown setting"

    # Each step reads its fields into kwargs, or says in errors why not (in this order).
    _parse_choices(values, kwargs, errors)
    _parse_ids(values, kwargs, errors)
    _parse_doc_number_prefix(values, kwargs, errors)
    _parse_dates(values, kwargs, errors)
    _parse_invoice_terms(values, kwargs, errors)
    _parse_gateway_maps(values, kwargs, errors)
    _parse_tax_code_map(values, kwargs, errors)
    _parse_company_values(values, kwargs, errors)
    return SyncSettings(**kwargs), errors


def _parse_choices(values: Mapping[str, Any], kwargs: dict[str, Any], errors: dict[str, str]) -> None:
    """The settings that are one of a few options: document type, trigger, tax handling and the like."""
    def choice(name: str, options: tuple[str, ...]) -> None:
        if name in values and values[name] is not None:
            if values[name] in options:
                kwargs[name] = values[name]
            else:
                errors[name] = "must be one of: " + ", ".join(options)

    choice("document_type", DOCUMENT_TYPES)
    choice("trigger", TRIGGERS)
    choice("tax_handling", TAX_HANDLING)
    choice("customer_matching", CUSTOMER_MATCHING)
    choice("item_type", ITEM_TYPES)


def _parse_ids(values: Mapping[str, Any], kwargs: dict[str, Any], errors: dict[str, str]) -> None:
    """The QuickBooks ids of accounts, items and the like (empty: not set)."""
    for name in ID_FIELDS:
        if name not in values:
            continue
        raw = values[name]
        if raw is None or raw == "":
            kwargs[name] = None
        elif isinstance(raw, int) and not isinstance(raw, bool):
            kwargs[name] = str(raw)
        elif isinstance(raw, str) and _QBO_ID.match(raw.strip()):
            kwargs[name] = raw.strip()
        else:
            errors[name] = "must be a QuickBooks id (letters, digits, - or _)"


def _parse_doc_number_prefix(values: Mapping[str, Any], kwargs: dict[str, Any], errors: dict[str, str]) -> None:
    """The prefix of the documents' numbers: short, printable text."""
    if "doc_number_prefix" in values and values["doc_number_prefix"] is not None:
        prefix = values["doc_number_prefix"]
        if not isinstance(prefix, str):
            errors["doc_number_prefix"] = "must be text"
        elif len(prefix) > DOC_NUMBER_PREFIX_MAX:
            errors["doc_number_prefix"] = f"at most {DOC_NUMBER_PREFIX_MAX} characters"
        elif any(c in prefix for c in "\t\r\n") or (prefix and not prefix.isprintable()):
            errors["doc_number_prefix"] = "must not contain control characters"
        else:
            kwargs["doc_number_prefix"] = prefix


def _parse_dates(values: Mapping[str, Any], kwargs: dict[str, Any], errors: dict[str, str]) -> None:
    """The dates the sync of orders and of payouts starts from."""
    for date_name in ("sync_start_date", "payouts_start_date"):
        if date_name not in values:
            continue
        raw = values[date_name]
        if raw in (None, ""):
            kwargs[date_name] = None
        elif isinstance(raw, date):
            kwargs[date_name] = raw
        else:
            try:
                kwargs[date_name] = date.fromisoformat(str(raw))
            except ValueError:
                errors[date_name] = "must be a date (YYYY-MM-DD)"


def _parse_invoice_terms(values: Mapping[str, Any], kwargs: dict[str, Any], errors: dict[str, str]) -> None:
    """An invoice's payment terms: a whole number of days, 0 to 365."""
    if "invoice_terms_days" in values and values["invoice_terms_days"] is not None:
        raw = values["invoice_terms_days"]
        try:
            if isinstance(raw, bool) or isinstance(raw, float):
                raise ValueError
            days = int(raw)
        except (TypeError, ValueError):
            errors["invoice_terms_days"] = "must be a whole number of days"
        else:
            if 0 <= days <= 365:
                kwargs["invoice_terms_days"] = days
            else:
                errors["invoice_terms_days"] = "must be between 0 and 365"


def _parse_gateway_maps(values: Mapping[str, Any], kwargs: dict[str, Any], errors: dict[str, str]) -> None:
    """Gateway -> QBO id maps: payment methods, and deposit accounts for invoice Payments ("*" = any)."""
    for map_name, what in (("payment_method_map", "payment method"), ("deposit_account_map", "account")):
        if map_name not in values or values[map_name] is None:
            continue
        raw = values[map_name]
        if not isinstance(raw, Mapping):
            errors[map_name] = f"must map gateway names to QuickBooks {what} ids"
            continue
        mapping: dict[str, str] = {}
        for gateway, method in raw.items():
            method_s = str(method).strip() if isinstance(method, (str, int)) else ""
            if not isinstance(gateway, str) or not gateway.strip() or not _QBO_ID.match(method_s):
                errors[map_name] = f"bad entry for gateway {gateway!r}"
                break
            mapping[gateway.strip()] = method_s
        else:
            kwargs[map_name] = mapping


def _parse_tax_code_map(values: Mapping[str, Any], kwargs: dict[str, Any], errors: dict[str, str]) -> None:
    """Shopify taxes (by signature) -> QuickBooks tax code ids."""
    if values.get("tax_code_map") is not None:
        raw = values["tax_code_map"]
        codes = raw if isinstance(raw, Mapping) else None
        if codes is None or not all(isinstance(k, str) and k.strip() and len(k) <= 200 and isinstance(v, (str, int))
                                    and _QBO_ID.match(str(v).strip()) for k, v in codes.items()):
            errors["tax_code_map"] = "must map Shopify taxes to QuickBooks tax code ids"
        else:
            kwargs["tax_code_map"] = {k.strip(): str(v).strip() for k, v in codes.items()}


def _parse_company_values(values: Mapping[str, Any], kwargs: dict[str, Any], errors: dict[str, str]) -> None:
    """The QuickBooks company's facts (country, home currency, preferences), errors under company.*."""
    if "company" in values and values["company"] is not None:
        raw = values["company"]
        if not isinstance(raw, Mapping):
            errors["company"] = "must be an object"
        else:
            company, company_errors = _parse_company(raw)
            kwargs["company"] = company
            errors.update(company_errors)
