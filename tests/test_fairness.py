"""Fairness when QuickBooks is slow: one shop's long jobs never hold every worker while another shop waits."""

from __future__ import annotations

import threading

from rq.timeouts import TimerDeathPenalty

from ecomflux_app.work_queue import FairSimpleWorker, enqueue, make_worker, shop_queue_name, shop_share

BUSY, QUIET = "busy.myshopify.com", "quiet.myshopify.com"


def hold_qbo_call(label: str) -> str:
    """A job standing for a long QBO call (a 30-item batch): counts itself in, waits to be released."""
    from ecomflux_app import runtime

    conn = runtime.redis()
    inside = conn.incr("test:busy-inside")
    conn.rpush("test:busy-max", inside)
    conn.rpush("test:entered", label)
    try:
        if conn.blpop([f"test:release:{label}"], timeout=60) is None:
            raise RuntimeError(f"{label} was never released")
    finally:
        conn.decr("test:busy-inside")
    return label


def quiet_order(label: str) -> str:
    """The other shop's fresh order: notes how many busy-shop calls were in flight when it ran."""
    from ecomflux_app import runtime

    conn = runtime.redis()
    conn.rpush("test:quiet-done", f"{label}:{int(conn.get('test:busy-inside') or 0)}")
    return label


def _worker_thread(worker):
    worker.death_penalty_class = TimerDeathPenalty  # signal-based timeouts work in the main thread only
    worker._install_signal_handlers = lambda: None
    thread = threading.Thread(target=worker.work, kwargs={"burst": True, "max_jobs": 1, "logging_level": "WARNING"},
                              daemon=True)
    thread.start()
    return thread


def test_share_leaves_a_worker_free_whenever_there_are_two():
    assert [shop_share(n) for n in (1, 2, 3, 4, 6, 8, 12)] == [1, 1, 2, 3, 5, 6, 9]


def test_a_shop_in_long_qbo_calls_never_holds_every_worker(app, redis_conn):
    """Four workers, four slow jobs of one shop queued before another shop's order: three workers
    go into the busy shop's calls and the fourth runs the quiet shop's order while they are in flight."""
    for n in range(4):
        enqueue(redis_conn, shop_queue_name(BUSY), "tests.test_fairness.hold_qbo_call", f"a{n}")
    enqueue(redis_conn, shop_queue_name(QUIET), "tests.test_fairness.quiet_order", "b0")
    workers = [make_worker(redis_conn, name=f"fair-{n}", simple=True) for n in range(4)]
    assert all(isinstance(w, FairSimpleWorker) for w in workers)
    for worker in workers:
        worker._mark_alive()  # all four are alive before any dequeues: the share is 3 of 4
    threads = [_worker_thread(w) for w in workers]
    try:
        done = redis_conn.blpop(["test:quiet-done"], timeout=60)
        assert done is not None, "the quiet shop's order never ran while the busy shop's calls were in flight"
        label, busy_inside = done[1].decode().split(":")
        assert label == "b0" and busy_inside == "3"
        entered = [x.decode() for x in redis_conn.lrange("test:entered", 0, -1)]
        assert len(entered) == 3  # the fourth busy job waits for a share, not for a worker
    finally:
        for n in range(4):
            redis_conn.rpush(f"test:release:a{n}", "go")
        for thread in threads:
            thread.join(timeout=60)
    # The held-back job is still queued (its turn kept) and runs once a worker is free.
    assert make_worker(redis_conn, name="fair-late", simple=True).work(burst=True, logging_level="WARNING")
    assert sorted(x.decode() for x in redis_conn.lrange("test:entered", 0, -1)) == ["a0", "a1", "a2", "a3"]
    assert max(int(x) for x in redis_conn.lrange("test:busy-max", 0, -1)) == 3
    assert redis_conn.zcard("ecomflux:shop-running:" + shop_queue_name(BUSY)) == 0  # every share given back
