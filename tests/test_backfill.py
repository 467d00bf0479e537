"""Backfill: historical Shopify orders (GraphQL sandbox) -> QBO batch writes, resumable, exactly once."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ecomflux_app.models import BackfillRun, SyncRecord
from ecomflux_app.quickbooks.client import QboClient
from ecomflux_app.sync import backfill
from tests.helpers import drain, let_unanswered_batches_end


def qbo_calls(connected) -> int:
    return connected.intuit.counters(connected.realm)["requests"]


def seed(connected, orders, count):
    week = orders.week(count)
    for order in week:
        connected.shopify.add_order(connected.shop.domain, order)
    return week


def assert_one_document_per_order(connected, week):
    docs = connected.documents("SalesReceipt")
    assert len(docs) == len(week)
    assert len({d["DocNumber"] for d in docs}) == len(week)
    by_number = {d["DocNumber"]: d for d in docs}
    for order in week:
        doc = by_number[order["name"].lstrip("#")]
        assert Decimal(str(doc["TotalAmt"])) == Decimal(order["current_total_price"])


def test_backfill_posts_history_in_batches_well_under_a_fifth_of_a_call_per_order(
        redis_conn, connected_shop, orders, capsys):
    week = seed(connected_shop, orders, 120)
    before = qbo_calls(connected_shop)
    run = backfill.start_backfill(connected_shop.shop, date(2026, 11, 1))
    drain(redis_conn)  # the job runs on the bulk queue
    run = BackfillRun.get_by_id(run.id)
    calls = qbo_calls(connected_shop) - before
    per_order = calls / len(week)
    with capsys.disabled():
        print(f"\nbackfill: {len(week)} orders, {calls} QBO calls, {per_order:.3f} calls/order")
    assert (run.status, run.seen, run.posted, run.failed) == ("done", 120, 120, 0)
    assert_one_document_per_order(connected_shop, week)
    assert per_order < 0.2
    assert SyncRecord.select().where(SyncRecord.status == "posted").count() == 120
    # a second run over the same range writes nothing
    before = qbo_calls(connected_shop)
    again = backfill.run_backfill(backfill.start_backfill(connected_shop.shop, date(2026, 11, 1),
                                                          enqueue_job=False).id)
    assert (again.status, again.seen, again.posted) == ("done", 120, 0)
    assert len(connected_shop.documents("SalesReceipt")) == 120


def test_backfill_resumes_after_a_crash_mid_batch_with_zero_duplicates(
        redis_conn, connected_shop, orders, monkeypatch, capsys):
    week = seed(connected_shop, orders, 200)
    run = backfill.start_backfill(connected_shop.shop, date(2026, 11, 1), enqueue_job=False)
    run = backfill.run_backfill(run.id, max_pages=1)  # first page done, cursor saved
    assert (run.status, run.seen, run.posted) == ("running", 90, 90) and run.cursor

    original = QboClient.batch
    state = {"document_batches": 0}

    class WorkerKilled(BaseException):
        """The process dies after QBO created the documents, before the ledger heard back."""

    def crashing_batch(self, items, request_id):
        answers = original(self, items, request_id)
        if any("SalesReceipt" in item for item in items):
            state["document_batches"] += 1
            if state["document_batches"] == 1:
                raise WorkerKilled()
        return answers

    monkeypatch.setattr(QboClient, "batch", crashing_batch)
    with pytest.raises(WorkerKilled):
        backfill.run_backfill(run.id)
    assert SyncRecord.select().where(SyncRecord.status == "posting").count() == 30  # uncertain rows
    assert BackfillRun.get_by_id(run.id).cursor == run.cursor  # page 2 not acknowledged
    assert len(connected_shop.documents("SalesReceipt")) == 120  # QBO has them already

    let_unanswered_batches_end()
    before = qbo_calls(connected_shop)
    done = backfill.run_backfill(run.id)  # the rerun: resumes at page 2
    calls = qbo_calls(connected_shop) - before
    with capsys.disabled():
        print(f"\nbackfill resume: 110 orders re-read, {calls} QBO calls, {calls / 110:.3f} calls/order "
              "(30 uncertain rows looked up in one batch and adopted)")
    assert calls / 110 < 0.2
    assert done.status == "done" and done.seen == 200
    assert SyncRecord.select().where(SyncRecord.status == "posting").count() == 0
    assert_one_document_per_order(connected_shop, week)  # zero duplicates


def test_backfill_skips_cancelled_and_unfulfilled_orders(redis_conn, connected_shop, orders):
    week = orders.week(4)
    week[1]["cancelled_at"] = week[1]["processed_at"]
    week[2]["fulfillment_status"] = None
    for order in week:
        connected_shop.shopify.add_order(connected_shop.shop.domain, order)
    run = backfill.run_backfill(backfill.start_backfill(connected_shop.shop, date(2026, 11, 1),
                                                        enqueue_job=False).id)
    assert (run.seen, run.posted) == (4, 2)
    assert sorted(d["DocNumber"] for d in connected_shop.documents("SalesReceipt")) == \
        sorted(o["name"].lstrip("#") for o in (week[0], week[3]))


def test_cli_backfill_shows_progress_and_posts(app, redis_conn, connected_shop, orders):
    from ecomflux_app.cli import cli

    seed(connected_shop, orders, 5)
    result = app.test_cli_runner().invoke(cli, ["backfill", "--shop", connected_shop.shop.domain,
                                                "--since", "2026-11-01"])
    assert result.exit_code == 0, result.output
    assert "done; 5 orders read, 5 posted, 0 failed" in result.output
    assert len(connected_shop.documents("SalesReceipt")) == 5


def test_invoice_mode_backfill_records_the_payments_of_paid_orders(redis_conn, connected_shop, orders):
    connected_shop.settings(document_type="invoice")
    week = seed(connected_shop, orders, 6)
    week[0]["financial_status"] = "pending"
    connected_shop.shopify.add_order(connected_shop.shop.domain, week[0])
    run = backfill.run_backfill(backfill.start_backfill(connected_shop.shop, date(2026, 11, 1),
                                                        enqueue_job=False).id)
    assert (run.seen, run.posted) == (6, 6)
    invoices = {d["DocNumber"]: d for d in connected_shop.documents("Invoice")}
    assert len(invoices) == 6 and len(connected_shop.documents("Payment")) == 5
    assert Decimal(str(invoices[week[0]["name"].lstrip("#")]["Balance"])) > 0  # the unpaid one stays open
    assert sum(1 for d in invoices.values() if Decimal(str(d["Balance"])) == 0) == 5


def test_backfill_waits_out_a_lost_batch_answer_and_resumes_without_duplicates(redis_conn, connected_shop, orders,
                                                                               monkeypatch):
    from ecomflux_app.quickbooks.errors import QboTransient

    week = seed(connected_shop, orders, 40)
    original = QboClient.batch
    state = {"failed": False}

    def flaky_batch(self, items, request_id):
        answers = original(self, items, request_id)
        if not state["failed"] and any("SalesReceipt" in item for item in items):
            state["failed"] = True
            raise QboTransient("read timeout: the answer was lost")  # QBO did create the documents
        return answers

    monkeypatch.setattr(QboClient, "batch", flaky_batch)
    run = backfill.start_backfill(connected_shop.shop, date(2026, 11, 1), enqueue_job=False)
    run = backfill.run_backfill(run.id)
    assert run.status == "running" and run.posted == 0 and "waiting" in run.error  # queued again, not failed
    assert SyncRecord.select().where(SyncRecord.status == "posting").count() == 30
    with pytest.raises(Exception):  # the CLI path gets the RetryLater itself
        state["failed"] = False
        backfill.run_backfill(run.id, requeue=False)  # the lost batch may still be running: wait
    let_unanswered_batches_end()
    run = backfill.run_backfill(run.id)
    assert (run.status, run.seen, run.posted) == ("done", 40, 40)
    assert_one_document_per_order(connected_shop, week)


def _ledger_view(connected, record: SyncRecord, order: dict) -> dict:
    """What the ledger says about a posted order, as facts comparable across orders."""
    from ecomflux_app.models import ProcessingAttempt
    from ecomflux_app.sync.posting import request_id_for

    doc = next(d for d in connected.documents(record.document_type) if d["Id"] == record.qbo_id)
    attempts = list(ProcessingAttempt.select().where(ProcessingAttempt.sync_record == record.id))
    return {
        "status": record.status, "kind": record.kind, "document_type": record.document_type,
        "attempts": record.attempts, "reason": record.reason,
        "request_id": record.request_id == request_id_for(connected.shop, record, record.document_type),
        "doc_number": record.qbo_doc_number == doc["DocNumber"] == order["name"].lstrip("#"),
        "shopify_total": record.shopify_total == Decimal(order["current_total_price"]),
        "qbo_total": record.qbo_total == Decimal(str(doc["TotalAmt"])) == record.shopify_total,
        "tax_total": record.tax_total == Decimal(order["current_total_tax"]),
        "figures_kept": [name for name in ("shipping_total", "discount_total", "currency", "order_date", "posted_at")
                         if getattr(record, name) is not None],
        "attempt_records": [(a.outcome, (a.request or {}).get("request") is not None,
                             str(record.qbo_id) in str((a.response or {}).get("response"))) for a in attempts],
    }


def test_a_backfilled_order_leaves_the_same_ledger_and_attempt_records_as_a_live_one(
        client, redis_conn, connected_shop, orders):
    from tests.helpers import post_webhook

    live, old = orders.week(2)
    assert post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, live).status_code == 200
    drain(redis_conn)
    connected_shop.shopify.add_order(connected_shop.shop.domain, old)
    run = backfill.run_backfill(backfill.start_backfill(connected_shop.shop, date(2026, 11, 1),
                                                        enqueue_job=False).id)
    assert (run.status, run.seen, run.posted) == ("done", 1, 1)

    rows = {r.order_id: r for r in SyncRecord.select().where(SyncRecord.kind == "order")}
    live_view = _ledger_view(connected_shop, rows[str(live["id"])], live)
    backfilled_view = _ledger_view(connected_shop, rows[str(old["id"])], old)
    assert live_view["attempt_records"] == [("posted", True, True)]
    assert backfilled_view == live_view


def test_backfill_leaves_an_order_another_worker_is_posting_to_that_worker(redis_conn, connected_shop, orders):
    from ecomflux_app.work_results import RetryLater

    week = seed(connected_shop, orders, 5)
    held = week[2]
    lock = redis_conn.lock(f"ecomflux:post:{connected_shop.shop.id}:order:{held['id']}", timeout=60)
    assert lock.acquire(blocking=False)  # a live worker is posting this order right now
    run = backfill.start_backfill(connected_shop.shop, date(2026, 11, 1), enqueue_job=False)
    with pytest.raises(RetryLater):
        backfill.run_backfill(run.id, requeue=False)
    numbers = {d["DocNumber"] for d in connected_shop.documents("SalesReceipt")}
    assert held["name"].lstrip("#") not in numbers and len(numbers) == 4
    assert BackfillRun.get_by_id(run.id).cursor is None  # the page is not acknowledged: it runs again
    lock.release()
    run = backfill.run_backfill(run.id)
    assert (run.status, run.seen, run.posted) == ("done", 5, 5)
    assert_one_document_per_order(connected_shop, week)


def test_backfilled_order_with_a_refund_is_posted_as_sold_with_its_refund_once(connected_shop):
    """History is posted as sold too: the money a refund sent back is its own document, on its day."""
    from datetime import date
    from decimal import Decimal

    from ecomflux_app.sync import backfill
    from tests.after_sale_helpers import make_refund, order_with_refund
    from tests.fixtures_flow import simple_order

    order = dict(simple_order(), fulfillment_status="fulfilled")
    refund = make_refund(order, qty=1)
    connected_shop.shopify.add_order(connected_shop.shop.domain, order_with_refund(order, refund))
    for _ in range(2):
        backfill.run_backfill(backfill.start_backfill(connected_shop.shop, date(2026, 11, 16), enqueue_job=False).id)
    [receipt] = connected_shop.documents("SalesReceipt")
    [refund_doc] = connected_shop.documents("RefundReceipt")
    assert Decimal(str(receipt["TotalAmt"])) == Decimal("26.60") and Decimal(str(refund_doc["TotalAmt"])) == Decimal("10.80")
    assert (receipt["TxnDate"], refund_doc["TxnDate"]) == ("2026-11-20", "2026-11-21")
