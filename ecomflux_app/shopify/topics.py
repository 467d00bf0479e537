"""The registry of webhook topics: each topic's route, compliance and shop-less flags, and the ids its body gives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# What a topic's body is, which says where its ids are (see row_ids).
ORDER_BODY = "order"
REFUND_BODY = "refund"
CUSTOMER_BODY = "customer"  # a compliance request naming one customer
OTHER_BODY = "other"  # nothing the support console indexes

ROUTE = "/webhooks"
COMPLIANCE_ROUTE = "/webhooks/compliance"


@dataclass(frozen=True)
class Topic:
    """One webhook topic as the app takes it; shopify.app.toml subscribes exactly the topics with a route."""

    name: str
    route: str | None  # the URI it is subscribed on; None: known (ids indexed) but not subscribed, so ignored
    body: str = OTHER_BODY
    compliance: bool = False  # a mandatory privacy topic (compliance_topics in shopify.app.toml)
    shopless: bool = False  # worked on even when we hold no (active) shop row: redaction, uninstall
    # A stored delivery whose body is the order as it should post: retry re-runs it, Preview reads it.
    rerun_source: bool = False


TOPICS: tuple[Topic, ...] = (
    Topic("orders/fulfilled", ROUTE, ORDER_BODY, rerun_source=True),
    Topic("orders/paid", ROUTE, ORDER_BODY, rerun_source=True),
    Topic("orders/cancelled", ROUTE, ORDER_BODY),
    Topic("orders/create", None, ORDER_BODY, rerun_source=True),
    Topic("orders/updated", None, ORDER_BODY, rerun_source=True),
    Topic("refunds/create", ROUTE, REFUND_BODY),
    Topic("app/uninstalled", ROUTE, shopless=True),
    Topic("customers/data_request", COMPLIANCE_ROUTE, CUSTOMER_BODY, compliance=True, shopless=True),
    Topic("customers/redact", COMPLIANCE_ROUTE, CUSTOMER_BODY, compliance=True, shopless=True),
    Topic("shop/redact", COMPLIANCE_ROUTE, compliance=True, shopless=True),
)
BY_NAME: dict[str, Topic] = {t.name: t for t in TOPICS}

SUBSCRIBED_TOPICS = frozenset(t.name for t in TOPICS if t.route is not None)
ORDER_TOPICS = frozenset(t.name for t in TOPICS if t.body == ORDER_BODY)
CUSTOMER_TOPICS = frozenset(t.name for t in TOPICS if t.body == CUSTOMER_BODY)
COMPLIANCE_TOPICS = frozenset(t.name for t in TOPICS if t.compliance)
SHOPLESS_TOPICS = frozenset(t.name for t in TOPICS if t.shopless)
RERUN_SOURCE_TOPICS = tuple(t.name for t in TOPICS if t.rerun_source)


def _text_id(value) -> str | None:
    """An id or name as the row's text (whatever JSON type the body gave it), None when absent."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _order_ids(payload: dict) -> dict:
    order_id = _text_id(payload.get("id"))
    return {"order_id": order_id, "resource_id": order_id, "order_name": _text_id(payload.get("name"))}


def _refund_ids(payload: dict) -> dict:
    return {"resource_id": _text_id(payload.get("id")), "order_id": _text_id(payload.get("order_id"))}


def _customer_ids(payload: dict) -> dict:
    customer = payload.get("customer")
    return {"resource_id": _text_id(customer.get("id")) if isinstance(customer, dict) else None}


_ID_READERS: dict[str, Callable[[dict], dict]] = {
    ORDER_BODY: _order_ids,
    REFUND_BODY: _refund_ids,
    CUSTOMER_BODY: _customer_ids,
}
_READER_BY_TOPIC = {t.name: _ID_READERS[t.body] for t in TOPICS if t.body in _ID_READERS}


def row_ids(topic: str, payload) -> dict:
    """The order/resource ids a delivery row indexes for the support console's search ({} for none)."""
    reader = _READER_BY_TOPIC.get(topic)
    if reader is None or not isinstance(payload, dict):
        return {}
    return reader(payload)
