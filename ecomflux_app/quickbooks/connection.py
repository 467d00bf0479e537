"""Linking a shop to one QBO company: connect, replace after confirmation, disconnect, reconnect."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from .. import runtime
from ..db import database
from ..models import CustomerMap, ItemMap, OAuthState, QboConnection, Shop, utcnow
from ..oauth_state import consume_state, issue_state
from ..statuses import ConnectionStatus
from ..work_results import WaitingForReconnect
from . import oauth
from .client import QboClient
from .company_taxes import refresh_tax_setup
from .errors import QboError
from .tokens import fresh_access_token, mark_reconnect_required, store_tokens

log = logging.getLogger(__name__)

STATE_TTL = timedelta(minutes=15)
CHECK_SECONDS = 300  # how long a successful company check holds in one process
_checked: dict[int, tuple[str, float]] = {}  # connection id -> (realm checked, monotonic time)
PURPOSE_CONNECT = "qbo"
PURPOSE_REPLACE = "qbo-replace"  # the admin confirmed replacing the linked company
# The start link the embedded page opens at top level: single-use and short-lived, because whichever
# browser opens it first is the one the flow is bound to (its cookie), and a copy must be dead by then.
START_TTL = timedelta(minutes=5)
START_CONNECT, START_REPLACE = "qbo-start", "qbo-start-rpl"
START_PURPOSES = {START_CONNECT: PURPOSE_CONNECT, START_REPLACE: PURPOSE_REPLACE}


class ConnectError(Exception):
    """The callback cannot link the company; `code` is what the page shows (qbo_error=code)."""

    def __init__(self, code: str, message: str, shop: Shop | None = None, company: str | None = None):
        super().__init__(message)
        self.code, self.message, self.shop, self.company = code, message, shop, company


@dataclass
class Connected:
    shop: Shop
    connection: QboConnection


def start_connect(shop: Shop, confirm_replace: bool = False) -> str:
    """The app's own start link for this shop (single-use ticket, 5 minutes); Intuit must be reachable."""
    oauth.check_reachable()  # fail here, on the page, rather than on a bare top-level error page
    ticket = issue_state(shop.domain, purpose=START_REPLACE if confirm_replace else START_CONNECT, ttl=START_TTL)
    return f"{runtime.config()['APP_URL']}/qbo/start?{urlencode({'ticket': ticket})}"


def reconnect_url(shop_domain: str) -> str:
    """The Reconnect URL for one shop (the page and the console link to it; Intuit's portal holds the bare one)."""
    return f"{runtime.config()['APP_URL']}/qbo/reconnect?{urlencode({'shop': shop_domain})}"


def begin_authorization(ticket: str | None) -> tuple[Shop, str, str]:
    """Spend a start ticket: (shop, OAuth state nonce, Intuit's authorize URL). The caller binds the
    nonce to the browser (cookie) before sending it to Intuit; ConnectError when the ticket is no good."""
    row = OAuthState.get_or_none((OAuthState.nonce == (ticket or "")) & OAuthState.purpose.in_(list(START_PURPOSES)))
    shop = Shop.get_or_none(Shop.domain == row.shop_domain) if row else None
    if row is None or shop is None or not consume_state(ticket, row.shop_domain, row.purpose):
        raise ConnectError("invalid_ticket", "This QuickBooks connect link was already used or has expired. "
                                             "Start again from EcomFlux in the Shopify admin.")
    nonce = issue_state(shop.domain, purpose=START_PURPOSES[row.purpose], ttl=STATE_TTL)
    try:
        url = oauth.authorize_url(nonce)
    except Exception as exc:  # noqa: BLE001 - discovery unreachable: a clear page, never a 500
        log.warning("connect for %s could not reach Intuit: %s", shop.domain, type(exc).__name__)
        raise ConnectError("intuit_unreachable", "QuickBooks could not be reached to start the connection; "
                                                 "go back to EcomFlux and try again.", shop) from None
    return shop, nonce, url


def _state_owner(state: str | None) -> tuple[Shop, str]:
    row = OAuthState.get_or_none((OAuthState.nonce == (state or "")) & OAuthState.purpose.in_(
        (PURPOSE_CONNECT, PURPOSE_REPLACE)))
    shop = Shop.get_or_none(Shop.domain == row.shop_domain) if row else None
    if row is None or shop is None or not consume_state(state, row.shop_domain, row.purpose):
        raise ConnectError("invalid_state", "This QuickBooks sign-in link is not valid any more; start again.")
    return shop, row.purpose


def complete_connect(code: str | None, state: str | None, realm_id: str | None, error: str | None = None) -> Connected:
    """Handle Intuit's redirect: validate state, exchange the code, store tokens, read the company (the caller
    then resumes the shop's parked work: sync.sweeper.resume_parked)."""
    shop, purpose = _state_owner(state)
    if error:
        raise ConnectError(error, "QuickBooks was not connected: the connection was declined at Intuit.", shop)
    if not code or not realm_id:
        raise ConnectError("missing_code", "Intuit did not return an authorization code.", shop)
    try:
        tokens = oauth.exchange_code(code, realm_id)
    except (oauth.IntuitGrantError, oauth.IntuitUnavailable) as exc:
        raise ConnectError("token_exchange_failed", f"Intuit did not issue tokens ({exc}).", shop) from None

    existing = QboConnection.get_or_none(QboConnection.shop == shop.id)
    if existing and existing.realm_id and existing.realm_id != realm_id and existing.status != ConnectionStatus.NOT_CONNECTED \
            and purpose != PURPOSE_REPLACE:
        oauth.revoke(tokens.refresh_token)
        raise ConnectError("different_company",
                           f"This shop is linked to {existing.company_name or 'another company'}. Confirm that you "
                           "want to replace it, then connect again.", shop, existing.company_name)
    with database.atomic():
        conn = existing or QboConnection.create(shop=shop)
        if conn.realm_id != realm_id:
            # A different company: its customers and items are different ids.
            CustomerMap.delete().where(CustomerMap.shop == shop.id).execute()
            ItemMap.delete().where(ItemMap.shop == shop.id).execute()
        QboConnection.update(realm_id=realm_id, status=ConnectionStatus.CONNECTED, status_reason=None, connected_at=utcnow(),
                             updated_at=utcnow()).where(QboConnection.id == conn.id).execute()
        store_tokens(conn, tokens, new_grant=True)
    _read_company(QboConnection.get_by_id(conn.id))
    return Connected(shop, QboConnection.get_by_id(conn.id))


def _read_company(conn: QboConnection) -> None:
    """CompanyInfo and Preferences: name, country, currencies, for the page and the translator."""
    client = QboClient(conn)
    try:
        info = client.company_info()
        prefs = client.preferences()
    except (QboError, WaitingForReconnect) as exc:
        log.warning("company details for realm %s not read: %s", conn.realm_id, getattr(exc, "reason", exc))
        return
    _note_checked(conn)  # the CompanyInfo just read is the page's company check too
    currency = prefs.get("CurrencyPrefs", {})
    QboConnection.update(
        company_name=info.get("CompanyName"),
        company_country=(info.get("Country") or "")[:2] or None,
        multicurrency=bool(currency.get("MultiCurrencyEnabled")),
        home_currency=(currency.get("HomeCurrency") or {}).get("value"),
        updated_at=utcnow(),
    ).where(QboConnection.id == conn.id).execute()
    try:  # non-US companies: their tax codes, for the per-line TaxCodeRef
        refresh_tax_setup(QboConnection.get_by_id(conn.id), client)
    except QboError as exc:
        log.warning("tax codes for realm %s not read (read again before the first order): %s", conn.realm_id,
                    exc.describe())


def _note_checked(conn: QboConnection) -> None:
    """The company answered a CompanyInfo read just now: this process need not read it again for
    CHECK_SECONDS (the connect's own read serves as the page's first check)."""
    _checked[conn.id] = (conn.realm_id, time.monotonic())


def check_company(conn: QboConnection) -> str | None:
    """Whether QuickBooks still lets us reach the linked company, read at most every CHECK_SECONDS per
    process (one CompanyInfo GET); None when it does. An unknown or closed company (3100) or a refused
    refresh token marks the connection reconnect_required (the page shows Reconnect); a network
    failure is only reported, as a reconnect would not help."""
    seen = _checked.get(conn.id)
    now = time.monotonic()
    if conn.status != ConnectionStatus.CONNECTED or (seen and seen[0] == conn.realm_id and now - seen[1] < CHECK_SECONDS):
        return None
    if not (conn.access_token or conn.refresh_token):
        return None  # a row without tokens (never stored by a real connect): nothing to check with
    try:
        QboClient(conn).company_info()
    except WaitingForReconnect as exc:
        return exc.reason
    except QboError as exc:
        return f"QuickBooks cannot be reached right now: {exc.describe()}"
    except Exception as exc:  # noqa: BLE001 - the page's status must load whatever the check meets
        log.warning("company check for realm %s failed: %s", conn.realm_id, exc)
        return f"QuickBooks could not be checked right now ({type(exc).__name__})"
    _note_checked(conn)
    return None


def _forget(conn: QboConnection, reason: str) -> None:
    QboConnection.update(status=ConnectionStatus.NOT_CONNECTED, status_reason=reason, access_token=None, refresh_token=None,
                         access_token_expires_at=None, refresh_token_expires_at=None,
                         refresh_token_hard_expires_at=None,
                         token_version=QboConnection.token_version + 1, updated_at=utcnow()).where(
        QboConnection.id == conn.id).execute()


def disconnect(shop: Shop) -> None:
    """Revoke at Intuit (best effort) and forget the tokens; realm, company name and history stay."""
    conn = QboConnection.get_or_none(QboConnection.shop == shop.id)
    if conn is None:
        return
    token = conn.refresh_token or conn.access_token
    if token and not oauth.revoke(token):
        log.warning("revoke at Intuit failed for realm %s; tokens are dropped locally anyway", conn.realm_id)
    _forget(conn, "Disconnected from the Accounting page")


def handle_intuit_disconnect(realm_id: str | None) -> int:
    """Intuit's Disconnect URL: the user disconnected the app inside QuickBooks.

    The redirect carries no signature, so it is not trusted: a connection is forgotten only when
    Intuit confirms it (the refresh token no longer works). A forged link changes nothing.
    """
    count = 0
    for conn in QboConnection.select().where((QboConnection.realm_id == (realm_id or ""))
                                             & (QboConnection.status != ConnectionStatus.NOT_CONNECTED)):
        if conn.status == ConnectionStatus.CONNECTED:
            try:
                fresh_access_token(conn, rejected=conn.access_token or "")
                continue  # Intuit still honours our tokens: not disconnected
            except WaitingForReconnect:
                pass
            except QboError:
                continue  # Intuit unreachable: cannot confirm, change nothing
        _forget(conn, "Disconnected from QuickBooks")
        count += 1
    return count


__all__ = ["ConnectError", "begin_authorization", "complete_connect", "disconnect", "handle_intuit_disconnect",
           "mark_reconnect_required", "reconnect_url", "start_connect"]
