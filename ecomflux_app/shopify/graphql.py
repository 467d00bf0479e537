"""Admin GraphQL reads (shop info, orders) returned in the REST webhook shape the translation core reads."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, time as dtime, timedelta, timezone

import requests

from .. import runtime
from ..models import Shop
from .errors import ShopifyError, ShopifyReauthRequired, ShopifyThrottled, ShopifyUnavailable, ShopifyUnreachable
from .oauth import admin_base
from .order_shape import shop_zone, to_rest_order
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
  shop { id name email myshopifyDomain currencyCode ianaTimezone shopAddress { countryCodeV2 } }
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


_version_warned: set[tuple[str, str]] = set()


def _check_served_version(resp, pinned: str) -> None:
    """Log once per version pair when Shopify answered with another version than the pinned one.

    Shopify serves the oldest supported version instead of an unsupported one, silently except for
    this response header: the log line is the only sign that the fields we read may have changed."""
    served = resp.headers.get("X-Shopify-API-Version")
    if served and served != pinned and (pinned, served) not in _version_warned:
        _version_warned.add((pinned, served))
        log.warning("Shopify answered with API version %s, not the pinned %s: move SHOPIFY_API_VERSION "
                    "and shopify.app.toml to a supported version", served, pinned)


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
            raise ShopifyUnreachable(f"Shopify unreachable at {url} ({type(exc).__name__})", 30) from exc
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
        _check_served_version(resp, cfg["SHOPIFY_API_VERSION"])
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
ACCESS_CHECK_QUERY = "query EcomfluxAccessCheck { shop { id } }"


def token_accepted(shop: Shop) -> bool:
    """Whether Shopify still accepts the shop's token (one refresh allowed); transient trouble raises RetryLater."""
    try:
        execute(shop, ACCESS_CHECK_QUERY)
    except ShopifyReauthRequired:
        # 401 twice or the refresh refused: execute() has already marked the shop reauth_required.
        return False
    except ShopifyError as exc:
        # GraphQL errors come with HTTP 200, i.e. after Shopify authenticated the token; any other
        # unusable answer (404 for a shop that is gone, a refused refresh) proves no access.
        return getattr(exc, "codes", None) is not None
    return True


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
        # shopAddress replaced the deprecated billingAddress in 2026-01 (same shape and values).
        "country": ((data.get("shopAddress") or data.get("billingAddress") or {}).get("countryCodeV2")),
        "myshopify_domain": data.get("myshopifyDomain"),
    }


def _search_time(value, shop: Shop) -> str:
    """A bound as UTC ISO text; a bare date means midnight in the shop's timezone."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    elif isinstance(value, date):
        moment = datetime.combine(value, dtime.min, tzinfo=shop_zone(shop))
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
