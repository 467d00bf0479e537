"""A shop's install: its new tokens stored (created or reactivated) and its details read from Shopify."""

from __future__ import annotations

import logging

from ..db import database
from ..models import Shop, utcnow
from .graphql import fetch_shop_info
from .oauth import TokenSet

log = logging.getLogger(__name__)


def store_install(shop_domain: str, tokens: TokenSet) -> Shop:
    """Create or reactivate the shop with new tokens and load its details (sync/ resumes its parked work)."""
    now = utcnow()
    with database.atomic():
        Shop.insert(domain=shop_domain).on_conflict_ignore().execute()
        current = Shop.get(Shop.domain == shop_domain)
        reinstall = current.status != "active"
        changes = dict(
            access_token=tokens.access_token,
            access_token_expires_at=tokens.access_expires_at,
            refresh_token=tokens.refresh_token,
            refresh_token_expires_at=tokens.refresh_expires_at,
            scopes=tokens.scope,
            status="active",
            auth_error=None,
            uninstalled_at=None,
            # Every grant counts, even over a row we still think active (the uninstall webhook may not
            # have come yet): a later-arriving app/uninstalled from before it is then checked, not obeyed.
            installed_at=now,
            token_version=Shop.token_version + 1,
            updated_at=now,
        )
        Shop.update(**changes).where(Shop.id == current.id).execute()
    shop = Shop.get_by_id(current.id)
    info = fetch_shop_info(shop)
    Shop.update(name=info["name"], email=info["email"], currency=info["currency"], timezone=info["timezone"],
                country=info["country"], updated_at=utcnow()).where(Shop.id == shop.id).execute()
    log.info("shop %s installed (%s)", shop_domain, "reactivated" if reinstall else "tokens stored")
    return Shop.get_by_id(shop.id)
