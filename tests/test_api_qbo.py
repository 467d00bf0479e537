"""Connect / disconnect / options through the API against the QuickBooks connection layer."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from tests.api_fixtures import SHOP_A, SHOP_B, bearer, connect_qbo, two_shops  # noqa: F401


@pytest.fixture
def intuit(request):
    try:
        return request.getfixturevalue("intuit_sandbox")
    except pytest.FixtureLookupError:
        pytest.skip("the Intuit sandbox fixture (tests/fixtures_intuit.py) is not available yet")


def _intuit_url(client, start_url: str) -> str:
    """Follow the page's start link in this client (the browser): where it sends the admin."""
    parts = urlparse(start_url)
    assert parts.path == "/qbo/start"
    resp = client.get(f"{parts.path}?{parts.query}")
    assert resp.status_code == 302 and client.get_cookie("ecomflux_qbo_oauth", path="/qbo") is not None
    return resp.headers["Location"]


def test_connect_returns_a_start_link_bound_to_the_token_shop(client, db, two_shops, bearer, intuit):  # noqa: F811
    from ecomflux_app.models import OAuthState

    resp = client.post("/api/qbo/connect", json={}, headers=bearer(SHOP_A))
    assert resp.status_code == 200
    url = urlparse(_intuit_url(client, resp.json["authorize_url"]))
    query = parse_qs(url.query)
    assert query["scope"] == ["com.intuit.quickbooks.accounting"]
    assert query["redirect_uri"][0].endswith("/qbo/callback")
    state = OAuthState.get(OAuthState.nonce == query["state"][0])
    assert (state.shop_domain, state.purpose) == (SHOP_A, "qbo")


def test_connect_with_replace_confirmation(client, db, two_shops, bearer, intuit):  # noqa: F811
    from ecomflux_app.models import OAuthState

    resp = client.post("/api/qbo/connect", json={"replace": True}, headers=bearer(SHOP_A))
    state = parse_qs(urlparse(_intuit_url(client, resp.json["authorize_url"])).query)["state"][0]
    assert OAuthState.get(OAuthState.nonce == state).purpose == "qbo-replace"
    # Anything but a literal true is not a confirmation.
    resp = client.post("/api/qbo/connect", json={"replace": "yes"}, headers=bearer(SHOP_A))
    state = parse_qs(urlparse(_intuit_url(client, resp.json["authorize_url"])).query)["state"][0]
    assert OAuthState.get(OAuthState.nonce == state).purpose == "qbo"


def test_disconnect_forgets_tokens_keeps_history_and_only_for_the_token_shop(client, db, two_shops, bearer):  # noqa: F811
    from ecomflux_app.models import QboConnection

    shop_a, shop_b = two_shops
    connect_qbo(shop_a)
    connect_qbo(shop_b, company="B Books Inc")
    resp = client.post("/api/qbo/disconnect", headers=bearer(SHOP_A))
    assert resp.status_code == 200 and resp.json["state"] == "not_connected"
    a = QboConnection.get(QboConnection.shop == shop_a)
    assert a.status == "not_connected" and a.access_token is None and a.refresh_token is None
    assert a.realm_id == "9130000000001"  # history kept
    assert QboConnection.get(QboConnection.shop == shop_b).status == "connected"
    status = client.get("/api/status", headers=bearer(SHOP_A)).json["qbo"]
    assert status["state"] == "not_connected" and status["company_name"] is None


def test_disconnect_when_never_connected_is_harmless(client, two_shops, bearer):  # noqa: F811
    resp = client.post("/api/qbo/disconnect", headers=bearer(SHOP_A))
    assert resp.status_code == 200 and resp.json["state"] == "not_connected"


@pytest.fixture
def connected(request, intuit):
    return request.getfixturevalue("connected_shop")


def test_options_come_from_the_connected_company_and_are_cached(client, connected, bearer):  # noqa: F811
    headers = bearer(connected.shop.domain)
    before = connected.intuit.counters(connected.realm)["requests"]
    body = client.get("/api/options", headers=headers).json
    names = lambda key: {o["name"] for o in body[key]}  # noqa: E731
    assert {"Undeposited Funds", "Checking"} <= names("deposit_accounts")
    assert "Sales of Product Income" in names("income_accounts") and "Checking" not in names("income_accounts")
    assert names("classes") == {"Retail", "Wholesale"} and names("departments") == {"Warehouse East"}
    assert "Shipping" in names("items")
    fetched = connected.intuit.counters(connected.realm)["requests"]
    assert fetched > before
    client.get("/api/options", headers=headers)
    assert connected.intuit.counters(connected.realm)["requests"] == fetched  # served from the short cache
    client.get("/api/options?refresh=1", headers=headers)
    assert connected.intuit.counters(connected.realm)["requests"] > fetched


def test_settings_ids_are_checked_against_the_real_company(client, connected, bearer):  # noqa: F811
    headers = bearer(connected.shop.domain)
    classes = {o["name"]: o["id"] for o in client.get("/api/options", headers=headers).json["classes"]}
    bad = client.put("/api/settings", json={"class_id": "9999"}, headers=headers)
    assert bad.status_code == 422 and bad.json["errors"] == {"class_id": "not an active class in Sandbox Company"}
    ok = client.put("/api/settings", json={"class_id": classes["Retail"]}, headers=headers)
    assert ok.status_code == 200 and ok.json["settings"]["class_id"] == classes["Retail"]


def test_failed_order_retried_after_fixing_settings_posts_exactly_once(client, redis_conn, connected, bearer):  # noqa: F811
    from ecomflux_app.models import SyncRecord
    from tests.fixtures_flow import simple_order
    from tests.helpers import drain, post_webhook

    headers = bearer(connected.shop.domain)
    connected.settings(class_id="9999")  # a class deleted in QuickBooks after it was chosen
    post_webhook(client, "orders/fulfilled", connected.shop.domain, simple_order(9201, "#9201"))
    drain(redis_conn)
    [row] = client.get("/api/orders", headers=headers).json["orders"]
    assert row["status"] == "failed" and row["can_retry"] is True and row["reason"]
    assert connected.documents("SalesReceipt") == []
    classes = {o["name"]: o["id"] for o in client.get("/api/options", headers=headers).json["classes"]}
    assert client.put("/api/settings", json={"class_id": classes["Retail"]}, headers=headers).status_code == 200
    assert client.post("/api/orders/9201/retry", headers=headers).status_code == 202
    drain(redis_conn)
    assert SyncRecord.get(SyncRecord.order_id == "9201").status == "posted"
    [doc] = connected.documents("SalesReceipt")
    assert doc["ClassRef"]["value"] == classes["Retail"]
    # Posted now: a second retry is refused and nothing new reaches QuickBooks.
    assert client.post("/api/orders/9201/retry", headers=headers).status_code == 409
    drain(redis_conn)
    assert len(connected.documents("SalesReceipt")) == 1
