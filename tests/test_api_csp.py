"""Every HTML response carries a frame-ancestors CSP; embedded pages name the verified shop only."""

from __future__ import annotations

from tests.api_fixtures import SHOP_A, SHOP_B, two_shops  # noqa: F401

EXPECTED_A = f"frame-ancestors https://{SHOP_A} https://admin.shopify.com;"


def _html_responses(client, shopify_sandbox):
    """The embedded page in each of its states, plus every argument-free GET route of the app."""
    good = shopify_sandbox.session_token(SHOP_A)
    yield "page", client.get("/", query_string={"shop": SHOP_A, "host": "aG9zdA", "id_token": good})
    yield "bounce", client.get("/", query_string={"shop": SHOP_A, "host": "aG9zdA"})
    yield "expired", client.get("/", query_string={
        "shop": SHOP_A, "id_token": shopify_sandbox.session_token(SHOP_A, expires_in=60, issued_offset=-120)})
    yield "landing", client.get("/")
    rules = [r for r in client.application.url_map.iter_rules()
             if "GET" in r.methods and not r.arguments and not r.rule.startswith("/static")]
    for rule in rules:
        yield rule.rule, client.get(rule.rule, query_string={"shop": SHOP_A})


def test_every_html_response_has_frame_ancestors(client, two_shops, shopify_sandbox):  # noqa: F811
    html = 0
    for name, resp in _html_responses(client, shopify_sandbox):
        if resp.mimetype != "text/html":
            continue
        html += 1
        csp = resp.headers.get("Content-Security-Policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert "frame-ancestors" in directives, f"{name}: {csp!r}"
        sources = directives["frame-ancestors"]
        # Only Shopify admin origins (or nobody) may frame us.
        assert all(s in ("'none'", "https://admin.shopify.com") or s.endswith(".myshopify.com") for s in sources), name
    assert html >= 4


def test_embedded_page_csp_names_the_token_shop(client, two_shops, shopify_sandbox):  # noqa: F811
    resp = client.get("/", query_string={"shop": SHOP_A, "id_token": shopify_sandbox.session_token(SHOP_A)})
    assert resp.headers["Content-Security-Policy"] == EXPECTED_A
    # The token decides, not the query string: B's page is refused and B is never allowed to frame.
    other = client.get("/", query_string={"shop": SHOP_B, "id_token": shopify_sandbox.session_token(SHOP_A)})
    assert SHOP_B not in other.headers["Content-Security-Policy"]


def test_api_json_is_not_given_an_html_csp_but_is_nosniff(client, two_shops, shopify_sandbox):  # noqa: F811
    resp = client.get("/api/status", headers={"Authorization": f"Bearer {shopify_sandbox.session_token(SHOP_A)}"})
    assert resp.is_json and resp.headers["X-Content-Type-Options"] == "nosniff"


def test_error_pages_carry_the_csp_too(client):
    resp = client.get("/no-such-page")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert resp.headers["Content-Security-Policy"].startswith("frame-ancestors ")
