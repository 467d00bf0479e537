"""What the embedded API asks of the QuickBooks and sync layers: connect, disconnect, company lists, re-runs."""

from __future__ import annotations

import json
import logging

import redis

from .. import runtime
from ..models import QboConnection, Shop, WebhookDelivery
from ..quickbooks import notifications
from ..quickbooks import connection
from ..quickbooks.client import client_for_shop
from ..quickbooks.expiry import authorization_status
from ..sync.references import remember_default_accounts
from ..sync.replay import replay_delivery

log = logging.getLogger(__name__)

OPTIONS_TTL_SECONDS = 60  # long enough for one settings session, short enough to see new accounts
# With QuickBooks change notifications on, a change to a list is notified (and bumps the cache key), so the
# lists are kept as long as the directories' catch-up: each page load is not five metered reads.
OPTIONS_NOTIFIED_TTL_SECONDS = 6 * 3600
MAX_LIST = 1000  # QBO's MAXRESULTS ceiling
DEPOSIT_TYPES = {"Bank", "Other Current Asset"}
INCOME_TYPES = {"Income", "Other Income"}
DISCOUNT_TYPES = {"Income", "Other Income", "Expense", "Other Expense", "Cost of Goods Sold"}


class QboUnavailable(Exception):
    """QuickBooks could not do what the page asked (not reachable, or refused)."""


def start_connect(shop: Shop, replace: bool = False) -> str:
    """The Intuit authorize URL for this shop (state bound to the shop, issued by quickbooks.connection).

    replace=True is the admin's confirmation that a different company may replace the linked one.
    """
    try:
        return connection.start_connect(shop, confirm_replace=replace)
    except Exception as exc:  # noqa: BLE001 - surfaced to the admin as a clear message
        log.warning("connect for %s could not start: %s", shop.domain, exc)
        raise QboUnavailable("QuickBooks could not be reached to start the connection; try again") from exc


def authorization(shop: Shop, conn: QboConnection | None) -> dict | None:
    """When the company's authorization ends (each refresh token's own expiry), a warning ahead of it,
    and the Reconnect URL for this shop; None when not connected or nothing is known."""
    return authorization_status(conn, connection.reconnect_url(shop.domain))


def disconnect(shop: Shop) -> None:
    try:
        connection.disconnect(shop)
    except Exception as exc:  # noqa: BLE001
        log.warning("disconnect for %s failed: %s", shop.domain, exc)
        raise QboUnavailable("QuickBooks could not be disconnected; try again") from exc


def check_company(conn: QboConnection) -> str | None:
    """Whether the linked company still answers (see quickbooks.connection.check_company)."""
    return connection.check_company(conn)


def _notified() -> bool:
    return bool(runtime.config().get("INTUIT_WEBHOOK_VERIFIER_TOKEN"))


def _cache_key(shop: Shop, realm_id: str | None, generation: int = 0) -> str:
    return f"ecomflux:qbo-options:{shop.domain}:{realm_id or '-'}" + (f":{generation}" if generation else "")


def forget_options(shop: Shop) -> None:
    try:
        conn = runtime.redis()
        for key in conn.scan_iter(match=f"ecomflux:qbo-options:{shop.domain}:*", count=100):
            conn.delete(key)
    except redis.RedisError:
        pass


def _rows(result) -> list[dict]:
    """Entity dicts from a client query answer (a list, or QBO's {"QueryResponse": {...}} body)."""
    if isinstance(result, list):
        return [r if isinstance(r, dict) else getattr(r, "to_dict", lambda: {})() for r in result]
    if isinstance(result, dict):
        body = result.get("QueryResponse", result)
        for value in body.values():
            if isinstance(value, list):
                return value
    return []


def _fetch_lists(shop: Shop) -> dict:
    try:
        client = client_for_shop(shop)
        accounts = _rows(client.query(f"SELECT * FROM Account WHERE Active = true MAXRESULTS {MAX_LIST}"))
        items = _rows(client.query(f"SELECT * FROM Item WHERE Active = true MAXRESULTS {MAX_LIST}"))
        classes = _rows(client.query(f"SELECT * FROM Class WHERE Active = true MAXRESULTS {MAX_LIST}"))
        departments = _rows(client.query(f"SELECT * FROM Department WHERE Active = true MAXRESULTS {MAX_LIST}"))
        customers = _rows(client.query(f"SELECT * FROM Customer WHERE Active = true MAXRESULTS {MAX_LIST}"))
    except Exception as exc:  # noqa: BLE001 - any QBO trouble: the page shows it and keeps working
        log.info("company lists for %s not readable: %s", shop.domain, exc)
        raise QboUnavailable(str(exc) or type(exc).__name__) from exc
    if len(accounts) < MAX_LIST:  # the whole chart: orders need not read it again for their defaults

        remember_default_accounts(shop, accounts)

    def opt(row: dict, name_key: str = "Name", **extra) -> dict:
        out = {"id": str(row.get("Id")), "name": row.get("FullyQualifiedName") or row.get(name_key) or ""}
        out.update({k: row.get(v) for k, v in extra.items()})
        return out

    account_opts = sorted((opt(a, type="AccountType", subtype="AccountSubType") for a in accounts),
                          key=lambda o: o["name"].lower())
    item_opts = sorted((opt(i, type="Type") for i in items), key=lambda o: o["name"].lower())
    return {
        "accounts": account_opts,
        "deposit_accounts": [a for a in account_opts if a["type"] in DEPOSIT_TYPES],
        "income_accounts": [a for a in account_opts if a["type"] in INCOME_TYPES],
        "discount_accounts": [a for a in account_opts if a["type"] in DISCOUNT_TYPES],
        "items": item_opts,
        "classes": sorted((opt(c) for c in classes), key=lambda o: o["name"].lower()),
        "departments": sorted((opt(d) for d in departments), key=lambda o: o["name"].lower()),
        "customers": sorted((opt(c, "DisplayName") for c in customers), key=lambda o: o["name"].lower()),
    }


def company_options(shop: Shop, conn: QboConnection, fresh: bool = False) -> dict:
    """Accounts, items, classes, departments and customers of the connected company, cached briefly."""
    notified = _notified()
    try:
        cache = runtime.redis()
        key = _cache_key(shop, conn.realm_id, notifications.lists_generation(cache, conn.realm_id) if notified else 0)
        cached = None if fresh else cache.get(key)
    except redis.RedisError:
        cache, cached, key = None, None, ""
    if cached:
        return json.loads(cached)
    data = _fetch_lists(shop)
    if cache is not None:
        try:
            cache.set(key, json.dumps(data), ex=OPTIONS_NOTIFIED_TTL_SECONDS if notified else OPTIONS_TTL_SECONDS)
        except redis.RedisError:
            pass
    return data


def rerun_delivery(delivery: WebhookDelivery, actor: str) -> str:
    """Re-run a delivery through the exactly-once path (the ledger and requestid stop a second document)."""
    return replay_delivery(delivery.id, actor=actor)
