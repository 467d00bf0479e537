"""Exactly one Deposit per payout under replays, duplicate runs, lost answers and a worker killed mid-write."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from ecomflux_app import runtime
from ecomflux_app.models import SyncRecord
from ecomflux_app.sync import posting
from ecomflux_app.sync.payouts import start_payout_sync, sync_payouts
from tests.helpers import app_env, drain
from tests.payout_helpers import amount, post_orders, scenario, setup_accounts
from tests.test_faults import WorkerKilled, kill_worker_processes, wait_for

SINCE = date(2026, 11, 1)


def deposits_for(connected, payout_id) -> list[dict]:
    return [d for d in connected.documents("Deposit") if f"[ecomflux:payout:{payout_id}]" in d["PrivateNote"]]


@pytest.fixture
def payouts(client, redis_conn, connected_shop):
    setup_accounts(connected_shop)
    orders, refund = post_orders(client, redis_conn, connected_shop)
    return scenario(connected_shop, orders, refund)


@pytest.mark.parametrize("intuit_forgets", [False, True])
def test_crash_after_qbo_created_the_deposit_is_adopted_not_duplicated(connected_shop, payouts, monkeypatch,
                                                                       intuit_forgets):
    real = posting._posted

    def crash(*_a, **_k):
        raise WorkerKilled()

    monkeypatch.setattr(posting, "_posted", crash)
    with pytest.raises(WorkerKilled):
        sync_payouts(connected_shop.shop, SINCE)
    monkeypatch.setattr(posting, "_posted", real)
    first = payouts["paid"][0]
    assert len(deposits_for(connected_shop, first)) == 1  # QBO has it; the ledger never heard back
    assert SyncRecord.get(SyncRecord.source_key == f"payout:{first}").status == "posting"
    if intuit_forgets:  # requestid retention ran out: only our lookup stands between us and a duplicate
        connected_shop.intuit.forget_request_ids(connected_shop.realm)
    result = sync_payouts(connected_shop.shop, SINCE)
    assert result["posted"] == 2
    for payout_id in payouts["paid"]:
        [deposit] = deposits_for(connected_shop, payout_id)
        record = SyncRecord.get(SyncRecord.source_key == f"payout:{payout_id}")
        assert record.status == "posted" and record.qbo_id == str(deposit["Id"])
    attempts = [a.outcome for a in SyncRecord.get(SyncRecord.source_key == f"payout:{first}").processing_attempts]
    assert "adopted" in attempts


def test_qbo_timeout_on_the_write_then_retry_posts_once(connected_shop, payouts, monkeypatch):
    from ecomflux_app.quickbooks import client as qbo_client

    monkeypatch.setattr(qbo_client, "TIMEOUT", (2, 1))
    connected_shop.intuit.inject_fault(connected_shop.realm, "timeout", count=1, seconds=1.5, endpoint="POST deposit")
    first = sync_payouts(connected_shop.shop, SINCE)
    assert first["waiting"] >= 1  # the timed-out payout waits; the other may have posted
    wait_for(lambda: len(connected_shop.documents("Deposit")) == 2, what="the timed-out write to land")
    assert sync_payouts(connected_shop.shop, SINCE)["posted"] >= 1
    for payout_id in payouts["paid"]:
        assert len(deposits_for(connected_shop, payout_id)) == 1
        assert SyncRecord.get(SyncRecord.source_key == f"payout:{payout_id}").status == "posted"


def test_a_run_while_another_worker_holds_the_payout_posts_nothing_then_one(connected_shop, payouts, redis_conn):
    shop = connected_shop.shop
    first = payouts["paid"][0]
    record = SyncRecord.create(shop=shop, source_key=f"payout:{first}", kind="payout", order_id=str(first))
    with posting.ledger_lock(shop, record):  # a concurrent run (another machine) is posting this payout
        busy = sync_payouts(shop, SINCE)
    assert busy["waiting"] == 1 and deposits_for(connected_shop, first) == []
    for _ in range(3):  # the "Sync payouts" button pressed again, the daily job, the retry job
        sync_payouts(shop, SINCE)
    assert len(connected_shop.documents("Deposit")) == 2


def test_worker_sigkilled_inside_the_deposit_write_leaves_one_deposit(app, redis_conn, connected_shop, payouts):
    shop, realm, intuit = connected_shop.shop, connected_shop.realm, connected_shop.intuit
    intuit.inject_fault(realm, "latency", count=1, seconds=2.0, endpoint="POST deposit")
    start_payout_sync(shop, SINCE)
    worker = subprocess.Popen([sys.executable, "-m", "ecomflux_app.cli", "worker", "--burst", "--name",
                               "payout-victim"], env=app_env(app), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: intuit.counters(realm)["by_endpoint"].get("POST deposit", 0) >= 1,
                 what="the worker's Deposit request to reach QBO")
    finally:
        assert kill_worker_processes("payout-victim") >= 1
        worker.wait()
    wait_for(lambda: len(connected_shop.documents("Deposit")) == 1, what="QBO to finish the orphaned write")
    first = payouts["paid"][0]
    assert SyncRecord.get(SyncRecord.source_key == f"payout:{first}").status == "posting"
    for key in redis_conn.scan_iter(match="ecomflux:post:*"):
        redis_conn.delete(key)  # the dead worker's lock TTL has passed
    start_payout_sync(shop, SINCE)  # the retry job (or the admin) runs it again
    drain(redis_conn)
    for payout_id in payouts["paid"]:
        [deposit] = deposits_for(connected_shop, payout_id)
        record = SyncRecord.get(SyncRecord.source_key == f"payout:{payout_id}")
        assert record.status == "posted" and record.qbo_total == amount(deposit["TotalAmt"])
    assert runtime.redis() is not None
