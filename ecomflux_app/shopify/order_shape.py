"""GraphQL Order nodes mapped to the REST (webhook) order shape the translation core reads."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..models import Shop


def shop_zone(shop: Shop):
    """The shop's IANA timezone (UTC when unknown): REST times carry its offset."""
    try:
        return ZoneInfo(shop.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def _legacy(gid: str | None) -> int | None:
    if not gid:
        return None
    tail = str(gid).rsplit("/", 1)[-1].split("?")[0]
    return int(tail) if tail.isdigit() else None


def _amount(text) -> str | None:
    """Money text as REST shows it: at least two decimals ("10.0" -> "10.00")."""
    if text is None:
        return None
    value = Decimal(str(text))
    if value.as_tuple().exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")


def _set(bag: dict | None) -> dict | None:
    if not bag:
        return None
    shop_money = bag.get("shopMoney") or {}
    pres = bag.get("presentmentMoney") or shop_money
    return {
        "shop_money": {"amount": _amount(shop_money.get("amount")), "currency_code": shop_money.get("currencyCode")},
        "presentment_money": {"amount": _amount(pres.get("amount")), "currency_code": pres.get("currencyCode")},
    }


def _negated(bag: dict | None) -> dict | None:
    if not bag:
        return None
    return {side: {**money, "amount": str(-Decimal(str(money.get("amount") or 0)))}
            for side, money in bag.items() if isinstance(money, dict)}


def _money(out: dict, key: str, bag: dict | None, zero: bool = False) -> None:
    """Set REST `key` (shop money) and `key_set` from a MoneyBag."""
    money = _set(bag)
    if money is None and zero:
        money = {"shop_money": {"amount": "0.00", "currency_code": None},
                 "presentment_money": {"amount": "0.00", "currency_code": None}}
    out[key] = money["shop_money"]["amount"] if money else None
    out[f"{key}_set"] = money


class RestOrderBuilder:
    """Maps one GraphQL Order node to the REST order (webhook) shape, times in the shop's timezone."""

    def __init__(self, node: dict, shop: Shop):
        self.n = node
        self.zone = shop_zone(shop)

    def time(self, value: str | None) -> str | None:
        if not value:
            return None
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.astimezone(self.zone).isoformat()

    def tax_lines(self, lines) -> list[dict]:
        out = []
        for t in lines or []:
            row = {"title": t.get("title"), "rate": t.get("rate"), "channel_liable": t.get("channelLiable")}
            _money(row, "price", t.get("priceSet"), zero=True)
            out.append(row)
        return out

    def allocations(self, allocations) -> list[dict]:
        out = []
        for a in allocations or []:
            row = {"discount_application_index": (a.get("discountApplication") or {}).get("index")}
            _money(row, "amount", a.get("allocatedAmountSet"), zero=True)
            out.append(row)
        return out

    @staticmethod
    def address(a: dict | None) -> dict | None:
        if not a:
            return None
        return {
            "first_name": a.get("firstName"), "last_name": a.get("lastName"), "name": a.get("name"),
            "company": a.get("company"), "address1": a.get("address1"), "address2": a.get("address2"),
            "city": a.get("city"), "province": a.get("province"), "province_code": a.get("provinceCode"),
            "zip": a.get("zip"), "country": a.get("country"), "country_code": a.get("countryCodeV2"),
            "phone": a.get("phone"),
        }

    def line_item(self, li: dict) -> dict:
        out = {
            "id": _legacy(li.get("id")), "admin_graphql_api_id": li.get("id"),
            "sku": li.get("sku"), "name": li.get("name"), "title": li.get("title"),
            "variant_title": li.get("variantTitle"), "vendor": li.get("vendor"),
            "quantity": li.get("quantity"), "current_quantity": li.get("currentQuantity"),
            "taxable": li.get("taxable"), "gift_card": li.get("isGiftCard"),
            "requires_shipping": li.get("requiresShipping"),
            "product_id": _legacy((li.get("product") or {}).get("id")),
            "variant_id": _legacy((li.get("variant") or {}).get("id")),
            "tax_lines": self.tax_lines(li.get("taxLines")),
            "discount_allocations": self.allocations(li.get("discountAllocations")),
            "duties": [],
        }
        _money(out, "price", li.get("originalUnitPriceSet"))
        total = sum((Decimal(a["amount"]) for a in out["discount_allocations"]), Decimal("0"))
        out["total_discount"] = _amount(total)
        for d in li.get("duties") or []:
            duty = {"id": _legacy(d.get("id")), "harmonized_system_code": d.get("harmonizedSystemCode"),
                    "country_code_of_origin": d.get("countryCodeOfOrigin"),
                    "tax_lines": self.tax_lines(d.get("taxLines"))}
            _money(duty, "price", d.get("price"))
            out["duties"].append(duty)
        return out

    def shipping_line(self, sl: dict) -> dict:
        out = {"id": _legacy(sl.get("id")), "title": sl.get("title"), "code": sl.get("code"),
               "source": sl.get("source"), "is_removed": bool(sl.get("isRemoved")),
               "tax_lines": self.tax_lines(sl.get("taxLines")),
               "discount_allocations": self.allocations(sl.get("discountAllocations"))}
        _money(out, "price", sl.get("originalPriceSet"))
        _money(out, "discounted_price", sl.get("discountedPriceSet") or sl.get("originalPriceSet"))
        return out

    @staticmethod
    def discount_application(da: dict) -> dict:
        value = da.get("value") or {}
        kind = {"DiscountCodeApplication": "discount_code", "ManualDiscountApplication": "manual",
                "AutomaticDiscountApplication": "automatic", "ScriptDiscountApplication": "script"}.get(
            da.get("__typename"), "manual")
        out = {
            "type": kind,
            "allocation_method": (da.get("allocationMethod") or "ACROSS").lower(),
            "target_selection": (da.get("targetSelection") or "ALL").lower(),
            "target_type": (da.get("targetType") or "LINE_ITEM").lower(),
        }
        if "percentage" in value:
            out["value_type"], out["value"] = "percentage", format(Decimal(str(value["percentage"])).normalize(), "f")
        else:
            out["value_type"], out["value"] = "fixed_amount", _amount(value.get("amount"))
        if kind == "discount_code":
            out["code"] = da.get("code")
        else:
            out["title"] = da.get("title")
            if kind == "manual":
                out["description"] = da.get("description")
        return out

    def refund(self, r: dict, order_id: int | None) -> dict:
        out = {"id": _legacy(r.get("id")), "order_id": order_id, "created_at": self.time(r.get("createdAt")),
               "note": r.get("note"), "refund_line_items": [], "transactions": [], "order_adjustments": []}
        _money(out, "total_refunded", r.get("totalRefundedSet"))
        for rli in (r.get("refundLineItems") or {}).get("nodes") or []:
            row = {"line_item_id": _legacy((rli.get("lineItem") or {}).get("id")), "quantity": rli.get("quantity"),
                   "restock_type": (rli.get("restockType") or "NO_RESTOCK").lower()}
            _money(row, "subtotal", rli.get("subtotalSet"))
            _money(row, "total_tax", rli.get("totalTaxSet"))
            out["refund_line_items"].append(row)
        for t in (r.get("transactions") or {}).get("nodes") or []:
            row = {"id": _legacy(t.get("id")), "kind": (t.get("kind") or "").lower(),
                   "status": (t.get("status") or "").lower(), "gateway": t.get("gateway")}
            _money(row, "amount", t.get("amountSet"))
            row.pop("amount_set", None)
            out["transactions"].append(row)
        # REST folds shipping refunds into order_adjustments as negative "shipping_refund" amounts.
        for sl in (r.get("refundShippingLines") or {}).get("nodes") or []:
            row = {"id": _legacy(sl.get("id")), "kind": "shipping_refund", "reason": "Shipping refund",
                   "shipping_line_id": _legacy((sl.get("shippingLine") or {}).get("id"))}
            _money(row, "amount", _negated(sl.get("subtotalAmountSet")))
            _money(row, "tax_amount", _negated(sl.get("taxAmountSet")))
            out["order_adjustments"].append(row)
        for a in (r.get("orderAdjustments") or {}).get("nodes") or []:
            row = {"id": _legacy(a.get("id")), "kind": "refund_discrepancy",
                   "reason": (a.get("reason") or "").lower() or None}
            _money(row, "amount", a.get("amountSet"))
            _money(row, "tax_amount", a.get("taxAmountSet"))
            out["order_adjustments"].append(row)
        return out

    def transaction(self, t: dict) -> dict:
        row = {"id": _legacy(t.get("id")), "kind": (t.get("kind") or "").lower(),
               "status": (t.get("status") or "").lower(), "gateway": t.get("gateway"),
               "processed_at": self.time(t.get("processedAt"))}
        _money(row, "amount", t.get("amountSet"))
        return row

    def customer(self) -> dict | None:
        c = self.n.get("customer")
        if not c:
            return None
        return {"id": _legacy(c.get("id")), "email": c.get("email"), "first_name": c.get("firstName"),
                "last_name": c.get("lastName"), "phone": c.get("phone"),
                "default_address": self.address(c.get("defaultAddress"))}

    def build(self) -> dict:
        n = self.n
        # REST's fulfillment_status is null for anything not (partly) fulfilled; 2026-10 added
        # FULFILLMENT_NOT_REQUIRED for an unfulfilled order with nothing left to fulfill.
        fulfillment = {"UNFULFILLED": None, "FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial",
                       "RESTOCKED": "restocked", "FULFILLMENT_NOT_REQUIRED": None}
        status = n.get("displayFulfillmentStatus")
        order_id = _legacy(n.get("id"))
        out = {
            "id": order_id, "admin_graphql_api_id": n.get("id"), "name": n.get("name"),
            "order_number": n.get("number"),
            "email": n.get("email"), "contact_email": n.get("email"), "phone": n.get("phone"),
            "note": n.get("note"), "tags": ", ".join(n.get("tags") or []), "source_name": n.get("sourceName"),
            "created_at": self.time(n.get("createdAt")), "updated_at": self.time(n.get("updatedAt")),
            "processed_at": self.time(n.get("processedAt")), "cancelled_at": self.time(n.get("cancelledAt")),
            "cancel_reason": (n.get("cancelReason") or "").lower() or None, "closed_at": self.time(n.get("closedAt")),
            "currency": n.get("currencyCode"), "presentment_currency": n.get("presentmentCurrencyCode"),
            "taxes_included": bool(n.get("taxesIncluded")),
            "financial_status": (n.get("displayFinancialStatus") or "").lower() or None,
            "fulfillment_status": fulfillment.get(status, (status or "").lower() or None),
            "payment_gateway_names": list(n.get("paymentGatewayNames") or []),
            "tax_lines": self.tax_lines(n.get("taxLines")),
            "customer": self.customer(),
            "billing_address": self.address(n.get("billingAddress")),
            "shipping_address": self.address(n.get("shippingAddress")),
            "line_items": [self.line_item(li) for li in (n.get("lineItems") or {}).get("nodes") or []],
            "shipping_lines": [self.shipping_line(s) for s in (n.get("shippingLines") or {}).get("nodes") or []],
            "discount_applications": [self.discount_application(d)
                                      for d in (n.get("discountApplications") or {}).get("nodes") or []],
            "refunds": [self.refund(r, order_id) for r in n.get("refunds") or []],
            "transactions": [self.transaction(t) for t in n.get("transactions") or []],
        }
        for key, field in (("total_price", "totalPriceSet"), ("subtotal_price", "subtotalPriceSet"),
                           ("total_tax", "totalTaxSet"), ("total_discounts", "totalDiscountsSet"),
                           ("current_total_price", "currentTotalPriceSet"),
                           ("current_subtotal_price", "currentSubtotalPriceSet"),
                           ("current_total_tax", "currentTotalTaxSet"),
                           ("current_total_discounts", "currentTotalDiscountsSet"),
                           ("total_tip_received", "totalTipReceivedSet")):
            _money(out, key, n.get(field), zero=key == "total_tip_received")
        for key, field in (("total_shipping_price_set", "totalShippingPriceSet"),
                           ("current_total_duties_set", "currentTotalDutiesSet"),
                           ("original_total_duties_set", "originalTotalDutiesSet"),
                           ("current_total_additional_fees_set", "currentTotalAdditionalFeesSet"),
                           ("original_total_additional_fees_set", "originalTotalAdditionalFeesSet")):
            out[key] = _set(n.get(field))
        out["discount_codes"] = self.discount_codes(out)
        return out

    @staticmethod
    def discount_codes(order: dict) -> list[dict]:
        """REST's discount_codes: each code application with the amount it allocated."""
        codes = []
        allocations = [a for li in order["line_items"] for a in li["discount_allocations"]]
        allocations += [a for sl in order["shipping_lines"] for a in sl["discount_allocations"]]
        for index, app in enumerate(order["discount_applications"]):
            if app["type"] != "discount_code":
                continue
            amount = sum((Decimal(a["amount"]) for a in allocations if a["discount_application_index"] == index),
                         Decimal("0"))
            codes.append({"code": app.get("code"), "amount": _amount(amount),
                          "type": "shipping" if app["target_type"] == "shipping_line" else app["value_type"]})
        return codes


def to_rest_order(node: dict, shop: Shop) -> dict:
    return RestOrderBuilder(node, shop).build()
