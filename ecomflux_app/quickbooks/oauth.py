"""Intuit OAuth 2 through intuit-oauth's AuthClient, pointed at INTUIT_DISCOVERY_URL."""

from __future__ import annotations

from dataclasses import dataclass

from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError

from .. import runtime

HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"


class IntuitGrantError(Exception):
    """Intuit refused the grant (invalid_grant and friends): the admin must reconnect."""


class IntuitUnavailable(Exception):
    """Intuit's token endpoint could not be reached or answered 5xx: try again later."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int | None
    hard_expires_in: int | None


def auth_client() -> AuthClient:
    """A fresh AuthClient (it reads the discovery document on construction)."""
    cfg = runtime.config()
    client = AuthClient(cfg["INTUIT_CLIENT_ID"], cfg["INTUIT_CLIENT_SECRET"], f"{cfg['APP_URL']}/qbo/callback",
                        cfg["INTUIT_DISCOVERY_URL"])
    # AuthClient is a requests.Session: this asks Intuit for the 5-year hard expiry on every token call.
    client.headers[HARD_EXPIRY_HEADER] = "true"
    return client


def check_reachable() -> None:
    """Raise when Intuit's discovery document cannot be read (AuthClient reads it on construction)."""
    auth_client()


def authorize_url(state: str) -> str:
    return auth_client().get_authorization_url([Scopes.ACCOUNTING], state_token=state)


def _tokens(client: AuthClient) -> TokenSet:
    def num(name):
        value = getattr(client, name, None)
        return int(value) if value not in (None, "") else None

    return TokenSet(client.access_token, client.refresh_token, num("expires_in") or 3600,
                    num("x_refresh_token_expires_in"), num("x_refresh_token_hard_expires_in"))


def _call(fn, *args) -> None:
    try:
        fn(*args)
    except AuthClientError as exc:
        body = exc.content.decode(errors="replace") if isinstance(exc.content, bytes) else str(exc.content)
        if exc.status_code >= 500:
            raise IntuitUnavailable(f"Intuit answered {exc.status_code}") from None
        # Never include the body verbatim in logs: it may echo a token.
        reason = "invalid_grant" if "invalid_grant" in body else f"HTTP {exc.status_code}"
        raise IntuitGrantError(reason) from None
    except OSError as exc:  # connection refused, timeouts (requests' errors are OSErrors)
        raise IntuitUnavailable(f"Intuit unreachable: {type(exc).__name__}") from None


def exchange_code(code: str, realm_id: str) -> TokenSet:
    client = auth_client()
    _call(client.get_bearer_token, code, realm_id)
    return _tokens(client)


def refresh(refresh_token: str) -> TokenSet:
    if not refresh_token:  # nothing Intuit could take: the admin must connect again (intuitlib raises ValueError)
        raise IntuitGrantError("no refresh token stored")
    client = auth_client()
    _call(client.refresh, refresh_token)
    return _tokens(client)


def revoke(token: str) -> bool:
    """Revoke at Intuit; False (not raised) when Intuit cannot be reached or refuses."""
    try:
        _call(auth_client().revoke, token)
        return True
    except (IntuitGrantError, IntuitUnavailable):
        return False
