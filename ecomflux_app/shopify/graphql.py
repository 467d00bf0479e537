"""Admin GraphQL reads (shop info, orders) returned in the REST webhook shape the translation core reads."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from .. import runtime
from ..models import Shop
from .errors import ShopifyError, ShopifyReauthRequired, ShopifyThrottled, ShopifyUnavailable
from .oauth import admin_base
from .tokens import fresh_access_token, mark_reauth_required

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 30
MAX_INLINE_WAIT = 5.0  # seconds we will sleep for the cost bucket before handing back a retryable error
MAX_ATTEMPTS = 4
LINE_ITEMS_PAGE = 25
sleep = time.sleep  # module attribute so tests can observe waits without sleeping


MONEY = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"
TAX_LINES = f"title rate ratePercentage channelLiable priceSet {{ {MONEY} }}"
ALLOCATIONS = f"allocatedAmountSet {{ {MONEY} }} discountApplication {{ index }}"
ADDRESS = ("firstName lastName name company address1 address2 city province provinceCode zip country "
           "countryCodeV2 phone")

LINE_ITEM_FIELDS = f"""
      id sku name title variantTitle vendor quantity currentQuantity taxable isGiftCard requiresShipping
      originalUnitPriceSet {{ {MONEY} }}
      product {{ id }} variant {{ id }}
      taxLines {{ {TAX_LINES} }}
      discountAllocations {{ {ALLOCATIONS} }}
      duties {{ id harmonizedSystemCode countryCodeOfOrigin price {{ {MONEY} }} taxLines {{ {TAX_LINES} }} }}
"""

# Sized so one order stays well under Shopify's 1000-point single-query limit; longer orders
# page their line items, and refunds are read one by one (see fetch_order).
ORDER_FIELDS = f"""
  id legacyResourceId name number email phone note tags sourceName
  createdAt updatedAt processedAt cancelledAt cancelReason closedAt
  currencyCode presentmentCurrencyCode taxesIncluded
  displayFinancialStatus displayFulfillmentStatus paymentGatewayNames discountCodes
  totalPriceSet {{ {MONEY} }} subtotalPriceSet {{ {MONEY} }} totalTaxSet {{ {MONEY} }}
  totalDiscountsSet {{ {MONEY} }} totalShippingPriceSet {{ {MONEY} }}
  currentTotalPriceSet {{ {MONEY} }} currentSubtotalPriceSet {{ {MONEY} }} currentTotalTaxSet {{ {MONEY} }}
  currentTotalDiscountsSet {{ {MONEY} }} totalTipReceivedSet {{ {MONEY} }}
  currentTotalDutiesSet {{ {MONEY} }} originalTotalDutiesSet {{ {MONEY} }}
  currentTotalAdditionalFeesSet {{ {MONEY} }} originalTotalAdditionalFeesSet {{ {MONEY} }}
  taxLines {{ {TAX_LINES} }}
  transactions(first: 10) {{ id kind status gateway processedAt amountSet {{ {MONEY} }} }}
  customer {{ id legacyResourceId firstName lastName displayName email phone defaultAddress {{ {ADDRESS} }} }}
  billingAddress {{ {ADDRESS} }}
  shippingAddress {{ {ADDRESS} }}
  lineItems(first: {LINE_ITEMS_PAGE}) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {LINE_ITEM_FIELDS} }} }}
  shippingLines(first: 5) {{
    nodes {{
      id title code source isRemoved
      originalPriceSet {{ {MONEY} }} discountedPriceSet {{ {MONEY} }}
      taxLines {{ {TAX_LINES} }}
      discountAllocations {{ {ALLOCATIONS} }}
    }}
  }}
  discountApplications(first: 10) {{
    nodes {{
      __typename index allocationMethod targetSelection targetType
      value {{ __typename ... on MoneyV2 {{ amount currencyCode }} ... on PricingPercentageValue {{ percentage }} }}
      ... on DiscountCodeApplication {{ code }}
      ... on ManualDiscountApplication {{ title description }}
      ... on AutomaticDiscountApplication {{ title }}
      ... on ScriptDiscountApplication {{ title }}
    }}
  }}
  refunds {{ id }}
"""

REFUND_FIELDS = f"""
  id legacyResourceId createdAt note totalRefundedSet {{ {MONEY} }}
  refundLineItems(first: 50) {{
    pageInfo {{ hasNextPage }}
    nodes {{ lineItem {{ id }} quantity restockType subtotalSet {{ {MONEY} }} totalTaxSet {{ {MONEY} }} }}
  }}
  transactions(first: 10) {{ nodes {{ id kind status gateway amountSet {{ {MONEY} }} }} }}
  orderAdjustments(first: 10) {{ nodes {{ id reason amountSet {{ {MONEY} }} taxAmountSet {{ {MONEY} }} }} }}
  refundShippingLines(first: 10) {{
    nodes {{ id shippingLine {{ id }} subtotalAmountSet {{ {MONEY} }} taxAmountSet {{ {MONEY} }} }}
  }}
"""

SHOP_QUERY = """query EcomfluxShopInfo {
  shop { id name email myshopifyDomain currencyCode ianaTimezone billingAddress { countryCodeV2 } }
}"""

ORDER_IDS_QUERY = """query EcomfluxOrderIds($first: Int!, $after: String, $query: String, $sortKey: OrderSortKeys) {
  orders(first: $first, after: $after, query: $query, sortKey: $sortKey) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id } }
  }
}"""

ORDER_QUERY = f"""query EcomfluxOrder($id: ID!) {{
  order(id: $id) {{ {ORDER_FIELDS} }}
}}"""

ORDER_LINE_ITEMS_QUERY = f"""query EcomfluxOrderLineItems($id: ID!, $after: String) {{
  order(id: $id) {{
    lineItems(first: {LINE_ITEMS_PAGE}, after: $after) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {LINE_ITEM_FIELDS} }} }}
  }}
}}"""

REFUND_QUERY = f"""query EcomfluxRefund($id: ID!) {{
  refund(id: $id) {{ {REFUND_FIELDS} }}
}}"""


# -- transport -------------------------------------------------------------------------------------
def _throttle_wait(body: dict) -> float:
    """Seconds until the cost bucket holds what the rejected query asked for."""
    cost = (body.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    needed = float(cost.get("requestedQueryCost") or 0) - float(status.get("currentlyAvailable") or 0)
    rate = float(status.get("restoreRate") or 50) or 50.0
    return max(0.5, needed / rate)


def execute(shop: Shop, query: str, variables: dict | None = None) -> dict:
    """Run one Admin GraphQL operation for the shop; returns `data`. Waits briefly on throttling."""
    cfg = runtime.config()
    url = f"{admin_base(shop.domain)}/admin/api/{cfg['SHOPIFY_API_VERSION']}/graphql.json"
    rejected = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        token = fresh_access_token(shop, rejected=rejected)
        try:
            resp = requests.post(url, json={"query": query, "variables": variables or {}}, timeout=HTTP_TIMEOUT,
                                 headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json",
                                          "Accept": "application/json"})
        except requests.RequestException as exc:
            raise ShopifyUnavailable(f"Shopify GraphQL unreachable: {type(exc).__name__}", 30) from exc
        if resp.status_code == 401:
            if rejected is None:
                rejected = token  # maybe expired early: one forced refresh, then give up
                continue
            mark_reauth_required(shop, "Shopify rejected the access token (401)")
            raise ShopifyReauthRequired(shop.auth_error)
        if resp.status_code == 402 or resp.status_code == 423:
            raise ShopifyUnavailable(f"shop {shop.domain} is frozen or locked ({resp.status_code})", 3600)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise ShopifyUnavailable(f"Shopify GraphQL answered {resp.status_code}", 30)
        try:
            body = resp.json()
        except ValueError as exc:
            raise ShopifyUnavailable(f"Shopify GraphQL answered non-JSON ({resp.status_code})", 30) from exc
        errors = body.get("errors")
        if errors:
            errors = errors if isinstance(errors, list) else [{"message": str(errors)}]
            codes = {((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
            if "THROTTLED" in codes:
                wait = _throttle_wait(body)
                if wait <= MAX_INLINE_WAIT and attempt < MAX_ATTEMPTS:
                    sleep(wait)
                    continue
                raise ShopifyThrottled(f"Shopify GraphQL throttled for {shop.domain}", max(wait, 1.0))
            message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
            error = ShopifyError(f"Shopify GraphQL error: {message}", {"errors": errors})
            error.codes = codes  # type: ignore[attr-defined]
            raise error
        if resp.status_code != 200 or "data" not in body:
            raise ShopifyError(f"unexpected Shopify GraphQL answer {resp.status_code}")
        return body["data"]
    raise ShopifyThrottled(f"Shopify GraphQL still throttled for {shop.domain}", 10)


# -- reads -----------------------------------------------------------------------------------------
SHOP_QUERY_MINIMAL = "query EcomfluxShopBasics { shop { name email currencyCode ianaTimezone } }"


def fetch_shop_info(shop: Shop) -> dict:
    """Name, email, currency, IANA timezone and country of the shop."""
    try:
        data = execute(shop, SHOP_QUERY)["shop"]
    except ShopifyError as exc:
        # An API version without a field we ask for: the basics still decide money and dates.
        log.warning("full shop query failed for %s (%s); reading the basics only", shop.domain, exc)
        data = execute(shop, SHOP_QUERY_MINIMAL)["shop"]
    return {
        "name": data.get("name"),
        "email": data.get("email"),
        "currency": data.get("currencyCode") or "USD",
        "timezone": data.get("ianaTimezone") or "UTC",
        "country": ((data.get("billingAddress") or {}).get("countryCodeV2")),
        "myshopify_domain": data.get("myshopifyDomain"),
    }


def _zone(shop: Shop):
    try:
        return ZoneInfo(shop.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def _search_time(value, shop: Shop) -> str:
    """A bound as UTC ISO text; a bare date means midnight in the shop's timezone."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    elif isinstance(value, date):
        moment = datetime.combine(value, dtime.min, tzinfo=_zone(shop))
    else:
        raise TypeError("since/until must be a date or datetime")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_query(shop: Shop, since, until=None, field: str = "processed_at") -> str:
    """`since` inclusive; `until` exclusive for a datetime, inclusive (whole day) for a date; None = open."""
    terms = [f"{field}:>='{_search_time(since, shop)}'"] if since is not None else []
    if until is not None:
        if isinstance(until, date) and not isinstance(until, datetime):
            until = until + timedelta(days=1)
        terms.append(f"{field}:<'{_search_time(until, shop)}'")
    return " ".join(terms)


def fetch_orders(shop: Shop, since, until=None, cursor: str | None = None, page_size: int = 50,
                 field: str = "processed_at") -> tuple[list[dict], str | None]:
    """One page of orders in [since, until) by `field`, oldest first, REST-shaped; plus the next cursor."""
    sort_key = {"processed_at": "PROCESSED_AT", "created_at": "CREATED_AT", "updated_at": "UPDATED_AT"}[field]
    # The page itself is a cheap list of ids; each order is then read in full within the cost limit.
    data = execute(shop, ORDER_IDS_QUERY, {"first": max(1, min(int(page_size), 250)), "after": cursor,
                                           "sortKey": sort_key, "query": search_query(shop, since, until, field)})
    connection = data["orders"]
    orders = []
    for edge in connection.get("edges") or []:
        order = fetch_order(shop, edge["node"]["id"])
        if order is not None:  # deleted between the two reads
            orders.append(order)
    info = connection.get("pageInfo") or {}
    return orders, (info.get("endCursor") if info.get("hasNextPage") else None)


def fetch_order(shop: Shop, order_id) -> dict | None:
    """The order by numeric id (or gid), REST-shaped with all its line items and refunds; None if absent."""
    text = str(order_id)
    gid = text if text.startswith("gid://") else f"gid://shopify/Order/{text}"
    node = execute(shop, ORDER_QUERY, {"id": gid}).get("order")
    if not node:
        return None
    items = node.get("lineItems") or {"nodes": [], "pageInfo": {}}
    page = items.get("pageInfo") or {}
    while page.get("hasNextPage"):
        more = execute(shop, ORDER_LINE_ITEMS_QUERY, {"id": gid, "after": page.get("endCursor")})["order"]["lineItems"]
        items["nodes"] = list(items.get("nodes") or []) + list(more.get("nodes") or [])
        page = more.get("pageInfo") or {}
    items["pageInfo"] = {"hasNextPage": False, "endCursor": None}
    node["lineItems"] = items
    refunds = []
    for ref in node.get("refunds") or []:
        full = execute(shop, REFUND_QUERY, {"id": ref["id"]}).get("refund")
        if full is not None:
            if ((full.get("refundLineItems") or {}).get("pageInfo") or {}).get("hasNextPage"):
                raise ShopifyError(f"refund {full.get('id')} has more than 50 refunded lines")
            refunds.append(full)
    node["refunds"] = refunds
    return to_rest_order(node, shop)


# -- GraphQL node -> REST shape --------------------------------------------------------------------
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
        self.zone = _zone(shop)

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
        fulfillment = {"UNFULFILLED": None, "FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial",
                       "RESTOCKED": "restocked"}
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
