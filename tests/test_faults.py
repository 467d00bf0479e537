"""Fault suite: killed workers, dropped database connections, QBO faults, and any interleaving of duplicates,
crashes, retries and replays still yield exactly one QBO document per order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ecomflux_app.models import SyncRecord, WebhookDelivery, utcnow
from ecomflux_app.sync import dispatch, posting
from ecomflux_app.sync.sweeper import sweep
from tests.conftest import TEST_DB, reset_state
from tests.fixtures_flow import connect_shop_to_company, simple_order
from tests.helpers import app_env, drain, post_webhook


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    """Poll a condition with a deadline: synchronises on an observable fact, not on elapsed time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill_worker_processes(name: str) -> int:
    """SIGKILL a worker and its work horse (RQ's horse calls setsid, so a process-group kill misses it)."""
    killed = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and name.encode() in argv:
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def expire_leases_and_sweep(redis_conn) -> int:
    """What time does after a worker dies: its lease and posting lock run out, the sweeper re-enqueues the row."""
    WebhookDelivery.update(lease_until=utcnow() - timedelta(seconds=1)).where(
        WebhookDelivery.status == "processing").execute()
    for key in redis_conn.scan_iter(match="ecomflux:post:*"):
        redis_conn.delete(key)  # the dead worker's lock TTL (posting.LOCK_SECONDS) has passed
    return sweep(redis_conn, stale_after_seconds=0)


def test_worker_sigkilled_during_the_qbo_write_leaves_exactly_one_document(app, client, redis_conn, connected_shop):
    shop, realm, intuit = connected_shop.shop, connected_shop.realm, connected_shop.intuit
    post_webhook(client, "orders/fulfilled", shop.domain, simple_order(9001, "#9001"))
    drain(redis_conn)  # warm the customer and item caches: the next order is a single create call
    creates_before = intuit.counters(realm)["by_endpoint"].get("POST salesreceipt", 0)
    intuit.inject_fault(realm, "latency", count=1, seconds=2.0)  # the create is slow: kill the worker inside it
    post_webhook(client, "orders/fulfilled", shop.domain, simple_order(9002, "#9002"))

    worker = subprocess.Popen([sys.executable, "-m", "ecomflux_app.cli", "worker", "--burst", "--name", "victim"],
                              env=app_env(app), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: intuit.counters(realm)["by_endpoint"].get("POST salesreceipt", 0) > creates_before,
                 what="the worker's create request to reach QBO")
    finally:
        assert kill_worker_processes("victim") >= 1  # the worker and its work horse, mid-request
        worker.wait()
    wait_for(lambda: len(connected_shop.documents("SalesReceipt")) == 2, what="QBO to finish the orphaned write")
    record = SyncRecord.get(SyncRecord.order_id == "9002")
    assert record.status == "posting"  # the ledger never heard back

    assert expire_leases_and_sweep(redis_conn) == 1
    drain(redis_conn)
    docs = [d for d in connected_shop.documents("SalesReceipt") if "ecomflux:order:9002" in d["PrivateNote"]]
    assert len(docs) == 1
    record = SyncRecord.get(SyncRecord.order_id == "9002")
    assert record.status == "posted" and record.qbo_id == str(docs[0]["Id"])


def _terminate_other_sessions(db) -> int:
    """What a server restart or failover does to every other connection of this database."""
    return len(db.execute_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())


@pytest.mark.skipif(TEST_DB != "postgres", reason="PostgreSQL connection drops only exist on PostgreSQL")
def test_postgres_connections_dropped_mid_run_lose_nothing(client, redis_conn, connected_shop, db):
    import threading

    from ecomflux_app.db import database

    for n in range(3):
        post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order(9100 + n, f"#{9100 + n}"))
    assert _terminate_other_sessions(db) >= 1  # the intake writer's connection and the idle pool die
    # Intake: the writer reconnects instead of answering 503 (Shopify would retry, but needn't).
    resp = post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order(9200, "#9200"))
    assert resp.status_code == 200
    # Any other thread checking a connection out of the pool gets a live one.
    seen = []

    def other_thread():
        with database.connection_context():
            seen.append(WebhookDelivery.select().count())

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(30)
    assert seen == [4]
    drain(redis_conn)
    assert {d.status for d in WebhookDelivery.select()} == {"posted"}
    assert len(connected_shop.documents("SalesReceipt")) == 4


@pytest.mark.parametrize("fault", ["500", "503", "429-xml"])
def test_qbo_faults_park_the_order_and_it_posts_once_when_qbo_recovers(client, redis_conn, connected_shop, fault):
    connected_shop.intuit.inject_fault(connected_shop.realm, fault, count=1)
    post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order())
    drain(redis_conn)
    delivery = WebhookDelivery.get()
    assert delivery.status == "pending" and delivery.next_attempt_at > utcnow()
    redis_conn.delete(f"ecomflux:qbo:pause:{connected_shop.realm}")
    WebhookDelivery.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    sweep(redis_conn, 60)
    drain(redis_conn)
    assert WebhookDelivery.get().status == "posted"
    assert len(connected_shop.documents("SalesReceipt")) == 1


def test_qbo_timeout_then_recovery_posts_once(client, redis_conn, connected_shop, monkeypatch):
    from ecomflux_app.quickbooks import client as qbo_client

    monkeypatch.setattr(qbo_client, "TIMEOUT", (2, 1))  # the client gives up after 1 s; QBO finishes anyway
    post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order(9001, "#9001"))
    drain(redis_conn)
    connected_shop.intuit.inject_fault(connected_shop.realm, "timeout", count=1, seconds=1.5)
    post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order(9002, "#9002"))
    drain(redis_conn)
    assert WebhookDelivery.get(WebhookDelivery.order_id == "9002").status == "pending"
    wait_for(lambda: len(connected_shop.documents("SalesReceipt")) == 2, what="the timed-out write to land")
    WebhookDelivery.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    sweep(redis_conn, 60)
    drain(redis_conn)
    assert len(connected_shop.documents("SalesReceipt")) == 2
    assert SyncRecord.get(SyncRecord.order_id == "9002").status == "posted"


class WorkerKilled(BaseException):
    """Stands in for a SIGKILL between QBO's answer and the ledger update."""


class DeliveryChaos(RuleBasedStateMachine):
    """Random interleavings of deliveries, duplicates, crashes, replays and sweeps."""

    ORDERS = (9001, 9002, 9003)

    def __init__(self):
        super().__init__()
        ctx = self.ctx
        reset_state(ctx["app"], [ctx["intuit"], ctx["shopify"]])
        shop = ctx["install_shop"]("chaos-shop.myshopify.com")
        self.realm = ctx["intuit"].create_company(name="Chaos Co")
        connect_shop_to_company(shop, ctx["intuit"], self.realm)
        self.shop = shop
        self.sent: set[int] = set()
        self.crash_next = False

    ctx: dict = {}

    def _docs(self, order_id: int) -> int:
        return sum(1 for d in self.ctx["intuit"].entities(self.realm, "SalesReceipt")
                   if f"ecomflux:order:{order_id}" in (d.get("PrivateNote") or ""))

    @rule(order=st.sampled_from(ORDERS), webhook=st.integers(0, 3))
    def deliver(self, order, webhook):
        resp = post_webhook(self.ctx["client"], "orders/fulfilled", self.shop.domain,
                            simple_order(order, f"#{order}"), webhook_id=f"wh-{order}-{webhook}")
        assert resp.status_code == 200
        self.sent.add(order)

    @rule()
    def arm_crash(self):
        self.crash_next = True

    @rule()
    def work(self):
        real = posting._posted

        def crash(*_a, **_k):
            raise WorkerKilled()

        if self.crash_next:
            posting._posted = crash
        try:
            drain(self.ctx["redis"])
        except WorkerKilled:
            pass
        finally:
            posting._posted = real
            self.crash_next = False

    @rule(data=st.data())
    def replay(self, data):
        ids = [d.id for d in WebhookDelivery.select(WebhookDelivery.id)]
        if ids:
            dispatch.process_delivery(data.draw(st.sampled_from(ids)), force=True)

    @rule()
    def time_passes(self):
        expire_leases_and_sweep(self.ctx["redis"])
        WebhookDelivery.update(next_attempt_at=utcnow() - timedelta(seconds=1)).where(
            WebhookDelivery.status == "pending").execute()

    @invariant()
    def never_two_documents(self):
        for order in self.ORDERS:
            assert self._docs(order) <= 1

    def teardown(self):
        # Eventually: every delivered order has exactly one document.
        for _ in range(3):
            self.time_passes()
            drain(self.ctx["redis"])
        for order in self.ORDERS:
            assert self._docs(order) == (1 if order in self.sent else 0), order


def test_any_interleaving_of_duplicates_crashes_and_replays_posts_one_document_per_order(
        app, client, redis_conn, intuit_sandbox, shopify_sandbox, install_shop, db):
    DeliveryChaos.ctx = {"app": app, "client": client, "redis": redis_conn, "intuit": intuit_sandbox,
                         "shopify": shopify_sandbox, "install_shop": install_shop}
    run_state_machine_as_test(DeliveryChaos, settings=settings(
        max_examples=12, stateful_step_count=10, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
