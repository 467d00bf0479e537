"""Reconciliation: Shopify vs ledger vs QBO; a sample week lists exactly the planted differences; the daily
run heals dropped webhooks through the exactly-once path."""

from __future__ import annotations

import copy
import csv
import io
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from ecomflux_app.models import ReconciliationRun, SyncRecord
from ecomflux_app.sync import backfill, reconcile
from tests.after_sale_helpers import make_refund, order_with_refund
from tests.helpers import drain, post_webhook

WEEK_START, WEEK_END = date(2026, 11, 16), date(2026, 11, 22)


def plant_week(connected, orders, count=12):
    week = orders.week(count)
    for order in week:
        connected.shopify.add_order(connected.shop.domain, order)
    backfill.run_backfill(backfill.start_backfill(connected.shop, WEEK_START, enqueue_job=False).id)
    return week


def doc_for(connected, order):
    return next(d for d in connected.documents("SalesReceipt") if d["DocNumber"] == order["name"].lstrip("#"))


def test_sample_week_report_lists_exactly_the_planted_differences(connected_shop, orders):
    week = plant_week(connected_shop, orders)
    deleted, edited, duplicated = week[2], week[5], week[9]
    company = connected_shop.intuit.company(connected_shop.realm)
    with connected_shop.intuit.state.lock:
        receipts = company.entities["SalesReceipt"]
        receipts[doc_for(connected_shop, deleted)["Id"]]["status"] = "Deleted"  # the bookkeeper deleted it
        target = receipts[doc_for(connected_shop, edited)["Id"]]  # ... edited a line amount
        first = next(line for line in target["Line"] if line.get("DetailType") == "SalesItemLineDetail")
        first["Amount"] = float(Decimal(str(first["Amount"])) + Decimal("10.00"))
        target["TotalAmt"] = float(Decimal(str(target["TotalAmt"])) + Decimal("10.00"))
    copy_of = copy.deepcopy(doc_for(connected_shop, duplicated))  # ... and entered it twice
    copy_of.pop("Id")
    connected_shop.intuit.put_entity(connected_shop.realm, "SalesReceipt", copy_of)

    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    assert run.status == "done"
    report = run.report
    assert report["shopify_orders"] == 12 and report["compared"] == 12
    found = sorted((d["kind"], d["order_id"], d.get("field")) for d in report["differences"])
    assert found == sorted([
        ("deleted_in_qbo", str(deleted["id"]), None),
        ("mismatch", str(edited["id"]), "total"),
        ("duplicated_in_qbo", str(duplicated["id"]), None),
    ])
    assert report["counts"] == {"missing_in_qbo": 0, "deleted_in_qbo": 1, "duplicated_in_qbo": 1, "mismatch": 1,
                                "missing_refund": 0}
    mismatch = next(d for d in report["differences"] if d["kind"] == "mismatch")
    assert Decimal(mismatch["qbo"]) - Decimal(mismatch["shopify"]) == Decimal("10.00")
    rows = list(csv.DictReader(io.StringIO(reconcile.report_csv(run))))
    assert sorted(r["kind"] for r in rows) == ["deleted_in_qbo", "duplicated_in_qbo", "mismatch"]
    assert ReconciliationRun.select().count() == 1
    # reconciliation reports; it never touches QBO on its own (no heal asked)
    assert len(connected_shop.documents("SalesReceipt")) == 12


def test_missing_orders_are_reported_and_posted_with_one_click(connected_shop, orders):
    week = orders.week(6)
    for order in week:
        connected_shop.shopify.add_order(connected_shop.shop.domain, order)
    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    assert run.report["counts"]["missing_in_qbo"] == 6
    run = reconcile.post_missing(run.id)
    assert run.healed == 6
    assert len(connected_shop.documents("SalesReceipt")) == 6
    run = reconcile.post_missing(run.id)  # a second click: exactly once
    assert len(connected_shop.documents("SalesReceipt")) == 6
    assert reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END).report["differences"] == []


def test_daily_reconciliation_heals_dropped_webhooks_and_reports_what_it_fixed(client, redis_conn, connected_shop,
                                                                               orders):
    recent = datetime.now(timezone.utc) - timedelta(hours=30)
    placed = [orders.order(processed_at=recent + timedelta(minutes=i)) for i in range(5)]
    for order in placed:
        connected_shop.shopify.add_order(connected_shop.shop.domain, order)
    for order in placed[:3]:  # the webhooks of the last two were dropped
        resp = post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, order)
        assert resp.status_code == 200
    drain(redis_conn)
    assert len(connected_shop.documents("SalesReceipt")) == 3
    # the first order was then partly refunded in Shopify; that refunds/create webhook was dropped too
    refund = make_refund(placed[0], refund_id=8801, qty=1)
    connected_shop.shopify.add_order(connected_shop.shop.domain, order_with_refund(placed[0], refund))

    results = reconcile.reconcile_all_shops()
    [result] = results
    assert result["shop"] == connected_shop.shop.domain and result["healed"] == 3
    assert sorted((f["kind"], f["order_id"]) for f in result["fixed"]) == sorted(
        [("missing_in_qbo", str(o["id"])) for o in placed[3:]] + [("missing_refund", str(placed[0]["id"]))])
    assert len(connected_shop.documents("SalesReceipt")) == 5
    [refund_doc] = connected_shop.documents("RefundReceipt")
    assert Decimal(str(refund_doc["TotalAmt"])) == sum(Decimal(t["amount"]) for t in refund["transactions"])
    run = ReconciliationRun.get_by_id(result["run"])
    assert run.trigger == "scheduled" and run.report["counts"]["missing_in_qbo"] == 2
    assert run.report["counts"]["missing_refund"] == 1

    again = reconcile.reconcile_all_shops()  # the next day's run finds nothing to fix or differing
    assert again[0]["healed"] == 0 and set(again[0]["counts"].values()) == {0}
    assert len(connected_shop.documents("RefundReceipt")) == 1
    assert len(connected_shop.documents("SalesReceipt")) == 5
    assert SyncRecord.select().where(SyncRecord.status == "posted").count() == 6  # 5 orders + 1 refund


def test_invoice_mode_refund_healed_by_reconciliation_is_applied_and_the_week_then_balances(client, redis_conn,
                                                                                             connected_shop):
    from tests.fixtures_flow import simple_order

    connected_shop.settings(document_type="invoice")
    order = dict(simple_order(), financial_status="pending", fulfillment_status="fulfilled")
    assert post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, order).status_code == 200
    drain(redis_conn)
    # lines came off the unpaid invoice in Shopify (no money moved); that refunds/create webhook was dropped
    refund = make_refund(order, qty=1)
    refund["transactions"] = []
    after = dict(order_with_refund(order, refund), current_total_price="15.80", financial_status="pending")
    connected_shop.shopify.add_order(connected_shop.shop.domain, after)

    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END, heal=True)
    assert run.report["counts"]["missing_refund"] == 1
    assert [(h["kind"], h["status"]) for h in run.report["healed"]] == [("missing_refund", "posted")]
    [invoice] = connected_shop.documents("Invoice")
    [memo] = connected_shop.documents("CreditMemo")
    [application] = connected_shop.documents("Payment")
    assert Decimal(str(application["TotalAmt"])) == 0 and Decimal(str(memo["RemainingCredit"])) == 0
    assert Decimal(str(invoice["Balance"])) == Decimal("15.80")  # A/R down by the credit
    # the applied credit changes balances, not totals: the next run finds the week in balance
    again = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    assert again.report["differences"] == [] and again.report["compared"] == 1
    assert SyncRecord.get(SyncRecord.source_key == "apply:7001").status == "posted"
