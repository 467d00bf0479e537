"""Session-token authentication of every /api route and of the embedded page's document load."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.api_fixtures import SHOP_A, SHOP_B, bearer, two_shops  # noqa: F401 - fixtures

RETRY = "X-Shopify-Retry-Invalid-Session-Request"

ROUTES = [
    ("GET", "/api/status", None),
    ("GET", "/api/settings", None),
    ("PUT", "/api/settings", {"document_type": "invoice"}),
    ("GET", "/api/options", None),
    ("POST", "/api/qbo/connect", {}),
    ("POST", "/api/qbo/disconnect", {}),
    ("GET", "/api/orders", None),
    ("POST", "/api/orders/1001/retry", {}),
    ("POST", "/api/preview", {"order_id": "1001"}),
    ("POST", "/api/backfill", {"since": "2026-11-01"}),
    ("GET", "/api/backfill", None),
    ("POST", "/api/backfill/2002/resume", {}),
    ("POST", "/api/backfill/2002/cancel", {}),
    ("POST", "/api/reconciliation", {"sample_week": True}),
    ("GET", "/api/reconciliation/2002", None),
    ("GET", "/api/reconciliation/2002.csv", None),
    ("POST", "/api/reconciliation/2002/post-missing", {}),
    ("GET", "/api/reconciliation/latest", None),
    ("POST", "/api/reconciliation/2002/fix", {"index": 0}),
    ("GET", "/api/payouts", None),
    ("POST", "/api/payouts/sync", {}),
    ("POST", "/api/payouts/accounts", {"create": ["clearing"]}),
    ("GET", "/api/taxcodes", None),
    ("PUT", "/api/taxcodes", {"mapping": {"VAT 20%": "1"}}),
    ("POST", "/api/taxcodes/refresh", {}),
]


def _bad_tokens(sandbox) -> dict:
    """Tokens Shopify would never accept for this app, each wrong in one way."""
    now = int(time.time())
    return {
        "missing": None,
        "expired": sandbox.session_token(SHOP_A, expires_in=60, issued_offset=-120),
        "wrong_audience": sandbox.session_token(SHOP_A, audience="someone-elses-api-key"),
        "wrong_signature": sandbox.session_token(SHOP_A, secret="not-the-app-secret-at-all-0123456789"),
        "not_yet_valid": sandbox.session_token(SHOP_A, issued_offset=120),
        "iss_dest_mismatch": sandbox.session_token(SHOP_A, dest=f"https://{SHOP_B}"),
        "alg_none": jwt.encode({"iss": f"https://{SHOP_A}/admin", "dest": f"https://{SHOP_A}",
                                "aud": sandbox.state.api_key, "exp": now + 60, "nbf": now}, None, algorithm="none"),
        "garbage": "abc.def.ghi",
    }


BAD_KINDS = ["missing", "expired", "wrong_audience", "wrong_signature", "not_yet_valid", "iss_dest_mismatch",
             "alg_none", "garbage"]


def test_route_table_covers_every_api_route(app):
    """A new /api route must be added to ROUTES so it is checked for authentication and isolation."""
    declared = {(m, p.replace("1001", "<order_id>").replace("2002", "<id:run_id>")) for m, p, _ in ROUTES}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (method, rule.rule) in declared, f"{method} {rule.rule} is not covered by ROUTES"


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("method,path,body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_api_rejects_bad_session_tokens(client, two_shops, shopify_sandbox, kind, method, path, body):  # noqa: F811
    token = _bad_tokens(shopify_sandbox)[kind]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = client.open(path, method=method, json=body, headers=headers)
    assert resp.status_code == 401, resp.data
    assert resp.headers.get(RETRY) == "1"
    assert resp.is_json and resp.json["error"] == "invalid session token"


def test_rejected_write_changes_nothing(client, db, two_shops, shopify_sandbox, bearer):  # noqa: F811
    from ecomflux_app.models import ShopSettings

    for kind in BAD_KINDS:
        token = _bad_tokens(shopify_sandbox)[kind]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        assert client.put("/api/settings", json={"document_type": "invoice"}, headers=headers).status_code == 401
    assert ShopSettings.select().count() == 0
    assert client.get("/api/settings", headers=bearer(SHOP_A)).json["settings"]["document_type"] == "sales_receipt"


def test_token_in_query_string_is_not_accepted_for_api_when_forged(client, two_shops, shopify_sandbox):  # noqa: F811
    forged = shopify_sandbox.session_token(SHOP_A, secret="forged-secret-forged-secret-forged")
    resp = client.get(f"/api/status?id_token={forged}")
    assert resp.status_code == 401 and resp.headers.get(RETRY) == "1"


def test_valid_token_is_accepted_and_names_its_shop(client, two_shops, bearer):  # noqa: F811
    resp = client.get("/api/status", headers=bearer(SHOP_A))
    assert resp.status_code == 200
    assert resp.json["shop"] == SHOP_A and resp.json["installed"] is True


def test_token_within_clock_skew_leeway_is_accepted(client, two_shops, bearer):  # noqa: F811
    # Shopify allows a few seconds of skew between its clock and ours (nbf slightly in the future).
    assert client.get("/api/status", headers=bearer(SHOP_A, issued_offset=5)).status_code == 200


@pytest.mark.parametrize("kind", BAD_KINDS[1:])
def test_document_load_with_bad_token_is_401_with_retry_header(client, two_shops, shopify_sandbox, kind):  # noqa: F811
    token = _bad_tokens(shopify_sandbox)[kind]
    resp = client.get("/", query_string={"shop": SHOP_A, "host": "aG9zdA", "id_token": token})
    assert resp.status_code == 401
    assert resp.headers.get(RETRY) == "1"
    assert resp.mimetype == "text/html"
    assert "frame-ancestors" in resp.headers["Content-Security-Policy"]
    assert b"Accounting" not in resp.data and b"settings-form" not in resp.data


def test_document_load_without_token_serves_the_bounce_page(client, two_shops):  # noqa: F811
    resp = client.get("/", query_string={"shop": SHOP_A, "host": "aG9zdA"})
    assert resp.status_code == 200
    body = resp.data.decode()
    assert 'name="shopify-api-key"' in body and "app-bridge.js" in body
    assert "settings-form" not in body  # nothing of the shop is shown without a verified token
    assert resp.headers["Content-Security-Policy"] == (
        f"frame-ancestors https://{SHOP_A} https://admin.shopify.com;")


def test_document_load_with_valid_token_renders_the_page_for_that_shop(client, two_shops, shopify_sandbox):  # noqa: F811
    token = shopify_sandbox.session_token(SHOP_A)
    resp = client.get("/", query_string={"shop": SHOP_A, "host": "aG9zdA", "id_token": token})
    assert resp.status_code == 200
    body = resp.data.decode()
    # App Bridge first, with our API key; Polaris as enhancement; our own CSS/JS always.
    assert body.index('<meta name="shopify-api-key" content="ecomflux-dev-api-key">') < body.index("<script")
    assert '<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js"></script>' in body
    assert "https://cdn.shopify.com/shopifycloud/polaris.js" in body
    assert "/static/embedded/app.js" in body and "/static/embedded/app.css" in body
    assert "Shop A" in body and "Shop B" not in body
    assert resp.headers["Content-Security-Policy"] == (
        f"frame-ancestors https://{SHOP_A} https://admin.shopify.com;")
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in resp.headers  # no third-party cookies to rely on


def test_first_document_load_installs_the_shop_by_token_exchange(client, db, shopify_sandbox):
    from ecomflux_app.models import Shop

    shop = "fresh-shop.myshopify.com"
    shopify_sandbox.add_shop(shop, name="Fresh Shop")
    before = shopify_sandbox.stats["token_exchanges"]
    resp = client.get("/", query_string={"shop": shop, "host": "aG9zdA", "id_token": shopify_sandbox.session_token(shop)})
    assert resp.status_code == 200 and "Fresh Shop" in resp.data.decode()
    stored = Shop.get(Shop.domain == shop)
    assert stored.is_active and stored.access_token.startswith("shpat_")
    assert shopify_sandbox.stats["token_exchanges"] == before + 1
    # The next load finds the offline token and does not exchange again.
    client.get("/", query_string={"shop": shop, "id_token": shopify_sandbox.session_token(shop)})
    assert shopify_sandbox.stats["token_exchanges"] == before + 1


def test_reinstall_after_uninstall_runs_token_exchange_again(client, db, two_shops, shopify_sandbox):  # noqa: F811
    from ecomflux_app.models import Shop

    Shop.update(status="uninstalled", access_token=None, refresh_token=None).where(Shop.domain == SHOP_A).execute()
    before = shopify_sandbox.stats["token_exchanges"]
    resp = client.get("/", query_string={"shop": SHOP_A, "id_token": shopify_sandbox.session_token(SHOP_A)})
    assert resp.status_code == 200
    assert Shop.get(Shop.domain == SHOP_A).is_active
    assert shopify_sandbox.stats["token_exchanges"] == before + 1


def test_page_without_shop_or_token_explains_where_to_open_it(client):
    resp = client.get("/")
    assert resp.status_code == 200 and b"Shopify admin" in resp.data
    assert resp.headers["Content-Security-Policy"] == "frame-ancestors https://admin.shopify.com;"
    bad = client.get("/", query_string={"shop": "evil.example.com"})
    assert bad.status_code == 400
    assert "evil" not in bad.headers["Content-Security-Policy"]
