"""Renders REST-shaped Shopify orders as the Admin GraphQL API's Order nodes (sandbox only)."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from decimal import Decimal


def gid(kind: str, value) -> str | None:
    return None if value is None else f"gid://shopify/{kind}/{value}"


def decimal_text(value) -> str | None:
    """Shopify's Decimal scalar: no trailing zeros beyond one decimal ("10.0", "10.5", "10.25")."""
    if value is None:
        return None
    text = format(Decimal(str(value)).normalize(), "f")
    return text if "." in text else text + ".0"


def utc_text(value: str | None) -> str | None:
    """GraphQL DateTime: ISO 8601 in UTC with a Z suffix."""
    if not value:
        return None
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    if len(text) == 10:
        text += "T00:00:00+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def money_bag(rest: dict, key: str, shop_currency: str, presentment_currency: str) -> dict | None:
    """A MoneyBag from REST `<key>_set` (preferred) or the plain `<key>` amount."""
    bag = rest.get(f"{key}_set")
    if isinstance(bag, dict) and bag.get("shop_money"):
        shop = bag["shop_money"]
        pres = bag.get("presentment_money") or shop
        return {
            "shopMoney": {"amount": decimal_text(shop.get("amount")), "currencyCode": shop.get("currency_code") or shop_currency},
            "presentmentMoney": {"amount": decimal_text(pres.get("amount")),
                                 "currencyCode": pres.get("currency_code") or presentment_currency},
        }
    if rest.get(key) is None:
        return None
    amount = decimal_text(rest[key])
    return {
        "shopMoney": {"amount": amount, "currencyCode": shop_currency},
        "presentmentMoney": {"amount": amount, "currencyCode": presentment_currency},
    }


_FULFILLMENT = {None: "UNFULFILLED", "fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED",
                "restocked": "RESTOCKED", "unfulfilled": "UNFULFILLED"}
_DISCOUNT_TYPES = {"discount_code": "DiscountCodeApplication", "manual": "ManualDiscountApplication",
                   "automatic": "AutomaticDiscountApplication", "script": "ScriptDiscountApplication"}


def _address(rest: dict | None) -> dict | None:
    if not rest:
        return None
    return {
        "firstName": rest.get("first_name"), "lastName": rest.get("last_name"), "name": rest.get("name"),
        "company": rest.get("company"), "address1": rest.get("address1"), "address2": rest.get("address2"),
        "city": rest.get("city"), "province": rest.get("province"), "provinceCode": rest.get("province_code"),
        "zip": rest.get("zip"), "country": rest.get("country"), "countryCodeV2": rest.get("country_code"),
        "phone": rest.get("phone"),
    }


class OrderRenderer:
    """One order's REST dict -> GraphQL Order node, in the shop's currency."""

    def __init__(self, order: dict, shop_currency: str, line_first: int | None = None, line_after: str | None = None,
                 version: str | None = None):
        self.o = order
        self.version = version
        self.line_first = line_first
        self.line_after = line_after
        self.cur = order.get("currency") or shop_currency
        self.pres = order.get("presentment_currency") or self.cur

    def fulfillment_status(self) -> str:
        """displayFulfillmentStatus; from 2026-10 an unfulfilled order with nothing left to fulfill is
        FULFILLMENT_NOT_REQUIRED (cancelled, or every line edited or refunded away), before it UNFULFILLED."""
        o = self.o
        status = _FULFILLMENT.get(o.get("fulfillment_status"), "UNFULFILLED")
        if status == "UNFULFILLED" and (self.version or "") >= "2026-10":
            lines = o.get("line_items") or []
            nothing_left = all(int(li.get("current_quantity", li.get("quantity")) or 0) == 0 for li in lines)
            if o.get("cancelled_at") or nothing_left:
                return "FULFILLMENT_NOT_REQUIRED"
        return status

    def bag(self, rest: dict, key: str):
        return money_bag(rest, key, self.cur, self.pres)

    def tax_lines(self, lines) -> list:
        return [
            {"title": t.get("title"), "rate": t.get("rate"),
             "ratePercentage": None if t.get("rate") is None else float(Decimal(str(t["rate"])) * 100),
             "channelLiable": t.get("channel_liable"), "priceSet": self.bag(t, "price")}
            for t in lines or []
        ]

    def allocations(self, allocations) -> list:
        return [
            {"allocatedAmountSet": self.bag(a, "amount"),
             "discountApplication": {"index": a.get("discount_application_index")}}
            for a in allocations or []
        ]

    def line_item(self, li: dict) -> dict:
        return {
            "id": gid("LineItem", li.get("id")),
            "sku": li.get("sku") or None,
            "name": li.get("name") or li.get("title"),
            "title": li.get("title"),
            "variantTitle": li.get("variant_title"),
            "vendor": li.get("vendor"),
            "quantity": li.get("quantity"),
            "currentQuantity": li.get("current_quantity", li.get("quantity")),
            "originalUnitPriceSet": self.bag(li, "price"),
            "taxable": li.get("taxable", True),
            "isGiftCard": bool(li.get("gift_card", False)),
            "requiresShipping": li.get("requires_shipping", True),
            "product": {"id": gid("Product", li["product_id"])} if li.get("product_id") else None,
            "variant": {"id": gid("ProductVariant", li["variant_id"])} if li.get("variant_id") else None,
            "taxLines": self.tax_lines(li.get("tax_lines")),
            "discountAllocations": self.allocations(li.get("discount_allocations")),
            "duties": [
                {"id": gid("Duty", d.get("id")), "harmonizedSystemCode": d.get("harmonized_system_code"),
                 "countryCodeOfOrigin": d.get("country_code_of_origin"), "price": self.bag(d, "price"),
                 "taxLines": self.tax_lines(d.get("tax_lines"))}
                for d in li.get("duties") or []
            ],
        }

    def line_items_page(self) -> dict:
        """The lineItems connection, windowed by first/after (cursor = position) as the query asked."""
        items = list(self.o.get("line_items") or [])
        start = int(base64.b64decode(self.line_after).decode()) if self.line_after else 0
        stop = len(items) if self.line_first is None else min(len(items), start + self.line_first)
        nodes = [self.line_item(li) for li in items[start:stop]]
        end_cursor = base64.b64encode(str(stop).encode()).decode() if nodes else None
        return {"nodes": nodes, "pageInfo": {"hasNextPage": stop < len(items), "endCursor": end_cursor}}

    def shipping_line(self, sl: dict) -> dict:
        return {
            "id": gid("ShippingLine", sl.get("id")),
            "title": sl.get("title"),
            "code": sl.get("code"),
            "source": sl.get("source"),
            "originalPriceSet": self.bag(sl, "price"),
            "discountedPriceSet": self.bag(sl, "discounted_price") or self.bag(sl, "price"),
            "isRemoved": bool(sl.get("is_removed", False)),
            "taxLines": self.tax_lines(sl.get("tax_lines")),
            "discountAllocations": self.allocations(sl.get("discount_allocations")),
        }

    def discount_application(self, index: int, da: dict) -> dict:
        if da.get("value_type") == "percentage":
            value = {"__typename": "PricingPercentageValue", "percentage": float(Decimal(str(da.get("value"))))}
        else:
            value = {"__typename": "MoneyV2", "amount": decimal_text(da.get("value")), "currencyCode": self.pres}
        return {
            "__typename": _DISCOUNT_TYPES.get(da.get("type"), "ManualDiscountApplication"),
            "index": index,
            "allocationMethod": (da.get("allocation_method") or "across").upper(),
            "targetSelection": (da.get("target_selection") or "all").upper(),
            "targetType": (da.get("target_type") or "line_item").upper(),
            "value": value,
            "code": da.get("code"),
            "title": da.get("title"),
            "description": da.get("description"),
        }

    def refund(self, r: dict) -> dict:
        items = [
            {"lineItem": {"id": gid("LineItem", rli.get("line_item_id"))}, "quantity": rli.get("quantity"),
             "restockType": (rli.get("restock_type") or "no_restock").upper(),
             "subtotalSet": self.bag(rli, "subtotal"), "totalTaxSet": self.bag(rli, "total_tax")}
            for rli in r.get("refund_line_items") or []
        ]
        transactions = [
            {"id": gid("OrderTransaction", t.get("id")), "kind": (t.get("kind") or "refund").upper(),
             "status": (t.get("status") or "success").upper(), "gateway": t.get("gateway"),
             "amountSet": self.bag(t, "amount")}
            for t in r.get("transactions") or []
        ]
        # GraphQL splits REST's order_adjustments: shipping refunds are refundShippingLines (positive
        # amounts), the rest are orderAdjustments with a discrepancy reason.
        shipping, adjustments = [], []
        for a in r.get("order_adjustments") or []:
            if a.get("kind") == "shipping_refund":
                shipping.append({"id": gid("RefundShippingLine", a.get("id")),
                                 "shippingLine": {"id": gid("ShippingLine", a.get("shipping_line_id"))},
                                 "subtotalAmountSet": self.bag(_absolute(a, "amount"), "amount"),
                                 "taxAmountSet": self.bag(_absolute(a, "tax_amount"), "tax_amount")})
            else:
                adjustments.append({"id": gid("OrderAdjustment", a.get("id")),
                                    "reason": (a.get("reason") or a.get("kind") or "").upper().replace(" ", "_") or None,
                                    "amountSet": self.bag(a, "amount"), "taxAmountSet": self.bag(a, "tax_amount")})
        total = sum((Decimal(str(t.get("amount") or 0)) for t in r.get("transactions") or []
                     if (t.get("kind") or "refund") == "refund"), Decimal("0"))
        return {
            "id": gid("Refund", r.get("id")),
            "legacyResourceId": str(r.get("id")),
            "createdAt": utc_text(r.get("created_at")),
            "note": r.get("note"),
            "totalRefundedSet": self.bag(r, "total_refunded") or money_bag({"a": str(total)}, "a", self.cur, self.pres),
            "refundLineItems": {"nodes": items, "pageInfo": {"hasNextPage": False, "endCursor": None}},
            "transactions": {"nodes": transactions, "pageInfo": {"hasNextPage": False, "endCursor": None}},
            "orderAdjustments": {"nodes": adjustments, "pageInfo": {"hasNextPage": False, "endCursor": None}},
            "refundShippingLines": {"nodes": shipping, "pageInfo": {"hasNextPage": False, "endCursor": None}},
        }

    def transaction(self, t: dict) -> dict:
        return {"id": gid("OrderTransaction", t.get("id")), "kind": (t.get("kind") or "sale").upper(),
                "status": (t.get("status") or "success").upper(), "gateway": t.get("gateway"),
                "amountSet": self.bag(t, "amount"), "processedAt": utc_text(t.get("processed_at"))}

    def customer(self) -> dict | None:
        c = self.o.get("customer")
        if not c:
            return None
        first, last = c.get("first_name"), c.get("last_name")
        return {
            "id": gid("Customer", c.get("id")), "legacyResourceId": str(c.get("id")),
            "firstName": first, "lastName": last,
            "displayName": " ".join(p for p in (first, last) if p) or c.get("email"),
            "email": c.get("email"), "phone": c.get("phone"),
            "defaultAddress": _address(c.get("default_address")),
        }

    def render(self) -> dict:
        o = self.o
        tags = o.get("tags") or ""
        return {
            "__typename": "Order",
            "id": gid("Order", o["id"]),
            "legacyResourceId": str(o["id"]),
            "name": o.get("name"),
            "number": o.get("number") or o.get("order_number") or _number_from_name(o.get("name")),
            "email": o.get("email"),
            "phone": o.get("phone"),
            "note": o.get("note"),
            "tags": [t.strip() for t in tags.split(",") if t.strip()] if isinstance(tags, str) else list(tags),
            "sourceName": o.get("source_name"),
            "createdAt": utc_text(o.get("created_at")),
            "updatedAt": utc_text(o.get("updated_at") or o.get("created_at")),
            "processedAt": utc_text(o.get("processed_at") or o.get("created_at")),
            "cancelledAt": utc_text(o.get("cancelled_at")),
            "cancelReason": (o.get("cancel_reason") or "").upper() or None,
            "closedAt": utc_text(o.get("closed_at")),
            "currencyCode": self.cur,
            "presentmentCurrencyCode": self.pres,
            "taxesIncluded": bool(o.get("taxes_included", False)),
            "displayFinancialStatus": (o.get("financial_status") or "pending").upper(),
            "displayFulfillmentStatus": self.fulfillment_status(),
            "paymentGatewayNames": list(o.get("payment_gateway_names") or []),
            "discountCodes": [d.get("code") for d in o.get("discount_codes") or [] if d.get("code")],
            "totalPriceSet": self.bag(o, "total_price"),
            "subtotalPriceSet": self.bag(o, "subtotal_price"),
            "totalTaxSet": self.bag(o, "total_tax"),
            "totalDiscountsSet": self.bag(o, "total_discounts"),
            "totalShippingPriceSet": self.bag(o, "total_shipping_price"),
            "currentTotalPriceSet": self.bag(o, "current_total_price") or self.bag(o, "total_price"),
            "currentSubtotalPriceSet": self.bag(o, "current_subtotal_price") or self.bag(o, "subtotal_price"),
            "currentTotalTaxSet": self.bag(o, "current_total_tax") or self.bag(o, "total_tax"),
            "currentTotalDiscountsSet": self.bag(o, "current_total_discounts") or self.bag(o, "total_discounts"),
            "totalTipReceivedSet": self.bag(o, "total_tip_received")
            or money_bag({"a": "0"}, "a", self.cur, self.pres),
            "currentTotalDutiesSet": self.bag(o, "current_total_duties"),
            "originalTotalDutiesSet": self.bag(o, "original_total_duties"),
            "currentTotalAdditionalFeesSet": self.bag(o, "current_total_additional_fees"),
            "originalTotalAdditionalFeesSet": self.bag(o, "original_total_additional_fees"),
            "taxLines": self.tax_lines(o.get("tax_lines")),
            "transactions": [self.transaction(t) for t in o.get("transactions") or []],
            "customer": self.customer(),
            "billingAddress": _address(o.get("billing_address")),
            "shippingAddress": _address(o.get("shipping_address")),
            "lineItems": self.line_items_page(),
            "shippingLines": {"nodes": [self.shipping_line(sl) for sl in o.get("shipping_lines") or []],
                              "pageInfo": {"hasNextPage": False, "endCursor": None}},
            "discountApplications": {
                "nodes": [self.discount_application(i, da) for i, da in enumerate(o.get("discount_applications") or [])],
                "pageInfo": {"hasNextPage": False, "endCursor": None}},
            "refunds": [self.refund(r) for r in o.get("refunds") or []],
        }


def _absolute(rest: dict, key: str) -> dict:
    """REST shows shipping refunds as negative adjustments; GraphQL as positive refunded amounts."""
    out = {key: str(abs(Decimal(str(rest.get(key) or 0))))}
    bag = rest.get(f"{key}_set")
    if isinstance(bag, dict):
        out[f"{key}_set"] = {side: {**money, "amount": str(abs(Decimal(str(money.get("amount") or 0))))}
                             for side, money in bag.items() if isinstance(money, dict)}
    return out


def _number_from_name(name) -> int | None:
    digits = "".join(ch for ch in str(name or "") if ch.isdigit())
    return int(digits) if digits else None


def render_order(order: dict, shop_currency: str, line_first: int | None = None,
                 line_after: str | None = None, version: str | None = None) -> dict:
    """The GraphQL Order node as the given API version shapes it."""
    return OrderRenderer(order, shop_currency, line_first, line_after, version).render()
