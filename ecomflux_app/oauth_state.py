"""Single-use OAuth state nonces bound to a shop and a purpose (Shopify install, QuickBooks connect)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from .models import OAuthState, utcnow

STATE_TTL = timedelta(minutes=10)


def issue_state(shop_domain: str, purpose: str = "shopify", ttl: timedelta = STATE_TTL) -> str:
    """A fresh single-use nonce bound to the shop, stored until it expires."""
    nonce = secrets.token_urlsafe(32)
    OAuthState.create(nonce=nonce, shop_domain=shop_domain, purpose=purpose, expires_at=utcnow() + ttl)
    return nonce


def consume_state(nonce: str | None, shop_domain: str, purpose: str = "shopify") -> bool:
    """Atomically mark the nonce used; False if unknown, used, expired or bound to another shop."""
    if not nonce:
        return False
    now = utcnow()
    used = OAuthState.update(used_at=now).where(
        (OAuthState.nonce == nonce) & (OAuthState.shop_domain == shop_domain) & (OAuthState.purpose == purpose)
        & (OAuthState.used_at.is_null()) & (OAuthState.expires_at > now)
    ).execute()
    return used == 1
