"""The document-kind registry: every kind has what the rest of the code looks up, and one reader reads totals."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest

from ecomflux_app.quickbooks import notifications
from ecomflux_app.quickbooks.client import QboClient
from ecomflux_app.sandbox import intuit_server
from ecomflux_app.sync import reconcile
from ecomflux_app.translate import document_kinds as dk
from ecomflux_app.translate.render import document_totals
from ecomflux_app.translate.settings import DOCUMENT_TYPES, SyncSettings

D = Decimal


def problems(kind: dk.DocumentKind) -> list[str]:
    """What a kind lacks that the rest of the code looks up (empty for a complete one)."""
    out = []
    if not kind.entity or not kind.entity[0].isupper():
        out.append("entity: a QBO entity name")
    if kind.endpoint != kind.entity.lower():
        out.append("endpoint: QBO's path segment is the lower-cased entity name")
    if not kind.label.strip():
        out.append("label: what merchants and support read")
    if kind.role not in dk.ROLES:
        out.append(f"role: one of {dk.ROLES}")
    if kind.undo not in dk.UNDO_OPERATIONS:
        out.append(f"undo: one of {dk.UNDO_OPERATIONS}")
    if kind.ledger_total not in (dk.TOTAL_AMOUNT, dk.APPLIED_TO_INVOICES):
        out.append("ledger_total: which reading the ledger keeps")
    if kind.sign not in (1, -1):
        out.append("sign: +1 or -1")
    module, _, function = kind.translator.partition(".")
    try:
        translator = getattr(importlib.import_module(f"ecomflux_app.translate.{module}"), function, None)
    except ImportError:
        translator = None
    if not callable(translator):
        out.append(f"translator: {kind.translator} is not a function in translate/")
    if kind.role == dk.SALE:
        if not kind.setting or not kind.setting_hint:
            out.append("setting: a sale kind is chosen in the settings by its key, with a hint")
        for name in ("refunded_as", "adjusted_down_as"):
            target = dk.kind_or_none(getattr(kind, name))
            if target is None or target.role != dk.REFUND:
                out.append(f"{name}: a registered refund kind")
    elif kind.setting:
        out.append("setting: only sale kinds are a document_type choice")
    if kind.takes_payments and not dk.entities(dk.PAYMENT):
        out.append("takes_payments: needs a payment kind")
    if kind.entity not in intuit_server.ENTITIES:
        out.append("the Intuit sandbox does not know the entity, so no test can post it")
    return out


@pytest.mark.parametrize("kind", dk.KINDS, ids=lambda k: k.entity)
def test_every_kind_has_what_the_code_looks_up(kind):
    assert problems(kind) == []


def test_a_half_added_kind_is_caught():
    half = dk.DocumentKind(entity="Estimate", endpoint="estimate", label="", role=dk.SALE,
                           translator="estimate.render_estimate", undo=dk.DELETE)
    found = problems(half)
    assert any(p.startswith("label") for p in found)
    assert any(p.startswith("translator") for p in found)
    assert any(p.startswith("setting") for p in found)
    assert any(p.startswith("refunded_as") for p in found)


def test_keys_are_unique_and_lookups_agree():
    assert len({k.entity for k in dk.KINDS}) == len(dk.KINDS)
    assert len({k.setting for k in dk.KINDS if k.setting}) == len(dk.entities(dk.SALE))
    for kind in dk.KINDS:
        assert dk.kind_of(kind.entity) is kind and dk.label(kind.entity) == kind.label
    assert dk.kind_or_none(None) is None and dk.label("Estimate") == "Estimate"
    assert dk.kind_for_setting("invoice") is dk.INVOICE and dk.kind_for_setting("sales_receipt") is dk.SALES_RECEIPT


def test_settings_offer_each_sale_kind_and_accept_it():
    assert DOCUMENT_TYPES == tuple(dk.kind_of(e).setting for e in dk.entities(dk.SALE))
    assert SyncSettings().document_type == dk.DEFAULT_DOCUMENT_TYPE == "sales_receipt"
    for key in DOCUMENT_TYPES:
        assert SyncSettings.validate_values({"document_type": key}) == {}


def test_the_code_that_lists_kinds_reads_the_registry():
    assert set(notifications.DOCUMENT_ENTITIES) == {k.entity for k in dk.KINDS}
    assert reconcile.DOCUMENT_ENTITIES == dk.entities(dk.SALE) == ("SalesReceipt", "Invoice")


@pytest.mark.parametrize("kind", dk.KINDS, ids=lambda k: k.entity)
def test_undo_takes_each_kind_back_its_own_way(kind):
    sent = []
    client = object.__new__(QboClient)
    client.request = lambda method, path, params=None, body=None, request_id=None: (
        sent.append((method, path, params, body)) or {kind.entity: {"Id": "7"}})
    assert client.undo(kind.entity, "7", "2", "rid") == {"Id": "7"}
    method, path, params, body = sent[0]
    assert (method, path, body["Id"], body["SyncToken"]) == ("POST", kind.endpoint, "7", "2")
    expected = {dk.VOID: {"operation": "void"}, dk.DELETE: {"operation": "delete"},
                dk.VOID_BY_UPDATE: {"operation": "update", "include": "void"}}[kind.undo]
    assert params == expected


def test_void_is_what_it_was_for_the_order_documents():
    assert (dk.INVOICE.undo, dk.SALES_RECEIPT.undo, dk.DEPOSIT_DOC.undo) == (dk.VOID, dk.VOID_BY_UPDATE, dk.DELETE)


# -- the one reader of a QBO document's totals --------------------------------------------------------
def test_reader_reads_a_qbo_answer_as_cents():
    answer = {"TotalAmt": 27.5, "TxnTaxDetail": {"TotalTax": 2}, "Balance": "27.50", "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 20, "SalesItemLineDetail": {"ItemRef": {"value": "SHIP"}}},
        {"DetailType": "SalesItemLineDetail", "Amount": 8.5, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}},
        {"DetailType": "DiscountLineDetail", "Amount": 3},
        {"DetailType": "SubTotalLineDetail", "Amount": 25.5}]}
    totals = dk.read_totals(answer, {"SHIP"})
    assert (totals.total, totals.tax, totals.items, totals.discounts, totals.shipping, totals.balance) == (
        D("27.50"), D("2.00"), D("28.5"), D("3"), D("20"), D("27.50"))
    assert totals.computed == D("27.50")
    assert dk.read_totals({}).total is None and dk.qbo_total_of("SalesReceipt", {"Id": "1"}) is None


def test_a_credit_memo_leaves_remaining_credit_and_a_payment_counts_what_it_settled():
    memo = {"TotalAmt": "30.00", "Balance": "30.00", "RemainingCredit": "4.20"}
    assert dk.read_totals(memo).balance == D("4.20")
    application = {"TotalAmt": 0, "Line": [
        {"Amount": 12.5, "LinkedTxn": [{"TxnId": "9", "TxnType": "Invoice"}]},
        {"Amount": 12.5, "LinkedTxn": [{"TxnId": "8", "TxnType": "CreditMemo"}]}]}
    assert dk.qbo_total_of("Payment", application) == D("12.50")  # what it settled on the invoice
    assert dk.read_totals(application).total == D("0.00")  # what it put in Undeposited Funds
    assert dk.qbo_total_of("Payment", {"TotalAmt": "5"}) == D("5.00")
    assert dk.qbo_total_of("CreditMemo", memo) == D("30.00") and dk.qbo_total_of(None, memo) == D("30.00")


def test_a_create_body_is_totalled_the_way_qbo_will():
    body = {"Line": [{"DetailType": "SalesItemLineDetail", "Amount": D("10.00")},
                     {"DetailType": "DiscountLineDetail", "Amount": D("1.00")}],
            "TxnTaxDetail": {"TotalTax": D("0.72")}}
    assert document_totals(body) == {"items": D("10.00"), "discounts": D("1.00"), "tax": D("0.72"),
                                     "total": D("9.72")}
    assert dk.read_totals(body).total is None


def test_signs_and_clearing_match_what_payouts_link():
    from ecomflux_app.translate.deposit import CHARGE_DOCUMENTS, REFUND_DOCUMENTS

    assert CHARGE_DOCUMENTS == ("SalesReceipt", "Payment") and REFUND_DOCUMENTS == ("RefundReceipt",)
    assert [k.entity for k in dk.KINDS if k.sign < 0] == ["RefundReceipt", "CreditMemo"]
    assert dk.SALES_RECEIPT.clearing_by_default and not dk.REFUND_RECEIPT.clearing_by_default
