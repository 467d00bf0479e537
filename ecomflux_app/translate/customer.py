"""Customer identity from an order: DisplayName candidates, QBO payload, and hashed match keys."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

DISPLAY_NAME_MAX = 100  # QBO allows 500; 100 keeps names readable and leaves room for suffixes
NAME_PART_MAX = 100
EMAIL_MAX = 100
PHONE_MAX = 30
_FORBIDDEN = re.compile(r"[:\t\r\n\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")  # no control characters
# Where guest orders go when the shop configured no default customer.
GUEST_DISPLAY_NAME = "Shopify Guest"
GUEST_KEY = "guest"


@dataclass(frozen=True)
class Address:
    """A postal address as Shopify gives it (only the parts QBO stores)."""

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    province_code: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    country: str | None = None
    name: str | None = None
    company: str | None = None
    phone: str | None = None

    @classmethod
    def from_shopify(cls, raw: Mapping[str, Any] | None) -> "Address | None":
        if not raw or not isinstance(raw, Mapping):
            return None

        def s(key: str) -> str | None:
            value = raw.get(key)
            if value is None:
                return None
            text = str(value).strip()
            return text or None

        addr = cls(
            line1=s("address1"), line2=s("address2"), city=s("city"),
            province_code=s("province_code") or s("province"), postal_code=s("zip"),
            country_code=s("country_code"), country=s("country"), name=s("name"),
            company=s("company"), phone=s("phone"),
        )
        return None if addr == cls() else addr

    def to_qbo(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value, limit in (
            ("Line1", self.line1, 500), ("Line2", self.line2, 500), ("City", self.city, 255),
            ("CountrySubDivisionCode", self.province_code, 255), ("PostalCode", self.postal_code, 30),
            ("Country", self.country_code or self.country, 255),
        ):
            if value:
                out[key] = _clean(value)[:limit]
        return out


@dataclass(frozen=True)
class CustomerIdentity:
    """Who bought: enough to find or create the QBO customer; guest means no usable identity."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    phone: str | None = None
    billing: Address | None = None
    shipping: Address | None = None
    shopify_customer_id: str | None = None
    guest: bool = False

    @property
    def full_name(self) -> str | None:
        parts = [p for p in (self.first_name, self.last_name) if p]
        name = " ".join(parts).strip()
        return name or None

    @property
    def postal_code(self) -> str | None:
        for addr in (self.shipping, self.billing):
            if addr and addr.postal_code:
                return addr.postal_code
        return None


def _clean(text: str) -> str:
    return _SPACES.sub(" ", _FORBIDDEN.sub(" ", text)).strip()


def sanitize_display_name(name: str) -> str:
    """DisplayName rules: no ':' tab or newline, trimmed, <= DISPLAY_NAME_MAX."""
    return _clean(name)[:DISPLAY_NAME_MAX].rstrip()


def base_display_name(identity: CustomerIdentity) -> str | None:
    """The preferred DisplayName: person's name, else company, else email; None for a guest."""
    for candidate in (identity.full_name, identity.company, identity.email):
        if candidate:
            cleaned = sanitize_display_name(candidate)
            if cleaned:
                return cleaned
    return None


def display_name_candidates(identity: CustomerIdentity, count: int = 20) -> Iterator[str]:
    """Up to count names to try in order when QBO says a name is taken (6240 spans customers/vendors/employees).

    First the plain name, then "Name (Company)" when there is a company, then "Name (2)",
    "Name (3)", ... — deterministic, so a retry walks the same sequence.
    """
    base = base_display_name(identity)
    if base is None:
        return
    names = [base]
    if identity.company and identity.full_name:
        names.append(_suffixed(base, f" ({_clean(identity.company)})"))
    names.extend(_suffixed(base, f" ({n})") for n in range(2, count + 1))
    seen: set[str] = set()
    emitted = 0
    for name in names:
        if emitted >= count:
            return
        if name.lower() not in seen:
            seen.add(name.lower())
            emitted += 1
            yield name


def _suffixed(base: str, suffix: str) -> str:
    suffix = suffix[: DISPLAY_NAME_MAX // 2]
    return base[: DISPLAY_NAME_MAX - len(suffix)].rstrip() + suffix


def customer_payload(identity: CustomerIdentity, display_name: str, *,
                     currency: str | None = None) -> dict[str, Any]:
    """A QBO Customer create body (currency only for a multicurrency company's foreign customer)."""
    payload: dict[str, Any] = {"DisplayName": sanitize_display_name(display_name)}
    if identity.first_name:
        payload["GivenName"] = _clean(identity.first_name)[:NAME_PART_MAX]
    if identity.last_name:
        payload["FamilyName"] = _clean(identity.last_name)[:NAME_PART_MAX]
    if identity.company:
        payload["CompanyName"] = _clean(identity.company)[:NAME_PART_MAX]
    if identity.email and _EMAIL.match(identity.email) and len(identity.email) <= EMAIL_MAX:
        payload["PrimaryEmailAddr"] = {"Address": identity.email}
    if identity.phone:
        payload["PrimaryPhone"] = {"FreeFormNumber": _clean(identity.phone)[:PHONE_MAX]}
    if identity.billing:
        bill = identity.billing.to_qbo()
        if bill:
            payload["BillAddr"] = bill
    if identity.shipping:
        ship = identity.shipping.to_qbo()
        if ship:
            payload["ShipAddr"] = ship
    if currency:
        payload["CurrencyRef"] = {"value": currency}
    return payload


def guest_customer_payload(currency: str | None = None) -> dict[str, Any]:
    """The shared customer for orders without identity (used when no default_customer_id is set)."""
    payload: dict[str, Any] = {"DisplayName": GUEST_DISPLAY_NAME, "Notes": "Shopify orders without customer details"}
    if currency:
        payload["DisplayName"] = f"{GUEST_DISPLAY_NAME} ({currency})"
        payload["CurrencyRef"] = {"value": currency}
    return payload


def normalize_email(email: str) -> str:
    return email.strip().lower()


def normalize_text(text: str) -> str:
    """Case-, accent- and spacing-insensitive form used for name matching."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", stripped).strip().casefold()


def _digest(kind: str, value: str, salt: str) -> str:
    return kind + ":" + hashlib.sha256(f"{salt}\x1f{kind}\x1f{value}".encode()).hexdigest()[:48]


def email_key(email: str, salt: str = "") -> str:
    return _digest("email", normalize_email(email), salt)


def name_postal_key(name: str, postal_code: str, salt: str = "") -> str:
    postal = re.sub(r"\s+", "", postal_code).upper()
    return _digest("namezip", normalize_text(name) + "|" + postal, salt)


def match_keys(identity: CustomerIdentity, salt: str = "", currency: str | None = None) -> list[str]:
    """Cache keys for CustomerMap, strongest first: email hash, then name + postal code hash.

    Hashes keep personal data out of mapping rows. In a multicurrency company a customer has a
    currency, so a foreign-currency order uses keys suffixed with it.
    """
    keys: list[str] = []
    if identity.email:
        keys.append(email_key(identity.email, salt))
    name = identity.full_name or identity.company
    if name and identity.postal_code:
        keys.append(name_postal_key(name, identity.postal_code, salt))
    if currency:
        keys = [f"{k}:{currency}" for k in keys]
    return keys
