"""Unit tests: Decimal money helpers and SyncSettings parsing/validation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from ecomflux_app.translate.money import (
    MoneyError, allocate, format_money, money, parse_money, quantize, sum_money,
)
from ecomflux_app.translate.settings import CompanyFacts, SyncSettings


def test_parse_money_reads_strings_ints_and_decimals():
    assert parse_money("12.50") == D("12.50")
    assert parse_money(" 3 ") == D("3")
    assert parse_money(7) == D(7)
    assert parse_money(D("1.005")) == D("1.005")


def test_parse_money_reads_a_json_float_as_its_literal_not_its_binary_value():
    value = parse_money(0.1 + 0.2 - 0.2)  # 0.10000000000000003 as a float
    assert isinstance(value, D)
    assert parse_money(19.99) == D("19.99")


@pytest.mark.parametrize("bad", [None, True, "", "abc", "NaN", "Infinity", [], {}])
def test_parse_money_rejects_non_money_and_names_the_field(bad):
    with pytest.raises(MoneyError) as err:
        parse_money(bad, "line_items[0].price")
    assert "line_items[0].price" in str(err.value)


def test_quantize_rounds_half_up_like_shopify():
    assert quantize(D("0.005")) == D("0.01")
    assert quantize(D("2.675")) == D("2.68")
    assert quantize(D("-0.005")) == D("-0.01")
    assert money("1.5") == D("1.50")
    assert format_money(D("3")) == "3.00"
    assert sum_money([]) == D("0.00")
    assert sum_money([D("0.10"), D("0.20")]) == D("0.30")


@pytest.mark.parametrize("total,weights", [
    (D("10.00"), [D(1), D(1), D(1)]),
    (D("0.01"), [D(5), D(5)]),
    (D("-7.77"), [D("3.10"), D("0"), D("9.99")]),
    (D("5.00"), [D(0), D(0)]),
    (D("100.00"), [D("33.33"), D("33.33"), D("33.34")]),
])
def test_allocate_splits_to_the_cent_and_sums_exactly(total, weights):
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts, D(0)) == total
    assert all(p == quantize(p) for p in parts)
    assert all((p <= 0) if total < 0 else (p >= 0) for p in parts)


def test_allocate_is_deterministic_and_proportional():
    assert allocate(D("10.00"), [D(1), D(1), D(1)]) == [D("3.34"), D("3.33"), D("3.33")]
    assert allocate(D("9.00"), [D(2), D(1)]) == [D("6.00"), D("3.00")]
    with pytest.raises(MoneyError):
        allocate(D("1.00"), [])


def test_settings_defaults_and_round_trip():
    s = SyncSettings()
    assert s.document_type == "sales_receipt" and s.trigger == "fulfilled"
    values = {
        "document_type": "invoice", "trigger": "paid", "deposit_account_id": "35", "income_account_id": 79,
        "doc_number_prefix": "WEB-", "sync_start_date": "2024-01-01", "invoice_terms_days": "15",
        "payment_method_map": {"shopify_payments": "4"},
        "company": {"country": "gb", "home_currency": "gbp", "multicurrency": True, "shipping_allowed": False},
    }
    assert SyncSettings.validate_values(values) == {}
    s = SyncSettings.from_values(values)
    assert s.income_account_id == "79"
    assert s.sync_start_date == date(2024, 1, 1)
    assert s.invoice_terms_days == 15
    assert s.company == CompanyFacts(country="GB", home_currency="GBP", multicurrency=True,
                                     shipping_allowed=False, automated_sales_tax=True)
    assert SyncSettings.from_values(s.to_values()) == s
    assert SyncSettings.validate_values(s.to_values()) == {}


def test_settings_validation_reports_each_bad_field():
    errors = SyncSettings.validate_values({
        "document_type": "estimate", "trigger": "created", "deposit_account_id": "35; DROP",
        "doc_number_prefix": "X" * 11, "sync_start_date": "yesterday", "invoice_terms_days": 400,
        "payment_method_map": ["cash"], "tax_handling": "magic", "customer_matching": "phone",
        "company": {"country": "USA", "multicurrency": "yes"}, "colour": "blue",
    })
    assert set(errors) == {
        "document_type", "trigger", "deposit_account_id", "doc_number_prefix", "sync_start_date",
        "invoice_terms_days", "payment_method_map", "tax_handling", "customer_matching",
        "company.country", "company.multicurrency", "colour",
    }
    assert "sales_receipt" in errors["document_type"]


def test_settings_cross_field_rules():
    assert SyncSettings.validate_values({"tax_handling": "tax_line"}) == {
        "tax_item_id": "required when tax_handling is tax_line"}
    assert "default_customer_id" in SyncSettings.validate_values({"customer_matching": "none"})
    assert SyncSettings.validate_values({"customer_matching": "none", "default_customer_id": "58"}) == {}


def test_from_values_keeps_defaults_for_invalid_fields():
    s = SyncSettings.from_values({"document_type": "nope", "invoice_terms_days": "x", "class_id": ""})
    assert s.document_type == "sales_receipt"
    assert s.invoice_terms_days == 30
    assert s.class_id is None
    assert SyncSettings.from_values(None) == SyncSettings()


def test_validate_on_an_instance_reports_fields_from_values_could_not_read():
    s = SyncSettings.from_values({"document_type": "estimate", "tax_handling": "tax_line"})
    assert s.document_type == "sales_receipt"
    assert set(s.validate()) == {"document_type", "tax_item_id"}
    assert "parse_errors" not in s.to_values()
    assert SyncSettings.from_values({"parse_errors": {"x": "y"}}).validate() == {"parse_errors": "unknown setting"}
    assert SyncSettings.from_values(SyncSettings(document_type="invoice").to_values()).validate() == {}
