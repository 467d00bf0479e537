"""A usable Shopify access token for a shop: refreshed before expiry, one refresh per shop at a time."""

from __future__ import annotations

import logging
from datetime import timedelta

from redis.exceptions import LockError, RedisError

from .. import runtime
from ..models import Shop, utcnow
from ..statuses import ShopStatus
from . import oauth
from .errors import OAuthError, ShopifyError, ShopifyReauthRequired, ShopifyUnavailable

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)  # refresh this long before the access token expires
LOCK_SECONDS = 30  # longer than a token request's timeout, so a lock never expires mid-refresh


def lock_name(shop_domain: str) -> str:
    return f"ecomflux:lock:shopify-refresh:{shop_domain}"


def needs_refresh(shop: Shop, rejected: str | None = None) -> bool:
    """True when the token expires within the margin, or Shopify just rejected this very token."""
    if rejected is not None and shop.access_token == rejected:
        return bool(shop.refresh_token)
    return shop.access_token_expires_at is not None and shop.access_token_expires_at - utcnow() < REFRESH_MARGIN


def _copy_tokens(source: Shop, target: Shop) -> None:
    for name in ("access_token", "access_token_expires_at", "refresh_token", "refresh_token_expires_at",
                 "token_version", "status", "auth_error"):
        setattr(target, name, getattr(source, name))


def mark_reauth_required(shop: Shop, reason: str) -> None:
    """Stop using the shop's tokens until the merchant reopens or reinstalls the app; never loops."""
    Shop.update(status=ShopStatus.REAUTH_REQUIRED, auth_error=reason, access_token=None, refresh_token=None,
                access_token_expires_at=None, refresh_token_expires_at=None,
                token_version=Shop.token_version + 1, updated_at=utcnow()).where(
        (Shop.id == shop.id) & (Shop.status == ShopStatus.ACTIVE)).execute()
    shop.status, shop.auth_error, shop.access_token, shop.refresh_token = ShopStatus.REAUTH_REQUIRED, reason, None, None
    log.warning("shop %s must re-authorize with Shopify (%s)", shop.domain, reason)


def _require_usable(shop: Shop) -> None:
    if shop.status != ShopStatus.ACTIVE or not shop.access_token:
        raise ShopifyReauthRequired(shop.auth_error or f"shop {shop.domain} is {shop.status}: no Shopify access")


def fresh_access_token(shop: Shop, rejected: str | None = None) -> str:
    """The shop's access token, refreshed first when it is about to expire (or was `rejected`)."""
    _require_usable(shop)
    if not needs_refresh(shop, rejected):
        return shop.access_token
    lock = runtime.redis().lock(lock_name(shop.domain), timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)
    try:
        acquired = lock.acquire()
    except RedisError as exc:
        # Refreshing without the lock could burn the rotating refresh token in a race: wait instead.
        raise ShopifyUnavailable(f"cannot lock the token refresh for {shop.domain}: {type(exc).__name__}", 10) from exc
    if not acquired:
        raise ShopifyUnavailable(f"token refresh for {shop.domain} is still running elsewhere", 5)
    try:
        # Another worker may have refreshed while we waited: re-read before deciding.
        current = Shop.get_by_id(shop.id)
        _copy_tokens(current, shop)
        _require_usable(current)
        if not needs_refresh(current, rejected):
            return current.access_token
        if not current.refresh_token or (
                current.refresh_token_expires_at is not None and current.refresh_token_expires_at <= utcnow()):
            mark_reauth_required(shop, "Shopify refresh token missing or expired")
            raise ShopifyReauthRequired(shop.auth_error)
        try:
            tokens = oauth.refresh(shop.domain, current.refresh_token)
        except OAuthError as exc:
            if exc.error == "invalid_grant":
                mark_reauth_required(shop, "Shopify rejected the refresh token (invalid_grant)")
                raise ShopifyReauthRequired(shop.auth_error) from exc
            raise ShopifyError(f"Shopify token refresh failed: {exc}", exc.detail) from exc
        # Access and rotated refresh token land together, and only over the version we read.
        saved = Shop.update(
            access_token=tokens.access_token,
            access_token_expires_at=tokens.access_expires_at,
            refresh_token=tokens.refresh_token or current.refresh_token,
            refresh_token_expires_at=tokens.refresh_expires_at or current.refresh_token_expires_at,
            token_version=Shop.token_version + 1,
            updated_at=utcnow(),
        ).where((Shop.id == shop.id) & (Shop.token_version == current.token_version)).execute()
        _copy_tokens(Shop.get_by_id(shop.id), shop)
        if not saved:
            # The shop was uninstalled or reinstalled meanwhile; its own state wins.
            _require_usable(shop)
        log.info("refreshed Shopify token for %s", shop.domain)
        return shop.access_token
    finally:
        try:
            lock.release()
        except (LockError, RedisError):
            log.warning("refresh lock for %s expired before release", shop.domain)
