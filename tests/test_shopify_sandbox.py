"""The local Shopify stand-in speaks Shopify's protocols over HTTP (what the product and `make dev` rely on)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests

from ecomflux_app.config import DEV_SHOPIFY_API_KEY as KEY, DEV_SHOPIFY_API_SECRET as SECRET
from ecomflux_app.config import SHOPIFY_API_VERSION
from ecomflux_app.shopify.oauth import verify_query_hmac
from ecomflux_app.shopify.session_token import verify_session_token

SHOP = "proto-shop.myshopify.com"
TX = "urn:ietf:params:oauth:grant-type:token-exchange"


@pytest.fixture
def sb(shopify_sandbox):
    shopify_sandbox.reset()
    yield shopify_sandbox
    shopify_sandbox.reset()


def admin(sb, path: str) -> str:
    return f"{sb.url}/{SHOP}/admin{path}"


def exchange(sb, form: bool = False, **extra) -> requests.Response:
    token = requests.post(f"{sb.url}/_sandbox/shops/{SHOP}/session_token", json={}, timeout=5).json()["session_token"]
    data = {"client_id": KEY, "client_secret": SECRET, "grant_type": TX, "subject_token": token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token", "expiring": "1",
            **extra}
    if form:
        return requests.post(admin(sb, "/oauth/access_token"), data=data, timeout=5)
    return requests.post(admin(sb, "/oauth/access_token"), json=data, timeout=5)


def gql(sb, token, query="{ shop { name currencyCode ianaTimezone } }", variables=None, shop=SHOP):
    return requests.post(f"{sb.url}/{shop}/admin/api/{SHOPIFY_API_VERSION}/graphql.json", json={"query": query,
                         "variables": variables or {}}, headers={"X-Shopify-Access-Token": token or ""}, timeout=5)


def test_control_api_creates_shops_and_mints_valid_session_tokens(sb):
    resp = requests.post(f"{sb.url}/_sandbox/shops", json={"domain": SHOP, "currency": "GBP",
                                                           "timezone": "Europe/London"}, timeout=5)
    assert resp.status_code == 201 and resp.json()["currency"] == "GBP"
    assert requests.post(f"{sb.url}/_sandbox/shops", json={"domain": "evil.com"}, timeout=5).status_code == 400
    token = requests.post(f"{sb.url}/_sandbox/shops/{SHOP}/session_token", json={"sub": "7"},
                          timeout=5).json()["session_token"]
    session = verify_session_token(token, KEY, [SECRET])
    assert session.shop == SHOP and session.user_id == "7"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=KEY)
    assert claims["iss"] == f"https://{SHOP}/admin" and claims["dest"] == f"https://{SHOP}"
    assert {"exp", "nbf", "iat", "jti", "sid"} <= set(claims) and claims["exp"] > claims["nbf"]
    assert [s["domain"] for s in requests.get(f"{sb.url}/_sandbox/shops", timeout=5).json()["shops"]] == [SHOP]


@pytest.mark.parametrize("form", [False, True])
def test_token_exchange_returns_expiring_offline_token(sb, form):
    resp = exchange(sb, form=form)
    assert resp.status_code == 200
    body = resp.json()
    assert body["expires_in"] == 3600 and body["refresh_token_expires_in"] == 7776000
    assert body["access_token"].startswith("shpat_") and body["refresh_token"] and body["scope"]


def test_token_exchange_refuses_bad_client_and_bad_subject(sb):
    assert exchange(sb, client_secret="wrong").status_code == 401
    bad = exchange(sb, subject_token="not-a-jwt")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_subject_token"


def test_refresh_rotates_and_old_refresh_token_is_invalid_grant(sb):
    first = exchange(sb).json()
    data = {"client_id": KEY, "client_secret": SECRET, "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"]}
    second = requests.post(admin(sb, "/oauth/access_token"), json=data, timeout=5)
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert second.json()["access_token"] != first["access_token"]
    again = requests.post(admin(sb, "/oauth/access_token"), json=data, timeout=5)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_graphql_requires_a_valid_unexpired_token_for_that_shop(sb):
    assert gql(sb, None).status_code == 404  # no such shop
    sb.add_shop(SHOP)
    assert gql(sb, None).status_code == 401
    assert gql(sb, "shpat_forged").status_code == 401
    token = exchange(sb).json()["access_token"]
    limits = requests.put(f"{sb.url}/_sandbox/rate_limits", json={"bucket_max": 2000, "restore_rate": 100}, timeout=5)
    assert limits.json() == {"bucket_max": 2000.0, "restore_rate": 100.0}
    ok = gql(sb, token)
    assert ok.status_code == 200
    assert ok.json()["data"]["shop"]["currencyCode"] == "USD"
    status = ok.json()["extensions"]["cost"]["throttleStatus"]
    assert status["maximumAvailable"] == 2000.0 and status["restoreRate"] == 100.0
    sb.add_shop("other-proto.myshopify.com")
    assert gql(sb, token, shop="other-proto.myshopify.com").status_code == 401
    sb.set_token_lifetimes(access_ttl=0)
    expired = exchange(sb).json()["access_token"]
    assert gql(sb, expired).status_code == 401
    requests.post(f"{sb.url}/_sandbox/shops/{SHOP}/revoke", timeout=5)
    assert gql(sb, token).status_code == 401


def test_graphql_throttles_on_demand_with_shopify_error_shape(sb):
    token = exchange(sb).json()["access_token"]
    requests.post(f"{sb.url}/_sandbox/shops/{SHOP}/throttle", json={"count": 1}, timeout=5)
    body = gql(sb, token).json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in body
    assert "throttleStatus" in body["extensions"]["cost"]
    assert "data" in gql(sb, token).json()


def test_orders_paginate_with_cursors_and_filter_by_search(sb):
    token = exchange(sb).json()["access_token"]
    orders = [{"id": i, "name": f"#{i}", "processed_at": f"2026-05-{i:02d}T10:00:00Z", "line_items": []}
              for i in range(1, 6)]
    assert requests.put(f"{sb.url}/_sandbox/shops/{SHOP}/orders", json=orders, timeout=5).json()["count"] == 5
    query = """query ($first: Int!, $after: String, $query: String) {
      orders(first: $first, after: $after, query: $query, sortKey: PROCESSED_AT, reverse: true) {
        pageInfo { hasNextPage endCursor } edges { cursor node { id legacyResourceId } } } }"""
    seen, after = [], None
    while True:
        page = gql(sb, token, query, {"first": 2, "after": after,
                                      "query": "processed_at:>='2026-05-02T00:00:00Z' processed_at:<'2026-05-05'"})
        conn = page.json()["data"]["orders"]
        seen += [e["node"]["legacyResourceId"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == ["4", "3", "2"]
    one = gql(sb, token, 'query { order(id: "gid://shopify/Order/3") { id name } }').json()
    assert one["data"]["order"]["name"] == "#3" and one["data"]["order"]["id"] == "gid://shopify/Order/3"


def test_authorize_redirects_back_with_a_valid_query_hmac_and_single_use_code(sb):
    bad = requests.get(admin(sb, "/oauth/authorize"), params={"client_id": "nope", "redirect_uri": "http://x/cb"},
                       allow_redirects=False, timeout=5)
    assert bad.status_code == 400
    resp = requests.get(admin(sb, "/oauth/authorize"), params={"client_id": KEY, "scope": "read_orders",
                        "redirect_uri": "http://app.test/auth/callback", "state": "nonce-1"},
                        allow_redirects=False, timeout=5)
    assert resp.status_code == 302
    location = urlparse(resp.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert set(params) == {"code", "hmac", "host", "shop", "state", "timestamp"}
    assert params["state"] == "nonce-1" and params["shop"] == SHOP
    assert verify_query_hmac(params, [SECRET]) and not verify_query_hmac(params, ["other"])
    data = {"client_id": KEY, "client_secret": SECRET, "code": params["code"], "expiring": "1"}
    grant = requests.post(admin(sb, "/oauth/access_token"), json=data, timeout=5)
    assert grant.status_code == 200 and grant.json()["refresh_token"]
    assert requests.post(admin(sb, "/oauth/access_token"), json=data, timeout=5).status_code == 400


def test_opening_the_app_in_the_admin_launches_it_with_embedded_params(sb):
    requests.put(f"{sb.url}/_sandbox/app_url", json={"app_url": "http://app.test"}, timeout=5)
    resp = requests.get(admin(sb, f"/apps/{KEY}"), allow_redirects=False, timeout=5)
    assert resp.status_code == 302
    target = urlparse(resp.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert target.netloc == "app.test" and params["shop"] == SHOP and params["embedded"] == "1"
    assert verify_session_token(params["id_token"], KEY, [SECRET]).shop == SHOP
    assert verify_query_hmac(params, [SECRET])
