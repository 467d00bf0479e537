"""The Intuit/QBO stand-in spoken to over HTTP, as the product and intuit-oauth speak to Intuit.

These pin the protocol details the rest of the suite relies on: OAuth 2.0 with Basic client
authentication, single-use codes, rotating refresh tokens, QBO's Fault format (code, Message,
Detail, element), intuit_tid, minorversion, requestid replay and throttling.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from ecomflux_app.config import DEV_INTUIT_CLIENT_ID, DEV_INTUIT_CLIENT_SECRET
from ecomflux_app.sandbox.intuit_server import MIN_MINOR_VERSION, PER_MINUTE

REDIRECT = "http://127.0.0.1:9/qbo/callback"
CLIENT = (DEV_INTUIT_CLIENT_ID, DEV_INTUIT_CLIENT_SECRET)


@pytest.fixture
def realm(intuit_sandbox):
    return intuit_sandbox.create_company(name="Protocol Co", country="US")


def token_url(sandbox) -> str:
    return requests.get(f"{sandbox.url}/.well-known/openid_configuration", timeout=5).json()["token_endpoint"]


def consent(sandbox, realm: str, state: str = "st-1") -> str:
    """Walk the consent screen and return the authorization code Intuit redirects with."""
    page = requests.get(f"{sandbox.url}/connect/oauth2", timeout=5, params={
        "client_id": DEV_INTUIT_CLIENT_ID, "response_type": "code", "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": REDIRECT, "state": state})
    assert page.status_code == 200 and realm in page.text
    answer = requests.post(f"{sandbox.url}/connect/oauth2/decide", allow_redirects=False, timeout=5,
                           data={"redirect_uri": REDIRECT, "state": state, "realm": realm, "decision": "approve"})
    assert answer.status_code == 302
    query = parse_qs(urlparse(answer.headers["Location"]).query)
    assert query["state"] == [state] and query["realmId"] == [realm]
    return query["code"][0]


def qbo(sandbox, realm: str, method: str, path: str, token: str | None, **kwargs) -> requests.Response:
    params = kwargs.pop("params", {"minorversion": str(MIN_MINOR_VERSION)})
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, f"{sandbox.url}/v3/company/{realm}/{path}", params=params, headers=headers,
                            timeout=10, **kwargs)


def fault(resp: requests.Response) -> dict:
    return resp.json()["Fault"]["Error"][0]


def test_discovery_document_names_every_endpoint_on_the_sandbox(intuit_sandbox):
    doc = requests.get(f"{intuit_sandbox.url}/.well-known/openid_configuration", timeout=5).json()
    for key in ("authorization_endpoint", "token_endpoint", "revocation_endpoint"):
        assert doc[key].startswith(intuit_sandbox.url)
    assert "com.intuit.quickbooks.accounting" in doc["scopes_supported"]


def test_code_grant_needs_client_credentials_and_a_code_used_once_with_its_redirect(intuit_sandbox, realm):
    url = token_url(intuit_sandbox)
    code = consent(intuit_sandbox, realm)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    wrong = requests.post(url, data=form, auth=(DEV_INTUIT_CLIENT_ID, "not-the-secret"), timeout=5)
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})
    elsewhere = requests.post(url, data=dict(form, redirect_uri="http://evil.example/cb"), auth=CLIENT, timeout=5)
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (400, "invalid_grant")
    code = consent(intuit_sandbox, realm)  # the mismatched redirect burnt the first code
    tokens = requests.post(url, data=dict(form, code=code), auth=CLIENT, timeout=5)
    assert tokens.status_code == 200
    body = tokens.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0 and body["x_refresh_token_expires_in"] > 0
    again = requests.post(url, data=dict(form, code=code), auth=CLIENT, timeout=5)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_refresh_rotates_and_the_previous_refresh_token_is_dead(intuit_sandbox, realm):
    url = token_url(intuit_sandbox)
    first = intuit_sandbox.issue_tokens(realm)
    rotated = requests.post(url, auth=CLIENT, timeout=5,
                            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}).json()
    assert rotated["refresh_token"] != first["refresh_token"] and rotated["access_token"] != first["access_token"]
    replayed = requests.post(url, auth=CLIENT, timeout=5,
                             data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")
    assert qbo(intuit_sandbox, realm, "GET", "companyinfo/1", rotated["access_token"]).status_code == 200


def test_revoke_disconnects_the_company(intuit_sandbox, realm):
    tokens = intuit_sandbox.issue_tokens(realm)
    revoke = requests.post(f"{intuit_sandbox.url}/oauth2/v1/tokens/revoke", auth=CLIENT, timeout=5,
                           json={"token": tokens["refresh_token"]})
    assert revoke.status_code == 200
    resp = qbo(intuit_sandbox, realm, "GET", "companyinfo/1", tokens["access_token"])
    assert resp.status_code == 401 and fault(resp)["code"] == "3200"


def test_rest_calls_need_a_bearer_token_and_a_supported_minorversion(intuit_sandbox, realm):
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    anonymous = qbo(intuit_sandbox, realm, "GET", "companyinfo/1", None)
    assert anonymous.status_code == 401 and fault(anonymous)["code"] == "3200"
    assert anonymous.headers["intuit_tid"]
    old = qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token, params={"minorversion": "40"})
    assert old.status_code == 400 and fault(old)["element"] == "minorversion"
    other_realm = intuit_sandbox.create_company(name="Someone else")
    foreign = qbo(intuit_sandbox, other_realm, "GET", "companyinfo/1", token)
    assert foreign.status_code == 401  # a token is good for its own company only


def test_writes_need_a_requestid_and_a_repeat_is_answered_from_the_first_outcome(intuit_sandbox, realm):
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    params = {"minorversion": str(MIN_MINOR_VERSION)}
    body = {"DisplayName": "Ann Lee", "PrimaryEmailAddr": {"Address": "ann@example.com"}}
    missing = qbo(intuit_sandbox, realm, "POST", "customer", token, params=params, json=body)
    assert missing.status_code == 400 and fault(missing)["element"] == "requestid"
    first = qbo(intuit_sandbox, realm, "POST", "customer", token, params=dict(params, requestid="rid-1"), json=body)
    repeat = qbo(intuit_sandbox, realm, "POST", "customer", token, params=dict(params, requestid="rid-1"), json=body)
    assert first.status_code == repeat.status_code == 200
    assert first.json()["Customer"]["Id"] == repeat.json()["Customer"]["Id"]
    assert len(intuit_sandbox.entities(realm, "Customer")) == 1
    clash = qbo(intuit_sandbox, realm, "POST", "customer", token, params=dict(params, requestid="rid-2"), json=body)
    assert clash.status_code == 400
    assert (fault(clash)["code"], fault(clash)["element"]) == ("6240", "DisplayName")
    found = qbo(intuit_sandbox, realm, "GET", "query", token,
                params=dict(params, query="SELECT * FROM Customer WHERE PrimaryEmailAddr = 'ann@example.com'"))
    assert [c["DisplayName"] for c in found.json()["QueryResponse"]["Customer"]] == ["Ann Lee"]


def test_a_document_with_a_missing_reference_names_the_element(intuit_sandbox, realm):
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    resp = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token,
               params={"minorversion": str(MIN_MINOR_VERSION), "requestid": "rid-sr-1"},
               json={"CustomerRef": {"value": "999999"}, "Line": [{"Amount": 10, "DetailType": "SalesItemLineDetail",
                                                                   "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    assert resp.status_code == 400
    error = fault(resp)
    assert (error["code"], error["element"]) == ("2500", "CustomerRef") and error["Message"] == "Invalid Reference Id"


def test_over_the_per_minute_limit_answers_429_with_a_throttle_fault(intuit_sandbox, realm):
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    company = intuit_sandbox.company(realm)
    with intuit_sandbox.state.lock:
        company.window.extend([time.time()] * PER_MINUTE)  # this minute's 500 requests are spent
    resp = qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token)
    assert resp.status_code == 429 and fault(resp)["code"] == "3001" and resp.headers["intuit_tid"]
    assert intuit_sandbox.counters(realm)["throttled"] == 1


def test_an_injected_xml_throttle_fault_comes_as_intuit_sends_it(intuit_sandbox, realm):
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    intuit_sandbox.inject_fault(realm, "429-xml")
    resp = qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token)
    assert resp.status_code == 429 and resp.headers["Content-Type"].startswith("application/xml")
    assert '<Error code="3001">' in resp.text
    assert qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token).status_code == 200  # one fault, then normal
