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


def test_connect_returns_an_authorize_url_bound_to_the_token_shop(client, db, two_shops, bearer, intuit):  # noqa: F811
    from ecomflux_app.models import OAuthState

    resp = client.post("/api/qbo/connect", json={}, headers=bearer(SHOP_A))
    assert resp.status_code == 200
    url = urlparse(resp.json["authorize_url"])
    query = parse_qs(url.query)
    assert query["scope"] == ["com.intuit.quickbooks.accounting"]
    assert query["redirect_uri"][0].endswith("/qbo/callback")
    state = OAuthState.get(OAuthState.nonce == query["state"][0])
    assert (state.shop_domain, state.purpose) == (SHOP_A, "qbo")


def test_connect_with_replace_confirmation(client, db, two_shops, bearer, intuit):  # noqa: F811
    from ecomflux_app.models import OAuthState

    resp = client.post("/api/qbo/connect", json={"replace": True}, headers=bearer(SHOP_A))
    state = parse_qs(urlparse(resp.json["authorize_url"]).query)["state"][0]
    assert OAuthState.get(OAuthState.nonce == state).purpose == "qbo-replace"
    # Anything but a literal true is not a confirmation.
    resp = client.post("/api/qbo/connect", json={"replace": "yes"}, headers=bearer(SHOP_A))
    state = parse_qs(urlparse(resp.json["authorize_url"]).query)["state"][0]
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
