"""Hypothesis properties: for generated orders the document adds up to Shopify's total to the cent,
or the balance check fails loudly; no float ever appears."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings as hsettings, strategies as st

from ecomflux_app.translate.customer import CustomerIdentity, display_name_candidates
from ecomflux_app.translate.item import name_candidates
from ecomflux_app.translate.money import allocate, quantize
from ecomflux_app.translate.order import (
    Refs, TranslationError, doc_number_for, document_totals, plan_order, render_document,
)
from ecomflux_app.translate.requestid import request_id
from ecomflux_app.translate.settings import CompanyFacts, SyncSettings
from tests.helpers import walk

CENT = D("0.01")
cents = st.integers(min_value=0, max_value=200_000).map(lambda c: D(c) * CENT)


def _m(value: D) -> str:
    return f"{value:.2f}"


@st.composite
def orders(draw):
    """A Shopify-shaped order plus the totals Shopify would show, computed independently."""
    taxes_included = draw(st.booleans())
    n_apps = draw(st.integers(0, 3))
    apps = [{"type": draw(st.sampled_from(["discount_code", "automatic", "manual"])),
             "code": f"CODE{i}", "title": f"Promo {i}", "target_type": "line_item"} for i in range(n_apps)]
    ship_app_index = None
    if draw(st.booleans()):
        ship_app_index = len(apps)
        apps.append({"type": "discount_code", "code": "SHIP", "target_type": "shipping_line"})

    line_items, subtotal, line_disc, tax = [], D(0), D(0), D(0)
    for i in range(draw(st.integers(1, 5))):
        qty = draw(st.integers(1, 6))
        current = draw(st.integers(0, qty)) if draw(st.booleans()) else qty
        price = draw(cents)
        gift = draw(st.integers(0, 9)) == 0
        allocs = []
        if n_apps and not gift:
            room = price * qty
            for idx in draw(st.lists(st.integers(0, n_apps - 1), max_size=2, unique=True)):
                amount = quantize(room * D(draw(st.integers(0, 100))) / 100)
                room -= amount
                allocs.append({"amount": _m(amount), "discount_application_index": idx})
        line_tax = D(0) if gift else D(draw(st.integers(0, 5000))) * CENT
        li = {"id": 100 + i, "title": draw(st.sampled_from(["Mug", "Chef's Knife: 8in", "", "Tee"])),
              "sku": draw(st.sampled_from(["SKU-1", "", None, f"S{i}"])), "quantity": qty, "price": _m(price),
              "gift_card": gift, "taxable": not gift and draw(st.booleans()), "discount_allocations": allocs,
              "tax_lines": [{"title": "Tax", "price": _m(line_tax), "rate": "0.1"}] if line_tax else []}
        if current != qty or draw(st.booleans()):
            li["current_quantity"] = current
        line_items.append(li)
        if current:
            subtotal += price * current
            line_disc += sum((quantize(D(a["amount"]) * current / qty) for a in allocs), D(0))
            tax += quantize(line_tax * current / qty)

    shipping_lines, ship, ship_disc = [], D(0), D(0)
    for i in range(draw(st.integers(0, 2))):
        price = draw(cents)
        discount = quantize(price * D(draw(st.integers(0, 100))) / 100) if ship_app_index is not None else D(0)
        sl = {"id": 900 + i, "title": f"Ship {i}", "price": _m(price), "discounted_price": _m(price - discount),
              "tax_lines": []}
        if discount and draw(st.booleans()):
            sl["discount_allocations"] = [{"amount": _m(discount), "discount_application_index": ship_app_index}]
        shipping_lines.append(sl)
        ship += price
        ship_disc += discount

    tip = D(draw(st.integers(0, 2000))) * CENT if draw(st.booleans()) else D(0)
    total = subtotal - line_disc + ship - ship_disc + (D(0) if taxes_included else tax) + tip
    order = {
        "id": draw(st.integers(1, 10**13)), "name": f"#{draw(st.integers(1, 10**8))}",
        "processed_at": "2024-05-14T10:00:00-04:00", "currency": "USD", "presentment_currency": "USD",
        "email": draw(st.sampled_from(["a@example.com", None])), "taxes_included": taxes_included,
        "discount_applications": apps, "line_items": line_items, "shipping_lines": shipping_lines,
        "current_total_tax": _m(tax), "total_tip_received": _m(tip), "current_total_price": _m(total),
        "payment_gateway_names": ["shopify_payments"],
    }
    redeemed = D(0)
    if draw(st.booleans()) and total > 0:
        redeemed = quantize(total * D(draw(st.integers(0, 100))) / 100)
        order["transactions"] = [{"kind": "sale", "gateway": "gift_card", "status": "success", "amount": _m(redeemed)}]
    expected = {"total": total, "discount": line_disc + ship_disc, "shipping": ship, "tax": tax, "redeemed": redeemed}
    return order, expected


settings_strategy = st.builds(
    SyncSettings,
    document_type=st.sampled_from(["sales_receipt", "invoice"]),
    discount_item_id=st.sampled_from([None, "80"]),
    tax_handling=st.sampled_from(["shopify", "tax_line"]),
    tax_item_id=st.just("90"),
    doc_number_prefix=st.sampled_from(["", "WEB-", "SHOPIFY-US-"]),
    company=st.builds(CompanyFacts, country=st.sampled_from(["US", "GB", "CA"]),
                      shipping_allowed=st.booleans()),
)


def _render(plan):
    return render_document(plan, Refs(customer_id="1", items={k: "7" for k in plan.item_keys}))


@hsettings(max_examples=300, deadline=None)
@given(orders(), settings_strategy)
def test_generated_orders_add_up_to_shopifys_total_to_the_cent(generated, settings):
    order, expected = generated
    plan = plan_order(order, settings)
    if expected["total"] - expected["redeemed"] < 0:
        # Prorating discounts of a partly removed line can leave more discount than value:
        # no real order looks like that, and it must be refused, not posted.
        assert not plan.balance.ok and "below zero" in plan.balance.reason
        return
    assert plan.balance.ok, plan.balance.reason
    assert plan.balance.expected == plan.balance.computed == expected["total"]
    doc = _render(plan)
    totals = document_totals(doc)
    # lines + tax + shipping - discounts == total (the document total is net of gift card payments)
    assert totals["total"] == plan.document_total == expected["total"] - expected["redeemed"]
    assert plan.discount_total == expected["discount"]
    assert plan.shipping_total == expected["shipping"]
    assert plan.tax_total == expected["tax"]
    shown_discounts = totals["discounts"] + -sum(
        (l["Amount"] for l in doc["Line"] if l["DetailType"] == "SalesItemLineDetail"
         and l["SalesItemLineDetail"]["ItemRef"]["value"] == "80"), D(0))
    if plan.tax_mode == "tax_inclusive":
        # Lines and discounts are net of their tax share; the gross sits in TaxInclusiveAmt.
        gross = sum((l["SalesItemLineDetail"]["TaxInclusiveAmt"] for l in doc["Line"]
                     if l["DetailType"] == "SalesItemLineDetail"), D(0))
        gross_discounts = D(0) if settings.discount_item_id else expected["discount"]
        assert gross - gross_discounts == expected["total"] - expected["redeemed"]
    else:
        assert shown_discounts == expected["discount"]
    for value in walk(doc):
        assert not isinstance(value, float)
    for line in doc["Line"]:
        assert isinstance(line["Amount"], D) and line["Amount"] == quantize(line["Amount"])
        if line["DetailType"] == "SalesItemLineDetail":
            detail = line["SalesItemLineDetail"]
            assert quantize(detail["Qty"] * detail["UnitPrice"]) == line["Amount"]
    assert len(doc["DocNumber"]) <= 21


@hsettings(max_examples=200, deadline=None)
@given(orders(), settings_strategy, st.integers(-500, 500).filter(lambda c: c != 0))
def test_any_cent_of_difference_fails_the_balance_check_loudly(generated, settings, delta):
    order, expected = generated
    order["current_total_price"] = _m(expected["total"] + D(delta) * CENT)
    plan = plan_order(order, settings)
    assert not plan.balance.ok
    assert plan.balance.expected != plan.balance.computed
    assert _m(plan.balance.expected) in plan.balance.reason and _m(plan.balance.computed) in plan.balance.reason


@hsettings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=20))
def test_arbitrary_json_is_translated_or_refused_with_a_translation_error(junk):
    try:
        plan_order(junk if isinstance(junk, dict) else {"id": 1, "name": "#1", "line_items": junk}, SyncSettings())
    except TranslationError as err:
        assert err.field
    # anything else (KeyError, TypeError, ...) fails the test


@given(st.integers(-10**9, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_allocate_always_sums_to_the_total(total_cents, weights):
    total = D(total_cents) * CENT
    parts = allocate(total, [D(w) for w in weights])
    assert sum(parts, D(0)) == total
    assert all(p == quantize(p) for p in parts)


@given(st.text(max_size=60), st.text(max_size=12))
def test_doc_number_is_bounded_and_deterministic(name, prefix):
    assert len(doc_number_for(name, prefix)) <= 21
    assert doc_number_for(name, prefix) == doc_number_for(name, prefix)


@given(st.text(max_size=300), st.text(max_size=300), st.one_of(st.none(), st.text(max_size=120)))
def test_names_never_carry_forbidden_characters(first, last, company):
    ident = CustomerIdentity(first_name=first or None, last_name=last or None, company=company or None)
    for name in list(display_name_candidates(ident, count=5)) + list(name_candidates(first + last, count=3)):
        assert name and len(name) <= 100
        assert not any(c in name for c in ":\t\n\r")


@given(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1))
def test_request_ids_are_at_most_50_chars(shop, key, kind):
    assert len(request_id(shop, key, kind)) <= 50


@st.composite
def two_currency_orders(draw):
    """A USD shop selling to a EUR buyer: every amount as *_set in both currencies, totals per currency."""
    rate = draw(st.sampled_from([D("0.5"), D("0.92"), D("1.37"), D("0.07")]))
    views = {"shop_money": lambda a: a, "presentment_money": lambda a: quantize(a * rate)}
    codes = {"shop_money": "USD", "presentment_money": "EUR"}

    def bag(atoms):  # atoms: {view: amount}
        return {v: {"amount": _m(atoms[v]), "currency_code": codes[v]} for v in views}

    totals = {v: D(0) for v in views}
    taxes = {v: D(0) for v in views}
    line_items = []
    for i in range(draw(st.integers(1, 4))):
        qty = draw(st.integers(1, 5))
        current = draw(st.integers(0, qty))
        price = draw(cents)
        disc = quantize(price * qty * D(draw(st.integers(0, 50))) / 100)
        tax = D(draw(st.integers(0, 3000))) * CENT
        p = {v: f(price) for v, f in views.items()}
        d = {v: f(disc) for v, f in views.items()}
        t = {v: f(tax) for v, f in views.items()}
        line_items.append({
            "id": 100 + i, "title": "Mug", "sku": f"S{i}", "quantity": qty, "current_quantity": current,
            "price": _m(price), "price_set": bag(p), "taxable": True,
            "discount_allocations": [{"amount": _m(disc), "amount_set": bag(d), "discount_application_index": 0}],
            "tax_lines": [{"title": "VAT", "price": _m(tax), "price_set": bag(t), "rate": "0.1"}],
        })
        if current:
            for v in views:
                totals[v] += p[v] * current - quantize(d[v] * current / qty)
                taxes[v] += quantize(t[v] * current / qty)
    ship = draw(cents)
    s = {v: f(ship) for v, f in views.items()}
    for v in views:
        totals[v] += s[v] + taxes[v]
    order = {
        "id": 42, "name": "#42", "processed_at": "2024-05-14T10:00:00Z", "currency": "USD",
        "presentment_currency": "EUR", "taxes_included": False, "email": "lena@example.de",
        "discount_applications": [{"type": "discount_code", "code": "X", "target_type": "line_item"}],
        "line_items": line_items,
        "shipping_lines": [{"id": 9, "title": "Intl", "price": _m(ship), "price_set": bag(s),
                            "discounted_price": _m(ship), "discounted_price_set": bag(s), "tax_lines": []}],
        "current_total_tax": _m(taxes["shop_money"]), "current_total_tax_set": bag(taxes),
        "current_total_price": _m(totals["shop_money"]), "current_total_price_set": bag(totals),
        "total_price_set": bag(totals), "total_tip_received": "0.00",
    }
    return order, totals


@hsettings(max_examples=200, deadline=None)
@given(two_currency_orders(), st.booleans())
def test_foreign_currency_orders_balance_in_the_currency_posted(generated, multicurrency):
    order, totals = generated
    settings = SyncSettings(company=CompanyFacts(multicurrency=multicurrency))
    plan = plan_order(order, settings)
    assert plan.balance.ok, plan.balance.reason
    doc = _render(plan)
    if multicurrency:
        assert plan.currency == "EUR" and doc["CurrencyRef"] == {"value": "EUR"}
        assert plan.balance.expected == totals["presentment_money"]
    else:
        assert plan.currency == "USD" and "CurrencyRef" not in doc
        assert plan.balance.expected == totals["shop_money"]
    assert document_totals(doc)["total"] == plan.balance.expected


GOLDEN_ORDERS = sorted((__import__("pathlib").Path(__file__).parent / "golden" / "orders").glob("*.json"))
junk_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True),
                        st.text(max_size=6), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@hsettings(max_examples=int(__import__("os").environ.get("ECOMFLUX_FUZZ_EXAMPLES", "400")), deadline=None)
@given(st.sampled_from(GOLDEN_ORDERS), st.data(), junk_values)
def test_a_corrupted_real_order_is_translated_or_refused_with_a_translation_error(path, data, junk):
    import json

    order = json.loads(path.read_text())
    paths = [p for p in _paths(order) if p]
    target = data.draw(st.sampled_from(paths))
    node = order
    for key in target[:-1]:
        node = node[key]
    node[target[-1]] = junk
    try:
        plan = plan_order(order, SyncSettings())
        _render(plan)
    except TranslationError as err:
        assert err.field and err.message
