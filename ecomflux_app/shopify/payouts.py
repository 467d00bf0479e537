"""Shopify Payments reads (GraphQL `shopifyPaymentsAccount`): payouts and their balance transactions, as plain dicts.

Each page is sized to stay well under Shopify's 1000-point single-query limit (payouts: 50 x ~4
points, transactions: 100 x ~6 points); execute() waits on the cost bucket like every other read.
"""

from __future__ import annotations

from ..models import Shop
from .errors import ShopifyError
from .graphql import execute, search_query

PAYOUT_PAGE = 50
TRANSACTION_PAGE = 100
MONEY = "amount currencyCode"

PAYOUTS_QUERY = f"""query EcomfluxPayouts($first: Int!, $after: String, $query: String) {{
  shopifyPaymentsAccount {{
    payouts(first: $first, after: $after, query: $query) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ id legacyResourceId issuedAt status transactionType net {{ {MONEY} }} }}
    }}
  }}
}}"""

TRANSACTIONS_QUERY = f"""query EcomfluxPayoutTransactions($first: Int!, $after: String, $query: String) {{
  shopifyPaymentsAccount {{
    balanceTransactions(first: $first, after: $after, query: $query) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{
        id type test transactionDate sourceType sourceId sourceOrderTransactionId adjustmentReason
        amount {{ {MONEY} }} fee {{ {MONEY} }} net {{ {MONEY} }}
        associatedOrder {{ id name }} associatedPayout {{ id status }}
      }}
    }}
  }}
}}"""


class NoPaymentsAccount(ShopifyError):
    """The shop does not use Shopify Payments (no account, or the app lacks the payouts scope)."""


def _legacy(gid) -> str | None:
    return str(gid).rsplit("/", 1)[-1] if gid not in (None, "") else None


def _account(data: dict) -> dict:
    account = data.get("shopifyPaymentsAccount")
    if account is None:
        raise NoPaymentsAccount("this shop has no Shopify Payments account")
    return account


def payout_from_node(node: dict) -> dict:
    """A payout as the sync keeps it: id, issued_at, status, signed net (a withdrawal is negative), currency."""
    net = (node.get("net") or {})
    amount = str(net.get("amount") or "0")
    if node.get("transactionType") == "WITHDRAWAL" and not amount.startswith("-"):
        amount = "-" + amount
    return {"id": str(node.get("legacyResourceId") or _legacy(node.get("id"))), "issued_at": node.get("issuedAt"),
            "status": node.get("status"), "transaction_type": node.get("transactionType"), "net": amount,
            "currency": net.get("currencyCode")}


def transaction_from_node(node: dict) -> dict:
    order = node.get("associatedOrder") or {}
    payout = node.get("associatedPayout") or {}
    return {"id": _legacy(node.get("id")), "type": node.get("type"), "test": bool(node.get("test")),
            "processed_at": node.get("transactionDate"), "source_type": node.get("sourceType"),
            "source_id": node.get("sourceId"), "adjustment_reason": node.get("adjustmentReason"),
            "amount": (node.get("amount") or {}).get("amount"), "fee": (node.get("fee") or {}).get("amount"),
            "net": (node.get("net") or {}).get("amount"), "currency": (node.get("amount") or {}).get("currencyCode"),
            "order_id": _legacy(order.get("id")), "order_name": order.get("name"),
            "payout_id": _legacy(payout.get("id")), "payout_status": payout.get("status")}


def fetch_payouts(shop: Shop, since, until=None, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of payouts issued in [since, until] (dates in the shop's timezone); plus the next cursor."""
    data = execute(shop, PAYOUTS_QUERY, {"first": PAYOUT_PAGE, "after": cursor,
                                         "query": search_query(shop, since, until, field="issued_at")})
    connection = _account(data)["payouts"]
    info = connection.get("pageInfo") or {}
    return ([payout_from_node(n) for n in connection.get("nodes") or []],
            info.get("endCursor") if info.get("hasNextPage") else None)


def fetch_payout_transactions(shop: Shop, payout_id: str) -> list[dict]:
    """Every balance transaction of one payout (its own TRANSFER included), oldest first."""
    out: list[dict] = []
    cursor = None
    while True:
        data = execute(shop, TRANSACTIONS_QUERY, {"first": TRANSACTION_PAGE, "after": cursor,
                                                  "query": f"payments_transfer_id:{payout_id}"})
        connection = _account(data)["balanceTransactions"]
        out.extend(transaction_from_node(n) for n in connection.get("nodes") or [])
        info = connection.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            # The filter is Shopify's; keep only this payout's rows in case a version ignores it.
            return [t for t in out if t["payout_id"] in (None, str(payout_id))]
        cursor = info.get("endCursor")
