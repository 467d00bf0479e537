"""Intuit's webhook endpoint: QuickBooks change notifications (CloudEvents), verified and noted."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from .. import runtime
from ..quickbooks import notifications

log = logging.getLogger(__name__)
bp = Blueprint("qbo_webhooks", __name__)


@bp.post("/qbo/notifications")
def notified():
    """Answer fast (Intuit waits 3 s): verify the signature over the raw body, note the changes in Redis."""
    token = current_app.config.get("INTUIT_WEBHOOK_VERIFIER_TOKEN")
    body = request.get_data(cache=False)
    if not token:
        return jsonify(error="change notifications are not enabled"), 404
    if not notifications.verify(body, request.headers.get("intuit-signature"), token):
        return jsonify(error="invalid signature"), 401
    try:
        changes = notifications.parse(body)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("QuickBooks notification not understood: %s", exc)
        return jsonify(error=f"not a QuickBooks change notification: {exc}"), 400
    counts = notifications.apply(runtime.redis(), changes)
    return jsonify(received=len(changes), **counts), 200
