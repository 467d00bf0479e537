"""The dev sandboxes keep their data in instance/ across restarts: companies, documents, shops, orders, tokens."""

from __future__ import annotations

import base64

from ecomflux_app.config import (DEV_INTUIT_CLIENT_ID, DEV_INTUIT_CLIENT_SECRET, DEV_SHOPIFY_API_KEY,
                                 DEV_SHOPIFY_API_SECRET)
from ecomflux_app.sandbox.intuit_server import create_intuit_sandbox
from ecomflux_app.sandbox.persistence import persist_intuit, persist_shopify
from ecomflux_app.sandbox.shopify_server import create_shopify_sandbox
from tests.fixtures_flow import simple_order

BASIC = "Basic " + base64.b64encode(f"{DEV_INTUIT_CLIENT_ID}:{DEV_INTUIT_CLIENT_SECRET}".encode()).decode()


def _intuit():
    return create_intuit_sandbox(DEV_INTUIT_CLIENT_ID, DEV_INTUIT_CLIENT_SECRET)


def test_a_restarted_intuit_sandbox_knows_the_company_its_documents_and_the_rotated_tokens(tmp_path):
    path = tmp_path / "instance" / "sandbox-intuit.state"
    first = _intuit()
    keeper = persist_intuit(first, path)
    realm = first.sandbox.create_company(name="Demo Goods LLC")
    issued = first.sandbox.issue_tokens(realm)
    # Over HTTP, as the app does: a rotated refresh token and a document, saved after the request.
    web = first.test_client()
    rotated = web.post("/oauth2/v1/tokens/bearer", headers={"Authorization": BASIC},
                       data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}).get_json()
    auth = {"Authorization": f"Bearer {rotated['access_token']}"}
    customer = web.post(f"/v3/company/{realm}/customer?minorversion=75&requestid=c1", headers=auth,
                        json={"DisplayName": "Ann Lee"}).get_json()["Customer"]
    keeper.close()  # `make dev` stopped

    second = _intuit()
    persist_intuit(second, path).close()
    web = second.test_client()
    read = web.get(f"/v3/company/{realm}/customer/{customer['Id']}?minorversion=75", headers=auth)
    assert read.status_code == 200 and read.get_json()["Customer"]["DisplayName"] == "Ann Lee"
    again = web.post("/oauth2/v1/tokens/bearer", headers={"Authorization": BASIC},
                     data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]})
    assert again.status_code == 200
    dead = web.post("/oauth2/v1/tokens/bearer", headers={"Authorization": BASIC},
                    data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]})
    assert dead.status_code == 400  # the value rotated away before the restart stays dead
    assert second.sandbox.companies[realm].in_flight == 0


def test_a_restarted_shopify_sandbox_knows_the_shop_its_orders_and_its_tokens(tmp_path):
    path = tmp_path / "sandbox-shopify.state"
    first = create_shopify_sandbox(DEV_SHOPIFY_API_KEY, DEV_SHOPIFY_API_SECRET)
    keeper = persist_shopify(first, path)
    first.sandbox.ensure_shop("demo-shop.myshopify.com", name="Demo Shop")
    first.sandbox.put_order("demo-shop.myshopify.com", simple_order())
    token = first.sandbox._issue("demo-shop.myshopify.com", "read_orders", expiring=True)["access_token"]
    keeper.close()

    second = create_shopify_sandbox(DEV_SHOPIFY_API_KEY, DEV_SHOPIFY_API_SECRET)
    persist_shopify(second, path).close()
    assert second.sandbox.token_shop(token) == "demo-shop.myshopify.com"
    assert len(second.sandbox.shops["demo-shop.myshopify.com"].orders) == 1


def test_an_unreadable_state_file_starts_the_sandbox_empty(tmp_path):
    path = tmp_path / "sandbox-intuit.state"
    path.write_bytes(b"not a pickle")
    app = _intuit()
    persist_intuit(app, path).close()
    assert app.sandbox.companies == {}
