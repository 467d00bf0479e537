"""The Intuit stand-in's non-US companies: tax codes with rates, per-rate tax, overrides, currencies.

Pins what the product relies on when it posts for a UK, Canadian, Australian or EU company:
QBO computes each rate's tax on the lines' net amounts and rounds it half up; TaxLine amounts may
correct that by rounding only; US-only fields and pseudo-codes are refused; a customer's currency
is fixed and its documents must be in it.
"""

from __future__ import annotations

import itertools

import pytest
import requests

from ecomflux_app.sandbox.intuit_server import MIN_MINOR_VERSION

_rid = itertools.count(1)


def qbo(sandbox, realm, method, path, token, body=None, query=None):
    params = {"minorversion": str(MIN_MINOR_VERSION)}
    if method == "POST":
        params["requestid"] = f"gt-{next(_rid)}"
    if query:
        params["query"] = query
    return requests.request(method, f"{sandbox.url}/v3/company/{realm}/{path}", params=params, json=body,
                            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, timeout=10)


def fault(resp):
    return resp.json()["Fault"]["Error"][0]


def codes(sandbox, realm, token):
    rows = qbo(sandbox, realm, "GET", "query", token, query="SELECT * FROM TaxCode").json()["QueryResponse"]["TaxCode"]
    return {c["Name"]: c for c in rows}


def rate_of(sandbox, realm, code):
    rate_id = code["SalesTaxRateList"]["TaxRateDetail"][0]["TaxRateRef"]["value"]
    return next(r for r in sandbox.entities(realm, "TaxRate") if r["Id"] == rate_id)


@pytest.fixture
def uk(intuit_sandbox):
    realm = intuit_sandbox.create_company(name="UK Ltd", country="GB")
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    customer = qbo(intuit_sandbox, realm, "POST", "customer", token, {"DisplayName": "Ann Lee"}).json()["Customer"]
    item = intuit_sandbox.entities(realm, "Item")[0]
    return realm, token, customer["Id"], item["Id"]


def line(item, amount, code, qty=1, gross=None):
    detail = {"ItemRef": {"value": item}, "Qty": qty, "UnitPrice": amount / qty if qty else amount,
              "TaxCodeRef": {"value": code}}
    if gross is not None:
        detail["TaxInclusiveAmt"] = gross
    return {"DetailType": "SalesItemLineDetail", "Amount": amount, "SalesItemLineDetail": detail}


def test_company_info_preferences_and_tax_codes_describe_a_uk_company(intuit_sandbox, uk):
    realm, token, _, _ = uk
    info = qbo(intuit_sandbox, realm, "GET", f"companyinfo/{realm}", token).json()["CompanyInfo"]
    prefs = qbo(intuit_sandbox, realm, "GET", "preferences", token).json()["Preferences"]
    assert info["Country"] == "GB"
    assert prefs["CurrencyPrefs"]["HomeCurrency"]["value"] == "GBP"
    assert prefs["TaxPrefs"]["PartnerTaxEnabled"] is False
    found = codes(intuit_sandbox, realm, token)
    assert {"20.0% S", "5.0% R", "0.0% Z", "Exempt", "No VAT"} <= set(found)
    assert "TAX" not in found and "NON" not in found
    assert rate_of(intuit_sandbox, realm, found["20.0% S"])["RateValue"] == 20.0
    assert found["No VAT"]["SalesTaxRateList"]["TaxRateDetail"] == []


def test_canada_has_combined_codes_and_australia_gst(intuit_sandbox):
    ca = intuit_sandbox.create_company(country="CA")
    token = intuit_sandbox.issue_tokens(ca)["access_token"]
    qc = codes(intuit_sandbox, ca, token)["GST/QST QC"]
    values = sorted(next(r["RateValue"] for r in intuit_sandbox.entities(ca, "TaxRate") if r["Id"] == d["TaxRateRef"]["value"])
                    for d in qc["SalesTaxRateList"]["TaxRateDetail"])
    assert values == [5.0, 9.975] and qc["TaxGroup"] is True
    au = intuit_sandbox.create_company(country="AU")
    token = intuit_sandbox.issue_tokens(au)["access_token"]
    assert {"GST", "GST free", "Out of scope"} <= set(codes(intuit_sandbox, au, token))


def test_tax_is_computed_per_rate_on_the_net_amounts_and_rounded_half_up(intuit_sandbox, uk):
    realm, token, customer, item = uk
    found = codes(intuit_sandbox, realm, token)
    body = {"CustomerRef": {"value": customer}, "GlobalTaxCalculation": "TaxExcluded", "Line": [
        line(item, 10.03, found["20.0% S"]["Id"]), line(item, 10.03, found["20.0% S"]["Id"]),
        line(item, 3.10, found["5.0% R"]["Id"]), line(item, 7.00, found["0.0% Z"]["Id"]),
    ]}
    resp = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token, body)
    assert resp.status_code == 200, resp.text
    doc = resp.json()["SalesReceipt"]
    by_rate = {t["TaxLineDetail"]["TaxPercent"]: t for t in doc["TxnTaxDetail"]["TaxLine"]}
    # 20.06 * 20% = 4.012 -> 4.01 (per line it would be 2.01 + 2.01 = 4.02); 3.10 * 5% = 0.155 -> 0.16
    assert by_rate[20.0]["Amount"] == 4.01 and by_rate[20.0]["TaxLineDetail"]["NetAmountTaxable"] == 20.06
    assert by_rate[5.0]["Amount"] == 0.16 and by_rate[0.0]["Amount"] == 0
    assert doc["TxnTaxDetail"]["TotalTax"] == 4.17 and doc["TotalAmt"] == 34.33


def test_a_tax_line_may_correct_rounding_but_not_more(intuit_sandbox, uk):
    realm, token, customer, item = uk
    found = codes(intuit_sandbox, realm, token)
    standard = found["20.0% S"]
    rate_id = standard["SalesTaxRateList"]["TaxRateDetail"][0]["TaxRateRef"]["value"]

    def post(amount, total=None, rate=rate_id):
        detail = {"TaxLine": [{"Amount": amount, "DetailType": "TaxLineDetail", "TaxLineDetail": {
            "TaxRateRef": {"value": rate}, "PercentBased": True, "TaxPercent": 20, "NetAmountTaxable": 20.06}}]}
        if total is not None:
            detail["TotalTax"] = total
        return qbo(intuit_sandbox, realm, "POST", "salesreceipt", token, {
            "CustomerRef": {"value": customer}, "GlobalTaxCalculation": "TaxExcluded", "TxnTaxDetail": detail,
            "Line": [line(item, 10.03, standard["Id"]), line(item, 10.03, standard["Id"])]})

    ok = post(4.02, 4.02)  # Shopify's per-line figure: a cent off QBO's own
    assert ok.status_code == 200, ok.text
    doc = ok.json()["SalesReceipt"]
    assert doc["TxnTaxDetail"]["TotalTax"] == 4.02 and doc["TotalAmt"] == 24.08
    assert doc["TxnTaxDetail"]["TaxLine"][0]["TaxLineDetail"]["OverrideDeltaAmount"] == pytest.approx(0.01)
    too_much = post(4.50)
    assert too_much.status_code == 400 and fault(too_much)["code"] == "6000"
    assert fault(too_much)["element"] == "TxnTaxDetail.TaxLine[0].Amount"
    mismatch = post(4.02, 4.01)
    assert fault(mismatch)["element"] == "TxnTaxDetail.TotalTax"
    reduced = found["5.0% R"]["SalesTaxRateList"]["TaxRateDetail"][0]["TaxRateRef"]["value"]
    unused = post(0.10, rate=reduced)
    assert fault(unused)["code"] == "6000" and "not used by any line" in fault(unused)["Detail"]


def test_us_only_fields_and_missing_codes_are_refused(intuit_sandbox, uk):
    realm, token, customer, item = uk
    found = codes(intuit_sandbox, realm, token)
    base = {"CustomerRef": {"value": customer}, "GlobalTaxCalculation": "TaxExcluded"}
    pseudo = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token, dict(base, Line=[line(item, 10, "TAX")]))
    assert fault(pseudo)["code"] == "2500"
    missing = {"DetailType": "SalesItemLineDetail", "Amount": 10, "SalesItemLineDetail": {"ItemRef": {"value": item}}}
    no_code = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token, dict(base, Line=[missing]))
    assert fault(no_code)["code"] == "6000" and fault(no_code)["element"].endswith("TaxCodeRef")
    total_only = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token, dict(
        base, TxnTaxDetail={"TotalTax": 2.50}, Line=[line(item, 10, found["20.0% S"]["Id"])]))
    assert fault(total_only)["element"] == "TxnTaxDetail.TotalTax"
    purchase_only = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token,
                        dict(base, Line=[line(item, 10, found["20.0% ECS"]["Id"])]))
    assert fault(purchase_only)["code"] == "6000"
    create_code = qbo(intuit_sandbox, realm, "POST", "taxcode", token, {"Name": "Mine"})
    assert create_code.status_code == 400


def test_tax_inclusive_lines_must_be_their_gross_net_of_tax_and_add_up(intuit_sandbox, uk):
    realm, token, customer, item = uk
    code = codes(intuit_sandbox, realm, token)["20.0% S"]["Id"]
    base = {"CustomerRef": {"value": customer}, "GlobalTaxCalculation": "TaxInclusive"}
    ok = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token,
             dict(base, Line=[line(item, 10.00, code, gross=12.00), line(item, 4.16, code, gross=4.99)]))
    assert ok.status_code == 200, ok.text
    doc = ok.json()["SalesReceipt"]
    assert doc["TotalAmt"] == 16.99 and doc["TxnTaxDetail"]["TotalTax"] == 2.83
    wrong_net = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token,
                    dict(base, Line=[line(item, 11.00, code, gross=12.00)]))
    assert fault(wrong_net)["element"] == "Line[0].Amount"


def test_a_customer_keeps_its_currency_and_its_documents_must_use_it(intuit_sandbox):
    realm = intuit_sandbox.create_company(country="GB", multicurrency=True)
    token = intuit_sandbox.issue_tokens(realm)["access_token"]
    eur = qbo(intuit_sandbox, realm, "POST", "customer", token,
              {"DisplayName": "Ann Lee (EUR)", "CurrencyRef": {"value": "EUR"}}).json()["Customer"]
    home = qbo(intuit_sandbox, realm, "POST", "customer", token, {"DisplayName": "Ann Lee"}).json()["Customer"]
    assert home["CurrencyRef"]["value"] == "GBP"
    item = intuit_sandbox.entities(realm, "Item")[0]["Id"]
    code = codes(intuit_sandbox, realm, token)["0.0% Z"]["Id"]
    wrong = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token,
                {"CustomerRef": {"value": home["Id"]}, "CurrencyRef": {"value": "EUR"}, "ExchangeRate": 0.85,
                 "Line": [line(item, 10, code)]})
    assert fault(wrong)["code"] == "6000" and fault(wrong)["element"] == "CurrencyRef"
    ok = qbo(intuit_sandbox, realm, "POST", "salesreceipt", token,
             {"CustomerRef": {"value": eur["Id"]}, "CurrencyRef": {"value": "EUR"}, "ExchangeRate": 0.85,
              "Line": [line(item, 10, code)]})
    assert ok.status_code == 200 and ok.json()["SalesReceipt"]["HomeTotalAmt"] == 8.5
    change = qbo(intuit_sandbox, realm, "POST", "customer", token,
                 {"Id": eur["Id"], "SyncToken": eur["SyncToken"], "sparse": True, "CurrencyRef": {"value": "GBP"}})
    assert fault(change)["code"] == "6000"
    off = intuit_sandbox.create_company(country="GB", multicurrency=False)
    token = intuit_sandbox.issue_tokens(off)["access_token"]
    refused = qbo(intuit_sandbox, off, "POST", "customer", token,
                  {"DisplayName": "Ann Lee (EUR)", "CurrencyRef": {"value": "EUR"}})
    assert fault(refused)["element"] == "CurrencyRef"
