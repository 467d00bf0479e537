"""Shared set-up for payout tests: accounts in the sandbox company, orders posted, the standard payouts."""

from __future__ import annotations

from decimal import Decimal

from tests.after_sale_helpers import make_refund
from tests.fixtures_flow import simple_order
from tests.helpers import drain, post_webhook


def account(connected, name: str) -> dict:
    return next(a for a in connected.documents("Account") if a["Name"] == name)


def setup_accounts(connected, clearing: str = "Undeposited Funds") -> dict:
    """Fee account created as a bookkeeper would; clearing/bank/fee set in the shop's settings."""
    fees = connected.intuit.put_entity(connected.realm, "Account", {
        "Name": "Shopify Payments fees", "AccountType": "Expense", "AccountSubType": "OtherMiscellaneousServiceCost"})
    if clearing != "Undeposited Funds":
        connected.intuit.put_entity(connected.realm, "Account", {
            "Name": clearing, "AccountType": "Other Current Asset", "AccountSubType": "OtherCurrentAssets"})
    ids = {"clearing": str(account(connected, clearing)["Id"]), "bank": str(account(connected, "Checking")["Id"]),
           "fee": str(fees["Id"])}
    connected.settings(payout_clearing_account_id=ids["clearing"], payout_bank_account_id=ids["bank"],
                       payout_fee_account_id=ids["fee"])
    return ids


def post_orders(client, redis_conn, connected, count: int = 4, refund_first: bool = True) -> tuple[list, dict | None]:
    """Orders fulfilled (Sales Receipts through Shopify Payments) and, optionally, a refund of the first."""
    orders = [simple_order(9101 + n, f"#{9101 + n}", price=f"{10 + n}.00", email=f"buyer{n}@example.com",
                           first=f"Buyer{n}") for n in range(count)]
    for order in orders:
        connected.shopify.add_order(connected.shop.domain, order)
        assert post_webhook(client, "orders/fulfilled", connected.shop.domain, order).status_code == 200
    drain(redis_conn)
    refund = None
    if refund_first:
        refund = make_refund(orders[0], qty=1)
        assert post_webhook(client, "refunds/create", connected.shop.domain, refund).status_code == 200
        drain(redis_conn)
    return orders, refund


def scenario(connected, orders, refund) -> dict:
    refund_total = sum(Decimal(t["amount"]) for t in refund["transactions"]) if refund else None
    return connected.shopify.state.payout_scenario(
        connected.shop.domain, orders,
        refund={"amount": refund_total, "order_id": orders[0]["id"], "order_name": orders[0]["name"],
                "id": refund["id"]} if refund else None,
        dispute_order=orders[1])


def amount(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def account_balance(connected, account_id: str) -> Decimal:
    """Debits minus credits of one asset account, from the documents in the sandbox company."""
    account_id = str(account_id)
    uf = account(connected, "Undeposited Funds")["Id"]
    total = Decimal(0)
    for kind, sign in (("SalesReceipt", 1), ("Payment", 1), ("RefundReceipt", -1)):
        for doc in connected.documents(kind):
            target = (doc.get("DepositToAccountRef") or {}).get("value")
            if target is None and kind != "RefundReceipt":
                target = uf
            if str(target) == account_id:
                total += sign * amount(doc["TotalAmt"])
    for deposit in connected.documents("Deposit"):
        if str(deposit["DepositToAccountRef"]["value"]) == account_id:
            total += amount(deposit["TotalAmt"])
        for line in deposit["Line"]:
            if line.get("LinkedTxn"):
                link = line["LinkedTxn"][0]
                doc = next(d for d in connected.documents(link["TxnType"]) if str(d["Id"]) == str(link["TxnId"]))
                target = (doc.get("DepositToAccountRef") or {}).get("value") or uf
                if str(target) == account_id:
                    total -= amount(line["Amount"])
            elif str(line["DepositLineDetail"]["AccountRef"]["value"]) == account_id:
                total -= amount(line["Amount"])
    return total
