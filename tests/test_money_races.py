"""Money events across concurrent workers and a slow Shopify: every sale, payment and refund lands in
QBO exactly once, on its own day, to the cent, whatever the interleaving (events, never sleeps)."""

from __future__ import annotations

import copy
import threading
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test

from ecomflux_app.models import SyncRecord, WebhookDelivery
from ecomflux_app.sync import dispatch
from tests.after_sale_helpers import make_refund, order_with_refund
from tests.conftest import reset_state
from tests.fixtures_flow import connect_shop_to_company, simple_order
from tests.helpers import post_webhook

PAID_AT = "2026-11-20T20:00:00-05:00"  # 01:00 UTC on the 21st: still the 20th in the shop's New York


def amount(value) -> Decimal:
    return Decimal(str(value))


def delivery_id(webhook_id: str) -> int:
    return WebhookDelivery.get(WebhookDelivery.webhook_id == webhook_id).id


class Worker:
    """One worker processing one delivery on its own thread (its own database connection)."""

    def __init__(self, row_id: int):
        self.row_id = row_id
        self.status: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.status = dispatch.process_delivery(self.row_id)
        except BaseException as exc:  # noqa: BLE001 - surfaced by join()
            self.error = exc

    def parked_or_done(self, hold) -> bool:
        """Wait until the worker is inside the held Shopify read, or finished without one."""
        while self.thread.is_alive():
            if hold.arrived.wait(0.02):
                return True
        return False

    def join(self) -> str | None:
        self.thread.join(90)
        assert not self.thread.is_alive(), f"worker on delivery {self.row_id} did not finish"
        if self.error is not None:
            raise self.error
        return self.status


def as_refunded(order: dict, refunds: list[dict], cancelled: bool = False) -> dict:
    """The order as Shopify shows it after these refunds (and its cancellation)."""
    out = copy.deepcopy(order)
    for refund in refunds:
        step = order_with_refund(out, refund)
        step["refunds"] = out.get("refunds", []) + step["refunds"]
        for before, after in zip(out["line_items"], step["line_items"]):  # cumulative, not per refund
            taken = sum(r["quantity"] for r in refund["refund_line_items"] if r["line_item_id"] == before["id"])
            after["current_quantity"] = before["current_quantity"] - taken
        out = step
    if cancelled:
        out["cancelled_at"] = "2026-11-22T09:00:00-05:00"
        out["cancel_reason"] = "customer"
    return out


def test_refund_reading_a_slow_shopify_while_the_late_order_posts_in_full_is_still_posted(
        client, connected_shop):
    """Reproduced race: the refund's worker reads the order from a slow Shopify (already net of the
    refund) while another worker posts the late orders/fulfilled in full. Before, the refund was then
    marked "already reflected" and its money never reached the books."""
    shop = connected_shop.shop.domain
    order = simple_order()
    refund = make_refund(order, qty=1)  # 10.80 back to the buyer
    connected_shop.shopify.add_order(shop, order_with_refund(order, refund))
    held = connected_shop.shopify.hold(shop, "order")
    assert post_webhook(client, "refunds/create", shop, refund, webhook_id="refund").status_code == 200
    refund_worker = Worker(delivery_id("refund"))
    assert refund_worker.parked_or_done(held), "the refund's worker should be reading the order from Shopify"
    assert post_webhook(client, "orders/fulfilled", shop, order, webhook_id="late-order").status_code == 200
    assert dispatch.process_delivery(delivery_id("late-order")) == "posted"  # the sale, in full
    held.release()
    assert refund_worker.join() == "posted"
    [receipt] = connected_shop.documents("SalesReceipt")
    [refund_doc] = connected_shop.documents("RefundReceipt")
    assert amount(receipt["TotalAmt"]) == Decimal("26.60") and amount(refund_doc["TotalAmt"]) == Decimal("10.80")
    assert refund_doc["TxnDate"] == "2026-11-21"
    assert SyncRecord.get(SyncRecord.source_key == "refund:7001").status == "posted"


def test_an_edit_read_from_a_slow_shopify_while_the_order_posts_in_full_is_credited_not_lost(
        client, connected_shop):
    """The same race for lines taken off an unpaid invoice (no money moved): the invoice was posted
    from the body without the edit, so the edit must become its credit memo, not be marked as netted
    because the slow worker's body happened to carry it."""
    shop = connected_shop.shop.domain
    connected_shop.settings(document_type="invoice")
    order = dict(simple_order(), financial_status="pending")
    edit = make_refund(order, qty=1)
    edit["transactions"] = []
    connected_shop.shopify.add_order(shop, dict(order_with_refund(order, edit), current_total_price="15.80",
                                                financial_status="pending"))
    held = connected_shop.shopify.hold(shop, "order")
    assert post_webhook(client, "refunds/create", shop, edit, webhook_id="edit").status_code == 200
    edit_worker = Worker(delivery_id("edit"))
    assert edit_worker.parked_or_done(held)
    assert post_webhook(client, "orders/fulfilled", shop, order, webhook_id="late-order").status_code == 200
    assert dispatch.process_delivery(delivery_id("late-order")) == "posted"
    held.release()
    assert edit_worker.join() == "posted"
    [invoice] = connected_shop.documents("Invoice")
    [memo] = connected_shop.documents("CreditMemo")
    assert amount(invoice["TotalAmt"]) == Decimal("26.60") and amount(memo["TotalAmt"]) == Decimal("10.80")
    assert amount(invoice["Balance"]) == Decimal("15.80")  # what Shopify still expects to be paid


class MoneyInterleavings(RuleBasedStateMachine):
    """The order, paid, refund and cancel deliveries of one order, started on concurrent workers in any
    order, any of them stalled inside a Shopify read: the books end with each money event exactly once."""

    ctx: dict = {}

    def __init__(self):
        super().__init__()
        self.workers: list[tuple[Worker, object]] = []
        self.delivered: list[str] = []

    @initialize(mode=st.sampled_from(["receipt", "invoice"]), refunds=st.integers(1, 2), cancel=st.booleans())
    def setup(self, mode, refunds, cancel):
        ctx = self.ctx
        reset_state(ctx["app"], [ctx["intuit"], ctx["shopify"]])
        self.shop = ctx["install_shop"]("race-shop.myshopify.com", timezone="America/New_York")
        self.realm = ctx["intuit"].create_company(name="Race Co")
        connect_shop_to_company(self.shop, ctx["intuit"], self.realm)
        if mode == "invoice":
            from ecomflux_app.models import ShopSettings

            ShopSettings.create(shop=self.shop, values={"document_type": "invoice"})
        self.mode = mode
        order = simple_order()
        self.refunds = [make_refund(order, qty=1)]
        if refunds == 2:
            second = make_refund(order, refund_id=7002, qty=1, shipping="5.00")
            second.update(created_at="2026-11-22T10:00:00-05:00", processed_at="2026-11-22T10:00:00-05:00")
            self.refunds.append(second)
        final = as_refunded(order, self.refunds, cancelled=cancel)
        final["transactions"] = [{"id": 501, "kind": "sale", "status": "success", "amount": "26.60",
                                  "gateway": "shopify_payments", "processed_at": PAID_AT}] + \
            [dict(tx, processed_at=r["processed_at"]) for r in self.refunds for tx in r["transactions"]]
        ctx["shopify"].add_order(self.shop.domain, final)
        self.payloads = {"orders/fulfilled": ("orders/fulfilled", order),
                         "orders/paid": ("orders/paid", dict(order, financial_status="paid"))}
        for refund in self.refunds:
            self.payloads[f"refund-{refund['id']}"] = ("refunds/create", refund)
        if cancel:
            self.payloads["orders/cancelled"] = ("orders/cancelled", final)

    # -- rules -------------------------------------------------------------------------------
    @rule(data=st.data())
    def deliver(self, data):
        waiting = sorted(set(self.payloads) - set(self.delivered))
        if not waiting:
            return
        name = data.draw(st.sampled_from(waiting))
        topic, payload = self.payloads[name]
        resp = post_webhook(self.ctx["client"], topic, self.shop.domain, payload, webhook_id=name)
        assert resp.status_code == 200
        self.delivered.append(name)

    @precondition(lambda self: len(self.workers) < 2)
    @rule(data=st.data(), slow=st.booleans())
    def start_worker(self, data, slow):
        rows = [r.id for r in WebhookDelivery.select().where(WebhookDelivery.status.in_(dispatch.CLAIMABLE))]
        if not rows:
            return
        row_id = data.draw(st.sampled_from(rows))
        held = self.ctx["shopify"].hold(self.shop.domain, "order") if slow else None
        worker = Worker(row_id)
        if held is not None and worker.parked_or_done(held):
            self.workers.append((worker, held))  # stalled inside Shopify: others run meanwhile
            return
        if held is not None:
            with self.ctx["shopify"].state.lock:
                held.count = 0  # this worker never read the order: the hold catches no one else
            held.release()
        worker.join()

    @precondition(lambda self: self.workers)
    @rule(data=st.data())
    def shopify_answers(self, data):
        worker, held = self.workers.pop(data.draw(st.integers(0, len(self.workers) - 1)))
        held.release()
        worker.join()

    # -- what must always hold --------------------------------------------------------------
    def _count(self, entity: str, marker: str) -> int:
        return sum(1 for d in self.ctx["intuit"].entities(self.realm, entity) if marker in (d.get("PrivateNote") or ""))

    @invariant()
    def never_twice(self):
        if not hasattr(self, "realm"):
            return
        assert self._count("SalesReceipt", "ecomflux:order:9001") + self._count("Invoice", "ecomflux:order:9001") <= 1
        for refund in self.refunds:
            marker = f"ecomflux:refund:{refund['id']}"
            assert self._count("RefundReceipt", marker) + self._count("CreditMemo", marker) <= 1
        assert self._count("Payment", "[ecomflux:payment:9001:501]") <= 1

    def teardown(self):
        if not hasattr(self, "realm"):
            return
        for worker, held in self.workers:
            held.release()
            worker.join()
        for name in sorted(set(self.payloads) - set(self.delivered)):  # Shopify delivers everything in the end
            topic, payload = self.payloads[name]
            assert post_webhook(self.ctx["client"], topic, self.shop.domain, payload, webhook_id=name).status_code == 200
        for _ in range(4):  # retries come back (the sweeper's job), until nothing is left to do
            for row in WebhookDelivery.select().where(WebhookDelivery.status.in_(dispatch.CLAIMABLE)):
                dispatch.process_delivery(row.id)
        rows = {d.webhook_id: (d.status, d.error) for d in WebhookDelivery.select()}
        assert all(status in ("posted", "processed", "skipped_duplicate", "ignored") for status, _e in rows.values()), rows
        intuit = self.ctx["intuit"]
        sale_entity = "Invoice" if self.mode == "invoice" else "SalesReceipt"
        [sale] = [d for d in intuit.entities(self.realm, sale_entity) if "ecomflux:order:9001" in d["PrivateNote"]]
        assert (amount(sale["TotalAmt"]), sale["TxnDate"]) == (Decimal("26.60"), "2026-11-20")  # as sold
        for refund in self.refunds:
            [doc] = [d for d in intuit.entities(self.realm, "RefundReceipt")
                     if f"ecomflux:refund:{refund['id']}" in d["PrivateNote"]]
            assert amount(doc["TotalAmt"]) == amount(refund["transactions"][0]["amount"])
            assert doc["TxnDate"] == refund["processed_at"][:10]  # the day the money went back
        assert intuit.entities(self.realm, "CreditMemo") == []
        payments = intuit.entities(self.realm, "Payment")
        if self.mode == "invoice":
            [payment] = payments
            assert (amount(payment["TotalAmt"]), payment["TxnDate"]) == (Decimal("26.60"), "2026-11-20")
            assert amount(sale["Balance"]) == 0
        else:
            assert payments == []


def test_any_interleaving_of_order_paid_refund_and_cancel_across_workers_books_each_money_event_once(
        app, client, redis_conn, intuit_sandbox, shopify_sandbox, install_shop, db):
    MoneyInterleavings.ctx = {"app": app, "client": client, "redis": redis_conn, "intuit": intuit_sandbox,
                              "shopify": shopify_sandbox, "install_shop": install_shop}
    run_state_machine_as_test(MoneyInterleavings, settings=settings(
        max_examples=12, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
