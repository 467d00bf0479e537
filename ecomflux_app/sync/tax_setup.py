"""Orders flagged for a tax the company's codes did not cover, resumed once the codes or the mapping settle it."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from ..models import QboConnection, Shop, SyncRecord, WebhookDelivery
from ..statuses import RecordStatus
from ..translate.order import TranslationError, plan_order
from ..translate.tax_codes import UNMAPPED_PREFIX
from .shop_settings import shop_facts, shop_settings
from .replay import replay_delivery

# The admin may add a code in QuickBooks after an order was flagged: the page re-reads this often.
FRESH_FOR = timedelta(minutes=10)


def resume_unmapped(shop: Shop) -> int:
    """Orders flagged for an unmapped tax go back through the exactly-once path (after a mapping)."""
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
