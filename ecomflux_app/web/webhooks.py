"""Shopify webhook intake: verify HMAC on the raw body, insert one row per delivery, commit, enqueue.

The intake is mounted as WSGI middleware in front of Flask rather than as a Flask view: it is the
one path that takes every delivery of every shop, and it needs nothing Flask adds per request
(sessions, routing, request/app contexts, response objects). Measured in `make bench`, that
machinery cost more CPU than the HMAC, the JSON parse and the insert together.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from http import HTTPStatus
from typing import Any, Union

import msgspec
from flask import Blueprint
from werkzeug.wsgi import get_input_stream

from .. import runtime
from ..intake import IntakeWriter, body_columns, row_values
from ..shopify.topics import SHOPLESS_TOPICS, SUBSCRIBED_TOPICS, row_ids
from ..shopify.webhooks import delivery_headers, verify
from .security import BASE_HEADERS
from ..statuses import DeliveryStatus, ShopStatus

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

PATH = "/webhooks"
MAX_BODY = 5 * 1024 * 1024
# One webhook answer in this many asks its sender to reconnect (Connection: close), as nginx's
# keepalive_requests does. The server's processes share one listening socket, and whichever is
# ready first accepts every connection then open: at start-up, or behind a proxy's pool of
# persistent connections, one process served all 200 of wrk's senders on one GIL (2,600 req/s
# where spread over four it takes 4,700). Reconnects land on the processes free to accept, so the
# spread heals in seconds. Measured in `make bench`'s setup: 1 in 20 cost no webhooks/s within the
# noise; 1 in 10 cost ~5%.
RECONNECT_EVERY = 20
# Answers that tell the sender its delivery will not be worked on (now), in a header as well.
# An answer's status only (the row itself stays queued): the shop cannot take work now.
HELD = "held"
QUIET_STATUSES = frozenset({DeliveryStatus.IGNORED, DeliveryStatus.FAILED, HELD})
_answers = itertools.count(1)  # next() on a count is atomic under the GIL: no lock per request

_writer = IntakeWriter(runtime.redis)


@bp.record_once
def _mount(state) -> None:
    """Put the intake in front of the Flask app for POST /webhooks and /webhooks/<anything>."""
    app = state.app
    _writer.gather_seconds = app.config["INTAKE_GATHER_SECONDS"]
    app.wsgi_app = WebhookIntake(app.wsgi_app, app.config)


class WebhookIntake:
    """WSGI middleware: answers webhook deliveries itself and passes every other request on."""

    def __init__(self, next_app, config):
        self.next_app = next_app
        self.config = config

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != PATH and not path.startswith(PATH + "/"):
            return self.next_app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            code, fields = 405, {"error": "method not allowed"}
        else:
            try:
                code, fields = receive(environ, self.config)
            except Exception:  # never a traceback page; Shopify retries a 5xx
                log.exception("webhook intake crashed (topic=%s)", environ.get("HTTP_X_SHOPIFY_TOPIC", "-"))
                code, fields = 500, {"error": "internal error"}
        body = msgspec.json.encode(fields)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *BASE_HEADERS]
        if fields.get("status") in QUIET_STATUSES:  # said in a header too: the sender's logs keep headers
            said = f"{fields['status']}: {fields.get('reason') or ''}"[:200]
            headers.append(("X-Ecomflux-Delivery", said.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")))
        # HTTP/1 only: HTTP/2 forbids the header (one connection multiplexes every request anyway).
        if environ.get("SERVER_PROTOCOL", "").startswith("HTTP/1") and next(_answers) % RECONNECT_EVERY == 0:
            headers.append(("Connection", "close"))
        start_response(f"{code} {HTTPStatus(code).phrase}", headers)
        return [body]


class _CustomerId(msgspec.Struct):
    id: Any = None


class _RowIds(msgspec.Struct):
    """The few fields a row indexes (see _ids); the decoder validates the rest and skips it."""

    id: Any = None
    name: Any = None
    order_id: Any = None
    customer: Union[_CustomerId, None] = None


# Decoding only the ids costs a fraction of building the whole body as Python objects, which
# grew with every KB (profiled at 16 KB: the largest cost on the request thread after the HMAC).
_ids_decoder = msgspec.json.Decoder(_RowIds)


def _parse(raw: bytes):
    """The JSON body: msgspec's C decoder first (it runs on every delivery; exact integers of any
    size), then the json module for what is not strict JSON but Python reads (NaN). ValueError when
    malformed or beyond what a decoder takes (nesting too deep, a number with thousands of digits)."""
    try:
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return json.loads(raw)
    except RecursionError:  # both decoders recurse per level; neither calls that a ValueError
        raise ValueError("nested too deeply") from None


def _parse_ids(raw: bytes):
    """The body's indexed fields as a dict (the whole body is validated, not built), or, for what
    that decoder refuses (not an object, NaN, an odd id), the whole body parsed as _parse does."""
    try:
        ids = _ids_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return _parse(raw)
    return {"id": ids.id, "name": ids.name, "order_id": ids.order_id,
            "customer": {"id": ids.customer.id} if ids.customer is not None else None}


def _read_body(environ) -> bytes | None:
    """The raw body (Content-Length or chunked), or None when it is over MAX_BODY."""
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        if int(length) > MAX_BODY:
            return None
        return environ["wsgi.input"].read(int(length))  # the common case: Shopify sends a length
    raw = get_input_stream(environ, max_content_length=None).read(MAX_BODY + 1)  # chunked
    return None if len(raw) > MAX_BODY else raw


def receive(environ, cfg) -> tuple[int, dict]:
    """One delivery: (HTTP status, JSON fields). 200 only once the row is committed (and enqueued)."""
    topic = environ.get("HTTP_X_SHOPIFY_TOPIC", "")
    shop_domain = environ.get("HTTP_X_SHOPIFY_SHOP_DOMAIN", "").lower()
    webhook_id = environ.get("HTTP_X_SHOPIFY_WEBHOOK_ID")
    raw = _read_body(environ)
    if raw is None:
        log.warning("webhook rejected: body over %d bytes (topic=%s shop=%s)", MAX_BODY, topic, shop_domain)
        return 413, {"error": "payload too large"}
    if not verify(raw, environ.get("HTTP_X_SHOPIFY_HMAC_SHA256"),
                  (cfg["SHOPIFY_API_SECRET"], cfg.get("SHOPIFY_API_SECRET_OLD"))):
        log.warning("webhook rejected: invalid HMAC (topic=%s shop=%s webhook_id=%s remote=%s)",
                    topic or "-", shop_domain or "-", webhook_id or "-", environ.get("REMOTE_ADDR"))
        return 401, {"error": "invalid hmac"}
    if not topic or not shop_domain:
        # Signed with our secret, so from Shopify (or someone holding the secret): worth a look.
        log.warning("signed webhook rejected: missing %s (webhook_id=%s remote=%s)",
                    " and ".join(h for h, v in (("X-Shopify-Topic", topic), ("X-Shopify-Shop-Domain", shop_domain))
                                 if not v), webhook_id or "-", environ.get("REMOTE_ADDR"))
        return 400, {"error": "missing X-Shopify-Topic or X-Shopify-Shop-Domain"}
    if not webhook_id:
        # Shopify always sends one; derive a stable id so a resend still deduplicates.
        webhook_id = "derived-" + hashlib.sha256(topic.encode() + b"|" + shop_domain.encode() + b"|" + raw).hexdigest()

    status, error = DeliveryStatus.QUEUED, None
    try:
        payload = _parse_ids(raw)
        ids = row_ids(topic, payload)
    except ValueError as exc:  # incl. UnicodeDecodeError, and an id too long to print
        payload, ids, status, error = None, {}, DeliveryStatus.FAILED, f"malformed JSON payload: {exc}"
    if status == DeliveryStatus.QUEUED and not isinstance(payload, dict):
        status, error = DeliveryStatus.FAILED, f"payload is not a JSON object ({type(payload).__name__})"
    if status == DeliveryStatus.QUEUED and topic not in SUBSCRIBED_TOPICS:
        status, error = DeliveryStatus.IGNORED, f"unsupported topic {topic!r}"

    body, raw_body = body_columns(raw)
    # The writer sets the shop id (and ignores a queued row for a shop we do not hold); row_values
    # cuts text to its columns' widths.
    result = _writer.submit(row_values(
        webhook_id=webhook_id,
        event_id=environ.get("HTTP_X_SHOPIFY_EVENT_ID"),
        topic=topic,
        shop_domain=shop_domain,
        api_version=environ.get("HTTP_X_SHOPIFY_API_VERSION"),
        triggered_at=environ.get("HTTP_X_SHOPIFY_TRIGGERED_AT"),
        headers=delivery_headers(environ),
        body=body,
        raw_body=raw_body,
        status=status,
        error=error,
        **ids,
    ))
    if result.outcome == "duplicate":
        # A repeated delivery of the same X-Shopify-Webhook-Id: acknowledge, do nothing twice.
        return 200, {"status": "duplicate"}
    if result.outcome != "inserted":
        # Not durably recorded: a 503 makes Shopify deliver it again later.
        log.error("webhook %s (%s) not recorded: %s", webhook_id, topic, result.error)
        return 503, {"error": "temporarily unavailable"}
    return 200, _answer(result)


def _answer(result) -> dict:
    """What became of a recorded delivery, as its sender reads it: the row's status, and why when it
    will not be worked on (ignored, failed, or held for a shop that uninstalled the app)."""
    values = result.values
    fields = {"status": values["status"], "id": result.delivery_id}
    if values["status"] in (DeliveryStatus.IGNORED, DeliveryStatus.FAILED):
        fields["reason"] = values["error"]
    elif result.shop_status not in (None, ShopStatus.ACTIVE) and values["topic"] not in SHOPLESS_TOPICS:
        fields["status"] = HELD
        fields["reason"] = f"shop is {result.shop_status}: held until the app is reinstalled or reopened"
    return fields
