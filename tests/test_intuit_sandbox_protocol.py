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
from ecomflux_app.sandbox.intuit_server import BATCHES_PER_MINUTE, CONCURRENT, MIN_MINOR_VERSION, PER_MINUTE

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


def test_refresh_token_expiries_rolling_and_hard_as_intuit_answers_them(intuit_sandbox, realm):
    """x_refresh_token_expires_in always; x_refresh_token_hard_expires_in only when the header asks for it.
    The hard deadline is fixed at consent (five years), refreshing never moves it, and the rolling expiry
    never reaches past it; a new consent is a new authorization with a new deadline."""
    url = token_url(intuit_sandbox)
    asks = {"x-include-refresh-token-hard-expires-in": "true"}
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT}
    plain = requests.post(url, data=dict(form, code=consent(intuit_sandbox, realm)), auth=CLIENT, timeout=5).json()
    assert "x_refresh_token_hard_expires_in" not in plain
    assert plain["x_refresh_token_expires_in"] == 100 * 86400
    first = requests.post(url, data=dict(form, code=consent(intuit_sandbox, realm)), auth=CLIENT, headers=asks,
                          timeout=5).json()
    five_years = 5 * 365 * 86400
    assert five_years - 5 <= first["x_refresh_token_hard_expires_in"] <= five_years
    intuit_sandbox.state.set_hard_deadline(realm, 20 * 86400)  # this authorization was approved ~5 years ago
    refreshed = requests.post(url, auth=CLIENT, headers=asks, timeout=5, data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}).json()
    assert 20 * 86400 - 5 <= refreshed["x_refresh_token_hard_expires_in"] <= 20 * 86400
    assert refreshed["x_refresh_token_expires_in"] == refreshed["x_refresh_token_hard_expires_in"]  # capped by it
    without = requests.post(url, auth=CLIENT, timeout=5, data={
        "grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]}).json()
    assert "x_refresh_token_hard_expires_in" not in without and without["x_refresh_token_expires_in"] <= 20 * 86400
    intuit_sandbox.set_token_lifetimes(rotate=False)  # a refresh token that does not rotate still reports both
    try:
        kept = requests.post(url, auth=CLIENT, headers=asks, timeout=5, data={
            "grant_type": "refresh_token", "refresh_token": without["refresh_token"]}).json()
    finally:
        intuit_sandbox.set_token_lifetimes(rotate=True)  # this test has no app fixture: nothing resets it
    assert kept["refresh_token"] == without["refresh_token"] and kept["x_refresh_token_hard_expires_in"] <= 20 * 86400
    again = requests.post(url, data=dict(form, code=consent(intuit_sandbox, realm)), auth=CLIENT, headers=asks,
                          timeout=5).json()
    assert again["x_refresh_token_hard_expires_in"] >= five_years - 5  # a new consent: a new five years


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


def test_the_41st_batch_in_a_minute_answers_429(intuit_sandbox, realm):
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    company = intuit_sandbox.company(realm)
    with intuit_sandbox.state.lock:
        company.batch_window.extend([time.time()] * BATCHES_PER_MINUTE)  # this minute's 40 batches are spent
    body = {"BatchItemRequest": [{"bId": "1", "Query": "SELECT * FROM Customer"}]}
    resp = qbo(intuit_sandbox, realm, "POST", "batch", token,
               params={"minorversion": str(MIN_MINOR_VERSION), "requestid": "rid-b-41"}, json=body)
    assert resp.status_code == 429 and fault(resp)["code"] == "3001"
    assert qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token).status_code == 200  # single calls still go


def test_an_11th_call_in_flight_for_one_company_answers_429(intuit_sandbox, realm):
    """Ten calls held inside QBO at once (from any number of clients): the eleventh is refused."""
    import threading

    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    held = threading.Event()
    intuit_sandbox.inject_fault(realm, "hold", count=CONCURRENT, event=held)
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(
        qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token).status_code)) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while intuit_sandbox.company(realm).in_flight < CONCURRENT and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        resp = qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token)
        assert resp.status_code == 429 and fault(resp)["code"] == "3001"
    finally:
        held.set()
        for thread in threads:
            thread.join(10)
    assert answers == [200] * CONCURRENT


def test_a_batch_that_fails_midway_keeps_what_it_created(intuit_sandbox, realm):
    """QBO works through a batch's items in turn: a 5xx after two items leaves those two created."""
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    intuit_sandbox.inject_fault(realm, "500", endpoint="POST batch", after_items=2)
    body = {"BatchItemRequest": [{"bId": str(n), "operation": "create", "Customer": {"DisplayName": f"Midway {n}"}}
                                 for n in range(5)]}
    resp = qbo(intuit_sandbox, realm, "POST", "batch", token,
               params={"minorversion": str(MIN_MINOR_VERSION), "requestid": "rid-midway"}, json=body)
    assert resp.status_code == 500
    names = {c["DisplayName"] for c in intuit_sandbox.entities(realm, "Customer")}
    assert {"Midway 0", "Midway 1"} <= names and not {"Midway 2", "Midway 3", "Midway 4"} & names


def test_an_injected_xml_throttle_fault_comes_as_intuit_sends_it(intuit_sandbox, realm):
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    intuit_sandbox.inject_fault(realm, "429-xml")
    resp = qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token)
    assert resp.status_code == 429 and resp.headers["Content-Type"].startswith("application/xml")
    assert '<Error code="3001">' in resp.text
    assert qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token).status_code == 200  # one fault, then normal


def write(sandbox, realm: str, token: str, entity: str, body: dict, rid: str) -> requests.Response:
    return qbo(sandbox, realm, "POST", entity.lower(), token,
               params={"minorversion": str(MIN_MINOR_VERSION), "requestid": rid}, json=body)


def query(sandbox, realm: str, token: str, sql: str) -> requests.Response:
    return qbo(sandbox, realm, "GET", "query", token, params={"minorversion": str(MIN_MINOR_VERSION), "query": sql})


def read(sandbox, realm: str, token: str, entity: str, entity_id: str) -> dict:
    return qbo(sandbox, realm, "GET", f"{entity.lower()}/{entity_id}", token).json()[entity]


@pytest.fixture
def open_invoice_and_credit(intuit_sandbox, realm):
    """A token, a 100.00 invoice and a 30.00 credit memo of one customer, and a second customer."""
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    ann = write(intuit_sandbox, realm, token, "Customer", {"DisplayName": "Ann Lee"}, "c-1").json()["Customer"]
    bob = write(intuit_sandbox, realm, token, "Customer", {"DisplayName": "Bob Roe"}, "c-2").json()["Customer"]
    item = query(intuit_sandbox, realm, token, "SELECT * FROM Item WHERE Name = 'Shipping'").json()
    item_id = item["QueryResponse"]["Item"][0]["Id"]

    def doc(entity, customer, amount, rid):
        line = {"Amount": amount, "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": item_id}}}
        resp = write(intuit_sandbox, realm, token, entity, {"CustomerRef": {"value": customer["Id"]}, "Line": [line]},
                     rid)
        assert resp.status_code == 200, resp.text
        return resp.json()[entity]

    return {"token": token, "ann": ann, "bob": bob, "invoice": doc("Invoice", ann, 100, "i-1"),
            "memo": doc("CreditMemo", ann, 30, "m-1"), "bob_memo": doc("CreditMemo", bob, 5, "m-2")}


def credit_application(customer_id: str, invoice_id: str, memo_id: str, invoice_amount, memo_amount, total=0):
    return {"CustomerRef": {"value": customer_id}, "TotalAmt": total, "Line": [
        {"Amount": invoice_amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]},
        {"Amount": memo_amount, "LinkedTxn": [{"TxnId": memo_id, "TxnType": "CreditMemo"}]}]}


def test_a_zero_payment_applies_a_credit_memo_to_an_invoice(intuit_sandbox, realm, open_invoice_and_credit):
    s = open_invoice_and_credit
    assert s["memo"]["RemainingCredit"] == 30
    resp = write(intuit_sandbox, realm, s["token"], "Payment",
                 credit_application(s["ann"]["Id"], s["invoice"]["Id"], s["memo"]["Id"], 30, 30), "p-1")
    assert resp.status_code == 200, resp.text
    payment = resp.json()["Payment"]
    assert (payment["TotalAmt"], payment["UnappliedAmt"]) == (0, 0)
    invoice = read(intuit_sandbox, realm, s["token"], "Invoice", s["invoice"]["Id"])
    memo = read(intuit_sandbox, realm, s["token"], "CreditMemo", s["memo"]["Id"])
    assert (invoice["TotalAmt"], invoice["Balance"]) == (100, 70)
    assert (memo["TotalAmt"], memo["RemainingCredit"]) == (30, 0)
    assert {"TxnId": payment["Id"], "TxnType": "Payment"} in invoice["LinkedTxn"]
    again = write(intuit_sandbox, realm, s["token"], "Payment",
                  credit_application(s["ann"]["Id"], s["invoice"]["Id"], s["memo"]["Id"], 1, 1), "p-2")
    assert again.status_code == 400 and fault(again)["code"] == "6000"  # no credit left on the memo
    assert "credit remaining" in fault(again)["Detail"]
    deleted = qbo(intuit_sandbox, realm, "POST", "payment", s["token"], json={"Id": payment["Id"], "SyncToken": "0"},
                  params={"minorversion": str(MIN_MINOR_VERSION), "requestid": "p-del", "operation": "delete"})
    assert deleted.status_code == 200  # deleting the application reopens the invoice and the credit
    assert read(intuit_sandbox, realm, s["token"], "Invoice", s["invoice"]["Id"])["Balance"] == 100
    assert read(intuit_sandbox, realm, s["token"], "CreditMemo", s["memo"]["Id"])["RemainingCredit"] == 30


@pytest.mark.parametrize("case, element", [
    ("missing invoice", "Line[0].LinkedTxn"),
    ("another customer's credit", "Line[1].LinkedTxn"),
    ("more than the invoice balance", "Line[0].Amount"),
    ("more than the credit remaining", "Line[1].Amount"),
    ("zero total that does not net to zero", "TotalAmt"),
    ("more applied than paid", "TotalAmt"),
])
def test_an_invalid_payment_is_refused_with_qbo_codes_and_changes_nothing(intuit_sandbox, realm,
                                                                          open_invoice_and_credit, case, element):
    s = open_invoice_and_credit
    ann, invoice, memo = s["ann"]["Id"], s["invoice"]["Id"], s["memo"]["Id"]
    body = {
        "missing invoice": credit_application(ann, "999999", memo, 10, 10),
        "another customer's credit": credit_application(ann, invoice, s["bob_memo"]["Id"], 5, 5),
        "more than the invoice balance": credit_application(ann, invoice, memo, "100.01", 30, total="70.01"),
        "more than the credit remaining": credit_application(ann, invoice, memo, "30.01", "30.01"),
        "zero total that does not net to zero": credit_application(ann, invoice, memo, 20, 10),
        "more applied than paid": credit_application(ann, invoice, memo, 50, 10, total=30),
    }[case]
    resp = write(intuit_sandbox, realm, s["token"], "Payment", body, f"bad-{case}")
    assert resp.status_code == 400
    assert fault(resp)["code"] == ("2500" if case == "missing invoice" else "6000")
    assert fault(resp)["element"] == element
    assert read(intuit_sandbox, realm, s["token"], "Invoice", invoice)["Balance"] == 100
    assert read(intuit_sandbox, realm, s["token"], "CreditMemo", memo)["RemainingCredit"] == 30
    assert intuit_sandbox.entities(realm, "Payment") == []


def test_payments_can_be_filtered_by_customer_and_date_but_not_by_note_or_reference(intuit_sandbox, realm,
                                                                                    open_invoice_and_credit):
    s = open_invoice_and_credit
    body = dict(credit_application(s["ann"]["Id"], s["invoice"]["Id"], s["memo"]["Id"], 10, 10),
                TxnDate="2026-11-21", PrivateNote="[ecomflux:apply:1]", PaymentRefNum="CM-1")
    assert write(intuit_sandbox, realm, s["token"], "Payment", body, "p-3").status_code == 200
    found = query(intuit_sandbox, realm, s["token"],
                  f"SELECT * FROM Payment WHERE CustomerRef = '{s['ann']['Id']}' AND TxnDate = '2026-11-21'")
    assert [p["PrivateNote"] for p in found.json()["QueryResponse"]["Payment"]] == ["[ecomflux:apply:1]"]
    for where in ("PrivateNote = '[ecomflux:apply:1]'", "PaymentRefNum = 'CM-1'"):
        refused = query(intuit_sandbox, realm, s["token"], f"SELECT * FROM Payment WHERE {where}")
        assert refused.status_code == 400 and fault(refused)["code"] == "4001"
        assert "not queryable" in fault(refused)["Detail"]


def test_a_fault_can_wait_for_the_endpoint_it_targets(intuit_sandbox, realm):
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    intuit_sandbox.inject_fault(realm, "503", endpoint="POST customer")
    assert qbo(intuit_sandbox, realm, "GET", "companyinfo/1", token).status_code == 200  # not its endpoint
    assert write(intuit_sandbox, realm, token, "Customer", {"DisplayName": "Cy Doe"}, "c-9").status_code == 503
    assert write(intuit_sandbox, realm, token, "Customer", {"DisplayName": "Cy Doe"}, "c-9").status_code == 200
