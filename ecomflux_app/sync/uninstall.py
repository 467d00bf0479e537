"""app/uninstalled: forget the shop's tokens (Shopify and QuickBooks) and pause its work; idempotent."""

from __future__ import annotations

import logging

from ..db import database
from ..models import QboConnection, Shop, utcnow
from ..statuses import ConnectionStatus, DeliveryStatus, ShopStatus
from .dispatch import DeliveryContext
from ..work_results import Outcome
from ..shopify.errors import ShopifyReauthRequired
from ..shopify.graphql import token_accepted
from ..shopify.webhooks import triggered_at

log = logging.getLogger(__name__)


def _token_check(ctx: DeliveryContext) -> dict | None:
    """When the delivery predates the shop's latest install: both times and Shopify's verdict on our token."""
    shop = ctx.shop
    triggered = triggered_at(ctx.delivery.triggered_at, ctx.delivery.headers)
    # Shopify retries for hours and does not keep order, so an uninstall from before a reinstall can
    # land now; only Shopify knows whether it is current. No usable stamp or no token: drop as always.
    if triggered is None or triggered >= shop.installed_at or not shop.is_active:
        return None
    # RetryLater (unreachable, 5xx, throttled) rises to the dispatcher: retried later, nothing touched.
    verdict = "accepted" if token_accepted(shop) else "refused"
    return {"triggered_at": triggered.isoformat() + "Z", "installed_at": shop.installed_at.isoformat() + "Z",
            "token_check": verdict}


def handle_uninstalled(ctx: DeliveryContext) -> Outcome:
    """Drop the shop's tokens unless Shopify confirms that this (late) uninstall predates a reinstall."""
    shop = ctx.shop
    if shop is None:
        return Outcome(DeliveryStatus.PROCESSED, "unknown shop: nothing stored, nothing to drop")
    checked = _token_check(ctx) or {}
    if checked.get("token_check") == "accepted":
        reason = (f"stale app/uninstalled ignored: triggered at {checked['triggered_at']}, before the install at "
                  f"{checked['installed_at']}, and Shopify still accepts the shop's token")
        log.info("shop %s: %s", shop.domain, reason)
        return Outcome(DeliveryStatus.IGNORED, reason, dict(checked, stale_uninstall=True))
    now = utcnow()
    with database.atomic():
        # Only the install this handler looked at: a reinstall meanwhile brought new tokens that stay.
        dropped = Shop.update(
            status=ShopStatus.UNINSTALLED, uninstalled_at=now, access_token=None, access_token_expires_at=None,
            refresh_token=None, refresh_token_expires_at=None, auth_error=None,
            token_version=Shop.token_version + 1, updated_at=now,
        ).where((Shop.id == shop.id) & (Shop.status.in_((ShopStatus.ACTIVE, ShopStatus.REAUTH_REQUIRED)))
                & (Shop.installed_at == shop.installed_at)).execute()
        current = Shop.get_by_id(shop.id)
        if not dropped and current.status == ShopStatus.ACTIVE:
            return Outcome(DeliveryStatus.IGNORED, "the shop was reinstalled while this uninstall ran: its new tokens stay",
                           checked or None)
        # QuickBooks tokens go too; realm and company name stay as history for a reconnect.
        qbo = QboConnection.update(
            status=ConnectionStatus.NOT_CONNECTED, status_reason="Shopify app uninstalled", access_token=None,
            refresh_token=None, access_token_expires_at=None, refresh_token_expires_at=None,
            token_version=QboConnection.token_version + 1, updated_at=now,
        ).where((QboConnection.shop == shop.id) & (
            QboConnection.access_token.is_null(False) | QboConnection.refresh_token.is_null(False)
            | (QboConnection.status != ConnectionStatus.NOT_CONNECTED))).execute()
    if not dropped:
        return Outcome(DeliveryStatus.PROCESSED, f"already {current.status}: nothing to drop", checked or None)
    log.info("shop %s uninstalled: tokens dropped%s, work paused%s", shop.domain, " (incl. QuickBooks)" if qbo else "",
             " (late delivery, but Shopify refused our token)" if checked else "")
    return Outcome(DeliveryStatus.PROCESSED, None, dict(checked, shopify_tokens_dropped=True, qbo_tokens_dropped=bool(qbo)))


def ensure_shop_active(shop: Shop | None) -> Shop:
    """For work handlers: the shop if it may be worked on, else park the delivery until a reinstall resumes it."""
    if shop is None:
        raise ShopifyReauthRequired("shop is not installed: parked until it installs the app")
    if not shop.is_active:
        raise ShopifyReauthRequired(f"shop is {shop.status}: parked until the app is reinstalled or reopened")
    return shop
