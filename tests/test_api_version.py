"""The pinned Shopify API version: one setting, the toml agrees, support window warnings, the sandbox's fallback."""

from __future__ import annotations

import logging
import re
import tomllib
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from ecomflux_app import runtime
from ecomflux_app.config import SHOPIFY_API_VERSION, load_config
from ecomflux_app.models import Shop, WebhookDelivery
from ecomflux_app.shopify import api_versions, graphql
from ecomflux_app.staff import create_staff
from tests.helpers import post_webhook

ROOT = Path(__file__).resolve().parent.parent
SHOP = "version-shop.myshopify.com"


def test_shopify_app_toml_and_the_setting_agree():
    toml = tomllib.loads((ROOT / "shopify.app.toml").read_text())
    assert toml["webhooks"]["api_version"] == SHOPIFY_API_VERSION
    assert load_config({}, instance_path=ROOT / "instance")["SHOPIFY_API_VERSION"] == SHOPIFY_API_VERSION


def test_no_other_file_pins_the_version():
    """Moving to the next version is one edit in config.py (and the toml): nothing else spells it out."""
    pinned = re.compile(r"""["']%s["']""" % re.escape(SHOPIFY_API_VERSION))
    # The sandbox keys Shopify's own version-gated behaviour on release names; this test names versions.
    allowed = {"ecomflux_app/config.py", "ecomflux_app/sandbox/shopify_render.py",
               "ecomflux_app/sandbox/shopify_server.py", "tests/test_api_version.py"}
    offenders = []
    for folder in ("ecomflux_app", "workers", "tests", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".lua", ".js", ".html", ".sh") or ".venv" in path.parts:
                continue
            rel = path.relative_to(ROOT).as_posix()
            if rel not in allowed and pinned.search(path.read_text(errors="replace")):
                offenders.append(rel)
    assert offenders == []


def test_a_malformed_version_fails_at_start():
    with pytest.raises(ValueError, match="YYYY-01"):
        load_config({"SHOPIFY_API_VERSION": "2026-11"}, instance_path=ROOT / "instance")
    assert load_config({"SHOPIFY_API_VERSION": "2027-01"}, instance_path=ROOT / "instance")[
        "SHOPIFY_API_VERSION"] == "2027-01"


def test_support_window_and_warning_threshold():
    assert api_versions.supported_until("2026-10") == date(2027, 10, 1)
    assert api_versions.latest_stable(date(2026, 12, 4)) == "2026-10"
    assert api_versions.oldest_supported(date(2026, 12, 4)) == "2026-01"
    assert api_versions.oldest_supported(date(2027, 2, 1)) == "2026-04"
    assert not api_versions.is_supported("2025-10", date(2026, 12, 4))
    assert api_versions.is_supported("2026-01", date(2026, 12, 4))
    assert not api_versions.is_supported("2027-01", date(2026, 12, 4))  # not released yet
    ends = date(2027, 10, 1)
    assert api_versions.status("2026-10", ends - timedelta(days=91)).warning is None
    near = api_versions.status("2026-10", ends - timedelta(days=90))
    assert near.days_left == 90 and "leaves support on 2027-10-01 (90 days)" in near.warning
    assert "2027-07" in near.warning  # the version to move to
    gone = api_versions.status("2025-10", date(2026, 12, 4))
    assert gone.days_left < 0 and "left support on 2026-10-01" in gone.warning and "2026-01 instead" in gone.warning


def test_healthz_warns_within_90_days_and_stays_healthy(client, monkeypatch):
    ends = api_versions.supported_until(runtime.config()["SHOPIFY_API_VERSION"])
    monkeypatch.setattr(api_versions, "today_utc", lambda: ends - timedelta(days=200))
    body = client.get("/healthz").get_json()
    assert body["shopify_api"]["version"] == SHOPIFY_API_VERSION and body["shopify_api"]["warning"] is None
    assert body["warnings"] == []
    monkeypatch.setattr(api_versions, "today_utc", lambda: ends - timedelta(days=30))
    resp = client.get("/healthz")
    body = resp.get_json()
    assert resp.status_code == 200 and body["status"] == "ok"  # a warning is not an outage
    assert body["shopify_api"]["days_left"] == 30
    assert body["warnings"] == [body["shopify_api"]["warning"]] and "(30 days)" in body["warnings"][0]


def test_support_health_page_shows_the_warning_and_other_webhook_versions(client, db, monkeypatch):
    from tests.test_support import sign_in

    ends = api_versions.supported_until(runtime.config()["SHOPIFY_API_VERSION"])
    create_staff("ops@ecomflux.test", "correct horse battery", role="viewer")
    sign_in(client, "ops@ecomflux.test")
    monkeypatch.setattr(api_versions, "today_utc", lambda: ends - timedelta(days=200))
    page = client.get("/support/health").get_data(as_text=True)
    assert f"Pinned <strong>{SHOPIFY_API_VERSION}</strong>" in page and 'id="shopify-api-warning"' not in page
    assert 'id="webhook-versions"' not in page
    Shop.create(domain=SHOP, access_token="x")
    post_webhook(client, "orders/fulfilled", SHOP, {"id": 1, "name": "#1"})
    WebhookDelivery.update(api_version="2025-07").execute()  # a subscription still on an old version
    monkeypatch.setattr(api_versions, "today_utc", lambda: ends - timedelta(days=10))
    page = client.get("/support/health").get_data(as_text=True)
    assert 'id="shopify-api-warning"' in page and "(10 days)" in page
    assert re.search(r"another version:\s*2025-07 \(1\)", page)


def test_sandbox_answers_an_unsupported_version_with_the_oldest_supported(shopify_sandbox, install_shop):
    shop = install_shop(SHOP)
    url = f"{shopify_sandbox.url}/{SHOP}/admin/api/%s/graphql.json"
    headers = {"X-Shopify-Access-Token": shop.access_token}
    today = api_versions.today_utc()
    current = requests.post(url % api_versions.latest_stable(today), json={"query": "{ shop { name } }"},
                            headers=headers, timeout=5)
    assert current.headers["X-Shopify-API-Version"] == api_versions.latest_stable(today)
    old = requests.post(url % "2024-10", json={"query": "{ shop { name } }"}, headers=headers, timeout=5)
    assert old.status_code == 200 and old.json()["data"]["shop"]["name"]
    assert old.headers["X-Shopify-API-Version"] == api_versions.oldest_supported(today)


def test_the_app_logs_when_shopify_answers_with_another_version(install_shop, monkeypatch, caplog):
    shop = install_shop(SHOP, country="CA")
    monkeypatch.setitem(runtime.config(), "SHOPIFY_API_VERSION", "2024-10")
    monkeypatch.setattr(graphql, "_version_warned", set())
    with caplog.at_level(logging.WARNING, logger=graphql.__name__):
        assert graphql.fetch_shop_info(shop)["country"] == "CA"
        graphql.fetch_shop_info(shop)
    warned = [r.getMessage() for r in caplog.records if "not the pinned 2024-10" in r.getMessage()]
    assert len(warned) == 1  # once per version pair, not per call


def test_shop_country_is_read_from_shop_address(install_shop, shopify_sandbox):
    shop = install_shop(SHOP, country="GB")
    assert graphql.fetch_shop_info(shop)["country"] == "GB"
    queried = [e for e in shopify_sandbox.state.graphql_log if e["root"] == "shop"]
    assert queried and queried[-1]["version"] == SHOPIFY_API_VERSION
    assert "shopAddress" in graphql.SHOP_QUERY and "billingAddress" not in graphql.SHOP_QUERY


def test_fulfillment_not_required_reads_as_unfulfilled(install_shop, shopify_sandbox):
    """2026-10 reports an unfulfilled order with nothing left to fulfill as FULFILLMENT_NOT_REQUIRED;
    the REST shape the translation core reads keeps fulfillment_status null for it."""
    from ecomflux_app.sandbox.shopify_render import render_order
    from tests.test_shopify_graphql import rest_order

    shop = install_shop(SHOP)
    cancelled = rest_order(3001, "2026-11-02T10:00:00Z", fulfillment_status=None,
                           cancelled_at="2026-11-02T11:00:00Z", cancel_reason="customer")
    assert render_order(cancelled, "USD", version="2026-07")["displayFulfillmentStatus"] == "UNFULFILLED"
    assert render_order(cancelled, "USD", version="2026-10")["displayFulfillmentStatus"] == "FULFILLMENT_NOT_REQUIRED"
    shopify_sandbox.add_order(SHOP, cancelled)
    order = graphql.fetch_order(shop, 3001)
    assert order["fulfillment_status"] is None and order["cancelled_at"]
