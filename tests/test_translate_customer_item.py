"""Unit tests: customer names/payload/match keys, item names/payload, requestids, query escaping."""

from __future__ import annotations

import pytest

from ecomflux_app.translate.customer import (
    Address, CustomerIdentity, customer_payload, display_name_candidates, email_key, match_keys,
    sanitize_display_name,
)
from ecomflux_app.translate.item import item_payload, name_candidates, sanitize_item_name, sanitize_sku, with_suffix
from ecomflux_app.translate.query import escape, quote, select_eq
from ecomflux_app.translate.requestid import request_id

ADDR = Address(line1="1 Quay St", city="Boston", province_code="MA", postal_code="02110", country_code="US")


def test_display_name_is_sanitized():
    assert sanitize_display_name("Acme:\tTools\nInc ") == "Acme Tools Inc"
    assert len(sanitize_display_name("x" * 600)) == 100


def test_display_name_candidates_are_deterministic_and_distinct():
    ident = CustomerIdentity(first_name="D'Arcy", last_name="O'Brien", company="O'Brien: Tools", email="d@example.com")
    first = list(display_name_candidates(ident, count=5))
    assert first == list(display_name_candidates(ident, count=5))
    assert first[0] == "D'Arcy O'Brien"
    assert first[1] == "D'Arcy O'Brien (O'Brien Tools)"
    assert first[2:] == ["D'Arcy O'Brien (2)", "D'Arcy O'Brien (3)", "D'Arcy O'Brien (4)"]
    assert len(set(n.lower() for n in first)) == len(first)
    assert all(":" not in n and "\t" not in n and "\n" not in n for n in first)


def test_display_name_falls_back_to_company_then_email_and_guest_has_none():
    assert next(display_name_candidates(CustomerIdentity(company="Acme"))) == "Acme"
    assert next(display_name_candidates(CustomerIdentity(email="a@b.co"))) == "a@b.co"
    assert list(display_name_candidates(CustomerIdentity(guest=True))) == []


def test_long_names_keep_their_suffix_within_the_limit():
    ident = CustomerIdentity(first_name="A" * 90, last_name="B" * 90)
    for name in display_name_candidates(ident, count=12):
        assert len(name) <= 100
    assert list(display_name_candidates(ident, count=12))[-1].endswith("(12)")


def test_customer_payload_has_contact_and_addresses():
    ident = CustomerIdentity(email="jane@example.com", first_name="Jane", last_name="Doe", company="Doe Co",
                             phone="+1 503 555 0101", billing=ADDR, shipping=ADDR)
    body = customer_payload(ident, "Jane Doe", currency="EUR")
    assert body["DisplayName"] == "Jane Doe"
    assert body["GivenName"] == "Jane" and body["FamilyName"] == "Doe" and body["CompanyName"] == "Doe Co"
    assert body["PrimaryEmailAddr"] == {"Address": "jane@example.com"}
    assert body["PrimaryPhone"] == {"FreeFormNumber": "+1 503 555 0101"}
    assert body["ShipAddr"] == {"Line1": "1 Quay St", "City": "Boston", "CountrySubDivisionCode": "MA",
                                "PostalCode": "02110", "Country": "US"}
    assert body["BillAddr"] == body["ShipAddr"]
    assert body["CurrencyRef"] == {"value": "EUR"}
    assert "PrimaryEmailAddr" not in customer_payload(CustomerIdentity(email="not an email"), "X")
    # A control character (a JSON "\u0000" in the webhook) makes the address unusable, not the customer.
    assert "PrimaryEmailAddr" not in customer_payload(CustomerIdentity(email="ann\x00@example.com"), "X")
    assert customer_payload(CustomerIdentity(email="séan@exämple.com"), "X")["PrimaryEmailAddr"]


def test_match_keys_are_hashes_normalized_and_hold_no_personal_data():
    a = CustomerIdentity(email=" Jane.Doe@Example.com ", first_name="Jane", last_name="Doe", shipping=ADDR)
    b = CustomerIdentity(email="jane.doe@example.com", first_name="JANE", last_name="  doe", shipping=ADDR)
    keys_a, keys_b = match_keys(a), match_keys(b)
    assert keys_a == keys_b and len(keys_a) == 2
    assert keys_a[0].startswith("email:") and keys_a[1].startswith("namezip:")
    for key in keys_a:
        assert "jane" not in key.lower() and "02110" not in key and len(key) <= 128
    assert match_keys(a, salt="shop-a") != match_keys(a, salt="shop-b")
    assert match_keys(a, currency="EUR")[0].endswith(":EUR")
    assert match_keys(CustomerIdentity(first_name="Jane")) == []  # a name alone is not enough
    assert email_key("x@y.z") != email_key("x@y.zz")


def test_item_name_rules():
    assert sanitize_item_name("Chef's Knife: 8\"\tBlue") == "Chef's Knife 8\" Blue"
    assert len(sanitize_item_name("n" * 300)) == 100
    assert sanitize_item_name("  ::  ") == "Item"
    assert with_suffix("n" * 100, 3) == "n" * 96 + " (3)"
    names = list(name_candidates("Mug: Blue", count=3))
    assert names == ["Mug Blue", "Mug Blue (2)", "Mug Blue (3)"]
    assert sanitize_sku(" KNF:8IN\n") == "KNF:8IN"
    assert sanitize_sku("   ") is None


def test_item_payload():
    body = item_payload("Mug: Blue", item_type="NonInventory", income_account_id="79", sku="MUG-1",
                        description="Ceramic mug", taxable=True)
    assert body == {"Name": "Mug Blue", "Type": "NonInventory", "IncomeAccountRef": {"value": "79"},
                    "Sku": "MUG-1", "Description": "Ceramic mug", "Taxable": True}
    assert item_payload("Tips", item_type="Service", income_account_id=None)["Type"] == "Service"
    with pytest.raises(ValueError):
        item_payload("X", item_type="Inventory", income_account_id="1")


def test_request_id_is_deterministic_bounded_and_distinct():
    rid = request_id("a.myshopify.com", "order:1", "SalesReceipt")
    assert rid == request_id("a.myshopify.com", "order:1", "SalesReceipt")
    assert len(rid) <= 50
    others = {
        request_id("b.myshopify.com", "order:1", "SalesReceipt"),
        request_id("a.myshopify.com", "order:2", "SalesReceipt"),
        request_id("a.myshopify.com", "order:1", "Invoice"),
    }
    assert rid not in others and len(others) == 3
    with pytest.raises(ValueError):
        request_id("", "order:1", "SalesReceipt")


def test_query_escaping():
    assert escape("O'Brien") == "O\\'Brien"
    assert quote("D'Arcy O'Brien") == "'D\\'Arcy O\\'Brien'"
    assert select_eq("Customer", "DisplayName", "O'Brien", active_any=True) == (
        "SELECT * FROM Customer WHERE DisplayName = 'O\\'Brien' AND Active IN (true, false)")
    assert select_eq("Item", "Sku", "A", max_results=5000).endswith("MAXRESULTS 1000")
    with pytest.raises(ValueError):
        select_eq("Customer; DROP", "DisplayName", "x")


def test_guest_customer_payload():
    from ecomflux_app.translate.customer import guest_customer_payload

    assert guest_customer_payload()["DisplayName"] == "Shopify Guest"
    eur = guest_customer_payload("EUR")
    assert eur["DisplayName"] == "Shopify Guest (EUR)" and eur["CurrencyRef"] == {"value": "EUR"}
