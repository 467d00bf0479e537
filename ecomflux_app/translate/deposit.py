"""A Shopify Payments payout as one QBO Deposit (pure): the payout's money out of clearing, fees to their account.

Inputs are the payout, its balance transactions and the QBO documents its orders already have. Every
balance transaction becomes visible lines whose sum is its net (amount - fee), so the Deposit's total
is the payout's net to the cent: the bank statement line the bookkeeper matches.
- CHARGE: the order's Sales Receipt or Payment is linked (LinkedTxn) when it sits in Undeposited
  Funds for exactly the charge's amount; otherwise an account line against the clearing account.
- REFUND: the refund went out of clearing (Refund Receipt), so a negative clearing line (or its
  Refund Receipt linked, when it sits in Undeposited Funds for that amount).
- DISPUTE: the chargeback as a negative line to the chargeback account; its fee as a fee line.
- RESERVED_FUNDS(_WITHDRAWAL): to the reserve account (the clearing account unless set): Shopify holds
  the money, it is still the shop's.
- ADJUSTMENT and anything else: to the adjustment account, with Shopify's reason.
- PAYOUT_FAILURE / PAYOUT_CANCELLATION: the failed payout's own transactions, when given (their nets
  add up to the returned amount), so its sales leave clearing and its fees are booked; else one
  clearing line.
- Fees: one line per kind to the fee account (charges' fees together, each chargeback fee apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Mapping, Sequence

from .document_kinds import entities
from .money import ZERO, MoneyError, format_money, money, sum_money
from .reading import _zone

MARKER_PREFIX = "ecomflux:payout:"
SKIPPED_TYPES = ("TRANSFER", "TRANSFER_FAILURE", "TRANSFER_CANCEL")
RETURNED_TYPES = ("PAYOUT_FAILURE", "PAYOUT_CANCELLATION")
RESERVE_TYPES = ("RESERVED_FUNDS", "RESERVED_FUNDS_WITHDRAWAL", "RESERVED_FUNDS_REVERSAL")
# The order documents whose money a charge (sign +1) or a refund (sign -1) may have left in Undeposited Funds.
CHARGE_DOCUMENTS = entities(cleared_by_deposit=True, sign=1)
REFUND_DOCUMENTS = entities(cleared_by_deposit=True, sign=-1)
DESCRIPTION_MAX = 4000


class DepositError(ValueError):
    """A payout that cannot be turned into a Deposit (bad figures); the field names the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class PayoutAccounts:
    """QBO account ids a payout's lines go to."""

    clearing_id: str
    bank_id: str
    fee_id: str
    clearing_is_undeposited: bool = False  # clearing is Undeposited Funds: receipts can be linked
    chargeback_id: str | None = None  # default: fee account
    adjustment_id: str | None = None  # default: fee account
    reserve_id: str | None = None  # default: clearing account


@dataclass(frozen=True)
class LinkableDoc:
    """An order's QBO document that may sit in Undeposited Funds: SalesReceipt, Payment or RefundReceipt."""

    entity: str
    qbo_id: str
    amount: Decimal  # what it put into Undeposited Funds (a Refund Receipt: negative)
    in_undeposited: bool = True


@dataclass
class DepositLine:
    amount: Decimal
    kind: str  # charge | refund | fee | chargeback | reserve | adjustment | returned | other
    description: str
    account_id: str | None = None
    linked: tuple[str, str] | None = None  # (TxnType, TxnId)
    order_id: str | None = None
    source_id: str | None = None


@dataclass
class DepositPlan:
    payout_id: str
    txn_date: date
    currency: str
    net: Decimal
    bank_id: str
    lines: list[DepositLine] = field(default_factory=list)
    fees: Decimal = ZERO
    orders: list[str] = field(default_factory=list)
    flag_reason: str | None = None  # set: do not post

    @property
    def total(self) -> Decimal:
        return sum_money(line.amount for line in self.lines)

    @property
    def marker(self) -> str:
        return f"{MARKER_PREFIX}{self.payout_id}"

    @property
    def balanced(self) -> bool:
        return self.total == self.net

    def summary(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for line in self.lines:
            out[line.kind] = out.get(line.kind, ZERO) + line.amount
        return out


def payout_marker(payout_id: str) -> str:
    return f"{MARKER_PREFIX}{payout_id}"


def payout_date(issued_at: Any, shop_timezone: str) -> date:
    """The payout's date in the shop's timezone (what the admin and the statement show)."""
    if not isinstance(issued_at, str) or not issued_at.strip():
        raise DepositError("issuedAt", "missing payout date")
    try:
        moment = datetime.fromisoformat(issued_at.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DepositError("issuedAt", f"not an ISO timestamp: {issued_at!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(_zone(shop_timezone)).date()


def _m(txn: Mapping[str, Any], key: str) -> Decimal:
    try:
        return money(txn.get(key) if txn.get(key) not in (None, "") else "0", f"balance transaction {key}")
    except MoneyError as exc:
        raise DepositError(f"transaction {txn.get('id')}.{key}", str(exc)) from None


def transaction_net(txn: Mapping[str, Any]) -> Decimal:
    """amount - fee (Shopify's net; checked against its `net` when present)."""
    net = _m(txn, "amount") - _m(txn, "fee")
    if txn.get("net") not in (None, "") and _m(txn, "net") != net:
        raise DepositError(f"transaction {txn.get('id')}.net",
                           f"net {_m(txn, 'net')} is not amount {_m(txn, 'amount')} - fee {_m(txn, 'fee')}")
    return net


def payout_fees(transactions: Sequence[Mapping[str, Any]]) -> Decimal:
    """Total fees taken in a payout's transactions (positive)."""
    return sum_money(_m(t, "fee") for t in transactions if t.get("type") not in SKIPPED_TYPES)


def _label(txn: Mapping[str, Any]) -> str:
    return str(txn.get("order_name") or (f"order {txn['order_id']}" if txn.get("order_id") else "")).strip()


class _DepositLines:
    """The Deposit's lines as the payout's balance transactions are booked, and the fees they carry."""

    def __init__(self, plan: DepositPlan, accounts: PayoutAccounts, documents: Mapping[str, Sequence[LinkableDoc]],
                 returned: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self.plan = plan
        self.accounts = accounts
        self.documents = documents
        self.returned = returned
        self.used: set[tuple[str, str]] = set()  # documents linked already: each is deposited once
        self.charge_fees, self.charge_count, self.other_fees = ZERO, 0, ZERO

    def account_line(self, amount: Decimal, kind: str, description: str, account_id: str, txn=None) -> None:
        """A line against an account, naming the balance transaction and its order."""
        self.plan.lines.append(DepositLine(amount=amount, kind=kind, description=description[:DESCRIPTION_MAX],
                                           account_id=account_id, order_id=str(txn.get("order_id")) if txn and
                                           txn.get("order_id") else None,
                                           source_id=str(txn.get("id")) if txn and txn.get("id") else None))

    def link_or_clear(self, amount: Decimal, kind: str, description: str, txn, entities: tuple[str, ...]) -> None:
        """The order's document linked when it sits in Undeposited Funds for exactly this amount, else a
        clearing line."""
        accounts, plan = self.accounts, self.plan
        order_id = str(txn.get("order_id") or "")
        if accounts.clearing_is_undeposited and order_id:
            for doc in self.documents.get(order_id, ()):
                key = (doc.entity, str(doc.qbo_id))
                if doc.entity in entities and doc.in_undeposited and doc.amount == amount and key not in self.used:
                    self.used.add(key)
                    plan.lines.append(DepositLine(amount=amount, kind=kind, description=description,
                                                  linked=key, order_id=order_id, source_id=str(txn.get("id"))))
                    return
        self.account_line(amount, kind, description, accounts.clearing_id, txn)

    def add(self, txn: Mapping[str, Any], via: str | None = None) -> None:
        """Book one balance transaction: a charge (its fee to the processing fees), a failed payout's own
        transactions when they add up, or a line for what else it is (see _other_line)."""
        plan, currency, returned = self.plan, self.plan.currency, self.returned
        kind = str(txn.get("type") or "").upper()
        if kind in SKIPPED_TYPES:
            return
        txn_currency = str(txn.get("currency") or currency).upper()
        if txn_currency != currency:
            raise DepositError(f"transaction {txn.get('id')}.currency",
                               f"{txn_currency} in a {currency} payout")
        amount, fee = _m(txn, "amount"), _m(txn, "fee")
        transaction_net(txn)
        label = _label(txn)
        suffix = f" (from failed payout {via})" if via else ""
        if txn.get("order_id") and str(txn["order_id"]) not in plan.orders:
            plan.orders.append(str(txn["order_id"]))
        if kind == "CHARGE":
            self.link_or_clear(amount, "charge", f"Shopify Payments charge {label}{suffix}".strip(), txn,
                               CHARGE_DOCUMENTS)
            self.charge_fees += fee
            self.charge_count += 1
            return
        if kind in RETURNED_TYPES and str(txn.get("source_id") or "") in returned:
            inner = [t for t in returned[str(txn["source_id"])] if t.get("type") not in SKIPPED_TYPES]
            if sum_money(transaction_net(t) for t in inner) == amount - fee and not via:
                for t in inner:
                    self.add(t, via=str(txn["source_id"]))
                return
        self._other_line(txn, kind, amount, label, suffix)
        if fee:
            if kind == "DISPUTE":
                self.account_line(-fee, "fee", f"Chargeback fee {label}{suffix}".strip(), self.accounts.fee_id, txn)
            else:
                self.other_fees += fee

    def _other_line(self, txn: Mapping[str, Any], kind: str, amount: Decimal, label: str, suffix: str) -> None:
        """A refund out of clearing (or its Refund Receipt linked), a chargeback, a reserve movement, a
        returned payout or an adjustment, each to its account."""
        accounts = self.accounts
        if kind == "REFUND":
            self.link_or_clear(amount, "refund", f"Shopify Payments refund {label}{suffix}".strip(), txn,
                               REFUND_DOCUMENTS)
        elif kind == "DISPUTE":
            self.account_line(amount, "chargeback", f"Chargeback {label}{suffix}".strip(),
                              accounts.chargeback_id or accounts.fee_id, txn)
        elif kind in RESERVE_TYPES:
            what = "held in reserve by Shopify" if amount < 0 else "reserve released by Shopify"
            self.account_line(amount, "reserve", f"Shopify Payments {what}{suffix}", accounts.reserve_id
                              or accounts.clearing_id, txn)
        elif kind in RETURNED_TYPES:
            self.account_line(amount, "returned", f"Returned from payout {txn.get('source_id') or ''} "
                                                  f"({kind.lower().replace('_', ' ')})".strip(),
                              accounts.clearing_id, txn)
        else:
            reason = txn.get("adjustment_reason")
            self.account_line(amount, "adjustment", f"Shopify Payments {kind.lower().replace('_', ' ')}"
                              f"{': ' + str(reason) if reason else ''} {label}{suffix}".strip(),
                              accounts.adjustment_id or accounts.fee_id, txn)

    def fee_lines(self) -> None:
        """The fees to the fee account: processing fees on charges as one line, the others as another."""
        plan, accounts, charge_fees, charge_count = self.plan, self.accounts, self.charge_fees, self.charge_count
        if charge_fees:
            plan.lines.append(DepositLine(amount=-charge_fees, kind="fee", account_id=accounts.fee_id,
                                          description=f"Shopify Payments processing fees ({charge_count} "
                                                      f"charge{'s' if charge_count != 1 else ''})"))
        if self.other_fees:
            plan.lines.append(DepositLine(amount=-self.other_fees, kind="fee", account_id=accounts.fee_id,
                                          description="Shopify Payments fees on refunds and adjustments"))


def plan_deposit(payout: Mapping[str, Any], transactions: Sequence[Mapping[str, Any]], accounts: PayoutAccounts,
                 documents: Mapping[str, Sequence[LinkableDoc]] | None = None, *, shop_timezone: str = "UTC",
                 home_currency: str = "USD", returned: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
                 ) -> DepositPlan:
    """The Deposit for one payout; plan.flag_reason says why it must not be posted (never a guess)."""
    payout_id = str(payout.get("id") or "")
    if not payout_id:
        raise DepositError("id", "payout has no id")
    try:
        net = money(payout.get("net"), "payout net")
    except MoneyError as exc:
        raise DepositError("net", str(exc)) from None
    currency = str(payout.get("currency") or home_currency).upper()
    plan = DepositPlan(payout_id=payout_id, txn_date=payout_date(payout.get("issued_at"), shop_timezone),
                       currency=currency, net=net, bank_id=accounts.bank_id)
    book = _DepositLines(plan, accounts, documents or {}, returned or {})
    for txn in transactions:
        book.add(txn)
    book.fee_lines()
    plan.fees = sum_money(-line.amount for line in plan.lines if line.kind == "fee")
    plan.flag_reason = _flag(plan, home_currency)
    return plan


def _flag(plan: DepositPlan, home_currency: str) -> str | None:
    if plan.currency != home_currency.upper():
        return (f"payout in {plan.currency}, but the QuickBooks company's home currency is {home_currency}: "
                f"a foreign-currency deposit needs a bank account in {plan.currency} and its exchange rate; "
                f"enter it by hand")
    if not plan.lines:
        return "payout has no balance transactions to deposit"
    if not plan.balanced:
        return (f"deposit lines add up to {format_money(plan.total)}, the payout's net is {format_money(plan.net)}: "
                f"not posted")
    if plan.net < 0:
        return (f"payout is a withdrawal of {format_money(-plan.net)} from the bank (a QuickBooks deposit cannot "
                f"be negative): record it as a transfer by hand")
    return None


def render_deposit(plan: DepositPlan, shop_label: str = "") -> dict[str, Any]:
    """The QBO Deposit payload."""
    lines = []
    for line in plan.lines:
        if line.linked:
            lines.append({"Amount": line.amount,
                          "LinkedTxn": [{"TxnType": line.linked[0], "TxnId": line.linked[1], "TxnLineId": "0"}]})
        else:
            lines.append({"Amount": line.amount, "DetailType": "DepositLineDetail",
                          "Description": line.description,
                          "DepositLineDetail": {"AccountRef": {"value": line.account_id}}})
    where = f" for {shop_label}" if shop_label else ""
    return {
        "DepositToAccountRef": {"value": plan.bank_id},
        "TxnDate": plan.txn_date.isoformat(),
        "CurrencyRef": {"value": plan.currency},
        "PrivateNote": f"Shopify Payments payout {plan.payout_id}{where}: net {format_money(plan.net)} "
                       f"{plan.currency}, fees {format_money(plan.fees)} [{plan.marker}]",
        "Line": lines,
    }
