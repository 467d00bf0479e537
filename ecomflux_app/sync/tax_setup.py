"""A non-US company's tax codes: read from QBO (TaxCode + TaxRate), kept on the connection, resumed orders."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal

from ..models import QboConnection, Shop, SyncRecord, WebhookDelivery, utcnow
from ..statuses import ConnectionStatus, RecordStatus
from ..translate.tax_codes import UNMAPPED_PREFIX, TaxSetup
from .shop_settings import load_tax_setup, shop_facts, shop_settings

log = logging.getLogger(__name__)

# The admin may add a code in QuickBooks after an order was flagged: the page re-reads this often.
FRESH_FOR = timedelta(minutes=10)


def refresh_tax_setup(conn: QboConnection, client=None) -> TaxSetup | None:
    """Read the company's TaxCodes and TaxRates (two queries) and store them; US companies have none."""
    if (conn.company_country or "US") == "US":
        return None
    from ..quickbooks.client import QboClient

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
    if conn is None or (conn.company_country or "US") == "US" or conn.status != ConnectionStatus.CONNECTED:
        return load_tax_setup(conn)
    stale = max_age is not None and (conn.tax_setup_read_at is None or conn.tax_setup_read_at < utcnow() - max_age)
    if conn.tax_setup and not stale:
        return load_tax_setup(conn)
    return refresh_tax_setup(conn, client)


def resume_unmapped(shop: Shop) -> int:
    """Orders flagged for an unmapped tax go back through the exactly-once path (after a mapping)."""
    from ..translate.order import TranslationError, plan_order
    from .replay import replay_delivery

    # The stored connection as it is (even waiting for a reconnect): resumed rows wait there if need be.
    settings = shop_settings(shop, QboConnection.get_or_none(QboConnection.shop == shop.id))
    facts = shop_facts(shop)
    flagged = SyncRecord.select().where((SyncRecord.shop == shop.id) & (SyncRecord.status == RecordStatus.FLAGGED)
                                        & (SyncRecord.kind == "order")
                                        & SyncRecord.reason.contains(UNMAPPED_PREFIX))
    resumed = 0
    for rec in flagged:
        delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == rec.delivery_id) if rec.delivery_id else None
        if delivery is None:
            delivery = (WebhookDelivery.select().where((WebhookDelivery.shop_domain == shop.domain)
                                                       & (WebhookDelivery.order_id == rec.order_id))
                        .order_by(WebhookDelivery.id.desc()).first())
        if delivery is None:
            continue
        try:  # only what the codes and mapping now settle; the rest stays flagged, saying why
            if plan_order(json.loads(delivery.body, parse_float=Decimal), settings, facts).tax_unmapped:
                continue
        except (TranslationError, ValueError):
            continue
        if replay_delivery(delivery.id) != "busy":
            resumed += 1
    return resumed


def with_tax_setup(settings, client):
    """Settings whose non-US company carries its tax codes, read from QBO now if they never were."""
    import dataclasses

    company = settings.company
    if company.is_us or company.tax_setup is not None or settings.tax_handling != "shopify":
        return settings
    from ..quickbooks.errors import QboError
    from ..work_results import RetryLater

    try:
        setup = refresh_tax_setup(client.conn, client)
    except QboError as exc:
        raise RetryLater(f"the company's tax codes could not be read: {exc}", 60.0) from None
    return settings.with_company(dataclasses.replace(company, tax_setup=setup))
