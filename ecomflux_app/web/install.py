"""Auth-code install fallback: /auth sends the merchant to Shopify, /auth/callback stores the shop."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from flask import Blueprint, current_app, make_response, redirect, request
from markupsafe import escape

from ..shopify.errors import OAuthError, ShopifyError, ShopifyUnavailable
from ..oauth_state import STATE_TTL, consume_state, issue_state
from ..shopify.oauth import (admin_base, authorize_url, normalize_shop,
                             verify_query_hmac)
from ..sync.installs import install_via_code
from .state_cookie import StateCookie

log = logging.getLogger(__name__)
bp = Blueprint("install", __name__)

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><main><h1>{title}</h1><p>{message}</p></main></body></html>"""

# The state nonce also rides in this browser's cookie, so a callback URL only completes in the
# browser that started the flow (no login CSRF); the server-side row still makes it single-use.
STATE_COOKIE = "ecomflux_shopify_oauth"
STATE_COOKIE_PATH = "/auth"
STATE_COOKIE_MAX_AGE = int(STATE_TTL.total_seconds())
STATE_COOKIE_SALT = "ecomflux.shopify-oauth-state"


def error_page(message: str, status: int = 400, title: str = "Installation failed"):
    return PAGE.format(title=escape(title), message=escape(message)), status, {"Content-Type": "text/html; charset=utf-8"}


def _state_cookie() -> StateCookie:
    """Built per use from the module's settings (tests shorten STATE_COOKIE_MAX_AGE)."""
    return StateCookie(STATE_COOKIE, STATE_COOKIE_PATH, STATE_COOKIE_SALT, STATE_COOKIE_MAX_AGE)


@bp.get("/auth")
def begin():
    shop = normalize_shop(request.args.get("shop"))
    if shop is None:
        return error_page("The shop parameter must be a myshopify.com domain, e.g. example.myshopify.com.")
    if request.args.get("embedded") == "1":
        # Inside the admin iframe Shopify's consent screen cannot load, and a cookie set in a cross-site
        # frame is not kept: restart /auth in the top window, which issues the state and its cookie.
        top = f"{current_app.config['APP_URL']}/auth?{urlencode({'shop': shop})}"
        target = json.dumps(top).replace("</", "<\\/")
        script = f"<script>window.open({target}, '_top');</script>"
        page = PAGE.format(title="Redirecting to Shopify", message="Continuing the installation...")
        return page.replace("</main>", "</main>" + script), 200, {"Content-Type": "text/html; charset=utf-8"}
    nonce = issue_state(shop)
    response = redirect(authorize_url(shop, nonce), code=302)
    _state_cookie().set(response, nonce)
    return response


@bp.get("/auth/callback")
def callback():
    cfg = current_app.config
    shop = normalize_shop(request.args.get("shop"))
    if shop is None:
        return error_page("The shop parameter must be a myshopify.com domain.")
    params = request.args.to_dict(flat=False)
    if not verify_query_hmac(params, (cfg["SHOPIFY_API_SECRET"], cfg.get("SHOPIFY_API_SECRET_OLD"))):
        log.warning("install callback rejected: bad hmac (shop=%s remote=%s)", shop, request.remote_addr)
        return error_page("The request signature is invalid. Start the installation again from Shopify.")
    state = request.args.get("state") or ""
    cookie = _state_cookie()
    bound, problem = cookie.check(state)
    if not bound:
        log.warning("install callback rejected: state cookie %s (shop=%s remote=%s)",
                    problem, shop, request.remote_addr)
        response = make_response(error_page(
            "This installation was started in another browser, or its link has expired. "
            "Start the installation again from Shopify in this browser.", 403, title="Installation refused"))
        if problem in ("expired", "invalid"):
            cookie.clear(response)  # a valid cookie of another flow stays: it may still finish
        return response
    # The cookie has done its job whatever happens next; the nonce stays single-use server-side.
    response = make_response(_complete_install(shop, state))
    cookie.clear(response)
    return response


def _complete_install(shop: str, state: str):
    """The callback after its signature and browser checks: single-use state, code exchange, shop stored."""
    cfg = current_app.config
    if not consume_state(state, shop):
        return error_page("This installation link has expired or was already used. Start the installation again.")
    code = request.args.get("code")
    if not code:
        return error_page("Shopify did not send an authorization code.")
    try:
        install_via_code(shop, code)
    except OAuthError as exc:
        log.warning("install of %s: code exchange refused: %s", shop, exc.error)
        return error_page("Shopify refused the authorization code. Start the installation again.")
    except ShopifyUnavailable:
        return error_page("Shopify could not be reached. Try again in a minute.", 502)
    except ShopifyError as exc:
        log.warning("install of %s failed: %s", shop, exc)
        return error_page("Shopify answered unexpectedly during installation. Try again in a minute.", 502)
    # Back into the Shopify admin, which loads the embedded app page for this shop.
    return redirect(f"{admin_base(shop)}/admin/apps/{cfg['SHOPIFY_API_KEY']}", code=302)
