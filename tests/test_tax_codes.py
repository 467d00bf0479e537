"""Non-US tax codes: every corpus order (UK, CA, AU, EU) posts with a code per line and Shopify's tax to the cent.

Each document is checked by the Intuit stand-in's own validation (per-rate tax, rounding-only
TaxLine overrides, tax-inclusive nets), in both document modes, and by hypothesis over random
orders in each regime.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from ecomflux_app.sandbox.intuit_server import Company, Fault, _validate_txn
from ecomflux_app.translate.order import Refs, ShopFacts, plan_order, render_document
from ecomflux_app.translate.jsonout import dumps
from ecomflux_app.translate.settings import CompanyFacts, SyncSettings
from ecomflux_app.translate.tax_codes import UNMAPPED_PREFIX, TaxSetup, tax_signature
from tests import nonus_orders as corpus_mod
from tests.nonus_orders import build_order, corpus, country_of

import json

CURRENCY = {"GB": "GBP", "CA": "CAD", "AU": "AUD", "DE": "EUR"}


def company(country: str, multicurrency: bool = False) -> Company:
    c = Company("1", f"{country} Co", country, multicurrency, CURRENCY[country], True)
    income = c.find("Account", "Name", "Sales of Product Income")
    c.add("Item", {"Id": "ITEM", "Name": "Anything", "Type": "Service", "IncomeAccountRef": {"value": income["Id"]}})
    c.add("Customer", {"Id": "CUST", "DisplayName": "Ann Lee"})
    return c


def settings_for(c: Company, document_type: str = "sales_receipt", **values) -> SyncSettings:
    setup = TaxSetup.from_qbo(c.entities["TaxCode"].values(), c.entities["TaxRate"].values())
    base = SyncSettings.from_values(dict(document_type=document_type, **values))
    return base.with_company(CompanyFacts(country=c.country, home_currency=c.home_currency,
                                          multicurrency=c.multicurrency, tax_setup=setup))


def post(c: Company, plan, entity: str) -> dict:
    """What QBO makes of the rendered document (the stand-in's validation, in process)."""
    doc = render_document(plan, Refs(customer_id="CUST", items={k: "ITEM" for k in plan.item_keys}))
    return _validate_txn(c, entity, json.loads(dumps(doc)))


def shopify_tax(order) -> Decimal:
    return Decimal(order["current_total_tax"])


@pytest.mark.parametrize("document_type", ["sales_receipt", "invoice"])
@pytest.mark.parametrize("name", [n for n in corpus() if "unmapped" not in n])
def test_corpus_order_posts_with_shopify_tax_and_total_and_a_code_on_every_line(name, document_type):
    order = corpus()[name]
    c = company(country_of(name))
    plan = plan_order(order, settings_for(c, document_type), ShopFacts(currency=order["currency"]))
    assert plan.balance.ok, plan.balance.reason
    entity = "Invoice" if document_type == "invoice" else "SalesReceipt"
    doc = post(c, plan, entity)
    assert Decimal(str(doc["TotalAmt"])) == Decimal(order["current_total_price"])
    assert Decimal(str(doc["TxnTaxDetail"]["TotalTax"])) == shopify_tax(order)
    codes = {code["Id"]: code for code in c.entities["TaxCode"].values()}
    for line in doc["Line"]:
        if line["DetailType"] == "SalesItemLineDetail":
            assert line["SalesItemLineDetail"]["TaxCodeRef"]["value"] in codes
    assert doc["GlobalTaxCalculation"] == ("TaxInclusive" if order["taxes_included"] else "TaxExcluded")


def code_names(c: Company, plan) -> dict[str, str]:
    codes = {code["Id"]: code["Name"] for code in c.entities["TaxCode"].values()}
    return {line.description: codes[line.tax_code_id] for line in plan.lines}


def test_uk_lines_get_standard_reduced_zero_and_exempt_codes_and_shipping_follows_its_tax():
    c = company("GB")
    plan = plan_order(corpus()["uk_mixed_rates_inclusive"], settings_for(c), ShopFacts(currency="GBP"))
    names = code_names(c, plan)
    assert names["Tea mug"] == "20.0% S" and names["Discount (WELCOME10) on Tea mug"] == "20.0% S"
    assert names["Children's book"] == "0.0% Z" and names["Car seat"] == "5.0% R"
    assert names["Shipping: Royal Mail 2nd"] == "20.0% S"
    plan = plan_order(corpus()["uk_exempt_line_and_export_free_shipping"], settings_for(c), ShopFacts(currency="GBP"))
    assert code_names(c, plan)["Gift wrap service"] == "Exempt"


def test_canada_picks_the_combined_code_for_two_tax_lines_and_shipping_by_province():
    c = company("CA")
    plan = plan_order(corpus()["ca_bc_gst_pst"], settings_for(c), ShopFacts(currency="CAD"))
    names = code_names(c, plan)
    assert names["Rain jacket"] == "GST/PST BC" and names["Shipping: Canada Post"] == "GST"
    plan = plan_order(corpus()["ca_qc_gst_qst"], settings_for(c), ShopFacts(currency="CAD"))
    assert set(code_names(c, plan).values()) == {"GST/QST QC"}
    plan = plan_order(corpus()["ca_ns_hst_and_zero_rated_food"], settings_for(c), ShopFacts(currency="CAD"))
    assert code_names(c, plan)["Oatmeal (basic grocery)"] == "Zero-rated"


def test_oss_rates_shared_by_two_countries_go_to_the_destinations_code():
    c = company("DE")
    fr = plan_order(corpus()["eu_oss_to_france"], settings_for(c), ShopFacts(currency="EUR"))
    at = plan_order(corpus()["eu_oss_to_austria_same_rate_as_france"], settings_for(c), ShopFacts(currency="EUR"))
    assert set(code_names(c, fr).values()) == {"OSS FR 20%"}
    assert set(code_names(c, at).values()) == {"OSS AT 20%"}


def test_an_unmapped_tax_flags_the_order_naming_it_and_a_mapping_posts_it():
    c = company("DE")
    order = corpus()["eu_oss_to_ireland_unmapped"]
    plan = plan_order(order, settings_for(c), ShopFacts(currency="EUR"))
    assert not plan.balance.ok
    assert plan.balance.reason.startswith(UNMAPPED_PREFIX) and "IE VAT 23%" in plan.balance.reason
    assert [u.signature for u in plan.tax_unmapped] == ["IE VAT 23%"]
    # The admin creates a 23% code in QuickBooks and maps it (the app never creates one).
    rate = c.add("TaxRate", {"Name": "OSS IE 23%", "RateValue": 23.0, "Active": True})
    code = c.add("TaxCode", {"Name": "OSS IE 23%", "Active": True, "SalesTaxRateList": {"TaxRateDetail": [
        {"TaxRateRef": {"value": rate["Id"]}, "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}]}})
    plan = plan_order(order, settings_for(c, tax_code_map={"IE VAT 23%": code["Id"]}), ShopFacts(currency="EUR"))
    assert plan.balance.ok
    doc = post(c, plan, "SalesReceipt")
    assert Decimal(str(doc["TotalAmt"])) == Decimal(order["current_total_price"])


def test_a_mapping_to_a_code_of_another_rate_is_not_used():
    c = company("GB")
    order = build_order(1, inclusive=True, currency="GBP", country="GB", lines=[
        {"title": "Mug", "sku": "M", "price": "10.00", "qty": 1, "rates": [("VAT", "0.2")]}])
    reduced = next(x for x in c.entities["TaxCode"].values() if x["Name"] == "5.0% R")
    plan = plan_order(order, settings_for(c, tax_code_map={"VAT 20%": reduced["Id"]}), ShopFacts(currency="GBP"))
    assert code_names(c, plan)["Mug"] == "20.0% S"


def test_without_tax_setup_a_non_us_order_keeps_the_old_behaviour():
    order = corpus()["uk_mixed_rates_inclusive"]
    plan = plan_order(order, SyncSettings(company=CompanyFacts(country="GB", home_currency="GBP")),
                      ShopFacts(currency="GBP"))
    assert plan.tax_rates == () and all(line.tax_code_id is None for line in plan.lines)


REGIMES = {
    "GB": ([corpus_mod.UK_VAT, corpus_mod.UK_REDUCED, corpus_mod.UK_ZERO], True, "GBP", "GB", None),
    "CA": ([corpus_mod.ON_HST], False, "CAD", "CA", "ON"),
    "CA-BC": ([corpus_mod.BC, corpus_mod.AB_GST], False, "CAD", "CA", "BC"),
    "CA-QC": ([corpus_mod.QC], False, "CAD", "CA", "QC"),
    "AU": ([corpus_mod.AU_GST, []], True, "AUD", "AU", None),
    "DE": ([corpus_mod.DE_VAT, corpus_mod.DE_REDUCED], True, "EUR", "DE", None),
}


@st.composite
def regime_orders(draw):
    regime = draw(st.sampled_from(sorted(REGIMES)))
    rate_sets, inclusive, currency, country, province = REGIMES[regime]
    lines = []
    for k in range(draw(st.integers(1, 6))):
        price = Decimal(draw(st.integers(1, 20000))) / 100
        qty = draw(st.integers(1, 5))
        gross = price * qty
        discount = Decimal(draw(st.integers(0, int(gross * 100)))) / 100 if draw(st.booleans()) else Decimal(0)
        lines.append({"title": f"P{k}", "sku": f"S{k}", "price": str(price), "qty": qty,
                      "rates": draw(st.sampled_from(rate_sets)), "taxable": draw(st.booleans()) or k > 0,
                      "discount": str(discount)})
    shipping = [{"title": "Ship", "price": str(Decimal(draw(st.integers(0, 3000))) / 100),
                 "rates": draw(st.sampled_from(rate_sets))}]
    document_type = draw(st.sampled_from(["sales_receipt", "invoice"]))
    order = build_order(42, inclusive=inclusive, currency=currency, country=country, province=province,
                        lines=lines, shipping=shipping, discount_code="CODE")
    return regime, order, document_type


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regime_orders())
def test_property_tax_and_total_equal_shopify_and_every_line_has_a_code(case):
    regime, order, document_type = case
    c = company(regime.split("-")[0])
    plan = plan_order(order, settings_for(c, document_type), ShopFacts(currency=order["currency"]))
    assert plan.balance.ok, plan.balance.reason
    doc = post(c, plan, "Invoice" if document_type == "invoice" else "SalesReceipt")
    assert Decimal(str(doc["TotalAmt"])) == Decimal(order["current_total_price"])
    assert Decimal(str(doc["TxnTaxDetail"]["TotalTax"])) == Decimal(order["current_total_tax"])
    assert all(line["SalesItemLineDetail"].get("TaxCodeRef") for line in doc["Line"]
               if line["DetailType"] == "SalesItemLineDetail")


def refund_of(order: dict, line: int, qty: int, *, shipping: str | None = None, shipping_tax: str = "0.00") -> dict:
    from tests.after_sale_helpers import make_refund

    li = order["line_items"][line]
    tax = sum((Decimal(t["price"]) for t in li["tax_lines"]), Decimal(0)) * qty / li["quantity"]
    discount = sum((Decimal(a["amount"]) for a in li["discount_allocations"]), Decimal(0)) * qty / li["quantity"]
    subtotal = (Decimal(li["price"]) * qty - discount).quantize(Decimal("0.01"))
    tax = tax.quantize(Decimal("0.01"))
    money_back = subtotal + (Decimal(0) if order["taxes_included"] else tax)
    if shipping:
        money_back += Decimal(shipping) + (Decimal(0) if order["taxes_included"] else Decimal(shipping_tax))
    return make_refund(order, qty=qty, line_subtotal=str(subtotal), line_tax=str(tax), sku_line=line,
                       shipping=shipping, shipping_tax=shipping_tax, transaction=str(money_back))


@pytest.mark.parametrize("name,line,qty,shipping", [
    ("uk_mixed_rates_inclusive", 2, 1, None),
    ("uk_mixed_rates_inclusive", 0, 2, None),
    ("ca_on_hst_exclusive", 0, 1, "9.95"),
    ("ca_bc_gst_pst", 1, 2, None),
    ("au_gst_inclusive", 0, 1, None),
])
def test_refunds_post_with_the_order_lines_codes_and_shopifys_refunded_tax(name, line, qty, shipping):
    from ecomflux_app.translate.refund import plan_refund, render_refund

    order = corpus()[name]
    c = company(country_of(name))
    settings = settings_for(c)
    ship_tax = None
    if shipping:
        ship_tax = sum(Decimal(t["price"]) for t in order["shipping_lines"][0]["tax_lines"])
    refund = refund_of(order, line, qty, shipping=shipping, shipping_tax=str(ship_tax or "0.00"))
    plan = plan_refund(refund, order, settings, ShopFacts(currency=order["currency"]), order["name"].lstrip("#"),
                       "SalesReceipt")
    assert plan.balance.ok, plan.balance.reason
    bank = c.find("Account", "Name", "Checking")["Id"]
    doc = render_refund(plan, Refs(customer_id="CUST", items={k: "ITEM" for k in
                                                              {l.item_key for l in plan.lines if l.item_key}}), bank)
    posted = _validate_txn(c, "RefundReceipt", json.loads(dumps(doc)))
    assert Decimal(str(posted["TotalAmt"])) == Decimal(refund["transactions"][0]["amount"])
    assert Decimal(str(posted["TxnTaxDetail"]["TotalTax"])) == plan.tax_total
    order_plan = plan_order(order, settings, ShopFacts(currency=order["currency"]))
    order_codes = {l.source_id: l.tax_code_id for l in order_plan.lines if l.kind == "product"}
    refunded = [l for l in plan.lines if l.kind == "product"]
    assert refunded and all(l.tax_code_id == order_codes[l.source_id] for l in refunded)
    assert all(l["SalesItemLineDetail"].get("TaxCodeRef") for l in posted["Line"])


@pytest.mark.parametrize("name", ["uk_mixed_rates_inclusive", "ca_bc_gst_pst", "ca_qc_gst_qst", "au_gst_inclusive"])
def test_an_order_read_back_through_graphql_posts_the_same_document(name):
    """Backfill reads orders with GraphQL: the Shopify stand-in renders non-US tax lines (title, rate,
    shop and presentment money) and the reader gives back what the webhook carried."""
    from types import SimpleNamespace

    from ecomflux_app.sandbox.shopify_render import render_order
    from ecomflux_app.shopify.order_shape import to_rest_order

    order = corpus()[name]
    c = company(country_of(name))
    shop = SimpleNamespace(timezone="UTC", currency=order["currency"], domain="s.myshopify.com")
    back = to_rest_order(render_order(order, order["currency"]), shop)
    facts = ShopFacts(currency=order["currency"])
    refs = lambda plan: Refs(customer_id="CUST", items={k: "ITEM" for k in plan.item_keys})  # noqa: E731
    first = plan_order(order, settings_for(c), facts)
    again = plan_order(back, settings_for(c), facts)
    assert again.balance.ok, again.balance.reason
    assert render_document(again, refs(again))["Line"] == render_document(first, refs(first))["Line"]
    assert render_document(again, refs(again))["TxnTaxDetail"] == render_document(first, refs(first))["TxnTaxDetail"]
