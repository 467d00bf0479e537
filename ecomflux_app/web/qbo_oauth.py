"""Intuit's redirects and the flow's own start: the start link, the OAuth callback, the Reconnect and Disconnect URLs."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Blueprint, current_app, g, make_response, redirect, render_template, request

from ..quickbooks.connection import (STATE_TTL, ConnectError, begin_authorization, complete_connect,
                                     handle_intuit_disconnect)
from ..shopify.oauth import normalize_shop
from ..sync.sweeper import resume_parked
from .state_cookie import StateCookie
from . import dev

log = logging.getLogger(__name__)
bp = Blueprint("qbo_oauth", __name__)

# The Shopify install's mechanism: the OAuth state also rides in a first-party cookie set by the
# top-level start route, so Intuit's callback only completes in the browser that began the flow.
STATE_COOKIE = StateCookie("ecomflux_qbo_oauth", "/qbo", "ecomflux.qbo-oauth-state", int(STATE_TTL.total_seconds()))


def _app_url(shop_domain: str, **params) -> str:
    """Where the admin goes back to: the app inside Shopify admin (the page reads qbo / qbo_error)."""
    cfg = current_app.config
    if cfg.get("DEV_MODE"):
        token = dev.mint_session_token(shop_domain, cfg["SHOPIFY_API_KEY"], cfg["SHOPIFY_API_SECRET"],
                                       dev.DOCUMENT_TOKEN_TTL_SECONDS)
        query = {"embedded": "1", "shop": shop_domain, "host": dev.admin_host(shop_domain), "id_token": token, **params}
        return f"{cfg['APP_URL']}/?{urlencode(query)}"
    store = shop_domain.split(".")[0]
    return f"https://admin.shopify.com/store/{store}/apps/{cfg['SHOPIFY_API_KEY']}?{urlencode(params)}"


@bp.get("/qbo/start")
def start():
    """The embedded page's connect link, opened at top level: bind the flow to this browser, then go to Intuit."""
    try:
        shop, nonce, url = begin_authorization(request.args.get("ticket"))
    except ConnectError as exc:
        log.info("QuickBooks connect could not start: %s", exc.code)
        return render_template("qbo_return.html", ok=False, message=exc.message, back_url=None), 400
    g.shop_domain = shop.domain
    response = redirect(url, code=302)
    STATE_COOKIE.set(response, nonce)
    return response


@bp.get("/qbo/callback")
def callback():
    bound, problem = STATE_COOKIE.check(request.args.get("state"))
    if not bound:
        # Nothing is consumed or connected: the browser that began this flow can still finish it.
        log.warning("QuickBooks callback refused: state cookie %s (remote=%s)", problem, request.remote_addr)
        response = make_response(render_template(
            "qbo_return.html", ok=False, back_url=None,
            message="This QuickBooks connection was started in another browser, or its link has expired. "
                    "Nothing was connected. Start again from EcomFlux in the Shopify admin, in this browser."), 403)
        if problem in ("expired", "invalid"):
            STATE_COOKIE.clear(response)  # a valid cookie of another flow stays: it may still finish
        return response
    response = make_response(_complete())
    STATE_COOKIE.clear(response)  # spent whatever happened: the state is single-use server-side too
    return response


def _complete():
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
    resume_parked(result.shop.domain)  # orders that waited for the company post by themselves now
    g.shop_domain = result.shop.domain
    company = result.connection.company_name or "your QuickBooks company"
    return render_template("qbo_return.html", ok=True, message=f"Connected to {company}.",
                           back_url=_app_url(result.shop.domain, qbo="connected"))


@bp.get("/qbo/reconnect")
def reconnect():
    """Intuit's Reconnect URL: into EcomFlux for the merchant's shop, where the page starts the connect flow.

    Shopify's admin signs the merchant in for that shop, so nothing starts for someone who cannot open
    it. Intuit's link names no shop (and a realmId is never turned into one: that would tell anyone
    which shop a company belongs to), so without one the page asks for the store's address.
    """
    given = (request.args.get("shop") or "").strip().lower()
    shop = normalize_shop(given if "." in given or not given else f"{given}.myshopify.com")
    if shop is not None:
        g.shop_domain = shop
        return redirect(_app_url(shop, qbo="reconnect"), code=302)
    return render_template("qbo_reconnect.html", invalid=bool(given), given=given), 400 if given else 200


@bp.get("/qbo/disconnected")
def disconnected():
    """Intuit sends the user here after they disconnect the app from inside QuickBooks."""
    count = handle_intuit_disconnect(request.args.get("realmId"))
    return render_template("qbo_return.html", ok=True, back_url=None,
                           message="EcomFlux is disconnected from QuickBooks." if count else
                           "EcomFlux was not connected to this QuickBooks company."), 200
