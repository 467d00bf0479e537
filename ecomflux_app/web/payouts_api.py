"""Payouts API for the embedded page: the Payouts card, "Sync payouts", and creating the clearing/fee accounts."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from flask import Blueprint, request

from ..models import Payout, ShopSettings, utcnow
from ..statuses import ConnectionStatus
from ..translate.payout_accounts import ACCOUNT_TYPES
from ..translate.settings import SyncSettings
from ..sync.shop_settings import saved_values
from .api import _connection, _error, _iso, _json, _require_installed
from .session_auth import require_session_token
from . import qbo_company
from ..quickbooks.client import QboClient
from ..quickbooks.errors import QboError
from ..sync.payouts import clearing_balance, payout_view, start_payout_sync
from ..translate.query import quote
from ..translate.requestid import request_id
from ..work_results import WaitingForReconnect

log = logging.getLogger(__name__)
bp = Blueprint("payouts_api", __name__, url_prefix="/api")

PAGE = 50
CLEARING_NAME = "Shopify Payments clearing"
FEES_NAME = "Shopify Payments fees"


def _connected():
    shop, problem = _require_installed()
    if problem is not None:
        return None, problem
    conn = _connection(shop)
    if conn is None or conn.status != ConnectionStatus.CONNECTED:
        return None, _error(409, "connect QuickBooks first")
    return shop, None


@bp.get("/payouts")
@require_session_token
def list_payouts():
    shop, problem = _require_installed()
    if problem is not None:
        return problem
    settings = SyncSettings.from_values(saved_values(shop))
    rows = list(Payout.select().where(Payout.shop == shop.id).order_by(Payout.issued_at.desc(), Payout.id.desc())
                .limit(PAGE))
    latest = Payout.select().where(Payout.shop == shop.id).order_by(Payout.read_at.desc()).first()
    return _json({
        "configured": settings.payouts_enabled,
        "settings": {name: getattr(settings, name) for name in (
            "payout_clearing_account_id", "payout_bank_account_id", "payout_fee_account_id",
            "payout_chargeback_account_id", "payout_adjustment_account_id")}
        | {"payouts_start_date": settings.payouts_start_date.isoformat() if settings.payouts_start_date else None},
        "payouts": [payout_view(shop, row) for row in rows],
        "clearing": clearing_balance(shop, settings),
        "last_read_at": _iso(latest.read_at) if latest else None,
    })


@bp.post("/payouts/sync")
@require_session_token
def sync_payouts_route():
    shop, problem = _connected()
    if problem is not None:
        return problem
    settings = SyncSettings.from_values(saved_values(shop))
    if not settings.payouts_enabled:
        return _error(409, "choose the clearing, bank and fee accounts for payouts first")
    body = request.get_json(silent=True) or {}
    since = None
    if isinstance(body, dict) and body.get("since"):
        try:
            since = date.fromisoformat(str(body["since"]))
        except ValueError:
            return _error(400, "since must be a date (YYYY-MM-DD)", field="since")
        if since > date.today() or since < date.today() - timedelta(days=5 * 366):
            return _error(400, "since must be a date within the last 5 years", field="since")
    job = start_payout_sync(shop, since, history=since is not None)
    log.info("payout sync queued for %s (since %s)", shop.domain, since)
    return _json({"queued": True, "job": job, "since": since.isoformat() if since else None}, 202)


@bp.post("/payouts/accounts")
@require_session_token
def create_payout_accounts():
    """Create (or find by name) the "Shopify Payments clearing" and "Shopify Payments fees" accounts, and use them."""
    shop, problem = _connected()
    if problem is not None:
        return problem
    body = request.get_json(silent=True) or {}
    wanted = [w for w in (body.get("create") if isinstance(body, dict) else None) or ["clearing", "fee"]
              if w in ("clearing", "fee")]
    if not wanted:
        return _error(400, "create must list clearing and/or fee")
    client = QboClient(_connection(shop))
    specs = {"clearing": ("payout_clearing_account_id", CLEARING_NAME, "Other Current Asset", "OtherCurrentAssets"),
             "fee": ("payout_fee_account_id", FEES_NAME, "Expense", "OtherMiscellaneousServiceCost")}
    chosen = {}
    try:
        for what in wanted:
            setting, name, kind, subtype = specs[what]
            found = client.query(f"SELECT * FROM Account WHERE Name = {quote(name)}")
            if found:
                account = found[0]
                if account.get("AccountType") not in ACCOUNT_TYPES[setting][0]:
                    return _error(409, f"QuickBooks already has an account named {name} of type "
                                       f"{account.get('AccountType')}; choose another account", field=setting)
            else:
                account = client.create("Account", {"Name": name, "AccountType": kind, "AccountSubType": subtype},
                                        request_id(shop.domain, f"account:{name}", "Account"))
            chosen[setting] = str(account["Id"])
    except (QboError, WaitingForReconnect) as exc:
        return _error(502, f"QuickBooks refused: {exc.describe()}")
    values = dict(saved_values(shop), **chosen)
    now = utcnow()
    ShopSettings.insert(shop=shop, values=values, updated_at=now).on_conflict(
        conflict_target=[ShopSettings.shop], update={ShopSettings.values: values, ShopSettings.updated_at: now},
    ).execute()
    qbo_company.forget_options(shop)  # the page lists the new accounts at once
    return _json({"created": chosen, "settings": chosen}, 201)


__all__ = ["bp"]
