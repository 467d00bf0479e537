"""The orders/fulfilled and orders/paid handler: the order posts on the shop's trigger, an invoice's payment on payment."""

from __future__ import annotations

from ..models import Shop, WebhookDelivery
from ..quickbooks.client import connection_for
from ..statuses import DeliveryStatus
from ..translate.document_kinds import kind_for_setting
from ..translate.settings import SyncSettings
from ..work_results import Outcome
from .dispatch import DeliveryContext
from .uninstall import ensure_shop_active
from .orders import TRIGGER_TOPICS, order_day, post_order
from .payments import post_payment_for_order
from .shop_settings import shop_settings


def handle_order_webhook(ctx: DeliveryContext) -> Outcome:
    shop = ensure_shop_active(ctx.shop)
    conn = connection_for(shop)
    settings = shop_settings(shop, conn)
    order, topic = ctx.payload, ctx.delivery.topic
    if topic != TRIGGER_TOPICS.get(settings.trigger, "orders/fulfilled"):
        if topic == "orders/paid" and kind_for_setting(settings.document_type).takes_payments:
            return _payment(shop, order, settings, ctx.delivery)
        return Outcome(DeliveryStatus.IGNORED, f"orders are posted when {settings.trigger}; {topic} posts nothing")
    start = settings.sync_start_date
    day = order_day(order)
    if start and day and day < start:
        return Outcome(DeliveryStatus.IGNORED, f"order dated {day} is before the sync start date {start}")
    outcome = post_order(shop, order, settings, conn, delivery=ctx.delivery)
    if topic == "orders/paid" and kind_for_setting(settings.document_type).takes_payments \
            and outcome.status in (DeliveryStatus.POSTED, DeliveryStatus.SKIPPED_DUPLICATE):
        return _payment(shop, order, settings, ctx.delivery)  # invoice posted on payment: record the payment too
    return outcome


def _payment(shop: Shop, order: dict, settings: SyncSettings, delivery: WebhookDelivery) -> Outcome:
    return post_payment_for_order(shop, order, settings, delivery=delivery)
