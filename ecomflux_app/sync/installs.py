"""Installing a shop (token exchange or auth-code grant), then resuming the work parked while it was away."""

from __future__ import annotations

import logging

from ..models import Shop
from ..shopify.install import store_install
from ..shopify.oauth import exchange_code, exchange_session_token, needs_install
from ..shopify.session_token import SessionToken
from .sweeper import resume_parked

log = logging.getLogger(__name__)


def install_via_token_exchange(session: SessionToken) -> Shop:
    """Embedded managed install: exchange the verified session token and store the shop."""
    return _resumed(store_install(session.shop, exchange_session_token(session.shop, session.raw)))


def install_via_code(shop_domain: str, code: str) -> Shop:
    """Auth-code grant fallback: exchange the callback code and store the shop."""
    return _resumed(store_install(shop_domain, exchange_code(shop_domain, code)))


def ensure_installed(session: SessionToken) -> Shop:
    """The shop named by a verified session token, installed (or reinstalled) by token exchange if needed."""
    shop = Shop.get_or_none(Shop.domain == session.shop)
    if not needs_install(shop):
        return shop
    return install_via_token_exchange(session)


def _resumed(shop: Shop) -> Shop:
    resumed = resume_parked(shop.domain)
    log.info("shop %s: %d parked deliveries resumed", shop.domain, resumed)
    return shop
