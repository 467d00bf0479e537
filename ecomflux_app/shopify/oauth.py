"""Shopify OAuth: token exchange (managed install), the auth-code grant, refresh requests, query HMAC."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Mapping
from urllib.parse import urlencode

import requests

from .. import runtime
from ..models import Shop, utcnow
from .errors import OAuthError, ShopifyUnavailable, ShopifyUnreachable

SHOP_DOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
HTTP_TIMEOUT = 15


def normalize_shop(shop: str | None) -> str | None:
    """The shop domain lower-cased if it is a valid myshopify.com domain, else None."""
    candidate = (shop or "").strip().lower()
    return candidate if SHOP_DOMAIN_RE.match(candidate) else None


def admin_base(shop_domain: str) -> str:
    """Where the shop's admin lives, from SHOPIFY_SHOP_BASE_URL (https://{shop} in production)."""
    return runtime.config()["SHOPIFY_SHOP_BASE_URL"].replace("{shop}", shop_domain)


# -- query HMAC (install redirects) ----------------------------------------------------------------
def query_hmac_message(params: Mapping[str, str | list]) -> str:
    """Shopify's signed message: params sorted by name, hmac/signature dropped, arrays as ["a", "b"]."""
    parts = []
    for key in sorted(k for k in params if k not in ("hmac", "signature")):
        value = params[key]
        if isinstance(value, (list, tuple)):
            if len(value) == 1 and not key.endswith("[]"):
                value = value[0]
            else:
                value = "[" + ", ".join(f'"{v}"' for v in value) + "]"
                key = key[:-2] if key.endswith("[]") else key
        parts.append(f"{key}={value}")
    return "&".join(parts)


def verify_query_hmac(params: Mapping[str, str | list], secrets_: Iterable[str | None]) -> bool:
    """True when the hex `hmac` parameter matches any configured secret, compared in constant time."""
    given = params.get("hmac")
    if isinstance(given, (list, tuple)):
        given = given[0] if given else None
    if not given:
        return False
    message = query_hmac_message(params).encode()
    ok = False
    for secret in secrets_:
        if secret:
            digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
            ok |= hmac.compare_digest(digest.encode(), str(given).strip().lower().encode())
    return ok


def authorize_url(shop_domain: str, state: str) -> str:
    cfg = runtime.config()
    query = urlencode({
        "client_id": cfg["SHOPIFY_API_KEY"],
        "scope": cfg["SHOPIFY_SCOPES"],
        "redirect_uri": f"{cfg['APP_URL']}/auth/callback",
        "state": state,
    })
    # No grant_options[]=per-user: we want an offline token for background work.
    return f"{admin_base(shop_domain)}/admin/oauth/authorize?{query}"


# -- token endpoint ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenSet:
    access_token: str
    scope: str | None
    access_expires_at: datetime | None
    refresh_token: str | None
    refresh_expires_at: datetime | None

    @classmethod
    def from_response(cls, body: dict) -> "TokenSet":
        now = utcnow()
        expires_in = body.get("expires_in")
        refresh_in = body.get("refresh_token_expires_in")
        return cls(
            access_token=body["access_token"],
            scope=body.get("scope"),
            access_expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
            refresh_token=body.get("refresh_token"),
            refresh_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in else None,
        )


def _token_request(shop_domain: str, data: dict) -> TokenSet:
    cfg = runtime.config()
    payload = {"client_id": cfg["SHOPIFY_API_KEY"], "client_secret": cfg["SHOPIFY_API_SECRET"], **data}
    url = f"{admin_base(shop_domain)}/admin/oauth/access_token"
    try:
        resp = requests.post(url, json=payload, headers={"Accept": "application/json"}, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise ShopifyUnreachable(f"Shopify token endpoint unreachable at {url} ({type(exc).__name__})", 30) from exc
    if resp.status_code >= 500 or resp.status_code == 429:
        raise ShopifyUnavailable(f"Shopify token endpoint answered {resp.status_code}", 30)
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code != 200 or "access_token" not in body:
        # Never log the body of a success; an error body carries no secret.
        raise OAuthError(str(body.get("error") or f"http_{resp.status_code}"),
                         str(body.get("error_description") or ""), resp.status_code)
    return TokenSet.from_response(body)


def exchange_session_token(shop_domain: str, session_token: str) -> TokenSet:
    """Token exchange: an App Bridge session token for an expiring offline access token + refresh token."""
    return _token_request(shop_domain, {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": session_token,
        "subject_token_type": ID_TOKEN_TYPE,
        "requested_token_type": OFFLINE_TOKEN_TYPE,
        "expiring": "1",
    })


def exchange_code(shop_domain: str, code: str) -> TokenSet:
    """Auth-code grant: the code from /auth/callback for an expiring offline token."""
    return _token_request(shop_domain, {"code": code, "expiring": "1"})


def refresh(shop_domain: str, refresh_token: str) -> TokenSet:
    """Refresh-token grant; Shopify rotates the refresh token, so the answer must replace both."""
    return _token_request(shop_domain, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def needs_install(shop: Shop | None) -> bool:
    """True when the embedded page must run token exchange before doing anything for this shop."""
    return shop is None or not shop.is_active
