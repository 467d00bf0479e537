"""The webhook topics agree everywhere: shopify.app.toml subscribes what the registry routes, and each has a handler."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ecomflux_app.shopify import topics
from ecomflux_app.sync import dispatch

APP_TOML = Path(__file__).resolve().parent.parent / "shopify.app.toml"


def _subscriptions() -> set[tuple[str, str, bool]]:
    """(topic, uri, compliance) for every subscription shopify.app.toml declares."""
    config = tomllib.loads(APP_TOML.read_text())
    found = set()
    for sub in config["webhooks"]["subscriptions"]:
        found |= {(name, sub["uri"], False) for name in sub.get("topics", ())}
        found |= {(name, sub["uri"], True) for name in sub.get("compliance_topics", ())}
    return found


def test_app_toml_subscribes_exactly_the_registry_topics_on_their_routes():
    registry = {(t.name, t.route, t.compliance) for t in topics.TOPICS if t.route is not None}
    assert _subscriptions() == registry


def test_every_subscribed_topic_has_a_handler_and_every_handler_a_subscription():
    subscribed = {name for name, _uri, _compliance in _subscriptions()}
    assert subscribed - set(dispatch.TOPIC_HANDLERS) == set(), "a topic subscribed with no handler"
    assert set(dispatch.TOPIC_HANDLERS) - subscribed == set(), "a handler with no subscription"
    assert topics.SUBSCRIBED_TOPICS == subscribed


def test_each_handler_resolves_to_a_function():
    for name in dispatch.TOPIC_HANDLERS:
        assert callable(dispatch._handler(name)), name


def test_registry_names_are_unique_and_flags_consistent():
    assert len(topics.BY_NAME) == len(topics.TOPICS)
    for topic in topics.TOPICS:
        assert not topic.compliance or topic.route == topics.COMPLIANCE_ROUTE, topic.name
        assert not topic.compliance or topic.shopless, topic.name  # privacy requests outlive the shop row


def test_ids_are_read_from_the_body_the_topic_carries():
    assert topics.row_ids("orders/paid", {"id": 12, "name": "#1001"}) == {
        "order_id": "12", "resource_id": "12", "order_name": "#1001"}
    assert topics.row_ids("refunds/create", {"id": 5, "order_id": 12}) == {"resource_id": "5", "order_id": "12"}
    assert topics.row_ids("customers/redact", {"customer": {"id": 7}}) == {"resource_id": "7"}
    assert topics.row_ids("customers/redact", {"customer": None}) == {"resource_id": None}
    assert topics.row_ids("shop/redact", {"shop_id": 1}) == {}
    assert topics.row_ids("app/uninstalled", {"id": 1}) == {}
    assert topics.row_ids("orders/paid", [1, 2]) == {}
