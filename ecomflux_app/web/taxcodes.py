"""Tax codes of a non-US company on the embedded page: what Shopify taxes map to, and mapping them."""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal

from flask import Blueprint, jsonify, request

from ..models import ShopSettings, SyncRecord, WebhookDelivery, utcnow
from ..statuses import ConnectionStatus, RecordStatus
from ..quickbooks.company_taxes import ensure_tax_setup, load_tax_setup, refresh_tax_setup
from ..quickbooks.errors import QboError
from ..work_results import WaitingForReconnect
from ..sync.shop_settings import saved_values, shop_facts, shop_settings
from ..sync.tax_setup import FRESH_FOR, resume_unmapped
from ..translate.order import TranslationError, plan_order
from ..translate.settings import SyncSettings
from ..translate.tax_codes import UNMAPPED_PREFIX
from .api import _connection, _error, _require_installed
from .session_auth import require_session_token

log = logging.getLogger(__name__)
bp = Blueprint("taxcodes", __name__, url_prefix="/api/taxcodes")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def _percents(signature: str) -> tuple[Decimal, ...]:
    return tuple(sorted(Decimal(p).normalize() for p in _PERCENT.findall(signature)))


def _unmapped(shop, settings: SyncSettings) -> list[dict]:
    """Every Shopify tax that flagged an order, with the codes offered for it (same rate first)."""
    found: dict[str, dict] = {}
    flagged = (SyncRecord.select().where((SyncRecord.shop == shop.id) & (SyncRecord.status == RecordStatus.FLAGGED)
                                         & SyncRecord.reason.contains(UNMAPPED_PREFIX)).limit(200))
    facts = shop_facts(shop)
    for rec in flagged:
        delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == rec.delivery_id) if rec.delivery_id else None
        if delivery is None:
            continue
        try:
            plan = plan_order(json.loads(delivery.body, parse_float=Decimal), settings, facts)
        except (TranslationError, ValueError):
            continue
        for u in plan.tax_unmapped:
            entry = found.setdefault(u.signature, {"tax": u.signature, "line": u.line, "orders": [],
                                                   "suggestions": list(u.suggestions)})
            entry["orders"].append(rec.order_name or rec.order_id)
    return list(found.values())


def _state(shop):
    conn = _connection(shop)
    settings = shop_settings(shop, conn)
    setup = settings.company.tax_setup
    codes = [{"id": c.id, "name": c.name, "kind": c.kind, "describe": c.describe(),
              "rates": [{"name": r.name, "percent": str(r.percent)} for r in c.rates]}
             for c in (setup.active() if setup else [])]
    return {"country": settings.company.country, "applies": setup is not None and not settings.company.is_us,
            "codes": codes, "mapping": settings.tax_code_map, "unmapped": _unmapped(shop, settings),
            "read_at": conn.tax_setup_read_at.isoformat() + "Z" if conn and conn.tax_setup_read_at else None}


@bp.get("")
@require_session_token
def get_taxcodes():
    shop, err = _require_installed()
    if err:
        return err
    conn = _connection(shop)
    try:
        ensure_tax_setup(conn, max_age=FRESH_FOR)  # a code added in QuickBooks shows within minutes
    except (QboError, WaitingForReconnect) as exc:
        log.info("tax codes for %s not refreshed: %s", shop.domain, exc)
    return jsonify(_state(shop))


@bp.post("/refresh")
@require_session_token
def refresh():
    shop, err = _require_installed()
    if err:
        return err
    conn = _connection(shop)
    if conn is None or conn.status != ConnectionStatus.CONNECTED:
        return _error(409, "connect QuickBooks first")
    try:
        refresh_tax_setup(conn)
    except (QboError, WaitingForReconnect) as exc:
        return _error(502, f"QuickBooks did not answer: {exc}")
    # A code added in QuickBooks may settle flagged orders by itself (one code of that rate).
    return jsonify(dict(_state(shop), resumed=resume_unmapped(shop)))


@bp.put("")
@require_session_token
def put_mapping():
    """Map Shopify taxes to existing codes of the same rate(s); flagged orders then post by themselves."""
    shop, err = _require_installed()
    if err:
        return err
    body = request.get_json(silent=True)
    mapping = body.get("mapping") if isinstance(body, dict) else None
    if not isinstance(mapping, dict) or not mapping:
        return _error(400, "send {\"mapping\": {\"<Shopify tax>\": \"<QuickBooks tax code id>\"}}")
    setup = load_tax_setup(_connection(shop))
    if setup is None:
        return _error(409, "this company's tax codes are not known yet: connect a QuickBooks company outside the US")
    errors = {}
    for signature, code_id in mapping.items():
        code = setup.code(str(code_id))
        if code is None or not code.active:
            errors[signature] = "no such active tax code in QuickBooks"
        elif code.percents != _percents(str(signature)):
            errors[signature] = f"{code.describe()} does not have the same rate(s) as {signature}"
    if errors:
        return jsonify(error="some mappings are invalid", errors=errors), 422
    values = saved_values(shop)
    values["tax_code_map"] = dict(values.get("tax_code_map") or {}, **{k: str(v) for k, v in mapping.items()})
    now = utcnow()
    ShopSettings.insert(shop=shop, values=values, updated_at=now).on_conflict(
        conflict_target=[ShopSettings.shop], update={ShopSettings.values: values, ShopSettings.updated_at: now},
    ).execute()
    resumed = resume_unmapped(shop)
    log.info("tax codes mapped for %s (%s); %d flagged orders resumed", shop.domain, ", ".join(mapping), resumed)
    return jsonify(dict(_state(shop), resumed=resumed, saved=True))
