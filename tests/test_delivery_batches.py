"""Jobs from intake: one inbox job per shop while one waits, fair time slices, and lost batches swept."""

from __future__ import annotations

import pytest

from ecomflux_app.models import Shop, WebhookDelivery, utcnow
from ecomflux_app.work_queue import get_queue, shop_queue_name
from ecomflux_app.sync.dispatch import process_batch
from ecomflux_app.sync import inbox
from ecomflux_app.sync.drain import process_inbox
from ecomflux_app.sync.sweeper import INBOX_JOB, enqueue_many, queued_delivery_ids, sweep
from tests.helpers import drain, post_webhook

SHOP_A = "batch-a.myshopify.com"
SHOP_B = "batch-b.myshopify.com"


@pytest.fixture
def deliveries(client, db, redis_conn):
    """Three signed deliveries for shop A and one for shop B; their own intake jobs are dropped so
    each test can enqueue them the way a group commit would."""
    for domain in (SHOP_A, SHOP_B):
        Shop.create(domain=domain, access_token="shpat_x")
    ids = {SHOP_A: [], SHOP_B: []}
    for n, domain in enumerate([SHOP_A, SHOP_A, SHOP_B, SHOP_A]):
        resp = post_webhook(client, "orders/fulfilled", domain, {"id": 500 + n, "name": f"#{500 + n}"},
                            webhook_id=f"batch-{n}")
        ids[domain].append(resp.get_json()["id"])
    for domain in ids:
        get_queue(redis_conn, shop_queue_name(domain)).empty()
        assert inbox.take(redis_conn, domain, "-") == ids[domain]  # intake put them in the shop's inbox
    return ids


def _inbox_jobs(redis_conn, shop):
    return [j for j in get_queue(redis_conn, shop_queue_name(shop)).get_jobs() if j.func_name == INBOX_JOB]


def test_one_group_commit_makes_one_job_per_shop(deliveries, redis_conn):
    enqueue_many(redis_conn, [(SHOP_A, deliveries[SHOP_A][0]), (SHOP_A, deliveries[SHOP_A][1]),
                              (SHOP_B, deliveries[SHOP_B][0]), (SHOP_A, deliveries[SHOP_A][2])])
    for shop in (SHOP_A, SHOP_B):
        [job] = get_queue(redis_conn, shop_queue_name(shop)).get_jobs()
        assert (job.func_name, job.args) == (INBOX_JOB, [shop, job.id])
        assert queued_delivery_ids(redis_conn, shop) == deliveries[shop]


def test_later_commits_join_the_waiting_inbox_job_and_a_started_one_makes_room(deliveries, redis_conn):
    """While a shop's inbox job waits, commits only append ids; once it has taken them, the next
    commit enqueues a new job, which takes only what came after."""
    first, second, third = deliveries[SHOP_A]
    enqueue_many(redis_conn, [(SHOP_A, first)])
    enqueue_many(redis_conn, [(SHOP_A, second)])
    [job] = _inbox_jobs(redis_conn, SHOP_A)
    assert queued_delivery_ids(redis_conn, SHOP_A) == [first, second]

    get_queue(redis_conn, shop_queue_name(SHOP_A)).remove(job)  # a worker dequeued it ...
    assert inbox.take(redis_conn, SHOP_A, job.id) == [first, second]  # ... and took the inbox
    enqueue_many(redis_conn, [(SHOP_A, third)])
    [later] = _inbox_jobs(redis_conn, SHOP_A)
    assert later.id != job.id and queued_delivery_ids(redis_conn, SHOP_A) == [third]


def test_an_inbox_job_that_is_gone_does_not_hold_back_later_commits(deliveries, redis_conn):
    """The waiting job was lost (queue emptied) or failed before taking the inbox: the next commit
    enqueues a new job, which takes the older ids too."""
    first, second, third = deliveries[SHOP_A]
    enqueue_many(redis_conn, [(SHOP_A, first)])
    get_queue(redis_conn, shop_queue_name(SHOP_A)).empty()
    assert queued_delivery_ids(redis_conn, SHOP_A) == []  # no job waits: the inbox is not counted
    enqueue_many(redis_conn, [(SHOP_A, second)])
    [job] = _inbox_jobs(redis_conn, SHOP_A)
    job.set_status("failed")  # it failed before its first line (an import error, say)
    enqueue_many(redis_conn, [(SHOP_A, third)])
    assert len(_inbox_jobs(redis_conn, SHOP_A)) == 2
    assert inbox.waiting_ids(redis_conn, SHOP_A) == [first, second, third]


def test_an_inbox_job_runs_what_it_took_and_a_second_one_finds_nothing(deliveries, redis_conn):
    ids = deliveries[SHOP_A]
    enqueue_many(redis_conn, [(SHOP_A, i) for i in ids])
    [job] = _inbox_jobs(redis_conn, SHOP_A)
    # No QuickBooks connection yet: each order parks as pending.
    assert process_inbox(SHOP_A, job.id, redis_conn=redis_conn) == {"pending": 3}
    assert process_inbox(SHOP_A, "inbox-other", redis_conn=redis_conn) == {}
    assert [WebhookDelivery.get_by_id(i).status for i in ids] == ["pending"] * 3


def test_batch_past_its_slice_puts_the_rest_first_in_its_shop_queue(deliveries, redis_conn):
    ids = deliveries[SHOP_A]
    enqueue_many(redis_conn, [(SHOP_A, ids[-1] + 1000)])  # a later job already waiting for shop A
    statuses = process_batch(SHOP_A, ids, slice_seconds=0, redis_conn=redis_conn)
    # No QuickBooks connection yet: the first order parks as pending, the other two wait their turn.
    assert statuses == {"pending": 1, "continued": 2}
    assert queued_delivery_ids(redis_conn, SHOP_A) == [ids[1], ids[2], ids[-1] + 1000]
    rows = {r.id: r for r in WebhookDelivery.select().where(WebhookDelivery.shop_domain == SHOP_A)}
    assert [rows[i].attempts for i in ids] == [1, 0, 0]

    drain(redis_conn)
    rows = {r.id: r for r in WebhookDelivery.select().where(WebhookDelivery.shop_domain == SHOP_A)}
    assert [(rows[i].status, rows[i].attempts) for i in ids] == [("pending", 1)] * 3
    started = [rows[i].started_at for i in ids]
    assert started == sorted(started)  # arrival order kept through the continuation


def test_sweeper_leaves_a_live_batch_alone_and_re_enqueues_a_lost_one(deliveries, redis_conn):
    ids = deliveries[SHOP_A]
    enqueue_many(redis_conn, [(SHOP_A, i) for i in ids])
    stale = WebhookDelivery.select().where(WebhookDelivery.id.in_(ids)).first().received_at.replace(year=2020)
    WebhookDelivery.update(enqueued_at=stale).where(WebhookDelivery.id.in_(ids)).execute()

    assert sweep(redis_conn, 60) == 0  # old but still waiting in a live batch: a backlog, not a loss
    get_queue(redis_conn, shop_queue_name(SHOP_A)).empty()  # the batch is lost (Redis emptied, worker died)
    assert sweep(redis_conn, 60) == 3
    assert sorted(queued_delivery_ids(redis_conn, SHOP_A)) == ids
    assert sweep(redis_conn, 60) == 0  # and never twice


def test_a_batch_whose_worker_died_is_swept_once_its_rows_go_stale(deliveries, redis_conn, monkeypatch):
    """A running batch refreshes its rows' enqueued_at; killed mid-batch, its rows are re-enqueued
    after the sweep interval, not after RQ's job timeout."""
    import ecomflux_app.sync.dispatch as dispatch

    ids = deliveries[SHOP_A]
    enqueue_many(redis_conn, [(SHOP_A, i) for i in ids])
    queue = get_queue(redis_conn, shop_queue_name(SHOP_A))
    queue.remove(queue.get_jobs()[0])  # a worker took the batch ...
    calls = []

    def die_after_first(delivery_id, **_):
        if calls:
            raise SystemExit("worker killed")  # ... and died during its second delivery
        calls.append(delivery_id)
        return "pending"

    monkeypatch.setattr(dispatch, "process_delivery", die_after_first)
    with pytest.raises(SystemExit):
        process_batch(SHOP_A, ids, redis_conn=redis_conn)
    assert calls == [ids[0]]
    assert sweep(redis_conn, 60) == 0  # the rows were refreshed when the batch started
    old = WebhookDelivery.get_by_id(ids[0]).received_at.replace(year=2020)
    WebhookDelivery.update(enqueued_at=old).where(WebhookDelivery.id.in_(ids)).execute()
    assert sweep(redis_conn, 60) == 3  # no waiting job covers them any more
    assert sorted(queued_delivery_ids(redis_conn, SHOP_A)) == ids


def test_a_due_retry_behind_a_page_of_live_backlog_rows_is_still_swept(deliveries, redis_conn):
    """The oldest due rows are a backlog's, stale but alive in their batch job: they do not hide a later
    delivery's retry that has come due, which is enqueued now, not when the backlog is gone."""
    backlog = deliveries[SHOP_A]
    enqueue_many(redis_conn, [(SHOP_A, i) for i in backlog])
    stale = WebhookDelivery.select().where(WebhookDelivery.id.in_(backlog)).first().received_at.replace(year=2020)
    WebhookDelivery.update(enqueued_at=stale).where(WebhookDelivery.id.in_(backlog)).execute()
    [retry] = deliveries[SHOP_B]  # a later id than two of the backlog's rows
    WebhookDelivery.update(status="pending", next_attempt_at=utcnow().replace(year=2020), enqueued_at=None).where(
        WebhookDelivery.id == retry).execute()

    assert sweep(redis_conn, 60, page=2) == 1
    assert queued_delivery_ids(redis_conn, SHOP_B) == [retry]
    assert WebhookDelivery.get_by_id(retry).status == "queued"


def test_a_lost_delivery_behind_a_page_of_live_backlog_rows_is_still_swept(deliveries, redis_conn):
    """Stale queued rows are read a page at a time past the last one seen: a lost job behind a page of
    a backlog's live rows is found in the same sweep."""
    backlog, [lost] = deliveries[SHOP_A], deliveries[SHOP_B]  # ids: A, A, B, A
    enqueue_many(redis_conn, [(SHOP_A, i) for i in backlog])  # B's job is gone (Redis emptied, say)
    stale = WebhookDelivery.select().where(WebhookDelivery.id.in_(backlog)).first().received_at.replace(year=2020)
    WebhookDelivery.update(enqueued_at=stale).where(WebhookDelivery.id.in_(backlog + [lost])).execute()

    assert sweep(redis_conn, 60, page=2) == 1
    assert queued_delivery_ids(redis_conn, SHOP_B) == [lost]
    assert sorted(queued_delivery_ids(redis_conn, SHOP_A)) == backlog  # the backlog's batch, untouched
