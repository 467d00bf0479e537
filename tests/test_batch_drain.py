"""Backlog drain: a shop's waiting orders go to QBO in batch requests, exactly once whatever happens mid-batch."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta

from rq.timeouts import TimerDeathPenalty

from ecomflux_app.models import ProcessingAttempt, SyncRecord, WebhookDelivery, utcnow
from ecomflux_app.work_queue import make_worker
from ecomflux_app.sync import drain as drain_module
from ecomflux_app.sync.references import MIN_BATCH_CREATES
from ecomflux_app.sync.sweeper import sweep
from tests.fixtures_flow import simple_order
from tests.helpers import app_env, drain, let_unanswered_batches_end, post_webhook
from tests.test_faults import expire_leases_and_sweep, kill_worker_processes, wait_for


def queue_orders(client, shop_domain: str, first: int, count: int, buyers: int | None = None) -> list[int]:
    """`count` orders, all from one buyer or from `buyers` distinct new buyers (round robin)."""
    ids = list(range(first, first + count))
    for n, order_id in enumerate(ids):
        b = n % buyers if buyers else None
        buyer = {} if b is None else {"email": f"buyer{b}@example.com", "first": f"Buyer{b}", "last": "Lee"}
        order = simple_order(order_id, f"#{order_id}", **buyer)
        if b is not None:
            order["customer"]["id"] = 8000 + b
        post_webhook(client, "orders/fulfilled", shop_domain, order)
    return ids


def documents_per_order(connected, ids: list[int]) -> dict[int, int]:
    docs = connected.documents("SalesReceipt")
    return {i: sum(1 for d in docs if f"ecomflux:order:{i}" in (d.get("PrivateNote") or "")) for i in ids}


def batch_creates(connected) -> int:
    return connected.intuit.counters(connected.realm)["created"].get("SalesReceipt", 0)


def test_a_backlog_is_posted_in_batch_requests_one_document_per_order(client, redis_conn, connected_shop):
    ids = queue_orders(client, connected_shop.shop.domain, 7000, 75)
    drain(redis_conn)
    assert set(documents_per_order(connected_shop, ids).values()) == {1}
    endpoints = connected_shop.intuit.counters(connected_shop.realm)["by_endpoint"]
    assert endpoints.get("POST batch", 0) >= 3  # 75 documents: at least 3 batches of <= 30
    assert endpoints.get("POST salesreceipt", 0) == 0  # no document went alone
    assert {d.status for d in WebhookDelivery.select()} == {"posted"}
    # Each delivery keeps its own part of the exchange, and each ledger row names its delivery.
    assert ProcessingAttempt.select().where(ProcessingAttempt.outcome == "posted").count() == 75
    assert SyncRecord.select().where(SyncRecord.delivery.is_null()).count() == 0


def test_a_few_waiting_orders_still_post_one_by_one(client, redis_conn, connected_shop):
    ids = queue_orders(client, connected_shop.shop.domain, 7100, drain_module.BACKLOG_MIN - 1)
    drain(redis_conn)
    assert set(documents_per_order(connected_shop, ids).values()) == {1}
    assert connected_shop.intuit.counters(connected_shop.realm)["by_endpoint"].get("POST batch", 0) == 0


def test_a_batch_qbo_fails_midway_is_looked_up_and_only_the_missing_documents_are_posted(
        client, redis_conn, connected_shop):
    """QBO answers 500 after creating 12 of a batch's 30 documents: the outcome is uncertain, so the rows
    wait until that batch cannot be running any more, are looked up by DocNumber + marker, the 12 are
    adopted and only the 18 missing ones are posted."""
    ids = queue_orders(client, connected_shop.shop.domain, 7200, 30)
    connected_shop.intuit.inject_fault(connected_shop.realm, "500", endpoint="POST batch", after_items=12)
    drain(redis_conn)
    assert batch_creates(connected_shop) == 12
    assert {d.status for d in WebhookDelivery.select()} == {"pending"}
    assert {r.status for r in SyncRecord.select()} == {"posting"}

    # Before the unanswered batch could have ended, nothing is looked up or posted again.
    WebhookDelivery.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    sweep(redis_conn, 0)
    drain(redis_conn)
    assert batch_creates(connected_shop) == 12
    assert {d.status for d in WebhookDelivery.select()} == {"pending"}

    let_unanswered_batches_end()
    sweep(redis_conn, 0)
    drain(redis_conn)
    assert set(documents_per_order(connected_shop, ids).values()) == {1}
    assert batch_creates(connected_shop) == 30  # 12 + the 18 missing: none twice
    assert {d.status for d in WebhookDelivery.select()} == {"posted"}
    adopted = ProcessingAttempt.select().where(ProcessingAttempt.outcome == "adopted").count()
    assert adopted == 12


def test_a_worker_killed_mid_batch_leaves_exactly_one_document_per_order(app, client, redis_conn, connected_shop):
    """A real worker process is SIGKILLed while QBO works through its batches (one document after
    another): QBO finishes them without it; once they have ended, every row is looked up and adopted or
    posted, never twice."""
    post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order(7300, "#7300"))
    drain(redis_conn)  # the customer and item exist: the backlog's documents are all that is left
    ids = queue_orders(client, connected_shop.shop.domain, 7301, 45)
    connected_shop.intuit.company(connected_shop.realm).item_latency = 0.1  # 30 items: 3 s in QBO
    worker = subprocess.Popen([sys.executable, "-m", "ecomflux_app.cli", "worker", "--burst", "--name", "drain-victim"],
                              env=app_env(app), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: batch_creates(connected_shop) > 1, what="QBO to start creating the batch's documents")
    finally:
        assert kill_worker_processes("drain-victim") >= 1
        worker.wait()
    assert batch_creates(connected_shop) < 1 + 45  # killed mid-batch: QBO still has documents to create

    # The dead worker's leases and locks run out at once; its unanswered batches may still be running.
    assert expire_leases_and_sweep(redis_conn) >= 1
    drain(redis_conn)
    assert SyncRecord.select().where(SyncRecord.status == "posting").count() > 0  # waiting, not re-posted

    wait_for(lambda: connected_shop.intuit.company(connected_shop.realm).in_flight == 0,
             what="QBO to finish the orphaned batches")
    created = batch_creates(connected_shop)
    let_unanswered_batches_end()
    sweep(redis_conn, 0)
    drain(redis_conn)
    assert set(documents_per_order(connected_shop, ids).values()) == {1}
    assert batch_creates(connected_shop) == 1 + 45
    assert created <= 1 + 45
    assert {d.status for d in WebhookDelivery.select()} == {"posted"}


def _worker_thread(worker):
    worker.death_penalty_class = TimerDeathPenalty  # signal-based timeouts work in the main thread only
    worker._install_signal_handlers = lambda: None
    thread = threading.Thread(target=worker.work, kwargs={"logging_level": "WARNING"}, daemon=True)
    thread.start()
    return thread


def test_another_shops_order_is_posted_while_a_drain_is_held_in_qbo(app, client, redis_conn, connected_shop,
                                                                     install_shop, intuit_sandbox):
    """Two workers: shop A's drain round is inside QBO (its batch requests held there) when shop B's fresh
    order arrives, and the other worker posts it meanwhile: a drain counts as one worker of A's share."""
    from tests.fixtures_flow import connect_shop_to_company

    shop_b = install_shop("quiet-drain.myshopify.com", name="Quiet", currency="USD", timezone="America/New_York",
                          country="US")
    realm_b = intuit_sandbox.create_company(name="Quiet Co", country="US")
    connect_shop_to_company(shop_b, intuit_sandbox, realm_b)
    ids = queue_orders(client, connected_shop.shop.domain, 7400, 40)
    held = threading.Event()
    intuit_sandbox.inject_fault(connected_shop.realm, "hold", count=2, endpoint="POST batch", event=held)
    workers = [make_worker(redis_conn, name=f"drain-fair-{n}", simple=True) for n in range(2)]
    for worker in workers:
        worker._mark_alive()  # both alive before any dequeue: A's share is 1 of 2
    threads = [_worker_thread(w) for w in workers]
    try:
        wait_for(lambda: intuit_sandbox.company(connected_shop.realm).in_flight >= 1,
                 what="shop A's drain to be inside QBO")
        post_webhook(client, "orders/fulfilled", shop_b.domain, simple_order(8400, "#8400"))
        wait_for(lambda: intuit_sandbox.entities(realm_b, "SalesReceipt"), what="shop B's order to be posted")
        assert not held.is_set() and intuit_sandbox.company(connected_shop.realm).in_flight >= 1
        assert intuit_sandbox.entities(connected_shop.realm, "SalesReceipt") == []  # A's batches still held
    finally:
        held.set()
        wait_for(lambda: len(intuit_sandbox.entities(connected_shop.realm, "SalesReceipt")) == 40,
                 what="shop A's backlog to be posted")
        for worker in workers:
            worker._stop_requested = True
        for thread in threads:
            thread.join(timeout=60)
    drain(redis_conn)
    assert set(documents_per_order(connected_shop, ids).values()) == {1}
    assert WebhookDelivery.get(WebhookDelivery.shop_domain == shop_b.domain).status == "posted"


def test_a_qbo_call_counts_in_the_realms_minutes_from_when_it_ended(redis_conn):
    """QBO counts a request when it arrives, which can be any time until its answer: the limiter keeps
    each request in its rolling minutes from its end, so QBO's minute never holds more than ours."""
    from ecomflux_app.quickbooks.limiter import RealmLimiter

    limiter = RealmLimiter(redis_conn, per_minute=5, concurrent=2, batches_per_minute=1)
    token = limiter.acquire("realm-1", batch=True)
    granted = redis_conn.zscore("ecomflux:qbo:batch:realm-1", token)
    assert redis_conn.zcard("ecomflux:qbo:conc:realm-1") == 1
    seconds, micros = redis_conn.time()
    while redis_conn.time() == (seconds, micros):
        pass  # Redis' clock moves on (microseconds): the release is stamped later than the grant
    limiter.release("realm-1", token)
    assert redis_conn.zcard("ecomflux:qbo:conc:realm-1") == 0
    assert redis_conn.zscore("ecomflux:qbo:batch:realm-1", token) > granted
    assert redis_conn.zscore("ecomflux:qbo:rate:realm-1", token) > granted
    assert limiter.batch_headroom("realm-1")[0] == 0  # the minute's one batch is spent until a minute after its end


def test_a_rounds_few_new_buyers_are_created_one_by_one_sparing_the_batch_budget(client, redis_conn, connected_shop):
    """A batch spends one of the realm's 40 batch requests a minute, which the backlog's documents need:
    below MIN_BATCH_CREATES new buyers go as single creates (the realm's 500 a minute)."""
    buyers = MIN_BATCH_CREATES - 10
    ids = queue_orders(client, connected_shop.shop.domain, 7300, 40, buyers)
    drain(redis_conn)
    assert set(documents_per_order(connected_shop, ids).values()) == {1}
    counters = connected_shop.intuit.counters(connected_shop.realm)
    assert counters["by_endpoint"].get("POST customer", 0) == buyers
    assert counters["created"].get("Customer", 0) == buyers
    assert counters["by_endpoint"].get("POST batch", 0) == 2  # the 40 documents only (30 + 10)


def test_many_new_buyers_are_still_created_in_one_batch(client, redis_conn, connected_shop):
    buyers = MIN_BATCH_CREATES + 2
    ids = queue_orders(client, connected_shop.shop.domain, 7400, 40, buyers)
    drain(redis_conn)
    assert set(documents_per_order(connected_shop, ids).values()) == {1}
    counters = connected_shop.intuit.counters(connected_shop.realm)
    assert counters["by_endpoint"].get("POST customer", 0) == 0
    assert counters["created"].get("Customer", 0) == buyers
    assert counters["by_endpoint"].get("POST batch", 0) == 3  # one for the buyers, two for the documents
