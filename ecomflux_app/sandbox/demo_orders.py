"""Realistic Shopify order bodies for the dev shop and benchmarks: repeat buyers, Zipf-distributed SKUs.

Every generated order is internally consistent the way Shopify's are: line discounts and
per-line tax add up to current_total_price to the cent.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
TAX_RATE = Decimal("0.08875")
FIRST = ["Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Lucas", "Zoë", "Seán", "Chloé", "Ren", "Priya", "Jon"]
LAST = ["O'Brien", "Smith", "García", "Nguyen", "Müller", "Kowalski", "Dubois", "Okafor", "Tanaka", "Lee"]
PRODUCTS = [
    ("Organic Cotton Tee", "TEE-ORG", "24.00"), ("Merino Beanie", "BEANIE-MER", "32.00"),
    ("Canvas Tote", "TOTE-CNV", "18.50"), ("Ceramic Mug", "MUG-CER", "14.00"), ("Trail Socks", "SOCK-TRL", "12.99"),
    ("Rain Shell: Alpine", "SHELL-ALP", "149.00"), ("Water Bottle", "BTL-1L", "27.95"), ("Gift Card", None, "50.00"),
    ("Enamel Pin", "PIN-ENM", "8.00"), ("Wool Scarf", "SCARF-WL", "45.00"), ("Notebook", "NB-A5", "9.75"),
    ("Leather Wallet", "WAL-LTH", "59.00"), ("Sticker Pack", "", "4.50"), ("Hoodie", "HOOD-CLS", "64.00"),
]


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _set(value: Decimal, currency: str) -> dict:
    amount = {"amount": _money(value), "currency_code": currency}
    return {"shop_money": amount, "presentment_money": dict(amount)}


class OrderGenerator:
    """Deterministic (seeded) generator of order webhook bodies for one shop."""

    def __init__(self, seed: int = 7, customers: int = 120, currency: str = "USD", zipf_s: float = 1.2):
        self.rng = random.Random(seed)
        self.currency = currency
        self.next_number = 1001
        self.next_id = 5_500_000_000_000 + seed * 1_000_000
        weights = [1 / (rank ** zipf_s) for rank in range(1, len(PRODUCTS) + 1)]
        self.sku_weights = weights
        self.customers = [self._customer(i) for i in range(customers)]
        # Repeat buyers: a few customers place most orders (also Zipf-like).
        self.customer_weights = [1 / ((i + 1) ** 0.9) for i in range(customers)]

    def _customer(self, index: int) -> dict:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        email = f"{first.lower()}.{last.lower().replace(chr(39), '')}{index}@example.com"
        zip_code = f"{10000 + self.rng.randrange(80000)}"
        address = {"first_name": first, "last_name": last, "address1": f"{1 + index} Market St",
                   "city": "Springfield", "province_code": "NY", "zip": zip_code, "country_code": "US",
                   "phone": f"+1212555{index:04d}", "company": None, "name": f"{first} {last}"}
        return {"id": 7_000_000_000 + index, "email": email, "first_name": first, "last_name": last,
                "phone": address["phone"], "default_address": address}

    def order(self, processed_at: datetime | None = None, guest: bool = False) -> dict:
        """One fulfilled, paid order."""
        rng = self.rng
        number = self.next_number
        self.next_number += 1
        self.next_id += 1
        processed_at = processed_at or datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc)
        customer = None if guest else rng.choices(self.customers, weights=self.customer_weights)[0]
        code = "WELCOME10" if rng.random() < 0.2 else None
        lines, total_lines, total_disc, total_tax = [], Decimal(0), Decimal(0), Decimal(0)
        picked = rng.choices(range(len(PRODUCTS)), weights=self.sku_weights, k=rng.choice([1, 1, 2, 2, 3, 4]))
        for pos, index in enumerate(dict.fromkeys(picked)):
            title, sku, price_text = PRODUCTS[index]
            price, qty = Decimal(price_text), rng.choice([1, 1, 1, 2, 3])
            gift_card = sku is None
            line_total = price * qty
            discount = (line_total * Decimal("0.10")).quantize(CENT, ROUND_HALF_UP) if code and not gift_card else Decimal(0)
            taxable = not gift_card
            tax = ((line_total - discount) * TAX_RATE).quantize(CENT, ROUND_HALF_UP) if taxable else Decimal(0)
            total_lines += line_total
            total_disc += discount
            total_tax += tax
            lines.append({
                "id": self.next_id * 10 + pos, "admin_graphql_api_id": f"gid://shopify/LineItem/{self.next_id * 10 + pos}",
                "product_id": 9_000 + index, "variant_id": 19_000 + index, "title": title, "name": title,
                "variant_title": None, "sku": sku, "vendor": "Demo Goods", "quantity": qty, "current_quantity": qty,
                "fulfillable_quantity": 0, "price": price_text, "price_set": _set(price, self.currency),
                "total_discount": "0.00", "taxable": taxable, "gift_card": gift_card, "requires_shipping": not gift_card,
                "tax_lines": [{"title": "NY State Tax", "rate": float(TAX_RATE), "price": _money(tax),
                               "price_set": _set(tax, self.currency)}] if taxable else [],
                "discount_allocations": [{"amount": _money(discount), "amount_set": _set(discount, self.currency),
                                          "discount_application_index": 0}] if discount else [],
                "duties": [],
            })
        subtotal = total_lines - total_disc
        shipping = Decimal(0) if subtotal >= 75 else Decimal("7.50")
        total = subtotal + shipping + total_tax
        when = processed_at.isoformat()
        order = {
            "id": self.next_id, "admin_graphql_api_id": f"gid://shopify/Order/{self.next_id}",
            "name": f"#{number}", "order_number": number, "email": customer["email"] if customer else None,
            "created_at": when, "processed_at": when, "updated_at": when, "currency": self.currency,
            "presentment_currency": self.currency, "taxes_included": False, "financial_status": "paid",
            "fulfillment_status": "fulfilled", "cancelled_at": None, "test": False,
            "total_line_items_price": _money(total_lines), "subtotal_price": _money(subtotal),
            "current_subtotal_price": _money(subtotal), "total_discounts": _money(total_disc),
            "current_total_discounts": _money(total_disc), "total_tax": _money(total_tax),
            "current_total_tax": _money(total_tax), "total_price": _money(total), "current_total_price": _money(total),
            "total_price_set": _set(total, self.currency), "current_total_price_set": _set(total, self.currency),
            "total_shipping_price_set": _set(shipping, self.currency), "total_tip_received": "0.00",
            "payment_gateway_names": ["shopify_payments"], "gateway": "shopify_payments",
            "line_items": lines,
            "shipping_lines": [{"id": self.next_id, "title": "Standard", "code": "STANDARD", "price": _money(shipping),
                                "discounted_price": _money(shipping), "price_set": _set(shipping, self.currency),
                                "discounted_price_set": _set(shipping, self.currency), "discount_allocations": [],
                                "tax_lines": []}],
            "tax_lines": [{"title": "NY State Tax", "rate": float(TAX_RATE), "price": _money(total_tax),
                           "price_set": _set(total_tax, self.currency)}] if total_tax else [],
            "discount_codes": [{"code": code, "amount": _money(total_disc), "type": "percentage"}] if code else [],
            "discount_applications": [{"type": "discount_code", "code": code, "value": "10.0",
                                       "value_type": "percentage", "allocation_method": "across",
                                       "target_selection": "all", "target_type": "line_item"}] if code else [],
            "customer": customer,
            "billing_address": customer["default_address"] if customer else None,
            "shipping_address": customer["default_address"] if customer else None,
            "refunds": [],
        }
        return order

    def week(self, count: int, start: datetime | None = None, guest_share: float = 0.05) -> list[dict]:
        """`count` orders spread over seven days."""
        start = start or datetime(2026, 11, 16, 5, 0, tzinfo=timezone.utc)
        step = timedelta(days=7) / max(count, 1)
        return [self.order(start + step * i, guest=self.rng.random() < guest_share) for i in range(count)]
