"""Realistic Shopify order webhook bodies (orders/fulfilled, REST shape, the full field set) of a chosen size.

Real bodies are 5-30 KB: each line item carries price sets, tax lines, discount allocations and
properties, and the order repeats its lines inside each fulfillment, beside addresses, client details,
note attributes, discount applications and shipping lines. `order_body(target_bytes)` adds line items
(and fulfillments) until the JSON reaches the target; the money adds up (subtotal, discounts, tax,
shipping, total), so the same bodies also post.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

SIZES_KB = (8, 12, 18, 28)  # targets `make bench` sends (one line item more overshoots by up to ~5 KB)
CENT = Decimal("0.01")
WORDS = ("Organic", "Cotton", "Classic", "Linen", "Merino", "Recycled", "Canvas", "Leather", "Bamboo", "Wool",
         "Tote", "Scarf", "Beanie", "Mug", "Candle", "Notebook", "Hoodie", "Socks", "Tee", "Backpack")


def _money(amount: Decimal, currency: str = "USD") -> dict:
    text = str(amount.quantize(CENT))
    return {"shop_money": {"amount": text, "currency_code": currency},
            "presentment_money": {"amount": text, "currency_code": currency}}


def _address(rng: random.Random, first: str, last: str) -> dict:
    return {"first_name": first, "last_name": last, "name": f"{first} {last}", "company": rng.choice([None, "Acme Ltd"]),
            "address1": f"{rng.randint(1, 9999)} {rng.choice(WORDS)} Street", "address2": rng.choice(["", "Suite 200"]),
            "city": "Ottawa", "province": "Ontario", "province_code": "ON", "country": "Canada", "country_code": "CA",
            "zip": "K2P 1L4", "phone": f"+1613555{rng.randint(1000, 9999)}", "latitude": 45.4215, "longitude": -75.6972}


def _line_item(rng: random.Random, n: int, order_id: int) -> tuple[dict, Decimal, Decimal, Decimal]:
    """One line item with everything Shopify sends for it; returns it with its gross, discount and tax."""
    price = Decimal(rng.randint(500, 15000)) / 100
    qty = rng.randint(1, 4)
    gross = price * qty
    discount = (gross * Decimal("0.10")).quantize(CENT) if n % 3 == 0 else Decimal("0.00")
    tax = ((gross - discount) * Decimal("0.13")).quantize(CENT)
    title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n}"
    item_id = order_id * 100 + n
    item = {
        "id": item_id, "admin_graphql_api_id": f"gid://shopify/LineItem/{item_id}",
        "attributed_staffs": [], "current_quantity": qty, "fulfillable_quantity": 0, "fulfillment_service": "manual",
        "fulfillment_status": "fulfilled", "gift_card": False, "grams": rng.randint(50, 2000), "name": f"{title} - M / Blue",
        "price": str(price), "price_set": _money(price), "product_exists": True, "product_id": 7_000_000_000 + n,
        "properties": [{"name": "Engraving", "value": f"For {rng.choice(WORDS)} with love"},
                       {"name": "_bundle_id", "value": f"bndl-{rng.getrandbits(48):012x}"},
                       {"name": "Gift wrap", "value": rng.choice(["yes", "no"])}],
        "quantity": qty, "requires_shipping": True, "sku": f"SKU-{n:05d}-M-BLU", "taxable": True, "title": title,
        "total_discount": "0.00", "total_discount_set": _money(Decimal("0.00")), "variant_id": 40_000_000_000 + n,
        "variant_inventory_management": "shopify", "variant_title": "M / Blue", "vendor": "EcomFlux Bench Co",
        "tax_lines": [{"channel_liable": False, "price": str(tax), "price_set": _money(tax), "rate": 0.13,
                       "title": "HST"}],
        "duties": [],
        "discount_allocations": ([{"amount": str(discount), "amount_set": _money(discount),
                                   "discount_application_index": 0}] if discount else []),
    }
    return item, gross, discount, tax


def order(target_bytes: int, seed: int = 1) -> dict:
    """An orders/fulfilled payload whose JSON is about `target_bytes` long (never less than one line item)."""
    rng = random.Random(seed)
    order_id = 5_800_000_000_000 + seed
    first, last = rng.choice(["Ann", "Jon", "Maya", "Luis"]), rng.choice(["Lee", "Snow", "Okafor", "Garcia"])
    email = f"{first.lower()}.{last.lower()}@example.com"
    stamp = "2026-11-20T10:00:00-05:00"
    shipping = Decimal("9.95")
    base = {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "app_id": 580111,
        "browser_ip": "203.0.113.7", "buyer_accepts_marketing": True, "cancel_reason": None, "cancelled_at": None,
        "cart_token": f"{rng.getrandbits(128):032x}", "checkout_id": order_id + 7, "checkout_token": f"{rng.getrandbits(128):032x}",
        "client_details": {"accept_language": "en-CA,en;q=0.9", "browser_height": 900, "browser_ip": "203.0.113.7",
                           "browser_width": 1440, "session_hash": f"{rng.getrandbits(128):032x}",
                           "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"},
        "closed_at": None, "confirmation_number": f"X{rng.getrandbits(36):09X}", "confirmed": True,
        "contact_email": email, "created_at": stamp, "currency": "USD", "customer_locale": "en-CA", "device_id": None,
        "discount_codes": [{"code": "FALL10", "amount": "0.00", "type": "percentage"}], "email": email,
        "estimated_taxes": False, "financial_status": "paid", "fulfillment_status": "fulfilled",
        "landing_site": "/collections/fall?utm_source=newsletter&utm_medium=email", "location_id": None,
        "merchant_of_record_app_id": None, "name": f"#{1000 + seed}", "note": "Please leave at the side door.",
        "note_attributes": [{"name": "gift_message", "value": "Happy birthday!"}, {"name": "delivery_date", "value": "2026-11-24"},
                            {"name": "how_did_you_hear", "value": "Instagram"}],
        "number": seed, "order_number": 1000 + seed,
        "order_status_url": f"https://bench-shop.myshopify.com/1234/orders/{rng.getrandbits(128):032x}/authenticate?key={rng.getrandbits(128):032x}",
        "original_total_additional_fees_set": None, "original_total_duties_set": None,
        "payment_gateway_names": ["shopify_payments"], "phone": None, "po_number": None, "presentment_currency": "USD",
        "processed_at": stamp, "reference": None, "referring_site": "https://www.instagram.com/",
        "source_identifier": None, "source_name": "web", "source_url": None, "tags": "newsletter, repeat-buyer",
        "taxes_included": False, "test": False, "token": f"{rng.getrandbits(128):032x}", "total_weight": 0,
        "updated_at": stamp, "user_id": None,
        "billing_address": _address(rng, first, last), "shipping_address": _address(rng, first, last),
        "customer": {"id": 6_900_000_000 + seed, "email": email, "created_at": "2024-03-02T12:00:00-05:00",
                     "updated_at": stamp, "first_name": first, "last_name": last, "state": "enabled", "note": None,
                     "verified_email": True, "multipass_identifier": None, "tax_exempt": False, "phone": None,
                     "currency": "USD", "tags": "vip", "tax_exemptions": [],
                     "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in",
                                                 "consent_updated_at": "2024-03-02T12:00:00-05:00"},
                     "sms_marketing_consent": None, "admin_graphql_api_id": f"gid://shopify/Customer/{6_900_000_000 + seed}",
                     "default_address": dict(_address(rng, first, last), id=8_100_000_000 + seed, default=True)},
        "discount_applications": [{"target_type": "line_item", "type": "discount_code", "value": "10.0",
                                   "value_type": "percentage", "allocation_method": "across", "target_selection": "entitled",
                                   "code": "FALL10"}],
        "payment_terms": None, "refunds": [],
        "shipping_lines": [{"id": order_id + 3, "carrier_identifier": None, "code": "Standard", "discounted_price": str(shipping),
                            "discounted_price_set": _money(shipping), "is_removed": False, "phone": None,
                            "price": str(shipping), "price_set": _money(shipping), "requested_fulfillment_service_id": None,
                            "source": "shopify", "title": "Standard Shipping", "tax_lines": [], "discount_allocations": []}],
    }
    items: list[dict] = []
    gross = discount = tax = Decimal("0.00")
    fulfillments: list[dict] = []
    while True:
        item, g, d, t = _line_item(rng, len(items) + 1, order_id)
        items.append(item)
        gross, discount, tax = gross + g, discount + d, tax + t
        # Shopify repeats the fulfilled lines inside each fulfillment (one per 4 lines here: split shipments).
        if len(items) % 4 == 1:
            fulfillments.append({"id": order_id + 100 + len(fulfillments), "admin_graphql_api_id": "gid://shopify/Fulfillment/1",
                                 "created_at": stamp, "location_id": 61_000_000, "name": f"#{1000 + seed}.{len(fulfillments) + 1}",
                                 "order_id": order_id, "service": "manual", "shipment_status": None, "status": "success",
                                 "tracking_company": "Canada Post", "tracking_number": f"7{rng.getrandbits(50):015d}"[:16],
                                 "tracking_numbers": [], "tracking_url": "https://www.canadapost-postescanada.ca/track",
                                 "tracking_urls": [], "updated_at": stamp, "line_items": []})
        fulfillments[-1]["line_items"].append(item)
        body = _finish(base, items, fulfillments, gross, discount, tax, shipping)
        if len(json.dumps(body, separators=(",", ":"))) >= target_bytes:
            return body


def _finish(base, items, fulfillments, gross, discount, tax, shipping) -> dict:
    subtotal = gross - discount
    total = subtotal + tax + shipping
    figures = {"subtotal_price": subtotal, "current_subtotal_price": subtotal, "total_discounts": discount,
               "current_total_discounts": discount, "total_tax": tax, "current_total_tax": tax, "total_price": total,
               "current_total_price": total, "total_line_items_price": gross, "total_outstanding": Decimal("0.00"),
               "total_tip_received": Decimal("0.00")}
    out = dict(base, line_items=items, fulfillments=fulfillments,
               tax_lines=[{"price": str(tax), "rate": 0.13, "title": "HST", "price_set": _money(tax), "channel_liable": False}],
               total_shipping_price_set=_money(shipping), current_total_duties_set=None)
    out["discount_codes"] = [dict(base["discount_codes"][0], amount=str(discount))]
    for name, amount in figures.items():
        out[name] = str(amount)
        if name not in ("total_outstanding", "total_tip_received"):
            out[f"{name}_set"] = _money(amount)
    return out


def order_body(target_bytes: int, seed: int = 1) -> bytes:
    """The body as Shopify sends it: compact JSON (no spaces), UTF-8."""
    return json.dumps(order(target_bytes, seed), separators=(",", ":")).encode()


if __name__ == "__main__":
    for kb in SIZES_KB:
        body = order_body(kb * 1024)
        parsed = json.loads(body)
        print(f"{kb:>3} KB target: {len(body):>6} bytes, {len(parsed['line_items'])} line items, "
              f"{len(parsed['fulfillments'])} fulfillments, total {parsed['current_total_price']}")
