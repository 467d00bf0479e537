"""Intuit's redirects: the OAuth callback and the Disconnect URL."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Blueprint, current_app, g, render_template, request

from ..quickbooks.connection import ConnectError, complete_connect, handle_intuit_disconnect

log = logging.getLogger(__name__)
bp = Blueprint("qbo_oauth", __name__)


def _app_url(shop_domain: str, **params) -> str:
    """Where the admin goes back to: the app inside Shopify admin (the page reads qbo / qbo_error)."""
    cfg = current_app.config
    if cfg.get("DEV_MODE"):
        from .dev import DOCUMENT_TOKEN_TTL_SECONDS, admin_host, mint_session_token

        token = mint_session_token(shop_domain, cfg["SHOPIFY_API_KEY"], cfg["SHOPIFY_API_SECRET"],
                                   DOCUMENT_TOKEN_TTL_SECONDS)
        query = {"embedded": "1", "shop": shop_domain, "host": admin_host(shop_domain), "id_token": token, **params}
        return f"{cfg['APP_URL']}/?{urlencode(query)}"
    store = shop_domain.split(".")[0]
    return f"https://admin.shopify.com/store/{store}/apps/{cfg['SHOPIFY_API_KEY']}?{urlencode(params)}"


@bp.get("/qbo/callback")
def callback():
    try:
        result = complete_connect(request.args.get("code"), request.args.get("state"), request.args.get("realmId"),
                                  error=request.args.get("error"))
    except ConnectError as exc:
        log.info("QuickBooks connect did not complete: %s", exc.code)
        shop = exc.shop.domain if exc.shop else None
        if shop:
            g.shop_domain = shop
        return render_template("qbo_return.html", ok=False, message=exc.message,
                               back_url=_app_url(shop, qbo_error=exc.code) if shop else None), 400
    g.shop_domain = result.shop.domain
    company = result.connection.company_name or "your QuickBooks company"
    return render_template("qbo_return.html", ok=True, message=f"Connected to {company}.",
                           back_url=_app_url(result.shop.domain, qbo="connected"))


@bp.get("/qbo/disconnected")
def disconnected():
    """Intuit sends the user here after they disconnect the app from inside QuickBooks."""
    count = handle_intuit_disconnect(request.args.get("realmId"))
    return render_template("qbo_return.html", ok=True, back_url=None,
                           message="EcomFlux is disconnected from QuickBooks." if count else
                           "EcomFlux was not connected to this QuickBooks company."), 200
