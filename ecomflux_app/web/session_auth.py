"""Session-token authentication for the embedded page's API: every call acts on the token's shop only."""

from __future__ import annotations

import functools
import logging

from flask import current_app, g, jsonify, request

from ..models import Shop
from ..shopify.session_token import InvalidSessionToken, verify_session_token

log = logging.getLogger(__name__)
RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"


def _token_from_request() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.args.get("id_token")


def authenticate_session():
    """Verify the request's session token; returns the SessionToken or raises InvalidSessionToken."""
    cfg = current_app.config
    session = verify_session_token(
        _token_from_request(), cfg["SHOPIFY_API_KEY"], (cfg["SHOPIFY_API_SECRET"], cfg.get("SHOPIFY_API_SECRET_OLD"))
    )
    g.session_token = session
    g.shop_domain = session.shop
    return session


def unauthorized(reason: str):
    resp = jsonify(error="invalid session token", detail=reason)
    resp.status_code = 401
    resp.headers[RETRY_HEADER] = "1"
    return resp


def require_session_token(view):
    """Decorator: 401 + retry header unless the bearer token is valid; sets g.shop (may be None)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            session = authenticate_session()
        except InvalidSessionToken as exc:
            log.info("session token rejected on %s: %s", request.path, exc)
            return unauthorized(str(exc))
        g.shop = Shop.get_or_none(Shop.domain == session.shop)
        return view(*args, **kwargs)

    return wrapper
