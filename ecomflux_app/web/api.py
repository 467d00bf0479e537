"""JSON API behind the embedded page: every route is session-token authenticated and acts on g.shop only."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

from flask import Blueprint, Response, g, jsonify, request

from peewee import fn

from ..models import QboConnection, ShopSettings, SyncRecord, WebhookDelivery, utcnow
from ..statuses import ConnectionStatus, RecordStatus, ShopStatus
from ..shopify.topics import RERUN_SOURCE_TOPICS
from ..translate.document_kinds import label as document_label
from ..translate.jsonout import dumps as dumps_decimal
from ..translate.payout_accounts import payout_account_errors
from ..sync.shop_settings import saved_values, shop_facts, shop_settings
from ..translate.settings import CUSTOMER_MATCHING, DOCUMENT_TYPES, TAX_HANDLING, TRIGGERS, SyncSettings
from . import params, qbo_company
from .session_auth import require_session_token
from ..shopify.graphql import fetch_order
from ..translate.preview import preview_document, unwrap_order

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")

# What the admin may set from the page; company facts come from QuickBooks, never from the form.
EDITABLE_EXCLUDED = {"company"}
# The ledger's statuses as the page groups them.
STATUS_GROUPS = {
    "posted": (RecordStatus.POSTED,),
    "pending": (RecordStatus.PENDING, RecordStatus.POSTING, RecordStatus.WAITING_RECONNECT),
    "flagged": (RecordStatus.FLAGGED,),
    "failed": (RecordStatus.FAILED,),
    "voided": (RecordStatus.VOIDED,),
    "skipped": (RecordStatus.SKIPPED,),
}
RETRYABLE = (RecordStatus.FAILED, RecordStatus.FLAGGED)
MAX_PER_PAGE = 100


def _error(status: int, message: str, **extra):
    resp = jsonify(error=message, **extra)
    resp.status_code = status
    return resp


def _json(value, status: int = 200) -> Response:
    """JSON with Decimal amounts kept exact (translate payloads carry Decimals)."""
    return Response(dumps_decimal(value), status=status, mimetype="application/json")


def _require_installed():
    """The token's shop, or an error response when the app is not installed there."""
    if g.shop is None or g.shop.status != ShopStatus.ACTIVE:
        return None, _error(409, "the app is not installed on this shop; open it from the Shopify admin")
    return g.shop, None


def _connection(shop) -> QboConnection | None:
    return QboConnection.get_or_none(QboConnection.shop == shop)


def connection_state(conn: QboConnection | None) -> str:
    if conn is None:
        return ConnectionStatus.NOT_CONNECTED
    return conn.status or ConnectionStatus.NOT_CONNECTED


def _editable(settings: SyncSettings) -> dict:
    return {k: v for k, v in settings.to_values().items() if k not in EDITABLE_EXCLUDED}


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


# -- status ---------------------------------------------------------------------------------------
@bp.get("/status")
@require_session_token
def status():
    shop = g.shop
    if shop is None:
        return jsonify(shop=g.shop_domain, installed=False, qbo={"state": ConnectionStatus.NOT_CONNECTED}, counts={},
                       last_sync_at=None)
    conn = _connection(shop)
    counts = {group: 0 for group in STATUS_GROUPS}
    rows = (SyncRecord.select(SyncRecord.status, fn.COUNT(SyncRecord.id).alias("n"))
            .where(SyncRecord.shop == shop).group_by(SyncRecord.status))
    for row in rows:
        for group, members in STATUS_GROUPS.items():
            if row.status in members:
                counts[group] += row.n
    counts["total"] = sum(counts.values())
    last_posted = (SyncRecord.select(SyncRecord.posted_at).where(
        (SyncRecord.shop == shop) & SyncRecord.posted_at.is_null(False))
        .order_by(SyncRecord.posted_at.desc()).first())
    problem = qbo_company.check_company(conn) if connection_state(conn) == ConnectionStatus.CONNECTED else None
    if problem:
        conn = _connection(shop)  # the check may have found the company gone: reconnect_required
    state = connection_state(conn)
    qbo = {
        "problem": problem if state == ConnectionStatus.CONNECTED else None,  # connected, but QuickBooks is not answering
        "state": state,
        "connected": state == ConnectionStatus.CONNECTED,
        "reconnect_required": state == ConnectionStatus.RECONNECT_REQUIRED,
        "company_name": conn.company_name if conn and state != ConnectionStatus.NOT_CONNECTED else None,
        "realm_id": conn.realm_id if conn and state != ConnectionStatus.NOT_CONNECTED else None,
        "reason": conn.status_reason if conn and state == ConnectionStatus.RECONNECT_REQUIRED else None,
        "connected_at": _iso(conn.connected_at) if conn else None,
        "last_success_at": _iso(conn.last_success_at) if conn else None,
        "authorization": qbo_company.authorization(shop, conn),  # Intuit's refresh-token expiries, warning
    }
    return jsonify(shop=shop.domain, shop_name=shop.name, installed=shop.status == ShopStatus.ACTIVE,
                   shop_status=shop.status, qbo=qbo, counts=counts,
                   last_sync_at=_iso(last_posted.posted_at) if last_posted else None)


# -- settings -------------------------------------------------------------------------------------
def _choices() -> dict:
    return {"document_type": list(DOCUMENT_TYPES), "trigger": list(TRIGGERS), "tax_handling": list(TAX_HANDLING),
            "customer_matching": list(CUSTOMER_MATCHING)}


@bp.get("/settings")
@require_session_token
def get_settings():
    shop, err = _require_installed()
    if err:
        return err
    settings = shop_settings(shop, _connection(shop))
    row = ShopSettings.get_or_none(ShopSettings.shop == shop)
    return jsonify(settings=_editable(settings), company=settings.company.to_values(), choices=_choices(),
                   saved=row is not None, updated_at=_iso(row.updated_at) if row else None)


# Which option list each id setting must come from (checked when the company's lists are at hand).
ID_SOURCES = {
    "deposit_account_id": ("accounts", "account"),
    "income_account_id": ("accounts", "account"),
    "discount_account_id": ("accounts", "account"),
    "refund_account_id": ("accounts", "account"),
    "shipping_item_id": ("items", "item"),
    "discount_item_id": ("items", "item"),
    "tax_item_id": ("items", "item"),
    "fallback_item_id": ("items", "item"),
    "class_id": ("classes", "class"),
    "department_id": ("departments", "location"),
    "default_customer_id": ("customers", "customer"),
    "payout_clearing_account_id": ("accounts", "account"),
    "payout_bank_account_id": ("accounts", "account"),
    "payout_fee_account_id": ("accounts", "account"),
    "payout_chargeback_account_id": ("accounts", "account"),
    "payout_adjustment_account_id": ("accounts", "account"),
}


def _reference_errors(shop, values: dict, submitted: set[str]) -> dict[str, str]:
    """Ids that are not in the connected company (only when its lists can be read right now)."""
    conn = _connection(shop)
    if connection_state(conn) != ConnectionStatus.CONNECTED:
        return {}
    try:
        options = qbo_company.company_options(shop, conn)
    except qbo_company.QboUnavailable as exc:
        log.info("settings for %s saved without reference check: %s", shop.domain, exc)
        return {}
    errors = {}
    company = conn.company_name or "the QuickBooks company"
    for name in submitted:
        source = ID_SOURCES.get(name)
        value = values.get(name)
        if not source or value in (None, "") or source[0] not in options:
            continue
        if len(options[source[0]]) >= qbo_company.MAX_LIST:
            continue  # a truncated list (e.g. thousands of customers) cannot prove an id is missing
        if str(value) not in {str(o["id"]) for o in options[source[0]]}:
            errors[name] = f"not an active {source[1]} in {company}"
    for name, message in payout_account_errors(options, values, submitted).items():
        errors.setdefault(name, message)
    return errors


@bp.put("/settings")
@require_session_token
def put_settings():
    shop, err = _require_installed()
    if err:
        return err
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "send the settings as a JSON object")
    body = body.get("settings", body) if isinstance(body.get("settings"), dict) else body
    errors = {name: "set from the connected QuickBooks company" for name in body if name in EDITABLE_EXCLUDED}
    merged = {k: v for k, v in saved_values(shop).items() if k not in EDITABLE_EXCLUDED}
    merged.update({k: v for k, v in body.items() if k not in EDITABLE_EXCLUDED})
    for name, message in SyncSettings.validate_values(merged).items():
        errors.setdefault(name, message)
    if not errors:
        errors.update(_reference_errors(shop, merged, set(body)))
    if errors:
        return jsonify(error="some settings are invalid", errors=errors), 422
    settings = SyncSettings.from_values(merged)
    values = _editable(settings)
    now = utcnow()
    ShopSettings.insert(shop=shop, values=values, updated_at=now).on_conflict(
        conflict_target=[ShopSettings.shop], update={ShopSettings.values: values, ShopSettings.updated_at: now},
    ).execute()
    log.info("settings saved for %s (%s)", shop.domain, ", ".join(sorted(body)))
    full = shop_settings(shop, _connection(shop), values)
    return jsonify(settings=_editable(full), company=full.company.to_values(), choices=_choices(), saved=True,
                   updated_at=_iso(now))


# -- QuickBooks company lists and connection -------------------------------------------------------
@bp.get("/options")
@require_session_token
def options():
    shop, err = _require_installed()
    if err:
        return err
    conn = _connection(shop)
    state = connection_state(conn)
    if state != ConnectionStatus.CONNECTED:
        return _error(409, "QuickBooks is not connected" if state == ConnectionStatus.NOT_CONNECTED
                      else "QuickBooks needs to be reconnected", state=state)
    try:
        data = qbo_company.company_options(shop, conn, fresh=request.args.get("refresh") == "1")
    except qbo_company.QboUnavailable as exc:
        return _error(502, f"QuickBooks lists could not be read: {exc}", state=state)
    return jsonify(company_name=conn.company_name, **data)


@bp.post("/qbo/connect")
@require_session_token
def qbo_connect():
    shop, err = _require_installed()
    if err:
        return err
    body = request.get_json(silent=True) or {}
    replace = isinstance(body, dict) and body.get("replace") is True
    try:
        url = qbo_company.start_connect(shop, replace=replace)
    except qbo_company.QboUnavailable as exc:
        return _error(503, str(exc))
    return jsonify(authorize_url=url)


@bp.post("/qbo/disconnect")
@require_session_token
def qbo_disconnect():
    shop, err = _require_installed()
    if err:
        return err
    try:
        qbo_company.disconnect(shop)
    except qbo_company.QboUnavailable as exc:
        return _error(503, str(exc))
    qbo_company.forget_options(shop)
    return jsonify(ok=True, state=connection_state(_connection(shop)))


# -- activity -------------------------------------------------------------------------------------
def _record_json(rec: SyncRecord) -> dict:
    display = next((group for group, members in STATUS_GROUPS.items() if rec.status in members), rec.status)
    return {
        "id": rec.id,
        "kind": rec.kind,
        "source_key": rec.source_key,
        "order_id": rec.order_id,
        "order_name": rec.order_name,
        "status": display,
        "ledger_status": rec.status,
        "document_type": rec.document_type,
        "document_label": document_label(rec.document_type) if rec.document_type else None,
        "qbo_id": rec.qbo_id,
        "qbo_doc_number": rec.qbo_doc_number,
        "currency": rec.currency,
        "shopify_total": _money(rec.shopify_total),
        "qbo_total": _money(rec.qbo_total),
        "tax_total": _money(rec.tax_total),
        "shipping_total": _money(rec.shipping_total),
        "discount_total": _money(rec.discount_total),
        "reason": rec.reason,
        "error_code": rec.error_code,
        "error_element": rec.error_element,
        "attempts": rec.attempts,
        "order_date": rec.order_date.isoformat() if rec.order_date else None,
        "posted_at": _iso(rec.posted_at),
        "updated_at": _iso(rec.updated_at),
        "can_retry": rec.status in RETRYABLE and rec.kind == "order",
    }


@bp.get("/orders")
@require_session_token
def orders():
    shop, err = _require_installed()
    if err:
        return err
    page = params.clamped_int("page", 1, 1, 10**6)
    per_page = params.clamped_int("per_page", 20, 1, MAX_PER_PAGE)
    query = SyncRecord.select().where(SyncRecord.shop == shop)
    status_filter = request.args.get("status", "").strip()
    if status_filter:
        if status_filter not in STATUS_GROUPS:
            return jsonify(error="unknown status filter",
                           errors={"status": "must be one of: " + ", ".join(STATUS_GROUPS)}), 422
        query = query.where(SyncRecord.status.in_(STATUS_GROUPS[status_filter]))
    search = request.args.get("q", "").strip()
    if search:
        query = query.where((SyncRecord.order_name == search) | (SyncRecord.order_id == search.lstrip("#"))
                            | (SyncRecord.order_name == "#" + search.lstrip("#")))
    total = query.count()
    rows = query.order_by(SyncRecord.updated_at.desc(), SyncRecord.id.desc()).paginate(page, per_page)
    pages = max(1, -(-total // per_page))
    return jsonify(orders=[_record_json(r) for r in rows], page=page, per_page=per_page, total=total, pages=pages)


def _latest_delivery(shop_domain: str, order_id: str) -> WebhookDelivery | None:
    return (WebhookDelivery.select()
            .where((WebhookDelivery.shop_domain == shop_domain) & (WebhookDelivery.order_id == str(order_id))
                   & WebhookDelivery.topic.in_(RERUN_SOURCE_TOPICS))
            .order_by(WebhookDelivery.received_at.desc(), WebhookDelivery.id.desc()).first())


@bp.post("/orders/<order_id>/retry")
@require_session_token
def retry(order_id: str):
    shop, err = _require_installed()
    if err:
        return err
    rec = (SyncRecord.select().where((SyncRecord.shop == shop) & (SyncRecord.order_id == order_id)
                                     & (SyncRecord.kind == "order"))
           .order_by(SyncRecord.updated_at.desc()).first())
    if rec is None:
        return _error(404, "no such order in this shop's activity")
    if rec.status not in RETRYABLE:
        return _error(409, f"only failed or flagged orders can be retried (this one is {rec.status})")
    delivery = None
    if rec.delivery_id:
        delivery = WebhookDelivery.get_or_none((WebhookDelivery.id == rec.delivery_id)
                                               & (WebhookDelivery.shop_domain == shop.domain))
    delivery = delivery or _latest_delivery(shop.domain, order_id)
    if delivery is None:
        return _error(409, "no webhook delivery is stored for this order; it cannot be re-run")
    result = qbo_company.rerun_delivery(delivery, actor=f"shop:{shop.domain}")
    log.info("retry of order %s for %s: delivery %s %s", order_id, shop.domain, delivery.id, result)
    return jsonify(ok=True, order_id=order_id, delivery_id=delivery.id, result=result), 202


# -- preview --------------------------------------------------------------------------------------
def _order_for_preview(shop, body: dict):
    """The order to preview: pasted JSON, or this shop's stored delivery / Shopify copy of an order id."""
    if body.get("order") is not None or body.get("order_json") is not None:
        raw = body.get("order")
        if raw is None:
            try:
                raw = json.loads(body["order_json"], parse_float=Decimal)
            except (TypeError, ValueError) as exc:
                return None, {"order_json": f"not valid JSON: {exc}"}
        order = unwrap_order(raw)
        if not order:
            return None, {"order": "must be a Shopify order object"}
        return order, None
    order_id = str(body.get("order_id") or "").strip().lstrip("#")
    if not order_id:
        return None, {"order": "paste an order's JSON or choose an order"}
    delivery = _latest_delivery(shop.domain, order_id)
    if delivery is not None:
        try:
            return unwrap_order(json.loads(delivery.body, parse_float=Decimal)), None
        except ValueError:
            pass
    try:
        order = fetch_order(shop, order_id)
    except Exception as exc:  # noqa: BLE001 - Shopify trouble becomes a field message, not a 500
        log.info("preview: order %s of %s not readable from Shopify: %s", order_id, shop.domain, exc)
        order = None
    if not order:
        return None, {"order_id": "no such order in this shop"}
    return order, None


@bp.post("/preview")
@require_session_token
def preview():
    shop, err = _require_installed()
    if err:
        return err
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "send a JSON object with order, order_json or order_id")
    order, errors = _order_for_preview(shop, body)
    if errors:
        return jsonify(error="nothing to preview", errors=errors), 422
    values = {k: v for k, v in saved_values(shop).items() if k not in EDITABLE_EXCLUDED}
    overrides = body.get("settings")
    if isinstance(overrides, dict):
        values.update({k: v for k, v in overrides.items() if k not in EDITABLE_EXCLUDED})
        setting_errors = SyncSettings.validate_values(values)
        if setting_errors:
            return jsonify(error="some settings are invalid", errors=setting_errors), 422
    # The settings and shop facts posting would use (sync/shop_settings.py), with the page's overrides.
    settings, facts = shop_settings(shop, _connection(shop), values), shop_facts(shop)
    try:
        result = preview_document(order, settings, facts)
    except Exception as exc:  # noqa: BLE001 - a malformed pasted order must not become a 500
        log.info("preview for %s failed on malformed order: %s", shop.domain, exc)
        return jsonify(error="this order could not be translated", errors={"order": str(exc)[:300]}), 422
    if "document" in result:
        # The payload exactly as it would be posted (Decimal digits intact), for the page's "full payload" view.
        result["document_json"] = dumps_decimal(result["document"], indent=2)
        result["document_label"] = document_label(result["document_type"])
    return _json(result)


@bp.errorhandler(404)
def _not_found(_exc):
    return _error(404, "not found")


@bp.errorhandler(405)
def _not_allowed(_exc):
    return _error(405, "method not allowed")


@bp.errorhandler(500)
def _server_error(_exc):
    return _error(500, "internal error; the team has been notified")

