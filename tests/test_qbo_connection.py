"""QuickBooks connection: OAuth through the Intuit sandbox, rotating tokens under concurrency, errors, limits."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from ecomflux_app.models import QboConnection, utcnow
from ecomflux_app.quickbooks import errors
from ecomflux_app.quickbooks.client import QboClient
from ecomflux_app.quickbooks.keepalive import keep_connections_alive
from ecomflux_app.quickbooks.limiter import RealmLimiter
from ecomflux_app.quickbooks.tokens import fresh_access_token
from ecomflux_app.work_results import WaitingForReconnect
from tests.fixtures_flow import connect_shop_to_company

SHOP = "qbo-shop.myshopify.com"


def bearer(shopify_sandbox, shop=SHOP) -> dict:
    return {"Authorization": f"Bearer {shopify_sandbox.session_token(shop)}"}


def consent(authorize_url: str, decision: str = "approve", realm: str | None = None) -> dict:
    """Play the admin at Intuit's consent page; returns the callback query Intuit redirects to."""
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200 and "Connect EcomFlux to QuickBooks" in page.text
    params = parse_qs(urlparse(authorize_url).query)
    form = {"redirect_uri": params["redirect_uri"][0], "state": params["state"][0], "decision": decision}
    if realm:
        form["realm"] = realm
    base = authorize_url.split("/connect/oauth2")[0]
    answer = requests.post(f"{base}/connect/oauth2/decide", data=form, allow_redirects=False, timeout=10)
    location = answer.headers["Location"]
    assert location.startswith(params["redirect_uri"][0])
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


@pytest.fixture
def shop(install_shop):
    return install_shop(SHOP)


def follow_start(client, start_url: str) -> str:
    """Open the page's connect link in this browser (the test client): it sets the state cookie and
    answers with a redirect to Intuit's consent page, whose URL is returned."""
    parts = urlparse(start_url)
    if parts.path != "/qbo/start":
        return start_url  # already Intuit's URL (how the flow worked before it was bound to a browser)
    resp = client.get(f"{parts.path}?{parts.query}")
    assert resp.status_code == 302, resp.data
    return resp.headers["Location"]


def connect(client, shopify_sandbox, realm, **api_args) -> dict:
    resp = client.post("/api/qbo/connect", headers=bearer(shopify_sandbox), json=api_args)
    assert resp.status_code == 200, resp.data
    return consent(follow_start(client, resp.get_json()["authorize_url"]), realm=realm)


def test_connect_stores_realm_encrypted_tokens_and_company(client, db, shop, shopify_sandbox, intuit_sandbox):
    realm = intuit_sandbox.create_company(name="Maple & Co Books", country="US")
    query = connect(client, shopify_sandbox, realm)
    resp = client.get("/qbo/callback", query_string=query)
    assert resp.status_code == 200 and b"Connected to Maple &amp; Co Books" in resp.data
    conn = QboConnection.get()
    assert (conn.status, conn.realm_id, conn.company_name, conn.company_country) == (
        "connected", realm, "Maple & Co Books", "US")
    raw = db.execute_sql("SELECT access_token, refresh_token FROM qboconnection").fetchone()
    assert all(v.startswith("gAAAAA") for v in raw) and conn.access_token not in raw
    status = client.get("/api/status", headers=bearer(shopify_sandbox)).get_json()
    assert status["qbo"]["company_name"] == "Maple & Co Books" and status["qbo"]["state"] == "connected"


def test_denied_consent_and_reused_state(client, db, shop, shopify_sandbox, intuit_sandbox):
    realm = intuit_sandbox.create_company()
    query = connect(client, shopify_sandbox, realm)
    cookie = client.get_cookie("ecomflux_qbo_oauth", path="/qbo").value
    denied = dict(query)
    denied.pop("code")
    denied.pop("realmId")
    denied["error"] = "access_denied"
    resp = client.get("/qbo/callback", query_string=denied)
    assert resp.status_code == 400 and b"declined" in resp.data and b"qbo_error=access_denied" in resp.data
    assert QboConnection.select().count() == 0
    # The denial spent the browser's cookie, and the state too: even with a copy of the cookie put
    # back, replaying the approval is refused.
    assert client.get_cookie("ecomflux_qbo_oauth", path="/qbo") is None
    assert client.get("/qbo/callback", query_string=query).status_code == 403
    client.set_cookie("ecomflux_qbo_oauth", cookie, path="/qbo")
    resp = client.get("/qbo/callback", query_string=query)
    assert resp.status_code == 400 and b"not valid any more" in resp.data
    assert client.get("/qbo/callback", query_string={"code": "x", "state": "forged", "realmId": realm}).status_code == 403
    assert QboConnection.select().count() == 0


def test_callback_completed_in_another_browser_is_refused_and_connects_nothing(app, client, db, shop, shopify_sandbox,
                                                                             intuit_sandbox):
    """Issue 16.5: shop B's link, approved and followed in a browser with no cookies, must not connect."""
    realm = intuit_sandbox.create_company(name="Someone Else's Books")
    query = connect(client, shopify_sandbox, realm)  # started (and approved at Intuit) in browser A
    other = app.test_client()  # browser B: no cookies
    resp = other.get("/qbo/callback", query_string=query)
    assert resp.status_code == 403
    assert b"started in another browser" in resp.data and b"Nothing was connected" in resp.data
    assert QboConnection.select().count() == 0
    assert intuit_sandbox.state.refresh == {}  # the code was not even exchanged
    # The browser that began the flow can still finish it.
    resp = client.get("/qbo/callback", query_string=query)
    assert resp.status_code == 200 and QboConnection.get().realm_id == realm


def test_intuit_link_approved_in_another_browser_is_refused(app, client, db, shop, shopify_sandbox, intuit_sandbox):
    realm = intuit_sandbox.create_company()
    resp = client.post("/api/qbo/connect", headers=bearer(shopify_sandbox), json={})
    intuit_url = follow_start(client, resp.get_json()["authorize_url"])  # browser A is sent to Intuit...
    query = consent(intuit_url, realm=realm)  # ...but the consent link is approved elsewhere
    other = app.test_client()
    assert other.get("/qbo/callback", query_string=query).status_code == 403
    # A cookie for another flow (browser B started its own) does not fit this state either.
    mine = other.post("/api/qbo/connect", headers=bearer(shopify_sandbox), json={}).get_json()["authorize_url"]
    follow_start(other, mine)
    assert other.get("/qbo/callback", query_string=query).status_code == 403
    assert QboConnection.select().count() == 0


def test_start_link_is_single_use(app, client, db, shop, shopify_sandbox, intuit_sandbox):
    realm = intuit_sandbox.create_company()
    start_url = client.post("/api/qbo/connect", headers=bearer(shopify_sandbox), json={}).get_json()["authorize_url"]
    parts = urlparse(start_url)
    assert parts.path == "/qbo/start" and start_url.startswith(app.config["APP_URL"])
    intuit_url = follow_start(client, start_url)
    assert intuit_url.startswith(intuit_sandbox.url) and "state=" in intuit_url
    # A copy of the start link opened later, in another browser, is dead: no cookie, no state.
    other = app.test_client()
    resp = other.get(f"{parts.path}?{parts.query}")
    assert resp.status_code == 400 and b"already used or has expired" in resp.data
    assert other.get_cookie("ecomflux_qbo_oauth", path="/qbo") is None
    assert client.get("/qbo/callback", query_string=consent(intuit_url, realm=realm)).status_code == 200


def test_start_link_cookie_is_first_party_signed_and_scoped(app, client, db, shop, shopify_sandbox, intuit_sandbox):
    from itsdangerous import URLSafeTimedSerializer

    start_url = client.post("/api/qbo/connect", headers=bearer(shopify_sandbox), json={}).get_json()["authorize_url"]
    parts = urlparse(start_url)
    resp = client.get(f"{parts.path}?{parts.query}")
    [header] = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("ecomflux_qbo_oauth=")]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/qbo" in header and "Max-Age=900" in header
    state = parse_qs(urlparse(resp.headers["Location"]).query)["state"][0]
    value = client.get_cookie("ecomflux_qbo_oauth", path="/qbo").value
    assert URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="ecomflux.qbo-oauth-state").loads(value) == state
    # A cookie signed with another key (or for the Shopify install) is not accepted.
    client.set_cookie("ecomflux_qbo_oauth", URLSafeTimedSerializer("another-key", salt="ecomflux.qbo-oauth-state")
                      .dumps(state), path="/qbo")
    query = consent(resp.headers["Location"], realm=intuit_sandbox.create_company())
    assert client.get("/qbo/callback", query_string=query).status_code == 403
    assert QboConnection.select().count() == 0


def test_linking_a_different_company_needs_confirmation(client, db, shop, shopify_sandbox, intuit_sandbox):
    first, second = intuit_sandbox.create_company(name="First"), intuit_sandbox.create_company(name="Second")
    client.get("/qbo/callback", query_string=connect(client, shopify_sandbox, first))
    resp = client.get("/qbo/callback", query_string=connect(client, shopify_sandbox, second))
    assert resp.status_code == 400 and b"different_company" in resp.data
    assert QboConnection.get().realm_id == first
    resp = client.get("/qbo/callback", query_string=connect(client, shopify_sandbox, second, replace=True))
    assert resp.status_code == 200 and QboConnection.get().realm_id == second


def test_concurrent_workers_refresh_rotating_tokens_without_invalid_grant(client, db, shop, shopify_sandbox,
                                                                         intuit_sandbox):
    realm = intuit_sandbox.create_company()
    client.get("/qbo/callback", query_string=connect(client, shopify_sandbox, realm))
    intuit_sandbox.set_token_lifetimes(access_ttl=1, rotate=True)
    errors_seen = []

    def worker():
        from ecomflux_app.db import database

        try:
            with database.connection_context():
                for _ in range(3):
                    conn = QboConnection.get()
                    # Force every worker to refresh past the token it holds, as after a 401.
                    fresh_access_token(conn, rejected=conn.access_token)
                    QboClient(conn).company_info()
        except Exception as exc:  # collected: the assertion below names it
            errors_seen.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors_seen == []
    assert intuit_sandbox.state.token_stats["invalid_grant"] == 0
    stored = QboConnection.get()
    assert stored.status == "connected"
    live = [t for t, (r, _, _) in intuit_sandbox.state.refresh.items() if r == realm]
    assert live == [stored.refresh_token]  # the database always holds the newest refresh token


def test_revoked_connection_asks_for_reconnect_and_never_loops(db, connected_shop):
    connected_shop.intuit.revoke_all(connected_shop.realm)
    QboConnection.update(access_token_expires_at=utcnow() - timedelta(minutes=1)).execute()
    with pytest.raises(WaitingForReconnect):
        fresh_access_token(QboConnection.get())
    conn = QboConnection.get()
    assert conn.status == "reconnect_required" and "reconnect" in conn.status_reason.lower()
    refreshes = connected_shop.intuit.state.token_stats["invalid_grant"]
    with pytest.raises(WaitingForReconnect):
        fresh_access_token(QboConnection.get())
    assert connected_shop.intuit.state.token_stats["invalid_grant"] == refreshes  # no second call to Intuit


def test_disconnect_from_page_and_from_intuit(client, db, connected_shop, shopify_sandbox):
    headers = bearer(shopify_sandbox, connected_shop.shop.domain)
    assert client.post("/api/qbo/disconnect", headers=headers).status_code == 200
    conn = QboConnection.get()
    assert (conn.status, conn.access_token, conn.realm_id) == ("not_connected", None, connected_shop.realm)
    assert not [t for t, v in connected_shop.intuit.state.refresh.items() if v[0] == connected_shop.realm]
    connect_shop_to_company(connected_shop.shop, connected_shop.intuit, connected_shop.realm)
    # Intuit's Disconnect URL is an unsigned redirect: while Intuit still honours our tokens it changes nothing.
    resp = client.get("/qbo/disconnected", query_string={"realmId": connected_shop.realm})
    assert resp.status_code == 200 and QboConnection.get().status == "connected"
    connected_shop.intuit.revoke_all(connected_shop.realm)  # the user really disconnected inside QuickBooks
    resp = client.get("/qbo/disconnected", query_string={"realmId": connected_shop.realm})
    assert resp.status_code == 200 and QboConnection.get().status == "not_connected"


def test_error_mapping_keeps_qbo_details(db, connected_shop):
    client = QboClient(QboConnection.get())
    realm = connected_shop.realm
    connected_shop.intuit.inject_fault(realm, "429-xml")
    with pytest.raises(errors.QboThrottled) as throttled:
        client.company_info()
    assert throttled.value.code == "3001" and throttled.value.intuit_tid
    assert client.limiter.conn.pttl(f"ecomflux:qbo:pause:{realm}") > 50_000  # every worker now waits a minute
    client.limiter.conn.delete(f"ecomflux:qbo:pause:{realm}")
    connected_shop.intuit.inject_fault(realm, "500")
    with pytest.raises(errors.QboTransient):
        client.company_info()
    connected_shop.intuit.put_entity(realm, "Vendor", {"DisplayName": "Taken Name"})
    with pytest.raises(errors.QboDuplicateName) as dup:
        client.create("Customer", {"DisplayName": "Taken Name"}, request_id="rid-dup-1")
    assert dup.value.element == "DisplayName" and "already exists" in dup.value.detail
    customer = client.create("Customer", {"DisplayName": "Fresh"}, request_id="rid-new-1")
    client.update("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "Notes": "a"}, "rid-upd-1")
    with pytest.raises(errors.QboStaleObject):
        client.update("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "Notes": "b"}, "rid-upd-2")
    with pytest.raises(ValueError):
        client.create("Customer", {"DisplayName": "No rid"}, request_id="")


def test_requestid_replay_returns_the_original_document(db, connected_shop):
    client = QboClient(QboConnection.get())
    first = client.create("Customer", {"DisplayName": "Once"}, request_id="rid-once")
    again = client.create("Customer", {"DisplayName": "Once"}, request_id="rid-once")
    assert first["Id"] == again["Id"]
    assert len(connected_shop.intuit.entities(connected_shop.realm, "Customer")) == 1


def test_expired_access_token_is_refreshed_on_401(db, connected_shop):
    conn = QboConnection.get()
    version = conn.token_version
    connected_shop.intuit.state.access.pop(conn.access_token)  # Intuit forgot it: next call gets a 401
    assert QboClient(conn).company_info()["CompanyName"]
    assert QboConnection.get().token_version == version + 1


def test_limiter_caps_rate_and_concurrency(redis_conn):
    limiter = RealmLimiter(redis_conn, per_minute=5, concurrent=2)
    held = [limiter.acquire("r1", max_wait=0), limiter.acquire("r1", max_wait=0)]
    with pytest.raises(errors.RealmBusy):
        limiter.acquire("r1", max_wait=0)  # third concurrent request
    for token in held:
        limiter.release("r1", token)
    for _ in range(3):
        limiter.release("r1", limiter.acquire("r1", max_wait=0))
    with pytest.raises(errors.RealmBusy) as busy:
        limiter.acquire("r1", max_wait=0)  # sixth request inside the minute
    assert 1 <= busy.value.retry_after <= 60
    limiter.release("r2", limiter.acquire("r2", max_wait=0))  # other realms are unaffected


def test_keepalive_refreshes_idle_connections_and_warns_before_hard_expiry(db, connected_shop):
    QboConnection.update(last_refresh_at=utcnow() - timedelta(days=3),
                         refresh_token_hard_expires_at=utcnow() + timedelta(days=10)).execute()
    old = QboConnection.get().refresh_token
    result = keep_connections_alive()
    conn = QboConnection.get()
    assert result["refreshed"] == 1 and conn.refresh_token != old
    assert result["warned"] == 1 and "reconnect before then" in conn.status_reason


def test_tokens_never_reach_the_logs(client, db, shop, shopify_sandbox, intuit_sandbox, caplog):
    realm = intuit_sandbox.create_company()
    with caplog.at_level(logging.DEBUG):
        client.get("/qbo/callback", query_string=connect(client, shopify_sandbox, realm))
        conn = QboConnection.get()
        intuit_sandbox.revoke_all(realm)
        QboConnection.update(access_token_expires_at=utcnow() - timedelta(minutes=1)).execute()
        with pytest.raises(WaitingForReconnect):
            fresh_access_token(QboConnection.get())
    text = caplog.text
    assert conn.access_token not in text and conn.refresh_token not in text


def test_expired_state_is_refused(client, db, shop, shopify_sandbox, intuit_sandbox):
    from ecomflux_app.models import OAuthState

    query = connect(client, shopify_sandbox, intuit_sandbox.create_company())
    OAuthState.update(expires_at=utcnow() - timedelta(seconds=1)).where(OAuthState.nonce == query["state"]).execute()
    resp = client.get("/qbo/callback", query_string=query)
    assert resp.status_code == 400 and b"not valid any more" in resp.data
    assert QboConnection.select().count() == 0


def _calls_in_threads(count: int, threads: int) -> tuple[int, int, list]:
    """company_info from `threads` workers, `count` calls in all: (succeeded, RealmBusy, other errors)."""
    from ecomflux_app.db import database

    lock, tally, left = threading.Lock(), {"ok": 0, "busy": 0, "other": []}, [count]

    def worker():
        with database.connection_context():
            client = QboClient(QboConnection.get())
            while True:
                with lock:
                    if not left[0]:
                        return
                    left[0] -= 1
                try:
                    client.company_info()
                    outcome = "ok"
                except errors.RealmBusy:
                    outcome = "busy"
                except Exception as exc:  # collected: the caller's assertion names it
                    outcome = exc
                with lock:
                    if isinstance(outcome, str):
                        tally[outcome] += 1
                    else:
                        tally["other"].append(outcome)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    return tally["ok"], tally["busy"], tally["other"]


def test_sandbox_never_sees_more_than_ten_concurrent_requests(db, connected_shop):
    intuit = connected_shop.intuit
    intuit.set_latency(connected_shop.realm, 0.2)
    before = dict(intuit.company(connected_shop.realm).counters)
    ok, busy, other = _calls_in_threads(30, threads=25)
    counters = intuit.company(connected_shop.realm).counters
    # The sandbox answers 429 when an 11th request arrives while ten are in flight.
    assert other == [] and counters["throttled"] == before["throttled"] == 0
    assert ok + busy == 30 and ok >= 10
    assert counters["requests"] - before["requests"] == ok


def test_sandbox_never_sees_more_than_the_minute_budget(db, connected_shop):
    from ecomflux_app.quickbooks.limiter import PER_MINUTE

    intuit = connected_shop.intuit
    before = intuit.company(connected_shop.realm).counters["requests"]
    ok, busy, other = _calls_in_threads(PER_MINUTE + 20, threads=8)
    counters = intuit.company(connected_shop.realm).counters
    assert other == [] and counters["throttled"] == 0
    # Whatever the connect flow already spent counts against the same rolling minute.
    assert counters["requests"] <= PER_MINUTE < 500 and busy >= 20
    assert counters["requests"] - before == ok


def test_each_refresh_token_keeps_its_own_expiries_and_the_page_warns_ahead(client, db, shop, shopify_sandbox,
                                                                           intuit_sandbox):
    """Issue 21.5: Intuit's rolling and 5-year hard expiry are stored from each token answer; /api/status warns."""
    realm = intuit_sandbox.create_company(name="Aging Books")
    assert client.get("/qbo/callback", query_string=connect(client, shopify_sandbox, realm)).status_code == 200
    conn = QboConnection.get()
    now = utcnow()
    assert timedelta(days=99, hours=23) < conn.refresh_token_expires_at - now <= timedelta(days=100)
    assert timedelta(days=5 * 365 - 1) < conn.refresh_token_hard_expires_at - now <= timedelta(days=5 * 365)
    status = client.get("/api/status", headers=bearer(shopify_sandbox)).get_json()["qbo"]
    authorization = status["authorization"]
    assert authorization["ends_by"] == "rolling" and authorization["warning"] is None
    assert authorization["reconnect_url"].endswith(f"/qbo/reconnect?shop={SHOP}")

    intuit_sandbox.state.set_hard_deadline(realm, 20 * 86400 + 3600)  # approved almost five years ago
    fresh_access_token(conn, rejected=conn.access_token)  # the next refresh brings Intuit's new figures
    conn = QboConnection.get()
    assert timedelta(days=20) < conn.refresh_token_hard_expires_at - utcnow() <= timedelta(days=20, hours=1)
    assert conn.refresh_token_expires_at <= conn.refresh_token_hard_expires_at
    authorization = client.get("/api/status", headers=bearer(shopify_sandbox)).get_json()["qbo"]["authorization"]
    assert authorization["ends_by"] == "hard" and authorization["days_left"] == 20
    assert "ends on" in authorization["warning"] and "reconnect before then" in authorization["warning"]

    # Reconnecting is a new authorization: a new five years, and the warning is gone.
    resp = client.get("/qbo/callback", query_string=connect(client, shopify_sandbox, realm))
    assert resp.status_code == 200
    assert QboConnection.get().refresh_token_hard_expires_at - utcnow() > timedelta(days=5 * 365 - 1)
    authorization = client.get("/api/status", headers=bearer(shopify_sandbox)).get_json()["qbo"]["authorization"]
    assert authorization["warning"] is None


def test_support_console_shows_the_authorization_warning(client, db, connected_shop):
    from ecomflux_app.staff import create_staff
    from tests.test_support import PASSWORD, sign_in

    create_staff("op@ecomflux.test", PASSWORD, role="operator")
    sign_in(client, "op@ecomflux.test")
    assert "authorization-warning" not in client.get("/support/health").get_data(as_text=True)
    QboConnection.update(refresh_token_hard_expires_at=utcnow() + timedelta(days=12, hours=1)).execute()
    page = client.get("/support/health").get_data(as_text=True)
    assert "authorization-warning" in page and "(12 days)" in page and "five years" in page


def test_reconnect_url_sends_the_merchant_into_the_app_for_their_shop(client, db, shop):
    resp = client.get("/qbo/reconnect", query_string={"shop": SHOP})
    location = urlparse(resp.headers["Location"])
    assert resp.status_code == 302 and parse_qs(location.query)["qbo"] == ["reconnect"]
    assert location.netloc == "admin.shopify.com" and location.path.startswith("/store/qbo-shop/apps/")
    assert client.get("/qbo/reconnect", query_string={"shop": "qbo-shop"}).headers["Location"] == \
        resp.headers["Location"]  # the store's short name is enough
    # Intuit's portal link names no shop, and a realmId is never turned into one (no shop lookup by company).
    page = client.get("/qbo/reconnect", query_string={"realmId": "9130350000000001"})
    assert page.status_code == 200 and b'name="shop"' in page.data and b"qbo-shop" not in page.data
    bad = client.get("/qbo/reconnect", query_string={"shop": "https://evil.example/x"})
    assert bad.status_code == 400 and b'role="alert"' in bad.data and "Location" not in bad.headers


def test_disconnect_url_answers_every_realm_without_revealing_or_changing_anything(client, db, connected_shop):
    for realm in ("", "123", "' OR 1=1 --"):
        resp = client.get("/qbo/disconnected", query_string={"realmId": realm} if realm else {})
        assert resp.status_code == 200 and b"was not connected to this QuickBooks company" in resp.data
    assert QboConnection.get().status == "connected"
