"""Auth-code install fallback: /auth sends the merchant to Shopify, /auth/callback stores the shop."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, redirect, request
from markupsafe import escape

from ..shopify.errors import OAuthError, ShopifyError, ShopifyUnavailable
from ..shopify.oauth import (admin_base, authorize_url, consume_state, install_via_code, issue_state,
                             normalize_shop, verify_query_hmac)

log = logging.getLogger(__name__)
bp = Blueprint("install", __name__)

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><main><h1>{title}</h1><p>{message}</p></main></body></html>"""


def error_page(message: str, status: int = 400, title: str = "Installation failed"):
    return PAGE.format(title=escape(title), message=escape(message)), status, {"Content-Type": "text/html; charset=utf-8"}


@bp.get("/auth")
def begin():
    shop = normalize_shop(request.args.get("shop"))
    if shop is None:
        return error_page("The shop parameter must be a myshopify.com domain, e.g. example.myshopify.com.")
    url = authorize_url(shop, issue_state(shop))
    if request.args.get("embedded") == "1":
        # Inside the admin iframe Shopify's consent screen cannot load: leave the frame first.
        target = json.dumps(url).replace("</", "<\\/")
        script = f"<script>window.open({target}, '_top');</script>"
        page = PAGE.format(title="Redirecting to Shopify", message="Continuing the installation...")
        return page.replace("</main>", "</main>" + script), 200, {"Content-Type": "text/html; charset=utf-8"}
    return redirect(url, code=302)


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
    if not consume_state(request.args.get("state"), shop):
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
