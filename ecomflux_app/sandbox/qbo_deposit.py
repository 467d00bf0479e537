"""QBO's rules for Deposits and Accounts in the Intuit stand-in (validation, and which transactions a Deposit empties).

A Deposit moves money into a Bank or Other Current Asset account. Each line either links a
transaction sitting in Undeposited Funds (LinkedTxn: a Sales Receipt, Payment or Refund Receipt,
for its whole amount, deposited once) or names the account the money comes from
(DepositLineDetail.AccountRef). Amounts may be negative; the total is the sum of the lines and
may not be below zero.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from .qbo_fault import Fault

ACCOUNT_TYPES = (
    "Bank", "Other Current Asset", "Fixed Asset", "Other Asset", "Accounts Receivable", "Equity", "Expense",
    "Other Expense", "Cost of Goods Sold", "Accounts Payable", "Credit Card", "Long Term Liability",
    "Other Current Liability", "Income", "Other Income",
)
DEPOSIT_TO_TYPES = ("Bank", "Other Current Asset")
LINKABLE = ("SalesReceipt", "Payment", "RefundReceipt")
CENT = Decimal("0.01")


def _fault(status, code, message, detail, element):
    return Fault(status, code, message, detail, element)


def _business(detail: str, element: str):
    return _fault(400, "6000", "A business validation error has occurred while processing your request",
                  f"Business Validation Error: {detail}", element)


def _money(value, element: str) -> Decimal:
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError):
        raise _fault(400, "2010", "Request has invalid or unsupported property", f"bad amount {value!r}",
                     element) from None


def _ref(obj) -> str | None:
    return str(obj.get("value")) if isinstance(obj, dict) and obj.get("value") not in (None, "") else None


def undeposited_funds(company) -> dict | None:
    return next((a for a in company.entities["Account"].values()
                 if a.get("AccountSubType") == "UndepositedFunds" and a.get("status") != "Deleted"), None)


def sits_in_undeposited_funds(company, kind: str, txn: dict) -> bool:
    """Sales Receipts and Payments default to Undeposited Funds; a Refund Receipt only when it names it."""
    uf = undeposited_funds(company)
    account = _ref(txn.get("DepositToAccountRef"))
    if account is None:
        return kind in ("SalesReceipt", "Payment") and uf is not None
    return uf is not None and account == str(uf["Id"])


def signed_total(kind: str, txn: dict) -> Decimal:
    """What the transaction put into Undeposited Funds (a refund took money out)."""
    total = Decimal(str(txn.get("TotalAmt", 0))).quantize(CENT)
    return -total if kind == "RefundReceipt" else total


def validate_account(company, obj: dict) -> dict:
    kind = obj.get("AccountType")
    if kind not in ACCOUNT_TYPES:
        raise _fault(400, "2010", "Request has invalid or unsupported property",
                     f"AccountType {kind!r} is not a valid account type", "AccountType")
    obj.setdefault("Classification", "Asset" if kind in DEPOSIT_TO_TYPES + ("Fixed Asset", "Other Asset",
                                                                             "Accounts Receivable") else None)
    obj.setdefault("CurrentBalance", 0)
    return obj


def validate_deposit(company, obj: dict) -> dict:
    """Check a Deposit as QBO does; sets TotalAmt. Changes nothing else (see settle)."""
    target_id = _ref(obj.get("DepositToAccountRef"))
    if not target_id:
        raise _fault(400, "2020", "Required param missing, need to supply the required value for the API",
                     "Required parameter DepositToAccountRef is missing", "DepositToAccountRef")
    target = company.get("Account", target_id, "DepositToAccountRef")
    if target.get("AccountType") not in DEPOSIT_TO_TYPES or target.get("AccountSubType") == "UndepositedFunds":
        raise _business(f"a deposit must go into a Bank or Other Current Asset account, not "
                        f"{target.get('Name')} ({target.get('AccountType')})", "DepositToAccountRef")
    currency = _ref(obj.get("CurrencyRef"))
    if currency and currency != company.home_currency and not company.multicurrency:
        raise _business("Multicurrency is not enabled for this company", "CurrencyRef")
    lines = obj.get("Line") or []
    if not lines:
        raise _fault(400, "2020", "Required param missing", "Line is required", "Line")
    total = Decimal(0)
    linked: set[tuple[str, str]] = set()
    for n, line in enumerate(lines):
        amount = _money(line.get("Amount"), f"Line[{n}].Amount") if line.get("Amount") is not None else None
        if amount is None:
            raise _fault(400, "2020", "Required param missing", "Line.Amount is required", f"Line[{n}].Amount")
        links = line.get("LinkedTxn") or []
        if links:
            if len(links) != 1:
                raise _business("a deposit line links exactly one transaction", f"Line[{n}].LinkedTxn")
            link = links[0]
            kind = link.get("TxnType")
            if kind not in LINKABLE:
                raise _fault(400, "2010", "Request has invalid or unsupported property",
                             f"LinkedTxn.TxnType {kind!r} cannot be deposited", f"Line[{n}].LinkedTxn.TxnType")
            txn = company.get(kind, link.get("TxnId"), f"Line[{n}].LinkedTxn.TxnId", active=False)
            key = (kind, str(txn["Id"]))
            if key in linked or deposited_in(txn, obj.get("Id")):
                raise _business(f"{kind} {txn['Id']} has already been deposited", f"Line[{n}].LinkedTxn")
            if not sits_in_undeposited_funds(company, kind, txn):
                raise _business(f"{kind} {txn['Id']} is not in Undeposited Funds, so it cannot be linked to a "
                                f"deposit", f"Line[{n}].LinkedTxn")
            if amount != signed_total(kind, txn):
                raise _business(f"the amount {amount} of a linked {kind} must be its full amount "
                                f"{signed_total(kind, txn)}", f"Line[{n}].Amount")
            linked.add(key)
        else:
            if line.get("DetailType") != "DepositLineDetail":
                raise _fault(400, "2010", "Request has invalid or unsupported property",
                             f"DetailType {line.get('DetailType')!r} (a deposit line is DepositLineDetail or links "
                             f"a transaction)", f"Line[{n}].DetailType")
            detail = line.get("DepositLineDetail") or {}
            account_id = _ref(detail.get("AccountRef"))
            if not account_id:
                raise _fault(400, "2020", "Required param missing", "DepositLineDetail.AccountRef is required",
                             f"Line[{n}].DepositLineDetail.AccountRef")
            company.get("Account", account_id, f"Line[{n}].DepositLineDetail.AccountRef")
            if account_id == target_id:
                raise _business("a deposit line cannot come from the account deposited into",
                                f"Line[{n}].DepositLineDetail.AccountRef")
            if _ref(detail.get("Entity")):
                entity = detail["Entity"]
                company.get(entity.get("type") or "Customer", _ref(entity), f"Line[{n}].DepositLineDetail.Entity")
        line["Amount"] = float(amount)
        total += amount
    total = total.quantize(CENT)
    if total < 0:
        raise _business("the deposit total cannot be negative", "TotalAmt")
    obj["TotalAmt"] = float(total)
    obj["HomeTotalAmt"] = float(total * Decimal(str(obj.get("ExchangeRate") or 1)))
    obj.setdefault("TxnDate", date.today().isoformat())
    obj.setdefault("CurrencyRef", {"value": company.home_currency})
    return obj


def deposited_in(txn: dict, other_than: str | None = None) -> str | None:
    """The Deposit that already holds this transaction, if any."""
    for link in txn.get("LinkedTxn") or []:
        if link.get("TxnType") == "Deposit" and str(link.get("TxnId")) != str(other_than):
            return str(link.get("TxnId"))
    return None


def settle(company, deposit: dict, undo: bool = False) -> None:
    """Mark (or, undoing, release) the transactions a Deposit empties out of Undeposited Funds."""
    back = {"TxnId": str(deposit["Id"]), "TxnType": "Deposit"}
    for line in deposit.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            txn = company.entities.get(link.get("TxnType"), {}).get(str(link.get("TxnId")))
            if txn is None:
                continue
            links = txn.setdefault("LinkedTxn", [])
            if undo and back in links:
                links.remove(back)
            elif not undo and back not in links:
                links.append(back)
