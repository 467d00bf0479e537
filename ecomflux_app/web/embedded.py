"""The embedded Accounting page (GET /): verifies the id_token, installs on first load, renders the shell."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, render_template, request, url_for

from ..models import QboConnection, Shop
from ..translate.document_kinds import SALE, entities, kind_of
from ..shopify.errors import OAuthError, ShopifyError, ShopifyUnavailable
from ..shopify.oauth import needs_install, normalize_shop
from ..shopify.session_token import InvalidSessionToken
from ..sync.installs import install_via_token_exchange
from .session_auth import RETRY_HEADER, authenticate_session

log = logging.getLogger(__name__)
bp = Blueprint("embedded", __name__)

APP_BRIDGE_URL = "https://cdn.shopify.com/shopifycloud/app-bridge.js"
POLARIS_URL = "https://cdn.shopify.com/shopifycloud/polaris.js"


def _page_context(**extra) -> dict:
    cfg = current_app.config
    dev = bool(cfg.get("DEV_MODE"))
    return {
        "api_key": cfg["SHOPIFY_API_KEY"],
        "app_bridge_url": APP_BRIDGE_URL,
        "polaris_url": POLARIS_URL,
        "dev_mode": dev,
        "dev_url": url_for("dev.start") if dev else None,
        "dev_token_url": url_for("dev.session_token") if dev else None,
        **extra,
    }


def _tax_codes_apply(shop: Shop) -> bool:
    """Whether the Tax codes card (and its script) applies: a QuickBooks company outside the US."""
    conn = QboConnection.get_or_none(QboConnection.shop == shop.id)
    return conn is not None and (conn.company_country or "US") != "US"


def _message_page(status: int, title: str, message: str, *, retry_header: bool = False):
    body = render_template("embedded/message.html", title=title, message=message, **_page_context())
    headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    if retry_header:
        headers[RETRY_HEADER] = "1"
    return body, status, headers


@bp.get("/")
def index():
    shop_param = normalize_shop(request.args.get("shop"))
    if not request.args.get("id_token"):
        if shop_param is None:
            return _message_page(400 if request.args.get("shop") else 200, "EcomFlux",
                                 "Open EcomFlux from the Apps section of your Shopify admin.")
        # Bounce page: App Bridge (when it loads) fetches a session token and reloads with it.
        body = render_template("embedded/bounce.html", shop=shop_param, **_page_context())
        return body, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    try:
        session = authenticate_session()
    except InvalidSessionToken as exc:
        log.info("embedded page: session token rejected: %s", exc)
        return _message_page(401, "Session expired",
                             "This page's session is no longer valid. Reopen EcomFlux from your Shopify admin.",
                             retry_header=True)
    if shop_param is not None and shop_param != session.shop:
        # A token for one shop never opens another shop's page.
        log.warning("embedded page: token for %s used with shop=%s", session.shop, shop_param)
        g.shop_domain = session.shop
        return _message_page(401, "Wrong shop", "This session belongs to a different shop.", retry_header=True)
    shop = Shop.get_or_none(Shop.domain == session.shop)
    if needs_install(shop):
        try:
            shop = install_via_token_exchange(session)
        except OAuthError as exc:
            log.warning("embedded install of %s refused: %s", session.shop, exc)
            return _message_page(401, "Installation needs a fresh session",
                                 "Shopify did not accept this session for installation. Reopen the app from your "
                                 "Shopify admin.", retry_header=True)
        except (ShopifyUnavailable, ShopifyError) as exc:
            log.warning("embedded install of %s failed: %s", session.shop, exc)
            return _message_page(502, "Shopify could not be reached",
                                 "EcomFlux could not finish installing because Shopify did not answer. Try again "
                                 "in a minute.")
    body = render_template(
        "embedded/index.html",
        shop=shop.domain,
        shop_name=shop.name or shop.domain,
        host=request.args.get("host", ""),
        tax_codes_card=_tax_codes_apply(shop),
        sale_kinds=[kind_of(entity) for entity in entities(SALE)],  # the document type choices
        **_page_context(),
    )
    # The id_token is in the URL: keep the page out of caches and referrers.
    return body, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                       "Referrer-Policy": "no-referrer"}
