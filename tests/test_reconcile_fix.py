"""Reconciliation fixes: a mismatch gets an adjustment document, a deleted document is posted again, each
exactly once however often it is asked for, and the next check then finds the week in balance."""

from __future__ import annotations

from decimal import Decimal

from ecomflux_app.models import ReconciliationRun, SyncRecord
from ecomflux_app.sync import reconcile
from tests.api_fixtures import bearer  # noqa: F401
from tests.helpers import drain
from tests.test_reconcile import WEEK_END, WEEK_START, doc_for, plant_week


def amount(value) -> Decimal:
    return Decimal(str(value))


def edit_total(connected, order, by: Decimal) -> dict:
    """The bookkeeper changes a line of the order's document in QBO (its total moves by `by`)."""
    company = connected.intuit.company(connected.realm)
    with connected.intuit.state.lock:
        target = company.entities["SalesReceipt"][doc_for(connected, order)["Id"]]
        first = next(line for line in target["Line"] if line.get("DetailType") == "SalesItemLineDetail")
        first["Amount"] = float(amount(first["Amount"]) + by)
        target["TotalAmt"] = float(amount(target["TotalAmt"]) + by)
        return dict(target)


def only(run, kind):
    [(index, diff)] = [(i, d) for i, d in enumerate(run.report["differences"]) if d["kind"] == kind]
    return index, diff


def test_a_total_edited_up_in_qbo_is_closed_by_one_credit_memo(connected_shop, orders):
    week = plant_week(connected_shop, orders, count=4)
    edited = edit_total(connected_shop, week[1], Decimal("10.00"))
    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    index, diff = only(run, "mismatch")
    assert diff["field"] == "total" and diff["fixable"] and diff["qbo_id"] == edited["Id"]
    for _ in range(2):  # a double click, or the page retrying: one document
        run = reconcile.fix(run.id, index)
    [memo] = connected_shop.documents("CreditMemo")
    assert amount(memo["TotalAmt"]) == Decimal("10.00") and memo["CustomerRef"] == edited["CustomerRef"]
    assert memo["TxnDate"] == edited["TxnDate"]  # the same period as the document it corrects
    assert "ecomflux:order:" not in memo["PrivateNote"]  # never mistaken for a second order document
    assert [f["status"] for f in run.report["healed"]] == ["posted", "skipped_duplicate"]
    assert run.report["differences"][index]["fix"]["status"] == "skipped_duplicate" and run.healed == 1
    assert SyncRecord.select().where(SyncRecord.kind == "adjust").count() == 1
    again = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    assert again.report["differences"] == []


def test_a_document_posted_short_gets_one_sales_receipt_for_the_difference(connected_shop, orders):
    week = plant_week(connected_shop, orders, count=3)
    edit_total(connected_shop, week[0], Decimal("-4.25"))
    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    index, _diff = only(run, "mismatch")
    reconcile.fix(run.id, index)
    reconcile.fix(run.id, index)
    adjustments = [d for d in connected_shop.documents("SalesReceipt") if "ecomflux:adjust:" in d["PrivateNote"]]
    assert [amount(d["TotalAmt"]) for d in adjustments] == [Decimal("4.25")]
    assert amount(adjustments[0]["TxnTaxDetail"]["TotalTax"]) == 0  # the difference is no taxed sale
    assert reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END).report["differences"] == []


def test_a_deleted_document_is_posted_again_once_on_request(connected_shop, orders):
    week = plant_week(connected_shop, orders, count=3)
    gone = doc_for(connected_shop, week[2])
    company = connected_shop.intuit.company(connected_shop.realm)
    with connected_shop.intuit.state.lock:
        company.entities["SalesReceipt"][gone["Id"]]["status"] = "Deleted"
    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    index, diff = only(run, "deleted_in_qbo")
    assert diff["fixable"]
    first = reconcile.fix(run.id, index).report["differences"][index]["fix"]
    assert first["status"] == "posted", first
    second = reconcile.fix(run.id, index).report["differences"][index]["fix"]
    assert second["status"] == "skipped_duplicate"  # it is in QuickBooks again: nothing more to do
    live = [d for d in connected_shop.documents("SalesReceipt") if f"ecomflux:order:{week[2]['id']}" in d["PrivateNote"]]
    assert len(live) == 1 and live[0]["Id"] != gone["Id"]
    assert amount(live[0]["TotalAmt"]) == amount(gone["TotalAmt"]) and live[0]["DocNumber"] == gone["DocNumber"]
    row = SyncRecord.get(SyncRecord.source_key == f"order:{week[2]['id']}")
    assert (row.status, row.qbo_id, row.request_generation) == ("posted", live[0]["Id"], 1)
    assert reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END).report["differences"] == []


def test_duplicates_have_no_automatic_fix(connected_shop, orders):
    import copy

    week = plant_week(connected_shop, orders, count=2)
    twin = copy.deepcopy(doc_for(connected_shop, week[0]))
    twin.pop("Id")
    connected_shop.intuit.put_entity(connected_shop.realm, "SalesReceipt", twin)
    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    index, diff = only(run, "duplicated_in_qbo")
    assert diff["fixable"] is False
    assert reconcile.fix(run.id, index).report["differences"][index]["fix"]["status"] == "failed"


def test_fix_api_queues_one_difference_of_the_tokens_shop_only(client, redis_conn, connected_shop, orders,
                                                               install_shop, bearer):  # noqa: F811
    week = plant_week(connected_shop, orders, count=3)
    edit_total(connected_shop, week[0], Decimal("2.00"))
    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    index, _diff = only(run, "mismatch")
    headers = bearer(connected_shop.shop.domain)
    url = f"/api/reconciliation/{run.id}/fix"
    assert client.post(url, json={"index": index}).status_code == 401
    for bad in ({"index": 99}, {"index": "0"}, {"index": True}, {}):
        assert client.post(url, json=bad, headers=headers).status_code == 400
    other = install_shop("other-shop.myshopify.com", name="Other")
    assert client.post(url, json={"index": index}, headers=bearer(other.domain)).status_code in (404, 409)
    resp = client.post(url, json={"index": index}, headers=headers)
    assert resp.status_code == 202 and resp.get_json()["queued"] == index
    assert client.post(url, json={"index": index}, headers=headers).status_code == 202
    drain(redis_conn)
    report = client.get(f"/api/reconciliation/{run.id}", headers=headers).get_json()["report"]
    assert report["differences"][index]["fix"]["status"] in ("posted", "skipped_duplicate")
    assert [amount(d["TotalAmt"]) for d in connected_shop.documents("CreditMemo")] == [Decimal("2.00")]
    assert ReconciliationRun.get_by_id(run.id).healed == 1


def test_a_document_posted_net_of_a_refund_before_the_as_sold_change_is_left_balanced(client, redis_conn,
                                                                                       connected_shop):
    """Rows written before the ledger kept reflected_refunds: that document netted the refunds its body
    listed and those refunds were never posted. Reconciliation compares it as it was posted instead of
    offering an adjustment that, with no refund document, would book the refunded money as income."""
    from tests.after_sale_helpers import make_refund, order_with_refund
    from tests.fixtures_flow import simple_order
    from tests.helpers import post_webhook

    order = dict(simple_order(), fulfillment_status="fulfilled")
    refund = make_refund(order, qty=1)
    after = order_with_refund(order, refund)
    connected_shop.shopify.add_order(connected_shop.shop.domain, after)
    assert post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, after).status_code == 200
    drain(redis_conn)
    [receipt] = connected_shop.documents("SalesReceipt")
    with connected_shop.intuit.state.lock:  # what the old code posted: the sale net of the refund
        doc = connected_shop.intuit.company(connected_shop.realm).entities["SalesReceipt"][receipt["Id"]]
        doc["Line"][0]["Amount"], doc["Line"][0]["SalesItemLineDetail"]["Qty"] = 10.0, 1
        doc["TotalAmt"], doc["TxnTaxDetail"]["TotalTax"] = 15.8, 0.8
    SyncRecord.update(reflected_refunds=None).where(SyncRecord.source_key == "order:9001").execute()
    SyncRecord.create(shop=connected_shop.shop, source_key="refund:7001", kind="refund", order_id="9001",
                      status="skipped", reason="already reflected in the order's document")
    run = reconcile.reconcile_range(connected_shop.shop, WEEK_START, WEEK_END)
    assert run.report["differences"] == [] and run.report["compared"] == 1
