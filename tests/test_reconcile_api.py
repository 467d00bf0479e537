"""/api/backfill and /api/reconciliation: session-token routes acting on the token's shop only."""

from __future__ import annotations

import csv
import io

from ecomflux_app.models import BackfillRun, ReconciliationRun
from tests.api_fixtures import bearer  # noqa: F401
from tests.helpers import drain


def test_backfill_api_starts_a_run_on_the_bulk_queue_and_shows_progress(client, redis_conn, connected_shop,
                                                                        orders, bearer):  # noqa: F811
    for order in orders.week(7):
        connected_shop.shopify.add_order(connected_shop.shop.domain, order)
    headers = bearer(connected_shop.shop.domain)
    assert client.post("/api/backfill", json={"since": "2026-11-01"}).status_code == 401  # no token
    assert client.post("/api/backfill", json={"since": "yesterday"}, headers=headers).status_code == 400
    resp = client.post("/api/backfill", json={"since": "2026-11-01"}, headers=headers)
    assert resp.status_code == 202 and resp.get_json()["status"] == "running"
    assert client.post("/api/backfill", json={"since": "2026-11-01"}, headers=headers).status_code == 409
    drain(redis_conn)
    current = client.get("/api/backfill", headers=headers).get_json()["current"]
    assert (current["status"], current["seen"], current["posted"]) == ("done", 7, 7)
    assert len(connected_shop.documents("SalesReceipt")) == 7


def test_reconciliation_api_report_csv_and_post_missing(client, redis_conn, connected_shop, orders,
                                                        install_shop, bearer):  # noqa: F811
    week = orders.week(4)
    for order in week:
        connected_shop.shopify.add_order(connected_shop.shop.domain, order)
    headers = bearer(connected_shop.shop.domain)
    assert client.post("/api/reconciliation", json={"start": "2026-11-22", "end": "2026-11-16"},
                       headers=headers).status_code == 400
    resp = client.post("/api/reconciliation", json={"start": "2026-11-16", "end": "2026-11-22"}, headers=headers)
    assert resp.status_code == 202
    run_id = resp.get_json()["id"]
    drain(redis_conn)
    report = client.get(f"/api/reconciliation/{run_id}", headers=headers).get_json()
    assert report["status"] == "done" and report["report"]["counts"]["missing_in_qbo"] == 4
    csv_resp = client.get(f"/api/reconciliation/{run_id}.csv", headers=headers)
    assert csv_resp.mimetype == "text/csv"
    assert sorted(r["order_id"] for r in csv.DictReader(io.StringIO(csv_resp.get_data(as_text=True)))) == \
        sorted(str(o["id"]) for o in week)

    other = install_shop("other-shop.myshopify.com", name="Other")
    other_headers = bearer(other.domain)
    assert client.get(f"/api/reconciliation/{run_id}", headers=other_headers).status_code == 404
    assert client.get(f"/api/reconciliation/{run_id}.csv", headers=other_headers).status_code == 404
    assert client.post(f"/api/reconciliation/{run_id}/post-missing", headers=other_headers).status_code in (404, 409)

    resp = client.post(f"/api/reconciliation/{run_id}/post-missing", headers=headers)
    assert resp.status_code == 202 and resp.get_json()["queued"] == 4
    drain(redis_conn)
    assert ReconciliationRun.get_by_id(run_id).healed == 4
    assert len(connected_shop.documents("SalesReceipt")) == 4
    client.post(f"/api/reconciliation/{run_id}/post-missing", headers=headers)
    drain(redis_conn)
    assert len(connected_shop.documents("SalesReceipt")) == 4  # exactly once
    sample = client.post("/api/reconciliation", json={"sample_week": True}, headers=headers).get_json()
    assert sample["status"] == "queued"
    assert BackfillRun.select().count() == 0
