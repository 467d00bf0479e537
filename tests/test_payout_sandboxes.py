"""The stand-ins' payout protocol: Shopify's shopifyPaymentsAccount over GraphQL, QBO's Deposit and Account rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from ecomflux_app.sandbox.intuit_server import MIN_MINOR_VERSION
from ecomflux_app.shopify.payouts import PAYOUTS_QUERY, TRANSACTIONS_QUERY
from tests.test_shopify_sandbox import SHOP, exchange, gql

SCENARIO_ORDERS = [{"id": 501 + n, "name": f"#{501 + n}", "current_total_price": f"{40 + n}.00"} for n in range(4)]


# -- Shopify ------------------------------------------------------------------------------------------
@pytest.fixture
def sb(shopify_sandbox):
    shopify_sandbox.reset()
    yield shopify_sandbox
    shopify_sandbox.reset()


def test_payouts_and_balance_transactions_page_with_fees_nets_and_cost(sb):
    token = exchange(sb).json()["access_token"]
    made = sb.state.payout_scenario(SHOP, SCENARIO_ORDERS, refund={"amount": "10.00", "order_id": 501,
                                                                   "order_name": "#501", "id": 77},
                                    dispute_order=SCENARIO_ORDERS[1])
    body = gql(sb, token, PAYOUTS_QUERY, {"first": 2, "query": "issued_at:>='2026-11-01T00:00:00Z'"}).json()
    cost = body["extensions"]["cost"]
    assert 0 < cost["actualQueryCost"] <= cost["requestedQueryCost"] < 1000
    page = body["data"]["shopifyPaymentsAccount"]["payouts"]
    assert len(page["nodes"]) == 2 and page["pageInfo"]["hasNextPage"]
    rest = gql(sb, token, PAYOUTS_QUERY, {"first": 2, "after": page["pageInfo"]["endCursor"]}).json()
    nodes = page["nodes"] + rest["data"]["shopifyPaymentsAccount"]["payouts"]["nodes"]
    assert [n["status"] for n in nodes] == ["PAID", "FAILED", "PAID"]
    assert int(nodes[1]["legacyResourceId"]) == made["failed"]
    for node in nodes:
        txns = gql(sb, token, TRANSACTIONS_QUERY, {"first": 100, "query": f"payments_transfer_id:"
                                                                          f"{node['legacyResourceId']}"}).json()
        rows = txns["data"]["shopifyPaymentsAccount"]["balanceTransactions"]["nodes"]
        assert rows and all(r["associatedPayout"]["id"] == node["id"] for r in rows)
        moving = [r for r in rows if r["type"] != "TRANSFER"]
        for r in moving:  # net = amount - fee on every row; card fee 2.9% + 30c on every charge
            assert Decimal(r["net"]["amount"]) == Decimal(r["amount"]["amount"]) - Decimal(r["fee"]["amount"])
            if r["type"] == "CHARGE":
                gross = Decimal(r["amount"]["amount"])
                assert Decimal(r["fee"]["amount"]) == (gross * Decimal("0.029") + Decimal("0.30")).quantize(
                    Decimal("0.01"))
                assert r["associatedOrder"]["name"].startswith("#")
        assert sum(Decimal(r["net"]["amount"]) for r in moving) == Decimal(node["net"]["amount"])
        [transfer] = [r for r in rows if r["type"] == "TRANSFER"]
        assert Decimal(transfer["amount"]["amount"]) == -Decimal(node["net"]["amount"])
    kinds = {r["type"] for r in sb.state.shops[SHOP].payouts.transactions.values()}
    assert {"CHARGE", "REFUND", "DISPUTE", "RESERVED_FUNDS", "ADJUSTMENT", "PAYOUT_FAILURE"} <= kinds
    dispute = next(t for t in sb.state.shops[SHOP].payouts.transactions.values() if t["type"] == "DISPUTE")
    assert Decimal(dispute["fee"]) == Decimal("15.00") and Decimal(dispute["amount"]) == Decimal("-41.00")


def test_payout_reads_need_the_payouts_scope_and_respect_the_cost_limit(sb):
    token = exchange(sb).json()["access_token"]
    sb.state.access_tokens[token]["scope"] = "read_orders"
    denied = gql(sb, token, PAYOUTS_QUERY, {"first": 10}).json()
    assert denied["errors"][0]["extensions"]["code"] == "ACCESS_DENIED" and denied["data"] is None
    sb.state.access_tokens[token]["scope"] = "read_orders,read_shopify_payments_payouts"
    huge = gql(sb, token, TRANSACTIONS_QUERY, {"first": 250}).json()
    assert huge["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    sb.set_rate_limits(bucket_max=100, restore_rate=1)
    throttled = gql(sb, token, TRANSACTIONS_QUERY, {"first": 100}).json()
    assert throttled["errors"][0]["extensions"]["code"] == "THROTTLED"


# -- QBO ----------------------------------------------------------------------------------------------
def qbo(sandbox, realm, token, method, path, **kwargs):
    params = {"minorversion": str(MIN_MINOR_VERSION), **kwargs.pop("params", {})}
    return requests.request(method, f"{sandbox.url}/v3/company/{realm}/{path}", params=params, timeout=10,
                            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, **kwargs)


@pytest.fixture
def company(intuit_sandbox):
    realm = intuit_sandbox.create_company(name="Deposit Co", country="US")
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    accounts = {a["Name"]: str(a["Id"]) for a in intuit_sandbox.entities(realm, "Account")}
    counter = iter(range(1, 1000))

    def call(method, path, body=None):
        return qbo(intuit_sandbox, realm, token, method, path, json=body,
                   params={"requestid": f"dep-{realm}-{next(counter)}"} if method == "POST" else {})

    customer = call("POST", "customer", {"DisplayName": "Ann Lee"}).json()["Customer"]
    income = accounts["Sales of Product Income"]
    item = call("POST", "item", {"Name": "Widget", "Type": "Service", "IncomeAccountRef": {"value": income}}).json()
    return {"call": call, "accounts": accounts, "customer": customer["Id"], "item": item["Item"]["Id"]}


def receipt(company, amount: str, account: str | None = None) -> dict:
    body = {"CustomerRef": {"value": company["customer"]}, "Line": [{
        "DetailType": "SalesItemLineDetail", "Amount": amount,
        "SalesItemLineDetail": {"ItemRef": {"value": company["item"]}}}]}
    if account:
        body["DepositToAccountRef"] = {"value": account}
    resp = company["call"]("POST", "salesreceipt", body)
    assert resp.status_code == 200, resp.text
    return resp.json()["SalesReceipt"]


def fault(resp) -> dict:
    assert resp.status_code == 400, resp.text
    return resp.json()["Fault"]["Error"][0]


def deposit_line(amount, account):
    return {"Amount": amount, "DetailType": "DepositLineDetail", "DepositLineDetail": {"AccountRef": {"value": account}}}


def test_deposit_links_undeposited_receipts_once_and_totals_its_lines(company):
    acc, call = company["accounts"], company["call"]
    fees = call("POST", "account", {"Name": "Shopify Payments fees", "AccountType": "Expense"}).json()["Account"]
    sale = receipt(company, "100.00")  # no DepositToAccountRef: QBO puts it in Undeposited Funds
    body = {"DepositToAccountRef": {"value": acc["Checking"]}, "Line": [
        {"Amount": 100.00, "LinkedTxn": [{"TxnId": sale["Id"], "TxnType": "SalesReceipt", "TxnLineId": "0"}]},
        deposit_line(-3.20, fees["Id"])]}
    made = call("POST", "deposit", body)
    assert made.status_code == 200, made.text
    assert Decimal(str(made.json()["Deposit"]["TotalAmt"])) == Decimal("96.80")
    again = fault(call("POST", "deposit", body))  # the same receipt cannot be deposited twice
    assert again["code"] == "6000" and "already been deposited" in again["Detail"]
    found = call("GET", "query?query=" + requests.utils.quote(f"SELECT * FROM Deposit WHERE TxnDate = "
                                                              f"'{made.json()['Deposit']['TxnDate']}'"))
    assert len(found.json()["QueryResponse"]["Deposit"]) == 1
    # deleting the deposit puts the receipt back in Undeposited Funds
    dep = made.json()["Deposit"]
    deleted = company["call"]("POST", "deposit?operation=delete", {"Id": dep["Id"], "SyncToken": dep["SyncToken"]})
    assert deleted.status_code == 200, deleted.text
    assert call("POST", "deposit", body).status_code == 200


def test_deposit_rules_as_qbo_applies_them(company):
    acc, call = company["accounts"], company["call"]
    in_bank = receipt(company, "20.00", acc["Checking"])
    linked_elsewhere = fault(call("POST", "deposit", {"DepositToAccountRef": {"value": acc["Checking"]}, "Line": [
        {"Amount": 20.00, "LinkedTxn": [{"TxnId": in_bank["Id"], "TxnType": "SalesReceipt"}]}]}))
    assert "not in Undeposited Funds" in linked_elsewhere["Detail"]
    sale = receipt(company, "30.00")
    partial = fault(call("POST", "deposit", {"DepositToAccountRef": {"value": acc["Checking"]}, "Line": [
        {"Amount": 10.00, "LinkedTxn": [{"TxnId": sale["Id"], "TxnType": "SalesReceipt"}]}]}))
    assert partial["element"] == "Line[0].Amount"
    into_income = fault(call("POST", "deposit", {"DepositToAccountRef": {"value": acc["Services"]},
                                                 "Line": [deposit_line(5, acc["Undeposited Funds"])]}))
    assert into_income["element"] == "DepositToAccountRef"
    into_uf = fault(call("POST", "deposit", {"DepositToAccountRef": {"value": acc["Undeposited Funds"]},
                                             "Line": [deposit_line(5, acc["Services"])]}))
    assert into_uf["element"] == "DepositToAccountRef"
    no_account = fault(call("POST", "deposit", {"DepositToAccountRef": {"value": acc["Checking"]},
                                                "Line": [{"Amount": 5, "DetailType": "DepositLineDetail",
                                                          "DepositLineDetail": {}}]}))
    assert no_account["code"] == "2020"
    negative = fault(call("POST", "deposit", {"DepositToAccountRef": {"value": acc["Checking"]},
                                              "Line": [deposit_line(-5, acc["Services"])]}))
    assert "negative" in negative["Detail"]
    missing = fault(call("POST", "deposit", {"Line": [deposit_line(5, acc["Services"])]}))
    assert missing["element"] == "DepositToAccountRef"
    euro = fault(call("POST", "deposit", {"DepositToAccountRef": {"value": acc["Checking"]}, "CurrencyRef":
                                          {"value": "EUR"}, "Line": [deposit_line(5, acc["Services"])]}))
    assert euro["element"] == "CurrencyRef"
    mixed = call("POST", "deposit", {"DepositToAccountRef": {"value": acc["Checking"]}, "Line": [
        {"Amount": 30.00, "LinkedTxn": [{"TxnId": sale["Id"], "TxnType": "SalesReceipt"}]},
        deposit_line(-0.87, acc["Services"]), deposit_line(12.5, acc["Undeposited Funds"])]})
    assert mixed.status_code == 200 and Decimal(str(mixed.json()["Deposit"]["TotalAmt"])) == Decimal("41.63")


def test_accounts_are_created_with_a_valid_type_and_a_unique_name(company):
    call = company["call"]
    bad = fault(call("POST", "account", {"Name": "Shopify Payments clearing", "AccountType": "Piggy Bank"}))
    assert bad["element"] == "AccountType"
    made = call("POST", "account", {"Name": "Shopify Payments clearing", "AccountType": "Other Current Asset",
                                    "AccountSubType": "OtherCurrentAssets"})
    assert made.status_code == 200 and made.json()["Account"]["AccountType"] == "Other Current Asset"
    dup = fault(call("POST", "account", {"Name": "Shopify Payments clearing", "AccountType": "Bank"}))
    assert dup["code"] == "6240"
    listed = call("GET", "query?query=" + requests.utils.quote("SELECT * FROM Account WHERE AccountType = "
                                                               "'Other Current Asset'")).json()
    assert "Shopify Payments clearing" in {a["Name"] for a in listed["QueryResponse"]["Account"]}
