"""A non-US company's tax codes: read from QBO (TaxCode + TaxRate) and kept on the connection."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from ..models import QboConnection, utcnow
from ..translate.tax_codes import TaxSetup
from ..work_results import RetryLater
from .client import QboClient
from .errors import QboError


def load_tax_setup(conn: QboConnection | None) -> TaxSetup | None:
    """The stored tax codes of a non-US company (None: US, not connected, or not read yet)."""
    if conn is None or (conn.company_country or "US") == "US" or not getattr(conn, "tax_setup", None):
        return None
    try:
        return TaxSetup.from_values(json.loads(conn.tax_setup))
    except (ValueError, KeyError, TypeError):
        return None


def refresh_tax_setup(conn: QboConnection, client=None) -> TaxSetup | None:
    """Read the company's TaxCodes and TaxRates (two queries) and store them; US companies have none."""
    if (conn.company_country or "US") == "US":
        return None
    client = client or QboClient(conn)
    codes = client.query("SELECT * FROM TaxCode")
    rates = client.query("SELECT * FROM TaxRate")
    setup = TaxSetup.from_qbo(codes, rates)
    QboConnection.update(tax_setup=json.dumps(setup.to_values()), tax_setup_read_at=utcnow()).where(
        QboConnection.id == conn.id).execute()
    conn.tax_setup, conn.tax_setup_read_at = json.dumps(setup.to_values()), utcnow()
    return setup


def ensure_tax_setup(conn: QboConnection | None, client=None, max_age: timedelta | None = None) -> TaxSetup | None:
    """The stored setup, read from QBO first when missing (or older than max_age)."""
    if conn is None or (conn.company_country or "US") == "US" or conn.status != "connected":
        return load_tax_setup(conn)
    stale = max_age is not None and (conn.tax_setup_read_at is None or conn.tax_setup_read_at < utcnow() - max_age)
    if conn.tax_setup and not stale:
        return load_tax_setup(conn)
    return refresh_tax_setup(conn, client)


def with_tax_setup(settings, client):
    """Settings whose non-US company carries its tax codes, read from QBO now if they never were."""
    company = settings.company
    if company.is_us or company.tax_setup is not None or settings.tax_handling != "shopify":
        return settings
    try:
        setup = refresh_tax_setup(client.conn, client)
    except QboError as exc:
        raise RetryLater(f"the company's tax codes could not be read: {exc}", 60.0) from None
    return settings.with_company(dataclasses.replace(company, tax_setup=setup))
