"""Shopify Payments in the Shopify stand-in: payouts and balance transactions, rendered as the Admin GraphQL
`shopifyPaymentsAccount { payouts, balanceTransactions }` connections, plus a scenario builder.

Amounts follow Shopify: a balance transaction's `amount` is signed (charges in, refunds, disputes and
reserves out), its `fee` is positive and taken from it, `net` = amount - fee. A payout's `net` is the
sum of its transactions' nets; its own TRANSFER transaction moves that net to the bank (amount -net).
A failed payout's money returns to the balance as a PAYOUT_FAILURE transaction in a later payout.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from .graphql_args import field_arguments
from .shopify_paging import connection_page, parse_search

CENT = Decimal("0.01")
PAYOUT_STATUSES = ("SCHEDULED", "IN_TRANSIT", "PAID", "FAILED", "CANCELED")
TRANSACTION_TYPES = ("CHARGE", "REFUND", "DISPUTE", "RESERVED_FUNDS", "RESERVED_FUNDS_WITHDRAWAL", "ADJUSTMENT",
                     "CHARGE_ADJUSTMENT", "REFUND_ADJUSTMENT", "PAYOUT_FAILURE", "PAYOUT_CANCELLATION",
                     "ADVANCE", "ADVANCE_FUNDING", "TRANSFER", "TRANSFER_FAILURE", "TRANSFER_CANCEL")
SOURCE_TYPES = {"CHARGE": "CHARGE", "REFUND": "REFUND", "DISPUTE": "DISPUTE", "ADJUSTMENT": "ADJUSTMENT",
                "CHARGE_ADJUSTMENT": "ADJUSTMENT", "REFUND_ADJUSTMENT": "ADJUSTMENT",
                "RESERVED_FUNDS": "SYSTEM_ADJUSTMENT", "RESERVED_FUNDS_WITHDRAWAL": "SYSTEM_ADJUSTMENT",
                "PAYOUT_FAILURE": "TRANSFER", "PAYOUT_CANCELLATION": "TRANSFER", "TRANSFER": "TRANSFER"}
SUMMARY = {  # summary field prefix -> transaction types it adds up
    "charges": ("CHARGE",), "refunds": ("REFUND",), "adjustments": ("ADJUSTMENT", "CHARGE_ADJUSTMENT",
                                                                      "REFUND_ADJUSTMENT", "DISPUTE"),
    "reservedFunds": ("RESERVED_FUNDS", "RESERVED_FUNDS_WITHDRAWAL"),
    "retriedPayouts": ("PAYOUT_FAILURE", "PAYOUT_CANCELLATION"), "advance": ("ADVANCE", "ADVANCE_FUNDING"),
}


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _text(value: Decimal) -> str:
    return format(money(value), "f")


def _time(value) -> str:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _parse_time(text: str) -> datetime:
    text = str(text).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text) if "T" in text else datetime.fromisoformat(text + "T00:00:00+00:00")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class PayoutBook:
    """One shop's Shopify Payments account: payouts by id and the balance transactions."""

    def __init__(self):
        self.payouts: dict[int, dict] = {}
        self.transactions: dict[int, dict] = {}
        self.next_id = 880000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def put_payout(self, payout: dict) -> dict:
        stored = dict(payout)
        stored["id"] = int(stored.get("id") or self.new_id())
        stored.setdefault("status", "PAID")
        if stored["status"] not in PAYOUT_STATUSES:
            raise ValueError(f"payout status must be one of {PAYOUT_STATUSES}")
        stored.setdefault("currency", "USD")
        stored.setdefault("issued_at", _time(datetime.now(timezone.utc)))
        stored["issued_at"] = _time(stored["issued_at"])
        self.payouts[stored["id"]] = stored
        return stored

    def put_transaction(self, txn: dict) -> dict:
        stored = dict(txn)
        stored["id"] = int(stored.get("id") or self.new_id())
        if stored.get("type") not in TRANSACTION_TYPES:
            raise ValueError(f"balance transaction type must be one of {TRANSACTION_TYPES}")
        stored["amount"] = _text(money(stored.get("amount", 0)))
        stored["fee"] = _text(money(stored.get("fee", 0)))
        stored.setdefault("processed_at", _time(datetime.now(timezone.utc)))
        stored["processed_at"] = _time(stored["processed_at"])
        self.transactions[stored["id"]] = stored
        return stored

    def payout_transactions(self, payout_id: int, with_transfer: bool = False) -> list[dict]:
        return sorted((t for t in self.transactions.values() if t.get("payout_id") == payout_id
                       and (with_transfer or t["type"] != "TRANSFER")), key=lambda t: (t["processed_at"], t["id"]))

    def net(self, payout_id: int) -> Decimal:
        return sum((money(t["amount"]) - money(t["fee"]) for t in self.payout_transactions(payout_id)), Decimal(0))

    def seal(self, payout_id: int) -> dict:
        """Add the payout's own TRANSFER transaction (net to the bank) once its contents are final."""
        payout = self.payouts[payout_id]
        if not any(t["type"] == "TRANSFER" for t in self.payout_transactions(payout_id, True)):
            self.put_transaction({"type": "TRANSFER", "amount": -self.net(payout_id), "fee": 0,
                                  "payout_id": payout_id, "source_id": payout_id, "currency": payout["currency"],
                                  "processed_at": payout["issued_at"]})
        return payout

    # -- GraphQL rendering ---------------------------------------------------------------------------
    def render_payout(self, payout: dict) -> dict:
        currency = payout["currency"]

        def m(value) -> dict:
            return {"amount": _text(value), "currencyCode": currency}

        txns = self.payout_transactions(payout["id"])
        summary = {}
        for prefix, kinds in SUMMARY.items():
            chosen = [t for t in txns if t["type"] in kinds]
            gross = sum((money(t["amount"]) for t in chosen), Decimal(0))
            fee = sum((money(t["fee"]) for t in chosen), Decimal(0))
            if prefix == "advance":
                summary["advanceFees"], summary["advanceGross"] = m(fee), m(gross)
            elif prefix == "refunds":
                summary["refundsFee"], summary["refundsFeeGross"] = m(fee), m(gross)
            else:
                summary[f"{prefix}Fee"], summary[f"{prefix}Gross"] = m(fee), m(gross)
        net = self.net(payout["id"])
        return {"id": f"gid://shopify/ShopifyPaymentsPayout/{payout['id']}", "legacyResourceId": str(payout["id"]),
                "issuedAt": payout["issued_at"], "status": payout["status"],
                "transactionType": "DEPOSIT" if net >= 0 else "WITHDRAWAL",
                "net": m(abs(net)), "gross": m(abs(net)), "summary": summary,
                "externalTraceId": payout.get("external_trace_id")}

    def render_transaction(self, txn: dict) -> dict:
        currency = txn.get("currency") or "USD"
        payout = self.payouts.get(txn.get("payout_id"))
        order = None
        if txn.get("order_id"):
            order = {"id": f"gid://shopify/Order/{txn['order_id']}", "name": txn.get("order_name")}
        return {
            "id": f"gid://shopify/ShopifyPaymentsBalanceTransaction/{txn['id']}", "type": txn["type"],
            "test": bool(txn.get("test", False)), "transactionDate": txn["processed_at"],
            "amount": {"amount": txn["amount"], "currencyCode": currency},
            "fee": {"amount": txn["fee"], "currencyCode": currency},
            "net": {"amount": _text(money(txn["amount"]) - money(txn["fee"])), "currencyCode": currency},
            "sourceType": SOURCE_TYPES.get(txn["type"]), "sourceId": str(txn["source_id"]) if txn.get("source_id")
            else None,
            "sourceOrderTransactionId": str(txn["source_order_transaction_id"])
            if txn.get("source_order_transaction_id") else None,
            "associatedOrder": order,
            "associatedPayout": {"id": f"gid://shopify/ShopifyPaymentsPayout/{payout['id']}",
                                 "status": payout["status"]} if payout else {"id": None, "status": None},
            "adjustmentReason": txn.get("adjustment_reason"), "adjustmentsOrders": [],
        }

    def answer(self, query: str, variables: dict) -> tuple[dict, int]:
        """The `shopifyPaymentsAccount` field for a query: (data, objects returned)."""
        account: dict = {"id": "gid://shopify/ShopifyPaymentsAccount/1", "activated": True}
        count = 1
        for field, rows, render in (("payouts", self._payout_rows, self.render_payout),
                                    ("balanceTransactions", self._transaction_rows, self.render_transaction)):
            args = _field_args(query, field, variables)
            if args is None:
                continue
            first = int(args.get("first") or 0)
            if first < 1 or first > 250:
                raise ValueError(f"{field}: first must be between 1 and 250")
            account[field], size = connection_page(rows(parse_search(args.get("query") or "")), args, render)
            count += 2 + size * (6 if field == "balanceTransactions" else 3)
        return account, count

    def _payout_rows(self, filters) -> list:
        out = []
        for payout in self.payouts.values():
            if all(_payout_matches(payout, f) for f in filters):
                out.append(((_parse_time(payout["issued_at"]).timestamp(), payout["id"]), payout))
        return out

    def _transaction_rows(self, filters) -> list:
        out = []
        for txn in self.transactions.values():
            if all(self._transaction_matches(txn, f) for f in filters):
                out.append(((_parse_time(txn["processed_at"]).timestamp(), txn["id"]), txn))
        return out

    def _transaction_matches(self, txn: dict, term) -> bool:
        name, op, value = term
        payout = self.payouts.get(txn.get("payout_id"))
        if name in ("payments_transfer_id", "payout_id"):
            return str(txn.get("payout_id")) == value.rsplit("/", 1)[-1]
        if name == "payout_status":
            return payout is not None and payout["status"].lower() == value.lower()
        if name == "payout_date":
            return payout is not None and _compare(_parse_time(payout["issued_at"]).date().isoformat(), op,
                                                   value[:10])
        if name in ("processed_at", "transaction_date"):
            return _compare(_parse_time(txn["processed_at"]), op, _parse_time(value))
        if name == "type":
            return txn["type"].lower() == value.lower()
        return True  # Shopify ignores filters it does not know


def _payout_matches(payout: dict, term) -> bool:
    name, op, value = term
    if name == "status":
        return payout["status"].lower() == value.lower()
    if name == "issued_at":
        return _compare(_parse_time(payout["issued_at"]), op, _parse_time(value))
    if name == "id":
        return str(payout["id"]) == value.rsplit("/", 1)[-1]
    return True


def _compare(actual, op: str, expected) -> bool:
    return {"=": actual == expected, ">=": actual >= expected, "<=": actual <= expected, ">": actual > expected,
            "<": actual < expected}[op]


def _field_args(query: str, field: str, variables: dict) -> dict | None:
    match = re.search(rf"\b{field}\s*(\(([^)]*)\))?\s*{{", query)
    if not match:
        return None
    return field_arguments(match.group(2), variables)


# -- scenario ------------------------------------------------------------------------------------------
def card_fee(amount: Decimal, rate: Decimal = Decimal("0.029"), fixed: Decimal = Decimal("0.30")) -> Decimal:
    """Shopify Payments' online card rate on a charge (2.9% + 30c by default), rounded to the cent."""
    return money(amount * rate + fixed)


def build_scenario(book: PayoutBook, orders: list[dict], *, start: datetime | None = None, currency: str = "USD",
                   refund: dict | None = None, dispute_order: dict | None = None, reserve: str = "25.00",
                   adjustment: str = "-3.50") -> dict:
    """Three payouts over `orders` (paid through Shopify Payments), as a bookkeeper meets them:
    1. PAID: charges (fee per charge), a refund, a reserve held back, an adjustment;
    2. FAILED: the next charges (the bank rejected the transfer);
    3. PAID: a dispute (chargeback + its fee), the reserve released, the failed payout's money returned.
    Returns {"paid": [id, id], "failed": id}."""
    start = start or datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
    half = max(1, len(orders) // 2)
    first, second = orders[:half], orders[half:]

    def charge(order: dict, payout_id: int, when: datetime) -> None:
        amount = money(order["current_total_price"])
        book.put_transaction({"type": "CHARGE", "amount": amount, "fee": card_fee(amount), "payout_id": payout_id,
                              "order_id": order["id"], "order_name": order.get("name"), "currency": currency,
                              "source_id": int(order["id"]) * 7, "source_order_transaction_id": int(order["id"]) * 7,
                              "processed_at": when})

    p1 = book.put_payout({"issued_at": start + timedelta(days=1), "status": "PAID", "currency": currency})["id"]
    for n, order in enumerate(first):
        charge(order, p1, start + timedelta(minutes=n))
    if refund is not None:
        book.put_transaction({"type": "REFUND", "amount": -money(refund["amount"]), "fee": 0, "payout_id": p1,
                              "order_id": refund["order_id"], "order_name": refund.get("order_name"),
                              "currency": currency, "source_id": refund.get("id"), "processed_at": start
                              + timedelta(hours=2)})
    if reserve:
        book.put_transaction({"type": "RESERVED_FUNDS", "amount": -money(reserve), "fee": 0, "payout_id": p1,
                              "currency": currency, "processed_at": start + timedelta(hours=3)})
    if adjustment:
        book.put_transaction({"type": "ADJUSTMENT", "amount": money(adjustment), "fee": 0, "payout_id": p1,
                              "currency": currency, "adjustment_reason": "Shopify Payments fee correction",
                              "processed_at": start + timedelta(hours=4)})
    book.seal(p1)

    p2 = book.put_payout({"issued_at": start + timedelta(days=2), "status": "FAILED", "currency": currency})["id"]
    for n, order in enumerate(second):
        charge(order, p2, start + timedelta(days=1, minutes=n))
    book.seal(p2)

    p3 = book.put_payout({"issued_at": start + timedelta(days=4), "status": "PAID", "currency": currency})["id"]
    if dispute_order is not None:
        disputed = money(dispute_order["current_total_price"])
        book.put_transaction({"type": "DISPUTE", "amount": -disputed, "fee": "15.00", "payout_id": p3,
                              "order_id": dispute_order["id"], "order_name": dispute_order.get("name"),
                              "currency": currency, "source_id": 5500 + int(dispute_order["id"]),
                              "processed_at": start + timedelta(days=3)})
    if reserve:
        book.put_transaction({"type": "RESERVED_FUNDS", "amount": money(reserve), "fee": 0, "payout_id": p3,
                              "currency": currency, "processed_at": start + timedelta(days=3, hours=1)})
    book.put_transaction({"type": "PAYOUT_FAILURE", "amount": book.net(p2), "fee": 0, "payout_id": p3,
                          "source_id": p2, "currency": currency, "processed_at": start + timedelta(days=3, hours=2)})
    book.seal(p3)
    return {"paid": [p1, p3], "failed": p2}
