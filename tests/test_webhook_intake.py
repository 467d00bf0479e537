"""Webhook intake: HMAC, one durable row per delivery, enqueue after commit, clear statuses."""

from __future__ import annotations

import json
import logging

from ecomflux_app.models import Shop, WebhookDelivery
from ecomflux_app.work_queue import get_queue, shop_queue_name
from ecomflux_app.shopify.webhooks import sign, verify
from ecomflux_app.sync.sweeper import queued_delivery_ids
from tests.helpers import post_webhook, webhook_headers

SHOP = "intake-shop.myshopify.com"


def make_shop(domain=SHOP):
    return Shop.create(domain=domain, access_token="shpat_x")


def test_verify_accepts_current_and_previous_secret_only():
    body = b'{"id": 1}'
    assert verify(body, sign(body, "new"), ["new", "old"])
    assert verify(body, sign(body, "old"), ["new", "old"])
    assert not verify(body, sign(body, "other"), ["new", "old"])
    assert not verify(body, None, ["new"])
    assert not verify(body + b" ", sign(body, "new"), ["new"])


def test_forged_webhook_is_401_and_logged_without_a_row(client, db, caplog):
    make_shop()
    body = b'{"id": 5}'
    headers = webhook_headers("orders/fulfilled", SHOP, body, secret="not-the-secret")
    with caplog.at_level(logging.WARNING):
        resp = client.post("/webhooks", data=body, headers=headers)
    assert resp.status_code == 401
    assert WebhookDelivery.select().count() == 0
    assert any("invalid HMAC" in r.getMessage() and SHOP in r.getMessage() for r in caplog.records)


def test_signed_webhook_lands_as_row_and_job(client, db, redis_conn):
    make_shop()
    resp = post_webhook(client, "orders/fulfilled", SHOP, {"id": 42, "name": "#1042"}, webhook_id="wh-1")
    assert resp.status_code == 200
    row = WebhookDelivery.get(WebhookDelivery.webhook_id == "wh-1")
    assert (row.status, row.order_id, row.order_name, row.shop.domain) == ("queued", "42", "#1042", SHOP)
    assert "x-shopify-hmac-sha256" not in row.headers and row.headers["x-shopify-topic"] == "orders/fulfilled"
    assert queued_delivery_ids(redis_conn, SHOP) == [row.id]


def test_duplicate_delivery_is_acknowledged_once(client, db, redis_conn):
    make_shop()
    for _ in range(3):
        assert post_webhook(client, "orders/fulfilled", SHOP, {"id": 7}, webhook_id="same").status_code == 200
    assert WebhookDelivery.select().count() == 1
    assert queued_delivery_ids(redis_conn, SHOP) == [WebhookDelivery.get().id]


def test_malformed_json_is_recorded_as_failed_not_enqueued(client, db, redis_conn):
    make_shop()
    resp = post_webhook(client, "orders/fulfilled", SHOP, None, raw=b"{not json")
    assert resp.status_code == 200
    row = WebhookDelivery.get()
    assert row.status == "failed" and row.error.startswith("malformed JSON payload")
    assert row.body == "{not json"
    assert get_queue(redis_conn, shop_queue_name(SHOP)).count == 0


def test_unknown_topic_and_unknown_shop_are_ignored_with_reason(client, db):
    """The row keeps the reason, and the answer says so (body and header) for the sender's logs."""
    make_shop()
    topic_resp = post_webhook(client, "products/create", SHOP, {"id": 1})
    shop_resp = post_webhook(client, "orders/fulfilled", "nobody.myshopify.com", {"id": 2})
    rows = {r.topic: r for r in WebhookDelivery.select()}
    assert rows["products/create"].status == "ignored" and "unsupported topic" in rows["products/create"].error
    assert rows["orders/fulfilled"].status == "ignored" and "unknown shop" in rows["orders/fulfilled"].error
    for resp, row in ((topic_resp, rows["products/create"]), (shop_resp, rows["orders/fulfilled"])):
        assert resp.status_code == 200
        assert resp.get_json() == {"status": "ignored", "id": row.id, "reason": row.error}
        assert resp.headers["X-Ecomflux-Delivery"] == f"ignored: {row.error}"


def test_a_delivery_for_an_uninstalled_shop_is_answered_held(client, db, redis_conn):
    Shop.create(domain=SHOP, access_token=None, status="uninstalled")
    resp = post_webhook(client, "orders/fulfilled", SHOP, {"id": 3, "name": "#3"})
    row = WebhookDelivery.get()
    assert resp.status_code == 200 and resp.get_json()["status"] == "held"
    assert "uninstalled" in resp.get_json()["reason"] and resp.headers["X-Ecomflux-Delivery"].startswith("held: ")
    # Kept and handed to the worker, which parks it until a reinstall resumes it.
    assert row.status == "queued" and queued_delivery_ids(redis_conn, SHOP) == [row.id]
    ok = post_webhook(client, "app/uninstalled", SHOP, {"id": 1})
    assert ok.get_json()["status"] == "queued" and "X-Ecomflux-Delivery" not in ok.headers


def test_a_signed_delivery_without_topic_or_shop_is_refused_and_logged(client, db, caplog):
    body = b'{"id": 1}'
    for missing in ("X-Shopify-Topic", "X-Shopify-Shop-Domain"):
        headers = webhook_headers("orders/fulfilled", SHOP, body, webhook_id=f"no-{missing}")
        del headers[missing]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ecomflux_app.web.webhooks"):
            assert client.post("/webhooks", data=body, headers=headers).status_code == 400
        assert [r.getMessage() for r in caplog.records] == [
            f"signed webhook rejected: missing {missing} (webhook_id=no-{missing} remote=127.0.0.1)"]
    assert WebhookDelivery.select().count() == 0


def test_a_row_no_driver_can_encode_is_stored_escaped_and_its_batch_mates_land(app, db, redis_conn):
    """The writer's last resort: a value that slipped past row_values (a lone surrogate) fails the
    group INSERT; its batch mates are written and it is stored escaped, failed with the reason."""
    from ecomflux_app import runtime
    from ecomflux_app.intake import IntakeWriter, PendingRow, row_values

    make_shop()
    writer = IntakeWriter(runtime.redis)
    batch = [PendingRow(row_values(webhook_id=w, topic="orders/fulfilled", shop_domain=SHOP, body="{}", status="queued"))
             for w in ("good-1", "poison", "good-2")]
    batch[1].values["order_name"] = "#\ud800"  # as if row_values had not cleaned it
    writer._commit(batch)
    assert [p.outcome for p in batch] == ["inserted", "inserted", "inserted"]
    rows = {d.webhook_id: d for d in WebhookDelivery.select()}
    assert (rows["poison"].status, rows["poison"].order_name) == ("failed", "#\\ud800")
    assert rows["poison"].error.startswith("stored escaped, not as received (UnicodeEncodeError")
    assert sorted(queued_delivery_ids(redis_conn, SHOP)) == sorted([rows["good-1"].id, rows["good-2"].id])


def test_redis_down_keeps_row_received_and_sweeper_recovers(client, db, redis_conn, monkeypatch):
    """Enqueue failure never loses the delivery: the row stays 'received' and the sweeper enqueues it."""
    from ecomflux_app.work_queue import connect_redis
    from ecomflux_app.sync import sweeper
    from ecomflux_app.web import webhooks

    make_shop()
    # A real connection to a port where nothing listens: Redis is "down" for the intake writer.
    dead = connect_redis("redis://127.0.0.1:1/0")
    monkeypatch.setattr(webhooks._writer, "_redis_factory", lambda: dead)
    assert post_webhook(client, "orders/fulfilled", SHOP, {"id": 9}).status_code == 200
    monkeypatch.undo()
    row = WebhookDelivery.get()
    assert (row.status, row.enqueued_at) == ("received", None)
    assert get_queue(redis_conn, shop_queue_name(SHOP)).count == 0
    WebhookDelivery.update(received_at=row.received_at.replace(year=2020)).execute()
    assert sweeper.sweep(redis_conn, 60) == 1
    assert get_queue(redis_conn, shop_queue_name(SHOP)).jobs[0].args == [row.id]
    assert WebhookDelivery.get().enqueued_at is not None


def test_burst_from_many_threads_lands_every_delivery_once(app, db, redis_conn):
    """Concurrent requests share group commits; every acknowledged delivery has one row and one job."""
    from concurrent.futures import ThreadPoolExecutor

    make_shop()

    def send(i):
        with app.test_client() as c:
            return post_webhook(c, "orders/fulfilled", SHOP, {"id": i % 50}, webhook_id=f"burst-{i % 150}").status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(send, range(300)))
    assert statuses == [200] * 300
    assert WebhookDelivery.select().count() == 150
    # Group commits batch the jobs (one per shop per commit); together they cover each row once.
    assert sorted(queued_delivery_ids(redis_conn, SHOP)) == [d.id for d in WebhookDelivery.select().order_by(WebhookDelivery.id)]


def test_only_the_writer_thread_touches_the_database(app, db, monkeypatch):
    """Request threads never open a connection (shop ids are resolved by the writer), so a process
    needs one intake connection however many threads its server runs."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import peewee

    make_shop()
    make_shop("second-shop.myshopify.com")
    callers: set[str] = set()
    real_connect = peewee.Database.connect

    def connect(self, *args, **kwargs):
        callers.add(threading.current_thread().name)
        return real_connect(self, *args, **kwargs)

    # Every database's connect: the shared one, and the writer's own on PostgreSQL (db.intake_database).
    monkeypatch.setattr(peewee.Database, "connect", connect)

    def send(i):
        with app.test_client() as c:
            shop = SHOP if i % 2 else "second-shop.myshopify.com"
            return post_webhook(c, "orders/fulfilled", shop, {"id": i}, webhook_id=f"conn-{i}").status_code

    with ThreadPoolExecutor(max_workers=48) as pool:
        assert list(pool.map(send, range(96))) == [200] * 96
    assert callers == {"ecomflux-intake-writer"}
    by_shop = {d.shop_domain: d.shop_id for d in WebhookDelivery.select()}
    assert by_shop == {SHOP: Shop.get(domain=SHOP).id,
                       "second-shop.myshopify.com": Shop.get(domain="second-shop.myshopify.com").id}


def test_a_cached_shop_id_whose_row_was_replaced_is_looked_up_again(client, db, redis_conn):
    """shop/redact deletes the row, a reinstall creates a new one: the next delivery gets the new id."""
    old = make_shop()
    make_shop("other-shop.myshopify.com")  # so the new row cannot reuse the old id (SQLite would)
    assert post_webhook(client, "orders/fulfilled", SHOP, {"id": 1}, webhook_id="before").status_code == 200
    WebhookDelivery.delete().execute()
    old.delete_instance()
    new = make_shop()
    assert new.id != old.id
    assert post_webhook(client, "orders/fulfilled", SHOP, {"id": 2}, webhook_id="after").status_code == 200
    row = WebhookDelivery.get(WebhookDelivery.webhook_id == "after")
    assert (row.shop_id, row.status) == (new.id, "queued")


def test_big_integers_keep_every_digit_and_nan_is_not_malformed(client, db):
    make_shop()
    raw = b'{"id": 123456789012345678901234567890, "name": "#1"}'  # beyond 64 bits
    assert post_webhook(client, "orders/fulfilled", SHOP, None, raw=raw, webhook_id="big").status_code == 200
    assert post_webhook(client, "orders/fulfilled", SHOP, None, raw=b'{"id": 5, "x": NaN}', webhook_id="nan").status_code == 200
    rows = {r.webhook_id: r for r in WebhookDelivery.select()}
    assert (rows["big"].status, rows["big"].order_id) == ("queued", "123456789012345678901234567890")
    assert (rows["nan"].status, rows["nan"].order_id) == ("queued", "5")


def test_a_row_the_database_refuses_fails_alone_and_its_batch_mates_land(app, db, redis_conn):
    """One delivery the database will not store must not turn away the others that shared its commit."""
    from ecomflux_app import runtime
    from ecomflux_app.intake import IntakeWriter, PendingRow, row_values

    make_shop()
    writer = IntakeWriter(runtime.redis)

    def pending(wid, body="{}"):
        return PendingRow(row_values(webhook_id=wid, topic="orders/fulfilled", shop_domain=SHOP, body=body,
                                     status="queued"))

    batch = [pending("good-1"), pending("bad", body=None), pending("good-2")]  # body is NOT NULL
    writer._commit(batch)
    assert [p.outcome for p in batch] == ["inserted", "error", "inserted"]
    assert "IntegrityError" in batch[1].error
    assert sorted(d.webhook_id for d in WebhookDelivery.select()) == ["good-1", "good-2"]
    assert sorted(queued_delivery_ids(redis_conn, SHOP)) == sorted(p.delivery_id for p in (batch[0], batch[2]))


def test_a_batch_with_redeliveries_gives_each_new_row_its_own_id(app, db, redis_conn):
    """Duplicates inside a commit (an id already stored, an id twice in the batch) are answered as
    duplicates, and every new row is told its own id (SQLite reads them back from the written range)."""
    from ecomflux_app import runtime
    from ecomflux_app.intake import IntakeWriter, PendingRow, row_values

    make_shop()
    writer = IntakeWriter(runtime.redis)

    def pending(wid):
        return PendingRow(row_values(webhook_id=wid, topic="orders/fulfilled", shop_domain=SHOP,
                                     body=f'{{"id": "{wid}"}}', status="queued"))

    writer._commit([pending("old")])
    batch = [pending("a"), pending("old"), pending("b"), pending("a"), pending("c")]
    writer._commit(batch)
    assert [p.outcome for p in batch] == ["inserted", "duplicate", "inserted", "duplicate", "inserted"]
    stored = {d.webhook_id: d.id for d in WebhookDelivery.select()}
    assert [p.delivery_id for p in batch if p.outcome == "inserted"] == [stored["a"], stored["b"], stored["c"]]
    clean = [pending("d"), pending("e")]
    writer._commit(clean)
    assert [p.delivery_id for p in clean] == [WebhookDelivery.get(WebhookDelivery.webhook_id == w).id for w in "de"]


def test_an_escaped_nul_in_an_indexed_field_still_lands(client, db):
    make_shop()
    assert post_webhook(client, "orders/fulfilled", SHOP, {"id": 4, "name": "#4\u0000x"}).status_code == 200
    row = WebhookDelivery.get()
    assert (row.status, row.order_name) == ("queued", "#4\ufffdx")


def test_oversized_headers_and_a_raw_nul_byte_still_land(client, db):
    """Header values are cut to their columns; a raw NUL (never valid JSON) is stored replaced, as a failed row."""
    make_shop()
    body = b'{"id": 9, "note": "a\x00b"}'
    headers = dict(webhook_headers("orders/fulfilled", SHOP, body, webhook_id="odd"),
                   **{"X-Shopify-API-Version": "v" * 40, "X-Shopify-Event-Id": "e" * 400})
    assert client.post("/webhooks", data=body, headers=headers).status_code == 200
    row = WebhookDelivery.get()
    assert (row.status, len(row.api_version), len(row.event_id)) == ("failed", 16, 255)
    assert row.error.startswith("malformed JSON payload") and row.body == '{"id": 9, "note": "a\ufffdb"}'


def test_gather_window_joins_arrivals_under_load_but_not_a_lone_delivery():
    """Under load the writer waits one gather window so late arrivals share the commit; a lone row does not wait."""
    import time

    from ecomflux_app.intake import IntakeWriter, PendingRow

    writer = IntakeWriter(redis_factory=None, gather_seconds=0.02)
    slept: list[float] = []

    def arrivals_during_window(seconds):  # stands in for time.sleep: two requests arrive meanwhile
        slept.append(seconds)
        writer._queue.put(PendingRow({"webhook_id": "late-1"}))
        writer._queue.put(PendingRow({"webhook_id": "late-2"}))

    writer._sleep = arrivals_during_window
    for wid in ("a", "b"):
        writer._queue.put(PendingRow({"webhook_id": wid}))
    batch = writer._next_batch(last_size=7, last_end=time.monotonic())
    assert [p.values["webhook_id"] for p in batch] == ["a", "b", "late-1", "late-2"]
    assert slept == [0.02]

    # Written at once: a lone delivery after a lone one, rows after the writer sat idle, a disabled window.
    cases = [(["alone"], 1, time.monotonic(), 0.02), (["x", "y"], 7, time.monotonic() - 5, 0.02),
             (["x", "y"], 7, time.monotonic(), 0.0)]
    for ids, last_size, last_end, gather in cases:
        writer.gather_seconds = gather
        for wid in ids:
            writer._queue.put(PendingRow({"webhook_id": wid}))
        slept.clear()
        batch = writer._next_batch(last_size=last_size, last_end=last_end)
        assert slept == [] and [p.values["webhook_id"] for p in batch] == ids


def test_gather_window_comes_from_the_configuration(tmp_path):
    from ecomflux_app.config import load_config

    assert load_config({}, tmp_path)["INTAKE_GATHER_SECONDS"] == 0.002
    assert load_config({"ECOMFLUX_INTAKE_GATHER_MS": "5"}, tmp_path)["INTAKE_GATHER_SECONDS"] == 0.005
    assert load_config({"ECOMFLUX_INTAKE_GATHER_MS": "0"}, tmp_path)["INTAKE_GATHER_SECONDS"] == 0.0


def test_body_is_stored_raw_for_replay(client, db):
    make_shop()
    payload = {"id": 11, "note": "café ☕"}
    body = json.dumps(payload, ensure_ascii=False).encode()
    post_webhook(client, "orders/fulfilled", SHOP, None, raw=body)
    assert json.loads(WebhookDelivery.get().body) == payload


def test_intake_answers_other_methods_and_crashes_with_json_not_pages(client, db, monkeypatch, caplog):
    from ecomflux_app.web import webhooks

    make_shop()
    resp = client.get("/webhooks")
    assert (resp.status_code, resp.get_json()) == (405, {"error": "method not allowed"})

    def broken(values):
        raise RuntimeError("writer exploded")

    monkeypatch.setattr(webhooks._writer, "submit", broken)
    with caplog.at_level(logging.ERROR):
        resp = post_webhook(client, "orders/fulfilled", SHOP, {"id": 3})
    # A 5xx makes Shopify deliver it again; the body never leaks the exception.
    assert (resp.status_code, resp.get_json()) == (500, {"error": "internal error"})
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert any("webhook intake crashed" in r.getMessage() for r in caplog.records)


def test_other_paths_still_reach_the_flask_app(client):
    assert client.get("/webhooksX").status_code == 404
    assert client.get("/healthz").status_code in (200, 503)


def test_sqlite_wal_checkpoints_run_beside_the_intake_commits_not_inside_them(app, db, redis_conn):
    """The writer's connection never checkpoints inside a commit; a thread of its own does, by bytes written."""
    import time

    import pytest

    from ecomflux_app import runtime
    from ecomflux_app.db import database
    from ecomflux_app.intake import IntakeWriter, PendingRow, row_values

    if not database.obj.__class__.__name__.startswith("Sqlite"):
        pytest.skip("SQLite's WAL only")
    make_shop()
    writer = IntakeWriter(runtime.redis)
    writer._checkpointer.CHECKPOINT_BYTES = 10_000
    for n in range(3):
        writer._commit([PendingRow(row_values(webhook_id=f"ck-{n}-{i}", topic="orders/fulfilled", shop_domain=SHOP,
                                              body="x" * 2_000, status="queued")) for i in range(3)])
        assert database.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    deadline = time.monotonic() + 10
    while writer._checkpointer.checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for the other thread's result, bounded: not a timing assertion
    assert writer._checkpointer.checkpoints >= 1
    assert WebhookDelivery.select().count() == 9


def test_sqlite_wal_is_reused_while_several_writers_keep_appending(app, db, redis_conn):
    """Checkpoints run in the writers' turn, so they complete and the WAL starts over: with writers of
    other processes appending all the while it used to grow without end (1.7 GB after a 9 s bench)."""
    import os
    import threading

    import pytest

    from ecomflux_app import runtime
    from ecomflux_app.db import database
    from ecomflux_app.intake import IntakeWriter, PendingRow, row_values

    if not database.obj.__class__.__name__.startswith("Sqlite"):
        pytest.skip("SQLite's WAL only")
    make_shop()
    body = "x" * 15_000
    writers = [IntakeWriter(runtime.redis) for _ in range(3)]  # as three web processes' writers
    for writer in writers:
        writer._checkpointer.CHECKPOINT_BYTES = 300_000

    def append(n: int, writer) -> None:
        database.connect(reuse_if_open=True)
        for batch in range(40):
            writer._commit([PendingRow(row_values(webhook_id=f"wal-{n}-{batch}-{i}", topic="orders/fulfilled",
                                                  shop_domain=SHOP, body=body, status="queued")) for i in range(8)])
        database.close()

    wal = database.obj.database + "-wal"
    before = os.path.getsize(wal) if os.path.exists(wal) else 0  # a WAL file keeps its size when reused
    threads = [threading.Thread(target=append, args=(n, w)) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert WebhookDelivery.select().count() == 3 * 40 * 8
    written = 3 * 40 * 8 * len(body)  # ~14 MB of bodies
    assert os.path.getsize(wal) - before < written / 3


def test_the_signature_check_keeps_the_gil_on_a_real_sized_body():
    """hashlib lets go of the GIL for a buffer of 2 KB or more, and a request thread that lets go of it
    in a busy web process waits up to the switch interval to take it back (~4.5 ms per 20 KB webhook
    beside one busy thread). A thread spinning beside the check must not get to run while it works."""
    import sys
    import threading

    body = json.dumps({"id": 1, "note": "x" * 20_000}).encode()
    ticks, stop, started = [0], threading.Event(), threading.Event()

    def busy() -> None:
        started.set()
        while not stop.is_set():
            ticks[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)  # no forced switch inside the ~0.1 ms check: only letting go of the GIL would
    spinner = threading.Thread(target=busy)
    try:
        spinner.start()
        started.wait()
        before = ticks[0]
        ok = verify(body, sign(body, "s3cret"), ("s3cret", "old-secret"))
        after = ticks[0]
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        spinner.join()
    assert ok
    assert after == before
