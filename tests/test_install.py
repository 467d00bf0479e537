"""Install: token exchange (managed install) and the auth-code grant fallback against the Shopify sandbox."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from itsdangerous import URLSafeTimedSerializer

from ecomflux_app.config import DEV_SHOPIFY_API_SECRET
from ecomflux_app.models import OAuthState, Shop, WebhookDelivery, utcnow
from ecomflux_app.work_queue import get_queue, shop_queue_name
from ecomflux_app.sandbox.shopify_server import query_hmac
from ecomflux_app.shopify.errors import OAuthError
from ecomflux_app.oauth_state import consume_state, issue_state
from ecomflux_app.shopify.oauth import exchange_session_token, verify_query_hmac
from ecomflux_app.shopify.session_token import verify_session_token
from ecomflux_app.sync.installs import ensure_installed, install_via_token_exchange
from ecomflux_app.web.install import STATE_COOKIE, STATE_COOKIE_SALT

SHOP = "install-shop.myshopify.com"


def session_for(app, token):
    return verify_session_token(token, app.config["SHOPIFY_API_KEY"], [app.config["SHOPIFY_API_SECRET"]])


# -- token exchange -------------------------------------------------------------------------------
def test_token_exchange_stores_encrypted_expiring_tokens_and_shop_info(app, db, shopify_sandbox):
    shopify_sandbox.add_shop(SHOP, name="Install Shop", email="o@install.example", currency="EUR",
                             timezone="Europe/Berlin", country="DE")
    shop = install_via_token_exchange(session_for(app, shopify_sandbox.session_token(SHOP)))
    assert (shop.domain, shop.status, shop.name, shop.email, shop.currency, shop.timezone, shop.country) == (
        SHOP, "active", "Install Shop", "o@install.example", "EUR", "Europe/Berlin", "DE")
    assert shop.access_token.startswith("shpat_") and shop.refresh_token.startswith("shprt_")
    now = utcnow()
    assert timedelta(minutes=59) < shop.access_token_expires_at - now <= timedelta(hours=1)
    assert timedelta(days=89) < shop.refresh_token_expires_at - now <= timedelta(days=90)
    raw = db.execute_sql("SELECT access_token, refresh_token FROM shop").fetchone()
    # Encrypted at rest: the column never holds the token text.
    assert shop.access_token not in raw[0] and shop.refresh_token not in raw[1]
    assert shopify_sandbox.stats["token_exchanges"] == 1


def test_token_exchange_rejects_a_forged_session_token(app, db, shopify_sandbox):
    forged = shopify_sandbox.session_token(SHOP, secret="x" * 32)
    # The app's own check would refuse it; the token endpoint refuses it as well.
    with pytest.raises(OAuthError) as info:
        exchange_session_token(SHOP, forged)
    assert info.value.error == "invalid_subject_token"
    assert Shop.select().count() == 0


def test_token_exchange_for_another_shop_is_refused(app, db, shopify_sandbox):
    token = shopify_sandbox.session_token("other-shop.myshopify.com")
    with pytest.raises(OAuthError):
        exchange_session_token(SHOP, token)


def test_reinstall_after_uninstall_reactivates_and_resumes_parked_work(app, client, db, redis_conn, shopify_sandbox):
    from tests.helpers import drain, post_webhook

    shop = install_via_token_exchange(session_for(app, shopify_sandbox.session_token(SHOP)))
    first_install = shop.installed_at
    assert post_webhook(client, "app/uninstalled", SHOP, {"domain": SHOP}).status_code == 200
    drain(redis_conn)
    gone = Shop.get(Shop.domain == SHOP)
    assert gone.status == "uninstalled" and gone.access_token is None
    # A delivery parked while the shop was away (order handlers park non-active shops as pending).
    parked = WebhookDelivery.create(webhook_id="parked-1", topic="orders/paid", shop_domain=SHOP, shop=gone,
                                    body='{"id": 1}', status="pending", error="shop not active")
    back = install_via_token_exchange(session_for(app, shopify_sandbox.session_token(SHOP)))
    assert back.id == shop.id and back.status == "active" and back.access_token
    assert back.uninstalled_at is None and back.installed_at >= first_install
    jobs = get_queue(redis_conn, shop_queue_name(SHOP)).jobs
    assert [j.args for j in jobs] == [[parked.id]]


# -- auth-code grant --------------------------------------------------------------------------------
def start_auth(client, shop=SHOP):
    resp = client.get(f"/auth?shop={shop}")
    assert resp.status_code == 302
    return resp.headers["Location"]


def follow_authorize(location: str) -> dict:
    """Play the merchant's browser at the sandbox's authorize endpoint; returns the callback query."""
    import requests

    resp = requests.get(location, allow_redirects=False, timeout=5)
    assert resp.status_code == 302
    callback = urlparse(resp.headers["Location"])
    assert callback.path == "/auth/callback"
    return {k: v[0] for k, v in parse_qs(callback.query).items()}


def test_code_grant_installs_the_shop(app, client, db, shopify_sandbox):
    location = start_auth(client)
    target = urlparse(location)
    assert target.path == f"/{SHOP}/admin/oauth/authorize"
    query = parse_qs(target.query)
    assert query["client_id"] == [app.config["SHOPIFY_API_KEY"]]
    assert query["redirect_uri"] == [f"{app.config['APP_URL']}/auth/callback"]
    assert "read_orders" in query["scope"][0]
    params = follow_authorize(location)
    assert params["state"] == query["state"][0] and params["shop"] == SHOP
    resp = client.get("/auth/callback?" + urlencode(params))
    assert resp.status_code == 302
    assert resp.headers["Location"] == f"{shopify_sandbox.url}/{SHOP}/admin/apps/{app.config['SHOPIFY_API_KEY']}"
    shop = Shop.get(Shop.domain == SHOP)
    assert shop.status == "active" and shop.refresh_token and shop.access_token_expires_at
    assert shopify_sandbox.stats["code_grants"] == 1


def test_callback_with_bad_hmac_is_400(client, db, shopify_sandbox):
    params = follow_authorize(start_auth(client))
    params["hmac"] = "0" * 64
    resp = client.get("/auth/callback?" + urlencode(params))
    assert resp.status_code == 400 and b"signature" in resp.data
    assert resp.mimetype == "text/html"
    assert Shop.select().count() == 0


def test_callback_with_tampered_param_is_400(client, db, shopify_sandbox):
    params = follow_authorize(start_auth(client))
    params["timestamp"] = str(int(params["timestamp"]) + 1)
    assert client.get("/auth/callback?" + urlencode(params)).status_code == 400
    assert Shop.select().count() == 0


def test_callback_with_a_state_this_browser_did_not_start_is_403(client, db, shopify_sandbox):
    params = follow_authorize(start_auth(client))
    params["state"] = "not-a-state"
    params["hmac"] = query_hmac(params, DEV_SHOPIFY_API_SECRET)  # correctly signed, but not this browser's nonce
    resp = client.get("/auth/callback?" + urlencode(params))
    assert resp.status_code == 403 and resp.mimetype == "text/html" and b"another browser" in resp.data
    assert Shop.select().count() == 0 and shopify_sandbox.stats["code_grants"] == 0


def test_reused_state_is_refused(client, db, shopify_sandbox):
    params = follow_authorize(start_auth(client))
    assert client.get("/auth/callback?" + urlencode(params)).status_code == 302
    again = client.get("/auth/callback?" + urlencode(params))
    assert again.status_code == 403  # the cookie went with the first use
    assert shopify_sandbox.stats["code_grants"] == 1


def test_replayed_cookie_still_meets_the_single_use_state(client, db, shopify_sandbox):
    params = follow_authorize(start_auth(client))
    cookie = client.get_cookie(STATE_COOKIE, path="/auth").value
    assert client.get("/auth/callback?" + urlencode(params)).status_code == 302
    client.set_cookie(STATE_COOKIE, cookie, path="/auth")  # a copied cookie does not make the nonce reusable
    again = client.get("/auth/callback?" + urlencode(params))
    assert again.status_code == 400 and b"expired or was already used" in again.data
    assert shopify_sandbox.stats["code_grants"] == 1


# -- the state is bound to the browser that started the flow (login CSRF) ---------------------------
def set_cookie_header(resp) -> str:
    [header] = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith(f"{STATE_COOKIE}=")]
    return header


def test_auth_sets_a_short_lived_signed_http_only_lax_cookie_with_the_nonce(app, client, db, monkeypatch):
    resp = client.get(f"/auth?shop={SHOP}")
    state = parse_qs(urlparse(resp.headers["Location"]).query)["state"][0]
    header = set_cookie_header(resp)
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes and "secure" not in attributes
    assert "Path=/auth" in header and "SameSite=Lax" in header and "Max-Age=600" in header
    value = client.get_cookie(STATE_COOKIE, path="/auth").value
    assert value != state  # signed, not the bare nonce
    assert URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=STATE_COOKIE_SALT).loads(value) == state

    monkeypatch.setitem(app.config, "APP_URL", "https://ecomflux.example")
    assert "Secure" in set_cookie_header(client.get(f"/auth?shop={SHOP}"))


def test_callback_opened_in_another_browser_is_403_and_installs_nothing(app, client, db, shopify_sandbox, caplog):
    params = follow_authorize(start_auth(client))  # the attacker's own flow...
    victim = app.test_client()  # ...completed in someone else's browser
    with caplog.at_level("WARNING", logger="ecomflux_app.web.install"):
        resp = victim.get("/auth/callback?" + urlencode(params))
    assert resp.status_code == 403 and b"another browser" in resp.data
    assert Shop.select().count() == 0 and shopify_sandbox.stats["code_grants"] == 0
    assert "state cookie missing" in caplog.text
    assert params["state"] not in caplog.text and params["code"] not in caplog.text
    # The browser that started it can still finish: the refused attempt did not burn the nonce.
    assert client.get("/auth/callback?" + urlencode(params)).status_code == 302
    assert Shop.get(Shop.domain == SHOP).status == "active"


def test_callback_with_another_flows_cookie_is_403(client, db, shopify_sandbox):
    mine = follow_authorize(start_auth(client))
    start_auth(client)  # a second start in this browser replaces the cookie
    resp = client.get("/auth/callback?" + urlencode(mine))
    assert resp.status_code == 403 and Shop.select().count() == 0
    assert client.get_cookie(STATE_COOKIE, path="/auth") is not None  # the newer flow can still finish


@pytest.mark.parametrize("forged", ["not-signed", "signed-with-another-key"])
def test_callback_with_a_forged_cookie_is_403_and_clears_it(client, db, shopify_sandbox, forged):
    params = follow_authorize(start_auth(client))
    value = params["state"] if forged == "not-signed" else URLSafeTimedSerializer(
        "another-key", salt=STATE_COOKIE_SALT).dumps(params["state"])
    client.set_cookie(STATE_COOKIE, value, path="/auth")
    resp = client.get("/auth/callback?" + urlencode(params))
    assert resp.status_code == 403 and Shop.select().count() == 0
    assert client.get_cookie(STATE_COOKIE, path="/auth") is None


def test_callback_with_an_expired_cookie_is_403(client, db, shopify_sandbox, monkeypatch):
    from ecomflux_app.web import install

    params = follow_authorize(start_auth(client))
    monkeypatch.setattr(install, "STATE_COOKIE_MAX_AGE", -1)  # any age is now past the limit
    resp = client.get("/auth/callback?" + urlencode(params))
    assert resp.status_code == 403 and Shop.select().count() == 0


def test_successful_callback_clears_the_cookie(client, db, shopify_sandbox):
    params = follow_authorize(start_auth(client))
    resp = client.get("/auth/callback?" + urlencode(params))
    assert resp.status_code == 302 and "Max-Age=0" in set_cookie_header(resp)
    assert client.get_cookie(STATE_COOKIE, path="/auth") is None


def test_state_bound_to_another_shop_is_400(client, db, shopify_sandbox):
    params = follow_authorize(start_auth(client, "first-shop.myshopify.com"))
    params["shop"] = "second-shop.myshopify.com"
    params["hmac"] = query_hmac(params, DEV_SHOPIFY_API_SECRET)
    assert client.get("/auth/callback?" + urlencode(params)).status_code == 400
    assert Shop.select().count() == 0


@pytest.mark.parametrize("shop", ["", "evil.com", "shop.myshopify.com.evil.com", "-bad.myshopify.com",
                                  "a_b.myshopify.com", "https://x.myshopify.com"])
def test_bad_shop_domain_is_400(client, db, shop):
    assert client.get("/auth", query_string={"shop": shop}).status_code == 400
    assert client.get("/auth/callback", query_string={"shop": shop, "code": "x", "state": "y",
                                                      "hmac": "z"}).status_code == 400
    assert OAuthState.select().count() == 0


def test_expired_state_is_refused(app, db):
    nonce = issue_state(SHOP, ttl=timedelta(seconds=-1))
    assert not consume_state(nonce, SHOP)
    fresh = issue_state(SHOP)
    assert consume_state(fresh, SHOP) and not consume_state(fresh, SHOP)


def test_query_hmac_matches_shopify_rules():
    params = {"shop": SHOP, "code": "abc", "timestamp": "1700000000", "state": "s", "host": "aG9zdA"}
    params["hmac"] = query_hmac(params, "secret")
    assert verify_query_hmac(params, ["secret"])
    assert verify_query_hmac(params, ["other", "secret"])  # previous secret during rotation
    assert not verify_query_hmac(params, ["other"])
    assert not verify_query_hmac({**params, "code": "abd"}, ["secret"])
    assert not verify_query_hmac({k: v for k, v in params.items() if k != "hmac"}, ["secret"])
    # Werkzeug-style multi-dicts (lists) verify the same.
    assert verify_query_hmac({k: [v] for k, v in params.items()}, ["secret"])


def test_code_exchange_refused_is_a_clear_400(client, db, shopify_sandbox):
    params = follow_authorize(start_auth(client))
    params["code"] = "wrong-code"
    params["hmac"] = query_hmac(params, DEV_SHOPIFY_API_SECRET)
    resp = client.get("/auth/callback?" + urlencode(params))
    assert resp.status_code == 400 and b"refused the authorization code" in resp.data
    assert Shop.select().count() == 0


def test_query_hmac_formats_array_params_like_shopify():
    import hashlib
    import hmac as hmac_lib

    params = {"shop": [SHOP], "ids[]": ["1", "2"], "timestamp": ["1700000000"]}
    message = f'ids=["1", "2"]&shop={SHOP}&timestamp=1700000000'
    params["hmac"] = [hmac_lib.new(b"secret", message.encode(), hashlib.sha256).hexdigest()]
    assert verify_query_hmac(params, ["secret"])


def test_ensure_installed_installs_once_then_reuses(app, db, shopify_sandbox):
    first = ensure_installed(session_for(app, shopify_sandbox.session_token(SHOP)))
    again = ensure_installed(session_for(app, shopify_sandbox.session_token(SHOP)))
    assert first.id == again.id and again.access_token == first.access_token
    assert shopify_sandbox.stats["token_exchanges"] == 1
    Shop.update(status="uninstalled", access_token=None).where(Shop.id == first.id).execute()
    back = ensure_installed(session_for(app, shopify_sandbox.session_token(SHOP)))
    assert back.status == "active" and shopify_sandbox.stats["token_exchanges"] == 2


def test_auth_inside_the_admin_iframe_breaks_out_to_the_top_window(app, client, db, shopify_sandbox):
    resp = client.get(f"/auth?shop={SHOP}&embedded=1")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert b"window.open(" in resp.data and b"_top" in resp.data
    # The frame only restarts /auth at the top, where the state cookie is first-party and kept.
    top = f"{app.config['APP_URL']}/auth?{urlencode({'shop': SHOP})}"
    assert f'window.open("{top}", \'_top\')'.encode() in resp.data
    assert OAuthState.select().count() == 0 and client.get_cookie(STATE_COOKIE, path="/auth") is None
    params = follow_authorize(start_auth(client))
    assert client.get("/auth/callback?" + urlencode(params)).status_code == 302
    assert Shop.get(Shop.domain == SHOP).status == "active"


def test_code_grant_over_a_shop_we_still_think_active_counts_as_a_new_install(app, client, db, shopify_sandbox):
    first = install_via_token_exchange(session_for(app, shopify_sandbox.session_token(SHOP)))
    shopify_sandbox.revoke(SHOP)  # uninstalled at Shopify; its webhook has not come yet
    params = follow_authorize(start_auth(client))
    assert client.get("/auth/callback?" + urlencode(params)).status_code == 302
    again = Shop.get(Shop.domain == SHOP)
    assert again.installed_at > first.installed_at and again.access_token != first.access_token
