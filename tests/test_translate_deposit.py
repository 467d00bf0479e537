"""translate.deposit: a payout and its balance transactions -> a Deposit whose total is the payout's net, always."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ecomflux_app.translate.deposit import LinkableDoc, PayoutAccounts, plan_deposit, render_deposit

CENT = Decimal("0.01")
UF = PayoutAccounts(clearing_id="4", bank_id="5", fee_id="90", clearing_is_undeposited=True)
DEDICATED = PayoutAccounts(clearing_id="77", bank_id="5", fee_id="90", chargeback_id="91", adjustment_id="92")

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)
fees = st.decimals(min_value=Decimal("0"), max_value=Decimal("150"), places=2)


@st.composite
def transactions(draw, order_ids=range(1, 9)):
    kind = draw(st.sampled_from(["CHARGE", "CHARGE", "CHARGE", "REFUND", "DISPUTE", "RESERVED_FUNDS",
                                 "ADJUSTMENT", "ADVANCE", "CHARGE_ADJUSTMENT"]))
    amount = draw(amounts)
    if kind in ("REFUND", "DISPUTE") or (kind in ("RESERVED_FUNDS", "ADJUSTMENT", "CHARGE_ADJUSTMENT")
                                         and draw(st.booleans())):
        amount = -amount
    fee = draw(fees) if kind in ("CHARGE", "DISPUTE", "ADJUSTMENT") else Decimal("0")
    order = draw(st.sampled_from(list(order_ids))) if kind in ("CHARGE", "REFUND", "DISPUTE") else None
    return {"id": draw(st.integers(1, 10**9)), "type": kind, "amount": str(amount), "fee": str(fee),
            "net": str(amount - fee), "order_id": str(order) if order else None,
            "order_name": f"#{order}" if order else None, "currency": "USD"}


def net_of(txns) -> Decimal:
    return sum((Decimal(t["amount"]) - Decimal(t["fee"]) for t in txns), Decimal("0"))


@st.composite
def documents(draw, txns):
    """For some charges and refunds, the order's document: sometimes the same amount, sometimes not."""
    out: dict[str, list[LinkableDoc]] = {}
    for n, t in enumerate(txns):
        if t["order_id"] and t["type"] in ("CHARGE", "REFUND") and draw(st.booleans()):
            same = draw(st.booleans())
            amount = Decimal(t["amount"]) if same else Decimal(t["amount"]) + CENT
            entity = "SalesReceipt" if t["type"] == "CHARGE" else "RefundReceipt"
            out.setdefault(t["order_id"], []).append(LinkableDoc(entity, str(1000 + n), amount,
                                                                 in_undeposited=draw(st.booleans())))
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data(), txns=st.lists(transactions(), min_size=1, max_size=25), dedicated=st.booleans())
def test_deposit_total_equals_payout_net_to_the_cent(data, txns, dedicated):
    accounts = DEDICATED if dedicated else UF
    docs = data.draw(documents(txns))
    returned = {}
    if data.draw(st.booleans()):  # a failed payout's money comes back in this one
        failed = data.draw(st.lists(transactions(), min_size=1, max_size=5))
        back = net_of(failed)
        txns = txns + [{"id": 1, "type": "PAYOUT_FAILURE", "amount": str(back), "fee": "0", "source_id": "66",
                        "currency": "USD"}]
        returned = {"66": failed}
    txns = txns + [{"id": 2, "type": "TRANSFER", "amount": str(-net_of(txns)), "fee": "0", "currency": "USD"}]
    net = net_of([t for t in txns if t["type"] != "TRANSFER"])
    plan = plan_deposit({"id": "9", "net": str(net), "currency": "USD", "issued_at": "2026-11-22T09:00:00Z"},
                        txns, accounts, docs, returned=returned)
    assert plan.total == net  # to the cent, whatever the mix
    payload = render_deposit(plan)
    assert sum((Decimal(str(line["Amount"])) for line in payload["Line"]), Decimal(0)) == net
    all_fees = sum((Decimal(t["fee"]) for t in txns if t["type"] != "TRANSFER"), Decimal(0)) + \
        sum((Decimal(t["fee"]) for t in returned.get("66", [])), Decimal(0))
    assert plan.fees == all_fees
    assert sum((-line.amount for line in plan.lines if line.kind == "fee"), Decimal(0)) == all_fees
    assert all(line.account_id == accounts.fee_id for line in plan.lines if line.kind == "fee")
    links = [line.linked for line in plan.lines if line.linked]
    assert len(links) == len(set(links))  # a document is deposited once
    if dedicated:
        assert not links  # only Undeposited Funds can be linked
    for line in plan.lines:
        if line.linked:
            doc = next(d for ds in docs.values() for d in ds if (d.entity, d.qbo_id) == line.linked)
            assert doc.in_undeposited and doc.amount == line.amount
    assert (plan.flag_reason is None) == (net >= 0)


def test_a_payout_whose_net_is_not_its_transactions_is_flagged_with_both_figures():
    txns = [{"id": 1, "type": "CHARGE", "amount": "50.00", "fee": "1.75", "order_id": "7", "currency": "USD"}]
    plan = plan_deposit({"id": "9", "net": "48.00", "currency": "USD", "issued_at": "2026-11-22T09:00:00Z"},
                        txns, UF)
    assert plan.flag_reason and "48.25" in plan.flag_reason and "48.00" in plan.flag_reason


def test_foreign_currency_and_withdrawals_are_flagged_not_posted():
    txns = [{"id": 1, "type": "ADJUSTMENT", "amount": "-20.00", "fee": "0", "currency": "USD"}]
    withdrawal = plan_deposit({"id": "9", "net": "-20.00", "currency": "USD", "issued_at": "2026-11-22"}, txns, UF)
    assert "withdrawal" in withdrawal.flag_reason
    euro = plan_deposit({"id": "9", "net": "10.00", "currency": "EUR", "issued_at": "2026-11-22T09:00:00Z"},
                        [{"id": 1, "type": "CHARGE", "amount": "10.00", "fee": "0", "currency": "EUR"}], UF,
                        home_currency="USD")
    assert "EUR" in euro.flag_reason and "USD" in euro.flag_reason


def test_lines_a_bookkeeper_reads_charge_linked_refund_chargeback_fee_reserve():
    txns = [
        {"id": 1, "type": "CHARGE", "amount": "100.00", "fee": "3.20", "order_id": "7", "order_name": "#1007"},
        {"id": 2, "type": "CHARGE", "amount": "50.00", "fee": "1.75", "order_id": "8", "order_name": "#1008"},
        {"id": 3, "type": "REFUND", "amount": "-20.00", "fee": "0", "order_id": "7", "order_name": "#1007"},
        {"id": 4, "type": "DISPUTE", "amount": "-50.00", "fee": "15.00", "order_id": "8", "order_name": "#1008"},
        {"id": 5, "type": "RESERVED_FUNDS", "amount": "-10.00", "fee": "0"},
    ]
    docs = {"7": [LinkableDoc("SalesReceipt", "31", Decimal("100.00"))],
            "8": [LinkableDoc("SalesReceipt", "32", Decimal("48.00"))]}  # edited after payment: no link
    plan = plan_deposit({"id": "9", "net": "50.05", "issued_at": "2026-11-22T09:00:00Z"}, txns, UF, docs, shop_timezone="America/New_York")
    described = [(line.kind, line.amount, line.linked or line.account_id, line.description) for line in plan.lines]
    assert described == [
        ("charge", Decimal("100.00"), ("SalesReceipt", "31"), "Shopify Payments charge #1007"),
        ("charge", Decimal("50.00"), "4", "Shopify Payments charge #1008"),
        ("refund", Decimal("-20.00"), "4", "Shopify Payments refund #1007"),
        ("chargeback", Decimal("-50.00"), "90", "Chargeback #1008"),
        ("fee", Decimal("-15.00"), "90", "Chargeback fee #1008"),
        ("reserve", Decimal("-10.00"), "4", "Shopify Payments held in reserve by Shopify"),
        ("fee", Decimal("-4.95"), "90", "Shopify Payments processing fees (2 charges)"),
    ]
    assert plan.total == Decimal("50.05") and plan.flag_reason is None
    assert plan.txn_date.isoformat() == "2026-11-22"
    assert "[ecomflux:payout:9]" in render_deposit(plan)["PrivateNote"]
