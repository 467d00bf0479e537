"""Shopify webhook intake: verify HMAC on the raw body, insert one row per delivery, commit, enqueue."""

from __future__ import annotations

import hashlib
import json
import logging
import time

from flask import Blueprint, current_app, jsonify, request

from .. import runtime
from ..intake import IntakeWriter, row_values
from ..models import Shop
from ..shopify.webhooks import ORDER_TOPICS, SUPPORTED_TOPICS, delivery_headers, verify

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

MAX_BODY = 5 * 1024 * 1024
# Topics that still matter when we hold no (active) shop row: redaction and uninstall.
SHOPLESS_TOPICS = frozenset({"shop/redact", "customers/redact", "customers/data_request", "app/uninstalled"})
SHOP_CACHE_SECONDS = 30.0

_writer = IntakeWriter(runtime.redis)
_shop_ids: dict[str, tuple[int, float]] = {}


def _shop_id(domain: str) -> int | None:
    """The shop's row id, cached briefly; unknown shops are never cached (an install may be seconds old)."""
    hit = _shop_ids.get(domain)
    now = time.monotonic()
    if hit and hit[1] > now:
        return hit[0]
    shop = Shop.select(Shop.id).where(Shop.domain == domain).first()
    if shop is None:
        return None
    _shop_ids[domain] = (shop.id, now + SHOP_CACHE_SECONDS)
    return shop.id


def _ids(topic: str, payload) -> dict:
    """Order/resource ids worth indexing for the support console search."""
    if not isinstance(payload, dict):
        return {}
    out: dict = {}
    if topic in ORDER_TOPICS:
        out["order_id"] = str(payload.get("id")) if payload.get("id") is not None else None
        out["order_name"] = payload.get("name")
        out["resource_id"] = out["order_id"]
    elif topic == "refunds/create":
        out["resource_id"] = str(payload.get("id")) if payload.get("id") is not None else None
        out["order_id"] = str(payload.get("order_id")) if payload.get("order_id") is not None else None
    elif topic in ("customers/redact", "customers/data_request"):
        customer = payload.get("customer") or {}
        out["resource_id"] = str(customer.get("id")) if customer.get("id") is not None else None
    return {k: (v[:64] if isinstance(v, str) else v) for k, v in out.items()}


@bp.post("/webhooks")
@bp.post("/webhooks/<path:_suffix>")
def receive(_suffix: str | None = None):
    cfg = current_app.config
    raw = request.get_data(cache=False)
    topic = request.headers.get("X-Shopify-Topic", "")
    shop_domain = (request.headers.get("X-Shopify-Shop-Domain") or "").lower()
    webhook_id = request.headers.get("X-Shopify-Webhook-Id")
    if len(raw) > MAX_BODY:
        log.warning("webhook rejected: body over %d bytes (topic=%s shop=%s)", MAX_BODY, topic, shop_domain)
        return jsonify(error="payload too large"), 413
    if not verify(raw, request.headers.get("X-Shopify-Hmac-Sha256"),
                  (cfg["SHOPIFY_API_SECRET"], cfg.get("SHOPIFY_API_SECRET_OLD"))):
        log.warning("webhook rejected: invalid HMAC (topic=%s shop=%s webhook_id=%s remote=%s)",
                    topic or "-", shop_domain or "-", webhook_id or "-", request.remote_addr)
        return jsonify(error="invalid hmac"), 401
    if not topic or not shop_domain:
        return jsonify(error="missing X-Shopify-Topic or X-Shopify-Shop-Domain"), 400
    if not webhook_id:
        # Shopify always sends one; derive a stable id so a resend still deduplicates.
        webhook_id = "derived-" + hashlib.sha256(topic.encode() + b"|" + shop_domain.encode() + b"|" + raw).hexdigest()

    status, error = "queued", None
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        payload, status, error = None, "failed", f"malformed JSON payload: {exc}"
    if status == "queued" and topic not in SUPPORTED_TOPICS:
        status, error = "ignored", f"unsupported topic {topic!r}"
    shop_id = _shop_id(shop_domain)
    if status == "queued" and shop_id is None and topic not in SHOPLESS_TOPICS:
        status, error = "ignored", f"unknown shop {shop_domain}"

    result = _writer.submit(row_values(
        webhook_id=webhook_id[:255],
        event_id=request.headers.get("X-Shopify-Event-Id"),
        topic=topic[:64],
        shop_domain=shop_domain[:255],
        shop_id=shop_id,
        api_version=request.headers.get("X-Shopify-API-Version"),
        triggered_at=request.headers.get("X-Shopify-Triggered-At"),
        headers=delivery_headers(request.headers),
        body=raw.decode("utf-8", errors="replace"),
        status=status,
        error=error,
        **_ids(topic, payload),
    ))
    if result.outcome == "duplicate":
        # A repeated delivery of the same X-Shopify-Webhook-Id: acknowledge, do nothing twice.
        return jsonify(status="duplicate"), 200
    if result.outcome != "inserted":
        # Not durably recorded: a 503 makes Shopify deliver it again later.
        log.error("webhook %s (%s) not recorded: %s", webhook_id, topic, result.error)
        return jsonify(error="temporarily unavailable"), 503
    return jsonify(status=status, id=result.delivery_id), 200
