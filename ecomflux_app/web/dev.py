"""Dev-only shims (registered only when DEV_MODE): open the embedded page in a plain browser tab."""

from __future__ import annotations

import base64
import time
import uuid
from urllib.parse import urlencode

import jwt
from flask import Blueprint, abort, current_app, jsonify, redirect, request

from ..shopify.oauth import normalize_shop

bp = Blueprint("dev", __name__, url_prefix="/dev")

DEFAULT_DEV_SHOP = "demo-shop.myshopify.com"
# Shopify's tokens live one minute; the page fetches fresh ones from /dev/session-token like App Bridge would.
TOKEN_TTL_SECONDS = 60
# The document-load token lives longer so reloading the dev tab keeps working.
DOCUMENT_TOKEN_TTL_SECONDS = 3600


def mint_session_token(shop: str, api_key: str, secret: str, ttl: int = TOKEN_TTL_SECONDS, user_id: str = "1") -> str:
    """A session token signed the way Shopify signs App Bridge id_tokens (HS256 with the app secret)."""
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": api_key,
        "sub": user_id,
        "exp": now + ttl,
        "nbf": now,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def _dev_shop() -> str:
    if not current_app.config.get("DEV_MODE"):
        abort(404)
    requested = request.args.get("shop")
    shop = normalize_shop(requested) if requested else (current_app.config.get("DEV_SHOP") or DEFAULT_DEV_SHOP)
    if shop is None:
        abort(400, "shop must be a myshopify.com domain")
    return shop


def admin_host(shop: str) -> str:
    """The `host` parameter Shopify passes: base64 of the admin URL, unpadded."""
    return base64.b64encode(f"admin.shopify.com/store/{shop.split('.')[0]}".encode()).decode().rstrip("=")


@bp.get("")
def start():
    """Mint a token for the demo shop and open the Accounting page as the Shopify admin would."""
    shop = _dev_shop()
    cfg = current_app.config
    token = mint_session_token(shop, cfg["SHOPIFY_API_KEY"], cfg["SHOPIFY_API_SECRET"], DOCUMENT_TOKEN_TTL_SECONDS)
    query = urlencode({"embedded": "1", "shop": shop, "host": admin_host(shop), "id_token": token})
    return redirect(f"/?{query}", code=302)


@bp.get("/session-token")
def session_token():
    """A fresh one-minute token for the demo shop: what shopify.idToken() returns inside the admin."""
    shop = _dev_shop()
    cfg = current_app.config
    token = mint_session_token(shop, cfg["SHOPIFY_API_KEY"], cfg["SHOPIFY_API_SECRET"])
    resp = jsonify(session_token=token, shop=shop, expires_in=TOKEN_TTL_SECONDS)
    resp.headers["Cache-Control"] = "no-store"
    return resp
