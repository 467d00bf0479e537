"""Shopify session tokens (App Bridge id_token): HS256 JWTs signed with the app secret."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlparse

import jwt

LEEWAY_SECONDS = 10
_SHOP_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


class InvalidSessionToken(Exception):
    """The token is missing, expired, not ours, or names no valid shop."""


@dataclass(frozen=True)
class SessionToken:
    shop: str
    user_id: str | None
    claims: dict
    raw: str


def verify_session_token(token: str | None, api_key: str, secrets: Iterable[str | None]) -> SessionToken:
    """Check signature, audience, exp/nbf (10 s leeway) and iss/dest hosts; return the shop it names."""
    if not token:
        raise InvalidSessionToken("missing session token")
    last_error: Exception | None = None
    for secret in [s for s in secrets if s]:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                audience=api_key,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "nbf", "iss", "dest", "aud"]},
            )
            break
        except jwt.InvalidSignatureError as exc:
            last_error = exc
            continue
        except jwt.PyJWTError as exc:
            raise InvalidSessionToken(f"session token rejected: {exc}") from exc
    else:
        raise InvalidSessionToken(f"session token rejected: {last_error or 'no secret configured'}")
    dest_host = (urlparse(str(claims["dest"])).hostname or "").lower()
    iss_host = (urlparse(str(claims["iss"])).hostname or "").lower()
    if dest_host != iss_host:
        raise InvalidSessionToken("session token iss and dest name different shops")
    if not _SHOP_RE.match(dest_host):
        raise InvalidSessionToken("session token dest is not a myshopify.com shop")
    return SessionToken(shop=dest_host, user_id=str(claims.get("sub")) if claims.get("sub") else None,
                        claims=claims, raw=token)
