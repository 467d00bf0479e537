"""app/uninstalled: forget the shop's tokens (Shopify and QuickBooks) and pause its work; idempotent."""

from __future__ import annotations

import logging

from ..db import database
from ..models import QboConnection, Shop, utcnow
from .dispatch import DeliveryContext
from .outcomes import Outcome

log = logging.getLogger(__name__)


def handle_uninstalled(ctx: DeliveryContext) -> Outcome:
    shop = ctx.shop
    if shop is None:
        return Outcome("processed", "unknown shop: nothing stored, nothing to drop")
    # No "stale uninstall" guess from X-Shopify-Triggered-At: Shopify revokes our tokens on uninstall,
    # so dropping them is always right; a reinstall (token exchange) restores the shop.
    now = utcnow()
    with database.atomic():
        dropped = Shop.update(
            status="uninstalled", uninstalled_at=now, access_token=None, access_token_expires_at=None,
            refresh_token=None, refresh_token_expires_at=None, auth_error=None,
            token_version=Shop.token_version + 1, updated_at=now,
        ).where((Shop.id == shop.id) & (Shop.status.in_(("active", "reauth_required")))).execute()
        # QuickBooks tokens go too; realm and company name stay as history for a reconnect.
        qbo = QboConnection.update(
            status="not_connected", status_reason="Shopify app uninstalled", access_token=None,
            refresh_token=None, access_token_expires_at=None, refresh_token_expires_at=None,
            token_version=QboConnection.token_version + 1, updated_at=now,
        ).where((QboConnection.shop == shop.id) & (
            QboConnection.access_token.is_null(False) | QboConnection.refresh_token.is_null(False)
            | (QboConnection.status != "not_connected"))).execute()
    if not dropped:
        return Outcome("processed", f"already {shop.status}: nothing to drop")
    log.info("shop %s uninstalled: tokens dropped%s, work paused", shop.domain, " (incl. QuickBooks)" if qbo else "")
    return Outcome("processed", None, {"shopify_tokens_dropped": True, "qbo_tokens_dropped": bool(qbo)})


def ensure_shop_active(shop: Shop | None) -> Shop:
    """For work handlers: the shop if it may be worked on, else park the delivery until a reinstall resumes it."""
    from ..shopify.errors import ShopifyReauthRequired

    if shop is None:
        raise ShopifyReauthRequired("shop is not installed: parked until it installs the app")
    if not shop.is_active:
        raise ShopifyReauthRequired(f"shop is {shop.status}: parked until the app is reinstalled or reopened")
    return shop
