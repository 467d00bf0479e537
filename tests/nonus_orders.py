"""Realistic non-US Shopify orders (UK, Canada, Australia, EU) with Shopify's own tax arithmetic.

Shopify computes tax per line and per tax line, on the line's price x quantity less its discounts,
rounded half up; on tax-inclusive prices each tax line is the part of that amount that is tax:
amount x rate / (1 + all rates). The order's tax is the sum of those, its total the lines + shipping
- discounts (+ tax when prices exclude it). Every figure also comes as *_set with shop and
presentment money, so the same builder serves multicurrency orders (presentment = shop x fx).
"""

from __future__ import annotations

import copy
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")

# Shopify tax line titles and rates per regime (what Shopify sends for a destination).
UK_VAT = [("GB VAT", "0.2")]
UK_REDUCED = [("GB VAT", "0.05")]
UK_ZERO = [("GB VAT", "0.0")]
ON_HST = [("HST", "0.13")]
NS_HST = [("HST", "0.15")]
BC = [("GST", "0.05"), ("PST", "0.07")]
QC = [("GST", "0.05"), ("QST", "0.09975")]
AB_GST = [("GST", "0.05")]
AU_GST = [("GST", "0.1")]
DE_VAT = [("DE MwSt", "0.19")]
DE_REDUCED = [("DE MwSt", "0.07")]
FR_OSS = [("FR TVA", "0.2")]
AT_OSS = [("AT USt", "0.2")]
NL_OSS = [("NL btw", "0.21")]
IE_VAT = [("IE VAT", "0.23")]  # a rate the seeded German company has no code for

REGIONS = {
    "GB": {"currency": "GBP", "country": "GB", "province": None, "inclusive": True},
    "CA": {"currency": "CAD", "country": "CA", "province": "ON", "inclusive": False},
    "AU": {"currency": "AUD", "country": "AU", "province": "NSW", "inclusive": True},
    "DE": {"currency": "EUR", "country": "DE", "province": None, "inclusive": True},
}


def r2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money_set(amount: Decimal, shop_cur: str, pres_cur: str, fx: Decimal) -> dict:
    pres = amount if shop_cur == pres_cur else r2(amount * fx)
    return {"shop_money": {"amount": f"{amount:.2f}", "currency_code": shop_cur},
            "presentment_money": {"amount": f"{pres:.2f}", "currency_code": pres_cur}}


def taxes_on(base: Decimal, rates: list[tuple[str, str]], inclusive: bool) -> list[tuple[str, Decimal, Decimal]]:
    total_rate = sum((Decimal(r) for _, r in rates), Decimal(0))
    out = []
    for title, rate in rates:
        rate_d = Decimal(rate)
        tax = r2(base * rate_d / (1 + total_rate)) if inclusive else r2(base * rate_d)
        out.append((title, rate_d, tax))
    return out


def build_order(order_id: int, *, lines: list[dict], shipping: list[dict] | None = None, inclusive: bool,
                currency: str, country: str, province: str | None = None, presentment: str | None = None,
                fx: str = "1", email: str = "ann@example.co.uk", first: str = "Ann", last: str = "Lee",
                discount_code: str | None = None) -> dict:
    """lines: {title, sku, price, qty, rates, taxable=True, discount="0"}; shipping: {title, price, rates,
    discount="0"}. Presentment amounts are shop amounts x fx (what the buyer saw and paid)."""
    pres_cur = presentment or currency
    fx_d = Decimal(fx)
    pres = pres_cur != currency

    def mset(amount: Decimal) -> dict:
        return money_set(amount, currency, pres_cur, fx_d)

    def amounts(amount: Decimal) -> Decimal:
        """The figure in the document's currency for the tax arithmetic (shop money)."""
        return amount

    # Shopify computes in the presentment currency when the buyer pays in another one; the
    # shop amounts are then converted. Here tax is computed in shop money and each amount is
    # converted on its own, which is how the *_set bags arrive (each converted and rounded).
    items, order_tax_lines = [], {}
    subtotal = total_tax = discounts = ZERO = Decimal("0.00")
    apps = [{"type": "discount_code", "code": discount_code, "target_type": "line_item", "value_type": "fixed_amount",
             "allocation_method": "each"}] if discount_code else []
    for k, spec in enumerate(lines):
        price, qty = Decimal(spec["price"]), int(spec["qty"])
        discount = Decimal(spec.get("discount", "0"))
        gross = r2(price * qty)
        base = gross - discount
        taxable = spec.get("taxable", True)
        tax_lines = []
        for title, rate, tax in (taxes_on(base, spec["rates"], inclusive) if taxable else []):
            tax_lines.append({"title": title, "rate": float(rate), "price": f"{tax:.2f}", "price_set": mset(tax)})
            total_tax += tax
            key = (title, rate)
            order_tax_lines[key] = order_tax_lines.get(key, ZERO) + tax
        allocs = [{"amount": f"{discount:.2f}", "amount_set": mset(discount), "discount_application_index": 0}] \
            if discount else []
        discounts += discount
        subtotal += gross
        items.append({"id": order_id * 100 + k, "title": spec["title"], "name": spec["title"], "sku": spec.get("sku"),
                      "quantity": qty, "current_quantity": qty, "price": f"{price:.2f}", "price_set": mset(price),
                      "taxable": taxable, "gift_card": bool(spec.get("gift_card")), "product_id": 7000 + k,
                      "tax_lines": tax_lines, "discount_allocations": allocs})
    ship_out, ship_total = [], ZERO
    for k, spec in enumerate(shipping or []):
        price = Decimal(spec["price"])
        discount = Decimal(spec.get("discount", "0"))
        tax_lines = []
        for title, rate, tax in taxes_on(price - discount, spec.get("rates", []), inclusive):
            tax_lines.append({"title": title, "rate": float(rate), "price": f"{tax:.2f}", "price_set": mset(tax)})
            total_tax += tax
            key = (title, rate)
            order_tax_lines[key] = order_tax_lines.get(key, ZERO) + tax
        ship_total += price - discount
        ship_out.append({"id": order_id * 100 + 50 + k, "title": spec["title"], "code": spec["title"],
                         "price": f"{price:.2f}", "price_set": mset(price),
                         "discounted_price": f"{price - discount:.2f}", "discounted_price_set": mset(price - discount),
                         "discount_allocations": [], "tax_lines": tax_lines})
    total = subtotal - discounts + ship_total + (ZERO if inclusive else total_tax)

    def pres_of(amount: Decimal) -> Decimal:
        return amount if not pres else r2(amount * fx_d)

    # Presentment totals are the sums of the converted parts (Shopify adds the buyer's figures).
    if pres:
        p_sub = sum((pres_of(Decimal(i["price"])) * i["quantity"] for i in items), ZERO)
        p_disc = sum((pres_of(Decimal(a["amount"])) for i in items for a in i["discount_allocations"]), ZERO)
        p_ship = sum((pres_of(Decimal(s["discounted_price"])) for s in ship_out), ZERO)
        p_tax = sum((pres_of(Decimal(t["price"])) for i in items + ship_out for t in i["tax_lines"]), ZERO)
        p_total = p_sub - p_disc + p_ship + (ZERO if inclusive else p_tax)
    else:
        p_tax, p_total, p_disc = total_tax, total, discounts

    def both(shop_amount: Decimal, pres_amount: Decimal) -> dict:
        return {"shop_money": {"amount": f"{shop_amount:.2f}", "currency_code": currency},
                "presentment_money": {"amount": f"{pres_amount:.2f}", "currency_code": pres_cur}}

    address = {"first_name": first, "last_name": last, "address1": "1 High St", "city": "Town", "zip": "X1 1XX",
               "province_code": province, "country_code": country}
    when = "2026-11-20T15:00:00+00:00"
    return copy.deepcopy({
        "id": order_id, "name": f"#{order_id}", "email": email, "currency": currency, "presentment_currency": pres_cur,
        "processed_at": when, "created_at": when, "taxes_included": inclusive, "financial_status": "paid",
        "customer": {"id": 5000 + order_id % 7, "email": email, "first_name": first, "last_name": last},
        "billing_address": address, "shipping_address": address,
        "line_items": items, "shipping_lines": ship_out, "discount_applications": apps,
        "tax_lines": [{"title": t, "rate": float(r), "price": f"{a:.2f}", "price_set": mset(a)}
                      for (t, r), a in order_tax_lines.items()],
        "total_price": f"{total:.2f}", "current_total_price": f"{total:.2f}",
        "total_price_set": both(total, p_total), "current_total_price_set": both(total, p_total),
        "total_tax": f"{total_tax:.2f}", "current_total_tax": f"{total_tax:.2f}",
        "current_total_tax_set": both(total_tax, p_tax), "total_tax_set": both(total_tax, p_tax),
        "current_total_discounts": f"{discounts:.2f}", "current_total_discounts_set": both(discounts, p_disc),
        "payment_gateway_names": ["shopify_payments"], "total_tip_received": "0.00",
    })


def corpus() -> dict[str, dict]:
    """Named orders across the regimes: inclusive and exclusive, discounts, free and taxed shipping,
    exempt and zero-rated lines, mixed rates, a foreign-currency order."""
    out = {}
    out["uk_mixed_rates_inclusive"] = build_order(
        2001, inclusive=True, currency="GBP", country="GB", discount_code="WELCOME10", lines=[
            {"title": "Tea mug", "sku": "UK-MUG", "price": "9.99", "qty": 3, "rates": UK_VAT, "discount": "3.00"},
            {"title": "Children's book", "sku": "UK-BOOK", "price": "7.99", "qty": 1, "rates": UK_ZERO},
            {"title": "Car seat", "sku": "UK-SEAT", "price": "89.99", "qty": 1, "rates": UK_REDUCED},
        ], shipping=[{"title": "Royal Mail 2nd", "price": "3.99", "rates": UK_VAT}])
    out["uk_rounding_many_lines"] = build_order(
        2002, inclusive=True, currency="GBP", country="GB", lines=[
            {"title": f"Sticker {n}", "sku": f"UK-ST{n}", "price": "0.99", "qty": 1, "rates": UK_VAT} for n in range(7)
        ], shipping=[{"title": "Free", "price": "0.00", "rates": []}])
    out["uk_exempt_line_and_export_free_shipping"] = build_order(
        2003, inclusive=True, currency="GBP", country="GB", lines=[
            {"title": "Gift wrap service", "sku": "UK-WRAP", "price": "2.50", "qty": 1, "rates": UK_VAT,
             "taxable": False},
            {"title": "Scarf", "sku": "UK-SCARF", "price": "24.00", "qty": 2, "rates": UK_VAT},
        ], shipping=[{"title": "Courier", "price": "6.00", "rates": UK_VAT, "discount": "6.00"}])
    out["ca_on_hst_exclusive"] = build_order(
        2101, inclusive=False, currency="CAD", country="CA", province="ON", lines=[
            {"title": "Maple syrup", "sku": "CA-SYR", "price": "12.49", "qty": 3, "rates": ON_HST},
            {"title": "Toque", "sku": "CA-TOQ", "price": "19.99", "qty": 1, "rates": ON_HST, "discount": "2.00"},
        ], shipping=[{"title": "Canada Post", "price": "9.95", "rates": ON_HST}], discount_code="HOCKEY")
    out["ca_bc_gst_pst"] = build_order(
        2102, inclusive=False, currency="CAD", country="CA", province="BC", lines=[
            {"title": "Rain jacket", "sku": "CA-JKT", "price": "129.99", "qty": 1, "rates": BC},
            {"title": "Socks", "sku": "CA-SOX", "price": "7.33", "qty": 3, "rates": BC},
        ], shipping=[{"title": "Canada Post", "price": "12.00", "rates": [("GST", "0.05")]}])
    out["ca_qc_gst_qst"] = build_order(
        2103, inclusive=False, currency="CAD", country="CA", province="QC", lines=[
            {"title": "Fromage", "sku": "CA-FRO", "price": "14.57", "qty": 2, "rates": QC},
        ], shipping=[{"title": "Purolator", "price": "8.99", "rates": QC}])
    out["ca_ns_hst_and_zero_rated_food"] = build_order(
        2104, inclusive=False, currency="CAD", country="CA", province="NS", lines=[
            {"title": "Lobster pot", "sku": "CA-POT", "price": "45.00", "qty": 1, "rates": NS_HST},
            {"title": "Oatmeal (basic grocery)", "sku": "CA-OAT", "price": "6.49", "qty": 2, "rates": [],
             "taxable": True},
        ], shipping=[{"title": "Canada Post", "price": "10.00", "rates": NS_HST}])
    out["au_gst_inclusive"] = build_order(
        2201, inclusive=True, currency="AUD", country="AU", province="NSW", lines=[
            {"title": "Flat white beans", "sku": "AU-BEAN", "price": "21.95", "qty": 2, "rates": AU_GST,
             "discount": "4.39"},
            {"title": "Bread (GST free)", "sku": "AU-BREAD", "price": "6.50", "qty": 1, "rates": [],
             "taxable": True},
        ], shipping=[{"title": "Australia Post", "price": "9.95", "rates": AU_GST}], discount_code="GDAY")
    out["eu_de_domestic_inclusive"] = build_order(
        2301, inclusive=True, currency="EUR", country="DE", email="max@example.de", first="Max", last="Muster",
        lines=[
            {"title": "Kaffeemühle", "sku": "DE-MILL", "price": "49.90", "qty": 1, "rates": DE_VAT},
            {"title": "Kaffeebohnen", "sku": "DE-BEAN", "price": "12.99", "qty": 3, "rates": DE_REDUCED},
        ], shipping=[{"title": "DHL", "price": "4.90", "rates": DE_VAT}])
    out["eu_oss_to_france"] = build_order(
        2302, inclusive=True, currency="EUR", country="FR", email="zoe@example.fr", first="Zoé", last="Martin",
        lines=[{"title": "Kaffeemühle", "sku": "DE-MILL", "price": "49.90", "qty": 1, "rates": FR_OSS}],
        shipping=[{"title": "DHL", "price": "9.90", "rates": FR_OSS}])
    out["eu_oss_to_austria_same_rate_as_france"] = build_order(
        2303, inclusive=True, currency="EUR", country="AT", email="eva@example.at", first="Eva", last="Gruber",
        lines=[{"title": "Kaffeemühle", "sku": "DE-MILL", "price": "49.90", "qty": 1, "rates": AT_OSS}],
        shipping=[{"title": "DHL", "price": "9.90", "rates": AT_OSS}])
    out["eu_oss_to_ireland_unmapped"] = build_order(
        2304, inclusive=True, currency="EUR", country="IE", email="sean@example.ie", first="Seán", last="Byrne",
        lines=[{"title": "Kaffeemühle", "sku": "DE-MILL", "price": "49.90", "qty": 1, "rates": IE_VAT}],
        shipping=[{"title": "DHL", "price": "9.90", "rates": IE_VAT}])
    return out


# Which sandbox company each corpus order belongs to.
COMPANY_OF = {"uk": "GB", "ca": "CA", "au": "AU", "eu": "DE"}


def country_of(name: str) -> str:
    return COMPANY_OF[name.split("_")[0]]
