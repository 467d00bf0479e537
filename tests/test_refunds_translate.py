"""translate.refund / translate.payment: pure, Decimal, the same item keys as the order document."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ecomflux_app.translate.order import Refs, TranslationError, plan_order
from ecomflux_app.translate.payment import (
    deposit_account_for, has_marker, plan_credit_application, plan_payments, render_credit_application,
    render_payment,
)
from ecomflux_app.translate.refund import plan_refund, render_refund
from ecomflux_app.translate.settings import SyncSettings
from tests.after_sale_helpers import make_refund
from tests.fixtures_flow import simple_order

S = SyncSettings()


def test_refund_lines_use_the_same_item_keys_as_the_order_lines():
    for sku, title in (("SKU-9", "Mug"), (None, "Mug"), (None, None)):
        order = simple_order(sku=sku, title=title or "")
        if title is None:
            order["line_items"][0]["title"] = None
            order["line_items"][0]["name"] = None
        order_keys = [l.item_key for l in plan_order(order, S).lines if l.kind == "product"]
        refund_keys = [l.item_key for l in plan_refund(make_refund(order, qty=1), order, S).lines
                       if l.kind == "product"]
        assert refund_keys == order_keys


def test_partial_quantity_with_uneven_unit_price_keeps_qty_times_price_equal_to_amount():
    order = simple_order(qty=3, tax="2.40")
    plan = plan_refund(make_refund(order, qty=3, line_subtotal="25.00", line_tax="2.00"), order, S)
    [line] = plan.lines
    assert line.amount == Decimal("25.00")
    assert (line.qty * line.unit_price).quantize(Decimal("0.01")) == line.amount
    assert plan.balance.ok and plan.document_total == Decimal("27.00")


def test_mismatch_with_transactions_is_not_ok_and_says_both_figures():
    order = simple_order()
    plan = plan_refund(make_refund(order, transaction="5.00"), order, S)
    assert not plan.balance.ok and "21.60" in plan.balance.reason and "5.00" in plan.balance.reason


def test_tax_as_line_setting_refunds_tax_as_an_item_line():
    order = simple_order()
    settings = SyncSettings.from_values({"tax_handling": "tax_line"})
    plan = plan_refund(make_refund(order), order, settings)
    body = render_refund(plan, Refs(customer_id="1", items={"sku:SKU-1": "5", "special:tax": "6"}), "35")
    assert "TxnTaxDetail" not in body
    assert [line["Amount"] for line in body["Line"]] == [Decimal("20.00"), Decimal("1.60")]


def test_newer_refund_shipping_lines_and_taxes_included():
    order = simple_order()
    order["taxes_included"] = True
    refund = make_refund(order, qty=0)
    refund["refund_shipping_lines"] = [{"id": 1, "subtotal_amount_set": {"shop_money": {"amount": "5.00"}},
                                        "tax_amount_set": {"shop_money": {"amount": "0.50"}}}]
    refund["transactions"][0]["amount"] = "5.00"
    plan = plan_refund(refund, order, S)
    [ship] = plan.lines
    assert ship.amount == Decimal("4.50") and ship.gross_amount == Decimal("5.00") and plan.tax_total == Decimal("0.50")
    assert plan.balance.ok
    body = render_refund(plan, Refs(customer_id="1"), "35")
    assert body["GlobalTaxCalculation"] == "TaxInclusive"


def test_refund_receipt_without_account_refuses_and_doc_number_fits():
    order = simple_order(name="#SHOPIFY-ORDER-1234567890")
    plan = plan_refund(make_refund(order, refund_id=99887766554433), order, S)
    assert len(plan.doc_number) <= 21 and plan.doc_number.endswith("-R554433")
    with pytest.raises(ValueError):
        render_refund(plan, Refs(customer_id="1", items={"sku:SKU-1": "5"}), None)


def test_payments_per_transaction_and_gateway_deposit_map():
    order = simple_order()
    order["transactions"] = [
        {"id": 1, "kind": "sale", "status": "success", "amount": "6.60", "gateway": "gift_card"},
        {"id": 2, "kind": "sale", "status": "success", "amount": "20.00", "gateway": "PayPal"},
        {"id": 3, "kind": "sale", "status": "failure", "amount": "20.00", "gateway": "PayPal"},
    ]
    [plan] = plan_payments(order, S)
    assert (plan.source_key, plan.amount, plan.gateway) == ("payment:9001:2", Decimal("20.00"), "PayPal")
    settings = SyncSettings.from_values({"deposit_account_id": "35", "deposit_account_map": {"paypal": "77"}})
    assert deposit_account_for(settings, "PayPal") == "77" and deposit_account_for(settings, "manual") == "35"
    body = render_payment(plan, "9", "100", "77", None)
    assert body["Line"] == [{"Amount": Decimal("20.00"), "LinkedTxn": [{"TxnId": "100", "TxnType": "Invoice"}]}]
    assert SyncSettings.validate_values({"deposit_account_map": {"paypal": "not an id!"}})


def test_amount_based_payment_key_is_stable_and_only_the_new_money_is_paid():
    order = dict(simple_order(), total_outstanding="6.60", financial_status="partially_paid")
    [first] = plan_payments(order, S)
    assert (first.source_key, first.amount) == ("payment:9001:paid-20.00", Decimal("20.00"))
    assert plan_payments(order, S, already_recorded=Decimal("20.00")) == []
    [second] = plan_payments(dict(order, total_outstanding="0.00", financial_status="paid"), S,
                             already_recorded=Decimal("20.00"))
    assert (second.source_key, second.amount) == ("payment:9001:paid-26.60", Decimal("6.60"))


def qbo_docs(memo_left=10.8, balance=26.6, memo_customer="7", invoice_customer="7"):
    """A credit memo and an invoice as the QBO client parses them (JSON numbers are floats)."""
    memo = {"Id": "41", "DocNumber": "9001-R007001", "TxnDate": "2026-11-21", "TotalAmt": 10.8,
            "RemainingCredit": memo_left, "CustomerRef": {"value": memo_customer}, "CurrencyRef": {"value": "USD"}}
    invoice = {"Id": "40", "DocNumber": "9001", "TotalAmt": 26.6, "Balance": balance,
               "CustomerRef": {"value": invoice_customer}, "CurrencyRef": {"value": "USD"}}
    return memo, invoice


@pytest.mark.parametrize("memo_left, balance, applied", [
    (10.8, 26.6, "10.80"), (10.8, 6.6, "6.60"), (4.2, 4.2, "4.20"), (0.1 + 0.2, 26.6, "0.30")])
def test_credit_application_applies_the_smaller_of_credit_left_and_open_balance(memo_left, balance, applied):
    memo, invoice = qbo_docs(memo_left, balance)
    application = plan_credit_application("7001", "9001", "#9001", memo, invoice)
    assert application.amount == Decimal(applied) and application.skip_reason is None
    assert application.leftover == Decimal(str(memo_left)).quantize(Decimal("0.01")) - Decimal(applied)
    body = render_credit_application(application)
    assert body["TotalAmt"] == Decimal("0.00") and isinstance(body["Line"][0]["Amount"], Decimal)
    assert [(line["LinkedTxn"][0]["TxnType"], line["LinkedTxn"][0]["TxnId"], line["Amount"]) for line in body["Line"]] \
        == [("Invoice", "40", Decimal(applied)), ("CreditMemo", "41", Decimal(applied))]
    assert body["TxnDate"] == "2026-11-21" and body["PaymentRefNum"] == "9001-R007001"
    assert has_marker(body["PrivateNote"], "ecomflux:apply:7001") and has_marker(body["PrivateNote"],
                                                                                "ecomflux:order:9001")
    assert application.source_key == "apply:7001"


@pytest.mark.parametrize("docs, why", [
    (qbo_docs(balance=0), "no open balance"),
    (qbo_docs(memo_left=0), "no credit left"),
    (qbo_docs(invoice_customer="8"), "different customers"),
])
def test_credit_application_with_nothing_to_apply_says_why_and_renders_nothing(docs, why):
    application = plan_credit_application("7001", "9001", "#9001", *docs)
    assert application.amount == 0 and why in application.skip_reason
    with pytest.raises(TranslationError):
        render_credit_application(application)


def test_payment_markers_match_whole_keys_only():
    [plan] = plan_payments(dict(simple_order(), transactions=[
        {"id": 501, "kind": "sale", "status": "success", "amount": "26.60", "gateway": "manual"}]), S)
    assert plan.payment_marker == "ecomflux:payment:9001:501"
    note = render_payment(plan, "7", "40", None, None)["PrivateNote"]
    assert has_marker(note, "ecomflux:payment:9001:501") and not has_marker(note, "ecomflux:payment:9001:50")


def test_an_order_read_after_a_money_refund_is_planned_as_sold():
    """Shopify's current_* figures are net of the refund; the sale document is not (the refund is its
    own document), whatever the refund held: lines, shipping, a discrepancy."""
    from tests.after_sale_helpers import order_with_refund

    order = simple_order()
    for refund in (make_refund(order, qty=1), make_refund(order, qty=2, shipping="5.00"),
                   make_refund(order, qty=1, discrepancy="1.25")):
        plan = plan_order(order_with_refund(order, refund), S)
        assert plan.balance.ok, plan.balance.reason
        assert (plan.document_total, plan.tax_total) == (Decimal("26.60"), Decimal("1.60"))
        assert [l.qty for l in plan.lines if l.kind == "product"] == [2]
        assert not [l for l in plan.lines if l.description == "Shipping refunded"]
        assert plan.reflected_refund_ids == ()


def test_an_edit_that_moved_no_money_stays_netted_next_to_a_money_refund():
    from tests.after_sale_helpers import order_with_refund

    order = simple_order(qty=3, tax="2.40")  # 30.00 + 2.40 + 5.00 = 37.40
    edit = make_refund(order, refund_id=7001, qty=1)
    edit["transactions"] = []
    money = make_refund(order, refund_id=7002, qty=1)
    after = order_with_refund(order, money)  # 10.80 went back: current 26.60
    after["refunds"].append(edit)
    after["line_items"][0]["current_quantity"] = 1  # both took a unit off
    after["current_total_price"] = "15.80"  # the edit took 10.80 off too
    after["current_total_tax"] = "0.80"
    plan = plan_order(after, S)
    assert plan.balance.ok, plan.balance.reason
    assert plan.document_total == Decimal("26.60")  # 37.40 sold, less the edit; the money refund apart
    assert [l.qty for l in plan.lines if l.kind == "product"] == [2]
    assert plan.reflected_refund_ids == ("7001",)


def test_a_money_refund_that_does_not_add_up_flags_the_as_sold_total_with_both_figures():
    from tests.after_sale_helpers import order_with_refund

    order = simple_order()
    after = order_with_refund(order, make_refund(order, qty=1))
    after["current_total_price"] = "15.70"  # a cent off what the refund explains
    plan = plan_order(after, S)
    assert not plan.balance.ok
    assert "as sold totals 26.50" in plan.balance.reason and "10.80 refunded" in plan.balance.reason
    assert plan.balance.computed == Decimal("26.60")
