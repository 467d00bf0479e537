"""Bad parameters never cost a 500: every route in app.url_map, fed hostile path, query, form and JSON values.

The embedded API answers JSON 400/404; the support console answers its own 400/404 page.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecomflux_app.models import Shop, WebhookDelivery
from ecomflux_app.staff import create_staff
from tests.api_fixtures import bearer, connect_qbo  # noqa: F401 - fixtures

SHOP = "params-shop.myshopify.com"
PASSWORD = "correct horse battery"

# Every query, form and JSON field a view reads (grep request.args / request.form / get_json in web/).
QUERY_NAMES = ["page", "per_page", "status", "q", "shop", "topic", "since", "until", "before", "refresh", "host",
               "embedded", "state", "code", "hmac", "realmId", "error", "next", "timestamp"]
JSON_NAMES = ["since", "start", "end", "sample_week", "document_type", "order", "overrides", "order_id"]

HUGE_INTS = ["2147483648", "9223372036854775807", "9223372036854775808", "18446744073709551616", "9" * 40,
             "-9223372036854775809", "1e309", "0x10", "1_000"]
ODD_DATES = ["9999-12-31", "0001-01-01", "10000-01-01", "2026-02-30", "2026-13-01", "-0001-01-01",
             "9999-12-31T23:59:59", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-20"]
RAW_ENCODED = ["%00", "%FF", "%ED%A0%80", "a%00b", "%C0%AF", "%E2%80%AE"]  # NUL, bad UTF-8, a surrogate


def _quoted(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


values = st.one_of(
    st.sampled_from(HUGE_INTS + ODD_DATES),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=12).map(_quoted),
    st.sampled_from(RAW_ENCODED),
)
json_values = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
                        st.sampled_from(HUGE_INTS + ODD_DATES), st.text(max_size=12), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.sampled_from(JSON_NAMES), st.sampled_from(ODD_DATES), max_size=2))


def _rules(app):
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "support.logout") or rule.rule.startswith("/webhooks"):
            # Static files are Flask's; webhooks have their own poison tests (test_web_server.py);
            # sign-out takes no parameter and would end the session the other routes need.
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            rules.append((method, rule))
    return sorted(rules, key=lambda mr: (mr[1].rule, mr[0]))


@st.composite
def requests_for(draw, rules):
    method, rule = draw(st.sampled_from(rules))
    path = _fill(rule, draw(values)) if rule.arguments else rule.rule
    query = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), values, max_size=4))
    body = draw(st.dictionaries(st.sampled_from(JSON_NAMES), json_values, max_size=3))
    return method, path, "&".join(f"{k}={v}" for k, v in query.items()), body


@pytest.fixture
def signed_in(app, db, client, install_shop, bearer):
    """An installed, connected shop with a session token, an operator signed in to the console, one delivery."""
    from tests.test_support import csrf

    shop = install_shop(SHOP)
    connect_qbo(shop)
    WebhookDelivery.create(webhook_id="w1", topic="orders/fulfilled", shop_domain=SHOP, shop=shop, body="{}",
                           status="failed", order_id="1", order_name="#1")
    create_staff("op@ecomflux.test", PASSWORD, role="operator")
    client.post("/support/login", data={"email": "op@ecomflux.test", "password": PASSWORD, "csrf_token": csrf(client)})
    return client, bearer(SHOP), csrf(client, "/support/webhooks")


def test_routes_are_enumerated_from_the_url_map(app):
    """The guard covers what the app serves: the API, the console, the install and QuickBooks routes."""
    served = {rule.rule for _, rule in _rules(app)}
    assert {"/api/orders/<order_id>/retry", "/support/webhooks/<id:delivery_id>", "/support/webhooks",
            "/api/reconciliation/<id:run_id>", "/qbo/callback", "/auth/callback", "/support/audit"} <= served


def _check(client, auth: dict, token: str, method: str, path: str, query: str, body: dict) -> None:
    """One request: never a 500; an /api error is JSON; a console 400/404 is the console's own page."""
    url = f"{path}?{query}" if query else path
    headers = dict(auth)
    kwargs = {}
    if method in ("POST", "PUT"):
        if path.startswith("/support"):
            kwargs["data"] = {**{k: str(v) for k, v in body.items()}, "csrf_token": token}
        else:
            kwargs["data"], headers["Content-Type"] = json.dumps(body), "application/json"
    resp = client.open(url, method=method, headers=headers, **kwargs)
    # 502/503 are deliberate answers about QuickBooks or Redis (this shop's company has no tokens).
    assert resp.status_code not in (500, 501), (method, url, body, resp.status_code, resp.get_data(as_text=True)[:300])
    if path.startswith("/api/") and resp.status_code >= 400:
        assert resp.is_json and "error" in resp.get_json(), (method, url, resp.get_data(as_text=True)[:200])
    if path.startswith("/support/") and resp.status_code in (400, 404):
        html = resp.get_data(as_text=True)
        assert "Back to the webhook log" in html, (method, url, html[:200])


def _fill(rule, value: str) -> str:
    path = rule.rule
    for name in rule.arguments:
        path = re.sub(rf"<[^>]*:?{name}>", value, path, count=1)
    return path


def test_every_route_takes_every_odd_value_in_every_parameter(app, signed_in):
    """The sweep: each odd value in every path, query, form and JSON parameter of each route at once."""
    client, auth, token = signed_in
    for method, rule in _rules(app):
        for value in HUGE_INTS + ODD_DATES + RAW_ENCODED + ["abc", "-1", "0"]:
            query = "&".join(f"{name}={value}" for name in QUERY_NAMES)
            _check(client, auth, token, method, _fill(rule, value), query, {name: value for name in JSON_NAMES})
    assert Shop.select().count() == 1


def test_no_parameter_makes_a_server_error(app, signed_in):
    """The property: any mix of hostile values in any route's parameters."""
    client, auth, token = signed_in
    rules = _rules(app)

    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(requests_for(rules))
    def check(request):
        _check(client, auth, token, *request)

    check()
