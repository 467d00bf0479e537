"""Wiring a shop to the local sandboxes without a browser: used by tests, benchmarks and `ecomflux dev`."""

from __future__ import annotations

from ..models import QboConnection, Shop, utcnow
from ..quickbooks.oauth import TokenSet
from ..quickbooks.tokens import store_tokens
from ..shopify.session_token import verify_session_token
from ..sync.installs import install_via_token_exchange


def install_sandbox_shop(config: dict, shopify_state, domain: str, **info) -> Shop:
    """Install a shop through the real token-exchange path against the Shopify sandbox."""
    shopify_state.ensure_shop(domain, **info)
    token = shopify_state.session_token(domain)
    session = verify_session_token(token, config["SHOPIFY_API_KEY"], [config["SHOPIFY_API_SECRET"]])
    return install_via_token_exchange(session)


def connect_to_sandbox_company(shop: Shop, intuit_state, realm: str, company_name: str = "Sandbox Company") -> None:
    """Link a shop to a sandbox company with real tokens issued by the Intuit sandbox."""
    issued = intuit_state.issue_tokens(realm, hard_expiry=True, consent=True)  # as the app's code exchange asks
    company = intuit_state.companies[realm]
    conn, _ = QboConnection.get_or_create(shop=shop)
    QboConnection.update(realm_id=realm, status="connected", status_reason=None, company_name=company_name,
                         company_country=company.country, home_currency=company.home_currency,
                         multicurrency=company.multicurrency, connected_at=utcnow()).where(
        QboConnection.id == conn.id).execute()
    store_tokens(conn, TokenSet(issued["access_token"], issued["refresh_token"], int(issued["expires_in"]),
                                issued.get("x_refresh_token_expires_in"), issued.get("x_refresh_token_hard_expires_in")),
                 new_grant=True)
