"""Non-US companies end to end: signed webhooks -> worker -> the strict Intuit stand-in (UK, CA, AU, EU).

Every corpus order posts one document whose tax and total equal Shopify's with a tax code on every
line; an unmapped tax flags the order naming it and posts by itself once mapped on the page; the
app never creates a tax code. Multicurrency: the buyer's currency, Shopify's own rate, a customer
per currency.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ecomflux_app.models import CustomerMap, QboConnection, SyncRecord
from tests.api_fixtures import bearer  # noqa: F401
from tests.fixtures_flow import Connected, connect_shop_to_company
from tests.helpers import drain, post_webhook
from tests.nonus_orders import build_order, corpus, country_of

CURRENCY = {"GB": "GBP", "CA": "CAD", "AU": "AUD", "DE": "EUR"}


def connect(install_shop, intuit_sandbox, shopify_sandbox, country: str, domain: str, multicurrency=False):
    shop = install_shop(domain, name=f"{country} Shop", currency=CURRENCY[country], timezone="Europe/London",
                        country=country)
    realm = intuit_sandbox.create_company(name=f"{country} Ltd", country=country, multicurrency=multicurrency)
    connect_shop_to_company(shop, intuit_sandbox, realm)
    return Connected(shop=shop, realm=realm, intuit=intuit_sandbox, shopify=shopify_sandbox)


def send(client, connected, order):
    resp = post_webhook(client, "orders/fulfilled", connected.shop.domain, order)
    assert resp.status_code == 200


@pytest.mark.parametrize("country", ["GB", "CA", "AU", "DE"])
def test_corpus_posts_each_order_with_shopify_tax_and_total_and_codes(client, redis_conn, install_shop, intuit_sandbox,
                                                                     shopify_sandbox, country):
    connected = connect(install_shop, intuit_sandbox, shopify_sandbox, country, f"{country.lower()}-shop.myshopify.com")
    orders = {n: o for n, o in corpus().items() if country_of(n) == country and "unmapped" not in n}
    codes_before = len(intuit_sandbox.entities(connected.realm, "TaxCode"))
    for order in orders.values():
        send(client, connected, order)
    drain(redis_conn)
    docs = {d["DocNumber"]: d for d in connected.documents("SalesReceipt")}
    assert len(docs) == len(orders)
    for order in orders.values():
        doc = docs[str(order["id"])]
        assert Decimal(str(doc["TotalAmt"])) == Decimal(order["current_total_price"])
        assert Decimal(str(doc["TxnTaxDetail"]["TotalTax"])) == Decimal(order["current_total_tax"])
        assert all(l["SalesItemLineDetail"].get("TaxCodeRef") for l in doc["Line"]
                   if l["DetailType"] == "SalesItemLineDetail")
    assert {r.status for r in SyncRecord.select()} == {"posted"}
    assert len(intuit_sandbox.entities(connected.realm, "TaxCode")) == codes_before  # none created
    assert QboConnection.get().tax_setup  # read once, kept on the connection


def test_unmapped_tax_flags_naming_it_and_posts_once_mapped_on_the_page(client, redis_conn, install_shop,
                                                                       intuit_sandbox, shopify_sandbox, bearer):
    connected = connect(install_shop, intuit_sandbox, shopify_sandbox, "DE", "de-shop.myshopify.com")
    order = corpus()["eu_oss_to_ireland_unmapped"]
    send(client, connected, order)
    drain(redis_conn)
    record = SyncRecord.get()
    assert record.status == "flagged" and "IE VAT 23%" in record.reason and "unmapped tax" in record.reason
    assert connected.documents("SalesReceipt") == []
    page = client.get("/api/taxcodes", headers=bearer(connected.shop.domain)).json
    assert [u["tax"] for u in page["unmapped"]] == ["IE VAT 23%"] and page["unmapped"][0]["suggestions"] == []
    # The bookkeeper adds two 23% codes in QuickBooks; the page re-reads them and offers both.
    added = []
    for name in ("OSS 23% Irland", "OSS 23% Portugal-Madeira"):
        rate = intuit_sandbox.put_entity(connected.realm, "TaxRate", {"Name": name, "RateValue": 23.0})
        added.append(intuit_sandbox.put_entity(connected.realm, "TaxCode", {
            "Name": name, "Active": True, "SalesTaxRateList": {"TaxRateDetail": [
                {"TaxRateRef": {"value": rate["Id"]}, "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}]}}))
    page = client.post("/api/taxcodes/refresh", headers=bearer(connected.shop.domain)).json
    assert page["resumed"] == 0  # two codes of that rate: the admin chooses
    drain(redis_conn)
    assert sorted(page["unmapped"][0]["suggestions"]) == sorted(c["Id"] for c in added)
    code = added[0]
    wrong = client.put("/api/taxcodes", json={"mapping": {"IE VAT 23%": page["codes"][0]["id"]}},
                       headers=bearer(connected.shop.domain))
    assert wrong.status_code == 422
    saved = client.put("/api/taxcodes", json={"mapping": {"IE VAT 23%": code["Id"]}},
                       headers=bearer(connected.shop.domain))
    assert saved.status_code == 200 and saved.json["resumed"] == 1
    drain(redis_conn)
    [doc] = connected.documents("SalesReceipt")
    assert Decimal(str(doc["TotalAmt"])) == Decimal(order["current_total_price"])
    assert SyncRecord.get().status == "posted"
    assert [l["SalesItemLineDetail"]["TaxCodeRef"]["value"] for l in doc["Line"]] == [code["Id"]] * 2


def test_a_code_added_in_quickbooks_settles_flagged_orders_on_refresh(client, redis_conn, install_shop,
                                                                    intuit_sandbox, shopify_sandbox, bearer):
    connected = connect(install_shop, intuit_sandbox, shopify_sandbox, "DE", "de2-shop.myshopify.com")
    send(client, connected, corpus()["eu_oss_to_ireland_unmapped"])
    drain(redis_conn)
    assert SyncRecord.get().status == "flagged"
    rate = intuit_sandbox.put_entity(connected.realm, "TaxRate", {"Name": "OSS IE 23%", "RateValue": 23.0})
    intuit_sandbox.put_entity(connected.realm, "TaxCode", {
        "Name": "OSS IE 23%", "Active": True, "SalesTaxRateList": {"TaxRateDetail": [
            {"TaxRateRef": {"value": rate["Id"]}, "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}]}})
    page = client.post("/api/taxcodes/refresh", headers=bearer(connected.shop.domain)).json
    assert page["resumed"] == 1 and page["unmapped"] == []
    drain(redis_conn)
    assert SyncRecord.get().status == "posted" and len(connected.documents("SalesReceipt")) == 1


def test_foreign_currency_order_posts_in_the_buyers_currency_with_shopifys_rate_and_own_customer(
        client, redis_conn, install_shop, intuit_sandbox, shopify_sandbox):
    connected = connect(install_shop, intuit_sandbox, shopify_sandbox, "GB", "mc-shop.myshopify.com",
                        multicurrency=True)
    lines = [{"title": "Scarf", "sku": "UK-SCARF", "price": "24.00", "qty": 2, "rates": [("GB VAT", "0.2")]}]
    home = build_order(3001, inclusive=True, currency="GBP", country="GB", lines=lines)
    euro = build_order(3002, inclusive=True, currency="GBP", country="GB", lines=lines, presentment="EUR", fx="1.1634")
    send(client, connected, home)
    send(client, connected, euro)
    drain(redis_conn)
    docs = {d["DocNumber"]: d for d in connected.documents("SalesReceipt")}
    assert {r.order_id: r.status for r in SyncRecord.select()} == {"3001": "posted", "3002": "posted"}, \
        [r.reason for r in SyncRecord.select()]
    eur_doc = docs["3002"]
    assert eur_doc["CurrencyRef"]["value"] == "EUR"
    assert Decimal(str(eur_doc["TotalAmt"])) == Decimal(euro["current_total_price_set"]["presentment_money"]["amount"])
    shop_total = Decimal(euro["total_price_set"]["shop_money"]["amount"])
    pres_total = Decimal(euro["total_price_set"]["presentment_money"]["amount"])
    assert Decimal(str(eur_doc["ExchangeRate"])) == (shop_total / pres_total).quantize(Decimal("0.000001"))
    customers = {c["Id"]: c for c in intuit_sandbox.entities(connected.realm, "Customer")}
    assert customers[eur_doc["CustomerRef"]["value"]]["CurrencyRef"]["value"] == "EUR"
    assert customers[docs["3001"]["CustomerRef"]["value"]]["CurrencyRef"]["value"] == "GBP"
    assert customers[eur_doc["CustomerRef"]["value"]]["DisplayName"] == "Ann Lee (EUR)"


def test_foreign_currency_with_multicurrency_off_is_flagged_clearly(client, redis_conn, install_shop, intuit_sandbox,
                                                                     shopify_sandbox):
    connected = connect(install_shop, intuit_sandbox, shopify_sandbox, "GB", "off-shop.myshopify.com")
    lines = [{"title": "Scarf", "sku": "UK-SCARF", "price": "24.00", "qty": 2, "rates": [("GB VAT", "0.2")]}]
    send(client, connected, build_order(3003, inclusive=True, currency="EUR", country="GB", lines=lines))
    drain(redis_conn)
    record = SyncRecord.get()
    assert record.status in ("flagged", "failed") and "multicurrency is off" in record.reason
    assert connected.documents("SalesReceipt") == []


def test_refund_of_a_uk_order_posts_with_the_order_lines_codes(client, redis_conn, install_shop, intuit_sandbox,
                                                               shopify_sandbox):
    from tests.test_tax_codes import refund_of

    connected = connect(install_shop, intuit_sandbox, shopify_sandbox, "GB", "uk-refund.myshopify.com")
    order = corpus()["uk_mixed_rates_inclusive"]
    send(client, connected, order)
    drain(redis_conn)
    [receipt] = connected.documents("SalesReceipt")
    refund = refund_of(order, 2, 1)  # the car seat (5% reduced rate)
    resp = post_webhook(client, "refunds/create", connected.shop.domain, refund)
    assert resp.status_code == 200
    drain(redis_conn)
    [doc] = connected.documents("RefundReceipt")
    assert Decimal(str(doc["TotalAmt"])) == Decimal(refund["transactions"][0]["amount"])
    assert Decimal(str(doc["TxnTaxDetail"]["TotalTax"])) == Decimal(refund["refund_line_items"][0]["total_tax"])
    seat_code = next(l["SalesItemLineDetail"]["TaxCodeRef"] for l in receipt["Line"] if l["Description"] == "Car seat")
    assert [l["SalesItemLineDetail"]["TaxCodeRef"] for l in doc["Line"]] == [seat_code]


def test_foreign_currency_invoice_and_its_payment_are_in_the_buyers_currency(client, redis_conn, install_shop,
                                                                            intuit_sandbox, shopify_sandbox):
    connected = connect(install_shop, intuit_sandbox, shopify_sandbox, "GB", "mc-inv.myshopify.com",
                        multicurrency=True)
    bank = [a for a in connected.documents("Account") if a.get("AccountType") == "Bank"][-1]
    connected.settings(document_type="invoice", deposit_account_id=bank["Id"])
    lines = [{"title": "Scarf", "sku": "UK-SCARF", "price": "24.00", "qty": 2, "rates": [("GB VAT", "0.2")]}]
    order = build_order(3101, inclusive=True, currency="GBP", country="GB", lines=lines, presentment="EUR",
                        fx="1.1634")
    order["financial_status"] = "pending"
    send(client, connected, order)
    drain(redis_conn)
    resp = post_webhook(client, "orders/paid", connected.shop.domain, dict(order, financial_status="paid"))
    assert resp.status_code == 200
    drain(redis_conn)
    [invoice] = connected.documents("Invoice")
    [payment] = connected.documents("Payment")
    assert invoice["CurrencyRef"]["value"] == payment["CurrencyRef"]["value"] == "EUR"
    assert payment["CustomerRef"] == invoice["CustomerRef"]
    eur_total = Decimal(order["current_total_price_set"]["presentment_money"]["amount"])
    assert Decimal(str(payment["TotalAmt"])) == Decimal(str(invoice["TotalAmt"])) == eur_total
    assert Decimal(str(invoice["Balance"])) == 0
    # Shopify's own rate on both (not QBO's guess), so their home-currency amounts tie out.
    assert Decimal(str(payment["ExchangeRate"])) == Decimal(str(invoice["ExchangeRate"]))


def test_mapping_while_quickbooks_waits_for_a_reconnect_is_saved(client, redis_conn, install_shop, intuit_sandbox,
                                                                  shopify_sandbox, bearer):
    connected = connect(install_shop, intuit_sandbox, shopify_sandbox, "DE", "de3-shop.myshopify.com")
    order = corpus()["eu_oss_to_austria_same_rate_as_france"]
    for line in order["line_items"] + order["shipping_lines"]:
        for tax in line["tax_lines"]:
            tax["title"] = "VAT"
    order["shipping_address"]["country_code"] = order["billing_address"]["country_code"] = "BE"
    send(client, connected, order)
    drain(redis_conn)
    assert SyncRecord.get().status == "flagged"
    QboConnection.update(status="reconnect_required", status_reason="invalid_grant").execute()
    [fr] = [c for c in intuit_sandbox.entities(connected.realm, "TaxCode") if c["Name"] == "OSS FR 20%"]
    saved = client.put("/api/taxcodes", json={"mapping": {"VAT 20%": fr["Id"]}}, headers=bearer(connected.shop.domain))
    assert saved.status_code == 200 and saved.json["resumed"] == 1
